r"""Exact replay of the user's notebook (``shared/seed/notebook.txt``) with the toolkit.

The notebook calls ``np.random.seed(18)``, builds a teacher ``Network(4)`` and a
student ``Network(20)`` put on the small sphere ``small_sphere(0.05)``, and then, for
every animation frame i, draws nᵢ = 100·⌊log(10 + 10i)⌋ fresh samples
(``gen_sample``), permutes them and takes one epoch of minibatch SGD with batch 20 and
step τ = 0.5 (``sgd_train``/``batch_step``).  Here the same numbers are drawn from an
explicit ``np.random.RandomState(18)`` (never the global state), in the notebook's
order, and fed to :func:`meanfield.sgd.sgd` as an explicit initial measure and an
explicit sample stream.  In mean-field time the notebook's step is

.. math:: \eta = \tau/m = 0.5/20 = 0.025,

and its 500 frames (frame 0 twice, see below) are 17 670 steps, t = 441.75.

Matplotlib's ``FuncAnimation`` without ``init_func`` calls the update function once
more for frame 0 to initialise the figure, so the notebook as run processed frame 0
twice (its log prints ``0 0 1 2 …``): ``repeat_first=True`` (the default) replays that.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from meanfield._validation import check_int, check_positive, describe
from meanfield.measure import ParticleMeasure
from meanfield.sgd import RiskSpec, sgd, step_from_tau
from meanfield.streams import ArrayStream, FrameStream
from meanfield.trajectory import Trajectory

__all__ = ["NOTEBOOK", "notebook_initial", "notebook_run", "notebook_stream"]

NOTEBOOK: dict[str, Any] = {
    "seed": 18,
    "d": 2,
    "m0": 4,
    "m": 20,
    "radius": 0.05,
    "tau": 0.5,
    "batch_size": 20,
    "n_frames": 500,
    "repeat_first": True,
}
"""The notebook's settings."""


def _notebook_neurons(rs: np.random.RandomState, width: int, d: int) -> NDArray[np.float64]:
    """Draw ``Network(width)``: a, w, b = normal(), normal(size=d), normal(); (w, b) normalised.

    One ``normal(size=(width, d+2))`` call draws the same numbers in the same order as
    the notebook's per-neuron calls.  Norms are taken neuron by neuron with
    ``np.linalg.norm`` of ``concatenate([b], w)`` exactly as the notebook does (the
    vectorised norm may differ in the last bit); this runs once, at initialisation.
    """
    z = rs.normal(size=(width, d + 2))
    out = z.copy()
    norms = np.array([np.linalg.norm(np.concatenate([row[-1:], row[1:-1]]), 2) for row in z])
    out[:, 1:] = z[:, 1:] / norms[:, None]
    return out


def notebook_initial(
    seed: int = 18, *, m0: int = 4, m: int = 20, d: int = 2, radius: float = 0.05
) -> tuple[ParticleMeasure, ParticleMeasure, np.random.RandomState]:
    r"""Draw the notebook's teacher and student from ``RandomState(seed)``, in its order.

    .. math::
        a \sim N(0,1),\quad (w, b) \leftarrow (w, b)/\|(b, w)\|
        \quad\text{(teacher, then student)},\qquad
        (w, b) \leftarrow R\,(w, b)/\|(b, w)\| \quad\text{(student's small\_sphere)}

    Parameters
    ----------
    seed : int, default 18
        The notebook's ``np.random.seed(18)``.
    m0, m, d : int, default 4, 20, 2
        Teacher width, student width, input dimension.
    radius : float, default 0.05
        R of ``small_sphere(R)``.

    Returns
    -------
    teacher : ParticleMeasure
        ν, positions ``(m0, d+2)``, masses 1/m₀.
    student : ParticleMeasure
        μ₀, positions ``(m, d+2)``, masses 1/m.
    random_state : numpy.random.RandomState
        The generator after these draws, ready for the frames.
    """
    m0, m, d = check_int("m0", m0), check_int("m", m), check_int("d", d)
    radius = check_positive("radius", radius)
    rs = np.random.RandomState(check_int("seed", seed, minimum=0))
    teacher = _notebook_neurons(rs, m0, d)
    student = _notebook_neurons(rs, m, d)
    # small_sphere: norm = 1/R * ||concat([b], w)||; w /= norm; b /= norm
    norms = np.array(
        [(1.0 / radius) * np.linalg.norm(np.concatenate([r[-1:], r[1:-1]]), 2) for r in student]
    )
    student[:, 1:] = student[:, 1:] / norms[:, None]
    return ParticleMeasure(teacher), ParticleMeasure(student), rs


def notebook_stream(
    random_state: np.random.RandomState,
    teacher: ParticleMeasure,
    n_frames: int = 500,
    *,
    repeat_first: bool = True,
    batch_size: int = 20,
) -> ArrayStream:
    r"""Draw the notebook's minibatches from ``random_state``, frame by frame.

    Frame i draws ``normal(size=(nᵢ, d))``, labels it with the teacher, draws
    ``permutation(nᵢ)`` and splits the permuted sample into nᵢ/20 batches — the
    notebook's ``gen_sample`` and ``sgd_train(epochs=1)`` — via
    :class:`~meanfield.streams.FrameStream`.  Returned as explicit arrays (one block
    per frame), so the run is a replay of fixed data.

    Parameters
    ----------
    random_state : numpy.random.RandomState
        From :func:`notebook_initial` (advanced by this call).
    teacher : ParticleMeasure
        ν.
    n_frames : int, default 500
        Number of animation frames.
    repeat_first : bool, default True
        Process frame 0 twice, as ``FuncAnimation`` did.
    batch_size : int, default 20
        B.

    Returns
    -------
    ArrayStream
        ``x (S, B, d)``, ``y (S, B)``, ``block_ends()`` at the end of each frame.
    """
    if not isinstance(random_state, np.random.RandomState | np.random.Generator):
        raise TypeError(
            "random_state must be a numpy RandomState (or Generator); got "
            f"{describe(random_state)}"
        )
    frames = FrameStream.notebook(
        teacher, n_frames, repeat_first=repeat_first, batch_size=batch_size
    )
    return ArrayStream.from_blocks(list(frames.blocks(random_state, None)), target=teacher)


def notebook_run(
    n_frames: int = 500,
    *,
    seed: int = 18,
    repeat_first: bool = True,
    record_every: int = 1,
    m: int = 20,
    m0: int = 4,
    radius: float = 0.05,
    tau: float = 0.5,
    batch_size: int = 20,
    risk: RiskSpec = None,
    progress: bool | None = None,
) -> Trajectory:
    r"""Replay the notebook's experiment; one snapshot per frame.

    .. math:: \theta_i \leftarrow \theta_i - \frac{\tau}{m}\,\frac1B\sum_{k=1}^B
        (f_\mu(x_k) - y_k)\,\nabla_\theta\varphi(\theta_i, x_k)

    Parameters
    ----------
    n_frames : int, default 500
        Number of animation frames.
    seed : int, default 18
        The notebook's seed.
    repeat_first : bool, default True
        Process frame 0 twice, as the notebook did under ``FuncAnimation``.
    record_every : int, default 1
        Record a snapshot every ``record_every`` processed frames (and the last one).
    m, m0, radius, tau, batch_size
        Student width, teacher width, initial radius R, step τ, batch B (the
        notebook's 20, 4, 0.05, 0.5, 20).
    risk : VelocityEstimator, callable, bool or None
        Risk estimate at the snapshots (see :func:`meanfield.sgd.sgd`); default a fixed
        Monte-Carlo sample.
    progress : bool, optional
        Show a tqdm bar; default: only when stderr is a terminal.

    Returns
    -------
    Trajectory
        Snapshot 0 is the initialisation, snapshot j ≥ 1 the state after processed
        frame j·record_every; times are kη with η = τ/m; ``config["frame_ends"]`` gives
        the step count at the end of every processed frame, and the trajectory's
        teacher is ν.
    """
    n_frames = check_int("n_frames", n_frames)
    record_every = check_int("record_every", record_every)
    teacher, student, rs = notebook_initial(seed, m0=m0, m=m, radius=radius)
    stream = notebook_stream(
        rs, teacher, n_frames, repeat_first=repeat_first, batch_size=batch_size
    )
    ends = stream.block_ends()
    config = {
        "experiment": "notebook",
        "n_frames": n_frames,
        "repeat_first": bool(repeat_first),
        "record_every": record_every,
        "m": m,
        "m0": m0,
        "radius": radius,
        "tau": tau,
        "seed": seed,
        "frame_ends": ends.tolist(),
    }
    traj = sgd(
        student,
        stream,
        step=step_from_tau(tau, m),
        record_steps=np.concatenate([[0], ends[record_every - 1 :: record_every]]),
        risk=risk,
        progress=progress,
        config=config,
    )
    return dataclasses.replace(traj, seed=seed)

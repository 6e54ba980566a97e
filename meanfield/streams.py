r"""Sample streams: where the minibatches of SGD come from.

A stream yields blocks of consecutive SGD steps, ``x (S, B, d)`` and ``y (S, B)``
(S steps of B samples, y = y(x) for a target):

* :class:`OnlineStream` — fresh samples at every step, x ~ N(0, I_d) (the online SGD
  of Mei, Montanari & Nguyen 2018);
* :class:`DatasetStream` — a finite dataset, reshuffled at every epoch;
* :class:`FrameStream` — the user's notebook: frame i draws nᵢ = 100·⌊log(10 + 10i)⌋
  fresh samples and takes one epoch over them;
* :class:`ArrayStream` — explicit arrays, for exact replays.

Every stream draws from the generator it is handed, so a run is reproducible from its
seed; for an ensemble, :func:`meanfield.sgd.sgd` hands member r its own generator
``spawn_rngs(rng, R)[r]``.  A stream also supplies a default risk estimate
(:meth:`SampleStream.risk_function`):

.. math:: \hat F(\mu) = \frac1{2n}\sum_{k=1}^n \big(f_\mu(x_k) - y(x_k)\big)^2 .
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import as_float_array, check_inputs, check_int, check_positive, describe
from meanfield.activations import Activation
from meanfield.data import Target, Teacher, as_target, notebook_frame_sizes, sample_inputs
from meanfield.measure import ParticleMeasure, RNGLike, spawn_rngs
from meanfield.velocity import residual_on_sample

__all__ = [
    "RISK_SAMPLES",
    "RISK_SEED",
    "ArrayStream",
    "DatasetStream",
    "FrameStream",
    "OnlineStream",
    "SampleStream",
]

TargetLike = Target | ParticleMeasure | Callable[[NDArray[np.floating]], ArrayLike]
Block = tuple[NDArray[np.floating], NDArray[np.floating]]
StreamRNG = np.random.Generator | np.random.RandomState
PairRisk = Callable[[NDArray[np.floating], NDArray[np.floating]], NDArray[np.floating]]

#: Size and seed of the fixed Monte-Carlo sample behind a stream's default risk.
RISK_SAMPLES = 4096
RISK_SEED = 0


# -- sample streams -------------------------------------------------------------------
def _inputs(rng: StreamRNG, n: int, d: int, law: str, radius: float) -> NDArray[np.floating]:
    if isinstance(rng, np.random.Generator):
        return sample_inputs(n, d, law=law, radius=radius, rng=rng)  # type: ignore[arg-type]
    x = rng.standard_normal((n, d))  # legacy RandomState: the notebook's replay
    if law == "sphere":
        x *= radius / np.linalg.norm(x, axis=-1, keepdims=True)
    return x


def _check_law(law: str, radius: float) -> tuple[str, float]:
    if law not in ("gaussian", "sphere"):
        raise ValueError(f"law must be 'gaussian' or 'sphere'; got {law!r}")
    return law, check_positive("radius", radius)


def _sample_risk(x: NDArray[np.floating], y: NDArray[np.floating], sigma: Activation) -> PairRisk:
    def risk(theta: NDArray[np.floating], masses: NDArray[np.floating]) -> NDArray[np.floating]:
        r = residual_on_sample(theta, masses, x, y, sigma)
        return 0.5 * np.mean(r * r, axis=-1)

    return risk


class SampleStream(ABC):
    r"""A source of minibatches (x, y) for :func:`sgd`, as blocks of consecutive steps.

    :meth:`blocks` yields pairs ``x (S, B, d)``, ``y (S, B)``: S steps of B samples.
    For an ensemble, :func:`sgd` calls it once per member r with that member's
    generator and ``replica=r``; a stream must draw the same blocks for a member as
    for the same run made alone with the same generator.

    Attributes
    ----------
    batch_size : int
        B.
    d : int
        Input dimension.
    """

    batch_size: int
    d: int
    target: Target | None = None
    law: str = "gaussian"
    radius: float = 1.0
    risk_name: str | None = None

    @property
    def n_steps(self) -> int | None:
        """Total number of steps, or ``None`` for an endless stream."""
        return None

    def block_ends(self) -> NDArray[np.int64] | None:
        """Cumulative step counts at the end of each block (frames, epochs), if fixed."""
        return None

    @abstractmethod
    def blocks(self, rng: StreamRNG, replica: int | None) -> Iterator[Block]:
        """Yield blocks ``x (S, B, d)``, ``y (S, B)`` drawn with ``rng`` for ``replica``."""

    def ensemble_blocks(
        self, rng: RNGLike, batch_shape: tuple[int, ...]
    ) -> Generator[Block, None, None]:
        """Yield the blocks of an ensemble, step-major: ``x (S, *bs, B, d)``, ``y (S, *bs, B)``.

        Member r draws from ``spawn_rngs(rng, R)[r]`` (a single run, ``batch_shape = ()``,
        from ``default_rng(rng)``), so it sees what the same run made alone sees.  A
        stream whose data are shared by the members may yield size-1 ensemble axes.
        """
        if not batch_shape:
            yield from self.blocks(np.random.default_rng(rng), None)
            return
        n_rep = int(np.prod(batch_shape))
        its = [self.blocks(g, r) for r, g in enumerate(spawn_rngs(rng, n_rep))]
        for parts in zip(*its, strict=True):
            xs = [q[0] for q in parts]
            if any(q.shape != xs[0].shape for q in xs):
                raise ValueError(
                    "the stream gave blocks of different shapes to the ensemble members: "
                    f"{sorted({q.shape for q in xs})}"
                )
            s, b, d = xs[0].shape
            x = np.stack(xs, axis=1).reshape(s, *batch_shape, b, d)
            y = np.stack([q[1] for q in parts], axis=1).reshape(s, *batch_shape, b)
            yield x, y

    def describe(self) -> dict[str, Any]:
        """JSON description of the stream (for the trajectory's configuration)."""
        return {"kind": type(self).__name__, "batch_size": self.batch_size, "d": self.d}

    @property
    def teacher(self) -> ParticleMeasure | None:
        """The teacher measure when the target is a teacher network."""
        return self.target.measure if isinstance(self.target, Teacher) else None

    def _target_batch(self) -> tuple[int, ...]:
        t = self.teacher
        return () if t is None else t.batch_shape

    def check_batch_shape(self, batch_shape: tuple[int, ...]) -> None:
        """Check that per-member data (a teacher ensemble, datasets) fit ``batch_shape``."""
        tb = self._target_batch()
        if tb and tb != batch_shape:
            raise ValueError(
                f"the teacher has ensemble axes {tb} but the measure has {batch_shape}; they "
                "must match (or the teacher must be a single measure)"
            )

    def _target_for(self, replica: int | None) -> Target:
        if self.target is None:
            raise ValueError(f"{type(self).__name__} has no target")
        t = self.teacher
        if t is None or not t.batch_shape:
            return self.target
        if replica is None:
            raise ValueError("a teacher ensemble needs an ensemble of students")
        th = t.theta.reshape(-1, *t.theta.shape[-2:])[replica]
        p = t.masses.reshape(-1, t.masses.shape[-1])[replica]
        return Teacher(ParticleMeasure(th, p), self.target.activation)  # type: ignore[attr-defined]

    def risk_function(self, activation: Activation) -> PairRisk | None:
        r"""Default risk: ½ mean (f_μ − y)² on a fixed Monte-Carlo sample of the input law.

        The sample (``RISK_SAMPLES`` inputs drawn with seed ``RISK_SEED``) is the same
        for every run and every ensemble member; ``None`` when there is no target.
        """
        if self.target is None:
            return None
        x = _inputs(np.random.default_rng(RISK_SEED), RISK_SAMPLES, self.d, self.law, self.radius)
        self.risk_name = f"monte-carlo({RISK_SAMPLES}, seed={RISK_SEED})"
        return _sample_risk(x, np.asarray(self.target(x)), activation)


class OnlineStream(SampleStream):
    r"""Fresh samples at every step: x ~ N(0, I_d) (or the sphere), y = y(x).

    Samples are drawn ``chunk`` steps at a time (``rng`` fills arrays sequentially, so
    the samples do not depend on ``chunk``).

    Parameters
    ----------
    target : Target, ParticleMeasure or callable
        y; a teacher measure may carry one teacher per ensemble member.
    batch_size : int, default 20
        B.
    d : int, optional
        Input dimension (default: the target's).
    law : {"gaussian", "sphere"}, default "gaussian"
        Input law.
    radius : float, default 1.0
        Radius of the sphere law.
    chunk : int, default 256
        Steps drawn per block.
    """

    def __init__(
        self,
        target: TargetLike,
        batch_size: int = 20,
        *,
        d: int | None = None,
        law: str = "gaussian",
        radius: float = 1.0,
        chunk: int = 256,
    ) -> None:
        self.target = as_target(target)
        self.batch_size = check_int("batch_size", batch_size)
        self.law, self.radius = _check_law(law, radius)
        self.chunk = check_int("chunk", chunk)
        dd = self.target.d if d is None else check_int("d", d)
        if dd is None:
            raise ValueError("d is required when the target does not know its input dimension")
        if self.target.d is not None and self.target.d != dd:
            raise ValueError(f"d={dd} does not match the target's d={self.target.d}")
        self.d = dd

    def blocks(self, rng: StreamRNG, replica: int | None) -> Iterator[Block]:
        """Yield endless blocks of ``chunk`` fresh minibatches."""
        target = self._target_for(replica)
        s, b, d = self.chunk, self.batch_size, self.d
        while True:
            x = _inputs(rng, s * b, d, self.law, self.radius)
            yield x.reshape(s, b, d), np.asarray(target(x)).reshape(s, b)

    def describe(self) -> dict[str, Any]:
        """JSON description."""
        return {**super().describe(), "law": self.law, "radius": self.radius}


class FrameStream(SampleStream):
    r"""The notebook's frames: frame i draws nᵢ fresh samples and takes one epoch on them.

    Each frame draws x (nᵢ, d) then a permutation of nᵢ, and cuts the permuted sample
    into ⌊nᵢ/B⌋ consecutive minibatches (the notebook's ``gen_sample`` then
    ``sgd_train(epochs=1)``: ``permutation`` then ``np.split``).  One block per frame.

    Parameters
    ----------
    sizes : array_like of int, shape (n_frames,)
        nᵢ (each ≥ ``batch_size``).
    target : Target, ParticleMeasure or callable
        y.
    batch_size : int, default 20
        B.
    d, law, radius
        As for :class:`OnlineStream`.
    """

    def __init__(
        self,
        sizes: ArrayLike,
        target: TargetLike,
        batch_size: int = 20,
        *,
        d: int | None = None,
        law: str = "gaussian",
        radius: float = 1.0,
    ) -> None:
        self.target = as_target(target)
        self.batch_size = check_int("batch_size", batch_size)
        self.law, self.radius = _check_law(law, radius)
        sz = np.asarray(sizes)
        if sz.ndim != 1 or sz.size == 0 or sz.dtype.kind not in "iu" or sz.min() < self.batch_size:
            raise ValueError(
                f"sizes must be a nonempty 1-D integer array with entries >= batch_size="
                f"{self.batch_size}; got {describe(sz)}"
            )
        self.sizes = sz.astype(np.int64)
        dd = self.target.d if d is None else check_int("d", d)
        if dd is None:
            raise ValueError("d is required when the target does not know its input dimension")
        self.d = dd

    @classmethod
    def notebook(
        cls,
        target: TargetLike,
        n_frames: int = 500,
        *,
        repeat_first: bool = False,
        batch_size: int = 20,
    ) -> FrameStream:
        """Return the notebook's schedule nᵢ = 100·⌊log(10 + 10i)⌋.

        See :func:`~meanfield.data.notebook_frame_sizes`.
        """
        return cls(notebook_frame_sizes(n_frames, repeat_first=repeat_first), target, batch_size)

    @property
    def n_steps(self) -> int:
        """Σᵢ ⌊nᵢ/B⌋."""
        return int(np.sum(self.sizes // self.batch_size))

    def block_ends(self) -> NDArray[np.int64]:
        """Step count at the end of each frame."""
        return np.cumsum(self.sizes // self.batch_size)

    def blocks(self, rng: StreamRNG, replica: int | None) -> Iterator[Block]:
        """Yield one block per frame (inputs drawn, then the permutation)."""
        target = self._target_for(replica)
        b, d = self.batch_size, self.d
        for n in self.sizes.tolist():
            x = _inputs(rng, n, d, self.law, self.radius)
            y = np.asarray(target(x))
            perm = rng.permutation(n)
            k = n // b
            yield x[perm[: k * b]].reshape(k, b, d), y[perm[: k * b]].reshape(k, b)

    def describe(self) -> dict[str, Any]:
        """JSON description."""
        return {**super().describe(), "law": self.law, "sizes": self.sizes.tolist()}


class DatasetStream(SampleStream):
    r"""Minibatch SGD over a finite dataset: each epoch a fresh permutation, ⌊n/B⌋ steps.

    The last n mod B samples of each permutation are left out of that epoch.

    Parameters
    ----------
    x : array_like, shape (n, d) or (..., n, d)
        Inputs, shared or one dataset per ensemble member.
    y : array_like, shape (n,) or (..., n), optional
        Labels; default ``target(x)``.
    target : Target, ParticleMeasure or callable, optional
        y(x), needed when ``y`` is omitted.
    batch_size : int, default 20
        B ≤ n.
    epochs : int, default 1
        Number of passes.
    """

    def __init__(
        self,
        x: ArrayLike,
        y: ArrayLike | None = None,
        *,
        target: TargetLike | None = None,
        batch_size: int = 20,
        epochs: int = 1,
    ) -> None:
        xx = as_float_array("x", x, min_ndim=2)
        self.d = xx.shape[-1]
        self.target = None if target is None else as_target(target)
        if y is None:
            if self.target is None:
                raise ValueError("give the labels y or a target to compute them")
            y = self.target(xx)
        yy = as_float_array("y", y, min_ndim=1)
        if yy.shape != xx.shape[:-1]:
            raise ValueError(f"y must have shape {xx.shape[:-1]} to match x; got {yy.shape}")
        self.x, self.y = xx, yy
        self.batch_size = check_int("batch_size", batch_size)
        self.epochs = check_int("epochs", epochs)
        if xx.shape[-2] < self.batch_size:
            raise ValueError(
                f"the dataset must hold at least batch_size={self.batch_size} samples; got "
                f"n={xx.shape[-2]}"
            )

    @property
    def n_steps(self) -> int:
        """Epochs · ⌊n/B⌋."""
        return self.epochs * (self.x.shape[-2] // self.batch_size)

    def block_ends(self) -> NDArray[np.int64]:
        """Step count at the end of each epoch."""
        per = self.x.shape[-2] // self.batch_size
        return per * np.arange(1, self.epochs + 1, dtype=np.int64)

    def check_batch_shape(self, batch_shape: tuple[int, ...]) -> None:
        """Datasets with ensemble axes must match the measure's."""
        super().check_batch_shape(batch_shape)
        db = self.x.shape[:-2]
        if db and db != batch_shape:
            raise ValueError(f"x has ensemble axes {db} but the measure has {batch_shape}")

    def blocks(self, rng: StreamRNG, replica: int | None) -> Iterator[Block]:
        """Yield one block per epoch."""
        x, y = self.x, self.y
        if x.ndim > 2:
            if replica is None:
                raise ValueError("one dataset per member needs an ensemble of students")
            x = x.reshape(-1, *x.shape[-2:])[replica]
            y = y.reshape(-1, y.shape[-1])[replica]
        n, b, d = x.shape[0], self.batch_size, self.d
        k = n // b
        for _ in range(self.epochs):
            perm = rng.permutation(n)[: k * b]
            yield x[perm].reshape(k, b, d), y[perm].reshape(k, b)

    def risk_function(self, activation: Activation) -> PairRisk:
        """Default risk: the empirical risk on the dataset."""
        self.risk_name = "empirical(dataset)"
        return _sample_risk(self.x, self.y, activation)

    def describe(self) -> dict[str, Any]:
        """JSON description."""
        return {**super().describe(), "n": self.x.shape[-2], "epochs": self.epochs}


class ArrayStream(SampleStream):
    r"""Explicit minibatches, for exact replays: x (S, B, d), y (S, B) (or per member).

    Parameters
    ----------
    x : array_like, shape (S, B, d) or (..., S, B, d)
        Inputs of each step (leading axes: one stream per ensemble member).
    y : array_like, shape (S, B) or (..., S, B)
        Labels.
    target : Target, ParticleMeasure or callable, optional
        y(x), used only for the default risk and to record the teacher.
    block_sizes : array_like of int, optional
        Split of the S steps into blocks (e.g. frames), reported by :meth:`block_ends`:
        positive integers summing to S.  Default: one block.

    Raises
    ------
    ValueError
        If ``y`` does not match ``x`` or ``block_sizes`` is not a 1-D array of positive
        integers summing to S.
    """

    def __init__(
        self,
        x: ArrayLike,
        y: ArrayLike,
        *,
        target: TargetLike | None = None,
        block_sizes: ArrayLike | None = None,
    ) -> None:
        xx = np.ascontiguousarray(as_float_array("x", x, min_ndim=3))
        yy = np.ascontiguousarray(as_float_array("y", y, min_ndim=2))
        if yy.shape != xx.shape[:-1]:
            raise ValueError(f"y must have shape {xx.shape[:-1]} to match x; got {yy.shape}")
        self.x, self.y = xx, yy
        self.batch_size, self.d = xx.shape[-2], xx.shape[-1]
        self.target = None if target is None else as_target(target)
        steps = xx.shape[-3]
        if block_sizes is None:
            self.sizes = np.array([steps], dtype=np.int64)
            return
        sizes = np.asarray(block_sizes)
        if (
            sizes.ndim != 1
            or sizes.size == 0
            or sizes.dtype.kind not in "iu"
            or np.any(sizes <= 0)
            or sizes.sum() != steps
        ):
            raise ValueError(
                f"block_sizes must be positive integers summing to {steps}; got {describe(sizes)}"
            )
        self.sizes = sizes.astype(np.int64)

    @classmethod
    def from_blocks(
        cls, blocks: Sequence[Block], *, target: TargetLike | None = None
    ) -> ArrayStream:
        """Concatenate blocks ``(x (Sᵢ, B, d), y (Sᵢ, B))``, keeping their sizes."""
        if not blocks:
            raise ValueError("blocks must be a nonempty sequence of (x, y) pairs")
        xs = [check_inputs(b[0], np.shape(b[0])[-1], name="x") for b in blocks]
        ys = [as_float_array("y", b[1]) for b in blocks]
        sizes = [xb.shape[-3] if xb.ndim >= 3 else 0 for xb in xs]
        kept = np.array([n for n in sizes if n > 0], dtype=np.int64)  # empty blocks: no steps
        return cls(
            np.concatenate(xs, axis=-3),
            np.concatenate(ys, axis=-2),
            target=target,
            block_sizes=kept if kept.size else None,
        )

    @property
    def n_steps(self) -> int:
        """S."""
        return int(self.x.shape[-3])

    def block_ends(self) -> NDArray[np.int64]:
        """Step count at the end of each block."""
        return np.cumsum(self.sizes)

    def check_batch_shape(self, batch_shape: tuple[int, ...]) -> None:
        """Per-member arrays must match the measure's ensemble axes."""
        super().check_batch_shape(batch_shape)
        db = self.x.shape[:-3]
        if db and db != batch_shape:
            raise ValueError(f"x has ensemble axes {db} but the measure has {batch_shape}")

    def blocks(self, rng: StreamRNG, replica: int | None) -> Iterator[Block]:
        """Yield the given blocks (``rng`` is not used)."""
        x, y = self.x, self.y
        if x.ndim > 3:
            if replica is None:
                raise ValueError("per-member arrays need an ensemble of students")
            x = x.reshape(-1, *x.shape[-3:])[replica]
            y = y.reshape(-1, *y.shape[-2:])[replica]
        start = 0
        for n in self.sizes.tolist():
            yield x[start : start + n], y[start : start + n]
            start += n

    def ensemble_blocks(
        self, rng: RNGLike, batch_shape: tuple[int, ...]
    ) -> Generator[Block, None, None]:
        """Yield views of the arrays, step-major (no copy; shared arrays get size-1 axes)."""
        if not batch_shape:
            yield from self.blocks(None, None)  # type: ignore[arg-type]
            return
        nb = len(batch_shape)
        if self.x.ndim > 3:
            x = np.moveaxis(self.x, nb, 0)  # (S, *bs, B, d)
            y = np.moveaxis(self.y, nb, 0)
        else:
            x = self.x.reshape(self.x.shape[0], *([1] * nb), *self.x.shape[1:])
            y = self.y.reshape(self.y.shape[0], *([1] * nb), self.y.shape[1])
        start = 0
        for n in self.sizes.tolist():
            yield x[start : start + n], y[start : start + n]
            start += n

    def describe(self) -> dict[str, Any]:
        """JSON description."""
        return {**super().describe(), "n_steps": self.n_steps, "blocks": len(self.sizes)}

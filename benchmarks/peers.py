r"""Peer implementations of online minibatch SGD for the benchmark (``make bench``).

Every peer runs the same dynamics on the same explicit inputs, so their results can be
compared numerically:

* ``theta0``, shape ``(..., m, d+2)``: initial particles, rows ``[a, w_1 … w_d, b]``;
* ``x``, shape ``(n_steps, ..., batch, d)``: the sample stream, one minibatch per step
  (step axis first, then the ensemble axes, if any);
* ``y``, shape ``(n_steps, ..., batch)``: the targets on that stream;
* ``tau``: the notebook's step, θᵢ ← θᵢ − τ ∇_{θᵢ} F_m (η = τ/m in mean-field time).

One step, with f(x) = (1/m) Σᵢ aᵢ σ(wᵢ·x + bᵢ), σ = ReLU (σ'(0) = 1 as in the notebook)
and residuals r_k = f(x_k) − y_k on a batch of size B:

.. math::

    \theta_i \leftarrow \theta_i - \frac{\tau}{mB}\sum_{k=1}^{B} r_k\,
    \big(\sigma(u_{ik}),\; a_i\sigma'(u_{ik})\,x_k,\; a_i\sigma'(u_{ik})\big),
    \qquad u_{ik} = w_i\cdot x_k + b_i .

Peers:

* :func:`naive_sgd` — the notebook's own per-neuron code (``Neuron``/``Network`` objects,
  scalar ``relu``/``drelu``, a Python loop over samples), transcribed from
  ``Network.batch_step`` but fed the given arrays instead of drawing from global numpy
  randomness;
* :func:`torch_sgd` — the plain PyTorch CPU loop a user would write (parameters ``a``,
  ``W``, ``b``, autograd, ``torch.optim.SGD``), float64, default thread count;
* :func:`numpy_sgd` — a straightforward vectorised numpy step (one matmul for the
  pre-activations, grads by matmul), also vectorised over ensemble axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from meanfield.data import notebook_frame_sizes, sample_inputs
from meanfield.measure import notebook_sphere, notebook_teacher, spawn_rngs
from meanfield.network import output

__all__ = [
    "Problem",
    "matmul_floor",
    "naive_sgd",
    "notebook_problem",
    "numpy_sgd",
    "numpy_step",
    "sgd_flops",
    "teacher_problem",
    "torch_available",
    "torch_sgd",
]

Array = NDArray[np.float64]


# ---------------------------------------------------------------------------------------
# Problems: one explicit initial state and one explicit sample stream shared by all peers
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """An SGD run fully given by arrays (see the module docstring for shapes)."""

    theta0: Array  # (..., m, d+2)
    x: Array  # (n_steps, ..., batch, d)
    y: Array  # (n_steps, ..., batch)
    tau: float
    teacher: Array  # (m0, d+2)

    @property
    def n_steps(self) -> int:
        return self.x.shape[0]

    @property
    def batch(self) -> int:
        return self.x.shape[-2]

    @property
    def m(self) -> int:
        return self.theta0.shape[-2]

    @property
    def d(self) -> int:
        return self.theta0.shape[-1] - 2

    @property
    def runs(self) -> int:
        return int(np.prod(self.theta0.shape[:-2], dtype=np.int64))

    def prefix(self, n_steps: int) -> Problem:
        """The same run truncated to its first ``n_steps`` steps."""
        return Problem(self.theta0, self.x[:n_steps], self.y[:n_steps], self.tau, self.teacher)


def teacher_problem(
    m: int,
    d: int,
    batch: int,
    n_steps: int,
    *,
    tau: float,
    m0: int = 4,
    radius: float = 0.05,
    runs: int | None = None,
    rng: Any = None,
) -> Problem:
    """A teacher–student run: notebook student law, notebook teacher, Gaussian inputs.

    The student is ``notebook_sphere(m, d, radius)`` (an ensemble of ``runs`` replicas
    if given), the teacher ``notebook_teacher(m0, d)`` (shared by the replicas), and the
    stream holds ``n_steps`` fresh minibatches of ``batch`` inputs x ~ N(0, I_d) per
    replica, with y = f_ν(x).
    """
    r_teacher, r_student, r_data = spawn_rngs(rng, 3)
    teacher = notebook_teacher(m0, d, rng=r_teacher)
    theta0 = np.array(notebook_sphere(m, d, radius=radius, runs=runs, rng=r_student).theta)
    shape = (n_steps,) if runs is None else (n_steps, runs)
    n = int(np.prod(shape)) * batch
    x = sample_inputs(n, d, rng=r_data).reshape(*shape, batch, d)
    y = np.empty(x.shape[:-1])
    chunk = max(1, (1 << 22) // (x[0].size // d * m0))  # bound the (…, batch, m0) temporaries
    for s0 in range(0, n_steps, chunk):
        y[s0 : s0 + chunk] = output(teacher, x[s0 : s0 + chunk])
    return Problem(theta0, x, y, float(tau), np.array(teacher.theta))


def notebook_problem(
    n_frames: int = 500,
    *,
    m: int = 20,
    d: int = 2,
    batch: int = 20,
    tau: float = 0.5,
    runs: int | None = None,
    rng: Any = 0,
) -> Problem:
    """The notebook's experiment: m = 20, d = 2, τ = 0.5, batch 20, frames 100·⌊log(10+10i)⌋.

    Frame i draws ``notebook_frame_sizes(n_frames)[i]`` fresh samples and makes one epoch
    of batch-20 SGD on them; since the samples are i.i.d. the notebook's per-epoch shuffle
    does not change the law of the stream, so the frames are concatenated into one stream
    of Σᵢ sizeᵢ / 20 steps (17,660 for 500 frames).
    """
    sizes = notebook_frame_sizes(n_frames)
    if np.any(sizes % batch):
        raise ValueError(f"batch must divide every frame size; got batch={batch}")
    n_steps = int(sizes.sum()) // batch
    return teacher_problem(m, d, batch, n_steps, tau=tau, runs=runs, rng=rng)


def sgd_flops(m: int, d: int, batch: int) -> int:
    r"""Floating-point operations of one SGD step, counted analytically.

    A multiply-add counts 2, any other arithmetic operation or comparison 1:

    ======================================  ==================
    u = X Wᵀ + b                            2Bmd + Bm
    s = relu(u), σ'(u) = 1[u ≥ 0]           2Bm
    f = s a / m,  r = f − y                 2Bm + 2B
    g_a = sᵀ r                              2Bm
    c = r ⊙ σ'(u)                           Bm
    g_w = cᵀ X,  g_b = Σ_k c                2Bmd + Bm
    scale by aᵢ and τ/(mB), subtract        3m(d+2)
    ======================================  ==================

    .. math:: \mathrm{flops}(B, m, d) = Bm\,(4d + 9) + 3m(d + 2) + 2B

    The 4Bmd of the two matrix products dominate for d ≫ 1; for d = 2 the count is
    17 flops per (sample × neuron), most of them element-wise.
    """
    return batch * m * (4 * d + 9) + 3 * m * (d + 2) + 2 * batch


# ---------------------------------------------------------------------------------------
# (1) the notebook's per-neuron implementation
# ---------------------------------------------------------------------------------------
def relu(x: float) -> float:
    if x >= 0:
        return x
    return 0.0


def drelu(x: float) -> float:
    if x >= 0:
        return 1.0
    return 0.0


class Neuron:
    """The notebook's ``Neuron``, built from given weights instead of random draws."""

    def __init__(self, a: float, w: Array, b: float) -> None:
        self.set_weights(a, w, b)

    def set_weights(self, a: float, w: Array, b: float) -> None:
        self.a = a
        self.w = w.copy()
        self.b = b

    def forward(self, x: Array) -> float:
        return self.a * relu(self.w.dot(x) + self.b)


class Network:
    """The notebook's ``Network`` (``output``, ``grad``, ``batch_step`` verbatim).

    The only changes: neurons are built from ``theta`` rather than drawn from the global
    generator, and the input dimension is ``self.d`` instead of the global ``d``.
    """

    def __init__(self, theta: Array) -> None:
        self.width = theta.shape[0]
        self.d = theta.shape[1] - 2
        self.neurons = [Neuron(row[0], row[1:-1], row[-1]) for row in theta]

    def output(self, x: Array) -> float:
        return float(np.mean([n.forward(x) for n in self.neurons]))

    def grad(self, x: Array, y: float) -> tuple[Array, Array, Array]:
        d = self.output(x) - y
        s = np.array([relu(n.w.dot(x) + n.b) for n in self.neurons])
        ds = np.array([drelu(n.w.dot(x) + n.b) for n in self.neurons])
        ga = 1.0 / self.width * d * s
        gb = 1.0 / self.width * d * np.array([self.neurons[i].a * ds[i] for i in range(self.width)])
        gw = np.array([gb[i] * x for i in range(self.width)])  # shape m * d
        return ga, gw, gb

    def batch_step(self, X: Array, Y: Array, tau: float) -> None:
        ba = X.shape[0]
        Ga, Gw, Gb = (
            np.zeros((ba, self.width)),
            np.zeros((ba, self.width, self.d)),
            np.zeros((ba, self.width)),
        )
        for i in range(ba):
            Ga[i], Gw[i], Gb[i] = self.grad(X[i], Y[i])
        ga, gw, gb = Ga.mean(axis=0), Gw.mean(axis=0), Gb.mean(axis=0)
        for i in range(self.width):
            nr = self.neurons[i]
            a_new = nr.a - tau * ga[i]
            w_new = nr.w - tau * gw[i]
            b_new = nr.b - tau * gb[i]
            nr.set_weights(a_new, w_new, b_new)

    def give_theta(self) -> Array:
        return np.array([np.concatenate([[n.a], n.w, [n.b]]) for n in self.neurons])


def naive_sgd(theta0: Array, x: Array, y: Array, tau: float) -> Array:
    """Run the notebook's ``batch_step`` over the stream; one run only (no ensemble axes)."""
    if theta0.ndim != 2:
        raise ValueError(f"naive_sgd runs one network; theta0 must be (m, d+2), got {theta0.shape}")
    net = Network(theta0)
    for s in range(x.shape[0]):
        net.batch_step(x[s], y[s], tau)
    return net.give_theta()


# ---------------------------------------------------------------------------------------
# (2) a plain PyTorch CPU loop
# ---------------------------------------------------------------------------------------
def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_sgd(theta0: Array, x: Array, y: Array, tau: float) -> Array:
    """The PyTorch loop a user would write: autograd on ½·mean (f − y)², optim.SGD(lr=τ).

    ``∇`` of the minibatch loss L = (1/2B) Σ_k (f(x_k) − y_k)² with f the mean over
    neurons is exactly the notebook's averaged gradient, so ``SGD(lr=τ)`` is its step
    (up to torch's ReLU'(0) = 0, a null event for Gaussian inputs).
    """
    import torch

    if theta0.ndim != 2:
        raise ValueError(f"torch_sgd runs one network; theta0 must be (m, d+2), got {theta0.shape}")
    m = theta0.shape[0]
    a = torch.tensor(theta0[:, 0], dtype=torch.float64, requires_grad=True)
    W = torch.tensor(theta0[:, 1:-1], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(theta0[:, -1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([a, W, b], lr=tau)
    xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    ys = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64))
    for s in range(xs.shape[0]):
        opt.zero_grad()
        f = torch.relu(xs[s] @ W.T + b) @ a / m
        loss = 0.5 * ((f - ys[s]) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return torch.cat([a[:, None], W, b[:, None]], dim=1).numpy().copy()


# ---------------------------------------------------------------------------------------
# (3) a straightforward vectorised numpy step
# ---------------------------------------------------------------------------------------
def numpy_step(theta: Array, x: Array, y: Array, tau: float) -> None:
    """One SGD step in place on ``theta (..., m, d+2)`` with ``x (..., B, d)``, ``y (..., B)``."""
    m, batch = theta.shape[-2], x.shape[-2]
    a = theta[..., 0]
    u = x @ np.swapaxes(theta[..., 1:-1], -1, -2) + theta[..., None, :, -1]  # (..., B, m)
    s = np.maximum(u, 0.0)
    ds = (u >= 0.0).astype(theta.dtype)
    r = (s @ a[..., :, None])[..., 0] / m - y  # (..., B)
    rb = r * (tau / (m * batch))
    ga = (rb[..., None, :] @ s)[..., 0, :]  # (..., m)
    c = rb[..., :, None] * ds  # (..., B, m)
    gw = np.swapaxes(c, -1, -2) @ x  # (..., m, d)
    gb = c.sum(axis=-2)  # (..., m)
    theta[..., 1:-1] -= a[..., :, None] * gw
    theta[..., -1] -= a * gb
    theta[..., 0] -= ga


def numpy_sgd(theta0: Array, x: Array, y: Array, tau: float) -> Array:
    """Run :func:`numpy_step` over the stream; ensemble axes of ``theta0`` are vectorised."""
    theta = np.array(theta0, dtype=np.float64, copy=True)
    for s in range(x.shape[0]):
        numpy_step(theta, x[s], y[s], tau)
    return theta


# ---------------------------------------------------------------------------------------
# (4) not a peer: the matrix products of the run alone, a floor for every implementation
# ---------------------------------------------------------------------------------------
def matmul_floor(theta0: Array, x: Array) -> Any:
    r"""Return a function doing only the two matrix products of every step of the run.

    u = X Wᵀ (B × m) and ∇_W = Cᵀ X (m × d), 4·B·m·d flops per step, in BLAS, on
    preallocated arrays: the least time any implementation of the step that computes them
    with this BLAS can take (the element-wise work, B·m·(4d + 9) − 4Bmd flops, comes on
    top).  ``theta0 (m, d+2)``, ``x (n_steps, B, d)``.

    .. math:: t_{\text{floor}} = \sum_{\text{steps}} t(XW^\top) + t(C^\top X)
    """
    w_t = np.ascontiguousarray(theta0[:, 1:-1].T)
    u = np.empty((x.shape[1], theta0.shape[0]))
    gw = np.empty((theta0.shape[0], x.shape[2]))

    def run() -> Array:
        for s in range(x.shape[0]):
            np.matmul(x[s], w_t, out=u)
            np.matmul(u.T, x[s], out=gw)
        return gw

    return run

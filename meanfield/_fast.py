r"""Compiled SGD kernels (numba), checked against the numpy reference of :mod:`meanfield.sgd`.

One SGD step on a minibatch (x_k, y_k)_{k ≤ B} of one run computes

.. math::

    u_{ki} = w_i\cdot x_k + b_i,\quad r_k = \sum_i p_i a_i\sigma(u_{ki}) - y_k,\quad
    \theta_i \leftarrow \theta_i - \eta\Big(\frac1B\sum_k r_k\big(\sigma(u_{ki}),\,
    a_i\sigma'(u_{ki})x_k,\, a_i\sigma'(u_{ki})\big) + \lambda\theta_i\Big)

(Mei, Montanari & Nguyen 2018; Chizat & Bach 2018), exactly as
:func:`~meanfield.velocity.residual_on_sample` and
:func:`~meanfield.velocity.first_variation_grad_on_sample` do, in the same order of
floating-point operations except for the order of the sums (so the two agree to rounding,
about 1e-16 per step).  Two engines:

* fused (``"serial"``, ``"ensemble"``): a whole block of steps in one compiled call,
  looping over steps, samples, neurons and input coordinates, with the positions held as
  columns ``(d+2, m)`` so that the inner loops vectorise.  A run's arithmetic does not
  depend on the ensemble it belongs to, so an ensemble member equals the same run made
  alone, bitwise.  The sum over neurons is taken in chunks of :data:`CHUNK` neurons,
  in order.  An ensemble shares its runs among threads (one per core; the kernels
  release the GIL).  No OpenMP: the engines are safe in threads and across ``fork``.
* ``"blas"``: for large m·d, the two matrix products of a step (u = X Wᵀ and the
  gradient Cᵀ X) go to BLAS, the element-wise work between them to compiled loops
  over preallocated buffers, in place.

numba is optional: without it :func:`available` is ``False`` and :mod:`meanfield.sgd`
uses its numpy reference.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
"""Whether numba is installed (it is imported, and the kernels compiled, on first use)."""
_READY = False
_LOCK = threading.Lock()

__all__ = ["ACTIVATION_CODES", "CHUNK", "HAVE_NUMBA", "Engine", "available", "make_engine"]

Array = NDArray[np.floating]

#: Integer codes of the built-in activations in the kernels.
ACTIVATION_CODES = {"relu": 0, "sigmoid": 1, "tanh": 2, "erf": 3}
#: Neurons per chunk of the sum f(x) = Σᵢ pᵢaᵢσ(uᵢ) (partial sums per chunk, then the
#: chunks in order: a fixed order, whatever the cache blocking).
CHUNK = 2048
#: Elements (sample × neuron) of a cache block of the fused kernels.
_BLOCK_ELEMS = 2048
#: BLAS engine from this input dimension d and B·m·d ≥ _BLAS_WORK: below, a threaded BLAS
#: call (wake-up, idle workers spinning while the element-wise loops run) costs more
#: than the fused loops.
_BLAS_MIN_D = 16
_BLAS_WORK = 1 << 24
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_KERNELS = [
    "_sigma_rows",
    "_sigma_both",
    "_forward_chunk",
    "_backward_chunk",
    "_load_batch",
    "_run_serial",
    "_residuals",
    "_update_cols",
    "_transpose",
    "_run_replicas",
    "_blas_forward",
    "_blas_backward",
]


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _pool() -> ThreadPoolExecutor:
    """Worker threads for ensembles (one pool per process: a forked child gets its own)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(_workers(), thread_name_prefix="meanfield"))
    return _POOL[1]


def available() -> bool:
    """Return whether numba is installed (the compiled engines can run)."""
    return HAVE_NUMBA


def _compile() -> None:
    """Import numba and turn the kernels of this module into compiled functions (once).

    The kernels are plain Python functions until then, so importing :mod:`meanfield`
    does not import numba; compiled code is cached on disk (``cache=True``).
    """
    global _READY
    with _LOCK:
        if _READY:
            return
        import numba

        g = globals()
        for name in _KERNELS:
            g[name] = numba.njit(cache=True, fastmath=False, nogil=True)(g[name])
        _READY = True


# -- activations: value and derivative, the formulas of meanfield.activations ----------
def _sigma_rows(u: Array, nr: int, nc: int, act: int) -> None:  # pragma: no cover
    if act == 0:
        for a in range(nr):
            for b in range(nc):
                v = u[a, b]
                u[a, b] = 0.0 if v < 0.0 else v  # np.maximum(v, 0): NaN stays NaN
    elif act == 1:
        for a in range(nr):
            for b in range(nc):
                u[a, b] = 1.0 / (1.0 + math.exp(-u[a, b]))  # scipy.special.expit
    elif act == 2:
        for a in range(nr):
            for b in range(nc):
                u[a, b] = math.tanh(u[a, b])
    else:
        for a in range(nr):
            for b in range(nc):
                u[a, b] = math.erf(u[a, b])


def _sigma_both(
    u: Array, s: Array, ds: Array, nr: int, nc: int, act: int
) -> None:  # pragma: no cover
    if act == 0:
        for a in range(nr):
            for b in range(nc):
                v = u[a, b]
                s[a, b] = 0.0 if v < 0.0 else v
                ds[a, b] = 1.0 if v >= 0.0 else 0.0  # σ'(0) = 1, the notebook's drelu
    elif act == 1:
        for a in range(nr):
            for b in range(nc):
                v = u[a, b]
                s[a, b] = 1.0 / (1.0 + math.exp(-v))
                ds[a, b] = s[a, b] * (1.0 / (1.0 + math.exp(v)))  # σ(u)σ(−u)
    elif act == 2:
        for a in range(nr):
            for b in range(nc):
                v = u[a, b]
                s[a, b] = math.tanh(v)
                e = math.exp(-2.0 * abs(v))
                ds[a, b] = 4.0 * e / ((1.0 + e) * (1.0 + e))
    else:
        for a in range(nr):
            for b in range(nc):
                v = u[a, b]
                s[a, b] = math.erf(v)
                t = min(abs(v), 64.0)
                ds[a, b] = _TWO_OVER_SQRT_PI * math.exp(-(t * t))


# -- fused engine ----------------------------------------------------------------------
def _forward_chunk(
    ts: Array, p: Array, xt: Array, c0: int, c1: int, act: int, ut: Array, fc: Array
) -> None:  # pragma: no cover
    """fc[k] = Σ_{c0 ≤ i < c1} pᵢaᵢσ(uₖᵢ), summed over i in order (ts: columns (d+2, m))."""
    d, bsz = xt.shape
    nbm = ut.shape[0]
    for k in range(bsz):
        fc[k] = 0.0
    for i0 in range(c0, c1, nbm):
        i1 = min(i0 + nbm, c1)
        for i in range(i0, i1):
            w = ts[1, i]
            for k in range(bsz):
                ut[i - i0, k] = xt[0, k] * w
            for j in range(1, d):
                w = ts[1 + j, i]
                for k in range(bsz):
                    ut[i - i0, k] += xt[j, k] * w
            w = ts[d + 1, i]
            for k in range(bsz):
                ut[i - i0, k] += w
        _sigma_rows(ut, i1 - i0, bsz, act)
        for i in range(i0, i1):
            pa = p[i] * ts[0, i]
            for k in range(bsz):
                fc[k] += ut[i - i0, k] * pa


def _backward_chunk(
    ts: Array,
    new: Array,
    xb: Array,
    rs: Array,
    c0: int,
    c1: int,
    act: int,
    eta: float,
    lam: float,
    u: Array,
    s: Array,
    ds: Array,
    g: Array,
) -> float:  # pragma: no cover
    """Write the stepped neurons c0 ≤ i < c1 into ``new``; return the sum of their entries."""
    bsz, d = xb.shape
    nbm = u.shape[1]
    total = 0.0
    for i0 in range(c0, c1, nbm):
        nb = min(i0 + nbm, c1) - i0
        for k in range(bsz):  # u_ki, the same operations in the same order as the forward
            x = xb[k, 0]
            for q in range(nb):
                u[k, q] = x * ts[1, i0 + q]
            for j in range(1, d):
                x = xb[k, j]
                for q in range(nb):
                    u[k, q] += x * ts[1 + j, i0 + q]
            for q in range(nb):
                u[k, q] += ts[d + 1, i0 + q]
        _sigma_both(u, s, ds, bsz, nb, act)
        for c in range(d + 2):
            for q in range(nb):
                g[c, q] = 0.0
        for k in range(bsz):
            r = rs[k]
            for q in range(nb):
                g[0, q] += r * s[k, q]
                ds[k, q] = r * ds[k, q] * ts[0, i0 + q]  # c_ki = r_k σ'(u_ki) a_i
            for j in range(d):
                x = xb[k, j]
                for q in range(nb):
                    g[1 + j, q] += ds[k, q] * x
            for q in range(nb):
                g[d + 1, q] += ds[k, q]
        total += _update_cols(ts, new, g, i0, i0 + nb, i0, eta, lam)
    return total


def _update_cols(
    src: Array, dst: Array, g: Array, c0: int, c1: int, goff: int, eta: float, lam: float
) -> float:  # pragma: no cover
    """Set columns c0 ≤ i < c1 of dst to src − η(g + λ src); return the sum of the new entries.

    ``g[:, i − goff]`` is the gradient of column i; its last row is scratch space for
    per-column partial sums (so the loop stays vectorised).  ``dst`` may be ``src``.
    """
    dd = src.shape[0]
    tq = g[dd]
    for q in range(c1 - c0):
        tq[c0 - goff + q] = 0.0
    for c in range(dd):
        for q in range(c1 - c0):
            th = src[c, c0 + q]
            gc = g[c, c0 - goff + q]
            if lam != 0.0:
                gc = gc + lam * th
            v = gc * (-eta) + th
            dst[c, c0 + q] = v
            tq[c0 - goff + q] += v
    total = 0.0
    for q in range(c1 - c0):
        total += tq[c0 - goff + q]
    return total


def _load_batch(
    x: Array, y: Array, s: int, r: int, xt: Array, xb: Array, yb: Array
) -> None:  # pragma: no cover
    rx = r if x.shape[1] > 1 else 0
    ry = r if y.shape[1] > 1 else 0
    bsz, d = xb.shape
    for k in range(bsz):
        yb[k] = y[s, ry, k]
        for j in range(d):
            v = x[s, rx, k, j]
            xb[k, j] = v
            xt[j, k] = v


def _run_serial(
    state: Array,
    p: Array,
    x: Array,
    y: Array,
    r: int,
    n: int,
    act: int,
    eta: float,
    lam: float,
    nbm: int,
) -> int:  # pragma: no cover
    """Step one run ``n`` times; ``state[0]`` (columns (d+2, m)) in, result in ``state[0]``.

    Stops before the first step whose new positions do not sum to a finite number and
    returns the number of steps done.
    """
    _, dd, m = state.shape
    bsz, d = x.shape[2], x.shape[3]
    xt = np.empty((d, bsz))
    xb = np.empty((bsz, d))
    yb = np.empty(bsz)
    f = np.empty(bsz)
    fc = np.empty(bsz)
    rs = np.empty(bsz)
    ut = np.empty((nbm, bsz))
    u = np.empty((bsz, nbm))
    s = np.empty((bsz, nbm))
    ds = np.empty((bsz, nbm))
    g = np.empty((dd + 1, nbm))
    cur = 0
    done = 0
    for step in range(n):
        _load_batch(x, y, step, r, xt, xb, yb)
        for k in range(bsz):
            f[k] = 0.0
        for c0 in range(0, m, CHUNK):
            _forward_chunk(state[cur], p, xt, c0, min(c0 + CHUNK, m), act, ut, fc)
            for k in range(bsz):
                f[k] += fc[k]
        for k in range(bsz):
            rs[k] = (f[k] - yb[k]) / bsz
        total = 0.0
        for c0 in range(0, m, CHUNK):
            total += _backward_chunk(
                state[cur],
                state[1 - cur],
                xb,
                rs,
                c0,
                min(c0 + CHUNK, m),
                act,
                eta,
                lam,
                u,
                s,
                ds,
                g,
            )
        if not math.isfinite(total):
            break
        cur = 1 - cur
        done += 1
    if cur == 1:
        state[0, :, :] = state[1]
    return done


def _run_replicas(
    states: Array,
    p: Array,
    x: Array,
    y: Array,
    r0: int,
    r1: int,
    n: int,
    act: int,
    eta: float,
    lam: float,
    nbm: int,
    done: NDArray[np.int64],
) -> None:  # pragma: no cover
    """:func:`_run_serial` for runs r0 ≤ r < r1 of ``states (R, 2, d+2, m)``."""
    for r in range(r0, r1):
        done[r] = _run_serial(states[r], p[r], x, y, r, n, act, eta, lam, nbm)


# -- BLAS engine: matrix products in BLAS, the element-wise work fused ------------------
def _blas_forward(u: Array, b: Array, pa: Array, fc: Array, act: int) -> None:  # pragma: no cover
    """Add b to u in place; set fc[c, k] = Σ_{i in chunk c} paᵢ σ(u_ki), summed in order."""
    bsz, m = u.shape
    row = np.empty((4, min(CHUNK, m)))
    for c in range(fc.shape[0]):
        c0 = c * CHUNK
        nb = min(c0 + CHUNK, m) - c0
        for k0 in range(0, bsz, 4):
            kn = min(4, bsz - k0)
            for kk in range(kn):
                for q in range(nb):
                    v = u[k0 + kk, c0 + q] + b[c0 + q]
                    u[k0 + kk, c0 + q] = v
                    row[kk, q] = v
            _sigma_rows(row, kn, nb, act)
            if kn == 4:  # four independent sums at once (each still in order)
                a0 = a1 = a2 = a3 = 0.0
                for q in range(nb):
                    w = pa[c0 + q]
                    a0 += row[0, q] * w
                    a1 += row[1, q] * w
                    a2 += row[2, q] * w
                    a3 += row[3, q] * w
                fc[c, k0], fc[c, k0 + 1], fc[c, k0 + 2], fc[c, k0 + 3] = a0, a1, a2, a3
            else:
                for kk in range(kn):
                    acc = 0.0
                    for q in range(nb):
                        acc += row[kk, q] * pa[c0 + q]
                    fc[c, k0 + kk] = acc


def _residuals(fc: Array, y: Array, rs: Array) -> None:  # pragma: no cover
    """rs_k = (Σ_c fc[c, k] − y_k) / B, the chunks summed in order."""
    bsz = rs.shape[0]
    for k in range(bsz):
        f = 0.0
        for c in range(fc.shape[0]):
            f += fc[c, k]
        rs[k] = (f - y[k]) / bsz


def _blas_backward(
    u: Array, a: Array, rs: Array, ga: Array, gb: Array, act: int
) -> None:  # pragma: no cover
    """Set ga = Σ_k r_k σ(u_k), u ← c = r σ'(u) a in place, gb = Σ_k c_k (chunk by chunk)."""
    bsz, m = u.shape
    nbm = min(CHUNK, m)
    row = np.empty((1, nbm))
    s = np.empty((1, nbm))
    ds = np.empty((1, nbm))
    for c0 in range(0, m, CHUNK):
        nb = min(c0 + CHUNK, m) - c0
        for q in range(nb):
            ga[c0 + q] = 0.0
            gb[c0 + q] = 0.0
        for k in range(bsz):
            r = rs[k]
            if act == 0:  # ReLU inline: the same operations, one pass
                for q in range(nb):
                    v = u[k, c0 + q]
                    cc = r * (1.0 if v >= 0.0 else 0.0) * a[c0 + q]
                    ga[c0 + q] += r * (0.0 if v < 0.0 else v)
                    u[k, c0 + q] = cc
                    gb[c0 + q] += cc
                continue
            for q in range(nb):
                row[0, q] = u[k, c0 + q]
            _sigma_both(row, s, ds, 1, nb, act)
            for q in range(nb):
                ga[c0 + q] += r * s[0, q]
                cc = r * ds[0, q] * a[c0 + q]
                u[k, c0 + q] = cc
                gb[c0 + q] += cc


def _transpose(src: Array, dst: Array) -> None:  # pragma: no cover
    """dst[j, i] = src[i, j], in 32 × 32 tiles (a strided copy of a large array is slow)."""
    n0, n1 = src.shape
    for i0 in range(0, n0, 32):
        for j0 in range(0, n1, 32):
            for i in range(i0, min(i0 + 32, n0)):
                for j in range(j0, min(j0 + 32, n1)):
                    dst[j, i] = src[i, j]


def _run_blas(
    state: Array,
    p: Array,
    x: Array,
    y: Array,
    r: int,
    n: int,
    act: int,
    eta: float,
    lam: float,
    bufs: dict[str, Array],
) -> int:
    """Run the BLAS engine on columns ``state[0]`` (d+2, m), in place; else as :func:`_run_serial`.

    ``bufs`` keeps the work arrays between calls.
    """
    _, dd, m = state.shape
    bsz, d = x.shape[2], x.shape[3]
    if "u" not in bufs or bufs["u"].shape != (bsz, m):
        bufs.update(u=np.empty((bsz, m)), g=np.empty((dd + 1, m)), pa=np.empty(m))
        bufs.update(fc=np.empty(((m + CHUNK - 1) // CHUNK, bsz)), rs=np.empty(bsz))
    u, g, pa, fc, rs = bufs["u"], bufs["g"], bufs["pa"], bufs["fc"], bufs["rs"]
    src = state[0]
    rx = r if x.shape[1] > 1 else 0
    ry = r if y.shape[1] > 1 else 0
    done = 0
    for step in range(n):  # (called under np.errstate: a non-finite step is detected below)
        xs = np.ascontiguousarray(x[step, rx])
        np.matmul(xs, src[1 : d + 1], out=u)
        np.multiply(p, src[0], out=pa)
        _blas_forward(u, src[d + 1], pa, fc, act)
        _residuals(fc, y[step, ry], rs)
        _blas_backward(u, src[0], rs, g[0], g[d + 1], act)
        np.matmul(xs.T, u, out=g[1 : d + 1])
        if not math.isfinite(_update_cols(src, src, g, 0, m, 0, eta, lam)):
            break  # spoilt in place: Engine.run replays the block
        done += 1
    return done


# -- dispatch ---------------------------------------------------------------------------
class Engine:
    """A compiled SGD engine for one configuration (activation, m, d, B, number of runs).

    ``kind`` says which kernels run: ``"serial"`` (one run), ``"ensemble"`` (the runs
    shared among threads, one per core) or ``"blas"`` (large m·d, whatever R).  The first
    two do the same arithmetic, so an ensemble member gives the bits of its solo run; the
    choice of ``"blas"`` depends on (m, d, B) only.

    Parameters
    ----------
    act : int
        Activation code (:data:`ACTIVATION_CODES`).
    m, d, batch, runs : int
        Width, input dimension, batch size B and number of runs R.
    """

    def __init__(self, act: int, m: int, d: int, batch: int, runs: int) -> None:
        _compile()
        self.act, self.m, self.d, self.batch, self.runs = act, m, d, batch, runs
        self.block = max(8, min(m, CHUNK, _BLOCK_ELEMS // batch))
        self._bufs: dict[str, Array] = {}
        if d >= _BLAS_MIN_D and m * batch * d >= _BLAS_WORK:
            self.kind = "blas"
        else:
            self.kind = "ensemble" if runs > 1 else "serial"

    def _go(
        self, states: Array, p: Array, x: Array, y: Array, n: int, eta: float, lam: float
    ) -> int:
        runs = states.shape[0]
        done = np.zeros(runs, dtype=np.int64)
        a, nb = self.act, self.block
        if self.kind == "blas":
            for r in range(runs):
                done[r] = _run_blas(states[r], p[r], x, y, r, n, a, eta, lam, self._bufs)
            return int(done.min())
        # runs in contiguous shares, one per core: the kernels release the GIL
        cuts = np.linspace(0, runs, min(runs, _workers()) + 1).astype(int).tolist()
        args = (n, a, eta, lam, nb, done)
        futures = [
            _pool().submit(_run_replicas, states, p, x, y, r0, r1, *args)
            for r0, r1 in itertools.pairwise(cuts[1:])
        ]
        _run_replicas(states, p, x, y, cuts[0], cuts[1], *args)
        for f in futures:
            f.result()
        return int(done.min())

    def run(
        self, theta: Array, masses: Array, x: Array, y: Array, eta: float, lam: float
    ) -> tuple[Array, int]:
        r"""Advance every run by the S steps of ``x``, or up to the first non-finite step.

        .. math:: \theta^{s+1} = \theta^s - \eta\big(\widehat{\nabla J}(\theta^s)
            + \lambda\theta^s\big)

        Parameters
        ----------
        theta : ndarray, shape (R, m, d+2)
            Positions of the R runs.
        masses : ndarray, shape (R, m) or (m,)
            Masses pᵢ.
        x : ndarray, shape (S, R or 1, B, d)
            Inputs of each step (one stream per run, or one shared).
        y : ndarray, shape (S, R or 1, B)
            Targets.
        eta, lam : float
            Step η and weight decay λ.

        Returns
        -------
        theta : ndarray, shape (R, m, d+2)
            Positions after ``done`` steps (a new array).
        done : int
            S; or, when a run's next step is not finite, the number of steps after which
            every run is still finite (the caller redoes that step with the reference).
        """
        n = x.shape[0]
        runs, m, dd = theta.shape
        p = np.ascontiguousarray(np.broadcast_to(masses, (runs, m)), dtype=np.float64)
        states = np.empty((runs, 1 if self.kind == "blas" else 2, dd, m))  # BLAS: in place
        for r in range(runs):
            _transpose(theta[r], states[r, 0])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            done = self._go(states, p, x, y, n, eta, lam) if n else 0
            if done < n:  # a run broke down: replay every run up to that step only
                for r in range(runs):
                    _transpose(theta[r], states[r, 0])
                self._go(states, p, x, y, done, eta, lam)
        out = np.empty_like(theta, dtype=np.float64)
        for r in range(runs):
            _transpose(states[r, 0], out[r])
        return out, done


def make_engine(
    backend: str, activation: Any, m: int, d: int, batch: int, runs: int
) -> Engine | None:
    """Return the compiled engine for ``backend``, or ``None`` for the numpy reference.

    Parameters
    ----------
    backend : {"auto", "numba", "numpy"}
        ``"numpy"``: the reference; ``"numba"``: the compiled engine (error when numba
        is missing or the activation is not built in); ``"auto"``: numba when it is
        installed and the activation is built in, else numpy.
    activation : Activation
        σ; only the built-in ones (:data:`ACTIVATION_CODES`) have compiled versions.
    m, d, batch, runs : int
        Width, input dimension, batch size and number of runs.

    Returns
    -------
    Engine or None
    """
    from meanfield.activations import ACTIVATIONS

    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'numpy'; got {backend!r}")
    if backend == "numpy":
        return None
    code = ACTIVATION_CODES.get(activation.name)
    builtin = code is not None and ACTIVATIONS.get(activation.name) is activation
    if backend == "numba":
        if not HAVE_NUMBA:
            raise ImportError("backend='numba' needs numba: pip install numba")
        if not builtin:
            raise ValueError(
                "backend='numba' supports the built-in activations "
                f"{sorted(ACTIVATION_CODES)}; got the custom activation {activation.name!r}"
            )
    if not (HAVE_NUMBA and builtin) or code is None:
        return None
    return Engine(code, m, d, batch, runs)

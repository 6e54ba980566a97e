r"""Compiled SGD kernels for one run of a small network (numba): the fused serial engine.

They compute the step of :mod:`meanfield._fast` (the formula is there) as
:func:`~meanfield.velocity.residual_on_sample` and
:func:`~meanfield.velocity.first_variation_grad_on_sample` do, up to the order of the sums
and to fused multiply-adds (one rounding for a·b + c, :func:`meanfield._simd.fma`) at fixed
places: u accumulates x_j w_j by fma after x₀w₀; the sums f, ∇_a, ∇_w and the update
θ − η(g + λθ) are fma's.  So they agree with the reference to rounding.

:func:`_run_serial` does a whole block of steps in one compiled call, looping over steps,
samples, neurons and input coordinates, with the positions held as columns ``(d+2, m)``
so that the inner loops vectorise over neurons.  The sum over neurons is taken in chunks
of :data:`CHUNK` neurons, in order.  The lanes engine (:mod:`meanfield._fast_lanes`)
does exactly these operations on 8 runs at once; the activations here are shared with
the other engines.

The functions are plain Python until :func:`meanfield._fast._compile` compiles them
(importing this module does not import numba); ``_fma`` is bound to the compiled
intrinsic there.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]

#: Neurons per chunk of the sum f(x) = Σᵢ pᵢaᵢσ(uᵢ) (partial sums per chunk, then the
#: chunks in order: a fixed order, whatever the cache blocking).
CHUNK = 2048
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
#: The functions compiled by :func:`meanfield._fast._compile`.
KERNELS = [
    "_sigma1",
    "_sigma_rows",
    "_sigma_both",
    "_forward_chunk",
    "_backward_chunk",
    "_load_batch",
    "_run_serial",
    "_update_cols",
    "_transpose",
]


def _fma(a: float, b: float, c: float) -> float:  # pragma: no cover
    """a·b + c; replaced by the compiled, singly rounded ``llvm.fma`` before compilation."""
    return a * b + c


# -- activations: value and derivative, the formulas of meanfield.activations ----------
def _sigma1(v: float, act: int, both: bool) -> tuple[float, float]:  # pragma: no cover
    """σ(v) and (when ``both``, else 0) σ'(v) for the smooth activations (act ≥ 1)."""
    if act == 1:
        s = 1.0 / (1.0 + math.exp(-v))  # scipy.special.expit
        return s, (s * (1.0 / (1.0 + math.exp(v))) if both else 0.0)  # σ(u)σ(−u)
    if act == 2:
        s = math.tanh(v)
        if not both:
            return s, 0.0
        e = math.exp(-2.0 * abs(v))
        return s, 4.0 * e / ((1.0 + e) * (1.0 + e))
    s = math.erf(v)
    if not both:
        return s, 0.0
    t = min(abs(v), 64.0)
    return s, _TWO_OVER_SQRT_PI * math.exp(-(t * t))


def _sigma_rows(u: Array, nr: int, nc: int, act: int) -> None:  # pragma: no cover
    if act == 0:
        for a in range(nr):
            for b in range(nc):
                v = u[a, b]
                u[a, b] = 0.0 if v < 0.0 else v  # np.maximum(v, 0): NaN stays NaN
        return
    for a in range(nr):
        for b in range(nc):
            u[a, b] = _sigma1(u[a, b], act, False)[0]


def _sigma_both(
    u: Array, s: Array, ds: Array, nr: int, nc: int, act: int
) -> None:  # pragma: no cover
    if act == 0:
        for a in range(nr):
            for b in range(nc):
                v = u[a, b]
                s[a, b] = 0.0 if v < 0.0 else v
                ds[a, b] = 1.0 if v >= 0.0 else 0.0  # σ'(0) = 1, the notebook's drelu
        return
    for a in range(nr):
        for b in range(nc):
            s[a, b], ds[a, b] = _sigma1(u[a, b], act, True)


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
                    ut[i - i0, k] = _fma(xt[j, k], w, ut[i - i0, k])
            w = ts[d + 1, i]
            for k in range(bsz):
                ut[i - i0, k] += w
        _sigma_rows(ut, i1 - i0, bsz, act)
        for i in range(i0, i1):
            pa = p[i] * ts[0, i]
            for k in range(bsz):
                fc[k] = _fma(ut[i - i0, k], pa, fc[k])


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
                    u[k, q] = _fma(x, ts[1 + j, i0 + q], u[k, q])
            for q in range(nb):
                u[k, q] += ts[d + 1, i0 + q]
        _sigma_both(u, s, ds, bsz, nb, act)
        for c in range(d + 2):
            for q in range(nb):
                g[c, q] = 0.0
        for k in range(bsz):
            r = rs[k]
            for q in range(nb):
                g[0, q] = _fma(r, s[k, q], g[0, q])
                ds[k, q] = r * ds[k, q] * ts[0, i0 + q]  # c_ki = r_k σ'(u_ki) a_i
            for j in range(d):
                x = xb[k, j]
                for q in range(nb):
                    g[1 + j, q] = _fma(ds[k, q], x, g[1 + j, q])
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
                gc = _fma(lam, th, gc)
            v = _fma(gc, -eta, th)
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


def _transpose(src: Array, dst: Array) -> None:  # pragma: no cover
    """dst[j, i] = src[i, j], in 32 × 32 tiles (a strided copy of a large array is slow)."""
    n0, n1 = src.shape
    for i0 in range(0, n0, 32):
        for j0 in range(0, n1, 32):
            for i in range(i0, min(i0 + 32, n0)):
                for j in range(j0, min(j0 + 32, n1)):
                    dst[j, i] = src[i, j]

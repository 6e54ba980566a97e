r"""Compiled SGD kernels for one run at a time (numba): the fused and the BLAS engines.

They compute the step of :mod:`meanfield._fast` (the formula is there) as
:func:`~meanfield.velocity.residual_on_sample` and
:func:`~meanfield.velocity.first_variation_grad_on_sample` do, up to the order of the sums
and to fused multiply-adds (one rounding for a·b + c, :func:`meanfield._simd.fma`) at fixed
places: u accumulates x_j w_j by fma after x₀w₀; the sums f, ∇_a, ∇_w and the update
θ − η(g + λθ) are fma's.  So they agree with the reference to rounding.

* fused (:func:`_run_serial`): a whole block of steps in one compiled call, looping over
  steps, samples, neurons and input coordinates, with the positions held as columns
  ``(d+2, m)`` so that the inner loops vectorise over neurons.  The sum over neurons is
  taken in chunks of :data:`CHUNK` neurons, in order.
* BLAS (:func:`_run_blas`): for large m·d, the two matrix products of a step (u = X Wᵀ
  and the gradient Cᵀ X) go to BLAS, the element-wise work between them to compiled
  loops over preallocated buffers, in place.

The functions are plain Python until :func:`meanfield._fast._compile` compiles them
(importing this module does not import numba); ``_fma`` is bound to the compiled
intrinsic there.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]

#: Neurons per chunk of the sum f(x) = Σᵢ pᵢaᵢσ(uᵢ) (partial sums per chunk, then the
#: chunks in order: a fixed order, whatever the cache blocking).
CHUNK = 2048
#: Neurons per tile of the BLAS engine: its element-wise work is shared among threads
#: tile by tile, and f sums the tiles' partial sums in order.
TILE = 512
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
    "_residuals",
    "_update_cols",
    "_transpose",
    "_blas_forward",
    "_blas_backward",
    "_update_rows",
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


# -- BLAS engine: matrix products in BLAS, the element-wise work fused ------------------
def _blas_forward(
    u: Array, theta: Array, p: Array, fc: Array, act: int, t0: int, t1: int
) -> None:  # pragma: no cover
    """For tiles t0 ≤ t < t1: fc[t, k] = Σ_{i in t} pᵢaᵢσ(u_ki + bᵢ) in order (u = X Wᵀ)."""
    bsz, m = u.shape
    d = theta.shape[1] - 2
    row = np.empty((4, TILE))
    pa = np.empty(TILE)
    bb = np.empty(TILE)
    for t in range(t0, t1):
        c0 = t * TILE
        nb = min(c0 + TILE, m) - c0
        for q in range(nb):
            pa[q] = p[c0 + q] * theta[c0 + q, 0]
            bb[q] = theta[c0 + q, d + 1]
        for k0 in range(0, bsz, 4):
            kn = min(4, bsz - k0)
            for kk in range(kn):
                for q in range(nb):
                    row[kk, q] = u[k0 + kk, c0 + q] + bb[q]
            _sigma_rows(row, kn, nb, act)
            if kn == 4:  # four independent sums at once (each still in order)
                a0 = a1 = a2 = a3 = 0.0
                for q in range(nb):
                    w = pa[q]
                    a0 = _fma(row[0, q], w, a0)
                    a1 = _fma(row[1, q], w, a1)
                    a2 = _fma(row[2, q], w, a2)
                    a3 = _fma(row[3, q], w, a3)
                fc[t, k0], fc[t, k0 + 1], fc[t, k0 + 2], fc[t, k0 + 3] = a0, a1, a2, a3
            else:
                for kk in range(kn):
                    acc = 0.0
                    for q in range(nb):
                        acc = _fma(row[kk, q], pa[q], acc)
                    fc[t, k0 + kk] = acc


def _residuals(fc: Array, y: Array, rs: Array) -> None:  # pragma: no cover
    """rs_k = (Σ_c fc[c, k] − y_k) / B, the chunks summed in order."""
    bsz = rs.shape[0]
    for k in range(bsz):
        f = 0.0
        for c in range(fc.shape[0]):
            f += fc[c, k]
        rs[k] = (f - y[k]) / bsz


def _blas_backward(
    u: Array, theta: Array, rs: Array, ga: Array, gb: Array, act: int, t0: int, t1: int
) -> None:  # pragma: no cover
    """Tiles t0 ≤ t < t1, with u + b: ga = Σ_k r_k σ(u_k), u ← c = r σ'(u) a, gb = Σ_k c_k."""
    bsz, m = u.shape
    d = theta.shape[1] - 2
    a = np.empty(TILE)
    bb = np.empty(TILE)
    row = np.empty((1, TILE))
    s = np.empty((1, TILE))
    ds = np.empty((1, TILE))
    for t in range(t0, t1):
        c0 = t * TILE
        nb = min(c0 + TILE, m) - c0
        for q in range(nb):
            a[q] = theta[c0 + q, 0]
            bb[q] = theta[c0 + q, d + 1]
            ga[c0 + q] = 0.0
            gb[c0 + q] = 0.0
        for k in range(bsz):
            r = rs[k]
            if act == 0:  # ReLU inline: the same operations, one pass
                for q in range(nb):
                    v = u[k, c0 + q] + bb[q]
                    cc = r * (1.0 if v >= 0.0 else 0.0) * a[q]
                    ga[c0 + q] = _fma(r, 0.0 if v < 0.0 else v, ga[c0 + q])
                    u[k, c0 + q] = cc
                    gb[c0 + q] += cc
                continue
            for q in range(nb):
                row[0, q] = u[k, c0 + q] + bb[q]
            _sigma_both(row, s, ds, 1, nb, act)
            for q in range(nb):
                ga[c0 + q] = _fma(r, s[0, q], ga[c0 + q])
                cc = r * ds[0, q] * a[q]
                u[k, c0 + q] = cc
                gb[c0 + q] += cc


def _update_rows(
    theta: Array, ga: Array, gw: Array, gb: Array, eta: float, lam: float, tot: Array,
    t0: int, t1: int,
) -> None:  # fmt: skip  # pragma: no cover
    """Rows of tiles t0 ≤ t < t1: θ ← θ − η(g + λθ) in place; tot[t] = Σ of the new entries."""
    m, dd = theta.shape
    d = dd - 2
    for t in range(t0, t1):
        total = 0.0
        for i in range(t * TILE, min((t + 1) * TILE, m)):
            th = theta[i, 0]
            gc = ga[i] if lam == 0.0 else _fma(lam, th, ga[i])
            v = _fma(gc, -eta, th)
            theta[i, 0] = v
            acc = v
            for j in range(d):
                th = theta[i, 1 + j]
                gc = gw[i, j] if lam == 0.0 else _fma(lam, th, gw[i, j])
                v = _fma(gc, -eta, th)
                theta[i, 1 + j] = v
                acc += v
            th = theta[i, d + 1]
            gc = gb[i] if lam == 0.0 else _fma(lam, th, gb[i])
            v = _fma(gc, -eta, th)
            theta[i, d + 1] = v
            total += acc + v
        tot[t] = total


def _transpose(src: Array, dst: Array) -> None:  # pragma: no cover
    """dst[j, i] = src[i, j], in 32 × 32 tiles (a strided copy of a large array is slow)."""
    n0, n1 = src.shape
    for i0 in range(0, n0, 32):
        for j0 in range(0, n1, 32):
            for i in range(i0, min(i0 + 32, n0)):
                for j in range(j0, min(j0 + 32, n1)):
                    dst[j, i] = src[i, j]


_THREADED_TILES = 4


def _serially(fn: Callable[[int, int], None], n_items: int) -> None:
    fn(0, n_items)


def _run_blas(
    theta: Array, p: Array, x: Array, y: Array, r: int, n: int, hyper: tuple[int, float, float],
    bufs: dict[str, Array], in_threads: Callable[[Callable[[int, int], None], int], None],
) -> int:  # fmt: skip
    """Step run r's rows ``theta (m, d+2)`` in place ``n`` times with the BLAS engine.

    ``hyper`` = (activation code, η, λ).
    The element-wise work is shared among threads tile by tile (``in_threads(fn, n_tiles)``
    calls ``fn(t0, t1)`` on shares of the tiles); every tile does the same operations
    whatever the threads, so the result does not depend on them.  ``bufs`` keeps the work
    arrays between calls.  Stops (leaving ``theta`` spoilt) at the first step whose new
    positions do not sum to a finite number and returns the number of steps done.
    """
    act, eta, lam = hyper
    m = theta.shape[0]
    bsz, d = x.shape[2], x.shape[3]
    nt = (m + TILE - 1) // TILE
    if "u" not in bufs or bufs["u"].shape != (bsz, m) or bufs["gw"].shape != (m, d):
        bufs.update(u=np.empty((bsz, m)), gw=np.empty((m, d)), ga=np.empty(m), gb=np.empty(m))
        bufs.update(fc=np.empty((nt, bsz)), rs=np.empty(bsz), tot=np.empty(nt))
    u, gw, ga, gb, fc, rs, tot = (bufs[k] for k in ("u", "gw", "ga", "gb", "fc", "rs", "tot"))
    if nt < _THREADED_TILES:  # a few tiles: waking the threads costs more than they give
        in_threads = _serially
    w_t = theta[:, 1 : d + 1].T  # (d, m) view: BLAS reads it in place
    rx = r if x.shape[1] > 1 else 0
    ry = r if y.shape[1] > 1 else 0
    done = 0
    for step in range(n):  # (called under np.errstate: a non-finite step is detected below)
        xs = np.ascontiguousarray(x[step, rx])
        np.matmul(xs, w_t, out=u)
        in_threads(lambda t0, t1: _blas_forward(u, theta, p, fc, act, t0, t1), nt)
        _residuals(fc, y[step, ry], rs)
        in_threads(lambda t0, t1: _blas_backward(u, theta, rs, ga, gb, act, t0, t1), nt)
        np.matmul(u.T, xs, out=gw)
        in_threads(lambda t0, t1: _update_rows(theta, ga, gw, gb, eta, lam, tot, t0, t1), nt)
        if not math.isfinite(float(np.sum(tot))):
            break  # spoilt in place: Engine.run replays the block
        done += 1
    return done

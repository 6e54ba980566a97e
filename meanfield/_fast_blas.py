r"""Compiled SGD for large m·d (numba + BLAS): the step's two matrix products tile by tile.

The step of :mod:`meanfield._fast` on one run, with the neurons cut into tiles of
:data:`TILE` rows of θ ``(m, d+2)``, the tiles shared among threads (one per core).  A
thread does everything on its tiles, the products by a single-threaded BLAS called from
the compiled code (``np.dot`` in numba):

1. forward, per tile t: U_t = X W_tᵀ (``(B, n_t)``), then the tile's part of the output
   f_t(x_k) = Σ_{i∈t} pᵢaᵢσ(u_ki + bᵢ);
2. every thread: the residuals r_k = (Σ_t f_t(x_k) − y_k)/B (tiles in order);
3. backward, per tile: with v = u + b, ∇_a = Σ_k r_kσ(v_k), C = r σ'(v) a (in place of
   U_t), ∇_b = Σ_k c_k, ∇_W = C_tᵀ X, the update θ ← θ − η(∇ + λθ) of the tile's rows,
   and at once the forward pass 1 of the next step on the tile.

So the threads meet once per step, between 3 and 2, at a spin barrier (an atomic counter:
a sleeping thread takes tens of μs to wake); the partial outputs f_t and the finiteness
sums alternate between two buffers so that a thread already in the next step does not
overwrite what another is still reading.  Each thread copies its tiles' rows of θ into
contiguous arrays (a, W, b) for BLAS at the start and back at the end.

The element-wise work is written on vectors of W = 8 neurons (:mod:`meanfield._simd`);
the sum over a tile's neurons is taken lane by lane (lane l: neurons l, l + W, … in
order) and the lanes in a fixed tree (:func:`~meanfield._simd.vsum`); the sums over the
samples run in order.  Every tile does the same operations whatever the threads, so the
result does not depend on their number.  Compared with one BLAS call per product on the
whole network (the engine before this one: 2.0–2.5× the time of the products at d = 100),
the products of a tile run on both cores without waiting for one another, and each
element-wise pass follows the product it needs while the tile is in the cache; a step
then takes 1.0–1.1× the time of its two products alone (``benchmarks/README.md``).

This module imports numba: :mod:`meanfield._fast` imports it only when numba is there.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from meanfield._fast_lanes import _act
from meanfield._simd import (
    W,
    atomic_add,
    atomic_load,
    fma,
    os_yield,
    vfma,
    vload,
    vload_part,
    vsplat,
    vstore,
    vstore_part,
    vsum,
)

__all__ = ["TILE", "run"]

Array = NDArray[np.floating]
#: Neurons per tile (U_t is B × TILE).
TILE = 512
_jit = numba.njit(cache=True, nogil=True, fastmath=False)
#: Inlined into the kernel of each activation (:func:`_kernel`), where the activation
#: code is a constant: σ without a branch, and the sums kept in registers.
_inline = numba.njit(cache=True, nogil=True, fastmath=False, inline="always")



@_jit
def _tile_params(a_all, b_all, p, c0, nb):  # type: ignore[no-untyped-def]  # pragma: no cover
    """pᵢaᵢ, aᵢ and bᵢ of the tile's neurons, padded with zeros to whole vectors."""
    n = -(-nb // W) * W
    pa, a, b = np.zeros(n), np.zeros(n), np.zeros(n)
    for q in range(nb):
        a[q] = a_all[c0 + q]
        pa[q] = p[c0 + q] * a[q]
        b[q] = b_all[c0 + q]
    return pa, a, b


@_inline
def _forward_tile(u, a_all, b_all, p, c0, act, fc):  # type: ignore[no-untyped-def]  # pragma: no cover
    """fc[k] = Σ_q p_q a_q σ(u_kq + b_q) over the tile's neurons c0 + q (u = U_t).

    Four partial sums (vectors g ≡ 0, 1, 2, 3 mod 4, then the rest into the first), added
    as (s₀ + s₁) + (s₂ + s₃), then the lanes (:func:`~meanfield._simd.vsum`).
    """
    bsz, nb = u.shape
    pa, _, b = _tile_params(a_all, b_all, p, c0, nb)
    uf = u.reshape(-1)
    full, rest = nb // W, nb % W
    quad = full - full % 4
    for k in range(bsz):
        o = k * nb
        s0 = vsplat(0.0)
        s1, s2, s3 = s0, s0, s0
        for g in range(0, quad, 4):
            q = o + g * W
            s0 = _term(vload(uf, q), b, pa, g * W, act, s0)
            s1 = _term(vload(uf, q + W), b, pa, (g + 1) * W, act, s1)
            s2 = _term(vload(uf, q + 2 * W), b, pa, (g + 2) * W, act, s2)
            s3 = _term(vload(uf, q + 3 * W), b, pa, (g + 3) * W, act, s3)
        for g in range(quad, full):
            s0 = _term(vload(uf, o + g * W), b, pa, g * W, act, s0)
        if rest:
            s0 = _term(vload_part(uf, o + full * W, rest), b, pa, full * W, act, s0)
        fc[k] = vsum((s0 + s1) + (s2 + s3))


@_jit
def _term(u, b, pa, o, act, acc):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Return acc + pa σ(u + b) for the neurons at ``o``, rounded once (fma)."""
    return vfma(_act(u + vload(b, o), act, False)[0], vload(pa, o), acc)


@_inline
def _backward_tile(u, a_all, b_all, p, rs, c0, act, ga, gb):  # type: ignore[no-untyped-def]  # pragma: no cover
    """With v = u + b: ga = Σ_k r_k σ(v_k), u ← c = r σ'(v) a, gb = Σ_k c_k (k in order).

    Row by row (the rows of u are 4 kB apart: a column walk would hit one cache set), the
    sums in padded scratch arrays.
    """
    bsz, nb = u.shape
    _, a_pad, b_pad = _tile_params(a_all, b_all, p, c0, nb)
    sa_all, sb_all = np.zeros(a_pad.size), np.zeros(a_pad.size)
    uf = u.reshape(-1)
    full, rest = nb // W, nb % W
    for k in range(bsz):
        r = vsplat(rs[k])
        o = k * nb
        for g in range(full + (1 if rest else 0)):
            q = g * W
            v = (vload(uf, o + q) if g < full else vload_part(uf, o + q, rest)) + vload(b_pad, q)
            s, ds = _act(v, act, True)
            vstore(sa_all, q, vfma(r, s, vload(sa_all, q)))
            c = r * ds * vload(a_pad, q)
            if g < full:
                vstore(uf, o + q, c)
            else:
                vstore_part(uf, o + q, rest, c)
            vstore(sb_all, q, vload(sb_all, q) + c)
    ga[:nb] = sa_all[:nb]
    gb[:nb] = sb_all[:nb]


@_jit
def _step1(th, o, gc, eta, lam):  # type: ignore[no-untyped-def]  # pragma: no cover
    """th[o] ← th[o] − η(gc + λ th[o]) with fused multiply-adds; return the new value."""
    t = th[o]
    v = fma(gc if lam == 0.0 else fma(lam, t, gc), -eta, t)
    th[o] = v
    return v


@_jit
def _update_tile(a_all, w_all, b_all, ga, gw, gb, c0, eta, lam):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Neurons c0 ≤ i < c0 + n: θ ← θ − η(g + λθ), in place; return the sum of the new entries."""
    nb, d = gw.shape
    wf = w_all.reshape(-1)
    gwf = gw.reshape(-1)
    full = d // W
    meta, vlam = vsplat(-eta), vsplat(lam)
    tv = vsplat(0.0)
    ts = 0.0
    for q in range(nb):
        ro = (c0 + q) * d
        for j in range(full):
            t = vload(wf, ro + j * W)
            gc = vload(gwf, q * d + j * W)
            if lam != 0.0:
                gc = vfma(vlam, t, gc)
            v = vfma(gc, meta, t)
            vstore(wf, ro + j * W, v)
            tv = tv + v
        for j in range(full * W, d):  # the last d mod W coordinates of w
            ts += _step1(wf, ro + j, gwf[q * d + j], eta, lam)
        ts += _step1(a_all, c0 + q, ga[q], eta, lam) + _step1(b_all, c0 + q, gb[q], eta, lam)
    return ts + vsum(tv)


@_jit
def _residuals(fc, y, rs):  # type: ignore[no-untyped-def]  # pragma: no cover
    """rs_k = (Σ_t fc[t, k] − y_k) / B, the tiles summed in order."""
    bsz = rs.shape[0]
    for k in range(bsz):
        f = 0.0
        for t in range(fc.shape[0]):
            f += fc[t, k]
        rs[k] = (f - y[k]) / bsz


@_jit
def _barrier(ctr, target):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Arrive, then wait until ``target`` arrivals (ctr[0]); False if ctr[1] says abort.

    Spins (the steps are short: a sleeping thread takes tens of μs to wake), yielding the
    core now and then in case the other threads are not running.
    """
    atomic_add(ctr, 0, 1)
    spins = 0
    while atomic_load(ctr, 0) < target:
        if atomic_load(ctr, 1) != 0:
            return False
        spins += 1
        if spins % 4096 == 0:
            os_yield()
    return True


@_jit
def _load_rows(theta, a_all, w_all, b_all, c0, c1):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Rows c0 ≤ i < c1 of θ ``(m, d+2)`` into a, w, b."""
    d = w_all.shape[1]
    for i in range(c0, c1):
        a_all[i], b_all[i] = theta[i, 0], theta[i, d + 1]
        w_all[i] = theta[i, 1 : d + 1]


@_jit
def _store_rows(theta, a_all, w_all, b_all, c0, c1):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Rows c0 ≤ i < c1 of θ ``(m, d+2)`` from a, w, b."""
    d = w_all.shape[1]
    for i in range(c0, c1):
        theta[i, 0], theta[i, d + 1] = a_all[i], b_all[i]
        theta[i, 1 : d + 1] = w_all[i]


@_inline
def _share(theta, out, st, p, x, y, rx, ry, hyper, cuts, bufs, ctr, nw, act):  # type: ignore[no-untyped-def]  # pragma: no cover
    """One thread's part of ``n`` steps: its tiles ``cuts`` (t0, t1, TILE); returns steps done.

    The thread copies its tiles' rows of ``theta`` into ``st`` = (a, w, b) (contiguous, for
    BLAS), steps them there and writes them into ``out``.  ``bufs`` = (U, fc (2, n_t, B),
    tot (2, n_t)), the last two alternating between steps so that one barrier per step is
    enough.
    """
    a_all, w_all, b_all = st
    eta, lam, n = hyper
    t0, t1, tile = cuts
    us, fc, tot = bufs
    m, d = w_all.shape
    bsz = x.shape[2]
    rs = np.empty(bsz)
    gw_t, ga, gb = np.empty((tile, d)), np.empty(tile), np.empty(tile)  # one tile's gradient
    for t in range(t0, t1):
        c0, c1 = t * tile, min((t + 1) * tile, m)
        _load_rows(theta, a_all, w_all, b_all, c0, c1)
        u = us[bsz * c0 : bsz * c1].reshape((bsz, c1 - c0))
        np.dot(x[0, rx], w_all[c0:c1].T, u)
        _forward_tile(u, a_all, b_all, p, c0, act, fc[0, t])
    if not _barrier(ctr, nw):
        return 0
    done = 0
    for s in range(n):
        par = s % 2
        _residuals(fc[par], y[s, ry], rs)
        for t in range(t0, t1):
            c0, c1 = t * tile, min((t + 1) * tile, m)
            u = us[bsz * c0 : bsz * c1].reshape((bsz, c1 - c0))
            gw = gw_t[: c1 - c0]
            _backward_tile(u, a_all, b_all, p, rs, c0, act, ga, gb)
            np.dot(u.T, x[s, rx], gw)
            tot[par, t] = _update_tile(a_all, w_all, b_all, ga, gw, gb, c0, eta, lam)
            if s + 1 < n:
                np.dot(x[s + 1, rx], w_all[c0:c1].T, u)
                _forward_tile(u, a_all, b_all, p, c0, act, fc[1 - par, t])
        if not _barrier(ctr, (s + 2) * nw):
            return done
        total = 0.0
        for t in range(tot.shape[1]):
            total += tot[par, t]
        if not math.isfinite(total):
            break  # out is spoilt: Engine.run replays the block
        done += 1
    for t in range(t0, t1):
        _store_rows(out, a_all, w_all, b_all, t * tile, min((t + 1) * tile, m))
    return done


_KERNELS: dict[int, Any] = {}
_KERNELS_LOCK = threading.Lock()


def _kernel(act: int) -> Any:
    """Return :func:`_share` compiled for one activation (a constant in it)."""
    with _KERNELS_LOCK:
        if act not in _KERNELS:

            @_jit
            def share(th, out, st, p, x, y, rx, ry, hyper, cuts, bufs, ctr, nw):  # type: ignore[no-untyped-def]  # pragma: no cover
                return _share(th, out, st, p, x, y, rx, ry, hyper, cuts, bufs, ctr, nw, act)

            _KERNELS[act] = share
        return _KERNELS[act]


def run(
    theta: Array, out: Array, p: Array, x: Array, y: Array, r: int, n: int,
    hyper: tuple[int, float, float], bufs: dict[str, Any],
    in_threads: Callable[[Callable[[int, int], None], int], None], workers: int,
) -> int:  # fmt: skip
    """Step run r's rows ``theta (m, d+2)`` ``n`` times on ``workers`` threads, into ``out``.

    ``hyper`` = (activation code, η, λ); ``in_threads(fn, k)`` calls ``fn(i, i + 1)`` for
    i < k concurrently; BLAS must be limited to one thread by the caller.  ``bufs`` keeps
    the work arrays between calls.  Stops (leaving ``out`` spoilt) at the first step
    whose new positions do not sum to a finite number and returns the number of steps done.
    """
    act, eta, lam = hyper
    m = theta.shape[0]
    bsz, d = x.shape[2], x.shape[3]
    nt = -(-m // TILE)
    if bufs.get("key") != (bsz, m, d):
        bufs["key"] = (bsz, m, d)
        bufs["work"] = (np.empty(bsz * m), np.empty((2, nt, bsz)), np.empty((2, nt)))
        bufs["state"] = (np.empty(m), np.empty((m, d)), np.empty(m))  # (a, W, b)
    st = bufs["state"]
    th = np.ascontiguousarray(theta)
    nw = max(1, min(workers, nt))
    shares = np.linspace(0, nt, nw + 1).astype(int).tolist()
    ctr = np.zeros(2, dtype=np.int64)
    done = np.zeros(nw, dtype=np.int64)
    xc, yc = np.ascontiguousarray(x), np.ascontiguousarray(y)
    rx = r if x.shape[1] > 1 else 0
    ry = r if y.shape[1] > 1 else 0

    def share(w0: int, w1: int) -> None:
        for w in range(w0, w1):
            try:
                cuts = (shares[w], shares[w + 1], TILE)
                args = (rx, ry, (eta, lam, n), cuts, bufs["work"], ctr, nw)
                done[w] = _kernel(act)(th, out, st, p, xc, yc, *args)
            except BaseException:
                ctr[1] = 1  # the other threads stop waiting at their next barrier
                raise

    if not n:
        out[...] = theta
        return 0
    in_threads(share, nw)
    return int(done.min())

r"""Compiled closed-form ReLU and erf Gram blocks (numba), checked against the numpy reference.

:class:`meanfield.bivariate_normal._BvnBlock` evaluates the blocks K, A, B, G of
:func:`meanfield.kernels.kernel_block` with numpy, Φ₂ through Owen's T; this module
evaluates the same formulas pair by pair in compiled loops, Φ₂ by Genz's algorithm
(:mod:`meanfield._fast_bvn`).  Every other step (ρ, ρ̄, β, β′ from w·w′, the per-neuron
quantities of :class:`~meanfield.bivariate_normal._Side`, the formulas of
:mod:`meanfield.kernels`) repeats the reference's floating-point operations, so the two
paths differ only by the error of Φ₂ (about 1e-15) and by ulps of Φ and exp: the tests
hold them to 1e-12.

.. math:: K_{ij} = \mathbb E[\sigma(u_i)\,\sigma(u'_j)], \qquad
          \nabla_{w_i} K_{ij} = A_{ij} w_i + B_{ij} w'_j, \quad
          \partial_{b_i} K_{ij} = G_{ij}

A symmetric block evaluates each unordered pair once and writes both (i, j) and (j, i).
The block is cut into tiles of :data:`TILE` × :data:`TILE` pairs spread over threads
(the kernels release the GIL).  :func:`contract` sums cⱼK[i, j], cⱼA[i, j], … as it goes,
per tile and then over the tiles in a fixed order, without forming the block (the
exact population velocity needs only these sums).  Each entry and each sum is computed
by the same operations whatever the threads, so the result does not depend on them.

numba is optional: without it :func:`available` is ``False`` and the numpy reference
runs.  (The compiled code is cached on disk per module: after editing
:mod:`meanfield._fast_bvn`, clear the cache of this module too.)

References
----------
A. Genz. Numerical computation of rectangular bivariate and trivariate normal and t
probabilities. Statistics and Computing 14 (2004), 251–260.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from meanfield import _fast_bvn

__all__ = ["FIELDS", "GRAM_INLINE_D", "TILE", "available", "blocks", "contract"]

Array = NDArray[np.floating]


#: Rows of the per-neuron field arrays ``(N, len(FIELDS), n)`` passed to :func:`blocks`.
FIELDS = ("b", "s", "h", "scale", "cdf", "ccdf", "ph", "sf", "dos", "prob", "mean", "dd")
_B, _S, _H, _SC, _CDF, _CCDF, _PH, _SF, _DOS, _PROB, _MEAN, _DD = range(len(FIELDS))
_RELU, _ERF = 0, 1
TILE = 64
"""Rows and columns of a tile (one task of the threads)."""
GRAM_INLINE_D = 8
"""Up to this input dimension w·w′ is summed in the loops (no Gram matrix is formed)."""
_PARALLEL_MIN = 1 << 15  # smallest block (pairs) handed to worker threads
_RHO_SNAP = 1.0 - 2.0**-48
_TINY = 1e-300
_H_CLIP = _fast_bvn._H_CLIP
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

_KERNELS: dict[str, set[str]] = {
    "_relu_pair": set(), "_erf_pair": set(), "_tile": set(), "_run_tiles": set(), "_reduce": set(),
}
_INLINE = ("_relu_pair", "_erf_pair")


available = _fast_bvn.available
_compile = _fast_bvn.Jit(globals(), _KERNELS, _INLINE, needs=(_fast_bvn.JIT,)).compile


# -- the blocks ---------------------------------------------------------------------------
def _tile(
    kind: int, same: bool, grad: bool, contract: bool, inline: bool,
    n: int, i0: int, i1: int, j0: int, j1: int,
    P: Array, Q: Array, V: Array, A: Array, B: Array, G: Array,
    coef: Array, wr: Array, wc: Array, part: Array,
    pi: NDArray[np.int64], pj: NDArray[np.int64], geo: Array, idx: NDArray[np.int64],
    work: Array,
) -> None:  # pragma: no cover - compiled
    """Evaluate the pairs i0 ≤ i < i1, j0 ≤ j < j1 of batch n.

    w·w′ is ``V`` on entry, or with ``inline`` the sum over the input coordinates of
    ``wr`` and ``wc`` in order (as :func:`meanfield.bivariate_normal._gram` for d ≤
    :data:`GRAM_INLINE_D`).  A symmetric block (``same``) takes the pairs j ≥ i and also
    does (j, i).  Without ``contract`` the entries are written to V (overwriting w·w′), A,
    B, G; with it they are contracted with ``coef`` into ``part`` (2, TILE, 3 + d): row sums
    of the tile's rows (``part[0]``: Σⱼ cⱼK, Σⱼ cⱼA, Σⱼ cⱼG, Σⱼ cⱼB w′ⱼ) and, for ``same``,
    of its columns (``part[1]``), each in increasing order of the summed index.
    """
    rho, rbar, beta, betap, al, be = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    cdf_a, ccdf_a, cdf_b, ccdf_b, bvn, cc = geo[6], geo[7], geo[8], geo[9], geo[10], geo[11]
    m = 0
    for i in range(i0, i1):
        h_i, sc_i = P[n, _H, i], P[n, _SC, i]
        for j in range(max(j0, i) if same else j0, j1):
            if inline:  # w·w′ in the order of bivariate_normal._gram, no FMA
                c = wr[n, i, 0] * wc[n, j, 0]
                for t in range(1, wr.shape[2]):
                    c += wr[n, i, t] * wc[n, j, t]
            else:
                c = V[n, i, j]
            r = c * sc_i
            r *= Q[n, _SC, j]
            if abs(r) > _RHO_SNAP:
                r = 1.0 if r > 0.0 else -1.0
            if same and kind == _RELU and i == j:  # exact ρᵢᵢ = 1
                r = 1.0 if P[n, _S, i] > 0.0 else 0.0
            rb = (1.0 - r) * (1.0 + r)
            rb = math.sqrt(rb)
            den = max(rb, _TINY)
            h_j = Q[n, _H, j]
            pi[m], pj[m], cc[m], rho[m], rbar[m] = i, j, c, r, rb
            beta[m] = (h_i - r * h_j) / den
            betap[m] = (h_j - r * h_i) / den
            al[m] = max(-_H_CLIP, min(_H_CLIP, h_i))
            be[m] = max(-_H_CLIP, min(_H_CLIP, h_j))
            cdf_a[m], ccdf_a[m] = P[n, _CDF, i], P[n, _CCDF, i]
            cdf_b[m], ccdf_b[m] = Q[n, _CDF, j], Q[n, _CCDF, j]
            m += 1
    _fast_bvn._phi2_pairs(m, al, be, rho, cdf_a, ccdf_a, cdf_b, ccdf_b, bvn, idx, work)
    p1, p2, q1, q2 = al, be, cdf_a, ccdf_a  # (free again) Φ(β), Φ(β′), e^{−β²/2}, e^{−β′²/2}
    _fast_bvn._tails(m, beta, betap, p1, p2, q1, q2)
    if contract:
        part[:, :, :] = 0.0
    for q in range(m):
        i, j = pi[q], pj[q]
        for side in range(2 if same and i != j else 1):
            # side 1: the pair (j, i), arguments swapped and β ↔ β′ (then Q is P)
            a, b = (i, j) if side == 0 else (j, i)
            pa, pb, qb = (p1[q], p2[q], q2[q]) if side == 0 else (p2[q], p1[q], q1[q])
            if kind == _RELU:
                value, coef_w, coef_wp, grad_b = _relu_pair(
                    grad, cc[q], rho[q], rbar[q], bvn[q], pa, pb, qb,
                    P[n, _S, a], P[n, _B, a], P[n, _SF, a], P[n, _PH, a], P[n, _DOS, a],
                    P[n, _H, a], P[n, _MEAN, a], P[n, _PROB, a],
                    Q[n, _S, b], Q[n, _B, b], Q[n, _SF, b], Q[n, _MEAN, b], Q[n, _PROB, b],
                )
            else:
                value, coef_w, coef_wp, grad_b = _erf_pair(
                    grad, rho[q], rbar[q], bvn[q], pb, qb, P[n, _CDF, a], P[n, _SC, a],
                    P[n, _PH, a], P[n, _H, a], P[n, _DD, a], Q[n, _CDF, b], Q[n, _SC, b],
                )
            if not contract:
                V[n, a, b] = value
                if grad:
                    A[n, a, b] = coef_w
                    B[n, a, b] = coef_wp
                    G[n, a, b] = grad_b
                continue
            cf = coef[n, b]  # (the arrays of both arguments are the same for side 1)
            row = a - (i0 if side == 0 else j0)
            part[side, row, 0] += cf * value
            if grad:
                part[side, row, 1] += cf * coef_w
                part[side, row, 2] += cf * grad_b
                cb = cf * coef_wp
                for t in range(wc.shape[2]):
                    part[side, row, 3 + t] += cb * wc[n, b, t]


def _relu_pair(
    grad: bool, c: float, rho: float, rbar: float, f2: float, pa: float, pb: float, qb: float,
    s_a: float, b_a: float, sf_a: float, ph_a: float, dos_a: float, h_a: float,
    mean_a: float, prob_a: float, s_b: float, b_b: float, sf_b: float, mean_b: float,
    prob_b: float,
) -> tuple[float, float, float, float]:  # pragma: no cover - compiled
    """ReLU entry (a, b): K, A, B, G from Φ₂ = f2, Φ(β) = pa, Φ(β′) = pb, e^{−β′²/2} = qb.

    The operations of :meth:`meanfield.bivariate_normal._BvnBlock._relu`, in its order.
    """
    if s_a == 0.0 or s_b == 0.0:  # u or u′ constant: independent
        return mean_a * mean_b, dos_a * mean_b, prob_a * prob_b, prob_a * mean_b
    e = rbar * qb
    e *= s_b * _INV_SQRT_2PI
    e += b_b * pb
    g0 = b_b * f2
    g0 += sf_b * pa
    value = c * f2
    value += b_a * g0
    value += sf_a * e
    if not grad:
        return value, 0.0, 0.0, 0.0
    rp = rho * pb
    rp *= s_b
    grad_b = ph_a * rp + g0
    coef_w = dos_a * e
    rp *= dos_a * h_a
    return value, coef_w - rp, f2, grad_b


def _erf_pair(
    grad: bool, rho: float, rbar: float, f2: float, pb: float, qb: float, cdf_a: float,
    sc_a: float, ph_a: float, h_a: float, dd_a: float, cdf_b: float, sc_b: float,
) -> tuple[float, float, float, float]:  # pragma: no cover - compiled
    """Erf entry (a, b), the operations of :meth:`~meanfield.bivariate_normal._BvnBlock._erf`."""
    value = f2 * 4.0
    value += 1.0 - 2.0 * (cdf_a + cdf_b)
    if not grad:
        return value, 0.0, 0.0, 0.0
    odd = 2.0 * pb - 1.0
    ph2 = (ph_a * _INV_SQRT_2PI) * qb / max(rbar, _TINY)
    coef_w = odd * (-4.0 * h_a * ph_a / dd_a)
    coef_w -= (4.0 * (sc_a * sc_a)) * (rho * ph2)
    return value, coef_w, ph2 * (4.0 * sc_a * sc_b), odd * (2.0 * sc_a * ph_a)


def _run_tiles(
    kind: int, same: bool, grad: bool, contract: bool, inline: bool,
    tiles: NDArray[np.int64], start: int, step: int,
    P: Array, Q: Array, V: Array, A: Array, B: Array, G: Array,
    coef: Array, wr: Array, wc: Array, parts: Array,
) -> None:  # pragma: no cover - compiled
    """Process the tiles start, start + step, … of ``tiles`` (rows: batch, i0, j0)."""
    size = TILE * TILE
    pi = np.empty(size, np.int64)
    pj = np.empty(size, np.int64)
    idx = np.empty((4, size), np.int64)
    geo = np.empty((12, size))
    work = np.empty((10, size))
    m, k = P.shape[2], Q.shape[2]
    for t in range(start, tiles.shape[0], step):
        n, i0, j0 = tiles[t, 0], tiles[t, 1], tiles[t, 2]
        _tile(kind, same, grad, contract, inline, n, i0, min(i0 + TILE, m), j0,
              min(j0 + TILE, k), P, Q, V, A, B, G, coef, wr, wc, parts[t], pi, pj, geo, idx,
              work)


def _reduce(tiles: NDArray[np.int64], parts: Array, same: bool, out: Array) -> None:
    """Add the tiles' partial row sums into out[n, i], in the order of ``tiles``."""
    out[:, :, :] = 0.0
    m, width = out.shape[1], out.shape[2]
    for t in range(tiles.shape[0]):
        n, i0, j0 = tiles[t, 0], tiles[t, 1], tiles[t, 2]
        for r in range(min(TILE, m - i0)):
            for f in range(width):
                out[n, i0 + r, f] += parts[t, 0, r, f]
        if same:
            for r in range(min(TILE, m - j0)):
                for f in range(width):
                    out[n, j0 + r, f] += parts[t, 1, r, f]


def _tiles(nb: int, m: int, k: int, same: bool) -> NDArray[np.int64]:
    return np.array(
        [(n, i0, j0) for n in range(nb) for i0 in range(0, m, TILE)
         for j0 in range(i0 if same else 0, k, TILE)],
        dtype=np.int64,
    ).reshape(-1, 3)


def _launch(tiles: NDArray[np.int64], pairs: int, workers: int, *args: object) -> None:
    """Run ``_run_tiles`` over ``tiles`` on up to ``workers`` threads (tiles dealt in turn)."""
    run: Any = _run_tiles
    lead: Any = args[:5]
    _fast_bvn.run_threads(
        lambda start, step: run(*lead, tiles, start, step, *args[5:]),
        min(workers, len(tiles)) if pairs >= _PARALLEL_MIN else 1,
    )


_NONE = np.empty((1, 1, 1))


def blocks(
    kind: str, rows: Array, cols: Array, w: Array, w_prime: Array, gram: Array | None, *,
    grad: bool, same: bool, workers: int,
) -> tuple[Array, Array | None, Array | None, Array | None]:
    r"""Compute the ReLU or erf blocks K, A, B, G from per-neuron fields (compiled).

    .. math:: K_{ij} = \mathbb E[\sigma(u_i)\,\sigma(u'_j)], \qquad
              \nabla_{w_i} K_{ij} = A_{ij} w_i + B_{ij} w'_j, \quad
              \partial_{b_i} K_{ij} = G_{ij}

    (formulas in :mod:`meanfield.kernels`).

    Parameters
    ----------
    kind : {"relu", "erf"}
        The activation pair.
    rows, cols : ndarray, shapes (N, len(FIELDS), m) and (N, len(FIELDS), k)
        Per-neuron fields (:data:`FIELDS`) of both arguments (``cols`` is ``rows`` when
        ``same``).
    w, w_prime : ndarray, shapes (N, m, d) and (N, k, d)
        Weights of both arguments (C-contiguous).
    gram : ndarray, shape (N, m, k), or None
        w·w′ (:func:`meanfield.bivariate_normal._gram`); ``None`` when d ≤
        :data:`GRAM_INLINE_D`.  Overwritten with K.
    grad : bool
        Also compute A, B, G.
    same : bool
        Symmetric block (both arguments equal): each unordered pair once.
    workers : int
        Threads.

    Returns
    -------
    value, coef_w, coef_wp, grad_b : ndarray, shape (N, m, k), or None without ``grad``
    """
    _compile()
    nb, m, k = w.shape[0], w.shape[1], w_prime.shape[1]
    value = np.empty((nb, m, k)) if gram is None else gram
    out = [np.empty((nb, m, k)) for _ in range(3)] if grad else [_NONE] * 3
    _launch(_tiles(nb, m, k, same), nb * m * k, workers, _RELU if kind == "relu" else _ERF,
            same, grad, False, gram is None, rows, cols, value, *out, np.empty((1, 1)), w,
            w_prime, np.empty((1, 2, 1, 1)))
    if not grad:
        return value, None, None, None
    return value, out[0], out[1], out[2]


def contract(
    kind: str, rows: Array, cols: Array, w: Array, w_prime: Array, gram: Array | None,
    coef: Array, *, grad: bool, same: bool, workers: int,
) -> tuple[Array, Array | None]:
    r"""Contract the ReLU or erf block with coefficients, without forming it (compiled).

    .. math:: R_i = \sum_j c_j K_{ij}, \qquad
              \sum_j c_j \nabla_{(w_i, b_i)} K_{ij}
              = \Big(\Big(\sum_j c_j A_{ij}\Big) w_i + \sum_j c_j B_{ij}\, w'_j,\
              \sum_j c_j G_{ij}\Big)

    Each sum runs over j in increasing order within tiles of :data:`TILE` columns, the
    tiles in increasing order: the result does not depend on ``workers``.

    Parameters
    ----------
    kind, rows, cols, w, w_prime, same, workers
        As for :func:`blocks`.
    gram : ndarray, shape (N, m, k), or None
        As for :func:`blocks` (not modified).
    coef : ndarray, shape (N, k)
        Coefficients cⱼ.
    grad : bool
        Also return the gradient.

    Returns
    -------
    value : ndarray, shape (N, m)
    grad : ndarray, shape (N, m, d+1), or None without ``grad``
    """
    _compile()
    nb, m, k = w.shape[0], w.shape[1], w_prime.shape[1]
    d = w.shape[-1]
    tiles = _tiles(nb, m, k, same)
    parts = np.empty((len(tiles), 2, TILE, 3 + d))
    _launch(tiles, nb * m * k, workers, _RELU if kind == "relu" else _ERF, same, grad, True,
            gram is None, rows, cols, _NONE if gram is None else gram, _NONE, _NONE, _NONE,
            coef, w, w_prime, parts)
    sums = np.empty((nb, m, 3 + d))
    _reduce(tiles, parts, same, sums)
    if not grad:
        return sums[..., 0], None
    out = np.empty((nb, m, d + 1))
    np.multiply(sums[..., 1, None], w, out=out[..., :d])
    out[..., :d] += sums[..., 3:]
    out[..., d] = sums[..., 2]
    return sums[..., 0], out

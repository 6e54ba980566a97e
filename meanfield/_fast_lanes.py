r"""Compiled SGD on SIMD lanes (numba): W runs side by side, or W neurons of one run.

The step of :mod:`meanfield._fast_serial` is written on whole vectors ``<W x double>``
(one AVX-512 register for W = 8): every element-wise operation over neurons × samples
(the pre-activation u = w·x + b, σ(u), the residual sums, the gradient sums, the update)
is one vector instruction.  The same kernel fills the lanes in two ways:

* **runs** (the ``"lanes"`` engine, ensembles of small networks): lane r holds run r of a
  block of W runs.  Positions are stored replica-innermost, ``(m, d+2, W)``, and the
  minibatches of the W runs are interleaved the same way (:func:`_gather`, a chunk of
  steps at a time, so that each run's stream is read sequentially).  Lane r undergoes
  exactly the floating-point operations of :func:`meanfield._fast_serial._run_serial` on
  run r, in the same order (fused multiply-adds at the same places, the sums over neurons
  in the same chunks and blocks, the same finiteness test on the same partial sums), so an
  ensemble member equals its solo run bitwise.  A block that is not full repeats its last
  run in the spare lanes.

  .. math::

      u^{(r)}_{ki} = w^{(r)}_i\cdot x_k^{(r)} + b^{(r)}_i,\qquad r = 1, \dots, W
      \ \text{in the lanes of one register}

* **neurons** (the ``"wide"`` engine, one wider run): lane l of "neuron" g holds neuron
  i = gW + l, so the positions ``(⌈m/W⌉, d+2, W)`` are the columns of θ cut into vectors,
  padded with zero neurons (p = a = w = b = 0, kept at zero after every step).  The inputs
  are the same in every lane.  The sum f(x_k) = Σᵢ pᵢaᵢσ(u_ki) is then taken lane by lane
  (lane l sums neurons l, l + W, l + 2W, … in order) and the W lane sums are added in a
  fixed tree, ((s₀+s₁)+(s₂+s₃))+((s₄+s₅)+(s₆+s₇)); the pre-activations are recomputed in
  the backward pass instead of stored (m·B of them would leave the cache).  Each run of an
  ensemble of wide networks is done alone, so again a member equals its solo run bitwise.

Blocks (of W runs, or wide runs) are spread over threads (the kernels release the GIL).

The vector type and its operations are numba extensions (:mod:`meanfield._simd`: LLVM
vector instructions), so the layout does not depend on the auto-vectoriser.  One kernel
is compiled per activation and per input dimension d ≤ :data:`SPECIALISED_D` (both then
constants: σ inlined, the d coordinates unrolled into registers), on first use; a larger
d uses a generic kernel.  The backward pass takes two neurons per sweep over the samples
(each sum still in the order of the samples), sharing the loads of x and r.

Cost of the runs layout (notebook ensemble, m = 20, d = 2, B = 20, 17,660 steps, 64 runs,
one thread, this 2-core AVX-512 machine): about 0.25 s, i.e. 0.55 ns per (run × sample ×
neuron), of which the interleaving of the streams ≈ 20 %, the forward pass ≈ 35 %, the
backward pass and update ≈ 40 %, the rest 5 %; one run alone with the serial engine costs
≈ 4.7 ns per (sample × neuron).  The neurons layout: ≈ 0.4–0.5 ns per (sample × neuron)
for one run of m = 10³ to 10⁵, d = 2, B = 100 on one thread (the serial engine: 3.2 ns).
This module imports numba: :mod:`meanfield._fast` imports it only when numba is there.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from meanfield._fast_serial import CHUNK, _sigma1
from meanfield._simd import W, vfma, vget, vload, vrelu, vset, vsplat, vstep, vstore, vsum

__all__ = ["fits", "run_block", "run_wide"]

#: Largest B·(d + 1) (a chunk of minibatches) and m·B (the pre-activations kept between
#: the forward and backward passes) for which the lanes engine is used.
MAX_BATCH_ELEMS = 4096
MAX_UNITS = 16384
_STEPS_PER_GATHER = 64
Array = NDArray[np.floating]


# -- kernels ------------------------------------------------------------------------------
_jit = numba.njit(cache=True, nogil=True, fastmath=False)  # helpers: LLVM inlines them
_inline = numba.njit(cache=True, nogil=True, fastmath=False, inline="always")  # see _kernel


@_jit
def _act(u, act, both):  # type: ignore[no-untyped-def]  # pragma: no cover
    """σ(u) and, when ``both``, σ'(u) lane by lane, as the serial engine computes them."""
    if act == 0:
        return vrelu(u), vstep(u)
    s = u
    ds = u
    for q in range(W):
        sv, dv = _sigma1(vget(u, q), act, both)
        s = vset(s, q, sv)
        ds = vset(ds, q, dv)
    return s, ds


@_jit
def _gather(x, y, s0, ns, lanes, xl, yl):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Interleave steps s0 ≤ s < s0 + ns of the runs ``lanes``: xl[((s·B + k)·d + j)·W + r].

    A chunk of steps at a time, so that each run's stream is read sequentially.  When
    every lane is the same run (neurons layout), each vector is a broadcast.
    """
    bsz, d = x.shape[2], x.shape[3]
    one = True  # every lane the same run: broadcasts
    for q in range(1, W):
        one = one and lanes[q] == lanes[0]
    rx, ry = (lanes[0] if x.shape[1] > 1 else 0), (lanes[0] if y.shape[1] > 1 else 0)
    per_x, per_y = x.shape[1] > 1 and not one, y.shape[1] > 1 and not one
    for s in range(ns):
        for k in range(bsz):
            o = (s * bsz + k) * d
            for j in range(d):
                v = vsplat(x[s0 + s, rx, k, j])
                if per_x:
                    for q in range(1, W):
                        v = vset(v, q, x[s0 + s, lanes[q], k, j])
                vstore(xl, (o + j) * W, v)
            v = vsplat(y[s0 + s, ry, k])
            if per_y:
                for q in range(1, W):
                    v = vset(v, q, y[s0 + s, lanes[q], k])
            vstore(yl, (s * bsz + k) * W, v)


@_jit
def _input(xl, xk, d, w0, w1, w2, w3, src, io):  # type: ignore[no-untyped-def]  # pragma: no cover
    """w·x: x₀w₀, then fused multiply-adds of x_j w_j in order (the serial engine's u)."""
    u = vload(xl, xk) * w0
    if d > 1:
        u = vfma(vload(xl, xk + W), w1, u)
        if d > 2:
            u = vfma(vload(xl, xk + 2 * W), w2, u)
            if d > 3:
                u = vfma(vload(xl, xk + 3 * W), w3, u)
                for j in range(4, d):
                    u = vfma(vload(xl, xk + j * W), vload(src, io + (1 + j) * W), u)
    return u


@_jit
def _weights(src, io, d):  # type: ignore[no-untyped-def]  # pragma: no cover
    """w₀ … w₃ of the neuron at ``io`` (zero past d) and its bias."""
    zero = vsplat(0.0)
    w1 = vload(src, io + 2 * W) if d > 1 else zero
    w2 = vload(src, io + 3 * W) if d > 2 else zero
    w3 = vload(src, io + 4 * W) if d > 3 else zero
    return vload(src, io + W), w1, w2, w3, vload(src, io + (d + 1) * W)


@_jit
def _forward(src, p, xl, xo, ub, fc, rs, m, d, bsz, act, keep):  # type: ignore[no-untyped-def]  # pragma: no cover
    """rs_k = f(x_k) = Σ_chunks Σ_i p_i a_i σ(u_ki) (chunk sums in order); ub ← u if ``keep``.

    Two neurons per pass over the samples (each sum still in the order of i).
    """
    zero = vsplat(0.0)
    dd = d + 2
    for k in range(bsz):
        vstore(rs, k * W, zero)
    for c0 in range(0, m, CHUNK):
        c1 = min(c0 + CHUNK, m)
        for k in range(bsz):
            vstore(fc, k * W, zero)
        for i in range(c0, c1, 2):
            two = i + 1 < c1
            ia, ib = i * dd * W, (i + 1 if two else i) * dd * W
            pa = vload(p, i * W) * vload(src, ia)
            pb = vload(p, (i + 1 if two else i) * W) * vload(src, ib)
            wa0, wa1, wa2, wa3, ba = _weights(src, ia, d)
            wb0, wb1, wb2, wb3, bb = _weights(src, ib, d)
            for k in range(bsz):
                xk = xo + k * d * W
                u = _input(xl, xk, d, wa0, wa1, wa2, wa3, src, ia) + ba
                if keep:
                    vstore(ub, (i * bsz + k) * W, u)
                f = vfma(_act(u, act, False)[0], pa, vload(fc, k * W))
                if two:
                    u = _input(xl, xk, d, wb0, wb1, wb2, wb3, src, ib) + bb
                    if keep:
                        vstore(ub, ((i + 1) * bsz + k) * W, u)
                    f = vfma(_act(u, act, False)[0], pb, f)
                vstore(fc, k * W, f)
        for k in range(bsz):
            vstore(rs, k * W, vload(rs, k * W) + vload(fc, k * W))


@_jit
def _grad_step(r, u, a, xs, xl, xk, d, g, go, act, acc):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Add sample k's terms to one neuron's gradient sums ``acc`` (the serial engine's order).

    ``xs`` = x₀ … x₃ of the sample, ``acc`` = (∇_a, ∇_b, ∇_w₀ … ∇_w₃); the sums over the
    coordinates j ≥ 4 are in ``g[go:]``.
    """
    ga, gb, g0, g1, g2, g3 = acc
    sig, dsig = _act(u, act, True)
    ga = vfma(r, sig, ga)
    c = r * dsig * a
    g0 = vfma(c, xs[0], g0)
    if d > 1:
        g1 = vfma(c, xs[1], g1)
        if d > 2:
            g2 = vfma(c, xs[2], g2)
            if d > 3:
                g3 = vfma(c, xs[3], g3)
                for j in range(4, d):
                    o = go + (j - 4) * W
                    vstore(g, o, vfma(c, vload(xl, xk + j * W), vload(g, o)))
    return ga, gb + c, g0, g1, g2, g3


@_jit
def _update(src, dst, io, d, g, go, lam, eta, acc):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Set dst = src − η(g + λ src) for one neuron; return Σ_col of the new entries."""
    ga, gb, g0, g1, g2, g3 = acc
    tq = vsplat(0.0)
    vlam, meta = vsplat(lam), vsplat(-eta)
    for col in range(d + 2):
        t = vload(src, io + col * W)
        if col == 0:
            gc = ga
        elif col == d + 1:
            gc = gb
        elif col == 1:
            gc = g0
        elif col == 2:
            gc = g1
        elif col == 3:
            gc = g2
        elif col == 4:
            gc = g3
        else:
            gc = vload(g, go + (col - 5) * W)
        if lam != 0.0:
            gc = vfma(vlam, t, gc)
        v = vfma(gc, meta, t)
        vstore(dst, io + col * W, v)
        tq = tq + v
    return tq


@_jit
def _zero_padding(dst, io, d, pad):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Reset the last ``pad`` lanes of the vectors at ``io`` to 0; return Σ_col of them."""
    tq = vsplat(0.0)
    for col in range(d + 2):
        v = vload(dst, io + col * W)
        for q in range(W - pad, W):
            v = vset(v, q, 0.0)
        vstore(dst, io + col * W, v)
        tq = tq + v
    return tq


@_jit
def _account(tq, blk, ch, tot, i, m, nbm):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Add tq to the serial engine's partial sums of the new positions (blocks, chunks)."""
    zero = vsplat(0.0)
    blk = blk + tq
    q = i % CHUNK
    if (q + 1) % nbm == 0 or i + 1 == m or q + 1 == CHUNK:
        ch, blk = ch + blk, zero
        if i + 1 == m or q + 1 == CHUNK:
            tot, ch = tot + ch, zero
    return blk, ch, tot


@_inline
def _steps(th, p, x, y, lanes, n, act, dim, wide, eta, lam, nbm, pad):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Step a block of W runs, or one ``wide`` run, ``n`` times; ``th[0]`` in and out.

    ``th[0]`` holds m "neurons" of W lanes, ``(m, d+2, W)`` flattened: W runs' neuron i
    (replica-innermost), or (``wide``) neurons iW … iW + W − 1 of one run, the last
    ``pad`` lanes of the last vector being padding.  ``dim`` is d when the kernel is
    specialised to it (then a constant), else 0.  Returns the number of steps done: n, or
    the step before the first one after which a run's new positions do not sum to a
    finite number (as :func:`_run_serial`).
    """
    m = p.shape[0] // W
    bsz = x.shape[2]
    d = dim if dim > 0 else x.shape[3]
    dd = d + 2
    sc = max(1, min(_STEPS_PER_GATHER, MAX_BATCH_ELEMS * 8 // (bsz * (d + 1))))
    xl = np.empty(sc * bsz * d * W)
    yl = np.empty(sc * bsz * W)
    fc = np.empty(bsz * W)
    rs = np.empty(bsz * W)
    ub = np.empty(W if wide else m * bsz * W)  # the u's, kept for the backward pass
    g = np.empty(2 * max(d - 4, 1) * W)
    gob = max(d - 4, 1) * W  # neuron b's RMW sums (coordinates j ≥ 4)
    zero = vsplat(0.0)
    vb = vsplat(float(bsz))
    cur = 0
    done = 0
    for s0 in range(0, n, sc):
        ns = min(sc, n - s0)
        _gather(x, y, s0, ns, lanes, xl, yl)
        for s in range(ns):
            src, dst = th[cur], th[1 - cur]
            xo, yo = s * bsz * d * W, s * bsz * W
            _forward(src, p, xl, xo, ub, fc, rs, m, d, bsz, act, not wide)
            for k in range(bsz):
                f = vsplat(vsum(vload(rs, k * W))) if wide else vload(rs, k * W)
                vstore(rs, k * W, (f - vload(yl, yo + k * W)) / vb)
            # backward and update, two neurons per pass over the samples
            tot, ch, blk = zero, zero, zero
            for i in range(0, m, 2):
                two = i + 1 < m
                ia, ib = i * dd * W, (i + 1 if two else i) * dd * W
                aa, ab = vload(src, ia), vload(src, ib)
                wa0, wa1, wa2, wa3, ba = _weights(src, ia, d)
                wb0, wb1, wb2, wb3, bb = _weights(src, ib, d)
                acc_a = (zero, zero, zero, zero, zero, zero)
                acc_b = acc_a
                for j in range(2 * max(d - 4, 0)):
                    vstore(g, j * W, zero)
                for k in range(bsz):
                    xk = xo + k * d * W
                    r = vload(rs, k * W)
                    xs = (
                        vload(xl, xk),
                        vload(xl, xk + W) if d > 1 else zero,
                        vload(xl, xk + 2 * W) if d > 2 else zero,
                        vload(xl, xk + 3 * W) if d > 3 else zero,
                    )
                    if wide:  # recomputed: the same operations as in _forward
                        ua = _input(xl, xk, d, wa0, wa1, wa2, wa3, src, ia) + ba
                    else:
                        ua = vload(ub, (i * bsz + k) * W)
                    acc_a = _grad_step(r, ua, aa, xs, xl, xk, d, g, 0, act, acc_a)
                    if two:
                        if wide:
                            ub_ = _input(xl, xk, d, wb0, wb1, wb2, wb3, src, ib) + bb
                        else:
                            ub_ = vload(ub, ((i + 1) * bsz + k) * W)
                        acc_b = _grad_step(r, ub_, ab, xs, xl, xk, d, g, gob, act, acc_b)
                tq = _update(src, dst, ia, d, g, 0, lam, eta, acc_a)
                if pad and not two:
                    tq = _zero_padding(dst, ia, d, pad)
                blk, ch, tot = _account(tq, blk, ch, tot, i, m, nbm)
                if two:
                    tq = _update(src, dst, ib, d, g, gob, lam, eta, acc_b)
                    if pad and i + 2 == m:
                        tq = _zero_padding(dst, ib, d, pad)
                    blk, ch, tot = _account(tq, blk, ch, tot, i + 1, m, nbm)
            for q in range(W):
                if not math.isfinite(vget(tot, q)):
                    if cur == 1:
                        th[0, :] = th[1]
                    return done
            cur = 1 - cur
            done += 1
    if cur == 1:
        th[0, :] = th[1]
    return done


#: Input dimensions with a kernel of their own (d a constant: no branch on it, the d
#: coordinates unrolled); a larger d uses the generic kernel.
SPECIALISED_D = 4
_KERNELS: dict[tuple[int, int, bool], Any] = {}
_KERNELS_LOCK = threading.Lock()


def _kernel(act: int, d: int, wide: bool) -> Any:
    """Return the kernel for an activation, input dimension and layout (compiled on first use).

    ``act``, the layout and d ≤ :data:`SPECIALISED_D` are constants in it: σ is inlined
    without a branch on the activation, and the loops over the d coordinates are unrolled.
    """
    key = (act, d if d <= SPECIALISED_D else 0, wide)
    with _KERNELS_LOCK:
        if key not in _KERNELS:
            a, dim, wd = key

            @_jit
            def steps(th, p, x, y, lanes, n, eta, lam, nbm, pad):  # type: ignore[no-untyped-def]  # pragma: no cover
                return _steps(th, p, x, y, lanes, n, a, dim, wd, eta, lam, nbm, pad)

            _KERNELS[key] = steps
        return _KERNELS[key]


def fits(m: int, d: int, batch: int) -> bool:
    """Whether a block's buffers stay small (then the lanes engine is used)."""
    return batch * (d + 1) <= MAX_BATCH_ELEMS and m * batch <= MAX_UNITS


def run_block(
    theta: Array,
    masses: Array,
    x: Array,
    y: Array,
    runs: NDArray[np.int64],
    n: int,
    act: int,
    eta: float,
    lam: float,
    nbm: int,
) -> tuple[Array, int]:
    """Advance the runs ``runs`` (at most W; rows of ``theta (R, m, d+2)``) by ``n`` steps.

    ``x (S, R or 1, B, d)``, ``y (S, R or 1, B)`` as for :meth:`meanfield._fast.Engine.run`.
    Returns their new positions ``(len(runs), m, d+2)`` and the number of steps done.
    """
    lanes = np.empty(W, dtype=np.int64)
    lanes[: len(runs)] = runs
    lanes[len(runs) :] = runs[-1]  # a partial block repeats its last run
    _, m, dd = theta.shape
    th = np.empty((2, m * dd * W))
    th[0] = np.ascontiguousarray(np.transpose(theta[lanes], (1, 2, 0))).reshape(-1)
    p = np.ascontiguousarray(np.broadcast_to(masses, (theta.shape[0], m))[lanes].T).reshape(-1)
    done = _kernel(act, dd - 2, False)(th, p, x, y, lanes, n, eta, lam, nbm, 0) if n else 0
    out = np.transpose(th[0].reshape(m, dd, W), (2, 0, 1))[: len(runs)]
    return np.ascontiguousarray(out, dtype=np.float64), int(done)


def run_wide(
    theta: Array, masses: Array, x: Array, y: Array, r: int, n: int, act: int, eta: float,
    lam: float, nbm: int,
) -> tuple[Array, int]:  # fmt: skip
    """Advance run ``r`` (``theta (m, d+2)``, masses ``(m,)``) ``n`` steps, W neurons per vector.

    Returns its new positions and the number of steps done.
    """
    m, dd = theta.shape
    groups = -(-m // W)
    pad = groups * W - m
    cols = np.zeros((groups * W, dd))
    cols[:m] = theta
    th = np.empty((2, groups * dd * W))
    th[0] = np.transpose(cols.reshape(groups, W, dd), (0, 2, 1)).reshape(-1)
    p = np.zeros(groups * W)
    p[:m] = masses
    lanes = np.full(W, r, dtype=np.int64)
    done = _kernel(act, dd - 2, True)(th, p, x, y, lanes, n, eta, lam, nbm, pad) if n else 0
    out = np.transpose(th[0].reshape(groups, dd, W), (0, 2, 1)).reshape(groups * W, dd)[:m]
    return np.ascontiguousarray(out), int(done)

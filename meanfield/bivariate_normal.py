r"""The Gaussian pair of pre-activations: Φ₂ and the closed-form ReLU and erf blocks.

For x ~ N(0, I_d) the pre-activations u = w·x + b and u′ = w′·x + b′ are jointly Gaussian
with means b, b′, standard deviations s = ‖w‖, s′ = ‖w′‖ and correlation
ρ = w·w′/(s s′).  The kernels E[σ(u) σ(u′)] of ReLU and erf and their gradients reduce to
the standard bivariate normal distribution function

.. math:: \Phi_2(h, k; \rho) = P(Z \le h,\ Z' \le k), \qquad \operatorname{corr}(Z, Z') = \rho,

evaluated with Owen's T function (Owen 1956) through :func:`scipy.special.owens_t` (and,
for 1 − |ρ| < 1e-4 where T loses digits, Genz's 2004 method), and to the normal density
and distribution function of each neuron's own pre-activation.  The formulas are stated
in :mod:`meanfield.kernels`, whose :func:`~meanfield.kernels.kernel_block` is the public
entry point of the blocks computed here: with numba by :mod:`meanfield._fast_kernels`
from the per-neuron quantities and the Gram matrix prepared here, otherwise by the numpy
reference (in cache-sized row chunks, on worker threads for large blocks).

References
----------
D. B. Owen. Tables for computing bivariate normal probabilities. Ann. Math. Stat. 1956.
A. Genz. Numerical computation of rectangular bivariate and trivariate normal and t
probabilities. Statistics and Computing 14 (2004), 251–260.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from meanfield import _fast_bvn, _fast_kernels
from meanfield._validation import OverflowResultError, as_float_array

__all__ = ["bivariate_normal_cdf"]

Array = NDArray[np.floating]

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_RHO_SNAP = 1.0 - 2.0**-48
_TINY = 1e-300
_S_MIN = 1e-300  # smaller ‖w‖ count as 0 (1/‖w‖ would overflow)
_H_MAX = 1e300  # |h| beyond: Φ(h), φ(h) are saturated, and ρh cannot overflow
_GENZ_FROM = 1.0 - 1e-4  # |ρ| from which Φ₂ uses Genz's branch: T's error ≤ 2e-15 below
_SAFE = 1e150  # range of the compiled blocks: |b|, ‖w‖ ≤ 1e150, ‖w‖ = 0 or ≥ 1e-150
_CHUNK = 1 << 14  # pairs per row chunk: a few such arrays stay in cache
_PARALLEL_MIN = 1 << 16  # smallest block (pairs) handed to worker threads


def _pdf(x: Array) -> Array:
    return _INV_SQRT_2PI * np.exp(-0.5 * np.square(np.clip(x, -40.0, 40.0)))  # φ(40) = 0


# -- the bivariate normal distribution function --------------------------------------
def bivariate_normal_cdf(h: ArrayLike, k: ArrayLike, rho: ArrayLike) -> Array:
    r"""Compute the standard bivariate normal distribution function Φ₂(h, k; ρ).

    .. math::

        \Phi_2(h, k; \rho) = P(Z \le h, Z' \le k)
        = \tfrac12\Phi(h) + \tfrac12\Phi(k) - T\Big(h, \frac{k - \rho h}{h\bar\rho}\Big)
          - T\Big(k, \frac{h - \rho k}{k\bar\rho}\Big) - \delta,

    with corr(Z, Z′) = ρ, ρ̄ = √(1 − ρ²), Owen's T, and δ = ½ when h and k have opposite
    signs (0 counted as positive), else 0 (Owen 1956).  h = 0 uses T(0, ±∞) = ±¼,
    h = k = 0 gives ¼ + arcsin(ρ)/(2π), |ρ| = 1 the exact limits; 1 − |ρ| < 1e-4 uses
    Genz's (2004) method instead, as T loses digits there.

    Parameters
    ----------
    h, k : array_like
        Upper limits (±∞ allowed), broadcast with ``rho``.
    rho : array_like
        Correlations in [−1, 1].

    Returns
    -------
    ndarray
        Φ₂, absolute accuracy ~2e-15.

    Raises
    ------
    ValueError
        If ``rho`` leaves [−1, 1] or ``h``, ``k`` hold NaN.
    """
    hh, kk = as_float_array("h", h, finite=False), as_float_array("k", k, finite=False)
    r = as_float_array("rho", rho)
    if np.any(np.isnan(hh)) or np.any(np.isnan(kk)):
        raise ValueError("h and k must not be NaN")
    if np.any(np.abs(r) > 1):
        raise ValueError(f"rho must lie in [-1, 1]; got {r.flat[np.argmax(np.abs(r))]!r}")
    # Φ(±40) is 1 or 0 in double precision and T(±40, ·) underflows: exact limits
    # + 0.0 turns -0.0 into +0.0 (Owen's T divides by h, the branches test h >= 0)
    hh, kk, r = np.broadcast_arrays(np.clip(hh, -40, 40) + 0.0, np.clip(kk, -40, 40) + 0.0, r)
    r = np.where(np.abs(r) > _RHO_SNAP, np.sign(r), r)
    rbar = np.sqrt((1.0 - r) * (1.0 + r))
    den = np.maximum(rbar, _TINY)
    return _bvn(hh, kk, r, _owen(hh, kk, r, den), _owen(kk, hh, r, den))


def _owen(h: Array, k: Array, rho: Array, den: Array) -> Array:
    """T(h, (k − ρh)/(hρ̄)), the slope written (k/h − ρ)/ρ̄ (no underflow for tiny h).

    The slope is ±∞ at h = 0 (NaN where h = k = 0, fixed by :func:`_bvn`).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return special.owens_t(h, (k / h - rho) / den)


def _bvn(
    h: Array, k: Array, rho: Array, t_h: Array, t_k: Array, out: Array | None = None
) -> Array:
    """Owen's formula from T(h, ·) and T(k, ·); h = k = 0 by the arcsine law."""
    out = np.asarray(np.add(t_h, t_k, out=out))
    np.subtract((0.5 * special.ndtr(h) - 0.125) + (0.5 * special.ndtr(k) - 0.125), out, out=out)
    out += np.where(h >= 0, 0.5, -0.5) * np.where(k >= 0, 0.5, -0.5)  # −δ + ¼
    r = np.broadcast_to(rho, out.shape)
    high = (np.abs(r) >= _GENZ_FROM) & (np.abs(r) < 1.0)  # Owen's T loses digits near |ρ| = 1
    if np.any(high):
        lim = [np.clip(np.broadcast_to(x, out.shape)[high], -40.0, 40.0) for x in (h, k)]
        out[high] = _genz_high(lim[0], lim[1], r[high])
    if np.any(h == 0) and np.any(k == 0):
        zero = np.broadcast_to((h == 0) & (k == 0), out.shape)
        out[zero] = 0.25 + np.arcsin(r[zero]) / (2.0 * np.pi)
    return np.clip(out, 0.0, 1.0, out=out)


def _genz_high(a: Array, b: Array, r: Array) -> Array:
    """Φ₂(a, b; r) for 0.925 ≤ |r| < 1 by Genz's (2004) method (:mod:`meanfield._fast_bvn`).

    Near |ρ| = 1 Owen's formula loses digits (with scipy's T: 2e-15 at 1 − |ρ| = 1e-4,
    2e-13 at 1e-8, 2e-10 at 1e-14); this branch stays within about 1e-16 there, and
    :func:`bivariate_normal_cdf` uses it for 1 − |ρ| < 1e-4.
    """
    h = -a
    k = np.where(r > 0, -b, b)
    hk, bs = h * k, np.square(h - k)
    as_ = (1.0 - r) * (1.0 + r)
    sa = np.sqrt(as_)
    c, d = (4.0 - hk) / 8.0, (12.0 - hk) / 16.0
    v = sa * np.exp(-0.5 * (bs / as_ + hk)) * (
        1.0 - c * (bs - as_) * (1.0 - d * bs / 5.0) / 3.0 + c * d * as_ * as_ / 5.0
    )
    sb = np.sqrt(bs)
    tail = np.exp(-0.5 * np.maximum(hk, -100.0)) * np.sqrt(2.0 * np.pi) * special.ndtr(-sb / sa)
    v -= np.where(hk > -100.0, tail * sb * (1.0 - c * bs * (1.0 - d * bs / 5.0) / 3.0), 0.0)
    a2, acc = 0.5 * sa, np.zeros_like(v)
    for x, w in zip(_fast_bvn._XS20, _fast_bvn._WS20, strict=True):
        xs = np.square(a2 * (1.0 + x))
        rs = np.sqrt(1.0 - xs)
        e1 = np.exp(-0.5 * (bs / xs + hk))
        e2 = np.exp(-0.5 * bs / xs - hk / (1.0 + rs))  # Genz's two factors, merged: ≤ 1
        acc += w * (e2 / rs - e1 * (1.0 + c * xs * (1.0 + d * xs)))
    v = -(v + a2 * acc) / (2.0 * np.pi)
    pos = r > 0
    lo = np.where(a > 0, special.ndtr(b) - special.ndtr(-a), special.ndtr(a) - special.ndtr(-b))
    return np.where(pos, v + special.ndtr(np.minimum(a, b)), np.where(-a < b, lo - v, -v))


# -- closed forms: ReLU and erf ---------------------------------------------------------
def _std(w: Array) -> Array:
    """‖w‖ over the last axis with no overflow or underflow (inf beyond the largest double).

    Norms below :data:`_S_MIN` are 0: such a neuron is u ≡ b to double precision.
    """
    with np.errstate(over="ignore"):
        s2 = np.einsum("...i,...i->...", w, w)
    s = np.sqrt(s2)
    redo = ~((s2 > 1e-290) & (s2 < 1e290))  # squares out of range: rescale by max |wᵢ|
    if np.any(redo):
        big = np.max(np.abs(w[redo]), axis=-1, initial=0.0)
        unit = w[redo] / np.where(big > 0, big, 1.0)[:, None]
        with np.errstate(over="ignore"):
            s[redo] = big * np.sqrt(np.einsum("ri,ri->r", unit, unit))
    s[s < _S_MIN] = 0.0
    return s


def _gram(w: Array, wp: Array) -> Array:
    """w·w′ for all pairs, shape (N, m, k).

    Up to d = :data:`meanfield._fast_kernels.GRAM_INLINE_D` it is summed over the input
    coordinates in order, with the compiled loops' operations (they then need no Gram
    matrix and get the same ρ to the last bit); beyond, by a matrix product.
    """
    d = w.shape[-1]
    if d > _fast_kernels.GRAM_INLINE_D:
        return np.matmul(w, np.swapaxes(wp, -1, -2))
    c = w[..., :, None, 0] * wp[..., None, :, 0]
    for t in range(1, d):
        c += w[..., :, None, t] * wp[..., None, :, t]
    return c


class _Side:
    """Per-neuron quantities of one argument, flattened batch ``(N, m)``.

    ``scale`` maps w·w′ to the correlation (ρ = c·scaleᵢ·scaleⱼ) and ``h`` is the
    orthant limit: ReLU 1/s and α = b/s; erf √2/√D and √2 b/√D (|h| ≤ 1e300).
    ``safe`` says whether |b|, s ≤ 1e150 and s = 0 or s ≥ 1e-150, the range of the
    compiled blocks (w·w′ and b b′ cannot overflow there).
    """

    def __init__(self, w: Array, b: Array, kind: str, name: str) -> None:
        self.w, self.b = w, b
        self.s = _std(w)
        if not np.all(np.isfinite(self.s)):
            raise OverflowResultError(f"{name}: the norm of a weight vector w overflows float64")
        s, pos = self.s, self.s > 0
        big = max(float(np.max(s, initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
        self.safe = big <= _SAFE and not np.any(pos & (s < 1.0 / _SAFE))
        if kind == "relu":
            self.scale = np.divide(1.0, s, out=np.zeros_like(s), where=pos)
            self.dd = np.ones_like(s)
        else:
            with np.errstate(over="ignore"):
                self.dd = 1.0 + 2.0 * np.square(s)
            huge = s > 1e100  # 2/D underflows: √2/√D = 1/(s√(1 + 1/(2s²)))
            self.scale = np.sqrt(2.0 / np.where(huge, 1.0, self.dd))
            if np.any(huge):
                sh = s[huge]
                self.scale[huge] = 1.0 / (sh * np.sqrt(1.0 + 0.5 / sh / sh))
        with np.errstate(over="ignore"):
            h = b * self.scale + 0.0  # -0.0 → +0.0: Owen's T divides by h
        self.h = np.clip(h, -_H_MAX, _H_MAX)
        self.cdf = special.ndtr(self.h)
        self.ccdf = special.ndtr(-self.h)
        self.ph = _pdf(self.h)
        self.sf = self.dos = self.prob = self.mean = np.zeros_like(s)
        if kind == "relu":  # exact w = 0 limits: u ≡ b
            self.ph = np.where(pos, self.ph, 0.0)
            self.prob = np.where(pos, self.cdf, (b >= 0).astype(float))
            with np.errstate(over="ignore"):  # beyond float64: the caller refuses the result
                self.mean = np.where(pos, b * self.cdf + s * self.ph, np.maximum(b, 0.0))
            self.sf = s * self.ph  # s φ(α)
            self.dos = self.ph * self.scale  # φ(α)/s

    def fields(self) -> Array:
        """Stack the fields of :data:`meanfield._fast_kernels.FIELDS`: shape (N, 12, m)."""
        names = ("b", "s", "h", "scale", "cdf", "ccdf", "ph", "sf", "dos", "prob", "mean", "dd")
        return np.ascontiguousarray(np.stack([getattr(self, n) for n in names], axis=1))


class _BvnBlock:
    """Chunked, optionally threaded evaluation of the ReLU or erf closed form.

    Stage 1 computes per pair ρ, ρ̄, β′ = (h′ − ρh)/ρ̄, Φ(β′), e^{−β′²/2} and T(h, β′/h);
    stage 2 combines them (formulas in :mod:`meanfield.kernels`).  A symmetric block stores
    stage 1 and reads the transposed pair for Φ(β) and T(h′, β/h′).  The Gram matrix
    w·w′ is formed once (shared with the compiled path of :mod:`meanfield._fast_kernels`,
    which then repeats the same operations); outside the compiled path's range ρ comes
    from the normalised weights (no overflow of w·w′).
    """

    def __init__(
        self, kind: str, w: Array, b: Array, wp: Array, bp: Array, *, grad: bool, same: bool,
        names: tuple[str, str] = ("theta", "theta_prime"),
    ) -> None:
        batch = np.broadcast_shapes(w.shape[:-2], wp.shape[:-2])
        m, k, d = w.shape[-2], wp.shape[-2], w.shape[-1]
        self.kind, self.batch, self.m, self.k, self.grad, self.same = kind, batch, m, k, grad, same

        def side(ww: Array, bb: Array, n: int, name: str) -> _Side:
            flat_w = np.broadcast_to(ww, (*batch, n, d)).reshape(-1, n, d)
            return _Side(flat_w, np.broadcast_to(bb, (*batch, n)).reshape(-1, n), kind, name)

        self.row = side(w, b, m, names[0])
        self.col = self.row if same else side(wp, bp, k, names[1])
        self.safe = self.row.safe and self.col.safe
        self._gram: Array | None = None
        self.unit_gram = None
        if not self.safe:  # ρ = (w/s)·(w′/s′): w·w′ may overflow or underflow
            unit = [sd.w * sd.scale[..., None] for sd in (self.row, self.col)]
            self.unit_gram = np.matmul(unit[0], np.swapaxes(unit[1], -1, -2))
        self.bias_free = not (np.any(b) or np.any(bp))
        n = self.row.b.shape[0]
        rows = max(1, _CHUNK // max(k, 1))
        self.tasks = [(i, slice(r, min(r + rows, m))) for i in range(n) for r in range(0, m, rows)]

    @property
    def gram(self) -> Array:
        """w·w′, shape (N, m, k) (:func:`_gram`; formed on first use)."""
        if self._gram is None:
            with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                self._gram = _gram(self.row.w, self.col.w)
        return self._gram

    def fast_args(self) -> tuple[Array, Array, Array, Array, Array | None]:
        """Arguments of :func:`meanfield._fast_kernels.blocks`: fields, weights, Gram matrix."""
        rows = self.row.fields()
        cols = rows if self.same else self.col.fields()
        w = np.ascontiguousarray(self.row.w)
        wp = w if self.same else np.ascontiguousarray(self.col.w)
        inline = w.shape[-1] <= _fast_kernels.GRAM_INLINE_D
        return rows, cols, w, wp, None if inline else self.gram

    def run(
        self, workers: int, backend: str = "auto"
    ) -> tuple[Array, Array | None, Array | None, Array | None]:
        """Return K, A, B, G (``backend``: "numba" where the inputs allow it, or "numpy")."""
        if backend != "numpy" and self.safe and _fast_kernels.available():
            out = _fast_kernels.blocks(
                self.kind, *self.fast_args(), grad=self.grad, same=self.same, workers=workers
            )
            shape = (*self.batch, self.m, self.k)
            return tuple(None if a is None else a.reshape(shape) for a in out)  # type: ignore[return-value]
        with np.errstate(all="ignore"):  # extreme inputs: overflow is checked by the caller
            return self._run_numpy(workers)

    def _run_numpy(
        self, workers: int
    ) -> tuple[Array, Array | None, Array | None, Array | None]:
        n, m, k = self.row.b.shape[0], self.m, self.k
        _ = self.gram  # formed here, not by the first of the threads
        names = ("value", "A", "B", "G")[: 4 if self.grad else 1]
        self.out = {name: np.empty((n, m, k)) for name in names}
        if self.same:  # stage-1 buffers, read transposed in stage 2
            names = ("rho", "rbar") + (() if self.bias_free else ("p2", "q2", "t_h"))
            self.buf = {name: np.empty((n, m, k)) for name in names}
        if self.same:
            self._map(lambda t: self._stage1(*t, self._views(self.buf, *t)), workers)
            self._map(self._stage2_same, workers)
        else:
            self._map(self._both_stages, workers)
        shape = (*self.batch, self.m, self.k)
        out = {name: arr.reshape(shape) for name, arr in self.out.items()}
        return out["value"], out.get("A"), out.get("B"), out.get("G")

    def _map(self, fn: Callable[[tuple[int, slice]], None], workers: int) -> None:
        if workers > 1 and len(self.tasks) > 1 and self.out["value"].size >= _PARALLEL_MIN:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(fn, self.tasks))
        else:
            for task in self.tasks:
                fn(task)

    @staticmethod
    def _views(arrays: Mapping[str, Array], n: int, rs: slice) -> dict[str, Array]:
        return {name: arr[n, rs] for name, arr in arrays.items()}

    def _stage1(self, n: int, rs: slice, geo: dict[str, Array]) -> None:
        """Fill ``geo`` (arrays of shape (rows, k)) with the per-pair quantities."""
        row, col = self.row, self.col
        if self.unit_gram is None:
            rho = np.multiply(self.gram[n, rs], row.scale[n, rs, None], out=geo["rho"])
            rho *= col.scale[n, None, :]
        else:
            rho = geo["rho"]
            rho[...] = self.unit_gram[n, rs]
        np.copysign(1.0, rho, out=rho, where=np.abs(rho) > _RHO_SNAP)  # also clips
        if self.same and self.kind == "relu":  # exact ρᵢᵢ = 1
            idx = np.arange(rs.start, rs.stop)
            rho[idx - rs.start, idx] = np.where(row.s[n, idx] > 0, 1.0, 0.0)
        rbar = np.subtract(1.0, rho, out=geo["rbar"])  # (1 − ρ)(1 + ρ): no cancellation
        rbar *= 1.0 + rho
        np.sqrt(rbar, out=rbar)
        if self.bias_free:
            return
        hi, hj = row.h[n, rs, None], col.h[n, None, :]
        den = np.maximum(rbar, _TINY)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            beta = np.multiply(rho, hi)
            np.subtract(hj, beta, out=beta)
            beta /= den
            geo["t_h"][...] = _owen(hi, hj, rho, den)
            if not self.same:
                beta1 = np.multiply(rho, hj)
                np.subtract(hi, beta1, out=beta1)
                beta1 /= den
                special.ndtr(beta1, out=geo["p1"])
                geo["t_k"][...] = _owen(hj, hi, rho, den)
            special.ndtr(beta, out=geo["p2"])
            q2 = np.square(beta, out=beta)
        q2 *= -0.5
        np.exp(q2, out=geo["q2"])  # √(2π) φ(β′)

    def _both_stages(self, task: tuple[int, slice]) -> None:
        n, rs = task
        shape = (rs.stop - rs.start, self.k)
        names = ("rho", "rbar") + (() if self.bias_free else ("p1", "p2", "q2", "t_h", "t_k"))
        geo = {name: np.empty(shape) for name in names}
        self._stage1(n, rs, geo)
        self._stage2(n, rs, geo)

    def _stage2_same(self, task: tuple[int, slice]) -> None:
        n, rs = task
        geo = self._views(self.buf, n, rs)
        if not self.bias_free:
            geo["p1"], geo["t_k"] = self.buf["p2"][n, :, rs].T, self.buf["t_h"][n, :, rs].T
        self._stage2(n, rs, geo)

    def _stage2(self, n: int, rs: slice, geo: dict[str, Array]) -> None:
        row, col = self.row, self.col
        out = self._views(self.out, n, rs)
        rho = geo["rho"]
        bvn = out.get("B", np.empty_like(rho))
        if self.bias_free:  # h = h′ = 0: Φ₂ = ¼ + arcsin ρ/(2π), β = β′ = 0
            np.arcsin(rho, out=bvn)
            bvn *= 1.0 / (2.0 * np.pi)
            bvn += 0.25
            geo["p1"] = geo["p2"] = np.full_like(rho, 0.5)
            geo["q2"] = np.ones_like(rho)
        else:
            _bvn(row.h[n, rs, None], col.h[n, None, :], rho, geo["t_h"], geo["t_k"], out=bvn)
        if self.kind == "relu":
            self._relu(n, rs, geo, bvn, out)
        else:
            self._erf(n, rs, geo, bvn, out)

    def _relu(
        self, n: int, rs: slice, geo: dict[str, Array], bvn: Array, out: dict[str, Array]
    ) -> None:
        """Write the ReLU blocks, regrouped to share terms.

        value = c Φ₂ + b g₀ + s φ(α) E, G = g₀ + ρ φ(α) s′ Φ(β′), A = (φ(α)/s)(E − ρ α s′ Φ(β′))
        with g₀ = b′Φ₂ + s′φ(α′)Φ(β) and E = b′Φ(β′) + s′ρ̄ φ(β′) (:mod:`meanfield.kernels`).
        """
        row, col = self.row, self.col
        rho, p1, p2 = geo["rho"], geo["p1"], geo["p2"]
        b_j, s_j = col.b[n, None, :], col.s[n, None, :]
        e = np.multiply(geo["rbar"], geo["q2"])
        e *= s_j * _INV_SQRT_2PI
        e += b_j * p2
        g0 = b_j * bvn
        g0 += col.sf[n, None, :] * p1
        value = np.multiply(self.gram[n, rs], bvn, out=out["value"])
        value += row.b[n, rs, None] * g0
        value += row.sf[n, rs, None] * e
        if self.grad:
            rp = rho * p2
            rp *= s_j
            grad_b = np.multiply(row.ph[n, rs, None], rp, out=out["G"])
            grad_b += g0
            coef_w = np.multiply(row.dos[n, rs, None], e, out=out["A"])
            rp *= (row.dos * row.h)[n, rs, None]
            coef_w -= rp
        self._degenerate(n, rs, out)

    def _degenerate(self, n: int, rs: slice, out: dict[str, Array]) -> None:
        """Overwrite pairs with w = 0 or w′ = 0: u or u′ constant, hence independent."""
        row, col = self.row, self.col
        rz, cz = np.flatnonzero(row.s[n, rs] == 0), np.flatnonzero(col.s[n] == 0)
        if not (rz.size or cz.size):
            return
        r_mean, r_dos, r_prob = row.mean[n, rs, None], row.dos[n, rs, None], row.prob[n, rs, None]
        c_mean, c_prob = col.mean[n, None, :], col.prob[n, None, :]
        every = slice(None)
        for i, j, count in ((rz, every, rz.size), (every, cz, cz.size)):
            if count:
                new = {"value": r_mean[i] * c_mean[:, j], "A": r_dos[i] * c_mean[:, j],
                       "B": r_prob[i] * c_prob[:, j], "G": r_prob[i] * c_mean[:, j]}
                for name, arr in out.items():
                    arr[i, j] = new[name]

    def _erf(
        self, n: int, rs: slice, geo: dict[str, Array], bvn: Array, out: dict[str, Array]
    ) -> None:
        row, col = self.row, self.col
        value = np.multiply(bvn, 4.0, out=out["value"])
        value += 1.0 - 2.0 * (row.cdf[n, rs, None] + col.cdf[n, None, :])
        if not self.grad:
            return
        sc_i, ph_i = row.scale[n, rs, None], row.ph[n, rs, None]
        odd = 2.0 * geo["p2"] - 1.0  # 2Φ(β′) − 1
        phi2 = (ph_i * _INV_SQRT_2PI) * geo["q2"] / np.maximum(geo["rbar"], _TINY)  # φ₂(h, h′; r)
        np.multiply(odd, 2.0 * sc_i * ph_i, out=out["G"])
        coef_w = np.multiply(odd, -4.0 * row.h[n, rs, None] * ph_i / row.dd[n, rs, None],
                             out=out["A"])
        coef_w -= (4.0 * np.square(sc_i)) * (geo["rho"] * phi2)
        np.multiply(phi2, 4.0 * sc_i * col.scale[n, None, :], out=out["B"])

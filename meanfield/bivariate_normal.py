r"""The Gaussian pair of pre-activations: Φ₂ and the closed-form ReLU and erf blocks.

For x ~ N(0, I_d) the pre-activations u = w·x + b and u′ = w′·x + b′ are jointly Gaussian
with means b, b′, standard deviations s = ‖w‖, s′ = ‖w′‖ and correlation
ρ = w·w′/(s s′).  The kernels E[σ(u) σ(u′)] of ReLU and erf and their gradients reduce to
the standard bivariate normal distribution function

.. math:: \Phi_2(h, k; \rho) = P(Z \le h,\ Z' \le k), \qquad \operatorname{corr}(Z, Z') = \rho,

evaluated with Owen's T function (Owen 1956) through :func:`scipy.special.owens_t`, and
to the normal density and distribution function of each neuron's own pre-activation.
The formulas are derived in :mod:`meanfield.kernels`, whose
:func:`~meanfield.kernels.kernel_block` is the public entry point of the blocks computed
here (in cache-sized row chunks, on worker threads for large blocks).

References
----------
D. B. Owen. Tables for computing bivariate normal probabilities. Ann. Math. Stat. 1956.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from meanfield._validation import as_float_array

__all__ = ["bivariate_normal_cdf"]

Array = NDArray[np.floating]

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_RHO_SNAP = 1.0 - 2.0**-48
_TINY = 1e-300
_CHUNK = 1 << 14  # pairs per row chunk: a few such arrays stay in cache
_PARALLEL_MIN = 1 << 16  # smallest block (pairs) handed to worker threads


def _pdf(x: Array) -> Array:
    return _INV_SQRT_2PI * np.exp(-0.5 * np.square(x))


# -- the bivariate normal distribution function --------------------------------------
def bivariate_normal_cdf(h: ArrayLike, k: ArrayLike, rho: ArrayLike) -> Array:
    r"""Compute the standard bivariate normal distribution function Φ₂(h, k; ρ).

    .. math::

        \Phi_2(h, k; \rho) = P(Z \le h, Z' \le k)
        = \tfrac12\Phi(h) + \tfrac12\Phi(k) - T\Big(h, \frac{k - \rho h}{h\bar\rho}\Big)
          - T\Big(k, \frac{h - \rho k}{k\bar\rho}\Big) - \delta,

    with corr(Z, Z′) = ρ, ρ̄ = √(1 − ρ²), Owen's T, and δ = ½ when h and k have opposite
    signs (0 counted as positive), else 0 (Owen 1956).  h = 0 uses T(0, ±∞) = ±¼,
    h = k = 0 gives ¼ + arcsin(ρ)/(2π), |ρ| = 1 the exact limits.

    Parameters
    ----------
    h, k : array_like
        Upper limits (±∞ allowed), broadcast with ``rho``.
    rho : array_like
        Correlations in [−1, 1].

    Returns
    -------
    ndarray
        Φ₂, absolute accuracy ~1e-16.

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
    with np.errstate(over="ignore"):
        beta_h, beta_k = (kk - r * hh) / den, (hh - r * kk) / den
    return _bvn(hh, kk, r, _owen(hh, beta_h), _owen(kk, beta_k))


def _owen(h: Array, beta: Array) -> Array:
    """T(h, β/h); β/h = ±∞ at h = 0 (NaN where β = h = 0, fixed by :func:`_bvn`)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return special.owens_t(h, beta / h)


def _bvn(
    h: Array, k: Array, rho: Array, t_h: Array, t_k: Array, out: Array | None = None
) -> Array:
    """Owen's formula from T(h, ·) and T(k, ·); h = k = 0 by the arcsine law."""
    out = np.asarray(np.add(t_h, t_k, out=out))
    np.subtract((0.5 * special.ndtr(h) - 0.125) + (0.5 * special.ndtr(k) - 0.125), out, out=out)
    out += np.where(h >= 0, 0.5, -0.5) * np.where(k >= 0, 0.5, -0.5)  # −δ + ¼
    if np.any(h == 0) and np.any(k == 0):
        zero = np.broadcast_to((h == 0) & (k == 0), out.shape)
        out[zero] = 0.25 + np.arcsin(np.broadcast_to(rho, out.shape)[zero]) / (2.0 * np.pi)
    return np.clip(out, 0.0, 1.0, out=out)


# -- closed forms: ReLU and erf ---------------------------------------------------------
class _Side:
    """Per-neuron quantities of one argument, flattened batch ``(N, m)``.

    ``scale`` maps w·w′ to the correlation (ρ = c·scaleᵢ·scaleⱼ) and ``h`` is the
    orthant limit: ReLU 1/s and α = b/s; erf √2/√D and √2 b/√D.
    """

    def __init__(self, w: Array, b: Array, kind: str) -> None:
        self.w, self.b = w, b
        s2 = np.einsum("...i,...i->...", w, w)
        self.s = np.sqrt(s2)
        pos = self.s > 0
        if kind == "relu":
            self.scale = np.divide(1.0, self.s, out=np.zeros_like(self.s), where=pos)
        else:
            self.dd = 1.0 + 2.0 * s2
            self.scale = np.sqrt(2.0 / self.dd)
        self.h = b * self.scale + 0.0  # -0.0 → +0.0: Owen's T divides by h
        self.cdf = special.ndtr(self.h)
        self.ph = _pdf(self.h)
        if kind == "relu":  # exact w = 0 limits: u ≡ b
            self.ph = np.where(pos, self.ph, 0.0)
            self.prob = np.where(pos, self.cdf, (b >= 0).astype(float))
            self.mean = np.where(pos, b * self.cdf + self.s * self.ph, np.maximum(b, 0.0))
            self.sf = self.s * self.ph  # s φ(α)
            self.dos = self.ph * self.scale  # φ(α)/s


class _BvnBlock:
    """Chunked, optionally threaded evaluation of the ReLU or erf closed form.

    Stage 1 computes per pair ρ, ρ̄, β′ = (h′ − ρh)/ρ̄, Φ(β′), e^{−β′²/2} and T(h, β′/h);
    stage 2 combines them (formulas in :mod:`meanfield.kernels`).  A symmetric block stores
    stage 1 and reads the transposed pair for Φ(β) and T(h′, β/h′).
    """

    def __init__(
        self, kind: str, w: Array, b: Array, wp: Array, bp: Array, *, grad: bool, same: bool
    ) -> None:
        batch = np.broadcast_shapes(w.shape[:-2], wp.shape[:-2])
        m, k, d = w.shape[-2], wp.shape[-2], w.shape[-1]
        self.kind, self.batch, self.m, self.k, self.grad, self.same = kind, batch, m, k, grad, same

        def side(ww: Array, bb: Array, n: int) -> _Side:
            flat_w = np.broadcast_to(ww, (*batch, n, d)).reshape(-1, n, d)
            return _Side(flat_w, np.broadcast_to(bb, (*batch, n)).reshape(-1, n), kind)

        self.row = side(w, b, m)
        self.col = self.row if same else side(wp, bp, k)
        self.bias_free = not (np.any(b) or np.any(bp))
        n = self.row.b.shape[0]
        names = ("value", "A", "B", "G")[: 4 if grad else 1]
        self.out = {name: np.empty((n, m, k)) for name in names}
        if same:  # stage-1 buffers, read transposed in stage 2
            names = ("c", "rho", "rbar") + (() if self.bias_free else ("p2", "q2", "t_h"))
            self.buf = {name: np.empty((n, m, k)) for name in names}
        rows = max(1, _CHUNK // max(k, 1))
        self.tasks = [(i, slice(r, min(r + rows, m))) for i in range(n) for r in range(0, m, rows)]

    def run(self, workers: int) -> tuple[Array, Array | None, Array | None, Array | None]:
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
        c = np.matmul(row.w[n, rs], col.w[n].T, out=geo["c"])
        rho = np.multiply(c, row.scale[n, rs, None], out=geo["rho"])
        rho *= col.scale[n, None, :]
        np.copysign(1.0, rho, out=rho, where=np.abs(rho) > _RHO_SNAP)  # also clips
        if self.same and self.kind == "relu":  # exact ρᵢᵢ = 1
            idx = np.arange(rs.start, rs.stop)
            rho[idx - rs.start, idx] = np.where(row.s[n, idx] > 0, 1.0, 0.0)
        rbar = np.multiply(rho, rho, out=geo["rbar"])
        np.subtract(1.0, rbar, out=rbar)
        np.sqrt(np.maximum(rbar, 0.0, out=rbar), out=rbar)
        if self.bias_free:
            return
        hi, hj = row.h[n, rs, None], col.h[n, None, :]
        den = np.maximum(rbar, _TINY)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            beta = np.multiply(rho, hi)
            np.subtract(hj, beta, out=beta)
            beta /= den
            special.owens_t(hi, beta / hi, out=geo["t_h"])
            if not self.same:
                beta1 = np.multiply(rho, hj)
                np.subtract(hi, beta1, out=beta1)
                beta1 /= den
                special.ndtr(beta1, out=geo["p1"])
                special.owens_t(hj, beta1 / hj, out=geo["t_k"])
            special.ndtr(beta, out=geo["p2"])
            q2 = np.square(beta, out=beta)
        q2 *= -0.5
        np.exp(q2, out=geo["q2"])  # √(2π) φ(β′)

    def _both_stages(self, task: tuple[int, slice]) -> None:
        n, rs = task
        shape = (rs.stop - rs.start, self.k)
        names = ("c", "rho", "rbar") + (() if self.bias_free else ("p1", "p2", "q2", "t_h", "t_k"))
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
        value = np.multiply(geo["c"], bvn, out=out["value"])
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

r"""Compiled Gauss–Hermite kernel blocks (numba), checked against :mod:`meanfield.quadrature`.

For activations with no closed form (sigmoid, tanh, mixed pairs) the blocks K, A, B, G of
:func:`meanfield.kernels.kernel_block` are tensor Gauss–Hermite sums over n² nodes per
pair: with u = b + s tₖ, u′ₖₗ = b′ + s′(ρ tₖ + ρ̄ tₗ),

.. math::

    K = \sum_k \omega_k\,\sigma(u_k) I_k, \quad G = \sum_k \omega_k\,\dot\sigma(u_k) I_k,
    \quad M = \sum_k \omega_k t_k\,\dot\sigma(u_k) I_k, \quad
    D = \sum_k \omega_k\,\dot\sigma(u_k) I'_k,

    I_k = \sum_l \omega_l\,\sigma'(u'_{kl}), \qquad I'_k = \sum_l \omega_l\,\dot\sigma'(u'_{kl}),

A = (M − ρ s′ D)/s, B = D (formulas in :func:`meanfield.kernels.kernel_block`).  The
numpy reference (:func:`meanfield.quadrature._quadrature`) loops over the n² nodes in
Python with array operations over all pairs; here one compiled loop per pair runs the
inner sum over l vectorised (σ of the built-in activations from the vectorisable
:func:`meanfield._fast_bvn._exp`), rows spread over threads.  Only the built-in
activations (:data:`ACTIVATION_CODES`) are compiled; the results agree with the
reference to about 1e-15 (order of the sums, ulps of σ).

numba is optional: without it :func:`available` is ``False``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from meanfield import _fast_bvn

__all__ = ["ACTIVATION_CODES", "available", "blocks"]

Array = NDArray[np.floating]

#: Integer codes of the built-in activations in the kernels.
ACTIVATION_CODES = {"relu": 0, "sigmoid": 1, "tanh": 2, "erf": 3}
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_ROWS = 16  # rows per thread task
_PARALLEL_MIN = 1 << 10  # smallest block (pairs) handed to worker threads

_KERNELS: dict[str, set[str]] = {"_sigma": set(), "_rows": {"contract", "reassoc"}}
_INLINE = ("_sigma",)


available = _fast_bvn.available
_compile = _fast_bvn.Jit(globals(), _KERNELS, _INLINE, needs=(_fast_bvn.JIT,)).compile


def _sigma(code: int, u: float) -> tuple[float, float]:  # pragma: no cover - compiled
    """σ(u), σ′(u) as :mod:`meanfield.activations` (e^{−|u|} forms for the tails)."""
    if code == 0:
        return (u if u > 0.0 else 0.0), (1.0 if u >= 0.0 else 0.0)
    if code == 1:
        z = _fast_bvn._exp(-abs(u))
        r = 1.0 / (1.0 + z)
        return (r if u >= 0.0 else z * r), z * r * r
    if code == 2:
        z = _fast_bvn._exp(-2.0 * abs(u))
        r = 1.0 / (1.0 + z)
        v = (1.0 - z) * r
        return (v if u >= 0.0 else -v), 4.0 * z * r * r
    a = min(abs(u), 64.0)
    return math.erf(u), _TWO_OVER_SQRT_PI * _fast_bvn._exp(-a * a)


def _rows(
    code: int, code2: int, grad: bool, tasks: NDArray[np.int64], start: int, step: int,
    t: Array, om: Array, s: Array, b: Array, sp: Array, bp: Array, rho: Array, V: Array,
    A: Array, B: Array, G: Array,
) -> None:  # pragma: no cover - compiled
    """Rows ``tasks[start::step]`` (batch, first row, end row) of the blocks."""
    n = t.shape[0]
    f1 = np.empty(n)
    d1 = np.empty(n)
    for task in range(start, tasks.shape[0], step):
        nb, i0, i1 = tasks[task, 0], tasks[task, 1], tasks[task, 2]
        for i in range(i0, i1):
            for q in range(n):
                val, der = _sigma(code, b[nb, i] + s[nb, i] * t[q])
                f1[q] = val * om[q]
                d1[q] = der * om[q]
            inv_s = 1.0 / s[nb, i] if s[nb, i] > 0.0 else 0.0
            for j in range(sp.shape[1]):
                r = rho[nb, i, j]
                v = sp[nb, j] * math.sqrt((1.0 - r) * (1.0 + r))
                slope = sp[nb, j] * r
                value, g_b, mom, dd = 0.0, 0.0, 0.0, 0.0
                for q in range(n):
                    mu = bp[nb, j] + slope * t[q]
                    inner, inner_d = 0.0, 0.0
                    for p in range(n):  # vectorised; the test of code2 leaves the loop
                        val, der = _sigma(code2, mu + v * t[p])
                        inner += om[p] * val
                        inner_d += om[p] * der
                    value += f1[q] * inner
                    g_b += d1[q] * inner
                    mom += (t[q] * d1[q]) * inner
                    dd += d1[q] * inner_d
                V[nb, i, j] = value
                if grad:
                    A[nb, i, j] = (mom - slope * dd) * inv_s
                    B[nb, i, j] = dd
                    G[nb, i, j] = g_b


def blocks(
    code: int, code2: int, t: Array, om: Array, s: Array, b: Array, sp: Array, bp: Array,
    rho: Array, *, grad: bool, workers: int,
) -> tuple[Array, Array | None, Array | None, Array | None]:
    r"""Compute the quadrature blocks K, A, B, G (compiled).

    .. math:: K_{ij} \approx \sum_{k,l} \omega_k\omega_l\, \sigma(b_i + s_i t_k)\,
              \sigma'\big(b'_j + s'_j(\rho_{ij} t_k + \bar\rho_{ij} t_l)\big)

    Parameters
    ----------
    code, code2 : int
        σ and σ′ (:data:`ACTIVATION_CODES`).
    t, om : ndarray, shape (n,)
        Gauss–Hermite nodes and weights (:func:`meanfield.quadrature.gauss_hermite`).
    s, b : ndarray, shape (N, m)
        ‖w‖ and b of the first argument.
    sp, bp : ndarray, shape (N, k)
        ‖w′‖ and b′ of the second.
    rho : ndarray, shape (N, m, k)
        Correlations ρᵢⱼ.
    grad, workers
        As for :func:`meanfield._fast_kernels.blocks`.

    Returns
    -------
    value, coef_w, coef_wp, grad_b : ndarray, shape (N, m, k)
        ``None`` for the last three without ``grad``.
    """
    _compile()
    nb, m, k = rho.shape
    out = [np.empty((nb, m, k)) for _ in range(4 if grad else 1)]
    out += [np.empty((1, 1, 1))] * (4 - len(out))
    tasks = np.array([(n, i, min(i + _ROWS, m)) for n in range(nb) for i in range(0, m, _ROWS)],
                     dtype=np.int64).reshape(-1, 3)
    run: Any = _rows
    _fast_bvn.run_threads(
        lambda start, step: run(code, code2, grad, tasks, start, step, t, om, s, b, sp, bp,
                                rho, *out),
        min(workers, len(tasks)) if rho.size >= _PARALLEL_MIN else 1,
    )
    if not grad:
        return out[0], None, None, None
    return out[0], out[1], out[2], out[3]

r"""Gauss–Hermite quadrature of Gaussian expectations of one or two pre-activations.

With probabilists' Gauss–Hermite nodes and weights (tₖ, ωₖ) (:func:`gauss_hermite`),

.. math:: \mathbb E[\sigma(b + sZ)] \approx \sum_k \omega_k\, \sigma(b + s t_k), \qquad
   \mathbb E[\sigma(u)\,\sigma'(u')] \approx \sum_{k,l} \omega_k\omega_l\,
   \sigma(b + s t_k)\, \sigma'\big(b' + s'(\rho t_k + \bar\rho t_l)\big)

for any activation; :mod:`meanfield.kernels` uses it where no closed form applies
(sigmoid, tanh, mixed pairs) and documents its error in
:func:`~meanfield.kernels.kernel_block`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.typing import NDArray

from meanfield._validation import check_int
from meanfield.activations import Activation

__all__ = ["DEFAULT_NODES", "gauss_hermite"]

Array = NDArray[np.floating]

DEFAULT_NODES = 32
"""Default number of Gauss–Hermite nodes per axis of the quadrature."""


@lru_cache(maxsize=64)
def _gh(n: int) -> tuple[Array, Array]:
    x, wt = hermegauss(n)
    wt = wt / wt.sum()
    x.flags.writeable = wt.flags.writeable = False
    return x, wt


def gauss_hermite(n_nodes: int) -> tuple[Array, Array]:
    r"""Return Gauss–Hermite nodes and weights for the standard normal law.

    .. math:: \mathbb E[g(Z)] \approx \sum_{k=1}^{n} \omega_k\, g(t_k), \qquad
              Z\sim\mathcal N(0,1),

    exact for polynomials of degree ≤ 2n − 1 (probabilists' nodes, weights summing to 1).

    Parameters
    ----------
    n_nodes : int
        n ≥ 1.

    Returns
    -------
    nodes, weights : ndarray, shape (n,)
        Read-only.
    """
    return _gh(check_int("n_nodes", n_nodes))


def _quadrature(
    w: Array, b: Array, wp: Array, bp: Array, act: Activation, act2: Activation, n: int,
    *, grad: bool,
) -> tuple[Array, Array | None, Array | None, Array | None]:
    """Blocks K, A, B, G of a pair (formula in :func:`meanfield.kernels.kernel_block`)."""
    t, om = _gh(n)
    s = np.sqrt(np.einsum("...i,...i->...", w, w))
    sp = np.sqrt(np.einsum("...i,...i->...", wp, wp))
    den = s[..., :, None] * sp[..., None, :]
    rho = np.clip((w @ np.swapaxes(wp, -1, -2)) / np.where(den > 0, den, 1.0), -1.0, 1.0)
    v = sp[..., None, :] * np.sqrt((1.0 - rho) * (1.0 + rho))
    slope = sp[..., None, :] * rho
    u = b[..., :, None] + s[..., :, None] * t  # (..., m, n)
    f1, d1 = act.value(u) * om, act.derivative(u) * om
    acc = [np.zeros_like(rho) for _ in range(4 if grad else 1)]  # K, G, M, D
    for kk in range(n):
        mu = bp[..., None, :] + slope * t[kk]
        inner, inner_d = np.zeros_like(rho), np.zeros_like(rho)
        for tl, ol in zip(t, om, strict=True):
            ul = mu + v * tl
            inner += ol * act2.value(ul)
            if grad:
                inner_d += ol * act2.derivative(ul)
        acc[0] += f1[..., :, None, kk] * inner
        if grad:
            acc[1] += d1[..., :, None, kk] * inner
            acc[2] += (t[kk] * d1[..., :, None, kk]) * inner
            acc[3] += d1[..., :, None, kk] * inner_d
    if not grad:
        return acc[0], None, None, None
    value, g_b, mom, dd = acc
    inv_s = np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)[..., :, None]
    return value, (mom - slope * dd) * inv_s, dd, g_b


def _quadrature_mean(w: Array, b: Array, act: Activation, n: int) -> tuple[Array, Array]:
    """E[σ(u)] and its gradient in (w, b) for u = b + ‖w‖ Z (Stein's lemma in Z)."""
    t, om = _gh(n)
    s = np.sqrt(np.einsum("...i,...i->...", w, w))
    u = b[..., None] + s[..., None] * t
    der = act.derivative(u)
    coef = np.divide((der * t) @ om, s, out=np.zeros_like(s), where=s > 0)
    return act.value(u) @ om, np.concatenate([coef[..., None] * w, (der @ om)[..., None]], -1)

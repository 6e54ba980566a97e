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

from meanfield import _fast_quadrature
from meanfield._validation import check_int
from meanfield.activations import ACTIVATIONS, Activation
from meanfield.bivariate_normal import _std

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
    *, grad: bool, backend: str = "auto", workers: int = 1,
) -> tuple[Array, Array | None, Array | None, Array | None]:
    """Blocks K, A, B, G of a pair (formula in :func:`meanfield.kernels.kernel_block`).

    The compiled loops of :mod:`meanfield._fast_quadrature` run for built-in activations
    unless ``backend="numpy"``; the loop below over the n² nodes is the reference.
    """
    t, om = _gh(n)
    with np.errstate(all="ignore"):  # huge weights: non-finite results are refused later
        s, sp = _std(w), _std(wp)
        unit = w / np.where(s > 0, s, 1.0)[..., None]
        unit_p = wp / np.where(sp > 0, sp, 1.0)[..., None]
        rho = np.clip(unit @ np.swapaxes(unit_p, -1, -2), -1.0, 1.0)
        codes = [_fast_quadrature.ACTIVATION_CODES.get(a.name) for a in (act, act2)]
        builtin = all(ACTIVATIONS.get(a.name) is a for a in (act, act2))
        if (backend != "numpy" and builtin and codes[0] is not None and codes[1] is not None
                and _fast_quadrature.available()):
            batch = rho.shape[:-2]
            m, k = rho.shape[-2:]

            def flat(x: Array, size: int) -> Array:
                return np.ascontiguousarray(np.broadcast_to(x, (*batch, size)).reshape(-1, size))

            out = _fast_quadrature.blocks(
                codes[0], codes[1], t, om, flat(s, m), flat(b, m), flat(sp, k),
                flat(bp, k), np.ascontiguousarray(rho.reshape(-1, m, k)), grad=grad,
                workers=workers,
            )
            return tuple(None if a is None else a.reshape(rho.shape) for a in out)  # type: ignore[return-value]
        return _quadrature_numpy(s, b, sp, bp, rho, act, act2, t, om, grad=grad)


def _quadrature_numpy(
    s: Array, b: Array, sp: Array, bp: Array, rho: Array, act: Activation, act2: Activation,
    t: Array, om: Array, *, grad: bool,
) -> tuple[Array, Array | None, Array | None, Array | None]:
    v = sp[..., None, :] * np.sqrt((1.0 - rho) * (1.0 + rho))
    slope = sp[..., None, :] * rho
    u = b[..., :, None] + s[..., :, None] * t  # (..., m, n)
    f1, d1 = act.value(u) * om, act.derivative(u) * om
    acc = [np.zeros_like(rho) for _ in range(4 if grad else 1)]  # K, G, M, D
    for kk in range(t.shape[0]):
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
    s = _std(w)
    u = b[..., None] + s[..., None] * t
    der = act.derivative(u)
    coef = np.divide((der * t) @ om, s, out=np.zeros_like(s), where=s > 0)
    return act.value(u) @ om, np.concatenate([coef[..., None] * w, (der @ om)[..., None]], -1)

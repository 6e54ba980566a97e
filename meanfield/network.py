r"""The feature φ(θ, x) = a σ(w·x + b), its gradient in θ, and the network f_μ.

Shapes follow one rule: particles ``theta`` are ``(..., m, d+2)``, inputs ``x`` are
``(..., n, d)``, and the leading (ensemble) axes broadcast against each other.
Outputs are indexed ``(..., n, m)`` (input, particle).  Finite inputs whose result
overflows float64 (e.g. entries near 1e300) raise ``ValueError`` rather than return inf
or NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import OverflowResultError, as_float_array, check_inputs, describe
from meanfield.activations import Activation, get_activation
from meanfield.measure import ParticleMeasure

__all__ = ["check_theta", "feature", "feature_grad", "output", "preactivation"]


def check_theta(theta: Any, *, name: str = "theta") -> NDArray[np.floating]:
    r"""Validate particle positions θᵢ = (aᵢ, wᵢ, bᵢ).

    Parameters
    ----------
    theta : array_like, shape (..., m, d+2) or (d+2,), or ParticleMeasure
        Rows ``[a, w_1 … w_d, b]``; a single particle ``(d+2,)`` is read as
        ``(1, d+2)``; a measure gives its positions.
    name : str, default "theta"
        Parameter name used in error messages.

    Returns
    -------
    ndarray, shape (..., m, d+2)

    Raises
    ------
    TypeError
        If ``theta`` is not an array of real numbers.
    ValueError
        If ``theta`` is a scalar, has fewer than 3 columns (d ≥ 1), no particle, or a
        non-finite entry.
    """
    if isinstance(theta, ParticleMeasure):
        return theta.theta
    arr = as_float_array(name, theta, min_ndim=1)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.shape[-1] < 3 or arr.shape[-2] == 0:
        raise ValueError(
            f"{name} must have shape (..., m, d+2) with m, d >= 1; got shape {arr.shape}"
        )
    return arr


def _checked_pair(
    theta: ArrayLike | ParticleMeasure, x: ArrayLike
) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """Validate ``theta`` and ``x`` together: same d, broadcastable ensemble axes."""
    th = check_theta(theta)
    xx = check_inputs(x, th.shape[-1] - 2, owner="theta")
    try:
        np.broadcast_shapes(th.shape[:-2], xx.shape[:-2])
    except ValueError:
        raise ValueError(
            f"the leading (ensemble) axes of theta {th.shape[:-2]} and x {xx.shape[:-2]} "
            f"must broadcast; got theta of shape {th.shape} and x of shape {xx.shape}"
        ) from None
    return th, xx


def _finite(result: NDArray[np.floating], what: str) -> NDArray[np.floating]:
    """Return ``result`` if it is finite, else raise: finite inputs overflowed float64."""
    if not np.all(np.isfinite(result)):
        raise OverflowResultError(
            f"{what} overflowed float64 (non-finite result from finite theta and x); "
            "rescale theta or x"
        )
    return result


def _preactivation(theta: NDArray[np.floating], x: NDArray[np.floating]) -> NDArray[np.floating]:
    # (..., n, d) @ (..., d, m) + (..., 1, m) -> (..., n, m)
    return x @ np.swapaxes(theta[..., 1:-1], -1, -2) + theta[..., None, :, -1]


def _checked_preactivation(
    theta: ArrayLike | ParticleMeasure, x: ArrayLike, activation: str | Activation
) -> tuple[NDArray[np.floating], NDArray[np.floating], Activation, NDArray[np.floating]]:
    """Validate θ, x and σ; return them with the pre-activations u = w·x + b, ``(..., n, m)``.

    ``u`` is not checked for overflow: each caller checks its own result with
    :func:`_finite`.
    """
    th, xx = _checked_pair(theta, x)
    sigma = get_activation(activation)
    with np.errstate(over="ignore", invalid="ignore"):
        u = _preactivation(th, xx)
    return th, xx, sigma, u


def preactivation(theta: ArrayLike | ParticleMeasure, x: ArrayLike) -> NDArray[np.floating]:
    r"""Compute the pre-activations uᵢ(x) = wᵢ·x + bᵢ.

    .. math:: u_{ki} = w_i\cdot x_k + b_i

    Parameters
    ----------
    theta : array_like, shape (..., m, d+2), or ParticleMeasure
        Particles (only w and b are read).
    x : array_like, shape (..., n, d)
        Inputs.

    Returns
    -------
    ndarray, shape (..., n, m)
    """
    th, xx = _checked_pair(theta, x)
    with np.errstate(over="ignore", invalid="ignore"):
        return _finite(_preactivation(th, xx), "preactivation w·x + b")


def feature(
    theta: ArrayLike | ParticleMeasure, x: ArrayLike, *, activation: str | Activation = "relu"
) -> NDArray[np.floating]:
    r"""Evaluate the feature of every particle at every input.

    .. math:: \varphi(\theta_i, x_k) = a_i\, \sigma(w_i\cdot x_k + b_i)

    Parameters
    ----------
    theta : array_like, shape (..., m, d+2), or ParticleMeasure
        Particles.
    x : array_like, shape (..., n, d)
        Inputs.
    activation : str or Activation, default "relu"
        σ.

    Returns
    -------
    ndarray, shape (..., n, m)
        Entry ``[..., k, i]`` is φ(θᵢ, x_k).  Leading axes of ``theta`` and ``x``
        broadcast.

    Notes
    -----
    For ReLU, φ(λθ, x) = λ²φ(θ, x) for λ > 0 (Chizat & Bach 2018, §3.3); for the
    other activations φ is linear in ``a`` only.
    """
    th, _, sigma, u = _checked_preactivation(theta, x, activation)
    with np.errstate(over="ignore", invalid="ignore"):
        return _finite(th[..., None, :, 0] * sigma.value(u), "feature a σ(w·x + b)")


def feature_grad(
    theta: ArrayLike | ParticleMeasure, x: ArrayLike, *, activation: str | Activation = "relu"
) -> NDArray[np.floating]:
    r"""Compute the gradient of the feature with respect to θ = (a, w, b).

    .. math::
        \nabla_\theta \varphi(\theta, x)
        = \big(\sigma(u),\; a\,\sigma'(u)\,x,\; a\,\sigma'(u)\big),
        \qquad u = w\cdot x + b

    Parameters
    ----------
    theta, x, activation
        As in :func:`feature`.

    Returns
    -------
    ndarray, shape (..., n, m, d+2)
        Entry ``[..., k, i, :]`` is ∇_θφ(θᵢ, x_k).
    """
    th, xx, sigma, u = _checked_preactivation(theta, x, activation)
    with np.errstate(over="ignore", invalid="ignore"):
        s = sigma.value(u)
        g = th[..., None, :, 0] * sigma.derivative(u)  # a σ'(u), (..., n, m)
        shape = (*np.broadcast_shapes(u.shape, (*xx.shape[:-1], 1)), th.shape[-1])
        out = np.empty(shape, dtype=np.result_type(th, xx))
        out[..., 0] = s
        out[..., 1:-1] = g[..., None] * xx[..., :, None, :]
        out[..., -1] = g
    return _finite(out, "feature_grad ∇_θ φ")


def output(
    measure: ParticleMeasure, x: ArrayLike, *, activation: str | Activation = "relu"
) -> NDArray[np.floating]:
    r"""Evaluate the network f_μ at the inputs.

    .. math::
        f_\mu(x) = \int \varphi(\theta, x)\,d\mu(\theta)
        = \sum_i p_i\, a_i\,\sigma(w_i\cdot x + b_i)

    With uniform masses this is the notebook's ``np.mean`` over neurons.

    Parameters
    ----------
    measure : ParticleMeasure
        μ, positions ``(..., m, d+2)``.
    x : array_like, shape (..., n, d)
        Inputs (leading axes broadcast with the measure's ensemble axes).
    activation : str or Activation, default "relu"
        σ.

    Returns
    -------
    ndarray, shape (..., n)
        f_μ(x_k); the leading axes are the broadcast of ``batch_shape`` and those of
        ``x``.
    """
    if not isinstance(measure, ParticleMeasure):
        raise TypeError(f"measure must be a ParticleMeasure; got {describe(measure)}")
    th, _, sigma, u = _checked_preactivation(measure, x, activation)
    # σ(u) @ (p a): the same arithmetic as the estimators' residuals, so that a student
    # equal to its teacher has residuals exactly 0.
    with np.errstate(over="ignore", invalid="ignore"):
        f = (sigma.value(u) @ (measure.masses * th[..., 0])[..., :, None])[..., 0]
    return _finite(f, "output f_μ(x)")

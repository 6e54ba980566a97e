r"""The feature φ(θ, x) = a σ(w·x + b), its gradient in θ, and the network f_μ.

Shapes follow one rule: particles ``theta`` are ``(..., m, d+2)``, inputs ``x`` are
``(..., n, d)``, and the leading (ensemble) axes broadcast against each other.
Outputs are indexed ``(..., n, m)`` (input, particle).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import as_float_array, check_inputs, describe
from meanfield.activations import Activation, get_activation
from meanfield.measure import ParticleMeasure

__all__ = ["check_theta", "feature", "feature_grad", "output", "preactivation"]


def check_theta(theta: Any, *, name: str = "theta") -> NDArray[np.floating]:
    """Validate particle positions of shape ``(..., m, d+2)`` (or a measure's)."""
    if isinstance(theta, ParticleMeasure):
        return theta.theta
    arr = as_float_array(name, theta, min_ndim=1)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.shape[-1] < 3 or arr.shape[-2] == 0:
        raise ValueError(f"{name} must have shape (..., m, d+2) with m, d >= 1; got {arr.shape}")
    return arr


def _preactivation(theta: NDArray[np.floating], x: NDArray[np.floating]) -> NDArray[np.floating]:
    # (..., n, d) @ (..., d, m) + (..., 1, m) -> (..., n, m)
    return x @ np.swapaxes(theta[..., 1:-1], -1, -2) + theta[..., None, :, -1]


def preactivation(theta: ArrayLike | ParticleMeasure, x: ArrayLike) -> NDArray[np.floating]:
    r"""Pre-activations uᵢ(x) = wᵢ·x + bᵢ.

    Parameters
    ----------
    theta : array_like, shape (..., m, d+2), or ParticleMeasure
        Particles.
    x : array_like, shape (..., n, d)
        Inputs.

    Returns
    -------
    ndarray, shape (..., n, m)
    """
    th = check_theta(theta)
    return _preactivation(th, check_inputs(x, th.shape[-1] - 2))


def feature(
    theta: ArrayLike | ParticleMeasure, x: ArrayLike, *, activation: str | Activation = "relu"
) -> NDArray[np.floating]:
    r"""The feature of every particle at every input.

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
    """
    th = check_theta(theta)
    sigma = get_activation(activation)
    u = _preactivation(th, check_inputs(x, th.shape[-1] - 2))
    return th[..., None, :, 0] * sigma.value(u)


def feature_grad(
    theta: ArrayLike | ParticleMeasure, x: ArrayLike, *, activation: str | Activation = "relu"
) -> NDArray[np.floating]:
    r"""Gradient of the feature with respect to θ = (a, w, b).

    .. math::
        \nabla_\theta \varphi(\theta, x)
        = \big(\sigma(u),\; a\,\sigma'(u)\,x,\; a\,\sigma'(u)\big),
        \qquad u = w\cdot x + b

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
    ndarray, shape (..., n, m, d+2)
        Entry ``[..., k, i, :]`` is ∇_θφ(θᵢ, x_k).
    """
    th = check_theta(theta)
    sigma = get_activation(activation)
    xx = check_inputs(x, th.shape[-1] - 2)
    u = _preactivation(th, xx)
    s = sigma.value(u)
    g = th[..., None, :, 0] * sigma.derivative(u)  # a σ'(u), (..., n, m)
    shape = np.broadcast_shapes(u.shape, xx.shape[:-1] + (1,)) + (th.shape[-1],)
    out = np.empty(shape, dtype=np.result_type(th, xx))
    out[..., 0] = s
    out[..., 1:-1] = g[..., None] * xx[..., :, None, :]
    out[..., -1] = g
    return out


def output(
    measure: ParticleMeasure, x: ArrayLike, *, activation: str | Activation = "relu"
) -> NDArray[np.floating]:
    r"""The network f_μ at the inputs.

    .. math:: f_\mu(x) = \int \varphi(\theta, x)\,d\mu(\theta) = \sum_i p_i\, a_i\,\sigma(w_i\cdot x + b_i)

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
    """
    if not isinstance(measure, ParticleMeasure):
        raise TypeError(f"measure must be a ParticleMeasure; got {describe(measure)}")
    phi = feature(measure, x, activation=activation)
    return (phi @ measure.masses[..., :, None])[..., 0]

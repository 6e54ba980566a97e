r"""The risk F, the first variation J_μ and the velocity field v_μ = −∇J_μ.

.. math::

    F(\mu) = \tfrac12\,\mathbb{E}_x\big[(f_\mu(x) - y(x))^2\big], \qquad
    J_\mu(\theta) = \mathbb{E}_x\big[(f_\mu(x) - y(x))\,\varphi(\theta, x)\big], \qquad
    v_\mu(\theta) = -\nabla_\theta J_\mu(\theta).

Every dynamics of the toolkit integrates dθᵢ/dt = v̂(θᵢ) for an estimator v̂ of v_μ
(Chizat & Bach 2018, §2; Mei, Montanari & Nguyen 2018).  An estimator is a
:class:`VelocityEstimator`; this module provides the sample-based one
(:class:`SampleEstimator`: Monte-Carlo population or empirical risk on a fixed sample).
The particle gradient identity

.. math:: \frac{\partial F}{\partial \theta_i} = p_i\, \nabla J_\mu(\theta_i)

links the flow in mean-field time to gradient descent on the particles.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import check_inputs, describe
from meanfield.activations import Activation, get_activation
from meanfield.data import Target, as_target, evaluate_target
from meanfield.measure import ParticleMeasure
from meanfield.network import _preactivation, check_theta

__all__ = [
    "SampleEstimator",
    "VelocityEstimator",
    "first_variation_grad_on_sample",
    "residual_on_sample",
]


def residual_on_sample(
    theta: NDArray[np.floating],
    masses: NDArray[np.floating],
    x: NDArray[np.floating],
    y: NDArray[np.floating],
    sigma: Activation,
) -> NDArray[np.floating]:
    r"""Residuals rₖ = f_μ(xₖ) − yₖ on a sample (no validation: internal hot path).

    Shapes: ``theta (..., m, d+2)``, ``masses (..., m)``, ``x (..., n, d)``, ``y (..., n)``;
    returns ``(..., n)``.
    """
    u = _preactivation(theta, x)
    f = (sigma.value(u) @ (masses * theta[..., 0])[..., :, None])[..., 0]
    return f - y


def first_variation_grad_on_sample(
    points: NDArray[np.floating],
    x: NDArray[np.floating],
    r: NDArray[np.floating],
    sigma: Activation,
) -> NDArray[np.floating]:
    r"""∇J_μ at ``points`` from residuals ``r`` on the sample ``x`` (internal hot path).

    .. math::
        \nabla J_\mu(\theta) = \frac1n\sum_k r_k\,\big(\sigma(u_k),\ a\sigma'(u_k)x_k,\
        a\sigma'(u_k)\big), \qquad u_k = w\cdot x_k + b

    Shapes: ``points (..., k, d+2)``, ``x (..., n, d)``, ``r (..., n)``; returns
    ``(..., k, d+2)``.
    """
    n = x.shape[-2]
    u = _preactivation(points, x)  # (..., n, k)
    rs = r[..., None, :] / n  # (..., 1, n)
    grad_a = (rs @ sigma.value(u))[..., 0, :]  # (..., k)
    c = rs * np.swapaxes(sigma.derivative(u), -1, -2) * points[..., :, None, 0]  # (..., k, n)
    grad_w = c @ x  # (..., k, d)
    grad_b = c.sum(axis=-1)  # (..., k)
    shape = np.broadcast_shapes(grad_w.shape[:-1], points.shape[:-1])
    out = np.empty(shape + (points.shape[-1],), dtype=grad_w.dtype)
    out[..., 0] = grad_a
    out[..., 1:-1] = grad_w
    out[..., -1] = grad_b
    return out


class VelocityEstimator(ABC):
    """An estimator of F(μ), J_μ and v_μ: one of the toolkit's ways to see the target.

    Subclasses implement :meth:`risk`, :meth:`first_variation` and
    :meth:`grad_first_variation`; the rest follows.

    Attributes
    ----------
    activation : Activation
        σ of the student's feature.
    """

    activation: Activation
    d: int

    def _check(self, measure: ParticleMeasure) -> None:
        if not isinstance(measure, ParticleMeasure):
            raise TypeError(f"measure must be a ParticleMeasure; got {describe(measure)}")
        if measure.d != self.d:
            raise ValueError(
                f"measure has input dimension d={measure.d} but the estimator has d={self.d}"
            )

    def _points(self, measure: ParticleMeasure, theta: ArrayLike | None) -> NDArray[np.floating]:
        self._check(measure)
        if theta is None:
            return measure.theta
        pts = check_theta(theta)
        if pts.shape[-1] != measure.d + 2:
            raise ValueError(
                f"theta must have shape (..., k, {measure.d + 2}) to match the measure; "
                f"got shape {pts.shape}"
            )
        return pts

    @abstractmethod
    def risk(self, measure: ParticleMeasure) -> NDArray[np.floating]:
        r"""The risk F(μ) = ½ E[(f_μ − y)²], shape ``batch_shape``."""

    @abstractmethod
    def first_variation(
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        r"""J_μ(θ) = E[(f_μ(x) − y(x)) φ(θ, x)] at points ``(..., k, d+2)``; shape ``(..., k)``."""

    @abstractmethod
    def grad_first_variation(
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        r"""∇_θ J_μ(θ) at points ``(..., k, d+2)``; shape ``(..., k, d+2)``."""

    def velocity(
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        r"""The velocity field v_μ(θ) = −∇_θ J_μ(θ).

        Parameters
        ----------
        measure : ParticleMeasure
            μ, positions ``(..., m, d+2)``.
        theta : array_like, shape (..., k, d+2), optional
            Points where v_μ is evaluated; default: the particles of μ.

        Returns
        -------
        ndarray, shape (..., k, d+2)
        """
        return -self.grad_first_variation(measure, theta)

    def particle_gradient(self, measure: ParticleMeasure) -> NDArray[np.floating]:
        r"""Gradient of F with respect to the particles, ∂F/∂θᵢ = pᵢ ∇J_μ(θᵢ).

        Returns
        -------
        ndarray, shape (..., m, d+2)
        """
        return measure.masses[..., None] * self.grad_first_variation(measure)


class SampleEstimator(VelocityEstimator):
    r"""F, J_μ and v_μ estimated on a fixed sample (Monte-Carlo population or dataset).

    .. math::
        \hat F(\mu) = \frac1{2n}\sum_{k=1}^n (f_\mu(x_k) - y_k)^2, \qquad
        \hat J_\mu(\theta) = \frac1n\sum_k (f_\mu(x_k) - y_k)\,\varphi(\theta, x_k)

    Parameters
    ----------
    x : array_like, shape (..., n, d)
        Inputs (leading axes: one sample per ensemble member, or shared).
    target : Target, ParticleMeasure or callable
        y; a teacher measure uses the same ``activation``.
    activation : str or Activation, default "relu"
        σ.
    """

    def __init__(
        self,
        x: ArrayLike,
        target: Target | ParticleMeasure | Callable[[NDArray[np.floating]], ArrayLike],
        *,
        activation: str | Activation = "relu",
    ) -> None:
        self.activation = get_activation(activation)
        self.target = as_target(target, activation=self.activation)
        xx = check_inputs(x, self.target.d) if self.target.d else check_inputs(x, np.shape(x)[-1])
        self.d = xx.shape[-1]
        self.x = xx
        self.y = evaluate_target(self.target, xx, self.d)

    @property
    def n(self) -> int:
        """Sample size."""
        return self.x.shape[-2]

    def residual(self, measure: ParticleMeasure) -> NDArray[np.floating]:
        """Residuals f_μ(xₖ) − yₖ, shape ``(..., n)``."""
        self._check(measure)
        return residual_on_sample(measure.theta, measure.masses, self.x, self.y, self.activation)

    def risk(self, measure: ParticleMeasure) -> NDArray[np.floating]:
        r"""Empirical risk ½ mean_k (f_μ(xₖ) − yₖ)², shape ``batch_shape``."""
        r = self.residual(measure)
        return 0.5 * np.mean(r * r, axis=-1)

    def first_variation(
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        r"""Ĵ_μ(θ) = mean_k rₖ φ(θ, xₖ) at the points; shape ``(..., k)``."""
        pts = self._points(measure, theta)
        r = self.residual(measure)
        u = _preactivation(pts, self.x)
        phi = pts[..., None, :, 0] * self.activation.value(u)
        return (r[..., None, :] @ phi)[..., 0, :] / self.n

    def grad_first_variation(
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        r"""∇Ĵ_μ(θ) = mean_k rₖ ∇_θφ(θ, xₖ) at the points; shape ``(..., k, d+2)``."""
        pts = self._points(measure, theta)
        return first_variation_grad_on_sample(pts, self.x, self.residual(measure), self.activation)

r"""The risk F, the first variation J_μ and the velocity field v_μ = −∇J_μ.

.. math::

    F(\mu) = \tfrac12\,\mathbb{E}_x\big[(f_\mu(x) - y(x))^2\big], \qquad
    J_\mu(\theta) = \mathbb{E}_x\big[(f_\mu(x) - y(x))\,\varphi(\theta, x)\big], \qquad
    v_\mu(\theta) = -\nabla_\theta J_\mu(\theta).

Every dynamics of the toolkit integrates dθᵢ/dt = v̂(θᵢ) for an estimator v̂ of v_μ
(Chizat & Bach 2018, §2; Mei, Montanari & Nguyen 2018).  An estimator is a
:class:`VelocityEstimator`; this module provides the sample-based one
(:class:`SampleEstimator`: Monte-Carlo population or empirical risk on a fixed sample);
the exact population one for Gaussian inputs and a teacher network is
:class:`meanfield.population.GaussianPopulationEstimator`.
The particle gradient identity

.. math:: \frac{\partial F}{\partial \theta_i} = p_i\, \nabla J_\mu(\theta_i)

links the flow in mean-field time to gradient descent on the particles.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import as_float_array, check_inputs, describe
from meanfield.activations import Activation, get_activation
from meanfield.data import Target, as_target, evaluate_target
from meanfield.measure import ParticleMeasure
from meanfield.network import _finite, _preactivation, check_theta

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
    r"""Compute the residuals rₖ = f_μ(xₖ) − yₖ on a sample (no validation: hot path).

    .. math:: r_k = \sum_i p_i\, a_i\, \sigma(w_i\cdot x_k + b_i) - y_k

    Parameters
    ----------
    theta : ndarray, shape (..., m, d+2)
        Particles θᵢ.
    masses : ndarray, shape (..., m)
        Masses pᵢ.
    x : ndarray, shape (..., n, d)
        Inputs.
    y : ndarray, shape (..., n)
        Target values.
    sigma : Activation
        σ.

    Returns
    -------
    ndarray, shape (..., n)
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
    r"""Compute ∇J_μ at ``points`` from residuals ``r`` on the sample ``x`` (hot path).

    .. math::
        \nabla J_\mu(\theta) = \frac1n\sum_k r_k\,\big(\sigma(u_k),\ a\sigma'(u_k)x_k,\
        a\sigma'(u_k)\big), \qquad u_k = w\cdot x_k + b

    No validation (internal hot path).

    Parameters
    ----------
    points : ndarray, shape (..., k, d+2)
        Points θ = (a, w, b) where the gradient is evaluated.
    x : ndarray, shape (..., n, d)
        Inputs.
    r : ndarray, shape (..., n)
        Residuals f_μ(x_k) − y_k (see :func:`residual_on_sample`).
    sigma : Activation
        σ.

    Returns
    -------
    ndarray, shape (..., k, d+2)
    """
    n = x.shape[-2]
    u = _preactivation(points, x)  # (..., n, k)
    rs = r[..., None, :] / n  # (..., 1, n)
    grad_a = (rs @ sigma.value(u))[..., 0, :]  # (..., k)
    c = rs * np.swapaxes(sigma.derivative(u), -1, -2) * points[..., :, None, 0]  # (..., k, n)
    grad_w = c @ x  # (..., k, d)
    grad_b = c.sum(axis=-1)  # (..., k)
    shape = np.broadcast_shapes(grad_w.shape[:-1], points.shape[:-1])
    out = np.empty((*shape, points.shape[-1]), dtype=grad_w.dtype)
    out[..., 0] = grad_a
    out[..., 1:-1] = grad_w
    out[..., -1] = grad_b
    return out


class VelocityEstimator(ABC):
    r"""An estimator of F(μ), J_μ and v_μ: one of the toolkit's ways to see the target.

    .. math:: \frac{d\theta_i}{dt} = \hat v_\mu(\theta_i), \qquad
        \hat v_\mu = -\nabla_\theta \hat J_\mu

    Subclasses implement :meth:`risk`, :meth:`first_variation` and
    :meth:`grad_first_variation`; the rest follows.  The docstrings of this class state
    the contract once: a subclass's methods inherit them (and its class docstring gives
    the formulas of its estimate).

    Every method validates its arguments and raises ``TypeError`` when ``measure`` is
    not a :class:`~meanfield.measure.ParticleMeasure` or ``theta`` is not an array of
    real numbers, and ``ValueError`` when they do not match the estimator (input
    dimension d, ensemble axes), when ``theta`` has a non-finite entry, or when the
    result overflows float64 (e.g. positions near 1e300): it never returns a non-finite
    value.

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
        try:
            np.broadcast_shapes(pts.shape[:-2], measure.batch_shape)
        except ValueError:
            raise ValueError(
                f"theta's leading axes {pts.shape[:-2]} must broadcast with the measure's "
                f"batch_shape {measure.batch_shape}; got theta of shape {pts.shape}"
            ) from None
        return pts

    @abstractmethod
    def risk(self, measure: ParticleMeasure) -> NDArray[np.floating]:
        r"""Estimate the risk F(μ).

        .. math:: F(\mu) = \tfrac12\,\mathbb{E}_x\big[(f_\mu(x) - y(x))^2\big]

        Parameters
        ----------
        measure : ParticleMeasure
            μ, positions ``(..., m, d+2)``.

        Returns
        -------
        ndarray, shape ``batch_shape``
            The measure's ensemble axes, broadcast with the estimator's own (those of a
            sample or of a teacher).
        """

    @abstractmethod
    def first_variation(
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        r"""Estimate the first variation J_μ(θ) at points.

        .. math:: J_\mu(\theta) = \mathbb{E}_x\big[(f_\mu(x) - y(x))\,\varphi(\theta, x)\big]

        Parameters
        ----------
        measure : ParticleMeasure
            μ, positions ``(..., m, d+2)``.
        theta : array_like, shape (..., k, d+2), optional
            Points where J_μ is evaluated; default: the particles of μ.

        Returns
        -------
        ndarray, shape (..., k)
        """

    @abstractmethod
    def grad_first_variation(
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        r"""Estimate ∇_θ J_μ(θ) at points.

        .. math::
            \nabla_\theta J_\mu(\theta)
            = \mathbb{E}_x\big[(f_\mu(x) - y(x))\,\nabla_\theta\varphi(\theta, x)\big]

        Parameters
        ----------
        measure : ParticleMeasure
            μ, positions ``(..., m, d+2)``.
        theta : array_like, shape (..., k, d+2), optional
            Points where ∇J_μ is evaluated; default: the particles of μ.

        Returns
        -------
        ndarray, shape (..., k, d+2)
        """

    def velocity(
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        r"""Estimate the velocity field v_μ(θ) = −∇_θ J_μ(θ).

        .. math:: v_\mu(\theta) = -\nabla_\theta J_\mu(\theta)

        The Wasserstein gradient flow moves each particle as dθᵢ/dt = v_μ(θᵢ)
        (Chizat & Bach 2018, §2.2).

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
        r"""Compute the gradient of F with respect to the particles.

        .. math:: \frac{\partial F}{\partial \theta_i} = p_i\, \nabla J_\mu(\theta_i)

        Parameters
        ----------
        measure : ParticleMeasure
            μ, positions ``(..., m, d+2)``.

        Returns
        -------
        ndarray, shape (..., m, d+2)
        """
        g = self.grad_first_variation(measure)  # validates measure before .masses is read
        return measure.masses[..., None] * g


class SampleEstimator(VelocityEstimator):
    r"""F, J_μ and v_μ estimated on a fixed sample (Monte-Carlo population or dataset).

    .. math::
        \hat F(\mu) = \frac1{2n}\sum_{k=1}^n (f_\mu(x_k) - y_k)^2, \qquad
        \hat J_\mu(\theta) = \frac1n\sum_k (f_\mu(x_k) - y_k)\,\varphi(\theta, x_k),

        \nabla \hat J_\mu(\theta) = \frac1n\sum_k (f_\mu(x_k) - y_k)\,
        \nabla_\theta\varphi(\theta, x_k)

    :meth:`risk`, :meth:`first_variation`, :meth:`grad_first_variation`,
    :meth:`velocity` and :meth:`particle_gradient` are those of
    :class:`VelocityEstimator` with the expectation E_x replaced by the mean over the
    sample; their results broadcast the measure's ensemble axes with the sample's.

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
        if self.target.d is not None:
            xx = check_inputs(x, self.target.d, owner="the target")
        else:
            xx = as_float_array("x", x, min_ndim=1)
            xx = check_inputs(xx, xx.shape[-1])
        self.d = xx.shape[-1]
        self.x = xx
        self.y = evaluate_target(self.target, xx, self.d)

    @property
    def n(self) -> int:
        """Sample size n."""
        return self.x.shape[-2]

    def _check(self, measure: ParticleMeasure) -> None:
        super()._check(measure)
        try:
            np.broadcast_shapes(measure.batch_shape, self.x.shape[:-2], self.y.shape[:-1])
        except ValueError:
            raise ValueError(
                f"measure's batch_shape {measure.batch_shape} must broadcast with the "
                f"sample's leading axes (x: {self.x.shape[:-2]}, y: {self.y.shape[:-1]})"
            ) from None

    def _residual(self, measure: ParticleMeasure) -> NDArray[np.floating]:
        """Residuals of a measure already checked by ``_check``; raise if they overflow."""
        with np.errstate(over="ignore", invalid="ignore"):
            r = residual_on_sample(measure.theta, measure.masses, self.x, self.y, self.activation)
        return _finite(r, "the residual f_μ(x) − y of the measure")

    def residual(self, measure: ParticleMeasure) -> NDArray[np.floating]:
        r"""Compute the residuals on the sample.

        .. math:: r_k = f_\mu(x_k) - y_k

        Parameters
        ----------
        measure : ParticleMeasure
            μ, positions ``(..., m, d+2)``.

        Returns
        -------
        ndarray, shape (..., n)

        Raises
        ------
        ValueError
            If a residual overflows float64 (e.g. positions near 1e300).
        """
        self._check(measure)
        return self._residual(measure)

    # The public methods below inherit their docstrings from VelocityEstimator (the class
    # docstring gives their empirical formulas), hence the noqa: D102.

    def risk(self, measure: ParticleMeasure) -> NDArray[np.floating]:  # noqa: D102
        r = self.residual(measure)
        with np.errstate(over="ignore"):
            risk = 0.5 * np.mean(r * r, axis=-1)
        return _finite(risk, "the risk F(μ) of the measure")

    def first_variation(  # noqa: D102
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        pts = self._points(measure, theta)
        r = self._residual(measure)
        with np.errstate(over="ignore", invalid="ignore"):
            u = _preactivation(pts, self.x)
            phi = pts[..., None, :, 0] * self.activation.value(u)
            j = (r[..., None, :] @ phi)[..., 0, :] / self.n
        return _finite(j, "the first variation J_μ(θ) of the measure at theta")

    def grad_first_variation(  # noqa: D102
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        pts = self._points(measure, theta)
        r = self._residual(measure)
        with np.errstate(over="ignore", invalid="ignore"):
            g = first_variation_grad_on_sample(pts, self.x, r, self.activation)
        return _finite(g, "the gradient ∇J_μ(θ) of the measure at theta")

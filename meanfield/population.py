r"""The exact population estimator for Gaussian inputs and a teacher network.

For x ~ N(0, I_d) and a target given by a teacher ν = Σⱼ qⱼ δ_{θ⋆ⱼ}, the risk, the first
variation and the velocity field are finite sums of the Gaussian kernel
K(θ, θ′) = E[σ(w·x + b) σ(w′·x + b′)] of :mod:`meanfield.kernels`:

.. math::

    F(\mu) = \tfrac12\,\mathbb{E}_x\big[(f_\mu(x) - f_\nu(x))^2\big]
    = \tfrac12 \iint a a' K(\theta, \theta')\, d(\mu - \nu)(\theta)\, d(\mu - \nu)(\theta')

when the teacher has the student's activation (mixed pairs use the kernel of both).

:class:`GaussianPopulationEstimator` is the :class:`~meanfield.velocity.VelocityEstimator`
that evaluates them with no input sample and no sampling noise (Chizat & Bach 2018; Mei,
Montanari & Nguyen 2018); the sample-based estimators are in :mod:`meanfield.velocity`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import check_int, describe
from meanfield.activations import Activation, get_activation
from meanfield.data import Teacher
from meanfield.kernels import KernelBlock, _check_method, kernel_block
from meanfield.measure import ParticleMeasure
from meanfield.quadrature import DEFAULT_NODES
from meanfield.velocity import VelocityEstimator

__all__ = ["GaussianPopulationEstimator"]

_PAIR_BUDGET = 1 << 22
"""Most (point, particle) pairs per kernel block before the points are chunked."""


class GaussianPopulationEstimator(VelocityEstimator):
    r"""Exact population F, J_μ and v_μ for inputs x ~ N(0, I_d) and a teacher ν.

    With cᵢ = pᵢ aᵢ for the student μ, c⋆ⱼ = qⱼ a⋆ⱼ for the teacher ν and the Gaussian
    kernel K(θ, θ′) = E[σ(w·x + b) σ(w′·x + b′)] of :mod:`meanfield.kernels`,

    .. math::

        F(\mu) &= \tfrac12\Big[\sum_{i,j} c_i c_j K(\theta_i, \theta_j)
            - 2\sum_{i,j} c_i c^\star_j K(\theta_i, \theta^\star_j)
            + \sum_{i,j} c^\star_i c^\star_j K(\theta^\star_i, \theta^\star_j)\Big],\\
        J_\mu(\theta) &= a\,R(\theta), \qquad
        R(\theta) = \sum_i c_i K(\theta, \theta_i) - \sum_j c^\star_j K(\theta, \theta^\star_j),\\
        \nabla_\theta J_\mu(\theta) &= \Big(R(\theta),\
            a\sum_i c_i \nabla_{(w,b)} K(\theta, \theta_i)
            - a\sum_j c^\star_j \nabla_{(w,b)} K(\theta, \theta^\star_j)\Big),

    with no input sample and no sampling noise (Chizat & Bach 2018; Mei, Montanari &
    Nguyen 2018).  ReLU and erf use the closed forms of :mod:`meanfield.kernels` (through
    the bivariate normal distribution function, Owen's T); other activations (and mixed
    student/teacher pairs) Gauss–Hermite quadrature with ``n_nodes`` nodes per axis (its
    error is documented in :func:`meanfield.kernels.kernel_block`).  Everything is
    vectorised over particles and ensembles (leading axes of μ, of the teacher and of the
    evaluation points broadcast); the Gram blocks are m × m and m × m₀, and of the weights
    only w·w′ is formed, by a matmul.

    Parameters
    ----------
    target : ParticleMeasure or Teacher
        The teacher ν (m₀ atoms, optional ensemble axes).  A bare measure uses the
        student's ``activation``; a :class:`~meanfield.data.Teacher` keeps its own.
    activation : str or Activation, default "relu"
        σ of the student.
    n_nodes : int, default 32
        Gauss–Hermite nodes per axis when no closed form applies.
    method : {"auto", "closed", "quadrature"}, default "auto"
        Passed to :func:`meanfield.kernels.kernel_block`.
    workers : int, optional
        Threads for the ReLU Gram blocks (default
        :func:`meanfield.kernels.default_workers`); results do not depend on it.

    Raises
    ------
    TypeError
        If ``target`` is neither a teacher measure nor a :class:`~meanfield.data.Teacher`
        (a general callable target has no closed-form population risk: use
        :class:`~meanfield.velocity.SampleEstimator`).

    Notes
    -----
    The evaluation at the particles themselves (``theta=None``) uses the symmetric
    m × m block, which halves the Owen-T evaluations.  Memory is about 20 arrays of
    batch × m × (m + m₀) floats; beyond 2²² pairs the points are processed in chunks.
    """

    def __init__(
        self,
        target: ParticleMeasure | Teacher,
        *,
        activation: str | Activation = "relu",
        n_nodes: int = DEFAULT_NODES,
        method: str = "auto",
        workers: int | None = None,
    ) -> None:
        self.activation = get_activation(activation)
        if isinstance(target, Teacher):
            teacher, teacher_act = target.measure, get_activation(target.activation)
        elif isinstance(target, ParticleMeasure):
            teacher, teacher_act = target, self.activation
        else:
            raise TypeError(
                "target must be a teacher ParticleMeasure or a data.Teacher (the exact "
                "population risk needs a teacher network; use SampleEstimator for a "
                f"general target); got {describe(target)}"
            )
        _check_method(method)
        self.teacher = teacher
        self.teacher_activation = teacher_act
        self.d = teacher.d
        self.n_nodes = check_int("n_nodes", n_nodes)
        self.method = method
        self.workers = None if workers is None else check_int("workers", workers)
        self._coef_t = teacher.masses * teacher.a
        k_tt = self._kernel(teacher.theta, None, teacher_act, teacher_act, grad=False).value
        self._energy_t = np.einsum("...i,...ij,...j->...", self._coef_t, k_tt, self._coef_t)

    def _check(self, measure: ParticleMeasure) -> None:
        super()._check(measure)
        try:
            np.broadcast_shapes(measure.batch_shape, self.teacher.batch_shape)
        except ValueError:
            raise ValueError(
                f"the measure's batch_shape {measure.batch_shape} must broadcast with the "
                f"teacher's batch_shape {self.teacher.batch_shape}"
            ) from None

    def _kernel(
        self,
        theta: NDArray[np.floating],
        theta_prime: NDArray[np.floating] | None,
        act: Activation,
        act2: Activation,
        *,
        grad: bool,
    ) -> KernelBlock:
        return kernel_block(
            theta,
            theta_prime,
            activation=act,
            activation_prime=act2,
            method=self.method,  # type: ignore[arg-type]
            n_nodes=self.n_nodes,
            grad=grad,
            workers=self.workers,
        )

    def risk(self, measure: ParticleMeasure) -> NDArray[np.floating]:
        r"""Compute the exact population risk F(μ).

        .. math:: F(\mu) = \tfrac12\big(c^\top K_{\mu\mu} c - 2 c^\top K_{\mu\nu} c^\star
                  + c^{\star\top} K_{\nu\nu} c^\star\big)

        Parameters
        ----------
        measure : ParticleMeasure
            μ, positions ``(..., m, d+2)``.

        Returns
        -------
        ndarray, shape ``batch_shape`` (broadcast with the teacher's)
            Exact up to rounding (it may be ≈ −1e-16 at the teacher itself).
        """
        self._check(measure)
        coef = measure.masses * measure.a
        k_ss = self._kernel(measure.theta, None, self.activation, self.activation, grad=False)
        k_st = self._kernel(
            measure.theta, self.teacher.theta, self.activation, self.teacher_activation,
            grad=False,
        )
        ss = np.einsum("...i,...ij,...j->...", coef, k_ss.value, coef)
        st = np.einsum("...i,...ij,...j->...", coef, k_st.value, self._coef_t)
        return 0.5 * (ss - 2.0 * st + self._energy_t)

    def excess_risk(self, measure: ParticleMeasure) -> NDArray[np.floating]:
        r"""Compute the excess risk F(μ) − inf F = F(μ) (the teacher is realisable).

        .. math:: F(\mu) - \inf F = F(\mu), \qquad \inf F = F(\nu) = 0

        Parameters
        ----------
        measure : ParticleMeasure
            μ, positions ``(..., m, d+2)``.

        Returns
        -------
        ndarray, shape ``batch_shape``

        Raises
        ------
        ValueError
            If the teacher's activation differs from the student's (then inf F is not 0
            in general).
        """
        if self.teacher_activation != self.activation:
            raise ValueError(
                "excess_risk needs a realisable teacher: the teacher's activation "
                f"{self.teacher_activation.name!r} differs from the student's "
                f"{self.activation.name!r}"
            )
        return self.risk(measure)

    def _residual_terms(
        self, measure: ParticleMeasure, theta: ArrayLike | None, *, grad: bool
    ) -> tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating] | None]:
        """Points, R(θ) and Σ c ∇_{(w,b)}K (student minus teacher), chunked over points."""
        pts = self._points(measure, theta)
        same = theta is None
        coef = measure.masses * measure.a
        batch = np.broadcast_shapes(pts.shape[:-2], measure.batch_shape, self.teacher.batch_shape)
        pairs = int(np.prod(batch, dtype=np.int64)) * measure.m
        chunk = max(1, _PAIR_BUDGET // max(pairs, 1))
        k = pts.shape[-2]
        if same and k > chunk:
            same = False  # too large for one symmetric block: chunk the rows instead
        values, grads = [], []
        for start in range(0, k, chunk if not same else k):
            p = pts[..., start : start + chunk, :] if not same else pts
            blk_s = self._kernel(
                p, None if same else measure.theta, self.activation, self.activation, grad=grad
            )
            blk_t = self._kernel(
                p, self.teacher.theta, self.activation, self.teacher_activation, grad=grad
            )
            w = p[..., 1:-1]
            if grad:
                r_s, g_s = blk_s.contract(coef, w, measure.w)
                r_t, g_t = blk_t.contract(self._coef_t, w, self.teacher.w)
                grads.append(g_s - g_t)
            else:
                r_s = (blk_s.value @ coef[..., :, None])[..., 0]
                r_t = (blk_t.value @ self._coef_t[..., :, None])[..., 0]
            values.append(r_s - r_t)
        r = values[0] if len(values) == 1 else np.concatenate(values, axis=-1)
        g = None
        if grad:
            g = grads[0] if len(grads) == 1 else np.concatenate(grads, axis=-2)
        return pts, r, g

    def first_variation(
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        r"""Compute the exact first variation J_μ(θ) at points.

        .. math:: J_\mu(\theta) = a\Big(\sum_i p_i a_i K(\theta, \theta_i)
                  - \sum_j q_j a^\star_j K(\theta, \theta^\star_j)\Big)

        Parameters
        ----------
        measure : ParticleMeasure
            μ, positions ``(..., m, d+2)``.
        theta : array_like, shape (..., k, d+2), optional
            Points; default: the particles of μ.

        Returns
        -------
        ndarray, shape (..., k)
        """
        pts, r, _ = self._residual_terms(measure, theta, grad=False)
        return pts[..., 0] * r

    def grad_first_variation(
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> NDArray[np.floating]:
        r"""Compute the exact gradient ∇_θ J_μ(θ) at points (v_μ = −∇J_μ).

        .. math:: \partial_a J_\mu(\theta) = R(\theta), \qquad
                  \nabla_{(w,b)} J_\mu(\theta) = a\Big(\sum_i c_i \nabla_{(w,b)}K(\theta,\theta_i)
                  - \sum_j c^\star_j \nabla_{(w,b)}K(\theta, \theta^\star_j)\Big)

        Parameters
        ----------
        measure : ParticleMeasure
            μ, positions ``(..., m, d+2)``.
        theta : array_like, shape (..., k, d+2), optional
            Points; default: the particles of μ.

        Returns
        -------
        ndarray, shape (..., k, d+2)
        """
        pts, r, g = self._residual_terms(measure, theta, grad=True)
        if g is None:  # pragma: no cover - grad=True always returns the gradient
            raise RuntimeError("internal error: missing kernel gradient")
        shape = np.broadcast_shapes(r.shape, pts.shape[:-1])
        out = np.empty((*shape, pts.shape[-1]), dtype=np.result_type(r, g))
        out[..., 0] = r
        out[..., 1:] = pts[..., 0, None] * g
        return out

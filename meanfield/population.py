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

from meanfield import _fast_kernels
from meanfield._validation import OverflowResultError, check_int, describe
from meanfield.activations import Activation, get_activation
from meanfield.data import Teacher
from meanfield.kernels import _check_backend, _check_method, _Job, kernel_block
from meanfield.measure import ParticleMeasure
from meanfield.quadrature import DEFAULT_NODES
from meanfield.velocity import VelocityEstimator

__all__ = ["GaussianPopulationEstimator"]

Array = NDArray[np.floating]

_PAIR_BUDGET = 1 << 22
"""Most (point, particle) pairs per kernel block before the points are chunked (4× that
for the compiled contraction with d ≤ 8, which forms no array of pairs)."""


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
    the bivariate normal distribution function Φ₂); other activations (and mixed
    student/teacher pairs) Gauss–Hermite quadrature with ``n_nodes`` nodes per axis (its
    error is documented in :func:`meanfield.kernels.kernel_block`).  Everything is
    vectorised over particles and ensembles (leading axes of μ, of the teacher and of the
    evaluation points broadcast); of the weights only w·w′ is formed.

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
        Threads for the closed-form Gram blocks (default
        :func:`meanfield.kernels.default_workers`); results do not depend on it.
    backend : {"auto", "numba", "numpy"}, default "auto"
        Passed to :func:`meanfield.kernels.kernel_block`: with numba the closed forms
        are contracted as they are computed, without forming the blocks.

    Raises
    ------
    TypeError
        If ``target`` is neither a teacher measure nor a :class:`~meanfield.data.Teacher`
        (a general callable target has no closed-form population risk: use
        :class:`~meanfield.velocity.SampleEstimator`).

    Notes
    -----
    A result that overflows float64 (positions near 1e300) is refused with
    :class:`~meanfield._validation.OverflowResultError`, a ``ValueError`` that the
    dynamics report as a divergence.

    The evaluation at the particles themselves (``theta=None``) uses the symmetric
    m × m block, each unordered pair once.  With numba the closed forms are summed as
    they are computed (:func:`meanfield._fast_kernels.contract`): memory is one batch ×
    m × (m + m₀) array at most (none for d ≤ 8); the numpy reference forms about 20 such
    arrays.  Beyond 2²² pairs the points are processed in chunks.
    """

    def __init__(
        self,
        target: ParticleMeasure | Teacher,
        *,
        activation: str | Activation = "relu",
        n_nodes: int = DEFAULT_NODES,
        method: str = "auto",
        workers: int | None = None,
        backend: str = "auto",
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
        _check_backend(backend)
        self.teacher = teacher
        self.teacher_activation = teacher_act
        self.d = teacher.d
        self.n_nodes = check_int("n_nodes", n_nodes)
        self.method = method
        self.backend = backend
        self.workers = None if workers is None else check_int("workers", workers)
        self._coef_t = teacher.masses * teacher.a
        k_t = self._contract(teacher.theta, None, self._coef_t, teacher_act, teacher_act,
                             grad=False)[0]
        self._energy_t = np.einsum("...i,...i->...", self._coef_t, k_t)

    def _check(self, measure: ParticleMeasure) -> None:
        super()._check(measure)
        try:
            np.broadcast_shapes(measure.batch_shape, self.teacher.batch_shape)
        except ValueError:
            raise ValueError(
                f"the measure's batch_shape {measure.batch_shape} must broadcast with the "
                f"teacher's batch_shape {self.teacher.batch_shape}"
            ) from None

    def _contract(
        self,
        theta: Array,
        theta_prime: Array | None,
        coef: Array,
        act: Activation,
        act2: Activation,
        *,
        grad: bool,
    ) -> tuple[Array, Array | None]:
        """Σⱼ cⱼ K(θ, θ′ⱼ) and Σⱼ cⱼ ∇_{(w,b)} K(θ, θ′ⱼ) for the activations (σ, σ′).

        The compiled closed forms (:func:`meanfield._fast_kernels.contract`) sum as they
        go, without forming the block; otherwise :func:`~meanfield.kernels.kernel_block`
        forms it and :meth:`~meanfield.kernels.KernelBlock.contract` contracts it.
        """
        job = _Job(theta, theta_prime, act, act2, self.method, self.n_nodes, self.workers,
                   self.backend)
        batch = np.broadcast_shapes(job.w.shape[:-2], job.wp.shape[:-2])
        if job.kind is not None and self.backend != "numpy" and _fast_kernels.available():
            bvn = job.bvn(grad)
            if bvn.safe and np.broadcast_shapes(batch, coef.shape[:-1]) == batch:
                k, d = job.wp.shape[-2], job.w.shape[-1]
                value, g = _fast_kernels.contract(
                    job.kind, *bvn.fast_args(),
                    np.ascontiguousarray(np.broadcast_to(coef, (*batch, k)).reshape(-1, k)),
                    grad=grad, same=job.same, workers=job.workers,
                )
                return (_finite(value.reshape(*batch, -1)),
                        None if g is None else _finite(g.reshape(*batch, -1, d + 1)))
        blk = kernel_block(theta, theta_prime, activation=act, activation_prime=act2,
                           method=self.method,  # type: ignore[arg-type]
                           n_nodes=self.n_nodes, grad=grad, workers=job.workers,
                           backend=self.backend)  # type: ignore[arg-type]
        if grad:
            return blk.contract(coef, job.w, job.wp)
        with np.errstate(all="ignore"):
            return _finite((blk.value @ coef[..., :, None])[..., 0]), None

    def risk(self, measure: ParticleMeasure) -> Array:
        r"""Compute the exact population risk F(μ).

        .. math:: F(\mu) = \tfrac12\big(c^\top K_{\mu\mu} c - 2 c^\top K_{\mu\nu} c^\star
                  + c^{\star\top} K_{\nu\nu} c^\star\big)

        Parameters
        ----------
        measure
            As for :meth:`VelocityEstimator.risk <meanfield.velocity.VelocityEstimator.risk>`.

        Returns
        -------
        ndarray, shape ``batch_shape`` (broadcast with the teacher's)
            Exact up to rounding (it may be ≈ −1e-16 at the teacher itself).
        """
        self._check(measure)
        coef = measure.masses * measure.a
        act, act_t = self.activation, self.teacher_activation
        k_s = self._contract(measure.theta, None, coef, act, act, grad=False)[0]
        k_t = self._contract(measure.theta, self.teacher.theta, self._coef_t, act, act_t,
                             grad=False)[0]
        with np.errstate(all="ignore"):
            ss = np.einsum("...i,...i->...", coef, k_s)
            st = np.einsum("...i,...i->...", coef, k_t)
            return _finite(0.5 * (ss - 2.0 * st + self._energy_t))

    def excess_risk(self, measure: ParticleMeasure) -> Array:
        r"""Compute the excess risk F(μ) − inf F = F(μ) (the teacher is realisable).

        .. math:: F(\mu) - \inf F = F(\mu), \qquad \inf F = F(\nu) = 0

        Parameters
        ----------
        measure
            As for :meth:`risk`.

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
    ) -> tuple[Array, Array, Array | None]:
        """Points, R(θ) and Σ c ∇_{(w,b)}K (student minus teacher), chunked over points."""
        pts = self._points(measure, theta)
        same = theta is None
        coef = measure.masses * measure.a
        batch = np.broadcast_shapes(pts.shape[:-2], measure.batch_shape, self.teacher.batch_shape)
        pairs = int(np.prod(batch, dtype=np.int64)) * measure.m
        budget = _PAIR_BUDGET
        if (self.backend != "numpy" and _fast_kernels.available()
                and measure.d <= _fast_kernels.GRAM_INLINE_D):
            budget <<= 2  # the compiled contraction forms no (point, particle) array
        chunk = max(1, budget // max(pairs, 1))
        k = pts.shape[-2]
        if same and k > chunk:
            same = False  # too large for one symmetric block: chunk the rows instead
        values, grads = [], []
        for start in range(0, k, chunk if not same else k):
            p = pts[..., start : start + chunk, :] if not same else pts
            act, act_t = self.activation, self.teacher_activation
            r_s, g_s = self._contract(p, None if same else measure.theta, coef, act, act,
                                      grad=grad)
            r_t, g_t = self._contract(p, self.teacher.theta, self._coef_t, act, act_t, grad=grad)
            with np.errstate(all="ignore"):
                values.append(_finite(r_s - r_t))
                if g_s is not None and g_t is not None:
                    grads.append(_finite(g_s - g_t))
        r = values[0] if len(values) == 1 else np.concatenate(values, axis=-1)
        g = None
        if grad:
            g = grads[0] if len(grads) == 1 else np.concatenate(grads, axis=-2)
        return pts, r, g

    def first_variation(
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> Array:
        r"""Compute the exact first variation J_μ(θ) at points.

        .. math:: J_\mu(\theta) = a\Big(\sum_i p_i a_i K(\theta, \theta_i)
                  - \sum_j q_j a^\star_j K(\theta, \theta^\star_j)\Big)

        Parameters
        ----------
        measure, theta
            As for :meth:`VelocityEstimator.first_variation
            <meanfield.velocity.VelocityEstimator.first_variation>`.

        Returns
        -------
        ndarray, shape (..., k)
        """
        pts, r, _ = self._residual_terms(measure, theta, grad=False)
        with np.errstate(all="ignore"):
            return _finite(pts[..., 0] * r)

    def grad_first_variation(
        self, measure: ParticleMeasure, theta: ArrayLike | None = None
    ) -> Array:
        r"""Compute the exact gradient ∇_θ J_μ(θ) at points (v_μ = −∇J_μ).

        .. math:: \partial_a J_\mu(\theta) = R(\theta), \qquad
                  \nabla_{(w,b)} J_\mu(\theta) = a\Big(\sum_i c_i \nabla_{(w,b)}K(\theta,\theta_i)
                  - \sum_j c^\star_j \nabla_{(w,b)}K(\theta, \theta^\star_j)\Big)

        Parameters
        ----------
        measure, theta
            As for :meth:`first_variation`.

        Returns
        -------
        ndarray, shape (..., k, d+2)
            (∂_a J_μ, ∇_w J_μ, ∂_b J_μ) at each point.
        """
        pts, r, g = self._residual_terms(measure, theta, grad=True)
        if g is None:  # pragma: no cover - grad=True always returns the gradient
            raise RuntimeError("internal error: missing kernel gradient")
        shape = np.broadcast_shapes(r.shape, pts.shape[:-1])
        out = np.empty((*shape, pts.shape[-1]), dtype=np.result_type(r, g))
        out[..., 0] = r
        with np.errstate(all="ignore"):
            out[..., 1:] = pts[..., 0, None] * g
        return _finite(out)


def _finite(result: Array) -> Array:
    """Return ``result``, or refuse it when the positions were too large for float64."""
    if not np.all(np.isfinite(result)):
        raise OverflowResultError(
            "measure or theta: the result overflows float64 (positions too large)"
        )
    return result

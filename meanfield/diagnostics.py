r"""Convergence diagnostics: did a run reach a global minimiser, and how did it get there.

Every function takes a :class:`~meanfield.measure.ParticleMeasure` and, where the target
matters, any :class:`~meanfield.velocity.VelocityEstimator` (Monte-Carlo
:class:`~meanfield.velocity.SampleEstimator` or the exact
:class:`~meanfield.population.GaussianPopulationEstimator`).

* Risk and excess risk F(μ) − inf F (inf F = 0 for a realisable teacher).
* Stationarity: the Wasserstein-gradient norm

  .. math:: \|\nabla_W F(\mu)\|^2 = \int \|v_\mu\|^2\,d\mu
     = \sum_i p_i\,\|\nabla J_\mu(\theta_i)\|^2 .

* Global optimality (Chizat & Bach 2018, Prop. 3.2 / the conditions of DESIGN.md): μ
  minimises F over nonnegative measures iff J_μ ≥ 0 everywhere and J_μ = 0 on supp μ.  For
  ReLU, J_μ(λθ) = λ² J_μ(θ), so the *certificate*

  .. math:: J^\star(\mu) = \min_{\|\theta\| = 1} J_\mu(\theta)

  is ≥ 0 at a global minimiser; a negative value comes with its minimiser θ⋆, the direction
  in which a new small neuron lowers the risk: F(μ + ε δ_{θ⋆}) = F(μ) + ε J_μ(θ⋆) + O(ε²).
* Balancedness βᵢ = aᵢ² − ‖wᵢ‖² − bᵢ², conserved by the exact ReLU flow (Du, Hu & Lee 2018).
* Teacher recovery through the effective neurons cᵢ = aᵢ(wᵢ, bᵢ) (ReLU), compared with
  the teacher's by an MMD: :mod:`meanfield.recovery`.
* Lazy vs rich (Chizat, Oyallon & Bach 2019): relative displacement ‖θᵢ(t) − θᵢ(0)‖/‖θᵢ(0)‖.
* Convergence time (first t with excess risk < ε) and plateaus of the risk in log-log
  scale: :mod:`meanfield.convergence`.

For a whole trajectory the functions take arrays of snapshots; :func:`trajectory_diagnostics`
accepts any object with attributes ``times`` (T,), ``thetas`` (T, ..., m, d+2) and ``masses``
((..., m) or (T, ..., m)), e.g. :class:`meanfield.trajectory.Trajectory`, and gathers all of
the above.  The names of :mod:`meanfield.recovery` and :mod:`meanfield.convergence` are also
importable from this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import as_float_array, check_int, describe
from meanfield.convergence import Plateau as Plateau
from meanfield.convergence import convergence_time as convergence_time
from meanfield.convergence import detect_plateaus as detect_plateaus
from meanfield.measure import ParticleMeasure, RNGLike
from meanfield.recovery import TeacherRecovery as TeacherRecovery
from meanfield.recovery import effective_neuron_mmd as effective_neuron_mmd
from meanfield.recovery import teacher_recovery as teacher_recovery
from meanfield.velocity import VelocityEstimator

__all__ = [
    "Certificate",
    "TrajectoryDiagnostics",
    "balancedness",
    "balancedness_drift",
    "excess_risk",
    "optimality_certificate",
    "relative_displacement",
    "risk",
    "trajectory_diagnostics",
    "wasserstein_gradient_norm",
]

Array = NDArray[np.floating]


def _check(measure: Any, estimator: Any) -> None:
    if not isinstance(measure, ParticleMeasure):
        raise TypeError(f"measure must be a ParticleMeasure; got {describe(measure)}")
    if not isinstance(estimator, VelocityEstimator):
        raise TypeError(f"estimator must be a VelocityEstimator; got {describe(estimator)}")


def _teacher_of(estimator: Any) -> ParticleMeasure | None:
    teacher = getattr(estimator, "teacher", None)
    if teacher is None:
        teacher = getattr(getattr(estimator, "target", None), "measure", None)
    return teacher if isinstance(teacher, ParticleMeasure) else None


# -- risk and stationarity ----------------------------------------------------------------------
def risk(measure: ParticleMeasure, estimator: VelocityEstimator) -> Array:
    r"""Return the risk seen by ``estimator``.

    .. math:: F(\mu) = \tfrac12\,\mathbb{E}_x\big[(f_\mu(x) - y(x))^2\big]

    Parameters
    ----------
    measure : ParticleMeasure
    estimator : VelocityEstimator

    Returns
    -------
    ndarray, shape ``batch_shape``
    """
    _check(measure, estimator)
    return np.asarray(estimator.risk(measure))


def excess_risk(
    measure: ParticleMeasure, estimator: VelocityEstimator, *, min_risk: float | None = None
) -> Array:
    r"""Return the excess risk F(μ) − inf F.

    .. math:: F(\mu) - \inf F

    Parameters
    ----------
    measure : ParticleMeasure
    estimator : VelocityEstimator
    min_risk : float, optional
        inf F.  Default: the estimator's own ``excess_risk`` if it has one, else 0 (a
        realisable teacher, for which a sample estimator also gives exactly 0 at ν).

    Returns
    -------
    ndarray, shape ``batch_shape``
    """
    _check(measure, estimator)
    if min_risk is None and hasattr(estimator, "excess_risk"):
        return np.asarray(estimator.excess_risk(measure))
    return np.asarray(estimator.risk(measure)) - (0.0 if min_risk is None else float(min_risk))


def wasserstein_gradient_norm(measure: ParticleMeasure, estimator: VelocityEstimator) -> Array:
    r"""Squared norm of the Wasserstein gradient, ∫‖v_μ‖² dμ.

    .. math:: \int \|v_\mu\|^2 d\mu = \sum_i p_i\, \|\nabla_\theta J_\mu(\theta_i)\|^2

    It is −dF/dt along the gradient flow and vanishes exactly at stationary points.

    Returns
    -------
    ndarray, shape ``batch_shape``
    """
    _check(measure, estimator)
    g = estimator.grad_first_variation(measure)
    return np.sum(measure.masses * np.sum(g * g, axis=-1), axis=-1)


# -- the optimality certificate ------------------------------------------------------------------
@dataclass(frozen=True)
class Certificate:
    r"""Result of :func:`optimality_certificate`.

    Attributes
    ----------
    value : float
        min_{‖θ‖=1} J_μ(θ) found (an upper bound on the true minimum; ≥ −tol at an optimum).
    direction : ndarray, shape (d+2,)
        The unit θ⋆ attaining it.
    local_minima : ndarray, shape (n_refine,)
        Values reached from the refined starts (sorted): their spread shows how many basins
        the search saw.
    support_residual : float
        max_i |J_μ(θᵢ)|/‖θᵢ‖² over the particles: the second optimality condition J_μ = 0 on
        supp μ.
    n_evaluations : int
        Number of points where J_μ was evaluated.
    """

    value: float
    direction: Array
    local_minima: Array
    support_residual: float
    n_evaluations: int

    def is_optimal(self, tol: float) -> bool:
        """Whether both conditions hold up to ``tol``."""
        return bool(self.value >= -tol and self.support_residual <= tol)


def _unit(x: Array) -> Array:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def optimality_certificate(
    measure: ParticleMeasure,
    estimator: VelocityEstimator,
    *,
    n_starts: int = 512,
    n_refine: int = 16,
    max_iter: int = 300,
    rng: RNGLike = None,
) -> Certificate:
    r"""Global minimum of the first variation on the unit sphere (ReLU).

    .. math:: J^\star(\mu) = \min_{\theta\in S^{d+1}} J_\mu(\theta)

    Search: J_μ is evaluated at ``n_starts`` uniform directions, at ±θᵢ/‖θᵢ‖ for the
    particles and at ±the teacher's directions when the estimator knows a teacher; the
    ``n_refine`` best starts descend by Riemannian gradient steps on the sphere,
    x ← (x − η(∇J − (∇J·x)x))/‖·‖ with per-start Armijo backtracking, until every step is
    below 1e-10 or ``max_iter``.  The result is an upper bound on the true minimum (exact
    when the search finds the global basin, which the multi-start makes likely in low
    dimension; its reliability degrades like any non-convex search as d grows).

    Parameters
    ----------
    measure : ParticleMeasure
        μ, a single measure (``batch_shape == ()``).
    estimator : VelocityEstimator
        With a positively 2-homogeneous feature (ReLU).
    n_starts, n_refine, max_iter : int
        Search budget.
    rng : int, Generator or SeedSequence, optional
        Random starts.

    Returns
    -------
    Certificate
    """
    _check(measure, estimator)
    if measure.batch_shape:
        raise ValueError(f"measure must be a single measure; got batch_shape {measure.batch_shape}")
    if estimator.activation.degree != 1:
        raise ValueError(
            "the certificate needs a 2-homogeneous feature (ReLU); got activation "
            f"{estimator.activation.name!r}"
        )
    n_starts, n_refine = check_int("n_starts", n_starts), check_int("n_refine", n_refine)
    max_iter = check_int("max_iter", max_iter)
    k = measure.d + 2
    starts = [_unit(np.random.default_rng(rng).standard_normal((n_starts, k)))]
    for hint in (measure, _teacher_of(estimator)):
        if hint is not None and hint.batch_shape == ():
            th = hint.theta[np.linalg.norm(hint.theta, axis=-1) > 0]
            starts += [_unit(th), -_unit(th)]
    x0 = np.vstack(starts)
    j0 = np.concatenate(
        [
            np.asarray(estimator.first_variation(measure, x0[i : i + 256]))
            for i in range(0, len(x0), 256)
        ]
    )
    evals = len(x0)
    x = x0[np.argsort(j0)[:n_refine]].copy()
    j = np.asarray(estimator.first_variation(measure, x))
    eta = np.ones(len(x))
    for _ in range(max_iter):
        g = np.asarray(estimator.grad_first_variation(measure, x))
        g -= np.sum(g * x, axis=1, keepdims=True) * x
        gg = np.sum(g * g, axis=1)
        y = _unit(x - eta[:, None] * g)
        jy = np.asarray(estimator.first_variation(measure, y))
        evals += 2 * len(x)
        ok = jy <= j - 1e-4 * eta * gg
        x[ok], j[ok] = y[ok], jy[ok]
        eta = np.where(ok, eta * 1.5, eta * 0.5)
        if np.all(eta * np.sqrt(gg) < 1e-10):
            break
    best = int(np.argmin(j))
    th = measure.theta
    norms2 = np.sum(th * th, axis=-1)
    on_support = np.asarray(estimator.first_variation(measure))[norms2 > 0] / norms2[norms2 > 0]
    residual = float(np.max(np.abs(on_support))) if on_support.size else 0.0
    return Certificate(float(j[best]), x[best].copy(), np.sort(j), residual, evals)


# -- balancedness ---------------------------------------------------------------------------------
def balancedness(theta: ArrayLike | ParticleMeasure) -> Array:
    r"""βᵢ = aᵢ² − ‖wᵢ‖² − bᵢ² for particles ``(..., m, d+2)``; shape ``(..., m)``.

    .. math:: \beta_i = a_i^2 - \|w_i\|^2 - b_i^2

    Conserved by the exact ReLU gradient flow (Du, Hu & Lee 2018): along dθ/dt = −∇J_μ,
    dβᵢ/dt = −2(a ∂_a J − (w, b)·∇_{(w,b)} J) = 0 because σ′(u)u = σ(u).
    """
    th = (
        theta.theta
        if isinstance(theta, ParticleMeasure)
        else as_float_array("theta", theta, min_ndim=2)
    )
    return th[..., 0] ** 2 - np.sum(th[..., 1:] ** 2, axis=-1)


def balancedness_drift(
    before: ArrayLike | ParticleMeasure, after: ArrayLike | ParticleMeasure
) -> Array:
    r"""Per-particle drift βᵢ(after) − βᵢ(before).

    .. math:: \Delta\beta_i = \beta_i(\theta^{\rm after}) - \beta_i(\theta^{\rm before})

    ``after`` may carry extra leading axes (e.g. snapshots ``(T, ..., m, d+2)``), which
    broadcast against ``before``.
    """
    return balancedness(after) - balancedness(before)


# -- lazy vs rich ----------------------------------------------------------------------------------
def relative_displacement(
    theta0: ArrayLike, theta: ArrayLike, masses: ArrayLike | None = None
) -> tuple[Array, Array]:
    r"""Relative displacement per particle and in total.

    .. math::
        \frac{\|\theta_i(t) - \theta_i(0)\|}{\|\theta_i(0)\|}, \qquad
        \Big(\frac{\sum_i p_i \|\theta_i(t) - \theta_i(0)\|^2}
        {\sum_i p_i\|\theta_i(0)\|^2}\Big)^{1/2}

    Small values mean the lazy (kernel) regime, O(1) values the rich (feature-learning)
    regime (Chizat, Oyallon & Bach 2019).

    Parameters
    ----------
    theta0 : array_like, shape (..., m, d+2)
        Initial positions.
    theta : array_like, shape (T, ..., m, d+2) or (..., m, d+2)
        Later positions (extra leading axes broadcast).
    masses : array_like, shape (..., m), optional
        Default uniform.

    Returns
    -------
    per_particle : ndarray, shape (..., m)
        NaN for a particle starting at 0.
    total : ndarray, shape (...)
    """
    t0 = as_float_array("theta0", theta0, min_ndim=2)
    th = as_float_array("theta", theta, min_ndim=2)
    if th.shape[-2:] != t0.shape[-2:]:
        raise ValueError(f"theta must end with shape {t0.shape[-2:]}; got {th.shape}")
    p = (
        np.full(t0.shape[-2], 1.0 / t0.shape[-2])
        if masses is None
        else as_float_array("masses", masses)
    )
    step = np.linalg.norm(th - t0, axis=-1)
    start = np.linalg.norm(t0, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(start > 0, step / np.where(start > 0, start, 1.0), np.nan)
    total = np.sqrt(np.sum(p * step**2, axis=-1) / np.sum(p * start**2, axis=-1))
    return per, total


# -- whole trajectories ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TrajectoryDiagnostics:
    """Diagnostics along a trajectory (arrays indexed by snapshot first).

    Attributes
    ----------
    times : ndarray, shape (T,)
    risk, excess_risk, gradient_norm : ndarray, shape (T, ...)
    balancedness_drift : ndarray, shape (T, ..., m) or None
        βᵢ(t) − βᵢ(0) (ReLU only).
    displacement, total_displacement : ndarray, shapes (T, ..., m) and (T, ...)
    mmd, mass_ratio : ndarray or None
        Teacher recovery, shapes (T, ...) and (T, ..., m₀), when a teacher is known.
    certificate : dict of int to Certificate
        At the requested snapshot indices (ReLU, single runs).
    convergence_time : ndarray, shape (...)
    plateaus : list of Plateau
        Of the excess risk (of the ensemble mean for ensembles).
    eps : float
    """

    times: Array
    risk: Array
    excess_risk: Array
    gradient_norm: Array
    balancedness_drift: Array | None
    displacement: Array
    total_displacement: Array
    mmd: Array | None
    mass_ratio: Array | None
    certificate: dict[int, Certificate] = field(default_factory=dict)
    convergence_time: Array = field(default_factory=lambda: np.array(np.nan))
    plateaus: list[Plateau] = field(default_factory=list)
    eps: float = 1e-3

    def summary(self) -> str:
        """Text summary of the final state."""

        def fmt(a: Any) -> str:
            a = np.asarray(a, dtype=float)
            return (
                f"{float(a):.4g}"
                if a.ndim == 0
                else f"mean {np.nanmean(a):.4g} (max {np.nanmax(a):.4g})"
            )

        lines = [
            f"Diagnostics at t = {self.times[-1]:.4g}:",
            f"  excess risk {fmt(self.excess_risk[-1])}, ∫‖v‖²dμ {fmt(self.gradient_norm[-1])}",
            f"  convergence time (excess < {self.eps:g}): {fmt(self.convergence_time)}",
            f"  relative displacement {fmt(self.total_displacement[-1])}",
        ]
        if self.balancedness_drift is not None:
            lines.append(
                f"  max |balancedness drift| {np.max(np.abs(self.balancedness_drift[-1])):.3g}"
            )
        if self.mmd is not None and self.mass_ratio is not None:
            lines.append(
                f"  teacher MMD {fmt(self.mmd[-1])}, "
                f"mass ratios {np.round(self.mass_ratio[-1], 3).tolist()}"
            )
        if self.certificate:
            last = max(self.certificate)
            lines.append(
                f"  certificate min J on S^(d+1) at snapshot {last}: "
                f"{self.certificate[last].value:.4g}"
            )
        for p in self.plateaus:
            lines.append(
                f"  plateau t ∈ [{p.start:.3g}, {p.end:.3g}] at {p.level:.3g}"
                + (" (final)" if p.final else "")
            )
        return "\n".join(lines)

    __str__ = summary


def trajectory_diagnostics(
    trajectory: Any,
    estimator: VelocityEstimator,
    *,
    teacher: ParticleMeasure | None = None,
    eps: float = 1e-3,
    certificate_at: ArrayLike | None = None,
    min_risk: float | None = None,
    chunk: int | None = None,
    rng: RNGLike = None,
) -> TrajectoryDiagnostics:
    """Compute the diagnostics at every snapshot of a trajectory.

    Parameters
    ----------
    trajectory : object
        Duck-typed: attributes ``times`` (T,), ``thetas`` (T, ..., m, d+2), ``masses``
        ((..., m) or (T, ..., m)); optional ``teacher`` (a ParticleMeasure).
    estimator : VelocityEstimator
        Sees the target (its ``activation`` decides the ReLU-only diagnostics).
    teacher : ParticleMeasure, optional
        Default: ``trajectory.teacher``, else the estimator's teacher.
    eps : float, default 1e-3
        Threshold of the convergence time.
    certificate_at : array_like of int, optional
        Snapshot indices where to compute :func:`optimality_certificate` (ReLU, single run).
    min_risk : float, optional
        inf F for the excess risk (see :func:`excess_risk`).
    chunk : int, optional
        Snapshots evaluated together (default: about 2²² entries of the sample × particle
        arrays).
    rng : int, Generator or SeedSequence, optional
        Random starts of the certificates.

    Returns
    -------
    TrajectoryDiagnostics
    """
    times = as_float_array("trajectory.times", getattr(trajectory, "times", None), ndim=1)
    thetas = as_float_array("trajectory.thetas", getattr(trajectory, "thetas", None), min_ndim=3)
    if thetas.shape[0] != times.shape[0]:
        raise ValueError(
            f"trajectory.thetas must have shape ({times.shape[0]}, ..., m, d+2); got {thetas.shape}"
        )
    masses = getattr(trajectory, "masses", None)
    p = (
        np.full(thetas.shape[:-1], 1.0 / thetas.shape[-2])
        if masses is None
        else np.broadcast_to(as_float_array("trajectory.masses", masses), thetas.shape[:-1])
    )
    if teacher is None:
        teacher = getattr(trajectory, "teacher", None)
        teacher = teacher if isinstance(teacher, ParticleMeasure) else _teacher_of(estimator)
    T, m = thetas.shape[0], thetas.shape[-2]
    per = int(np.prod(thetas.shape[1:-2], dtype=int)) * m * max(getattr(estimator, "n", m), m)
    chunk = max(1, 2**22 // per) if chunk is None else check_int("chunk", chunk)
    out: dict[str, list[Array]] = {k: [] for k in ("risk", "excess", "grad", "mmd", "ratio")}
    for s in range(0, T, chunk):
        mu = ParticleMeasure(thetas[s : s + chunk], p[s : s + chunk])
        out["risk"].append(risk(mu, estimator))
        out["excess"].append(excess_risk(mu, estimator, min_risk=min_risk))
        out["grad"].append(wasserstein_gradient_norm(mu, estimator))
        if teacher is not None:
            rec = teacher_recovery(mu, teacher)
            out["mmd"].append(rec.mmd)
            out["ratio"].append(rec.mass_ratio)
    relu = estimator.activation.degree == 1
    per_disp, total_disp = relative_displacement(thetas[0], thetas, p[0])
    excess = np.concatenate(out["excess"])
    certs: dict[int, Certificate] = {}
    if certificate_at is not None and relu:
        gens = np.random.default_rng(rng).spawn(len(np.atleast_1d(certificate_at)))
        for gen, idx in zip(gens, np.atleast_1d(certificate_at), strict=True):
            i = int(idx) % T
            certs[i] = optimality_certificate(ParticleMeasure(thetas[i], p[i]), estimator, rng=gen)
    mean_excess = excess.reshape(T, -1).mean(axis=1)
    return TrajectoryDiagnostics(
        times=times,
        risk=np.concatenate(out["risk"]),
        excess_risk=excess,
        gradient_norm=np.concatenate(out["grad"]),
        balancedness_drift=balancedness_drift(thetas[0], thetas) if relu else None,
        displacement=per_disp,
        total_displacement=total_disp,
        mmd=np.concatenate(out["mmd"]) if out["mmd"] else None,
        mass_ratio=np.concatenate(out["ratio"]) if out["ratio"] else None,
        certificate=certs,
        convergence_time=convergence_time(times, excess, eps),
        plateaus=detect_plateaus(times, mean_excess),
        eps=float(eps),
    )

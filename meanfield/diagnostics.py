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

from meanfield._validation import as_generator, check_int, check_positive, describe
from meanfield.convergence import Plateau as Plateau
from meanfield.convergence import _check_pair, _snapshot_indices, _snapshots, _weights
from meanfield.convergence import convergence_time as convergence_time
from meanfield.convergence import detect_plateaus as detect_plateaus
from meanfield.covering import _polar_rows, _sphere_descent
from meanfield.measure import ParticleMeasure, RNGLike
from meanfield.network import check_theta
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
    d = getattr(estimator, "d", measure.d)
    if measure.d != d:
        raise ValueError(f"measure has input dimension d={measure.d} but the estimator has d={d}")


def _min_risk(min_risk: Any) -> float | None:
    """Validate inf F: None or a finite real ≥ 0 (the risk is nonnegative)."""
    return None if min_risk is None else check_positive("min_risk", min_risk, allow_zero=True)


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
        inf F, a finite real ≥ 0.  Default: the estimator's own ``excess_risk`` if it has
        one, else 0 (a realisable teacher, for which a sample estimator also gives exactly 0
        at ν).

    Returns
    -------
    ndarray, shape ``batch_shape``

    Raises
    ------
    TypeError, ValueError
        Naming the invalid argument (e.g. ``min_risk`` negative, infinite or a string).
    """
    _check(measure, estimator)
    min_risk = _min_risk(min_risk)
    if min_risk is None and hasattr(estimator, "excess_risk"):
        return np.asarray(estimator.excess_risk(measure))
    return np.asarray(estimator.risk(measure)) - (0.0 if min_risk is None else min_risk)


def wasserstein_gradient_norm(measure: ParticleMeasure, estimator: VelocityEstimator) -> Array:
    r"""Squared norm of the Wasserstein gradient, ∫‖v_μ‖² dμ.

    .. math:: \int \|v_\mu\|^2 d\mu = \sum_i p_i\, \|\nabla_\theta J_\mu(\theta_i)\|^2

    It is −dF/dt along the gradient flow and vanishes exactly at stationary points.

    Returns
    -------
    ndarray, shape ``batch_shape``
        Finite: a value beyond float64 raises ``ValueError`` naming ``measure``.
    """
    _check(measure, estimator)
    g = estimator.grad_first_variation(measure)
    with np.errstate(over="ignore"):
        norm2 = np.sum(measure.masses * np.sum(g * g, axis=-1), axis=-1)
    if not np.all(np.isfinite(norm2)):
        raise ValueError("∫‖v_μ‖² dμ overflows float64 at this measure; rescale measure")
    return norm2


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
        max_i |J_μ(θᵢ)|/‖θᵢ‖² = max_i |J_μ(θᵢ/‖θᵢ‖)| over the particles: the second
        optimality condition J_μ = 0 on supp μ.
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


def optimality_certificate(
    measure: ParticleMeasure,
    estimator: VelocityEstimator,
    *,
    rng: RNGLike = None,
    n_starts: int = 512,
    n_refine: int = 16,
    max_iter: int = 300,
) -> Certificate:
    r"""Global minimum of the first variation on the unit sphere (ReLU).

    .. math:: J^\star(\mu) = \min_{\theta\in S^{d+1}} J_\mu(\theta)

    Search: J_μ is evaluated at ``n_starts`` uniform directions, at ±θᵢ/‖θᵢ‖ for the
    particles and at ±the teacher's directions when the estimator knows a teacher; the
    ``n_refine`` best starts descend by Riemannian gradient steps on the sphere,
    x ← (x − η(∇J − (∇J·x)x)/S)/‖·‖ with per-start Armijo backtracking, until every step is
    below 1e-10 or ``max_iter`` (S, the largest |∂J| at the starts, makes the search
    independent of the scale of J and free of overflow).  The result is an upper bound on
    the true minimum (exact when the search finds the global basin, which the multi-start
    makes likely in low dimension; its reliability degrades like any non-convex search as
    d grows).

    Parameters
    ----------
    measure : ParticleMeasure
        μ, a single measure (``batch_shape == ()``).
    estimator : VelocityEstimator
        With a positively 2-homogeneous feature (ReLU) and the same d as ``measure``.
    rng : int, Generator or SeedSequence, optional
        Random starts.
    n_starts, n_refine, max_iter : int
        Search budget: random starts, starts refined, descent steps per refined start.

    Returns
    -------
    Certificate

    Raises
    ------
    TypeError, ValueError
        Naming the invalid argument (e.g. a measure whose d differs from the estimator's).
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
    max_iter, gen = check_int("max_iter", max_iter), as_generator(rng)
    k = measure.d + 2
    # J_μ(θᵢ)/‖θᵢ‖² = J_μ(θᵢ/‖θᵢ‖) (2-homogeneity): the particles' directions serve as
    # starts and give the support residual, free of overflow at any scale of θ
    own = _directions(measure.theta)
    starts = [_polar_rows(gen.standard_normal((n_starts, k)))[2], own, -own]
    teacher = _teacher_of(estimator)
    if teacher is not None and teacher.batch_shape == () and teacher.d == measure.d:
        starts += [_directions(teacher.theta), -_directions(teacher.theta)]
    x0 = np.vstack(starts)
    j0 = np.concatenate(
        [
            np.asarray(estimator.first_variation(measure, x0[i : i + 256]))
            for i in range(0, len(x0), 256)
        ]
    )
    x, j, evals = _sphere_descent(
        lambda z: np.asarray(estimator.first_variation(measure, z)),
        lambda z: np.asarray(estimator.grad_first_variation(measure, z)),
        x0[np.argsort(j0)[:n_refine]].copy(),
        max_iter,
    )
    best = int(np.argmin(j))
    on_support = j0[n_starts : n_starts + len(own)]
    residual = float(np.max(np.abs(on_support))) if on_support.size else 0.0
    return Certificate(float(j[best]), x[best].copy(), np.sort(j), residual, len(x0) + evals)


def _directions(theta: Array) -> Array:
    """Return the unit directions of the nonzero rows of ``theta`` (m, k), without overflow."""
    scale, _, unit = _polar_rows(theta)
    return unit[scale > 0]


# -- balancedness ---------------------------------------------------------------------------------
def _beta(theta: Any, name: str) -> tuple[tuple[int, ...], Array]:
    """Return the shape of the positions ``theta`` and their balancedness (overflow-checked)."""
    th = check_theta(theta, name=name).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        beta = th[..., 0] ** 2 - np.sum(th[..., 1:] ** 2, axis=-1)
    if not np.all(np.isfinite(beta)):
        raise ValueError(
            f"{name}: the balancedness a² − ‖(w, b)‖² overflows float64 (entries up to "
            f"{np.max(np.abs(th)):.3g}); rescale {name}"
        )
    return th.shape, beta


def balancedness(theta: ArrayLike | ParticleMeasure) -> Array:
    r"""βᵢ = aᵢ² − ‖wᵢ‖² − bᵢ² for particles ``(..., m, d+2)``; shape ``(..., m)``.

    .. math:: \beta_i = a_i^2 - \|w_i\|^2 - b_i^2

    Conserved by the exact ReLU gradient flow (Du, Hu & Lee 2018): along dθ/dt = −∇J_μ,
    dβᵢ/dt = −2(a ∂_a J − (w, b)·∇_{(w,b)} J) = 0 because σ′(u)u = σ(u).

    Parameters
    ----------
    theta : array_like, shape (..., m, d+2) or (d+2,), or ParticleMeasure
        Finite positions, m ≥ 1, d ≥ 1.

    Returns
    -------
    ndarray, shape (..., m)

    Raises
    ------
    TypeError, ValueError
        If ``theta`` is not valid positions, or βᵢ overflows float64 (entries ≳ 1e154).
    """
    return _beta(theta, "theta")[1]


def balancedness_drift(
    before: ArrayLike | ParticleMeasure, after: ArrayLike | ParticleMeasure
) -> Array:
    r"""Per-particle drift βᵢ(after) − βᵢ(before).

    .. math:: \Delta\beta_i = \beta_i(\theta^{\rm after}) - \beta_i(\theta^{\rm before})

    Parameters
    ----------
    before : array_like, shape (..., m, d+2), or ParticleMeasure
    after : array_like, shape (T, ..., m, d+2) or (..., m, d+2), or ParticleMeasure
        Extra leading axes (e.g. snapshots) broadcast against ``before``.

    Returns
    -------
    ndarray, shape: the broadcast of ``(..., m)``

    Raises
    ------
    TypeError, ValueError
        Naming ``before`` or ``after`` when they are not valid positions, differ in m or
        d, do not broadcast, or overflow float64.
    """
    (shape0, b0), (shape1, b1) = _beta(before, "before"), _beta(after, "after")
    _check_pair("after", shape1, "before", shape0)
    with np.errstate(over="ignore"):
        drift = b1 - b0
    if not np.all(np.isfinite(drift)):
        raise ValueError("the balancedness drift overflows float64: rescale before and after")
    return drift


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
    regime (Chizat, Oyallon & Bach 2019).  Norms are taken on rows rescaled by their largest
    entry, so positions near 1e±300 give correctly rounded ratios.

    Parameters
    ----------
    theta0 : array_like, shape (..., m, d+2)
        Initial positions (m, d ≥ 1).
    theta : array_like, shape (T, ..., m, d+2) or (..., m, d+2)
        Later positions (extra leading axes broadcast).
    masses : array_like, shape (..., m), optional
        Nonnegative weights, not all 0 (only their ratios matter).  Default uniform.

    Returns
    -------
    per_particle : ndarray, shape (..., m)
        NaN for a particle starting at 0.
    total : ndarray, shape (...)

    Raises
    ------
    TypeError, ValueError
        Naming the invalid argument; ``ValueError`` naming ``theta0`` when every weighted
        particle starts at 0 (the total is then undefined) or a ratio exceeds the float64
        range (a particle starting 1e-300 away from 0 that moves by O(1)).
    """
    t0 = check_theta(theta0, name="theta0").astype(np.float64)
    th = check_theta(theta, name="theta").astype(np.float64)
    _check_pair("theta", th.shape, "theta0", t0.shape)
    m = t0.shape[-2]
    p = (
        np.ones(m)
        if masses is None
        else _weights(masses, m, np.broadcast_shapes(th.shape[:-2], t0.shape[:-2]))
    )
    s0, n0, _ = _polar_rows(t0)
    # ‖θ − θ0‖ = S‖θ/S − θ0/S‖ with S the largest entry of the two rows: no overflow
    big = np.maximum(np.max(np.abs(th), axis=-1), np.max(np.abs(t0), axis=-1))
    safe = np.where(big > 0, big, 1.0)[..., None]
    moved = np.linalg.norm(th / safe - t0 / safe, axis=-1)
    top, top0 = np.max(big, axis=-1, keepdims=True), np.max(s0, axis=-1, keepdims=True)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        per = np.where(s0 > 0, big / np.where(s0 > 0, s0, 1.0) * (moved / n0), np.nan)
        num = np.sum(p * (big / np.where(top > 0, top, 1.0) * moved) ** 2, axis=-1)
        den = np.sum(p * (s0 / np.where(top0 > 0, top0, 1.0) * n0) ** 2, axis=-1)
        total = top[..., 0] / top0[..., 0] * np.sqrt(num / den)
        if np.any(den == 0):
            raise ValueError(
                "theta0 has no particle of positive mass away from 0 (Σ pᵢ‖θᵢ(0)‖² = 0): "
                "the total relative displacement is undefined"
            )
        if np.any(np.isinf(per)) or not np.all(np.isfinite(total)):
            raise ValueError(
                "the relative displacement overflows float64: theta0 has particles of norm "
                f"down to {np.min(s0[s0 > 0]):.3g} that moved by up to {np.max(big * moved):.3g}"
            )
    return per, total


# -- whole trajectories ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TrajectoryDiagnostics:
    """Diagnostics along a trajectory.

    Arrays are indexed by snapshot first; ``None`` marks a diagnostic that does not apply.

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
            if a.ndim == 0 or np.all(np.isnan(a)):  # all NaN: e.g. never converged
                return f"{float(a):.4g}" if a.ndim == 0 else "nan"
            return f"mean {np.nanmean(a):.4g} (max {np.nanmax(a):.4g})"

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
    certificate_at : int or sequence of int, optional
        Snapshot indices in [−T, T) where to compute :func:`optimality_certificate` (ReLU,
        single run; ignored otherwise, but validated).
    min_risk : float, optional
        inf F ≥ 0 for the excess risk (see :func:`excess_risk`).
    chunk : int, optional
        Snapshots evaluated together (default: about 2²² entries of the sample × particle
        arrays).
    rng : int, Generator or SeedSequence, optional
        Random starts of the certificates.

    Returns
    -------
    TrajectoryDiagnostics

    Raises
    ------
    TypeError, ValueError
        Naming the invalid argument; every argument is checked before any work starts.
    """
    times, thetas, p = _snapshots(trajectory)
    _check(ParticleMeasure(thetas[0], p[0]), estimator)
    if teacher is None:
        teacher = getattr(trajectory, "teacher", None)
        teacher = teacher if isinstance(teacher, ParticleMeasure) else _teacher_of(estimator)
    elif not isinstance(teacher, ParticleMeasure):
        raise TypeError(f"teacher must be a ParticleMeasure or None; got {describe(teacher)}")
    if teacher is not None and teacher.d != thetas.shape[-1] - 2:
        raise ValueError(
            f"teacher has d={teacher.d} but the trajectory has d={thetas.shape[-1] - 2}"
        )
    eps, min_risk = check_positive("eps", eps), _min_risk(min_risk)
    T, m = thetas.shape[0], thetas.shape[-2]
    cert_at = [] if certificate_at is None else _snapshot_indices(certificate_at, T)
    gens = as_generator(rng).spawn(len(cert_at))
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
    for gen, i in zip(gens, cert_at if relu else [], strict=False):
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
        eps=eps,
    )

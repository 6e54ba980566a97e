"""Tests of meanfield.diagnostics: certificate, stationarity, balancedness, recovery, timing."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

import meanfield.velocity as velocity
from meanfield import convergence, covering, diagnostics, recovery, separation, support
from meanfield.convergence import convergence_time, detect_plateaus
from meanfield.data import sample_inputs
from meanfield.diagnostics import (
    balancedness,
    balancedness_drift,
    excess_risk,
    optimality_certificate,
    relative_displacement,
    risk,
    trajectory_diagnostics,
    wasserstein_gradient_norm,
)
from meanfield.measure import ParticleMeasure, gaussian, notebook_teacher
from meanfield.population import GaussianPopulationEstimator
from meanfield.recovery import effective_neuron_mmd, teacher_recovery

KINDS = ["sample", "exact"]


def make_estimator(kind: str, teacher: ParticleMeasure, n: int = 5000, activation: str = "relu"):
    if kind == "exact":
        return GaussianPopulationEstimator(teacher, activation=activation)
    x = sample_inputs(n, teacher.d, rng=12345)
    return velocity.SampleEstimator(x, teacher, activation=activation)


def drop_neuron(teacher: ParticleMeasure, j: int) -> ParticleMeasure:
    """The teacher without neuron j, with the same contributions qᵢaᵢ of the others."""
    q = teacher.masses
    keep = np.arange(teacher.m) != j
    theta = teacher.theta[keep].copy()
    theta[:, 0] *= 1 - q[j]
    return ParticleMeasure(theta, q[keep] / (1 - q[j]))


def add_particle(mu: ParticleMeasure, theta_new: np.ndarray, eps: float) -> ParticleMeasure:
    """μ with mass ε moved onto a new particle, the old contributions pᵢaᵢ unchanged."""
    theta = mu.theta.copy()
    theta[:, 0] /= 1 - eps
    return ParticleMeasure(np.vstack([theta, theta_new]), np.append((1 - eps) * mu.masses, eps))


@pytest.fixture(scope="module")
def teacher() -> ParticleMeasure:
    return notebook_teacher(4, 2, rng=1)


# -- the optimality certificate ----------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_certificate_is_nonnegative_at_the_teacher(kind: str, teacher: ParticleMeasure) -> None:
    est = make_estimator(kind, teacher)
    cert = optimality_certificate(teacher, est, rng=0)
    assert cert.value >= -1e-10
    assert cert.is_optimal(1e-10)
    np.testing.assert_allclose(np.linalg.norm(cert.direction), 1.0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("j", [0, 2])
def test_certificate_is_clearly_negative_when_a_teacher_neuron_is_missing(
    kind: str, j: int, teacher: ParticleMeasure
) -> None:
    est = make_estimator(kind, teacher)
    mu = drop_neuron(teacher, j)
    cert = optimality_certificate(mu, est, rng=0)
    # the missing neuron's own (balanced, unit) direction is a descent direction
    tj = teacher.theta[j]
    hint = np.sign(tj[0]) * np.r_[1.0, tj[1:] / np.linalg.norm(tj[1:])] / math.sqrt(2)
    j_hint = float(est.first_variation(mu, hint[None])[0])
    assert j_hint < 0
    assert cert.value <= j_hint + 1e-12  # the global search does at least as well
    assert cert.value < -0.1 * float(est.risk(mu))  # clearly negative, on the risk's scale
    assert not cert.is_optimal(1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_certificate_direction_decreases_the_risk_when_a_small_particle_is_added(
    kind: str, teacher: ParticleMeasure
) -> None:
    est = make_estimator(kind, teacher)
    mu = drop_neuron(teacher, 1)
    cert = optimality_certificate(mu, est, rng=1)
    f0 = float(est.risk(mu))
    for eps in (1e-2, 1e-3):
        f1 = float(est.risk(add_particle(mu, cert.direction, eps)))
        assert f1 < f0
        # first order: F(μ + ε δ_θ⋆) − F(μ) = ε J_μ(θ⋆) + O(ε²)
        np.testing.assert_allclose((f1 - f0) / eps, cert.value, rtol=0.1)
    # a direction with J > 0 (the negated one) raises the risk instead
    assert float(est.first_variation(mu, -cert.direction[None])[0]) > 0
    assert float(est.risk(add_particle(mu, -cert.direction, 1e-3))) > f0


def test_certificate_rejects_non_homogeneous_features_and_ensembles(
    teacher: ParticleMeasure,
) -> None:
    est = make_estimator("sample", teacher, n=500, activation="sigmoid")
    with pytest.raises(ValueError, match="2-homogeneous"):
        optimality_certificate(teacher, est)
    with pytest.raises(ValueError, match="single measure"):
        optimality_certificate(
            gaussian(3, 2, runs=2, rng=0), make_estimator("sample", teacher, 500)
        )


# -- risk and stationarity ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_risk_and_gradient_norm_vanish_at_the_teacher(kind: str, teacher: ParticleMeasure) -> None:
    est = make_estimator(kind, teacher)
    assert abs(float(excess_risk(teacher, est))) < 1e-12
    assert float(wasserstein_gradient_norm(teacher, est)) < 1e-20
    mu = gaussian(6, 2, std=0.5, rng=3)
    assert float(risk(mu, est)) > 0 and float(wasserstein_gradient_norm(mu, est)) > 0
    np.testing.assert_allclose(excess_risk(mu, est, min_risk=0.25), risk(mu, est) - 0.25)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 6))
def test_gradient_norm_is_minus_the_rate_of_change_of_the_risk(seed: int, m: int) -> None:
    """dF/dt = −∫‖v_μ‖² dμ along dθᵢ/dt = v_μ(θᵢ) (central difference in t)."""
    rng = np.random.default_rng(seed)
    teacher = notebook_teacher(3, 2, rng=rng)
    est = velocity.SampleEstimator(sample_inputs(300, 2, rng=rng), teacher)
    mu = ParticleMeasure(rng.standard_normal((m, 4)), rng.dirichlet(np.ones(m)))
    v = est.velocity(mu)
    h = 1e-6
    rate = (
        est.risk(mu.with_theta(mu.theta + h * v)) - est.risk(mu.with_theta(mu.theta - h * v))
    ) / (2 * h)
    np.testing.assert_allclose(rate, -wasserstein_gradient_norm(mu, est), rtol=1e-4, atol=1e-12)


def test_gradient_norm_is_invariant_to_splitting_particles(teacher: ParticleMeasure) -> None:
    est = make_estimator("sample", teacher, n=2000)
    mu = gaussian(5, 2, rng=4)
    split = ParticleMeasure(np.vstack([mu.theta, mu.theta]), np.r_[mu.masses, mu.masses] / 2)
    np.testing.assert_allclose(
        wasserstein_gradient_norm(split, est), wasserstein_gradient_norm(mu, est), rtol=1e-12
    )


# -- balancedness ------------------------------------------------------------------------------
def flow_setup(m: int = 3):
    teacher = notebook_teacher(3, 2, rng=7)
    est = velocity.SampleEstimator(sample_inputs(200, 2, rng=8), teacher)
    mu0 = gaussian(m, 2, std=0.7, rng=9)
    return est, mu0


def test_balancedness_is_conserved_by_the_solve_ivp_flow() -> None:
    est, mu0 = flow_setup()

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        return est.velocity(mu0.with_theta(y.reshape(mu0.theta.shape))).ravel()

    sol = solve_ivp(
        rhs,
        (0.0, 1.0),
        mu0.theta.ravel(),
        method="RK45",
        rtol=1e-10,
        atol=1e-12,
        t_eval=np.linspace(0, 1, 5),
    )
    assert sol.success
    thetas = sol.y.T.reshape(len(sol.t), *mu0.theta.shape)
    drift = balancedness_drift(mu0, thetas)
    assert drift.shape == (5, mu0.m)
    assert np.max(np.abs(drift)) < 1e-8
    # the particles did move: the conservation is not trivial
    assert relative_displacement(mu0.theta, thetas[-1])[1] > 0.05


def test_balancedness_drifts_at_first_order_in_the_euler_step() -> None:
    """Euler steps drift by O(η²) each, so O(η) over a fixed time: halving η halves it."""
    est, mu0 = flow_setup()
    drifts = []
    for eta in (0.04, 0.02, 0.01):
        th = mu0.theta.copy()
        for _ in range(round(1.0 / eta)):
            th = th + eta * est.velocity(mu0.with_theta(th))
        drifts.append(np.max(np.abs(balancedness_drift(mu0, th))))
    assert drifts[0] > 1e-6
    np.testing.assert_allclose(np.array(drifts[:-1]) / np.array(drifts[1:]), 2.0, rtol=0.2)


def test_balancedness_formula() -> None:
    theta = np.array([[3.0, 1.0, 2.0, 0.5], [0.0, 1.0, 0.0, 0.0]])
    np.testing.assert_allclose(balancedness(theta), [9 - 1 - 4 - 0.25, -1.0])
    np.testing.assert_allclose(balancedness(ParticleMeasure(theta)), balancedness(theta))


# -- teacher recovery --------------------------------------------------------------------------
def test_teacher_recovery_is_perfect_for_the_teacher_itself(teacher: ParticleMeasure) -> None:
    rec = teacher_recovery(teacher, teacher)
    np.testing.assert_allclose(rec.mass_ratio, 1.0)
    np.testing.assert_allclose(rec.angle, 0.0, atol=1e-7)
    np.testing.assert_allclose(rec.mass_within, rec.teacher_mass)
    np.testing.assert_allclose(rec.particle_fraction, teacher.masses)
    assert float(rec.mmd) < 1e-7 and float(rec.unmatched_mass) == 0.0


def test_teacher_recovery_is_invariant_to_splitting_and_rescaling(teacher: ParticleMeasure) -> None:
    mu = gaussian(8, 2, rng=5)
    base = teacher_recovery(mu, teacher)
    lam = np.random.default_rng(0).uniform(0.3, 3.0, mu.m)
    rescaled = mu.theta.copy()
    rescaled[:, 0] *= lam
    rescaled[:, 1:] /= lam[:, None]
    split = ParticleMeasure(np.vstack([mu.theta, rescaled]), np.r_[mu.masses, mu.masses] / 2)
    for other in (split, ParticleMeasure(rescaled, mu.masses)):
        rec = teacher_recovery(other, teacher)
        for name in ("student_mass", "mass_ratio", "angle", "mass_within", "unmatched_mass", "mmd"):
            np.testing.assert_allclose(
                getattr(rec, name), getattr(base, name), rtol=1e-9, atol=1e-12
            )
    np.testing.assert_allclose(
        teacher_recovery(split, teacher).particle_fraction, base.particle_fraction
    )


def test_teacher_recovery_sees_a_missing_neuron(teacher: ParticleMeasure) -> None:
    rec = teacher_recovery(drop_neuron(teacher, 2), teacher)
    np.testing.assert_allclose(rec.mass_ratio, [1.0, 1.0, 0.0, 1.0], atol=1e-12)
    assert np.isnan(rec.angle[2])
    np.testing.assert_allclose(
        float(rec.mmd),
        float(
            effective_neuron_mmd(
                ParticleMeasure(teacher.theta[[2]]), ParticleMeasure(np.zeros((1, 4)))
            )
        )
        * teacher.masses[2],
        rtol=1e-9,
    )


def test_teacher_recovery_counts_signs_no_teacher_has() -> None:
    teacher = ParticleMeasure(np.array([[1.0, 1.0, 0.0, 0.0]]))
    student = ParticleMeasure(np.array([[2.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 1.0, 0.0]]))
    rec = teacher_recovery(student, teacher)
    np.testing.assert_allclose(rec.mass_ratio, [1.0])
    np.testing.assert_allclose(rec.unmatched_mass, 0.5)
    assert float(rec.mmd) > 0.1


def test_teacher_recovery_broadcasts_over_ensembles(teacher: ParticleMeasure) -> None:
    mus = gaussian(7, 2, runs=3, rng=6)
    rec = teacher_recovery(mus, teacher)
    assert rec.mass_ratio.shape == (3, 4) and rec.mmd.shape == (3,)
    for r in range(3):
        one = teacher_recovery(mus.replica(r), teacher)
        np.testing.assert_allclose(rec.mass_ratio[r], one.mass_ratio)
        np.testing.assert_allclose(rec.mmd[r], one.mmd)


# -- lazy vs rich, convergence time, plateaus --------------------------------------------------
def test_relative_displacement() -> None:
    t0 = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    per, total = relative_displacement(t0[:2], np.stack([t0[:2], 3 * t0[:2]]))
    np.testing.assert_allclose(per, [[0, 0], [2, 2]])
    np.testing.assert_allclose(total, [0, 2])
    per, total = relative_displacement(t0, t0 + 1.0, masses=[0.5, 0.5, 0.0])
    assert np.isnan(per[2])
    np.testing.assert_allclose(total, math.sqrt(3 / 2.5))


def test_convergence_time() -> None:
    t = np.linspace(0, 10, 101)
    values = np.stack([np.exp(-t), np.exp(-t / 100)], axis=1)
    ct = convergence_time(t, values, 1e-2)
    np.testing.assert_allclose(ct[0], t[np.argmax(np.exp(-t) < 1e-2)])
    assert math.isclose(ct[0], 4.7, abs_tol=0.051) and np.isnan(ct[1])


def test_detect_plateaus_finds_a_flat_stretch_in_log_log() -> None:
    x = np.linspace(-1, 5, 601)
    y = np.where(x < 1, -2 * (x + 1), np.where(x < 3, -4.0, -4 - 2 * (x - 3)))
    plateaus = detect_plateaus(10**x, 10**y)
    assert len(plateaus) == 1
    p = plateaus[0]
    assert 8 < p.start < 12 and 800 < p.end < 1200 and not p.final
    np.testing.assert_allclose(p.level, 1e-4, rtol=1e-9)
    assert detect_plateaus(10**x, 10 ** (-x)) == []
    final = detect_plateaus(10**x, 10 ** np.maximum(-x, -2.0))
    assert len(final) == 1 and final[0].final and math.isclose(final[0].end, 1e5)


# -- whole trajectories ------------------------------------------------------------------------
def euler_run(est, mu0: ParticleMeasure, eta: float, steps: int, every: int):
    th, times, snaps = mu0.theta.copy(), [], []
    for k in range(steps + 1):
        if k % every == 0:
            times.append(k * eta)
            snaps.append(th.copy())
        th = th + eta * est.velocity(mu0.with_theta(th))
    return SimpleNamespace(times=np.array(times), thetas=np.array(snaps), masses=mu0.masses)


def test_trajectory_diagnostics_on_a_duck_typed_trajectory(teacher: ParticleMeasure) -> None:
    est = make_estimator("sample", teacher, n=3000)
    mu0 = gaussian(12, 2, std=0.5, rng=11)
    traj = euler_run(est, mu0, eta=0.05, steps=400, every=20)
    diag = trajectory_diagnostics(traj, est, eps=1e-3, certificate_at=[-1], rng=0)
    T = len(traj.times)
    assert diag.risk.shape == (T,) and diag.gradient_norm.shape == (T,)
    assert diag.balancedness_drift is not None and diag.balancedness_drift.shape == (T, 12)
    assert diag.mass_ratio is not None and diag.mass_ratio.shape == (T, 4)
    assert diag.risk[-1] < diag.risk[0]
    np.testing.assert_allclose(diag.risk[3], est.risk(mu0.with_theta(traj.thetas[3])))
    np.testing.assert_allclose(diag.total_displacement[0], 0.0)
    ct = float(diag.convergence_time)
    assert np.isnan(ct) or diag.excess_risk[np.searchsorted(traj.times, ct)] < 1e-3
    assert T - 1 in diag.certificate
    assert "excess risk" in diag.summary()
    # chunking does not change anything
    small = trajectory_diagnostics(traj, est, chunk=3)
    np.testing.assert_allclose(small.risk, diag.risk, rtol=1e-12)
    np.testing.assert_allclose(small.mmd, diag.mmd, rtol=1e-12)


def test_trajectory_diagnostics_on_an_ensemble(teacher: ParticleMeasure) -> None:
    est = make_estimator("sample", teacher, n=1000)
    mus = gaussian(6, 2, std=0.5, runs=2, rng=12)
    traj = euler_run(est, mus, eta=0.05, steps=40, every=10)
    diag = trajectory_diagnostics(traj, est, teacher=teacher)
    assert diag.risk.shape == (5, 2) and diag.displacement.shape == (5, 2, 6)
    assert diag.convergence_time.shape == (2,) and diag.mmd is not None and diag.mmd.shape == (5, 2)
    with pytest.raises(ValueError, match=r"trajectory\.thetas"):
        trajectory_diagnostics(
            SimpleNamespace(times=np.arange(3.0), thetas=traj.thetas, masses=None), est
        )


@pytest.mark.parametrize(
    ("facade", "module"),
    [
        (diagnostics, convergence),
        (diagnostics, recovery),
        (separation, support),
        (separation, covering),
    ],
)
def test_moved_names_stay_importable_from_their_old_module(facade, module) -> None:
    for name in module.__all__:
        assert getattr(facade, name) is getattr(module, name), name


# -- hostile inputs (issue 9): a correct value or an error naming the parameter ---------------
POP_TEACHER = ParticleMeasure(np.array([[1.0, 0.6, 0.8, 0.0], [-0.8, 0.0, 0.6, 0.8]]))
STUDENT = ParticleMeasure(
    np.array([[0.5, 1.0, -0.3, 0.2], [-1.0, 0.4, 0.8, -0.1], [0.7, -0.6, 0.1, 0.3]])
)


@pytest.mark.parametrize("bad", [-1.5, -math.inf, math.inf, math.nan, "1.0", True, [0.0]])
def test_min_risk_must_be_a_finite_nonnegative_real(bad) -> None:
    est = GaussianPopulationEstimator(POP_TEACHER)
    with pytest.raises((ValueError, TypeError), match="min_risk"):
        excess_risk(STUDENT, est, min_risk=bad)
    traj = SimpleNamespace(times=np.arange(2.0), thetas=np.stack([STUDENT.theta] * 2), masses=None)
    with pytest.raises((ValueError, TypeError), match="min_risk"):
        trajectory_diagnostics(traj, est, min_risk=bad)
    np.testing.assert_allclose(excess_risk(STUDENT, est, min_risk=1e300), est.risk(STUDENT) - 1e300)


@pytest.mark.parametrize(
    ("rng", "error"), [("seed", TypeError), (-1, ValueError), (2.5, TypeError)]
)
def test_certificate_names_a_bad_rng(rng, error) -> None:
    with pytest.raises(error, match="rng"):
        optimality_certificate(
            STUDENT, GaussianPopulationEstimator(POP_TEACHER), n_starts=4, rng=rng
        )


def test_certificate_names_a_measure_of_another_dimension() -> None:
    est = GaussianPopulationEstimator(POP_TEACHER)
    with pytest.raises(ValueError, match=r"measure has input dimension d=3 .* d=2"):
        optimality_certificate(ParticleMeasure(np.ones((2, 5))), est, n_starts=4)
    with pytest.raises(ValueError, match="d=3"):
        wasserstein_gradient_norm(ParticleMeasure(np.ones((2, 5))), est)


class LinearJ(velocity.VelocityEstimator):
    """A stub estimator with J(θ) = scale·(θ·e₁) on a ReLU model, for extreme magnitudes."""

    def __init__(self, scale: float) -> None:
        self.activation, self.d, self.scale = velocity.get_activation("relu"), 2, scale

    def risk(self, measure):
        return np.zeros(measure.batch_shape)

    def first_variation(self, measure, theta=None):
        return self.scale * self._points(measure, theta)[..., 0]

    def grad_first_variation(self, measure, theta=None):
        pts = self._points(measure, theta)
        return self.scale * np.broadcast_to(np.eye(pts.shape[-1])[0], pts.shape)


@pytest.mark.parametrize("scale", [1.0, 1e300, 1e-300])
def test_certificate_descends_without_overflow_at_any_scale_of_j(scale: float) -> None:
    """min over the unit sphere of scale·θ₁ is −scale, at −e₁ (no warning at 1e300)."""
    mu = ParticleMeasure(np.array([[0.3, 1.0, -0.5, 0.2]]))
    cert = optimality_certificate(mu, LinearJ(scale), n_starts=8, n_refine=4, max_iter=200, rng=0)
    np.testing.assert_allclose(cert.value, -scale, rtol=1e-8)
    np.testing.assert_allclose(cert.direction, [-1.0, 0.0, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(cert.support_residual, scale * 0.3 / np.linalg.norm(mu.theta))


def test_gradient_norm_overflow_names_the_measure() -> None:
    mu = ParticleMeasure(np.array([[0.3, 1.0, -0.5, 0.2]]))
    assert float(wasserstein_gradient_norm(mu, LinearJ(1e150))) == pytest.approx(1e300)
    with pytest.raises(ValueError, match="measure"):
        wasserstein_gradient_norm(mu, LinearJ(1e200))


def test_balancedness_validates_theta_and_reports_overflow() -> None:
    with pytest.raises(ValueError, match=r"theta must have shape .* got shape \(2, 0\)"):
        balancedness(np.empty((2, 0)))
    theta = np.array([[3.0, 1.0, 2.0, 0.5]])
    np.testing.assert_allclose(balancedness(theta * 1e150), 3.75e300, rtol=1e-14)
    with pytest.raises(ValueError, match=r"theta.*overflows"):
        balancedness(theta * 1e200)
    with pytest.raises(ValueError, match="after"):
        balancedness_drift(theta, np.ones((1, 5)))
    with pytest.raises(ValueError, match=r"after.*overflows"):
        balancedness_drift(theta, theta * 1e200)
    a_only, u_only = np.array([[1.3e154, 0.0, 0.0, 0.0]]), np.array([[0.0, 1.3e154, 0.0, 0.0]])
    with pytest.raises(ValueError, match="drift overflows"):  # β = ±1.69e308 each
        balancedness_drift(u_only, a_only)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), exponent=st.sampled_from([-300, -150, 150, 300]))
def test_relative_displacement_is_scale_invariant_down_to_1e_minus_300(
    seed: int, exponent: int
) -> None:
    rng = np.random.default_rng(seed)
    t0, th = rng.standard_normal((4, 5)), rng.standard_normal((3, 4, 5))
    p = rng.uniform(0.1, 1.0, 4)
    want = relative_displacement(t0, th, p)
    got = relative_displacement(t0 * 10.0**exponent, th * 10.0**exponent, p * 1e300)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_relative_displacement_validates_masses_and_a_zero_start() -> None:
    t0 = np.ones((3, 4))
    for bad in (np.ones(5), [-1.0, 1.0, 1.0], np.zeros(3), 1.5, [[1.0, 1.0]]):
        with pytest.raises(ValueError, match="masses"):
            relative_displacement(t0, t0 + 1.0, bad)
    with pytest.raises(ValueError, match="theta0 has no particle"):
        relative_displacement(np.zeros((3, 4)), t0)
    with pytest.raises(ValueError, match="theta0"):  # a ratio beyond float64
        relative_displacement(np.full((1, 4), 5e-324), np.ones((1, 4)))
    with pytest.raises(ValueError, match="theta"):
        relative_displacement(t0, np.ones((2, 3, 5)))


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ([[0]], TypeError),
        ([1.5], TypeError),
        (["a"], TypeError),
        ([10**30], ValueError),
        ([3], ValueError),
        ("0", TypeError),
    ],
)
def test_certificate_at_must_be_snapshot_indices(bad, error) -> None:
    traj = SimpleNamespace(times=np.arange(3.0), thetas=np.ones((3, 2, 4)), masses=None)
    est = GaussianPopulationEstimator(POP_TEACHER)
    with pytest.raises(error, match="certificate_at"):
        trajectory_diagnostics(traj, est, certificate_at=bad)
    diag = trajectory_diagnostics(traj, est, certificate_at=np.array([-1, 0]), rng=0)
    assert sorted(diag.certificate) == [0, 2]


def test_trajectory_diagnostics_checks_its_snapshots_and_options_first() -> None:
    est = GaussianPopulationEstimator(POP_TEACHER)
    thetas = np.ones((3, 2, 4))
    for times in (np.array([0.0, 2.0, 1.0]), np.empty(0)):
        with pytest.raises(ValueError, match=r"trajectory\.times"):
            trajectory_diagnostics(SimpleNamespace(times=times, thetas=thetas[: len(times)]), est)
    traj = SimpleNamespace(times=np.arange(3.0), thetas=thetas, masses=np.ones(5))
    with pytest.raises(ValueError, match=r"trajectory\.masses"):
        trajectory_diagnostics(traj, est)
    traj.masses = None
    for kwargs, name in [({"eps": 0.0}, "eps"), ({"rng": "x"}, "rng"), ({"teacher": 3}, "teacher")]:
        with pytest.raises((ValueError, TypeError), match=name):
            trajectory_diagnostics(traj, est, **kwargs)
    summary = trajectory_diagnostics(traj, est, eps=1e-30).summary()  # never converges: NaN
    assert "convergence time (excess < 1e-30): nan" in summary


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"min_decades": 0.0}, "min_decades"),
        ({"min_decades": -1.5}, "min_decades"),
        ({"min_decades": [1.0]}, "min_decades"),
        ({"min_decades": True}, "min_decades"),
        ({"slope_tol": math.nan}, "slope_tol"),
        ({"window_decades": math.inf}, "window_decades"),
    ],
)
def test_detect_plateaus_validates_its_options(kwargs, name) -> None:
    with pytest.raises((ValueError, TypeError), match=name):
        detect_plateaus(np.geomspace(0.01, 100, 20), np.geomspace(1, 1e-3, 20), **kwargs)


def test_detect_plateaus_near_the_float64_limits() -> None:
    t = np.geomspace(1e200, 1e307, 60)
    t[-1] = np.finfo(float).max
    top = np.finfo(float).max
    (p,) = detect_plateaus(t, np.full(60, top))
    assert p.start == 1e200 and p.end == top and p.level == top and p.final
    assert 108 < p.decades < 109
    (q,) = detect_plateaus(t * 1e-300 * 1e-220, np.full(60, 5e-324))  # subnormal t and F
    assert q.level == 5e-324 and q.final
    bad = np.geomspace(0.01, 100, 20)
    bad[3] = 1.7e308
    with pytest.raises(ValueError, match="times must be nondecreasing"):
        detect_plateaus(bad, np.ones(20))


# -- teacher recovery at extreme magnitudes -----------------------------------------------------
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), exponent=st.sampled_from([-150, -75, 75, 150]))
def test_recovery_is_exact_under_a_common_rescaling_near_1e300(seed: int, exponent: int) -> None:
    """Scaling student and teacher by λ scales the effective masses and the MMD by λ²."""
    rng = np.random.default_rng(seed)
    student, teacher = gaussian(5, 2, rng=rng), notebook_teacher(3, 2, rng=rng)
    lam = 10.0**exponent
    big_s, big_t = student.with_theta(student.theta * lam), teacher.with_theta(teacher.theta * lam)
    base, rec = teacher_recovery(student, teacher), teacher_recovery(big_s, big_t)
    np.testing.assert_allclose(rec.mmd, base.mmd * lam**2, rtol=1e-12)
    np.testing.assert_allclose(rec.student_mass, base.student_mass * lam**2, rtol=1e-12)
    for name in ("mass_ratio", "angle", "particle_fraction"):
        np.testing.assert_allclose(getattr(rec, name), getattr(base, name), rtol=1e-12)


def test_recovery_returns_the_true_value_or_names_the_overflowing_measure() -> None:
    huge = ParticleMeasure(np.array([[1.0, 1e300, -1e300, 1e300]] * 2))
    # ν⁺ of `huge` is a mass √3·1e300 at one direction, the student's O(1): the MMD is
    # √3·1e300 to float64 precision, not inf
    np.testing.assert_allclose(effective_neuron_mmd(STUDENT, huge), math.sqrt(3) * 1e300)
    with pytest.raises(ValueError, match="student or teacher"):  # p|a|‖u‖ ~ 1e600
        effective_neuron_mmd(STUDENT, ParticleMeasure(np.array([[1e300, 1e300, 0.0, 0.0]])))
    with pytest.raises(ValueError, match=r"mass_ratio.*teacher"):  # ratio ~ 1e600
        teacher_recovery(STUDENT, POP_TEACHER.with_theta(POP_TEACHER.theta * 1e-300))
    rec = teacher_recovery(STUDENT, POP_TEACHER, kappa=1e300)  # no overflow in the kernel
    assert np.isfinite(float(rec.mmd)) and float(rec.mmd) > 0


def test_teacher_neurons_of_zero_effective_mass_take_no_particle_and_ratio_one() -> None:
    theta = np.array([[1.0, 0.6, 0.8, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    teacher = ParticleMeasure(np.vstack([theta, [[1.0, -0.6, -0.8, 0.0]]]), [0.4, 0.3, 0.3, 0.0])
    student = ParticleMeasure(np.array([[1.0, 0.6, 0.8, 0.0], [1.0, -0.8, 0.6, 0.0]]))
    rec = teacher_recovery(student, teacher)
    np.testing.assert_allclose(rec.teacher_mass, [0.4, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(rec.mass_ratio, [2.5, 1.0, 1.0, 1.0])  # both go to neuron 0
    np.testing.assert_allclose(rec.particle_fraction, [1.0, 0.0, 0.0, 0.0])
    assert np.all(np.isnan(rec.angle[1:]))

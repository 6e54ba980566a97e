"""Tests of the exact population estimator (GaussianPopulationEstimator, issue 4)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import meanfield.population as population
from meanfield import ParticleMeasure, SampleEstimator, Teacher, notebook_sphere, notebook_teacher
from meanfield.activations import get_activation
from meanfield.network import feature, feature_grad
from meanfield.population import GaussianPopulationEstimator

MC_N = 200_000


@st.composite
def problems(draw, *, runs=None, activation="relu"):
    """A student measure and a teacher measure in general position."""
    d = draw(st.integers(1, 4))
    m, m0 = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lead = () if runs is None else (runs,)
    scale = 0.5 if activation in ("sigmoid", "tanh") else 1.0
    theta = rng.standard_normal((*lead, m, d + 2)) * scale
    raw = rng.uniform(0.2, 1.0, (*lead, m))
    student = ParticleMeasure(theta, raw / raw.sum(axis=-1, keepdims=True))
    teacher = ParticleMeasure(rng.standard_normal((m0, d + 2)) * scale)
    return student, teacher, rng


def mc_first_variation(est, x, mu, points):
    """Monte-Carlo J and ∇J at points with per-entry standard errors."""
    r = est.residual(mu)  # (n,)
    phi = feature(points, x, activation=est.activation)  # (n, k)
    grad = feature_grad(points, x, activation=est.activation)  # (n, k, d+2)
    n = x.shape[0]
    j_terms = r[:, None] * phi
    g_terms = r[:, None, None] * grad
    return (
        j_terms.mean(0), j_terms.std(0) / np.sqrt(n),
        g_terms.mean(0), g_terms.std(0) / np.sqrt(n),
    )


# -- the teacher against itself -------------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "erf", "sigmoid"])
def test_teacher_has_zero_risk_and_zero_velocity(activation):
    teacher = notebook_teacher(5, 3, rng=2)
    est = GaussianPopulationEstimator(teacher, activation=activation, n_nodes=16)
    scale = est._energy_t  # ‖f_ν‖²_{L²}
    assert scale > 0.01
    assert abs(est.risk(teacher)) <= 1e-12 * scale
    assert abs(est.excess_risk(teacher)) <= 1e-12 * scale
    np.testing.assert_allclose(est.first_variation(teacher), 0.0, atol=1e-12 * scale)
    np.testing.assert_allclose(est.velocity(teacher), 0.0, atol=1e-10)
    zero = ParticleMeasure(teacher.theta * np.r_[0.0, np.ones(teacher.d + 1)])
    np.testing.assert_allclose(est.risk(zero), 0.5 * scale, rtol=1e-12)


# -- exact against Monte Carlo --------------------------------------------------------------
@settings(max_examples=12, deadline=None)
@given(prob=problems(), activation=st.sampled_from(["relu", "erf", "tanh"]))
def test_exact_estimator_agrees_with_monte_carlo(prob, activation):
    mu, teacher, rng = prob
    if activation == "tanh":  # quadrature: keep it accurate (small weights, many nodes)
        mu = ParticleMeasure(mu.theta * 0.5, mu.masses)
        teacher = ParticleMeasure(teacher.theta * 0.5)
    exact = GaussianPopulationEstimator(teacher, activation=activation, n_nodes=48)
    x = rng.standard_normal((MC_N, mu.d))
    mc = SampleEstimator(x, teacher, activation=activation)
    r2 = 0.5 * mc.residual(mu) ** 2
    assert abs(exact.risk(mu) - r2.mean()) <= 5 * r2.std() / np.sqrt(MC_N) + 1e-12
    points = np.concatenate([mu.theta, rng.standard_normal((3, mu.d + 2))])
    j_mc, j_se, g_mc, g_se = mc_first_variation(mc, x, mu, points)
    floor = 1e-9 if activation != "tanh" else 2e-5
    assert np.all(np.abs(exact.first_variation(mu, points) - j_mc) <= 5 * j_se + floor)
    g_exact = exact.grad_first_variation(mu, points)
    assert np.all(np.abs(g_exact - g_mc) <= 5 * g_se + floor)
    np.testing.assert_array_equal(exact.velocity(mu, points), -g_exact)


# -- exact derivatives ----------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(prob=problems(), activation=st.sampled_from(["relu", "erf"]))
def test_velocity_is_minus_the_gradient_of_the_first_variation(prob, activation):
    mu, teacher, rng = prob
    est = GaussianPopulationEstimator(teacher, activation=activation)
    points = rng.standard_normal((4, mu.d + 2))
    direction = rng.standard_normal(points.shape)
    h = 1e-6
    fd = (est.first_variation(mu, points + h * direction)
          - est.first_variation(mu, points - h * direction)) / (2 * h)
    analytic = -np.einsum("kd,kd->k", est.velocity(mu, points), direction)
    np.testing.assert_allclose(analytic, fd, atol=1e-6 * (1 + np.abs(fd).max()))


@settings(max_examples=25, deadline=None)
@given(prob=problems(), activation=st.sampled_from(["relu", "erf"]))
def test_particle_gradient_is_the_gradient_of_the_risk(prob, activation):
    mu, teacher, rng = prob
    est = GaussianPopulationEstimator(teacher, activation=activation)
    direction = rng.standard_normal(mu.theta.shape)
    h = 1e-6
    fd = (est.risk(mu.with_theta(mu.theta + h * direction))
          - est.risk(mu.with_theta(mu.theta - h * direction))) / (2 * h)
    analytic = np.sum(est.particle_gradient(mu) * direction)
    np.testing.assert_allclose(analytic, fd, atol=1e-7 * (1 + abs(fd)))


@settings(max_examples=25, deadline=None)
@given(prob=problems())
def test_relu_first_variation_is_two_homogeneous(prob):
    mu, teacher, rng = prob
    est = GaussianPopulationEstimator(teacher)
    points = rng.standard_normal((5, mu.d + 2))
    j = est.first_variation(mu, points)
    np.testing.assert_allclose(est.first_variation(mu, 2.5 * points), 6.25 * j, rtol=1e-10,
                               atol=1e-13)
    euler = np.einsum("kd,kd->k", points, est.grad_first_variation(mu, points))
    np.testing.assert_allclose(euler, 2 * j, rtol=1e-9, atol=1e-12)


# -- structure: ensembles, permutations, splitting, chunking --------------------------------
@settings(max_examples=15, deadline=None)
@given(prob=problems(runs=3))
def test_ensembles_match_their_replicas(prob):
    mu, teacher, rng = prob
    est = GaussianPopulationEstimator(teacher)
    risk, vel = est.risk(mu), est.velocity(mu)
    assert risk.shape == (3,) and vel.shape == mu.theta.shape
    points = rng.standard_normal((2, mu.d + 2))
    at_points = est.first_variation(mu, points)
    assert at_points.shape == (3, 2)
    for r in range(3):
        one = mu.replica(r)
        np.testing.assert_allclose(risk[r], est.risk(one), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(vel[r], est.velocity(one), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(at_points[r], est.first_variation(one, points), rtol=1e-12,
                                   atol=1e-14)


def test_batched_teachers_broadcast():
    rng = np.random.default_rng(3)
    teachers = ParticleMeasure(rng.standard_normal((2, 3, 4)))
    mu = ParticleMeasure(rng.standard_normal((5, 4)))
    est = GaussianPopulationEstimator(teachers)
    risk, vel = est.risk(mu), est.velocity(mu)
    assert risk.shape == (2,) and vel.shape == (2, 5, 4)
    for r in range(2):
        single = GaussianPopulationEstimator(teachers.replica(r))
        np.testing.assert_allclose(risk[r], single.risk(mu), rtol=1e-13)
        np.testing.assert_allclose(vel[r], single.velocity(mu), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="batch_shape"):
        est.risk(ParticleMeasure(rng.standard_normal((3, 5, 4))))


@settings(max_examples=15, deadline=None)
@given(prob=problems())
def test_permuting_and_splitting_particles(prob):
    mu, teacher, rng = prob
    est = GaussianPopulationEstimator(teacher)
    perm = rng.permutation(mu.m)
    permuted = ParticleMeasure(mu.theta[perm], mu.masses[perm])
    np.testing.assert_allclose(est.risk(permuted), est.risk(mu), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(est.velocity(permuted), est.velocity(mu)[perm], rtol=1e-10,
                               atol=1e-13)
    split = ParticleMeasure(  # particle 0 split into two halves of its mass
        np.concatenate([mu.theta, mu.theta[:1]]),
        np.concatenate([mu.masses * np.r_[0.5, np.ones(mu.m - 1)], 0.5 * mu.masses[:1]]),
    )
    np.testing.assert_allclose(est.risk(split), est.risk(mu), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(est.velocity(split)[: mu.m], est.velocity(mu), rtol=1e-9,
                               atol=1e-12)


def test_chunked_evaluation_matches(monkeypatch):
    rng = np.random.default_rng(4)
    mu = ParticleMeasure(rng.standard_normal((2, 40, 5)))
    teacher = ParticleMeasure(rng.standard_normal((3, 5)))
    est = GaussianPopulationEstimator(teacher)
    whole = est.grad_first_variation(mu), est.first_variation(mu)
    # 150 // (2·40) = 1 row per chunk (7 with the compiled contraction: 4× the budget)
    monkeypatch.setattr(population, "_PAIR_BUDGET", 150)
    chunked = est.grad_first_variation(mu), est.first_variation(mu)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-13)


# -- activations ----------------------------------------------------------------------------
def test_teacher_object_keeps_its_own_activation():
    rng = np.random.default_rng(8)
    teacher = Teacher(ParticleMeasure(rng.standard_normal((3, 4)) * 0.5), "erf")
    mu = ParticleMeasure(rng.standard_normal((4, 4)) * 0.5)
    est = GaussianPopulationEstimator(teacher, activation="tanh", n_nodes=48)
    assert est.teacher_activation.name == "erf"
    x = rng.standard_normal((MC_N, 2))
    mc = SampleEstimator(x, teacher, activation="tanh")
    r2 = 0.5 * mc.residual(mu) ** 2
    assert abs(est.risk(mu) - r2.mean()) <= 5 * r2.std() / np.sqrt(MC_N) + 1e-6
    with pytest.raises(ValueError, match="realisable"):
        est.excess_risk(mu)


def test_bias_free_erf_flow_keeps_biases_at_zero():
    rng = np.random.default_rng(9)
    theta = rng.standard_normal((6, 5))
    theta[:, -1] = 0.0
    teacher_theta = rng.standard_normal((3, 5))
    teacher_theta[:, -1] = 0.0
    est = GaussianPopulationEstimator(ParticleMeasure(teacher_theta), activation="erf")
    vel = est.velocity(ParticleMeasure(theta))
    np.testing.assert_array_equal(vel[:, -1], 0.0)
    assert np.abs(vel[:, :-1]).max() > 1e-3


# -- a tiny exact flow ----------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_explicit_euler_on_the_exact_flow_decreases_the_risk(activation):
    teacher = notebook_teacher(4, 2, rng=0)
    mu = notebook_sphere(30, 2, radius=0.5, rng=1)
    est = GaussianPopulationEstimator(teacher, activation=activation)
    risks = [float(est.risk(mu))]
    eta = 0.05
    for _ in range(60):
        mu = mu.with_theta(mu.theta + eta * est.velocity(mu))
        risks.append(float(est.risk(mu)))
    assert np.all(np.diff(risks) <= 1e-15), np.diff(risks).max()
    assert risks[-1] < 0.7 * risks[0]


# -- validation -----------------------------------------------------------------------------
def test_argument_errors():
    teacher = notebook_teacher(2, 3, rng=0)
    with pytest.raises(TypeError, match="teacher"):
        GaussianPopulationEstimator(lambda x: x[..., 0])
    with pytest.raises(ValueError, match="method"):
        GaussianPopulationEstimator(teacher, method="exact")
    with pytest.raises(ValueError, match="n_nodes"):
        GaussianPopulationEstimator(teacher, n_nodes=0)
    with pytest.raises(ValueError, match="no closed form"):
        GaussianPopulationEstimator(teacher, activation="tanh", method="closed")
    est = GaussianPopulationEstimator(teacher)
    with pytest.raises(ValueError, match="input dimension"):
        est.risk(ParticleMeasure(np.ones((2, 4))))
    with pytest.raises(ValueError, match="theta"):
        est.velocity(teacher, np.ones((2, 4)))
    assert get_activation("relu") == est.activation


def test_positions_too_large_for_float64_are_refused_without_warnings():
    """K(θ, θ) ~ ‖θ‖² overflows near 1e300: a ValueError naming the measure, no warning."""
    teacher = ParticleMeasure(np.array([[1.0, 0.6, 0.8, 0.0], [-0.8, 0.0, 0.6, 0.8]]))
    huge = ParticleMeasure(np.array([[1.0, 1e300, -1e300, 1e300]]))
    for backend in ("auto", "numpy"):
        est = GaussianPopulationEstimator(teacher, backend=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for fn in (est.risk, est.velocity, est.first_variation):
                with pytest.raises(ValueError, match=r"theta|measure"):
                    fn(huge)
            # a huge bias far below the kernel's overflow: an exact, finite answer
            far = ParticleMeasure(np.array([[1e-150, 0.3, 0.2, -1e150]]))
            assert np.isfinite(est.risk(far)) and np.all(np.isfinite(est.velocity(far)))
    with pytest.raises(ValueError, match="backend"):
        GaussianPopulationEstimator(teacher, backend="cuda")

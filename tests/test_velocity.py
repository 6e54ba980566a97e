"""F, J_μ, ∇J_μ and v_μ on a sample; the particle gradient identity; ensembles."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meanfield.data import CallableTarget, Teacher
from meanfield.measure import ParticleMeasure, gaussian, notebook_teacher
from meanfield.network import feature, feature_grad, output
from meanfield.velocity import (
    SampleEstimator,
    VelocityEstimator,
    first_variation_grad_on_sample,
    residual_on_sample,
)
from tests.strategies import (
    ACTIVATION_NAMES,
    activations,
    kink_free_step,
    problems,
    unit_direction,
)


def setup(pb, name):
    mu = ParticleMeasure(pb.theta, pb.masses)
    est = SampleEstimator(pb.x, ParticleMeasure(pb.teacher), activation=name)
    return mu, est


def fd_scale(theta, x):
    return 1.0 + np.max(np.abs(theta)) ** 2 * (1.0 + np.max(np.abs(x))) ** 2


# -- definitions -------------------------------------------------------------------
@given(pb=problems(), name=activations)
def test_risk_and_first_variation_match_their_definitions(pb, name):
    mu, est = setup(pb, name)
    y = output(ParticleMeasure(pb.teacher), pb.x, activation=name)
    r = output(mu, pb.x, activation=name) - y
    assert isinstance(est, VelocityEstimator) and est.n == pb.x.shape[0] and est.d == mu.d
    np.testing.assert_allclose(est.y, y, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(est.residual(mu), r, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(est.risk(mu), 0.5 * np.mean(r**2), rtol=1e-12, atol=1e-14)
    phi = feature(mu, pb.x, activation=name)  # (n, m)
    np.testing.assert_allclose(
        est.first_variation(mu), r @ phi / pb.x.shape[0], rtol=1e-11, atol=1e-13
    )
    grad = np.einsum("k,kij->ij", r, feature_grad(mu, pb.x, activation=name)) / pb.x.shape[0]
    np.testing.assert_allclose(est.grad_first_variation(mu), grad, rtol=1e-11, atol=1e-13)
    np.testing.assert_array_equal(est.velocity(mu), -est.grad_first_variation(mu))
    np.testing.assert_array_equal(
        est.particle_gradient(mu), pb.masses[:, None] * est.grad_first_variation(mu)
    )
    # the hot-path helpers are what the estimator uses
    np.testing.assert_array_equal(
        residual_on_sample(mu.theta, mu.masses, est.x, est.y, est.activation), est.residual(mu)
    )
    np.testing.assert_array_equal(
        first_variation_grad_on_sample(mu.theta, est.x, est.residual(mu), est.activation),
        est.grad_first_variation(mu),
    )


@given(pb=problems(), name=activations)
def test_realisable_teacher_has_zero_risk_and_zero_velocity(pb, name):
    nu = ParticleMeasure(pb.teacher)
    est = SampleEstimator(pb.x, nu, activation=name)
    assert est.risk(nu) == 0.0
    np.testing.assert_array_equal(est.velocity(nu), 0.0)
    np.testing.assert_array_equal(est.first_variation(nu, pb.theta), 0.0)


def test_risk_with_callable_target():
    x = np.random.default_rng(0).standard_normal((50, 2))
    mu = gaussian(5, 2, rng=1)
    est = SampleEstimator(x, lambda z: np.cos(z[..., 0]))
    assert est.d == 2
    np.testing.assert_allclose(
        est.risk(mu), 0.5 * np.mean((output(mu, x) - np.cos(x[:, 0])) ** 2), rtol=1e-13
    )
    est2 = SampleEstimator(x, CallableTarget(lambda z: np.cos(z[..., 0]), d=2))
    np.testing.assert_array_equal(est2.velocity(mu), est.velocity(mu))


# -- gradients against finite differences ------------------------------------------
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@given(pb=problems(), k=st.integers(1, 4))
def test_velocity_matches_central_differences_of_first_variation(name, pb, k):
    mu, est = setup(pb, name)
    points = pb.rng.standard_normal((k, mu.d + 2))
    delta = unit_direction(pb.rng, points.shape)
    h = kink_free_step(points, pb.x, delta) if name == "relu" else 1e-5
    # J_μ is linear in φ(θ, ·) and μ is held fixed: the derivative moves only θ.
    fd = (
        est.first_variation(mu, points + h * delta) - est.first_variation(mu, points - h * delta)
    ) / (2 * h)
    v = est.velocity(mu, points)
    assert v.shape == (k, mu.d + 2)
    np.testing.assert_allclose(
        -np.sum(v * delta, axis=-1), fd, rtol=1e-6, atol=1e-8 * fd_scale(pb.theta, pb.x)
    )


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@given(pb=problems())
def test_particle_gradient_identity_against_finite_differences_of_risk(name, pb):
    # ∂F/∂θᵢ = pᵢ ∇J_μ(θᵢ): the directional derivative of F along Δ is Σᵢ pᵢ∇J(θᵢ)·Δᵢ.
    mu, est = setup(pb, name)
    delta = unit_direction(pb.rng, mu.theta.shape)
    h = kink_free_step(mu.theta, pb.x, delta, cap=1e-5) if name == "relu" else 1e-5
    fd = (
        est.risk(mu.with_theta(mu.theta + h * delta))
        - est.risk(mu.with_theta(mu.theta - h * delta))
    ) / (2 * h)
    grad = est.particle_gradient(mu)
    np.testing.assert_allclose(
        np.sum(grad * delta), fd, rtol=1e-6, atol=1e-8 * fd_scale(pb.theta, pb.x)
    )


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@given(pb=problems())
def test_particle_gradient_one_particle_at_a_time(name, pb):
    mu, est = setup(pb, name)
    i = int(pb.rng.integers(mu.m))
    delta = np.zeros_like(mu.theta)
    delta[i] = unit_direction(pb.rng, (mu.d + 2,))
    h = kink_free_step(mu.theta, pb.x, delta, cap=1e-5) if name == "relu" else 1e-5
    fd = (
        est.risk(mu.with_theta(mu.theta + h * delta))
        - est.risk(mu.with_theta(mu.theta - h * delta))
    ) / (2 * h)
    want = pb.masses[i] * est.grad_first_variation(mu)[i] @ delta[i]
    np.testing.assert_allclose(want, fd, rtol=1e-6, atol=1e-8 * fd_scale(pb.theta, pb.x))


# -- invariances ------------------------------------------------------------------
@given(pb=problems(), name=activations)
def test_risk_and_first_variation_invariant_to_permutation(pb, name):
    mu, est = setup(pb, name)
    perm = pb.rng.permutation(mu.m)
    nu = ParticleMeasure(pb.theta[perm], pb.masses[perm])
    np.testing.assert_allclose(est.risk(nu), est.risk(mu), rtol=1e-12, atol=1e-15)
    points = pb.rng.standard_normal((3, mu.d + 2))
    np.testing.assert_allclose(
        est.velocity(nu, points), est.velocity(mu, points), rtol=1e-10, atol=1e-13
    )
    np.testing.assert_allclose(est.velocity(nu), est.velocity(mu)[perm], rtol=1e-10, atol=1e-13)


@given(pb=problems(), name=activations)
def test_risk_and_velocity_invariant_to_splitting_a_particle(pb, name):
    mu, est = setup(pb, name)
    i = int(pb.rng.integers(mu.m))
    theta = np.concatenate([pb.theta, pb.theta[i : i + 1]])
    masses = np.concatenate([pb.masses, [pb.masses[i] / 2]])
    masses[i] /= 2
    nu = ParticleMeasure(theta, masses)
    np.testing.assert_allclose(est.risk(nu), est.risk(mu), rtol=1e-12, atol=1e-15)
    v_mu, v_nu = est.velocity(mu), est.velocity(nu)
    np.testing.assert_allclose(v_nu[:-1], v_mu, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(v_nu[-1], v_mu[i], rtol=1e-10, atol=1e-13)
    # each half receives half of the particle gradient
    np.testing.assert_allclose(
        est.particle_gradient(nu)[[i, -1]].sum(axis=0),
        est.particle_gradient(mu)[i],
        rtol=1e-10,
        atol=1e-13,
    )


# -- ensembles ------------------------------------------------------------------
@given(pb=problems(runs=3), name=activations)
def test_ensemble_axis_equals_stacking_single_runs(pb, name):
    ens = ParticleMeasure(pb.theta, pb.masses)
    teachers = ParticleMeasure(pb.teacher)  # one teacher per run
    xs = np.stack([pb.x, 0.5 * pb.x, pb.rng.standard_normal(pb.x.shape)])
    for x_r in (None, xs):  # a shared sample, then one sample per run
        x = pb.x if x_r is None else xs
        est = SampleEstimator(x, teachers, activation=name)
        risk, v, g = est.risk(ens), est.velocity(ens), est.particle_gradient(ens)
        assert risk.shape == (3,) and v.shape == ens.theta.shape
        for r in range(3):
            single = SampleEstimator(
                pb.x if x_r is None else xs[r], teachers.replica(r), activation=name
            )
            mu = ens.replica(r)
            np.testing.assert_allclose(risk[r], single.risk(mu), rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(v[r], single.velocity(mu), rtol=1e-11, atol=1e-14)
            np.testing.assert_allclose(g[r], single.particle_gradient(mu), rtol=1e-11, atol=1e-14)
            np.testing.assert_allclose(
                est.first_variation(ens)[r], single.first_variation(mu), rtol=1e-11, atol=1e-14
            )


def test_shared_teacher_and_points_broadcast_over_the_ensemble():
    ens = gaussian(4, 2, runs=2, rng=3)
    nu = notebook_teacher(rng=4)
    x = np.random.default_rng(5).standard_normal((30, 2))
    est = SampleEstimator(x, Teacher(nu))
    points = np.random.default_rng(6).standard_normal((5, 4))
    v = est.velocity(ens, points)
    assert v.shape == (2, 5, 4)
    for r in range(2):
        np.testing.assert_allclose(
            v[r], est.velocity(ens.replica(r), points), rtol=1e-12, atol=1e-15
        )


# -- numerical extremes: a finite result or a ValueError, never a warning or inf ---------
POINT_METHODS = ("first_variation", "grad_first_variation", "velocity")
METHODS = ("residual", "risk", *POINT_METHODS, "particle_gradient")


@given(
    pb=problems(),
    name=activations,
    scale=st.sampled_from([1e100, 1e150, 1e300, 1.7e308]),
    where=st.sampled_from(["measure", "theta"]),
    method=st.sampled_from(METHODS),
)
def test_positions_near_float_max_give_a_finite_result_or_a_value_error(
    pb, name, scale, where, method
):
    mu, est = setup(pb, name)
    big = pb.theta / max(float(np.max(np.abs(pb.theta))), 1.0) * scale  # entries <= scale
    theta = big if where == "theta" else pb.theta
    if where == "measure":
        mu = mu.with_theta(big)
    f = getattr(est, method)
    try:  # pytest turns any RuntimeWarning (overflow, invalid) into an error
        out = f(mu, theta) if method in POINT_METHODS else f(mu)
    except ValueError as exc:
        assert "overflowed float64" in str(exc) and "theta" in str(exc), str(exc)
    else:
        assert np.all(np.isfinite(out)), out


def test_large_relu_measure_is_exact_until_the_risk_overflows():
    # with target 0, f_{λμ} = λ² f_μ (ReLU is 2-homogeneous), so F(λμ) = λ⁴ F(μ)
    mu = gaussian(5, 3, rng=7)
    est = SampleEstimator(
        np.random.default_rng(8).standard_normal((40, 3)), lambda z: np.zeros(z.shape[:-1])
    )
    base = est.risk(mu)
    assert 1e-3 < base < 1e3
    np.testing.assert_allclose(est.risk(mu.with_theta(1e50 * mu.theta)), 1e200 * base, rtol=1e-12)
    np.testing.assert_allclose(
        est.velocity(mu.with_theta(1e50 * mu.theta)), 1e150 * est.velocity(mu), rtol=1e-12, atol=0
    )
    with pytest.raises(ValueError, match=r"risk F\(μ\) of the measure overflowed float64"):
        est.risk(mu.with_theta(1e100 * mu.theta))
    with pytest.raises(ValueError, match=r"residual .* of the measure overflowed float64"):
        est.velocity(mu.with_theta(1e200 * mu.theta))


@pytest.mark.parametrize("method", [*METHODS])
def test_every_public_method_has_a_complete_docstring(method):
    # SampleEstimator's methods inherit VelocityEstimator's contract (what the API docs show)
    doc = inspect.getdoc(getattr(SampleEstimator, method))
    assert doc is not None
    for part in (".. math::", "Parameters", "measure : ParticleMeasure", "Returns"):
        assert part in doc, (method, part)


# -- bad input -------------------------------------------------------------------
NU = notebook_teacher(rng=0)
X = np.random.default_rng(1).standard_normal((10, 2))
EST = SampleEstimator(X, NU)
MU = gaussian(3, 2, rng=2)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: EST.risk(MU.theta),
            TypeError,
            r"measure must be a ParticleMeasure; got array of shape \(3, 4\)",
        ),
        (
            lambda: EST.particle_gradient(MU.theta),
            TypeError,
            r"measure must be a ParticleMeasure; got array of shape \(3, 4\)",
        ),
        (
            lambda: EST.particle_gradient(None),
            TypeError,
            r"measure must be a ParticleMeasure; got None",
        ),
        (
            lambda: EST.risk(MU.with_theta(1e300 * MU.theta)),
            ValueError,
            r"overflowed float64 \(non-finite result from finite theta and x\)",
        ),
        (
            lambda: EST.velocity(gaussian(3, 3, rng=0)),
            ValueError,
            r"measure has input dimension d=3 but the estimator has d=2",
        ),
        (
            lambda: EST.velocity(MU, np.zeros((2, 5))),
            ValueError,
            r"theta must have shape \(\.\.\., k, 4\) to match the measure; got shape \(2, 5\)",
        ),
        (
            lambda: EST.first_variation(MU, np.full((2, 4), np.nan)),
            ValueError,
            r"theta must be finite",
        ),
        (lambda: EST.velocity(MU, "points"), TypeError, r"theta must be an array of real"),
        (
            lambda: EST.velocity(gaussian(3, 2, runs=2, rng=0), np.zeros((3, 2, 4))),
            ValueError,
            r"theta's leading axes \(3,\) must broadcast with the measure's batch_shape \(2,\)",
        ),
        (
            lambda: SampleEstimator(np.zeros((3, 10, 2)), NU).risk(gaussian(3, 2, runs=4, rng=0)),
            ValueError,
            r"measure's batch_shape \(4,\) must broadcast with the sample's leading axes",
        ),
        (
            lambda: SampleEstimator(np.zeros((10, 3)), NU),
            ValueError,
            r"x must have shape \(\.\.\., n, 2\) to match the target's d=2; got shape \(10, 3\)",
        ),
        (
            lambda: SampleEstimator(np.zeros((0, 2)), NU),
            ValueError,
            r"x must hold at least one input",
        ),
        (lambda: SampleEstimator(np.array([[np.nan, 0.0]]), NU), ValueError, r"x must be finite"),
        (lambda: SampleEstimator(1.0, np.sin), ValueError, r"x must have at least 1 dim"),
        (lambda: SampleEstimator("x", np.sin), TypeError, r"x must be an array of real numbers"),
        (
            lambda: SampleEstimator(X, 3),
            TypeError,
            r"target must be a Target, a ParticleMeasure or a callable; got 3",
        ),
        (
            lambda: SampleEstimator(X, NU, activation="selu"),
            ValueError,
            r"activation must be one of .*'selu'",
        ),
        (
            lambda: SampleEstimator(X, lambda z: z),
            ValueError,
            r"target\(x\) must have shape \(10,\)",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()

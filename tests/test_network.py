"""The feature φ, its gradient ∇_θφ and the network f_μ."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meanfield.activations import get_activation
from meanfield.measure import ParticleMeasure
from meanfield.network import check_theta, feature, feature_grad, output, preactivation
from tests.strategies import (
    ACTIVATION_NAMES,
    activations,
    kink_free_step,
    problems,
    smooth_activations,
    theta_and_x,
    unit_direction,
)


def loop_feature(theta, x, name):
    """φ(θᵢ, x_k) with explicit Python loops: the reference for the vectorised code."""
    sigma = get_activation(name)
    n, m = x.shape[0], theta.shape[0]
    out = np.empty((n, m))
    for k in range(n):
        for i in range(m):
            a, w, b = theta[i, 0], theta[i, 1:-1], theta[i, -1]
            out[k, i] = a * sigma(np.array(w @ x[k] + b))
    return out


# -- shapes and reference values --------------------------------------------------
# (f_μ against the notebook's own Network.output: tests/test_notebook.py, which holds
# the one transcription of the notebook.)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@given(data=theta_and_x())
def test_feature_matches_loop_reference(name, data):
    theta, x = data
    np.testing.assert_allclose(
        feature(theta, x, activation=name), loop_feature(theta, x, name), rtol=1e-13, atol=1e-13
    )


@given(data=theta_and_x(), name=activations)
def test_shapes_and_output_is_mass_weighted_sum(data, name):
    theta, x = data
    m, d, n = theta.shape[0], theta.shape[1] - 2, x.shape[0]
    p = np.linspace(1.0, 2.0, m)
    p /= p.sum()
    mu = ParticleMeasure(theta, p)
    phi = feature(mu, x, activation=name)
    assert phi.shape == (n, m)
    assert preactivation(mu, x).shape == (n, m)
    assert feature_grad(mu, x, activation=name).shape == (n, m, d + 2)
    f = output(mu, x, activation=name)
    assert f.shape == (n,)
    np.testing.assert_allclose(f, np.sum(phi * p, axis=1), rtol=1e-12, atol=1e-12)
    # uniform masses: the notebook's mean over neurons
    np.testing.assert_allclose(
        output(ParticleMeasure(theta), x, activation=name), phi.mean(axis=1), rtol=1e-12, atol=1e-12
    )
    # a single input (d,) is one row
    np.testing.assert_allclose(output(mu, x[0], activation=name), f[:1], rtol=1e-14, atol=1e-15)


def test_preactivation_and_gradient_closed_form():
    theta = np.array([[2.0, 1.0, -1.0, 0.5], [-1.0, 0.0, 2.0, -3.0]])
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    np.testing.assert_array_equal(preactivation(theta, x), [[-0.5, 1.0], [4.5, -5.0]])
    g = feature_grad(theta, x)  # ReLU: (σ(u), aσ'(u)x, aσ'(u))
    np.testing.assert_array_equal(g[0, 0], [0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(g[0, 1], [1.0, -1.0, -2.0, -1.0])
    np.testing.assert_array_equal(g[1, 0], [4.5, 6.0, -2.0, 2.0])
    np.testing.assert_array_equal(g[1, 1], [0.0, 0.0, 0.0, 0.0])


# -- homogeneity ----------------------------------------------------------------
@given(data=theta_and_x(), lam=st.floats(1e-2, 1e2))
def test_relu_feature_is_two_homogeneous(data, lam):
    theta, x = data
    lhs = feature(lam * theta, x)
    rhs = lam**2 * feature(theta, x)
    scale = lam**2 * 3.0 * (3.0 * 3.0 * x.shape[1] + 3.0)  # bound on |λ²φ|
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-14 * scale)


@given(data=theta_and_x())
def test_relu_euler_identity(data):
    theta, x = data
    # θ·∇_θφ(θ, x) = 2φ(θ, x), also at the kink (σ'(0)·0 = 0 = σ(0))
    lhs = np.einsum("nmj,mj->nm", feature_grad(theta, x), theta)
    np.testing.assert_allclose(lhs, 2 * feature(theta, x), rtol=1e-12, atol=1e-12)


@given(data=theta_and_x(), lam=st.floats(-1e2, 1e2), name=smooth_activations)
def test_smooth_features_are_one_homogeneous_in_a(data, lam, name):
    theta, x = data
    scaled = theta.copy()
    scaled[:, 0] *= lam
    np.testing.assert_allclose(
        feature(scaled, x, activation=name),
        lam * feature(theta, x, activation=name),
        rtol=1e-13,
        atol=1e-13,
    )
    # and φ is linear in a: ∂φ/∂a · a = φ
    g = feature_grad(theta, x, activation=name)
    np.testing.assert_allclose(
        g[..., 0] * theta[:, 0], feature(theta, x, activation=name), rtol=1e-13, atol=1e-13
    )


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "erf"])
def test_smooth_features_are_not_two_homogeneous(name):
    theta = np.array([[1.0, 0.7, 0.3]])
    x = np.array([[1.0]])
    ratio = feature(2 * theta, x, activation=name) / feature(theta, x, activation=name)
    assert abs(ratio[0, 0] - 4.0) > 0.5


# -- gradients against finite differences ------------------------------------------
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@given(pb=problems())
def test_feature_grad_matches_central_differences(name, pb):
    theta, x = pb.theta, pb.x
    delta = unit_direction(pb.rng, theta.shape)
    h = kink_free_step(theta, x, delta) if name == "relu" else 1e-5
    fd = (
        feature(theta + h * delta, x, activation=name)
        - feature(theta - h * delta, x, activation=name)
    ) / (2 * h)
    grad = np.einsum("nmj,mj->nm", feature_grad(theta, x, activation=name), delta)
    scale = 1.0 + np.max(np.abs(theta)) * (1.0 + np.max(np.abs(x)))
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8 * scale)


# -- invariances ------------------------------------------------------------------
@given(pb=problems(), name=activations)
def test_output_invariant_to_permuting_particles(pb, name):
    mu = ParticleMeasure(pb.theta, pb.masses)
    perm = pb.rng.permutation(mu.m)
    nu = ParticleMeasure(pb.theta[perm], pb.masses[perm])
    np.testing.assert_allclose(
        output(nu, pb.x, activation=name), output(mu, pb.x, activation=name), rtol=1e-12, atol=1e-14
    )


@given(pb=problems(), name=activations, frac=st.floats(0.0, 1.0))
def test_output_invariant_to_splitting_a_particle(pb, name, frac):
    mu = ParticleMeasure(pb.theta, pb.masses)
    i = int(pb.rng.integers(mu.m))
    theta = np.concatenate([pb.theta, pb.theta[i : i + 1]])
    masses = np.concatenate([pb.masses, [0.0]])
    masses[[i, -1]] = pb.masses[i] * np.array([frac, 1.0 - frac])  # half mass when frac=0.5
    nu = ParticleMeasure(theta, masses)
    np.testing.assert_allclose(
        output(nu, pb.x, activation=name), output(mu, pb.x, activation=name), rtol=1e-12, atol=1e-14
    )


@given(pb=problems(), name=activations)
def test_output_invariant_to_splitting_into_two_halves(pb, name):
    mu = ParticleMeasure(pb.theta, pb.masses)
    theta = np.concatenate([pb.theta, pb.theta[:1]])
    masses = np.concatenate([pb.masses, pb.masses[:1] / 2])
    masses[0] /= 2
    np.testing.assert_allclose(
        output(ParticleMeasure(theta, masses), pb.x, activation=name),
        output(mu, pb.x, activation=name),
        rtol=1e-12,
        atol=1e-14,
    )


# -- ensembles ------------------------------------------------------------------
@given(pb=problems(runs=3), name=activations)
def test_ensemble_axis_equals_stacking_single_runs(pb, name):
    ens = ParticleMeasure(pb.theta, pb.masses)
    xs = np.stack([pb.x, 2 * pb.x, -pb.x])
    f_shared = output(ens, pb.x, activation=name)
    f_own = output(ens, xs, activation=name)
    g = feature_grad(ens, pb.x, activation=name)
    n = pb.x.shape[0]
    assert f_shared.shape == (3, n) and g.shape == (3, n, ens.m, ens.d + 2)
    for r in range(3):
        mu = ens.replica(r)
        np.testing.assert_allclose(
            f_shared[r], output(mu, pb.x, activation=name), rtol=1e-13, atol=1e-15
        )
        np.testing.assert_allclose(
            f_own[r], output(mu, xs[r], activation=name), rtol=1e-13, atol=1e-15
        )
        np.testing.assert_allclose(
            g[r], feature_grad(mu, pb.x, activation=name), rtol=1e-13, atol=1e-15
        )
    # one measure against several input sets broadcasts too
    single = ens.replica(0)
    np.testing.assert_allclose(
        output(single, xs, activation=name)[1],
        output(single, xs[1], activation=name),
        rtol=1e-13,
        atol=1e-15,
    )


# -- dtype and stability -----------------------------------------------------------
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_float32_in_float32_out(name):
    theta = np.ones((3, 4), dtype=np.float32)
    x = np.ones((5, 2), dtype=np.float32)
    assert feature(theta, x, activation=name).dtype == np.float32
    assert feature_grad(theta, x, activation=name).dtype == np.float32
    assert output(ParticleMeasure(theta), x, activation=name).dtype == np.float32


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_stable_for_huge_preactivations(name):
    theta = np.array([[1.0, 1e3, 0.0, 0.0], [-2.0, 0.0, -1e3, 1e3], [0.5, 1e2, 1e2, -1e3]])
    x = np.array([[1.0, 1.0], [-1.0, 3.0], [10.0, -10.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outs = [
            feature(theta, x, activation=name),
            feature_grad(theta, x, activation=name),
            output(ParticleMeasure(theta), x, activation=name),
        ]
    for o in outs:
        assert np.all(np.isfinite(o))


# -- bad input -------------------------------------------------------------------
THETA = np.zeros((3, 4))
X = np.zeros((5, 2))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: feature(np.zeros((3, 2)), X),
            ValueError,
            r"theta must have shape \(\.\.\., m, d\+2\) with m, d >= 1; got shape \(3, 2\)",
        ),
        (lambda: feature(np.zeros((0, 4)), X), ValueError, r"theta must have shape.*\(0, 4\)"),
        (lambda: feature(np.float64(1.0), X), ValueError, r"theta must have at least 1 dim"),
        (lambda: feature_grad(np.full((3, 4), np.nan), X), ValueError, r"theta must be finite"),
        (lambda: preactivation("theta", X), TypeError, r"theta must be an array of real numbers"),
        (
            lambda: feature(THETA, np.zeros((5, 3))),
            ValueError,
            r"x must have shape \(\.\.\., n, 2\) to match theta's d=2; got shape \(5, 3\)",
        ),
        (lambda: feature(THETA, np.zeros((0, 2))), ValueError, r"x must hold at least one input"),
        (lambda: feature(THETA, np.array([[0.0, np.inf]])), ValueError, r"x must be finite"),
        (lambda: feature(THETA, 1.0), ValueError, r"x must have at least 1 dimension"),
        (lambda: feature(THETA, "x"), TypeError, r"x must be an array of real numbers"),
        (
            lambda: feature(np.zeros((2, 3, 4)), np.zeros((3, 5, 2))),
            ValueError,
            r"the leading \(ensemble\) axes of theta \(2,\) and x \(3,\) must broadcast",
        ),
        (
            lambda: feature(THETA, X, activation="gelu"),
            ValueError,
            r"activation must be one of .*got 'gelu'",
        ),
        (
            lambda: feature(THETA, X, activation=None),
            TypeError,
            r"activation must be a str or an Activation; got None",
        ),
        (
            lambda: output(THETA, X),
            TypeError,
            r"measure must be a ParticleMeasure; got array of shape \(3, 4\)",
        ),
        (
            lambda: output(ParticleMeasure(THETA), np.zeros((5, 1))),
            ValueError,
            r"x must have shape \(\.\.\., n, 2\).*got shape \(5, 1\)",
        ),
        (
            lambda: output(ParticleMeasure(THETA), X, activation="Relu6"),
            ValueError,
            r"activation must be one of",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_check_theta_accepts_measure_and_single_particle():
    mu = ParticleMeasure(THETA)
    assert check_theta(mu) is mu.theta
    assert check_theta([1.0, 2.0, 3.0]).shape == (1, 3)
    with pytest.raises(ValueError, match=r"points must have shape"):
        check_theta(np.zeros((2, 2)), name="points")

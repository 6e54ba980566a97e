"""Activations: values, derivatives, homogeneity, stability, registry errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meanfield.activations import ACTIVATIONS, Activation, get_activation
from tests.strategies import ACTIVATION_NAMES, SMOOTH_ACTIVATIONS, activations, bounded_floats

# Reference formulas written independently of the library (math module, scalar).
REFERENCE = {
    "relu": (lambda u: max(u, 0.0), lambda u: 1.0 if u >= 0 else 0.0),
    "sigmoid": (
        lambda u: 1.0 / (1.0 + math.exp(-u)),
        lambda u: math.exp(-u) / (1.0 + math.exp(-u)) ** 2,
    ),
    "tanh": (math.tanh, lambda u: 1.0 / math.cosh(u) ** 2),
    "erf": (math.erf, lambda u: 2.0 / math.sqrt(math.pi) * math.exp(-u * u)),
}


def notebook_relu(x: float) -> float:
    """The notebook's ``relu``, verbatim."""
    if x >= 0:
        return x
    return 0.0


def notebook_drelu(x: float) -> float:
    """The notebook's ``drelu``, verbatim."""
    if x >= 0:
        return 1.0
    return 0.0


# -- registry ---------------------------------------------------------------------
def test_registry_holds_the_four_activations():
    assert set(ACTIVATIONS) == set(ACTIVATION_NAMES)
    for name, act in ACTIVATIONS.items():
        assert act.name == name


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_get_activation_by_name_case_insensitive_and_passthrough(name):
    act = get_activation(name)
    assert isinstance(act, Activation)
    assert get_activation(name.upper()) is act
    assert get_activation(act) is act


def test_homogeneity_degrees():
    assert get_activation("relu").degree == 1
    assert get_activation("relu").feature_degree == 2
    for name in SMOOTH_ACTIVATIONS:
        assert get_activation(name).degree is None
        assert get_activation(name).feature_degree is None


def test_unknown_activation_name_raises_naming_parameter():
    with pytest.raises(ValueError, match=r"activation must be one of .*'softplus'"):
        get_activation("softplus")


@pytest.mark.parametrize("bad", [3, None, 1.5, ["relu"], np.tanh])
def test_wrong_activation_type_raises_naming_parameter(bad):
    with pytest.raises(TypeError, match="activation must be a str or an Activation; got"):
        get_activation(bad)


# -- values and derivatives ---------------------------------------------------------
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@given(u=bounded_floats(30.0))
def test_value_and_derivative_match_reference_formulas(name, u):
    act = get_activation(name)
    value, deriv = REFERENCE[name]
    np.testing.assert_allclose(act(np.array([u]))[0], value(u), rtol=1e-13, atol=1e-300)
    got = act.derivative(np.array([u]))[0]
    np.testing.assert_allclose(got, deriv(u), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@given(u=bounded_floats(8.0))
def test_derivative_matches_central_finite_difference(name, u):
    act = get_activation(name)
    h = 1e-6
    if name == "relu" and abs(u) <= 2 * h:  # the kink: FD is meaningless there
        u = u + 1e-3 if u >= 0 else u - 1e-3
    fd = (act(np.array([u + h])) - act(np.array([u - h])))[0] / (2 * h)
    np.testing.assert_allclose(act.derivative(np.array([u]))[0], fd, rtol=1e-7, atol=1e-9)


def test_relu_matches_notebook_including_derivative_at_zero():
    act = get_activation("relu")
    u = np.array([-2.5, -1e-300, -0.0, 0.0, 1e-300, 0.5, 7.0])
    np.testing.assert_array_equal(act(u), [notebook_relu(v) for v in u])
    np.testing.assert_array_equal(act.derivative(u), [notebook_drelu(v) for v in u])
    assert act.derivative(np.array([0.0]))[0] == 1.0  # σ'(0) = 1, the notebook's convention


@given(u=bounded_floats(1e3), lam=st.floats(1e-3, 1e3))
def test_relu_is_one_homogeneous(u, lam):
    act = get_activation("relu")
    np.testing.assert_allclose(act(np.array([lam * u])), lam * act(np.array([u])), rtol=1e-15)


@pytest.mark.parametrize("name", SMOOTH_ACTIVATIONS)
def test_smooth_activations_are_not_homogeneous(name):
    # A test that would fail if a smooth σ were declared homogeneous by mistake:
    # σ(2u) differs from 2^k σ(u) for every k at some u.
    act = get_activation(name)
    u = np.array([0.5, 5.0])
    ratios = act(2 * u) / act(u)
    assert np.ptp(ratios) > 0.1


# -- stability -------------------------------------------------------------------
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_stable_at_large_preactivations(name):
    act = get_activation(name)
    u = np.array([-1e300, -1e5, -1e3, -50.0, 50.0, 1e3, 1e5, 1e300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = act(u)
        dv = act.derivative(u)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(dv))
    assert np.all(dv >= 0)
    big = np.abs(u) >= 1e3
    if name == "relu":
        np.testing.assert_array_equal(v, np.maximum(u, 0))
        np.testing.assert_array_equal(dv, (u >= 0).astype(float))
    else:
        lower = 0.0 if name == "sigmoid" else -1.0
        np.testing.assert_array_equal(v[big], np.where(u[big] > 0, 1.0, lower))
        np.testing.assert_array_equal(dv[big], 0.0)


@pytest.mark.parametrize(
    ("name", "exact"),
    [
        # closed forms in the tails, written without cancellation
        ("sigmoid", lambda u: np.exp(-abs(u)) / (1 + np.exp(-abs(u))) ** 2),
        ("tanh", lambda u: 4 * np.exp(-2 * abs(u)) / (1 + np.exp(-2 * abs(u))) ** 2),
        ("erf", lambda u: 2 / np.sqrt(np.pi) * np.exp(-u * u)),
    ],
)
@pytest.mark.parametrize("u", [-300.0, -40.0, -20.0, 20.0, 40.0, 300.0])
def test_derivative_keeps_relative_accuracy_in_the_tails(name, exact, u):
    got = get_activation(name).derivative(np.array([u]))[0]
    want = exact(u)
    assert want > 0 or name == "erf"
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


# -- call conventions ---------------------------------------------------------------
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_call_keeps_floating_dtype_and_promotes_integers(name):
    act = get_activation(name)
    assert act(np.array([0.5, -1.0], dtype=np.float32)).dtype == np.float32
    assert act(np.array([0.5, -1.0])).dtype == np.float64
    out = act([1, -2, 0])
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, act(np.array([1.0, -2.0, 0.0])))


@given(name=activations, u=bounded_floats(5.0))
def test_value_is_elementwise(name, u):
    act = get_activation(name)
    grid = np.array([[u, -u], [2 * u, 0.5]])
    np.testing.assert_array_equal(act(grid)[0, 1], act(np.array([-u]))[0])
    np.testing.assert_array_equal(act.derivative(grid)[1, 0], act.derivative(np.array([2 * u]))[0])


@given(
    st.lists(bounded_floats(5.0), min_size=3, max_size=3),
    st.floats(0.1, 3.0),
    st.integers(0, 2**32 - 1),
)
def test_opposite_relu_pairs_add_a_linear_function(row, a, seed):
    """relu(u·x̃) − relu(−u·x̃) = u·x̃: a pair (a, u), (−a, −u) adds a·u·x̃ to the network.

    This is why the ReLU minimisers of F form a continuum (docs/optimality.rst).
    """
    from meanfield.measure import ParticleMeasure
    from meanfield.network import output

    u = np.array(row)
    x = np.random.default_rng(seed).standard_normal((50, 2))
    pair = ParticleMeasure(np.array([[a, *u], [-a, *(-u)]]), np.array([0.5, 0.5]))
    linear = 0.5 * a * (x @ u[:2] + u[2])
    np.testing.assert_allclose(output(pair, x), linear, rtol=1e-12, atol=1e-12)

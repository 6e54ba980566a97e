"""Input laws, targets and the notebook's frame schedule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meanfield.activations import get_activation
from meanfield.data import (
    CallableTarget,
    Target,
    Teacher,
    as_target,
    evaluate_target,
    notebook_frame_sizes,
    sample_inputs,
)
from meanfield.measure import ParticleMeasure, gaussian, notebook_teacher
from meanfield.network import output
from tests.strategies import activations, dims, seeds


# -- input laws --------------------------------------------------------------------
@given(seed=seeds, n=st.integers(1, 50), d=dims)
def test_sample_inputs_shapes_and_reproducibility(seed, n, d):
    x = sample_inputs(n, d, rng=seed)
    assert x.shape == (n, d) and x.dtype == np.float64
    np.testing.assert_array_equal(x, sample_inputs(n, d, rng=seed))
    np.testing.assert_array_equal(x, np.random.default_rng(seed).standard_normal((n, d)))
    s = sample_inputs(n, d, law="sphere", radius=2.5, rng=seed)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 2.5, rtol=1e-14)


def test_gaussian_inputs_moments():
    n, d = 40000, 3
    x = sample_inputs(n, d, rng=7)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=5 / np.sqrt(n))
    np.testing.assert_allclose(np.cov(x.T), np.eye(d), atol=5 * np.sqrt(2) / np.sqrt(n))


def test_sphere_inputs_moments():
    n, d = 40000, 3
    x = sample_inputs(n, d, law="sphere", rng=8)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=5 / np.sqrt(n))
    np.testing.assert_allclose(x.T @ x / n, np.eye(d) / d, atol=5 / np.sqrt(n))


# -- targets ---------------------------------------------------------------------
@given(seed=seeds, name=activations)
def test_teacher_is_the_teacher_network(seed, name):
    nu = notebook_teacher(3, 2, rng=seed)
    x = sample_inputs(9, 2, rng=seed + 1)
    t = Teacher(nu, name)
    assert t.d == 2 and t.activation is get_activation(name)
    np.testing.assert_array_equal(t(x), output(nu, x, activation=name))
    np.testing.assert_array_equal(as_target(nu, activation=name)(x), t(x))


def test_teacher_with_ensemble_axis():
    nus = gaussian(4, 2, runs=3, rng=0)
    x = sample_inputs(6, 2, rng=1)
    y = Teacher(nus)(x)
    assert y.shape == (3, 6)
    for r in range(3):
        np.testing.assert_array_equal(y[r], output(nus.replica(r), x))


def test_callable_target_and_as_target():
    def fn(x):
        return np.sin(x[..., 0]) + x[..., -1] ** 2

    x = sample_inputs(7, 3, rng=2)
    t = as_target(fn)
    assert isinstance(t, CallableTarget) and t.d is None
    np.testing.assert_array_equal(t(x), fn(x))
    assert as_target(t) is t
    t3 = CallableTarget(fn, d=3)
    np.testing.assert_array_equal(evaluate_target(t3, x, 3), fn(x))
    np.testing.assert_array_equal(t3(x[0]), fn(x[:1]))  # a single input (d,)
    # batches of inputs pass through
    xb = np.stack([x, -x])
    np.testing.assert_array_equal(t(xb), fn(xb))


def test_evaluate_target_checks_dimensions():
    nu = notebook_teacher(rng=0)
    x = sample_inputs(4, 2, rng=3)
    np.testing.assert_array_equal(evaluate_target(Teacher(nu), x, 2), output(nu, x))
    with pytest.raises(ValueError, match=r"target has input dimension 2 but the measure has d=3"):
        evaluate_target(Teacher(nu), np.zeros((4, 3)), 3)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., n, 2\).*\(4, 3\)"):
        evaluate_target(Teacher(nu), np.zeros((4, 3)), 2)
    with pytest.raises(TypeError, match=r"target must be a Target; got"):
        evaluate_target(lambda x: x[..., 0], x, 2)


def test_base_target_is_abstract():
    with pytest.raises(NotImplementedError):
        Target()(np.zeros((1, 2)))


# -- notebook schedule ---------------------------------------------------------------
def test_notebook_frame_sizes_transcription():
    # update_plot(i): X, Y = gen_net.gen_sample(100*int(np.log(10.+10.*i)))
    want = [100 * int(np.log(10.0 + 10.0 * i)) for i in range(500)]
    got = notebook_frame_sizes(500)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    assert got[0] == 200 and got[-1] == 800
    rep = notebook_frame_sizes(3, repeat_first=True)
    np.testing.assert_array_equal(rep, [want[0], want[0], want[1], want[2]])
    np.testing.assert_array_equal(notebook_frame_sizes(), want)


# -- bad input -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: sample_inputs(0, 2), ValueError, r"n must be >= 1; got 0"),
        (lambda: sample_inputs(3, 0), ValueError, r"d must be >= 1; got 0"),
        (lambda: sample_inputs(3.0, 2), TypeError, r"n must be an integer; got 3.0"),
        (
            lambda: sample_inputs(3, 2, law="uniform"),
            ValueError,
            r"law must be 'gaussian' or 'sphere'; got 'uniform'",
        ),
        (lambda: sample_inputs(3, 2, law=None), ValueError, r"law must be .*got None"),
        (
            lambda: sample_inputs(3, 2, law="sphere", radius=0.0),
            ValueError,
            r"radius must be finite and > 0; got 0.0",
        ),
        (
            lambda: sample_inputs(3, 2, law="sphere", radius=-2),
            ValueError,
            r"radius must be finite and > 0; got -2",
        ),
        (lambda: sample_inputs(3, 2, rng="abc"), TypeError, r"rng must be None, an int seed"),
        (
            lambda: Teacher(np.zeros((3, 4))),
            TypeError,
            r"measure must be a ParticleMeasure; got array of shape \(3, 4\)",
        ),
        (
            lambda: Teacher(notebook_teacher(rng=0), "swish"),
            ValueError,
            r"activation must be one of .*'swish'",
        ),
        (
            lambda: as_target(3.0),
            TypeError,
            r"target must be a Target, a ParticleMeasure or a callable; got 3.0",
        ),
        (lambda: CallableTarget(3.0), TypeError, r"function must be callable; got 3.0"),
        (lambda: CallableTarget(np.sin, d=0), ValueError, r"d must be >= 1; got 0"),
        (
            lambda: CallableTarget(lambda x: x)(np.zeros((4, 2))),
            ValueError,
            r"target\(x\) must have shape \(4,\) for x of shape \(4, 2\); got shape \(4, 2\)",
        ),
        (
            lambda: CallableTarget(lambda x: np.full(x.shape[:-1], np.nan))(np.zeros((4, 2))),
            ValueError,
            r"target\(x\) must be finite; got 4 non-finite",
        ),
        (
            lambda: CallableTarget(lambda x: x[..., 0], d=2)(np.zeros((4, 3))),
            ValueError,
            r"x must have shape \(\.\.\., n, 2\) to match the target's d=2; got shape \(4, 3\)",
        ),
        (
            lambda: CallableTarget(lambda x: x[..., 0])(np.zeros(3)),
            ValueError,
            r"x must have at least 2 dimension",
        ),
        (
            lambda: Teacher(ParticleMeasure(np.zeros((2, 4))))(np.zeros((5, 3))),
            ValueError,
            r"x must have shape \(\.\.\., n, 2\)",
        ),
        (lambda: notebook_frame_sizes(0), ValueError, r"n_frames must be >= 1; got 0"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()

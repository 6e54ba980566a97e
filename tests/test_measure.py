"""ParticleMeasure, the initialisation laws, ensembles and the notebook's draws."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meanfield.measure import (
    ParticleMeasure,
    balanced,
    balanced_from_normals,
    gaussian,
    gaussian_from_normals,
    notebook_sphere,
    notebook_sphere_from_normals,
    notebook_teacher,
    spawn_rngs,
    sphere,
    sphere_from_normals,
)
from tests.strategies import dims, float_arrays, mass_vectors, seeds, widths

LAWS = {
    "gaussian": lambda m, d, **kw: gaussian(m, d, std=0.7, **kw),
    "sphere": lambda m, d, **kw: sphere(m, d, radius=2.0, **kw),
    "notebook_sphere": lambda m, d, **kw: notebook_sphere(m, d, radius=0.05, **kw),
    "balanced": lambda m, d, **kw: balanced(m, d, scale=1.5, **kw),
}


# -- the notebook's draws ------------------------------------------------------------
# (notebook_sphere_from_normals against the notebook's own Neuron/Network construction:
# tests/test_notebook.py, which holds the one transcription of the notebook.)
def test_legacy_randomstate_block_draws_equal_sequential_draws():
    # The notebook draws a=normal(), w=normal(size=d), b=normal() per neuron; legacy
    # RandomState's Gaussian stream (polar method with a cached second value) is the
    # same whether drawn in one block or value by value, so a block of shape
    # (m, d+2) replays the notebook's per-neuron draws.
    for seed in (18, 0, 12345):
        for d in (1, 2, 3):
            block = np.random.RandomState(seed).normal(size=(7, d + 2))
            rs = np.random.RandomState(seed)
            seq = np.array([[rs.normal(), *rs.normal(size=d), rs.normal()] for _ in range(7)])
            np.testing.assert_array_equal(block, seq)


def test_notebook_teacher_law():
    nu = notebook_teacher(rng=3)
    assert nu.theta.shape == (4, 4) and nu.m == 4 and nu.d == 2
    np.testing.assert_allclose(np.linalg.norm(nu.theta[:, 1:], axis=1), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(nu.masses, np.full(4, 0.25))
    # Same law as notebook_sphere with R = 1, same stream.
    np.testing.assert_array_equal(nu.theta, notebook_sphere(4, 2, radius=1.0, rng=3).theta)
    nu5 = notebook_teacher(5, 3, rng=3)
    assert nu5.theta.shape == (5, 5)


# -- construction and views ------------------------------------------------------
@given(data=st.data(), d=dims, m=widths)
def test_views_and_effective_neurons(data, d, m):
    theta = data.draw(float_arrays((m, d + 2)))
    mu = ParticleMeasure(theta)
    assert (mu.m, mu.d, mu.batch_shape, mu.dtype) == (m, d, (), np.float64)
    np.testing.assert_array_equal(mu.a, theta[:, 0])
    np.testing.assert_array_equal(mu.w, theta[:, 1 : d + 1])
    np.testing.assert_array_equal(mu.b, theta[:, d + 1])
    np.testing.assert_array_equal(mu.masses, np.full(m, 1.0 / m))
    c = mu.effective_neurons()
    assert c.shape == (m, d + 1)
    np.testing.assert_array_equal(c[:, :d], theta[:, :1] * theta[:, 1 : d + 1])
    np.testing.assert_array_equal(c[:, d], theta[:, 0] * theta[:, -1])


def test_measure_is_immutable_and_copies_its_input():
    theta = np.arange(12.0).reshape(3, 4)
    masses = np.array([0.2, 0.3, 0.5])
    mu = ParticleMeasure(theta, masses)
    theta[0, 0] = 99.0
    masses[0] = 0.9
    assert mu.theta[0, 0] == 0.0 and mu.masses[0] == 0.2
    with pytest.raises(ValueError, match="read-only"):
        mu.theta[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        mu.masses[0] = 1.0


def test_integer_positions_promoted_and_float32_kept():
    assert ParticleMeasure(np.ones((2, 3), dtype=int)).dtype == np.float64
    mu32 = ParticleMeasure(np.ones((3, 4), dtype=np.float32), [1 / 3, 1 / 3, 1 / 3])
    assert mu32.dtype == np.float32 and mu32.masses.dtype == np.float32


@given(data=st.data(), m=widths, runs=st.integers(1, 3))
def test_masses_broadcast_over_the_ensemble(data, m, runs):
    p = data.draw(mass_vectors(m))
    mu = ParticleMeasure(np.zeros((runs, m, 3)), p)
    assert mu.masses.shape == (runs, m)
    for r in range(runs):
        np.testing.assert_array_equal(mu.masses[r], p)


def test_with_theta_replica_and_stack():
    rng = np.random.default_rng(0)
    ms = [ParticleMeasure(rng.standard_normal((3, 4)), [0.5, 0.25, 0.25]) for _ in range(3)]
    ens = ParticleMeasure.stack(ms)
    assert ens.batch_shape == (3,) and ens.theta.shape == (3, 3, 4)
    for r, mu in enumerate(ms):
        np.testing.assert_array_equal(ens.replica(r).theta, mu.theta)
        np.testing.assert_array_equal(ens.replica(r).masses, mu.masses)
    moved = ms[0].with_theta(2 * ms[0].theta)
    np.testing.assert_array_equal(moved.theta, 2 * ms[0].theta)
    np.testing.assert_array_equal(moved.masses, ms[0].masses)
    assert "m=3" in repr(ens) and "batch_shape=(3,)" in repr(ens)


# -- initialisation laws -----------------------------------------------------------
@pytest.mark.parametrize("law", sorted(LAWS))
def test_laws_have_shapes_and_are_reproducible(law):
    make = LAWS[law]
    mu = make(5, 3, rng=11)
    assert mu.theta.shape == (5, 5) and mu.batch_shape == ()
    np.testing.assert_array_equal(mu.masses, np.full(5, 0.2))
    np.testing.assert_array_equal(mu.theta, make(5, 3, rng=11).theta)
    assert not np.array_equal(mu.theta, make(5, 3, rng=12).theta)
    gen_a, gen_b = np.random.default_rng(4), np.random.default_rng(4)
    np.testing.assert_array_equal(make(5, 3, rng=gen_a).theta, make(5, 3, rng=gen_b).theta)
    ss = np.random.SeedSequence(8)
    np.testing.assert_array_equal(
        make(5, 3, rng=ss).theta, make(5, 3, rng=np.random.SeedSequence(8)).theta
    )


def test_sphere_law_radius_and_isotropy():
    mu = sphere(20000, 2, radius=2.0, rng=1)
    np.testing.assert_allclose(np.linalg.norm(mu.theta, axis=1), 2.0, rtol=1e-14)
    # uniform on the sphere: mean 0, covariance r²/(d+2) I; tolerance ∝ 1/√m
    tol = 5 * 2.0 / np.sqrt(20000)
    np.testing.assert_allclose(mu.theta.mean(axis=0), 0.0, atol=tol)
    np.testing.assert_allclose(np.cov(mu.theta.T), np.eye(4), atol=5 * 4 / np.sqrt(20000))


def test_gaussian_law_moments():
    mu = gaussian(20000, 3, std=0.7, rng=2)
    n = mu.theta.size
    np.testing.assert_allclose(mu.theta.mean(), 0.0, atol=5 * 0.7 / np.sqrt(n))
    np.testing.assert_allclose(mu.theta.std(), 0.7, rtol=5 / np.sqrt(n))
    np.testing.assert_allclose(np.corrcoef(mu.theta.T), np.eye(5), atol=5 / np.sqrt(20000))


def test_notebook_sphere_law():
    mu = notebook_sphere(20000, 2, radius=0.05, rng=3)
    np.testing.assert_allclose(np.linalg.norm(mu.theta[:, 1:], axis=1), 0.05, rtol=1e-14)
    a = mu.a
    np.testing.assert_allclose(a.mean(), 0.0, atol=5 / np.sqrt(a.size))
    np.testing.assert_allclose(a.std(), 1.0, rtol=5 / np.sqrt(a.size))


def test_balanced_law():
    mu = balanced(4000, 3, scale=1.5, rng=4)
    np.testing.assert_allclose(np.abs(mu.a), 1.5, rtol=1e-15)
    np.testing.assert_allclose(mu.a**2 - np.sum(mu.theta[:, 1:] ** 2, axis=1), 0.0, atol=1e-12)
    # both signs of a, about evenly
    frac_pos = np.mean(mu.a > 0)
    assert abs(frac_pos - 0.5) < 5 * 0.5 / np.sqrt(4000)


@pytest.mark.parametrize(
    ("law", "from_normals", "name", "value"),
    [
        (gaussian, gaussian_from_normals, "std", 0.7),
        (sphere, sphere_from_normals, "radius", 2.0),
        (notebook_sphere, notebook_sphere_from_normals, "radius", 0.05),
        (balanced, balanced_from_normals, "scale", 1.5),
    ],
)
@given(seed=seeds, m=widths, d=dims)
def test_each_law_maps_the_generators_standard_normals(law, from_normals, name, value, seed, m, d):
    # The contract of the *_from_normals maps (paper_figures/_studies.py draws its
    # students as map(standard normals)): a law is its map of one (m, d+2) block.
    z = np.random.default_rng(seed).standard_normal((m, d + 2))
    got = law(m, d, rng=seed, **{name: value}).theta
    np.testing.assert_array_equal(got, from_normals(z, value))


# -- ensembles -----------------------------------------------------------------
@pytest.mark.parametrize("law", sorted(LAWS))
@given(seed=seeds, runs=st.integers(1, 4), m=widths, d=dims)
def test_runs_equal_single_runs_on_spawned_streams(law, seed, runs, m, d):
    make = LAWS[law]
    ens = make(m, d, runs=runs, rng=seed)
    assert ens.theta.shape == (runs, m, d + 2) and ens.batch_shape == (runs,)
    gens = spawn_rngs(seed, runs)
    for r in range(runs):
        np.testing.assert_array_equal(ens.replica(r).theta, make(m, d, rng=gens[r]).theta)
    if runs > 1:
        assert not np.array_equal(ens.theta[0], ens.theta[1])


def test_spawn_rngs_streams():
    a = [g.standard_normal(3) for g in spawn_rngs(5, 3)]
    b = [g.standard_normal(3) for g in spawn_rngs(5, 3)]
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)  # an int seed replays
    assert not np.array_equal(a[0], a[1])
    # the first streams do not depend on how many are spawned
    np.testing.assert_array_equal(spawn_rngs(5, 5)[1].standard_normal(3), a[1])
    ss = [g.standard_normal(2) for g in spawn_rngs(np.random.SeedSequence(5), 2)]
    np.testing.assert_array_equal(ss[0], a[0][:2])  # SeedSequence(5) is seed 5
    assert all(isinstance(g, np.random.Generator) for g in spawn_rngs(None, 2))


# -- bad input -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("theta", "error", "match"),
    [
        (np.zeros(4), ValueError, r"theta must have at least 2 dimension\(s\); got shape \(4,\)"),
        (np.zeros((3, 2)), ValueError, r"theta must have shape \(\.\.\., m, d\+2\).*\(3, 2\)"),
        (np.zeros((0, 4)), ValueError, r"theta must hold at least one particle.*\(0, 4\)"),
        (np.zeros((2, 0, 4)), ValueError, r"theta must hold at least one particle"),
        (np.array([[0.0, np.nan, 1.0]]), ValueError, r"theta must be finite; got 1 non-finite"),
        (np.array([[np.inf, 0.0, -np.inf]]), ValueError, r"theta must be finite; got 2"),
        ("abc", TypeError, r"theta must be an array of real numbers; got 'abc'"),
        (None, TypeError, r"theta must be an array of real numbers; got None"),
        (np.zeros((2, 3), dtype=complex), TypeError, r"theta must be an array of real numbers"),
        ([[1.0, 2.0, 3.0], [1.0, 2.0]], ValueError, r"theta must be a rectangular array"),
    ],
)
def test_bad_theta(theta, error, match):
    with pytest.raises(error, match=match):
        ParticleMeasure(theta)


@pytest.mark.parametrize(
    ("masses", "error", "match"),
    [
        ([0.5, 0.5], ValueError, r"masses must have shape \(3,\).*got shape \(2,\)"),
        (np.full((2, 3), 1 / 3), ValueError, r"masses must have shape \(3,\).*got shape \(2, 3\)"),
        ([1.5, -0.25, -0.25], ValueError, r"masses must be nonnegative; got minimum -0.25"),
        ([0.5, np.nan, 0.5], ValueError, r"masses must be finite; got 1 non-finite"),
        ([0.5, np.inf, 0.5], ValueError, r"masses must be finite"),
        ([0.2, 0.2, 0.2], ValueError, r"masses must sum to 1 along the last axis; got sums"),
        ([1.0, 1.0, 1.0], ValueError, r"masses must sum to 1.*\[3, 3\]"),
        ("uniform", TypeError, r"masses must be an array of real numbers; got 'uniform'"),
        (0.5, ValueError, r"masses must have at least 1 dimension"),
    ],
)
def test_bad_masses(masses, error, match):
    with pytest.raises(error, match=match):
        ParticleMeasure(np.zeros((3, 4)), masses)


def test_bad_masses_on_an_ensemble():
    theta = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"masses must have shape \(2, 3\).*got shape \(4, 3\)"):
        ParticleMeasure(theta, np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"masses must sum to 1"):
        ParticleMeasure(theta, [[1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.5]])


def test_masses_sum_tolerance_follows_their_dtype():
    for m in (3, 11, 12):
        p32 = np.full(m, 1 / m, dtype=np.float32)
        # float32 rounding puts the sum further from 1 than a float64 tolerance allows
        assert abs(float(p32.sum(dtype=np.float64)) - 1.0) > 1e-9 * m
        mu = ParticleMeasure(np.zeros((m, 3), dtype=np.float32), p32)  # accepted
        assert mu.masses.dtype == np.float32
        ParticleMeasure(np.zeros((m, 3), dtype=np.float32), np.full(m, 1 / m))  # float64 masses
    with pytest.raises(ValueError, match="masses must sum to 1"):
        ParticleMeasure(np.zeros((7, 3)), np.full(7, 1 / 7) * (1 + 1e-6))
    with pytest.raises(ValueError, match="masses must sum to 1"):
        ParticleMeasure(np.zeros((7, 3), dtype=np.float32), np.full(7, 1 / 7) * (1 + 1e-4))


def test_bad_measure_methods():
    mu = ParticleMeasure(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"replica needs an ensemble"):
        mu.replica(0)
    with pytest.raises(ValueError, match=r"theta must hold the measure's m=3 particles.*\(2, 4\)"):
        mu.with_theta(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"theta must be finite"):
        mu.with_theta(np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match=r"measures must be a non-empty sequence"):
        ParticleMeasure.stack([])
    with pytest.raises(TypeError, match=r"measures\[1\] must be a ParticleMeasure"):
        ParticleMeasure.stack([mu, np.zeros((3, 4))])
    with pytest.raises(ValueError, match=r"measures must share one shape"):
        ParticleMeasure.stack([mu, ParticleMeasure(np.zeros((2, 4)))])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: gaussian(0, 2), ValueError, r"m must be >= 1; got 0"),
        (lambda: gaussian(3, 0), ValueError, r"d must be >= 1; got 0"),
        (lambda: gaussian(2.5, 2), TypeError, r"m must be an integer; got 2.5"),
        (lambda: gaussian(True, 2), TypeError, r"m must be an integer; got True"),
        (lambda: gaussian(3, 2, std=0.0), ValueError, r"std must be finite and > 0; got 0.0"),
        (lambda: sphere(3, 2, radius=0.0), ValueError, r"radius must be finite and > 0; got 0.0"),
        (lambda: sphere(3, 2, radius=-1), ValueError, r"radius must be finite and > 0; got -1"),
        (lambda: sphere(3, 2, radius=np.nan), ValueError, r"radius must be finite and > 0"),
        (lambda: sphere(3, 2, radius=np.inf), ValueError, r"radius must be finite and > 0"),
        (lambda: sphere(3, 2, radius="1"), TypeError, r"radius must be a real number; got '1'"),
        (lambda: notebook_sphere(3, 2, radius=-0.05), ValueError, r"radius must be finite and > 0"),
        (lambda: balanced(3, 2, scale=0), ValueError, r"scale must be finite and > 0; got 0"),
        (lambda: gaussian(3, 2, runs=0), ValueError, r"runs must be >= 1; got 0"),
        (lambda: gaussian(3, 2, runs=2.0), TypeError, r"runs must be an integer"),
        (lambda: notebook_teacher(0), ValueError, r"m0 must be >= 1; got 0"),
        (lambda: gaussian(3, 2, rng="seed"), TypeError, r"rng must be None, an int seed.*'seed'"),
        (lambda: gaussian(3, 2, rng=1.5), TypeError, r"rng must be None, an int seed.*1.5"),
        (lambda: gaussian(3, 2, rng=-1), ValueError, r"rng must be a nonnegative seed; got -1"),
        (lambda: sphere(3, 2, runs=2, rng="x"), TypeError, r"rng must be None, an int seed"),
        (lambda: spawn_rngs(0, 0), ValueError, r"n must be >= 1; got 0"),
    ],
)
def test_bad_law_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()

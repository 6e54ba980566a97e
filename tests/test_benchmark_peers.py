"""The benchmark's peers compute the same SGD run (benchmarks/peers.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `benchmarks`
from benchmarks import ours, peers
from meanfield.activations import get_activation
from meanfield.measure import ParticleMeasure
from meanfield.network import output
from meanfield.velocity import first_variation_grad_on_sample

TOL = 1e-10


def small_problem(m=7, d=3, batch=5, steps=25, runs=None, seed=0):
    # τ = η m with η = 0.5 moves the particles by O(1) over the run: a real test
    return peers.teacher_problem(m, d, batch, steps, tau=0.5 * m, radius=0.5, runs=runs, rng=seed)


@settings(max_examples=15, deadline=None)
@given(
    m=st.integers(1, 8),
    d=st.integers(1, 4),
    batch=st.integers(1, 6),
    steps=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_naive_equals_numpy(m, d, batch, steps, seed):
    p = small_problem(m, d, batch, steps, seed=seed)
    np.testing.assert_allclose(
        peers.naive_sgd(p.theta0, p.x, p.y, p.tau),
        peers.numpy_sgd(p.theta0, p.x, p.y, p.tau),
        rtol=0,
        atol=TOL,
    )


def test_notebook_run_prefix_naive_equals_numpy_and_moves():
    p = peers.notebook_problem(500, rng=3).prefix(150)
    naive = peers.naive_sgd(p.theta0, p.x, p.y, p.tau)
    fast = peers.numpy_sgd(p.theta0, p.x, p.y, p.tau)
    np.testing.assert_allclose(naive, fast, rtol=0, atol=TOL)
    assert np.max(np.abs(fast - p.theta0)) > 1e-2  # the run did something


def test_numpy_step_is_the_particle_gradient_step():
    # independent reference: θᵢ ← θᵢ − τ pᵢ ∇Ĵ_μ(θᵢ) with pᵢ = 1/m (DESIGN: particle gradient)
    p = small_problem(m=9, d=4, batch=11, steps=1, seed=5)
    theta = p.theta0.copy()
    peers.numpy_step(theta, p.x[0], p.y[0], p.tau)
    relu = get_activation("relu")
    mu = ParticleMeasure(p.theta0)
    r = output(mu, p.x[0]) - p.y[0]
    grad = first_variation_grad_on_sample(p.theta0, p.x[0], r, relu)
    np.testing.assert_allclose(theta, p.theta0 - p.tau / p.m * grad, rtol=0, atol=1e-12)


def test_numpy_ensemble_equals_each_replica_alone():
    p = small_problem(m=6, d=2, batch=4, steps=20, runs=3, seed=7)
    together = peers.numpy_sgd(p.theta0, p.x, p.y, p.tau)
    for r in range(3):
        alone = peers.numpy_sgd(p.theta0[r], p.x[:, r], p.y[:, r], p.tau)
        np.testing.assert_allclose(together[r], alone, rtol=0, atol=1e-13)
    assert not np.allclose(together[0], together[1])


def test_torch_equals_numpy():
    pytest.importorskip("torch")
    p = small_problem(m=10, d=3, batch=8, steps=40, seed=11)
    np.testing.assert_allclose(
        peers.torch_sgd(p.theta0, p.x, p.y, p.tau),
        peers.numpy_sgd(p.theta0, p.x, p.y, p.tau),
        rtol=0,
        atol=TOL,
    )


@pytest.mark.parametrize("backend", [None, "numpy", "numba"])
def test_toolkit_sgd_equals_numpy(backend):
    if backend == "numba":
        pytest.importorskip("numba")
    impl = ours.toolkit_sgd(backend)
    if impl is None:
        pytest.skip(f"meanfield.sgd is not available or has no backend {backend!r}")
    p = small_problem(m=10, d=3, batch=8, steps=40, seed=13)
    expected = peers.numpy_sgd(p.theta0, p.x, p.y, p.tau)
    np.testing.assert_allclose(impl.run(p), expected, rtol=0, atol=TOL)
    q = small_problem(m=5, d=2, batch=4, steps=15, runs=4, seed=17)
    np.testing.assert_allclose(
        impl.run_ensemble(q), peers.numpy_sgd(q.theta0, q.x, q.y, q.tau), rtol=0, atol=TOL
    )
    # the notebook's own run, 300 steps
    n = peers.notebook_problem(500, rng=19).prefix(300)
    expected = peers.numpy_sgd(n.theta0, n.x, n.y, n.tau)
    np.testing.assert_allclose(impl.run(n), expected, rtol=0, atol=TOL)


def test_notebook_problem_matches_the_notebook_schedule():
    p = peers.notebook_problem(500, rng=0)
    assert p.x.shape == (17_660, 20, 2)
    assert p.y.shape == (17_660, 20)
    assert p.theta0.shape == (20, 4)
    assert p.tau == 0.5
    # the notebook's student law: (w, b) on the sphere of radius 0.05
    np.testing.assert_allclose(np.linalg.norm(p.theta0[:, 1:], axis=1), 0.05, rtol=1e-12)
    teacher = ParticleMeasure(p.teacher)
    np.testing.assert_allclose(p.y[:50], output(teacher, p.x[:50]), rtol=0, atol=1e-15)


def test_ensemble_problem_targets_in_chunks_match_direct_evaluation():
    p = peers.teacher_problem(4, 3, 5, 7, tau=1.0, runs=2, rng=1)
    assert p.x.shape == (7, 2, 5, 3)
    np.testing.assert_allclose(p.y, output(ParticleMeasure(p.teacher), p.x), rtol=0, atol=1e-15)


def test_sgd_flops_dominant_terms():
    # 4d + 9 flops per (sample × neuron) plus O(m d + B)
    assert peers.sgd_flops(20, 2, 20) == 20 * 20 * 17 + 3 * 20 * 4 + 40
    big = peers.sgd_flops(10**5, 100, 100)
    assert 1 < big / (4 * 100 * 100 * 10**5) < 1.04


def test_matmul_floor_does_the_two_products_of_each_step():
    p = small_problem(m=6, d=4, batch=5, steps=3, seed=2)
    gw = peers.matmul_floor(p.theta0, p.x)()
    u = p.x[-1] @ p.theta0[:, 1:-1].T
    np.testing.assert_allclose(gw, u.T @ p.x[-1], rtol=1e-13, atol=0)


@pytest.mark.slow
def test_benchmark_quick_run_writes_json(tmp_path):
    from benchmarks.run import main

    out = tmp_path / "results.json"
    assert main(["--quick", "--cases", "1,3,6", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["machine"]["peak_flops"] > 0
    case1 = data["cases"][0]
    assert case1["case"] == 1
    impls = [r["impl"] for r in case1["rows"]]
    assert any(i.startswith("naive peer") for i in impls)
    for row in case1["rows"]:
        if row["wall_s"] is not None:
            assert row["max_abs_diff_vs_numpy"] < TOL
    assert [c["params"]["replicas"] for c in data["cases"][1:4]] == [1, 16, 64]
    memory = data["cases"][4]
    assert memory["case"] == 6 and all(r["peak_bytes"] > 0 for r in memory["rows"])
    assert memory["targets"][0]["met"], memory  # a long run's memory stays flat

"""Fast tests of the helpers and study cells of paper_figures/ (figures 2, 3, 7), tiny sizes."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.collections import LineCollection

from meanfield.measure import ParticleMeasure, gaussian, notebook_sphere
from meanfield.network import output
from meanfield.trajectory import Trajectory

FIGURES = Path(__file__).resolve().parents[1] / "paper_figures"
if str(FIGURES) not in sys.path:
    sys.path.insert(0, str(FIGURES))

import _paper  # noqa: E402
import chizat_bach_particles as cbp  # noqa: E402
import excess_risk_vs_width as erw  # noqa: E402
import meanfield_limit as mfl  # noqa: E402


# -- quadratures ---------------------------------------------------------------------------------
def test_quantile_nodes_integrate_gaussian_moments():
    x = _paper.gaussian_quantile_nodes(400, 1)
    assert x.shape == (400, 1)
    np.testing.assert_allclose(x.mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.mean(x**2), 1.0, atol=5e-3)
    np.testing.assert_allclose(np.mean(np.maximum(x, 0)), 1 / np.sqrt(2 * np.pi), atol=5e-4)
    # smooth bounded integrands (the sigmoid kernels) are integrated much more accurately
    from meanfield.kernels import gauss_hermite

    t, w = gauss_hermite(200)
    sig = lambda u: 1.0 / (1.0 + np.exp(-u))  # noqa: E731
    g = lambda z: sig(3 * z - 1) * sig(2 - 2 * z)  # noqa: E731
    np.testing.assert_allclose(np.mean(g(x[:, 0])), w @ g(t), atol=1e-5)
    x2 = _paper.gaussian_quantile_nodes(16, 2)
    assert x2.shape == (256, 2)
    np.testing.assert_allclose(np.mean(x2[:, 0] * x2[:, 1]), 0.0, atol=1e-12)


def test_quantile_nodes_reject_bad_sizes():
    with pytest.raises(ValueError, match="n"):
        _paper.gaussian_quantile_nodes(0, 1)
    with pytest.raises(ValueError, match=r"2\*\*22"):
        _paper.gaussian_quantile_nodes(100, 4)


@pytest.mark.parametrize("d", [1, 2])
def test_sphere_points_are_unit_and_balanced(d):
    p = _paper.sphere_points(256, d)
    assert p.shape == (256, d + 1)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p.mean(axis=0), 0.0, atol=1e-2)
    np.testing.assert_allclose(p.T @ p / 256, np.eye(d + 1) / (d + 1), atol=1e-2)


def test_sphere_points_reject_other_dimensions():
    with pytest.raises(ValueError, match="d must be 1 or 2"):
        _paper.sphere_points(10, 3)


def test_notebook_law_quadrature_matches_the_law_moments():
    mu = _paper.notebook_law_quadrature(8, 64, radius=0.05)
    assert mu.theta.shape == (512, 4)
    np.testing.assert_allclose(mu.masses.sum(), 1.0, rtol=1e-12)
    p, a, u = mu.masses, mu.a, mu.theta[:, 1:]
    np.testing.assert_allclose(np.sum(p * a), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.sum(p * a**2), 1.0, rtol=1e-12)  # Gauss-Hermite is exact
    np.testing.assert_allclose(np.sum(p * a**4), 3.0, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 0.05, rtol=1e-12)
    np.testing.assert_allclose((u * p[:, None]).T @ u, 0.05**2 / 3 * np.eye(3), atol=1e-2 * 0.05**2)
    # the network of the quadrature is ~0, like the law's mean network
    x = np.random.default_rng(0).standard_normal((50, 2))
    np.testing.assert_allclose(output(mu, x), 0.0, atol=1e-12)


# -- the function distance -----------------------------------------------------------------------
def test_function_distance_matches_monte_carlo(rng):
    mu = gaussian(7, 2, rng=1)
    nu = gaussian(5, 2, rng=2)
    d = _paper.function_distance(mu, nu)
    x = rng.standard_normal((400_000, 2))
    mc = np.sqrt(np.mean((output(mu, x) - output(nu, x)) ** 2))
    np.testing.assert_allclose(d, mc, rtol=1e-2)
    np.testing.assert_allclose(_paper.function_distance(nu, mu), d, rtol=1e-10)
    np.testing.assert_allclose(_paper.function_distance(mu, mu), 0.0, atol=1e-7)


def test_function_distance_is_vectorised_over_an_ensemble():
    mu = gaussian(6, 2, runs=3, rng=4)
    nu = gaussian(4, 2, rng=5)
    d = _paper.function_distance(mu, nu)
    assert d.shape == (3,)
    for r in range(3):
        np.testing.assert_allclose(d[r], _paper.function_distance(mu.replica(r), nu), rtol=1e-10)


def test_function_distance_rejects_arrays():
    with pytest.raises(TypeError, match="ParticleMeasure"):
        _paper.function_distance(np.zeros((3, 4)), gaussian(3, 2, rng=0))  # type: ignore[arg-type]


# -- statistics -----------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(slope=st.floats(-2.0, 2.0), scale=st.floats(0.1, 10.0))
def test_loglog_fit_recovers_an_exact_power_law(slope, scale):
    x = np.repeat([4.0, 8.0, 16.0, 64.0], 3)
    y = scale * x**slope
    fit = _paper.loglog_fit(x, y, np.tile([0, 1, 2], 4), n_boot=50)
    np.testing.assert_allclose(fit.slope, slope, atol=1e-9)
    np.testing.assert_allclose(fit(x), y, rtol=1e-9)
    np.testing.assert_allclose([fit.low, fit.high], slope, atol=1e-9)


def test_loglog_fit_interval_covers_the_truth_with_noise(rng):
    x = np.repeat(2.0 ** np.arange(4, 10), 8)
    y = 0.3 * x**-0.5 * np.exp(0.2 * rng.standard_normal(x.size))
    fit = _paper.loglog_fit(x, y, np.tile(np.arange(8), 6), rng=1)
    assert fit.low < -0.5 < fit.high
    assert fit.high - fit.low < 0.2
    assert "CI" in fit.describe()


def test_loglog_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        _paper.loglog_fit([1, 2], [1, -1], [0, 0])
    with pytest.raises(ValueError, match="distinct"):
        _paper.loglog_fit([2, 2], [1, 3], [0, 1])
    with pytest.raises(ValueError, match="same shape"):
        _paper.loglog_fit([1, 2, 3], [1, 3], [0, 1])


def test_log_summary_is_the_geometric_mean_and_sd():
    c, lo, hi = _paper.log_summary(np.array([[1e-2, 1e-4], [1.0, 1.0]]), axis=1)
    np.testing.assert_allclose(c, [1e-3, 1.0])
    np.testing.assert_allclose(lo, [1e-4, 1.0])
    np.testing.assert_allclose(hi, [1e-2, 1.0])
    np.testing.assert_allclose(_paper.log_summary([0.0, 1e-16])[0], 1e-16)


def test_seed_generators_depend_on_the_seed_only():
    a = [g.standard_normal(3) for g in _paper.seed_generators([5, 9], tag=1)]
    b = [g.standard_normal(3) for g in _paper.seed_generators([9], tag=1)]
    np.testing.assert_array_equal(a[1], b[0])
    c = _paper.seed_generators([5], tag=2)[0].standard_normal(3)
    assert not np.array_equal(a[0], c)


def _one():
    return 1


def _two():
    return 2


def test_code_digest_follows_code_and_constants():
    d = _paper.code_digest(_one, 3)
    assert len(d) == 12 and d == _paper.code_digest(_one, 3)
    assert d != _paper.code_digest(_two, 3)
    assert d != _paper.code_digest(_one, 4)


# -- drawing --------------------------------------------------------------------------------------
def test_time_alpha_grows_with_log_time():
    t = np.array([0.0, 0.01, 0.1, 1.0, 10.0])
    alpha = _paper._time_alpha(t)
    lo, hi = _paper.ALPHA_RANGE
    np.testing.assert_allclose(alpha, [lo, lo, lo + (hi - lo) / 3, lo + 2 * (hi - lo) / 3, hi])


def test_draw_trajectories_draws_one_segment_per_step_and_particle():
    fig, ax = plt.subplots()
    xy = np.random.default_rng(0).standard_normal((6, 4, 2))
    t = np.linspace(0, 5, 6)
    lc = _paper.draw_trajectories(ax, xy, t, colors=["r", "g", "b", "k"])
    assert isinstance(lc, LineCollection)
    assert len(lc.get_segments()) == 5 * 4
    alpha = lc.get_colors()[:, 3].reshape(5, 4)
    assert np.all(np.diff(alpha[:, 0]) > 0)
    with pytest.raises(ValueError, match="one colour per particle"):
        _paper.draw_trajectories(ax, xy, t, colors=["r", "g"])
    with pytest.raises(ValueError, match="shape"):
        _paper.draw_trajectories(ax, xy[..., :1], t)
    fig3 = plt.figure()
    ax3 = fig3.add_subplot(projection="3d")
    _paper.draw_trajectories_3d(ax3, np.concatenate([xy, xy[..., :1]], axis=-1), t, colors="k")
    _paper.add_time_key(fig, ax, t)
    plt.close("all")


# -- figure 2 -------------------------------------------------------------------------------------
def test_chizat_bach_runs_and_panels_on_tiny_sizes():
    cfg = cbp.settings(True)
    cfg["paper_relu"].update(m=6, t_end=2.0)
    tr, teacher = cbp.paper_relu(cfg["paper_relu"], 6)
    assert tr.thetas.shape == (6, 6, 3) and tr.risks[-1] < tr.risks[0]
    frac = cbp.ray_mass_fraction(tr, teacher)
    assert 0.0 <= frac <= 1.0
    # the teacher itself puts all its mass on its rays
    still = Trajectory(
        times=[0.0, 1.0], thetas=np.stack([teacher.theta] * 2), masses=teacher.masses
    )
    np.testing.assert_allclose(cbp.ray_mass_fraction(still, teacher), 1.0)
    np.testing.assert_allclose(
        cbp.sigmoid_mass_near_teacher(still, teacher, slice(1, 3), 1e-9), 1.0
    )
    grid = cbp.grid_init(10, 4.0)
    assert grid.theta.shape == (9, 3) and np.all(grid.a == 0)
    colors = cbp.sign_colors(tr.thetas[..., 0])
    assert colors.shape == (5, 6, 4)
    fig, ax = plt.subplots()
    cbp.relu_plane(ax, tr, teacher, "paper")
    plt.close(fig)


# -- figure 3 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["relu-d10", "sigmoid-d10"])
def test_width_cell_rows_do_not_depend_on_the_other_seeds(case):
    params = {"case": case, "m": 3, "n_steps": 4}
    both = erw.cell(params, (0, 1))
    alone = erw.cell(params, (1,))
    assert [r["seed"] for r in both] == [0, 1]
    for key in ("excess_risk", "relative_excess", "risk0", "test_relative_excess"):
        np.testing.assert_allclose(both[1][key], alone[0][key], rtol=1e-9)
        assert np.isfinite(both[0][key]) and both[0][key] >= 0
    assert both[0]["relative_excess"] < 1.0  # four GD steps lower the risk
    assert both[0]["d"] == 10 and both[0]["t_end"] == 4 * erw.CASES[case]["step"]


def test_width_teachers_follow_the_documented_laws():
    relu = erw.teachers("relu-d100", (0, 3))
    assert relu.theta.shape == (2, erw.M0, 102)
    np.testing.assert_allclose(np.linalg.norm(relu.theta[..., 1:], axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(relu.a, np.broadcast_to(erw.TEACHER_A, (2, erw.M0)))
    student = erw.students("sigmoid-d10", 5, (2,))
    assert student.theta.shape == (1, 5, 12) and np.all(student.a == 0)
    small = erw.students("relu-d10", 5, (2,))
    np.testing.assert_allclose(np.linalg.norm(small.theta, axis=-1), erw.RADIUS, rtol=1e-12)


# -- figure 7 -------------------------------------------------------------------------------------
def test_snapshot_grid_hits_every_sgd_step():
    t = mfl.snapshot_grid(20.0, 13)
    assert t[0] == 0.0 and t[-1] == 20.0 and np.all(np.diff(t) > 0)
    for m in (16, 64, 512):
        k = t / (mfl.TAU / m)
        np.testing.assert_allclose(k, np.round(k), atol=1e-9)


def test_meanfield_cell_on_a_tiny_grid(tmp_path):
    times = mfl.snapshot_grid(0.5, 3)
    ref = mfl.cached_reference(tmp_path, 2, 4, times, "test")
    assert mfl.cached_reference(tmp_path, 2, 4, times, "test") == ref  # computed once
    thetas, masses, t = mfl.load_reference(ref)
    assert thetas.shape == (len(times), 8, 4)
    np.testing.assert_array_equal(t, times)
    rows = mfl.cell({"m": 16, "flow_max_m": 16, "reference_path": str(ref)}, (0, 1))
    assert [r["seed"] for r in rows] == [0, 1]
    for r in rows:
        assert r["n_steps"] == round(0.5 / (mfl.TAU / 16))
        # at t = 0 SGD and the flow start from the same particles
        np.testing.assert_allclose(r["d_sgd"][0], r["d_flow"][0], rtol=1e-12)
        np.testing.assert_allclose(r["d_noise"][0], 0.0, atol=1e-9)
        assert r["sup_sgd"] == max(r["d_sgd"]) > 0
        assert all(np.isfinite(r["d_noise"]))
    # the initial distance is the distance of the i.i.d. sample to the quadrature of the law
    init = notebook_sphere(
        16, 2, radius=mfl.RADIUS, rng=_paper.seed_generators([1], mfl.TAG_INIT)[0]
    )
    expected = _paper.function_distance(init, ParticleMeasure(thetas[0], masses))
    np.testing.assert_allclose(rows[1]["d_sgd"][0], expected, rtol=1e-10)
    csv = mfl.write_long_csv(tmp_path / "t.csv", [{**r, "m": 16} for r in rows])
    assert len(csv.read_text().splitlines()) == 1 + 2 * len(times)

"""Tests of the cells and helpers behind figures 4–6 (``paper_figures/_studies.py``)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "paper_figures"))

import _studies as S

from meanfield.flow import integrate
from meanfield.network import output
from meanfield.population import GaussianPopulationEstimator
from meanfield.sgd import OnlineStream, sgd, step_from_tau
from meanfield.sweep import Study, run_study

TINY = {"m": 3, "t_end": 2.0, "n_snapshots": 8}
METRICS = ("f_zero", "risk0", "final_risk", "final_rel", "displacement", "displacement_wb")


# -- cells -------------------------------------------------------------------------------
@pytest.mark.parametrize("law", ["notebook", "sphere"])
def test_sgd_cell_one_finite_row_per_seed(law: str) -> None:
    seeds = (0, 1, 2)
    rows = S.sgd_cell({**TINY, "law": law}, seeds)
    assert [r["seed"] for r in rows] == list(seeds)
    for r in rows:
        for k in METRICS:
            assert math.isfinite(r[k]), k
        assert r["f_zero"] > 0
        assert r["displacement"] >= 0
        assert r["success"] == math.isfinite(r["t_eps"])
        assert len(r["curve_t"]) == len(r["curve_rel"]) >= 2
        assert r["curve_t"][-1] == pytest.approx(TINY["t_end"])
        np.testing.assert_allclose(r["curve_rel"][0] * r["f_zero"], r["risk0"], rtol=1e-12)
    # different seeds draw different teachers
    assert len({r["f_zero"] for r in rows}) == len(seeds)


def test_sgd_cell_rows_do_not_depend_on_the_other_seeds() -> None:
    both = S.sgd_cell(TINY, (3, 5))
    alone = S.sgd_cell(TINY, (3,)) + S.sgd_cell(TINY, (5,))
    swapped = S.sgd_cell(TINY, (5, 3))[::-1]
    for a, b, c in zip(both, alone, swapped, strict=True):
        for k in (*METRICS, "curve_rel"):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=0)
            np.testing.assert_allclose(a[k], c[k], rtol=1e-12, atol=0)


def test_sgd_cell_member_equals_the_solo_library_run() -> None:
    p = {**S.DEFAULTS, **TINY}
    rows = S.sgd_cell(TINY, (7, 11))
    for row in rows:
        seed = row["seed"]
        teacher = S.make_teacher(p, seed)
        est = GaussianPopulationEstimator(teacher)
        eta = step_from_tau(p["tau"], p["m"])
        traj = sgd(S.make_student(p, seed), OnlineStream(teacher, p["batch"]), step=eta,
                   n_steps=round(p["t_end"] / eta), n_snapshots=p["n_snapshots"], risk=est,
                   rng=S.seed_streams(seed)[1], progress=False)
        np.testing.assert_allclose(row["curve_t"], traj.times, rtol=1e-12)
        f0 = float(S.zero_risk(est, 1, p["d"])[0])
        np.testing.assert_allclose(row["curve_rel"], np.asarray(traj.risks) / f0, rtol=1e-10)


def test_cells_are_paired_across_the_varied_parameter() -> None:
    p = {**S.DEFAULTS, "radius": 0.01}
    q = {**S.DEFAULTS, "radius": 1.0}
    a, b = S.make_student(p, 4).theta, S.make_student(q, 4).theta
    np.testing.assert_allclose(a[:, 0], b[:, 0])  # same a (notebook law keeps a)
    np.testing.assert_allclose(a[:, 1:] / 0.01, b[:, 1:], rtol=1e-12)  # same directions
    np.testing.assert_allclose(S.make_teacher(p, 4).theta, S.make_teacher(q, 4).theta)


def test_flow_cell_rows_and_solo_flow() -> None:
    p = {**S.DEFAULTS, **TINY, "law": "sphere", "radius": 0.1}
    rows = S.flow_cell(p, (0, 1))
    assert len(rows) == 2
    for r in rows:
        for k in METRICS:
            assert math.isfinite(r[k]), k
        teacher = S.make_teacher(p, r["seed"])
        est = GaussianPopulationEstimator(teacher)
        traj = integrate(S.make_student(p, r["seed"]), est, p["t_end"],
                         n_snapshots=p["n_snapshots"], rtol=1e-8, atol=1e-11, progress=False)
        np.testing.assert_allclose(r["final_risk"], np.asarray(traj.risks)[-1], rtol=1e-3)


def test_zero_risk_is_half_the_teacher_energy() -> None:
    teacher = S.make_teacher(S.DEFAULTS, 2)
    est = GaussianPopulationEstimator(teacher)
    x = np.random.default_rng(0).standard_normal((400_000, 2))
    f = output(teacher, x)
    mc = 0.5 * np.mean(f**2)
    se = 0.5 * np.std(f**2) / math.sqrt(x.shape[0])
    assert abs(float(S.zero_risk(est, 1, 2)[0]) - mc) < 5 * se


# -- metrics -------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(c=st.floats(0.1, 10.0), p=st.floats(0.2, 3.0), tc=st.floats(1e-2, 1e2))
def test_first_crossing_is_exact_on_a_power_law(c: float, p: float, tc: float) -> None:
    t = np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 37)])
    v = np.concatenate([[np.inf], c * t[1:] ** (-p)])
    # log-log interpolation is exact for F = c t^-p: the crossing of c tc^-p is tc
    np.testing.assert_allclose(S.first_crossing(t, v, c * tc ** (-p)), tc, rtol=1e-9)


def test_first_crossing_edge_cases() -> None:
    t = np.array([0.0, 1.0, 2.0, 4.0])
    v = np.array([[1.0, 0.1], [0.9, 0.1], [0.8, 0.1], [0.7, 0.1]])
    out = S.first_crossing(t, v, [0.5, 0.5])
    assert math.isnan(out[0])  # never below
    assert out[1] == 0.0  # already below at t = 0
    # first segment (t0 = 0) is interpolated linearly in t
    np.testing.assert_allclose(S.first_crossing(t, [1.0, 0.0, 0.0, 0.0], 0.25), 0.75)
    # a curve that dips and comes back: the FIRST crossing
    np.testing.assert_allclose(S.first_crossing(t, [1.0, 0.4, 0.9, 0.1], 0.5), 1.0, rtol=0.2)


@settings(max_examples=25, deadline=None)
@given(tau=st.floats(0.5, 50.0), k=st.floats(1.0, 4.0), f0=st.floats(1e-3, 1.0))
def test_escape_time_on_a_synthetic_plateau(tau: float, k: float, f0: float) -> None:
    t = np.concatenate([[0.0], np.geomspace(1e-3, 1e4, 400)])
    risk = f0 / (1.0 + (t / tau) ** k)
    expected = tau * (1 / 9) ** (1 / k)  # F = 0.9 F(0)
    np.testing.assert_allclose(S.escape_time(t, risk, 0.1), expected, rtol=2e-2)
    # an ensemble of two curves
    both = np.stack([risk, f0 / (1.0 + (t / (2 * tau)) ** k)], axis=1)
    np.testing.assert_allclose(S.escape_time(t, both, 0.1), [expected, 2 * expected], rtol=2e-2)


def test_fit_log_slope_recovers_a_line() -> None:
    r = np.logspace(-3, -1, 5)
    c, t0, r2 = S.fit_log_slope(r, 2.5 * np.log(1 / r) + 1.0)
    np.testing.assert_allclose([c, t0, r2], [2.5, 1.0, 1.0], rtol=1e-10)
    assert math.isnan(S.fit_log_slope([0.1], [1.0])[0])


def test_wilson_interval() -> None:
    lo, hi = S.wilson(8, 16)
    assert lo < 0.5 < hi
    np.testing.assert_allclose([lo, hi], [0.2800, 0.7200], atol=1e-3)
    assert S.wilson(0, 8)[0] == 0.0
    assert S.wilson(8, 8)[1] == 1.0


def test_json_safe() -> None:
    out = S.json_safe({"a": [1.0, float("nan")], 2: (np.float64(np.inf), np.int64(3))})
    assert out == {"a": [1.0, None], "2": [None, 3]}


# -- teachers ------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(m0=st.integers(2, 8), alpha=st.sampled_from([4.0, 8.0, 16.0, 32.0]),
       signs=st.sampled_from(["positive", "mixed"]), seed=st.integers(0, 2**31))
def test_angle_teacher_has_the_requested_smallest_angle(m0: int, alpha: float, signs: str,
                                                        seed: int) -> None:
    th = S.angle_teacher(m0, alpha, signs, np.random.default_rng(seed))
    assert th.shape == (m0, 4)
    np.testing.assert_allclose(np.linalg.norm(th[:, 1:], axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(S.min_angle_deg(th[:, 1:]), alpha, rtol=1e-9)
    np.testing.assert_allclose(np.abs(th[:, 0]), 1.0)
    if signs == "positive":
        assert np.all(th[:, 0] > 0)
    else:
        u = th[:, 1:]
        g = u @ u.T - 3 * np.eye(m0)
        i, j = np.unravel_index(np.argmax(g), g.shape)
        assert th[i, 0] * th[j, 0] < 0  # the closest pair has opposite signs
        assert abs(th[:, 0].sum()) <= 1


def test_spread_directions_are_well_spread() -> None:
    gen = np.random.default_rng(1)
    # the optimal smallest angles on S² are 180°, 120°, 109.5°, 90° (m = 2, 3, 4, 6)
    for n, best in ((2, 180.0), (3, 120.0), (4, 109.47), (6, 90.0), (8, 74.86)):
        assert S.min_angle_deg(S.spread_directions(n, 3, gen)) > 0.95 * best


@pytest.mark.parametrize("bias", [0.0, 0.6, 0.95])
def test_bias_teacher(bias: float) -> None:
    th = S.bias_teacher(4, bias, "mixed", np.random.default_rng(3))
    np.testing.assert_allclose(np.abs(th[:, -1]), bias)
    np.testing.assert_allclose(np.linalg.norm(th[:, 1:], axis=1), 1.0, rtol=1e-12)
    phi = np.sort(np.mod(np.arctan2(th[:, 2], th[:, 1]), 2 * np.pi))
    np.testing.assert_allclose(np.diff(phi), np.pi / 2, rtol=1e-9)
    np.testing.assert_allclose(th[:, 0], [1, -1, 1, -1])


def test_teacher_and_student_reject_bad_settings() -> None:
    with pytest.raises(ValueError, match="bias"):
        S.bias_teacher(4, 1.0, "positive", np.random.default_rng(0))
    with pytest.raises(ValueError, match="signs"):
        S.angle_teacher(3, 10.0, "negative", np.random.default_rng(0))
    with pytest.raises(ValueError, match="teacher"):
        S.make_teacher({**S.DEFAULTS, "teacher": "random"}, 0)
    with pytest.raises(ValueError, match="law"):
        S.make_student({**S.DEFAULTS, "law": "gaussian"}, 0)


# -- running -------------------------------------------------------------------------------
def test_run_studies_matches_serial_run_study(tmp_path: Path) -> None:
    a = Study("a", S.sgd_cell, {"radius": [0.01, 1.0]}, [0, 1], fixed=TINY)
    b = Study("b", S.sgd_cell, {"m": [2]}, [2], fixed={**TINY, "law": "sphere"})
    ta, tb = S.run_studies([a, b], tmp_path / "shared")
    sa = run_study(a, tmp_path / "serial", executor="serial")
    sb = run_study(b, tmp_path / "serial", executor="serial")
    assert ta.rows == sa.rows
    assert tb.rows == sb.rows
    csv = S.save_tidy_csv(ta, tmp_path / "a.csv").read_text()
    assert "curve_t" not in csv and "final_rel" in csv


def test_teachers_have_no_negative_zero() -> None:
    for signs in ("positive", "mixed"):
        th = S.make_teacher({**S.DEFAULTS, "teacher": "bias", "bias": 0.0, "signs": signs}, 1).theta
        assert not np.any(np.signbit(th) & (th == 0))


def test_run_rows_refuses_a_negative_exact_risk() -> None:
    t = np.array([0.0, 1.0])
    risks = np.array([[1.0], [-0.1]])
    theta = np.ones((1, 2, 4))
    with pytest.raises(RuntimeError, match="negative"):
        S.run_rows(t, risks, theta, theta, np.array([1.0]), [0], S.DEFAULTS)

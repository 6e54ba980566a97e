"""Reliability: numerical extremes, interrupted work, reproducibility, long runs.

* Extremes: the activations over every decade up to |u| = 1e300, features at huge
  pre-activations, the Gaussian kernels at |ρ| → 1, w → 0 and huge biases for every
  activation (what ``tests/test_activations.py`` and ``tests/test_kernels.py`` do not
  already cover), and the ODE solvers on a stiff, multi-scale configuration.
* Interrupted work: ``meanfield run`` and ``meanfield figures`` killed with SIGKILL (the
  whole process group) at random moments and restarted: no half-written file, nothing
  finished lost or recomputed (studies: ``tests/test_sweep.py``).
* Reproducibility: the same config gives bitwise-identical trajectories in two processes,
  a saved trajectory records what replays it, a real SGD study gives the same table on
  every executor, and an ensemble member of a configured run equals its solo run.
* Long runs: the memory of online SGD does not grow with the number of steps.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import meanfield as mf
from meanfield import kernels
from meanfield.activations import ACTIVATIONS, get_activation
from meanfield.config import load_config, run_config
from meanfield.flow import integrate
from meanfield.sgd import OnlineStream, sgd, step_from_tau
from meanfield.sweep import Study, run_study

ROOT = Path(__file__).resolve().parents[1]


# -- numerical extremes: activations and features --------------------------------------------
DECADES = np.concatenate([-np.logspace(3, 300, 298), np.logspace(3, 300, 298)])
LIMITS = {"relu": None, "sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "erf": (-1.0, 1.0)}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activations_are_exact_limits_over_every_decade(name, dtype):
    """σ and σ′ at |u| = 1e3 … 1e300 (and float32 up to its own max): exact, no warning."""
    u = DECADES.astype(dtype) if dtype is np.float64 else np.clip(DECADES, -3e38, 3e38)
    u = u.astype(dtype)
    act = get_activation(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, dv = act(u), act.derivative(u)
    assert v.dtype == dtype and dv.dtype == dtype
    if name == "relu":
        np.testing.assert_array_equal(v, np.maximum(u, 0))
        np.testing.assert_array_equal(dv, (u >= 0).astype(dtype))
    else:
        low, high = LIMITS[name]
        np.testing.assert_array_equal(v, np.where(u > 0, high, low).astype(dtype))
        np.testing.assert_array_equal(dv, np.zeros_like(u))
    # monotone through the whole range, including across the switch to the limits
    grid = np.sort(np.concatenate([u, np.linspace(-60, 60, 241).astype(dtype)]))
    assert np.all(np.diff(act(grid)) >= 0)


@pytest.mark.parametrize("name", ["tanh", "erf", "sigmoid"])
def test_symmetries_hold_exactly_in_the_tails(name):
    u = np.concatenate([np.linspace(0, 40, 401), np.logspace(2, 300, 50)])
    act = get_activation(name)
    if name == "sigmoid":  # σ(−u) = 1 − σ(u), and σ′ is even
        np.testing.assert_allclose(act(-u), 1 - act(u), rtol=0, atol=2e-16)
    else:  # odd σ, even σ′
        np.testing.assert_array_equal(act(-u), -act(u))
    np.testing.assert_array_equal(act.derivative(-u), act.derivative(u))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("b", [1e3, -1e3, 1e150, -1e150, 1e300, -1e300])
def test_features_at_huge_preactivations_are_exact_or_refused(name, b):
    """φ and ∇φ at u = b (w = 0): the exact limit; an overflowing result is a ValueError."""
    theta = np.array([[0.5, 0.0, 0.0, b]])
    x = np.array([[1.0, -2.0], [0.3, 0.7]])
    act = get_activation(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        phi = mf.feature(theta, x, activation=name)
        grad = mf.feature_grad(theta, x, activation=name)
        out = mf.output(mf.ParticleMeasure(theta), x, activation=name)
    np.testing.assert_array_equal(phi, 0.5 * act(np.full((2, 1), b)))
    np.testing.assert_array_equal(out, phi[:, 0])
    np.testing.assert_array_equal(grad[..., 0], act(np.full((2, 1), b)))
    deriv = act.derivative(np.array([b]))[0]
    np.testing.assert_array_equal(grad[..., 1:-1], 0.5 * deriv * x[:, None, :])
    # a = 1e10 makes a·relu(1e300) overflow: refused, never returned as inf
    big = np.array([[1e10, 0.0, 0.0, b]])
    if name == "relu" and b >= 1e300:
        with pytest.raises(ValueError, match="overflow"):
            mf.feature(big, x)
        with pytest.raises(ValueError, match="overflow"):
            mf.output(mf.ParticleMeasure(big), x)
    else:
        assert np.all(np.isfinite(mf.feature(big, x, activation=name)))


def test_overflowing_laws_and_effective_neurons_are_refused():
    with pytest.raises(ValueError, match="std"):
        mf.gaussian(50, 2, std=1.7e308, rng=0)
    with pytest.raises(ValueError, match="scale"):
        mf.balanced(3, 2, scale=1.7e308, rng=0)
    mu = mf.ParticleMeasure(np.array([[1e200, 1e200, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="overflow"):
        mu.effective_neurons()
    tiny = mf.sphere(3, 2, radius=1e-300, rng=0)  # tiny is fine: finite, on the sphere
    assert np.all(np.isfinite(tiny.theta)) and np.all(tiny.theta != 0)
    np.testing.assert_allclose(np.linalg.norm(tiny.theta * 1e300, axis=-1), 1.0, rtol=1e-12)


# -- numerical extremes: Gaussian kernels (beyond tests/test_kernels.py) ----------------------
BLOCK_FIELDS = ("value", "coef_w", "coef_wp", "grad_b")


@pytest.mark.parametrize("activation", ["erf", "sigmoid", "tanh"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_kernel_blocks_are_continuous_at_unit_correlation(activation, sign):
    """|ρ| → 1 for the closed-form erf block and the quadrature blocks (relu: test_kernels)."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal(3)
    th = np.r_[1.0, w, 0.4][None]
    direction = rng.standard_normal(3)
    limit = kernels.kernel_block(th, np.r_[1.0, sign * 1.5 * w, -0.3][None], activation=activation)
    for eps in (1e-6, 1e-9, 1e-12, 1e-15):
        near = kernels.kernel_block(
            th, np.r_[1.0, sign * 1.5 * w + eps * direction, -0.3][None], activation=activation
        )
        for f in BLOCK_FIELDS:
            np.testing.assert_allclose(
                getattr(near, f), getattr(limit, f), rtol=0, atol=100 * eps + 1e-15
            )
    self_block = kernels.kernel_block(th, activation=activation)  # ρ = 1 exactly
    for f in BLOCK_FIELDS:
        assert np.all(np.isfinite(getattr(self_block, f)))


# Relative quadrature error of K bounded in kernel_block's notes (n = 32, ‖w‖ ≤ 2); the
# closed forms (relu, erf) must be continuous to rounding.
QUADRATURE_RTOL = {"relu": 0.0, "erf": 0.0, "sigmoid": 4e-4, "tanh": 2e-2}


@pytest.mark.parametrize("activation", ["relu", "erf", "sigmoid", "tanh"])
def test_kernel_blocks_are_continuous_as_the_weights_vanish(activation):
    """w → 0 (u ≡ b in the limit): the block tends to the exact w = 0 block.

    b = 0 is left out for relu: 1{w·x + b ≥ 0} jumps there (σ′(0) = 1 by convention).
    """
    rng = np.random.default_rng(3)
    th2 = np.r_[1.0, rng.standard_normal(3), 0.4][None]
    direction = rng.standard_normal(3)
    rtol = QUADRATURE_RTOL[activation]
    for b in (-0.5, 0.5) if activation == "relu" else (-0.5, 0.0, 0.5):
        zero = kernels.kernel_block(np.r_[1.0, 0.0, 0.0, 0.0, b][None], th2, activation=activation)
        for eps in (1e-6, 1e-10, 1e-14, 1e-300):
            tiny = kernels.kernel_block(
                np.r_[1.0, eps * direction, b][None], th2, activation=activation
            )
            for f in ("value", "grad_b"):
                np.testing.assert_allclose(
                    getattr(tiny, f), getattr(zero, f), rtol=rtol, atol=100 * eps + 1e-15
                )
            assert np.all(np.isfinite(tiny.coef_w)) and np.all(np.isfinite(tiny.coef_wp))


@pytest.mark.parametrize("activation", ["relu", "erf", "sigmoid", "tanh"])
@pytest.mark.parametrize("b", [1e3, -1e3, 1e8, -1e8, 1e150, -1e150])
def test_kernels_at_huge_biases_reach_the_constant_limit(activation, b):
    """|b| → ∞ makes σ(u) ≈ σ(b) constant: K = σ(b) E[σ(u′)], E[σ(u)] = σ(b)."""
    w = np.array([0.5, -1.0])
    th2 = np.array([[1.0, 0.3, 0.8, -0.2], [1.0, -0.5, 0.1, 0.4]])
    th = np.array([[1.0, *w, b]])
    act = get_activation(activation)
    sb = float(act(np.array(b)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        blk = kernels.kernel_block(th, th2, activation=activation)
        mean = kernels.gaussian_mean(th, activation=activation)
        mean_grad = kernels.gaussian_mean_grad(th, activation=activation)
    for f in BLOCK_FIELDS:
        assert np.all(np.isfinite(getattr(blk, f))), f
    assert np.all(np.isfinite(mean_grad))
    mean2 = kernels.gaussian_mean(th2, activation=activation)
    # relu: E[relu(b + s z) relu(u′)] = b E[relu(u′)] + s E[z relu(u′)], relative O(s/b)
    rtol = 2e-3 * 1e3 / abs(b) + 1e-6 if activation == "relu" else 1e-6
    np.testing.assert_allclose(blk.value, sb * mean2[None], rtol=rtol, atol=1e-300)
    np.testing.assert_allclose(mean, [sb], rtol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "erf"])
@pytest.mark.parametrize("b", [-1e300, 1e300, -1.7e308, 1.7e308])
def test_closed_form_kernels_at_bias_1e300(activation, b):
    """The exact limit K = σ(b) E[σ(u′)], with no warning, on both backends."""
    th = np.array([[1.0, 0.5, -1.0, b]])
    th2 = np.array([[1.0, 0.3, 0.8, -0.2]])
    sb = float(get_activation(activation)(np.array(b)))
    expected = sb * kernels.gaussian_mean(th2, activation=activation)[None]
    for backend in ("numpy", "auto"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            blk = kernels.kernel_block(th, th2, activation=activation, backend=backend)
        np.testing.assert_allclose(blk.value, expected, rtol=1e-6)
        for f in BLOCK_FIELDS:
            assert np.all(np.isfinite(getattr(blk, f))), f


@pytest.mark.parametrize("activation", ["relu", "erf", "sigmoid", "tanh"])
def test_kernels_at_huge_weights_are_exact_or_refused(activation):
    """‖w‖ ≈ 1e300: a finite block that matches the scaled-down one, or a ValueError."""
    rng = np.random.default_rng(11)
    th = rng.standard_normal((3, 4))
    th2 = rng.standard_normal((2, 4))
    big = th * 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            blk = kernels.kernel_block(big, th2, activation=activation)
        except ValueError as exc:
            assert "theta" in str(exc) and "overflow" in str(exc)
            assert activation == "relu"  # K ~ ‖w‖‖w′‖ ~ 1e300 survives; w·w′ of two ~1e300 not
            return
    for f in BLOCK_FIELDS:
        assert np.all(np.isfinite(getattr(blk, f))), f
    if activation == "relu":  # 1-homogeneous in (w, b)
        np.testing.assert_allclose(blk.value, 1e300 * kernels.relu_kernel(th, th2), rtol=1e-12)
    elif activation == "erf":  # erf(λu) → sign(u): the arcsine law of the signs
        ref = kernels.kernel_block(th * 1e8, th2, activation="erf").value
        np.testing.assert_allclose(blk.value, ref, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="theta"):
            kernels.kernel_block(big, activation="relu")  # K(θ, θ) ~ 1e600


# -- numerical extremes: a stiff, multi-scale flow ---------------------------------------------
def _multiscale_measure() -> mf.ParticleMeasure:
    rng = np.random.default_rng(0)
    dirs = rng.standard_normal((4, 4))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return mf.ParticleMeasure(dirs * np.array([1e-3, 1e-1, 1.0, 300.0])[:, None])


def test_stiff_solvers_finish_a_multiscale_flow_and_conserve_balancedness():
    """Particles of norms 1e-3 … 300: Radau and LSODA finish, conserve aᵢ² − ‖wᵢ‖² − bᵢ²
    to tolerance, agree with each other; RK45 finishes (and agrees) or raises clearly."""
    est = mf.GaussianPopulationEstimator(mf.notebook_teacher(3, 2, rng=1))
    mu = _multiscale_measure()
    times = [0.0, 0.01, 1.0, 20.0]
    scale = float(np.max(np.sum(mu.theta**2, axis=-1)))  # 9e4
    runs = {}
    for method in ("Radau", "LSODA"):
        traj = integrate(mu, est, 20.0, method=method, rtol=1e-8, atol=1e-10, times=times)
        beta = traj.balance()
        assert np.max(np.abs(beta - beta[0])) < 1e-7 * scale, method
        assert traj.risks[-1] < 1e-3 * traj.risks[0]  # it really moved, from 7e6 down
        runs[method] = traj
    np.testing.assert_allclose(
        runs["Radau"].thetas, runs["LSODA"].thetas, rtol=0, atol=1e-5 * math.sqrt(scale)
    )
    try:
        rk = integrate(mu, est, 20.0, method="RK45", rtol=1e-8, atol=1e-10, times=times)
    except mf.DivergenceError as exc:  # a clear report is acceptable, a wrong number is not
        assert "RK45" in str(exc) or "non-finite" in str(exc)
    else:
        np.testing.assert_allclose(rk.thetas, runs["Radau"].thetas, rtol=0, atol=1e-4)


@pytest.mark.parametrize("method", ["Radau", "LSODA", "BDF"])
def test_stiff_weight_decay_follows_the_exact_balancedness_law(method):
    """With weight decay λ = 300 (a stiff linear part), βᵢ(t) = βᵢ(0) e^{−2λt} exactly."""
    est = mf.GaussianPopulationEstimator(mf.notebook_teacher(3, 2, rng=1))
    mu = mf.ParticleMeasure(_multiscale_measure().theta / 10)
    lam, times = 300.0, np.array([0.0, 0.001, 0.004, 0.01])
    traj = integrate(
        mu, est, 1.0, method=method, rtol=1e-8, atol=1e-12, weight_decay=lam,
        times=[*times, 1.0],
    )
    beta = traj.balance()[:4]
    expected = beta[0] * np.exp(-2 * lam * times)[:, None]
    np.testing.assert_allclose(beta, expected, rtol=1e-6, atol=1e-9 * np.max(np.abs(beta[0])))
    assert np.all(np.isfinite(traj.thetas)) and np.max(np.abs(traj.thetas[-1])) < 1e-9


# -- interrupted work -----------------------------------------------------------------------------
RUN_TOML = """\
activation = "relu"
d = 2
seed = 5

[teacher]
law = "notebook_teacher"
m = 4
seed = 18

[student]
law = "notebook_sphere"
m = 200
radius = 0.05
seed = 1
runs = 2

[dynamics]
kind = "online_sgd"
tau = 0.5
batch_size = 20
n_steps = 3000
estimator = "monte_carlo"
n_samples = 300
n_snapshots = 400

[output]
trajectory = "out.npz"
"""


def _run_cmd(cfg: Path) -> list[str]:
    return [sys.executable, "-m", "meanfield.cli", "run", str(cfg), "-q"]


def _arrays(path: Path) -> dict[str, object]:
    """Every array of a saved trajectory, with the metadata parsed (runtime and path removed)."""
    with np.load(path, allow_pickle=False) as f:
        out: dict[str, object] = {k: f[k] for k in f.files if k != "metadata"}
        meta = json.loads(str(f["metadata"][()]))
    meta["info"].pop("runtime_s", None)
    meta["config"]["run_config"]["output"].pop("trajectory", None)
    out["metadata"] = meta
    return out


def assert_same_run(a: dict[str, object], b: dict[str, object]) -> None:
    assert set(a) == set(b)
    for k in a:
        if k == "metadata":
            assert a[k] == b[k]
        else:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert np.array_equal(a[k], b[k], equal_nan=True), f"{k} differs"


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> tuple[dict[str, object], float, Path]:
    """The config run once to completion in a subprocess: arrays, wall time, file."""
    folder = tmp_path_factory.mktemp("reference")
    (folder / "run.toml").write_text(RUN_TOML)
    start = time.perf_counter()
    subprocess.run(_run_cmd(folder / "run.toml"), check=True, capture_output=True, timeout=300)
    wall = time.perf_counter() - start
    return _arrays(folder / "out.npz"), wall, folder / "out.npz"


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["setup", "random", "during-write"])
def test_sigkill_during_meanfield_run_leaves_no_partial_trajectory(
    tmp_path, reference_run, moment
):
    ref, wall, _ = reference_run
    (tmp_path / "run.toml").write_text(RUN_TOML)
    out = tmp_path / "out.npz"
    proc = subprocess.Popen(
        _run_cmd(tmp_path / "run.toml"),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if moment == "during-write":  # kill as soon as the temporary file appears
            deadline = time.monotonic() + 10 * wall + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if any(tmp_path.glob(".out.*")) or out.exists():
                    break
                time.sleep(0.0005)
        else:
            delay = 0.3 if moment == "setup" else np.random.default_rng(11).uniform(0.5, wall)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                pass
    finally:
        _kill_group(proc)
    if out.exists():  # the kill came after the rename: the file is complete
        assert_same_run(_arrays(out), ref)
    # whatever temporary file the kill left is never mistaken for a result, and a rerun
    # completes and gives the reference run bit for bit
    subprocess.run(_run_cmd(tmp_path / "run.toml"), check=True, capture_output=True, timeout=300)
    assert_same_run(_arrays(out), ref)


FIGURE_SCRIPT = textwrap.dedent(
    """
    import time
    import numpy as np
    from meanfield._io import atomic_write_bytes
    from meanfield.figures import FigureResult

    def make(out_dir, quick):
        with open(out_dir / "calls.log", "a") as log:
            log.write("{name}\\n")
        time.sleep(0.35)
        data = np.random.default_rng({seed}).standard_normal(300_000).tobytes()
        atomic_write_bytes(out_dir / "{name}.bin", data)
        return FigureResult(files=[out_dir / "{name}.bin"], parameters={{"n": 300000}},
                            seeds=[{seed}])
    """
)
FIGURES = [f"fig{i}" for i in range(5)]


def _expected_bytes(i: int) -> bytes:
    return np.random.default_rng(i).standard_normal(300_000).tobytes()


def _check_figure_outputs(out: Path) -> set[str]:
    """The manifest (if any) is valid JSON and lists only complete figures; return them."""
    if not (out / "manifest.json").exists():
        return set()
    manifest = json.loads((out / "manifest.json").read_text())
    listed = set(manifest["figures"])
    for name in listed:
        assert manifest["figures"][name]["files"] == [f"{name}.bin"]
        assert (out / f"{name}.bin").read_bytes() == _expected_bytes(FIGURES.index(name))
    return listed


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["after-two", "random-1", "random-2"])
def test_sigkill_during_make_figures_then_restart(tmp_path, moment):
    scripts, out = tmp_path / "scripts", tmp_path / "out"
    scripts.mkdir()
    for i, name in enumerate(FIGURES):
        (scripts / f"{name}.py").write_text(FIGURE_SCRIPT.format(name=name, seed=i))
    cmd = [sys.executable, "-m", "meanfield.cli", "figures", "--dir", str(scripts),
           "--out", str(out)]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if moment == "after-two":
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    if len(json.loads((out / "manifest.json").read_text())["figures"]) >= 2:
                        break
                except (OSError, ValueError):
                    pass
                time.sleep(0.005)
            time.sleep(np.random.default_rng(1).uniform(0, 0.3))
        else:
            delay = np.random.default_rng(int(moment[-1])).uniform(0.5, 3.0)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                pass
    finally:
        _kill_group(proc)
    finished = _check_figure_outputs(out)
    if moment == "after-two":
        assert 2 <= len(finished) < len(FIGURES), "the kill must land mid-run"
    stamps = {n: (out / f"{n}.bin").stat().st_mtime_ns for n in finished}
    calls_before = (out / "calls.log").read_text().split() if (out / "calls.log").exists() else []
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    assert _check_figure_outputs(out) == set(FIGURES)
    calls_after = (out / "calls.log").read_text().split()[len(calls_before) :]
    assert finished.isdisjoint(calls_after), "a finished figure was computed again"
    assert set(calls_after) | finished == set(FIGURES)
    for n, stamp in stamps.items():  # finished files were not rewritten
        assert (out / f"{n}.bin").stat().st_mtime_ns == stamp
    rerun = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    assert rerun.stdout.count("up to date, skipped") == len(FIGURES)


# -- reproducibility ----------------------------------------------------------------------------
@pytest.mark.slow
def test_same_config_gives_bitwise_identical_runs_in_two_processes(tmp_path, reference_run):
    ref, _, _ = reference_run
    (tmp_path / "run.toml").write_text(RUN_TOML)
    subprocess.run(_run_cmd(tmp_path / "run.toml"), check=True, capture_output=True, timeout=300)
    assert_same_run(_arrays(tmp_path / "out.npz"), ref)


@pytest.mark.slow
def test_saved_trajectory_records_what_replays_it(tmp_path, reference_run):
    """config, seed and package version travel with the file; replaying gives the arrays."""
    ref, _, path = reference_run
    traj = mf.load_trajectory(path)
    assert traj.version == mf.__version__
    cfg = traj.config["run_config"]
    assert cfg == load_config(path.parent / "run.toml")  # the whole validated config
    assert traj.seed == cfg["seed"] == 5
    assert traj.config["backend"] and traj.config["stream"]["kind"] == "OnlineStream"
    replay = run_config(cfg, output=tmp_path / "replay.npz", progress=False)
    assert_same_run(_arrays(tmp_path / "replay.npz"), ref)
    assert replay.equals(traj)


def test_ensemble_member_of_a_configured_run_equals_its_solo_run(tmp_path):
    """runs = 3 in a config: member r is the solo run of replica r with stream r."""
    text = RUN_TOML.replace("m = 200", "m = 12").replace("runs = 2", "runs = 3")
    text = text.replace("n_steps = 3000", "n_steps = 150")
    text = text.replace("n_snapshots = 400", "n_snapshots = 6")
    (tmp_path / "run.toml").write_text(text)
    cfg = load_config(tmp_path / "run.toml")
    ens = run_config(cfg, output=tmp_path / "ens.npz", progress=False)
    assert ens.batch_shape == (3,)
    teacher = mf.notebook_teacher(4, 2, rng=18)
    students = mf.notebook_sphere(12, 2, radius=0.05, runs=3, rng=1)
    step = step_from_tau(0.5, 12)
    for r, gen in enumerate(mf.spawn_rngs(5, 3)):
        solo = sgd(students.replica(r), OnlineStream(teacher, 20, d=2), step=step, n_steps=150,
                   n_snapshots=6, rng=gen, risk=False)
        np.testing.assert_array_equal(ens.thetas[:, r], solo.thetas)
        np.testing.assert_array_equal(ens.replica(r).thetas, solo.thetas)
    assert not np.array_equal(ens.thetas[-1, 0], ens.thetas[-1, 1])


def sgd_study_cell(params, seeds):
    """A real cell: all seeds of a grid point as one online-SGD ensemble (module level)."""
    teacher = mf.notebook_teacher(3, 2, rng=7)
    students = mf.notebook_sphere(params["m"], 2, radius=params["radius"], runs=len(seeds),
                                  rng=list(seeds))
    est = mf.GaussianPopulationEstimator(teacher)
    traj = mf.online_sgd(students, teacher, step=step_from_tau(0.5, params["m"]), n_steps=200,
                         n_snapshots=4, rng=[params["m"], *seeds], risk=est)
    return [
        {"seed": s, "risk": float(traj.risks[-1, r]), "a0": float(traj.thetas[-1, r, 0, 0])}
        for r, s in enumerate(seeds)
    ]


@pytest.mark.slow
def test_real_sgd_study_is_identical_on_every_executor(tmp_path):
    study = Study("sgd", sgd_study_cell, grid={"m": [5, 10], "radius": [0.05, 0.5]},
                  seeds=[0, 1, 2])
    serial = run_study(study, tmp_path / "serial", executor="serial")
    process = run_study(study, tmp_path / "process", executor="process")
    with ThreadPoolExecutor(2) as pool:
        threads = run_study(study, tmp_path / "threads", executor=pool)
    assert len(serial) == 12 and np.all(np.isfinite(serial.column("risk")))
    assert serial.to_csv() == process.to_csv() == threads.to_csv()
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        dask = run_study(study, tmp_path / "dask", executor=client.get_executor())
    assert dask.to_csv() == serial.to_csv()


# -- long runs ----------------------------------------------------------------------------------
def _peak_bytes(n_steps: int, backend: str) -> tuple[int, int]:
    teacher = mf.notebook_teacher(4, 2, rng=18)
    student = mf.notebook_sphere(20, 2, radius=0.05, rng=1)
    tracemalloc.start()
    try:
        traj = mf.online_sgd(student, teacher, step=0.025, n_steps=n_steps, n_snapshots=41,
                             rng=0, backend=backend)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, len(traj)


@pytest.mark.parametrize(("backend", "short"), [("auto", 20_000), ("numpy", 2_000)])
def test_online_sgd_memory_does_not_grow_with_the_number_of_steps(backend, short):
    """10× more steps, the same number of snapshots: the peak memory stays flat."""
    _peak_bytes(50, backend)  # compile / warm caches outside the measurement
    peak_short, t_short = _peak_bytes(short, backend)
    peak_long, t_long = _peak_bytes(10 * short, backend)
    assert abs(t_long - t_short) <= 2  # log-spaced snapshots: about the same count
    # a run that kept every step would need 10× the snapshots of the short one
    per_step = 20 * 4 * 8
    assert peak_long < 1.25 * peak_short + 64_000, (peak_short, peak_long)
    assert peak_long < peak_short + 9 * short * per_step / 100


def test_population_gradient_at_the_largest_floats_is_refused_not_warned():
    """Found by random fuzzing: b·Φ(α) + ‖w‖φ(α) overflowed with a warning at b ≈ 1.7e308."""
    teacher = mf.ParticleMeasure(
        np.array([[0.1401190223039245, 1.7273053712733675, 0.26956915660385816,
                   -1.7399929786955015, -1.3394214723851778]]))
    student = mf.ParticleMeasure(
        np.array([[0.32745326589758483, -0.44673041426688237, 1.0178601227770294,
                   -1.0707288310048229, -0.20384081433846699]]))
    points = np.array([[1.3027846026308534e308, 3.6146201639403113e307, -8.0023482887720315e307,
                        1.3197448229421384e308, 1.7e308],
                       [1.8054818209486344e307, -7.0142623688711354e307, 5.0067308864333372e307,
                        1.0022709611332886e308, -1.4843824333042087e306]])
    est = mf.GaussianPopulationEstimator(teacher)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in (est.grad_first_variation, est.velocity):
            with pytest.raises(ValueError, match="overflow"):
                method(student, points)

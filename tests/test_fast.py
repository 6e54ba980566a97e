"""The compiled SGD engines (meanfield._fast) against the numpy reference of meanfield.sgd."""

import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

from meanfield import _fast, _fast_serial
from meanfield.activations import ACTIVATIONS, Activation
from meanfield.data import Teacher
from meanfield.measure import gaussian, notebook_sphere, notebook_teacher, spawn_rngs
from meanfield.notebook import notebook_initial, notebook_stream
from meanfield.sgd import sgd
from meanfield.streams import ArrayStream, DatasetStream, OnlineStream
from meanfield.trajectory import DivergenceError

pytestmark = pytest.mark.skipif(not _fast.available(), reason="numba is not installed")


def both(*args, **kwargs):
    """The same run with the numpy reference and the compiled engine."""
    ref = sgd(*args, backend="numpy", **kwargs)
    fast = sgd(*args, backend="numba", **kwargs)
    assert ref.config["backend"] == "numpy" and fast.config["backend"].startswith("numba")
    return ref, fast


def test_notebook_experiment_agrees_with_the_reference_over_the_whole_trajectory():
    """The notebook's 500 frames (17 670 steps), one snapshot per frame, both paths."""
    teacher, student, rs = notebook_initial(18)
    stream = notebook_stream(rs, teacher, 500)
    steps = np.concatenate([[0], stream.block_ends()])
    ref, fast = both(student, stream, step=0.025, record_steps=steps, risk=False)
    assert fast.config["backend"] == "numba-serial"
    assert np.max(np.abs(ref.thetas[-1] - ref.thetas[0])) > 0.1  # the particles moved
    np.testing.assert_array_equal(fast.steps, ref.steps)
    np.testing.assert_allclose(fast.thetas, ref.thetas, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.times, ref.times, rtol=0, atol=0)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
@pytest.mark.parametrize("runs", [None, 3])
def test_every_activation_weight_decay_and_ensemble(activation, weight_decay, runs):
    mu = gaussian(17, 3, runs=runs, rng=1)
    teacher = Teacher(notebook_teacher(3, 3, rng=2), activation)
    stream = OnlineStream(teacher, 7, chunk=50)
    kw = {"step": 0.1, "n_steps": 230, "record_every": 23, "weight_decay": weight_decay}
    ref, fast = both(mu, stream, activation=activation, rng=4, **kw)
    assert np.max(np.abs(ref.thetas[-1] - ref.thetas[0])) > 1e-2
    np.testing.assert_allclose(fast.thetas, ref.thetas, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.risks, ref.risks, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize(("m", "d"), [(130, 3), (100, 6)])
def test_wide_engine_every_activation_and_ensemble(activation, m, d):
    """W neurons per vector (m not a multiple of W: padded lanes, which sigmoid would move
    if they were not reset), d in registers or in memory, weight decay: the reference to
    1e-12, and each member of an ensemble is its solo run bitwise."""
    mu = gaussian(m, d, runs=3, rng=1)
    teacher = Teacher(notebook_teacher(3, d, rng=2), activation)
    stream = OnlineStream(teacher, 9, chunk=50)
    kw = {"step": 0.2, "n_steps": 120, "record_every": 30, "weight_decay": 0.1, "rng": 4}
    ref, fast = both(mu, stream, activation=activation, **kw)
    assert fast.config["backend"] == "numba-wide"
    assert np.max(np.abs(ref.thetas[-1] - ref.thetas[0])) > 1e-2
    np.testing.assert_allclose(fast.thetas, ref.thetas, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.risks, ref.risks, rtol=1e-10, atol=1e-14)
    for r, gen in enumerate(spawn_rngs(4, 3)):
        kw_r = {**kw, "rng": gen, "activation": activation, "backend": "numba"}
        solo = sgd(mu.replica(r), stream, **kw_r)
        assert solo.config["backend"] == "numba-wide"
        np.testing.assert_array_equal(fast.thetas[:, r], solo.thetas)


def test_activation_kernels_match_the_numpy_activations():
    _fast._compile()
    u = np.concatenate(
        [
            np.random.default_rng(0).standard_normal(500) * 5,
            [0.0, -0.0, 1e-300, -1e-300, 30.0, -30.0, 40.0, -40.0, 700.0, -700.0, 1e200, -1e200],
        ]
    )[None, :]
    for name, code in _fast.ACTIVATION_CODES.items():
        sig = ACTIVATIONS[name]
        s, ds, only = np.empty_like(u), np.empty_like(u), u.copy()
        _fast_serial._sigma_both(u, s, ds, 1, u.shape[1], code)
        _fast_serial._sigma_rows(only, 1, u.shape[1], code)
        np.testing.assert_array_equal(only, s)
        np.testing.assert_allclose(s, sig.value(u), rtol=4e-16, atol=1e-300, err_msg=name)
        np.testing.assert_allclose(ds, sig.derivative(u), rtol=4e-15, atol=1e-300, err_msg=name)
    nan = np.array([[np.nan]])
    s, ds = np.empty_like(nan), np.empty_like(nan)
    _fast_serial._sigma_both(nan, s, ds, 1, 1, 0)
    assert np.isnan(s[0, 0]) and ds[0, 0] == 0.0  # np.maximum and (u >= 0) on NaN


@pytest.mark.parametrize("kind", ["online", "frames-shared", "arrays-per-member", "dataset"])
def test_ensemble_member_equals_solo_run_bitwise(kind):
    R = 5
    mus = notebook_sphere(20, 2, radius=0.05, runs=R, rng=5)
    teacher = notebook_teacher(4, 2, rng=1)
    g = np.random.default_rng(3)
    xa = g.standard_normal((R, 40, 20, 2))
    ya = g.standard_normal((R, 40, 20))
    data = g.standard_normal((R, 60, 2))

    def stream(r=None):
        if kind == "online":
            return OnlineStream(teacher, 20)
        if kind == "frames-shared":
            return ArrayStream(xa[0], ya[0], block_sizes=[10, 30])
        if kind == "arrays-per-member":
            return ArrayStream(xa if r is None else xa[r], ya if r is None else ya[r])
        return DatasetStream(data if r is None else data[r], target=teacher, epochs=15)

    kw = {"step": 0.025, "n_steps": 40, "record_every": 7, "risk": False, "backend": "numba"}
    ens = sgd(mus, stream(), rng=11, **kw)
    assert ens.config["backend"] == "numba-lanes"
    for r, gen in enumerate(spawn_rngs(11, R)):
        solo = sgd(mus.replica(r), stream(r), rng=gen, **kw)
        assert solo.config["backend"] == "numba-serial"
        np.testing.assert_array_equal(ens.thetas[:, r], solo.thetas)
    assert not np.array_equal(ens.thetas[-1, 0], ens.thetas[-1, 1])
    ref = sgd(mus, stream(), rng=11, **{**kw, "backend": "numpy"})
    np.testing.assert_allclose(ens.thetas, ref.thetas, rtol=0, atol=1e-12)


@pytest.mark.parametrize("activation", sorted(_fast.ACTIVATION_CODES))
@pytest.mark.parametrize(("m", "d", "runs", "shared"), [(7, 1, 11, False), (9, 6, 3, True)])
def test_lanes_engine_equals_serial_runs_bitwise(activation, m, d, runs, shared):
    """W runs per vector: each lane is bitwise its run made alone with the serial engine,
    whatever the activation, d (registers for d ≤ 4, memory beyond), an odd number of
    neurons, a partial block of runs, a shared or per-run stream and weight decay."""
    code = _fast.ACTIVATION_CODES[activation]
    g = np.random.default_rng(code + 10 * d)
    theta = g.standard_normal((runs, m, d + 2))
    masses = g.dirichlet(np.ones(m), size=runs)
    x = g.standard_normal((23, 1 if shared else runs, 5, d))
    y = g.standard_normal((23, 1 if shared else runs, 5))
    lanes, done = _engine_run("lanes", theta, masses, x, y, 0.3, 0.05, act=code)
    assert done == 23
    assert np.max(np.abs(lanes - theta)) > 1e-2
    for r in range(runs):
        xs = x[:, :1] if shared else x[:, r : r + 1]
        ys = y[:, :1] if shared else y[:, r : r + 1]
        solo, _ = _engine_run("serial", theta[r : r + 1], masses[r], xs, ys, 0.3, 0.05, act=code)
        np.testing.assert_array_equal(lanes[r], solo[0], err_msg=f"run {r}")


def _engine_run(kind, theta, masses, x, y, eta, lam, act=0):
    eng = _fast.Engine(act, theta.shape[-2], theta.shape[-1] - 2, x.shape[-2], theta.shape[0])
    eng.kind = kind
    return eng.run(theta, masses, x, y, eta, lam)


def test_engines_for_wide_runs_agree():
    """Several neuron chunks: serial and lanes give the same bits; wide and BLAS agree to
    rounding; all agree with the reference."""
    m, d, batch, n = _fast.CHUNK + 500, 3, 8, 12
    mu = gaussian(m, d, rng=0)
    g = np.random.default_rng(1)
    x = g.standard_normal((n, 1, batch, d))
    y = g.standard_normal((n, 1, batch))
    th = mu.theta[None]
    out = {k: _engine_run(k, th, mu.masses, x, y, 0.5, 0.1) for k in _fast_kinds()}
    for kind, (_, done) in out.items():
        assert done == n, kind
    np.testing.assert_array_equal(out["lanes"][0], out["serial"][0])  # several chunks too
    ref = sgd(
        mu, ArrayStream(x[:, 0], y[:, 0]), step=0.5, weight_decay=0.1, risk=False, backend="numpy"
    )
    assert np.max(np.abs(ref.thetas[-1] - mu.theta)) > 1e-3
    for kind in out:
        np.testing.assert_allclose(out[kind][0][0], ref.thetas[-1], rtol=0, atol=1e-12)


def _fast_kinds():
    return list(_fast.KINDS)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_blas_engine_for_large_d(activation, monkeypatch):
    """B·m·d and d past the BLAS thresholds (lowered to keep the test fast): the engine
    picks BLAS and agrees with numpy."""
    m, d, batch = 300, _fast._BLAS_MIN_D + 4, 60
    assert m * batch * d < _fast._BLAS_WORK
    monkeypatch.setattr(_fast, "_BLAS_WORK", m * batch * d)
    mu = gaussian(m, d, rng=2)
    teacher = Teacher(notebook_teacher(3, d, rng=3), activation)
    stream = OnlineStream(teacher, batch, chunk=16)
    kw = {"step": 0.2, "n_steps": 40, "record_every": 10, "weight_decay": 0.01, "risk": False}
    ref, fast = both(mu, stream, activation=activation, rng=5, **kw)
    assert fast.config["backend"] == "numba-blas"
    assert np.max(np.abs(ref.thetas[-1] - ref.thetas[0])) > 1e-3
    np.testing.assert_allclose(fast.thetas, ref.thetas, rtol=0, atol=1e-12)


def test_blas_engine_tiles_on_threads_give_the_same_bits(monkeypatch):
    """Several tiles of the BLAS engine's element-wise work, shared among threads or not:
    the same bits, and the reference to 1e-12 (weight decay, two runs, one stream each)."""
    from meanfield import _fast_blas

    m, d, batch = 4 * _fast_blas.TILE + 37, _fast._BLAS_MIN_D, 6
    monkeypatch.setattr(_fast, "_BLAS_WORK", m * batch * d)
    mu = gaussian(m, d, runs=2, rng=4)
    g = np.random.default_rng(5)
    x = g.standard_normal((2, 9, batch, d))
    y = g.standard_normal((2, 9, batch))
    kw = {"step": 0.4, "weight_decay": 0.05, "risk": False, "record_every": 3}
    fast = sgd(mu, ArrayStream(x, y), backend="numba", **kw)
    assert fast.config["backend"] == "numba-blas"
    monkeypatch.setattr(_fast, "_workers", lambda: 1)
    one = sgd(mu, ArrayStream(x, y), backend="numba", **kw)
    np.testing.assert_array_equal(one.thetas, fast.thetas)
    ref = sgd(mu, ArrayStream(x, y), backend="numpy", **kw)
    assert np.max(np.abs(ref.thetas[-1] - ref.thetas[0])) > 1e-3
    np.testing.assert_allclose(fast.thetas, ref.thetas, rtol=0, atol=1e-12)


def test_blas_engine_error_in_one_thread_stops_the_others(monkeypatch):
    """The BLAS engine's threads wait for each other at a spin barrier: an exception in
    one of them must release the others and reach the caller, not hang the run."""
    from meanfield import _fast_blas

    monkeypatch.setattr(_fast, "_BLAS_WORK", 1)
    monkeypatch.setattr(_fast, "_workers", lambda: 2)
    real = _fast_blas._kernel

    def failing(act):
        kernel = real(act)

        def share(*args):
            if threading.current_thread().name.startswith("meanfield"):  # the pool's thread
                raise RuntimeError("boom")
            return kernel(*args)

        return share

    monkeypatch.setattr(_fast_blas, "_kernel", failing)
    m, d = 2 * _fast_blas.TILE, _fast._BLAS_MIN_D
    mu = gaussian(m, d, rng=0)
    g = np.random.default_rng(1)
    stream = ArrayStream(g.standard_normal((5, 4, d)), g.standard_normal((5, 4)))
    outcome = []

    def call():
        try:
            sgd(mu, stream, step=0.1, risk=False, backend="numba")
        except RuntimeError as err:
            outcome.append(str(err))

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the engine hung"
    assert outcome == ["boom"]


@pytest.mark.parametrize("runs", [None, 2])
@pytest.mark.parametrize("m", [20, 100])
def test_divergence_is_reported_at_the_same_step(runs, m):
    mus = notebook_sphere(m, 2, radius=1.0, runs=runs, rng=3)
    teacher = notebook_teacher(4, 2, rng=1)
    errs = {}
    for backend in ("numpy", "numba"):
        with pytest.raises(DivergenceError, match="non-finite") as info:
            sgd(
                mus,
                OnlineStream(teacher, 20),
                step=1e6,
                n_steps=1000,
                rng=0,
                record_every=50,
                backend=backend,
            )
        errs[backend] = info.value
    ref, fast = errs["numpy"], errs["numba"]
    assert fast.step == ref.step > 1
    np.testing.assert_array_equal(fast.trajectory.steps, ref.trajectory.steps)
    np.testing.assert_allclose(fast.trajectory.thetas, ref.trajectory.thetas, rtol=1e-12)
    np.testing.assert_array_equal(fast.replicas, ref.replicas)
    assert np.all(np.isfinite(fast.trajectory.thetas))


def test_engine_stops_before_the_first_non_finite_step():
    mu = notebook_sphere(20, 2, radius=1.0, rng=3)
    g = np.random.default_rng(0)
    x = g.standard_normal((30, 1, 20, 2)) * 1e3
    y = g.standard_normal((30, 1, 20))
    for kind in _fast_kinds():
        theta, done = _engine_run(kind, mu.theta[None], mu.masses, x, y, 1e6, 0.0)
        assert 0 < done < 30, kind
        assert np.all(np.isfinite(theta))
        again, done2 = _engine_run(kind, mu.theta[None], mu.masses, x[:done], y[:done], 1e6, 0.0)
        assert done2 == done
        np.testing.assert_array_equal(theta, again)


def test_backend_choice_and_validation():
    mu = notebook_sphere(20, 2, rng=0)
    stream = OnlineStream(notebook_teacher(4, 2, rng=1), 20)
    kw = {"step": 0.025, "n_steps": 5, "rng": 0, "risk": False}
    assert sgd(mu, stream, **kw).config["backend"] == "numba-serial"  # auto
    wide = notebook_sphere(_fast._WIDE_MIN_M, 2, rng=0)
    assert sgd(wide, stream, **kw).config["backend"] == "numba-wide"
    custom = Activation("relu", ACTIVATIONS["relu"].value, ACTIVATIONS["relu"].derivative, 1)
    assert sgd(mu, stream, activation=custom, **kw).config["backend"] == "numpy"
    with pytest.raises(ValueError, match="custom activation"):
        sgd(mu, stream, activation=custom, backend="numba", **kw)
    with pytest.raises(ValueError, match="backend must be"):
        sgd(mu, stream, backend="cuda", **kw)


def test_without_numba_auto_falls_back_to_numpy(monkeypatch):
    monkeypatch.setattr(_fast, "HAVE_NUMBA", False)
    mu = notebook_sphere(20, 2, rng=0)
    stream = OnlineStream(notebook_teacher(4, 2, rng=1), 20)
    kw = {"step": 0.025, "n_steps": 5, "rng": 0, "risk": False}
    assert not _fast.available()
    assert sgd(mu, stream, **kw).config["backend"] == "numpy"
    with pytest.raises(ImportError, match="needs numba"):
        sgd(mu, stream, backend="numba", **kw)


def test_package_imports_and_runs_when_numba_is_missing():
    """A fresh interpreter where ``import numba`` fails: meanfield imports, SGD runs."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["numba"] = None  # import numba now raises ImportError
        import meanfield
        from meanfield import _fast, notebook_sphere, notebook_teacher, online_sgd
        assert not _fast.available()
        mu = notebook_sphere(20, 2, rng=0)
        traj = online_sgd(mu, notebook_teacher(4, 2, rng=1), step=0.025, n_steps=50, rng=0)
        assert traj.config["backend"] == "numpy", traj.config["backend"]
        try:
            online_sgd(mu, notebook_teacher(4, 2, rng=1), step=0.025, n_steps=5, backend="numba")
        except ImportError:
            print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def _ensemble_in_child(seed):
    mus = notebook_sphere(20, 2, radius=0.05, runs=3, rng=seed)
    traj = sgd(mus, OnlineStream(notebook_teacher(4, 2, rng=1), 20), step=0.025, n_steps=30, rng=0)
    return traj.config["backend"], traj.thetas[-1]


def test_ensembles_work_in_forked_workers():
    """No OpenMP runtime: a process that ran an ensemble can fork workers that run more."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    here = _ensemble_in_child(7)
    with warnings.catch_warnings():  # Python ≥ 3.12 warns about fork() with threads alive
        warnings.simplefilter("ignore", DeprecationWarning)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as ex:
            child = ex.submit(_ensemble_in_child, 7).result(timeout=120)
    assert here[0] == child[0] == "numba-lanes"
    np.testing.assert_array_equal(child[1], here[1])

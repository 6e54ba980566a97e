import json
import os
import stat

import numpy as np
import pytest

from meanfield import notebook_sphere, notebook_teacher
from meanfield._io import atomic_path, atomic_write_bytes, atomic_write_text
from meanfield._recorder import Recorder, progress_bar
from meanfield.sgd import online_sgd
from meanfield.trajectory import Trajectory, describe_rng, load_trajectory


@pytest.fixture(scope="module")
def run():
    teacher = notebook_teacher(4, 2, rng=1)
    mus = notebook_sphere(6, 2, radius=0.1, runs=2, rng=2)
    return online_sgd(
        mus,
        teacher,
        step=0.05,
        n_steps=200,
        rng=7,
        record_every=50,
        config={"note": "test", "grid": [1, 2]},
    )


def test_save_load_round_trip(run, tmp_path):
    path = run.save(tmp_path / "run.npz")
    loaded = load_trajectory(path)
    assert loaded.equals(run)
    assert loaded.info == run.info and loaded.config["note"] == "test"
    np.testing.assert_array_equal(loaded.thetas, run.thetas)
    np.testing.assert_array_equal(loaded.teacher.theta, run.teacher.theta)
    assert loaded.seed == 7 and loaded.version == run.version != ""
    # a plain numpy reader sees the arrays and one JSON metadata string
    with np.load(path, allow_pickle=False) as data:
        assert {"times", "thetas", "masses", "risks", "steps", "metadata"} <= set(data.files)
        meta = json.loads(str(data["metadata"][()]))
    assert meta["format"] == "meanfield.trajectory" and meta["config"]["dynamics"] == "sgd"
    assert not [p for p in os.listdir(tmp_path) if p != "run.npz"]  # no temporary file left


def test_save_appends_suffix_and_loads_without_teacher(tmp_path):
    th = np.random.default_rng(0).standard_normal((3, 5, 4))
    traj = Trajectory(times=[0.0, 1.0, 2.0], thetas=th, masses=np.full(5, 0.2))
    path = traj.save(tmp_path / "plain")
    assert path.name == "plain.npz"
    back = Trajectory.load(path)
    assert back.equals(traj) and back.teacher is None and np.all(np.isnan(back.risks))
    assert not back.equals(
        Trajectory(times=[0.0, 1.0, 2.0], thetas=th + 1e-12, masses=np.full(5, 0.2))
    )


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a meanfield trajectory"):
        Trajectory.load(tmp_path / "other.npz")


def test_views(run):
    assert len(run) == 5 and run.m == 6 and run.d == 2 and run.batch_shape == (2,)
    one = run.replica(1)
    np.testing.assert_array_equal(one.thetas, run.thetas[:, 1])
    np.testing.assert_array_equal(one.risks, run.risks[:, 1])
    np.testing.assert_array_equal(run.final.theta, run.thetas[-1])
    np.testing.assert_array_equal(run.initial.theta, run.thetas[0])
    th = run.thetas
    np.testing.assert_allclose(
        run.balance(),
        th[..., 0] ** 2 - th[..., 1] ** 2 - th[..., 2] ** 2 - th[..., 3] ** 2,
        rtol=1e-14,
    )
    np.testing.assert_allclose(run.effective_neurons()[..., 1], th[..., 0] * th[..., 2])
    with pytest.raises(ValueError, match="ensemble"):
        one.replica(0)
    assert not run.thetas.flags.writeable


def test_validation():
    th = np.zeros((3, 5, 4))
    with pytest.raises(ValueError, match="T=2"):
        Trajectory(times=[0.0, 1.0], thetas=th, masses=np.full(5, 0.2))
    with pytest.raises(ValueError, match="risks must have shape"):
        Trajectory(times=[0.0, 1.0, 2.0], thetas=th, masses=np.full(5, 0.2), risks=np.zeros(4))
    with pytest.raises(ValueError, match="nondecreasing"):
        Trajectory(times=[0.0, 2.0, 1.0], thetas=th, masses=np.full(5, 0.2))
    with pytest.raises(TypeError, match="config"):
        Trajectory(times=[0.0, 1.0, 2.0], thetas=th, masses=np.full(5, 0.2), config=[1])


def test_describe_rng_replays_a_generator():
    assert describe_rng(5) == 5 and describe_rng(None) is None
    seq = np.random.SeedSequence(123)
    assert describe_rng(seq) == {"entropy": 123, "spawn_key": []}
    gen = np.random.default_rng(9)
    gen.standard_normal(10)
    record = json.loads(json.dumps(describe_rng(gen)))
    fresh = np.random.default_rng()
    fresh.bit_generator.state = record["bit_generator_state"]
    np.testing.assert_array_equal(fresh.standard_normal(5), gen.standard_normal(5))


def test_progress_bar_silent_off_terminal():
    # under pytest stderr is captured, i.e. not a terminal: the default bar is disabled
    with progress_bar(10, progress=None, desc="x", unit="step") as bar:
        assert bar.disable
    with progress_bar(10, progress=True, desc="x", unit="step") as bar:
        assert not bar.disable


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".txt"
        tmp.write_text("half-written")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
    atomic_write_bytes(tmp_path / "sub" / "b.bin", b"\x00\x01")
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~umask
    with pytest.raises(TypeError, match="text must be a str"):
        atomic_write_text(target, b"bytes")


def _recorder(capacity):
    masses = np.full((2, 3), 1 / 3)
    return Recorder(masses, lambda th: np.sum(th**2, axis=(-1, -2)), {"activation": "relu"}, 2,
                    capacity=capacity)


@pytest.mark.parametrize("capacity", [None, 2, 3, 5])
def test_recorder_buffer_gives_the_same_trajectory(capacity):
    """Snapshots copied into a preallocated buffer (which the trajectory takes over)
    or kept apart: the same trajectory, and later changes to the caller's array do not
    leak into it."""
    rec = _recorder(capacity)
    theta = np.arange(24.0).reshape(2, 3, 4)
    for k in range(3):
        rec.record(k, 0.5 * k, theta)
        theta += 1.0  # the caller reuses its array
    traj = rec.build({"n": 3})
    expected = np.arange(24.0).reshape(2, 3, 4) + np.arange(3.0)[:, None, None, None]
    np.testing.assert_array_equal(traj.thetas, expected)
    np.testing.assert_array_equal(traj.risks, np.sum(expected**2, axis=(-1, -2)))
    np.testing.assert_array_equal(traj.steps, [0, 1, 2])
    assert not traj.thetas.flags.writeable
    if capacity == 3:  # exactly full: the buffer itself, no second copy
        assert traj.thetas is rec._buf


def test_recorder_keeps_the_last_finite_state_past_its_capacity():
    rec = _recorder(2)
    theta = np.ones((2, 3, 4))
    rec.record(0, 0.0, theta)
    rec.record(5, 1.0, 2 * theta)
    err = rec.diverged(6, 1.2, (5, 1.1, 3 * theta), "boom", None)
    np.testing.assert_array_equal(err.trajectory.thetas[:, 0, 0, 0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(err.trajectory.steps, [0, 5, 5])

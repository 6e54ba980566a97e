import numpy as np
import pytest
from hypothesis import given, settings

from meanfield import (
    ParticleMeasure,
    SampleEstimator,
    gaussian,
    notebook_frame_sizes,
    notebook_sphere,
    notebook_teacher,
    sample_inputs,
    spawn_rngs,
)
from meanfield.data import Teacher
from meanfield.flow import euler
from meanfield.network import feature_grad, output
from meanfield.sgd import (
    minibatch_sgd,
    online_sgd,
    sgd,
    step_from_tau,
    tau_from_step,
)
from meanfield.streams import (
    RISK_SAMPLES,
    RISK_SEED,
    ArrayStream,
    DatasetStream,
    FrameStream,
    OnlineStream,
)
from meanfield.trajectory import DivergenceError
from tests.strategies import activations, dims, seeds, widths


@pytest.fixture(scope="module")
def teacher():
    return notebook_teacher(4, 2, rng=1)


@pytest.fixture(scope="module")
def student():
    return notebook_sphere(20, 2, radius=0.05, rng=2)


def test_step_conversion():
    assert step_from_tau(0.5, 20) == 0.025
    assert tau_from_step(0.025, 20) == pytest.approx(0.5, rel=1e-15)
    with pytest.raises(ValueError, match="tau"):
        step_from_tau(-1.0, 20)
    for convert, first in ((step_from_tau, 0.5), (tau_from_step, 0.025)):
        with pytest.raises(TypeError, match="m must be an integer"):  # not truncated to 2
            convert(first, 2.5)
        with pytest.raises(ValueError, match="m must be >= 1"):
            convert(first, 0)


def test_entry_points_check_their_arguments_first(teacher):
    with pytest.raises(TypeError, match="measure must be a ParticleMeasure"):
        online_sgd(np.zeros((3, 4)), teacher, step=0.1, n_steps=1)
    x, y = np.zeros((4, 3, 2)), np.zeros((4, 3))
    for bad in ([-1, 5], [0, 4], [], [4.0], [[4]], [1, 2]):
        with pytest.raises(ValueError, match="block_sizes must be positive integers"):
            ArrayStream(x, y, block_sizes=bad)
    stream = ArrayStream.from_blocks([(x[:0], y[:0]), (x, y)])  # an empty block: no steps
    np.testing.assert_array_equal(stream.block_ends(), [4])


def test_one_step_matches_the_formula(teacher, student):
    """θ ← θ − η (mean_k r_k ∇φ(θ, x_k) + λθ), computed independently with feature_grad."""
    x = np.random.default_rng(0).standard_normal((1, 20, 2))
    y = output(teacher, x[0])[None]
    eta, lam = 0.3, 0.1
    traj = sgd(student, ArrayStream(x, y), step=eta, weight_decay=lam, risk=False)
    r = output(student, x[0]) - y[0]
    grad = np.einsum("k,kid->id", r, feature_grad(student, x[0])) / 20
    np.testing.assert_allclose(
        traj.thetas[-1], student.theta - eta * (grad + lam * student.theta), rtol=1e-13, atol=1e-16
    )
    assert traj.config["weight_decay"] == lam and np.all(np.isnan(traj.risks))


def test_same_rng_gives_bitwise_identical_runs(teacher, student):
    a = online_sgd(student, teacher, step=0.025, n_steps=500, rng=3, record_every=50)
    b = online_sgd(student, teacher, step=0.025, n_steps=500, rng=3, record_every=50)
    c = online_sgd(student, teacher, step=0.025, n_steps=500, rng=4, record_every=50)
    assert a.equals(b)
    assert not np.array_equal(a.thetas[-1], c.thetas[-1])
    assert a.seed == 3 and a.config["stream"]["kind"] == "OnlineStream"


def test_online_samples_do_not_depend_on_the_chunk(teacher, student):
    a = sgd(student, OnlineStream(teacher, chunk=7), step=0.025, n_steps=100, rng=3, risk=False)
    b = sgd(student, OnlineStream(teacher, chunk=256), step=0.025, n_steps=100, rng=3, risk=False)
    np.testing.assert_array_equal(a.thetas, b.thetas)


@pytest.mark.parametrize("kind", ["online", "frames", "dataset", "teachers"])
def test_ensemble_member_equals_solo_run_bitwise(kind, teacher):
    R = 3
    mus = notebook_sphere(20, 2, radius=0.05, runs=R, rng=5)
    teachers = notebook_sphere(4, 2, radius=1.0, runs=R, rng=8)
    data = sample_inputs(3 * 60, 2, rng=9).reshape(R, 60, 2)

    def stream(r=None):
        if kind == "online":
            return OnlineStream(teacher, 20)
        if kind == "frames":
            return FrameStream.notebook(teacher, 4)
        if kind == "teachers":
            return OnlineStream(teachers if r is None else teachers.replica(r), 20)
        return DatasetStream(data if r is None else data[r], target=teacher, epochs=15)

    kw = {"step": 0.025, "n_steps": 40, "record_every": 5}
    ens = sgd(mus, stream(), rng=11, **kw)
    assert ens.batch_shape == (R,)
    for r, gen in enumerate(spawn_rngs(11, R)):
        solo = sgd(mus.replica(r), stream(r), rng=gen, **kw)
        np.testing.assert_array_equal(ens.thetas[:, r], solo.thetas)
        np.testing.assert_allclose(ens.risks[:, r], solo.risks, rtol=1e-13)
        assert ens.replica(r).thetas.shape == solo.thetas.shape
    # the members really are independent runs
    assert not np.array_equal(ens.thetas[-1, 0], ens.thetas[-1, 1])


def test_full_batch_minibatch_sgd_is_gd(teacher, student):
    """B = n: every epoch is one full-batch step, i.e. Euler on the empirical estimator."""
    mu = notebook_sphere(20, 2, radius=0.5, rng=2)
    x = sample_inputs(100, 2, rng=4)
    traj = minibatch_sgd(
        mu, x, target=teacher, step=0.05, epochs=30, batch_size=100, rng=0, record_every=10
    )
    gd = euler(mu, SampleEstimator(x, teacher), step=0.05, n_steps=30, record_every=10)
    np.testing.assert_allclose(traj.thetas, gd.thetas, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(traj.risks, gd.risks, rtol=1e-10)  # default risk: the dataset
    assert traj.config["risk"] == "empirical(dataset)"


def test_dataset_epochs_use_each_sample_once(teacher):
    x = sample_inputs(50, 2, rng=4)
    stream = DatasetStream(x, target=teacher, batch_size=20, epochs=3)
    assert stream.n_steps == 6
    np.testing.assert_array_equal(stream.block_ends(), [2, 4, 6])
    blocks = list(stream.blocks(np.random.default_rng(0), None))
    assert len(blocks) == 3
    seen = [b[0].reshape(-1, 2) for b in blocks]
    for s in seen:  # 40 distinct samples of the dataset, labels attached
        assert len({tuple(v) for v in s}) == 40
        assert {tuple(v) for v in s} <= {tuple(v) for v in x}
    assert not np.array_equal(seen[0], seen[1])  # reshuffled
    np.testing.assert_allclose(blocks[0][1].ravel(), output(teacher, seen[0]))


def test_frame_stream_follows_the_notebook_schedule(teacher):
    stream = FrameStream.notebook(teacher, 500, repeat_first=True)
    sizes = notebook_frame_sizes(500, repeat_first=True)
    assert stream.n_steps == 17670
    np.testing.assert_array_equal(stream.block_ends(), np.cumsum(sizes // 20))
    gen = np.random.default_rng(0)
    x0, y0 = next(stream.blocks(gen, None))
    # frame 0: 200 inputs drawn, then a permutation, then 10 batches of 20
    g = np.random.default_rng(0)
    xr = g.standard_normal((200, 2))
    perm = g.permutation(200)
    np.testing.assert_array_equal(x0, xr[perm].reshape(10, 20, 2))
    np.testing.assert_allclose(y0, output(teacher, xr[perm]).reshape(10, 20))


def test_thinned_records_and_risk_options(teacher, student):
    est = SampleEstimator(sample_inputs(500, 2, rng=1), teacher)
    traj = online_sgd(
        student, teacher, step=0.025, n_steps=3000, rng=1, record_every=1000, risk=est
    )
    np.testing.assert_array_equal(traj.steps, [0, 1000, 2000, 3000])
    np.testing.assert_allclose(traj.times, 0.025 * traj.steps)
    np.testing.assert_allclose(traj.risks, est.risk(ParticleMeasure(traj.thetas, traj.masses)))
    # default risk: the fixed Monte-Carlo sample
    default = online_sgd(student, teacher, step=0.025, n_steps=3000, rng=1, record_every=1000)
    mc = SampleEstimator(sample_inputs(RISK_SAMPLES, 2, rng=RISK_SEED), teacher)
    np.testing.assert_allclose(
        default.risks, mc.risk(ParticleMeasure(default.thetas, default.masses)), rtol=1e-12
    )
    assert default.risks[-1] < default.risks[0]
    log = online_sgd(student, teacher, step=0.025, n_steps=3000, rng=1, n_snapshots=20, risk=False)
    assert len(log) <= 20 and log.steps[-1] == 3000


def test_divergence_raises_with_the_partial_trajectory(teacher):
    mus = notebook_sphere(20, 2, radius=1.0, runs=2, rng=3)
    with pytest.raises(DivergenceError, match="non-finite") as info:
        online_sgd(mus, teacher, step=1e6, n_steps=1000, rng=0, record_every=1)
    err = info.value
    assert 1 <= len(err.trajectory) <= err.step
    assert np.all(np.isfinite(err.trajectory.thetas)) and np.all(np.isfinite(err.trajectory.risks))
    assert err.trajectory.batch_shape == (2,) and err.trajectory.info["diverged"]
    assert err.replicas.size >= 1 and set(err.replicas.tolist()) <= {0, 1}


def test_risk_divergence_is_caught(teacher, student):
    def bad_risk(measure):
        return np.where(np.abs(measure.theta).max() > 0.0, np.inf, 0.0)

    with pytest.raises(DivergenceError, match="risk"):
        online_sgd(student, teacher, step=0.025, n_steps=10, rng=0, risk=bad_risk)


def test_validation(teacher, student):
    with pytest.raises(ValueError, match="n_steps is required"):
        sgd(student, OnlineStream(teacher), step=0.1)
    x = np.zeros((5, 20, 2))
    with pytest.raises(ValueError, match="<= the stream's 5"):
        sgd(student, ArrayStream(x, np.zeros((5, 20))), step=0.1, n_steps=6)
    with pytest.raises(ValueError, match="y must have shape"):
        ArrayStream(x, np.zeros((5, 21)))
    with pytest.raises(ValueError, match="d=3"):
        sgd(notebook_sphere(3, 3, rng=0), OnlineStream(teacher), step=0.1, n_steps=1)
    with pytest.raises(TypeError, match="SampleStream"):
        sgd(student, "stream", step=0.1, n_steps=1)
    with pytest.raises(ValueError, match="ensemble axes"):
        sgd(student, OnlineStream(notebook_sphere(4, 2, runs=2, rng=0)), step=0.1, n_steps=1)
    with pytest.raises(ValueError, match="at least batch_size"):
        DatasetStream(np.zeros((10, 2)), np.zeros(10), batch_size=20)
    with pytest.raises(ValueError, match="labels y or a target"):
        DatasetStream(np.zeros((40, 2)))
    with pytest.raises(ValueError, match="sizes"):
        FrameStream([10], teacher, 20)
    with pytest.raises(ValueError, match="law"):
        OnlineStream(teacher, law="uniform")
    with pytest.raises(ValueError, match="True"):
        sgd(student, ArrayStream(x, np.zeros((5, 20))), step=0.1, risk=True)


def test_sphere_law_and_callable_target(student):
    stream = OnlineStream(lambda x: np.sin(x[..., 0]), 10, d=2, law="sphere", radius=2.0)
    x, y = next(stream.blocks(np.random.default_rng(0), None))
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 2.0)
    np.testing.assert_allclose(y, np.sin(x[..., 0]))
    traj = sgd(student, stream, step=0.01, n_steps=20, rng=0)
    assert traj.teacher is None and np.all(np.isfinite(traj.risks))
    assert isinstance(OnlineStream(notebook_teacher(rng=0)).target, Teacher)


@given(seed=seeds, activation=activations, d=dims, m=widths)
@settings(max_examples=20, deadline=None)
def test_sgd_is_equivariant_under_permuting_particles(seed, activation, d, m):
    """Relabelling the particles relabels the trajectory (the dynamics act on the measure)."""
    g = np.random.default_rng(seed)
    mu = gaussian(m, d, rng=g)
    perm = g.permutation(m)
    teacher = notebook_teacher(2, d, rng=g)
    kw = {"step": 0.05, "n_steps": 30, "record_every": 10, "activation": activation}
    stream = OnlineStream(Teacher(teacher, activation), 5)
    a = sgd(mu, stream, rng=seed, **kw)
    b = sgd(ParticleMeasure(mu.theta[perm]), stream, rng=seed, **kw)
    np.testing.assert_allclose(b.thetas, a.thetas[:, perm], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.risks, a.risks, rtol=1e-10, atol=1e-15)

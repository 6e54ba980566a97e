"""The toolkit against a direct, loop-based transcription of the user's notebook.

The classes below copy ``shared/seed/notebook.txt`` (``Neuron``, ``Network``: ``grad``,
``batch_step``, ``sgd_train``, ``gen_sample``) line by line, with two changes: the
global ``np.random`` calls go to an explicit ``RandomState`` passed in, and the global
input dimension ``d`` is a parameter (the notebook's 2 by default).  This is the one
transcription of the notebook in the tests: the initialisation laws
(:mod:`meanfield.measure`), the network (:mod:`meanfield.network`) and the dynamics are
all checked against it here.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meanfield import ParticleMeasure, notebook_frame_sizes
from meanfield.measure import notebook_sphere_from_normals, notebook_teacher
from meanfield.network import output
from meanfield.notebook import NOTEBOOK, notebook_initial, notebook_run, notebook_stream
from meanfield.sgd import sgd, step_from_tau
from meanfield.streams import ArrayStream
from tests.strategies import dims, widths

D = 2


def relu(x):
    if x >= 0:
        return x
    return 0.0


def drelu(x):
    if x >= 0:
        return 1.0
    return 0.0


class Neuron:
    def __init__(self, rs, d=D):
        a = rs.normal()
        w = rs.normal(size=d)
        b = rs.normal()
        norm = np.linalg.norm(np.concatenate([np.array([b]), w]), 2)
        self.a = a
        self.w = w / norm
        self.b = b / norm

    def set_weights(self, a, w, b):
        self.a = a
        self.w = w.copy()
        self.b = b

    def forward(self, x):
        return self.a * relu(self.w.dot(x) + self.b)


class Network:
    def __init__(self, width, rs, d=D):
        self.rs = rs
        self.width = width
        self.d = d
        self.neurons = [Neuron(rs, d) for i in range(width)]

    def small_sphere(self, R):
        for nr in self.neurons:
            norm = 1.0 / R * np.linalg.norm(np.concatenate([np.array([nr.b]), nr.w]), 2)
            nr.set_weights(nr.a, nr.w / norm, nr.b / norm)

    def output(self, x):
        return np.mean([n.forward(x) for n in self.neurons])

    def grad(self, x, y):
        d = self.output(x) - y
        s = np.array([relu(n.w.dot(x) + n.b) for n in self.neurons])
        ds = np.array([drelu(n.w.dot(x) + n.b) for n in self.neurons])
        ga = 1.0 / self.width * d * s
        gb = 1.0 / self.width * d * np.array([self.neurons[i].a * ds[i] for i in range(self.width)])
        gw = np.array([gb[i] * x for i in range(self.width)])
        return ga, gw, gb

    def batch_step(self, X, Y, tau):
        ba = X.shape[0]
        Ga, Gw, Gb = (
            np.zeros((ba, self.width)),
            np.zeros((ba, self.width, self.d)),
            np.zeros((ba, self.width)),
        )
        for i in range(ba):
            Ga[i], Gw[i], Gb[i] = self.grad(X[i], Y[i])
        ga, gw, gb = Ga.mean(axis=0), Gw.mean(axis=0), Gb.mean(axis=0)
        for i in range(self.width):
            nr = self.neurons[i]
            nr.set_weights(nr.a - tau * ga[i], nr.w - tau * gw[i], nr.b - tau * gb[i])

    def sgd_train(self, X, Y, tau, epochs, batch):
        for _e in range(epochs):
            pm = self.rs.permutation(X.shape[0])
            X = np.array([X[pm[i]] for i in range(X.shape[0])])
            Y = np.array([Y[pm[i]] for i in range(Y.shape[0])])
            nbatch = X.shape[0] // batch
            subX = np.split(X, nbatch)
            subY = np.split(Y, nbatch)
            for s in range(len(subX)):
                self.batch_step(subX[s], subY[s], tau)

    def gen_sample(self, s):
        X = self.rs.normal(size=(s, self.d))
        Y = np.zeros(s)
        for i in range(s):
            Y[i] = self.output(X[i])
        return X, Y

    def theta(self):
        return np.array([[n.a, *n.w, n.b] for n in self.neurons])


def notebook_setup(seed=18):
    rs = np.random.RandomState(seed)
    gen_net = Network(4, rs)
    net = Network(20, rs)
    net.small_sphere(0.05)
    return rs, gen_net, net


def network_with_weights(theta):
    """The notebook's ``Network`` whose neurons are given the rows ``[a, w, b]`` of theta."""
    net = Network(len(theta), np.random.RandomState(0), d=theta.shape[-1] - 2)
    for nr, row in zip(net.neurons, theta, strict=True):
        nr.set_weights(row[0], row[1:-1], row[-1])
    return net


# -- initialisation (meanfield.measure) ------------------------------------------------
def test_initial_weights_match_the_notebook_bitwise():
    _, gen_net, net = notebook_setup()
    teacher, student, _ = notebook_initial(18)
    np.testing.assert_array_equal(teacher.theta, gen_net.theta())
    np.testing.assert_array_equal(student.theta, net.theta())
    np.testing.assert_allclose(np.linalg.norm(student.theta[:, 1:], axis=1), 0.05, rtol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(teacher.theta[:, 1:], axis=1), 1.0, rtol=1e-14)


def test_notebook_teacher_and_student_draws_are_bitwise_the_notebooks():
    # np.random.seed(18); gen_net = Network(4); net = Network(20); net.small_sphere(0.05)
    _, gen_net, net = notebook_setup()
    rs = np.random.RandomState(18)
    z_teacher = rs.normal(size=(4, D + 2))
    z_student = rs.normal(size=(20, D + 2))
    np.testing.assert_array_equal(notebook_sphere_from_normals(z_teacher, 1.0), gen_net.theta())
    np.testing.assert_array_equal(notebook_sphere_from_normals(z_student, 0.05), net.theta())


@given(seed=st.integers(0, 2**31 - 1), d=dims, m=widths, radius=st.sampled_from([1.0, 0.05, 3.0]))
def test_notebook_sphere_from_normals_replays_notebook_for_any_seed(seed, d, m, radius):
    net = Network(m, np.random.RandomState(seed), d)
    if radius != 1.0:
        net.small_sphere(radius)
    z = np.random.RandomState(seed).normal(size=(m, d + 2))
    got = notebook_sphere_from_normals(z, radius)
    np.testing.assert_array_equal(got, net.theta())
    np.testing.assert_array_equal(got[:, 0], z[:, 0])  # a is untouched
    np.testing.assert_allclose(np.linalg.norm(got[:, 1:], axis=1), radius, rtol=1e-14)


# -- the network f_μ (meanfield.network) -----------------------------------------------
def test_output_of_notebook_teacher_equals_notebook_output():
    # np.random.seed(18); gen_net = Network(4); later gen_net.gen_sample(s) draws
    # X = np.random.normal(size=(s, d)) and Y[i] = gen_net.output(X[i]).
    _, gen_net, _ = notebook_setup()
    X, Y = gen_net.gen_sample(300)
    nu = ParticleMeasure(gen_net.theta())
    np.testing.assert_allclose(output(nu, X), Y, rtol=1e-13, atol=1e-15)
    assert np.count_nonzero(Y) > 100  # the comparison is not vacuous


@given(seed=st.integers(0, 2**31 - 1), m0=st.integers(1, 6))
def test_output_of_notebook_teacher_law_equals_notebook_output(seed, m0):
    nu = notebook_teacher(m0, 2, rng=seed)
    teacher = network_with_weights(nu.theta)
    X = np.random.default_rng(seed + 1).standard_normal((20, 2))
    Y = np.array([teacher.output(x) for x in X])
    np.testing.assert_allclose(output(nu, X), Y, rtol=1e-13, atol=1e-15)


# -- the dynamics (meanfield.sgd, meanfield.notebook) ----------------------------------


def test_online_sgd_reproduces_batch_step_step_by_step():
    """The notebook convention (η = τ/m) equals the transcription's batch_step, to 1e-12."""
    _, gen_net, net = notebook_setup(5)
    teacher = ParticleMeasure(gen_net.theta())
    student = ParticleMeasure(net.theta())
    n_steps, batch, tau = 300, 20, 0.5
    x = np.random.default_rng(11).standard_normal((n_steps, batch, D))
    y = np.array([[gen_net.output(xi) for xi in xb] for xb in x])
    traj = sgd(
        student,
        ArrayStream(x, y, target=teacher),
        step=step_from_tau(tau, 20),
        record_every=1,
        risk=False,
    )
    assert len(traj) == n_steps + 1
    ref = [net.theta()]
    for k in range(n_steps):
        net.batch_step(x[k], y[k], tau)
        ref.append(net.theta())
    ref = np.array(ref)
    assert np.max(np.abs(ref[-1] - ref[0])) > 1e-2  # the particles really moved
    np.testing.assert_allclose(traj.thetas, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(traj.times, 0.025 * np.arange(n_steps + 1), rtol=1e-15)


def test_labels_of_the_stream_match_the_notebook_teacher():
    rs, gen_net, _ = notebook_setup()
    teacher, _, rs2 = notebook_initial(18)
    stream = notebook_stream(rs2, teacher, 2, repeat_first=False)
    x_nb, y_nb = gen_net.gen_sample(200)
    perm = rs.permutation(200)
    np.testing.assert_array_equal(stream.x[:10].reshape(200, D), x_nb[perm])
    np.testing.assert_allclose(stream.y[:10].ravel(), y_nb[perm], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("repeat_first", [True, False])
def test_replay_of_the_first_frames_matches_the_notebook(repeat_first):
    n_frames = 5
    traj = notebook_run(n_frames, repeat_first=repeat_first, risk=False)
    rs, gen_net, net = notebook_setup(18)
    sizes = notebook_frame_sizes(n_frames, repeat_first=repeat_first)
    assert len(traj) == len(sizes) + 1
    np.testing.assert_array_equal(traj.thetas[0], net.theta())
    for j, size in enumerate(sizes, start=1):  # the notebook's update_plot(i)
        X, Y = gen_net.gen_sample(int(size))
        net.sgd_train(X, Y, tau=0.5, epochs=1, batch=20)
        np.testing.assert_allclose(traj.thetas[j], net.theta(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(traj.steps, np.concatenate([[0], np.cumsum(sizes // 20)]))
    np.testing.assert_allclose(traj.times, 0.025 * traj.steps, rtol=1e-15)
    # the random state is used in the notebook's order: the next draw agrees too
    _, _, rs_ours = notebook_initial(18)
    notebook_stream(rs_ours, ParticleMeasure(gen_net.theta()), n_frames, repeat_first=repeat_first)
    assert rs_ours.normal() == rs.normal()


def test_notebook_run_metadata_and_thinning():
    traj = notebook_run(6, record_every=3, risk=False)
    sizes = notebook_frame_sizes(6, repeat_first=True)
    ends = np.cumsum(sizes // 20)
    np.testing.assert_array_equal(traj.steps, [0, ends[2], ends[5], ends[6]])
    assert traj.seed == 18
    assert traj.config["frame_ends"] == ends.tolist()
    assert traj.config["tau"] == 0.5 and traj.config["step"] == 0.025
    teacher, _, _ = notebook_initial(18)
    np.testing.assert_array_equal(traj.teacher.theta, teacher.theta)


def test_notebook_settings():
    assert NOTEBOOK["tau"] / NOTEBOOK["m"] == step_from_tau(0.5, 20) == 0.025
    assert int(np.sum(notebook_frame_sizes(500, repeat_first=True) // 20)) == 17670


def test_full_notebook_experiment_converges_to_the_teacher():
    """The whole experiment (17 670 steps): the risk falls by orders of magnitude."""
    traj = notebook_run()
    assert len(traj) == 502
    np.testing.assert_allclose(traj.times[-1], 17670 * 0.025)
    assert traj.risks[0] > 1e-3
    assert traj.risks[-1] < 1e-3 * traj.risks[0]
    assert np.all(traj.risks[-50:] < 1e-2 * traj.risks[0])
    assert np.all(np.isfinite(traj.thetas))

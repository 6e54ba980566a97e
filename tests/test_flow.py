import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from meanfield import SampleEstimator, gaussian, notebook_sphere, notebook_teacher, sample_inputs
from meanfield.activations import get_activation
from meanfield.flow import (
    METHODS,
    _fd_jacobian,
    euler,
    integrate,
    record_schedule,
    snapshot_times,
    velocity_function,
)
from meanfield.measure import ParticleMeasure
from meanfield.network import feature_grad, output
from meanfield.trajectory import DivergenceError
from meanfield.velocity import VelocityEstimator
from tests.strategies import activations, dims, seeds, widths

TIMES = np.array([0.0, 0.5, 1.0, 1.5, 2.0])


@pytest.fixture(scope="module")
def problem():
    teacher = notebook_teacher(4, 2, rng=1)
    mu = notebook_sphere(10, 2, radius=0.5, rng=2)
    est = SampleEstimator(sample_inputs(300, 2, rng=3), teacher)
    return teacher, mu, est


@pytest.fixture(scope="module")
def reference(problem):
    _, mu, est = problem
    return integrate(mu, est, 2.0, method="DOP853", rtol=1e-11, atol=1e-13, times=TIMES)


class Wrapped(VelocityEstimator):
    """A VelocityEstimator that is not a SampleEstimator: exercises the generic path."""

    def __init__(self, inner):
        self.inner, self.activation, self.d = inner, inner.activation, inner.d

    def risk(self, measure):
        return self.inner.risk(measure)

    def first_variation(self, measure, theta=None):
        return self.inner.first_variation(measure, theta)

    def grad_first_variation(self, measure, theta=None):
        return self.inner.grad_first_variation(measure, theta)


# -- schedules -----------------------------------------------------------------------
def test_snapshot_times_log_spaced():
    t = snapshot_times(10.0, 11, t_first=0.01)
    assert t[0] == 0.0 and t[-1] == 10.0 and t.size == 11
    ratios = t[2:] / t[1:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-12)
    np.testing.assert_allclose(snapshot_times(4.0, 5, spacing="linear"), [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="t_first"):
        snapshot_times(1.0, 5, t_first=2.0)
    with pytest.raises(ValueError, match="spacing"):
        snapshot_times(1.0, 5, spacing="cubic")


def test_record_schedule():
    np.testing.assert_array_equal(record_schedule(10, every=4), [0, 4, 8, 10])
    np.testing.assert_array_equal(record_schedule(10, steps=[3, 3, 7]), [0, 3, 7, 10])
    s = record_schedule(100_000, n=50)
    assert s[0] == 0 and s[-1] == 100_000 and s.size <= 51 and np.all(np.diff(s) > 0)
    with pytest.raises(ValueError, match="at most one"):
        record_schedule(10, steps=[1], every=2)
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        record_schedule(10, steps=[11])
    with pytest.raises(TypeError, match="integers"):
        record_schedule(10, steps=[1.5])


# -- Euler = GD in mean-field time ----------------------------------------------------------
def test_euler_step_is_gd_with_gradient_divided_by_mass(problem):
    teacher, mu, est = problem
    eta, lam = 0.03, 0.2
    traj = euler(mu, est, step=eta, n_steps=1, weight_decay=lam)
    # independent computation from feature_grad: ∂F/∂θᵢ = pᵢ mean_k r_k ∇φ(θᵢ, x_k)
    r = output(mu, est.x) - teacher_output(teacher, est.x)
    particle_grad = mu.masses[:, None] * np.einsum("k,kid->id", r, feature_grad(mu, est.x)) / 300
    expected = mu.theta - eta * (particle_grad / mu.masses[:, None] + lam * mu.theta)
    np.testing.assert_allclose(traj.thetas[-1], expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(traj.times, [0.0, eta])


def teacher_output(teacher, x):
    return output(teacher, x)


def test_generic_estimator_path_equals_fast_path(problem):
    _, mu, est = problem
    fast = euler(mu, est, step=0.05, n_steps=20, record_every=5)
    generic = euler(mu, Wrapped(est), step=0.05, n_steps=20, record_every=5)
    np.testing.assert_allclose(generic.thetas, fast.thetas, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(generic.risks, fast.risks, rtol=1e-13)


def test_euler_records_requested_times(problem):
    _, mu, est = problem
    traj = euler(mu, est, step=0.1, t_end=1.0, times=[0.0, 0.3, 0.72])
    np.testing.assert_array_equal(traj.steps, [0, 3, 7, 10])
    np.testing.assert_allclose(traj.times, [0.0, 0.3, 0.7, 1.0], rtol=1e-14)
    assert traj.config["dynamics"] == "euler" and traj.config["n_steps"] == 10


def test_gd_converges_to_the_flow_at_first_order(problem, reference):
    """max_t |θ_η(t) − θ(t)| halves when η halves (ratio ≈ 2)."""
    _, mu, est = problem
    errors = [
        np.max(np.abs(euler(mu, est, step=eta, t_end=2.0, times=TIMES).thetas - reference.thetas))
        for eta in (0.02, 0.01, 0.005)
    ]
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert errors[-1] < 1e-3
    np.testing.assert_allclose(ratios, 2.0, rtol=0.1)


def test_gd_small_step_decreases_the_risk_monotonically(problem):
    _, mu, est = problem
    traj = euler(mu, est, step=0.01, n_steps=400, record_every=1)
    assert np.all(np.diff(traj.risks) < 0)
    assert traj.risks[-1] < 0.9 * traj.risks[0]


def test_euler_balance_drift_is_second_order(problem):
    """aᵢ² − ‖wᵢ‖² − bᵢ²: one Euler step changes it by exactly η²(‖v_a‖² − ‖v_{w,b}‖²)."""
    _, mu, est = problem
    drift = []
    for eta in (0.02, 0.01, 0.005):
        traj = euler(mu, est, step=eta, n_steps=1)
        drift.append(np.max(np.abs(traj.balance()[1] - traj.balance()[0])))
    np.testing.assert_allclose(np.array(drift[:-1]) / np.array(drift[1:]), 4.0, rtol=1e-3)
    v = velocity_function(est, np.array(mu.masses))(np.array(mu.theta))
    predicted = 0.01**2 * (v[:, 0] ** 2 - np.sum(v[:, 1:] ** 2, axis=1))
    traj = euler(mu, est, step=0.01, n_steps=1)
    np.testing.assert_allclose(
        traj.balance()[1] - traj.balance()[0], predicted, rtol=1e-6, atol=1e-17
    )
    # over a fixed horizon the accumulated drift is O(η)
    total = [
        np.max(np.abs(np.diff(euler(mu, est, step=eta, t_end=2.0).balance()[[0, -1]], axis=0)))
        for eta in (0.02, 0.01)
    ]
    np.testing.assert_allclose(total[0] / total[1], 2.0, rtol=0.15)


# -- adaptive solvers ------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["RK45", "DOP853", "LSODA", "BDF", "Radau"])
def test_ode_conserves_balance_to_tolerance(problem, reference, method):
    _, mu, est = problem
    traj = integrate(mu, est, 2.0, method=method, rtol=1e-10, atol=1e-12, times=TIMES)
    b = traj.balance()
    assert np.max(np.abs(b - b[0])) < 1e-8
    np.testing.assert_allclose(traj.thetas, reference.thetas, rtol=0, atol=1e-7)
    # and it is not trivially constant: the particles moved
    assert np.max(np.abs(traj.thetas[-1] - traj.thetas[0])) > 1e-2
    euler_drift = np.abs(np.diff(euler(mu, est, step=0.01, t_end=2.0).balance()[[0, -1]], axis=0))
    assert np.max(np.abs(b - b[0])) < 1e-3 * np.max(euler_drift)


def test_integrate_matches_solve_ivp(problem):
    _, mu, est = problem
    vel = velocity_function(est, np.array(mu.masses))
    sol = solve_ivp(
        lambda t, y: vel(y.reshape(mu.theta.shape)).ravel(),
        (0.0, 2.0),
        mu.theta.ravel(),
        method="RK45",
        t_eval=TIMES,
        rtol=1e-8,
        atol=1e-10,
    )
    traj = integrate(mu, est, 2.0, method="RK45", rtol=1e-8, atol=1e-10, times=TIMES)
    np.testing.assert_allclose(
        traj.thetas, sol.y.T.reshape(-1, *mu.theta.shape), rtol=0, atol=1e-14
    )
    np.testing.assert_allclose(traj.risks, est.risk(ParticleMeasure(traj.thetas, mu.masses)))
    assert traj.info["nfev"] == sol.nfev


def test_default_snapshots_are_log_spaced(problem):
    _, mu, est = problem
    traj = integrate(mu, est, 1.0, n_snapshots=6, rtol=1e-5)
    np.testing.assert_allclose(traj.times, snapshot_times(1.0, 6))
    assert traj.config["method"] == "RK45" and traj.info["accepted_steps"] > 0


def test_fd_jacobian_is_block_diagonal_and_accurate(problem):
    _, _, est = problem
    mus = notebook_sphere(3, 2, radius=0.7, runs=2, rng=5)
    vel = velocity_function(est, np.array(mus.masses))
    jac = _fd_jacobian(vel, mus.theta.shape)(0.0, mus.theta.ravel().copy()).toarray()
    k = 3 * 4
    np.testing.assert_array_equal(jac[:k, k:], 0.0)
    # against central differences of replica 1 along a random direction
    y1 = np.array(mus.theta[1])
    vel1 = velocity_function(est, np.array(mus.masses[1]))
    u = np.random.default_rng(0).standard_normal(y1.shape)
    h = 1e-6
    central = (vel1(y1 + h * u) - vel1(y1 - h * u)).ravel() / (2 * h)
    np.testing.assert_allclose(jac[k:, k:] @ u.ravel(), central, rtol=1e-4, atol=1e-6)


# -- ensembles, determinism, divergence, validation ----------------------------------------------
def test_ensemble_member_equals_solo_run(problem):
    _, _, est = problem
    mus = notebook_sphere(10, 2, radius=0.5, runs=3, rng=4)
    ens = euler(mus, est, step=0.05, n_steps=60, record_every=10)
    assert ens.batch_shape == (3,) and ens.risks.shape == (len(ens), 3)
    for r in range(3):
        solo = euler(mus.replica(r), est, step=0.05, n_steps=60, record_every=10)
        np.testing.assert_array_equal(ens.thetas[:, r], solo.thetas)
        np.testing.assert_allclose(ens.risks[:, r], solo.risks, rtol=1e-14)
        assert ens.replica(r).thetas.shape == solo.thetas.shape


def test_ode_ensemble_member_equals_solo_run_to_tolerance(problem):
    """An ensemble shares the adaptive step, so members match solo runs to tolerance only."""
    _, _, est = problem
    mus = notebook_sphere(10, 2, radius=0.5, runs=2, rng=4)
    ode = integrate(mus, est, 0.5, rtol=1e-8, atol=1e-10, times=[0, 0.25, 0.5])
    for r in range(2):
        solo = integrate(mus.replica(r), est, 0.5, rtol=1e-8, atol=1e-10, times=[0, 0.25, 0.5])
        # kinks of the empirical ReLU field make the global error ~100 rtol for both runs
        np.testing.assert_allclose(ode.thetas[:, r], solo.thetas, rtol=0, atol=2e-5)


def test_stiff_solver_on_an_ensemble(problem):
    _, _, est = problem
    mus = notebook_sphere(4, 2, radius=0.5, runs=2, rng=6)
    traj = integrate(mus, est, 0.5, method="BDF", rtol=1e-7, atol=1e-9, times=[0, 0.5])
    solo = integrate(
        mus.replica(1), est, 0.5, method="RK45", rtol=1e-10, atol=1e-12, times=[0, 0.5]
    )
    np.testing.assert_allclose(traj.thetas[:, 1], solo.thetas, rtol=0, atol=1e-5)
    assert np.max(np.abs(solo.thetas[1] - solo.thetas[0])) > 1e-2


def test_euler_divergence_keeps_the_partial_trajectory(problem):
    _, mu, est = problem
    with pytest.raises(DivergenceError, match="non-finite") as info:
        euler(mu, est, step=1e4, n_steps=200, record_every=1)
    err = info.value
    traj = err.trajectory
    assert 1 <= len(traj) <= err.step and traj.info["diverged"]
    assert np.all(np.isfinite(traj.thetas)) and np.all(np.isfinite(traj.risks))
    assert traj.times[-1] < err.time
    np.testing.assert_array_equal(traj.thetas[0], mu.theta)
    np.testing.assert_array_equal(err.replicas, [0])


class Blowup(VelocityEstimator):
    """da/dt = a² (w, b frozen): a(t) = 1/(1 − t) blows up at t = 1."""

    activation = get_activation("relu")
    d = 2

    def risk(self, measure):
        return np.sum(measure.theta[..., 0] ** 2, axis=-1)

    def first_variation(self, measure, theta=None):
        raise NotImplementedError

    def grad_first_variation(self, measure, theta=None):
        g = np.zeros_like(measure.theta)
        g[..., 0] = -(measure.theta[..., 0] ** 2)
        return g


@pytest.mark.parametrize("method", ["RK45", "LSODA"])
def test_ode_divergence_in_finite_time(method):
    mu = ParticleMeasure(np.array([[1.0, 1.0, 0.0, 0.0]]))
    with pytest.raises(DivergenceError) as info:
        integrate(mu, Blowup(), 5.0, method=method, times=[0.0, 0.5, 0.9, 2.0, 5.0])
    err = info.value
    traj = err.trajectory
    assert 0.99 < traj.times[-1] < 1.001 and err.time < 1.001
    np.testing.assert_allclose(traj.times[:3], [0.0, 0.5, 0.9])
    np.testing.assert_allclose(traj.thetas[1:3, 0, 0], [2.0, 10.0], rtol=1e-3)
    assert np.all(np.isfinite(traj.thetas)) and traj.thetas[-1, 0, 0] > 1e3


def test_validation(problem):
    _, mu, est = problem
    with pytest.raises(ValueError, match="exactly one"):
        euler(mu, est, step=0.1)
    with pytest.raises(ValueError, match="step"):
        euler(mu, est, step=-0.1, n_steps=3)
    with pytest.raises(ValueError, match="method"):
        integrate(mu, est, 1.0, method="Euler")
    with pytest.raises(TypeError, match="VelocityEstimator"):
        euler(mu, "est", step=0.1, n_steps=1)
    with pytest.raises(ValueError, match="d=3"):
        euler(notebook_sphere(3, 3, rng=0), est, step=0.1, n_steps=1)
    with pytest.raises(ValueError, match="times"):
        integrate(mu, est, 1.0, times=[0.0, 2.0])
    assert set(METHODS) >= {"RK45", "DOP853", "LSODA", "Radau", "BDF"}


def test_progress_bar_runs(problem, capsys):
    _, mu, est = problem
    euler(mu, est, step=0.1, n_steps=5, progress=True)
    integrate(mu, est, 0.1, progress=True, rtol=1e-4)
    assert "euler" in capsys.readouterr().err


@given(seed=seeds, activation=activations, d=dims, m=widths, runs=st.sampled_from([None, 2]))
@settings(max_examples=25, deadline=None)
def test_euler_step_is_the_estimator_velocity(seed, activation, d, m, runs):
    """Identity: one Euler step is θ + η v̂_μ(θ) with the estimator's public velocity."""
    g = np.random.default_rng(seed)
    mu = gaussian(m, d, runs=runs, rng=g)
    est = SampleEstimator(
        g.standard_normal((7, d)), notebook_teacher(3, d, rng=g), activation=activation
    )
    traj = euler(mu, est, step=0.1, n_steps=1)
    np.testing.assert_allclose(
        traj.thetas[1], mu.theta + 0.1 * est.velocity(mu), rtol=1e-13, atol=1e-14
    )
    np.testing.assert_allclose(traj.risks[0], est.risk(mu), rtol=1e-14)


@given(seed=seeds, d=dims, m=widths)
@settings(max_examples=25, deadline=None)
def test_relu_euler_balance_identity(seed, d, m):
    """ReLU (2-homogeneous): the O(η) change of aᵢ² − ‖wᵢ‖² − bᵢ² vanishes exactly."""
    g = np.random.default_rng(seed)
    mu = gaussian(m, d, rng=g)
    est = SampleEstimator(g.standard_normal((9, d)), notebook_teacher(3, d, rng=g))
    v = est.velocity(mu)
    eta = 0.05
    traj = euler(mu, est, step=eta, n_steps=1)
    predicted = eta**2 * (v[:, 0] ** 2 - np.sum(v[:, 1:] ** 2, axis=1))
    scale = np.max(np.abs(traj.balance()[0])) + 1.0
    np.testing.assert_allclose(
        traj.balance()[1] - traj.balance()[0], predicted, rtol=1e-8, atol=1e-13 * scale
    )

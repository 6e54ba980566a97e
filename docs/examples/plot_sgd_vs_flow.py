r"""
SGD, gradient descent and the gradient flow on one time axis
============================================================

Every dynamics of the toolkit integrates the same particle ODE
:math:`d\theta_i/dt = v_{\mu_t}(\theta_i)` (:doc:`/dynamics`); they differ in how the
velocity is estimated and how time is stepped:

* the **exact flow**: :math:`v_\mu` in closed form for Gaussian inputs
  (:class:`~meanfield.population.GaussianPopulationEstimator`, :doc:`/kernels`),
  integrated by an adaptive Runge–Kutta solver (:func:`meanfield.flow.integrate`);
* **gradient descent** on the population risk: the same exact :math:`v_\mu`, explicit
  Euler steps of size :math:`\eta` (:func:`meanfield.flow.euler`);
* **online SGD**: :math:`v_\mu` estimated on a fresh minibatch of 20 samples at every
  step of size :math:`\eta` (:func:`meanfield.sgd.online_sgd`), the notebook's
  dynamics.

All three start from the notebook's initialisation and are compared at equal
mean-field time :math:`t`, the number of steps times :math:`\eta`.
"""

# %%
# The runs
# --------
# The notebook's teacher and student come from
# :func:`~meanfield.notebook.notebook_initial`. Snapshots are taken at common times,
# multiples of every step size used. The SGD runs are ensembles: eight independent
# sample streams advanced together from the same initial particles (each member draws
# from its own generator ``spawn_rngs(rng, R)[r]``).

import matplotlib.pyplot as plt
import numpy as np

from meanfield.flow import euler, integrate
from meanfield.measure import ParticleMeasure
from meanfield.notebook import notebook_initial
from meanfield.population import GaussianPopulationEstimator
from meanfield.sgd import online_sgd, step_from_tau

teacher, mu0, _ = notebook_initial(18)
exact = GaussianPopulationEstimator(teacher)
t_end = 40.0
times = np.unique(np.round(np.geomspace(0.5, t_end, 40) / 0.5) * 0.5)
times = np.concatenate([[0.0], times])

flow = integrate(mu0, exact, t_end, times=times, rtol=1e-8, atol=1e-10)
print(f"exact flow: {flow.info['accepted_steps']} RK45 steps, {flow.info['nfev']} evaluations")

gd = {eta: euler(mu0, exact, step=eta, t_end=t_end, times=times) for eta in (0.5, 0.1)}

runs = 8
ensemble = ParticleMeasure(np.broadcast_to(mu0.theta, (runs, *mu0.theta.shape)).copy())
print(f"the notebook's tau = 0.5 with m = 20 is eta = {step_from_tau(0.5, 20)}")
sgd = {}
for eta in (0.025, 0.0025):
    steps = np.round(times / eta).astype(int)
    sgd[eta] = online_sgd(
        ensemble,
        teacher,
        step=eta,
        n_steps=steps[-1],
        batch_size=20,
        record_steps=steps,
        risk=exact,
        rng=2018,
    )
    print(f"SGD eta = {eta}: {runs} runs of {steps[-1]} steps")

# %%
# The risk along the runs
# -----------------------
# The exact population risk :math:`F(\mu_t)` of every run (for SGD: the median of the
# eight runs and their range). On the mean-field time axis the curves lie on top of
# each other: SGD with the notebook's step is a noisy discretisation of the same flow.

keep = times > 0


def plot_gd_and_sgd(ax, quantity, sgd_label=""):
    """Draw ``quantity(trajectory)`` against t > 0: GD lines, SGD median and range."""
    t = times[keep]
    for eta, style in zip(gd, ("--", ":"), strict=True):
        ax.loglog(t, quantity(gd[eta])[keep], "tab:green", ls=style, label=f"GD, η = {eta}")
    for eta, color in zip(sgd, ("tab:orange", "tab:blue"), strict=True):
        v = quantity(sgd[eta])[keep]  # (T, runs)
        ax.fill_between(t, v.min(axis=1), v.max(axis=1), color=color, alpha=0.25, lw=0)
        ax.loglog(t, np.median(v, axis=1), color=color, label=f"SGD, η = {eta}{sgd_label}")
    ax.set_xlabel("mean-field time t")


fig, ax0 = plt.subplots(figsize=(7, 4.8), constrained_layout=True)
ax0.loglog(times[keep], flow.risks[keep], color="k", lw=2.5, label="exact flow (RK45)")
plot_gd_and_sgd(ax0, lambda traj: traj.risks, sgd_label=" (8 runs)")
ax0.set_ylabel(r"exact risk $F(\mu_t)$")
ax0.set_title("risk on the mean-field time axis")
ax0.legend()

# %%
# Distance to the flow
# --------------------
# Every run starts from the same particles, so the particles can be compared one by
# one: :math:`D(t) = \big(\sum_i p_i\|\theta_i(t) - \theta_i^{\rm flow}(t)\|^2\big)^{1/2}`,
# an upper bound on the Wasserstein distance between the two measures. Gradient
# descent is a first-order scheme: its error is proportional to :math:`\eta`. SGD adds
# zero-mean noise with variance proportional to :math:`\eta` per unit of time, so its
# deviation scales like :math:`\sqrt\eta`
# :cite:p:`mei2018mean`.


def distance_to_flow(thetas):
    """RMS particle distance to the flow at every snapshot; thetas (T, ..., m, d+2)."""
    flow_thetas = np.expand_dims(flow.thetas, axis=tuple(range(1, thetas.ndim - 2)))
    return np.sqrt(np.mean(np.sum((thetas - flow_thetas) ** 2, axis=-1), axis=-1))


fig, ax1 = plt.subplots(figsize=(7, 4.8), constrained_layout=True)
plot_gd_and_sgd(ax1, lambda traj: distance_to_flow(traj.thetas))
ax1.set_ylabel(r"$D(t)$, RMS distance of the particles to the flow")
ax1.set_title("how far each run is from the exact flow")
ax1.legend()

# %%
# The ratios at a few times. Dividing :math:`\eta` by 5 divides the GD error by about
# 4: first order, with a visible higher-order part at the large step
# :math:`\eta = 0.5`. Dividing :math:`\eta` by 10 divides the SGD deviation by about 4:
# between :math:`\sqrt{10} \approx 3.2` (pure fluctuations) and 10 (pure Euler bias),
# much closer to the first. At the notebook's step the deviation of SGD from the flow is
# mostly sampling noise.

for t in (2.0, 10.0, 40.0):
    k = int(np.searchsorted(times, t))
    gd_ratio = distance_to_flow(gd[0.5].thetas)[k] / distance_to_flow(gd[0.1].thetas)[k]
    sgd_ratio = np.median(distance_to_flow(sgd[0.025].thetas)[k]) / np.median(
        distance_to_flow(sgd[0.0025].thetas)[k]
    )
    print(
        f"t = {times[k]:5.1f}:  GD error ratio (eta 0.5 / 0.1) = {gd_ratio:.2f},   "
        f"SGD deviation ratio (eta 0.025 / 0.0025) = {sgd_ratio:.2f}"
    )

r"""
Diagnosing a run: a converging flow and a failed one
====================================================

A run has stopped moving; did it reach a global minimiser? :doc:`/optimality` reduces
the question, for ReLU, to one computable number: the **certificate**
:math:`J^{\min}_\mu = \min_{\|\theta\| = 1} J_\mu(\theta)`, which is :math:`\ge 0` at a
global minimiser and otherwise names a direction where a new neuron would lower the
risk. This example integrates the exact mean-field flow twice from the notebook's
problem,

* from the notebook's initialisation (both signs of :math:`a`), which converges, and
* from the same particles with every :math:`a_i` made positive, which cannot: the
  teacher has a neuron with :math:`a^\star < 0`, ReLU balancedness freezes the sign of
  each :math:`a_i`, and the all-positive law fails the separation condition
  (:doc:`/separation`),

and reads both through the diagnostics of :mod:`meanfield.diagnostics`.
"""

# %%
# Two runs of the exact flow
# --------------------------
# Both runs integrate :math:`d\theta_i/dt = v_{\mu_t}(\theta_i)` with the exact
# Gaussian-population velocity (:doc:`/kernels`) and an adaptive Runge–Kutta solver
# (:func:`~meanfield.flow.integrate`), with 60 log-spaced snapshots.

import matplotlib.pyplot as plt
import numpy as np

from meanfield.diagnostics import optimality_certificate, trajectory_diagnostics
from meanfield.flow import integrate
from meanfield.measure import ParticleMeasure
from meanfield.notebook import notebook_initial
from meanfield.plotting import plot_diagnostics, plot_particles
from meanfield.population import GaussianPopulationEstimator
from meanfield.recovery import teacher_recovery

teacher, mu0, _ = notebook_initial(18)
exact = GaussianPopulationEstimator(teacher)
print("teacher output weights a*:", np.round(teacher.a, 3))

positive = np.array(mu0.theta)
positive[:, 0] = np.abs(positive[:, 0])
runs = {
    "notebook initialisation": integrate(mu0, exact, 300.0, n_snapshots=60),
    "all a > 0": integrate(ParticleMeasure(positive), exact, 1000.0, n_snapshots=60),
}
for name, traj in runs.items():
    print(
        f"{name}: F = {traj.risks[0]:.3e} at t = 0, {traj.risks[-1]:.3e} at t = {traj.times[-1]:g}"
    )

# %%
# The diagnostics panel of the converging run
# -------------------------------------------
# :func:`~meanfield.plotting.plot_diagnostics` draws, against mean-field time: the
# excess risk (0 is the minimum: the teacher is realisable); the certificate at a few
# snapshots (symlog scale); the stationarity :math:`\int\|v_{\mu_t}\|^2d\mu_t =
# -\frac{d}{dt}F(\mu_t)`; the drift of the balancedness :math:`a_i^2 - \|w_i\|^2 -
# b_i^2`, conserved by the exact flow up to the solver's tolerance; and the teacher
# recovery (the student's effective mass near each teacher neuron over the teacher's,
# and an MMD between the two measures of effective neurons). The certificate is negative
# at every snapshot but rises towards 0 by two orders of magnitude as the risk falls: at
# a finite time it measures how far the run still is from optimality.

fig = plot_diagnostics(runs["notebook initialisation"], exact, n_certificates=5)

# %%
# The same panel for the failed run. Its risk levels off near :math:`2\cdot10^{-4}` and
# its velocity decays just like the converging run's: stationarity alone does not tell
# the two runs apart. The certificate does: it stays near :math:`-3\cdot10^{-3}`
# instead of rising towards 0. The teacher recovery shows why: the MMD to the teacher
# grows instead of shrinking, and the mass ratio of teacher neuron 2, the one with
# :math:`a^\star < 0`, is 0 throughout (so it does not appear on the log axis).

fig = plot_diagnostics(runs["all a > 0"], exact, n_certificates=5)

# %%
# The certificates at the end
# ---------------------------
# :func:`~meanfield.diagnostics.optimality_certificate` searches the unit sphere of
# :math:`\R^{d+2}` for the minimum of :math:`J_\mu` (multi-start, then Riemannian
# descent). It also reports :math:`\max_i |J_\mu(\theta_i)|/\|\theta_i\|^2`, the second
# optimality condition (:math:`J_\mu = 0` on the support), which every stationary point
# satisfies. A ReLU neuron is determined by the sign of :math:`a` and the direction of
# :math:`(w, b)`, so the minimiser :math:`\theta^\star` is compared with the teacher's
# neurons of the same sign through the angle between the :math:`(w, b)` parts.


def nearest_teacher_neuron(theta):
    """Teacher neuron of the same sign of a whose (w, b) direction is nearest to theta's."""
    u = theta[1:] / np.linalg.norm(theta[1:])
    u_teacher = teacher.theta[:, 1:] / np.linalg.norm(teacher.theta[:, 1:], axis=1, keepdims=True)
    cos = np.where(np.sign(teacher.a) == np.sign(theta[0]), u_teacher @ u, -np.inf)
    j = int(np.argmax(cos))
    return j, float(np.degrees(np.arccos(np.clip(cos[j], -1.0, 1.0))))


for name, traj in runs.items():
    cert = optimality_certificate(traj.final, exact, rng=0)
    j, angle = nearest_teacher_neuron(cert.direction)
    print(f"{name}:")
    print(f"  min of J on the sphere {cert.value:.3e}; on the support {cert.support_residual:.1e}")
    print(
        f"  attained at theta* = {np.round(cert.direction, 3)}: (w, b) at {angle:.1f} deg from"
        f" teacher neuron {j} (a* = {teacher.a[j]:+.3f})"
    )
    rec = teacher_recovery(traj.final, teacher)
    print(f"  mass ratios per teacher neuron: {np.round(rec.mass_ratio, 3)}")

# %%
# In the converging run the certificate is small and points at teacher neuron 0, the
# neuron with the smallest output weight, which the flow is still assembling at
# :math:`t = 300`: the certificate says how far from optimal the run still is and
# where. In the failed run it is an order of magnitude larger, has :math:`a < 0`,
# and points at the teacher's only neuron with :math:`a^\star < 0`, which no particle
# with :math:`a_i > 0` can ever represent. By the bound of :doc:`/optimality`,
# :math:`F(\mu) - \min F \le \int J_\mu\,d\mu + \max(0, -J^{\min}_\mu)\int\|\theta\|^2
# d\mu^\star`; the summaries of :func:`~meanfield.diagnostics.trajectory_diagnostics`
# list the other numbers (the convergence time is the first time the excess risk falls
# below :math:`\varepsilon = 10^{-3}`).

for name, traj in runs.items():
    print(f"== {name}")
    print(trajectory_diagnostics(traj, exact).summary())

# %%
# The final particles of both runs, in the notebook's picture:

fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)
for ax, (name, traj) in zip(axes, runs.items(), strict=True):
    plot_particles(traj.thetas, teacher=teacher, ax=ax, lim=1.4, title=name)

r"""
The notebook's experiment, replayed
===================================

The toolkit started from a notebook (:doc:`/index`): a ReLU teacher with
:math:`m_0 = 4` neurons in :math:`d = 2`, a student of :math:`m = 20` neurons with
:math:`a_i \sim N(0, 1)` and :math:`(w_i, b_i)` on the sphere of radius
:math:`R = 0.05`, and online minibatch SGD (batch 20, step :math:`\tau = 0.5`) over 500
animation frames of :math:`100\lfloor\log(10 + 10i)\rfloor` fresh samples each.
:func:`meanfield.notebook.notebook_run` replays that run exactly: the same random
numbers, drawn in the notebook's order from an explicit ``RandomState(18)``, fed to the
toolkit's SGD in mean-field time with :math:`\eta = \tau/m = 0.025`
(:doc:`/dynamics`). Here we draw its final picture, its exact population risk and its
animation.
"""

# %%
# The run, with the exact population risk
# ---------------------------------------
# :func:`~meanfield.notebook.notebook_initial` draws the notebook's teacher
# :math:`\nu` and student :math:`\mu_0`; the teacher defines the exact Gaussian-input
# risk :math:`F(\mu) = \tfrac12\E_x[(f_\mu(x) - f_\nu(x))^2]`, computed in closed form by
# :class:`~meanfield.population.GaussianPopulationEstimator` (:doc:`/kernels`) at every
# recorded snapshot: no test sample, no noise in the curve.

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation

from meanfield.notebook import NOTEBOOK, notebook_initial, notebook_run
from meanfield.plotting import effective_coordinates, plot_effective_3d, plot_particles, plot_risk
from meanfield.population import GaussianPopulationEstimator
from meanfield.recovery import teacher_recovery
from meanfield.sgd import step_from_tau

teacher, student0, _ = notebook_initial(NOTEBOOK["seed"])
exact = GaussianPopulationEstimator(teacher)
traj = notebook_run(risk=exact)  # one snapshot per frame, frame 0 processed twice

eta = step_from_tau(NOTEBOOK["tau"], NOTEBOOK["m"])
print(
    f"eta = tau/m = {eta}; {traj.steps[-1]} SGD steps; final mean-field time t = {traj.times[-1]}"
)
print(f"{len(traj)} snapshots (the initialisation and one per processed frame)")
print(f"F(mu_0) = {traj.risks[0]:.4f}   F(mu_t) at the end = {traj.risks[-1]:.2e}")

# %%
# The notebook's picture
# ----------------------
# Each student particle is drawn at :math:`a_i w_i \in \R^2` (blue, with its past
# positions in grey); the teacher's :math:`a^\star_j w^\star_j` are the red dots, with
# the rays through them. The particles leave the neighbourhood of the origin and line
# up on the rays: a ReLU neuron is determined by its effective neuron
# :math:`c = a(w, b)` only up to how it is shared among particles pointing the same
# way (:doc:`/measures`). The right panel is the exact risk on the mean-field time
# axis.

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
plot_particles(traj.thetas, teacher=traj.teacher, ax=ax0, lim=1.4, title="particles $a_i w_i$")
plot_risk(traj.times, traj.risks, ax=ax1, color="k")
ax1.set_title("exact population risk of the SGD run")

# %%
# The picture in the plane hides the bias: the effective neuron is
# :math:`c_i = a_i(w_i, b_i) \in \R^3`. In that space each teacher neuron is a ray,
# and the student particles of its sign of :math:`a` gather on it.

fig = plt.figure(figsize=(6, 5.5))
plot_effective_3d(traj.thetas[::5], teacher=teacher, fig=fig, title="effective neurons $a(w, b)$")

# %%
# How much of each teacher neuron the student recovered: the effective mass of the
# student particles nearest to each teacher direction (same sign of :math:`a`) over the
# teacher's, and the angle between their mean direction and the teacher's
# (:func:`~meanfield.recovery.teacher_recovery`).

rec = teacher_recovery(traj.final, teacher)
for j in range(teacher.m):
    print(
        f"teacher neuron {j} (a* = {teacher.a[j]:+.3f}): mass ratio {rec.mass_ratio[j]:.3f}, "
        f"angle {np.degrees(rec.angle[j]):.2f} deg"
    )
print(f"MMD between the effective-neuron measures: {float(rec.mmd):.3g}")

# %%
# The three teacher neurons with the largest output weights are recovered within a
# few degrees and a few percent of their mass. Neuron 0, whose output weight is several
# times smaller, contributes little to the risk; at the end of the run its mass is
# there but its direction is still far off.
#
# The animation
# -------------
# A few dozen of the 502 snapshots, spaced logarithmically in frame number: the particles
# move early (the risk falls thirtyfold before :math:`t = 10`) and then mostly settle.

frames = np.unique(np.geomspace(1, len(traj), 56).astype(int)) - 1
c = effective_coordinates(traj.thetas)[..., :2]
ct = effective_coordinates(teacher.theta)[:, :2]
print(f"{len(frames)} frames, from t = 0 to t = {traj.times[frames[-1]]}")

fig, ax = plt.subplots(figsize=(4.6, 4.6), dpi=80)
fig.subplots_adjust(left=0.16, right=0.96, bottom=0.12, top=0.92)
for p in ct:
    ax.plot([0, 3 * p[0]], [0, 3 * p[1]], color="k", lw=0.8)
ax.scatter(ct[:, 0], ct[:, 1], s=90, color="tab:red", alpha=0.5, zorder=3)
trail = ax.scatter([], [], s=4, color="0.55", alpha=0.4, lw=0)
dots = ax.scatter(c[0, :, 0], c[0, :, 1], s=18, color="tab:blue", zorder=4)
ax.set(xlim=(-1.4, 1.4), ylim=(-1.4, 1.4), xticks=[-1, 0, 1], yticks=[-1, 0, 1], aspect="equal")
ax.set_xlabel("$(a w)_1$")
ax.set_ylabel("$(a w)_2$")


def update(k):
    """Draw snapshot ``frames[k]`` with the trail of the frames shown before it."""
    i = frames[k]
    trail.set_offsets(c[frames[:k]].reshape(-1, 2) if k else np.empty((0, 2)))
    dots.set_offsets(c[i])
    ax.set_title(f"t = {traj.times[i]:.2f}    F = {traj.risks[i]:.1e}", fontsize=9)
    return dots, trail


anim = animation.FuncAnimation(fig, update, frames=len(frames), interval=120)

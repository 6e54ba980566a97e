r"""
The notebook's problem at initialisation: network, first variation, velocity field
==================================================================================

This example uses only the foundation of the toolkit. It builds the notebook's teacher
(:math:`m_0 = 4` ReLU neurons in :math:`d = 2`) and its student (:math:`m = 20`
neurons, :math:`a \sim N(0, 1)`, :math:`(w, b)` on the sphere of radius
:math:`R = 0.05`), evaluates both networks, checks Euler's identity and the
balancedness identity of :doc:`/homogeneity` on the actual particles, and draws the
velocity field :math:`v_{\mu_0}` that will move the student's particles first, on the
plane of effective neurons :math:`a\,w` where the notebook draws its animation.
"""

# %%
# The teacher, the student and a Monte-Carlo estimator
# ----------------------------------------------------
# The notebook seeds NumPy's legacy generator with 18 and draws each neuron as
# ``a, w, b = normal(), normal(size=d), normal()``: one row of standard normals in the
# toolkit's layout ``[a, w, b]``. Mapping the same rows with
# ``notebook_sphere_from_normals`` gives the notebook's teacher and student bit for bit
# (a fresh draw would use :func:`~meanfield.measure.notebook_teacher` and
# :func:`~meanfield.measure.notebook_sphere` with an ``rng``). The risk,
# :math:`J_\mu` and :math:`v_\mu` are expectations over :math:`x \sim N(0, I_2)`; a
# :class:`~meanfield.velocity.SampleEstimator` estimates them on a fixed sample of
# 10 000 inputs.

import matplotlib.pyplot as plt
import numpy as np

import meanfield as mf
from meanfield.measure import ParticleMeasure, notebook_sphere_from_normals
from meanfield.network import feature, feature_grad, output

d, m0, m, R = 2, 4, 20, 0.05
rs = np.random.RandomState(18)  # the notebook's np.random.seed(18), as an explicit stream
teacher = ParticleMeasure(notebook_sphere_from_normals(rs.normal(size=(m0, d + 2)), 1.0))
student = ParticleMeasure(notebook_sphere_from_normals(rs.normal(size=(m, d + 2)), R))
x = mf.sample_inputs(10_000, d, rng=1)
est = mf.SampleEstimator(x, teacher)

print("teacher a*:", np.round(teacher.a, 3))
print("teacher (w*, b*) norms:", np.round(np.linalg.norm(teacher.theta[:, 1:], axis=1), 12))
print(f"F(mu_0) = {est.risk(student):.5f}   (1/2 E[y^2] = {0.5 * np.mean(est.y**2):.5f})")
print(f"F(nu)   = {est.risk(teacher):.2e}  (the teacher is a global minimiser)")

# %%
# The two networks
# ----------------
# :math:`f_\nu` is piecewise linear, with a kink along each line
# :math:`w^\star_j\cdot x + b^\star_j = 0`. The student's output is of order :math:`R`:
# at initialisation :math:`f_{\mu_0} \approx 0` and the residual is :math:`\approx -y`.

grid = np.linspace(-3.0, 3.0, 201)
X1, X2 = np.meshgrid(grid, grid)
xg = np.column_stack([X1.ravel(), X2.ravel()])
f_teacher = output(teacher, xg).reshape(X1.shape)
f_student = output(student, xg).reshape(X1.shape)

fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
for ax, f, title in [
    (axes[0], f_teacher, r"teacher $f_\nu(x)$"),
    (axes[1], f_student, r"student at initialisation $f_{\mu_0}(x)$"),
]:
    lim = np.abs(f).max()
    im = ax.pcolormesh(X1, X2, f, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="auto")
    fig.colorbar(im, ax=ax, shrink=0.85)
    ax.set_title(title)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")
for wj, bj in zip(teacher.w, teacher.b, strict=True):
    # the kink w*·x + b* = 0, drawn as a line through the grid
    t = np.linspace(-6.0, 6.0, 2)
    p0 = -bj * wj / np.dot(wj, wj)
    direction = np.array([-wj[1], wj[0]])
    pts = p0[:, None] + direction[:, None] * t
    axes[0].plot(pts[0], pts[1], "k--", lw=0.8)
axes[0].set_xlim(-3, 3)
axes[0].set_ylim(-3, 3)
print(f"max |f_mu0| on the grid = {np.abs(f_student).max():.4f}")
print(f"max |f_nu|  on the grid = {np.abs(f_teacher).max():.3f}")

# %%
# Euler's identity and balancedness on the particles
# --------------------------------------------------
# For ReLU, :math:`\theta\cdot\nabla_\theta\varphi(\theta, x) = 2\varphi(\theta, x)`
# pointwise, and the velocity satisfies :math:`a\,v_a = w\cdot v_w + b\,v_b` at every
# particle, the identity behind the conservation of :math:`a^2 - \|w\|^2 - b^2`.

phi = feature(student, x[:500])  # (n, m)
grad_phi = feature_grad(student, x[:500])  # (n, m, d+2)
euler_gap = np.einsum("nmk,mk->nm", grad_phi, student.theta) - 2.0 * phi
print(f"max |theta . grad phi - 2 phi| = {np.abs(euler_gap).max():.2e}")

v = est.velocity(student)  # (m, d+2)
lhs = student.a * v[:, 0]
rhs = np.einsum("mk,mk->m", student.theta[:, 1:], v[:, 1:])
print(f"max |a v_a - (w, b).(v_w, v_b)| = {np.abs(lhs - rhs).max():.2e}")

# %%
# The notebook's initialisation is not in the small-scale regime of a full sphere: only
# :math:`(w, b)` is small. The output weights hardly move at first
# (:math:`\dot a_i = O(R)`) while :math:`(w_i, b_i)` moves at a speed of order
# :math:`|a_i|` that does not depend on :math:`R` (see :doc:`/lazy_vs_meanfield`). The
# same particle directions put on spheres of radius :math:`R`, :math:`R/10` and
# :math:`R/100` show it.

print("     R    median |da/dt|   median |d(w,b)/dt|/|a|")
for radius in (R, R / 10, R / 100):
    scaled = student.with_theta(np.column_stack([student.a, student.theta[:, 1:] * (radius / R)]))
    vel = est.velocity(scaled)
    ratio = np.linalg.norm(vel[:, 1:], axis=1) / np.abs(scaled.a)
    print(f"{radius:8.4f}   {np.median(np.abs(vel[:, 0])):.2e}         {np.median(ratio):.4f}")

# %%
# The velocity field on the plane of effective neurons
# ----------------------------------------------------
# The notebook draws each particle at :math:`a\,w \in \mathbb{R}^2`, the first
# :math:`d` coordinates of the effective neuron :math:`c = a(w, b)`. A point :math:`c` of
# that plane is the image of many particles; we draw the velocity of the balanced
# particle with :math:`b = 0` and a given sign of :math:`a` (:math:`|a| = \|w\| =
# \|c\|^{1/2}`), one panel per sign, and plot how :math:`c` moves:
# :math:`\dot c = \dot a\,w + a\,\dot w`. The background is
# :math:`J_{\mu_0}(\hat\theta)` at the particle's direction
# :math:`\hat\theta = \theta/\|\theta\|`: by Euler's identity the particle grows
# (:math:`\tfrac{d}{dt}\|\theta\|^2 = -4J_{\mu_0}(\theta)`) on blue and shrinks on red.
# Red dots and black rays are the teacher's :math:`a^\star w^\star`, as in the notebook
# (opaque: the teacher neurons of the panel's sign); blue arrows start at the student's
# own particles of that sign, all within :math:`|a_i| R` of the origin, and show their
# :math:`\dot c_i`.


def first_variation_in_chunks(theta, chunk=2000):
    """J_mu0 at many points, a chunk at a time (the sample has 10 000 inputs)."""
    return np.concatenate(
        [
            est.first_variation(student, theta=theta[k : k + chunk])
            for k in range(0, len(theta), chunk)
        ]
    )


def balanced_slice(c, sign):
    """Balanced particles with b = 0, sign of a given, effective neuron a*w = c."""
    a_pts = sign * np.sqrt(np.linalg.norm(c, axis=1))
    w_pts = c / a_pts[:, None]
    return np.column_stack([a_pts, w_pts, np.zeros_like(a_pts)])


side = np.linspace(-1.0, 1.0, 17)
C1, C2 = np.meshgrid(side, side)
c = np.column_stack([C1.ravel(), C2.ravel()])
c = c[np.linalg.norm(c, axis=1) > 1e-9]
fine = np.linspace(-1.05, 1.05, 71)
F1, F2 = np.meshgrid(fine, fine)
c_fine = np.column_stack([F1.ravel(), F2.ravel()])
c_fine[np.linalg.norm(c_fine, axis=1) < 1e-9] = 1e-6

c_teacher = teacher.effective_neurons()[:, :d]
c_student = student.effective_neurons()[:, :d]
cdot_student = v[:, :1] * student.w + student.a[:, None] * v[:, 1:-1]

fig, axes = plt.subplots(1, 2, figsize=(11, 5.0), constrained_layout=True)
for ax, sign in zip(axes, (1.0, -1.0), strict=True):
    th_fine = balanced_slice(c_fine, sign)
    j_dir = first_variation_in_chunks(th_fine) / np.sum(th_fine**2, axis=1)
    lim = np.abs(j_dir).max()
    im = ax.pcolormesh(
        F1, F2, j_dir.reshape(F1.shape), cmap="RdBu_r", vmin=-lim, vmax=lim, shading="auto"
    )
    th = balanced_slice(c, sign)
    v_pts = est.velocity(student, theta=th)
    cdot = v_pts[:, :1] * th[:, 1:-1] + th[:, :1] * v_pts[:, 1:-1]
    ax.quiver(c[:, 0], c[:, 1], cdot[:, 0], cdot[:, 1], color="0.25", angles="xy")
    for cj, aj in zip(c_teacher, teacher.a, strict=True):
        u = np.linspace(0.0, 1.5, 2)
        ax.plot(u * cj[0] / np.linalg.norm(cj), u * cj[1] / np.linalg.norm(cj), "k-", lw=1)
        ax.scatter(*cj, s=120, color="r", alpha=0.8 if np.sign(aj) == sign else 0.2, zorder=3)
    mine = np.sign(student.a) == sign
    ax.quiver(
        c_student[mine, 0],
        c_student[mine, 1],
        cdot_student[mine, 0],
        cdot_student[mine, 1],
        color="tab:blue",
        angles="xy",
        zorder=4,
    )
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$(a\,w)_1$")
    ax.set_ylabel(r"$(a\,w)_2$")
    label = "a > 0" if sign > 0 else "a < 0"
    ax.set_title(rf"$\dot c$ on the slice $b = 0$, ${label}$ ({mine.sum()} students)")
fig.colorbar(im, ax=axes, shrink=0.8, label=r"$J_{\mu_0}(\hat\theta)$")

# %%
# The field is the gradient of :math:`-J_{\mu_0}` and :math:`f_{\mu_0} \approx 0`, so
# :math:`J_{\mu_0} \approx -\mathbb{E}_x[y(x)\varphi(\theta, x)]`. Three of the four
# teacher output weights are positive and the target is mostly positive: the
# :math:`a > 0` half-space is almost all blue (growth), the :math:`a < 0` one almost
# all red (shrinking).
#
# The directions of the inner weights
# -----------------------------------
# Since the output weights are frozen at first, what the notebook's particles do first
# is turn their :math:`(w_i, b_i)`. With :math:`\omega = (w, b)`,
# :math:`J_\mu(a, \omega) = a\,h(\omega)` with :math:`h(\omega) = J_\mu(1, \omega)`, so
# :math:`\tfrac{d}{dt}\omega_i = -a_i\nabla h(\omega_i)`: particles with :math:`a_i > 0`
# descend :math:`h`, those with :math:`a_i < 0` ascend it, at a speed that depends only
# on the direction of :math:`\omega_i`. The map shows :math:`h` on the sphere of
# directions of :math:`\omega`, in longitude :math:`\lambda` (the angle of :math:`w`)
# and latitude :math:`\beta` (the bias), with the teacher's directions and the student's
# initial directions and velocities (arrows, tangent to the sphere).

lam = np.linspace(-np.pi, np.pi, 121)
beta = np.linspace(-np.pi / 2, np.pi / 2, 61)
L, B = np.meshgrid(lam, beta)
omega = np.stack([np.cos(B) * np.cos(L), np.cos(B) * np.sin(L), np.sin(B)], axis=-1)
theta_dirs = np.concatenate([np.ones((*L.shape, 1)), omega], axis=-1).reshape(-1, d + 2)
h = first_variation_in_chunks(theta_dirs)


def lon_lat(om):
    """Longitude and latitude of directions om, shape (k, 3)."""
    om = om / np.linalg.norm(om, axis=1, keepdims=True)
    return np.arctan2(om[:, 1], om[:, 0]), np.arcsin(np.clip(om[:, 2], -1.0, 1.0))


def tangent_in_lon_lat(om, vel):
    """Velocity of the direction of om (k, 3) moving at vel (k, 3), in (dλ, dβ)."""
    r = np.linalg.norm(om, axis=1, keepdims=True)
    u = om / r
    vt = (vel - np.sum(vel * u, axis=1, keepdims=True) * u) / r
    lo, la = lon_lat(om)
    e_lon = np.column_stack([-np.sin(lo), np.cos(lo), np.zeros_like(lo)])
    e_lat = np.column_stack([-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)])
    return np.sum(vt * e_lon, axis=1) / np.cos(la), np.sum(vt * e_lat, axis=1)


fig, ax = plt.subplots(figsize=(10, 5), constrained_layout=True)
im = ax.pcolormesh(L, B, h.reshape(L.shape), cmap="viridis", shading="auto")
fig.colorbar(im, ax=ax, label=r"$h(\omega) = J_{\mu_0}(1, \omega)$")
t_lo, t_la = lon_lat(teacher.theta[:, 1:])
for sgn, marker, name in ((1, "^", r"$a^\star > 0$"), (-1, "v", r"$a^\star < 0$")):
    sel = np.sign(teacher.a) == sgn
    ax.scatter(
        t_lo[sel],
        t_la[sel],
        s=160,
        marker=marker,
        facecolor="none",
        edgecolor="k",
        linewidth=2,
        label=f"teacher, {name}",
    )
s_lo, s_la = lon_lat(student.theta[:, 1:])
d_lo, d_la = tangent_in_lon_lat(student.theta[:, 1:], v[:, 1:])
for sgn, color, name in ((1, "tab:green", r"$a_i > 0$"), (-1, "tab:purple", r"$a_i < 0$")):
    sel = np.sign(student.a) == sgn
    ax.quiver(
        s_lo[sel],
        s_la[sel],
        d_lo[sel],
        d_la[sel],
        color=color,
        angles="xy",
        label=f"student, {name}",
    )
ax.set_xlabel(r"longitude $\lambda$ (angle of $w$)")
ax.set_ylabel(r"latitude $\beta$ (bias)")
ax.set_xlim(-np.pi, np.pi)
ax.set_ylim(-np.pi / 2, np.pi / 2)
ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
ax.set_title(r"the sphere of directions of $\omega = (w, b)$ at initialisation")

j_teacher = est.first_variation(student, theta=np.column_stack([np.ones(m0), teacher.theta[:, 1:]]))
print("h at the teacher directions:", np.round(j_teacher, 4))
print(f"h ranges over [{h.min():.4f}, {h.max():.4f}]")

# %%
# At initialisation the residual is :math:`f_{\mu_0} - y \approx -y`, and this target
# is mostly positive, so :math:`h < 0` almost everywhere and its deepest valley is at a
# large positive bias: a neuron active on most inputs, the single feature best
# correlated with the whole target. All :math:`a_i > 0` students (green) climb towards
# it, whichever teacher neuron is nearest: the first phase fits the bulk of the target,
# not the individual teacher neurons. The :math:`a_i < 0` students (purple) ascend
# :math:`h` towards :math:`h \approx 0`, negative biases where their ReLU is almost
# never active; the teacher's negative neuron is *not* attractive for them at
# :math:`t = 0`. Individual teacher directions can only be resolved once the residual
# has changed, which is why the notebook's animation has phases, and why the signs
# drawn at initialisation matter: balancedness (:doc:`/homogeneity`) keeps the sign of
# every :math:`a_i`, so the number of students of each sign is fixed from the start.
k = np.argmin(h)
lo_min, la_min = lon_lat(theta_dirs[k : k + 1, 1:])
b_min = theta_dirs[k, -1]
print(f"min of h at longitude {lo_min[0]:.2f}, latitude {la_min[0]:.2f} (bias {b_min:.2f})")
print(
    "students with a > 0:",
    int((student.a > 0).sum()),
    "of",
    m,
    "; teacher neurons with a* > 0:",
    int((teacher.a > 0).sum()),
    "of",
    m0,
)

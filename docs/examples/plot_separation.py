r"""
Separation at initialisation: exact verdicts and empirical reports
==================================================================

The global-convergence theorems of :cite:t:`chizat2018global` need the support of the
initial law to *separate* (:doc:`/separation`): for ReLU (Theorem 3.3), every path
from a small sphere :math:`r_a S^{d+1}` to a large one :math:`r_b S^{d+1}` must meet
the support; for partially 1-homogeneous features such as the sigmoid (Theorem 3.5),
every path from :math:`\{-r_0\}\times\Theta` to :math:`\{r_0\}\times\Theta`. This
example asks the question of several initialisation laws, then measures how well
finite samples of them approximate a separating support.
"""

# %%
# Verdicts for several laws
# -------------------------
# :func:`~meanfield.support.support_of` returns the support of a law of
# :mod:`meanfield.measure` with its size parameter, and
# :func:`~meanfield.separation.check_separation` decides exactly whether it separates,
# for the theorem the activation selects. A failing verdict comes with an escaping
# path and, when there is one, the weaker property that holds instead.

import matplotlib.pyplot as plt
import numpy as np

from meanfield.covering import expected_covering_radius
from meanfield.measure import balanced, gaussian, notebook_sphere, sphere
from meanfield.separation import check_separation, empirical_separation
from meanfield.support import support_of

d = 2
laws = {
    "gaussian": ({}, lambda m, rng: gaussian(m, d, rng=rng)),
    "sphere": ({"radius": 0.05}, lambda m, rng: sphere(m, d, radius=0.05, rng=rng)),
    "notebook_sphere": (
        {"radius": 0.05},
        lambda m, rng: notebook_sphere(m, d, radius=0.05, rng=rng),
    ),
    "balanced": ({"scale": 1.0}, lambda m, rng: balanced(m, d, scale=1.0, rng=rng)),
    "positive_a": ({}, None),  # all a >= 0: drawn below as |a| of a Gaussian
}

print(f"{'law':<17} {'ReLU (Thm 3.3)':<28} {'sigmoid (Thm 3.5)':<28}")
verdicts = {}
for name, (params, _) in laws.items():
    support = support_of(name, **params)
    row = []
    for activation in ("relu", "sigmoid"):
        v = check_separation(support, d=d, activation=activation)
        verdicts[name, activation] = v
        why = ", ".join(f"{k} = {val:g}" for k, val in v.witness.items()) or "escapes"
        row.append(f"{'separates' if v.separates else 'fails':<10} ({why})")
    print(f"{name:<17} {row[0]:<28} {row[1]:<28}")

# %%
# The notebook's law is the cylinder :math:`\R\times R\,S^d`: it fails Theorem 3.3,
# because the :math:`a`-axis escapes, but its report says what holds instead.

print(verdicts["notebook_sphere", "relu"].summary())

# %%
# The meridian picture
# --------------------
# Every support above is invariant under rotations of :math:`u = (w, b)`, so it is
# drawn in the half-plane of :math:`(a, \|u\|)`. Grey: 400 particles drawn from the law;
# dashed: the spheres :math:`r_a S^{d+1}` and :math:`r_b S^{d+1}` of the verdict; green:
# the separating sphere when there is one; red: the escaping path otherwise. (The
# all-positive law is :math:`|a|` of a Gaussian.)

fig, axes = plt.subplots(1, 5, figsize=(16, 2.5), constrained_layout=True)
rng = np.random.default_rng(0)
for ax, (name, (_, draw)) in zip(axes, laws.items(), strict=True):
    v = verdicts[name, "relu"]
    if draw is None:
        th = np.array(gaussian(400, d, rng=rng).theta)
        th[:, 0] = np.abs(th[:, 0])
    else:
        th = draw(400, rng).theta
    ax.scatter(th[:, 0], np.linalg.norm(th[:, 1:], axis=1), s=4, color="0.45", alpha=0.6)
    psi = np.linspace(0, np.pi, 200)
    for r in v.radii:
        ax.plot(r * np.cos(psi), r * np.sin(psi), "k--", lw=0.8)
    if v.separates:
        r = v.witness["sphere_radius"]
        ax.plot(r * np.cos(psi), r * np.sin(psi), color="tab:green", lw=2.5)
    else:
        p = v.escaping_path
        ax.plot(
            p[:, 0], np.linalg.norm(p[:, 1:], axis=1), color="tab:red", lw=2.5, marker="o", ms=3
        )
    lim = 2.2 * v.radii[1]
    ax.set(xlim=(-lim, lim), ylim=(0, lim), aspect="equal", xlabel="$a$", ylabel=r"$\|(w, b)\|$")
    ax.set_title(f"{name}: {'separates' if v.separates else 'fails'}", fontsize=10)

# %%
# Empirical measures
# ------------------
# A finite set of particles never separates: removing finitely many points leaves
# :math:`\R^{d+2}` path-connected. What a sample of :math:`m` particles does is cover the
# sphere of directions :math:`S^{d+1}` up to an angle: its covering radius
# :math:`\varepsilon(\mu) = \max_{x\in S^{d+1}}\min_i\angle(x, \theta_i)`, computed by
# :func:`~meanfield.separation.empirical_separation`. For :math:`m` uniform directions
# it shrinks like :math:`(\log m/m)^{1/(d+1)}` (:cite:t:`janson1986random`,
# :func:`~meanfield.covering.expected_covering_radius`). The Gaussian and the sphere
# have uniform directions; the notebook's cylinder puts most of them near the poles
# :math:`\pm e_a` (a particle's angle to the :math:`a`-axis is about
# :math:`R/|a_i|`); the balanced law's directions lie on the two cones
# :math:`|a| = \|(w, b)\|`, which leave the poles and the equator :math:`a = 0` at
# angle :math:`\pi/4`: its covering radius tends to :math:`\pi/4`, not to 0.

widths = np.array([10, 20, 50, 100, 200, 500])
seeds = (1, 2)
cover = {}
for name in ("sphere", "notebook_sphere", "balanced"):
    draw = laws[name][1]
    cover[name] = np.array(
        [
            [empirical_separation(draw(m, s), rng=0).covering["all"].value for s in seeds]
            for m in widths
        ]
    )
expected = np.array([expected_covering_radius(m, d + 1) for m in widths])

fig, ax = plt.subplots(figsize=(6.5, 4.5), constrained_layout=True)
for (name, vals), color in zip(
    cover.items(), ("tab:blue", "tab:orange", "tab:purple"), strict=True
):
    ax.loglog(widths, vals.mean(axis=1), "o-", color=color, label=name)
ax.loglog(widths, expected, "k--", label="uniform directions (Janson)")
ax.axhline(np.pi / 4, color="tab:purple", ls=":", lw=1, label=r"balanced law's limit $\pi/4$")
ax.set_xlabel("number of particles m")
ax.set_ylabel(r"covering radius of the directions (rad)")
ax.set_title(r"how finely $m$ particles cover $S^{3}$")
ax.legend()

# %%
# The report for one sample of the notebook's law, with the covering radius compared
# to that of as many uniform points, and the verdict at a requested resolution:

report = empirical_separation(notebook_sphere(20, d, radius=0.05, rng=1), eps=0.5, rng=0)
print(report.summary())
for m, row, uniform in zip(widths, cover["notebook_sphere"], expected, strict=True):
    print(f"m = {m:4d}: notebook law {row.mean():.3f} rad, uniform directions {uniform:.3f} rad")

r"""The separation hypothesis of the global-convergence theorems, checked at initialisation.

Chizat & Bach (2018) prove that if the Wasserstein gradient flow μ_t converges, its limit
is a global minimiser of F, provided the support of μ₀ *separates*: a set C separates A
from B when every continuous path from A to B meets C.

* 2-homogeneous features (ReLU, Thm 3.3): for some 0 < r_a < r_b,

  .. math:: \operatorname{supp}\mu_0 \text{ separates } r_a S^{d+1} \text{ from } r_b S^{d+1}
     \text{ in } \mathbb{R}^{d+2};

* partially 1-homogeneous features (sigmoid, tanh, erf, Thm 3.5): θ = (a, u) with
  u = (w, b) ∈ Θ = ℝ^{d+1} and, for some r₀ > 0,

  .. math:: \operatorname{supp}\mu_0 \text{ separates } \{-r_0\}\times\Theta
     \text{ from } \{r_0\}\times\Theta,

  e.g. supp μ₀ ⊇ {0} × Θ.  The theorems also assume the support bounded (inside the
  ball of radius r_b, resp. [−r₀, r₀] × Θ); :attr:`SeparationVerdict.bounded` reports it.

**Laws given by their support.**  A :class:`~meanfield.support.Support` is the closed set

.. math::
    S = \{\theta = (a, u) :\ a \in A,\ \|u\| \in P,\ \|\theta\| \in R,\
        \psi(\theta) \in \Psi,\ n_k\cdot u \ge c_k\ \forall k\}

with A, P, R, Ψ finite unions of closed intervals and ψ(θ) ∈ [0, π] the angle between θ and
+e_a (imposed for θ ≠ 0).  It covers the laws of :mod:`meanfield.measure` (Gaussian:
ℝ^{d+2}; sphere: R = {r}; the notebook: P = {R}, a cylinder around the a-axis; balanced:
A = {±s}, P = {s}), "all a ≥ 0", "(w, b) in a half-space", radial shells and angular
sectors.  For this class both questions are decided exactly:

* Thm 3.3 holds iff S contains a whole sphere r S^{d+1}, r > 0;
* Thm 3.5 holds iff S contains a whole slice {a₀} × ℝ^{d+1}.

"If" is the intermediate value theorem.  "Only if": every constraint except the half-spaces
is invariant under rotations of u = (w, b), so paths reduce to the meridian half-plane
H = {(a, ρ) : ρ ≥ 0}; the half-spaces cut S to ρ ≤ min_k |c_k|/‖n_k‖ exactly in the
meridian through −n_k of the tightest one and leave more of S elsewhere, so that meridian
decides.  In H a closed set that separates contains a continuum from the
positive to the negative a-axis avoiding 0 (Thm 3.3), or from ρ = 0 to ρ = ∞ (Thm 3.5);
the projections of that continuum on a, ρ, ‖θ‖ and ψ are intervals inside A, P, R, Ψ, which
forces a whole half-circle (a whole vertical line) into the section of S.  When there is
none, the escaping path is explicit: the complement of S in H is a union of finitely many
relatively open connected *pieces* ({a ∈ gap of A}, {ρ ∈ gap of P}, {‖θ‖ ∈ gap of R},
{ψ ∈ gap of Ψ}); a breadth-first search over pieces, linking two pieces through a point of
their intersection, returns a polyline whose every hop stays inside one piece, so it avoids
S by construction (the tests check both computations against each other on random supports).

**Empirical measures** never separate.  :func:`empirical_separation` reports the covering
radius of the particle directions on S^{d+1} (ReLU), or of the (w, b) directions on S^d for
each sign of a (partially 1-homogeneous), against the covering radius of m uniform points
(Janson 1986): the measure "separates at resolution ε" when that radius is ≤ ε
(:mod:`meanfield.covering`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from meanfield._meridian import (
    _direction_profile,
    _escape,
    _Meridian,
    _meridian,
    _piece_story,
    _scale,
    _slice_a,
    _slice_contains,
    _sphere_radius,
)
from meanfield._validation import as_float_array, check_int, check_positive, describe
from meanfield.activations import Activation, get_activation
from meanfield.covering import CoveringRadius as CoveringRadius
from meanfield.covering import _polar_rows, _probe_args
from meanfield.covering import cap_fraction as cap_fraction
from meanfield.covering import covering_radius as covering_radius
from meanfield.covering import expected_covering_radius as expected_covering_radius
from meanfield.measure import ParticleMeasure, RNGLike
from meanfield.support import _INF, Interval, _covers, _fmt, _intervals
from meanfield.support import Support as Support
from meanfield.support import support_of as support_of

# ``Support`` and ``support_of`` (documented in :mod:`meanfield.support`) and the covering
# radius (:mod:`meanfield.covering`) are also importable from here.
__all__ = [
    "EmpiricalSeparationReport",
    "SeparationVerdict",
    "check_separation",
    "empirical_separation",
]


@dataclass(frozen=True)
class SeparationVerdict:
    """Exact answer to "does supp μ₀ satisfy the separation hypothesis?".

    Attributes
    ----------
    separates : bool
        Whether the hypothesis holds for some radii (Thm 3.3: some 0 < r_a < r_b; Thm 3.5:
        some r₀ > 0).
    theorem : {"3.3", "3.5"}
        Chizat & Bach (2018): 2-homogeneous (ReLU) or partially 1-homogeneous features.
    reason : str
        Why, in words.
    weaker_property : str or None
        What holds instead when it fails (``None`` when it separates).
    escaping_path : ndarray, shape (k, d+2), or None
        A polyline avoiding the support from the small sphere to the large one (3.3) or from
        {−r₀} × Θ to {r₀} × Θ (3.5), for :attr:`radii`; ``None`` when there is none.
    radii : tuple of float
        (r_a, r_b) for 3.3 or (−r₀, r₀) for 3.5: the witness radii when it separates, the
        radii of the escaping path otherwise (or those requested).
    separates_at_radii : bool
        Whether the hypothesis holds at :attr:`radii` (no escaping path there).
    bounded : bool
        Whether the support is bounded (the theorems' containment hypothesis).
    witness : dict
        ``{"sphere_radius": r}`` (3.3) or ``{"slice_a": a₀}`` (3.5) when it separates.
    support : Support
        The support examined.
    """

    separates: bool
    theorem: str
    reason: str
    weaker_property: str | None
    escaping_path: NDArray[np.floating] | None
    radii: tuple[float, float]
    separates_at_radii: bool
    bounded: bool
    witness: dict[str, float] = field(default_factory=dict)
    support: Support = field(default_factory=Support)

    def __bool__(self) -> bool:
        return self.separates

    def summary(self) -> str:
        """Multi-line report."""
        head = "separates" if self.separates else "does NOT separate"
        lines = [
            f"Separation (Chizat & Bach 2018, Thm {self.theorem}): supp μ0 {head}.",
            f"  support: {self.support.describe()}",
            f"  reason: {self.reason}",
        ]
        if self.weaker_property:
            lines.append(f"  weaker property: {self.weaker_property}")
        if self.escaping_path is not None:
            lines.append(f"  escaping path: {len(self.escaping_path)} points, radii {self.radii}")
        return "\n".join(lines)

    __str__ = summary


def _theorem(activation: str | Activation, theorem: str | None) -> str:
    act = get_activation(activation)  # validated even when ``theorem`` overrides it
    if theorem is not None:
        if theorem not in ("3.3", "3.5"):
            raise ValueError(f"theorem must be '3.3' or '3.5'; got {describe(theorem)}")
        return theorem
    return "3.3" if act.degree == 1 else "3.5"


def _radii(radii: object) -> tuple[float, float] | None:
    """Validate the (r_a, r_b) of Thm 3.3: finite, 0 < r_a < r_b."""
    if radii is None:
        return None
    arr = as_float_array("radii", radii, ndim=1)
    if arr.shape != (2,):
        raise ValueError(f"radii must be a pair (r_a, r_b); got {describe(radii)}")
    pair = (check_positive("radii[0]", float(arr[0])), check_positive("radii[1]", float(arr[1])))
    if not pair[0] < pair[1]:
        raise ValueError(f"radii must satisfy r_a < r_b; got {describe(radii)}")
    return pair


def check_separation(
    support: Support | str,
    *,
    d: int,
    activation: str | Activation = "relu",
    theorem: str | None = None,
    radii: tuple[float, float] | None = None,
    r0: float | None = None,
) -> SeparationVerdict:
    r"""Decide exactly whether a support satisfies Chizat & Bach's separation hypothesis.

    .. math::
        \text{3.3: } \exists\, r>0:\ rS^{d+1}\subset S, \qquad
        \text{3.5: } \exists\, a_0:\ \{a_0\}\times\mathbb{R}^{d+1}\subset S

    (equivalent to separation for the class of :class:`~meanfield.support.Support`, see the
    module notes).

    Parameters
    ----------
    support : Support or str
        The support, or a law name for :func:`~meanfield.support.support_of` (default
        parameters).
    d : int
        Input dimension (θ ∈ ℝ^{d+2}).
    activation : str or Activation, default "relu"
        Chooses the theorem: homogeneous σ → Thm 3.3, otherwise Thm 3.5.
    theorem : {"3.3", "3.5"}, optional
        Override the choice.
    radii : (float, float), optional
        (r_a, r_b) for the escaping path of Thm 3.3 (default: around the support's scale).
    r0 : float, optional
        r₀ for the escaping path of Thm 3.5.

    ``radii`` and ``r0`` are both validated whichever theorem applies; the one that does
    not belong to it is then ignored.

    Returns
    -------
    SeparationVerdict

    Raises
    ------
    TypeError, ValueError
        Naming the invalid argument.
    """
    d = check_int("d", d)
    s = support_of(support) if isinstance(support, str) else support
    if not isinstance(s, Support):
        raise TypeError(f"support must be a Support or a law name; got {describe(support)}")
    thm = _theorem(activation, theorem)
    requested = _radii(radii)
    r0 = None if r0 is None else check_positive("r0", r0)
    mer = _meridian(s, d)
    scale = _scale(mer)
    witness: dict[str, float] = {}
    if thm == "3.3":
        rad = _sphere_radius(mer)
        if requested is not None:
            pair = requested
        elif rad is not None:  # bracket the sphere; r_b also bounds the support when it can
            outer = s.sup_norm if s.bounded else 0.0
            pair = (0.5 * rad, max(2.0 * rad, outer))
        else:
            pair = (0.5 * scale, 2.0 * scale)
        path2 = _escape(mer, ("r", pair[0]), ("r", pair[1]))
        if rad is not None:
            witness = {"sphere_radius": rad}
    else:
        a0 = _slice_a(s, mer)
        if r0 is not None:
            rr = r0
        elif a0 is not None:  # r0 ≥ |a0| separates; r0 ≥ sup |a| also contains the support
            amax = max(abs(s.a[0][0]), abs(s.a[-1][1]))
            rr = max(abs(a0), amax if math.isfinite(amax) else 1.0)
        else:
            rr = 2.0 * scale
        pair = (-rr, rr)
        path2 = _escape(mer, ("a", -rr), ("a", rr))
        if a0 is not None:
            witness = {"slice_a": a0}
    path = None if path2 is None else np.column_stack([path2[:, 0], path2[:, 1:2] * mer.omega])
    ok = bool(witness)
    reason, weaker = _explain(s, mer, thm, ok, witness, path2)
    return SeparationVerdict(
        ok, thm, reason, weaker, path, pair, path2 is None, s.bounded, witness, s
    )


def _explain(
    s: Support,
    mer: _Meridian,
    thm: str,
    ok: bool,
    witness: dict[str, float],
    path2: NDArray[np.floating] | None,
) -> tuple[str, str | None]:
    bound = (
        ""
        if s.bounded
        else " The support is unbounded, so the theorem's containment "
        "hypothesis holds only after truncating μ0 far out."
    )
    if ok and thm == "3.3":
        r = witness["sphere_radius"]
        return (
            f"supp μ0 contains the sphere ‖θ‖ = {r:.4g}; every path from r_a·S^{{d+1}} to "
            f"r_b·S^{{d+1}} with r_a < {r:.4g} < r_b crosses it (intermediate values of ‖θ‖)."
            + bound,
            None,
        )
    if ok:
        a0 = witness["slice_a"]
        return (
            f"supp μ0 contains the slice {{a = {a0:.4g}}} × ℝ^{{d+1}}; every path from "
            f"{{−r0}} × Θ to {{r0}} × Θ with r0 {'> 0' if a0 == 0 else f'≥ {abs(a0):.4g}'} "
            "crosses it (intermediate values of a)." + bound,
            None,
        )
    where = " (in the meridian through −n)" if s.u_halfspaces else ""
    story = "" if path2 is None else f" Escaping path{where}: {_piece_story(path2, mer)}."
    if thm == "3.3":
        reason = (
            "supp μ0 contains no whole sphere r·S^{d+1} (r > 0), which for a support of "
            "this form is equivalent to failure." + story
        )
        hit_pts, hit_arcs, missed = _direction_profile(mer)
        where = " in the meridian through −n" if s.u_halfspaces else ""
        if sum(y - x for x, y in hit_arcs) >= math.pi * (1 - 1e-12):
            named = ", ".join({0.0: "+e_a", math.pi: "−e_a"}.get(x, f"ψ = {x:.4g}") for x in missed)
            weaker = (
                f"its set of directions is dense in S^{{d+1}}: it meets every ray from 0 "
                f"except {named}{where} (ψ = angle to +e_a)."
            )
        else:
            merged: list[Interval] = (
                list(_intervals("hit", [(x, x) for x in hit_pts] + hit_arcs, "psi"))
                if hit_pts or hit_arcs
                else []
            )
            weaker = (
                f"its rays from 0 have angles ψ ∈ {_fmt(merged)} to +e_a only{where}: "
                "whole open cones of directions miss it, so no asymptotic separation."
            )
        beta = [hi if math.isfinite(hi) else lo for lo, hi in mer.P if hi > 0]
        t_r = next((lo for lo, hi in mer.R if hi == _INF), _INF)
        if (
            not s.u_halfspaces
            and mer.A == ((-_INF, _INF),)
            and _covers(mer.Psi, 0.0, math.pi)
            and beta
            and t_r <= beta[0]
        ):
            b = beta[0]
            weaker += (
                f" It separates asymptotically: for every α ∈ (0, π/2] it separates "
                f"r_a·S^{{d+1}} from r_b·S^{{d+1}} inside the cone K_α = {{‖(w,b)‖ ≥ ‖θ‖ sin α}} "
                f"whenever r_a < {b:.4g} < {b:.4g}/sin α < r_b (the surface ‖(w,b)‖ = {b:.4g} "
                "crosses K_α); only the a-axis escapes, with r_b → ∞ as α → 0."
            )
        return reason, weaker
    reason = (
        "supp μ0 contains no whole slice {a0} × ℝ^{d+1}, which for a support of this form "
        "is equivalent to failure (Θ = ℝ^{d+1}: (w, b) is unconstrained)." + story
    )
    if s.u_halfspaces:
        return reason, "none of this form: the half-space leaves some (w, b) with no neuron at all."
    theta2 = f"Θ'' = {{(w,b) : ‖(w,b)‖ ∈ {_fmt(mer.P)}}}"
    ends = [0.0] + [x for iv in mer.A for x in iv if math.isfinite(x) and x != 0.0]
    found = [a0 for a0 in ends if _slice_contains(mer, a0)]
    if 0.0 in found:
        return reason, (
            f"it contains {{0}} × {theta2}: the separation of Thm 3.5 holds for the "
            f"smaller parameter space {theta2}, i.e. if (w, b) were confined to it."
        )
    if found:
        signs = sorted({np.sign(a) for a in found})
        both = " for both signs of a" if len(signs) == 2 else ""
        a_set = "{" + ", ".join(f"{a:.4g}" for a in sorted(set(found))) + "}"
        return reason, (
            f"it contains {{a0}} × {theta2} for a0 ∈ {a_set}{both}: every "
            f"(w, b) ∈ {theta2} is present with that output weight."
        )
    return reason, None


# -- empirical measures ------------------------------------------------------------------------
@dataclass(frozen=True)
class EmpiricalSeparationReport:
    """How close an empirical measure comes to a separating support.

    Attributes
    ----------
    theorem : {"3.3", "3.5"}
    covering : dict of str to CoveringRadius
        ``{"all": …}`` (3.3, directions on S^{d+1}) or ``{"a>0": …, "a<0": …}`` (3.5,
        directions of (w, b) on S^d; particles with a = 0 count for both signs).
    counts : dict of str to int
        Particles behind each covering radius.
    resolution : float
        The largest (upper-bound) covering radius: the measure separates at resolution ε
        for every ε ≥ ``resolution``.
    expected : dict of str to float
        Covering radius of as many uniform points (Janson's asymptotics; NaN for < 3).
    radial_range : tuple of float
        min and max of ‖θᵢ‖ (3.3) or of ‖(wᵢ, bᵢ)‖ (3.5).
    a_range : tuple of float
        min and max of aᵢ.
    eps : float or None
        The requested resolution, if any.
    """

    theorem: str
    covering: dict[str, CoveringRadius]
    counts: dict[str, int]
    resolution: float
    expected: dict[str, float]
    radial_range: tuple[float, float]
    a_range: tuple[float, float]
    eps: float | None = None

    def separates_at(self, eps: float) -> bool:
        """Whether every direction lies within angle ``eps`` of a particle direction."""
        return bool(self.resolution <= check_positive("eps", eps))

    def summary(self) -> str:
        """Multi-line report."""
        lines = [
            f"Empirical separation (Thm {self.theorem}): resolution ε = {self.resolution:.4g} rad"
        ]
        for key, cov in self.covering.items():
            exact = "exact" if cov.exact else f"≤ {cov.upper:.4g} w.p. {cov.confidence}"
            lines.append(
                f"  {key}: {self.counts[key]} directions on S^{cov.k}, covering radius "
                f"{cov.value:.4g} ({exact}); uniform points: ≈ {self.expected[key]:.4g}"
            )
        lines.append(
            f"  radial range {self.radial_range[0]:.4g} … {self.radial_range[1]:.4g}, "
            f"a ∈ [{self.a_range[0]:.4g}, {self.a_range[1]:.4g}]"
        )
        if self.eps is not None:
            verdict = "separates" if self.separates_at(self.eps) else "does not separate"
            lines.append(f"  verdict: {verdict} at resolution ε = {self.eps:.4g}")
        return "\n".join(lines)

    __str__ = summary


def empirical_separation(
    measure: ParticleMeasure,
    *,
    activation: str | Activation = "relu",
    theorem: str | None = None,
    eps: float | None = None,
    n_probe: int = 20_000,
    confidence: float = 0.999,
    rng: RNGLike = None,
) -> EmpiricalSeparationReport:
    r"""Quantitative separation report for an empirical measure μ = Σ pᵢ δ_{θᵢ}.

    Thm 3.3: covering radius of {θᵢ/‖θᵢ‖} on S^{d+1}; Thm 3.5: of {uᵢ/‖uᵢ‖} on S^d for
    each sign of aᵢ.  Particles of zero mass are not in the support and are ignored.

    .. math:: \varepsilon(\mu) = \max_{x\in S^{k}}\ \min_{i}\ \angle(x, \hat\theta_i)

    Parameters
    ----------
    measure : ParticleMeasure
        A single measure (``batch_shape == ()``; use :meth:`ParticleMeasure.replica`).
    activation : str or Activation, default "relu"
    theorem : {"3.3", "3.5"}, optional
    eps : float, optional
        Resolution for the verdict line of the summary.
    n_probe, confidence, rng
        Passed to :func:`~meanfield.covering.covering_radius` when it needs the estimator
        (k ≥ 3); validated in every case.

    Returns
    -------
    EmpiricalSeparationReport

    Raises
    ------
    TypeError, ValueError
        Naming the invalid argument; ``ValueError`` naming ``measure`` when a particle's
        norm exceeds the float64 range (directions are computed without overflow).
    """
    if not isinstance(measure, ParticleMeasure):
        raise TypeError(f"measure must be a ParticleMeasure; got {describe(measure)}")
    if measure.batch_shape:
        raise ValueError(f"measure must be a single measure; got batch_shape {measure.batch_shape}")
    thm = _theorem(activation, theorem)
    eps = None if eps is None else check_positive("eps", eps)
    n_probe, confidence, gen = _probe_args(n_probe, confidence, rng)
    th = measure.theta[measure.masses > 0].astype(np.float64)
    a = th[:, 0]
    scale, length, unit = _polar_rows(th if thm == "3.3" else th[:, 1:])
    with np.errstate(over="ignore"):
        norms = scale * length
    if not np.all(np.isfinite(norms)):
        raise ValueError(
            "measure has particles whose norm overflows float64 (entries up to "
            f"{np.max(np.abs(th)):.3g}); rescale it"
        )
    if thm == "3.3":
        groups = {"all": unit[scale > 0]}
    else:
        groups = {"a>0": unit[(a >= 0) & (scale > 0)], "a<0": unit[(a <= 0) & (scale > 0)]}
    radial = (float(norms.min()), float(norms.max()))
    gens = dict(zip(groups, gen.spawn(len(groups)), strict=True))
    cover, counts, expected = {}, {}, {}
    for key, pts in groups.items():
        counts[key] = int(pts.shape[0])
        k = th.shape[1] - (1 if thm == "3.3" else 2)
        if pts.shape[0] == 0:
            cover[key] = CoveringRadius(
                math.pi, math.pi, math.pi, True, "empty", k, 1.0, np.eye(k + 1)[0]
            )
        else:
            cover[key] = covering_radius(pts, n_probe=n_probe, confidence=confidence, rng=gens[key])
        expected[key] = expected_covering_radius(counts[key], k) if counts[key] >= 3 else math.nan
    resolution = max(c.upper for c in cover.values())
    return EmpiricalSeparationReport(
        thm,
        cover,
        counts,
        float(resolution),
        expected,
        radial,
        (float(a.min()), float(a.max())),
        eps,
    )

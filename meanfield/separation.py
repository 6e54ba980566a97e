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

**Laws given by their support.**  A :class:`Support` is the closed set

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
(Janson 1986): the measure "separates at resolution ε" when that radius is ≤ ε.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special
from scipy.spatial import ConvexHull, QhullError, cKDTree

from meanfield._validation import as_float_array, check_int, check_positive, describe
from meanfield.activations import Activation, get_activation
from meanfield.measure import ParticleMeasure, RNGLike

__all__ = [
    "CoveringRadius",
    "EmpiricalSeparationReport",
    "SeparationVerdict",
    "Support",
    "cap_fraction",
    "check_separation",
    "covering_radius",
    "empirical_separation",
    "expected_covering_radius",
    "support_of",
]

Interval = tuple[float, float]
Array = NDArray[np.floating]
Gap = tuple[str, float, float, bool, bool]  # (kind, lo, hi, lo_closed, hi_closed)
_INF = math.inf
_DOMAINS = {"a": (-_INF, _INF), "rho": (0.0, _INF), "r": (0.0, _INF), "psi": (0.0, math.pi)}
_NAMES = {"a": "a", "rho": "‖(w,b)‖", "r": "‖θ‖", "psi": "ψ"}


# -- finite unions of closed intervals ----------------------------------------------------
def _intervals(name: str, value: Any, kind: str) -> tuple[Interval, ...]:
    lo_dom, hi_dom = _DOMAINS[kind]
    if value is None:
        return ((lo_dom, hi_dom),)
    arr = as_float_array(name, value, finite=False)
    if arr.ndim == 0:
        arr = np.array([[arr, arr]])
    elif arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            f"{name} must be a number, a pair (lo, hi) or pairs; got shape {arr.shape}"
        )
    if np.any(np.isnan(arr)) or np.any(arr[:, 0] > arr[:, 1]):
        raise ValueError(f"{name} must hold intervals with lo <= hi; got {arr.tolist()}")
    if np.any(arr[:, 0] < lo_dom) or np.any(arr[:, 1] > hi_dom):
        raise ValueError(f"{name} must lie in [{lo_dom}, {hi_dom}]; got {arr.tolist()}")
    out: list[list[float]] = []
    for lo, hi in sorted(map(tuple, arr.tolist())):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def _member(
    iv: Sequence[Interval], x: NDArray[np.floating], atol: float = 0.0
) -> NDArray[np.bool_]:
    x = np.asarray(x, dtype=float)
    hit = np.zeros(x.shape, dtype=bool)
    for lo, hi in iv:
        hit |= (x >= lo - atol) & (x <= hi + atol)
    return hit


def _covers(iv: Sequence[Interval], lo: float, hi: float) -> bool:
    return any(l0 <= lo and hi <= h0 for l0, h0 in iv)


def _cut(iv: Sequence[Interval], lo: float, hi: float) -> tuple[Interval, ...]:
    return tuple((max(a, lo), min(b, hi)) for a, b in iv if max(a, lo) <= min(b, hi))


def _gaps(kind: str, iv: Sequence[Interval]) -> list[Gap]:
    """Components of the domain minus ∪iv, relatively open: closed only at the domain's ends."""
    lo_dom, hi_dom = _DOMAINS[kind]
    out: list[Gap] = []
    prev, at_domain = lo_dom, True
    for lo, hi in iv:
        if lo > prev:
            out.append((kind, prev, lo, at_domain and math.isfinite(prev), False))
        prev, at_domain = max(prev, hi), False
    if prev < hi_dom:
        out.append((kind, prev, hi_dom, at_domain and math.isfinite(prev), math.isfinite(hi_dom)))
    return out


def _fmt(iv: Sequence[Interval]) -> str:
    def num(x: float) -> str:
        return "∞" if x == _INF else "−∞" if x == -_INF else f"{x:.4g}"

    parts = [f"{{{num(a)}}}" if a == b else f"[{num(a)}, {num(b)}]" for a, b in iv]
    return " ∪ ".join(parts) if parts else "∅"


# -- the support description ------------------------------------------------------------------
@dataclass(frozen=True)
class Support:
    r"""A closed subset of ℝ^{d+2} given by constraints on θ = (a, u), u = (w, b).

    .. math::
        S = \{a \in A,\ \|u\| \in P,\ \|\theta\| \in R,\ \psi(\theta)\in\Psi,\
            n_k\cdot u \ge c_k\}

    Parameters
    ----------
    a, u_norm, norm, polar_angle : number, pair or sequence of pairs, optional
        A ⊂ ℝ, P ⊂ [0, ∞), R ⊂ [0, ∞), Ψ ⊂ [0, π] as finite unions of closed intervals
        (a number is a point, ``(lo, hi)`` an interval, ``inf`` allowed).  Default: no
        constraint.  ψ(θ) is the angle between θ and +e_a, imposed for θ ≠ 0.
    u_halfspaces : sequence of (normal, offset), optional
        Constraints n_k·u ≥ c_k with n_k ∈ ℝ^{d+1}.
    name : str, optional
        Label used in reports.
    """

    a: Any = None
    u_norm: Any = None
    norm: Any = None
    polar_angle: Any = None
    u_halfspaces: Any = ()
    name: str = ""

    def __post_init__(self) -> None:
        for field_name, kind in (
            ("a", "a"),
            ("u_norm", "rho"),
            ("norm", "r"),
            ("polar_angle", "psi"),
        ):
            object.__setattr__(
                self, field_name, _intervals(field_name, getattr(self, field_name), kind)
            )
        hs = []
        for k, item in enumerate(self.u_halfspaces):
            if not isinstance(item, Sequence) or len(item) != 2:
                raise TypeError(
                    f"u_halfspaces[{k}] must be a pair (normal, offset); got {describe(item)}"
                )
            n = as_float_array(f"u_halfspaces[{k}] normal", item[0], ndim=1)
            c = float(as_float_array(f"u_halfspaces[{k}] offset", item[1], ndim=0))
            if not np.any(n):
                raise ValueError(f"u_halfspaces[{k}] normal must be nonzero; got {n.tolist()}")
            hs.append((tuple(n.tolist()), c))
        object.__setattr__(self, "u_halfspaces", tuple(hs))

    # -- constructors for the laws of meanfield.measure ---------------------------------
    @classmethod
    def full(cls) -> Support:
        """ℝ^{d+2}: the support of :func:`meanfield.measure.gaussian`."""
        return cls(name="ℝ^{d+2} (Gaussian)")

    @classmethod
    def sphere(cls, radius: float = 1.0) -> Support:
        """r·S^{d+1}: the support of :func:`meanfield.measure.sphere`."""
        r = check_positive("radius", radius)
        return cls(norm=r, name=f"the sphere ‖θ‖ = {r:g}")

    @classmethod
    def notebook_sphere(cls, radius: float = 0.05) -> Support:
        """ℝ × R·S^d, a cylinder around the a-axis: the notebook's law."""
        r = check_positive("radius", radius)
        return cls(u_norm=r, name=f"the cylinder ℝ × {r:g}·S^d (a ∈ ℝ, ‖(w,b)‖ = {r:g})")

    @classmethod
    def balanced(cls, scale: float = 1.0) -> Support:
        """{±s} × s·S^d: the support of :func:`meanfield.measure.balanced`."""
        s = check_positive("scale", scale)
        return cls(a=[(-s, -s), (s, s)], u_norm=s, name=f"{{±{s:g}}} × {s:g}·S^d (balanced)")

    @classmethod
    def balanced_cone(cls) -> Support:
        """Return the double cone |a| = ‖(w, b)‖ (balanced laws, radius of full support)."""
        return cls(
            polar_angle=[(math.pi / 4,) * 2, (3 * math.pi / 4,) * 2],
            name="the double cone |a| = ‖(w,b)‖",
        )

    @classmethod
    def positive_a(cls) -> Support:
        """Return the half-space a ≥ 0 (the closed support of a law with all a > 0)."""
        return cls(a=(0.0, _INF), name="the half-space a ≥ 0")

    @classmethod
    def u_halfspace(cls, normal: ArrayLike, offset: float = 0.0) -> Support:
        """Return {(a, u) : n·u ≥ c}: all (w, b) in a half-space."""
        return cls(u_halfspaces=[(normal, offset)], name=f"the half-space n·(w,b) ≥ {offset:g}")

    # -- queries ----------------------------------------------------------------------
    def contains(self, theta: ArrayLike, *, atol: float = 0.0) -> NDArray[np.bool_]:
        """Membership of points ``theta`` of shape ``(..., d+2)``; returns shape ``(...)``.

        ``atol`` widens every constraint (angles in radians).
        """
        th = as_float_array("theta", theta, min_ndim=1)
        u = th[..., 1:]
        rho, r = np.linalg.norm(u, axis=-1), np.linalg.norm(th, axis=-1)
        psi = np.arctan2(rho, th[..., 0])
        ok = _member(self.a, th[..., 0], atol) & _member(self.u_norm, rho, atol)
        ok &= _member(self.norm, r, atol) & (_member(self.polar_angle, psi, atol) | (r == 0))
        for n, c in self.u_halfspaces:
            if len(n) != u.shape[-1]:
                raise ValueError(
                    f"theta must have {len(n) + 1} columns to match the half-space "
                    f"normals; got shape {th.shape}"
                )
            ok &= u @ np.asarray(n) >= c - atol * np.linalg.norm(n)
        return ok

    @property
    def sup_norm(self) -> float:
        """An upper bound on ‖θ‖ over S (``inf`` when unbounded)."""
        by_r = self.norm[-1][1] if self.norm else 0.0
        amax = max(abs(self.a[0][0]), abs(self.a[-1][1])) if self.a else 0.0
        pmax = self.u_norm[-1][1] if self.u_norm else 0.0
        return float(min(by_r, math.hypot(amax, pmax)))

    @property
    def bounded(self) -> bool:
        """Whether S is bounded."""
        return math.isfinite(self.sup_norm)

    def describe(self) -> str:
        """Human-readable description."""
        if self.name:
            return self.name
        parts = [
            f"{_NAMES[k]} ∈ {_fmt(v)}"
            for k, v in (
                ("a", self.a),
                ("rho", self.u_norm),
                ("r", self.norm),
                ("psi", self.polar_angle),
            )
            if v != ((_DOMAINS[k]),)
        ]
        parts += [f"{np.round(n, 4).tolist()}·(w,b) ≥ {c:g}" for n, c in self.u_halfspaces]
        return "{θ : " + ", ".join(parts) + "}" if parts else "ℝ^{d+2}"


_LAWS: dict[str, Callable[..., Support]] = {
    "gaussian": lambda **kw: Support.full(),
    "sphere": Support.sphere,
    "notebook_sphere": Support.notebook_sphere,
    "notebook_teacher": lambda **kw: Support.notebook_sphere(1.0),
    "balanced": Support.balanced,
    "balanced_cone": Support.balanced_cone,
    "positive_a": Support.positive_a,
}


def support_of(law: str | Callable[..., Any], **params: Any) -> Support:
    """Support of an initialisation law of :mod:`meanfield.measure` with its parameters.

    Parameters
    ----------
    law : str or callable
        ``"gaussian"``, ``"sphere"``, ``"notebook_sphere"``, ``"balanced"``,
        ``"balanced_cone"``, ``"positive_a"`` or the law function itself.
    **params
        The law's size parameter (``radius``, ``scale``; ``std`` is irrelevant).

    Returns
    -------
    Support
    """
    key = law if isinstance(law, str) else getattr(law, "__name__", "")
    if key not in _LAWS:
        raise ValueError(f"law must be one of {sorted(_LAWS)} or their functions; got {law!r}")
    params.pop("std", None)
    return _LAWS[key](**params)


# -- the meridian half-plane H = {(a, ρ) : ρ ≥ 0} -----------------------------------------------
@dataclass(frozen=True)
class _Meridian:
    A: tuple[Interval, ...]
    P: tuple[Interval, ...]
    R: tuple[Interval, ...]
    Psi: tuple[Interval, ...]
    omega: NDArray[np.floating]  # unit vector of u-space spanning the meridian


def _meridian(s: Support, d: int) -> _Meridian:
    omega, P = np.zeros(d + 1), s.u_norm
    omega[0] = 1.0
    if s.u_halfspaces:
        for n, _ in s.u_halfspaces:
            if len(n) != d + 1:
                raise ValueError(f"u_halfspaces normals must have length d+1={d + 1}; got {len(n)}")
        ns = [np.asarray(n) for n, _ in s.u_halfspaces]
        cs = np.array([c for _, c in s.u_halfspaces])
        norms = np.array([np.linalg.norm(n) for n in ns])
        k = int(np.argmax(cs / norms))  # the tightest constraint along its own −n direction
        omega = -ns[k] / norms[k]
        P = () if cs[k] > 0 else _cut(P, 0.0, -cs[k] / norms[k])
    return _Meridian(s.a, P, s.norm, s.polar_angle, omega)


def _coords(p: Sequence[float]) -> dict[str, float]:
    a, rho = float(p[0]), float(p[1])
    r = math.hypot(a, rho)
    return {"a": a, "rho": rho, "r": r, "psi": math.atan2(rho, a) if r > 0 else math.nan}


def _in_gap(g: Gap, p: Sequence[float]) -> bool:
    kind, lo, hi, lo_c, hi_c = g
    v = _coords(p)[kind]
    if math.isnan(v) or p[1] < 0:
        return False
    return (v >= lo if lo_c else v > lo) and (v <= hi if hi_c else v < hi)


def _pick(lo: float, hi: float, lb: float = -_INF, ub: float = _INF) -> float | None:
    """Return a point of the open interval (max(lo, lb), min(hi, ub)), or None."""
    lo, hi = max(lo, lb), min(hi, ub)
    if not lo < hi:
        return None
    if math.isinf(lo) and math.isinf(hi):
        return 0.0
    if math.isinf(hi):
        return lo + max(1.0, abs(lo))
    if math.isinf(lo):
        return hi - max(1.0, abs(hi))
    return 0.5 * (lo + hi)


def _witness(g: Gap, h: Gap) -> tuple[float, float] | None:
    """Return a point of H in both pieces (None when they are disjoint)."""
    order = ["a", "rho", "r", "psi"]
    if order.index(g[0]) > order.index(h[0]):
        g, h = h, g
    kinds, (lo1, hi1), (lo2, hi2) = (g[0], h[0]), g[1:3], h[1:3]
    p: tuple[float, float] | None = None
    if kinds[0] == kinds[1]:
        return None
    if kinds == ("a", "rho"):
        a, rho = _pick(lo1, hi1), _pick(lo2, hi2, lb=0.0)
        p = None if a is None or rho is None else (a, rho)
    elif kinds in (("a", "r"), ("rho", "r")):
        m = (0.0 if lo1 < 0 < hi1 else min(abs(lo1), abs(hi1))) if kinds[0] == "a" else lo1
        r = _pick(lo2, hi2, lb=max(m, 0.0))
        x = (
            None
            if r is None
            else (
                _pick(lo1, hi1, lb=-r, ub=r) if kinds[0] == "a" else _pick(lo1, hi1, lb=0.0, ub=r)
            )
        )
        if r is not None and x is not None:
            y = math.sqrt(max(r * r - x * x, 0.0))
            p = (x, y) if kinds[0] == "a" else (y, x)
    elif kinds == ("a", "psi"):
        for alo, ahi, plo, phi in (
            (0.0, _INF, 0.0, math.pi / 2),
            (-_INF, 0.0, math.pi / 2, math.pi),
        ):
            a, psi = _pick(lo1, hi1, alo, ahi), _pick(lo2, hi2, plo, phi)
            if a is not None and psi is not None:
                p = (a, a * math.tan(psi))
                break
    else:  # (rho, psi) or (r, psi): polar point
        rad, psi = _pick(lo1, hi1, lb=0.0), _pick(lo2, hi2, 0.0, math.pi)
        if rad is not None and psi is not None:
            p = (
                (rad * math.cos(psi) / math.sin(psi), rad)
                if kinds[0] == "rho"
                else (rad * math.cos(psi), rad * math.sin(psi))
            )
    return p if p is not None and _in_gap(g, p) and _in_gap(h, p) else None


def _anchor(g: Gap, target: str, value: float) -> tuple[float, float] | None:
    """Return a point of piece g on the circle ‖θ‖ = value ("r") or the line a = value ("a")."""
    kind, lo, hi = g[:3]
    if target == "r":
        circle: Gap = ("r", value * (1 - 1e-12), value * (1 + 1e-12), False, False)
        p = (0.0, value) if kind == "r" else _witness(g, circle)
        if p is not None:
            scale = value / math.hypot(*p)
            p = (p[0] * scale, p[1] * scale)
    else:
        a0 = value
        if kind == "a":
            p = (a0, 1.0)
        elif kind == "rho":
            rho = _pick(lo, hi, lb=0.0)
            p = None if rho is None else (a0, rho)
        elif kind == "r":
            r = _pick(lo, hi, lb=abs(a0))
            p = None if r is None else (a0, math.sqrt(r * r - a0 * a0))
        else:
            psi = _pick(lo, hi, 0.0, math.pi / 2) if a0 > 0 else _pick(lo, hi, math.pi / 2, math.pi)
            p = None if psi is None else (a0, a0 * math.tan(psi))
    return p if p is not None and _in_gap(g, p) else None


def _hop(g: Gap, p: tuple[float, float], q: tuple[float, float]) -> list[tuple[float, float]]:
    """Polyline from p to q inside piece g (p and q in g), without p."""
    kind, lo = g[0], g[1]
    if kind == "psi" and p[0] * q[1] - p[1] * q[0] == 0 and p[0] * q[0] + p[1] * q[1] < 0:
        mid_r = max(math.hypot(*p), math.hypot(*q))
        return [(0.0, mid_r), q]  # avoid the origin (only when Ψ = ∅, so ψ = π/2 is free)
    if kind != "r" or (lo == 0.0 and g[3]):
        return [q]
    rp, sp, sq = math.hypot(*p), math.atan2(p[1], p[0]), math.atan2(q[1], q[0])
    step = min(math.pi / 32, math.acos(min(lo / rp, 1.0)))  # chords stay above radius lo
    n = max(1, math.ceil(abs(sq - sp) / step)) if step > 0 else 1
    arc = [(rp * math.cos(t), rp * math.sin(t)) for t in np.linspace(sp, sq, n + 1)[1:]]
    return [*arc, q]


def _escape(
    mer: _Meridian, start: tuple[str, float], goal: tuple[str, float]
) -> NDArray[np.floating] | None:
    """Breadth-first search over the pieces of H minus S; a polyline (k, 2) or None."""
    pieces = [
        g
        for kind, iv in (("a", mer.A), ("rho", mer.P), ("r", mer.R), ("psi", mer.Psi))
        for g in _gaps(kind, iv)
    ]
    starts = {i: p for i, g in enumerate(pieces) if (p := _anchor(g, *start)) is not None}
    goals = {i: p for i, g in enumerate(pieces) if (p := _anchor(g, *goal)) is not None}
    parent: dict[int, tuple[int, tuple[float, float]] | None] = dict.fromkeys(starts)
    queue = deque(starts)
    while queue:
        i = queue.popleft()
        if i in goals:
            chain, j = [], i
            while parent[j] is not None:
                k, w = parent[j]  # type: ignore[misc]
                chain.append((j, w))
                j = k
            chain.reverse()
            pts, cur, piece = [starts[j]], starts[j], j
            for nxt, w in chain:
                pts += _hop(pieces[piece], cur, w)
                cur, piece = w, nxt
            pts += _hop(pieces[piece], cur, goals[i])
            return np.array(pts)
        for j, h in enumerate(pieces):
            if j not in parent and (w := _witness(pieces[i], h)) is not None:
                parent[j] = (i, w)
                queue.append(j)
    return None


def _ray_hits(mer: _Meridian, psi: float) -> bool:
    """Whether the open ray at polar angle ψ meets the meridian section of S."""
    if not _member(mer.Psi, np.array(psi)):
        return False
    t_sets = [mer.R]
    for iv, c in ((mer.A, math.cos(psi)), (mer.P, math.sin(psi))):
        if abs(c) < 1e-15:
            t_sets.append(((0.0, _INF),) if _member(iv, np.array(0.0)) else ())
        else:
            t_sets.append(tuple(sorted((min(x / c, y / c), max(x / c, y / c)) for x, y in iv)))
    cur: list[Interval] = [(0.0, _INF)]
    for ts in t_sets:
        cur = [
            (max(a, c), min(b, e))
            for a, b in cur
            for c, e in ts
            if max(a, c) <= min(b, e) + 1e-12 * (1.0 + abs(min(b, e)))
        ]  # ulp-level slack
    return any(b > 0 for _, b in cur)


def _direction_profile(mer: _Meridian) -> tuple[list[float], list[Interval], list[float]]:
    """Exact set of polar angles whose ray meets S: (hit angles, hit open arcs, missed angles)."""
    bp = {0.0, math.pi / 2, math.pi} | {x for iv in mer.Psi for x in iv}
    ends_a = [x for iv in mer.A for x in iv if math.isfinite(x)]
    ends_p = [x for iv in mer.P for x in iv if math.isfinite(x)]
    for r in (x for iv in mer.R for x in iv if math.isfinite(x) and x > 0):
        bp |= {math.acos(a / r) for a in ends_a if abs(a) <= r}
        bp |= {t for p in ends_p if p <= r for t in (math.asin(p / r), math.pi - math.asin(p / r))}
    bp |= {math.atan2(p, a) for a in ends_a for p in ends_p if (a, p) != (0.0, 0.0)}
    pts = sorted(x for x in bp if 0.0 <= x <= math.pi)
    arcs = [(x, y) for x, y in itertools.pairwise(pts) if y > x]
    hit_arcs = [(x, y) for x, y in arcs if _ray_hits(mer, 0.5 * (x + y))]
    hit_pts = [x for x in pts if _ray_hits(mer, x)]
    return hit_pts, hit_arcs, [x for x in pts if x not in hit_pts]


# -- exact verdicts --------------------------------------------------------------------------
def _sphere_radius(mer: _Meridian) -> float | None:
    """Largest r > 0 with r·S^{d+1} ⊂ S (a representative one if unbounded), or None."""
    if not _covers(mer.Psi, 0.0, math.pi):
        return None
    comp_a = [(lo, hi) for lo, hi in mer.A if lo <= 0.0 <= hi]
    comp_p = [hi for lo, hi in mer.P if lo == 0.0]
    if not comp_a or not comp_p:
        return None
    ell = min(-comp_a[0][0], comp_a[0][1], comp_p[0])
    radii = [iv for iv in _cut(mer.R, 0.0, ell) if iv[1] > 0]
    if not radii:
        return None
    lo, hi = radii[-1]
    return hi if math.isfinite(hi) else max(lo, 1.0)


def _slice_a(s: Support, mer: _Meridian) -> float | None:
    """Return the a₀ of smallest |a₀| with {a₀} × ℝ^{d+1} ⊂ S, or None."""
    if s.u_halfspaces or not _covers(mer.P, 0.0, _INF):
        return None
    t_r = next((lo for lo, hi in mer.R if hi == _INF), _INF)
    if not math.isfinite(t_r):
        return None
    cands = []
    if _covers(mer.Psi, 0.0, math.pi / 2):
        cands += [max(lo, t_r) for lo, hi in mer.A if hi >= t_r]
    if _covers(mer.Psi, math.pi / 2, math.pi):
        cands += [min(hi, -t_r) for lo, hi in mer.A if lo <= -t_r]
    if t_r == 0.0 and _member(mer.A, np.array(0.0)) and _member(mer.Psi, np.array(math.pi / 2)):
        cands.append(0.0)
    return min(cands, key=abs) if cands else None


def _slice_contains(mer: _Meridian, a0: float) -> bool:
    """Whether {a₀} × {u : ‖u‖ ∈ P} ⊂ S (no half-space)."""
    if not _member(mer.A, np.array(a0)) or not mer.P:
        return False
    rho_r = [
        (math.sqrt(max(lo * lo - a0 * a0, 0.0)), math.sqrt(hi * hi - a0 * a0))
        for lo, hi in mer.R
        if hi >= abs(a0)
    ]
    if a0 == 0.0:
        rho_psi = [(0.0, _INF)] if _member(mer.Psi, np.array(math.pi / 2)) else [(0.0, 0.0)]
    else:
        side = (0.0, math.pi / 2) if a0 > 0 else (math.pi / 2, math.pi)
        rho_psi = [
            (abs(a0 * math.tan(lo)), _INF if hi == math.pi / 2 else abs(a0 * math.tan(hi)))
            for lo, hi in _cut(mer.Psi, *side)
        ]
        rho_psi = [tuple(sorted(iv)) for iv in rho_psi]  # type: ignore[misc]
    return all(
        any(lo2 <= lo and hi <= hi2 for lo2, hi2 in rho_r)
        and any(lo3 <= lo and hi <= hi3 for lo3, hi3 in rho_psi)
        for lo, hi in mer.P
    )


def _scale(mer: _Meridian) -> float:
    ends = [
        abs(x)
        for iv in (mer.A, mer.P, mer.R)
        for pair in iv
        for x in pair
        if math.isfinite(x) and x != 0.0
    ]
    return float(np.median(ends)) if ends else 1.0


def _piece_story(path: NDArray[np.floating], mer: _Meridian) -> str:
    mids = 0.5 * (path[1:] + path[:-1]) if len(path) > 1 else path
    used: list[str] = []
    for kind, iv in (("rho", mer.P), ("a", mer.A), ("psi", mer.Psi), ("r", mer.R)):
        for g in _gaps(kind, iv):
            if any(_in_gap(g, p) for p in mids) and (text := _gap_text(g)) not in used:
                used.append(text)
    return "; ".join(used[:3])


def _gap_text(g: Gap) -> str:
    kind, lo, hi, lo_c, hi_c = g
    num = {_INF: "∞", -_INF: "−∞"}
    left, right = num.get(lo, f"{lo:.4g}"), num.get(hi, f"{hi:.4g}")
    rng = f"{'[' if lo_c else '('}{left}, {right}{']' if hi_c else ')'}"
    if kind == "rho" and lo == 0.0 and lo_c:
        return f"points with ‖(w,b)‖ ∈ {rng} (e.g. the a-axis) avoid it"
    return {
        "a": f"points with a ∈ {rng} avoid it",
        "rho": f"points with ‖(w,b)‖ ∈ {rng} avoid it",
        "r": f"points with ‖θ‖ ∈ {rng} avoid it",
        "psi": f"rays at angle ψ ∈ {rng} from +e_a avoid it",
    }[kind]


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
    if theorem is not None:
        if theorem not in ("3.3", "3.5"):
            raise ValueError(f"theorem must be '3.3' or '3.5'; got {theorem!r}")
        return theorem
    return "3.3" if get_activation(activation).degree == 1 else "3.5"


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

    (equivalent to separation for the class of :class:`Support`, see the module notes).

    Parameters
    ----------
    support : Support or str
        The support, or a law name for :func:`support_of` (default parameters).
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

    Returns
    -------
    SeparationVerdict
    """
    d = check_int("d", d)
    s = support_of(support) if isinstance(support, str) else support
    if not isinstance(s, Support):
        raise TypeError(f"support must be a Support or a law name; got {describe(support)}")
    thm = _theorem(activation, theorem)
    mer = _meridian(s, d)
    scale = _scale(mer)
    witness: dict[str, float] = {}
    if thm == "3.3":
        rad = _sphere_radius(mer)
        if radii is not None:
            if len(radii) != 2:
                raise ValueError(f"radii must be a pair (r_a, r_b); got {radii!r}")
            pair = (check_positive("radii[0]", radii[0]), check_positive("radii[1]", radii[1]))
            if not pair[0] < pair[1]:
                raise ValueError(f"radii must satisfy r_a < r_b; got {radii}")
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
            rr = check_positive("r0", r0)
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


# -- covering radius of points on a sphere -------------------------------------------------------
def cap_fraction(t: ArrayLike, k: int) -> NDArray[np.floating]:
    r"""Normalised area of a geodesic cap of angular radius t on S^k.

    .. math:: v_k(t) = \tfrac12 I_{\sin^2 t}\big(\tfrac k2, \tfrac12\big)\ (t \le \pi/2),
       \qquad v_k(t) = 1 - v_k(\pi - t)\ (t > \pi/2)

    with I the regularised incomplete beta function.
    """
    tt: Array = np.clip(np.asarray(t, dtype=float), 0.0, math.pi)
    half = 0.5 * special.betainc(k / 2, 0.5, np.sin(np.minimum(tt, math.pi - tt)) ** 2)
    return np.where(tt <= math.pi / 2, half, 1.0 - half)


def _cap_radius(v: float, k: int) -> float:
    """Inverse of :func:`cap_fraction` in t."""
    v = min(max(v, 0.0), 1.0)
    if v <= 0.5:
        return float(np.arcsin(np.sqrt(special.betaincinv(k / 2, 0.5, 2 * v))))
    return math.pi - _cap_radius(1.0 - v, k)


@dataclass(frozen=True)
class CoveringRadius:
    r"""Covering radius δ = max_{x ∈ S^k} min_i ∠(x, pᵢ) of points pᵢ on S^k (radians).

    Attributes
    ----------
    value : float
        The exact value, or the best lower bound found by the estimator.
    lower, upper : float
        Bounds; equal to ``value`` when exact.  For the estimator, ``upper`` holds with
        probability at least ``confidence``.
    exact : bool
    method : str
        ``"gaps"`` (S¹), ``"hull"`` (S²), ``"pairs"`` (m ≤ 2) or ``"probe"``.
    k : int
        Dimension of the sphere.
    confidence : float
    argmax : ndarray, shape (k+1,)
        A point of S^k at distance ``value`` from the set.
    """

    value: float
    lower: float
    upper: float
    exact: bool
    method: str
    k: int
    confidence: float
    argmax: NDArray[np.floating]


def _min_angle(x: NDArray[np.floating], tree: cKDTree) -> NDArray[np.floating]:
    """min_i ∠(x, pᵢ) for unit rows x and a tree of the unit points p (chord distance)."""
    chord, _ = tree.query(x)
    return 2.0 * np.arcsin(np.clip(0.5 * np.asarray(chord, dtype=float), 0.0, 1.0))


def _candidates_exact(p: NDArray[np.floating]) -> tuple[NDArray[np.floating], str] | None:
    m, dim = p.shape
    if m <= 2:
        c = [-p]
        if m == 2:
            mid = p[0] + p[1]
            if np.linalg.norm(mid) > 1e-12:
                c.append(-mid[None] / np.linalg.norm(mid))
            else:  # antipodal pair: any point of the bisecting great sphere
                e = np.eye(dim)[np.argmin(np.abs(p[0]))]
                e = e - (e @ p[0]) * p[0]
                c.append(e[None] / np.linalg.norm(e))
        return np.vstack(c), "pairs"
    if dim == 2:
        ang = np.sort(np.arctan2(p[:, 1], p[:, 0]))
        gaps = np.diff(np.append(ang, ang[0] + 2 * math.pi))
        j = int(np.argmax(gaps))
        t = ang[j] + gaps[j] / 2
        return np.array([[math.cos(t), math.sin(t)]]), "gaps"
    if dim == 3:
        try:
            hull = ConvexHull(p, qhull_options="Qt")
        except QhullError:  # coplanar points lie on one circle: its poles ±n are the vertices
            n = np.linalg.svd(p - p.mean(axis=0))[2][-1]
            if m > 500 or np.max(np.abs((p - p.mean(axis=0)) @ n)) > 1e-10:
                return None
            iu, ju = np.triu_indices(m, 1)
            mids = -(p[iu] + p[ju])
            mids = mids[np.linalg.norm(mids, axis=1) > 1e-12]
            return np.vstack(
                [n, -n, -p, mids / np.linalg.norm(mids, axis=1, keepdims=True)]
            ), "hull"
        edges = np.vstack(
            [hull.simplices[:, [0, 1]], hull.simplices[:, [1, 2]], hull.simplices[:, [0, 2]]]
        )
        mids = -(p[edges[:, 0]] + p[edges[:, 1]])
        mids = mids[np.linalg.norm(mids, axis=1) > 1e-12]
        return np.vstack(
            [hull.equations[:, :3], -p, mids / np.linalg.norm(mids, axis=1, keepdims=True)]
        ), "hull"
    return None


def covering_radius(
    points: ArrayLike,
    *,
    method: str = "auto",
    n_probe: int = 20_000,
    confidence: float = 0.999,
    rng: RNGLike = None,
) -> CoveringRadius:
    r"""Covering radius of a finite set of directions on the sphere S^k.

    .. math:: \delta = \max_{x\in S^k}\ \min_i\ \arccos(x\cdot \hat p_i)

    Exact for k ≤ 2 and for m ≤ 2: half the largest gap on S¹; on S² the maximum over
    the candidates that contain every local maximiser of x ↦ min_i ∠(x, pᵢ) (outward
    facet normals of the convex hull = spherical Voronoi vertices, antipodes −pᵢ, and
    −(pᵢ + pⱼ) for hull edges).  Otherwise (``"probe"``): N uniform probes, refined by
    ascent away from their nearest points, give a lower bound δ̂; since x ↦ min_i ∠(x, pᵢ)
    is 1-Lipschitz, δ ≤ δ̂ + t with probability ≥ ``confidence`` where the cap of radius t
    has area fraction 1 − (1 − confidence)^{1/N}.

    Parameters
    ----------
    points : array_like, shape (m, k+1)
        Nonzero vectors (normalised internally).
    method : {"auto", "probe"}, default "auto"
    n_probe : int, default 20000
        Number of probes of the estimator.
    confidence : float, default 0.999
        Probability that the estimator's upper bound holds.
    rng : int, Generator or SeedSequence, optional
        Probes of the estimator.

    Returns
    -------
    CoveringRadius
    """
    p = as_float_array("points", points, ndim=2)
    if p.shape[0] == 0 or p.shape[1] < 2:
        raise ValueError(f"points must have shape (m, k+1) with m >= 1, k >= 1; got {p.shape}")
    norms = np.linalg.norm(p, axis=1)
    if np.any(norms == 0):
        raise ValueError("points must be nonzero vectors")
    if method not in ("auto", "probe"):
        raise ValueError(f"method must be 'auto' or 'probe'; got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
    p = p / norms[:, None]
    k = p.shape[1] - 1
    found = _candidates_exact(p) if method == "auto" else None
    if found is not None:
        cand, how = found
        f = _min_angle(cand, cKDTree(p))
        j = int(np.argmax(f))
        return CoveringRadius(float(f[j]), float(f[j]), float(f[j]), True, how, k, 1.0, cand[j])
    n_probe = check_int("n_probe", n_probe)
    x = np.random.default_rng(rng).standard_normal((n_probe, k + 1))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tree = cKDTree(p)
    f = _min_angle(x, tree)
    top = np.argsort(f)[-min(64, n_probe) :]
    best_x, best_f = _refine(x[top], f[top], p, tree)
    j = int(np.argmax(best_f))
    slack = _cap_radius(1.0 - (1.0 - confidence) ** (1.0 / n_probe), k)
    value = float(best_f[j])
    return CoveringRadius(
        value, value, min(value + slack, math.pi), False, "probe", k, confidence, best_x[j]
    )


def _refine(
    x: NDArray[np.floating],
    f: NDArray[np.floating],
    p: NDArray[np.floating],
    tree: cKDTree,
    iters: int = 200,
) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """Monotone ascent of min_i ∠(x, pᵢ): move away from the nearly-nearest points."""
    step = np.maximum(0.25 * f, 1e-3)
    for _ in range(iters):
        ang = np.arccos(np.clip(x @ p.T, -1.0, 1.0))
        near = ang <= ang.min(axis=1, keepdims=True) + 0.1 * step[:, None]
        pull = (near[:, :, None] * p[None]).sum(axis=1)
        g = -(pull - np.sum(pull * x, axis=1, keepdims=True) * x)
        gn = np.linalg.norm(g, axis=1, keepdims=True)
        y = np.cos(step)[:, None] * x + np.sin(step)[:, None] * g / np.where(gn > 0, gn, 1.0)
        fy = _min_angle(y, tree)
        better = (fy > f) & (gn[:, 0] > 0)
        x[better], f[better] = y[better], fy[better]
        step = np.where(better, step * 1.2, step * 0.5)
        if np.all(step < 1e-10):
            break
    # polish: snap to the point equidistant from the k+1 nearest points (a Voronoi vertex)
    k1 = min(x.shape[1], p.shape[0])
    _, idx = tree.query(x, k=k1)
    near = p[np.asarray(idx).reshape(len(x), k1)]
    diff = near[:, 1:] - near[:, :1]
    if diff.shape[1] == x.shape[1] - 1:
        v = np.linalg.svd(diff)[2][:, -1]
        v *= np.where(np.sum(v * x, axis=1) < 0, -1.0, 1.0)[:, None]
        fv = _min_angle(v, tree)
        better = fv > f
        x[better], f[better] = v[better], fv[better]
    return x, f


_EULER_GAMMA = 0.5772156649015329


def expected_covering_radius(
    m: int, k: int, *, method: str = "asymptotic", n_rep: int = 20, rng: RNGLike = None
) -> float:
    r"""Typical covering radius of m i.i.d. uniform points on S^k.

    ``"asymptotic"``: Janson's (1986) limit law for random coverings,
    m·v_k(δ_m) − log m − (k−1) log log m − log α_k → Gumbel, with v_k the cap fraction
    (:func:`cap_fraction`) and α_k = (1/k!)(√π Γ(k/2+1)/Γ((k+1)/2))^{k−1}; the mean of the
    Gumbel law (Euler's γ) gives

    .. math:: v_k(\bar\delta_m) = \frac{\log m + (k-1)\log\log m + \log\alpha_k + \gamma}{m}.

    (S. Janson, Random coverings in several dimensions, Acta Math. 156, 1986; the rate
    (log m / m)^{1/k} on the sphere: Reznikov & Saff, IMRN 2016.)  Needs m ≥ 3.
    ``"monte_carlo"``: the mean of :func:`covering_radius` over ``n_rep`` uniform draws.

    Parameters
    ----------
    m : int
        Number of points.
    k : int
        Dimension of the sphere.
    method : {"asymptotic", "monte_carlo"}
    n_rep : int, default 20
        Replicas of the Monte-Carlo calibration.
    rng : int, Generator or SeedSequence, optional

    Returns
    -------
    float
        Radians.
    """
    m, k = check_int("m", m), check_int("k", k)
    if method == "asymptotic":
        if m < 3:
            raise ValueError(f"m must be >= 3 for the asymptotic formula; got {m}")
        alpha = (math.sqrt(math.pi) * math.gamma(k / 2 + 1) / math.gamma((k + 1) / 2)) ** (k - 1)
        alpha /= math.factorial(k)
        v = (math.log(m) + (k - 1) * math.log(math.log(m)) + math.log(alpha) + _EULER_GAMMA) / m
        return _cap_radius(v, k)
    if method != "monte_carlo":
        raise ValueError(f"method must be 'asymptotic' or 'monte_carlo'; got {method!r}")
    gen = np.random.default_rng(rng)
    vals = [
        covering_radius(gen.standard_normal((m, k + 1)), rng=gen).value
        for _ in range(check_int("n_rep", n_rep))
    ]
    return float(np.mean(vals))


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
        Passed to :func:`covering_radius` when it needs the estimator (k ≥ 3).

    Returns
    -------
    EmpiricalSeparationReport
    """
    if not isinstance(measure, ParticleMeasure):
        raise TypeError(f"measure must be a ParticleMeasure; got {describe(measure)}")
    if measure.batch_shape:
        raise ValueError(f"measure must be a single measure; got batch_shape {measure.batch_shape}")
    thm = _theorem(activation, theorem)
    eps = None if eps is None else check_positive("eps", eps)
    keep = measure.masses > 0
    th = measure.theta[keep]
    a, u = th[:, 0], th[:, 1:]
    if thm == "3.3":
        norms = np.linalg.norm(th, axis=1)
        groups = {"all": th[norms > 0]}
        radial = (float(norms.min()), float(norms.max()))
    else:
        norms = np.linalg.norm(u, axis=1)
        groups = {"a>0": u[(a >= 0) & (norms > 0)], "a<0": u[(a <= 0) & (norms > 0)]}
        radial = (float(norms.min()), float(norms.max()))
    gens = dict(zip(groups, np.random.default_rng(rng).spawn(len(groups)), strict=True))
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

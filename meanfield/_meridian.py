r"""The meridian half-plane H = {(a, ρ) : ρ ≥ 0} of a :class:`~meanfield.support.Support`.

Every constraint of a support except its half-spaces is invariant under rotations of
u = (w, b), so separation questions reduce to the section of S in H (ρ = ‖u‖; with
half-spaces, the meridian through −n of the tightest one decides).  This module computes,
for that section: the pieces of H ∖ S and a breadth-first search over them for a path
that escapes S (a polyline whose every hop stays inside one piece), the polar angles of
the rays from 0 that meet S, and whether S contains a whole sphere r·S^{d+1} or a whole
slice {a₀} × ℝ^{d+1}.  The reasoning is in :mod:`meanfield.separation`, its only user.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from meanfield.support import (
    _INF,
    Gap,
    Interval,
    Support,
    _covers,
    _cut,
    _gaps,
    _member,
)


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

r"""Closed subsets of parameter space given by constraints: the supports of the laws.

A :class:`Support` is the closed set

.. math::
    S = \{\theta = (a, u) :\ a \in A,\ \|u\| \in P,\ \|\theta\| \in R,\
        \psi(\theta) \in \Psi,\ n_k\cdot u \ge c_k\ \forall k\}

of ℝ^{d+2}, θ = (a, u) with u = (w, b), where A, P, R, Ψ are finite unions of closed
intervals and ψ(θ) ∈ [0, π] is the angle between θ and +e_a (imposed for θ ≠ 0).  It
covers the supports of the laws of :mod:`meanfield.measure` (:func:`support_of`) and
"all a ≥ 0", "(w, b) in a half-space", radial shells and angular sectors;
:func:`meanfield.separation.check_separation` decides the separation hypothesis of
Chizat & Bach (2018) for it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import as_float_array, check_positive, describe
from meanfield.covering import _polar_rows

__all__ = ["Support", "support_of"]

Interval = tuple[float, float]
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
        r"""Membership of points ``theta`` in S.

        .. math:: \theta \in S \iff a \in A,\ \|u\| \in P,\ \|\theta\| \in R,\
            \psi(\theta) \in \Psi,\ n_k\cdot u \ge c_k

        Norms, angles and half-space tests are computed on rows rescaled by their largest
        entry, so points near 1e±300 are classified exactly (a norm beyond the float64
        range counts as +inf, which is the right side of every finite bound).

        Parameters
        ----------
        theta : array_like, shape (..., d+2), d >= 1
            Finite points θ = (a, w, b).
        atol : float, default 0.0
            Finite tolerance ≥ 0 that widens every constraint (angles in radians).

        Returns
        -------
        ndarray of bool, shape (...)

        Raises
        ------
        TypeError, ValueError
            If ``theta`` is not a finite real array with at least 3 columns (or with a
            number of columns other than the half-space normals' + 1), or ``atol`` is not a
            finite real ≥ 0.
        """
        atol = check_positive("atol", atol, allow_zero=True)
        th = as_float_array("theta", theta, min_ndim=1).astype(np.float64)
        if th.shape[-1] < 3:
            raise ValueError(f"theta must have shape (..., d+2) with d >= 1; got shape {th.shape}")
        for n, _ in self.u_halfspaces:
            if len(n) != th.shape[-1] - 1:
                raise ValueError(
                    f"theta must have {len(n) + 1} columns to match the half-space "
                    f"normals; got shape {th.shape}"
                )
        s, nrm, _ = _polar_rows(th)
        s_u, n_u, _ = _polar_rows(th[..., 1:])
        with np.errstate(over="ignore"):  # +inf: beyond float64, outside every finite bound
            rho, r = s_u * n_u, s * nrm
        s_safe, su_safe = np.where(s > 0, s, 1.0), np.where(s_u > 0, s_u, 1.0)
        psi = np.arctan2(s_u / s_safe * n_u, th[..., 0] / s_safe)
        ok = _member(self.a, th[..., 0], atol) & _member(self.u_norm, rho, atol)
        ok &= _member(self.norm, r, atol) & (_member(self.polar_angle, psi, atol) | (s == 0))
        for n, c in self.u_halfspaces:
            normal = np.asarray(n)
            with np.errstate(over="ignore"):  # n·u ≥ c' ⟺ n·(u/s_u) ≥ c'/s_u (±inf if u ≈ 0)
                bound = (c - atol * float(np.linalg.norm(normal))) / su_safe
            side = (th[..., 1:] / su_safe[..., None]) @ normal >= bound
            ok &= np.where(s_u > 0, side, bound <= 0)
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

r"""Convergence in time: when a risk curve reaches a level, and where it stalls.

A run's risk (or excess risk) is a time series F(μ_{t_k}) on the snapshot times t_k.
:func:`convergence_time` is the first time it falls below a threshold ε,

.. math:: t_\varepsilon = \min\{t_k : F(\mu_{t_k}) - \inf F < \varepsilon\},

and :func:`detect_plateaus` finds the stretches where it is flat in log-log scale: the
saddle-to-saddle plateaus of training from a small initialisation.  Both take plain
arrays, so they apply to any curve (exact, Monte-Carlo or minibatch risk);
:func:`convergence_time` also to the curves of an ensemble at once.  The private helpers
at the end validate the snapshots of a trajectory for :mod:`meanfield.diagnostics`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import as_float_array, check_positive, describe

__all__ = ["Plateau", "convergence_time", "detect_plateaus"]

Array = NDArray[np.floating]


def convergence_time(times: ArrayLike, values: ArrayLike, eps: float) -> Array:
    r"""First time the (excess) risk falls below ``eps``; NaN if it never does.

    .. math:: t_\varepsilon = \min\{t_k : F(\mu_{t_k}) - \inf F < \varepsilon\}

    Parameters
    ----------
    times : array_like, shape (T,)
    values : array_like, shape (T, ...)
    eps : float

    Returns
    -------
    ndarray, shape (...)
    """
    t = as_float_array("times", times, ndim=1)
    v = as_float_array("values", values, min_ndim=1, finite=False)
    if v.shape[0] != t.shape[0]:
        raise ValueError(
            f"values must have shape ({t.shape[0]}, ...) to match times; got {v.shape}"
        )
    below = v < check_positive("eps", eps)
    first = np.argmax(below, axis=0)
    return np.where(np.any(below, axis=0), t[first], np.nan)


@dataclass(frozen=True)
class Plateau:
    """A time interval where the risk is flat in log-log scale."""

    start: float
    end: float
    level: float
    final: bool

    @property
    def decades(self) -> float:
        """Duration in decades of time, log10(end/start)."""
        return math.log10(self.end) - math.log10(self.start)


def detect_plateaus(
    times: ArrayLike,
    values: ArrayLike,
    *,
    slope_tol: float = 0.1,
    min_decades: float = 0.5,
    window_decades: float = 0.1,
) -> list[Plateau]:
    r"""Plateaus of a risk curve: stretches where its log-log slope is small.

    .. math:: s(t) = \frac{\log F(10^{h} t) - \log F(t)}{h}, \qquad
       \text{plateau} = \text{maximal run with } |s| < \text{slope\_tol}
       \text{ lasting} \ge \text{min\_decades}

    (the saddle-to-saddle plateaus of small-initialisation training look flat on log-log
    axes).  Only points with t > 0 and F > 0 are used; all the work is on log10 t and
    log10 F, so times and values near 1e±300 are handled exactly.

    Parameters
    ----------
    times : array_like, shape (T,)
        Nondecreasing, finite.
    values : array_like, shape (T,)
        The curve; NaN and ±inf points are skipped.
    slope_tol : float, default 0.1
        Largest |d log F / d log t| counted as flat (finite, > 0).
    min_decades : float, default 0.5
        Shortest plateau, in decades of time (finite, > 0).
    window_decades : float, default 0.1
        Width h of the finite-difference window (smooths noisy SGD curves; finite, > 0).

    Returns
    -------
    list of Plateau

    Raises
    ------
    TypeError, ValueError
        Naming the invalid argument (e.g. decreasing ``times``).
    """
    t = as_float_array("times", times, ndim=1)
    v = as_float_array("values", values, ndim=1, finite=False)
    if v.shape != t.shape:
        raise ValueError(f"values must have shape {t.shape} like times; got {v.shape}")
    if np.any(np.diff(t) < 0):
        raise ValueError(f"times must be nondecreasing; got {describe(t)} that decreases")
    h = check_positive("window_decades", window_decades)
    tol = check_positive("slope_tol", slope_tol)
    min_decades = check_positive("min_decades", min_decades)
    keep = (t > 0) & (v > 0) & np.isfinite(v)
    tk, vk = t[keep].astype(np.float64), v[keep].astype(np.float64)
    x, y = np.log10(tk), np.log10(vk)
    if x.size < 2:
        return []
    j = np.minimum(np.searchsorted(x, x + h), x.size - 1)
    valid = x[j] > x
    slope = np.where(valid, (y[j] - y) / np.where(valid, x[j] - x, 1.0), np.nan)
    flat = valid & (np.abs(slope) < tol)
    out: list[Plateau] = []
    i = 0
    while i < x.size:
        if not flat[i]:
            i += 1
            continue
        k = i
        while k + 1 < x.size and flat[k + 1]:
            k += 1
        if x[j[k]] - x[i] >= min_decades:
            window = slice(i, j[k] + 1)
            with np.errstate(over="ignore"):  # 10**log10(v) may round past float64's max
                level = 10 ** np.median(y[window])
            level = float(np.clip(level, vk[window].min(), vk[window].max()))
            out.append(Plateau(float(tk[i]), float(tk[j[k]]), level, bool(j[k] == x.size - 1)))
        i = k + 1
    return out


# -- snapshots of a trajectory (checks shared with meanfield.diagnostics) ------------------------
def _snapshots(trajectory: Any) -> tuple[Array, Array, Array]:
    """Validate a duck-typed trajectory; return its times, positions and per-snapshot masses.

    ``times`` (T,) nondecreasing with T ≥ 1, ``thetas`` (T, ..., m, d+2) and ``masses``
    ((..., m), (T, ..., m) or None for uniform), broadcast to ``thetas.shape[:-1]``.
    """
    times = as_float_array("trajectory.times", getattr(trajectory, "times", None), ndim=1)
    thetas = as_float_array("trajectory.thetas", getattr(trajectory, "thetas", None), min_ndim=3)
    if times.shape[0] == 0 or np.any(np.diff(times) < 0):
        raise ValueError(
            f"trajectory.times must hold T >= 1 nondecreasing times; got {describe(times)}"
        )
    if thetas.shape[0] != times.shape[0]:
        raise ValueError(
            f"trajectory.thetas must have shape ({times.shape[0]}, ..., m, d+2); got {thetas.shape}"
        )
    masses = getattr(trajectory, "masses", None)
    if masses is None:
        return times, thetas, np.full(thetas.shape[:-1], 1.0 / thetas.shape[-2])
    p = as_float_array("trajectory.masses", masses)
    try:
        return times, thetas, np.broadcast_to(p, thetas.shape[:-1])
    except ValueError:
        raise ValueError(
            f"trajectory.masses must have shape (..., m) or (T, ..., m) broadcasting to "
            f"{thetas.shape[:-1]}; got {p.shape}"
        ) from None


def _snapshot_indices(indices: Any, n: int, *, name: str = "certificate_at") -> list[int]:
    """Validate snapshot indices in [−n, n); return them as ints in [0, n), in order."""
    items = [indices] if isinstance(indices, numbers.Integral) else indices
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"{name} must be integer snapshot indices; got {describe(indices)}")
    out = []
    for i in items:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"{name} must hold integer snapshot indices; got {describe(indices)}")
        if not -n <= int(i) < n:
            raise ValueError(f"{name} index {i} is out of range for {n} snapshots")
        out.append(int(i) % n)
    return out


def _check_pair(name: str, shape: tuple[int, ...], ref: str, ref_shape: tuple[int, ...]) -> None:
    """Check that positions ``name`` (a later snapshot) match those of ``ref`` (an earlier one).

    They must end with the same (m, d+2) and their leading axes must broadcast.
    """
    try:
        np.broadcast_shapes(shape, ref_shape)
        ok = shape[-2:] == ref_shape[-2:]
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must have shape (..., {ref_shape[-2]}, {ref_shape[-1]}) like {ref}, with "
            f"leading axes that broadcast; got {ref} {ref_shape} and {name} {shape}"
        )


def _weights(masses: Any, m: int, lead: tuple[int, ...]) -> Array:
    """Masses (..., m) ≥ 0 rescaled to max 1 per run (only their ratios matter)."""
    p = as_float_array("masses", masses, min_ndim=1).astype(np.float64)
    try:
        np.broadcast_shapes(p.shape, (*lead, m))
        ok = p.shape[-1] == m
    except ValueError:
        ok = False
    if not ok or np.any(p < 0) or np.any(np.max(p, axis=-1) == 0):
        raise ValueError(
            f"masses must be nonnegative weights of shape (..., {m}) broadcasting with "
            f"{(*lead, m)}, not all 0; got {describe(p)}"
        )
    return p / np.max(p, axis=-1, keepdims=True)

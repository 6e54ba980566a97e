r"""Convergence in time: when a risk curve reaches a level, and where it stalls.

A run's risk (or excess risk) is a time series F(μ_{t_k}) on the snapshot times t_k.
:func:`convergence_time` is the first time it falls below a threshold ε,

.. math:: t_\varepsilon = \min\{t_k : F(\mu_{t_k}) - \inf F < \varepsilon\},

and :func:`detect_plateaus` finds the stretches where it is flat in log-log scale: the
saddle-to-saddle plateaus of training from a small initialisation.  Both take plain
arrays, so they apply to any curve (exact, Monte-Carlo or minibatch risk);
:func:`convergence_time` also to the curves of an ensemble at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import as_float_array, check_positive

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
        return math.log10(self.end / self.start)


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
    axes).  Only points with t > 0 and F > 0 are used.

    Parameters
    ----------
    times, values : array_like, shape (T,)
    slope_tol : float, default 0.1
        Largest |d log F / d log t| counted as flat.
    min_decades : float, default 0.5
        Shortest plateau, in decades of time.
    window_decades : float, default 0.1
        Width h of the finite-difference window (smooths noisy SGD curves).

    Returns
    -------
    list of Plateau
    """
    t = as_float_array("times", times, ndim=1)
    v = as_float_array("values", values, ndim=1, finite=False)
    if v.shape != t.shape:
        raise ValueError(f"values must have shape {t.shape} like times; got {v.shape}")
    h = check_positive("window_decades", window_decades)
    keep = (t > 0) & (v > 0) & np.isfinite(v)
    x, y = np.log10(t[keep]), np.log10(v[keep])
    if x.size < 2:
        return []
    j = np.minimum(np.searchsorted(x, x + h), x.size - 1)
    valid = x[j] > x
    slope = np.where(valid, (y[j] - y) / np.where(valid, x[j] - x, 1.0), np.nan)
    flat = valid & (np.abs(slope) < check_positive("slope_tol", slope_tol))
    out: list[Plateau] = []
    i = 0
    while i < x.size:
        if not flat[i]:
            i += 1
            continue
        k = i
        while k + 1 < x.size and flat[k + 1]:
            k += 1
        lo, hi = x[i], x[j[k]]
        if hi - lo >= min_decades:
            level = float(10 ** np.median(y[i : j[k] + 1]))
            out.append(Plateau(float(10**lo), float(10**hi), level, bool(j[k] == x.size - 1)))
        i = k + 1
    return out

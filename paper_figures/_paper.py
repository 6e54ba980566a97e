r"""Shared helpers of the Chizat–Bach and mean-field-limit figures (figures 2, 3 and 7).

Private to ``paper_figures/`` (the figure runner puts that folder on ``sys.path``, so the
scripts import this module as ``_paper``).  It holds what the three scripts share:

* deterministic quadratures of the Gaussian input law and of the notebook's initial law
  (:func:`gaussian_quantile_nodes`, :func:`notebook_law_quadrature`), used where the
  exact Gaussian-kernel estimator is too slow (sigmoid) or as a mean-field reference;
* the function-space distance ‖f_μ − f_ν‖_{L²(N(0, I_d))} computed exactly with the
  Gaussian kernels (:func:`function_distance`);
* per-seed random streams, a code digest for the study cache keys, and one-thread
  BLAS/numba limits for cells running side by side in worker processes;
* log–log slope fits with bootstrap confidence intervals over seeds (:func:`loglog_fit`)
  and log-scale summaries (:func:`log_summary`);
* trajectory drawing with the opacity encoding log-time (:func:`draw_trajectories`,
  :func:`draw_trajectories_3d`, :func:`add_time_key`).

References
----------
L. Chizat, F. Bach. On the global convergence of gradient descent for over-parameterized
models using optimal transport. NeurIPS 2018.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import LinearSegmentedColormap, to_rgba_array
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri

from meanfield._validation import as_float_array, check_int, check_positive, describe
from meanfield.kernels import gauss_hermite
from meanfield.measure import ParticleMeasure
from meanfield.population import GaussianPopulationEstimator

__all__ = [
    "SIGN_COLORS",
    "LogLogFit",
    "add_time_key",
    "code_digest",
    "draw_trajectories",
    "draw_trajectories_3d",
    "function_distance",
    "gaussian_quantile_nodes",
    "log_summary",
    "loglog_fit",
    "notebook_law_quadrature",
    "numba_threads",
    "seed_generators",
    "single_threaded",
    "sphere_points",
]

Array = NDArray[np.float64]

SIGN_COLORS = {1: "tab:red", -1: "tab:blue"}
"""Colours of particles with a > 0 and a < 0."""

ALPHA_RANGE = (0.08, 1.0)
"""Opacity of a trajectory segment at the first and at the last snapshot time."""


# -- bookkeeping ------------------------------------------------------------------------
def code_digest(*objects: Any) -> str:
    """Short SHA-256 digest of the source of functions/classes and the repr of other objects.

    The study caches key their cells on the digest of exactly the code and constants a
    cell runs, so that editing a figure's plotting or notes keeps the cache, while editing
    the computation invalidates it.

    Parameters
    ----------
    *objects : function, class or JSON-like value
        What the cells depend on.

    Returns
    -------
    str
        12 hexadecimal characters.
    """
    import inspect

    h = hashlib.sha256()
    for obj in objects:
        text = (
            inspect.getsource(obj) if inspect.isfunction(obj) or inspect.isclass(obj) else repr(obj)
        )
        h.update(text.encode())
    return h.hexdigest()[:12]


def seed_generators(seeds: Sequence[int], tag: int) -> list[np.random.Generator]:
    r"""One independent generator per seed, ``default_rng([tag, seed])``.

    .. math:: \mathrm{rng}_s = \mathrm{default\_rng}(\mathrm{SeedSequence}([\mathrm{tag}, s]))

    Run s of an ensemble then depends on its own seed only, not on which other seeds
    share its cell, so any chunking of the seeds gives the same rows.

    Parameters
    ----------
    seeds : sequence of int
        Seeds (≥ 0).
    tag : int
        Distinguishes the streams of different uses (teacher, student, sample, ...).

    Returns
    -------
    list of numpy.random.Generator
    """
    tag = check_int("tag", tag, minimum=0)
    return [np.random.default_rng([tag, check_int("seeds[...]", s, minimum=0)]) for s in seeds]


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the body with one BLAS thread and one numba thread.

    Study cells run side by side in worker processes (one per core); letting each of
    them start a BLAS or numba thread per core oversubscribes the machine, and OpenBLAS's
    spinning threads then slow a small matmul several-fold (measured: a sigmoid velocity
    with 8 × 1000 × 64 pre-activations, 38 ms with one thread against 100 ms with two on
    a loaded 2-core machine).  Uses :mod:`threadpoolctl` when installed (a no-op for BLAS
    otherwise); results do not depend on it.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        limits: Any = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=1, user_api="blas")
    with limits, numba_threads(1):
        yield


@contextlib.contextmanager
def numba_threads(n: int) -> Iterator[None]:
    """Temporarily limit numba's thread count (no-op without numba).

    Study cells running side by side in worker processes each get one thread, so the
    compiled SGD kernels do not oversubscribe the cores; results do not depend on it.
    """
    n = check_int("n", n)
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is optional
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(min(n, int(getattr(numba.config, "NUMBA_NUM_THREADS", n))))
    try:
        yield
    finally:
        numba.set_num_threads(before)


# -- quadratures ------------------------------------------------------------------------
def gaussian_quantile_nodes(n: int, d: int) -> Array:
    r"""Equal-weight deterministic quadrature of N(0, I_d): the product of 1-D quantile midpoints.

    .. math:: x_{k} = \big(\Phi^{-1}((k_1 - \tfrac12)/n), \dots,
              \Phi^{-1}((k_d - \tfrac12)/n)\big), \qquad k \in \{1..n\}^d

    so that E[g(x)] ≈ n^{-d} Σ_k g(x_k) (the midpoint rule in probability space).  Used
    as the "sample" of :class:`~meanfield.velocity.SampleEstimator` it turns the empirical
    risk into a quadrature of the population risk; for a realisable teacher the teacher
    still has zero risk on it.

    Parameters
    ----------
    n : int
        Nodes per axis (≥ 1).
    d : int
        Input dimension (≥ 1).

    Returns
    -------
    ndarray, shape (n**d, d)
    """
    n = check_int("n", n)
    d = check_int("d", d)
    if n**d > 1 << 22:
        raise ValueError(f"n**d must be at most 2**22 nodes; got n={n}, d={d}")
    q = ndtri((np.arange(n) + 0.5) / n)
    grids = np.meshgrid(*([q] * d), indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=-1)


def sphere_points(n: int, d: int) -> Array:
    r"""n quasi-uniform points on the unit sphere S^d ⊂ ℝ^{d+1} (d = 1 or 2).

    d = 1: equally spaced angles 2π(k + ½)/n; d = 2: the Fibonacci lattice

    .. math:: z_k = 1 - \frac{2k + 1}{n},\quad \phi_k = \pi(1 + \sqrt5)(k + \tfrac12),
              \quad x_k = (\sqrt{1 - z_k^2}\cos\phi_k, \sqrt{1 - z_k^2}\sin\phi_k, z_k).

    Parameters
    ----------
    n : int
        Number of points.
    d : int
        Sphere dimension, 1 or 2.

    Returns
    -------
    ndarray, shape (n, d+1)
    """
    n = check_int("n", n)
    d = check_int("d", d)
    k = np.arange(n) + 0.5
    if d == 1:
        ang = 2.0 * np.pi * k / n
        return np.stack([np.cos(ang), np.sin(ang)], axis=-1)
    if d == 2:
        z = 1.0 - 2.0 * k / n
        r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
        phi = np.pi * (1.0 + np.sqrt(5.0)) * k
        return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=-1)
    raise ValueError(f"d must be 1 or 2 (quasi-uniform points on S^d); got {d}")


def notebook_law_quadrature(n_a: int, n_s: int, *, radius: float, d: int = 2) -> ParticleMeasure:
    r"""A weighted quadrature of the notebook's initial law, a ~ N(0, 1) ⊗ (w, b) ~ U(R·S^d).

    .. math::

        \mu_0^{\rm quad} = \sum_{k=1}^{n_a}\sum_{l=1}^{n_s} \frac{\omega_k}{n_s}\,
        \delta_{(t_k,\ R\,s_l)}

    with (t_k, ω_k) the Gauss–Hermite rule of N(0, 1) (:func:`meanfield.kernels.gauss_hermite`)
    and s_l the points of :func:`sphere_points`.  Its particle flow (each particle moves
    with v_μ, masses fixed) is a deterministic discretisation of the mean-field limit
    started from the notebook's law, free of the 1/√m Monte-Carlo fluctuations of an
    i.i.d. sample (Chizat & Bach 2018, §2.2: the flow of a weighted particle measure is the
    Wasserstein gradient flow restricted to it).

    Parameters
    ----------
    n_a : int
        Gauss–Hermite nodes for a.
    n_s : int
        Points on the sphere.
    radius : float
        R.
    d : int, default 2
        Input dimension (1 or 2).

    Returns
    -------
    ParticleMeasure
        n_a·n_s particles, rows [a, w, b], masses ω_k/n_s (summing to 1).
    """
    n_a = check_int("n_a", n_a)
    n_s = check_int("n_s", n_s)
    radius = check_positive("radius", radius)
    t, om = gauss_hermite(n_a)
    u = radius * sphere_points(n_s, d)
    theta = np.concatenate([np.repeat(t, n_s)[:, None], np.tile(u, (n_a, 1))], axis=1)
    return ParticleMeasure(theta, np.repeat(om, n_s) / n_s)


def function_distance(
    measure: ParticleMeasure,
    reference: ParticleMeasure,
    *,
    activation: str = "relu",
    workers: int | None = None,
) -> Array:
    r"""Exact L² distance between two networks for Gaussian inputs.

    .. math:: \|f_\mu - f_\nu\|_{L^2(\gamma)} = \Big(\mathbb E_{x\sim N(0, I_d)}
              \big[(f_\mu(x) - f_\nu(x))^2\big]\Big)^{1/2} = \sqrt{2\,F_\nu(\mu)}

    where F_ν is the population risk with the network ν as teacher, computed in closed
    form by :class:`~meanfield.population.GaussianPopulationEstimator` (no input sample).

    Parameters
    ----------
    measure : ParticleMeasure
        μ, positions ``(..., m, d+2)`` (an ensemble is allowed).
    reference : ParticleMeasure
        ν, positions ``(..., M, d+2)`` broadcasting with μ.
    activation : str, default "relu"
        σ of both networks.
    workers : int, optional
        Threads of the kernel blocks.

    Returns
    -------
    ndarray, shape: the broadcast batch shape
    """
    if not isinstance(measure, ParticleMeasure) or not isinstance(reference, ParticleMeasure):
        raise TypeError(
            f"measure and reference must be ParticleMeasures; got {describe(measure)} and "
            f"{describe(reference)}"
        )
    est = GaussianPopulationEstimator(reference, activation=activation, workers=workers)
    return np.sqrt(2.0 * np.maximum(np.asarray(est.risk(measure)), 0.0))


# -- statistics -------------------------------------------------------------------------
@dataclass(frozen=True)
class LogLogFit:
    """Least-squares line log y = intercept + slope·log x, with a bootstrap CI of the slope."""

    slope: float
    intercept: float
    low: float
    high: float
    level: float

    def __call__(self, x: ArrayLike) -> Array:
        """The fitted power law exp(intercept)·x^slope."""
        return np.exp(self.intercept) * np.asarray(x, dtype=float) ** self.slope

    def describe(self) -> str:
        """E.g. ``slope -0.51 [95% CI -0.55, -0.47]``."""
        return (
            f"slope {self.slope:.2f} [{100 * self.level:.0f}% CI {self.low:.2f}, {self.high:.2f}]"
        )


def _ols(lx: Array, ly: Array) -> tuple[float, float]:
    xc = lx - lx.mean()
    slope = float(np.sum(xc * (ly - ly.mean())) / np.sum(xc * xc))
    return slope, float(ly.mean() - slope * lx.mean())


def loglog_fit(
    x: ArrayLike,
    y: ArrayLike,
    groups: ArrayLike,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    rng: int | np.random.Generator | None = 0,
) -> LogLogFit:
    r"""Fit a power law y ≈ C x^s by least squares in log–log scale; bootstrap CI over groups.

    .. math:: \hat s = \arg\min_{s, c} \sum_k (\log y_k - c - s\log x_k)^2

    The confidence interval resamples whole groups (seeds) with replacement, so the
    dependence between the points of one seed (same teacher, same stream) is respected;
    it is the percentile interval of the refitted slopes.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Positive values.
    groups : array_like, shape (n,)
        Group label of each point (e.g. the seed).
    n_boot : int, default 2000
        Bootstrap resamples.
    level : float, default 0.95
        Confidence level.
    rng : int or Generator, optional
        Randomness of the bootstrap.

    Returns
    -------
    LogLogFit
    """
    xx = as_float_array("x", x, ndim=1)
    yy = as_float_array("y", y, ndim=1)
    g = np.asarray(groups)
    if not (xx.shape == yy.shape == g.shape):
        raise ValueError(
            f"x, y and groups must have the same shape; got {xx.shape}, {yy.shape}, {g.shape}"
        )
    if np.any(xx <= 0) or np.any(yy <= 0):
        raise ValueError("x and y must be positive for a log-log fit")
    if np.unique(xx).size < 2:
        raise ValueError(f"x must take at least two distinct values; got {np.unique(xx)}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1); got {level}")
    n_boot = check_int("n_boot", n_boot)
    lx, ly = np.log(xx), np.log(yy)
    slope, intercept = _ols(lx, ly)
    labels = np.unique(g)
    members = [np.flatnonzero(g == lab) for lab in labels]
    gen = np.random.default_rng(rng)
    boots = []
    for _ in range(n_boot):
        idx = np.concatenate([members[i] for i in gen.integers(0, len(labels), len(labels))])
        if np.unique(lx[idx]).size >= 2:
            boots.append(_ols(lx[idx], ly[idx])[0])
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(boots, [tail, 100.0 - tail]) if boots else (np.nan, np.nan)
    return LogLogFit(slope, intercept, float(low), float(high), float(level))


def log_summary(
    values: ArrayLike, axis: int = -1, floor: float = 1e-16
) -> tuple[Array, Array, Array]:
    r"""Geometric mean and the band of ± one standard deviation of log10 (values floored).

    .. math:: g = 10^{\overline{\log_{10} v}}, \qquad
              [g\,10^{-s},\ g\,10^{s}], \quad s = \mathrm{sd}(\log_{10} v)

    Parameters
    ----------
    values : array_like
        Positive values (those below ``floor`` are set to ``floor``).
    axis : int, default -1
        Axis of the replicates (seeds).
    floor : float, default 1e-16
        Smallest value kept (an excess risk reaches ~1e-16 at a global minimiser).

    Returns
    -------
    center, low, high : ndarray
    """
    v = np.log10(np.maximum(np.asarray(values, dtype=float), floor))
    mean, sd = v.mean(axis=axis), v.std(axis=axis)
    return 10.0**mean, 10.0 ** (mean - sd), 10.0 ** (mean + sd)


# -- drawing ----------------------------------------------------------------------------
def _time_alpha(times: NDArray[np.floating]) -> Array:
    """Opacity of each snapshot: linear in log t between the first positive time and the last."""
    t = np.asarray(times, dtype=float)
    pos = t[t > 0]
    lo, hi = ALPHA_RANGE
    if pos.size < 2:
        return np.full(t.shape, hi)
    lt = np.log(np.maximum(t, pos[0]))
    if lt[-1] <= lt[0]:
        return np.full(t.shape, hi)
    return np.clip(lo + (hi - lo) * (lt - lt[0]) / (lt[-1] - lt[0]), 0.0, 1.0)


def _segment_colors(colors: Any, n_seg: int, m: int, times: NDArray[np.floating]) -> Array:
    """RGBA of every segment (n_seg, m, 4), the alpha set from log-time."""
    c = np.asarray(colors, dtype=object) if not isinstance(colors, np.ndarray) else colors
    if isinstance(colors, str) or (
        isinstance(c, np.ndarray) and c.ndim == 1 and c.size in (3, 4) and c.dtype.kind == "f"
    ):
        rgba = np.broadcast_to(to_rgba_array([colors]), (n_seg, m, 4)).copy()
    elif isinstance(c, np.ndarray) and c.ndim == 3 and c.shape[-1] == 4:
        rgba = np.array(c[:n_seg], dtype=float)
    else:
        base = to_rgba_array(list(colors))
        if base.shape[0] != m:
            raise ValueError(
                f"colors must give one colour per particle (m={m}); got {base.shape[0]}"
            )
        rgba = np.broadcast_to(base, (n_seg, m, 4)).copy()
    rgba[..., 3] = _time_alpha(times)[1 : n_seg + 1, None]
    return rgba


def draw_trajectories(
    ax: Axes,
    xy: ArrayLike,
    times: ArrayLike,
    *,
    colors: Any = "0.3",
    lw: float = 0.9,
    zorder: float = 2,
) -> LineCollection:
    r"""Draw particle paths as segments whose opacity grows linearly with log t.

    Segment k joins snapshot k−1 to snapshot k and has opacity
    α₀ + (α₁ − α₀)(log t_k − log t₁)/(log t_end − log t₁) (:data:`ALPHA_RANGE`).

    Parameters
    ----------
    ax : matplotlib Axes
    xy : array_like, shape (T, m, 2)
        Snapshots of the plotted coordinates.
    times : array_like, shape (T,)
        Snapshot times (t₀ = 0 allowed).
    colors : colour, sequence of m colours, or array (T−1, m, 4)
        One colour for all, one per particle, or one per segment (e.g. by the sign of a).
    lw : float, default 0.9
        Line width.
    zorder : float, default 2

    Returns
    -------
    LineCollection
    """
    p = as_float_array("xy", xy, ndim=3)
    t = as_float_array("times", times, ndim=1)
    if p.shape[-1] != 2 or p.shape[0] != t.shape[0] or p.shape[0] < 2:
        raise ValueError(f"xy must have shape (T, m, 2) with T = len(times) >= 2; got {p.shape}")
    seg = np.stack([p[:-1], p[1:]], axis=2).reshape(-1, 2, 2)  # (T-1)*m segments
    rgba = _segment_colors(colors, p.shape[0] - 1, p.shape[1], t).reshape(-1, 4)
    lc = LineCollection(list(seg), colors=rgba, linewidths=lw, zorder=zorder, capstyle="round")
    ax.add_collection(lc)
    return lc


def draw_trajectories_3d(
    ax: Any, xyz: ArrayLike, times: ArrayLike, *, colors: Any = "0.3", lw: float = 0.8
) -> Any:
    """3-D version of :func:`draw_trajectories` (``xyz`` of shape (T, m, 3), a 3-D Axes)."""
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    p = as_float_array("xyz", xyz, ndim=3)
    t = as_float_array("times", times, ndim=1)
    if p.shape[-1] != 3 or p.shape[0] != t.shape[0] or p.shape[0] < 2:
        raise ValueError(f"xyz must have shape (T, m, 3) with T = len(times) >= 2; got {p.shape}")
    seg = np.stack([p[:-1], p[1:]], axis=2).reshape(-1, 2, 3)
    rgba = _segment_colors(colors, p.shape[0] - 1, p.shape[1], t).reshape(-1, 4)
    lc = Line3DCollection(list(seg), colors=rgba, linewidths=lw)
    ax.add_collection3d(lc)
    return lc


def add_time_key(fig: Figure, ax: Axes | Sequence[Axes], times: ArrayLike, **kwargs: Any) -> Any:
    """A grey colour bar showing the trajectory opacity against log10(t / t_end).

    The opacity of :func:`draw_trajectories` is relative to each run's own time range, so
    runs with different horizons but the same ratio t_first/t_end share one key.

    Parameters
    ----------
    fig : Figure
    ax : Axes or sequence of Axes
        Axes the bar is attached to.
    times : array_like
        Snapshot times of the trajectories.
    **kwargs
        Passed to :meth:`matplotlib.figure.Figure.colorbar`.

    Returns
    -------
    matplotlib Colorbar
    """
    t = np.asarray(times, dtype=float)
    pos = t[t > 0]
    lo, hi = ALPHA_RANGE
    cmap = LinearSegmentedColormap.from_list("opacity", [(0.2, 0.2, 0.2, lo), (0.2, 0.2, 0.2, hi)])
    norm = mpl.colors.Normalize(np.log10(pos[0] / pos[-1]), 0.0)
    bar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, **kwargs)
    bar.set_label(r"$\log_{10}(t / t_{\mathrm{end}})$ (trajectory opacity)")
    return bar

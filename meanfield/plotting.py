r"""Figures: particle pictures, animations and risk curves, in one shared style.

The notebook draws each student particle through its first d effective coordinates
a·w ∈ ℝ² with grey trails, the teacher's a*·w* as red dots and the rays through
them.  :func:`plot_particles` draws that picture, :func:`plot_effective_3d` the same
particles in the full effective-neuron space c = a·(w, b) ∈ ℝ³ (the 2-D picture hides
the bias), :func:`animate_particles` the animation, :func:`plot_risk` the risk against
mean-field time.

Every figure uses :data:`STYLE` (rcParams set in this one place) through
:func:`style`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import as_float_array, check_int, check_positive, describe
from meanfield.measure import ParticleMeasure

__all__ = [
    "STYLE",
    "animate_particles",
    "effective_coordinates",
    "plot_diagnostics",
    "plot_effective_3d",
    "plot_particles",
    "plot_risk",
    "save_figure",
    "style",
]

STYLE: dict[str, Any] = {
    "figure.figsize": (6.0, 5.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "image.cmap": "viridis",
}
"""The rcParams of every figure of the toolkit."""

STUDENT_COLOR = "tab:blue"
TEACHER_COLOR = "tab:red"
TRAIL_COLOR = "0.55"


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context manager applying :data:`STYLE`."""
    with mpl.rc_context(STYLE):  # type: ignore[arg-type]
        yield


def effective_coordinates(theta: ArrayLike) -> NDArray[np.floating]:
    r"""Effective neurons c = a·(w, b) of positions ``(..., m, d+2)``; shape ``(..., m, d+1)``.

    .. math:: c_i = a_i\,(w_i, b_i)
    """
    th = as_float_array("theta", theta, min_ndim=2)
    with np.errstate(over="ignore", invalid="ignore"):
        c = th[..., :1] * th[..., 1:]
    if not np.all(np.isfinite(c)):
        raise ValueError(
            f"effective coordinates a·(w, b) of theta overflow float64; got {describe(th)}"
        )
    return c


def _check_teacher(teacher: Any, d: int) -> None:
    if teacher is None:
        return
    if not isinstance(teacher, ParticleMeasure):
        raise TypeError(f"teacher must be a ParticleMeasure or None; got {describe(teacher)}")
    if teacher.d != d:
        raise ValueError(f"teacher has input dimension d={teacher.d} but thetas has d={d}")


def _snapshots(
    thetas: ArrayLike, teacher: Any, *, single: bool = True, d: int | None = None
) -> NDArray[np.floating]:
    """Validate the snapshots ``(T, m, d+2)`` of one run and the teacher drawn with them.

    ``single``: one snapshot ``(m, d+2)`` is read as T = 1.  The dimension must be
    d ≥ 2, or exactly ``d`` if given.
    """
    if single:
        th = as_float_array("thetas", thetas, min_ndim=2)
        th = th[None] if th.ndim == 2 else th
    else:
        th = as_float_array("thetas", thetas, ndim=3)
    ok = th.shape[-1] >= 4 if d is None else th.shape[-1] == d + 2
    if th.ndim != 3 or not ok or 0 in th.shape:
        want = "(T, m, d+2) with d >= 2" if d is None else f"(T, m, {d + 2}) (d = {d})"
        raise ValueError(f"thetas must have shape {want}; got {th.shape}")
    _check_teacher(teacher, th.shape[-1] - 2)
    return th


def _finish(ax: Any, title: str | None, legend_loc: str, **labels: str) -> Any:
    """Set the axis labels, the title (if any) and the legend of a particle plot."""
    ax.set(**labels)
    if title:
        ax.set_title(title)
    ax.legend(loc=legend_loc)
    return ax


def _teacher_rays(ax: Axes, teacher: ParticleMeasure, lim: float) -> None:
    """Teacher points a*·w* (red) and the rays from 0 through them, as in the notebook."""
    c = effective_coordinates(teacher.theta)[..., :2].reshape(-1, 2)
    for cx, cy in c:
        norm = np.hypot(cx, cy)
        if norm > 0:
            ax.plot([0, 2 * lim * cx / norm], [0, 2 * lim * cy / norm], color="k", lw=1, zorder=1)
    ax.scatter(
        c[:, 0], c[:, 1], s=100, color=TEACHER_COLOR, alpha=0.4, zorder=3, label="teacher a*·w*"
    )


def plot_particles(
    thetas: ArrayLike,
    *,
    teacher: ParticleMeasure | None = None,
    ax: Axes | None = None,
    lim: float = 2.0,
    trail: bool = True,
    title: str | None = None,
) -> Axes:
    r"""Draw the notebook's picture: particles a·w ∈ ℝ², grey trails, the teacher's rays.

    Parameters
    ----------
    thetas : array_like, shape (T, m, d+2) or (m, d+2)
        Snapshots of one run (d ≥ 2; the first two coordinates of a·w are drawn).
    teacher : ParticleMeasure, optional
        Teacher ν, drawn as red dots a*·w* with the rays through them.
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.
    lim : float, default 2.0
        Half-width of the square window (the notebook's ±2).
    trail : bool, default True
        Draw every earlier snapshot as small grey dots.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib Axes
    """
    th = _snapshots(thetas, teacher)
    lim = check_positive("lim", lim)
    c = effective_coordinates(th)[..., :2]
    if ax is None:
        _, ax = plt.subplots()
    if teacher is not None:
        _teacher_rays(ax, teacher, lim)
    if trail and c.shape[0] > 1:
        past = c[:-1].reshape(-1, 2)
        ax.scatter(past[:, 0], past[:, 1], s=5, color=TRAIL_COLOR, alpha=0.4, lw=0, zorder=2)
    ax.scatter(c[-1, :, 0], c[-1, :, 1], s=20, color=STUDENT_COLOR, zorder=4, label="student a·w")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    return _finish(ax, title, "lower left", xlabel=r"$(a w)_1$", ylabel=r"$(a w)_2$")


def plot_effective_3d(
    thetas: ArrayLike,
    *,
    teacher: ParticleMeasure | None = None,
    fig: Figure | None = None,
    title: str | None = None,
) -> Axes:
    r"""Particles in the full effective-neuron space c = a·(w, b) ∈ ℝ³ (d = 2), with trails.

    Parameters
    ----------
    thetas : array_like, shape (T, m, 4) or (m, 4)
        Snapshots of one run with d = 2.
    teacher : ParticleMeasure, optional
        Teacher ν (its c* drawn as red dots with rays from 0).
    fig : matplotlib Figure, optional
        Figure to draw in.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib Axes (3-D)
    """
    th = _snapshots(thetas, teacher, d=2)
    c = effective_coordinates(th)
    fig = fig if fig is not None else plt.figure()
    ax = fig.add_subplot(projection="3d")
    if c.shape[0] > 1:
        past = c[:-1].reshape(-1, 3)
        ax.scatter(past[:, 0], past[:, 1], past[:, 2], s=2, color=TRAIL_COLOR, alpha=0.3)
    ax.scatter(c[-1, :, 0], c[-1, :, 1], c[-1, :, 2], s=20, color=STUDENT_COLOR, label="student c")
    if teacher is not None:
        ct = effective_coordinates(teacher.theta).reshape(-1, 3)
        for p in ct:
            ax.plot([0, 1.3 * p[0]], [0, 1.3 * p[1]], [0, 1.3 * p[2]], color="k", lw=1)
        ax.scatter(
            ct[:, 0], ct[:, 1], ct[:, 2], s=80, color=TEACHER_COLOR, alpha=0.5, label="teacher c*"
        )
    labels = {"xlabel": r"$a w_1$", "ylabel": r"$a w_2$", "zlabel": r"$a b$"}
    return _finish(ax, title, "upper left", **labels)


def plot_risk(
    times: ArrayLike,
    risks: ArrayLike,
    *,
    ax: Axes | None = None,
    label: str | None = None,
    loglog: bool = True,
    **kwargs: Any,
) -> Axes:
    r"""Risk F(μ_t) against mean-field time t (log-log by default).

    Parameters
    ----------
    times : array_like, shape (T,)
        Mean-field times.
    risks : array_like, shape (T,) or (T, R)
        Risk of one run or of R runs (each drawn as a line).
    ax : matplotlib Axes, optional
        Where to draw.
    label : str, optional
        Legend label.
    loglog : bool, default True
        Logarithmic axes (times ≤ 0 and risks ≤ 0 are left out).
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.plot`.

    Returns
    -------
    matplotlib Axes
    """
    t = as_float_array("times", times, ndim=1)
    r = as_float_array("risks", risks, min_ndim=1)
    if r.shape[0] != t.shape[0]:
        raise ValueError(f"risks must have {t.shape[0]} rows to match times; got shape {r.shape}")
    if ax is None:
        _, ax = plt.subplots()
    rr = r.reshape(len(t), -1)
    keep = (t > 0) & np.any(rr > 0, axis=1) if loglog else np.ones_like(t, dtype=bool)
    rr = np.where(rr > 0, rr, np.nan) if loglog else rr  # log axes: gaps, not a warning
    ax.plot(t[keep], rr[keep], label=label, **kwargs)
    if loglog:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("mean-field time t")
    ax.set_ylabel(r"risk $F(\mu_t)$")
    return ax


def animate_particles(
    thetas: ArrayLike,
    path: str | Path,
    *,
    teacher: ParticleMeasure | None = None,
    times: ArrayLike | None = None,
    lim: float = 2.0,
    fps: int = 30,
    mp4: bool = True,
) -> list[Path]:
    """Animate the notebook's picture: one frame per snapshot, trails accumulating.

    Writes a GIF with Pillow always, and an MP4 next to it when an ffmpeg is available
    (``imageio-ffmpeg`` ships one) and ``mp4`` is true.  Files are written atomically.

    Parameters
    ----------
    thetas : array_like, shape (T, m, d+2)
        Snapshots of one run (d ≥ 2).
    path : str or Path
        Output path; its suffix is replaced by ``.gif`` / ``.mp4``.
    teacher : ParticleMeasure, optional
        Teacher ν drawn with its rays.
    times : array_like, shape (T,), optional
        Mean-field times shown in the title.
    lim : float, default 2.0
        Half-width of the window.
    fps : int, default 30
        Frames per second.
    mp4 : bool, default True
        Also write an MP4 when possible.

    Returns
    -------
    list of Path
        The files written.
    """
    from meanfield._io import atomic_path

    th = _snapshots(thetas, teacher, single=False)
    lim = check_positive("lim", lim)
    fps = check_int("fps", fps)
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or a PathLike; got {describe(path)}")
    c = effective_coordinates(th)[..., :2]
    t = None if times is None else as_float_array("times", times, ndim=1)
    if t is not None and t.shape[0] != th.shape[0]:
        raise ValueError(f"times must have shape ({th.shape[0]},) like thetas; got {t.shape}")
    with style():
        fig, ax = plt.subplots(figsize=(5, 5))
        if teacher is not None:
            _teacher_rays(ax, teacher, lim)
        trail = ax.scatter([], [], s=4, color=TRAIL_COLOR, alpha=0.4, lw=0)
        scat = ax.scatter(c[0, :, 0], c[0, :, 1], s=20, color=STUDENT_COLOR, zorder=4)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")

        def update(k: int) -> tuple[Any, ...]:
            trail.set_offsets(c[:k].reshape(-1, 2) if k else np.empty((0, 2)))
            scat.set_offsets(c[k])
            ax.set_title(f"t = {t[k]:.3g}" if t is not None else f"frame {k}")
            return scat, trail

        anim = animation.FuncAnimation(fig, update, frames=len(c), blit=False)
        out = Path(path)
        written = []
        with atomic_path(out.with_suffix(".gif")) as tmp:
            anim.save(tmp, writer=animation.PillowWriter(fps=fps))
        written.append(out.with_suffix(".gif"))
        ffmpeg = _ffmpeg()
        if mp4 and ffmpeg is not None:
            mpl.rcParams["animation.ffmpeg_path"] = ffmpeg
            with atomic_path(out.with_suffix(".mp4")) as tmp:
                anim.save(tmp, writer=animation.FFMpegWriter(fps=fps))
            written.append(out.with_suffix(".mp4"))
        plt.close(fig)
    return written


def _ffmpeg() -> str | None:
    """Path of an ffmpeg executable (``imageio-ffmpeg``'s, or one on PATH), or None."""
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def save_figure(
    fig: Figure, path: str | Path, formats: tuple[str, ...] = ("png", "pdf")
) -> list[Path]:
    """Save ``fig`` atomically in each format; returns the paths written.

    ``path`` names the files without their extension (``out/run_tau=0.5`` gives
    ``out/run_tau=0.5.png``); an extension naming a supported format is dropped first
    (``out/fig.png`` gives ``out/fig.png`` and ``out/fig.pdf``).

    Raises
    ------
    TypeError
        If ``path`` is not a path or ``formats`` not a tuple of format names.
    ValueError
        If ``formats`` is empty or names a format matplotlib cannot write.
    """
    from meanfield._io import atomic_path

    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or a PathLike; got {describe(path)}")
    if isinstance(formats, str) or not all(isinstance(f, str) for f in formats):
        raise TypeError(f"formats must be a tuple of format names; got {describe(formats)}")
    supported = fig.canvas.get_supported_filetypes()
    unknown = [f for f in formats if f not in supported]
    if not formats or unknown:
        raise ValueError(
            f"formats must name at least one of {sorted(supported)}; got {describe(formats)}"
        )
    base = Path(path)
    if base.suffix[1:].lower() in supported:
        base = base.with_suffix("")
    out = []
    for fmt in formats:
        target = base.with_name(f"{base.name}.{fmt}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt)
        out.append(target)
    return out


def plot_diagnostics(
    trajectory: Any,
    estimator: Any,
    *,
    n_certificates: int = 8,
    eps: float = 1e-3,
    rng: int = 0,
) -> Figure:
    r"""Draw the diagnostics panel of a run: risk, certificate, stationarity, balance, recovery.

    Five panels against mean-field time (log axes): the excess risk F(μ_t) − inf F with
    the threshold ε; the optimality certificate min_{S^{d+1}} J_{μ_t} (ReLU; ≥ 0 at a
    global minimiser) at ``n_certificates`` log-spaced snapshots; the
    Wasserstein-gradient norm ∫‖v_{μ_t}‖² dμ_t; the balancedness drift
    max_i |β_i(t) − β_i(0)| with β = a² − ‖w‖² − b²; the teacher recovery (MMD between
    effective-neuron measures, and the student mass near each teacher neuron over its
    teacher mass).

    Parameters
    ----------
    trajectory : Trajectory
        A single run (no ensemble axes).
    estimator : VelocityEstimator
        Sees the target; the exact Gaussian-population one gives noiseless curves.
    n_certificates : int, default 8
        Snapshots where the certificate is computed (it costs a global search each).
    eps : float, default 1e-3
        Threshold of the convergence time.
    rng : int, default 0
        Seed of the certificate's random starts.

    Returns
    -------
    matplotlib Figure
    """
    from meanfield.diagnostics import trajectory_diagnostics

    if not all(hasattr(trajectory, name) for name in ("times", "thetas")):
        raise TypeError(f"trajectory must be a Trajectory; got {describe(trajectory)}")
    n_certificates = check_int("n_certificates", n_certificates)
    if getattr(trajectory, "batch_shape", ()):
        raise ValueError("trajectory must be a single run; use trajectory.replica(r)")
    T = len(trajectory.times)
    relu = (
        getattr(estimator, "activation", None) is not None and estimator.activation.name == "relu"
    )
    idx = (
        np.unique(np.geomspace(1, T - 1, n_certificates).astype(int))
        if relu and T > 1
        else np.empty(0, dtype=int)
    )
    diag = trajectory_diagnostics(trajectory, estimator, eps=eps, certificate_at=idx, rng=rng)
    t = diag.times
    keep = t > 0
    with style():
        fig, grid = plt.subplots(2, 3, figsize=(15, 8))
        axes = grid.ravel()
        axes[5].set_axis_off()
        ax = axes[0]
        ax.loglog(t[keep], np.maximum(diag.excess_risk[keep], 1e-300), color="k")
        ax.axhline(eps, color="tab:red", ls=":", label=f"ε = {eps:g}")
        ax.set_title("excess risk")
        ax.legend()
        ax = axes[1]
        if diag.certificate:
            ks = sorted(diag.certificate)
            vals = np.array([diag.certificate[k].value for k in ks])
            ax.semilogx(t[ks], vals, "o-", color="tab:purple")
            ax.axhline(0, color="0.3", lw=0.8)
            ax.set_yscale(
                "symlog", linthresh=max(1e-6, float(np.min(np.abs(vals[vals != 0]), initial=1e-6)))
            )
        ax.set_title(r"certificate $\min_{S^{d+1}} J_{\mu_t}$")
        ax = axes[2]
        ax.loglog(t[keep], diag.gradient_norm[keep], color="tab:green")
        ax.set_title(r"stationarity $\int\|v_{\mu_t}\|^2 d\mu_t$")
        ax = axes[3]
        if diag.balancedness_drift is not None:
            drift = np.max(np.abs(diag.balancedness_drift), axis=-1)
            ax.loglog(t[keep], np.maximum(drift[keep], 1e-300), color="tab:orange")
        ax.set_title(r"balancedness drift $\max_i|\beta_i(t)-\beta_i(0)|$")
        ax = axes[4]
        if diag.mmd is not None and diag.mass_ratio is not None:
            ax.loglog(t[keep], diag.mmd[keep], color="k", label="MMD to teacher")
            lines = ax.semilogx(t[keep], diag.mass_ratio[keep], lw=0.8, alpha=0.8)
            for j, line in enumerate(lines):
                line.set_label(f"mass ratio, teacher {j}")
            ax.axhline(1, color="0.3", lw=0.8, ls=":")
            ax.legend()
        ax.set_title("teacher recovery (mass ratios, MMD)")
        for ax in axes[:5]:
            ax.set_xlabel("mean-field time t")
        fig.tight_layout()
    return fig

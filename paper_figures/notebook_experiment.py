"""The user's notebook, replayed exactly: teacher ReLU network (m₀ = 4, d = 2), student of
m = 20 neurons on the notebook's small sphere (R = 0.05), online SGD with τ = 0.5 and batch
20 over 500 frames of 100·⌊log(10 + 10 i)⌋ fresh samples.

The replay draws every random number from ``np.random.RandomState(18)`` in the notebook's
order (teacher, student, then per frame the samples and the permutation), and processes
frame 0 twice as the notebook's ``FuncAnimation`` did.  Outputs:

(a) ``notebook_particles``: the notebook's final picture (particles a·w, grey trails,
    teacher points and rays);
(b) ``notebook_animation.gif`` (and ``.mp4`` with an ffmpeg): the animation;
(c) ``notebook_effective_3d``: the same particles in the effective-neuron space
    a·(w, b) ∈ ℝ³, which shows the bias the notebook's projection hides;
(d) ``notebook_risk``: the population risk F(μ_t) against mean-field time t = kτ/m,
    computed exactly for Gaussian inputs (no sampling noise);
(e) ``notebook_diagnostics``: the diagnostics panel (certificate, stationarity,
    balancedness, teacher recovery) along the run.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from meanfield.figures import FigureResult
from meanfield.notebook import notebook_run
from meanfield.plotting import (
    animate_particles,
    plot_diagnostics,
    plot_effective_3d,
    plot_particles,
    plot_risk,
    save_figure,
    style,
)
from meanfield.population import GaussianPopulationEstimator

SEED = 18


def make(out_dir: Path, quick: bool) -> FigureResult:
    n_frames = 40 if quick else 500
    traj = notebook_run(n_frames, seed=SEED, repeat_first=True, progress=False)
    exact = GaussianPopulationEstimator(traj.teacher, activation="relu")
    risks = np.array([float(exact.risk(traj.measure(k))) for k in range(len(traj))])
    files: list[Path] = []
    with style():
        fig, ax = plt.subplots(figsize=(7, 6))
        plot_particles(
            traj.thetas,
            teacher=traj.teacher,
            ax=ax,
            title=f"notebook replay: m = 20, R = 0.05, {n_frames} frames",
        )
        files += save_figure(fig, out_dir / "notebook_particles")
        plt.close(fig)

        fig = plt.figure(figsize=(7, 6))
        plot_effective_3d(
            traj.thetas, teacher=traj.teacher, fig=fig, title="effective neurons a·(w, b) ∈ ℝ³"
        )
        files += save_figure(fig, out_dir / "notebook_effective_3d")
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(6, 4))
        plot_risk(traj.times, risks, ax=ax, label="exact population risk", color="k")
        ax.legend()
        files += save_figure(fig, out_dir / "notebook_risk")
        plt.close(fig)

        fig = plot_diagnostics(traj, exact)
        files += save_figure(fig, out_dir / "notebook_diagnostics")
        plt.close(fig)

    stride = max(1, len(traj) // (20 if quick else 250))
    idx = np.unique(np.r_[np.arange(0, len(traj), stride), len(traj) - 1])
    files += animate_particles(
        traj.thetas[idx],
        out_dir / "notebook_animation",
        teacher=traj.teacher,
        times=traj.times[idx],
        fps=25,
    )
    return FigureResult(
        files=files,
        parameters={
            **traj.config,
            "frame_ends": None,
            "animation_stride": int(stride),
            "risk": "exact Gaussian-population risk",
        },
        seeds=[SEED],
        notes=(
            f"final exact risk {risks[-1]:.3e} at t = {traj.times[-1]:.1f} "
            f"(initial {risks[0]:.3e}); {traj.info.get('n_steps')} SGD steps"
        ),
    )

r"""Question 3 of the notebook: the influence of the teacher's configuration.

Student: the notebook's run, m = 20 particles of the notebook's law with R = 0.05,
online SGD with batch 20 and τ = 0.5 (η = τ/m = 0.025) up to mean-field time T = 300,
every cell one ensemble over the seeds.  Teachers (d = 2, (w⋆, b⋆) on the unit sphere
S² of ℝ³, |a⋆ⱼ| = 1, one random teacher of the given configuration per seed):

* angle study: m₀ ∈ {2, 3, 4, 6, 8} neurons placed as a randomly rotated, relaxed
  Thomson configuration on S², then the closest pair pulled together until the
  smallest angle between neurons ∠((wᵢ⋆, bᵢ⋆), (wⱼ⋆, bⱼ⋆)) is exactly α ∈ {4°, 8°,
  16°, 32°} (:func:`_studies.angle_teacher`); output weights all +1 ("positive") or
  mixed (the close pair of opposite signs, the others alternating);
* bias study: m₀ = 4 neurons with |b⋆ⱼ| = s ∈ {0, 0.3, 0.6, 0.8, 0.9, 0.95}, w⋆ evenly
  spread on the circle of radius √(1 − s²), bias signs random
  (:func:`_studies.bias_teacher`); neuron j's kink is at distance s/√(1 − s²) from 0.

Heatmaps: probability of reaching ε = 10⁻²·F(0) within T (F(0) = ½E[f_ν²], the risk of
the zero network, so ε is relative to each teacher's scale), the median time to reach
it (over the runs that do) and the median final excess risk F(μ_T)/F(0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from _studies import (
    CODE_HASH,
    DEFAULTS,
    column,
    json_safe,
    quantiles,
    run_studies,
    save_tidy_csv,
    sgd_cell,
)

from meanfield.figures import FigureResult
from meanfield.plotting import save_figure, style
from meanfield.sweep import Study, StudyTable

NAME = "question3_teacher"
SIGNS = ("positive", "mixed")


def settings(quick: bool) -> dict[str, Any]:
    """Grids, seeds and horizon of the full and quick runs."""
    if quick:
        return {"m0": [2, 4], "angles": [8.0, 32.0], "biases": [0.0, 0.8],
                "seeds": list(range(3)), "t_end": 60.0, "m": 20}
    return {"m0": [2, 3, 4, 6, 8], "angles": [4.0, 8.0, 16.0, 32.0],
            "biases": [0.0, 0.3, 0.6, 0.8, 0.9, 0.95], "seeds": list(range(16)),
            "t_end": 300.0, "m": 20}


def _grid(table: StudyTable, rows: list[Any], cols: list[Any], rkey: str, ckey: str,
          **eq: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Success fraction, median time to ε and median final F/F(0) on a rows × cols grid."""
    p = np.full((len(rows), len(cols)), np.nan)
    t = np.full_like(p, np.nan)
    f = np.full_like(p, np.nan)
    for i, rv in enumerate(rows):
        for j, cv in enumerate(cols):
            g = table.where(**{rkey: rv, ckey: cv}, **eq).rows
            p[i, j] = float(np.mean(column(g, "success")))
            t[i, j] = quantiles(column(g, "t_eps"))[1]
            f[i, j] = quantiles(column(g, "final_rel"))[1]
    return p, t, f


def _heatmap(ax: Any, z: np.ndarray, xlabels: list[str], ylabels: list[str], *, fmt: str,
             cmap: str, vmin: float | None, vmax: float | None, log: bool = False) -> Any:
    from matplotlib.colors import LogNorm, Normalize

    norm = LogNorm(vmin, vmax) if log else Normalize(vmin, vmax)
    cm = plt.get_cmap(cmap)
    im = ax.imshow(np.ma.masked_invalid(z), cmap=cm, norm=norm, aspect="auto", origin="lower")
    ax.set_facecolor("0.85")
    for (i, j), v in np.ndenumerate(z):
        txt = "—" if not np.isfinite(v) else format(v, fmt)
        r, g, b, _ = cm(float(norm(v))) if np.isfinite(v) else (1.0, 1.0, 1.0, 1.0)
        ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                color="k" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "w")
    ax.set_xticks(range(len(xlabels)), xlabels)
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.grid(False)
    return im


def make(out_dir: Path, quick: bool) -> FigureResult:
    """Run the studies and draw figure 6."""
    cfg = settings(quick)
    base = {"m": cfg["m"], "radius": 0.05, "law": "notebook", "t_end": cfg["t_end"],
            "code": CODE_HASH}
    angle = Study("q3_angle", sgd_cell, {"m0": cfg["m0"][::-1], "min_angle": cfg["angles"],
                                         "signs": list(SIGNS)},
                  cfg["seeds"], fixed={**base, "teacher": "angle"})
    bias = Study("q3_bias", sgd_cell, {"bias": cfg["biases"], "signs": list(SIGNS)},
                 cfg["seeds"], fixed={**base, "teacher": "bias", "m0": 4})
    angle_tab, bias_tab = run_studies([angle, bias], out_dir / "cache")
    table = StudyTable([*angle_tab.rows, *bias_tab.rows])
    files = [save_tidy_csv(table, out_dir / f"{NAME}.csv")]

    m0s, angles, biases = cfg["m0"], cfg["angles"], cfg["biases"]
    res: dict[str, Any] = {}
    for s in SIGNS:
        res[s] = _grid(angle_tab, m0s, angles, "m0", "min_angle", signs=s)
    res["bias"] = _grid(bias_tab, list(SIGNS), biases, "signs", "bias")
    t_all = np.concatenate([r[1].ravel() for r in res.values()])
    t_fin = t_all[np.isfinite(t_all)]
    tmin, tmax = (float(t_fin.min()), float(t_fin.max())) if t_fin.size else (1.0, 10.0)
    f_all = np.concatenate([r[2].ravel() for r in res.values()])
    f_pos = f_all[np.isfinite(f_all) & (f_all > 0)]
    fmin, fmax = (float(f_pos.min()), float(f_pos.max())) if f_pos.size else (1e-4, 1.0)
    alabels = [f"{a:g}°" for a in angles]
    blabels = [f"{b:g}" for b in biases]
    kinds = (("P(reach ε)", ".2f", "viridis", 0.0, 1.0, False),
             ("median time to ε", ".0f", "magma_r", tmin, tmax, True),
             ("median F(μ_T)/F(0)", ".0e", "cividis", fmin, fmax, True))
    letters = "abcdefghi"
    with style():
        fig, axes = plt.subplots(3, 3, figsize=(16, 12.5), layout="constrained",
                                 gridspec_kw={"width_ratios": [1, 1, 1.35]})
        for row, (what, fmt, cmap, lo, hi, log) in enumerate(kinds):
            im = None
            for k, s in enumerate(SIGNS):
                im = _heatmap(axes[row, k], res[s][row], alabels, [str(m) for m in m0s],
                              fmt=fmt, cmap=cmap, vmin=lo, vmax=hi, log=log)
                axes[row, k].set(xlabel="smallest angle between teacher neurons",
                                 ylabel="teacher neurons m₀",
                                 title=f"({letters[3 * row + k]}) {what}, {s} a⋆")
            im = _heatmap(axes[row, 2], res["bias"][row], blabels, list(SIGNS), fmt=fmt,
                          cmap=cmap, vmin=lo, vmax=hi, log=log)
            axes[row, 2].set(xlabel="teacher bias size |b⋆| (m₀ = 4)", ylabel="output weights",
                             title=f"({letters[3 * row + 2]}) {what} against the bias size")
            fig.colorbar(im, ax=axes[row, :].tolist(), shrink=0.9, label=what)
        fig.suptitle(f"Question 3 — teacher configuration: student m = {cfg['m']}, R = 0.05, "
                     f"online SGD B = 20, τ = 0.5, T = {cfg['t_end']:g}; ε = 10⁻²·F(0); "
                     f"{len(cfg['seeds'])} seeds per cell (a random teacher each)", fontsize=11)
        files += save_figure(fig, out_dir / NAME)
        plt.close(fig)

    def row_mean(z: np.ndarray, axis: int) -> list[float]:
        return [float(v) for v in np.nanmean(z, axis=axis)]

    pp, pm, pb = res["positive"][0], res["mixed"][0], res["bias"][0]
    notes = (
        f"P(reach ε=1e-2·F(0) by T={cfg['t_end']:g}), averaged over angles, per m0 "
        f"{m0s}: positive a⋆ {np.round(row_mean(pp, 1), 2).tolist()}, mixed "
        f"{np.round(row_mean(pm, 1), 2).tolist()}; averaged over m0, per smallest angle "
        f"{angles}: positive {np.round(row_mean(pp, 0), 2).tolist()}, mixed "
        f"{np.round(row_mean(pm, 0), 2).tolist()}. Overall: positive {np.nanmean(pp):.2f}, "
        f"mixed {np.nanmean(pm):.2f}. Bias size {biases}: positive "
        f"{np.round(pb[0], 2).tolist()}, mixed {np.round(pb[1], 2).tolist()}. Median time "
        f"to ε ranges {tmin:.3g}–{tmax:.3g}."
    )
    params = {**DEFAULTS, **base, "m0_grid": m0s, "angles_deg": angles, "biases": biases,
              "signs": list(SIGNS),
              "eps": "eps_rel * F(0), F(0) = risk of the zero network",
              "success": {s: res[s][0].tolist() for s in SIGNS} | {"bias": pb.tolist()},
              "median_t_eps": {k: v[1].tolist() for k, v in res.items()},
              "median_final_rel": {k: v[2].tolist() for k, v in res.items()}}
    return FigureResult(files=files, parameters=json_safe(params), seeds=cfg["seeds"], notes=notes)

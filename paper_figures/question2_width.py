r"""Question 2 of the notebook: the influence of the number of units m.

Teacher: the notebook's law (m₀ = 4 neurons, (w⋆, b⋆) ∈ S², a⋆ ~ N(0, 1)), one per
seed.  Student: the notebook's law with R = 0.05 (a ~ N(0, 1), (w, b) uniform on
R·S²), width m from 2 (< m₀) to 256 (= 64 m₀), the same seeds at every m.
Dynamics: online SGD, batch 20, τ = 0.5, i.e. η = τ/m in mean-field time, so a run
of mean-field time T takes T·m/τ steps: every width is compared on ONE time axis (the
mean-field time), up to T = 300.  The exact Wasserstein gradient flow (RK45, exact
Gaussian-population velocity) from the same starts, for m ≤ 16, is the noiseless
reference: where SGD and the flow fail on the same seeds, the failure is not SGD noise.

Panels: (a) median F(μ_t)/F(0) against t per m; (b) excess risk F(μ_T)/F(0) at T
(every run, medians); (c) probability of reaching ε = 10⁻²·F(0) by T with a 95 %
Wilson interval; (d) time to reach ε (median and IQR over the runs that reach it).
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
    flow_cell,
    json_safe,
    median_curve,
    quantiles,
    run_studies,
    save_tidy_csv,
    sgd_cell,
    wilson,
)
from matplotlib.ticker import NullFormatter

from meanfield.figures import FigureResult
from meanfield.plotting import save_figure, style
from meanfield.sweep import Study, StudyTable

NAME = "question2_width"
M0 = 4


def settings(quick: bool) -> dict[str, Any]:
    """Grid, seeds and horizon of the full and quick runs."""
    if quick:
        return {"widths": [2, 4, 16], "wide": [32], "seeds": list(range(4)),
                "wide_seeds": list(range(4)), "flow_widths": [4], "t_end": 60.0}
    return {"widths": [2, 3, 4, 6, 8, 16, 32, 64], "wide": [256, 128],
            "seeds": list(range(16)), "wide_seeds": list(range(8)),
            "flow_widths": [2, 3, 4, 6, 8, 16], "t_end": 300.0}


def make(out_dir: Path, quick: bool) -> FigureResult:
    """Run the studies and draw figure 5."""
    cfg = settings(quick)
    fixed = {"m0": M0, "radius": 0.05, "law": "notebook", "t_end": cfg["t_end"],
             "code": CODE_HASH}
    studies = [
        Study("q2_sgd_wide", sgd_cell, {"m": cfg["wide"]}, cfg["wide_seeds"], fixed=fixed),
        Study("q2_flow", flow_cell, {"m": cfg["flow_widths"][::-1]}, cfg["seeds"], fixed=fixed),
        Study("q2_sgd", sgd_cell, {"m": cfg["widths"][::-1]}, cfg["seeds"], fixed=fixed),
    ]
    wide_tab, flow_tab, sgd_tab = run_studies(studies, out_dir / "cache")
    sgd_rows = StudyTable([*sgd_tab.rows, *wide_tab.rows])
    table = StudyTable([{**r, "dynamics": "sgd"} for r in sgd_rows.rows]
                       + [{**r, "dynamics": "flow"} for r in flow_tab.rows])
    files = [save_tidy_csv(table, out_dir / f"{NAME}.csv")]

    widths = sorted(cfg["widths"] + cfg["wide"])
    groups = {m: sgd_rows.where(m=m).rows for m in widths}
    fgroups = {m: flow_tab.where(m=m).rows for m in cfg["flow_widths"]}
    stats: dict[str, Any] = {"sgd": {}, "flow": {}}
    for name, grp in (("sgd", groups), ("flow", fgroups)):
        for m, g in grp.items():
            succ = column(g, "success")
            stats[name][m] = {"n": len(g), "success": float(succ.mean()),
                              "final_rel": quantiles(column(g, "final_rel")),
                              "t_eps": quantiles(column(g, "t_eps"))}
    cmap = plt.get_cmap("viridis")
    with style():
        fig, axes = plt.subplots(2, 2, figsize=(12, 9))
        ax = axes[0, 0]
        for i, m in enumerate(widths):
            t, f = median_curve(groups[m])
            ax.loglog(t[1:], f[1:], color=cmap(i / max(len(widths) - 1, 1)), label=f"m = {m}")
        ax.axhline(DEFAULTS["eps_rel"], color="k", ls=":", lw=1, label="ε = 10⁻²·F(0)")
        ax.set(xlabel="mean-field time t", ylabel="median F(μ_t) / F(0)",
               title="(a) SGD risk curves (median over seeds)")
        ax.legend(ncol=2, loc="lower left")

        ax = axes[0, 1]
        for m in widths:
            v = column(groups[m], "final_rel")
            ax.scatter(np.full(v.size, m) * np.exp(np.linspace(-0.06, 0.06, v.size)), v, s=10,
                       color="tab:blue", alpha=0.35, lw=0)
        ax.plot(widths, [stats["sgd"][m]["final_rel"][1] for m in widths], "o-",
                color="tab:blue", label="SGD median")
        fw = cfg["flow_widths"]
        ax.plot(fw, [stats["flow"][m]["final_rel"][1] for m in fw], "s--", mfc="none", ms=8,
                color="tab:red", label="exact flow median")
        ax.axhline(DEFAULTS["eps_rel"], color="k", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="width m",
               ylabel=f"F(μ_T) / F(0) at T = {cfg['t_end']:g}",
               title="(b) excess risk at the end (each run, median)")

        ax = axes[1, 0]
        for name, grp, color, mk in (("sgd", groups, "tab:blue", "o-"),
                                     ("flow", fgroups, "tab:red", "s--")):
            ms = sorted(grp)
            p = np.array([stats[name][m]["success"] for m in ms])
            ci = np.array([wilson(round(stats[name][m]["success"] * len(grp[m])), len(grp[m]))
                           for m in ms])
            ax.errorbar(ms, p, yerr=[p - ci[:, 0], ci[:, 1] - p], fmt=mk, color=color,
                        mfc="none" if name == "flow" else color, capsize=3,
                        label="SGD" if name == "sgd" else "exact flow")
        ax.set(xscale="log", ylim=(-0.05, 1.05), xlabel="width m",
               ylabel=f"P(F(μ_t) ≤ ε for some t ≤ {cfg['t_end']:g})",
               title="(c) probability of reaching ε (95 % Wilson interval)")

        ax = axes[1, 1]
        for name, grp, color, mk in (("sgd", groups, "tab:blue", "o-"),
                                     ("flow", fgroups, "tab:red", "s--")):
            ms = [m for m in sorted(grp) if np.isfinite(stats[name][m]["t_eps"][1])]
            q = np.array([stats[name][m]["t_eps"] for m in ms]).reshape(-1, 3)
            ax.errorbar(ms, q[:, 1], yerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]], fmt=mk,
                        color=color, mfc="none" if name == "flow" else color, capsize=3,
                        label="SGD" if name == "sgd" else "exact flow")
        ax.set(xscale="log", yscale="log", xlabel="width m", ylabel="time to reach ε",
               title="(d) time to ε (median, IQR over the runs that reach it)")
        for a in axes.flat[1:]:
            a.axvline(M0, color="0.4", ls="--", lw=1, label="m = m₀ = 4")
            a.set_xticks(widths, [str(m) for m in widths])
            a.xaxis.set_minor_formatter(NullFormatter())
            a.legend(loc="best")
        fig.suptitle(f"Question 2 — number of units m: m₀ = 4, d = 2, R = 0.05, online SGD "
                     f"B = 20, τ = 0.5 (η = τ/m), T = {cfg['t_end']:g}; "
                     f"{len(cfg['seeds'])} seeds (m ≤ {max(cfg['widths'])}), "
                     f"{len(cfg['wide_seeds'])} seeds (m ≥ {min(cfg['wide'])})", fontsize=11)
        fig.tight_layout()
        files += save_figure(fig, out_dir / NAME)
        plt.close(fig)

    s = stats["sgd"]
    notes = (
        f"Median F(μ_T)/F(0) at T={cfg['t_end']:g}: "
        + ", ".join(f"m={m}: {s[m]['final_rel'][1]:.2e}" for m in widths)
        + ". P(reach ε=1e-2·F(0)) [median time to ε]: "
        + ", ".join(f"m={m}: {s[m]['success']:.0%} of {s[m]['n']} [{s[m]['t_eps'][1]:.3g}]"
                    for m in widths)
        + f". Exact flow (m ≤ {max(cfg['flow_widths'])}): "
        + ", ".join(f"m={m}: {v['success']:.0%} [{v['t_eps'][1]:.3g}]"
                    for m, v in sorted(stats["flow"].items()))
        + "."
    )
    params = {**DEFAULTS, **fixed, "widths": widths, "flow_widths": cfg["flow_widths"],
              "eps": "eps_rel * F(0), F(0) = risk of the zero network",
              "seeds_wide": cfg["wide_seeds"],
              "stats": {k: {str(m): v for m, v in d.items()} for k, d in stats.items()}}
    return FigureResult(files=files, parameters=json_safe(params), seeds=cfg["seeds"], notes=notes)

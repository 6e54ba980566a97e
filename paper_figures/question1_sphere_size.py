r"""Question 1 of the notebook: the influence of the initial sphere's size R.

Teacher: the notebook's law (m₀ = 4 neurons, (w⋆, b⋆) ∈ S², a⋆ ~ N(0, 1)), one per
seed.  Student: m = 20 particles from

* the notebook's law, a ~ N(0, 1) and (w, b) uniform on R·S² ("notebook"), and
* the fully small law, θ = (a, w, b) uniform on R·S³ ⊂ ℝ⁴ ("sphere", a small too:
  the 2-homogeneous small initialisation of Chizat & Bach 2018, Thm 3.3),

with R on a log grid from 10⁻³ to 10, the same seeds (same teacher and initial
directions) at every R.  Dynamics: online SGD, batch 20, τ = 0.5 (η = τ/m = 0.025) up
to mean-field time T = 1000, every cell one ensemble over the seeds; the exact
Wasserstein gradient flow (RK45, exact Gaussian-population velocity) from the same
starts, for R ≤ 0.1, is the noiseless reference for the escape time.

Panels: (a, b) median F(μ_t)/F(0) against t per R; (c) escape time (10 % drop of the
risk) against log(1/R) with least-squares lines over R ≤ 0.1; (d) time to reach
ε = 10⁻²·F(0); (e) final excess risk F(μ_T)/F(0); (f) relative displacement
‖θ(T) − θ(0)‖/‖θ(0)‖ (lazy ≪ 1, rich ≳ 1).
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
    fit_log_slope,
    flow_cell,
    json_safe,
    median_curve,
    quantiles,
    run_studies,
    save_tidy_csv,
    sgd_cell,
)

from meanfield.figures import FigureResult
from meanfield.plotting import save_figure, style
from meanfield.sweep import Study, StudyTable

NAME = "question1_sphere_size"
LAWS = {"notebook": "notebook law: a~N(0,1), (w,b)∈R·S²", "sphere": "small sphere: θ∈R·S³"}
COLORS = {"notebook": "tab:blue", "sphere": "tab:orange"}
FIT_MAX_R = 0.1


def settings(quick: bool) -> dict[str, Any]:
    """Grid, seeds and horizons of the full and quick runs."""
    if quick:
        radii = [1e-3, 1e-1, 10.0]
        return {"radii": radii, "seeds": list(range(3)), "t_end": 60.0, "m": 20,
                "flow_radii": [1e-2, 1e-1], "flow_t_end": {"notebook": 2.0, "sphere": 30.0}}
    radii = [float(f"{r:.3g}") for r in np.logspace(-3, 1, 9)]
    return {"radii": radii, "seeds": list(range(8)), "t_end": 1000.0, "m": 20,
            "flow_radii": [r for r in radii if r <= FIT_MAX_R],
            "flow_t_end": {"notebook": 10.0, "sphere": 200.0}}


def _by(table: StudyTable, **eq: Any) -> list[dict[str, Any]]:
    return table.where(**eq).rows


def _band(ax: Any, xs: list[float], groups: list[list[dict[str, Any]]], col: str,
          **kw: Any) -> list[tuple[float, float, float]]:
    q = [quantiles(column(g, col)) for g in groups]
    lo, med, hi = (np.array(v) for v in zip(*q, strict=True))
    ax.errorbar(xs, med, yerr=[med - lo, hi - med], marker="o", capsize=3, **kw)
    return q


def make(out_dir: Path, quick: bool) -> FigureResult:
    """Run the studies and draw figure 4."""
    cfg = settings(quick)
    cache = out_dir / "cache"
    fixed = {"m": cfg["m"], "m0": 4, "t_end": cfg["t_end"], "code": CODE_HASH}
    sgd_study = Study("q1_sgd", sgd_cell, {"law": list(LAWS), "radius": cfg["radii"]},
                      cfg["seeds"], fixed=fixed)
    flows = [Study(f"q1_flow_{law}", flow_cell, {"radius": cfg["flow_radii"]}, cfg["seeds"],
                   fixed={**fixed, "law": law, "t_end": cfg["flow_t_end"][law]}) for law in LAWS]
    sgd_tab, *flow_list = run_studies([sgd_study, *flows], cache)
    flow_tabs = dict(zip(LAWS, flow_list, strict=True))
    rows = [{**r, "dynamics": "sgd"} for r in sgd_tab.rows]
    rows += [{**r, "dynamics": "flow"} for law in LAWS for r in flow_tabs[law].rows]
    table = StudyTable(rows)
    files = [save_tidy_csv(table, out_dir / f"{NAME}.csv")]

    radii = cfg["radii"]
    small = [r for r in radii if r <= FIT_MAX_R]
    stats: dict[str, Any] = {}
    cmap = plt.get_cmap("viridis")
    with style():
        fig, axes = plt.subplots(2, 3, figsize=(15, 8.6))
        for ax, law in zip(axes[0, :2], LAWS, strict=True):
            for i, r in enumerate(radii):
                t, f = median_curve(_by(sgd_tab, law=law, radius=r))
                ax.loglog(t[1:], f[1:], color=cmap(i / max(len(radii) - 1, 1)), label=f"R = {r:g}")
            ax.axhline(DEFAULTS["eps_rel"], color="k", ls=":", lw=1, label="ε = 10⁻²·F(0)")
            ax.set(xlabel="mean-field time t", ylabel="median F(μ_t) / F(0)",
                   title=f"({'ab'[list(LAWS).index(law)]}) SGD, {LAWS[law]}")
        axes[0, 0].legend(ncol=2, loc="lower left")

        ax = axes[0, 2]
        x_all = np.log(1.0 / np.array(radii))
        for law in LAWS:
            groups = [_by(sgd_tab, law=law, radius=r) for r in radii]
            for xv, g in zip(x_all, groups, strict=True):
                esc = column(g, "escape")
                ax.scatter(np.full(esc.size, xv), esc, s=8, color=COLORS[law], alpha=0.25, lw=0)
            med = np.array([quantiles(column(g, "escape"))[1] for g in groups])
            ax.plot(x_all, med, "o", color=COLORS[law], label=f"SGD median, {law}")
            c, t0, r2 = fit_log_slope(radii[: len(small)], med[: len(small)])
            flow_med = np.array([quantiles(column(_by(flow_tabs[law], radius=r), "escape"))[1]
                                 for r in cfg["flow_radii"]])
            ax.plot(np.log(1.0 / np.array(cfg["flow_radii"])), flow_med, "s", mfc="none",
                    color=COLORS[law], ms=9, label=f"exact flow median, {law}")
            cf, _, r2f = fit_log_slope(cfg["flow_radii"], flow_med)
            xs = np.log(1.0 / np.array(small))
            ax.plot(xs, c * xs + t0, "-", color=COLORS[law], lw=1,
                    label=f"fit {c:.2f}·log(1/R) {t0:+.2f} (R²={r2:.2f})")
            stats[law] = {"escape_slope": c, "escape_intercept": t0, "escape_r2": r2,
                          "flow_escape_slope": cf, "flow_escape_r2": r2f,
                          "escape_median": dict(zip(map(str, radii), med.tolist(), strict=True)),
                          "flow_escape_median": dict(zip(map(str, cfg["flow_radii"]),
                                                         flow_med.tolist(), strict=True))}
        ax.set_yscale("log")
        ax.set(xlabel="log(1/R)", ylabel="escape time (risk −10 %)",
               title="(c) escape time against log(1/R) (fits: R ≤ 0.1)")
        ax.legend(loc="upper left", fontsize=7)

        panels = [("t_eps", "time to reach ε = 10⁻²·F(0)", "(d) time to ε (median, IQR)"),
                  ("final_rel", "F(μ_T) / F(0)", f"(e) final excess risk at T = {cfg['t_end']:g}"),
                  ("displacement", "relative displacement at T",
                   "(f) ‖θ(T) − θ(0)‖/‖θ(0)‖ (solid), (w, b) only (dashed)")]
        for ax, (col, ylabel, title) in zip(axes[1], panels, strict=True):
            for law in LAWS:
                groups = [_by(sgd_tab, law=law, radius=r) for r in radii]
                q = _band(ax, radii, groups, col, color=COLORS[law], label=law)
                stats[law][col] = dict(zip(map(str, radii), [v[1] for v in q], strict=True))
                if col == "displacement":
                    q = _band(ax, radii, groups, "displacement_wb", color=COLORS[law], ls="--",
                              mfc="none", label=f"{law}, (w, b) only")
                    stats[law]["displacement_wb"] = dict(
                        zip(map(str, radii), [v[1] for v in q], strict=True))
                if col == "t_eps":
                    succ = [float(np.mean(column(g, "success"))) for g in groups]
                    stats[law]["success"] = dict(zip(map(str, radii), succ, strict=True))
                    for r, s, v in zip(radii, succ, q, strict=True):
                        if s < 1 and np.isfinite(v[1]):
                            ax.annotate(f"{s:.0%}", (r, v[1]), fontsize=7, color=COLORS[law],
                                        xytext=(3, 3), textcoords="offset points")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set(xlabel="initial radius R", ylabel=ylabel, title=title)
            ax.legend()
        axes[1, 2].axhline(1.0, color="k", ls=":", lw=1)
        fig.suptitle(f"Question 1 — initial sphere size R: m = {cfg['m']}, m₀ = 4, d = 2, "
                     f"online SGD B = 20, τ = 0.5 (η = τ/m), {len(cfg['seeds'])} seeds per R",
                     fontsize=11)
        fig.tight_layout()
        files += save_figure(fig, out_dir / NAME)
        plt.close(fig)

    nb, sp = stats["notebook"], stats["sphere"]
    r_lo, r_hi = str(radii[0]), str(radii[-1])
    notes = (
        f"Escape time (risk −10 %) vs log(1/R) over R ≤ {FIT_MAX_R:g}: fully small sphere "
        f"law: median grows as {sp['escape_slope']:.2f}·log(1/R) {sp['escape_intercept']:+.2f} "
        f"(R²={sp['escape_r2']:.2f}; exact flow slope {sp['flow_escape_slope']:.2f}, "
        f"R²={sp['flow_escape_r2']:.2f}); notebook law (a ~ N(0,1)): slope "
        f"{nb['escape_slope']:.3f} (median escape {nb['escape_median'][r_lo]:.2f} at "
        f"R={r_lo}, {nb['escape_median'][str(small[-1])]:.2f} at R={small[-1]}). Median "
        f"time to ε=1e-2·F(0): notebook "
        f"{nb['t_eps'][r_lo]:.3g} (R={r_lo}) vs {nb['t_eps'][r_hi]:.3g} (R={r_hi}); sphere "
        f"{sp['t_eps'][r_lo]:.3g} vs {sp['t_eps'][r_hi]:.3g}; success notebook "
        f"{nb['success'][r_lo]:.0%}/{nb['success'][r_hi]:.0%}, sphere "
        f"{sp['success'][r_lo]:.0%}/{sp['success'][r_hi]:.0%}. Median final F/F(0): notebook "
        f"{nb['final_rel'][r_lo]:.2e} vs {nb['final_rel'][r_hi]:.2e}; sphere "
        f"{sp['final_rel'][r_lo]:.2e} vs {sp['final_rel'][r_hi]:.2e}. Relative displacement: "
        f"notebook {nb['displacement'][r_lo]:.2f} (R={r_lo}) → {nb['displacement'][r_hi]:.3f} "
        f"(R={r_hi}), of (w, b) alone {nb['displacement_wb'][r_lo]:.3g} → "
        f"{nb['displacement_wb'][r_hi]:.3f}; sphere {sp['displacement'][r_lo]:.3g} → "
        f"{sp['displacement'][r_hi]:.3f}."
    )
    params = {**DEFAULTS, **fixed, "radii": radii, "laws": list(LAWS),
              "flow_radii": cfg["flow_radii"], "flow_t_end": cfg["flow_t_end"],
              "eps": "eps_rel * F(0), F(0) = risk of the zero network",
              "escape": "first time F <= (1 - escape_drop) F(mu_0)", "stats": stats}
    return FigureResult(files=files, parameters=json_safe(params), seeds=cfg["seeds"], notes=notes)

r"""Mean-field limit: how far is SGD at width m from the Wasserstein gradient flow, as m grows?

Setting: the notebook's — ReLU, d = 2, its teacher (``notebook_initial(18)``, m₀ = 4), its
initial law μ₀ (a ~ N(0, 1), (w, b) uniform on the sphere of radius 0.05 of ℝ³) and its
online SGD: fresh Gaussian minibatches of B = 20, raw step τ = 0.5, i.e. η = τ/m in
mean-field time (:func:`meanfield.sgd.step_from_tau`), run up to t = 20 (= 40 m steps;
the notebook's own run goes to t = 441.75, but the dynamics happen before t ≈ 20).

Three dynamics on one time axis, compared through networks, not parameters:

* ``SGD(m)``: the notebook's online SGD with m particles drawn i.i.d. from μ₀;
* ``flow(m)``: the exact particle flow (population risk in closed form, RK45, rtol 1e-6)
  from the *same* m initial particles — no sampling noise, only the finite-m
  discretisation of μ₀;
* ``reference``: the mean-field limit μ_t, approximated by the exact flow of a
  deterministic quadrature of μ₀ — 6 Gauss–Hermite nodes in a times 42 Fibonacci points
  on the (w, b) sphere, M = 252 weighted particles (:func:`_paper.notebook_law_quadrature`),
  which has no 1/√M Monte-Carlo fluctuation.  Its own error is bounded by the distance
  to a coarser quadrature (4 × 21 = 84 nodes), drawn as a grey floor.  (Checked once
  against a 12 × 96 = 1152-node quadrature: 8 × 32 nodes are within 1.2e-3 of it at
  t = 20 and 3e-4 at t ≤ 2.5, 6 × 32 nodes within the same, 8 × 64 within 4e-4, while an
  i.i.d. sample of m = 64 is 5e-3 to 2e-2 away: the error comes from the sphere points.)

The distance between two networks is the exact L² distance for Gaussian inputs,

.. math:: D(\mu, \nu) = \|f_\mu - f_\nu\|_{L^2(N(0, I_2))} = \sqrt{2 F_\nu(\mu)},

computed with the closed-form ReLU kernels (:func:`_paper.function_distance`), and a run
is summarised by sup_k D(μ^m_{t_k}, μ̄_{t_k}) over 13 snapshot times t_k ∈ {0} ∪ [0.25, 20]
(log-spaced, rounded to multiples of 1/32 so that every η = 0.5/m hits them exactly).

What 1/√m measures.  (i) Propagation of chaos: m particles started i.i.d. from μ₀ and
moved by the flow stay within O(1/√m) of the mean-field limit on a fixed time interval
(fluctuations of the empirical measure; the central limit theorem of Sirignano &
Spiliopoulos 2020 and Rotskoff & Vanden-Eijnden 2018) — the ``flow(m)`` curve.  (ii) SGD
adds its own noise, of order √(η/B) over a unit of time (Mei, Montanari & Nguyen 2018),
seen in D(SGD(m), flow(m)) from the same initial particles.  With the notebook's fixed τ,
η = τ/m, so (ii) also scales like 1/√m and the total ``SGD(m)`` curve keeps the slope −½;
with a fixed η it would level off at a floor ∝ √η (measured once at m = 64, t ≤ 4, 4
seeds: D(SGD, flow) = 6.1e-3, 4.0e-3, 1.7e-3, 7.8e-4, 3.3e-4 for η = 1/16, 1/32, 1/128,
1/512, 1/2048, i.e. ∝ η^0.55).  The fitted slopes (least squares in
log–log over all seeds, 95 % bootstrap interval over seeds) are in the legend and the notes.

m ∈ {16, 32, 64, 128, 256, 512} for SGD, flow(m) for m ≤ 128 (its exact velocity costs
m² kernel pairs per evaluation and ≈ 1000 evaluations); 8 seeds.  Quick mode:
m ∈ {16, 64}, 3 seeds, t ≤ 4, a coarser reference.  One :mod:`meanfield.sweep` cell per
m (its seeds in one ensemble for the flow), cached under ``output/cache``; the tidy table
(one row per m, seed and snapshot time) is ``meanfield_limit.csv``.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from _paper import (
    code_digest,
    function_distance,
    log_summary,
    loglog_fit,
    notebook_law_quadrature,
    seed_generators,
    single_threaded,
)

from meanfield._io import atomic_path
from meanfield.figures import FigureResult
from meanfield.flow import integrate
from meanfield.measure import ParticleMeasure, notebook_sphere
from meanfield.notebook import NOTEBOOK, notebook_initial
from meanfield.plotting import save_figure, style
from meanfield.population import GaussianPopulationEstimator
from meanfield.sgd import online_sgd, step_from_tau
from meanfield.sweep import Study, run_study

TAU, BATCH, RADIUS = NOTEBOOK["tau"], NOTEBOOK["batch_size"], NOTEBOOK["radius"]
RTOL, ATOL = 1e-6, 1e-9
TAG_INIT, TAG_SGD = 21, 22
GRID = 1.0 / 32.0  # snapshot times are multiples of this (and so of every η = τ/m, m ≥ 16)


def settings(quick: bool) -> dict[str, Any]:
    """Widths, seeds, horizon and quadratures of the full or quick study."""
    if quick:
        return {
            "m": [64, 16],
            "flow_max_m": 64,
            "seeds": [0, 1, 2],
            "t_end": 4.0,
            "n_times": 7,
            "reference": [6, 16],
            "coarse_reference": [4, 8],
        }
    return {
        "m": [512, 256, 128, 64, 32, 16],
        "flow_max_m": 128,
        "seeds": list(range(8)),
        "t_end": 20.0,
        "n_times": 13,
        "reference": [6, 42],
        "coarse_reference": [4, 21],
    }


def snapshot_grid(t_end: float, n: int) -> np.ndarray:
    """0 and n − 1 log-spaced times in [0.25, t_end], rounded to multiples of 1/32."""
    t = np.round(np.geomspace(0.25, t_end, n - 1) / GRID) * GRID
    return np.unique(np.concatenate([[0.0], t]))


def teacher() -> ParticleMeasure:
    """The notebook's teacher."""
    return notebook_initial(NOTEBOOK["seed"])[0]


def reference_flow(n_a: int, n_s: int, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact flow of the quadrature of μ₀; returns (thetas (T, M, 4), masses (M,))."""
    mu = notebook_law_quadrature(n_a, n_s, radius=RADIUS, d=2)
    est = GaussianPopulationEstimator(teacher(), activation="relu")
    traj = integrate(mu, est, float(times[-1]), times=times, rtol=RTOL, atol=ATOL, progress=False)
    return np.asarray(traj.thetas), np.asarray(mu.masses)


def cached_reference(cache: Path, n_a: int, n_s: int, times: np.ndarray, digest: str) -> Path:
    """Compute (once) and store the reference flow as ``.npz``; returns its path."""
    path = cache / f"meanfield_limit_ref_{n_a}x{n_s}_{times[-1]:g}_{len(times)}_{digest}.npz"
    if not path.exists():
        thetas, masses = reference_flow(n_a, n_s, times)
        cache.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, thetas=thetas, masses=masses, times=times)
    return path


def load_reference(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thetas, masses, times) of a stored reference."""
    with np.load(path) as z:
        return z["thetas"], z["masses"], z["times"]


def distances(
    thetas: np.ndarray, masses: np.ndarray, ref: np.ndarray, ref_masses: np.ndarray
) -> np.ndarray:
    """D at every snapshot: thetas (T, R, m, 4) against ref (T, M, 4); returns (T, R)."""
    return np.stack(
        [
            function_distance(
                ParticleMeasure(thetas[k], masses), ParticleMeasure(ref[k], ref_masses), workers=1
            )
            for k in range(thetas.shape[0])
        ]
    )


def cell(params: dict[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """SGD(m) per seed, flow(m) from the same particles, and their distances to the reference."""
    with single_threaded():
        return _cell(params, seeds)


def _cell(params: dict[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    start = time.perf_counter()
    m = int(params["m"])
    ref, ref_masses, times = load_reference(params["reference_path"])
    nu = teacher()
    init = ParticleMeasure.stack(
        [notebook_sphere(m, 2, radius=RADIUS, rng=g) for g in seed_generators(seeds, TAG_INIT)]
    )
    eta = step_from_tau(TAU, m)
    steps = np.round(times / eta).astype(np.int64)
    sgd_thetas: list[np.ndarray] = []
    for g in seed_generators(seeds, TAG_SGD):
        tr = online_sgd(
            init.replica(len(sgd_thetas)),
            nu,
            step=eta,
            n_steps=int(steps[-1]),
            batch_size=BATCH,
            rng=g,
            record_steps=steps,
            risk=False,
            progress=False,
        )
        sgd_thetas.append(np.asarray(tr.thetas))
    sgd = np.stack(sgd_thetas, axis=1)  # (T, R, m, 4)
    masses = np.full(m, 1.0 / m)
    d_sgd = distances(sgd, masses, ref, ref_masses)
    d_flow = d_noise = None
    if m <= int(params["flow_max_m"]):
        est = GaussianPopulationEstimator(nu, activation="relu", workers=1)
        fl = np.asarray(
            integrate(
                init, est, float(times[-1]), times=times, rtol=RTOL, atol=ATOL, progress=False
            ).thetas
        )
        d_flow = distances(fl, masses, ref, ref_masses)
        d_noise = np.stack(
            [
                function_distance(
                    ParticleMeasure(sgd[k], masses), ParticleMeasure(fl[k], masses), workers=1
                )
                for k in range(len(times))
            ]
        )
    runtime = (time.perf_counter() - start) / len(seeds)
    rows = []
    for r, s in enumerate(seeds):
        row: dict[str, Any] = {
            "seed": s,
            "eta": eta,
            "n_steps": int(steps[-1]),
            "times": times.tolist(),
            "d_sgd": d_sgd[:, r].tolist(),
            "sup_sgd": float(d_sgd[:, r].max()),
            "t_sup_sgd": float(times[np.argmax(d_sgd[:, r])]),
            "runtime_s": runtime,
        }
        if d_flow is not None and d_noise is not None:
            row.update(
                {
                    "d_flow": d_flow[:, r].tolist(),
                    "sup_flow": float(d_flow[:, r].max()),
                    "d_noise": d_noise[:, r].tolist(),
                    "sup_noise": float(d_noise[:, r].max()),
                }
            )
        rows.append(row)
    return rows


def write_long_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """One line per (m, seed, snapshot time): the three distances."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["m", "seed", "eta", "t", "d_sgd_ref", "d_flow_ref", "d_sgd_flow"])
        for r in rows:
            for k, t in enumerate(r["times"]):
                w.writerow(
                    [
                        r["m"],
                        r["seed"],
                        repr(r["eta"]),
                        repr(t),
                        repr(r["d_sgd"][k]),
                        repr(r["d_flow"][k]) if "d_flow" in r else "",
                        repr(r["d_noise"][k]) if "d_noise" in r else "",
                    ]
                )
    return path


def make(out_dir: Path, quick: bool) -> FigureResult:
    """Reference flow, the study over m, and the figure."""
    cfg = settings(quick)
    digest = code_digest(
        cell,
        _cell,
        teacher,
        reference_flow,
        distances,
        notebook_law_quadrature,
        function_distance,
        seed_generators,
        single_threaded,
        TAU,
        BATCH,
        RADIUS,
        RTOL,
        ATOL,
        TAG_INIT,
        TAG_SGD,
    )
    times = snapshot_grid(cfg["t_end"], cfg["n_times"])
    cache = out_dir / "cache"
    (n_a, n_s), (c_a, c_s) = cfg["reference"], cfg["coarse_reference"]
    ref_path = cached_reference(cache, n_a, n_s, times, digest)
    coarse_path = cached_reference(cache, c_a, c_s, times, digest)
    ref, ref_masses, _ = load_reference(ref_path)
    coarse, coarse_masses, _ = load_reference(coarse_path)
    floor_t = distances(coarse[:, None], coarse_masses, ref, ref_masses)[:, 0]
    floor = float(floor_t.max())
    study = Study(
        name="meanfield_limit",
        cell=cell,
        grid={"m": cfg["m"]},
        seeds=cfg["seeds"],
        fixed={"flow_max_m": cfg["flow_max_m"], "reference_path": str(ref_path), "code": digest},
    )
    table = run_study(study, cache, csv_path=cache / "meanfield_limit_cells.csv")
    rows = list(table)
    files: list[Path] = [write_long_csv(out_dir / "meanfield_limit.csv", rows)]

    ms = sorted(cfg["m"])
    flow_ms = [m for m in ms if m <= cfg["flow_max_m"]]
    series = {  # key: (label, widths, colour, marker)
        "sup_sgd": ("SGD(m) vs mean-field reference", ms, "tab:blue", "o"),
        "sup_flow": ("flow(m) vs reference (same init as SGD)", flow_ms, "tab:green", "s"),
        "sup_noise": ("SGD(m) vs flow(m): SGD noise", flow_ms, "tab:orange", "^"),
    }
    fits = {}
    for key, (_, widths, _, _) in series.items():
        pts = [(r["m"], r[key], r["seed"]) for r in rows if r["m"] in widths and key in r]
        x, y, g = (np.array(v) for v in zip(*pts, strict=True))
        fits[key] = loglog_fit(x, y, g, rng=0)
    with style():
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12.5, 5.0), layout="constrained")
        cmap = plt.get_cmap("viridis")
        keep = times > 0
        for i, m in enumerate(ms):
            colour = cmap(i / max(1, len(ms) - 1))
            sub = [r for r in rows if r["m"] == m]
            ax0.plot(
                times[keep],
                np.mean([r["d_sgd"] for r in sub], axis=0)[keep],
                color=colour,
                label=f"m = {m}",
            )
            if m in flow_ms:
                ax0.plot(
                    times[keep],
                    np.mean([r["d_flow"] for r in sub], axis=0)[keep],
                    color=colour,
                    ls="--",
                    lw=1,
                )
        ax0.plot(times[keep], floor_t[keep], color="0.5", lw=1, ls=":", label="reference error")
        ax0.plot([], [], color="k", ls="--", lw=1, label="flow(m) (dashed)")
        ax0.set_xscale("log")
        ax0.set_yscale("log")
        ax0.xaxis.set_minor_formatter(plt.NullFormatter())
        ax0.set_xlabel("mean-field time t")
        ax0.set_ylabel(r"$\|f_{\mu^m_t} - f_{\bar\mu_t}\|_{L^2}$ (mean over seeds)")
        ax0.set_title("distance to the mean-field reference along the run")
        ax0.legend(ncol=2, fontsize=7)

        rng = np.random.default_rng(0)
        for key, (label, widths, col, mk) in series.items():
            vals = np.array([[r[key] for r in rows if r["m"] == m] for m in widths])
            center, low, high = log_summary(vals, axis=1)
            for j, m in enumerate(widths):
                ax1.scatter(
                    m * np.exp(rng.uniform(-0.05, 0.05, vals.shape[1])),
                    vals[j],
                    s=9,
                    color=col,
                    alpha=0.35,
                    lw=0,
                )
            ax1.errorbar(
                widths,
                center,
                yerr=[center - low, high - center],
                fmt=mk,
                color=col,
                ms=5,
                capsize=2,
                lw=1,
            )
            f = fits[key]
            xx = np.array([widths[0], widths[-1]], dtype=float)
            ax1.plot(xx, f(xx), color=col, lw=1.3, label=f"{label}: {f.describe()}")
        x0, y0 = ms[0], float(np.exp(fits["sup_sgd"].intercept) * ms[0] ** fits["sup_sgd"].slope)
        xx = np.array([ms[0], ms[-1]], dtype=float)
        ax1.plot(
            xx,
            y0 * 1.6 * (xx / x0) ** -0.5,
            color="k",
            ls=":",
            lw=1.2,
            label=r"reference slope $m^{-1/2}$",
        )
        ax1.axhline(
            floor, color="0.5", ls=":", lw=1, label=f"reference error (upper estimate) {floor:.1e}"
        )
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        ax1.set_xticks(ms)
        ax1.set_xticklabels([str(m) for m in ms])
        ax1.minorticks_off()
        ax1.set_xlabel("number of particles m")
        ax1.set_ylabel(r"$\sup_k \|f_{\mu^m_{t_k}} - f_{\bar\mu_{t_k}}\|_{L^2(N(0, I_2))}$")
        ax1.set_title(
            f"sup over t ≤ {cfg['t_end']:g}; {len(cfg['seeds'])} seeds, η = τ/m, τ = {TAU}"
        )
        ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1)
        fig.suptitle("mean-field limit of the notebook's SGD (ReLU, d = 2, m₀ = 4, R = 0.05)")
        files += save_figure(fig, out_dir / "meanfield_limit")
        plt.close(fig)

    by_m = {
        m: float(np.exp(np.mean(np.log([r["sup_sgd"] for r in rows if r["m"] == m])))) for m in ms
    }
    tsup = {m: float(np.median([r["t_sup_sgd"] for r in rows if r["m"] == m])) for m in ms}
    flow_min = min(
        float(np.exp(np.mean(np.log([r["sup_flow"] for r in rows if r["m"] == m]))))
        for m in flow_ms
    )
    ratio = float(
        np.exp(np.mean([np.log(r["sup_noise"] / r["sup_flow"]) for r in rows if "sup_noise" in r]))
    )
    notes = (
        "sup over t ≤ {:g} of ‖f_SGD(m) − f_ref‖ (geometric mean over seeds): ".format(cfg["t_end"])
        + ", ".join(f"m={m}: {v:.2e}" for m, v in by_m.items())
        + f"; fitted {fits['sup_sgd'].describe()}, as the 1/√m law predicts (−0.5). The exact "
        f"flow from the same particles, flow(m): {fits['sup_flow'].describe()} (propagation of "
        f"chaos: fluctuations of the i.i.d. initial sample carried by the flow). SGD(m) vs "
        f"flow(m): {fits['sup_noise'].describe()} (SGD noise ∝ √(η/B) with η = τ/m); it is "
        f"{ratio:.2f}× the flow(m) distance on average, so at the notebook's step the finite-m "
        "fluctuation, not the SGD noise, dominates the gap to the mean-field limit. The sup is "
        "reached at t ≈ "
        + ", ".join(f"{tsup[m]:g}" for m in ms)
        + " (median over seeds, by m), during the fast phase of the fit. Reference error (sup "
        f"distance between the M = {np.prod(cfg['reference'])}- and "
        f"{np.prod(cfg['coarse_reference'])}-node quadratures, an upper estimate): {floor:.1e}, "
        f"against smallest geometric-mean distances {min(by_m.values()):.1e} (SGD) and "
        f"{flow_min:.1e} (flow)."
    )
    return FigureResult(
        files=files,
        parameters={
            **cfg,
            "tau": TAU,
            "batch_size": BATCH,
            "radius": RADIUS,
            "teacher": "notebook_initial(18)",
            "times": times.tolist(),
            "rtol": RTOL,
            "atol": ATOL,
            "fits": {k: vars(v) for k, v in fits.items()},
            "reference_error": floor,
        },
        seeds=cfg["seeds"],
        notes=notes,
    )

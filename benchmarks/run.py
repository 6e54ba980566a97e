r"""The performance benchmark (``make bench``): one table, and ``benchmarks/output/results.json``.

Everything is measured in the same run, and compared as ratios, because the machines are
shared and noisy.  "ours" is the toolkit's SGD (``meanfield.sgd``) when it exists, else
the vectorised numpy peer (said in the table).  Peers are in ``benchmarks/peers.py``.

Method
------
* Wall time: ``time.perf_counter`` around one complete run (inputs prepared beforehand).
  The implementations of one configuration are timed in interleaved rounds
  (ours, numpy, torch, ours, numpy, torch, …; at least 2 rounds, more while under 6 s;
  a run over 6 s is not repeated) and each one's best time is kept, so that all see the
  same background load.  Every implementation first runs a short warm-up (imports, JIT,
  torch's thread pool), not timed.
* ns per (sample × neuron) = wall time / (steps × batch × m × replicas).
* Peak: the machine's float64 peak is estimated in the same run as the best of 5
  2000×2000 float64 matrix products (2·2000³ flops each), with numpy's default threads,
  once before and once after the cases, and by the "floor" rows of case 2 (matrix
  products too); the largest rate seen is used.
* Flops of an SGD step: counted analytically by :func:`peers.sgd_flops`,
  B·m·(4d + 9) + 3m(d + 2) + 2B (a multiply-add = 2); the fraction of peak is
  steps × flops / wall time / peak.
* Case 1, naive peer: the notebook's per-neuron code costs ~1.5 ms per step, so it is run
  on the first frames of the same stream (at least ``NAIVE_MIN_STEPS`` steps) and its
  time extrapolated linearly in the number of samples (its cost per sample is constant:
  no state grows); the table marks it "extrap.".  Its prefix result is checked against
  the numpy peer on the same prefix.
* Agreement: each run's final θ is compared with the numpy peer's
  (``max|Δθ|`` in the JSON), so every timed implementation is seen to do the same work.

* Case 2, d = 100: a "floor" row times the run's two matrix products per step alone
  (:func:`peers.matmul_floor`, same shapes, same BLAS, interleaved with the others):
  torch/floor bounds the ratio to torch that any implementation can reach.
* Case 6 (memory, issue 9): online SGD of the notebook's network for 2e4 and 2e5 steps
  (about 101 log-spaced snapshots each), peak memory by ``tracemalloc``; the target is a
  flat peak (long ≤ 1.25 × short + 64 kB).
* Case 5 runs the ``make figures[-quick]`` command (``python -m meanfield.cli figures
  [--quick]``) with ``--force`` into a scratch folder, so cached figures do not hide the
  cost and ``paper_figures/output`` is untouched.

Usage: ``python benchmarks/run.py [--quick] [--cases 1,2,...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import ours as ours_mod  # noqa: E402
from benchmarks.peers import (  # noqa: E402
    Problem,
    matmul_floor,
    naive_sgd,
    notebook_problem,
    numpy_sgd,
    sgd_flops,
    teacher_problem,
    torch_available,
    torch_sgd,
)
from benchmarks.report import (  # noqa: E402
    Case,
    Row,
    estimate_peak,
    interleaved_best,
    machine_info,
    max_diff,
    print_table,
)

OUTPUT = ROOT / "benchmarks" / "output" / "results.json"
NAIVE_MIN_STEPS = 1500
PEAK_TARGET = "≥1/20 of peak"
ETA = 0.025  # mean-field step of the notebook's run (τ = 0.5, m = 20); τ = η m for wide nets


# ---------------------------------------------------------------------------------------
# SGD cases
# ---------------------------------------------------------------------------------------
def sgd_row(
    impl: str, wall: float, p: Problem, peak: float, *, n_steps: int | None = None, note: str = ""
) -> Row:
    steps = p.n_steps if n_steps is None else n_steps
    work = steps * p.batch * p.m * p.runs
    flops = steps * p.runs * sgd_flops(p.m, p.d, p.batch)
    return Row(
        impl=impl,
        wall_s=wall,
        ns_per_sample_neuron=1e9 * wall / work,
        gflops=flops / wall / 1e9,
        peak_fraction=flops / wall / peak,
        note=note,
    )


def bench_sgd_problem(
    case: Case,
    p: Problem,
    peak: float,
    ours: ours_mod.Impl,
    *,
    naive: bool,
    torch: bool,
    floor: bool = False,
) -> dict[str, float]:
    """Time ours, the numpy peer, torch and (optionally) the naive peer on ``p``.

    With ``floor``, also the run's matrix products alone (:func:`peers.matmul_floor`).
    """
    warm = p.prefix(min(p.n_steps, 20))
    fns: dict[str, Callable[[], Any]] = {
        "ours": ours.prepare(p),
        "numpy": lambda: numpy_sgd(p.theta0, p.x, p.y, p.tau),
    }
    ours.run(warm)
    numpy_sgd(warm.theta0, warm.x, warm.y, warm.tau)
    ref = None if ours is ours_mod.NUMPY_STAND_IN else ours_mod.toolkit_sgd("numpy")
    if ref is not None:  # the toolkit's readable numpy reference, for the record
        ref.run(warm)
        fns["ours_ref"] = ref.prepare(p)
    has_torch = torch and torch_available()
    if has_torch:
        torch_sgd(warm.theta0, warm.x, warm.y, warm.tau)
        fns["torch"] = lambda: torch_sgd(p.theta0, p.x, p.y, p.tau)
    if floor:
        fns["floor"] = matmul_floor(p.theta0, p.x)
        fns["floor"]()
    best, out = interleaved_best(fns)
    th_np = out["numpy"]
    labels = {
        "ours": f"ours: {ours.name}",
        "ours_ref": "meanfield (backend=numpy)",
        "numpy": "numpy peer",
        "torch": "torch peer",
    }
    for key in [k for k in labels if k in fns]:
        row = sgd_row(labels[key], best[key], p, peak, note=ours.note if key == "ours" else "")
        row.max_abs_diff_vs_numpy = max_diff(out[key], th_np)
        case.rows.append(row)
    times = {k: v for k, v in best.items() if k not in ("ours", "ours_ref")}
    t_ours = best["ours"]
    if floor:
        work = 4 * p.batch * p.m * p.d * p.n_steps
        t_f = best["floor"]
        note = "only the 2 BLAS products of each step (4Bmd flops), no element-wise work"
        if "torch" in best:
            note += f"; torch/floor = {best['torch'] / t_f:.2f}: the most any code can beat torch"
        case.rows.append(
            Row(
                "floor: matrix products alone",
                t_f,
                ns_per_sample_neuron=1e9 * t_f / (p.n_steps * p.batch * p.m),
                gflops=work / t_f / 1e9,
                peak_fraction=work / t_f / peak,
                note=note,
            )
        )
    if torch and not has_torch:
        case.rows.append(Row("torch peer", None, note="skipped: torch not installed"))
    if naive:
        n_pre = naive_prefix_steps(p)
        q = p.prefix(n_pre)
        naive_sgd(q.prefix(2).theta0, q.x[:2], q.y[:2], q.tau)
        t0 = time.perf_counter()
        th_naive = naive_sgd(q.theta0, q.x, q.y, q.tau)
        t_pre = time.perf_counter() - t0
        t_naive = t_pre * p.n_steps / n_pre  # constant cost per sample: linear extrapolation
        row = sgd_row(
            "naive peer (extrap.)" if n_pre < p.n_steps else "naive peer",
            t_naive,
            p,
            peak,
            note=f"timed on the first {n_pre} of {p.n_steps} steps ({t_pre:.2f} s), "
            "extrapolated linearly"
            if n_pre < p.n_steps
            else "timed on all steps",
        )
        row.max_abs_diff_vs_numpy = max_diff(th_naive, numpy_sgd(q.theta0, q.x, q.y, q.tau))
        case.rows.append(row)
        times["naive"] = t_naive
    for row in case.rows[1:]:
        if row.wall_s is not None:
            row.speedup_of_ours = row.wall_s / t_ours
    return {"ours": t_ours, **times}


def naive_prefix_steps(p: Problem) -> int:
    """Steps of the first whole notebook frames covering at least ``NAIVE_MIN_STEPS`` steps."""
    from meanfield.data import notebook_frame_sizes

    ends = np.cumsum(notebook_frame_sizes(500)) // p.batch
    k = int(np.searchsorted(ends, min(NAIVE_MIN_STEPS, p.n_steps)))
    return int(min(ends[min(k, len(ends) - 1)], p.n_steps))


def case1(args: argparse.Namespace, peak: float, ours: ours_mod.Impl) -> Case:
    frames = 50 if args.quick else 500
    p = notebook_problem(frames, rng=0)
    case = Case(
        1,
        f"notebook m=20 d=2 B=20 {frames}fr={p.n_steps}st",
        {"m": 20, "d": 2, "batch": 20, "frames": frames, "steps": p.n_steps, "tau": p.tau},
    )
    t = bench_sgd_problem(case, p, peak, ours, naive=True, torch=True)
    r_naive = t["naive"] / t["ours"]
    case.target("≥300× naive", r_naive, r_naive >= 300)
    if "torch" in t:
        r = t["torch"] / t["ours"]
        case.target("≥10× torch", r, r >= 10)
    else:
        case.target("≥10× torch", None, None)
    return case


# widths, dims and fixed step counts (sized to ~1 s for the numpy peer on a 2-core machine;
# m = 1e5, d = 100 takes 10 steps, ~4 s, so that the run is not its two snapshot copies)
CASE2 = [
    (1_000, 2, 2000),
    (10_000, 2, 200),
    (100_000, 2, 20),
    (1_000, 100, 600),
    (10_000, 100, 60),
    (100_000, 100, 10),
]
CASE2_QUICK = [(1_000, 2, 200), (10_000, 2, 20), (1_000, 100, 60), (10_000, 100, 6)]


def case2(args: argparse.Namespace, peak: float, ours: ours_mod.Impl) -> list[Case]:
    cases = []
    for m, d, steps in CASE2_QUICK if args.quick else CASE2:
        p = teacher_problem(m, d, 100, steps, tau=ETA * m, rng=m + d)
        case = Case(
            2,
            f"wide m={m:.0e} d={d} B=100 {steps}st",
            {"m": m, "d": d, "batch": 100, "steps": steps, "tau": p.tau, "eta": ETA},
        )
        t = bench_sgd_problem(case, p, peak, ours, naive=False, torch=True, floor=d >= 16)
        if "torch" in t:
            r = t["torch"] / t["ours"]
            case.target("≥3× torch", r, r >= 3)
            if r < 3 and "floor" in t and t["torch"] / t["floor"] < 3:
                case.note = (
                    f"≥3× torch is out of reach here: torch takes only "
                    f"{t['torch'] / t['floor']:.2f}× the time of the step's matrix products "
                    f"alone; ours takes {t['ours'] / t['floor']:.2f}× it"
                )
        else:
            case.target("≥3× torch", None, None)
        if m == 100_000 and d == 100:
            frac = case.rows[0].peak_fraction
            case.target(PEAK_TARGET, frac, frac is not None and frac >= 1 / 20)
        cases.append(case)
    return cases


def case3(args: argparse.Namespace, peak: float, ours: ours_mod.Impl) -> list[Case]:
    frames = 50 if args.quick else 500
    ens = ours.prepare_ensemble is not None
    impl = ours if ens else ours_mod.NUMPY_STAND_IN
    label = f"ours: {ours.name}" if ens else "numpy peer (vectorised over replicas)"
    note = "" if ens else "the toolkit's SGD has no ensemble mode (yet): numpy peer used"
    cases: list[Case] = []
    t1: float | None = None
    run1: Callable[[], Any] | None = None
    for runs in (1, 16, 64):
        p = notebook_problem(frames, runs=None if runs == 1 else runs, rng=runs)
        single = runs == 1 or impl.prepare_ensemble is None
        prepare = impl.prepare if single else impl.prepare_ensemble
        prepare(p.prefix(20))()
        fns: dict[str, Callable[[], Any]] = {"ours": prepare(p)}
        if impl is not ours_mod.NUMPY_STAND_IN:
            fns["numpy"] = lambda p=p: numpy_sgd(p.theta0, p.x, p.y, p.tau)
        if run1 is not None:
            fns["R=1"] = run1  # re-timed under the same load as this R
        best, out = interleaved_best(fns)
        t = best["ours"]
        if run1 is None:
            run1, t1 = fns["ours"], t
        else:
            t1 = min(t1 or np.inf, best["R=1"])
        case = Case(
            3,
            f"ensemble R={runs} × notebook {frames}fr",
            {"replicas": runs, "frames": frames, "steps": p.n_steps},
            note=note,
        )
        row = sgd_row(label, t, p, peak)
        case.rows.append(row)
        if "numpy" in fns:
            row.max_abs_diff_vs_numpy = max_diff(out["ours"], out["numpy"])
            np_row = sgd_row("numpy peer (vectorised over replicas)", best["numpy"], p, peak)
            np_row.speedup_of_ours = best["numpy"] / t
            case.rows.append(np_row)
        if runs > 1 and t1 is not None:
            row.note = (
                f"{t / t1:.2f}× the time of R=1; {runs * t1 / t:.1f}× faster than {runs} runs"
            )
            if runs == 64:
                case.target("R=64 ≤ 8× R=1", t / t1, t / t1 <= 8)
        cases.append(case)
    return cases


# ---------------------------------------------------------------------------------------
# case 4: exact population velocity
# ---------------------------------------------------------------------------------------
MC_SAMPLES = 10_000


def case4(args: argparse.Namespace) -> list[Case]:
    """Exact population velocity v_μ at the m particles, against a Monte-Carlo reference.

    The reference row is ``SampleEstimator`` on a fixed sample of ``MC_SAMPLES`` Gaussian
    inputs (statistical error ~ 1/√n), the sample-based way to get the same field.
    """
    from meanfield.data import sample_inputs
    from meanfield.measure import notebook_sphere, notebook_teacher
    from meanfield.velocity import SampleEstimator

    cases = []
    estimator_cls = ours_mod.population_estimator()
    for m in (100, 1000):
        case = Case(4, f"pop. velocity m={m} m0=10 d=2", {"m": m, "m0": 10, "d": 2})
        if estimator_cls is None:
            case.rows.append(
                Row("GaussianPopulationEstimator", None, note="skipped: not in meanfield yet")
            )
            if m == 1000:
                case.target("m=1e3 ≤ 100 ms", None, None)
            cases.append(case)
            continue
        teacher = notebook_teacher(10, 2, rng=1)
        mu = notebook_sphere(m, 2, radius=0.5, rng=2)
        est = ours_mod.make_population_estimator(estimator_cls, teacher)
        mc = SampleEstimator(sample_inputs(MC_SAMPLES, 2, rng=3), teacher)
        fns: dict[str, Callable[[], Any]] = {
            "exact": lambda est=est, mu=mu: est.velocity(mu),
            "mc": lambda mc=mc, mu=mu: mc.velocity(mu),
        }
        for fn in fns.values():
            fn()  # warm-up
        best, out = interleaved_best(fns, min_rounds=5, max_rounds=20, budget=2.0)
        t = best["exact"]
        rel = float(np.linalg.norm(out["mc"] - out["exact"]) / np.linalg.norm(out["exact"]))
        case.rows.append(
            Row(
                "GaussianPopulationEstimator.velocity",
                t,
                note=f"{1e3 * t:.1f} ms per evaluation",
            )
        )
        case.rows.append(
            Row(
                f"SampleEstimator n={MC_SAMPLES:.0e} (MC)",
                best["mc"],
                speedup_of_ours=best["mc"] / t,
                note=f"{1e3 * best['mc']:.1f} ms; relative L2 difference from exact {rel:.1e}",
            )
        )
        if m == 1000:
            case.target("m=1e3 ≤ 100 ms", 1e3 * t, t <= 0.1)
        cases.append(case)
    return cases


# ---------------------------------------------------------------------------------------
# case 5: make figures end to end
# ---------------------------------------------------------------------------------------
def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text() if (ROOT / "Makefile").exists() else ""
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.M))


def case5(args: argparse.Namespace) -> list[Case]:
    """``make figures[-quick]`` end to end, recomputed from scratch.

    The figures command caches finished figures, so the make target's command
    (``python -m meanfield.cli figures [--quick]``) is run with ``--force`` into a scratch
    output folder: every figure is recomputed and ``paper_figures/output`` is untouched.
    """
    cases = []
    targets = ["figures-quick"] if args.quick else ["figures-quick", "figures"]
    cli = ROOT / "meanfield" / "cli.py"
    has_cli = cli.exists() and "figures" in cli.read_text()
    scripts = sorted((ROOT / "paper_figures").glob("*.py"))
    for target in targets:
        case = Case(5, f"make {target}", {"target": target, "scripts": len(scripts)})
        why = None
        if target not in _make_targets():
            why = f"no Makefile target {target!r}"
        elif not has_cli:
            why = "meanfield/cli.py has no 'figures' command yet"
        if why is not None:
            case.rows.append(Row(f"make {target}", None, note=f"skipped: {why}"))
            cases.append(case)
            continue
        with tempfile.TemporaryDirectory(prefix="bench-figures-") as out:
            cmd = [sys.executable, "-m", "meanfield.cli", "figures", "--force", "--out", out]
            if target == "figures-quick":
                cmd.append("--quick")
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t0
            files = sum(1 for f in Path(out).rglob("*") if f.is_file())
        if proc.returncode == 0:
            note = f"ok: {len(scripts)} scripts, {files} files (--force, scratch --out)"
        else:
            tail = proc.stderr.strip().splitlines()[-1:] or proc.stdout.strip().splitlines()[-1:]
            note = f"FAILED (exit {proc.returncode}): {' '.join(tail)}"
        case.rows.append(Row(f"make {target}", wall, note=note))
        cases.append(case)
    return cases


# ---------------------------------------------------------------------------------------
# case 6: memory of a long online-SGD run (issue 9, part 5)
# ---------------------------------------------------------------------------------------
MEMORY_STEPS = (20_000, 200_000)
MEMORY_STEPS_QUICK = (2_000, 20_000)


def _traced_run(n_steps: int) -> tuple[float, int, int]:
    """Wall time, peak traced memory (bytes) and snapshots of an online-SGD run.

    The notebook's network (m = 20, d = 2, batch 20, η = 0.025), fresh Gaussian samples
    every step, about 101 log-spaced snapshots and the default Monte-Carlo risk at each.
    ``tracemalloc`` sees numpy's buffers, so its peak is the run's own memory.
    """
    import tracemalloc

    from meanfield.measure import notebook_sphere, notebook_teacher
    from meanfield.sgd import online_sgd

    teacher, student = notebook_teacher(4, 2, rng=18), notebook_sphere(20, 2, radius=0.05, rng=1)
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        traj = online_sgd(student, teacher, step=0.025, n_steps=n_steps, rng=0, progress=False)
        wall = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return wall, peak, len(traj)


def case6(args: argparse.Namespace) -> list[Case]:
    """Peak memory of online SGD over 10× more steps with the same snapshot count.

    A run keeps only its thinned snapshots (``n_snapshots``, log-spaced), so its memory
    must not grow with the number of steps: the target is a peak for the long run within
    1.25× (+64 kB) of the short one's.
    """
    short, long = MEMORY_STEPS_QUICK if args.quick else MEMORY_STEPS
    case = Case(6, f"memory online SGD {short:.0e}→{long:.0e}st", {"steps": [short, long]})
    _traced_run(50)  # imports, compilation, caches: outside the measurement
    peaks = []
    for n in (short, long):
        wall, peak, snaps = _traced_run(n)
        peaks.append(peak)
        row = Row(f"online_sgd, {n} steps", wall, ns_per_sample_neuron=1e9 * wall / (n * 20 * 20))
        row.note = f"peak traced memory {peak / 1e6:.3f} MB, {snaps} snapshots"
        row.peak_bytes = peak
        case.rows.append(row)
    ratio = peaks[1] / peaks[0]
    case.target("flat memory", ratio, peaks[1] <= 1.25 * peaks[0] + 64_000)
    case.note = f"peak(long)/peak(short) = {ratio:.3f} for {long // short}× the steps"
    return [case]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--cases", default="1,2,3,4,5,6", help="comma-separated cases, e.g. 1,2")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="JSON results path")
    args = parser.parse_args(argv)
    try:
        selected = {int(c) for c in args.cases.split(",") if c.strip()}
    except ValueError:
        parser.error(f"--cases must be comma-separated integers; got {args.cases!r}")
    if not selected <= {1, 2, 3, 4, 5, 6}:
        parser.error(f"--cases must be among 1..6; got {sorted(selected)}")

    load_start = os.getloadavg()
    peak = estimate_peak()
    ours = ours_mod.resolve()
    if not torch_available():
        print(
            "torch not installed: the PyTorch peer is skipped "
            "(pip install torch==2.13.0 to measure it)",
            file=sys.stderr,
        )
    cases: list[Case] = []
    if 1 in selected:
        cases.append(case1(args, peak, ours))
    if 2 in selected:
        cases += case2(args, peak, ours)
    if 3 in selected:
        cases += case3(args, peak, ours)
    if 4 in selected:
        cases += case4(args)
    if 5 in selected:
        cases += case5(args)
    if 6 in selected:
        cases += case6(args)

    peak = max(peak, estimate_peak())  # again at the end: the best of both estimates
    for c in cases:  # the floor rows are matrix products too: the best rate seen is the peak
        for r in c.rows:
            if r.impl.startswith("floor") and r.gflops is not None:
                peak = max(peak, 1e9 * r.gflops)
    for c in cases:
        for r in c.rows:
            if r.gflops is not None:
                r.peak_fraction = 1e9 * r.gflops / peak
    for c in cases:
        for t in c.targets:
            if t["target"] == PEAK_TARGET and c.rows[0].peak_fraction is not None:
                t["value"] = c.rows[0].peak_fraction
                t["met"] = t["value"] >= 1 / 20
    load = {"start": load_start, "end": os.getloadavg(), "cpus": os.cpu_count()}
    print(
        f"load average (1 min) {load['start'][0]:.1f} at start, {load['end'][0]:.1f} at end, "
        f"on {load['cpus']} CPUs (a load above the CPU count makes every time noisy)"
    )
    print_table(cases, peak, ours)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "quick": args.quick,
        "ours": ours.name,
        "machine": {**machine_info(peak), "loadavg": load},
        "cases": [
            {
                **{k: v for k, v in c.__dict__.items() if k != "rows"},
                "rows": [r.__dict__ for r in c.rows],
            }
            for c in cases
        ],
    }
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float))
    tmp.replace(args.output)
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"\nwrote {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

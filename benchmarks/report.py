"""The benchmark's timing and reporting: interleaved timing, peak estimate, the table.

Used by :mod:`benchmarks.run` (see its docstring for the method).
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.peers import torch_available

W = 36  # width of the configuration column


# ---------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------
#: Seconds of idle cores before each timed run (see :func:`interleaved_best`).
SETTLE = 0.3


def interleaved_best(
    fns: dict[str, Callable[[], Any]],
    *,
    min_rounds: int = 2,
    max_rounds: int = 5,
    budget: float = 6.0,
    single: float = 6.0,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Best wall time of each function, timed in interleaved rounds (A B C A B C …).

    Interleaving exposes every implementation to the same background load.  At least
    ``min_rounds`` rounds (a function whose first run took over ``single`` seconds runs
    once), then more while the elapsed total stays under ``budget`` seconds.  Each run
    starts after a pause of :data:`SETTLE` seconds: the worker threads of a BLAS or
    OpenMP runtime busy-wait for a while after their last call (OpenBLAS: about 0.1 s),
    and would take a core from whichever implementation runs next (measured: 20–25 % on
    the d = 100, m = 10³ case).
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    results: dict[str, Any] = {}
    total = 0.0
    for rnd in range(max_rounds):
        if rnd >= min_rounds and total >= budget:
            break
        for key, fn in fns.items():
            if times[key] and times[key][0] >= single:
                continue
            time.sleep(SETTLE)
            t0 = time.perf_counter()
            results[key] = fn()
            times[key].append(time.perf_counter() - t0)
            total += times[key][-1]
    return {k: min(v) for k, v in times.items()}, results


def estimate_peak(n: int = 2000, repeats: int = 5) -> float:
    """float64 flops/s of the best of ``repeats`` n×n matrix products."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * n**3 / best


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------
@dataclass
class Row:
    """One implementation measured on one configuration."""

    impl: str
    wall_s: float | None
    ns_per_sample_neuron: float | None = None
    gflops: float | None = None
    peak_fraction: float | None = None
    speedup_of_ours: float | None = None  # t_impl / t_ours, on peer rows
    max_abs_diff_vs_numpy: float | None = None
    note: str = ""
    peak_bytes: int | None = None  # case 6: peak traced memory


@dataclass
class Case:
    case: int
    config: str
    params: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    def target(self, text: str, value: float | None, ok: bool | None) -> None:
        self.targets.append({"target": text, "value": value, "met": ok})


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


# ---------------------------------------------------------------------------------------
# table
# ---------------------------------------------------------------------------------------
def _fmt(v: float | None, spec: str) -> str:
    width = int(re.match(r"\d*", spec).group() or 0)  # type: ignore[union-attr]
    return "—".rjust(width) if v is None else format(v, spec)


def print_table(cases: list[Case], peak: float, ours: Any, out: Any = sys.stdout) -> None:
    """Print the table of ``cases`` and their targets (``ours``: the implementation, by name)."""
    head = (
        f"{'case':<4} {'configuration':<{W}} {'implementation':<38} {'wall [s]':>9} "
        f"{'ns/(s·n)':>9} {'GFLOP/s':>8} {'% peak':>7} {'ours ×':>8} {'max|Δθ|':>8}  note"
    )
    print(
        f"float64 peak (best matrix-product rate seen): {peak / 1e9:.1f} GFLOP/s; "
        f"ours = {ours.name}",
        file=out,
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    for c in cases:
        for i, r in enumerate(c.rows):
            print(
                f"{c.case if i == 0 else '':<4} {c.config if i == 0 else '':<{W}} {r.impl:<38} "
                f"{_fmt(r.wall_s, '9.3f')} {_fmt(r.ns_per_sample_neuron, '9.2f')} "
                f"{_fmt(r.gflops, '8.2f')} "
                f"{_fmt(None if r.peak_fraction is None else 100 * r.peak_fraction, '7.2f')} "
                f"{_fmt(r.speedup_of_ours, '8.1f')} {_fmt(r.max_abs_diff_vs_numpy, '8.0e')}"
                f"  {r.note}",
                file=out,
            )
        if c.note:
            print(f"{'':<4} {'':<{W}} ({c.note})", file=out)
    print("\ntargets", file=out)
    for c in cases:
        for t in c.targets:
            met = {True: "MET", False: "NOT MET", None: "n/a"}[t["met"]]
            val = _fmt(t["value"], ".3g")
            print(
                f"  case {c.case} {c.config:<{W}} {t['target']:<18} measured {val:>8}  {met}",
                file=out,
            )


def machine_info(peak: float) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "peak_flops": peak,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch_available():
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info

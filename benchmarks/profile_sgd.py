"""Profile an SGD run line by line, to guide optimisation work.

Usage::

    python benchmarks/profile_sgd.py [--impl ours|numpy] [--size small|wide|both]

``small`` is the notebook's run (m = 20, d = 2, batch 20, 500 frames); ``wide`` is
m = 10⁵, d = 100, batch 100, 4 steps.  With ``line_profiler`` installed
(``pip install line_profiler``) it prints per-line times of the step functions
(``benchmarks.peers.numpy_step``, or ``meanfield.sgd.sgd`` and its hot path in
``meanfield.velocity``/``meanfield.network``, see ``HOT_FUNCTIONS``); without it,
``cProfile`` (which does not see inside numpy's C calls).  With the compiled engines
(``meanfield._fast``, numba) the time is inside compiled kernels, which neither profiler
enters: time their phases instead (the kernels' docstrings say what each computes), or
run with ``--impl ours`` and ``backend="numpy"`` to see the reference line by line.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `benchmarks`
from benchmarks import ours as ours_mod
from benchmarks import peers

# functions of the toolkit's SGD hot path, profiled line by line when they exist
HOT_FUNCTIONS = [
    ("meanfield.sgd", "sgd"),
    ("meanfield.velocity", "residual_on_sample"),
    ("meanfield.velocity", "first_variation_grad_on_sample"),
    ("meanfield.network", "_preactivation"),
]


def problem(size: str) -> peers.Problem:
    if size == "small":
        return peers.notebook_problem(500, rng=0)
    return peers.teacher_problem(100_000, 100, 100, 4, tau=0.025 * 100_000, rng=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["ours", "numpy"], default="ours")
    parser.add_argument("--size", choices=["small", "wide", "both"], default="both")
    args = parser.parse_args(argv)
    impl = ours_mod.resolve() if args.impl == "ours" else ours_mod.NUMPY_STAND_IN
    print(f"implementation: {impl.name}")
    try:
        from line_profiler import LineProfiler
    except ImportError:
        LineProfiler = None
    for size in ["small", "wide"] if args.size == "both" else [args.size]:
        p = problem(size)
        impl.run(p.prefix(min(20, p.n_steps)))  # warm-up (JIT, allocator)
        t0 = time.perf_counter()
        impl.run(p)
        wall = time.perf_counter() - t0
        print(f"\n=== {size}: m={p.m} d={p.d} batch={p.batch} steps={p.n_steps}: {wall:.3f} s")
        if LineProfiler is not None:
            lp = LineProfiler()
            if impl is ours_mod.NUMPY_STAND_IN:
                lp.add_function(peers.numpy_step)
                lp.add_function(peers.numpy_sgd)
            else:
                for mod, name in HOT_FUNCTIONS:
                    fn = getattr(importlib.import_module(mod), name, None)
                    if fn is not None:
                        lp.add_function(fn)
            lp.runcall(impl.run, p)
            lp.print_stats(output_unit=1e-6 if size == "small" else 1e-3, stripzeros=True)
        else:
            prof = cProfile.Profile()
            prof.runcall(impl.run, p)
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The ``meanfield`` command.

.. code-block:: text

    meanfield run CONFIG.toml [-o TRAJECTORY.npz]   run the dynamics a config describes
    meanfield plot TRAJECTORY.npz [-o FIGURE.png]   the particle picture of a saved run
    meanfield figures [--quick] [--only NAME ...]   regenerate the paper's figures
    meanfield check-manifest [OUTPUT_DIR]           every figure listed, every file present

Configs are TOML (read with :mod:`tomllib`); unknown keys are rejected with the list of
valid ones (see :mod:`meanfield.config`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _cmd_run(args: argparse.Namespace) -> int:
    from meanfield.config import load_config, run_config

    config = load_config(args.config)
    out = Path(args.output) if args.output else None
    run_config(config, output=out, progress=None if not args.quiet else False, echo=print)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    import matplotlib.pyplot as plt

    from meanfield.plotting import plot_particles, plot_risk, save_figure, style
    from meanfield.trajectory import Trajectory

    traj = Trajectory.load(args.trajectory)
    if traj.batch_shape:
        traj = traj.replica((0,) * len(traj.batch_shape))
    out = Path(args.output) if args.output else Path(args.trajectory).with_suffix(".png")
    with style():
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 5))
        if traj.d >= 2:
            plot_particles(traj.thetas, teacher=traj.teacher, ax=ax0, title="particles a·w")
        else:
            ax0.plot(traj.times, traj.thetas[..., 0], color="tab:blue", lw=0.8)
            ax0.set_xlabel("mean-field time t")
            ax0.set_ylabel("a")
        if traj.risks is not None:
            plot_risk(traj.times, traj.risks, ax=ax1)
        fig.suptitle(f"{traj!r}")
        written = save_figure(fig, out, formats=(out.suffix.lstrip(".") or "png",))
        plt.close(fig)
    print(f"wrote {', '.join(map(str, written))}")
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from meanfield.figures import run_figures

    run_figures(args.dir, args.out, quick=args.quick, only=args.only, force=args.force)
    return 0


def _cmd_check_manifest(args: argparse.Namespace) -> int:
    from meanfield.figures import check_manifest

    problems = check_manifest(args.scripts_dir, args.out_dir)
    for p in problems:
        print(f"manifest: {p}", file=sys.stderr)
    if not problems:
        print("manifest: every figure script listed, every file present")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``meanfield`` command."""
    parser = argparse.ArgumentParser(prog="meanfield", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the dynamics described by a TOML config")
    p.add_argument("config", help="path of the TOML config")
    p.add_argument("-o", "--output", help="trajectory file (default: the config's output)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("plot", help="particle picture and risk of a saved trajectory")
    p.add_argument("trajectory", help="a .npz written by `meanfield run`")
    p.add_argument("-o", "--output", help="figure path (default: next to the trajectory)")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("figures", help="regenerate the figures of paper_figures/")
    p.add_argument("--quick", action="store_true", help="fewer seeds and sizes, same code")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these scripts")
    p.add_argument("--force", action="store_true", help="recompute figures already done")
    p.add_argument("--dir", default="paper_figures", help="folder of the figure scripts")
    p.add_argument("--out", default=None, help="output folder (default: DIR/output)")
    p.set_defaults(func=_cmd_figures)

    p = sub.add_parser("check-manifest", help="check that the manifest lists every figure")
    p.add_argument("out_dir", nargs="?", default="paper_figures/output")
    p.add_argument("--scripts-dir", default="paper_figures")
    p.set_defaults(func=_cmd_check_manifest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``meanfield`` command; returns the exit status.

    Errors in the user's input (a bad config, a missing or unreadable file, a truncated
    trajectory) are printed as one line naming the problem, with exit status 2; a run
    that diverges is reported in one line with exit status 1.
    """
    from meanfield.trajectory import DivergenceError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, OSError) as exc:
        print(f"meanfield {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except DivergenceError as exc:
        print(f"meanfield {args.command}: diverged: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())

"""The figure runner behind ``make figures``: one script per figure, one manifest.

Each script ``paper_figures/NAME.py`` defines

.. code-block:: python

    def make(out_dir: pathlib.Path, quick: bool) -> FigureResult: ...

which computes from scratch and writes its files into ``out_dir``.  :func:`run_figures`
imports every script, runs those not already done, and records each in
``out_dir/manifest.json`` (files, parameters, seeds, runtime, package and git
versions) as soon as it finishes, atomically, so an interrupted ``make figures``
loses nothing finished and recomputes nothing finished when restarted.  A script is
"done" when its manifest entry has the same source hash and mode (quick or full) and
all of its files exist; editing a script or a shared private helper
(``paper_figures/_*.py``) makes it due again.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meanfield._io import atomic_write_text

__all__ = ["FigureResult", "check_manifest", "git_commit", "load_manifest", "run_figures"]

MANIFEST = "manifest.json"


@dataclass
class FigureResult:
    """What a figure script returns.

    Parameters
    ----------
    files : list of Path
        Files written (inside the output directory).
    parameters : dict
        Every setting the figure depends on (JSON-serialisable).
    seeds : list
        Seeds used.
    notes : str
        Free text, e.g. the claim the figure supports with its numbers.
    """

    files: list[Path]
    parameters: dict[str, Any] = field(default_factory=dict)
    seeds: list[Any] = field(default_factory=list)
    notes: str = ""


def git_commit(cwd: Path | None = None) -> str | None:
    """Return the git commit hash (``+dirty`` if the tree has changes), or None."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev + ("+dirty" if dirty else "")


def _as_path(name: str, value: Any) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a path; got {value!r}")
    return Path(value)


def load_manifest(out_dir: Path) -> dict[str, Any]:
    """Read ``out_dir/manifest.json`` (an empty manifest if absent)."""
    path = _as_path("out_dir", out_dir) / MANIFEST
    if not path.exists():
        return {"figures": {}}
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"manifest {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("figures"), dict):
        raise ValueError(f"manifest {path} must hold an object with a 'figures' object")
    for name, entry in data["figures"].items():
        files = entry.get("files") if isinstance(entry, dict) else None
        if not isinstance(files, list) or not all(
            isinstance(f, str) and f and Path(f).name == f for f in files
        ):
            raise ValueError(
                f"manifest {path}: figures[{name!r}] must be an object whose 'files' is a "
                "list of file names"
            )
    return data


def _source_hash(path: Path) -> str:
    """Hash of the script and of the private helpers (``_*.py``) it may import."""
    h = hashlib.sha256(path.read_bytes())
    for helper in sorted(path.parent.glob("_*.py")):
        h.update(helper.read_bytes())
    return h.hexdigest()[:16]


def _load_script(path: Path) -> Any:
    folder = str(path.parent.resolve())
    if folder not in sys.path:  # scripts may share private helpers (``_common.py``)
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"paper_figures_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import figure script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so process pools can pickle its functions
    spec.loader.exec_module(module)
    if not callable(getattr(module, "make", None)):
        raise ValueError(f"figure script {path} must define make(out_dir, quick)")
    return module


def _done(entry: dict[str, Any] | None, digest: str, quick: bool, out_dir: Path) -> bool:
    return (
        entry is not None
        and entry.get("source_hash") == digest
        and entry.get("quick") == quick
        and all((out_dir / f).exists() for f in entry.get("files", []))
    )


def _record(out: Path, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Add one finished figure to the manifest, re-read under a lock (concurrent runs)."""
    with (out / ".manifest.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = load_manifest(out)
        manifest["figures"][name] = entry
        atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def run_figures(
    scripts_dir: str | Path = "paper_figures",
    out_dir: str | Path | None = None,
    *,
    quick: bool = False,
    only: list[str] | None = None,
    force: bool = False,
    verbose: bool = True,
) -> dict[str, Any]:
    """Run every figure script not already done and keep the manifest up to date.

    Parameters
    ----------
    scripts_dir : str or Path, default "paper_figures"
        Folder of the scripts (``*.py`` not starting with ``_``).
    out_dir : str or Path, optional
        Output folder; default ``scripts_dir/output``.
    quick : bool, default False
        Fewer seeds and sizes, same code paths (``make figures-quick``).
    only : list of str, optional
        Names of the scripts to run (default: all).
    force : bool, default False
        Recompute even the figures already done.
    verbose : bool, default True
        Print one line per figure.

    Returns
    -------
    dict
        The manifest.
    """
    scripts_dir = _as_path("scripts_dir", scripts_dir)
    if not scripts_dir.is_dir():
        raise ValueError(f"scripts_dir must be a folder of figure scripts; got {scripts_dir}")
    out = _as_path("out_dir", out_dir) if out_dir is not None else scripts_dir / "output"
    out.mkdir(parents=True, exist_ok=True)
    scripts = sorted(p for p in scripts_dir.glob("*.py") if not p.name.startswith("_"))
    if only:
        unknown = sorted(set(only) - {p.stem for p in scripts})
        if unknown:
            raise ValueError(
                f"only names unknown figure scripts {unknown}; known: {[p.stem for p in scripts]}"
            )
        scripts = [p for p in scripts if p.stem in only]
    from meanfield import __version__

    manifest = load_manifest(out)
    for path in scripts:
        digest = _source_hash(path)
        if not force and _done(manifest["figures"].get(path.stem), digest, quick, out):
            if verbose:
                print(f"[figures] {path.stem}: up to date, skipped")
            continue
        start = time.perf_counter()
        result = _load_script(path).make(out, quick)
        if not isinstance(result, FigureResult):
            raise TypeError(f"{path.name}: make() must return a FigureResult")
        runtime = time.perf_counter() - start
        missing = [str(f) for f in result.files if not (out / Path(f).name).exists()]
        if missing:
            raise RuntimeError(f"{path.name}: make() reported files it did not write: {missing}")
        entry = {
            "script": f"{scripts_dir.name}/{path.name}",
            "source_hash": digest,
            "quick": quick,
            "files": sorted(Path(f).name for f in result.files),
            "parameters": result.parameters,
            "seeds": result.seeds,
            "notes": result.notes,
            "runtime_s": round(runtime, 3),
            "package_version": __version__,
            "git_commit": git_commit(scripts_dir),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        manifest = _record(out, path.stem, entry)
        if verbose:
            print(f"[figures] {path.stem}: {len(result.files)} file(s) in {runtime:.1f} s")
    return manifest


def check_manifest(
    scripts_dir: str | Path = "paper_figures", out_dir: str | Path | None = None
) -> list[str]:
    """Problems with a figures manifest: scripts not listed, listed files missing.

    Parameters
    ----------
    scripts_dir : str or Path, default "paper_figures"
        Folder of the figure scripts.
    out_dir : str or Path, optional
        Output folder holding ``manifest.json`` (default ``scripts_dir/output``).

    Returns
    -------
    list of str
        One line per problem; empty when every script has an entry whose files exist.
    """
    scripts_dir = _as_path("scripts_dir", scripts_dir)
    out = _as_path("out_dir", out_dir) if out_dir is not None else scripts_dir / "output"
    if not (out / MANIFEST).exists():
        return [f"no {MANIFEST} in {out}"]
    figures = load_manifest(out)["figures"]
    problems = []
    for path in sorted(p for p in scripts_dir.glob("*.py") if not p.name.startswith("_")):
        entry = figures.get(path.stem)
        if entry is None:
            problems.append(f"{path.stem}: not in the manifest")
            continue
        if not entry.get("files"):
            problems.append(f"{path.stem}: lists no file")
        problems += [
            f"{path.stem}: {f} missing" for f in entry.get("files", []) if not (out / f).exists()
        ]
    return problems

r"""Studies: a grid of parameters × seeds, run on any executor, cached cell by cell.

A :class:`Study` names a function ``cell(params, seeds) -> list[dict]`` that runs every
seed of one grid point (as one ensemble when the shapes allow it) and returns one row
per run.  :func:`run_study`

* splits the grid × seeds into cells (one grid point × a chunk of seeds),
* skips the cells whose result file already exists in the cache,
* runs the others on an executor: serial, a process pool using every core, or any
  :class:`concurrent.futures.Executor` (``distributed.Client(...).get_executor()`` runs a
  study on a Dask cluster),
* writes each finished cell to its own JSON file atomically, as soon as it is done, so
  an interrupted study resumes without recomputing or losing finished cells,
* returns a :class:`StudyTable` (one row per run: parameters, seed, metrics) and saves it
  as CSV.

Each cell depends only on its parameters and seeds, so every executor and every
chunking gives the same table.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from meanfield._io import atomic_write_text
from meanfield._validation import check_int, describe

__all__ = ["Cell", "Study", "StudyTable", "run_study"]

CellFunction = Callable[[dict[str, Any], tuple[int, ...]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Cell:
    """One unit of work: a grid point and a chunk of seeds."""

    params: dict[str, Any]
    seeds: tuple[int, ...]

    def key(self, study: str) -> str:
        """Stable file name of the cell's cached result."""
        blob = json.dumps([study, self.params, self.seeds], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Study:
    """A grid of parameters × seeds and the function that runs one cell.

    Parameters
    ----------
    name : str
        Name of the study (cache sub-folder, CSV name).
    cell : callable
        ``cell(params, seeds) -> list of dict``: runs every seed of ``seeds`` at the grid
        point ``params`` and returns one row of metrics per seed (each row must contain
        ``"seed"``).  Must be a module-level function for process pools.
    grid : mapping of str to sequence
        Parameter values; the study runs their Cartesian product.
    seeds : sequence of int
        Seeds of every grid point.
    seeds_per_cell : int, optional
        Chunk the seeds of a grid point into cells of this size (default: one cell per
        grid point, so the cell function can run all its seeds as one ensemble).
    fixed : mapping, optional
        Parameters common to every cell (part of the cache key).
    """

    name: str
    cell: CellFunction
    grid: Mapping[str, Sequence[Any]]
    seeds: Sequence[int]
    seeds_per_cell: int | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.name, str)
            or not self.name
            or self.name in (".", "..")
            or any(sep in self.name for sep in ("/", "\\", os.sep, "\0"))
        ):
            raise ValueError(
                "name must be a non-empty string usable as a folder name (no path "
                f"separator); got {describe(self.name)}"
            )
        if not callable(self.cell):
            raise TypeError(f"cell must be callable; got {describe(self.cell)}")
        if not isinstance(self.grid, Mapping):
            raise TypeError(f"grid must be a mapping of name to values; got {describe(self.grid)}")
        for k, values in self.grid.items():
            if (
                isinstance(values, (str, bytes))
                or not isinstance(values, Sequence | np.ndarray)
                or len(values) == 0
            ):
                raise ValueError(
                    f"grid[{k!r}] must be a non-empty sequence; got {describe(values)}"
                )
        if isinstance(self.seeds, str | bytes) or not isinstance(
            self.seeds, Sequence | np.ndarray
        ):
            raise TypeError(f"seeds must be a sequence of integers; got {describe(self.seeds)}")
        if not isinstance(self.fixed, Mapping):
            raise TypeError(f"fixed must be a mapping; got {describe(self.fixed)}")
        if len(self.seeds) == 0:
            raise ValueError("seeds must be a non-empty sequence of integers; got an empty one")
        for s in self.seeds:
            check_int("seeds[...]", s, minimum=0)
        if self.seeds_per_cell is not None:
            check_int("seeds_per_cell", self.seeds_per_cell)

    def cells(self) -> list[Cell]:
        """All cells in a fixed order (grid points in product order, then seed chunks)."""
        keys = list(self.grid)
        chunk = self.seeds_per_cell or len(self.seeds)
        seeds = tuple(int(s) for s in self.seeds)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            params = {**dict(self.fixed), **dict(zip(keys, values, strict=True))}
            for i in range(0, len(seeds), chunk):
                out.append(Cell(params, seeds[i : i + chunk]))
        return out


class StudyTable:
    """A tidy table: one row per run (parameters, seed, metrics).

    Parameters
    ----------
    rows : iterable of dict
        The rows; columns are the union of their keys in first-seen order.
    """

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
            raise TypeError(f"rows must be an iterable of dicts; got {describe(rows)}")
        self.rows: list[dict[str, Any]] = []
        for i, r in enumerate(rows):
            if not isinstance(r, Mapping):
                raise TypeError(f"rows[{i}] must be a dict; got {describe(r)}")
            self.rows.append(dict(r))
        cols: dict[str, None] = {}
        for r in self.rows:
            cols.update(dict.fromkeys(r))
        self.columns: list[str] = list(cols)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def column(self, name: str) -> NDArray[Any]:
        """Return the values of one column as an array."""
        if name not in self.columns:
            raise ValueError(f"name must be one of the columns {self.columns}; got {name!r}")
        return np.array([r.get(name) for r in self.rows])

    def where(self, **conditions: Any) -> StudyTable:
        """Rows whose columns equal the given values."""
        return StudyTable(r for r in self.rows if all(r.get(k) == v for k, v in conditions.items()))

    def to_csv(self) -> str:
        """Return the table as CSV text (floats written with repr precision)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in r.items()})
        return buf.getvalue()

    def save_csv(self, path: str | Path) -> Path:
        """Write the CSV atomically; returns the path."""
        path = Path(path)
        atomic_write_text(path, self.to_csv())
        return path


def _run_cell(cell_fn: CellFunction, cell: Cell) -> list[dict[str, Any]]:
    rows = cell_fn(dict(cell.params), cell.seeds)
    if (
        not isinstance(rows, list)
        or len(rows) != len(cell.seeds)
        or not all(isinstance(r, Mapping) for r in rows)
    ):
        raise ValueError(
            f"cell function must return a list of {len(cell.seeds)} rows (one dict per "
            f"seed); got {describe(rows)}"
        )
    return [{**cell.params, **row} for row in rows]


def _read_cell(path: Path, n_seeds: int) -> list[dict[str, Any]] | None:
    """Rows of a cached cell, or None when the file is absent, unreadable or incomplete.

    Cell files are written atomically, so an unreadable one can only come from outside
    (a disk fault, a hand edit); it is then recomputed rather than trusted.
    """
    try:
        rows = json.loads(path.read_text())["rows"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(rows, list) or len(rows) != n_seeds:
        return None
    if not all(isinstance(r, dict) for r in rows):
        return None
    return rows


def _make_executor(executor: str | Executor | None, n_cells: int) -> tuple[Executor | None, bool]:
    """Return (executor or None for serial, whether we own it)."""
    if executor is None or executor == "process":
        workers = min(os.cpu_count() or 1, max(n_cells, 1))
        return (None, False) if workers <= 1 else (ProcessPoolExecutor(workers), True)
    if executor == "serial":
        return None, False
    if isinstance(executor, Executor):
        return executor, False
    raise ValueError(
        f"executor must be 'serial', 'process', None or a concurrent.futures.Executor; "
        f"got {describe(executor)}"
    )


def run_study(
    study: Study,
    cache_dir: str | Path,
    *,
    executor: str | Executor | None = None,
    csv_path: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StudyTable:
    """Run a study (resuming from its cache) and return its table.

    Parameters
    ----------
    study : Study
        What to run.
    cache_dir : str or Path
        Folder of the cell files (``cache_dir/<study.name>/<cell key>.json``).
    executor : {"process", "serial"} or Executor, optional
        Where cells run.  Default ``"process"``: a process pool over every core (serial
        when there is one core or one cell).  Any :class:`concurrent.futures.Executor`
        works, e.g. a Dask ``Client.get_executor()``.
    csv_path : str or Path, optional
        Where to save the table (default ``cache_dir/<study.name>.csv``).
    progress : callable, optional
        Called as ``progress(done, total)`` after each cell.

    Returns
    -------
    StudyTable
        Rows in the study's cell order, whatever order the cells finished in.
    """
    if not isinstance(study, Study):
        raise TypeError(f"study must be a Study; got {describe(study)}")
    if not isinstance(cache_dir, str | os.PathLike):
        raise TypeError(f"cache_dir must be a path; got {describe(cache_dir)}")
    folder = Path(cache_dir) / study.name
    folder.mkdir(parents=True, exist_ok=True)
    cells = study.cells()
    keys = [c.key(study.name) for c in cells]
    results: dict[str, list[dict[str, Any]]] = {}
    for key, cell in zip(keys, cells, strict=True):
        rows = _read_cell(folder / f"{key}.json", len(cell.seeds))
        if rows is not None:
            results[key] = rows
    todo = [(k, c) for k, c in zip(keys, cells, strict=True) if k not in results]

    def finish(key: str, cell: Cell, rows: list[dict[str, Any]]) -> None:
        record = {"study": study.name, "params": cell.params, "seeds": cell.seeds, "rows": rows}
        atomic_write_text(folder / f"{key}.json", json.dumps(record, default=_json_default))
        results[key] = json.loads(json.dumps(rows, default=_json_default))
        if progress is not None:
            progress(len(results), len(cells))

    pool, owned = _make_executor(executor, len(todo))
    try:
        if pool is None:
            for key, cell in todo:
                finish(key, cell, _run_cell(study.cell, cell))
        else:
            futures: dict[Future[list[dict[str, Any]]], tuple[str, Cell]] = {
                pool.submit(_run_cell, study.cell, cell): (key, cell) for key, cell in todo
            }
            for fut in as_completed(futures):
                key, cell = futures[fut]
                finish(key, cell, fut.result())
    finally:
        if owned and pool is not None:
            pool.shutdown(cancel_futures=True)
    table = StudyTable(row for key in keys for row in results[key])
    table.save_csv(csv_path if csv_path is not None else Path(cache_dir) / f"{study.name}.csv")
    return table


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store a {type(value).__name__} in a study row")

"""Atomic file writes shared by every module that saves results.

A result file is either absent or complete: it is written to a temporary file in the
same directory, flushed to disk, then moved over the target with :func:`os.replace`
(atomic on POSIX and Windows when source and target share a file system).  An
interrupted run therefore never leaves a truncated trajectory, manifest or figure.
:func:`to_json` serialises the metadata written next to the arrays (numpy scalars and
arrays, paths).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "to_json"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import (os.umask is process-global and not thread-safe to query later).
_UMASK = _current_umask()


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    The temporary file lives in the target's directory (so the final
    :func:`os.replace` is atomic) and ends with the target's suffix (so writers that
    infer a format from the name, such as :meth:`matplotlib.figure.Figure.savefig`,
    behave as for the target).  If the ``with`` block raises, the temporary file is
    removed and ``path`` is left untouched.  The parent directory is created if
    needed; the final file gets the usual permissions (``0o666`` minus the umask).

    Parameters
    ----------
    path : str or PathLike
        Final destination.

    Yields
    ------
    Path
        Where to write.

    Examples
    --------
    >>> with atomic_path("out/figure.png") as tmp:  # doctest: +SKIP
    ...     fig.savefig(tmp)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}"
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes; got {type(data).__name__}")
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_bytes(bytes(data))
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str; got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode(encoding))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"value of type {type(obj).__name__} is not JSON-serialisable")


def to_json(obj: Any) -> str:
    """Serialise ``obj`` to JSON, converting numpy scalars/arrays and paths."""
    return json.dumps(obj, default=_json_default, sort_keys=True)

"""Argument checks shared by the public entry points.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the
parameter and shows what was received.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "as_float_array",
    "check_inputs",
    "check_int",
    "check_positive",
    "describe",
]


def describe(value: Any) -> str:
    """Short description of a received value for an error message."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_float_array(
    name: str,
    value: Any,
    *,
    min_ndim: int = 0,
    ndim: int | None = None,
    finite: bool = True,
) -> NDArray[np.floating]:
    """Convert ``value`` to a floating array, checking rank and finiteness.

    Integer and boolean input is promoted to float64; floating input keeps its dtype.
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be an array of real numbers; got {describe(value)}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested sequences
        raise ValueError(f"{name} must be a rectangular array of numbers; {exc}") from None
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise TypeError(f"{name} must be an array of real numbers; got {describe(arr)}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s); got shape {arr.shape}")
    if arr.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s); got shape {arr.shape}"
        )
    if finite and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} must be finite; got {bad} non-finite value(s)")
    return arr


def check_inputs(x: Any, d: int, *, name: str = "x") -> NDArray[np.floating]:
    """Validate inputs of shape ``(..., n, d)`` for a measure of input dimension ``d``."""
    arr = as_float_array(name, x, min_ndim=1)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.shape[-1] != d:
        raise ValueError(
            f"{name} must have shape (..., n, {d}) to match the measure's d={d}; "
            f"got shape {arr.shape}"
        )
    if arr.shape[-2] == 0:
        raise ValueError(f"{name} must hold at least one input; got shape {arr.shape}")
    return arr


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Check that ``value`` is an integer ≥ ``minimum`` and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Check that ``value`` is a finite real > 0 (or ≥ 0) and return it as ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {describe(value)}")
    v = float(value)
    ok = np.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}; got {value!r}")
    return v

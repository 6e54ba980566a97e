r"""Argument checks shared by the public entry points.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the
parameter and shows what was received (DESIGN.md, "Engineering conventions" 3), e.g.
``theta must have shape (..., m, d+2) with d >= 1; got shape (3, 5, 2)``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "OverflowResultError",
    "as_float_array",
    "as_generator",
    "check_index",
    "check_inputs",
    "check_int",
    "check_positive",
    "describe",
]


class OverflowResultError(ValueError):
    """Finite inputs gave a non-finite result: float64 overflowed.

    A ``ValueError`` (the input is out of the representable range), told apart so that
    a run can report it as a divergence of the dynamics rather than as bad input.
    """


def describe(value: Any) -> str:
    """Describe a received value in a few words, for an error message.

    Parameters
    ----------
    value : object
        Anything.

    Returns
    -------
    str
        ``"array of shape (…) and dtype …"`` for an array, else its ``repr`` cut to
        60 characters.
    """
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

    Parameters
    ----------
    name : str
        Parameter name used in error messages.
    value : array_like
        Real numbers of any shape.
    min_ndim : int, default 0
        Minimal number of dimensions.
    ndim : int, optional
        Exact number of dimensions.
    finite : bool, default True
        Reject NaN and ±inf.

    Returns
    -------
    ndarray of floating dtype, shape ``np.shape(value)``

    Raises
    ------
    TypeError
        If ``value`` is a string, ``None``, or not an array of real numbers.
    ValueError
        If ``value`` is ragged, has the wrong number of dimensions or a non-finite entry.
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


def check_inputs(
    x: Any, d: int, *, name: str = "x", owner: str = "the measure"
) -> NDArray[np.floating]:
    """Validate inputs of shape ``(..., n, d)`` for a model of input dimension ``d``.

    Parameters
    ----------
    x : array_like, shape (..., n, d) or (d,)
        Inputs; a single input of shape ``(d,)`` is read as ``(1, d)``.
    d : int
        Expected input dimension.
    name : str, default "x"
        Parameter name used in error messages.
    owner : str, default "the measure"
        What fixes ``d``, for the error message.

    Returns
    -------
    ndarray, shape (..., n, d)

    Raises
    ------
    TypeError
        If ``x`` is not an array of real numbers.
    ValueError
        If ``x`` is a scalar, has a last axis other than ``d``, holds no input, or has
        a non-finite entry.
    """
    arr = as_float_array(name, x, min_ndim=1)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.shape[-1] != d:
        raise ValueError(
            f"{name} must have shape (..., n, {d}) to match {owner}'s d={d}; "
            f"got shape {arr.shape}"
        )
    if arr.shape[-2] == 0:
        raise ValueError(f"{name} must hold at least one input; got shape {arr.shape}")
    return arr


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Check that ``value`` is an integer ≥ ``minimum`` and return it as ``int``.

    Parameters
    ----------
    name : str
        Parameter name used in error messages.
    value : int
        Python or numpy integer (``bool`` is refused).
    minimum : int, default 1
        Smallest accepted value.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If ``value < minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Check that ``value`` is a finite real > 0 (or ≥ 0) and return it as ``float``.

    Parameters
    ----------
    name : str
        Parameter name used in error messages.
    value : float
        Python or numpy real number (``bool`` is refused).
    allow_zero : bool, default False
        Accept 0.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If ``value`` is not finite or not in the accepted range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {describe(value)}")
    v = float(value)
    ok = np.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}; got {value!r}")
    return v


def as_generator(rng: Any, *, name: str = "rng") -> np.random.Generator:
    """Normalise a source of randomness with :func:`numpy.random.default_rng`.

    Parameters
    ----------
    rng : None, int, sequence of int, SeedSequence, BitGenerator or Generator
        Anything :func:`numpy.random.default_rng` accepts.  A ``Generator`` is
        returned as is (so it is consumed); an integer seed gives a fresh,
        reproducible stream.
    name : str, default "rng"
        Parameter name used in error messages.

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    TypeError
        If ``rng`` is not a seed, a ``SeedSequence``, a bit generator or a
        ``Generator`` (e.g. a float or a string).
    ValueError
        If ``rng`` is a negative integer seed.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (bool, float, complex, str, bytes)):
        raise TypeError(
            f"{name} must be None, an int seed, a SeedSequence or a numpy Generator; "
            f"got {describe(rng)}"
        )
    try:
        return np.random.default_rng(rng)
    except TypeError:
        raise TypeError(
            f"{name} must be None, an int seed, a SeedSequence or a numpy Generator; "
            f"got {describe(rng)}"
        ) from None
    except ValueError as exc:
        raise ValueError(
            f"{name} must be a nonnegative seed; got {describe(rng)} ({exc})"
        ) from None


def check_index(index: Any, batch_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Validate an index into the ensemble axes ``batch_shape``; return it as a tuple.

    Parameters
    ----------
    index : int or tuple of int
        One integer per leading ensemble axis (fewer than ``len(batch_shape)`` select a
        sub-ensemble); negative integers count from the end.
    batch_shape : tuple of int
        The ensemble axes.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        If there is no ensemble axis, too many indices, or an index out of range.
    TypeError
        If an index is not an integer.
    """
    if not batch_shape:
        raise ValueError("replica needs an ensemble; this one has batch_shape ()")
    idx = index if isinstance(index, tuple) else (index,)
    if len(idx) == 0 or len(idx) > len(batch_shape):
        raise ValueError(
            f"index must address 1 to {len(batch_shape)} ensemble axes of batch_shape "
            f"{batch_shape}; got {index!r}"
        )
    out = []
    for i, size in zip(idx, batch_shape, strict=False):
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"index must hold integers; got {describe(index)}")
        if not -size <= int(i) < size:
            raise ValueError(f"index {index!r} is out of range for batch_shape {batch_shape}")
        out.append(int(i))
    return tuple(out)

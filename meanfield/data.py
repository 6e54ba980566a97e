r"""Input laws, targets and the notebook's sample schedule.

Inputs are x ~ N(0, I_d) by default (the notebook) or uniform on the sphere of radius
r in ℝ^d.  A target y(x) is a teacher network f_ν (a :class:`Teacher`) or any callable
mapping inputs ``(..., n, d)`` to values ``(..., n)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import (
    as_float_array,
    as_generator,
    check_inputs,
    check_int,
    check_positive,
    describe,
)
from meanfield.activations import Activation, get_activation
from meanfield.measure import ParticleMeasure, RNGLike
from meanfield.network import output

__all__ = [
    "CallableTarget",
    "InputLaw",
    "Target",
    "Teacher",
    "as_target",
    "evaluate_target",
    "notebook_frame_sizes",
    "sample_inputs",
]

InputLaw = Literal["gaussian", "sphere"]


def sample_inputs(
    n: int,
    d: int,
    *,
    law: InputLaw = "gaussian",
    radius: float = 1.0,
    rng: RNGLike = None,
) -> NDArray[np.float64]:
    r"""Draw n inputs in ℝ^d.

    .. math::
        x_k \sim N(0, I_d) \quad\text{or}\quad x_k = r\, g_k/\|g_k\|,\ g_k \sim N(0, I_d)

    Parameters
    ----------
    n, d : int
        Number of inputs and dimension.
    law : {"gaussian", "sphere"}, default "gaussian"
        ``"gaussian"``: x ~ N(0, I_d); ``"sphere"``: x uniform on radius·S^{d−1}.
    radius : float, default 1.0
        Radius of the sphere (ignored for the Gaussian law).
    rng : int, Generator or SeedSequence, optional
        Source of randomness.

    Returns
    -------
    ndarray, shape (n, d)
    """
    n = check_int("n", n)
    d = check_int("d", d)
    if not isinstance(law, str) or law not in ("gaussian", "sphere"):
        raise ValueError(f"law must be 'gaussian' or 'sphere'; got {describe(law)}")
    if law == "sphere":
        radius = check_positive("radius", radius)
    x = as_generator(rng).standard_normal((n, d))
    if law == "sphere":
        x *= radius / np.linalg.norm(x, axis=-1, keepdims=True)
    return x


class Target:
    r"""A target function y(x), mapping inputs ``(..., n, d)`` to values ``(..., n)``.

    .. math:: y : \mathbb{R}^d \to \mathbb{R}

    Attributes
    ----------
    d : int or None
        Input dimension, or ``None`` when any dimension is accepted.
    """

    d: int | None = None

    def __call__(self, x: NDArray[np.floating]) -> NDArray[np.floating]:
        """Evaluate y at the inputs.

        Parameters
        ----------
        x : ndarray, shape (..., n, d)
            Inputs.

        Returns
        -------
        ndarray, shape (..., n)
        """
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Teacher(Target):
    r"""A realisable target y = f_ν given by a teacher measure ν.

    .. math:: y(x) = f_\nu(x) = \sum_j q_j\, a^\star_j\, \sigma(w^\star_j\cdot x + b^\star_j)

    Parameters
    ----------
    measure : ParticleMeasure
        The teacher ν (m₀ atoms); may carry ensemble axes (one teacher per run).
    activation : str or Activation, default "relu"
        σ, shared with the student.
    """

    measure: ParticleMeasure
    activation: Activation | str = "relu"

    def __post_init__(self) -> None:
        if not isinstance(self.measure, ParticleMeasure):
            raise TypeError(f"measure must be a ParticleMeasure; got {describe(self.measure)}")
        object.__setattr__(self, "activation", get_activation(self.activation))

    @property
    def d(self) -> int:  # type: ignore[override]
        """Input dimension of the teacher."""
        return self.measure.d

    def __call__(self, x: ArrayLike) -> NDArray[np.floating]:
        r"""Evaluate f_ν at inputs ``(..., n, d)``: values ``(..., n)``.

        .. math:: y(x_k) = f_\nu(x_k)
        """
        return output(self.measure, x, activation=self.activation)


@dataclass(frozen=True, eq=False)
class CallableTarget(Target):
    r"""Wrap a plain function of the inputs as a target, checking its output.

    .. math:: y(x) = g(x), \qquad g : \mathbb{R}^{(\dots, n, d)} \to \mathbb{R}^{(\dots, n)}

    Parameters
    ----------
    function : callable
        Maps inputs ``(..., n, d)`` to finite values ``(..., n)``.
    d : int, optional
        Input dimension, if known.
    """

    function: Callable[[NDArray[np.floating]], ArrayLike]
    d: int | None = None

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError(f"function must be callable; got {describe(self.function)}")
        if self.d is not None:
            object.__setattr__(self, "d", check_int("d", self.d))

    def __call__(self, x: ArrayLike) -> NDArray[np.floating]:
        r"""Evaluate the wrapped function at inputs ``(..., n, d)``: values ``(..., n)``.

        .. math:: y(x_k) = \mathrm{function}(x)_k

        Raises
        ------
        ValueError
            If the function returns another shape or a non-finite value.
        """
        if self.d is not None:
            xx = check_inputs(x, self.d, owner="the target")
        else:
            xx = as_float_array("x", x, min_ndim=2)
        y = as_float_array("target(x)", self.function(xx))
        if y.shape != xx.shape[:-1]:
            raise ValueError(
                f"target(x) must have shape {xx.shape[:-1]} for x of shape {xx.shape}; "
                f"got shape {y.shape}"
            )
        return y


def as_target(
    target: Target | ParticleMeasure | Callable[[NDArray[np.floating]], ArrayLike],
    *,
    activation: str | Activation = "relu",
) -> Target:
    r"""Normalise a target: a :class:`Target`, a teacher measure, or a callable.

    .. math:: y = f_\nu \ \text{(teacher measure ν)} \quad\text{or}\quad y = g
        \ \text{(callable g)}

    Parameters
    ----------
    target : Target, ParticleMeasure or callable
        A teacher measure is wrapped as ``Teacher(target, activation)``.
    activation : str or Activation, default "relu"
        Activation of a teacher given as a bare measure.

    Returns
    -------
    Target
    """
    if isinstance(target, Target):
        return target
    if isinstance(target, ParticleMeasure):
        return Teacher(target, activation)
    if callable(target):
        return CallableTarget(target)
    raise TypeError(
        f"target must be a Target, a ParticleMeasure or a callable; got {describe(target)}"
    )


def evaluate_target(target: Target, x: ArrayLike, d: int) -> NDArray[np.floating]:
    r"""Evaluate ``target`` on inputs checked against the dimension ``d``.

    .. math:: y_k = y(x_k)

    Parameters
    ----------
    target : Target
        y.
    x : array_like, shape (..., n, d)
        Inputs.
    d : int
        Input dimension of the model the target is compared with.

    Returns
    -------
    ndarray, shape (..., n)

    Raises
    ------
    TypeError
        If ``target`` is not a :class:`Target`.
    ValueError
        If ``x`` or the target has another input dimension than ``d``.
    """
    if not isinstance(target, Target):
        raise TypeError(f"target must be a Target; got {describe(target)}")
    d = check_int("d", d)
    xx = check_inputs(x, d)
    if target.d is not None and target.d != d:
        raise ValueError(f"target has input dimension {target.d} but the measure has d={d}")
    return target(xx)


def notebook_frame_sizes(n_frames: int = 500, *, repeat_first: bool = False) -> NDArray[np.int64]:
    r"""Return the samples drawn per animation frame in the notebook: 100·⌊log(10 + 10 i)⌋.

    .. math:: n_i = 100\,\lfloor \log(10 + 10\, i) \rfloor, \qquad i = 0, 1, \dots

    Each frame draws that many fresh samples and takes one epoch of minibatch SGD on
    them (batch 20).

    Parameters
    ----------
    n_frames : int, default 500
        Number of frames i = 0 … n_frames − 1.
    repeat_first : bool, default False
        Matplotlib's ``FuncAnimation`` without ``init_func`` draws frame 0 once more to
        initialise the figure, so the notebook as run in Jupyter processed frame 0
        twice (its log prints ``0 0 1 2 …``).  Set to replay that exactly.

    Returns
    -------
    ndarray of int, shape (n_frames,) or (n_frames + 1,)
    """
    n_frames = check_int("n_frames", n_frames)
    i = np.arange(n_frames, dtype=np.float64)
    sizes = 100 * np.floor(np.log(10.0 + 10.0 * i)).astype(np.int64)
    return np.concatenate([sizes[:1], sizes]) if repeat_first else sizes

r"""Activation functions σ of the feature φ(θ, x) = a σ(w·x + b).

Each activation carries its value, its derivative and its degree of positive
homogeneity, which decides which global-convergence theorem of Chizat & Bach (2018)
applies: ReLU is 1-homogeneous, so the feature φ is 2-homogeneous in θ (Thm 3.3);
sigmoid, tanh and erf are not homogeneous, so φ is 1-homogeneous in ``a`` only
(Thm 3.5, the "partially 1-homogeneous" case).

All functions are numerically stable for large pre-activations (no overflow warning,
no NaN for finite input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from meanfield._validation import as_float_array, describe

__all__ = ["ACTIVATIONS", "Activation", "get_activation"]

_TWO_OVER_SQRT_PI = 2.0 / np.sqrt(np.pi)


@dataclass(frozen=True)
class Activation:
    r"""A scalar activation σ with its derivative.

    .. math:: \varphi(\theta, x) = a\,\sigma(w\cdot x + b), \qquad
        \sigma(\lambda u) = \lambda^{\mathrm{degree}}\sigma(u)\ (\lambda > 0)

    Parameters
    ----------
    name : str
        Registry name (``"relu"``, ``"sigmoid"``, ``"tanh"``, ``"erf"``).
    value : callable
        Elementwise σ(u).
    derivative : callable
        Elementwise σ′(u).
    degree : int or None
        Degree of positive homogeneity, σ(λu) = λ^degree σ(u) for λ > 0, or ``None``
        when σ is not homogeneous.  The feature φ(θ, x) = a σ(w·x + b) is then
        (degree + 1)-homogeneous in θ, or 1-homogeneous in ``a`` only.
    """

    name: str
    value: Callable[[NDArray[np.floating]], NDArray[np.floating]]
    derivative: Callable[[NDArray[np.floating]], NDArray[np.floating]]
    degree: int | None

    @property
    def feature_degree(self) -> int | None:
        r"""Homogeneity degree of φ in the whole θ = (a, w, b), or ``None``.

        .. math:: \varphi(\lambda\theta, x) = \lambda^{\mathrm{degree}+1}\,\varphi(\theta, x),
            \qquad \lambda > 0

        ReLU gives 2 (Chizat & Bach 2018, Thm 3.3); the others give ``None``
        (φ is then 1-homogeneous in ``a`` only, Thm 3.5).
        """
        return None if self.degree is None else self.degree + 1

    def __call__(self, u: ArrayLike) -> NDArray[np.floating]:
        r"""Evaluate σ(u) elementwise.

        Parameters
        ----------
        u : array_like, any shape
            Pre-activations u = w·x + b.  Floating input keeps its dtype; anything
            else is converted to float64.

        Returns
        -------
        ndarray, shape ``np.shape(u)``
            σ(u); elementwise, so a NaN or ±inf entry maps to σ(NaN) = NaN or σ(±inf).

        Raises
        ------
        TypeError
            If ``u`` is not an array of real numbers (complex, object, strings).
        """
        return self.value(as_float_array("u", u, finite=False))


def _relu(u: NDArray[np.floating]) -> NDArray[np.floating]:
    return np.maximum(u, 0.0)


def _relu_derivative(u: NDArray[np.floating]) -> NDArray[np.floating]:
    # σ′(0) = 1, as the notebook's ``drelu`` (``x >= 0``); the choice is immaterial for
    # x ~ N(0, I) (the kink is hit with probability 0) but matters for exact replays.
    return (u >= 0).astype(u.dtype)


def _sigmoid_derivative(u: NDArray[np.floating]) -> NDArray[np.floating]:
    # σ(u)(1 − σ(u)) = σ(u)σ(−u): the second form keeps full relative accuracy in the
    # tails (1 − σ(u) rounds to 0 for u > 37), with no overflow warning.
    return special.expit(u) * special.expit(-u)


def _tanh_derivative(u: NDArray[np.floating]) -> NDArray[np.floating]:
    # 1 − tanh² loses all digits for |u| > 19; 1/cosh² = 4 e^{-2|u|}/(1 + e^{-2|u|})².
    # Clip before doubling: 2|u| overflows float32 near its max; e^{-2|u|} is 0 past 400.
    e = np.exp(-2.0 * np.minimum(np.abs(u), 400.0))
    return 4.0 * e / (1.0 + e) ** 2


def _erf_derivative(u: NDArray[np.floating]) -> NDArray[np.floating]:
    # Clip before squaring: u² overflows for |u| > 1e154; e^{-u²} is already 0 for |u| > 28.
    two_over_sqrt_pi = u.dtype.type(_TWO_OVER_SQRT_PI)  # keep float32 input float32
    return two_over_sqrt_pi * np.exp(-np.square(np.minimum(np.abs(u), 64.0)))


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation("relu", _relu, _relu_derivative, degree=1),
    "sigmoid": Activation("sigmoid", special.expit, _sigmoid_derivative, degree=None),
    "tanh": Activation("tanh", np.tanh, _tanh_derivative, degree=None),
    "erf": Activation("erf", special.erf, _erf_derivative, degree=None),
}
"""The built-in activations by name.

* ``relu``: σ(u) = max(u, 0), σ′(u) = 1[u ≥ 0] (so σ′(0) = 1, the notebook's ``drelu``);
  1-homogeneous.
* ``sigmoid``: σ(u) = 1/(1 + e^{−u}), σ′(u) = σ(u)(1 − σ(u)) = σ(u)σ(−u).
* ``tanh``: σ(u) = tanh u, σ′ = 1/cosh² u.
* ``erf``: σ(u) = erf u, σ′(u) = 2 e^{−u²}/√π.
"""


def get_activation(activation: str | Activation) -> Activation:
    r"""Return the :class:`Activation` named ``activation`` (or ``activation`` itself).

    .. math::
        \sigma_{\mathrm{relu}}(u) = \max(u, 0),\quad
        \sigma_{\mathrm{sigmoid}}(u) = \frac{1}{1 + e^{-u}},\quad
        \sigma_{\mathrm{tanh}}(u) = \tanh u,\quad
        \sigma_{\mathrm{erf}}(u) = \frac{2}{\sqrt\pi}\int_0^u e^{-t^2}\,dt

    Parameters
    ----------
    activation : str or Activation
        A name in :data:`ACTIVATIONS` (case-insensitive) or an :class:`Activation`
        instance.

    Returns
    -------
    Activation

    Raises
    ------
    ValueError
        If the name is unknown.
    TypeError
        If ``activation`` is neither a string nor an :class:`Activation`.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        try:
            return ACTIVATIONS[activation.lower()]
        except KeyError:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}"
            ) from None
    raise TypeError(f"activation must be a str or an Activation; got {describe(activation)}")

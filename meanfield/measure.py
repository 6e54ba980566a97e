r"""Particle measures over θ = (a, w, b) and the initialisation laws.

A two-layer network of width m is the empirical measure

.. math::

    \mu = \sum_{i=1}^m p_i\, \delta_{\theta_i}, \qquad
    \theta_i = (a_i, w_i, b_i) \in \mathbb{R}\times\mathbb{R}^d\times\mathbb{R},
    \qquad p_i \ge 0,\ \sum_i p_i = 1,

stored as an array ``theta`` of shape ``(..., m, d+2)`` whose rows are
``[a, w_1 … w_d, b]`` and an array ``masses`` of shape ``(..., m)``.  Leading axes
index an ensemble of independent runs (Mei, Montanari & Nguyen 2018; Chizat & Bach 2018).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield._validation import (
    as_float_array,
    as_generator,
    check_index,
    check_int,
    check_positive,
    describe,
)

__all__ = [
    "ParticleMeasure",
    "balanced",
    "gaussian",
    "notebook_sphere",
    "notebook_teacher",
    "spawn_rngs",
    "sphere",
]

RNGLike = int | np.random.Generator | np.random.SeedSequence | None

_MASS_TOL = 1e-9


class ParticleMeasure:
    r"""An empirical measure μ = Σᵢ pᵢ δ_{θᵢ} over neurons θ = (a, w, b).

    .. math:: \mu = \sum_{i=1}^m p_i\,\delta_{\theta_i}, \qquad p_i \ge 0,\quad
        \sum_i p_i = 1

    Parameters
    ----------
    theta : array_like, shape (..., m, d+2)
        Particle positions, one row ``[a, w_1 … w_d, b]`` per neuron.  Leading axes
        form an ensemble of independent measures.
    masses : array_like, shape (..., m) or (m,), optional
        Nonnegative masses summing to 1 along the last axis.  Default: uniform 1/m,
        which makes f_μ the mean over neurons (the notebook's ``np.mean``).

    Raises
    ------
    ValueError
        If ``theta`` has fewer than 2 dimensions, fewer than 3 columns, no particle,
        or non-finite entries; if ``masses`` has the wrong shape, a negative or
        non-finite entry, or does not sum to 1.
    TypeError
        If an array is not numeric.

    Notes
    -----
    The object is immutable: :meth:`with_theta` returns a new measure.
    """

    __slots__ = ("_masses", "_theta")

    def __init__(self, theta: ArrayLike, masses: ArrayLike | None = None) -> None:
        th = as_float_array("theta", theta, min_ndim=2)
        if th.shape[-1] < 3:
            raise ValueError(
                f"theta must have shape (..., m, d+2) with d >= 1; got shape {th.shape}"
            )
        if th.shape[-2] == 0:
            raise ValueError(
                f"theta must hold at least one particle (m >= 1); got shape {th.shape}"
            )
        if masses is None:
            p = np.full(th.shape[:-1], 1.0 / th.shape[-2], dtype=th.dtype)
        else:
            p = as_float_array("masses", masses, min_ndim=1)
            try:
                fits = np.broadcast_shapes(p.shape, th.shape[:-1]) == th.shape[:-1]
            except ValueError:
                fits = False
            if not fits or p.shape[-1] != th.shape[-2]:
                raise ValueError(
                    f"masses must have shape {th.shape[:-1]} (or ({th.shape[-2]},)) to match "
                    f"theta of shape {th.shape}; got shape {p.shape}"
                )
            if np.any(p < 0):
                raise ValueError(f"masses must be nonnegative; got minimum {p.min():.3g}")
            # Sum in float64 with a tolerance that allows the rounding of the given dtype.
            sums = p.sum(axis=-1, dtype=np.float64)
            tol = max(_MASS_TOL, 8.0 * float(np.finfo(p.dtype).eps)) * max(1, p.shape[-1])
            if sums.size and np.any(np.abs(sums - 1.0) > tol):
                raise ValueError(
                    f"masses must sum to 1 along the last axis; got sums in "
                    f"[{np.min(sums):.6g}, {np.max(sums):.6g}]"
                )
            p = np.broadcast_to(p.astype(th.dtype, copy=False), th.shape[:-1])
        th = th.copy()
        p = p.copy()
        th.flags.writeable = False
        p.flags.writeable = False
        self._theta = th
        self._masses = p

    # -- views ---------------------------------------------------------------------
    @property
    def theta(self) -> NDArray[np.floating]:
        """Particle positions, shape ``(..., m, d+2)`` (read-only)."""
        return self._theta

    @property
    def masses(self) -> NDArray[np.floating]:
        """Particle masses pᵢ, shape ``(..., m)`` (read-only)."""
        return self._masses

    @property
    def a(self) -> NDArray[np.floating]:
        """Output weights aᵢ, shape ``(..., m)``."""
        return self._theta[..., 0]

    @property
    def w(self) -> NDArray[np.floating]:
        """Input weights wᵢ, shape ``(..., m, d)``."""
        return self._theta[..., 1:-1]

    @property
    def b(self) -> NDArray[np.floating]:
        """Biases bᵢ, shape ``(..., m)``."""
        return self._theta[..., -1]

    @property
    def d(self) -> int:
        """Input dimension d."""
        return self._theta.shape[-1] - 2

    @property
    def m(self) -> int:
        """Number of particles m."""
        return self._theta.shape[-2]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Shape of the ensemble axes (``()`` for a single measure)."""
        return self._theta.shape[:-2]

    @property
    def dtype(self) -> np.dtype[Any]:
        """Floating dtype of the positions."""
        return self._theta.dtype

    def effective_neurons(self) -> NDArray[np.floating]:
        r"""Effective neurons cᵢ = aᵢ (wᵢ, bᵢ).

        .. math:: c_i = a_i\,(w_i, b_i) \in \mathbb{R}^{d+1}

        For ReLU, φ(θ, ·) depends on θ only through cᵢ up to positive rescaling of
        (wᵢ, bᵢ) against aᵢ; the notebook plots the first d coordinates a·w.

        Returns
        -------
        ndarray, shape (..., m, d+1)
        """
        with np.errstate(over="ignore", invalid="ignore"):
            c = self._theta[..., :1] * self._theta[..., 1:]
        if not np.all(np.isfinite(c)):
            raise ValueError(
                "effective neurons a·(w, b) overflow float64: theta holds values up to "
                f"{np.max(np.abs(self._theta)):.3g}"
            )
        return c

    # -- constructors ------------------------------------------------------------
    def with_theta(self, theta: ArrayLike) -> ParticleMeasure:
        r"""Return the measure with the same masses at new positions ``theta``.

        .. math:: \mu' = \sum_i p_i\,\delta_{\theta'_i}

        Parameters
        ----------
        theta : array_like, shape (..., m, d'+2)
            New positions; same number m of particles (the masses must broadcast).

        Returns
        -------
        ParticleMeasure

        Raises
        ------
        ValueError
            If ``theta`` does not hold m particles.
        """
        th = as_float_array("theta", theta, min_ndim=2)
        if th.shape[-2] != self.m:
            raise ValueError(
                f"theta must hold the measure's m={self.m} particles (shape (..., {self.m}, "
                f"d+2)); got shape {th.shape}"
            )
        return ParticleMeasure(th, self._masses)

    def replica(self, index: int | tuple[int, ...]) -> ParticleMeasure:
        r"""Return one measure of the ensemble.

        .. math:: \mu^{(r)} = \sum_i p^{(r)}_i\,\delta_{\theta^{(r)}_i}

        Parameters
        ----------
        index : int or tuple of int
            Index into :attr:`batch_shape`.

        Returns
        -------
        ParticleMeasure
            Positions ``theta[index]``, masses ``masses[index]``.

        Raises
        ------
        ValueError
            If :attr:`batch_shape` is ``()``, or ``index`` has more entries than
            :attr:`batch_shape` or one out of its range.
        TypeError
            If an entry of ``index`` is not an integer.
        """
        idx = check_index(index, self.batch_shape)
        return ParticleMeasure(self._theta[idx], self._masses[idx])

    @classmethod
    def stack(cls, measures: Sequence[ParticleMeasure]) -> ParticleMeasure:
        r"""Stack measures of equal shape into an ensemble along a new leading axis.

        .. math:: (\mu^{(1)}, \dots, \mu^{(R)}) \mapsto \theta \in \mathbb{R}^{R\times m\times(d+2)}

        Parameters
        ----------
        measures : sequence of ParticleMeasure
            R ≥ 1 measures with positions of one shape ``(..., m, d+2)``.

        Returns
        -------
        ParticleMeasure
            Positions of shape ``(R, ..., m, d+2)``; ``stack(ms).replica(r)`` is ``ms[r]``.

        Raises
        ------
        ValueError
            If ``measures`` is empty or the shapes differ.
        TypeError
            If an element is not a :class:`ParticleMeasure`.
        """
        if isinstance(measures, str | bytes | ParticleMeasure) or not isinstance(
            measures, Sequence
        ):
            raise TypeError(
                f"measures must be a sequence of ParticleMeasure; got {describe(measures)}"
            )
        if len(measures) == 0:
            raise ValueError("measures must be a non-empty sequence; got an empty one")
        for i, mu in enumerate(measures):
            if not isinstance(mu, ParticleMeasure):
                raise TypeError(f"measures[{i}] must be a ParticleMeasure; got {describe(mu)}")
            if mu.theta.shape != measures[0].theta.shape:
                raise ValueError(
                    f"measures must share one shape; measures[0] has {measures[0].theta.shape}, "
                    f"measures[{i}] has {mu.theta.shape}"
                )
        theta = np.stack([mu.theta for mu in measures])
        return cls(theta, np.stack([mu.masses for mu in measures]))

    def __repr__(self) -> str:
        ens = f", batch_shape={self.batch_shape}" if self.batch_shape else ""
        return f"ParticleMeasure(m={self.m}, d={self.d}{ens}, dtype={self.dtype})"


# -- randomness -------------------------------------------------------------------
def spawn_rngs(rng: RNGLike, n: int) -> list[np.random.Generator]:
    """Return ``n`` independent generators spawned from ``rng``.

    Parameters
    ----------
    rng : int, Generator, SeedSequence or None
        Anything :func:`numpy.random.default_rng` accepts.
    n : int
        Number of streams.

    Returns
    -------
    list of numpy.random.Generator
        Replica ``r`` of an ensemble built with ``rng`` uses stream ``r``, so it can be
        replayed alone with ``spawn_rngs(rng, n)[r]``.

    Notes
    -----
    The streams are the children ``SeedSequence.spawn(n)`` of the seed sequence of
    ``rng``.  With an integer seed this is reproducible call after call.  A
    ``Generator`` or ``SeedSequence`` object remembers how many children it has
    spawned, so a second call with the same object yields new, independent streams
    (as numpy does); to replay, pass the integer seed again.
    """
    n = check_int("n", n)
    if isinstance(rng, np.random.SeedSequence):
        return [np.random.default_rng(s) for s in rng.spawn(n)]
    return list(as_generator(rng).spawn(n))


def _draw(
    from_normals: Callable[[NDArray[np.floating], float], NDArray[np.floating]],
    name: str,
    value: float,
    m: int,
    d: int,
    runs: int | None,
    rng: RNGLike,
) -> ParticleMeasure:
    """Draw a law: validate its scale parameter, map standard normals (m, d+2) per run.

    ``name`` and ``value`` are the law's positive scale parameter (``"std"``,
    ``"radius"`` or ``"scale"``), passed to ``from_normals(z, value)``; they also name
    the parameter in the error raised when the positions overflow float64.
    """
    value = check_positive(name, value)
    m = check_int("m", m)
    d = check_int("d", d)
    with np.errstate(over="ignore", invalid="ignore"):
        if runs is None:
            theta = from_normals(as_generator(rng).standard_normal((m, d + 2)), value)
        else:
            gens = spawn_rngs(rng, check_int("runs", runs))
            theta = np.stack([from_normals(g.standard_normal((m, d + 2)), value) for g in gens])
    if not np.all(np.isfinite(theta)):
        raise ValueError(f"{name}={value!r} is too large: the positions overflow float64")
    return ParticleMeasure(theta)


def _normalise(v: NDArray[np.floating], radius: float) -> NDArray[np.floating]:
    return radius * v / np.linalg.norm(v, axis=-1, keepdims=True)


def _notebook_norm(wb: NDArray[np.floating]) -> NDArray[np.floating]:
    """‖(b, w)‖ per row of ``wb = [w, b]`` (shape (..., d+1) -> (..., 1)), bitwise as the notebook.

    The notebook computes ``np.linalg.norm(np.concatenate([[b], w]), 2)``, i.e.
    ``sqrt(dot(v, v))`` with v = (b, w).  A stacked ``v @ v`` runs the same dot kernel,
    so the result is identical bit for bit while staying vectorised.
    """
    v = np.concatenate([wb[..., -1:], wb[..., :-1]], axis=-1)
    return np.sqrt(v[..., None, :] @ v[..., :, None])[..., 0]


def gaussian_from_normals(z: NDArray[np.floating], std: float) -> NDArray[np.floating]:
    r"""Map standard normals to the i.i.d. Gaussian law.

    .. math:: \theta = \mathrm{std}\cdot z

    Parameters
    ----------
    z : ndarray, shape (..., m, d+2)
        Standard normals.
    std : float
        Standard deviation.

    Returns
    -------
    ndarray, shape (..., m, d+2)
        ``std * z``.
    """
    return std * z


def sphere_from_normals(z: NDArray[np.floating], radius: float) -> NDArray[np.floating]:
    r"""Map standard normals to the uniform law on the sphere r·S^{d+1} of ℝ^{d+2}.

    .. math:: \theta = r\, z / \|z\|

    Parameters
    ----------
    z : ndarray, shape (..., m, d+2)
        Standard normals (rows with ‖z‖ > 0).
    radius : float
        Radius r.

    Returns
    -------
    ndarray, shape (..., m, d+2)
        Rows of norm r.
    """
    return _normalise(z, radius)


def notebook_sphere_from_normals(z: NDArray[np.floating], radius: float) -> NDArray[np.floating]:
    r"""Map rows ``[a, w, b]`` of standard normals to the notebook's law.

    .. math::
        a = z_a, \qquad (w, b) = R\,(z_w, z_b)/\|(z_w, z_b)\|

    ``a`` is kept; ``(w, b)`` is rescaled onto the sphere of radius R of ℝ^{d+1}.
    The notebook draws each neuron as ``a, w, b = normal(), normal(size=d), normal()``
    (in that order), which is exactly one row of ``z``: with
    ``rs = np.random.RandomState(18)``, ``notebook_sphere_from_normals(rs.normal(size=(4,
    d + 2)), 1.0)`` is the notebook's teacher and the next ``rs.normal(size=(20, d + 2))``
    mapped with R = 0.05 is its student.

    The arithmetic replays the notebook's bit for bit: ``Neuron()`` divides (w, b) by
    ‖(b, w)‖; for R ≠ 1, ``Network.small_sphere(R)`` then divides the unit vector by
    ``1/R * ‖(b, w)‖`` again.

    Parameters
    ----------
    z : ndarray, shape (..., m, d+2)
        Standard normals, rows ``[a, w_1 … w_d, b]``.
    radius : float
        Radius R of the (w, b) sphere.

    Returns
    -------
    ndarray, shape (..., m, d+2)
        Rows ``[a, w, b]`` with a = z_a and ‖(w, b)‖ = R (float64 for integer ``z``).
    """
    out = np.array(z, copy=True)
    if out.dtype.kind != "f":
        out = out.astype(np.float64)
    out[..., 1:] = out[..., 1:] / _notebook_norm(out[..., 1:])
    if radius != 1.0:
        out[..., 1:] = out[..., 1:] / (1.0 / radius * _notebook_norm(out[..., 1:]))
    return out


def balanced_from_normals(z: NDArray[np.floating], scale: float) -> NDArray[np.floating]:
    r"""Map standard normals to a balanced law: (w, b) uniform on scale·S^d, |a| = scale.

    .. math:: a = s\,\operatorname{sign}(z_a), \qquad (w, b) = s\,(z_w, z_b)/\|(z_w, z_b)\|

    Parameters
    ----------
    z : ndarray, shape (..., m, d+2)
        Standard normals.
    scale : float
        Common norm s of a and (w, b).

    Returns
    -------
    ndarray, shape (..., m, d+2)
        Rows with |a| = ‖(w, b)‖ = s.
    """
    out = z.copy()
    out[..., 1:] = _normalise(z[..., 1:], scale)
    out[..., 0] = scale * np.where(z[..., 0] >= 0, 1.0, -1.0)
    return out


def gaussian(
    m: int, d: int, *, std: float = 1.0, runs: int | None = None, rng: RNGLike = None
) -> ParticleMeasure:
    r"""Draw i.i.d. Gaussian particles θᵢ ~ N(0, std² I_{d+2}), uniform masses.

    .. math:: \theta_i \sim N(0, \mathrm{std}^2 I_{d+2}), \qquad p_i = 1/m

    Parameters
    ----------
    m, d : int
        Width and input dimension.
    std : float, default 1.0
        Standard deviation of every coordinate.
    runs : int, optional
        If given, an ensemble of ``runs`` independent measures (batch shape ``(runs,)``),
        replica r drawn from ``spawn_rngs(rng, runs)[r]``.
    rng : int, Generator or SeedSequence, optional
        Source of randomness.

    Returns
    -------
    ParticleMeasure
        Positions of shape ``(m, d+2)`` or ``(runs, m, d+2)``.
    """
    return _draw(gaussian_from_normals, "std", std, m, d, runs, rng)


def sphere(
    m: int, d: int, *, radius: float = 1.0, runs: int | None = None, rng: RNGLike = None
) -> ParticleMeasure:
    r"""Draw particles uniform on the full sphere of radius r in ℝ^{d+2}.

    .. math:: \theta_i = r\, z_i / \|z_i\|, \qquad z_i \sim N(0, I_{d+2})

    Parameters
    ----------
    m, d : int
        Width and input dimension.
    radius : float, default 1.0
        Radius r > 0.
    runs, rng
        Ensemble size and source of randomness, as in :func:`gaussian`.

    Returns
    -------
    ParticleMeasure
        Positions on the sphere of radius r, uniform masses.
    """
    return _draw(sphere_from_normals, "radius", radius, m, d, runs, rng)


def notebook_sphere(
    m: int, d: int, *, radius: float = 0.05, runs: int | None = None, rng: RNGLike = None
) -> ParticleMeasure:
    r"""Draw the notebook's student law: a ~ N(0, 1), (w, b) uniform on R·S^d.

    .. math::
        a_i \sim N(0, 1), \qquad (w_i, b_i) = R\, g_i/\|g_i\|,\quad g_i \sim N(0, I_{d+1})

    Its support is the cylinder ℝ × R·S^d, which does not strictly separate 0 from ∞
    in ℝ^{d+2} (see :mod:`meanfield.separation`).

    Parameters
    ----------
    m, d : int
        Width and input dimension.
    radius : float, default 0.05
        Radius R > 0 of the (w, b) sphere (the notebook's ``small_sphere(0.05)``).
    runs, rng
        Ensemble size and source of randomness, as in :func:`gaussian`.

    Returns
    -------
    ParticleMeasure
        Positions with ‖(wᵢ, bᵢ)‖ = R, uniform masses.
    """
    return _draw(notebook_sphere_from_normals, "radius", radius, m, d, runs, rng)


def balanced(
    m: int, d: int, *, scale: float = 1.0, runs: int | None = None, rng: RNGLike = None
) -> ParticleMeasure:
    r"""Draw a balanced law: |aᵢ| = ‖(wᵢ, bᵢ)‖ = scale, random sign of a.

    .. math:: a_i^2 - \|w_i\|^2 - b_i^2 = 0

    Balancedness is conserved by the ReLU gradient flow (Du, Hu & Lee 2018).

    Parameters
    ----------
    m, d : int
        Width and input dimension.
    scale : float, default 1.0
        Common norm of a and (w, b).
    runs, rng
        Ensemble size and source of randomness, as in :func:`gaussian`.

    Returns
    -------
    ParticleMeasure
        Positions with |aᵢ| = ‖(wᵢ, bᵢ)‖ = scale, uniform masses.
    """
    return _draw(balanced_from_normals, "scale", scale, m, d, runs, rng)


def notebook_teacher(m0: int = 4, d: int = 2, *, rng: RNGLike = None) -> ParticleMeasure:
    r"""Draw the notebook's teacher: m₀ neurons, a ~ N(0, 1), (w, b) on the unit sphere.

    .. math::
        \nu = \frac{1}{m_0}\sum_{j=1}^{m_0} \delta_{\theta^\star_j}, \qquad
        a^\star_j \sim N(0, 1), \quad (w^\star_j, b^\star_j) \in S^d \subset \mathbb{R}^{d+1}

    Same law as :func:`notebook_sphere` with R = 1 (the notebook's ``Neuron()``), with
    uniform masses 1/m₀ so that f_ν is the mean over teacher neurons.

    Parameters
    ----------
    m0 : int, default 4
        Number of teacher neurons.
    d : int, default 2
        Input dimension.
    rng : int, Generator or SeedSequence, optional
        Source of randomness.

    Returns
    -------
    ParticleMeasure
    """
    m0 = check_int("m0", m0)
    return notebook_sphere(m0, d, radius=1.0, rng=rng)

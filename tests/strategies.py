"""Hypothesis strategies and numerical helpers shared by the foundation tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

ACTIVATION_NAMES = ("relu", "sigmoid", "tanh", "erf")
SMOOTH_ACTIVATIONS = ("sigmoid", "tanh", "erf")

activations = st.sampled_from(ACTIVATION_NAMES)
smooth_activations = st.sampled_from(SMOOTH_ACTIVATIONS)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
dims = st.integers(min_value=1, max_value=4)
widths = st.integers(min_value=1, max_value=6)
sample_sizes = st.integers(min_value=1, max_value=8)


def bounded_floats(max_abs: float = 3.0) -> st.SearchStrategy[float]:
    """Finite floats in [-max_abs, max_abs] (zeros and boundaries included)."""
    return st.floats(-max_abs, max_abs, allow_nan=False, allow_infinity=False, width=64)


def float_arrays(shape: tuple[int, ...], max_abs: float = 3.0) -> st.SearchStrategy[np.ndarray]:
    """Float64 arrays of the given shape with entries in [-max_abs, max_abs]."""
    return hnp.arrays(np.float64, shape, elements=bounded_floats(max_abs))


@st.composite
def theta_and_x(
    draw: st.DrawFn, *, max_abs: float = 3.0, batch: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Particles ``(..., m, d+2)`` and inputs ``(n, d)`` with bounded entries."""
    d, m, n = draw(dims), draw(widths), draw(sample_sizes)
    lead = (draw(st.integers(1, 3)),) if batch else ()
    theta = draw(float_arrays((*lead, m, d + 2), max_abs))
    x = draw(float_arrays((n, d), max_abs))
    return theta, x


@st.composite
def mass_vectors(draw: st.DrawFn, m: int) -> np.ndarray:
    """Positive masses of length m summing to 1."""
    raw = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=m, max_size=m)))
    return raw / raw.sum()


@dataclass(frozen=True)
class Problem:
    """A random student/teacher problem on a fixed sample, drawn from one seed."""

    theta: np.ndarray  # (*batch, m, d+2)
    masses: np.ndarray  # (*batch, m)
    teacher: np.ndarray  # (*batch, m0, d+2)
    x: np.ndarray  # (n, d)
    rng: np.random.Generator  # continues the stream, e.g. for directions


@st.composite
def problems(
    draw: st.DrawFn, *, runs: int | None = None, max_n: int = 12, scale: float | None = None
) -> Problem:
    """A continuous random problem: Gaussian particles, teacher and inputs.

    The sizes and the scale are drawn by Hypothesis; the values by numpy from a drawn
    seed, so that they are in general position (no pre-activation exactly at a ReLU kink).
    """
    d, m = draw(dims), draw(widths)
    m0 = draw(st.integers(1, 4))
    n = draw(st.integers(1, max_n))
    s = draw(st.sampled_from([0.3, 1.0, 2.0])) if scale is None else scale
    rng = np.random.default_rng(draw(seeds))
    lead = () if runs is None else (runs,)
    theta = s * rng.standard_normal((*lead, m, d + 2))
    raw = rng.uniform(0.1, 1.0, (*lead, m))
    masses = raw / raw.sum(axis=-1, keepdims=True)
    teacher = rng.standard_normal((*lead, m0, d + 2))
    x = rng.standard_normal((n, d))
    return Problem(theta, masses, teacher, x, rng)


def unit_direction(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A random direction of unit Frobenius norm."""
    v = rng.standard_normal(shape)
    return v / np.linalg.norm(v)


def kink_free_step(
    theta: np.ndarray, x: np.ndarray, delta: np.ndarray, *, cap: float = 1e-4, floor: float = 1e-7
) -> float:
    """A finite-difference step that keeps every pre-activation away from 0 (ReLU kink).

    Along θ + tδ the pre-activations move as u + t(δ_w·x + δ_b); the step is half the
    smallest distance to a sign change, capped at ``cap``.  Examples with a
    pre-activation too close to the kink are rejected (``assume``).
    """
    u = x @ np.swapaxes(theta[..., 1:-1], -1, -2) + theta[..., None, :, -1]
    du = x @ np.swapaxes(delta[..., 1:-1], -1, -2) + delta[..., None, :, -1]
    rate = np.abs(du)
    with np.errstate(divide="ignore"):
        dist = np.where(rate > 0, np.abs(u) / rate, np.inf)
    h = float(min(cap, 0.5 * np.min(dist)))
    assume(h > floor)
    return h

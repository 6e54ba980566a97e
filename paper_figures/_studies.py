r"""Shared cells and helpers of the notebook's three questions (figures 4, 5 and 6).

Setting (the notebook's problem, generalised).  Teacher: a ReLU network ν with m₀
neurons in d = 2, (w⋆, b⋆) on the unit sphere S² of ℝ³ (the notebook's law, or a
controlled configuration, see :func:`angle_teacher` and :func:`bias_teacher`).  Student:
m particles drawn from the notebook's law (a ~ N(0, 1), (w, b) uniform on R·S²), or
from the fully small law θ uniform on R·S³ ⊂ ℝ⁴ (a small too; Chizat & Bach 2018,
Thm 3.3).  Dynamics: online SGD, batch B = 20, fresh Gaussian inputs at every step,
raw step τ = 0.5, i.e. η = τ/m in mean-field time (:func:`meanfield.sgd.step_from_tau`),
run for a mean-field time ``t_end``; or the exact Wasserstein gradient flow
(:func:`meanfield.flow.integrate`) as the noiseless reference.  The exact population
risk F(μ_t) (:class:`~meanfield.population.GaussianPopulationEstimator`, no sampling
noise) is recorded at log-spaced snapshots.

Every cell runs all its seeds as ONE ensemble; seed s fixes its run alone (its
teacher, its initial particles and its sample stream come from the three children
of ``SeedSequence(s)``), so a row does not depend on the other seeds of its cell and
the same seed gives paired runs across grid points (same teacher, same initial
directions, only the varied parameter changes).

Metrics of a run (F(0) = ½E[f_ν(x)²] is the risk of the zero network; the teacher is
realisable, so F is the excess risk):

.. math::

    t_\varepsilon = \min\{t : F(\mu_t) \le \varepsilon\},\quad
    \varepsilon = \varepsilon_{\rm rel}\,F(0);\qquad
    t_{\rm esc} = \min\{t : F(\mu_t) \le (1 - \delta)\,F(\mu_0)\};\qquad
    \Delta = \frac{\|\theta(T) - \theta(0)\|}{\|\theta(0)\|}

(norms over all particles, uniform masses), and Δ_wb, the same for the (w, b) part only
(for the notebook's law a ~ N(0, 1) dominates ‖θ(0)‖); ε_rel = 10⁻² and δ = 0.1 by
default; first crossings are interpolated linearly in (log t, log F) between snapshots.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield.diagnostics import relative_displacement
from meanfield.flow import integrate
from meanfield.measure import (
    ParticleMeasure,
    notebook_sphere_from_normals,
    notebook_teacher,
    sphere_from_normals,
)
from meanfield.population import GaussianPopulationEstimator
from meanfield.sgd import OnlineStream, sgd, step_from_tau
from meanfield.sweep import Study, StudyTable, run_study

Array = NDArray[np.float64]

#: Defaults of every cell (a cell's ``params`` override them).
DEFAULTS: dict[str, Any] = {
    "d": 2,
    "m": 20,
    "m0": 4,
    "law": "notebook",
    "radius": 0.05,
    "tau": 0.5,
    "batch": 20,
    "t_end": 500.0,
    "n_snapshots": 48,
    "eps_rel": 1e-2,
    "escape_drop": 0.1,
    "teacher": "notebook",
    "rtol": 1e-4,
    "atol": 1e-7,
}
#: SGD backend ("auto": the compiled kernels when numba works, else numpy).
SGD_BACKEND = "auto"
#: Hash of this file: part of every study's parameters (``fixed["code"]``), so that a
#: change here invalidates the cached cells instead of silently reusing them.
CODE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
#: Columns of a row that hold curves (kept in the cache, left out of the tidy CSV).
CURVE_COLUMNS = ("curve_t", "curve_rel")


# -- seeds -------------------------------------------------------------------------------
def seed_streams(seed: int) -> tuple[np.random.SeedSequence, ...]:
    """The three independent streams of one run: (initialisation, samples, teacher)."""
    return tuple(np.random.SeedSequence(int(seed)).spawn(3))


class SeededOnlineStream(OnlineStream):
    """Online stream whose ensemble member r draws from its own seed's sample stream.

    :func:`meanfield.sgd.sgd` hands member r a generator spawned from the ensemble's
    ``rng``; here member r ignores it and uses ``default_rng(sample_seeds[r])``, which is
    what the same run made alone with ``rng=sample_seeds[r]`` uses.
    """

    def __init__(self, target: Any, batch_size: int, *, sample_seeds: Sequence[Any]) -> None:
        super().__init__(target, batch_size)
        self.sample_seeds = list(sample_seeds)

    def blocks(self, rng: Any, replica: int | None) -> Any:
        """Blocks drawn with the member's own generator (``rng`` for a single run)."""
        gen = rng if replica is None else np.random.default_rng(self.sample_seeds[replica])
        return super().blocks(gen, replica)


# -- teachers --------------------------------------------------------------------------
def spread_directions(n: int, dim: int, rng: np.random.Generator, iters: int = 300) -> Array:
    r"""n well-spread unit vectors of ℝ^dim: a random start relaxed by Coulomb repulsion.

    .. math:: \min_{u_i \in S^{\rm dim-1}} \sum_{i<j} \|u_i - u_j\|^{-1}

    (projected gradient steps whose largest move shrinks from 0.3 rad geometrically);
    the random start makes the configuration a random rotation of a near-optimal
    Thomson configuration.
    """
    u = rng.standard_normal((n, dim))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    if n == 1:
        return u
    for k in range(iters):
        diff = u[:, None, :] - u[None, :, :]
        dist = np.linalg.norm(diff, axis=-1) + np.eye(n)
        force = np.sum(diff / dist[..., None] ** 3 * (1 - np.eye(n))[..., None], axis=1)
        force -= np.sum(force * u, axis=1, keepdims=True) * u
        step = 0.3 * 0.985**k  # the largest move, in radians, shrinks geometrically
        u = u + step * force / max(float(np.max(np.linalg.norm(force, axis=1))), 1e-12)
        u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u


def min_angle_deg(units: ArrayLike) -> float:
    """Smallest pairwise angle (degrees) between the rows of ``units`` (inf for one row)."""
    u = np.asarray(units, dtype=np.float64)
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    if u.shape[0] < 2:
        return math.inf
    g = np.clip(u @ u.T, -1.0, 1.0)
    iu = np.triu_indices(u.shape[0], 1)
    return float(np.degrees(np.min(np.arccos(g[iu]))))


def _signs(m0: int, signs: str, pair: tuple[int, int] | None = None) -> Array:
    if signs == "positive":
        return np.ones(m0)
    if signs != "mixed":
        raise ValueError(f"signs must be 'positive' or 'mixed'; got {signs!r}")
    a = np.where(np.arange(m0) % 2 == 0, 1.0, -1.0)
    if pair is not None:  # the closest pair gets opposite signs, the rest alternate
        order = [pair[0], pair[1], *[k for k in range(m0) if k not in pair]]
        a = np.empty(m0)
        a[order] = np.where(np.arange(m0) % 2 == 0, 1.0, -1.0)
    return a


def angle_teacher(m0: int, min_angle: float, signs: str, rng: np.random.Generator) -> Array:
    r"""A teacher whose smallest angle between neurons is ``min_angle`` degrees.

    The directions uᵢ = (wᵢ, bᵢ) ∈ S² are a relaxed random Thomson configuration
    (:func:`spread_directions`); the closest pair (i, j) is then pulled together along
    its geodesic until ∠(uᵢ, uⱼ) = α.  Every other angle stays ≥ δ − α ≥ α, where δ is
    the spread configuration's smallest angle, as long as α ≤ δ/2 (δ ≈ 72° for m₀ = 8).
    Output weights |a⋆ⱼ| = 1: all +1, or (``"mixed"``) the closest pair of opposite signs
    and the others alternating.

    .. math:: u_j \leftarrow \cos\alpha\,u_i + \sin\alpha\,
        \frac{u_j - (u_i\cdot u_j)u_i}{\|u_j - (u_i\cdot u_j)u_i\|}

    Returns
    -------
    ndarray, shape (m0, 4)
        Rows ``[a, w1, w2, b]``.
    """
    u = spread_directions(m0, 3, rng)
    pair = None
    if m0 >= 2:
        g = u @ u.T - 3.0 * np.eye(m0)
        i, j = np.unravel_index(int(np.argmax(g)), g.shape)
        pair = (int(i), int(j))
        v = u[j] - (u[i] @ u[j]) * u[i]
        nv = np.linalg.norm(v)
        if nv < 1e-9:  # antipodal or equal: any orthogonal direction
            v = np.cross(u[i], rng.standard_normal(3))
            nv = np.linalg.norm(v)
        alpha = math.radians(min_angle)
        u[j] = math.cos(alpha) * u[i] + math.sin(alpha) * v / nv
    a = _signs(m0, signs, pair)
    return np.column_stack([a, u])


def bias_teacher(m0: int, bias: float, signs: str, rng: np.random.Generator) -> Array:
    r"""A teacher with |bⱼ| = ``bias`` on the unit sphere: evenly spread w, random bias signs.

    .. math:: w_j = \sqrt{1 - s^2}\,(\cos\phi_j, \sin\phi_j),\quad
        \phi_j = \phi_0 + 2\pi j/m_0,\quad b_j = \pm s

    (φ₀ uniform, bias signs ±1 with probability ½).  Neuron j's kink is the line
    w_j·x + b_j = 0 at distance s/√(1 − s²) from the origin.  Output weights: all +1, or
    alternating ±1 around the circle (``"mixed"``).

    Returns
    -------
    ndarray, shape (m0, 4)
    """
    if not 0.0 <= bias < 1.0:
        raise ValueError(f"bias must lie in [0, 1); got {bias!r}")
    phi = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(m0) / m0
    sgn = np.where(rng.random(m0) < 0.5, -1.0, 1.0)
    r = math.sqrt(1.0 - bias**2)
    return np.column_stack([_signs(m0, signs), r * np.cos(phi), r * np.sin(phi), bias * sgn])


def make_teacher(p: Mapping[str, Any], seed: int) -> ParticleMeasure:
    """The teacher of one run: ``p["teacher"]`` in {"notebook", "angle", "bias"}.

    Signed zeros are normalised (−0.0 → +0.0): a bias of −0.0 makes the closed-form
    ReLU kernel of :mod:`meanfield.kernels` wrong for nearly parallel weights.
    """
    gen = np.random.default_rng(seed_streams(seed)[2])
    kind = p["teacher"]
    if kind == "notebook":
        theta = notebook_teacher(int(p["m0"]), int(p["d"]), rng=gen).theta
    elif int(p["d"]) != 2:
        raise ValueError(f"controlled teachers are in d = 2; got d={p['d']}")
    elif kind == "angle":
        theta = angle_teacher(int(p["m0"]), float(p["min_angle"]), p["signs"], gen)
    elif kind == "bias":
        theta = bias_teacher(int(p["m0"]), float(p["bias"]), p["signs"], gen)
    else:
        raise ValueError(f"teacher must be 'notebook', 'angle' or 'bias'; got {kind!r}")
    return ParticleMeasure(theta + 0.0)


def make_student(p: Mapping[str, Any], seed: int) -> ParticleMeasure:
    """The initial student of one run (law "notebook": a ~ N(0,1), (w,b) ∈ R·S^d; "sphere")."""
    z = np.random.default_rng(seed_streams(seed)[0]).standard_normal((int(p["m"]), int(p["d"]) + 2))
    r = float(p["radius"])
    if p["law"] == "notebook":
        return ParticleMeasure(notebook_sphere_from_normals(z, r))
    if p["law"] == "sphere":
        return ParticleMeasure(sphere_from_normals(z, r))
    raise ValueError(f"law must be 'notebook' or 'sphere'; got {p['law']!r}")


def zero_risk(estimator: GaussianPopulationEstimator, batch: int, d: int) -> Array:
    r"""F(0) = ½ E[f_ν(x)²], the risk of the zero network, per ensemble member."""
    theta = np.zeros((batch, 1, d + 2))
    theta[..., -1] = 1.0  # a = 0: the neuron outputs nothing
    return np.broadcast_to(estimator.risk(ParticleMeasure(theta)), (batch,)).copy()


# -- metrics ---------------------------------------------------------------------------
def first_crossing(times: ArrayLike, values: ArrayLike, level: ArrayLike) -> Array:
    r"""First time each curve falls to ``level`` or below, interpolated; NaN if never.

    Between the snapshots k−1 and k that bracket the crossing, log t is interpolated
    linearly in log F (linearly in t on the first segment when t_{k−1} = 0).

    Parameters
    ----------
    times : array_like, shape (T,)
    values : array_like, shape (T,) or (T, R)
    level : float or array_like, shape (R,)

    Returns
    -------
    ndarray, shape () or (R,)
    """
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    squeeze = v.ndim == 1
    v = v.reshape(v.shape[0], -1)
    lv = np.broadcast_to(np.asarray(level, dtype=np.float64), v.shape[1:])
    out = np.full(v.shape[1], np.nan)
    for r in range(v.shape[1]):
        below = np.nonzero(v[:, r] <= lv[r])[0]
        if below.size == 0:
            continue
        k = int(below[0])
        if k == 0:
            out[r] = t[0]
            continue
        v0, v1, t0, t1 = v[k - 1, r], v[k, r], t[k - 1], t[k]
        if t0 > 0 and v1 > 0 and lv[r] > 0 and v0 > v1:
            frac = (math.log(v0) - math.log(lv[r])) / (math.log(v0) - math.log(v1))
            out[r] = math.exp(math.log(t0) + frac * (math.log(t1) - math.log(t0)))
        else:
            frac = (v0 - lv[r]) / (v0 - v1) if v0 > v1 else 1.0
            out[r] = t0 + frac * (t1 - t0)
    return out[0] if squeeze else out


def escape_time(times: ArrayLike, risks: ArrayLike, drop: float = 0.1) -> Array:
    r"""First time the risk has dropped by ``drop`` from its initial value.

    .. math:: t_{\rm esc} = \min\{t : F(\mu_t) \le (1 - \delta) F(\mu_0)\}
    """
    v = np.asarray(risks, dtype=np.float64)
    return first_crossing(times, v, (1.0 - drop) * v[0])


def run_rows(
    times: Array,
    risks: Array,
    theta0: Array,
    theta_end: Array,
    f_zero: Array,
    seeds: Sequence[int],
    p: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One row of metrics per run of an ensemble trajectory (see the module docstring)."""
    risks = np.asarray(risks).reshape(len(times), len(seeds))
    if np.any(risks < -1e-9 * f_zero) or not np.all(np.isfinite(risks)):
        bad = [int(s) for s, ok in zip(seeds, np.all(risks >= -1e-9 * f_zero, axis=0),
                                       strict=True) if not ok]
        raise RuntimeError(f"the exact risk is negative or non-finite for seeds {bad} at "
                           f"{dict(p)}: a kernel evaluation is wrong")
    eps = float(p["eps_rel"]) * f_zero
    t_eps = first_crossing(times, risks, eps)
    t_esc = escape_time(times, risks, float(p["escape_drop"]))
    _, disp = relative_displacement(theta0, theta_end)
    _, disp_wb = relative_displacement(theta0[..., 1:], theta_end[..., 1:])
    rows = []
    for r, s in enumerate(seeds):
        rows.append({
            "seed": int(s),
            "f_zero": float(f_zero[r]),
            "risk0": float(risks[0, r]),
            "final_risk": float(risks[-1, r]),
            "final_rel": float(risks[-1, r] / f_zero[r]),
            "t_eps": float(t_eps[r]),
            "success": bool(np.isfinite(t_eps[r])),
            "escape": float(t_esc[r]),
            "displacement": float(np.reshape(disp, -1)[r]),
            "displacement_wb": float(np.reshape(disp_wb, -1)[r]),
            "curve_t": [float(x) for x in times],
            "curve_rel": [float(x) for x in risks[:, r] / f_zero[r]],
        })
    return rows


# -- cells -----------------------------------------------------------------------------
def _ensemble(params: Mapping[str, Any], seeds: Sequence[int]) -> tuple[
    dict[str, Any], ParticleMeasure, ParticleMeasure, GaussianPopulationEstimator, Array
]:
    p = {**DEFAULTS, **params}
    teacher = ParticleMeasure.stack([make_teacher(p, s) for s in seeds])
    student = ParticleMeasure.stack([make_student(p, s) for s in seeds])
    est = GaussianPopulationEstimator(teacher, activation="relu")
    return p, teacher, student, est, zero_risk(est, len(seeds), int(p["d"]))


def sgd_cell(params: dict[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """Online SGD (η = τ/m, batch B) of every seed as one ensemble; one row per seed."""
    p, teacher, student, est, f0 = _ensemble(params, seeds)
    eta = step_from_tau(float(p["tau"]), int(p["m"]))
    n_steps = round(float(p["t_end"]) / eta)
    stream = SeededOnlineStream(teacher, int(p["batch"]),
                                sample_seeds=[seed_streams(s)[1] for s in seeds])
    traj = sgd(student, stream, step=eta, n_steps=n_steps, n_snapshots=int(p["n_snapshots"]),
               risk=est, progress=False, backend=SGD_BACKEND)
    return run_rows(traj.times, traj.risks, traj.thetas[0], traj.thetas[-1], f0, seeds, p)


def flow_cell(params: dict[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """The exact Wasserstein gradient flow (RK45, exact velocity) from the same start."""
    p, _, student, est, f0 = _ensemble(params, seeds)
    traj = integrate(student, est, float(p["t_end"]), n_snapshots=int(p["n_snapshots"]),
                     rtol=float(p["rtol"]), atol=float(p["atol"]), progress=False)
    return run_rows(traj.times, traj.risks, traj.thetas[0], traj.thetas[-1], f0, seeds, p)


# -- running ---------------------------------------------------------------------------
def _noop() -> None:
    return None


def run_studies(studies: Sequence[Study], cache_dir: Path) -> list[StudyTable]:
    """Run studies concurrently on ONE process pool over every core; tables in order.

    Each study goes through :func:`meanfield.sweep.run_study` (cache, resume, CSV) with
    the shared pool as its executor, from its own thread, so the cells of all the
    studies keep every core busy (the first study's cells are queued first: put the
    longest first).  The workers are forked before any thread starts.
    """
    n_cells = sum(len(s.cells()) for s in studies)
    workers = min(os.cpu_count() or 1, n_cells)
    if workers <= 1:
        return [run_study(s, cache_dir, executor="serial") for s in studies]
    with ProcessPoolExecutor(workers) as pool:
        pool.submit(_noop).result()  # fork every worker now, from this thread alone
        with ThreadPoolExecutor(len(studies)) as threads:
            futures = [threads.submit(run_study, s, cache_dir, executor=pool) for s in studies]
            return [f.result() for f in futures]


# -- tables and summaries ----------------------------------------------------------------
def save_tidy_csv(table: StudyTable, path: Path) -> Path:
    """The study table without its curve columns, as CSV."""
    rows = [{k: v for k, v in r.items() if k not in CURVE_COLUMNS} for r in table.rows]
    return StudyTable(rows).save_csv(path)


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN/inf floats replaced by None and tuples by lists (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def column(rows: Iterable[Mapping[str, Any]], name: str) -> Array:
    """A float column of rows."""
    return np.array([float(r[name]) for r in rows], dtype=np.float64)


def quantiles(values: ArrayLike) -> tuple[float, float, float]:
    """(25 %, median, 75 %) of the finite values; NaNs when there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    q = np.quantile(v, [0.25, 0.5, 0.75])
    return float(q[0]), float(q[1]), float(q[2])


def median_curve(rows: Sequence[Mapping[str, Any]]) -> tuple[Array, Array]:
    """Snapshot times and the median relative risk F(μ_t)/F(0) over the rows of one cell."""
    t = np.asarray(rows[0]["curve_t"], dtype=np.float64)
    return t, np.median(np.array([r["curve_rel"] for r in rows], dtype=np.float64), axis=0)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    r"""Wilson score interval of a binomial proportion k/n (95 % for z = 1.96).

    .. math:: \frac{\hat p + z^2/2n \pm z\sqrt{\hat p(1-\hat p)/n + z^2/4n^2}}{1 + z^2/n}
    """
    if n == 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def fit_log_slope(radius: ArrayLike, times: ArrayLike) -> tuple[float, float, float]:
    r"""Least-squares fit t = c·log(1/R) + t₀; returns (c, t₀, R²).

    .. math:: (c, t_0) = \arg\min \sum_k \big(t_k - c\log(1/R_k) - t_0\big)^2
    """
    x = np.log(1.0 / np.asarray(radius, dtype=np.float64))
    y = np.asarray(times, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2:
        return math.nan, math.nan, math.nan
    c, t0 = np.polyfit(x, y, 1)
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - (c * x + t0)) ** 2)) / ss if ss > 0 else math.nan
    return float(c), float(t0), r2

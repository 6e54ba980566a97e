r"""Integrators of the particle Wasserstein gradient flow dθᵢ/dt = v̂(θᵢ).

The Wasserstein gradient flow of the risk, restricted to a particle measure
μ_t = Σᵢ pᵢ δ_{θᵢ(t)}, is the ODE system

.. math::

    \frac{d\theta_i}{dt} = v_{\mu_t}(\theta_i) - \lambda\,\theta_i, \qquad
    v_\mu = -\nabla_\theta J_\mu,

(Chizat & Bach 2018, §2.2; Mei, Montanari & Nguyen 2018), where λ ≥ 0 is an optional
weight decay (the flow of F(μ) + (λ/2)∫‖θ‖² dμ).  The velocity v̂ comes from any
:class:`~meanfield.velocity.VelocityEstimator` — exact population, Monte-Carlo
population or empirical risk — so that gradient descent, SGD and the mean-field limit
live on one time axis.  Two integrators:

* :func:`euler` — explicit Euler, θᵢ ← θᵢ + η v̂(θᵢ), t ← t + η.  With an empirical
  estimator this *is* full-batch gradient descent in mean-field time (the particle
  gradient pᵢ∇J divided by pᵢ).
* :func:`integrate` — the adaptive solvers of :func:`scipy.integrate.solve_ivp`
  (``RK45``, ``RK23``, ``DOP853`` and the stiff ``Radau``, ``BDF``, ``LSODA``) with
  user tolerances, stepped one accepted step at a time so that the run can show
  progress, stop on divergence and record snapshots by dense output.

Both accept ensembles (positions ``(..., m, d+2)``); the whole ensemble is one ODE
system.  Snapshots are taken at requested times, log-spaced by default: escaping a
small initialisation of radius R takes a time of order log(1/R).
"""

from __future__ import annotations

import math
import numbers
import time as _time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import integrate as _sp_integrate
from scipy import sparse

from meanfield._recorder import Recorder, progress_bar, risk_from_estimator
from meanfield._validation import (
    OverflowResultError,
    as_float_array,
    check_int,
    check_positive,
    describe,
)
from meanfield.data import Teacher
from meanfield.measure import ParticleMeasure
from meanfield.trajectory import Trajectory
from meanfield.velocity import (
    SampleEstimator,
    VelocityEstimator,
    first_variation_grad_on_sample,
    residual_on_sample,
)

__all__ = ["METHODS", "euler", "integrate", "record_schedule", "snapshot_times"]

_SOLVERS: dict[str, type[_sp_integrate.OdeSolver]] = {
    "RK45": _sp_integrate.RK45,
    "RK23": _sp_integrate.RK23,
    "DOP853": _sp_integrate.DOP853,
    "Radau": _sp_integrate.Radau,
    "BDF": _sp_integrate.BDF,
    "LSODA": _sp_integrate.LSODA,
}
METHODS = tuple(_SOLVERS)
"""Names accepted by :func:`integrate` (those of :func:`scipy.integrate.solve_ivp`)."""

_IMPLICIT = ("Radau", "BDF")
_MAX_STEPS = 1e15  # beyond this an Euler run could not finish (and int64 step counts overflow)
# An adaptive run whose accepted steps stay below _TINY_STEP·t_end for _TINY_STEPS steps in a
# row cannot finish (from any first step the solvers grow h tenfold per step at most, so a
# start-up takes ~15 steps): it is reported as a divergence instead of running for ever.
_TINY_STEP = 1e-12
_TINY_STEPS = 200

VelocityFunction = Callable[[NDArray[np.floating]], NDArray[np.floating]]


# -- schedules ------------------------------------------------------------------------
def snapshot_times(
    t_end: float,
    n: int = 101,
    *,
    t_first: float | None = None,
    spacing: Literal["log", "linear"] = "log",
) -> NDArray[np.float64]:
    r"""Snapshot times in [0, t_end]: 0, then log-spaced (default) or evenly spaced.

    .. math:: t_0 = 0,\quad t_k = t_{\rm first}\,(t_{\rm end}/t_{\rm first})^{(k-1)/(n-2)},
        \ k = 1, \dots, n-1

    Parameters
    ----------
    t_end : float
        Final time (> 0), always the last entry.
    n : int, default 101
        Number of times (≥ 2).
    t_first : float, optional
        First positive time of the log grid; default ``t_end / 1000``.
    spacing : {"log", "linear"}, default "log"
        Log spacing resolves the slow escape from a small initialisation.

    Returns
    -------
    ndarray, shape (n,)
        Strictly increasing (duplicates removed if ``n`` is large for the range).
    """
    t_end = check_positive("t_end", t_end)
    n = check_int("n", n, minimum=2)
    first = t_end / 1000.0 if t_first is None else check_positive("t_first", t_first)
    if spacing == "linear":
        return np.linspace(0.0, t_end, n)
    if spacing != "log":
        raise ValueError(f"spacing must be 'log' or 'linear'; got {spacing!r}")
    if first > t_end:
        raise ValueError(f"t_first must be <= t_end={t_end}; got {first}")
    grid = np.geomspace(first, t_end, n - 1) if n > 2 else np.array([t_end])
    grid[-1] = t_end
    return np.unique(np.concatenate([[0.0], grid]))


def record_schedule(
    n_steps: int,
    *,
    steps: ArrayLike | None = None,
    every: int | None = None,
    n: int = 101,
) -> NDArray[np.int64]:
    """Step indices at which a stepped run records a snapshot (always 0 and ``n_steps``).

    Exactly one way is used: explicit ``steps``; every ``every`` steps; or (default)
    about ``n`` log-spaced steps.  A run keeps only these snapshots, so its memory
    does not grow with the number of steps.

    Parameters
    ----------
    n_steps : int
        Number of steps of the run.
    steps : array_like of int, optional
        Explicit step indices in [0, n_steps].
    every : int, optional
        Record every ``every`` steps.
    n : int, default 101
        Number of log-spaced snapshots when neither ``steps`` nor ``every`` is given.

    Returns
    -------
    ndarray of int, sorted, unique, from 0 to ``n_steps``.
    """
    n_steps = check_int("n_steps", n_steps, minimum=0)
    if steps is not None and every is not None:
        raise ValueError("give at most one of record steps and record_every; got both")
    if steps is not None:
        s = np.asarray(steps)
        if s.dtype.kind not in "iu" and not (
            s.dtype.kind == "f" and np.all(np.isfinite(s)) and np.all(s == np.round(s))
        ):
            raise TypeError(f"record steps must be integers; got {describe(s)}")
        s = s.astype(np.int64).ravel()
        if s.size and (s.min() < 0 or s.max() > n_steps):
            raise ValueError(
                f"record steps must lie in [0, {n_steps}]; got range [{s.min()}, {s.max()}]"
            )
    elif every is not None:
        every = check_int("record_every", every)
        s = np.arange(0, n_steps + 1, every, dtype=np.int64)
    else:
        n = check_int("n_snapshots", n, minimum=2)
        s = np.round(np.geomspace(1, max(n_steps, 1), n - 1)).astype(np.int64)
    return np.unique(np.concatenate([[0, n_steps], s])).astype(np.int64)


# -- the velocity -----------------------------------------------------------------------
def _check_start(measure: Any, source: Any, name: str, kind: type[Any]) -> None:
    """Check the start of a run: ``measure`` is a ParticleMeasure, and what drives the run.

    ``source`` (parameter ``name``: a flow's estimator, SGD's stream) must be a ``kind``
    with the measure's input dimension d.
    """
    if not isinstance(measure, ParticleMeasure):
        raise TypeError(f"measure must be a ParticleMeasure; got {describe(measure)}")
    if not isinstance(source, kind):
        raise TypeError(f"{name} must be a {kind.__name__}; got {describe(source)}")
    if source.d != measure.d:
        raise ValueError(
            f"{name} has input dimension d={source.d} but the measure has d={measure.d}"
        )


def velocity_function(
    estimator: VelocityEstimator, masses: NDArray[np.floating], weight_decay: float = 0.0
) -> VelocityFunction:
    r"""Return the map θ ↦ v̂_μ(θ) − λθ at the particles, for fixed masses (hot path).

    For a :class:`~meanfield.velocity.SampleEstimator` it calls the vectorised helpers
    :func:`~meanfield.velocity.residual_on_sample` and
    :func:`~meanfield.velocity.first_variation_grad_on_sample` directly (the same
    arithmetic as :meth:`~meanfield.velocity.VelocityEstimator.velocity`, without
    re-validating the measure at every step); otherwise it calls
    ``estimator.velocity(ParticleMeasure(theta, masses))``.

    Parameters
    ----------
    estimator : VelocityEstimator
        v̂.
    masses : ndarray, shape (..., m)
        pᵢ.
    weight_decay : float, default 0.0
        λ ≥ 0.

    Returns
    -------
    callable
        ``theta (..., m, d+2) -> velocity (..., m, d+2)``.
    """
    lam = float(weight_decay)
    if type(estimator) is SampleEstimator:
        x, y, sigma = estimator.x, estimator.y, estimator.activation

        def base(theta: NDArray[np.floating]) -> NDArray[np.floating]:
            r = residual_on_sample(theta, masses, x, y, sigma)
            g = first_variation_grad_on_sample(theta, x, r, sigma)
            np.negative(g, out=g)
            return g

    else:

        def base(theta: NDArray[np.floating]) -> NDArray[np.floating]:
            try:
                return np.asarray(estimator.velocity(ParticleMeasure(theta, masses)))
            except OverflowResultError:  # reported as non-finite positions: a divergence
                return np.full(theta.shape, np.inf)

    if lam == 0.0:
        return base

    def decayed(theta: NDArray[np.floating]) -> NDArray[np.floating]:
        return base(theta) - lam * theta

    return decayed


def _teacher_of(estimator: Any) -> ParticleMeasure | None:
    for name in ("target", "teacher"):
        t = getattr(estimator, name, None)
        if isinstance(t, Teacher):
            return t.measure
        if isinstance(t, ParticleMeasure):
            return t
    return None


def _meta(
    estimator: VelocityEstimator,
    measure: ParticleMeasure,
    config: Mapping[str, Any] | None,
    seed: Any,
    base: dict[str, Any],
) -> dict[str, Any]:
    cfg = {
        **base,
        "estimator": type(estimator).__name__,
        "m": measure.m,
        "d": measure.d,
        "batch_shape": list(measure.batch_shape),
        **dict(config or {}),
    }
    return {
        "activation": estimator.activation.name,
        "teacher": _teacher_of(estimator),
        "config": cfg,
        "seed": seed,
    }


# -- explicit Euler ----------------------------------------------------------------------
def euler(
    measure: ParticleMeasure,
    estimator: VelocityEstimator,
    *,
    step: float,
    t_end: float | None = None,
    n_steps: int | None = None,
    times: ArrayLike | None = None,
    record_every: int | None = None,
    n_snapshots: int = 101,
    weight_decay: float = 0.0,
    progress: bool | None = None,
    config: Mapping[str, Any] | None = None,
    seed: Any = None,
) -> Trajectory:
    r"""Explicit Euler in mean-field time: gradient descent on the particles.

    .. math::

        \theta_i^{k+1} = \theta_i^k + \eta\,\big(\hat v_{\mu^k}(\theta_i^k)
        - \lambda\,\theta_i^k\big), \qquad t_k = k\eta

    Since ∂F/∂θᵢ = pᵢ∇J_μ(θᵢ), this is gradient descent on the particles with the
    gradient divided by pᵢ (Chizat & Bach 2018, §2.2); with an empirical
    :class:`~meanfield.velocity.SampleEstimator` it is full-batch GD.  For ReLU it
    conserves aᵢ² − ‖wᵢ‖² − bᵢ² up to O(η²) per step.

    Parameters
    ----------
    measure : ParticleMeasure
        Initial μ₀, positions ``(..., m, d+2)`` (leading axes: an ensemble).
    estimator : VelocityEstimator
        v̂ (and the risk recorded at the snapshots).
    step : float
        η > 0.
    t_end, n_steps : float or int
        Horizon: give exactly one (``n_steps = round(t_end / step)``).
    times : array_like, optional
        Snapshot times, recorded at the nearest steps (the recorded times are kη).
    record_every : int, optional
        Record every ``record_every`` steps instead.
    n_snapshots : int, default 101
        Number of log-spaced snapshots when neither ``times`` nor ``record_every`` is
        given.
    weight_decay : float, default 0.0
        λ ≥ 0.
    progress : bool, optional
        Show a tqdm bar; default: only when stderr is a terminal.
    config : dict, optional
        Extra entries for the trajectory's configuration.
    seed : JSON value, optional
        Recorded as the trajectory's seed (e.g. the seed of μ₀).

    Returns
    -------
    Trajectory
        Snapshots at steps 0 … n_steps (see :func:`record_schedule`), times kη.

    Raises
    ------
    DivergenceError
        If a position or a recorded risk becomes non-finite; ``.trajectory`` holds the
        run up to the last finite state.
    """
    _check_start(measure, estimator, "estimator", VelocityEstimator)
    eta = check_positive("step", step)
    lam = check_positive("weight_decay", weight_decay, allow_zero=True)
    if (t_end is None) == (n_steps is None):
        raise ValueError(f"give exactly one of t_end and n_steps; got {t_end=}, {n_steps=}")
    if n_steps is None:
        ratio = check_positive("t_end", t_end) / eta
        if not ratio < _MAX_STEPS:
            raise ValueError(
                f"t_end / step = {ratio:.3g} steps is too many (at most {_MAX_STEPS:.0e}); "
                f"got t_end={t_end!r}, step={step!r}"
            )
        n_steps = round(ratio)
    n_steps = check_int("n_steps", n_steps, minimum=0)
    rec_steps = None
    if times is not None:
        tt = as_float_array("times", times, ndim=1)
        if np.any(tt < 0):
            raise ValueError(f"times must be >= 0; got minimum {tt.min()}")
        rec_steps = np.minimum(np.round(tt / eta), n_steps).astype(np.int64)
    schedule = record_schedule(n_steps, steps=rec_steps, every=record_every, n=n_snapshots)

    masses = np.array(measure.masses)
    vel = velocity_function(estimator, masses, lam)
    meta = _meta(
        estimator,
        measure,
        config,
        seed,
        {"dynamics": "euler", "step": eta, "n_steps": n_steps, "weight_decay": lam},
    )
    rec = Recorder(masses, risk_from_estimator(estimator, masses), meta, measure.d)
    theta = np.array(measure.theta)
    start = _time.perf_counter()
    update = max(1, n_steps // 200)
    nxt = 1
    with (
        np.errstate(over="ignore", invalid="ignore"),
        progress_bar(n_steps, progress=progress, desc="euler", unit="step") as bar,
    ):
        rec.record(0, 0.0, theta)
        for k in range(1, n_steps + 1):
            new = vel(theta)
            new *= eta
            new += theta
            if not math.isfinite(new.sum()):
                raise rec.diverged(
                    k,
                    k * eta,
                    (k - 1, (k - 1) * eta, theta),
                    "positions became non-finite (try a smaller step)",
                    new,
                )
            theta = new
            if k == schedule[nxt]:
                rec.record(k, k * eta, theta)
                nxt += 1
            if k % update == 0:
                bar.update(update)
    info = {"n_steps": n_steps, "velocity_evaluations": n_steps, "runtime_s": _elapsed(start)}
    return rec.build(info)


def _elapsed(start: float) -> float:
    return round(_time.perf_counter() - start, 6)


# -- adaptive solvers ---------------------------------------------------------------------
def _fd_jacobian(
    vel: VelocityFunction, shape: tuple[int, ...]
) -> Callable[[float, NDArray[np.floating]], Any]:
    r"""Forward-difference Jacobian of the flow, one vectorised velocity call.

    .. math:: J_{:, j} \approx \big(v(y + h_j e_j) - v(y)\big)/h_j,
        \qquad h_j = \sqrt{\epsilon}\,\max(1, |y_j|)

    All k = m(d+2) perturbed states are evaluated in one call (the velocity is
    vectorised over batch axes), and column j of every ensemble member is perturbed at
    once since members do not interact; the result is block diagonal (sparse for an
    ensemble).  This replaces SciPy's adaptive ``num_jac``, whose step factor grows
    without bound on the zero columns of dead ReLU units.
    """
    k = shape[-2] * shape[-1]
    n_rep = int(np.prod(shape[:-2]))
    idx = np.arange(k)
    root_eps = np.sqrt(np.finfo(np.float64).eps)

    def jac(_t: float, y: NDArray[np.floating]) -> Any:
        th = y.reshape(n_rep, k)
        f0 = vel(y.reshape(shape)).reshape(n_rep, k)
        h = root_eps * np.maximum(1.0, np.abs(th))
        pert = np.repeat(th[None], k, axis=0)  # (k, R, k): copy j perturbs coordinate j
        pert[idx, :, idx] += h.T
        h = (pert[idx, :, idx] - th.T).T  # the steps actually taken, (R, k)
        diff = vel(pert.reshape(k, *shape)).reshape(k, n_rep, k) - f0[None]
        blocks = np.transpose(diff, (1, 2, 0)) / h[:, None, :]  # (R, k, k): ∂v_i/∂y_j
        if n_rep == 1:
            return blocks[0]
        return sparse.block_diag(list(blocks), format="csc")

    return jac


def integrate(
    measure: ParticleMeasure,
    estimator: VelocityEstimator,
    t_end: float,
    *,
    method: str = "RK45",
    rtol: float = 1e-6,
    atol: float = 1e-9,
    times: ArrayLike | None = None,
    n_snapshots: int = 101,
    weight_decay: float = 0.0,
    max_step: float = np.inf,
    first_step: float | None = None,
    progress: bool | None = None,
    config: Mapping[str, Any] | None = None,
    seed: Any = None,
) -> Trajectory:
    r"""Integrate the particle flow with an adaptive solver of :func:`scipy.integrate.solve_ivp`.

    .. math:: \frac{d\theta_i}{dt} = \hat v_{\mu_t}(\theta_i) - \lambda\,\theta_i,
        \qquad \theta_i(0) = \theta_i^0

    The solver class behind ``solve_ivp(method=...)`` is stepped one accepted step at a
    time (what ``solve_ivp`` does internally); snapshots come from its dense output.
    An ensemble is integrated as one system, so its members share the adaptive step:
    a member agrees with its solo run to solver tolerance, not bitwise.  For
    ``Radau``/``BDF`` a forward-difference Jacobian is supplied, computed in one
    vectorised velocity call and block diagonal across members (which do not interact).

    Parameters
    ----------
    measure : ParticleMeasure
        Initial μ₀, positions ``(..., m, d+2)``.
    estimator : VelocityEstimator
        v̂ (and the risk recorded at the snapshots).
    t_end : float
        Final mean-field time (> 0).
    method : {"RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA"}, default "RK45"
        ``Radau``, ``BDF`` and ``LSODA`` are the stiff ones.
    rtol, atol : float, default 1e-6, 1e-9
        Relative and absolute tolerances.
    times : array_like, optional
        Snapshot times in [0, t_end]; default ``snapshot_times(t_end, n_snapshots)``
        (log-spaced).
    n_snapshots : int, default 101
        Number of default snapshot times.
    weight_decay : float, default 0.0
        λ ≥ 0.
    max_step : float, default inf
        Largest step the solver may take.
    first_step : float, optional
        Initial step (default: the solver's choice).
    progress : bool, optional
        Show a tqdm bar (in units of time); default: only when stderr is a terminal.
    config : dict, optional
        Extra entries for the trajectory's configuration.
    seed : JSON value, optional
        Recorded as the trajectory's seed.

    Returns
    -------
    Trajectory
        ``steps`` holds the number of accepted solver steps at each snapshot; ``info``
        the solver statistics (``nfev``, ``njev``, ``nlu``, accepted steps).

    Raises
    ------
    DivergenceError
        If the velocity or the positions become non-finite, a recorded risk is
        non-finite, the solver fails (step size underflow, a non-finite Jacobian), or
        its steps stay below 1e-12·t_end for 200 steps in a row (a flow too fast to
        integrate: the run would never finish); ``.trajectory`` holds the run up to the
        last finite state.
    """
    _check_start(measure, estimator, "estimator", VelocityEstimator)
    t_end = check_positive("t_end", t_end)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}")
    rtol = check_positive("rtol", rtol)
    atol = check_positive("atol", atol)
    lam = check_positive("weight_decay", weight_decay, allow_zero=True)
    if times is None:
        tt = snapshot_times(t_end, n_snapshots)
    else:
        tt = as_float_array("times", times, ndim=1).astype(np.float64)
        if tt.size == 0 or np.any(np.diff(tt) < 0) or tt[0] < 0 or tt[-1] > t_end:
            raise ValueError(
                f"times must be a nonempty nondecreasing array in [0, t_end={t_end}]; got "
                f"{describe(tt)} with range [{tt.min() if tt.size else 'nan'}, "
                f"{tt.max() if tt.size else 'nan'}]"
            )

    masses = np.array(measure.masses)
    shape = measure.theta.shape
    vel = velocity_function(estimator, masses, lam)

    def fun(_t: float, y: NDArray[np.floating]) -> NDArray[np.floating]:
        # A non-finite trial value is returned as NaN, not raised: the solver then
        # rejects the trial step (explicit RK) or the Newton iterate (implicit methods)
        # and retries with a smaller step.  Divergence is decided on accepted states.
        if not np.all(np.isfinite(y)):
            return np.full_like(y, np.nan)
        return vel(y.reshape(shape)).ravel()

    if isinstance(max_step, bool) or not isinstance(max_step, numbers.Real) or not max_step > 0:
        raise ValueError(f"max_step must be a number > 0 (inf allowed); got {describe(max_step)}")
    max_step = float(max_step)
    options: dict[str, Any] = {"rtol": rtol, "atol": atol, "max_step": max_step}
    if first_step is not None:
        options["first_step"] = check_positive("first_step", first_step)
    if method in _IMPLICIT:
        options["jac"] = _fd_jacobian(vel, shape)
    meta = _meta(
        estimator,
        measure,
        config,
        seed,
        {
            "dynamics": "ode",
            "method": method,
            "rtol": rtol,
            "atol": atol,
            "t_end": t_end,
            "weight_decay": lam,
            "max_step": None if math.isinf(max_step) else max_step,
        },
    )
    rec = Recorder(masses, risk_from_estimator(estimator, masses), meta, measure.d)
    y0 = np.array(measure.theta, dtype=np.float64).ravel()
    start = _time.perf_counter()
    n_acc = 0
    last = (0, 0.0, y0.reshape(shape))
    ti = 0
    with (
        np.errstate(over="ignore", invalid="ignore"),
        progress_bar(t_end, progress=progress, desc=f"ode {method}", unit="t") as bar,
    ):
        while ti < tt.size and tt[ti] == 0.0:
            rec.record(0, 0.0, y0.reshape(shape))
            ti += 1
        if not np.all(np.isfinite(fun(0.0, y0))):
            raise rec.diverged(0, 0.0, None, "the velocity is non-finite at t = 0", None)
        solver = _SOLVERS[method](fun, 0.0, y0, t_end, **options)
        n_tiny = 0
        while ti < tt.size:
            t_prev = solver.t
            try:
                message = solver.step()
            except (ValueError, np.linalg.LinAlgError) as exc:  # e.g. LU of an inf Jacobian
                solver.status, message = "failed", f"{type(exc).__name__}: {exc}"
            if solver.status == "failed":
                raise rec.diverged(
                    n_acc + 1,
                    float(t_prev),
                    last,
                    f"the {method} solver failed ({message}); the flow may blow up in finite "
                    "time, or the tolerances may be too tight",
                    None,
                )
            n_acc += 1
            y = solver.y
            if not np.all(np.isfinite(y)):
                raise rec.diverged(
                    n_acc, float(solver.t), last, "positions became non-finite", y.reshape(shape)
                )
            last = (n_acc, float(solver.t), y.reshape(shape).copy())
            n_tiny = n_tiny + 1 if solver.t - t_prev < _TINY_STEP * t_end else 0
            if n_tiny >= _TINY_STEPS:  # the step cannot grow: the run would never finish
                raise rec.diverged(
                    n_acc,
                    float(solver.t),
                    last,
                    f"the {method} solver's steps stayed below {_TINY_STEP:g}·t_end for "
                    f"{_TINY_STEPS} steps (at t = {solver.t:.3g}); the flow is too fast to "
                    "integrate (positions too large, or a blow-up)",
                    None,
                )
            if tt[ti] <= solver.t:
                dense = solver.dense_output()
                while ti < tt.size and tt[ti] <= solver.t:
                    th = y if tt[ti] == solver.t else dense(tt[ti])
                    rec.record(n_acc, float(tt[ti]), np.asarray(th).reshape(shape))
                    ti += 1
            bar.update(float(solver.t - t_prev))
            if solver.status == "finished":
                break
    info = {
        "accepted_steps": n_acc,
        "nfev": int(solver.nfev),
        "njev": int(solver.njev),
        "nlu": int(solver.nlu),
        "runtime_s": _elapsed(start),
    }
    return rec.build(info)

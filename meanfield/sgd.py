r"""Stochastic gradient descent in mean-field time: online, minibatch over epochs, frames.

One SGD step on a minibatch (x_k, y_k)_{k ≤ B} moves every particle along the minibatch
estimate of the velocity field, in mean-field time:

.. math::

    \theta_i \leftarrow \theta_i + \eta\,\big(\hat v(\theta_i) - \lambda\,\theta_i\big),
    \qquad
    \hat v(\theta) = -\frac1B\sum_{k=1}^B \big(f_\mu(x_k) - y_k\big)\,
    \nabla_\theta\varphi(\theta, x_k), \qquad t \leftarrow t + \eta .

The minibatch gradient of the loss with respect to particle i is pᵢ∇Ĵ_μ(θᵢ); the step
above divides it by pᵢ, which puts SGD, GD and the Wasserstein gradient flow on one time
axis (Mei, Montanari & Nguyen 2018, eq. (6); Chizat & Bach 2018, §2.2).  A step τ on
the raw parameters (the notebook's ``θᵢ −= τ ∇_{θᵢ} loss``) is η = τ/m for uniform
masses: see :func:`step_from_tau`.

Samples come from a :class:`SampleStream`: fresh samples every step
(:class:`OnlineStream`), reshuffled epochs over a finite dataset
(:class:`DatasetStream`), the notebook's frames (:class:`FrameStream`) or explicit
arrays (:class:`ArrayStream`, for exact replays).  An ensemble of R runs (positions
``(R, m, d+2)``) is advanced in one vectorised loop; run r draws its samples from
``spawn_rngs(rng, R)[r]``, so it equals the same run made alone with that generator.

Two implementations of the step (``backend=``): the numpy reference below, one
vectorised step at a time, and compiled kernels (:mod:`meanfield._fast`, numba) that
run every block of steps between two recorded snapshots in one call (an ensemble of
small networks advances 8 runs at a time in the lanes of vector registers, a wider
network 8 neurons at a time); the tests hold them to agree to 1e-12 over whole runs.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meanfield import _fast
from meanfield._recorder import Recorder, RiskFunction, progress_bar, risk_from_estimator
from meanfield._validation import as_generator, check_int, check_positive, describe
from meanfield.activations import Activation, get_activation
from meanfield.flow import _check_start, record_schedule
from meanfield.measure import ParticleMeasure, RNGLike
from meanfield.streams import (
    ArrayStream,
    DatasetStream,
    FrameStream,
    OnlineStream,
    SampleStream,
    TargetLike,
)
from meanfield.trajectory import Trajectory, describe_rng
from meanfield.velocity import (
    VelocityEstimator,
    first_variation_grad_on_sample,
    residual_on_sample,
)

__all__ = [
    "ArrayStream",
    "DatasetStream",
    "FrameStream",
    "OnlineStream",
    "SampleStream",
    "minibatch_sgd",
    "online_sgd",
    "sgd",
    "step_from_tau",
    "tau_from_step",
]

RiskSpec = VelocityEstimator | Callable[[ParticleMeasure], ArrayLike] | bool | None


def step_from_tau(tau: float, m: int) -> float:
    r"""Mean-field step η of a raw-parameter SGD step τ with m uniform particles.

    .. math:: \eta = \tau / m

    The notebook updates θᵢ −= τ ∂loss/∂θᵢ = τ pᵢ ∇Ĵ(θᵢ) with pᵢ = 1/m, i.e. moves
    θᵢ by (τ/m)·v̂(θᵢ).  Its run (m = 20, τ = 0.5) has η = 0.025 per step.

    Parameters
    ----------
    tau : float
        τ > 0.
    m : int
        Number of particles (a positive integer).

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``m`` is not an integer (a float such as 2.5 is refused, not truncated).
    """
    tau = check_positive("tau", tau)
    m = check_int("m", m)
    return tau / m


def tau_from_step(step: float, m: int) -> float:
    r"""Inverse of :func:`step_from_tau` (the same checks of ``m``): τ = m η.

    .. math:: \tau = m\,\eta
    """
    return check_positive("step", step) * check_int("m", m)


def _risk_function(
    risk: RiskSpec,
    stream: SampleStream,
    masses: NDArray[np.floating],
    activation: Activation,
) -> tuple[RiskFunction | None, str | None]:
    if risk is None or risk is True:
        fn = stream.risk_function(activation)
        if fn is None and risk is True:
            raise ValueError(
                "risk=True but the stream has no target to estimate the risk; pass an "
                "estimator or give the stream a target"
            )
        return (None, None) if fn is None else (lambda th: fn(th, masses), stream.risk_name)
    if risk is False:
        return None, None
    if isinstance(risk, VelocityEstimator):
        return risk_from_estimator(risk, masses), type(risk).__name__
    if callable(risk):
        f = risk

        def fn2(theta: NDArray[np.floating]) -> NDArray[np.floating]:
            return np.asarray(f(ParticleMeasure(theta, masses)), dtype=np.float64)

        return fn2, getattr(risk, "__name__", "callable")
    raise TypeError(
        f"risk must be a VelocityEstimator, a callable of the measure, a bool or None; got "
        f"{describe(risk)}"
    )


def sgd(
    measure: ParticleMeasure,
    stream: SampleStream,
    *,
    step: float,
    n_steps: int | None = None,
    weight_decay: float = 0.0,
    activation: str | Activation = "relu",
    record_steps: ArrayLike | None = None,
    record_every: int | None = None,
    n_snapshots: int = 101,
    risk: RiskSpec = None,
    rng: RNGLike = None,
    progress: bool | None = None,
    config: Mapping[str, Any] | None = None,
    backend: str = "auto",
) -> Trajectory:
    r"""Run SGD in mean-field time on the minibatches of a sample stream.

    .. math::

        \theta_i^{k+1} = \theta_i^k - \eta\Big(\frac1B\sum_{j=1}^B r_j\,
        \nabla_\theta\varphi(\theta_i^k, x_j) + \lambda\,\theta_i^k\Big),
        \quad r_j = f_{\mu^k}(x_j) - y_j, \quad t_k = k\eta

    (Mei, Montanari & Nguyen 2018; Chizat & Bach 2018).  The gradient comes from
    :func:`~meanfield.velocity.residual_on_sample` and
    :func:`~meanfield.velocity.first_variation_grad_on_sample`.

    Parameters
    ----------
    measure : ParticleMeasure
        Initial μ₀, positions ``(m, d+2)`` or an ensemble ``(..., m, d+2)``.
    stream : SampleStream
        Where the minibatches come from (it holds the target).
    step : float
        η > 0, in mean-field time (see :func:`step_from_tau` for the notebook's τ).
    n_steps : int, optional
        Number of steps; default: the stream's length (required for an endless stream).
    weight_decay : float, default 0.0
        λ ≥ 0 (the step of F(μ) + (λ/2)∫‖θ‖² dμ).
    activation : str or Activation, default "relu"
        σ of the student.
    record_steps, record_every, n_snapshots
        Which steps to record (see :func:`~meanfield.flow.record_schedule`); default
        about ``n_snapshots`` log-spaced steps.  Steps 0 and ``n_steps`` are always
        recorded; only the recorded snapshots are kept in memory.
    risk : VelocityEstimator, callable, bool or None
        How to estimate the risk at the snapshots: an estimator (e.g. the exact
        Gaussian-population one), a function of the measure, ``False`` for none (NaN),
        or ``None`` for the stream's default (a fixed Monte-Carlo sample of the
        population for online/frame streams, the dataset for a dataset stream).
    rng : int, Generator or SeedSequence, optional
        Randomness of the stream; ensemble member r uses ``spawn_rngs(rng, R)[r]``.
    progress : bool, optional
        Show a tqdm bar; default: only when stderr is a terminal.
    config : dict, optional
        Extra entries for the trajectory's configuration.
    backend : {"auto", "numba", "numpy"}, default "auto"
        ``"numpy"``: the readable vectorised reference, one step at a time;
        ``"numba"``: compiled kernels that run a whole block of steps per call
        (:mod:`meanfield._fast`; built-in activations only); ``"auto"``: numba when it
        is installed and the activation is built in.  The two agree to rounding
        (about 1e-16 per step); an ensemble member equals its solo run bitwise with
        either.

    Returns
    -------
    Trajectory
        Snapshots at the recorded steps, times kη, risks from ``risk``.

    Raises
    ------
    DivergenceError
        If a position or a recorded risk becomes non-finite; ``.trajectory`` holds the
        run up to the last finite state.
    """
    _check_start(measure, stream, "stream", SampleStream)
    stream.check_batch_shape(measure.batch_shape)
    if rng is not None and not isinstance(rng, np.random.Generator | np.random.SeedSequence):
        as_generator(rng)  # validate the seed now (errors name `rng`)
    eta = check_positive("step", step)
    lam = check_positive("weight_decay", weight_decay, allow_zero=True)
    sigma = get_activation(activation)
    total = stream.n_steps
    if n_steps is None:
        if total is None:
            raise ValueError(f"n_steps is required for the endless stream {type(stream).__name__}")
        n_steps = total
    elif isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer) or n_steps < 0:
        raise ValueError(f"n_steps must be a nonnegative integer; got {describe(n_steps)}")
    n_steps = int(n_steps)
    if total is not None and n_steps > total:
        raise ValueError(f"n_steps must be <= the stream's {total} steps; got {n_steps}")
    schedule = record_schedule(n_steps, steps=record_steps, every=record_every, n=n_snapshots)

    masses = np.array(measure.masses)
    risk_fn, risk_name = _risk_function(risk, stream, masses, sigma)
    cfg = {
        "dynamics": "sgd",
        "step": eta,
        "n_steps": n_steps,
        "weight_decay": lam,
        "batch_size": stream.batch_size,
        "stream": stream.describe(),
        "risk": risk_name,
        "m": measure.m,
        "d": measure.d,
        "batch_shape": list(measure.batch_shape),
        **dict(config or {}),
    }
    meta = {
        "activation": sigma.name,
        "teacher": stream.teacher,
        "config": cfg,
        "seed": describe_rng(rng),
    }
    rec = Recorder(masses, risk_fn, meta, measure.d, capacity=len(schedule))
    theta = measure.theta  # never written to: every step makes a new array
    engine = _fast.make_engine(
        backend, sigma, measure.m, measure.d, stream.batch_size, int(np.prod(measure.batch_shape))
    )
    cfg["backend"] = "numpy" if engine is None else f"numba-{engine.kind}"

    def reference(
        theta: NDArray[np.floating], xs: NDArray[Any], ys: NDArray[Any], k: int
    ) -> NDArray[np.floating]:
        for s in range(xs.shape[0]):
            x = xs[s]
            r = residual_on_sample(theta, masses, x, ys[s], sigma)
            new = first_variation_grad_on_sample(theta, x, r, sigma)
            if lam:
                new += lam * theta
            new *= -eta
            new += theta
            if not math.isfinite(new.sum()):
                raise rec.diverged(
                    k + s + 1,
                    (k + s + 1) * eta,
                    (k + s, (k + s) * eta, theta),
                    "positions became non-finite (try a smaller step)",
                    new,
                )
            theta = new
        return theta

    def advance(
        theta: NDArray[np.floating], xs: NDArray[Any], ys: NDArray[Any], k: int
    ) -> NDArray[np.floating]:
        if engine is None:
            return reference(theta, xs, ys, k)
        s, rr = xs.shape[0], engine.runs
        x4 = xs.reshape(s, -1, *xs.shape[-2:])
        y3 = ys.reshape(s, -1, ys.shape[-1])
        th, done = engine.run(
            theta.reshape(rr, measure.m, -1), masses.reshape(-1, measure.m), x4, y3, eta, lam
        )
        th = th.reshape(theta.shape)
        # a run broke down at step `done`: the reference redoes it and reports it
        return th if done == s else reference(th, xs[done:], ys[done:], k + done)

    start = _time.perf_counter()
    k = 0
    nxt = 1
    with (
        np.errstate(over="ignore", invalid="ignore"),
        progress_bar(n_steps, progress=progress, desc="sgd", unit="step") as bar,
    ):
        rec.record(0, 0.0, theta)
        blocks = stream.ensemble_blocks(rng, measure.batch_shape)
        while k < n_steps:
            xs, ys = next(blocks)
            if xs.shape[-1] != measure.d:
                raise ValueError(
                    f"the stream gave inputs of shape {xs.shape}; expected d={measure.d}"
                )
            n_block = min(xs.shape[0], n_steps - k)
            s = 0
            while s < n_block:  # segments end at the recorded steps
                seg = min(n_block - s, int(schedule[nxt]) - k)
                theta = advance(theta, xs[s : s + seg], ys[s : s + seg], k)
                k += seg
                s += seg
                if k == schedule[nxt]:
                    rec.record(k, k * eta, theta)
                    nxt += 1
            bar.update(n_block)
        blocks.close()
    info = {"n_steps": n_steps, "runtime_s": round(_time.perf_counter() - start, 6)}
    return rec.build(info)


def online_sgd(
    measure: ParticleMeasure,
    target: TargetLike,
    *,
    step: float,
    n_steps: int,
    batch_size: int = 20,
    law: str = "gaussian",
    rng: RNGLike = None,
    **kwargs: Any,
) -> Trajectory:
    r"""Online SGD: every step draws a fresh minibatch x ~ law, y = y(x).

    Shorthand for ``sgd(measure, OnlineStream(target, batch_size, law=law), ...)``;
    ``kwargs`` go to :func:`sgd`.

    .. math:: x_1, \dots, x_B \sim N(0, I_d)\ \text{i.i.d. at every step}

    Parameters
    ----------
    measure : ParticleMeasure
        Initial μ₀.
    target : Target, ParticleMeasure or callable
        y (a teacher measure, possibly one per ensemble member).
    step : float
        η in mean-field time.
    n_steps : int
        Number of steps.
    batch_size : int, default 20
        B.
    law : {"gaussian", "sphere"}, default "gaussian"
        Input law.
    rng : int, Generator or SeedSequence, optional
        Randomness.
    **kwargs
        Passed to :func:`sgd`.

    Returns
    -------
    Trajectory
    """
    if not isinstance(measure, ParticleMeasure):
        raise TypeError(f"measure must be a ParticleMeasure; got {describe(measure)}")
    stream = OnlineStream(target, batch_size, d=measure.d, law=law)
    return sgd(measure, stream, step=step, n_steps=n_steps, rng=rng, **kwargs)


def minibatch_sgd(
    measure: ParticleMeasure,
    x: ArrayLike,
    y: ArrayLike | None = None,
    *,
    target: TargetLike | None = None,
    step: float,
    epochs: int,
    batch_size: int = 20,
    rng: RNGLike = None,
    **kwargs: Any,
) -> Trajectory:
    r"""Minibatch SGD over a finite dataset, reshuffled at every epoch.

    Shorthand for ``sgd(measure, DatasetStream(x, y, target=target, ...), ...)``;
    ``kwargs`` go to :func:`sgd`.  The default risk is the empirical risk on the
    dataset.

    .. math:: \hat F(\mu) = \frac1{2n}\sum_{k=1}^n (f_\mu(x_k) - y_k)^2

    Parameters
    ----------
    measure : ParticleMeasure
        Initial μ₀.
    x : array_like, shape (n, d) or (..., n, d)
        Inputs (one dataset per ensemble member, or shared).
    y : array_like, shape (n,) or (..., n), optional
        Labels; computed from ``target`` when omitted.
    target : Target, ParticleMeasure or callable, optional
        y(x).
    step : float
        η in mean-field time.
    epochs : int
        Number of passes; each uses a fresh permutation and ⌊n/B⌋ steps.
    batch_size : int, default 20
        B.
    rng : int, Generator or SeedSequence, optional
        Randomness of the permutations.
    **kwargs
        Passed to :func:`sgd`.

    Returns
    -------
    Trajectory
    """
    stream = DatasetStream(x, y, target=target, batch_size=batch_size, epochs=epochs)
    return sgd(measure, stream, step=step, rng=rng, **kwargs)

"""Hostile-input fuzzing of every public function and of the ``meanfield`` command.

One harness drives a table of cases.  A case names a callable and describes each of
its parameters by a *valid* builder and a *corruption* generator.  Every Hypothesis
example draws small sizes (d, m, n, …), builds valid arguments, and either leaves them
valid or corrupts exactly one parameter: wrong shapes and ranks, empty arrays, NaN and
±inf, huge and tiny magnitudes (1e±300), integer, boolean, float32, complex and object
arrays, ragged lists, strings and ``None``, mismatched dimensions between measure,
teacher and inputs, negative and zero sizes, bad names and seeds.  The oracle:

* a corruption that is invalid by contract (non-finite value, non-numeric array,
  non-integer or out-of-range size, unknown name, …) must raise ``ValueError`` or
  ``TypeError`` whose message names the corrupted parameter;
* any other input must give a result whose floating values are all finite (inputs are
  finite, so a NaN or inf in the output would be a silently wrong number), or raise
  ``ValueError``/``TypeError`` naming one of the parameters (e.g. an overflow at 1e300);
* nothing else: any other exception, a warning (pytest runs with
  ``filterwarnings = error``) or a call running past :data:`HANG_S` seconds fails.

Counts of the examples run per callable are kept in :data:`COUNTS`; the last test of the
module prints them (run with ``-s`` to see the table) and checks every case ran.
Inputs that hit a bug whose fix is pending in another module are filtered out of the
fuzzing (:data:`KNOWN`) and each bug is pinned by a strict ``xfail`` reproducer
(:func:`test_pending_fix`), so that the rest of the function stays fuzzed; when a fix
lands, the reproducer passes, the strict ``xfail`` fails, and the bug's :data:`PENDING` and
:data:`KNOWN` entries are removed (its reproducer stays, as a regression test).  To try a
fix before removing them, list its keys in ``MEANFIELD_FUZZ_FIXED`` (comma-separated):
those bugs are then fuzzed and their reproducers must pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import io
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import meanfield as mf
from meanfield import (
    activations,
    cli,
    config,
    convergence,
    covering,
    data,
    diagnostics,
    figures,
    flow,
    kernels,
    measure,
    network,
    notebook,
    plotting,
    population,
    recovery,
    separation,
    sgd,
    streams,
    support,
    sweep,
    trajectory,
    velocity,
)
from meanfield.bivariate_normal import bivariate_normal_cdf
from meanfield.quadrature import gauss_hermite

HANG_S = 30.0
"""A single call running longer than this is reported as a hang."""

RAISE, MAY, VALID = "raise", "may", "valid"

COUNTS: defaultdict[str, Counter[str]] = defaultdict(Counter)
"""Per case: number of examples that returned (``ok``) and that raised (``raised``)."""
KINDS: defaultdict[str, Counter[str]] = defaultdict(Counter)
"""Per case: number of examples per corrupted parameter and corruption kind."""

ACTS = ("relu", "sigmoid", "tanh", "erf")
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck))
"""On top of the loaded profile (tests/conftest.py: deterministic ``ci`` by default, random
``dev`` with ``HYPOTHESIS_PROFILE=dev``); ``MEANFIELD_FUZZ_SCALE`` scales the counts."""


class Hang(BaseException):
    """Raised by the alarm when a call runs too long (BaseException: never swallowed)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def on_alarm(signum, frame):
        raise Hang(f"call ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- context: the sizes of one example -------------------------------------------------
@dataclass
class Ctx:
    d: int
    m: int
    n: int
    m0: int
    act: str
    seed: int
    rng: np.random.Generator
    tmp: Path

    def normal(self, *shape: int, scale: float = 1.0) -> np.ndarray:
        return scale * self.rng.standard_normal(shape)

    def theta(self, m: int | None = None, lead: tuple[int, ...] = ()) -> np.ndarray:
        return self.normal(*lead, self.m if m is None else m, self.d + 2)

    def x(self, n: int | None = None) -> np.ndarray:
        return self.normal(self.n if n is None else n, self.d)

    def student(self, runs: int | None = None) -> mf.ParticleMeasure:
        lead = () if runs is None else (runs,)
        return mf.ParticleMeasure(self.theta(lead=lead))

    def teacher(self) -> mf.ParticleMeasure:
        return mf.ParticleMeasure(self.theta(self.m0))


_TMP = Path(tempfile.mkdtemp(prefix="meanfield-fuzz-"))


def draw_ctx(draw, *, acts=ACTS) -> Ctx:
    seed = draw(st.integers(0, 2**32 - 1))
    tmp = _TMP / f"case-{len(os.listdir(_TMP))}"
    tmp.mkdir(parents=True, exist_ok=True)
    return Ctx(
        d=draw(st.integers(1, 3)),
        m=draw(st.integers(1, 4)),
        n=draw(st.integers(1, 5)),
        m0=draw(st.integers(1, 3)),
        act=draw(st.sampled_from(acts)),
        seed=seed,
        rng=np.random.default_rng(seed),
        tmp=tmp,
    )


# -- corruptions -------------------------------------------------------------------------
@dataclass(frozen=True)
class Bad:
    value: Any
    mode: str
    label: str


def _with_entry(v: np.ndarray, value: float, draw) -> np.ndarray:
    out = np.array(v, dtype=np.float64, copy=True)
    if out.size:
        out.flat[draw(st.integers(0, out.size - 1))] = value
    else:
        out = np.array([value])
    return out


def bad_array(
    *,
    nonfinite: str = RAISE,
    optional: bool = False,
    lastdim: str = MAY,
    scalar: str = MAY,
    empty: str = MAY,
    rank: str = MAY,
    skip: tuple[str, ...] = (),
):
    """Corruptions of a float array parameter (modes overridable per parameter)."""
    kinds = [
        "nan",
        "inf",
        "-inf",
        "huge",
        "tiny",
        "int",
        "bool",
        "f32",
        "list",
        "object",
        "complex",
        "str",
        "none",
        "ragged",
        "scalar",
        "drop_axis",
        "add_axis",
        "empty",
        "lastdim",
        "zeros",
        "batch",
    ]
    kinds = [k for k in kinds if k not in skip]

    def gen(draw, ctx: Ctx, v: Any) -> Bad:
        v = ctx.theta(2) if v is None else np.asarray(v, dtype=np.float64)
        k = draw(st.sampled_from(kinds))
        if k in ("nan", "inf", "-inf"):
            return Bad(_with_entry(v, float(k), draw), nonfinite, k)
        if k == "huge":
            f = draw(st.sampled_from([1e150, 1e300, 1.7e308]))
            if v.size == 0 or not draw(st.booleans()):
                return Bad(_with_entry(v, f * draw(st.sampled_from([1.0, -1.0])), draw), MAY, k)
            return Bad(v / max(float(np.max(np.abs(v))), 1e-300) * f, MAY, k)
        if k == "tiny":
            return Bad(v * draw(st.sampled_from([1e-300, 5e-324])), MAY, k)
        if k == "int":
            return Bad(np.rint(v).astype(np.int64), MAY, k)
        if k == "bool":
            return Bad(v > 0, MAY, k)
        if k == "f32":
            return Bad(v.astype(np.float32), MAY, k)
        if k == "list":
            return Bad(v.tolist(), MAY, k)
        if k == "object":
            return Bad(v.astype(object), RAISE, k)
        if k == "complex":
            return Bad(v + 1j, RAISE, k)
        if k == "str":
            return Bad(draw(st.sampled_from(["abc", "", "1.0"])), RAISE, k)
        if k == "none":
            return Bad(None, MAY if optional else RAISE, k)
        if k == "ragged":
            return Bad([[1.0, 2.0, 3.0], [1.0]], RAISE, k)
        if k == "scalar":
            return Bad(draw(st.sampled_from([1.5, np.float64(-2.0)])), scalar, k)
        if k == "drop_axis":
            return Bad(v[..., 0] if v.ndim else v, rank, k)
        if k == "add_axis":
            return Bad(v[None], MAY, k)
        if k == "empty":
            if v.ndim == 0:
                return Bad(np.empty(0), empty, k)
            shape = list(v.shape)
            shape[draw(st.integers(0, v.ndim - 1))] = 0
            return Bad(np.empty(shape), empty, k)
        if k == "lastdim":
            if v.ndim == 0:
                return Bad(v, MAY, k)
            shape = list(v.shape)
            shape[-1] = shape[-1] + 1 if shape[-1] <= 1 or draw(st.booleans()) else shape[-1] - 1
            return Bad(ctx.rng.standard_normal(shape), lastdim, k)
        if k == "zeros":
            return Bad(np.zeros_like(v), MAY, k)
        if k == "batch":
            return Bad(np.stack([v, v]), MAY, k)
        raise AssertionError(k)

    return gen


def bad_int(minimum: int = 1, *, optional: bool = False, big: int | None = None):
    def gen(draw, ctx: Ctx, v: Any) -> Bad:
        v = max(minimum, 1) if v is None else v
        k = draw(
            st.sampled_from(
                ["below", "neg", "float", "floatint", "bool", "str", "none", "np", "array"]
                + (["big"] if big is not None else [])
            )
        )
        if k == "below":
            return Bad(minimum - 1, RAISE, k)
        if k == "neg":
            return Bad(min(minimum - 1, -7), RAISE, k)
        if k == "float":
            return Bad(2.5, RAISE, k)
        if k == "floatint":
            return Bad(float(v), MAY, k)
        if k == "bool":
            return Bad(True, RAISE, k)
        if k == "str":
            return Bad("3", RAISE, k)
        if k == "none":
            return Bad(None, MAY if optional else RAISE, k)
        if k == "np":
            return Bad(np.int64(v), MAY, k)
        if k == "array":
            return Bad(np.array([v, v]), RAISE, k)
        return Bad(big, MAY, k)

    return gen


REAL_KINDS = ("zero", "neg", "nan", "inf", "-inf", "str", "none", "bool", "huge", "tiny", "f32",
              "int", "complex", "list")


def bad_real(*, allow_zero: bool = False, optional: bool = False, negative: str = RAISE):
    def gen(draw, ctx: Ctx, v: Any) -> Bad:
        k = draw(st.sampled_from(REAL_KINDS))
        table = {
            "zero": (0.0, MAY if allow_zero else RAISE),
            "neg": (-1.5, negative),
            "nan": (math.nan, RAISE),
            "inf": (math.inf, RAISE),
            "-inf": (-math.inf, RAISE),
            "str": ("1.0", RAISE),
            "none": (None, MAY if optional else RAISE),
            "bool": (True, RAISE),
            "huge": (1e300, MAY),
            "tiny": (1e-300, MAY),
            "f32": (np.float32(v if v is not None else 1.0), MAY),
            "int": (2, MAY),
            "complex": (1 + 1j, RAISE),
            "list": ([1.0], RAISE),
        }
        value, mode = table[k]
        return Bad(value, mode, k)

    return gen


def bad_choice(*, optional: bool = False, extra: tuple[Any, ...] = ()):
    def gen(draw, ctx: Ctx, v: Any) -> Bad:
        value = draw(st.sampled_from(["nonsense", "", 3, None, *extra]))
        if value is None:
            return Bad(None, MAY if optional else RAISE, "none")
        return Bad(value, RAISE, repr(value))

    return gen


def bad_rng():
    def gen(draw, ctx: Ctx, v: Any) -> Bad:
        k = draw(
            st.sampled_from(["neg", "float", "str", "neglist", "object", "gen", "seq", "big"])
        )
        table = {
            "neg": (-1, RAISE),
            "float": (2.5, RAISE),
            "str": ("seed", RAISE),
            "neglist": ([1, -2], RAISE),
            "object": (object(), RAISE),
            "gen": (np.random.default_rng(ctx.seed), MAY),
            "seq": (np.random.SeedSequence(ctx.seed), MAY),
            "big": (2**70, MAY),
        }
        value, mode = table[k]
        return Bad(value, mode, k)

    return gen


def bad_measure(*, arrays: str = RAISE, lastdim: str = RAISE, ensemble: str = MAY):
    def gen(draw, ctx: Ctx, v: Any) -> Bad:
        k = draw(st.sampled_from(["array", "none", "str", "wrongd", "ensemble", "huge", "tiny"]))
        if k == "array":
            return Bad(np.asarray(v.theta), arrays, k)
        if k == "none":
            return Bad(None, RAISE, k)
        if k == "str":
            return Bad("measure", RAISE, k)
        if k == "wrongd":
            th = ctx.rng.standard_normal((*v.theta.shape[:-1], v.theta.shape[-1] + 1))
            return Bad(mf.ParticleMeasure(th), lastdim, k)
        if k == "ensemble":
            return Bad(mf.ParticleMeasure(np.stack([v.theta, v.theta])), ensemble, k)
        if k == "huge":
            return Bad(v.with_theta(v.theta * draw(st.sampled_from([1e150, 1e300]))), MAY, k)
        return Bad(v.with_theta(v.theta * 1e-300), MAY, k)

    return gen


def bad_object(*values: Any, optional: bool = False):
    """Values of the wrong kind for an object parameter (estimator, stream, target, …)."""
    choices = [*([] if optional else [None]), "x", 3, np.zeros(3), *values]

    def gen(draw, ctx: Ctx, v: Any) -> Bad:
        return Bad(draw(st.sampled_from(choices)), RAISE, "object")

    return gen


# -- cases -------------------------------------------------------------------------------
@dataclass
class P:
    """A parameter: its name, a valid value builder and a corruption generator."""

    name: str
    valid: Callable[[Ctx], Any]
    bad: Callable[..., Bad] | None = None
    names: tuple[str, ...] = ()
    positional: bool = False

    @property
    def accepted(self) -> tuple[str, ...]:
        return self.names or (self.name,)


def pos(name, valid, bad=None, names=()):
    return P(name, valid, bad, names, positional=True)


@dataclass
class Case:
    name: str
    fn: Callable[..., Any]
    params: list[P]
    examples: int = 40
    check: Callable[[Any, Ctx, dict[str, Any]], None] | None = None
    acts: tuple[str, ...] = ACTS
    messages: tuple[str, ...] = ()
    nan_ok: tuple[str, ...] = ()
    allowed: tuple[type[BaseException], ...] = ()


def finite_values(obj: Any, where: str = "result", nan_ok: tuple[str, ...] = ()) -> None:
    """Fail if a floating value reachable from ``obj`` is not finite.

    ``nan_ok`` lists parts of paths (``"result.angle"``) whose NaN is a documented
    sentinel ("NaN when no particle is assigned"); inf is never accepted there either.
    """
    allow_nan = any(part in where for part in nan_ok)

    def ok(values: np.ndarray) -> bool:
        return bool(np.all(~np.isinf(values) if allow_nan else np.isfinite(values)))

    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc":
            assert ok(obj), f"{where} has non-finite values: {obj!r}"
        elif obj.dtype.kind == "O":
            for i, item in enumerate(obj.flat):
                finite_values(item, f"{where}[{i}]", nan_ok)
    elif isinstance(obj, float | np.floating):
        assert ok(np.asarray(obj)), f"{where} is {obj!r}"
    elif isinstance(obj, support.Support):
        return  # intervals use ±inf for "unbounded" by design
    elif isinstance(obj, mf.ParticleMeasure):
        finite_values(obj.theta, f"{where}.theta")
        finite_values(obj.masses, f"{where}.masses")
    elif isinstance(obj, mf.Trajectory):
        for name in ("times", "thetas", "masses", "steps"):
            finite_values(getattr(obj, name), f"{where}.{name}")
        if obj.risks is not None and not np.all(np.isnan(obj.risks)):
            finite_values(obj.risks, f"{where}.risks")
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            finite_values(getattr(obj, f.name), f"{where}.{f.name}", nan_ok)
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            finite_values(v, f"{where}[{k!r}]", nan_ok)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            finite_values(v, f"{where}[{i}]", nan_ok)


def run_case(case: Case, draw) -> None:
    ctx = draw_ctx(draw, acts=case.acts)
    corruptible = [p for p in case.params if p.bad is not None]
    which = draw(st.sampled_from([None, None, *corruptible])) if corruptible else None
    values: dict[str, Any] = {p.name: p.valid(ctx) for p in case.params}
    bad: Bad | None = None
    if which is not None:
        bad = which.bad(draw, ctx, values[which.name])
        values[which.name] = bad.value
    mode = VALID if bad is None else bad.mode
    kind = f"{which.name}:{bad.label}" if which and bad else "valid"
    KINDS[case.name][kind] += 1
    if bad is not None and known_bug(case.name, kind):
        COUNTS[case.name]["known-bug (filtered)"] += 1
        return
    args = [values[p.name] for p in case.params if p.positional]
    kwargs = {p.name: values[p.name] for p in case.params if not p.positional}
    label = f"{case.name}: {which.name if which else 'valid'} ({bad.label if bad else '-'})"
    try:
        with time_limit(HANG_S):
            result = case.fn(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        COUNTS[case.name]["raised"] += 1
        msg = str(exc)
        assert mode != VALID, f"{label}: valid input raised {type(exc).__name__}: {msg}"
        if mode == RAISE:
            names = which.accepted if which else ()
        else:
            names = tuple(n for p in case.params for n in p.accepted) + case.messages
            if bad is not None and bad.label in ("huge", "scale"):
                names += ("overflow",)  # e.g. a teacher near 1e300 overflows the labels
        assert any(n in msg for n in names), (
            f"{label}: the message does not name {names}: {type(exc).__name__}: {msg}"
        )
        return
    except case.allowed as exc:  # documented, e.g. DivergenceError of a dynamics
        COUNTS[case.name]["raised"] += 1
        assert mode != VALID, f"{label}: valid input raised {exc!r}"
        return
    except Hang:
        pytest.fail(f"{label}: hang (more than {HANG_S} s)")
    except Exception as exc:
        pytest.fail(f"{label}: raised {type(exc).__name__} (not ValueError/TypeError): {exc!r}")
    finally:
        plt.close("all")
    COUNTS[case.name]["ok"] += 1
    assert mode != RAISE, f"{label}: invalid input accepted, returned {type(result).__name__}"
    if bad is None or bad.label not in ("nan", "inf", "-inf"):  # finite in, finite out
        finite_values(result, nan_ok=case.nan_ok)
    if case.check is not None:
        case.check(result, ctx, values)


# -- bugs whose fix is pending in modules this file does not own ---------------------------
PENDING: dict[str, str] = {}  # none at present: every reproducer below passes

for _key in filter(None, os.environ.get("MEANFIELD_FUZZ_FIXED", "").split(",")):
    PENDING.pop(_key.strip(), None)

KNOWN: list[tuple[str, str, str]] = []
"""(case name pattern, "parameter:corruption" pattern, PENDING key) of each filter."""


def known_bug(case_name: str, kind: str) -> str | None:
    """The PENDING key of a known bug this (case, corrupted parameter) hits, if any."""
    for case_pat, kind_pat, key in KNOWN:
        hit = fnmatch.fnmatchcase(case_name, case_pat) and fnmatch.fnmatchcase(kind, kind_pat)
        if hit and key in PENDING:
            return key
    return None


# -- valid builders and checks ------------------------------------------------------------
def shape_is(fn):
    def check(result, ctx, values):
        want = fn(ctx, values)
        assert np.shape(result) == want, f"shape {np.shape(result)}, expected {want}"

    return check


def _act(ctx):
    return ctx.act


def _th(ctx):
    return ctx.theta()


def _x(ctx):
    return ctx.x()


def _mu(ctx):
    return ctx.student()


def _teacher(ctx):
    return ctx.teacher()


def _pop(ctx):
    return mf.GaussianPopulationEstimator(ctx.teacher(), activation=ctx.act)


def _sample_est(ctx):
    return mf.SampleEstimator(ctx.normal(16, ctx.d), ctx.teacher(), activation=ctx.act)


def _estimator(ctx):
    return _pop(ctx) if ctx.rng.random() < 0.5 else _sample_est(ctx)


def _traj(ctx, T=3):
    times = np.cumsum(np.r_[0.0, ctx.rng.uniform(0.1, 1.0, T - 1)])
    return mf.Trajectory(times, ctx.normal(T, ctx.m, ctx.d + 2), np.full(ctx.m, 1 / ctx.m))


ARR = bad_array()
ARR_D = bad_array(lastdim=RAISE)  # the last axis must match the other arguments' d
ACT = bad_choice(extra=("RELU_", 1.0))
MEAS = bad_measure()


def _nm_shape(ctx, values):
    th = np.asarray(values["theta"].theta if hasattr(values["theta"], "theta") else values["theta"])
    x = np.asarray(values["x"])
    th = th if th.ndim >= 2 else th[None]
    x = x if x.ndim >= 2 else x[None]
    lead = np.broadcast_shapes(th.shape[:-2], x.shape[:-2])
    return (*lead, x.shape[-2], th.shape[-2])


CASES: list[Case] = []


SCALE = float(os.environ.get("MEANFIELD_FUZZ_SCALE", "1"))
"""Multiplies every case's number of examples (e.g. 10 for a long local hunt)."""

EXPENSIVE = ("flow.", "sgd.", "streams.", "notebook.", "optimality", "trajectory_diagnostics",
             "plotting.plot", "plotting.animate", "plotting.save", "separation.empirical",
             "sweep.", "covering.", "GaussianPopulationEstimator", "sample_inputs(sphere)")


DYNAMICS = ("flow.euler", "flow.integrate", "sgd.sgd", "sgd.online_sgd", "sgd.minibatch_sgd",
            "streams.", "notebook.notebook_run")


def case(name: str, *args: Any, examples: int = 40, **kwargs: Any) -> None:
    if name.startswith(DYNAMICS):
        kwargs.setdefault("allowed", (mf.DivergenceError,))
    cheap = not any(name.startswith(e) or e in name for e in EXPENSIVE)
    n = examples * (2.5 if cheap else 1.0) * SCALE
    CASES.append(Case(name, *args, examples=max(1, round(n)), **kwargs))


# network
case("network.preactivation", network.preactivation,
     [pos("theta", _th, ARR, ("theta", "x")), pos("x", _x, ARR_D, ("x", "theta"))],
     examples=80, check=shape_is(_nm_shape))
case("network.feature", network.feature,
     [pos("theta", _th, ARR, ("theta", "x")), pos("x", _x, ARR_D, ("x", "theta")),
      P("activation", _act, ACT)], examples=80, check=shape_is(_nm_shape))
case("network.feature_grad", network.feature_grad,
     [pos("theta", _th, ARR, ("theta", "x")), pos("x", _x, ARR_D, ("x", "theta")),
      P("activation", _act, ACT)], examples=80,
     check=shape_is(lambda c, v: (*_nm_shape(c, v), np.shape(v["x"])[-1] + 2)))
case("network.output", network.output,
     [pos("measure", _mu, bad_measure(), ("measure", "theta", "x")),
      pos("x", _x, ARR_D, ("x", "measure", "theta")), P("activation", _act, ACT)],
     examples=80)
case("network.check_theta", network.check_theta, [pos("theta", _th, ARR)], examples=50)

# measure
def _masses(ctx):
    p = ctx.rng.uniform(0.1, 1.0, ctx.m)
    return p / p.sum()


def _bad_masses(draw, ctx, v):
    k = draw(st.sampled_from(["negative", "sum", "array"]))
    if k == "negative":
        p = np.full(ctx.m + 1, 1.0 / (ctx.m - 1 if ctx.m > 1 else 1))
        p[0] = -p[0] * (ctx.m - 1) if ctx.m > 1 else -1.0
        return Bad(p[: ctx.m] if ctx.m > 1 else np.array([-1.0]), RAISE, k)
    if k == "sum":
        return Bad(np.asarray(v) * 1.5, RAISE, k)
    return bad_array(optional=True, lastdim=RAISE)(draw, ctx, v)


case("measure.ParticleMeasure", mf.ParticleMeasure,
     [pos("theta", _th, ARR, ("theta", "masses")),
      pos("masses", _masses, _bad_masses, ("masses", "theta"))], examples=80)
case("ParticleMeasure.with_theta", lambda mu, theta: mu.with_theta(theta),
     [pos("mu", _mu), pos("theta", _th, ARR)], examples=40)
case("ParticleMeasure.replica",
     lambda mu, index: mu.replica(index),
     [pos("mu", lambda c: c.student(runs=3)),
      pos("index", lambda c: int(c.rng.integers(-3, 3)),
          bad_choice(extra=(3, -4, 1.5, (0, 0), "0", 10**20)))], examples=40)
case("ParticleMeasure.stack", mf.ParticleMeasure.stack,
     [pos("measures", lambda c: [c.student(), c.student()],
          lambda draw, c, v: Bad(draw(st.sampled_from(
              [[], [v[0], "x"], [v[0], mf.ParticleMeasure(c.theta(m=c.m + 1))], None, 3])),
              RAISE, "measures"))], examples=30)
case("ParticleMeasure.effective_neurons", lambda mu: mu.effective_neurons(),
     [pos("mu", _mu, lambda draw, c, v: Bad(v.with_theta(v.theta * draw(st.sampled_from(
         [1e150, 1e300, 1e-300]))), MAY, "scale"))], messages=("theta",), examples=20)

for _law, _size in [("gaussian", "std"), ("sphere", "radius"), ("notebook_sphere", "radius"),
                    ("balanced", "scale")]:
    case(f"measure.{_law}", getattr(measure, _law),
         [pos("m", lambda c: c.m, bad_int()), pos("d", lambda c: c.d, bad_int()),
          P(_size, lambda c: float(c.rng.uniform(0.01, 3.0)), bad_real()),
          P("runs", lambda c: None if c.rng.random() < 0.5 else 2, bad_int(optional=True)),
          P("rng", lambda c: c.seed, bad_rng())], examples=50)
case("measure.notebook_teacher", measure.notebook_teacher,
     [pos("m0", lambda c: c.m0, bad_int()), pos("d", lambda c: c.d, bad_int()),
      P("rng", lambda c: c.seed, bad_rng())], examples=40)
case("measure.spawn_rngs", measure.spawn_rngs,
     [pos("rng", lambda c: c.seed, bad_rng()), pos("n", lambda c: c.m, bad_int())],
     examples=40)

# activations
case("activations.get_activation", activations.get_activation,
     [pos("activation", _act, bad_choice(extra=(1.0, b"relu")))], examples=30)
case("Activation.__call__", lambda act, u: activations.get_activation(act)(u),
     [pos("act", _act), pos("u", lambda c: c.normal(c.n, c.m, scale=3.0),
                                bad_array(nonfinite=MAY, skip=("lastdim",)))],
     examples=60, check=lambda r, c, v: None)

# data
case("data.sample_inputs", data.sample_inputs,
     [pos("n", lambda c: c.n, bad_int()), pos("d", lambda c: c.d, bad_int()),
      P("law", lambda c: "gaussian" if c.rng.random() < 0.5 else "sphere", bad_choice()),
      P("radius", lambda c: float(c.rng.uniform(0.1, 2.0)), None),
      P("rng", lambda c: c.seed, bad_rng())], examples=50,
     check=shape_is(lambda c, v: (int(v["n"]), int(v["d"]))))
case("data.sample_inputs(sphere)",
     lambda radius, rng: data.sample_inputs(4, 2, law="sphere", radius=radius, rng=rng),
     [pos("radius", lambda c: float(c.rng.uniform(0.1, 2.0)), bad_real()),
      pos("rng", lambda c: c.seed)], examples=30)
case("data.Teacher", lambda measure, activation, x: data.Teacher(measure, activation)(x),
     [pos("measure", _teacher, bad_measure(), ("measure", "x", "theta")),
      pos("activation", _act, ACT), pos("x", _x, ARR_D, ("x", "theta", "measure"))],
     examples=60)
case("data.CallableTarget",
     lambda function, d, x: data.CallableTarget(function, d)(x),
     [pos("function", lambda c: (lambda x: np.sin(x).sum(axis=-1)),
          lambda draw, c, v: Bad(draw(st.sampled_from([
              None, 3, lambda x: x, lambda x: np.full(x.shape[:-1], np.nan),
              lambda x: np.full(x.shape[:-1], "a"), lambda x: x.sum(axis=-1)[..., :-1],
          ])), RAISE, "function"), ("function", "target")),
      pos("d", lambda c: c.d, bad_int(optional=True)),
      pos("x", _x, ARR_D, ("x", "target"))], examples=50)
case("data.as_target", lambda target, activation: data.as_target(target, activation=activation),
     [pos("target", _teacher, bad_object(b"x")), P("activation", _act, ACT)], examples=30)
case("data.evaluate_target",
     lambda target, x, d: data.evaluate_target(data.Teacher(target), x, d),
     [pos("target", _teacher, bad_measure(), ("target", "measure", "x")),
      pos("x", _x, ARR_D, ("x", "target", "measure", "d")),
      pos("d", lambda c: c.d, bad_int(), ("d", "target", "x"))], examples=50)
case("data.notebook_frame_sizes", data.notebook_frame_sizes,
     [pos("n_frames", lambda c: c.m * 3, bad_int()), P("repeat_first", lambda c: c.m > 2)],
     examples=30)

# velocity / population
def _est_method(cls, method, with_theta=True):
    def fn(est, measure, theta=None):
        f = getattr(est, method)
        return f(measure) if not with_theta else f(measure, theta)

    return fn


for _cls, _builder in [("SampleEstimator", _sample_est), ("GaussianPopulationEstimator", _pop)]:
    for _meth in ("risk", "first_variation", "grad_first_variation", "velocity",
                  "particle_gradient"):
        _theta_param = _meth in ("first_variation", "grad_first_variation", "velocity")
        _params = [pos("est", _builder),
                   pos("measure", _mu, bad_measure(), ("measure", "theta", "batch_shape"))]
        if _theta_param:
            _params.append(pos("theta", lambda c: None if c.rng.random() < 0.3 else c.theta(2),
                               bad_array(optional=True, lastdim=RAISE), ("theta", "measure")))
        case(f"{_cls}.{_meth}", _est_method(_cls, _meth, _theta_param), _params,
             examples=35 if _cls == "SampleEstimator" else 30)
case("GaussianPopulationEstimator.excess_risk", lambda est, mu: est.excess_risk(mu),
     [pos("est", _pop), pos("measure", _mu, bad_measure(), ("measure", "batch_shape"))],
     examples=30)
case("SampleEstimator.residual", lambda est, mu: est.residual(mu),
     [pos("est", _sample_est), pos("measure", _mu, bad_measure(), ("measure", "batch_shape"))],
     examples=30)
case("velocity.SampleEstimator",
     lambda x, target, activation: velocity.SampleEstimator(x, target, activation=activation),
     [pos("x", lambda c: c.x(8), ARR_D, ("x", "target")),
      pos("target", _teacher, bad_object(), ("target", "measure", "x")),
      P("activation", _act, ACT)], examples=50)
case("population.GaussianPopulationEstimator",
     lambda target, activation, n_nodes, method: population.GaussianPopulationEstimator(
         target, activation=activation, n_nodes=n_nodes, method=method).risk(
             mf.ParticleMeasure(np.ones((2, target.d + 2)) if isinstance(target, mf.ParticleMeasure)
                                else np.ones((2, 4)))),
     [pos("target", _teacher, bad_object(lambda x: x), ("target",)),
      P("activation", _act, ACT),
      P("n_nodes", lambda c: int(c.rng.integers(4, 40)), bad_int()),
      P("method", lambda c: "auto", bad_choice())], examples=40)

# kernels
def _th2(ctx):
    return None if ctx.rng.random() < 0.3 else ctx.theta(ctx.m0)


TH_PRIME = bad_array(optional=True, lastdim=RAISE)
case("kernels.relu_kernel", kernels.relu_kernel,
     [pos("theta", _th, ARR), pos("theta_prime", _th2, TH_PRIME, ("theta_prime", "theta"))],
     examples=60)
case("kernels.arccos_kernel", kernels.arccos_kernel,
     [pos("w", lambda c: c.normal(c.m, c.d), ARR),
      pos("w_prime", lambda c: None if c.rng.random() < 0.3 else c.normal(c.m0, c.d),
          TH_PRIME, ("w_prime", "w", "theta"))], examples=50)
case("kernels.erf_kernel", kernels.erf_kernel,
     [pos("w", lambda c: c.normal(c.m, c.d), ARR),
      pos("w_prime", lambda c: None if c.rng.random() < 0.3 else c.normal(c.m0, c.d),
          TH_PRIME, ("w_prime", "w", "theta"))], examples=50)
_METHOD = bad_choice()
for _fn in ("gaussian_kernel", "gaussian_kernel_grad"):
    case(f"kernels.{_fn}", getattr(kernels, _fn),
         [pos("theta", _th, ARR, ("theta", "theta_prime")),
          pos("theta_prime", _th2, TH_PRIME, ("theta_prime", "theta")),
          P("activation", _act, ACT), P("method", lambda c: "auto", _METHOD),
          P("n_nodes", lambda c: int(c.rng.integers(4, 24)), bad_int())], examples=50)
for _fn in ("gaussian_mean", "gaussian_mean_grad"):
    case(f"kernels.{_fn}", getattr(kernels, _fn),
         [pos("theta", _th, ARR), P("activation", _act, ACT),
          P("method", lambda c: "auto", _METHOD),
          P("n_nodes", lambda c: int(c.rng.integers(4, 24)), bad_int())], examples=50)
case("kernels.kernel_block", kernels.kernel_block,
     [pos("theta", _th, ARR, ("theta", "theta_prime")),
      pos("theta_prime", _th2, TH_PRIME, ("theta_prime", "theta")),
      P("activation", _act, ACT),
      P("activation_prime", lambda c: None if c.rng.random() < 0.5 else c.act,
        bad_choice(optional=True)),
      P("method", lambda c: "auto", _METHOD),
      P("n_nodes", lambda c: int(c.rng.integers(4, 24)), bad_int()),
      P("grad", lambda c: bool(c.rng.random() < 0.7)),
      P("workers", lambda c: None if c.rng.random() < 0.5 else 2, bad_int(optional=True))],
     examples=50)
case("KernelBlock.contract",
     lambda theta, theta_prime, coef: kernels.kernel_block(theta, theta_prime).contract(
         coef, np.asarray(theta)[..., 1:-1], np.asarray(theta_prime)[..., 1:-1]),
     [pos("theta", _th), pos("theta_prime", lambda c: c.theta(c.m0)),
      pos("coef", lambda c: c.normal(c.m, c.m0), ARR_D)], examples=30)
case("bivariate_normal.bivariate_normal_cdf", bivariate_normal_cdf,
     [pos("h", lambda c: c.normal(c.n, scale=2.0), bad_array(skip=("inf", "-inf"))),
      pos("k", lambda c: c.normal(c.n, scale=2.0), bad_array(skip=("inf", "-inf"))),
      pos("rho", lambda c: c.rng.uniform(-1, 1, c.n),
          lambda draw, c, v: Bad(v * 1.5 + np.sign(v), RAISE, "outside")
          if draw(st.booleans()) else bad_array()(draw, c, v))],
     examples=60, messages=("broadcast",))
case("bivariate_normal.bivariate_normal_cdf(inf)",
     lambda h, k, rho: bivariate_normal_cdf(h, k, rho),
     [pos("h", lambda c: np.array([np.inf, -np.inf, 0.0, 1.0])[: c.n % 4 + 1]),
      pos("k", lambda c: np.array([-np.inf, np.inf, np.inf, 2.0])[: c.n % 4 + 1]),
      pos("rho", lambda c: float(c.rng.choice([-1.0, -0.5, 0.0, 0.999999, 1.0])))],
     examples=20)
case("quadrature.gauss_hermite", gauss_hermite,
     [pos("n_nodes", lambda c: int(c.rng.integers(1, 64)), bad_int())], examples=30)
case("kernels.default_workers", kernels.default_workers, [], examples=5)

# flow
case("flow.snapshot_times", flow.snapshot_times,
     [pos("t_end", lambda c: float(c.rng.uniform(0.1, 100)), bad_real()),
      pos("n", lambda c: int(c.rng.integers(2, 50)), bad_int(minimum=2)),
      P("t_first", lambda c: None, bad_real(optional=True)),
      P("spacing", lambda c: "log" if c.rng.random() < 0.5 else "linear", bad_choice())],
     examples=50, messages=("t_first", "t_end"))
case("flow.record_schedule", flow.record_schedule,
     [pos("n_steps", lambda c: int(c.rng.integers(0, 200)), bad_int(minimum=0)),
      P("steps", lambda c: None, lambda draw, c, v: Bad(draw(st.sampled_from(
          [[1.5], [-1], [10**6], ["a"], [np.nan], np.array([[1, 2]]), [3, 1, 2]])),
          MAY, "steps"), ("steps", "record")),
      P("every", lambda c: None, bad_int(optional=True), ("every", "record_every")),
      P("n", lambda c: int(c.rng.integers(2, 30)), bad_int(minimum=2),
        ("n", "n_snapshots"))], examples=50, messages=("record",))

case("flow.euler",
     lambda measure, estimator, step, n_steps, record_every, weight_decay: flow.euler(
         measure, estimator, step=step, n_steps=n_steps, record_every=record_every,
         weight_decay=weight_decay, progress=False),
     [pos("measure", _mu, MEAS, ("measure", "d=")),
      pos("estimator", _estimator, bad_object(lambda m: m), ("estimator",)),
      pos("step", lambda c: float(c.rng.uniform(0.01, 0.2)), bad_real()),
      pos("n_steps", lambda c: int(c.rng.integers(0, 20)), bad_int(minimum=0)),
      pos("record_every", lambda c: None if c.rng.random() < 0.5 else 3,
          bad_int(optional=True), ("record_every",)),
      pos("weight_decay", lambda c: 0.0, bad_real(allow_zero=True))], examples=40)
case("flow.euler(t_end, times)",
     lambda measure, estimator, t_end, times: flow.euler(
         measure, estimator, step=0.05, t_end=t_end, times=times, progress=False),
     [pos("measure", _mu), pos("estimator", _estimator),
      pos("t_end", lambda c: float(c.rng.uniform(0.05, 1.0)), bad_real(), ("t_end", "n_steps")),
      pos("times", lambda c: None if c.rng.random() < 0.5 else [0.0, 0.1, 0.3],
          bad_array(optional=True))], examples=30, messages=("record",))
case("flow.integrate",
     lambda measure, estimator, t_end, method, rtol, atol, times, max_step, first_step:
     flow.integrate(measure, estimator, t_end, method=method, rtol=rtol, atol=atol,
                    times=times, max_step=max_step, first_step=first_step, n_snapshots=5,
                    progress=False),
     [pos("measure", _mu, MEAS, ("measure", "d=")),
      pos("estimator", _estimator, bad_object(), ("estimator",)),
      pos("t_end", lambda c: float(c.rng.uniform(0.05, 0.5)), bad_real()),
      pos("method", lambda c: str(c.rng.choice(flow.METHODS)), bad_choice(extra=("rk45",))),
      pos("rtol", lambda c: 1e-4, bad_real()), pos("atol", lambda c: 1e-6, bad_real()),
      pos("times", lambda c: None, bad_array(optional=True)),
      pos("max_step", lambda c: np.inf, lambda draw, c, v: Bad(*draw(st.sampled_from(
          [(0.0, RAISE), (-1.0, RAISE), (math.nan, RAISE), ("1", RAISE), ([1.0], RAISE),
           (None, RAISE), (True, RAISE), (0.05, MAY), (1e-300, MAY)])), "max_step")),
      pos("first_step", lambda c: None, bad_real(optional=True))],
     examples=40)

# sgd and streams
def _stream(ctx):
    return streams.OnlineStream(ctx.teacher(), int(ctx.rng.integers(1, 6)))


def _sgd_call(measure, stream, step, n_steps, record_every, risk, rng, backend, activation):
    return sgd.sgd(measure, stream, step=step, n_steps=n_steps, record_every=record_every,
                   risk=risk, rng=rng, backend=backend, activation=activation, progress=False)


case("sgd.sgd", _sgd_call,
     [pos("measure", _mu, MEAS, ("measure", "d=")),
      pos("stream", _stream, bad_object(), ("stream",)),
      pos("step", lambda c: float(c.rng.uniform(0.01, 0.1)), bad_real()),
      pos("n_steps", lambda c: int(c.rng.integers(0, 30)), bad_int(minimum=0)),
      pos("record_every", lambda c: None if c.rng.random() < 0.5 else 4,
          bad_int(optional=True)),
      pos("risk", lambda c: bool(c.rng.random() < 0.5), bad_object(optional=True), ("risk",)),
      pos("rng", lambda c: c.seed, bad_rng()),
      pos("backend", lambda c: str(c.rng.choice(["numpy", "auto"])), bad_choice()),
      pos("activation", _act, ACT)], examples=50)
case("sgd.online_sgd",
     lambda measure, target, step, n_steps, batch_size, law, rng: sgd.online_sgd(
         measure, target, step=step, n_steps=n_steps, batch_size=batch_size, law=law, rng=rng,
         risk=False, progress=False, backend="numpy"),
     [pos("measure", _mu, MEAS, ("measure", "d=")),
      pos("target", _teacher, bad_measure(), ("target", "measure", "d=", "d ")),
      pos("step", lambda c: 0.05, bad_real()),
      pos("n_steps", lambda c: int(c.rng.integers(0, 20)), bad_int(minimum=0)),
      pos("batch_size", lambda c: int(c.rng.integers(1, 8)), bad_int()),
      pos("law", lambda c: "gaussian", bad_choice()),
      pos("rng", lambda c: c.seed, bad_rng())], examples=40)
case("sgd.minibatch_sgd",
     lambda measure, x, y, step, epochs, batch_size: sgd.minibatch_sgd(
         measure, x, y, step=step, epochs=epochs, batch_size=batch_size, rng=0, risk=False,
         progress=False, backend="numpy"),
     [pos("measure", _mu, MEAS, ("measure", "d=")),
      pos("x", lambda c: c.x(10), ARR_D, ("x", "d=", "y")),
      pos("y", lambda c: c.normal(10), bad_array(lastdim=RAISE), ("y", "x")),
      pos("step", lambda c: 0.05, bad_real()),
      pos("epochs", lambda c: int(c.rng.integers(1, 3)), bad_int()),
      pos("batch_size", lambda c: int(c.rng.integers(1, 10)), bad_int(),
          ("batch_size", "x"))], examples=40)
case("sgd.step_from_tau", sgd.step_from_tau,
     [pos("tau", lambda c: 0.5, bad_real()), pos("m", lambda c: c.m, bad_int())], examples=30)
case("sgd.tau_from_step", sgd.tau_from_step,
     [pos("step", lambda c: 0.5, bad_real()), pos("m", lambda c: c.m, bad_int())], examples=30)


def _through_sgd(make):
    def fn(*args, **kwargs):
        stream = make(*args, **kwargs)
        mu = mf.ParticleMeasure(np.ones((2, stream.d + 2)))
        total = stream.n_steps
        return sgd.sgd(mu, stream, step=0.01, n_steps=3 if total is None else min(total, 3),
                       rng=0, risk=None, progress=False, backend="numpy")

    return fn


case("streams.OnlineStream", _through_sgd(streams.OnlineStream),
     [pos("target", _teacher, bad_object(), ("target",)),
      pos("batch_size", lambda c: int(c.rng.integers(1, 6)), bad_int()),
      P("d", lambda c: None, bad_int(optional=True), ("d",)),
      P("law", lambda c: "gaussian", bad_choice()),
      P("radius", lambda c: 1.0, bad_real()),
      P("chunk", lambda c: int(c.rng.integers(1, 300)), bad_int())], examples=40,
     messages=("d=",))
case("streams.DatasetStream", _through_sgd(streams.DatasetStream),
     [pos("x", lambda c: c.x(12), ARR, ("x", "y", "target")),
      pos("y", lambda c: c.normal(12), bad_array(optional=True, lastdim=RAISE), ("y", "x")),
      P("target", lambda c: None, bad_object(optional=True), ("target", "y")),
      P("batch_size", lambda c: int(c.rng.integers(1, 12)), bad_int(), ("batch_size", "x")),
      P("epochs", lambda c: int(c.rng.integers(1, 3)), bad_int())], examples=40)
case("streams.FrameStream", _through_sgd(streams.FrameStream),
     [pos("sizes", lambda c: [20, 40], lambda draw, c, v: Bad(draw(st.sampled_from(
         [[], [0], [-20], [2.5], [[20]], "a", None, [np.nan]])), RAISE, "sizes"),
          ("sizes", "batch_size")),
      pos("target", _teacher, bad_object(), ("target",)),
      pos("batch_size", lambda c: int(c.rng.integers(1, 20)), bad_int(), ("batch_size", "sizes")),
      P("law", lambda c: "gaussian", bad_choice()),
      P("radius", lambda c: 1.0, bad_real())], examples=40)
case("streams.FrameStream.notebook", _through_sgd(streams.FrameStream.notebook),
     [pos("target", _teacher, bad_object(), ("target",)),
      pos("n_frames", lambda c: int(c.rng.integers(1, 4)), bad_int()),
      P("repeat_first", lambda c: bool(c.rng.random() < 0.5)),
      P("batch_size", lambda c: int(c.rng.integers(1, 30)), bad_int())], examples=30)
case("streams.ArrayStream", _through_sgd(streams.ArrayStream),
     [pos("x", lambda c: c.normal(4, 3, c.d), ARR, ("x", "y")),
      pos("y", lambda c: c.normal(4, 3), bad_array(lastdim=RAISE), ("y", "x")),
      P("target", lambda c: None, bad_object(optional=True), ("target",)),
      P("block_sizes", lambda c: None, lambda draw, c, v: Bad(draw(st.sampled_from(
          [[1, 1], [5], [-1, 5], [2.5, 1.5], "a", [[4]]])), RAISE, "block_sizes"),
        ("block_sizes",))], examples=40)

# notebook
case("notebook.notebook_initial", notebook.notebook_initial,
     [pos("seed", lambda c: c.seed, bad_int(minimum=0)),
      P("m0", lambda c: c.m0, bad_int()), P("m", lambda c: c.m, bad_int()),
      P("d", lambda c: c.d, bad_int()), P("radius", lambda c: 0.05, bad_real())], examples=40)
case("notebook.notebook_stream",
     lambda random_state, teacher, n_frames, batch_size: notebook.notebook_stream(
         random_state, teacher, n_frames, batch_size=batch_size),
     [pos("random_state", lambda c: np.random.RandomState(c.seed % 2**32),
          bad_object(), ("random_state", "rng")),
      pos("teacher", _teacher, bad_measure(lastdim=MAY), ("teacher", "target")),
      pos("n_frames", lambda c: int(c.rng.integers(1, 3)), bad_int()),
      pos("batch_size", lambda c: int(c.rng.integers(1, 30)), bad_int())], examples=30)
case("notebook.notebook_run",
     lambda n_frames, seed, record_every, m, radius, tau, batch_size: notebook.notebook_run(
         n_frames, seed=seed, record_every=record_every, m=m, radius=radius, tau=tau,
         batch_size=batch_size, risk=False, progress=False),
     [pos("n_frames", lambda c: int(c.rng.integers(1, 3)), bad_int()),
      pos("seed", lambda c: c.seed % 1000, bad_int(minimum=0)),
      pos("record_every", lambda c: 1, bad_int()),
      pos("m", lambda c: c.m, bad_int()),
      pos("radius", lambda c: 0.05, bad_real()),
      pos("tau", lambda c: 0.5, bad_real()),
      pos("batch_size", lambda c: int(c.rng.integers(1, 30)), bad_int())], examples=30)

# trajectory
case("trajectory.Trajectory",
     lambda times, thetas, masses, risks, steps, activation, teacher, config: mf.Trajectory(
         times, thetas, masses, risks, steps, activation, teacher, config),
     [pos("times", lambda c: np.array([0.0, 0.5, 1.0]),
          lambda draw, c, v: Bad(np.array([0.0, 1.0, 0.5]), RAISE, "decreasing")
          if draw(st.booleans()) else bad_array(lastdim=RAISE)(draw, c, v), ("times", "thetas")),
      pos("thetas", lambda c: c.normal(3, c.m, c.d + 2),
          bad_array(skip=("nan", "inf", "-inf")), ("thetas", "masses", "risks", "times")),
      pos("masses", lambda c: np.full(c.m, 1.0 / c.m), bad_array(lastdim=RAISE),
          ("masses", "thetas")),
      pos("risks", lambda c: c.rng.uniform(0, 1, 3), bad_array(optional=True, lastdim=RAISE,
                                                               skip=("nan", "inf", "-inf")),
          ("risks",)),
      pos("steps", lambda c: np.arange(3), bad_array(optional=True, lastdim=RAISE),
          ("steps",)),
      pos("activation", _act, lambda draw, c, v: Bad(draw(st.sampled_from(["", 3, None])),
                                                     RAISE, "activation"), ("activation",)),
      pos("teacher", lambda c: None, bad_object(optional=True), ("teacher",)),
      pos("config", lambda c: {"a": 1}, bad_object(), ("config",))], examples=60)
case("Trajectory.replica", lambda traj, index: traj.replica(index),
     [pos("traj", lambda c: mf.Trajectory(np.arange(3.0), c.normal(3, 2, c.m, c.d + 2),
                                          np.full(c.m, 1 / c.m))),
      pos("index", lambda c: int(c.rng.integers(0, 2)),
          bad_choice(extra=(2, -3, 1.5, (0, 0), "0", 10**20)))], examples=40)
case("Trajectory.measure", lambda traj, index: traj.measure(index),
     [pos("traj", _traj),
      pos("index", lambda c: int(c.rng.integers(-3, 3)),
          bad_choice(extra=(3, -4, 1.5, "0", 10**20)))], examples=30)
case("trajectory.describe_rng", trajectory.describe_rng,
     [pos("rng", lambda c: c.seed, lambda draw, c, v: Bad(draw(st.sampled_from(
         [None, np.random.default_rng(1), np.random.SeedSequence(3), np.random.RandomState(2),
          object(), "s", 2.5])), MAY, "rng"))], examples=20)

# diagnostics
MEAS_EST = bad_measure()
for _fn in ("risk", "wasserstein_gradient_norm"):
    case(f"diagnostics.{_fn}", getattr(diagnostics, _fn),
         [pos("measure", _mu, MEAS_EST, ("measure", "d=", "batch_shape")),
          pos("estimator", _estimator, bad_object(), ("estimator",))], examples=30)
case("diagnostics.excess_risk", diagnostics.excess_risk,
     [pos("measure", _mu, MEAS_EST, ("measure", "d=", "batch_shape")),
      pos("estimator", _estimator, bad_object(), ("estimator",)),
      P("min_risk", lambda c: None, bad_real(optional=True, allow_zero=True))], examples=30,
     messages=("min_risk", "estimator"))
case("diagnostics.optimality_certificate",
     lambda measure, estimator, n_starts, n_refine, max_iter, rng:
     diagnostics.optimality_certificate(measure, estimator, n_starts=n_starts,
                                        n_refine=n_refine, max_iter=max_iter, rng=rng),
     [pos("measure", _mu, MEAS_EST, ("measure", "d=", "batch_shape")),
      pos("estimator", lambda c: mf.GaussianPopulationEstimator(c.teacher()),
          bad_object(), ("estimator",)),
      pos("n_starts", lambda c: int(c.rng.integers(1, 16)), bad_int()),
      pos("n_refine", lambda c: int(c.rng.integers(1, 4)), bad_int()),
      pos("max_iter", lambda c: int(c.rng.integers(1, 10)), bad_int()),
      pos("rng", lambda c: c.seed, bad_rng())], examples=25)
case("diagnostics.balancedness", diagnostics.balancedness,
     [pos("theta", _th, ARR)], examples=40)
case("diagnostics.balancedness_drift", diagnostics.balancedness_drift,
     [pos("before", _th, ARR, ("before", "theta")),
      pos("after", lambda c: c.theta(lead=(2,)), ARR_D, ("after", "theta", "broadcast"))],
     examples=40, messages=("theta", "broadcast"))
case("diagnostics.relative_displacement", diagnostics.relative_displacement,
     [pos("theta0", _th, ARR, ("theta0", "theta")),
      pos("theta", lambda c: c.theta(lead=(2,)), ARR_D, ("theta",)),
      pos("masses", lambda c: None if c.rng.random() < 0.5 else np.full(c.m, 1 / c.m),
          bad_array(optional=True, lastdim=RAISE), ("masses",))],
     examples=40, nan_ok=("result[0]",))
case("diagnostics.trajectory_diagnostics",
     lambda trajectory, estimator, eps, certificate_at, min_risk, chunk:
     diagnostics.trajectory_diagnostics(trajectory, estimator, eps=eps,
                                        certificate_at=certificate_at, min_risk=min_risk,
                                        chunk=chunk, rng=0),
     [pos("trajectory", _traj, bad_object(), ("trajectory",)),
      pos("estimator", _estimator, bad_object(), ("estimator",)),
      pos("eps", lambda c: 1e-3, bad_real()),
      pos("certificate_at", lambda c: None if c.rng.random() < 0.7 else [0, -1],
          lambda draw, c, v: Bad(draw(st.sampled_from([[1.5], ["a"], [[0]], [10**30]])),
                                 MAY, "certificate_at"), ("certificate_at",)),
      pos("min_risk", lambda c: None, bad_real(optional=True, allow_zero=True)),
      pos("chunk", lambda c: None, bad_int(optional=True))], examples=30,
     acts=("relu", "erf"), nan_ok=("result.convergence_time", "result.mass_ratio"))

# convergence
case("convergence.convergence_time", convergence.convergence_time,
     [pos("times", lambda c: np.linspace(0, 1, c.n), ARR, ("times", "values")),
      pos("values", lambda c: c.rng.uniform(0, 1, c.n), bad_array(nonfinite=MAY, lastdim=RAISE),
          ("values", "times")),
      pos("eps", lambda c: 0.5, bad_real())], examples=40,
     nan_ok=("result",))
case("convergence.detect_plateaus",
     lambda times, values, slope_tol, min_decades, window_decades:
     convergence.detect_plateaus(times, values, slope_tol=slope_tol, min_decades=min_decades,
                                 window_decades=window_decades),
     [pos("times", lambda c: np.geomspace(1e-2, 1e2, 5 * c.n), ARR, ("times", "values")),
      pos("values", lambda c: np.geomspace(1.0, 1e-3, 5 * c.n),
          bad_array(nonfinite=MAY, lastdim=RAISE),
          ("values", "times")),
      pos("slope_tol", lambda c: 0.1, bad_real()),
      pos("min_decades", lambda c: 0.5, bad_real()),
      pos("window_decades", lambda c: 0.1, bad_real())], examples=40)

# covering
case("covering.cap_fraction", covering.cap_fraction,
     [pos("t", lambda c: c.rng.uniform(0, np.pi, c.n), ARR), pos("k", lambda c: c.d, bad_int())],
     examples=40)
case("covering.covering_radius",
     lambda points, method, n_probe, confidence, rng: covering.covering_radius(
         points, method=method, n_probe=n_probe, confidence=confidence, rng=rng),
     [pos("points", lambda c: c.normal(c.m, c.d + 1), ARR),
      pos("method", lambda c: "auto", bad_choice()),
      pos("n_probe", lambda c: int(c.rng.integers(1, 200)), bad_int()),
      pos("confidence", lambda c: 0.9, bad_real()),
      pos("rng", lambda c: c.seed, bad_rng())], examples=40)
case("covering.expected_covering_radius",
     lambda m, k, method, n_rep: covering.expected_covering_radius(
         m, k, method=method, n_rep=n_rep, rng=0),
     [pos("m", lambda c: c.m + 2, bad_int()), pos("k", lambda c: c.d, bad_int()),
      pos("method", lambda c: str(c.rng.choice(["asymptotic", "monte_carlo"])), bad_choice()),
      pos("n_rep", lambda c: int(c.rng.integers(1, 3)), bad_int())], examples=30)

# recovery
for _fn in ("effective_neuron_mmd", "teacher_recovery"):
    case(f"recovery.{_fn}", getattr(recovery, _fn),
         [pos("student", _mu, bad_measure(), ("student", "d=")),
          pos("teacher", _teacher, bad_measure(), ("teacher", "d=")),
          P("kappa", lambda c: 10.0, bad_real())], examples=40, nan_ok=("result.angle",))

# separation and supports
case("separation.check_separation",
     lambda support, d, activation, theorem, radii: separation.check_separation(
         support, d=d, activation=activation, theorem=theorem, radii=radii),
     [pos("support", lambda c: str(c.rng.choice(
         ["gaussian", "sphere", "notebook_sphere", "balanced", "positive_a"])),
          bad_choice(extra=(b"sphere",)), ("support", "law")),
      pos("d", lambda c: c.d, bad_int()),
      pos("activation", _act, ACT),
      pos("theorem", lambda c: None, bad_choice(optional=True)),
      pos("radii", lambda c: None, lambda draw, c, v: Bad(draw(st.sampled_from(
          [(1.0,), (2.0, 1.0), (-1.0, 2.0), (0.0, 1.0), (math.nan, 1.0), "ab", (1, 2, 3)])),
          RAISE, "radii"), ("radii",))], examples=50)
case("separation.empirical_separation",
     lambda measure, activation, eps, n_probe, confidence, rng:
     separation.empirical_separation(measure, activation=activation, eps=eps,
                                     n_probe=n_probe, confidence=confidence, rng=rng),
     [pos("measure", _mu, bad_measure(lastdim=MAY, ensemble=RAISE), ("measure",)),
      pos("activation", _act, ACT),
      pos("eps", lambda c: None, bad_real(optional=True)),
      pos("n_probe", lambda c: int(c.rng.integers(1, 300)), bad_int()),
      pos("confidence", lambda c: 0.9, bad_real()),
      pos("rng", lambda c: c.seed, bad_rng())], examples=40, nan_ok=("result.expected",))
case("support.support_of", lambda law, radius: support.support_of(law, radius=radius),
     [pos("law", lambda c: str(c.rng.choice(["sphere", "notebook_sphere"])), bad_choice()),
      pos("radius", lambda c: 0.5, bad_real())], examples=30)
case("support.Support",
     lambda a, u_norm, norm, polar_angle, u_halfspaces: support.Support(
         a, u_norm, norm, polar_angle, u_halfspaces).contains(np.ones(4)),
     [pos("a", lambda c: None, lambda draw, c, v: Bad(draw(st.sampled_from(
         [(2.0, 1.0), "a", (math.nan, 1.0), ((1.0, 2.0, 3.0),)])), RAISE, "a")),
      pos("u_norm", lambda c: (0.5, 2.0), lambda draw, c, v: Bad(draw(st.sampled_from(
          [(-1.0, 2.0), (2.0, 1.0), "a", (math.nan, 1.0)])), RAISE, "u_norm")),
      pos("norm", lambda c: None, lambda draw, c, v: Bad(draw(st.sampled_from(
          [(-1.0, 2.0), (3.0, 1.0), [[1.0, 2.0, 3.0]]])), RAISE, "norm")),
      pos("polar_angle", lambda c: None, lambda draw, c, v: Bad(draw(st.sampled_from(
          [(0.0, 4.0), (-1.0, 1.0)])), RAISE, "polar_angle")),
      pos("u_halfspaces", lambda c: (), lambda draw, c, v: Bad(draw(st.sampled_from(
          [[([0.0, 0.0, 0.0], 1.0)], [([1.0, 0.0, 0.0], "a")], [(1.0,)], [3],
           [([np.nan, 1.0, 0.0], 0.0)]])), RAISE, "u_halfspaces"))], examples=40)
case("Support.contains",
     lambda theta, atol: support.Support.u_halfspace(np.ones(3)).contains(theta, atol=atol),
     [pos("theta", lambda c: c.normal(c.m, 4), bad_array(lastdim=RAISE)),
      pos("atol", lambda c: 0.0, bad_real(allow_zero=True))], examples=40)

# plotting (closed after each call)
case("plotting.effective_coordinates", plotting.effective_coordinates,
     [pos("theta", _th, ARR)], examples=30)
case("plotting.plot_particles",
     lambda thetas, teacher, lim: plotting.plot_particles(thetas, teacher=teacher, lim=lim),
     [pos("thetas", lambda c: c.normal(3, c.m, 4), ARR, ("thetas",)),
      pos("teacher", lambda c: mf.ParticleMeasure(c.normal(2, 4)), bad_object(optional=True),
          ("teacher",)),
      pos("lim", lambda c: 2.0, bad_real())], examples=20)
case("plotting.plot_risk",
     lambda times, risks, loglog: plotting.plot_risk(times, risks, loglog=loglog),
     [pos("times", lambda c: np.linspace(0, 1, c.n), ARR, ("times", "risks")),
      pos("risks", lambda c: c.rng.uniform(0.1, 1, c.n), bad_array(lastdim=RAISE),
          ("risks", "times")),
      pos("loglog", lambda c: bool(c.rng.random() < 0.5))], examples=20)
case("plotting.plot_effective_3d", plotting.plot_effective_3d,
     [pos("thetas", lambda c: c.normal(2, c.m, 4), bad_array(lastdim=RAISE), ("thetas",))],
     examples=15)
case("plotting.save_figure",
     lambda path, formats: plotting.save_figure(plt.figure(figsize=(1, 1)), path, formats),
     [pos("path", lambda c: c.tmp / "fig", lambda draw, c, v: Bad(draw(st.sampled_from(
         [None, 3, np.zeros(3)])), RAISE, "path")),
      pos("formats", lambda c: ("png",), lambda draw, c, v: Bad(draw(st.sampled_from(
          [("nonsense",), "png", (3,), ()])), MAY, "formats"))], examples=15)
case("plotting.animate_particles",
     lambda thetas, fps: plotting.animate_particles(thetas, _TMP / "anim", fps=fps, mp4=False),
     [pos("thetas", lambda c: c.normal(2, c.m, 4), ARR, ("thetas",)),
      pos("fps", lambda c: 5, bad_int())], examples=8)
case("plotting.plot_diagnostics",
     lambda trajectory, estimator, n_certificates: plotting.plot_diagnostics(
         trajectory, estimator, n_certificates=n_certificates),
     [pos("trajectory", _traj, bad_object(), ("trajectory",)),
      pos("estimator", _pop, bad_object(), ("estimator",)),
      pos("n_certificates", lambda c: 2, bad_int())], examples=8, acts=("relu",))

# studies and figures
def _toy_cell(params, seeds):
    return [{"seed": s, "v": float(params["k"]) + s} for s in seeds]


case("sweep.Study",
     lambda name, cell, grid, seeds, seeds_per_cell, executor, cache_dir: sweep.run_study(
         sweep.Study(name, cell, grid, seeds, seeds_per_cell), cache_dir, executor=executor),
     [pos("name", lambda c: f"s{c.seed}", lambda draw, c, v: Bad(draw(st.sampled_from(
         ["", 3, None, "a/b", "../up", "."])), RAISE, "name")),
      pos("cell", lambda c: _toy_cell, bad_object(lambda p, s: 3, lambda p, s: [])),
      pos("grid", lambda c: {"k": [1, 2]}, lambda draw, c, v: Bad(draw(st.sampled_from(
          [{"k": []}, {"k": "ab"}, {"k": 3}, None])), RAISE, "grid")),
      pos("seeds", lambda c: [0, 1], lambda draw, c, v: Bad(draw(st.sampled_from(
          [[], [-1], [1.5], "ab", None, [True]])), RAISE, "seeds")),
      pos("seeds_per_cell", lambda c: None, bad_int(optional=True)),
      pos("executor", lambda c: "serial", bad_choice(optional=True, extra=("threads",))),
      pos("cache_dir", lambda c: c.tmp / "study", lambda draw, c, v: Bad(draw(st.sampled_from(
          [None, 3, np.zeros(3)])), RAISE, "cache_dir"))], examples=30,
     messages=("cell",))
case("StudyTable.column", lambda rows, name: sweep.StudyTable(rows).column(name),
     [pos("rows", lambda c: [{"a": 1, "b": 2.0}], lambda draw, c, v: Bad(draw(st.sampled_from(
         [[3], None, ["ab"]])), RAISE, "rows")),
      pos("name", lambda c: "a", bad_choice())], examples=20)


# -- the table-driven test -------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_public_function_survives_hostile_inputs(case: Case) -> None:
    @settings(FUZZ, max_examples=case.examples)
    @given(st.data())
    def examples(data_) -> None:
        run_case(case, data_.draw)

    examples()


def test_every_public_function_is_in_the_table() -> None:
    """Each name of ``meanfield.__all__`` and each public module function has a case."""
    import importlib
    import inspect
    import pkgutil

    covered = " ".join(c.name for c in CASES)
    exempt = {
        # constants, types and base classes (no behaviour of their own to fuzz)
        "ACTIVATIONS", "Activation", "METHODS", "SCHEMA", "STYLE", "NOTEBOOK", "DEFAULT_NODES",
        "RISK_SAMPLES", "RISK_SEED", "InputLaw", "Target", "VelocityEstimator", "SampleStream",
        "Cell", "KernelBlock", "Plateau", "CoveringRadius", "Certificate", "TeacherRecovery",
        "TrajectoryDiagnostics", "SeparationVerdict", "EmpiricalSeparationReport",
        "FigureResult", "DivergenceError", "__version__",
        # the unvalidated hot-path helpers (documented "no validation: hot path")
        "residual_on_sample", "first_variation_grad_on_sample",
        # a context manager without arguments
        "style",
        # driven through the CLI tests and the config/manifest fuzz tests below
        "main", "load_config", "run_config", "validate_config", "run_figures",
        "check_manifest", "load_manifest", "git_commit", "load_trajectory", "run_study",
        "StudyTable",
    }
    aliases = {"euler": "flow.euler", "integrate": "flow.integrate", "Trajectory": "Trajectory",
               "ParticleMeasure": "ParticleMeasure", "Support": "support.Support"}
    missing = []
    for info in pkgutil.iter_modules(mf.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"meanfield.{info.name}")
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if name in exempt or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if f".{name}" not in covered and aliases.get(name, "\0") not in covered:
                missing.append(f"{info.name}.{name}")
    for name in mf.__all__:
        if name not in exempt and name not in covered:
            missing.append(name)
    assert not missing, f"public callables without a fuzz case: {sorted(set(missing))}"


# -- files: trajectories -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> tuple[bytes, mf.Trajectory]:
    teacher = mf.notebook_teacher(3, 2, rng=1)
    student = mf.notebook_sphere(5, 2, radius=0.1, rng=2)
    run = mf.online_sgd(student, teacher, step=0.05, n_steps=30, record_every=10, rng=3)
    path = run.save(tmp_path_factory.mktemp("saved") / "run.npz")
    return path.read_bytes(), mf.load_trajectory(path)


def _rezip(raw: bytes, member: str, content: bytes | None) -> bytes:
    """Rewrite the .npz ``raw`` with ``member`` replaced by ``content`` (None: removed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != member:
                dst.writestr(info, src.read(info.filename))
            elif content is not None:
                dst.writestr(info, content)
    return out.getvalue()


def _rename(raw: bytes, member: str, new: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(new if info.filename == member else info.filename,
                         src.read(info.filename))
    return out.getvalue()


def _npy(value: Any) -> bytes:
    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=True)
    return buf.getvalue()


@st.composite
def damaged_files(draw, raw: bytes) -> tuple[str, bytes, bool]:
    """(label, bytes, must_fail): a saved trajectory damaged in one way."""
    kind = draw(st.sampled_from(["truncate", "flip", "random", "member", "append", "rename"]))
    if kind == "rename":  # no zip checksum covers the names: a lost teacher must be noticed
        member = draw(st.sampled_from(["teacher_theta.npy", "teacher_masses.npy", "risks.npy"]))
        return f"rename:{member}", _rename(raw, member, member.replace(".npy", "_.npy")), True
    if kind == "truncate":
        return kind, raw[: draw(st.integers(0, len(raw) - 1))], True
    if kind == "flip":
        i = draw(st.integers(0, len(raw) - 1))
        b = draw(st.integers(0, 255).filter(lambda b: b != raw[i]))
        return kind, raw[:i] + bytes([b]) + raw[i + 1 :], False
    if kind == "random":
        return kind, draw(st.binary(max_size=4096)), True
    if kind == "append":
        return kind, raw + draw(st.binary(min_size=1, max_size=64)), False
    meta = json.loads(np.load(io.BytesIO(raw))["metadata"][()])
    member, content = draw(st.sampled_from([
        ("metadata.npy", None),
        ("thetas.npy", None),
        ("metadata.npy", _npy(np.array("{not json"))),
        ("metadata.npy", _npy(np.array("[1, 2]"))),
        ("metadata.npy", _npy(np.array(json.dumps({**meta, "format_version": 99})))),
        ("metadata.npy", _npy(np.array(json.dumps({k: meta[k] for k in meta if k != "config"})))),
        ("metadata.npy", _npy(np.array(json.dumps({**meta, "config": [1]})))),
        ("metadata.npy", _npy(np.arange(3))),
        ("thetas.npy", _npy(np.zeros((2, 2)))),
        ("thetas.npy", _npy(np.zeros((9, 5, 4)))),
        ("thetas.npy", _npy(np.array([None, 1.0], dtype=object))),
        ("masses.npy", _npy(np.array(["a", "b"]))),
        ("times.npy", _npy(np.array([3.0, 2.0, 1.0, 0.0]))),
        ("steps.npy", _npy(np.array([0.5, 1.5, 2.5, 3.5]))),
        ("teacher_theta.npy", _npy(np.full((3, 4), np.nan))),
        ("thetas.npy", b"\x93NUMPY garbage"),
    ]))
    return f"{kind}:{member}", _rezip(raw, member, content), True


@settings(FUZZ, max_examples=round(150 * SCALE))
@given(data_=st.data())
def test_damaged_trajectory_files_are_rejected_or_read_intact(saved_run, data_) -> None:
    raw, original = saved_run
    label, blob, must_fail = data_.draw(damaged_files(raw))
    path = _TMP / "damaged.npz"
    path.write_bytes(blob)
    try:
        with time_limit(HANG_S):
            loaded = mf.load_trajectory(path)
    except ValueError as exc:
        COUNTS["load_trajectory (damaged file)"]["raised"] += 1
        assert str(path) in str(exc), f"{label}: message does not name the file: {exc}"
        return
    except Exception as exc:
        pytest.fail(f"{label}: raised {type(exc).__name__}: {exc!r}")
    COUNTS["load_trajectory (damaged file)"]["ok"] += 1
    assert not must_fail, f"{label}: a damaged file was read"
    # a file that still reads must be the saved run, bit for bit: never a wrong number
    assert loaded.equals(original), f"{label}: read a trajectory different from the saved one"


# -- files: configurations -------------------------------------------------------------------------
TEMPLATE: dict[str, Any] = {
    "activation": "relu",
    "d": 2,
    "seed": 0,
    "teacher": {"law": "notebook_teacher", "m": 3, "seed": 18},
    "student": {"law": "notebook_sphere", "m": 4, "radius": 0.1, "seed": 1, "runs": 1},
    "dynamics": {"kind": "online_sgd", "tau": 0.5, "batch_size": 4, "n_steps": 6,
                 "estimator": "exact", "n_snapshots": 3},
    "output": {"trajectory": "out.npz"},
}
CHOICES = {"activation", "law", "kind", "estimator", "method"}


def toml_text(cfg: Mapping[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            if math.isnan(v):
                return "nan"
            return ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v)

    top = [f"{k} = {value(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    tables = [
        f"[{k}]\n" + "\n".join(f"{kk} = {value(vv)}" if not isinstance(vv, dict) else
                               f"{kk} = {{ x = 1 }}" for kk, vv in v.items())
        for k, v in cfg.items() if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n\n" + "\n\n".join(tables) + "\n"


@st.composite
def broken_configs(draw) -> tuple[dict[str, Any], str]:
    """A config with one key made invalid, and the dotted key the error must name."""
    cfg = json.loads(json.dumps(TEMPLATE))
    keys = [(None, k) for k in cfg if not isinstance(cfg[k], dict)]
    keys += [(t, k) for t in cfg if isinstance(cfg[t], dict) for k in cfg[t]]
    table, key = draw(st.sampled_from(keys))
    where = cfg if table is None else cfg[table]
    dotted = key if table is None else f"{table}.{key}"
    old = where[key]
    kind = draw(st.sampled_from(["unknown", "type", "range", "table"]))
    if kind == "unknown":
        name = draw(st.sampled_from(["colour", "n_step", "Radius", "m0"]))
        where[name] = 1
        return cfg, name
    if kind == "table" and table is None and key in ("d", "seed"):
        cfg[draw(st.sampled_from(["teacher", "dynamics"]))] = 3
        return cfg, "must be a table"
    if kind == "type" or (kind == "range" and isinstance(old, str) and key not in CHOICES):
        bad = "x" if not isinstance(old, str) else draw(st.sampled_from([3, 1.5, True, [1]]))
        if isinstance(old, bool | int) and not isinstance(old, bool):
            bad = draw(st.sampled_from(["3", 1.5, True, [1]]))
        where[key] = bad
        return cfg, dotted
    if isinstance(old, str):
        where[key] = "" if key == "trajectory" else draw(st.sampled_from(["nonsense", "", "RK99"]))
        return cfg, dotted
    if isinstance(old, int):
        where[key] = draw(st.sampled_from([-1, -(2**40)])) if key == "seed" else draw(
            st.sampled_from([0, -1, -5]))
        if key in ("n_steps",):
            where[key] = -3
        return cfg, dotted
    where[key] = draw(st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf]))
    return cfg, dotted


@settings(FUZZ, max_examples=round(200 * SCALE))
@given(case_=broken_configs())
def test_broken_config_is_rejected_naming_the_key(case_) -> None:
    cfg, key = case_
    try:
        config.validate_config(cfg)
    except (ValueError, TypeError) as exc:
        COUNTS["config.validate_config"]["raised"] += 1
        assert key in str(exc), f"the message does not name {key!r}: {exc}"
        return
    pytest.fail(f"accepted a broken config ({key}): {cfg}")


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
    return status, out.getvalue(), err.getvalue()


@settings(FUZZ, max_examples=round(25 * SCALE))
@given(case_=broken_configs())
def test_cli_run_with_a_broken_config_exits_2_with_one_line(case_) -> None:
    cfg, key = case_
    path = _TMP / "broken.toml"
    path.write_text(toml_text(cfg))
    status, _, err = _cli(["run", str(path), "-q", "-o", str(_TMP / "never.npz")])
    COUNTS["cli run (broken config)"]["raised"] += 1
    assert status == 2, (status, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], err
    assert not (_TMP / "never.npz").exists()


@settings(FUZZ, max_examples=round(30 * SCALE))
@given(cut=st.integers(0, len(toml_text(TEMPLATE)) - 1))
def test_cli_run_with_a_truncated_config(cut) -> None:
    """A truncated config either still describes a run (which then completes) or exits 2."""
    text = toml_text(TEMPLATE)[:cut]
    folder = _TMP / f"trunc-{cut}"
    folder.mkdir(exist_ok=True)
    (folder / "c.toml").write_text(text)
    out = folder / "out.npz"
    status, _, err = _cli(["run", str(folder / "c.toml"), "-q", "-o", str(out)])
    COUNTS["cli run (truncated config)"]["ok" if status == 0 else "raised"] += 1
    if status == 0:
        run = mf.load_trajectory(out)
        assert np.all(np.isfinite(run.thetas)) and len(run) >= 2
    else:
        assert status == 2 and len(err.strip().splitlines()) == 1, (status, err)


@settings(FUZZ, max_examples=round(25 * SCALE))
@given(data_=st.data())
def test_cli_plot_with_a_damaged_trajectory_exits_2(saved_run, data_) -> None:
    raw, _ = saved_run
    label, blob, must_fail = data_.draw(damaged_files(raw))
    assume_fail = must_fail
    path = _TMP / "plot-damaged.npz"
    path.write_bytes(blob)
    status, _, err = _cli(["plot", str(path), "-o", str(_TMP / "plot-damaged.png")])
    COUNTS["cli plot (damaged file)"]["ok" if status == 0 else "raised"] += 1
    if status != 0 or assume_fail:
        assert status == 2, (label, status, err)
        assert len(err.strip().splitlines()) == 1 and str(path) in err, err


@settings(FUZZ, max_examples=round(60 * SCALE))
@given(blob=st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"{", b"[]", b'{"figures": 3}', b'{"figures": {"a": 3}}',
                     b'{"figures": {"a": {"files": "a.png"}}}',
                     b'{"figures": {"a": {"files": ["../../etc/passwd"]}}}',
                     b'{"figures": {"a": {"files": [3]}}}', b"\xff\xfe"]),
))
def test_damaged_manifest_is_rejected_naming_it(blob) -> None:
    out = _TMP / "manifest-fuzz"
    out.mkdir(exist_ok=True)
    (out / "manifest.json").write_bytes(blob)
    try:
        manifest = figures.load_manifest(out)
    except ValueError as exc:
        COUNTS["figures.load_manifest (damaged)"]["raised"] += 1
        assert "manifest.json" in str(exc), exc
        status, _, err = _cli(["check-manifest", str(out), "--scripts-dir", str(out)])
        assert status == 2 and len(err.strip().splitlines()) == 1, (status, err)
        return
    COUNTS["figures.load_manifest (damaged)"]["ok"] += 1
    assert isinstance(manifest["figures"], dict)
    assert isinstance(figures.check_manifest(out, out), list)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nonsense"],
        ["run"],
        ["run", "{missing}"],
        ["run", "{dir}"],
        ["plot", "{missing}"],
        ["plot", "{dir}"],
        ["figures", "--dir", "{missing}"],
        ["figures", "--dir", "{dir}", "--only", "nothing"],
        ["check-manifest", "{missing}"],
        ["run", "{toml}", "--bogus"],
    ],
)
def test_cli_bad_arguments_exit_2(argv, tmp_path) -> None:
    (tmp_path / "c.toml").write_text(toml_text(TEMPLATE))
    subs = {"{missing}": str(tmp_path / "missing.toml"), "{dir}": str(tmp_path),
            "{toml}": str(tmp_path / "c.toml")}
    status, _, err = _cli([subs.get(a, a) for a in argv])
    assert status in (1, 2), (argv, status, err)
    if argv == ["check-manifest", "{missing}"]:
        assert status == 1 and "no manifest.json" in err  # a report, not a usage error
    else:
        assert status == 2, (argv, status, err)
        if argv and argv[0] != "nonsense" and len(argv) > 1 and argv[-1] != "--bogus":
            assert len(err.strip().splitlines()) == 1, err


def test_cli_run_that_diverges_exits_1_with_one_line(tmp_path) -> None:
    cfg = json.loads(json.dumps(TEMPLATE))
    cfg["dynamics"]["tau"] = 1e6
    (tmp_path / "c.toml").write_text(toml_text(cfg))
    status, _, err = _cli(["run", str(tmp_path / "c.toml"), "-q"])
    assert status == 1, (status, err)
    assert len(err.strip().splitlines()) == 1 and "diverged" in err and "step" in err


def test_cli_subprocess_reports_a_bad_config_and_a_truncated_trajectory(tmp_path, saved_run):
    """The installed entry point behaves as in-process: exit 2, one line naming the problem."""
    bad = json.loads(json.dumps(TEMPLATE))
    bad["student"]["radius"] = -0.5
    (tmp_path / "bad.toml").write_text(toml_text(bad))
    raw, _ = saved_run
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    script = (
        "import sys\n"
        "from meanfield.cli import main\n"
        f"a = main(['run', {str(tmp_path / 'bad.toml')!r}, '-q'])\n"
        f"b = main(['plot', {str(tmp_path / 'cut.npz')!r}])\n"
        "sys.exit(10 * a + b)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 22, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr
    assert "student.radius" in lines[0] and "cut.npz" in lines[1]
    solo = subprocess.run([sys.executable, "-m", "meanfield.cli", "run",
                           str(tmp_path / "bad.toml"), "-q"], capture_output=True, text=True,
                          timeout=120)
    assert solo.returncode == 2 and solo.stderr.count("\n") == 1 and "student.radius" in solo.stderr


# -- pending fixes: one strict-xfail reproducer per bug of PENDING ---------------------------------
def _m(theta) -> mf.ParticleMeasure:
    return mf.ParticleMeasure(np.asarray(theta, dtype=float))


_S = [[0.5, 1.0, -0.3, 0.2], [-1.0, 0.4, 0.8, -0.1], [0.7, -0.6, 0.1, 0.3]]
_T = [[1.0, 0.6, 0.8, 0.0], [-0.8, 0.0, 0.6, 0.8]]
_HUGE = [[1.0, 1e300, -1e300, 1e300]]
_X = [[0.3, -1.2], [1.1, 0.4], [-0.5, 0.9]]
def _TRAJ() -> mf.Trajectory:
    return mf.Trajectory(np.arange(3.0), np.ones((3, 2, 4)), np.full(2, 0.5))


def _POP() -> mf.GaussianPopulationEstimator:
    return mf.GaussianPopulationEstimator(_m(_T))

# (PENDING key, reproducer, names one of which the ValueError/TypeError must contain)
REPRODUCERS: list[tuple[str, Callable[[], Any], tuple[str, ...]]] = [
    ("velocity-overflow", lambda: mf.SampleEstimator(_X, _m(_T)).risk(_m(_HUGE)),
     ("theta", "measure")),
    ("particle-gradient-type", lambda: mf.SampleEstimator(_X, _m(_T)).particle_gradient("x"),
     ("measure",)),
    ("population-overflow", lambda: _POP().risk(_m(_HUGE)), ("theta", "measure")),
    ("kernel-activation-prime",
     lambda: kernels.kernel_block(np.array(_S), activation_prime="nonsense"),
     ("activation_prime",)),
    ("kernelblock-contract",
     lambda: kernels.kernel_block(np.array(_S), np.array(_T)).contract(
         np.full((3, 2), np.nan), np.array(_S)[:, 1:-1], np.array(_T)[:, 1:-1]), ("coef",)),
    ("online-sgd-measure", lambda: sgd.online_sgd(np.array(_S), _m(_T), step=0.1, n_steps=1),
     ("measure",)),
    ("step-from-tau-m", lambda: sgd.step_from_tau(0.5, 2.5), ("m",)),
    ("arraystream-block-sizes",
     lambda: streams.ArrayStream(np.zeros((4, 3, 2)), np.zeros((4, 3)), block_sizes=[-1, 5]),
     ("block_sizes",)),
    ("min-risk", lambda: diagnostics.excess_risk(_m(_S), _POP(), min_risk=-math.inf),
     ("min_risk",)),
    ("diagnostics-rng", lambda: diagnostics.optimality_certificate(_m(_S), _POP(), n_starts=4,
                                                                  rng="seed"), ("rng",)),
    ("certificate-wrong-d",
     lambda: diagnostics.optimality_certificate(_m(np.ones((2, 5))), _POP(), n_starts=4),
     ("d=", "measure")),
    ("balancedness", lambda: diagnostics.balancedness(np.empty((2, 0))), ("theta",)),
    ("relative-displacement",
     lambda: diagnostics.relative_displacement(np.ones((3, 4)), np.ones((3, 4)), np.ones(5)),
     ("masses",)),
    ("certificate-at",
     lambda: diagnostics.trajectory_diagnostics(_TRAJ(), _POP(), certificate_at=[[0]]),
     ("certificate_at",)),
    ("plateaus", lambda: convergence.detect_plateaus(
        np.geomspace(0.01, 100, 20), np.geomspace(1, 1e-3, 20), min_decades=-1.5),
     ("min_decades",)),
    ("cap-fraction", lambda: covering.cap_fraction(np.array([0.5]), 0), ("k",)),
    ("covering-args", lambda: covering.covering_radius(np.eye(3), confidence=[0.9]),
     ("confidence",)),
    ("recovery-overflow",
     lambda: recovery.teacher_recovery(_m(_S), _m(np.array(_T) * 1e-300)),
     ("student", "teacher", "theta")),
    ("separation-args", lambda: separation.check_separation(
        "sphere", d=2, activation="sigmoid", radii=(2.0, 1.0)), ("radii",)),
    ("support-contains",
     lambda: support.Support.u_halfspace(np.ones(3)).contains(np.ones(4), atol=math.nan),
     ("atol",)),
]


@pytest.mark.parametrize(
    ("key", "reproduce", "names"),
    [pytest.param(k, f, n, id=k, marks=[pytest.mark.xfail(strict=True, reason=PENDING[k])]
                  if k in PENDING else [])
     for k, f, n in REPRODUCERS],
)
def test_pending_fix(key, reproduce, names) -> None:
    """Each reproducer raises ValueError/TypeError naming the parameter (xfail while pending)."""
    try:
        reproduce()
    except (ValueError, TypeError) as exc:
        assert any(n in str(exc) for n in names), f"{key}: message does not name {names}: {exc}"
        return
    pytest.fail(f"{key}: bad input accepted")


def test_every_pending_bug_has_a_reproducer_and_a_filter() -> None:
    keys = {k for k, _, _ in REPRODUCERS}
    assert set(PENDING) <= keys, set(PENDING) - keys
    fixed = os.environ.get("MEANFIELD_FUZZ_FIXED", "")
    stale = {key for _, _, key in KNOWN} - set(PENDING) - set(fixed.split(","))
    assert not stale, f"filters left for fixed bugs: {stale}"


# -- the figures ----------------------------------------------------------------------------------
def test_zz_fuzz_figures(capsys, request) -> None:
    """Report how many fuzz cases ran, per callable (shown with ``-s``; totals always)."""
    if not COUNTS:
        pytest.skip("run the whole module to collect the fuzz figures")
    total = sum(sum(c.values()) for c in COUNTS.values())
    lines = [f"{'callable':50s} {'cases':>6s} {'ok':>6s} {'raised':>6s} {'known':>6s}"]
    for name in sorted(COUNTS):
        c = COUNTS[name]
        lines.append(
            f"{name:50s} {sum(c.values()):6d} {c['ok']:6d} {c['raised']:6d} "
            f"{c['known-bug (filtered)']:6d}"
        )
    lines.append(f"{'TOTAL (' + str(len(COUNTS)) + ' callables)':50s} {total:6d}")
    report = os.environ.get("MEANFIELD_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps({k: dict(v) for k, v in COUNTS.items()}, indent=1))
    with capsys.disabled():
        if request.config.getoption("capture") == "no":
            print("\n" + "\n".join(lines))
        else:
            print(f"\n[fuzz] {total} cases over {len(COUNTS)} callables "
                  "(per-callable table with -s or MEANFIELD_FUZZ_REPORT=path.json)")
    ran = {c.name for c in CASES} & set(COUNTS)
    if len(ran) == len(CASES):  # the whole table ran: every case ran all its examples
        short = [c.name for c in CASES if sum(COUNTS[c.name].values()) < c.examples]
        assert not short, f"cases that ran fewer examples than asked: {short}"

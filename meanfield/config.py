"""Run configurations: a TOML file describing a teacher, a student and a dynamics.

.. code-block:: toml

    activation = "relu"          # relu | sigmoid | tanh | erf
    d = 2                        # input dimension
    seed = 0                     # randomness of the dynamics (samples, shuffles)

    [teacher]                    # the target: a teacher network ν
    law = "notebook_teacher"     # notebook_teacher | gaussian | sphere | notebook_sphere | balanced
    m = 4
    seed = 18

    [student]                    # the initial measure μ₀
    law = "notebook_sphere"
    m = 20
    radius = 0.05                # radius (sphere laws), std (gaussian) or scale (balanced)
    seed = 1
    runs = 1                     # > 1: an ensemble of independent runs

    [dynamics]
    kind = "online_sgd"          # online_sgd | frames | gd | flow
    tau = 0.5                    # the notebook's step (η = τ/m), or give `step` = η
    batch_size = 20
    n_steps = 10000              # online_sgd; `n_frames` for frames; `t_end` for gd / flow
    estimator = "exact"          # gd / flow / risk: exact (Gaussian inputs) | monte_carlo
    n_samples = 20000            # size of the Monte-Carlo sample
    method = "RK45"              # flow: any solve_ivp method
    rtol = 1e-6
    atol = 1e-9
    n_snapshots = 101

    [output]
    trajectory = "trajectory.npz"

Every table accepts only the keys above; an unknown key is rejected with the list of
valid ones.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from meanfield import measure as laws
from meanfield._validation import describe
from meanfield.activations import ACTIVATIONS
from meanfield.flow import METHODS
from meanfield.measure import ParticleMeasure
from meanfield.population import GaussianPopulationEstimator
from meanfield.trajectory import Trajectory
from meanfield.velocity import SampleEstimator, VelocityEstimator

__all__ = ["SCHEMA", "load_config", "run_config", "validate_config"]

SCHEMA: dict[str, Any] = {
    "activation": str,
    "d": int,
    "seed": int,
    "teacher": {"law": str, "m": int, "seed": int, "radius": float, "std": float, "scale": float},
    "student": {
        "law": str,
        "m": int,
        "seed": int,
        "radius": float,
        "std": float,
        "scale": float,
        "runs": int,
    },
    "dynamics": {
        "kind": str,
        "step": float,
        "tau": float,
        "batch_size": int,
        "n_steps": int,
        "n_frames": int,
        "t_end": float,
        "estimator": str,
        "n_samples": int,
        "method": str,
        "rtol": float,
        "atol": float,
        "n_snapshots": int,
        "weight_decay": float,
    },
    "output": {"trajectory": str},
}
"""Valid keys of a run configuration and their types."""

SCHEMA_FLAT: dict[str, Any] = {
    **{k: v for k, v in SCHEMA.items() if not isinstance(v, dict)},
    **{
        f"{t}.{k}": v
        for t, table in SCHEMA.items()
        if isinstance(table, dict)
        for k, v in table.items()
    },
}

_LAWS: dict[str, tuple[Callable[..., ParticleMeasure], str | None]] = {
    "gaussian": (laws.gaussian, "std"),
    "sphere": (laws.sphere, "radius"),
    "notebook_sphere": (laws.notebook_sphere, "radius"),
    "notebook_teacher": (laws.notebook_sphere, None),
    "balanced": (laws.balanced, "scale"),
}
_KINDS = ("online_sgd", "frames", "gd", "flow")

# Smallest accepted value of the integer keys, and which number keys may be 0.
_INT_MIN = {
    "d": 1,
    "seed": 0,
    "m": 1,
    "runs": 1,
    "batch_size": 1,
    "n_steps": 0,
    "n_frames": 1,
    "n_samples": 1,
    "n_snapshots": 2,
}
_MAY_BE_ZERO = ("weight_decay",)


def _check_values(cfg: Mapping[str, Any]) -> None:
    """Range checks of every numeric key (finite, positive, ...), naming the dotted key."""
    tables = {"": cfg, **{f"{t}.": cfg[t] for t in ("teacher", "student", "dynamics")}}
    for where, table in tables.items():
        for key, value in table.items():
            name = f"{where}{key}"
            if isinstance(value, dict):
                continue
            if SCHEMA_FLAT.get(name) is int:
                low = _INT_MIN.get(key, 0)
                if value < low:
                    raise ValueError(f"{name} must be >= {low}; got {value}")
            elif SCHEMA_FLAT.get(name) is float:
                v = float(value)
                ok = math.isfinite(v) and (v >= 0 if key in _MAY_BE_ZERO else v > 0)
                if not ok:
                    bound = ">= 0" if key in _MAY_BE_ZERO else "> 0"
                    raise ValueError(f"{name} must be finite and {bound}; got {value!r}")


def _check_table(table: Mapping[str, Any], schema: Mapping[str, Any], where: str) -> None:
    for key, value in table.items():
        if key not in schema:
            raise ValueError(f"unknown key {where}{key!r}; valid keys: {', '.join(sorted(schema))}")
        kind = schema[key]
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise TypeError(f"{where}{key} must be a table; got {describe(value)}")
            _check_table(value, kind, f"{where}{key}.")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{where}{key} must be a number; got {describe(value)}")
        elif isinstance(value, bool) or not isinstance(value, kind):
            raise TypeError(f"{where}{key} must be of type {kind.__name__}; got {describe(value)}")


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a configuration against :data:`SCHEMA` and fill the defaults.

    Parameters
    ----------
    config : mapping
        The parsed TOML.

    Returns
    -------
    dict
        The configuration with every table present.

    Raises
    ------
    ValueError
        On an unknown key or value (the message lists the valid ones), a value out of
        range (a size below 1, a scale or tolerance not finite and positive, …) or a
        missing ``dynamics.n_steps`` for ``online_sgd``; the message names the dotted key.
    TypeError
        On a value of the wrong type.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a table; got {describe(config)}")
    _check_table(config, SCHEMA, "")
    cfg: dict[str, Any] = {"activation": "relu", "d": 2, "seed": 0, **config}
    cfg["teacher"] = {"law": "notebook_teacher", "m": 4, "seed": 18, **cfg.get("teacher", {})}
    cfg["student"] = {"law": "notebook_sphere", "m": 20, "seed": 1, **cfg.get("student", {})}
    cfg["dynamics"] = {"kind": "online_sgd", **cfg.get("dynamics", {})}
    cfg["output"] = {"trajectory": "trajectory.npz", **cfg.get("output", {})}
    for who in ("teacher", "student"):
        if cfg[who]["law"] not in _LAWS:
            raise ValueError(f"{who}.law must be one of {sorted(_LAWS)}; got {cfg[who]['law']!r}")
    if cfg["activation"].lower() not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)}; got {cfg['activation']!r}"
        )
    dyn = cfg["dynamics"]
    if dyn["kind"] not in _KINDS:
        raise ValueError(f"dynamics.kind must be one of {list(_KINDS)}; got {dyn['kind']!r}")
    if dyn.get("method", "RK45") not in METHODS:
        raise ValueError(f"dynamics.method must be one of {list(METHODS)}; got {dyn['method']!r}")
    if not cfg["output"]["trajectory"]:
        raise ValueError("output.trajectory must be a file name; got ''")
    _check_values(cfg)
    if dyn["kind"] == "online_sgd" and "n_steps" not in dyn:
        raise ValueError("dynamics.n_steps is required for kind 'online_sgd' (an endless stream)")
    if dyn.get("estimator", "exact") not in ("exact", "monte_carlo"):
        raise ValueError(
            f"dynamics.estimator must be 'exact' or 'monte_carlo'; got {dyn['estimator']!r}"
        )
    if "step" in dyn and "tau" in dyn:
        raise ValueError("dynamics: give either step (η) or tau (the notebook's τ = mη), not both")
    return cfg


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a TOML run configuration (see the module docstring)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"config {path} is not valid TOML: {exc}") from None
    cfg = validate_config(raw)
    out = Path(cfg["output"]["trajectory"])
    cfg["output"]["trajectory"] = str(out if out.is_absolute() else path.parent / out)
    return cfg


def _measure(spec: Mapping[str, Any], d: int, *, runs: int | None = None) -> ParticleMeasure:
    law, size_key = _LAWS[spec["law"]]
    kwargs: dict[str, Any] = {"rng": spec["seed"]}
    if spec["law"] == "notebook_teacher":
        kwargs["radius"] = 1.0
    elif size_key is not None and size_key in spec:
        kwargs[size_key] = float(spec[size_key])
    if runs is not None and runs > 1:
        kwargs["runs"] = runs
    return law(spec["m"], d, **kwargs)


def _estimator(cfg: Mapping[str, Any], teacher: ParticleMeasure) -> VelocityEstimator:
    dyn = cfg["dynamics"]
    if dyn.get("estimator", "exact") == "exact":
        return GaussianPopulationEstimator(teacher, activation=cfg["activation"])
    x = np.random.default_rng([cfg["seed"], 1]).standard_normal(
        (dyn.get("n_samples", 20000), cfg["d"])
    )
    return SampleEstimator(x, teacher, activation=cfg["activation"])


def run_config(
    config: Mapping[str, Any],
    *,
    output: Path | None = None,
    progress: bool | None = None,
    echo: Callable[[str], Any] | None = None,
) -> Trajectory:
    """Run the dynamics a validated configuration describes and save the trajectory.

    Prints (through ``echo``) the separation report of the initial measure before the
    run and a diagnostics summary after it.

    Parameters
    ----------
    config : mapping
        Output of :func:`load_config` or :func:`validate_config`.
    output : Path, optional
        Trajectory file (default: ``config["output"]["trajectory"]``).
    progress : bool, optional
        Progress bar (default: only on a terminal).
    echo : callable, optional
        Where reports go (e.g. ``print``); silent by default.

    Returns
    -------
    Trajectory
    """
    from meanfield.diagnostics import trajectory_diagnostics
    from meanfield.flow import euler, integrate
    from meanfield.separation import check_separation, empirical_separation, support_of
    from meanfield.sgd import FrameStream, OnlineStream, sgd, step_from_tau

    cfg = validate_config(config)
    say = echo or (lambda _s: None)
    d, act, dyn = cfg["d"], cfg["activation"], cfg["dynamics"]
    teacher = _measure(cfg["teacher"], d)
    student = _measure(cfg["student"], d, runs=cfg["student"].get("runs"))
    spec = cfg["student"]
    _, size_key = _LAWS[spec["law"]]
    law_params = {size_key: float(spec[size_key])} if size_key and size_key in spec else {}
    say(check_separation(support_of(spec["law"], **law_params), d=d, activation=act).summary())
    first = student.replica((0,) * len(student.batch_shape)) if student.batch_shape else student
    say(empirical_separation(first, activation=act, rng=0).summary())
    step = (
        float(dyn["step"])
        if "step" in dyn
        else step_from_tau(float(dyn.get("tau", 0.5)), student.m)
    )
    estimator = _estimator(cfg, teacher)
    n_snap = dyn.get("n_snapshots", 101)
    common: dict[str, Any] = {"progress": progress, "config": {"run_config": cfg}}
    kind = dyn["kind"]
    if kind in ("online_sgd", "frames"):
        batch = dyn.get("batch_size", 20)
        stream = (
            OnlineStream(teacher, batch, d=d)
            if kind == "online_sgd"
            else FrameStream.notebook(teacher, dyn.get("n_frames", 500), batch_size=batch)
        )
        traj = sgd(
            student,
            stream,
            step=step,
            n_steps=dyn.get("n_steps") if kind == "online_sgd" else None,
            activation=act,
            n_snapshots=n_snap,
            risk=estimator,
            rng=cfg["seed"],
            weight_decay=dyn.get("weight_decay", 0.0),
            **common,
        )
    elif kind == "gd":
        traj = euler(
            student,
            estimator,
            step=step,
            t_end=dyn.get("t_end", 100.0),
            n_snapshots=n_snap,
            weight_decay=dyn.get("weight_decay", 0.0),
            seed=cfg["seed"],
            **common,
        )
    else:
        traj = integrate(
            student,
            estimator,
            dyn.get("t_end", 100.0),
            method=dyn.get("method", "RK45"),
            rtol=dyn.get("rtol", 1e-6),
            atol=dyn.get("atol", 1e-9),
            n_snapshots=n_snap,
            weight_decay=dyn.get("weight_decay", 0.0),
            seed=cfg["seed"],
            **common,
        )
    path = traj.save(output if output is not None else cfg["output"]["trajectory"])
    single = traj.replica((0,) * len(traj.batch_shape)) if traj.batch_shape else traj
    certificate = [-1] if act == "relu" else None
    say(trajectory_diagnostics(single, estimator, certificate_at=certificate, rng=0).summary())
    say(f"trajectory written to {path}")
    return traj

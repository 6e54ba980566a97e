"""Adapters from the benchmark's explicit-array runs to the toolkit's own code.

"ours" is ``meanfield.sgd.sgd`` when that module exists; until then the vectorised numpy
peer stands in (and the table says so).  The adapter feeds the toolkit exactly the
peers' inputs: the initial particles ``theta0``, the sample stream ``x`` and targets
``y`` (as a ``meanfield.sgd.ArrayStream``), and the mean-field step η = τ/m
(``step_from_tau``).  It records only the first and last states and computes no risk
(``risk=False``), as the peers do.

An :class:`Impl` separates preparation (building the stream: copies, validation) from
the timed call: ``impl.prepare(problem)`` returns a zero-argument function that runs
SGD and returns the final positions.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.peers import Problem, numpy_sgd

Prepared = Callable[[], np.ndarray]


@dataclass(frozen=True)
class Impl:
    """An implementation under test: ``prepare(problem)() -> final theta``."""

    name: str
    prepare: Callable[[Problem], Prepared]
    prepare_ensemble: Callable[[Problem], Prepared] | None = None
    note: str = ""

    def run(self, p: Problem) -> np.ndarray:
        """Prepare and run one (single-network) problem."""
        return self.prepare(p)()

    def run_ensemble(self, p: Problem) -> np.ndarray:
        """Prepare and run an ensemble problem (``theta0 (R, m, d+2)``)."""
        if self.prepare_ensemble is None:
            raise ValueError(f"{self.name} has no ensemble mode")
        return self.prepare_ensemble(p)()


def _numpy(p: Problem) -> Prepared:
    return lambda: numpy_sgd(p.theta0, p.x, p.y, p.tau)


NUMPY_STAND_IN = Impl(
    "numpy peer (no meanfield.sgd)",
    _numpy,
    _numpy,
    "meanfield.sgd not available: the numpy peer stands in",
)


def _toolkit_prepare(p: Problem, backend: str | None = None) -> Prepared:
    from meanfield.measure import ParticleMeasure
    from meanfield.sgd import ArrayStream, sgd, step_from_tau

    # the toolkit's ArrayStream wants (..., S, B, d): ensemble axes before the step axis
    lead = p.theta0.ndim - 2
    x = np.moveaxis(p.x, 0, lead) if lead else p.x
    y = np.moveaxis(p.y, 0, lead) if lead else p.y
    stream = ArrayStream(x, y)
    measure = ParticleMeasure(p.theta0)
    step = step_from_tau(p.tau, p.m)
    n = p.n_steps
    extra = {} if backend is None else {"backend": backend}

    def run() -> np.ndarray:
        traj = sgd(
            measure, stream, step=step, risk=False, record_steps=[0, n], progress=False, **extra
        )
        return np.asarray(traj.thetas[-1])

    return run


def toolkit_backends() -> list[str]:
    """Values of ``meanfield.sgd.sgd``'s ``backend`` option, [] if it has none."""
    try:
        mod = importlib.import_module("meanfield.sgd")
    except ImportError:
        return []
    param = inspect.signature(mod.sgd).parameters.get("backend")
    if param is None:
        return []
    doc = mod.sgd.__doc__ or ""
    found = re.search(r"backend : \{([^}]*)\}", doc)
    if found is None:
        return [str(param.default)]
    return [b.strip().strip("\"'") for b in found.group(1).split(",")]


def toolkit_sgd(backend: str | None = None) -> Impl | None:
    """The toolkit's SGD wrapped as an :class:`Impl`, or None when it is not there yet.

    ``backend`` (e.g. ``"numpy"``, the readable reference) is passed to ``sgd`` when
    given; None uses the toolkit's default.
    """
    try:
        mod = importlib.import_module("meanfield.sgd")
    except ImportError:
        return None
    if not all(hasattr(mod, name) for name in ("sgd", "ArrayStream", "step_from_tau")):
        return None
    if backend is not None and backend not in toolkit_backends():
        return None
    name = "meanfield.sgd.sgd" + ("" if backend is None else f" (backend={backend})")
    prep = functools.partial(_toolkit_prepare, backend=backend)
    return Impl(name, prep, prep)


def resolve() -> Impl:
    """The toolkit's SGD if present, else the numpy stand-in."""
    impl = toolkit_sgd()
    return NUMPY_STAND_IN if impl is None else impl


def population_estimator() -> Any:
    """The toolkit's exact population estimator class (``GaussianPopulationEstimator``)."""
    from meanfield.population import GaussianPopulationEstimator

    return GaussianPopulationEstimator


def make_population_estimator(cls: Any, teacher: Any) -> Any:
    """Build the exact population estimator for a ReLU teacher measure."""
    return cls(teacher)

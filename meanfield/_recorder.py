"""Machinery shared by the integrators: progress bars, risk adapters, the snapshot recorder.

:class:`Recorder` collects the snapshots of a run (:mod:`meanfield.flow`,
:mod:`meanfield.sgd`) and builds its :class:`~meanfield.trajectory.Trajectory`; only the
snapshots of the record schedule are kept, so memory does not grow with the number of
steps.  Private to the package.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from meanfield._validation import OverflowResultError
from meanfield.measure import ParticleMeasure

if TYPE_CHECKING:  # meanfield.trajectory imports this module
    from meanfield.trajectory import DivergenceError, Trajectory, _Owned

RiskFunction = Callable[[NDArray[np.floating]], NDArray[np.floating]]

__all__ = ["Recorder", "progress_bar", "risk_from_estimator"]


def progress_bar(total: float | None, *, progress: bool | None, desc: str, unit: str) -> Any:
    """Return a tqdm bar on stderr; ``progress=None`` shows it only on a terminal."""
    return tqdm(
        total=total,
        disable=None if progress is None else not progress,
        desc=desc,
        unit=unit,
        leave=False,
        dynamic_ncols=True,
    )


def risk_from_estimator(estimator: Any, masses: NDArray[np.floating]) -> RiskFunction:
    """Adapt ``estimator.risk(measure)`` to a function of the positions.

    An estimator raises :class:`~meanfield._validation.OverflowResultError` rather than
    return a risk that overflows float64; a run must instead see +inf in the replicas
    concerned, to stop with a :class:`DivergenceError` that names them.  So, on that
    error, each replica is evaluated alone (the others' positions set to 0, a finite
    risk) and those that still overflow get +inf: one risk per replica, once, at the
    divergence.
    """

    def evaluate(theta: NDArray[np.floating]) -> NDArray[np.floating]:
        return np.asarray(estimator.risk(ParticleMeasure(theta, masses)), dtype=np.float64)

    def risk(theta: NDArray[np.floating]) -> NDArray[np.floating]:
        try:
            return evaluate(theta)
        except OverflowResultError:
            batch = np.broadcast_shapes(theta.shape[:-2], masses.shape[:-1])
        out = np.full(batch, np.inf)
        full = np.broadcast_to(theta, (*batch, *theta.shape[-2:]))
        for idx in np.ndindex(*batch) if batch else ():
            alone = np.zeros_like(full)
            alone[idx] = full[idx]
            with contextlib.suppress(OverflowResultError):
                out[idx] = evaluate(alone)[idx]
        return out

    return risk


class Recorder:
    """Collect snapshots during a run and build the :class:`Trajectory` (internal).

    With ``capacity`` (the number of snapshots the run will record), the snapshots are
    copied into one preallocated array ``(capacity, ..., m, d+2)`` as they come, and the
    trajectory takes that array over: each snapshot is copied once.  Snapshots past the
    capacity (the last finite state of a diverging run) are kept aside and stacked.

    Parameters
    ----------
    masses : ndarray, shape (..., m)
    risk : callable or None
        Maps positions ``(..., m, d+2)`` to the risk ``(...)``; ``None`` records NaN.
    meta : dict
        Keyword arguments for :class:`Trajectory` other than the arrays.
    d : int
        Input dimension (rows have d + 2 columns).
    capacity : int, optional
        Number of snapshots to preallocate.
    """

    def __init__(
        self,
        masses: NDArray[np.floating],
        risk: RiskFunction | None,
        meta: dict[str, Any],
        d: int,
        capacity: int | None = None,
    ) -> None:
        self.masses = masses
        self.d = d
        self.risk = risk
        self.meta = meta
        self.capacity = capacity
        self.times: list[float] = []
        self.thetas: list[NDArray[np.floating]] = []
        self.risks: list[NDArray[np.floating]] = []
        self.steps: list[int] = []
        self._buf: NDArray[np.floating] | None = None

    def _risk(self, theta: NDArray[np.floating]) -> NDArray[np.floating]:
        if self.risk is None:
            return np.full(theta.shape[:-2], np.nan)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(self.risk(theta), dtype=np.float64).reshape(theta.shape[:-2])

    def _store(self, theta: NDArray[np.floating]) -> NDArray[np.floating]:
        """Copy ``theta`` as float64, into the next slot of the buffer while there is one."""
        shape = (*self.masses.shape, self.d + 2)
        n = len(self.thetas)
        if self.capacity is None or n >= self.capacity or np.shape(theta) != shape:
            return np.array(theta, dtype=np.float64)
        if self._buf is None:
            self._buf = np.empty((self.capacity, *shape))
        np.copyto(self._buf[n], theta)
        return self._buf[n]

    def record(self, step: int, time: float, theta: NDArray[np.floating]) -> None:
        """Store a snapshot; raise :class:`DivergenceError` if its risk is not finite."""
        risk = self._risk(theta)
        if self.risk is not None and not np.all(np.isfinite(risk)):
            raise self.diverged(step, time, None, "the risk became non-finite", risk)
        self.times.append(float(time))
        self.thetas.append(self._store(theta))
        self.risks.append(risk)
        self.steps.append(int(step))

    def _stacked(self) -> NDArray[np.floating] | _Owned:
        from meanfield.trajectory import _Owned

        n, buf = len(self.thetas), self._buf
        if not n:
            return np.empty((0, *self.masses.shape, self.d + 2))
        if buf is not None and n <= len(buf) and all(t.base is buf for t in self.thetas):
            return _Owned(buf if n == len(buf) else buf[:n].copy())
        return np.stack(self.thetas)

    def build(self, info: dict[str, Any] | None = None) -> Trajectory:
        """Return the trajectory of the recorded snapshots."""
        from meanfield.trajectory import Trajectory

        shape = self.masses.shape
        return Trajectory(
            times=np.asarray(self.times, dtype=np.float64),
            thetas=self._stacked(),  # type: ignore[arg-type]
            masses=self.masses,
            risks=np.stack(self.risks) if self.risks else np.empty((0, *shape[:-1])),
            steps=np.asarray(self.steps, dtype=np.int64),
            info=dict(info or {}),
            **self.meta,
        )

    def diverged(
        self,
        step: int,
        time: float,
        last: tuple[int, float, NDArray[np.floating]] | None,
        reason: str,
        bad: NDArray[Any] | None,
    ) -> DivergenceError:
        """Return a :class:`DivergenceError` whose trajectory ends at the last finite state.

        ``last`` is ``(step, time, theta)`` of the last state with finite positions (it
        is appended when its risk is finite and it is newer than the last snapshot);
        ``bad`` is the array whose non-finite entries flag the failing replicas
        (``None``: all of them).
        """
        if last is not None and (not self.times or last[1] > self.times[-1]):
            risk = self._risk(last[2])
            if self.risk is None or np.all(np.isfinite(risk)):
                self.times.append(float(last[1]))
                self.thetas.append(self._store(last[2]))
                self.risks.append(risk)
                self.steps.append(int(last[0]))
        n_rep = int(np.prod(self.masses.shape[:-1]))
        flags: NDArray[np.bool_]
        if bad is None:
            flags = np.ones(n_rep, dtype=bool)
        else:
            nonfinite = ~np.isfinite(np.asarray(bad, dtype=np.float64))
            if self.masses.ndim > 1:
                flags = np.asarray(nonfinite.reshape(*self.masses.shape[:-1], -1).any(axis=-1))
            else:
                flags = np.array([nonfinite.any()])
        replicas = np.flatnonzero(flags).astype(np.int64)
        traj = self.build({"diverged": True, "divergence_step": step, "divergence_time": time})
        where = f" in replica(s) {replicas.tolist()}" if self.masses.ndim > 1 else ""
        message = (
            f"{reason}{where} at step {step} (t = {time:.6g}); the trajectory up to the last "
            f"finite state (t = {traj.times[-1] if len(traj) else float('nan'):.6g}) is in "
            "the exception's .trajectory"
        )
        from meanfield.trajectory import DivergenceError

        return DivergenceError(message, traj, step=step, time=time, replicas=replicas)

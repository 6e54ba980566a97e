r"""The result of a run: snapshots of the particles on the mean-field time axis.

Every dynamics of the toolkit (:mod:`meanfield.flow`, :mod:`meanfield.sgd`) returns a
:class:`Trajectory`: the particle positions θᵢ(t) at a thinned set of times, the
masses pᵢ, the risk F(μ_t) at those times, the configuration that produced the run
and the seed.  A trajectory is saved as one ``.npz`` file (arrays plus a JSON
metadata string), written atomically.

.. math::

    \mu_t = \sum_{i=1}^m p_i\,\delta_{\theta_i(t)}, \qquad
    \frac{d\theta_i}{dt} = \hat v_{\mu_t}(\theta_i)

(Chizat & Bach 2018; Mei, Montanari & Nguyen 2018).  A run that blows up raises
:class:`DivergenceError`, which carries the trajectory up to the last finite state.
"""

from __future__ import annotations

import io
import json
import numbers
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from meanfield._io import atomic_write_bytes, to_json
from meanfield._validation import as_float_array, check_index, describe
from meanfield.measure import ParticleMeasure, RNGLike

__all__ = ["DivergenceError", "Trajectory", "describe_rng", "load_trajectory"]

FORMAT = "meanfield.trajectory"
FORMAT_VERSION = 1



def _package_version() -> str:
    import meanfield  # lazy: meanfield/__init__ may import this module

    return str(getattr(meanfield, "__version__", "unknown"))


def describe_rng(rng: RNGLike | np.random.RandomState) -> Any:
    """Return a JSON record of the randomness a run was given, enough to replay it.

    Parameters
    ----------
    rng : int, Generator, SeedSequence, RandomState or None
        What the run received.

    Returns
    -------
    int, dict or None
        An int seed as is; a SeedSequence as ``{"entropy", "spawn_key"}``; a Generator
        as its seed sequence (when it has one) and its bit-generator state at the start
        of the run (``Generator.bit_generator.state``, which restores it exactly);
        ``None`` for fresh OS entropy.
    """
    if rng is None or isinstance(rng, bool):
        return None
    if isinstance(rng, int | np.integer):
        return int(rng)
    if isinstance(rng, np.random.SeedSequence):
        return {"entropy": rng.entropy, "spawn_key": list(rng.spawn_key)}
    if isinstance(rng, np.random.Generator):
        record: dict[str, Any] = {"bit_generator_state": rng.bit_generator.state}
        seq = getattr(rng.bit_generator, "seed_seq", None)
        if isinstance(seq, np.random.SeedSequence):
            record["seed_sequence"] = describe_rng(seq)
        return record
    if isinstance(rng, np.random.RandomState):
        return {"random_state": "legacy numpy RandomState"}
    return {"unrecognised": describe(rng)}


class DivergenceError(RuntimeError):
    """A run produced a non-finite position or risk.

    Attributes
    ----------
    trajectory : Trajectory
        The snapshots recorded before the failure, followed by the last state whose
        positions and risk were finite (when it was not already the last snapshot).
    step : int
        Step (or solver step) at which the non-finite value appeared.
    time : float
        Mean-field time reached when it appeared.
    replicas : ndarray of int
        Flat indices of the ensemble members that went non-finite (``[0]`` for a single
        run).
    """

    def __init__(
        self,
        message: str,
        trajectory: Trajectory,
        *,
        step: int,
        time: float,
        replicas: NDArray[np.int64],
    ) -> None:
        super().__init__(message)
        self.trajectory = trajectory
        self.step = step
        self.time = time
        self.replicas = replicas


class _Owned:
    """An array handed to :class:`Trajectory` without a copy (used by :class:`Recorder`)."""

    __slots__ = ("array",)

    def __init__(self, array: NDArray[np.floating]) -> None:
        self.array = array


def _readonly(arr: NDArray[Any]) -> NDArray[Any]:
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Trajectory:
    r"""Snapshots of a particle measure along a run, with the risk and the run's metadata.

    Parameters
    ----------
    times : array_like, shape (T,)
        Mean-field times t of the snapshots, nondecreasing.
    thetas : array_like, shape (T, ..., m, d+2)
        Particle positions θᵢ(t); the axes between T and m are the ensemble axes.
    masses : array_like, shape (..., m) or (m,)
        Masses pᵢ (constant in time).
    risks : array_like, shape (T, ...), optional
        Risk F(μ_t) at the snapshots as estimated by the run's risk estimator; NaN when
        the run recorded no risk.  Default: all NaN.
    steps : array_like of int, shape (T,), optional
        Step count of each snapshot (Euler/SGD steps, or accepted solver steps);
        integer-valued.
    activation : str, default "relu"
        Name of σ.
    teacher : ParticleMeasure, optional
        The teacher ν when the target is a teacher network (kept for plots).
    config : dict, optional
        The run's settings (JSON-serialisable).
    seed : JSON value, optional
        The randomness the run received (see :func:`describe_rng`).
    info : dict, optional
        Run statistics (runtime, number of velocity evaluations, …).
    version : str, optional
        ``meanfield.__version__`` of the package that produced the run.
    """

    times: NDArray[np.floating]
    thetas: NDArray[np.floating]
    masses: NDArray[np.floating]
    risks: NDArray[np.floating] | None = None
    steps: NDArray[np.int64] | None = None
    activation: str = "relu"
    teacher: ParticleMeasure | None = None
    config: dict[str, Any] = field(default_factory=dict)
    seed: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    version: str = ""

    def __post_init__(self) -> None:
        times = as_float_array("times", self.times, ndim=1).astype(np.float64, copy=True)
        raw = self.thetas
        if isinstance(raw, _Owned):  # the Recorder's buffer, handed over: no copy
            thetas = as_float_array("thetas", raw.array, min_ndim=3, finite=False)
        else:
            thetas = as_float_array("thetas", raw, min_ndim=3, finite=False).copy()
        T = times.shape[0]
        if thetas.shape[0] != T:
            raise ValueError(
                f"thetas must have shape (T, ..., m, d+2) with T={T} (len(times)); "
                f"got shape {thetas.shape}"
            )
        if thetas.shape[-1] < 3 or thetas.shape[-2] == 0:
            raise ValueError(
                f"thetas must have d+2 >= 3 columns and m >= 1 particles; got shape {thetas.shape}"
            )
        if T > 1 and np.any(np.diff(times) < 0):
            raise ValueError("times must be nondecreasing")
        raw_masses = as_float_array("masses", self.masses, min_ndim=1)
        try:
            masses = np.array(np.broadcast_to(raw_masses, thetas.shape[1:-1]))
        except ValueError:
            raise ValueError(
                f"masses must have shape {thetas.shape[1:-1]} (or broadcast to it) to match "
                f"thetas of shape {thetas.shape}; got shape {raw_masses.shape}"
            ) from None
        risks = (
            np.full(thetas.shape[:-2], np.nan)
            if self.risks is None
            else as_float_array("risks", self.risks, finite=False).astype(np.float64, copy=True)
        )
        if risks.shape != thetas.shape[:-2]:
            raise ValueError(
                f"risks must have shape {thetas.shape[:-2]} (T and the ensemble axes); "
                f"got shape {risks.shape}"
            )
        if self.steps is None:
            steps = np.arange(T, dtype=np.int64)
        else:
            raw = as_float_array("steps", self.steps)
            if raw.shape != (T,):
                raise ValueError(f"steps must have shape ({T},); got shape {raw.shape}")
            if np.any(raw != np.round(raw)) or np.any(np.abs(raw) >= 2.0**62):
                raise ValueError(f"steps must hold integers; got {describe(raw)}")
            steps = raw.astype(np.int64)
        if not isinstance(self.activation, str) or not self.activation:
            raise TypeError(
                f"activation must be the non-empty name of σ; got {describe(self.activation)}"
            )
        if self.teacher is not None and not isinstance(self.teacher, ParticleMeasure):
            raise TypeError(
                f"teacher must be a ParticleMeasure or None; got {describe(self.teacher)}"
            )
        for name in ("config", "info"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise TypeError(f"{name} must be a dict; got {describe(value)}")
            object.__setattr__(self, name, json.loads(to_json(dict(value))))
        object.__setattr__(self, "seed", json.loads(to_json(self.seed)))
        object.__setattr__(self, "times", _readonly(times))
        object.__setattr__(self, "thetas", _readonly(thetas))
        object.__setattr__(self, "masses", _readonly(masses))
        object.__setattr__(self, "risks", _readonly(risks))
        object.__setattr__(self, "steps", _readonly(steps))
        object.__setattr__(self, "version", self.version or _package_version())

    # -- views ---------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.times.shape[0])

    @property
    def m(self) -> int:
        """Number of particles."""
        return int(self.thetas.shape[-2])

    @property
    def d(self) -> int:
        """Input dimension."""
        return int(self.thetas.shape[-1] - 2)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Ensemble axes (``()`` for a single run)."""
        return tuple(self.thetas.shape[1:-2])

    def measure(self, index: int = -1) -> ParticleMeasure:
        """Return the measure μ at snapshot ``index`` (default: the last one).

        Raises
        ------
        ValueError
            If ``index`` is out of range (or the trajectory is empty).
        TypeError
            If ``index`` is not an integer.
        """
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"index must be an integer; got {describe(index)}")
        if not -len(self) <= index < len(self):
            raise ValueError(f"index must lie in [-{len(self)}, {len(self)}); got {index}")
        return ParticleMeasure(self.thetas[int(index)], self.masses)

    @property
    def initial(self) -> ParticleMeasure:
        """μ at the first snapshot."""
        return self.measure(0)

    @property
    def final(self) -> ParticleMeasure:
        """μ at the last snapshot."""
        return self.measure(-1)

    def effective_neurons(self) -> NDArray[np.floating]:
        r"""Effective neurons cᵢ(t) = aᵢ(t) (wᵢ(t), bᵢ(t)), shape ``(T, ..., m, d+1)``."""
        return self.thetas[..., :1] * self.thetas[..., 1:]

    def balance(self) -> NDArray[np.floating]:
        r"""aᵢ² − ‖wᵢ‖² − bᵢ² at every snapshot, shape ``(T, ..., m)``.

        .. math:: \beta_i(t) = a_i(t)^2 - \|w_i(t)\|^2 - b_i(t)^2

        Constant along the exact ReLU flow; drifts by O(η²) per discrete step
        (Du, Hu & Lee 2018).
        """
        th = self.thetas
        return th[..., 0] ** 2 - np.sum(th[..., 1:] ** 2, axis=-1)

    def replica(self, index: int | tuple[int, ...]) -> Trajectory:
        """Return the trajectory of one ensemble member (``index`` into :attr:`batch_shape`).

        Raises
        ------
        ValueError
            If the trajectory has no ensemble axis or ``index`` is out of range.
        TypeError
            If ``index`` does not hold integers.
        """
        idx = check_index(index, self.batch_shape)
        sl: tuple[Any, ...] = (slice(None), *idx)
        teacher = self.teacher
        if teacher is not None and teacher.batch_shape:
            teacher = ParticleMeasure(teacher.theta[idx], teacher.masses[idx])
        return Trajectory(
            self.times,
            self.thetas[sl],
            self.masses[idx],
            self.risks[sl] if self.risks is not None else None,
            self.steps,
            self.activation,
            teacher,
            self.config,
            self.seed,
            {**self.info, "replica_of": list(self.batch_shape), "replica": list(idx)},
            self.version,
        )

    def equals(self, other: object) -> bool:
        """Exact equality of every array (NaNs equal) and of the metadata.

        ``info`` (run statistics such as the runtime) is not compared.
        """
        if not isinstance(other, Trajectory):
            return False
        arrays = ("times", "thetas", "masses", "risks", "steps")
        for name in arrays:
            a, b = getattr(self, name), getattr(other, name)
            if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
                return False
        if (self.teacher is None) != (other.teacher is None):
            return False
        if (
            self.teacher is not None
            and other.teacher is not None
            and not (
                np.array_equal(self.teacher.theta, other.teacher.theta)
                and np.array_equal(self.teacher.masses, other.teacher.masses)
            )
        ):
            return False
        mine, theirs = self._metadata(), other._metadata()
        del mine["info"], theirs["info"]
        return mine == theirs

    def __repr__(self) -> str:
        ens = f", batch_shape={self.batch_shape}" if self.batch_shape else ""
        span = f"t in [{self.times[0]:.4g}, {self.times[-1]:.4g}]" if len(self) else "empty"
        return f"Trajectory(T={len(self)}, m={self.m}, d={self.d}{ens}, {span})"

    # -- persistence ---------------------------------------------------------------
    def _metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "activation": self.activation,
            "config": self.config,
            "seed": self.seed,
            "info": self.info,
            "version": self.version,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save as one ``.npz`` file, atomically (temporary file, then :func:`os.replace`).

        The arrays ``times, thetas, masses, risks, steps`` (and ``teacher_theta``,
        ``teacher_masses`` when there is a teacher) are stored as such; everything else
        is one JSON string in the array ``metadata``, which also lists the array names
        (so that :meth:`load` detects a damaged member name, which no zip checksum
        covers).  The file loads with ``numpy.load(path, allow_pickle=False)``.

        Parameters
        ----------
        path : str or PathLike
            Destination; ``.npz`` is appended when the name has another suffix.

        Returns
        -------
        Path
            The file written.
        """
        target = Path(path)
        if target.suffix != ".npz":
            target = target.with_name(target.name + ".npz")
        arrays: dict[str, NDArray[Any]] = {
            "times": self.times,
            "thetas": self.thetas,
            "masses": self.masses,
            "risks": self.risks if self.risks is not None else np.empty(0),
            "steps": self.steps if self.steps is not None else np.empty(0, dtype=np.int64),
        }
        if self.teacher is not None:
            arrays["teacher_theta"] = self.teacher.theta
            arrays["teacher_masses"] = self.teacher.masses
        meta = {**self._metadata(), "arrays": sorted(arrays)}
        arrays["metadata"] = np.array(to_json(meta))
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        return atomic_write_bytes(target, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Trajectory:
        """Load a trajectory written by :meth:`save`.

        Raises
        ------
        ValueError
            If the file is not a complete meanfield trajectory: truncated or corrupted,
            another kind of file, an unknown format version, or arrays that do not fit
            together (the message names the file).
        FileNotFoundError
            If there is no such file.
        """
        with open(Path(path), "rb") as fh:  # a missing file is an OSError, not ours
            try:
                return cls._read(fh, path)
            except _UNREADABLE as exc:
                if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
                    raise
                raise ValueError(
                    f"{path} is not a readable meanfield trajectory "
                    f"({type(exc).__name__}: {exc})"
                ) from None

    @classmethod
    def _read(cls, fh: Any, path: str | os.PathLike[str]) -> Trajectory:
        # numpy reads a member only as far as its .npy header says, which skips the zip
        # CRC check when a damaged header claims fewer bytes: check every CRC first.
        with zipfile.ZipFile(fh) as archive:
            bad = archive.testzip()
        if bad is not None:
            raise ValueError(f"{path} is corrupted: member {bad!r} fails its CRC check")
        fh.seek(0)
        with np.load(fh, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile) or "metadata" not in data.files:
                raise ValueError(f"{path} is not a meanfield trajectory (no 'metadata' array)")
            meta = json.loads(str(data["metadata"][()]))
            if not isinstance(meta, dict):
                raise ValueError(f"{path} has metadata that is not a JSON object")
            # member names are not covered by any checksum: the metadata lists them
            stored = sorted(f for f in data.files if f != "metadata")
            if "arrays" in meta and stored != sorted(meta["arrays"]):
                raise ValueError(
                    f"{path} is corrupted: it holds the arrays {stored}, its metadata lists "
                    f"{sorted(meta['arrays'])}"
                )
            if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"{path} has format {meta.get('format')!r} version "
                    f"{meta.get('format_version')!r}; expected {FORMAT!r} version {FORMAT_VERSION}"
                )
            teacher = (
                ParticleMeasure(data["teacher_theta"], data["teacher_masses"])
                if "teacher_theta" in data.files
                else None
            )
            return cls(
                times=data["times"],
                thetas=data["thetas"],
                masses=data["masses"],
                risks=data["risks"],
                steps=data["steps"],
                activation=meta["activation"],
                teacher=teacher,
                config=meta["config"],
                seed=meta["seed"],
                info=meta["info"],
                version=meta["version"],
            )


# What a truncated or corrupted .npz can raise while it is read (after it was opened).
_UNREADABLE = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    EOFError,
    OSError,
    NotImplementedError,  # a damaged header naming an unknown compression method
    RuntimeError,  # a damaged header flagging the member as encrypted
    MemoryError,  # a damaged .npy header declaring a huge array
    struct.error,
    zipfile.BadZipFile,
    zlib.error,
)


def load_trajectory(path: str | os.PathLike[str]) -> Trajectory:
    """Load a trajectory saved with :meth:`Trajectory.save` (alias of :meth:`Trajectory.load`)."""
    return Trajectory.load(path)

r"""Compiled SGD engines (numba), checked against the numpy reference of :mod:`meanfield.sgd`.

One SGD step on a minibatch (x_k, y_k)_{k ≤ B} of one run computes

.. math::

    u_{ki} = w_i\cdot x_k + b_i,\quad r_k = \sum_i p_i a_i\sigma(u_{ki}) - y_k,\quad
    \theta_i \leftarrow \theta_i - \eta\Big(\frac1B\sum_k r_k\big(\sigma(u_{ki}),\,
    a_i\sigma'(u_{ki})x_k,\, a_i\sigma'(u_{ki})\big) + \lambda\theta_i\Big)

(Mei, Montanari & Nguyen 2018; Chizat & Bach 2018), as
:func:`~meanfield.velocity.residual_on_sample` and
:func:`~meanfield.velocity.first_variation_grad_on_sample` do, up to the order of the sums
and fused multiply-adds, so the two agree to rounding (about 1e-16 per step).  Engines
(:class:`Engine` picks one from m, d, B and the number of runs R):

* ``"serial"`` (one run of a small network): a whole block of steps in one compiled call
  (:mod:`meanfield._fast_serial`);
* ``"lanes"`` (R ≥ 2 runs of a small network): W = 8 runs side by side in the lanes of
  one vector register, blocks of W runs shared among threads
  (:mod:`meanfield._fast_lanes`);
* ``"wide"`` (larger m, small d): W neurons of a run in the lanes of a vector, the runs
  of an ensemble shared among threads (:mod:`meanfield._fast_lanes`);
* ``"blas"`` (large m·d): the neurons in tiles shared among the cores, each tile's two
  matrix products in BLAS and its element-wise work in compiled loops, back to back
  (:mod:`meanfield._fast_blas`).

The serial and lanes engines do the same floating-point operations on each run, so an
ensemble member equals its solo run bitwise; the choice of ``"wide"`` and ``"blas"``
depends on (m, d, B) only, so the same holds for them.  The kernels release the GIL;
no OpenMP, so the engines are safe in threads and across ``fork``.  numba is optional:
without it :func:`available` is ``False`` and :mod:`meanfield.sgd` uses its numpy
reference.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from meanfield import _fast_serial as _k
from meanfield._fast_serial import CHUNK

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
"""Whether numba is installed (it is imported, and the kernels compiled, on first use)."""
_READY = False
_LOCK = threading.Lock()

__all__ = ["ACTIVATION_CODES", "CHUNK", "HAVE_NUMBA", "Engine", "available", "make_engine"]

Array = NDArray[np.floating]

#: Integer codes of the built-in activations in the kernels.
ACTIVATION_CODES = {"relu": 0, "sigmoid": 1, "tanh": 2, "erf": 3}
#: Elements (sample × neuron) of a cache block of the fused kernels.
_BLOCK_ELEMS = 2048
#: BLAS engine from this input dimension d and B·m·d ≥ _BLAS_WORK: below, the wide
#: engine's loops are as fast or faster; above, their d multiply-adds per (sample ×
#: neuron) lose to BLAS (B = 100, ns per sample × neuron, wide / blas: m = 10³, d = 8:
#: 3.0 / 2.3, d = 16: 5.6 / 3.8; m = 10⁴, d = 8: 2.9 / 2.9, d = 12: 3.8 / 4.9,
#: d = 24: 7.2 / 5.6).
_BLAS_MIN_D = 16
_BLAS_WORK = 1 << 19
#: Width from which the wide engine is used even when the lanes engine would fit: W
#: neurons per vector then waste little on padding, and one run alone is as fast per
#: (sample × neuron) as W runs in the lanes.
_WIDE_MIN_M = 64
KINDS = ("serial", "lanes", "wide", "blas")


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _pool() -> ThreadPoolExecutor:
    """Worker threads for ensembles (one pool per process: a forked child gets its own)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(_workers(), thread_name_prefix="meanfield"))
    return _POOL[1]


def _in_threads(fn: Any, n_items: int) -> None:
    """Call ``fn(i0, i1)`` on contiguous shares of ``range(n_items)``, one per core."""
    cuts = np.linspace(0, n_items, min(n_items, _workers()) + 1).astype(int).tolist()
    futures = [_pool().submit(fn, i0, i1) for i0, i1 in itertools.pairwise(cuts[1:])]
    fn(cuts[0], cuts[1])
    for f in futures:
        f.result()


def available() -> bool:
    """Return whether numba is installed (the compiled engines can run)."""
    return HAVE_NUMBA


def _compile() -> None:
    """Import numba and compile the kernels (once).

    The kernels of :mod:`meanfield._fast_serial` are plain Python functions until then,
    so importing :mod:`meanfield` does not import numba; compiled code is cached on disk
    (``cache=True``).
    """
    global _READY
    with _LOCK:
        if _READY:
            return
        import numba

        from meanfield import _simd

        g = vars(_k)
        g["_fma"] = _simd.fma
        for name in _k.KERNELS:
            g[name] = numba.njit(cache=True, fastmath=False, nogil=True)(g[name])
        from meanfield import _fast_blas, _fast_lanes  # noqa: F401  (compile their kernels)

        _READY = True


# -- dispatch ---------------------------------------------------------------------------
class Engine:
    """A compiled SGD engine for one configuration (activation, m, d, B, number of runs).

    ``kind`` says which kernels run (:data:`KINDS`): ``"serial"`` (one run of a small
    network), ``"lanes"`` (several runs of a small network, W runs per vector),
    ``"wide"`` (larger m, small d, W neurons per vector, whatever R) or ``"blas"`` (large
    m·d, whatever R).  The first two do the same arithmetic on a run, and the choice of
    the last two depends on (m, d, B) only, so an ensemble member gives the bits of its
    solo run.

    Parameters
    ----------
    act : int
        Activation code (:data:`ACTIVATION_CODES`).
    m, d, batch, runs : int
        Width, input dimension, batch size B and number of runs R.
    """

    def __init__(self, act: int, m: int, d: int, batch: int, runs: int) -> None:
        _compile()
        from meanfield import _fast_lanes

        self.act, self.m, self.d, self.batch, self.runs = act, m, d, batch, runs
        self.block = max(8, min(m, CHUNK, _BLOCK_ELEMS // batch))
        self._bufs: dict[str, Any] = {}
        if d >= _BLAS_MIN_D and m * batch * d >= _BLAS_WORK:
            self.kind = "blas"
        elif m >= _WIDE_MIN_M or not _fast_lanes.fits(m, d, batch):
            self.kind = "wide"
        else:
            self.kind = "serial" if runs == 1 else "lanes"

    def _columns(
        self, theta: Array, p: Array, x: Array, y: Array, n: int, eta: float, lam: float
    ) -> tuple[Array, int]:
        """Run the serial engine on each run: positions as columns ``(d+2, m)``."""
        runs, m, dd = theta.shape
        out = np.empty_like(theta, dtype=np.float64)
        done = n
        for r in range(runs):
            state = np.empty((2, dd, m))
            _k._transpose(theta[r], state[0])
            if n:
                args = (n, self.act, eta, lam, self.block)
                done = min(done, _k._run_serial(state, p[r], x, y, r, *args))
            _k._transpose(state[0], out[r])
        return out, done

    def _wide(
        self, theta: Array, p: Array, x: Array, y: Array, n: int, eta: float, lam: float
    ) -> tuple[Array, int]:
        """Run the wide engine: W neurons per vector, the runs shared among threads."""
        from meanfield._fast_lanes import run_wide

        out = np.empty_like(theta, dtype=np.float64)
        done = np.full(theta.shape[0], n, dtype=np.int64)

        def share(r0: int, r1: int) -> None:
            for r in range(r0, r1):
                args = (r, n, self.act, eta, lam, self.block)
                out[r], done[r] = run_wide(theta[r], p[r], x, y, *args)

        _in_threads(share, theta.shape[0])
        return out, int(done.min())

    def _rows(
        self, theta: Array, p: Array, x: Array, y: Array, n: int, eta: float, lam: float
    ) -> tuple[Array, int]:
        """Run the BLAS engine on the rows ``(m, d+2)``.

        The tiles are shared among our threads, each product on one BLAS thread.
        """
        from meanfield import _fast_blas

        out = np.empty_like(theta, dtype=np.float64)
        done = n
        with threadpool_limits(limits=1, user_api="blas"):
            for r in range(out.shape[0]):
                args = (n, (self.act, eta, lam), self._bufs, _in_threads, _workers())
                done = min(done, _fast_blas.run(theta[r], out[r], p[r], x, y, r, *args))
        return out, done

    def _lanes(
        self, theta: Array, p: Array, x: Array, y: Array, n: int, eta: float, lam: float
    ) -> tuple[Array, int]:
        """Run the lanes engine: blocks of W runs, shared among threads."""
        from meanfield._fast_lanes import W, run_block

        runs = theta.shape[0]
        blocks = [np.arange(r0, min(r0 + W, runs)) for r0 in range(0, runs, W)]
        out = np.empty_like(theta, dtype=np.float64)
        done = np.full(len(blocks), n, dtype=np.int64)

        def share(b0: int, b1: int) -> None:
            for b in range(b0, b1):
                rows = blocks[b]
                args = (n, self.act, eta, lam, self.block)
                out[rows], done[b] = run_block(theta, p, x, y, rows, *args)

        _in_threads(share, len(blocks))
        return out, int(done.min())

    def run(
        self, theta: Array, masses: Array, x: Array, y: Array, eta: float, lam: float
    ) -> tuple[Array, int]:
        r"""Advance every run by the S steps of ``x``, or up to the first non-finite step.

        .. math:: \theta^{s+1} = \theta^s - \eta\big(\widehat{\nabla J}(\theta^s)
            + \lambda\theta^s\big)

        Parameters
        ----------
        theta : ndarray, shape (R, m, d+2)
            Positions of the R runs.
        masses : ndarray, shape (R, m) or (m,)
            Masses pᵢ.
        x : ndarray, shape (S, R or 1, B, d)
            Inputs of each step (one stream per run, or one shared).
        y : ndarray, shape (S, R or 1, B)
            Targets.
        eta, lam : float
            Step η and weight decay λ.

        Returns
        -------
        theta : ndarray, shape (R, m, d+2)
            Positions after ``done`` steps (a new array).
        done : int
            S; or, when a run's next step is not finite, the number of steps after which
            every run is still finite (the caller redoes that step with the reference).
        """
        n = x.shape[0]
        runs, m, _ = theta.shape
        p = np.ascontiguousarray(np.broadcast_to(masses, (runs, m)), dtype=np.float64)
        advance = {"lanes": self._lanes, "wide": self._wide, "blas": self._rows}.get(
            self.kind, self._columns
        )
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out, done = advance(theta, p, x, y, n, eta, lam)
            if done < n:  # a run broke down: replay every run up to that step only
                out, _ = advance(theta, p, x, y, done, eta, lam)
        return out, done


def make_engine(
    backend: str, activation: Any, m: int, d: int, batch: int, runs: int
) -> Engine | None:
    """Return the compiled engine for ``backend``, or ``None`` for the numpy reference.

    Parameters
    ----------
    backend : {"auto", "numba", "numpy"}
        ``"numpy"``: the reference; ``"numba"``: the compiled engine (error when numba
        is missing or the activation is not built in); ``"auto"``: numba when it is
        installed and the activation is built in, else numpy.
    activation : Activation
        σ; only the built-in ones (:data:`ACTIVATION_CODES`) have compiled versions.
    m, d, batch, runs : int
        Width, input dimension, batch size and number of runs.

    Returns
    -------
    Engine or None
    """
    from meanfield.activations import ACTIVATIONS

    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'numpy'; got {backend!r}")
    if backend == "numpy":
        return None
    code = ACTIVATION_CODES.get(activation.name)
    builtin = code is not None and ACTIVATIONS.get(activation.name) is activation
    if backend == "numba":
        if not HAVE_NUMBA:
            raise ImportError("backend='numba' needs numba: pip install numba")
        if not builtin:
            raise ValueError(
                "backend='numba' supports the built-in activations "
                f"{sorted(ACTIVATION_CODES)}; got the custom activation {activation.name!r}"
            )
    if not (HAVE_NUMBA and builtin) or code is None:
        return None
    return Engine(code, m, d, batch, runs)

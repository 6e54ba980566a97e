r"""Genz's bivariate normal distribution function, compiled (numba) and vectorised.

For the upper orthant L(h, k; ρ) = P(Z > h, Z′ > k) = Φ₂(−h, −k; ρ), corr(Z, Z′) = ρ,
Genz (2004) evaluates the Drezner–Wesolowsky (1990) integral

.. math::

    |\rho| < 0.925:\quad L = \Phi(-h)\Phi(-k) + \frac1{2\pi}\int_0^{\arcsin\rho}
    \exp\Big(-\frac{h^2 + k^2 - 2hk\sin\vartheta}{2\cos^2\vartheta}\Big)\,d\vartheta

by Gauss–Legendre quadrature with 6, 12 or 20 points as |ρ| < 0.3, 0.75 or 0.925, and
for |ρ| ≥ 0.925 the integral in the variable √(1 − ρ²) after subtracting its singular
part, with 20 points; absolute error about 1e-15.  :func:`_phi2_pairs` sorts the pairs
by their number of points and runs each group's quadrature in a loop over pairs that the
compiler vectorises: e^x and sin, cos are polynomials there (:func:`_exp` takes the
power of two from the bits of the double; no libm call, no subnormal number).  It is the
Φ₂ of :mod:`meanfield._fast_kernels`; the numpy reference
(:func:`meanfield.bivariate_normal.bivariate_normal_cdf`) uses Owen's T.

numba is optional: without it :func:`available` is ``False``.  :class:`Jit` compiles
the kernels of this module and of the modules that build on it on first use.

References
----------
A. Genz. Numerical computation of rectangular bivariate and trivariate normal and t
probabilities. Statistics and Computing 14 (2004), 251–260.
Z. Drezner, G. O. Wesolowsky. On the computation of the bivariate normal integral.
J. Statist. Comput. Simul. 35 (1990), 101–107.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["HAVE_NUMBA", "JIT", "Jit", "available", "phi2", "run_threads"]

Array = NDArray[np.floating]

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
"""Whether numba is installed (it is imported, and the kernels compiled, on first use)."""
_H_CLIP = 40.0  # Φ(−40) < 1e-349: Φ₂ is exact with h, k clipped to [−40, 40]
_TWO_PI = 2.0 * math.pi
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)

# Gauss–Legendre points x > 0 of [−1, 1] and weights, 6, 12 and 20 points (Genz 2004)
_X6 = np.array([0.9324695142031522, 0.6612093864662647, 0.2386191860831970])
_W6 = np.array([0.1713244923791705, 0.3607615730481384, 0.4679139345726904])
_X12 = np.array([0.9815606342467191, 0.9041172563704750, 0.7699026741943050,
                 0.5873179542866171, 0.3678314989981802, 0.1252334085114692])
_W12 = np.array([0.04717533638651177, 0.1069393259953183, 0.1600783285433464,
                 0.2031674267230659, 0.2334925365383547, 0.2491470458134029])
_X20 = np.array([0.9931285991850949, 0.9639719272779138, 0.9122344282513259,
                 0.8391169718222188, 0.7463319064601508, 0.6360536807265150,
                 0.5108670019508271, 0.3737060887154196, 0.2277858511416451,
                 0.07652652113349733])
_W20 = np.array([0.01761400713915212, 0.04060142980038694, 0.06267204833410906,
                 0.08327674157670475, 0.1019301198172404, 0.1181945319615184,
                 0.1316886384491766, 0.1420961093183821, 0.1491729864726037,
                 0.1527533871307259])
# ±x and the weights of the 20 points, in the order of the |ρ| ≥ 0.925 loop
_XS20 = np.concatenate([_X20, -_X20])
_WS20 = np.concatenate([_W20, _W20])

# exp(x) = 2^k p(r), r = x − k ln 2 (Cody–Waite), p the Taylor polynomial of degree 13
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5·2⁵²: x + _ROUND rounds x to an integer, in the low bits
_EXP_MIN = -700.0  # below: 0 (e^−700 ≈ 1e-304; no subnormal numbers in the loops)
_E0, _E1, _E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10, _E11, _E12, _E13 = (
    1.0 / math.factorial(n) for n in range(14)
)
# sin t and cos t for |t| ≤ 0.6 (Taylor, degrees 15 and 16: error < 1e-18)
_S0, _S1, _S2, _S3, _S4, _S5, _S6, _S7 = (
    (-1.0) ** n / math.factorial(2 * n + 1) for n in range(8)
)
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8 = (
    (-1.0) ** n / math.factorial(2 * n) for n in range(9)
)

# Φ: Taylor coefficients of erf t, and the monomial coefficients in u of the degree-24
# Chebyshev interpolant of (1 + 2t) e^{t²} erfc t on t ≥ ½ (y = (t − K)/(t + K), K = 3.75,
# u maps [y(½), 1] to [−1, 1]); computed with mpmath at 50 digits, error < 1e-18
_ERF = np.array([1.1283791670955126, -0.37612638903183754, 0.11283791670955126,
                 -0.026866170645131252, 0.005223977625442188, -0.0008548327023450853,
                 0.00012055332981789664, -1.492565035840625e-05, 1.6462114365889248e-06,
                 -1.6365844691234924e-07, 1.4807192815879218e-08, -1.2290555301717928e-09,
                 9.422759064650411e-11])
_ERFCX = np.array([1.2211784257075968, -0.12053676481185699, 0.01941362941520915,
                   0.028932667379783894, -0.039521163352398664, 0.031165502863171043,
                   -0.018340273618678647, 0.008370971289459364, -0.002857358018469818,
                   0.0006163684452854351, -7.550861733501184e-06, -5.046255817855475e-05,
                   1.5886639835467503e-05, 7.161304806907899e-07, -1.8129367167594906e-06,
                   2.908223438093476e-07, 1.5610255349624081e-07, -5.761202307373951e-08,
                   -1.220228854795777e-08, 8.334626749816433e-09, 9.333049916477454e-10,
                   -1.0041355268089822e-09, -7.187358336635315e-11, 7.587356859387078e-11,
                   4.341844487790946e-12])
_Y0 = (0.5 - 3.75) / (0.5 + 3.75)
# arcsin z = z + z³ g(z²) on |z| ≤ ½: monomial coefficients of the degree-15 Chebyshev
# interpolant of g (mpmath, 50 digits; error < 2e-17)
_ASIN = np.array([0.16666666666666666, 0.07500000000000001, 0.044642857142854785,
                  0.030381944444757836, 0.022372159069048537, 0.01735276534332969,
                  0.013964818385053259, 0.011552282407586502, 0.009755112382256658,
                  0.0084537824848803, 0.00686107260357514, 0.008777454150324477,
                  -0.0028267620071140763, 0.026711671350106415, -0.029549588908161988,
                  0.03221360103469548])

_KERNELS = {  # name: fastmath flags (FMA contraction only in the well-conditioned loops)
    "_exp": {"contract"},
    "_ndtr": {"contract"},
    "_asin": {"contract"},
    "_low_nodes": {"contract"},
    "_high_nodes": {"contract"},
    "_phi2_pairs": set(),
    "_tails": {"contract"},
    "_phi2_array": set(),
}
_INLINE = ("_exp", "_ndtr", "_asin")


def available() -> bool:
    """Return whether numba is installed (the compiled kernels can run)."""
    return HAVE_NUMBA


class Jit:
    """The numba kernels of one module, compiled on first use (and cached on disk).

    Until :meth:`compile` they are plain Python functions, so importing :mod:`meanfield`
    does not import numba.  Options: ``nogil`` (threads), ``error_model="numpy"`` (no
    exception checks, so loops vectorise), per-kernel fastmath flags; the ``inline`` ones
    are inlined into their callers.

    Parameters
    ----------
    namespace : dict
        The module's globals (its kernels are replaced there).
    kernels : mapping of str to set of str
        Kernel names and their fastmath flags.
    inline : tuple of str
        Kernels to inline.
    needs : tuple of Jit
        The modules whose kernels these call (compiled first).  Numba caches a kernel
        with the code of the kernels it calls but checks only its own source file:
        after editing a module of ``needs``, delete the ``*.nbi``/``*.nbc`` cache files.
    """

    def __init__(
        self, namespace: dict[str, Any], kernels: Mapping[str, set[str]],
        inline: tuple[str, ...] = (), needs: tuple[Jit, ...] = (),
    ) -> None:
        self.namespace, self.kernels, self.inline, self.needs = namespace, kernels, inline, needs
        self._ready = False
        self._lock = threading.Lock()

    def compile(self) -> None:
        """Import numba and compile the kernels (once)."""
        with self._lock:
            if self._ready:
                return
            for dep in self.needs:
                dep.compile()
            import numba

            for name, flags in self.kernels.items():
                opts: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy",
                                        "fastmath": flags or False}
                if name in self.inline:
                    opts["inline"] = "always"
                self.namespace[name] = numba.njit(**opts)(self.namespace[name])
            self._ready = True


JIT = Jit(globals(), _KERNELS, _INLINE)
"""This module's kernels."""
_compile = JIT.compile


def run_threads(task: Callable[[int, int], None], threads: int) -> None:
    """Call ``task(start, step)`` for start = 0 … threads − 1, step = threads, on threads.

    The tasks deal the work items start, start + step, …; compiled kernels release the
    GIL.  One thread: ``task(0, 1)`` in the caller's thread.
    """
    if threads <= 1:
        task(0, 1)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for fut in [pool.submit(task, t, threads) for t in range(threads)]:
            fut.result()


# -- scalar functions ---------------------------------------------------------------------
def _exp(x: float) -> float:  # pragma: no cover - compiled
    """e^x for x ≤ 0 (relative error ≤ 1 ulp; 0 below −700), in vectorisable operations."""
    keep = x >= _EXP_MIN
    x = max(x, _EXP_MIN)
    t = x * _LOG2E + _ROUND
    k = t - _ROUND
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = _E13
    p = p * r + _E12
    p = p * r + _E11
    p = p * r + _E10
    p = p * r + _E9
    p = p * r + _E8
    p = p * r + _E7
    p = p * r + _E6
    p = p * r + _E5
    p = p * r + _E4
    p = p * r + _E3
    p = p * r + _E2
    p = p * r + _E1
    p = p * r + _E0
    scale = np.int64((np.float64(t).view(np.int64) + 1023) << 52).view(np.float64)  # 2^k
    return p * scale if keep else 0.0


def _ndtr(x: float) -> float:  # pragma: no cover - compiled
    """Φ(x) in vectorisable operations (absolute error ≤ 1.2e-16, relative ~1e-15 for x > −8).

    With t = |x|/√2: erf t by its Taylor series below t = ½; above, erfc t = e^{−t²}
    f(y)/(1 + 2t), y = (t − 3.75)/(t + 3.75), f a polynomial of degree 24 (Chebyshev
    interpolant of (1 + 2t) e^{t²} erfc t, Shepherd & Laframboise 1981, in monomial form).
    """
    t = min(abs(x) * _SQRT_HALF, 40.0)
    t2 = t * t
    p = _ERF[12]
    for j in range(11, -1, -1):
        p = p * t2 + _ERF[j]
    y = (t - 3.75) / (t + 3.75)
    u = (2.0 * y - (1.0 + _Y0)) / (1.0 - _Y0)
    f = _ERFCX[24]
    for j in range(23, -1, -1):
        f = f * u + _ERFCX[j]
    half = 0.5 - 0.5 * (p * t) if t < 0.5 else 0.5 * _exp(-t2) * f / (1.0 + 2.0 * t)
    return half if x < 0.0 else 1.0 - half


# -- Φ₂ by Genz's algorithm, vectorised over pairs ----------------------------------------
def _asin(r: float) -> float:  # pragma: no cover - compiled
    """Return arcsin r for |r| ≤ 1 in vectorisable operations (error about 1 ulp).

    asin z = z + z³ g(z²) on |z| ≤ ½ (g a polynomial of degree 15), and
    asin r = π/2 − 2 asin √((1 − r)/2) above.
    """
    a = abs(r)
    big = a > 0.5
    z = math.sqrt(0.5 * (1.0 - a)) if big else a
    w = z * z
    g = _ASIN[15]
    for j in range(14, -1, -1):
        g = g * w + _ASIN[j]
    t = z + z * w * g
    t = 0.5 * math.pi - 2.0 * t if big else t
    return t if r >= 0.0 else -t


def _low_nodes(
    n: int, work: Array, xs: Array, ws: Array
) -> None:  # pragma: no cover - compiled
    """Genz's sum for |ρ| < 0.925 over n pairs (rows 0-2 of ``work``: al, be, ρ).

    Writes acc = Σᵢ wᵢ Σ± exp((s hk − hs)/(1 − s²)), s = sin(asr (1 ± xᵢ)), to row 8 and
    asr = arcsin(ρ)/2 to row 3, with hk = al·be, hs = (al² + be²)/2 (the upper orthant of
    (−al, −be)).  sin(asr(1 ± x)) = sin(asr)cos(asr x) ± cos(asr)sin(asr x), with sin and
    cos of |asr x| ≤ 0.6 by their Taylor polynomials.
    """
    al, be, rr, asr, hk, hs, sa, ca, acc = (work[0], work[1], work[2], work[3], work[4],
                                            work[5], work[6], work[7], work[8])
    for p in range(n):  # vectorised
        h, k, r = al[p], be[p], rr[p]
        hk[p] = h * k
        hs[p] = 0.5 * (h * h + k * k)
        asr[p] = 0.5 * _asin(r)
        ca[p] = math.sqrt(0.5 * (1.0 + math.sqrt((1.0 - r) * (1.0 + r))))  # cos(asr)
        sa[p] = r / (2.0 * ca[p])  # sin(asr): sin 2a = 2 sin a cos a
        acc[p] = 0.0
    for i in range(xs.shape[0]):
        x = xs[i]
        w = ws[i]
        for p in range(n):
            t = asr[p] * x
            t2 = t * t
            st = _S7 * t2 + _S6
            st = st * t2 + _S5
            st = st * t2 + _S4
            st = st * t2 + _S3
            st = st * t2 + _S2
            st = st * t2 + _S1
            st = (st * t2 + _S0) * t
            ct = _C8 * t2 + _C7
            ct = ct * t2 + _C6
            ct = ct * t2 + _C5
            ct = ct * t2 + _C4
            ct = ct * t2 + _C3
            ct = ct * t2 + _C2
            ct = ct * t2 + _C1
            ct = ct * t2 + _C0
            s, c = sa[p], ca[p]
            s_lo, c_lo = s * ct - c * st, c * ct + s * st  # angle asr(1 − x)
            s_hi, c_hi = s * ct + c * st, c * ct - s * st  # angle asr(1 + x)
            c_lo2, c_hi2 = c_lo * c_lo, c_hi * c_hi
            inv = 1.0 / (c_lo2 * c_hi2)
            e_lo = _exp((s_lo * hk[p] - hs[p]) * (inv * c_hi2))
            e_hi = _exp((s_hi * hk[p] - hs[p]) * (inv * c_lo2))
            acc[p] += w * (e_lo + e_hi)


def _high_nodes(n: int, work: Array) -> None:  # pragma: no cover - compiled
    """Genz's |ρ| ≥ 0.925 branch over n pairs (rows 0-2 of ``work``: al, be, ρ).

    Writes to row 3 the sum −(2π) (L − Φ(−max(h, k))) of the upper orthant L of
    (h, k) = (−al, ∓be): its singular part plus 20 points with xs = (a₂(1 ± xᵢ))²,
    rs = √(1 − xs), Σ wᵢ (e^{−bs/(2xs) − hk/(1+rs)}/rs − e^{−(bs/xs + hk)/2}(1 + c xs
    (1 + d xs))) (Genz's two exponents merged, so that no factor overflows).
    """
    al, be, rr, out, hk, bs, a2, cc, dd, acc = (work[0], work[1], work[2], work[3], work[4],
                                                work[5], work[6], work[7], work[8], work[9])
    for p in range(n):  # vectorised
        r = rr[p]
        h = -al[p]
        k = -be[p] if r > 0.0 else be[p]
        hkq = h * k
        as_ = (1.0 - r) * (1.0 + r)
        a = math.sqrt(as_)
        bsq = (h - k) * (h - k)
        cq = (4.0 - hkq) / 8.0
        dq = (12.0 - hkq) / 16.0
        hk[p], bs[p], a2[p], cc[p], dd[p], acc[p] = hkq, bsq, 0.5 * a, cq, dq, 0.0
        v = a * _exp(-0.5 * (bsq / as_ + hkq)) * (
            1.0 - cq * (bsq - as_) * (1.0 - dq * bsq / 5.0) / 3.0 + cq * dq * as_ * as_ / 5.0
        )
        b = math.sqrt(bsq)
        tail = (_exp(-0.5 * max(hkq, -100.0)) * _SQRT_2PI * _ndtr(-b / a) * b
                * (1.0 - cq * bsq * (1.0 - dq * bsq / 5.0) / 3.0))
        out[p] = v - tail if hkq > -100.0 else v
    for i in range(_XS20.shape[0]):
        x = _XS20[i]
        w = _WS20[i]
        for p in range(n):
            xx = a2[p] * (1.0 + x)
            xq = xx * xx
            rs = math.sqrt(1.0 - xq)
            q = rs * (1.0 + rs)
            inv = 1.0 / (xq * q)
            bx = bs[p] * (inv * q)  # bs / xs
            h = hk[p]
            e1 = _exp(-0.5 * (bx + h))
            e2 = _exp(-0.5 * bx - h * (inv * xq * rs))  # hk/(1 + rs) = hk·xs·rs/(xs·q)
            poly = 1.0 + cc[p] * xq * (1.0 + dd[p] * xq)
            acc[p] += w * (e2 * (inv * xq * (1.0 + rs)) - e1 * poly)
    for p in range(n):
        out[p] += a2[p] * acc[p]


def _phi2_pairs(
    n: int, al: Array, be: Array, rr: Array, cdf_a: Array, ccdf_a: Array, cdf_b: Array,
    ccdf_b: Array, out: Array, idx: NDArray[np.int64], work: Array,
) -> None:  # pragma: no cover - compiled
    """out[p] = Φ₂(alₚ, beₚ; rrₚ) (|al|, |be| ≤ 40; cdf/ccdf: Φ(±al), Φ(±be)).

    ``idx`` (4, ≥ n) and ``work`` (10, ≥ n) are scratch space.  The pairs are sorted
    into Genz's four cases of |ρ|, gathered into contiguous rows and summed in
    vectorised loops.
    """
    cnt = np.zeros(4, np.int64)
    for p in range(n):
        r = rr[p]
        ar = abs(r)
        if al[p] == 0.0 and be[p] == 0.0:
            out[p] = 0.25 + math.asin(r) / _TWO_PI
        elif r == 0.0:
            out[p] = cdf_a[p] * cdf_b[p]
        elif ar == 1.0:
            if r > 0.0:
                out[p] = min(cdf_a[p], cdf_b[p])
            elif al[p] <= -be[p]:  # Genz: h = −al ≥ k = be
                out[p] = 0.0
            elif al[p] > 0.0:
                out[p] = max(0.0, cdf_b[p] - ccdf_a[p])
            else:
                out[p] = max(0.0, cdf_a[p] - ccdf_b[p])
        else:
            c = 0 if ar < 0.3 else (1 if ar < 0.75 else (2 if ar < 0.925 else 3))
            idx[c, cnt[c]] = p
            cnt[c] += 1
    for c in range(4):
        m = cnt[c]
        for q in range(m):
            p = idx[c, q]
            work[0, q], work[1, q], work[2, q] = al[p], be[p], rr[p]
        if c == 3:
            _high_nodes(m, work)
        else:
            xs, ws = (_X6, _W6) if c == 0 else ((_X12, _W12) if c == 1 else (_X20, _W20))
            _low_nodes(m, work, xs, ws)
        for q in range(m):
            p = idx[c, q]
            if c < 3:
                v = work[8, q] * work[3, q] / _TWO_PI + cdf_a[p] * cdf_b[p]
            elif rr[p] > 0.0:
                v = min(cdf_a[p], cdf_b[p]) - work[3, q] / _TWO_PI
            else:
                v = work[3, q] / _TWO_PI
                if -al[p] < be[p]:
                    v += (cdf_b[p] - ccdf_a[p]) if al[p] > 0.0 else (cdf_a[p] - ccdf_b[p])
            out[p] = max(0.0, min(1.0, v))


def _tails(n: int, beta: Array, betap: Array, p1: Array, p2: Array, q1: Array,
           q2: Array) -> None:  # pragma: no cover - compiled
    """Φ(β), Φ(β′), e^{−β²/2}, e^{−β′²/2} for n pairs, in one vectorised loop."""
    for q in range(n):
        p1[q] = _ndtr(beta[q])
        p2[q] = _ndtr(betap[q])
        q1[q] = _exp(-0.5 * (beta[q] * beta[q]))
        q2[q] = _exp(-0.5 * (betap[q] * betap[q]))


def _phi2_array(h: Array, k: Array, rho: Array, out: Array) -> None:  # pragma: no cover
    """Φ₂ over flat arrays (h, k clipped to ±40 here); for tests and :func:`phi2`."""
    n = h.shape[0]
    al, be = np.empty(n), np.empty(n)
    cdf_a, ccdf_a, cdf_b, ccdf_b = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    for p in range(n):
        al[p] = max(-_H_CLIP, min(_H_CLIP, h[p]))
        be[p] = max(-_H_CLIP, min(_H_CLIP, k[p]))
        cdf_a[p], ccdf_a[p] = _ndtr(al[p]), _ndtr(-al[p])
        cdf_b[p], ccdf_b[p] = _ndtr(be[p]), _ndtr(-be[p])
    _phi2_pairs(n, al, be, rho, cdf_a, ccdf_a, cdf_b, ccdf_b, out, np.empty((4, n), np.int64),
                np.empty((10, n)))


def phi2(h: Array, k: Array, rho: Array) -> Array:
    r"""Compute Φ₂(h, k; ρ) by Genz's algorithm (the compiled path's Φ₂; needs numba).

    .. math:: \Phi_2(h, k; \rho) = P(Z \le h,\ Z' \le k), \qquad
              \operatorname{corr}(Z, Z') = \rho

    Parameters
    ----------
    h, k, rho : ndarray
        Finite limits and correlations in [−1, 1] (not validated), broadcast together.

    Returns
    -------
    ndarray
        Φ₂, absolute error about 1e-15.
    """
    _compile()
    hh, kk, rr = (np.ascontiguousarray(a, dtype=np.float64).ravel()
                  for a in np.broadcast_arrays(h, k, rho))
    out = np.empty(hh.shape)
    _phi2_array(hh, kk, rr, out)
    return out.reshape(np.broadcast_shapes(np.shape(h), np.shape(k), np.shape(rho)))

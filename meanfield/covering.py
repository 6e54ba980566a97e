r"""Covering radius of a finite set of directions on the sphere S^k.

.. math:: \delta = \max_{x\in S^k}\ \min_i\ \angle(x, p_i)

is the largest angular distance from a point of S^k to the set: every direction lies
within δ of one of the pᵢ.  :func:`covering_radius` computes it exactly on S¹ and S² (and
for m ≤ 2 points) and bounds it with high probability otherwise;
:func:`expected_covering_radius` gives the typical value for m uniform points (Janson
1986), and :func:`cap_fraction` the area of the caps behind both.  It is the resolution
at which an empirical measure separates (:func:`meanfield.separation.empirical_separation`).

Two private helpers on the sphere serve the other modules: ``_polar_rows`` (norms and
unit directions of rows without overflow near 1e±300) and ``_sphere_descent`` (the
scale-free Riemannian descent of :func:`meanfield.diagnostics.optimality_certificate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special
from scipy.spatial import ConvexHull, QhullError, cKDTree

from meanfield._validation import (
    as_float_array,
    as_generator,
    check_int,
    check_positive,
    describe,
)
from meanfield.measure import RNGLike

__all__ = ["CoveringRadius", "cap_fraction", "covering_radius", "expected_covering_radius"]

Array = NDArray[np.floating]


def _polar_rows(x: Array) -> tuple[Array, Array, Array]:
    r"""Split each row of ``x`` as xᵢ = sᵢ nᵢ x̂ᵢ, free of spurious overflow and underflow.

    .. math:: s_i = \max_j |x_{ij}|, \qquad n_i = \|x_i / s_i\| \in [1, \sqrt{k}],
       \qquad \hat x_i = x_i / (s_i n_i)

    (all three 0 for a zero row).  The norm is sᵢnᵢ; a norm, a ratio or a product of norms
    assembled from s and n overflows only when its true value exceeds the float64 range,
    and the direction x̂ᵢ is exact for every finite row (entries near 1e±300 included).
    Private helper shared by :mod:`meanfield.recovery`, :mod:`meanfield.support`,
    :mod:`meanfield.separation` and :mod:`meanfield.diagnostics`.

    Parameters
    ----------
    x : ndarray, shape (..., k), k >= 1
        Finite rows.

    Returns
    -------
    s, n : ndarray, shape (...)
    unit : ndarray, shape (..., k)
    """
    s = np.max(np.abs(x), axis=-1)
    v = x / np.where(s > 0, s, 1.0)[..., None]
    n = np.sqrt(np.sum(v * v, axis=-1))
    return s, n, v / np.where(n > 0, n, 1.0)[..., None]


def _probe_args(
    n_probe: object, confidence: object, rng: object
) -> tuple[int, float, np.random.Generator]:
    """Validate the arguments of the probe estimator (also when the exact method applies)."""
    n = check_int("n_probe", n_probe)
    c = check_positive("confidence", confidence)
    if not c < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {describe(confidence)}")
    return n, c, as_generator(rng)


def cap_fraction(t: ArrayLike, k: int) -> NDArray[np.floating]:
    r"""Normalised area of a geodesic cap of angular radius t on S^k.

    .. math:: v_k(t) = \tfrac12 I_{\sin^2 t}\big(\tfrac k2, \tfrac12\big)\ (t \le \pi/2),
       \qquad v_k(t) = 1 - v_k(\pi - t)\ (t > \pi/2)

    with I the regularised incomplete beta function.

    Parameters
    ----------
    t : array_like of float
        Angular radii (radians); t ≤ 0 gives the empty cap (0) and t ≥ π the whole
        sphere (1).
    k : int
        Dimension of the sphere, k ≥ 1.

    Returns
    -------
    ndarray, shape ``np.shape(t)``

    Raises
    ------
    TypeError, ValueError
        If ``t`` is not a finite real array or ``k`` not an integer ≥ 1.
    """
    k = check_int("k", k)
    tt: Array = np.clip(as_float_array("t", t).astype(np.float64), 0.0, math.pi)
    half = 0.5 * special.betainc(k / 2, 0.5, np.sin(np.minimum(tt, math.pi - tt)) ** 2)
    return np.where(tt <= math.pi / 2, half, 1.0 - half)


def _cap_radius(v: float, k: int) -> float:
    """Inverse of :func:`cap_fraction` in t."""
    v = min(max(v, 0.0), 1.0)
    if v <= 0.5:
        return float(np.arcsin(np.sqrt(special.betaincinv(k / 2, 0.5, 2 * v))))
    return math.pi - _cap_radius(1.0 - v, k)


@dataclass(frozen=True)
class CoveringRadius:
    r"""Covering radius δ = max_{x ∈ S^k} min_i ∠(x, pᵢ) of points pᵢ on S^k (radians).

    Attributes
    ----------
    value : float
        The exact value, or the best lower bound found by the estimator.
    lower, upper : float
        Bounds; equal to ``value`` when exact.  For the estimator, ``upper`` holds with
        probability at least ``confidence``.
    exact : bool
    method : str
        ``"gaps"`` (S¹), ``"hull"`` (S²), ``"pairs"`` (m ≤ 2) or ``"probe"``.
    k : int
        Dimension of the sphere.
    confidence : float
    argmax : ndarray, shape (k+1,)
        A point of S^k at distance ``value`` from the set.
    """

    value: float
    lower: float
    upper: float
    exact: bool
    method: str
    k: int
    confidence: float
    argmax: NDArray[np.floating]


def _min_angle(x: NDArray[np.floating], tree: cKDTree) -> NDArray[np.floating]:
    """min_i ∠(x, pᵢ) for unit rows x and a tree of the unit points p (chord distance)."""
    chord, _ = tree.query(x)
    return 2.0 * np.arcsin(np.clip(0.5 * np.asarray(chord, dtype=float), 0.0, 1.0))


def _candidates_exact(p: NDArray[np.floating]) -> tuple[NDArray[np.floating], str] | None:
    m, dim = p.shape
    if m <= 2:
        c = [-p]
        if m == 2:
            mid = p[0] + p[1]
            if np.linalg.norm(mid) > 1e-12:
                c.append(-mid[None] / np.linalg.norm(mid))
            else:  # antipodal pair: any point of the bisecting great sphere
                e = np.eye(dim)[np.argmin(np.abs(p[0]))]
                e = e - (e @ p[0]) * p[0]
                c.append(e[None] / np.linalg.norm(e))
        return np.vstack(c), "pairs"
    if dim == 2:
        ang = np.sort(np.arctan2(p[:, 1], p[:, 0]))
        gaps = np.diff(np.append(ang, ang[0] + 2 * math.pi))
        j = int(np.argmax(gaps))
        t = ang[j] + gaps[j] / 2
        return np.array([[math.cos(t), math.sin(t)]]), "gaps"
    if dim == 3:
        try:
            hull = ConvexHull(p, qhull_options="Qt")
        except QhullError:  # coplanar points lie on one circle: its poles ±n are the vertices
            n = np.linalg.svd(p - p.mean(axis=0))[2][-1]
            if m > 500 or np.max(np.abs((p - p.mean(axis=0)) @ n)) > 1e-10:
                return None
            iu, ju = np.triu_indices(m, 1)
            mids = -(p[iu] + p[ju])
            mids = mids[np.linalg.norm(mids, axis=1) > 1e-12]
            return np.vstack(
                [n, -n, -p, mids / np.linalg.norm(mids, axis=1, keepdims=True)]
            ), "hull"
        edges = np.vstack(
            [hull.simplices[:, [0, 1]], hull.simplices[:, [1, 2]], hull.simplices[:, [0, 2]]]
        )
        mids = -(p[edges[:, 0]] + p[edges[:, 1]])
        mids = mids[np.linalg.norm(mids, axis=1) > 1e-12]
        return np.vstack(
            [hull.equations[:, :3], -p, mids / np.linalg.norm(mids, axis=1, keepdims=True)]
        ), "hull"
    return None


def covering_radius(
    points: ArrayLike,
    *,
    method: str = "auto",
    n_probe: int = 20_000,
    confidence: float = 0.999,
    rng: RNGLike = None,
) -> CoveringRadius:
    r"""Covering radius of a finite set of directions on the sphere S^k.

    .. math:: \delta = \max_{x\in S^k}\ \min_i\ \arccos(x\cdot \hat p_i)

    Exact for k ≤ 2 and for m ≤ 2: half the largest gap on S¹; on S² the maximum over
    the candidates that contain every local maximiser of x ↦ min_i ∠(x, pᵢ) (outward
    facet normals of the convex hull = spherical Voronoi vertices, antipodes −pᵢ, and
    −(pᵢ + pⱼ) for hull edges).  Otherwise (``"probe"``): N uniform probes, refined by
    ascent away from their nearest points, give a lower bound δ̂; since x ↦ min_i ∠(x, pᵢ)
    is 1-Lipschitz, δ ≤ δ̂ + t with probability ≥ ``confidence`` where the cap of radius t
    has area fraction 1 − (1 − confidence)^{1/N}.

    Parameters
    ----------
    points : array_like, shape (m, k+1)
        Nonzero finite vectors (normalised internally, without overflow near 1e±300).
    method : {"auto", "probe"}, default "auto"
    n_probe : int, default 20000
        Number of probes of the estimator.
    confidence : float, default 0.999
        Probability that the estimator's upper bound holds, in (0, 1).
    rng : int, Generator or SeedSequence, optional
        Probes of the estimator.

    ``n_probe``, ``confidence`` and ``rng`` are validated even when the exact method
    applies and does not use them.

    Returns
    -------
    CoveringRadius

    Raises
    ------
    TypeError, ValueError
        Naming the invalid argument.
    """
    p = as_float_array("points", points, ndim=2)
    if p.shape[0] == 0 or p.shape[1] < 2:
        raise ValueError(f"points must have shape (m, k+1) with m >= 1, k >= 1; got {p.shape}")
    if method not in ("auto", "probe"):
        raise ValueError(f"method must be 'auto' or 'probe'; got {describe(method)}")
    n_probe, confidence, gen = _probe_args(n_probe, confidence, rng)
    scale, _, p = _polar_rows(p.astype(np.float64))
    if np.any(scale == 0):
        zero = int(np.sum(scale == 0))
        raise ValueError(f"points must be nonzero vectors; got {zero} zero row(s)")
    k = p.shape[1] - 1
    found = _candidates_exact(p) if method == "auto" else None
    if found is not None:
        cand, how = found
        f = _min_angle(cand, cKDTree(p))
        j = int(np.argmax(f))
        return CoveringRadius(float(f[j]), float(f[j]), float(f[j]), True, how, k, 1.0, cand[j])
    x = gen.standard_normal((n_probe, k + 1))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tree = cKDTree(p)
    f = _min_angle(x, tree)
    top = np.argsort(f)[-min(64, n_probe) :]
    best_x, best_f = _refine(x[top], f[top], p, tree)
    j = int(np.argmax(best_f))
    slack = _cap_radius(1.0 - (1.0 - confidence) ** (1.0 / n_probe), k)
    value = float(best_f[j])
    return CoveringRadius(
        value, value, min(value + slack, math.pi), False, "probe", k, confidence, best_x[j]
    )


def _refine(
    x: NDArray[np.floating],
    f: NDArray[np.floating],
    p: NDArray[np.floating],
    tree: cKDTree,
    iters: int = 200,
) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """Monotone ascent of min_i ∠(x, pᵢ): move away from the nearly-nearest points."""
    step = np.maximum(0.25 * f, 1e-3)
    for _ in range(iters):
        ang = np.arccos(np.clip(x @ p.T, -1.0, 1.0))
        near = ang <= ang.min(axis=1, keepdims=True) + 0.1 * step[:, None]
        pull = (near[:, :, None] * p[None]).sum(axis=1)
        g = -(pull - np.sum(pull * x, axis=1, keepdims=True) * x)
        gn = np.linalg.norm(g, axis=1, keepdims=True)
        y = np.cos(step)[:, None] * x + np.sin(step)[:, None] * g / np.where(gn > 0, gn, 1.0)
        fy = _min_angle(y, tree)
        better = (fy > f) & (gn[:, 0] > 0)
        x[better], f[better] = y[better], fy[better]
        step = np.where(better, step * 1.2, step * 0.5)
        if np.all(step < 1e-10):
            break
    # polish: snap to the point equidistant from the k+1 nearest points (a Voronoi vertex)
    k1 = min(x.shape[1], p.shape[0])
    _, idx = tree.query(x, k=k1)
    near = p[np.asarray(idx).reshape(len(x), k1)]
    diff = near[:, 1:] - near[:, :1]
    if diff.shape[1] == x.shape[1] - 1:
        v = np.linalg.svd(diff)[2][:, -1]
        v *= np.where(np.sum(v * x, axis=1) < 0, -1.0, 1.0)[:, None]
        fv = _min_angle(v, tree)
        better = fv > f
        x[better], f[better] = v[better], fv[better]
    return x, f


def _sphere_descent(
    f: Callable[[Array], Array], grad: Callable[[Array], Array], x: Array, max_iter: int
) -> tuple[Array, Array, int]:
    r"""Minimise f on the unit sphere from each row of ``x`` (the descent behind a certificate).

    Riemannian gradient steps on f/S, with S the largest |∂f| at the starts (so that the
    iterates do not depend on the scale of f),

    .. math:: x \leftarrow \frac{x - \eta\,(I - xx^\top)\nabla f(x)/S}
       {\|x - \eta\,(I - xx^\top)\nabla f(x)/S\|},

    accepted when f/S decreases by at least 10⁻⁴ η ‖(I − xxᵀ)∇f/S‖² (Armijo), η × 1.5 after
    a success and × 0.5 after a failure, until every step η‖(I − xxᵀ)∇f/S‖ is below 1e-10 or
    after ``max_iter`` steps.  Gradients are used as s·t with s = max|∇f|: no overflow at
    1e±300.

    Returns
    -------
    x : ndarray, shape (n, k)
        The final unit rows.
    fx : ndarray, shape (n,)
        f at them.
    evaluations : int
        Number of points where f or ∇f was evaluated.
    """
    fx, eta, evals, scale = f(x), np.ones(len(x)), len(x), 0.0
    for _ in range(max_iter):
        g = grad(x)
        evals += len(x)
        s_g = np.max(np.abs(g), axis=1)
        t = g / np.where(s_g > 0, s_g, 1.0)[:, None]
        t -= np.sum(t * x, axis=1, keepdims=True) * x  # (I − xxᵀ)∇f / s_g
        scale = scale or float(np.max(s_g)) or 1.0
        with np.errstate(over="ignore"):  # +inf: a step or a decrease beyond float64
            coef = eta * (s_g / scale)  # the step is x − coef·t
            step = coef * np.linalg.norm(t, axis=1)
            demand = 1e-4 * step * (s_g * np.linalg.norm(t, axis=1))
            y = _polar_rows(x / np.maximum(coef, 1e-300)[:, None] - t)[2]
        if np.all(step < 1e-10):
            break
        fy = f(y)
        evals += len(x)
        with np.errstate(over="ignore"):
            ok = fy <= fx - demand
        x[ok], fx[ok] = y[ok], fy[ok]
        eta = np.where(ok, eta * 1.5, eta * 0.5)
    return x, fx, evals


_EULER_GAMMA = 0.5772156649015329


def expected_covering_radius(
    m: int, k: int, *, method: str = "asymptotic", n_rep: int = 20, rng: RNGLike = None
) -> float:
    r"""Typical covering radius of m i.i.d. uniform points on S^k.

    ``"asymptotic"``: Janson's (1986) limit law for random coverings,
    m·v_k(δ_m) − log m − (k−1) log log m − log α_k → Gumbel, with v_k the cap fraction
    (:func:`cap_fraction`) and α_k = (1/k!)(√π Γ(k/2+1)/Γ((k+1)/2))^{k−1}; the mean of the
    Gumbel law (Euler's γ) gives

    .. math:: v_k(\bar\delta_m) = \frac{\log m + (k-1)\log\log m + \log\alpha_k + \gamma}{m}.

    (S. Janson, Random coverings in several dimensions, Acta Math. 156, 1986; the rate
    (log m / m)^{1/k} on the sphere: Reznikov & Saff, IMRN 2016.)  Needs m ≥ 3.
    ``"monte_carlo"``: the mean of :func:`covering_radius` over ``n_rep`` uniform draws.

    Parameters
    ----------
    m : int
        Number of points.
    k : int
        Dimension of the sphere.
    method : {"asymptotic", "monte_carlo"}
    n_rep : int, default 20
        Replicas of the Monte-Carlo calibration.
    rng : int, Generator or SeedSequence, optional
        Draws of the Monte-Carlo calibration.  ``n_rep`` and ``rng`` are validated with
        either method.

    Returns
    -------
    float
        Radians.
    """
    m, k = check_int("m", m), check_int("k", k)
    if method not in ("asymptotic", "monte_carlo"):
        raise ValueError(f"method must be 'asymptotic' or 'monte_carlo'; got {describe(method)}")
    n_rep, gen = check_int("n_rep", n_rep), as_generator(rng)  # validated even when unused
    if method == "asymptotic":
        if m < 3:
            raise ValueError(f"m must be >= 3 for the asymptotic formula; got {m}")
        alpha = (math.sqrt(math.pi) * math.gamma(k / 2 + 1) / math.gamma((k + 1) / 2)) ** (k - 1)
        alpha /= math.factorial(k)
        v = (math.log(m) + (k - 1) * math.log(math.log(m)) + math.log(alpha) + _EULER_GAMMA) / m
        return _cap_radius(v, k)
    vals = [covering_radius(gen.standard_normal((m, k + 1)), rng=gen).value for _ in range(n_rep)]
    return float(np.mean(vals))

"""The compiled kernels (meanfield._fast_bvn, _fast_kernels, _fast_quadrature) against numpy.

The numpy paths of :mod:`meanfield.bivariate_normal` (Φ₂ through Owen's T) and
:mod:`meanfield.quadrature` are the references; the compiled paths must agree with them to
1e-12 (relative to the size of the terms) on inputs drawn by Hypothesis, including the
near-degenerate ones: |ρ| → 1, w → 0, zero and negative-zero biases, huge biases.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import special

from meanfield import _fast_bvn, _fast_kernels, _fast_quadrature, bivariate_normal
from meanfield import kernels as K
from meanfield.data import Teacher
from meanfield.measure import ParticleMeasure, notebook_sphere, notebook_teacher
from meanfield.population import GaussianPopulationEstimator

pytestmark = pytest.mark.skipif(not _fast_bvn.available(), reason="numba is not installed")

FIELDS = ("value", "coef_w", "coef_wp", "grad_b")


# -- strategies ---------------------------------------------------------------------------
@st.composite
def hostile_pairs(draw, *, max_m=5):
    """Two particle sets (m, d+2), (k, d+2) with near-degenerate rows and columns."""
    d = draw(st.integers(1, 4))
    m, k = draw(st.integers(1, max_m)), draw(st.integers(1, max_m))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    th = rng.standard_normal((m, d + 2)) * draw(st.sampled_from([0.3, 1.0, 3.0]))
    th2 = rng.standard_normal((k, d + 2)) * draw(st.sampled_from([0.3, 1.0, 3.0]))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["parallel", "antiparallel", "duplicate", "small_w",
                                     "zero_w", "zero_b", "neg_zero_b", "huge_b"]))
        i, j = draw(st.integers(0, m - 1)), draw(st.integers(0, k - 1))
        eps = draw(st.sampled_from([0.0, 1e-15, 1e-12, 1e-9, 1e-6, 1e-4]))
        noise = eps * rng.standard_normal(d)
        if kind == "parallel":
            th2[j, 1:-1] = draw(st.sampled_from([0.5, 1.0, 2.0])) * th[i, 1:-1] + noise
        elif kind == "antiparallel":
            th2[j, 1:-1] = -draw(st.sampled_from([0.5, 1.0, 2.0])) * th[i, 1:-1] + noise
        elif kind == "duplicate":
            th2[j] = th[i]
            th2[j, -1] += eps
        elif kind == "small_w":
            th[i, 1:-1] *= draw(st.sampled_from([1e-4, 1e-12, 1e-100, 1e-149, 1e-200, 1e-300]))
        elif kind == "zero_w":
            th[i, 1:-1] = 0.0
        elif kind == "zero_b":
            th[i, -1] = 0.0
            th2[j, -1] = 0.0
        elif kind == "neg_zero_b":
            th[i, -1] = -0.0
        else:
            th2[j, -1] = draw(st.sampled_from([-1.0, 1.0])) * draw(
                st.sampled_from([40.0, 1e3, 1e8, 1e100, 1e150, 1e300]))
    return th, th2


def term_scale(th, th2):
    """Size of the terms of K[i, j]: (1 + |bᵢ| + ‖wᵢ‖)(1 + |b′ⱼ| + ‖w′ⱼ‖), shape (m, k)."""
    def size(t):
        return 1.0 + np.abs(t[:, -1]) + np.linalg.norm(t[:, 1:-1], axis=-1)

    return np.outer(size(th), size(th2))


def assert_blocks_agree(fast, ref, th, th2):
    """|fast − ref| ≤ 1e-13 × the size of the terms of each field + 1e-12 relative."""
    scale = term_scale(th, th2)
    inv_s = np.minimum(1.0 / np.maximum(np.linalg.norm(th[:, 1:-1], axis=-1), 1e-300), 1e300)
    with np.errstate(over="ignore"):  # (an infinite bound is no bound)
        sizes = {"value": scale, "grad_b": scale, "coef_wp": np.ones_like(scale),
                 "coef_w": scale * (1.0 + inv_s[:, None])}  # A = φ(α)/s (…)
    for f in FIELDS:
        a, b = getattr(fast, f), getattr(ref, f)
        assert np.all(np.isfinite(a)), f
        np.testing.assert_array_less(
            np.abs(a - b), 1e-13 * sizes[f] + 1e-12 * np.abs(b) + 1e-300, err_msg=f
        )


# -- Φ₂ and the scalar functions ------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    h=st.one_of(st.sampled_from([0.0, -0.0, 8.0, -8.0, 39.0, -39.0, 1e300]), st.floats(-9, 9)),
    k=st.one_of(st.sampled_from([0.0, 1e-300, -37.5, 1e8]), st.floats(-9, 9)),
    rho=st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.3, -0.75, 0.925, -0.925]),
                  st.floats(-1, 1),
                  st.integers(1, 15).map(lambda e: 1.0 - 10.0**-e),
                  st.integers(1, 15).map(lambda e: -1.0 + 10.0**-e)),
)
def test_genz_phi2_matches_owens_t(h, k, rho):
    """Genz's algorithm and Owen's T agree to 1e-13.

    Owen's T (scipy) loses up to ~3e-14 near |ρ| = 1 with h ≈ k ≈ 0 (Φ₂ at 0.046875,
    0.046875, 0.9999999: error 2.6e-14); Genz stays within 2e-15 of the exact value
    (:func:`test_genz_phi2_against_high_precision`).
    """
    rho = float(np.sign(rho)) if abs(rho) > 1.0 - 2.0**-48 else rho  # the reference snaps
    got = _fast_bvn.phi2(np.array([h]), np.array([k]), np.array([rho]))
    want = bivariate_normal.bivariate_normal_cdf(h, k, rho)
    np.testing.assert_allclose(got, want, rtol=0, atol=4e-15)


def test_genz_phi2_against_high_precision():
    """|Φ₂ − Φ₂ (30 digits)| ≤ 2e-15 across the four quadrature regimes of |ρ|."""
    import mpmath as mp
    mp.mp.dps = 30

    def exact(h, k, r):  # Φ(h)Φ(k) + (1/2π) ∫₀^{asin ρ} exp(−(h² + k² − 2hk sin t)/(2cos² t)) dt
        h, k, r = mp.mpf(h), mp.mpf(k), mp.mpf(r)
        f = lambda t: mp.exp(-(h * h + k * k - 2 * h * k * mp.sin(t)) / (2 * mp.cos(t) ** 2))  # noqa: E731
        return mp.ncdf(h) * mp.ncdf(k) + mp.quad(f, [0, mp.asin(r)]) / (2 * mp.pi)

    rng = np.random.default_rng(8)
    rhos = [0.1, -0.25, 0.5, -0.7, 0.8, -0.9, 0.93, -0.99, 0.99999, -0.9999999]
    for r in rhos:
        for h, k in [(0.0, 0.0), (1e-183, 1e-183), (0.046875, 0.046875),
                     *rng.uniform(-4, 4, (3, 2))]:
            got = float(_fast_bvn.phi2(np.array([h]), np.array([k]), np.array([r]))[0])
            assert abs(got - float(exact(h, k, r))) <= 2e-15, (h, k, r)


def test_genz_phi2_on_a_grid_and_symmetries():
    h, k, r = np.meshgrid(np.linspace(-6, 6, 25), np.linspace(-5, 7, 24),
                          np.r_[-1.0, -0.999999, np.linspace(-0.99, 0.99, 23), 0.999999, 1.0])
    got = _fast_bvn.phi2(h, k, r)
    np.testing.assert_allclose(got, bivariate_normal.bivariate_normal_cdf(h, k, r), atol=2e-15)
    np.testing.assert_allclose(got, _fast_bvn.phi2(k, h, r), atol=3e-16)  # symmetric in h, k
    # Φ₂(h, k; ρ) + Φ₂(h, −k; −ρ) = Φ(h)
    np.testing.assert_allclose(got + _fast_bvn.phi2(h, -k, -r), special.ndtr(h), atol=4e-15)


def test_vectorised_exp_and_ndtr():
    _fast_bvn._compile()
    x = np.r_[np.linspace(-700.0, 0.0, 200_001), -1e-300, -0.0]
    got = np.array([_fast_bvn._exp(v) for v in x[::97]])
    want = np.exp(x[::97])
    assert np.max(np.abs(got - want) / want) <= 2.3e-16  # within 1 ulp
    assert _fast_bvn._exp(-700.5) == 0.0 and _fast_bvn._exp(-np.inf) == 0.0
    z = np.linspace(-38, 9, 4001)
    nd = np.array([_fast_bvn._ndtr(v) for v in z])
    ref = special.ndtr(z)  # the relative error grows like z² ε in the tail (argument rounding)
    np.testing.assert_array_less(np.abs(nd - ref), 2e-16 * (1.0 + z * z) * ref + 1.2e-16)


# -- closed-form blocks -------------------------------------------------------------------
@settings(max_examples=120, deadline=None)
@given(pairs=hostile_pairs(), act=st.sampled_from(["relu", "erf"]), same=st.booleans(),
       grad=st.booleans())
def test_compiled_blocks_match_the_numpy_reference(pairs, act, same, grad):
    th, th2 = pairs
    other = None if same else th2
    fast = K.kernel_block(th, other, activation=act, backend="numba", grad=grad)
    ref = K.kernel_block(th, other, activation=act, backend="numpy", grad=grad)
    if not grad:
        np.testing.assert_array_less(np.abs(fast.value - ref.value),
                                     1e-13 * term_scale(th, th if same else th2) + 1e-300)
        return
    assert_blocks_agree(fast, ref, th, th if same else th2)


def fast_contract(th, th2, coef, act, *, grad, workers=2, drawn=False):
    """_fast_kernels.contract on the fields of bivariate_normal._BvnBlock (batch axes flat)."""
    same = th2 is None
    other = th if same else th2
    blk = bivariate_normal._BvnBlock(act, th[..., 1:-1], th[..., -1], other[..., 1:-1],
                                     other[..., -1], grad=grad, same=same)
    if drawn:
        assume(blk.safe)  # (the callers send the others to the reference)
    batch = np.broadcast_shapes(th.shape[:-2], other.shape[:-2])
    c = np.ascontiguousarray(np.broadcast_to(coef, (*batch, other.shape[-2])))
    value, g = _fast_kernels.contract(act, *blk.fast_args(), c.reshape(-1, c.shape[-1]),
                                      grad=grad, same=same, workers=workers)
    m = th.shape[-2]
    return value.reshape(*batch, m), None if g is None else g.reshape(*batch, m, -1)


@settings(max_examples=80, deadline=None)
@given(pairs=hostile_pairs(max_m=90), act=st.sampled_from(["relu", "erf"]), same=st.booleans(),
       grad=st.booleans())
def test_compiled_contraction_matches_the_contracted_reference(pairs, act, same, grad):
    """The fused contraction (several tiles) against KernelBlock.contract on numpy blocks."""
    th, th2 = pairs
    rng = np.random.default_rng(len(th) * 100 + len(th2))
    other = th if same else th2
    coef = rng.standard_normal(other.shape[0])
    value, g = fast_contract(th, None if same else th2, coef, act, grad=grad, drawn=True)
    ref = K.kernel_block(th, None if same else th2, activation=act, backend="numpy", grad=grad)
    scale = term_scale(th, other) @ np.abs(coef)
    np.testing.assert_array_less(np.abs(value - ref.value @ coef), 1e-13 * scale + 1e-300)
    if grad:
        _, g_ref = ref.contract(coef, th[:, 1:-1], other[:, 1:-1])
        norms = np.maximum(np.linalg.norm(th[:, 1:-1], axis=-1), 1e-300)
        bound = 1e-13 * (scale * (1.0 + np.linalg.norm(th[:, 1:-1], axis=-1) / norms))
        assert g is not None
        bound = np.broadcast_to(bound[:, None], g.shape)
        np.testing.assert_array_less(np.abs(g - g_ref), bound + 1e-300)


def test_contraction_and_blocks_do_not_depend_on_threads_or_batching():
    rng = np.random.default_rng(3)
    th = rng.standard_normal((3, 150, 4))
    coef = rng.standard_normal((3, 150))
    one = fast_contract(th, None, coef, "relu", grad=True, workers=1)
    three = fast_contract(th, None, coef, "relu", grad=True, workers=3)
    solo = fast_contract(th[1], None, coef[1], "relu", grad=True, workers=2)
    for a, b, c in zip(one, three, solo, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a[1], c)
    blk1 = K.kernel_block(th, activation="erf", workers=1, backend="numba")
    blk3 = K.kernel_block(th, activation="erf", workers=3, backend="numba")
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(blk1, f), getattr(blk3, f))


def test_large_d_uses_the_shared_gram_matrix():
    """d > GRAM_INLINE_D: w·w′ from a matrix product, shared by both paths."""
    rng = np.random.default_rng(4)
    d = _fast_kernels.GRAM_INLINE_D + 5
    th = rng.standard_normal((70, d + 2)) / np.sqrt(d)
    th[5, 1:-1] = th[3, 1:-1] * 2.0  # parallel rows
    th2 = rng.standard_normal((9, d + 2))
    for other in (None, th2):
        fast = K.kernel_block(th, other, backend="numba")
        ref = K.kernel_block(th, other, backend="numpy")
        assert_blocks_agree(fast, ref, th, th if other is None else th2)


def test_huge_inputs_fall_back_to_the_reference():
    th = np.array([[1.0, 0.5, -1.0, 3e200], [1.0, 1e-170, 0.0, 0.2]])
    th2 = np.array([[1.0, 0.3, 0.8, -0.2]])
    fast = K.kernel_block(th, th2, backend="numba")
    ref = K.kernel_block(th, th2, backend="numpy")
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(fast, f), getattr(ref, f))


def test_without_numba_the_reference_runs(monkeypatch):
    th = np.random.default_rng(5).standard_normal((4, 5))
    ref = K.kernel_block(th, backend="numpy")
    monkeypatch.setattr(_fast_bvn, "HAVE_NUMBA", False)
    auto = K.kernel_block(th)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(auto, f), getattr(ref, f))
    with pytest.raises(ImportError, match="numba"):
        K.kernel_block(th, backend="numba")
    with pytest.raises(ValueError, match="backend"):
        K.kernel_block(th, backend="fortran")


# -- quadrature ---------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(pairs=hostile_pairs(), act=st.sampled_from(["sigmoid", "tanh", "erf", "relu"]),
       act2=st.sampled_from(["sigmoid", "tanh", "erf", "relu"]), grad=st.booleans())
def test_compiled_quadrature_matches_the_numpy_loop(pairs, act, act2, grad):
    th, th2 = pairs
    kw = {"activation": act, "activation_prime": act2, "method": "quadrature", "n_nodes": 12,
          "grad": grad}
    fast = K.kernel_block(th, th2, backend="numba", **kw)
    ref = K.kernel_block(th, th2, backend="numpy", **kw)
    scale = term_scale(th, th2)
    inv_s = np.minimum(1.0 / np.maximum(np.linalg.norm(th[:, 1:-1], axis=-1), 1e-300), 1e300)
    for f in FIELDS if grad else ("value",):
        a, b = getattr(fast, f), getattr(ref, f)
        bound = 1e-13 * scale * (1.0 + inv_s[:, None] if f == "coef_w" else 1.0)
        np.testing.assert_array_less(np.abs(a - b), bound + 1e-12 * np.abs(b) + 1e-300,
                                     err_msg=f)


def test_custom_activations_use_the_numpy_loop():
    from meanfield.activations import ACTIVATIONS, Activation

    sig = ACTIVATIONS["sigmoid"]
    custom = Activation("my_sigmoid", sig.value, sig.derivative, degree=None)
    th = np.random.default_rng(6).standard_normal((3, 4))
    got = K.kernel_block(th, activation=custom, backend="auto", n_nodes=8)
    ref = K.kernel_block(th, activation="sigmoid", backend="numpy", n_nodes=8)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(got, f), getattr(ref, f))
    assert _fast_quadrature.ACTIVATION_CODES["sigmoid"] == 1


# -- the exact population estimator ----------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "erf", "sigmoid", "tanh"])
def test_population_estimator_backends_agree(activation):
    teacher = Teacher(notebook_teacher(4, 3, rng=1), activation)
    mu = notebook_sphere(150, 3, radius=0.5, rng=2)
    mu = ParticleMeasure(np.stack([mu.theta, 1.3 * mu.theta]))  # an ensemble of two
    n = 8 if activation in ("sigmoid", "tanh") else 32
    fast = GaussianPopulationEstimator(teacher, activation=activation, backend="numba",
                                       n_nodes=n)
    ref = GaussianPopulationEstimator(teacher, activation=activation, backend="numpy",
                                      n_nodes=n)
    np.testing.assert_allclose(fast.risk(mu), ref.risk(mu), rtol=1e-12, atol=1e-15)
    v_fast, v_ref = fast.velocity(mu), ref.velocity(mu)
    np.testing.assert_allclose(v_fast, v_ref, rtol=0, atol=1e-12 * np.max(np.abs(v_ref)))
    pts = np.random.default_rng(3).standard_normal((7, 5))
    np.testing.assert_allclose(fast.first_variation(mu, pts), ref.first_variation(mu, pts),
                               rtol=0, atol=1e-13)

"""Tests of meanfield.kernels: closed forms against Monte Carlo, quadrature, identities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from scipy.integrate import quad
from scipy.stats import multivariate_normal

from meanfield import bivariate_normal, quadrature
from meanfield import kernels as K
from meanfield.activations import get_activation
from meanfield.bivariate_normal import bivariate_normal_cdf
from meanfield.quadrature import DEFAULT_NODES, gauss_hermite

MC_N = 100_000


# -- helpers ------------------------------------------------------------------------------
def mc_moments(theta, theta2, act, act2, x):
    """Monte-Carlo mean, standard error and nonzero count of σ(uᵢ) σ′(u′ⱼ), all pairs."""
    f = get_activation(act).value(x @ theta[:, 1:-1].T + theta[:, -1])  # (n, m)
    g = get_activation(act2).value(x @ theta2[:, 1:-1].T + theta2[:, -1])  # (n, k)
    n = x.shape[0]
    mean = f.T @ g / n
    second = (f * f).T @ (g * g) / n
    se = np.sqrt(np.maximum(second - mean**2, 0.0) / n)
    hits = (f != 0).astype(float).T @ (g != 0).astype(float)
    return mean, se, hits


def assert_within_se(exact, mean, se, hits=None, *, floor=1e-9, z=5.0):
    """|exact − MC mean| ≤ z standard errors (plus a rounding floor).

    Pairs whose product was nonzero on fewer than 100 samples (rare events: ReLU tails)
    have no reliable Monte-Carlo standard error; they are checked against numerical
    integration in :func:`test_relu_kernel_rare_events_match_numerical_integration`.
    """
    ok = np.ones(np.shape(exact), bool) if hits is None else hits >= 100
    err = np.abs(exact - mean)
    bound = z * se + floor * (1.0 + np.abs(mean))
    bad = ok & (err > bound)
    assert not np.any(bad), f"max excess {np.max(err - bound):.3g}; err {err}; se {se}"


@st.composite
def particle_pairs(draw, *, near_degenerate=True, max_m=3, max_bias=2.0, scales=(0.3, 1.0, 1.5)):
    """Two particle sets (m, d+2), (k, d+2), some rows near-degenerate."""
    d = draw(st.integers(1, 4))
    m, k = draw(st.integers(1, max_m)), draw(st.integers(1, max_m))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from(scales))
    th = rng.standard_normal((m, d + 2)) * scale
    th2 = rng.standard_normal((k, d + 2)) * scale
    th[:, -1] = rng.uniform(-max_bias, max_bias, m)
    th2[:, -1] = rng.uniform(-max_bias, max_bias, k)
    if near_degenerate:
        kind = draw(st.sampled_from(["none", "parallel", "antiparallel", "small_w", "zero_w",
                                     "zero_b", "same"]))
        eps = draw(st.sampled_from([0.0, 1e-9, 1e-4]))
        if kind == "parallel":
            th2[0, 1:-1] = 1.7 * th[0, 1:-1] + eps * rng.standard_normal(d)
        elif kind == "antiparallel":
            th2[0, 1:-1] = -0.6 * th[0, 1:-1] + eps * rng.standard_normal(d)
        elif kind == "small_w":
            th[0, 1:-1] *= eps
        elif kind == "zero_w":
            th[0, 1:-1] = 0.0
            th2[-1, 1:-1] = 0.0
        elif kind == "zero_b":
            th[:, -1] = 0.0
            th2[0, -1] = 0.0
        elif kind == "same":
            th2[0] = th[0]
    return th, th2, rng


def reference_bvn(h, k, rho):
    """Φ₂ from scipy's multivariate normal, the exact limits (|ρ| = 1), or near |ρ| = 1
    (where scipy rejects the covariance as singular) Φ₂ = ∫_{z ≤ h} φ(z) Φ((k − ρz)/ρ̄) dz:
    the conditional probability is a step of width ~ρ̄ at z₀ = k/ρ, integrated by
    quadrature across it and in closed form on both sides."""
    if rho == 1.0:
        return special.ndtr(min(h, k))
    if rho == -1.0:
        return max(special.ndtr(h) - special.ndtr(-k), 0.0)
    if 1.0 - abs(rho) > 1e-6:
        return multivariate_normal(cov=[[1.0, rho], [rho, 1.0]]).cdf([h, k])
    rbar = np.sqrt((1.0 - rho) * (1.0 + rho))
    z0, half = k / rho, 12.0 * rbar / abs(rho)  # Φ(±12) is 0 or 1 to 1e-33
    left, right = (1.0, 0.0) if rho > 0 else (0.0, 1.0)  # the step's values below and above
    lo, hi = z0 - half, z0 + half
    total = left * special.ndtr(min(h, lo))
    if h > lo:
        density = lambda z: np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)  # noqa: E731
        step = lambda z: special.ndtr((k - rho * z) / rbar)  # noqa: E731
        total += quad(lambda z: density(z) * step(z), lo, min(h, hi), epsabs=1e-14, limit=200)[0]
    if h > hi:
        total += right * (special.ndtr(h) - special.ndtr(hi))
    return total


# -- bivariate normal ---------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    h=st.one_of(st.just(0.0), st.floats(-4, 4)),
    k=st.one_of(st.just(0.0), st.floats(-4, 4)),
    rho=st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.999999, -0.999999]), st.floats(-1, 1)),
)
def test_bivariate_normal_cdf_matches_scipy(h, k, rho):
    got = bivariate_normal_cdf(h, k, rho)
    np.testing.assert_allclose(got, reference_bvn(h, k, rho), rtol=1e-6, atol=1e-7)


def test_bivariate_normal_cdf_limits_and_errors():
    np.testing.assert_allclose(bivariate_normal_cdf(0.0, 0.0, 0.5), 1.0 / 3.0, rtol=1e-15)
    np.testing.assert_allclose(
        bivariate_normal_cdf([np.inf, -np.inf, 1.0], [0.3, 0.3, np.inf], 0.4),
        [special.ndtr(0.3), 0.0, special.ndtr(1.0)],
        rtol=1e-15,
    )
    with pytest.raises(ValueError, match="rho"):
        bivariate_normal_cdf(0.0, 0.0, 1.5)
    with pytest.raises(ValueError, match="NaN"):
        bivariate_normal_cdf(np.nan, 0.0, 0.5)


# -- closed forms against Monte Carlo -----------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(pairs=particle_pairs())
def test_relu_kernel_matches_monte_carlo(pairs):
    th, th2, rng = pairs
    x = rng.standard_normal((MC_N, th.shape[1] - 2))
    assert_within_se(K.relu_kernel(th, th2), *mc_moments(th, th2, "relu", "relu", x))
    assert_within_se(K.relu_kernel(th), *mc_moments(th, th, "relu", "relu", x))


@settings(max_examples=30, deadline=None)
@given(pairs=particle_pairs())
def test_erf_kernel_with_bias_matches_monte_carlo(pairs):
    th, th2, rng = pairs
    x = rng.standard_normal((MC_N, th.shape[1] - 2))
    exact = K.gaussian_kernel(th, th2, activation="erf", method="closed")
    assert_within_se(exact, *mc_moments(th, th2, "erf", "erf", x))


@settings(max_examples=20, deadline=None)
@given(pairs=particle_pairs(near_degenerate=False), act=st.sampled_from(["sigmoid", "tanh"]))
def test_quadrature_kernel_matches_monte_carlo(pairs, act):
    """A mixed pair of smooth activations (a kink, as relu's, converges too slowly in n)."""
    th, th2, rng = pairs
    other = {"sigmoid": "tanh", "tanh": "sigmoid"}[act]
    x = rng.standard_normal((MC_N, th.shape[1] - 2))
    got = K.kernel_block(th, th2, activation=act, activation_prime=other, n_nodes=48).value
    assert_within_se(got, *mc_moments(th, th2, act, other, x), floor=1e-4)


@settings(max_examples=30, deadline=None)
@given(pairs=particle_pairs(), act=st.sampled_from(["relu", "erf", "sigmoid", "tanh"]))
def test_gaussian_mean_matches_monte_carlo(pairs, act):
    th, _, rng = pairs
    x = rng.standard_normal((MC_N, th.shape[1] - 2))
    f = get_activation(act).value(x @ th[:, 1:-1].T + th[:, -1])
    se = f.std(axis=0) / np.sqrt(MC_N)
    assert_within_se(K.gaussian_mean(th, activation=act, n_nodes=64), f.mean(axis=0), se,
                     floor=1e-6)


# -- special cases ------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(pairs=particle_pairs(near_degenerate=False))
def test_bias_free_kernels_are_the_classical_ones(pairs):
    th, th2, _ = pairs
    w, w2 = th[:, 1:-1], th2[:, 1:-1]
    s, s2 = np.linalg.norm(w, axis=1), np.linalg.norm(w2, axis=1)
    cos = np.clip(w @ w2.T / np.outer(s, s2), -1, 1)
    angle = np.arccos(cos)
    cho_saul = np.outer(s, s2) / (2 * np.pi) * (np.sin(angle) + (np.pi - angle) * cos)
    np.testing.assert_allclose(K.arccos_kernel(w, w2), cho_saul, rtol=1e-12, atol=1e-14)
    th0, th20 = th.copy(), th2.copy()
    th0[:, -1] = th20[:, -1] = 0.0
    np.testing.assert_allclose(K.relu_kernel(th0, th20), cho_saul, rtol=1e-12, atol=1e-14)
    dd = np.outer(1 + 2 * s**2, 1 + 2 * s2**2)
    williams = 2 / np.pi * np.arcsin(2 * (w @ w2.T) / np.sqrt(dd))
    np.testing.assert_allclose(K.erf_kernel(w, w2), williams, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        K.gaussian_kernel(th0, th20, activation="erf"), williams, rtol=1e-12, atol=1e-14
    )


def test_degenerate_relu_cases_are_exact():
    w = np.array([0.6, -0.8, 0.3])
    b = 0.4
    s = np.linalg.norm(w)
    alpha = b / s
    mean_u = K.gaussian_mean(np.r_[1.0, w, b][None])[0]  # E[relu(w·x + b)]
    for b0 in (0.7, 0.0, -0.7):  # w = 0: u ≡ b0, independent of u′
        th = np.r_[1.0, 0.0, 0.0, 0.0, b0][None]
        th2 = np.r_[1.0, w, b][None]
        blk = K.kernel_block(th, th2)
        np.testing.assert_allclose(blk.value, max(b0, 0.0) * mean_u, rtol=1e-15)
        np.testing.assert_allclose(blk.coef_wp, float(b0 >= 0) * special.ndtr(alpha), rtol=1e-12)
        np.testing.assert_allclose(blk.grad_b, float(b0 >= 0) * mean_u, rtol=1e-15)
        np.testing.assert_allclose(blk.coef_w, 0.0)
    par = np.r_[1.0, 2.0 * w, 2.0 * b][None]  # w′ = 2w, b′ = 2b: relu(u′) = 2 relu(u)
    second = (s**2 + b**2) * special.ndtr(alpha) + b * s * np.exp(-(alpha**2) / 2) / np.sqrt(
        2 * np.pi
    )
    np.testing.assert_allclose(K.relu_kernel(np.r_[1.0, w, b][None], par), 2 * second, 1e-14)
    anti = np.r_[1.0, -w, -b][None]  # u′ = −u: relu(u) relu(−u) = 0
    np.testing.assert_allclose(K.relu_kernel(np.r_[1.0, w, b][None], anti), 0.0, atol=1e-15)
    np.testing.assert_allclose(K.relu_kernel(np.r_[1.0, w, b][None]), second, rtol=1e-14)


@pytest.mark.parametrize(
    ("w2", "b", "b2"),
    [
        ([0.3, 0.1], -0.7, -0.7),  # both in the far tail (α ≈ −2.3)
        ([-0.2, -0.0001], 0.5, 0.1),  # almost antiparallel, small overlap
        ([0.6, 0.0], -0.3, 0.05),  # exactly parallel
        ([0.2, 0.05], 0.0, 0.0),  # bias-free
    ],
)
def test_relu_kernel_rare_events_match_numerical_integration(w2, b, b2):
    from scipy import integrate

    w = np.array([0.3, 0.0])
    th = np.r_[1.0, w, b][None]
    th2 = np.r_[1.0, w2, b2][None]

    def integrand(z2, z1):  # x = (z1, z2) ~ N(0, I_2)
        u, u2 = w[0] * z1 + w[1] * z2 + b, w2[0] * z1 + w2[1] * z2 + b2
        return max(u, 0.0) * max(u2, 0.0) * np.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * np.pi)

    ref, _ = integrate.dblquad(integrand, -12, 12, -12, 12, epsabs=1e-14, epsrel=1e-10)
    np.testing.assert_allclose(K.relu_kernel(th, th2)[0, 0], ref, rtol=1e-7, atol=1e-13)


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("b2", [0.9, 0.4, -0.3])
def test_relu_block_is_continuous_at_unit_correlation(sign, b2):
    rng = np.random.default_rng(7)
    w = rng.standard_normal(3)
    th = np.r_[1.0, w, 0.4][None]
    direction = rng.standard_normal(3)
    fields = ("value", "coef_w", "coef_wp", "grad_b")
    limit = K.kernel_block(th, np.r_[1.0, sign * 1.5 * w, b2][None])
    for eps in (1e-6, 1e-9, 1e-12):
        near = K.kernel_block(th, np.r_[1.0, sign * 1.5 * w + eps * direction, b2][None])
        for f in fields:
            np.testing.assert_allclose(getattr(near, f), getattr(limit, f), atol=eps)
    for f in fields:
        assert np.all(np.isfinite(getattr(limit, f)))


def test_small_weights_and_huge_biases_are_finite_and_continuous():
    w = np.array([0.5, -1.0])
    th2 = np.array([[1.0, 0.3, 0.8, -0.2]])
    for b in (0.5, -0.5):
        zero = K.kernel_block(np.r_[1.0, 0.0, 0.0, b][None], th2)
        tiny = K.kernel_block(np.r_[1.0, 1e-10 * w, b][None], th2)
        for f in ("value", "coef_wp", "grad_b"):
            np.testing.assert_allclose(getattr(tiny, f), getattr(zero, f), rtol=1e-8, atol=1e-12)
    for act in ("relu", "erf"):
        for b in (1e3, -1e3, 1e8, -1e8, 1e150):
            blk = K.kernel_block(np.array([[1.0, *w, b], [1.0, *w, 0.0]]), th2, activation=act)
            for f in ("value", "coef_w", "coef_wp", "grad_b"):
                assert np.all(np.isfinite(getattr(blk, f))), (act, b, f)
    big = K.relu_kernel(np.array([[1.0, *w, 1e8]]), th2)  # relu(u) ≈ 1e8: K ≈ 1e8 E[relu(u′)]
    np.testing.assert_allclose(big, 1e8 * K.gaussian_mean(th2)[None], rtol=1e-7)


# -- quadrature ---------------------------------------------------------------------------
def test_relu_quadrature_error_falls_with_node_count():
    rng = np.random.default_rng(11)
    th, th2 = rng.standard_normal((12, 5)), rng.standard_normal((12, 5))
    exact = K.relu_kernel(th, th2)
    errors = [
        np.mean(np.abs(K.gaussian_kernel(th, th2, method="quadrature", n_nodes=n) - exact))
        for n in (4, 16, 64)
    ]
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 5e-3 * np.mean(np.abs(exact))


def test_smooth_quadrature_converges_to_the_erf_closed_form():
    rng = np.random.default_rng(12)
    th, th2 = rng.standard_normal((6, 4)) * 0.5, rng.standard_normal((5, 4)) * 0.5
    exact = K.kernel_block(th, th2, activation="erf")
    for n, tol in ((16, 1e-3), (64, 1e-9)):
        quad = K.kernel_block(th, th2, activation="erf", method="quadrature", n_nodes=n)
        for f in ("value", "coef_w", "coef_wp", "grad_b"):
            np.testing.assert_allclose(getattr(quad, f), getattr(exact, f), atol=tol)


def test_gauss_hermite_rule():
    t, om = gauss_hermite(10)
    moments = [om.sum(), om @ t, om @ t**2, om @ t**3, om @ t**4, om @ t**18]
    np.testing.assert_allclose(moments, [1, 0, 1, 0, 3, 34459425], rtol=1e-10, atol=1e-12)
    assert not om.flags.writeable
    with pytest.raises(ValueError, match="n_nodes"):
        gauss_hermite(0)


# -- identities ---------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(pairs=particle_pairs(), act=st.sampled_from(["relu", "erf"]))
def test_symmetry_and_symmetric_block(pairs, act):
    th, th2, _ = pairs
    kij = K.gaussian_kernel(th, th2, activation=act)
    kji = K.gaussian_kernel(th2, th, activation=act)
    np.testing.assert_allclose(kij, kji.T, rtol=1e-10, atol=1e-13)
    same = K.kernel_block(th, activation=act)
    cross = K.kernel_block(th, th.copy(), activation=act)
    for f in ("value", "coef_w", "coef_wp", "grad_b"):
        np.testing.assert_allclose(getattr(same, f), getattr(cross, f), rtol=1e-9, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(pairs=particle_pairs(), lam=st.floats(0.05, 20.0), lam2=st.floats(0.05, 20.0))
def test_relu_kernel_is_homogeneous_in_each_argument(pairs, lam, lam2):
    th, th2, _ = pairs
    base = K.relu_kernel(th, th2)
    scaled = K.relu_kernel(lam * th, lam2 * th2)
    np.testing.assert_allclose(scaled, lam * lam2 * base, rtol=1e-10, atol=1e-13)
    # the feature kernel a a′ K is 2-homogeneous in each particle θ = (a, w, b)
    feat = np.outer(th[:, 0], th2[:, 0]) * base
    feat_scaled = np.outer(lam * th[:, 0], th2[:, 0]) * K.relu_kernel(lam * th, th2)
    np.testing.assert_allclose(feat_scaled, lam**2 * feat, rtol=1e-10, atol=1e-13)
    # Euler: w·∇_w K + b ∂_b K = K
    grad = K.gaussian_kernel_grad(th, th2)
    euler = np.einsum("mkd,md->mk", grad[..., :-1], th[:, 1:-1]) + grad[..., -1] * th[:, None, -1]
    np.testing.assert_allclose(euler, base, rtol=1e-9, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), act=st.sampled_from(["relu", "erf", "sigmoid"]))
def test_gram_matrices_are_psd(seed, act):
    rng = np.random.default_rng(seed)
    th = rng.standard_normal((15, 4))
    th[3] = th[2]  # a duplicate
    th[5, 1:-1] = 0.0  # a constant neuron
    gram = K.gaussian_kernel(th, activation=act, n_nodes=48)  # 24: sigmoid off by 2e-5
    gram = 0.5 * (gram + gram.T)  # quadrature is symmetric only up to its error
    assert np.linalg.eigvalsh(gram).min() >= -1e-10 * np.abs(gram).max()


def _fd_check(th, th2, act, rng, n_nodes, tol):
    grad = K.gaussian_kernel_grad(th, th2, activation=act, n_nodes=n_nodes)
    direction = rng.standard_normal(th.shape)
    direction[:, 0] = 0.0
    h = 1e-5
    plus = K.gaussian_kernel(th + h * direction, th2, activation=act, n_nodes=n_nodes)
    minus = K.gaussian_kernel(th - h * direction, th2, activation=act, n_nodes=n_nodes)
    fd = (plus - minus) / (2 * h)
    analytic = np.einsum("mkd,md->mk", grad, direction[:, 1:])
    np.testing.assert_allclose(analytic, fd, atol=tol * (1 + np.abs(fd).max()))


@settings(max_examples=30, deadline=None)
@given(pairs=particle_pairs(near_degenerate=False), act=st.sampled_from(["relu", "erf"]))
def test_closed_form_gradients_match_central_differences(pairs, act):
    _fd_check(*pairs[:2], act, pairs[2], DEFAULT_NODES, 1e-6)


@settings(max_examples=20, deadline=None)
@given(pairs=particle_pairs(near_degenerate=False, scales=(0.2, 0.4)),
       act=st.sampled_from(["sigmoid", "tanh"]))
def test_quadrature_gradients_match_central_differences(pairs, act):
    # the quadrature of E[σ'(u)σ(u')x] is not the derivative of the quadrature of K: both
    # approximate the exact values, to the documented error (96 nodes: below 1e-6 for the
    # weights drawn here, ‖w‖ ≤ 3; 48 nodes left 9e-6 for tanh)
    _fd_check(*pairs[:2], act, pairs[2], 96, 1e-6)


@settings(max_examples=30, deadline=None)
@given(pairs=particle_pairs(near_degenerate=False), act=st.sampled_from(["relu", "erf", "tanh"]))
def test_mean_gradients_match_central_differences(pairs, act):
    th, _, rng = pairs
    direction = rng.standard_normal(th.shape)
    h = 1e-6
    fd = (K.gaussian_mean(th + h * direction, activation=act)
          - K.gaussian_mean(th - h * direction, activation=act)) / (2 * h)
    analytic = np.einsum("md,md->m", K.gaussian_mean_grad(th, activation=act), direction[:, 1:])
    np.testing.assert_allclose(analytic, fd, atol=1e-7 * (1 + np.abs(fd).max()))


# -- API ----------------------------------------------------------------------------------
def test_blocks_broadcast_over_ensembles_and_contract():
    rng = np.random.default_rng(5)
    th = rng.standard_normal((3, 4, 5))
    th2 = rng.standard_normal((6, 5))
    blk = K.kernel_block(th, th2)
    assert blk.value.shape == (3, 4, 6)
    for r in range(3):
        one = K.kernel_block(th[r], th2)
        np.testing.assert_allclose(blk.value[r], one.value, rtol=1e-14)
        np.testing.assert_allclose(blk.coef_w[r], one.coef_w, rtol=1e-14)
    coef = rng.standard_normal(6)
    value, grad = blk.contract(coef, th[..., 1:-1], th2[:, 1:-1])
    dense = blk.dense_grad(th[..., 1:-1], np.broadcast_to(th2[:, 1:-1], (3, 6, 3)))
    np.testing.assert_allclose(value, blk.value @ coef, rtol=1e-13)
    np.testing.assert_allclose(grad, np.einsum("rmkd,k->rmd", dense, coef), rtol=1e-12)


def test_threads_give_identical_results():
    rng = np.random.default_rng(6)
    th = rng.standard_normal((300, 5))
    th[:, -1] *= 0.5
    one = K.kernel_block(th, workers=1)
    two = K.kernel_block(th, workers=2)
    for f in ("value", "coef_w", "coef_wp", "grad_b"):
        np.testing.assert_array_equal(getattr(one, f), getattr(two, f))


def test_argument_errors():
    th = np.ones((2, 4))
    with pytest.raises(ValueError, match="method"):
        K.kernel_block(th, method="exact")
    with pytest.raises(ValueError, match="no closed form"):
        K.kernel_block(th, activation="sigmoid", method="closed")
    with pytest.raises(ValueError, match="no closed form"):
        K.gaussian_mean(th, activation="tanh", method="closed")
    with pytest.raises(ValueError, match="same input dimension"):
        K.kernel_block(th, np.ones((2, 5)))
    with pytest.raises(ValueError, match="theta"):
        K.kernel_block(np.ones((2, 2)))
    with pytest.raises(ValueError, match="grad=False"):
        K.kernel_block(th, grad=False).contract(np.ones(2), th[:, 1:-1], th[:, 1:-1])
    with pytest.raises(TypeError, match="workers"):
        K.kernel_block(th, workers=1.5)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        (bivariate_normal, "bivariate_normal_cdf"),
        (quadrature, "gauss_hermite"),
        (quadrature, "DEFAULT_NODES"),
    ],
)
def test_moved_names_stay_importable_from_kernels(module, name):
    assert getattr(K, name) is getattr(module, name)


def test_subnormal_limits_are_zero_limits():
    # Owen's slope (k − ρh)/(hρ̄) underflowed for h = 5e-324: Φ₂(0, 5e-324; ½) was ¼ (regression)
    for h, k in [(0.0, 5e-324), (5e-324, 0.0), (5e-324, 5e-324), (-5e-324, 1e-310)]:
        np.testing.assert_allclose(bivariate_normal_cdf(h, k, 0.5), 1.0 / 3.0, rtol=1e-15)
    th2 = np.array([[1.0, 0.3, -0.8, 0.4]])
    for backend in ("numpy", "auto"):
        zero = K.kernel_block(np.array([[1.0, 0.5, 1.0, 0.0]]), th2, backend=backend)
        tiny = K.kernel_block(np.array([[1.0, 0.5, 1.0, 5e-324]]), th2, backend=backend)
        for f in ("value", "coef_w", "coef_wp", "grad_b"):
            np.testing.assert_allclose(getattr(tiny, f), getattr(zero, f), rtol=1e-14)


def test_negative_zero_bias_is_zero_bias():
    # Owen's T divides by h: -0.0 must not behave as a tiny negative number (regression).
    from meanfield.bivariate_normal import bivariate_normal_cdf
    from meanfield.kernels import relu_kernel

    np.testing.assert_allclose(
        bivariate_normal_cdf(-0.0, 0.3, 0.9998), bivariate_normal_cdf(0.0, 0.3, 0.9998), rtol=1e-14
    )
    np.testing.assert_allclose(
        relu_kernel([[1, 1, 0, 0.1]], [[1, 1, 0.02, -0.0]]),
        relu_kernel([[1, 1, 0, 0.1]], [[1, 1, 0.02, 0.0]]),
        rtol=1e-14,
    )


def test_errors_name_the_parameter():
    th, th2 = np.ones((3, 4)), np.ones((2, 4))
    with pytest.raises(ValueError, match="activation_prime"):
        K.kernel_block(th, activation_prime="nonsense")
    with pytest.raises(TypeError, match="activation_prime"):
        K.kernel_block(th, activation_prime=3)
    blk = K.kernel_block(th, th2)
    w, w2 = th[:, 1:-1], th2[:, 1:-1]
    for coef, exc in [(np.full(2, np.nan), ValueError), (np.ones(3), ValueError),
                      (np.ones((4, 3)), ValueError), (np.ones(2) + 1j, TypeError),
                      ("1.0", TypeError), (np.float64(2.0), ValueError)]:
        with pytest.raises(exc, match="coef"):
            blk.contract(coef, w, w2)
    with pytest.raises(ValueError, match="w_prime"):
        blk.contract(np.ones(2), w, np.ones((2, 3)))
    with pytest.raises(ValueError, match="coef"):
        blk.contract(np.full(2, 1e308), w * 1e5, w2)  # the sums overflow
    value, grad = blk.contract(np.ones((5, 2)), w, w2)  # leading axes of coef broadcast
    assert value.shape == (5, 3) and grad.shape == (5, 3, 3)

"""Tests of meanfield.separation: exact verdicts, escaping paths, covering radii."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meanfield.covering import cap_fraction, covering_radius, expected_covering_radius
from meanfield.measure import balanced, gaussian, notebook_sphere, sphere
from meanfield.separation import check_separation, empirical_separation
from meanfield.support import Support, support_of

INF = math.inf


def dense(path: np.ndarray, per_segment: int = 400) -> np.ndarray:
    """Points along a polyline, segment ends included."""
    t = np.linspace(0.0, 1.0, per_segment)[:, None]
    return np.vstack([(1 - t) * p + t * q for p, q in itertools.pairwise(path)])


def assert_escapes(verdict, support: Support) -> None:
    """The escaping path joins the two sets of the theorem and avoids the support."""
    path = verdict.escaping_path
    assert path is not None
    lo, hi = verdict.radii
    if verdict.theorem == "3.3":
        np.testing.assert_allclose(np.linalg.norm(path[[0, -1]], axis=1), [lo, hi], rtol=1e-9)
    else:
        np.testing.assert_allclose(path[[0, -1], 0], [lo, hi], rtol=1e-12)
    assert not np.any(support.contains(dense(path)))


def random_sphere(rng: np.random.Generator, radius: float, d: int, n: int = 500) -> np.ndarray:
    z = rng.standard_normal((n, d + 2))
    return radius * z / np.linalg.norm(z, axis=1, keepdims=True)


# -- the laws of meanfield.measure -------------------------------------------------------------
@pytest.mark.parametrize("theorem", ["3.3", "3.5"])
def test_gaussian_law_separates(theorem: str) -> None:
    v = check_separation("gaussian", d=2, theorem=theorem)
    assert v.separates and v.separates_at_radii and v.escaping_path is None
    assert not v.bounded and "unbounded" in v.reason


def test_sphere_law_separates_for_relu_with_its_radius_as_witness() -> None:
    v = check_separation(support_of("sphere", radius=0.3), d=3)
    assert v.separates and v.theorem == "3.3" and v.bounded
    assert v.witness["sphere_radius"] == pytest.approx(0.3)
    assert v.radii[0] < 0.3 <= v.radii[1]
    # the same sphere does not separate radii that do not bracket it
    off = check_separation(Support.sphere(0.3), d=3, radii=(0.5, 1.0))
    assert off.separates and not off.separates_at_radii
    assert_escapes(off, Support.sphere(0.3))


def test_sphere_law_fails_the_partially_homogeneous_condition() -> None:
    v = check_separation(Support.sphere(1.0), d=2, activation="sigmoid")
    assert not v.separates and v.theorem == "3.5"
    assert_escapes(v, Support.sphere(1.0))


def test_notebook_law_does_not_strictly_separate_and_says_why() -> None:
    s = support_of("notebook_sphere", radius=0.05)
    v = check_separation(s, d=2)
    assert not v.separates and v.theorem == "3.3"
    assert_escapes(v, s)
    assert "a-axis" in v.reason
    assert v.weaker_property is not None
    assert "dense" in v.weaker_property and "+e_a, −e_a" in v.weaker_property
    assert "asymptotically" in v.weaker_property
    # the a-axis itself is an escaping path for any radii
    axis = np.array([[0.01, 0, 0, 0], [10.0, 0, 0, 0]])
    assert not np.any(s.contains(dense(axis)))


def test_notebook_law_separates_inside_every_cone_avoiding_the_a_axis() -> None:
    """The weaker property stated by the verdict, checked on random paths in K_α."""
    rng = np.random.default_rng(0)
    R, alpha = 0.05, 0.2
    r_a, r_b = 0.04, 1.01 * R / math.sin(alpha)
    for _ in range(200):  # random polylines inside K_α from r_a to r_b meet ‖(w,b)‖ = R
        ang = rng.uniform(alpha, math.pi - alpha, size=6)
        rad = np.concatenate([[r_a], np.sort(rng.uniform(r_a, r_b, 4)), [r_b]])
        omega = rng.standard_normal(3)
        omega /= np.linalg.norm(omega)
        path = np.column_stack([rad * np.cos(ang), (rad * np.sin(ang))[:, None] * omega])
        u = np.linalg.norm(dense(path)[:, 1:], axis=1)
        assert u.min() <= R <= u.max()


def test_notebook_law_for_sigmoid_has_the_slice_property_on_its_sphere() -> None:
    v = check_separation(Support.notebook_sphere(0.05), d=2, activation="tanh")
    assert not v.separates and v.theorem == "3.5"
    assert_escapes(v, Support.notebook_sphere(0.05))
    assert v.weaker_property is not None and "{0} × Θ''" in v.weaker_property


@pytest.mark.parametrize("theorem", ["3.3", "3.5"])
def test_balanced_law_fails(theorem: str) -> None:
    s = Support.balanced(0.7)
    v = check_separation(s, d=2, theorem=theorem)
    assert not v.separates
    assert_escapes(v, s)


def test_balanced_law_has_both_signs_on_its_sphere() -> None:
    v = check_separation(Support.balanced(0.7), d=2, theorem="3.5")
    assert v.weaker_property is not None and "both signs" in v.weaker_property


def test_balanced_double_cone_fails_and_its_directions_are_two_cones() -> None:
    s = Support.balanced_cone()
    v = check_separation(s, d=2)
    assert not v.separates
    assert_escapes(v, s)
    assert v.weaker_property is not None and "0.7854" in v.weaker_property
    assert not check_separation(s, d=2, theorem="3.5").separates


def test_positive_a_fails_for_relu_with_path_through_negative_a() -> None:
    s = Support.positive_a()
    v = check_separation(s, d=2)
    assert not v.separates
    assert_escapes(v, s)
    assert np.all(v.escaping_path[:, 0] < 0)


def test_positive_a_separates_for_sigmoid_through_the_slice_a_zero() -> None:
    v = check_separation(Support.positive_a(), d=2, activation="sigmoid")
    assert v.separates and v.witness["slice_a"] == 0.0


@pytest.mark.parametrize("offset", [0.0, 0.5])
@pytest.mark.parametrize("theorem", ["3.3", "3.5"])
def test_u_halfspace_fails(offset: float, theorem: str) -> None:
    s = Support.u_halfspace([1.0, -2.0, 0.5], offset)
    v = check_separation(s, d=2, theorem=theorem)
    assert not v.separates
    assert_escapes(v, s)


def test_u_halfspace_with_origin_inside_contains_a_small_sphere() -> None:
    n = np.array([1.0, -2.0, 0.5])
    s = Support.u_halfspace(n, -1.0)
    v = check_separation(s, d=2)
    assert v.separates
    r = v.witness["sphere_radius"]
    assert r == pytest.approx(1.0 / np.linalg.norm(n))
    assert np.all(s.contains(random_sphere(np.random.default_rng(1), r, 2), atol=1e-12))
    assert not check_separation(s, d=2, radii=(1.0, 2.0)).separates_at_radii


def test_escaping_path_winds_around_through_an_annulus() -> None:
    """Only the shell 1 < ‖θ‖ < 2 is free: the path must follow an arc around the ball."""
    s = Support(norm=[(0.0, 1.0), (2.0, INF)])
    v = check_separation(s, d=2, activation="sigmoid", r0=1.5)
    assert v.separates and v.witness["slice_a"] == 2.0  # from r0 = 2 on, not at r0 = 1.5
    assert not v.separates_at_radii
    assert_escapes(v, s)
    r = np.linalg.norm(dense(v.escaping_path), axis=1)
    assert np.all((r > 1.0) & (r < 2.0))


def test_samples_of_each_law_lie_in_its_support() -> None:
    cases = [
        (gaussian(200, 3, rng=0), Support.full()),
        (sphere(200, 3, radius=2.0, rng=1), Support.sphere(2.0)),
        (notebook_sphere(200, 3, radius=0.05, rng=2), Support.notebook_sphere(0.05)),
        (balanced(200, 3, scale=0.3, rng=3), Support.balanced(0.3)),
    ]
    for mu, s in cases:
        assert np.all(s.contains(mu.theta, atol=1e-12))
    assert not np.all(Support.sphere(2.0).contains(gaussian(20, 3, rng=0).theta, atol=1e-12))


def test_invalid_arguments_are_reported() -> None:
    with pytest.raises(ValueError, match="u_norm"):
        Support(u_norm=(-1.0, 1.0))
    with pytest.raises(ValueError, match="lo <= hi"):
        Support(a=(2.0, 1.0))
    with pytest.raises(ValueError, match="law must be one of"):
        support_of("cauchy")
    with pytest.raises(ValueError, match="theorem"):
        check_separation("gaussian", d=2, theorem="3.4")
    with pytest.raises(ValueError, match="r_a < r_b"):
        check_separation("sphere", d=2, radii=(2.0, 1.0))
    with pytest.raises(ValueError, match="length d\\+1"):
        check_separation(Support.u_halfspace([1.0, 0.0], 0.0), d=2)


# -- the characterisation against the path search on random supports ---------------------------
ENDS = [0.0, 0.25, 0.5, 1.0, 2.0, INF]
ANGLES = [0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4, math.pi]


@st.composite
def interval_sets(draw, ends, signed: bool = False):
    if draw(st.booleans()):
        return None
    pts = ([-x for x in ends[::-1] if x > 0] + ends) if signed else ends
    out = []
    for _ in range(draw(st.integers(1, 2))):
        i = draw(st.integers(0, len(pts) - 1))
        j = draw(st.integers(i, len(pts) - 1))
        if math.isinf(pts[i]) and pts[i] == pts[j]:
            continue
        out.append((pts[i], pts[j]))
    return out or None


@st.composite
def supports(draw):
    hs = []
    if draw(st.integers(0, 3)) == 0:
        hs = [
            (
                np.array([1.0, draw(st.sampled_from([-1.0, 0.0, 2.0])), 0.5]),
                draw(st.sampled_from([-1.0, -0.25, 0.0, 0.5])),
            )
        ]
    return Support(
        a=draw(interval_sets(ENDS, signed=True)),
        u_norm=draw(interval_sets(ENDS)),
        norm=draw(interval_sets(ENDS)),
        polar_angle=draw(interval_sets(ANGLES)),
        u_halfspaces=hs,
    )


@settings(max_examples=150, deadline=None)
@given(s=supports(), seed=st.integers(0, 2**32 - 1))
def test_relu_verdict_agrees_with_the_path_search(s: Support, seed: int) -> None:
    rng = np.random.default_rng(seed)
    v = check_separation(s, d=2)
    if v.separates:  # the witness sphere lies in S and no path crosses it
        r = v.witness["sphere_radius"]
        assert np.all(s.contains(random_sphere(rng, r, 2), atol=1e-9))
        assert v.separates_at_radii and v.escaping_path is None
    else:  # an escaping path exists for arbitrary radii
        r_a = float(rng.uniform(0.01, 3.0))
        w = check_separation(s, d=2, radii=(r_a, r_a * float(rng.uniform(1.01, 10.0))))
        assert_escapes(w, s)


@settings(max_examples=150, deadline=None)
@given(s=supports(), seed=st.integers(0, 2**32 - 1))
def test_sigmoid_verdict_agrees_with_the_path_search(s: Support, seed: int) -> None:
    rng = np.random.default_rng(seed)
    v = check_separation(s, d=2, activation="sigmoid")
    if v.separates:  # the witness slice lies in S and no path crosses it
        a0 = v.witness["slice_a"]
        u = rng.standard_normal((300, 3)) * rng.exponential(3.0, (300, 1))
        assert np.all(s.contains(np.column_stack([np.full(300, a0), u]), atol=1e-9))
        assert v.escaping_path is None
        w = check_separation(s, d=2, activation="sigmoid", r0=max(abs(a0), 1e-3) * 1.5)
        assert w.separates_at_radii
    else:
        w = check_separation(s, d=2, activation="sigmoid", r0=float(rng.uniform(0.01, 5.0)))
        assert_escapes(w, s)


# -- covering radii ----------------------------------------------------------------------------
def brute_force_covering_s2(p: np.ndarray) -> float:
    """Max over all triple circumcentres, antipodes and pair bisector points (small m)."""
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    cands = [-p]
    m = len(p)
    for i in range(m):
        for j in range(i + 1, m):
            s = p[i] + p[j]
            if np.linalg.norm(s) > 1e-12:
                cands.append(-s[None] / np.linalg.norm(s))
            for k in range(j + 1, m):
                n = np.cross(p[j] - p[i], p[k] - p[i])
                if np.linalg.norm(n) > 1e-12:
                    n /= np.linalg.norm(n)
                    cands.append(np.vstack([n, -n]))
    c = np.vstack(cands)
    return float(np.max(np.arccos(np.clip(np.max(c @ p.T, axis=1), -1, 1))))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 12), hemisphere=st.booleans())
def test_exact_covering_radius_on_s2_matches_brute_force(
    seed: int, m: int, hemisphere: bool
) -> None:
    p = np.random.default_rng(seed).standard_normal((m, 3))
    if hemisphere:
        p[:, 2] = np.abs(p[:, 2]) + 0.1
    c = covering_radius(p)
    assert c.exact
    np.testing.assert_allclose(c.value, brute_force_covering_s2(p), atol=1e-9)
    # the reported maximiser realises the value
    q = p / np.linalg.norm(p, axis=1, keepdims=True)
    np.testing.assert_allclose(np.arccos(np.clip(np.max(q @ c.argmax), -1, 1)), c.value, atol=1e-9)


def test_exact_covering_radius_on_s1_is_half_the_largest_gap() -> None:
    ang = np.array([0.0, 0.5, 2.0, 4.0])
    c = covering_radius(np.column_stack([np.cos(ang), np.sin(ang)]))
    assert c.exact and c.method == "gaps"
    np.testing.assert_allclose(c.value, (2 * math.pi - 4.0) / 2)


def test_probe_estimator_brackets_the_exact_value() -> None:
    rng = np.random.default_rng(3)
    for m in (5, 50, 400):
        p = rng.standard_normal((m, 3))
        exact = covering_radius(p).value
        est = covering_radius(p, method="probe", n_probe=5000, rng=rng)
        assert not est.exact
        assert est.lower <= exact + 1e-12
        assert exact <= est.upper
        assert est.lower > exact - 0.02  # the ascent lands on a Voronoi vertex


def test_probe_upper_bound_is_calibrated_on_s3() -> None:
    """Few-probe brackets [δ̂, δ̂ + t] contain a many-probe lower bound of δ (k = 3)."""
    rng = np.random.default_rng(4)
    p = rng.standard_normal((30, 4))
    ref = covering_radius(p, n_probe=200_000, rng=5)
    assert ref.upper - ref.lower < 0.1
    for seed in range(5):
        est = covering_radius(p, n_probe=2000, rng=seed)
        assert est.lower <= ref.upper and ref.lower <= est.upper
        assert abs(est.lower - ref.lower) < 1e-9  # both ascents end on the same vertex


def test_covering_radius_of_uniform_points_on_s2_shrinks_at_janson_rate() -> None:
    """m v(δ_m) − log m − log log m is asymptotically Gumbel (mean γ): Janson (1986)."""
    rng = np.random.default_rng(5)
    stats, radii = [], []
    for m in (200, 800, 3200):
        d = np.array([covering_radius(rng.standard_normal((m, 3))).value for _ in range(40)])
        radii.append(d.mean())
        stats.append(np.mean(m * cap_fraction(d, 2) - math.log(m) - math.log(math.log(m))))
    np.testing.assert_allclose(stats, 0.5772, atol=0.35)
    slope = np.polyfit(np.log([200, 800, 3200]), np.log(radii), 1)[0]
    assert -0.5 < slope < -0.4  # (log m / m)^{1/2}: slightly flatter than −1/2
    np.testing.assert_allclose(
        radii, [expected_covering_radius(m, 2) for m in (200, 800, 3200)], rtol=0.05
    )


def test_expected_covering_radius_monte_carlo_agrees_with_asymptotics_on_s1() -> None:
    mc = expected_covering_radius(500, 1, method="monte_carlo", n_rep=200, rng=0)
    np.testing.assert_allclose(mc, expected_covering_radius(500, 1), rtol=0.05)


def test_cap_fraction_inverts_and_matches_closed_forms() -> None:
    t = np.linspace(0, math.pi, 7)
    np.testing.assert_allclose(cap_fraction(t, 2), (1 - np.cos(t)) / 2, atol=1e-14)
    np.testing.assert_allclose(cap_fraction(t, 1), t / math.pi, atol=1e-14)


# -- empirical measures ------------------------------------------------------------------------
def test_empirical_report_for_relu_on_s2_is_exact_and_resolves() -> None:
    mu = sphere(500, 1, rng=0)
    rep = empirical_separation(mu, eps=0.5)
    cov = rep.covering["all"]
    assert rep.theorem == "3.3" and cov.exact and cov.k == 2 and rep.counts["all"] == 500
    assert rep.resolution == cov.value and rep.separates_at(0.5) and not rep.separates_at(0.05)
    np.testing.assert_allclose(rep.radial_range, [1.0, 1.0])
    assert 0.5 < cov.value / rep.expected["all"] < 2.0
    assert "separates at resolution" in rep.summary()


def test_empirical_report_sees_the_notebook_directions_crowd_the_a_axis() -> None:
    """a ~ N(0,1) against ‖(w,b)‖ = 0.05: directions cluster near ±e_a, far from uniform."""
    rep = empirical_separation(notebook_sphere(200, 2, rng=0), rng=1)
    cov = rep.covering["all"]
    assert not cov.exact and cov.k == 3 and cov.lower <= cov.upper
    assert cov.lower > 2 * rep.expected["all"]
    uniform = empirical_separation(sphere(200, 2, rng=0), rng=1)
    assert uniform.resolution < rep.resolution


def test_empirical_report_for_sigmoid_splits_the_signs_of_a() -> None:
    theta = np.array([[1.0, 1, 0, 0], [1.0, -1, 0, 0], [-1.0, 0, 1, 0], [0.0, 0, 0, 1]])
    rep = empirical_separation(sphere(3, 2, rng=0).with_theta(theta[:3]), activation="sigmoid")
    assert rep.counts == {"a>0": 2, "a<0": 1}
    np.testing.assert_allclose(rep.covering["a<0"].value, math.pi)
    from meanfield.measure import ParticleMeasure

    rep0 = empirical_separation(ParticleMeasure(theta), activation="sigmoid")
    assert rep0.counts == {"a>0": 3, "a<0": 2}  # the a = 0 neuron counts for both signs
    # zero-mass particles are not in the support
    rep1 = empirical_separation(ParticleMeasure(theta, [0.5, 0.5, 0.0, 0.0]), activation="sigmoid")
    assert rep1.counts == {"a>0": 2, "a<0": 0} and rep1.resolution == math.pi


# -- hostile inputs (issue 9): a correct value or an error naming the parameter ---------------
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: cap_fraction(np.array([0.5]), 0), "k"),
        (lambda: cap_fraction(np.array([0.5]), 2.5), "k"),
        (lambda: cap_fraction(np.array([0.5]), np.array([2, 2])), "k"),
        (lambda: cap_fraction(np.array([np.inf]), 2), "t"),
        (lambda: cap_fraction("a", 2), "t"),
        (lambda: covering_radius(np.eye(3), confidence=[0.9]), "confidence"),
        (lambda: covering_radius(np.eye(3), confidence=1.0), "confidence"),
        (lambda: covering_radius(np.eye(3), confidence=True), "confidence"),
        (lambda: covering_radius(np.eye(3), n_probe=0), "n_probe"),  # exact: n_probe unused
        (lambda: covering_radius(np.eye(3), rng="seed"), "rng"),
        (lambda: covering_radius(np.eye(3), method=3), "method"),
        (lambda: expected_covering_radius(10, 2, n_rep=0), "n_rep"),
        (lambda: expected_covering_radius(10, 2, rng=-1), "rng"),
        (lambda: expected_covering_radius(10, 2, method="x"), "method"),
        (lambda: check_separation("sphere", d=2, activation="sigmoid", radii=(2.0, 1.0)), "radii"),
        (lambda: check_separation("sphere", d=2, activation="sigmoid", radii="ab"), "radii"),
        (lambda: check_separation("sphere", d=2, radii=(1.0, 2.0, 3.0)), "radii"),
        (lambda: check_separation("sphere", d=2, radii=(math.nan, 1.0)), "radii"),
        (lambda: check_separation("sphere", d=2, r0=-1.0), "r0"),  # Thm 3.3: r0 unused
        (
            lambda: check_separation("sphere", d=2, activation="nonsense", theorem="3.3"),
            "activation",
        ),
        (lambda: empirical_separation(sphere(5, 1, rng=0), n_probe=0), "n_probe"),
        (lambda: empirical_separation(sphere(5, 1, rng=0), confidence=2.0), "confidence"),
        (lambda: empirical_separation(sphere(5, 1, rng=0), rng="seed"), "rng"),
        (lambda: Support.full().contains(np.empty((2, 0))), "theta"),
    ],
)
def test_invalid_arguments_are_named_even_when_unused(call, name) -> None:
    with pytest.raises((ValueError, TypeError), match=name):
        call()


@pytest.mark.parametrize("atol", [math.nan, math.inf, -1.0, None, "0", True])
def test_contains_validates_atol(atol) -> None:
    with pytest.raises((ValueError, TypeError), match="atol"):
        Support.u_halfspace(np.ones(3)).contains(np.ones(4), atol=atol)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lam=st.sampled_from([1e-300, 5e-300, 1e150, 1e300, 1e307]),
    psi=st.sampled_from([(0.0, 1.0), (0.5, math.pi / 2), (2.0, math.pi)]),
)
def test_cones_contain_the_rescaled_points_near_the_float64_limits(seed, lam, psi) -> None:
    """A support made of cones (angles, a ≥ 0, half-spaces through 0) is scale-invariant."""
    z = np.random.default_rng(seed).standard_normal((200, 4))
    cone = Support(polar_angle=psi, u_halfspaces=[([1.0, -2.0, 0.5], 0.0)])
    np.testing.assert_array_equal(cone.contains(lam * z), cone.contains(z))
    np.testing.assert_array_equal(Support.positive_a().contains(lam * z), z[:, 0] >= 0)
    shell = Support(norm=(0.5 * lam, 2.0 * lam))  # ‖θ‖ computed without overflow
    np.testing.assert_array_equal(
        shell.contains(lam * z),
        (np.linalg.norm(z, axis=1) >= 0.5) & (np.linalg.norm(z, axis=1) <= 2),
    )


def test_covering_and_empirical_separation_near_the_float64_limits() -> None:
    mu = sphere(40, 2, rng=3)
    ref = empirical_separation(mu, rng=0)
    for lam in (1e-300, 1e300):
        rep = empirical_separation(mu.with_theta(mu.theta * lam), rng=0)
        np.testing.assert_allclose(rep.resolution, ref.resolution, rtol=1e-12)
        np.testing.assert_allclose(rep.radial_range, np.multiply(ref.radial_range, lam), rtol=1e-12)
        p = mu.theta * lam
        np.testing.assert_allclose(covering_radius(p).value, covering_radius(mu.theta).value)
    with pytest.raises(ValueError, match="measure"):  # ‖θ‖ beyond float64
        empirical_separation(mu.with_theta(np.full_like(mu.theta, 1.7e308)))

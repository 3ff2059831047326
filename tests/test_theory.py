"""Mean-field theory: checked against the paper's numbers and against independent integrations written here."""

import warnings

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss

from infoflow_ray import theory
from infoflow_ray.errors import ConfigError

SIGMA_B2 = 0.05


@pytest.fixture(scope="module")
def critical():
    return float(theory.critical_sigma_w2(SIGMA_B2))


def _gauss(n=theory.N_QUAD):
    z, w = hermegauss(n)
    return z, w / w.sum()


def test_critical_point_without_bias_is_one():
    assert theory.critical_sigma_w2(sigma_b2=0.0) == pytest.approx(1.0, abs=1e-6)


def test_critical_point_at_default_bias_matches_paper(critical):
    assert critical == pytest.approx(1.76, abs=0.01)


def test_critical_point_grows_with_bias():
    assert np.all(np.diff(theory.critical_sigma_w2([0.0, 0.05, 0.1, 0.2])) > 0)


@pytest.mark.parametrize("sigma_b2", [0.0, 0.05, 0.2])
def test_chi_1_is_below_one_in_order_and_above_in_chaos(sigma_b2):
    crit = float(theory.critical_sigma_w2(sigma_b2))
    below, at, above = theory.chi_1([crit - 0.05, crit, crit + 0.05], sigma_b2)
    assert below < 1.0 < above
    assert at == pytest.approx(1.0, abs=1e-9)


def test_without_bias_signal_dies_and_chi_1_is_sigma_w2_in_order():
    sigma_w2 = np.array([0.3, 0.7, 0.95])
    assert np.all(theory.q_star(sigma_w2, 0.0) == 0.0)
    np.testing.assert_allclose(theory.chi_1(sigma_w2, 0.0), sigma_w2, rtol=1e-14)


def test_q_star_solves_its_fixed_point_equation():
    sigma_w2 = np.linspace(0.5, 4.0, 15)
    q = theory.q_star(sigma_w2, SIGMA_B2)
    z, w = _gauss()
    mapped = sigma_w2 * (np.tanh(np.sqrt(q)[:, None] * z) ** 2 @ w) + SIGMA_B2
    np.testing.assert_allclose(mapped, q, rtol=0, atol=1e-10)


def _trapezoid_fixed_point(sigma_w2, sigma_b2):
    """q* and χ1 from the length map iterated with a dense trapezoid rule over z instead of quadrature."""
    z, dz = np.linspace(-12.0, 12.0, 24_001, retstep=True)
    density = np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi)

    def gauss_mean(f):  # trapezoid rule; the density is ~1e-32 at the ends
        return dz * (np.sum(f * density) - 0.5 * (f[0] * density[0] + f[-1] * density[-1]))

    q = 1.0
    for _ in range(300):
        q = sigma_w2 * gauss_mean(np.tanh(np.sqrt(q) * z) ** 2) + sigma_b2
    chi_1 = sigma_w2 * gauss_mean((1 - np.tanh(np.sqrt(q) * z) ** 2) ** 2)
    return q, chi_1


def _iterated_correlation_fixed_point(sigma_w2, sigma_b2, q):
    """c* and χ_c at variance q: the correlation map iterated from c = 0.5 with a 2-D quadrature written here."""
    z, w = _gauss(101)
    z1, z2, ww = z[:, None], z[None, :], w[:, None] * w[None, :]

    def pair(c):
        return np.sqrt(q) * z1, np.sqrt(q) * (c * z1 + np.sqrt(1 - c**2) * z2)

    c = 0.5
    for _ in range(1000):
        u1, u2 = pair(c)
        c = (sigma_w2 * np.sum(ww * np.tanh(u1) * np.tanh(u2)) + sigma_b2) / q
    u1, u2 = pair(c)
    return c, sigma_w2 * np.sum(ww * (1 - np.tanh(u1) ** 2) * (1 - np.tanh(u2) ** 2))


def test_q_star_matches_brute_force_integration():
    q, chi_1 = _trapezoid_fixed_point(2.5, SIGMA_B2)
    assert theory.q_star(2.5, SIGMA_B2) == pytest.approx(q, rel=1e-9)
    assert theory.chi_1(2.5, SIGMA_B2) == pytest.approx(chi_1, rel=1e-9)
    assert q == pytest.approx(1.064, abs=1e-3)


def test_xi_c_in_ordered_phase_matches_brute_force_integration():
    _, chi_1 = _trapezoid_fixed_point(1.0, SIGMA_B2)
    assert theory.xi_c(1.0, SIGMA_B2) == pytest.approx(-1.0 / np.log(chi_1), rel=1e-9)


def test_c_star_is_one_in_order_and_below_one_in_chaos(critical):
    ordered, chaotic = theory.c_star([critical - 0.3, critical + 0.3], SIGMA_B2)
    assert ordered == 1.0
    assert 0.0 < chaotic < 0.99
    # without bias tanh is odd, so in the chaotic phase inputs decorrelate completely
    assert theory.c_star(2.0, 0.0) == pytest.approx(0.0, abs=1e-12)


def test_c_star_and_chi_c_match_iterated_correlation_map():
    """Chaotic point: iterate the correlation map from c = 0.5 with a 2-D quadrature written here."""
    sigma_w2 = 2.5
    c, chi = _iterated_correlation_fixed_point(sigma_w2, SIGMA_B2, float(theory.q_star(sigma_w2, SIGMA_B2)))
    assert theory.c_star(sigma_w2, SIGMA_B2) == pytest.approx(c, abs=1e-9)
    assert theory.chi_c(sigma_w2, SIGMA_B2) == pytest.approx(chi, abs=1e-9)
    assert chi < 1.0


def test_chi_c_equals_chi_1_in_ordered_phase(critical):
    sigma_w2 = np.linspace(0.5, critical - 0.01, 8)
    np.testing.assert_allclose(theory.chi_c(sigma_w2, SIGMA_B2), theory.chi_1(sigma_w2, SIGMA_B2), atol=1e-12)


def test_xi_c_peaks_at_critical_point(critical):
    below = theory.xi_c(np.linspace(1.0, critical - 0.01, 12), SIGMA_B2)
    above = theory.xi_c(np.linspace(critical + 0.01, 4.0, 12), SIGMA_B2)
    assert np.all(np.diff(below) > 0) and np.all(np.diff(above) < 0)
    assert below[-1] > 100 and above[0] > 100
    # far from criticality correlations die within a few layers
    assert 2.0 < theory.xi_c(1.0, SIGMA_B2) < 6.0


def test_xi_c_is_infinite_at_exact_criticality_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert theory.xi_c(1.0, 0.0) == np.inf
        assert np.all(np.isfinite(theory.xi_c([0.5, 2.0], 0.0)))


def test_mean_field_depth_is_six_xi_c():
    """6 ξ_c against values not computed by the module: the closed form without bias in the ordered phase
    (q* = 0, χ_c = χ1 = σw², so 6 ξ_c = −6 / ln σw², e.g. 6 / ln 2 = 8.656 layers at σw² = 0.5), its infinite
    critical value, and at σb² = 0.05 ξ_c from the brute-force integrations above on both sides of criticality."""
    sigma_w2 = np.array([0.25, 0.5, 0.9])
    np.testing.assert_allclose(theory.mean_field_depth(sigma_w2, 0.0), -6.0 / np.log(sigma_w2), rtol=1e-12)
    np.testing.assert_allclose(theory.mean_field_depth(sigma_w2, 0.0, factor=3.0), -3.0 / np.log(sigma_w2), rtol=1e-12)
    assert theory.mean_field_depth(0.5, 0.0) == pytest.approx(6.0 / np.log(2.0), rel=1e-12)
    assert theory.mean_field_depth(1.0, 0.0) == np.inf
    _, chi_ordered = _trapezoid_fixed_point(1.0, SIGMA_B2)  # ordered: χ_c = χ1
    q_chaotic, _ = _trapezoid_fixed_point(2.5, SIGMA_B2)
    _, chi_chaotic = _iterated_correlation_fixed_point(2.5, SIGMA_B2, q_chaotic)
    assert theory.mean_field_depth(1.0) == pytest.approx(-6.0 / np.log(chi_ordered), rel=1e-8)
    assert theory.mean_field_depth(2.5) == pytest.approx(-6.0 / np.log(chi_chaotic), rel=1e-6)


@pytest.mark.parametrize("fn", [theory.q_star, theory.chi_1, theory.c_star, theory.chi_c, theory.xi_c])
def test_vectorised_call_equals_elementwise_calls(fn):
    sigma_w2 = np.array([0.6, 1.2, 1.76, 2.5, 3.5])
    sigma_b2 = np.array([0.0, 0.05, 0.05, 0.1, 0.3])
    vectorised = fn(sigma_w2, sigma_b2)
    elementwise = np.array([float(fn(a, b)) for a, b in zip(sigma_w2, sigma_b2)])
    assert vectorised.shape == sigma_w2.shape
    # The tolerance follows the conditioning of what is compared. q*, χ1, c* and χ_c are well conditioned:
    # both calls agree to round-off (the fixed-point solvers stop at rtol 1e-14). ξ_c = −1/ln χ_c amplifies a
    # relative error of χ_c by ξ_c itself (dξ/ξ = ξ·dχ/χ): ≈ 4,900 at σw² = 1.76, so its round-off differs
    # from machine to machine by up to ~1e-10 there and must be judged against ξ_c·1e-12, not 1e-12.
    condition = np.maximum(1.0, elementwise) if fn is theory.xi_c else np.ones_like(elementwise)
    relative = np.abs(vectorised - elementwise) / np.abs(elementwise).clip(min=1e-300)
    assert np.all(relative <= 1e-12 * condition), relative / condition
    assert fn(sigma_w2.reshape(5, 1), SIGMA_B2).shape == (5, 1)


def test_xi_c_conditioning_bound_is_tight_enough_to_catch_a_mix_up():
    """The ξ_c tolerance above stays far below any real disagreement: neighbouring inputs differ by > 1e-3."""
    values = theory.xi_c(np.array([1.75, 1.76, 1.77]), 0.05)
    assert np.all(np.abs(np.diff(values)) / values[1:] > 1e-3)


def test_critical_sigma_w2_is_vectorised():
    sigma_b2 = np.array([0.0, 0.05, 0.2])
    np.testing.assert_allclose(
        theory.critical_sigma_w2(sigma_b2), [float(theory.critical_sigma_w2(b)) for b in sigma_b2], atol=1e-7
    )


def test_mean_field_bundles_the_single_functions():
    """Every field of mean_field against values not computed by the module: at σb² = 0.05 q* and χ1 from the
    trapezoid length map, c* = 1 and χ_c = χ1 on the ordered side, c* and χ_c from the iterated 2-D correlation
    map on the chaotic side, χ1 = 1 at the paper's critical σw² ≈ 1.76; without bias the closed forms."""
    grid = np.array([0.8, 1.2, 2.5, 3.0])
    mf = theory.mean_field(grid, SIGMA_B2)
    assert mf.sigma_b2 == SIGMA_B2
    np.testing.assert_array_equal(mf.sigma_w2, grid)
    brute = [_trapezoid_fixed_point(s, SIGMA_B2) for s in grid]
    q, chi_1 = np.array([b[0] for b in brute]), np.array([b[1] for b in brute])
    np.testing.assert_allclose(mf.q_star, q, rtol=1e-9)
    np.testing.assert_allclose(mf.chi_1, chi_1, rtol=1e-9)
    chaotic = [_iterated_correlation_fixed_point(s, SIGMA_B2, qs) for s, qs in zip(grid[2:], q[2:])]
    c_star = np.concatenate([[1.0, 1.0], [c for c, _ in chaotic]])
    chi_c = np.concatenate([chi_1[:2], [chi for _, chi in chaotic]])
    np.testing.assert_allclose(mf.c_star, c_star, rtol=0, atol=1e-8)
    np.testing.assert_allclose(mf.chi_c, chi_c, rtol=1e-8)
    assert np.all(mf.c_star[2:] < 0.99) and np.all(mf.chi_c < 1.0)
    np.testing.assert_allclose(mf.xi_c, -1.0 / np.log(chi_c), rtol=1e-6)
    np.testing.assert_allclose(mf.depth_6xi, -6.0 / np.log(chi_c), rtol=1e-6)
    at_paper_critical = theory.mean_field(np.array([1.75, 1.77]), SIGMA_B2).chi_1
    assert at_paper_critical[0] < 1.0 < at_paper_critical[1]  # the edge of chaos is at 1.76 ± 0.01
    without_bias = theory.mean_field(np.array([0.3, 0.7]), 0.0)
    np.testing.assert_array_equal(without_bias.q_star, [0.0, 0.0])
    np.testing.assert_allclose(without_bias.chi_1, [0.3, 0.7], rtol=1e-14)
    np.testing.assert_allclose(without_bias.chi_c, [0.3, 0.7], rtol=1e-14)
    np.testing.assert_allclose(without_bias.depth_6xi, -6.0 / np.log([0.3, 0.7]), rtol=1e-12)


def test_critical_point_outside_bracket_is_refused():
    with pytest.raises(ConfigError):
        theory.critical_sigma_w2(SIGMA_B2, sigma_w2_max=1.5)


@pytest.mark.parametrize("sigma_w2, sigma_b2", [(0.0, 0.05), (-1.0, 0.05), (1.0, -0.1), (np.nan, 0.05)])
def test_invalid_variances_are_refused(sigma_w2, sigma_b2):
    with pytest.raises(ConfigError):
        theory.q_star(sigma_w2, sigma_b2)

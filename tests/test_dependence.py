"""Adaptive-partition, B-spline and distance-correlation estimators against known and hand-computed answers."""

import math
from collections import Counter

import numpy as np
import pytest
import torch

from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators import bspline, darbellay_vajda, dcor, equal_mass

LN = math.log


def gaussian_pair(rho, n, seed):
    """x ~ N(0, 1) and y = ρ·x + √(1−ρ²)·noise, (n,) each: I(X;Y) = −½ ln(1−ρ²)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    return x, rho * x + math.sqrt(1 - rho**2) * torch.randn(n, generator=g, dtype=torch.float64)


def gaussian_mi(rho):
    return -0.5 * LN(1 - rho**2)


def entropy_of_counts(counts):
    n = sum(counts)
    return -sum(c / n * LN(c / n) for c in counts if c)


# --- Darbellay–Vajda -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_darbellay_vajda_recovers_the_mutual_information_of_correlated_gaussians(rho):
    # Measured, N = 5000, seeds 0..9: ρ = 0.5: 0.133..0.147 (truth 0.144); ρ = 0.9: 0.803..0.841 (truth 0.830).
    for seed in (0, 1):
        assert darbellay_vajda.darbellay_vajda_mi(*gaussian_pair(rho, 5000, seed)) == pytest.approx(
            gaussian_mi(rho), abs=0.05
        )


def test_darbellay_vajda_of_independent_variables_is_about_zero_and_depends_only_on_ranks():
    x, y = gaussian_pair(0.0, 5000, seed=2)
    assert 0 <= darbellay_vajda.darbellay_vajda_mi(x, y) < 0.01  # measured 0.0000..0.0001
    x, y = gaussian_pair(0.7, 2000, seed=3)
    before = (x.clone(), y.clone())
    # monotone maps of either variable change nothing (the tiling is of ranks)
    expected = darbellay_vajda.darbellay_vajda_mi(x, y)
    assert darbellay_vajda.darbellay_vajda_mi(x.exp()[:, None], y**3) == expected
    assert darbellay_vajda.darbellay_vajda_mi(-x, y) == pytest.approx(expected, abs=0.02)  # mirrored: another tiling
    assert torch.equal(x, before[0]) and torch.equal(y, before[1])


def test_darbellay_vajda_on_four_points_reproduces_the_hand_computed_tiling():
    # y = x on ranks 0..3: level 0 is always split at rank 2, giving two cells of 2 points, extents [0,2)² and
    # [2,4)². Each one's split puts its points in opposite subcells, counts (1, 0, 0, 1): χ² = 2 < 7.81, so both
    # are leaves with p = 1/2 and p_x = p_y = 1/2: I = 2 · ½ ln(½ / ¼) = ln 2.
    x = torch.tensor([0.3, 1.2, 2.0, 7.5])
    assert darbellay_vajda.darbellay_vajda_mi(x, x.clone()) == pytest.approx(LN(2), abs=1e-12)
    assert darbellay_vajda.darbellay_vajda_mi(x, -x) == pytest.approx(LN(2), abs=1e-12)
    # a larger alpha (smaller threshold) does not help: χ² = 2 stays below every 3-df quantile above 0.57
    assert darbellay_vajda.darbellay_vajda_mi(x, x, alpha=0.4) == pytest.approx(LN(2), abs=1e-12)


def test_chi_square_quantiles_match_the_tables():
    assert darbellay_vajda._chi2_quantile(0.95, 3) == pytest.approx(7.814727903251178, abs=1e-9)
    assert darbellay_vajda._chi2_quantile(0.99, 3) == pytest.approx(11.344866730144373, abs=1e-9)
    assert darbellay_vajda._chi2_quantile(0.95, 1) == pytest.approx(3.841458820694124, abs=1e-9)


# --- equal-mass binning ----------------------------------------------------------------------------------


def test_equal_mass_bins_hold_equal_counts_and_equal_values_share_a_bin():
    g = torch.Generator().manual_seed(4)
    continuous = torch.randn(3000, 2, generator=g)
    bins = equal_mass.equal_mass_bin_indices(continuous, n_bins=30)
    for j in range(2):
        assert torch.bincount(bins[:, j], minlength=30).tolist() == [100] * 30
        order = continuous[:, j].argsort()
        assert (bins[order, j].diff() >= 0).all()  # monotone in the value
    tied = torch.tensor([[0.0], [0.0], [0.0], [0.0], [0.0], [1.0], [2.0], [2.0], [3.0], [4.0]])
    b = equal_mass.equal_mass_bin_indices(tied, n_bins=5)[:, 0].tolist()
    # values strictly below: 0 -> 0, 1 -> 5, 2 -> 6, 3 -> 8, 4 -> 9; bin = ⌊m·5/10⌋
    assert b == [0, 0, 0, 0, 0, 2, 3, 3, 4, 4]


def test_equal_mass_binning_of_a_copied_discrete_input_gives_its_entropy():
    # X: 3 integer columns, each value with mass ≥ 1/30 of its column, so distinct values get distinct bins.
    g = torch.Generator().manual_seed(5)
    x = torch.multinomial(torch.tensor([0.4, 0.3, 0.2, 0.1]), 3 * 2000, replacement=True, generator=g)
    x = x.view(2000, 3)
    layer = 0.5 * x.double() - 1.0  # a layer that copies X
    rows = Counter(tuple(r) for r in x.tolist())
    y = x[:, 0].clone()  # the label IS the first unit
    i_xt, i_ty = equal_mass.equal_mass_binned_mi(layer, y, n_bins=30)
    assert i_xt == pytest.approx(entropy_of_counts(list(rows.values())), abs=1e-12)
    assert i_ty == pytest.approx(entropy_of_counts(torch.bincount(y).tolist()), abs=1e-12)
    independent = torch.randint(0, 2, (2000,), generator=g)
    assert equal_mass.equal_mass_binned_mi(layer[:, :1], independent, n_bins=30)[1] < 0.01
    assert all(math.isnan(v) for v in equal_mass.equal_mass_binned_mi(layer.clone().fill_(math.inf), y))


# --- B-splines -------------------------------------------------------------------------------------------


def test_bspline_weights_are_a_partition_of_unity_and_order_one_is_plain_binning():
    g = torch.Generator().manual_seed(6)
    v = torch.randn(1000, generator=g, dtype=torch.float64)
    for n_bins, order in ((10, 3), (10, 2), (7, 4), (5, 5)):
        w = bspline.bspline_weights(v, n_bins, order)
        assert w.shape == (1000, n_bins)
        assert (w >= 0).all() and torch.allclose(w.sum(1), torch.ones(1000, dtype=torch.float64), atol=1e-12)
        assert ((w > 0).sum(1) <= order).all()
    one_hot = bspline.bspline_weights(v, 10, 1)
    lo, hi = v.min(), v.max()
    index = ((v - lo) / (hi - lo) * 10).floor().clamp(max=9).long()  # 10 equal bins, the maximum in the last
    assert torch.equal(one_hot, torch.nn.functional.one_hot(index, 10).double())


def test_quadratic_bspline_weights_are_the_textbook_basis():
    # n_bins=10, order=3: z = v·8/8 for v in [0, 8]. Inside (interval m ≥ 2 from both ends) a point z = m + f has
    # weights ½(1−f)², ½ + f(1−f), ½f² on bins m, m+1, m+2; at the clamped ends B_0(z) = (1−z)² on [0, 1].
    v = torch.tensor([0.0, 0.25, 3.5, 4.2, 8.0], dtype=torch.float64)
    w = bspline.bspline_weights(v, 10, 3)
    assert w[0, 0] == 1 and w[4, 9] == 1
    assert w[1, :3].tolist() == pytest.approx([0.75**2, 2 * 0.25 - 1.5 * 0.25**2, 0.25**2 / 2], abs=1e-12)
    for row, m, f in ((2, 3, 0.5), (3, 4, 0.2)):
        assert w[row, m : m + 3].tolist() == pytest.approx([0.5 * (1 - f) ** 2, 0.5 + f * (1 - f), 0.5 * f**2])


def reference_bspline_mi(x, y, n_bins, order):
    """Daub et al. (2004) B-spline MI written from the paper in numpy, independently of the library: Cox–de Boor
    on the clamped uniform knots t_i = clip(i − k + 1, 0, M − k + 1), i = 0..M + k − 1, of z = (v − min)/(max −
    min)·(M − k + 1); the last knot interval is closed on the right."""
    span = n_bins - order + 1
    knots = np.clip(np.arange(n_bins + order) - order + 1, 0, span).astype(float)

    def basis(v):
        z = (v - v.min()) / (v.max() - v.min()) * span
        # order 1: indicators of [t_i, t_{i+1}); z = span belongs to the last non-empty interval
        b = np.array(
            [
                (knots[i] <= z) & ((z < knots[i + 1]) | ((z == span) & (knots[i + 1] == span) & (knots[i] < span)))
                for i in range(n_bins + order - 1)
            ],
            dtype=float,
        ).T
        for d in range(2, order + 1):
            cols = []
            for i in range(b.shape[1] - 1):
                left = (z - knots[i]) / (knots[i + d - 1] - knots[i]) if knots[i + d - 1] > knots[i] else 0 * z
                right = (knots[i + d] - z) / (knots[i + d] - knots[i + 1]) if knots[i + d] > knots[i + 1] else 0 * z
                cols.append(left * b[:, i] + right * b[:, i + 1])
            b = np.stack(cols, axis=1)
        return b

    wx, wy = basis(np.asarray(x, dtype=float)), basis(np.asarray(y, dtype=float))

    def h(p):
        p = p[p > 0]
        return -(p * np.log(p)).sum()

    joint = wx.T @ wy / len(x)
    return h(joint.sum(1)) + h(joint.sum(0)) - h(joint)


@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_bspline_mi_of_correlated_gaussians_equals_the_reference_and_underestimates_as_measured(rho):
    # The estimate is Daub's, recomputed independently (numpy, from the paper), to rounding; then what it does
    # to the known answer −½ ln(1−ρ²). Measured, N = 5000, seeds 0..5, as a fraction of it: M=10, k=3: 0.62..0.68
    # (ρ = 0.5) and 0.47..0.51 (ρ = 0.9): the smoothing over 3 of 10 bins costs far more than the 10–25 % once
    # guessed. M=30, k=3: 1.03..1.10 (ρ = 0.5, the small-sample bias now dominates) and 0.91..0.95 (ρ = 0.9).
    ratios = {0.5: (0.58, 0.72, 0.98, 1.15), 0.9: (0.43, 0.55, 0.88, 0.98)}[rho]
    x, y = gaussian_pair(rho, 5000, seed=0)
    for n_bins, order in ((10, 3), (30, 3), (7, 4), (10, 1)):
        expected = reference_bspline_mi(x.numpy(), y.numpy(), n_bins, order)
        assert bspline.bspline_mi(x, y, n_bins=n_bins, order=order) == pytest.approx(expected, abs=1e-10)
    assert ratios[0] < bspline.bspline_mi(x, y) / gaussian_mi(rho) < ratios[1]
    assert ratios[2] < bspline.bspline_mi(x, y, n_bins=30) / gaussian_mi(rho) < ratios[3]


def test_bspline_mi_of_independent_variables_is_about_zero():
    x, y = gaussian_pair(0.0, 5000, seed=7)
    assert 0 <= bspline.bspline_mi(x, y) < 0.005  # measured 0.0009..0.0015


def bspline_layer_dense(t, labels, n_bins, order):
    """The two-unit B-spline estimate written out densely: p(a, b) = mean of the outer products."""
    w1, w2 = (bspline.bspline_weights(t[:, j], n_bins, order) for j in range(2))
    n = t.shape[0]

    def h(p):
        return -torch.special.xlogy(p, p).sum().item()

    h_t = h(w1.T @ w2 / n)
    h_t_given_x = sum(h(w1[i]) + h(w2[i]) for i in range(n)) / n  # a product distribution's entropy adds
    h_t_given_y = 0.0
    for c in labels.unique():
        rows = labels == c
        h_t_given_y += rows.sum().item() / n * h(w1[rows].T @ w2[rows] / rows.sum())
    return h_t - h_t_given_x, h_t - h_t_given_y


def test_bspline_layer_mi_equals_the_dense_two_unit_computation_and_obeys_the_bounds():
    g = torch.Generator().manual_seed(8)
    labels = torch.randint(0, 3, (600,), generator=g)
    t = torch.tanh(labels[:, None].double() + 0.8 * torch.randn(600, 2, generator=g, dtype=torch.float64))
    before = t.clone()
    i_xt, i_ty = bspline.bspline_layer_mi(t, labels, n_bins=10, order=3)
    assert (i_xt, i_ty) == pytest.approx(bspline_layer_dense(t, labels, 10, 3), abs=1e-10)
    assert 0 < i_ty <= entropy_of_counts(torch.bincount(labels).tolist())
    assert i_ty < i_xt <= LN(600)
    assert torch.equal(t, before)
    # order 1: plain binning, a deterministic T: H(T|X) = 0, so I(X;T) = H(T)
    i_xt1, _ = bspline.bspline_layer_mi(t, labels, n_bins=10, order=1)
    assert i_xt1 == pytest.approx(bspline_layer_dense(t, labels, 10, 1)[0], abs=1e-10)


def test_bspline_layer_mi_of_labels_independent_of_the_layer_is_about_zero_and_wide_layers_are_refused():
    g = torch.Generator().manual_seed(9)
    t = torch.randn(3000, 3, generator=g)
    labels = torch.randint(0, 2, (3000,), generator=g)
    i_xt, i_ty = bspline.bspline_layer_mi(t, labels)
    assert abs(i_ty) < 0.02  # measured 0.011: the plug-in bias of a 1000-cell joint at N = 3000
    assert 0 < i_xt <= LN(3000)
    with pytest.raises(ConfigError, match=r"max_units=8.* 9 units"):
        bspline.bspline_layer_mi(torch.randn(50, 9), torch.zeros(50, dtype=torch.long))
    with pytest.raises(ConfigError, match="4 units"):
        bspline.bspline_layer_mi(t[:50].repeat(1, 2)[:, :4], labels[:50], max_units=3)
    assert all(math.isnan(v) for v in bspline.bspline_layer_mi(t.clone().fill_(math.nan), labels))


# --- distance correlation --------------------------------------------------------------------------------


def hand_dcor(x, y):
    """dCor of two lists of scalars (or of equal-length tuples: Euclidean distances) with the double-centring
    formula in plain loops."""
    n = len(x)

    def distance(u, v):
        return abs(u - v) if isinstance(u, float) else math.dist(u, v)

    def centred(v):
        a = [[distance(v[i], v[j]) for j in range(n)] for i in range(n)]
        row = [sum(a[i]) / n for i in range(n)]
        col = [sum(a[i][j] for i in range(n)) / n for j in range(n)]
        grand = sum(row) / n
        return [[a[i][j] - row[i] - col[j] + grand for j in range(n)] for i in range(n)]

    a, b = centred(x), centred(y)

    def mean_product(p, q):
        return sum(p[i][j] * q[i][j] for i in range(n) for j in range(n)) / n**2

    return math.sqrt(mean_product(a, b) / math.sqrt(mean_product(a, a) * mean_product(b, b)))


def test_distance_correlation_reproduces_the_hand_computed_value():
    x, y = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]
    expected = hand_dcor(x, y)
    assert 0.83 < expected < 0.84  # 0.8321: a guard that the reference itself is sensible
    assert dcor.distance_correlation(torch.tensor(x), torch.tensor(y)) == pytest.approx(expected, abs=1e-12)


def test_distance_correlation_is_one_for_similarities_and_about_zero_for_independent_samples():
    g = torch.Generator().manual_seed(10)
    x = torch.randn(500, generator=g, dtype=torch.float64)
    assert dcor.distance_correlation(x, 3 * x + 2) == pytest.approx(1.0, abs=1e-9)
    xs = torch.randn(500, 3, generator=g, dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))[0]
    before = xs.clone()
    assert dcor.distance_correlation(xs, xs @ rotation) == pytest.approx(1.0, abs=1e-9)
    assert torch.equal(xs, before)
    a, b = torch.randn(2000, 2, generator=g), torch.rand(2000, generator=g)
    # The V-statistic is biased up by O(N^-1/2): measured 0.045 here, 0.036..0.052 over 20 seeds at N = 2000
    # (0.026..0.065 for two scalars), so 0.05 would sit inside the sampling spread; 0.07 does not.
    assert 0 <= dcor.distance_correlation(a, b) < 0.07
    assert dcor.distance_correlation(a, b + 0.3 * a[:, 0]) > 0.2  # a dependence stands out
    assert dcor.distance_correlation(a, torch.zeros(2000)) == 0.0  # zero distance variance


def test_dcor_layer_is_dcor_of_inputs_and_layer_and_of_layer_and_one_hot_labels():
    g = torch.Generator().manual_seed(11)
    inputs = torch.randn(30, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (30,), generator=g)
    layer = torch.tanh(inputs @ torch.randn(5, 4, generator=g, dtype=torch.float64))
    d_xt, d_ty = dcor.dcor_layer(layer, labels, inputs)
    rows = lambda t: [tuple(r) for r in t.tolist()]  # noqa: E731
    one_hot = [tuple(1.0 if c == k else 0.0 for k in range(3)) for c in labels.tolist()]
    assert d_xt == pytest.approx(hand_dcor(rows(inputs), rows(layer)), abs=1e-12)
    assert d_ty == pytest.approx(hand_dcor(rows(layer), one_hot), abs=1e-12)
    assert 0.3 < d_ty < d_xt < 1  # T is a function of X, and Y is not: the two differ
    # exact answers: T = an orthogonal map of X gives dCor(X, T) = 1; T = the one-hot label gives dCor(T, Y) = 1
    rotation = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))[0]
    assert dcor.dcor_layer(inputs @ rotation, labels, inputs)[0] == pytest.approx(1.0, abs=1e-9)
    assert dcor.dcor_layer(torch.tensor(one_hot), labels, inputs)[1] == pytest.approx(1.0, abs=1e-9)


# --- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: darbellay_vajda.darbellay_vajda_mi(torch.randn(10), torch.randn(11)), "same number of samples"),
        (lambda: darbellay_vajda.darbellay_vajda_mi(torch.randn(10, 2), torch.randn(10)), r"x must be \(N,\)"),
        (lambda: darbellay_vajda.darbellay_vajda_mi(torch.randn(10), torch.randn(10), alpha=1.5), "alpha"),
        (lambda: darbellay_vajda.darbellay_vajda_mi(torch.randn(10), torch.randn(10), min_count=1), "min_count"),
        (lambda: bspline.bspline_mi(torch.randn(10), torch.randn(9)), "same number of samples"),
        (lambda: bspline.bspline_mi(torch.randn(10), torch.randn(10), n_bins=2, order=3), "n_bins must be"),
        (lambda: bspline.bspline_weights(torch.randn(10), n_bins=5, order=0), "order must be"),
        (lambda: bspline.bspline_layer_mi(torch.randn(10), torch.zeros(10)), "activations must be"),
        (lambda: bspline.bspline_layer_mi(torch.randn(10, 2), torch.zeros(9)), "labels must have shape"),
        (lambda: equal_mass.equal_mass_binned_mi(torch.randn(10, 2), torch.zeros(10), n_bins=0), "n_bins"),
        (lambda: dcor.distance_correlation(torch.randn(10, 2), torch.randn(8)), "same number of samples"),
        (lambda: dcor.dcor_layer(torch.randn(10, 2), torch.zeros(10), torch.randn(9, 3)), "inputs must have"),
    ],
)
def test_bad_input_raises_a_one_line_config_error(call, message):
    with pytest.raises(ConfigError, match=message) as info:
        call()
    assert "\n" not in str(info.value)

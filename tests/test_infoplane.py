"""Information-plane estimators against known answers, and the physics on a real network (MNIST-t10k)."""

import math

import pyarrow as pa
import pytest
import torch

from infoflow_ray import estimators, training
from infoflow_ray.config import NetworkSpec
from infoflow_ray.data import load_dataset
from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators import binning, bspline, dcor, equal_mass, kde, ksg
from infoflow_ray.model import TanhNetwork
from infoflow_ray.store import TABLES
from infoflow_ray.sweep import task_runner

LN = math.log


def gaussian_pair(rho, n, seed, dims=1):
    """x ~ N(0, I) and y = ρ·x + √(1−ρ²)·noise, (n, dims) each: I(X;Y) = −(dims/2)·ln(1−ρ²)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dims, generator=g, dtype=torch.float64)
    return x, rho * x + math.sqrt(1 - rho**2) * torch.randn(n, dims, generator=g, dtype=torch.float64)


def flat(pairs):
    return [v for pair in pairs for v in pair]


def entropy_of_counts(counts):
    n = sum(counts)
    return -sum(c / n * LN(c / n) for c in counts)


# --- KSG and Ross ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.75, 0.9, 0.99])
def test_ksg_recovers_the_mutual_information_of_correlated_gaussians(rho):
    estimates = [ksg.ksg_mi(*gaussian_pair(rho, 2000, seed), k=3) for seed in (0, 1)]
    assert sum(estimates) / 2 == pytest.approx(-0.5 * LN(1 - rho**2), rel=0.05)


def test_ksg_in_several_dimensions_adds_independent_pairs():
    x, y = gaussian_pair(0.8, 2000, seed=3, dims=2)
    assert ksg.ksg_mi(x, y, k=3) == pytest.approx(-LN(1 - 0.8**2), rel=0.05)


def test_ksg_of_independent_variables_is_about_zero():
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(2000, 3, generator=g), torch.rand(2000, 2, generator=g)
    assert abs(ksg.ksg_mi(x, y, k=3)) < 0.05


def test_ross_recovers_the_information_a_gaussian_mixture_carries_about_its_component():
    # T | Y=±1 ~ N(±2, 1), Y equiprobable: I(T;Y) = H(T) − H(T|Y) with H(T) by quadrature.
    g = torch.Generator().manual_seed(5)
    y = torch.randint(0, 2, (3000,), generator=g)
    t = (2.0 * y - 1) * 2.0 + torch.randn(3000, generator=g, dtype=torch.float64)
    grid = torch.linspace(-14, 14, 100_001, dtype=torch.float64)
    p = 0.5 * (torch.exp(-((grid - 2) ** 2) / 2) + torch.exp(-((grid + 2) ** 2) / 2)) / math.sqrt(2 * math.pi)
    truth = (-(p * p.log()).sum() * (grid[1] - grid[0])).item() - 0.5 * LN(2 * math.pi * math.e)
    assert ksg.ross_mi(t, y, k=3) == pytest.approx(truth, abs=0.03)
    assert abs(ksg.ross_mi(torch.randn(3000, 2, generator=g), y, k=3)) < 0.05


def test_ksg_and_ross_on_four_points_reproduce_the_hand_computed_digammas():
    # ψ(1) = −γ, ψ(n+1) = ψ(n) + 1/n. KSG, y = x on a grid, k=1: ε_i = 1, n_x = n_y = 0 -> ψ(4) − ψ(1).
    x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert ksg.ksg_mi(x, x.clone(), k=1) == pytest.approx(1 + 1 / 2 + 1 / 3, abs=1e-12)
    # Ross, labels alternating, k=1: d_i = 2 for all, m = 2, 3, 3, 2 (self included), N_y = 2:
    # ψ(4) − ψ(2) + ψ(1) − (ψ(2) + ψ(3))/2 = 11/6 − 1 − 0 − (1 + 3/2)/2 = −5/12
    assert ksg.ross_mi(x, torch.tensor([0, 1, 0, 1]), k=1) == pytest.approx(-5 / 12, abs=1e-12)
    # separated pairs: d_i = 1, m = 1, -> ψ(4) − ψ(2) = 1/2 + 1/3
    assert ksg.ross_mi(torch.tensor([0.0, 1.0, 10.0, 11.0]), torch.tensor([0, 0, 1, 1]), k=1) == pytest.approx(
        5 / 6, abs=1e-12
    )


def test_ksg_layer_mi_pairs_ksg_for_inputs_with_ross_for_labels():
    x, t = gaussian_pair(0.9, 500, seed=6)
    y = (t[:, 0] > 0).long()
    assert ksg.ksg_layer_mi(t, x, y, k=3) == (ksg.ksg_mi(x, t, 3), ksg.ross_mi(t, y, 3))
    assert estimators.layer_mi([t], y, "ksg", inputs=x, k=3) == [ksg.ksg_layer_mi(t, x, y, 3)]
    with pytest.raises(ConfigError, match="inputs"):
        estimators.layer_mi([t], y, "ksg")


# --- binning ---------------------------------------------------------------------------------------------


def test_binning_of_a_deterministic_discrete_map_gives_the_entropies():
    # X: 8 equiprobable states (100 copies each), T: its 3-bit code as ±1 in three neurons, Y = X mod 3.
    x = torch.arange(8).repeat(100)
    bits = torch.stack([(x >> b) & 1 for b in range(3)], dim=1)
    t, y = 2.0 * bits - 1, x % 3
    h_y = entropy_of_counts([3, 3, 2])
    for x_ids in (None, x):  # X as the sample identity (800 inputs), or as the 8 input patterns
        i_xt, i_ty = binning.binned_mi(t, y, n_bins=30, x_ids=x_ids)
        assert i_xt == pytest.approx(LN(8), abs=1e-12)  # H(T) = H(X) = ln 8: T is invertible
        assert i_ty == pytest.approx(h_y, abs=1e-12)  # Y is a function of T
    # keeping two of the three bits merges X's states in pairs: I(X;T) = ln 4
    assert binning.binned_mi(t[:, :2], y, n_bins=2, x_ids=x)[0] == pytest.approx(LN(4), abs=1e-12)


def test_binning_of_a_tiny_network_reproduces_the_hand_computed_value():
    # Two tanh neurons T = tanh(W x + b) on six inputs, binned into 2 bins over (-1, 1), i.e. by sign.
    x = torch.tensor([[-2.0], [-1.0], [-0.5], [0.4], [1.0], [2.0]])
    w, b = torch.tensor([[1.0], [2.0]]), torch.tensor([0.0, -1.0])
    t = torch.tanh(x @ w.T + b)  # signs: (-,-) ×3, (+,-) at x=0.4, (+,+) ×2
    y = torch.tensor([0, 0, 1, 1, 1, 1])
    h_t = 0.5 * LN(2) + LN(6) / 6 + LN(3) / 3  # p = 3/6, 1/6, 2/6
    h_t_given_y = 4 / 6 * 1.5 * LN(2)  # Y=0: one state; Y=1: states 1/4, 1/4, 1/2
    i_xt, i_ty = binning.binned_mi(t, y, n_bins=2, range=(-1.0, 1.0))
    assert i_xt == pytest.approx(h_t, abs=1e-12)
    assert i_ty == pytest.approx(h_t - h_t_given_y, abs=1e-12)
    assert estimators.layer_mi([t, t[:, :1]], y, "binning", n_bins=2, range=(-1.0, 1.0)) == [
        (i_xt, i_ty),
        pytest.approx((LN(2), LN(2) - 4 / 6 * entropy_of_counts([1, 3])), abs=1e-12),
    ]


def test_binning_of_independent_variables_is_about_zero_and_inputs_are_untouched():
    g = torch.Generator().manual_seed(7)
    t, y = torch.rand(5000, 1, generator=g), torch.randint(0, 2, (5000,), generator=g)
    before = t.clone()
    i_xt, i_ty = binning.binned_mi(t, y, n_bins=10)
    assert abs(i_ty) < 0.05
    assert i_xt == pytest.approx(LN(10), abs=0.01)  # ten nearly equally filled bins
    assert torch.equal(t, before)


def test_binning_uses_the_layers_own_range_by_default_and_flags_non_finite_values():
    t = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert binning.binned_mi(t, y, n_bins=2) == pytest.approx((LN(2), LN(2)))  # bins [0,1.5), [1.5,3]
    assert binning.binned_mi(t, y, n_bins=2, range=(-10.0, 10.0))[0] == pytest.approx(0.0)
    assert all(math.isnan(v) for v in binning.binned_mi(t.clone().fill_(math.nan), y))


# --- KDE bound -------------------------------------------------------------------------------------------


def mixture_mi(h, noise_var):
    """I(X; h_X + ε) of an equal-weight 1-D Gaussian mixture, by quadrature: H(T) − ½ ln(2πe σ²)."""
    s = math.sqrt(noise_var)
    grid = torch.linspace(h.min() - 10 * s - 1, h.max() + 10 * s + 1, 20_001, dtype=torch.float64)
    log_p = (
        torch.logsumexp(-((grid[:, None] - h[None, :, 0]) ** 2) / (2 * noise_var), dim=1)
        - LN(len(h))
        - 0.5 * LN(2 * math.pi * noise_var)
    )
    return (-(log_p.exp() * log_p).sum() * (grid[1] - grid[0])).item() - 0.5 * LN(2 * math.pi * math.e * noise_var)


def test_kde_bounds_bracket_the_true_information_and_vanish_with_noise():
    h = torch.randn(300, 1, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    y = (h[:, 0] > 0).long()
    for noise_var in (1e-2, 1e-1, 1.0):
        truth = mixture_mi(h, noise_var)
        upper = kde.kde_mi(h, y, noise_var)[0]
        lower = kde.kde_mi(h, y, noise_var, bound="lower")[0]
        assert lower < truth < upper < LN(300)
    uppers = [kde.kde_mi(h, y, v, chunk_size=64)[0] for v in (1.0, 1e2, 1e4)]
    assert uppers[0] > uppers[1] > uppers[2] and uppers[2] < 1e-3


def test_kde_of_two_points_is_the_hand_computed_bound():
    # h = 0 and 1, σ² = 1/2: upper K_01 = exp(−1/(2σ²)) = e^−1, lower exp(−1/(8σ²)) = e^−1/4; I = −ln((1 + K)/2)
    h, y = torch.tensor([[0.0], [1.0]]), torch.tensor([0, 1])
    assert kde.kde_mi(h, y, noise_var=0.5) == pytest.approx((LN(2 / (1 + math.exp(-1))),) * 2, abs=1e-12)
    assert kde.kde_mi(h, y, 0.5, "lower")[0] == pytest.approx(LN(2 / (1 + math.exp(-0.25))), abs=1e-12)


def test_kde_of_well_separated_labelled_clusters_gives_the_label_entropy():
    g = torch.Generator().manual_seed(9)
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    h = 10.0 * y[:, None].double() + 0.1 * torch.randn(100, 2, generator=g, dtype=torch.float64)
    i_xt, i_ty = kde.kde_mi(h, y, noise_var=1e-1, chunk_size=32)
    assert i_ty == pytest.approx(entropy_of_counts([50, 30, 20]), abs=1e-9)
    assert entropy_of_counts([50, 30, 20]) < i_xt < LN(100)


# --- the extended estimator, stopping, rows --------------------------------------------------------------


def test_extended_estimator_of_one_network_equals_the_single_network_estimator():
    g = torch.Generator().manual_seed(10)
    layers = [torch.tanh(torch.randn(200, 5, generator=g)), torch.tanh(torch.randn(200, 3, generator=g))]
    y = torch.randint(0, 4, (200,), generator=g)
    single = flat(estimators.layer_mi(layers, y, "binning", n_bins=4))
    for assignment in ("random", "pooled"):
        for family in ([layers], [layers, layers]):  # identical copies of one network are one network
            got = binning.extended_binned_mi(family, y, n_bins=4, assignment=assignment)
            assert flat(got) == pytest.approx(single, abs=1e-12)


def test_pooled_extended_estimator_counts_disagreeing_networks_as_noise():
    # Network A sends 4 inputs to 4 different bins, network B sends all to a fifth: p(t|x) = ½, ½.
    a = torch.tensor([[-0.9], [-0.5], [-0.1], [0.3]])
    b = torch.full((4, 1), 0.9)
    y = torch.tensor([0, 0, 1, 1])
    [(i_xt, i_ty)] = binning.extended_binned_mi([[a], [b]], y, n_bins=5, range=(-1.0, 1.0), assignment="pooled")
    assert i_xt == pytest.approx(LN(2), abs=1e-12)  # H(T) = 2 ln 2, H(T|X) = ln 2
    assert i_ty == pytest.approx(2 * LN(2) - 1.5 * LN(2), abs=1e-12)  # H(T|Y=y) = 1.5 ln 2
    [(random_xt, _)] = binning.extended_binned_mi([[a], [b]], y, n_bins=5, range=(-1.0, 1.0), seed=1)
    assert 0 <= random_xt <= LN(4)


def test_mi_stopping_waits_for_patience_evaluations_without_improvement():
    assert not training.mi_stopping([0.1, 0.2, 0.3, 0.4], patience=3)
    assert not training.mi_stopping([0.5, 0.5, 0.5], patience=3)  # too short to judge
    assert training.mi_stopping([0.1, 0.5, 0.5, 0.5004, 0.4], patience=3, min_delta=1e-3)
    assert not training.mi_stopping([0.1, 0.5, 0.5, 0.5004, 0.52], patience=3, min_delta=1e-3)
    assert training.mi_stopping([0.1, 0.5, 0.49, math.nan], patience=2)
    assert training.mi_stopping([0.2, 0.1], patience=1)
    assert not training.mi_stopping([math.nan, math.nan], patience=2)


def test_rows_have_the_info_plane_schema():
    keys = dict(task_id="abc", dataset="mnist_t10k", profile="wide", sigma_w2=1.5, sigma_b2=0.05, depth=3, seed=0)
    rows = task_runner.info_plane_rows(
        keys, [(2.0, 1.0), (1.5, 0.5)], "binning", None, 0.25, {"n_bins": 30}, n_samples=100
    )
    rows += task_runner.info_plane_rows(
        keys, [(1.0, 0.9)], "kde", 4, 0.5, {"noise_var": 0.1, "bound": "upper"}, n_samples=100
    )
    rows += task_runner.info_plane_rows(keys, [(0.5, 0.25)], "binning", None, 0.1, {}, n_samples=100, step=7)
    table = pa.Table.from_pylist(rows, schema=TABLES["info_plane"])
    assert table.schema.names == list(rows[0]) and table.num_rows == 4
    assert table.column("layer").to_pylist() == [1, 2, 1, 1]
    assert table.column("stage").to_pylist() == ["untrained", "untrained", "training", "training"]
    assert table.column("epoch").to_pylist() == [0, 0, 4, None]  # SGD steps are not epochs
    assert table.column("step").to_pylist() == [None, None, None, 7]
    assert table.column("param").to_pylist() == ["n_bins=30", "n_bins=30", "bound=upper;noise_var=0.1", ""]
    with pytest.raises(ConfigError, match="not both"):
        task_runner.info_plane_rows(keys, [(1.0, 1.0)], "kde", 3, 0.1, {}, n_samples=1, step=3)
    with pytest.raises(ConfigError, match="seed"):
        task_runner.info_plane_rows(
            {k: v for k, v in keys.items() if k != "seed"}, [(1.0, 1.0)], "kde", None, 0.1, {}, n_samples=1
        )


# --- physics on MNIST-t10k -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_test():
    data = load_dataset("mnist_t10k")
    return data.test_x[:1000], data.test_y[:1000]


def binned_ixt(sigma_w2, images, labels):
    layers = TanhNetwork(NetworkSpec(sigma_w2=sigma_w2, depth=20), seed=0).activations(images)[1:]
    return [i_xt for i_xt, _ in estimators.layer_mi(layers, labels, "binning", n_bins=30)]


def test_ordered_networks_lose_the_input_with_depth_and_critical_ones_keep_it(mnist_test):
    images, labels = mnist_test
    log_n = LN(len(images))
    ordered, critical = binned_ixt(0.5, images, labels), binned_ixt(1.76, images, labels)
    for curve in (ordered, critical):
        assert all(0 <= v <= log_n + 1e-9 for v in curve)
    assert ordered[0] == pytest.approx(log_n, abs=0.01)  # every image its own binned state in layer 1
    assert ordered[-1] < 0.1 * ordered[0]  # all inputs collapse onto one point
    assert ordered[17] < 0.75 * log_n  # already in the last 784-wide layer, not only in the 10-wide output
    assert min(critical[15:]) > 0.95 * log_n  # at the edge of chaos the deep layers still tell images apart


# --- seed 003's and 004's estimators through the per-layer front end and the grid ---------------------------


def test_layer_mi_runs_the_new_estimators_as_their_modules_do():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g, dtype=torch.float64)
    layers = [torch.tanh(x[:, :4]), torch.tanh(x[:, :2] @ torch.randn(2, 3, generator=g, dtype=torch.float64))]
    y = (x[:, 0] > 0).long()
    assert estimators.layer_mi(layers, y, "adaptive", n_bins=5) == [
        equal_mass.equal_mass_binned_mi(a, y, n_bins=5) for a in layers
    ]
    assert estimators.layer_mi(layers, y, "bspline", n_bins=6) == [
        bspline.bspline_layer_mi(a, y, n_bins=6) for a in layers
    ]
    assert estimators.layer_mi(layers, y, "dcor", inputs=x) == [dcor.dcor_layer(a, y, x) for a in layers]
    with pytest.raises(ConfigError, match="estimator 'dcor' needs inputs=X"):
        estimators.layer_mi(layers, y, "dcor")


def test_the_grid_takes_the_new_estimators_and_refuses_bspline_on_wide_layers():
    from infoflow_ray.sweep.grid import resolve_grid

    for estimator in ("adaptive", "dcor", "density"):
        grid = resolve_grid("tiny", overrides={"info_plane": {"enabled": True, "estimator": estimator}})
        assert all(t.info_plane.estimator == estimator for t in grid.tasks())
    with pytest.raises(ConfigError, match="info_plane.estimator must be an estimator for layers of at most 8 units"):
        resolve_grid("tiny", overrides={"info_plane": {"enabled": True, "estimator": "bspline"}})

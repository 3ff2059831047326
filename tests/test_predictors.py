"""Trainability predictors (infoflow_ray.predictors) on cases with known answers; no Ray."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from infoflow_ray import families, predictors, theory
from infoflow_ray.config import NetworkSpec
from infoflow_ray.errors import ConfigError
from infoflow_ray.predictors import mean_field, ntk, signal, zero_cost


def _mlp(sigma_w2: float, widths: tuple[int, ...], sigma_b2: float = 0.05, seed: int = 0):
    spec = NetworkSpec(
        sigma_w2=sigma_w2,
        depth=len(widths) - 1,
        sigma_b2=sigma_b2,
        widths=widths,
        n_inputs=widths[0],
        n_outputs=widths[-1],
    )
    return spec, families.build(spec, seed)


@pytest.mark.parametrize("sigma_w2", [0.5, 1.2, 1.76, 3.0])
def test_mean_field_predictors_are_theory_closed_forms(sigma_w2):
    spec, net = _mlp(sigma_w2, (8, 8, 8, 4))
    x, y = torch.zeros(2, 8), torch.zeros(2, dtype=torch.int64)
    six = predictors.run("mean_field_6xi", net, spec, x, y)
    xi_c = float(theory.xi_c(sigma_w2, 0.05))
    assert six.score == pytest.approx(xi_c, rel=1e-12) and six.predicted_depth == pytest.approx(6 * xi_c, rel=1e-12)
    grad = predictors.run("mean_field_grad", net, spec, x, y, factor=2.0)
    chi1 = float(theory.chi_1(sigma_w2, 0.05))
    assert grad.score == pytest.approx(1 / abs(math.log(chi1)), rel=1e-12)
    assert grad.predicted_depth == pytest.approx(2 / abs(math.log(chi1)), rel=1e-12)
    xiao = predictors.run("xiao2020", net, spec, x, y)
    if chi1 < 1:  # ordered: ξ_1 = −1/ln χ1, equal to ξ_c there (χ_c* = χ1)
        assert xiao.score == pytest.approx(-1 / math.log(chi1), rel=1e-12)
        assert xiao.score == pytest.approx(xi_c, rel=1e-6)
    else:  # chaotic: ξ_* = −1/(ln χ_c* − ln χ1), shorter than ξ_c there
        chic = float(theory.chi_c(sigma_w2, 0.05))
        assert xiao.score == pytest.approx(-1 / (math.log(chic) - math.log(chi1)), rel=1e-12)
        assert xiao.score < xi_c
    assert six.higher_is_better and grad.higher_is_better and xiao.higher_is_better


def test_xiao_scales_are_infinite_on_the_other_side():
    ordered, chaotic = mean_field.xiao_scales(0.8, 0.05)
    assert math.isfinite(ordered) and chaotic == math.inf
    ordered, chaotic = mean_field.xiao_scales(3.0, 0.05)
    assert ordered == math.inf and math.isfinite(chaotic)


@pytest.mark.parametrize("sigma_w2", [0.8, 1.5, 2.5])
def test_apjn_of_a_wide_mlp_is_mean_field_chi1_per_layer(sigma_w2):
    # Inputs with per-unit variance s² such that σw² s² + σb² = q*: every layer's pre-activations start at q*
    q = float(theory.q_star(sigma_w2, 0.05))
    width = 512
    spec, net = _mlp(sigma_w2, (width,) * 13 + (10,))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, width, generator=g) * math.sqrt((q - 0.05) / sigma_w2)
    chi_hat = signal.chi_per_layer(net, spec, x, early=1, late=12)
    chi1 = float(theory.chi_1(sigma_w2, 0.05))
    assert chi_hat == pytest.approx(chi1, rel=0.03)
    result = predictors.run("apjn", net, spec, x, torch.zeros(32, dtype=torch.int64), early=1, late=12)
    assert result.score == pytest.approx(1 / abs(math.log(chi_hat)), rel=1e-6)
    assert result.predicted_depth == pytest.approx(6 * result.score)


@pytest.mark.parametrize("architecture", ["resmlp", "cnn", "resnet"])
def test_apjn_runs_on_every_family(architecture):
    spec = NetworkSpec(sigma_w2=1.5, depth=6, n_inputs=64, architecture=architecture, channels=4, widths="wide")
    net = families.build(spec, 0)
    x = torch.rand(8, 64, generator=torch.Generator().manual_seed(0))
    result = predictors.run("apjn", net, spec, x, torch.zeros(8, dtype=torch.int64), probes=2)
    assert math.isfinite(result.score) and result.score > 0
    if architecture == "cnn":  # the stem's 3 layers come first: the default early layer is 3
        assert signal.layer_range(spec, None, None) == (3, 5)


def test_ntk_condition_of_a_linear_layer_is_that_of_the_gram_matrix():
    # f(x) = W x + b: ∂Σ_k f_k/∂W = 1 ⊗ x, so Θ = n_out · X Xᵀ and κ = (s_max / s_min)² of X
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 9, generator=g, dtype=torch.float64)
    net = nn.Linear(9, 3)
    theta = ntk.ntk_gram(net, x)
    torch.testing.assert_close(theta, 3 * x @ x.T)
    s = torch.linalg.svdvals(x)
    assert ntk.condition_number(theta) == pytest.approx(float((s[0] / s[-1]) ** 2), rel=1e-9)


def test_ntk_of_a_two_layer_linear_network_matches_its_closed_form():
    # f = W2 (W1 x + b1) + b2: Θ = ‖W2ᵀ1‖² X Xᵀ + n_out · H Hᵀ with H = X W1ᵀ + b1 (weights only, biases not)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 5, generator=g, dtype=torch.float64)  # 4 images of 5 pixels: Θ has full rank
    net = nn.Sequential(nn.Linear(5, 7), nn.Linear(7, 3)).double()
    w1, b1, w2 = net[0].weight.detach(), net[0].bias.detach(), net[1].weight.detach()
    h = x @ w1.T + b1
    expected = (w2.T @ torch.ones(3, dtype=torch.float64)).square().sum() * x @ x.T + 3 * h @ h.T
    torch.testing.assert_close(ntk.ntk_gram(net, x), expected)
    result = predictors.run("ntk_condition", net, None, x.float(), None)
    eig = torch.linalg.eigvalsh(expected)
    assert result.score == pytest.approx(float(eig[-1] / eig[0]), rel=1e-4)
    assert not result.higher_is_better and result.predicted_depth is None


def test_ntk_gram_of_a_cnn_matches_per_image_autograd():
    spec = NetworkSpec(sigma_w2=1.5, depth=5, n_inputs=64, architecture="resnet", channels=2)
    net = families.build(spec, 0).double()
    x = torch.rand(4, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    weights = [p for p in net.parameters() if p.dim() > 1]
    rows = []
    for i in range(4):  # the reference's way: one backward pass per image
        grads = torch.autograd.grad(net.forward(x[i : i + 1]).sum(), weights)
        rows.append(torch.cat([gr.flatten() for gr in grads]))
    g = torch.stack(rows)
    torch.testing.assert_close(ntk.ntk_gram(net, x), g @ g.T)


def test_naswot_kernel_counts_agreements_on_hand_made_patterns():
    c1 = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 1]])
    c2 = torch.tensor([[1, 1], [0, 1], [1, 1]])
    k = zero_cost.naswot_kernel([c1, c2])
    # agreements: images 0,1 agree on unit 0 of c1 and unit 1 of c2 → 2; 0,2: units 1,2 of c1 + both of c2 → 4;
    # 1,2: unit 1 of c1... (1 vs 0) no, unit 0 (1 vs 0) no, unit 2 (0 vs 1) no, + unit 1 of c2 → 1
    expected = torch.tensor([[5, 2, 4], [2, 5, 1], [4, 1, 5]], dtype=torch.float64)
    torch.testing.assert_close(k, expected)
    assert zero_cost.log_det(k) == pytest.approx(math.log(float(torch.linalg.det(expected))))
    assert zero_cost.log_det(torch.ones(2, 2, dtype=torch.float64)) == -math.inf  # identical patterns


def test_naswot_uses_tanh_sign_patterns_of_the_hidden_layers():
    spec, net = _mlp(1.5, (6, 5, 5, 3))
    x = torch.rand(4, 6, generator=torch.Generator().manual_seed(0))
    acts = net.activations(x)
    expected = zero_cost.naswot_kernel([acts[1] > 0, acts[2] > 0])
    result = predictors.run("naswot", net, spec, x, None)
    assert result.score == pytest.approx(zero_cost.log_det(expected))


def test_gradnorm_matches_gradients_taken_by_hand():
    spec, net = _mlp(1.5, (6, 5, 4))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(7, 6, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1, 2])
    net = net.double()
    w1, b1 = net.layers[0].weight.detach(), net.layers[0].bias.detach()
    w2, b2 = net.layers[1].weight.detach(), net.layers[1].bias.detach()
    a1 = torch.tanh(x @ w1.T + b1)
    f = torch.tanh(a1 @ w2.T + b2)
    d_f = (torch.softmax(f, 1) - nn.functional.one_hot(y, 4)) / 7  # ∂(mean CE)/∂f
    d_z2 = d_f * (1 - f**2)
    d_z1 = (d_z2 @ w2) * (1 - a1**2)
    expected = float((d_z1.T @ x).norm() + (d_z2.T @ a1).norm())
    result = predictors.run("gradnorm", net, spec, x, y)
    assert result.score == pytest.approx(expected, rel=1e-10)


def test_zico_score_on_hand_made_gradients():
    # two batches; layer A: θ0 gradients 1, 3 (mean|g| 2, std 1) and θ1 gradients 3, 3 (std 0: left out) → ln 2;
    # layer B: θ0 −2, 2 (mean|g| 2, std 2) and θ1 1, 3 (2, 1) → ln(1 + 2)
    per_batch = [
        [torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 1.0])],
        [torch.tensor([3.0, 3.0]), torch.tensor([2.0, 3.0])],
    ]
    assert zero_cost.zico_score(per_batch) == pytest.approx(math.log(2) + math.log(3))


def test_zico_runs_on_a_network():
    spec, net = _mlp(1.5, (6, 5, 5, 3))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
    result = predictors.run("zico", net, spec, x, y, batch=8)
    assert math.isfinite(result.score) and result.settings == {"batch": 8, "splits": 2}


def test_bad_predictor_name_or_setting_fails_in_one_line():
    with pytest.raises(ConfigError, match=r"unknown predictor 'nope'; choose one of .*apjn.*ntk_condition") as e:
        predictors.get("nope")
    assert "\n" not in str(e.value)
    spec, net = _mlp(1.5, (6, 5, 5, 3))
    with pytest.raises(ConfigError, match=r"predictor 'apjn' has no setting 'probez'; its settings: batch, probes"):
        predictors.run("apjn", net, spec, torch.rand(4, 6), None, probez=3)
    with pytest.raises(ConfigError, match=r"apjn needs layers 0 <= early < late <= depth=3, got early=2, late=2"):
        predictors.run("apjn", net, spec, torch.rand(4, 6), None, early=2, late=2)
    with pytest.raises(ConfigError, match="read from the cutoffs table"):
        predictors.run("kl_per_image", net, spec, torch.rand(4, 6), None)


def test_registry_lists_every_predictor_with_its_direction():
    assert set(predictors.names("cascade")) == {"kl_per_image", "kl_mean", "diff_entropy"}
    assert set(predictors.names("closed_form")) == {"mean_field_6xi", "mean_field_grad", "xiao2020"}
    assert set(predictors.names("network")) == {"apjn", "ntk_condition", "naswot", "gradnorm", "zico"}
    lower = [n for n in predictors.names() if not predictors.get(n).higher_is_better]
    assert lower == ["ntk_condition"]
    assert np.all([predictors.get(n).gives_depth for n in ("apjn", "mean_field_6xi", "kl_mean")])


def test_spearman_and_auroc_on_hand_made_values():
    from infoflow_ray.analysis.leaderboard import auroc, spearman

    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, math.inf], [1, 2, 3, 4]) == pytest.approx(1.0)  # an infinite depth ranks last
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)  # scipy's value with a tie
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1, 2], [1, 2]))
    assert auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)  # sklearn's example
    assert auroc([1, 1, 1, 1], [True, False, True, False]) == pytest.approx(0.5)  # ties count ½
    assert math.isnan(auroc([1, 2], [True, True]))


def test_leaderboard_on_a_hand_made_frame():
    import polars as pl

    from infoflow_ray.analysis.leaderboard import leaderboard

    key = dict(dataset="digits", profile="wide", sigma_b2=0.05)
    sigma = [0.5, 1.0, 1.5, 2.0]
    # truth: ℓ_train 3, 6, 9, 6 (trained at depths 3, 6, 9; reached below the line)
    truth = {0.5: 3, 1.0: 6, 1.5: 9, 2.0: 6}
    cells = pl.DataFrame(
        [{**key, "sigma_w2": s, "depth": d, "seed": 0, "reached": d <= truth[s]} for s in sigma for d in (3, 6, 9)]
    )
    rows = []
    for s in sigma:  # 'good' predicts the truth + 1 layer; 'bad' (lower = better) the reverse order; at depth 9
        for name, score, depth, higher in (
            ("good", truth[s] + 1.0, truth[s] + 1.0, True),
            ("bad", float(truth[s]), math.nan, False),
        ):
            rows.append(
                {
                    **key,
                    "sigma_w2": s,
                    "depth": 9,
                    "seed": 0,
                    "predictor": name,
                    "kind": "network",
                    "score": score,
                    "predicted_depth": depth,
                    "higher_is_better": higher,
                    "seconds": 2.0 if name == "good" else 0.5,
                }
            )
    board = leaderboard(pl.DataFrame(rows), cells)
    good = board.filter(predictor="good").row(0, named=True)
    bad = board.filter(predictor="bad").row(0, named=True)
    assert good["spearman"] == pytest.approx(1.0) and good["auroc"] == pytest.approx(1.0)
    assert good["seconds_per_network"] == 2.0 and good["n_sigma_w2"] == 4 and good["n_cells"] == 12
    assert bad["spearman"] == pytest.approx(-1.0)  # the lower-is-better score is flipped: it ranks backwards
    assert board["predictor"].to_list() == ["good", "bad"]  # best Spearman first


def test_a_constant_truth_leaves_spearman_undefined_and_the_cost_figure_still_draws():
    """Where ℓ_train is the same at every σw² (the digits ResNet of predictors-conv: 8 everywhere) Spearman is
    NaN for every predictor; the cost figure draws the AUROC panel and says so instead of failing."""
    import polars as pl

    from infoflow_ray import plots
    from infoflow_ray.analysis.leaderboard import leaderboard

    key = dict(dataset="digits", profile="resnet-c16", sigma_b2=0.05)
    cells = pl.DataFrame(
        [{**key, "sigma_w2": s, "depth": d, "seed": 0, "reached": d == 8} for s in (0.5, 1.0, 2.0) for d in (8, 16)]
    )
    rows = [
        {**key, "sigma_w2": s, "depth": 16, "seed": 0, "predictor": "p", "kind": "network", "score": s,
         "predicted_depth": 10.0, "higher_is_better": True, "seconds": 0.1}
        for s in (0.5, 1.0, 2.0)
    ]  # fmt: skip
    board = leaderboard(pl.DataFrame(rows), cells)
    row = board.row(0, named=True)
    assert math.isnan(row["spearman"]) and row["auroc"] == pytest.approx(1.0)  # 10 − 8 > 0 > 10 − 16
    fig = plots.predictor_cost(board, **key)
    assert "spearman undefined for every predictor" in [t.get_text() for t in fig.axes[0].texts]
    assert len(fig.axes[1].collections) == 1  # the AUROC point is drawn
    fig.savefig(io.BytesIO(), format="png")  # rendering a log axis with no finite point raised ValueError


def test_leaderboard_reads_predictor_rows_cutoffs_and_trainings_from_a_results_folder(tmp_path):
    from datetime import UTC, datetime

    from infoflow_ray.analysis import leaderboard
    from infoflow_ray.store import ResultStore
    from infoflow_ray.sweep.task_runner import run_record

    store = ResultStore.open(str(tmp_path / "results"))
    now = datetime.now(UTC)
    truth = {0.5: 4, 1.0: 8, 1.76: 12, 3.0: 8}  # ℓ_train of each σw² over depths 4, 8, 12

    def write(kind: str, sigma: float, depth: int, seconds: float, tables: dict) -> None:
        keys = dict(
            task_id=f"{kind}-{sigma}-{depth}",
            dataset="digits",
            profile="wide",
            sigma_w2=sigma,
            sigma_b2=0.05,
            depth=depth,
            seed=0,
        )
        run = run_record(
            keys,
            kind,
            {"k": kind},
            grid_name="g",
            status="ok",
            started_at=now,
            finished_at=now,
            seconds=seconds,
            attempts=1,
            node_id="n",
            device="cpu",
        )
        store.write_task(
            keys["task_id"],
            "digits",
            {"runs": [run], **{n: [{**keys, **r} for r in rows] for n, rows in tables.items()}},
        )

    for sigma, best in truth.items():
        cutoff = dict(cutoff_std=math.nan, saturated=True, finite=True, last_layer=10, rtol=0.005, atol=1e-8)
        write(
            "cascade",
            sigma,
            12,
            20.0,
            {
                "cutoffs": [
                    {"measure": "kl_per_image", "cutoff_layer": best + 0.5, **cutoff},  # right order
                    {"measure": "kl_mean", "cutoff_layer": 20.0 - best, **cutoff},  # reversed
                    {"measure": "kl_median_normalised", "cutoff_layer": 1.0, **cutoff},  # not a predictor: left out
                ]
            },
        )
        for depth in (4, 8, 12):
            write(
                "baseline",
                sigma,
                depth,
                5.0,
                {
                    "train_summary": [
                        dict(
                            loss_fn="logits",
                            epochs=5,
                            best_test_accuracy=0.9 if depth <= best else 0.1,
                            final_test_accuracy=0.9,
                            accuracy_threshold=0.4,
                            reached_threshold=depth <= best,
                            stop_reason="threshold",
                            seconds=5.0,
                            resumed_from_epoch=0,
                            threshold_epoch=1 if depth <= best else None,
                        )
                    ]
                },
            )
            write(
                "predictors",
                sigma,
                depth,
                0.1,
                {
                    "predictors": [
                        dict(
                            predictor="ntk_condition",
                            predictor_kind="network",
                            score=100.0 / best + depth,
                            predicted_depth=math.nan,
                            higher_is_better=False,
                            settings="{}",
                            seconds=0.25,
                            device="cpu",
                        )
                    ]
                },
            )
    board, per_sigma = leaderboard.board(store)
    rows = {r["predictor"]: r for r in board.iter_rows(named=True)}
    assert set(rows) == {"kl_per_image", "kl_mean", "ntk_condition"}
    assert rows["kl_per_image"]["spearman"] == pytest.approx(1.0) and rows["kl_per_image"]["auroc"] == 1.0
    assert rows["kl_mean"]["spearman"] == pytest.approx(-1.0)
    assert rows["kl_per_image"]["seconds_per_network"] == 20.0  # the cascade task's seconds
    ntk_row = rows["ntk_condition"]  # κ falls with ℓ_train (lower = better): flipped, it ranks right
    assert ntk_row["spearman"] == pytest.approx(1.0) and ntk_row["seconds_per_network"] == 0.25
    assert ntk_row["n_cells"] == 12 and ntk_row["kind"] == "network" and not ntk_row["gives_depth"]
    assert per_sigma.filter(predictor="kl_per_image").sort("sigma_w2")["trainable_depth"].to_list() == [4, 8, 12, 8]


def test_depth_interval_of_mean_field_brackets_criticality():
    from infoflow_ray.predictors.interval import depth_interval

    def build(sigma_w2):
        spec = NetworkSpec(sigma_w2=sigma_w2, depth=30, n_inputs=8, widths=(8,) * 30 + (10,))
        return None, spec

    grid = [round(0.25 * i, 2) for i in range(1, 17)]  # 0.25 .. 4
    low, high = depth_interval("mean_field_6xi", build, grid, 30, None, None)
    passing = [s for s in grid if 6 * float(theory.xi_c(s, 0.05)) >= 30]
    assert (low, high) == (passing[0], passing[-1]) and low < theory.critical_sigma_w2(0.05) < high
    assert depth_interval("mean_field_6xi", build, grid, 10_000, None, None) is None
    with pytest.raises(ConfigError, match="predictor 'naswot' gives no depth computed here; use one of"):
        depth_interval("naswot", build, grid, 30, None, None)

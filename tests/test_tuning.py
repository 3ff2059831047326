"""Predict-then-tune without Ray: settings and their errors, the predicted σw² range, trial rows, the
best-so-far frames and the figure, the optimizer option of the baseline training."""

from datetime import UTC, datetime

import polars as pl
import pytest
import torch

from infoflow_ray import plots
from infoflow_ray.analysis import tuning
from infoflow_ray.config import NetworkSpec, TrainSpec
from infoflow_ray.data import load_dataset
from infoflow_ray.errors import ConfigError
from infoflow_ray.search import IntervalEdge, IntervalSearch
from infoflow_ray.sweep.grid import resolve_grid
from infoflow_ray.sweep.jobs import job
from infoflow_ray.sweep.tuning import experiment_id, passing_range, predicted_range, trial_row
from infoflow_ray.sweep.tuning_spec import PRESETS, resolve_tuning
from infoflow_ray.training import BaselineTrainer

main = job("tune").main


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--sigma-w2", "2,1"], "space.sigma_w2 must be [low, high] with 0 < low < high"),
        (["--lr", "0.1,0.1"], "space.lr must be [low, high]"),
        (["--depth", "2"], "depth must be an integer >= 3, got 2"),
        (["--searcher", "bayes"], "searcher must be one of tpe, random, got 'bayes'"),
        (["--trials", "0"], "trials must be an integer >= 1, got 0"),
        (["--budget", "0"], "trials must be an integer >= 1, got 0"),
        (["--optimizers", "sgd,rmsprop"], "space.optimizer must be a non-empty list of sgd, adam"),
        (["--dataset", "imagenet"], "dataset must be one of"),
        (["--predictor", "ntk"], "predictor must be one of cascade, mean_field_6xi, mean_field_grad, xiao2020, apjn"),
        (["--predictor", "ntk_condition"], "predictor must be one of cascade,"),  # no depth: nothing to tune over
    ],
)
def test_bad_input_fails_in_one_line_before_any_work(tmp_path, capsys, argv, needle):
    results = tmp_path / "results"
    code = main([*argv, "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and needle in err and len(err.strip().splitlines()) == 1
    assert not results.exists()


def test_config_file_errors_name_the_key(tmp_path, capsys):
    config = tmp_path / "tune.toml"
    config.write_text("[space]\nbatch_size = []\n")
    assert main(["--config", str(config), "--results", str(tmp_path / "r")]) == 2
    assert "space.batch_size must be a non-empty list of integers > 0" in capsys.readouterr().err
    config.write_text("grace_period = 5\nmax_epochs = 3\n")
    assert main(["--config", str(config), "--results", str(tmp_path / "r")]) == 2
    assert "grace_period must be <= max_epochs 3, got 5" in capsys.readouterr().err
    config.write_text("[space]\nlearning_rate = [0.1, 1]\n")
    assert main(["--config", str(config), "--results", str(tmp_path / "r")]) == 2
    assert "unknown key 'learning_rate' in [space]" in capsys.readouterr().err


def test_dry_run_describes_both_arms_and_the_prediction(capsys):
    assert main(["--dry-run", "--depth", "40", "--trials", "32", "--search-seeds", "0,1,2,3"]) == 0
    out = capsys.readouterr().out
    assert "depth 40" in out and "32 trials" in out and "8 experiments" in out
    assert "cascades of depth 52" in out  # ⌈1.25·40⌉ + 2 head layers of the wide profile
    assert "arm predicted" in out and "arm control" in out


def test_presets_are_valid_and_the_prediction_looks_beyond_the_target_depth():
    for name in PRESETS:
        spec = resolve_tuning(name)
        grid = spec.prediction_grid()
        last = grid.network(spec.dataset, 1.0, grid.deepest, spec.sigma_b2).cutoff_last_layer()
        assert last >= 1.25 * spec.depth  # a saturated cutoff must not read as "below L"
        assert grid.kinds == ("cascade",) and grid.search.target_depth == spec.depth
        assert min(grid.sigma_w2) == spec.space.sigma_w2[0] and max(grid.sigma_w2) == spec.space.sigma_w2[1]
    assert resolve_tuning("cpu").search_seeds == (0, 1, 2)  # the issue asks for >= 3 search seeds


def _interval(low: IntervalEdge | None, high: IntervalEdge | None) -> IntervalSearch:
    return IntervalSearch([], (), low, high, 0)


def test_predicted_range_takes_edge_midpoints_and_the_range_end_where_an_edge_lies_beyond():
    space = (0.25, 4.0)
    assert predicted_range(_interval(IntervalEdge(1.5, 1.0), IntervalEdge(3.0, 3.5)), space) == (1.25, 3.25)
    assert predicted_range(_interval(IntervalEdge(1.5, 1.0), IntervalEdge(4.0, None)), space) == (1.25, 4.0)
    assert predicted_range(_interval(IntervalEdge(0.25, None), IntervalEdge(2.0, 2.5)), space) == (0.25, 2.25)
    assert predicted_range(_interval(None, None), space) is None


def test_a_predictors_range_reaches_halfway_to_its_grid_neighbours_outside_like_the_cascades():
    grid = (0.5, 1.0, 1.5, 2.0, 2.5)
    assert passing_range((1.0, 2.0), grid) == (0.75, 2.25)
    assert passing_range((0.5, 1.5), grid) == (0.5, 1.75)  # the grid's end: the space's end
    assert passing_range((2.5, 2.5), grid) == (2.25, 2.5)  # one passing σw² still gives a range to search
    assert passing_range(None, grid) is None


def test_the_predictors_grid_is_as_fine_as_the_cascades_tolerance_and_the_default_keeps_old_ids(capsys):
    spec = resolve_tuning("cpu", overrides={"predictor": "apjn"})
    grid = spec.predictor_sigma_w2
    steps = [b - a for a, b in zip(grid, grid[1:])]
    assert (grid[0], grid[-1]) == spec.space.sigma_w2 and max(steps) <= spec.sigma_w2_tolerance
    assert max(steps) - min(steps) < 1e-5 and len(grid) == 39
    # the default predictor (the cascade) leaves every settings id, hence every stored experiment, as it was
    # before the field existed (values computed at 196e94e); another predictor is another experiment
    assert [resolve_tuning(p).settings_id for p in ("tiny", "cpu", "paper-mnist")] == [
        "00fda56e8b40e7b7",
        "fcf892337108906d",
        "2dd216501df080f5",
    ]
    assert spec.settings_id != resolve_tuning("cpu").settings_id
    assert main(["--preset", "cpu", "--dry-run", "--predictor", "mean_field_6xi"]) == 0
    out = capsys.readouterr().out
    assert "ℓ̂ (mean_field_6xi) ≥ 30" in out and "39 σw² from 0.25 to 4" in out and "cascades of depth" not in out


def test_experiment_ids_differ_by_arm_seed_and_range_not_by_resources():
    spec = resolve_tuning("tiny")
    base = experiment_id(spec, "control", 0, (0.1, 4.0))
    assert base.startswith("control-s0-")
    assert base == experiment_id(
        resolve_tuning("tiny", overrides={"resources": {"cpus_per_trial": 2}}), "control", 0, (0.1, 4.0)
    )
    others = {
        experiment_id(spec, "predicted", 0, (0.1, 4.0)),
        experiment_id(spec, "control", 1, (0.1, 4.0)),
        experiment_id(spec, "control", 0, (0.5, 4.0)),
        experiment_id(resolve_tuning("tiny", overrides={"trials": 5}), "control", 0, (0.1, 4.0)),
    }
    assert base not in others and len(others) == 4


def test_trial_row_from_last_metrics():
    job = {"experiment_id": "control-s0-abc", "dataset": "mnist_t10k"}
    config = {"sigma_w2": 1.5, "lr": 0.1, "batch_size": 64, "optimizer": "sgd"}
    metrics = {
        "experiment_tag": "3_lr=0.1,sigma_w2=1.5",
        "accuracy_by_epoch": [0.3, 0.6, 0.5],
        "seconds_by_epoch": [1.0, 2.0, 3.0],
        "ended_at_by_epoch": [1.0e9, 1.0e9 + 2, 1.0e9 + 5],
        "setup_seconds": 0.5,
        "stop_reason": "",
        "device": "cpu:1threads",
    }
    row = trial_row(job, "t1", config, metrics)
    assert row["trial_index"] == 2 and row["epochs"] == 3 and row["stopped_by"] == "asha"
    assert row["best_test_accuracy"] == 0.6 and row["final_test_accuracy"] == 0.5 and row["seconds"] == 6.5
    assert row["ended_at_by_epoch"][0] == datetime.fromtimestamp(1.0e9, UTC)
    assert trial_row(job, "t1", config, {**metrics, "stop_reason": "budget"})["stopped_by"] == "budget"
    assert trial_row(job, "t1", config, {}, errored=True)["stopped_by"] == "error"


def _trials() -> pl.DataFrame:
    """Two experiments: control (trials A, B) and predicted (trial C, after a 2-second prediction)."""
    t = lambda s: datetime.fromtimestamp(1.0e9 + s, UTC)
    common = dict(
        job="j", settings_id="x", dataset="d", profile="wide", sigma_b2=0.05, depth=10, target_accuracy=float("nan")
    )
    rows = [
        dict(common, experiment_id="c", arm="control", search_seed=0, trial_id="A", sigma_w2=0.5, epochs=2,
             best_test_accuracy=0.7, setup_seconds=0.5, seconds=2.5, prediction_seconds=0.0,
             test_accuracy_by_epoch=[0.5, 0.7], seconds_by_epoch=[1.0, 1.0], ended_at_by_epoch=[t(1), t(10)],
             space_sigma_w2_low=0.25, space_sigma_w2_high=4.0),
        dict(common, experiment_id="c", arm="control", search_seed=0, trial_id="B", sigma_w2=2.0, epochs=1,
             best_test_accuracy=0.9, setup_seconds=0.0, seconds=2.0, prediction_seconds=0.0,
             test_accuracy_by_epoch=[0.9], seconds_by_epoch=[2.0], ended_at_by_epoch=[t(5)],
             space_sigma_w2_low=0.25, space_sigma_w2_high=4.0),
        dict(common, experiment_id="p", arm="predicted", search_seed=0, trial_id="C", sigma_w2=2.5, epochs=1,
             best_test_accuracy=0.85, setup_seconds=0.0, seconds=1.0, prediction_seconds=2.0,
             test_accuracy_by_epoch=[0.85], seconds_by_epoch=[1.0], ended_at_by_epoch=[t(3)],
             space_sigma_w2_low=1.0, space_sigma_w2_high=3.0),
    ]  # fmt: skip
    return pl.DataFrame(rows)


def test_best_so_far_orders_epochs_in_time_and_counts_setup_and_prediction():
    curves = tuning.best_so_far(_trials())
    control = curves.filter(pl.col("arm") == "control")
    assert control["task_seconds"].to_list() == [1.5, 3.5, 4.5]  # A1 (+0.5 setup), B1, A2
    assert control["best_accuracy"].to_list() == [0.5, 0.9, 0.9]
    predicted = curves.filter(pl.col("arm") == "predicted")
    assert predicted["task_seconds"].to_list() == [3.0] and predicted["best_accuracy"].to_list() == [0.85]


def test_compute_to_target_and_the_saving():
    trials = _trials()
    assert tuning.target_accuracy(trials) == pytest.approx(0.95 * 0.9)
    per = tuning.experiments(trials, 0.8)
    by_arm = {r["arm"]: r for r in per.iter_rows(named=True)}
    assert by_arm["control"]["seconds_to_target"] == 3.5 and by_arm["predicted"]["seconds_to_target"] == 3.0
    assert by_arm["control"]["total_seconds"] == 4.5 and by_arm["predicted"]["total_seconds"] == 3.0
    assert by_arm["control"]["outside_predicted"] == 0.5  # trial A at σw² 0.5 lies outside [1, 3]
    summary = {r["arm"]: r for r in tuning.arm_summary(per).iter_rows(named=True)}
    assert summary["predicted"]["saving"] == pytest.approx(3.5 / 3.0)
    assert by_arm["predicted"]["tuning_seconds_to_target"] == 1.0  # 3 s minus the 2-second prediction
    assert summary["predicted"]["tuning_saving"] == pytest.approx(3.5 / 1.0)
    assert summary["control"]["saving"] == 1.0
    never = tuning.experiments(trials, 0.95)
    assert never["seconds_to_target"].to_list() == [float("inf")] * 2
    assert tuning.target_accuracy(trials.with_columns(target_accuracy=pl.lit(0.6))) == 0.6


def test_tuning_figure_draws_both_arms_and_the_trials():
    trials = _trials()
    fig = plots.tuning_search(tuning.best_so_far(trials), trials, 0.8)
    left, right = fig.axes
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert any("predict, then tune" in s for s in labels) and any("control" in s for s in labels)
    assert any("prediction: 2 s" in s for s in labels) and any("target accuracy 0.800" in s for s in labels)
    assert sum(len(c.get_offsets()) for c in right.collections if hasattr(c, "get_offsets")) >= 3


def test_adam_trains_differently_from_sgd_and_keeps_sgd_task_ids():
    data = load_dataset("synthetic", n_inputs=16, n_train=256, n_test=64)
    spec = NetworkSpec(1.5, 4, n_inputs=16)
    sgd = BaselineTrainer(spec, TrainSpec(lr=0.01, max_epochs=1), data, seed=0)
    adam = BaselineTrainer(spec, TrainSpec(lr=0.01, max_epochs=1, optimizer="adam"), data, seed=0)
    assert isinstance(adam.optimizer, torch.optim.Adam) and isinstance(sgd.optimizer, torch.optim.SGD)
    assert sgd.run_epoch().train_loss != adam.run_epoch().train_loss
    task = resolve_grid("tiny").tasks()[-1]
    assert "optimizer" not in task.config()["train"]  # ids of SGD trainings are those of earlier versions
    adam_task = resolve_grid("tiny", overrides={"train": {"optimizer": "adam"}}).tasks()[-1]
    assert adam_task.config()["train"]["optimizer"] == "adam" and adam_task.task_id != task.task_id
    with pytest.raises(ConfigError, match="train.optimizer must be 'sgd' when resources.baseline_group > 1"):
        resolve_grid("tiny", overrides={"train": {"optimizer": "adam"}, "resources": {"baseline_group": 4}})
    with pytest.raises(ConfigError, match="train.optimizer must be one of sgd, adam, got 'rmsprop'"):
        TrainSpec(optimizer="rmsprop")


def test_every_table_names_what_writes_it_and_the_new_ones_are_optional(tmp_path):
    from infoflow_ray.analysis import OPTIONAL, PRODUCERS
    from infoflow_ray.errors import ResultsError
    from infoflow_ray.store import TABLES, ResultStore

    assert set(PRODUCERS) == set(TABLES)
    assert {"tune_trials", "trained_curves", "trained_cutoffs", "retraced", "perfect_inputs"} <= set(OPTIONAL)
    with pytest.raises(ResultsError, match="table 'tune_trials' has no rows yet; jobs/predict_then_tune.py writes it"):
        tuning.tune_trials(ResultStore.open(str(tmp_path / "empty")))

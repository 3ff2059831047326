"""Predict, then tune, on real Ray: the tiny preset end to end (cascades, then both arms' Tune experiments on
bundled MNIST-t10k), its figure and report, and an interrupted run that resumes without re-running a trial."""

import os
import shutil
import signal
import time
from pathlib import Path

import polars as pl
import pytest
from drivers import analyze, start_job

from infoflow_ray import families, theory
from infoflow_ray.predict import predict_trainability
from infoflow_ray.predictors.interval import depth_interval
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.task_runner import load_task_data
from infoflow_ray.sweep.tuning import experiment_id, passing_range, run_predict_then_tune
from infoflow_ray.sweep.tuning_spec import resolve_tuning

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1)


def _spec(results: Path, **overrides):
    return resolve_tuning("tiny", overrides={"results": str(results), "search_seeds": SEEDS, **overrides})


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, ray_local):
    """The tiny preset with two search seeds, run once in this process's local Ray."""
    results = tmp_path_factory.mktemp("tune") / "results"
    outcome = run_predict_then_tune(_spec(results), progress_interval_seconds=300)
    assert not outcome.interrupted and not outcome.prediction_failed and outcome.failed_trials == 0
    return results, outcome


def test_both_arms_run_every_trial_and_only_the_control_leaves_the_predicted_interval(tuned):
    results, outcome = tuned
    spec = _spec(results)
    store = ResultStore.open(str(results), create=False)
    trials = store.scan("tune_trials").collect()
    low, high = outcome.prediction.sigma_w2
    # the predicted range is the interval search's answer, as the search table records it
    edges = store.scan("search").filter(pl.col("search") == "sigma_w2_interval", pl.col("done")).collect()
    assert edges.height and low == pytest.approx(edges["bracket_low"][-1]) and high == pytest.approx(4.0)
    # the predicted interval holds the mean-field critical point, where the cascades reach deepest
    assert low < float(theory.critical_sigma_w2(spec.sigma_b2)) < high
    # the low edge recomputed without Ray: the σw² just inside reaches depth 8, the one just outside does not, and
    # the interval starts halfway between them
    edge = outcome.prediction.interval.low
    assert 0.1 <= edge.outside < edge.inside and low == pytest.approx((edge.inside + edge.outside) / 2)
    grid = spec.prediction_grid()
    data = load_task_data(spec.dataset, grid.data, "cpu")
    cutoff = {
        s: predict_trainability(
            grid.network(spec.dataset, s, grid.deepest, spec.sigma_b2), grid.cascade, data, seed=0
        ).per_image_cutoff_mean
        for s in (edge.inside, edge.outside)
    }
    assert cutoff[edge.inside] >= spec.depth > cutoff[edge.outside]
    assert trials.height == spec.trials * len(SEEDS) * 2 and trials["trial_id"].n_unique() == trials.height
    for arm in ("predicted", "control"):
        for seed in SEEDS:
            name = experiment_id(spec, arm, seed, (low, high) if arm == "predicted" else spec.space.sigma_w2)
            assert trials.filter(experiment_id=name).height == spec.trials
    predicted = trials.filter(arm="predicted")
    control = trials.filter(arm="control")
    assert predicted["sigma_w2"].is_between(low, high).all()
    assert (control["sigma_w2"] < low).any()  # the control arm samples outside the predicted interval
    assert predicted["prediction_seconds"].min() > 0 and (control["prediction_seconds"] == 0).all()
    assert trials["lr"].is_between(*spec.space.lr).all() and trials["epochs"].is_between(1, spec.max_epochs).all()
    assert (trials["epochs"] == trials["test_accuracy_by_epoch"].list.len()).all()
    assert set(trials["stopped_by"]) <= {"asha", "budget"}
    assert (trials["best_test_accuracy"] > 0.2).any()  # some trial learnt (10 classes: chance is 0.1)
    assert not (results / "_tune").exists()  # finished experiments leave no Tune state or checkpoints


def test_analyze_draws_the_tuning_figure_and_reports_both_arms(tuned, tmp_path):
    results, _ = tuned
    out = tmp_path / "analysis"
    done = analyze(results, "--out", out)
    assert done.returncode == 0, done.stderr
    assert (out / "tuning_tiny_mnist_t10k_L8.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    section = report.split("## Predict, then tune", 1)[1].split("\n## ", 1)[0]
    assert "| mnist_t10k | 8 | predicted | 2 |" in section and "| mnist_t10k | 8 | control | 2 |" in section
    assert "![tuning_tiny_mnist_t10k_L8](tuning_tiny_mnist_t10k_L8.png)" in report


def test_an_interrupted_run_resumes_without_running_a_finished_trial_again(tuned, tmp_path, ray_address, capsys):
    source, outcome = tuned
    results = tmp_path / "results"
    shutil.copytree(source, results)  # the prediction is stored: the rerun goes straight to a new search seed
    argv = ["--preset", "tiny", "--results", str(results), "--search-seeds", "7", "--trials", "4"]
    argv += ["--max-epochs", "3"]
    proc = start_job("predict_then_tune.py", *argv, "--address", ray_address)  # the session's Ray
    spec = resolve_tuning(
        "tiny", overrides={"results": str(results), "search_seeds": (7,), "trials": 4, "max_epochs": 3}
    )
    store = ResultStore.open(str(results), create=False)
    first = experiment_id(spec, "predicted", 7, outcome.prediction.sigma_w2)
    # interrupt once the first experiment has stored a trial
    deadline = time.monotonic() + 240
    while not list((results / "tune_trials").rglob(f"{first}-*.parquet")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGINT)  # the driver only, as a terminal's Ctrl-C would reach it
    _, err = proc.communicate(timeout=120)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of it outlived it
    except ProcessLookupError:
        pass
    assert proc.returncode == 130, err[-3000:]
    before = store.scan("tune_trials").filter(pl.col("search_seed") == 7).collect()
    assert 1 <= before.height < spec.trials  # interrupted inside the first experiment, whose Tune state is kept
    assert (results / "_tune" / first).is_dir()
    from infoflow_ray.sweep.jobs import job

    main = job("tune").main

    assert main(argv) == 0
    assert f"resuming experiment {first}" in capsys.readouterr().out  # Tuner.restore, not a new experiment
    after = store.scan("tune_trials").filter(pl.col("search_seed") == 7).collect()
    assert after.height == 2 * spec.trials and after["trial_id"].n_unique() == after.height
    assert set(after["experiment_id"]) == {first, experiment_id(spec, "control", 7, spec.space.sigma_w2)}
    kept = after.join(before.select("trial_id"), on="trial_id", how="semi").sort("trial_id")
    assert kept.equals(before.sort("trial_id"))  # finished trials were not run again (same epochs' end times)
    assert not (results / "_tune").exists()


def test_the_docs_example_reads_the_results(tuned, capsys):
    from doc_examples import python_block

    results, _ = tuned
    code = python_block("docs/predict-then-tune.md", "# Predict, then tune")
    code = code.replace("results/predict-then-tune", str(results))
    names: dict = {}
    exec(code, names)
    assert names["per_seed"].height == 2 * len(SEEDS) and "saving" in capsys.readouterr().out


@pytest.mark.parametrize("predictor", ["mean_field_6xi", "apjn"])
def test_any_depth_predictor_drives_the_search_with_the_interval_depth_interval_computes(
    predictor, tmp_path, ray_local
):
    """``--predictor``: mean field in closed form, and the measured APJN, each give the predicted arm its σw²
    range — the one ``depth_interval`` computes here without Ray on the same untrained networks — and the rest of
    the job (both arms, the tables) is the cascade's."""
    results = tmp_path / "results"
    spec = resolve_tuning(
        "tiny",
        overrides={"results": str(results), "predictor": predictor, "trials": 2, "max_epochs": 1, "search_seeds": (0,)},
    )
    outcome = run_predict_then_tune(spec, progress_interval_seconds=300)
    assert not outcome.interrupted and not outcome.prediction_failed and outcome.failed_trials == 0
    prediction = outcome.prediction
    assert prediction.predictor == predictor and prediction.interval is None and prediction.seconds > 0
    grid = spec.predictor_sigma_w2
    data = load_task_data(spec.dataset, spec.data, "cpu")

    def build(sigma_w2):
        network = spec.network(sigma_w2)
        return families.build(network, 0, "cpu"), network

    expected = depth_interval(predictor, build, grid, spec.depth, data.train_x[:32], data.train_y[:32])
    assert expected is not None and prediction.passing == expected
    low, high = passing_range(expected, grid)
    assert prediction.sigma_w2 == (low, high) and (low, high) != spec.space.sigma_w2
    if predictor == "mean_field_6xi":  # closed form: 6·ξ_c >= L exactly on the passing σw², not just outside
        depth = {s: 6 * float(theory.xi_c(s, spec.sigma_b2)) for s in grid}
        assert all(depth[s] >= spec.depth for s in grid if expected[0] <= s <= expected[1])
        assert all(depth[s] < spec.depth for s in grid if not expected[0] <= s <= expected[1])
    trials = ResultStore.open(str(results), create=False).scan("tune_trials").collect()
    assert trials.height == 2 * spec.trials
    predicted, control = trials.filter(arm="predicted"), trials.filter(arm="control")
    assert set(predicted["experiment_id"]) == {experiment_id(spec, "predicted", 0, (low, high))}
    assert predicted["sigma_w2"].is_between(low, high).all()
    assert (predicted["space_sigma_w2_low"] == low).all() and (predicted["space_sigma_w2_high"] == high).all()
    assert (predicted["prediction_seconds"] == prediction.seconds).all() and (control["prediction_seconds"] == 0).all()
    assert not (results / "cutoffs").exists()  # no cascade ran

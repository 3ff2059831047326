"""Predict, then tune, on real Ray: the tiny preset end to end (cascades, then both arms' Tune experiments on
bundled MNIST-t10k), its figure and report, and an interrupted run that resumes without re-running a trial."""

import io
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from drivers import analyze, start_job, wait_for

from infoflow_ray import families, theory
from infoflow_ray.predict import predict_trainability
from infoflow_ray.predictors.interval import depth_interval
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep import adaptive
from infoflow_ray.sweep.task_runner import load_task_data
from infoflow_ray.sweep.tuning import experiment_id, passing_range, predict_with_predictor, run_predict_then_tune
from infoflow_ray.sweep.tuning_spec import resolve_tuning

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (1,)  # its control arm samples below the predicted interval (the interrupted run uses seed 0)


def _spec(results: Path, **overrides):
    return resolve_tuning("tiny", overrides={"results": str(results), "search_seeds": SEEDS, **overrides})


@dataclass(frozen=True)
class Interruption:
    """What the interrupted job process left: its exit code and stderr, the trials it had stored, the experiment
    it was in and whether that experiment's Tune state was kept, and what the rerun printed."""

    returncode: int
    stderr: str
    before: pl.DataFrame
    first: str
    tune_state_kept: bool
    rerun_output: str


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, ray_local):
    """The tiny preset with one search seed, run once on the session's Ray."""
    results = tmp_path_factory.mktemp("tune") / "results"
    outcome = run_predict_then_tune(_spec(results), progress_interval_seconds=300)
    assert not outcome.interrupted and not outcome.prediction_failed and outcome.failed_trials == 0
    return results, outcome


def _interrupted_and_resumed(results: Path, ray_address: str) -> tuple[Interruption, object]:
    """The tiny preset with one search seed, started as a job process (one trial at a time, for time to interrupt
    it), interrupted (Ctrl-C) once the first experiment has stored a trial, then run again to the end in this
    process. The resources are not part of the experiments' ids: the rerun resumes them."""
    serial = results.parent / "serial.toml"
    serial.write_text("[resources]\nmax_concurrent_trials = 1\n")
    argv = ["--preset", "tiny", "--results", str(results), "--search-seeds", "0"]
    proc = start_job("predict_then_tune.py", *argv, "--config", str(serial), "--address", ray_address)
    wait_for(proc, lambda: any((results / "tune_trials").rglob("*.parquet")), "trial stored", timeout=240, poll=0.1)
    os.kill(proc.pid, signal.SIGINT)  # the driver only, as a terminal's Ctrl-C would reach it
    _, err = proc.communicate(timeout=120)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of it outlived it
    except ProcessLookupError:
        pass
    before = ResultStore.open(str(results), create=False).scan("tune_trials").collect()
    first = before["experiment_id"][0] if before.height else ""
    kept = (results / "_tune" / first).is_dir() if first else False
    out = io.StringIO()
    outcome = run_predict_then_tune(_spec(results, search_seeds=(0,)), out=out, progress_interval_seconds=300)
    assert not outcome.interrupted and not outcome.prediction_failed and outcome.failed_trials == 0
    return Interruption(proc.returncode, err, before, first, kept, out.getvalue()), outcome


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
    # found by bisection, to the search's tolerance, and the same edges a replay of the store decides
    assert edges["reason"].str.contains("bisect the low edge").any()
    assert edge.inside - edge.outside <= grid.search.sigma_w2_tolerance
    replayed = adaptive.plan(grid, adaptive.read_stored(ResultStore.open(grid.results), grid.search.measure))[0]
    assert replayed.interval == outcome.prediction.interval
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
    n = len(SEEDS)
    assert f"| mnist_t10k | 8 | predicted | {n} |" in section and f"| mnist_t10k | 8 | control | {n} |" in section
    assert "![tuning_tiny_mnist_t10k_L8](tuning_tiny_mnist_t10k_L8.png)" in report


@pytest.mark.system
def test_an_interrupted_run_resumes_without_running_a_finished_trial_again(tmp_path, ray_address):
    """A run interrupted inside its first experiment (the cascade-predicted arm of the search seed) and run again:
    the rerun restored that experiment (Tuner.restore, not a new one) and ran no finished trial again."""
    results = tmp_path / "results"
    cut, outcome = _interrupted_and_resumed(results, ray_address)
    spec = _spec(results, search_seeds=(0,))
    assert cut.returncode == 130, cut.stderr[-3000:]
    assert "Tuner.restore" not in cut.stderr  # the job says how to resume, not Tune
    assert cut.first == experiment_id(spec, "predicted", 0, outcome.prediction.sigma_w2)
    assert set(cut.before["experiment_id"]) == {cut.first}
    assert 1 <= cut.before.height < spec.trials  # interrupted inside the first experiment, whose Tune state is kept
    assert cut.tune_state_kept
    assert f"resuming experiment {cut.first}" in cut.rerun_output
    after = ResultStore.open(str(results), create=False).scan("tune_trials").collect()
    assert after["trial_id"].n_unique() == after.height
    kept = after.join(cut.before.select("trial_id"), on="trial_id", how="semi").sort("trial_id")
    assert kept.equals(cut.before.sort("trial_id"))  # finished trials were not run again (same epochs' end times)
    # nor trained again only to be stored over: the rerun printed the end of every trial but those
    ended = {f"{r['arm']} s{r['search_seed']} trial {r['trial_index']}: " for r in after.iter_rows(named=True)}
    before = {f"{r['arm']} s{r['search_seed']} trial {r['trial_index']}: " for r in cut.before.iter_rows(named=True)}
    assert {line for line in ended if line in cut.rerun_output} == ended - before
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
    range — the one ``depth_interval`` computes here without Ray on the same untrained networks. The job's
    prediction step runs for both (APJN in its Ray task); the rest of the job (both arms, the tables) is the same
    code for any predictor, so it runs once, for mean field."""
    results = tmp_path / "results"
    spec = resolve_tuning(
        "tiny",
        overrides={"results": str(results), "predictor": predictor, "trials": 1, "max_epochs": 1, "search_seeds": (0,)},
    )
    if predictor == "apjn":
        prediction = predict_with_predictor(spec, None)  # what run_predict_then_tune's prediction step calls
    else:
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
    if predictor == "apjn":
        return
    trials = ResultStore.open(str(results), create=False).scan("tune_trials").collect()
    assert trials.height == 2 * spec.trials
    predicted, control = trials.filter(arm="predicted"), trials.filter(arm="control")
    assert set(predicted["experiment_id"]) == {experiment_id(spec, "predicted", 0, (low, high))}
    assert predicted["sigma_w2"].is_between(low, high).all()
    assert (predicted["space_sigma_w2_low"] == low).all() and (predicted["space_sigma_w2_high"] == high).all()
    assert (predicted["prediction_seconds"] == prediction.seconds).all() and (control["prediction_seconds"] == 0).all()
    assert not (results / "cutoffs").exists()  # no cascade ran

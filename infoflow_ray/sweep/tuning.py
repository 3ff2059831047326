"""Predict, then tune, on Ray (``jobs/predict_then_tune.py``): the prediction as an adaptive search of
cascades (or, with ``--predictor NAME``, one Ray task asking a registered depth predictor at every σw² of
``TuningSpec.predictor_sigma_w2``), then one Ray Tune experiment per (arm, search seed) with Optuna's sampler and
ASHA.

Every ended trial is a row of the ``tune_trials`` table, written by a Tune callback as it ends; when the experiment
finishes, the rows its results hold and the table lacks (trials that ended just before an interruption) are
written from them (one file per trial, so a resumed run never duplicates one). A finished
experiment's Tune state is deleted; an interrupted one is restored by ``Tuner.restore`` — its finished trials
are not run again, its searcher continues from its saved state, and unfinished trials resume from their last
checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

import optuna
import polars as pl
import ray
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from infoflow_ray import families, predictors, search
from infoflow_ray.config import NetworkSpec, TrainSpec
from infoflow_ray.model import default_device
from infoflow_ray.predictors.interval import depth_interval
from infoflow_ray.store import ResultStore
from infoflow_ray.store import task_id as hash_config
from infoflow_ray.sweep.baselines import (
    delete_checkpoints,
    delete_experiment,
    fit_tuner,
    load_checkpoint,
    new_tuner,
    report_with_checkpoint,
    trial_gpus,
    tune_storage,
)
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.execution import connect
from infoflow_ray.sweep.flags import Alias, numbers, pair
from infoflow_ray.sweep.grid import DataOptions
from infoflow_ray.sweep.jobs import EXIT_FAILED_TASKS, EXIT_INTERRUPTED, EXIT_OK, Job, register
from infoflow_ray.sweep.progress import Progress
from infoflow_ray.sweep.task_runner import device_name, load_task_data
from infoflow_ray.sweep.tuning_spec import ARMS, PRESETS, TuningSpec, build_tuning, json_ready
from infoflow_ray.training import BaselineTrainer

METRIC = "test_accuracy"


@dataclass
class PredictedRange:
    """What was predicted: the σw² range the ``predicted`` arm searches (None: no σw² reaches the target depth),
    which ``predictor`` predicted it ('cascade' or a registered depth predictor), the task-seconds it cost, and on
    how many ``networks`` (cascades, or the predictor's untrained networks). ``interval``: the cascade's interval
    search (its edges; None for other predictors); ``passing``: a predictor's ``depth_interval`` answer, the
    lowest and highest σw² of its grid with ℓ̂ >= L (None for the cascade, or where none passed)."""

    sigma_w2: tuple[float, float] | None
    seconds: float
    networks: int
    predictor: str = "cascade"
    interval: search.IntervalSearch | None = None
    passing: tuple[float, float] | None = None


@dataclass
class TuningOutcome:
    prediction: PredictedRange | None = None
    experiments: dict[str, str] = field(default_factory=dict)  # experiment id → 'ran' | 'stored'
    failed_trials: int = 0
    interrupted: bool = False
    prediction_failed: str = ""


def predicted_range(interval: search.IntervalSearch, space: tuple[float, float]) -> tuple[float, float] | None:
    """The σw² range of the ``predicted`` arm: from the low edge's estimate to the high edge's (the midpoint of
    the σw² measured just outside and just inside each edge), or the space's end where an edge lies beyond it;
    None when no σw² reached the target depth."""
    if interval.low is None or interval.high is None:
        return None
    low = interval.low.estimate if interval.low.outside is not None else space[0]
    high = interval.high.estimate if interval.high.outside is not None else space[1]
    return max(space[0], low), min(space[1], high)


def predict(
    spec: TuningSpec, address: str | None, out: TextIO, progress_interval_seconds: float
) -> PredictedRange | str:
    """Run (or read back) the interval search of ``spec.prediction_grid()``; a message when it did not finish.
    The interval is the grid job's answer, taken from its Outcome (``GridOutcome.searches``). With a non-cascade
    ``spec.predictor``, the interval is that predictor's (``predict_with_predictor``)."""
    if spec.predictor != "cascade":
        return predict_with_predictor(spec, address)
    grid = spec.prediction_grid()
    outcome = run_grid(grid, address=address, out=out, progress_interval_seconds=progress_interval_seconds)
    if outcome.interrupted:
        raise KeyboardInterrupt
    store = ResultStore.open(grid.results, create=False)
    (group,) = outcome.searches  # one dataset, one σb²: one search group
    if outcome.failed or not group.interval.done:
        return (
            f"the prediction did not finish ({len(outcome.failed)} cascades failed for good, see the 'failures' "
            f"table); run the same command again to retry them"
        )
    ids = pl.Series(sorted(group.used), dtype=pl.String).implode()
    seconds = store.scan("runs").filter(pl.col("task_id").is_in(ids)).select(pl.col("seconds").sum()).collect().item()
    return PredictedRange(
        predicted_range(group.interval, spec.space.sigma_w2),
        float(seconds or 0.0),
        len(group.used),
        interval=group.interval,
    )


def predictor_interval(spec: TuningSpec, device: torch.device | str = "cpu") -> tuple[float, float] | None:
    """``depth_interval`` of ``spec.predictor`` over ``spec.predictor_sigma_w2`` at ``spec.depth``: the tuned
    network (``spec.network(σw²)``) of the first cascade seed, untrained, and the first training images (as many
    as the predictor's ``batch``). Pure: no Ray (the job runs it in one Ray task)."""
    data = load_task_data(spec.dataset, spec.data, device)
    batch = predictors.get(spec.predictor).settings().get("batch", 1)
    seed = spec.cascade_seeds[0]

    def build(sigma_w2: float):
        network = spec.network(sigma_w2)
        return families.build(network, seed, device), network

    x, y = data.train_x[:batch], data.train_y[:batch]
    return depth_interval(spec.predictor, build, spec.predictor_sigma_w2, spec.depth, x, y)


@ray.remote(max_retries=0)
def _predictor_task(spec: TuningSpec) -> tuple[tuple[float, float] | None, float]:
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    t0 = time.perf_counter()
    passing = predictor_interval(spec, default_device())
    return passing, time.perf_counter() - t0


def passing_range(passing: tuple[float, float] | None, grid: tuple[float, ...]) -> tuple[float, float] | None:
    """The predicted arm's σw² range from a predictor's passing hull on ``grid`` (sorted): each edge halfway to the
    grid's next σw² outside, or the grid's end — the rule ``predicted_range`` applies to the cascade's edges."""
    if passing is None:
        return None
    i, j = grid.index(passing[0]), grid.index(passing[1])
    low = (grid[i - 1] + grid[i]) / 2 if i > 0 else grid[0]
    high = (grid[j] + grid[j + 1]) / 2 if j + 1 < len(grid) else grid[-1]
    return low, high


def predict_with_predictor(spec: TuningSpec, address: str | None) -> PredictedRange:
    """The σw² interval of ``spec.predictor`` (a registered depth predictor), computed in one Ray task of
    ``resources.cpus_per_trial`` CPUs (and the trials' GPU share); recomputed on every run (it is deterministic
    and costs seconds), so nothing is stored but the trials' ``prediction_seconds``."""
    connect(address)
    res = spec.resources
    gpus = trial_gpus(res.gpus_per_trial)
    task = _predictor_task.options(num_cpus=res.cpus_per_trial, num_gpus=gpus, name=f"predict {spec.predictor}")
    passing, seconds = ray.get(task.remote(spec))
    grid = spec.predictor_sigma_w2
    return PredictedRange(passing_range(passing, grid), seconds, len(grid), spec.predictor, passing=passing)


def experiment_id(spec: TuningSpec, arm: str, search_seed: int, sigma_w2: tuple[float, float]) -> str:
    """One experiment: the job's settings (``TuningSpec.settings_id``), the arm, the search seed and the σw² range
    the arm searches; e.g. 'predicted-s0-1a2b3c4d5e6f'."""
    config = {"settings": spec.settings_id, "arm": arm, "search_seed": search_seed, "sigma_w2": list(sigma_w2)}
    return f"{arm}-s{search_seed}-" + hash_config(config)[:12]


def run_predict_then_tune(
    spec: TuningSpec, *, address: str | None = None, out: TextIO | None = None, progress_interval_seconds: float = 30.0
) -> TuningOutcome:
    """Predict the trainable σw² interval, then run both arms' searches for every search seed (resumable);
    progress lines go to ``out`` (default: sys.stdout at the time of the call)."""
    out = out or sys.stdout
    if "://" not in spec.results:  # Tune trials run in other folders: give them an absolute path
        spec = dataclasses.replace(spec, results=os.path.abspath(spec.results))
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study: the driver says what runs
    outcome = TuningOutcome()
    prediction = predict(spec, address, out, progress_interval_seconds)
    if isinstance(prediction, str):
        outcome.prediction_failed = prediction
        return outcome
    outcome.prediction = prediction
    space = spec.space.sigma_w2
    if prediction.sigma_w2 is None:
        said = "ℓ_c" if prediction.predictor == "cascade" else f"ℓ̂ of {prediction.predictor}"
        print(
            f"prediction: no σw² in [{space[0]:g}, {space[1]:g}] reaches depth {spec.depth} ({said} < {spec.depth} "
            "everywhere): the predicted arm has nothing to search; running the control arm only",
            file=out,
        )
    else:
        low, high = prediction.sigma_w2
        source = (
            f"{prediction.networks} cascades"
            if prediction.predictor == "cascade"
            else f"{prediction.predictor} on {prediction.networks} untrained networks"
        )
        print(
            f"prediction: trainable at depth {spec.depth} for σw² in [{low:.3g}, {high:.3g}] "
            f"({(high - low) / (space[1] - space[0]):.0%} of the range [{space[0]:g}, {space[1]:g}]), from "
            f"{source}, {prediction.seconds:.0f} task-seconds",
            file=out,
        )
    store = ResultStore.open(spec.results)
    experiments = [
        (arm, seed, space if arm == "control" else prediction.sigma_w2)
        for seed in spec.search_seeds
        for arm in ARMS
        if arm == "control" or prediction.sigma_w2 is not None
    ]
    with store.exclusive():
        connect(address)  # joined already unless the prediction was stored before this run
        stored = stored_trials(store)
        progress = Progress(("trial",), stream=out, interval_seconds=progress_interval_seconds)
        done = sum(min(stored.get(experiment_id(spec, *e), 0), spec.trials) for e in experiments)
        progress.set_total("trial", spec.trials * len(experiments), done)
        for arm, seed, sigma_w2 in experiments:
            name = experiment_id(spec, arm, seed, sigma_w2)
            if stored.get(name, 0) >= spec.trials:
                outcome.experiments[name] = "stored"
                continue
            progress.note(
                f"experiment {name}: arm {arm}, search seed {seed}, σw² in [{sigma_w2[0]:.3g}, {sigma_w2[1]:.3g}], "
                f"{spec.trials} trials of ≤ {spec.max_epochs} epochs ({spec.searcher} + ASHA)"
            )
            job = _job_row(spec, name, arm, seed, sigma_w2, prediction.seconds if arm == "predicted" else 0.0)
            try:
                outcome.failed_trials += _run_experiment(spec, store, name, job, progress)
            except KeyboardInterrupt:
                outcome.interrupted = True
                progress.note("interrupted: ended trials are stored; run the same command again to resume")
                return outcome
            outcome.experiments[name] = "ran"
    return outcome


def stored_trials(store: ResultStore) -> dict[str, int]:
    """Experiment id → trials stored."""
    frame = store.scan("tune_trials").group_by("experiment_id").agg(pl.len()).collect()
    return dict(frame.iter_rows())


def _job_row(
    spec: TuningSpec, name: str, arm: str, seed: int, sigma_w2: tuple[float, float], prediction_seconds: float
) -> dict:
    """The columns every trial row of one experiment shares."""
    return {
        "experiment_id": name,
        "job": spec.name,
        "settings_id": spec.settings_id,
        "dataset": spec.dataset,
        "profile": spec.network(sigma_w2[0]).profile_name,
        "sigma_b2": spec.sigma_b2,
        "depth": spec.depth,
        "arm": arm,
        "searcher": spec.searcher,
        "search_seed": seed,
        "space_sigma_w2_low": sigma_w2[0],
        "space_sigma_w2_high": sigma_w2[1],
        "max_epochs": spec.max_epochs,
        "prediction_seconds": prediction_seconds,
        "target_accuracy": spec.target_accuracy if spec.target_accuracy is not None else math.nan,
    }


def _param_space(spec: TuningSpec, job: dict, sigma_w2: tuple[float, float]) -> dict:
    def choice(values: tuple):
        return values[0] if len(values) == 1 else tune.choice(list(values))

    network = json_ready(dataclasses.asdict(spec.network(sigma_w2[0])))
    network.pop("sigma_w2")
    return {
        "sigma_w2": tune.uniform(*sigma_w2),
        "lr": tune.loguniform(*spec.space.lr),
        "batch_size": choice(spec.space.batch_size),
        "optimizer": choice(spec.space.optimizer),
        "context": {
            "results": spec.results,
            "job": job,
            "network": network,
            "data": dataclasses.asdict(spec.data),
            "max_epochs": spec.max_epochs,
            "checkpoint_every_epochs": spec.resources.checkpoint_every_epochs,
        },
    }


def _run_experiment(spec: TuningSpec, store: ResultStore, name: str, job: dict, progress: Progress) -> int:
    """Run (or restore and finish) one experiment; store every trial's row; return the trials that errored."""
    res = spec.resources
    trainable = tune.with_resources(
        tuning_trainable, {"cpu": res.cpus_per_trial, "gpu": trial_gpus(res.gpus_per_trial)}
    )
    storage = tune_storage(spec.results)
    path = f"{storage}/{name}"
    callbacks = [_TrialRecorder(progress, store)]
    if tune.Tuner.can_restore(path):
        progress.note(f"resuming experiment {name} from {path}")
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
        tuner._local_tuner.get_run_config().callbacks = callbacks
    else:
        sampler = (
            optuna.samplers.TPESampler(seed=job["search_seed"])
            if spec.searcher == "tpe"
            else optuna.samplers.RandomSampler(seed=job["search_seed"])
        )
        tuner = new_tuner(
            trainable,
            name=name,
            storage=storage,
            callbacks=callbacks,
            max_attempts=res.max_trial_attempts,
            param_space=_param_space(spec, job, (job["space_sigma_w2_low"], job["space_sigma_w2_high"])),
            metric=METRIC,
            mode="max",
            num_samples=spec.trials,
            search_alg=OptunaSearch(sampler=sampler),
            scheduler=ASHAScheduler(
                time_attr="training_iteration",
                max_t=spec.max_epochs,
                grace_period=spec.grace_period,
                reduction_factor=spec.reduction_factor,
            ),
            max_concurrent_trials=res.max_concurrent_trials,
            trial_dirname_creator=lambda trial: f"{job['arm']}_s{job['search_seed']}_{trial.trial_id}",
        )
    results = fit_tuner(tuner)
    written = set(store.scan("tune_trials").filter(pl.col("experiment_id") == name).collect()["trial_id"])
    for result in results:  # rows of trials whose callback did not write them (ended before an interruption)
        trial_id = result.metrics.get("trial_id") if result.metrics else None
        if trial_id is None or trial_id in written:
            continue
        row = trial_row(job, trial_id, result.config, result.metrics, errored=result.error is not None)
        store.write_tune_trial(name, trial_id, job["dataset"], row)
        written.add(trial_id)
    if len(written) >= spec.trials:
        delete_experiment(storage, name)
    return len(results.errors)


def trial_row(job: dict, trial_id: str, config: dict, metrics: dict, errored: bool = False) -> dict:
    """One ``tune_trials`` row from a trial's config and its last reported metrics."""
    accuracy = [float(a) for a in metrics.get("accuracy_by_epoch", [])]
    seconds = [float(s) for s in metrics.get("seconds_by_epoch", [])]
    ended = [datetime.fromtimestamp(t, UTC) for t in metrics.get("ended_at_by_epoch", [])]
    reason = metrics.get("stop_reason") or ""
    setup = float(metrics.get("setup_seconds", 0.0))
    return {
        **job,
        "trial_id": trial_id,
        "trial_index": int(str(metrics.get("experiment_tag", "0")).split("_", 1)[0]) - 1,
        "sigma_w2": float(config["sigma_w2"]),
        "lr": float(config["lr"]),
        "batch_size": int(config["batch_size"]),
        "optimizer": str(config["optimizer"]),
        "epochs": len(accuracy),
        "best_test_accuracy": max(accuracy, default=math.nan),
        "final_test_accuracy": accuracy[-1] if accuracy else math.nan,
        "stopped_by": "error" if errored else (reason or "asha"),
        "setup_seconds": setup,
        "seconds": setup + sum(seconds),
        "test_accuracy_by_epoch": accuracy,
        "seconds_by_epoch": seconds,
        "ended_at_by_epoch": ended,
        "device": str(metrics.get("device", "")),
    }


def tuning_trainable(config: dict) -> None:
    """One trial: a baseline network at the sampled (σw², lr, batch size, optimizer), trained epoch by epoch
    (no accuracy threshold: the search maximises test accuracy), reporting test accuracy after every epoch for
    ASHA, checkpointed every ``checkpoint_every_epochs`` epochs and at the end. Every report carries the whole
    history, so the last one is the trial's row whenever ASHA stops it."""
    t0 = time.perf_counter()
    context = config["context"]
    network = dict(context["network"])
    if not isinstance(network["widths"], str):
        network["widths"] = tuple(network["widths"])
    spec = NetworkSpec(sigma_w2=float(config["sigma_w2"]), **network)
    train = TrainSpec(
        max_epochs=context["max_epochs"],
        lr=float(config["lr"]),
        batch_size=int(config["batch_size"]),
        optimizer=config["optimizer"],
        stop_at_threshold=False,
    )
    device = default_device()
    job = context["job"]
    data = load_task_data(job["dataset"], DataOptions(**context["data"]), device)
    trainer = BaselineTrainer(spec, train, data, job["search_seed"], device)
    ended: list[float] = []
    setup = time.perf_counter() - t0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        saved = load_checkpoint(checkpoint, device)
        trainer.load_state_dict(saved["trainer"])
        ended, setup = saved["ended"], saved["setup_seconds"] + setup
    every = context["checkpoint_every_epochs"]
    while trainer.stop_reason() is None:
        record = trainer.run_epoch()
        ended.append(time.time())
        reason = trainer.stop_reason() or ""
        metrics = {
            METRIC: record.test_accuracy,
            "train_loss": record.train_loss,
            "epoch": record.epoch,
            "stop_reason": reason,
            "setup_seconds": setup,
            "accuracy_by_epoch": [r.test_accuracy for r in trainer.history],
            "seconds_by_epoch": [r.seconds for r in trainer.history],
            "ended_at_by_epoch": list(ended),
            "device": device_name(device),
        }
        if record.epoch % every == 0 or reason:
            report_with_checkpoint(metrics, {"trainer": trainer.state_dict(), "ended": ended, "setup_seconds": setup})
        else:
            tune.report(metrics)


class _TrialRecorder(tune.Callback):
    """Stores each trial's row when it ends (stopped by ASHA, its budget, divergence, or an error), deletes its
    checkpoints, and prints a progress line."""

    def __init__(self, progress: Progress, store: ResultStore):
        self.progress, self.store = progress, store
        self._running: set[str] = set()

    def __getstate__(self) -> dict:
        return {}  # Tune pickles its run config; the driver re-attaches a live callback on restore

    def __setstate__(self, state: dict) -> None:
        self.progress = self.store = None
        self._running = set()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if self.progress is not None and trial.trial_id not in self._running:
            self._running.add(trial.trial_id)
            self.progress.started("trial")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if self.progress is not None:
            self.progress.tick()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._ended(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended(trial, errored=True)

    def _ended(self, trial, errored: bool) -> None:
        if self.store is None:
            return
        job = trial.config["context"]["job"]
        metrics = {"experiment_tag": trial.experiment_tag, **(trial.last_result or {})}
        row = trial_row(job, trial.trial_id, trial.config, metrics, errored=errored)
        self.store.write_tune_trial(job["experiment_id"], trial.trial_id, job["dataset"], row)
        delete_checkpoints(trial)
        was_running = trial.trial_id in self._running
        self._running.discard(trial.trial_id)
        self.progress.finished(
            "trial",
            f"{job['arm']} s{job['search_seed']} trial {row['trial_index']}: σw² {row['sigma_w2']:.3g}, "
            f"lr {row['lr']:.2g}, batch {row['batch_size']}, {row['optimizer']} → best accuracy "
            f"{row['best_test_accuracy']:.3f} after {row['epochs']} epochs ({row['stopped_by']})",
            failed=errored,
            was_running=was_running,
        )


# --- the job --------------------------------------------------------------------------------------------------


def plan(spec: TuningSpec, out: TextIO) -> None:
    """``--dry-run``: the prediction's cascades (planned worst case) and the experiments; starts nothing."""
    space = spec.space
    print(
        f"predict-then-tune '{spec.name}': {spec.dataset}, depth {spec.depth} ({spec.network(1.0).profile_name}), "
        f"σb² {spec.sigma_b2:g}; results in {spec.results}",
        file=out,
    )
    if spec.predictor == "cascade":
        grid = spec.prediction_grid()
        worst = search.worst_case_cascades(grid.sigma_w2, spec.sigma_w2_tolerance) * len(spec.cascade_seeds)
        print(
            f"  predict: σw² interval with ℓ_c ({spec.measure}) ≥ {spec.depth}, from cascades of depth {grid.deepest} "
            f"at σw² {', '.join(f'{s:g}' for s in grid.sigma_w2)} bisected to ±{spec.sigma_w2_tolerance:g} "
            f"(≤ {worst} cascades, seeds {', '.join(map(str, spec.cascade_seeds))})",
            file=out,
        )
    else:
        grid_sw = spec.predictor_sigma_w2
        print(
            f"  predict: σw² interval with ℓ̂ ({spec.predictor}) ≥ {spec.depth}, from the untrained depth-{spec.depth} "
            f"networks (seed {spec.cascade_seeds[0]}) at {len(grid_sw)} σw² from {grid_sw[0]:g} to {grid_sw[-1]:g} "
            f"(step {grid_sw[1] - grid_sw[0]:.3g}), in one Ray task",
            file=out,
        )
    print(
        f"  tune: σw² uniform in the predicted interval (arm predicted) or in [{space.sigma_w2[0]:g}, "
        f"{space.sigma_w2[1]:g}] (arm control); lr log-uniform in [{space.lr[0]:g}, {space.lr[1]:g}]; batch size "
        f"{', '.join(map(str, space.batch_size))}; optimizer {', '.join(space.optimizer)}",
        file=out,
    )
    print(
        f"  {spec.searcher} + ASHA (grace {spec.grace_period}, reduction {spec.reduction_factor}), {spec.trials} "
        f"trials of ≤ {spec.max_epochs} epochs per arm and search seed; arms {', '.join(ARMS)} × seeds "
        f"{', '.join(map(str, spec.search_seeds))} = {len(ARMS) * len(spec.search_seeds)} experiments, "
        f"≤ {len(ARMS) * len(spec.search_seeds) * spec.trials * spec.max_epochs} training epochs",
        file=out,
    )


def report(spec: TuningSpec, outcome: TuningOutcome, out: TextIO, err: TextIO) -> int:
    """Where the results are; the exit code (1 when the prediction or some trials failed for good)."""
    if outcome.interrupted:
        print(TUNE.interrupted, file=err)
        return EXIT_INTERRUPTED
    if outcome.prediction_failed:
        print(f"error: {outcome.prediction_failed}", file=err)
        return EXIT_FAILED_TASKS
    print(f"results: {spec.results}  (figure and report: python jobs/analyze.py {spec.results})", file=out)
    if outcome.failed_trials:
        print(f"{outcome.failed_trials} trials failed for good (stopped_by = 'error' in tune_trials)", file=err)
        return EXIT_FAILED_TASKS
    return EXIT_OK


TUNE = register(
    Job(
        name="tune",
        script="predict_then_tune.py",
        description="Predict the trainable σw² interval at one depth with reconstruction-entropy cascades (or any "
        "depth predictor: --predictor), then tune (σw², learning rate, …) with Ray Tune inside it, against the same "
        "search over the whole σw² range.",
        spec=TuningSpec,
        presets=PRESETS,
        default_preset="cpu",
        build=build_tuning,
        plan=plan,
        run=run_predict_then_tune,
        report=report,
        aliases=(
            Alias(("--sigma-w2",), "space.sigma_w2", "σw² range low,high (the control arm's; uniform)", pair(float)),
            Alias(("--lr",), "space.lr", "learning-rate range low,high (log-uniform)", pair(float)),
            Alias(("--batch-sizes",), "space.batch_size", "batch sizes to choose from, e.g. 32,64,128", numbers(int)),
            Alias(("--optimizers",), "space.optimizer", "optimizers to choose from, e.g. sgd or sgd,adam"),
            Alias(("--budget",), "trials", "trials per arm and search seed (= --trials)"),
        ),
        interrupted="interrupted: stored trials are kept; run the same command again to resume",
    )
)

"""Frames of the predict-then-tune measurement (``tune_trials`` table; ``jobs/predict_then_tune.py``).

Conventions:
- Compute is task-seconds: the wall seconds of every trial's setup and epochs, summed — not elapsed time (trials
  run in parallel). The ``predicted`` arm's compute starts at the cascades' task-seconds (``prediction_seconds``):
  the prediction's cost is counted in that arm, once per search seed.
- Best-so-far: within one experiment (arm, search seed), the epochs of all its trials ordered by when they
  ended; after each, the compute spent so far and the best test accuracy reached so far.
- Target accuracy: the job's ``target_accuracy``, else ``DEFAULT_TARGET_FRACTION`` × the best test accuracy
  any trial of either arm reached. An experiment that never reaches it has ``seconds_to_target`` = inf.
- Spread over search seeds: median, min and max.
"""

from __future__ import annotations

import math

import polars as pl

from infoflow_ray.analysis.frames import PRODUCERS
from infoflow_ray.errors import ResultsError
from infoflow_ray.store import ResultStore

DEFAULT_TARGET_FRACTION = 0.95
TUNE_GROUP = ("job", "settings_id", "dataset", "profile", "sigma_b2", "depth")
"""One job's settings: experiments are compared within it, never across."""
EXPERIMENT = ("experiment_id", "arm", "search_seed")


def tune_trials(store: ResultStore) -> pl.DataFrame:
    """The ``tune_trials`` table; ResultsError when it has no rows."""
    trials = store.scan("tune_trials").collect()
    if trials.is_empty():
        raise ResultsError(f"table 'tune_trials' has no rows yet; {PRODUCERS['tune_trials']}")
    return trials


def best_so_far(trials: pl.DataFrame) -> pl.DataFrame:
    """One row per trained epoch: ``task_seconds`` (compute spent by its experiment once that epoch ended,
    prediction included) and ``best_accuracy`` (best test accuracy of the experiment so far); keyed by
    TUNE_GROUP + EXPERIMENT, in time order within each experiment."""
    epochs = (
        trials.select(
            *TUNE_GROUP,
            *EXPERIMENT,
            "trial_id",
            "prediction_seconds",
            "setup_seconds",
            pl.col("test_accuracy_by_epoch").alias("accuracy"),
            pl.col("seconds_by_epoch").alias("seconds"),
            pl.col("ended_at_by_epoch").alias("ended_at"),
        )
        .explode("accuracy", "seconds", "ended_at")
        .drop_nulls("ended_at")
        .with_columns(
            # a trial's setup is paid before its first epoch
            (
                pl.col("seconds")
                + pl.when(pl.int_range(pl.len()).over("experiment_id", "trial_id") == 0)
                .then("setup_seconds")
                # the row order within a trial is its epoch order
                .otherwise(0.0)
            ).alias("seconds")
        )
        .sort(*EXPERIMENT, "ended_at")
    )
    return epochs.with_columns(
        (pl.col("prediction_seconds") + pl.col("seconds").cum_sum().over("experiment_id")).alias("task_seconds"),
        pl.col("accuracy").fill_nan(0.0).cum_max().over("experiment_id").alias("best_accuracy"),
    ).select(*TUNE_GROUP, *EXPERIMENT, "ended_at", "task_seconds", "best_accuracy")


def target_accuracy(trials: pl.DataFrame) -> float:
    """The job's target accuracy, else DEFAULT_TARGET_FRACTION × the best accuracy any trial reached."""
    given = trials["target_accuracy"].drop_nans().drop_nulls()
    if len(given):
        return float(given[0])
    return DEFAULT_TARGET_FRACTION * float(trials["best_test_accuracy"].fill_nan(0.0).max())


def experiments(trials: pl.DataFrame, target: float) -> pl.DataFrame:
    """One row per experiment: its trials and epochs, the compute it spent (``total_seconds``, prediction
    included), the best accuracy it reached, the compute at which it first reached ``target``
    (``seconds_to_target``, inf when never; ``tuning_seconds_to_target``: the same without the prediction's
    cost, which separates what the narrower range saves from what the cascades cost), and the share of its
    trials whose σw² lies outside the predicted arm's interval (``outside_predicted``: null when the job has no
    predicted arm)."""
    curves = best_so_far(trials)
    reached = (
        curves.filter(pl.col("best_accuracy") >= target)
        .group_by("experiment_id")
        .agg(pl.col("task_seconds").min().alias("seconds_to_target"))
    )
    interval = (
        trials.filter(pl.col("arm") == "predicted")
        .group_by(*TUNE_GROUP)
        .agg(pl.col("space_sigma_w2_low").first().alias("low"), pl.col("space_sigma_w2_high").first().alias("high"))
    )
    per = trials.group_by(*TUNE_GROUP, *EXPERIMENT).agg(
        pl.len().alias("trials"),
        pl.col("epochs").sum().alias("epochs"),
        (pl.col("seconds").sum() + pl.col("prediction_seconds").first()).alias("total_seconds"),
        pl.col("best_test_accuracy").fill_nan(0.0).max().alias("best_accuracy"),
        pl.col("prediction_seconds").first(),
        pl.col("sigma_w2"),
    )
    per = per.join(interval, on=list(TUNE_GROUP), how="left")
    outside = [
        None if low is None else sum(1 for s in sigmas if s < low or s > high) / len(sigmas)
        for sigmas, low, high in per.select("sigma_w2", "low", "high").iter_rows()
    ]
    per = per.with_columns(pl.Series("outside_predicted", outside, dtype=pl.Float64)).drop("sigma_w2", "low", "high")
    return (
        per.join(reached, on="experiment_id", how="left")
        .with_columns(pl.col("seconds_to_target").fill_null(math.inf))
        .with_columns((pl.col("seconds_to_target") - pl.col("prediction_seconds")).alias("tuning_seconds_to_target"))
        .sort(*TUNE_GROUP, "arm", "search_seed")
    )


def arm_summary(per_experiment: pl.DataFrame) -> pl.DataFrame:
    """Per arm: the spread over search seeds (median, min, max) of the compute to reach the target and of the
    best accuracy; how many seeds reached the target; and ``saving``: the control arm's median compute to the
    target over this arm's (> 1: this arm got there with less; inf or NaN where an arm's median never got
    there); ``tuning_saving``: the same without the prediction's cost."""
    summary = per_experiment.group_by(*TUNE_GROUP, "arm").agg(
        pl.len().alias("search_seeds"),
        pl.col("trials").sum(),
        pl.col("epochs").sum(),
        (pl.col("seconds_to_target") < math.inf).sum().alias("reached_target"),
        pl.col("seconds_to_target").median().alias("seconds_to_target_median"),
        pl.col("seconds_to_target").min().alias("seconds_to_target_min"),
        pl.col("seconds_to_target").max().alias("seconds_to_target_max"),
        pl.col("tuning_seconds_to_target").median().alias("tuning_seconds_to_target_median"),
        pl.col("best_accuracy").median().alias("best_accuracy_median"),
        pl.col("best_accuracy").min().alias("best_accuracy_min"),
        pl.col("best_accuracy").max().alias("best_accuracy_max"),
        pl.col("total_seconds").median().alias("total_seconds_median"),
        pl.col("prediction_seconds").median(),
        pl.col("outside_predicted").median().alias("outside_predicted_median"),
    )
    control = summary.filter(pl.col("arm") == "control").select(
        *TUNE_GROUP,
        pl.col("seconds_to_target_median").alias("control_median"),
        pl.col("tuning_seconds_to_target_median").alias("control_tuning_median"),
    )
    return (
        summary.join(control, on=list(TUNE_GROUP), how="left")
        .with_columns(
            (pl.col("control_median") / pl.col("seconds_to_target_median")).alias("saving"),
            (pl.col("control_tuning_median") / pl.col("tuning_seconds_to_target_median")).alias("tuning_saving"),
        )
        .drop("control_median", "control_tuning_median")
        .sort(*TUNE_GROUP, "arm", descending=[False] * len(TUNE_GROUP) + [True])
    )

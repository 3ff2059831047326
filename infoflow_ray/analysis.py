"""Analysis of a results folder with polars: cutoffs vs trainable depths vs mean-field theory (docs/method.md §4, §5, §7).

Every frame is read through ``ResultStore.scan`` and is tidy: one row per the keys it names. The keys of a point
of the phase diagram are ``KEYS`` = (dataset, profile, sigma_b2, sigma_w2); a frame over the whole σw² axis is
grouped by ``GROUP`` = (dataset, profile, sigma_b2). σb² is a key because mean-field theory (and the critical
σw²) depends on it.

Conventions, documented once here:
- Seeds: cutoffs and curves are aggregated over seeds: mean, standard deviation (ddof 1, null with one seed)
  and the number of seeds n.
- Cascade depth: a cascade's ``depth`` is its network's depth (the grid's deepest). When one σw² has cascades of
  several depths (several grids in one folder) the deepest one is used.
- Trainable depth ℓ_train(σw²): the largest trained depth at which a training reached the accuracy threshold
  (in any seed), **0 when none did**, so that it ranks below every trainable σw². ``any_trainable`` tells
  0-because-nothing-trained apart; ``trainable_depth_mean``/``_std`` are over the per-seed values.
- Non-finite cutoffs (a NaN in a curve) are left out of the mean and counted in ``n_nonfinite``.
- A cutoff that did not saturate (``saturated`` false) sits at the deepest layer searched (``last_layer``): it is
  a lower bound, counted in ``n_unsaturated``.
- Seconds are task-seconds: the sum of each task's wall time (``runs.seconds``), not the grid's elapsed time
  (tasks run in parallel).
- Information plane (optional ``info_plane`` table): I(X;T_l) and I(T_l;Y) in nats, averaged over seeds per
  (estimator, its parameters, N samples); ln N is the ceiling of binned I(X;T) for a deterministic network.
- Planned grids: the driver records each grid's tasks in ``_grids/``; ``missing`` counts planned vs finished vs
  failed tasks against them, and judges by what is present only for results written before grids were recorded.
A function whose table has no readable rows yet raises a one-line ResultsError naming the table and what writes it;
``missing`` never does, and lists what is there and what is not.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from infoflow_ray import theory
from infoflow_ray.errors import ResultsError
from infoflow_ray.store import TABLES, CorruptFileWarning, ResultStore

KEYS = ["dataset", "profile", "sigma_b2", "sigma_w2"]
GROUP = ["dataset", "profile", "sigma_b2"]
CUTOFF_MEASURES = ("kl_mean", "kl_median_normalised", "diff_entropy", "kl_per_image")
CURVE_MEASURES = ("kl_mean", "kl_median", "diff_entropy", "clamped_pixels", "decoder_loss")

INFO_KEYS = KEYS + ["depth", "phase", "estimator", "param", "n_samples", "epoch", "layer"]

_CASCADE = "cascade tasks write it: run jobs/full_grid.py without --only baseline"
_BASELINE = "baseline trainings write it: run jobs/full_grid.py without --only cascade"
PRODUCERS = {
    "runs": "every finished task writes a row: run jobs/full_grid.py",
    "curves": _CASCADE, "cutoffs": _CASCADE, "reconstructions": _CASCADE,
    "train_epochs": _BASELINE, "train_summary": _BASELINE,
    "info_plane": "the information-plane probes write it: run jobs/full_grid.py --info-plane "
                  "(or set [info_plane] enabled = true)",
    "failures": "failed task attempts write it",
    "search": "the adaptive search writes it: run jobs/full_grid.py --search (the default preset searches)",
}
OPTIONAL = ("info_plane", "failures", "search")  # tables whose absence is no gap
TABLE_KIND = {"curves": "cascade", "cutoffs": "cascade", "reconstructions": "cascade",
              "train_epochs": "baseline", "train_summary": "baseline"}


def open_results(location: str | Path | ResultStore) -> ResultStore:
    """An existing results folder (local path or URI), for reading; ResultsError when it is not one."""
    if isinstance(location, ResultStore):
        return location
    return ResultStore.open(str(location), create=False)


def table(store: ResultStore, name: str) -> pl.LazyFrame:
    """``store.scan(name)``, or a one-line ResultsError when the table has no readable rows yet."""
    frame = store.scan(name)
    if frame.select(pl.len()).collect().item() == 0:
        raise ResultsError(f"results '{store.location}' have no '{name}' table yet; {PRODUCERS[name]}")
    return frame


def _deepest_cascade(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.filter(pl.col("depth") == pl.col("depth").max().over(KEYS))


def cutoffs_by_sigma(store: ResultStore) -> pl.LazyFrame:
    """Cutoffs per (dataset, profile, σb², σw², measure), over seeds.

    Columns: KEYS, measure, cutoff_mean, cutoff_std (over seeds; layers), n_seeds (finite cutoffs), n_nonfinite,
    n_unsaturated, per_image_std (kl_per_image only: the mean over seeds of the spread over images), last_layer
    (the deepest layer searched: the ceiling of an unsaturated cutoff), depth (the cascade network's depth).
    """
    ok = pl.col("finite") & pl.col("cutoff_layer").is_finite()
    return (_deepest_cascade(table(store, "cutoffs"))
            .group_by(KEYS + ["measure"])
            .agg(cutoff_mean=pl.col("cutoff_layer").filter(ok).mean(),
                 cutoff_std=pl.col("cutoff_layer").filter(ok).std(),
                 n_seeds=ok.sum().cast(pl.Int64),
                 n_nonfinite=(~ok).sum().cast(pl.Int64),
                 n_unsaturated=(ok & ~pl.col("saturated")).sum().cast(pl.Int64),
                 per_image_std=pl.col("cutoff_std").filter(ok & pl.col("cutoff_std").is_not_nan()).mean(),
                 last_layer=pl.col("last_layer").max(),
                 depth=pl.col("depth").max())
            .sort(KEYS + ["measure"]))


def curves_by_sigma(store: ResultStore, measures: tuple[str, ...] = CURVE_MEASURES) -> pl.LazyFrame:
    """Entropy curves per (dataset, profile, σb², σw², measure, layer), over seeds (finite values only).

    Columns: KEYS, depth (cascade depth), measure, layer (0 = input), value_mean, value_std, n_seeds, n_nonfinite.
    """
    return (_deepest_cascade(table(store, "curves"))
            .filter(pl.col("measure").is_in(list(measures)))
            .group_by(KEYS + ["depth", "measure", "layer"])
            .agg(value_mean=pl.col("value").filter("finite").mean(),
                 value_std=pl.col("value").filter("finite").std(),
                 n_seeds=pl.col("finite").sum().cast(pl.Int64),
                 n_nonfinite=(~pl.col("finite")).sum().cast(pl.Int64))
            .sort(KEYS + ["measure", "layer"]))


def accuracy_grid(store: ResultStore) -> pl.LazyFrame:
    """Baseline outcome per (dataset, profile, σb², σw², depth), over seeds: the phase diagram's cells.

    Columns: KEYS, depth, best_test_accuracy (mean over seeds of each training's best), best_test_accuracy_std,
    reached_fraction (share of seeds that reached the threshold), epochs_mean, n_seeds.
    """
    return (table(store, "train_summary")
            .group_by(KEYS + ["depth"])
            .agg(best_test_accuracy=pl.col("best_test_accuracy").mean(),
                 best_test_accuracy_std=pl.col("best_test_accuracy").std(),
                 reached_fraction=pl.col("reached_threshold").cast(pl.Float64).mean(),
                 epochs_mean=pl.col("epochs").cast(pl.Float64).mean(),
                 n_seeds=pl.len().cast(pl.Int64))
            .sort(KEYS + ["depth"]))


def trainable_depth(store: ResultStore) -> pl.LazyFrame:
    """ℓ_train per (dataset, profile, σb², σw²) from the baseline trainings.

    Columns: KEYS, trainable_depth (largest trained depth that reached the threshold in any seed; 0 when none
    did), any_trainable, trainable_depth_mean / trainable_depth_std (over the per-seed values, same rule),
    deepest_trained, n_trained (trainings), n_reached, n_seeds, best_test_accuracy (the best of all trainings),
    accuracy_threshold, loss_fn (comma-joined when mixed).
    """
    summary = table(store, "train_summary")
    reached_depth = pl.col("depth").filter("reached_threshold").max().fill_null(0)
    per_seed = (summary.group_by(KEYS + ["seed"]).agg(seed_depth=reached_depth)
                .group_by(KEYS).agg(trainable_depth_mean=pl.col("seed_depth").cast(pl.Float64).mean(),
                                    trainable_depth_std=pl.col("seed_depth").cast(pl.Float64).std(),
                                    n_seeds=pl.len().cast(pl.Int64)))
    overall = summary.group_by(KEYS).agg(
        trainable_depth=reached_depth,
        any_trainable=pl.col("reached_threshold").any(),
        deepest_trained=pl.col("depth").max(),
        n_trained=pl.len().cast(pl.Int64),
        n_reached=pl.col("reached_threshold").sum().cast(pl.Int64),
        best_test_accuracy=pl.col("best_test_accuracy").max(),
        accuracy_threshold=pl.col("accuracy_threshold").max(),
        loss_fn=pl.col("loss_fn").unique().sort().str.join(","))
    return overall.join(per_seed, on=KEYS).sort(KEYS)


def mean_field_frame(sigma_w2, sigma_b2: float = 0.05) -> pl.DataFrame:
    """Mean-field quantities on a σw² grid at one σb²: sigma_w2, sigma_b2, q_star, chi_1, c_star, chi_c, xi_c
    (layers), depth_6xi (6ξ_c, the predicted maximal trainable depth; inf at criticality) and phase
    ('ordered' χ1 < 1, 'chaotic' χ1 > 1)."""
    mf = theory.mean_field(np.atleast_1d(np.asarray(sigma_w2, dtype=float)), sigma_b2)
    return pl.DataFrame({"sigma_w2": mf.sigma_w2, "sigma_b2": np.full_like(mf.sigma_w2, mf.sigma_b2),
                         "q_star": mf.q_star, "chi_1": mf.chi_1, "c_star": mf.c_star, "chi_c": mf.chi_c,
                         "xi_c": mf.xi_c, "depth_6xi": mf.depth_6xi}).with_columns(
        phase=pl.when(pl.col("chi_1") < 1).then(pl.lit("ordered")).otherwise(pl.lit("chaotic")))


def critical_sigma_w2(sigma_b2: float) -> float:
    """The mean-field critical σw² (χ1 = 1) at σb², as a float."""
    return float(theory.critical_sigma_w2(sigma_b2))


def comparison(store: ResultStore) -> pl.LazyFrame:
    """Cutoffs beside trainable depths and the mean-field prediction, one row per (dataset, profile, σb², σw²).

    A full join: every σw² present on either side has a row (nulls on the absent side). Columns: KEYS,
    cutoff_{m} and cutoff_{m}_std for every m in CUTOFF_MEASURES, n_cascade_seeds, cascade_depth,
    cutoff_last_layer, the columns of ``trainable_depth``, and chi_1, xi_c, depth_6xi from mean-field theory.
    """
    measure = pl.col("measure")
    cutoffs = cutoffs_by_sigma(store).group_by(KEYS).agg(
        *[pl.col("cutoff_mean").filter(measure == m).first().alias(f"cutoff_{m}") for m in CUTOFF_MEASURES],
        *[pl.col("cutoff_std").filter(measure == m).first().alias(f"cutoff_{m}_std") for m in CUTOFF_MEASURES],
        n_cascade_seeds=pl.col("n_seeds").max(), cascade_depth=pl.col("depth").max(),
        cutoff_last_layer=pl.col("last_layer").max())
    joined = cutoffs.join(trainable_depth(store), on=KEYS, how="full", coalesce=True)
    points = joined.select("sigma_b2", "sigma_w2").unique().collect()
    theory_rows = [mean_field_frame(part["sigma_w2"].to_numpy(), sigma_b2)
                   for (sigma_b2,), part in points.group_by("sigma_b2")]
    mean_field = pl.concat(theory_rows).select("sigma_b2", "sigma_w2", "chi_1", "xi_c", "depth_6xi")
    return joined.join(mean_field.lazy(), on=["sigma_b2", "sigma_w2"], how="left").sort(KEYS)


def _peaks(frame: pl.DataFrame, column: str, name: str) -> pl.DataFrame:
    """σw² where ``column`` is largest per GROUP: the centre, low and high end of the tied maximum (the grid's
    resolution limits the location), and the peak value. The centre is null (no single peak) where the maximum
    is <= 0 (nothing trainable), where every σw² ties (a flat curve, e.g. every cutoff at its ceiling) or where
    the tied σw² are not neighbours on the grid (two separate maxima)."""
    valid = (frame.filter(pl.col(column).is_not_null() & pl.col(column).is_finite())
             .with_columns(n_valid=pl.len().over(GROUP), position=pl.col("sigma_w2").rank("dense").over(GROUP)))
    top = valid.filter(pl.col(column) == pl.col(column).max().over(GROUP))
    peaks = top.group_by(GROUP).agg(pl.col("sigma_w2").mean().alias(f"{name}_peak_sigma_w2"),
                                    pl.col("sigma_w2").min().alias(f"{name}_peak_lo"),
                                    pl.col("sigma_w2").max().alias(f"{name}_peak_hi"),
                                    pl.col(column).first().alias(f"{name}_peak"),
                                    flat=(pl.len() == pl.col("n_valid").first()) & (pl.len() > 1),
                                    apart=pl.col("position").max() - pl.col("position").min() + 1 > pl.len())
    positive = pl.col(f"{name}_peak") > 0
    return peaks.with_columns(
        pl.when(positive & ~pl.col("flat") & ~pl.col("apart")).then(pl.col(f"{name}_peak_sigma_w2"))
        .alias(f"{name}_peak_sigma_w2"),
        *[pl.when(positive).then(pl.col(f"{name}_peak_{part}")).alias(f"{name}_peak_{part}") for part in ("lo", "hi")],
    ).drop("flat", "apart")


def agreement(comparison_frame: pl.LazyFrame | pl.DataFrame,
              measures: tuple[str, ...] = CUTOFF_MEASURES) -> pl.DataFrame:
    """How well each cutoff measure predicts ℓ_train over σw², per (dataset, profile, σb², measure).

    Columns: GROUP, measure, n_sigma_w2 (σw² with both a finite cutoff and a trainable depth), spearman (rank
    correlation over those σw², average ranks for ties; NaN when either side is constant), cutoff_peak_sigma_w2 /
    _lo / _hi / cutoff_peak, trainable_peak_sigma_w2 / _lo / _hi / trainable_peak (see ``_peaks``: each curve's
    peak over all its σw²; the centre is null where a curve has no single peak), critical_sigma_w2 (mean field),
    cutoff_peak_minus_critical, trainable_peak_minus_critical, cutoff_peak_minus_trainable_peak.
    """
    frame = comparison_frame.lazy().collect() if isinstance(comparison_frame, pl.LazyFrame) else comparison_frame
    rows = []
    trainable = frame.select(GROUP + ["sigma_w2", pl.col("trainable_depth").cast(pl.Float64)])
    trainable_peaks = _peaks(trainable, "trainable_depth", "trainable")
    for m in measures:
        pair = frame.select(GROUP + ["sigma_w2", pl.col(f"cutoff_{m}").alias("cutoff"),
                                     pl.col("trainable_depth").cast(pl.Float64).alias("trainable")])
        both = pair.filter(pl.col("cutoff").is_finite() & pl.col("trainable").is_not_null())
        rho = both.group_by(GROUP).agg(
            n_sigma_w2=pl.len().cast(pl.Int64),
            spearman=pl.corr(pl.col("cutoff").rank("average"), pl.col("trainable").rank("average")))
        groups = pair.select(GROUP).unique()
        rows.append(groups.join(rho, on=GROUP, how="left")
                    .join(_peaks(pair, "cutoff", "cutoff"), on=GROUP, how="left")
                    .join(trainable_peaks, on=GROUP, how="left")
                    .with_columns(measure=pl.lit(m), n_sigma_w2=pl.col("n_sigma_w2").fill_null(0)))
    result = pl.concat(rows, how="diagonal_relaxed")
    critical = {b: critical_sigma_w2(b) for b in result["sigma_b2"].unique().to_list()}
    result = result.with_columns(critical_sigma_w2=pl.col("sigma_b2").replace_strict(critical,
                                                                                      return_dtype=pl.Float64))
    return result.with_columns(
        cutoff_peak_minus_critical=pl.col("cutoff_peak_sigma_w2") - pl.col("critical_sigma_w2"),
        trainable_peak_minus_critical=pl.col("trainable_peak_sigma_w2") - pl.col("critical_sigma_w2"),
        cutoff_peak_minus_trainable_peak=pl.col("cutoff_peak_sigma_w2") - pl.col("trainable_peak_sigma_w2"),
    ).select(GROUP + ["measure", "n_sigma_w2", "spearman",
                      "cutoff_peak_sigma_w2", "cutoff_peak_lo", "cutoff_peak_hi", "cutoff_peak",
                      "trainable_peak_sigma_w2", "trainable_peak_lo", "trainable_peak_hi", "trainable_peak",
                      "critical_sigma_w2", "cutoff_peak_minus_critical", "trainable_peak_minus_critical",
                      "cutoff_peak_minus_trainable_peak"]).sort(GROUP + ["measure"])


def timing(store: ResultStore) -> pl.LazyFrame:
    """Task-seconds spent predicting (cascade runs) and training (baseline runs) per (dataset, profile, σb², σw²).

    Columns: KEYS, predicting_seconds, n_cascade, training_seconds, n_baseline, speedup (training / predicting;
    null unless both kinds ran). One cascade per seed covers every depth; training covers each depth separately.
    """
    kind = pl.col("kind")
    return (table(store, "runs").group_by(KEYS)
            .agg(predicting_seconds=pl.col("seconds").filter(kind == "cascade").sum(),
                 n_cascade=(kind == "cascade").sum().cast(pl.Int64),
                 training_seconds=pl.col("seconds").filter(kind == "baseline").sum(),
                 n_baseline=(kind == "baseline").sum().cast(pl.Int64))
            .pipe(_with_speedup).sort(KEYS))


def timing_total(timing_frame: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """``timing`` summed over σw², per (dataset, profile, σb²)."""
    return (timing_frame.lazy().group_by(GROUP)
            .agg(pl.col("predicting_seconds", "n_cascade", "training_seconds", "n_baseline").sum(),
                 n_sigma_w2=pl.len().cast(pl.Int64))
            .pipe(_with_speedup).sort(GROUP).collect())


def _with_speedup(frame: pl.LazyFrame) -> pl.LazyFrame:
    both = (pl.col("n_cascade") > 0) & (pl.col("n_baseline") > 0) & (pl.col("predicting_seconds") > 0)
    return frame.with_columns(speedup=pl.when(both).then(pl.col("training_seconds") / pl.col("predicting_seconds")))


def execution_lanes(runs: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """What each execution slot of a run did, rebuilt from ``runs`` start and finish times.

    Calls are the distinct (kind, node_id, started_at, finished_at) of ``runs`` (tasks trained together in one
    call share them). Each call goes to the first lane that is free when it starts (interval colouring), so the
    number of lanes is the peak number of calls running at once and a lane is what one actor or trial slot
    did. Columns: lane, kind (the kinds it ran, e.g. 'baseline+cascade'), calls, tasks, busy_seconds,
    gap_seconds (idle between its calls: scheduling overhead), first_start, last_finish.
    """
    calls = (runs.lazy().group_by("kind", "node_id", "started_at", "finished_at").agg(tasks=pl.len())
             .sort("started_at", "finished_at").collect())
    lane_free: list = []  # when each lane's last call finished
    lanes, gaps = [], []
    for start, finish in zip(calls["started_at"], calls["finished_at"]):
        lane = next((i for i, free in enumerate(lane_free) if free <= start), len(lane_free))
        gaps.append((start - lane_free[lane]).total_seconds() if lane < len(lane_free) else 0.0)
        lane_free[lane:lane + 1] = [finish]
        lanes.append(lane)
    return (calls.with_columns(lane=pl.Series(lanes, dtype=pl.Int64), gap=pl.Series(gaps, dtype=pl.Float64),
                               busy=(pl.col("finished_at") - pl.col("started_at")).dt.total_microseconds() / 1e6)
            .group_by("lane")
            .agg(kind=pl.col("kind").unique().sort().str.join("+"), calls=pl.len().cast(pl.Int64),
                 tasks=pl.col("tasks").sum().cast(pl.Int64), busy_seconds=pl.col("busy").sum(),
                 gap_seconds=pl.col("gap").sum(), first_start=pl.col("started_at").min(), last_finish=pl.col("finished_at").max())
            .sort("lane"))


def utilisation(runs: pl.DataFrame | pl.LazyFrame, wall_seconds: float | None = None) -> dict[str, float]:
    """How busy a run's execution slots were: busy seconds over (lanes × wall seconds).

    ``wall_seconds`` defaults to first start → last finish in ``runs``; pass the driver's own wall time to
    charge startup (Ray, actors) and shutdown as well. Keys: wall_seconds, lanes, calls, tasks, busy_seconds,
    utilisation (0..1), idle_seconds (slot-seconds no call was running).
    """
    lanes = execution_lanes(runs)
    span = (lanes["last_finish"].max() - lanes["first_start"].min()).total_seconds()
    wall = span if wall_seconds is None else wall_seconds
    busy = float(lanes["busy_seconds"].sum())
    capacity = lanes.height * wall
    return {"wall_seconds": wall, "lanes": lanes.height, "calls": int(lanes["calls"].sum()),
            "tasks": int(lanes["tasks"].sum()), "busy_seconds": busy,
            "utilisation": busy / capacity if capacity > 0 else float("nan"), "idle_seconds": capacity - busy}


def info_plane_points(store: ResultStore) -> pl.LazyFrame:
    """Information-plane points per (dataset, profile, σb², σw², depth, phase, estimator, param, n_samples, epoch,
    layer), over seeds.

    phase 'untrained': each cascade task's untrained network (epoch 0; depth = the cascade's depth); 'training':
    a baseline trajectory (epoch 0 = before training). Columns: INFO_KEYS, i_xt_mean, i_xt_std, i_ty_mean,
    i_ty_std (nats; over the seeds whose two estimates are finite), n_seeds, n_nonfinite, ln_n (ln N in nats, the
    ceiling of binned I(X;T)), seconds_mean (wall seconds of estimating every layer of one point).
    """
    ok = pl.col("i_xt").is_finite() & pl.col("i_ty").is_finite()
    return (table(store, "info_plane")
            .group_by(INFO_KEYS)
            .agg(i_xt_mean=pl.col("i_xt").filter(ok).mean(), i_xt_std=pl.col("i_xt").filter(ok).std(),
                 i_ty_mean=pl.col("i_ty").filter(ok).mean(), i_ty_std=pl.col("i_ty").filter(ok).std(),
                 n_seeds=ok.sum().cast(pl.Int64), n_nonfinite=(~ok).sum().cast(pl.Int64),
                 seconds_mean=pl.col("seconds").mean())
            .with_columns(ln_n=pl.col("n_samples").cast(pl.Float64).log())
            .sort(INFO_KEYS))


def information_cutoffs(points: pl.LazyFrame | pl.DataFrame, cutoffs: pl.LazyFrame | pl.DataFrame | None = None,
                        estimator: str = "binning", fraction: float = 0.5) -> pl.DataFrame:
    """The information cutoff of each untrained network: the first layer l at which I(X;T_l) (the mean over seeds
    of ``info_plane_points``) falls below ``fraction`` · ln N, beside the reconstruction-entropy cutoffs.

    One row per (dataset, profile, σb², σw²) and estimator setting, the deepest untrained network of each σw².
    Columns: KEYS, depth, estimator, param, n_samples, threshold (nats), info_cutoff (layer; null when I(X;T_l)
    stays above the threshold down to the last layer), last_layer (L: the output layer), i_xt_first / i_xt_last
    (nats, at layer 1 and L), n_seeds; with ``cutoffs`` (``cutoffs_by_sigma``) also re_cutoff_kl_mean,
    re_cutoff_diff_entropy and re_last_layer (the deepest layer the RE cutoff searched).
    """
    untrained = (points.lazy()
                 .filter((pl.col("phase") == "untrained") & (pl.col("estimator") == estimator))
                 .filter(pl.col("depth") == pl.col("depth").max().over(KEYS)))
    threshold = fraction * pl.col("ln_n")
    by_layer = pl.col("i_xt_mean").sort_by("layer")
    frame = (untrained.group_by(KEYS + ["depth", "estimator", "param", "n_samples"])
             .agg(threshold=threshold.first(),
                  info_cutoff=pl.col("layer").filter(pl.col("i_xt_mean") < threshold).min(),
                  last_layer=pl.col("layer").max(), i_xt_first=by_layer.first(), i_xt_last=by_layer.last(),
                  n_seeds=pl.col("n_seeds").min())
             .sort(KEYS + ["param", "n_samples"]).collect())
    if cutoffs is None:
        return frame
    measure = pl.col("measure")
    re = (cutoffs.lazy().group_by(KEYS)
          .agg(re_cutoff_kl_mean=pl.col("cutoff_mean").filter(measure == "kl_mean").first(),
               re_cutoff_diff_entropy=pl.col("cutoff_mean").filter(measure == "diff_entropy").first(),
               re_last_layer=pl.col("last_layer").max()).collect())
    return frame.join(re, on=KEYS, how="left")


def representative_sigma_w2(values, critical: float) -> list[float]:
    """Ordered, near-critical and chaotic σw² out of ``values``: the smallest, the closest to ``critical`` and
    the largest (fewer when there are fewer distinct values)."""
    values = sorted(set(float(v) for v in values))
    if not values:
        return []
    near = min(values, key=lambda v: abs(v - critical))
    return sorted({values[0], near, values[-1]})


def phase_of(sigma_w2: float, critical: float, rtol: float = 0.05) -> str:
    """'near-critical' within rtol of the critical σw², else 'ordered' below and 'chaotic' above."""
    if abs(sigma_w2 - critical) <= rtol * critical:
        return "near-critical"
    return "ordered" if sigma_w2 < critical else "chaotic"


# --------------------------------------------------------------------------------------------------- inventory

@dataclass(frozen=True)
class Inventory:
    """What a results folder holds and what it lacks (a grid may still be running).

    rows: readable rows per table. unreadable_files: files the store skipped (truncated or corrupt).
    coverage: one row per (dataset, profile, σb², σw²) present: cascade_runs, cutoff_seeds, curve_seeds,
    reconstruction_seeds, baseline_runs, trainings, trained_depths, missing_trainings (expected (depth, seed)
    pairs — every depth and seed seen in the σw²'s (dataset, profile, σb²) — with no training),
    missing_depths. failed: tasks whose attempts failed and that have no finished run. duplicates: (kind, σw²,
    depth, seed) points finished by more than one task (different configs in one folder). devices per kind.
    grids: the names of the grids recorded in ``_grids/`` (one per run of the driver with new settings).
    plan: one row per (kind, dataset, profile, σb², σw²) of the recorded grids' tasks: planned, finished,
    failed (attempts failed, no finished run), not_run (neither, or still running), unfinished_depths,
    unfinished_seeds; empty when no grid is recorded. unplanned: finished tasks of no recorded grid.
    What is missing is judged against the recorded grids; for results written before grids were recorded, against
    what is present (then a σw² no task of which has finished is not seen).
    """

    location: str
    rows: dict[str, int]
    unreadable_files: tuple[str, ...]
    coverage: pl.DataFrame
    failed: pl.DataFrame
    duplicates: pl.DataFrame
    devices: dict[str, list[str]]
    loss_fns: list[str]
    thresholds: list[float]
    grids: tuple[str, ...]
    plan: pl.DataFrame
    unplanned: int
    grid_error: str | None

    @property
    def planned(self) -> bool:
        """Whether a planned grid is recorded (results from before grids were recorded have none)."""
        return self.plan.height > 0

    @property
    def absent(self) -> list[str]:
        """The tables this analysis reads that have no readable rows (optional tables are not listed, nor, when a
        grid is recorded, the tables of a kind of task it did not plan)."""
        kinds = set(self.plan["kind"]) if self.planned else set(TABLE_KIND.values())
        return [name for name in PRODUCERS if name not in OPTIONAL and self.rows.get(name, 0) == 0
                and (name not in TABLE_KIND or TABLE_KIND[name] in kinds)]

    def progress(self) -> str:
        """'N of M planned tasks finished (cascade a of b; baseline c of d, k failed)', or why it cannot say."""
        if not self.planned:
            return ("No planned grid is recorded (results written before the driver recorded its grids): what is "
                    "missing is judged by what is present")
        totals = self.plan.group_by("kind").agg(pl.col("planned", "finished", "failed", "not_run").sum()).rows(
            named=True)
        parts = [f"{t['kind']} {t['finished']} of {t['planned']}"
                 + (f", {t['failed']} failed" if t["failed"] else "")
                 + (f", {t['not_run']} not run yet" if t["not_run"] else "")
                 for t in sorted(totals, key=lambda t: (t["kind"] != "cascade", t["kind"]))]
        finished, planned = sum(t["finished"] for t in totals), sum(t["planned"] for t in totals)
        return f"{finished} of {planned} planned tasks finished ({'; '.join(parts)})"

    def problems(self) -> list[str]:
        """One sentence per thing that is missing or suspicious; empty when the results are complete."""
        out = [f"table '{name}' has no rows; {PRODUCERS[name]}" for name in self.absent]
        if self.grid_error:
            out.append(self.grid_error)
        if self.unreadable_files:
            out.append(f"{len(self.unreadable_files)} unreadable (truncated or corrupt) file(s) skipped: "
                       + ", ".join(self.unreadable_files))
        for (dataset, profile, sigma_b2), part in self.coverage.group_by(GROUP, maintain_order=True):
            where = f"{dataset}/{profile} σb²={sigma_b2:g}"
            lost = part.filter(pl.col("cascade_runs") > pl.col("cutoff_seeds"))["sigma_w2"]
            lost_training = part.filter(pl.col("baseline_runs") > pl.col("trainings"))["sigma_w2"]
            if len(lost):
                out.append(f"{where}: σw² {_list(lost)} have finished cascade runs whose cutoffs are unreadable")
            if len(lost_training):
                out.append(f"{where}: σw² {_list(lost_training)} have finished baseline runs whose training "
                           "summaries are unreadable")
            if not self.planned:
                out += _gaps_judged_by_what_is_present(where, part)
        for row in self.plan.filter(pl.col("finished") < pl.col("planned")).iter_rows(named=True):
            failed = f"; {row['failed']} failed" if row["failed"] else ""
            out.append(f"{row['dataset']}/{row['profile']} σb²={row['sigma_b2']:g}: σw² {row['sigma_w2']:g}: "
                       f"{row['finished']} of {row['planned']} {row['kind']} tasks finished (missing depth(s) "
                       f"{_list(row['unfinished_depths'])}, seed(s) {_list(row['unfinished_seeds'])}{failed})")
        if self.planned and self.unplanned:
            out.append(f"{self.unplanned} finished task(s) belong to no recorded grid (written before the driver "
                       "recorded its grids); what their grid lacks is not judged")
        if self.failed.height:
            out.append(f"{self.failed.height} task(s) failed and have no finished run: "
                       + "; ".join(f"{r['kind']} σw²={r['sigma_w2']:g} depth {r['depth']} seed {r['seed']}: "
                                   f"{r['error']}" for r in self.failed.head(5).iter_rows(named=True))
                       + (" …" if self.failed.height > 5 else ""))
        if self.duplicates.height:
            out.append(f"{self.duplicates.height} (kind, σw², depth, seed) point(s) were finished by more than one "
                       "task (grids with different settings in one folder); they are averaged as extra seeds")
        if len(self.loss_fns) > 1 or len(self.thresholds) > 1:
            out.append(f"trainings mix losses {self.loss_fns} / accuracy thresholds {self.thresholds}; "
                       "ℓ_train mixes them too")
        return out


def _gaps_judged_by_what_is_present(where: str, part: pl.DataFrame) -> list[str]:
    """Coverage gaps of one (dataset, profile, σb²) when no grid is recorded: one side present, the other not."""
    out = []
    no_train = part.filter((pl.col("cutoff_seeds") > 0) & (pl.col("trainings") == 0))["sigma_w2"]
    no_cut = part.filter((pl.col("trainings") > 0) & (pl.col("cutoff_seeds") == 0))["sigma_w2"]
    if len(no_train):
        out.append(f"{where}: σw² {_list(no_train)} have cutoffs but no trainings")
    if len(no_cut):
        out.append(f"{where}: σw² {_list(no_cut)} have trainings but no cutoffs")
    for row in part.filter(pl.col("missing_trainings") > 0).iter_rows(named=True):
        out.append(f"{where}: σw² {row['sigma_w2']:g} lacks {row['missing_trainings']} training(s) at "
                   f"depth(s) {_list(row['missing_depths'])}")
    return out


def _list(values) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def missing(store: ResultStore) -> Inventory:
    """An inventory of the results: rows per table, unreadable files, per-σw² coverage, failures, and planned vs
    finished tasks of the recorded grids (see Inventory)."""
    columns = {name: [c for c in ("task_id", "kind", *KEYS, "depth", "seed", "loss_fn", "accuracy_threshold",
                                  "device", "attempt", "error") if c in schema.names] for name, schema in TABLES.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CorruptFileWarning)
        frames = {name: store.scan(name).select(columns[name]).collect() for name in TABLES}
    unreadable = sorted({_quoted_path(str(w.message)) for w in caught if issubclass(w.category, CorruptFileWarning)})
    for w in caught:
        if not issubclass(w.category, CorruptFileWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    runs, summary = frames["runs"], frames["train_summary"]
    seeds = pl.col("seed").n_unique().cast(pl.Int64)
    parts = [runs.group_by(KEYS).agg(cascade_runs=(pl.col("kind") == "cascade").sum().cast(pl.Int64),
                                     baseline_runs=(pl.col("kind") == "baseline").sum().cast(pl.Int64)),
             frames["cutoffs"].group_by(KEYS).agg(cutoff_seeds=seeds),
             frames["curves"].group_by(KEYS).agg(curve_seeds=seeds),
             frames["reconstructions"].group_by(KEYS).agg(reconstruction_seeds=seeds),
             summary.group_by(KEYS).agg(trainings=pl.len().cast(pl.Int64),
                                        trained_depths=pl.col("depth").unique().sort())]
    coverage = parts[0]
    for part in parts[1:]:
        coverage = coverage.join(part, on=KEYS, how="full", coalesce=True)
    counts = ["cascade_runs", "baseline_runs", "cutoff_seeds", "curve_seeds", "reconstruction_seeds", "trainings"]
    coverage = coverage.with_columns(pl.col(counts).fill_null(0))

    baselines = pl.concat([runs.filter(pl.col("kind") == "baseline").select(KEYS + ["depth", "seed"]),
                           summary.select(KEYS + ["depth", "seed"])])
    expected = (coverage.select(KEYS)
                .join(baselines.select(GROUP + ["depth"]).unique(), on=GROUP)
                .join(baselines.select(GROUP + ["seed"]).unique(), on=GROUP))
    absent = expected.join(summary.select(KEYS + ["depth", "seed"]).unique(), on=KEYS + ["depth", "seed"],
                           how="anti")
    gaps = absent.group_by(KEYS).agg(missing_trainings=pl.len().cast(pl.Int64),
                                     missing_depths=pl.col("depth").unique().sort())
    coverage = (coverage.join(gaps, on=KEYS, how="left")
                .with_columns(pl.col("missing_trainings").fill_null(0)).sort(KEYS))

    failures = frames["failures"]
    failed = (failures.join(runs.select("task_id"), on="task_id", how="anti")
              .group_by("task_id").agg(pl.col("kind", "dataset", "sigma_w2", "depth", "seed").first(),
                                       attempts=pl.len().cast(pl.Int64), error=pl.col("error").sort_by("attempt").last())
              .sort("kind", "dataset", "sigma_w2", "depth", "seed"))
    duplicates = (runs.group_by(["kind"] + KEYS + ["depth", "seed"]).agg(tasks=pl.len().cast(pl.Int64))
                  .filter(pl.col("tasks") > 1))
    devices = {kind: sorted(part["device"].unique().to_list())
               for (kind,), part in runs.group_by("kind")}
    try:
        grids, grid_error = store.planned_grids(), None
        plan, unplanned = _plan(grids, runs["task_id"], failed["task_id"])
    except (OSError, ValueError, KeyError, TypeError) as e:  # a damaged grid record: judge by what is present
        grids, grid_error = [], f"the planned-grid records in _grids/ are unreadable ({e!r}); judged by what is present"
        plan, unplanned = _plan([], runs["task_id"], failed["task_id"])
    return Inventory(location=store.location, rows={name: frame.height for name, frame in frames.items()},
                     unreadable_files=tuple(unreadable), coverage=coverage, failed=failed, duplicates=duplicates,
                     devices=devices, loss_fns=sorted(summary["loss_fn"].unique().to_list()),
                     thresholds=sorted(summary["accuracy_threshold"].unique().to_list()),
                     grids=tuple(g["name"] for g in grids), plan=plan, unplanned=unplanned, grid_error=grid_error)


_PLANNED_TASK = {"task_id": pl.String, "kind": pl.String, "dataset": pl.String, "profile": pl.String,
                 "sigma_w2": pl.Float64, "sigma_b2": pl.Float64, "depth": pl.Int64, "seed": pl.Int64}


def _plan(grids: list[dict], finished: pl.Series, failed: pl.Series) -> tuple[pl.DataFrame, int]:
    """Planned vs finished vs failed tasks per (kind, KEYS) over every recorded grid, and how many finished tasks
    no grid planned (see Inventory.plan)."""
    tasks = pl.DataFrame([{k: t[k] for k in _PLANNED_TASK} for g in grids for t in g["tasks"]],
                         schema=_PLANNED_TASK).unique("task_id")
    status = (pl.when(pl.col("task_id").is_in(finished.implode())).then(pl.lit("finished"))
              .when(pl.col("task_id").is_in(failed.implode())).then(pl.lit("failed")).otherwise(pl.lit("not_run")))
    unfinished = pl.col("status") != "finished"
    plan = (tasks.with_columns(status=status).group_by(["kind"] + KEYS)
            .agg(planned=pl.len().cast(pl.Int64),
                 finished=(~unfinished).sum().cast(pl.Int64),
                 failed=(pl.col("status") == "failed").sum().cast(pl.Int64),
                 not_run=(pl.col("status") == "not_run").sum().cast(pl.Int64),
                 unfinished_depths=pl.col("depth").filter(unfinished).unique().sort(),
                 unfinished_seeds=pl.col("seed").filter(unfinished).unique().sort())
            .sort(KEYS + [pl.col("kind") != "cascade"]))
    unplanned = int((~finished.is_in(tasks["task_id"].implode())).sum()) if tasks.height else 0
    return plan, unplanned


def _quoted_path(message: str) -> str:
    match = re.search(r"file '([^']*)'", message)
    return match.group(1) if match else message

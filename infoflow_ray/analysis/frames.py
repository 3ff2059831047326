"""The analysis frames: cutoffs, curves, accuracies, ℓ_train and their comparison, read from a results folder
(conventions: the ``analysis`` package docstring)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from infoflow_ray import theory
from infoflow_ray.analysis.mean_field import mean_field_frame
from infoflow_ray.errors import ResultsError
from infoflow_ray.store import CURVE_MEASURES, CUTOFF_MEASURES, GROUP, KEYS, ResultStore
from infoflow_ray.theory import regime_of, representative_sigma_w2  # noqa: F401  (analysis re-exports them)

INFO_KEYS = KEYS + ["depth", "stage", "estimator", "param", "n_samples", "epoch", "step", "layer"]

_CASCADE = "cascade tasks write it: run jobs/full_grid.py without --only baseline"
_BASELINE = "baseline trainings write it: run jobs/full_grid.py without --only cascade"
PRODUCERS = {
    "runs": "every finished task writes a row: run jobs/full_grid.py",
    "curves": _CASCADE,
    "cutoffs": _CASCADE,
    "reconstructions": _CASCADE,
    "train_epochs": _BASELINE,
    "train_summary": _BASELINE,
    "info_plane": "the information-plane probes write it: run jobs/full_grid.py --info-plane "
    "(or set [info_plane] enabled = true)",
    "failures": "failed task attempts write it",
    "search": "the adaptive search writes it: run jobs/full_grid.py --search (the default preset searches)",
    **dict.fromkeys(
        ("trained_curves", "trained_cutoffs", "retraced", "perfect_inputs"),
        "cascades of trained networks write it: run jobs/full_grid.py --interpret (or [interpret] enabled = true)",
    ),
    "tune_trials": "jobs/predict_then_tune.py writes it",
    "predictors": "predictor tasks write it: run jobs/full_grid.py with predictors = [names] in the grid config "
    "(e.g. --preset predictors-laptop)",
}
OPTIONAL = ("info_plane", "failures", "search", "trained_curves", "trained_cutoffs", "retraced", "perfect_inputs")
OPTIONAL += ("tune_trials", "predictors")  # tables whose absence is no gap
TABLE_KIND = {
    "curves": "cascade",
    "cutoffs": "cascade",
    "reconstructions": "cascade",
    "train_epochs": "baseline",
    "train_summary": "baseline",
}


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
    return (
        _deepest_cascade(table(store, "cutoffs"))
        .group_by(KEYS + ["measure"])
        .agg(
            cutoff_mean=pl.col("cutoff_layer").filter(ok).mean(),
            cutoff_std=pl.col("cutoff_layer").filter(ok).std(),
            n_seeds=ok.sum().cast(pl.Int64),
            n_nonfinite=(~ok).sum().cast(pl.Int64),
            n_unsaturated=(ok & ~pl.col("saturated")).sum().cast(pl.Int64),
            per_image_std=pl.col("cutoff_std").filter(ok & pl.col("cutoff_std").is_not_nan()).mean(),
            last_layer=pl.col("last_layer").max(),
            depth=pl.col("depth").max(),
        )
        .sort(KEYS + ["measure"])
    )


def curves_by_sigma(store: ResultStore, measures: tuple[str, ...] = CURVE_MEASURES) -> pl.LazyFrame:
    """Entropy curves per (dataset, profile, σb², σw², measure, layer), over seeds (finite values only).

    Columns: KEYS, depth (cascade depth), measure, layer (0 = input), value_mean, value_std, n_seeds, n_nonfinite.
    """
    return (
        _deepest_cascade(table(store, "curves"))
        .filter(pl.col("measure").is_in(list(measures)))
        .group_by(KEYS + ["depth", "measure", "layer"])
        .agg(
            value_mean=pl.col("value").filter("finite").mean(),
            value_std=pl.col("value").filter("finite").std(),
            n_seeds=pl.col("finite").sum().cast(pl.Int64),
            n_nonfinite=(~pl.col("finite")).sum().cast(pl.Int64),
        )
        .sort(KEYS + ["measure", "layer"])
    )


def accuracy_grid(store: ResultStore) -> pl.LazyFrame:
    """Baseline outcome per (dataset, profile, σb², σw², depth), over seeds: the phase diagram's cells.

    Columns: KEYS, depth, best_test_accuracy (mean over seeds of each training's best), best_test_accuracy_std,
    reached_fraction (share of seeds that reached the threshold), epochs_mean, n_seeds.
    """
    return (
        table(store, "train_summary")
        .group_by(KEYS + ["depth"])
        .agg(
            best_test_accuracy=pl.col("best_test_accuracy").mean(),
            best_test_accuracy_std=pl.col("best_test_accuracy").std(),
            reached_fraction=pl.col("reached_threshold").cast(pl.Float64).mean(),
            epochs_mean=pl.col("epochs").cast(pl.Float64).mean(),
            n_seeds=pl.len().cast(pl.Int64),
        )
        .sort(KEYS + ["depth"])
    )


def trainable_depth(store: ResultStore) -> pl.LazyFrame:
    """ℓ_train per (dataset, profile, σb², σw²) from the baseline trainings.

    Columns: KEYS, trainable_depth (largest trained depth that reached the threshold in any seed; 0 when none
    did), any_trainable, trainable_depth_mean / trainable_depth_std (over the per-seed values, same rule),
    deepest_trained, n_trained (trainings), n_reached, n_seeds, best_test_accuracy (the best of all trainings),
    accuracy_threshold, loss_fn (comma-joined when mixed).
    """
    summary = table(store, "train_summary")
    reached_depth = pl.col("depth").filter("reached_threshold").max().fill_null(0)
    per_seed = (
        summary.group_by(KEYS + ["seed"])
        .agg(seed_depth=reached_depth)
        .group_by(KEYS)
        .agg(
            trainable_depth_mean=pl.col("seed_depth").cast(pl.Float64).mean(),
            trainable_depth_std=pl.col("seed_depth").cast(pl.Float64).std(),
            n_seeds=pl.len().cast(pl.Int64),
        )
    )
    overall = summary.group_by(KEYS).agg(
        trainable_depth=reached_depth,
        any_trainable=pl.col("reached_threshold").any(),
        deepest_trained=pl.col("depth").max(),
        n_trained=pl.len().cast(pl.Int64),
        n_reached=pl.col("reached_threshold").sum().cast(pl.Int64),
        best_test_accuracy=pl.col("best_test_accuracy").max(),
        accuracy_threshold=pl.col("accuracy_threshold").max(),
        loss_fn=pl.col("loss_fn").unique().sort().str.join(","),
    )
    return overall.join(per_seed, on=KEYS).sort(KEYS)


def comparison(store: ResultStore) -> pl.LazyFrame:
    """Cutoffs beside trainable depths and the mean-field prediction, one row per (dataset, profile, σb², σw²).

    A full join: every σw² present on either side has a row (nulls on the absent side). Columns: KEYS,
    cutoff_{m} and cutoff_{m}_std for every m in CUTOFF_MEASURES, n_cascade_seeds, cascade_depth,
    cutoff_last_layer, the columns of ``trainable_depth``, and chi_1, xi_c, depth_6xi from mean-field theory.
    """
    measure = pl.col("measure")
    cutoffs = (
        cutoffs_by_sigma(store)
        .group_by(KEYS)
        .agg(
            *[pl.col("cutoff_mean").filter(measure == m).first().alias(f"cutoff_{m}") for m in CUTOFF_MEASURES],
            *[pl.col("cutoff_std").filter(measure == m).first().alias(f"cutoff_{m}_std") for m in CUTOFF_MEASURES],
            n_cascade_seeds=pl.col("n_seeds").max(),
            cascade_depth=pl.col("depth").max(),
            cutoff_last_layer=pl.col("last_layer").max(),
        )
    )
    joined = cutoffs.join(trainable_depth(store), on=KEYS, how="full", coalesce=True)
    points = joined.select("sigma_b2", "sigma_w2").unique().collect()
    theory_rows = [
        mean_field_frame(part["sigma_w2"].to_numpy(), sigma_b2) for (sigma_b2,), part in points.group_by("sigma_b2")
    ]
    mean_field = pl.concat(theory_rows).select("sigma_b2", "sigma_w2", "chi_1", "xi_c", "depth_6xi")
    return joined.join(mean_field.lazy(), on=["sigma_b2", "sigma_w2"], how="left").sort(KEYS)


def _exact_peaks(frame: pl.DataFrame, column: str, name: str) -> pl.DataFrame:
    """The exact peak: σw² where ``column`` is largest per GROUP, ties only at the maximum itself (the search's
    ``search.locate_tolerant_peak`` is the other rule, ties within half a layer). Columns: the centre, low and high
    end of the tied maximum (the grid's resolution limits the location), and the peak value. The centre is null
    (no single peak) where the maximum is <= 0 (nothing trainable), where every σw² ties (a flat curve, e.g. every
    cutoff at its ceiling) or where the tied σw² are not neighbours on the grid (two separate maxima)."""
    valid = frame.filter(pl.col(column).is_not_null() & pl.col(column).is_finite()).with_columns(
        n_valid=pl.len().over(GROUP), position=pl.col("sigma_w2").rank("dense").over(GROUP)
    )
    top = valid.filter(pl.col(column) == pl.col(column).max().over(GROUP))
    peaks = top.group_by(GROUP).agg(
        pl.col("sigma_w2").mean().alias(f"{name}_peak_sigma_w2"),
        pl.col("sigma_w2").min().alias(f"{name}_peak_lo"),
        pl.col("sigma_w2").max().alias(f"{name}_peak_hi"),
        pl.col(column).first().alias(f"{name}_peak"),
        flat=(pl.len() == pl.col("n_valid").first()) & (pl.len() > 1),
        apart=pl.col("position").max() - pl.col("position").min() + 1 > pl.len(),
    )
    positive = pl.col(f"{name}_peak") > 0
    return peaks.with_columns(
        pl.when(positive & ~pl.col("flat") & ~pl.col("apart"))
        .then(pl.col(f"{name}_peak_sigma_w2"))
        .alias(f"{name}_peak_sigma_w2"),
        *[pl.when(positive).then(pl.col(f"{name}_peak_{part}")).alias(f"{name}_peak_{part}") for part in ("lo", "hi")],
    ).drop("flat", "apart")


def agreement(
    comparison_frame: pl.LazyFrame | pl.DataFrame, measures: tuple[str, ...] = CUTOFF_MEASURES
) -> pl.DataFrame:
    """How well each cutoff measure predicts ℓ_train over σw², per (dataset, profile, σb², measure).

    Columns: GROUP, measure, n_sigma_w2 (σw² with both a finite cutoff and a trainable depth), spearman (rank
    correlation over those σw², average ranks for ties; NaN when either side is constant), cutoff_peak_sigma_w2 /
    _lo / _hi / cutoff_peak, trainable_peak_sigma_w2 / _lo / _hi / trainable_peak (see ``_exact_peaks``: each curve's
    exact peak over all its σw²; the centre is null where a curve has no single peak), critical_sigma_w2 (mean field),
    cutoff_peak_minus_critical, trainable_peak_minus_critical, cutoff_peak_minus_trainable_peak.
    """
    frame = comparison_frame.lazy().collect() if isinstance(comparison_frame, pl.LazyFrame) else comparison_frame
    rows = []
    trainable = frame.select(GROUP + ["sigma_w2", pl.col("trainable_depth").cast(pl.Float64)])
    trainable_peaks = _exact_peaks(trainable, "trainable_depth", "trainable")
    for m in measures:
        pair = frame.select(
            GROUP
            + [
                "sigma_w2",
                pl.col(f"cutoff_{m}").alias("cutoff"),
                pl.col("trainable_depth").cast(pl.Float64).alias("trainable"),
            ]
        )
        both = pair.filter(pl.col("cutoff").is_finite() & pl.col("trainable").is_not_null())
        rho = both.group_by(GROUP).agg(
            n_sigma_w2=pl.len().cast(pl.Int64),
            spearman=pl.corr(pl.col("cutoff").rank("average"), pl.col("trainable").rank("average")),
        )
        groups = pair.select(GROUP).unique()
        rows.append(
            groups.join(rho, on=GROUP, how="left")
            .join(_exact_peaks(pair, "cutoff", "cutoff"), on=GROUP, how="left")
            .join(trainable_peaks, on=GROUP, how="left")
            .with_columns(measure=pl.lit(m), n_sigma_w2=pl.col("n_sigma_w2").fill_null(0))
        )
    result = pl.concat(rows, how="diagonal_relaxed")
    critical = {b: theory.critical_sigma_w2(b) for b in result["sigma_b2"].unique().to_list()}
    result = result.with_columns(critical_sigma_w2=pl.col("sigma_b2").replace_strict(critical, return_dtype=pl.Float64))
    return (
        result.with_columns(
            cutoff_peak_minus_critical=pl.col("cutoff_peak_sigma_w2") - pl.col("critical_sigma_w2"),
            trainable_peak_minus_critical=pl.col("trainable_peak_sigma_w2") - pl.col("critical_sigma_w2"),
            cutoff_peak_minus_trainable_peak=pl.col("cutoff_peak_sigma_w2") - pl.col("trainable_peak_sigma_w2"),
        )
        .select(
            GROUP
            + [
                "measure",
                "n_sigma_w2",
                "spearman",
                "cutoff_peak_sigma_w2",
                "cutoff_peak_lo",
                "cutoff_peak_hi",
                "cutoff_peak",
                "trainable_peak_sigma_w2",
                "trainable_peak_lo",
                "trainable_peak_hi",
                "trainable_peak",
                "critical_sigma_w2",
                "cutoff_peak_minus_critical",
                "trainable_peak_minus_critical",
                "cutoff_peak_minus_trainable_peak",
            ]
        )
        .sort(GROUP + ["measure"])
    )


def info_plane_points(store: ResultStore) -> pl.LazyFrame:
    """Information-plane points per (dataset, profile, σb², σw², depth, stage, estimator, param, n_samples, epoch,
    step, layer), over seeds.

    stage 'untrained': each cascade task's untrained network (epoch 0; depth = the cascade's depth); 'training':
    a baseline trajectory (epoch 0 = before training), or a point of ``jobs/info_plane.py`` (``step``: SGD steps
    done, ``epoch`` null). Columns: INFO_KEYS, i_xt_mean, i_xt_std, i_ty_mean,
    i_ty_std (nats; over the seeds whose two estimates are finite), n_seeds, n_nonfinite, ln_n (ln N in nats, the
    ceiling of binned I(X;T)), seconds_mean (wall seconds of estimating every layer of one point).
    """
    ok = pl.col("i_xt").is_finite() & pl.col("i_ty").is_finite()
    return (
        table(store, "info_plane")
        .group_by(INFO_KEYS)
        .agg(
            i_xt_mean=pl.col("i_xt").filter(ok).mean(),
            i_xt_std=pl.col("i_xt").filter(ok).std(),
            i_ty_mean=pl.col("i_ty").filter(ok).mean(),
            i_ty_std=pl.col("i_ty").filter(ok).std(),
            n_seeds=ok.sum().cast(pl.Int64),
            n_nonfinite=(~ok).sum().cast(pl.Int64),
            seconds_mean=pl.col("seconds").mean(),
        )
        .with_columns(ln_n=pl.col("n_samples").cast(pl.Float64).log())
        .sort(INFO_KEYS)
    )


def information_cutoffs(
    points: pl.LazyFrame | pl.DataFrame,
    cutoffs: pl.LazyFrame | pl.DataFrame | None = None,
    estimator: str = "binning",
    fraction: float = 0.5,
) -> pl.DataFrame:
    """The information cutoff of each untrained network: the first layer l at which I(X;T_l) (the mean over seeds
    of ``info_plane_points``) falls below ``fraction`` · ln N, beside the reconstruction-entropy cutoffs.

    One row per (dataset, profile, σb², σw²) and estimator setting, the deepest untrained network of each σw².
    Columns: KEYS, depth, estimator, param, n_samples, threshold (nats), info_cutoff (layer; null when I(X;T_l)
    stays above the threshold down to the last layer), last_layer (L: the output layer), i_xt_first / i_xt_last
    (nats, at layer 1 and L), n_seeds; with ``cutoffs`` (``cutoffs_by_sigma``) also re_cutoff_kl_mean,
    re_cutoff_diff_entropy and re_last_layer (the deepest layer the RE cutoff searched).
    """
    untrained = (
        points.lazy()
        .filter((pl.col("stage") == "untrained") & (pl.col("estimator") == estimator))
        .filter(pl.col("depth") == pl.col("depth").max().over(KEYS))
    )
    threshold = fraction * pl.col("ln_n")
    by_layer = pl.col("i_xt_mean").sort_by("layer")
    frame = (
        untrained.group_by(KEYS + ["depth", "estimator", "param", "n_samples"])
        .agg(
            threshold=threshold.first(),
            info_cutoff=pl.col("layer").filter(pl.col("i_xt_mean") < threshold).min(),
            last_layer=pl.col("layer").max(),
            i_xt_first=by_layer.first(),
            i_xt_last=by_layer.last(),
            n_seeds=pl.col("n_seeds").min(),
        )
        .sort(KEYS + ["param", "n_samples"])
        .collect()
    )
    if cutoffs is None:
        return frame
    measure = pl.col("measure")
    re = (
        cutoffs.lazy()
        .group_by(KEYS)
        .agg(
            re_cutoff_kl_mean=pl.col("cutoff_mean").filter(measure == "kl_mean").first(),
            re_cutoff_diff_entropy=pl.col("cutoff_mean").filter(measure == "diff_entropy").first(),
            re_last_layer=pl.col("last_layer").max(),
        )
        .collect()
    )
    return frame.join(re, on=KEYS, how="left")

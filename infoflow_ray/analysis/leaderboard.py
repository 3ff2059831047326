"""The predictor leaderboard: which prediction of trainable depth a user should trust, at what cost.

For each (dataset, profile, σb²) — the width is the profile's — and each predictor (``infoflow_ray.predictors``,
the cascade's cutoffs included):

- ``spearman``: the rank correlation over σw² of the predictor's value with ℓ_train (the truth). The value is the
  predicted depth where the predictor has one, else its score oriented so that higher = more trainable (the
  score's sign flipped where lower is better), on the deepest network it ran on, averaged over seeds;
- ``auroc``: how well it separates the trained (σw², L, seed) cells that reached the accuracy threshold from those
  that did not (Mann–Whitney, ties count ½; no threshold needed). A cell's score is predicted depth − L for a
  depth predictor, else the oriented score of the depth-L network (of the deepest one it ran on when it did not
  run at L);
- ``seconds_per_network``: the predictor's task-seconds per network (for a cutoff: the cascade task's).

The truth is ℓ_train from ``train_summary`` (the deepest trained depth that reached the threshold): at the largest
budget stored when the table has a ``budget`` column, otherwise at the trainings' own budget (``max_epochs``,
stopping at the threshold). No predicted depth is fitted here: depths come from rules fixed in advance.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from infoflow_ray import predictors
from infoflow_ray.analysis.frames import GROUP, KEYS, table
from infoflow_ray.predictors import registry
from infoflow_ray.predictors.cascade import CASCADE_MEASURES
from infoflow_ray.store import ResultStore


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank (±inf rank as the extremes)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    sorted_values = values[order]
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or sorted_values[i] != sorted_values[start]:
            ranks[order[start:i]] = 0.5 * (start + i - 1) + 1
            start = i
    return ranks


def spearman(x, y) -> float:
    """Spearman's rank correlation of paired values (NaN pairs dropped); NaN with < 3 pairs or a constant side."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return math.nan
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def auroc(scores, labels) -> float:
    """P(score of a positive > score of a negative) + ½ P(tie); NaN scores dropped; NaN without both classes."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    keep = ~np.isnan(scores)
    scores, labels = scores[keep], labels[keep]
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _ranks(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def predictor_rows(store: ResultStore) -> pl.DataFrame:
    """Every prediction, one row per (KEYS, depth, seed, predictor): the ``predictors`` table and the cascade's
    cutoffs read as predictors. Columns: KEYS, depth, seed, predictor, kind, score, predicted_depth (NaN: none),
    higher_is_better, seconds (task-seconds per network)."""
    columns = KEYS + ["depth", "seed", "predictor", "kind", "score", "predicted_depth", "higher_is_better", "seconds"]
    parts = []
    stored = store.scan("predictors").collect()
    if stored.height:
        parts.append(stored.rename({"predictor_kind": "kind"}).select(columns))
    cutoffs = store.scan("cutoffs").filter(pl.col("measure").is_in(CASCADE_MEASURES)).collect()
    if cutoffs.height:
        seconds = store.scan("runs").filter(pl.col("kind") == "cascade").select("task_id", "seconds").collect()
        parts.append(
            cutoffs.join(seconds, on="task_id", how="left")
            .with_columns(
                predictor=pl.col("measure"),
                kind=pl.lit("cascade"),
                score=pl.col("cutoff_layer"),
                predicted_depth=pl.col("cutoff_layer"),
                higher_is_better=pl.lit(True),
            )
            .select(columns)
        )
    if not parts:
        return pl.DataFrame(schema={c: pl.Float64 for c in columns})
    return pl.concat(parts, how="vertical_relaxed")


def truth_cells(store: ResultStore) -> pl.DataFrame:
    """The trained cells: KEYS, depth, seed, reached (the threshold), at the largest budget when budgets differ."""
    summary = table(store, "train_summary").collect()
    if "budget" in summary.columns:
        summary = summary.filter(pl.col("budget") == pl.col("budget").max().over(KEYS + ["depth", "seed"]))
    return summary.select(KEYS + ["depth", "seed", pl.col("reached_threshold").alias("reached")])


def truth_depths(cells: pl.DataFrame) -> pl.DataFrame:
    """ℓ_train per (KEYS): the mean over seeds of each seed's deepest depth that reached the threshold (0: none)."""
    return (
        cells.group_by(KEYS + ["seed"])
        .agg(seed_depth=pl.col("depth").filter("reached").max().fill_null(0))
        .group_by(KEYS)
        .agg(trainable_depth=pl.col("seed_depth").cast(pl.Float64).mean())
    )


def _oriented(frame: pl.DataFrame) -> pl.Expr:
    """The value that ranks: the predicted depth where given, else the score with higher = more trainable."""
    signed = pl.when(pl.col("higher_is_better")).then(pl.col("score")).otherwise(-pl.col("score"))
    return pl.when(pl.col("predicted_depth").is_nan()).then(signed).otherwise(pl.col("predicted_depth"))


def leaderboard(predictions: pl.DataFrame, cells: pl.DataFrame) -> pl.DataFrame:
    """The leaderboard (module docstring) from ``predictor_rows`` and ``truth_cells``: one row per (GROUP,
    predictor) with kind, spearman, auroc, seconds_per_network, n_sigma_w2, n_cells; best Spearman first."""
    if predictions.height == 0 or cells.height == 0:
        return pl.DataFrame()
    preds = predictions.with_columns(value=_oriented(predictions), has_depth=pl.col("predicted_depth").is_not_nan())
    deepest = preds.filter(pl.col("depth") == pl.col("depth").max().over(GROUP + ["predictor"]))
    per_sigma = deepest.group_by(GROUP + ["predictor", "sigma_w2"]).agg(value=pl.col("value").mean())
    truth = truth_depths(cells)
    # a cell's score: the prediction of its own depth's network, else of the deepest network the predictor saw
    fallback = deepest.select(GROUP + ["sigma_w2", "seed", "predictor", "value", "has_depth"])
    exact = preds.select(GROUP + ["sigma_w2", "depth", "seed", "predictor", "value", "has_depth"])
    names = preds.select(GROUP + ["predictor"]).unique()
    scored = (
        cells.join(names, on=GROUP)
        .join(exact, on=GROUP + ["sigma_w2", "depth", "seed", "predictor"], how="left")
        .join(fallback, on=GROUP + ["sigma_w2", "seed", "predictor"], how="left", suffix="_deepest")
        .with_columns(
            value=pl.coalesce("value", "value_deepest"), has_depth=pl.coalesce("has_depth", "has_depth_deepest")
        )
        .with_columns(
            cell_score=pl.when(pl.col("has_depth")).then(pl.col("value") - pl.col("depth")).otherwise(pl.col("value"))
        )
    )
    seconds = preds.group_by(GROUP + ["predictor"]).agg(
        seconds_per_network=pl.col("seconds").mean(), kind=pl.col("kind").first()
    )
    rows = []
    for key, group in per_sigma.group_by(GROUP + ["predictor"]):
        joined = group.join(truth, on=GROUP + ["sigma_w2"])
        cell_rows = scored.filter(*[pl.col(c) == v for c, v in zip(GROUP + ["predictor"], key)])
        rows.append(
            dict(
                zip(GROUP + ["predictor"], key),
                spearman=spearman(joined["value"].to_numpy(), joined["trainable_depth"].to_numpy()),
                auroc=auroc(cell_rows["cell_score"].to_numpy(), cell_rows["reached"].to_numpy()),
                n_sigma_w2=joined.height,
                n_cells=cell_rows.filter(pl.col("cell_score").is_not_nan()).height,
            )
        )
    board = pl.DataFrame(rows).join(seconds, on=GROUP + ["predictor"])
    board = board.with_columns(gives_depth=pl.col("predictor").map_elements(_gives_depth, return_dtype=pl.Boolean))
    order = ["spearman", "auroc"]
    return board.select(
        GROUP + ["predictor", "kind", "gives_depth", *order, "seconds_per_network", "n_sigma_w2", "n_cells"]
    ).sort(GROUP + order, descending=[False] * len(GROUP) + [True, True], nulls_last=True)


def _gives_depth(name: str) -> bool:
    return predictors.get(name).gives_depth if name in registry.REGISTRY else False


def per_sigma(predictions: pl.DataFrame, cells: pl.DataFrame) -> pl.DataFrame:
    """Each predictor's oriented value per σw² (deepest network, mean over seeds) beside ℓ_train: the figure's
    frame. Columns: GROUP, predictor, sigma_w2, value, trainable_depth."""
    preds = predictions.with_columns(value=_oriented(predictions))
    deepest = preds.filter(pl.col("depth") == pl.col("depth").max().over(GROUP + ["predictor"]))
    return (
        deepest.group_by(GROUP + ["predictor", "sigma_w2"])
        .agg(value=pl.col("value").mean())
        .join(truth_depths(cells), on=GROUP + ["sigma_w2"])
        .sort(GROUP + ["predictor", "sigma_w2"])
    )


def board(store: ResultStore) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(leaderboard, per_sigma) of a results folder; ResultsError when it has no trainings."""
    cells = truth_cells(store)
    predictions = predictor_rows(store)
    return leaderboard(predictions, cells), per_sigma(predictions, cells)

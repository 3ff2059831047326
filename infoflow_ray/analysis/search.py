"""Polars frames over the ``search`` table (the adaptive search's decisions): brackets, edges, peaks, cost.

The search writes one row per decision (``infoflow_ray.sweep.adaptive``); these frames read its answers back:

- ``depth_brackets``: ℓ_train of every (σw², seed) as the bracket [deepest pass, shallowest fail above it),
  with the trainings spent and the contradictions met; ``trainable_brackets`` the same over seeds;
- ``interval_edges``: the σw² interval where ℓ_c ≥ the target depth L, each edge as (outside, inside) σw²;
- ``cutoff_peaks``: where the cutoffs peak per σb² (the critical point, with its bracket) beside mean field;
- ``search_cost``: trainings, cascades and task-seconds the search spent against the full grid over the same
  σw² and depths (and a σw² grid at the interval search's tolerance).
Depths in layers, σw² and σb² as stored, seconds are task-seconds (the sum of the tasks' wall times).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from infoflow_ray import search, theory
from infoflow_ray.errors import ResultsError
from infoflow_ray.store import GROUP, ResultStore

_PRODUCER = "the adaptive search writes it: run jobs/full_grid.py --search (the default preset searches)"


def _search(store: ResultStore, kind: str) -> pl.LazyFrame:
    frame = store.scan("search")
    if frame.select(pl.len()).collect().item() == 0:
        raise ResultsError(f"results '{store.location}' have no 'search' table yet; {_PRODUCER}")
    return frame.filter(pl.col("search") == kind)


def depth_brackets(store: ResultStore) -> pl.DataFrame:
    """Per (dataset, profile, σb², σw², seed): passed (deepest depth that reached the threshold; null: none),
    failed (shallowest depth above it that did not; null: none above), trainings (depths trained),
    contradictions (outcomes against monotonicity), done."""
    answered = _search(store, "depth").filter(pl.col("passed").is_not_null())
    return (
        answered.sort("step")
        .group_by(GROUP + ["sigma_w2", "seed"])
        .agg(
            passed=pl.col("bracket_low").last(),
            failed=pl.col("bracket_high").last(),
            trainings=pl.len().cast(pl.Int64),
            contradictions=(pl.col("contradiction") != "").sum().cast(pl.Int64),
            done=pl.col("done").last(),
        )
        .with_columns(pl.col("passed", "failed").fill_nan(None).cast(pl.Int64))
        .sort(GROUP + ["sigma_w2", "seed"])
        .collect()
    )


def trainable_brackets(store: ResultStore) -> pl.DataFrame:
    """Per (dataset, profile, σb², σw²): ℓ_train over seeds as the full grid defines it (the deepest depth that
    passed in any seed, 0 when none did) with its bracket's upper end (the shallowest fail above it in that seed;
    null when nothing above failed), and the seeds' trainings and contradictions summed."""
    per_seed = depth_brackets(store)
    return (
        per_seed.sort("passed", nulls_last=False)
        .group_by(GROUP + ["sigma_w2"])
        .agg(
            trainable_depth=pl.col("passed").max().fill_null(0),
            bracket_high=pl.col("failed").last(),
            trainings=pl.col("trainings").sum(),
            contradictions=pl.col("contradictions").sum(),
            n_seeds=pl.len().cast(pl.Int64),
            done=pl.col("done").all(),
        )
        .sort(GROUP + ["sigma_w2"])
    )


def interval_edges(store: ResultStore) -> pl.DataFrame:
    """Per (dataset, profile, σb²): the σw² interval where the cutoff reaches the target depth. low_outside <
    low_inside ≤ high_inside < high_outside are measured σw² (ℓ_c < L outside, ≥ L inside); an outside value is
    null where the edge lies beyond the searched range; low/high is each edge's estimate (the midpoint) and
    low_width/high_width the distance between its two σw². target_depth: L; cascades: σw² measured (per seed
    mean); done: the search ended."""
    answered = _search(store, "sigma_w2_interval").filter(pl.col("passed").is_not_null())
    groups = (
        answered.group_by(GROUP)
        .agg(
            target_depth=pl.col("target_depth").first(),
            cascades=pl.len().cast(pl.Int64),
            points=pl.struct("asked", "passed"),
            done=pl.col("done").all(),
        )
        .collect()
    )
    rows = []
    for row in groups.iter_rows(named=True):
        low, high, _ = search.interval_edges_of({p["asked"]: p["passed"] for p in row.pop("points")})
        for name, edge in (("low", low), ("high", high)):
            closed = edge is not None and edge.outside is not None
            row |= {
                name: edge.estimate if edge else None,
                f"{name}_width": edge.width if closed else None,
                f"{name}_inside": edge.inside if edge else None,
                f"{name}_outside": edge.outside if edge else None,
            }
        rows.append(row)
    columns = [
        "target_depth",
        "low",
        "low_width",
        "low_outside",
        "low_inside",
        "high_inside",
        "high_outside",
        "high",
        "high_width",
        "cascades",
        "done",
    ]
    schema = {**groups.drop("points").schema, **{c: pl.Float64 for c in columns[1:-2]}}
    return pl.DataFrame(rows, schema=schema).select(GROUP + columns).sort(GROUP)


def cutoff_peaks(store: ResultStore) -> pl.DataFrame:
    """Per (dataset, profile, σb²): the σw² where the cutoffs peak (``peak_sigma_w2``, the centre of the tied
    maximum) and the measured σw² either side that bracket it (``peak_low``, ``peak_high``; null at the range's
    end), the peak cutoff, and the mean-field critical σw² at that σb²."""
    peaks = (
        _search(store, "peak")
        .select(
            GROUP
            + [
                pl.col("asked").alias("peak_sigma_w2"),
                pl.col("bracket_low").fill_nan(None).alias("peak_low"),
                pl.col("bracket_high").fill_nan(None).alias("peak_high"),
                pl.col("value").alias("peak_cutoff"),
            ]
        )
        .collect()
    )
    critical = {b: float(theory.critical_sigma_w2(b)) for b in peaks["sigma_b2"].unique().to_list()}
    return (
        peaks.with_columns(
            critical_sigma_w2=pl.col("sigma_b2").replace_strict(critical, return_dtype=pl.Float64),
        )
        .with_columns(peak_minus_critical=pl.col("peak_sigma_w2") - pl.col("critical_sigma_w2"))
        .sort(GROUP)
    )


def critical_line(sigma_b2_values, n: int = 60) -> pl.DataFrame:
    """The mean-field critical line σw²(σb²) on a fine σb² grid spanning ``sigma_b2_values`` (and 0)."""
    top = max([0.05, *sigma_b2_values]) * 1.15
    grid = np.linspace(0.0, top, n)
    return pl.DataFrame({"sigma_b2": grid, "critical_sigma_w2": np.asarray(theory.critical_sigma_w2(grid))})


def search_cost(store: ResultStore) -> pl.DataFrame:
    """Per (dataset, profile, σb²) of every recorded search: trainings and cascades it ran and their task-seconds,
    against the full grid over the same σw², depths and seeds (``grid_trainings``, ``grid_cascades``) and the
    cascades of a σw² grid at the interval search's tolerance over the same range (``fine_grid_cascades``; null
    without an interval search). ``training_fraction`` = trainings / grid_trainings.

    ``grid_training_seconds_estimate``: what the full grid's trainings would take in task-seconds (``runs``) —
    the measured seconds of the points the search trained, and for every other (σw², depth, seed) depth × the
    epoch budget × the search's median seconds per layer-epoch (an upper estimate: a training that reaches the
    threshold stops early).
    Measured against a real full grid in benchmarks/RESULTS.md ("Session 3")."""
    rows, points = [], []
    for record in store.planned_grids():
        grid = record["grid"]
        if not grid.get("search", {}).get("enabled"):
            continue
        spec, n_seeds, sigma_w2 = grid["search"], len(grid["seeds"]), grid["sigma_w2"]
        fine = (
            (int(round((max(sigma_w2) - min(sigma_w2)) / spec["sigma_w2_tolerance"])) + 1) * n_seeds
            if spec.get("target_depth") is not None
            else None
        )
        trains = "baseline" in grid["kinds"]
        for task in record["tasks"]:
            rows.append(
                {
                    "task_id": task["task_id"],
                    "dataset": task["dataset"],
                    "profile": task["profile"],
                    "sigma_b2": task["sigma_b2"],
                    "grid_trainings": len(sigma_w2) * len(grid["depths"]) * n_seeds if trains else 0,
                    "grid_cascades": len(sigma_w2) * n_seeds,
                    "fine_grid_cascades": fine,
                    "max_epochs": grid["train"]["max_epochs"],
                }
            )
        groups = {(t["dataset"], t["profile"], t["sigma_b2"]) for t in record["tasks"]}
        points += [
            {
                "dataset": d,
                "profile": p,
                "sigma_b2": b,
                "sigma_w2": float(w),
                "depth": depth,
                "seed": seed,
                "max_epochs": grid["train"]["max_epochs"],
            }
            for d, p, b in groups
            for w in sigma_w2
            for depth in grid["depths"]
            for seed in grid["seeds"]
            if trains
        ]
    if not rows:
        raise ResultsError(f"results '{store.location}' record no search; {_PRODUCER}")
    planned = pl.DataFrame(rows).unique("task_id")
    runs = store.scan("runs").select("task_id", "kind", "seconds").collect()
    joined = planned.join(runs, on="task_id", how="inner")
    is_training = pl.col("kind") == "baseline"
    cost = (
        joined.group_by(GROUP)
        .agg(
            trainings=is_training.sum().cast(pl.Int64),
            cascades=(~is_training).sum().cast(pl.Int64),
            training_seconds=pl.col("seconds").filter(is_training).sum(),
            cascade_seconds=pl.col("seconds").filter(~is_training).sum(),
            grid_trainings=pl.col("grid_trainings").max(),
            grid_cascades=pl.col("grid_cascades").max(),
            fine_grid_cascades=pl.col("fine_grid_cascades").max(),
        )
        .with_columns(training_fraction=pl.col("trainings") / pl.col("grid_trainings"))
    )
    return cost.join(_grid_estimate(store, planned, points), on=GROUP, how="left").sort(GROUP)


def _grid_estimate(store: ResultStore, planned: pl.DataFrame, points: list[dict]) -> pl.DataFrame:
    """grid_training_seconds_estimate per GROUP (see ``search_cost``); null where the search trained nothing."""
    schema = {
        "dataset": pl.String,
        "profile": pl.String,
        "sigma_b2": pl.Float64,
        "grid_training_seconds_estimate": pl.Float64,
    }
    if not points:
        return pl.DataFrame(schema=schema)
    keys = GROUP + ["sigma_w2", "depth", "seed"]
    runs = store.scan("runs").select("task_id", "seconds").collect()  # a task's wall time, as search_cost counts
    trained = (
        store.scan("train_summary")
        .select(keys + ["task_id", "epochs"])
        .collect()
        .join(planned.select("task_id"), on="task_id", how="semi")
        .join(runs, on="task_id")
        .unique(keys)
    )
    rate = trained.group_by(GROUP).agg(
        rate=(pl.col("seconds") / (pl.col("depth") * pl.col("epochs").clip(lower_bound=1))).median()
    )
    grid = pl.DataFrame(points).unique(keys)
    return (
        grid.join(trained.select(keys + ["seconds"]), on=keys, how="left")
        .join(rate, on=GROUP, how="inner")
        .with_columns(pl.col("seconds").fill_null(pl.col("depth") * pl.col("max_epochs") * pl.col("rate")))
        .group_by(GROUP)
        .agg(grid_training_seconds_estimate=pl.col("seconds").sum())
        .cast(schema)
    )

"""Where the seconds went: task-seconds predicting vs training, and how busy the execution slots were."""

from __future__ import annotations

import polars as pl

from infoflow_ray.analysis.frames import GROUP, KEYS, table
from infoflow_ray.store import ResultStore


def timing(store: ResultStore) -> pl.LazyFrame:
    """Task-seconds spent predicting (cascade runs) and training (baseline runs) per (dataset, profile, σb², σw²).

    Columns: KEYS, predicting_seconds, n_cascade, training_seconds, n_baseline, speedup (training / predicting;
    null unless both kinds ran). One cascade per seed covers every depth; training covers each depth separately.
    """
    kind = pl.col("kind")
    return (
        table(store, "runs")
        .group_by(KEYS)
        .agg(
            predicting_seconds=pl.col("seconds").filter(kind == "cascade").sum(),
            n_cascade=(kind == "cascade").sum().cast(pl.Int64),
            training_seconds=pl.col("seconds").filter(kind == "baseline").sum(),
            n_baseline=(kind == "baseline").sum().cast(pl.Int64),
        )
        .pipe(_with_speedup)
        .sort(KEYS)
    )


def timing_total(timing_frame: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """``timing`` summed over σw², per (dataset, profile, σb²)."""
    return (
        timing_frame.lazy()
        .group_by(GROUP)
        .agg(
            pl.col("predicting_seconds", "n_cascade", "training_seconds", "n_baseline").sum(),
            n_sigma_w2=pl.len().cast(pl.Int64),
        )
        .pipe(_with_speedup)
        .sort(GROUP)
        .collect()
    )


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
    calls = (
        runs.lazy()
        .group_by("kind", "node_id", "started_at", "finished_at")
        .agg(tasks=pl.len())
        .sort("started_at", "finished_at")
        .collect()
    )
    lane_free: list = []  # when each lane's last call finished
    lanes, gaps = [], []
    for start, finish in zip(calls["started_at"], calls["finished_at"]):
        lane = next((i for i, free in enumerate(lane_free) if free <= start), len(lane_free))
        gaps.append((start - lane_free[lane]).total_seconds() if lane < len(lane_free) else 0.0)
        lane_free[lane : lane + 1] = [finish]
        lanes.append(lane)
    return (
        calls.with_columns(
            lane=pl.Series(lanes, dtype=pl.Int64),
            gap=pl.Series(gaps, dtype=pl.Float64),
            busy=(pl.col("finished_at") - pl.col("started_at")).dt.total_microseconds() / 1e6,
        )
        .group_by("lane")
        .agg(
            kind=pl.col("kind").unique().sort().str.join("+"),
            calls=pl.len().cast(pl.Int64),
            tasks=pl.col("tasks").sum().cast(pl.Int64),
            busy_seconds=pl.col("busy").sum(),
            gap_seconds=pl.col("gap").sum(),
            first_start=pl.col("started_at").min(),
            last_finish=pl.col("finished_at").max(),
        )
        .sort("lane")
    )


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
    return {
        "wall_seconds": wall,
        "lanes": lanes.height,
        "calls": int(lanes["calls"].sum()),
        "tasks": int(lanes["tasks"].sum()),
        "busy_seconds": busy,
        "utilisation": busy / capacity if capacity > 0 else float("nan"),
        "idle_seconds": capacity - busy,
    }

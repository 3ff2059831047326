"""The adaptive search against the full grid at the same resolution: trainings, cascades, task-seconds, wall time.

1. Runs a preset's search (``search.enabled``; the ``default`` preset searches) into a fresh results folder and
   times it (the driver's wall time, Ray start included).
2. Runs the same preset as a full grid (``--no-search``) *into the same folder*: every task the search ran has
   the grid's task id, so only the rest runs. The full grid's task-seconds are then the sum over all its tasks
   (measured, not estimated), and its ℓ_train per σw² is compared with the search's brackets.
3. Prints the planned counts for the paper preset: the full grid and the search's worst case (as ``--dry-run``).

    .venv/bin/python benchmarks/bench_search.py                     # the default preset (≈ 25 min on 2 CPU cores)
    .venv/bin/python benchmarks/bench_search.py --results /tmp/s --skip-grid   # the search only
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time

import polars as pl

from infoflow_ray.analysis import search as search_frames
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.driver import describe_search, run_grid
from infoflow_ray.sweep.grid import PRESETS, resolve_grid


def timed_run(grid) -> float:
    start = time.perf_counter()
    outcome = run_grid(grid, progress_interval_seconds=120, out=io.StringIO())
    if outcome.failed or outcome.interrupted:
        sys.exit(f"bench_search: the run did not finish: {outcome.failed}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=list(PRESETS))
    parser.add_argument("--results", help="results folder (default: a fresh temporary one)")
    parser.add_argument("--skip-grid", action="store_true", help="run the search only")
    args = parser.parse_args()
    results = args.results or tempfile.mkdtemp(prefix="bench-search-")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# bench_search: preset {args.preset}, results {results}, commit {commit}", flush=True)

    searched = resolve_grid(args.preset, overrides={"results": results, "search": {"enabled": True}})
    search_wall = timed_run(searched)
    store = ResultStore.open(results, create=False)
    cost = search_frames.search_cost(store)
    search_ids = set(store.scan("runs").select("task_id").collect()["task_id"])
    brackets = search_frames.trainable_brackets(store)
    print(f"search: wall {search_wall:.0f} s", flush=True)

    if not args.skip_grid:
        grid = resolve_grid(args.preset, overrides={"results": results, "search": {"enabled": False}})
        grid_wall_rest = timed_run(grid)
        grid_ids = {t.task_id for t in grid.tasks()}
        runs = store.scan("runs").collect()
        in_grid = runs.filter(pl.col("task_id").is_in(list(grid_ids)))
        in_search = runs.filter(pl.col("task_id").is_in(list(search_ids)))
        rows = []
        for name, frame in (("search", in_search), ("full grid", in_grid)):
            rows.append(
                {
                    "what": name,
                    "trainings": frame.filter(pl.col("kind") == "baseline").height,
                    "cascades": frame.filter(pl.col("kind") == "cascade").height,
                    "training_task_seconds": frame.filter(pl.col("kind") == "baseline")["seconds"].sum(),
                    "cascade_task_seconds": frame.filter(pl.col("kind") == "cascade")["seconds"].sum(),
                }
            )
        table = pl.DataFrame(rows).with_columns(
            task_seconds=pl.col("training_task_seconds") + pl.col("cascade_task_seconds")
        )
        with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_width_chars=200):
            print(table)
        s, g = table.row(0, named=True), table.row(1, named=True)
        print(
            f"trainings: search {s['trainings']} / grid {g['trainings']} = {s['trainings'] / g['trainings']:.2f}; "
            f"task-seconds: search {s['task_seconds']:.0f} / grid {g['task_seconds']:.0f} = "
            f"{s['task_seconds'] / g['task_seconds']:.2f}; the grid's remaining tasks took {grid_wall_rest:.0f} s "
            "wall after the search",
            flush=True,
        )
        summary = store.scan("train_summary").filter(pl.col("task_id").is_in(list(grid_ids))).collect()
        grid_depth = summary.group_by("sigma_w2").agg(
            grid_trainable_depth=pl.col("depth").filter("reached_threshold").max().fill_null(0)
        )
        compared = (
            brackets.join(grid_depth, on="sigma_w2")
            .select("sigma_w2", "trainable_depth", "bracket_high", "contradictions", "grid_trainable_depth")
            .sort("sigma_w2")
        )
        with pl.Config(tbl_rows=100, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
            print(compared)
        equal = int((compared["trainable_depth"] == compared["grid_trainable_depth"]).sum())
        print(f"ℓ_train equal to the full grid's at {equal} of {compared.height} σw²", flush=True)
    else:
        with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_width_chars=200):
            print(cost)

    for preset in ("paper-mnist-wide",):
        paper = resolve_grid(preset, overrides={"search": {"enabled": True, "target_depth": 100}})
        out = io.StringIO()
        describe_search(paper, set(), out)
        print(f"# planned, {preset} with --search --target-depth 100:\n{out.getvalue()}", end="")


if __name__ == "__main__":
    main()

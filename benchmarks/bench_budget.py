"""The budget ladder read off one set of trainings against a separate grid per budget: task-seconds, and how far
ℓ_train moves between rungs at each σw².

1. Runs one baseline grid with the largest budget B_max and reads ℓ_train at every rung of the ladder from it
   (``analysis.budget.ladder_by_sigma``).
2. Runs a separate grid at each smaller budget (``train.max_epochs = B``) into its own folder, as one would
   without the ladder, and checks that its ℓ_train per σw² equals the rung read off the long grid.
3. Prints task-seconds (the sum of the trainings' wall times, ``runs.seconds``) of both ways, and ℓ_train per rung
   with the convergence verdict per σw².

    .venv/bin/python benchmarks/bench_budget.py                         # ≈ 3 minutes on a 2-core CPU
    .venv/bin/python benchmarks/bench_budget.py --ladder 2,4,8,16 --sigma-w2 1,1.76,3,4
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from infoflow_ray.analysis import budget as budget_frames
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.grid import resolve_grid


def grid_at(results: Path, args, max_epochs: int, ladder):
    return resolve_grid(
        "tiny",
        overrides={
            "kinds": ("baseline",),
            "sigma_w2": args.sigma_w2,
            "depths": args.depths,
            "seeds": args.seeds,
            "data": {"max_train_samples": args.images},
            "train": {"max_epochs": max_epochs, "lr": args.lr, "ladder": ladder},
            "results": str(results),
        },
    )


def run(grid) -> tuple[float, float]:
    """(wall seconds, task-seconds of the trainings)."""
    start = time.perf_counter()
    outcome = run_grid(grid, progress_interval_seconds=600, out=io.StringIO())
    if outcome.failed or outcome.interrupted:
        sys.exit(f"bench_budget: the run did not finish: {outcome.failed}")
    wall = time.perf_counter() - start
    runs = ResultStore.open(grid.results, create=False).scan("runs").collect()
    return wall, float(runs["seconds"].sum())


def main() -> None:
    numbers = lambda kind: lambda s: tuple(kind(v) for v in s.split(","))  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", type=numbers(int), default=(2, 4, 8))
    parser.add_argument("--sigma-w2", type=numbers(float), default=(1.0, 1.76, 3.0, 4.0))
    parser.add_argument("--depths", type=numbers(int), default=(4, 8, 12, 16))
    parser.add_argument("--seeds", type=numbers(int), default=(0,))
    parser.add_argument("--images", type=int, default=1000, help="training images")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--results", help="folder for the runs (default: a temporary one)")
    args = parser.parse_args()
    base = Path(args.results or tempfile.mkdtemp(prefix="bench_budget-"))
    ladder = args.ladder
    wall, seconds = run(grid_at(base / f"B{ladder[-1]}", args, ladder[-1], ladder))
    store = ResultStore.open(str(base / f"B{ladder[-1]}"), create=False)
    read = budget_frames.ladder_by_sigma(store)
    print(f"one grid at B_max = {ladder[-1]} epochs: {seconds:.0f} task-seconds ({wall:.0f} s wall)")
    separate_total = seconds
    for b in ladder[:-1]:
        w, s = run(grid_at(base / f"B{b}", args, b, None))
        separate_total += s
        other = budget_frames.ladder_by_sigma(ResultStore.open(str(base / f"B{b}"), create=False))
        at_b = lambda frame: frame.filter(pl.col("budget") == b).select("sigma_w2", "trainable_depth").sort("sigma_w2")  # noqa: E731
        same, alone = at_b(read), at_b(other)  # the separate grid has its own ladder up to b: compare at b only
        equal = same.equals(alone)
        print(f"separate grid at B = {b}: {s:.0f} task-seconds ({w:.0f} s wall); ℓ_train equals the rung: {equal}")
        if not equal:
            print(f"  read off B_max: {same.rows()}\n  separate grid:  {alone.rows()}")
    print(
        f"the ladder {ladder} from one set of trainings: {seconds:.0f} task-seconds; separate grids per budget: "
        f"{separate_total:.0f} task-seconds ({separate_total / max(seconds, 1e-9):.2f}x)"
    )
    print("ℓ_train per rung (epochs: depth) and the convergence verdict per σw²:")
    for row in budget_frames.convergence(store).iter_rows(named=True):
        print(f"  σw² {row['sigma_w2']:<5g} {row['per_budget']} — {row['verdict']}")


if __name__ == "__main__":
    main()

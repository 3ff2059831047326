"""A whole grid end to end through Ray: wall time, time per task, worker utilisation, overheads.

Runs a preset (default: ``default``, which searches: ≈ 53 tasks on MNIST-t10k) with ``run_grid`` into a fresh
results folder,
then reads its ``runs`` table back:

- wall time of the driver (Ray start and shutdown of actors included) and the time before the first task started;
- seconds per task, by kind (mean, median, max; tasks trained together count their share);
- execution lanes (``analysis.execution_lanes``: one per actor or trial slot that ran at the same time) with
  each lane's busy time / driver wall time, and the overall utilisation busy / (lanes × wall);
- the idle slot-seconds that are scheduling overhead (startup, gaps between calls, the tail where some lanes
  have finished) and the storage cost: ``ResultStore.write_task`` of one cascade task's rows, timed;
- on a machine with ``nvidia-smi``: GPU utilisation sampled every second while the grid runs (mean, and the
  share of samples at ≥ 70 %).

    .venv/bin/python benchmarks/bench_grid.py                      # the default search (≈ 10 min on 2 CPU cores)
    .venv/bin/python benchmarks/bench_grid.py --preset tiny
    .venv/bin/python benchmarks/bench_grid.py --preset default --results /tmp/grid --keep
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl

from infoflow_ray import analysis
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.grid import PRESETS, resolve_grid


class GpuSampler:
    """``nvidia-smi`` utilisation of every GPU, sampled every ``interval`` seconds in a thread (if present)."""

    def __init__(self, interval: float = 1.0):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self.available = shutil.which("nvidia-smi") is not None

    def __enter__(self) -> GpuSampler:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.available:
            self._thread.join()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
            ).stdout
            self.samples += [float(v) for v in out.split()]


def storage_seconds(store: ResultStore, repeats: int) -> float:
    """Mean seconds of ``write_task`` for one stored cascade task's rows, into a scratch store."""
    runs = store.scan("runs").filter(pl.col("kind") == "cascade").collect()
    if runs.is_empty():
        return float("nan")
    task_id, dataset = runs["task_id"][0], runs["dataset"][0]
    rows = {
        name: store.scan(name).filter(pl.col("task_id") == task_id).collect().to_dicts()
        for name in ("curves", "cutoffs", "reconstructions", "runs")
    }
    with tempfile.TemporaryDirectory() as scratch:
        target = ResultStore.open(scratch)
        start = time.perf_counter()
        for _ in range(repeats):
            target.write_task(task_id, dataset, rows)
        return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", choices=list(PRESETS))
    parser.add_argument("--results", help="results folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary results folder")
    parser.add_argument("--cascade-group", type=int, help="resources.cascade_group (default: automatic)")
    parser.add_argument("--baseline-group", type=int, help="resources.baseline_group (default: the preset's)")
    args = parser.parse_args()

    results = Path(args.results) if args.results else Path(tempfile.mkdtemp(prefix="bench-grid-")) / "results"
    resources = {
        k: v
        for k, v in (("cascade_group", args.cascade_group), ("baseline_group", args.baseline_group))
        if v is not None
    }
    grid = resolve_grid(args.preset, overrides={"results": str(results), "resources": resources})
    print(f"# bench_grid: preset {args.preset}, {len(grid.tasks())} tasks, results in {results}", flush=True)
    with GpuSampler() as gpu:
        start = time.perf_counter()
        outcome = run_grid(grid, progress_interval_seconds=60)
        wall = time.perf_counter() - start
    store = ResultStore.open(str(results), create=False)
    runs = store.scan("runs").collect()
    first_start = runs["started_at"].min()
    last_finish = runs["finished_at"].max()
    span = (last_finish - first_start).total_seconds()
    print(
        f"\nwall time {wall:.1f} s in the driver (tasks ran from first start to last finish in {span:.1f} s; "
        f"{wall - span:.1f} s before and after: Ray and actor start, the final summary); "
        f"failed {len(outcome.failed)}"
    )

    print("\n| kind | tasks | mean s | median s | max s | task-seconds |")
    print("|---|---|---|---|---|---|")
    for kind, part in runs.group_by("kind", maintain_order=True):
        seconds = part["seconds"].to_list()
        print(
            f"| {kind[0]} | {len(seconds)} | {statistics.mean(seconds):.1f} | {statistics.median(seconds):.1f} "
            f"| {max(seconds):.1f} | {sum(seconds):.0f} |"
        )

    lanes = analysis.execution_lanes(runs)
    print("\n| lane | kinds | calls | tasks | busy s | gaps between calls s | busy / driver wall |")
    print("|---|---|---|---|---|---|---|")
    for lane in lanes.iter_rows(named=True):
        print(
            f"| {lane['lane']} | {lane['kind']} | {lane['calls']} | {lane['tasks']} | {lane['busy_seconds']:.0f} "
            f"| {lane['gap_seconds']:.0f} | {100 * lane['busy_seconds'] / wall:.0f}% |"
        )
    summary = analysis.utilisation(runs, wall_seconds=wall)
    inner = analysis.utilisation(runs)
    print(
        f"\nutilisation: {100 * summary['utilisation']:.0f}% of {summary['lanes']} lanes × driver wall "
        f"({100 * inner['utilisation']:.0f}% from first start to last finish); idle slot-seconds "
        f"{summary['idle_seconds']:.0f} (scheduling, startup and tail), of which {inner['idle_seconds']:.0f} "
        "between first start and last finish"
    )
    write = storage_seconds(store, repeats=20)
    print(
        f"storage: write_task of one cascade task's rows {1000 * write:.1f} ms "
        f"(× {summary['tasks']} tasks = {write * summary['tasks']:.2f} s)"
    )
    if gpu.available and gpu.samples:
        busy = sum(s >= 70 for s in gpu.samples) / len(gpu.samples)
        print(
            f"GPU utilisation (nvidia-smi, {len(gpu.samples)} samples): mean {statistics.mean(gpu.samples):.0f}%, "
            f"≥ 70 % in {100 * busy:.0f}% of samples"
        )
    else:
        print("GPU utilisation: no nvidia-smi on this machine")
    if not args.results and not args.keep:
        shutil.rmtree(results.parent)
    sys.exit(1 if outcome.failed else 0)


if __name__ == "__main__":
    main()

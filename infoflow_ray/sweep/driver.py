"""The driver: expand the grid, skip what is stored, run cascades on the actor pool and baselines on Tune.

Cascades start first and hold their resources (by default every GPU, or every CPU on a CPU-only machine), so
the predictions arrive long before the ground truth; Tune trials take the resources as the pool frees them.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

import polars as pl
import ray

from infoflow_ray.config import CONV_ARCHITECTURES
from infoflow_ray.data import load_dataset
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.baselines import run_baselines
from infoflow_ray.sweep.cascade_pool import pool_size, run_cascade_pool
from infoflow_ray.sweep.grid import GridSpec, Task
from infoflow_ray.sweep.progress import Progress


@dataclass
class GridOutcome:
    """What a run of the grid did: counts per kind and the failures (task label → error)."""

    total: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0


def describe(grid: GridSpec, pending: list[Task], finished: set[str], out: TextIO) -> None:
    """The dry-run report: every task, how many are already stored, what each kind asks for."""
    tasks = grid.tasks()
    res = grid.resources
    print(f"grid '{grid.name}' → {grid.results}", file=out)
    conv = [a for a in grid.architecture if a in CONV_ARCHITECTURES]
    print(
        f"  architectures: {', '.join(grid.architecture)}" + (f" ({grid.channels} channels)" if conv else ""), file=out
    )
    for kind in grid.kinds:
        of_kind = [t for t in tasks if t.kind == kind]
        done = sum(t.task_id in finished for t in of_kind)
        print(f"  {kind}: {len(of_kind)} tasks ({done} already stored, {len(of_kind) - done} to run)", file=out)
    print(
        f"  resources: cascade actors {res.cascade_workers or 'one per GPU (or CPU)'} × "
        f"{res.cpus_per_cascade:g} CPU + {_gpus(res.gpus_per_cascade, '1 if GPUs')} GPU, "
        f"cascades per call: {res.cascade_group or 'as many as GPU memory holds (1 on CPU)'}; "
        f"baseline trials {res.cpus_per_trial:g} CPU + {_gpus(res.gpus_per_trial, '0.25 if GPUs')} GPU each",
        file=out,
    )
    for task in pending:
        print(f"  {task.task_id}  {task.label}", file=out)


def describe_search(grid: GridSpec, finished: set[str], out: TextIO) -> None:
    """The dry-run report of a search: the full grid's task counts against the search's planned worst case."""
    from infoflow_ray import search

    spec = grid.search
    groups = len(grid.datasets) * len(grid.sigma_b2)
    chains = groups * len(grid.sigma_w2) * len(grid.seeds)
    full = grid.tasks()
    print(f"search '{grid.name}' → {grid.results} (cutoff measure {spec.measure})", file=out)
    print(
        f"  the full grid would run {sum(t.kind == 'cascade' for t in full)} cascades and "
        f"{sum(t.kind == 'baseline' for t in full)} trainings ({sum(t.task_id in finished for t in full)} of "
        f"its tasks already stored)",
        file=out,
    )
    cascades = chains
    if spec.target_depth is not None:
        per_group = search.worst_case_cascades(grid.sigma_w2, spec.sigma_w2_tolerance) * len(grid.seeds)
        cascades = groups * per_group
        print(
            f"  σw² interval at depth {spec.target_depth}: at most {per_group} cascades per (dataset, σb²) "
            f"(coarse {len(grid.sigma_w2)} σw² × {len(grid.seeds)} seeds, then both edges bisected to "
            f"{spec.sigma_w2_tolerance:g})",
            file=out,
        )
    print(f"  the search runs at most {cascades} cascades", end="", file=out)
    if "baseline" in grid.kinds:
        worst = search.worst_case_trainings(grid.depths, spec.depth_resolution, spec.confirm)
        edge = 4 * len(grid.seeds) * groups if spec.edge_trainings and spec.target_depth is not None else 0
        print(
            f" and at most {worst * chains + edge} trainings ({worst} per (σw², seed) over {len(grid.depths)} "
            f"depths, worst case over every start and every outcome monotone in depth"
            + (f", + {edge} edge checks" if edge else "")
            + ")",
            end="",
            file=out,
        )
    print("; the tasks are chosen as results arrive", file=out)


def _gpus(value: float | None, auto: str) -> str:
    return auto if value is None else f"{value:g}"


def check_datasets(grid: GridSpec) -> None:
    """Load every dataset once on the driver, so a missing one fails before any work starts (local runs)."""
    for name in grid.datasets:
        load_dataset(
            name,
            n_inputs=grid.data.synthetic_inputs,
            n_train=grid.data.synthetic_train,
            n_test=grid.data.synthetic_test,
        )


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` (or $RAY_ADDRESS, as under ``ray job submit``), else start a local one."""
    # Trials checkpoint every epoch by design; Tune's warning about frequent snapshots is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ctrl-C must reach the driver as KeyboardInterrupt (it stops the cascade pool too); Tune's own handler
    # would swallow it. Trials keep their per-epoch checkpoints and Tune its state, so a re-run resumes.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    # Tune's "new output" prints a configuration box and result paths per experiment even at verbose=0: a
    # search runs one experiment per round, and the driver's own progress lines say what runs. Quiet it.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    ray.init(
        address=address, log_to_driver=False, include_dashboard=None if address else False, configure_logging=False
    )


def run_grid(
    grid: GridSpec, *, address: str | None = None, out: TextIO | None = None, progress_interval_seconds: float = 30.0
) -> GridOutcome:
    """Run every task of ``grid`` that is not stored yet. Returns counts; failures are recorded, not raised.
    Progress lines go to ``out`` (default: sys.stdout at the time of the call)."""
    out = out or sys.stdout
    start = time.monotonic()
    if "://" not in grid.results:  # workers and Tune trials run in other folders: give them an absolute path
        grid = dataclasses.replace(grid, results=os.path.abspath(grid.results))
    store = ResultStore.open(grid.results)
    with store.exclusive():
        if grid.search.enabled:
            from infoflow_ray.sweep.adaptive import run_search

            return run_search(grid, store, address, out, progress_interval_seconds, start)
        return _run(grid, store, address, out, progress_interval_seconds, start)


def _run(
    grid: GridSpec, store: ResultStore, address: str | None, out: TextIO, progress_interval_seconds: float, start: float
) -> GridOutcome:
    tasks = grid.tasks()
    store.write_grid(grid.name, grid.as_dict(), task_records(tasks))
    finished = store.finished_task_ids()
    pending = [t for t in tasks if t.task_id not in finished]
    outcome = GridOutcome(
        total={k: sum(t.kind == k for t in tasks) for k in grid.kinds},
        skipped={k: sum(t.kind == k and t.task_id in finished for t in tasks) for k in grid.kinds},
    )
    if not pending:
        print(f"all {len(tasks)} tasks of grid '{grid.name}' are already stored in {grid.results}", file=out)
        return outcome
    prepare(grid, store, address)
    progress = Progress(grid.kinds, stream=out, interval_seconds=progress_interval_seconds)
    for kind in grid.kinds:
        progress.set_total(kind, outcome.total[kind], outcome.skipped[kind])
    progress.note(f"grid '{grid.name}': {len(pending)} tasks to run, results in {store.location}")
    outcome.interrupted = execute(
        grid, store, pending, progress, all_baselines=[t for t in tasks if t.kind == "baseline"]
    )
    outcome.seconds = time.monotonic() - start
    done = store.finished_task_ids()
    missing = [t for t in pending if t.task_id not in done]
    outcome.failed = {t.label: "not finished" for t in missing}
    if outcome.interrupted:
        progress.note("interrupted: finished tasks are stored; run the same command again to resume")
    progress.note(
        f"finished in {outcome.seconds:.0f} s: {len(pending) - len(missing)} of {len(pending)} tasks "
        f"stored, {len(missing)} missing"
    )
    print_summary(store, out)
    return outcome


def task_records(tasks: list[Task]) -> list[dict]:
    """The planned-task records of ``ResultStore.write_grid``: id, kind and keys of every task."""
    return [
        {
            "task_id": t.task_id,
            "kind": t.kind,
            "dataset": t.dataset,
            "profile": t.network.profile_name,
            "sigma_w2": t.network.sigma_w2,
            "sigma_b2": t.network.sigma_b2,
            "depth": t.network.depth,
            "seed": t.seed,
        }
        for t in tasks
    ]


def prepare(grid: GridSpec, store: ResultStore, address: str | None) -> None:
    """Before the first task: check the datasets (local runs), clear crashed writers' temp files, join Ray."""
    if address is None and not os.environ.get("RAY_ADDRESS"):
        check_datasets(grid)
    store.remove_stale_temp_files()
    connect(address)


def execute(
    grid: GridSpec, store: ResultStore, pending: list[Task], progress: Progress, all_baselines: list[Task] | None = None
) -> bool:
    """Run ``pending`` tasks: cascades on the actor pool (started first, so predictions arrive early), baseline
    trainings as Tune trials beside it. ``all_baselines`` names the Tune experiment (so an interrupted set of
    trainings resumes under the same name; default: the pending ones). Returns True when interrupted."""
    cascades = [t for t in pending if t.kind == "cascade"]
    baselines = [t for t in pending if t.kind == "baseline"]
    stop = threading.Event()
    pool_ready = threading.Event()
    thread = None
    res = grid.resources
    if cascades:
        size = pool_size(res.cascade_workers, res.cpus_per_cascade, res.gpus_per_cascade, len(cascades))
        progress.note(f"cascade pool: {size.workers} actors × ({size.cpus:g} CPU, {size.gpus:g} GPU)")

        def started(workers):
            ray.get([w.pid.remote() for w in workers])  # placed and initialised: they hold their resources
            pool_ready.set()

        def cascade_loop():
            try:
                run_cascade_pool(
                    cascades,
                    results=grid.results,
                    grid_name=grid.name,
                    size=size,
                    max_attempts=res.max_task_attempts,
                    store=store,
                    progress=progress,
                    stop=stop,
                    on_worker_started=started,
                    group=res.cascade_group,
                )
            finally:
                pool_ready.set()

        thread = threading.Thread(target=cascade_loop, name="cascade-pool", daemon=True)
        thread.start()
        pool_ready.wait()
    try:
        if baselines:
            cluster_gpus = ray.cluster_resources().get("GPU", 0)
            gpus = res.gpus_per_trial if res.gpus_per_trial is not None else (0.25 if cluster_gpus else 0.0)
            run_baselines(
                all_baselines or baselines,
                baselines,
                results=grid.results,
                grid_name=grid.name,
                cpus=res.cpus_per_trial,
                gpus=gpus,
                max_concurrent=res.max_concurrent_trials,
                max_attempts=res.max_task_attempts,
                checkpoint_every_epochs=res.checkpoint_every_epochs,
                store=store,
                progress=progress,
                group=res.baseline_group,
            )
        if thread:
            while thread.is_alive():
                thread.join(timeout=1.0)
    except KeyboardInterrupt:
        stop.set()
        if thread:
            thread.join(timeout=30)
        return True
    return False


def print_summary(store: ResultStore, out: TextIO) -> None:
    """Per (dataset, profile, σb², σw²): the cutoffs (mean over seeds) and the trainable depth measured so far."""
    keys = ["dataset", "profile", "sigma_b2", "sigma_w2"]
    cutoffs = (
        store.scan("cutoffs")
        .filter(pl.col("measure").is_in(["kl_mean", "diff_entropy"]))
        .group_by(*keys, "measure")
        .agg(pl.col("cutoff_layer").mean())
        .collect()
        .pivot(on="measure", index=keys, values="cutoff_layer")
    )
    trained = (
        store.scan("train_summary")
        .group_by(*keys)
        .agg(
            pl.col("depth").filter(pl.col("reached_threshold")).max().alias("trainable_depth"),
            pl.col("depth").max().alias("deepest_trained"),
            pl.len().alias("trainings"),
        )
        .collect()
    )
    if cutoffs.is_empty() and trained.is_empty():
        return
    if cutoffs.is_empty():
        table = trained
    elif trained.is_empty():
        table = cutoffs
    else:
        table = cutoffs.join(trained, on=keys, how="full", coalesce=True)
    with pl.Config(tbl_rows=200, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(table.sort(keys), file=out)

"""Running a set of grid tasks: join Ray, run cascades on the actor pool and baselines on Tune, and say what ran.

Shared by the plain grid (``driver``) and the adaptive search (``adaptive``), which runs one set per round.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import ray

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
    searches: list = field(default_factory=list)
    """With the search on: its answers, one ``adaptive.GroupPlan`` per (dataset, σb²) — ℓ_train brackets, the σw²
    interval, the peak, the cascades used — as decided at the end of this run (jobs that build on a search, such
    as predict-then-tune, take them from here rather than replaying the store)."""


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
    trainings as Tune trials beside it, predictor tasks (``sweep.predictor_tasks``) as Ray tasks beside both.
    ``all_baselines`` names the Tune experiment (so an interrupted set of
    trainings resumes under the same name; default: the pending ones). Returns True when interrupted."""
    cascades = [t for t in pending if t.kind == "cascade"]
    baselines = [t for t in pending if t.kind == "baseline"]
    predictions = [t for t in pending if t.kind == "predictors"]
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
    predictor_thread = None
    if predictions:  # cheap Ray tasks of one CPU (no GPU) beside the pool: they take CPUs as they free up
        from infoflow_ray.sweep.predictor_tasks import run_predictor_tasks

        predictor_thread = threading.Thread(
            target=run_predictor_tasks,
            args=(predictions,),
            kwargs=dict(
                results=grid.results,
                grid_name=grid.name,
                cpus=1.0,
                gpus=0.0,
                max_attempts=res.max_task_attempts,
                store=store,
                progress=progress,
                stop=stop,
            ),
            name="predictor-tasks",
            daemon=True,
        )
        predictor_thread.start()
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
        for worker_thread in (thread, predictor_thread):
            while worker_thread is not None and worker_thread.is_alive():
                worker_thread.join(timeout=1.0)
    except KeyboardInterrupt:
        stop.set()
        for worker_thread in (thread, predictor_thread):
            if worker_thread is not None:
                worker_thread.join(timeout=30)
        return True
    return False

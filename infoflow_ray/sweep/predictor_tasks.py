"""Predictor tasks on Ray: one cheap task per (dataset, σw², σb², depth, seed), scheduled beside the cascades.

Each Ray task builds the untrained network of its seed (the cascade's and the baseline's network), runs every
predictor the grid names (``infoflow_ray.predictors``) and writes its ``predictors`` rows and its ``runs`` row
straight to the results store, so a finished task is never lost and a re-run skips it. A failed attempt is
recorded in ``failures`` and retried up to ``resources.max_task_attempts`` times; errors of infoflow-ray's own
kinds (a bad setting) are not retried.
"""

from __future__ import annotations

import threading
import time

import ray
import torch
from ray.exceptions import RayTaskError, WorkerCrashedError

from infoflow_ray.errors import InfoflowError
from infoflow_ray.model import default_device
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.grid import Task
from infoflow_ray.sweep.progress import Progress
from infoflow_ray.sweep.task_runner import (
    device_name,
    error_line,
    failure_row,
    load_task_data,
    predictor_rows,
    runs_row,
    utc_now,
)


@ray.remote(max_retries=0)
def predict(task: Task, results: str, grid_name: str, attempt: int) -> dict:
    """Run one predictor task and store its rows; returns {name: score, 'seconds': task-seconds}."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    device = default_device()
    started, t0 = utc_now(), time.perf_counter()
    data = load_task_data(task.dataset, task.data, device)
    rows, status, summary = predictor_rows(task, data, device)
    seconds = time.perf_counter() - t0
    rows["runs"] = [
        runs_row(
            task,
            grid_name=grid_name,
            status=status,
            started_at=started,
            finished_at=utc_now(),
            seconds=seconds,
            attempts=attempt,
            node_id=ray.get_runtime_context().get_node_id(),
            device=device_name(device),
        )
    ]
    ResultStore.open(results, create=False).write_task(task.task_id, task.dataset, rows)
    return {**summary, "seconds": seconds}


def run_predictor_tasks(
    tasks: list[Task],
    *,
    results: str,
    grid_name: str,
    cpus: float,
    gpus: float,
    max_attempts: int,
    store: ResultStore,
    progress: Progress,
    stop: threading.Event | None = None,
) -> int:
    """Run ``tasks`` as Ray tasks of ``cpus`` CPUs and ``gpus`` GPUs each; returns how many finished."""
    stop = stop or threading.Event()
    in_flight: dict[ray.ObjectRef, tuple[Task, int]] = {}

    def submit(task: Task, attempt: int) -> None:
        ref = predict.options(num_cpus=cpus, num_gpus=gpus, name=f"predictors {task.label}").remote(
            task, results, grid_name, attempt
        )
        in_flight[ref] = (task, attempt)
        progress.started("predictors")

    for task in tasks:
        submit(task, 1)
    finished = 0
    while in_flight and not stop.is_set():
        done, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
        progress.tick()
        for ref in done:
            task, attempt = in_flight.pop(ref)
            try:
                summary = ray.get(ref)
            except (RayTaskError, WorkerCrashedError) as exc:
                permanent = isinstance(getattr(exc, "cause", None), InfoflowError)
                if attempt < max_attempts and not permanent:
                    progress.retried("predictors", f"retrying {task.label} (attempt {attempt}: {error_line(exc)})")
                    submit(task, attempt + 1)
                    continue
                store.write_failure(task.task_id, attempt, failure_row(task, "predictors", attempt, error_line(exc)))
                progress.finished("predictors", f"FAILED {task.label}: {error_line(exc)}", failed=True)
                continue
            finished += 1
            scores = ", ".join(f"{k} {v:.3g}" for k, v in summary.items() if k != "seconds")
            progress.finished("predictors", f"{task.label}: {scores} ({summary['seconds']:.1f} s)")
    for ref in in_flight:
        ray.cancel(ref)
    return finished

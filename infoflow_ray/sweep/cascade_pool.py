"""Cascade tasks on a pool of Ray actors, one GPU each (or CPU), fed by the driver with ``ray.wait``.

An actor keeps each dataset resident on its device and writes every finished task straight to the results
store, so results stream out as they finish and a lost actor loses no finished result. A task whose actor
dies is re-queued (the actor restarts); a task that fails ``max_task_attempts`` times is recorded as failed.

On a GPU an actor is handed a *group* of compatible tasks (same dataset, layer widths and cascade settings;
different σw², σb², seeds) whose cascades it trains together (``cascade.train_cascades``): as many as fit in
its free memory (``cascade.networks_per_device``), or ``resources.cascade_group``, but never so many that
other actors go idle. On a CPU the group is one task.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from queue import SimpleQueue

import ray
import torch
from ray.exceptions import RayActorError, RayTaskError

from infoflow_ray.cascade import networks_per_device
from infoflow_ray.errors import InfoflowError
from infoflow_ray.model import default_device
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.grid import DataOptions, Task
from infoflow_ray.sweep.progress import Progress
from infoflow_ray.sweep.task_runner import (
    cascade_group_key,
    device_name,
    error_line,
    failure_row,
    load_task_data,
    run_cascades,
    runs_row,
    utc_now,
)


@ray.remote(max_restarts=-1, max_task_retries=0)
class CascadeWorker:
    """Holds a device and its datasets; runs cascade tasks one at a time."""

    def __init__(self, results: str, grid_name: str):
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        torch.set_num_threads(max(1, int(cpus)))
        self.device = default_device()
        self.store = ResultStore.open(results, create=False)
        self.grid_name = grid_name
        self._data: dict[tuple[str, DataOptions], object] = {}

    def pid(self) -> int:
        return os.getpid()

    def group_capacity(self, widths: tuple[int, ...], batch_size: int) -> int:
        """How many cascades of these widths this actor's device trains at once (1 on a CPU)."""
        return networks_per_device(widths, batch_size, self.device)

    def run(self, tasks: list[Task], attempts: list[int]) -> list[dict]:
        """Run a group of compatible tasks together and store each one; one summary per task.

        Each task's ``runs`` row gets the group's start and end and its share of the wall time (seconds / K).
        """
        started, t0 = utc_now(), time.perf_counter()
        first = tasks[0]
        key = (first.dataset, first.data)
        if key not in self._data:
            self._data[key] = load_task_data(first.dataset, first.data, self.device)
        results = run_cascades(tasks, self._data[key], self.device)
        node_id = ray.get_runtime_context().get_node_id()
        finished_at, share = utc_now(), (time.perf_counter() - t0) / len(tasks)
        summaries = []
        for task, attempt, (rows, status, summary) in zip(tasks, attempts, results):
            rows["runs"] = [
                runs_row(
                    task,
                    grid_name=self.grid_name,
                    status=status,
                    started_at=started,
                    finished_at=finished_at,
                    seconds=share,
                    attempts=attempt,
                    node_id=node_id,
                    device=device_name(self.device),
                )
            ]
            self.store.write_task(task.task_id, task.dataset, rows)
            summaries.append({"status": status, "node_id": node_id, "pid": os.getpid(), **summary})
        return summaries


@dataclass(frozen=True)
class PoolSize:
    """How many cascade actors and what each asks for."""

    workers: int
    cpus: float
    gpus: float


def pool_size(
    cascade_workers: int | None, cpus_per_cascade: float, gpus_per_cascade: float | None, n_tasks: int
) -> PoolSize:
    """One actor per GPU on a GPU cluster (one per CPU otherwise), never more actors than tasks."""
    resources = ray.cluster_resources()
    cluster_gpus = int(resources.get("GPU", 0))
    gpus = gpus_per_cascade if gpus_per_cascade is not None else (1.0 if cluster_gpus else 0.0)
    if cascade_workers is None:
        if gpus > 0:
            cascade_workers = max(1, int(cluster_gpus / gpus))
        else:
            cascade_workers = max(1, int(resources.get("CPU", 1) // cpus_per_cascade))
    return PoolSize(max(1, min(cascade_workers, n_tasks)), cpus_per_cascade, gpus)


class _Queue:
    """Tasks waiting for an actor, each with its attempt number, handed out in groups of compatible tasks."""

    def __init__(self, tasks: list[Task]):
        self._items: deque[tuple[Task, int]] = deque((task, 1) for task in tasks)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def push(self, task: Task, attempt: int) -> None:
        self._items.append((task, attempt))

    def peek(self) -> Task:
        return self._items[0][0]

    def waiting_like(self, task: Task) -> int:
        key = cascade_group_key(task)
        return sum(cascade_group_key(t) == key for t, _ in self._items)

    def take(self, limit: int) -> list[tuple[Task, int]]:
        """The first waiting task and up to ``limit`` − 1 more compatible with it, in queue order."""
        first = self._items.popleft()
        group, rest, key = [first], deque(), cascade_group_key(first[0])
        while self._items:
            item = self._items.popleft()
            (group if len(group) < limit and cascade_group_key(item[0]) == key else rest).append(item)
        self._items = rest
        return group


def _group_label(tasks: list[Task]) -> str:
    return tasks[0].label if len(tasks) == 1 else f"{tasks[0].label} (+{len(tasks) - 1} trained together)"


def run_cascade_pool(
    tasks: list[Task],
    *,
    results: str,
    grid_name: str,
    size: PoolSize,
    max_attempts: int,
    store: ResultStore,
    progress: Progress,
    stop: threading.Event | None = None,
    on_worker_started=None,
    group: int | None = None,
    incoming: SimpleQueue | None = None,
    closed: threading.Event | None = None,
    on_end: Callable[[list[Task]], None] | None = None,
) -> dict[str, dict]:
    """Run ``tasks`` on up to ``size.workers`` actors; returns task_id → summary for the tasks that finished.

    ``group``: cascades trained together per call (None: as many as the actor's device memory holds, 1 on a
    CPU), never more than an even share of the compatible tasks still waiting, so no actor is left idle.
    A worker whose task failed is pinged until it answers (Ray restarts a dead actor) before it gets new work,
    so a restart never burns the attempts of the tasks queued behind it. A task counts an attempt when it
    raised or its actor died under it (a task that kills its actor every time ends as failed, not in a loop).
    Errors of infoflow-ray's own kinds (bad config, missing dataset) are not retried.

    Streaming (the search, ``sweep.execution.Stream``): more tasks arrive on ``incoming`` while the pool runs, and
    it ends only once ``closed`` is set and nothing is queued or running; ``on_end(tasks)`` is called, in this
    thread, for every group of tasks that ended (stored, or failed for good). Actors start when tasks wait for
    them and are killed when nothing is queued, so their CPUs/GPUs go to the trainings meanwhile.
    ``on_worker_started(workers)``: called once with the first actors (those of ``tasks``).
    """
    stop = stop or threading.Event()
    if closed is None:  # a fixed list: nothing more comes
        closed = threading.Event()
        closed.set()
    queue = _Queue(tasks)
    workers: list = []
    idle: list = []
    in_flight: dict[ray.ObjectRef, tuple[object, list[Task], list[int]]] = {}
    pinging: dict[ray.ObjectRef, object] = {}
    finished: dict[str, dict] = {}
    capacity: dict[tuple, int] = {}

    def start_workers(n: int) -> list:
        new = [
            CascadeWorker.options(num_cpus=size.cpus, num_gpus=size.gpus).remote(results, grid_name)
            for _ in range(max(0, n))
        ]
        workers.extend(new)
        idle.extend(new)
        return new

    def release_idle() -> None:
        for worker in idle:
            ray.kill(worker)
            workers.remove(worker)
        idle.clear()

    def take_incoming() -> None:
        while incoming is not None and not incoming.empty():
            queue.push(incoming.get(), 1)

    def group_limit(worker, task: Task) -> int:
        key = cascade_group_key(task)
        if key not in capacity:
            try:
                capacity[key] = group or ray.get(
                    worker.group_capacity.remote(task.network.layer_widths, task.cascade.batch_size)
                )
            except RayActorError:
                return 1  # the actor is restarting; ask again next time
        fair_share = -(-(queue.waiting_like(task)) // size.workers)
        return max(1, min(capacity[key], fair_share))

    take_incoming()
    first = start_workers(min(size.workers, len(queue)))
    if on_worker_started:
        on_worker_started(first)
    try:
        while not stop.is_set():
            take_incoming()
            if not queue and not in_flight:
                release_idle()
                if closed.is_set() and (incoming is None or incoming.empty()):
                    break
                closed.wait(0.2)  # waiting for the search to ask for more cascades
                continue
            start_workers(min(size.workers - len(workers), len(queue) - len(idle)))
            while queue and idle:
                worker = idle.pop()
                batch = queue.take(group_limit(worker, queue.peek()))
                group_tasks, attempts = [t for t, _ in batch], [a for _, a in batch]
                ref = worker.run.options(name=_group_label(group_tasks)).remote(group_tasks, attempts)
                in_flight[ref] = (worker, group_tasks, attempts)
                for _ in group_tasks:
                    progress.started("cascade")
            if not queue:
                release_idle()  # no waiting task needs them
            if not in_flight and not pinging:
                time.sleep(0.2)
                continue
            done, _ = ray.wait([*in_flight, *pinging], num_returns=1, timeout=1.0)
            progress.tick()
            for ref in done:
                if ref in pinging:
                    worker = pinging.pop(ref)
                    try:
                        ray.get(ref)
                        idle.append(worker)
                    except RayActorError:
                        time.sleep(0.5)
                        pinging[worker.pid.remote()] = worker
                    continue
                worker, group_tasks, attempts = in_flight.pop(ref)
                try:
                    summaries = ray.get(ref)
                except (RayActorError, RayTaskError) as exc:
                    pinging[worker.pid.remote()] = worker
                    permanent = isinstance(getattr(exc, "cause", None), InfoflowError)
                    if len(group_tasks) > 1:  # e.g. out of device memory: retry in smaller groups
                        key = cascade_group_key(group_tasks[0])
                        capacity[key] = max(1, min(capacity.get(key, 1), len(group_tasks)) // 2)
                    ended = []
                    for task, attempt in zip(group_tasks, attempts):
                        if attempt < max_attempts and not permanent:
                            queue.push(task, attempt + 1)
                            progress.retried(
                                "cascade", f"retrying {task.label} (attempt {attempt} failed: {error_line(exc)})"
                            )
                        else:
                            store.write_failure(
                                task.task_id, attempt, failure_row(task, "cascade", attempt, error_line(exc))
                            )
                            progress.finished("cascade", f"FAILED {task.label}: {error_line(exc)}", failed=True)
                            ended.append(task)
                    if ended and on_end:
                        on_end(ended)
                    continue
                idle.append(worker)
                for task, summary in zip(group_tasks, summaries):
                    finished[task.task_id] = summary
                    progress.finished(
                        "cascade",
                        f"{task.label}: {summary['status']}, cutoff per-image KL "
                        f"{summary.get('kl_per_image', float('nan')):.1f}, KL of the mean "
                        f"curve {summary['kl_mean']}, diff-entropy {summary['diff_entropy']} "
                        f"({summary['seconds']:.1f} s)",
                    )
                if on_end:
                    on_end(group_tasks)
    finally:
        for worker in workers:
            ray.kill(worker)
    return finished

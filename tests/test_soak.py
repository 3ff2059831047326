"""Soak: a few hundred small cascade tasks while actor processes are killed at random (slow; not in the default run).

    .venv/bin/python -m pytest -m slow tests/test_soak.py -s

Prints the counts (tasks, kills, retries, lost, duplicated); lost and duplicated must be 0.
"""

import os
import random
import signal
import threading
import time

import polars as pl
import pytest

from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.cascade_pool import PoolSize, run_cascade_pool
from infoflow_ray.sweep.grid import resolve_grid, value_range
from infoflow_ray.sweep.progress import Progress


@pytest.mark.slow
def test_soak_random_actor_kills_lose_and_duplicate_nothing(tmp_path, ray_local):
    grid = resolve_grid(
        "tiny",
        overrides={
            "results": str(tmp_path / "soak"),
            "kinds": ("cascade",),
            "datasets": ("synthetic",),
            "sigma_w2": value_range(0.02, 8.0, 0.02),
            "depths": (4,),
            "seeds": (0,),
            "data": {"synthetic_inputs": 32, "synthetic_train": 1024, "synthetic_test": 64},
            "cascade": {"eval_samples": 32, "stored_images": 1},
        },
    )
    tasks = grid.tasks()
    store = ResultStore.open(grid.results)
    progress = Progress(("cascade",), interval_seconds=30)
    progress.set_total("cascade", len(tasks), 0)
    kills, stop = [], threading.Event()

    def start_killer(workers):
        rng = random.Random(0)

        def killer():
            while not stop.is_set():
                time.sleep(rng.uniform(0.5, 2.0))
                try:
                    pid = ray_local.get(rng.choice(workers).pid.remote(), timeout=30)
                    os.kill(pid, signal.SIGKILL)
                    kills.append(pid)
                except Exception:  # the chosen actor is restarting right now: try another time
                    pass

        threading.Thread(target=killer, daemon=True).start()

    try:
        finished = run_cascade_pool(
            tasks,
            results=grid.results,
            grid_name="soak",
            size=PoolSize(2, 1, 0),
            max_attempts=10,
            store=store,
            progress=progress,
            on_worker_started=start_killer,
        )
    finally:
        stop.set()
    runs = store.scan("runs").collect()
    ids = runs["task_id"]
    lost = len({t.task_id for t in tasks} - set(ids))
    duplicated = int(ids.is_duplicated().sum()) + int(
        store.scan("cutoffs").collect().group_by("task_id", "measure").len().filter(pl.col("len") > 1).height
    )
    retries = progress._counts["cascade"].retries
    print(
        f"\nsoak: tasks {len(tasks)}, kills {len(kills)}, retries {retries}, finished {len(finished)}, "
        f"lost {lost}, duplicated {duplicated}, max attempts {runs['attempts'].max()}"
    )
    assert len(kills) >= 5
    assert lost == 0 and duplicated == 0

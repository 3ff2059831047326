"""A search killed while trainings run resumes them from their checkpoints (issue 29, point 4).

The search runs its trainings as trials of one Tune experiment per run, added as the searches ask for them
(``baselines.stream_baselines``). After a kill the restarted search runs a new experiment; it finds the
interrupted trainings' checkpoints in the kept one and starts each from there when the search asks for it again,
instead of training it from epoch 0.
"""

from __future__ import annotations

import os
import signal
import time

import polars as pl
import pytest
import torch
from drivers import start_job

from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.baselines import CHECKPOINT_FILE, TASK_FILE
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.grid import resolve_grid

# Nothing reaches accuracy 0.99 in 12 epochs: every training runs its whole budget (≈ 6 s here), long enough to
# be killed in.
EPOCHS = 12
FLAGS = {"depths": "4,8", "max-epochs": str(EPOCHS), "threshold": "0.99", "max-train-samples": "2000"}


def _checkpointed_unfinished(results) -> dict[str, int]:
    """task id → epochs in its newest checkpoint, for trainings with a checkpoint and no stored row (read while
    Tune writes and deletes checkpoints: a folder that vanishes mid-read is skipped)."""
    finished = {p.stem for p in (results / "runs").rglob("*.parquet")} if (results / "runs").exists() else set()
    out: dict[str, int] = {}
    try:
        task_files = list((results / "_tune").rglob(TASK_FILE))
    except OSError:
        return out
    for task_file in task_files:
        try:
            task = task_file.read_text()
            if task in finished:
                continue
            epochs = len(torch.load(task_file.parent / CHECKPOINT_FILE)["trainer"]["history"])
        except Exception:  # being written, or deleted
            continue
        out[task] = max(out.get(task, 0), epochs)
    return out


@pytest.mark.system
def test_a_killed_search_resumes_its_running_trainings_from_their_checkpoints(tmp_path, ray_address):
    results = tmp_path / "results"
    args = [a for k, v in FLAGS.items() for a in (f"--{k}", v)]
    args += ["--results", str(results), "--address", ray_address]  # the session's Ray, not a local one
    proc = start_job("full_grid.py", "--preset", "tiny", "--search", *args)
    deadline = time.monotonic() + 400
    try:
        while True:  # a training stored (so the pending set changes) and another one checkpointed at epoch ≥ 2
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no training was checkpointed mid-way in 400 s"
            summary = results / "train_summary"
            stored = list(summary.rglob("*.parquet")) if summary.exists() else []
            running = {t: e for t, e in _checkpointed_unfinished(results).items() if 2 <= e < EPOCHS}
            if stored and running:
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver (and with it its job's workers), mid-training
        proc.wait(timeout=60)
    interrupted = _checkpointed_unfinished(results)  # re-read: a later checkpoint may have landed meanwhile

    grid = resolve_grid(
        "tiny",
        overrides={
            "results": str(results),
            "depths": (4, 8),
            "train": {"max_epochs": EPOCHS, "accuracy_threshold": 0.99},
            "data": {"max_train_samples": 2000},
            "search": {"enabled": True},
        },
    )
    outcome = run_grid(grid, progress_interval_seconds=300)
    assert not outcome.failed and not outcome.interrupted
    store = ResultStore.open(str(results), create=False)
    summary = store.scan("train_summary").select("task_id", "epochs", "resumed_from_epoch").collect()
    resumed = dict(summary.select("task_id", "resumed_from_epoch").rows())
    for task, epochs in interrupted.items():
        if task in resumed:  # the search still wanted it: it goes on from the newest checkpoint, never from 0.
            # ≥, not ==: the reader above can miss a checkpoint Tune was still moving into the trial folder at the
            # kill (seen once under load: 19 read, 20 resumed); the epoch rows below show none was trained twice.
            assert epochs <= resumed[task] <= EPOCHS, (task, resumed[task], epochs)
    assert any(task in resumed for task in running)
    epochs = store.scan("train_epochs").select("task_id", "epoch").collect()
    counts = epochs.group_by("task_id").agg(pl.len().alias("rows"), pl.col("epoch").n_unique().alias("unique"))
    assert (counts["rows"] == counts["unique"]).all()  # no epoch stored twice
    assert dict(counts.select("task_id", "rows").rows()) == dict(summary.select("task_id", "epochs").rows())
    assert not (results / "_tune").exists()  # the interrupted experiment is deleted with the run that used it


def test_interrupted_checkpoints_picks_each_tasks_latest_epoch_over_kept_experiments(tmp_path):
    """Two kept experiments hold checkpoints of one task (epochs 2 and 5): the later one wins; a task nobody asks
    for, and the experiment about to run, are left out."""
    from infoflow_ray.sweep.baselines import interrupted_checkpoints

    grid = resolve_grid("tiny")
    wanted, other = grid.baseline_task("mnist_t10k", 0.5, 0.05, 3, 0), grid.baseline_task("mnist_t10k", 3.0, 0.05, 6, 0)
    storage = tmp_path / "_tune"

    def checkpoint(experiment: str, task, epochs: int, index: int):
        folder = storage / experiment / "trial_a" / f"checkpoint_{index:06d}"
        folder.mkdir(parents=True)
        (folder / TASK_FILE).write_text(task.task_id)
        torch.save(
            {"trainer": {"history": [{"epoch": e} for e in range(1, epochs + 1)]}, "attempt": 1},
            folder / CHECKPOINT_FILE,
        )
        return str(folder)

    checkpoint("baselines-aaa", wanted, 2, 1)
    later = checkpoint("baselines-bbb", wanted, 5, 0)
    checkpoint("baselines-bbb", other, 3, 1)
    checkpoint("baselines-ccc", wanted, 9, 4)  # the experiment about to run: excluded
    found, experiments = interrupted_checkpoints(str(storage), [wanted], exclude="baselines-ccc")
    assert found == {wanted.task_id: later} and experiments == ["baselines-bbb"]
    assert interrupted_checkpoints(str(storage), [], exclude="x") == ({}, [])
    assert interrupted_checkpoints(str(tmp_path / "none"), [wanted], exclude="x") == ({}, [])

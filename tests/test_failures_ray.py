"""What goes wrong inside Ray and Tune lands in the results: a diverging training and a non-finite cascade are
stored flagged, and a training whose worker dies for good is recorded in ``failures``, keeps its checkpoint and
resumes from it on the next run. Real Ray, real Tune, real trainings."""

import io
import os
import signal
import threading
import time

import polars as pl
import psutil
import pytest

from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.grid import resolve_grid
from infoflow_ray.sweep.task_runner import load_task_data
from infoflow_ray.training import train_baseline


def test_a_diverging_training_and_a_nonfinite_cascade_are_stored_flagged(tmp_path, ray_local):
    """σw² = 1e80 overflows the float32 weights: the cascade's curves are NaN and its training diverges in its
    first epoch. Both tasks finish (nothing fails), stored with their status and flags."""
    grid = resolve_grid("tiny", overrides={"results": str(tmp_path / "r"), "sigma_w2": (1e80,), "depths": (3,)})
    outcome = run_grid(grid, out=io.StringIO())
    assert not outcome.failed
    store = ResultStore.open(str(tmp_path / "r"), create=False)
    status = dict(store.scan("runs").select("kind", "status").collect().rows())
    assert status == {"cascade": "nonfinite", "baseline": "diverged"}
    summary = store.scan("train_summary").collect().row(0, named=True)
    assert (summary["stop_reason"], summary["epochs"], summary["reached_threshold"]) == ("diverged", 1, False)
    cutoffs = store.scan("cutoffs").collect()
    assert cutoffs.height == 4 and not cutoffs["finite"].any()
    assert store.scan("failures").collect().is_empty()


def _trial_workers() -> list[psutil.Process]:
    """This session's Ray workers that run a Tune trial (Tune's function trainable, 'ImplicitFunc')."""
    found = []
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "ImplicitFunc" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.mark.system
def test_a_training_whose_worker_dies_for_good_is_recorded_and_resumes_from_its_checkpoint(tmp_path, ray_local):
    """One attempt allowed: the trial's worker is killed once its third checkpoint is on disk (Tune may not have
    registered that one yet, so the resume starts from epoch 2 or 3). The task is reported
    failed, the ``failures`` table holds the attempt, Tune's state keeps the checkpoint, and the next run (with
    attempts to spare) continues that training from the checkpoint's epoch."""
    results = tmp_path / "r"
    overrides = {
        "results": str(results),
        "kinds": ("baseline",),
        "sigma_w2": (1.76,),
        "depths": (4,),
        "train": {"max_epochs": 12, "accuracy_threshold": 0.999},
        "data": {"max_train_samples": 1000},
        "resources": {"max_task_attempts": 1},
    }
    outcome = {}
    driver = threading.Thread(
        target=lambda: outcome.update(run=run_grid(resolve_grid("tiny", overrides=overrides), out=io.StringIO()))
    )
    driver.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        checkpoints = list((results / "_tune").rglob("checkpoint_*"))
        workers = _trial_workers()
        if workers and checkpoints and max(int(c.name.rsplit("_", 1)[1]) for c in checkpoints) >= 2:
            break
        time.sleep(0.05)
    for worker in _trial_workers():
        worker.send_signal(signal.SIGKILL)
    driver.join(timeout=300)
    assert not driver.is_alive()

    (failed_label,) = outcome["run"].failed
    assert "σw²=1.76" in failed_label
    store = ResultStore.open(str(results), create=False)
    failures = store.scan("failures").collect()
    assert failures.select("kind", "depth", "attempt").rows() == [("baseline", 4, 1)] and failures["error"][0]
    assert store.scan("runs").collect().is_empty()
    assert list((results / "_tune").rglob("checkpoint_*")), "the failed trial's checkpoint must stay for the re-run"

    log = io.StringIO()
    rerun = run_grid(resolve_grid("tiny", overrides={**overrides, "resources": {"max_task_attempts": 2}}), out=log)
    assert not rerun.failed
    summary = store.scan("train_summary").collect()
    assert summary["epochs"].to_list() == [12] and summary["resumed_from_epoch"][0] >= 2, log.getvalue()
    task = resolve_grid("tiny", overrides=overrides).tasks()[0]  # the same training in one go, without Ray
    data = load_task_data(task.dataset, task.data, "cpu")
    undisturbed = train_baseline(task.network, task.train, data, task.seed, "cpu")
    epochs = store.scan("train_epochs").collect().sort("epoch")
    assert epochs["test_accuracy"].to_list() == [e.test_accuracy for e in undisturbed.epochs]
    assert epochs["train_loss"].to_list() == pytest.approx([e.train_loss for e in undisturbed.epochs], rel=1e-6)
    assert not (results / "_tune").exists()
    assert store.scan("runs").select(pl.col("task_id")).collect()["task_id"].to_list() == failures["task_id"].to_list()

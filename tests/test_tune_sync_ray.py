"""Tune's experiment-state upload races no more with its next snapshot (issue 29, point 5).

Before ``baselines.serialise_experiment_state_sync``, a run whose trials checkpoint often (the project keeps
``num_to_keep=1``, which forces an experiment snapshot after every trial checkpoint) sometimes logged "Saving
experiment state to storage at … failed with exception: FileNotFoundError … tmp-searcher-state-….pkl": the
snapshot wrote the searcher's temp file while the previous upload was copying the folder.

Also the run settings every Tune experiment of the project shares (``baselines.new_tuner``, ``trial_gpus``).
"""

from __future__ import annotations

import logging
import sys

import pytest
import ray
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from infoflow_ray.sweep.baselines import (
    delete_experiment,
    new_tuner,
    report_with_checkpoint,
    serialise_experiment_state_sync,
    trial_gpus,
)

pytestmark = pytest.mark.usefixtures("ray_local")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import a test module


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += " " + logging.Formatter().formatException(record.exc_info)
        self.messages.append(text)


def _checkpointing_trainable(config: dict) -> None:
    for step in range(config["steps"]):
        report_with_checkpoint({"score": config["x"] * step, "step": step}, {"step": step})


@pytest.mark.system
def test_snapshots_with_a_searcher_and_frequent_checkpoints_log_no_failed_upload(tmp_path):
    """Many forced snapshots (every report checkpoints, num_to_keep=1) with Optuna's searcher state written each
    time: no upload fails, no traceback is logged, every trial ends, and the experiment's state is complete
    (the searcher's state file is in storage, no temp file left beside it)."""
    serialise_experiment_state_sync()
    records = _Records()
    loggers = [logging.getLogger(n) for n in ("ray.tune", "ray.train", "ray.tune.execution.experiment_state")]
    for lg in loggers:
        lg.addHandler(records)
    storage = str(tmp_path / "_tune")
    try:
        for run in range(3):  # the race showed in about one run of three before the fix
            tuner = tune.Tuner(
                _checkpointing_trainable,
                param_space={"x": tune.uniform(0.0, 1.0), "steps": 12},
                tune_config=tune.TuneConfig(
                    metric="score", mode="max", num_samples=6, search_alg=OptunaSearch(), max_concurrent_trials=2
                ),
                run_config=tune.RunConfig(
                    name=f"race-{run}",
                    storage_path=storage,
                    verbose=0,
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
            results = tuner.fit()
            assert len(results) == 6 and not results.errors
            files = [p.name for p in (tmp_path / "_tune" / f"race-{run}").iterdir()]
            assert any(f.startswith("searcher-state-") for f in files), files
            assert not [f for f in files if "-tmp-" in f], files
            delete_experiment(storage, f"race-{run}")
    finally:
        for lg in loggers:
            lg.removeHandler(records)
    failures = [m for m in records.messages if "failed" in m.lower() or "FileNotFoundError" in m]
    assert not failures, failures[0][:2000]


def test_the_guard_is_installed_once():
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    serialise_experiment_state_sync()
    first = _ExperimentCheckpointManager.sync_up_experiment_state
    serialise_experiment_state_sync()
    assert _ExperimentCheckpointManager.sync_up_experiment_state is first
    assert first._waits_for_upload


def test_every_experiment_keeps_one_checkpoint_retries_and_takes_a_quarter_gpu_only_where_there_are_gpus(tmp_path):
    """``new_tuner`` (the grids' baseline trials and predict-then-tune's searches) and ``trial_gpus`` (their GPU
    share): the run settings stored experiments are restored with."""
    tuner = new_tuner(
        _checkpointing_trainable,
        name="settings",
        storage=str(tmp_path / "_tune"),
        callbacks=[],
        max_attempts=3,
        param_space={"x": 1.0, "steps": 1},
        max_concurrent_trials=2,
    )
    run = tuner._local_tuner.get_run_config()
    assert (run.name, run.storage_path, run.verbose) == ("settings", str(tmp_path / "_tune"), 0)
    assert run.failure_config.max_failures == 2 and run.checkpoint_config.num_to_keep == 1
    tune_config = tuner._local_tuner._tune_config
    assert tune_config.reuse_actors and tune_config.max_concurrent_trials == 2
    has_gpus = bool(ray.cluster_resources().get("GPU", 0))
    assert trial_gpus(None) == (0.25 if has_gpus else 0.0)
    assert trial_gpus(0.5) == 0.5 and trial_gpus(0.0) == 0.0

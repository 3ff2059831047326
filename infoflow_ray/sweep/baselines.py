"""Baseline trainings as Ray Tune trials: one trial per (dataset, σw², depth, seed).

Each trial reports test accuracy every epoch, stops at the accuracy threshold, the epoch budget or on
divergence, checkpoints its trainer so an interrupted grid resumes (``Tuner.restore``), and writes its rows to
the results store itself when it ends. Small trials share a GPU through fractional resources.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import ray
import torch
from ray import tune
from ray.tune.search import Searcher

from infoflow_ray.batched_training import train_baselines_batched
from infoflow_ray.model import default_device
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.grid import Task
from infoflow_ray.sweep.progress import Progress
from infoflow_ray.sweep.task_runner import (
    Rows,
    baseline_rows,
    device_name,
    failure_row,
    info_plane_point,
    interpret_curves,
    interpret_rows,
    load_task_data,
    runs_row,
    utc_now,
)
from infoflow_ray.training import BaselineTrainer, mi_stopping

CHECKPOINT_FILE = "trainer.pt"
TASK_FILE = "task_id"  # beside it: which task a checkpoint belongs to (read by latest_checkpoints)


def baseline_trainable(config: dict) -> None:
    """The Tune function trainable: one baseline network epoch by epoch (checkpointed), or a group of them
    trained at once (``resources.baseline_group`` > 1); either way each network's rows are stored as its task."""
    if len(config["tasks"]) > 1:
        return _train_group(config)
    task = Task.from_config(config["tasks"][0])
    store = ResultStore.open(config["results"], create=False)
    if store.is_finished(task.task_id, task.dataset):
        return  # finished by an earlier run whose Tune state was lost; never duplicate it
    started, t0 = utc_now(), time.perf_counter()
    device = default_device()
    trainer = BaselineTrainer(
        task.network, task.train, load_task_data(task.dataset, task.data, device), task.seed, device
    )
    attempt = 1
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        remove_orphan_checkpoints(checkpoint)
    elif config.get("resume_from", {}).get(task.task_id):  # a checkpoint of an earlier experiment (run_baselines)
        checkpoint = tune.Checkpoint(config["resume_from"][task.task_id])
    if checkpoint:
        saved = load_checkpoint(checkpoint, device)
        trainer.load_state_dict(saved["trainer"])
        attempt = saved["attempt"] + 1
    resumed_from_epoch = trainer.epoch
    every = config.get("checkpoint_every_epochs", 1)
    probe = InfoPlaneProbe(task, trainer) if task.info_plane is not None else None
    if probe and checkpoint:
        probe.restore(saved.get("info_plane", []))
    # the trained network's curves at interpret.at_epochs before the last (kept in the checkpoints)
    midway: Rows = saved.get("interpret", {}) if checkpoint else {}
    at_epochs = task.interpret.at_epochs if task.interpret is not None else ()
    if 0 in at_epochs and trainer.epoch == 0:
        midway = interpret_curves(task, trainer.network, trainer.data, 0)[0]
    while (reason := trainer.stop_reason() or (probe and probe.stop_reason())) is None:
        record = trainer.run_epoch()
        if probe:
            probe.after_epoch(record.epoch)
        metrics = {**record.as_dict(), "stop_reason": trainer.stop_reason() or (probe and probe.stop_reason()) or ""}
        if record.epoch in at_epochs and not metrics["stop_reason"]:  # the last epoch's come with the pictures
            for table, rows in interpret_curves(task, trainer.network, trainer.data, record.epoch)[0].items():
                midway[table] = midway.get(table, []) + rows
        if record.epoch % every == 0 or metrics["stop_reason"]:
            state = {
                "trainer": trainer.state_dict(),
                "attempt": attempt,
                "info_plane": probe.rows if probe else [],
                "interpret": midway,
            }
            report_with_checkpoint(metrics, state, task_id=task.task_id)
        else:
            tune.report(metrics)
    rows = baseline_rows(task, trainer.history, reason, resumed_from_epoch)
    if probe:
        rows["info_plane"] = probe.rows
    if task.interpret is not None:  # the trained network, still in this process: no weights file, no retraining
        final = interpret_rows(task, trainer.network, trainer.data, trainer.epoch)
        rows.update({table: midway.get(table, []) + final_rows for table, final_rows in final.items()})
    status = "diverged" if reason == "diverged" else "ok"
    rows["runs"] = [
        runs_row(
            task,
            grid_name=config["grid_name"],
            status=status,
            started_at=started,
            finished_at=utc_now(),
            seconds=time.perf_counter() - t0,
            attempts=attempt,
            node_id=_node_id(),
            device=device_name(device),
        )
    ]
    store.write_task(task.task_id, task.dataset, rows)


def report_with_checkpoint(metrics: dict, state: dict, task_id: str | None = None) -> None:
    """``tune.report(metrics)`` with a checkpoint holding ``state`` (CHECKPOINT_FILE; with ``task_id``, the task's
    id in TASK_FILE beside it, for ``latest_checkpoints``)."""
    with tempfile.TemporaryDirectory() as folder:
        torch.save(state, Path(folder) / CHECKPOINT_FILE)
        if task_id is not None:
            (Path(folder) / TASK_FILE).write_text(task_id)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def load_checkpoint(checkpoint: tune.Checkpoint, device: torch.device) -> dict:
    """The ``state`` that ``report_with_checkpoint`` saved in ``checkpoint``, its tensors on ``device``."""
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / CHECKPOINT_FILE, map_location=device)


def _train_group(config: dict) -> None:
    """G networks of one architecture as one batched training (``batched_training``): a GPU is not left mostly
    idle by one small MLP. No per-epoch checkpoint: an interrupted group trains again from the start."""
    store = ResultStore.open(config["results"], create=False)
    tasks = [t for t in map(Task.from_config, config["tasks"]) if not store.is_finished(t.task_id, t.dataset)]
    if not tasks:
        return
    started, t0 = utc_now(), time.perf_counter()
    device = default_device()
    data = load_task_data(tasks[0].dataset, tasks[0].data, device)
    results = train_baselines_batched([t.network for t in tasks], tasks[0].train, data, [t.seed for t in tasks], device)
    seconds = time.perf_counter() - t0
    for task, result in zip(tasks, results):
        rows = baseline_rows(task, result.epochs, result.stop_reason)
        rows["runs"] = [
            runs_row(
                task,
                grid_name=config["grid_name"],
                status="diverged" if result.stop_reason == "diverged" else "ok",
                started_at=started,
                finished_at=utc_now(),
                seconds=seconds / len(tasks),
                attempts=1,
                node_id=_node_id(),
                device=device_name(device),
            )
        ]
        store.write_task(task.task_id, task.dataset, rows)
    tune.report(
        {
            "epoch": max(len(r.epochs) for r in results),
            "stop_reason": "group",
            "test_accuracy": max(r.best_accuracy for r in results),
        }
    )


def group_tasks(tasks: list[Task], size: int) -> list[list[Task]]:
    """Baseline tasks in groups of at most ``size`` that can train together (same dataset, architecture,
    training settings; no information-plane probe, which needs one network per trial)."""
    groups: dict[tuple, list[Task]] = {}
    for task in tasks:
        if size <= 1 or task.info_plane is not None or task.interpret is not None:
            key = (task.task_id,)
        else:
            key = (task.dataset, task.network.architecture, task.network.layer_widths, task.data, task.train)
        groups.setdefault(key, []).append(task)
    return [members[i : i + size] for members in groups.values() for i in range(0, len(members), max(1, size))]


class InfoPlaneProbe:
    """The information-plane trajectory of one training: a point at epoch 0 and every ``every_epochs`` epochs;
    with ``stopper='mi'`` it also ends the training when I(T;Y) of the last hidden layer stops rising."""

    def __init__(self, task: Task, trainer: BaselineTrainer):
        self.task, self.trainer, self.spec = task, trainer, task.info_plane
        self.rows = info_plane_point(task, trainer.network, trainer.data, epoch=0)

    def restore(self, rows: list[dict]) -> None:
        self.rows = rows or self.rows

    def after_epoch(self, epoch: int) -> None:
        if epoch % self.spec.every_epochs == 0:
            self.rows += info_plane_point(self.task, self.trainer.network, self.trainer.data, epoch=epoch)

    def last_hidden_ity(self) -> list[float]:
        """I(T;Y) of the last hidden layer (L−1) at every measured epoch, in order."""
        last_hidden = self.task.network.depth - 1
        return [r["i_ty"] for r in self.rows if r["layer"] == last_hidden]

    def stop_reason(self) -> str | None:
        if self.spec.stopper == "mi" and mi_stopping(self.last_hidden_ity(), self.spec.patience, self.spec.min_delta):
            return "mi_plateau"
        return None


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


class _TuneProgress(tune.Callback):
    """Feeds trial starts/ends into the driver's progress line, records trials that failed for good, and deletes
    the checkpoints of a trial whose rows are stored (so checkpoint storage is bounded by the running trials)."""

    def __init__(self, progress: Progress, store: ResultStore):
        self.progress, self.store = progress, store
        self._running: set[str] = set()  # trial ids started and not yet ended: what the progress line counts

    def __getstate__(self) -> dict:
        return {}  # Tune pickles its run config; the driver re-attaches a live callback on restore

    def __setstate__(self, state: dict) -> None:
        self.progress = self.store = None
        self._running = set()

    def _ended(self, trial) -> bool:
        """Whether ``trial`` was counted as running (and no longer is)."""
        if trial.trial_id not in self._running:
            return False
        self._running.discard(trial.trial_id)
        return True

    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.trial_id not in self._running:
            self._running.add(trial.trial_id)
            self.progress.started("baseline", f"started {_label(_tasks(trial))}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        tasks = _tasks(trial)
        detail = (
            f"{result.get('stop_reason') or 'skipped (already stored)'} after {result.get('epoch', 0)} "
            f"epochs, {'best ' if len(tasks) > 1 else ''}test accuracy "
            f"{result.get('test_accuracy', float('nan')):.3f}"
        )
        if all(self.store.is_finished(t.task_id, t.dataset) for t in tasks):
            delete_checkpoints(trial)
        self.progress.finished(
            "baseline", f"{_label(tasks)}: {detail}", count=len(tasks), was_running=self._ended(trial)
        )

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.progress.retried(
            "baseline",
            f"retrying {_label(_tasks(trial))} (attempt {trial.num_failures} failed)",
            was_running=self._ended(trial),
        )

    def on_trial_error(self, iteration, trials, trial, **info):
        was_running = self._ended(trial)  # its checkpoint stays: a re-run resumes the trial from it
        tasks = _tasks(trial)
        error = str(trial.error_file) if trial.error_file else "unknown error"
        try:
            error = Path(trial.error_file).read_text().strip().splitlines()[-1][:500]
        except (OSError, TypeError, IndexError):
            pass
        for task in tasks:
            self.store.write_failure(
                task.task_id, trial.num_failures, failure_row(task, "baseline", trial.num_failures, error)
            )
        self.progress.finished(
            "baseline", f"FAILED {_label(tasks)}: {error}", failed=True, count=len(tasks), was_running=was_running
        )


def remove_orphan_checkpoints(checkpoint: tune.Checkpoint) -> list[str]:
    """Delete the checkpoint folders of this trial newer than the one it resumes from; return their paths.

    A worker that dies right after writing a checkpoint leaves a folder Tune never registered. The resumed trial
    counts its checkpoints from the registered one, so its next checkpoint would take that orphan's name, a folder
    that holds a later state of the training."""
    parent, name = checkpoint.path.rstrip("/").rsplit("/", 1)
    orphans = [
        path
        for index, path in _checkpoint_folders(checkpoint.filesystem, parent).items()
        if index > _checkpoint_index(name)
    ]
    for path in orphans:
        checkpoint.filesystem.delete_dir(path)
    return orphans


def delete_checkpoints(trial) -> int:
    """Delete the checkpoint folders of an ended trial from Tune's storage (local or object store); return how
    many. Tune keeps the last checkpoint of every finished trial until the experiment is deleted: at depth 200
    that is ~0.5 GB per network, which the stored rows make useless."""
    filesystem = trial.storage.storage_filesystem
    folders = _checkpoint_folders(filesystem, trial.storage.trial_fs_path).values()
    for folder in folders:
        filesystem.delete_dir(folder)
    return len(folders)


def _checkpoint_index(folder_name: str) -> int:
    """N of Tune's checkpoint folder name ``checkpoint_00000N``."""
    return int(folder_name.rsplit("_", 1)[1])


def _checkpoint_folders(filesystem: pafs.FileSystem, trial_folder: str) -> dict[int, str]:
    """Tune's checkpoint folders of one trial, by their index."""
    infos = filesystem.get_file_info(pafs.FileSelector(trial_folder, allow_not_found=True))
    return {
        _checkpoint_index(i.base_name): i.path
        for i in infos
        if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_")
    }


def _tasks(trial) -> list[Task]:
    return [Task.from_config(c) for c in trial.config["tasks"]]


def _label(tasks: list[Task]) -> str:
    if len(tasks) == 1:
        return tasks[0].label
    sigmas = sorted({t.network.sigma_w2 for t in tasks})
    return (
        f"{len(tasks)} baselines {tasks[0].dataset} L={tasks[0].network.depth} "
        f"σw²={sigmas[0]:g}..{sigmas[-1]:g} (batched)"
    )


def experiment_name(tasks: list[Task]) -> str:
    """A Tune experiment name that is the same for the same set of baseline tasks (so a re-run restores it)."""
    digest = hashlib.sha256("\n".join(sorted(t.task_id for t in tasks)).encode()).hexdigest()[:12]
    return f"baselines-{digest}"


def serialise_experiment_state_sync() -> None:
    """Make Tune write its experiment state only once the previous upload of that state has ended (idempotent;
    call before ``Tuner.fit``).

    The race this removes (Ray 2.x, ``tune/execution/experiment_state.py``): Tune writes the experiment state into
    a local staging folder (the searcher's state via a ``.<uuid>-tmp-searcher-state-….pkl`` file renamed over
    ``searcher-state-….pkl``) and uploads that folder to ``{results}/_tune/<experiment>`` in a background
    thread. A forced snapshot writes the next state *before* waiting for the previous upload, so an upload that
    listed the temp file finds it renamed: "Saving experiment state to storage at … failed with exception:
    FileNotFoundError … tmp-searcher-state-….pkl", a 25-line traceback in a run that succeeded. Forced snapshots
    come from ``CheckpointConfig(num_to_keep=1)``, which this project sets to keep one checkpoint per trial
    (depth-200 checkpoints are ~0.5 GB): Tune then snapshots after every trial checkpoint, seconds apart with
    several trials running. Waiting for the upload before writing keeps the upload's view of the folder
    consistent; an upload that really failed is still reported, as Tune reports it."""
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    original = _ExperimentCheckpointManager.sync_up_experiment_state
    if getattr(original, "_waits_for_upload", False):
        return

    @functools.wraps(original)
    def sync_up_experiment_state(self, save_fn, force: bool = False, wait: bool = False):
        def save_after_upload() -> None:
            try:
                self._storage.syncer.wait()
            except Exception:
                logging.getLogger("ray.tune.execution.experiment_state").error(
                    "Saving experiment state to storage at '%s' failed with exception: ",
                    self._storage.experiment_fs_path,
                    exc_info=True,
                )
            save_fn()

        return original(self, save_after_upload, force=force, wait=wait)

    sync_up_experiment_state._waits_for_upload = True
    _ExperimentCheckpointManager.sync_up_experiment_state = sync_up_experiment_state


def fit_tuner(tuner: tune.Tuner):
    """``tuner.fit()``, stopped cleanly by Ctrl-C or SIGTERM: Tune ends the step it is in and saves its experiment
    state, then the signal's own handler runs (a KeyboardInterrupt for the caller). Callbacks store a trial's row
    when it ends; stopping between steps keeps Tune's state in line with those rows, so a resumed experiment
    never trains a stored trial again (interrupted mid-step, Tune would restore it as unfinished). A second
    signal, or one before Tune's loop has started, interrupts at once. Signals left to the system's default
    (SIGTERM outside a job) are not caught; off the main thread this is plain ``tuner.fit()``."""
    serialise_experiment_state_sync()
    if threading.current_thread() is not threading.main_thread():
        return tuner.fit()
    originals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    caught: list[tuple[int, object]] = []

    def stop_tune(signum, frame):
        tune_stop = signal.getsignal(signal.SIGUSR1)  # Tune's loop installs its stop handler here (tune.py)
        if caught or not callable(tune_stop):
            return originals[signum](signum, frame)
        caught.append((signum, frame))
        tune_log.setLevel(logging.ERROR)  # not Tune's "resume with Tuner.restore(...)": the job says how to resume
        tune_stop(signum, frame)

    tune_log = logging.getLogger("ray.tune.tune")
    level = tune_log.level
    handled = [s for s, handler in originals.items() if callable(handler)]
    usr1 = signal.signal(signal.SIGUSR1, signal.SIG_DFL)  # not a previous experiment's stale handler
    for s in handled:
        signal.signal(s, stop_tune)
    try:
        results = tuner.fit()
    finally:
        for s in handled:
            signal.signal(s, originals[s])
        signal.signal(signal.SIGUSR1, usr1)
        tune_log.setLevel(level)
    if caught:
        signum, frame = caught[0]
        originals[signum](signum, frame)
        raise KeyboardInterrupt  # a handler that returned: the run was still interrupted
    return results


def tune_storage(results: str) -> str:
    """Where Tune keeps trial state and checkpoints: ``_tune`` inside the results location (ignored by readers)."""
    if "://" in results:
        return results.rstrip("/") + "/_tune"
    return os.path.abspath(os.path.join(results, "_tune"))


@dataclass(frozen=True)
class TrialSettings:
    """How a grid's baseline trials run, the same for the fixed set of tasks (``run_baselines``) and the search's
    stream (``stream_baselines``); ``execution._trial_settings`` builds it from the grid's ``resources``.

    ``results``: the results location (rows, and Tune's state in ``{results}/_tune``); ``grid_name``: the grid
    the ``runs`` rows name; ``cpus``, ``gpus``: each trial's resources (a GPU fraction: small trials share a
    GPU); ``max_concurrent``: trials at once (None: as many as the resources hold); ``max_attempts``: tries per
    trial (Tune retries a failed one from its checkpoint ``max_attempts - 1`` times); ``checkpoint_every_epochs``:
    a trial checkpoints every that many epochs and at its end."""

    results: str
    grid_name: str
    cpus: float
    gpus: float
    max_concurrent: int | None
    max_attempts: int
    checkpoint_every_epochs: int

    @property
    def storage(self) -> str:
        """Where Tune keeps the trials' state and checkpoints (``tune_storage``)."""
        return tune_storage(self.results)

    def trial_config(self) -> dict:
        """What every trial's config holds besides its ``tasks`` (and ``resume_from``): read by
        ``baseline_trainable``. Stored experiments hold it as written here, so its keys must not change."""
        return {
            "results": self.results,
            "grid_name": self.grid_name,
            "checkpoint_every_epochs": self.checkpoint_every_epochs,
        }

    def trainable(self):
        """``baseline_trainable`` with each trial's resources."""
        return tune.with_resources(baseline_trainable, {"cpu": self.cpus, "gpu": self.gpus})


def trial_gpus(gpus_per_trial: float | None) -> float:
    """Each trial's GPU share: ``gpus_per_trial`` when set, else a quarter GPU when the connected Ray cluster has
    GPUs (small networks share one) and 0 when it has none. The one default of every Tune trial (the grids'
    baselines, predict-then-tune's trials and its predictor task)."""
    if gpus_per_trial is not None:
        return gpus_per_trial
    return 0.25 if ray.cluster_resources().get("GPU", 0) else 0.0


def new_tuner(
    trainable,
    *,
    name: str,
    storage: str,
    callbacks: list[tune.Callback],
    max_attempts: int,
    param_space: dict | None = None,
    **tune_config,
) -> tune.Tuner:
    """A new Tune experiment ``name`` in ``storage`` with the run settings every experiment of the project has
    (the grids' baseline trials and predict-then-tune's searches): one checkpoint kept per trial (depth-200
    checkpoints are ~0.5 GB), ``max_attempts`` tries per trial (Tune retries a failed one from its checkpoint),
    ``callbacks`` (the driver's progress lines) as Tune's only output, and trials reusing their actors.
    ``tune_config``: the rest of the experiment's TuneConfig (concurrency, search, scheduler, trial names)."""
    return tune.Tuner(
        trainable,
        param_space=param_space,
        # reuse_actors: a trial starts in the process the last one ended in (torch imported, CUDA context up),
        # not in a fresh worker: seconds per trial that short trials cannot hide.
        tune_config=tune.TuneConfig(reuse_actors=True, **tune_config),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage,
            verbose=0,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=max_attempts - 1),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )


def _new_tuner(
    settings: TrialSettings,
    name: str,
    callbacks: list[tune.Callback],
    max_concurrent: int | None,
    param_space: dict | None = None,
    **search,
) -> tune.Tuner:
    """A new experiment ``name`` of baseline trials (``new_tuner``) in ``settings.storage``: the fixed set's
    (``param_space``, a grid search over task groups) or the stream's (``search``: TuneConfig's ``search_alg`` and
    ``num_samples``), with trials named after their tasks."""
    return new_tuner(
        settings.trainable(),
        name=name,
        storage=settings.storage,
        callbacks=callbacks,
        max_attempts=settings.max_attempts,
        param_space=param_space,
        max_concurrent_trials=max_concurrent,
        trial_name_creator=lambda trial: _trial_name(trial),
        trial_dirname_creator=lambda trial: _trial_name(trial).replace(" ", "_"),
        **search,
    )


def run_baselines(
    all_tasks: list[Task],
    pending: list[Task],
    settings: TrialSettings,
    *,
    store: ResultStore,
    progress: Progress,
    group: int = 1,
) -> None:
    """Run the pending baseline tasks as Tune trials, restoring the grid's experiment if it was interrupted."""
    storage = settings.storage
    name = experiment_name(all_tasks) + (f"-g{group}" if group > 1 else "")
    callbacks = [_TuneProgress(progress, store)]
    common = settings.trial_config()
    path = f"{storage}/{name}"
    if tune.Tuner.can_restore(path):
        progress.note(f"resuming the baseline trials of {path}")
        tuner = tune.Tuner.restore(path, settings.trainable(), resume_unfinished=True, resume_errored=True)
        tuner._local_tuner.get_run_config().callbacks = callbacks
        if _fit_and_clean_up(tuner, storage, name, all_tasks, store):
            return
        done = store.finished_task_ids("baseline")
        pending = [t for t in pending if t.task_id not in done]
        if not pending:
            return
        # Tasks Tune ended without their rows (a restore can end a trial early): run them in a new experiment,
        # each from its newest checkpoint of the old one, and delete the old one with the new one.
        common["resume_from"] = latest_checkpoints(storage, name)
        previous, name = [name], f"{name}-rerun-{int(time.time())}"
    else:
        # A run killed while trainings ran may have left their checkpoints in an experiment of another name (a
        # search's stream, or a grid of other tasks in the same folder). Start each pending task from its newest
        # checkpoint there, not from epoch 0.
        common["resume_from"], previous = interrupted_checkpoints(storage, pending, exclude=name)
        if previous:
            progress.note(
                f"{len(common['resume_from'])} training(s) resume from the checkpoints of an interrupted run "
                f"({', '.join(previous)})"
            )
        else:
            del common["resume_from"]
    groups = group_tasks(pending, group)
    param_space = {**common, "tasks": tune.grid_search([[t.config() for t in g] for g in groups])}
    tuner = _new_tuner(settings, name, callbacks, settings.max_concurrent, param_space=param_space)
    if _fit_and_clean_up(tuner, storage, name, pending, store) and "resume_from" in common:
        _delete_used(storage, previous, store)


def _delete_used(storage: str, previous: list[str], store: ResultStore) -> None:
    """Delete the kept experiments ``previous`` once every task checkpointed there is stored (another run may
    still need one)."""
    done = store.finished_task_ids("baseline")
    for old in previous:
        if set(latest_checkpoints(storage, old)) <= done:
            delete_experiment(storage, old)


class TaskSearcher(Searcher):
    """Tune's searcher for a stream of trainings (the search, ``sweep.execution.Stream``): ``suggest`` hands Tune
    the next group of tasks the search has asked for (None while it has asked for nothing new, FINISHED once it
    is done), and ``on_trial_complete`` reports the group's end, on which the search replans. Trials are thus
    added to the running experiment as the search decides, not a round at a time.

    ``resume_from``: task id → its newest checkpoint in a kept experiment (a run killed mid-training): such a
    task's trial starts from that epoch, not from epoch 0."""

    def __init__(
        self,
        next_group: Callable[[], list[Task] | str | None],
        ended: Callable[[list[Task]], None],
        common: dict,
        resume_from: dict[str, str],
    ):
        super().__init__()
        self._next_group, self._ended, self._common, self._resume = next_group, ended, common, resume_from
        self._trials: dict[str, list[Task]] = {}
        self.tasks: list[Task] = []  # every task handed to Tune

    def suggest(self, trial_id: str) -> dict | str | None:
        group = self._next_group()
        if group is None or group == Searcher.FINISHED:
            return group
        self._trials[trial_id] = group
        self.tasks += group
        config = {**self._common, "tasks": [t.config() for t in group]}
        resume = {t.task_id: self._resume[t.task_id] for t in group if t.task_id in self._resume}
        return config | ({"resume_from": resume} if resume else {})

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        group = self._trials.pop(trial_id, None)
        if group:
            self._ended(group)

    # Tune pickles its searcher with the experiment state; this one is rebuilt by every run (a killed run's
    # trainings resume from their checkpoints through ``resume_from``, not through ``Tuner.restore``).
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self._trials, self.tasks, self._resume = {}, [], {}

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({}, f)

    def restore(self, checkpoint_path: str) -> None:
        pass


def stream_baselines(
    next_group: Callable[[], list[Task] | str | None],
    ended: Callable[[list[Task]], None],
    settings: TrialSettings,
    *,
    store: ResultStore,
    progress: Progress,
) -> None:
    """Run trainings as they are asked for, in one Tune experiment driven by a ``TaskSearcher`` (see there).

    The experiment is this run's own (``baselines-stream-…``); trainings that a killed run left checkpointed in a
    kept experiment resume from their newest checkpoint there, and that experiment is deleted once every task it
    checkpointed is stored. ``settings.max_concurrent`` None: as many trials as the cluster's CPUs (or GPUs)
    hold."""
    storage = settings.storage
    name = f"baselines-stream-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    resume_from, previous = interrupted_checkpoints(storage, None, exclude=name)
    if resume_from:
        progress.note(
            f"{len(resume_from)} training(s) resume from the checkpoints of an interrupted run "
            f"({', '.join(previous)}) when the search asks for them"
        )
    searcher = TaskSearcher(next_group, ended, settings.trial_config(), resume_from)
    max_concurrent = settings.max_concurrent
    if max_concurrent is None:  # the limiter also sets how many trials wait for resources at once
        cluster = ray.cluster_resources()
        slots = cluster.get("GPU", 0) / settings.gpus if settings.gpus else cluster.get("CPU", 1) / settings.cpus
        max_concurrent = max(1, int(slots))
    callbacks = [_TuneProgress(progress, store)]
    # num_samples -1: trials until the searcher says FINISHED
    tuner = _new_tuner(settings, name, callbacks, max_concurrent, search_alg=searcher, num_samples=-1)
    if _fit_and_clean_up(tuner, storage, name, lambda: searcher.tasks, store):
        _delete_used(storage, previous, store)


def _fit_and_clean_up(
    tuner: tune.Tuner, storage: str, name: str, tasks: list[Task] | Callable[[], list[Task]], store: ResultStore
) -> bool:
    """Run the experiment; once every trial of it ended without error and every task's rows are stored, delete its
    Tune state (nothing in it is needed any more) and return True. An interrupted experiment (KeyboardInterrupt
    passes through), or one with a trial that failed for good or a task without rows, keeps its state, so the next
    run resumes from its checkpoints."""
    results = fit_tuner(tuner)
    done = store.finished_task_ids("baseline")
    tasks = tasks() if callable(tasks) else tasks  # a stream's: known once it ended
    if results.errors or any(t.task_id not in done for t in tasks):
        return False
    delete_experiment(storage, name)
    return True


def _storage_fs(storage: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(storage) if "://" in storage else (pafs.LocalFileSystem(), storage)


def delete_experiment(storage: str, name: str) -> None:
    """Delete one experiment's Tune state, and Tune's storage folder once it is empty."""
    filesystem, root = _storage_fs(storage)
    if filesystem.get_file_info(f"{root}/{name}").type != pafs.FileType.NotFound:  # a stream may have had no trial
        filesystem.delete_dir(f"{root}/{name}")
    exists = filesystem.get_file_info(root).type == pafs.FileType.Directory
    if exists and not filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        filesystem.delete_dir(root)


def latest_checkpoints(storage: str, name: str) -> dict[str, str]:
    """task id → the newest checkpoint folder of that task in experiment ``name`` (as a path or URI Tune opens)."""
    filesystem, root = _storage_fs(storage)
    scheme = storage.split("://", 1)[0] + "://" if "://" in storage else ""
    selector = pafs.FileSelector(f"{root}/{name}", recursive=True, allow_not_found=True)
    newest: dict[str, tuple[int, str]] = {}
    for info in filesystem.get_file_info(selector):
        if info.type != pafs.FileType.File or info.base_name != TASK_FILE:
            continue
        folder = info.path.rsplit("/", 1)[0]
        index = _checkpoint_index(folder)
        with filesystem.open_input_stream(info.path) as f:
            task = f.read().decode()
        if task not in newest or index > newest[task][0]:
            newest[task] = (index, scheme + folder)
    return {task: path for task, (_, path) in newest.items()}


def interrupted_checkpoints(storage: str, tasks: list[Task] | None, exclude: str) -> tuple[dict[str, str], list[str]]:
    """The newest checkpoint of each of ``tasks`` (None: of every task) in the baseline experiments kept in
    ``storage`` (those of interrupted or failed runs; ``exclude``: the experiment about to run), and the
    experiments they are in. Where two experiments hold one task, the checkpoint of the later epoch wins."""
    filesystem, root = _storage_fs(storage)
    infos = filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    names = sorted(
        i.base_name
        for i in infos
        if i.type == pafs.FileType.Directory and i.base_name.startswith("baselines-") and i.base_name != exclude
    )
    wanted = None if tasks is None else {t.task_id for t in tasks}
    candidates: dict[str, list[tuple[str, str]]] = {}  # task → [(checkpoint, experiment)]
    for name in names:
        for task, path in latest_checkpoints(storage, name).items():
            if wanted is None or task in wanted:
                candidates.setdefault(task, []).append((path, name))
    chosen = {
        task: max(found, key=lambda c: _checkpoint_epochs(c[0])) if len(found) > 1 else found[0]
        for task, found in candidates.items()
    }
    return {t: path for t, (path, _) in chosen.items()}, sorted({name for _, name in chosen.values()})


def _checkpoint_epochs(path: str) -> int:
    """Epochs trained in a checkpoint (-1 when it cannot be read)."""
    try:
        return len(load_checkpoint(tune.Checkpoint(path), torch.device("cpu"))["trainer"]["history"])
    except Exception:
        return -1


def _trial_name(trial) -> str:
    tasks = _tasks(trial)
    task, net = tasks[0], tasks[0].network
    what = f"s{net.sigma_w2:g}_L{net.depth}_seed{task.seed}" if len(tasks) == 1 else f"{len(tasks)}nets_L{net.depth}"
    return f"{task.dataset}_{net.profile_name}_{what}_{trial.trial_id}"

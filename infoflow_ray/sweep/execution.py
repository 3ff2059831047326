"""Running grid tasks: join Ray, run cascades on the actor pool and baselines on Tune, and say what ran.

Shared by the plain grid (``driver``: a fixed set of tasks) and the adaptive search (``adaptive``: a ``Stream``
of tasks handed out as the searches ask for them — after every result, or once per round, by
``search.policy``).
"""

from __future__ import annotations

import os
import signal
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from queue import SimpleQueue

import ray

from infoflow_ray.data import load_dataset
from infoflow_ray.errors import ConfigError
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.baselines import TrialSettings, group_tasks, run_baselines, stream_baselines, trial_gpus
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
    sigterm = signal.getsignal(signal.SIGTERM)
    ray.init(
        address=address, log_to_driver=False, include_dashboard=None if address else False, configure_logging=False
    )
    # ray.init replaces the driver's SIGTERM handler with sys.exit(15), and Ray's C++ core worker then reports
    # the signal as a crash (a stack dump, and the driver aborts: "terminated by signal 6"). Put back the job's
    # own (``jobs._terminate``: SIGTERM stops the run as Ctrl-C does, cleanly and resumably).
    if callable(sigterm) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, sigterm)


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


class Stream:
    """The tasks of a search, handed out as the searches ask for them.

    ``replan(ended)`` — called with the tasks that ended (stored, or failed for good) since the last call —
    returns every task the searches ask for now; those not handed out before go at once to the cascade pool
    (``cascades``) or to Tune's searcher (``next_group``). When it is called is the ``policy``
    (``search.policy``, the simulator's names): ``per_result`` after every task that ends; ``per_round`` once
    everything handed out has ended. The stream closes when nothing handed out is still open and a replan asks for
    nothing new. Thread-safe: the pool's thread and Tune's loop (the driver's thread) both report ends; replans
    run one at a time, in the thread that reported the end.
    """

    def __init__(
        self,
        first: list[Task],
        replan: Callable[[list[Task]], list[Task]],
        policy: str,
        progress: Progress,
        baseline_group: int = 1,
    ):
        self._replan, self.policy, self._progress, self._group = replan, policy, progress, baseline_group
        self._lock = threading.RLock()
        self._handed: set[str] = set()
        self._open = 0  # tasks handed out and not yet ended
        self._ended: list[Task] = []  # ended since the last replan
        self.cascades: SimpleQueue[Task] = SimpleQueue()
        self._trainings: deque[list[Task]] = deque()
        self.closed = threading.Event()
        self.error: BaseException | None = None
        self.replans = 0  # replans that handed out something (per round: the rounds)
        self._hand_out(first)

    def _hand_out(self, tasks: list[Task]) -> None:
        fresh = [t for t in tasks if t.task_id not in self._handed]
        unknown = sorted({t.kind for t in fresh} - {"cascade", "baseline"})
        if unknown:
            raise ConfigError(f"a search asked for task kind(s) {', '.join(unknown)}: it runs cascades and baselines")
        self._handed.update(t.task_id for t in fresh)
        self._open += len(fresh)
        for t in fresh:
            if t.kind == "cascade":
                self.cascades.put(t)
        self._trainings.extend(group_tasks([t for t in fresh if t.kind == "baseline"], self._group))
        for kind in ("cascade", "baseline"):
            if any(t.kind == kind for t in fresh):
                self._progress.add_total(kind, sum(t.kind == kind for t in fresh))
        if fresh:
            self.replans += 1
            if self.replans > 1:
                self._progress.note(f"asked next: {describe(fresh)}")
        if self._open == 0:
            self.closed.set()

    def end(self, tasks: list[Task]) -> None:
        """``tasks`` ended (their rows stored, or failed for good): replan per the policy, hand out what is new."""
        with self._lock:
            if self.closed.is_set():
                return
            self._open -= len(tasks)
            self._ended += tasks
            if self.policy == "per_result" or self._open == 0:
                ended, self._ended = self._ended, []
                try:
                    self._hand_out(self._replan(ended))
                except BaseException as exc:  # raised again by ``execute`` in the driver's thread
                    self.error = exc
                    self._trainings.clear()
                    self.closed.set()

    def next_group(self) -> list[Task] | str | None:
        """For Tune's searcher: the next group of trainings, None while none is asked, FINISHED once closed."""
        with self._lock:
            if self._trainings:
                return self._trainings.popleft()
            return "FINISHED" if self.closed.is_set() else None


def describe(tasks: list[Task]) -> str:
    """The tasks in a line: cascades by σw², trainings by σw² and depth (the first 8)."""
    cascades = sorted({t.network.sigma_w2 for t in tasks if t.kind == "cascade"})
    trainings = [t for t in tasks if t.kind == "baseline"]
    parts = []
    if cascades:
        parts.append(
            f"{sum(t.kind == 'cascade' for t in tasks)} cascades at σw² " + ", ".join(f"{s:g}" for s in cascades)
        )
    if trainings:
        parts.append(
            f"{len(trainings)} trainings ("
            + ", ".join(f"σw² {t.network.sigma_w2:g} L={t.network.depth}" for t in trainings[:8])
            + (", …" if len(trainings) > 8 else "")
            + ")"
        )
    return "; ".join(parts)


def execute(
    grid: GridSpec,
    store: ResultStore,
    pending: list[Task],
    progress: Progress,
    all_baselines: list[Task] | None = None,
    stream: Stream | None = None,
) -> bool:
    """Run ``pending`` tasks: cascades on the actor pool (started first, so predictions arrive early), baseline
    trainings as Tune trials beside it, predictor tasks (``sweep.predictor_tasks``) as Ray tasks beside both.
    ``all_baselines`` names the Tune experiment (so an interrupted set of
    trainings resumes under the same name; default: the pending ones). Returns True when interrupted.

    With a ``stream`` (the search; ``pending`` is ignored): the pool takes cascades from it as they are asked
    for, and trainings join one running Tune experiment through a searcher (``baselines.stream_baselines``), each
    end reported to the stream, until it closes."""
    if stream is not None:
        return _execute_stream(grid, store, stream, progress)
    cascades = [t for t in pending if t.kind == "cascade"]
    baselines = [t for t in pending if t.kind == "baseline"]
    predictions = [t for t in pending if t.kind == "predictors"]
    stop = threading.Event()
    res = grid.resources
    thread = _start_cascade_pool(grid, store, progress, stop, cascades, len(cascades)) if cascades else None
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
            run_baselines(
                all_baselines or baselines,
                baselines,
                _trial_settings(grid),
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


def _execute_stream(grid: GridSpec, store: ResultStore, stream: Stream, progress: Progress) -> bool:
    stop = threading.Event()
    thread = _start_cascade_pool(grid, store, progress, stop, [], 1 << 30, stream)
    try:
        if "baseline" in grid.kinds:
            stream_baselines(stream.next_group, stream.end, _trial_settings(grid), store=store, progress=progress)
        while thread.is_alive():
            thread.join(timeout=1.0)
    except KeyboardInterrupt:
        stop.set()
        thread.join(timeout=30)
        return True
    except BaseException:
        stop.set()  # the pool's actors go with the driver's error
        raise
    if stream.error is not None:
        raise stream.error
    return False


def _start_cascade_pool(
    grid: GridSpec,
    store: ResultStore,
    progress: Progress,
    stop: threading.Event,
    cascades: list[Task],
    most_tasks: int,
    stream: Stream | None = None,
) -> threading.Thread:
    """Start the cascade actor pool in a thread and return once its first actors hold their resources (so Tune's
    trials, started next, do not take them). ``cascades``: the fixed tasks; with a ``stream`` the pool also takes
    the cascades the search asks for, reports every end to it, and an error in the pool closes the stream with it
    (raised again by the driver); ``most_tasks`` caps the pool's size."""
    res = grid.resources
    size = pool_size(res.cascade_workers, res.cpus_per_cascade, res.gpus_per_cascade, most_tasks)
    progress.note(
        f"cascade pool: {'up to ' if stream else ''}{size.workers} actors × ({size.cpus:g} CPU, {size.gpus:g} GPU)"
    )
    pool_ready = threading.Event()
    incoming = dict(incoming=stream.cascades, closed=stream.closed, on_end=stream.end) if stream else {}

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
                **incoming,
            )
        except BaseException as exc:
            if stream is None:
                raise
            stream.error = stream.error or exc
            stream.closed.set()
        finally:
            pool_ready.set()

    thread = threading.Thread(target=cascade_loop, name="cascade-pool", daemon=True)
    thread.start()
    pool_ready.wait()
    return thread


def _trial_settings(grid: GridSpec) -> TrialSettings:
    """The settings of the grid's baseline trials, for both ways of running them (``baselines.run_baselines``,
    ``stream_baselines``): where rows go, each trial's resources (a quarter GPU by default when the cluster has
    GPUs), retries and checkpoints."""
    res = grid.resources
    return TrialSettings(
        results=grid.results,
        grid_name=grid.name,
        cpus=res.cpus_per_trial,
        gpus=trial_gpus(res.gpus_per_trial),
        max_concurrent=res.max_concurrent_trials,
        max_attempts=res.max_task_attempts,
        checkpoint_every_epochs=res.checkpoint_every_epochs,
    )

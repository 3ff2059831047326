"""A simulator of the orchestrator: the adaptive search and the full grid replayed on N simulated workers.

No Ray runs here, and nothing trains: every task takes a *duration* and returns an *outcome* from an ``Oracle`` —
the measured seconds and outcomes of a results folder (``ResultsOracle``), or a cost model with outcomes from
mean-field theory (``ModelOracle``). The search's decisions are the real ones: each step replays
``infoflow_ray.sweep.adaptive.plan`` (the pure functions of ``infoflow_ray.search``) over the outcomes known so
far, exactly as the driver does.

Workers: N identical slots (GPUs), one task each at a time, started in the order asked (cascades first, as the
driver starts them). Two policies of handing out the search's tasks:

- ``per_round``: submit everything the searches ask for, wait for the slowest, replan;
- ``per_result`` (the driver's default, ``search.policy``): replan as soon as any task ends, and submit what the
  searches ask for next at once (the next depth of a (dataset, profile, σb², σw², seed) starts when the training
  it depends on ends).

The driver (``sweep/execution.py``) runs the same two policies under the same names.

A full grid has no dependencies: every task is submitted at time 0, so both policies give the same schedule.

Units: seconds throughout; GPU-hours = busy worker-seconds / 3600 (the time workers hold a task, not the time
they wait). Makespan: from the first submission to the last task's end, without Ray's own overheads (start-up,
scheduling, checkpoint uploads), which a real run adds on top.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from infoflow_ray.errors import ConfigError
from infoflow_ray.sweep.grid import SEARCH_POLICIES, GridSpec, Task

POLICIES = SEARCH_POLICIES  # the names of ``search.policy``, which the driver runs
ESTIMATE_WORKERS = 32  # the cluster size ``--dry-run`` estimates for (benchmarks/bench_simulator.py: any sizes)

# Training images per dataset, when the grid takes the whole split (DataOptions.max_train_samples = None).
TRAIN_IMAGES = {"mnist": 60_000, "fashion_mnist": 60_000, "cifar10_gray": 50_000, "mnist_t10k": 8_000, "digits": 1_437}
TEST_IMAGES = 10_000  # the evaluation set of a cascade when ``cascade.eval_samples`` is None


@dataclass(frozen=True)
class CostModel:
    """Seconds of one task on one worker, linear in the work (units: seconds per layer per image per epoch).

    The defaults are this project's CPU measurements (benchmarks/RESULTS.md; 2-core AMD EPYC, 2 threads, `wide`
    profile, 8,000 MNIST-t10k images): a baseline epoch 2.6 s at depth 10 and 9.3 s at depth 30 (bench_baseline,
    session 2) → 3.6·10⁻⁵ s per layer-image-epoch; a cascade epoch 21.5 s at depth 60 (bench_cascade lockstep,
    session 2) → 4.5·10⁻⁵; the cascade's evaluation 5.2 s at depth 60 on 500 test images (session 3), which
    grows with depth² × images → 2.9·10⁻⁶ s per layer²-image. ``speedup`` divides every figure (a GPU's gain
    over those CPU lanes; 1 = the CPU figures — no GPU has been measured). ``setup_seconds``: per task (data
    loading, network init). Ratios of two schedules (per round / per result, search / grid) do not depend on
    ``speedup``.
    """

    train_seconds_per_layer_image_epoch: float = 3.6e-5
    cascade_seconds_per_layer_image_epoch: float = 4.5e-5
    eval_seconds_per_layer2_image: float = 2.9e-6
    setup_seconds: float = 5.0
    speedup: float = 1.0

    def __post_init__(self) -> None:
        for name in ("train_seconds_per_layer_image_epoch", "cascade_seconds_per_layer_image_epoch", "speedup"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"cost model {name} = {value!r}: must be a finite number > 0")
        for name in ("eval_seconds_per_layer2_image", "setup_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"cost model {name} = {value!r}: must be a finite number >= 0")

    def training_seconds(self, task: Task, epochs: int) -> float:
        images = _train_images(task)
        work = self.train_seconds_per_layer_image_epoch * task.network.depth * images * epochs
        return self.setup_seconds + work / self.speedup

    def cascade_seconds(self, task: Task) -> float:
        depth, images = task.network.depth, _train_images(task)
        evaluated = task.cascade.eval_samples if task.cascade and task.cascade.eval_samples else TEST_IMAGES
        epochs = task.cascade.epochs if task.cascade else 1
        work = (
            self.cascade_seconds_per_layer_image_epoch * depth * images * epochs
            + self.eval_seconds_per_layer2_image * depth * depth * evaluated
        )
        return self.setup_seconds + work / self.speedup


def _train_images(task: Task) -> int:
    full = TRAIN_IMAGES.get(task.dataset, 10_000)
    cap = task.data.max_train_samples
    return min(full, cap) if cap else full


@dataclass(frozen=True)
class Result:
    """What a simulated task returns: its duration (s) and its outcome — a cutoff ℓ_c for a cascade (NaN: not
    finite), (reached the threshold, best test accuracy) for a training."""

    seconds: float
    cutoff: float | None = None
    training: tuple[bool, float] | None = None


class Oracle:
    """Durations and outcomes of tasks."""

    def result(self, task: Task) -> Result:
        raise NotImplementedError


@dataclass
class ModelOracle(Oracle):
    """Outcomes from mean-field theory, durations from a ``CostModel``.

    The cutoff ℓ_c of a cascade at σw² is 6ξ_c (``theory.mean_field_depth``), capped at the cascade's depth; a
    training at depth d passes iff d ≤ ℓ = ``train_depth_factor``·6ξ_c (1: the cascade predicts ℓ_train exactly;
    0.5: it predicts twice too deep, as on the chaotic side of the ``default`` preset's measurements). A passing
    training (with ``stop_at_threshold``) stops after 1 + (max_epochs − 1)·(d/ℓ)⁴ epochs, rounded up — quick far
    from the edge of trainability, the whole budget at it; a failing one runs the whole budget. These are
    modelling choices, not measurements: they reproduce the spread the issue describes (one training passes in
    an epoch, its neighbour fails after 200).
    """

    cost: CostModel = field(default_factory=CostModel)
    train_depth_factor: float = 1.0
    _depth: dict = field(default_factory=dict, repr=False)

    def mean_field_depth(self, sigma_w2: float, sigma_b2: float) -> float:
        key = (sigma_w2, sigma_b2)
        if key not in self._depth:
            from infoflow_ray import theory

            self._depth[key] = float(theory.mean_field_depth(sigma_w2, sigma_b2))
        return self._depth[key]

    def result(self, task: Task) -> Result:
        net = task.network
        mean_field = self.mean_field_depth(net.sigma_w2, net.sigma_b2)
        if task.kind == "cascade":
            cutoff = min(mean_field, float(net.depth)) if not math.isnan(mean_field) else float(net.depth)
            return Result(self.cost.cascade_seconds(task), cutoff=cutoff)
        ell = self.train_depth_factor * mean_field
        passed = net.depth <= ell
        budget = task.train.max_epochs
        if passed and task.train.stop_at_threshold:
            epochs = min(budget, math.ceil(1 + (budget - 1) * (net.depth / ell) ** 4))
        else:
            epochs = budget
        return Result(self.cost.training_seconds(task, epochs), training=(passed, 0.9 if passed else 0.1))


class ResultsOracle(Oracle):
    """Measured outcomes and seconds (the ``runs`` row's ``seconds``) of a results folder; tasks the folder lacks
    come from ``fallback`` (counted in ``missing``), or fail in one line when there is none."""

    def __init__(self, results: str, measure: str = "kl_per_image", fallback: Oracle | None = None):
        from infoflow_ray.store import ResultStore
        from infoflow_ray.sweep.adaptive import read_stored

        store = ResultStore.open(results)
        stored = read_stored(store, measure)
        runs = store.scan("runs").select("task_id", "seconds").collect()
        self.results, self.fallback, self.missing = results, fallback, 0
        self.seconds = dict(runs.iter_rows())
        self.cutoffs, self.trainings = stored.cutoffs, stored.trainings

    def result(self, task: Task) -> Result:
        tid = task.task_id
        if tid in self.seconds and (tid in self.cutoffs or tid in self.trainings):
            return Result(float(self.seconds[tid]), cutoff=self.cutoffs.get(tid), training=self.trainings.get(tid))
        if self.fallback is None:
            raise ConfigError(
                f"results folder {self.results} has no result for task '{task.label}': simulate a folder that "
                "holds it, or pass a fallback cost model"
            )
        self.missing += 1
        return self.fallback.result(task)


@dataclass(frozen=True)
class Interval:
    """One task on one worker: [start, end) in seconds."""

    worker: int
    start: float
    end: float
    task_id: str
    kind: str


@dataclass
class Schedule:
    """The outcome of a simulation."""

    workers: int
    policy: str
    intervals: list[Interval]
    rounds: int = 0  # replans that submitted something (per round: the driver's rounds)
    final: object = None  # the last plan (list of GroupPlan) of a search; None for a grid

    @property
    def makespan(self) -> float:
        return max((i.end for i in self.intervals), default=0.0)

    @property
    def busy_seconds(self) -> float:
        return sum(i.end - i.start for i in self.intervals)

    @property
    def utilisation(self) -> float:
        """Busy worker-seconds over workers × makespan (1 = no worker ever idle)."""
        return self.busy_seconds / (self.workers * self.makespan) if self.makespan > 0 else 0.0

    @property
    def gpu_hours(self) -> float:
        return self.busy_seconds / 3600.0

    def count(self, kind: str) -> int:
        return sum(i.kind == kind for i in self.intervals)

    def busy_over_time(self, points: int = 200) -> tuple[list[float], list[int]]:
        """Busy workers at ``points`` evenly spaced times over the makespan."""
        span = self.makespan
        times = [span * k / (points - 1) for k in range(points)] if points > 1 else [0.0]
        return times, [sum(i.start <= t < i.end for i in self.intervals) for t in times]


def run_schedule(
    workers: int,
    asks: Callable[[dict[str, Result]], list[Task]],
    oracle: Oracle,
    policy: str = "per_round",
) -> Schedule:
    """Simulate: ``asks(outcomes)`` returns the tasks wanted given the results so far (task id → Result); the
    ones not yet submitted join the queue — every time the queue and the workers are both empty (per round), or
    every time a task ends (per result). Free workers take queued tasks in order. Returns the schedule."""
    if not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
        raise ConfigError(f"workers = {workers!r}: must be an integer >= 1")
    if policy not in POLICIES:
        raise ConfigError(f"policy '{policy}': must be one of {', '.join(POLICIES)}")
    now, seq = 0.0, 0
    free = list(range(workers))  # a heap of free worker ids: the lowest takes the next task
    running: list[tuple[float, int, int, Task, Result]] = []  # (end, seq, worker, task, result)
    queue: list[Task] = []
    submitted: set[str] = set()
    outcomes: dict[str, Result] = {}
    intervals: list[Interval] = []
    rounds = 0

    def refill() -> None:
        nonlocal rounds
        fresh = [t for t in asks(outcomes) if t.task_id not in submitted]
        for t in fresh:
            submitted.add(t.task_id)
        if fresh:
            rounds += 1
            queue.extend(fresh)

    refill()
    while queue or running:
        while free and queue:
            task = queue.pop(0)
            worker = heapq.heappop(free)
            result = oracle.result(task)
            heapq.heappush(running, (now + result.seconds, seq, worker, task, result))
            intervals.append(Interval(worker, now, now + result.seconds, task.task_id, task.kind))
            seq += 1
        now = running[0][0]
        while running and running[0][0] == now:  # every task ending at this instant
            _, _, worker, task, result = heapq.heappop(running)
            outcomes[task.task_id] = result
            heapq.heappush(free, worker)
        if policy == "per_result" or (not running and not queue):
            refill()
    return Schedule(workers, policy, intervals, rounds)


def simulate_grid(grid: GridSpec, workers: int, oracle: Oracle) -> Schedule:
    """The full grid: every task submitted at time 0, cascades first (no dependencies between tasks)."""
    tasks = grid.tasks()
    return run_schedule(workers, lambda outcomes: tasks, oracle, "per_round")


def simulate_search(grid: GridSpec, workers: int, oracle: Oracle, policy: str = "per_round") -> Schedule:
    """The adaptive search of ``grid``: the driver's replay (``adaptive.plan``) over the simulated outcomes.

    An oracle's training outcome has no epochs, so the simulator takes it to hold at every rung of the budget
    ladder (reached at epoch 1, or failed over the full budget): ``search.resolve_rungs`` then adds no training
    here, and a simulated search with it is a lower bound on what the real one trains."""
    from infoflow_ray.sweep.adaptive import Stored, plan, unique

    last: list = []
    full = grid.train.max_epochs

    def asks(outcomes: dict[str, Result]) -> list[Task]:
        trainings = {t: r.training for t, r in _kind(outcomes, "training")}
        stored = Stored(
            {t: (r.cutoff if math.isfinite(r.cutoff) else math.nan) for t, r in _kind(outcomes, "cutoff")},
            trainings,
            ladder={
                t: (1, 1, "threshold") if reached else (None, full, "budget") for t, (reached, _) in trainings.items()
            },
        )
        groups = plan(grid, stored)
        last[:] = [groups]
        return unique([t for g in groups for t in g.asks])

    schedule = run_schedule(workers, asks, oracle, policy)
    schedule.final = last[0] if last else None
    return schedule


def _kind(outcomes: dict[str, Result], attribute: str) -> Iterable[tuple[str, Result]]:
    return ((t, r) for t, r in outcomes.items() if getattr(r, attribute) is not None)


@dataclass(frozen=True)
class Estimate:
    """One simulated run, for tables: what ran, on how many workers, with which policy."""

    what: str  # 'search' or 'grid'
    policy: str
    workers: int
    makespan_seconds: float
    utilisation: float
    gpu_hours: float
    trainings: int
    cascades: int

    def line(self) -> str:
        return (
            f"{self.what:6s} {self.policy:10s} {self.workers:4d} workers: makespan {_duration(self.makespan_seconds)}, "
            f"{self.gpu_hours:,.1f} GPU-hours, {self.utilisation:.0%} busy, {self.trainings} trainings, "
            f"{self.cascades} cascades"
        )


def estimate(grid: GridSpec, workers: int, oracle: Oracle, what: str, policy: str = "per_round") -> Estimate:
    """Simulate the search (``what='search'``) or the full grid (``'grid'``) and summarise."""
    if what == "search":
        s = simulate_search(grid, workers, oracle, policy)
    elif what == "grid":
        s = simulate_grid(grid, workers, oracle)
    else:
        raise ConfigError(f"what '{what}': must be 'search' or 'grid'")
    trainings, cascades = s.count("baseline"), s.count("cascade")
    return Estimate(what, policy, workers, s.makespan, s.utilisation, s.gpu_hours, trainings, cascades)


def _duration(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} d"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def plot_utilisation(schedules: dict[str, Schedule], path: str) -> None:
    """Busy workers over time, one line per schedule (e.g. per round against per result)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for label, s in schedules.items():
        times, busy = s.busy_over_time(400)
        ax.step([t / 3600 for t in times], busy, where="post", label=f"{label} ({s.utilisation:.0%} busy)")
    ax.set_xlabel("hours since the start")
    ax.set_ylabel("busy workers")
    ax.set_ylim(0, max(s.workers for s in schedules.values()) * 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_makespan(estimates: list[Estimate], path: str) -> None:
    """Makespan against the number of workers, one line per (what, policy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in sorted({(e.what, e.policy) for e in estimates}):
        points = sorted((e.workers, e.makespan_seconds / 3600) for e in estimates if (e.what, e.policy) == key)
        label = "full grid" if key[0] == "grid" else f"search, {key[1].replace('_', ' ')}"
        ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("workers (GPUs)")
    ax.set_ylabel("makespan (hours)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_estimate(grid: GridSpec, workers: int, out, cost: CostModel | None = None) -> list[Estimate]:
    """``--dry-run``'s estimate: the search (per round and per result, the two ``search.policy`` values) and the
    full grid on ``workers`` workers, durations from the cost model and outcomes from mean-field theory
    (``ModelOracle``). Returns the estimates printed."""
    cost = cost or CostModel()
    oracle = ModelOracle(cost)
    # Predictor tasks (seconds each, benchmarks/RESULTS.md) are not simulated: the estimate counts the cascades
    # and trainings, which hold the workers; a search runs no predictor tasks.
    grid = dataclasses.replace(grid, predictors=(), kinds=tuple(k for k in grid.kinds if k != "predictors"))
    search_grid = grid if grid.search.enabled else dataclasses.replace(grid, search=_enabled(grid.search))
    estimates = [
        estimate(search_grid, workers, oracle, "search", "per_round"),
        estimate(search_grid, workers, oracle, "search", "per_result"),
        estimate(grid, workers, oracle, "grid"),
    ]
    print(
        f"estimate on {workers} workers (simulated: infoflow_ray.sweep.simulate; outcomes from mean-field theory, "
        f"durations from the cost model with speedup {cost.speedup:g} over the 2-thread CPU lanes of "
        "benchmarks/RESULTS.md — no GPU measured; predictor tasks not counted; see docs/cluster-scale.md):",
        file=out,
    )
    for e in estimates:
        print("  " + e.line().replace("GPU-hours", "worker-hours"), file=out)
    return estimates


def _enabled(spec):
    return dataclasses.replace(spec, enabled=True)

"""The adaptive search on Ray (``jobs/full_grid.py --search``): the driver's loop around ``infoflow_ray.search``.

Every time a task ends (``search.policy = "per_result"``; or once everything asked has ended, ``"per_round"``)
the driver reads what is stored, *replays* every search from it (``plan``: pure, no Ray) and starts the tasks
the searches ask for next — cascades on the actor pool, trainings as trials of one running Tune experiment
(``sweep.execution.Stream``), the same tasks with the same ids as a full grid's — until no search asks for
anything. The searches of one (dataset, profile, σb²):

- the coarse cascades, one per (σw², seed) of the grid;
- with ``search.target_depth`` L: the σw² interval where ℓ_c ≥ L, both edges bisected (cascades at new σw²),
  and with ``search.edge_trainings`` a training at depth L at the σw² just inside and just outside each edge;
- one depth search per (σw², seed) for ℓ_train, started at the depth nearest that seed's cutoff;
- the peak of the cutoffs over every σw² measured: the critical point, with its bracket.

Each search writes its decisions (what was asked, why, what came back, the bracket so far) to the ``search``
table, one file per (dataset, profile, σb²) rewritten every round. A killed search run again replays the same
decisions from the stored results and asks only for what is not stored.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import TextIO

import polars as pl

from infoflow_ray import budget, families, search, theory
from infoflow_ray.analysis.search import search_cost
from infoflow_ray.store import ResultStore
from infoflow_ray.store import task_id as hash_config
from infoflow_ray.sweep.execution import GridOutcome, Stream, describe, execute, prepare, task_records
from infoflow_ray.sweep.grid import GridSpec, Task
from infoflow_ray.sweep.progress import Progress

NAN = float("nan")


@dataclass(frozen=True)
class Stored:
    """What the store holds, as the searches read it: cutoffs of finished cascades (task id → ℓ_c of the
    search's measure, NaN when not finite) and outcomes of finished trainings (task id → (reached the
    threshold, best test accuracy)); ``failed``: tasks that failed for good in this run (their searches stop)."""

    cutoffs: dict[str, float] = field(default_factory=dict)
    trainings: dict[str, tuple[bool, float]] = field(default_factory=dict)
    failed: frozenset[str] = frozenset()
    # task id → (first epoch at the threshold or None, epochs run, stop reason): what the budget ladder reads
    ladder: dict[str, tuple[int | None, int, str]] = field(default_factory=dict)


def read_stored(
    store: ResultStore, measure: str, failed: frozenset[str] = frozenset(), finished: set[str] | None = None
) -> Stored:
    """The finished tasks' outcomes (a task counts once its ``runs`` row is stored); ``finished``: those ids, when
    the caller has just listed them."""
    finished = finished if finished is not None else store.finished_task_ids()
    finished = pl.Series(sorted(finished), dtype=pl.String).implode()
    cutoffs = (
        store.scan("cutoffs")
        .filter(pl.col("measure") == measure, pl.col("task_id").is_in(finished))
        .select("task_id", "cutoff_layer", "finite")
        .collect()
    )
    trainings = (
        store.scan("train_summary")
        .filter(pl.col("task_id").is_in(finished))
        .select("task_id", "reached_threshold", "best_test_accuracy", "threshold_epoch", "epochs", "stop_reason")
        .collect()
    )
    return Stored(
        {t: (c if f and c is not None else NAN) for t, c, f in cutoffs.iter_rows()},
        {t: (bool(r), float(a)) for t, r, a, *_ in trainings.iter_rows()},
        failed,
        {  # a row upgraded without its epochs: a reached threshold counts as reached at the last epoch
            t: (e if e is not None else (n if r else None), int(n), str(why))
            for t, r, _, e, n, why in trainings.iter_rows()
        },
    )


@dataclass
class GroupPlan:
    """The searches of one (dataset, profile, σb²): tasks asked next, decision rows, and the answers so far."""

    dataset: str
    profile: str
    sigma_b2: float
    search_id: str
    architecture: str = "mlp"
    asks: list[Task] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    brackets: dict[tuple[float, int], search.DepthBracket] = field(default_factory=dict)  # (σw², seed) →
    rungs: dict[tuple[float, int], list[budget.Rung]] = field(default_factory=dict)  # (σw², seed) → every rung
    convergence: dict[float, budget.Convergence] = field(default_factory=dict)  # σw² → over the seeds searched
    interval: search.IntervalSearch | None = None
    peak: search.Peak | None = None
    cutoffs: dict[float, float] = field(default_factory=dict)  # σw² → ℓ_c, mean over seeds
    used: dict[str, Task] = field(default_factory=dict)  # every finished task the searches used, by id


def search_id(grid: GridSpec, dataset: str, sigma_b2: float, architecture: str = "mlp") -> str:
    """The id of one search group: everything that determines its decisions (the family and its channels only
    when not the MLP, so the MLP's ids stay those of before there were families)."""
    values = grid.as_dict()
    family = {} if architecture == "mlp" else {"architecture": architecture}
    if "channels" in families.get(architecture).spec_fields:
        family["channels"] = grid.channels
    # the budget options only where set, so a search stored before them keeps its id (and its log file)
    new = {"resolve_rungs": False, "extra_seeds": 0, "close_margin": 0.05}
    # the policy changes when tasks start, never what is decided
    values["search"] = {k: v for k, v in values["search"].items() if (k not in new or v != new[k]) and k != "policy"}
    if values["train"].get("ladder") is None:
        values["train"].pop("ladder", None)
    return hash_config(
        {
            **family,
            "search": values["search"],
            "sigma_w2": values["sigma_w2"],
            "depths": values["depths"],
            "seeds": values["seeds"],
            "kinds": values["kinds"],
            "dataset": dataset,
            "sigma_b2": sigma_b2,
            "profile": values["widths"],
            "deepest": grid.deepest,
            "data": values["data"],
            "cascade": values["cascade"],
            "train": values["train"],
        }
    )


def plan(grid: GridSpec, stored: Stored) -> list[GroupPlan]:
    """Replay every search of ``grid`` over ``stored``: one GroupPlan per (architecture, dataset, σb²)."""
    return [
        _plan_group(grid, stored, dataset, sigma_b2, architecture)
        for architecture in grid.architecture
        for dataset in grid.datasets
        for sigma_b2 in grid.sigma_b2
    ]


def _plan_group(grid: GridSpec, stored: Stored, dataset: str, sigma_b2: float, architecture: str) -> GroupPlan:
    profile = grid.network(dataset, grid.sigma_w2[0], grid.deepest, sigma_b2, architecture).profile_name
    group = GroupPlan(dataset, profile, sigma_b2, search_id(grid, dataset, sigma_b2, architecture), architecture)
    spec = grid.search
    keys = dict(
        search_id=group.search_id, dataset=dataset, profile=profile, sigma_b2=sigma_b2, target_depth=spec.target_depth
    )

    def mean_cutoff(sigma_w2: float) -> float | None:
        """ℓ_c at σw², mean over seeds; None until every seed's cascade is stored (asking for the missing)."""
        tasks = _cascades(grid, group, sigma_w2)
        missing = [t for t in tasks if t.task_id not in stored.cutoffs]
        if missing:
            group.asks += [t for t in missing if t.task_id not in stored.failed]
            return None
        group.used.update((t.task_id, t) for t in tasks)
        values = [stored.cutoffs[t.task_id] for t in tasks]
        value = NAN if any(math.isnan(v) for v in values) else sum(values) / len(values)
        group.cutoffs[sigma_w2] = value
        return value

    for sigma_w2 in grid.sigma_w2:
        mean_cutoff(sigma_w2)
    if spec.target_depth is not None:
        _interval(grid, group, keys, mean_cutoff, stored)
    if "baseline" in grid.kinds:
        for sigma_w2 in grid.sigma_w2:
            for seed in grid.seeds:
                _depth_search(grid, group, keys, stored, sigma_w2, seed)
            _extra_seeds(grid, group, keys, stored, sigma_w2)
            _convergence(grid, group, keys, sigma_w2)
    _peak(group, keys)
    return group


def _interval(grid: GridSpec, group: GroupPlan, keys: dict, mean_cutoff, stored: Stored) -> None:
    spec = grid.search
    known: dict[float, float] = {}
    while True:  # feed the replay every σw² it asks for whose cascades are stored
        result = search.interval_search(grid.sigma_w2, spec.target_depth, known, spec.sigma_w2_tolerance)
        fresh = {s: v for s in result.next_sigma_w2 if (v := mean_cutoff(s)) is not None}
        if not fresh or len(fresh) < len(result.next_sigma_w2):
            break
        known.update(fresh)
    group.interval = result
    done = result.done
    L = spec.target_depth
    for step, d in enumerate(result.decisions, start=1):
        group.rows.append(
            _row(
                keys,
                "sigma_w2_interval",
                NAN,
                -1,
                step,
                d.asked,
                [t.task_id for t in _cascades(grid, group, d.asked)],
                d.reason,
                f"ℓ_c = {d.value:.4g} {'≥' if d.outcome else '<'} L = {L}",
                d.value,
                d.outcome,
                d.contradiction,
                d.bracket,
                done,
            )
        )
    for i, s in enumerate(result.next_sigma_w2, start=len(result.decisions) + 1):
        group.rows.append(
            _row(
                keys,
                "sigma_w2_interval",
                NAN,
                -1,
                i,
                s,
                [t.task_id for t in _cascades(grid, group, s)],
                "asked: bisect an edge",
                "",
                NAN,
                None,
                "",
                (None, None),
                False,
            )
        )
    if done and spec.edge_trainings and "baseline" in grid.kinds:
        _edge_checks(grid, group, keys, stored)


def _cascades(grid: GridSpec, group: GroupPlan, sigma_w2: float) -> list[Task]:
    """The cascade tasks of one σw² of the group, one per seed."""
    return [grid.cascade_task(group.dataset, sigma_w2, group.sigma_b2, seed, group.architecture) for seed in grid.seeds]


def _edge_checks(grid: GridSpec, group: GroupPlan, keys: dict, stored: Stored) -> None:
    """Trainings at depth L at the measured σw² just inside and just outside each closed edge of the interval."""
    L = grid.search.target_depth
    step = 0
    for side, edge in (("low", group.interval.low), ("high", group.interval.high)):
        if edge is None or edge.outside is None:
            continue
        for where, sigma_w2 in (("inside", edge.inside), ("outside", edge.outside)):
            for seed in grid.seeds:
                step += 1
                task = grid.baseline_task(group.dataset, sigma_w2, group.sigma_b2, L, seed, group.architecture)
                reason = (
                    f"check the {side} edge: depth {L} just {where} the predicted interval should "
                    f"{'train' if where == 'inside' else 'not train'}"
                )
                outcome = stored.trainings.get(task.task_id)
                if outcome is None:
                    if task.task_id not in stored.failed:
                        group.asks.append(task)
                    group.rows.append(
                        _row(
                            keys,
                            "edge_check",
                            sigma_w2,
                            seed,
                            step,
                            L,
                            [task.task_id],
                            reason,
                            "failed for good" if task.task_id in stored.failed else "",
                            NAN,
                            None,
                            "",
                            (edge.outside, edge.inside),
                            False,
                        )
                    )
                    continue
                group.used[task.task_id] = task
                reached, accuracy = outcome
                agrees = reached == (where == "inside")
                group.rows.append(
                    _row(
                        keys,
                        "edge_check",
                        sigma_w2,
                        seed,
                        step,
                        L,
                        [task.task_id],
                        reason,
                        f"best test accuracy {accuracy:.3f}: {'reached' if reached else 'did not reach'} the threshold",
                        accuracy,
                        reached,
                        "" if agrees else f"the prediction says the opposite at σw² {sigma_w2:g}",
                        (edge.outside, edge.inside),
                        True,
                    )
                )


def _depth_search(
    grid: GridSpec,
    group: GroupPlan,
    keys: dict,
    stored: Stored,
    sigma_w2: float,
    seed: int,
    start_at: int | None = None,
) -> None:
    """ℓ_train of one (σw², seed) at the full budget, then what its trainings say at every smaller rung.
    ``start_at``: the first depth (an extra seed starts where the grid's first seed ended), else the cascade's
    prediction of this seed."""
    if start_at is None:
        cascade = grid.cascade_task(group.dataset, sigma_w2, group.sigma_b2, seed, group.architecture)
        if cascade.task_id not in stored.cutoffs:
            return  # starts once its cascade is stored (asked for above)
        prediction = stored.cutoffs[cascade.task_id]
    else:
        prediction = float(start_at)
    start = search.nearest_depth(grid.depths, prediction)
    spec = grid.search

    def task_at(depth: int) -> Task:
        return grid.baseline_task(group.dataset, sigma_w2, group.sigma_b2, depth, seed, group.architecture)

    outcomes: dict[int, bool] = {}
    accuracy: dict[int, float] = {}
    stopped = None
    while True:
        result = search.depth_search(grid.depths, start, outcomes, spec.depth_resolution, spec.confirm)
        if result.done:
            break
        task = task_at(result.next_depth)
        if task.task_id in stored.failed:
            stopped = result.next_depth
            break
        if task.task_id not in stored.trainings:
            group.asks.append(task)
            break
        group.used[task.task_id] = task
        outcomes[result.next_depth], accuracy[result.next_depth] = stored.trainings[task.task_id]
    group.brackets[(sigma_w2, seed)] = result.bracket
    done = result.done or stopped is not None
    for step, d in enumerate(result.decisions, start=1):
        reason = d.reason.replace("the cascade's prediction", f"the cascade's prediction ℓ_c = {prediction:.4g}")
        group.rows.append(
            _row(
                keys,
                "depth",
                sigma_w2,
                seed,
                step,
                d.asked,
                [task_at(int(d.asked)).task_id],
                reason,
                f"best test accuracy {accuracy[int(d.asked)]:.3f}: "
                f"{'reached' if d.outcome else 'did not reach'} the threshold",
                accuracy[int(d.asked)],
                d.outcome,
                d.contradiction,
                d.bracket,
                done,
            )
        )
    if not result.done:
        group.rows.append(
            _row(
                keys,
                "depth",
                sigma_w2,
                seed,
                len(result.decisions) + 1,
                result.next_depth,
                [task_at(result.next_depth).task_id],
                _next_reason(result, prediction),
                "the training failed for good: this search stops" if stopped is not None else "",
                NAN,
                None,
                "",
                (result.bracket.passed, result.bracket.failed),
                done,
            )
        )
    if result.done:
        _rungs(grid, group, keys, stored, sigma_w2, seed, start)


def _rungs(
    grid: GridSpec, group: GroupPlan, keys: dict, stored: Stored, sigma_w2: float, seed: int, start: int
) -> None:
    """One 'rung' row per budget of the ladder below the full one: ℓ_train's bracket from this (σw², seed)'s stored
    trainings read at that budget, or "not determined". With ``search.resolve_rungs`` the rung's own depth search
    (the same replay, over the outcomes at that budget) asks for the depths that decide it, trained at the full
    budget (one training answers every rung)."""
    spec = grid.search
    tasks = {  # their ids once: the rungs' replays read the same trainings again and again
        depth: grid.baseline_task(group.dataset, sigma_w2, group.sigma_b2, depth, seed, group.architecture)
        for depth in grid.depths
    }
    ids = {depth: task.task_id for depth, task in tasks.items()}

    def trainings() -> list[budget.Training]:
        out = []
        for depth, task in tasks.items():
            if ids[depth] in stored.ladder:
                group.used[ids[depth]] = task
                first, epochs, why = stored.ladder[ids[depth]]
                out.append(budget.Training(depth, first, epochs, why))
        return out

    rungs = []
    for step, b in enumerate((b for b in grid.train.budgets if b < grid.train.max_epochs), start=1):
        note = ""
        if spec.resolve_rungs:
            while True:
                outcomes = budget.outcomes_at(trainings(), b)
                result = search.depth_search(grid.depths, start, outcomes, spec.depth_resolution, spec.confirm)
                if result.done:
                    break
                task = tasks[result.next_depth]
                if ids[result.next_depth] in stored.failed or ids[result.next_depth] in stored.ladder:
                    note = f"depth {result.next_depth} is needed but cannot say at this budget"
                    break
                group.asks.append(task)
                note = f"asked: depth {result.next_depth} (trained at the full budget)"
                break
        r = budget.rung(grid.depths, trainings(), b)
        rungs.append(r)
        value = r.trainable_depth
        outcome = (
            f"ℓ_train {value} within {b} epochs"
            if r.determined
            else "not determined: a depth that decides it was not trained" + (f"; {note}" if note else "")
        )
        group.rows.append(
            _row(
                keys,
                "rung",
                sigma_w2,
                seed,
                step,
                b,
                [],
                f"ℓ_train within {b} of {grid.train.max_epochs} epochs, read off the same trainings",
                outcome,
                NAN if value is None else value,
                None,
                f"{r.bracket.contradictions} contradictions" if r.bracket.contradictions else "",
                (r.bracket.passed, r.bracket.failed),
                r.determined,
                budget=b,
            )
        )
    full = budget.rung(grid.depths, trainings(), grid.train.max_epochs)
    group.rungs[(sigma_w2, seed)] = [*rungs, full]


def _seed_trainings(grid: GridSpec, group: GroupPlan, stored: Stored, sigma_w2: float, seed: int):
    """The stored trainings of one (σw², seed) at the grid's depths, and their best test accuracies."""
    out, accuracies = [], []
    for depth in grid.depths:
        task = grid.baseline_task(group.dataset, sigma_w2, group.sigma_b2, depth, seed, group.architecture)
        if task.task_id in stored.ladder:
            first, epochs, why = stored.ladder[task.task_id]
            out.append(budget.Training(depth, first, epochs, why))
            accuracies.append(stored.trainings[task.task_id][1])
    return out, accuracies


def _extra_seeds(grid: GridSpec, group: GroupPlan, keys: dict, stored: Stored, sigma_w2: float) -> None:
    """``search.extra_seeds`` more seeds of σw², once every grid seed's search is done, where the outcome is close
    (a best test accuracy within ``close_margin`` of the threshold, or seeds that disagree at a depth); each
    starts at the depth where the first seed's bracket ended. Decided from the grid seeds only, so it replays."""
    spec = grid.search
    if not spec.extra_seeds or any(
        (sigma_w2, s) not in group.brackets or (sigma_w2, s) not in group.rungs for s in grid.seeds
    ):
        return
    by_seed, close = {}, False
    for seed in grid.seeds:
        by_seed[seed], accuracies = _seed_trainings(grid, group, stored, sigma_w2, seed)
        close = close or any(budget.close_call(a, grid.train.accuracy_threshold, spec.close_margin) for a in accuracies)
    spread = budget.seed_spread(grid.depths, by_seed, grid.train.max_epochs)
    if not (close or spread.disagree):
        return
    first = group.brackets[(sigma_w2, grid.seeds[0])]
    start = first.passed if first.passed is not None else min(grid.depths)
    for seed in range(max(grid.seeds) + 1, max(grid.seeds) + 1 + spec.extra_seeds):
        _depth_search(grid, group, keys, stored, sigma_w2, seed, start_at=start)


def searched_seeds(grid: GridSpec, group: GroupPlan, sigma_w2: float) -> list[int]:
    """The seeds with a depth search at σw²: the grid's, and the extra seeds the search added there."""
    return sorted({s for (w, s) in group.brackets if w == sigma_w2} | set(grid.seeds))


def _convergence(grid: GridSpec, group: GroupPlan, keys: dict, sigma_w2: float) -> None:
    """One 'convergence' row per σw²: the convergence rule over ℓ_train per rung, ℓ_train at a rung being the
    deepest over the seeds searched (the grid's 'in any seed' convention; not determined when a seed's is not)."""
    seeds = searched_seeds(grid, group, sigma_w2)
    if any((sigma_w2, s) not in group.rungs for s in seeds):
        return
    values = []
    for i, b in enumerate(r.budget for r in group.rungs[(sigma_w2, seeds[0])]):
        per_seed = [group.rungs[(sigma_w2, s)][i].trainable_depth for s in seeds]
        values.append((b, None if any(v is None for v in per_seed) else max(per_seed)))
    c = budget.convergence(grid.depths, values)
    group.convergence[sigma_w2] = c
    group.rows.append(
        _row(
            keys,
            "convergence",
            sigma_w2,
            -1,
            1,
            NAN if c.converged_at is None else c.converged_at,
            [],
            "the smallest budget from which ℓ_train (deepest over seeds) stays within a step at every larger rung",
            c.describe()
            + " (ℓ_train per rung: "
            + ", ".join(f"{b}: {'?' if v is None else v}" for b, v in values)
            + ")",
            NAN if c.values[-1][1] is None else c.values[-1][1],
            c.converged_at is not None,
            "; ".join(c.non_monotone),
            (None, None),
            True,
            budget=c.converged_at,
        )
    )


def _next_reason(result: search.DepthSearch, prediction: float) -> str:
    """Why the pending depth is asked (the replay names it only once the outcome is in)."""
    if not result.decisions:
        return f"start at the cascade's prediction ℓ_c = {prediction:.4g}"
    return "asked: next step of the gallop / bisection / confirmation"


@functools.lru_cache(maxsize=64)
def _critical_sigma_w2(sigma_b2: float) -> float:
    """The mean-field critical σw² (0.16 s to solve: cached, as every round and every simulated result replans)."""
    return float(theory.critical_sigma_w2(sigma_b2))


def _peak(group: GroupPlan, keys: dict) -> None:
    group.peak = search.locate_tolerant_peak(group.cutoffs)
    if group.peak is None:
        return
    p = group.peak
    critical = _critical_sigma_w2(group.sigma_b2)
    group.rows.append(
        _row(
            keys,
            "peak",
            NAN,
            -1,
            1,
            p.estimate,
            [],
            "the σw² where the cutoffs (mean over seeds) peak, over every σw² measured",
            f"ℓ_c peaks at {p.maximum:.4g} over {p.tied} σw²; mean-field critical σw² = {critical:.4g}",
            p.maximum,
            None,
            "",
            (p.low, p.high),
            True,
        )
    )


def _row(
    keys: dict,
    kind: str,
    sigma_w2: float,
    seed: int,
    step: int,
    asked: float,
    task_ids: list[str],
    reason: str,
    outcome: str,
    value: float | None,
    passed: bool | None,
    contradiction: str,
    bracket: tuple,
    done: bool,
    budget: int | None = None,
) -> dict:
    low, high = bracket
    return {
        **keys,
        "search": kind,
        "sigma_w2": float(sigma_w2),
        "seed": seed,
        "step": step,
        "asked": float(asked),
        "task_ids": ",".join(task_ids),
        "reason": reason,
        "outcome": outcome,
        "value": NAN if value is None else float(value),
        "passed": passed,
        "contradiction": contradiction,
        "bracket_low": NAN if low is None else float(low),
        "bracket_high": NAN if high is None else float(high),
        "done": done,
        "budget": budget,
    }


def unique(tasks: list[Task]) -> list[Task]:
    """``tasks`` without repeats (a σw² asked by two searches), cascades first."""
    seen: dict[str, Task] = {}
    for task in sorted(tasks, key=lambda t: t.kind != "cascade"):
        seen.setdefault(task.task_id, task)
    return list(seen.values())


def run_search(
    grid: GridSpec, store: ResultStore, address: str | None, out: TextIO, progress_interval_seconds: float, start: float
) -> GridOutcome:
    """Read the store, replay the searches, run what they ask for, and replan as results arrive — after every
    result (``search.policy = "per_result"``) or once everything asked has ended (``"per_round"``) — until
    nothing is asked. Either way the decisions are ``plan``'s over the stored results."""
    measure = grid.search.measure
    failed: set[str] = set()
    asked: dict[str, Task] = {}  # every task the searches used or asked for, by id
    settings = grid.as_dict()
    settings["search"].pop("policy")  # the grid file is named by what decides the tasks, not by when they start
    outcome = GridOutcome()
    groups: list[GroupPlan] = []
    already = store.finished_task_ids()

    def replan(ended: list[Task], finished: set[str] | None = None) -> list[Task]:
        """What the searches ask for now, after ``ended`` (a task that ended unstored failed for good)."""
        finished = finished if finished is not None else store.finished_task_ids()
        failed.update(t.task_id for t in ended if t.task_id not in finished)
        groups[:] = plan(grid, read_stored(store, measure, frozenset(failed), finished))
        for g in groups:
            store.write_search(g.search_id, g.dataset, g.rows)
        pending = unique([t for g in groups for t in g.asks])
        for g in groups:
            asked.update(g.used)
        asked.update((t.task_id, t) for t in pending)
        store.write_grid(grid.name, settings, task_records(list(asked.values())), growing=True)
        return pending

    pending = replan([], already)
    replans = 0
    if pending:
        prepare(grid, store, address)
        kinds = tuple(k for k in grid.kinds if k in ("cascade", "baseline"))
        progress = Progress(kinds, stream=out, interval_seconds=progress_interval_seconds)
        progress.note(f"search ({grid.search.policy.replace('_', ' ')}): {describe(pending)}")
        stream = Stream(pending, replan, grid.search.policy, progress, grid.resources.baseline_group)
        outcome.interrupted = execute(grid, store, [], progress, stream=stream)
        replans = stream.replans
        if outcome.interrupted:
            progress.note("interrupted: finished tasks are stored; run the same command again to resume the search")
    finished = store.finished_task_ids()
    outcome.total = {k: sum(t.kind == k for t in asked.values()) for k in grid.kinds}
    outcome.skipped = {k: sum(t.kind == k and i in already for i, t in asked.items()) for k in grid.kinds}
    outcome.failed = {asked[t].label: "not finished" for t in failed if t not in finished}
    outcome.seconds = time.monotonic() - start
    outcome.searches = groups
    print_search_summary(grid, store, groups, out, replans)
    return outcome


def print_search_summary(grid: GridSpec, store: ResultStore, groups: list[GroupPlan], out: TextIO, rounds: int) -> None:
    """What the searches found: ℓ_train brackets per σw², the σw² interval at L, the peak against mean field."""
    for g in groups:
        critical = float(theory.critical_sigma_w2(g.sigma_b2))
        print(f"search {g.dataset} {g.profile} σb²={g.sigma_b2:g} ({rounds} replans asked for work):", file=out)
        for sigma_w2 in grid.sigma_w2:
            cells = []
            for seed in searched_seeds(grid, g, sigma_w2):
                b = g.brackets.get((sigma_w2, seed))
                if b is not None:
                    cells.append(
                        f"seed {seed}: ℓ_train {_bracket_text(grid, b)}"
                        + (f" ({b.contradictions} contradictions)" if b.contradictions else "")
                    )
            cutoff = g.cutoffs.get(sigma_w2)
            print(
                f"  σw² {sigma_w2:<6g} ℓ_c ({grid.search.measure}) "
                f"{'–' if cutoff is None else f'{cutoff:.1f}'}  " + "; ".join(cells),
                file=out,
            )
            c = g.convergence.get(sigma_w2)
            if c is not None:
                per_rung = ", ".join(f"{b}: {'not determined' if v is None else v}" for b, v in c.values)
                print(f"    ℓ_train per budget (epochs: depth) {per_rung} — {c.describe()}", file=out)
        if g.interval is not None:
            low, high = g.interval.low, g.interval.high
            text = "none: no σw² reaches it" if low is None else f"[{_edge_text(low)}, {_edge_text(high)}]"
            print(f"  σw² interval with ℓ_c ≥ {grid.search.target_depth}: {text}", file=out)
        if g.peak is not None:
            p = g.peak
            print(
                f"  cutoff peak: σw² ≈ {p.estimate:.3g} (between {_num(p.low)} and {_num(p.high)}); "
                f"mean-field critical σw² = {critical:.3f}",
                file=out,
            )
    for row in search_cost(store).iter_rows(named=True):
        fine = f", a σw² grid at its tolerance {row['fine_grid_cascades']}" if row["fine_grid_cascades"] else ""
        estimate = row["grid_training_seconds_estimate"]
        estimate = f" (≈ {estimate:.0f} task-seconds of training, estimated)" if estimate is not None else ""
        print(
            f"spent on {row['dataset']} σb²={row['sigma_b2']:g}: {row['trainings']} trainings "
            f"({row['training_seconds']:.0f} task-seconds) and {row['cascades']} cascades "
            f"({row['cascade_seconds']:.0f} s); the full grid over the same σw² and depths: "
            f"{row['grid_trainings']} trainings{estimate} and {row['grid_cascades']} cascades{fine}",
            file=out,
        )


def _bracket_text(grid: GridSpec, b: search.DepthBracket) -> str:
    if b.passed is None:
        return f"< {min(grid.depths)} (none passed)"
    if b.failed is None:
        return f"≥ {b.passed} (the deepest allowed depth passed)"
    return f"in [{b.passed}, {b.failed})"


def _edge_text(edge: search.IntervalEdge) -> str:
    if edge.outside is None:
        return f"beyond {edge.inside:g}"
    return f"{edge.estimate:.4g} ± {edge.width / 2:.2g}"


def _num(value: float | None) -> str:
    return "the range's end" if value is None else f"{value:g}"

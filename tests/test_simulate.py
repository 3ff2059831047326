"""The orchestrator simulator (infoflow_ray/sweep/simulate.py): schedules computed by hand, per round against per
result on the same outcomes, and a results folder's measured seconds."""

from __future__ import annotations

import math
import random

import pytest

from infoflow_ray.errors import ConfigError
from infoflow_ray.sweep.grid import resolve_grid
from infoflow_ray.sweep.simulate import (
    CostModel,
    ModelOracle,
    Oracle,
    Result,
    ResultsOracle,
    estimate,
    plot_makespan,
    plot_utilisation,
    run_schedule,
    simulate_grid,
    simulate_search,
)

GRID = resolve_grid("tiny")


def _tasks(n: int):
    return [GRID.baseline_task("mnist_t10k", 0.5 + 0.1 * i, 0.05, 3, 0) for i in range(n)]


class _Table(Oracle):
    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds

    def result(self, task):
        return Result(self.seconds[task.task_id], training=(True, 1.0))


def test_independent_tasks_fill_two_workers_in_order():
    """Durations 3, 2, 2, 1 on two workers, in order: w0 runs 0–3 then 3–4, w1 runs 0–2 then 2–4: makespan 4,
    busy 8 worker-seconds, utilisation 1."""
    a, b, c, d = _tasks(4)
    oracle = _Table({a.task_id: 3, b.task_id: 2, c.task_id: 2, d.task_id: 1})
    s = run_schedule(2, lambda outcomes: [a, b, c, d], oracle)
    assert s.makespan == 4 and s.busy_seconds == 8 and s.utilisation == 1.0
    spans = {(i.task_id, i.worker, i.start, i.end) for i in s.intervals}
    assert spans == {(a.task_id, 0, 0, 3), (b.task_id, 1, 0, 2), (c.task_id, 1, 2, 4), (d.task_id, 0, 3, 4)}
    assert s.gpu_hours == pytest.approx(8 / 3600)


def test_a_dependent_task_waits_for_the_round_or_only_for_its_parent():
    """A (4 s) and B (1 s) first; C (2 s) is asked once B has ended. Per round C starts when the round ends (at
    4): makespan 6, busy 7 of 12 worker-seconds. Per result C starts when B ends (at 1): makespan 4 (A), busy
    7 of 8."""
    a, b, c = _tasks(3)
    oracle = _Table({a.task_id: 4, b.task_id: 1, c.task_id: 2})

    def asks(outcomes):
        return [a, b] + ([c] if b.task_id in outcomes else [])

    per_round = run_schedule(2, asks, oracle, "per_round")
    per_result = run_schedule(2, asks, oracle, "per_result")
    assert per_round.makespan == 6 and per_round.rounds == 2
    assert per_round.utilisation == pytest.approx(7 / 12)
    assert per_result.makespan == 4 and per_result.utilisation == pytest.approx(7 / 8)
    assert [(i.start, i.end) for i in per_result.intervals if i.task_id == c.task_id] == [(1, 3)]


def test_bad_workers_and_policy_fail_in_one_line():
    with pytest.raises(ConfigError, match=r"workers = 0: must be an integer >= 1"):
        run_schedule(0, lambda o: [], ModelOracle())
    with pytest.raises(ConfigError, match=r"policy 'eager': must be one of per_round, per_result"):
        run_schedule(1, lambda o: [], ModelOracle(), "eager")
    with pytest.raises(ConfigError, match=r"speedup = -1"):
        CostModel(speedup=-1)


class _Noisy(ModelOracle):
    """The model's outcomes with some trainings flipped (non-monotone in depth: contradictions) and random
    durations, fixed per task."""

    def result(self, task):
        base = super().result(task)
        rng = random.Random(task.task_id)
        seconds = base.seconds * rng.uniform(0.1, 3.0)
        if base.training is not None and rng.random() < 0.2:
            return Result(seconds, training=(not base.training[0], 0.5))
        return Result(seconds, cutoff=base.cutoff, training=base.training)


@pytest.mark.parametrize("workers", [1, 3, 16])
@pytest.mark.parametrize("oracle", [ModelOracle(), _Noisy()], ids=["model", "noisy"])
def test_per_round_and_per_result_reach_the_same_answers(workers, oracle):
    """Pure replay: whatever the order results arrive in, every search takes the same decisions — the same
    ℓ_train brackets, σw² interval and peak, from the same tasks."""
    grid = resolve_grid("default")  # depth searches, the σw² interval at depth 36, the peak
    runs = {p: simulate_search(grid, workers, oracle, p) for p in ("per_round", "per_result")}
    a, b = runs["per_round"].final, runs["per_result"].final
    assert [g.brackets for g in a] == [g.brackets for g in b]
    assert [(g.interval.low, g.interval.high) for g in a] == [(g.interval.low, g.interval.high) for g in b]
    assert [g.peak for g in a] == [g.peak for g in b]
    assert [g.rows for g in a] == [g.rows for g in b]
    ids = {p: sorted(i.task_id for i in s.intervals) for p, s in runs.items()}
    assert ids["per_round"] == ids["per_result"] and len(set(ids["per_round"])) == len(ids["per_round"])
    assert all(not g.asks for g in a)  # both ran to the end
    assert runs["per_result"].makespan <= runs["per_round"].makespan + 1e-9
    assert runs["per_round"].busy_seconds == pytest.approx(runs["per_result"].busy_seconds)


def test_the_model_grid_runs_every_task_and_the_search_fewer():
    grid = resolve_grid("default")
    oracle = ModelOracle()
    full = simulate_grid(grid, 8, oracle)
    assert full.count("baseline") == 96 and full.count("cascade") == 8
    search = estimate(grid, 8, oracle, "search", "per_result")
    assert 0 < search.trainings < 96 and search.gpu_hours < full.gpu_hours
    # one worker runs everything back to back: the makespan is the sum of the durations
    one = simulate_grid(grid, 1, oracle)
    assert one.makespan == pytest.approx(sum(oracle.result(t).seconds for t in grid.tasks()))
    assert one.utilisation == pytest.approx(1.0)


def test_the_cost_model_is_linear_in_depth_images_and_epochs():
    cost = CostModel(setup_seconds=0.0)
    t3, t6 = GRID.baseline_task("mnist_t10k", 1.0, 0.05, 3, 0), GRID.baseline_task("mnist_t10k", 1.0, 0.05, 6, 0)
    # tiny: 3,000 training images
    assert cost.training_seconds(t3, 2) == pytest.approx(3.6e-5 * 3 * 3000 * 2)
    assert cost.training_seconds(t6, 2) == pytest.approx(2 * cost.training_seconds(t3, 2))
    assert CostModel(setup_seconds=0.0, speedup=10).training_seconds(t6, 2) == pytest.approx(
        cost.training_seconds(t6, 2) / 10
    )


def test_pictures(tmp_path):
    grid = resolve_grid("default")
    oracle = ModelOracle()
    schedules = {p: simulate_search(grid, 4, oracle, p) for p in ("per_round", "per_result")}
    plot_utilisation(schedules, str(tmp_path / "u.png"))
    estimates = [estimate(grid, n, oracle, w) for n in (2, 4) for w in ("search", "grid")]
    plot_makespan(estimates, str(tmp_path / "m.png"))
    assert (tmp_path / "u.png").stat().st_size > 5000 and (tmp_path / "m.png").stat().st_size > 5000


def test_a_results_folder_gives_its_measured_seconds(tiny_results):
    """The tiny grid's folder: every task's duration is its `runs` row's seconds, so one worker's makespan is
    their sum; the search over the same folder asks only tasks the folder holds, and gets the folder's
    outcomes."""
    from infoflow_ray.store import ResultStore

    runs = ResultStore.open(str(tiny_results)).scan("runs").select("seconds").collect()
    oracle = ResultsOracle(str(tiny_results))
    one = simulate_grid(GRID, 1, oracle)
    assert one.makespan == pytest.approx(float(runs["seconds"].sum())) and oracle.missing == 0
    assert len(one.intervals) == runs.height
    search = simulate_search(resolve_grid("tiny", overrides={"search": {"enabled": True}}), 2, oracle, "per_result")
    assert oracle.missing == 0 and 0 < len(search.intervals) <= runs.height
    assert all(math.isfinite(i.end) for i in search.intervals)
    missing = resolve_grid("tiny", overrides={"sigma_w2": [0.9]})
    with pytest.raises(ConfigError, match=r"has no result for task 'cascade mnist_t10k .*σw²=0.9"):
        simulate_grid(missing, 1, oracle)
    fallback = ResultsOracle(str(tiny_results), fallback=ModelOracle())
    simulate_grid(missing, 1, fallback)
    assert fallback.missing == 3  # the cascade and the two trainings at σw² = 0.9


def test_dry_run_prints_the_simulated_estimate(tmp_path, capsys):
    """`full_grid.py --dry-run` ends with the simulated search (both policies) and full grid at 32 workers."""
    from infoflow_ray.sweep.jobs import main

    code = main("grid", ["--preset", "tiny", "--results", str(tmp_path / "r"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "estimate on 32 workers" in out
    grid = estimate(resolve_grid("tiny", overrides={"results": str(tmp_path / "r")}), 32, ModelOracle(), "grid")
    lines = [line.strip() for line in out.splitlines() if " workers: makespan " in line]
    assert [line.split()[:2] for line in lines] == [
        ["search", "per_round"],
        ["search", "per_result"],
        ["grid", "per_round"],
    ]
    assert lines[2] == grid.line().replace("GPU-hours", "worker-hours")
    assert not (tmp_path / "r").exists()  # a dry run writes nothing


def test_dry_run_of_a_grid_with_predictor_tasks_estimates_its_cascades_and_trainings(tmp_path, capsys):
    """A grid with predictor tasks (which a search does not run) still gets its estimate, counting the same
    cascades and trainings as the grid without them, instead of an error from the search variant."""
    from infoflow_ray.sweep.jobs import main

    code = main("grid", ["--preset", "predictors-laptop", "--results", str(tmp_path / "r"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "predictor tasks not counted" in out
    plain = resolve_grid("predictors-laptop", overrides={"predictors": [], "kinds": ["cascade", "baseline"]})
    grid_line = [line.strip() for line in out.splitlines() if " workers: makespan " in line][-1]
    assert grid_line == estimate(plain, 32, ModelOracle(), "grid").line().replace("GPU-hours", "worker-hours")
    assert not (tmp_path / "r").exists()


def test_the_docs_example_runs_as_written(capsys):
    from doc_examples import python_block

    exec(python_block("docs/cluster-scale.md", "# The search at cluster scale"), {})
    out = capsys.readouterr().out
    assert out.startswith("search per_result   32 workers: makespan ") and "130 trainings, 40 cascades" in out


@pytest.mark.parametrize("policy", ["per_result", "per_round"])
def test_the_drivers_stream_replans_when_its_policy_says(policy):
    """sweep.execution.Stream, the driver's hand-out (no Ray needed): per result it replans after every end, per
    round once everything handed out has ended; cascades go to the pool's queue, trainings to Tune's searcher,
    which hears FINISHED only once the stream is closed. A replan that raises closes it with the error."""
    import io

    from infoflow_ray.sweep.execution import Stream
    from infoflow_ray.sweep.progress import Progress

    cascade = GRID.tasks()[0]
    a, b, c = _tasks(3)
    calls = []

    def replan(ended):
        calls.append([t.task_id for t in ended])
        return [b, c, cascade] if len(calls) == 1 else [c]  # c asked again: handed out once

    progress = Progress(("cascade", "baseline"), stream=io.StringIO())
    stream = Stream([a, cascade], replan, policy, progress)
    assert stream.cascades.get_nowait() == cascade and stream.next_group() == [a] and stream.next_group() is None
    stream.end([a])
    if policy == "per_result":
        assert calls == [[a.task_id]]
        assert [stream.next_group(), stream.next_group()] == [[b], [c]]
        stream.end([cascade])
        assert calls[-1] == [cascade.task_id] and stream.next_group() is None
    else:
        assert calls == [] and stream.next_group() is None  # the cascade is still open: no replan yet
        stream.end([cascade])
        assert calls == [[a.task_id, cascade.task_id]]
        assert [stream.next_group(), stream.next_group()] == [[b], [c]]
    assert stream.cascades.empty()  # the cascade asked again was handed out already
    stream.end([b])
    assert not stream.closed.is_set()
    stream.end([c])
    assert stream.closed.is_set() and stream.next_group() == "FINISHED" and stream.error is None

    def broken(ended):
        raise OSError("store unreadable")

    failing = Stream([a], broken, policy, progress)
    failing.end([a])
    assert failing.closed.is_set() and isinstance(failing.error, OSError) and failing.next_group() == "FINISHED"


def test_a_search_that_resolves_every_rung_runs_to_its_end():
    """The oracle's outcomes have no epochs: each holds at every rung, so every rung is determined and the search
    asks for nothing more (without the ladder the rung searches asked again for trainings already run)."""
    grid = resolve_grid("default", overrides={"search": {"resolve_rungs": True}})
    schedule = simulate_search(grid, 4, ModelOracle())
    assert all(not g.asks for g in schedule.final)
    rungs = [r for g in schedule.final for r in g.rows if r["search"] == "rung"]
    assert len(rungs) == len(grid.sigma_w2) * (len(grid.train.budgets) - 1) and all(r["done"] for r in rungs)

"""The budget ladder's pure rules (infoflow_ray.budget) and the ladder's config: hand-made trainings and outcomes."""

import math

import pytest

from infoflow_ray import budget
from infoflow_ray.budget import Training
from infoflow_ray.config import TrainSpec, default_ladder
from infoflow_ray.errors import ConfigError

DEPTHS = (4, 8, 12, 16, 20)


def test_a_training_answers_every_budget_up_to_its_own():
    reached = Training(depth=8, threshold_epoch=7, epochs=7, stop_reason="threshold")
    assert [reached.passed_within(b) for b in (5, 6, 7, 40)] == [False, False, True, True]
    never = Training(depth=8, threshold_epoch=None, epochs=20, stop_reason="budget")
    assert [never.passed_within(b) for b in (5, 20, 40)] == [False, False, None]  # 40: it never ran that long
    diverged = Training(depth=8, threshold_epoch=None, epochs=3, stop_reason="diverged")
    assert diverged.passed_within(40) is False
    plateau = Training(depth=8, threshold_epoch=None, epochs=6, stop_reason="mi_plateau")
    assert (plateau.passed_within(5), plateau.passed_within(10)) == (False, None)


def test_the_ladder_reads_l_train_at_every_rung_from_one_set_of_trainings():
    # depth d first reaches the threshold at epoch d (deeper trains slower); 16 and 20 never within 20 epochs
    trainings = [
        Training(d, d if d <= 12 else None, d if d <= 12 else 20, "threshold" if d <= 12 else "budget") for d in DEPTHS
    ]
    rungs = budget.ladder(DEPTHS, trainings, (5, 10, 20))
    assert [r.trainable_depth for r in rungs] == [4, 8, 12]
    assert [(r.bracket.passed, r.bracket.failed) for r in rungs] == [(4, 8), (8, 12), (12, 16)]
    assert all(r.determined for r in rungs)
    # a search that trained only 8 and 16: at B=10 the bracket [8, 16] leaves 12 untrained
    partial = [t for t in trainings if t.depth in (8, 16)]
    r10 = budget.rung(DEPTHS, partial, 10)
    assert not r10.determined and r10.trainable_depth is None and (r10.bracket.passed, r10.bracket.failed) == (8, 16)
    assert "not determined" in r10.describe()
    r5 = budget.rung(DEPTHS, partial, 5)  # 8 fails at 5 epochs; 4 was never trained: not determined
    assert not r5.determined


def test_convergence_converged_not_converged_and_non_monotone():
    converged = budget.convergence(DEPTHS, [(5, 4), (10, 12), (20, 16), (40, 16), (80, 20)])
    assert converged.converged_at == 20 and converged.non_monotone == ()
    assert converged.describe() == "converged at B=20"
    # still moving by more than a step at the last doubling
    moving = budget.convergence(DEPTHS, [(5, 4), (10, 8), (20, 12), (40, 20)])
    assert moving.converged_at is None and moving.describe() == "not converged by B=40"
    # the last rung alone proves nothing
    assert budget.convergence(DEPTHS, [(5, 4)]).converged_at is None
    # more epochs, shallower ℓ_train: recorded, and it counts against convergence where it jumps
    falls = budget.convergence(DEPTHS, [(5, 16), (10, 4), (20, 4)])
    assert falls.non_monotone == ("ℓ_train fell from 16 at B=5 to 4 at B=10",)
    assert falls.converged_at == 10 and "non-monotone" in falls.describe()
    # an undetermined rung stops convergence before it
    assert budget.convergence(DEPTHS, [(5, 8), (10, None), (20, 8)]).converged_at is None
    # 0 ('none trained') is one step below the first depth
    assert budget.convergence(DEPTHS, [(5, 0), (10, 4), (20, 4)]).converged_at == 5


def test_seed_spread_counts_the_seeds_trainable_at_each_depth():
    by_seed = {
        0: [Training(8, 3, 3, "threshold"), Training(12, None, 10, "budget")],
        1: [Training(8, 9, 9, "threshold"), Training(12, 4, 4, "threshold")],
        2: [Training(8, None, 10, "budget"), Training(12, None, 10, "budget")],
    }
    spread = budget.seed_spread((8, 12), by_seed, 10)
    assert spread.fraction == {8: 2 / 3, 12: 1 / 3} and spread.seeds == {8: 3, 12: 3}
    assert (spread.low, spread.high) == (0, 12) and spread.disagree
    early = budget.seed_spread((8, 12), by_seed, 3)
    assert early.fraction == {8: 1 / 3, 12: 0.0}
    assert budget.close_call(0.38, 0.4, 0.03) and not budget.close_call(0.3, 0.4, 0.03)


@pytest.mark.parametrize(
    "ladder, what",
    [
        ((), "non-empty"),
        ((5, 5, 10), "5 follows 5"),
        ((10, 5), "5 follows 10"),
        ((5, 40), "40 is beyond it"),
        ((0, 5), "0 is not an integer"),
        ((2.5,), "2.5 is not an integer"),
    ],
)
def test_bad_ladders_fail_in_one_line(ladder, what):
    with pytest.raises(ConfigError, match="train.ladder") as info:
        TrainSpec(max_epochs=20, ladder=ladder)
    assert what in str(info.value) and "\n" not in str(info.value)


def test_the_ladder_defaults_to_doubling_below_max_epochs():
    assert default_ladder(200) == (5, 10, 20, 40, 80, 160, 200)
    assert default_ladder(5) == (1, 2, 4, 5) and default_ladder(1) == (1,) and default_ladder(20) == (5, 10, 20)
    assert TrainSpec(max_epochs=40, ladder=[5, 10, 40]).budgets == (5, 10, 40)
    assert TrainSpec(max_epochs=40).budgets == (5, 10, 20, 40)


# --- the search's rungs, replayed over hand-made stored outcomes (no Ray: adaptive.plan is a pure replay) ---------


def _search_grid(tmp_path, **search):
    from infoflow_ray.sweep.grid import resolve_grid

    return resolve_grid(
        "default",
        overrides={
            "results": str(tmp_path),
            "sigma_w2": (1.0,),
            "depths": DEPTHS,
            "train": {"max_epochs": 40, "ladder": (10, 20, 40)},
            "search": {"enabled": True, "target_depth": None, "resolve_rungs": False, **search},
        },
    )


def _replay(grid, accuracy_at_20=0.1):
    """Replay the search to its end, storing every asked training: depth d first reaches the threshold at epoch d
    (so ℓ_train is 8 within 10 epochs, 16 within 20 and 40); depth 20 never does (best accuracy
    ``accuracy_at_20``). The cascade predicts 16. Returns the last plan's group and every training asked."""
    from infoflow_ray.sweep import adaptive

    stored = adaptive.Stored()
    for seed in grid.seeds:
        stored.cutoffs[grid.cascade_task("mnist_t10k", 1.0, 0.05, seed).task_id] = 16.0
    asked = []
    while True:
        (group,) = adaptive.plan(grid, stored)
        if not group.asks:
            return group, asked
        for task in group.asks:
            assert task.kind == "baseline" and task.task_id not in stored.ladder  # never asked twice
            asked.append((task.network.depth, task.seed))
            d = task.network.depth
            first = d if d < 20 else None
            stored.trainings[task.task_id] = (first is not None, 0.9 if first else accuracy_at_20)
            stored.ladder[task.task_id] = (first, first or 40, "threshold" if first else "budget")


def test_the_search_says_what_its_trainings_determine_at_each_smaller_rung(tmp_path):
    group, asked = _replay(_search_grid(tmp_path))
    assert sorted(asked) == [(12, 0), (16, 0), (20, 0)]  # start 16, gallop to 20, confirm 12
    rungs = {r["asked"]: r for r in group.rows if r["search"] == "rung"}
    assert set(rungs) == {10.0, 20.0} and all(r["budget"] == r["asked"] for r in rungs.values())
    # within 10 epochs 12, 16, 20 all fail: ℓ_train < 12, but 4 and 8 were never trained
    assert not rungs[10.0]["done"] and rungs[10.0]["outcome"].startswith("not determined")
    assert math.isnan(rungs[10.0]["bracket_low"]) and rungs[10.0]["bracket_high"] == 12
    assert rungs[20.0]["done"] and rungs[20.0]["value"] == 16 and rungs[20.0]["bracket_high"] == 20
    (conv,) = [r for r in group.rows if r["search"] == "convergence"]
    assert conv["budget"] == 20 and conv["passed"] and "converged at B=20" in conv["outcome"]
    assert "10: ?" in conv["outcome"]  # the undetermined rung is said, not guessed


def test_resolve_rungs_trains_the_depths_that_decide_every_rung(tmp_path):
    group, asked = _replay(_search_grid(tmp_path, resolve_rungs=True))
    assert {d for d, _ in asked} >= {8, 12, 16, 20} and len(asked) == len(set(asked))
    rungs = {r["asked"]: r for r in group.rows if r["search"] == "rung"}
    assert rungs[10.0]["done"] and rungs[10.0]["value"] == 8 and rungs[10.0]["bracket_high"] == 12
    (conv,) = [r for r in group.rows if r["search"] == "convergence"]
    assert "10: 8, 20: 16, 40: 16" in conv["outcome"] and conv["budget"] == 20  # 8 → 16 is two depth steps


def test_extra_seeds_are_spent_only_where_the_outcome_is_close(tmp_path):
    far, asked_far = _replay(_search_grid(tmp_path, extra_seeds=1, close_margin=0.05), accuracy_at_20=0.1)
    assert {s for _, s in asked_far} == {0}  # 0.1 and 0.9 are far from the 0.4 threshold: one seed is enough
    close, asked_close = _replay(_search_grid(tmp_path, extra_seeds=1, close_margin=0.05), accuracy_at_20=0.38)
    assert {s for _, s in asked_close} == {0, 1} and (16, 1) == asked_close[len(asked_far)]  # starts at seed 0's
    assert (1.0, 1) in close.brackets and close.brackets[(1.0, 1)].passed == 16


def test_dry_run_counts_the_trainings_resolve_rungs_and_extra_seeds_can_add(tmp_path):
    """The dry-run's bound holds for a replay that spends both options, and grows with each of them."""
    import io

    from infoflow_ray import search
    from infoflow_ray.sweep.driver import describe_search

    def bound(grid) -> int:
        out = io.StringIO()
        describe_search(grid, set(), out)
        return int(out.getvalue().split(" and at most ")[1].split(" trainings")[0])

    plain = _search_grid(tmp_path)
    both = _search_grid(tmp_path, resolve_rungs=True, extra_seeds=1, close_margin=0.05)
    _, asked = _replay(both, accuracy_at_20=0.38)  # close: the extra seed searches too
    per_chain = search.worst_case_chain_trainings(DEPTHS, rungs=3)  # ladder 10, 20, 40
    assert per_chain == min(3 * search.worst_case_trainings(DEPTHS), len(DEPTHS))
    assert bound(plain) == search.worst_case_trainings(DEPTHS)  # one σw², one seed
    assert bound(both) == 2 * per_chain > bound(plain)  # the grid's seed and one extra seed, each resolved
    assert len(asked) <= bound(both) and {s for _, s in asked} == {0, 1}

"""The adaptive search's decisions (infoflow_ray.search): pure functions, no Ray, no training."""

from __future__ import annotations

import math

import pytest

from infoflow_ray import search

DEPTHS = list(range(4, 61, 4))  # 15 allowed depths


def run_depth_search(depths, start, trainable, resolution=None, confirm=True):
    """Drive the replay to the end with an oracle depth → passed, as the driver does with stored trainings."""
    outcomes = {}
    while True:
        result = search.depth_search(depths, start, outcomes, resolution, confirm)
        if result.done:
            return result, outcomes
        assert result.next_depth not in outcomes, "a finished training is never asked for again"
        outcomes[result.next_depth] = trainable(result.next_depth)


def grid_trainable_depth(depths, trainable):
    """What the full grid says: the deepest depth that passed, and the shallowest failing depth above it."""
    passed = [d for d in depths if trainable(d)]
    deepest = max(passed, default=None)
    above = [d for d in depths if not trainable(d) and (deepest is None or d > deepest)]
    return deepest, min(above, default=None)


@pytest.mark.parametrize("start", DEPTHS)
def test_depth_search_brackets_equal_the_full_grid_for_every_monotone_outcome(start):
    for edge in range(len(DEPTHS) + 1):
        trainable = lambda d, edge=edge: DEPTHS.index(d) < edge  # noqa: E731
        result, outcomes = run_depth_search(DEPTHS, start, trainable)
        assert (result.bracket.passed, result.bracket.failed) == grid_trainable_depth(DEPTHS, trainable)
        assert result.bracket.contradictions == 0
        assert len(outcomes) <= search.worst_case_trainings(DEPTHS)


def test_depth_search_needs_a_fraction_of_the_grid_when_the_prediction_is_close():
    """Started at the right depth the search brackets ℓ_train with ≤ 5 of the 15 trainings."""
    result, outcomes = run_depth_search(DEPTHS, 32, lambda d: d <= 32)
    assert (result.bracket.passed, result.bracket.failed) == (32, 36)
    assert sorted(outcomes) == [28, 32, 36, 40]  # start, one deeper, then the confirmation on either side


def test_depth_search_gallops_then_bisects():
    result, _ = run_depth_search(DEPTHS, 8, lambda d: d <= 44, confirm=False)
    asked = [d.asked for d in result.decisions]
    assert asked[:5] == [8, 12, 16, 24, 40]  # steps of 1, 1, 2, 4 allowed depths while everything passes
    assert asked[5:] == [60, 48, 44]  # 40 + 8 steps is capped at the deepest; then bisection
    assert "gallop deeper" in result.decisions[1].reason and "bisect" in result.decisions[-1].reason


def test_depth_search_resolution_in_layers_stops_early():
    result, outcomes = run_depth_search(DEPTHS, 4, lambda d: d <= 30, resolution=8, confirm=False)
    assert result.bracket.failed - result.bracket.passed <= 8
    coarse = len(outcomes)
    _, fine = run_depth_search(DEPTHS, 4, lambda d: d <= 30, confirm=False)
    assert coarse < len(fine)


def test_a_non_monotone_outcome_is_recorded_and_the_bracket_follows_the_deepest_pass():
    """Depth 40 trains although 36 did not: the confirmation finds it, records the contradiction, and the search
    goes on above 40 — ending where the full grid ends (its ℓ_train is the deepest depth that passed)."""
    trainable = lambda d: d <= 32 or d == 40  # noqa: E731
    result, _ = run_depth_search(DEPTHS, 20, trainable)
    assert (result.bracket.passed, result.bracket.failed) == grid_trainable_depth(DEPTHS, trainable) == (40, 44)
    assert result.bracket.contradictions == 1
    flagged = [d for d in result.decisions if d.contradiction]
    assert [d.asked for d in flagged] == [40]
    assert flagged[0].contradiction == "depth 40 passed although depth 36 failed"


def test_a_shallower_failure_below_a_pass_is_a_contradiction():
    """Depth 28 trains, the confirmation one step shallower (24) does not: recorded, and ℓ_train stays 28."""
    result, _ = run_depth_search(DEPTHS, 28, lambda d: d != 24 and d <= 28)
    assert (result.bracket.passed, result.bracket.failed, result.bracket.contradictions) == (28, 32, 1)
    assert [d.contradiction for d in result.decisions if d.contradiction] == [
        "depth 24 failed although depth 28 passed"
    ]


def test_depth_search_replays_the_same_decisions_from_stored_outcomes():
    """Killed after any number of steps and run again over what was stored: the same decisions, nothing re-asked."""
    full, outcomes = run_depth_search(DEPTHS, 20, lambda d: d <= 28)
    for k in range(len(full.decisions)):
        stored = {d.asked: d.outcome for d in full.decisions[:k]}
        partial = search.depth_search(DEPTHS, 20, stored)
        assert partial.decisions == full.decisions[:k]
        assert partial.next_depth == full.decisions[k].asked
        assert partial.next_depth not in stored


def test_depth_search_edges_of_the_depth_list():
    result, _ = run_depth_search(DEPTHS, 60, lambda d: True)
    assert (result.bracket.passed, result.bracket.failed, result.bracket.trainable_depth) == (60, None, 60)
    result, _ = run_depth_search(DEPTHS, 4, lambda d: False)
    assert (result.bracket.passed, result.bracket.failed, result.bracket.trainable_depth) == (None, 4, 0)
    with pytest.raises(ValueError, match="start depth 7"):
        search.depth_search(DEPTHS, 7, {})


def test_nearest_depth_rounds_to_the_closest_allowed_depth():
    assert search.nearest_depth(DEPTHS, 29.9) == 28
    assert search.nearest_depth(DEPTHS, 30.0) == 28  # a tie goes to the shallower
    assert search.nearest_depth(DEPTHS, 1.0) == 4
    assert search.nearest_depth(DEPTHS, math.nan) == 60


def test_worst_case_is_at_most_the_grid_and_well_below_it_for_long_depth_lists():
    assert search.worst_case_trainings(DEPTHS) < len(DEPTHS)
    assert search.worst_case_trainings(range(10, 201, 10)) <= 12  # 20 depths of the paper preset


# --- the σw² interval ---------------------------------------------------------------------------------------


def tent(peak=2.2, height=60.0, slope=20.0):
    return lambda s: height - slope * abs(s - peak)


def run_interval(coarse, target, cutoff, tolerance):
    known, rounds = {}, 0
    while True:
        result = search.interval_search(coarse, target, known, tolerance)
        if result.done:
            return result, known, rounds
        rounds += 1
        assert len(result.next_sigma_w2) <= 2 or rounds == 1  # one cascade per open edge after the coarse start
        for s in result.next_sigma_w2:
            assert s not in known
            known[s] = cutoff(s)


def test_interval_search_finds_both_edges_within_the_tolerance():
    cutoff = tent()  # ℓ_c ≥ 40 exactly on [1.2, 3.2]
    result, known, _ = run_interval([0.5, 1, 1.5, 2, 3, 4], 40, cutoff, 0.02)
    assert result.low.outside < 1.2 <= result.low.inside and result.low.width <= 0.02
    assert result.high.inside <= 3.2 < result.high.outside and result.high.width <= 0.02
    assert abs(result.low.estimate - 1.2) <= 0.01 and abs(result.high.estimate - 3.2) <= 0.01
    assert len(known) <= search.worst_case_cascades([0.5, 1, 1.5, 2, 3, 4], 0.02)
    assert result.contradictions == 0


def test_interval_search_with_no_trainable_sigma_and_an_open_edge():
    result, known, _ = run_interval([0.5, 1, 2], 70, tent(), 0.02)
    assert result.low is None and result.high is None and len(known) == 3
    result, _, _ = run_interval([1.5, 2, 3, 4], 40, tent(), 0.02)  # 1.5 is inside: the low edge is below the range
    assert result.low.outside is None and result.low.inside == 1.5 and result.low.width == math.inf
    assert result.high.width <= 0.02


def test_interval_search_nan_cutoff_is_outside_and_a_dip_is_a_contradiction():
    values = {0.5: 10.0, 1.0: 45.0, 1.5: math.nan, 2.0: 50.0, 3.0: 20.0}
    result = search.interval_search(list(values), 40, values, tolerance=10.0)  # coarse only: tolerance wide
    assert result.done and result.contradictions == 1
    assert (result.low.inside, result.high.inside) == (1.0, 2.0)
    assert [d.contradiction for d in result.decisions if d.contradiction] == [
        "ℓ_c ≥ 40 at σw² 2 and 1 but not at 1.5 between them"
    ]


def test_interval_search_replays_from_partial_results():
    full, known, _ = run_interval([0.5, 1, 2, 4], 40, tent(), 0.05)
    partial = search.interval_search([0.5, 1, 2, 4], 40, {s: known[s] for s in list(known)[:6]}, 0.05)
    assert partial.decisions == full.decisions[: len(partial.decisions)]
    assert set(partial.next_sigma_w2) <= set(known) - set(list(known)[:6])


# --- the peak -----------------------------------------------------------------------------------------------


def test_locate_tolerant_peak_brackets_a_single_maximum_and_a_plateau():
    peak = search.locate_tolerant_peak({0.5: 8.0, 1.0: 20.0, 1.5: 30.0, 2.0: 26.0, 3.0: 12.0})
    assert (peak.estimate, peak.low, peak.high, peak.maximum, peak.tied) == (1.5, 1.0, 2.0, 30.0, 1)
    plateau = search.locate_tolerant_peak({0.5: 8.0, 1.5: 58.0, 1.8: 58.0, 2.2: 57.8, 3.0: 40.0})
    assert (plateau.estimate, plateau.low, plateau.high, plateau.tied) == (1.85, 0.5, 3.0, 3)
    edge = search.locate_tolerant_peak({1.0: 5.0, 2.0: 3.0, 3.0: math.nan})
    assert (edge.estimate, edge.low, edge.high) == (1.0, None, 2.0)
    assert search.locate_tolerant_peak({1.0: math.nan}) is None

"""The budget ladder end to end: real Ray Tune trials, real torch trainings on MNIST-t10k, real Parquet.

- a real trial's ``threshold_epoch`` is the first epoch of its ``train_epochs`` at the threshold;
- ℓ_train read off one grid at B_max for a smaller budget B equals what a separate grid with max_epochs = B
  finds, training for training;
- over several seeds the fraction trainable per depth is a count by hand over ``train_summary``, and the report
  has the budget section and figures.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from infoflow_ray.analysis import budget as budget_frames
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.grid import resolve_grid

LADDER = (1, 2, 4)
THRESHOLD = 0.3


def ladder_grid(results: Path, max_epochs: int = 4, ladder=LADDER):
    """Baselines only, 3 σw² × 3 depths × 2 seeds, 1,000 training images, stopping at 30 % test accuracy; the
    networks of a depth trained three to a trial (batched: each stops at its own threshold)."""
    return resolve_grid(
        "tiny",
        overrides={
            "kinds": ("baseline",),
            "sigma_w2": (1.0, 1.76, 3.0),
            "depths": (3, 5, 8),
            "seeds": (0, 1),
            "data": {"max_train_samples": 1000},
            "train": {"max_epochs": max_epochs, "accuracy_threshold": THRESHOLD, "ladder": ladder},
            "results": str(results),
            "resources": {"baseline_group": 3},
        },
    )


@pytest.fixture(scope="module")
def laddered(tmp_path_factory, ray_local) -> Path:
    path = tmp_path_factory.mktemp("ladder") / "results"
    outcome = run_grid(ladder_grid(path), progress_interval_seconds=300)
    assert not outcome.failed and not outcome.interrupted
    return path


def test_a_real_trials_threshold_epoch_is_the_first_epoch_at_the_threshold(laddered):
    store = ResultStore.open(str(laddered), create=False)
    summary = store.scan("train_summary").collect()
    epochs = store.scan("train_epochs").collect()
    first = (
        epochs.filter(pl.col("test_accuracy") >= THRESHOLD)
        .group_by("task_id")
        .agg(pl.col("epoch").min().alias("first"))
    )
    joined = summary.join(first, on="task_id", how="left")
    assert joined.height == 18
    assert joined["threshold_epoch"].to_list() == joined["first"].to_list()
    assert (joined["threshold_epoch"].is_not_null() == joined["reached_threshold"]).all()
    # not vacuous: some trainings reached it only after the first epoch, some never within 4
    assert (joined["threshold_epoch"] > 1).any() and joined["threshold_epoch"].is_null().any(), joined


def test_l_train_read_off_one_grid_equals_a_separate_grid_with_that_budget(laddered, tmp_path):
    """At the middle rung B = 2 of the ladder (1, 2, 4): neither the first epoch nor the grid's own budget, so a
    reading that took either end instead fails. (One rung: a second separate grid took 25 s and checked the same
    reading again.)"""
    budget = 2
    separate = tmp_path / "results"
    assert not run_grid(ladder_grid(separate, max_epochs=budget, ladder=None), progress_interval_seconds=300).failed
    other = ResultStore.open(str(separate), create=False).scan("train_summary").collect()
    # by hand from the separate grid: per (σw², seed) the deepest depth that reached the threshold, 0 when none
    want = {
        (s, seed): part.filter("reached_threshold")["depth"].max() or 0
        for (s, seed), part in other.group_by("sigma_w2", "seed")
    }
    read = budget_frames.ladder(ResultStore.open(str(laddered), create=False))
    assert set(read["budget"]) == set(LADDER)  # the grid's ladder, recorded with it
    at = read.filter(pl.col("budget") == budget)
    assert at["determined"].all()
    assert dict(zip(zip(at["sigma_w2"], at["seed"]), at["trainable_depth"])) == want
    # training for training: reached within B in the long grid ⇔ reached in the grid of budget B
    full = ResultStore.open(str(laddered), create=False).scan("train_summary").collect()
    keys = ["sigma_w2", "depth", "seed"]
    both = full.join(other, on=keys, suffix="_b").sort(keys)
    assert both.height == 18
    assert ((both["threshold_epoch"] <= budget).fill_null(False) == both["reached_threshold_b"]).all()


def test_seed_fractions_equal_a_hand_count_and_the_report_shows_the_budget(laddered, tmp_path):
    from doc_examples import python_block

    from infoflow_ray.analysis import report as analyze

    store = ResultStore.open(str(laddered), create=False)
    summary = store.scan("train_summary").collect()
    fractions = budget_frames.seed_fractions(store)
    for budget in LADDER:
        hand = {}
        for (s, depth), part in summary.group_by("sigma_w2", "depth"):
            hand[(s, depth)] = sum(e is not None and e <= budget for e in part["threshold_epoch"]) / part.height
        got = fractions.filter(pl.col("budget") == budget)
        assert dict(zip(zip(got["sigma_w2"], got["depth"]), got["fraction"])) == hand
        assert (got["n_seeds"] == 2).all()
    report = analyze.run(store, tmp_path / "out")
    names = {p.name for p in report.figures}
    assert {"budget_ladder_mnist_t10k_wide_sb0.05.png", "epochs_heatmap_mnist_t10k_wide_sb0.05.png"} <= names
    text = "\n".join(report.sections)
    assert "## Training budget: is ℓ_train converged?" in text and "Fraction of seeds" in text
    assert "ℓ_train within 4 epochs; converged at" in text  # baselines only: no agreement section to annotate
    example = python_block("docs/budget.md", "## Reading it in Python")  # docs/budget.md's example runs
    exec(example.replace('"results/default"', repr(str(laddered))), {})

"""The architecture axis on real Ray: a tiny grid of mlp, cnn and resnet end to end, and the analysis of it."""

import subprocess
import sys

import polars as pl
import pytest
from drivers import ROOT

from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.grid import resolve_grid

PROFILES = {"wide", "cnn-c4", "resnet-c4"}


@pytest.fixture(scope="module")
def three_families(tmp_path_factory, ray_local):
    results = tmp_path_factory.mktemp("families") / "results"
    grid = resolve_grid(
        "tiny",
        overrides={
            "results": str(results),
            "architecture": ["mlp", "cnn", "resnet"],
            "channels": 4,
            "sigma_w2": [0.5, 1.76],
            "depths": [5],
            "cascade_depth": 10,  # trainings at depth 5; cascades deep enough that σw² moves the MLP's cutoff
            "data": {"max_train_samples": 1000},
            "cascade": {"eval_samples": 100},
            "train": {"max_epochs": 1},
        },
    )
    outcome = run_grid(grid, progress_interval_seconds=300)
    assert not outcome.failed, outcome.failed
    return results


def test_every_architecture_writes_its_cascades_and_trainings_keyed_by_profile(three_families):
    store = ResultStore.open(str(three_families), create=False)
    runs = store.scan("runs").collect()
    assert runs.group_by("profile", "kind").len().sort("profile", "kind")["len"].to_list() == [2, 2] * 3
    assert set(runs["profile"]) == PROFILES
    curves = store.scan("curves").filter(pl.col("measure") == "kl_mean").collect()
    # every cascade measures layers 0..10 (stem, body, head for the convolutional ones), KL 0 at the input
    assert curves.group_by("task_id").agg(pl.col("layer").max())["layer"].to_list() == [10] * 6
    assert curves.filter(pl.col("layer") == 0)["value"].abs().max() == 0
    assert curves.filter(pl.col("layer") > 0)["value"].min() > 0
    cutoffs = store.scan("cutoffs").filter(pl.col("measure") == "kl_mean").collect()
    assert cutoffs.filter(pl.col("profile").str.starts_with("cnn"))["last_layer"].unique().to_list() == [9]
    assert cutoffs.filter(profile="wide")["last_layer"].unique().to_list() == [8]  # wide: L - 2
    images = store.scan("reconstructions").collect()
    assert images.filter(pl.col("profile") == "cnn-c4")["pixels"].list.len().unique().to_list() == [784]


def test_analyze_draws_each_architecture_apart_and_says_residual_nets_have_no_mean_field_transition(
    three_families, tmp_path
):
    out = tmp_path / "analysis"
    done = subprocess.run(
        [sys.executable, "jobs/analyze.py", str(three_families), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    for profile in PROFILES:
        for figure in ("phase_diagram", "re_curves", "reconstructions"):
            assert (out / f"{figure}_mnist_t10k_{profile}_sb0.05.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert all(f"| mnist_t10k | {profile} |" in report for profile in PROFILES)
    assert "Residual architectures (profiles resnet-…, resmlp-…) have no ordered/chaotic transition" in report


def test_a_cnn_searches_interprets_and_trains_grouped_on_real_ray(tmp_path, ray_local):
    """What was refused for every family but the MLP: the adaptive search with grouped baseline trainings, and
    --interpret, on a 2-channel CNN of depths 5–6 on 500 images."""
    small = {
        "architecture": ["cnn"],
        "channels": 2,
        "sigma_w2": [0.5, 1.76],
        "depths": [5, 6],
        "data": {"max_train_samples": 500},
        "cascade": {"eval_samples": 100},
        "train": {"max_epochs": 1},
    }
    searched = tmp_path / "search"
    grid = resolve_grid(
        "tiny",
        overrides={**small, "results": str(searched), "search": {"enabled": True}, "resources": {"baseline_group": 2}},
    )
    outcome = run_grid(grid, progress_interval_seconds=300)
    assert not outcome.failed, outcome.failed
    store = ResultStore.open(str(searched), create=False)
    search = store.scan("search").collect()
    assert set(search["profile"]) == {"cnn-c2"} and (search["search"] == "depth").any()
    trainings = store.scan("train_summary").collect()
    assert len(trainings) >= 2 and set(trainings["profile"]) == {"cnn-c2"}
    interpreted = tmp_path / "interpret"
    one = {**small, "sigma_w2": [1.76], "depths": [5], "kinds": ["baseline"]}
    grid = resolve_grid("tiny", overrides={**one, "results": str(interpreted), "interpret": {"enabled": True}})
    outcome = run_grid(grid, progress_interval_seconds=300)
    assert not outcome.failed, outcome.failed
    store = ResultStore.open(str(interpreted), create=False)
    perfect = store.scan("perfect_inputs").collect()
    assert sorted(perfect.filter(pl.col("layer") == 0)["label"]) == list(range(10))
    assert store.scan("retraced").collect()["pixels"].list.len().unique().to_list() == [784]


def test_the_cnn_cutoff_follows_the_mlp_and_the_residual_cutoff_barely_moves_with_sigma_w2(three_families):
    """The stored depth-10 per-image cutoffs: the MLP's rises from the ordered σw² = 0.5 to the critical 1.76, the
    CNN's too (its mean-field picture is the MLP's: fan-in-scaled weights, tanh), and a residual network's stays
    put: its skip connections carry the input whatever σw² (measured, 1,000 images: MLP 5.3 → 7.6, CNN 7.0 → 8.8,
    ResNet 8.58 → 8.63)."""
    cutoffs = (
        ResultStore.open(str(three_families), create=False)
        .scan("cutoffs")
        .filter(pl.col("measure") == "kl_per_image")
        .collect()
    )
    cut = {(p, s): v for p, s, v in cutoffs.select("profile", "sigma_w2", "cutoff_layer").rows()}
    rise = {profile: cut[profile, 1.76] - cut[profile, 0.5] for profile in PROFILES}
    assert rise["wide"] >= 1.5 and rise["cnn-c4"] >= 1, rise
    assert abs(rise["resnet-c4"]) < 0.5 and abs(rise["resnet-c4"]) < rise["wide"] / 3, rise

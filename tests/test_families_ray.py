"""The architecture axis on real Ray: a tiny grid of mlp, cnn and resnet end to end, and the analysis of it."""

import polars as pl
import pytest
import torch
from drivers import analyze

from infoflow_ray import families
from infoflow_ray.config import NetworkSpec
from infoflow_ray.data import load_dataset
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
    done = analyze(three_families, "--out", out)
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
        overrides={
            **small,
            "results": str(searched),
            "search": {"enabled": True},
            "resources": {"baseline_group": 2},
            "interpret": {"enabled": True},
        },
    )
    outcome = run_grid(grid, progress_interval_seconds=300)
    assert not outcome.failed, outcome.failed
    store = ResultStore.open(str(searched), create=False)
    search = store.scan("search").collect()
    assert set(search["profile"]) == {"cnn-c2"} and (search["search"] == "depth").any()
    trainings = store.scan("train_summary").collect()
    assert len(trainings) >= 2 and set(trainings["profile"]) == {"cnn-c2"}
    perfect = store.scan("perfect_inputs").filter(pl.col("layer") == 0).collect()
    for task_id in trainings["task_id"]:  # every trained network interpreted: one perfect input per class
        assert sorted(perfect.filter(task_id=task_id)["label"]) == list(range(10)), task_id
    assert store.scan("retraced").collect()["pixels"].list.len().unique().to_list() == [784]


def _spread(a) -> float:
    """How far apart the images are at a layer: the norm of the per-unit standard deviation over images over the
    norm of the mean activation (0: every image gives the same activation, the input is lost)."""
    a = a.flatten(1)
    return (a.std(0).norm() / a.mean(0).norm()).item()


def test_the_cnn_cutoff_follows_the_mlp_and_the_residual_stream_keeps_its_input_in_the_ordered_phase(three_families):
    """The stored depth-10 per-image cutoffs: the MLP's rises from the ordered σw² = 0.5 to the critical 1.76, the
    CNN's too (its mean-field picture is the MLP's: fan-in-scaled weights, tanh) (measured, 1,000 images: MLP
    5.3 → 7.6, CNN 7.0 → 8.8).

    A residual network has no ordered phase: its skip connections carry the stem's output through the body
    whatever σw², which is why its cutoff barely moves (stored: 8.58 → 8.63). That stored cutoff cannot tell on
    its own: at 4 channels it sits at the ceiling (9) with the skip connections removed too (measured 9.00 and
    8.85), so the check is on the networks the cascades decoded (the same specs, seed 0; the first 100 test
    images): at σw² = 0.5 the images stay apart through the ResNet's body (spread at layer 9 over spread at layer
    3, after the stem: 0.54), while the CNN's and the MLP's collapse onto one activation (0.04, 0.07) — as does
    the ResNet without its skip connections (0.006)."""
    cutoffs = (
        ResultStore.open(str(three_families), create=False)
        .scan("cutoffs")
        .filter(pl.col("measure") == "kl_per_image")
        .collect()
    )
    cut = {(p, s): v for p, s, v in cutoffs.select("profile", "sigma_w2", "cutoff_layer").rows()}
    rise = {profile: cut[profile, 1.76] - cut[profile, 0.5] for profile in PROFILES}
    assert rise["wide"] >= 1.5 and rise["cnn-c4"] >= 1, rise
    assert abs(rise["resnet-c4"]) < 0.5, rise
    images = load_dataset("mnist_t10k").test_x[:100]
    kept = {}
    for architecture in ("mlp", "cnn", "resnet"):
        extra = {} if architecture == "mlp" else {"architecture": architecture, "channels": 4}
        net = families.build(NetworkSpec(0.5, 10, **extra), 0)
        with torch.no_grad():
            acts = net.activations(images)
        kept[architecture] = _spread(acts[9]) / _spread(acts[3])
    assert kept["resnet"] > 0.3 and kept["cnn"] < 0.1 and kept["mlp"] < 0.1, kept

"""jobs/info_plane.py on real Ray: the tiny preset end to end, resume without duplicates, bad input, the report."""

import math
import shutil

import polars as pl
import pytest
from drivers import analyze

from infoflow_ray import ib_experiments as ib
from infoflow_ray.analysis.info_plane import fitting_and_compression, trajectories
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.ib_job import PRESETS
from infoflow_ray.sweep.jobs import job

main = job("info-plane").main

# tiny-tishby: 5 snapshots × 6 layers × 3 estimators; tiny-seed004: binning 2 × 2 layers + density 2 × 2 layers
EXPECTED_ROWS = 5 * 6 * 3 + 2 * 2 + 2 * 2
EXPECTED_TASKS = 3 + 1 + 4


@pytest.fixture(scope="module")
def tiny_ib(tmp_path_factory, ray_local):
    results = tmp_path_factory.mktemp("ib") / "results"
    assert main(["--preset", "tiny", "--results", str(results)]) == 0
    return results


def test_the_tiny_preset_stores_every_point_once_with_sane_values(tiny_ib):
    store = ResultStore.open(str(tiny_ib), create=False)
    traj = trajectories(store)
    assert traj.height == EXPECTED_ROWS
    assert traj.select(pl.struct("experiment", "estimator", "layer", "step").n_unique()).item() == EXPECTED_ROWS
    assert store.scan("runs").filter(pl.col("kind") == "info_plane").collect().height == EXPECTED_TASKS
    assert traj.filter(pl.col("estimator") == "density").get_column("layer").unique().sort().to_list() == [1, 2]
    binning = traj.filter(pl.col("estimator").str.starts_with("binning"))
    ln_n = binning.get_column("n_samples").cast(pl.Float64).log()
    assert (binning.get_column("i_xt") <= ln_n + 1e-9).all() and (binning.get_column("i_ty") >= -1e-12).all()
    # binned I(T;Y) ≤ H(Y) of the sample's labels, with equality where every input keeps its own bin (layer 1)
    y = ib.experiment_data(PRESETS["tiny"]["experiments"][0]).probe_y.double()
    h_y = -sum(p * math.log(p) for p in (y.mean().item(), 1 - y.mean().item()))
    tishby = binning.filter(pl.col("experiment") == "tiny-tishby")
    assert tishby.get_column("i_ty").max() == pytest.approx(h_y, abs=1e-9)
    assert tishby.filter(pl.col("layer") == 1).get_column("i_ty").to_list() == pytest.approx([h_y] * 10, abs=1e-9)
    dcor = traj.filter(pl.col("estimator") == "dcor")
    assert dcor.height == 30 and dcor.select(pl.col("i_xt", "i_ty").is_between(0, 1).all()).row(0) == (True, True)
    density = traj.filter(pl.col("estimator") == "density")
    assert density.get_column("i_xt").is_finite().all() and (density.get_column("i_xt") > 0).all()
    assert (density.get_column("n_samples") == 2000).all()  # held out: MNIST-t10k's test split
    # data processing: layer 2 is a function of layer 1, so I(X;T2) ≤ I(X;T1) at every step, within the density
    # estimator's stated error (tests/test_density.py: known entropies to within 2–3 %, so 4 % here)
    by_layer = {(step, layer): v for step, layer, v in density.select("step", "layer", "i_xt").rows()}
    for step in {step for step, _ in by_layer}:
        assert by_layer[step, 2] <= 1.04 * by_layer[step, 1], (step, by_layer)
    # against binning on the same 32 bins: the density model's held-out cross-entropy bounds H(T) from above, the
    # plug-in binning of 2,000 samples from below (and by ln 2000 = 7.6 nats); measured at layer 1: 35.5 and 46.5
    # nats against 7.60 (every sample in a bin of its own), so the two cannot agree there, but must be ordered
    binned = traj.filter(experiment="tiny-seed004", estimator="binning")
    binned = {(step, layer): v for step, layer, v in binned.select("step", "layer", "i_xt").rows()}
    assert binned.keys() == by_layer.keys()
    assert all(by_layer[key] >= binned[key] for key in by_layer), (by_layer, binned)
    figures = tiny_ib / "figures"
    assert {p.name for p in figures.glob("*.png")} == {"info_plane_tiny-tishby.png", "info_plane_tiny-seed004.png"}
    report = (figures / "report.md").read_text()
    assert "## tiny-tishby" in report and "| density | 2 |" in report


def test_a_rerun_stores_nothing_twice_and_fills_a_lost_point(tiny_ib, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(tiny_ib, results)
    store = ResultStore.open(str(results), create=False)
    before = trajectories(store)
    lost = before.filter(pl.col("estimator") == "density").row(0, named=True)
    lost_id = (
        store.scan("info_plane")
        .filter(
            (pl.col("estimator") == "density") & (pl.col("step") == lost["step"]) & (pl.col("layer") == lost["layer"])
        )
        .collect()
        .get_column("task_id")[0]
    )
    for path in results.rglob(f"{lost_id}.parquet"):
        path.unlink()
    capsys.readouterr()
    assert main(["--preset", "tiny", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert f"(1 point tasks written, {EXPECTED_TASKS - 1} stored before)" in out
    after = trajectories(ResultStore.open(str(results), create=False))
    assert after.height == EXPECTED_ROWS
    same = ["experiment", "estimator", "layer", "step", "i_xt", "i_ty"]
    kept = before.filter(pl.col("estimator") != "density").select(same)
    assert kept.equals(after.filter(pl.col("estimator") != "density").select(same))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--only", "nope"], "only: no experiment nope in preset 'tiny'"),
        (["--estimators", "histogram"], "estimators must be a non-empty list of"),
        (["--steps", "0"], "steps must be an integer >= 1, got 0"),
        (["--density-cpus", "0"], "density_cpus must be > 0, got 0.0"),
    ],
)
def test_bad_flags_fail_in_one_line_before_anything_runs(argv, message, tmp_path, capsys):
    results = tmp_path / "never"
    assert main(["--preset", "tiny", "--results", str(results), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not results.exists()


def test_phases_read_fitting_and_compression_from_a_trajectory():
    traj = pl.DataFrame(
        {
            "experiment": ["e"] * 4,
            "estimator": ["binning"] * 4,
            "param": ["n_bins=50"] * 4,
            "layer": [1] * 4,
            "step": [0, 10, 20, 30],
            "i_xt": [1.0, 3.0, 2.0, 1.5],
            "i_ty": [0.1, 0.4, 0.5, 0.5],
        }
    )
    row = fitting_and_compression(traj).row(0, named=True)
    assert row["step_xt_peak"] == 10 and row["xt_peak"] == 3.0 and row["compression"] == pytest.approx(0.5)
    assert (row["ty_first"], row["ty_max"], row["ty_last"]) == (0.1, 0.5, 0.5)


def test_analyze_draws_the_experiments_and_reports_them_without_grid_figures(tiny_ib, tmp_path):
    out = tmp_path / "analysis"
    done = analyze(tiny_ib, "--out", out)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.glob("*.png")} == {"info_plane_tiny-tishby.png", "info_plane_tiny-seed004.png"}
    section = (out / "report.md").read_text().split("## Information-plane experiments", 1)[1].split("\n## ", 1)[0]
    assert section.count("| tiny-tishby | binning_extended |") == 6 and section.count("| tiny-seed004 | density |") == 2

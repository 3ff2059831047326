"""Analysis, plots, jobs/analyze.py and the notebook: on the tiny preset's real results (with and without the
information-plane probes), on a hand-made results set with a known answer, and on missing, partial and corrupt
results."""

import json
import math
import shutil
import subprocess
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from drivers import analyze
from PIL import Image

from infoflow_ray import analysis, plots, theory
from infoflow_ray.errors import ConfigError, ResultsError
from infoflow_ray.store import CorruptFileWarning, ResultStore

ROOT = Path(__file__).resolve().parents[1]
ANALYZE = ROOT / "jobs" / "analyze.py"
KEYS = ["dataset", "profile", "sigma_b2", "sigma_w2"]
CRITICAL = 1.7609  # mean-field critical σw² at σb² = 0.05 (method §5)


# ------------------------------------------------------------------------------------------ tiny real results


@pytest.fixture(scope="module")
def tiny(tiny_results):
    return analysis.open_results(tiny_results)


COLUMNS = {
    "cutoffs_by_sigma": KEYS
    + [
        "measure",
        "cutoff_mean",
        "cutoff_std",
        "n_seeds",
        "n_nonfinite",
        "n_unsaturated",
        "per_image_std",
        "last_layer",
        "depth",
    ],
    "trainable_depth": KEYS
    + [
        "trainable_depth",
        "any_trainable",
        "deepest_trained",
        "n_trained",
        "n_reached",
        "best_test_accuracy",
        "accuracy_threshold",
        "loss_fn",
        "trainable_depth_mean",
        "trainable_depth_std",
        "n_seeds",
    ],
    "accuracy_grid": KEYS
    + ["depth", "best_test_accuracy", "best_test_accuracy_std", "reached_fraction", "epochs_mean", "n_seeds"],
    "curves_by_sigma": KEYS + ["depth", "measure", "layer", "value_mean", "value_std", "n_seeds", "n_nonfinite"],
    "timing": KEYS + ["predicting_seconds", "n_cascade", "training_seconds", "n_baseline", "speedup"],
}


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_frames_on_tiny_results_have_the_documented_columns_and_rows(tiny, name):
    frame = getattr(analysis, name)(tiny)
    assert isinstance(frame, pl.LazyFrame)
    frame = frame.collect()
    assert frame.columns == COLUMNS[name]
    assert frame.height > 0
    assert frame.select(KEYS).null_count().sum_horizontal().item() == 0
    assert sorted(frame["sigma_w2"].unique()) == [0.5, 1.76, 3.0]  # the tiny preset's σw²


def test_tiny_cutoffs_are_the_stored_cutoffs_of_the_deepest_cascades(tiny):
    cutoffs = analysis.cutoffs_by_sigma(tiny).collect()
    assert set(cutoffs["measure"]) == set(analysis.CUTOFF_MEASURES)
    assert (cutoffs["n_seeds"] == 1).all()  # the tiny grid has one seed
    assert cutoffs["cutoff_std"].is_null().all()  # no spread from one seed
    assert (cutoffs["depth"] == 6).all() and (cutoffs["last_layer"] == 4).all()  # wide: L - 2
    # recomputed from the stored rows: the depth-6 cascade's cutoff of each σw² and measure, one seed
    rows = tiny.scan("cutoffs").filter(pl.col("depth") == 6).collect()
    assert rows.height == cutoffs.height == 3 * len(analysis.CUTOFF_MEASURES)
    for row in rows.iter_rows(named=True):
        (got,) = cutoffs.filter(sigma_w2=row["sigma_w2"], measure=row["measure"]).iter_rows(named=True)
        assert got["cutoff_mean"] == row["cutoff_layer"] and got["n_unsaturated"] == int(not row["saturated"])
        assert 1 <= got["cutoff_mean"] <= 4  # a layer of the network


def test_tiny_trainable_depth_is_recomputed_from_the_stored_trainings(tiny):
    trainable = analysis.trainable_depth(tiny).collect()
    assert (trainable["n_trained"] == 2).all() and (trainable["deepest_trained"] == 6).all()
    summary = tiny.scan("train_summary").collect()
    for row in trainable.iter_rows(named=True):
        mine = summary.filter(sigma_w2=row["sigma_w2"])
        reached = [d for d, ok in mine.select("depth", "reached_threshold").rows() if ok]
        assert row["trainable_depth"] == max(reached, default=0) and row["n_reached"] == len(reached)
        assert row["any_trainable"] == bool(reached)
        assert row["best_test_accuracy"] == mine["best_test_accuracy"].max()
    # the known answer: in 2 epochs the ordered σw² = 0.5 trains at no depth (measured best accuracy 0.13–0.14),
    # the critical one reaches 0.4 at depth 6 (0.48)
    depth_of = dict(trainable.select("sigma_w2", "trainable_depth").rows())
    assert depth_of[0.5] == 0 and depth_of[1.76] == 6


def test_comparison_joins_every_sigma_w2_of_either_side(tiny):
    cutoffs = set(analysis.cutoffs_by_sigma(tiny).collect()["sigma_w2"])
    trainable = set(analysis.trainable_depth(tiny).collect()["sigma_w2"])
    comparison = analysis.comparison(tiny).collect()
    assert comparison.height == comparison.select(KEYS).n_unique()
    assert set(comparison["sigma_w2"]) == cutoffs | trainable
    both = comparison.filter(pl.col("sigma_w2").is_in(list(cutoffs & trainable)))
    assert both.height == len(cutoffs & trainable) == 3
    assert both["cutoff_kl_mean"].null_count() == 0 and both["trainable_depth"].null_count() == 0
    assert (both["chi_1"] < 1).to_list() == [s < CRITICAL for s in both["sigma_w2"]]


def test_agreement_on_tiny_results_has_one_row_per_measure(tiny):
    agreement = analysis.agreement(analysis.comparison(tiny))
    assert sorted(agreement["measure"]) == sorted(analysis.CUTOFF_MEASURES)
    assert (agreement["n_sigma_w2"] == 3).all()
    assert agreement["critical_sigma_w2"].to_numpy() == pytest.approx(CRITICAL, abs=1e-3)


def test_timing_on_tiny_results_sums_every_run(tiny):
    runs = tiny.scan("runs").collect()
    timing = analysis.timing(tiny).collect()
    assert timing["n_cascade"].sum() == (runs["kind"] == "cascade").sum()
    assert timing["n_baseline"].sum() == (runs["kind"] == "baseline").sum()
    assert timing["predicting_seconds"].sum() + timing["training_seconds"].sum() == pytest.approx(runs["seconds"].sum())
    total = analysis.timing_total(timing)
    assert total.height == 1
    assert total["speedup"][0] == pytest.approx(total["training_seconds"][0] / total["predicting_seconds"][0])


def test_inventory_of_complete_tiny_results_reports_nothing_missing(tiny):
    inventory = analysis.missing(tiny)
    assert inventory.problems() == []
    assert inventory.unreadable_files == ()
    assert inventory.rows["runs"] == 9 and inventory.rows["failures"] == 0
    assert inventory.coverage.height == 3
    assert (inventory.coverage["missing_trainings"] == 0).all()


def _assert_png(path: Path, min_width: int = 500, min_height: int = 350) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) > 20_000, f"{path} is only {len(data)} bytes"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
        assert width >= min_width and height >= min_height, (path, image.size)
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10, f"{path} is nearly blank"


def test_every_figure_is_drawn_from_tiny_results(tiny, tmp_path):
    critical = theory.critical_sigma_w2(0.05)
    cutoffs = analysis.cutoffs_by_sigma(tiny)
    curves = analysis.curves_by_sigma(tiny)
    mean_field = analysis.mean_field_frame(np.linspace(0.3, 3.2, 60), 0.05)
    figures = {
        "phase": plots.phase_diagram(
            analysis.accuracy_grid(tiny), cutoffs, mean_field, critical, analysis.trainable_depth(tiny)
        ),
        "entropy_map": plots.diff_entropy_map(curves, cutoffs, critical),
        "curves": plots.re_curves(curves, critical=critical, cutoffs=cutoffs),
        "images": plots.reconstructions_grid(tiny.scan("reconstructions"), critical=critical),
        "timing": plots.timing_bars(analysis.timing(tiny)),
    }
    for name, fig in figures.items():
        assert fig.axes[0].get_title() or fig.get_suptitle(), name
        png, pdf = plots.save(fig, tmp_path, name)
        _assert_png(png)
        assert pdf.read_bytes()[:5] == b"%PDF-"
    phase = figures["phase"].axes[0]
    assert "sigma_w" in phase.get_xlabel() and phase.get_legend() is not None
    assert len(figures["phase"].axes) == 2  # the heatmap and its colour bar


def test_a_frame_with_several_groups_must_be_narrowed(tiny):
    accuracy = analysis.accuracy_grid(tiny).collect()
    doubled = pl.concat([accuracy, accuracy.with_columns(dataset=pl.lit("other"))])
    with pytest.raises(ConfigError, match="several .*pass dataset="):
        plots.phase_diagram(doubled)
    assert plots.phase_diagram(doubled, dataset="other") is not None


def _run_analyze(*args):
    """``python jobs/analyze.py ARGS`` as a process, as a user runs it (the other tests call it in-process)."""
    return subprocess.run(
        [sys.executable, str(ANALYZE), *map(str, args)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def test_analyze_job_writes_figures_and_report(tiny_results, tmp_path):
    out = tmp_path / "analysis"
    result = _run_analyze(tiny_results, "--out", out)
    assert result.returncode == 0, result.stderr
    printed = [Path(line) for line in result.stdout.splitlines()]
    assert out / "report.md" in printed
    pngs = sorted(out.glob("*.png"))
    assert {p.stem.split("_mnist")[0] for p in pngs} == {
        "phase_diagram",
        "diff_entropy_map",
        "re_curves",
        "reconstructions",
        "timing",
        "budget_ladder",
        "epochs_heatmap",
    }
    for png in pngs:
        assert png in printed and png.with_suffix(".pdf").exists()
        _assert_png(png)
    report = (out / "report.md").read_text()
    for heading in (
        "## What the results hold",
        "## Agreement",
        "## Cutoff vs trainable depth",
        "## Time spent predicting vs training",
        "## Figures",
        "## Training budget: is ℓ_train converged?",
    ):
        assert heading in report
    assert "| mnist_t10k | wide | 0.05 | kl_mean |" in report
    assert "The truth compared against: mnist_t10k wide σb²=0.05: ℓ_train within 2 epochs" in report
    assert "9 of 9 planned tasks finished (cascade 3 of 3; baseline 6 of 6)" in report
    skipped = report.split("## Skipped")[1].strip().splitlines()  # only the optional information plane
    assert len(skipped) == 1 and "no 'info_plane' table yet" in skipped[0] and "--info-plane" in skipped[0]
    assert "## Information flow" not in report


def test_analyze_job_defaults_to_an_analysis_folder_inside_the_results(tiny_copy):
    result = analyze(tiny_copy)
    assert result.returncode == 0, result.stderr
    assert (tiny_copy / "analysis" / "report.md").exists()
    assert analysis.missing(analysis.open_results(tiny_copy)).problems() == []  # the folder still reads


def test_notebook_runs_top_to_bottom_on_tiny_results_with_the_information_plane(info_results, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(ROOT / "notebooks" / "analysis.ipynb", as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code[0].source.startswith("import os") and "RESULTS = os.environ.get(" in code[0].source
    assert all(not c.outputs for c in code), "store the notebook without outputs"
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    monkeypatch.setenv("INFOFLOW_RESULTS", str(info_results))
    nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(ROOT / "notebooks")}}
    ).execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 7  # the five figures of the RE analysis and the two of the information plane
    assert Path(notebook.cells[-1].outputs[0].text.strip()) == Path(sys.executable)  # the venv's kernel ran it


# ---------------------------------------------------------------- information plane and planned grid, real results


@pytest.fixture(scope="module")
def info_results(tmp_path_factory, ray_local) -> Path:
    """The tiny grid with the information-plane probes on (300 probe images, 2 epochs), run once for this module."""
    from infoflow_ray.sweep.driver import run_grid
    from infoflow_ray.sweep.grid import resolve_grid

    path = tmp_path_factory.mktemp("info") / "results"
    grid = resolve_grid(
        "tiny",
        overrides={
            "results": str(path),
            "sigma_w2": (0.5, 1.76, 3.0),
            "depths": (3, 6),
            "info_plane": {"enabled": True, "samples": 300},
            "train": {"max_epochs": 2},
        },
    )
    outcome = run_grid(grid, progress_interval_seconds=600)
    assert not outcome.failed, outcome.failed
    return path


INFO_COLUMNS = analysis.INFO_KEYS + [
    "i_xt_mean",
    "i_xt_std",
    "i_ty_mean",
    "i_ty_std",
    "n_seeds",
    "n_nonfinite",
    "seconds_mean",
    "ln_n",
]


def test_info_plane_points_have_the_documented_columns_and_every_sigma_w2(info_results):
    points = analysis.info_plane_points(analysis.open_results(info_results))
    assert isinstance(points, pl.LazyFrame)
    points = points.collect()
    assert points.columns == INFO_COLUMNS
    counted = [k for k in analysis.INFO_KEYS if k not in ("epoch", "step")]
    assert points.select(counted).null_count().sum_horizontal().item() == 0
    assert (points["epoch"].is_null() ^ points["step"].is_null()).all()  # each point in epochs or in SGD steps
    assert points["step"].is_null().all()  # the grid's probes count epochs
    assert points.select(analysis.INFO_KEYS).n_unique() == points.height
    untrained = points.filter(pl.col("stage") == "untrained")
    training = points.filter(pl.col("stage") == "training")
    for s in (0.5, 1.76, 3.0):
        assert sorted(untrained.filter(sigma_w2=s)["layer"]) == [1, 2, 3, 4, 5, 6]  # the cascade's network, L = 6
        for depth in (3, 6):  # epoch 0 (before training) and after each of the 2 epochs, every layer
            assert training.filter(sigma_w2=s, depth=depth).height == 3 * depth
    assert set(training["epoch"]) == {0, 1, 2} and set(untrained["epoch"]) == {0}
    assert (points["n_seeds"] == 1).all() and (points["n_samples"] == 300).all()
    assert (points["param"] == "n_bins=30").all()
    assert points["ln_n"].to_numpy() == pytest.approx(math.log(300))
    # binned I(X;T) of a deterministic network is H(T) <= ln N; I(T;Y) <= H(Y) <= ln 10 classes
    assert ((points["i_xt_mean"] >= 0) & (points["i_xt_mean"] <= points["ln_n"] + 1e-9)).all()
    assert ((points["i_ty_mean"] >= 0) & (points["i_ty_mean"] <= math.log(10) + 1e-9)).all()


def test_information_cutoffs_sit_beside_the_re_cutoffs(info_results):
    store = analysis.open_results(info_results)
    points = analysis.info_plane_points(store).collect()
    frame = analysis.information_cutoffs(points, analysis.cutoffs_by_sigma(store))
    assert frame["sigma_w2"].to_list() == [0.5, 1.76, 3.0]
    assert (frame["depth"] == 6).all() and (frame["last_layer"] == 6).all() and (frame["re_last_layer"] == 4).all()
    assert frame["threshold"].to_numpy() == pytest.approx(0.5 * math.log(300))
    assert frame["re_cutoff_kl_mean"].null_count() == 0
    for row in frame.iter_rows(named=True):  # the cutoff is the first layer below the threshold, or none is below
        curve = points.filter(stage="untrained", sigma_w2=row["sigma_w2"]).sort("layer")
        below = curve.filter(pl.col("i_xt_mean") < row["threshold"])["layer"]
        assert row["info_cutoff"] == (below.min() if len(below) else None)


def test_information_cutoff_of_a_known_curve():
    ln_n = math.log(1000)
    rows = [
        dict(
            dataset="synthetic",
            profile="wide",
            sigma_b2=0.05,
            sigma_w2=s,
            depth=8,
            stage="untrained",
            estimator="binning",
            param="n_bins=30",
            n_samples=1000,
            epoch=0,
            layer=layer,
            i_xt_mean=ln_n * decay**layer,
            n_seeds=2,
            ln_n=ln_n,
        )
        for s, decay in ((0.5, 0.6), (1.76, 0.99))
        for layer in range(1, 9)
    ]
    frame = analysis.information_cutoffs(pl.DataFrame(rows))
    assert frame["info_cutoff"].to_list() == [2, None]  # 0.6² = 0.36 < ½; 0.99⁸ = 0.92 never is
    assert frame["i_xt_last"].to_numpy() == pytest.approx([ln_n * 0.6**8, ln_n * 0.99**8])


def test_information_figures_are_drawn_from_real_results(info_results, tmp_path):
    store = analysis.open_results(info_results)
    critical = theory.critical_sigma_w2(0.05)
    points = analysis.info_plane_points(store)
    plane = plots.information_plane(points, critical=critical)
    panels = [ax for ax in plane.axes if ax.get_xlabel()]
    assert [ax.get_title() for ax in panels] == [
        f"{plots.SW2} = {s} ({phase})" for s, phase in (("0.5", "ordered"), ("1.76", "near-critical"), ("3", "chaotic"))
    ]
    assert len(plane.axes) == 4  # three σw² panels and the epoch colour bar
    assert "epoch" in plane.axes[-1].get_ylabel()
    assert all("(nats)" in ax.get_xlabel() for ax in panels) and "(nats)" in panels[0].get_ylabel()
    assert "L = 6" in plane.get_suptitle()  # the deepest trained network by default
    assert "L = 3" in plots.information_plane(points, critical=critical, depth=3).get_suptitle()
    with pytest.raises(ConfigError, match="no training trajectories at depth 4; present: \\[3, 6\\]"):
        plots.information_plane(points, depth=4)
    flow = plots.mi_vs_layer(
        points, analysis.curves_by_sigma(store), critical=critical, cutoffs=analysis.cutoffs_by_sigma(store)
    )
    left, right = flow.axes
    assert "(nats)" in left.get_ylabel() and "(nats)" in right.get_ylabel()
    assert len(left.get_legend().get_texts()) == 3 + 4  # three σw², ln N, ½ ln N, the I(T;Y) and cutoff styles
    for name, fig in (("plane", plane), ("flow", flow)):
        png, pdf = plots.save(fig, tmp_path, name)
        _assert_png(png)
        assert pdf.read_bytes()[:5] == b"%PDF-"


def test_analyze_job_draws_the_information_figures(info_results, tmp_path):
    out = tmp_path / "analysis"
    result = analyze(info_results, "--out", out)
    assert result.returncode == 0, result.stderr
    printed = [Path(line) for line in result.stdout.splitlines()]
    for stem in ("information_plane", "mi_vs_layer"):
        png = out / f"{stem}_mnist_t10k_wide_sb0.05.png"
        assert png in printed and png.with_suffix(".pdf") in printed
        _assert_png(png)
    report = (out / "report.md").read_text()
    assert "## Information flow" in report and "information_plane_mnist_t10k_wide_sb0.05.png" in report
    table = report.split("## Information flow")[1]
    assert "| mnist_t10k | wide | 0.5 | ordered | binning | 300 | 2.85 |" in table
    assert "| mnist_t10k | wide | 3 | chaotic | binning | 300 | 2.85 |" in table
    assert "## Skipped" not in report


def test_planned_grid_says_how_many_tasks_finished(info_results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(info_results, copy)
    store = analysis.open_results(copy)
    assert analysis.missing(store).progress() == "9 of 9 planned tasks finished (cascade 3 of 3; baseline 6 of 6)"
    runs = store.scan("runs").collect()
    victim = runs.filter(kind="baseline", sigma_w2=1.76, depth=6).row(0, named=True)
    (copy / "runs" / "mnist_t10k" / f"{victim['task_id']}.parquet").unlink()

    inventory = analysis.missing(store)
    assert inventory.grids == ("tiny",) and inventory.unplanned == 0
    assert inventory.progress() == ("8 of 9 planned tasks finished (cascade 3 of 3; baseline 5 of 6, 1 not run yet)")
    assert inventory.problems() == [
        "mnist_t10k/wide σb²=0.05: σw² 1.76: 1 of 2 baseline tasks finished (missing depth(s) 6, seed(s) 0)"
    ]
    from infoflow_ray.analysis import report as job

    plan = job.plan_table(inventory.plan)
    assert plan.select("sigma_w2", "cascade", "baseline", "failed", "not_run").rows() == [
        (0.5, "1 of 1", "2 of 2", 0, 0),
        (1.76, "1 of 1", "1 of 2", 0, 1),
        (3.0, "1 of 1", "2 of 2", 0, 0),
    ]
    report = "\n\n".join(job.report_sections(inventory, None, None, None, None, job.Analysis(tmp_path)))
    assert "8 of 9 planned tasks finished" in report
    assert "| mnist_t10k | wide | 0.05 | 1.76 | 1 of 1 | 1 of 2 | 0 | 1 |" in report

    store.write_failure(
        victim["task_id"],
        1,
        dict(
            kind="baseline", dataset="mnist_t10k", sigma_w2=1.76, depth=6, seed=0, error="RuntimeError: out of memory"
        ),
    )
    inventory = analysis.missing(store)
    assert inventory.progress() == "8 of 9 planned tasks finished (cascade 3 of 3; baseline 5 of 6, 1 failed)"
    assert "(missing depth(s) 6, seed(s) 0; 1 failed)" in inventory.problems()[0]

    (copy / "_grids" / "damaged-0.json").write_text('{"name": "damaged", "tas')
    inventory = analysis.missing(store)
    assert not inventory.planned and "planned-grid records in _grids/ are unreadable" in inventory.problems()[0]

    shutil.rmtree(copy / "_grids")  # results written before the driver recorded its grids
    inventory = analysis.missing(store)
    assert not inventory.planned and inventory.progress().startswith("No planned grid is recorded")
    assert not any("of 2 baseline tasks" in p for p in inventory.problems())
    assert any("1 task(s) failed" in p for p in inventory.problems())


# ------------------------------------------------------------------------------ hand-made results, known answer

SIGMA_W2 = [0.5, 1.0, 1.5, 1.76, 2.0, 2.5, 3.0]
TRAINABLE = {0.5: 5, 1.0: 10, 1.5: 15, 1.76: 20, 2.0: 15, 2.5: 10, 3.0: 5}  # peaks at 1.76
DEPTHS = [5, 10, 15, 20, 25]
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _keys(tid, sigma_w2, depth, seed, dataset="synthetic"):
    return dict(task_id=tid, dataset=dataset, profile="wide", sigma_w2=sigma_w2, sigma_b2=0.05, depth=depth, seed=seed)


def _runs_row(keys, kind, seconds):
    return {
        **keys,
        "kind": kind,
        "grid_name": "handmade",
        "status": "ok",
        "config_json": json.dumps(keys),
        "package_version": "0.1.0",
        "git_commit": "abc",
        "torch_version": "2.5",
        "ray_version": "2.40",
        "python_version": "3.11",
        "hostname": "h",
        "node_id": "n",
        "device": "cpu",
        "started_at": T0,
        "finished_at": T0,
        "seconds": seconds,
        "attempts": 1,
    }


def write_cascade(store, sigma_w2, seed, cutoff, depth=25):
    keys = _keys(f"c-{sigma_w2}-{seed}-{depth}", sigma_w2, depth, seed)
    cutoffs = [
        {
            **keys,
            "measure": m,
            "cutoff_layer": float(cutoff),
            "cutoff_std": 0.5 if m == "kl_per_image" else math.nan,
            "saturated": True,
            "finite": True,
            "last_layer": depth - 2,
            "rtol": 0.005,
            "atol": 1e-8,
        }
        for m in analysis.CUTOFF_MEASURES
    ]
    curves = [
        {
            **keys,
            "layer": layer,
            "measure": m,
            "value": -float(layer) if m == "diff_entropy" else layer / 10,
            "finite": True,
        }
        for m in ("kl_mean", "diff_entropy")
        for layer in range(depth + 1)
    ]
    images = [
        {
            **keys,
            "image_index": 0,
            "layer": layer,
            "height": 4,
            "width": 4,
            "pixels": np.linspace(0, 1, 16, dtype=np.float32).tolist(),
        }
        for layer in range(depth + 1)
    ]
    store.write_task(
        keys["task_id"],
        "synthetic",
        {"cutoffs": cutoffs, "curves": curves, "reconstructions": images, "runs": [_runs_row(keys, "cascade", 2.0)]},
    )


def write_training(store, sigma_w2, depth, seed, reached):
    keys = _keys(f"b-{sigma_w2}-{depth}-{seed}", sigma_w2, depth, seed)
    accuracy = 0.9 if reached else 0.1
    summary = {
        **keys,
        "loss_fn": "logits",
        "epochs": 3,
        "best_test_accuracy": accuracy,
        "final_test_accuracy": accuracy,
        "accuracy_threshold": 0.4,
        "reached_threshold": reached,
        "stop_reason": "threshold" if reached else "budget",
        "seconds": 9.0,
        "resumed_from_epoch": 0,
        "threshold_epoch": 3 if reached else None,
    }
    store.write_task(
        keys["task_id"], "synthetic", {"train_summary": [summary], "runs": [_runs_row(keys, "baseline", 10.0)]}
    )


@pytest.fixture
def handmade(tmp_path):
    """Cutoffs T(σw²) − 3 and T(σw²) − 1 in seeds 0 and 1; trainings reach the threshold up to depth T(σw²)."""
    store = ResultStore.open(str(tmp_path / "handmade"))
    for s, depth in TRAINABLE.items():
        for seed, offset in ((0, -3), (1, -1)):
            write_cascade(store, s, seed, depth + offset)
            for d in DEPTHS:
                write_training(store, s, d, seed, reached=d <= depth)
    return store


def test_known_answer_peaks_at_the_chosen_sigma_w2_with_rank_correlation_one(handmade):
    comparison = analysis.comparison(handmade).collect()
    assert comparison["sigma_w2"].to_list() == SIGMA_W2
    assert comparison["trainable_depth"].to_list() == [TRAINABLE[s] for s in SIGMA_W2]
    assert comparison["cutoff_kl_mean"].to_list() == [TRAINABLE[s] - 2.0 for s in SIGMA_W2]
    assert comparison["cutoff_kl_mean_std"].to_numpy() == pytest.approx(math.sqrt(2))
    assert (comparison["deepest_trained"] == 25).all() and (comparison["n_trained"] == 10).all()

    agreement = analysis.agreement(comparison)
    assert agreement.height == len(analysis.CUTOFF_MEASURES)
    assert agreement["spearman"].to_numpy() == pytest.approx(1.0)
    assert (agreement["n_sigma_w2"] == len(SIGMA_W2)).all()
    assert agreement["cutoff_peak_sigma_w2"].to_list() == [1.76] * 4
    assert agreement["trainable_peak_sigma_w2"].to_list() == [1.76] * 4
    assert agreement["trainable_peak"].to_list() == [20.0] * 4
    assert agreement["cutoff_peak_minus_critical"].to_numpy() == pytest.approx(1.76 - CRITICAL, abs=1e-3)


def test_anti_correlated_cutoffs_give_rank_correlation_minus_one(tmp_path):
    store = ResultStore.open(str(tmp_path / "anti"))
    for s, depth in TRAINABLE.items():
        write_cascade(store, s, 0, 30 - depth)
        for d in DEPTHS:
            write_training(store, s, d, 0, reached=d <= depth)
    agreement = analysis.agreement(analysis.comparison(store))
    assert agreement["spearman"].to_numpy() == pytest.approx(-1.0)
    assert agreement["cutoff_peak_sigma_w2"].null_count() == 4  # two separate maxima (0.5 and 3): no single peak
    assert agreement["cutoff_peak_lo"].to_list() == [0.5] * 4 and agreement["cutoff_peak_hi"].to_list() == [3.0] * 4


def test_known_answer_timing_and_trainable_depth_over_seeds(handmade):
    trainable = analysis.trainable_depth(handmade).collect()
    assert (trainable["n_seeds"] == 2).all() and (trainable["trainable_depth_std"] == 0).all()
    timing = analysis.timing(handmade).collect()
    assert (timing["predicting_seconds"] == 4.0).all() and (timing["training_seconds"] == 100.0).all()
    assert timing["speedup"].to_list() == [25.0] * len(SIGMA_W2)
    assert analysis.timing_total(timing)["speedup"].to_list() == [25.0]


def test_nothing_trainable_ranks_as_depth_zero_and_has_no_peak(tmp_path):
    store = ResultStore.open(str(tmp_path / "none"))
    for s in (0.5, 1.76, 3.0):
        write_cascade(store, s, 0, 10)
        write_training(store, s, 5, 0, reached=False)
    trainable = analysis.trainable_depth(store).collect()
    assert trainable["trainable_depth"].to_list() == [0, 0, 0]
    assert not trainable["any_trainable"].any()
    agreement = analysis.agreement(analysis.comparison(store))
    assert agreement["trainable_peak_sigma_w2"].is_null().all()
    assert agreement["cutoff_peak_sigma_w2"].is_null().all()  # flat: every σw² ties
    assert agreement["spearman"].is_nan().all()  # constant on both sides


def test_the_deepest_cascade_of_a_sigma_w2_is_used(handmade):
    write_cascade(handmade, 1.76, 0, 5, depth=10)  # a shallower grid in the same folder
    cutoffs = analysis.cutoffs_by_sigma(handmade).collect().filter(pl.col("sigma_w2") == 1.76)
    assert (cutoffs["depth"] == 25).all() and (cutoffs["cutoff_mean"] == 18.0).all()


def test_phase_diagram_of_the_known_answer(handmade, tmp_path):
    """What the figure draws is the known answer: the accuracy cells (0.9 up to T(σw²), 0.1 deeper), ℓ_train = T,
    the cutoffs' mean T − 2 with std √2 over the two seeds, 6ξ_c from theory and the critical line at σw²_c."""
    critical = float(theory.critical_sigma_w2(0.05))
    sigma_grid = np.linspace(0.3, 3.2, 60)  # 60 points: ξ_c is a bisection per point, 300 took ~10 s
    fig = plots.phase_diagram(
        analysis.accuracy_grid(handmade),
        analysis.cutoffs_by_sigma(handmade),
        analysis.mean_field_frame(sigma_grid, 0.05),
        critical,
        analysis.trainable_depth(handmade),
        measures=("kl_mean",),
    )
    ax = fig.axes[0]
    cells = np.ma.getdata(ax.collections[0].get_array()).reshape(len(DEPTHS), len(SIGMA_W2))
    assert cells.tolist() == [[0.9 if d <= TRAINABLE[s] else 0.1 for s in SIGMA_W2] for d in DEPTHS]
    lines = {line.get_label(): line for line in ax.get_lines()}
    train = next(line for label, line in lines.items() if label.startswith("trainable depth"))
    assert train.get_xdata().tolist() == SIGMA_W2 and train.get_ydata().tolist() == [TRAINABLE[s] for s in SIGMA_W2]
    (critical_line,) = [line for label, line in lines.items() if label.startswith("mean-field critical")]
    assert critical_line.get_xdata()[0] == pytest.approx(critical)
    xi = lines[r"mean field $6\,\xi_c$"]
    assert np.asarray(xi.get_xdata()) == pytest.approx(sigma_grid)
    assert np.asarray(xi.get_ydata()) == pytest.approx(np.nan_to_num(6 * theory.xi_c(sigma_grid, 0.05), posinf=1e9))
    (cutoffs,) = [c for c in ax.containers if c.get_label().startswith("cutoff")]
    data_line, _, (bars,) = cutoffs.lines
    assert data_line.get_ydata().tolist() == [TRAINABLE[s] - 2.0 for s in SIGMA_W2]
    spans = [segment[1, 1] - segment[0, 1] for segment in bars.get_segments()]
    assert spans == pytest.approx([2 * math.sqrt(2)] * len(SIGMA_W2))  # ± the std of cutoffs T − 3 and T − 1
    _assert_png(plots.save(fig, tmp_path, "phase")[0])


# ------------------------------------------------------------------------------------ partial, missing, corrupt


def test_partial_results_say_what_is_missing(tmp_path):
    store = ResultStore.open(str(tmp_path / "partial"))
    for s in (0.5, 1.76, 3.0):
        write_cascade(store, s, 0, 10)
    for d in (5, 10):
        write_training(store, 0.5, d, 0, reached=True)
    write_training(store, 1.76, 5, 0, reached=True)
    write_training(store, 2.5, 5, 0, reached=False)  # trained, no cascade yet
    inventory = analysis.missing(store)
    problems = "\n".join(inventory.problems())
    assert "σw² 3 have cutoffs but no trainings" in problems
    assert "σw² 2.5 have trainings but no cutoffs" in problems
    assert "σw² 1.76 lacks 1 training(s) at depth(s) 10" in problems
    comparison = analysis.comparison(store).collect()
    assert comparison["sigma_w2"].to_list() == [0.5, 1.76, 2.5, 3.0]  # full join: either side
    assert comparison.filter(pl.col("sigma_w2") == 3.0)["trainable_depth"].to_list() == [None]
    assert comparison.filter(pl.col("sigma_w2") == 2.5)["cutoff_kl_mean"].to_list() == [None]
    agreement = analysis.agreement(comparison)
    assert (agreement["n_sigma_w2"] == 2).all()


def test_failed_tasks_are_reported(handmade):
    handmade.write_failure(
        "b-x",
        1,
        dict(kind="baseline", dataset="synthetic", sigma_w2=4.0, depth=5, seed=0, error="RuntimeError: out of memory"),
    )
    problems = analysis.missing(handmade).problems()
    assert any("1 task(s) failed" in p and "out of memory" in p for p in problems)


def test_an_empty_folder_is_not_a_results_folder(tmp_path):
    with pytest.raises(ResultsError, match="not an infoflow results folder"):
        analysis.open_results(tmp_path)
    result = analyze(tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not an infoflow results folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_location_exits_2_with_one_line(tmp_path):
    result = analyze(tmp_path / "nowhere")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "does not exist" in result.stderr


def test_a_results_folder_with_no_tasks_yet(tmp_path):
    store = ResultStore.open(str(tmp_path / "new"))
    with pytest.raises(ResultsError, match=r"no 'cutoffs' table yet; cascade tasks write it"):
        analysis.cutoffs_by_sigma(store)
    assert set(analysis.missing(store).absent) == {
        "runs",
        "curves",
        "cutoffs",
        "reconstructions",
        "train_epochs",
        "train_summary",
    }
    result = analyze(tmp_path / "new", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "None could be drawn" in (tmp_path / "out" / "report.md").read_text()


def test_an_absent_table_is_named_and_the_other_figures_are_still_drawn(tiny_copy, tmp_path):
    shutil.rmtree(tiny_copy / "train_summary")
    store = analysis.open_results(tiny_copy)
    with pytest.raises(ResultsError, match=r"no 'train_summary' table yet; baseline trainings write it") as e:
        analysis.trainable_depth(store)
    assert "\n" not in str(e.value)
    out = tmp_path / "out"
    result = analyze(tiny_copy, "--out", out)
    assert result.returncode == 0, result.stderr
    assert not list(out.glob("phase_diagram_*"))
    assert list(out.glob("diff_entropy_map_*.png")) and list(out.glob("timing_*.png"))
    report = (out / "report.md").read_text()
    assert "table 'train_summary' has no rows" in report and "## Skipped" in report
    assert "skipped phase_diagram" in result.stderr


def test_a_truncated_file_is_skipped_counted_and_reported(tiny_copy, tmp_path):
    victim = sorted((tiny_copy / "cutoffs").rglob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    store = analysis.open_results(tiny_copy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptFileWarning)
        inventory = analysis.missing(store)
        assert analysis.cutoffs_by_sigma(store).collect()["sigma_w2"].n_unique() == 2
    assert inventory.unreadable_files == (str(victim),)
    problems = "\n".join(inventory.problems())
    assert "1 unreadable (truncated or corrupt) file(s) skipped" in problems
    assert "finished cascade runs whose cutoffs are unreadable" in problems
    with pytest.warns(CorruptFileWarning, match="skipping unreadable results file"):
        analysis.cutoffs_by_sigma(store)
    out = tmp_path / "out"
    result = analyze(tiny_copy, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "1 unreadable (truncated or corrupt) file(s) skipped" in (out / "report.md").read_text()


def test_representative_sigma_w2_and_regimes():
    assert analysis.representative_sigma_w2([3.0, 0.5, 1.5, 1.76, 2.0], CRITICAL) == [0.5, 1.76, 3.0]
    assert analysis.representative_sigma_w2([1.0], CRITICAL) == [1.0]
    assert [analysis.regime_of(s, CRITICAL) for s in (0.5, 1.76, 3.0)] == ["ordered", "near-critical", "chaotic"]


def test_execution_lanes_rebuild_what_each_slot_did_from_start_and_finish_times():
    from datetime import timedelta

    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def call(kind, start, finish):
        return {
            "kind": kind,
            "node_id": "n1",
            "started_at": t0 + timedelta(seconds=start),
            "finished_at": t0 + timedelta(seconds=finish),
        }

    # two tasks trained together in one call (same times), a short cascade, then two baselines
    runs = pl.DataFrame(
        [
            call("cascade", 0, 10),
            call("cascade", 0, 10),
            call("cascade", 2, 6),
            call("baseline", 7, 12),
            call("baseline", 10, 20),
        ]
    )
    lanes = analysis.execution_lanes(runs)
    assert lanes["lane"].to_list() == [0, 1]
    assert lanes["calls"].to_list() == [2, 2] and lanes["tasks"].to_list() == [3, 2]
    assert lanes["busy_seconds"].to_list() == [20.0, 9.0]  # (0–10, 10–20) and (2–6, 7–12)
    assert lanes["gap_seconds"].to_list() == [0.0, 1.0]
    assert lanes["kind"].to_list() == ["baseline+cascade", "baseline+cascade"]
    summary = analysis.utilisation(runs)
    assert summary["lanes"] == 2 and summary["tasks"] == 5 and summary["calls"] == 4
    assert summary["utilisation"] == pytest.approx(29 / 40) and summary["idle_seconds"] == pytest.approx(11)
    assert analysis.utilisation(runs, wall_seconds=40)["utilisation"] == pytest.approx(29 / 80)


def test_utilisation_of_the_tiny_run_never_shows_more_slots_than_the_cluster_has(tiny):
    runs = tiny.scan("runs").collect()
    summary = analysis.utilisation(runs)
    assert 1 <= summary["lanes"] <= 2  # the session's local Ray has 2 CPUs; each task asks for one
    assert summary["tasks"] == runs.height
    assert 0 < summary["utilisation"] <= 1

"""The orchestrator on a real local Ray: the tiny grid end to end, resume, and a killed cascade actor."""

import math
import os
import signal
import threading
import time

import polars as pl
import pyarrow.parquet as pq
import pytest

from infoflow_ray.store import TABLES, ResultStore
from infoflow_ray.sweep.cascade_pool import PoolSize, run_cascade_pool
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.grid import resolve_grid
from infoflow_ray.sweep.progress import Progress


def _tiny(results):
    return resolve_grid("tiny", overrides={"results": str(results)})


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet") if "_tune" not in p.parts}


def test_tiny_grid_writes_every_table_with_its_schema_and_one_row_set_per_task(tiny_results):
    grid = _tiny(tiny_results)
    store = ResultStore.open(str(tiny_results), create=False)
    tasks = grid.tasks()
    cascades = [t for t in tasks if t.kind == "cascade"]
    baselines = [t for t in tasks if t.kind == "baseline"]
    L = grid.deepest

    runs = store.scan("runs").collect()
    assert sorted(runs["task_id"]) == sorted(t.task_id for t in tasks)
    assert set(runs["status"]) <= {"ok", "nonfinite", "diverged"}
    for table, schema in TABLES.items():
        frame = store.scan(table).collect()
        assert frame.columns == schema.names, table

    cutoffs = store.scan("cutoffs").collect()
    assert cutoffs.height == len(cascades) * 4
    assert set(cutoffs["measure"]) == {"kl_mean", "kl_median_normalised", "diff_entropy", "kl_per_image"}
    assert cutoffs.filter(pl.col("finite"))["cutoff_layer"].is_between(1, L).all()

    curves = store.scan("curves").collect()
    per_cascade = 4 * (L + 1) + L  # four curves over layers 0..L, decoder loss over 1..L
    assert curves.height == len(cascades) * per_cascade
    kl0 = curves.filter((pl.col("measure") == "kl_mean") & (pl.col("layer") == 0))["value"]
    assert (kl0 == 0).all()  # layer 0 is the input compared with itself

    summary = store.scan("train_summary").collect()
    assert sorted(summary["task_id"]) == sorted(t.task_id for t in baselines)
    epochs = store.scan("train_epochs").collect()
    assert epochs.height == summary["epochs"].sum()
    assert epochs.group_by("task_id").agg(pl.col("epoch").n_unique() == pl.len()).to_series(1).all()

    images = store.scan("reconstructions").collect()
    assert images.height > 0 and (images["height"] * images["width"] == 784).all()
    assert images.filter(pl.col("layer") == 0).height == len(cascades) * grid.cascade.stored_images


def test_tiny_grid_cutoffs_and_training_carry_real_signal(tiny_results):
    store = ResultStore.open(str(tiny_results), create=False)
    runs = store.scan("runs").collect()
    assert (runs["seconds"] > 0).all() and runs["node_id"].str.len_chars().min() > 0
    accuracy = store.scan("train_summary").collect()["best_test_accuracy"]
    assert accuracy.max() > 0.2  # real training on real data beats chance (0.1) within the tiny budget
    loss = store.scan("curves").filter(pl.col("measure") == "decoder_loss").collect()
    assert loss["value"].is_finite().all()
    first = loss.filter(pl.col("layer") == 1)["value"]
    assert (first < 0.1).all()  # the first decoder learned to reconstruct the input (pixels in [0, 1])


def test_rerun_skips_every_finished_task_and_rewrites_nothing(tiny_copy):
    before = _mtimes(tiny_copy)
    outcome = run_grid(_tiny(tiny_copy))
    assert outcome.skipped == outcome.total and not outcome.failed
    assert _mtimes(tiny_copy) == before


def test_resume_after_losing_outputs_restores_them_once_without_recomputing_the_rest(tiny_copy):
    store = ResultStore.open(str(tiny_copy), create=False)
    runs = store.scan("runs").collect()
    lost = [runs.filter(pl.col("kind") == k)["task_id"][0] for k in ("cascade", "baseline")]
    for task_id in lost:
        for path in tiny_copy.rglob(f"{task_id}.parquet"):
            path.unlink()
    kept = _mtimes(tiny_copy)
    outcome = run_grid(_tiny(tiny_copy))
    assert not outcome.failed
    after = ResultStore.open(str(tiny_copy), create=False)
    runs_after = after.scan("runs").collect()
    assert sorted(runs_after["task_id"]) == sorted(runs["task_id"])  # every task exactly once
    assert {p: m for p, m in _mtimes(tiny_copy).items() if p in kept} == kept  # nothing finished was redone
    for table in ("cutoffs", "train_summary"):
        ids = after.scan(table).collect()["task_id"]
        assert ids.is_duplicated().sum() == 0 or table == "cutoffs"
    assert after.scan("cutoffs").collect().group_by("task_id", "measure").len()["len"].max() == 1


@pytest.mark.parametrize("group", [None, 3])
def test_killing_a_cascade_actor_mid_task_loses_and_duplicates_nothing(tmp_path, ray_local, group):
    grid = resolve_grid("tiny", overrides={"results": str(tmp_path / "r"), "kinds": ("cascade",),
                                           "sigma_w2": (0.5, 1.0, 1.5, 1.76, 2.5, 3.0), "depths": (8,)})
    store = ResultStore.open(grid.results)
    tasks = grid.tasks()
    killed = []

    def kill_one_soon(workers):
        pid = ray_local.get(workers[0].pid.remote())

        def kill():
            time.sleep(2.0)  # the worker is inside its first task by now
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        threading.Thread(target=kill, daemon=True).start()

    finished = run_cascade_pool(tasks, results=grid.results, grid_name="kill-test",
                                size=PoolSize(workers=2, cpus=1, gpus=0), max_attempts=3, store=store,
                                progress=Progress(("cascade",), interval_seconds=600),
                                on_worker_started=kill_one_soon, group=group)
    assert killed
    assert set(finished) == {t.task_id for t in tasks}
    runs = store.scan("runs").collect()
    assert sorted(runs["task_id"]) == sorted(t.task_id for t in tasks)
    assert runs["attempts"].max() >= 2  # the killed task ran again
    assert store.scan("cutoffs").collect().group_by("task_id", "measure").len()["len"].max() == 1


def test_nonfinite_results_are_stored_flagged_not_dropped(tmp_path, ray_local):
    from infoflow_ray.sweep.tasks import cascade_rows
    from infoflow_ray.predict import predict_trainability
    from infoflow_ray.data import load_dataset
    grid = resolve_grid("tiny", overrides={"results": str(tmp_path / "r"), "kinds": ("cascade",)})
    task = grid.tasks()[0]
    data = load_dataset("synthetic", n_inputs=784)
    prediction = predict_trainability(task.network, task.cascade, data, task.seed, "cpu")
    prediction.kl_per_image[2, 0] = float("nan")
    rows = cascade_rows(task, prediction)
    bad = [r for r in rows["curves"] if not r["finite"]]
    assert bad == []  # kl_mean is stored from the prediction's own arrays; flagging follows the values
    prediction.kl_mean[3] = float("nan")
    rows = cascade_rows(task, prediction)
    flagged = [r for r in rows["curves"] if not r["finite"]]
    assert [(r["measure"], r["layer"]) for r in flagged] == [("kl_mean", 3)]


def test_results_files_are_plain_parquet_readable_without_infoflow(tiny_results):
    files = [p for p in tiny_results.rglob("*.parquet") if "_tune" not in p.parts]
    assert files and all(pq.read_metadata(p).num_rows >= 1 for p in files)
    frame = pl.scan_parquet(str(tiny_results / "cutoffs" / "**" / "*.parquet")).collect()
    assert frame.height > 0


def test_info_plane_metrics_are_one_flag_away_and_land_in_their_table(tmp_path, ray_local):
    from infoflow_ray.store import TABLES
    grid = resolve_grid("tiny", overrides={
        "results": str(tmp_path / "r"), "sigma_w2": (0.5, 1.76), "depths": (3,), "cascade_depth": 4,
        "train": {"max_epochs": 2, "stop_at_threshold": False},
        "info_plane": {"enabled": True, "samples": 300, "extended_networks": 3, "stopper": "mi", "patience": 5}})
    outcome = run_grid(grid, progress_interval_seconds=600)
    assert not outcome.failed
    store = ResultStore.open(grid.results, create=False)
    info = store.scan("info_plane").collect()
    assert info.columns == TABLES["info_plane"].names
    untrained = info.filter(pl.col("phase") == "untrained")
    assert untrained.group_by("task_id", "estimator").len()["len"].to_list() == [4] * 4  # 4 layers each
    assert set(untrained["estimator"]) == {"binning", "binning_extended"}
    trajectory = info.filter(pl.col("phase") == "training")
    assert sorted(set(trajectory["epoch"])) == [0, 1, 2] and set(trajectory["layer"]) == {1, 2, 3}
    assert (info["i_xt"] <= math.log(300) + 1e-9).all() and (info["i_xt"] >= 0).all()
    summary = store.scan("train_summary").collect()
    assert set(summary["stop_reason"]) <= {"budget", "mi_plateau", "threshold"}


def test_batched_baseline_groups_give_the_same_trainings_as_one_network_per_trial(tmp_path, tiny_results):
    grid = resolve_grid("tiny", overrides={"results": str(tmp_path / "r"), "kinds": ("baseline",),
                                           "resources": {"baseline_group": 3}})
    outcome = run_grid(grid, progress_interval_seconds=600)
    assert not outcome.failed
    grouped = ResultStore.open(grid.results, create=False)
    single = ResultStore.open(str(tiny_results), create=False)
    got = grouped.scan("train_epochs").collect().sort("task_id", "epoch")
    want = single.scan("train_epochs").collect().sort("task_id", "epoch")
    assert got["task_id"].to_list() == want["task_id"].to_list()  # the same tasks, each exactly once
    for column in ("train_loss", "test_loss", "test_accuracy"):
        assert (got[column] - want[column]).abs().max() < 1e-3, column  # float32 summation order only
    assert sorted(grouped.scan("runs").collect()["task_id"]) == sorted(
        t.task_id for t in grid.tasks())


def test_cascades_trained_together_on_one_actor_give_the_results_of_one_task_per_call(tmp_path, tiny_results):
    """Three tiny cascades in one lockstep group (one call, stacked matmuls) against the session's run of the
    same tasks one per call (layerwise): the same task ids, the same cutoffs, curves equal to float round-off."""
    grid = resolve_grid("tiny", overrides={"results": str(tmp_path / "r"), "kinds": ("cascade",),
                                           "cascade": {"strategy": "lockstep"},
                                           "resources": {"cascade_group": 3, "cascade_workers": 1}})
    outcome = run_grid(grid, progress_interval_seconds=600)
    assert not outcome.failed
    grouped = ResultStore.open(grid.results, create=False)
    single = ResultStore.open(str(tiny_results), create=False)
    runs = grouped.scan("runs").collect()
    assert runs.height == 3 and runs["sigma_w2"].n_unique() == 3
    assert runs["started_at"].n_unique() == 1  # all three ran in one call
    ids = runs["task_id"].to_list()
    key = ["task_id", "measure"]
    got = grouped.scan("cutoffs").collect().sort(key)
    want = single.scan("cutoffs").filter(pl.col("task_id").is_in(ids)).collect().sort(key)
    assert got.select(key).equals(want.select(key))
    assert got["cutoff_layer"].fill_nan(-1).to_list() == want["cutoff_layer"].fill_nan(-1).to_list()
    curve_key = ["task_id", "measure", "layer"]
    got_curves = grouped.scan("curves").filter(pl.col("measure") == "kl_mean").collect().sort(curve_key)
    want_curves = single.scan("curves").filter((pl.col("measure") == "kl_mean") & pl.col("task_id").is_in(ids)) \
        .collect().sort(curve_key)
    assert got_curves.height == want_curves.height > 0
    assert ((got_curves["value"] - want_curves["value"]).abs() <= 1e-3 * want_curves["value"].abs() + 1e-6).all()

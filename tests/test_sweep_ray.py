"""The orchestrator on a real local Ray: the tiny grid end to end, resume, and a killed cascade actor."""

import dataclasses
import math
import os
import signal
import threading
import time

import polars as pl
import pyarrow.parquet as pq
import pytest
from results_science import KEYS, science

from infoflow_ray.store import TABLES, ResultStore
from infoflow_ray.sweep.cascade_pool import PoolSize, run_cascade_pool
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.grid import resolve_grid
from infoflow_ray.sweep.progress import Progress
from infoflow_ray.training import mi_stopping


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
    """The tiny grid's numbers are science, not noise: the layer-1 decoders reconstruct their training images
    clearly better than the best constant image (their mean), and the networks near and above criticality train
    far above chance within two epochs while the ordered ones (σw² = 0.5) stay near it."""
    from infoflow_ray.sweep.task_runner import load_task_data

    grid = _tiny(tiny_results)
    store = ResultStore.open(str(tiny_results), create=False)
    runs = store.scan("runs").collect()
    assert (runs["seconds"] > 0).all() and runs["node_id"].str.len_chars().min() > 0
    loss = store.scan("curves").filter(pl.col("measure") == "decoder_loss").collect()
    assert loss["value"].is_finite().all()
    # decoder_loss is the MSE per pixel over the last (here: the only) epoch on the grid's training images; the
    # best constant prediction of those 3,000 images is their mean image. Measured: mean-image MSE 0.0633, layer-1
    # decoder loss 0.0461 (σw² 0.5), 0.0435 (1.76), 0.0452 (3): ratios 0.69–0.73. A decoder that learned only
    # the mean image, or nothing (a constant 0.5: 0.088), fails.
    train_x = load_task_data("mnist_t10k", grid.data, "cpu").train_x
    mean_image_mse = (train_x - train_x.mean(dim=0)).square().mean().item()
    first = loss.filter(pl.col("layer") == 1)["value"]
    assert first.len() == 3 and (first < 0.8 * mean_image_mse).all(), (first.to_list(), mean_image_mse)
    # best test accuracy (chance 0.1), measured: σw² 1.76: 0.2825 (L=3), 0.478 (L=6); σw² 3: 0.264, 0.4215 (both
    # depth-6 trainings stopped at the 0.4 threshold); σw² 0.5 (ordered): 0.1285, 0.142.
    summary = store.scan("train_summary").collect()
    trainable = summary.filter(pl.col("sigma_w2") >= 1.76)
    ordered = summary.filter(pl.col("sigma_w2") == 0.5)
    assert trainable.height == 4 and ordered.height == 2
    assert (trainable["best_test_accuracy"] > 0.2).all(), trainable["best_test_accuracy"].to_list()
    assert trainable["reached_threshold"].sum() >= 2  # at least half reach the grid's 0.4
    assert (ordered["best_test_accuracy"] < 0.2).all(), ordered["best_test_accuracy"].to_list()


def test_rerun_skips_every_finished_task_and_rewrites_nothing(tiny_copy):
    before = _mtimes(tiny_copy)
    outcome = run_grid(_tiny(tiny_copy))
    assert outcome.skipped == outcome.total and not outcome.failed
    assert _mtimes(tiny_copy) == before


def test_resume_after_losing_outputs_restores_them_once_without_recomputing_the_rest(tiny_copy):
    """Delete every file of one cascade and one baseline task: the re-run computes exactly those two again, touches
    nothing else, and every table (cutoffs included) then holds each key once with the undisturbed run's values."""
    store = ResultStore.open(str(tiny_copy), create=False)
    undisturbed = science(store)
    runs = store.scan("runs").collect()
    lost = [runs.filter(pl.col("kind") == k)["task_id"][0] for k in ("cascade", "baseline")]
    for task_id in lost:
        for path in tiny_copy.rglob(f"{task_id}.parquet"):
            path.unlink()
    damaged = science(ResultStore.open(str(tiny_copy), create=False))
    assert all(not set(lost) & set(damaged[t]["task_id"]) for t in KEYS)  # really gone from every table
    kept = _mtimes(tiny_copy)
    outcome = run_grid(_tiny(tiny_copy))
    assert not outcome.failed
    after = ResultStore.open(str(tiny_copy), create=False)
    assert {p: m for p, m in _mtimes(tiny_copy).items() if p in kept} == kept  # nothing finished was redone
    restored = science(after)
    for table, key in KEYS.items():
        assert restored[table].height > 0 and not restored[table].select(key).is_duplicated().any(), table
        assert restored[table].equals(undisturbed[table]), table  # the same seeds give the same values


@pytest.mark.system
@pytest.mark.parametrize("group", [None, 3])
def test_killing_a_cascade_actor_mid_task_loses_and_duplicates_nothing(tmp_path, ray_local, group):
    grid = resolve_grid(
        "tiny",
        overrides={
            "results": str(tmp_path / "r"),
            "kinds": ("cascade",),
            "sigma_w2": (0.5, 1.0, 1.5, 1.76, 2.5, 3.0),
            "depths": (8,),
        },
    )
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

    finished = run_cascade_pool(
        tasks,
        results=grid.results,
        grid_name="kill-test",
        size=PoolSize(workers=2, cpus=1, gpus=0),
        max_attempts=3,
        store=store,
        progress=Progress(("cascade",), interval_seconds=600),
        on_worker_started=kill_one_soon,
        group=group,
    )
    assert killed
    assert set(finished) == {t.task_id for t in tasks}
    runs = store.scan("runs").collect()
    assert sorted(runs["task_id"]) == sorted(t.task_id for t in tasks)
    assert runs["attempts"].max() >= 2  # the killed task ran again
    assert store.scan("cutoffs").collect().group_by("task_id", "measure").len()["len"].max() == 1


def test_nonfinite_results_are_stored_flagged_not_dropped(tmp_path):
    """A cascade whose curves hold NaN and inf is written to a real ResultStore and read back: every row is
    there, the non-finite values come back as they were (not null, not dropped) with finite=False, the
    non-finite cutoffs as NaN layers with finite=False, and nothing finite is flagged."""
    from infoflow_ray.cutoff import Cutoff
    from infoflow_ray.data import load_dataset
    from infoflow_ray.predict import predict_trainability
    from infoflow_ray.sweep.task_runner import cascade_rows, runs_row, utc_now

    grid = resolve_grid("tiny", overrides={"results": str(tmp_path / "r"), "kinds": ("cascade",)})
    task = grid.tasks()[0]
    data = load_dataset("synthetic", n_inputs=784, n_train=256, n_test=200)  # the values do not matter here
    prediction = predict_trainability(task.network, task.cascade, data, task.seed, "cpu")
    prediction.kl_per_image[2, 0] = float("nan")
    assert all(r["finite"] for r in cascade_rows(task, prediction)["curves"])  # kl_mean is the prediction's own
    kl_mean, decoder_loss = prediction.kl_mean.copy(), prediction.decoder_loss.copy()
    kl_mean[3], decoder_loss[1] = float("nan"), float("inf")
    broken = dataclasses.replace(
        prediction,
        kl_mean=kl_mean,
        decoder_loss=decoder_loss,
        finite=False,
        cutoffs={**prediction.cutoffs, "kl_mean": Cutoff(-1, False, False)},
        per_image_cutoff_mean=float("nan"),
        per_image_cutoff_std=float("nan"),
    )
    rows = cascade_rows(task, broken)
    now = utc_now()
    rows["runs"] = [
        runs_row(
            task,
            grid_name="nonfinite-test",
            status="nonfinite",
            started_at=now,
            finished_at=now,
            seconds=1.0,
            attempts=1,
            node_id="local",
            device="cpu",
        )
    ]
    store = ResultStore.open(grid.results)
    store.write_task(task.task_id, task.dataset, rows)

    assert store.finished_task_ids() == {task.task_id}
    assert store.scan("runs").collect()["status"].to_list() == ["nonfinite"]
    curves = store.scan("curves").collect()
    assert curves.height == len(rows["curves"]) and curves["value"].null_count() == 0  # nothing dropped or nulled
    flagged = curves.filter(~pl.col("finite")).sort("measure")
    assert flagged.select("measure", "layer").rows() == [("decoder_loss", 2), ("kl_mean", 3)]
    assert flagged["value"][0] == math.inf and math.isnan(flagged["value"][1])
    assert curves.filter(pl.col("finite"))["value"].is_finite().all()
    cutoffs = store.scan("cutoffs").collect().sort("measure")
    assert cutoffs.height == 4 and cutoffs["cutoff_layer"].null_count() == 0
    assert cutoffs.filter(~pl.col("finite"))["measure"].to_list() == ["kl_mean", "kl_per_image"]
    assert cutoffs.filter(~pl.col("finite"))["cutoff_layer"].is_nan().all()
    assert cutoffs.filter(pl.col("finite"))["cutoff_layer"].is_finite().all()


def test_results_files_are_plain_parquet_readable_without_infoflow(tiny_results):
    """Every file read with pyarrow alone holds exactly the rows the store gives for its task, in the same order,
    with the same values; together the files are the whole table."""
    store = ResultStore.open(str(tiny_results), create=False)
    tables = {"runs", "curves", "cutoffs", "reconstructions", "train_epochs", "train_summary"}
    for table in sorted(tables):
        stored = store.scan(table).collect()
        files = sorted((tiny_results / table).rglob("*.parquet"))
        assert files and stored.height == sum(pq.read_metadata(f).num_rows for f in files), table
        for f in files:
            plain = pl.from_arrow(pq.read_table(f))
            assert plain.height >= 1 and plain.equals(stored.filter(pl.col("task_id") == f.stem)), (table, f)


def _expected_stop(history: list[float], spec, max_epochs: int) -> tuple[str, int]:
    """(stop reason, epochs) a training with these I(T;Y) values (epochs 0, 1, …) must have ended with: the
    trainer's own reasons first (here only the budget), else the MI stopper as soon as ``mi_stopping`` says so."""
    for epoch in range(1, max_epochs):
        if mi_stopping(history[: epoch + 1], spec.patience, spec.min_delta):
            return "mi_plateau", epoch
    return "budget", max_epochs


def test_info_plane_metrics_are_one_flag_away_and_land_in_their_table(tmp_path, ray_local):
    """One flag adds the info_plane table, and the MI stopper really stops trainings.

    With the KDE estimator (noise variance 1) I(T;Y) of the last hidden layer of the σw² = 1.76 network is
    saturated at H(Y) from the start (measured 2.298566 at epochs 0, 1, 2): with patience 2 the stopper ends it
    after epoch 2 of 3. At σw² = 0.5 it rises by 2–4e-3 per epoch (1.6034, 1.6055, 1.6086, 1.6128), more than
    min_delta 1e-3: it trains to the budget. Each training's stop reason and epoch count are derived from its
    stored trajectory with ``mi_stopping`` and must be what the trial did.
    """
    from infoflow_ray.store import TABLES

    grid = resolve_grid(
        "tiny",
        overrides={
            "results": str(tmp_path / "r"),
            "sigma_w2": (0.5, 1.76),
            "depths": (3,),
            "cascade_depth": 4,
            "train": {"max_epochs": 3, "stop_at_threshold": False},
            "info_plane": {
                "enabled": True,
                "samples": 300,
                "extended_networks": 3,
                "stopper": "mi",
                "patience": 2,
                "estimator": "kde",
                "noise_var": 1.0,
            },
        },
    )
    outcome = run_grid(grid, progress_interval_seconds=600)
    assert not outcome.failed
    store = ResultStore.open(grid.results, create=False)
    info = store.scan("info_plane").collect()
    assert info.columns == TABLES["info_plane"].names
    untrained = info.filter(pl.col("stage") == "untrained")
    assert untrained.group_by("task_id", "estimator").len()["len"].to_list() == [4] * 4  # 4 layers each
    assert set(untrained["estimator"]) == {"kde", "binning_extended"}
    assert (info["i_xt"] <= math.log(300) + 1e-9).all() and (info["i_xt"] >= 0).all()
    trajectory = info.filter(pl.col("stage") == "training")
    assert set(trajectory["layer"]) == {1, 2, 3} and set(trajectory["estimator"]) == {"kde"}
    summary = store.scan("train_summary").collect().sort("sigma_w2")
    got, expected = {}, {}
    for row in summary.iter_rows(named=True):
        points = trajectory.filter(pl.col("task_id") == row["task_id"])
        assert sorted(set(points["epoch"])) == list(range(row["epochs"] + 1))  # epoch 0, then after every epoch
        last_hidden = points.filter(pl.col("layer") == 2).sort("epoch")["i_ty"].to_list()
        expected[row["sigma_w2"]] = _expected_stop(last_hidden, grid.info_plane, grid.train.max_epochs)
        got[row["sigma_w2"]] = (row["stop_reason"], row["epochs"])
    assert got == expected
    assert expected == {0.5: ("budget", 3), 1.76: ("mi_plateau", 2)}  # both outcomes exercised


@pytest.fixture(scope="module")
def grouped_run(tmp_path_factory, ray_local):
    """The tiny grid with its tasks grouped: three cascades in one lockstep call on one actor, baseline networks
    three to a Tune trial."""
    grid = resolve_grid(
        "tiny",
        overrides={
            "results": str(tmp_path_factory.mktemp("grouped") / "r"),
            "cascade": {"strategy": "lockstep"},
            "resources": {"cascade_group": 3, "cascade_workers": 1, "baseline_group": 3},
        },
    )
    outcome = run_grid(grid, progress_interval_seconds=600)
    assert not outcome.failed
    return grid


def test_batched_baseline_groups_give_the_same_trainings_as_one_network_per_trial(grouped_run, tiny_results):
    grid = grouped_run
    grouped = ResultStore.open(grid.results, create=False)
    single = ResultStore.open(str(tiny_results), create=False)
    got = grouped.scan("train_epochs").collect().sort("task_id", "epoch")
    want = single.scan("train_epochs").collect().sort("task_id", "epoch")
    assert got["task_id"].to_list() == want["task_id"].to_list()  # the same tasks, each exactly once
    for column in ("train_loss", "test_loss", "test_accuracy"):
        assert (got[column] - want[column]).abs().max() < 1e-3, column  # float32 summation order only
    assert sorted(grouped.scan("runs").collect()["task_id"]) == sorted(t.task_id for t in grid.tasks())


def test_cascades_trained_together_on_one_actor_give_the_results_of_one_task_per_call(grouped_run, tiny_results):
    """Three tiny cascades in one lockstep group (one call, stacked matmuls) against the session's run of the
    same tasks one per call (layerwise): the same task ids, the same cutoffs, curves equal to float round-off."""
    grouped = ResultStore.open(grouped_run.results, create=False)
    single = ResultStore.open(str(tiny_results), create=False)
    runs = grouped.scan("runs").filter(kind="cascade").collect()
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
    want_curves = (
        single.scan("curves")
        .filter((pl.col("measure") == "kl_mean") & pl.col("task_id").is_in(ids))
        .collect()
        .sort(curve_key)
    )
    assert got_curves.height == want_curves.height > 0
    assert ((got_curves["value"] - want_curves["value"]).abs() <= 1e-3 * want_curves["value"].abs() + 1e-6).all()

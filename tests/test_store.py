import hashlib
import json
import math
import os
import shutil
import threading
import time
import warnings
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from infoflow_ray.errors import ConfigError, ResultsError
from infoflow_ray.store import SCHEMA_VERSION, TABLES, CorruptFileWarning, ResultStore, task_id

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def key(tid, dataset="mnist", sigma_w2=1.5, depth=10, seed=0):
    return dict(task_id=tid, dataset=dataset, profile="wide", sigma_w2=sigma_w2, sigma_b2=0.05, depth=depth, seed=seed)


def run_row(tid, kind="cascade", dataset="mnist", **kw):
    k = key(tid, dataset, **kw)
    return dict(
        task_id=tid,
        kind=kind,
        grid_name="tiny",
        dataset=dataset,
        profile=k["profile"],
        sigma_w2=k["sigma_w2"],
        sigma_b2=k["sigma_b2"],
        depth=k["depth"],
        seed=k["seed"],
        status="ok",
        config_json=json.dumps(k),
        package_version="0.1.0",
        git_commit="abc123",
        torch_version="2.5.0",
        ray_version="2.40.0",
        python_version="3.11.9",
        hostname="node-a",
        node_id="n1",
        device="cpu",
        started_at=T0,
        finished_at=T0.replace(second=9),
        seconds=4.5,
        attempts=1,
    )


def task_tables(tid, dataset="mnist", **kw):
    """Rows for every table a task writes (a cascade's and a baseline's, together)."""
    k = key(tid, dataset, **kw)
    measures = ["kl_mean", "kl_median", "diff_entropy", "clamped_pixels", "decoder_loss"]
    return {
        "runs": [run_row(tid, dataset=dataset, **kw)],
        "curves": [
            {**k, "layer": layer, "measure": m, "value": 0.25 * layer + i, "finite": True}
            for layer in range(4)
            for i, m in enumerate(measures)
        ],
        "cutoffs": [
            {
                **k,
                "measure": "kl_mean",
                "cutoff_layer": 3.0,
                "cutoff_std": math.nan,
                "saturated": True,
                "finite": True,
                "last_layer": 10,
                "rtol": 0.005,
                "atol": 1e-8,
            },
            {
                **k,
                "measure": "kl_per_image",
                "cutoff_layer": 3.25,
                "cutoff_std": 0.5,
                "saturated": True,
                "finite": True,
                "last_layer": 10,
                "rtol": 0.005,
                "atol": 1e-8,
            },
        ],
        "reconstructions": [
            {**k, "image_index": i, "layer": layer, "height": 2, "width": 2, "pixels": [0.0, 0.5, -0.25, 1.0 + i]}
            for i in range(2)
            for layer in (0, 5)
        ],
        "train_epochs": [
            {
                **k,
                "loss_fn": "logits",
                "epoch": e,
                "train_loss": 2.0 / e,
                "test_loss": 2.1 / e,
                "test_accuracy": 0.3 * e,
                "seconds": 0.75,
            }
            for e in (1, 2, 3)
        ],
        "train_summary": [
            {
                **k,
                "loss_fn": "logits",
                "epochs": 3,
                "best_test_accuracy": 0.9,
                "final_test_accuracy": 0.9,
                "accuracy_threshold": 0.8,
                "reached_threshold": True,
                "stop_reason": "threshold",
                "seconds": 2.25,
                "resumed_from_epoch": 0,
                "threshold_epoch": 3,
            }
        ],
    }


def assert_rows(got, rows, name):
    """The stored frame holds exactly ``rows`` (``runs.outputs`` aside: write_task fills it in)."""
    want = pl.DataFrame(rows, schema={k: v for k, v in got.schema.items() if k != "outputs"})
    assert_frame_equal(sort(got.drop("outputs", strict=False), name), sort(want, name))


def files_under(path):
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


def sort(frame, table):
    by = [c for c in ("task_id", "layer", "measure", "image_index", "epoch", "attempt") if c in frame.columns]
    return frame.sort(by)


@pytest.fixture
def store(tmp_path):
    return ResultStore.open(str(tmp_path / "results"))


def test_every_table_round_trips_with_its_values_and_dtypes(store):
    tables = task_tables("aaaa")
    store.write_task("aaaa", "mnist", tables)
    for name, rows in tables.items():
        got = store.scan(name).collect()
        assert_rows(got, rows, name)
        assert got.columns == TABLES[name].names
    outputs = json.loads(store.scan("runs").collect()["outputs"][0])  # what write_task wrote, for verify
    assert outputs == {
        name: {"rows": len(rows), "bytes": os.path.getsize(store.path(name, "mnist", "aaaa"))}
        for name, rows in tables.items()
        if name != "runs"
    }
    assert store.scan("runs").collect_schema()["started_at"] == pl.Datetime("us", "UTC")
    assert store.scan("runs").collect_schema()["depth"] == pl.Int64
    assert store.scan("curves").collect_schema()["value"] == pl.Float64
    assert store.scan("reconstructions").collect_schema()["pixels"] == pl.List(pl.Float32)
    assert store.scan("cutoffs").collect_schema()["saturated"] == pl.Boolean
    assert store.scan("runs").collect()["started_at"][0] == T0


def test_files_follow_the_documented_layout(store):
    store.write_task("aaaa", "mnist", task_tables("aaaa"))
    store.write_failure(
        "bbbb", 2, dict(kind="baseline", dataset="cifar10", sigma_w2=2.0, depth=5, seed=1, error="RuntimeError: boom")
    )
    assert files_under(store.root) == sorted(
        [f"{t}/mnist/aaaa.parquet" for t in task_tables("aaaa")] + ["failures/cifar10/bbbb-2.parquet", "_infoflow.json"]
    )
    manifest = json.loads(open(os.path.join(store.root, "_infoflow.json")).read())
    assert manifest["schema_version"] == SCHEMA_VERSION == 3
    assert set(manifest) == {"schema_version", "created", "package_version"}


def test_failures_round_trip_one_file_per_attempt(store):
    for attempt in (1, 2):
        store.write_failure(
            "bbbb",
            attempt,
            dict(
                kind="baseline",
                dataset="mnist",
                sigma_w2=2.0,
                depth=5,
                seed=1,
                error=f"attempt {attempt} failed",
                failed_at=T0,
            ),
        )
    got = store.scan("failures").sort("attempt").collect()
    assert got["attempt"].to_list() == [1, 2]
    assert got["error"].to_list() == ["attempt 1 failed", "attempt 2 failed"]
    assert got["failed_at"].to_list() == [T0, T0]
    assert store.finished_task_ids() == set()


def test_empty_table_scans_to_its_schema(store):
    got = store.scan("curves").collect()
    assert got.height == 0
    assert got.columns == TABLES["curves"].names
    assert got.schema["layer"] == pl.Int64


def test_tasks_of_two_datasets_and_kinds(store):
    store.write_task("aaaa", "mnist", task_tables("aaaa"))
    store.write_task("bbbb", "cifar10", {"runs": [run_row("bbbb", kind="baseline", dataset="cifar10")]})
    assert store.finished_task_ids() == {"aaaa", "bbbb"}
    assert store.finished_task_ids(kind="cascade") == {"aaaa"}
    assert store.finished_task_ids(kind="baseline") == {"bbbb"}
    runs = store.scan("runs").sort("task_id").collect()
    assert runs["dataset"].to_list() == ["mnist", "cifar10"]


def test_nan_and_inf_survive_a_round_trip(store):
    values = [math.nan, math.inf, -math.inf, 1.5]
    tables = {
        "runs": [run_row("aaaa")],
        "curves": [
            {**key("aaaa"), "layer": i, "measure": "kl_mean", "value": v, "finite": math.isfinite(v)}
            for i, v in enumerate(values)
        ],
    }
    store.write_task("aaaa", "mnist", tables)
    got = store.scan("curves").sort("layer").collect()
    assert got.height == 4
    assert math.isnan(got["value"][0]) and got["value"][1:].to_list() == [math.inf, -math.inf, 1.5]
    assert got["finite"].to_list() == [False, False, False, True]


def test_hidden_and_underscore_files_are_ignored(store):
    store.write_task("aaaa", "mnist", task_tables("aaaa"))
    store.write_task("zzzz", "mnist", task_tables("zzzz"))
    directory = os.path.join(store.root, "runs", "mnist")
    source = os.path.join(directory, "zzzz.parquet")
    for stray in (".tmp-zzzz-0123.parquet", "_zzzz.parquet", "_temporary/zzzz.parquet"):
        os.makedirs(os.path.dirname(os.path.join(directory, stray)), exist_ok=True)
        shutil.copy(source, os.path.join(directory, stray))
    os.remove(source)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.finished_task_ids() == {"aaaa"}
        assert store.scan("runs").collect()["task_id"].to_list() == ["aaaa"]


def test_truncated_runs_file_is_not_finished_and_rewriting_fixes_it(store):
    store.write_task("aaaa", "mnist", task_tables("aaaa"))
    store.write_task("bbbb", "mnist", task_tables("bbbb"))
    path = os.path.join(store.root, "runs", "mnist", "aaaa.parquet")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.warns(CorruptFileWarning, match="aaaa.parquet"):
        assert store.finished_task_ids() == {"bbbb"}
    with pytest.warns(CorruptFileWarning, match="aaaa.parquet"):
        assert store.scan("runs").collect()["task_id"].to_list() == ["bbbb"]
    store.write_task("aaaa", "mnist", task_tables("aaaa"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.finished_task_ids() == {"aaaa", "bbbb"}
        assert store.scan("runs").collect().height == 2


def test_writing_a_task_twice_keeps_one_file_and_one_copy_of_each_row(store):
    for _ in range(2):
        store.write_task("aaaa", "mnist", task_tables("aaaa"))
    assert len(files_under(store.root)) == len(task_tables("aaaa")) + 1  # + _infoflow.json
    for name, rows in task_tables("aaaa").items():
        assert store.scan(name).collect().height == len(rows)


def test_concurrent_writers_of_one_task_leave_one_readable_file_per_table(store):
    tables = task_tables("aaaa")
    n_writers, rounds = 4, 20
    errors, seen = [], set()
    stop = threading.Event()

    def write(barrier):
        try:
            barrier.wait()
            store.write_task("aaaa", "mnist", tables)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def read():  # a reader racing the writers never sees a partial file
        while not stop.is_set():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    seen.add(store.scan("curves").collect().height)
                    store.finished_task_ids()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(rounds):
        barrier = threading.Barrier(n_writers)
        writers = [threading.Thread(target=write, args=(barrier,)) for _ in range(n_writers)]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
    stop.set()
    reader.join()
    assert errors == []
    assert seen <= {0, len(tables["curves"])}
    assert files_under(store.root) == sorted([f"{t}/mnist/aaaa.parquet" for t in tables] + ["_infoflow.json"])
    for name, rows in tables.items():
        assert store.scan(name).collect().height == len(rows)


def test_a_location_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "results.txt"
    path.write_text("not a folder")
    with pytest.raises(ResultsError, match="is a file; give a directory") as info:
        ResultStore.open(str(path))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_location_that_cannot_be_created_is_refused(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ResultsError, match="Not a directory") as info:
        ResultStore.open(str(tmp_path / "file.txt" / "results"))
    assert "\n" not in str(info.value)


def test_a_read_only_folder_is_refused_before_any_work(tmp_path):
    """A folder the user may not write to: chmod 0o500, or, where the tests run as root (CI does) and root
    writes through file modes, sysfs, which refuses new files to everyone."""
    if os.geteuid() == 0:
        folder = "/sys"
        if not os.path.isdir(folder):
            pytest.skip("no /sys to stand for a read-only folder on this machine")
        with pytest.raises(ResultsError, match="not writable: Permission denied"):
            ResultStore.open(folder)
        return
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ResultsError, match="not writable: Permission denied"):
            ResultStore.open(str(folder))
    finally:
        folder.chmod(0o700)


def test_the_write_probe_leaves_nothing_behind(tmp_path):
    ResultStore.open(str(tmp_path / "results"))
    ResultStore.open(str(tmp_path / "results"))
    assert files_under(tmp_path / "results") == ["_infoflow.json"]


def test_an_other_schema_version_is_refused_naming_both(tmp_path):
    ResultStore.open(str(tmp_path / "results"))
    (tmp_path / "results" / "_infoflow.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ResultsError, match=r"schema version 99 .* writes version 3; use a new results location"):
        ResultStore.open(str(tmp_path / "results"))


def test_opening_a_missing_location_without_create_is_refused(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        ResultStore.open(str(tmp_path / "nowhere"), create=False)
    assert not (tmp_path / "nowhere").exists()


def test_reopening_sees_the_finished_tasks(tmp_path):
    ResultStore.open(str(tmp_path / "results")).write_task("aaaa", "mnist", task_tables("aaaa"))
    assert ResultStore.open(str(tmp_path / "results"), create=False).finished_task_ids() == {"aaaa"}


def test_file_uri_is_the_same_location_as_the_path(tmp_path):
    by_uri = ResultStore.open(f"file://{tmp_path}/results")
    by_uri.write_task("aaaa", "mnist", task_tables("aaaa"))
    by_path = ResultStore.open(str(tmp_path / "results"))
    assert by_uri.root == by_path.root == str(tmp_path / "results")
    assert by_path.finished_task_ids() == by_uri.finished_task_ids() == {"aaaa"}
    assert_frame_equal(by_uri.scan("curves").collect(), by_path.scan("curves").collect())


def test_object_store_branch_writes_final_keys_and_scans_with_pyarrow(tmp_path):
    store = ResultStore.open("mock:///bucket/results")  # Arrow's in-memory filesystem: not a LocalFileSystem
    store.write_task("aaaa", "mnist", task_tables("aaaa"))
    store.write_task("aaaa", "mnist", task_tables("aaaa"))
    assert store.finished_task_ids() == {"aaaa"}
    for name, rows in task_tables("aaaa").items():
        assert_rows(store.scan(name).collect(), rows, name)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t["curves"][0].update(colour="red"), "unknown column.*colour"),
        (lambda t: t["curves"][1].pop("finite"), "lacks column.*finite"),
        (lambda t: t.update(curves=pa.Table.from_pylist(t["curves"]).drop_columns(["layer"])), "lacks column.*layer"),
        (lambda t: t.update(info=[{"x": 1}]), "unknown results table 'info'"),
        (lambda t: t["curves"][0].update(value="high"), "table 'curves' does not fit its schema"),
        (lambda t: t["curves"][0].update(task_id="other"), "task_id is not 'aaaa'"),
        (lambda t: t["runs"].append(run_row("aaaa")), "exactly 1 row"),
        (lambda t: t.pop("runs"), "needs a 'runs' table"),
    ],
)
def test_bad_tables_are_refused_and_nothing_is_written(store, change, message):
    tables = task_tables("aaaa")
    change(tables)
    with pytest.raises(ConfigError, match=message) as info:
        store.write_task("aaaa", "mnist", tables)
    assert "\n" not in str(info.value)
    assert files_under(store.root) == ["_infoflow.json"]


def test_names_that_readers_would_hide_are_refused(store):
    with pytest.raises(ConfigError, match="task_id"):
        store.write_task(".hidden", "mnist", task_tables(".hidden"))
    with pytest.raises(ConfigError, match="dataset"):
        store.write_task("aaaa", "a/b", task_tables("aaaa", dataset="a/b"))


def test_stale_temp_files_are_removed_fresh_ones_and_results_kept(store):
    store.write_task("aaaa", "mnist", task_tables("aaaa"))
    assert not [f for f in files_under(store.root) if ".tmp-" in f]  # written, renamed, nothing left
    old, fresh = (os.path.join(store.root, f".tmp-{n}-aaaa.parquet.partial") for n in (1, 2))  # crashed writers'
    for path in (old, fresh):
        open(path, "wb").write(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert store.remove_stale_temp_files(older_than_seconds=3600) == 1
    assert not os.path.exists(old) and os.path.exists(fresh)
    assert store.finished_task_ids() == {"aaaa"}


def test_task_id_is_the_sha256_of_canonical_json():
    config = {"sigma_w2": 0.1, "depth": 30, "dataset": "mnist", "nested": {"b": [1, 2], "a": 1e-8}}
    canonical = '{"dataset":"mnist","depth":30,"nested":{"a":1e-08,"b":[1,2]},"sigma_w2":0.1}'
    assert task_id(config) == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert task_id(dict(reversed(list(config.items())))) == task_id(config)


@pytest.mark.parametrize(
    "field, value",
    [
        ("sigma_w2", 0.1 + 1e-16 * 2),
        ("depth", 31),
        ("dataset", "cifar10"),
        ("nested", {"b": [2, 1], "a": 1e-8}),
    ],
)
def test_any_changed_value_changes_task_id(field, value):
    config = {"sigma_w2": 0.1, "depth": 30, "dataset": "mnist", "nested": {"b": [1, 2], "a": 1e-8}}
    assert task_id({**config, field: value}) != task_id(config)
    assert len(task_id(config)) == 16


def test_task_id_refuses_values_it_cannot_hash_stably():
    with pytest.raises(ConfigError, match="cannot be hashed"):
        task_id({"x": object()})


def test_a_task_whose_write_fails_midway_is_not_finished(store):
    blocker = os.path.join(store.root, "train_summary", "mnist")  # a file where a folder must go
    os.makedirs(os.path.dirname(blocker))
    open(blocker, "w").write("in the way")
    with pytest.raises(ResultsError, match="cannot write results file") as info:
        store.write_task("aaaa", "mnist", task_tables("aaaa"))
    assert "\n" not in str(info.value)
    assert store.finished_task_ids() == set()  # runs is written last, so it was never written
    assert store.scan("runs").collect().height == 0


def test_arrow_tables_are_cast_to_the_schema(store):
    tables = task_tables("aaaa")
    curves = pa.Table.from_pylist(tables["curves"])
    curves = curves.select(list(reversed(curves.column_names)))
    tables["curves"] = curves.set_column(
        curves.column_names.index("layer"), "layer", curves.column("layer").cast(pa.int32())
    )
    store.write_task("aaaa", "mnist", tables)
    got = store.scan("curves").collect()
    assert got.columns == TABLES["curves"].names
    assert got.schema["layer"] == pl.Int64
    assert sorted(got["layer"].unique().to_list()) == [0, 1, 2, 3]


def test_verify_names_exactly_the_damaged_tasks_and_requeue_touches_only_their_runs_files(store):
    for tid in ("aaaa", "bbbb", "cccc", "dddd"):
        store.write_task(tid, "mnist", task_tables(tid))
    assert store.verify() == []
    os.remove(store.path("curves", "mnist", "aaaa"))  # deleted later
    epochs = store.path("train_epochs", "mnist", "bbbb")
    data = open(epochs, "rb").read()
    open(epochs, "wb").write(data[: len(data) // 2])  # truncated
    summary = store.path("train_summary", "mnist", "cccc")  # rewritten with a row missing, footer intact
    pq.write_table(pq.read_table(summary).slice(0, 0), summary)
    before = {f: open(os.path.join(store.root, f), "rb").read() for f in files_under(store.root)}

    damaged = {t.task_id: t for t in store.verify()}
    assert sorted(damaged) == ["aaaa", "bbbb", "cccc"]
    assert damaged["aaaa"].problems == ("curves file missing",)
    assert damaged["bbbb"].problems == (f"train_epochs file has {len(data) // 2} bytes, {len(data)} were written",)
    assert damaged["cccc"].problems[0].startswith("train_summary file has ")
    assert damaged["aaaa"].label == "cascade mnist σw²=1.5 L=10 seed 0"

    store.requeue(list(damaged.values()))
    assert store.finished_task_ids() == {"dddd"}
    after = {f: open(os.path.join(store.root, f), "rb").read() for f in files_under(store.root)}
    gone = {f"runs/mnist/{t}.parquet" for t in damaged}
    assert set(before) - set(after) == gone and after == {f: v for f, v in before.items() if f not in gone}


def test_verify_reports_an_unreadable_runs_file(store):
    store.write_task("aaaa", "mnist", task_tables("aaaa"))
    open(store.path("runs", "mnist", "aaaa"), "wb").write(b"PAR1 not parquet")
    with pytest.warns(UserWarning, match="unreadable"):
        assert store.finished_task_ids() == set()
    (damaged,) = store.verify()
    assert (damaged.task_id, damaged.label) == ("aaaa", "?") and "runs file unreadable" in damaged.problems[0]


def _as_version_1(store):
    """Rewrite a current results folder the way infoflow-ray wrote it at schema version 1: hive folders, no
    runs.outputs, no train_summary.resumed_from_epoch."""
    root = store.root
    for path in [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".parquet")]:
        table, dataset, name = os.path.relpath(path, root).split(os.sep)
        data = pq.read_table(path)
        old = ("outputs", "resumed_from_epoch", "threshold_epoch", "budget")
        data = data.drop_columns([c for c in old if c in data.column_names])
        os.makedirs(os.path.join(root, table, f"dataset={dataset}"), exist_ok=True)
        pq.write_table(data, os.path.join(root, table, f"dataset={dataset}", name))
        os.remove(path)
        os.rmdir(os.path.dirname(path)) if not os.listdir(os.path.dirname(path)) else None
    manifest = json.loads(open(os.path.join(root, "_infoflow.json")).read())
    open(os.path.join(root, "_infoflow.json"), "w").write(json.dumps({**manifest, "schema_version": 1}))


def test_a_version_1_folder_is_refused_with_the_upgrade_command_and_upgrades_in_place_losing_nothing(store, capsys):
    from infoflow_ray.upgrade import main as upgrade_main

    for tid in ("aaaa", "bbbb"):
        store.write_task(tid, "mnist", task_tables(tid))
    want = {t: store.scan(t).collect() for t in TABLES}
    _as_version_1(store)
    with pytest.raises(ResultsError, match=r"schema version 1 .*`python -m infoflow_ray.upgrade ") as info:
        ResultStore.open(store.location, create=False)
    assert "\n" not in str(info.value)

    assert upgrade_main([store.location]) == 0
    assert "schema version 3, 12 file(s) converted" in capsys.readouterr().out  # 2 tasks × 6 tables
    upgraded = ResultStore.open(store.location, create=False)
    assert upgraded.verify() == [] and upgraded.finished_task_ids() == {"aaaa", "bbbb"}  # outputs recorded anew
    for table, frame in want.items():
        got = upgraded.scan(table).collect()
        assert_frame_equal(
            sort(got.drop("outputs", strict=False), table), sort(frame.drop("outputs", strict=False), table)
        )
    assert files_under(store.root) == sorted(
        [f"{t}/mnist/{tid}.parquet" for t in task_tables("aaaa") for tid in ("aaaa", "bbbb")] + ["_infoflow.json"]
    )
    assert upgrade_main([store.location]) == 0  # a second run has nothing left to do


def test_a_version_2_folder_upgrades_to_3_with_threshold_epochs_from_train_epochs(store, capsys):
    """Version 3 adds train_summary.threshold_epoch (recomputed from the task's train_epochs: the accuracies
    0.3, 0.6, 0.9 first reach 0.8 at epoch 3; null without epochs) and search.budget (null)."""
    from infoflow_ray.upgrade import main as upgrade_main

    store.write_task("aaaa", "mnist", task_tables("aaaa"))
    no_epochs = {t: rows for t, rows in task_tables("bbbb").items() if t != "train_epochs"}
    store.write_task("bbbb", "mnist", no_epochs)
    store.write_search("s1", "mnist", [])
    root = store.root
    for path in [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".parquet")]:
        data = pq.read_table(path)
        pq.write_table(data.drop_columns([c for c in ("threshold_epoch", "budget") if c in data.column_names]), path)
    manifest = json.loads(open(os.path.join(root, "_infoflow.json")).read())
    open(os.path.join(root, "_infoflow.json"), "w").write(json.dumps({**manifest, "schema_version": 2}))
    with pytest.raises(ResultsError, match=r"schema version 2; .*`python -m infoflow_ray.upgrade "):
        ResultStore.open(store.location, create=False)

    assert upgrade_main([store.location]) == 0
    assert "schema version 3, 3 file(s) converted" in capsys.readouterr().out  # 2 train_summary + 1 search
    upgraded = ResultStore.open(store.location, create=False)
    assert upgraded.verify() == []  # the runs rows record the rewritten files' bytes
    summary = upgraded.scan("train_summary").collect().sort("task_id")
    assert summary["threshold_epoch"].to_list() == [3, None]
    assert upgraded.scan("search").collect()["budget"].to_list() == []

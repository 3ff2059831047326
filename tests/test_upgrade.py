"""`python -m infoflow_ray.upgrade` from schema version 2 to 3: the info_plane table's SGD steps leave `epoch`.

A version-2 folder is written the way infoflow-ray wrote it at version 2 (``phase`` 'untrained' | 'training' |
'sgd_steps', ``epoch`` holding SGD steps for 'sgd_steps'), then upgraded in place: nothing is lost, ``verify``
stays clean, and an upgrade interrupted after its first file is finished by running it again.
"""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal
from test_store import key, run_row

from infoflow_ray.errors import ResultsError
from infoflow_ray.store import MANIFEST, TABLES, ResultStore
from infoflow_ray.sweep.task_runner import info_plane_rows
from infoflow_ray.upgrade import _to_current
from infoflow_ray.upgrade import main as upgrade_main

V2_COLUMNS = [f.name for f in TABLES["info_plane"] if f.name not in ("stage", "epoch", "step", "layer")]
V2_COLUMNS = V2_COLUMNS[:7] + ["phase", "epoch", "layer"] + V2_COLUMNS[7:]  # version 2's order: keys, phase, epoch


def write_v3_tasks(store: ResultStore) -> None:
    """A grid task (untrained network and a training over 2 epochs) and an information-plane job task (steps)."""
    grid, job = key("grid1"), key("ib001", depth=3)
    rows = info_plane_rows(grid, [(2.0, 0.5), (1.0, 0.25)], "binning", None, 0.1, {"n_bins": 30}, n_samples=300)
    for epoch in range(3):
        rows += info_plane_rows(grid, [(2.0 - epoch / 4, 0.5)], "kde", epoch, 0.1, {"noise_var": 0.1}, n_samples=300)
    store.write_task("grid1", "mnist", {"runs": [run_row("grid1")], "info_plane": rows})
    rows = []
    for step in (0, 10, 20):
        rows += info_plane_rows(job, [(1.5, 0.1 + step / 100)] * 3, "binning", None, 0.2, {}, n_samples=1000, step=step)
    store.write_task("ib001", "mnist", {"runs": [run_row("ib001", kind="info_plane", depth=3)], "info_plane": rows})


def as_version_2(store: ResultStore) -> None:
    """Rewrite the folder as version 2 wrote it: info_plane in v2 columns, runs.outputs of those files' sizes."""
    for path in store._files("info_plane"):
        data = pq.read_table(path)
        in_steps = [s is not None for s in data.column("step").to_pylist()]
        phase = ["sgd_steps" if s else stage for s, stage in zip(in_steps, data.column("stage").to_pylist())]
        epoch = [st if s else e for s, st, e in zip(in_steps, data["step"].to_pylist(), data["epoch"].to_pylist())]
        data = data.drop_columns(["stage", "epoch", "step"])
        data = data.append_column("phase", pa.array(phase)).append_column("epoch", pa.array(epoch, pa.int64()))
        pq.write_table(data.select(V2_COLUMNS), path)
        runs_path = path.replace("/info_plane/", "/runs/")
        runs = pq.read_table(runs_path)
        outputs = json.loads(runs["outputs"][0].as_py())
        outputs["info_plane"]["bytes"] = len(open(path, "rb").read())
        runs = runs.set_column(runs.schema.get_field_index("outputs"), "outputs", pa.array([json.dumps(outputs)]))
        pq.write_table(runs, runs_path)
    manifest = json.loads(open(f"{store.root}/{MANIFEST}").read())
    open(f"{store.root}/{MANIFEST}", "w").write(json.dumps({**manifest, "schema_version": 2}))


@pytest.fixture
def v2_store(tmp_path):
    store = ResultStore.open(str(tmp_path / "results"))
    write_v3_tasks(store)
    want = {table: store.scan(table).collect() for table in ("info_plane", "runs")}
    as_version_2(store)
    return store, want


def test_a_version_2_folder_is_refused_with_the_upgrade_command(v2_store):
    store, _ = v2_store
    with pytest.raises(ResultsError, match=r"schema version 2; .* `python -m infoflow_ray.upgrade ") as info:
        ResultStore.open(store.location, create=False)
    assert "\n" not in str(info.value)
    old = pq.read_table(store._files("info_plane")[1])
    assert set(old["phase"].to_pylist()) == {"sgd_steps"} and old["epoch"].to_pylist() == [0] * 3 + [10] * 3 + [20] * 3


def test_upgrade_moves_sgd_steps_out_of_epoch_losing_nothing(v2_store, capsys):
    store, want = v2_store
    assert upgrade_main([store.location]) == 0
    assert "schema version 3, 2 file(s) converted" in capsys.readouterr().out
    upgraded = ResultStore.open(store.location, create=False)
    assert upgraded.verify() == []  # the runs rows record the rewritten files' sizes
    got = upgraded.scan("info_plane").collect()
    assert_frame_equal(
        got.sort("task_id", "epoch", "step", "layer", "estimator"),
        want["info_plane"].sort("task_id", "epoch", "step", "layer", "estimator"),
    )
    job = got.filter(task_id="ib001")
    assert job["epoch"].null_count() == job.height and sorted(set(job["step"])) == [0, 10, 20]
    assert (
        set(got.filter(task_id="grid1")["stage"]) == {"untrained", "training"} and got["step"].null_count() == 5
    )  # 2 untrained + 3 epochs
    assert_frame_equal(upgraded.scan("runs").collect().drop("outputs"), want["runs"].drop("outputs"))
    assert upgrade_main([store.location]) == 0 and "0 file(s) converted" in capsys.readouterr().out


def test_an_upgrade_killed_after_its_first_file_is_finished_by_running_it_again(v2_store, capsys):
    store, want = v2_store
    first = store._files("info_plane")[0]  # what a killed upgrade leaves: one file rewritten, the manifest at 2
    dataset, stem = first.rsplit("/", 2)[-2], first.rsplit("/", 1)[1].removesuffix(".parquet")
    current = _to_current("info_plane", pq.read_table(first), 2, store, dataset, stem).select(
        TABLES["info_plane"].names
    )
    store._write_table("info_plane", dataset, stem, current.cast(TABLES["info_plane"]))
    assert upgrade_main([store.location]) == 0
    assert "schema version 3, 1 file(s) converted" in capsys.readouterr().out
    upgraded = ResultStore.open(store.location, create=False)
    assert upgraded.verify() == []
    got = upgraded.scan("info_plane").collect().sort("task_id", "epoch", "step", "layer", "estimator")
    assert_frame_equal(got, want["info_plane"].sort("task_id", "epoch", "step", "layer", "estimator"))

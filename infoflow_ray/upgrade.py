"""Convert a results folder written by an older infoflow-ray to the current layout, in place, losing nothing.

    python -m infoflow_ray.upgrade results/default        # or s3://bucket/path

Version 1 → 2: files move from hive folders ``{table}/dataset={name}/`` to ``{table}/{name}/``; ``runs`` gains
``outputs`` (the rows and bytes of the task's other files, for ``--verify``) and ``train_summary`` gains
``resumed_from_epoch`` (0: which epoch a resumed training started from was not recorded).

Version 2 → 3: one word per meaning in ``info_plane``. Its ``phase`` column becomes ``stage`` ('untrained' |
'training'; "phase" is kept for ordered/chaotic), and the points of ``jobs/info_plane.py`` (phase 'sgd_steps'),
whose ``epoch`` held SGD steps, get them in a new ``step`` column with ``epoch`` null; every other row gets
``step`` null. ``train_summary`` gains ``threshold_epoch`` (the first epoch whose test accuracy reached the
threshold: docs/budget.md), recomputed from the task's ``train_epochs`` rows (null where they are missing or none
reached it); ``search`` gains ``budget`` (null: its rows predate the budget ladder). The ``runs`` rows of the
converted tasks record the new file sizes (``--verify`` stays exact).

Every file is written whole (atomically) before anything that depended on the old one goes, files already in the
new layout are left alone, and the manifest says the new version only at the end: a killed upgrade is finished
by running it again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from infoflow_ray.budget import threshold_epoch
from infoflow_ray.errors import ResultsError
from infoflow_ray.store import MANIFEST, SCHEMA_VERSION, TABLES, ResultStore

ADDED = {"train_summary": {"resumed_from_epoch": 0}}  # version 2's new columns and the value old rows get


def _info_plane_v3(data: pa.Table, store: ResultStore, dataset: str, stem: str) -> pa.Table:
    """Version 2's info_plane rows in version 3's columns (module docstring): phase → stage, SGD steps → step."""
    phase = data.column("phase")
    in_steps = pc.equal(phase, "sgd_steps")
    null = pa.scalar(None, pa.int64())
    epoch = pc.if_else(in_steps, null, data.column("epoch"))
    step = pc.if_else(in_steps, data.column("epoch"), null)
    stage = pc.if_else(in_steps, pa.scalar("training"), phase)
    data = data.drop_columns(["phase", "epoch"])
    return data.append_column("stage", stage).append_column("epoch", epoch).append_column("step", step)


def _train_summary_v3(data: pa.Table, store: ResultStore, dataset: str, stem: str) -> pa.Table:
    """Version 2's train_summary rows with ``threshold_epoch``, recomputed from the task's ``train_epochs``."""
    if "threshold_epoch" in data.schema.names:
        return data
    return data.append_column("threshold_epoch", pa.array(_threshold_epochs(store, dataset, stem, data), pa.int64()))


def _search_v3(data: pa.Table, store: ResultStore, dataset: str, stem: str) -> pa.Table:
    """Version 2's search rows with ``budget`` null (no rung rows then)."""
    if "budget" in data.schema.names:
        return data
    return data.append_column("budget", pa.nulls(data.num_rows, pa.int64()))


def _threshold_epochs(store: ResultStore, dataset: str, task_id: str, summary: pa.Table) -> list[int | None]:
    """Per ``train_summary`` row: the first epoch of the task's ``train_epochs`` whose test accuracy reached the
    row's ``accuracy_threshold`` (None when none did, or the task's epochs are not readable in either layout)."""
    epochs = []
    flat = store.path("train_epochs", dataset, task_id)
    for path in (flat, f"{store.root}/train_epochs/dataset={dataset}/{task_id}.parquet"):
        try:
            with store.filesystem.open_input_file(path) as f:
                epochs = pq.read_table(f, columns=["epoch", "test_accuracy"]).to_pylist()
            break
        except (OSError, pa.ArrowException):
            continue
    history = [(r["epoch"], r["test_accuracy"]) for r in epochs]
    return [
        None if threshold is None else threshold_epoch(history, threshold)
        for threshold in summary.column("accuracy_threshold").to_pylist()
    ]


Conversion = Callable[[pa.Table, ResultStore, str, str], pa.Table]
CONVERSIONS: dict[int, dict[str, Conversion]] = {
    3: {"info_plane": _info_plane_v3, "train_summary": _train_summary_v3, "search": _search_v3}
}
"""Per version v: the tables whose rows change from version v − 1 to v, and how: (one table, the store, its
dataset and file stem — the task id — for what the conversion reads beside it) in, one table out."""


def upgrade(location: str) -> int:
    """Upgrade the results folder at ``location`` to ``SCHEMA_VERSION``; return how many files were converted."""
    filesystem, root = pafs.FileSystem.from_uri(location) if "://" in location else (pafs.LocalFileSystem(), location)
    root = root.rstrip("/")
    try:
        with filesystem.open_input_stream(f"{root}/{MANIFEST}") as f:
            manifest = json.loads(f.read())
    except (OSError, ValueError) as e:
        raise ResultsError(
            f"'{location}' has no readable {MANIFEST} ({e}); it is not an infoflow results folder"
        ) from None
    version = manifest.get("schema_version")
    if version == SCHEMA_VERSION:
        return 0
    if version not in range(1, SCHEMA_VERSION):
        raise ResultsError(
            f"'{location}' has schema version {version!r}; this upgrade converts versions 1 to {SCHEMA_VERSION - 1} "
            f"to {SCHEMA_VERSION}"
        )
    store = ResultStore(location, filesystem, root)
    converted = _from_hive_folders(store) if version == 1 else 0
    converted += _convert_rows(store, version)
    store._put(f"{root}/{MANIFEST}", json.dumps({**manifest, "schema_version": SCHEMA_VERSION}, indent=2).encode())
    return converted


def _to_current(table: str, data: pa.Table, version: int, store: ResultStore, dataset: str, stem: str) -> pa.Table:
    """Rows of ``table`` written at ``version`` in the current columns (already-current rows pass unchanged)."""
    if set(data.schema.names) == set(TABLES[table].names):
        return data
    if version < 2:
        for column, value in ADDED.get(table, {}).items():
            if column not in data.schema.names:
                data = data.append_column(column, pa.array([value] * data.num_rows, TABLES[table].field(column).type))
    for step in range(max(version, 2) + 1, SCHEMA_VERSION + 1):
        if table in CONVERSIONS.get(step, {}):
            data = CONVERSIONS[step][table](data, store, dataset, stem)
    return data


def _from_hive_folders(store: ResultStore) -> int:
    """Version 1 → current: every hive file rewritten to its flat place in the current columns, runs last."""
    filesystem, root, converted = store.filesystem, store.root, 0
    for table in sorted(TABLES, key=lambda name: name == "runs"):  # runs last: it records the other files
        for old in _hive_files(filesystem, f"{root}/{table}"):
            dataset, stem = old.rsplit("/", 2)[-2].removeprefix("dataset="), old.rsplit("/", 1)[1][: -len(".parquet")]
            with filesystem.open_input_file(old) as f:
                data = _to_current(table, pq.read_table(f), 1, store, dataset, stem)
            if table == "runs":
                data = data.append_column(
                    "outputs",
                    pa.array([json.dumps(_outputs(store, dataset, stem), sort_keys=True)] * data.num_rows, pa.string()),
                )
            store._write_table(table, dataset, stem, data.select(TABLES[table].names).cast(TABLES[table]))
            filesystem.delete_file(old)
            converted += 1
    for table in TABLES:
        for folder in filesystem.get_file_info(pafs.FileSelector(f"{root}/{table}", allow_not_found=True)):
            if folder.type == pafs.FileType.Directory and folder.base_name.startswith("dataset="):
                filesystem.delete_dir(folder.path)
    return converted


def _convert_rows(store: ResultStore, version: int) -> int:
    """Version ≥ 2 → current in place: rewrite every file of a changed table not yet in the current columns, then
    bring the ``outputs`` of the ``runs`` rows up to date for the files rewritten (sizes; rows never change)."""
    changed = sorted({t for v in range(max(version, 2) + 1, SCHEMA_VERSION + 1) for t in CONVERSIONS.get(v, {})})
    converted = 0
    for table in changed:
        for path in store._files(table):
            with store.filesystem.open_input_file(path) as f:
                data = pq.read_table(f)
            if set(data.schema.names) == set(TABLES[table].names):
                continue  # converted by an earlier, interrupted run
            dataset, stem = path.rsplit("/", 2)[-2], path.rsplit("/", 1)[1].removesuffix(".parquet")
            current = _to_current(table, data, version, store, dataset, stem)
            current = current.select(TABLES[table].names).cast(TABLES[table])
            if current.num_rows != data.num_rows:
                raise ResultsError(f"upgrading {path} changed its row count; nothing more was converted")
            store._write_table(table, dataset, stem, current)
            converted += 1
    if changed:
        for path in store._files("runs"):
            _refresh_outputs(store, path, changed)
    return converted


def _refresh_outputs(store: ResultStore, runs_path: str, tables: list[str]) -> None:
    """Record the current byte size of the task's files of ``tables`` in its ``runs`` row, where the row count
    recorded still matches (a file damaged before the upgrade stays reported as damaged by ``--verify``)."""
    with store.filesystem.open_input_file(runs_path) as f:
        runs = pq.read_table(f)
    outputs = json.loads(runs.column("outputs")[0].as_py() or "{}")
    dataset, task = runs_path.rsplit("/", 2)[-2], runs_path.rsplit("/", 1)[1].removesuffix(".parquet")
    now = _outputs(store, dataset, task)
    fresh = {
        table: now[table]
        for table in tables
        if table in outputs
        and table in now
        and now[table]["rows"] == outputs[table]["rows"]
        and now[table] != outputs[table]
    }
    if not fresh:
        return
    text = json.dumps({**outputs, **fresh}, sort_keys=True)
    index = runs.schema.get_field_index("outputs")
    runs = runs.set_column(index, "outputs", pa.array([text] * runs.num_rows, pa.string()))
    store._write_table("runs", dataset, task, runs)


def _hive_files(filesystem: pafs.FileSystem, base: str) -> list[str]:
    infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return sorted(
        i.path
        for i in infos
        if i.type == pafs.FileType.File
        and i.path.endswith(".parquet")
        and i.path.rsplit("/", 2)[-2].startswith("dataset=")
    )


def _outputs(store: ResultStore, dataset: str, task_id: str) -> dict:
    """Rows and bytes of the task's files in the new layout (what ``write_task`` records in ``runs.outputs``)."""
    out = {}
    for table in TABLES:
        path = store.path(table, dataset, task_id)
        info = store.filesystem.get_file_info(path)
        if table != "runs" and info.type == pafs.FileType.File:
            with store.filesystem.open_input_file(path) as f:
                out[table] = {"rows": pq.read_metadata(f).num_rows, "bytes": info.size}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infoflow_ray.upgrade", description=__doc__.splitlines()[0])
    parser.add_argument("results", help="results location: a directory or a URI such as s3://bucket/path")
    args = parser.parse_args(argv)
    try:
        converted = upgrade(args.results)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.results}: schema version {SCHEMA_VERSION}, {converted} file(s) converted")
    return 0


if __name__ == "__main__":
    sys.exit(main())

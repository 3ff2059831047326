"""Convert a results folder written by an older infoflow-ray to the current layout, in place, losing nothing.

    python -m infoflow_ray.upgrade results/default        # or s3://bucket/path

Version 1 → 2: files move from hive folders ``{table}/dataset={name}/`` to ``{table}/{name}/``; ``runs`` gains
``outputs`` (the rows and bytes of the task's other files, for ``--verify``) and ``train_summary`` gains
``resumed_from_epoch`` (0: which epoch a resumed training started from was not recorded). Each file is written
to its new place before the old one is deleted, and the manifest says version 2 only at the end, so a killed
upgrade is finished by running it again.
"""

from __future__ import annotations

import argparse
import json
import sys

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from infoflow_ray.errors import ResultsError
from infoflow_ray.store import MANIFEST, SCHEMA_VERSION, TABLES, ResultStore

ADDED = {"train_summary": {"resumed_from_epoch": 0}}  # version 2's new columns and the value old rows get


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
    if manifest.get("schema_version") == SCHEMA_VERSION:
        return 0
    if manifest.get("schema_version") != 1:
        raise ResultsError(
            f"'{location}' has schema version {manifest.get('schema_version')!r}; this upgrade converts "
            f"version 1 to {SCHEMA_VERSION}"
        )
    store = ResultStore(location, filesystem, root)
    converted = 0
    for table in sorted(TABLES, key=lambda name: name == "runs"):  # runs last: it records the other files
        for old in _hive_files(filesystem, f"{root}/{table}"):
            dataset, stem = old.rsplit("/", 2)[-2].removeprefix("dataset="), old.rsplit("/", 1)[1][: -len(".parquet")]
            with filesystem.open_input_file(old) as f:
                data = pq.read_table(f)
            for column, value in ADDED.get(table, {}).items():
                data = data.append_column(column, pa.array([value] * data.num_rows, TABLES[table].field(column).type))
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
    store._put(f"{root}/{MANIFEST}", json.dumps({**manifest, "schema_version": SCHEMA_VERSION}, indent=2).encode())
    return converted


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

"""Storage at the paper grid's size: bytes per task by table, and how long the readers take over ~1,000 tasks.

Builds a synthetic results folder shaped like ``paper-mnist-wide`` (40 cascades at depth 200, 800 baseline
trainings with 1–200 epochs; row counts and column types as the real writers make them) with ``ResultStore``,
then times, on the local disk and on a local S3-compatible server (moto, if installed):

- listing the finished tasks (``finished_task_ids``), ``verify`` (footers of every file),
- ``ResultStore.scan(table).collect()`` for every table, and plain ``polars.scan_parquet(folder)``,
- the analysis queries of ``jobs/analyze.py`` that read tables (cutoffs joined with ℓ_train).

    .venv/bin/python benchmarks/bench_storage.py                 # ≈ 2 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_storage.py --cascades 4 --baselines 80 --no-s3   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pyarrow.fs as pafs

from infoflow_ray import analysis
from infoflow_ray.store import TABLES, ResultStore

T0 = datetime(2026, 12, 2, tzinfo=UTC)
DEPTH = 200
IMAGES, STORED_LAYERS = 6, 12  # reconstructions kept per cascade (as the cascade task stores them)


def _keys(task: str, sigma_w2: float, depth: int, seed: int = 0) -> dict:
    return dict(task_id=task, dataset="mnist", profile="wide", sigma_w2=sigma_w2, sigma_b2=0.05, depth=depth, seed=seed)


def _run(keys: dict, kind: str) -> dict:
    return {
        **keys,
        "kind": kind,
        "grid_name": "paper-mnist-wide",
        "status": "ok",
        "config_json": "{}" * 200,
        "package_version": "0.1.0",
        "git_commit": "0" * 40,
        "torch_version": "2.14.1",
        "ray_version": "2.60.0",
        "python_version": "3.11.7",
        "hostname": "gpu-node-17",
        "node_id": "f" * 56,
        "device": "cuda:0",
        "started_at": T0,
        "finished_at": T0,
        "seconds": 100.0,
        "attempts": 1,
    }


def cascade_tables(task: str, sigma_w2: float, rng: np.random.Generator) -> dict:
    keys = _keys(task, sigma_w2, DEPTH)
    curves = [
        {**keys, "layer": layer, "measure": m, "value": float(rng.random()), "finite": True}
        for m in ("kl_mean", "kl_median", "diff_entropy", "clamped_pixels")
        for layer in range(DEPTH + 1)
    ]
    curves += [
        {**keys, "layer": layer, "measure": "decoder_loss", "value": float(rng.random()), "finite": True}
        for layer in range(1, DEPTH + 1)
    ]
    cutoffs = [
        {
            **keys,
            "measure": m,
            "cutoff_layer": float(rng.integers(1, DEPTH)),
            "cutoff_std": 0.5,
            "saturated": True,
            "finite": True,
            "last_layer": DEPTH,
            "rtol": 0.005,
            "atol": 1e-8,
        }
        for m in ("kl_mean", "kl_median_normalised", "diff_entropy", "kl_per_image")
    ]
    layers = np.linspace(0, DEPTH, STORED_LAYERS).astype(int)
    images = [
        {
            **keys,
            "image_index": i,
            "layer": int(layer),
            "height": 28,
            "width": 28,
            "pixels": rng.random(784, dtype=np.float32).tolist(),
        }
        for i in range(IMAGES)
        for layer in layers
    ]
    return {"curves": curves, "cutoffs": cutoffs, "reconstructions": images, "runs": [_run(keys, "cascade")]}


def baseline_tables(task: str, sigma_w2: float, depth: int, rng: np.random.Generator) -> dict:
    keys = {**_keys(task, sigma_w2, depth), "loss_fn": "logits"}
    epochs = int(rng.integers(1, 201))
    rows = [
        {**keys, "epoch": e, "train_loss": 1.0, "test_loss": 1.0, "test_accuracy": float(rng.random()), "seconds": 2.0}
        for e in range(1, epochs + 1)
    ]
    summary = [
        {
            **keys,
            "epochs": epochs,
            "best_test_accuracy": 0.9,
            "final_test_accuracy": 0.9,
            "accuracy_threshold": 0.4,
            "reached_threshold": bool(rng.random() < 0.5),
            "stop_reason": "threshold",
            "seconds": 2.0 * epochs,
            "resumed_from_epoch": 0,
            "threshold_epoch": None,
        }
    ]
    run = _run(_keys(task, sigma_w2, depth), "baseline")
    return {"train_epochs": rows, "train_summary": summary, "runs": [run]}


def build(store: ResultStore, cascades: int, baselines: int, workers: int = 4) -> None:
    sigmas = np.round(np.linspace(0.1, 4.0, cascades), 2)
    depths = list(range(10, 201, 10))
    jobs = [("c", f"c{i:05d}", float(s), DEPTH) for i, s in enumerate(sigmas)]
    jobs += [("b", f"b{i:05d}", float(sigmas[i % len(sigmas)]), depths[i % len(depths)]) for i in range(baselines)]

    def write(job) -> None:
        kind, task, sigma_w2, depth = job
        rng = np.random.default_rng(int(task[1:]) + (0 if kind == "c" else 10**6))
        tables = cascade_tables(task, sigma_w2, rng) if kind == "c" else baseline_tables(task, sigma_w2, depth, rng)
        store.write_task(task, "mnist", tables)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(write, jobs))


def bytes_per_table(store: ResultStore) -> dict[str, tuple[int, int]]:
    """table → (files, bytes)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    infos = store.filesystem.get_file_info(pafs.FileSelector(store.root, recursive=True))
    for info in infos:
        if info.type == pafs.FileType.File and info.path.endswith(".parquet"):
            table = info.path.removeprefix(store.root + "/").split("/", 1)[0]
            out[table][0] += 1
            out[table][1] += info.size
    return {t: (n, b) for t, (n, b) in out.items()}


def timings(store: ResultStore, local_folder: str | None) -> dict[str, float]:
    out = {}

    def clock(name, fn):
        start = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - start

    clock("finished_task_ids", store.finished_task_ids)
    clock("verify (every footer)", store.verify)
    for table in ("runs", "curves", "cutoffs", "reconstructions", "train_epochs", "train_summary"):
        clock(f"scan('{table}').collect()", lambda t=table: store.scan(t).collect())
    if local_folder:
        clock("pl.scan_parquet('curves').collect()", lambda: pl.scan_parquet(f"{local_folder}/curves").collect())
    clock("analysis.comparison (cutoffs × ℓ_train)", lambda: analysis.comparison(store).collect())
    clock("analysis.curves_by_sigma", lambda: analysis.curves_by_sigma(store).collect())
    clock("analysis.missing (inventory)", lambda: analysis.missing(store))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cascades", type=int, default=40)
    parser.add_argument("--baselines", type=int, default=800)
    parser.add_argument("--no-s3", action="store_true", help="skip the S3-compatible server")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(
        f"bench_storage: {args.cascades} cascades (depth {DEPTH}) + {args.baselines} trainings; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, commit {commit}, "
        f"{datetime.now(UTC):%Y-%m-%d}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = f"{tmp}/results"
        store = ResultStore.open(folder)
        start = time.perf_counter()
        build(store, args.cascades, args.baselines)
        print(f"built in {time.perf_counter() - start:.1f} s")
        sizes = bytes_per_table(store)
        print("\n| table | files | total MB | kB per file |\n|---|---|---|---|")
        for table in TABLES:
            if table in sizes:
                n, b = sizes[table]
                print(f"| {table} | {n} | {b / 1e6:.1f} | {b / n / 1e3:.1f} |")
        results = {"local disk": timings(store, folder)}
        if not args.no_s3:
            results["S3 (moto, localhost)"] = _s3_timings(folder)
        names = list(next(iter(results.values())))
        print("\n| read | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
        for name in names:
            print(
                f"| {name} | " + " | ".join(f"{r[name]:.2f} s" if name in r else "–" for r in results.values()) + " |"
            )


def _s3_timings(folder: str) -> dict[str, float]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_EC2_METADATA_DISABLED="true",
    )
    try:
        s3 = pafs.S3FileSystem(
            endpoint_override=f"http://{host}:{port}",
            scheme="http",
            access_key="bench",
            secret_key="bench",
            allow_bucket_creation=True,
        )
        s3.create_dir("bench")
        pafs.copy_files(
            folder,
            "bench/results",
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=s3,
            use_threads=True,
        )
        return timings(ResultStore.open("s3://bench/results", create=False), None)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

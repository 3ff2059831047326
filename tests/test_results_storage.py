"""A results folder at paper scale: what a finished grid leaves, who can read it, how damage is repaired, and
how an interrupted training resumes from its checkpoint. Real Ray, real Tune, real Parquet on disk."""

import io
import os
import re
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pytest
from doc_examples import python_block
from polars.testing import assert_frame_equal
from results_science import science

from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.grid import resolve_grid
from infoflow_ray.sweep.jobs import EXIT_OK, job

main = job("grid").main

ROOT = Path(__file__).resolve().parents[1]
TABLE_ORDER = {
    "runs": ["task_id"],
    "curves": ["task_id", "measure", "layer"],
    "cutoffs": ["task_id", "measure"],
    "reconstructions": ["task_id", "image_index", "layer"],
    "train_epochs": ["task_id", "epoch"],
    "train_summary": ["task_id"],
}


def test_a_finished_grid_leaves_its_rows_and_nothing_else(tiny_results):
    """No Tune state or checkpoint of the finished trainings, no lock file, no temp file: the tables, the planned
    grid and the manifest."""
    assert sorted(p.name for p in tiny_results.iterdir()) == sorted(["_infoflow.json", "_grids", *TABLE_ORDER])
    assert not list(tiny_results.rglob("checkpoint_*")) and not list(tiny_results.rglob(".tmp-*"))


@pytest.mark.parametrize("table", list(TABLE_ORDER))
def test_every_table_opens_with_the_default_call_of_pandas_pyarrow_polars_and_duckdb(tiny_results, table):
    folder = tiny_results / table
    want = ResultStore.open(str(tiny_results), create=False).scan(table).collect().sort(TABLE_ORDER[table])
    assert want.height > 0
    by_polars = pl.scan_parquet(folder).collect()
    assert_frame_equal(by_polars.sort(TABLE_ORDER[table]), want)
    by_pandas = pd.read_parquet(folder)
    by_pyarrow = ds.dataset(folder, partitioning="hive").to_table()
    by_duckdb = duckdb.sql(f"select * from read_parquet('{folder}/**/*.parquet', hive_partitioning=true)").pl()
    for frame in (pl.from_pandas(by_pandas), pl.from_arrow(by_pyarrow), by_duckdb):
        assert frame.columns == want.columns  # no partition column doubled or added
        assert_frame_equal(frame.select(TABLE_ORDER[table]).sort(TABLE_ORDER[table]), want.select(TABLE_ORDER[table]))
    assert set(by_pandas["dataset"]) == {"mnist_t10k"}


def test_verify_names_the_damaged_tasks_and_the_next_run_recomputes_exactly_them(
    tiny_copy, tiny_results, capsys, ray_local
):
    store = ResultStore.open(str(tiny_copy), create=False)
    runs = store.scan("runs").collect()
    cascade = runs.filter(pl.col("kind") == "cascade")["task_id"][0]
    baseline = runs.filter(pl.col("kind") == "baseline")["task_id"][0]
    os.remove(store.path("curves", "mnist_t10k", cascade))
    epochs = Path(store.path("train_epochs", "mnist_t10k", baseline))
    epochs.write_bytes(epochs.read_bytes()[:100])

    assert main(["--preset", "tiny", "--results", str(tiny_copy), "--verify"]) == EXIT_OK
    report = capsys.readouterr().out
    assert re.findall(r"^damaged: (\w+)", report, flags=re.M) == sorted([cascade, baseline])
    assert "curves file missing" in report and "train_epochs file has 100 bytes" in report
    assert "2 task(s) re-queued" in report

    outcome = run_grid(resolve_grid("tiny", overrides={"results": str(tiny_copy)}), out=io.StringIO())
    assert not outcome.failed
    assert sum(outcome.skipped.values()) == runs.height - 2  # exactly the two ran again
    rerun = store.scan("runs").collect()
    unchanged = runs.filter(~pl.col("task_id").is_in([cascade, baseline])).sort("task_id")
    assert_frame_equal(rerun.filter(~pl.col("task_id").is_in([cascade, baseline])).sort("task_id"), unchanged)
    assert rerun.height == runs.height
    for table, frame in science(tiny_copy).items():
        assert_frame_equal(frame, science(tiny_results)[table])
    assert main(["--preset", "tiny", "--results", str(tiny_copy), "--verify"]) == EXIT_OK
    assert f"all {runs.height} finished tasks" in capsys.readouterr().out


def test_progress_counts_every_trial_that_runs(tiny_results):
    """Two CPUs, one CPU per trial: two trainings run at once, and the progress line says so (the progress lines
    of the session's tiny grid)."""
    output = (tiny_results.parent / "progress.txt").read_text()
    running = [int(n) for n in re.findall(r"baseline \d+/6 \(running (\d+)", output)]
    assert max(running) == 2 and min(running) >= 0, output
    assert running[-1] == 0  # nothing is left counted as running at the end


def test_readme_readers_example_runs_on_the_tiny_results(tiny_results, capsys):
    """docs/results.md's "every common reader" example, run as written on the tiny grid's results."""
    block = python_block("docs/results.md", "every table also opens")
    assert '"results/default/cutoffs"' in block
    exec(block.replace('"results/default/cutoffs"', repr(str(tiny_results / "cutoffs"))), {})
    cutoffs = ResultStore.open(str(tiny_results), create=False).scan("cutoffs").collect().height
    assert capsys.readouterr().out.strip() == str([cutoffs] * 4)

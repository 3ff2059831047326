"""Cascades of trained networks on real Ray: the tiny grid with ``interpret`` on writes the new tables with
their schema from inside the Tune trials, and ``jobs/analyze.py`` draws the paper's fig. 5 from them."""

from pathlib import Path

import polars as pl
from drivers import analyze

from infoflow_ray.store import TABLES, ResultStore
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.grid import resolve_grid

ROOT = Path(__file__).resolve().parents[1]
NEW_TABLES = ("trained_curves", "trained_cutoffs", "retraced", "perfect_inputs")


def test_the_tiny_grid_with_interpret_writes_the_new_tables_and_the_figures(tmp_path, ray_local, monkeypatch):
    results = tmp_path / "results"
    interpret = {"enabled": True, "cascade_epochs": 2, "at_epochs": [0, 1]}
    # one training (σw² 1.76, depth 3) on 1,000 images: every table and figure comes from a single trial's network
    overrides = {
        "sigma_w2": (1.76,),
        "depths": (3,),
        "data": {"max_train_samples": 1000},
        "results": str(results),
        "interpret": interpret,
    }
    grid = resolve_grid("tiny", overrides=overrides)
    outcome = run_grid(grid, progress_interval_seconds=300)
    assert not outcome.failed
    store = ResultStore.open(str(results), create=False)
    baselines = {t.task_id: t for t in grid.tasks() if t.kind == "baseline"}
    summary = store.scan("train_summary").collect()
    for table in NEW_TABLES:
        frame = store.scan(table).collect()
        assert frame.columns == TABLES[table].names and set(frame["task_id"]) == set(baselines), table
    perfect = store.scan("perfect_inputs").filter(pl.col("layer") == 0).collect()
    assert perfect.group_by("task_id").len()["len"].to_list() == [10] * len(baselines)  # one per class
    epochs = perfect.join(summary.select("task_id", "epochs"), on="task_id")
    assert (epochs["epoch"] == epochs["epochs"]).all()  # the cascade saw the network as training left it
    # the curves also at the chosen epochs before the last (0: the network before training)
    curves = store.scan("trained_cutoffs").filter(pl.col("measure") == "kl_per_image").collect()
    for task_id, final in summary.select("task_id", "epochs").iter_rows():
        got = sorted(curves.filter(task_id=task_id)["epoch"])
        assert got == sorted({0, final} | {e for e in (0, 1) if e < final}), (task_id, got)
    out = tmp_path / "analysis"
    done = analyze(results, "--out", out)
    assert done.returncode == 0, done.stderr
    suffix = "mnist_t10k_wide_sb0.05"
    for figure in ("retraced", "perfect_inputs", "trained_vs_untrained"):
        assert (out / f"{figure}_{suffix}.png").stat().st_size > 10_000, figure
    report = (out / "report.md").read_text()
    assert "## Opening the black box" in report and "perfect_classified_own" in report
    # the notebook's section draws the same three figures from the same folder
    import nbclient
    import nbformat

    notebook = nbformat.read(ROOT / "notebooks" / "analysis.ipynb", as_version=4)
    section = next(i for i, c in enumerate(notebook.cells) if c.source.startswith("## 12. Opening the black box"))
    monkeypatch.setenv("INFOFLOW_RESULTS", str(results))
    nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(ROOT / "notebooks")}}
    ).execute()
    outputs = notebook.cells[section + 1].outputs
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3

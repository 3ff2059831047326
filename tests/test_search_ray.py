"""The adaptive search end to end: real Ray (local cluster), real torch trainings and cascades, real Parquet.

- on a small case the search's ℓ_train brackets equal the full grid's over the same depths, and the full grid
  run afterwards into the same folder reuses every task the search ran (same task ids);
- a search killed midway and run again redoes no finished task and takes the decisions of an undisturbed run;
- the σw² bisection finds an edge within its tolerance, checked against cascades computed without Ray;
- non-monotone outcomes and the critical line land in the ``search`` table (outcomes written to a real store);
- bad search settings fail in one line before any work starts.
"""

from __future__ import annotations

import io
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from drivers import start_job

from infoflow_ray import theory
from infoflow_ray.predict import predict_trainability
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep import adaptive
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.grid import resolve_grid
from infoflow_ray.sweep.jobs import EXIT_BAD_INPUT, job
from infoflow_ray.sweep.task_runner import load_task_data

main = job("grid").main

ROOT = Path(__file__).resolve().parents[1]
DEPTHS = "3,4,5,6,8"
SMALL = {"depths": (3, 4, 5, 6, 8), "search": {"enabled": True}, "train": {"ladder": (1, 2)}}


def small_search(results: Path, **search):
    """The tiny preset (σw² 0.5, 1.76, 3; 2 epochs) searched over depths 3..8."""
    return resolve_grid("tiny", overrides={**SMALL, "results": str(results), "search": {"enabled": True, **search}})


LADDER_TOML = "[train]\nladder = [1, 2]\n"  # the budget ladder of SMALL, for the job's --config


def brackets_of_search(results: Path) -> dict[tuple[float, int], tuple]:
    """(passed, failed) of each (σw², seed)'s depth search: its last decision's bracket (NaN → None)."""
    rows = (
        ResultStore.open(str(results), create=False)
        .scan("search")
        .filter(pl.col("search") == "depth")
        .sort("sigma_w2", "seed", "step")
        .group_by("sigma_w2", "seed", maintain_order=True)
        .last()
        .collect()
    )
    assert rows["done"].all()
    none = lambda v: None if math.isnan(v) else int(v)  # noqa: E731
    return {
        (s, seed): (none(lo), none(hi))
        for s, seed, lo, hi in rows.select("sigma_w2", "seed", "bracket_low", "bracket_high").rows()
    }


def brackets_of_grid(results: Path) -> dict[tuple[float, int], tuple]:
    """What the full grid says per (σw², seed): the deepest depth that reached the threshold, the shallowest above
    it that did not."""
    summary = ResultStore.open(str(results), create=False).scan("train_summary").collect()
    out = {}
    for (sigma_w2, seed), part in summary.group_by("sigma_w2", "seed"):
        passed = part.filter("reached_threshold")["depth"].max()
        above = part.filter(~pl.col("reached_threshold") & (pl.col("depth") > (passed or 0)))["depth"].min()
        out[sigma_w2, seed] = (passed, above)
    return out


def values(results: Path) -> dict[str, pl.DataFrame]:
    store = ResultStore.open(str(results), create=False)
    return {
        "search": store.scan("search").drop("task_ids").collect().sort("search", "sigma_w2", "seed", "step"),
        "train_summary": store.scan("train_summary").drop("seconds").collect().sort("task_id"),
        "cutoffs": store.scan("cutoffs").collect().sort("task_id", "measure"),
    }


@pytest.fixture(scope="module")
def searched(tmp_path_factory, ray_local) -> Path:
    """The small search run once, undisturbed."""
    path = tmp_path_factory.mktemp("search") / "results"
    out = io.StringIO()
    outcome = run_grid(small_search(path), out=out, progress_interval_seconds=300)
    assert not outcome.failed and not outcome.interrupted
    (path.parent / "out.txt").write_text(out.getvalue())  # the progress lines, for the policy test
    return path


# Both phases, two seeds, the edge inside the depth list: SGD at 0.05 for 1 epoch on 1,000 images (measured,
# seeds 0 and 1: σw² = 0.5 reaches 0.4 at depth 3 (0.54), not at 6 (0.29, 0.19); σw² = 4 (chaotic) at 10
# (0.65, 0.50), at 16 only with seed 1 (0.37, 0.40), not at 24).
BOTH_SIDES = {
    "sigma_w2": (0.5, 4.0),
    "depths": (3, 6, 10, 16, 24),
    "seeds": (0, 1),
    "data": {"max_train_samples": 1000},
    "cascade": {"eval_samples": 100},
    "train": {"lr": 0.05, "max_epochs": 1},
}


def test_search_brackets_equal_the_full_grid_on_both_sides_which_reuses_the_searched_tasks(tmp_path, ray_local):
    results = tmp_path / "results"
    search = resolve_grid("tiny", overrides={**BOTH_SIDES, "results": str(results), "search": {"enabled": True}})
    outcome = run_grid(search, progress_interval_seconds=300)
    assert not outcome.failed and not outcome.interrupted
    store = ResultStore.open(str(results), create=False)
    searched_runs = store.scan("runs").collect()
    search_brackets = brackets_of_search(results)
    # every (σw², seed) found a trainable depth and a failing one inside the list: an edge, not the list's end
    assert set(search_brackets) == {(s, seed) for s in (0.5, 4.0) for seed in (0, 1)}
    for key, (passed, failed) in search_brackets.items():
        assert passed in BOTH_SIDES["depths"] and failed in BOTH_SIDES["depths"] and passed < failed, key
    # the ordered σw² trains less deep than the chaotic one at this budget
    assert max(search_brackets[0.5, seed][0] for seed in (0, 1)) < min(search_brackets[4.0, seed][0] for seed in (0, 1))
    grid = resolve_grid("tiny", overrides={**BOTH_SIDES, "results": str(results)})
    n_grid_trainings = sum(t.kind == "baseline" for t in grid.tasks())
    assert searched_runs.filter(pl.col("kind") == "baseline").height < n_grid_trainings  # it did skip some
    run_grid(grid, progress_interval_seconds=300)
    runs = store.scan("runs").collect()
    assert runs["task_id"].is_unique().all()
    assert runs.filter(pl.col("kind") == "baseline").height == n_grid_trainings
    # the search's tasks are the grid's: not one of them ran again
    before = dict(searched_runs.select("task_id", "started_at").rows())
    assert {t: s for t, s in runs.select("task_id", "started_at").rows() if t in before} == before
    assert search_brackets == brackets_of_grid(results)


def _search_driver(results: Path, address: str) -> subprocess.Popen:
    config = results.parent / "ladder.toml"
    config.write_text(LADDER_TOML)
    return start_job(
        "full_grid.py",
        "--preset",
        "tiny",
        "--search",
        "--depths",
        DEPTHS,
        "--config",
        str(config),
        "--results",
        str(results),
        "--address",  # the session's Ray: no local Ray started for this driver
        address,
    )


def test_a_killed_search_resumes_without_redoing_a_task_and_takes_the_same_decisions(searched, tmp_path, ray_address):
    results = tmp_path / "results"
    proc = _search_driver(results, ray_address)
    deadline = time.monotonic() + 300
    while len(list((results / "runs").rglob("*.parquet"))) < 5:  # the 3 cascades and 2 trainings
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the search stored too few tasks in 300 s"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver (and with it its job's workers), mid-search
    proc.wait(timeout=60)
    store = ResultStore.open(str(results), create=False)
    before = dict(store.scan("runs").select("task_id", "started_at").collect().rows())
    total = store.scan("runs").collect().height
    assert total < ResultStore.open(str(searched), create=False).scan("runs").collect().height

    outcome = run_grid(small_search(results), progress_interval_seconds=300)
    assert not outcome.failed and not outcome.interrupted
    assert outcome.skipped["cascade"] + outcome.skipped["baseline"] >= len(before)
    runs = store.scan("runs").collect()
    assert runs["task_id"].is_unique().all()
    assert {t: s for t, s in runs.select("task_id", "started_at").rows() if t in before} == before
    got, want = values(results), values(searched)
    for table in want:
        g, w = got[table], want[table]
        if table == "train_summary":  # a training killed mid-way went on from its checkpoint: the same epochs
            g, w = g.drop("resumed_from_epoch"), w.drop("resumed_from_epoch")
        assert g.equals(w), (table, [c for c in w.columns if c not in g.columns or not g[c].equals(w[c])])
    rungs = got["search"].filter(pl.col("search") == "rung")  # the same rungs: ℓ_train within 1 of 2 epochs
    assert rungs.height == 3 and (rungs["budget"] == 1).all()


def _cascade_lines_before_trainings_asked(output: str) -> int:
    """How many cascades had ended (their progress lines) when the search first asked for trainings."""
    ended = 0
    for line in output.splitlines():
        if "asked next:" in line and "trainings" in line:
            return ended
        ended += "cutoff per-image KL" in line
    raise AssertionError(f"no trainings asked in:\n{output}")


def test_per_round_takes_the_per_result_decisions_and_only_per_result_asks_mid_round(searched, tmp_path):
    """The driver's two ``search.policy`` values on the same small search (``searched`` ran the default,
    per_result): the same search rows, trainings and cutoffs. Per round asks for trainings once all 3 coarse
    cascades have ended, and starts none before; per result asks as soon as the first cascade is in — on 2 CPUs
    the third cascade starts only after that, so it is still to come."""
    results = tmp_path / "results"
    out = io.StringIO()
    outcome = run_grid(small_search(results, policy="per_round"), out=out, progress_interval_seconds=300)
    assert not outcome.failed and not outcome.interrupted
    got, want = values(results), values(searched)
    for table in want:
        assert got[table].equals(want[table]), table
    assert _cascade_lines_before_trainings_asked(out.getvalue()) == 3
    runs = ResultStore.open(str(results), create=False).scan("runs").collect()
    first = runs.filter(pl.col("kind") == "baseline")["started_at"].min()
    assert first >= runs.filter(pl.col("kind") == "cascade")["finished_at"].max()
    assert _cascade_lines_before_trainings_asked((searched.parent / "out.txt").read_text()) < 3


def test_sigma_w2_bisection_finds_an_edge_within_the_tolerance(tmp_path, ray_local):
    """Cascades only: the interval where the per-image cutoff of a depth-10 cascade (3,000 training images)
    reaches layer 6 — its low edge lies between σw² 0.1 and 0.5 (ordered side). The edge's two σw² are
    recomputed without Ray: one is inside (ℓ_c ≥ 6), the other outside, at most 0.05 apart."""
    overrides = {
        "sigma_w2": (0.1, 0.5, 1.76),
        "depths": (4, 10),
        "kinds": ("cascade",),
        "results": str(tmp_path),
        "search": {"enabled": True, "target_depth": 6, "sigma_w2_tolerance": 0.05},
    }
    grid = resolve_grid("tiny", overrides=overrides)
    outcome = run_grid(grid, progress_interval_seconds=300)
    assert not outcome.failed
    rows = (
        ResultStore.open(str(tmp_path), create=False)
        .scan("search")
        .filter(pl.col("search") == "sigma_w2_interval")
        .sort("step")
        .collect()
    )
    assert rows["done"].all() and rows["reason"].str.contains("bisect the low edge").any()
    inside = rows.filter("passed")["asked"].min()
    outside = rows.filter(~pl.col("passed") & (pl.col("asked") < inside))["asked"].max()
    assert 0.1 <= outside < inside <= 0.5 and inside - outside <= 0.05
    data = load_task_data("mnist_t10k", grid.data, "cpu")
    recomputed = {
        s: predict_trainability(
            grid.network("mnist_t10k", s, 10, 0.05), grid.cascade, data, seed=0
        ).per_image_cutoff_mean
        for s in (inside, outside)
    }
    assert recomputed[inside] >= 6 > recomputed[outside]
    stored = dict(rows.select("asked", "value").rows())
    assert stored[inside] == pytest.approx(recomputed[inside]) and stored[outside] == pytest.approx(recomputed[outside])
    # the Outcome carries the search's answer: the same edge a replay of the store decides (predict-then-tune uses it)
    (group,) = outcome.searches
    replayed = adaptive.plan(grid, adaptive.read_stored(ResultStore.open(str(tmp_path)), grid.search.measure))[0]
    assert group.interval.done and group.interval == replayed.interval
    assert (group.interval.low.inside, group.interval.low.outside) == (inside, outside)


# --- decisions over outcomes written to a real store (no training: the outcomes are chosen) ------------------


def fill(grid, cutoff, trainable) -> ResultStore:
    """Answer every task the search asks for with chosen outcomes, written through the real store, until the
    search asks for nothing more; return the store."""
    store = ResultStore.open(grid.results)
    for _ in range(100):
        asks = adaptive.unique(
            [t for g in adaptive.plan(grid, adaptive.read_stored(store, grid.search.measure)) for t in g.asks]
        )
        if not asks:
            return store
        for task in asks:
            net = task.network
            keys = {
                "task_id": task.task_id,
                "dataset": task.dataset,
                "profile": net.profile_name,
                "sigma_w2": net.sigma_w2,
                "sigma_b2": net.sigma_b2,
                "depth": net.depth,
                "seed": task.seed,
            }
            run = {
                **keys,
                "kind": task.kind,
                "grid_name": "test",
                "status": "ok",
                "config_json": "{}",
                "package_version": "",
                "git_commit": "",
                "torch_version": "",
                "ray_version": "",
                "python_version": "",
                "hostname": "",
                "node_id": "",
                "device": "cpu",
                "started_at": None,
                "finished_at": None,
                "seconds": 1.0,
                "attempts": 1,
            }
            if task.kind == "cascade":
                rows = {
                    "cutoffs": [
                        {
                            **keys,
                            "measure": "kl_per_image",
                            "cutoff_layer": cutoff(net.sigma_w2, net.sigma_b2),
                            "cutoff_std": 1.0,
                            "saturated": True,
                            "finite": True,
                            "last_layer": 46,
                            "rtol": 0.005,
                            "atol": 1e-8,
                        }
                    ]
                }
            else:
                ok = trainable(net.sigma_w2, net.depth, task.seed)
                rows = {
                    "train_summary": [
                        {
                            **keys,
                            "loss_fn": "logits",
                            "epochs": 1 if ok else task.train.max_epochs,  # a failure ran its whole budget
                            "best_test_accuracy": 0.9 if ok else 0.1,
                            "final_test_accuracy": 0.5,
                            "accuracy_threshold": 0.4,
                            "reached_threshold": ok,
                            "stop_reason": "threshold" if ok else "budget",
                            "seconds": 1.0,
                            "resumed_from_epoch": 0,
                            "threshold_epoch": 1 if ok else None,
                        }
                    ]
                }
            store.write_task(task.task_id, task.dataset, {**rows, "runs": [run]})
    raise AssertionError("the search did not end")


def test_non_monotone_trainings_and_the_critical_line_are_recorded_in_the_search_table(tmp_path):
    """σw² = 2 trains at depths ≤ 20 and, against the trend, at 28: the search finds 28, and the search table
    records the contradiction with the failing 24 below it. The chosen cutoffs peak at each σb²'s mean-field
    critical σw²: the located peaks trace the critical line within their brackets. No Ray starts: every task is
    stored."""

    def cutoff(sigma_w2, sigma_b2):
        return max(1.0, 46.0 - 40.0 * abs(sigma_w2 - float(theory.critical_sigma_w2(sigma_b2))))

    def trainable(sigma_w2, depth, seed):
        return depth <= 20 or (sigma_w2 == 2.0 and depth == 28)

    grid = resolve_grid(
        "default",
        overrides={
            "results": str(tmp_path),
            "sigma_w2": (0.5, 1.0, 1.5, 2.0, 2.5, 3.0),
            "sigma_b2": (0.0, 0.05, 0.2),
            "search": {"target_depth": 36, "sigma_w2_tolerance": 0.02, "edge_trainings": True},
        },
    )
    store = fill(grid, cutoff, trainable)
    out = io.StringIO()
    outcome = run_grid(grid, out=out)  # everything stored: it replays the searches and writes the table
    assert not outcome.failed and "search mnist_t10k wide σb²=0.2" in out.getvalue()
    table = store.scan("search").collect()
    assert table["done"].all() and sorted(table["sigma_b2"].unique()) == [0.0, 0.05, 0.2]
    flagged = table.filter(pl.col("contradiction") != "")
    depth_flags = flagged.filter(pl.col("search") == "depth")
    # σb² = 0.05 and 0.2 start σw² = 2 at depth 36 (its cutoff) and gallop down to 28; the confirmation one step
    # shallower finds 24 failing. σb² = 0 starts at 8 and gallops up to a failing 24; the confirmation one step
    # deeper finds 28 passing — flagged, and the search goes on above it.
    assert depth_flags.height == 3 and sorted(depth_flags["sigma_b2"]) == [0.0, 0.05, 0.2]
    assert set(depth_flags["sigma_w2"]) == {2.0}
    assert (
        depth_flags.sort("sigma_b2")["contradiction"].to_list()
        == ["depth 28 passed although depth 24 failed"] + ["depth 24 failed although depth 28 passed"] * 2
    )
    finals = table.filter(pl.col("search") == "depth").sort("step").group_by("sigma_b2", "sigma_w2").last()
    assert finals.filter(pl.col("sigma_w2") == 2.0)["bracket_low"].to_list() == [28.0] * 3  # the deepest pass
    assert finals.filter(pl.col("sigma_w2") != 2.0)["bracket_low"].unique().to_list() == [20.0]
    # the edge checks train depth 36 just inside and just outside both edges; nothing trains that deep here, so
    # the two inside checks of each σb² contradict the prediction, and say so
    checks = table.filter(pl.col("search") == "edge_check")
    assert checks.height == 3 * 4 and (checks["asked"] == 36).all() and not checks["passed"].any()
    assert checks.filter(pl.col("contradiction") != "")["reason"].str.contains("just inside").all()
    assert checks.filter(pl.col("contradiction") != "").height == 3 * 2
    # what the full grid would have spent: the trained points as measured, the others at the full budget
    from infoflow_ray.analysis import search as search_frames

    cost = search_frames.search_cost(store).filter(pl.col("sigma_b2") == 0.05).row(0, named=True)
    summary = store.scan("train_summary").filter(pl.col("sigma_b2") == 0.05).collect()
    rate = (summary["seconds"] / (summary["depth"] * summary["epochs"])).median()
    on_grid = summary.filter(pl.col("sigma_w2").is_in(grid.sigma_w2))  # not the edge checks between them
    trained = set(on_grid.select("sigma_w2", "depth").rows())
    untrained = [d for s in grid.sigma_w2 for d in grid.depths if (s, d) not in trained]
    assert cost["trainings"] == summary.height < cost["grid_trainings"] == 6 * 12
    assert cost["grid_training_seconds_estimate"] == pytest.approx(
        on_grid.height * 1.0 + sum(untrained) * grid.train.max_epochs * rate  # untrained: the full budget
    )
    for sigma_b2, part in table.filter(pl.col("search") == "peak").group_by("sigma_b2"):
        critical = float(theory.critical_sigma_w2(sigma_b2[0]))
        low, high = part["bracket_low"][0], part["bracket_high"][0]
        assert low < critical < high and low <= part["asked"][0] <= high  # the bracket holds the truth
        interval = table.filter(pl.col("search") == "sigma_w2_interval", pl.col("sigma_b2") == sigma_b2[0]).sort("step")
        edges = interval["bracket_low"][-1], interval["bracket_high"][-1]
        assert edges == pytest.approx((critical - 0.25, critical + 0.25), abs=0.02)  # ℓ_c = 36 exactly there


SEARCH_BAD_INPUTS = [
    (["--search", "--depth-resolution", "0"], "search.depth_resolution"),
    (["--search", "--target-depth", "7"], "search.target_depth"),  # the depth-6 cascade's cutoff stops at 4
    (["--search", "--sigma-b2", ","], "sigma_b2"),
    (["--search", "--sigma-w2-tolerance", "0"], "search.sigma_w2_tolerance"),
    (["--search", "--only", "baseline"], "kinds"),
]


@pytest.mark.parametrize("argv, needle", SEARCH_BAD_INPUTS, ids=[a[1] + "-" + a[0][-1] for a in SEARCH_BAD_INPUTS])
def test_bad_search_settings_fail_in_one_line_before_any_work(tmp_path, capsys, argv, needle):
    code = main(["--preset", "tiny", "--results", str(tmp_path / "results"), *argv])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert err.startswith(f"error: {needle}") and err.count("\n") == 1
    assert not (tmp_path / "results").exists()


def test_dry_run_states_the_full_grid_and_the_search_worst_case(tmp_path, capsys):
    assert main(["--preset", "default", "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "the full grid would run 8 cascades and 96 trainings" in out
    assert "at most 64 trainings (8 per (σw², seed) over 12 depths" in out
    assert not (tmp_path / "r").exists()


def test_readme_reading_example_runs_on_search_results(searched, capsys):
    """docs/results.md's first example, run as written on a search's results folder."""
    from doc_examples import python_block

    block = python_block("docs/results.md", "# Reading the results")
    assert '"results/default"' in block
    names: dict = {}
    exec(block.replace('"results/default"', repr(str(searched))), names)
    assert names["cutoffs"]["measure"].unique().to_list() == ["kl_per_image"] and names["cutoffs"].height == 3
    passing = {s: hi[0] for (s, _seed), hi in brackets_of_search(searched).items() if hi[0] is not None}  # seed 0
    assert dict(names["trainable"].select("sigma_w2", "trainable_depth").rows()) == passing  # σw² 0.5: none
    steps = names["steps"]
    assert steps.height > 3 and steps["reason"].str.starts_with("start at the cascade's prediction").sum() == 3
    assert capsys.readouterr().out.count("shape: (") == 4  # it printed its four frames


def test_analysis_draws_what_the_search_found(searched, tmp_path):
    """jobs/analyze.py on a search: the report's search section holds the brackets of the search table, and the
    phase diagram draws them, the peak and every ℓ_train bracket as data (not only pixels)."""
    sys.path.insert(0, str(ROOT / "jobs"))
    import analyze

    from infoflow_ray import analysis, plots
    from infoflow_ray.analysis import search as search_frames

    assert analyze.main([str(searched), "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "## Adaptive search" in report and (tmp_path / "critical_line.png").is_file()
    store = ResultStore.open(str(searched), create=False)
    brackets = search_frames.trainable_brackets(store)
    assert brackets.height == 3 and brackets["done"].all()
    for row in brackets.iter_rows(named=True):
        high = "–" if row["bracket_high"] is None else str(row["bracket_high"])
        assert f"| {row['sigma_w2']:.3g} | {row['trainable_depth']} | {high} |" in report
    peaks = search_frames.cutoff_peaks(store)
    fig = plots.phase_diagram(
        analysis.accuracy_grid(store), analysis.cutoffs_by_sigma(store), brackets=brackets, peak=peaks
    )
    ax = fig.axes[0]
    drawn = [c for c in ax.collections if c.get_label().startswith("search: $\\ell_{train}$ bracket")]
    assert len(drawn) == 1
    segments = sorted((float(seg[0][0]), float(seg[0][1]), float(seg[1][1])) for seg in drawn[0].get_segments())
    want = sorted(
        (r["sigma_w2"], float(r["trainable_depth"]), float(r["bracket_high"]))
        for r in brackets.iter_rows(named=True)
        if r["bracket_high"] is not None
    )
    assert segments == want
    peak_lines = [line for line in ax.get_lines() if line.get_label().startswith("search: cutoff peak")]
    assert [line.get_xdata()[0] for line in peak_lines] == [peaks["peak_sigma_w2"][0]]

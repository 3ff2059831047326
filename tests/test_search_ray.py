"""The adaptive search end to end: real Ray (local cluster), real torch trainings and cascades, real Parquet.

- on a small case the search's ℓ_train brackets equal the full grid's over the same depths, and the full grid
  run afterwards into the same folder reuses every task the search ran (same task ids);
- a search killed midway and run again redoes no finished task and takes the decisions of an undisturbed run
  (the killed one with the per_round policy, the undisturbed one per_result: the policies decide alike);
- the σw² bisection finds an edge within its tolerance, checked against cascades computed without Ray;
- non-monotone outcomes and the critical line land in the ``search`` table (outcomes written to a real store);
- bad search settings fail in one line before any work starts.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from drivers import start_job, wait_for

from infoflow_ray import theory
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep import adaptive
from infoflow_ray.sweep.driver import run_grid
from infoflow_ray.sweep.grid import resolve_grid
from infoflow_ray.sweep.jobs import EXIT_BAD_INPUT, job

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


@pytest.fixture(scope="module")
def both_sides(tmp_path_factory, ray_local) -> tuple[Path, Path]:
    """The BOTH_SIDES search, then the full grid of the same settings in the same folder; and a copy of the
    folder as the search left it (for the tests that read a search's results)."""
    results = tmp_path_factory.mktemp("both") / "results"
    search = resolve_grid("tiny", overrides={**BOTH_SIDES, "results": str(results), "search": {"enabled": True}})
    outcome = run_grid(search, progress_interval_seconds=300)
    assert not outcome.failed and not outcome.interrupted
    searched = results.parent / "searched"
    shutil.copytree(results, searched)
    run_grid(resolve_grid("tiny", overrides={**BOTH_SIDES, "results": str(results)}), progress_interval_seconds=300)
    return searched, results


def test_search_brackets_equal_the_full_grid_on_both_sides_which_reuses_the_searched_tasks(both_sides):
    searched, results = both_sides
    searched_runs = ResultStore.open(str(searched), create=False).scan("runs").collect()
    search_brackets = brackets_of_search(searched)
    store = ResultStore.open(str(results), create=False)
    # every (σw², seed) found a trainable depth and a failing one inside the list: an edge, not the list's end
    assert set(search_brackets) == {(s, seed) for s in (0.5, 4.0) for seed in (0, 1)}
    for key, (passed, failed) in search_brackets.items():
        assert passed in BOTH_SIDES["depths"] and failed in BOTH_SIDES["depths"] and passed < failed, key
    # the ordered σw² trains less deep than the chaotic one at this budget
    assert max(search_brackets[0.5, seed][0] for seed in (0, 1)) < min(search_brackets[4.0, seed][0] for seed in (0, 1))
    grid = resolve_grid("tiny", overrides={**BOTH_SIDES, "results": str(results)})
    n_grid_trainings = sum(t.kind == "baseline" for t in grid.tasks())
    assert searched_runs.filter(pl.col("kind") == "baseline").height < n_grid_trainings  # it did skip some
    runs = store.scan("runs").collect()
    assert runs["task_id"].is_unique().all()
    assert runs.filter(pl.col("kind") == "baseline").height == n_grid_trainings
    # the search's tasks are the grid's: not one of them ran again
    before = dict(searched_runs.select("task_id", "started_at").rows())
    assert {t: s for t, s in runs.select("task_id", "started_at").rows() if t in before} == before
    assert search_brackets == brackets_of_grid(results)


def _search_driver(results: Path, address: str, config_text: str = LADDER_TOML) -> subprocess.Popen:
    config = results.parent / "search.toml"
    config.write_text(config_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
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
        env={**env, "PYTHONUNBUFFERED": "1"},  # its progress lines reach the pipe before it is killed
    )


def _cascade_lines_before_trainings_asked(output: str) -> int:
    """How many cascades had ended (their progress lines) when the search first asked for trainings."""
    ended = 0
    for line in output.splitlines():
        if "asked next:" in line and "trainings" in line:
            return ended
        ended += "cutoff per-image KL" in line
    raise AssertionError(f"no trainings asked in:\n{output}")


@pytest.mark.system
def test_a_killed_per_round_search_resumes_without_redoing_a_task_and_takes_the_per_result_decisions(
    searched, tmp_path, ray_address
):
    """The driver's two ``search.policy`` values and a kill, on the same small search (``searched`` ran the
    default, per_result, undisturbed). A per_round search, killed once its 3 coarse cascades and 2 trainings are
    stored and run again, redoes no finished task and ends with the same search rows, trainings and cutoffs as the
    undisturbed per_result one. Per round asked for trainings only once all 3 coarse cascades had ended and
    started none before; per result asked as soon as the first cascade was in — on 2 CPUs the third cascade
    starts only after that, so it was still to come."""
    results = tmp_path / "results"
    proc = _search_driver(results, ray_address, LADDER_TOML + '[search]\npolicy = "per_round"\n')
    stored = lambda: len(list((results / "runs").rglob("*.parquet"))) >= 5  # the 3 cascades and 2 trainings
    wait_for(proc, stored, "5 tasks stored by the search")
    os.killpg(proc.pid, signal.SIGKILL)  # the driver (and with it its job's workers), mid-search
    killed_output, _ = proc.communicate(timeout=60)
    assert _cascade_lines_before_trainings_asked(killed_output) == 3
    assert _cascade_lines_before_trainings_asked((searched.parent / "out.txt").read_text()) < 3
    store = ResultStore.open(str(results), create=False)
    before = dict(store.scan("runs").select("task_id", "started_at").collect().rows())
    total = store.scan("runs").collect().height
    assert total < ResultStore.open(str(searched), create=False).scan("runs").collect().height

    outcome = run_grid(small_search(results, policy="per_round"), progress_interval_seconds=300)
    assert not outcome.failed and not outcome.interrupted
    assert outcome.skipped["cascade"] + outcome.skipped["baseline"] >= len(before)
    runs = store.scan("runs").collect()
    assert runs["task_id"].is_unique().all()
    assert {t: s for t, s in runs.select("task_id", "started_at").rows() if t in before} == before
    first = runs.filter(pl.col("kind") == "baseline")["started_at"].min()
    assert first >= runs.filter(pl.col("kind") == "cascade")["finished_at"].max()  # per round: no training early
    got, want = values(results), values(searched)
    for table in want:
        g, w = got[table], want[table]
        if table == "train_summary":  # a training killed mid-way went on from its checkpoint: the same epochs
            g, w = g.drop("resumed_from_epoch"), w.drop("resumed_from_epoch")
        assert g.equals(w), (table, [c for c in w.columns if c not in g.columns or not g[c].equals(w[c])])
    rungs = got["search"].filter(pl.col("search") == "rung")  # the same rungs: ℓ_train within 1 of 2 epochs
    assert rungs.height == 3 and (rungs["budget"] == 1).all()


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
            "widths": "wide",
            "train": {"max_epochs": 5, "lr": 1e-3, "ladder": None},  # one rung below 5 epochs decides nothing here
            "search": {"target_depth": 36, "sigma_w2_tolerance": 0.02, "edge_trainings": True, "resolve_rungs": False},
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
    # resolving all 6 rungs of the ladder can need every depth; without it a depth search needs at most 8 of 12
    assert "at most 96 trainings (12 per (σw², seed) over 12 depths with each of the 6 rungs resolved" in out
    assert (
        main(["--preset", "default", "--results", str(tmp_path / "r"), "--dry-run", "--no-search.resolve-rungs"]) == 0
    )
    assert "at most 64 trainings (8 per (σw², seed) over 12 depths" in capsys.readouterr().out
    assert not (tmp_path / "r").exists()


def test_readme_reading_example_runs_on_search_results(both_sides, capsys):
    """docs/results.md's first example, run as written on a search's results folder."""
    from doc_examples import python_block

    searched, _ = both_sides
    block = python_block("docs/results.md", "# Reading the results")
    assert '"results/default"' in block
    names: dict = {}
    exec(block.replace('"results/default"', repr(str(searched))), names)
    cascades = ResultStore.open(str(searched), create=False).scan("runs").filter(kind="cascade").collect().height
    assert names["cutoffs"]["measure"].unique().to_list() == ["kl_per_image"] and names["cutoffs"].height == cascades
    brackets = brackets_of_search(searched)  # (σw², seed) → (deepest passed, shallowest failed)
    passing = {s: max(p for (s2, _), (p, _) in brackets.items() if s2 == s) for s, _ in brackets}
    assert dict(names["trainable"].select("sigma_w2", "trainable_depth").rows()) == passing  # over both seeds
    steps = names["steps"]
    starts = steps["reason"].str.starts_with("start at the cascade's prediction").sum()
    assert steps.height > len(brackets) and starts == len(brackets)  # one depth search per (σw², seed)
    assert capsys.readouterr().out.count("shape: (") == 4  # it printed its four frames


def test_analysis_draws_what_the_search_found(both_sides, tmp_path):
    """jobs/analyze.py on a search: the report's search section holds the brackets of the search table, and the
    phase diagram draws them, the peak and every ℓ_train bracket as data (not only pixels)."""
    sys.path.insert(0, str(ROOT / "jobs"))
    import analyze

    from infoflow_ray import analysis, plots
    from infoflow_ray.analysis import search as search_frames

    searched, _ = both_sides
    assert analyze.main([str(searched), "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "## Adaptive search" in report and (tmp_path / "critical_line.png").is_file()
    store = ResultStore.open(str(searched), create=False)
    brackets = search_frames.trainable_brackets(store)
    assert brackets.height == 2 and brackets["done"].all()  # σw² 0.5 and 4
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

"""Faults and bad input: killed or interrupted drivers, damaged files, concurrent drivers, refused grids.

Each driver here is a real `python jobs/full_grid.py` process on two σw² of the tiny preset (6 of its 9 tasks),
joined to the session's Ray cluster (``--address``): killing it ends its job's workers as killing its own local
Ray would. After every fault the results must hold every task exactly once, with the values of the session's
undisturbed tiny run of the same seeds.
"""

import json
import math
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from drivers import start_job, wait_for
from results_science import science

from infoflow_ray.store import MANIFEST, ResultStore
from infoflow_ray.sweep.grid import resolve_grid
from infoflow_ray.sweep.jobs import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED, job

main = job("grid").main

ROOT = Path(__file__).resolve().parents[1]
SIGMA_W2 = "0.5,1.76"
TASKS = resolve_grid("tiny", overrides={"sigma_w2": (0.5, 1.76)}).tasks()


def _driver(results: Path, address: str, *extra: str) -> subprocess.Popen:
    """The main job on two σw² of the tiny preset, in its own process group, on the cluster at ``address``."""
    args = ("--preset", "tiny", "--sigma-w2", SIGMA_W2, "--results", str(results), "--address", address)
    return start_job("full_grid.py", *args, *extra)


def _wait_for_runs(results: Path, n: int, proc: subprocess.Popen) -> None:
    wait_for(proc, lambda: len(list((results / "runs").rglob("*.parquet"))) >= n, f"{n} tasks finished")


def _wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 300) -> None:
    """Read the driver's progress lines (stdout) until one holds ``needle``."""
    found = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            if needle in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert found.is_set(), f"no progress line with {needle!r} within {timeout} s (exit code {proc.poll()})"


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _assert_exactly_once_and_equal(results: Path, reference: Path) -> None:
    runs = ResultStore.open(str(results), create=False).scan("runs").collect()
    ids = sorted(t.task_id for t in TASKS)
    assert sorted(runs["task_id"]) == ids
    got, want = science(results), science(reference, ids)
    for table in want:
        assert got[table].equals(want[table]), table


@pytest.mark.system
def test_driver_faults_one_after_another_resume_to_every_task_once_with_identical_values(
    tmp_path, tiny_results, ray_address
):
    """One results folder through every driver fault in turn (one grid's work, not one per fault): a second driver
    on the folder is refused in one line; Ctrl-C stops the first cleanly; a rerun is killed mid-grid (SIGKILL, its
    job's workers with it), then a finished task's file is truncated and a dead writer's temp file left beside it;
    SIGTERM stops the next rerun cleanly while a training runs; the last run completes. Every task is then stored
    exactly once, with the values of the session's undisturbed tiny run."""
    results = tmp_path / "results"
    serial = tmp_path / "serial.toml"  # one task at a time: the same results, more time to interrupt it
    serial.write_text("[resources]\ncascade_workers = 1\nmax_concurrent_trials = 1\n")
    first = _driver(results, ray_address, "--config", str(serial))
    _wait_for_runs(results, 1, first)
    second = _driver(results, ray_address)  # a second driver on the same folder would race the first one's Tune state
    _, err2 = second.communicate(timeout=120)
    assert second.returncode == EXIT_BAD_INPUT
    assert "another driver is running" in err2 and err2.strip().count("\n") == 0
    os.kill(first.pid, signal.SIGINT)  # the driver only, as a terminal's Ctrl-C would reach it
    _, err1 = first.communicate(timeout=180)
    _kill_group(first, signal.SIGKILL)  # whatever of it outlived it
    assert first.returncode == EXIT_INTERRUPTED, err1[-3000:]
    assert "run the same command again to resume" in err1

    stored = len(list((results / "runs").rglob("*.parquet")))
    killed = _driver(results, ray_address, "--config", str(serial))
    _wait_for_runs(results, stored + 1, killed)  # one more task stored, the rest still to run
    _kill_group(killed, signal.SIGKILL)  # the driver (and with it its job's workers), mid-grid
    killed.wait(timeout=60)
    assert len(list((results / "runs").rglob("*.parquet"))) < len(TASKS)
    # a finished task's runs file truncated (a crashed disk write) and a stray temp file of a dead writer
    runs_file = next((results / "runs").rglob("*.parquet"))
    data = runs_file.read_bytes()
    runs_file.write_bytes(data[: len(data) // 2])
    (runs_file.parent / ".tmp-crashed-writer.parquet").write_bytes(b"PAR1 half")
    with pytest.warns(UserWarning, match="unreadable"):
        ResultStore.open(str(results), create=False).scan("runs").collect()

    # SIGTERM (`kill`, `ray job stop`, a cluster scheduler's stop) of the resumed run while a training runs: the
    # same clean stop, not Ray's crash report of the signal (a C++ stack, then abort: signal 6)
    stopped = _driver(results, ray_address, "--config", str(serial))
    _wait_for_line(stopped, "started ")  # a baseline trial started
    os.kill(stopped.pid, signal.SIGTERM)
    _, err3 = stopped.communicate(timeout=180)
    _kill_group(stopped, signal.SIGKILL)
    assert stopped.returncode == EXIT_TERMINATED, err3[-3000:]
    assert "run the same command again to resume" in err3
    for crash in ("SIGTERM received", "signal 6", "Aborted", "Traceback"):
        assert crash not in err3, err3[-3000:]
    rerun = _driver(results, ray_address)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    _assert_exactly_once_and_equal(results, tiny_results)


def _schema_mismatch(path: Path) -> None:
    path.mkdir()
    (path / MANIFEST).write_text(json.dumps({"schema_version": 999}))


BAD_INPUTS = [
    ("unknown dataset", ["--datasets", "imagenet"], None, "imagenet"),
    ("σw² ≤ 0", ["--sigma-w2=-1,1"], None, "sigma_w2"),
    ("depth < 3", ["--depths", "2"], None, "depth"),
    ("empty grid", ["--sigma-w2", ","], None, "sigma_w2"),
    (
        "malformed config",
        ["--config", "{tmp}/bad.toml"],
        lambda tmp: (tmp / "bad.toml").write_text("x = [1,"),
        "malformed",
    ),
    ("missing config", ["--config", "{tmp}/none.toml"], None, "does not exist"),
    ("results is a file", ["--results", "{tmp}/file"], lambda tmp: (tmp / "file").write_text("x"), "is a file"),
    ("incompatible schema", ["--results", "{tmp}/old"], lambda tmp: _schema_mismatch(tmp / "old"), "999"),
    (
        "unknown preset config key",
        ["--config", "{tmp}/k.yaml"],
        lambda tmp: (tmp / "k.yaml").write_text("speed: 1"),
        "speed",
    ),
]


@pytest.mark.parametrize("name, argv, setup, needle", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, name, argv, setup, needle):
    if setup:
        setup(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--results" not in argv:
        argv += ["--results", str(tmp_path / "results")]
    code = main(["--preset", "tiny", *argv])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, nothing changed


def _extreme_cascade(sigma_w2: float) -> tuple[dict, str]:
    """The stored rows and the runs status of a depth-6 cascade at ``sigma_w2`` on small synthetic data."""
    from infoflow_ray.config import CascadeSpec, NetworkSpec
    from infoflow_ray.data import load_dataset
    from infoflow_ray.sweep.grid import DataOptions, Task
    from infoflow_ray.sweep.task_runner import run_cascade

    options = DataOptions(synthetic_inputs=64, synthetic_train=500, synthetic_test=100)
    data = load_dataset("synthetic", n_inputs=64, n_train=500, n_test=100)
    task = Task("cascade", "synthetic", NetworkSpec(sigma_w2, 6, n_inputs=64), 0, options, cascade=CascadeSpec())
    rows, status, _ = run_cascade(task, data, "cpu")
    return rows, status


def _by_measure(rows: list[dict]) -> dict[str, dict]:
    return {r["measure"]: r for r in rows}


def _curve(rows: dict, measure: str) -> list[dict]:
    return sorted((r for r in rows["curves"] if r["measure"] == measure), key=lambda r: r["layer"])


LAST_LAYER = 4  # depth 6, `wide` profile: the cutoff looks at layers 0..L-2


def test_extreme_sigma_w2_gives_flagged_results_not_a_crash():
    """σw² far out on both sides, and beyond float32: every cascade finishes and its rows say what happened.

    σw² = 1e-3 (deep order): the input's signal shrinks ~30× per layer, the reconstructions from layer 4 on are
    identical, every pixel's spread is clamped to the σ floor and the differential-entropy curve is flagged
    saturated (ℓ_c = 3). σw² = 50 (deep chaos, tanh mostly at ±1): still finite, status 'ok', no layer
    collapses (no clamped pixel) and no saturated tail. σw² = 1e80: the float32 weights overflow to inf, the
    activations are NaN: status 'nonfinite', every cutoff finite=False with a NaN layer, every curve value of
    layers ≥ 1 stored as NaN and flagged, layer 0 (the input itself) still finite.
    """
    from infoflow_ray.config import CascadeSpec
    from infoflow_ray.entropy import HALF_LN_2PIE

    floor = HALF_LN_2PIE + math.log(CascadeSpec().sigma_floor_rel / 64)
    for sigma_w2 in (1e-3, 50.0, 1e80):
        rows, status = _extreme_cascade(sigma_w2)
        for r in rows["curves"]:  # the flag always follows the stored value
            assert r["finite"] == math.isfinite(r["value"]), (sigma_w2, r["measure"], r["layer"])
        cutoffs = _by_measure(rows["cutoffs"])
        assert set(cutoffs) == {"kl_mean", "kl_median_normalised", "diff_entropy", "kl_per_image"}
        assert all(c["last_layer"] == LAST_LAYER for c in cutoffs.values())
        if sigma_w2 == 1e80:
            assert status == "nonfinite"
            for c in cutoffs.values():
                assert not c["finite"] and not c["saturated"] and math.isnan(c["cutoff_layer"]), c["measure"]
            flagged = {(r["measure"], r["layer"]) for r in rows["curves"] if not r["finite"]}
            for measure in ("kl_mean", "kl_median", "diff_entropy", "decoder_loss"):
                assert {layer for m, layer in flagged if m == measure} == set(range(1, 7)), measure
            continue
        assert status == "ok"
        assert all(r["finite"] for r in rows["curves"]) and all(c["finite"] for c in cutoffs.values())
        entropy_cutoff = cutoffs["diff_entropy"]
        clamped = [r["value"] for r in _curve(rows, "clamped_pixels")]
        if sigma_w2 == 50.0:
            assert clamped == [0] * 7
            assert entropy_cutoff["cutoff_layer"] == LAST_LAYER and not entropy_cutoff["saturated"]
        else:
            assert clamped[4:] == [64] * 3  # layers 4..6: every pixel on the floor
            assert [r["value"] for r in _curve(rows, "diff_entropy")][4:] == pytest.approx([floor] * 3, abs=1e-9)
            assert entropy_cutoff["cutoff_layer"] == 3 and entropy_cutoff["saturated"]

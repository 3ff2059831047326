"""Start a job script the way a user does and wait for what it writes, for the tests that kill, interrupt or race
drivers; run jobs/analyze.py's ``main`` in-process for the tests that only read what it writes."""

import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]


def start_job(script: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    """``python jobs/<script> ARGS`` from the repository root, in its own process group (so its local Ray can be
    killed with it), without $RAY_ADDRESS (it starts its own local Ray); ``env`` replaces the environment."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    return subprocess.Popen(
        [sys.executable, f"jobs/{script}", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(
    proc: subprocess.Popen, ready: Callable[[], bool], what: str, timeout: float = 300, poll: float = 0.5
) -> None:
    """Poll ``ready()`` until it holds while the driver ``proc`` runs (the moment a test kills or interrupts it);
    fail with the driver's output if it exits first, and with "no ``what``" after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        time.sleep(poll)


def analyze(*args) -> SimpleNamespace:
    """``jobs/analyze.py ARGS`` run as its ``main`` in this process (no interpreter start and imports: seconds per
    call), with ``returncode``, ``stdout`` and ``stderr`` as ``subprocess.run`` gives them. The script as a
    process is run by test_analysis.py's test_analyze_job_writes_figures_and_report."""
    if str(ROOT / "jobs") not in sys.path:
        sys.path.insert(0, str(ROOT / "jobs"))
    import analyze as job

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = job.main([str(a) for a in args])
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())

"""Start a job script the way a user does, for the tests that kill, interrupt or race drivers."""

import os
import subprocess
import sys
from pathlib import Path

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

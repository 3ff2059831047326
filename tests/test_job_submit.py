"""`ray job submit -- python jobs/full_grid.py --preset tiny` on a local 3-node cluster with token auth.

The cluster is cluster/local_multinode.sh (head + 2 workers on this machine, fresh token, clean HOME); each
worker *declares* one GPU (Ray's resource, no real device), so the scheduling is resource-driven: the cascade
actors must ask for a GPU and land on the two GPU nodes, never on the head. The job's results must land in the
shared path with tasks spread over more than one node, and the test stops exactly the processes the script
started.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.grid import resolve_grid

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "cluster" / "local_multinode.sh"
RAY_CLI = Path(sys.executable).with_name("ray")


def _exports(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        words = shlex.split(line)
        if words[:1] == ["export"]:
            key, value = words[1].split("=", 1)
            out[key] = value
    return out


@pytest.mark.skipif(not RAY_CLI.exists(), reason="the `ray` CLI is not installed next to this Python")
def test_job_submit_runs_the_tiny_grid_across_nodes(tmp_path):
    home, state, results = tmp_path / "home", tmp_path / "state", tmp_path / "results"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "INFOFLOW_"))}
    env.update(HOME=str(home), PATH=f"{RAY_CLI.parent}{os.pathsep}{env.get('PATH', '')}")
    start = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "start",
            "--state-dir",
            str(state),
            "--workers",
            "2",
            "--head-cpus",
            "1",
            "--worker-cpus",
            "1",
            "--worker-gpus",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        assert start.returncode == 0, start.stderr[-2000:]
        job_env = {**env, **_exports(start.stdout)}
        nodes = json.loads((state / "nodes.json").read_text())
        submit = subprocess.run(
            [
                str(RAY_CLI),
                "job",
                "submit",
                "--address",
                job_env["RAY_API_SERVER_ADDRESS"],
                "--working-dir",
                str(ROOT),
                "--",
                sys.executable,
                "jobs/full_grid.py",
                "--preset",
                "tiny",
                "--results",
                str(results),
            ],
            env=job_env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
        assert submit.returncode == 0, (submit.stdout + submit.stderr)[-3000:]
        assert "succeeded" in submit.stdout.lower()
    finally:
        subprocess.run(
            ["bash", str(SCRIPT), "stop", "--state-dir", str(state)], env=env, capture_output=True, timeout=120
        )
    store = ResultStore.open(str(results), create=False)
    runs = store.scan("runs").collect()
    tasks = resolve_grid("tiny").tasks()
    assert sorted(runs["task_id"]) == sorted(t.task_id for t in tasks)
    gpu_nodes = {n["node_id"] for n in nodes if n["resources"].get("GPU", 0) >= 1}
    assert len(gpu_nodes) == 2 and len(nodes) == 3
    assert runs["node_id"].n_unique() > 1  # the work was spread over the cluster's nodes
    cascade_nodes = set(runs.filter(pl.col("kind") == "cascade")["node_id"])
    assert cascade_nodes == gpu_nodes  # one GPU-asking actor per GPU node, none on the GPU-less head
    assert set(runs["device"]) == {"cpu:1threads"}  # a declared GPU is not a device: torch stayed on the CPU

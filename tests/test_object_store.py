"""The whole path against an S3-compatible server (moto's, started here): a grid writes its results and Tune's
state to a bucket, is killed, resumes, leaves no checkpoint behind, and `jobs/analyze.py` reads it back.
Credentials come from the standard AWS variables; bad ones fail in one line before any work starts."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from drivers import start_job, wait_for
from polars.testing import assert_frame_equal
from results_science import science

from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.jobs import EXIT_BAD_INPUT

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "infoflow"
# One σw² of the tiny preset: its three tasks have the ids (and must have the values) of the tiny run's.
GRID = ["--preset", "tiny", "--sigma-w2", "1.76"]


@pytest.fixture(scope="module")
def s3():
    """A local S3-compatible server with one bucket; yields the environment a driver needs to reach it."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    yield env, client
    server.stop()


def _keys(client, prefix: str) -> list[str]:
    """The objects under ``prefix``, without the empty folder markers pyarrow writes."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")]


def _env(extra: dict) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "AWS_"))}
    return {**base, **extra}


def _driver(results: str, env: dict, *extra: str) -> subprocess.Popen:
    return start_job("full_grid.py", *GRID, "--results", results, *extra, env=_env(env))


@pytest.mark.system
def test_a_grid_on_an_object_store_survives_a_kill_and_reads_back_like_a_local_run(
    s3, tiny_results, tmp_path, monkeypatch
):
    env, client = s3
    results = f"s3://{BUCKET}/grid"
    first = _driver(results, env)
    wait_for(first, lambda: bool(_keys(client, "grid/runs/")), "task stored on the object store")
    os.killpg(first.pid, signal.SIGKILL)  # the driver and its local Ray, mid-grid
    first.wait(timeout=60)
    assert 1 <= len(_keys(client, "grid/runs/")) < 3

    resumed = _driver(results, env)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert not [k for k in _keys(client, "grid/") if "/_tune/" in f"/{k}" or "checkpoint_" in k]

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    remote = ResultStore.open(results, create=False)
    local = ResultStore.open(str(tiny_results), create=False)
    ids = sorted(remote.scan("runs").collect()["task_id"])
    assert len(ids) == 3 and not remote.verify()
    for table, frame in science(remote).items():
        assert_frame_equal(frame, science(local, ids)[table])

    analysis = tmp_path / "analysis"
    report = subprocess.run(
        [sys.executable, "jobs/analyze.py", results, "--out", str(analysis)],
        cwd=ROOT,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    assert "1.76" in (analysis / "report.md").read_text()
    assert [p.name for p in analysis.glob("phase_diagram_*.png")] == ["phase_diagram_mnist_t10k_wide_sb0.05.png"]


@pytest.mark.parametrize(
    "what, results, drop, needle",
    [
        (
            "missing credentials",
            f"s3://{BUCKET}/nocreds",
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
            "AWS_ACCESS_KEY_ID",
        ),
        ("wrong bucket", "s3://no-such-bucket/grid", (), "no-such-bucket"),
    ],
)
def test_bad_credentials_or_bucket_fail_in_one_line_before_any_work(s3, what, results, drop, needle):
    env, client = s3
    proc = _driver(results, {k: v for k, v in env.items() if k not in drop})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_BAD_INPUT, err[-3000:]
    assert err.startswith("error: ") and err.strip().count("\n") == 0 and needle in err, err
    assert "task" not in out
    assert not _keys(client, results.removeprefix(f"s3://{BUCKET}/") + "/runs")

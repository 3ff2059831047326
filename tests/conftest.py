"""Shared fixtures: one real local Ray for the in-process tests, and the `tiny` preset's real results."""

import io
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray cluster with 2 CPUs (two cascade actors / two Tune trials at once), shut down at the end."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_address(ray_local) -> str:
    """The session cluster's address, for job scripts started as processes (``--address``): they join it instead
    of starting a local Ray of their own (seconds per driver). Killing such a driver ends its job's workers and
    actors (Ray cleans up after a dead driver); the cluster stays up for the next driver."""
    return ray_local.get_runtime_context().gcs_address


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory, ray_local) -> Path:
    """The `tiny` preset run once for the session; tests that change results must copy it (`tiny_copy`)."""
    from infoflow_ray.sweep.driver import run_grid
    from infoflow_ray.sweep.grid import resolve_grid

    path = tmp_path_factory.mktemp("tiny") / "results"
    out = io.StringIO()
    outcome = run_grid(resolve_grid("tiny", overrides={"results": str(path)}), out=out, progress_interval_seconds=300)
    assert not outcome.failed, outcome.failed
    (path.parent / "progress.txt").write_text(out.getvalue())  # its progress lines, beside (not in) the results
    return path


@pytest.fixture
def tiny_copy(tiny_results, tmp_path) -> Path:
    """A private copy of the tiny results (including Tune's state) that a test may change."""
    target = tmp_path / "results"
    shutil.copytree(tiny_results, target)
    return target

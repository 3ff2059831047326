"""Cluster deployment files: the Ray cluster launcher configs pass the validation `ray up` runs, the KubeRay
manifests carry what the RayCluster/RayJob CRDs need, every image is the installed Ray's, and
cluster/local_multinode.sh starts a head and two workers on this machine, runs `ray job submit -- python
jobs/full_grid.py` across them and stops exactly what it started."""

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.grid import resolve_grid

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER_CONFIGS = [ROOT / "ray_cluster.yaml", ROOT / "cluster" / "gcp.yaml"]
KUBERAY_MANIFESTS = sorted((ROOT / "cluster" / "kuberay").glob("*.yaml"))
LOCAL_SCRIPT = ROOT / "cluster" / "local_multinode.sh"
# Official Ray images: rayproject/ray:<ray version>-py3<minor>-gpu (or -cuXYZ for a pinned CUDA).
RAY_GPU_IMAGE = re.compile(r"rayproject/ray:(?P<version>[0-9.]+)-py3[0-9]+-(gpu|cu[0-9]+)")


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def _assert_installed_ray_image(image: str):
    match = RAY_GPU_IMAGE.fullmatch(image)
    assert match, f"{image!r} is not an official Ray GPU image tag"
    assert match["version"] == ray.__version__, f"{image} does not match the installed ray {ray.__version__}"


# --- Ray cluster launcher (ray up) -------------------------------------------------------------------------


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=_ids(LAUNCHER_CONFIGS))
def test_launcher_config_passes_the_validation_ray_up_runs(path):
    """What `ray up` does before it talks to the cloud (commands._bootstrap_config): merge the provider's
    defaults, then check the result against Ray's autoscaler JSON schema and its cross-field rules. The provider
    bootstrap that follows needs cloud credentials and is not run here."""
    config = prepare_config(copy.deepcopy(yaml.safe_load(path.read_text())))
    validate_config(config)


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=_ids(LAUNCHER_CONFIGS))
def test_launcher_config_has_cpu_head_gpu_workers_from_zero_and_token_auth(path):
    config = yaml.safe_load(path.read_text())
    node_types = config["available_node_types"]
    head = node_types.pop(config["head_node_type"])
    assert head["resources"].get("CPU") == 0 and not head["resources"].get("GPU"), "no tasks on the head"
    assert node_types, "no worker types"
    for name, worker in node_types.items():
        assert worker["min_workers"] == 0, f"{name} must scale from zero"
        assert worker["max_workers"] >= 1 and worker["resources"]["GPU"] >= 1, name
    assert {n["resources"]["GPU"] for n in node_types.values()} >= {1}, "a one-GPU worker type"
    assert any(n["resources"]["GPU"] > 1 for n in node_types.values()), "a multi-GPU worker type"
    assert config["idle_timeout_minutes"] > 0 and config["max_workers"] >= 1

    docker = config["docker"]
    _assert_installed_ray_image(docker["image"])
    env = dict(opt[3:].split("=", 1) for opt in docker["run_options"] if opt.startswith("-e "))
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["RAY_AUTH_TOKEN_PATH"] in config["file_mounts"], "the token file must be mounted on every node"
    assert config["file_mounts"][env["RAY_AUTH_TOKEN_PATH"]] == "~/.ray/auth_token"
    assert re.fullmatch(r"(s3|gs)://[^/]+/.+", env["INFOFLOW_RESULTS"])
    assert env["INFOFLOW_DATA_DIR"]
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start, "dashboard only through the SSH tunnel"
    assert "infoflow_ray.data download" in " ".join(config["worker_setup_commands"]), "datasets once per node"
    assert any("pip install" in c and "infoflow-ray" in c for c in config["setup_commands"])


def test_gcp_workers_use_the_service_account_of_the_configured_project():
    config = yaml.safe_load((ROOT / "cluster" / "gcp.yaml").read_text())
    project = config["provider"]["project_id"]
    for name, node_type in config["available_node_types"].items():
        if name == config["head_node_type"]:
            continue
        node = node_type["node_config"]
        assert node["scheduling"]["onHostMaintenance"] == "TERMINATE", "GPU VMs cannot live-migrate"
        assert node["guestAccelerators"][0]["acceleratorCount"] == node_type["resources"]["GPU"]
        emails = [account["email"] for account in node["serviceAccounts"]]
        assert all(email.endswith(f"@{project}.iam.gserviceaccount.com") for email in emails), emails


# --- KubeRay -----------------------------------------------------------------------------------------------


def _kuberay_docs():
    for path in KUBERAY_MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield pytest.param(doc, id=f"{path.name}:{doc.get('kind')}")


def test_kuberay_manifests_exist():
    assert {p.name for p in KUBERAY_MANIFESTS} >= {"raycluster.yaml", "rayjob.yaml"}


@pytest.mark.parametrize("doc", list(_kuberay_docs()))
def test_kuberay_manifest_has_what_the_crds_need(doc):
    assert doc["apiVersion"] == "ray.io/v1"
    assert doc["kind"] in {"RayCluster", "RayJob"}
    assert doc["metadata"]["name"]
    spec = doc["spec"]
    cluster = spec if doc["kind"] == "RayCluster" else spec["rayClusterSpec"]
    if doc["kind"] == "RayJob":
        assert "jobs/full_grid.py" in spec["entrypoint"] and "--results" in spec["entrypoint"]
        assert spec["shutdownAfterJobFinishes"] is True, "the job's cluster must not outlive it"

    assert cluster["rayVersion"] == ray.__version__
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["authOptions"]["mode"] == "token"
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0", "no tasks on the head"
    groups = cluster["workerGroupSpecs"]
    for group in [head, *groups]:
        # KubeRay's CRD types rayStartParams as map[string]string: a bare number is rejected by the API server.
        assert all(isinstance(v, str) for v in group["rayStartParams"].values()), group["rayStartParams"]
        containers = group["template"]["spec"]["containers"]
        _assert_installed_ray_image(containers[0]["image"])
        for container in containers:
            limits = container["resources"]["limits"]
            assert {"cpu", "memory"} <= limits.keys()
            if "command" in container:  # KubeRay replaces a custom command unless told not to
                assert doc["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
                assert "$KUBERAY_GEN_RAY_START_CMD" in " ".join(container["args"])
    assert "nvidia.com/gpu" not in head["template"]["spec"]["containers"][0]["resources"]["limits"]

    gpu_groups = [
        g for g in groups if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"]["limits"]
    ]
    assert gpu_groups, "a worker group with nvidia.com/gpu in its limits"
    for group in gpu_groups:
        assert group["minReplicas"] == 0 <= group.get("replicas", 0) <= group["maxReplicas"]
        assert group["maxReplicas"] >= 1
        env = {e["name"]: e.get("value") for e in group["template"]["spec"]["containers"][0]["env"]}
        assert env["INFOFLOW_DATA_DIR"] and env["INFOFLOW_DATASETS"], "datasets staged once per pod"


# --- no secrets ---------------------------------------------------------------------------------------------

SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key": re.compile(r"aws_secret_access_key\s*[=:]", re.IGNORECASE),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "hex token": re.compile(r"\b[0-9a-f]{64}\b"),
    "Ray token value": re.compile(r"RAY_AUTH_TOKEN\s*[=:]\s*['\"]?\w{16,}"),
}


def test_cluster_files_hold_no_secrets():
    files = [ROOT / "ray_cluster.yaml", *[p for p in (ROOT / "cluster").rglob("*") if p.is_file()]]
    for path in files:
        text = path.read_text()
        for what, pattern in SECRET_PATTERNS.items():
            assert not pattern.search(text), f"{path.relative_to(ROOT)} seems to contain a {what}"


# --- local multi-node cluster --------------------------------------------------------------------------------


def _ray_cli() -> Path | None:
    """The `ray` CLI next to the Python running the tests, else the one on PATH."""
    beside = Path(sys.executable).with_name("ray")
    found = beside if beside.exists() else shutil.which("ray")
    return Path(found) if found else None


RAY_CLI = _ray_cli()

PROBE = """
import json, ray
ray.init(log_to_driver=False)  # RAY_ADDRESS and the token come from the script's exports

@ray.remote(num_gpus=1)
class NeedsAGpu:
    def node_id(self):
        return ray.get_runtime_context().get_node_id()

actors = [NeedsAGpu.remote() for _ in range(2)]
placed = ray.get([a.node_id.remote() for a in actors], timeout=120)
nodes = [{"id": n["NodeID"], "name": n["NodeName"], "resources": n["Resources"]} for n in ray.nodes() if n["Alive"]]
print(json.dumps({"nodes": nodes, "gpu_actor_nodes": placed}))
"""


def _parse_exports(stdout: str) -> tuple[dict[str, str], list[str]]:
    exports, unsets = {}, []
    for line in stdout.splitlines():
        words = shlex.split(line)
        if words[:1] == ["export"]:
            key, value = words[1].split("=", 1)
            exports[key] = value
        elif words[:1] == ["unset"]:
            unsets += words[1:]
    return exports, unsets


def _state_value(state_text: str, key: str) -> str:
    """A value from the script's cluster.env (shell assignments quoted with printf %q)."""
    line = next(line for line in state_text.splitlines() if line.startswith(f"{key}="))
    return "".join(shlex.split(line.split("=", 1)[1]))


def _session_members(session_ids: set[int]) -> set[int]:
    """Pids whose session id is one of session_ids, zombies excluded (Linux /proc)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, session = fields[0], int(fields[3])
        if session in session_ids and state != "Z":
            pids.add(int(stat.parent.name))
    return pids


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _cmdlines_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(f"{cmdline.parent.name}: {args[:200]}")
    return found


@pytest.mark.system
@pytest.mark.skipif(RAY_CLI is None, reason="the `ray` CLI is not installed (pip install 'ray[default]')")
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="process checks read /proc (Linux)")
def test_local_multinode_cluster_runs_a_submitted_grid_on_three_nodes_with_token_auth_and_stops_only_its_own(
    tmp_path,
):
    """The whole local multi-node path in one cluster (one start and stop: the slow part): nodes and token auth,
    then `ray job submit -- python jobs/full_grid.py` on the tiny preset's depth-3 tasks. Each worker *declares*
    one GPU (Ray's resource, no real device), so the cascade actors must ask for a GPU and land on the two worker
    nodes, never on the head; the results land in the shared path with tasks spread over more than one node."""
    home, state, results = tmp_path / "home", tmp_path / "state", tmp_path / "results"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "INFOFLOW_LOCAL_CLUSTER"))}
    env.update(HOME=str(home), PATH=f"{RAY_CLI.parent}{os.pathsep}{env.get('PATH', '')}")
    script = ["bash", str(LOCAL_SCRIPT)]
    # Not ours, though its command line names Ray processes: stop must leave it alone (no name matching).
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "raylet", "gcs_server"])
    started = subprocess.run(
        [
            *script,
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
            "--object-store-bytes",
            "100000000",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    recorded = (state / "cluster.env").read_text() if (state / "cluster.env").exists() else ""
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        exports, unsets = _parse_exports(started.stdout)
        assert exports["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" in unsets
        token = Path(exports["RAY_AUTH_TOKEN_PATH"]).read_text()
        assert len(token) >= 32 and oct(Path(exports["RAY_AUTH_TOKEN_PATH"]).stat().st_mode)[-3:] == "600"
        session_ids = {int(sid) for sid in _state_value(recorded, "SESSION_IDS").split()}
        ours = _session_members(session_ids)
        assert len(session_ids) == 3 and ours

        client_env = {**env, **exports}
        probe = subprocess.run(
            [sys.executable, "-c", PROBE], env=client_env, capture_output=True, text=True, timeout=240
        )
        assert probe.returncode == 0, probe.stderr[-3000:]
        seen = json.loads(probe.stdout.strip().splitlines()[-1])
        nodes = {n["name"]: n for n in seen["nodes"]}
        assert sorted(nodes) == ["head", "worker-1", "worker-2"]
        assert len({n["id"] for n in nodes.values()}) == 3
        recorded_ids = {n["node_id"] for n in json.loads((state / "nodes.json").read_text())}
        assert recorded_ids == {n["id"] for n in nodes.values()}
        assert "GPU" not in nodes["head"]["resources"]
        # Declared GPUs steer placement on a CPU-only machine: one GPU actor on each worker, none on the head.
        assert sorted(seen["gpu_actor_nodes"]) == sorted([nodes["worker-1"]["id"], nodes["worker-2"]["id"]])

        # Token auth is on: the Jobs API refuses a request without the token and serves one with it ...
        url = exports["RAY_API_SERVER_ADDRESS"] + "/api/version"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        assert urllib.request.urlopen(request, timeout=10).status == 200
        # ... and the GCS turns away a driver that has no token.
        anonymous = subprocess.run(
            [sys.executable, "-c", "import ray; ray.init()"],
            env={**env, "RAY_ADDRESS": exports["RAY_ADDRESS"]},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert anonymous.returncode != 0

        # A job submitted through the Jobs API with the token runs the grid across the nodes.
        submit = subprocess.run(
            [
                str(RAY_CLI),
                "job",
                "submit",
                "--address",
                exports["RAY_API_SERVER_ADDRESS"],
                "--working-dir",
                str(ROOT),
                "--",
                sys.executable,
                "jobs/full_grid.py",
                "--preset",
                "tiny",
                "--depths",
                "3",
                "--results",
                str(results),
            ],
            env={k: v for k, v in client_env.items() if not k.startswith("INFOFLOW_")},
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
        assert submit.returncode == 0, (submit.stdout + submit.stderr)[-3000:]
        assert "succeeded" in submit.stdout.lower()
    finally:
        stopped = subprocess.run(
            [*script, "stop", "--state-dir", str(state)], env=env, capture_output=True, text=True, timeout=180
        )
        bystander_survived = bystander.poll() is None
        bystander.kill()
        bystander.wait()
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert bystander_survived, "stop ended a process it did not start"
    assert not [pid for pid in ours if _running(pid)], "processes of the cluster survived stop"
    ray_tmp = _state_value(recorded, "RAY_TMP")
    assert not _cmdlines_mentioning(ray_tmp + "/")
    assert not Path(ray_tmp).exists() and not state.exists()
    assert not (home / ".ray" / "auth_token").exists(), "the script must not touch ~/.ray"
    again = subprocess.run([*script, "stop", "--state-dir", str(state)], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to stop" in again.stderr

    runs = ResultStore.open(str(results), create=False).scan("runs").collect()
    tasks = resolve_grid("tiny", overrides={"depths": (3,)}).tasks()
    assert sorted(runs["task_id"]) == sorted(t.task_id for t in tasks)
    assert runs["node_id"].n_unique() > 1  # the work was spread over the cluster's nodes
    cascade_nodes = set(runs.filter(pl.col("kind") == "cascade")["node_id"])
    assert cascade_nodes == {nodes["worker-1"]["id"], nodes["worker-2"]["id"]}  # GPU-asking actors, not on the head
    assert set(runs["device"]) == {"cpu:1threads"}  # a declared GPU is not a device: torch stayed on the CPU

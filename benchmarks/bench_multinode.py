"""The adaptive search on a real multi-node Ray cluster on this machine (cluster/local_multinode.sh): per round
against per result (``search.policy``), measured, and the simulator's makespan for the same tasks against the
measured one.

    flock /tmp/infoflow-heavy.lock python benchmarks/bench_multinode.py              # ~10 min on 2 cores
    python benchmarks/bench_multinode.py --workers 2 --tolerance 0.25 --keep results/bench-multinode

The cluster: a head with no CPU for tasks (the driver runs there) and ``--workers`` nodes of one CPU each, so
``--workers`` tasks run at once (a cascade actor or a Tune trial each). The search: real trainings of deliberately
uneven length — MNIST-t10k, SGD at 0.05, threshold 0.4, up to ``--epochs`` epochs, depths 3 … 24: a shallow
training passes in an epoch or two, a deep one fails after the whole budget, ten times longer.

Measured from the ``runs`` rows: the makespan (first task start to last task end), the busy task-seconds, and
utilisation = busy / (workers × makespan). Simulated (``sweep/simulate.py``, ``ResultsOracle``): the same search
replayed on ``--workers`` slots with each task's measured seconds, under the same policy. The simulator leaves
out Ray's overheads (actor and trial start, scheduling, the driver's replans), so it is expected to come out
shorter; the check is that it lies within ``--tolerance`` (relative) of the measured makespan.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.grid import SEARCH_POLICIES, resolve_grid
from infoflow_ray.sweep.simulate import ResultsOracle, simulate_search

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "cluster" / "local_multinode.sh"


def search_overrides(epochs: int, images: int, seeds: int) -> dict:
    """The benchmark's search: 3 σw² × ``seeds`` depth searches over 3 … 24 (see the module's docstring)."""
    return {
        "sigma_w2": (0.5, 1.5, 4.0),
        "seeds": tuple(range(seeds)),
        "depths": (3, 6, 10, 16, 24),
        "data": {"max_train_samples": images},
        "cascade": {"eval_samples": 100},
        "train": {"lr": 0.05, "max_epochs": epochs, "ladder": (epochs,)},
    }


def toml(values: dict) -> str:
    """``values`` (numbers, strings, booleans, tuples; one level of tables) as a TOML config for ``--config``."""

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, tuple | list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    top = [f"{k} = {value(v)}" for k, v in values.items() if not isinstance(v, dict)]
    tables = [
        f"[{k}]\n" + "\n".join(f"{kk} = {value(vv)}" for kk, vv in v.items())
        for k, v in values.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n\n" + "\n\n".join(tables) + "\n"


def start_cluster(state: Path, workers: int) -> dict[str, str]:
    """Start head + ``workers`` one-CPU nodes; return the environment that talks to the cluster."""
    ray_cli = Path(sys.executable).with_name("ray")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "INFOFLOW_"))}
    env["PATH"] = f"{ray_cli.parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    args = ["--state-dir", str(state), "--workers", str(workers), "--head-cpus", "0", "--worker-cpus", "1"]
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", *args], env=env, capture_output=True, text=True, timeout=300
    )
    if started.returncode != 0:
        raise SystemExit(f"local_multinode.sh start failed:\n{started.stderr[-3000:]}")
    for line in started.stdout.splitlines():
        words = shlex.split(line)
        if words[:1] == ["export"]:
            key, value = words[1].split("=", 1)
            env[key] = value
        elif words[:1] == ["unset"]:
            env.pop(words[1], None)
    return env


def stop_cluster(state: Path, env: dict[str, str]) -> None:
    subprocess.run(["bash", str(SCRIPT), "stop", "--state-dir", str(state)], env=env, capture_output=True, timeout=120)


def measured(results: Path, workers: int) -> dict:
    """Makespan, busy seconds and utilisation of one run, from its ``runs`` rows (seconds)."""
    runs = ResultStore.open(str(results), create=False).scan("runs").collect()
    start, end = runs["started_at"].min(), runs["finished_at"].max()
    makespan = (end - start).total_seconds()
    busy = runs.select((pl.col("finished_at") - pl.col("started_at")).dt.total_microseconds().sum()).item() / 1e6
    return {
        "makespan": makespan,
        "busy": busy,
        "utilisation": busy / (workers * makespan),
        "trainings": runs.filter(pl.col("kind") == "baseline").height,
        "cascades": runs.filter(pl.col("kind") == "cascade").height,
        "nodes": runs["node_id"].n_unique(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2, help="worker nodes of one CPU each (default 2)")
    p.add_argument("--epochs", type=int, default=8, help="a training's epoch budget (default 8)")
    p.add_argument("--seeds", type=int, default=1, help="depth searches per σw² (default 1: 3 chains)")
    p.add_argument("--images", type=int, default=6000, help="training images (default 6000)")
    p.add_argument("--tolerance", type=float, default=0.25, help="allowed |measured − simulated| / measured")
    p.add_argument("--policies", nargs="+", default=list(SEARCH_POLICIES), choices=SEARCH_POLICIES)
    p.add_argument("--keep", default=None, help="keep the results here (default: a temporary folder, deleted)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-multinode-"))
    state = work / "cluster"
    env = start_cluster(state, args.workers)
    rows = []
    try:
        for policy in args.policies:
            results = work / f"results-{policy}"
            overrides = search_overrides(args.epochs, args.images, args.seeds)
            overrides["search"] = {"enabled": True, "policy": policy}
            config = work / f"{policy}.toml"
            config.write_text(toml(overrides))
            grid = resolve_grid("tiny", overrides={**overrides, "results": str(results)})
            t0 = time.perf_counter()
            # the driver as a user runs it, on the head node (Ray reads its auth settings when it is imported)
            job = [sys.executable, "jobs/full_grid.py", "--preset", "tiny", "--config", str(config)]
            job += ["--results", str(results), "--address", env["RAY_ADDRESS"]]
            run = subprocess.run(job, env=env, cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if run.returncode != 0:
                raise SystemExit(f"{policy}: the search failed (exit {run.returncode}):\n{run.stdout[-3000:]}")
            print(run.stdout.splitlines()[-1] if run.stdout else "", file=sys.stderr)
            m = measured(results, args.workers)
            sim = simulate_search(grid, args.workers, ResultsOracle(str(results), grid.search.measure), policy)
            m.update(policy=policy, wall=wall, sim_makespan=sim.makespan, sim_utilisation=sim.utilisation)
            m["error"] = (m["makespan"] - sim.makespan) / m["makespan"]
            rows.append(m)
            print(
                f"{policy}: measured makespan {m['makespan']:.1f} s ({m['utilisation']:.0%} busy), simulated "
                f"{sim.makespan:.1f} s ({sim.utilisation:.0%} busy), error {m['error']:+.0%}",
                flush=True,
            )
            if args.keep:
                shutil.copytree(results, Path(args.keep) / policy, dirs_exist_ok=True)
    finally:
        stop_cluster(state, env)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{args.workers} worker nodes × 1 CPU (head: 0 CPUs for tasks); 3 σw² × {args.seeds} seed(s), "
        f"{args.epochs} epochs, {args.images} images"
    )
    print(
        "| policy | trainings | cascades | nodes used | driver wall (s) | makespan measured (s) | busy measured | "
        "makespan simulated (s) | busy simulated | simulator error |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m in rows:
        print(
            f"| {m['policy'].replace('_', ' ')} | {m['trainings']} | {m['cascades']} | {m['nodes']} | "
            f"{m['wall']:.0f} | {m['makespan']:.1f} | {m['utilisation']:.0%} | {m['sim_makespan']:.1f} | "
            f"{m['sim_utilisation']:.0%} | {m['error']:+.1%} |"
        )
    ok = all(abs(m["error"]) <= args.tolerance for m in rows)
    print(f"simulator within ±{args.tolerance:.0%} of the measured makespan: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

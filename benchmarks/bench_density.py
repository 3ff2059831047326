"""Seed 004's density-model estimator: seconds per (layer, snapshot) estimate, one process against Ray.

    .venv/bin/python benchmarks/bench_density.py                      # 784-256-256-10 on MNIST-t10k, 4 points
    .venv/bin/python benchmarks/bench_density.py --epochs 2 --points 2  # a quick look

Trains the seed-004 network (``jobs/info_plane.py --preset seed004``: Adam, batch 128) to the largest of
``--steps``, then estimates ``--points`` (layer, snapshot) points, each a pair of density models (p(T), p(T|Y)):
first one after the other in this process (torch on every core), then as 2·points Ray tasks of ``--cpus-per-task``
CPUs on a local Ray of all cores (``jobs/info_plane.py``'s fan-out; one GPU each where there are GPUs). Prints the
machine, commit and date, seconds per estimate both ways, the speed-up, and that both ways give the same entropies.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import time
from datetime import UTC, datetime

import ray
import torch

from infoflow_ray import ib_experiments as ib
from infoflow_ray.model import default_device
from infoflow_ray.sweep.ib_job import SEED004


def _fit(spec, train, probe, train_y, probe_y, conditional, seed):
    torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
    fit = ib.fit_density_model(spec, train, probe, train_y, probe_y, conditional, seed, default_device())
    return fit.entropy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, help="density-model epochs (default: the seed004 preset's, 40)")
    p.add_argument("--hidden", type=int, help="hidden units (default: the preset's, 256)")
    p.add_argument("--points", type=int, default=4, help="(layer, snapshot) points: layers 1, 2 of snapshots")
    p.add_argument("--steps", default="0,1000", help="snapshots (SGD steps) the points come from")
    p.add_argument("--cpus-per-task", type=float, default=1.0)
    args = p.parse_args()
    steps = tuple(int(s) for s in args.steps.split(","))
    changes = {k: v for k, v in (("epochs", args.epochs), ("hidden", args.hidden)) if v is not None}
    spec = dataclasses.replace(SEED004[0], steps=max(steps), record=steps, density={**SEED004[0].density, **changes})
    dspec = spec.density_spec()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    device = default_device()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, {platform.processor() or platform.machine()}")
    print(f"device {name}; torch {torch.__version__}; density models: {dspec}")
    data = ib.experiment_data(spec)
    start = time.perf_counter()
    snaps = ib.train_copy(spec, 0, data)
    print(f"trained {spec.profile} for {spec.steps} steps in {time.perf_counter() - start:.1f} s")
    work = [(i, layer) for i in range(len(steps)) for layer in (1, 2)][: args.points]
    jobs = [
        (snaps.train[i][layer - 1], snaps.probe[i][layer - 1], conditional, 1000 * i + layer)
        for i, layer in work
        for conditional in (False, True)
    ]

    start = time.perf_counter()
    serial = [
        ib.fit_density_model(spec, tr, pr, data.train_y, data.probe_y, c, seed, device).entropy
        for tr, pr, c, seed in jobs
    ]
    one_process = time.perf_counter() - start
    print(
        f"one process ({torch.get_num_threads()} torch threads): {one_process:.1f} s for {len(work)} points, "
        f"{one_process / len(work):.1f} s per (layer, snapshot) estimate"
    )

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    gpus = ray.cluster_resources().get("GPU", 0) > 0
    fit = ray.remote(_fit).options(**({"num_gpus": 1} if gpus else {"num_cpus": args.cpus_per_task}))
    refs = [ray.put(t) for t in (spec, data.train_y, data.probe_y)]
    start = time.perf_counter()
    parallel = ray.get([fit.remote(refs[0], tr, pr, refs[1], refs[2], c, seed) for tr, pr, c, seed in jobs])
    on_ray = time.perf_counter() - start
    slots = ray.cluster_resources().get("GPU" if gpus else "CPU", 1) / (1 if gpus else args.cpus_per_task)
    print(
        f"Ray ({slots:g} tasks at once): {on_ray:.1f} s for {len(work)} points, {on_ray / len(work):.1f} s per "
        f"estimate; speed-up {one_process / on_ray:.2f}×"
    )
    worst = max(abs(a - b) for a, b in zip(serial, parallel))
    print(f"largest entropy difference between the two ways: {worst:.2e} nats (thread counts differ)")
    for (i, layer), k in zip(work, range(0, len(serial), 2)):
        print(
            f"  step {steps[i]:>5} layer {layer}: H(T) {serial[k]:.2f}, H(T|Y) {serial[k + 1]:.2f}, "
            f"I(T;Y) {serial[k] - serial[k + 1]:.3f} nats"
        )


if __name__ == "__main__":
    main()

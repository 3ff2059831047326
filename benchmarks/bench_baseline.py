"""N baseline networks, one epoch each: one by one (``train_baseline``) against together (``train_baselines_batched``).

The networks share depth and widths and differ in σw² and seed, as in a grid. Both runs are measured side by
side in one process; their per-network test accuracies are compared as a check.

    .venv/bin/python benchmarks/bench_baseline.py                    # 8 networks, depths 10 and 30
    .venv/bin/python benchmarks/bench_baseline.py --depths 10 --repeats 2
    .venv/bin/python benchmarks/bench_baseline.py --quick            # a smoke run of a few seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_device_args, device_of, timed  # noqa: E402

from infoflow_ray.batched_training import train_baselines_batched  # noqa: E402
from infoflow_ray.config import NetworkSpec, TrainSpec  # noqa: E402
from infoflow_ray.data import load_dataset  # noqa: E402
from infoflow_ray.training import train_baseline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, default=8)
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--n-train", type=int, default=8000)
    add_device_args(parser)
    parser.add_argument("--quick", action="store_true", help="3 networks of depth 4 on 1,000 images")
    args = parser.parse_args()
    if args.quick:
        args.networks, args.depths, args.n_train = 3, [4], 1000

    device, name = device_of(args)
    t10k = load_dataset("mnist_t10k")
    data = dataclasses.replace(t10k, train_x=t10k.train_x[: args.n_train], train_y=t10k.train_y[: args.n_train])
    data = data.to(device)
    train = TrainSpec(max_epochs=1, stop_at_threshold=False)
    sigma_w2s = np.round(np.linspace(0.5, 3.0, args.networks), 3).tolist()
    seeds = list(range(args.networks))
    print(
        f"# bench_baseline on {name}, torch {torch.__version__}: {args.networks} networks "
        f"(σw² {sigma_w2s[0]}..{sigma_w2s[-1]}), {data.train_x.shape[0]} training images, 1 epoch each"
    )
    print("| depth | run | one by one (s) | batched (s) | ratio | max accuracy difference |")
    print("|---|---|---|---|---|---|")
    for depth in args.depths:
        specs = [NetworkSpec(s, depth) for s in sigma_w2s]
        tiny = dataclasses.replace(data, train_x=data.train_x[:256], train_y=data.train_y[:256])
        train_baseline(specs[0], train, tiny, seeds[0], device)  # first calls pay one-off costs
        train_baselines_batched(specs, train, tiny, seeds, device)
        for repeat in range(args.repeats):
            singles, single_seconds = timed(
                lambda: [train_baseline(spec, train, data, seed, device) for spec, seed in zip(specs, seeds)], device
            )
            batched, batched_seconds = timed(lambda: train_baselines_batched(specs, train, data, seeds, device), device)
            diff = max(abs(b.epochs[-1].test_accuracy - s.epochs[-1].test_accuracy) for b, s in zip(batched, singles))
            print(
                f"| {depth} | {repeat + 1} | {single_seconds:.2f} | {batched_seconds:.2f} "
                f"| {single_seconds / batched_seconds:.2f}x | {diff:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

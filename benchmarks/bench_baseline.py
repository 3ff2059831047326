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
import time

import numpy as np
import torch

from infoflow_ray.batched_training import train_baselines_batched
from infoflow_ray.config import NetworkSpec, TrainSpec
from infoflow_ray.data import load_dataset
from infoflow_ray.training import train_baseline


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, default=8)
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=1, help="run each comparison this many times")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="3 networks of depth 4 on 1,000 images")
    args = parser.parse_args()
    if args.quick:
        args.networks, args.depths, args.n_train = 3, [4], 1000

    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    t10k = load_dataset("mnist_t10k")
    data = dataclasses.replace(t10k, train_x=t10k.train_x[: args.n_train], train_y=t10k.train_y[: args.n_train])
    data = data.to(device)
    train = TrainSpec(max_epochs=1, stop_at_threshold=False)
    sigma_w2s = np.round(np.linspace(0.5, 3.0, args.networks), 3).tolist()
    seeds = list(range(args.networks))
    print(f"# bench_baseline on {name}, torch {torch.__version__}: {args.networks} networks "
          f"(σw² {sigma_w2s[0]}..{sigma_w2s[-1]}), {data.train_x.shape[0]} training images, 1 epoch each")
    print("| depth | run | one by one (s) | batched (s) | ratio | max accuracy difference |")
    print("|---|---|---|---|---|---|")
    for depth in args.depths:
        specs = [NetworkSpec(s, depth) for s in sigma_w2s]
        for repeat in range(args.repeats):
            singles, single_seconds = timed(
                lambda: [train_baseline(spec, train, data, seed, device) for spec, seed in zip(specs, seeds)], device)
            batched, batched_seconds = timed(lambda: train_baselines_batched(specs, train, data, seeds, device),
                                             device)
            diff = max(abs(b.epochs[-1].test_accuracy - s.epochs[-1].test_accuracy)
                       for b, s in zip(batched, singles))
            print(f"| {depth} | {repeat + 1} | {single_seconds:.2f} | {batched_seconds:.2f} "
                  f"| {single_seconds / batched_seconds:.2f}x | {diff:.4f} |", flush=True)


if __name__ == "__main__":
    main()

"""Cascade training time per layer for each network family, and the module engine against a per-layer loop.

    .venv/bin/python benchmarks/bench_families.py                 # depth 10, C = 64, 8,000 MNIST-t10k images
    .venv/bin/python benchmarks/bench_families.py --images 2000 --channels 16 --device cuda

For mlp (wide: 784-wide layers, the hand-written engine of ``infoflow_ray.cascade``), resmlp, cnn and resnet
(C channels; ``infoflow_ray.families.cascade``, every decoder steps on each batch of one frozen forward pass) it
trains one cascade epoch and prints seconds per layer. For cnn it also trains the same decoders the
straightforward way, one layer after another, each over the whole epoch with the frozen forward pass up to its
layer per batch, and prints both times and that the two give the same decoders. Prints machine, commit and date.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn.functional as F

from infoflow_ray import families, seeding
from infoflow_ray.config import CascadeSpec, NetworkSpec
from infoflow_ray.data import load_dataset
from infoflow_ray.families.cascade import ModuleDecoders, train_module_cascade

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_device_args, device_of, synchronize  # noqa: E402


def per_layer_loop(network, x: torch.Tensor, spec: CascadeSpec, seed: int) -> ModuleDecoders:
    """Each decoder alone over the whole epoch (its own Adam), the frozen forward pass up to its layer per batch."""
    decoders = ModuleDecoders(network, seed, x.device)
    for layer in range(1, decoders.depth + 1):
        optimizer = torch.optim.Adam(decoders.decoders[layer - 1].parameters(), lr=spec.lr)
        for epoch in range(spec.epochs):
            for batch in seeding.permutation(len(x), seed, "cascade-batches", epoch, x.device).split(spec.batch_size):
                with torch.no_grad():
                    a = x[batch]
                    for below in range(1, layer):
                        a = network.next_activation(below, a)
                    target, a = a, network.next_activation(layer, a)
                optimizer.zero_grad(set_to_none=True)
                F.mse_loss(decoders.decode(layer, a), target).backward()
                optimizer.step()
    return decoders


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_args(p)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--images", type=int, default=8000)
    args = p.parse_args()
    device, name = device_of(args)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, {name}, torch {torch.__version__}")
    x = load_dataset("mnist_t10k").train_x[: args.images].to(device)
    spec = CascadeSpec()
    print(f"one cascade epoch (batch {spec.batch_size}, Adam {spec.lr:g}) on {len(x)} images, depth {args.depth}")
    for architecture in ("mlp", "resmlp", "cnn", "resnet"):
        net_spec = NetworkSpec(1.76, args.depth, architecture=architecture, channels=args.channels)
        network = families.build(net_spec, 0, device)
        for _ in range(args.repeats):
            synchronize(device)
            start = time.perf_counter()
            trained = families.train_cascades([network], x, spec, [0])[0]
            synchronize(device)
            seconds = time.perf_counter() - start
            print(
                f"  {net_spec.profile_name:>12}: {seconds:6.1f} s, {seconds / args.depth:5.2f} s per layer "
                f"({trained.strategy}); last-epoch decoder MSE, layer 1: {trained.decoder_loss[0]:.4f}"
            )
    network = families.build(NetworkSpec(1.76, args.depth, architecture="cnn", channels=args.channels), 0, device)
    start = time.perf_counter()
    together = train_module_cascade(network, x, spec, 0).decoders
    synchronize(device)
    engine = time.perf_counter() - start
    start = time.perf_counter()
    alone = per_layer_loop(network, x, spec, 0)
    synchronize(device)
    loop = time.perf_counter() - start
    worst = max((p - q).abs().max().item() for p, q in zip(together.parameters(), alone.parameters()))
    print(
        f"cnn-c{args.channels}: all layers per batch {engine:.1f} s, per-layer loop {loop:.1f} s "
        f"({loop / engine:.2f}×); largest decoder weight difference {worst:.1e}"
    )


if __name__ == "__main__":
    main()

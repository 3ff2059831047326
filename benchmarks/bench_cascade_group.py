"""K cascades, one epoch each: one network at a time against all K trained together (``train_cascades``).

A grid has many networks of the same widths (σw² values × seeds). Alone, a small network's cascade is a few
small matmuls per step, which leaves a GPU mostly idle; trained together (``lockstep`` over layers × networks)
the step costs the same number of kernel launches for any K. For each depth, on MNIST-t10k (``--n-train``
images, ``wide``):

- one at a time with the device's default strategy (``layerwise`` on CPU, ``lockstep`` on GPU), and one at a
  time with ``lockstep``;
- all K together with ``lockstep``; seconds per network and the ratio to one at a time;
- the largest relative difference of the per-layer decoder losses, together vs alone (float32 order only);
- on CUDA, how many networks ``cascade.networks_per_device`` would put in one group.

    .venv/bin/python benchmarks/bench_cascade_group.py                       # K = 8, depths 10 and 20
    .venv/bin/python benchmarks/bench_cascade_group.py --networks 16 --depths 20 60
    .venv/bin/python benchmarks/bench_cascade_group.py --quick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_device_args, device_of, timed  # noqa: E402

from infoflow_ray import cascade  # noqa: E402
from infoflow_ray.config import CascadeSpec, NetworkSpec  # noqa: E402
from infoflow_ray.data import load_dataset  # noqa: E402
from infoflow_ray.model import TanhNetwork  # noqa: E402


def bench_depth(depth: int, args, train_x: torch.Tensor, device: torch.device) -> None:
    k = args.networks
    sigma_w2 = [0.5 + 2.5 * i / max(1, k - 1) for i in range(k)]
    seeds = list(range(k))
    networks = [TanhNetwork(NetworkSpec(s, depth), seed, device) for s, seed in zip(sigma_w2, seeds)]
    auto = cascade.resolve_strategy("auto", device)
    lockstep = CascadeSpec(strategy="lockstep")
    print(
        f"\n## depth {depth}: {k} networks (σw² {sigma_w2[0]:g}..{sigma_w2[-1]:g}, seeds 0..{k - 1}), "
        f"{train_x.shape[0]} images, 1 epoch"
    )
    if device.type == "cuda":
        fits = cascade.networks_per_device(networks[0].spec.layer_widths, lockstep.batch_size, device)
        print(f"networks_per_device: {fits} (free memory now, 60 % of it)")

    warm_up = train_x[: 4 * lockstep.batch_size]
    cascade.train_cascades(networks, warm_up, lockstep, seeds)
    cascade.train_cascade(networks[0], warm_up, CascadeSpec(strategy=auto), seeds[0])

    print("| run | seconds | s per network | vs one at a time |")
    print("|---|---|---|---|")
    for repeat in range(args.repeats):
        alone, alone_seconds = timed(
            lambda: [
                cascade.train_cascade(net, train_x, CascadeSpec(strategy=auto), seed)
                for net, seed in zip(networks, seeds)
            ],
            device,
        )
        results = [(f"one at a time, {auto} (run {repeat + 1})", alone_seconds)]
        if auto != "lockstep":
            _, seconds = timed(
                lambda: [cascade.train_cascade(net, train_x, lockstep, seed) for net, seed in zip(networks, seeds)],
                device,
            )
            results.append((f"one at a time, lockstep (run {repeat + 1})", seconds))
        together, seconds = timed(lambda: cascade.train_cascades(networks, train_x, lockstep, seeds), device)
        results.append((f"{k} together, lockstep (run {repeat + 1})", seconds))
        for name, seconds in results:
            print(f"| {name} | {seconds:.2f} | {seconds / k:.3f} | {alone_seconds / seconds:.2f}x |", flush=True)
    rel = max(
        ((t.decoder_loss - a.decoder_loss).abs() / a.decoder_loss.abs()).max().item() for t, a in zip(together, alone)
    )
    print(f"decoder loss per layer, together vs alone: max relative difference {rel:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--networks", type=int, default=8)
    parser.add_argument("--n-train", type=int, default=8000)
    add_device_args(parser)
    parser.add_argument("--quick", action="store_true", help="3 networks of depth 5 on 1,000 images")
    args = parser.parse_args()
    if args.quick:
        args.depths, args.networks, args.n_train = [5], 3, 1000
    device, name = device_of(args)
    print(f"# bench_cascade_group on {name}, torch {torch.__version__}")
    train_x = load_dataset("mnist_t10k").train_x[: args.n_train].to(device)
    for depth in args.depths:
        bench_depth(depth, args, train_x, device)


if __name__ == "__main__":
    main()

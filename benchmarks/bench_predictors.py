"""Seconds per network of every trainability predictor at depth 48, the cascade included.

    .venv/bin/python benchmarks/bench_predictors.py                       # wide MLP, depth 48, σw² = 1.76, CPU
    .venv/bin/python benchmarks/bench_predictors.py --depth 24 --dataset digits --device cuda

For each predictor of ``infoflow_ray.predictors`` (mean field, APJN, NTK condition number, NASWOT, GradNorm,
ZiCo) it times ``predictors.run`` on the untrained network of seed 0 with its default batch (the first training
images), and the cascade the way the default preset runs it (4,000 training images, 500 evaluation images, one
epoch): the three cutoff predictors are read from that one cascade, so they share its cost. Prints the seconds
per network, each predictor's score, machine, commit and date.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from infoflow_ray import families, predictors
from infoflow_ray.config import CascadeSpec, NetworkSpec
from infoflow_ray.data import Dataset, load_dataset
from infoflow_ray.predict import predict_trainabilities

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_device_args, device_of, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=48)
    parser.add_argument("--sigma-w2", type=float, default=1.76)
    parser.add_argument("--dataset", default="mnist_t10k")
    parser.add_argument("--train-images", type=int, default=4000, help="the cascade's training images")
    parser.add_argument("--eval-images", type=int, default=500, help="the cascade's evaluation images")
    parser.add_argument("--no-cascade", action="store_true", help="time the predictor tasks only")
    add_device_args(parser)
    args = parser.parse_args()
    device, device_label = device_of(args)
    data = load_dataset(args.dataset)
    spec = NetworkSpec(sigma_w2=args.sigma_w2, depth=args.depth, n_inputs=data.n_inputs)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# bench_predictors: {args.dataset}, wide MLP depth {args.depth}, σw² = {args.sigma_w2:g}, seed 0")
    print(f"# {device_label}, commit {commit}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print("| predictor | batch | seconds per network | score | predicted depth |")
    print("|---|---|---|---|---|")
    network = families.build(spec, 0, device)
    x, y = data.train_x[:128].to(device), data.train_y[:128].to(device)
    for name in predictors.names():
        predictor = predictors.get(name)
        if predictor.kind == "cascade":
            continue
        for _ in range(args.repeats):
            result, seconds = timed(lambda: predictors.run(name, network, spec, x, y), device)
        batch = predictor.settings().get("batch", "—")
        depth = "—" if result.predicted_depth is None else f"{result.predicted_depth:.1f}"
        print(f"| {name} | {batch} | {seconds:.3f} | {result.score:.4g} | {depth} |")
    if args.no_cascade:
        return
    n = args.train_images
    subset = Dataset(data.name, data.train_x[:n], data.train_y[:n], data.test_x, data.test_y, data.n_classes)
    cascade = CascadeSpec(eval_samples=args.eval_images)
    (prediction,), seconds = timed(
        lambda: predict_trainabilities([spec], cascade, subset.to(device), [0], device), device
    )
    cutoffs = {name: c.layer for name, c in prediction.cutoffs.items()}
    print(
        f"| cascade (kl_per_image, kl_mean, diff_entropy) | {n} train / {args.eval_images} eval | {seconds:.1f} | "
        f"{prediction.per_image_cutoff_mean:.1f}, {cutoffs['kl_mean']}, {cutoffs['diff_entropy']} | same |"
    )


if __name__ == "__main__":
    main()

"""The paper presets on a simulated cluster: makespan, utilisation and GPU-hours of the adaptive search (per round
against per result) and of the full grid at 8, 32 and 128 GPUs (infoflow_ray/sweep/simulate.py).

    python benchmarks/bench_simulator.py                      # the table (markdown) and the pictures
    python benchmarks/bench_simulator.py --speedup 20 --workers 8 32 128 --out docs/cluster-scale

Outcomes come from mean-field theory (``ModelOracle``: ℓ_train = 6ξ_c), durations from the cost model (CPU
constants of benchmarks/RESULTS.md divided by ``--speedup``). ``--results FOLDER`` takes both from a results
folder instead (tasks it lacks from the model). Nothing here is timed: the figures are simulated seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from infoflow_ray.sweep.grid import resolve_grid
from infoflow_ray.sweep.simulate import (
    CostModel,
    ModelOracle,
    ResultsOracle,
    estimate,
    plot_makespan,
    plot_utilisation,
    simulate_search,
)

PRESETS = ("paper-mnist-wide", "paper-cifar-shrinking")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=list(PRESETS))
    p.add_argument("--workers", nargs="+", type=int, default=[8, 32, 128])
    p.add_argument("--speedup", type=float, default=1.0, help="a worker's speed over the CPU lanes (default 1)")
    p.add_argument(
        "--train-depth-factor",
        type=float,
        default=1.0,
        help="ℓ_train over the cascade's prediction in the model (1: exact; 0.5: predicted twice too deep)",
    )
    p.add_argument("--target-depth", type=int, default=None, help="also search the σw² interval at this depth")
    p.add_argument("--results", help="take durations and outcomes from this results folder")
    p.add_argument("--out", default=None, help="folder for the pictures (default: none drawn)")
    args = p.parse_args(argv)
    cost = CostModel(speedup=args.speedup)
    model = ModelOracle(cost, train_depth_factor=args.train_depth_factor)
    oracle = ResultsOracle(args.results, fallback=model) if args.results else model
    print("| preset | GPUs | run | policy | makespan (h) | GPU-hours | busy | trainings | cascades |")
    print("|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets:
        search = {"enabled": True} | ({"target_depth": args.target_depth} if args.target_depth else {})
        grid = resolve_grid(preset, overrides={"search": search})
        estimates = []
        t0 = time.perf_counter()
        for n in args.workers:
            for what, policy in (("search", "per_round"), ("search", "per_result"), ("grid", "per_round")):
                e = estimate(grid, n, oracle, what, policy)
                estimates.append(e)
                print(
                    f"| {preset} | {n} | {what} | {policy.replace('_', ' ')} | {e.makespan_seconds / 3600:,.1f} | "
                    f"{e.gpu_hours:,.0f} | {e.utilisation:.0%} | {e.trainings} | {e.cascades} |",
                    flush=True,
                )
        print(f"({preset}: simulated in {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            tag = f"{preset}" + (f"_f{args.train_depth_factor:g}" if args.train_depth_factor != 1 else "")
            plot_makespan(estimates, os.path.join(args.out, f"makespan_{tag}.png"))
            n = args.workers[len(args.workers) // 2]
            schedules = {
                f"search {p.replace('_', ' ')}, {n} GPUs": simulate_search(grid, n, oracle, p)
                for p in ("per_round", "per_result")
            }
            plot_utilisation(schedules, os.path.join(args.out, f"utilisation_{tag}_{n}.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

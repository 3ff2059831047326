"""Command line of ``jobs/predict_then_tune.py``: preset → config file → flags, then run (or describe) the job.

Exit codes as ``jobs/full_grid.py``: 0 done; 1 the prediction or some trials failed for good; 2 bad input,
nothing run; 130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from infoflow_ray import search
from infoflow_ray.errors import InfoflowError
from infoflow_ray.sweep.cli import EXIT_BAD_INPUT, EXIT_FAILED_TASKS, EXIT_INTERRUPTED, EXIT_OK, _numbers, _terminate
from infoflow_ray.sweep.tuning_spec import ARMS, PRESETS, SEARCHERS, TuningSpec, resolve_tuning


def _pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a range like 0.25,4 (low,high)") from None
    return low, high


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="predict_then_tune.py",
        description="Predict the trainable σw² interval at one depth with reconstruction-entropy cascades, then "
        "tune (σw², learning rate, …) with Ray Tune inside it, against the same search over the whole σw² range.",
    )
    p.add_argument("--preset", default="cpu", choices=list(PRESETS), help="starting settings (default: %(default)s)")
    p.add_argument("--config", help="TOML or YAML file with settings (override the preset)")
    p.add_argument(
        "--results", default=os.environ.get("INFOFLOW_RESULTS"), help="results location (default: the preset's)"
    )
    p.add_argument("--dataset", help="e.g. mnist_t10k, mnist, fashion_mnist, cifar10_gray")
    p.add_argument("--depth", type=int, help="depth L of the tuned network")
    p.add_argument("--sigma-w2", type=_pair, help="σw² range low,high (the control arm's; uniform)")
    p.add_argument("--lr", type=_pair, help="learning-rate range low,high (log-uniform)")
    p.add_argument("--batch-sizes", type=_numbers(int), help="batch sizes to choose from, e.g. 32,64,128")
    p.add_argument("--optimizers", type=lambda s: tuple(s.split(",")), help="e.g. sgd or sgd,adam")
    p.add_argument("--searcher", help=f"one of {', '.join(SEARCHERS)}")
    p.add_argument("--trials", "--budget", type=int, help="trials per arm and search seed")
    p.add_argument("--max-epochs", type=int, help="epochs per trial at most")
    p.add_argument("--search-seeds", type=_numbers(int), help="e.g. 0,1,2 (one experiment per arm and seed)")
    p.add_argument("--target-accuracy", type=float, help="accuracy whose cost the report compares")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    return p


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for flag, key in (
        ("results", "results"),
        ("dataset", "dataset"),
        ("depth", "depth"),
        ("searcher", "searcher"),
        ("trials", "trials"),
        ("max_epochs", "max_epochs"),
        ("search_seeds", "search_seeds"),
        ("target_accuracy", "target_accuracy"),
    ):
        if getattr(args, flag) is not None:
            out[key] = getattr(args, flag)
    space = {
        key: getattr(args, flag)
        for flag, key in (
            ("sigma_w2", "sigma_w2"),
            ("lr", "lr"),
            ("batch_sizes", "batch_size"),
            ("optimizers", "optimizer"),
        )
        if getattr(args, flag) is not None
    }
    if space:
        out["space"] = space
    return out


def describe(spec: TuningSpec, out) -> None:
    """What the job would run: the prediction's cascades (planned worst case) and the experiments."""
    grid = spec.prediction_grid()
    worst = search.worst_case_cascades(grid.sigma_w2, spec.sigma_w2_tolerance) * len(spec.cascade_seeds)
    space = spec.space
    print(
        f"predict-then-tune '{spec.name}': {spec.dataset}, depth {spec.depth} ({spec.network(1.0).profile_name}), "
        f"σb² {spec.sigma_b2:g}; results in {spec.results}",
        file=out,
    )
    print(
        f"  predict: σw² interval with ℓ_c ({spec.measure}) ≥ {spec.depth}, from cascades of depth {grid.deepest} "
        f"at σw² {', '.join(f'{s:g}' for s in grid.sigma_w2)} bisected to ±{spec.sigma_w2_tolerance:g} "
        f"(≤ {worst} cascades, seeds {', '.join(map(str, spec.cascade_seeds))})",
        file=out,
    )
    print(
        f"  tune: σw² uniform in the predicted interval (arm predicted) or in [{space.sigma_w2[0]:g}, "
        f"{space.sigma_w2[1]:g}] (arm control); lr log-uniform in [{space.lr[0]:g}, {space.lr[1]:g}]; batch size "
        f"{', '.join(map(str, space.batch_size))}; optimizer {', '.join(space.optimizer)}",
        file=out,
    )
    print(
        f"  {spec.searcher} + ASHA (grace {spec.grace_period}, reduction {spec.reduction_factor}), {spec.trials} "
        f"trials of ≤ {spec.max_epochs} epochs per arm and search seed; arms {', '.join(ARMS)} × seeds "
        f"{', '.join(map(str, spec.search_seeds))} = {len(ARMS) * len(spec.search_seeds)} experiments, "
        f"≤ {len(ARMS) * len(spec.search_seeds) * spec.trials * spec.max_epochs} training epochs",
        file=out,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        spec = resolve_tuning(args.preset, args.config, overrides(args))
        if args.dry_run:
            describe(spec, sys.stdout)
            return EXIT_OK
        from infoflow_ray.sweep.tuning import run_predict_then_tune

        outcome = run_predict_then_tune(spec, address=args.address)
    except InfoflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        outcome = None
    if outcome is None or outcome.interrupted:
        print("interrupted: stored trials are kept; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.prediction_failed:
        print(f"error: {outcome.prediction_failed}", file=sys.stderr)
        return EXIT_FAILED_TASKS
    print(f"results: {spec.results}  (figure and report: python jobs/analyze.py {spec.results})")
    if outcome.failed_trials:
        print(f"{outcome.failed_trials} trials failed for good (stopped_by = 'error' in tune_trials)", file=sys.stderr)
        return EXIT_FAILED_TASKS
    return EXIT_OK

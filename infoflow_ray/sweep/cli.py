"""Command line of ``jobs/full_grid.py``: preset → config file → flags, then run (or describe) the grid.

Exit codes: 0 everything stored; 1 some tasks failed for good (recorded in the ``failures`` table);
2 bad input (config, dataset, results location), nothing written; 130 interrupted (re-run to resume).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from infoflow_ray import estimators
from infoflow_ray.errors import InfoflowError
from infoflow_ray.sweep.grid import PRESETS, resolve_grid, value_range

EXIT_OK, EXIT_FAILED_TASKS, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _numbers(kind: type):
    """Parse '0.5,1,1.76' or 'start:stop:step' (inclusive) into a tuple of ``kind``."""

    def parse(text: str) -> tuple:
        try:
            if ":" in text:
                start, stop, step = (float(v) for v in text.split(":"))
                return tuple(kind(v) for v in value_range(start, stop, step))
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"'{text}' is not a list like 0.5,1,2 or a range start:stop:step of {kind.__name__}s"
            ) from None

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="full_grid.py",
        description="Predict trainability with reconstruction entropy and check it against baseline training, "
        "over a grid of (σw², depth, dataset, seed), on Ray. Results: a Parquet dataset.",
    )
    p.add_argument(
        "--preset",
        default="default",
        choices=list(PRESETS),
        help="starting grid (default: %(default)s, ≈10 min on a laptop CPU)",
    )
    p.add_argument("--config", help="TOML or YAML file with grid settings (override the preset)")
    p.add_argument(
        "--results",
        default=os.environ.get("INFOFLOW_RESULTS"),
        help="results location: a directory or a URI such as s3://bucket/path "
        "(default: $INFOFLOW_RESULTS, else results/<preset>)",
    )
    p.add_argument("--sigma-w2", type=_numbers(float), help="σw² values: 0.5,1,1.76 or start:stop:step")
    p.add_argument("--depths", type=_numbers(int), help="trained depths: 5,10,20 or start:stop:step")
    p.add_argument("--datasets", type=lambda s: tuple(s.split(",")), help="e.g. mnist_t10k,fashion_mnist")
    p.add_argument("--seeds", type=_numbers(int), help="e.g. 0,1,2")
    p.add_argument("--widths", help="width profile: wide or shrinking")
    p.add_argument(
        "--architecture",
        type=lambda s: tuple(s.split(",")),
        help="network families, one or several: mlp (default), resmlp, cnn, resnet",
    )
    p.add_argument("--channels", type=int, help="channels C of the cnn and resnet layers (default 64)")
    p.add_argument(
        "--sigma-b2",
        type=_numbers(float),
        help="bias variances σb²: 0.05 (the default) or several, 0,0.05,0.2 (the search traces the critical line)",
    )
    p.add_argument("--max-epochs", type=int, help="baseline epoch budget")
    p.add_argument("--threshold", type=float, help="test accuracy that counts as trainable")
    p.add_argument("--loss", choices=["logits", "softmax_twice"], help="baseline loss (softmax_twice = reference)")
    p.add_argument("--cascade-epochs", type=int, help="decoder training epochs")
    p.add_argument("--eval-samples", type=int, help="test images the entropies are measured on")
    p.add_argument("--max-train-samples", type=int, help="use only the first N training images")
    p.add_argument(
        "--info-plane",
        nargs="?",
        const="binning",
        choices=list(estimators.ESTIMATORS),
        help="also measure the information plane I(X;T_l), I(T_l;Y) (estimator, default binning)",
    )
    p.add_argument(
        "--interpret",
        action="store_true",
        help="also train cascades on the trained baseline networks: their entropy curves, retraced test images "
        "and every class's perfect input (the paper's fig. 5; see [interpret] in the README)",
    )
    p.add_argument("--only", choices=["cascade", "baseline"], help="run one kind of task only")
    p.add_argument(
        "--search",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="search instead of gridding: ℓ_train by galloping/bisecting over --depths from the cascade's "
        "prediction, the σw² interval at --target-depth, the cutoff peak (see [search] in the README); "
        "--no-search runs every task of the grid",
    )
    p.add_argument("--target-depth", type=int, help="with --search: find the σw² interval where ℓ_c ≥ this depth")
    p.add_argument("--sigma-w2-tolerance", type=float, help="with --search: width of a σw² edge (default 0.02)")
    p.add_argument(
        "--depth-resolution",
        type=int,
        help="with --search: width of an ℓ_train bracket in layers (default: one step of --depths)",
    )
    p.add_argument(
        "--edge-trainings",
        action="store_true",
        help="with --target-depth: also train depth L just inside and just outside each σw² edge",
    )
    p.add_argument("--cascade-workers", type=int, help="cascade actors (default: one per GPU, or per CPU)")
    p.add_argument(
        "--cascade-group",
        type=int,
        help="cascades one actor trains together (default: as many as its GPU memory holds, 1 on CPU)",
    )
    p.add_argument(
        "--baseline-group", type=int, help="baseline networks trained together per trial as batched matmuls (default 1)"
    )
    p.add_argument("--gpus-per-trial", type=float, help="GPU fraction per baseline trial (default 0.25 with GPUs)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else start a local Ray)")
    p.add_argument("--dry-run", action="store_true", help="print the tasks and resources, run nothing")
    p.add_argument(
        "--verify",
        action="store_true",
        help="check every finished task's files against what was written (present, size, rows); "
        "re-queue the damaged tasks so the next run recomputes exactly them; run nothing",
    )
    return p


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The grid values the flags set (flags left out change nothing)."""
    top = {
        "results": args.results,
        "sigma_w2": args.sigma_w2,
        "depths": args.depths,
        "datasets": args.datasets,
        "seeds": args.seeds,
        "widths": args.widths,
        "architecture": args.architecture,
        "channels": args.channels,
        "sigma_b2": args.sigma_b2,
        "kinds": (args.only,) if args.only else None,
    }
    nested = {
        "train": {"max_epochs": args.max_epochs, "accuracy_threshold": args.threshold, "loss": args.loss},
        "cascade": {"epochs": args.cascade_epochs, "eval_samples": args.eval_samples},
        "data": {"max_train_samples": args.max_train_samples},
        "resources": {
            "cascade_workers": args.cascade_workers,
            "gpus_per_trial": args.gpus_per_trial,
            "baseline_group": args.baseline_group,
            "cascade_group": args.cascade_group,
        },
        "info_plane": {"enabled": True, "estimator": args.info_plane} if args.info_plane else {},
        "interpret": {"enabled": True} if args.interpret else {},
        "search": {
            "enabled": args.search,
            "target_depth": args.target_depth,
            "sigma_w2_tolerance": args.sigma_w2_tolerance,
            "depth_resolution": args.depth_resolution,
            "edge_trainings": True if args.edge_trainings else None,
        },
    }
    out: dict[str, Any] = {k: v for k, v in top.items() if v is not None}
    for section, values in nested.items():
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            out[section] = values
    return out


def _terminate(signum, frame):
    raise KeyboardInterrupt  # `ray job stop` and `kill` end the driver like Ctrl-C: cleanly, resumable


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        grid = resolve_grid(args.preset, args.config, overrides(args))
        if args.verify:
            return verify(grid.results, sys.stdout)
        if args.dry_run:
            from infoflow_ray.store import ResultStore
            from infoflow_ray.sweep.driver import describe, describe_search

            store = ResultStore.open(grid.results, create=False) if _exists(grid.results) else None
            finished = store.finished_task_ids() if store else set()
            if grid.search.enabled:
                describe_search(grid, finished, sys.stdout)
            else:
                describe(grid, [t for t in grid.tasks() if t.task_id not in finished], finished, sys.stdout)
            return EXIT_OK
        from infoflow_ray.sweep.driver import run_grid

        outcome = run_grid(grid, address=args.address)
    except InfoflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: finished tasks are stored; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.interrupted:
        print("interrupted: finished tasks are stored; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(
        f"results: {grid.results}  (open with: python jobs/analyze.py {grid.results}, or "
        f"infoflow_ray.store.ResultStore.open('{grid.results}').scan('cutoffs') in polars)"
    )
    if outcome.failed:
        print(
            f"{len(outcome.failed)} tasks did not finish (see the 'failures' table); re-run to retry them",
            file=sys.stderr,
        )
        return EXIT_FAILED_TASKS
    return EXIT_OK


def verify(results: str, out) -> int:
    """``--verify``: report the finished tasks whose files are damaged or gone, and re-queue them."""
    from infoflow_ray.store import ResultStore

    store = ResultStore.open(results, create=False)
    with store.exclusive():  # no driver may write while tasks are re-queued
        finished = len(store.finished_task_ids())
        damaged = store.verify()
        for task in damaged:
            print(f"damaged: {task.task_id} ({task.label}): {'; '.join(task.problems)}", file=out)
        store.requeue(damaged)
    if damaged:
        print(
            f"{len(damaged)} task(s) re-queued; run the same command without --verify to recompute exactly "
            f"them ({finished - sum(t.label != '?' for t in damaged)} finished tasks are intact)",
            file=out,
        )
    else:
        print(f"all {finished} finished tasks in {results} have every file as written", file=out)
    return EXIT_OK


def _exists(location: str) -> bool:
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(location) if "://" in location else (pafs.LocalFileSystem(), location)
        return fs.get_file_info(path).type != pafs.FileType.NotFound
    except Exception:
        return False


if __name__ == "__main__":
    sys.exit(main())

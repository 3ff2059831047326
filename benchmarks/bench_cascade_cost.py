"""The cascade's cost against its accuracy: how cheap can a cascade be before its ranking of σw² degrades?

    PYTHONPATH=. .venv/bin/python benchmarks/bench_cascade_cost.py --preset predictors-chaotic --threads 2

Takes a finished predictor grid (its preset names the networks, its results folder holds the truth, ℓ_train from
``train_summary``), runs the cascade of every (dataset, architecture, σw², σb², seed) again under cheaper and
dearer settings than the preset's — fewer training images, fewer evaluation images, two decoder epochs, a cascade
half as deep — and scores each setting's three cutoffs exactly as ``analysis.leaderboard`` scores the grid's:
Spearman over σw² with ℓ_train, AUROC over the trained cells (cutoff − L), and seconds per network (wall seconds
of one cascade, one at a time, on this machine). Prints a markdown table, machine, commit and date.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from infoflow_ray.analysis.leaderboard import leaderboard, truth_cells
from infoflow_ray.data import Dataset
from infoflow_ray.predict import predict_trainability
from infoflow_ray.predictors.cascade import CASCADE_MEASURES
from infoflow_ray.store import GROUP, KEYS, ResultStore
from infoflow_ray.sweep.grid import resolve_grid
from infoflow_ray.sweep.task_runner import load_task_data

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_device_args, device_of, timed  # noqa: E402


def settings(cascade, train_images: int, depth: int) -> list[tuple[str, object, int, int]]:
    """(label, CascadeSpec, training images, cascade depth): the preset's setting first, then one change each."""
    half, quarter = (dataclasses.replace(cascade, eval_samples=cascade.eval_samples // k) for k in (2, 4))
    return [
        ("as the preset", cascade, train_images, depth),
        ("½ training images", cascade, train_images // 2, depth),
        ("¼ training images", cascade, train_images // 4, depth),
        (f"{half.eval_samples} evaluation images", half, train_images, depth),
        (f"{quarter.eval_samples} evaluation images", quarter, train_images, depth),
        ("2 decoder epochs", dataclasses.replace(cascade, epochs=2), train_images, depth),
        (f"depth {depth // 2} (½)", cascade, train_images, depth // 2),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="predictors-chaotic", help="a finished predictor grid's preset")
    parser.add_argument("--results", default=None, help="its results folder (default: the preset's)")
    add_device_args(parser)
    args = parser.parse_args()
    device, device_label = device_of(args)
    grid = resolve_grid(args.preset, overrides={"results": args.results} if args.results else None)
    store = ResultStore.open(grid.results, create=False)
    cells = truth_cells(store)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# bench_cascade_cost: preset {args.preset} ({grid.results}), {device_label}, commit {commit}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")  # fmt: skip
    print("| group | setting | seconds per network | " + " | ".join(f"{m} Spearman / AUROC" for m in CASCADE_MEASURES))
    print("|---|---|---|" + "---|" * len(CASCADE_MEASURES))
    for dataset in grid.datasets:
        full = load_task_data(dataset, grid.data, device)
        for architecture in grid.architecture:
            for label, cascade, n_train, depth in settings(grid.cascade, full.train_x.shape[0], grid.deepest):
                data = Dataset(
                    full.name, full.train_x[:n_train], full.train_y[:n_train], full.test_x, full.test_y, full.n_classes
                )
                rows = []
                for sigma_b2 in grid.sigma_b2:
                    for sigma_w2 in grid.sigma_w2:
                        spec = grid.network(dataset, sigma_w2, depth, sigma_b2, architecture)
                        for seed in grid.seeds:
                            prediction, seconds = timed(
                                lambda: predict_trainability(spec, cascade, data, seed, device), device
                            )
                            for measure in CASCADE_MEASURES:
                                value = (
                                    prediction.per_image_cutoff_mean
                                    if measure == "kl_per_image"
                                    else float(prediction.cutoffs[measure].layer)
                                )
                                rows.append(
                                    dict(
                                        dataset=dataset, profile=spec.profile_name, sigma_b2=float(sigma_b2),
                                        sigma_w2=float(sigma_w2), depth=depth, seed=seed, predictor=measure,
                                        kind="cascade", score=value, predicted_depth=value, higher_is_better=True,
                                        seconds=seconds,
                                    )
                                )  # fmt: skip
                preds = pl.DataFrame(rows).select(KEYS + [c for c in rows[0] if c not in KEYS])
                board = leaderboard(preds, cells.join(preds.select(GROUP).unique(), on=GROUP))
                for key, group in board.group_by(GROUP, maintain_order=True):
                    by = {r["predictor"]: r for r in group.iter_rows(named=True)}
                    seconds = group["seconds_per_network"][0]
                    scores = " | ".join(f"{by[m]['spearman']:.2f} / {by[m]['auroc']:.2f}" for m in CASCADE_MEASURES)
                    print(f"| {key[0]} {key[1]} | {label} | {seconds:.2f} | {scores} |", flush=True)


if __name__ == "__main__":
    main()

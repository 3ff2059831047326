"""Predict, then tune, against tuning without the prediction: a preset of ``jobs/predict_then_tune.py`` (default
``cpu``) end to end on a local Ray, then the per-arm summary the README and RESULTS.md quote.

    .venv/bin/python benchmarks/bench_tuning.py                       # the CPU preset, ≈ 15 minutes on 2 cores
    .venv/bin/python benchmarks/bench_tuning.py --preset tiny --results /tmp/tune-tiny
    .venv/bin/python benchmarks/bench_tuning.py --depth 45 --results /tmp/tune-d45   # another depth

Prints the machine, commit and date, the driver's wall time, the prediction, and per arm: the compute to reach the
target accuracy (median, min, max over search seeds, task-seconds), the best accuracy, and the saving (the control
arm's median over the predicted arm's). Resumes like the job: a finished results folder is only summarised.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from datetime import UTC, datetime

import polars as pl
import torch

from infoflow_ray.analysis import tuning
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.tuning import run_predict_then_tune
from infoflow_ray.sweep.tuning_spec import PRESETS, resolve_tuning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=list(PRESETS))
    parser.add_argument("--results", help="results folder (default: the preset's)")
    parser.add_argument("--depth", type=int, help="the tuned depth L (default: the preset's)")
    args = parser.parse_args()
    overrides = {k: v for k, v in (("results", args.results), ("depth", args.depth)) if v is not None}
    spec = resolve_tuning(args.preset, overrides=overrides)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, preset {args.preset}")  # fmt: skip
    start = time.monotonic()
    outcome = run_predict_then_tune(spec, progress_interval_seconds=60)
    wall = time.monotonic() - start
    if outcome.interrupted or outcome.prediction_failed:
        raise SystemExit(f"not finished: {outcome.prediction_failed or 'interrupted'}")
    trials = tuning.tune_trials(ResultStore.open(spec.results, create=False))
    target = tuning.target_accuracy(trials)
    per_seed = tuning.experiments(trials, target)
    print(f"wall time {wall:.0f} s; prediction {outcome.prediction.sigma_w2} from {outcome.prediction.networks} "
          f"cascades, {outcome.prediction.seconds:.0f} task-seconds; target accuracy {target:.4f}")  # fmt: skip
    with pl.Config(tbl_rows=100, tbl_cols=30, tbl_width_chars=250, tbl_hide_dataframe_shape=True):
        print(per_seed.drop("job", "profile", "sigma_b2", "experiment_id"))
        print(tuning.arm_summary(per_seed).drop("job", "profile", "sigma_b2"))


if __name__ == "__main__":
    main()

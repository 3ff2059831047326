"""Predict, then tune: the trainable σw² interval from cascades, then a Ray Tune search inside it, measured
against the same search over the whole σw² range (seed 001 §2.2).

    python jobs/predict_then_tune.py                     # the CPU preset: MNIST-t10k, depth 30, ≈15 min on 2 cores
    python jobs/predict_then_tune.py --preset tiny       # a ~1 minute check
    python jobs/predict_then_tune.py --depth 40 --trials 32 --dry-run
    ray job submit --working-dir . -- python jobs/predict_then_tune.py --preset paper-mnist --results s3://b/p
    python jobs/analyze.py results/predict-then-tune     # the best-so-far figure and the report

Re-running the same command resumes: stored trials are not run again, interrupted experiments are restored.
The job (TuningSpec, PRESETS, plan, run, report) is infoflow_ray.sweep.tuning's TUNE; its flags come from
TuningSpec's fields (--space.lr, --resources.cpus-per-trial, …; --help lists them) and --config FILE sets them too.
"""

import sys

from infoflow_ray.sweep.jobs import main

if __name__ == "__main__":
    sys.exit(main("tune"))

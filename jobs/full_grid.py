"""The main job: run a grid of cascade predictions and baseline trainings on Ray, results to Parquet.

    python jobs/full_grid.py                       # the default (a search) on a local Ray, bundled MNIST-t10k
    python jobs/full_grid.py --no-search           # the same preset as a full grid: every task
    python jobs/full_grid.py --preset tiny         # a < 1 minute check
    python jobs/full_grid.py --config grid.toml --sigma-w2 0.5:4:0.5 --dry-run   # preset → file → flags
    ray job submit --working-dir . -- python jobs/full_grid.py --preset paper-mnist-wide --results s3://b/p
    python jobs/full_grid.py --help                # every option (one per GridSpec field)

Re-running the same command skips finished tasks and resumes interrupted trainings. The job itself (GridSpec,
PRESETS, plan, run, report) is infoflow_ray.sweep.driver's GRID; the flags come from GridSpec's fields.
"""

import sys

from infoflow_ray.sweep.jobs import main

if __name__ == "__main__":
    sys.exit(main("grid"))

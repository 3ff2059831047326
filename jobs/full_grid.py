"""The main job: run a grid of cascade predictions and baseline trainings on Ray, results to Parquet.

    python jobs/full_grid.py                       # the default (a search) on a local Ray, bundled MNIST-t10k
    python jobs/full_grid.py --no-search           # the same preset as a full grid: every task
    python jobs/full_grid.py --preset tiny         # a < 1 minute check
    ray job submit --working-dir . -- python jobs/full_grid.py --preset paper-mnist-wide --results s3://b/p
    python jobs/full_grid.py --help                # every option

Re-running the same command skips finished tasks and resumes interrupted trainings.
"""

import sys

from infoflow_ray.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())

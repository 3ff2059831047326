"""Information-plane experiments on Ray: seed 002's synthetic task and small tanh networks (binning, simple and
extended estimators), seed 003's estimators side by side, seed 004's density-model estimator on MNIST.

    python jobs/info_plane.py                       # seed 002's three experiments (a few minutes on 2 cores)
    python jobs/info_plane.py --preset seed004      # 784-256-256-10 on MNIST-t10k, density models on Ray
    python jobs/info_plane.py --preset tiny         # a one-minute check
    python jobs/info_plane.py --preset seed004 --dataset mnist --dry-run
    ray job submit --working-dir . -- python jobs/info_plane.py --preset seed004 --results s3://bucket/ib

Points land in the results folder's info_plane table (``step`` = SGD steps done); figures and report.md in its
figures/ folder. Re-running the same command resumes: stored points are not estimated again.
"""

import sys

from infoflow_ray.sweep.jobs import main

if __name__ == "__main__":
    sys.exit(main("info-plane"))

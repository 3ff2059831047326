#!/usr/bin/env bash
# Regenerate the README's figures and the reports that hold every number of their captions:
#   docs/default/            the default preset's search (the README's phase diagram, entropy map, reconstructions)
#   docs/default-full-grid/  the same preset as a full grid, run into the same folder (only what the search skipped)
# ≈ 23 minutes on a 2-core CPU (measured 2026-12-02: 22 min 38 s). Usage: bash docs/regenerate.sh [RESULTS_FOLDER]   (default results/docs-default)
set -euo pipefail
cd "$(dirname "$0")/.."
results=${1:-results/docs-default}
python=.venv/bin/python

"$python" jobs/full_grid.py --results "$results"
rm -rf docs/default && "$python" jobs/analyze.py "$results" --out docs/default
"$python" jobs/full_grid.py --no-search --results "$results"
rm -rf docs/default-full-grid && "$python" jobs/analyze.py "$results" --out docs/default-full-grid
rm -f docs/default/*.pdf docs/default-full-grid/*.pdf   # the PNGs are what the README shows
echo "regenerated: docs/default, docs/default-full-grid (report.md in each)"

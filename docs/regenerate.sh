#!/usr/bin/env bash
# Regenerate the README's figures and the reports that hold every number of their captions:
#   docs/default/            the default preset's search (the README's phase diagram, budget ladder, entropy map,
#                            reconstructions; ≈ 8 min)
#   docs/default-full-grid/  the same grid in full with every predictor (the README's cost-against-accuracy figure;
#                            ≈ 15 min)
#   docs/predict-then-tune/  jobs/predict_then_tune.py's cpu preset (the README's tuning figure), its own folder
#   docs/paper-fig5/         the paper-fig5 preset with --interpret (perfect inputs, retraced decisions)
#   docs/info-plane/         jobs/info_plane.py's seed002, seed003 and seed004 presets in one folder (its figures/)
#   docs/architectures/      the architectures preset (mlp, cnn, resnet side by side)
# ≈ 1.5 hours on a 2-core CPU (measured 2026-12-02: 22 min 38 s for the first two, 13 min and 4.5 min for the next two,
# 16 min for architectures and 31 min for seed004 while sharing the cores with each other, 1.5 min for seed002 + seed003).
# Usage: bash docs/regenerate.sh [RESULTS_FOLDER]   (default results/docs-default; the tuning job: RESULTS_FOLDER-tune)
set -euo pipefail
cd "$(dirname "$0")/.."
results=${1:-results/docs-default}
python=.venv/bin/python

"$python" jobs/full_grid.py --results "$results"
rm -rf docs/default && "$python" jobs/analyze.py "$results" --out docs/default
"$python" jobs/full_grid.py --preset default-full-grid --results "$results-full-grid"
rm -rf docs/default-full-grid && "$python" jobs/analyze.py "$results-full-grid" --out docs/default-full-grid
"$python" jobs/predict_then_tune.py --results "$results-tune"
rm -rf docs/predict-then-tune && "$python" jobs/analyze.py "$results-tune" --out docs/predict-then-tune
"$python" jobs/full_grid.py --preset paper-fig5 --results "$results-fig5"
rm -rf docs/paper-fig5 && "$python" jobs/analyze.py "$results-fig5" --out docs/paper-fig5
"$python" jobs/full_grid.py --preset architectures --results "$results-arch"
rm -rf docs/architectures && "$python" jobs/analyze.py "$results-arch" --out docs/architectures
for preset in seed002 seed003 seed004; do "$python" jobs/info_plane.py --preset "$preset" --results "$results-ib"; done
rm -rf docs/info-plane && cp -r "$results-ib/figures" docs/info-plane
rm -f docs/architectures/*.pdf docs/info-plane/*.pdf docs/default/*.pdf docs/default-full-grid/*.pdf docs/predict-then-tune/*.pdf docs/paper-fig5/*.pdf   # PNGs only
echo "regenerated: docs/default, docs/default-full-grid, docs/predict-then-tune, docs/paper-fig5, docs/architectures, docs/info-plane (report.md in each)"

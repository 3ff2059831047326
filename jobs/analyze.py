"""Analyse a results folder: the phase diagram and the other figures (PNG + PDF) and a Markdown report.

    python jobs/analyze.py results/default                  # writes results/default/analysis/
    python jobs/analyze.py s3://bucket/grid --out analysis  # a cloud results location (--out defaults to ./analysis)

The report is ``infoflow_ray.analysis.report`` (figures and report.md from whatever the results hold, partial
results included). Exit status 2 with a one-line message for a bad results location.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infoflow_ray import analysis
from infoflow_ray.analysis import report
from infoflow_ray.errors import ResultsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Figures and a Markdown report from an infoflow-ray results folder.")
    parser.add_argument("results", help="results location: a directory or a URI such as s3://bucket/path")
    parser.add_argument("--out", help="output folder (default: RESULTS/analysis, or ./analysis for a URI)")
    args = parser.parse_args(argv)
    try:
        store = analysis.open_results(args.results)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("analysis") if "://" in args.results else Path(args.results) / "analysis"
    result = report.write(store, out)
    for path in result.figures + [result.report]:
        print(path)
    for note in result.skipped:
        print(f"skipped {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

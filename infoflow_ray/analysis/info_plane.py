"""The information-plane experiments of ``jobs/info_plane.py`` (seeds 002–004): trajectories, fitting and
compression, report.

The job's ``info_plane`` rows (counted in SGD steps: ``step`` set, ``epoch`` null) are joined with their ``runs``
rows for the experiment's name (``grid_name``). Values in nats, except estimator 'dcor' (distance correlation, in
[0, 1]).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from infoflow_ray.analysis.frames import table
from infoflow_ray.store import ResultStore

TRAJECTORY_KEYS = ["experiment", "dataset", "profile", "estimator", "param", "layer", "step"]


def trajectories(store: ResultStore) -> pl.DataFrame:
    """One row per (experiment, estimator, layer, step): i_xt, i_ty, n_samples, seconds.

    Columns: TRAJECTORY_KEYS, depth, i_xt, i_ty, n_samples, seconds. Empty when the job wrote nothing yet.
    """
    names = table(store, "runs").filter(pl.col("kind") == "info_plane").select("task_id", experiment="grid_name")
    return (
        table(store, "info_plane")
        .filter(pl.col("step").is_not_null())
        .join(names, on="task_id")
        .select(
            "experiment",
            "dataset",
            "profile",
            "estimator",
            "param",
            "layer",
            "step",
            "depth",
            "i_xt",
            "i_ty",
            "n_samples",
            "seconds",
        )
        .sort(TRAJECTORY_KEYS)
        .collect()
    )


def fitting_and_compression(traj: pl.DataFrame) -> pl.DataFrame:
    """Did fitting and compression happen? One row per (experiment, estimator, layer).

    fitting: I(T;Y) rose from the first snapshot to its maximum (ty_first, ty_max, ty_last). compression: after
    its peak (xt_peak at step_xt_peak), I(X;T) fell by ``compression`` = (xt_peak − xt_last) / xt_peak by the
    last snapshot; the seed-002 picture is fitting followed by compression (xt_peak before the last snapshot,
    compression > 0 while I(T;Y) stays near its maximum).
    """
    by = ["experiment", "estimator", "param", "layer"]
    return (
        traj.sort(by + ["step"])
        .group_by(by, maintain_order=True)
        .agg(
            steps=pl.len(),
            xt_first=pl.col("i_xt").first(),
            xt_peak=pl.col("i_xt").max(),
            step_xt_peak=pl.col("step").get(pl.col("i_xt").arg_max()),
            xt_last=pl.col("i_xt").last(),
            ty_first=pl.col("i_ty").first(),
            ty_max=pl.col("i_ty").max(),
            ty_last=pl.col("i_ty").last(),
            last_step=pl.col("step").last(),
        )
        .with_columns(
            compression=pl.when(pl.col("xt_peak") > 0).then((pl.col("xt_peak") - pl.col("xt_last")) / pl.col("xt_peak"))
        )
        .sort(by)
    )


def write_report(results: str) -> list[Path]:
    """Draw one figure per experiment and write ``report.md`` into ``results``' folder ``figures``; return the
    paths (none when ``results`` is not a local folder)."""
    from infoflow_ray import plots

    if "://" in results:
        return []
    store = ResultStore.open(results, create=False)
    traj = trajectories(store)
    out = Path(results) / "figures"
    written: list[Path] = []
    lines = [
        "# Information-plane experiments",
        "",
        "Values in nats (natural log; bits = nats / ln 2); 'dcor' is distance correlation, in [0, 1].",
        "compression = (peak − last) / peak of I(X;T) after its peak; fitting: I(T;Y) from first to max.",
        "",
    ]
    for experiment in traj.get_column("experiment").unique(maintain_order=True).to_list():
        frame = traj.filter(pl.col("experiment") == experiment)
        fig = plots.ib_trajectories(frame, experiment)
        written += plots.save(fig, out, f"info_plane_{experiment}")
        summary = fitting_and_compression(frame)
        lines += [f"## {experiment}", "", f"![{experiment}](info_plane_{experiment}.png)", ""]
        lines += [
            "| estimator | layer | I(X;T) first → peak (step) → last | compression | I(T;Y) first → max → last |",
            "|---|---|---|---|---|",
        ]
        for r in summary.iter_rows(named=True):
            lines.append(
                f"| {r['estimator']} | {r['layer']} | {r['xt_first']:.3f} → {r['xt_peak']:.3f} ({r['step_xt_peak']}) "
                f"→ {r['xt_last']:.3f} | {r['compression']:.1%} | {r['ty_first']:.3f} → {r['ty_max']:.3f} → "
                f"{r['ty_last']:.3f} |"
                if r["compression"] is not None
                else f"| {r['estimator']} | {r['layer']} | {r['xt_first']:.3f} → {r['xt_last']:.3f} | – | "
                f"{r['ty_first']:.3f} → {r['ty_last']:.3f} |"
            )
        lines.append("")
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return written + [report]

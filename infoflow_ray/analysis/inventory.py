"""What a results folder holds and lacks, against the grids the driver recorded (a grid may still be running)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import polars as pl

from infoflow_ray.analysis.frames import GROUP, KEYS, OPTIONAL, PRODUCERS, TABLE_KIND
from infoflow_ray.store import TABLES, CorruptFileWarning, ResultStore


@dataclass(frozen=True)
class Inventory:
    """What a results folder holds and what it lacks (a grid may still be running).

    rows: readable rows per table. unreadable_files: files the store skipped (truncated or corrupt).
    coverage: one row per (dataset, profile, σb², σw²) present: cascade_runs, cutoff_seeds, curve_seeds,
    reconstruction_seeds, baseline_runs, trainings, trained_depths, missing_trainings (expected (depth, seed)
    pairs — every depth and seed seen in the σw²'s (dataset, profile, σb²) — with no training),
    missing_depths. failed: tasks whose attempts failed and that have no finished run. duplicates: (kind, σw²,
    depth, seed) points finished by more than one task (different configs in one folder). devices per kind.
    grids: the names of the grids recorded in ``_grids/`` (one per run of the driver with new settings).
    plan: one row per (kind, dataset, profile, σb², σw²) of the recorded grids' tasks: planned, finished,
    failed (attempts failed, no finished run), not_run (neither, or still running), unfinished_depths,
    unfinished_seeds; empty when no grid is recorded. unplanned: finished tasks of no recorded grid.
    What is missing is judged against the recorded grids; for results written before grids were recorded, against
    what is present (then a σw² no task of which has finished is not seen).
    """

    location: str
    rows: dict[str, int]
    unreadable_files: tuple[str, ...]
    coverage: pl.DataFrame
    failed: pl.DataFrame
    duplicates: pl.DataFrame
    devices: dict[str, list[str]]
    loss_fns: list[str]
    thresholds: list[float]
    grids: tuple[str, ...]
    plan: pl.DataFrame
    unplanned: int
    grid_error: str | None

    @property
    def planned(self) -> bool:
        """Whether a planned grid is recorded (results from before grids were recorded have none)."""
        return self.plan.height > 0

    @property
    def absent(self) -> list[str]:
        """The tables this analysis reads that have no readable rows (optional tables are not listed, nor, when a
        grid is recorded, the tables of a kind of task it did not plan)."""
        kinds = set(self.plan["kind"]) if self.planned else set(TABLE_KIND.values())
        return [
            name
            for name in PRODUCERS
            if name not in OPTIONAL
            and self.rows.get(name, 0) == 0
            and (name not in TABLE_KIND or TABLE_KIND[name] in kinds)
        ]

    def progress(self) -> str:
        """'N of M planned tasks finished (cascade a of b; baseline c of d, k failed)', or why it cannot say."""
        if not self.planned:
            return (
                "No planned grid is recorded (results written before the driver recorded its grids): what is "
                "missing is judged by what is present"
            )
        totals = (
            self.plan.group_by("kind").agg(pl.col("planned", "finished", "failed", "not_run").sum()).rows(named=True)
        )
        parts = [
            f"{t['kind']} {t['finished']} of {t['planned']}"
            + (f", {t['failed']} failed" if t["failed"] else "")
            + (f", {t['not_run']} not run yet" if t["not_run"] else "")
            for t in sorted(totals, key=lambda t: (t["kind"] != "cascade", t["kind"]))
        ]
        finished, planned = sum(t["finished"] for t in totals), sum(t["planned"] for t in totals)
        return f"{finished} of {planned} planned tasks finished ({'; '.join(parts)})"

    def problems(self) -> list[str]:
        """One sentence per thing that is missing or suspicious; empty when the results are complete."""
        out = [f"table '{name}' has no rows; {PRODUCERS[name]}" for name in self.absent]
        if self.grid_error:
            out.append(self.grid_error)
        if self.unreadable_files:
            out.append(
                f"{len(self.unreadable_files)} unreadable (truncated or corrupt) file(s) skipped: "
                + ", ".join(self.unreadable_files)
            )
        for (dataset, profile, sigma_b2), part in self.coverage.group_by(GROUP, maintain_order=True):
            where = f"{dataset}/{profile} σb²={sigma_b2:g}"
            lost = part.filter(pl.col("cascade_runs") > pl.col("cutoff_seeds"))["sigma_w2"]
            lost_training = part.filter(pl.col("baseline_runs") > pl.col("trainings"))["sigma_w2"]
            if len(lost):
                out.append(f"{where}: σw² {_list(lost)} have finished cascade runs whose cutoffs are unreadable")
            if len(lost_training):
                out.append(
                    f"{where}: σw² {_list(lost_training)} have finished baseline runs whose training "
                    "summaries are unreadable"
                )
            if not self.planned:
                out += _gaps_judged_by_what_is_present(where, part)
        for row in self.plan.filter(pl.col("finished") < pl.col("planned")).iter_rows(named=True):
            failed = f"; {row['failed']} failed" if row["failed"] else ""
            out.append(
                f"{row['dataset']}/{row['profile']} σb²={row['sigma_b2']:g}: σw² {row['sigma_w2']:g}: "
                f"{row['finished']} of {row['planned']} {row['kind']} tasks finished (missing depth(s) "
                f"{_list(row['unfinished_depths'])}, seed(s) {_list(row['unfinished_seeds'])}{failed})"
            )
        if self.planned and self.unplanned:
            out.append(
                f"{self.unplanned} finished task(s) belong to no recorded grid (written before the driver "
                "recorded its grids); what their grid lacks is not judged"
            )
        if self.failed.height:
            out.append(
                f"{self.failed.height} task(s) failed and have no finished run: "
                + "; ".join(
                    f"{r['kind']} σw²={r['sigma_w2']:g} depth {r['depth']} seed {r['seed']}: {r['error']}"
                    for r in self.failed.head(5).iter_rows(named=True)
                )
                + (" …" if self.failed.height > 5 else "")
            )
        if self.duplicates.height:
            out.append(
                f"{self.duplicates.height} (kind, σw², depth, seed) point(s) were finished by more than one "
                "task (grids with different settings in one folder); they are averaged as extra seeds"
            )
        if len(self.loss_fns) > 1 or len(self.thresholds) > 1:
            out.append(
                f"trainings mix losses {self.loss_fns} / accuracy thresholds {self.thresholds}; ℓ_train mixes them too"
            )
        return out


def _gaps_judged_by_what_is_present(where: str, part: pl.DataFrame) -> list[str]:
    """Coverage gaps of one (dataset, profile, σb²) when no grid is recorded: one side present, the other not."""
    out = []
    no_train = part.filter((pl.col("cutoff_seeds") > 0) & (pl.col("trainings") == 0))["sigma_w2"]
    no_cut = part.filter((pl.col("trainings") > 0) & (pl.col("cutoff_seeds") == 0))["sigma_w2"]
    if len(no_train):
        out.append(f"{where}: σw² {_list(no_train)} have cutoffs but no trainings")
    if len(no_cut):
        out.append(f"{where}: σw² {_list(no_cut)} have trainings but no cutoffs")
    for row in part.filter(pl.col("missing_trainings") > 0).iter_rows(named=True):
        out.append(
            f"{where}: σw² {row['sigma_w2']:g} lacks {row['missing_trainings']} training(s) at "
            f"depth(s) {_list(row['missing_depths'])}"
        )
    return out


def _list(values) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def missing(store: ResultStore) -> Inventory:
    """An inventory of the results: rows per table, unreadable files, per-σw² coverage, failures, and planned vs
    finished tasks of the recorded grids (see Inventory)."""
    columns = {
        name: [
            c
            for c in (
                "task_id",
                "kind",
                *KEYS,
                "depth",
                "seed",
                "loss_fn",
                "accuracy_threshold",
                "device",
                "attempt",
                "error",
            )
            if c in schema.names
        ]
        for name, schema in TABLES.items()
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CorruptFileWarning)
        frames = {name: store.scan(name).select(columns[name]).collect() for name in TABLES}
    unreadable = sorted({_quoted_path(str(w.message)) for w in caught if issubclass(w.category, CorruptFileWarning)})
    for w in caught:
        if not issubclass(w.category, CorruptFileWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    # jobs/info_plane.py's experiments are not grid cells (they have their own figures and report section)
    runs, summary = frames["runs"].filter(pl.col("kind") != "info_plane"), frames["train_summary"]
    seeds = pl.col("seed").n_unique().cast(pl.Int64)
    parts = [
        runs.group_by(KEYS).agg(
            cascade_runs=(pl.col("kind") == "cascade").sum().cast(pl.Int64),
            baseline_runs=(pl.col("kind") == "baseline").sum().cast(pl.Int64),
        ),
        frames["cutoffs"].group_by(KEYS).agg(cutoff_seeds=seeds),
        frames["curves"].group_by(KEYS).agg(curve_seeds=seeds),
        frames["reconstructions"].group_by(KEYS).agg(reconstruction_seeds=seeds),
        summary.group_by(KEYS).agg(trainings=pl.len().cast(pl.Int64), trained_depths=pl.col("depth").unique().sort()),
    ]
    coverage = parts[0]
    for part in parts[1:]:
        coverage = coverage.join(part, on=KEYS, how="full", coalesce=True)
    counts = ["cascade_runs", "baseline_runs", "cutoff_seeds", "curve_seeds", "reconstruction_seeds", "trainings"]
    coverage = coverage.with_columns(pl.col(counts).fill_null(0))

    baselines = pl.concat(
        [
            runs.filter(pl.col("kind") == "baseline").select(KEYS + ["depth", "seed"]),
            summary.select(KEYS + ["depth", "seed"]),
        ]
    )
    expected = (
        coverage.select(KEYS)
        .join(baselines.select(GROUP + ["depth"]).unique(), on=GROUP)
        .join(baselines.select(GROUP + ["seed"]).unique(), on=GROUP)
    )
    absent = expected.join(summary.select(KEYS + ["depth", "seed"]).unique(), on=KEYS + ["depth", "seed"], how="anti")
    gaps = absent.group_by(KEYS).agg(
        missing_trainings=pl.len().cast(pl.Int64), missing_depths=pl.col("depth").unique().sort()
    )
    coverage = (
        coverage.join(gaps, on=KEYS, how="left").with_columns(pl.col("missing_trainings").fill_null(0)).sort(KEYS)
    )

    failures = frames["failures"]
    failed = (
        failures.join(runs.select("task_id"), on="task_id", how="anti")
        .group_by("task_id")
        .agg(
            pl.col("kind", "dataset", "sigma_w2", "depth", "seed").first(),
            attempts=pl.len().cast(pl.Int64),
            error=pl.col("error").sort_by("attempt").last(),
        )
        .sort("kind", "dataset", "sigma_w2", "depth", "seed")
    )
    duplicates = (
        runs.group_by(["kind"] + KEYS + ["depth", "seed"])
        .agg(tasks=pl.len().cast(pl.Int64))
        .filter(pl.col("tasks") > 1)
    )
    devices = {kind: sorted(part["device"].unique().to_list()) for (kind,), part in runs.group_by("kind")}
    try:
        grids, grid_error = store.planned_grids(), None
        plan, unplanned = _plan(grids, runs["task_id"], failed["task_id"])
    except (OSError, ValueError, KeyError, TypeError) as e:  # a damaged grid record: judge by what is present
        grids, grid_error = [], f"the planned-grid records in _grids/ are unreadable ({e!r}); judged by what is present"
        plan, unplanned = _plan([], runs["task_id"], failed["task_id"])
    return Inventory(
        location=store.location,
        rows={name: frame.height for name, frame in frames.items()},
        unreadable_files=tuple(unreadable),
        coverage=coverage,
        failed=failed,
        duplicates=duplicates,
        devices=devices,
        loss_fns=sorted(summary["loss_fn"].unique().to_list()),
        thresholds=sorted(summary["accuracy_threshold"].unique().to_list()),
        grids=tuple(g["name"] for g in grids),
        plan=plan,
        unplanned=unplanned,
        grid_error=grid_error,
    )


_PLANNED_TASK = {
    "task_id": pl.String,
    "kind": pl.String,
    "dataset": pl.String,
    "profile": pl.String,
    "sigma_w2": pl.Float64,
    "sigma_b2": pl.Float64,
    "depth": pl.Int64,
    "seed": pl.Int64,
}


def _plan(grids: list[dict], finished: pl.Series, failed: pl.Series) -> tuple[pl.DataFrame, int]:
    """Planned vs finished vs failed tasks per (kind, KEYS) over every recorded grid, and how many finished tasks
    no grid planned (see Inventory.plan)."""
    tasks = pl.DataFrame(
        [{k: t[k] for k in _PLANNED_TASK} for g in grids for t in g["tasks"]], schema=_PLANNED_TASK
    ).unique("task_id")
    status = (
        pl.when(pl.col("task_id").is_in(finished.implode()))
        .then(pl.lit("finished"))
        .when(pl.col("task_id").is_in(failed.implode()))
        .then(pl.lit("failed"))
        .otherwise(pl.lit("not_run"))
    )
    unfinished = pl.col("status") != "finished"
    plan = (
        tasks.with_columns(status=status)
        .group_by(["kind"] + KEYS)
        .agg(
            planned=pl.len().cast(pl.Int64),
            finished=(~unfinished).sum().cast(pl.Int64),
            failed=(pl.col("status") == "failed").sum().cast(pl.Int64),
            not_run=(pl.col("status") == "not_run").sum().cast(pl.Int64),
            unfinished_depths=pl.col("depth").filter(unfinished).unique().sort(),
            unfinished_seeds=pl.col("seed").filter(unfinished).unique().sort(),
        )
        .sort(KEYS + [pl.col("kind") != "cascade"])
    )
    unplanned = int((~finished.is_in(tasks["task_id"].implode())).sum()) if tasks.height else 0
    return plan, unplanned


def _quoted_path(message: str) -> str:
    match = re.search(r"file '([^']*)'", message)
    return match.group(1) if match else message

"""The grid job (``jobs/full_grid.py``): expand the grid, skip what is stored, run cascades on the actor pool and
baselines on Tune; ``plan`` / ``run_grid`` / ``report`` and its ``Job`` (``infoflow_ray.sweep.jobs``).

Cascades start first and hold their resources (by default every GPU, or every CPU on a CPU-only machine), so
the predictions arrive long before the ground truth; Tune trials take the resources as the pool frees them.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import TextIO

import polars as pl

from infoflow_ray import families
from infoflow_ray.store import ResultStore
from infoflow_ray.sweep.adaptive import run_search
from infoflow_ray.sweep.execution import GridOutcome, execute, prepare, task_records
from infoflow_ray.sweep.flags import Alias
from infoflow_ray.sweep.grid import KINDS, PRESETS, GridSpec, Task, build_grid
from infoflow_ray.sweep.jobs import EXIT_FAILED_TASKS, EXIT_INTERRUPTED, EXIT_OK, Job, register
from infoflow_ray.sweep.progress import Progress


def describe(grid: GridSpec, pending: list[Task], finished: set[str], out: TextIO) -> None:
    """The dry-run report: every task, how many are already stored, what each kind asks for."""
    tasks = grid.tasks()
    res = grid.resources
    print(f"grid '{grid.name}' → {grid.results}", file=out)
    conv = [a for a in grid.architecture if "channels" in families.get(a).spec_fields]
    print(
        f"  architectures: {', '.join(grid.architecture)}" + (f" ({grid.channels} channels)" if conv else ""), file=out
    )
    for kind in grid.kinds:
        of_kind = [t for t in tasks if t.kind == kind]
        done = sum(t.task_id in finished for t in of_kind)
        print(f"  {kind}: {len(of_kind)} tasks ({done} already stored, {len(of_kind) - done} to run)", file=out)
    print(
        f"  resources: cascade actors {res.cascade_workers or 'one per GPU (or CPU)'} × "
        f"{res.cpus_per_cascade:g} CPU + {_gpus(res.gpus_per_cascade, '1 if GPUs')} GPU, "
        f"cascades per call: {res.cascade_group or 'as many as GPU memory holds (1 on CPU)'}; "
        f"baseline trials {res.cpus_per_trial:g} CPU + {_gpus(res.gpus_per_trial, '0.25 if GPUs')} GPU each",
        file=out,
    )
    for task in pending:
        print(f"  {task.task_id}  {task.label}", file=out)


def describe_search(grid: GridSpec, finished: set[str], out: TextIO) -> None:
    """The dry-run report of a search: the full grid's task counts against the search's planned worst case."""
    from infoflow_ray import search

    spec = grid.search
    groups = len(grid.datasets) * len(grid.sigma_b2)
    chains = groups * len(grid.sigma_w2) * len(grid.seeds)
    full = grid.tasks()
    print(f"search '{grid.name}' → {grid.results} (cutoff measure {spec.measure})", file=out)
    print(
        f"  the full grid would run {sum(t.kind == 'cascade' for t in full)} cascades and "
        f"{sum(t.kind == 'baseline' for t in full)} trainings ({sum(t.task_id in finished for t in full)} of "
        f"its tasks already stored)",
        file=out,
    )
    cascades = chains
    if spec.target_depth is not None:
        per_group = search.worst_case_cascades(grid.sigma_w2, spec.sigma_w2_tolerance) * len(grid.seeds)
        cascades = groups * per_group
        print(
            f"  σw² interval at depth {spec.target_depth}: at most {per_group} cascades per (dataset, σb²) "
            f"(coarse {len(grid.sigma_w2)} σw² × {len(grid.seeds)} seeds, then both edges bisected to "
            f"{spec.sigma_w2_tolerance:g})",
            file=out,
        )
    print(f"  the search runs at most {cascades} cascades", end="", file=out)
    if "baseline" in grid.kinds:
        rungs = len(grid.train.budgets) if spec.resolve_rungs else 1
        worst = search.worst_case_chain_trainings(grid.depths, spec.depth_resolution, spec.confirm, rungs)
        extra = groups * len(grid.sigma_w2) * spec.extra_seeds  # (σw², seed) searches added where close
        edge = 4 * len(grid.seeds) * groups if spec.edge_trainings and spec.target_depth is not None else 0
        print(
            f" and at most {worst * (chains + extra) + edge} trainings ({worst} per (σw², seed) over "
            f"{len(grid.depths)} depths"
            + (f" with each of the {rungs} rungs resolved" if spec.resolve_rungs else "")
            + (f"; {chains} searches + up to {extra} of extra seeds where close" if extra else "")
            + ", worst case over every start and every outcome monotone in depth"
            + (f", + {edge} edge checks" if edge else "")
            + ")",
            end="",
            file=out,
        )
    print("; the tasks are chosen as results arrive", file=out)


def _gpus(value: float | None, auto: str) -> str:
    return auto if value is None else f"{value:g}"


def run_grid(
    grid: GridSpec, *, address: str | None = None, out: TextIO | None = None, progress_interval_seconds: float = 30.0
) -> GridOutcome:
    """Run every task of ``grid`` that is not stored yet. Returns counts; failures are recorded, not raised.
    Progress lines go to ``out`` (default: sys.stdout at the time of the call)."""
    out = out or sys.stdout
    start = time.monotonic()
    if "://" not in grid.results:  # workers and Tune trials run in other folders: give them an absolute path
        grid = dataclasses.replace(grid, results=os.path.abspath(grid.results))
    store = ResultStore.open(grid.results)
    with store.exclusive():
        if grid.search.enabled:
            return run_search(grid, store, address, out, progress_interval_seconds, start)
        return _run(grid, store, address, out, progress_interval_seconds, start)


def _run(
    grid: GridSpec, store: ResultStore, address: str | None, out: TextIO, progress_interval_seconds: float, start: float
) -> GridOutcome:
    tasks = grid.tasks()
    store.write_grid(grid.name, grid.as_dict(), task_records(tasks))
    finished = store.finished_task_ids()
    pending = [t for t in tasks if t.task_id not in finished]
    outcome = GridOutcome(
        total={k: sum(t.kind == k for t in tasks) for k in grid.kinds},
        skipped={k: sum(t.kind == k and t.task_id in finished for t in tasks) for k in grid.kinds},
    )
    if not pending:
        print(f"all {len(tasks)} tasks of grid '{grid.name}' are already stored in {grid.results}", file=out)
        return outcome
    prepare(grid, store, address)
    progress = Progress(grid.kinds, stream=out, interval_seconds=progress_interval_seconds)
    for kind in grid.kinds:
        progress.set_total(kind, outcome.total[kind], outcome.skipped[kind])
    progress.note(f"grid '{grid.name}': {len(pending)} tasks to run, results in {store.location}")
    outcome.interrupted = execute(
        grid, store, pending, progress, all_baselines=[t for t in tasks if t.kind == "baseline"]
    )
    outcome.seconds = time.monotonic() - start
    done = store.finished_task_ids()
    missing = [t for t in pending if t.task_id not in done]
    outcome.failed = {t.label: "not finished" for t in missing}
    if outcome.interrupted:
        progress.note("interrupted: finished tasks are stored; run the same command again to resume")
    progress.note(
        f"finished in {outcome.seconds:.0f} s: {len(pending) - len(missing)} of {len(pending)} tasks "
        f"stored, {len(missing)} missing"
    )
    print_summary(store, out)
    return outcome


def print_summary(store: ResultStore, out: TextIO) -> None:
    """Per (dataset, profile, σb², σw²): the cutoffs (mean over seeds) and the trainable depth measured so far."""
    keys = ["dataset", "profile", "sigma_b2", "sigma_w2"]
    cutoffs = (
        store.scan("cutoffs")
        .filter(pl.col("measure").is_in(["kl_mean", "diff_entropy"]))
        .group_by(*keys, "measure")
        .agg(pl.col("cutoff_layer").mean())
        .collect()
        .pivot(on="measure", index=keys, values="cutoff_layer")
    )
    trained = (
        store.scan("train_summary")
        .group_by(*keys)
        .agg(
            pl.col("depth").filter(pl.col("reached_threshold")).max().alias("trainable_depth"),
            pl.col("depth").max().alias("deepest_trained"),
            pl.len().alias("trainings"),
        )
        .collect()
    )
    if cutoffs.is_empty() and trained.is_empty():
        return
    if cutoffs.is_empty():
        table = trained
    elif trained.is_empty():
        table = cutoffs
    else:
        table = cutoffs.join(trained, on=keys, how="full", coalesce=True)
    with pl.Config(tbl_rows=200, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(table.sort(keys), file=out)


# --- the job --------------------------------------------------------------------------------------------------


def plan(grid: GridSpec, out: TextIO) -> None:
    """``--dry-run``: the tasks (or the search's worst case) and what is stored already; starts nothing."""
    from infoflow_ray.store import ResultStore

    store = ResultStore.open(grid.results, create=False) if _exists(grid.results) else None
    finished = store.finished_task_ids() if store else set()
    if grid.search.enabled:
        describe_search(grid, finished, out)
    else:
        describe(grid, [t for t in grid.tasks() if t.task_id not in finished], finished, out)
    from infoflow_ray.sweep.simulate import ESTIMATE_WORKERS, print_estimate

    print_estimate(grid, ESTIMATE_WORKERS, out)


def report(grid: GridSpec, outcome: GridOutcome, out: TextIO, err: TextIO) -> int:
    """Where the results are and how to open them; the exit code."""
    if outcome.interrupted:
        print(GRID.interrupted, file=err)
        return EXIT_INTERRUPTED
    print(
        f"results: {grid.results}  (open with: python jobs/analyze.py {grid.results}, or "
        f"infoflow_ray.store.ResultStore.open('{grid.results}').scan('cutoffs') in polars)",
        file=out,
    )
    if outcome.failed:
        print(f"{len(outcome.failed)} tasks did not finish (see the 'failures' table); re-run to retry them", file=err)
        return EXIT_FAILED_TASKS
    return EXIT_OK


def verify(grid: GridSpec, out: TextIO) -> int:
    """``--verify``: report the finished tasks whose files are damaged or gone, and re-queue them."""
    store = ResultStore.open(grid.results, create=False)
    with store.exclusive():  # no driver may write while tasks are re-queued
        finished = len(store.finished_task_ids())
        damaged = store.verify()
        for task in damaged:
            print(f"damaged: {task.task_id} ({task.label}): {'; '.join(task.problems)}", file=out)
        store.requeue(damaged)
    if damaged:
        print(
            f"{len(damaged)} task(s) re-queued; run the same command without --verify to recompute exactly "
            f"them ({finished - sum(t.label != '?' for t in damaged)} finished tasks are intact)",
            file=out,
        )
    else:
        print(f"all {finished} finished tasks in {grid.results} have every file as written", file=out)
    return EXIT_OK


def _exists(location: str) -> bool:
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(location) if "://" in location else (pafs.LocalFileSystem(), location)
        return fs.get_file_info(path).type != pafs.FileType.NotFound
    except Exception:
        return False


GRID = register(
    Job(
        name="grid",
        script="full_grid.py",
        description="Predict trainability with reconstruction entropy and check it against baseline training, over "
        "a grid of (σw², depth, dataset, seed), on Ray. Results: a Parquet dataset.",
        spec=GridSpec,
        presets=PRESETS,
        default_preset="default",
        build=build_grid,
        plan=plan,
        run=run_grid,
        report=report,
        aliases=(
            Alias(("--max-epochs",), "train.max_epochs", "baseline epoch budget"),
            Alias(("--threshold",), "train.accuracy_threshold", "test accuracy that counts as trainable"),
            Alias(("--loss",), "train.loss", "baseline loss (softmax_twice = the reference code's)"),
            Alias(("--cascade-epochs",), "cascade.epochs", "decoder training epochs"),
            Alias(("--eval-samples",), "cascade.eval_samples", "test images the entropies are measured on"),
            Alias(("--max-train-samples",), "data.max_train_samples", "use only the first N training images"),
            Alias(("--cascade-workers",), "resources.cascade_workers", "cascade actors (default: one per GPU/CPU)"),
            Alias(
                ("--cascade-group",),
                "resources.cascade_group",
                "cascades one actor trains together (default: as many as its GPU memory holds, 1 on CPU)",
            ),
            Alias(("--baseline-group",), "resources.baseline_group", "baseline networks trained together per trial"),
            Alias(("--gpus-per-trial",), "resources.gpus_per_trial", "GPU fraction per trial (0.25 with GPUs)"),
            Alias(("--only",), "kinds", "run one kind of task only", parse=str, choices=KINDS, to=lambda k: (k,)),
            Alias(
                ("--info-plane",),
                "info_plane",
                "also measure the information plane I(X;T_l), I(T_l;Y) (estimator, default binning)",
                parse=str,
                nargs="?",
                const="binning",
                to=lambda estimator: {"enabled": True, "estimator": estimator},
            ),
            Alias(
                ("--interpret",),
                "interpret.enabled",
                "also train cascades on the trained baseline networks: entropy curves, retraced test images and "
                "every class's perfect input (the paper's fig. 5; [interpret] in the README)",
            ),
            Alias(
                ("--search",),
                "search.enabled",
                "search instead of gridding: ℓ_train by galloping/bisecting over --depths from the cascade's "
                "prediction, the σw² interval at --target-depth, the cutoff peak; --no-search runs every task",
            ),
            Alias(("--target-depth",), "search.target_depth", "with --search: the σw² interval where ℓ_c ≥ this"),
            Alias(("--sigma-w2-tolerance",), "search.sigma_w2_tolerance", "with --search: width of a σw² edge"),
            Alias(("--depth-resolution",), "search.depth_resolution", "with --search: ℓ_train bracket width"),
            Alias(("--edge-trainings",), "search.edge_trainings", "with --target-depth: train depth L at each edge"),
        ),
        actions={
            "verify": (
                "check every finished task's files against what was written (present, size, rows); re-queue the "
                "damaged tasks so the next run recomputes exactly them; run nothing",
                verify,
            )
        },
        interrupted="interrupted: finished tasks are stored; run the same command again to resume",
    )
)

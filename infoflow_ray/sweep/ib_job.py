"""The Ray layer of ``jobs/info_plane.py``: seed 002's and seed 004's experiments (``ib_experiments``) in parallel.

Per experiment:
1. its network copies train as one Ray task each (``train_copy``; the networks are small, so on the CPU);
2. its points are estimated as store tasks: for every estimator but 'density', one store task per chunk of
   ``chunk`` snapshots (all layers), one Ray task each; for 'density', one store task per (snapshot, layer), whose
   two models, p(T) and p(T|Y), train as two Ray tasks in parallel (one GPU each when the cluster has GPUs, else
   ``density_cpus`` CPUs each; seed 004 used MPI for the same fan-out).
Each store task writes its ``info_plane`` rows (``step`` = SGD steps, ``epoch`` null) and one ``runs`` row (kind
'info_plane', grid_name = the experiment's name) in one atomic ``write_task``. A re-run skips the stored ones and
retrains the copies (deterministic given the experiment) only when some point of the experiment is missing.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import ray
import torch

from infoflow_ray import ib_experiments as ib
from infoflow_ray import seeding
from infoflow_ray.model import default_device
from infoflow_ray.store import ResultStore, task_id
from infoflow_ray.sweep.execution import connect
from infoflow_ray.sweep.progress import Progress
from infoflow_ray.sweep.task_runner import device_name, info_plane_rows, run_record, utc_now

KIND = "info_plane"


@dataclass(frozen=True)
class IBJob:
    """What ``jobs/info_plane.py`` runs: ``experiments`` in order, stored in ``results``.

    chunk: snapshots per estimation task. density_cpus: CPUs per density-model task on a cluster without GPUs.
    """

    name: str
    experiments: tuple[ib.ExperimentSpec, ...]
    results: str = "results/info-plane"
    chunk: int = 25
    density_cpus: float = 1.0


@dataclass(frozen=True)
class Point:
    """One store task: ``estimator`` at ``steps`` of one experiment, every layer (``layer`` None) or one."""

    spec: ib.ExperimentSpec
    estimator: str
    steps: tuple[int, ...]
    layer: int | None = None

    @property
    def config(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "experiment": self.spec.training_config(),
            "estimator": self.estimator,
            "params": ib.estimator_params(self.spec, self.estimator),
            "steps": list(self.steps),
            "layer": self.layer,
        }

    @property
    def task_id(self) -> str:
        return task_id(self.config)

    @property
    def keys(self) -> dict[str, Any]:
        """The columns that say which task and network a row belongs to (``store._TASK``)."""
        spec = self.spec
        return {
            "task_id": self.task_id,
            "dataset": spec.data,
            "profile": spec.profile,
            "sigma_w2": spec.sigma_w2,
            "sigma_b2": spec.sigma_b2,
            "depth": spec.depth,
            "seed": spec.seed,
        }


def points(spec: ib.ExperimentSpec, chunk: int) -> list[Point]:
    """Every store task of ``spec``, in the order they are submitted."""
    steps = spec.snapshot_steps
    out = []
    for estimator in spec.estimators:
        if estimator == "density":
            out += [Point(spec, estimator, (s,), layer) for s in steps for layer in range(1, spec.depth + 1)]
        else:
            out += [Point(spec, estimator, steps[i : i + chunk]) for i in range(0, len(steps), chunk)]
    return out


@dataclass
class IBOutcome:
    stored: int = 0  # store tasks stored before this run
    written: int = 0
    failed: list[str] = field(default_factory=list)  # one line per failed store task


# --- Ray tasks ------------------------------------------------------------------------------------------------


@ray.remote(num_cpus=1)
def _train(spec: ib.ExperimentSpec, copy: int, data: ib.ExperimentData) -> tuple[ib.Snapshots, str]:
    start = time.perf_counter()
    snapshots = ib.train_copy(spec, copy, data)
    return snapshots, f"{time.perf_counter() - start:.1f} s"


@ray.remote(num_cpus=1)
def _estimate(
    spec: ib.ExperimentSpec, estimator: str, steps: tuple[int, ...], layers: list[list[list]], data: ib.ExperimentData
) -> list[tuple[int, list[tuple[float, float]], float]]:
    """[(step, per-layer estimates, seconds)] for the snapshots ``steps``; layers[i][c][l−1] of snapshot i."""
    torch.set_num_threads(1)
    out = []
    for step, by_copy in zip(steps, layers):
        start = time.perf_counter()
        per_layer = ib.estimate_snapshot(spec, estimator, by_copy, data.probe_y, data.x_ids, data.probe_x, step)
        out.append((step, per_layer, time.perf_counter() - start))
    return out


def _fit_density(spec, train_layer, probe_layer, train_y, probe_y, conditional: bool, seed: int):
    device = default_device()
    torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
    start = time.perf_counter()
    fit = ib.fit_density_model(spec, train_layer, probe_layer, train_y, probe_y, conditional, seed, device)
    return fit, time.perf_counter() - start, device_name(device)


# --- driver ---------------------------------------------------------------------------------------------------


def run_info_plane(job: IBJob, *, address: str | None = None, out: TextIO | None = None) -> IBOutcome:
    """Run every store task of ``job`` that is not stored yet; progress lines go to ``out`` (default stdout)."""
    out = out or sys.stdout
    outcome = IBOutcome()
    store = ResultStore.open(job.results)
    with store.exclusive():
        connect(address)
        finished = store.finished_task_ids(KIND)
        planned = {spec.name: points(spec, job.chunk) for spec in job.experiments}
        progress = Progress(("training", "estimate"), stream=out, interval_seconds=30.0)
        pending = {name: [p for p in ps if p.task_id not in finished] for name, ps in planned.items()}
        total = sum(len(ps) for ps in planned.values())
        outcome.stored = total - sum(len(ps) for ps in pending.values())
        progress.set_total("estimate", total, outcome.stored)
        copies = sum(spec.copies for spec in job.experiments if pending[spec.name])
        progress.set_total("training", copies, 0)
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        density = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": job.density_cpus}
        for spec in job.experiments:
            if not pending[spec.name]:
                progress.note(f"experiment {spec.name}: all {len(planned[spec.name])} point tasks stored")
                continue
            _run_experiment(spec, pending[spec.name], store, progress, outcome, density)
    return outcome


def _run_experiment(
    spec: ib.ExperimentSpec,
    todo: list[Point],
    store: ResultStore,
    progress: Progress,
    outcome: IBOutcome,
    density_resources: dict,
) -> None:
    data = ib.experiment_data(spec)
    progress.note(
        f"experiment {spec.name}: {spec.data}, network {spec.profile}, {spec.steps} steps × {spec.copies} copies, "
        f"{len(spec.snapshot_steps)} snapshots, estimators {', '.join(spec.estimators)}; {len(todo)} point tasks"
    )
    data_ref = ray.put(data)
    train_refs = [_train.remote(spec, c, data_ref) for c in range(spec.copies)]
    for _ in range(spec.copies):
        progress.started("training")
    snapshots: list[ib.Snapshots] = []
    for c, ref in enumerate(train_refs):
        snap, took = ray.get(ref)
        snapshots.append(snap)
        progress.finished(
            "training", f"{spec.name} copy {c}: trained in {took}, final accuracy {snap.accuracy[-1]:.3f}"
        )
    index = {s: i for i, s in enumerate(spec.snapshot_steps)}
    running: dict[ray.ObjectRef, tuple[Point, str]] = {}
    halves: dict[str, dict[str, Any]] = {}
    fit_density = ray.remote(_fit_density).options(**density_resources)
    layer_refs: dict[tuple[int, int], tuple] = {}
    for point in todo:
        progress.started("estimate")
        if point.estimator != "density":
            copies = snapshots if point.estimator == "binning_extended" else snapshots[:1]  # the others use copy 0
            layers = [[snap.probe[index[s]] for snap in copies] for s in point.steps]
            running[_estimate.remote(spec, point.estimator, point.steps, layers, data_ref)] = (point, "all")
            continue
        key = (index[point.steps[0]], point.layer)
        if key not in layer_refs:
            i, layer = key
            layer_refs[key] = (ray.put(snapshots[0].train[i][layer - 1]), ray.put(snapshots[0].probe[i][layer - 1]))
        train_ref, probe_ref = layer_refs[key]
        seed = seeding.derived_seed(spec.seed, "ib_density", point.steps[0], point.layer)
        for conditional in (False, True):
            ref = fit_density.remote(spec, train_ref, probe_ref, data.train_y, data.probe_y, conditional, seed)
            running[ref] = (point, "h_t_given_y" if conditional else "h_t")
    failed: set[str] = set()
    while running:
        ready, _ = ray.wait(list(running), num_returns=1, timeout=30.0)
        progress.tick()
        for ref in ready:
            point, part = running.pop(ref)
            if point.task_id in failed:  # the other density model of this point failed already
                continue
            try:
                result = ray.get(ref)
            except Exception as e:  # the task's own error (RayTaskError) or a lost worker
                failed.add(point.task_id)
                halves.pop(point.task_id, None)
                _failed(point, e, store, progress, outcome)
                continue
            if part == "all":
                n = len(data.probe_y)
                rows = [r for step, per_layer, sec in result for r in _rows(point, step, per_layer, sec, n)]
                _store(point, rows, store, progress, outcome, seconds=sum(r[2] for r in result), device="cpu")
                continue
            parts = halves.setdefault(point.task_id, {})
            parts[part] = result
            if len(parts) < 2:
                continue
            del halves[point.task_id]
            (fit_t, sec_t, device), (fit_ty, sec_ty, _) = parts["h_t"], parts["h_t_given_y"]
            per_layer = [(fit_t.entropy, fit_t.entropy - fit_ty.entropy)]
            rows = _rows(point, point.steps[0], per_layer, sec_t + sec_ty, fit_t.n_test, first_layer=point.layer)
            _store(point, rows, store, progress, outcome, seconds=sec_t + sec_ty, device=device)


def _rows(
    point: Point, step: int, per_layer: list, seconds: float, n_samples: int, first_layer: int | None = None
) -> list[dict]:
    params = ib.estimator_params(point.spec, point.estimator)
    rows = info_plane_rows(
        point.keys, per_layer, point.estimator, None, seconds, params, n_samples=n_samples, step=step
    )
    if first_layer is not None:
        rows = [{**row, "layer": row["layer"] + first_layer - 1} for row in rows]
    return rows


def _store(point, rows, store, progress, outcome, *, seconds: float, device: str) -> None:
    now = utc_now()
    run = run_record(
        point.keys,
        KIND,
        point.config,
        grid_name=point.spec.name,
        status="ok",
        started_at=now,
        finished_at=now,
        seconds=seconds,
        attempts=1,
        node_id="",
        device=device,
    )
    store.write_task(point.task_id, point.spec.data, {"runs": [run], KIND: rows})
    outcome.written += 1
    where = f"layer {point.layer} " if point.layer is not None else ""
    span = f"step {point.steps[0]}" if len(point.steps) == 1 else f"steps {point.steps[0]}–{point.steps[-1]}"
    progress.finished("estimate", f"{point.spec.name}: {point.estimator} {where}{span} stored ({seconds:.1f} s)")


def _failed(point: Point, error: Exception, store, progress, outcome) -> None:
    line = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    spec = point.spec
    store.write_failure(
        point.task_id,
        1,
        {
            "kind": KIND,
            "dataset": spec.data,
            "sigma_w2": spec.sigma_w2,
            "depth": spec.depth,
            "seed": spec.seed,
            "error": line,
        },
    )
    outcome.failed.append(f"{spec.name} {point.estimator} steps {point.steps[0]}…: {line}")
    progress.finished("estimate", f"{spec.name}: {point.estimator} failed: {line}", failed=True)

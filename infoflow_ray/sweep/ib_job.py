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

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import ray
import torch

from infoflow_ray import ib_experiments as ib
from infoflow_ray import seeding
from infoflow_ray.config import _is_number, _require
from infoflow_ray.errors import ConfigError
from infoflow_ray.model import default_device
from infoflow_ray.store import ResultStore, task_id
from infoflow_ray.sweep.execution import connect
from infoflow_ray.sweep.grid import check_keys, with_sections
from infoflow_ray.sweep.jobs import EXIT_FAILED_TASKS, EXIT_OK, Job, register
from infoflow_ray.sweep.progress import Progress
from infoflow_ray.sweep.task_runner import device_name, info_plane_rows, run_record, utc_now

KIND = "info_plane"


@dataclass(frozen=True)
class IBJob:
    """What ``jobs/info_plane.py`` runs: ``experiments`` in order, stored in ``results``.

    chunk: snapshots per estimation task. density_cpus: CPUs per density-model task on a cluster without GPUs.
    The other fields change the preset's experiments, and are applied here, so ``experiments`` is what runs:
    only: the experiments' names to run (empty: all); estimators: every experiment's (copies raised to 2 where
    'binning_extended' needs them); steps: every experiment's SGD steps (snapshots beyond it are dropped);
    copies: every experiment's network copies; dataset: the dataset of the experiments that are not synthetic
    (e.g. 'mnist'); density_epochs: the epochs of every density model.
    """

    name: str
    experiments: tuple[ib.ExperimentSpec, ...]
    results: str = "results/info-plane"
    chunk: int = 25
    density_cpus: float = 1.0
    only: tuple[str, ...] = ()
    estimators: tuple[str, ...] | None = None
    steps: int | None = None
    copies: int | None = None
    dataset: str | None = None
    density_epochs: int | None = None

    def __post_init__(self) -> None:
        experiments = tuple(e if isinstance(e, ib.ExperimentSpec) else _experiment(e) for e in self.experiments)
        _require(bool(experiments), "experiments", [], "a non-empty list of experiments")
        _require(bool(self.results) and isinstance(self.results, str), "results", self.results, "a path or a URI")
        _require(isinstance(self.chunk, int) and self.chunk >= 1, "chunk", self.chunk, "an integer >= 1")
        _require(_is_number(self.density_cpus) and self.density_cpus > 0, "density_cpus", self.density_cpus, "> 0")
        object.__setattr__(self, "only", tuple(self.only) if isinstance(self.only, (list, tuple)) else (self.only,))
        known = [e.name for e in experiments]
        unknown = [n for n in self.only if n not in known]
        if unknown:
            raise ConfigError(
                f"only: no experiment {', '.join(unknown)} in preset '{self.name}'; it has {', '.join(known)}"
            )
        changed = []
        for e in experiments:
            if self.only and e.name not in self.only:
                continue
            new: dict[str, Any] = {}
            if self.estimators is not None:
                new["estimators"] = tuple(self.estimators)
                if e.copies < 2 and "binning_extended" in new["estimators"]:
                    new["copies"] = 2
            if self.steps is not None:
                new["steps"] = self.steps
                if not isinstance(e.record, int):
                    new["record"] = tuple(s for s in e.record if s <= self.steps) or (0,)
            if self.copies is not None:
                new["copies"] = self.copies
            if self.dataset is not None and e.data not in ib.SYNTHETIC:
                new["data"] = self.dataset
            if self.density_epochs is not None:
                new["density"] = {**e.density, "epochs": self.density_epochs}
            changed.append(dataclasses.replace(e, **new) if new else e)
        object.__setattr__(self, "experiments", tuple(changed))


def _experiment(values: Any) -> ib.ExperimentSpec:
    """An experiment from a config file's table of settings."""
    _require(isinstance(values, dict), "experiments", values, "a list of tables of experiment settings")
    check_keys("an experiment", values, ib.ExperimentSpec)
    return ib.ExperimentSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def build_ib(name: str, values: dict[str, Any]) -> IBJob:
    """A validated IBJob from plain values (preset + config file + flags merged)."""
    return IBJob(name=name, **with_sections("the info-plane config", values, IBJob, {}))


SEED002 = (
    # Experiment 1, warm-up: 12-5-1 against the 0/1 label, 300 steps, one network.
    ib.ExperimentSpec("seed002-warmup", widths=ib.WARMUP_WIDTHS, steps=300, targets="01"),
    # Experiments 2 (simple estimator: copy 0) and 2b (extended over 5 copies): 12-10-7-5-4-3-1, 1,000 steps.
    ib.ExperimentSpec("seed002-tishby", steps=1000, record=2, copies=5, estimators=("binning", "binning_extended")),
    # Experiment 3: the "more complicated" decision function, 200 steps, 5 copies.
    ib.ExperimentSpec(
        "seed002-complicated",
        data="synthetic_complicated",
        steps=200,
        copies=5,
        estimators=("binning", "binning_extended"),
    ),
)
# Seed 003's estimators side by side on seed 002's networks (every 20th / 5th step: they cost more than binning).
# B-spline binning keeps order^n joint cells per sample, so it runs on the warm-up network's 5-unit layer only.
SEED003 = (
    ib.ExperimentSpec("seed003-tishby", steps=1000, record=20, estimators=("binning", "adaptive", "kde", "dcor")),
    ib.ExperimentSpec(
        "seed003-warmup",
        widths=ib.WARMUP_WIDTHS,
        steps=300,
        targets="01",
        record=5,
        estimators=("binning", "adaptive", "bspline", "kde", "dcor"),
    ),
)
# Seed 004: 784-256-256-10 tanh on MNIST(-t10k), Adam (seed 004 does not say; our choice), snapshots at its
# iterations; density models on the 32-bin discretised activations beside binning on the same 32 bins.
SEED004 = (
    ib.ExperimentSpec(
        "seed004",
        data="mnist_t10k",
        widths=ib.SEED004_WIDTHS,
        steps=9000,
        record=ib.SEED004_SNAPSHOTS,
        lr=1e-3,
        batch_size=128,
        optimizer="adam",
        loss="cross_entropy",
        estimators=("binning", "density"),
        n_bins=32,
        # Measured on a 256-unit layer: at equal CPU time, MADE without direct connections for twice the epochs
        # reaches a lower held-out NLL than with them (infoflow_ray.density.DensitySpec); and without early
        # stopping both models over-fit (step 9000, layer 1: train NLL 376 vs held-out 471 nats) and the
        # label-conditioned one more, so I(T;Y) came out at −4.3 nats; stopping after 3 epochs without a lower
        # validation NLL gave 466 / 465 nats and I(T;Y) = 1.6 nats, in a third of the time (RESULTS.md).
        density={"direct": False, "lr": 3e-3, "epochs": 40, "patience": 3},
    ),
)
# A check of everything in about a minute on 2 cores (the tests run it).
TINY = (
    ib.ExperimentSpec("tiny-tishby", steps=40, record=10, copies=2, estimators=("binning", "binning_extended", "dcor")),
    ib.ExperimentSpec(
        "tiny-seed004",
        data="mnist_t10k",
        widths=(784, 16, 10),
        steps=20,
        record=(0, 20),
        lr=1e-3,
        batch_size=128,
        optimizer="adam",
        loss="cross_entropy",
        estimators=("binning", "density"),
        n_bins=32,
        density={"hidden": 32, "epochs": 2},
    ),
)
PRESETS: dict[str, dict[str, Any]] = {
    name: {"experiments": experiments}
    for name, experiments in {"seed002": SEED002, "seed003": SEED003, "seed004": SEED004, "tiny": TINY}.items()
}


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


# --- the job --------------------------------------------------------------------------------------------------


def plan(job: IBJob, out: TextIO) -> None:
    """``--dry-run``: every experiment and its point tasks; starts nothing."""
    print(f"info-plane job '{job.name}': results in {job.results}", file=out)
    for e in job.experiments:
        snaps = e.snapshot_steps
        print(
            f"  {e.name}: {e.data}, network {e.profile} (σw² {e.sigma_w2:.3g}, σb² {e.sigma_b2:g}), {e.optimizer} lr "
            f"{e.lr:g}, batch {e.batch_size}, {e.loss}, {e.steps} steps × {e.copies} copies; {len(snaps)} snapshots "
            f"({snaps[0]}…{snaps[-1]}); estimators {', '.join(e.estimators)}; {len(points(e, job.chunk))} point tasks",
            file=out,
        )


def report(job: IBJob, outcome: IBOutcome, out: TextIO, err: TextIO) -> int:
    """Draw the figures and report.md from the stored points; where they are; the exit code."""
    from infoflow_ray.analysis.info_plane import write_report

    written = write_report(job.results)
    print(f"results: {job.results}  ({outcome.written} point tasks written, {outcome.stored} stored before)", file=out)
    for path in written:
        print(f"  {path}", file=out)
    if outcome.failed:
        print(f"{len(outcome.failed)} point tasks failed (table failures):", file=err)
        for line in outcome.failed:
            print(f"  {line}", file=err)
        return EXIT_FAILED_TASKS
    return EXIT_OK


INFO_PLANE = register(
    Job(
        name="info-plane",
        script="info_plane.py",
        description="Information-plane experiments: seed 002's synthetic task and small tanh networks (binning, "
        "simple and extended), seed 003's estimators, seed 004's density-model estimator on MNIST; in parallel on Ray.",
        spec=IBJob,
        presets=PRESETS,
        default_preset="seed002",
        build=build_ib,
        plan=plan,
        run=run_info_plane,
        report=report,
        interrupted="interrupted: stored points are kept; run the same command again to resume",
    )
)

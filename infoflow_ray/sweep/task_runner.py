"""Running one task and turning its result into table rows — plain Python, so it is tested without Ray.

The Ray layer (actors, Tune trials) calls these and hands the rows to ``ResultStore.write_task``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import json
import math
import platform
import socket
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray.exceptions import RayTaskError

import infoflow_ray
from infoflow_ray import budget, cascade, estimators, families, interpret, predictors, seeding
from infoflow_ray.data import Dataset, load_dataset
from infoflow_ray.errors import ConfigError, InfoflowError
from infoflow_ray.predict import Prediction, evaluate, predict_trainabilities, stored_layer_indices
from infoflow_ray.store import CURVE_MEASURES
from infoflow_ray.sweep.grid import DataOptions, InfoPlaneSpec, Task
from infoflow_ray.training import EpochRecord

Rows = dict[str, list[dict[str, Any]]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def error_line(exc: BaseException) -> str:
    """A failed attempt's error in one line of at most 500 characters (the cause of a Ray task error; an
    infoflow-ray error's own first line, any other error with its white space folded)."""
    cause = exc.cause if isinstance(exc, RayTaskError) and getattr(exc, "cause", None) else exc
    text = f"{type(cause).__name__}: {cause}"
    return text.strip().splitlines()[0][:500] if isinstance(cause, InfoflowError) else " ".join(text.split())[:500]


def failure_row(task: Task, kind: str, attempt: int, error: str) -> dict:
    """The ``failures`` row of one failed attempt at ``task`` (kind: 'cascade', 'baseline', 'predictors')."""
    return {
        "task_id": task.task_id,
        "kind": kind,
        "dataset": task.dataset,
        "sigma_w2": task.network.sigma_w2,
        "depth": task.network.depth,
        "seed": task.seed,
        "attempt": attempt,
        "error": error,
        "failed_at": utc_now(),
    }


def load_task_data(dataset: str, options: DataOptions, device: torch.device | str) -> Dataset:
    """The dataset of a task, on ``device``, with the grid's training subset applied."""
    data = load_dataset(
        dataset, n_inputs=options.synthetic_inputs, n_train=options.synthetic_train, n_test=options.synthetic_test
    )
    if options.max_train_samples is not None and options.max_train_samples < data.train_x.shape[0]:
        n = options.max_train_samples
        data = Dataset(
            name=data.name,
            train_x=data.train_x[:n],
            train_y=data.train_y[:n],
            test_x=data.test_x,
            test_y=data.test_y,
            n_classes=data.n_classes,
        )
    return data.to(device)


def image_shape(n_pixels: int) -> tuple[int, int]:
    """(height, width) of a flattened square image, or (1, n_pixels) when it is not square."""
    side = math.isqrt(n_pixels)
    return (side, side) if side * side == n_pixels else (1, n_pixels)


@functools.cache
def software_versions() -> dict[str, str]:
    """Versions recorded with every run, so a result can be traced to the code that made it."""

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short=12", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(infoflow_ray.__file__).parent,
                timeout=5,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "package_version": infoflow_ray.__version__,
        "git_commit": commit,
        "torch_version": torch.__version__,
        "ray_version": version("ray"),
        "python_version": platform.python_version(),
    }


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.get_num_threads()}threads"


def _keys(task: Task) -> dict[str, Any]:
    net = task.network
    return {
        "task_id": task.task_id,
        "dataset": task.dataset,
        "profile": net.profile_name,
        "sigma_w2": net.sigma_w2,
        "sigma_b2": net.sigma_b2,
        "depth": net.depth,
        "seed": task.seed,
    }


def runs_row(task: Task, **run: Any) -> dict[str, Any]:
    """The ``runs`` row of a finished task: its config, versions, hardware and timing; ``run`` holds
    ``run_record``'s keyword fields (grid_name, status, started_at, finished_at, seconds, attempts, node_id,
    device)."""
    return run_record(_keys(task), task.kind, task.config(), **run)


def run_record(
    keys: dict[str, Any],
    kind: str,
    config: dict[str, Any],
    *,
    grid_name: str,
    status: str,
    started_at: datetime,
    finished_at: datetime,
    seconds: float,
    attempts: int,
    node_id: str,
    device: str,
) -> dict[str, Any]:
    """A ``runs`` row from a task's key columns (``store._TASK``), kind and config, whatever job ran it."""
    return {
        **keys,
        "kind": kind,
        "grid_name": grid_name,
        "status": status,
        "config_json": json.dumps(config, sort_keys=True),
        **software_versions(),
        "hostname": socket.gethostname(),
        "node_id": node_id,
        "device": device,
        "started_at": started_at,
        "finished_at": finished_at,
        "seconds": seconds,
        "attempts": attempts,
    }


ENTROPY_CURVES = tuple(m for m in CURVE_MEASURES if m != "decoder_loss")  # a value per layer from 0 (the input)


def cascade_rows(task: Task, prediction: Prediction) -> Rows:
    """``curves``, ``cutoffs`` and ``reconstructions`` rows of one cascade task."""
    keys = _keys(task)
    spec = task.cascade
    curves = []
    for measure in ENTROPY_CURVES:
        values = np.asarray(getattr(prediction, measure), dtype=np.float64)
        curves += [
            {**keys, "layer": layer, "measure": measure, "value": float(v), "finite": bool(np.isfinite(v))}
            for layer, v in enumerate(values)
        ]
    curves += [
        {**keys, "layer": layer, "measure": "decoder_loss", "value": float(v), "finite": bool(np.isfinite(v))}
        for layer, v in enumerate(prediction.decoder_loss, start=1)
    ]
    tolerances = {"last_layer": prediction.cutoff_last_layer, "rtol": spec.rtol, "atol": spec.atol}
    cutoffs = [
        {
            **keys,
            "measure": name,
            "cutoff_layer": float(c.layer) if c.finite else float("nan"),
            "cutoff_std": float("nan"),
            "saturated": c.saturated,
            "finite": c.finite,
            **tolerances,
        }
        for name, c in prediction.cutoffs.items()
    ]
    per_image_finite = math.isfinite(prediction.per_image_cutoff_mean)
    cutoffs.append(
        {
            **keys,
            "measure": "kl_per_image",
            "cutoff_layer": prediction.per_image_cutoff_mean,
            "cutoff_std": prediction.per_image_cutoff_std,
            "saturated": per_image_finite and prediction.per_image_cutoff_mean < prediction.cutoff_last_layer,
            "finite": per_image_finite,
            **tolerances,
        }
    )
    height, width = image_shape(prediction.stored_images.shape[-1])
    images = [
        {
            **keys,
            "image_index": i,
            "layer": int(layer),
            "height": height,
            "width": width,
            "pixels": prediction.stored_images[i, j].astype(np.float32).tolist(),
        }
        for i in range(prediction.stored_images.shape[0])
        for j, layer in enumerate(prediction.stored_layers)
    ]
    return {"curves": curves, "cutoffs": cutoffs, "reconstructions": images}


def cascade_group_key(task: Task) -> tuple:
    """Tasks with equal keys can train their cascades together: the same data, family, widths and cascade
    settings."""
    return task.dataset, task.data, task.network.architecture, task.network.layer_widths, task.cascade


def run_cascade(task: Task, data: Dataset, device: torch.device | str, progress=None) -> tuple[Rows, str, dict]:
    """Run a cascade task: its table rows (without ``runs``), its status ('ok'/'nonfinite') and a summary."""
    return run_cascades([task], data, device, progress)[0]


def run_cascades(
    tasks: list[Task], data: Dataset, device: torch.device | str, progress=None
) -> list[tuple[Rows, str, dict]]:
    """``run_cascade`` for several tasks of one ``cascade_group_key``, their cascades trained together."""
    if len({cascade_group_key(t) for t in tasks}) != 1:
        raise ValueError(
            "tasks run together must share dataset, data options, family, layer widths and cascade settings"
        )
    predictions = predict_trainabilities(
        [t.network for t in tasks], tasks[0].cascade, data, [t.seed for t in tasks], device, progress
    )
    return [_cascade_result(task, prediction, data, device) for task, prediction in zip(tasks, predictions)]


def _cascade_result(
    task: Task, prediction: Prediction, data: Dataset, device: torch.device | str
) -> tuple[Rows, str, dict]:
    status = "ok" if prediction.finite else "nonfinite"
    summary = {name: c.layer for name, c in prediction.cutoffs.items()}
    summary["kl_per_image"] = prediction.per_image_cutoff_mean
    summary["seconds"] = sum(prediction.seconds.values())
    rows = cascade_rows(task, prediction)
    if task.info_plane is not None:
        network = families.build(task.network, task.seed, device)
        rows["info_plane"] = info_plane_point(task, network, data, epoch=None)
        if task.info_plane.extended_networks > 1:
            rows["info_plane"] += extended_info_plane(task, data, device)
    return rows, status, summary


def predictor_rows(task: Task, data: Dataset, device: torch.device | str) -> tuple[Rows, str, dict]:
    """Run every predictor of a ``predictors`` task on its untrained network (``families.build(spec, seed)``, the
    cascade's and the baseline's network of the same seed) and the first training images; the ``predictors``
    rows, the status ('ok', or 'nonfinite' when a score is NaN) and a summary {name: score}."""
    network = families.build(task.network, task.seed, device)
    largest = max([predictors.get(n).settings().get("batch", 1) for n in task.predictors], default=1)
    x, y = data.train_x[:largest], data.train_y[:largest]
    rows, summary = [], {}
    for name in task.predictors:
        t0 = time.perf_counter()
        result = predictors.run(name, network, task.network, x, y)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        depth = result.predicted_depth
        rows.append(
            {
                **_keys(task),
                "predictor": name,
                "predictor_kind": predictors.get(name).kind,
                "score": result.score,
                "predicted_depth": float("nan") if depth is None else depth,
                "higher_is_better": result.higher_is_better,
                "settings": result.settings_json,
                "seconds": seconds,
                "device": device_name(device),
            }
        )
        summary[name] = result.score
    status = "nonfinite" if any(math.isnan(v) for v in summary.values()) else "ok"
    return {"predictors": rows}, status, summary


def _probe_samples(data: Dataset, spec: InfoPlaneSpec) -> tuple[torch.Tensor, torch.Tensor]:
    return data.test_x[: spec.samples], data.test_y[: spec.samples]


@torch.no_grad()
def info_plane_point(task: Task, network: torch.nn.Module, data: Dataset, epoch: int | None) -> list[dict]:
    """``info_plane`` rows of every layer of ``network`` now (untrained: epoch None), on the probe images."""
    spec = task.info_plane
    x, y = _probe_samples(data, spec)
    start = time.perf_counter()
    was_training = network.training
    network.eval()
    layers = [a.flatten(1) for a in network.activations(x)[1:]]  # a convolutional layer's units as one vector
    per_layer = estimators.layer_mi(layers, y, spec.estimator, inputs=x, **spec.params)
    network.train(was_training)
    return info_plane_rows(
        _keys(task), per_layer, spec.estimator, epoch, time.perf_counter() - start, spec.params, n_samples=x.shape[0]
    )


@torch.no_grad()
def extended_info_plane(task: Task, data: Dataset, device: torch.device | str) -> list[dict]:
    """Seed 002's extended binning estimator over independently initialised networks of the task's σw², L."""
    spec = task.info_plane
    x, y = _probe_samples(data, spec)
    start = time.perf_counter()
    seeds = [task.seed] + [
        seeding.derived_seed(task.seed, "extended-network", i) for i in range(1, spec.extended_networks)
    ]
    family = [[a.flatten(1) for a in families.build(task.network, s, device).activations(x)[1:]] for s in seeds]
    per_layer = estimators.get("binning_extended")(family, y, seed=task.seed, n_bins=spec.n_bins)
    params = {"n_bins": spec.n_bins, "networks": spec.extended_networks}
    return info_plane_rows(
        _keys(task), per_layer, "binning_extended", None, time.perf_counter() - start, params, n_samples=x.shape[0]
    )


ROW_KEYS = ("task_id", "dataset", "profile", "sigma_w2", "sigma_b2", "depth", "seed")


def info_plane_rows(
    keys: dict,
    per_layer: Sequence[tuple[float, float]],
    estimator: str,
    epoch: int | None,
    seconds: float,
    params: dict,
    *,
    n_samples: int,
    step: int | None = None,
) -> list[dict]:
    """Rows of the ``info_plane`` table (``store.TABLES['info_plane']``), one per layer, layer 1 first.

    keys: the task's task_id, dataset, profile, sigma_w2, sigma_b2, depth, seed. per_layer: (I(X;T_l),
    I(T_l;Y)) in nats for l = 1, 2, … (``estimators.layer_mi``'s result). Where in training the point lies, in one
    of two units: ``epoch`` an int = after that many epochs of a training run (stage 'training'); ``step`` an int
    (``epoch`` None) = after that many SGD steps, one minibatch each (stage 'training', ``epoch`` null;
    ``jobs/info_plane.py``); neither = the untrained network (stage 'untrained', epoch 0). seconds: wall seconds of
    estimating all these layers, repeated on every row. params: the estimator's parameters, written as
    'name=value' joined by ';' (e.g. 'n_bins=30'). n_samples: the N the estimates used.
    """
    missing = [k for k in ROW_KEYS if k not in keys]
    if missing:
        raise ConfigError(f"info_plane rows need keys {', '.join(ROW_KEYS)}; missing {', '.join(missing)}")
    estimators.get(estimator)  # a known name, or ConfigError listing them
    for name, value in (("epoch", epoch), ("step", step)):
        if value is not None and not (isinstance(value, int) and value >= 0):
            raise ConfigError(f"{name} must be None or an integer >= 0, got {value!r}")
    if epoch is not None and step is not None:
        raise ConfigError(
            f"a point is after some epochs or after some SGD steps, not both; got epoch={epoch}, step={step}"
        )
    param = ";".join(f"{name}={_param_text(value)}" for name, value in sorted(params.items()))
    base = {k: keys[k] for k in ROW_KEYS}
    untrained = epoch is None and step is None
    base.update(stage="untrained" if untrained else "training", epoch=0 if untrained else epoch, step=step)
    return [
        {
            **base,
            "layer": layer,
            "estimator": estimator,
            "i_xt": float(i_xt),
            "i_ty": float(i_ty),
            "n_samples": int(n_samples),
            "param": param,
            "seconds": float(seconds),
        }
        for layer, (i_xt, i_ty) in enumerate(per_layer, start=1)
    ]


def _param_text(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(str(v) for v in value) + ")"
    return str(value)


def baseline_rows(task: Task, history: list[EpochRecord], stop_reason: str, resumed_from_epoch: int = 0) -> Rows:
    """``train_epochs`` and ``train_summary`` rows of one finished baseline training (``resumed_from_epoch``: the
    epoch of the checkpoint its last attempt started from, 0 when it trained from the start)."""
    keys = {**_keys(task), "loss_fn": task.train.loss}
    epochs = [{**keys, **{k: v for k, v in r.as_dict().items()}} for r in history]
    accuracies = [r.test_accuracy for r in history]
    finite = [a for a in accuracies if math.isfinite(a)]
    summary = {
        **keys,
        "epochs": len(history),
        "best_test_accuracy": max(finite, default=float("nan")),
        "final_test_accuracy": accuracies[-1] if accuracies else float("nan"),
        "accuracy_threshold": task.train.accuracy_threshold,
        "reached_threshold": any(a >= task.train.accuracy_threshold for a in finite),
        "stop_reason": stop_reason,
        "seconds": float(sum(r.seconds for r in history)),
        "resumed_from_epoch": resumed_from_epoch,
        "threshold_epoch": budget.threshold_epoch(
            ((r.epoch, r.test_accuracy) for r in history), task.train.accuracy_threshold
        ),
    }
    return {"train_epochs": epochs, "train_summary": [summary]}


@torch.no_grad()
def interpret_rows(task: Task, network: torch.nn.Module, data: Dataset, epoch: int) -> Rows:
    """Rows of the cascades of a trained baseline network (``InterpretSpec``): ``trained_curves`` and
    ``trained_cutoffs`` from a cascade of the grid's settings; ``retraced`` (the chosen test images) and
    ``perfect_inputs`` (every class's) with their reconstructions from the stored layers (``predict``'s choice:
    all of them up to depth 24), from a cascade of ``cascade_epochs`` epochs. ``epoch``: the training epochs the
    network had."""
    spec = task.interpret
    curves, measured = interpret_curves(task, network, data, epoch)
    pictures = measured
    if spec.cascade_epochs != task.cascade.epochs:
        longer = dataclasses.replace(task.cascade, epochs=spec.cascade_epochs)
        pictures = families.train_cascades([network], data.train_x, longer, [task.seed])[0]
    keys = {**_keys(task), "epoch": epoch}
    layers = stored_layer_indices(task.network.depth)
    height, width = image_shape(data.n_inputs)

    def strips(x: torch.Tensor) -> np.ndarray:
        return interpret.retrace(network, pictures.decoders, x)[:, layers].float().cpu().numpy()

    examples = interpret.choose_examples(network, data, spec.examples_per_class)
    index = torch.tensor([e.image_index for e in examples], dtype=torch.long, device=data.test_x.device)
    retraced = [
        {
            **keys,
            "image_index": e.image_index,
            "label": e.label,
            "predicted": e.predicted,
            "confidence": e.confidence,
            "rule": e.rule,
            "layer": int(layer),
            "height": height,
            "width": width,
            "pixels": images[j].tolist(),
        }
        for e, images in zip(examples, strips(data.test_x[index]) if examples else [])
        for j, layer in enumerate(layers)
    ]
    perfect = interpret.perfect_inputs(network, pictures.decoders, data, spec.perfect_output)
    predicted, confidence = interpret.classify(network, perfect)
    perfect_rows = [
        {
            **keys,
            "label": k,
            "perfect_output": spec.perfect_output,
            "predicted": int(predicted[k]),
            "confidence": float(confidence[k]),
            "layer": int(layer),
            "height": height,
            "width": width,
            "pixels": images[j].tolist(),
        }
        for k, images in enumerate(strips(perfect))
        for j, layer in enumerate(layers)
    ]
    return {**curves, "retraced": retraced, "perfect_inputs": perfect_rows}


@torch.no_grad()
def interpret_curves(
    task: Task, network: torch.nn.Module, data: Dataset, epoch: int
) -> tuple[Rows, cascade.TrainedCascade]:
    """``trained_curves`` and ``trained_cutoffs`` rows of ``network`` after ``epoch`` epochs of training (a cascade
    with the grid's settings), and that cascade. (The tanh network has no dropout or batch norm: its training and
    evaluation modes compute the same, so the training loop's mode is left as it is.)"""
    measured = families.train_cascades([network], data.train_x, task.cascade, [task.seed])[0]
    rows = cascade_rows(task, evaluate(network, measured, data, task.cascade))
    curves = {
        "trained_curves": [{**r, "epoch": epoch} for r in rows["curves"]],
        "trained_cutoffs": [{**r, "epoch": epoch} for r in rows["cutoffs"]],
    }
    return curves, measured

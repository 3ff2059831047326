"""Settings of the predict-then-tune job (``jobs/predict_then_tune.py``; seed 001, §2.2 on optuna): one frozen,
validated dataclass, its presets, and the adaptive-search grid that makes its prediction.

The job answers: how much compute does a hyperparameter search save when it first predicts, with cascades, the
σw² interval where a depth-L network is trainable, and only then tunes (σw², learning rate, …) inside it?

- **predict**: the σw² interval search of ``infoflow_ray.search`` at target depth L (cascades only), started
  from ``coarse_points`` σw² spread over the space's σw² range — or, with ``predictor`` = a registered predictor
  that gives a depth (``infoflow_ray.predictors``: mean field, APJN), the σw² of ``predictor_sigma_w2`` whose
  predicted depth ℓ̂ >= L (``predictors.interval.depth_interval``);
- **tune**, arm ``predicted``: a Ray Tune search (Optuna's TPE, or random) with ASHA early stopping over σw²
  inside the predicted interval and the other hyperparameters;
- **control**, arm ``control``: the same searcher, scheduler, trial budget and seeds over the whole σw² range.

Each (arm, search seed) is one Tune experiment of ``trials`` trials; each trial one baseline training
(``infoflow_ray.training``) of up to ``max_epochs`` epochs that ASHA may stop early.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from infoflow_ray.config import OPTIMIZERS, CascadeSpec, NetworkSpec, _is_number, _require
from infoflow_ray.data import DATASET_NAMES
from infoflow_ray.predictors.interval import depth_predictors
from infoflow_ray.store import task_id as hash_config
from infoflow_ray.sweep.grid import (
    DATASET_SHAPES,
    SEARCH_MEASURES,
    DataOptions,
    GridSpec,
    ResourceSpec,
    SearchSpec,
    layered_values,
    with_sections,
)

SEARCHERS = ("tpe", "random")
"""Both through Ray Tune's ``OptunaSearch``: Optuna's TPE sampler, or its uniform random sampler (a baseline)."""
ARMS = ("predicted", "control")


def _range(field_name: str, value: Any, positive: bool = True) -> tuple[float, float]:
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(_is_number(v) and math.isfinite(v) and (v > 0 or not positive) for v in value)
        and value[0] < value[1]
    )
    _require(ok, field_name, value, "[low, high] with 0 < low < high (a non-empty range)")
    return float(value[0]), float(value[1])


def _choices(field_name: str, value: Any, allowed: tuple | None = None) -> tuple:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    what = f"a non-empty list of {', '.join(allowed)}" if allowed else "a non-empty list of integers > 0"
    ok = bool(values) and len(set(values)) == len(values)
    if allowed:
        ok = ok and all(v in allowed for v in values)
    else:
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)
    _require(ok, field_name, list(values), what + " without repeats")
    return values


@dataclass(frozen=True)
class SpaceSpec:
    """The hyperparameter space. ``sigma_w2``: [low, high], uniform — the control arm searches all of it, the
    predicted arm the part predicted trainable; ``lr``: [low, high], log-uniform; ``batch_size`` and
    ``optimizer``: the choices (one value: fixed, not searched)."""

    sigma_w2: tuple[float, float] = (0.25, 4.0)
    lr: tuple[float, float] = (1e-3, 1.0)
    batch_size: tuple[int, ...] = (64,)
    optimizer: tuple[str, ...] = ("sgd",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma_w2", _range("space.sigma_w2", self.sigma_w2))
        object.__setattr__(self, "lr", _range("space.lr", self.lr))
        object.__setattr__(self, "batch_size", _choices("space.batch_size", self.batch_size))
        object.__setattr__(self, "optimizer", _choices("space.optimizer", self.optimizer, OPTIMIZERS))


@dataclass(frozen=True)
class TuneResources:
    """What each trial asks Ray for (None GPUs: 0.25 with GPUs, else 0); ``max_concurrent_trials`` None: as many
    as fit. ``checkpoint_every_epochs``: a trial saves its trainer this often (and when it ends), so an
    interrupted run resumes mid-trial; ``max_trial_attempts``: tries per trial."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    max_concurrent_trials: int | None = None
    checkpoint_every_epochs: int = 10
    max_trial_attempts: int = 2

    def __post_init__(self) -> None:
        _require(
            _is_number(self.cpus_per_trial) and self.cpus_per_trial > 0,
            "resources.cpus_per_trial",
            self.cpus_per_trial,
            "a number > 0",
        )
        _require(
            self.gpus_per_trial is None or (_is_number(self.gpus_per_trial) and self.gpus_per_trial >= 0),
            "resources.gpus_per_trial",
            self.gpus_per_trial,
            "None or a number >= 0",
        )
        if self.max_concurrent_trials is not None:
            _require(
                isinstance(self.max_concurrent_trials, int) and self.max_concurrent_trials >= 1,
                "resources.max_concurrent_trials",
                self.max_concurrent_trials,
                "None or an integer >= 1",
            )
        for name in ("checkpoint_every_epochs", "max_trial_attempts"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 1, f"resources.{name}", value, "an integer >= 1")


@dataclass(frozen=True)
class TuningSpec:
    """Everything the predict-then-tune job does. See the module docstring; units: σw², σb² (variances), lr
    (learning rate), epochs, seconds (task-seconds: wall seconds summed over tasks)."""

    name: str
    dataset: str = "mnist_t10k"
    depth: int = 30
    widths: str | tuple[int, ...] = "wide"
    sigma_b2: float = 0.05
    space: SpaceSpec = field(default_factory=SpaceSpec)
    searcher: str = "tpe"
    trials: int = 16  # per arm and search seed: the budget
    max_epochs: int = 9  # per trial (ASHA's max_t)
    grace_period: int = 1  # ASHA: epochs before a trial can be stopped
    reduction_factor: int = 3  # ASHA: keep 1 in reduction_factor at each rung
    search_seeds: tuple[int, ...] = (0, 1, 2)  # one experiment per arm and seed; also the networks' seed
    target_accuracy: float | None = None  # None: 0.95 × the best accuracy any trial reached (analysis)
    coarse_points: int = 7  # prediction: σw² spread evenly over space.sigma_w2, ends included
    cascade_seeds: tuple[int, ...] = (0,)
    sigma_w2_tolerance: float = 0.05
    measure: str = "kl_per_image"
    predictor: str = "cascade"  # 'cascade' (its interval search, by `measure`) or a predictor giving a depth
    data: DataOptions = field(default_factory=DataOptions)
    cascade: CascadeSpec = field(default_factory=CascadeSpec)
    resources: TuneResources = field(default_factory=TuneResources)
    cascade_depth: int | None = None  # None: the deepest cutoff layer is ⌈1.25 L⌉ (see prediction_grid)
    cascade_workers: int | None = None
    results: str = "results/predict-then-tune"

    def __post_init__(self) -> None:
        _require(self.dataset in DATASET_NAMES, "dataset", self.dataset, f"one of {', '.join(DATASET_NAMES)}")
        _require(self.searcher in SEARCHERS, "searcher", self.searcher, f"one of {', '.join(SEARCHERS)}")
        for name in ("trials", "max_epochs", "grace_period"):
            value = getattr(self, name)
            _require(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, value, "an integer >= 1"
            )
        _require(
            self.grace_period <= self.max_epochs, "grace_period", self.grace_period, f"<= max_epochs {self.max_epochs}"
        )
        _require(
            isinstance(self.reduction_factor, int) and self.reduction_factor >= 2,
            "reduction_factor",
            self.reduction_factor,
            "an integer >= 2",
        )
        for name in ("search_seeds", "cascade_seeds"):
            values = tuple(getattr(self, name)) if isinstance(getattr(self, name), (list, tuple)) else ()
            _require(
                bool(values)
                and len(set(values)) == len(values)
                and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in values),
                name,
                getattr(self, name),
                "a non-empty list of distinct integers >= 0",
            )
            object.__setattr__(self, name, values)
        if self.target_accuracy is not None:
            _require(
                _is_number(self.target_accuracy) and 0 < self.target_accuracy <= 1,
                "target_accuracy",
                self.target_accuracy,
                "None (derived from the results) or a number in (0, 1]",
            )
        _require(
            isinstance(self.coarse_points, int) and self.coarse_points >= 2,
            "coarse_points",
            self.coarse_points,
            "an integer >= 2",
        )
        _require(
            _is_number(self.sigma_w2_tolerance) and self.sigma_w2_tolerance > 0,
            "sigma_w2_tolerance",
            self.sigma_w2_tolerance,
            "a number > 0",
        )
        _require(self.measure in SEARCH_MEASURES, "measure", self.measure, f"one of {', '.join(SEARCH_MEASURES)}")
        predictors = ("cascade", *depth_predictors())
        _require(self.predictor in predictors, "predictor", self.predictor, f"one of {', '.join(predictors)}")
        _require(bool(self.results) and isinstance(self.results, str), "results", self.results, "a path or a URI")
        if isinstance(self.widths, list):
            object.__setattr__(self, "widths", tuple(self.widths))
        self.network(self.space.sigma_w2[0])  # depth, widths and σb² are validated by NetworkSpec
        self.prediction_grid()  # ... and the prediction's settings by GridSpec

    def network(self, sigma_w2: float) -> NetworkSpec:
        """The tuned network at ``sigma_w2``."""
        n_in, n_out = DATASET_SHAPES.get(self.dataset, (self.data.synthetic_inputs, 10))
        return NetworkSpec(
            sigma_w2=float(sigma_w2),
            depth=self.depth,
            sigma_b2=self.sigma_b2,
            widths=self.widths,
            n_inputs=n_in,
            n_outputs=n_out,
        )

    @property
    def coarse_sigma_w2(self) -> tuple[float, ...]:
        low, high = self.space.sigma_w2
        n = self.coarse_points
        return tuple(round(low + (high - low) * i / (n - 1), 6) for i in range(n))

    @property
    def deepest_cascade(self) -> int:
        """Depth of the prediction's cascades: ``cascade_depth``, else deep enough that the cutoff can exceed L by
        a quarter — a cutoff that saturates at the last layer it looks at reads just below it (the per-image mean
        of saturated cutoffs), so a cascade of depth L would call even the critical point untrainable. The
        ``wide`` profile adds its two head layers, which the cutoff does not look at."""
        if self.cascade_depth is not None:
            return self.cascade_depth
        return math.ceil(1.25 * self.depth) + (2 if self.widths == "wide" else 0)

    @property
    def predictor_sigma_w2(self) -> tuple[float, ...]:
        """The σw² a non-cascade ``predictor`` is asked at: evenly spaced over ``space.sigma_w2``, ends included, at
        most ``sigma_w2_tolerance`` apart (and at least ``coarse_points`` of them). The predicted arm's interval
        reaches halfway to the first σw² outside, as the cascade's search's does (``tuning.predicted_range``)."""
        low, high = self.space.sigma_w2
        n = max(self.coarse_points, math.ceil((high - low) / self.sigma_w2_tolerance - 1e-9) + 1)
        return tuple(round(low + (high - low) * i / (n - 1), 6) for i in range(n))

    def prediction_grid(self) -> GridSpec:
        """The adaptive search that predicts the trainable σw² interval at ``depth``: cascades only."""
        return GridSpec(
            name=f"{self.name}-predict",
            sigma_w2=self.coarse_sigma_w2,
            depths=(self.depth,),
            datasets=(self.dataset,),
            seeds=self.cascade_seeds,
            widths=self.widths,
            sigma_b2=(self.sigma_b2,),
            cascade_depth=self.deepest_cascade,
            kinds=("cascade",),
            results=self.results,
            data=self.data,
            cascade=self.cascade,
            resources=ResourceSpec(cascade_workers=self.cascade_workers),
            search=SearchSpec(
                enabled=True,
                measure=self.measure,
                target_depth=self.depth,
                sigma_w2_tolerance=self.sigma_w2_tolerance,
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        return json_ready(dataclasses.asdict(self))

    @property
    def settings_id(self) -> str:
        """A hash of every setting that shapes the experiments' trials and the prediction — not the preset's name,
        the results location, the resources, which search seeds run, or the target accuracy (analysis only).
        Experiments of different settings in one results folder are never summarised together."""
        values = self.as_dict()
        for key in ("name", "results", "resources", "cascade_workers", "search_seeds", "target_accuracy"):
            values.pop(key)
        if values["predictor"] == "cascade":  # the default: the ids of results from before the field existed hold
            values.pop("predictor")
        return hash_config(values)


def json_ready(value: Any) -> Any:
    """Tuples as lists, recursively (for hashing and JSON)."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


PRESETS: dict[str, dict[str, Any]] = {
    # End-to-end check in about a minute (tests use it): shallow, 2 epochs, few trials.
    "tiny": dict(
        depth=8,
        space=dict(sigma_w2=(0.1, 4.0), lr=(1e-2, 0.5)),
        trials=3,
        max_epochs=2,
        search_seeds=(0,),
        coarse_points=3,
        sigma_w2_tolerance=0.5,
        data=dict(max_train_samples=1000),
        cascade=dict(eval_samples=100),
        results="results/tune-tiny",
    ),
    # The CPU-scale measurement: MNIST-t10k, depth 30, 3 search seeds, both arms; about 15 minutes on 2 cores
    # (measured: benchmarks/RESULTS.md; 18 minutes with 3,000 training images). σw² over the paper's
    # phase-space range [0.25, 4]; lr log-uniform.
    "cpu": dict(
        depth=30,
        space=dict(sigma_w2=(0.25, 4.0), lr=(1e-3, 1.0)),
        trials=16,
        max_epochs=9,
        grace_period=1,
        reduction_factor=3,
        search_seeds=(0, 1, 2),
        coarse_points=7,
        sigma_w2_tolerance=0.1,
        data=dict(max_train_samples=2000),
        cascade=dict(eval_samples=500),
        results="results/predict-then-tune",
    ),
    # The paper's scale on a GPU cluster: MNIST, depth 100, 200-epoch budget, batch size and optimizer searched.
    "paper-mnist": dict(
        dataset="mnist",
        depth=100,
        space=dict(sigma_w2=(0.1, 4.0), lr=(1e-4, 1.0), batch_size=(32, 64, 128), optimizer=("sgd", "adam")),
        trials=64,
        max_epochs=200,
        grace_period=5,
        reduction_factor=3,
        search_seeds=(0, 1, 2, 3, 4),
        coarse_points=14,
        cascade_seeds=(0, 1),
        sigma_w2_tolerance=0.05,
        cascade=dict(eval_samples=1000, tf32_training=True),
        results="results/predict-then-tune-paper-mnist",
    ),
}

_NESTED = {"space": SpaceSpec, "data": DataOptions, "cascade": CascadeSpec, "resources": TuneResources}


def build_tuning(name: str, values: dict[str, Any]) -> TuningSpec:
    """A validated TuningSpec from plain values (preset + config file + flags merged)."""
    return TuningSpec(name=name, **with_sections("the tuning config", values, TuningSpec, _NESTED))


def resolve_tuning(
    preset: str = "cpu", config_file: str | None = None, overrides: dict[str, Any] | None = None
) -> TuningSpec:
    """Preset, then config file, then overrides (flags) — later ones win."""
    return build_tuning(preset, layered_values(PRESETS, preset, config_file, overrides, _NESTED))

"""The grid: which cascade and baseline tasks a sweep runs, from a preset, a config file and CLI overrides.

A grid of (σw², depth, dataset, seed) expands into
- cascade tasks, one per (dataset, σw², seed) on the grid's deepest network (the cutoff is a property of σw²,
  one deep cascade gives the curve for every depth), and
- baseline tasks, one per (dataset, σw², depth, seed), and
- with ``predictors = [names]`` (``infoflow_ray.predictors``), predictor tasks, one per (dataset, σw², depth,
  seed) on the same untrained networks (same seeds) as the cascades and baselines: cheap Ray tasks that run every
  named predictor on the network and write one ``predictors`` row each. The cascade's own cutoffs
  (``kl_per_image``, ``kl_mean``, ``diff_entropy``) need no task: the leaderboard reads them from ``cutoffs``.
Every task has a ``task_id`` hashed from everything that determines its result, so a re-run skips finished
tasks and a changed parameter makes new tasks instead of overwriting old ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infoflow_ray import estimators, families, predictors
from infoflow_ray.config import (
    CascadeSpec,
    NetworkSpec,
    TrainSpec,
    _is_number,
    _require,
)
from infoflow_ray.data import DATASET_NAMES
from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators.bspline import BSPLINE_MAX_UNITS
from infoflow_ray.interpret import PERFECT_OUTPUTS
from infoflow_ray.store import task_id as hash_task
from infoflow_ray.sweep.flags import value_range

KINDS = ("cascade", "baseline", "predictors")
DEFAULT_KINDS = ("cascade", "baseline")  # predictor tasks join when the grid names predictors
DATASET_SHAPES = {
    "mnist_t10k": (784, 10),
    "digits": (64, 10),
    "mnist": (784, 10),
    "fashion_mnist": (784, 10),
    "cifar10_gray": (1024, 10),
}
"""(n_inputs, n_classes) of each named dataset; ``synthetic`` takes its shape from the grid."""


@dataclass(frozen=True)
class DataOptions:
    """How a dataset is loaded: a training subset (None = the whole split) and the synthetic data's shape."""

    max_train_samples: int | None = None
    synthetic_inputs: int = 64
    synthetic_train: int = 2000
    synthetic_test: int = 500

    def __post_init__(self) -> None:
        if self.max_train_samples is not None:
            _require(
                isinstance(self.max_train_samples, int) and self.max_train_samples >= 64,
                "max_train_samples",
                self.max_train_samples,
                "None or an integer >= 64",
            )
        for name in ("synthetic_inputs", "synthetic_train", "synthetic_test"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 2, name, value, "an integer >= 2")


@dataclass(frozen=True)
class ResourceSpec:
    """What each piece of work asks Ray for. ``None`` means: decide from the cluster (GPUs when it has them).

    cascade_workers: actors in the cascade pool (None: one per GPU, or one per CPU on a CPU-only cluster).
    gpus_per_cascade: GPUs per cascade actor (None: 1 with GPUs, else 0). gpus_per_trial: GPUs per baseline
    trial (None: 0.25 with GPUs — small MLPs share a GPU — else 0). max_task_attempts: tries per task before
    it is recorded as failed. checkpoint_every_epochs: how often a
    baseline trial saves a Tune checkpoint. cascade_group: cascades of equal widths one actor trains together
    (None: as many as fit in its GPU's free memory, 1 on a CPU). baseline_group: baseline networks one Tune
    trial trains together (1: one per trial).
    """

    cascade_workers: int | None = None
    cpus_per_cascade: float = 1.0
    gpus_per_cascade: float | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    max_concurrent_trials: int | None = None
    max_task_attempts: int = 3
    checkpoint_every_epochs: int = 1
    baseline_group: int = 1
    cascade_group: int | None = None

    def __post_init__(self) -> None:
        if self.cascade_workers is not None:
            _require(
                isinstance(self.cascade_workers, int) and self.cascade_workers >= 1,
                "resources.cascade_workers",
                self.cascade_workers,
                "None or an integer >= 1",
            )
        for name in ("cpus_per_cascade", "cpus_per_trial"):
            value = getattr(self, name)
            _require(isinstance(value, (int, float)) and value > 0, f"resources.{name}", value, "a number > 0")
        for name in ("gpus_per_cascade", "gpus_per_trial"):
            value = getattr(self, name)
            _require(
                value is None or (isinstance(value, (int, float)) and value >= 0),
                f"resources.{name}",
                value,
                "None or a number >= 0",
            )
        if self.cascade_group is not None:
            _require(
                isinstance(self.cascade_group, int) and self.cascade_group >= 1,
                "resources.cascade_group",
                self.cascade_group,
                "None (sized from free GPU memory) or an integer >= 1",
            )
        for name in ("max_task_attempts", "checkpoint_every_epochs", "baseline_group"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 1, f"resources.{name}", value, "an integer >= 1")


@dataclass(frozen=True)
class InfoPlaneSpec:
    """Optional information-plane metrics (seeds 002, 003), off by default; all values in nats.

    For every cascade task: I(X;T_l), I(T_l;Y) of every layer of the untrained network (plus seed 002's
    "extended" binning estimator over ``extended_networks`` independently initialised networks when > 1). For
    every baseline task: the same every ``every_epochs`` epochs of training (trajectories). ``samples``: test
    images the estimates use. ``stopper='mi'``: also stop a training when I(T;Y) of the last hidden layer has
    not risen by ``min_delta`` for ``patience`` evaluations (seed 002's criterion); the stop reason records it.
    """

    enabled: bool = False
    estimator: str = "binning"
    n_bins: int = 30
    noise_var: float = 0.1
    k: int = 3
    samples: int = 1000
    every_epochs: int = 1
    extended_networks: int = 0
    stopper: str = "threshold"
    patience: int = 3
    min_delta: float = 1e-3

    def __post_init__(self) -> None:
        _require(isinstance(self.enabled, bool), "info_plane.enabled", self.enabled, "true or false")
        _require(
            self.estimator in estimators.ESTIMATORS,
            "info_plane.estimator",
            self.estimator,
            f"one of {', '.join(estimators.ESTIMATORS)}",
        )
        _require(self.stopper in ("threshold", "mi"), "info_plane.stopper", self.stopper, "threshold or mi")
        for name in ("n_bins", "k", "samples", "every_epochs", "patience"):
            value = getattr(self, name)
            _require(
                isinstance(value, int) and value >= 2 - (name in ("every_epochs", "patience", "k")),
                f"info_plane.{name}",
                value,
                "a positive integer" if name != "n_bins" else "an integer >= 2",
            )
        _require(
            isinstance(self.extended_networks, int) and self.extended_networks >= 0,
            "info_plane.extended_networks",
            self.extended_networks,
            "an integer >= 0",
        )
        _require(
            isinstance(self.noise_var, (int, float)) and self.noise_var > 0,
            "info_plane.noise_var",
            self.noise_var,
            "a number > 0",
        )

    @property
    def params(self) -> dict:
        """The chosen estimator's own parameters ('adaptive': bins per unit; 'bspline': the spline's bins; 'dcor'
        and 'density' have none here: the density models keep ``estimators.density.DensitySpec``'s defaults)."""
        bins = {"n_bins": self.n_bins}
        return {
            "binning": bins,
            "adaptive": bins,
            "bspline": bins,
            "kde": {"noise_var": self.noise_var},
            "ksg": {"k": self.k},
            "dcor": {},
            "density": {},
        }[self.estimator]


@dataclass(frozen=True)
class InterpretSpec:
    """Cascades of the *trained* baseline networks (seed 001 §2.3, fig. 5), off by default.

    At the end of each baseline training the trial trains, on the trained network: a cascade with the grid's
    ``cascade`` settings, whose curves and cutoffs (``trained_curves``, ``trained_cutoffs``) compare with the
    untrained network's; and a cascade of ``cascade_epochs`` epochs for the pictures — ``examples_per_class``
    retraced test images per class and rule (``retraced``: the most confident correct and the most confident
    mistake) and every class's perfect input (``perfect_inputs``; ``perfect_output`` says which artificial output
    it decodes, see ``infoflow_ray.interpret``). Decoding from the 10-wide output needs more than the one epoch
    the entropy needs: on a 256-wide 3-layer network at 91 % accuracy, 1, 3 and 10 epochs gave perfect inputs that
    the network classifies as their own class for 1, 6 and 10 of 10 classes. ``at_epochs``: also the curves and
    cutoffs after these epochs of training (0: before the first), to follow how training changes them."""

    enabled: bool = False
    cascade_epochs: int = 10
    examples_per_class: int = 1
    perfect_output: str = "extreme"
    at_epochs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _require(isinstance(self.enabled, bool), "interpret.enabled", self.enabled, "true or false")
        epochs = tuple(self.at_epochs) if isinstance(self.at_epochs, (list, tuple)) else None
        _require(
            epochs is not None
            and len(set(epochs)) == len(epochs)
            and all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in epochs),
            "interpret.at_epochs",
            self.at_epochs,
            "a list of distinct integers >= 0",
        )
        object.__setattr__(self, "at_epochs", tuple(sorted(epochs)))
        for name in ("cascade_epochs", "examples_per_class"):
            value = getattr(self, name)
            _require(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"interpret.{name}",
                value,
                "an integer >= 1",
            )
        _require(
            self.perfect_output in PERFECT_OUTPUTS,
            "interpret.perfect_output",
            self.perfect_output,
            f"one of {', '.join(PERFECT_OUTPUTS)}",
        )


SEARCH_MEASURES = ("kl_per_image", "kl_mean", "kl_median_normalised", "diff_entropy")
# How the driver hands out the search's tasks (the simulator, ``sweep/simulate.py``, replays the same two):
# per_result replans as soon as any task ends; per_round waits for everything handed out before it replans.
SEARCH_POLICIES = ("per_round", "per_result")


@dataclass(frozen=True)
class SearchSpec:
    """The adaptive search (``--search``; method §9): trainings and cascades chosen as results arrive.

    ℓ_train per (dataset, profile, σb², σw², seed) by galloping/bisecting over the grid's ``depths`` from the
    cascade's prediction, until the bracket [deepest pass, shallowest fail] is at most ``depth_resolution``
    layers wide (None: neighbours in ``depths``), then checked one depth beyond each end (``confirm``).
    With ``target_depth`` L: the σw² interval where ℓ_c ≥ L, both edges bisected from the grid's σw² values
    down to ``sigma_w2_tolerance`` (each step a cascade per seed); ``edge_trainings`` also trains depth L at
    the measured σw² just inside and just outside each edge. ``measure``: the cutoff that starts the depth
    search, decides the interval and places the peak — by default the mean of the per-image KL cutoffs, which
    is stable over seeds where the cutoff of the mean curve saturates spuriously near and above criticality.

    Budgets (docs/budget.md): ℓ_train is bracketed at ``train.max_epochs``; at each smaller rung of
    ``train.budgets`` the search says what its trainings determine. ``resolve_rungs`` also trains (at the full
    budget) the depths each smaller rung's own depth search asks for, until every rung is determined.
    ``extra_seeds`` more seeds (after the grid's largest) search a σw² only where its outcome is close: a training
    whose best test accuracy is within ``close_margin`` of the threshold, or seeds that disagree at a depth.

    ``policy`` (docs/cluster-scale.md): ``per_result`` replans as soon as any task ends and starts what the searches
    ask for next at once; ``per_round`` submits what they ask for, waits for all of it, then replans. Both take
    the same decisions (the replay is a pure function of the stored results); per result keeps workers busy
    while the round's slowest training runs.
    """

    enabled: bool = False
    policy: str = "per_result"
    measure: str = "kl_per_image"
    depth_resolution: int | None = None
    confirm: bool = True
    target_depth: int | None = None
    sigma_w2_tolerance: float = 0.02
    edge_trainings: bool = False
    resolve_rungs: bool = False
    extra_seeds: int = 0
    close_margin: float = 0.05

    def __post_init__(self) -> None:
        _require(isinstance(self.enabled, bool), "search.enabled", self.enabled, "true or false")
        _require(self.policy in SEARCH_POLICIES, "search.policy", self.policy, f"one of {', '.join(SEARCH_POLICIES)}")
        _require(
            self.measure in SEARCH_MEASURES, "search.measure", self.measure, f"one of {', '.join(SEARCH_MEASURES)}"
        )
        if self.depth_resolution is not None:
            _require(
                isinstance(self.depth_resolution, int)
                and not isinstance(self.depth_resolution, bool)
                and self.depth_resolution > 0,
                "search.depth_resolution",
                self.depth_resolution,
                "None (one step of the depth list) or an integer number of layers > 0",
            )
        _require(isinstance(self.confirm, bool), "search.confirm", self.confirm, "true or false")
        if self.target_depth is not None:
            _require(
                isinstance(self.target_depth, int)
                and not isinstance(self.target_depth, bool)
                and self.target_depth >= 1,
                "search.target_depth",
                self.target_depth,
                "None (no σw² interval search) or an integer >= 1",
            )
        _require(
            _is_number(self.sigma_w2_tolerance)
            and math.isfinite(self.sigma_w2_tolerance)
            and self.sigma_w2_tolerance > 0,
            "search.sigma_w2_tolerance",
            self.sigma_w2_tolerance,
            "a finite number > 0",
        )
        _require(isinstance(self.edge_trainings, bool), "search.edge_trainings", self.edge_trainings, "true or false")
        _require(isinstance(self.resolve_rungs, bool), "search.resolve_rungs", self.resolve_rungs, "true or false")
        _require(
            isinstance(self.extra_seeds, int) and not isinstance(self.extra_seeds, bool) and self.extra_seeds >= 0,
            "search.extra_seeds",
            self.extra_seeds,
            "an integer >= 0",
        )
        _require(
            _is_number(self.close_margin) and 0 <= self.close_margin < 1,
            "search.close_margin",
            self.close_margin,
            "a number in [0, 1) (test accuracy)",
        )


def _as_dict(spec: Any) -> Any:
    """``dataclasses.asdict`` for the frozen specs a task id is built from, without its deep copies of immutable
    values (a search's replay computes hundreds of thousands of ids: asdict was most of its time)."""
    if dataclasses.is_dataclass(spec):
        return {f.name: _as_dict(getattr(spec, f.name)) for f in dataclasses.fields(spec)}
    if isinstance(spec, (list, tuple)):
        return type(spec)(_as_dict(v) for v in spec)
    if isinstance(spec, dict):
        return {k: _as_dict(v) for k, v in spec.items()}
    return spec


@dataclass(frozen=True)
class Task:
    """One unit of work: a cascade prediction or a baseline training of one network on one dataset."""

    kind: str
    dataset: str
    network: NetworkSpec
    seed: int
    data: DataOptions
    cascade: CascadeSpec | None = None
    train: TrainSpec | None = None
    info_plane: InfoPlaneSpec | None = None
    interpret: InterpretSpec | None = None
    predictors: tuple[str, ...] | None = None

    def config(self) -> dict[str, Any]:
        """Everything that determines the result, as plain JSON-able values."""
        out = {
            "kind": self.kind,
            "dataset": self.dataset,
            "seed": self.seed,
            "network": _as_dict(self.network),
            "data": _as_dict(self.data),
        }
        out["network"]["widths"] = (
            list(self.network.widths) if not isinstance(self.network.widths, str) else self.network.widths
        )
        if self.network.architecture == "mlp":  # the architecture only when not the MLP: older ids stay valid
            del out["network"]["architecture"]
        if "channels" not in self.network.family.spec_fields:  # channels only where they apply
            del out["network"]["channels"]
        if self.cascade is not None:
            out["cascade"] = {
                k: v
                for k, v in _as_dict(self.cascade).items()
                if k != "strategy"  # strategies give the same decoders
                and not (k == "tf32_training" and not v)
            }  # only when on: older ids stay valid
        if self.train is not None:  # the optimizer only when not SGD: older ids stay valid; the ladder never
            out["train"] = {  # changes a training, so it is not part of its id
                k: v for k, v in _as_dict(self.train).items() if (k != "optimizer" or v != "sgd") and k != "ladder"
            }
        if self.info_plane is not None:  # only when enabled, so enabling it never renames other tasks
            out["info_plane"] = _as_dict(self.info_plane)
        if self.interpret is not None:  # likewise
            out["interpret"] = _as_dict(self.interpret)
        if self.predictors is not None:
            out["predictors"] = list(self.predictors)
        return out

    @property
    def task_id(self) -> str:
        return hash_task(self.config())

    @property
    def label(self) -> str:
        """A name a person can read, e.g. for the Ray dashboard: 'cascade mnist_t10k σw²=1.76 L=30 seed=0'."""
        return (
            f"{self.kind} {self.dataset} {self.network.profile_name} σw²={self.network.sigma_w2:g} "
            f"L={self.network.depth} seed={self.seed}"
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Task:
        network = dict(config["network"])
        if not isinstance(network["widths"], str):
            network["widths"] = tuple(network["widths"])
        return cls(
            kind=config["kind"],
            dataset=config["dataset"],
            seed=config["seed"],
            network=NetworkSpec(**network),
            data=DataOptions(**config["data"]),
            cascade=CascadeSpec(**config["cascade"]) if "cascade" in config else None,
            train=TrainSpec(**config["train"]) if "train" in config else None,
            info_plane=InfoPlaneSpec(**config["info_plane"]) if "info_plane" in config else None,
            interpret=InterpretSpec(**config["interpret"]) if "interpret" in config else None,
            predictors=tuple(config["predictors"]) if "predictors" in config else None,
        )


def _tuple(values: Any) -> tuple:
    return tuple(values) if isinstance(values, (list, tuple)) else (values,)


@dataclass(frozen=True)
class GridSpec:
    """A full grid. ``cascade_depth``: depth of the cascade networks (None = the deepest of ``depths``).

    ``sigma_b2`` is an axis like ``sigma_w2``: one value or several (the search then traces the critical line
    σw²(σb²)). With ``search.enabled`` the grid's values are the allowed values of an adaptive search
    (``infoflow_ray.sweep.adaptive``) instead of a list of tasks that all run. ``architecture`` is an axis too
    (``families.FAMILIES``: 'mlp', 'cnn', 'resnet', 'resmlp'; ``channels`` C for the convolutional ones); it is
    written into the tables' ``profile`` column ('wide', 'resmlp-wide', 'cnn-c64', …).
    """

    name: str
    sigma_w2: tuple[float, ...]
    depths: tuple[int, ...]
    datasets: tuple[str, ...] = ("mnist_t10k",)
    seeds: tuple[int, ...] = (0,)
    widths: str | tuple[int, ...] = "wide"
    sigma_b2: tuple[float, ...] = (0.05,)
    cascade_depth: int | None = None
    kinds: tuple[str, ...] = DEFAULT_KINDS
    results: str = "results/default"
    data: DataOptions = field(default_factory=DataOptions)
    cascade: CascadeSpec = field(default_factory=CascadeSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    info_plane: InfoPlaneSpec = field(default_factory=InfoPlaneSpec)
    interpret: InterpretSpec = field(default_factory=InterpretSpec)
    search: SearchSpec = field(default_factory=SearchSpec)
    architecture: tuple[str, ...] = ("mlp",)
    channels: int = 64
    predictors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "predictors", _tuple(self.predictors) if self.predictors else ())
        for name in self.predictors:
            predictors.get(name)  # an unknown name fails in one line listing the known ones
        _require(
            len(set(self.predictors)) == len(self.predictors), "predictors", list(self.predictors), "distinct names"
        )
        if self.predictor_names and "predictors" not in _tuple(self.kinds):
            object.__setattr__(self, "kinds", (*_tuple(self.kinds), "predictors"))
        for name in ("sigma_w2", "sigma_b2", "depths", "datasets", "seeds", "kinds", "architecture"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))
            _require(len(getattr(self, name)) > 0, name, list(getattr(self, name)), "a non-empty list")
        for d in self.datasets:
            _require(d in DATASET_NAMES, "datasets", d, f"one of {', '.join(DATASET_NAMES)}")
        for k in self.kinds:
            _require(k in KINDS, "kinds", k, f"one of {', '.join(KINDS)}")
        for s in self.seeds:
            _require(isinstance(s, int) and not isinstance(s, bool) and s >= 0, "seeds", s, "integers >= 0")
        for b in self.sigma_b2:
            _require(_is_number(b) and math.isfinite(b) and b >= 0, "sigma_b2", b, "finite numbers >= 0")
        for a in self.architecture:
            families.get(a)
        _require(
            isinstance(self.channels, int) and not isinstance(self.channels, bool) and self.channels >= 1,
            "channels",
            self.channels,
            "an integer >= 1",
        )
        for name in ("sigma_w2", "sigma_b2", "depths", "seeds", "architecture"):
            values = getattr(self, name)
            _require(len(set(values)) == len(values), name, list(values), "a list without repeated values")
        _require(
            bool(self.results) and isinstance(self.results, str), "results", self.results, "a directory path or a URI"
        )
        if self.cascade_depth is not None:
            _require(
                isinstance(self.cascade_depth, int) and self.cascade_depth >= max(self.depths),
                "cascade_depth",
                self.cascade_depth,
                f"None or an integer >= the deepest depth {max(self.depths)}",
            )
        _require(
            self.resources.baseline_group == 1 or self.train.optimizer == "sgd",
            "train.optimizer",
            self.train.optimizer,
            "'sgd' when resources.baseline_group > 1 (grouped trainings step plain SGD on stacked weights)",
        )
        _require(
            "predictors" not in self.kinds or bool(self.predictor_names),
            "kinds",
            list(self.kinds),
            "a list with 'predictors' only when the grid names predictors that need a task (predictors = [...])",
        )
        _require(
            not (self.search.enabled and self.predictor_names),
            "predictors",
            list(self.predictors),
            "[] with search.enabled (predictor tasks run on a full grid; not built for the search yet)",
        )
        if self.search.enabled:
            self._check_search()
        if self.info_plane.enabled and self.info_plane.estimator == "bspline":
            widest = max(
                max(self.network(ds, self.sigma_w2[0], depth, self.sigma_b2[0]).layer_widths[1:])
                for ds in self.datasets
                for depth in self.depths
            )
            _require(
                widest <= BSPLINE_MAX_UNITS,
                "info_plane.estimator",
                "bspline",
                f"an estimator for layers of at most {BSPLINE_MAX_UNITS} units (order^n joint cells per sample); "
                f"this grid has layers of {widest}: use binning, adaptive, kde, ksg, dcor or density",
            )
        self.tasks()  # every network of the grid is validated here, before any work starts

    def _check_search(self) -> None:
        search = self.search
        _require(
            "cascade" in self.kinds,
            "kinds",
            list(self.kinds),
            "a list including 'cascade' when the search is on (the search starts from the cascades)",
        )
        if search.target_depth is not None:
            last = self.network(self.datasets[0], self.sigma_w2[0], self.deepest, self.sigma_b2[0]).cutoff_last_layer(
                self.cascade.cutoff_layers
            )
            _require(
                search.target_depth <= last,
                "search.target_depth",
                search.target_depth,
                f"at most {last}, the deepest layer the cutoff of the depth-{self.deepest} cascade looks at",
            )
        _require(
            len(self.depths) >= 2 or "baseline" not in self.kinds,
            "depths",
            list(self.depths),
            "at least two depths to search over",
        )

    @property
    def predictor_names(self) -> tuple[str, ...]:
        """The named predictors a predictor task runs (the cascade's cutoffs need none: they are read)."""
        return tuple(n for n in self.predictors if predictors.get(n).kind != "cascade")

    @property
    def predictor_depths(self) -> tuple[int, ...]:
        """The depths of the predictor tasks: every trained depth, and the cascade's depth."""
        return tuple(sorted({*self.depths, self.deepest}))

    @property
    def deepest(self) -> int:
        return self.cascade_depth or max(self.depths)

    def network(
        self, dataset: str, sigma_w2: float, depth: int, sigma_b2: float, architecture: str | None = None
    ) -> NetworkSpec:
        n_in, n_out = DATASET_SHAPES.get(dataset, (self.data.synthetic_inputs, 10))
        architecture = architecture or self.architecture[0]
        try:
            return NetworkSpec(
                sigma_w2=float(sigma_w2),
                depth=depth,
                sigma_b2=float(sigma_b2),
                widths=self.widths,
                n_inputs=n_in,
                n_outputs=n_out,
                architecture=architecture,
                channels=self.channels,
            )
        except ConfigError as e:
            if architecture == "mlp":
                raise
            raise ConfigError(f"architecture '{architecture}' on {dataset} at depth {depth}: {e}") from None

    def tasks(self) -> list[Task]:
        """All tasks of the grid, cascades first (so predictions arrive long before the ground truth)."""
        out = []
        if "cascade" in self.kinds:
            out += [
                self.cascade_task(ds, s, b, seed, arch)
                for arch in self.architecture
                for ds in self.datasets
                for b in self.sigma_b2
                for s in self.sigma_w2
                for seed in self.seeds
            ]
        if "baseline" in self.kinds:
            out += [
                self.baseline_task(ds, s, b, depth, seed, arch)
                for arch in self.architecture
                for ds in self.datasets
                for b in self.sigma_b2
                for s in self.sigma_w2
                for depth in self.depths
                for seed in self.seeds
            ]
        if "predictors" in self.kinds:
            out += [
                self.predictor_task(ds, s, b, depth, seed, arch)
                for arch in self.architecture
                for ds in self.datasets
                for b in self.sigma_b2
                for s in self.sigma_w2
                for depth in self.predictor_depths
                for seed in self.seeds
            ]
        return out

    def predictor_task(
        self, dataset: str, sigma_w2: float, sigma_b2: float, depth: int, seed: int, architecture: str | None = None
    ) -> Task:
        """The predictor task of one (dataset, σw², σb², depth, seed): every named predictor on that network."""
        return Task(
            "predictors",
            dataset,
            self.network(dataset, sigma_w2, depth, sigma_b2, architecture),
            seed,
            self.data,
            predictors=self.predictor_names,
        )

    def cascade_task(
        self, dataset: str, sigma_w2: float, sigma_b2: float, seed: int, architecture: str | None = None
    ) -> Task:
        """The cascade task of one (dataset, σw², σb², seed) on the grid's deepest network."""
        info = self.info_plane if self.info_plane.enabled else None
        return Task(
            "cascade",
            dataset,
            self.network(dataset, sigma_w2, self.deepest, sigma_b2, architecture),
            seed,
            self.data,
            cascade=self.cascade,
            info_plane=info,
        )

    def baseline_task(
        self, dataset: str, sigma_w2: float, sigma_b2: float, depth: int, seed: int, architecture: str | None = None
    ) -> Task:
        """The baseline training of one (dataset, σw², σb², depth, seed); with ``interpret`` on it also carries the
        cascade settings its trained network's cascade uses."""
        info = self.info_plane if self.info_plane.enabled else None
        interpret = self.interpret if self.interpret.enabled else None
        return Task(
            "baseline",
            dataset,
            self.network(dataset, sigma_w2, depth, sigma_b2, architecture),
            seed,
            self.data,
            cascade=self.cascade if interpret else None,
            train=self.train,
            info_plane=info,
            interpret=interpret,
        )

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))


ALL_PREDICTORS = predictors.names()  # the cascade's cutoffs (read), mean field, APJN, NTK, NASWOT, GradNorm, ZiCo

REGIMES = dict(
    sigma_w2=(0.5, 1.0, 1.5, 1.76, 2.5, 4.0, 6.0, 8.0),
    depths=(8, 16, 24, 32, 48, 64),
    datasets=("digits",),
    seeds=(0, 1),
    cascade=dict(eval_samples=200),
    train=dict(max_epochs=10, lr=0.01),
    predictors=ALL_PREDICTORS,
)
"""The settings the ``predictors-*`` regime presets share (docs/predictors.md, the regimes)."""

DEFAULT_GRID = dict(
    sigma_w2=(0.5, 1.0, 1.5, 1.76, 2.5, 4.0, 6.0, 8.0),
    depths=tuple(range(4, 49, 4)),
    widths="constant-256",
    data=dict(max_train_samples=4000),
    cascade=dict(eval_samples=500),
    train=dict(max_epochs=32, lr=0.01, ladder=(1, 2, 4, 8, 16, 32)),
)
"""The grid the ``default`` preset searches and ``default-full-grid`` runs in full: the same tasks (the same ids)."""

PRESETS: dict[str, dict[str, Any]] = {
    # End-to-end check in well under a minute on a laptop CPU (tests use it).
    "tiny": dict(
        sigma_w2=(0.5, 1.76, 3.0),
        depths=(3, 6),
        data=dict(max_train_samples=3000),
        cascade=dict(eval_samples=200),
        train=dict(max_epochs=2),
        results="results/tiny",
    ),
    # The embedded default: a search that places ℓ_train and the cutoff on both sides of the critical point on
    # MNIST-t10k, against a converged truth (issue 25, docs/budget.md): ℓ_train is read at the budgets 1, 2, 4 … 32
    # epochs off the same trainings, every rung resolved, so each σw² says whether (and from which budget) its
    # ℓ_train stops moving. 256 hidden units (a ninth of the cost per layer of 784) and SGD at 10⁻² so that this
    # fits ≈ 10 minutes on a 2-core CPU (measured: README, benchmarks/RESULTS.md). Depths to 48 because near the
    # critical point these networks train at every depth up to 48; σw² to 8 because the per-image cutoff falls
    # well below the target only there. 500 test images: the per-image cutoffs are those of 2,000 to within 0.3
    # layers at a quarter of the evaluation time (which grows with depth²).
    "default": dict(
        DEFAULT_GRID,
        search=dict(enabled=True, target_depth=36, sigma_w2_tolerance=0.05, resolve_rungs=True),
        results="results/default",
    ),
    # The default's grid in full (all 96 trainings) with every predictor on every network: the leaderboard against
    # the converged truth (README, "Is the cascade worth its cost?"; docs/predictors.md). Its cascades and
    # trainings are the default's tasks (the same ids), so it also checks the search against the full grid.
    "default-full-grid": dict(DEFAULT_GRID, predictors=ALL_PREDICTORS, results="results/default-full-grid"),
    # The paper's fig. 5 setting: a wide tanh network of 10 hidden layers (depth 11) trained 20 epochs, here on
    # MNIST-t10k's 8,000 training images, at an ordered, the critical and a chaotic σw², with cascades of the
    # trained networks (retraced decisions, perfect inputs). SGD at lr 0.01 without stopping at the threshold.
    "paper-fig5": dict(
        sigma_w2=(0.5, 1.76, 4.0),
        depths=(11,),
        cascade_depth=13,
        kinds=("cascade", "baseline"),
        train=dict(max_epochs=20, lr=0.01, stop_at_threshold=False),
        interpret=dict(enabled=True),
        results="results/paper-fig5",
    ),
    # The architecture axis on a CPU: the MLP, the CNN and the ResNet (16 channels) side by side at an ordered,
    # two near-critical and a chaotic σw² (README, benchmarks/RESULTS.md). Adam at 3·10⁻³ for 8 epochs: with the
    # default's SGD at 10⁻³ for 5 epochs no CNN or ResNet got past 0.19 (their average-pooled tanh outputs start
    # almost the same for every image); with Adam the depth-6 CNN reached 0.86 (measured at σw² = 1.76).
    "architectures": dict(
        sigma_w2=(0.5, 1.0, 1.76, 3.0),
        depths=(6, 12, 18),
        architecture=("mlp", "cnn", "resnet"),
        channels=16,
        data=dict(max_train_samples=4000),
        cascade=dict(eval_samples=500),
        train=dict(max_epochs=8, optimizer="adam", lr=3e-3),
        results="results/architectures",
    ),
    # Which predictor to trust (docs/predictors.md): every predictor of infoflow_ray.predictors beside the cascade
    # on the same untrained networks, on MNIST-t10k and scikit-learn's bundled 8×8 digits (no download), in a few
    # minutes on a 2-core CPU. SGD at 10⁻² for 5 epochs: at the default's 10⁻³ the 1,437 digits images (23 steps
    # per epoch) train nothing. The leaderboard: jobs/analyze.py.
    "predictors-laptop": dict(
        sigma_w2=(0.5, 1.0, 1.5, 1.76, 2.5, 4.0),
        depths=(4, 8, 16, 24),
        datasets=("mnist_t10k", "digits"),
        data=dict(max_train_samples=2000),
        cascade=dict(eval_samples=200),
        train=dict(max_epochs=5, lr=0.01),
        predictors=ALL_PREDICTORS,
        results="results/predictors-laptop",
    ),
    # The regimes where the cascade should earn its cost (docs/predictors.md): where mean field's large-width,
    # fully connected assumptions weaken or break, and deep enough to reach the chaotic side's fall-off. On
    # scikit-learn's 8×8 digits (64 inputs: 'wide' = 64 units), SGD at 10⁻² for 10 epochs (ladder 1, 2, 4, 8, 10),
    # depths to 64, seeds 0 and 1; each in its own folder (one leaderboard each). Measured: benchmarks/RESULTS.md.
    "predictors-chaotic": dict(REGIMES, results="results/predictors-chaotic"),
    # 32 hidden units: at 16 (or at SGD 10⁻² for 10 epochs) hardly a cell reached the threshold (benchmarks/RESULTS.md),
    # so SGD at 5·10⁻² for 20 epochs (ladder 1, 2, 4, 8, 16, 20).
    "predictors-narrow": dict(
        REGIMES, widths="constant-32", train=dict(max_epochs=20, lr=0.05), results="results/predictors-narrow"
    ),
    "predictors-shrinking": dict(REGIMES, widths="shrinking", results="results/predictors-shrinking"),
    # The CNN and the ResNet (16 channels): with SGD neither trains (see 'architectures'), so Adam at 3·10⁻³; one seed.
    "predictors-conv": dict(
        REGIMES,
        seeds=(0,),
        sigma_w2=(0.5, 1.0, 1.76, 3.0, 6.0),
        depths=(8, 16, 32),
        architecture=("cnn", "resnet"),
        channels=16,
        train=dict(max_epochs=10, optimizer="adam", lr=3e-3),
        results="results/predictors-conv",
    ),
    # The same comparison at the paper's scale (fig. 3's σw² and depths, 3 seeds, 200 epochs): GPU clusters.
    "predictors-paper": dict(
        sigma_w2=value_range(0.1, 4.0, 0.1),
        depths=tuple(range(10, 201, 10)),
        datasets=("mnist", "digits"),
        seeds=(0, 1, 2),
        cascade=dict(eval_samples=1000, tf32_training=True),
        train=dict(max_epochs=200),
        predictors=ALL_PREDICTORS,
        results="results/predictors-paper",
    ),
    # The paper's grids (fig. 3): σw² 0.1..4 step 0.1, depths to 200, 200 epochs. GPU clusters.
    "paper-mnist-wide": dict(
        sigma_w2=value_range(0.1, 4.0, 0.1),
        depths=tuple(range(10, 201, 10)),
        datasets=("mnist",),
        widths="wide",
        cascade=dict(eval_samples=1000, tf32_training=True),
        train=dict(max_epochs=200),
        results="results/paper-mnist-wide",
    ),
    "paper-cifar-shrinking": dict(
        sigma_w2=value_range(0.1, 4.0, 0.1),
        depths=tuple(range(10, 201, 10)),
        datasets=("cifar10_gray",),
        widths="shrinking",
        cascade=dict(eval_samples=1000, tf32_training=True),
        train=dict(max_epochs=200),
        results="results/paper-cifar-shrinking",
    ),
}

_NESTED = {
    "data": DataOptions,
    "cascade": CascadeSpec,
    "train": TrainSpec,
    "resources": ResourceSpec,
    "info_plane": InfoPlaneSpec,
    "interpret": InterpretSpec,
    "search": SearchSpec,
}


def check_keys(where: str, values: dict[str, Any], cls: type) -> None:
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in allowed:
            raise ConfigError(f"unknown key '{key}' in {where}; allowed: {', '.join(allowed)}")


def merge(base: dict[str, Any], override: dict[str, Any], nested: dict[str, type] = _NESTED) -> dict[str, Any]:
    """``override`` on top of ``base``, one level deep for the ``nested`` sections (the grid's: data, cascade,
    train, resources, info_plane, search)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in override.items():
        if key in nested and isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = value
    return out


def with_sections(where: str, values: dict[str, Any], cls: type, nested: dict[str, type]) -> dict[str, Any]:
    """``values`` with every key checked against ``cls``'s fields and each ``nested`` section (a table of
    settings) built into its dataclass: the keyword arguments of ``cls``."""
    check_keys(where, {k: v for k, v in values.items() if k != "name"}, cls)
    kwargs = dict(values)
    for key, section_cls in nested.items():
        section = kwargs.get(key, {})
        if not isinstance(section, dict):
            raise ConfigError(f"'{key}' must be a table of settings, got {section!r}")
        check_keys(f"[{key}]", section, section_cls)
        kwargs[key] = section_cls(**section)
    return kwargs


def layered_values(
    presets: dict[str, dict[str, Any]],
    preset: str,
    config_file: str | Path | None,
    overrides: dict[str, Any] | None,
    nested: dict[str, type],
) -> dict[str, Any]:
    """The preset's values, then the config file's, then ``overrides`` (e.g. CLI flags) — later ones win."""
    if preset not in presets:
        raise ConfigError(f"unknown preset '{preset}'; choose one of {', '.join(presets)}")
    values = presets[preset]
    if config_file is not None:
        values = merge(values, load_config_file(config_file), nested)
    return merge(values, overrides or {}, nested)


def build_grid(name: str, values: dict[str, Any]) -> GridSpec:
    """A validated GridSpec from plain values (preset + config file + CLI merged)."""
    kwargs = with_sections("the grid config", values, GridSpec, _NESTED)
    if isinstance(kwargs.get("widths"), list):
        kwargs["widths"] = tuple(kwargs["widths"])
    try:
        return GridSpec(name=name, **kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"grid config is incomplete: {exc}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Grid values from a TOML (.toml) or YAML (.yaml/.yml) file; ranges may be given as {start, stop, step}."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; give a .toml or .yaml file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file '{path}' must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config file '{path}' is malformed: {first_line}") from None
    except Exception as exc:  # yaml.YAMLError and friends
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config file '{path}' is malformed: {first_line}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file '{path}' must hold a table of settings, got {type(values).__name__}")
    for key in ("sigma_w2", "sigma_b2", "depths"):
        if isinstance(values.get(key), dict):
            r = values[key]
            values[key] = value_range(r["start"], r["stop"], r["step"])
            if key == "depths":
                values[key] = tuple(int(v) for v in values[key])
    return values


def resolve_grid(
    preset: str = "default", config_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> GridSpec:
    """Preset, then config file, then overrides (e.g. CLI flags) — later ones win."""
    return build_grid(preset, layered_values(PRESETS, preset, config_file, overrides, _NESTED))

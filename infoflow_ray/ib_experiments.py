"""Seed 002's and seed 004's information-plane experiments: their data, networks, and training with snapshots.

Pure torch (no Ray): ``sweep/ib_job.py`` runs the network copies and the estimates of these functions in
parallel and stores the points in the ``info_plane`` table.

Seed 002 (Shwartz-Ziv & Tishby's toy setting, as reproduced in seed 002):
- data: N = 1,000 samples of 12 integer inputs, each uniform on {−1, 0, 1, 2, 3}; the label is
  y = [mean(x) + N(0, 0.1²) > 0.7] ('synthetic_simple', ≈ 76 % ones), or seed 002's "more complicated"
  decision function ('synthetic_complicated', see ``synthetic_task``);
- networks: 12-5-1 (warm-up) and the Tishby-like 12-10-7-5-4-3-1, tanh after every layer (the output too);
- training: MSE against y (warm-up) or 2y − 1, SGD at lr 0.2, one random minibatch of 101 per step. Seed 002
  calls a step an "epoch" (1,000 of them for the 7-layer network); here an epoch is a pass over the training set,
  and the ``info_plane`` rows hold the SGD steps in their ``step`` column (``epoch`` null).
- estimates: every layer's activations binned on 50 equal bins over [−1, 1]; the "simple" estimator
  (``estimators.binning.binned_mi`` of one network) and the "extended" one over 5 copies
  (``estimators.binning.extended_binned_mi``: each input goes through a copy drawn at random).

Seed 002's code, as written, has three properties that a reader might take for bugs; each is an option here:
- its copies are ``copy.deepcopy`` of one network, so they start equal and differ only by their minibatches
  (``copy_init='shared'``, the default here too; 'independent' draws each copy's weights from its own seed);
- it never calls ``zero_grad``, so every step applies the sum of all gradients so far
  (``accumulate_gradients=True``; off by default: plain SGD, as the report describes);
- its "complicated" label sums ``X[:, 2::2] * X[:, 3::2]`` over the whole matrix (no ``axis``), a constant, so the
  label depends on x_0 alone (``complicated_as_written=True``; off by default: the per-sample sum).

Seed 004: MNIST (MNIST-t10k on a CPU), 784-256-256-10 tanh, snapshots at iterations 0, 5, 10, 20, 1,000 and 9,000;
the two hidden layers and the output are estimated with density models (``infoflow_ray.estimators.density``) fitted
on the training images' activations and evaluated on the test images', beside binning of the test activations.

Initialisation: this project's Gaussian init, W ~ N(0, σw²/fan_in), b ~ N(0, σb²). Seed 002 and 004 used
PyTorch's default uniform init; its weight variance is 1/(3·fan_in), hence the default σw² = 1/3. Units:
activations are tanh outputs in (−1, 1); losses in the loss's own units (MSE; cross-entropy in nats).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from infoflow_ray import estimators, families, seeding
from infoflow_ray.config import NetworkSpec
from infoflow_ray.data import DATASET_NAMES, load_dataset
from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators.density import DensityFit, DensitySpec, discretise, fit_entropy

WARMUP_WIDTHS = (12, 5, 1)
TISHBY_WIDTHS = (12, 10, 7, 5, 4, 3, 1)
SEED004_WIDTHS = (784, 256, 256, 10)
SEED004_SNAPSHOTS = (0, 5, 10, 20, 1000, 9000)
SYNTHETIC = ("synthetic_simple", "synthetic_complicated")
LOSSES = ("mse", "cross_entropy")
TARGETS = ("pm1", "01")
COPY_INITS = ("shared", "independent")


def synthetic_task(kind: str, n: int = 1000, seed: int = 0, as_written: bool = False) -> tuple[Tensor, Tensor]:
    """Seed 002's synthetic task: inputs (n, 12) float32 with integer values in {−1, …, 3}, labels (n,) int64 in {0, 1}.

    kind 'synthetic_simple': y = [mean(x) + ε > 0.7], ε ~ N(0, 0.1²). With x uniform, mean(x) has mean 1 and variance
    2/12, so P(y = 1) = Φ(0.3 / √(2/12 + 0.01)) ≈ 0.762.
    kind 'synthetic_complicated': s = Σ_k x_{2k} x_{2k+1} over k = 1..5 (pairs (2,3), (4,5), …, (10,11)) − x_0²;
    y = [s + ε > mean(s)], ε ~ N(0, 0.2²). ``as_written`` reproduces seed 002's code, whose sum has no axis: the
    pair term is one number for the whole sample, so y depends on −x_0² alone.
    """
    if kind not in SYNTHETIC:
        raise ConfigError(f"synthetic task must be one of {', '.join(SYNTHETIC)}, got {kind!r}")
    if not (isinstance(n, int) and n >= 2):
        raise ConfigError(f"n must be an integer >= 2, got {n!r}")
    g = seeding.generator(seed, "synthetic_task")
    x = torch.randint(5, (n, 12), generator=g, dtype=torch.int64) - 1
    xf = x.double()
    if kind == "synthetic_simple":
        y = xf.mean(dim=1) + 0.1 * torch.randn(n, generator=g, dtype=torch.float64) > 0.7
    else:
        pairs = xf[:, 2::2] * xf[:, 3::2]  # (n, 5): x2·x3, x4·x5, …, x10·x11
        pair_sum = pairs.sum() if as_written else pairs.sum(dim=1)
        s = pair_sum - xf[:, 0] ** 2
        y = s + 0.2 * torch.randn(n, generator=g, dtype=torch.float64) > s.mean()
    return x.float(), y.long()


@dataclass(frozen=True)
class ExperimentSpec:
    """One information-plane experiment: a network trained in ``copies`` copies, its layers estimated at snapshots.

    Args:
        name: the experiment's name in tables and figures (e.g. 'seed002-tishby').
        data: 'synthetic_simple' | 'synthetic_complicated' (seed 002's task, ``n_samples`` samples; the estimates
            use all of them, as seed 002 does) or a dataset name (e.g. 'mnist_t10k': trained on its training
            split, binning and density evaluated on its test split, density models fitted on the training split).
        widths: n_0..n_L, input first; tanh after every layer.
        steps: SGD steps (one minibatch each).
        record: the steps to snapshot (a tuple), or k to snapshot every k steps from 0 to ``steps``.
        lr, batch_size, optimizer ('sgd' | 'adam'): the training.
        loss: 'mse' on the single output against ``targets`` ('pm1': 2y − 1, '01': y), or 'cross_entropy' on the
            outputs as logits.
        copies: networks trained independently (seed 002's extended estimator needs several).
        estimators: names of ``infoflow_ray.estimators`` (``estimators.names()``); 'binning_extended' needs copies ≥ 2.
        n_bins, bin_range: the binning estimators' bins (seed 002: 50 over [−1, 1]); 'density' uses its own
            (``density.n_bins``, 32 in seed 004).
        density: the density-model settings (``estimators.density.DensitySpec`` as a dict), when 'density' is
            among the estimators.
        accumulate_gradients, copy_init, complicated_as_written: seed 002's code as written (module docstring).
    """

    name: str
    data: str = "synthetic_simple"
    widths: tuple[int, ...] = TISHBY_WIDTHS
    steps: int = 1000
    record: tuple[int, ...] | int = 1
    lr: float = 0.2
    batch_size: int = 101
    optimizer: str = "sgd"
    loss: str = "mse"
    targets: str = "pm1"
    copies: int = 1
    copy_init: str = "shared"
    estimators: tuple[str, ...] = ("binning",)
    n_bins: int = 50
    bin_range: tuple[float, float] = (-1.0, 1.0)
    sigma_w2: float = 1 / 3
    sigma_b2: float = 0.01
    n_samples: int = 1000
    seed: int = 0
    accumulate_gradients: bool = False
    complicated_as_written: bool = False
    density: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        def require(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"experiment '{self.name}': {name} must be {allowed}, got {getattr(self, name)!r}")

        def positive_int(name: str) -> None:
            value = getattr(self, name)
            require(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, "an integer >= 1")

        for name in ("steps", "batch_size", "copies", "n_bins", "n_samples"):
            positive_int(name)
        require(isinstance(self.name, str) and bool(self.name), "name", "a non-empty string")
        require(self.data in SYNTHETIC + DATASET_NAMES, "data", f"one of {', '.join(SYNTHETIC + DATASET_NAMES)}")
        object.__setattr__(self, "widths", tuple(self.widths))
        require(
            len(self.widths) >= 2 and all(isinstance(w, int) and w >= 1 for w in self.widths),
            "widths",
            "at least two positive integers (input first)",
        )
        if self.data in SYNTHETIC:
            require(self.widths[0] == 12, "widths", "a tuple starting with 12 (the synthetic task's inputs)")
        if isinstance(self.record, int):
            positive_int("record")
        else:
            object.__setattr__(self, "record", tuple(self.record))
            require(
                len(self.record) > 0 and all(isinstance(s, int) and 0 <= s <= self.steps for s in self.record),
                "record",
                f"an integer >= 1 or a tuple of steps in 0..{self.steps}",
            )
        require(math.isfinite(self.lr) and self.lr > 0, "lr", "a finite number > 0")
        require(self.optimizer in ("sgd", "adam"), "optimizer", "'sgd' or 'adam'")
        require(self.loss in LOSSES, "loss", f"one of {', '.join(LOSSES)}")
        require(self.targets in TARGETS, "targets", f"one of {', '.join(TARGETS)}")
        require(self.copy_init in COPY_INITS, "copy_init", f"one of {', '.join(COPY_INITS)}")
        if self.loss == "mse":
            require(self.widths[-1] == 1, "widths", "a tuple ending with 1 output for the 'mse' loss (binary task)")
        object.__setattr__(self, "estimators", tuple(self.estimators))
        require(
            len(self.estimators) > 0 and set(self.estimators) <= set(estimators.names()),
            "estimators",
            f"a non-empty list of {', '.join(estimators.names())}",
        )
        if "binning_extended" in self.estimators:
            require(self.copies >= 2, "copies", "at least 2 for the estimator 'binning_extended'")
        object.__setattr__(self, "bin_range", tuple(float(v) for v in self.bin_range))
        require(
            len(self.bin_range) == 2 and self.bin_range[0] < self.bin_range[1],
            "bin_range",
            "(low, high) with low < high",
        )
        require(math.isfinite(self.sigma_w2) and self.sigma_w2 > 0, "sigma_w2", "a finite number > 0")
        require(math.isfinite(self.sigma_b2) and self.sigma_b2 >= 0, "sigma_b2", "a finite number >= 0")
        if "density" in self.estimators:
            self.density_spec()  # validates the settings now, not in a worker

    @property
    def snapshot_steps(self) -> tuple[int, ...]:
        """The recorded steps, sorted, without repeats."""
        if isinstance(self.record, int):
            return tuple(sorted(set(range(0, self.steps + 1, self.record)) | {self.steps}))
        return tuple(sorted(set(self.record)))

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def profile(self) -> str:
        """The widths as the ``profile`` column writes them, e.g. '12-10-7-5-4-3-1'."""
        return "-".join(map(str, self.widths))

    def network(self) -> NetworkSpec:
        return NetworkSpec(
            sigma_w2=self.sigma_w2,
            depth=self.depth,
            sigma_b2=self.sigma_b2,
            widths=self.widths,
            n_inputs=self.widths[0],
            n_outputs=self.widths[-1],
        )

    def density_spec(self) -> DensitySpec:
        try:
            return DensitySpec(**self.density)
        except TypeError as e:
            raise ConfigError(f"experiment '{self.name}': density settings: {e}") from None

    def training_config(self) -> dict:
        """What the trained networks depend on (the input of every point's task id): not the estimators."""
        config = dataclasses.asdict(self)
        for name in ("name", "estimators", "n_bins", "bin_range", "density"):
            config.pop(name)
        return config


@dataclass(frozen=True)
class ExperimentData:
    """train_x (N, n_0) float32, train_y (N,) int64: what the networks train on. probe_x/probe_y: what binning and
    the density models' held-out entropies are evaluated on (the same tensors for seed 002's task). x_ids: equal
    ids for equal probe inputs (seed 002's inputs can repeat), None when every input is distinct."""

    train_x: Tensor
    train_y: Tensor
    probe_x: Tensor
    probe_y: Tensor
    x_ids: Tensor | None


def experiment_data(spec: ExperimentSpec) -> ExperimentData:
    """The data of ``spec``, on the CPU (seed 002's task is drawn from ``spec.seed``)."""
    if spec.data in SYNTHETIC:
        x, y = synthetic_task(spec.data, spec.n_samples, spec.seed, spec.complicated_as_written)
        return ExperimentData(x, y, x, y, torch.unique(x, dim=0, return_inverse=True)[1])
    data = load_dataset(spec.data)
    if data.n_inputs != spec.widths[0] or data.n_classes != spec.widths[-1]:
        raise ConfigError(
            f"experiment '{spec.name}': widths {spec.profile} do not fit {spec.data} "
            f"({data.n_inputs} inputs, {data.n_classes} classes)"
        )
    return ExperimentData(data.train_x, data.train_y, data.test_x, data.test_y, None)


@dataclass(frozen=True)
class Snapshots:
    """One trained copy: per recorded step, the activations of layers 1..L (float32 CPU).

    train[i][l−1]: layer l on the training inputs at steps[i], (N_train, n_l); probe[i][l−1] on the probe inputs
    (the same object when they are the same inputs). loss: the training loss on all training inputs; accuracy: on
    the probe inputs (binary: sign of 2y − 1 agrees; classes: argmax).
    """

    steps: tuple[int, ...]
    train: list[list[Tensor]]
    probe: list[list[Tensor]]
    loss: list[float]
    accuracy: list[float]


def _targets(spec: ExperimentSpec, y: Tensor) -> Tensor:
    if spec.loss == "cross_entropy":
        return y
    return (2.0 * y - 1.0 if spec.targets == "pm1" else y.float()).unsqueeze(1)


def _loss(spec: ExperimentSpec, output: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(output, target) if spec.loss == "mse" else F.cross_entropy(output, target)


def _accuracy(spec: ExperimentSpec, output: Tensor, y: Tensor) -> float:
    if spec.loss == "cross_entropy":
        return (output.argmax(dim=1) == y).double().mean().item()
    threshold = 0.0 if spec.targets == "pm1" else 0.5
    return ((output[:, 0] > threshold).long() == y).double().mean().item()


def train_copy(spec: ExperimentSpec, copy: int, data: ExperimentData, device: torch.device | str = "cpu") -> Snapshots:
    """Train copy ``copy`` of ``spec``'s network for ``spec.steps`` steps, snapshotting at ``spec.snapshot_steps``.

    Each step draws ``batch_size`` training samples without replacement (seed 002: the head of a fresh permutation)
    from the copy's own stream, so copies differ by their minibatches (and, with copy_init 'independent', their
    initial weights). Deterministic given (spec, copy) on one device.
    """
    init_seed = spec.seed if spec.copy_init == "shared" else seeding.derived_seed(spec.seed, "ib_copy", copy)
    network = families.build(spec.network(), init_seed, device)
    optimizer = (torch.optim.SGD if spec.optimizer == "sgd" else torch.optim.Adam)(network.parameters(), lr=spec.lr)
    batches = seeding.generator(spec.seed, "ib_batches", copy)
    x, y = data.train_x.to(device), data.train_y.to(device)
    target = _targets(spec, y)
    same_probe = data.probe_x is data.train_x
    probe_x, probe_y = data.probe_x.to(device), data.probe_y.to(device)
    wanted = set(spec.snapshot_steps)
    snaps = Snapshots(spec.snapshot_steps, [], [], [], [])
    batch = min(spec.batch_size, len(x))
    for step in range(spec.steps + 1):
        if step in wanted:
            train_acts = [a.float().cpu() for a in network.activations(x)[1:]]
            probe_acts = train_acts if same_probe else [a.float().cpu() for a in network.activations(probe_x)[1:]]
            snaps.train.append(train_acts)
            snaps.probe.append(probe_acts)
            with torch.no_grad():
                snaps.loss.append(_loss(spec, train_acts[-1].to(device), target).item())
            snaps.accuracy.append(_accuracy(spec, probe_acts[-1].to(device), probe_y))
        if step == spec.steps:
            break
        index = torch.randperm(len(x), generator=batches)[:batch].to(device)
        if not spec.accumulate_gradients:
            optimizer.zero_grad(set_to_none=True)
        _loss(spec, network(x[index]), target[index]).backward()
        optimizer.step()
    return snaps


def estimator_params(spec: ExperimentSpec, estimator: str) -> dict:
    """The parameters ``estimator`` runs with in ``spec`` (they go into the rows' ``param`` and the task ids): the
    experiment's settings the estimator takes (``Estimator.settings``), the density settings spelt out."""
    settings = estimators.get(estimator).settings
    params = {name: value for name, value in (("n_bins", spec.n_bins), ("range", spec.bin_range)) if name in settings}
    if "density" in settings:
        params.update(dataclasses.asdict(spec.density_spec()))
    return params


def estimate_snapshot(
    spec: ExperimentSpec,
    estimator: str,
    layers_by_copy: list[list[Tensor]],
    labels: Tensor,
    x_ids: Tensor | None,
    inputs: Tensor,
    step: int,
) -> list[tuple[float, float]]:
    """[(I(X;T_l), I(T_l;Y))] for l = 1..L at one snapshot (nats; 'dcor': dCor values), on the probe inputs.

    layers_by_copy[c][l−1]: layer l of copy c, (N, n_l). 'binning' and the single-network estimators use copy 0
    (seed 002's "simple" estimator); 'binning_extended' uses every copy, each input through a copy drawn with a
    seed of (spec.seed, step). 'density' is not estimated here: its two models train as separate tasks
    (``fit_density_model``).
    """
    if estimator == "density":
        raise ConfigError("estimate_snapshot does not run 'density'; use fit_density_model")
    chosen, params = estimators.get(estimator), estimator_params(spec, estimator)
    seed = seeding.derived_seed(spec.seed, "ib_extended", step)
    return chosen(layers_by_copy, labels, inputs=inputs, x_ids=x_ids, seed=seed, **params)


def fit_density_model(
    spec: ExperimentSpec,
    train_layer: Tensor,
    probe_layer: Tensor,
    train_y: Tensor,
    probe_y: Tensor,
    conditional: bool,
    seed: int,
    device: torch.device | str = "cpu",
) -> DensityFit:
    """One of a (snapshot, layer)'s two density models: H(T) (``conditional`` False) or H(T|Y), in nats, as the
    mean negative log-likelihood of the probe activations under a model fitted to the training activations (both
    discretised as seed 004: ``DensitySpec.n_bins`` bins over ``DensitySpec.value_range``)."""
    dspec = spec.density_spec()
    train_codes = discretise(train_layer, dspec.n_bins, dspec.value_range)
    probe_codes = discretise(probe_layer, dspec.n_bins, dspec.value_range)
    labels = {}
    if conditional:
        n_classes = int(max(train_y.max(), probe_y.max())) + 1
        labels = {"labels_train": train_y, "labels_test": probe_y, "n_classes": n_classes}
    return fit_entropy(train_codes, probe_codes, dspec, seed, device=device, **labels)

"""Typed, frozen configuration of the science: the network, its cascade, its baseline training.

Every value is validated here, where it enters, so that a bad value fails in one line naming the field, the
value and what is allowed — before any compute is spent. The sweep's grid config (``infoflow_ray.sweep.grid``)
builds on these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from infoflow_ray.errors import require as _require

LOSSES = ("logits", "softmax_twice")
OPTIMIZERS = ("sgd", "adam")
CUTOFF_LAYER_RANGES = ("constant_width", "all")

WidthProfile = str | tuple[int, ...]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_float(field: str, value: float) -> None:
    _require(_is_number(value) and math.isfinite(value) and value > 0, field, value, "a finite number > 0")


def _positive_int(field: str, value: int) -> None:
    _require(isinstance(value, int) and not isinstance(value, bool) and value > 0, field, value, "an integer > 0")


@dataclass(frozen=True)
class NetworkSpec:
    """The network under study (method §1) and its family (``infoflow_ray.families``).

    ``depth`` is the number of layers L, head included; weights are drawn ``W_ij ~ N(0, sigma_w2 / fan_in)``,
    biases ``b_i ~ N(0, sigma_b2)``. ``architecture`` names the family, which owns the sizes and shapes:
    'mlp' (the tanh MLP; ``widths`` a profile name or an explicit tuple of L+1 widths, input first, output last),
    'resmlp' (the same widths with a_l = a_{l−1} + tanh(W a_{l−1} + b) wherever fan_in = fan_out), or the
    convolutional 'cnn' / 'resnet' on square images of ``channels`` channels (``families.conv``; ``widths`` does
    not apply to them). Generic values are checked here, then the family's own (``Family.check``).
    """

    sigma_w2: float
    depth: int
    sigma_b2: float = 0.05
    widths: WidthProfile = "wide"
    n_inputs: int = 784
    n_outputs: int = 10
    architecture: str = "mlp"
    channels: int = 64

    def __post_init__(self) -> None:
        family = self.family
        _positive_int("channels", self.channels)
        _positive_float("sigma_w2", self.sigma_w2)
        _require(
            isinstance(self.sigma_b2, (int, float)) and math.isfinite(self.sigma_b2) and self.sigma_b2 >= 0,
            "sigma_b2",
            self.sigma_b2,
            "a finite number >= 0",
        )
        _positive_int("depth", self.depth)
        _positive_int("n_inputs", self.n_inputs)
        _positive_int("n_outputs", self.n_outputs)
        if isinstance(self.widths, list):
            object.__setattr__(self, "widths", tuple(self.widths))
        family.check(self)

    @property
    def family(self):
        """The ``families.base.Family`` of ``architecture``: builds the network, trains its cascades, knows its
        sizes. (Imported here, not at the top: the family modules import this module, and the registry is a leaf
        that imports nothing of theirs, so no import cycle runs.)"""
        from infoflow_ray.family_registry import get

        return get(self.architecture)

    @property
    def layer_widths(self) -> tuple[int, ...]:
        """Units n_0..n_L of each layer's activations (n_0 = inputs, n_L = outputs; a convolutional layer's
        C·h·w), length depth+1 (``Family.layer_widths``)."""
        return self.family.layer_widths(self)

    @property
    def profile_name(self) -> str:
        """A short label of the architecture, for tables (the ``profile`` column): 'wide', 'shrinking' or
        'custom' for the MLP; 'resmlp-wide', …; 'cnn-c64', 'resnet-c64' (``Family.profile_name``)."""
        return self.family.profile_name(self)

    def cutoff_last_layer(self, layer_range: str = "constant_width") -> int:
        """Deepest layer the cutoff is taken over (``Family.cutoff_last_layer``): with ``constant_width`` the
        layers before a head that changes the shape (the reference drops wide's 784 → 400 → 10 head: L−2), with
        ``all`` every layer L."""
        return self.family.cutoff_last_layer(self, layer_range)


@dataclass(frozen=True)
class CascadeSpec:
    """Training and evaluation of the decoder cascade (method §2–4).

    ``eval_samples``: number of held-out test images the entropies are computed on (None = whole test split;
    the reference used 100). ``sigma_floor_rel``: the differential-entropy σ floor in units of the uniform
    pixel mass 1/n_pixels. ``strategy``: how decoders are trained — 'layerwise' (a few layers at a time over
    the whole epoch, cache friendly: best on CPU), 'lockstep' (all layers per batch as batched matmuls: best on
    GPU), 'auto' (by device). All strategies train the same decoders on the same batch sequence.
    ``tf32_training``: on CUDA, train the decoders with TF32 tensor-core matmuls (10-bit mantissa operands,
    float32 accumulation); no effect on a CPU. Measured (benchmarks/RESULTS.md, "bench_precision"): cutoffs
    unchanged, KL curves within 7e-4 relative, 50× below the spread over seeds. The reconstructions are always
    evaluated in float32: TF32 there moves the differential entropy of collapsed layers by up to 3 nats.
    """

    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 64
    eval_samples: int | None = None
    rtol: float = 0.005
    atol: float = 1e-8
    sigma_floor_rel: float = 1e-5
    cutoff_layers: Literal["constant_width", "all"] = "constant_width"
    stored_images: int = 6
    strategy: Literal["auto", "layerwise", "lockstep"] = "auto"
    tf32_training: bool = False

    def __post_init__(self) -> None:
        _positive_int("cascade.epochs", self.epochs)
        _require(isinstance(self.tf32_training, bool), "cascade.tf32_training", self.tf32_training, "true or false")
        _positive_float("cascade.lr", self.lr)
        _positive_int("cascade.batch_size", self.batch_size)
        if self.eval_samples is not None:
            _require(
                isinstance(self.eval_samples, int) and self.eval_samples >= 2,
                "cascade.eval_samples",
                self.eval_samples,
                "None (whole test split) or an integer >= 2",
            )
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            _require(
                isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
                f"cascade.{name}",
                value,
                "a finite number >= 0",
            )
        _positive_float("cascade.sigma_floor_rel", self.sigma_floor_rel)
        _require(
            self.cutoff_layers in CUTOFF_LAYER_RANGES,
            "cascade.cutoff_layers",
            self.cutoff_layers,
            f"one of {', '.join(CUTOFF_LAYER_RANGES)}",
        )
        _require(
            isinstance(self.stored_images, int) and self.stored_images >= 0,
            "cascade.stored_images",
            self.stored_images,
            "an integer >= 0",
        )
        _require(
            self.strategy in ("auto", "layerwise", "lockstep"),
            "cascade.strategy",
            self.strategy,
            "one of auto, layerwise, lockstep",
        )


@dataclass(frozen=True)
class TrainSpec:
    """Baseline training, the ground truth (method §1): plain SGD, cross-entropy, test accuracy every epoch.

    ``loss``: 'logits' applies cross-entropy to the network output (the last tanh layer); 'softmax_twice'
    reproduces the reference, which applies cross-entropy to the softmax of that output. Training stops at
    ``accuracy_threshold`` (if ``stop_at_threshold``) or after ``max_epochs``. ``optimizer``: 'sgd' (plain SGD,
    the paper's baselines) or 'adam' (Adam with torch's default betas; a hyperparameter the tuning job searches).

    ``ladder``: the training budgets B (epochs, increasing, the last at most ``max_epochs``) at which ℓ_train is
    read off the same trainings (docs/budget.md): a training that first reached the threshold at epoch e is
    trainable within every B ≥ e. None: 5, 10, 20, … (doubling; 1, 2, 4, … for budgets up to 10 epochs) below
    ``max_epochs``, then ``max_epochs`` (``budgets``). The ladder never changes a training, so it is not part of a
    task's id.
    """

    max_epochs: int = 200
    lr: float = 1e-3
    batch_size: int = 64
    accuracy_threshold: float = 0.4
    loss: Literal["logits", "softmax_twice"] = "logits"
    stop_at_threshold: bool = True
    optimizer: Literal["sgd", "adam"] = "sgd"
    ladder: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _positive_int("train.max_epochs", self.max_epochs)
        if self.ladder is not None:
            object.__setattr__(self, "ladder", check_ladder(self.ladder, self.max_epochs))
        _positive_float("train.lr", self.lr)
        _positive_int("train.batch_size", self.batch_size)
        _require(
            _is_number(self.accuracy_threshold) and 0 < self.accuracy_threshold <= 1,
            "train.accuracy_threshold",
            self.accuracy_threshold,
            "a number in (0, 1]",
        )
        _require(self.loss in LOSSES, "train.loss", self.loss, f"one of {', '.join(LOSSES)}")
        _require(self.optimizer in OPTIMIZERS, "train.optimizer", self.optimizer, f"one of {', '.join(OPTIMIZERS)}")

    @property
    def budgets(self) -> tuple[int, ...]:
        """The rungs of the budget ladder in epochs, increasing: ``ladder``, or the default doubling one."""
        return self.ladder if self.ladder is not None else default_ladder(self.max_epochs)


def default_ladder(max_epochs: int, first: int | None = None) -> tuple[int, ...]:
    """``first``, 2·first, 4·first, … below ``max_epochs``, then ``max_epochs``; ``first`` defaults to 5 epochs, 1
    for budgets of 10 epochs or less (200 → 5, 10, 20, 40, 80, 160, 200; 5 → 1, 2, 4, 5; 1 → 1)."""
    if first is None:
        first = 5 if max_epochs > 10 else 1
    rungs = []
    budget = first
    while budget < max_epochs:
        rungs.append(budget)
        budget *= 2
    return (*rungs, max_epochs)


def check_ladder(ladder: object, max_epochs: int) -> tuple[int, ...]:
    """``ladder`` as a tuple of training budgets, or a one-line ConfigError naming what is wrong with it: it must be
    a non-empty, strictly increasing list of integers ≥ 1, none beyond ``max_epochs``."""
    allowed = f"a non-empty, strictly increasing list of epochs from 1 to train.max_epochs = {max_epochs}"
    rungs = tuple(ladder) if isinstance(ladder, (list, tuple)) else (ladder,)
    _require(len(rungs) > 0, "train.ladder", list(rungs), allowed)
    for rung in rungs:
        _require(
            isinstance(rung, int) and not isinstance(rung, bool) and rung >= 1,
            "train.ladder",
            list(rungs),
            allowed + f" (the rung {rung!r} is not an integer >= 1)",
        )
    for a, b in zip(rungs, rungs[1:]):
        _require(b > a, "train.ladder", list(rungs), allowed + f" ({b} follows {a})")
    _require(rungs[-1] <= max_epochs, "train.ladder", list(rungs), allowed + f" ({rungs[-1]} is beyond it)")
    return rungs

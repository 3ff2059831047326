"""Baseline training, the ground truth the prediction is checked against (docs/method.md §1).

Plain SGD on the tanh network with cross-entropy, test accuracy after every epoch, stop as soon as the
accuracy threshold is reached or after the epoch budget. A diverging run (non-finite loss) ends as
'diverged'. ``BaselineTrainer`` runs one epoch at a time and exposes its state, so a Ray Tune trial can
report and checkpoint after every epoch and resume from a checkpoint.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from infoflow_ray import families, seeding
from infoflow_ray.config import NetworkSpec, TrainSpec
from infoflow_ray.data import Dataset
from infoflow_ray.errors import ConfigError

STOP_REASONS = ("threshold", "budget", "diverged")


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: mean training loss, test loss and accuracy after it (nats, fraction), wall seconds."""

    epoch: int
    train_loss: float
    test_loss: float
    test_accuracy: float
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def classification_loss(output: Tensor, labels: Tensor, loss: str) -> Tensor:
    """Cross-entropy on the network output ('logits') or on its softmax ('softmax_twice', the reference)."""
    if loss == "softmax_twice":
        output = torch.softmax(output, dim=1)
    return F.cross_entropy(output, labels)


def make_optimizer(train_spec: TrainSpec, parameters) -> torch.optim.Optimizer:
    """The optimizer of ``train_spec``: plain SGD (the paper's baselines) or Adam, at ``train_spec.lr``."""
    if train_spec.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=train_spec.lr)
    return torch.optim.SGD(parameters, lr=train_spec.lr)


class BaselineTrainer:
    """Trains one network of ``network_spec`` (seeded) on ``data``, one epoch per ``run_epoch`` call."""

    def __init__(
        self,
        network_spec: NetworkSpec,
        train_spec: TrainSpec,
        data: Dataset,
        seed: int,
        device: torch.device | str | None = None,
    ):
        self.device = torch.device(device) if device is not None else data.train_x.device
        self.data = data.to(self.device)
        self.spec = train_spec
        self.seed = seed
        self.network = families.build(network_spec, seed, self.device)
        self.optimizer = make_optimizer(train_spec, self.network.parameters())
        self.history: list[EpochRecord] = []

    @property
    def epoch(self) -> int:
        """Epochs finished so far."""
        return len(self.history)

    def run_epoch(self) -> EpochRecord:
        start = time.perf_counter()
        x, y = self.data.train_x, self.data.train_y
        order = seeding.permutation(x.shape[0], self.seed, "baseline-batches", self.epoch, self.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        self.network.train()
        for batch in order.split(self.spec.batch_size):
            loss = classification_loss(self.network(x[batch]), y[batch], self.spec.loss)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach() * batch.shape[0]
        test_loss, test_accuracy = self.evaluate()
        record = EpochRecord(
            self.epoch + 1, float(total) / x.shape[0], test_loss, test_accuracy, time.perf_counter() - start
        )
        self.history.append(record)
        return record

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """Test loss (the training loss function) and test accuracy of the current network."""
        self.network.eval()
        out = self.network(self.data.test_x)
        loss = classification_loss(out, self.data.test_y, self.spec.loss)
        accuracy = (out.argmax(dim=1) == self.data.test_y).double().mean()
        return float(loss), float(accuracy)

    def stop_reason(self) -> str | None:
        """Why training should stop now ('threshold', 'budget', 'diverged'), or None to go on."""
        if not self.history:
            return None
        last = self.history[-1]
        if not (math.isfinite(last.train_loss) and math.isfinite(last.test_loss)):
            return "diverged"
        if self.spec.stop_at_threshold and last.test_accuracy >= self.spec.accuracy_threshold:
            return "threshold"
        if self.epoch >= self.spec.max_epochs:
            return "budget"
        return None

    def state_dict(self) -> dict:
        """A snapshot (copied, so further training does not change it) for checkpoints."""
        return copy.deepcopy(
            {
                "network": self.network.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "history": [r.as_dict() for r in self.history],
            }
        )

    def load_state_dict(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = [EpochRecord(**r) for r in state["history"]]


@dataclass(frozen=True)
class TrainResult:
    """A finished baseline training: every epoch, why it stopped, and whether it reached the threshold."""

    epochs: list[EpochRecord]
    stop_reason: str
    reached_threshold: bool

    @property
    def best_accuracy(self) -> float:
        return max((r.test_accuracy for r in self.epochs), default=float("nan"))


def train_baseline(
    network_spec: NetworkSpec, train_spec: TrainSpec, data: Dataset, seed: int, device: torch.device | str | None = None
) -> TrainResult:
    """Train until the threshold, the epoch budget or divergence; see ``BaselineTrainer``."""
    trainer = BaselineTrainer(network_spec, train_spec, data, seed, device)
    while (reason := trainer.stop_reason()) is None:
        trainer.run_epoch()
    reached = any(r.test_accuracy >= train_spec.accuracy_threshold for r in trainer.history)
    return TrainResult(trainer.history, reason, reached)


def mi_stopping(history: Sequence[float], patience: int = 3, min_delta: float = 1e-3) -> bool:
    """Seed 002's stopper: True when the last ``patience`` values of ``history`` all fail to beat the best
    earlier value by more than ``min_delta``.

    ``history`` is one value per evaluation, oldest first: I(T;Y) of the last hidden layer, or seed 002's
    objective I(T;Y) − β·I(X;T) of the last layer. (Seed 002 stops at the first evaluation that improves by
    less than a relative ``tol`` — patience 1; here patience and an absolute ``min_delta``.) NaN values count
    as no improvement; with ``patience`` or fewer values it never stops.
    """
    if not (isinstance(patience, int) and patience >= 1):
        raise ConfigError(f"patience must be an integer >= 1, got {patience!r}")
    if len(history) <= patience:
        return False
    earlier = [v for v in history[:-patience] if not math.isnan(v)]
    best = max(earlier, default=-math.inf)
    return not any(v > best + min_delta for v in history[-patience:])

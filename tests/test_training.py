"""Baseline training (docs/method.md §1): it learns MNIST-t10k, stops where it should, resumes exactly,
survives divergence."""

import dataclasses
import io
import math

import pytest
import torch
import torch.nn.functional as F

from infoflow_ray.config import NetworkSpec, TrainSpec
from infoflow_ray.data import Dataset, load_dataset
from infoflow_ray.training import BaselineTrainer, TrainResult, classification_loss, train_baseline

CRITICAL = 1.76
SHALLOW = NetworkSpec(CRITICAL, depth=5)
SYNTHETIC_NET = NetworkSpec(CRITICAL, depth=4, n_inputs=64)


@pytest.fixture(scope="module")
def t10k() -> Dataset:
    return load_dataset("mnist_t10k")


@pytest.fixture(scope="module")
def synthetic() -> Dataset:
    return load_dataset("synthetic", seed=0, n_inputs=64, n_train=2000, n_test=500)


@pytest.fixture(scope="module")
def to_threshold(t10k) -> TrainResult:
    """The default training (logits, threshold 0.4) of a shallow critical network, with a few epochs at most."""
    return train_baseline(SHALLOW, TrainSpec(max_epochs=5), t10k, seed=0)


def _without_seconds(history):
    return [dataclasses.replace(r, seconds=0.0) for r in history]


def test_shallow_critical_network_learns_mnist_within_a_few_epochs(to_threshold):
    assert to_threshold.reached_threshold
    assert to_threshold.stop_reason == "threshold"
    assert to_threshold.best_accuracy > 0.4
    assert to_threshold.epochs[-1].test_accuracy == to_threshold.best_accuracy
    assert all(r.test_accuracy < 0.4 for r in to_threshold.epochs[:-1])  # it stopped at the first epoch >= 0.4
    assert [r.epoch for r in to_threshold.epochs] == list(range(1, len(to_threshold.epochs) + 1))
    first = to_threshold.epochs[0]
    assert first.train_loss < math.log(10) and first.test_loss < math.log(10)  # below the chance-level loss


def test_without_threshold_stop_it_runs_the_whole_budget(synthetic):
    spec = TrainSpec(max_epochs=2, lr=0.01, accuracy_threshold=0.3, stop_at_threshold=False)
    free = train_baseline(SYNTHETIC_NET, spec, synthetic, seed=0)
    assert free.stop_reason == "budget"
    assert [r.epoch for r in free.epochs] == [1, 2]
    assert free.epochs[0].test_accuracy >= 0.3 and free.reached_threshold  # reached, but ignored
    stopped = train_baseline(SYNTHETIC_NET, dataclasses.replace(spec, stop_at_threshold=True), synthetic, seed=0)
    assert stopped.stop_reason == "threshold"
    assert _without_seconds(stopped.epochs) == _without_seconds(free.epochs[:1])


def test_softmax_twice_learns_much_slower_than_logits(t10k, to_threshold):
    reference = train_baseline(SHALLOW, TrainSpec(max_epochs=1, loss="softmax_twice"), t10k, seed=0)
    assert reference.stop_reason == "budget" and not reference.reached_threshold
    assert reference.epochs[0].test_accuracy + 0.25 < to_threshold.epochs[0].test_accuracy


def test_threshold_stop_is_at_the_first_epoch_reaching_it(synthetic):
    """A threshold between two epochs' accuracies of a free run stops the same training right at that epoch."""
    free = train_baseline(SYNTHETIC_NET, TrainSpec(max_epochs=12, stop_at_threshold=False), synthetic, seed=1)
    accuracies = [r.test_accuracy for r in free.epochs]
    k = next(k for k in range(2, len(accuracies)) if accuracies[k] > max(accuracies[:k]))
    threshold = (max(accuracies[:k]) + accuracies[k]) / 2
    stopped = train_baseline(SYNTHETIC_NET, TrainSpec(max_epochs=12, accuracy_threshold=threshold), synthetic, seed=1)
    assert stopped.stop_reason == "threshold" and stopped.reached_threshold
    assert len(stopped.epochs) == k + 1
    assert [r.test_accuracy for r in stopped.epochs] == accuracies[: k + 1]


def test_budget_without_reaching_the_threshold(synthetic):
    result = train_baseline(SYNTHETIC_NET, TrainSpec(max_epochs=2, accuracy_threshold=1.0), synthetic, seed=0)
    assert result.stop_reason == "budget" and not result.reached_threshold
    assert len(result.epochs) == 2


def test_resume_from_state_is_exact(synthetic):
    spec = TrainSpec(max_epochs=5, lr=0.05)
    trainer = BaselineTrainer(SYNTHETIC_NET, spec, synthetic, seed=0)
    trainer.run_epoch()
    checkpoint = io.BytesIO()
    torch.save(trainer.state_dict(), checkpoint)
    trainer.run_epoch()

    resumed = BaselineTrainer(SYNTHETIC_NET, spec, synthetic, seed=0)
    checkpoint.seek(0)
    resumed.load_state_dict(torch.load(checkpoint))
    assert resumed.epoch == 1
    resumed.run_epoch()
    assert _without_seconds(resumed.history) == _without_seconds(trainer.history)
    for a, b in zip(trainer.network.parameters(), resumed.network.parameters(), strict=True):
        assert torch.equal(a, b)

    # the check is not vacuous: a fresh trainer's first epoch gives other parameters
    fresh = BaselineTrainer(SYNTHETIC_NET, spec, synthetic, seed=0)
    fresh.run_epoch()
    assert not torch.equal(fresh.network.layers[0].weight, trainer.network.layers[0].weight)


def test_infinite_weight_ends_as_diverged_without_raising(synthetic):
    trainer = BaselineTrainer(SYNTHETIC_NET, TrainSpec(max_epochs=5), synthetic, seed=0)
    with torch.no_grad():
        trainer.network.layers[1].weight[0, 0] = math.inf
    record = trainer.run_epoch()
    assert math.isnan(record.train_loss)
    assert trainer.stop_reason() == "diverged"


def test_nan_in_the_data_ends_training_as_diverged(synthetic):
    train_x = synthetic.train_x.clone()
    train_x[3, 5] = math.nan
    poisoned = dataclasses.replace(synthetic, train_x=train_x)
    result = train_baseline(SYNTHETIC_NET, TrainSpec(max_epochs=5), poisoned, seed=0)
    assert result.stop_reason == "diverged"
    assert len(result.epochs) == 1 and not result.reached_threshold


def test_classification_losses():
    g = torch.Generator().manual_seed(0)
    output, labels = torch.tanh(torch.randn(8, 10, generator=g)), torch.randint(0, 10, (8,), generator=g)
    log_p = output - output.exp().sum(dim=1, keepdim=True).log()
    assert classification_loss(output, labels, "logits").item() == pytest.approx(
        -log_p[torch.arange(8), labels].mean().item(), rel=1e-6
    )
    assert classification_loss(output, labels, "softmax_twice").item() == pytest.approx(
        F.cross_entropy(torch.softmax(output, dim=1), labels).item(), rel=1e-6
    )


def test_training_does_not_modify_the_dataset(synthetic):
    before = {f: getattr(synthetic, f).clone() for f in ("train_x", "train_y", "test_x", "test_y")}
    train_baseline(SYNTHETIC_NET, TrainSpec(max_epochs=1), synthetic, seed=0)
    assert all(torch.equal(getattr(synthetic, f), t) for f, t in before.items())

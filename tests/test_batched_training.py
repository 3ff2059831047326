"""Batched baseline trainings (``batched_training``) are the one-by-one trainings, run together.

Three depth-5 networks (ordered, critical, chaotic σw²; different seeds) on 2,000 MNIST-t10k images with an
accuracy threshold of 0.2: the critical one reaches it after epoch 1, the chaotic one after epoch 2, the
ordered one never does and runs its budget of 3 epochs — so stopped networks leave the stack while others go on.
"""

import dataclasses

import pytest

from infoflow_ray.batched_training import train_baselines_batched
from infoflow_ray.config import NetworkSpec, TrainSpec
from infoflow_ray.data import Dataset, load_dataset
from infoflow_ray.errors import ConfigError
from infoflow_ray.training import TrainResult, train_baseline

SPECS = [NetworkSpec(0.5, depth=5), NetworkSpec(1.76, depth=5), NetworkSpec(3.0, depth=5)]
SEEDS = [0, 1, 2]
TRAIN = TrainSpec(max_epochs=3, accuracy_threshold=0.2)
ACCURACY_TOL = 1e-3  # two test images of 2,000: float32 bmm and mm sum in different orders
LOSS_RTOL = 1e-5


@pytest.fixture(scope="module")
def data() -> Dataset:
    t10k = load_dataset("mnist_t10k")
    return dataclasses.replace(t10k, train_x=t10k.train_x[:2000], train_y=t10k.train_y[:2000])


@pytest.fixture(scope="module")
def one_by_one(data) -> list[TrainResult]:
    return [train_baseline(spec, TRAIN, data, seed) for spec, seed in zip(SPECS, SEEDS)]


@pytest.fixture(scope="module")
def batched(data) -> list[TrainResult]:
    return train_baselines_batched(SPECS, TRAIN, data, SEEDS)


def _assert_same_training(batched: TrainResult, single: TrainResult) -> None:
    assert batched.stop_reason == single.stop_reason
    assert batched.reached_threshold == single.reached_threshold
    assert [r.epoch for r in batched.epochs] == [r.epoch for r in single.epochs]
    for b, s in zip(batched.epochs, single.epochs):
        assert b.test_accuracy == pytest.approx(s.test_accuracy, abs=ACCURACY_TOL)
        assert b.train_loss == pytest.approx(s.train_loss, rel=LOSS_RTOL)
        assert b.test_loss == pytest.approx(s.test_loss, rel=LOSS_RTOL)


def test_batched_networks_train_exactly_as_one_by_one(batched, one_by_one):
    assert len(batched) == len(one_by_one) == 3
    for b, s in zip(batched, one_by_one):
        _assert_same_training(b, s)


def test_a_network_at_the_threshold_stops_while_the_others_go_on(batched):
    assert [r.stop_reason for r in batched] == ["budget", "threshold", "threshold"]
    assert [len(r.epochs) for r in batched] == [3, 1, 2]
    critical, chaotic = batched[1], batched[2]
    assert critical.epochs[-1].test_accuracy >= 0.2 and chaotic.epochs[0].test_accuracy < 0.2
    assert batched[0].best_accuracy < 0.2 and not batched[0].reached_threshold


def test_softmax_twice_loss_matches_one_by_one(data):
    spec = dataclasses.replace(TRAIN, max_epochs=1, loss="softmax_twice")
    small = dataclasses.replace(data, train_x=data.train_x[:500], train_y=data.train_y[:500])  # a loss check
    batched = train_baselines_batched(SPECS[1:], spec, small, SEEDS[1:])
    for b, network, seed in zip(batched, SPECS[1:], SEEDS[1:]):
        _assert_same_training(b, train_baseline(network, spec, small, seed))


def test_networks_of_different_widths_are_refused(data):
    with pytest.raises(ConfigError, match="same layer widths"):
        train_baselines_batched([NetworkSpec(1.0, depth=5), NetworkSpec(1.0, depth=6)], TRAIN, data, [0, 1])
    with pytest.raises(ConfigError, match="one seed per network"):
        train_baselines_batched(SPECS, TRAIN, data, [0])

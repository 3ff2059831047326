"""Opening the black box without Ray: cascades of a network trained on MNIST-t10k, its retraced decisions and
its perfect inputs (seed 001 §2.3), the rows they become, and the figures drawn from them."""

import numpy as np
import polars as pl
import pytest
import torch

from infoflow_ray import interpret, plots
from infoflow_ray.cascade import train_cascade
from infoflow_ray.config import CascadeSpec, NetworkSpec, TrainSpec
from infoflow_ray.data import Dataset, load_dataset
from infoflow_ray.errors import ConfigError
from infoflow_ray.store import _conform
from infoflow_ray.sweep.grid import resolve_grid
from infoflow_ray.sweep.task_runner import interpret_rows
from infoflow_ray.training import BaselineTrainer


@pytest.fixture(scope="module")
def learnt():
    """A 784-128-128-10 tanh network trained 5 epochs on 3,000 MNIST-t10k images (90 % test accuracy), with a
    cascade of 10 epochs on it."""
    torch.manual_seed(0)
    full = load_dataset("mnist_t10k")
    data = Dataset(full.name, full.train_x[:3000], full.train_y[:3000], full.test_x[:1000], full.test_y[:1000], 10)
    spec = NetworkSpec(1.76, 3, widths=(784, 128, 128, 10))
    trainer = BaselineTrainer(spec, TrainSpec(lr=0.05, max_epochs=5, stop_at_threshold=False), data, seed=0)
    for _ in range(5):
        record = trainer.run_epoch()
    assert record.test_accuracy > 0.85
    trained = train_cascade(trainer.network, data.train_x, CascadeSpec(epochs=10), seed=0)
    return trainer.network, trained.decoders, data


def test_perfect_inputs_are_classified_as_their_own_class_and_differ(learnt):
    network, decoders, data = learnt
    for kind in interpret.PERFECT_OUTPUTS:
        images = interpret.perfect_inputs(network, decoders, data, kind)
        assert images.shape == (10, 784)
        predicted, _ = interpret.classify(network, images)
        assert (predicted == torch.arange(10)).sum() >= 8, (kind, predicted.tolist())  # 10 of 10 measured
        distances = torch.cdist(images, images)
        assert distances[~torch.eye(10, dtype=torch.bool)].min() > 1.0  # ten different images


def test_the_extreme_output_is_plus_one_on_the_label_and_minus_one_elsewhere(learnt):
    network, _, data = learnt
    extreme = interpret.perfect_outputs(network, data, "extreme")
    assert torch.equal(extreme.argmax(dim=1), torch.arange(10)) and set(extreme.unique().tolist()) == {-1.0, 1.0}
    mean = interpret.perfect_outputs(network, data, "class_mean")
    assert torch.allclose(mean.abs().max(dim=1).values, torch.ones(10)) and torch.equal(
        mean.argmax(1), torch.arange(10)
    )
    with pytest.raises(ValueError, match="perfect output must be one of extreme, class_mean, got 'max'"):
        interpret.perfect_outputs(network, data, "max")


def test_the_trained_cascade_reconstructs_from_layer_1_better_than_a_constant_image(learnt):
    network, decoders, data = learnt
    x = data.test_x[:200]
    strips = interpret.retrace(network, decoders, x)
    assert strips.shape == (200, 4, 784) and torch.equal(strips[:, 0], x)
    from_layer_1 = ((strips[:, 1] - x) ** 2).mean()
    constant = ((data.train_x.mean(dim=0) - x) ** 2).mean()  # the best constant image under the MSE
    assert from_layer_1 < 0.5 * constant


def test_examples_follow_the_stated_rule(learnt):
    network, _, data = learnt
    examples = interpret.choose_examples(network, data, per_class=2)
    predicted, confidence = interpret.classify(network, data.test_x)
    for e in examples:
        assert data.test_y[e.image_index] == e.label and predicted[e.image_index] == e.predicted
        same = (data.test_y == e.label) & ((predicted == e.label) == (e.rule == "most_confident_correct"))
        ranked = confidence[same].sort(descending=True).values
        assert e.confidence in ranked[:2].tolist()  # among the two most confident of its class and rule
    rules = pl.DataFrame([e.__dict__ for e in examples]).group_by("label", "rule").len()
    assert rules["len"].max() == 2 and set(rules["rule"]) == set(interpret.RULES)


def test_interpret_rows_fit_their_tables_and_keep_the_grid_ids():
    grid = resolve_grid("tiny", overrides={"interpret": {"enabled": True, "cascade_epochs": 2}})
    task = next(t for t in grid.tasks() if t.kind == "baseline")
    assert task.cascade == grid.cascade and task.config()["interpret"]["cascade_epochs"] == 2
    plain = next(t for t in resolve_grid("tiny").tasks() if t.kind == "baseline")
    assert "interpret" not in plain.config() and plain.task_id != task.task_id  # off: the ids of before
    full = load_dataset("mnist_t10k")
    data = Dataset(full.name, full.train_x[:1000], full.train_y[:1000], full.test_x[:300], full.test_y[:300], 10)
    trainer = BaselineTrainer(task.network, task.train, data, task.seed)
    trainer.run_epoch()
    rows = interpret_rows(task, trainer.network, data, trainer.epoch)
    for table, table_rows in rows.items():
        assert len(table_rows) and _conform(table, table_rows).num_rows == len(table_rows), table
    perfect = pl.DataFrame(rows["perfect_inputs"])
    assert sorted(perfect.filter(layer=0)["label"]) == list(range(10))
    assert set(perfect["layer"]) == set(range(task.network.depth + 1)) and (perfect["epoch"] == 1).all()
    retraced = pl.DataFrame(rows["retraced"])
    correct = retraced.filter(rule="most_confident_correct")
    assert (correct["label"] == correct["predicted"]).all()
    assert (
        (retraced.filter(rule="most_confident_mistake").select(pl.col("label") != pl.col("predicted")))
        .to_series()
        .all()
    )
    assert set(pl.DataFrame(rows["trained_cutoffs"])["measure"]) == {
        "kl_mean",
        "kl_median_normalised",
        "diff_entropy",
        "kl_per_image",
    }


def test_figures_draw_from_the_rows():
    def image_rows(**keys):
        return [
            {"dataset": "d", "profile": "wide", "sigma_b2": 0.05, "depth": 3, "seed": 0, "epoch": 2, "layer": layer,
             "height": 28, "width": 28, "pixels": np.full(784, 0.5, np.float32).tolist(), **keys}
            for layer in range(4)
        ]  # fmt: skip

    perfect = pl.DataFrame(
        [
            r
            for s in (0.5, 1.76, 4.0)
            for k in range(10)
            for r in image_rows(sigma_w2=s, label=k, predicted=k if k else 3, confidence=0.9, perfect_output="extreme")
        ]  # fmt: skip
    )
    fig = plots.perfect_inputs_grid(perfect, critical=1.76)
    assert len(fig.axes) == 30 and "9/10 own" in fig.axes[0].get_ylabel()
    retraced = pl.DataFrame(
        image_rows(sigma_w2=1.76, image_index=7, label=5, predicted=6, confidence=0.8, rule="most_confident_mistake")
        + image_rows(sigma_w2=1.76, image_index=3, label=5, predicted=5, confidence=0.99, rule="most_confident_correct")
    )
    fig = plots.retraced_strips(retraced, 1.76)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["5 → 5 ✓\n(0.99)", "5 → 6 ✗\n(0.80)"] and len(fig.axes) == 8
    with pytest.raises(ConfigError, match="no rows at sigma_w2=3"):
        plots.retraced_strips(retraced, 3.0)
    curve = lambda s, values, column, **k: [
        {"dataset": "d", "profile": "wide", "sigma_b2": 0.05, "sigma_w2": s, "depth": 3, "layer": i,
         "measure": "kl_mean", column: v, **k} for i, v in enumerate(values)
    ]  # fmt: skip
    trained = pl.DataFrame(curve(1.76, [0, 1, 2, 3], "value", epoch=2, seed=0))
    untrained = pl.DataFrame(curve(1.76, [0, 2, 4, 6, 8], "value_mean"))  # as analysis.curves_by_sigma
    ax = plots.trained_vs_untrained(trained, untrained).axes[0]
    solid, dashed = ax.lines[0], ax.lines[1]
    assert list(solid.get_ydata()) == [0, 1, 2, 3] and list(dashed.get_ydata()) == [0, 2, 4, 6]  # up to depth 3

"""Config: every bad value fails in one line naming the field and the value; width profiles are method §1's."""

import math

import pytest

from infoflow_ray import families
from infoflow_ray.config import CascadeSpec, NetworkSpec, TrainSpec
from infoflow_ray.errors import ConfigError

NAN = float("nan")


def _assert_one_line_naming(error: ConfigError, field: str, value: object) -> None:
    message = str(error)
    assert "\n" not in message
    assert field in message
    assert repr(value) in message


@pytest.mark.parametrize(
    "field, value, kwargs",
    [
        ("sigma_w2", 0.0, {}),
        ("sigma_w2", -1.0, {}),
        ("sigma_w2", NAN, {}),
        ("sigma_w2", math.inf, {}),
        ("sigma_b2", -0.1, {}),
        ("sigma_b2", NAN, {}),
        ("depth", 2, {}),
        ("depth", 0, {}),
        ("depth", True, {}),
        ("depth", 10.0, {}),
        ("widths", "narrow", {}),
        ("widths", (784, 784, 10), {"depth": 5}),  # length must be depth + 1
        ("widths", (784, 500, 300, 200, 100, 10, 10), {"depth": 5}),
        ("widths", (100, 500, 300, 200, 100, 10), {"depth": 5}),  # must start with n_inputs
        ("widths", (784, 500, 300, 200, 100, 11), {"depth": 5}),  # must end with n_outputs
        ("widths", (784, 500, 0, 200, 100, 10), {"depth": 5}),
        ("widths", (784, 500, 300.0, 200, 100, 10), {"depth": 5}),
        ("widths", 784, {"depth": 5}),  # not a sequence at all
        ("n_inputs", 0, {}),
        ("n_outputs", -3, {}),
    ],
)
def test_bad_network_values_are_refused_in_one_line(field, value, kwargs):
    args = {"sigma_w2": 1.76, "depth": 10, **kwargs, field: value}
    with pytest.raises(ConfigError) as error:
        NetworkSpec(**args)
    _assert_one_line_naming(error.value, field, value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", 0),
        ("batch_size", -64),
        ("batch_size", 64.0),
        ("epochs", 0),
        ("epochs", True),
        ("lr", 0.0),
        ("lr", NAN),
        ("eval_samples", 1),
        ("eval_samples", 0),
        ("eval_samples", 100.0),
        ("strategy", "parallel"),
        ("tf32_training", "yes"),
        ("cutoff_layers", "some"),
        ("rtol", -0.1),
        ("atol", NAN),
        ("sigma_floor_rel", 0.0),
        ("stored_images", -1),
    ],
)
def test_bad_cascade_values_are_refused_in_one_line(field, value):
    with pytest.raises(ConfigError) as error:
        CascadeSpec(**{field: value})
    _assert_one_line_naming(error.value, field, value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", 0),
        ("max_epochs", 0),
        ("max_epochs", 2.5),
        ("lr", -1e-3),
        ("lr", math.inf),
        ("accuracy_threshold", 0.0),
        ("accuracy_threshold", -0.2),
        ("accuracy_threshold", 1.01),
        ("accuracy_threshold", NAN),
        ("loss", "mse"),
    ],
)
def test_bad_train_values_are_refused_in_one_line(field, value):
    with pytest.raises(ConfigError) as error:
        TrainSpec(**{field: value})
    _assert_one_line_naming(error.value, field, value)


def test_good_values_are_accepted():
    """The edges of every allowed range are accepted and kept exactly as given: nothing is clamped, rounded or
    replaced by a default (eval_samples=None means the whole test split, not the reference's 100)."""
    network = NetworkSpec(sigma_w2=1e-3, depth=3, sigma_b2=0.0)
    assert (network.sigma_w2, network.depth, network.sigma_b2) == (1e-3, 3, 0.0)
    assert network.layer_widths == (784, 784, 400, 10) and network.cutoff_last_layer() == 1
    lockstep = CascadeSpec(eval_samples=2, strategy="lockstep", cutoff_layers="all")
    assert (lockstep.eval_samples, lockstep.strategy, lockstep.cutoff_layers) == (2, "lockstep", "all")
    layerwise = CascadeSpec(eval_samples=None, strategy="layerwise")
    assert layerwise.eval_samples is None and layerwise.strategy == "layerwise"
    train = TrainSpec(accuracy_threshold=1.0, loss="softmax_twice", stop_at_threshold=False)
    assert (train.accuracy_threshold, train.loss, train.stop_at_threshold) == (1.0, "softmax_twice", False)


@pytest.mark.parametrize("depth", [3, 4, 30, 100])
def test_wide_profile_is_n_in_then_400_then_n_out(depth):
    widths = NetworkSpec(1.76, depth).layer_widths
    assert len(widths) == depth + 1
    assert widths == (784,) * (depth - 1) + (400, 10)


@pytest.mark.parametrize("depth, n_in, n_out", [(3, 784, 10), (7, 1024, 10), (30, 1024, 10), (50, 784, 10)])
def test_shrinking_profile_is_the_ceiling_of_a_linspace(depth, n_in, n_out):
    widths = NetworkSpec(1.76, depth, widths="shrinking", n_inputs=n_in, n_outputs=n_out).layer_widths
    # ceil(n_in + (n_out - n_in)·i/L) in exact integer arithmetic
    expected = tuple(-((-(n_in * depth + (n_out - n_in) * i)) // depth) for i in range(depth + 1))
    assert widths == expected
    assert widths[0] == n_in and widths[-1] == n_out
    assert all(a >= b for a, b in zip(widths, widths[1:]))


def test_constant_profile_is_n_in_then_n_hidden_units_then_n_out_at_every_depth():
    spec = NetworkSpec(1.76, 6, widths="constant-16", n_inputs=64)
    assert spec.layer_widths == (64, 16, 16, 16, 16, 16, 10) and spec.profile_name == "constant-16"
    assert NetworkSpec(1.76, 48, widths="constant-32").layer_widths == (784,) + (32,) * 47 + (10,)
    assert spec.cutoff_last_layer() == 5  # the 16-unit run, without the 10-unit output layer
    assert spec.cutoff_last_layer("all") == 6
    assert families.of_profile("constant-16").name == "mlp"  # the tables' profile value maps back to its family
    for bad in ("constant-0", "constant-x", "constant-016", "constant-", "narrow-16"):
        with pytest.raises(ConfigError, match=f"widths must be one of wide, shrinking, constant-N .*got '{bad}'"):
            NetworkSpec(1.76, 6, widths=bad)


def test_explicit_widths_are_kept_as_a_tuple():
    spec = NetworkSpec(1.76, 4, widths=[784, 300, 300, 100, 10])
    assert spec.layer_widths == (784, 300, 300, 100, 10)
    assert spec.widths == (784, 300, 300, 100, 10)
    assert spec.profile_name == "custom"
    assert NetworkSpec(1.76, 4).profile_name == "wide"


@pytest.mark.parametrize(
    "widths, layer_range, expected",
    [
        ("wide", "constant_width", 28),
        ("wide", "all", 30),
        ("shrinking", "constant_width", 30),
        ("constant-32", "constant_width", 29),
        ("constant-32", "all", 30),
        ((784,) * 30 + (10,), "constant_width", 30),
    ],
)
def test_cutoff_last_layer(widths, layer_range, expected):
    assert NetworkSpec(1.76, 30, widths=widths).cutoff_last_layer(layer_range) == expected


def test_specs_are_frozen():
    spec = NetworkSpec(1.76, 10)
    with pytest.raises(AttributeError):
        spec.depth = 11

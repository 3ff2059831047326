"""The estimator registry: every estimator behind one signature, chosen by name; unknown names fail in one line."""

import math

import pytest
import torch
from doc_examples import python_block

from infoflow_ray import estimators, ib_experiments
from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators import binning, bspline, dcor, density, equal_mass, kde, ksg


def small_layers():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    layers = [torch.tanh(x[:, :4]), torch.tanh(x[:, :2] @ torch.randn(2, 3, generator=g, dtype=torch.float64))]
    return x, layers, (x[:, 0] > 0).long()


def test_every_name_is_registered_once_with_its_module_function():
    assert set(estimators.names()) == {
        "binning",
        "binning_extended",
        "kde",
        "ksg",
        "adaptive",
        "bspline",
        "dcor",
        "density",
    }
    assert set(estimators.ESTIMATORS) == set(estimators.names()) - {"binning_extended"}
    x, layers, y = small_layers()
    expected = {
        "binning": ({"n_bins": 5}, [binning.binned_mi(a, y, n_bins=5) for a in layers]),
        "kde": ({"noise_var": 0.5}, [kde.kde_mi(a, y, noise_var=0.5) for a in layers]),
        "ksg": ({"k": 3}, [ksg.ksg_layer_mi(a, x, y, k=3) for a in layers]),
        "adaptive": ({"n_bins": 5}, [equal_mass.equal_mass_binned_mi(a, y, n_bins=5) for a in layers]),
        "bspline": ({"n_bins": 6}, [bspline.bspline_layer_mi(a, y, n_bins=6) for a in layers]),
        "dcor": ({}, [dcor.dcor_layer(a, y, x) for a in layers]),
    }
    for name, (params, answer) in expected.items():
        # the same call for every estimator: networks (here one), labels, inputs, ids, seed, its own parameters
        assert estimators.get(name)([layers], y, inputs=x, x_ids=None, seed=0, **params) == answer, name
        assert estimators.layer_mi(layers, y, name, inputs=x, **params) == answer, name
    assert estimators.get("dcor").unit == "dCor" and estimators.get("ksg").unit == "nats"


def test_the_family_estimator_takes_copies_and_layer_mi_refuses_it():
    x, layers, y = small_layers()
    copies = [layers, [a.flip(0) for a in layers]]
    got = estimators.get("binning_extended")(copies, y, seed=3, n_bins=4)
    assert got == binning.extended_binned_mi(copies, y, n_bins=4, seed=3)
    assert estimators.get("binning_extended").family
    with pytest.raises(ConfigError, match="it needs copies"):
        estimators.layer_mi(layers, y, "binning_extended")


def test_unknown_names_and_missing_inputs_fail_in_one_line_naming_the_known():
    _, layers, y = small_layers()
    with pytest.raises(ConfigError) as err:
        estimators.get("binnig")
    message = str(err.value)
    assert "\n" not in message and "got 'binnig'" in message
    assert all(name in message for name in estimators.names())
    with pytest.raises(ConfigError, match="estimator 'ksg' needs inputs=X"):
        estimators.layer_mi(layers, y, "ksg")


def test_density_runs_through_the_registry_with_its_settings():
    _, layers, y = small_layers()
    spec = {"hidden": 8, "epochs": 1, "n_bins": 4}
    got = estimators.layer_mi(layers[:1], y, "density", **spec)
    assert got == [density.density_mi(layers[0], y, density.DensitySpec(**spec))]
    assert estimators.get("density").settings == ("density",)


def test_experiment_params_follow_each_estimators_settings():
    spec = ib_experiments.ExperimentSpec(name="t", estimators=("binning", "adaptive", "kde"), n_bins=7)
    assert ib_experiments.estimator_params(spec, "binning") == {"n_bins": 7, "range": (-1.0, 1.0)}
    assert ib_experiments.estimator_params(spec, "binning_extended") == {"n_bins": 7, "range": (-1.0, 1.0)}
    assert ib_experiments.estimator_params(spec, "adaptive") == {"n_bins": 7}
    assert ib_experiments.estimator_params(spec, "kde") == {}
    assert ib_experiments.estimator_params(spec, "density")["n_bins"] == 32  # DensitySpec's own bins


def test_the_docs_example_runs_as_written():
    names: dict = {}
    exec(python_block("docs/info-plane.md", "## The estimators: one registry"), names)
    assert len(names["per_layer"]) == 2 and len(names["extended"]) == 2
    assert all(0 <= i_xt <= math.log(500) + 1e-9 for i_xt, _ in names["per_layer"] + names["extended"])

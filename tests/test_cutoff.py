import math

import numpy as np
import pytest

from infoflow_ray.cutoff import Cutoff, find_cutoff, find_cutoffs, normalised, reference_cutoff
from infoflow_ray.errors import ConfigError


def cutoff_by_walking_back(curve, rtol=0.005, atol=1e-8):
    """method §4 written as a plain loop, to check the vectorised version against."""
    if not all(math.isfinite(v) for v in curve):
        return -1, False
    last, n_layers = curve[-1], len(curve) - 1
    for k in range(n_layers, -1, -1):
        if abs(curve[k] - last) > atol + rtol * abs(last):
            return (k + 1, True) if k + 1 < n_layers else (n_layers, False)
    return n_layers, False


def test_saturating_curve():
    assert find_cutoff([0, 1, 2, 3, 3, 3, 3]) == Cutoff(layer=3, saturated=True, finite=True)


def test_curve_saturating_at_the_first_layer():
    assert find_cutoff([0, 5, 5, 5, 5]) == Cutoff(layer=1, saturated=True, finite=True)


def test_flat_curve_never_saturates():
    assert find_cutoff([2.0, 2.0, 2.0, 2.0, 2.0]) == Cutoff(layer=4, saturated=False, finite=True)


def test_curve_changing_only_at_the_last_step_never_saturates():
    assert find_cutoff([0, 0, 0, 0, 1]) == Cutoff(layer=4, saturated=False, finite=True)
    assert find_cutoff([0, 1, 2, 3, 4]) == Cutoff(layer=4, saturated=False, finite=True)


def test_noise_within_rtol_saturates_and_just_above_does_not():
    assert find_cutoff([0, 1, 2, 3, 3 * 1.0045, 3 * 0.9955, 3]).layer == 3
    assert find_cutoff([0, 1, 2, 3, 3 * 1.0055, 3, 3]) == Cutoff(layer=5, saturated=True, finite=True)
    assert find_cutoff([0, 1, 2, 3, 3, 3 * 0.9945, 3]) == Cutoff(layer=6, saturated=False, finite=True)
    assert find_cutoff([0, 1, 2, 3, 3, 3 * 0.9945, 3], rtol=0.01).layer == 3


def test_atol_widens_the_band_around_zero():
    assert find_cutoff([1, 1e-9, -1e-9, 0]).layer == 1
    assert find_cutoff([1, 1e-9, -1e-9, 0], atol=0).layer == 3


def test_last_layer_restricts_the_curve():
    curve = [0, 1, 2, 3, 3, 3, 7, 9]
    assert find_cutoff(curve) == Cutoff(layer=7, saturated=False, finite=True)
    assert find_cutoff(curve, last_layer=5) == Cutoff(layer=3, saturated=True, finite=True)
    assert find_cutoff(curve, last_layer=4) == Cutoff(layer=3, saturated=True, finite=True)
    assert find_cutoff(curve, last_layer=3) == Cutoff(layer=3, saturated=False, finite=True)
    assert find_cutoff([0, 1, 2, 3, 3, 3, np.nan], last_layer=5).finite


def test_non_finite_curve_is_flagged():
    for bad in (np.nan, np.inf, -np.inf):
        assert find_cutoff([0, 1, bad, 2, 2]) == Cutoff(layer=-1, saturated=False, finite=False)


def test_vectorised_equals_loop_on_random_curves():
    rng = np.random.default_rng(0)
    n, n_layers = 2000, 20
    rise = rng.integers(1, n_layers + 1, size=n)
    plateau = rng.uniform(0.5, 3.0, size=n)
    layer = np.arange(n_layers + 1)
    curves = np.minimum(layer[None, :] / rise[:, None], 1.0) * plateau[:, None]
    curves += rng.normal(size=curves.shape) * rng.choice([0, 1e-3, 5e-3, 2e-2], size=(n, 1)) * plateau[:, None]
    curves[rng.random(n) < 0.02, 4] = np.nan
    layers, saturated, finite = find_cutoffs(curves)
    expected = [cutoff_by_walking_back(list(c)) for c in curves]
    assert layers.dtype == np.int64 and saturated.dtype == bool and finite.dtype == bool
    assert layers.tolist() == [e[0] for e in expected]
    assert saturated.tolist() == [e[1] for e in expected]
    assert finite.tolist() == [bool(np.isfinite(c).all()) for c in curves]
    assert len(set(layers.tolist())) > 10  # the random curves exercise many cutoffs


def test_reference_convention():
    assert reference_cutoff([0, 1, 2, 3, 3, 3, 3]) == 3 - 2
    assert reference_cutoff([0, 0, 0, 0, 1]) == 4 - 2
    assert reference_cutoff([0, 5, 5, 5, 5]) == 4  # collapsed at layer 1: the reference sees a flat curve
    assert reference_cutoff([2, 2, 2, 2, 2]) == 4
    assert reference_cutoff([0, 1, 2, 3, 3, 3, 7, 9], last_layer=5) == 3 - 2
    assert reference_cutoff([0, 1, np.nan, 2]) == -1


def test_normalised_divides_by_last_value():
    np.testing.assert_allclose(normalised([0.0, 1.0, 4.0]), [0.0, 0.25, 1.0])
    np.testing.assert_allclose(normalised([[0.0, 2.0], [1.0, 4.0]]), [[0.0, 1.0], [0.25, 1.0]])
    assert not find_cutoff(normalised([0.0, 1.0, 0.0])).finite


@pytest.mark.parametrize(
    "curve, kwargs",
    [
        ([0, 1, 1], {"rtol": -0.1}),
        ([0, 1, 1], {"atol": -1.0}),
        ([0, 1, 1], {"rtol": float("nan")}),
        ([1.0], {}),
        ([[0, 1, 1]], {}),
        ([0, 1, 1], {"last_layer": 0}),
        ([0, 1, 1], {"last_layer": 3}),
    ],
)
def test_bad_arguments_raise_config_error(curve, kwargs):
    with pytest.raises(ConfigError):
        find_cutoff(curve, **kwargs)


def test_find_cutoffs_rejects_one_dimensional_input():
    with pytest.raises(ConfigError):
        find_cutoffs([0.0, 1.0, 1.0])

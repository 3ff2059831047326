import math

import numpy as np
import pytest
import torch

from infoflow_ray import entropy
from infoflow_ray.errors import ConfigError

EPS = 1e-12


def pmf(row):
    shifted = [v - min(row) + EPS for v in row]
    return [s / sum(shifted) for s in shifted]


def population_std(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def sample_std(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def test_kl_matches_hand_computation():
    x = [[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 2.0, 0.5]]
    x_hat = [[0.5, 2.0, 1.0, 3.0], [2.0, 0.25, 1.0, 1.0]]
    expected = [sum(p * math.log(p / q) for p, q in zip(pmf(a), pmf(b))) for a, b in zip(x, x_hat)]
    kl = entropy.kl_per_image(torch.tensor(x), torch.tensor(x_hat))
    assert kl.shape == (2,)
    assert kl.tolist() == pytest.approx(expected, rel=1e-9)


def test_kl_of_input_with_itself_is_zero():
    x = torch.randn(16, 50, generator=torch.Generator().manual_seed(0))
    assert entropy.kl_per_image(x, x).abs().max().item() < 1e-12


def test_kl_is_non_negative_and_broadcasts_over_layers():
    g = torch.Generator().manual_seed(1)
    x, x_hat = torch.randn(8, 30, generator=g), torch.randn(5, 8, 30, generator=g)
    kl = entropy.kl_per_image(x, x_hat)
    assert kl.shape == (5, 8)
    assert (kl >= 0).all() and (kl > 1e-3).all()
    loop = torch.stack([entropy.kl_per_image(x, layer) for layer in x_hat])
    assert torch.allclose(kl, loop, rtol=0, atol=1e-14)


def test_as_pmf_rows_are_pmfs_with_minimum_at_eps():
    p = entropy.as_pmf(torch.tensor([[-3.0, 1.0, 5.0], [2.0, 2.0, 4.0]]))
    assert p.dtype == torch.float64
    assert torch.allclose(p.sum(dim=-1), torch.ones(2, dtype=torch.float64))
    assert p[0].tolist() == pytest.approx(pmf([-3.0, 1.0, 5.0]), rel=1e-12)


def test_gaussian_entropy_is_half_log_two_pi_e_sigma_squared():
    assert entropy.gaussian_entropy(2.0).item() == pytest.approx(0.5 * math.log(2 * math.pi * math.e * 4.0))


def test_differential_entropy_matches_hand_computation_with_population_std():
    images = [[0.0, 1.0, 3.0], [0.0, 2.0, 2.0], [1.0, 0.0, 4.0]]
    pmfs = [pmf(row) for row in images]
    sigmas = [population_std([p[j] for p in pmfs]) for j in range(3)]
    assert min(sigmas) > 1e-5 / 3  # nothing clamped
    expected = sum(0.5 * math.log(2 * math.pi * math.e) + math.log(s) for s in sigmas) / 3
    result = entropy.differential_entropy(torch.tensor(images))
    assert result.value.item() == pytest.approx(expected, rel=1e-12)
    assert result.clamped_pixels.item() == 0


def test_differential_entropy_of_gaussian_pixels_matches_analytic_value():
    # Images [g_1..g_6, -Σg, -100]: every image has minimum -100 and raw sum -100, so as_pmf is the same
    # affine map p = (v + 100 + eps) / S for all of them, with S = 8·100 − 100 + 8·eps: σ_pmf = σ / S.
    sigmas = torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    g = torch.randn(20000, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * sigmas
    images = torch.cat([g, -g.sum(dim=1, keepdim=True), torch.full((20000, 1), -100.0, dtype=torch.float64)], dim=1)
    assert (images[:, :7] > -100).all()
    scale = 700 + 8 * EPS
    pixel_sigmas = torch.cat([sigmas, sigmas.square().sum().sqrt()[None]]) / scale
    floor = 1e-5 / 8
    expected = (entropy.gaussian_entropy(pixel_sigmas).sum() + entropy.gaussian_entropy(floor)) / 8
    result = entropy.differential_entropy(images)
    assert result.value.item() == pytest.approx(expected.item(), rel=0.01, abs=0.01)
    assert result.clamped_pixels.item() == 1


def test_identical_reconstructions_sit_on_the_floor():
    image = torch.randn(10, generator=torch.Generator().manual_seed(3))
    recon = image.expand(2, 5, 10).clone()
    result = entropy.differential_entropy(recon, sigma_floor_rel=1e-4)
    expected = 0.5 * math.log(2 * math.pi * math.e) + math.log(1e-4 / 10)
    assert result.value.tolist() == pytest.approx([expected, expected], rel=1e-12)
    assert result.clamped_pixels.tolist() == [10, 10]
    assert result.clamped_pixels.dtype == torch.int64


def test_batched_over_layers_equals_per_layer_loop():
    recon = torch.randn(4, 20, 12, generator=torch.Generator().manual_seed(4))
    batched = entropy.differential_entropy(recon)
    assert batched.value.shape == (4,) and batched.clamped_pixels.shape == (4,)
    loop = [entropy.differential_entropy(layer).value.item() for layer in recon]
    assert batched.value.tolist() == pytest.approx(loop, rel=1e-14)


def test_float32_input_gives_float64_output():
    x = torch.randn(6, 9, generator=torch.Generator().manual_seed(5))
    recon = torch.randn(3, 6, 9, generator=torch.Generator().manual_seed(6))
    assert entropy.kl_per_image(x, recon).dtype == torch.float64
    assert entropy.differential_entropy(recon).value.dtype == torch.float64
    assert entropy.differential_entropy_reference(recon).dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inputs_are_not_modified(dtype):
    g = torch.Generator().manual_seed(7)
    x, recon = torch.randn(6, 9, generator=g, dtype=dtype), torch.randn(3, 6, 9, generator=g, dtype=dtype)
    x_copy, recon_copy, ptrs = x.clone(), recon.clone(), (x.data_ptr(), recon.data_ptr())
    entropy.as_pmf(x)
    entropy.kl_per_image(x, recon)
    entropy.differential_entropy(recon)
    entropy.differential_entropy_reference(recon)
    entropy.entropy_curves(x, recon)
    assert (x.data_ptr(), recon.data_ptr()) == ptrs
    assert torch.equal(x, x_copy) and torch.equal(recon, recon_copy)


def test_reference_divides_raw_outputs_by_row_sum_with_sample_std_and_no_floor():
    images = [[1.0, 2.0, 4.0], [2.0, 2.0, 1.0], [3.0, 1.0, 1.0]]
    normalised = [[v / sum(row) for v in row] for row in images]
    sigmas = [sample_std([row[j] for row in normalised]) for j in range(3)]
    expected = sum(0.5 * math.log(2 * math.pi * math.e) + math.log(s) for s in sigmas) / 3
    assert entropy.differential_entropy_reference(torch.tensor(images)).item() == pytest.approx(expected, rel=1e-12)
    identical = torch.tensor([[1.0, 2.0, 3.0]] * 4)
    assert entropy.differential_entropy_reference(identical).item() == -math.inf


def test_entropy_curves_prepend_the_input_as_layer_zero():
    g = torch.Generator().manual_seed(8)
    x, recon = torch.randn(7, 11, generator=g), torch.randn(3, 7, 11, generator=g)
    curves = entropy.entropy_curves(x, recon)
    kl = entropy.kl_per_image(x, recon).numpy()
    assert curves.kl_per_image.shape == (4, 7)
    assert np.all(curves.kl_per_image[0] == 0)
    np.testing.assert_allclose(curves.kl_per_image[1:], kl, rtol=1e-14)
    np.testing.assert_allclose(curves.kl_mean[1:], kl.mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(curves.kl_median[1:], np.median(kl, axis=1), rtol=1e-14)
    assert curves.diff_entropy[0] == pytest.approx(entropy.differential_entropy(x).value.item(), rel=1e-14)
    np.testing.assert_allclose(curves.diff_entropy[1:], entropy.differential_entropy(recon).value.numpy(), rtol=1e-14)
    assert curves.clamped_pixels.shape == (4,) and curves.finite


def test_entropy_curves_flag_non_finite_values_without_raising():
    g = torch.Generator().manual_seed(9)
    x, recon = torch.randn(5, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    recon[1, 2, 3] = float("nan")
    curves = entropy.entropy_curves(x, recon)
    assert not curves.finite
    assert np.isfinite(curves.diff_entropy[:2]).all() and np.isnan(curves.diff_entropy[2])


def test_bad_arguments_raise_config_error():
    x = torch.zeros(4, 6)
    with pytest.raises(ConfigError):
        entropy.kl_per_image(x, torch.zeros(4, 5))
    with pytest.raises(ConfigError):
        entropy.differential_entropy(torch.zeros(1, 6))
    with pytest.raises(ConfigError):
        entropy.differential_entropy(torch.randn(4, 6), sigma_floor_rel=0.0)
    with pytest.raises(ConfigError):
        entropy.entropy_curves(x, torch.zeros(2, 3, 6))

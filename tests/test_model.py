"""The tanh network: method §1's init statistics, seeding, and every layer's activations."""

import math

import pytest
import torch

from infoflow_ray.config import NetworkSpec
from infoflow_ray.model import TanhNetwork

SIGMA_W2, SIGMA_B2 = 1.5, 0.3


@pytest.fixture(scope="module")
def wide_net() -> TanhNetwork:
    return TanhNetwork(NetworkSpec(SIGMA_W2, depth=6, sigma_b2=SIGMA_B2), seed=3)


def _excess_kurtosis(v: torch.Tensor) -> float:
    v = v.double() - v.double().mean()
    return float((v**4).mean() / (v**2).mean() ** 2 - 3.0)


def test_weights_are_gaussian_with_variance_sigma_w2_over_fan_in(wide_net):
    for layer in wide_net.layers:
        fan_out, fan_in = layer.weight.shape
        w = layer.weight.detach().double().flatten()
        n, expected = w.numel(), SIGMA_W2 / fan_in
        # sampling error of a variance estimate is sqrt(2/n) relative; of a mean sqrt(var/n): allow 5 of each
        assert w.var().item() == pytest.approx(expected, rel=5 * math.sqrt(2 / n))
        assert abs(w.mean().item()) < 5 * math.sqrt(expected / n)
    # Gaussian, not uniform with the same variance (excess kurtosis 0 vs −1.2); error sqrt(24/n) ≈ 0.006
    assert abs(_excess_kurtosis(wide_net.layers[0].weight.detach().flatten())) < 0.05


def test_fan_in_not_fan_out_sets_the_weight_scale(wide_net):
    # layer L-1 maps 784 -> 400, the last one 400 -> 10: their variances differ by exactly 784/400
    w_head, w_out = wide_net.layers[-2].weight, wide_net.layers[-1].weight
    assert w_head.shape == (400, 784) and w_out.shape == (10, 400)
    ratio = w_out.double().var().item() / w_head.double().var().item()
    assert ratio == pytest.approx(784 / 400, rel=0.15)


def test_biases_are_gaussian_with_variance_sigma_b2(wide_net):
    b = torch.cat([layer.bias.detach().double() for layer in wide_net.layers])
    n = b.numel()
    assert n == 4 * 784 + 400 + 10
    assert b.var().item() == pytest.approx(SIGMA_B2, rel=5 * math.sqrt(2 / n))
    assert abs(b.mean().item()) < 5 * math.sqrt(SIGMA_B2 / n)


def test_zero_bias_variance_gives_zero_biases():
    net = TanhNetwork(NetworkSpec(1.0, 3, sigma_b2=0.0, n_inputs=20, n_outputs=5), seed=0)
    assert all(torch.count_nonzero(layer.bias) == 0 for layer in net.layers)


def test_parameter_shapes_follow_the_width_profile():
    spec = NetworkSpec(1.76, 5, widths="shrinking", n_inputs=64, n_outputs=4)
    net = TanhNetwork(spec, seed=0)
    widths = spec.layer_widths
    assert [tuple(layer.weight.shape) for layer in net.layers] == list(zip(widths[1:], widths[:-1]))
    assert [tuple(layer.bias.shape) for layer in net.layers] == [(w,) for w in widths[1:]]


def test_same_seed_same_parameters_other_seed_other_parameters():
    spec = NetworkSpec(1.76, 4, n_inputs=50, n_outputs=10)
    a, b, c = TanhNetwork(spec, seed=7), TanhNetwork(spec, seed=7), TanhNetwork(spec, seed=8)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


def test_seed_does_not_depend_on_global_torch_rng():
    spec = NetworkSpec(1.76, 3, n_inputs=30, n_outputs=5)
    torch.manual_seed(1)
    a = TanhNetwork(spec, seed=0)
    torch.manual_seed(2)
    torch.rand(1000)
    b = TanhNetwork(spec, seed=0)
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters()))


def test_activations_are_every_layer_of_the_tanh_network():
    spec = NetworkSpec(1.76, 5, widths=(40, 35, 30, 30, 20, 6), n_inputs=40, n_outputs=6)
    net = TanhNetwork(spec, seed=1)
    x = torch.rand(17, 40, generator=torch.Generator().manual_seed(0))
    acts = net.activations(x)
    assert len(acts) == spec.depth + 1
    assert [tuple(a.shape) for a in acts] == [(17, w) for w in spec.layer_widths]
    assert torch.equal(acts[0], x)
    for layer, a_prev, a in zip(net.layers, acts[:-1], acts[1:]):
        by_hand = torch.tanh(a_prev.double() @ layer.weight.double().T + layer.bias.double())
        assert torch.allclose(a.double(), by_hand, atol=1e-6)
    for a in acts[1:]:
        assert (a.abs() < 1).all()
    assert torch.equal(net(x), acts[-1])
    assert torch.equal(net.next_activation(3, acts[2]), acts[3])


def test_activations_do_not_track_gradients_or_change_the_input():
    net = TanhNetwork(NetworkSpec(1.76, 3, n_inputs=12, n_outputs=3), seed=0)
    x = torch.rand(4, 12)
    before = x.clone()
    acts = net.activations(x)
    assert torch.equal(x, before)
    assert not any(a.requires_grad for a in acts[1:])
    assert net(x).requires_grad  # forward stays differentiable for training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_network_on_cuda_as_on_cpu():
    spec = NetworkSpec(1.76, 4, n_inputs=50, n_outputs=10)
    cpu, gpu = TanhNetwork(spec, seed=5), TanhNetwork(spec, seed=5, device="cuda")
    for pc, pg in zip(cpu.parameters(), gpu.parameters()):
        assert pg.device.type == "cuda"
        assert torch.equal(pc, pg.cpu())

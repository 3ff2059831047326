"""Network families (cnn, resnet, resmlp) without Ray: seeded, shaped, decodable, and the CNN's phases."""

import dataclasses

import pytest
import torch

from infoflow_ray import families
from infoflow_ray.config import CascadeSpec, NetworkSpec
from infoflow_ray.data import load_dataset
from infoflow_ray.errors import ConfigError
from infoflow_ray.families.cascade import decode_chain, train_module_cascade
from infoflow_ray.predict import predict_trainability
from infoflow_ray.sweep.grid import resolve_grid


def spec(architecture, depth=6, **kw):
    return NetworkSpec(sigma_w2=1.76, depth=depth, architecture=architecture, channels=4, **kw)


@pytest.fixture(scope="module")
def mnist():
    data = load_dataset("mnist_t10k")
    return dataclasses.replace(data, train_x=data.train_x[:2000], train_y=data.train_y[:2000])


@pytest.mark.parametrize("architecture", ["cnn", "resnet", "resmlp"])
def test_each_family_is_seeded_and_its_activations_have_the_layer_shapes(architecture, mnist):
    x = mnist.test_x[:5]
    a, b = families.build(spec(architecture), 0), families.build(spec(architecture), 0)
    other = families.build(spec(architecture), 1)
    acts = a.activations(x)
    assert all(torch.equal(u, v) for u, v in zip(acts, b.activations(x)))
    assert not torch.equal(acts[1], other.activations(x)[1])
    assert len(acts) == 7 and torch.equal(acts[0], x) and torch.equal(a(x), acts[-1])
    assert [t[0].numel() for t in acts] == list(spec(architecture).layer_widths)
    if architecture != "resmlp":
        assert [tuple(t.shape[1:]) for t in acts[1:]] == [(4, 28, 28), (4, 14, 14)] + [(4, 7, 7)] * 3 + [(10,)]


def test_conv_weights_follow_sigma_w2_over_fan_in():
    net = families.build(NetworkSpec(sigma_w2=2.0, depth=8, architecture="cnn", channels=32), 0)
    body = net.layers[4].inner.weight  # a 32 → 32 3×3 convolution: fan_in = 32·9
    assert body.var().item() == pytest.approx(2.0 / (32 * 9), rel=0.05)
    assert net.layers[0].inner.weight.var().item() == pytest.approx(2.0 / 9, rel=0.3)  # 1 → 32: fan_in 9


def test_the_residual_blocks_keep_their_input_and_are_not_bounded():
    net = families.build(spec("resnet", sigma_b2=0.0), 0)
    x = torch.rand(3, 784)
    acts = net.activations(x)
    block = net.layers[3]
    assert torch.allclose(acts[4], acts[3] + block.conv2(torch.tanh(block.conv1(acts[3]))))
    assert [net.bounded(layer) for layer in range(7)] == [True, True, True, True, False, False, True]


@pytest.mark.parametrize("architecture", ["cnn", "resnet", "resmlp"])
def test_the_decoders_reconstruct_from_layer_1_better_than_a_constant_image(architecture):
    """Two epochs on the 8,000 training images: with one epoch on 2,000 the 4-channel transposed convolutions are
    still at 1.5× the best constant's MSE (measured), with 2 × 8,000 at a quarter of it."""
    data = load_dataset("mnist_t10k")
    net = families.build(spec(architecture), 0)
    trained = train_module_cascade(net, data.train_x, CascadeSpec(epochs=2), seed=0)
    x = data.test_x[:500]
    recon = decode_chain(trained.decoders, 1, net.next_activation(1, x))
    best_constant = (x - data.train_x.mean(dim=0)).square().mean()
    assert recon.shape == x.shape
    assert (recon - x).square().mean() < 0.5 * best_constant
    assert torch.isfinite(trained.decoder_loss).all() and trained.decoder_loss.shape == (6,)


def test_the_cascade_trains_each_decoder_as_if_alone(mnist):
    """All decoders step on one batch sequence; each sees only its own loss (disjoint parameters)."""
    net = families.build(spec("cnn"), 0)
    short = CascadeSpec(epochs=1, batch_size=256)
    x = mnist.train_x[:512]
    together = train_module_cascade(net, x, short, seed=3).decoders
    alone = families.cascade.ModuleDecoders(net, 3, "cpu")
    optimizer = torch.optim.Adam(alone.decoders[1].parameters(), lr=short.lr)
    from infoflow_ray import seeding

    for batch in seeding.permutation(512, 3, "cascade-batches", 0).split(256):
        acts = net.activations(x[batch])
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(alone.decode(2, acts[2]), acts[1]).backward()
        optimizer.step()
    for p, q in zip(together.decoders[1].parameters(), alone.decoders[1].parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_the_cnn_cutoff_is_shallower_in_the_ordered_phase_than_near_the_critical_point(mnist):
    """Mean-field theory gives the CNN the MLP's critical σw² (Xiao et al. 2018): information dies sooner in the
    ordered phase. Measured (12 layers, 8 channels, 2,000 images, 1 epoch): per-image cutoffs 4.4 and 6.6 at
    σw² = 0.5 against 6.7 and 7.2 at 1.76 (seeds 0, 1)."""
    cutoffs = {
        s: sum(
            predict_trainability(
                NetworkSpec(s, 12, architecture="cnn", channels=8), CascadeSpec(eval_samples=200), mnist, seed=seed
            ).per_image_cutoff_mean
            for seed in (0, 1)
        )
        / 2
        for s in (0.5, 1.76)
    }
    assert cutoffs[0.5] < cutoffs[1.76] - 0.5


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"architecture": ("rnn",)}, "architecture must be one of mlp, cnn, resnet, resmlp, got 'rnn'"),
        ({"architecture": ("cnn",), "channels": 0}, "channels must be an integer >= 1, got 0"),
        ({"architecture": ("cnn",), "depths": (3, 6)}, "architecture 'cnn' on mnist_t10k at depth 3: depth must be"),
        (
            {"architecture": ("cnn",), "datasets": ("synthetic",), "data": {"synthetic_inputs": 60}},
            "architecture 'cnn' on synthetic at depth 6: n_inputs must be a square image of side divisible by 4",
        ),
        ({"architecture": ("mlp", "cnn"), "depths": (5, 6), "interpret": {"enabled": True}}, "with interpret"),
    ],
)
def test_bad_architecture_settings_fail_in_one_line(changes, message):
    with pytest.raises(ConfigError) as info:
        resolve_grid("tiny", overrides=changes)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_mlp_task_ids_do_not_change_and_architectures_get_their_own():
    mlp = resolve_grid("tiny").tasks()
    mixed = resolve_grid("tiny", overrides={"architecture": ["mlp", "cnn", "resnet"], "depths": [5, 6]}).tasks()
    again = resolve_grid("tiny", overrides={"depths": [5, 6]}).tasks()
    assert "architecture" not in mlp[0].config()["network"] and "channels" not in mlp[0].config()["network"]
    assert {t.task_id for t in again} <= {t.task_id for t in mixed}
    assert {t.network.profile_name for t in mixed} == {"wide", "cnn-c64", "resnet-c64"}
    assert len({t.task_id for t in mixed}) == len(mixed) == 3 * len(again)


def test_a_gpu_trains_the_cnn_body_as_one_grouped_convolution_with_the_same_decoders(mnist):
    """``lockstep`` (what 'auto' picks on CUDA) stacks the equal body decoders into one grouped transposed
    convolution; run here on the CPU, it must give the decoders ``layerwise`` gives one by one."""
    net = families.build(spec("cnn", depth=9), 0)
    x = mnist.train_x[:640]
    one_by_one = train_module_cascade(net, x, CascadeSpec(strategy="layerwise"), seed=0)
    grouped = train_module_cascade(net, x, CascadeSpec(strategy="lockstep"), seed=0)
    assert (one_by_one.strategy, grouped.strategy) == ("module", "module-grouped")
    for p, q in zip(one_by_one.decoders.parameters(), grouped.decoders.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert torch.allclose(one_by_one.decoder_loss, grouped.decoder_loss, rtol=1e-5)

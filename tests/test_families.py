"""Network families (mlp, cnn, resnet, resmlp) without Ray: one registry and interface, seeded, shaped,
decodable, the CNN's phases, and every job's use of a family (search, interpret, grouped baselines)."""

import dataclasses

import pytest
import torch

from infoflow_ray import families
from infoflow_ray.config import CascadeSpec, NetworkSpec
from infoflow_ray.data import load_dataset
from infoflow_ray.errors import ConfigError
from infoflow_ray.families.cascade import decode_chain, train_module_cascade
from infoflow_ray.families.layered import Layered
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


def test_an_unknown_family_fails_in_one_line_listing_the_known():
    with pytest.raises(ConfigError) as info:
        NetworkSpec(1.76, 6, architecture="rnn")
    assert str(info.value) == "architecture must be one of mlp, cnn, resnet, resmlp, got 'rnn'"
    with pytest.raises(ConfigError, match="profile must be one written by a family"):
        families.of_profile("rnn-c4")


def test_each_family_owns_its_shapes_and_its_profile_label():
    """The sizes come from the family module (config.py no longer works them out)."""
    cnn = NetworkSpec(1.76, 6, architecture="cnn", channels=4)
    assert families.get("cnn").layer_shapes(cnn) == ((784,), (4, 28, 28), (4, 14, 14), *[(4, 7, 7)] * 3, (10,))
    assert cnn.layer_widths == (784, 3136, 784, 196, 196, 196, 10) and cnn.cutoff_last_layer() == 5
    assert NetworkSpec(1.76, 6).layer_widths == (784,) * 5 + (400, 10) and NetworkSpec(1.76, 6).cutoff_last_layer() == 4
    for architecture, residual in (("mlp", False), ("cnn", False), ("resnet", True), ("resmlp", True)):
        profile = spec(architecture).profile_name
        assert (
            families.of_profile(profile) is families.get(architecture)
            and spec(architecture).family.residual is residual
        )


class _Gated(Layered, torch.nn.Module):
    """A family written inside this test: a_l = tanh(W a_{l−1} + b) · sigmoid(g_l) with a learnt gate per unit."""

    def __init__(self, spec, seed, device):
        super().__init__()
        self.spec = spec
        generator = torch.Generator().manual_seed(seed)
        widths = spec.layer_widths
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        with torch.no_grad():
            for layer in self.layers:
                layer.weight.normal_(0.0, (spec.sigma_w2 / layer.in_features) ** 0.5, generator=generator)
        self.gates = torch.nn.Parameter(torch.ones(spec.depth, max(widths)))
        self.to(device)

    @property
    def depth(self):
        return len(self.layers)

    def _layer(self, layer, a):
        out = torch.tanh(self.layers[layer - 1](a))
        return out * torch.sigmoid(self.gates[layer - 1, : out.shape[1]])

    def decoder(self, layer):
        linear = self.layers[layer - 1]
        return torch.nn.Sequential(torch.nn.Linear(linear.out_features, linear.in_features), torch.nn.Tanh())


class Gated(families.Family):
    name = "gated"

    def layer_shapes(self, spec):
        return ((spec.n_inputs,), *[(32,)] * (spec.depth - 1), (spec.n_outputs,))

    def profile_name(self, spec):
        return "gated-32"

    def build(self, spec, seed, device="cpu"):
        return _Gated(spec, seed, device)


@pytest.fixture
def gated():
    family = families.register(Gated())
    yield family
    del families.FAMILIES[family.name]


def test_a_new_family_is_one_module_registered_and_its_cascade_runs_through_the_interface(gated, mnist):
    """No other file knows the family: the spec, the cascade, the curves and the cutoff all come through it."""
    with pytest.raises(ConfigError, match="architecture must be one of mlp, cnn, resnet, resmlp, gated, got 'x'"):
        NetworkSpec(1.76, 5, architecture="x")
    net_spec = NetworkSpec(1.76, 5, architecture="gated")
    assert net_spec.layer_widths == (784, 32, 32, 32, 32, 10) and net_spec.profile_name == "gated-32"
    assert families.of_profile("gated-32") is gated
    prediction = predict_trainability(net_spec, CascadeSpec(eval_samples=100), mnist, seed=0)
    assert prediction.strategy == "module" and prediction.kl_mean.shape == (6,) and prediction.finite
    assert prediction.kl_mean[0] == 0 and prediction.kl_mean[1] > 0  # layer 0 is the image itself
    assert 1 <= prediction.cutoffs["kl_mean"].layer <= 5


def test_the_mlp_search_keeps_its_ids_and_a_cnn_search_asks_for_cnn_tasks():
    """Searches are planned per (architecture, dataset, σb²); the MLP's search id is the one of before families
    were an axis (pinned from commit 5a818e7)."""
    from infoflow_ray.sweep.adaptive import Stored, plan

    mlp = plan(resolve_grid("tiny", overrides={"search": {"enabled": True}}), Stored())
    assert [g.search_id for g in mlp] == ["46f8a97eade2c2a3"]
    grid = resolve_grid(
        "tiny", overrides={"search": {"enabled": True}, "architecture": ["mlp", "cnn"], "depths": [5, 6]}
    )
    groups = plan(grid, Stored())
    assert [g.profile for g in groups] == ["wide", "cnn-c64"] and len({g.search_id for g in groups}) == 2
    cnn = groups[1]
    assert cnn.asks and all(t.kind == "cascade" and t.network.architecture == "cnn" for t in cnn.asks)
    assert {t.task_id for t in cnn.asks} <= {t.task_id for t in grid.tasks()}


def test_interpret_rows_of_a_trained_cnn_fit_their_tables():
    """--interpret for a family with transposed-convolution decoders: retraced images and perfect inputs."""
    from infoflow_ray.data import Dataset
    from infoflow_ray.store import _conform
    from infoflow_ray.sweep.task_runner import interpret_rows
    from infoflow_ray.training import BaselineTrainer

    grid = resolve_grid(
        "tiny",
        overrides={"architecture": ["cnn"], "channels": 2, "depths": [5], "interpret": {"enabled": True}},
    )
    task = next(t for t in grid.tasks() if t.kind == "baseline")
    full = load_dataset("mnist_t10k")
    data = Dataset(full.name, full.train_x[:500], full.train_y[:500], full.test_x[:200], full.test_y[:200], 10)
    trainer = BaselineTrainer(task.network, task.train, data, task.seed)
    trainer.run_epoch()
    rows = interpret_rows(task, trainer.network, data, trainer.epoch)
    for table, table_rows in rows.items():
        assert len(table_rows) and _conform(table, table_rows).num_rows == len(table_rows), table
    perfect = [r for r in rows["perfect_inputs"] if r["layer"] == 0]
    assert sorted(r["label"] for r in perfect) == list(range(10))
    assert all(len(r["pixels"]) == 784 and r["profile"] == "cnn-c2" for r in rows["retraced"])


def test_grouped_baselines_of_a_family_without_stacking_train_one_by_one(mnist):
    """``baseline_group > 1`` for a CNN: the group's networks train as ``train_baseline`` trains each alone."""
    from infoflow_ray.batched_training import train_baselines_batched
    from infoflow_ray.config import TrainSpec
    from infoflow_ray.training import train_baseline

    small = dataclasses.replace(mnist, train_x=mnist.train_x[:300], train_y=mnist.train_y[:300])
    specs = [NetworkSpec(s, 5, architecture="cnn", channels=2) for s in (0.5, 1.76)]
    train = TrainSpec(max_epochs=2, stop_at_threshold=False, lr=0.01)
    grouped = train_baselines_batched(specs, train, small, [0, 1])
    for spec_, seed, result in zip(specs, [0, 1], grouped):
        alone = train_baseline(spec_, train, small, seed)
        assert [r.test_accuracy for r in result.epochs] == [r.test_accuracy for r in alone.epochs]
        assert [r.train_loss for r in result.epochs] == [r.train_loss for r in alone.epochs]
    assert grouped[0].epochs[-1].train_loss != grouped[1].epochs[-1].train_loss
    grid = resolve_grid(
        "tiny", overrides={"architecture": ["cnn"], "depths": [5, 6], "resources": {"baseline_group": 4}}
    )
    assert grid.resources.baseline_group == 4  # no longer refused


def test_the_families_docstring_example_runs():
    import doctest

    assert doctest.testmod(families).failed == 0

"""The decoder cascade and the prediction on real data (docs/method.md §2–4).

The expensive part — one cascade epoch on MNIST-t10k for a depth-30 `wide` network in the ordered phase and at
criticality — runs once per σw² in a module fixture; the mechanics are checked on a depth-8 network trained on
1,000 images.
"""

import dataclasses

import numpy as np
import pytest
import torch

from infoflow_ray import cascade, entropy, theory
from infoflow_ray.cascade import Decoders, reconstruct, reconstruct_in_chunks, train_cascade
from infoflow_ray.config import CascadeSpec, NetworkSpec
from infoflow_ray.data import Dataset, load_dataset
from infoflow_ray.model import TanhNetwork
from infoflow_ray.predict import Prediction, predict_trainabilities, predict_trainability

ORDERED, CRITICAL = 0.5, 1.76
DEEP = 30
SMALL_DEPTH = 8
DECODER_ATOL = 1e-4  # decoders trained by two engines on the same batches (see the first test that uses it)


@pytest.fixture(scope="module")
def t10k() -> Dataset:
    return load_dataset("mnist_t10k")


@pytest.fixture(scope="module")
def small_t10k(t10k) -> Dataset:
    return dataclasses.replace(t10k, train_x=t10k.train_x[:1000], train_y=t10k.train_y[:1000])


@pytest.fixture(scope="module")
def phases(t10k) -> dict[float, Prediction]:
    """One epoch of the cascade on 4,000 training images, evaluated on 200 test images, per σw². (On 1,000 images
    the critical network's deepest layers clamp a few pixels and its layer-1 decoder is too rough for the
    reconstruction test; on 2,000 too: layer-1 MSE 0.43–0.44 of the mean image's, seeds 0–2, against 0.27 on
    4,000. The evaluation on 200 images instead of 500 leaves the margins wide: seed 0, ordered against critical,
    kl_mean cutoff 8 against 28, per-image mean 7.7 against 27.4 on 500 images.)"""
    spec = CascadeSpec(eval_samples=200, stored_images=200)
    half = dataclasses.replace(t10k, train_x=t10k.train_x[:4000], train_y=t10k.train_y[:4000])
    return {s: predict_trainability(NetworkSpec(s, DEEP), spec, half, seed=0) for s in (ORDERED, CRITICAL)}


# --- the science on MNIST-t10k ----------------------------------------------------------------------------


def test_curves_cover_layers_zero_to_L(phases):
    for p in phases.values():
        assert p.finite and p.depth == DEEP
        assert p.kl_per_image.shape == (DEEP + 1, 200)
        assert p.kl_mean.shape == p.diff_entropy.shape == p.clamped_pixels.shape == (DEEP + 1,)
        assert np.all(p.kl_per_image[0] == 0) and np.all(p.kl_per_image[1:] > 0)
        assert p.cutoff_last_layer == DEEP - 2


def test_kl_cutoff_is_smaller_in_the_ordered_phase_than_at_criticality(phases):
    ordered, critical = phases[ORDERED].cutoffs["kl_mean"], phases[CRITICAL].cutoffs["kl_mean"]
    assert ordered.saturated and ordered.finite and critical.finite
    assert ordered.layer + 5 <= critical.layer
    # the same ordering for the per-image cutoffs and the normalised median curve
    assert phases[ORDERED].per_image_cutoff_mean + 5 <= phases[CRITICAL].per_image_cutoff_mean
    assert (
        phases[ORDERED].cutoffs["kl_median_normalised"].layer + 5
        <= phases[CRITICAL].cutoffs["kl_median_normalised"].layer
    )


def test_ordered_phase_collapses_deep_layers_and_criticality_does_not(phases):
    floor = entropy.HALF_LN_2PIE + np.log(CascadeSpec().sigma_floor_rel / 784)
    ordered, critical = phases[ORDERED], phases[CRITICAL]
    deep = slice(DEEP - 8, DEEP - 1)  # layers 22..28, the deep end of the constant-width run
    assert np.all(ordered.clamped_pixels[deep] == 784)
    assert ordered.diff_entropy[deep] == pytest.approx(floor, abs=1e-9)
    assert np.all(critical.clamped_pixels[1:] == 0)
    assert np.all(critical.diff_entropy[1:] > floor + 5)


def test_layer_one_reconstruction_at_criticality_is_close_to_the_input(phases, t10k):
    p = phases[CRITICAL]
    n = p.stored_images.shape[0]
    assert n == 200 and p.stored_layers[0] == 0 and 1 in p.stored_layers
    x = t10k.test_x[:n]
    assert np.array_equal(p.stored_images[:, 0], x.numpy())
    x_hat_1 = torch.from_numpy(p.stored_images[:, list(p.stored_layers).index(1)])
    mse_reconstruction = (x_hat_1 - x).square().mean().item()
    mse_mean_image = (x.mean(dim=0) - x).square().mean().item()  # the best constant image
    assert mse_reconstruction < 0.3 * mse_mean_image


@pytest.fixture(scope="module")
def critical_line(small_t10k) -> dict[tuple[float, float], float]:
    """Per-image cutoffs of depth-20 cascades (1,000 training images, 100 test images) at σw² = 1 and at the
    mean-field critical σw² of σb² = 0.05 (1.761) and of σb² = 0.5 (2.843), keyed by (σw², σb²)."""
    spec = CascadeSpec(eval_samples=100)
    points = [(s, b) for b in (0.05, 0.5) for s in (1.0, round(float(theory.critical_sigma_w2(b)), 3))]
    return {
        (s, b): predict_trainability(NetworkSpec(s, 20, b), spec, small_t10k, seed=0).per_image_cutoff_mean
        for s, b in points
    }


def test_the_cutoff_rises_to_the_critical_point_of_each_sigma_b2_as_mean_field_says(critical_line):
    """The critical line on real cascades: for both σb² the cutoff at the critical σw² lies deeper than at the
    ordered σw² = 1, and at σw² = 1 it lies deeper for σb² = 0.05 (critical point 1.761, 6ξ_c = 21.8) than for
    σb² = 0.5 (critical point 2.843, 6ξ_c = 8.4): the critical point moves with σb² as mean field says. Measured
    (seed 0): σb² = 0.05: 8.2 at σw² = 1, 17.4 at 1.761; σb² = 0.5: 3.9 at 1, 7.1 at 2.843 (last layer 18).
    Deep in the chaotic phase the cutoff does not fall again within depth 30 at this budget (σw² = 4: 26.5 against
    22.8 at 1.76, 1,000 images): the chaotic side is not checked here (README: the cutoff stays high there)."""
    c = critical_line
    assert c[1.761, 0.05] >= c[1.0, 0.05] + 5, c
    assert c[2.843, 0.5] >= c[1.0, 0.5] + 2, c
    assert c[1.0, 0.05] >= c[1.0, 0.5] + 2, c


# --- mechanics on a small network ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_net() -> TanhNetwork:
    return TanhNetwork(NetworkSpec(CRITICAL, SMALL_DEPTH), seed=0)


@pytest.fixture(scope="module")
def trained_by_strategy(small_net, small_t10k) -> dict[str, cascade.TrainedCascade]:
    return {
        s: train_cascade(small_net, small_t10k.train_x, CascadeSpec(strategy=s), seed=0)
        for s in ("layerwise", "lockstep")
    }


def test_layerwise_and_lockstep_train_the_same_decoders(trained_by_strategy):
    layerwise, lockstep = trained_by_strategy["layerwise"], trained_by_strategy["lockstep"]
    assert (layerwise.strategy, lockstep.strategy) == ("layerwise", "lockstep")
    for a, b in zip(
        layerwise.decoders.weights + layerwise.decoders.biases,
        lockstep.decoders.weights + lockstep.decoders.biases,
        strict=True,
    ):
        assert a.shape == b.shape
        # DECODER_ATOL: float32 summation order differs between the strategies, and Adam's normalised steps carry
        # those round-off differences along an epoch: measured up to 9e-6 here, machine-dependent. A different
        # batch order (the bug this guards against) differs by ~1e-2, a hundred times above the tolerance.
        assert torch.allclose(a, b, rtol=0, atol=DECODER_ATOL)
    assert torch.allclose(layerwise.decoder_loss, lockstep.decoder_loss, rtol=1e-4)


def test_layerwise_and_lockstep_give_the_same_cutoffs(small_t10k):
    predictions = [
        predict_trainability(
            NetworkSpec(ORDERED, SMALL_DEPTH), CascadeSpec(eval_samples=200, strategy=s), small_t10k, seed=0
        )
        for s in ("layerwise", "lockstep")
    ]
    assert predictions[0].cutoffs == predictions[1].cutoffs
    assert predictions[0].per_image_cutoff_mean == predictions[1].per_image_cutoff_mean
    np.testing.assert_allclose(predictions[0].kl_per_image, predictions[1].kl_per_image, rtol=1e-3, atol=1e-6)


def test_cascades_trained_together_equal_each_trained_alone(small_t10k, trained_by_strategy):
    """K networks (different σw², σb², seeds) in one lockstep group: each gets the decoders it gets alone."""
    specs = [
        NetworkSpec(CRITICAL, SMALL_DEPTH),
        NetworkSpec(ORDERED, SMALL_DEPTH),
        NetworkSpec(3.0, SMALL_DEPTH, sigma_b2=0.0),
    ]
    seeds = [0, 1, 2]
    networks = [TanhNetwork(spec, seed) for spec, seed in zip(specs, seeds)]
    together = cascade.train_cascades(networks, small_t10k.train_x, CascadeSpec(strategy="lockstep"), seeds)
    alone = [trained_by_strategy["layerwise"]] + [
        train_cascade(net, small_t10k.train_x, CascadeSpec(strategy="layerwise"), seed)
        for net, seed in zip(networks[1:], seeds[1:])
    ]
    for t, a in zip(together, alone, strict=True):
        assert t.strategy == "lockstep"
        for x, y in zip(t.decoders.weights + t.decoders.biases, a.decoders.weights + a.decoders.biases, strict=True):
            assert torch.allclose(x, y, rtol=0, atol=DECODER_ATOL)
        assert torch.allclose(t.decoder_loss, a.decoder_loss, rtol=1e-4)
    # the networks really differ: a mix-up of decoders between networks would not pass the comparison above
    assert (together[0].decoder_loss - together[1].decoder_loss).abs().max() > 1e-3


def test_predictions_made_together_equal_predictions_made_alone(small_t10k):
    specs = [NetworkSpec(ORDERED, SMALL_DEPTH), NetworkSpec(CRITICAL, SMALL_DEPTH)]
    spec = CascadeSpec(eval_samples=200, strategy="lockstep")
    together = predict_trainabilities(specs, spec, small_t10k, seeds=[3, 4])
    alone = [predict_trainability(s, spec, small_t10k, seed=seed) for s, seed in zip(specs, [3, 4])]
    for t, a in zip(together, alone, strict=True):
        assert t.cutoffs == a.cutoffs
        np.testing.assert_allclose(t.kl_per_image, a.kl_per_image, rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(t.diff_entropy, a.diff_entropy, rtol=1e-4)


def test_cascades_trained_together_need_equal_widths(small_t10k):
    networks = [TanhNetwork(NetworkSpec(1.0, 5), 0), TanhNetwork(NetworkSpec(1.0, 6), 0)]
    with pytest.raises(ValueError, match="same layer widths"):
        cascade.train_cascades(networks, small_t10k.train_x, CascadeSpec(strategy="lockstep"), [0, 0])
    with pytest.raises(ValueError, match="one seed per network"):
        cascade.train_cascades(networks[:1], small_t10k.train_x, CascadeSpec(), [0, 1])


def _precision_probe(seen: list):
    """A progress callback: it runs inside the training, where it records torch's float32 matmul precision."""
    return lambda done, total: seen.append(torch.get_float32_matmul_precision())


def test_tf32_training_changes_nothing_on_a_cpu(small_net, small_t10k, trained_by_strategy):
    """tf32_training is a CUDA switch: on a CPU torch's float32 matmul precision stays 'highest' inside the
    training (seen from its progress callback; 'high' would allow reduced-precision fast paths where a CPU backend
    has them), the decoders are bit for bit those trained without the flag, and the setting is untouched after."""
    assert torch.get_float32_matmul_precision() == "highest"
    seen = []
    tf32 = train_cascade(
        small_net,
        small_t10k.train_x,
        CascadeSpec(strategy="layerwise", tf32_training=True),
        seed=0,
        progress=_precision_probe(seen),
    )
    assert seen and set(seen) == {"highest"}
    plain = trained_by_strategy["layerwise"]
    for a, b in zip(
        tf32.decoders.weights + tf32.decoders.biases, plain.decoders.weights + plain.decoders.biases, strict=True
    ):
        assert torch.equal(a, b)
    assert torch.equal(tf32.decoder_loss, plain.decoder_loss)
    assert torch.get_float32_matmul_precision() == "highest"


@pytest.mark.parametrize("before", ["highest", "medium"])
def test_tf32_switch_sets_torch_matmul_precision_and_restores_what_was_set(before):
    """The block the CUDA training runs in (``_tf32_matmuls``): on, torch's float32 matmuls are 'high' (TF32
    tensor cores) inside and whatever was set before is back afterwards, also when the block raises; off, it
    changes nothing."""
    torch.set_float32_matmul_precision(before)
    try:
        with cascade._tf32_matmuls(True):
            assert torch.get_float32_matmul_precision() == "high"
        assert torch.get_float32_matmul_precision() == before
        with pytest.raises(RuntimeError, match="inside"), cascade._tf32_matmuls(True):
            assert torch.get_float32_matmul_precision() == "high"
            raise RuntimeError("inside")
        assert torch.get_float32_matmul_precision() == before
        with cascade._tf32_matmuls(False):
            assert torch.get_float32_matmul_precision() == before
        assert torch.get_float32_matmul_precision() == before
    finally:
        torch.set_float32_matmul_precision("highest")


def test_networks_per_device_is_one_on_cpu_and_memory_grows_with_depth():
    widths_20, widths_200 = NetworkSpec(1.0, 20).layer_widths, NetworkSpec(1.0, 200).layer_widths
    assert cascade.networks_per_device(widths_20, 64, "cpu") == 1
    small, big = cascade.cascade_bytes_per_network(widths_20, 64), cascade.cascade_bytes_per_network(widths_200, 64)
    assert 9 < big / small < 11
    # ≈ 5 float32 copies of the decoders' 18 × 784² + … parameters
    assert 5 * 4 * 18 * 784**2 < small < 6 * 4 * 20 * 785**2


def test_training_reduces_every_decoders_mse(small_net, small_t10k, trained_by_strategy):
    acts = small_net.activations(small_t10k.test_x[:256])
    untrained = Decoders.init(small_net.spec.layer_widths, seed=0, device="cpu")
    trained = trained_by_strategy["layerwise"].decoders
    for layer in range(1, SMALL_DEPTH + 1):
        before = (untrained.decode(layer, acts[layer]) - acts[layer - 1]).square().mean()
        after = (trained.decode(layer, acts[layer]) - acts[layer - 1]).square().mean()
        assert after < before
        if layer <= SMALL_DEPTH - 2:  # the last two decode from 400 and 10 units: less to recover
            assert after < 0.5 * before


def test_decoder_init_is_pytorch_default_and_seeded():
    widths = (30, 20, 10)
    a, b = Decoders.init(widths, 0, "cpu"), Decoders.init(widths, 0, "cpu")
    assert [tuple(v.shape) for v in a.weights] == [(30, 20), (20, 10)]
    assert [tuple(c.shape) for c in a.biases] == [(30,), (20,)]
    for v, c, n_l in zip(a.weights, a.biases, widths[1:]):
        bound = n_l**-0.5
        assert v.abs().max() <= bound and c.abs().max() <= bound
        assert v.abs().max() > 0.8 * bound  # uniform over the whole interval, not a narrower one
    assert all(torch.equal(u, v) for u, v in zip(a.weights + a.biases, b.weights + b.biases))
    assert not torch.equal(a.weights[0], Decoders.init(widths, 1, "cpu").weights[0])


def _naive_reconstruction(network, decoders, x, layer):
    a = x
    for k in range(1, layer + 1):
        a = torch.tanh(a @ network.layers[k - 1].weight.T + network.layers[k - 1].bias)
    for k in range(layer, 0, -1):
        a = torch.tanh(a @ decoders.weights[k - 1].T + decoders.biases[k - 1])
    return a


@pytest.fixture(scope="module")
def shrinking():
    """A network whose widths all differ, so that any mixed-up layer fails on shapes or values."""
    net = TanhNetwork(NetworkSpec(CRITICAL, 6, widths="shrinking", n_inputs=48, n_outputs=5), seed=2)
    decoders = Decoders.init(net.spec.layer_widths, seed=2, device="cpu")
    x = torch.rand(9, 48, generator=torch.Generator().manual_seed(0))
    return net, decoders, x


@pytest.mark.parametrize("first, last", [(1, 6), (1, 1), (2, 4), (3, 3), (4, 6), (6, 6)])
def test_reconstruct_is_the_composition_of_decoders(shrinking, first, last):
    net, decoders, x = shrinking
    expected = torch.stack([_naive_reconstruction(net, decoders, x, layer) for layer in range(first, last + 1)])
    got = reconstruct(net, decoders, x, first, last)
    assert got.shape == (last - first + 1, 9, 48)
    assert torch.allclose(got, expected, atol=1e-6)
    a_first = net.activations(x)[first]
    assert torch.allclose(reconstruct(net, decoders, x, first, last, a_first=a_first), expected, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 3, 4])
def test_reconstruct_in_chunks_equals_one_chunk(shrinking, chunk):
    net, decoders, x = shrinking
    whole = list(reconstruct_in_chunks(net, decoders, x, layers_per_chunk=6))
    assert [first for first, _ in whole] == [1]
    parts = list(reconstruct_in_chunks(net, decoders, x, layers_per_chunk=chunk))
    assert [first for first, _ in parts] == list(range(1, 7, chunk))
    assert torch.allclose(torch.cat([r for _, r in parts]), whole[0][1], atol=1e-6)


@pytest.mark.parametrize("group", [None, 3])
def test_hand_written_mse_gradient_equals_autograd(group):
    g = torch.Generator().manual_seed(0)
    lead = () if group is None else (group,)
    a = torch.randn(*lead, 16, 7, generator=g, dtype=torch.float64)
    target = torch.rand(*lead, 16, 5, generator=g, dtype=torch.float64)
    V = torch.randn(*lead, 5, 7, generator=g, dtype=torch.float64).requires_grad_()
    c = torch.randn(*lead, 1, 5, generator=g, dtype=torch.float64).requires_grad_()
    y = torch.tanh(a @ V.transpose(-2, -1) + c)
    losses = (y - target).square().mean(dim=(-2, -1))
    losses.sum().backward()  # groups are independent: the sum's gradient is each group's own
    loss, dV, dc = cascade._mse_grads(y.detach(), target, a)
    assert torch.allclose(loss, losses.detach(), rtol=1e-12)
    assert torch.allclose(dV, V.grad, rtol=1e-10, atol=1e-14)
    assert torch.allclose(dc, c.grad.squeeze(-2), rtol=1e-10, atol=1e-14)


# --- the prediction as a function ---------------------------------------------------------------------------


def _assert_same_prediction(p: Prediction, q: Prediction) -> None:
    for name in (
        "kl_per_image",
        "kl_mean",
        "kl_median",
        "diff_entropy",
        "clamped_pixels",
        "decoder_loss",
        "stored_layers",
        "stored_images",
    ):
        assert np.array_equal(getattr(p, name), getattr(q, name)), name
    assert p.cutoffs == q.cutoffs
    assert p.per_image_cutoff_mean == q.per_image_cutoff_mean


def test_same_seed_same_prediction_and_inputs_untouched(small_t10k):
    before = {f: getattr(small_t10k, f).clone() for f in ("train_x", "train_y", "test_x", "test_y")}
    spec = CascadeSpec(eval_samples=200)
    runs = [predict_trainability(NetworkSpec(CRITICAL, SMALL_DEPTH), spec, small_t10k, seed=s) for s in (4, 4, 5)]
    _assert_same_prediction(runs[0], runs[1])
    assert not np.array_equal(runs[0].kl_per_image, runs[2].kl_per_image)
    for f, tensor in before.items():
        assert torch.equal(getattr(small_t10k, f), tensor), f


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_prediction_on_cuda_matches_cpu(small_t10k):
    spec = CascadeSpec(eval_samples=200)
    cpu = predict_trainability(NetworkSpec(CRITICAL, SMALL_DEPTH), spec, small_t10k, seed=0)
    gpu = predict_trainability(NetworkSpec(CRITICAL, SMALL_DEPTH), spec, small_t10k, seed=0, device="cuda")
    assert gpu.strategy == "lockstep" and gpu.finite
    assert small_t10k.train_x.device.type == "cpu"
    # Both sides compute in float32 at 'highest' matmul precision (tf32_training is off by default): they differ
    # only in summation order (2^-24 relative per rounding), grown by the decoders' SGD. The TF32 test below runs
    # the same cascade with 10-bit-mantissa operands (2^-11, ~8000× coarser) and stays within rtol 5e-3, so a
    # float32 CPU/GPU pair must too; 5e-2 would let a 5 % error in the GPU path through. The CPU analogue, measured
    # (this network, seed 0): layerwise against lockstep on the CPU (summation order only) differ by 1.3e-9 in
    # decoder loss and not at all in kl_mean; one side's decoder lr 5 % off moves kl_mean by 1.0e-2 and fails
    # rtol 5e-3 (1 % off: 2.3e-3, within it).
    np.testing.assert_allclose(gpu.kl_mean, cpu.kl_mean, rtol=5e-3, atol=1e-6)
    np.testing.assert_allclose(gpu.decoder_loss, cpu.decoder_loss, rtol=5e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tf32_training_on_cuda_keeps_the_cutoffs_and_restores_float32(small_t10k):
    """On CUDA the flag reaches torch: the decoders train with 'high' (TF32) matmuls, without it 'highest'; the
    setting is restored afterwards and the cutoffs do not move."""
    specs = {flag: CascadeSpec(eval_samples=200, tf32_training=flag) for flag in (False, True)}
    seen = {False: [], True: []}
    full, tf32 = (
        predict_trainability(
            NetworkSpec(ORDERED, SMALL_DEPTH),
            specs[flag],
            small_t10k,
            seed=0,
            device="cuda",
            progress=_precision_probe(seen[flag]),
        )
        for flag in (False, True)
    )
    assert seen[False] and set(seen[False]) == {"highest"}
    assert seen[True] and set(seen[True]) == {"high"}
    assert torch.get_float32_matmul_precision() == "highest"
    assert tf32.cutoffs == full.cutoffs
    np.testing.assert_allclose(tf32.kl_mean, full.kl_mean, rtol=5e-3, atol=1e-6)


def test_layerwise_chunks_are_runs_of_equally_shaped_layers():
    decoders = Decoders.init(NetworkSpec(1.0, 8).layer_widths, seed=0, device="cpu")  # 6 × (784, 784), then 2 heads
    assert cascade._consecutive_chunks(decoders, 4) == [[0, 1, 2, 3], [4, 5], [6], [7]]
    assert cascade._consecutive_chunks(decoders, 1) == [[i] for i in range(8)]
    assert cascade.layers_per_step() >= 2

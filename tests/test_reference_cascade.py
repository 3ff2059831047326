"""The cascade engine against the straightforward per-layer reference (benchmarks/reference_cascade.py).

The reference trains each decoder as an ``nn.Linear`` with autograd and ``torch.optim.Adam``, one layer after
another, from the engine's init and on the engine's batch order; the engine writes the gradients by hand and
trains several layers (``layerwise``) or all of them (``lockstep``) at once with fused Adam. Same network,
data and seed: the per-layer losses and the decoders must agree to float32 round-off. (``bench_cascade`` makes
the same comparison at depths 60 and 200, but only prints it.)
"""

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from infoflow_ray.cascade import Decoders, train_cascade
from infoflow_ray.config import CascadeSpec, NetworkSpec
from infoflow_ray.data import load_dataset
from infoflow_ray.model import TanhNetwork

ROOT = Path(__file__).resolve().parents[1]
DEPTH, N_TRAIN, EPOCHS = 5, 500, 2  # 7 batches of 64 and one of 52 per epoch; two epochs, two batch orders
# Tolerances: both sides compute the same float32 operations in a different order (a fused ``baddbmm`` and a
# hand-written gradient against ``nn.Linear`` and autograd; fused against for-each Adam), so they differ by
# float32 round-off (~1e-7 relative), which Adam's normalised steps carry along the 16 steps. Measured here: decoder
# weights and biases within 9.3e-6 (layerwise 4.1e-6), per-layer losses within 3.2e-8 relative. Every decoder
# moves by ≥ 7e-3 from its init, so a wrong batch order, gradient or update lands ~100× above these tolerances.
WEIGHT_ATOL = 1e-4
LOSS_RTOL = 1e-4


def _reference_module():
    spec = importlib.util.spec_from_file_location("reference_cascade", ROOT / "benchmarks" / "reference_cascade.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setting():
    """The network (critical σw², `wide`), the first 500 MNIST-t10k training images and the reference's result."""
    reference = _reference_module()
    network = TanhNetwork(NetworkSpec(1.76, DEPTH), seed=0)
    train_x = load_dataset("mnist_t10k").train_x[:N_TRAIN]
    spec = CascadeSpec(epochs=EPOCHS)
    layers, loss = reference.train_reference(network, train_x, spec, seed=0)
    return network, train_x, spec, reference.as_decoders(layers), loss


@pytest.mark.parametrize("strategy", ["layerwise", "lockstep"])
def test_engine_trains_the_decoders_the_reference_trains(setting, strategy):
    """Each strategy of the engine gives the reference's decoders and last-epoch losses, layer by layer."""
    network, train_x, spec, want, want_loss = setting
    got = train_cascade(network, train_x, dataclasses.replace(spec, strategy=strategy), seed=0)
    assert got.strategy == strategy and got.decoder_loss.shape == want_loss.shape == (DEPTH,)
    init = Decoders.init(network.spec.layer_widths, 0, "cpu")
    for layer in range(1, DEPTH + 1):
        for name in ("weights", "biases"):
            a, b = getattr(got.decoders, name)[layer - 1], getattr(want, name)[layer - 1]
            assert a.shape == b.shape, (layer, name)
            assert (a - b).abs().max() <= WEIGHT_ATOL, (layer, name, (a - b).abs().max().item())
            # the comparison means something: training moved every decoder far more than the tolerance
            assert (b - getattr(init, name)[layer - 1]).abs().max() > 50 * WEIGHT_ATOL, (layer, name)
    torch.testing.assert_close(got.decoder_loss, want_loss, rtol=LOSS_RTOL, atol=0)

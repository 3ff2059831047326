"""The straightforward per-layer cascade, written the way the paper does it: the baseline of ``bench_cascade``.

Layers are trained one after another (method §2). For layer l, an ``nn.Linear`` decoder with ``torch.optim.Adam``
and autograd is trained for the epochs of ``CascadeSpec`` on batches of (a_l, a_{l-1}) pairs: a_{l-1} of the
whole training set is kept from the previous layer and a_l of each batch is computed from it with the frozen
layer l. (A loop that recomputed the forward pass from the input for every batch would do O(L²) frozen work;
this one does the necessary O(L), so the ratio ``bench_cascade`` reports is conservative.)

Reconstruction is the reference's one-cascade-per-layer loop: for every l, x̂_l = g_1(g_2(…g_l(a_l)…)).

Decoders start from the engine's init (``cascade.Decoders.init``, PyTorch's default ``nn.Linear`` bounds) and
see the engine's batch order, so the per-layer losses of the two can be compared number for number.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from infoflow_ray import seeding
from infoflow_ray.cascade import Decoders
from infoflow_ray.config import CascadeSpec
from infoflow_ray.model import TanhNetwork


def decoder_layers(decoders: Decoders) -> list[nn.Linear]:
    """The decoders as ``nn.Linear`` modules (copies): layer l's decoder maps n_l → n_{l-1}."""
    layers = []
    for V, c in zip(decoders.weights, decoders.biases):
        linear = nn.Linear(V.shape[1], V.shape[0], device=V.device)
        with torch.no_grad():
            linear.weight.copy_(V)
            linear.bias.copy_(c)
        layers.append(linear)
    return layers


def as_decoders(layers: list[nn.Linear]) -> Decoders:
    """``nn.Linear`` decoders back as the engine's ``Decoders`` (detached copies)."""
    return Decoders([d.weight.detach().clone() for d in layers], [d.bias.detach().clone() for d in layers])


def train_reference(
    network: TanhNetwork, train_x: Tensor, spec: CascadeSpec, seed: int
) -> tuple[list[nn.Linear], Tensor]:
    """Train the L decoders one layer after another; returns them and each one's mean MSE over its last epoch (L,)."""
    widths = network.spec.layer_widths
    decoders = decoder_layers(Decoders.init(widths, seed, train_x.device))
    n = train_x.shape[0]
    orders = [seeding.permutation(n, seed, "cascade-batches", epoch, train_x.device) for epoch in range(spec.epochs)]
    last_epoch_loss = torch.zeros(len(decoders), dtype=torch.float64)
    a_prev = train_x  # a_{l-1} of every training image
    for layer, decoder in enumerate(decoders, start=1):
        optimizer = torch.optim.Adam(decoder.parameters(), lr=spec.lr)
        for order in orders:
            total = 0.0
            for batch in order.split(spec.batch_size):
                target = a_prev[batch]
                with torch.no_grad():
                    a = network.next_activation(layer, target)
                loss = nn.functional.mse_loss(torch.tanh(decoder(a)), target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * batch.shape[0]
            last_epoch_loss[layer - 1] = total / n
        with torch.no_grad():
            a_prev = torch.cat([network.next_activation(layer, chunk) for chunk in a_prev.split(8192)])
    return decoders, last_epoch_loss


@torch.no_grad()
def reconstruct_reference(network: TanhNetwork, decoders: list[nn.Linear], x: Tensor) -> Iterator[Tensor]:
    """Yield x̂_l (M, n_0) for l = 1..L, each decoded down its own cascade g_1(…g_l(a_l)).

    The frozen forward pass is carried from layer to layer; the decoding is redone per layer, as the reference does.
    """
    a = x
    for layer in range(1, len(decoders) + 1):
        a = network.next_activation(layer, a)
        x_hat = a
        for k in range(layer, 0, -1):
            x_hat = torch.tanh(decoders[k - 1](x_hat))
        yield x_hat

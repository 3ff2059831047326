"""The decoder cascade of any network family (method §2) with autograd: what ``infoflow_ray.cascade`` does for the
MLP with hand-written gradients.

Decoder l (``network.decoder(l)``) maps a_l back to a_{l−1} and is trained with Adam to minimise
MSE(decoder_l(a_l), a_{l−1}) on the frozen network's activations, exactly as the MLP's: ``CascadeSpec``'s epochs,
lr and batch size, the batch order of ``seeding.permutation(…, "cascade-batches", epoch)``, decoder weights from
the stream "decoders". All decoders step on every batch: one frozen forward pass per batch feeds every layer's
(a_l, a_{l−1}) pair (a per-layer loop would redo the forward pass up to layer l for each l, and convolutional
activations of a whole training set do not fit in memory). The decoders are independent (disjoint parameters,
per-parameter Adam), so this trains each exactly as alone.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infoflow_ray import seeding
from infoflow_ray.cascade import ProgressFn, TrainedCascade
from infoflow_ray.config import CascadeSpec


class ModuleDecoders(nn.Module):
    """The decoders of one network: ``decode(l, a_l)`` ≈ a_{l−1}; ``depth`` layers."""

    def __init__(self, network, seed: int, device: torch.device | str):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeding.derived_seed(seed, "decoders"))
            decoders = [network.decoder(layer) for layer in range(1, network.depth + 1)]
        self.decoders = nn.ModuleList(decoders).to(device)

    @property
    def depth(self) -> int:
        return len(self.decoders)

    def decode(self, layer: int, a: Tensor) -> Tensor:
        return self.decoders[layer - 1](a)


def train_module_cascade(
    network, train_x: Tensor, spec: CascadeSpec, seed: int, progress: ProgressFn | None = None
) -> TrainedCascade:
    """Train every decoder of ``network`` (frozen) on ``train_x`` (N, n_0), on its device; the last epoch's mean
    MSE per decoder, (L,)."""
    start = time.perf_counter()
    device, n = train_x.device, train_x.shape[0]
    decoders = ModuleDecoders(network, seed, device)
    L = decoders.depth
    optimizer = torch.optim.Adam(decoders.parameters(), lr=spec.lr)
    last_epoch_loss = torch.zeros(L, dtype=torch.float64)
    for epoch in range(spec.epochs):
        order = seeding.permutation(n, seed, "cascade-batches", epoch, device)
        epoch_loss = torch.zeros(L, dtype=torch.float64, device=device)
        for batch in order.split(spec.batch_size):
            acts = network.activations(train_x[batch])  # frozen: no graph
            losses = torch.stack([F.mse_loss(decoders.decode(i, acts[i]), acts[i - 1]) for i in range(1, L + 1)])
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # disjoint parameters: each decoder gets its own loss's gradient
            optimizer.step()
            epoch_loss += losses.detach().double() * batch.shape[0]
        last_epoch_loss = (epoch_loss / n).cpu()
        if progress:
            progress((epoch + 1) * L, L * spec.epochs)
    decoders.requires_grad_(False)
    return TrainedCascade(decoders, last_epoch_loss, "module", time.perf_counter() - start)


@torch.no_grad()
def decode_chain(decoders: ModuleDecoders, layer: int, a: Tensor) -> Tensor:
    """x̂ = decoder_1(…decoder_layer(a)…) as rows (M, n_0)."""
    for below in range(layer, 0, -1):
        a = decoders.decode(below, a)
    return a.flatten(1)


@torch.no_grad()
def reconstruct_in_chunks(network, decoders: ModuleDecoders, x: Tensor, layers_per_chunk: int):
    """Yield (first_layer, reconstructions (n, M, n_0)) for consecutive chunks of layers covering 1..L; the
    frozen forward pass runs once over all layers."""
    L = decoders.depth
    a = x
    for first in range(1, L + 1, layers_per_chunk):
        chunk = []
        for layer in range(first, min(L, first + layers_per_chunk - 1) + 1):
            a = network.next_activation(layer, a)
            chunk.append(decode_chain(decoders, layer, a))
        yield first, torch.stack(chunk)

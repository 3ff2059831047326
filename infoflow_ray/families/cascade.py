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
from infoflow_ray.cascade import ProgressFn, TrainedCascade, chunked_reconstructions, resolve_strategy
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


class _Grouped(nn.Module):
    """G equal decoders tanh(convT(a)) (C → C, 3×3, stride 1) as one grouped transposed convolution: decoder g
    owns channels g·C … (g+1)·C − 1 of the weight and bias, so each still sees only its own layer."""

    def __init__(self, convs: list[nn.ConvTranspose2d]):
        super().__init__()
        c, g = convs[0].in_channels, len(convs)
        self.conv = nn.ConvTranspose2d(g * c, g * c, 3, padding=1, groups=g).to(convs[0].weight.device)
        with torch.no_grad():
            self.conv.weight.copy_(torch.cat([m.weight for m in convs]))
            self.conv.bias.copy_(torch.cat([m.bias for m in convs]))

    def forward(self, a: Tensor) -> Tensor:  # (B, G·C, h, w): the G layers' activations side by side
        return torch.tanh(self.conv(a))

    @torch.no_grad()
    def write_back(self, convs: list[nn.ConvTranspose2d]) -> None:
        for conv, weight, bias in zip(convs, self.conv.weight.chunk(len(convs)), self.conv.bias.chunk(len(convs))):
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)


@torch.enable_grad()  # the decoders train by autograd, also when the caller holds no_grad (interpret)
def train_module_cascade(
    network, train_x: Tensor, spec: CascadeSpec, seed: int, progress: ProgressFn | None = None
) -> TrainedCascade:
    """Train every decoder of ``network`` (frozen) on ``train_x`` (N, n_0), on its device; the last epoch's mean
    MSE per decoder, (L,).

    With the ``lockstep`` strategy (``CascadeSpec.strategy``; 'auto' picks it on CUDA) the decoders of the layers
    ``network.equal_decoder_layers()`` names (the CNN's body: equal transposed convolutions) train as one grouped
    convolution, a kernel per step instead of one per layer; the decoders are the same (``layerwise`` runs them
    one by one: what a CPU prefers).
    """
    start = time.perf_counter()
    device, n = train_x.device, train_x.shape[0]
    decoders = ModuleDecoders(network, seed, device)
    L = decoders.depth
    grouped = []
    if resolve_strategy(spec.strategy, device) == "lockstep" and hasattr(network, "equal_decoder_layers"):
        grouped = network.equal_decoder_layers()
    grouped = grouped if len(grouped) > 1 else []
    alone = [layer for layer in range(1, L + 1) if layer not in grouped]
    group = _Grouped([decoders.decoders[layer - 1].inner for layer in grouped]) if grouped else None
    parameters = [p for layer in alone for p in decoders.decoders[layer - 1].parameters()]
    optimizer = torch.optim.Adam(parameters + (list(group.parameters()) if group else []), lr=spec.lr)
    last_epoch_loss = torch.zeros(L, dtype=torch.float64)
    for epoch in range(spec.epochs):
        order = seeding.permutation(n, seed, "cascade-batches", epoch, device)
        epoch_loss = torch.zeros(L, dtype=torch.float64, device=device)
        for batch in order.split(spec.batch_size):
            acts = network.activations(train_x[batch])  # frozen: no graph
            losses = torch.zeros(L, device=device)
            losses[[i - 1 for i in alone]] = torch.stack(
                [F.mse_loss(decoders.decode(i, acts[i]), acts[i - 1]) for i in alone]
            )
            if group is not None:
                targets = torch.stack([acts[i - 1] for i in grouped], dim=1)  # (B, G, C, h, w)
                out = group(torch.cat([acts[i] for i in grouped], dim=1)).view_as(targets)
                losses[[i - 1 for i in grouped]] = (out - targets).square().mean(dim=(0, 2, 3, 4))
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # disjoint parameters: each decoder gets its own loss's gradient
            optimizer.step()
            epoch_loss += losses.detach().double() * batch.shape[0]
        last_epoch_loss = (epoch_loss / n).cpu()
        if progress:
            progress((epoch + 1) * L, L * spec.epochs)
    if group is not None:
        group.write_back([decoders.decoders[layer - 1].inner for layer in grouped])
    decoders.requires_grad_(False)
    strategy = "module-grouped" if group is not None else "module"
    return TrainedCascade(decoders, last_epoch_loss, strategy, time.perf_counter() - start)


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

    def decode_chunk(acts: list[Tensor], first: int) -> Tensor:
        return torch.stack([decode_chain(decoders, first + i, a) for i, a in enumerate(acts)])

    return chunked_reconstructions(network, decoders.depth, x, layers_per_chunk, decode_chunk)

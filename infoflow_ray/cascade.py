"""The decoder cascade (docs/method.md §2): train one-layer decoders on a frozen network, reconstruct from every layer.

Decoder l is ``g_l(a) = tanh(V_l a + c_l)`` with ``V_l`` of shape (n_{l-1}, n_l), trained with Adam to minimise
``MSE(g_l(a_l), a_{l-1})`` on the frozen network's activations. Decoders see only their own (a_l, a_{l-1})
pairs, so all L of them are independent: they are trained here on the *same* batch sequence, either

- ``layerwise`` (CPU): a few layers at a time (``layers_per_step``, one per thread) over the whole epoch.
  Their weights and Adam state stay in cache while the batches stream past, each step is one ``baddbmm``
  that runs one layer per thread, and the frozen forward pass runs once per layer over the whole training
  set as one large matmul. About 2× the per-layer reference at depths 60 and 200 (benchmarks/RESULTS.md).
- ``lockstep`` (GPU): every layer at every batch, as batched matmuls over groups of equally shaped layers
  (of one network or several, ``train_cascades``) with one Adam step over the stacked tensors. A step is a
  dozen large operations whatever the depth: what a GPU needs. On a CPU its stacked state (4 float32 copies
  of every decoder) streams through memory at every step: at depth 200 it is slower than the reference.

Both give the same decoders (to float round-off). Gradients are written by hand (the decoder is one
linear layer), which avoids autograd's per-step graph and allocations; Adam is ``torch.optim.Adam``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from infoflow_ray import seeding
from infoflow_ray.config import CascadeSpec
from infoflow_ray.model import TanhNetwork, stack_parameters, stacked_activations

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(done, total)`` with the number of decoder-epochs finished."""


@dataclass
class Decoders:
    """The cascade's decoders; ``weights[l-1]`` is V_l (n_{l-1}, n_l), ``biases[l-1]`` is c_l (n_{l-1},)."""

    weights: list[Tensor]
    biases: list[Tensor]

    @classmethod
    def init(cls, widths: tuple[int, ...], seed: int, device: torch.device | str) -> Decoders:
        """PyTorch's default ``nn.Linear`` init, U(−1/√n_l, 1/√n_l) for V_l and c_l, from a seeded stream."""
        generator = seeding.generator(seed, "decoders")
        weights, biases = [], []
        for n_prev, n_l in zip(widths[:-1], widths[1:]):
            bound = 1.0 / math.sqrt(n_l)
            weights.append(torch.empty(n_prev, n_l).uniform_(-bound, bound, generator=generator).to(device))
            biases.append(torch.empty(n_prev).uniform_(-bound, bound, generator=generator).to(device))
        return cls(weights, biases)

    @property
    def depth(self) -> int:
        return len(self.weights)

    def decode(self, layer: int, a: Tensor) -> Tensor:
        """g_l(a) for layer l (1-based); ``a`` has shape (..., n_l), the result (..., n_{l-1})."""
        V, c = self.weights[layer - 1], self.biases[layer - 1]
        z = torch.addmm(c, a, V.T) if a.dim() == 2 else torch.matmul(a, V.T).add_(c)
        return z.tanh_()


def _mse_grads(y: Tensor, target: Tensor, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Loss, dL/dV and dL/dc of ``MSE(tanh(V a + c), target)`` given y = tanh(V a + c).

    Shapes (G = optional leading group of layers): y, target (G, B, n_out); a (G, B, n_in) → loss (G,),
    dV (G, n_out, n_in), dc (G, n_out). Works unbatched (no G) too.
    """
    diff = y - target
    loss = diff.square().mean(dim=(-2, -1))
    dz = diff * (1.0 - y * y) * (2.0 / (y.shape[-2] * y.shape[-1]))
    return loss, dz.transpose(-2, -1) @ a, dz.sum(dim=-2)


def _set_decoder_grads(V: Tensor, c: Tensor, a: Tensor, target: Tensor) -> Tensor:
    """One step's forward and hand-written backward for a stack of G decoders: sets ``V.grad`` (G, n_out, n_in)
    and ``c.grad`` (G, 1, n_out) from inputs a (G, B, n_in) and targets (G, B, n_out); returns the loss (G,)."""
    y = torch.tanh(torch.baddbmm(c, a, V.transpose(1, 2)))
    loss, V.grad, dc = _mse_grads(y, target, a)
    c.grad = dc.unsqueeze(1)
    return loss


def _adam(params: list[Tensor], spec: CascadeSpec, device: torch.device) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=spec.lr, fused=device.type in ("cuda", "cpu"))


def _activations_all(network: TanhNetwork, x: Tensor, layer: int, rows_per_chunk: int = 8192) -> Tensor:
    """a_layer from a_{layer-1} = ``x`` for all rows, in large chunks (one big matmul per chunk)."""
    return torch.cat([network.next_activation(layer, chunk) for chunk in x.split(rows_per_chunk)])


def layers_per_step() -> int:
    """How many layers ``layerwise`` trains side by side on a CPU: one per torch thread, at least 2.

    A (64 × 784) @ (784 × 784) product split over two threads scales poorly; two such products as one
    ``baddbmm`` run one per thread. Measured on 2 threads, depth 60: 1 layer at a time 26.7 s, 2 at a time
    15.7 s, 4 or 8 at a time 16.2–16.5 s (benchmarks/RESULTS.md).
    """
    return max(2, torch.get_num_threads())


def _consecutive_chunks(decoders: Decoders, size: int) -> list[list[int]]:
    """0-based layer indices in runs of at most ``size`` consecutive, equally shaped decoders."""
    chunks: list[list[int]] = []
    for i, V in enumerate(decoders.weights):
        if chunks and len(chunks[-1]) < size and decoders.weights[chunks[-1][-1]].shape == V.shape:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def _train_layerwise(
    network: TanhNetwork, decoders: Decoders, train_x: Tensor, spec: CascadeSpec, seed: int, progress: ProgressFn | None
) -> Tensor:
    device, n, L = train_x.device, train_x.shape[0], decoders.depth
    orders = [seeding.permutation(n, seed, "cascade-batches", epoch, device) for epoch in range(spec.epochs)]
    last_epoch_loss = torch.zeros(L, dtype=torch.float64, device=device)
    a_prev = train_x
    for chunk in _consecutive_chunks(decoders, layers_per_step()):
        acts = [a_prev]
        for i in chunk:
            acts.append(_activations_all(network, acts[-1], i + 1))
        inputs, targets = torch.stack(acts[1:]), torch.stack(acts[:-1])  # (C, N, n_l), (C, N, n_{l-1})
        V = torch.stack([decoders.weights[i] for i in chunk])
        c = torch.stack([decoders.biases[i] for i in chunk]).unsqueeze(1)
        optimizer = _adam([V, c], spec, device)
        for epoch, order in enumerate(orders):
            epoch_loss = torch.zeros(len(chunk), dtype=torch.float64, device=device)
            for a, t in zip(
                inputs[:, order].split(spec.batch_size, dim=1), targets[:, order].split(spec.batch_size, dim=1)
            ):
                loss = _set_decoder_grads(V, c, a, t)
                optimizer.step()
                epoch_loss += loss * a.shape[1]
            if progress:
                progress(chunk[0] * spec.epochs + (epoch + 1) * len(chunk), L * spec.epochs)
        last_epoch_loss[chunk] = epoch_loss / n
        for j, i in enumerate(chunk):
            decoders.weights[i] = V[j].clone()
            decoders.biases[i] = c[j, 0].clone()
        a_prev = acts[-1]
    return last_epoch_loss


def _shape_groups(decoders: Decoders) -> list[list[int]]:
    """Layer indices (0-based) grouped by decoder shape, each group in increasing layer order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, V in enumerate(decoders.weights):
        groups.setdefault(tuple(V.shape), []).append(i)
    return list(groups.values())


def _train_lockstep(
    networks: list[TanhNetwork],
    decoders: list[Decoders],
    train_x: Tensor,
    spec: CascadeSpec,
    seeds: list[int],
    progress: ProgressFn | None,
) -> Tensor:
    """Train the decoders of K networks of equal widths together; returns the last-epoch losses (K, L).

    Network k sees its own batch order (``seeds[k]``), exactly as when it is trained alone. The frozen
    forward pass of all K networks is one batched matmul per layer, and every group of equally shaped
    decoders (over all layers and networks) one more: a step costs the same number of kernel launches for
    any K, which is what keeps a GPU busy with small networks.
    """
    device, n = train_x.device, train_x.shape[0]
    K, L = len(networks), decoders[0].depth
    frozen_W, frozen_b = stack_parameters(networks)
    groups = _shape_groups(decoders[0])  # member j·K + k of a group is layer g[j] of network k
    stacked_V = [torch.stack([d.weights[i] for i in g for d in decoders]) for g in groups]
    stacked_c = [torch.stack([d.biases[i] for i in g for d in decoders]).unsqueeze(1) for g in groups]
    optimizer = _adam(stacked_V + stacked_c, spec, device)
    last_epoch_loss = torch.zeros(K, L, dtype=torch.float64, device=device)
    for epoch in range(spec.epochs):
        orders = torch.stack([seeding.permutation(n, s, "cascade-batches", epoch, device) for s in seeds])
        epoch_loss = torch.zeros(K, L, dtype=torch.float64, device=device)
        for batch in orders.split(spec.batch_size, dim=1):  # (K, B): one row of sample indices per network
            acts = stacked_activations(frozen_W, frozen_b, train_x[batch])
            for g, V, c in zip(groups, stacked_V, stacked_c):
                a = torch.stack([acts[i + 1] for i in g]).flatten(0, 1)
                t = torch.stack([acts[i] for i in g]).flatten(0, 1)
                loss = _set_decoder_grads(V, c, a, t)
                epoch_loss[:, g] += loss.double().view(len(g), K).T * batch.shape[1]
            optimizer.step()
        last_epoch_loss = epoch_loss / n
        if progress:
            progress((epoch + 1) * L, L * spec.epochs)
    for g, V, c in zip(groups, stacked_V, stacked_c):
        for j, i in enumerate(g):
            for k, d in enumerate(decoders):
                d.weights[i] = V[j * K + k].detach().clone()
                d.biases[i] = c[j * K + k, 0].detach().clone()
    return last_epoch_loss


def resolve_strategy(strategy: str, device: torch.device) -> str:
    """'auto' → 'lockstep' on CUDA, 'layerwise' elsewhere (see the module docstring for why)."""
    if strategy != "auto":
        return strategy
    return "lockstep" if device.type == "cuda" else "layerwise"


@dataclass(frozen=True)
class TrainedCascade:
    """Decoders after training, with the mean MSE of each decoder over its last epoch, shape (L,)."""

    decoders: Decoders
    decoder_loss: Tensor
    strategy: str
    seconds: float


def train_cascade(
    network: TanhNetwork, train_x: Tensor, spec: CascadeSpec, seed: int, progress: ProgressFn | None = None
) -> TrainedCascade:
    """Train all L decoders of ``network`` (frozen) on ``train_x`` (N, n_0), on ``train_x``'s device."""
    return train_cascades([network], train_x, spec, [seed], progress)[0]


def train_cascades(
    networks: list[TanhNetwork],
    train_x: Tensor,
    spec: CascadeSpec,
    seeds: list[int],
    progress: ProgressFn | None = None,
) -> list[TrainedCascade]:
    """Train the cascades of several networks of equal widths (different σw², σb², seeds) on one device.

    Network k's decoders are initialised and batched with ``seeds[k]``, so each result is what
    ``train_cascade(networks[k], …, seeds[k])`` gives, up to float32 summation order. ``lockstep`` trains
    them all at once; ``layerwise`` one after another (it keeps a few layers in cache, so stacking networks
    would only add memory traffic). ``TrainedCascade.seconds`` is the whole call's wall time divided by K.
    ``progress(done, total)`` counts decoder-epochs of one network (all advance together under lockstep).
    """
    if not networks or len(networks) != len(seeds):
        raise ValueError(
            f"need one seed per network and at least one network, got {len(networks)} networks and {len(seeds)} seeds"
        )
    if len({net.spec.layer_widths for net in networks}) != 1:
        raise ValueError("cascades trained together must have networks of the same layer widths")
    start = time.perf_counter()
    device = train_x.device
    strategy = resolve_strategy(spec.strategy, device)
    decoders = [Decoders.init(net.spec.layer_widths, seed, device) for net, seed in zip(networks, seeds)]
    with torch.no_grad(), _tf32_matmuls(spec.tf32_training and device.type == "cuda"):
        if strategy == "lockstep":
            losses = list(_train_lockstep(networks, decoders, train_x, spec, seeds, progress))
        else:
            losses = [
                _train_layerwise(net, d, train_x, spec, seed, progress)
                for net, d, seed in zip(networks, decoders, seeds)
            ]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / len(networks)
    return [TrainedCascade(d, loss.cpu(), strategy, seconds) for d, loss in zip(decoders, losses)]


@contextmanager
def _tf32_matmuls(enabled: bool):
    """float32 matmuls on TF32 tensor cores inside the block (``CascadeSpec.tf32_training``), restored after."""
    if not enabled:
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def cascade_bytes_per_network(widths: tuple[int, ...], batch_size: int) -> int:
    """Device memory one network adds to a lockstep group: its frozen weights, its decoders with their
    gradients and two Adam moments (5 float32 copies of ≈ Σ n_{l-1}·n_l parameters), and the per-batch
    activations with the stacked inputs, targets, outputs and gradient temporaries (≈ 6 copies of B·Σ n_l)."""
    params = sum(n_prev * n_l + n_prev for n_prev, n_l in zip(widths[:-1], widths[1:]))
    return 4 * (5 * params + 6 * batch_size * sum(widths))


def networks_per_device(
    widths: tuple[int, ...],
    batch_size: int,
    device: torch.device | str,
    *,
    memory_fraction: float = 0.6,
    max_networks: int = 32,
) -> int:
    """How many cascades of these widths to train at once on ``device``: as many as fit in
    ``memory_fraction`` of its free memory now (CUDA), at most ``max_networks``; 1 on a CPU, where training
    networks together measured no faster than one after another (benchmarks/RESULTS.md, bench_cascade_group)."""
    device = torch.device(device)
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    fits = int(free * memory_fraction) // cascade_bytes_per_network(widths, batch_size)
    return max(1, min(max_networks, fits))


@torch.no_grad()
def reconstruct(
    network: TanhNetwork,
    decoders: Decoders,
    x: Tensor,
    first_layer: int,
    last_layer: int,
    a_first: Tensor | None = None,
) -> Tensor:
    """x̂_l = g_1(g_2(…g_l(a_l)…)) for l = first_layer..last_layer, shape (n_layers, M, n_0).

    ``a_first`` may pass a_{first_layer} when the caller already has it (it then avoids the forward pass from
    the input).
    """
    if a_first is None:
        a_first = x
        for layer in range(1, first_layer + 1):
            a_first = network.next_activation(layer, a_first)
    acts = [a_first]
    for layer in range(first_layer + 1, last_layer + 1):
        acts.append(network.next_activation(layer, acts[-1]))
    return _decode_chains(decoders, acts, first_layer)


def _decode_chains(decoders: Decoders, acts: list[Tensor], first_layer: int) -> Tensor:
    """Decode a_l (acts[i] is a_{first_layer+i}, (M, n_l)) down to the input for every l: (len(acts), M, n_0).

    On a CPU one chain at a time: its M rows stay in cache, where a stack of all chains would not. On a GPU
    the chains are decoded together: going down from the deepest layer, each decoder is applied once to the
    stack of every chain that has reached its width.
    """
    last_layer = first_layer + len(acts) - 1
    if acts[0].device.type == "cpu":
        n_inputs = decoders.weights[0].shape[0]
        out = acts[0].new_empty(len(acts), acts[0].shape[0], n_inputs)
        for i, a in enumerate(acts):
            for layer in range(first_layer + i, 0, -1):
                a = decoders.decode(layer, a)
            out[i] = a
        return out
    chains: Tensor | None = None
    for layer in range(last_layer, 0, -1):
        if layer >= first_layer:
            new = acts[layer - first_layer].unsqueeze(0)
            chains = new if chains is None else torch.cat([chains, new])
        chains = decoders.decode(layer, chains)
    return chains.flip(0)


@torch.no_grad()
def reconstruct_in_chunks(network: TanhNetwork, decoders: Decoders, x: Tensor, layers_per_chunk: int):
    """Yield (first_layer, reconstructions (n, M, n_0)) for consecutive layer chunks covering 1..L.

    Memory stays at ``layers_per_chunk`` × M × n_max floats; the frozen forward pass runs once over all layers.
    """
    return chunked_reconstructions(
        network, decoders.depth, x, layers_per_chunk, lambda acts, first: _decode_chains(decoders, acts, first)
    )


def chunked_reconstructions(
    network, depth: int, x: Tensor, layers_per_chunk: int, decode_chunk: Callable[[list[Tensor], int], Tensor]
):
    """Yield (first_layer, decode_chunk(activations of layers first..last, first)) for consecutive chunks of
    ``layers_per_chunk`` layers covering 1..depth, running the frozen forward pass (``network.next_activation``)
    once over all layers: every family's cascade reconstructs through this loop, decoding a chunk its own way."""
    a_prev = x
    for first in range(1, depth + 1, layers_per_chunk):
        acts = []
        for layer in range(first, min(depth, first + layers_per_chunk - 1) + 1):
            a_prev = network.next_activation(layer, a_prev)
            acts.append(a_prev)
        yield first, decode_chunk(acts, first)


def layers_per_chunk(n_images: int, widths: tuple[int, ...], budget_bytes: int) -> int:
    """How many layers' reconstructions fit in ``budget_bytes`` (float32 chains plus float64 entropy work)."""
    per_layer = n_images * max(widths) * (4 * 3 + 8 * 3)
    return max(1, min(len(widths) - 1, budget_bytes // per_layer))

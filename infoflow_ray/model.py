"""The network under study: a fully connected tanh network with Gaussian init (docs/method.md §1).

``a_0 = x`` and ``a_l = tanh(W_l a_{l-1} + b_l)`` for l = 1..L — tanh after every linear layer, the last one
included; the softmax (for classification) is applied by the loss. Parameters are drawn on the CPU from a
seeded generator and then moved, so the same seed gives the same network on every device.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from infoflow_ray import seeding
from infoflow_ray.config import NetworkSpec


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TanhNetwork(nn.Module):
    """The tanh MLP of ``spec``; ``forward`` returns the last layer's activations a_L, shape (batch, n_out)."""

    def __init__(self, spec: NetworkSpec, seed: int, device: torch.device | str = "cpu"):
        super().__init__()
        self.spec = spec
        widths = spec.layer_widths
        generator = seeding.generator(seed, "network")
        self.layers = nn.ModuleList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layer = nn.Linear(fan_in, fan_out)
            with torch.no_grad():
                layer.weight.normal_(0.0, (spec.sigma_w2 / fan_in) ** 0.5, generator=generator)
                layer.bias.normal_(0.0, spec.sigma_b2**0.5, generator=generator)
            self.layers.append(layer)
        self.to(device)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x

    @torch.no_grad()
    def activations(self, x: Tensor) -> list[Tensor]:
        """[a_0, a_1, …, a_L] of the frozen network; a_0 is ``x`` itself, a_l has shape (batch, n_l)."""
        out = [x]
        for layer in self.layers:
            out.append(torch.tanh(layer(out[-1])))
        return out

    @torch.no_grad()
    def next_activation(self, layer_index: int, a_prev: Tensor) -> Tensor:
        """a_l from a_{l-1} for layer l = ``layer_index`` (1-based)."""
        return torch.tanh(self.layers[layer_index - 1](a_prev))


def stack_parameters(networks: list[TanhNetwork]) -> tuple[list[Tensor], list[Tensor]]:
    """The (detached) parameters of G networks of equal widths, stacked per layer.

    weights[l-1] has shape (G, n_l, n_{l-1}) and biases[l-1] (G, 1, n_l), so that ``stacked_layer`` computes
    every network's layer l in one batched matmul.
    """
    if len({net.spec.layer_widths for net in networks}) != 1:
        raise ValueError("networks stacked together must have the same layer widths")
    weights = [torch.stack([net.layers[i].weight.detach() for net in networks]) for i in range(len(networks[0].layers))]
    biases = [
        torch.stack([net.layers[i].bias.detach() for net in networks]).unsqueeze(1)
        for i in range(len(networks[0].layers))
    ]
    return weights, biases


def stacked_layer(weight: Tensor, bias: Tensor, x: Tensor) -> Tensor:
    """tanh(W a + b) of G networks at once: weight (G, n_out, n_in), bias (G, 1, n_out); ``x`` is (G, B, n_in),
    one batch per network, or (B, n_in), shared by all; the result is (G, B, n_out)."""
    if x.dim() == 3:
        return torch.tanh(torch.baddbmm(bias, x, weight.transpose(1, 2)))
    return torch.tanh(torch.matmul(x, weight.transpose(1, 2)) + bias)


@torch.no_grad()
def stacked_activations(weights: list[Tensor], biases: list[Tensor], x: Tensor) -> list[Tensor]:
    """[a_0, …, a_L] of G stacked networks (see ``stack_parameters``); x and every a_l are (G, B, n_l)."""
    out = [x]
    for W, b in zip(weights, biases):
        out.append(stacked_layer(W, b, out[-1]))
    return out

"""What every family but the MLP shares: the forward pass, the activations and one layer, from ``_layer``."""

from __future__ import annotations

import torch
from torch import Tensor


class Layered:
    """A mixin for ``nn.Module`` networks that define ``_layer(l, a_{l−1}) -> a_l`` for l = 1..``depth``."""

    def forward(self, x: Tensor) -> Tensor:
        for layer in range(1, self.depth + 1):
            x = self._layer(layer, x)
        return x

    @torch.no_grad()
    def activations(self, x: Tensor) -> list[Tensor]:
        """[a_0 = x, a_1, …, a_L] of the frozen network."""
        out = [x]
        for layer in range(1, self.depth + 1):
            out.append(self._layer(layer, out[-1]))
        return out

    @torch.no_grad()
    def next_activation(self, layer: int, a_prev: Tensor) -> Tensor:
        """a_layer from a_{layer−1}."""
        return self._layer(layer, a_prev)

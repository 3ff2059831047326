"""The fully connected residual variant: a_l = a_{l−1} + tanh(W_l a_{l−1} + b_l) wherever n_l = n_{l−1}.

Layers whose width changes (the 'wide' profile's 784 → 400 → 10 head) stay plain, a_l = tanh(W_l a_{l−1} + b_l).
Init as the MLP (``model.TanhNetwork``): W ~ N(0, σw²/fan_in), b ~ N(0, σb²), from the seeded stream "network",
so a residual MLP and the MLP of the same spec and seed have the same weights. The residual stream is not
bounded, so the decoder of a residual layer is its mirror a ↦ a + tanh(V a + c) (linear output), and a plain
layer's decoder is tanh(V a + c) when its target is a tanh output, V a + c when the target is the stream.
Mean-field theory's ordered/chaotic picture does not apply to the residual layers (no exponential depth scale).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from infoflow_ray.config import NetworkSpec
from infoflow_ray.families import mlp
from infoflow_ray.families.base import Family
from infoflow_ray.families.layered import Layered
from infoflow_ray.model import TanhNetwork


class ResMLP(Family):
    """'resmlp': the MLP's widths (``families.mlp``) with identity shortcuts; cascades by ``families.cascade``."""

    name = "resmlp"
    residual = True
    spec_fields = ("widths",)

    def check(self, spec: NetworkSpec) -> None:
        mlp.check_widths(spec)

    def layer_shapes(self, spec: NetworkSpec) -> tuple[tuple[int, ...], ...]:
        return tuple((n,) for n in mlp.widths_of(spec))

    def profile_name(self, spec: NetworkSpec) -> str:
        """'resmlp-wide', 'resmlp-shrinking', 'resmlp-custom'."""
        return f"{self.name}-{mlp.MLP().profile_name(spec)}"

    def cutoff_last_layer(self, spec: NetworkSpec, layer_range: str = "constant_width") -> int:
        return mlp.cutoff_last_layer(spec, layer_range)

    def build(self, spec: NetworkSpec, seed: int, device: torch.device | str = "cpu") -> ResidualMLP:
        return ResidualMLP(spec, seed, device)


class ResidualMLP(Layered, TanhNetwork):
    """The MLP of ``spec`` with identity shortcuts around every equal-width layer."""

    def __init__(self, spec: NetworkSpec, seed: int, device: torch.device | str = "cpu"):
        super().__init__(spec, seed, device)
        self.residual = [layer.in_features == layer.out_features for layer in self.layers]

    @property
    def depth(self) -> int:
        return len(self.layers)

    def bounded(self, layer: int) -> bool:
        return layer == 0 or not self.residual[layer - 1]

    def _layer(self, layer: int, a_prev: Tensor) -> Tensor:
        out = torch.tanh(self.layers[layer - 1](a_prev))
        return a_prev + out if self.residual[layer - 1] else out

    def decoder(self, layer: int) -> nn.Module:
        linear = self.layers[layer - 1]
        if self.residual[layer - 1]:
            return _ResidualDecoder(linear.out_features)
        return _Plain(nn.Linear(linear.out_features, linear.in_features), tanh=self.bounded(layer - 1))


class _ResidualDecoder(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.linear = nn.Linear(n, n)

    def forward(self, a: Tensor) -> Tensor:
        return a + torch.tanh(self.linear(a))


class _Plain(nn.Module):
    def __init__(self, linear: nn.Linear, tanh: bool):
        super().__init__()
        self.linear, self.tanh = linear, tanh

    def forward(self, a: Tensor) -> Tensor:
        out = self.linear(a)
        return torch.tanh(out) if self.tanh else out

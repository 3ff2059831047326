"""Convolutional tanh networks (the reference's ``collect_data_cnn`` / ``collect_data_resnet`` measurements).

Input rows x (B, s²) are viewed as images (B, 1, s, s). Layers (depth D, channels C, 3×3 kernels, circular
padding 1 everywhere):

- stem: a_1 = tanh(conv(x)) (1 → C, stride 1, s × s), a_2 = tanh(conv(a_1)) and a_3 = tanh(conv(a_2)) (C → C,
  stride 2: s/2, then s/4);
- body, l = 4..D−1 (shape (C, s/4, s/4)): 'cnn' a_l = tanh(conv(a_{l−1})); 'resnet' a_l = a_{l−1} +
  conv₂(tanh(conv₁(a_{l−1}))) (a residual block: no tanh on the stream, so a_l is not bounded);
- head: a_D = tanh(W · mean_{h,w}(a_{D−1}) + b), (n_out,).

Weights W ~ N(0, σw²/fan_in) with fan_in = C_in·3² (W ~ N(0, σw²/C) for the head), biases N(0, σb²), drawn on
the CPU from ``seeding.generator(seed, "network")``. For Gaussian weights the mean-field maps of the CNN are those
of the fully connected network (Xiao et al. 2018), so its critical σw² is the MLP's; residual networks have no
ordered/chaotic transition of that kind (the stream keeps its input; no exponential depth scale).

Decoders (one per layer, PyTorch's default init from ``seeding`` stream "decoders"): a transposed convolution
(stride as the layer's) for a conv layer, ending in tanh; for a residual block the block's mirror
a ↦ a + convT₂(tanh(convT₁(a))), linear (its target is the unbounded stream); for the head a linear map
n_out → C·(s/4)², with tanh for 'cnn' and linear for 'resnet'.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from infoflow_ray import seeding
from infoflow_ray.config import NetworkSpec
from infoflow_ray.errors import require
from infoflow_ray.families.base import Family
from infoflow_ray.families.layered import Layered

MIN_DEPTH = 5  # the stem's 3 convolutions, at least one body layer, the head


class Conv(Family):
    """'cnn' or 'resnet' (``residual``): one module serves both names (module docstring)."""

    spec_fields = ("channels",)

    def __init__(self, name: str, residual: bool):
        self.name, self.residual = name, residual

    def check(self, spec: NetworkSpec) -> None:
        side = math.isqrt(spec.n_inputs)
        require(
            side * side == spec.n_inputs and side % 4 == 0,
            "n_inputs",
            spec.n_inputs,
            f"a square image of side divisible by 4 (e.g. 784 = 28², 1024 = 32²) for the architecture "
            f"'{self.name}': its stem halves the side twice",
        )
        require(
            spec.depth >= MIN_DEPTH,
            "depth",
            spec.depth,
            f"an integer >= {MIN_DEPTH} for the architecture '{self.name}' (3 stem layers, a body layer, the head)",
        )

    def layer_shapes(self, spec: NetworkSpec) -> tuple[tuple[int, ...], ...]:
        """(s²,), then (C, s, s), (C, s/2, s/2), (C, s/4, s/4) through layer D−1, and the head's (n_out,)."""
        s, c = math.isqrt(spec.n_inputs), spec.channels
        body = ((c, s // 4, s // 4),) * (spec.depth - 3)
        return ((spec.n_inputs,), (c, s, s), (c, s // 2, s // 2), *body, (spec.n_outputs,))

    def profile_name(self, spec: NetworkSpec) -> str:
        """'cnn-c64', 'resnet-c16': the channels C."""
        return f"{self.name}-c{spec.channels}"

    def cutoff_last_layer(self, spec: NetworkSpec, layer_range: str = "constant_width") -> int:
        """``constant_width``: D−1, the head (pooling + linear) changes the shape."""
        return spec.depth - 1 if layer_range == "constant_width" else spec.depth

    def build(self, spec: NetworkSpec, seed: int, device: torch.device | str = "cpu") -> ConvNetwork:
        return ConvNetwork(spec, seed, device)


def _conv(c_in: int, c_out: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode="circular")


class _Residual(nn.Module):
    """x + conv₂(tanh(conv₁(x)))."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.conv2 = _conv(c, c, 1), _conv(c, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(torch.tanh(self.conv1(x)))


class _Head(nn.Module):
    """tanh(W · mean over the image of x + b): (B, C, h, w) → (B, n_out)."""

    def __init__(self, c: int, n_out: int):
        super().__init__()
        self.linear = nn.Linear(c, n_out)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.linear(x.mean(dim=(2, 3))))


class _Tanh(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.inner(x))


class ConvNetwork(Layered, nn.Module):
    """The 'cnn' or 'resnet' network of ``spec`` (module docstring); ``forward`` returns a_D, (B, n_out)."""

    def __init__(self, spec: NetworkSpec, seed: int, device: torch.device | str = "cpu"):
        super().__init__()
        self.spec = spec
        self.side, c = math.isqrt(spec.n_inputs), spec.channels
        residual = spec.family.residual
        layers: list[nn.Module] = [_Tanh(_conv(1, c, 1)), _Tanh(_conv(c, c, 2)), _Tanh(_conv(c, c, 2))]
        layers += [_Residual(c) if residual else _Tanh(_conv(c, c, 1)) for _ in range(spec.depth - 4)]
        layers.append(_Head(c, spec.n_outputs))
        self.layers = nn.ModuleList(layers)
        generator = seeding.generator(seed, "network")
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    fan_in = module.weight[0].numel()  # C_in·k² for a convolution, C for the head
                    module.weight.normal_(0.0, (spec.sigma_w2 / fan_in) ** 0.5, generator=generator)
                    module.bias.normal_(0.0, spec.sigma_b2**0.5, generator=generator)
        self.to(device)

    @property
    def depth(self) -> int:
        return len(self.layers)

    def bounded(self, layer: int) -> bool:
        """Whether a_layer is a tanh output (layer 0, the input image in [0, 1], counts as bounded)."""
        return not isinstance(self.layers[layer - 1], _Residual) if layer >= 1 else True

    def _layer(self, layer: int, a_prev: Tensor) -> Tensor:
        if layer == 1:
            a_prev = a_prev.view(-1, 1, self.side, self.side)
        return self.layers[layer - 1](a_prev)

    def equal_decoder_layers(self) -> list[int]:
        """The layers whose decoders are equal transposed convolutions (the 'cnn' body, 4..D−1): a GPU trains
        them as one grouped convolution (``families.cascade``)."""
        return [] if self.spec.family.residual else list(range(4, self.depth))

    def decoder(self, layer: int) -> nn.Module:
        """A fresh decoder a_layer → a_{layer−1} (module docstring); the caller seeds the default init."""
        c, side = self.spec.channels, self.side
        if layer == 1:
            return _ImageDecoder(nn.ConvTranspose2d(c, 1, 3, padding=1))
        if layer in (2, 3):
            return _Tanh(nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1))
        if layer == self.depth:
            return _HeadDecoder(self.spec.n_outputs, c, side // 4, tanh=self.bounded(layer - 1))
        if isinstance(self.layers[layer - 1], _Residual):
            return _ResidualDecoder(c)
        return _Tanh(nn.ConvTranspose2d(c, c, 3, padding=1))


class _ImageDecoder(nn.Module):
    """a_1 (B, C, s, s) → the input rows (B, s²): tanh(convT(a_1)) flattened."""

    def __init__(self, conv: nn.ConvTranspose2d):
        super().__init__()
        self.conv = conv

    def forward(self, a: Tensor) -> Tensor:
        return torch.tanh(self.conv(a)).flatten(1)


class _ResidualDecoder(nn.Module):
    """a ↦ a + convT₂(tanh(convT₁(a))): the mirror of a residual block, linear."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(c, c, 3, padding=1)
        self.conv2 = nn.ConvTranspose2d(c, c, 3, padding=1)

    def forward(self, a: Tensor) -> Tensor:
        return a + self.conv2(torch.tanh(self.conv1(a)))


class _HeadDecoder(nn.Module):
    """a_D (B, n_out) → (B, C, h, h): a linear map, tanh when the target is a tanh output."""

    def __init__(self, n_out: int, c: int, h: int, tanh: bool):
        super().__init__()
        self.linear, self.shape, self.tanh = nn.Linear(n_out, c * h * h), (c, h, h), tanh

    def forward(self, a: Tensor) -> Tensor:
        out = self.linear(a).view(-1, *self.shape)
        return torch.tanh(out) if self.tanh else out

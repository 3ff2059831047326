"""The empirical NTK's condition number (TE-NAS, Chen, Gong, Wang 2021; VITA-Group/TENAS ``lib/procedures/ntk.py``).

    Θ = G Gᵀ (B × B),  G_i = ∂(Σ_k f_k(x_i)) / ∂(weights),  κ = λ_max(Θ) / λ_min(Θ)   (dimensionless)

over one unlabelled batch (the first ``batch`` = 32 images), weights only (no biases), computed in float64 on a
float64 copy of the network with ``torch.linalg.eigvalsh`` (the reference's ``torch.symeig`` no longer exists).
Lower κ = more trainable (the score's direction is ``higher_is_better=False``); no predicted depth.

Instead of one backward pass per image (the reference), Θ is assembled from one backward pass: for a linear layer
the per-image gradient is the outer product δ_i a_iᵀ of the output's gradient and the input, so its Gram block is
(δ δᵀ) ⊙ (a aᵀ); for a convolution the per-image gradient Σ_p δ_{i,p} patch_{i,p}ᵀ is formed explicitly (C_out ×
C_in·k² per image). Networks with weights in other modules are refused in one line.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infoflow_ray.errors import ConfigError
from infoflow_ray.predictors.registry import register


def _per_image_conv_grad(module: nn.Conv2d, a: Tensor, delta: Tensor) -> Tensor:
    """(B, C_out·C_in·k²) per-image gradients of a convolution's weight from its input a and output gradient δ."""
    if module.padding_mode != "zeros":
        a = F.pad(a, module._reversed_padding_repeated_twice, mode=module.padding_mode)
        padding = 0
    else:
        padding = module.padding
    patches = F.unfold(a, module.kernel_size, dilation=module.dilation, padding=padding, stride=module.stride)
    return torch.einsum("bop,bip->boi", delta.flatten(2), patches).flatten(1)  # (B, C_out, C_in·k²) → flat


def ntk_gram(network: nn.Module, x: Tensor) -> Tensor:
    """Θ (B, B) float64 of ``network`` (weights of its Linear and Conv2d modules) on the batch ``x``."""
    net = copy.deepcopy(network).double()
    modules = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    covered = {id(m.weight) for m in modules}
    stray = [n for n, p in net.named_parameters() if p.dim() > 1 and id(p) not in covered]
    if stray:
        raise ConfigError(f"ntk_condition handles Linear and Conv2d weights only; this network also has {stray[0]}")
    inputs, outputs = {}, {}

    def hook(module, args, output):
        inputs[module], outputs[module] = args[0].detach(), output

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.enable_grad():
            f = net(x.double())  # (B, n_out); through __call__, so the hooks run
            used = [m for m in modules if m in outputs]
            deltas = torch.autograd.grad(f.sum(), [outputs[m] for m in used])
    finally:
        for h in handles:
            h.remove()
    theta = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64, device=x.device)
    for module, delta in zip(used, deltas):
        a = inputs[module]
        if isinstance(module, nn.Linear):  # a (B, …, in), δ (B, …, out): flatten any middle dims into the sum
            if a.dim() == 2:
                theta += (delta @ delta.T) * (a @ a.T)
            else:
                g = torch.einsum("b...o,b...i->boi", delta, a).flatten(1)
                theta += g @ g.T
        else:
            g = _per_image_conv_grad(module, a, delta)
            theta += g @ g.T
    return theta


def condition_number(theta: Tensor) -> float:
    """λ_max/λ_min of a symmetric PSD matrix (float64 eigvalsh); +inf when λ_min <= 0 (singular)."""
    eig = torch.linalg.eigvalsh(theta.double())
    return float(eig[-1] / eig[0]) if eig[0] > 0 else float("inf")


@register("ntk_condition", higher_is_better=False, defaults={"batch": 32}, gives_depth=False)
def ntk_condition(network, spec, x, y, *, batch: int):
    """Score κ of the empirical NTK on the first ``batch`` images (dimensionless, lower = more trainable)."""
    return condition_number(ntk_gram(network, x[:batch])), None

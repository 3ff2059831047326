"""Zero-cost NAS proxies on the untrained network (SamsungLabs/zero-cost-nas ``foresight/pruners/measures``;
BayesWatch/nas-without-training; SLDGroup/ZiCo). Higher = more trainable for all three; no predicted depth.

- ``naswot`` (Mellor et al. 2021): ln|K|, K = Σ_l [c_l c_lᵀ + (1 − c_l)(1 − c_l)ᵀ] (B × B), c_l ∈ {0,1}^{B×N_l} the
  binary activation pattern of hidden layer l; K_ij counts the units on which images i and j agree. The
  reference hooks ReLUs (c = pre-activation > 0); for tanh the pattern is the sign of the pre-activation, i.e.
  a_l > 0 (the sign of tanh's output). Layers 1..L−1 (the hidden ones) of ``activations``; batch 128.
- ``gradnorm`` (Abdelfattah et al. 2021): Σ_l ‖∂CE/∂W_l‖_F over the weights of every Linear and Conv2d
  module, CE the mean cross-entropy of the network's output taken as logits, on one labelled batch of 64.
- ``zico`` (Li et al. 2023): Σ_l ln Σ_{θ ∈ W_l} mean_b|g_θ| / std_b(g_θ) over ``splits`` (2) labelled batches of
  ``batch`` / ``splits`` images each (std over batches, ddof 0; parameters whose std is 0 are left out; a layer
  whose sum is 0 adds nothing). The reference accumulates gradients across its batches (no zero_grad between
  them); here each batch's gradient is its own, as the paper's formula reads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infoflow_ray.predictors.registry import register


def naswot_kernel(patterns: list[Tensor]) -> Tensor:
    """K (B, B) float64 from binary patterns c_l (B, N_l) (or (B, …), flattened): Σ_l c cᵀ + (1−c)(1−c)ᵀ."""
    k = None
    for c in patterns:
        c = c.flatten(1).double()
        term = c @ c.T + (1 - c) @ (1 - c).T
        k = term if k is None else k + term
    return k


def log_det(k: Tensor) -> float:
    """ln|K| (slogdet); −inf when K is singular."""
    sign, value = torch.linalg.slogdet(k)
    return float(value) if sign > 0 else float("-inf")


@register("naswot", higher_is_better=True, defaults={"batch": 128}, gives_depth=False)
def naswot(network, spec, x, y, *, batch: int):
    """Score ln|K| of the tanh sign-pattern kernel on the first ``batch`` images (nats of a determinant)."""
    acts = network.activations(x[:batch])
    return log_det(naswot_kernel([(a > 0) for a in acts[1:-1]])), None


def _weights(network: nn.Module) -> list[Tensor]:
    return [m.weight for m in network.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def weight_gradients(network: nn.Module, x: Tensor, y: Tensor) -> list[Tensor]:
    """∂CE/∂W for every Linear/Conv2d weight, CE = mean cross-entropy of forward(x) as logits."""
    weights = _weights(network)
    with torch.enable_grad():
        loss = F.cross_entropy(network.forward(x), y)
        return list(torch.autograd.grad(loss, weights, allow_unused=True))


@register("gradnorm", higher_is_better=True, defaults={"batch": 64}, gives_depth=False)
def gradnorm(network, spec, x, y, *, batch: int):
    """Score Σ_l ‖∂CE/∂W_l‖_F (nats per unit weight) on the first ``batch`` labelled images."""
    grads = weight_gradients(network, x[:batch], y[:batch])
    return sum(float(g.norm()) for g in grads if g is not None), None


def zico_score(per_batch: list[list[Tensor]]) -> float:
    """Σ_l ln Σ_θ mean_b|g_θ| / std_b(g_θ) from gradients per batch b (outer list) per layer l (inner list)."""
    total = 0.0
    for layer in range(len(per_batch[0])):
        g = torch.stack([batch[layer].flatten().double() for batch in per_batch])  # (n_batches, n_params)
        std = g.std(0, unbiased=False)
        keep = std > 0
        ratio = (g.abs().mean(0)[keep] / std[keep]).sum()
        if ratio > 0:
            total += float(torch.log(ratio))
    return total


@register("zico", higher_is_better=True, defaults={"batch": 128, "splits": 2}, gives_depth=False)
def zico(network, spec, x, y, *, batch: int, splits: int):
    """Score ZiCo over ``splits`` equal labelled batches of the first ``batch`` images (dimensionless)."""
    x, y = x[:batch], y[:batch]
    size = x.shape[0] // splits
    per_batch = []
    for s in range(splits):
        grads = weight_gradients(network, x[s * size : (s + 1) * size], y[s * size : (s + 1) * size])
        per_batch.append([g if g is not None else torch.zeros(1) for g in grads])
    return zico_score(per_batch), None

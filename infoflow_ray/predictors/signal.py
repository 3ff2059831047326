"""Measured signal propagation: the averaged partial Jacobian norm (APJN; Doshi, He, Gromov, NeurIPS 2023).

    J^{l0,l} = (1/N_l) · E_x ‖∂a_l/∂a_{l0}‖_F²,   χ̂ = (J^{l0,l})^{1/(l−l0)},   ξ̂ = 1/|ln χ̂|  (layers)

where N_l is the number of units of a_l (C·H·W for a convolutional layer). ‖J‖_F² = E_v ‖J v‖² over Gaussian probe
vectors v ~ N(0, I): each probe is one Jacobian–vector product through the family's ``next_activation``, taken
in forward mode (``torch.autograd.forward_ad``: the families' layers run under ``no_grad``, which forward-mode AD
does not obey). For a wide tanh MLP χ̂ is the mean-field χ1 per layer (each layer multiplies E‖J v‖²/N by
σw² E[tanh'(h)²] = χ1), and ξ̂ is ξ_∇; unlike mean field it is measured, so it works for every family (MLP, ResMLP,
CNN, ResNet) and every width. The tangent is renormalised after every layer (the product is linear in it), so
χ̂^{l−l0} far below float32's range does not underflow.

Batch: the first ``batch`` images (32), ``probes`` Gaussian probes (8) from ``seed``. Layers: ``early`` l0
(default: ``Family.first_body_layer``: 1, or 3 for the convolutional families — after the stem) and ``late`` l
(default: the deepest layer the cutoff looks at, ``spec.cutoff_last_layer()``). Score ξ̂ (higher = more
trainable), predicted depth C·ξ̂ with
C = ``factor`` (6) fixed in advance.
"""

from __future__ import annotations

import math

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

from infoflow_ray.errors import ConfigError
from infoflow_ray.predictors.registry import register


def layer_range(spec, early: int | None, late: int | None) -> tuple[int, int]:
    """(l0, l) with 0 <= l0 < l <= depth; the defaults as in the module docstring."""
    l0 = early if early is not None else spec.family.first_body_layer(spec)
    l1 = late if late is not None else spec.cutoff_last_layer()
    if late is None and l1 <= l0:
        l1 = spec.depth
    if not (isinstance(l0, int) and isinstance(l1, int) and 0 <= l0 < l1 <= spec.depth):
        raise ConfigError(
            f"apjn needs layers 0 <= early < late <= depth={spec.depth}, got early={l0}, late={l1} "
            f"(settings early, late)"
        )
    return l0, l1


def log_apjn(network, x: Tensor, early: int, late: int, probes: int, seed: int) -> float:
    """ln J^{early,late} (natural log of the APJN; module docstring), averaged over the batch and the probes.

    With v ~ N(0, I) on the N_l0 units of a_l0, E‖J v‖² = ‖J‖_F², so J = mean ‖J v‖² / N_l.
    """
    a = network.activations(x)[early]  # (B, …)
    generator = torch.Generator().manual_seed(seed)
    primal = a.repeat(probes, *([1] * (a.dim() - 1)))  # (P·B, …): every probe of every image in one pass
    tangent = torch.randn(primal.shape, generator=generator, dtype=a.dtype).to(a.device)
    logs = torch.zeros(primal.shape[0], dtype=torch.float64, device=a.device)  # ln ‖J v‖² per (probe, image)
    for layer in range(early, late + 1):
        if layer > early:
            with fwAD.dual_level():
                out = network.next_activation(layer, fwAD.make_dual(primal, tangent))
                primal, tangent = fwAD.unpack_dual(out)
        norm2 = (tangent.flatten(1).double() ** 2).sum(1)  # (P·B,)
        logs = logs + torch.log(norm2)
        scale = norm2.sqrt().clamp_min(1e-300).to(tangent.dtype).view(-1, *([1] * (tangent.dim() - 1)))
        tangent = tangent / scale  # unit norm per row: the product is linear in the tangent
    n_late = primal[0].numel()
    return float(torch.logsumexp(logs, 0) - math.log(logs.numel()) - math.log(n_late))


@register(
    "apjn",
    higher_is_better=True,
    defaults={"batch": 32, "probes": 8, "early": None, "late": None, "factor": 6.0, "seed": 0},
    gives_depth=True,
)
def apjn(network, spec, x, y, *, batch: int, probes: int, early, late, factor: float, seed: int):
    """Score ξ̂ = 1/|ln χ̂| (layers) from the measured APJN between ``early`` and ``late``; depth C·ξ̂."""
    l0, l1 = layer_range(spec, early, late)
    log_j = log_apjn(network, x[:batch], l0, l1, probes, seed)
    log_chi = log_j / (l1 - l0)
    xi = depth_scale(log_chi)
    return xi, factor * xi


def depth_scale(log_chi: float) -> float:
    """1/|ln χ| in layers: +inf at ln χ = 0, 0 where the signal vanished (ln χ = −inf), NaN for NaN."""
    if math.isnan(log_chi):
        return math.nan
    return math.inf if log_chi == 0 else 1.0 / abs(log_chi)


def chi_per_layer(
    network, spec, x: Tensor, early: int | None = None, late: int | None = None, probes: int = 8, seed: int = 0
) -> float:
    """χ̂ = (J^{l0,l})^{1/(l−l0)}, the measured per-layer χ (dimensionless; mean-field χ1 for a wide MLP)."""
    l0, l1 = layer_range(spec, early, late)
    return math.exp(log_apjn(network, x, l0, l1, probes, seed) / (l1 - l0))

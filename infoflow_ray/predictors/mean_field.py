"""Mean field in closed form (Schoenholz et al. 2017; Xiao, Pennington, Schoenholz 2020), from ``theory``.

All three depend on (σw², σb²) alone: the network and the data are ignored, so they cost microseconds. They
assume the tanh MLP at infinite width; for the CNN the maps are the MLP's (Xiao et al. 2018); for residual
networks they are reported as for the MLP (no closed form of their own here). Depths in layers; +inf at
criticality (χ = 1). ``factor`` C turns a depth scale into a predicted trainable depth ℓ̂ = C·ξ; it is fixed in
advance (6, Schoenholz et al.), never fitted to the truth being scored.
"""

from __future__ import annotations

import math

from infoflow_ray import theory
from infoflow_ray.predictors.registry import register


def _scale(log_chi: float) -> float:
    """1/|ln χ| in layers, +inf where ln χ = 0."""
    return math.inf if log_chi == 0 else 1.0 / abs(log_chi)


@register("mean_field_6xi", higher_is_better=True, kind="closed_form", defaults={"factor": 6.0}, gives_depth=True)
def six_xi_c(network, spec, x, y, *, factor: float):
    """Score ξ_c = −1/ln χ_c* (layers; χ_c* the correlation map's slope at its stable fixed point); depth C·ξ_c."""
    xi = float(theory.xi_c(spec.sigma_w2, spec.sigma_b2))
    return xi, factor * xi


@register("mean_field_grad", higher_is_better=True, kind="closed_form", defaults={"factor": 6.0}, gives_depth=True)
def gradient_scale(network, spec, x, y, *, factor: float):
    """Score ξ_∇ = 1/|ln χ1| (layers): the depth over which gradients grow or vanish by e; depth C·ξ_∇."""
    xi = _scale(math.log(float(theory.chi_1(spec.sigma_w2, spec.sigma_b2))))
    return xi, factor * xi


def xiao_scales(sigma_w2: float, sigma_b2: float) -> tuple[float, float]:
    """(ξ_1, ξ_*) of Xiao et al. 2020 in layers: ξ_1 = −1/ln χ1 (ordered phase: the NTK's condition number grows
    like 1/(l·χ1^l), trainability lost beyond ~ξ_1), ξ_* = −1/(ln χ_c* − ln χ1) (chaotic phase: κ → 1, the network
    trains but stops generalising beyond ~ξ_*). Each is +inf on the other side of criticality."""
    chi1 = float(theory.chi_1(sigma_w2, sigma_b2))
    chic = float(theory.chi_c(sigma_w2, sigma_b2))
    ordered = math.inf if chi1 >= 1 else -1.0 / math.log(chi1)
    gap = math.log(chic) - math.log(chi1)
    chaotic = math.inf if chi1 <= 1 or gap >= 0 else -1.0 / gap
    return ordered, chaotic


@register("xiao2020", higher_is_better=True, kind="closed_form", defaults={"factor": 6.0}, gives_depth=True)
def xiao_depth(network, spec, x, y, *, factor: float):
    """Score: the phase's own depth scale, ξ_1 in the ordered phase and ξ_* in the chaotic one (layers); depth C·ξ."""
    ordered, chaotic = xiao_scales(spec.sigma_w2, spec.sigma_b2)
    xi = min(ordered, chaotic)
    return xi, factor * xi

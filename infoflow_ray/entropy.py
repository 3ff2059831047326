"""Reconstruction entropy (docs/method.md §3): relative entropy (KL) per image and differential entropy per layer.

Pure torch functions: inputs are never modified, everything is computed in float64, and non-finite
values propagate (they are flagged by the caller, never raised). Shapes: B images of D pixels; L layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError

HALF_LN_2PIE = 0.5 * math.log(2 * math.pi * math.e)
"""½·ln(2πe): the differential entropy of a unit-variance Gaussian."""


def as_pmf(v: Tensor, eps: float = 1e-12) -> Tensor:
    """Rows over the last dim as probability mass functions: (v − min v + eps) / Σ(v − min v + eps), float64."""
    v = v.double()
    shifted = v - v.amin(dim=-1, keepdim=True) + eps
    return shifted / shifted.sum(dim=-1, keepdim=True)


def kl_per_image(x: Tensor, x_hat: Tensor, eps: float = 1e-12) -> Tensor:
    """Relative entropy KL(p_x || p_x̂) = Σ_pixels p_x·ln(p_x / p_x̂) per image, in nats.

    x: (B, D) inputs; x_hat: (..., B, D) reconstructions, broadcast over leading dims such as layers
    (L, B, D). Returns (..., B) float64. Both are made pmfs with `as_pmf`; inputs are not modified.
    """
    if x.dim() != 2 or x_hat.dim() < 2 or x_hat.shape[-2:] != x.shape:
        raise ConfigError(
            f"kl_per_image needs x (B, D) and x_hat (..., B, D), got {tuple(x.shape)} and {tuple(x_hat.shape)}"
        )
    p, q = as_pmf(x, eps), as_pmf(x_hat, eps)
    return (p * (p / q).log()).sum(dim=-1)


def gaussian_entropy(sigma: Tensor | float) -> Tensor:
    """Differential entropy ½·ln(2πe·σ²) of a Gaussian with standard deviation σ, in nats (float64)."""
    return HALF_LN_2PIE + torch.as_tensor(sigma, dtype=torch.float64).log()


@dataclass(frozen=True, eq=False)
class DifferentialEntropy:
    """value: (...,) float64, mean over pixels of the per-pixel Gaussian entropy (the paper's sum is D·value).
    clamped_pixels: (...,) int64, how many pixels had σ_j below the floor and were clamped to it."""

    value: Tensor
    clamped_pixels: Tensor


def differential_entropy(
    reconstructions: Tensor, sigma_floor_rel: float = 1e-5, eps: float = 1e-12
) -> DifferentialEntropy:
    """Differential entropy H = mean_j [½·ln(2πe) + ln σ_j] of a set of M reconstructions, per leading index.

    reconstructions: (..., M, D), e.g. (L, M, D). Each image is made a pmf with `as_pmf`; σ_j is the
    population standard deviation (divisor M, `correction=0`) of pixel j over the M images — the maximum
    likelihood σ of the Gaussian approximation; for the M ≥ 100 used here it differs from the sample std by
    < 0.5 % (ln σ by < 0.005).

    Lost information makes the reconstructions identical, σ_j → 0 and H → −∞, so σ_j is clamped at
    floor = sigma_floor_rel / D. The floor is in units of the uniform pixel mass 1/D, so it means the same
    for every image size. The default 1e-5 sits ~100× above float32 round-off of a pmf whose pixels are
    ~1/D (relative precision ~1.2e-7): decoders run in float32, so a spread below the floor is round-off
    noise, not information, and a collapsed layer lands on the floor instead of on random noise.
    """
    if reconstructions.dim() < 2 or reconstructions.shape[-2] < 2:
        raise ConfigError(
            f"differential_entropy needs (..., M, D) with M >= 2 images, got {tuple(reconstructions.shape)}"
        )
    if not sigma_floor_rel > 0:
        raise ConfigError(f"sigma_floor_rel must be > 0, got {sigma_floor_rel}")
    floor = sigma_floor_rel / reconstructions.shape[-1]
    sigma = as_pmf(reconstructions, eps).std(dim=-2, correction=0)
    clamped = (sigma < floor).sum(dim=-1)
    value = (HALF_LN_2PIE + sigma.clamp_min(floor).log()).mean(dim=-1)
    return DifferentialEntropy(value=value, clamped_pixels=clamped)


def differential_entropy_reference(reconstructions: Tensor) -> Tensor:
    """The reference code's `diff_entropy`, reproduced (method §8), without its in-place division.

    It divides the raw outputs by their row sum (≈ 0 for tanh outputs, so the "pmf" is ill-defined), takes
    the sample standard deviation (divisor M − 1) over images and has no floor (−inf for identical images).
    The paper's numbers only came out because its `rel_entropy` had already min-shifted and normalised the
    same tensors in place. reconstructions: (..., M, D); returns (...,) float64.
    """
    r = reconstructions.double()
    sigma = (r / r.sum(dim=-1, keepdim=True)).std(dim=-2, correction=1)
    return (HALF_LN_2PIE + sigma.log()).mean(dim=-1)


@dataclass(frozen=True, eq=False)
class EntropyCurves:
    """Entropy curves over layers 0..L, layer 0 being the input compared with itself (numpy arrays).

    kl_per_image (L+1, B); kl_mean, kl_median, diff_entropy (L+1,) float64; clamped_pixels (L+1,) int64;
    finite is False when any input or result is NaN or infinite.
    """

    kl_per_image: np.ndarray
    kl_mean: np.ndarray
    kl_median: np.ndarray
    diff_entropy: np.ndarray
    clamped_pixels: np.ndarray
    finite: bool


def entropy_curves(
    x: Tensor, reconstructions: Tensor, sigma_floor_rel: float = 1e-5, eps: float = 1e-12
) -> EntropyCurves:
    """KL and differential-entropy curves of reconstructions (L, B, D) of the inputs x (B, D).

    Layer 0 is x itself: KL 0 and the differential entropy of the input images. Layers are processed one
    at a time, so the float64 working copies stay at (B, D) however deep the network is.
    """
    if reconstructions.dim() != 3 or reconstructions.shape[1:] != x.shape:
        raise ConfigError(
            "entropy_curves needs x (B, D) and reconstructions (L, B, D), "
            f"got {tuple(x.shape)} and {tuple(reconstructions.shape)}"
        )
    kl = [torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)]
    de = [differential_entropy(x, sigma_floor_rel, eps)]
    for layer in reconstructions:
        kl.append(kl_per_image(x, layer, eps))
        de.append(differential_entropy(layer, sigma_floor_rel, eps))
    kl_np = torch.stack(kl).cpu().numpy()
    diff = torch.stack([d.value for d in de]).cpu().numpy()
    clamped = torch.stack([d.clamped_pixels for d in de]).cpu().numpy()
    finite = bool(
        torch.isfinite(x).all()
        and torch.isfinite(reconstructions).all()
        and np.isfinite(kl_np).all()
        and np.isfinite(diff).all()
    )
    return EntropyCurves(
        kl_per_image=kl_np,
        kl_mean=kl_np.mean(axis=1),
        kl_median=np.median(kl_np, axis=1),
        diff_entropy=diff,
        clamped_pixels=clamped,
        finite=finite,
    )

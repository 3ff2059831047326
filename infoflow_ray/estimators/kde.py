"""Kernel density (pairwise-distance) bound of Kolchinsky & Tracey (2017), as used by Saxe et al. (2018): 'kde'.

In nats; pure torch on the device of the inputs, float64, vectorised over samples with ``torch.cdist``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators.checks import check_layer, chunks
from infoflow_ray.estimators.discrete import dense_codes
from infoflow_ray.estimators.registry import register_layer


def kde_mi(
    activations: Tensor,
    labels: Tensor,
    noise_var: float = 1e-1,
    bound: str = "upper",
    chunk_size: int = 1024,
) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in nats of T = h + ε, ε ~ N(0, σ²I), σ² = ``noise_var`` (Kolchinsky & Tracey 2017).

    The activations h_i (N, n) are the centres of an equal-weight Gaussian mixture. With K_ij =
    exp(−‖h_i − h_j‖² / (2σ²)) for the upper (KL) bound, or exp(−‖h_i − h_j‖² / (8σ²)) for the lower
    (Bhattacharyya) bound, and H(T|X) = the Gaussian's entropy subtracted (constants cancel, Saxe et al. 2018):

        I(X;T) = −(1/N) Σ_i ln (1/N) Σ_j K_ij                                  ≤ ln N
        I(T;Y) = H(T) − Σ_y p(y) H(T|Y=y) = −(1/N) Σ_i [ln (1/N) Σ_j K_ij − ln (1/N_y) Σ_{j: y_j = y_i} K_ij]

    The I(X;T) upper bound is ≥ the true I(X; h + ε) (lower bound: ≤); I(T;Y) is a difference of two bounds,
    so neither. Saxe et al. used σ² = 1e-3; the result depends strongly on σ² (→ 0 as σ² grows).
    Rows are processed ``chunk_size`` at a time: memory O(chunk_size · N).
    """
    n_samples = check_layer(activations, labels)
    if not noise_var > 0:
        raise ConfigError(f"noise_var must be > 0, got {noise_var!r}")
    if bound not in ("upper", "lower"):
        raise ConfigError(f"bound must be 'upper' or 'lower', got {bound!r}")
    h = activations.double()
    y = dense_codes(labels.to(h.device))
    n_y = torch.bincount(y).double()[y]  # (N,) size of each sample's class
    scale = 1.0 / (2.0 * noise_var) if bound == "upper" else 1.0 / (8.0 * noise_var)
    log_all, log_same = [], []
    for start in chunks(n_samples, chunk_size):
        rows = slice(start, start + chunk_size)
        log_k = torch.cdist(h[rows], h).square_().mul_(-scale)  # (c, N) ln K_ij
        log_all.append(torch.logsumexp(log_k, dim=1))
        log_same.append(torch.logsumexp(log_k.masked_fill_(y[rows, None] != y[None, :], -math.inf), dim=1))
    h_all = math.log(n_samples) - torch.cat(log_all)  # −ln (1/N) Σ_j K_ij per row
    h_same = n_y.log() - torch.cat(log_same)  # −ln (1/N_y) Σ_{same class} K_ij per row
    return h_all.mean().item(), (h_all - h_same).mean().item()


@register_layer("kde")
def _kde(activations, labels, *, inputs, x_ids, **params):
    return kde_mi(activations, labels, **params)

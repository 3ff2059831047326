"""Equal-mass (quantile) binning of a layer, the layer-level form of adaptive partitioning: 'adaptive'.

Darbellay–Vajda's tiling (``darbellay_vajda``) is for pairs of scalars: a split of a cell in d dimensions makes
2^d subcells, infeasible for a layer of n units, so each unit is binned on its own into ``n_bins`` equal-mass
(quantile) bins and T's states are the distinct binned rows, with the plug-in entropies of ``binning.binned_mi``.
In nats; pure torch, float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators.checks import check_layer
from infoflow_ray.estimators.discrete import check_n_bins, code_entropy, dense_codes, discrete_mi
from infoflow_ray.estimators.registry import register_layer


def equal_mass_bin_indices(activations: Tensor, n_bins: int = 30) -> Tensor:
    """Each activation's bin, (N, n) int64, among ``n_bins`` equal-mass (quantile) bins of its own unit's values.

    The bin of a value v of unit j is ⌊ m · n_bins / N ⌋, m the number of unit j's N values strictly below v:
    equal values share a bin (so a heavily tied value, e.g. a saturated tanh at ±1, makes its bin heavier than
    N/n_bins), and each bin of distinct values holds about N/n_bins samples.
    """
    if activations.dim() != 2:
        raise ConfigError(f"activations must be (N, n), got shape {tuple(activations.shape)}")
    check_n_bins(n_bins)
    columns = activations.double().T.contiguous()  # (n, N)
    below = torch.searchsorted(columns.sort(dim=1).values, columns)  # (n, N): values strictly below each value
    return (below * n_bins).div_(activations.shape[0], rounding_mode="floor").T


def equal_mass_binned_mi(activations: Tensor, labels: Tensor, n_bins: int = 30) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in nats with each unit binned into ``n_bins`` equal-mass bins (``equal_mass_bin_indices``).

    activations: (N, n); labels: (N,) int. The layer-level form of adaptive partitioning (Darbellay–Vajda's
    tiling splits a cell into 2^n subcells, infeasible for a layer of n units): T's states are the distinct rows
    of per-unit quantile bins. As in ``binning.binned_mi``: X is the sample identity, so I(X;T) = H(T) ≤ ln N;
    I(T;Y) = H(T) − H(T|Y); plug-in entropies, no bias correction. Non-finite activations give (nan, nan).
    """
    check_layer(activations, labels)
    check_n_bins(n_bins)
    if not torch.isfinite(activations).all():
        return math.nan, math.nan
    t = dense_codes(equal_mass_bin_indices(activations, n_bins))
    return code_entropy(t).item(), discrete_mi(t, dense_codes(labels.to(t.device))).item()


@register_layer("adaptive", settings=("n_bins",))
def _adaptive(activations, labels, *, inputs, x_ids, **params):
    return equal_mass_binned_mi(activations, labels, **params)

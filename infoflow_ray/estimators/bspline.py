"""B-spline generalised binning: Daub, Steuer, Selbig & Kloska (2004), "Estimating mutual information using
B-spline functions – an improved similarity measure for analysing gene expression data", BMC Bioinformatics 5:118:
'bspline'. A value falls into ``order`` neighbouring bins with weights given by B-spline basis functions
(``bspline_weights``); probabilities are means of the weights. In nats; pure torch, float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators.checks import check_layer, check_pair, scalar
from infoflow_ray.estimators.discrete import code_entropy, dense_codes, pmf_entropy
from infoflow_ray.estimators.registry import register_layer

BSPLINE_MAX_UNITS = 8
"""The widest layer ``bspline_layer_mi`` takes by default: 3^8 = 6,561 joint cells per sample at order 3."""


def bspline_weights(values: Tensor, n_bins: int = 10, order: int = 3) -> Tensor:
    """B-spline bin weights (N, n_bins), float64, of values (N,) (Daub et al. 2004): rows sum to 1, ≥ 0.

    The values are scaled to z = (v − min)/(max − min) · (M − k + 1), M = ``n_bins``, k = ``order``, and weighted by
    the M basis functions B_{i,k}(z) of the uniform clamped knot vector t_i = 0 (i < k), i − k + 1 (k ≤ i ≤ M − 1),
    M − k + 1 (i > M − 1), by the Cox–de Boor recursion. A value has at most k non-zero weights, in consecutive
    bins; order 1 is plain binning into M equal bins over [min, max] (the maximum in the last bin). Constant
    values all fall into bin 0. Non-finite values give rows of nan.
    """
    v = scalar(values, "values")
    _check_spline(n_bins, order)
    if not torch.isfinite(v).all():
        return torch.full((v.numel(), n_bins), math.nan, dtype=torch.float64, device=v.device)
    z, start = _spline_position(v, n_bins, order)
    return _spline_basis(z, start, n_bins, order)


def bspline_mi(x: Tensor, y: Tensor, n_bins: int = 10, order: int = 3) -> float:
    """I(X;Y) = H(X) + H(Y) − H(X,Y) in nats of two scalars x, y ((N,) or (N, 1)) by B-spline binning.

    p(a) is the mean over samples of ``bspline_weights``, p(a, b) the mean of the outer products of a sample's
    x- and y-weights (Daub et al. 2004). With M = 10, k = 3 it underestimates strongly dependent variables (the
    joint has only M² cells), and it is ≥ 0 up to rounding. Non-finite values give nan.
    """
    x, y = scalar(x, "x"), scalar(y, "y")
    n_samples = check_pair(x, y)
    _check_spline(n_bins, order)
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        return math.nan
    wx, wy = bspline_weights(x, n_bins, order), bspline_weights(y.to(x.device), n_bins, order)
    joint = wx.T @ wy / n_samples
    return (pmf_entropy(joint.sum(1)) + pmf_entropy(joint.sum(0)) - pmf_entropy(joint)).item()


def bspline_layer_mi(
    activations: Tensor, labels: Tensor, n_bins: int = 10, order: int = 3, max_units: int = BSPLINE_MAX_UNITS
) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in nats of a layer by B-spline binning of each unit (Daub et al. 2004).

    activations: (N, n); labels: (N,) int. Each unit is weighted by ``bspline_weights`` over its own [min, max];
    a sample's weight on a cell of the n-dimensional grid is the product of its units' weights, so it has at
    most order^n non-zero cells, accumulated sparsely (memory O(N · order^n): n ≤ ``max_units``). With p(t) the
    mean of the samples' weights and X the sample identity:

        I(X;T) = H(T) − H(T|X),  H(T|X) = mean over samples of the entropy of the sample's own weights  (≤ ln N)
        I(T;Y) = H(T) − Σ_y p(y) H(T | Y=y)                                                             (≤ H(Y))

    Non-finite activations give (nan, nan).
    """
    n_samples = check_layer(activations, labels)
    _check_spline(n_bins, order)
    n_units = activations.shape[1]
    if not (isinstance(max_units, int) and max_units >= 1):
        raise ConfigError(f"max_units must be an integer >= 1, got {max_units!r}")
    if n_units > max_units:
        raise ConfigError(
            f"bspline_layer_mi takes layers of at most max_units={max_units} units (order^n cells per sample grow "
            f"too fast), got a layer of {n_units} units"
        )
    if n_units * math.log2(n_bins) >= 62:
        raise ConfigError(f"n_bins^n must stay below 2^62 to code the cells, got n_bins={n_bins}, n={n_units}")
    if not torch.isfinite(activations).all():
        return math.nan, math.nan
    a = activations.double()
    device = a.device
    offsets = torch.arange(order, device=device)
    codes = torch.zeros(n_samples, 1, dtype=torch.long, device=device)  # (N, order^u) cells of the first u units
    weights = torch.ones(n_samples, 1, dtype=torch.float64, device=device)
    for unit in range(n_units):
        z, start = _spline_position(a[:, unit], n_bins, order)
        local = _spline_basis(z, start, n_bins, order).gather(1, start[:, None] + offsets)  # (N, order)
        codes = (codes[:, :, None] * n_bins + (start[:, None] + offsets)[:, None, :]).flatten(1)
        weights = (weights[:, :, None] * local[:, None, :]).flatten(1)
    cell = torch.unique(codes.flatten(), return_inverse=True)[1]
    n_cells = int(cell.max()) + 1
    mass = torch.zeros(n_cells, dtype=torch.float64, device=device).index_add_(0, cell, weights.flatten())
    h_t = pmf_entropy(mass / n_samples)
    h_t_given_x = pmf_entropy(weights) / n_samples  # Σ_i (1/N) H(w_i)
    y = dense_codes(labels.to(device))
    joint_code = torch.unique(y[:, None] * n_cells + cell.view(n_samples, -1), return_inverse=True)[1].flatten()
    joint = torch.zeros(int(joint_code.max()) + 1, dtype=torch.float64, device=device)
    joint.index_add_(0, joint_code, weights.flatten())
    i_ty = h_t + code_entropy(y) - pmf_entropy(joint / n_samples)  # H(T) + H(Y) − H(T,Y) = H(T) − H(T|Y)
    return (h_t - h_t_given_x).item(), i_ty.item()


def _check_spline(n_bins: int, order: int) -> None:
    if not (isinstance(order, int) and order >= 1):
        raise ConfigError(f"order must be an integer >= 1, got {order!r}")
    if not (isinstance(n_bins, int) and n_bins >= order):
        raise ConfigError(f"n_bins must be an integer >= order = {order}, got {n_bins!r}")


def _spline_position(v: Tensor, n_bins: int, order: int) -> tuple[Tensor, Tensor]:
    """Daub's scaled positions z (N,) in [0, M − k + 1] and each z's first non-zero basis index (N,) long."""
    lo, hi = v.min(), v.max()
    span = n_bins - order + 1
    z = (v - lo) / (hi - lo) * span if hi > lo else torch.zeros_like(v)
    return z, z.floor().clamp(0, span - 1).long()


def _spline_basis(z: Tensor, start: Tensor, n_bins: int, order: int) -> Tensor:
    """The M basis functions B_{i,k}(z), (N, M), by Cox–de Boor from order 1 up (0/0 = 0)."""
    knots = (torch.arange(n_bins + order, dtype=torch.float64, device=z.device) - order + 1).clamp(
        0, n_bins - order + 1
    )
    # order 1: the indicator of the knot interval holding z; the interval [M − k, M − k + 1] includes its right end
    basis = torch.zeros(z.numel(), n_bins + order - 1, dtype=torch.float64, device=z.device)
    basis.scatter_(1, (start + order - 1)[:, None], 1.0)
    zc = z[:, None]
    for d in range(2, order + 1):
        width = basis.shape[1] - 1
        t_i, t_id1 = knots[:width], knots[d - 1 : d - 1 + width]  # t_i, t_{i+d−1}
        t_i1, t_id = knots[1 : 1 + width], knots[d : d + width]  # t_{i+1}, t_{i+d}
        left = torch.where(t_id1 > t_i, (zc - t_i) / (t_id1 - t_i).clamp(min=1e-300), 0.0)
        right = torch.where(t_id > t_i1, (t_id - zc) / (t_id - t_i1).clamp(min=1e-300), 0.0)
        basis = left * basis[:, :width] + right * basis[:, 1:]
    return basis


@register_layer("bspline")
def _bspline(activations, labels, *, inputs, x_ids, **params):
    return bspline_layer_mi(activations, labels, **params)

"""Information-plane estimators of seed 003 beyond ``infoplane``: adaptive partitions, B-splines, distance correlation.

Every MI estimator returns nats (natural logarithm; bits = nats / ``infoplane.LN2``). X is the input sample,
T a layer's activations (N, n), Y the class label (N,) int. For a deterministic network each input is distinct,
so X is the identity of each sample.

- ``darbellay_vajda_mi``: Darbellay & Vajda (1999), "Estimation of the information by an adaptive partitioning
  of the observation space", IEEE Trans. Inf. Theory 45(4):1315. I(X;Y) of two scalars from a data-driven tiling
  of the rank-transformed plane: cells are split at their marginal medians into 4 subcells while a χ² test
  (3 degrees of freedom) rejects uniformity of the 4 counts.
- ``equal_mass_binned_mi``: the layer-level "adaptive" estimator. Darbellay–Vajda's tiling is for pairs of
  scalars: a split of a cell in d dimensions makes 2^d subcells, infeasible for a layer of n units, so each unit
  is binned on its own into ``n_bins`` equal-mass (quantile) bins and T's states are the distinct binned rows,
  with the plug-in entropies of ``infoplane.binned_mi``.
- ``bspline_mi``, ``bspline_layer_mi``: Daub, Steuer, Selbig & Kloska (2004), "Estimating mutual information
  using B-spline functions – an improved similarity measure for analysing gene expression data", BMC
  Bioinformatics 5:118. Generalised binning: a value falls into ``order`` neighbouring bins with weights given by
  B-spline basis functions (``bspline_weights``); probabilities are means of the weights.
- ``distance_correlation``, ``dcor_layer``: Székely, Rizzo & Bakirov (2007), "Measuring and testing dependence by
  correlation of distances", Ann. Statist. 35(6):2769. Not an MI: a unitless dependence measure in [0, 1], zero
  iff (in the population) the variables are independent.

All functions are pure torch on the device of their inputs, compute in float64 and never modify their inputs.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError
from infoflow_ray.infoplane import _as_rows, _check_layer, _check_n_bins, _codes, _discrete_mi, _entropy

BSPLINE_MAX_UNITS = 8
"""The widest layer ``bspline_layer_mi`` takes by default: 3^8 = 6,561 joint cells per sample at order 3."""

# --- Darbellay–Vajda adaptive partitioning ----------------------------------------------------------------


def darbellay_vajda_mi(x: Tensor, y: Tensor, alpha: float = 0.05, min_count: int = 2) -> float:
    """I(X;Y) in nats of two scalars x, y ((N,) or (N, 1)) by Darbellay & Vajda's (1999) adaptive partitioning.

    Both variables are replaced by their ranks 0..N−1 (ties broken by sample order: the estimator is meant for
    continuous variables), so a cell is a rectangle [a, b) × [c, d) of ranks whose marginal masses are exactly
    p_x = (b − a)/N and p_y = (d − c)/N. Starting with the whole square, a cell holding n ≥ ``min_count`` points is
    split into 4 subcells at its marginal medians, the midpoints ⌊(a + b)/2⌋, ⌊(c + d)/2⌋ of its rank extents
    (DV's marginally equiquantised partition: each half of an edge has half of the edge's marginal mass). The
    split is kept when the χ² statistic Σ (n_q − n/4)² / (n/4) of the 4 subcell counts exceeds the 1 − ``alpha``
    quantile of χ² with 3 degrees of freedom (the first level is always split, as in the paper); otherwise the
    cell is a leaf, and

        I = Σ_leaves (n_c/N) ln( (n_c/N) / (p_x(c) p_y(c)) )

    Level by level, vectorised over the cells of a level (no recursion); cells of fewer than 3 points can never
    reject uniformity, so ``min_count`` = 2 adds no rule of its own. Non-finite values give nan.
    """
    x, y = _scalar(x, "x"), _scalar(y, "y")
    n_samples = _check_pair(x, y)
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise ConfigError(f"alpha must be a number in (0, 1), got {alpha!r}")
    if not (isinstance(min_count, int) and min_count >= 2):
        raise ConfigError(f"min_count must be an integer >= 2, got {min_count!r}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        return math.nan
    threshold = _chi2_quantile(1.0 - float(alpha), 3)
    device = x.device
    rx, ry = _ranks(x), _ranks(y.to(device))
    x_lo = torch.zeros(1, dtype=torch.long, device=device)  # rank extents [lo, hi) of the active cells
    x_hi = torch.full((1,), n_samples, dtype=torch.long, device=device)
    y_lo, y_hi = x_lo.clone(), x_hi.clone()
    cell = torch.zeros(n_samples, dtype=torch.long, device=device)  # active cell of each active point
    total = torch.zeros((), dtype=torch.float64, device=device)
    level = 0
    while cell.numel():
        n_cells = x_lo.numel()
        counts = torch.bincount(cell, minlength=n_cells)
        sx, sy = (x_lo + x_hi) // 2, (y_lo + y_hi) // 2
        quadrant = 2 * (rx >= sx[cell]).long() + (ry >= sy[cell]).long()  # bit 1: upper x half, bit 0: upper y
        sub = torch.bincount(cell * 4 + quadrant, minlength=4 * n_cells).view(n_cells, 4).double()
        expected = counts.double()[:, None] / 4
        stat = ((sub - expected).square() / expected.clamp(min=1e-300)).sum(dim=1)
        split = (counts >= min_count) & ((stat > threshold) | (level == 0))
        leaf = ~split & (counts > 0)
        p = counts[leaf].double() / n_samples
        px = (x_hi - x_lo)[leaf].double() / n_samples
        py = (y_hi - y_lo)[leaf].double() / n_samples
        total = total + (p * (p / (px * py)).log()).sum()
        # the 4 subcells of every split cell become the next level's active cells, numbered 4·(split rank) + q
        new_id = torch.cumsum(split.long(), 0) - 1
        keep = split[cell]
        cell, rx, ry = new_id[cell[keep]] * 4 + quadrant[keep], rx[keep], ry[keep]
        x_lo = torch.stack([x_lo, x_lo, sx, sx], dim=1)[split].flatten()
        x_hi = torch.stack([sx, sx, x_hi, x_hi], dim=1)[split].flatten()
        y_lo = torch.stack([y_lo, sy, y_lo, sy], dim=1)[split].flatten()
        y_hi = torch.stack([sy, y_hi, sy, y_hi], dim=1)[split].flatten()
        level += 1
    return total.item()


# --- equal-mass (quantile) binning of a layer -------------------------------------------------------------


def equal_mass_bin_indices(activations: Tensor, n_bins: int = 30) -> Tensor:
    """Each activation's bin, (N, n) int64, among ``n_bins`` equal-mass (quantile) bins of its own unit's values.

    The bin of a value v of unit j is ⌊ m · n_bins / N ⌋, m the number of unit j's N values strictly below v:
    equal values share a bin (so a heavily tied value, e.g. a saturated tanh at ±1, makes its bin heavier than
    N/n_bins), and each bin of distinct values holds about N/n_bins samples.
    """
    if activations.dim() != 2:
        raise ConfigError(f"activations must be (N, n), got shape {tuple(activations.shape)}")
    _check_n_bins(n_bins)
    columns = activations.double().T.contiguous()  # (n, N)
    below = torch.searchsorted(columns.sort(dim=1).values, columns)  # (n, N): values strictly below each value
    return (below * n_bins).div_(activations.shape[0], rounding_mode="floor").T


def equal_mass_binned_mi(activations: Tensor, labels: Tensor, n_bins: int = 30) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in nats with each unit binned into ``n_bins`` equal-mass bins (``equal_mass_bin_indices``).

    activations: (N, n); labels: (N,) int. The layer-level form of adaptive partitioning (Darbellay–Vajda's
    tiling splits a cell into 2^n subcells, infeasible for a layer of n units): T's states are the distinct rows
    of per-unit quantile bins. As in ``infoplane.binned_mi``: X is the sample identity, so I(X;T) = H(T) ≤ ln N;
    I(T;Y) = H(T) − H(T|Y); plug-in entropies, no bias correction. Non-finite activations give (nan, nan).
    """
    _check_layer(activations, labels)
    _check_n_bins(n_bins)
    if not torch.isfinite(activations).all():
        return math.nan, math.nan
    t = _codes(equal_mass_bin_indices(activations, n_bins))
    return _entropy(t).item(), _discrete_mi(t, _codes(labels.to(t.device))).item()


# --- B-spline generalised binning (Daub et al. 2004) ------------------------------------------------------


def bspline_weights(values: Tensor, n_bins: int = 10, order: int = 3) -> Tensor:
    """B-spline bin weights (N, n_bins), float64, of values (N,) (Daub et al. 2004): rows sum to 1, ≥ 0.

    The values are scaled to z = (v − min)/(max − min) · (M − k + 1), M = ``n_bins``, k = ``order``, and weighted by
    the M basis functions B_{i,k}(z) of the uniform clamped knot vector t_i = 0 (i < k), i − k + 1 (k ≤ i ≤ M − 1),
    M − k + 1 (i > M − 1), by the Cox–de Boor recursion. A value has at most k non-zero weights, in consecutive
    bins; order 1 is plain binning into M equal bins over [min, max] (the maximum in the last bin). Constant
    values all fall into bin 0. Non-finite values give rows of nan.
    """
    v = _scalar(values, "values")
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
    x, y = _scalar(x, "x"), _scalar(y, "y")
    n_samples = _check_pair(x, y)
    _check_spline(n_bins, order)
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        return math.nan
    wx, wy = bspline_weights(x, n_bins, order), bspline_weights(y.to(x.device), n_bins, order)
    joint = wx.T @ wy / n_samples
    return (_plugin(joint.sum(1)) + _plugin(joint.sum(0)) - _plugin(joint)).item()


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
    n_samples = _check_layer(activations, labels)
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
    h_t = _plugin(mass / n_samples)
    h_t_given_x = _plugin(weights) / n_samples  # Σ_i (1/N) H(w_i)
    y = _codes(labels.to(device))
    joint_code = torch.unique(y[:, None] * n_cells + cell.view(n_samples, -1), return_inverse=True)[1].flatten()
    joint = torch.zeros(int(joint_code.max()) + 1, dtype=torch.float64, device=device)
    joint.index_add_(0, joint_code, weights.flatten())
    i_ty = h_t + _entropy(y) - _plugin(joint / n_samples)  # H(T) + H(Y) − H(T,Y) = H(T) − H(T|Y)
    return (h_t - h_t_given_x).item(), i_ty.item()


# --- distance correlation (Székely, Rizzo & Bakirov 2007) -------------------------------------------------


def distance_correlation(x: Tensor, y: Tensor) -> float:
    """Sample distance correlation dCor(x, y) in [0, 1] of x (N,) or (N, d) and y (N,) or (N, e); unitless.

    A dependence measure, not an MI: with A, B the double-centred Euclidean distance matrices of x and y
    (A_ij = a_ij − ā_i· − ā_·j + ā_··), dCov²(x, y) = mean(A·B) (the V-statistic, ≥ 0) and

        dCor = sqrt( dCov²(x, y) / sqrt(dCov²(x, x) dCov²(y, y)) ),  0 when either variance is 0.

    1 for y = a·x·R + b (R orthogonal, a ≠ 0); → 0 for independent samples as N grows. Memory O(N²): N up to a
    few thousand. Non-finite values give nan.
    """
    x, y = _as_rows(x), _as_rows(y)
    _check_pair(x, y)
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        return math.nan
    a, b = _centred_distances(x), _centred_distances(y.to(x.device))
    var_x, var_y = a.square().mean(), b.square().mean()
    if var_x <= 0 or var_y <= 0:
        return 0.0
    cov = (a * b).mean().clamp(min=0)
    return (cov / (var_x * var_y).sqrt()).sqrt().clamp(max=1.0).item()


def dcor_layer(activations: Tensor, labels: Tensor, inputs: Tensor) -> tuple[float, float]:
    """(dCor(X, T), dCor(T, Y)), unitless in [0, 1], NOT informations in nats (``distance_correlation``).

    activations: (N, n); labels: (N,) int, taken as a one-hot matrix (N, n_classes); inputs: X, (N, d) (or
    (N,)), the network's input. Non-finite activations give (nan, nan).
    """
    n_samples = _check_layer(activations, labels)
    if inputs.shape[0] != n_samples:
        raise ConfigError(f"inputs must have {n_samples} rows like activations, got shape {tuple(inputs.shape)}")
    if not torch.isfinite(activations).all():
        return math.nan, math.nan
    one_hot = torch.nn.functional.one_hot(_codes(labels.to(activations.device))).double()
    return distance_correlation(inputs.to(activations.device), activations), distance_correlation(activations, one_hot)


# --- helpers ----------------------------------------------------------------------------------------------


def _scalar(v: Tensor, name: str) -> Tensor:
    """v (N,) or (N, 1) as (N,) float64."""
    if v.dim() == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.dim() != 1:
        raise ConfigError(f"{name} must be (N,) or (N, 1), got shape {tuple(v.shape)}")
    return v.double()


def _check_pair(x: Tensor, y: Tensor) -> int:
    if x.shape[0] != y.shape[0]:
        raise ConfigError(f"x and y need the same number of samples, got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] < 2:
        raise ConfigError(f"x and y need at least 2 samples, got {x.shape[0]}")
    return x.shape[0]


def _check_spline(n_bins: int, order: int) -> None:
    if not (isinstance(order, int) and order >= 1):
        raise ConfigError(f"order must be an integer >= 1, got {order!r}")
    if not (isinstance(n_bins, int) and n_bins >= order):
        raise ConfigError(f"n_bins must be an integer >= order = {order}, got {n_bins!r}")


def _plugin(p: Tensor) -> Tensor:
    """−Σ p ln p over all entries (0 ln 0 = 0), float64 scalar."""
    return -torch.special.xlogy(p, p).sum()


def _ranks(v: Tensor) -> Tensor:
    """Ranks 0..N−1 of v (N,), ties in sample order."""
    order = torch.argsort(v, stable=True)
    return torch.empty_like(order).scatter_(0, order, torch.arange(v.numel(), device=v.device))


@functools.lru_cache(maxsize=32)
def _chi2_quantile(p: float, df: int) -> float:
    """The p-quantile of χ² with ``df`` degrees of freedom, by bisection of P(df/2, x/2) (regularised gamma)."""
    half_df = torch.tensor(df / 2, dtype=torch.float64)
    lo, hi = 0.0, float(df)
    while torch.special.gammainc(half_df, torch.tensor(hi / 2, dtype=torch.float64)) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if torch.special.gammainc(half_df, torch.tensor(mid / 2, dtype=torch.float64)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


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


def _centred_distances(v: Tensor) -> Tensor:
    """The double-centred Euclidean distance matrix (N, N) of the rows of v (exact differences, no matmul)."""
    d = torch.cdist(v, v, compute_mode="donot_use_mm_for_euclid_dist")
    return d - d.mean(dim=0, keepdim=True) - d.mean(dim=1, keepdim=True) + d.mean()

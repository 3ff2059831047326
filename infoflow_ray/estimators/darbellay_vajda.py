"""Darbellay & Vajda (1999), "Estimation of the information by an adaptive partitioning of the observation
space", IEEE Trans. Inf. Theory 45(4):1315: I(X;Y) of two scalars from a data-driven tiling of the rank-transformed
plane. Cells are split at their marginal medians into 4 subcells while a χ² test (3 degrees of freedom) rejects
uniformity of the 4 counts. A pair estimator, not a layer estimator (``equal_mass`` is the layer's 'adaptive').
In nats; pure torch, float64.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators.checks import check_pair, scalar


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
    x, y = scalar(x, "x"), scalar(y, "y")
    n_samples = check_pair(x, y)
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

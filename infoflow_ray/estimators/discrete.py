"""Discrete helpers shared by the estimators: plug-in entropies and mutual informations of integer codes, equal bins.

Every quantity is in nats (natural logarithm; bits = nats / ``LN2``). All functions are pure torch on the device of
their inputs, compute in float64 and never modify their inputs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError

LN2 = math.log(2.0)
"""Nats per bit: an information in nats divided by LN2 is in bits."""


def code_entropy(codes: Tensor) -> Tensor:
    """Plug-in entropy −Σ p ln p of the empirical distribution of integer ``codes`` (N,), in nats, float64."""
    counts = torch.unique(codes, return_counts=True)[1].double()
    n = counts.sum()
    return n.log() - (counts * counts.log()).sum() / n


def discrete_mi(a: Tensor, b: Tensor) -> Tensor:
    """I(A;B) = H(A) + H(B) − H(A,B) of two integer codes (N,) in 0..N−1, in nats."""
    return code_entropy(a) + code_entropy(b) - code_entropy(a * (int(b.max()) + 1) + b)


def dense_codes(values: Tensor) -> Tensor:
    """Values (N,) or rows (N, n) as dense integer codes 0..K−1 (equal rows, equal codes)."""
    return torch.unique(values, dim=0, return_inverse=True)[1]


def bin_indices(activations: Tensor, n_bins: int = 30, range: tuple[float, float] | None = None) -> Tensor:
    """Each activation's bin, (N, n) int16/int32, among ``n_bins`` equal bins over ``range``.

    ``range=None`` takes the layer's own [min, max] over all its neurons and samples (seed 003's suggestion);
    ``(-1, 1)`` gives the fixed tanh bins of Shwartz-Ziv & Tishby and seed 002 ("30 equal intervals between
    -1 and 1"). Values outside the range go to the edge bins, the maximum to the last bin; a layer with
    min = max has a single bin.
    """
    check_n_bins(n_bins)
    a = activations.double()
    if range is None:
        lo, hi = a.min(), a.max()
    else:
        lo, hi = (torch.tensor(float(v), dtype=torch.float64, device=a.device) for v in range)
    if not hi >= lo:
        raise ConfigError(f"range must be (lo, hi) with lo <= hi, got ({float(lo)}, {float(hi)})")
    width = (hi - lo) / n_bins
    if width == 0:
        index = torch.zeros_like(a)
    else:
        index = ((a - lo) / width).floor().clamp_(0, n_bins - 1)
    return index.to(torch.int16 if n_bins <= torch.iinfo(torch.int16).max else torch.int32)


def check_n_bins(n_bins: int) -> None:
    if not (isinstance(n_bins, int) and n_bins >= 1):
        raise ConfigError(f"n_bins must be an integer >= 1, got {n_bins!r}")


def pmf_entropy(p: Tensor) -> Tensor:
    """−Σ p ln p over all entries (0 ln 0 = 0), float64 scalar."""
    return -torch.special.xlogy(p, p).sum()

"""The cutoff (docs/method.md §4): the first layer of the saturated tail of an entropy curve.

A curve runs over layers 0..L, layer 0 being the input compared with itself, so that a curve that never
moves is told apart from one that collapsed at layer 1. The band is atol + rtol·|E_L| around the final
value E_L; k is the deepest layer outside it and the cutoff is ℓ_c = k + 1. A curve whose saturated tail is
only the last layer (k = L − 1), or that has no layer outside the band (flat), never saturated: ℓ_c = L and
saturated is False. Pure numpy; `find_cutoffs` is vectorised over curves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from infoflow_ray.errors import ConfigError


@dataclass(frozen=True)
class Cutoff:
    """layer: ℓ_c (−1 when not finite); saturated: the curve has a saturated tail before its last layer;
    finite: every value of the curve in the used range is finite."""

    layer: int
    saturated: bool
    finite: bool


def _curves_2d(curves: ArrayLike, rtol: float, atol: float, last_layer: int | None) -> np.ndarray:
    """Validated float64 (N, last_layer + 1) view of the curves."""
    if not rtol >= 0:
        raise ConfigError(f"rtol must be >= 0, got {rtol}")
    if not atol >= 0:
        raise ConfigError(f"atol must be >= 0, got {atol}")
    c = np.asarray(curves, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2:
        raise ConfigError(f"curves must be (N, L+1) with L+1 >= 2 layers, got shape {c.shape}")
    if last_layer is None:
        return c
    if not 1 <= last_layer <= c.shape[1] - 1:
        raise ConfigError(f"last_layer must be in 1..{c.shape[1] - 1}, got {last_layer}")
    return c[:, : last_layer + 1]


def _deepest_outside(c: np.ndarray, rtol: float, atol: float) -> tuple[np.ndarray, np.ndarray]:
    """For curves c (N, n): k (N,) the deepest index whose value lies outside the band around the last
    value, and whether any does (N,) bool (k is meaningless where none does)."""
    last = c[:, -1:]
    outside = np.abs(c - last) > atol + rtol * np.abs(last)
    k = c.shape[1] - 1 - np.argmax(outside[:, ::-1], axis=1)
    return k, outside.any(axis=1)


def find_cutoffs(
    curves: ArrayLike, rtol: float = 0.005, atol: float = 1e-8, last_layer: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cutoffs of N curves (N, L+1) over layers 0..L, optionally restricted to layers 0..last_layer.

    Returns layers int64 (N,) — ℓ_c, or −1 for a curve with a non-finite value in the used range —,
    saturated bool (N,) and finite bool (N,).
    """
    c = _curves_2d(curves, rtol, atol, last_layer)
    n_layers = c.shape[1] - 1
    k, any_outside = _deepest_outside(c, rtol, atol)
    layers = np.where(any_outside, k + 1, n_layers)
    finite = np.isfinite(c).all(axis=1)
    saturated = finite & (layers < n_layers)
    return np.where(finite, layers, -1).astype(np.int64), saturated, finite


def find_cutoff(curve: ArrayLike, rtol: float = 0.005, atol: float = 1e-8, last_layer: int | None = None) -> Cutoff:
    """Cutoff of one curve (L+1,) over layers 0..L; see `find_cutoffs`."""
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1:
        raise ConfigError(f"curve must be one-dimensional (L+1,), got shape {c.shape}")
    layers, saturated, finite = find_cutoffs(c[None, :], rtol, atol, last_layer)
    return Cutoff(layer=int(layers[0]), saturated=bool(saturated[0]), finite=bool(finite[0]))


def reference_cutoff(curve: ArrayLike, rtol: float = 0.005, atol: float = 1e-8, last_layer: int | None = None) -> int:
    """What the reference code's `cutoff_det` reports for our curve (L+1,) over layers 0..L.

    The reference has no layer 0 and is 0-based: on layers 1..L it reports the 0-based index of the
    deepest layer outside the band (same band, same defaults), or, when there is none, the number of
    layers it saw, L, as a maximum. Compared with our ℓ_c:
      - saturated with ℓ_c >= 2: reference = ℓ_c − 2;
      - tail is only the last layer (ours ℓ_c = L, unsaturated): reference = L − 2;
      - flat, or collapsed at layer 1 and flat after it (ours ℓ_c = L or 1): reference = L.
    So the reference cannot tell a network that lost everything in its first layer from one that lost
    nothing. Returns −1 for a non-finite curve.
    """
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1:
        raise ConfigError(f"curve must be one-dimensional (L+1,), got shape {c.shape}")
    c = _curves_2d(c[None, :], rtol, atol, last_layer)
    if not np.isfinite(c).all():
        return -1
    k, any_outside = _deepest_outside(c[:, 1:], rtol, atol)
    return int(k[0]) if any_outside[0] else c.shape[1] - 1


def normalised(curve: ArrayLike) -> np.ndarray:
    """curve / its last value (along the last axis), for the cutoff of the median KL curve.

    For (N, L+1) per-image curves it normalises each; the reference took the median of those normalised
    per-image curves, i.e. np.median(normalised(kl_per_image.T), axis=0). A last value of 0 gives
    non-finite values, which `find_cutoff` reports as finite=False.
    """
    c = np.asarray(curve, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return c / c[..., -1:]

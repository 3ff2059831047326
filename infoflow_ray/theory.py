"""Mean-field theory of deep tanh networks (Poole et al. 2016; Schoenholz et al. 2017), numpy only.

Every Gaussian average ∫Dz f(z) is a Gauss–Hermite sum (probabilists' nodes, weights normalised to 1), so the
results are deterministic. All functions broadcast `sigma_w2` against `sigma_b2` and return float64 arrays of
the broadcast shape (0-d for scalar inputs). Variances are per fan-in weight (σw²) and per bias (σb²);
q* is a pre-activation variance, c* a correlation, ξ_c a depth in layers.

Fixed points and the critical point are found by vectorised bisection rather than by iterating the maps: the
maps converge arbitrarily slowly near criticality, and bisection also lands exactly on q* = 0 (σb² = 0,
σw² ≤ 1) and on c* = 1 (ordered phase). Quadrature error grows with q* (tanh(√q z) sharpens); with the
default 151 nodes it is below 1e-6 up to q* ≈ 3 (σw² ≈ 4).
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from infoflow_ray.errors import ConfigError

N_QUAD = 151  # Gauss–Hermite nodes per dimension; odd, so z = 0 is a node


@lru_cache(maxsize=8)
def _nodes(n_quad: int) -> tuple[np.ndarray, np.ndarray]:
    z, w = hermegauss(n_quad)
    return z, w / w.sum()


def _phi_prime(x: np.ndarray) -> np.ndarray:
    return 1.0 - np.tanh(x) ** 2


def _as_arrays(sigma_w2, sigma_b2) -> tuple[np.ndarray, np.ndarray]:
    sw, sb = np.broadcast_arrays(np.asarray(sigma_w2, dtype=float), np.asarray(sigma_b2, dtype=float))
    if not np.all(sw > 0):
        raise ConfigError(f"sigma_w2 must be > 0, got {sigma_w2}")
    if not np.all(sb >= 0):
        raise ConfigError(f"sigma_b2 must be >= 0, got {sigma_b2}")
    return sw, sb


def _bisect(g, lo, hi, rtol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise bracket [lo, hi] around the root of g, given g(lo) >= 0 >= g(hi); g(mid) > 0 moves lo up.

    Stops when every bracket is narrower than rtol times its larger end, or after max_iter halvings (roots
    at 0). An end that never moves stays exact: lo = 0 for q* = 0, hi = 1 for c* = 1.
    """
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        above = g(mid) > 0
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        if np.all(hi - lo <= rtol * np.maximum(np.abs(lo), np.abs(hi))):
            break
    return lo, hi


def length_map(q, sigma_w2, sigma_b2=0.05, n_quad: int = N_QUAD) -> np.ndarray:
    """One layer of the length map q ← σw² ∫Dz tanh(√q z)² + σb² (pre-activation variance in, out)."""
    z, w = _nodes(n_quad)
    x = np.sqrt(np.asarray(q, dtype=float))[..., None] * z
    return sigma_w2 * (np.tanh(x) ** 2 @ w) + sigma_b2


def q_star(sigma_w2, sigma_b2=0.05, n_quad: int = N_QUAD, rtol: float = 1e-15, max_iter: int = 200) -> np.ndarray:
    """Fixed point q* of the length map: the pre-activation variance a deep network settles to.

    The map is concave with values in [σb², σw² + σb²], so q* is the unique root of map(q) − q in that interval
    (q* = 0 when σb² = 0 and σw² ≤ 1). Bisection stops at relative bracket width `rtol`, or after max_iter steps.
    """
    sw, sb = _as_arrays(sigma_w2, sigma_b2)
    return _bisect(lambda q: length_map(q, sw, sb, n_quad) - q, np.zeros_like(sw), sw + sb, rtol, max_iter)[0]


def _chi_1_at(sw: np.ndarray, q: np.ndarray, n_quad: int) -> np.ndarray:
    z, w = _nodes(n_quad)
    return sw * (_phi_prime(np.sqrt(q)[..., None] * z) ** 2 @ w)


def chi_1(sigma_w2, sigma_b2=0.05, n_quad: int = N_QUAD) -> np.ndarray:
    """χ1 = σw² ∫Dz tanh'(√q* z)²: the slope of the correlation map at c = 1 (dimensionless).

    χ1 < 1 is the ordered phase, χ1 > 1 the chaotic one; χ1 = 1 is the edge of chaos.
    """
    sw, sb = _as_arrays(sigma_w2, sigma_b2)
    return _chi_1_at(sw, q_star(sw, sb, n_quad), n_quad)


def _pair(q: np.ndarray, c: np.ndarray, n_quad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pre-activations u1 (…, n, 1), u2 (…, n, n) of two inputs with variance q, correlation c; weights (n,)."""
    z, w = _nodes(n_quad)
    sq, c = np.sqrt(q)[..., None, None], c[..., None, None]
    u1 = sq * z[:, None]
    u2 = sq * (c * z[:, None] + np.sqrt(np.clip(1.0 - c**2, 0.0, None)) * z[None, :])
    return u1, u2, w


def correlation_map(c, q, sigma_w2, sigma_b2=0.05, n_quad: int = N_QUAD) -> np.ndarray:
    """One layer of the correlation map c ← (σw² ∫Dz1Dz2 tanh(u1) tanh(u2) + σb²) / q, at variance q = q*."""
    c, q = np.asarray(c, dtype=float), np.asarray(q, dtype=float)
    u1, u2, w = _pair(q, c, n_quad)
    mean = ((np.tanh(u1) * np.tanh(u2)) @ w) @ w
    return (sigma_w2 * mean + sigma_b2) / q


def _c_star_at(sw, sb, q, n_quad: int, rtol: float = 1e-14, max_iter: int = 100) -> np.ndarray:
    # map(c) − c is > 0 on [−1, 0) and convex on [0, 1] with a root at 1: the stable c* is the first sign change
    # from below, which is 1 itself in the ordered phase. Where q* = 0 there is no signal and c* is set to 1.
    q_safe = np.where(q > 0, q, 1.0)
    _, c = _bisect(
        lambda c: correlation_map(c, q_safe, sw, sb, n_quad) - c, -np.ones_like(q), np.ones_like(q), rtol, max_iter
    )
    return np.where(q > 0, c, 1.0)


def c_star(sigma_w2, sigma_b2=0.05, n_quad: int = N_QUAD) -> np.ndarray:
    """Stable fixed point c* of the correlation map: 1 in the ordered phase (χ1 <= 1), below 1 in the chaotic."""
    sw, sb = _as_arrays(sigma_w2, sigma_b2)
    return _c_star_at(sw, sb, q_star(sw, sb, n_quad), n_quad)


def _chi_c_at(sw, q, c, n_quad: int) -> np.ndarray:
    u1, u2, w = _pair(q, c, n_quad)
    return sw * (((_phi_prime(u1) * _phi_prime(u2)) @ w) @ w)


def chi_c(sigma_w2, sigma_b2=0.05, n_quad: int = N_QUAD) -> np.ndarray:
    """χ_c = σw² ∫Dz1Dz2 tanh'(u1) tanh'(u2) at c*: the slope of the correlation map at its stable fixed point.

    Equals χ1 in the ordered phase; below 1 on both sides of criticality, 1 at it.
    """
    sw, sb = _as_arrays(sigma_w2, sigma_b2)
    q = q_star(sw, sb, n_quad)
    return _chi_c_at(sw, q, _c_star_at(sw, sb, q, n_quad), n_quad)


def _xi_from_chi(chi: np.ndarray) -> np.ndarray:
    # within a few ulps of 1, 1 − χ_c is rounding noise (ξ_c > 1e15 layers): report the critical inf
    critical = chi >= 1.0 - 4 * np.finfo(float).eps
    return np.where(critical, np.inf, -1.0 / np.log(np.where(critical, 0.5, chi)))


def xi_c(sigma_w2, sigma_b2=0.05, n_quad: int = N_QUAD) -> np.ndarray:
    """Correlation depth scale ξ_c = −1/ln χ_c in layers: how deep input correlations survive.

    +inf at criticality (χ_c = 1), returned without a warning.
    """
    return _xi_from_chi(chi_c(sigma_w2, sigma_b2, n_quad))


def mean_field_depth(sigma_w2, sigma_b2=0.05, factor: float = 6.0, n_quad: int = N_QUAD) -> np.ndarray:
    """The depth to which mean-field theory predicts a network trains, factor·ξ_c in layers (Schoenholz et al.:
    about 6 ξ_c). Not the measured ℓ_train: that is ``analysis.trainable_depth``."""
    return factor * xi_c(sigma_w2, sigma_b2, n_quad)


def critical_sigma_w2(
    sigma_b2=0.05, sigma_w2_max: float = 10.0, rtol: float = 1e-13, n_quad: int = N_QUAD
) -> float | np.ndarray:
    """σw² at the edge of chaos, where χ1 = 1, per σb² (same shape as sigma_b2; a float for a scalar σb²).

    χ1 <= σw² (tanh' <= 1), so the root is >= 1 and bisection runs on [1, sigma_w2_max]. At σb² = 0 the root
    is exactly 1, found to ~3e-8: just above it χ1 − 1 ≈ (σw² − 1)²/3, which doubles resolve only that far.
    """
    _, sb = _as_arrays(1.0, sigma_b2)
    if not np.all(chi_1(sigma_w2_max, sb, n_quad) > 1.0):
        raise ConfigError(f"no critical sigma_w2 below sigma_w2_max={sigma_w2_max} for sigma_b2={sigma_b2}")
    top = np.full_like(sb, sigma_w2_max)
    lo, hi = _bisect(lambda sw: 1.0 - chi_1(sw, sb, n_quad), np.ones_like(sb), top, rtol, 100)
    root = 0.5 * (lo + hi)
    return float(root) if np.ndim(sigma_b2) == 0 else root


@dataclass(frozen=True, eq=False)  # eq=False: fields are arrays, tuple equality would be ambiguous
class MeanField:
    """Mean-field quantities over a σw² grid at one σb²; every array has the grid's shape."""

    sigma_b2: float
    sigma_w2: np.ndarray
    q_star: np.ndarray
    chi_1: np.ndarray
    c_star: np.ndarray
    chi_c: np.ndarray
    xi_c: np.ndarray  # layers
    depth_6xi: np.ndarray  # layers, the predicted maximal trainable depth


def mean_field(sigma_w2_grid, sigma_b2: float = 0.05, n_quad: int = N_QUAD) -> MeanField:
    """All mean-field quantities on a σw² grid, computing q* and c* once."""
    sw, sb = _as_arrays(sigma_w2_grid, sigma_b2)
    q = q_star(sw, sb, n_quad)
    c = _c_star_at(sw, sb, q, n_quad)
    chi = _chi_c_at(sw, q, c, n_quad)
    xi = _xi_from_chi(chi)
    return MeanField(float(sigma_b2), sw.copy(), q, _chi_1_at(sw, q, n_quad), c, chi, xi, 6.0 * xi)


def representative_sigma_w2(values, critical: float) -> list[float]:
    """Ordered, near-critical and chaotic σw² out of ``values``: the smallest, the closest to ``critical`` and
    the largest (fewer when there are fewer distinct values)."""
    values = sorted(set(float(v) for v in values))
    if not values:
        return []
    near = min(values, key=lambda v: abs(v - critical))
    return sorted({values[0], near, values[-1]})


def regime_of(sigma_w2: float, critical: float, rtol: float = 0.05) -> str:
    """The regime of σw²: 'near-critical' in the band within ``rtol`` (±5 %) of the critical σw², else its phase,
    'ordered' below and 'chaotic' above. ("Phase" means only ordered or chaotic; the band is not a phase.)"""
    if abs(sigma_w2 - critical) <= rtol * critical:
        return "near-critical"
    return "ordered" if sigma_w2 < critical else "chaotic"

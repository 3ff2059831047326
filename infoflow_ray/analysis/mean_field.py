"""Mean-field theory as a frame beside the measurements (docs/method.md §5)."""

from __future__ import annotations

import functools

import numpy as np
import polars as pl

from infoflow_ray import theory


def mean_field_frame(sigma_w2, sigma_b2: float = 0.05) -> pl.DataFrame:
    """Mean-field quantities on a σw² grid at one σb²: sigma_w2, sigma_b2, q_star, chi_1, c_star, chi_c, xi_c
    (layers), depth_6xi (6ξ_c, the predicted maximal trainable depth; inf at criticality) and phase
    ('ordered' χ1 < 1, 'chaotic' χ1 > 1)."""
    grid = np.atleast_1d(np.asarray(sigma_w2, dtype=float))
    return _mean_field_frame(tuple(grid.tolist()), float(sigma_b2))


@functools.lru_cache(maxsize=64)
def _mean_field_frame(sigma_w2: tuple[float, ...], sigma_b2: float) -> pl.DataFrame:
    """The frame of one (σw² grid, σb²), computed once per process: q* and c* are fixed points solved by
    bisection, about a second per grid, and an analysis asks for the same grids figure after figure."""
    mf = theory.mean_field(np.asarray(sigma_w2), sigma_b2)
    return pl.DataFrame(
        {
            "sigma_w2": mf.sigma_w2,
            "sigma_b2": np.full_like(mf.sigma_w2, mf.sigma_b2),
            "q_star": mf.q_star,
            "chi_1": mf.chi_1,
            "c_star": mf.c_star,
            "chi_c": mf.chi_c,
            "xi_c": mf.xi_c,
            "depth_6xi": mf.depth_6xi,
        }
    ).with_columns(phase=pl.when(pl.col("chi_1") < 1).then(pl.lit("ordered")).otherwise(pl.lit("chaotic")))

"""Analysis of a results folder with polars: cutoffs vs trainable depths vs mean-field theory
(docs/method.md §4, §5, §7).

Every frame is read through ``ResultStore.scan`` and is tidy: one row per the keys it names. The keys of a point
of the phase diagram are ``KEYS`` = (dataset, profile, sigma_b2, sigma_w2); a frame over the whole σw² axis is
grouped by ``GROUP`` = (dataset, profile, sigma_b2). σb² is a key because mean-field theory (and the critical
σw²) depends on it.

Conventions, documented once here:
- Seeds: cutoffs and curves are aggregated over seeds: mean, standard deviation (ddof 1, null with one seed)
  and the number of seeds n.
- Cascade depth: a cascade's ``depth`` is its network's depth (the grid's deepest). When one σw² has cascades of
  several depths (several grids in one folder) the deepest one is used.
- Trainable depth ℓ_train(σw²): the largest trained depth at which a training reached the accuracy threshold
  (in any seed), **0 when none did**, so that it ranks below every trainable σw². ``any_trainable`` tells
  0-because-nothing-trained apart; ``trainable_depth_mean``/``_std`` are over the per-seed values.
- Non-finite cutoffs (a NaN in a curve) are left out of the mean and counted in ``n_nonfinite``.
- A cutoff that did not saturate (``saturated`` false) sits at the deepest layer searched (``last_layer``): it is
  a lower bound, counted in ``n_unsaturated``.
- Seconds are task-seconds: the sum of each task's wall time (``runs.seconds``), not the grid's elapsed time
  (tasks run in parallel).
- Information plane (optional ``info_plane`` table): I(X;T_l) and I(T_l;Y) in nats, averaged over seeds per
  (estimator, its parameters, N samples); ln N is the ceiling of binned I(X;T) for a deterministic network.
- Planned grids: the driver records each grid's tasks in ``_grids/``; ``missing`` counts planned vs finished vs
  failed tasks against them, and judges by what is present only for results written before grids were recorded.
A function whose table has no readable rows yet raises a one-line ResultsError naming the table and what writes it;
``missing`` never does, and lists what is there and what is not.
"""

from infoflow_ray.analysis.frames import (
    GROUP,
    INFO_KEYS,
    KEYS,
    OPTIONAL,
    PRODUCERS,
    TABLE_KIND,
    accuracy_grid,
    agreement,
    comparison,
    curves_by_sigma,
    cutoffs_by_sigma,
    info_plane_points,
    information_cutoffs,
    open_results,
    regime_of,
    representative_sigma_w2,
    table,
    trainable_depth,
)
from infoflow_ray.analysis.inventory import Inventory, missing
from infoflow_ray.analysis.mean_field import mean_field_frame
from infoflow_ray.analysis.timing import execution_lanes, timing, timing_total, utilisation
from infoflow_ray.store import CURVE_MEASURES, CUTOFF_MEASURES

__all__ = [
    "GROUP",
    "INFO_KEYS",
    "KEYS",
    "OPTIONAL",
    "PRODUCERS",
    "TABLE_KIND",
    "CURVE_MEASURES",
    "CUTOFF_MEASURES",
    "Inventory",
    "accuracy_grid",
    "agreement",
    "comparison",
    "curves_by_sigma",
    "cutoffs_by_sigma",
    "execution_lanes",
    "info_plane_points",
    "information_cutoffs",
    "mean_field_frame",
    "missing",
    "open_results",
    "regime_of",
    "representative_sigma_w2",
    "table",
    "timing",
    "timing_total",
    "trainable_depth",
    "utilisation",
]

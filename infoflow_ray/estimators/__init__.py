"""Information-plane estimators (seeds 002, 003, 004): per-layer I(X;T) and I(T;Y) of a network's activations.

One module per estimator, each registered by name (``registry``); a name in a config selects one::

    from infoflow_ray import estimators
    estimators.layer_mi(network.activations(x)[1:], y, "binning", n_bins=30)   # [(I(X;T_l), I(T_l;Y)), ...]
    estimators.get("binning_extended")(copies, y, seed=0, n_bins=30)          # one signature for every estimator

Every estimator returns nats (natural logarithm). Shwartz-Ziv & Tishby and seed 002 report bits: divide by
``LN2`` (bits = nats / ln 2). X is the input sample, T a layer's activations (N, n), Y the class label (N,) int.

- 'binning' (``binning.binned_mi``): equal bins (Shwartz-Ziv & Tishby 2017); 'binning_extended'
  (``binning.extended_binned_mi``): seed 002's estimator over a family of copies of one network.
- 'kde' (``kde.kde_mi``): the pairwise-distance bound of Kolchinsky & Tracey (2017), as in Saxe et al. (2018).
- 'ksg' (``ksg.ksg_layer_mi``): KSG (Kraskov et al. 2004) for I(X;T), Ross (2014) for I(T;Y); needs inputs=X.
- 'adaptive' (``equal_mass.equal_mass_binned_mi``): equal-mass bins per unit, the layer-level form of
  Darbellay & Vajda's adaptive partitioning (``darbellay_vajda.darbellay_vajda_mi``, for pairs of scalars).
- 'bspline' (``bspline.bspline_layer_mi``): B-spline generalised binning (Daub et al. 2004).
- 'dcor' (``dcor.dcor_layer``): distance correlations dCor(X,T), dCor(T,Y) (Székely et al. 2007) — unitless,
  not nats; needs inputs=X.
- 'density' (``density.density_mi``): two autoregressive models (MADE) per layer, H(T) and H(T|Y) (seed 004).

``discrete`` holds the shared plug-in entropies and equal bins. All estimators are pure torch on the device of
their inputs, compute in float64 and never modify their inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators.discrete import LN2
from infoflow_ray.estimators.registry import Estimator, get, names

__all__ = ["ESTIMATORS", "LN2", "Estimator", "get", "layer_mi", "names"]

# Importing the modules registers them, in this order (the order of ``ESTIMATORS`` and of error messages).
from infoflow_ray.estimators import binning, kde, ksg, equal_mass, bspline, dcor, density  # noqa: E402,F401,I001

ESTIMATORS = names(family=False)
"""The one-network estimators: what the grid's probes and ``layer_mi`` take."""


def layer_mi(
    activations: Sequence[Tensor],
    labels: Tensor,
    estimator: str = "binning",
    *,
    inputs: Tensor | None = None,
    x_ids: Tensor | None = None,
    **params,
) -> list[tuple[float, float]]:
    """[(I(X;T_l), I(T_l;Y))] in nats for each tensor of ``activations`` (hidden layers T_1..T_L, in order), by the
    one-network estimator named ``estimator`` with its ``params`` (see the modules).

    Pass ``TanhNetwork.activations(x)[1:]``: a_0 = x is not a layer. inputs: the network's input X (N, d), needed
    by 'ksg' and 'dcor'. x_ids: equal ids for repeated inputs (the binning estimator's X).
    """
    chosen = get(estimator)
    if chosen.family:
        raise ConfigError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r} (it needs copies)")
    return chosen([activations], labels, inputs=inputs, x_ids=x_ids, **params)

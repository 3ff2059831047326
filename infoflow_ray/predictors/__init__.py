"""Trainability predictors: one small module each, one signature, a registry (docs/predictors.md).

A predictor looks at an *untrained* network and one batch of data and says how trainable the network is::

    from infoflow_ray import families, predictors
    from infoflow_ray.config import NetworkSpec

    spec = NetworkSpec(sigma_w2=1.5, depth=12, widths=(64,) * 12 + (10,), n_inputs=64)
    network = families.build(spec, seed=0)
    result = predictors.run("apjn", network, spec, x, y)      # x (B, n_0) float32, y (B,) int64
    result.score, result.predicted_depth, result.higher_is_better

Every predictor is a function ``fn(network, spec, x, y, **settings) -> PredictorResult``, registered with
``@register(name, higher_is_better=..., defaults=...)``. ``network`` is what ``families.build(spec, seed)``
returns (only ``forward``, ``activations`` and ``next_activation`` are used, plus the module's parameters);
``x``/``y`` are a batch of images as rows and their labels (each predictor takes the first ``batch`` rows it
needs). The kinds (``Predictor.kind``):

- ``closed_form``: mean field from σw², σb² alone (``theory``); network and data are ignored;
- ``network``: measured on the network and the batch (APJN, NTK, NASWOT, GradNorm, ZiCo);
- ``cascade``: the cascade's own cutoffs, *read* from the ``cutoffs`` table (never recomputed here); calling
  one raises ConfigError saying so.

A score without depth units (NTK κ, NASWOT, GradNorm, ZiCo) has ``predicted_depth = None``: it is turned into a
depth nowhere in this package (a rule fixed in advance, or a leave-one-σw²-out calibration in the analysis,
never on the truth being scored). The depth predictors' factor C in ℓ̂ = C·ξ is a setting fixed in advance
(6, Schoenholz et al. 2017). Pure science: torch and numpy only, no Ray, no polars.
"""

from infoflow_ray.predictors.registry import KINDS, Predictor, PredictorResult, get, names, register, run  # noqa: F401,I001

# The modules register themselves on import (order = the order of the registry and of the docs).
from infoflow_ray.predictors import cascade, mean_field, signal, ntk, zero_cost  # noqa: E402,F401,I001

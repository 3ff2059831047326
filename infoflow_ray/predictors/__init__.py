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

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infoflow_ray.errors import ConfigError

KINDS = ("closed_form", "network", "cascade")


@dataclass(frozen=True)
class PredictorResult:
    """What a predictor says about one untrained network.

    ``score``: the predictor's own number (units in its docstring); ``predicted_depth``: layers, or None where the
    predictor has no depth; ``higher_is_better``: whether a higher score means more trainable (the score's
    direction); ``settings``: the settings it ran with (defaults filled in).
    """

    name: str
    score: float
    predicted_depth: float | None
    higher_is_better: bool
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def settings_json(self) -> str:
        return json.dumps(self.settings, sort_keys=True)


@dataclass(frozen=True)
class Predictor:
    """A registered predictor: its function, direction, kind and default settings."""

    name: str
    fn: Callable[..., PredictorResult]
    higher_is_better: bool
    kind: str
    defaults: dict[str, Any]
    gives_depth: bool

    def settings(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The defaults with ``overrides`` on top; an unknown setting fails in one line naming the known ones."""
        overrides = overrides or {}
        for key in overrides:
            if key not in self.defaults:
                known = ", ".join(self.defaults) or "none"
                raise ConfigError(f"predictor '{self.name}' has no setting '{key}'; its settings: {known}")
        return {**self.defaults, **overrides}


REGISTRY: dict[str, Predictor] = {}


def register(
    name: str, *, higher_is_better: bool, kind: str = "network", defaults: dict | None = None, gives_depth: bool
):
    """Decorator: register ``fn(network, spec, x, y, **settings) -> PredictorResult`` under ``name``."""
    if kind not in KINDS:
        raise ConfigError(f"predictor kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def wrap(fn):
        if name in REGISTRY:
            raise ConfigError(f"predictor '{name}' is registered twice")
        REGISTRY[name] = Predictor(name, fn, higher_is_better, kind, dict(defaults or {}), gives_depth)
        return fn

    return wrap


def names(kind: str | None = None) -> tuple[str, ...]:
    """The registered predictor names (of one kind, or all)."""
    return tuple(n for n, p in REGISTRY.items() if kind is None or p.kind == kind)


def get(name: str) -> Predictor:
    """The predictor ``name``; an unknown name fails in one line listing the known ones."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown predictor {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def run(name: str, network, spec, x, y, **settings) -> PredictorResult:
    """Run predictor ``name`` on an untrained ``network`` (of ``spec``) and the batch ``x``, ``y``."""
    predictor = get(name)
    full = predictor.settings(settings)
    result = predictor.fn(network, spec, x, y, **full)
    return PredictorResult(name, float(result[0]), _depth(result[1]), predictor.higher_is_better, full)


def _depth(value) -> float | None:
    return None if value is None else float(value)


# The modules register themselves on import (order = the order of the registry and of the docs).
from infoflow_ray.predictors import cascade, mean_field, signal, ntk, zero_cost  # noqa: E402,F401,I001

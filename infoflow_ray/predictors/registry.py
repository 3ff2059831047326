"""The predictor registry: ``Predictor``, ``PredictorResult``, ``register``, ``get``, ``names``, ``run`` (see the
package docstring). Its own module so that the predictor modules import it and not the package (no import cycle)."""

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

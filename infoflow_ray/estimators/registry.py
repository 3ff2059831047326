"""The estimator registry: a name in a config selects one; an unknown name fails in one line listing the known.

Every registered estimator has one signature::

    estimate(networks, labels, *, inputs=None, x_ids=None, seed=0, **params) -> [(I(X;T_l), I(T_l;Y)), ...]

networks[j][l−1]: layer l's activations (N, n_l) of network j, for the same N inputs (one network for every
estimator but 'binning_extended', which takes a family of copies); labels (N,) int; inputs: X (N, d), the
networks' input (needed by 'ksg' and 'dcor'); x_ids (N,) int: equal ids for repeated inputs (used by the binning
estimators); seed: for estimators that draw (the extended estimator's assignment of inputs to networks).
The result has one pair per layer, layer 1 first, in nats ('dcor': unitless distance correlations).

A new estimator is one module: a function of that signature (``register``), or of one layer
``(activations, labels, *, inputs, x_ids, **params) -> (float, float)`` (``register_layer``), imported by
``infoflow_ray/estimators/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

from infoflow_ray.errors import ConfigError

SETTINGS = ("n_bins", "range", "density")
"""The information-plane experiment's settings an estimator can take (``Estimator.settings``)."""


@dataclass(frozen=True)
class Estimator:
    """One information-plane estimator.

    name: its name in configs and in the ``info_plane`` table's ``estimator`` column. estimate: the function of
    the module docstring's signature. family: True when it needs several networks (copies) of one spec.
    needs_inputs: True when it needs ``inputs=X``. unit: 'nats' or 'dCor' (distance correlation, unitless).
    settings: which of an information-plane experiment's settings it takes (of ``SETTINGS``: 'n_bins' and
    'range', the bins; 'density', the density model's settings as a whole).
    """

    name: str
    estimate: Callable[..., list[tuple[float, float]]]
    family: bool = False
    needs_inputs: bool = False
    unit: str = "nats"
    settings: tuple[str, ...] = ()

    def __call__(
        self,
        networks: Sequence[Sequence[Tensor]],
        labels: Tensor,
        *,
        inputs: Tensor | None = None,
        x_ids: Tensor | None = None,
        seed: int = 0,
        **params,
    ) -> list[tuple[float, float]]:
        if self.needs_inputs and inputs is None:
            raise ConfigError(f"estimator '{self.name}' needs inputs=X, the network's input (N, d)")
        if len(networks) == 0:
            raise ConfigError(f"estimator '{self.name}' needs the activations of at least one network")
        return self.estimate(networks, labels, inputs=inputs, x_ids=x_ids, seed=seed, **params)


_REGISTRY: dict[str, Estimator] = {}


def register(name: str, *, family: bool = False, needs_inputs: bool = False, unit: str = "nats", settings=()):
    """Decorator: register ``estimate(networks, labels, *, inputs, x_ids, seed, **params)`` under ``name``."""

    def add(estimate):
        if name in _REGISTRY:
            raise ValueError(f"estimator {name!r} is registered twice")
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise ValueError(f"estimator {name!r}: unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
        _REGISTRY[name] = Estimator(name, estimate, family, needs_inputs, unit, tuple(settings))
        return estimate

    return add


def register_layer(name: str, *, needs_inputs: bool = False, unit: str = "nats", settings=()):
    """Decorator: register a one-layer function ``(activations, labels, *, inputs, x_ids, **params) -> pair``
    under ``name``; it runs on every layer of the first network."""

    def add(layer):
        def estimate(networks, labels, *, inputs, x_ids, seed, **params):
            return [layer(a, labels, inputs=inputs, x_ids=x_ids, **params) for a in networks[0]]

        register(name, needs_inputs=needs_inputs, unit=unit, settings=settings)(estimate)
        return layer

    return add


def get(name: str) -> Estimator:
    """The estimator registered as ``name``; ConfigError listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"estimator must be one of {', '.join(_REGISTRY)}, got {name!r}") from None


def names(family: bool | None = None) -> tuple[str, ...]:
    """The registered names in registration order; ``family=False``: only the one-network estimators."""
    return tuple(n for n, e in _REGISTRY.items() if family is None or e.family == family)

"""The σw² interval a depth predictor calls trainable at depth L: what ``jobs/predict_then_tune.py --predictor NAME``
tunes over (``sweep.tuning``; the default, ``--predictor cascade``, is the cascade's own interval search)."""

from __future__ import annotations

from collections.abc import Callable

from infoflow_ray.errors import ConfigError
from infoflow_ray.predictors import get, run


def depth_interval(
    name: str, build: Callable[[float], tuple], sigma_w2_grid, depth: int, x, y, **settings
) -> tuple[float, float] | None:
    """[lowest, highest] σw² of ``sigma_w2_grid`` whose predicted depth ℓ̂ >= ``depth``, or None when none is.

    ``build(σw²)`` returns (network, spec) of the depth-L network at that σw² (e.g. ``families.build``); the
    predictor must give a depth (``gives_depth``) and be computable here (not a cascade cutoff). The interval is
    the hull of the passing grid points: a gap inside it (two separate trainable bands) is not reported.
    """
    predictor = get(name)
    if not predictor.gives_depth or predictor.kind == "cascade":
        raise ConfigError(
            f"predictor '{name}' gives no depth computed here; use one of "
            f"{', '.join(depth_predictors())} (the cascade's interval comes from its own search)"
        )
    passing = []
    for sigma_w2 in sorted(sigma_w2_grid):
        network, spec = build(sigma_w2)
        if run(name, network, spec, x, y, **settings).predicted_depth >= depth:
            passing.append(sigma_w2)
    return (passing[0], passing[-1]) if passing else None


def depth_predictors() -> tuple[str, ...]:
    """The registered predictors ``depth_interval`` takes: those that give a depth and are computed here."""
    from infoflow_ray.predictors.registry import REGISTRY

    return tuple(n for n, p in REGISTRY.items() if p.gives_depth and p.kind != "cascade")

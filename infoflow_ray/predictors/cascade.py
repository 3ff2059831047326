"""The cascade's own cutoffs as predictors (method §3–4): read from the ``cutoffs`` table, never recomputed.

``kl_per_image`` (the mean over test images of the per-image KL cutoff), ``kl_mean`` (the cutoff of the mean KL
curve) and ``diff_entropy`` (the cutoff of the differential-entropy curve). Score and predicted depth are the
cutoff layer ℓ_c (layers, higher = more trainable). Their rows in the leaderboard come from
``analysis.leaderboard``, with the cascade task's task-seconds as their cost.
"""

from __future__ import annotations

from infoflow_ray.errors import ConfigError
from infoflow_ray.predictors.registry import register

CASCADE_MEASURES = ("kl_per_image", "kl_mean", "diff_entropy")


def _read_from_cascade(name: str):
    def fn(network, spec, x, y):
        raise ConfigError(
            f"predictor '{name}' is the cascade's cutoff: it is read from the cutoffs table (run the grid's cascade "
            "tasks), not computed by a predictor task"
        )

    fn.__doc__ = f"The cascade cutoff '{name}' (layers), read from the cutoffs table."
    return fn


for _measure in CASCADE_MEASURES:
    register(_measure, higher_is_better=True, kind="cascade", gives_depth=True)(_read_from_cascade(_measure))

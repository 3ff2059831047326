"""Frames of the cascades of trained networks (grid option ``interpret``; seed 001 §2.3).

One row per trained network (dataset, profile, σb², σw², depth, seed, epoch): its test accuracy, how many of its
perfect inputs it classifies as their own class, and the per-image KL cutoff of its cascade beside that of the
untrained network at the same σw² (the grid's cascade; its cutoff is taken over a deeper network, so compare
them where both are below the trained depth).
"""

from __future__ import annotations

import polars as pl

from infoflow_ray.analysis.frames import PRODUCERS
from infoflow_ray.errors import ResultsError
from infoflow_ray.store import ResultStore

NETWORK = ("dataset", "profile", "sigma_b2", "sigma_w2", "depth", "seed")


def trained_networks(store: ResultStore) -> pl.DataFrame:
    """See the module docstring; ResultsError when no trained network has a cascade yet."""
    perfect = store.scan("perfect_inputs").filter(pl.col("layer") == 0).collect()
    if perfect.is_empty():
        raise ResultsError(f"table 'perfect_inputs' has no rows yet; {PRODUCERS['perfect_inputs']}")
    own = perfect.group_by(*NETWORK, "epoch", "perfect_output").agg(
        (pl.col("predicted") == pl.col("label")).sum().alias("perfect_classified_own"),
        pl.len().alias("classes"),
    )
    accuracy = store.scan("train_summary").select(*NETWORK, "final_test_accuracy", "best_test_accuracy").collect()
    trained = (
        store.scan("trained_cutoffs")
        .filter(pl.col("measure") == "kl_per_image")
        .select(*NETWORK, "epoch", pl.col("cutoff_layer").alias("trained_cutoff"), "last_layer")
        .collect()
    )
    untrained = (
        store.scan("cutoffs")
        .filter(pl.col("measure") == "kl_per_image")
        .group_by("dataset", "profile", "sigma_b2", "sigma_w2")
        .agg(pl.col("cutoff_layer").mean().alias("untrained_cutoff"))
        .collect()
    )
    return (
        own.join(accuracy, on=list(NETWORK), how="left")
        .join(trained, on=[*NETWORK, "epoch"], how="left")
        .join(untrained, on=["dataset", "profile", "sigma_b2", "sigma_w2"], how="left")
        .sort(*NETWORK, "epoch")
    )

"""Figures of the predictor leaderboard (``infoflow_ray.analysis.leaderboard``); matplotlib without pyplot state.

1. ``predictors_vs_truth``  one panel per predictor: its value per σw² (deepest network, mean over seeds; higher =
                            more trainable) beside ℓ_train, each on its own axis, with its Spearman in the title
2. ``cost_vs_accuracy``     task-seconds per network (log) against Spearman and against AUROC, one point per predictor
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from infoflow_ray.errors import ConfigError

SW2 = r"$\sigma_w^2$"
KIND_COLOURS = {"cascade": "tab:red", "closed_form": "tab:blue", "network": "tab:green"}


def _one_group(frame: pl.DataFrame, dataset: str, profile: str, sigma_b2: float) -> pl.DataFrame:
    rows = frame.filter(dataset=dataset, profile=profile, sigma_b2=sigma_b2)
    if rows.height == 0:
        raise ConfigError(f"no predictor rows for dataset={dataset}, profile={profile}, sigma_b2={sigma_b2:g}")
    return rows


def predictors_vs_truth(per_sigma: pl.DataFrame, board: pl.DataFrame, *, dataset, profile, sigma_b2) -> Figure:
    """Each predictor's value over σw² (left axis) against ℓ_train (right axis, grey), one panel each."""
    rows = _one_group(per_sigma, dataset, profile, sigma_b2)
    ranks = _one_group(board, dataset, profile, sigma_b2)
    names = ranks["predictor"].to_list()
    cols = min(4, len(names))
    nrows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(3.4 * cols, 2.6 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        one = rows.filter(predictor=name).sort("sigma_w2")
        info = ranks.filter(predictor=name).row(0, named=True)
        values = np.clip(one["value"].to_numpy(), -1e6, 1e6)  # ±inf at criticality drawn at the frame's edge
        ax.plot(one["sigma_w2"], values, "o-", color=KIND_COLOURS.get(info["kind"], "k"))
        ax.set_title(f"{name}  ρ={info['spearman']:.2f}  AUROC={info['auroc']:.2f}", fontsize=8)
        ax.set_xlabel(SW2, fontsize=8)
        twin = ax.twinx()
        twin.plot(one["sigma_w2"], one["trainable_depth"], "s--", color="0.5", ms=3)
        twin.tick_params(labelsize=6, colors="0.4")
        ax.tick_params(labelsize=6)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"predictors (colour) vs ℓ_train (grey, right axis): {dataset}, {profile}, σb²={sigma_b2:g}", fontsize=9
    )
    return fig


def cost_vs_accuracy(board: pl.DataFrame, *, dataset, profile, sigma_b2) -> Figure:
    """Task-seconds per network against Spearman (left) and AUROC (right), one labelled point per predictor."""
    ranks = _one_group(board, dataset, profile, sigma_b2)
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    for ax, metric in zip(fig.subplots(1, 2), ("spearman", "auroc")):
        for row in ranks.iter_rows(named=True):
            seconds = max(row["seconds_per_network"] or 1e-6, 1e-6)
            ax.scatter(seconds, row[metric], color=KIND_COLOURS.get(row["kind"], "k"), s=25)
            ax.annotate(row["predictor"], (seconds, row[metric]), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("task-seconds per network")
        ax.set_ylabel(metric)
        ax.axhline(0.5 if metric == "auroc" else 0.0, color="0.7", lw=0.8)
    fig.suptitle(
        f"cost against accuracy: {dataset}, {profile}, σb²={sigma_b2:g} (red: cascade, blue: mean field, "
        "green: measured)",
        fontsize=9,
    )
    return fig

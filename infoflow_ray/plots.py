"""Figures from the frames of ``infoflow_ray.analysis`` (matplotlib; no pyplot state, so they work headless).

Every function takes frames (polars DataFrame or LazyFrame), returns a ``matplotlib.figure.Figure`` and draws
one (dataset, profile, σb²): pass ``dataset=``, ``profile=``, ``sigma_b2=`` when a frame holds several.
``save(fig, out_dir, name)`` writes ``name.png`` and ``name.pdf``.

1. ``phase_diagram``       best test accuracy over (σw², depth) + cutoffs + 6ξ_c + critical σw² (paper fig. 3)
2. ``diff_entropy_map``    differential entropy over (σw², layer) (paper fig. 4)
3. ``re_curves``           KL and differential-entropy curves over layers for ordered / critical / chaotic σw²
4. ``reconstructions_grid`` input vs reconstructions from increasing depth, for three σw²
5. ``timing_bars``         task-seconds predicting vs training per σw²
8. ``critical_line``       the cutoff peaks located by a search against the mean-field critical line σw²(σb²)
6. ``information_plane``   I(X;T) vs I(T;Y) of every layer over training epochs, for a few σw²
7. ``mi_vs_layer``         I(X;T_l) of the untrained network over layers beside the reconstruction-entropy curves
9. ``tuning_search``       predict-then-tune vs control: best accuracy against task-seconds, and where trials went
10. ``retraced_strips``    test images and their reconstructions by depth of a trained network (paper fig. 5 a, b)
11. ``perfect_inputs_grid`` every class's perfect input for an ordered, a near-critical and a chaotic σw² (fig. 5 c)
12. ``trained_vs_untrained`` reconstruction-entropy curves of the trained networks against the untrained ones
13. ``ib_trajectories``    an information-plane experiment (jobs/info_plane.py): every layer's path over SGD steps,
                           one panel per estimator (seed 002's picture)
14. ``budget_ladder``      ℓ_train(σw²) at every rung of the training-budget ladder over the cutoffs and 6ξ_c
15. ``epochs_heatmap``     epochs needed to reach the threshold over (σw², depth) (Schoenholz et al. 2017 style)
16. ``predictors_vs_truth`` one panel per trainability predictor: its value per σw² (deepest network, mean over
                           seeds; higher = more trainable) beside ℓ_train, with its Spearman and AUROC in the title
17. ``predictor_cost``     task-seconds per network (log) against Spearman and against AUROC, one point per predictor
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import polars as pl
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from infoflow_ray import families
from infoflow_ray.errors import ConfigError
from infoflow_ray.store import GROUP
from infoflow_ray.theory import regime_of, representative_sigma_w2

SW2 = r"$\sigma_w^2$"
IXT = r"$I(X;T_\ell)$"
ITY = r"$I(T_\ell;Y)$"
SB2 = r"$\sigma_b^2$"
MEASURE_LABELS = {
    "kl_mean": "KL, mean curve",
    "kl_median_normalised": "KL, normalised median curve",
    "diff_entropy": "differential entropy",
    "kl_per_image": "KL, per image",
}
MEASURE_STYLES = {
    "kl_mean": dict(color="tab:red", marker="o"),
    "diff_entropy": dict(color="tab:orange", marker="s"),
    "kl_median_normalised": dict(color="tab:pink", marker="^"),
    "kl_per_image": dict(color="tab:purple", marker="D"),
}
REGIME_COLOURS = {"ordered": "tab:blue", "near-critical": "tab:green", "chaotic": "tab:red"}
PREDICTOR_KIND_COLOURS = {"cascade": "tab:red", "closed_form": "tab:blue", "network": "tab:green"}


def save(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.png`` (150 dpi) and ``out_dir/name.pdf``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150)
    return paths


def _pick(frame, dataset=None, profile=None, sigma_b2=None, what: str = "frame") -> tuple[pl.DataFrame, tuple]:
    """The rows of one (dataset, profile, σb²) of ``frame`` and that key; ConfigError when it is ambiguous/empty."""
    frame = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    for column, value in (("dataset", dataset), ("profile", profile), ("sigma_b2", sigma_b2)):
        if value is not None:
            frame = frame.filter(pl.col(column) == value)
    keys = frame.select(GROUP).unique().sort(GROUP).rows()
    if not keys:
        raise ConfigError(f"the {what} has no rows for dataset={dataset}, profile={profile}, sigma_b2={sigma_b2}")
    if len(keys) > 1:
        raise ConfigError(
            f"the {what} holds several (dataset, profile, sigma_b2): {keys}; pass dataset=, profile=, "
            "sigma_b2= to choose one"
        )
    return frame, keys[0]


def _title(key: tuple) -> str:
    dataset, profile, sigma_b2 = key
    return f"{dataset}, {profile} profile, {SB2} = {sigma_b2:g}"


def _edges(values: np.ndarray) -> np.ndarray:
    """Cell edges around sorted cell centres (midpoints; half a step beyond the ends)."""
    if len(values) == 1:
        return np.array([values[0] - 0.5, values[0] + 0.5])
    mid = (values[1:] + values[:-1]) / 2
    return np.concatenate([[2 * values[0] - mid[0]], mid, [2 * values[-1] - mid[-1]]])


def _grid(frame: pl.DataFrame, x: str, y: str, z: str) -> tuple[np.ndarray, np.ndarray, np.ma.MaskedArray]:
    """Sorted x and y centres and z on the (y, x) grid, masked where no row exists."""
    xs = np.sort(frame[x].unique().to_numpy())
    ys = np.sort(frame[y].unique().to_numpy())
    grid = np.full((len(ys), len(xs)), np.nan)
    for xv, yv, zv in frame.select(x, y, z).iter_rows():
        grid[np.searchsorted(ys, yv), np.searchsorted(xs, xv)] = np.nan if zv is None else zv
    return xs, ys, np.ma.masked_invalid(grid)


def _cmap(name: str):
    """The named colour map with missing cells (masked) in light grey."""
    return matplotlib.colormaps[name].with_extremes(bad="0.85")


def _sigma_colours(chosen, critical: float | None) -> list:
    """One colour per chosen σw²: its regime's colour when each is in a different regime, else matplotlib's cycle."""
    regimes = [regime_of(s, critical) for s in chosen] if critical is not None else []
    return [REGIME_COLOURS[r] for r in regimes] if len(set(regimes)) == len(chosen) else [None] * len(chosen)


def _sigma_label(s: float, critical: float | None) -> str:
    return f"{SW2} = {s:g}" + (f" ({regime_of(s, critical)})" if critical is not None else "")


def _critical_line(ax, critical: float | None) -> None:
    if critical is not None:
        ax.axvline(critical, color="white", lw=2.5, zorder=3)
        ax.axvline(
            critical, color="black", ls="--", lw=1.2, zorder=3, label=f"mean-field critical {SW2} = {critical:.3f}"
        )


def _cutoff_points(ax, cutoffs: pl.DataFrame, measures, offset_step: float = 0.0) -> None:
    """Cutoff mean ± std over seeds per measure; open markers where a seed did not saturate (lower bound)."""
    for i, m in enumerate(measures):
        rows = cutoffs.filter(pl.col("measure") == m).sort("sigma_w2")
        if rows.is_empty():
            continue
        style = MEASURE_STYLES.get(m, dict(color="k", marker="x"))
        x = rows["sigma_w2"].to_numpy() + (i - (len(measures) - 1) / 2) * offset_step
        y = rows["cutoff_mean"].to_numpy().astype(float)
        err = rows["cutoff_std"].fill_null(0).fill_nan(0).to_numpy()
        open_ = (rows["n_unsaturated"] > 0).to_numpy()
        ax.errorbar(
            x,
            y,
            yerr=err,
            color=style["color"],
            lw=1.5,
            capsize=3,
            zorder=5,
            label=f"cutoff $\\ell_c$: {MEASURE_LABELS.get(m, m)}",
        )
        ax.scatter(x[~open_], y[~open_], s=40, zorder=6, edgecolors="k", linewidths=0.6, **style)
        ax.scatter(
            x[open_],
            y[open_],
            s=40,
            zorder=6,
            facecolors="white",
            edgecolors=style["color"],
            linewidths=1.5,
            marker=style["marker"],
        )


def phase_diagram(
    accuracy,
    cutoffs=None,
    mean_field=None,
    critical: float | None = None,
    trainable=None,
    measures=("kl_per_image", "kl_mean"),
    dataset=None,
    profile=None,
    sigma_b2=None,
    brackets=None,
    interval=None,
    peak=None,
) -> Figure:
    """Best test accuracy over (σw², depth) with the measured cutoffs, ℓ_train, 6ξ_c and the critical σw².

    accuracy: ``analysis.accuracy_grid``; cutoffs: ``analysis.cutoffs_by_sigma``; mean_field:
    ``analysis.mean_field_frame`` on a fine σw² grid; trainable: ``analysis.trainable_depth``. From an adaptive
    search (``analysis.search``): brackets (``trainable_brackets``: ℓ_train's bracket up to the shallowest failing
    depth), interval (``interval_edges``: the σw² interval where ℓ_c ≥ L, drawn at depth L with each edge's
    uncertainty) and peak (``cutoff_peaks``: the located peak and the σw² that bracket it). All but
    ``accuracy`` are optional; cells never trained are grey.
    """
    acc, key = _pick(accuracy, dataset, profile, sigma_b2, "accuracy frame")
    select = dict(zip(("dataset", "profile", "sigma_b2"), key))
    residual = families.of_profile(key[1]).residual
    if residual:  # no ordered/chaotic transition of the mean-field kind: draw no 6ξ_c and no critical σw²
        mean_field, critical = None, None
    xs, depths, grid = _grid(acc, "sigma_w2", "depth", "best_test_accuracy")
    fig = Figure(figsize=(8.5, 6.2), layout="constrained")
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(_edges(xs), _edges(depths.astype(float)), grid, cmap=_cmap("viridis"), vmin=0, vmax=1)
    bar = fig.colorbar(mesh, ax=ax, label="best test accuracy (mean over seeds)")
    top = float(depths.max()) * 1.2 + 1
    if trainable is not None:
        train, _ = _pick(trainable, **select, what="trainable-depth frame")
        train = train.sort("sigma_w2")
        threshold = train["accuracy_threshold"].max()
        bar.ax.axhline(threshold, color="white", lw=2)
        ax.plot(
            train["sigma_w2"],
            train["trainable_depth"],
            color="white",
            lw=1.5,
            ls=":",
            marker="*",
            ms=11,
            mec="k",
            zorder=4,
            label=f"trainable depth $\\ell_{{train}}$ (accuracy ≥ {threshold:g})",
        )
    if brackets is not None:
        _search_brackets(ax, _pick(brackets, **select, what="bracket frame")[0])
    if interval is not None:
        _search_interval(ax, _pick(interval, **select, what="interval frame")[0])
    if peak is not None:
        _search_peak(ax, _pick(peak, **select, what="peak frame")[0])
    if mean_field is not None:
        mf = mean_field.filter(pl.col("sigma_b2") == key[2]).sort("sigma_w2")
        depth_6xi = np.nan_to_num(mf["depth_6xi"].to_numpy(), posinf=1e9)
        ax.plot(mf["sigma_w2"], depth_6xi, color="cyan", lw=2, zorder=4, label=r"mean field $6\,\xi_c$")
    if cutoffs is not None:
        cut, _ = _pick(cutoffs, **select, what="cutoff frame")
        _cutoff_points(ax, cut, measures, offset_step=0.01 * (xs.max() - xs.min()))
        top = max(top, float(cut["last_layer"].max()) * 1.2 + 1)
    _critical_line(ax, critical)
    ax.set_ylim(0, top)
    ax.set_xlim(_edges(xs)[0], _edges(xs)[-1])
    ax.set_xlabel(f"weight variance {SW2}")
    ax.set_ylabel(r"depth $L$ (trained) / layer $\ell$ (cutoff)")
    note = "\nresidual network: the mean-field ordered/chaotic picture does not apply (no 6ξ_c, no critical σw²)"
    ax.set_title(f"Trainability phase diagram\n{_title(key)}" + (note if residual else ""))
    handles, labels = ax.get_legend_handles_labels()
    if cutoffs is not None:
        handles.append(Line2D([], [], ls="", marker="o", mfc="white", mec="0.3"))
        labels.append("open marker: cutoff did not saturate (lower bound)")
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    return fig


def _search_brackets(ax, brackets: pl.DataFrame) -> None:
    """ℓ_train brackets of a search: a white bar from the deepest pass up to the shallowest fail above it."""
    rows = brackets.filter(pl.col("bracket_high").is_not_null()).sort("sigma_w2")
    if rows.is_empty():
        return
    x = rows["sigma_w2"].to_numpy()
    low = rows["trainable_depth"].to_numpy().astype(float)
    high = rows["bracket_high"].to_numpy().astype(float)
    ax.vlines(x, low, high, color="white", lw=4, zorder=3.5, alpha=0.9)
    ax.vlines(x, low, high, color="k", lw=1, zorder=3.6, label=r"search: $\ell_{train}$ bracket (pass … first fail)")


def _search_interval(ax, interval: pl.DataFrame) -> None:
    """The σw² interval where ℓ_c ≥ L, at depth L; each edge with its uncertainty (half its width)."""
    for row in interval.iter_rows(named=True):
        if row["low"] is None or row["target_depth"] is None:
            continue
        L = row["target_depth"]
        ax.plot(
            [row["low"], row["high"]],
            [L, L],
            color="magenta",
            lw=2.5,
            zorder=4.5,
            label=f"search: σw² interval with $\\ell_c \\geq$ {L}".replace("σw²", SW2),
        )
        for edge, width in (("low", "low_width"), ("high", "high_width")):
            half = row[width] / 2 if row[width] is not None else 0.0
            ax.errorbar(
                [row[edge]],
                [L],
                xerr=[half],
                color="magenta",
                capsize=5,
                lw=2,
                zorder=4.6,
                marker="|" if row[width] is not None else ">",
                ms=12,
            )


def _search_peak(ax, peaks: pl.DataFrame) -> None:
    """The located cutoff peak (dotted line) and the measured σw² that bracket it (shaded)."""
    for row in peaks.iter_rows(named=True):
        low = row["peak_low"] if row["peak_low"] is not None else ax.get_xlim()[0]
        high = row["peak_high"] if row["peak_high"] is not None else ax.get_xlim()[1]
        ax.axvspan(low, high, color="magenta", alpha=0.12, zorder=2.5)
        ax.axvline(
            row["peak_sigma_w2"],
            color="magenta",
            ls=":",
            lw=1.5,
            zorder=3,
            label=f"search: cutoff peak {SW2} ≈ {row['peak_sigma_w2']:.3g} (shaded: its bracket)",
        )


def critical_line(peaks, line) -> Figure:
    """The critical line in the (σb², σw²) plane: the cutoff peaks the search located (with their brackets)
    against the mean-field critical σw²(σb²). peaks: ``analysis.search.cutoff_peaks``; line:
    ``analysis.search.critical_line``."""
    frame = peaks.collect() if isinstance(peaks, pl.LazyFrame) else peaks
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(line["sigma_b2"], line["critical_sigma_w2"], color="k", lw=1.5, label="mean field: $\\chi_1 = 1$")
    for (dataset, profile), part in frame.group_by("dataset", "profile", maintain_order=True):
        part = part.sort("sigma_b2")
        y = part["peak_sigma_w2"].to_numpy()
        low = part["peak_low"].cast(pl.Float64).fill_null(np.nan).to_numpy()  # null: the peak is at the range's end
        high = part["peak_high"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        ax.errorbar(
            part["sigma_b2"],
            y,
            yerr=[np.nan_to_num(y - low), np.nan_to_num(high - y)],
            marker="o",
            capsize=4,
            ls="",
            label=f"cutoff peak, {dataset} {profile} (bar: its bracket)",
        )
    ax.set_xlabel(f"bias variance {SB2}")
    ax.set_ylabel(f"critical {SW2}")
    ax.set_title("Critical line: where the reconstruction-entropy cutoff peaks")
    ax.legend(fontsize=8)
    return fig


def diff_entropy_map(
    curves, cutoffs=None, critical: float | None = None, dataset=None, profile=None, sigma_b2=None
) -> Figure:
    """Differential entropy H_ℓ of the reconstructions over (σw², layer ℓ), with the diff-entropy cutoff on top.

    curves: ``analysis.curves_by_sigma`` (its ``diff_entropy`` rows are used); cutoffs: ``cutoffs_by_sigma``.
    """
    frame = curves.lazy().filter(pl.col("measure") == "diff_entropy").collect()
    frame, key = _pick(frame, dataset, profile, sigma_b2, "curves frame (diff_entropy)")
    xs, layers, grid = _grid(frame, "sigma_w2", "layer", "value_mean")
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(_edges(xs), _edges(layers.astype(float)), grid, cmap=_cmap("magma"))
    fig.colorbar(mesh, ax=ax, label=r"differential entropy $H_\ell$ (nats per pixel)")
    if cutoffs is not None:
        cut, _ = _pick(cutoffs, *key, what="cutoff frame")
        _cutoff_points(ax, cut, ("diff_entropy",))
    _critical_line(ax, critical)
    ax.set_xlim(_edges(xs)[0], _edges(xs)[-1])
    ax.set_ylim(_edges(layers.astype(float))[0], _edges(layers.astype(float))[-1])
    ax.set_xlabel(f"weight variance {SW2}")
    ax.set_ylabel(r"layer $\ell$ reconstructed from (0 = input)")
    ax.set_title(f"Differential entropy of the reconstructions\n{_title(key)}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    return fig


def re_curves(
    curves, sigma_w2=None, critical: float | None = None, cutoffs=None, dataset=None, profile=None, sigma_b2=None
) -> Figure:
    """KL (mean curve) and differential entropy over layers for a few σw² (default: ordered, nearest the
    critical σw², chaotic), mean ± std over seeds, with each curve's cutoff as a dotted vertical line."""
    frame, key = _pick(curves, dataset, profile, sigma_b2, "curves frame")
    chosen = (
        sigma_w2
        if sigma_w2 is not None
        else representative_sigma_w2(frame["sigma_w2"].unique(), critical if critical is not None else 1.0)
    )
    cut = _pick(cutoffs, *key, what="cutoff frame")[0] if cutoffs is not None else None
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    panels = (
        ("kl_mean", "relative entropy KL (nats), mean over images"),
        ("diff_entropy", r"differential entropy $H_\ell$ (nats per pixel)"),
    )
    colours = _sigma_colours(chosen, critical)
    for i, (measure, ylabel) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        _re_panel(ax, frame, measure, chosen, colours, critical, cut)
        ax.set_ylabel(ylabel)
        ax.set_title(MEASURE_LABELS[measure])
    note = " (dotted: cutoff $\\ell_c$)" if cut is not None else ""
    fig.suptitle(f"Reconstruction entropy over depth{note}\n{_title(key)}")
    return fig


def _band(ax, x, mean, std, colour, label: str, **style) -> str:
    """A mean curve with a ±std band (std null or NaN: no band); returns the colour drawn."""
    (line,) = ax.plot(x, mean, marker="o", ms=4, color=colour, label=label, **style)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    return line.get_color()


def _re_panel(ax, curves: pl.DataFrame, measure: str, chosen, colours, critical, cut) -> None:
    """One reconstruction-entropy measure over layers for the chosen σw², each with its cutoff dotted."""
    for s, colour in zip(chosen, colours):
        rows = curves.filter((pl.col("measure") == measure) & (pl.col("sigma_w2") == s)).sort("layer")
        if rows.is_empty():
            continue
        drawn = _band(
            ax,
            rows["layer"].to_numpy(),
            rows["value_mean"].to_numpy(),
            rows["value_std"].fill_null(0).fill_nan(0).to_numpy(),
            colour,
            _sigma_label(s, critical),
        )
        if cut is not None:
            c = cut.filter((pl.col("measure") == measure) & (pl.col("sigma_w2") == s))["cutoff_mean"]
            if len(c) and c[0] is not None and np.isfinite(c[0]):
                ax.axvline(c[0], color=drawn, ls=":", lw=1.5)
    ax.set_xlabel(r"layer $\ell$ reconstructed from (0 = input)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def reconstructions_grid(
    reconstructions,
    sigma_w2=None,
    critical: float | None = None,
    n_images: int = 2,
    max_columns: int = 8,
    dataset=None,
    profile=None,
    sigma_b2=None,
) -> Figure:
    """Input images and their reconstructions from increasing depth, one row per (σw², image).

    reconstructions: the ``reconstructions`` table (or a filtered scan of it). Uses each σw²'s deepest cascade
    and lowest seed, the first ``n_images`` stored images and at most ``max_columns`` columns (layer 0 = the
    input, then evenly spaced stored layers up to the deepest). Pixels are drawn on one fixed scale, [0, 1].
    """
    frame, key = _pick(reconstructions, dataset, profile, sigma_b2, "reconstructions frame")
    frame = frame.filter(
        (pl.col("depth") == pl.col("depth").max().over("sigma_w2"))
        & (pl.col("seed") == pl.col("seed").min().over("sigma_w2"))
    )
    chosen = (
        sigma_w2
        if sigma_w2 is not None
        else representative_sigma_w2(frame["sigma_w2"].unique(), critical if critical is not None else 1.0)
    )
    images = sorted(frame["image_index"].unique().to_list())[:n_images]
    stored = sorted(frame["layer"].unique().to_list())  # deep cascades store a subset of their layers
    layers = [0] + _evenly([layer for layer in stored if layer > 0], max_columns - 1)
    rows = [(s, i) for s in chosen for i in images]
    fig = Figure(figsize=(1.25 * len(layers) + 1.2, 1.3 * len(rows) + 0.9), layout="constrained")
    axes = fig.subplots(len(rows), len(layers), squeeze=False)
    cells = {
        (r["sigma_w2"], r["image_index"], r["layer"]): r
        for r in frame.filter(
            pl.col("sigma_w2").is_in(list(chosen)) & pl.col("image_index").is_in(images) & pl.col("layer").is_in(layers)
        ).iter_rows(named=True)
    }
    for r, (s, image) in enumerate(rows):
        for c, layer in enumerate(layers):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            cell = cells.get((s, image, layer))
            if cell is not None:
                _image(ax, cell)
            if r == 0:
                ax.set_title("input" if layer == 0 else rf"$\ell$ = {layer}", fontsize=9)
            if c == 0:
                regime = f"\n{regime_of(s, critical)}" if critical is not None else ""
                ax.set_ylabel(f"{SW2} = {s:g}{regime}\nimage {image}", fontsize=8)
    fig.suptitle(f"Reconstructions of test images from layer $\\ell$ of the untrained network\n{_title(key)}")
    return fig


def timing_bars(timing, dataset=None, profile=None, sigma_b2=None) -> Figure:
    """Task-seconds spent predicting (cascade) and training (baselines) per σw², with the speedup ratios.

    timing: ``analysis.timing``. A log scale is used when the bars differ by more than 30×.
    """
    frame, key = _pick(timing, dataset, profile, sigma_b2, "timing frame")
    frame = frame.sort("sigma_w2")
    x = np.arange(frame.height)
    predicting, training = frame["predicting_seconds"].to_numpy(), frame["training_seconds"].to_numpy()
    fig = Figure(figsize=(max(8.0, 0.8 * frame.height + 3), 5.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.38
    ax.bar(
        x - width / 2,
        predicting,
        width,
        color="tab:blue",
        label="predicting: one cascade per seed (reconstruction entropy)",
    )
    ax.bar(x + width / 2, training, width, color="tab:gray", label="training: baselines at every depth")
    for xi, ratio, height in zip(x, frame["speedup"], np.maximum(predicting, training)):
        if ratio is not None:
            ax.annotate(
                f"{ratio:.1f}×",
                (xi, height),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 2),
                textcoords="offset points",
            )
    positive = np.concatenate([predicting, training])
    positive = positive[positive > 0]
    if len(positive) and positive.max() / positive.min() > 30:
        ax.set_yscale("log")
    ax.margins(y=0.15)
    ax.set_xticks(x, [f"{s:g}" for s in frame["sigma_w2"]])
    ax.set_xlabel(f"weight variance {SW2}")
    ax.set_ylabel("task-seconds (sum of task wall times)")
    total_p, total_t = predicting.sum(), training.sum()
    ratio = f" (training / predicting = {total_t / total_p:.1f}×)" if total_p > 0 and total_t > 0 else ""
    ax.set_title(
        f"Time spent predicting vs training, {_title(key)}\n"
        f"in total {total_p:.0f} s vs {total_t:.0f} s{ratio}; labels: ratio per {SW2}"
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
    return fig


def _info_rows(points, stage: str, estimator: str, dataset, profile, sigma_b2) -> tuple[pl.DataFrame, tuple]:
    """The ``stage`` rows of one estimator and one (dataset, profile, σb²) of an ``info_plane_points`` frame (for
    'training', the trajectories counted in epochs: the grid's baseline trainings); ConfigError when there are none
    or when they mix estimator settings (parameters or N samples)."""
    frame, key = _pick(points, dataset, profile, sigma_b2, "info-plane frame")
    frame = frame.filter((pl.col("stage") == stage) & (pl.col("estimator") == estimator))
    if stage == "training":
        frame = frame.filter(pl.col("epoch").is_not_null())
    what = {
        "training": "training trajectories (baseline tasks write them)",
        "untrained": "untrained-network points (cascade tasks write them)",
    }[stage]
    if frame.is_empty():
        raise ConfigError(f"the info-plane frame has no {what} for estimator '{estimator}' in {key}")
    settings = frame.select("param", "n_samples").unique().sort("n_samples").rows()
    if len(settings) > 1:
        raise ConfigError(
            f"the info-plane frame mixes {estimator} settings (param, n_samples) {settings}; filter it to one"
        )
    return frame, key


def _evenly(values: list[int], most: int) -> list[int]:
    """At most ``most`` of the sorted ``values``, evenly spaced, first and last included."""
    if len(values) <= most:
        return values
    return [values[i] for i in sorted({int(round(i)) for i in np.linspace(0, len(values) - 1, most)})]


def information_plane(
    points,
    sigma_w2=None,
    critical: float | None = None,
    depth: int | None = None,
    estimator: str = "binning",
    max_layers: int = 8,
    dataset=None,
    profile=None,
    sigma_b2=None,
) -> Figure:
    """The information plane of training: I(X;T_ℓ) against I(T_ℓ;Y) (nats) of every layer over the epochs of the
    baseline trainings, one panel per σw² (default: ordered, nearest the critical σw², chaotic).

    points: ``analysis.info_plane_points``, mean over seeds. One curve per layer (at most ``max_layers``, evenly
    spaced) joins its epochs in order; the marker colour is the epoch (0 = before training), its edge the layer's
    colour, and deeper layers have smaller markers drawn on top, so layers at the same point show as rings.
    depth: the trained network's depth (default: the deepest with trajectories). The dashed line is ln N, the
    ceiling of I(X;T).
    """
    frame, key = _info_rows(points, "training", estimator, dataset, profile, sigma_b2)
    depths = sorted(frame["depth"].unique().to_list())
    depth = depths[-1] if depth is None else depth
    if depth not in depths:
        raise ConfigError(f"the info-plane frame has no training trajectories at depth {depth}; present: {depths}")
    frame = frame.filter(pl.col("depth") == depth)
    chosen = (
        sigma_w2
        if sigma_w2 is not None
        else representative_sigma_w2(frame["sigma_w2"].unique(), critical if critical is not None else 1.0)
    )
    layers = _evenly(sorted(frame["layer"].unique().to_list()), max_layers)
    layer_colours = matplotlib.colormaps["tab10" if len(layers) <= 10 else "turbo"](
        np.arange(len(layers)) if len(layers) <= 10 else np.linspace(0, 1, len(layers))
    )
    norm = Normalize(0, max(int(frame["epoch"].max()), 1))
    epochs_cmap = matplotlib.colormaps["viridis"]
    ln_n = float(frame["ln_n"].max())
    fig = Figure(figsize=(4.1 * len(chosen) + 1.6, 5.0), layout="constrained")
    axes = fig.subplots(1, len(chosen), sharex=True, sharey=True, squeeze=False)[0]
    sizes = 28 + 22 * np.arange(len(layers))[::-1]  # deeper layers smaller and on top: equal points show as rings
    for ax, s in zip(axes, chosen):
        for i, (layer, colour) in enumerate(zip(layers, layer_colours)):
            rows = frame.filter((pl.col("sigma_w2") == s) & (pl.col("layer") == layer)).sort("epoch")
            ax.plot(rows["i_xt_mean"], rows["i_ty_mean"], color=colour, lw=1.3, alpha=0.8, zorder=2 + 2 * i)
            ax.scatter(
                rows["i_xt_mean"],
                rows["i_ty_mean"],
                c=rows["epoch"],
                cmap=epochs_cmap,
                norm=norm,
                s=sizes[i],
                edgecolors=[colour],
                linewidths=1.5,
                zorder=3 + 2 * i,
            )
        ax.axvline(ln_n, color="0.4", ls="--", lw=1, zorder=1)
        ax.set_title(_sigma_label(s, critical), fontsize=10)
        ax.set_xlabel(f"{IXT} (nats)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{ITY} (nats)")
    axes[0].set_xlim(0, 1.05 * ln_n)
    axes[0].set_ylim(0, 1.1 * max(float(frame["i_ty_mean"].max()), 1e-3))
    bar = fig.colorbar(ScalarMappable(norm, epochs_cmap), ax=list(axes), label="epoch (0 = before training)")
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [Line2D([], [], color=c, lw=1.5, marker="o", mfc="white", mec=c, mew=1.5) for c in layer_colours]
    handles.append(Line2D([], [], color="0.4", ls="--", lw=1))
    fig.legend(
        handles,
        [rf"layer $\ell$ = {layer}" for layer in layers]
        + [f"ln N = {ln_n:.2f} nats (N = {int(frame['n_samples'][0])})"],
        loc="outside lower center",
        ncol=min(len(handles), 5),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(
        f"Information plane during training, depth L = {depth}, {estimator} estimator "
        f"({frame['param'][0]}), mean over seeds\n{_title(key)}"
    )
    return fig


def mi_vs_layer(
    points,
    curves=None,
    sigma_w2=None,
    critical: float | None = None,
    cutoffs=None,
    estimator: str = "binning",
    fraction: float = 0.5,
    dataset=None,
    profile=None,
    sigma_b2=None,
) -> Figure:
    """Two views of information flow through the untrained network, for a few σw² (default: ordered, nearest the
    critical σw², chaotic): I(X;T_ℓ) (solid) and I(T_ℓ;Y) (dashed) against layer ℓ, and beside it the
    reconstruction-entropy KL mean curve of the same σw².

    points: ``analysis.info_plane_points`` (its 'untrained' rows, the deepest network of each σw²); curves:
    ``analysis.curves_by_sigma`` (optional: without it only the first panel); cutoffs: ``cutoffs_by_sigma``
    (dotted: the KL cutoff ℓ_c). On the left, the information cutoff (the first layer where I(X;T_ℓ) falls below
    ``fraction`` · ln N, ``analysis.information_cutoffs``) is dotted.
    """
    frame, key = _info_rows(points, "untrained", estimator, dataset, profile, sigma_b2)
    frame = frame.filter(pl.col("depth") == pl.col("depth").max().over("sigma_w2"))
    chosen = (
        sigma_w2
        if sigma_w2 is not None
        else representative_sigma_w2(frame["sigma_w2"].unique(), critical if critical is not None else 1.0)
    )
    colours = _sigma_colours(chosen, critical)
    ln_n = float(frame["ln_n"].max())
    fig = Figure(figsize=(11.5 if curves is not None else 6.5, 5.6), layout="constrained")
    ax = fig.add_subplot(1, 2 if curves is not None else 1, 1)
    for s, colour in zip(chosen, colours):
        rows = frame.filter(pl.col("sigma_w2") == s).sort("layer")
        if rows.is_empty():
            continue
        layer = rows["layer"].to_numpy()
        drawn = _band(
            ax,
            layer,
            rows["i_xt_mean"].to_numpy(),
            rows["i_xt_std"].fill_null(0).fill_nan(0).to_numpy(),
            colour,
            _sigma_label(s, critical),
        )
        ax.plot(layer, rows["i_ty_mean"], color=drawn, ls="--", lw=1.2, marker="x", ms=4)
        below = rows.filter(pl.col("i_xt_mean") < fraction * pl.col("ln_n"))["layer"]
        if len(below):
            ax.axvline(below.min(), color=drawn, ls=":", lw=1.5)
    ax.axhline(ln_n, color="0.3", ls="-.", lw=1, label=f"ln N = {ln_n:.2f} (N = {int(frame['n_samples'][0])})")
    ax.axhline(fraction * ln_n, color="0.5", ls=":", lw=1, label=f"{fraction:g} ln N: information cutoff threshold")
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", ls="--", marker="x"), Line2D([], [], color="0.3", ls=":")]
    labels += [f"dashed: {ITY}", "dotted: information cutoff (first layer below the threshold)"]
    ax.legend(handles, labels, fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    ax.set_ylim(0, 1.12 * ln_n)
    ax.set_xlabel(r"hidden layer $\ell$ (1 = first; L = output)")
    ax.set_ylabel(f"{IXT} (solid), {ITY} (dashed) (nats)")
    ax.set_title(f"Mutual information of layer $\\ell$, {estimator} ({frame['param'][0]})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if curves is not None:
        kl, _ = _pick(curves, *key, what="curves frame")
        cut = _pick(cutoffs, *key, what="cutoff frame")[0] if cutoffs is not None else None
        right = fig.add_subplot(1, 2, 2, sharex=ax)
        _re_panel(right, kl, "kl_mean", chosen, colours, critical, cut)
        right.set_ylabel("relative entropy KL (nats), mean over images")
        right.set_title(
            "Reconstruction entropy" + (" (dotted: cutoff $\\ell_c$)" if cut is not None else ""), fontsize=10
        )
        ax.set_xlim(-0.3, max(float(frame["layer"].max()), float(kl["layer"].max())) + 0.3)
    fig.suptitle(f"Information flow through the untrained network, mean over seeds\n{_title(key)}")
    return fig


ARM_STYLES = {
    "predicted": dict(color="tab:green", label="predict, then tune: " + SW2 + " in the predicted interval"),
    "control": dict(color="tab:gray", label="tune over the whole " + SW2 + " range (control)"),
}


def tuning_search(curves, trials, target: float, job=None, dataset=None, depth=None, settings_id=None) -> Figure:
    """Predict-then-tune against the control (``jobs/predict_then_tune.py``). Left: best test accuracy so far
    against task-seconds spent, one thin line per search seed and the median over seeds (the band: min to max),
    the predicted arm starting at the prediction's cost; the target accuracy dotted. Right: every trial's σw²
    against its best accuracy, with the predicted interval shaded — where the searches spent their trials.

    curves: ``analysis.tuning.best_so_far``; trials: the ``tune_trials`` table (one job, dataset and depth, or
    pass ``job=``, ``dataset=``, ``depth=``, ``settings_id=``)."""
    picks = {"job": job, "dataset": dataset, "depth": depth, "settings_id": settings_id}
    for column, value in picks.items():
        if value is not None:
            curves = curves.filter(pl.col(column) == value)
            trials = trials.filter(pl.col(column) == value)
    keys = trials.select("job", "dataset", "depth", "profile", "sigma_b2", "settings_id").unique().rows()
    if len(keys) != 1:
        raise ConfigError(
            f"the tune_trials rows hold {len(keys)} (job, settings, dataset, depth) groups; pass job=, settings_id="
        )
    job, dataset, depth, profile, sigma_b2, _ = keys[0]
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.35, 1])
    end = float(curves["task_seconds"].max())
    start = float(max(curves["task_seconds"].min(), 1e-3))
    grid = np.geomspace(start, end, 400)
    for arm, style in ARM_STYLES.items():
        arm_curves = curves.filter(pl.col("arm") == arm)
        if arm_curves.is_empty():
            continue
        stacked = []
        for _, one in arm_curves.group_by("experiment_id", maintain_order=True):
            x, y = one["task_seconds"].to_numpy(), one["best_accuracy"].to_numpy()
            left.step(x, y, where="post", color=style["color"], lw=0.7, alpha=0.45)
            index = np.searchsorted(x, grid, side="right") - 1
            stacked.append(np.where(index >= 0, y[np.clip(index, 0, None)], np.nan))
        stacked = np.array(stacked)
        seeds = len(stacked)
        with warnings.catch_warnings():  # before a seed's first epoch its column is all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            complete = ~np.isnan(stacked).any(axis=0)  # where every seed has started
            median = np.where(complete, np.nanmedian(stacked, axis=0), np.nan)
            low, high = np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)
        left.fill_between(
            grid, np.where(complete, low, np.nan), np.where(complete, high, np.nan), color=style["color"], alpha=0.15
        )
        left.plot(grid, median, color=style["color"], lw=2.2, label=f"{style['label']} (median of {seeds} seeds)")
        if arm == "predicted":
            prediction = float(trials.filter(pl.col("arm") == arm)["prediction_seconds"].max())
            left.axvline(prediction, color=style["color"], ls="--", lw=1, label=f"prediction: {prediction:.0f} s")
    left.axhline(target, color="black", ls=":", lw=1, label=f"target accuracy {target:.3f}")
    left.set_xscale("log")
    left.set_xlabel("task-seconds spent (sum over trials; the predicted arm includes its cascades)")
    left.set_ylabel("best test accuracy so far")
    left.legend(fontsize=8, loc="lower right")
    left.set_title(f"Best accuracy against compute, {dataset} depth {depth}")
    for arm, style in ARM_STYLES.items():
        part = trials.filter(pl.col("arm") == arm)
        if part.height:
            right.scatter(
                part["sigma_w2"],
                part["best_test_accuracy"],
                s=10 + 4 * part["epochs"].to_numpy(),
                color=style["color"],
                alpha=0.7,
                edgecolor="none",
                label=f"{arm} trials (size: epochs trained)",
            )
    predicted = trials.filter(pl.col("arm") == "predicted")
    if predicted.height:
        low, high = float(predicted["space_sigma_w2_low"][0]), float(predicted["space_sigma_w2_high"][0])
        right.axvspan(low, high, color="tab:green", alpha=0.12, label=f"predicted interval [{low:.3g}, {high:.3g}]")
    right.axhline(target, color="black", ls=":", lw=1)
    right.set_xlabel(f"weight variance {SW2}")
    right.set_ylabel("best test accuracy of the trial")
    right.legend(fontsize=8, loc="best")
    right.set_title(f"Where the trials went ({job}, {profile}, {SB2} = {sigma_b2:g})")
    return fig


def _one_trained_network(frame: pl.DataFrame, sigma_w2: float) -> pl.DataFrame:
    """The rows of the deepest trained network at ``sigma_w2`` (lowest seed; its latest epoch)."""
    part = frame.filter(pl.col("sigma_w2") == sigma_w2)
    if part.is_empty():
        return part
    part = part.filter(pl.col("depth") == part["depth"].max())
    part = part.filter(pl.col("seed") == part["seed"].min())
    return part.filter(pl.col("epoch") == part["epoch"].max())


def _image(ax, row: dict) -> None:
    pixels = np.asarray(row["pixels"], dtype=np.float32).reshape(row["height"], row["width"])
    ax.imshow(pixels, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def retraced_strips(
    retraced, sigma_w2: float, classes=None, max_columns: int = 12, dataset=None, profile=None, sigma_b2=None
) -> Figure:
    """The paper's fig. 5 (a), (b): chosen test images (first column) and their reconstructions from increasing
    depth of the *trained* network at ``sigma_w2``, one row per image — per class its most confident correct
    classification and its most confident mistake — labelled true → predicted (confidence).

    retraced: the ``retraced`` table; ``classes``: which classes' rows to draw (default: all)."""
    frame, key = _pick(retraced, dataset, profile, sigma_b2, "retraced frame")
    frame = _one_trained_network(frame, sigma_w2)
    if classes is not None:
        frame = frame.filter(pl.col("label").is_in(list(classes)))
    if frame.is_empty():
        raise ConfigError(f"the retraced frame has no rows at sigma_w2={sigma_w2:g}")
    stored = sorted(frame["layer"].unique().to_list())
    layers = [0] + _evenly([layer for layer in stored if layer > 0], max_columns - 1)
    examples = frame.select("label", "rule", "image_index", "predicted", "confidence").unique().sort("label", "rule")
    cells = {(r["image_index"], r["layer"]): r for r in frame.iter_rows(named=True)}
    fig = Figure(figsize=(1.05 * len(layers) + 1.6, 1.1 * examples.height + 1.0), layout="constrained")
    axes = fig.subplots(examples.height, len(layers), squeeze=False)
    for r, example in enumerate(examples.iter_rows(named=True)):
        for c, layer in enumerate(layers):
            ax = axes[r, c]
            cell = cells.get((example["image_index"], layer))
            if cell is not None:
                _image(ax, cell)
            else:
                ax.axis("off")
            if r == 0:
                ax.set_title("input" if layer == 0 else rf"$\ell$ = {layer}", fontsize=9)
        mark = "✓" if example["label"] == example["predicted"] else "✗"
        axes[r, 0].set_ylabel(
            f"{example['label']} → {example['predicted']} {mark}\n({example['confidence']:.2f})", fontsize=8
        )
    depth, epoch = int(frame["depth"][0]), int(frame["epoch"][0])
    fig.suptitle(
        f"Retraced decisions: reconstructions from layer $\\ell$ of the trained network (depth {depth}, "
        f"{epoch} epochs), {SW2} = {sigma_w2:g}\n{_title(key)}; rows: true → predicted label (softmax confidence)"
    )
    return fig


def perfect_inputs_grid(
    perfect, sigma_w2=None, critical: float | None = None, dataset=None, profile=None, sigma_b2=None
):
    """The paper's fig. 5 (c): every class's perfect input — the trained network's cascade applied from the
    output layer to an output with maximal activation on that label — for an ordered, a near-critical and a
    chaotic σw² (or ``sigma_w2``), each labelled with the class the network gives it when fed forward."""
    frame, key = _pick(perfect, dataset, profile, sigma_b2, "perfect_inputs frame")
    frame = frame.filter(pl.col("layer") == 0)
    chosen = (
        list(sigma_w2)
        if sigma_w2 is not None
        else representative_sigma_w2(frame["sigma_w2"].unique(), critical if critical is not None else 1.0)
    )
    classes = sorted(frame["label"].unique().to_list())
    fig = Figure(figsize=(1.1 * len(classes) + 1.6, 1.35 * len(chosen) + 1.1), layout="constrained")
    axes = fig.subplots(len(chosen), len(classes), squeeze=False)
    for r, s in enumerate(chosen):
        network = _one_trained_network(frame, s)
        cells = {row["label"]: row for row in network.iter_rows(named=True)}
        own = sum(row["predicted"] == k for k, row in cells.items())
        for c, k in enumerate(classes):
            ax = axes[r, c]
            if k in cells:
                _image(ax, cells[k])
                ax.set_title(f"{k} → {cells[k]['predicted']}", fontsize=8)
            else:
                ax.axis("off")
        regime = f" ({regime_of(s, critical)})" if critical is not None else ""
        depth = int(network["depth"][0]) if network.height else 0
        axes[r, 0].set_ylabel(f"{SW2} = {s:g}{regime}\nL = {depth}; {own}/{len(cells)} own", fontsize=8)
    kind = frame["perfect_output"][0] if frame.height else "?"
    fig.suptitle(
        f"Perfect inputs: the cascade of the trained network applied to a '{kind}' output of each label\n"
        f"{_title(key)}; titles: label → the network's label for it, fed forward"
    )
    return fig


def trained_vs_untrained(trained_curves, curves, measure: str = "kl_mean", dataset=None, profile=None, sigma_b2=None):
    """How training changes the information flow: the ``measure`` curve over layers of each trained network
    (solid; its deepest, lowest seed, latest epoch per σw²) against the untrained network's cascade at the same
    σw² (dashed; the grid's cascade network, mean over seeds, drawn up to the trained depth).

    trained_curves: the ``trained_curves`` table; curves: ``analysis.curves_by_sigma``."""
    trained, key = _pick(trained_curves.filter(pl.col("measure") == measure), dataset, profile, sigma_b2, "trained")
    untrained = curves.filter(pl.col("measure") == measure, **dict(zip(("dataset", "profile", "sigma_b2"), key)))
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    sigmas = sorted(trained["sigma_w2"].unique().to_list())
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(sigmas)))
    for s, colour in zip(sigmas, colours):
        network = _one_trained_network(trained, s).sort("layer")
        depth, epoch = int(network["depth"][0]), int(network["epoch"][0])
        ax.plot(network["layer"], network["value"], color=colour, lw=2, label=f"{SW2} = {s:g}: trained {epoch} ep.")
        before = untrained.filter(pl.col("sigma_w2") == s, pl.col("layer") <= depth).sort("layer")
        if before.height:
            ax.plot(before["layer"], before["value_mean"], color=colour, lw=1.2, ls="--")
    ax.plot([], [], color="gray", ls="--", label="untrained (the grid's cascade)")
    ax.set_xlabel(r"layer $\ell$")
    ax.set_ylabel(MEASURE_LABELS.get(measure, measure) + " (nats)")
    ax.set_title(f"Reconstruction entropy of trained vs untrained networks\n{_title(key)}")
    ax.legend(fontsize=8)
    return fig


ESTIMATOR_TITLES = {
    "binning": "binning, one network (seed 002's simple estimator)",
    "binning_extended": "binning over the copies (seed 002's extended estimator)",
    "density": "density models (seed 004)",
    "adaptive": "equal-mass bins (seed 003)",
    "bspline": "B-spline (seed 003)",
    "kde": "KDE bound (Kolchinsky & Tracey)",
    "ksg": "KSG (k nearest neighbours)",
    "dcor": "distance correlation (seed 003)",
}


def ib_trajectories(traj, experiment: str | None = None) -> Figure:
    """I(X;T_ℓ) against I(T_ℓ;Y) of every layer over the SGD steps of one experiment, one panel per estimator.

    traj: ``analysis.info_plane.trajectories`` (one experiment, or pass ``experiment``). Each layer is a line
    through its snapshots in step order, in the layer's colour; the markers' colour is the step (dark = early).
    Binning panels mark ln N, the ceiling of I(X;T) over N distinct inputs. Nats; 'dcor' in [0, 1].
    """
    frame = traj.lazy().collect() if isinstance(traj, pl.LazyFrame) else traj
    if experiment is not None:
        frame = frame.filter(pl.col("experiment") == experiment)
    if frame.is_empty():
        raise ConfigError(f"no information-plane trajectories for experiment {experiment!r}")
    experiment = frame.get_column("experiment")[0]
    panels = frame.select("estimator", "param").unique(maintain_order=True).rows()
    several = {e for e, _ in panels if sum(e == other for other, _ in panels) > 1}  # settings side by side
    fig = Figure(figsize=(5.2 * len(panels), 4.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    steps = frame.get_column("step")
    norm = Normalize(vmin=float(steps.min()), vmax=max(float(steps.max()), float(steps.min()) + 1))
    layers = sorted(frame.get_column("layer").unique().to_list())
    colours = matplotlib.colormaps["tab10"]
    for ax, (estimator, param) in zip(axes, panels):
        part = frame.filter((pl.col("estimator") == estimator) & (pl.col("param") == param))
        for i, layer in enumerate(layers):
            path = part.filter(pl.col("layer") == layer).sort("step")
            if path.is_empty():
                continue
            x, y = path.get_column("i_xt").to_numpy(), path.get_column("i_ty").to_numpy()
            ax.plot(x, y, color=colours(i % 10), lw=1.0, alpha=0.7, label=f"layer {layer}")
            ax.scatter(
                x,
                y,
                c=path.get_column("step").to_numpy(),
                cmap="viridis",
                norm=norm,
                s=14,
                zorder=3,
                edgecolors=colours(i % 10),
                linewidths=0.6,
            )
        if estimator.startswith("binning"):
            ax.axvline(float(np.log(part.get_column("n_samples")[0])), color="grey", ls="--", lw=0.8)
        is_dcor = estimator == "dcor"
        ax.set_xlabel("dCor(X, T) (unitless)" if is_dcor else f"{IXT} (nats)")
        ax.set_ylabel("dCor(T, Y) (unitless)" if is_dcor else f"{ITY} (nats)")
        title = ESTIMATOR_TITLES.get(estimator, estimator)
        ax.set_title(title + (f"\n{param}" if estimator in several else ""), fontsize=8 if estimator in several else 9)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=list(axes), label="SGD step", shrink=0.9)
    first = frame.row(0, named=True)
    fig.suptitle(f"{experiment}: {first['dataset']}, network {first['profile']}; dashed: ln N")
    return fig


def budget_ladder(
    ladder,
    convergence=None,
    cutoffs=None,
    mean_field=None,
    critical: float | None = None,
    measures=("kl_per_image",),
    dataset=None,
    profile=None,
    sigma_b2=None,
) -> Figure:
    """ℓ_train(σw²) for every rung of the budget ladder (``analysis.budget.ladder_by_sigma``: a line per budget,
    lighter for smaller budgets, with the spread over seeds as a band), over the cutoffs
    (``analysis.cutoffs_by_sigma``) and 6ξ_c (``analysis.mean_field_frame``); with ``convergence``
    (``analysis.budget.convergence``) each σw² not converged by the largest budget is marked with a red ring.
    A rung not determined at a σw² (a search did not train the deciding depth) leaves a gap."""
    lad, key = _pick(ladder, dataset, profile, sigma_b2, "ladder frame")
    select = dict(zip(("dataset", "profile", "sigma_b2"), key))
    budgets = sorted(lad["budget"].unique().to_list())
    fig = Figure(figsize=(8.5, 5.8), layout="constrained")
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["Greens"](np.linspace(0.35, 1.0, len(budgets)))
    for colour, b in zip(colours, budgets):
        rung = lad.filter(pl.col("budget") == b).sort("sigma_w2")
        x = rung["sigma_w2"].to_numpy()
        y = rung["trainable_depth"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        lo = rung["depth_low"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        hi = rung["depth_high"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        ax.plot(x, y, color=colour, lw=2, marker="o", ms=5, zorder=4, label=f"$\\ell_{{train}}$ within {b} epochs")
        if (rung["n_seeds"] > 1).any():
            ax.fill_between(x, lo, hi, color=colour, alpha=0.2, lw=0)
    if convergence is not None:
        conv, _ = _pick(convergence, **select, what="convergence frame")
        open_ = conv.filter(~pl.col("converged")).sort("sigma_w2")
        if open_.height:
            ax.plot(
                open_["sigma_w2"],
                open_["truth"].cast(pl.Float64).fill_null(0),
                ls="",
                marker="o",
                ms=14,
                mfc="none",
                mec="red",
                mew=1.5,
                zorder=5,
                label=f"not converged by {budgets[-1]} epochs",
            )
    top = float(lad["depth_high"].max() or 1) * 1.3 + 1
    if mean_field is not None and not families.of_profile(key[1]).residual:
        mf = mean_field.filter(pl.col("sigma_b2") == key[2]).sort("sigma_w2")
        depth_6xi = np.nan_to_num(mf["depth_6xi"].to_numpy(), posinf=1e9)
        ax.plot(mf["sigma_w2"], depth_6xi, color="tab:cyan", lw=2, zorder=3, label=r"mean field $6\,\xi_c$")
    if cutoffs is not None:
        cut, _ = _pick(cutoffs, **select, what="cutoff frame")
        _cutoff_points(ax, cut, measures)
        top = max(top, float(cut["cutoff_mean"].max() or 0) * 1.2 + 1) if "cutoff_mean" in cut.columns else top
    if not families.of_profile(key[1]).residual:
        _critical_line(ax, critical)
    ax.set_ylim(0, top)
    ax.set_xlabel(f"weight variance {SW2}")
    ax.set_ylabel(r"depth $L$ (trained) / layer $\ell$ (cutoff)")
    ax.set_title(f"Trainable depth by training budget\n{_title(key)}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    return fig


def epochs_heatmap(epochs, dataset=None, profile=None, sigma_b2=None, critical: float | None = None) -> Figure:
    """Epochs needed to reach the accuracy threshold over (σw², depth) (``analysis.budget.epochs_to_threshold``;
    median over the seeds that reached it), the picture of Schoenholz et al. 2017. A trained cell that never
    reached the threshold is hatched (marked with ×, it would need more than its budget); a cell never trained is
    grey — full from a grid, sparse from a search."""
    frame, key = _pick(epochs, dataset, profile, sigma_b2, "epochs frame")
    xs, depths, grid = _grid(frame, "sigma_w2", "depth", "epochs_needed")
    fig = Figure(figsize=(8.5, 5.8), layout="constrained")
    ax = fig.add_subplot()
    budget = int(frame["epochs_run"].max() or 1)
    mesh = ax.pcolormesh(
        _edges(xs), _edges(depths.astype(float)), grid, cmap=_cmap("magma_r"), vmin=1, vmax=max(budget, 2)
    )
    fig.colorbar(mesh, ax=ax, label="epochs to reach the threshold (median over seeds that did)")
    never = frame.filter(pl.col("epochs_needed").is_null())
    if never.height:
        ax.plot(
            never["sigma_w2"],
            never["depth"],
            ls="",
            marker="x",
            color="tab:blue",
            ms=7,
            label=f"trained, never reached the threshold (within {budget} epochs)",
        )
    if not families.of_profile(key[1]).residual:
        _critical_line(ax, critical)
    ax.set_xlim(_edges(xs)[0], _edges(xs)[-1])
    ax.set_xlabel(f"weight variance {SW2}")
    ax.set_ylabel("depth $L$")
    ax.set_title(f"Epochs to the accuracy threshold\n{_title(key)}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    return fig


def predictors_vs_truth(per_sigma: pl.DataFrame, board: pl.DataFrame, *, dataset, profile, sigma_b2) -> Figure:
    """Each predictor's value over σw² (left axis) against ℓ_train (right axis, grey), one panel each."""
    rows, _ = _pick(per_sigma, dataset, profile, sigma_b2, what="predictor frame")
    ranks, _ = _pick(board, dataset, profile, sigma_b2, what="predictor leaderboard")
    names = ranks["predictor"].to_list()
    cols = min(4, len(names))
    nrows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(3.4 * cols, 2.6 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        one = rows.filter(predictor=name).sort("sigma_w2")
        info = ranks.filter(predictor=name).row(0, named=True)
        values = np.clip(one["value"].to_numpy(), -1e6, 1e6)  # ±inf at criticality drawn at the frame's edge
        ax.plot(one["sigma_w2"], values, "o-", color=PREDICTOR_KIND_COLOURS.get(info["kind"], "k"))
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


def predictor_cost(board: pl.DataFrame, *, dataset, profile, sigma_b2) -> Figure:
    """Task-seconds per network against Spearman (left) and AUROC (right), one labelled point per predictor."""
    ranks, _ = _pick(board, dataset, profile, sigma_b2, what="predictor leaderboard")
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    for ax, metric in zip(fig.subplots(1, 2), ("spearman", "auroc")):
        shown = [r for r in ranks.iter_rows(named=True) if r[metric] is not None and math.isfinite(r[metric])]
        for row in shown:
            seconds = max(row["seconds_per_network"] or 1e-6, 1e-6)
            ax.scatter(seconds, row[metric], color=PREDICTOR_KIND_COLOURS.get(row["kind"], "k"), s=25)
            ax.annotate(row["predictor"], (seconds, row[metric]), fontsize=6, xytext=(3, 2), textcoords="offset points")
        if not shown:  # e.g. Spearman where ℓ_train is the same at every σw²: nothing to rank against
            ax.set_xlim(1e-3, 1e2)
            ax.text(0.5, 0.5, f"{metric} undefined for every predictor", ha="center", transform=ax.transAxes)
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

"""Figures from the frames of ``infoflow_ray.analysis`` (matplotlib; no pyplot state, so they work headless).

Every function takes frames (polars DataFrame or LazyFrame), returns a ``matplotlib.figure.Figure`` and draws
one (dataset, profile, σb²): pass ``dataset=``, ``profile=``, ``sigma_b2=`` when a frame holds several.
``save(fig, out_dir, name)`` writes ``name.png`` and ``name.pdf``.

1. ``phase_diagram``       best test accuracy over (σw², depth) + cutoffs + 6ξ_c + critical σw² (paper fig. 3)
2. ``diff_entropy_map``    differential entropy over (σw², layer) (paper fig. 4)
3. ``re_curves``           KL and differential-entropy curves over layers for ordered / critical / chaotic σw²
4. ``reconstructions_grid`` input vs reconstructions from increasing depth, for three σw²
5. ``timing_bars``         task-seconds predicting vs training per σw²
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from infoflow_ray.analysis import GROUP, phase_of, representative_sigma_w2
from infoflow_ray.errors import ConfigError

SW2 = r"$\sigma_w^2$"
SB2 = r"$\sigma_b^2$"
MEASURE_LABELS = {"kl_mean": "KL, mean curve", "kl_median_normalised": "KL, normalised median curve",
                  "diff_entropy": "differential entropy", "kl_per_image": "KL, per image"}
MEASURE_STYLES = {"kl_mean": dict(color="tab:red", marker="o"), "diff_entropy": dict(color="tab:orange", marker="s"),
                  "kl_median_normalised": dict(color="tab:pink", marker="^"),
                  "kl_per_image": dict(color="tab:purple", marker="D")}
PHASE_COLOURS = {"ordered": "tab:blue", "near-critical": "tab:green", "chaotic": "tab:red"}


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
        raise ConfigError(f"the {what} holds several (dataset, profile, sigma_b2): {keys}; pass dataset=, profile=, "
                          "sigma_b2= to choose one")
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


def _critical_line(ax, critical: float | None) -> None:
    if critical is not None:
        ax.axvline(critical, color="white", lw=2.5, zorder=3)
        ax.axvline(critical, color="black", ls="--", lw=1.2, zorder=3,
                   label=f"mean-field critical {SW2} = {critical:.3f}")


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
        ax.errorbar(x, y, yerr=err, color=style["color"], lw=1.5, capsize=3, zorder=5,
                    label=f"cutoff $\\ell_c$: {MEASURE_LABELS.get(m, m)}")
        ax.scatter(x[~open_], y[~open_], s=40, zorder=6, edgecolors="k", linewidths=0.6, **style)
        ax.scatter(x[open_], y[open_], s=40, zorder=6, facecolors="white", edgecolors=style["color"], linewidths=1.5,
                   marker=style["marker"])


def phase_diagram(accuracy, cutoffs=None, mean_field=None, critical: float | None = None, trainable=None,
                  measures=("kl_mean", "diff_entropy"), dataset=None, profile=None, sigma_b2=None) -> Figure:
    """Best test accuracy over (σw², depth) with the measured cutoffs, ℓ_train, 6ξ_c and the critical σw².

    accuracy: ``analysis.accuracy_grid``; cutoffs: ``analysis.cutoffs_by_sigma``; mean_field:
    ``analysis.mean_field_frame`` on a fine σw² grid; trainable: ``analysis.trainable_depth``. All but
    ``accuracy`` are optional.
    """
    acc, key = _pick(accuracy, dataset, profile, sigma_b2, "accuracy frame")
    select = dict(zip(("dataset", "profile", "sigma_b2"), key))
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
        ax.plot(train["sigma_w2"], train["trainable_depth"], color="white", lw=1.5, ls=":", marker="*", ms=11,
                mec="k", zorder=4, label=f"trainable depth $\\ell_{{train}}$ (accuracy ≥ {threshold:g})")
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
    ax.set_title(f"Trainability phase diagram\n{_title(key)}")
    handles, labels = ax.get_legend_handles_labels()
    if cutoffs is not None:
        handles.append(Line2D([], [], ls="", marker="o", mfc="white", mec="0.3"))
        labels.append("open marker: cutoff did not saturate (lower bound)")
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    return fig


def diff_entropy_map(curves, cutoffs=None, critical: float | None = None,
                     dataset=None, profile=None, sigma_b2=None) -> Figure:
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


def re_curves(curves, sigma_w2=None, critical: float | None = None, cutoffs=None,
              dataset=None, profile=None, sigma_b2=None) -> Figure:
    """KL (mean curve) and differential entropy over layers for a few σw² (default: ordered, nearest the
    critical σw², chaotic), mean ± std over seeds, with each curve's cutoff as a dotted vertical line."""
    frame, key = _pick(curves, dataset, profile, sigma_b2, "curves frame")
    chosen = sigma_w2 if sigma_w2 is not None else representative_sigma_w2(
        frame["sigma_w2"].unique(), critical if critical is not None else 1.0)
    cut = _pick(cutoffs, *key, what="cutoff frame")[0] if cutoffs is not None else None
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    panels = (("kl_mean", "relative entropy KL (nats), mean over images"),
              ("diff_entropy", r"differential entropy $H_\ell$ (nats per pixel)"))
    colours = [PHASE_COLOURS[phase_of(s, critical)] for s in chosen] if critical is not None and len(
        {phase_of(s, critical) for s in chosen}) == len(chosen) else [None] * len(chosen)
    for i, (measure, ylabel) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        for s, colour in zip(chosen, colours):
            rows = frame.filter((pl.col("measure") == measure) & (pl.col("sigma_w2") == s)).sort("layer")
            if rows.is_empty():
                continue
            layer, mean = rows["layer"].to_numpy(), rows["value_mean"].to_numpy()
            std = rows["value_std"].fill_null(0).to_numpy()
            phase = f" ({phase_of(s, critical)})" if critical is not None else ""
            line, = ax.plot(layer, mean, marker="o", ms=4, color=colour, label=f"{SW2} = {s:g}{phase}")
            ax.fill_between(layer, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
            if cut is not None:
                c = cut.filter((pl.col("measure") == measure) & (pl.col("sigma_w2") == s))["cutoff_mean"]
                if len(c) and c[0] is not None and np.isfinite(c[0]):
                    ax.axvline(c[0], color=line.get_color(), ls=":", lw=1.5)
        ax.set_xlabel(r"layer $\ell$ reconstructed from (0 = input)")
        ax.set_ylabel(ylabel)
        ax.set_title(MEASURE_LABELS[measure])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    note = " (dotted: cutoff $\\ell_c$)" if cut is not None else ""
    fig.suptitle(f"Reconstruction entropy over depth{note}\n{_title(key)}")
    return fig


def reconstructions_grid(reconstructions, sigma_w2=None, critical: float | None = None, n_images: int = 2,
                         max_columns: int = 8, dataset=None, profile=None, sigma_b2=None) -> Figure:
    """Input images and their reconstructions from increasing depth, one row per (σw², image).

    reconstructions: the ``reconstructions`` table (or a filtered scan of it). Uses each σw²'s deepest cascade
    and lowest seed, the first ``n_images`` stored images and at most ``max_columns`` columns (layer 0 = the
    input, then evenly spaced layers up to the deepest). Pixels are drawn on one fixed scale, [0, 1].
    """
    frame, key = _pick(reconstructions, dataset, profile, sigma_b2, "reconstructions frame")
    frame = frame.filter((pl.col("depth") == pl.col("depth").max().over("sigma_w2"))
                         & (pl.col("seed") == pl.col("seed").min().over("sigma_w2")))
    chosen = sigma_w2 if sigma_w2 is not None else representative_sigma_w2(
        frame["sigma_w2"].unique(), critical if critical is not None else 1.0)
    images = sorted(frame["image_index"].unique().to_list())[:n_images]
    deepest = int(frame["layer"].max())
    layers = [0] + sorted({int(round(v)) for v in np.linspace(1, deepest, min(deepest, max_columns - 1))})
    rows = [(s, i) for s in chosen for i in images]
    fig = Figure(figsize=(1.25 * len(layers) + 1.2, 1.3 * len(rows) + 0.9), layout="constrained")
    axes = fig.subplots(len(rows), len(layers), squeeze=False)
    cells = {(r["sigma_w2"], r["image_index"], r["layer"]): r for r in frame.filter(
        pl.col("sigma_w2").is_in(list(chosen)) & pl.col("image_index").is_in(images)
        & pl.col("layer").is_in(layers)).iter_rows(named=True)}
    for r, (s, image) in enumerate(rows):
        for c, layer in enumerate(layers):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            cell = cells.get((s, image, layer))
            if cell is not None:
                pixels = np.asarray(cell["pixels"], dtype=np.float32).reshape(cell["height"], cell["width"])
                ax.imshow(pixels, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if r == 0:
                ax.set_title("input" if layer == 0 else rf"$\ell$ = {layer}", fontsize=9)
            if c == 0:
                phase = f"\n{phase_of(s, critical)}" if critical is not None else ""
                ax.set_ylabel(f"{SW2} = {s:g}{phase}\nimage {image}", fontsize=8)
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
    ax.bar(x - width / 2, predicting, width, color="tab:blue",
           label="predicting: one cascade per seed (reconstruction entropy)")
    ax.bar(x + width / 2, training, width, color="tab:gray", label="training: baselines at every depth")
    for xi, ratio, height in zip(x, frame["speedup"], np.maximum(predicting, training)):
        if ratio is not None:
            ax.annotate(f"{ratio:.1f}×", (xi, height), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 2), textcoords="offset points")
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
    ax.set_title(f"Time spent predicting vs training, {_title(key)}\n"
                 f"in total {total_p:.0f} s vs {total_t:.0f} s{ratio}; labels: ratio per {SW2}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
    return fig

"""The analysis report of a results folder: the phase diagram and the other figures (PNG + PDF) and report.md.

``write(store, out)`` draws every figure the results allow into ``out`` and writes ``out/report.md``; ``run``
returns the figures, sections and skipped steps without writing the report. Works on partial results (a grid
still running): draws the figures whose data exist, says which it skipped and why, and lists what is missing —
"N of M tasks finished" against the grids the driver recorded, or judged by what is present for older results.
With the optional info_plane table it also draws the information plane and I(X;T_l) beside the
reconstruction-entropy curves. ``jobs/analyze.py`` is its command line.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from infoflow_ray import analysis, families, plots, theory
from infoflow_ray.analysis import budget as budget_frames
from infoflow_ray.analysis import info_plane, interpret, leaderboard, tuning
from infoflow_ray.analysis import search as search_frames
from infoflow_ray.errors import ConfigError, ResultsError
from infoflow_ray.store import ResultStore


def write(store: ResultStore, out: Path) -> Analysis:
    """Draw the figures into ``out`` (created) and write ``out/report.md``; the Analysis says what was written
    (``figures`` and ``report``) and what was skipped."""
    out.mkdir(parents=True, exist_ok=True)
    result = run(store, out)
    result.report = out / "report.md"
    result.report.write_text("\n\n".join(result.sections) + "\n", encoding="utf-8")
    return result


def markdown_table(frame: pl.DataFrame, digits: int = 3) -> str:
    """A Markdown table of ``frame``: floats to ``digits`` significant digits, nulls as '–'."""

    def cell(value) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.width]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join(lines)


class Analysis:
    """Collects figures, tables and skipped steps while the analysis runs."""

    def __init__(self, out: Path):
        self.out = out
        self.figures: list[Path] = []
        self.skipped: list[str] = []
        self.sections: list[str] = []
        self.report: Path | None = None  # report.md, once ``write`` wrote it

    def frame(self, name: str, make):
        """``make()`` collected, or None (and a skipped note) when its table is absent."""
        try:
            result = make()
            return result.collect() if isinstance(result, pl.LazyFrame) else result
        except ResultsError as e:
            self.skipped.append(f"{name}: {e}")
            return None

    def figure(self, name: str, needs: dict, make) -> None:
        """Draw and save one figure when every frame it needs exists; otherwise note why not."""
        absent = [what for what, frame in needs.items() if frame is None]
        if absent:
            self.skipped.append(f"{name}: no {' or '.join(absent)} (see above)")
            return
        try:
            fig = make()
        except ConfigError as e:  # this (dataset, profile, σb²) has no rows in one of the frames
            self.skipped.append(f"{name}: {e}")
            return
        self.figures += plots.save(fig, self.out, name)


def run(store, out: Path) -> Analysis:
    """Every frame, figure and report section that the results allow, drawn per (dataset, profile, σb²)."""
    a = Analysis(out)
    inventory = analysis.missing(store)
    cutoffs = a.frame("cutoffs", lambda: analysis.cutoffs_by_sigma(store))
    trainable = a.frame("trainable depth", lambda: analysis.trainable_depth(store))
    accuracy = a.frame("accuracy grid", lambda: analysis.accuracy_grid(store))
    curves = a.frame("curves", lambda: analysis.curves_by_sigma(store, ("kl_mean", "diff_entropy")))
    timing = a.frame("timing", lambda: analysis.timing(store))
    comparison = a.frame("comparison", lambda: analysis.comparison(store))
    agreement = analysis.agreement(comparison) if comparison is not None else None
    points = a.frame("information plane", lambda: analysis.info_plane_points(store))
    info_cutoffs = analysis.information_cutoffs(points, cutoffs) if points is not None else None
    searched = inventory.rows.get("search", 0) > 0
    brackets = a.frame("search brackets", lambda: search_frames.trainable_brackets(store)) if searched else None
    edges = a.frame("search interval", lambda: search_frames.interval_edges(store)) if searched else None
    peaks = a.frame("search peaks", lambda: search_frames.cutoff_peaks(store)) if searched else None
    cost = a.frame("search cost", lambda: search_frames.search_cost(store)) if searched else None
    edges = edges if edges is not None and edges.height else None
    trained_any = trainable is not None
    ladder = a.frame("budget ladder", lambda: budget_frames.ladder_by_sigma(store)) if trained_any else None
    converged = a.frame("convergence", lambda: budget_frames.convergence(store)) if trained_any else None
    epochs = a.frame("epochs to threshold", lambda: budget_frames.epochs_to_threshold(store)) if trained_any else None
    if inventory.rows["reconstructions"] == 0:
        a.skipped.append(f"reconstructions: {analysis.PRODUCERS['reconstructions']}")

    for dataset, profile, sigma_b2 in inventory.coverage.select(analysis.GROUP).unique().sort(analysis.GROUP).rows():
        key = dict(dataset=dataset, profile=profile, sigma_b2=sigma_b2)
        suffix = f"{dataset}_{profile}_sb{sigma_b2:g}"
        critical = theory.critical_sigma_w2(sigma_b2)
        sigma_w2 = inventory.coverage.filter(**key)["sigma_w2"]
        pad = 0.1 * (sigma_w2.max() - sigma_w2.min() or 1.0)
        fine_grid = np.linspace(max(sigma_w2.min() - pad, 1e-3), sigma_w2.max() + pad, 160)
        mean_field = analysis.mean_field_frame(fine_grid, sigma_b2)
        a.figure(
            f"phase_diagram_{suffix}",
            {"baseline trainings": accuracy},
            lambda: plots.phase_diagram(
                accuracy,
                cutoffs,
                mean_field,
                critical,
                trainable,
                **key,
                brackets=_having(brackets, key),
                interval=_having(edges, key),
                peak=_having(peaks, key),
            ),
        )
        a.figure(
            f"budget_ladder_{suffix}",
            {"baseline trainings": ladder},
            lambda: plots.budget_ladder(ladder, converged, cutoffs, mean_field, critical, **key),
        )
        a.figure(
            f"epochs_heatmap_{suffix}",
            {"baseline trainings": epochs},
            lambda: plots.epochs_heatmap(epochs, critical=critical, **key),
        )
        a.figure(
            f"diff_entropy_map_{suffix}",
            {"curves": curves},
            lambda: plots.diff_entropy_map(curves, cutoffs, critical, **key),
        )
        a.figure(
            f"re_curves_{suffix}",
            {"curves": curves},
            lambda: plots.re_curves(curves, critical=critical, cutoffs=cutoffs, **key),
        )
        if inventory.rows["reconstructions"]:
            chosen = analysis.representative_sigma_w2(sigma_w2, critical)
            images = store.scan("reconstructions").filter(pl.col("sigma_w2").is_in(chosen), **key).collect()
            a.figure(
                f"reconstructions_{suffix}",
                {"reconstructions": images},
                lambda: plots.reconstructions_grid(images, critical=critical, **key),
            )
        a.figure(f"timing_{suffix}", {"runs": timing}, lambda: plots.timing_bars(timing, **key))
        if inventory.rows.get("perfect_inputs"):
            _interpret_figures(store, a, key, suffix, critical, curves)
        if points is not None:
            a.figure(
                f"information_plane_{suffix}",
                {"info_plane": points},
                lambda: plots.information_plane(points, critical=critical, **key),
            )
            a.figure(
                f"mi_vs_layer_{suffix}",
                {"info_plane": points},
                lambda: plots.mi_vs_layer(points, curves, critical=critical, cutoffs=cutoffs, **key),
            )

    if peaks is not None and peaks.height:
        a.figure(
            "critical_line",
            {"search peaks": peaks},
            lambda: plots.critical_line(peaks, search_frames.critical_line(peaks["sigma_b2"].to_list())),
        )
    tuned = tuning_figures(store, a) if inventory.rows.get("tune_trials", 0) else None
    board = leaderboard_figures(store, a) if inventory.rows.get("predictors", 0) else None
    experiments = (
        a.frame("info-plane experiments", lambda: info_plane.trajectories(store)) if points is not None else None
    )
    for name in experiments["experiment"].unique(maintain_order=True) if experiments is not None else []:
        a.figure(f"info_plane_{name}", {"trajectories": experiments}, lambda: plots.ib_trajectories(experiments, name))
    trained = (
        a.frame("trained networks", lambda: interpret.trained_networks(store))
        if inventory.rows.get("perfect_inputs")
        else None
    )
    a.sections = report_sections(inventory, comparison, agreement, timing, info_cutoffs, a)
    if converged is not None and converged.height:
        note = budget_frames.truth_note(store)
        fractions = a.frame("seed fractions", lambda: budget_frames.seed_fractions(store))
        a.sections.insert(2, budget_frames.report_section(converged, note, fractions))
        truth = "; ".join(f"{d} {p} σb²={b:g}: {t}" for d, p, b, t in note.select(*analysis.GROUP, "note").iter_rows())
        a.sections = [  # every agreement figure says which budget, and whether converged, its truth is
            s + f"\n\nThe truth compared against: {truth}." if s.startswith("## Agreement") else s for s in a.sections
        ]
    if searched:
        a.sections.insert(2, search_section(brackets, edges, peaks, cost))
    if tuned is not None:
        a.sections.insert(2, tuning_section(*tuned))
    if board is not None:
        a.sections.insert(2, leaderboard_section(board))
    if trained is not None:
        a.sections.insert(2, interpret_section(trained))
    if experiments is not None and experiments.height:
        a.sections.insert(2, info_plane_section(experiments))
    return a


def info_plane_section(experiments: pl.DataFrame) -> str:
    """jobs/info_plane.py's experiments: per experiment, estimator and layer, whether fitting and compression show."""
    summary = info_plane.fitting_and_compression(experiments).select(
        "experiment",
        "estimator",
        "layer",
        "xt_first",
        "xt_peak",
        "step_xt_peak",
        "xt_last",
        "compression",
        "ty_first",
        "ty_max",
        "ty_last",
    )
    return (
        "## Information-plane experiments (jobs/info_plane.py)\n\n"
        "Nats ('dcor': distance correlation in [0, 1]). xt_*: I(X;T) at the first snapshot, its peak (at step "
        "step_xt_peak) and the last; compression = (peak − last) / peak; ty_*: I(T;Y) first, max, last.\n\n"
        + markdown_table(summary)
        + "\n"
    )


RETRACED_CLASSES = range(5)  # the retraced-decision figure draws these classes' rows (all are in the table)


def _interpret_figures(store, a: Analysis, key: dict, suffix: str, critical: float, curves) -> None:
    """Fig. 5 of the paper for one (dataset, profile, σb²): retraced decisions at the trained σw² nearest the
    critical point, the perfect inputs of an ordered, a near-critical and a chaotic σw², and the entropy curves
    of trained against untrained networks."""
    retraced = store.scan("retraced").filter(**key).collect()
    perfect = store.scan("perfect_inputs").filter(**key).collect()
    trained_curves = store.scan("trained_curves").filter(**key).collect()
    if retraced.height:
        nearest = min(retraced["sigma_w2"].unique().to_list(), key=lambda s: abs(s - critical))
        a.figure(
            f"retraced_{suffix}",
            {"retraced": retraced},
            lambda: plots.retraced_strips(retraced, nearest, classes=RETRACED_CLASSES, **key),
        )
    a.figure(
        f"perfect_inputs_{suffix}",
        {"perfect_inputs": perfect if perfect.height else None},
        lambda: plots.perfect_inputs_grid(perfect, critical=critical, **key),
    )
    a.figure(
        f"trained_vs_untrained_{suffix}",
        {"trained_curves": trained_curves if trained_curves.height else None},
        lambda: plots.trained_vs_untrained(trained_curves, curves if curves is not None else trained_curves[:0], **key),
    )


def interpret_section(trained: pl.DataFrame) -> str:
    """The report's account of the cascades of trained networks (``analysis.interpret.trained_networks``)."""
    return (
        "## Opening the black box: cascades of the trained networks\n\nFor every trained network (grid option "
        "`interpret`): its final test accuracy; `perfect_classified_own`: how many of its `classes` perfect "
        "inputs (the cascade applied to a `perfect_output` activation of each label, from the output layer down) "
        "it classifies as their own label when fed forward; the per-image KL cutoff of its cascade "
        "(`trained_cutoff`, over layers up to `last_layer`) beside the untrained network's at the same σw² "
        "(`untrained_cutoff`, the grid's deeper cascade). Figures: `retraced_*` (the paper's fig. 5 a, b: classes "
        f"{RETRACED_CLASSES.start}–{RETRACED_CLASSES.stop - 1}), `perfect_inputs_*` (fig. 5 c), "
        "`trained_vs_untrained_*`.\n\n" + markdown_table(trained)
    )


def leaderboard_figures(store, a: Analysis) -> pl.DataFrame | None:
    """The predictor leaderboard (``analysis.leaderboard``) and its two figures per (dataset, profile, σb²)."""
    frames = a.frame("predictor leaderboard", lambda: leaderboard.board(store))
    if frames is None or frames[0].height == 0:
        return None
    board, per_sigma = frames
    for dataset, profile, sigma_b2 in board.select(analysis.GROUP).unique().sort(analysis.GROUP).rows():
        key = dict(dataset=dataset, profile=profile, sigma_b2=sigma_b2)
        suffix = f"{dataset}_{profile}_sb{sigma_b2:g}"
        a.figure(
            f"predictors_vs_truth_{suffix}",
            {"predictors": per_sigma},
            lambda: plots.predictors_vs_truth(per_sigma, board, **key),
        )
        a.figure(f"predictor_cost_{suffix}", {"predictors": board}, lambda: plots.predictor_cost(board, **key))
    return board


def leaderboard_section(board: pl.DataFrame) -> str:
    """The report's predictor leaderboard (``analysis.leaderboard``; docs/predictors.md)."""
    return (
        "## Which predictor to trust: the leaderboard\n\n"
        "Per (dataset, profile, σb²) and predictor: `spearman`, the rank correlation over σw² of its predicted depth "
        "(or its score, oriented so higher = more trainable) with ℓ_train; `auroc`, how well it separates the "
        "trained (σw², L, seed) cells that reached the threshold from those that did not; `seconds_per_network`, "
        "its task-seconds per network (the cutoffs: the cascade task's). The truth is ℓ_train at the largest "
        "training budget stored (the grid's `max_epochs`, stopping at the threshold). Formulas and sign "
        "conventions: docs/predictors.md.\n\n" + markdown_table(board)
    )


def tuning_figures(store, a: Analysis) -> tuple[pl.DataFrame, pl.DataFrame, float] | None:
    """The predict-then-tune figure of every (job, dataset, depth) in ``tune_trials``; the frames the report
    needs: per-experiment rows, the per-arm summary and the target accuracy."""
    trials = a.frame("tune_trials", lambda: tuning.tune_trials(store))
    if trials is None:
        return None
    target = tuning.target_accuracy(trials)
    curves = tuning.best_so_far(trials)
    groups = trials.select("job", "dataset", "depth", "settings_id").unique().sort(pl.all())
    for job, dataset, depth, settings in groups.rows():
        name = f"tuning_{job}_{dataset}_L{depth}"
        if groups.filter(job=job, dataset=dataset, depth=depth).height > 1:  # runs of several settings
            name += f"_{settings[:8]}"
        a.figure(
            name,
            {"tune_trials": trials},
            lambda: plots.tuning_search(
                curves, trials, target, job=job, dataset=dataset, depth=depth, settings_id=settings
            ),
        )
    per_experiment = tuning.experiments(trials, target)
    return per_experiment, tuning.arm_summary(per_experiment), target


def tuning_section(per_experiment: pl.DataFrame, summary: pl.DataFrame, target: float) -> str:
    """The report's account of predict-then-tune: per arm the spread over search seeds, then every experiment."""
    return (
        "## Predict, then tune\n\n`jobs/predict_then_tune.py`: the same searcher, scheduler (ASHA), trial "
        "budget and search seeds over σw² inside the interval the cascades predicted trainable (arm "
        "`predicted`, its compute starting at the cascades' task-seconds) and over the whole σw² range (arm "
        f"`control`). Target accuracy: {target:.4g} (the job's `target_accuracy`, else "
        f"{tuning.DEFAULT_TARGET_FRACTION:g} × the best any trial reached). `seconds_to_target`: task-seconds "
        "until the experiment's best accuracy first reached the target (inf: never); median, min and max over "
        "search seeds; `saving`: the control arm's median over this arm's (> 1: less compute with the "
        "prediction); `tuning_*`: the same without the prediction's cost (what the narrower σw² range alone "
        "saves). `outside_predicted`: the share of an experiment's trials with σw² outside the predicted "
        "interval.\n\n"
        + markdown_table(summary.drop("job", "settings_id", "profile", "sigma_b2"), digits=4)
        + "\n\nEvery experiment (`tune_trials` holds every trial):\n\n"
        + markdown_table(per_experiment.drop("job", "settings_id", "profile", "sigma_b2", "experiment_id"), digits=4)
    )


def _having(frame: pl.DataFrame | None, key: dict) -> pl.DataFrame | None:
    """The rows of ``frame`` for one (dataset, profile, σb²), or None when it has none (nothing to overlay)."""
    if frame is None:
        return None
    part = frame.filter(**key)
    return part if part.height else None


def search_section(brackets, edges, peaks, cost) -> str:
    """The report's account of an adaptive search: ℓ_train brackets, the σw² interval, the peaks, the cost."""
    parts = [
        "## Adaptive search\n\nWhat the search found (`search` table; every decision, its reason and outcome "
        "are rows there). ℓ_train per σw² is a bracket: `trainable_depth` passed, `bracket_high` (the "
        "shallowest depth above it) did not (– where every depth above passed); `contradictions` counts "
        "outcomes against monotonicity in depth (a shallower depth failing below one that passed)."
    ]
    if brackets is not None:
        parts.append(markdown_table(brackets.drop("done")))
    if edges is not None:
        parts.append(
            "The σw² interval where the cutoff reaches the target depth L (each edge: the midpoint of the "
            "measured σw² just outside and just inside; `*_width` their distance; – where the edge lies "
            "beyond the searched range):\n\n" + markdown_table(edges.drop("done"))
        )
    if peaks is not None:
        parts.append(
            "Where the cutoffs peak (the centre of the tied maximum over every σw² measured, bracketed by "
            "the measured σw² either side) against the mean-field critical σw²:\n\n" + markdown_table(peaks)
        )
    if cost is not None:
        parts.append(
            "What the search spent against the full grid over the same σw², depths and seeds "
            "(task-seconds; `fine_grid_cascades`: a σw² grid at the interval search's tolerance):\n\n"
            + markdown_table(cost)
        )
    return "\n\n".join(parts)


def plan_table(plan: pl.DataFrame) -> pl.DataFrame:
    """Per (dataset, profile, σb², σw²): 'finished of planned' tasks of each kind, and the failed ones."""
    keys = analysis.KEYS
    cells = plan.with_columns(cell=pl.format("{} of {}", "finished", "planned"))
    wide = cells.pivot("kind", index=keys, values="cell")
    failed = plan.group_by(keys).agg(failed=pl.col("failed").sum(), not_run=pl.col("not_run").sum())
    kinds = [k for k in ("cascade", "baseline") if k in wide.columns]
    return wide.join(failed, on=keys).select(keys + kinds + ["failed", "not_run"]).sort(keys)


def info_flow_section(info_cutoffs: pl.DataFrame) -> str:
    """The report's table of information cutoffs beside the RE cutoffs (``analysis.information_cutoffs``)."""
    regimes = [
        analysis.regime_of(s, theory.critical_sigma_w2(b))
        for s, b in info_cutoffs.select("sigma_w2", "sigma_b2").iter_rows()
    ]
    re_columns = [
        c for c in ("re_cutoff_kl_mean", "re_cutoff_diff_entropy", "re_last_layer") if c in info_cutoffs.columns
    ]
    shown = info_cutoffs.with_columns(regime=pl.Series(regimes, dtype=pl.String)).select(
        "dataset",
        "profile",
        "sigma_w2",
        "regime",
        "estimator",
        "n_samples",
        "threshold",
        "info_cutoff",
        "last_layer",
        "i_xt_first",
        "i_xt_last",
        *re_columns,
    )
    return (
        "## Information flow: I(X;T_l) beside the reconstruction-entropy cutoff\n\n`info_cutoff`: the first "
        "layer l at which I(X;T_l) of the untrained network (mean over seeds) falls below ½ ln N (`threshold`, "
        "nats; N = `n_samples` probe images, ln N the ceiling of binned I(X;T)); – where it stays above down to "
        "the output layer L (`last_layer`). `i_xt_first`/`i_xt_last`: I(X;T) at layer 1 and L (nats). "
        "`re_cutoff_*`: the reconstruction-entropy cutoffs ℓ_c of the same σw², searched up to `re_last_layer`."
        "\n\n" + markdown_table(shown)
    )


def report_sections(inventory, comparison, agreement, timing, info_cutoffs, a: Analysis) -> list[str]:
    sections = [
        f"# Analysis of `{inventory.location}`\n\nWritten {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        "by `jobs/analyze.py`. ℓ_c: cutoff layer (mean over seeds); ℓ_train: the largest trained depth that "
        "reached the accuracy threshold (0 when none did); 6ξ_c: mean-field predicted trainable depth."
    ]
    problems = inventory.problems()
    rows = ", ".join(f"{name} {n}" for name, n in inventory.rows.items())
    devices = "; ".join(f"{kind} tasks on {', '.join(names)}" for kind, names in inventory.devices.items())
    grids = f"Planned grid(s): {', '.join(inventory.grids)}. " if inventory.grids else ""
    plan = (
        "\n\nTasks finished of those planned, per σw² (failed: attempts failed, no finished run; not_run: "
        "not started or still running):\n\n" + markdown_table(plan_table(inventory.plan))
        if inventory.planned
        else ""
    )
    complete = (
        f"Nothing missing: all {inventory.plan['planned'].sum()} planned tasks finished."
        if inventory.planned
        else "Nothing missing: every σw² has cutoffs and every (depth, seed) was trained."
    )
    sections.append(
        "## What the results hold\n\nRows per table: "
        + rows
        + ".\n\n"
        + (f"Devices: {devices}.\n\n" if devices else "")
        + f"{grids}{inventory.progress()}.{plan}\n\n"
        + ("Missing or suspicious:\n\n" + "\n".join(f"- {p}" for p in problems) if problems else complete)
    )
    if agreement is not None:
        shown = agreement.select(
            "dataset",
            "profile",
            "sigma_b2",
            "measure",
            "n_sigma_w2",
            "spearman",
            "cutoff_peak_sigma_w2",
            "trainable_peak_sigma_w2",
            "critical_sigma_w2",
            "cutoff_peak_minus_critical",
            "trainable_peak_minus_critical",
        )
        sections.append(
            "## Agreement: does the cutoff predict ℓ_train?\n\nSpearman rank correlation of ℓ_c and "
            "ℓ_train over σw² (nan: one of them is constant); the σw² at which each peaks (centre of a "
            "tied maximum; – where a curve has no single peak: flat, two separate maxima, or nothing "
            "trainable) and its distance from the mean-field critical σw²."
            + (
                " Residual architectures (profiles resnet-…, resmlp-…) have no ordered/chaotic transition of the "
                "mean-field kind: their critical σw² and its distances are the MLP's, shown for reference only."
                if any(families.of_profile(p).residual for p in shown["profile"].to_list())
                else ""
            )
            + "\n\n"
            + markdown_table(shown)
        )
    if comparison is not None:
        shown = comparison.select(
            "dataset",
            "profile",
            "sigma_w2",
            "cutoff_kl_per_image",
            "cutoff_kl_per_image_std",
            "cutoff_kl_mean",
            "cutoff_kl_mean_std",
            "cutoff_diff_entropy",
            "cutoff_diff_entropy_std",
            "cutoff_last_layer",
            "trainable_depth",
            "deepest_trained",
            "best_test_accuracy",
            "depth_6xi",
        )
        sections.append(
            "## Cutoff vs trainable depth per σw²\n\n`cutoff_last_layer` is the deepest layer searched"
            " (a cutoff equal to it did not saturate).\n\n" + markdown_table(shown)
        )
    if info_cutoffs is not None and info_cutoffs.height:
        sections.append(info_flow_section(info_cutoffs))
    if timing is not None:
        sections.append(
            "## Time spent predicting vs training\n\nTask-seconds (sum of each task's wall time).\n\n"
            + markdown_table(analysis.timing_total(timing))
            + "\n\nPer σw²:\n\n"
            + markdown_table(timing)
        )
    figures = [p for p in a.figures if p.suffix == ".png"]
    sections.append(
        "## Figures\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in figures)
        if figures
        else "## Figures\n\nNone could be drawn."
    )
    if a.skipped:
        sections.append("## Skipped\n\n" + "\n".join(f"- {s}" for s in a.skipped))
    return sections

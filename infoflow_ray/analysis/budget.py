"""The budget ladder as frames (docs/budget.md): ℓ_train per training budget, its convergence, the seeds' spread.

Read off ``train_summary`` alone: each training's ``threshold_epoch`` says whether it was trainable within every
budget up to its own (``infoflow_ray.budget``). Budgets are in epochs; ``budgets`` default to the ladder of the
newest grid recorded in the results (``train.ladder``, else the doubling ladder below ``train.max_epochs``).

- ``ladder``: per (dataset, profile, σb², σw², seed, budget) ℓ_train (null: not determined), its bracket;
- ``ladder_by_sigma``: per (dataset, profile, σb², σw², budget) ℓ_train over seeds (the deepest, the grid's 'in
  any seed' convention; null when a seed's is not determined), the spread (shallowest, deepest per-seed ℓ_train);
- ``convergence``: per (dataset, profile, σb², σw²) the convergence rule: converged_at (null: not converged by
  the largest budget), the truth the agreement figures use, non-monotone steps in words;
- ``seed_fractions``: per (…, σw², depth, budget) the fraction of seeds trainable within the budget;
- ``epochs_to_threshold``: per (…, σw², depth) the epochs needed to reach the threshold (median over the seeds
  that reached it; null when none did) and the best accuracy: the Schoenholz-style heatmap's cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from infoflow_ray import budget
from infoflow_ray.analysis.frames import GROUP, KEYS, table
from infoflow_ray.config import check_ladder, default_ladder
from infoflow_ray.store import ResultStore


def trainings(store: ResultStore) -> pl.DataFrame:
    """The stored trainings with what the ladder reads: KEYS, seed, depth, threshold_epoch (a row upgraded
    without its epochs that reached the threshold counts as reaching it at its last epoch), epochs, stop_reason,
    best_test_accuracy, accuracy_threshold."""
    return (
        table(store, "train_summary")
        .select(
            *KEYS,
            "seed",
            "depth",
            pl.when(pl.col("threshold_epoch").is_null() & pl.col("reached_threshold"))
            .then(pl.col("epochs"))
            .otherwise(pl.col("threshold_epoch"))
            .alias("threshold_epoch"),
            "epochs",
            "stop_reason",
            "best_test_accuracy",
            "accuracy_threshold",
        )
        .sort(KEYS + ["seed", "depth"])
        .collect()
    )


def budgets_of(store: ResultStore, frame: pl.DataFrame | None = None) -> tuple[int, ...]:
    """The ladder of the newest recorded grid with a training budget; without one, the doubling ladder below the
    longest training stored."""
    for grid in reversed(store.planned_grids()):
        train = grid.get("grid", {}).get("train")
        if train and train.get("max_epochs"):
            if train.get("ladder"):
                return check_ladder(train["ladder"], train["max_epochs"])
            return default_ladder(int(train["max_epochs"]))
    frame = trainings(store) if frame is None else frame
    return default_ladder(int(frame["epochs"].max() or 1))


def _trainings_of(part: pl.DataFrame) -> list[budget.Training]:
    return [
        budget.Training(d, e, n, why)
        for d, e, n, why in part.select("depth", "threshold_epoch", "epochs", "stop_reason").iter_rows()
    ]


def ladder(store: ResultStore, budgets: Sequence[int] | None = None) -> pl.DataFrame:
    """ℓ_train per (KEYS, seed, budget) from the same trainings: trainable_depth (null: not determined, a
    deciding depth untrained), bracket_low / bracket_high (deepest pass, shallowest fail above it; null: none),
    determined, contradictions. The depths are those trained at that (σw², seed)'s σw² over all seeds."""
    frame = trainings(store)
    budgets = tuple(budgets) if budgets is not None else budgets_of(store, frame)
    rows = []
    for keys, sigma in frame.group_by(KEYS, maintain_order=True):
        depths = sorted(set(sigma["depth"]))
        for (seed,), part in sigma.group_by("seed", maintain_order=True):
            for r in budget.ladder(depths, _trainings_of(part), budgets):
                rows.append(
                    {
                        **dict(zip(KEYS, keys)),
                        "seed": seed,
                        "budget": r.budget,
                        "trainable_depth": r.trainable_depth,
                        "bracket_low": r.bracket.passed,
                        "bracket_high": r.bracket.failed,
                        "determined": r.determined,
                        "contradictions": r.bracket.contradictions,
                    }
                )
    schema = {**{k: frame.schema[k] for k in KEYS}, "seed": pl.Int64, "budget": pl.Int64}
    schema |= {"trainable_depth": pl.Int64, "bracket_low": pl.Int64, "bracket_high": pl.Int64}
    schema |= {"determined": pl.Boolean, "contradictions": pl.Int64}
    return pl.DataFrame(rows, schema=schema).sort(KEYS + ["seed", "budget"])


def ladder_by_sigma(store: ResultStore, budgets: Sequence[int] | None = None) -> pl.DataFrame:
    """Per (KEYS, budget): trainable_depth (the deepest per-seed ℓ_train; null when some seed's is not
    determined), depth_low / depth_high (the spread of the determined per-seed values), n_seeds."""
    return (
        ladder(store, budgets)
        .group_by(KEYS + ["budget"])
        .agg(
            trainable_depth=pl.when(pl.col("determined").all()).then(pl.col("trainable_depth").max()),
            depth_low=pl.col("trainable_depth").min(),
            depth_high=pl.col("trainable_depth").max(),
            n_seeds=pl.len().cast(pl.Int64),
        )
        .sort(KEYS + ["budget"])
    )


def convergence(store: ResultStore, budgets: Sequence[int] | None = None) -> pl.DataFrame:
    """Per KEYS: converged_at (the smallest budget from which ℓ_train stays within one depth step at every larger
    rung; null: not converged), truth (ℓ_train at the largest budget) and truth_budget, converged, per_budget (the
    values in words), non_monotone (every larger budget that gave a shallower ℓ_train), verdict (in words)."""
    per_sigma = ladder_by_sigma(store, budgets)
    depths = trainings(store).group_by(KEYS).agg(pl.col("depth").unique().sort())
    rows = []
    for keys, part in per_sigma.join(depths, on=KEYS).group_by(KEYS, maintain_order=True):
        values = list(part.sort("budget").select("budget", "trainable_depth").iter_rows())
        c = budget.convergence(part["depth"][0].to_list(), values)
        rows.append(
            {
                **dict(zip(KEYS, keys)),
                "converged_at": c.converged_at,
                "converged": c.converged_at is not None,
                "truth": values[-1][1],
                "truth_budget": values[-1][0],
                "per_budget": ", ".join(f"{b}: {'?' if v is None else v}" for b, v in values),
                "non_monotone": "; ".join(c.non_monotone),
                "verdict": c.describe(),
            }
        )
    schema = {**{k: per_sigma.schema[k] for k in KEYS}, "converged_at": pl.Int64, "converged": pl.Boolean}
    schema |= {"truth": pl.Int64, "truth_budget": pl.Int64, "per_budget": pl.String}
    schema |= {"non_monotone": pl.String, "verdict": pl.String}
    return pl.DataFrame(rows, schema=schema).sort(KEYS)


def truth_note(store: ResultStore, budgets: Sequence[int] | None = None) -> pl.DataFrame:
    """Per GROUP: which truth the agreement figures compare against, in words ('ℓ_train within 40 epochs;
    converged at 5 of 8 σw²; not converged at σw² 4, 6'), with budget, n_converged and n_sigma_w2."""
    frame = convergence(store, budgets)
    return (
        frame.group_by(GROUP)
        .agg(
            budget=pl.col("truth_budget").max(),
            n_converged=pl.col("converged").sum().cast(pl.Int64),
            n_sigma_w2=pl.len().cast(pl.Int64),
            not_converged=pl.col("sigma_w2").filter(~pl.col("converged")).sort(),
        )
        .with_columns(
            note=pl.format(
                "ℓ_train within {} epochs; converged at {} of {} σw²{}",
                "budget",
                "n_converged",
                "n_sigma_w2",
                pl.when(pl.col("not_converged").list.len() > 0)
                .then(
                    pl.lit("; not converged at σw² ")
                    + pl.col("not_converged").list.eval(pl.element().round(4).cast(pl.String)).list.join(", ")
                )
                .otherwise(pl.lit("")),
            )
        )
        .drop("not_converged")
        .sort(GROUP)
    )


def seed_fractions(store: ResultStore, budgets: Sequence[int] | None = None) -> pl.DataFrame:
    """Per (KEYS, depth, budget): fraction (of the seeds that can say) trainable within the budget, n_seeds."""
    frame = trainings(store)
    budgets = tuple(budgets) if budgets is not None else budgets_of(store, frame)
    rows = []
    for keys, sigma in frame.group_by(KEYS, maintain_order=True):
        depths = sorted(set(sigma["depth"]))
        by_seed = {seed: _trainings_of(part) for (seed,), part in sigma.group_by("seed")}
        for b in budgets:
            spread = budget.seed_spread(depths, by_seed, b)
            for depth, fraction in spread.fraction.items():
                rows.append(
                    {
                        **dict(zip(KEYS, keys)),
                        "depth": depth,
                        "budget": b,
                        "fraction": fraction,
                        "n_seeds": spread.seeds[depth],
                    }
                )
    schema = {**{k: frame.schema[k] for k in KEYS}, "depth": pl.Int64, "budget": pl.Int64}
    schema |= {"fraction": pl.Float64, "n_seeds": pl.Int64}
    return pl.DataFrame(rows, schema=schema).sort(KEYS + ["depth", "budget"])


def epochs_to_threshold(store: ResultStore) -> pl.DataFrame:
    """Per (KEYS, depth): epochs_needed (median over the seeds that reached the threshold of their first epoch at
    it; null when none did), reached_fraction, best_test_accuracy (mean over seeds), epochs_run (the most any seed
    ran: the budget a null was measured within), n_seeds."""
    return (
        trainings(store)
        .group_by(KEYS + ["depth"])
        .agg(
            epochs_needed=pl.col("threshold_epoch").cast(pl.Float64).median(),
            reached_fraction=pl.col("threshold_epoch").is_not_null().cast(pl.Float64).mean(),
            best_test_accuracy=pl.col("best_test_accuracy").mean(),
            epochs_run=pl.col("epochs").max(),
            n_seeds=pl.len().cast(pl.Int64),
        )
        .sort(KEYS + ["depth"])
    )


def report_section(convergence_frame: pl.DataFrame, note: pl.DataFrame, fractions: pl.DataFrame | None) -> str:
    """The report's section on the training budget (markdown): the truth the agreement compares against, the
    convergence per σw², and with several seeds the fraction of seeds trainable per depth at the largest budget."""

    def table_md(frame: pl.DataFrame) -> str:
        head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns)
        body = [
            "| " + " | ".join("" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row) + " |"
            for row in frame.iter_rows()
        ]
        return "\n".join([head, *body])

    lines = [
        "## Training budget: is ℓ_train converged?",
        "",
        "ℓ_train read at every rung of the budget ladder from the same trainings (docs/budget.md). A σw² is "
        "*converged at B* when ℓ_train at every larger budget stays within one depth step of ℓ_train(B); the "
        "agreement figures compare against ℓ_train at the largest budget, which is the converged truth only where "
        "a σw² converged.",
        "",
        *(
            f"- {dataset} {profile} σb²={sigma_b2:g}: {text}"
            for dataset, profile, sigma_b2, text in note.select(*GROUP, "note").iter_rows()
        ),
        "",
        table_md(convergence_frame.select("dataset", "profile", "sigma_b2", "sigma_w2", "per_budget", "verdict")),
    ]
    if fractions is not None and fractions.height and fractions["n_seeds"].max() > 1:
        last = fractions.filter(pl.col("budget") == pl.col("budget").max())
        wide = last.pivot(on="depth", index=KEYS, values="fraction", sort_columns=True).sort(KEYS)
        lines += [
            "",
            f"Fraction of seeds that reached the threshold within {last['budget'][0]} epochs, per depth:",
            "",
            table_md(wide),
        ]
    return "\n".join(lines)

"""The training budget ladder (docs/budget.md): ℓ_train as a function of the budget, read off one set of trainings.

A baseline training stops at the first epoch its test accuracy reaches the threshold (``threshold_epoch``,
stored in ``train_summary``). So one training with budget B_max answers "trainable within B epochs?" for every
B ≤ B_max: yes when it reached the threshold by epoch B, no when it ran at least B epochs without reaching it (or
diverged). Reading every rung of a ladder B_1 < B_2 < … ≤ B_max this way repeats no training.

Conventions: budgets and epochs are counted in epochs from 1; a depth is the network's depth L; ℓ_train at a
budget is the deepest depth that reached the threshold within it (0 when none did: the grid's convention), with
its bracket [deepest pass, shallowest fail above it]. A "depth step" is one position in the list of allowed
depths. Pure functions: no Ray, no polars (``infoflow_ray.analysis.budget`` builds the frames from them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from infoflow_ray.search import DepthBracket


def threshold_epoch(history: Iterable[tuple[int, float]], threshold: float) -> int | None:
    """The first epoch whose test accuracy reached ``threshold``, from (epoch, test accuracy) pairs in any order
    (epochs count from 1); None when none did. What ``train_summary.threshold_epoch`` records."""
    return min((epoch for epoch, accuracy in history if accuracy >= threshold), default=None)


@dataclass(frozen=True)
class Training:
    """What the ladder needs of one finished training: its depth, the first epoch at the threshold (None: never),
    how many epochs it ran and why it stopped ('threshold', 'budget', 'diverged', 'mi_plateau')."""

    depth: int
    threshold_epoch: int | None
    epochs: int
    stop_reason: str

    def passed_within(self, budget: int) -> bool | None:
        """Whether the training reached the threshold within ``budget`` epochs; None when it cannot say (it
        stopped before ``budget`` epochs for a reason other than the threshold or divergence)."""
        if self.threshold_epoch is not None:
            return self.threshold_epoch <= budget
        if self.epochs >= budget or self.stop_reason == "diverged":
            return False
        return None


@dataclass(frozen=True)
class Rung:
    """ℓ_train of one (σw², seed) at one budget. ``bracket``: [deepest pass, shallowest fail above it] over the
    trained depths; ``determined``: no allowed depth between its ends (nor beyond an open end) is untrained or
    undecided, so more trainings at this budget could not move ℓ_train."""

    budget: int
    bracket: DepthBracket
    determined: bool

    @property
    def trainable_depth(self) -> int | None:
        """ℓ_train (0 when no depth passed); None when not determined."""
        return self.bracket.trainable_depth if self.determined else None

    def describe(self) -> str:
        low, high = self.bracket.passed, self.bracket.failed
        text = f"[{low if low is not None else '<' + 'min'}, {high if high is not None else '>max'}]"
        return f"B={self.budget}: " + (
            f"ℓ_train {self.bracket.trainable_depth} {text}" if self.determined else f"not determined {text}"
        )


def outcomes_at(trainings: Sequence[Training], budget: int) -> dict[int, bool]:
    """depth → reached the threshold within ``budget``, for the trainings that can say."""
    out = {}
    for t in trainings:
        passed = t.passed_within(budget)
        if passed is not None:
            out[t.depth] = passed
    return out


def bracket_of(depths: Sequence[int], outcomes: Mapping[int, bool]) -> DepthBracket:
    """[deepest pass, shallowest fail above it] over ``outcomes`` (depth → passed); contradictions counted: a
    failing depth shallower than a passing one."""
    passed = [d for d, ok in outcomes.items() if ok]
    failed = [d for d, ok in outcomes.items() if not ok]
    low = max(passed, default=None)
    above = [d for d in failed if low is None or d > low]
    return DepthBracket(low, min(above, default=None), sum(1 for f in failed for p in passed if f < p))


def rung(depths: Sequence[int], trainings: Sequence[Training], budget: int) -> Rung:
    """ℓ_train of one (σw², seed) at ``budget`` from its ``trainings`` (any subset of ``depths``)."""
    ordered = sorted(set(depths))
    outcomes = outcomes_at(trainings, budget)
    b = bracket_of(ordered, outcomes)
    lo = ordered.index(b.passed) if b.passed is not None else -1
    hi = ordered.index(b.failed) if b.failed is not None else len(ordered)
    determined = all(d in outcomes for d in ordered[lo + 1 : hi])  # nothing untried in between
    return Rung(budget, b, determined and (lo + 1 == hi))


def ladder(depths: Sequence[int], trainings: Sequence[Training], budgets: Sequence[int]) -> list[Rung]:
    """ℓ_train of one (σw², seed) at every budget of the ladder, from the same trainings."""
    return [rung(depths, trainings, b) for b in budgets]


# --- convergence -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Convergence:
    """Whether ℓ_train of one σw² has converged in the budget.

    converged_at: the smallest budget B of the ladder from which ℓ_train at every larger budget stays within one
    depth step of ℓ_train(B) (None: not converged by the largest budget — the last rung alone proves nothing);
    values: (budget, ℓ_train or None when not determined), in order; non_monotone: every place where a larger
    budget gave a shallower ℓ_train, in words (recorded, never hidden).
    """

    converged_at: int | None
    values: tuple[tuple[int, int | None], ...]
    non_monotone: tuple[str, ...]

    def describe(self) -> str:
        last = self.values[-1][0] if self.values else 0
        text = f"converged at B={self.converged_at}" if self.converged_at is not None else f"not converged by B={last}"
        return text + ("; non-monotone: " + "; ".join(self.non_monotone) if self.non_monotone else "")


def depth_position(depths: Sequence[int], value: int) -> int:
    """Position of ℓ_train in the allowed depths, in depth steps (0, 'none trained', is one step below the first;
    a value between allowed depths counts as the deeper one's position)."""
    ordered = sorted(set(depths))
    if value <= 0:
        return -1
    return next((i for i, d in enumerate(ordered) if d >= value), len(ordered))


def convergence(depths: Sequence[int], values: Sequence[tuple[int, int | None]], steps: int = 1) -> Convergence:
    """The convergence rule over ``values`` ((budget, ℓ_train or None), budgets increasing): converged at the
    smallest budget B_k with a larger budget after it such that every ℓ_train(B_j), j ≥ k, is determined and
    within ``steps`` depth steps of ℓ_train(B_k)."""
    values = tuple((int(b), v) for b, v in values)
    budgets = [b for b, _ in values]
    if budgets != sorted(set(budgets)):
        raise ValueError(f"budgets must be strictly increasing, got {budgets}")
    non_monotone = []
    known = [(b, v) for b, v in values if v is not None]
    for (b0, v0), (b1, v1) in zip(known, known[1:]):
        if v1 < v0:
            non_monotone.append(f"ℓ_train fell from {v0} at B={b0} to {v1} at B={b1}")
    converged_at = None
    for k in range(len(values) - 1):
        tail = values[k:]
        if any(v is None for _, v in tail):
            continue
        ref = depth_position(depths, tail[0][1])
        if all(abs(depth_position(depths, v) - ref) <= steps for _, v in tail):
            converged_at = values[k][0]
            break
    return Convergence(converged_at, values, tuple(non_monotone))


# --- several seeds -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSpread:
    """ℓ_train of one σw² at one budget over seeds: per depth the fraction of the seeds that decided it which
    trained there, and the spread of the per-seed ℓ_train (None where no seed's is determined)."""

    budget: int
    fraction: dict[int, float]  # depth → fraction of seeds that reached the threshold within the budget
    seeds: dict[int, int]  # depth → how many seeds decided that depth
    low: int | None  # the shallowest per-seed ℓ_train
    high: int | None  # the deepest per-seed ℓ_train

    @property
    def disagree(self) -> bool:
        """Whether the seeds disagree at some depth (a fraction strictly between 0 and 1)."""
        return any(0 < f < 1 for f in self.fraction.values())


def seed_spread(depths: Sequence[int], by_seed: Mapping[int, Sequence[Training]], budget: int) -> SeedSpread:
    """The fraction of seeds trainable at each depth within ``budget``, and the spread of ℓ_train over seeds."""
    passes: dict[int, int] = {}
    counts: dict[int, int] = {}
    values = []
    for trainings in by_seed.values():
        for depth, ok in outcomes_at(trainings, budget).items():
            counts[depth] = counts.get(depth, 0) + 1
            passes[depth] = passes.get(depth, 0) + int(ok)
        value = rung(depths, trainings, budget).trainable_depth
        if value is not None:
            values.append(value)
    fraction = {d: passes[d] / counts[d] for d in sorted(counts)}
    return SeedSpread(
        budget, fraction, dict(sorted(counts.items())), min(values, default=None), max(values, default=None)
    )


def close_call(best_accuracy: float, threshold: float, margin: float) -> bool:
    """Whether a training's outcome is close: its best test accuracy within ``margin`` of the threshold (either
    side). Where it is, or where seeds disagree, the search may spend extra seeds."""
    return abs(best_accuracy - threshold) <= margin

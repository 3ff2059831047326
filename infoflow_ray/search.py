"""Searching instead of gridding (method §9): the decisions of the adaptive search, as pure functions.

Two searches replace most of a grid's trainings (seed 001: the cutoff curves are "amenable to a binary search"):

- ``depth_search``: ℓ_train of one (σw², seed) by galloping and bisecting over the allowed depths, starting from
  the cascade's prediction. Trainability is close to monotone in depth but not exactly (seeds, the epoch budget),
  so the answer is a *bracket* — the deepest depth seen to pass and the shallowest depth above it seen to fail —
  checked one step beyond each end, and every contradiction met (a shallower depth failing below a deeper one
  that passed) is reported, never hidden.
- ``interval_search``: the σw² interval in which a depth-L network is predicted trainable (cutoff ℓ_c ≥ L), by
  bisecting each of its two edges — each on one monotone flank of ℓ_c(σw²) — from a coarse start down to a
  tolerance. Each step is one cascade.
- ``locate_tolerant_peak``: where the cutoffs peak in σw² (the critical point), with the bracket that holds it.

Every function is a *replay*: it takes the outcomes known so far and returns the decisions taken, in order, and
what it asks next (None when done). Because each decision depends only on the outcomes before it, a search that
was killed and is run again over the stored results takes the same decisions, asks for no finished task again,
and reaches the same answer. No Ray, no Parquet here; ``infoflow_ray.sweep.adaptive`` runs the asked tasks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """One step of a search: what was asked (a depth or a σw²), why, and what came back (None: not yet)."""

    asked: float
    reason: str
    outcome: bool | None = None
    value: float | None = None  # what came back as a number: best test accuracy, or the cutoff layer
    contradiction: str = ""  # non-empty when this outcome contradicts an earlier one
    bracket: tuple[float | None, float | None] = (None, None)  # the answer after this step (see each search)


@dataclass(frozen=True)
class DepthBracket:
    """ℓ_train of one (σw², seed) as a bracket over the allowed depths.

    passed: deepest depth seen to reach the threshold (None: none did — ℓ_train below the shallowest depth);
    failed: shallowest depth above ``passed`` seen to fail (None: every depth above passed — ℓ_train at or
    beyond the deepest allowed depth). ``trainable_depth`` is ``passed`` or 0, the grid's convention.
    """

    passed: int | None
    failed: int | None
    contradictions: int

    @property
    def trainable_depth(self) -> int:
        return self.passed or 0


@dataclass(frozen=True)
class DepthSearch:
    decisions: list[Decision]
    next_depth: int | None  # the depth to train next; None when the search is done
    bracket: DepthBracket

    @property
    def done(self) -> bool:
        return self.next_depth is None


def nearest_depth(depths: Sequence[int], prediction: float) -> int:
    """The allowed depth closest to a predicted depth (the shallower on a tie); the deepest for NaN/inf."""
    ordered = sorted(depths)
    if not math.isfinite(prediction):
        return ordered[-1]
    return min(ordered, key=lambda d: (abs(d - prediction), d))


def depth_search(
    depths: Sequence[int], start: int, outcomes: Mapping[int, bool], resolution: int | None = None, confirm: bool = True
) -> DepthSearch:
    """Replay the depth search of one (σw², seed) over ``outcomes`` (depth → reached the threshold).

    depths: the allowed depths; start: the first depth to train (one of them: the cascade's prediction);
    resolution: the bracket is closed when ``failed − passed ≤ resolution`` layers (None: when they are
    neighbours in ``depths``); confirm: once closed, back each end by a second measurement beyond it — train
    the next allowed depth shallower than ``passed`` (it should pass) unless a shallower depth passed already,
    and the next deeper than ``failed`` (it should fail) unless a deeper depth failed already. A confirming
    depth that passes above ``failed`` moves the bracket up and the search goes on from there.

    Gallop, from the start: while everything passes, step deeper by 1, 1, 2, 4, … allowed depths; while
    everything fails, step shallower the same way; then bisect (in positions of ``depths``) between the
    deepest pass and the shallowest fail above it.
    """
    ordered = sorted(set(depths))
    if start not in ordered:
        raise ValueError(f"start depth {start} is not one of the allowed depths {ordered}")
    s = ordered.index(start)
    passed: list[int] = []  # positions
    failed: list[int] = []
    decisions: list[Decision] = []
    ask, reason = s, f"start at the cascade's prediction (depth {start})"
    while ask is not None:
        depth = ordered[ask]
        if depth not in outcomes:
            return DepthSearch(decisions, depth, _bracket(ordered, passed, failed))
        ok = bool(outcomes[depth])
        contradiction = ""
        if ok and failed and min(failed) < ask:
            contradiction = f"depth {depth} passed although depth {ordered[min(failed)]} failed"
        elif not ok and passed and max(passed) > ask:
            contradiction = f"depth {depth} failed although depth {ordered[max(passed)]} passed"
        (passed if ok else failed).append(ask)
        now = _bracket(ordered, passed, failed)
        decisions.append(Decision(depth, reason, ok, contradiction=contradiction, bracket=(now.passed, now.failed)))
        ask, reason = _next_position(ordered, s, passed, failed, resolution, confirm)
    return DepthSearch(decisions, None, _bracket(ordered, passed, failed))


def _ends(passed: list[int], failed: list[int]) -> tuple[int | None, int | None]:
    """Positions of the deepest pass and of the shallowest fail above it (None where there is none)."""
    lo = max(passed) if passed else None
    above = [f for f in failed if lo is None or f > lo]
    return lo, (min(above) if above else None)


def _bracket(ordered: list[int], passed: list[int], failed: list[int]) -> DepthBracket:
    lo, hi = _ends(passed, failed)
    contradictions = sum(1 for f in failed for p in passed if f < p)
    return DepthBracket(
        ordered[lo] if lo is not None else None, ordered[hi] if hi is not None else None, contradictions
    )


def _next_position(
    ordered: list[int], s: int, passed: list[int], failed: list[int], resolution: int | None, confirm: bool
) -> tuple[int | None, str]:
    n, seen = len(ordered), set(passed) | set(failed)
    lo, hi = _ends(passed, failed)
    if lo is None:  # everything failed so far: gallop shallower
        if hi == 0:
            return None, ""
        nxt = max(0, hi - max(1, s - hi))
        return nxt, f"gallop shallower: depth {ordered[hi]} failed"
    if hi is None:  # everything above the deepest pass is untried: gallop deeper
        if lo == n - 1:
            return None, ""
        nxt = min(n - 1, lo + max(1, lo - s))
        return nxt, f"gallop deeper: depth {ordered[lo]} passed"
    closed = hi - lo <= 1 or (resolution is not None and ordered[hi] - ordered[lo] <= resolution)
    if not closed:
        mid = (lo + hi) // 2
        return mid, f"bisect between depth {ordered[lo]} (passed) and {ordered[hi]} (failed)"
    # confirm each end by a second depth beyond it, unless one was measured there already (a pass below the
    # deepest pass, a fail above the shallowest fail)
    if confirm and lo - 1 >= 0 and not any(p < lo for p in passed) and lo - 1 not in seen:
        return lo - 1, f"confirm: one step shallower than the deepest pass ({ordered[lo]}) should pass"
    if confirm and hi + 1 < n and not any(f > hi for f in failed) and hi + 1 not in seen:
        return hi + 1, f"confirm: one step deeper than the shallowest fail ({ordered[hi]}) should fail"
    return None, ""


def worst_case_trainings(depths: Sequence[int], resolution: int | None = None, confirm: bool = True) -> int:
    """The most trainings one depth search can need over ``depths``, over every start and every monotone
    outcome (trainable up to some depth, not beyond): the planned worst case that ``--dry-run`` reports."""
    ordered = sorted(set(depths))
    worst = 0
    for start in ordered:
        for edge in range(len(ordered) + 1):  # the first `edge` depths pass
            outcomes = {d: i < edge for i, d in enumerate(ordered)}
            worst = max(worst, len(depth_search(ordered, start, outcomes, resolution, confirm).decisions))
    return worst


def worst_case_chain_trainings(
    depths: Sequence[int], resolution: int | None = None, confirm: bool = True, rungs: int = 1
) -> int:
    """The most trainings the search of one (σw², seed) can need when ``rungs`` budgets of the ladder are each
    resolved (``search.resolve_rungs``: every smaller rung runs the same depth search over the outcomes at its
    budget): each of the ``rungs`` searches trains at most ``worst_case_trainings`` depths, and no depth is
    trained twice, so at most min(rungs × that, the number of depths). ``rungs = 1``: the search at the full
    budget alone."""
    return min(rungs * worst_case_trainings(depths, resolution, confirm), len(set(depths)))


# --- the σw² interval at a target depth -----------------------------------------------------------------------


@dataclass(frozen=True)
class IntervalEdge:
    """One edge of the predicted trainable σw² interval: ``inside`` (ℓ_c ≥ L) and ``outside`` (ℓ_c < L) are the
    nearest σw² measured on either side; None where the edge lies beyond the searched range."""

    inside: float | None
    outside: float | None

    @property
    def estimate(self) -> float | None:
        if self.inside is None or self.outside is None:
            return self.inside
        return 0.5 * (self.inside + self.outside)

    @property
    def width(self) -> float:
        return math.inf if self.inside is None or self.outside is None else abs(self.inside - self.outside)


@dataclass(frozen=True)
class IntervalSearch:
    decisions: list[Decision]
    next_sigma_w2: tuple[float, ...]  # the σw² to run cascades at next (one per open edge); () when done
    low: IntervalEdge | None  # None when no σw² was predicted trainable at L
    high: IntervalEdge | None
    contradictions: int

    @property
    def done(self) -> bool:
        return not self.next_sigma_w2


def interval_search(
    coarse: Sequence[float], target_depth: int, cutoffs: Mapping[float, float], tolerance: float, digits: int = 6
) -> IntervalSearch:
    """Replay the search for the σw² interval where the cutoff reaches ``target_depth`` (L).

    coarse: the starting σw² values (each a cascade); cutoffs: σw² → cutoff layer ℓ_c (NaN counts as outside);
    tolerance: stop bisecting an edge when its inside and outside σw² are this close. Both edges are bisected
    side by side (one cascade each per step); new σw² are midpoints rounded to ``digits`` decimals. The interval
    is the hull of the inside points: an outside point within it is a contradiction (ℓ_c is not unimodal
    there), recorded and counted. A decision's bracket is (low edge, high edge) estimated after it.
    """
    ordered = sorted(set(float(s) for s in coarse))
    decisions: list[Decision] = []
    seen: dict[float, bool] = {}

    def record(s: float, reason: str) -> None:
        value = float(cutoffs[s])
        ok = math.isfinite(value) and value >= target_depth
        inside_before = [p for p in seen if seen[p]]
        seen[s] = ok
        low, high, _ = interval_edges_of(seen)
        contradiction = ""
        if not ok and low is not None and low.inside < s < high.inside:
            contradiction = f"ℓ_c < {target_depth} at σw² {s:g}, inside the interval [{low.inside:g}, {high.inside:g}]"
        elif ok and inside_before:
            nearest = min(inside_before, key=lambda p: abs(p - s))
            dips = sorted(p for p in seen if not seen[p] and min(s, nearest) < p < max(s, nearest))
            if dips:
                contradiction = (
                    f"ℓ_c ≥ {target_depth} at σw² {s:g} and {nearest:g} but not at "
                    + ", ".join(f"{p:g}" for p in dips)
                    + " between them"
                )
        decisions.append(
            Decision(
                s,
                reason,
                ok,
                value=value,
                contradiction=contradiction,
                bracket=(low.estimate if low else None, high.estimate if high else None),
            )
        )

    missing = tuple(s for s in ordered if s not in cutoffs)
    if missing:
        return IntervalSearch(decisions, missing, None, None, 0)
    for s in ordered:
        record(s, "coarse start")
    while True:
        low, high, contradictions = interval_edges_of(seen)
        asks = []
        for side, edge in (("low", low), ("high", high)):
            if edge is None or edge.outside is None or edge.width <= tolerance:
                continue
            mid = round(0.5 * (edge.inside + edge.outside), digits)
            if mid in seen:
                continue  # the tolerance is finer than the rounding: this edge is as good as it gets
            asks.append(
                (
                    mid,
                    f"bisect the {side} edge between σw² {edge.outside:g} (ℓ_c < {target_depth}) and "
                    f"{edge.inside:g} (ℓ_c ≥ {target_depth})",
                )
            )
        if not asks:
            return IntervalSearch(decisions, (), low, high, contradictions)
        unknown = tuple(mid for mid, _ in asks if mid not in cutoffs)
        if unknown:
            return IntervalSearch(decisions, unknown, low, high, contradictions)
        for mid, reason in asks:
            record(mid, reason)


def interval_edges_of(seen: Mapping[float, bool]) -> tuple[IntervalEdge | None, IntervalEdge | None, int]:
    """The two edges of the hull of the inside σw² (σw² → ℓ_c ≥ L) and how many outside σw² lie within it;
    (None, None, 0) when no σw² is inside."""
    points = sorted(seen)
    ins = [s for s in points if seen[s]]
    if not ins:
        return None, None, 0
    first, last = ins[0], ins[-1]
    below = [s for s in points if s < first]
    above = [s for s in points if s > last]
    contradictions = sum(1 for s in points if first < s < last and not seen[s])
    return (
        IntervalEdge(first, below[-1] if below else None),
        IntervalEdge(last, above[0] if above else None),
        contradictions,
    )


def worst_case_cascades(coarse: Sequence[float], tolerance: float) -> int:
    """Cascades (per seed) the interval search needs at most: the coarse start plus both edges bisected from
    the widest coarse gap down to ``tolerance``."""
    ordered = sorted(set(coarse))
    gap = max((b - a for a, b in zip(ordered, ordered[1:])), default=0.0)
    steps = math.ceil(math.log2(gap / tolerance)) if gap > tolerance else 0
    return len(ordered) + 2 * steps


# --- the peak of the cutoffs: the critical point --------------------------------------------------------------


@dataclass(frozen=True)
class Peak:
    """Where ℓ_c(σw²) peaks. ``estimate``: the centre of the tied maximum; (low, high): the nearest measured σw²
    outside the tied maximum, the bracket that holds a unimodal curve's peak (None: it reaches the range's end).
    ``tied``: how many measured σw² share the maximum (within ``tie`` layers)."""

    estimate: float
    low: float | None
    high: float | None
    maximum: float
    tied: int


def locate_tolerant_peak(points: Mapping[float, float], tie: float = 0.5) -> Peak | None:
    """The tolerant peak of σw² → cutoff (finite values only): every σw² within ``tie`` layers of the maximum
    counts as tied, the estimate is the middle of the tied run and the bracket the measured σw² either side.
    None when there are no finite values. The adaptive search steers by it; the report's agreement table uses
    the other rule, the exact peak (``analysis.frames._exact_peaks``: ties only at the maximum itself, and no
    peak at all where the curve is flat or has two maxima)."""
    finite = sorted((s, c) for s, c in points.items() if math.isfinite(c))
    if not finite:
        return None
    maximum = max(c for _, c in finite)
    top = [s for s, c in finite if c >= maximum - tie]
    sigmas = [s for s, _ in finite]
    below = [s for s in sigmas if s < top[0]]
    above = [s for s in sigmas if s > top[-1]]
    return Peak(0.5 * (top[0] + top[-1]), below[-1] if below else None, above[0] if above else None, maximum, len(top))

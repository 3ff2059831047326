"""The fully connected tanh network of the paper (method §1), ``model.TanhNetwork``: the 'mlp' family.

Sizes: ``NetworkSpec.widths`` names a profile or lists n_0..n_L. 'wide' keeps the input width n_0 through
layer L−2 and ends in the reference's n_0 → 400 → n_out head; 'shrinking' interpolates linearly from n_0 to
n_out, n_l = ⌈n_0 + (n_out − n_0)·l/L⌉; 'constant-N' (e.g. 'constant-32') has N units in every hidden layer,
n_0 → N → … → N → n_out (a narrow network at any depth, where mean field's large-width limit weakens). Its
cascades train with the hand-written engine of ``infoflow_ray.cascade`` (decoders tanh(V a + c) with gradients
written out, several networks stacked into one batched matmul on a GPU), and its baseline trainings can be
stacked (``batched_training``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from infoflow_ray import cascade
from infoflow_ray.config import CascadeSpec, NetworkSpec
from infoflow_ray.errors import require
from infoflow_ray.families.base import Family
from infoflow_ray.model import TanhNetwork, stack_parameters

WIDTH_PROFILES = ("wide", "shrinking")
CONSTANT = "constant-"  # 'constant-N': N hidden units in every hidden layer
WIDE_PENULTIMATE_WIDTH = 400  # the reference's 784 -> 400 -> 10 head of the `wide` profile
MIN_DEPTH = 3  # the named profiles end in a fixed head


def check_widths(spec: NetworkSpec) -> None:
    """The widths of a fully connected family: a profile name, or a tuple of depth+1 positive integers from
    n_inputs to n_outputs. A named profile needs MIN_DEPTH layers; a tuple may be one layer deep (seed 002's
    12-5-1 network has depth 2)."""
    min_depth = MIN_DEPTH if isinstance(spec.widths, str) else 1
    require(spec.depth >= min_depth, "depth", spec.depth, f"an integer >= {min_depth}")
    allowed = (
        f"one of {', '.join(WIDTH_PROFILES)}, constant-N (N hidden units, e.g. constant-32) "
        "or a tuple of depth+1 positive integers"
    )
    if isinstance(spec.widths, str):
        require(
            spec.widths in WIDTH_PROFILES or constant_width(spec.widths) is not None, "widths", spec.widths, allowed
        )
        return
    require(isinstance(spec.widths, tuple), "widths", spec.widths, allowed)
    require(
        len(spec.widths) == spec.depth + 1 and all(isinstance(w, int) and w > 0 for w in spec.widths),
        "widths",
        spec.widths,
        f"a tuple of depth+1 = {spec.depth + 1} positive integers",
    )
    require(
        spec.widths[0] == spec.n_inputs and spec.widths[-1] == spec.n_outputs,
        "widths",
        spec.widths,
        f"a tuple starting with n_inputs={spec.n_inputs} and ending with n_outputs={spec.n_outputs}",
    )


def constant_width(profile: str) -> int | None:
    """N of a 'constant-N' profile name (N a positive integer), else None."""
    digits = profile[len(CONSTANT) :] if profile.startswith(CONSTANT) else ""
    return int(digits) if digits.isdigit() and int(digits) > 0 and digits == str(int(digits)) else None


def widths_of(spec: NetworkSpec) -> tuple[int, ...]:
    """n_0..n_L of the widths profile (module docstring)."""
    L, n_in, n_out = spec.depth, spec.n_inputs, spec.n_outputs
    if spec.widths == "wide":
        return (n_in,) * (L - 1) + (WIDE_PENULTIMATE_WIDTH, n_out)
    if spec.widths == "shrinking":
        return tuple(math.ceil(n_in + (n_out - n_in) * i / L) for i in range(L + 1))
    if isinstance(spec.widths, str):
        return (n_in,) + (constant_width(spec.widths),) * (L - 1) + (n_out,)
    return tuple(spec.widths)


def cutoff_last_layer(spec: NetworkSpec, layer_range: str) -> int:
    """The last layer the cutoff reads. ``constant_width`` follows the reference: for 'wide' the n_0 → 400 and
    400 → n_out head layers are dropped (L−2); for 'constant-N' the n_out-unit output layer L is dropped (its N-unit
    run is layers 1..L−1); 'shrinking' and explicit widths have no constant-width run, so all L layers are used."""
    if layer_range == "constant_width" and spec.widths == "wide":
        return spec.depth - 2
    if layer_range == "constant_width" and isinstance(spec.widths, str) and constant_width(spec.widths):
        return spec.depth - 1
    return spec.depth


class MLP(Family):
    """'mlp': ``model.TanhNetwork``, the hand-written cascade engine, stacked baseline trainings."""

    name = "mlp"
    spec_fields = ("widths",)

    def check(self, spec: NetworkSpec) -> None:
        check_widths(spec)

    def layer_shapes(self, spec: NetworkSpec) -> tuple[tuple[int, ...], ...]:
        return tuple((n,) for n in widths_of(spec))

    def layer_widths(self, spec: NetworkSpec) -> tuple[int, ...]:
        return widths_of(spec)

    def profile_name(self, spec: NetworkSpec) -> str:
        """'wide', 'shrinking', 'constant-N' or 'custom' (an explicit tuple)."""
        return spec.widths if isinstance(spec.widths, str) else "custom"

    def owns_profile(self, profile: str) -> bool:
        return profile in (*WIDTH_PROFILES, "custom") or constant_width(profile) is not None

    def cutoff_last_layer(self, spec: NetworkSpec, layer_range: str = "constant_width") -> int:
        return cutoff_last_layer(spec, layer_range)

    def build(self, spec: NetworkSpec, seed: int, device: torch.device | str = "cpu") -> TanhNetwork:
        return TanhNetwork(spec, seed, device)

    def train_cascades(
        self, networks: list, train_x: Tensor, spec: CascadeSpec, seeds: list[int], progress=None
    ) -> list[cascade.TrainedCascade]:
        """``cascade.train_cascades``: networks of equal widths trained together (lockstep) or one by one."""
        return cascade.train_cascades(networks, train_x, spec, seeds, progress)

    def reconstruct_in_chunks(self, network, decoders, x: Tensor, layers_per_chunk: int):
        return cascade.reconstruct_in_chunks(network, decoders, x, layers_per_chunk)

    def stacked_parameters(self, networks: list) -> tuple[list[Tensor], list[Tensor]]:
        return stack_parameters(networks)

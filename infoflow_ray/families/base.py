"""The ``Family`` interface: everything the cascades, the trainings, the probes and the tables ask of a network
family. One module per family subclasses it (``mlp``, ``resmlp``, ``conv``) and ``families/__init__.py`` registers
an instance under its name; a ``NetworkSpec``'s ``architecture`` selects one.

A family's network (``build``) is an ``nn.Module`` with ``spec`` (its ``NetworkSpec``) and ``depth`` L, offering

- ``forward(x)``: the output (B, n_out) of input rows x (B, n_0) (images as rows, as every dataset gives them);
- ``activations(x)``: [a_0 = x, a_1, …, a_L] of the frozen network (a_l of any shape (B, …)), and
  ``next_activation(l, a_{l−1})``: layer l alone;
- ``decoder(l)``: a fresh one-layer decoder module mapping a_l back to a_{l−1} (method §2).

The cascade methods below default to ``families.cascade`` (autograd, every decoder steps on each batch): a new
family only writes ``build``, ``layer_shapes`` and ``profile_name`` (and ``check`` for its own settings). The MLP
overrides them with its hand-written engine (``infoflow_ray.cascade``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from infoflow_ray.cascade import ProgressFn, TrainedCascade
from infoflow_ray.config import CascadeSpec, NetworkSpec
from infoflow_ray.families import cascade as module_cascade


class Family:
    """A network family. Subclasses set ``name`` and write ``build``, ``layer_shapes`` and ``profile_name``.

    Attributes:
        name: the ``NetworkSpec.architecture`` that selects it.
        residual: whether its layers carry an identity stream, so that mean-field theory's ordered/chaotic
            transition (an exponential depth scale) does not describe it; reports and figures say so.
        spec_fields: the ``NetworkSpec`` fields it reads beyond σw², σb², depth and the data's sizes (a task's
            id hashes 'channels' only for a family that reads it, so older ids stay valid).
    """

    name: str = ""
    residual: bool = False
    spec_fields: tuple[str, ...] = ()

    # ---- settings, sizes and shapes -------------------------------------------------------------------------

    def check(self, spec: NetworkSpec) -> None:
        """Refuse a spec this family cannot build (``ConfigError``, one line); nothing by default."""

    def layer_shapes(self, spec: NetworkSpec) -> tuple[tuple[int, ...], ...]:
        """The shape of one image's a_l for l = 0..L (a_0: the input row (n_0,))."""
        raise NotImplementedError

    def layer_widths(self, spec: NetworkSpec) -> tuple[int, ...]:
        """Units n_0..n_L of each a_l (its shape flattened), length depth+1."""
        return tuple(math.prod(shape) for shape in self.layer_shapes(spec))

    def profile_name(self, spec: NetworkSpec) -> str:
        """A short label of the architecture for the tables' ``profile`` column ('wide', 'cnn-c64', …)."""
        raise NotImplementedError

    def owns_profile(self, profile: str) -> bool:
        """Whether a ``profile`` value of a table was written by this family (``families.of_profile``)."""
        return profile.split("-")[0] == self.name

    def cutoff_last_layer(self, spec: NetworkSpec, layer_range: str = "constant_width") -> int:
        """The deepest layer the cutoff is taken over: with ``constant_width`` the last layer before a head that
        changes the shape (a family with such a head says where), with ``all`` (and by default) every layer L."""
        return spec.depth

    def first_body_layer(self, spec: NetworkSpec) -> int:
        """The first layer l >= 1 whose a_l has the shape of a_{l+1} (after a stem that changes the shape: 3 for the
        convolutional families), or 1 when no two consecutive layers have one shape."""
        shapes = self.layer_shapes(spec)
        return next((layer for layer in range(1, spec.depth) if shapes[layer] == shapes[layer + 1]), 1)

    # ---- networks and their cascades ------------------------------------------------------------------------

    def build(self, spec: NetworkSpec, seed: int, device: torch.device | str = "cpu") -> torch.nn.Module:
        """The untrained network of ``spec``, its weights drawn from ``seeding.generator(seed, "network")``."""
        raise NotImplementedError

    def train_cascades(
        self,
        networks: list,
        train_x: Tensor,
        spec: CascadeSpec,
        seeds: list[int],
        progress: ProgressFn | None = None,
    ) -> list[TrainedCascade]:
        """The decoder cascades of ``networks`` (frozen), network k's decoders seeded with ``seeds[k]``; by default
        one after another with ``families.cascade.train_module_cascade``."""
        return [
            module_cascade.train_module_cascade(net, train_x, spec, seed, progress)
            for net, seed in zip(networks, seeds)
        ]

    def reconstruct_in_chunks(
        self, network, decoders, x: Tensor, layers_per_chunk: int
    ) -> Iterator[tuple[int, Tensor]]:
        """(first_layer, reconstructions (n, M, n_0)) for consecutive chunks of layers covering 1..L."""
        return module_cascade.reconstruct_in_chunks(network, decoders, x, layers_per_chunk)

    def stacked_parameters(self, networks: list) -> tuple[list[Tensor], list[Tensor]] | None:
        """For batched baseline trainings (``batched_training``): the networks' weights (G, n_l, n_{l−1}) and
        biases (G, 1, n_l) per layer, when a layer of this family is tanh(W a + b) of them; None (the default)
        when it is not, and the trainings run one by one."""
        return None

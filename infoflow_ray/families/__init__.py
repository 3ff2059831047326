"""Network families: what the cascades, the baselines and the probes need from an architecture.

A family is a network class built from a ``NetworkSpec`` and a seed that offers

- ``forward(x)``: the output (B, n_out) of input rows x (B, n_0) (images as rows, as every dataset gives them);
- ``activations(x)``: [a_0 = x, a_1, …, a_L] of the frozen network (a_l of any shape (B, …)), and
  ``next_activation(l, a_{l−1})``: layer l alone;
- ``decoder(l)``: a fresh one-layer decoder module mapping a_l back to a_{l−1} (method §2), and
  ``bounded(l)``: whether a_l is a tanh output (then its decoder ends in tanh, else it is linear).

Families: ``mlp`` (``infoflow_ray.model.TanhNetwork``, whose cascades train with the hand-written engine of
``infoflow_ray.cascade``), ``resmlp`` (``families.resmlp``), ``cnn`` and ``resnet`` (``families.conv``). The
cascades of every family but ``mlp`` train with ``families.cascade`` (autograd, all layers per batch). Adding a
family is one new module registered in ``FAMILIES`` below; the orchestration reads only ``NetworkSpec``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from infoflow_ray.config import NetworkSpec
from infoflow_ray.model import TanhNetwork


def build(spec: NetworkSpec, seed: int, device: torch.device | str = "cpu"):
    """The untrained network of ``spec`` (its family's class), seeded, on ``device``."""
    return FAMILIES[spec.architecture](spec, seed, device)


def train_cascades(networks: list, train_x: Tensor, spec, seeds: list[int], progress=None):
    """``cascade.train_cascades`` for MLPs; ``families.cascade.train_module_cascade`` (one by one) otherwise."""
    from infoflow_ray import cascade
    from infoflow_ray.families.cascade import train_module_cascade

    if all(type(net) is TanhNetwork for net in networks):
        return cascade.train_cascades(networks, train_x, spec, seeds, progress)
    return [train_module_cascade(net, train_x, spec, seed, progress) for net, seed in zip(networks, seeds)]


def reconstruct_in_chunks(network, decoders, x: Tensor, layers_per_chunk: int):
    """(first_layer, reconstructions (n, M, n_0)) for consecutive chunks of layers, for any family."""
    from infoflow_ray import cascade
    from infoflow_ray.families.cascade import reconstruct_in_chunks as module_chunks

    if type(network) is TanhNetwork:
        return cascade.reconstruct_in_chunks(network, decoders, x, layers_per_chunk)
    return module_chunks(network, decoders, x, layers_per_chunk)


def _conv(spec, seed, device):
    from infoflow_ray.families.conv import ConvNetwork

    return ConvNetwork(spec, seed, device)


def _resmlp(spec, seed, device):
    from infoflow_ray.families.resmlp import ResidualMLP

    return ResidualMLP(spec, seed, device)


FAMILIES = {"mlp": TanhNetwork, "resmlp": _resmlp, "cnn": _conv, "resnet": _conv}

"""Network families behind one interface (``families.base.Family``), registered by name.

``NetworkSpec.architecture`` selects a family: ``mlp`` (``families.mlp``: ``model.TanhNetwork`` and the
hand-written cascade engine of ``infoflow_ray.cascade``), ``resmlp`` (``families.resmlp``), ``cnn`` and
``resnet`` (``families.conv``). Everything that builds a network, trains its cascades or asks for its sizes goes
through here:

>>> from infoflow_ray import families
>>> from infoflow_ray.config import NetworkSpec
>>> spec = NetworkSpec(sigma_w2=1.76, depth=6, architecture="cnn", channels=4)
>>> families.get("cnn").layer_shapes(spec)[1:3]  # a_1 and a_2 of one image
((4, 28, 28), (4, 14, 14))
>>> network = families.build(spec, seed=0)
>>> [tuple(a.shape) for a in network.activations(torch.zeros(2, 784))][-1]
(2, 10)

The registry itself is ``infoflow_ray.family_registry`` (a leaf ``config`` looks families up in). A new family is
one module: subclass ``Family`` (``build``, ``layer_shapes``, ``profile_name``; ``check`` for its
own settings) and ``register`` an instance; its cascades then train with ``families.cascade``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from infoflow_ray.families.base import Family
from infoflow_ray.families.conv import Conv
from infoflow_ray.families.mlp import MLP
from infoflow_ray.families.resmlp import ResMLP
from infoflow_ray.family_registry import FAMILIES, get, of_profile, register

__all__ = ["FAMILIES", "Family", "build", "get", "of_profile", "reconstruct_in_chunks", "register", "train_cascades"]

for _family in (MLP(), Conv("cnn", residual=False), Conv("resnet", residual=True), ResMLP()):
    register(_family)


def build(spec, seed: int, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The untrained network of ``spec`` (its family's), seeded, on ``device``."""
    return spec.family.build(spec, seed, device)


def train_cascades(networks: list, train_x: Tensor, spec, seeds: list[int], progress=None) -> list:
    """The cascades of ``networks``, network k's seeded with ``seeds[k]``, each family's networks trained together
    by their family (``Family.train_cascades``); in the order of ``networks``."""
    if len(networks) != len(seeds):
        raise ValueError(f"need one seed per network, got {len(networks)} networks and {len(seeds)} seeds")
    out: list = [None] * len(networks)
    for name in dict.fromkeys(net.spec.architecture for net in networks):
        index = [i for i, net in enumerate(networks) if net.spec.architecture == name]
        trained = get(name).train_cascades(
            [networks[i] for i in index], train_x, spec, [seeds[i] for i in index], progress
        )
        for i, t in zip(index, trained):
            out[i] = t
    return out


def reconstruct_in_chunks(network, decoders, x: Tensor, layers_per_chunk: int):
    """(first_layer, reconstructions (n, M, n_0)) for consecutive chunks of layers, by the network's family."""
    return network.spec.family.reconstruct_in_chunks(network, decoders, x, layers_per_chunk)

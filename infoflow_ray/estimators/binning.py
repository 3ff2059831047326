"""Binning (Shwartz-Ziv & Tishby 2017; seed 002): 'binning' and seed 002's 'binning_extended' over copies.

T's states are the distinct rows of a layer's activations cut into ``n_bins`` equal bins (``discrete.bin_indices``).
For a deterministic network each input has one T, so I(X;T) = H(T) ≤ ln N. In nats; pure torch, float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators.checks import check_layer
from infoflow_ray.estimators.discrete import bin_indices, code_entropy, dense_codes, discrete_mi
from infoflow_ray.estimators.registry import register, register_layer


def binned_mi(
    activations: Tensor,
    labels: Tensor,
    n_bins: int = 30,
    range: tuple[float, float] | None = None,
    x_ids: Tensor | None = None,
) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in nats from binned activations (Shwartz-Ziv & Tishby 2017, seed 002).

    activations: (N, n); labels: (N,) int. T's states are the distinct rows of ``bin_indices``. X is the
    identity of each sample: all N are distinct unless ``x_ids`` (N,) int gives equal ids to repeated inputs.
    I(X;T) = H(T) − H(T|X), which is H(T) ≤ ln N when every input is distinct; I(T;Y) = H(T) − H(T|Y).
    Plug-in (maximum-likelihood) entropies, no bias correction. Non-finite activations give (nan, nan).
    """
    n_samples = check_layer(activations, labels)
    if not torch.isfinite(activations).all():
        return math.nan, math.nan
    t = dense_codes(bin_indices(activations, n_bins, range))
    if x_ids is None:
        i_xt = code_entropy(t)
    else:
        if x_ids.shape != (n_samples,):
            raise ConfigError(f"x_ids must have shape ({n_samples},), got {tuple(x_ids.shape)}")
        i_xt = discrete_mi(dense_codes(x_ids.to(t.device)), t)
    i_ty = discrete_mi(t, dense_codes(labels.to(t.device)))
    return i_xt.item(), i_ty.item()


def extended_binned_mi(
    activations_of_networks: Sequence[Sequence[Tensor]],
    labels: Tensor,
    n_bins: int = 30,
    range: tuple[float, float] | None = None,
    x_ids: Tensor | None = None,
    assignment: str = "random",
    seed: int = 0,
) -> list[tuple[float, float]]:
    """Seed 002's "extended" binning estimator over J networks of the same σw², depth: [(I(X;T_l), I(T_l;Y))].

    activations_of_networks[j][l]: layer l's activations (N, n_l) of network j, for the same N inputs.
    Bins are shared by the family: ``range=None`` takes each layer's min/max over all J networks.

    - ``assignment="random"`` (seed 002, ``mutual_information_for_network_family``): every input goes
      through one network drawn uniformly at random (seeded by ``seed``, the same draw for every layer), and
      ``binned_mi`` is taken of those N activations. The map X -> T becomes stochastic over the family.
    - ``assignment="pooled"``: all N·J pairs (x_i, T_l of network j on x_i) with equal weight, i.e. the channel
      p(t|x) = (1/J) Σ_j [t = binned f_j(x)]: I(X;T) = H(T) − H(T|X) with H(T|X) > 0 where networks disagree.

    With J = 1 both equal ``binned_mi`` of the single network, layer by layer.
    """
    if assignment not in ("random", "pooled"):
        raise ConfigError(f"assignment must be 'random' or 'pooled', got {assignment!r}")
    if len(activations_of_networks) == 0:
        raise ConfigError("extended_binned_mi needs activations of at least one network")
    shapes = [tuple(a.shape) for a in activations_of_networks[0]]
    for net in activations_of_networks:
        if [tuple(a.shape) for a in net] != shapes:
            raise ConfigError(f"every network needs layers of shapes {shapes}, got {[tuple(a.shape) for a in net]}")
    n_nets, n_samples = len(activations_of_networks), shapes[0][0] if shapes else 0
    x = torch.arange(n_samples) if x_ids is None else x_ids
    if assignment == "random":
        choice = torch.randint(n_nets, (n_samples,), generator=torch.Generator().manual_seed(seed))
    out = []
    for layers in zip(*activations_of_networks):
        stacked = torch.stack(layers)  # (J, N, n): this layer of every network
        layer_range = range if range is not None else (stacked.min().item(), stacked.max().item())
        if assignment == "random":
            picked = stacked[choice.to(stacked.device), torch.arange(n_samples, device=stacked.device)]
            out.append(binned_mi(picked, labels, n_bins, layer_range, x_ids))
        else:
            out.append(binned_mi(stacked.flatten(0, 1), labels.repeat(n_nets), n_bins, layer_range, x.repeat(n_nets)))
    return out


@register_layer("binning", settings=("n_bins", "range"))
def _binning(activations, labels, *, inputs, x_ids, **params):
    return binned_mi(activations, labels, **params, x_ids=x_ids)


@register("binning_extended", family=True, settings=("n_bins", "range"))
def _binning_extended(networks, labels, *, inputs, x_ids, seed, **params):
    return extended_binned_mi(networks, labels, **params, x_ids=x_ids, seed=seed)

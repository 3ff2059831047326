"""Distance correlation: Székely, Rizzo & Bakirov (2007), "Measuring and testing dependence by correlation of
distances", Ann. Statist. 35(6):2769: 'dcor'. Not an MI: a unitless dependence measure in [0, 1], zero iff (in
the population) the variables are independent. Pure torch, float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators.checks import as_rows, check_layer, check_pair
from infoflow_ray.estimators.discrete import dense_codes
from infoflow_ray.estimators.registry import register_layer


def distance_correlation(x: Tensor, y: Tensor) -> float:
    """Sample distance correlation dCor(x, y) in [0, 1] of x (N,) or (N, d) and y (N,) or (N, e); unitless.

    A dependence measure, not an MI: with A, B the double-centred Euclidean distance matrices of x and y
    (A_ij = a_ij − ā_i· − ā_·j + ā_··), dCov²(x, y) = mean(A·B) (the V-statistic, ≥ 0) and

        dCor = sqrt( dCov²(x, y) / sqrt(dCov²(x, x) dCov²(y, y)) ),  0 when either variance is 0.

    1 for y = a·x·R + b (R orthogonal, a ≠ 0); → 0 for independent samples as N grows. Memory O(N²): N up to a
    few thousand. Non-finite values give nan.
    """
    x, y = as_rows(x), as_rows(y)
    check_pair(x, y)
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        return math.nan
    a, b = _centred_distances(x), _centred_distances(y.to(x.device))
    var_x, var_y = a.square().mean(), b.square().mean()
    if var_x <= 0 or var_y <= 0:
        return 0.0
    cov = (a * b).mean().clamp(min=0)
    return (cov / (var_x * var_y).sqrt()).sqrt().clamp(max=1.0).item()


def dcor_layer(activations: Tensor, labels: Tensor, inputs: Tensor) -> tuple[float, float]:
    """(dCor(X, T), dCor(T, Y)), unitless in [0, 1], NOT informations in nats (``distance_correlation``).

    activations: (N, n); labels: (N,) int, taken as a one-hot matrix (N, n_classes); inputs: X, (N, d) (or
    (N,)), the network's input. Non-finite activations give (nan, nan).
    """
    n_samples = check_layer(activations, labels)
    if inputs.shape[0] != n_samples:
        raise ConfigError(f"inputs must have {n_samples} rows like activations, got shape {tuple(inputs.shape)}")
    if not torch.isfinite(activations).all():
        return math.nan, math.nan
    one_hot = torch.nn.functional.one_hot(dense_codes(labels.to(activations.device))).double()
    return distance_correlation(inputs.to(activations.device), activations), distance_correlation(activations, one_hot)


def _centred_distances(v: Tensor) -> Tensor:
    """The double-centred Euclidean distance matrix (N, N) of the rows of v (exact differences, no matmul)."""
    d = torch.cdist(v, v, compute_mode="donot_use_mm_for_euclid_dist")
    return d - d.mean(dim=0, keepdim=True) - d.mean(dim=1, keepdim=True) + d.mean()


@register_layer("dcor", needs_inputs=True, unit="dCor")
def _dcor(activations, labels, *, inputs, x_ids, **params):
    return dcor_layer(activations, labels, inputs, **params)

"""k-nearest-neighbour estimators: KSG estimator 1 (Kraskov, Stögbauer & Grassberger 2004) for two continuous
variables and its discrete-label variant (Ross 2014) for I(T;Y): 'ksg'.

No well-kept library fits: scikit-learn's ``mutual_info_regression`` / ``mutual_info_classif`` are KSG / Ross
for one-dimensional features only (and CPU, numpy); NPEET is unmaintained; ennemi is numpy/scipy on the CPU.
Written here in pure torch, vectorised over samples with ``torch.cdist``; in nats, float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators.checks import as_rows, chunks, f64
from infoflow_ray.estimators.discrete import dense_codes
from infoflow_ray.estimators.registry import register_layer


def ksg_mi(x: Tensor, y: Tensor, k: int = 3, chunk_size: int = 1024) -> float:
    """I(X;Y) in nats by KSG estimator 1 (Kraskov, Stögbauer & Grassberger 2004, eq. 8), max-norm.

    x: (N, d_x), y: (N, d_y) (or (N,)). ε_i is the distance from z_i = (x_i, y_i) to its k-th nearest
    neighbour in the max-norm; n_x(i), n_y(i) count the other points strictly closer than ε_i in x and in y:

        I = ψ(k) + ψ(N) − ⟨ψ(n_x + 1) + ψ(n_y + 1)⟩

    Not clipped at 0 (it can be slightly negative for independent variables). No rescaling: the max-norm
    makes the result depend on the relative scale of x's and y's coordinates (Kraskov rescale to unit
    variance first; do it before calling if wanted). Duplicate points in the joint space (ε_i = 0) make the
    estimate meaningless. Memory O(chunk_size · N); time O(N² (d_x + d_y)).
    """
    x, y = as_rows(x), as_rows(y)
    n_samples = x.shape[0]
    if y.shape[0] != n_samples:
        raise ConfigError(f"x and y need the same number of samples, got {n_samples} and {y.shape[0]}")
    _check_k(k, n_samples)
    n_x, n_y = [], []
    for start in chunks(n_samples, chunk_size):
        dx, dy = _max_norm_distances(x, start, chunk_size), _max_norm_distances(y, start, chunk_size)
        eps = torch.maximum(dx, dy).topk(k, dim=1, largest=False).values[:, -1:]  # ε_i, (c, 1)
        n_x.append((dx < eps).sum(dim=1))
        n_y.append((dy < eps).sum(dim=1))
    psi = torch.special.digamma
    n_x, n_y = torch.cat(n_x).double(), torch.cat(n_y).double()
    return (psi(f64(k)) + psi(f64(n_samples)) - (psi(n_x + 1) + psi(n_y + 1)).mean()).item()


def ross_mi(t: Tensor, labels: Tensor, k: int = 3, chunk_size: int = 1024) -> float:
    """I(T;Y) in nats of continuous T (N, d) and discrete labels Y (N,), Ross (2014), max-norm.

    For each point, d_i is the distance to its k-th nearest neighbour among the N_y points of its own class,
    and m_i counts the points of all classes strictly closer than d_i, the point itself included:

        I = ψ(N) − ⟨ψ(N_y)⟩ + ⟨ψ(k_i)⟩ − ⟨ψ(m_i)⟩,   k_i = min(k, N_y − 1)

    Points alone in their class are dropped (as scikit-learn's ``mutual_info_classif`` does); unlike it, the
    result is not clipped at 0.
    """
    t = as_rows(t)
    if labels.shape != (t.shape[0],):
        raise ConfigError(f"labels must have shape ({t.shape[0]},), got {tuple(labels.shape)}")
    y = dense_codes(labels.to(t.device))
    n_y = torch.bincount(y)[y]
    keep = n_y > 1
    t, y, n_y = t[keep], y[keep], n_y[keep]
    n_samples = t.shape[0]
    _check_k(k, n_samples)
    k_i = (n_y - 1).clamp(max=k)
    k_max = int(k_i.max())
    m = []
    for start in chunks(n_samples, chunk_size):
        rows = slice(start, start + chunk_size)
        d = _max_norm_distances(t, start, chunk_size)
        same = d.masked_fill(y[rows, None] != y[None, :], math.inf)
        d_k = same.topk(k_max, dim=1, largest=False).values.gather(1, k_i[rows, None] - 1)
        m.append((d < d_k).sum(dim=1) + 1)
    psi = torch.special.digamma
    return (
        psi(f64(n_samples)) - psi(n_y.double()).mean() + psi(k_i.double()).mean() - psi(torch.cat(m).double()).mean()
    ).item()


def ksg_layer_mi(activations: Tensor, inputs: Tensor, labels: Tensor, k: int = 3) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in nats: ``ksg_mi(inputs, activations, k)`` and ``ross_mi(activations, labels, k)``.

    For a deterministic network with continuous X and T the true I(X;T) is infinite; KSG returns a finite
    number set by the geometry of the sample (how neighbourhoods in X map to neighbourhoods in T), useful
    for comparing layers and networks, not as an absolute information.
    """
    return ksg_mi(inputs, activations, k), ross_mi(activations, labels, k)


def _check_k(k: int, n_samples: int) -> None:
    if not (isinstance(k, int) and 1 <= k < n_samples):
        raise ConfigError(f"k must be an integer in 1..N-1 = {n_samples - 1}, got {k!r}")


def _max_norm_distances(v: Tensor, start: int, chunk_size: int) -> Tensor:
    """Max-norm distances (c, N) from rows start..start+c of v to all rows, a point to itself set to +inf."""
    d = torch.cdist(v[start : start + chunk_size], v, p=math.inf)
    rows = torch.arange(d.shape[0], device=d.device)
    d[rows, rows + start] = math.inf
    return d


@register_layer("ksg", needs_inputs=True)
def _ksg(activations, labels, *, inputs, x_ids, **params):
    return ksg_layer_mi(activations, inputs, labels, **params)

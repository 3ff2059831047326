"""Input checks and small tensor helpers shared by the estimators (each raises ConfigError in one line)."""

from __future__ import annotations

import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError


def check_layer(activations: Tensor, labels: Tensor) -> int:
    if activations.dim() != 2:
        raise ConfigError(f"activations must be (N, n), got shape {tuple(activations.shape)}")
    n_samples = activations.shape[0]
    if n_samples < 1:
        raise ConfigError("activations must have at least one sample")
    if labels.shape != (n_samples,):
        raise ConfigError(f"labels must have shape ({n_samples},), got {tuple(labels.shape)}")
    return n_samples


def as_rows(v: Tensor) -> Tensor:
    """v as (N, d) float64 (a 1-D tensor becomes one column)."""
    if v.dim() == 1:
        v = v[:, None]
    if v.dim() != 2:
        raise ConfigError(f"expected (N,) or (N, d), got shape {tuple(v.shape)}")
    return v.double()


def chunks(n: int, chunk_size: int) -> range:
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ConfigError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    return range(0, n, chunk_size)


def f64(v: float) -> Tensor:
    return torch.tensor(float(v), dtype=torch.float64)


def scalar(v: Tensor, name: str) -> Tensor:
    """v (N,) or (N, 1) as (N,) float64."""
    if v.dim() == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.dim() != 1:
        raise ConfigError(f"{name} must be (N,) or (N, 1), got shape {tuple(v.shape)}")
    return v.double()


def check_pair(x: Tensor, y: Tensor) -> int:
    if x.shape[0] != y.shape[0]:
        raise ConfigError(f"x and y need the same number of samples, got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] < 2:
        raise ConfigError(f"x and y need at least 2 samples, got {x.shape[0]}")
    return x.shape[0]

"""Information-plane probes (seeds 002, 003): per-layer I(X;T) and I(T;Y) of a network's activations.

Every estimator returns nats (natural logarithm). Shwartz-Ziv & Tishby and seed 002 report bits: divide by
``LN2`` (bits = nats / ln 2). X is the input sample, T a layer's activations, Y the class label.

- ``binned_mi``: activations cut into ``n_bins`` equal bins (Shwartz-Ziv & Tishby 2017); T's states are the
  distinct binned rows. For a deterministic network each input has one T, so I(X;T) = H(T) ≤ ln N.
- ``kde_mi``: the pairwise-distance bound of Kolchinsky & Tracey (2017) on the mixture entropy of T + ε,
  ε ~ N(0, σ²I), as used by Saxe et al. (2018); ``bound="upper"`` (KL) or ``"lower"`` (Bhattacharyya).
- ``ksg_mi``: Kraskov, Stögbauer & Grassberger (2004) estimator 1 (max-norm, k nearest neighbours) for two
  continuous variables; ``ross_mi``: its discrete-label variant (Ross 2014), for I(T;Y).
- ``extended_binned_mi``: seed 002's estimator over a family of independently initialised networks.

All functions are pure torch on the device of their inputs, compute in float64 and never modify their inputs.
Activations are (N, n) tensors: N samples (rows) of a layer with n neurons; labels are (N,) integers.
No well-kept library fits: scikit-learn's ``mutual_info_regression`` / ``mutual_info_classif`` are KSG / Ross
for one-dimensional features only (and CPU, numpy); NPEET is unmaintained; ennemi is numpy/scipy on the CPU.
Everything here is written for this module, vectorised over samples with ``torch.cdist``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError

LN2 = math.log(2.0)
"""Nats per bit: an information in nats divided by LN2 is in bits."""

ESTIMATORS = ("binning", "kde", "ksg", "adaptive", "bspline", "dcor", "density")
ROW_ESTIMATORS = ESTIMATORS + ("binning_extended",)
ROW_KEYS = ("task_id", "dataset", "profile", "sigma_w2", "sigma_b2", "depth", "seed")


# --- discrete entropies -----------------------------------------------------------------------------------


def _entropy(codes: Tensor) -> Tensor:
    """Plug-in entropy −Σ p ln p of the empirical distribution of integer ``codes`` (N,), in nats, float64."""
    counts = torch.unique(codes, return_counts=True)[1].double()
    n = counts.sum()
    return n.log() - (counts * counts.log()).sum() / n


def _discrete_mi(a: Tensor, b: Tensor) -> Tensor:
    """I(A;B) = H(A) + H(B) − H(A,B) of two integer codes (N,) in 0..N−1, in nats."""
    return _entropy(a) + _entropy(b) - _entropy(a * (int(b.max()) + 1) + b)


def _codes(values: Tensor) -> Tensor:
    """Values (N,) or rows (N, n) as dense integer codes 0..K−1 (equal rows, equal codes)."""
    return torch.unique(values, dim=0, return_inverse=True)[1]


def bin_indices(activations: Tensor, n_bins: int = 30, range: tuple[float, float] | None = None) -> Tensor:
    """Each activation's bin, (N, n) int16/int32, among ``n_bins`` equal bins over ``range``.

    ``range=None`` takes the layer's own [min, max] over all its neurons and samples (seed 003's suggestion);
    ``(-1, 1)`` gives the fixed tanh bins of Shwartz-Ziv & Tishby and seed 002 ("30 equal intervals between
    -1 and 1"). Values outside the range go to the edge bins, the maximum to the last bin; a layer with
    min = max has a single bin.
    """
    _check_n_bins(n_bins)
    a = activations.double()
    if range is None:
        lo, hi = a.min(), a.max()
    else:
        lo, hi = (torch.tensor(float(v), dtype=torch.float64, device=a.device) for v in range)
    if not hi >= lo:
        raise ConfigError(f"range must be (lo, hi) with lo <= hi, got ({float(lo)}, {float(hi)})")
    width = (hi - lo) / n_bins
    if width == 0:
        index = torch.zeros_like(a)
    else:
        index = ((a - lo) / width).floor().clamp_(0, n_bins - 1)
    return index.to(torch.int16 if n_bins <= torch.iinfo(torch.int16).max else torch.int32)


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
    n_samples = _check_layer(activations, labels)
    if not torch.isfinite(activations).all():
        return math.nan, math.nan
    t = _codes(bin_indices(activations, n_bins, range))
    if x_ids is None:
        i_xt = _entropy(t)
    else:
        if x_ids.shape != (n_samples,):
            raise ConfigError(f"x_ids must have shape ({n_samples},), got {tuple(x_ids.shape)}")
        i_xt = _discrete_mi(_codes(x_ids.to(t.device)), t)
    i_ty = _discrete_mi(t, _codes(labels.to(t.device)))
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


# --- kernel density (pairwise-distance) bound -------------------------------------------------------------


def kde_mi(
    activations: Tensor,
    labels: Tensor,
    noise_var: float = 1e-1,
    bound: str = "upper",
    chunk_size: int = 1024,
) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in nats of T = h + ε, ε ~ N(0, σ²I), σ² = ``noise_var`` (Kolchinsky & Tracey 2017).

    The activations h_i (N, n) are the centres of an equal-weight Gaussian mixture. With K_ij =
    exp(−‖h_i − h_j‖² / (2σ²)) for the upper (KL) bound, or exp(−‖h_i − h_j‖² / (8σ²)) for the lower
    (Bhattacharyya) bound, and H(T|X) = the Gaussian's entropy subtracted (constants cancel, Saxe et al. 2018):

        I(X;T) = −(1/N) Σ_i ln (1/N) Σ_j K_ij                                  ≤ ln N
        I(T;Y) = H(T) − Σ_y p(y) H(T|Y=y) = −(1/N) Σ_i [ln (1/N) Σ_j K_ij − ln (1/N_y) Σ_{j: y_j = y_i} K_ij]

    The I(X;T) upper bound is ≥ the true I(X; h + ε) (lower bound: ≤); I(T;Y) is a difference of two bounds,
    so neither. Saxe et al. used σ² = 1e-3; the result depends strongly on σ² (→ 0 as σ² grows).
    Rows are processed ``chunk_size`` at a time: memory O(chunk_size · N).
    """
    n_samples = _check_layer(activations, labels)
    if not noise_var > 0:
        raise ConfigError(f"noise_var must be > 0, got {noise_var!r}")
    if bound not in ("upper", "lower"):
        raise ConfigError(f"bound must be 'upper' or 'lower', got {bound!r}")
    h = activations.double()
    y = _codes(labels.to(h.device))
    n_y = torch.bincount(y).double()[y]  # (N,) size of each sample's class
    scale = 1.0 / (2.0 * noise_var) if bound == "upper" else 1.0 / (8.0 * noise_var)
    log_all, log_same = [], []
    for start in _chunks(n_samples, chunk_size):
        rows = slice(start, start + chunk_size)
        log_k = torch.cdist(h[rows], h).square_().mul_(-scale)  # (c, N) ln K_ij
        log_all.append(torch.logsumexp(log_k, dim=1))
        log_same.append(torch.logsumexp(log_k.masked_fill_(y[rows, None] != y[None, :], -math.inf), dim=1))
    h_all = math.log(n_samples) - torch.cat(log_all)  # −ln (1/N) Σ_j K_ij per row
    h_same = n_y.log() - torch.cat(log_same)  # −ln (1/N_y) Σ_{same class} K_ij per row
    return h_all.mean().item(), (h_all - h_same).mean().item()


# --- k-nearest-neighbour estimators -----------------------------------------------------------------------


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
    x, y = _as_rows(x), _as_rows(y)
    n_samples = x.shape[0]
    if y.shape[0] != n_samples:
        raise ConfigError(f"x and y need the same number of samples, got {n_samples} and {y.shape[0]}")
    _check_k(k, n_samples)
    n_x, n_y = [], []
    for start in _chunks(n_samples, chunk_size):
        dx, dy = _max_norm_distances(x, start, chunk_size), _max_norm_distances(y, start, chunk_size)
        eps = torch.maximum(dx, dy).topk(k, dim=1, largest=False).values[:, -1:]  # ε_i, (c, 1)
        n_x.append((dx < eps).sum(dim=1))
        n_y.append((dy < eps).sum(dim=1))
    psi = torch.special.digamma
    n_x, n_y = torch.cat(n_x).double(), torch.cat(n_y).double()
    return (psi(_f64(k)) + psi(_f64(n_samples)) - (psi(n_x + 1) + psi(n_y + 1)).mean()).item()


def ross_mi(t: Tensor, labels: Tensor, k: int = 3, chunk_size: int = 1024) -> float:
    """I(T;Y) in nats of continuous T (N, d) and discrete labels Y (N,), Ross (2014), max-norm.

    For each point, d_i is the distance to its k-th nearest neighbour among the N_y points of its own class,
    and m_i counts the points of all classes strictly closer than d_i, the point itself included:

        I = ψ(N) − ⟨ψ(N_y)⟩ + ⟨ψ(k_i)⟩ − ⟨ψ(m_i)⟩,   k_i = min(k, N_y − 1)

    Points alone in their class are dropped (as scikit-learn's ``mutual_info_classif`` does); unlike it, the
    result is not clipped at 0.
    """
    t = _as_rows(t)
    if labels.shape != (t.shape[0],):
        raise ConfigError(f"labels must have shape ({t.shape[0]},), got {tuple(labels.shape)}")
    y = _codes(labels.to(t.device))
    n_y = torch.bincount(y)[y]
    keep = n_y > 1
    t, y, n_y = t[keep], y[keep], n_y[keep]
    n_samples = t.shape[0]
    _check_k(k, n_samples)
    k_i = (n_y - 1).clamp(max=k)
    k_max = int(k_i.max())
    m = []
    for start in _chunks(n_samples, chunk_size):
        rows = slice(start, start + chunk_size)
        d = _max_norm_distances(t, start, chunk_size)
        same = d.masked_fill(y[rows, None] != y[None, :], math.inf)
        d_k = same.topk(k_max, dim=1, largest=False).values.gather(1, k_i[rows, None] - 1)
        m.append((d < d_k).sum(dim=1) + 1)
    psi = torch.special.digamma
    return (
        psi(_f64(n_samples)) - psi(n_y.double()).mean() + psi(k_i.double()).mean() - psi(torch.cat(m).double()).mean()
    ).item()


def ksg_layer_mi(activations: Tensor, inputs: Tensor, labels: Tensor, k: int = 3) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in nats: ``ksg_mi(inputs, activations, k)`` and ``ross_mi(activations, labels, k)``.

    For a deterministic network with continuous X and T the true I(X;T) is infinite; KSG returns a finite
    number set by the geometry of the sample (how neighbourhoods in X map to neighbourhoods in T), useful
    for comparing layers and networks, not as an absolute information.
    """
    return ksg_mi(inputs, activations, k), ross_mi(activations, labels, k)


# --- per-layer front end, stopping, rows ------------------------------------------------------------------


def layer_mi(
    activations: Sequence[Tensor],
    labels: Tensor,
    estimator: str = "binning",
    *,
    inputs: Tensor | None = None,
    **params,
) -> list[tuple[float, float]]:
    """[(I(X;T_l), I(T_l;Y))] in nats for each tensor of ``activations`` (hidden layers T_1..T_L, in order).

    estimator: 'binning' (params of ``binned_mi``), 'kde' (of ``kde_mi``), 'ksg' (``k``; needs ``inputs``,
    the network's input X (N, d)), 'adaptive' (``dependence.equal_mass_binned_mi``), 'bspline'
    (``dependence.bspline_layer_mi``), 'dcor' (``dependence.dcor_layer``: dCor(X,T), dCor(T,Y), unitless, not
    nats; needs ``inputs``) or 'density' (``density.density_mi``: two autoregressive models per layer, seed 004).
    Pass ``TanhNetwork.activations(x)[1:]``: a_0 = x is not a layer.
    """
    if estimator == "binning":
        return [binned_mi(a, labels, **params) for a in activations]
    if estimator == "kde":
        return [kde_mi(a, labels, **params) for a in activations]
    if estimator in ("ksg", "dcor") and inputs is None:
        raise ConfigError(f"estimator '{estimator}' needs inputs=X, the network's input (N, d)")
    if estimator == "ksg":
        return [ksg_layer_mi(a, inputs, labels, **params) for a in activations]
    if estimator in ("adaptive", "bspline", "dcor"):
        from infoflow_ray import dependence  # it builds on this module's discrete entropies

        if estimator == "dcor":
            return [dependence.dcor_layer(a, labels, inputs) for a in activations]
        layer = dependence.equal_mass_binned_mi if estimator == "adaptive" else dependence.bspline_layer_mi
        return [layer(a, labels, **params) for a in activations]
    if estimator == "density":
        from infoflow_ray import density

        spec = density.DensitySpec(**params)
        return [density.density_mi(a, labels, spec) for a in activations]  # trains under no_grad too
    raise ConfigError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")


def mi_stopping(history: Sequence[float], patience: int = 3, min_delta: float = 1e-3) -> bool:
    """Seed 002's stopper: True when the last ``patience`` values of ``history`` all fail to beat the best
    earlier value by more than ``min_delta``.

    ``history`` is one value per evaluation, oldest first: I(T;Y) of the last hidden layer, or seed 002's
    objective I(T;Y) − β·I(X;T) of the last layer. (Seed 002 stops at the first evaluation that improves by
    less than a relative ``tol`` — patience 1; here patience and an absolute ``min_delta``.) NaN values count
    as no improvement; with ``patience`` or fewer values it never stops.
    """
    if not (isinstance(patience, int) and patience >= 1):
        raise ConfigError(f"patience must be an integer >= 1, got {patience!r}")
    if len(history) <= patience:
        return False
    earlier = [v for v in history[:-patience] if not math.isnan(v)]
    best = max(earlier, default=-math.inf)
    return not any(v > best + min_delta for v in history[-patience:])


def info_plane_rows(
    keys: dict,
    per_layer: Sequence[tuple[float, float]],
    estimator: str,
    epoch: int | None,
    seconds: float,
    params: dict,
    *,
    n_samples: int,
    phase: str | None = None,
) -> list[dict]:
    """Rows of the ``info_plane`` table (``store.TABLES['info_plane']``), one per layer, layer 1 first.

    keys: the task's task_id, dataset, profile, sigma_w2, sigma_b2, depth, seed. per_layer: (I(X;T_l),
    I(T_l;Y)) in nats for l = 1, 2, … (``layer_mi``'s result). epoch None = the untrained network (phase
    'untrained', epoch 0); an int = a point of a training run (phase 'training'). seconds: wall seconds of
    estimating all these layers, repeated on every row. params: the estimator's parameters, written as
    'name=value' joined by ';' (e.g. 'n_bins=30'). n_samples: the N the estimates used. phase: overrides the
    phase (``jobs/info_plane.py`` writes 'sgd_steps', with ``epoch`` the SGD steps done).
    """
    missing = [k for k in ROW_KEYS if k not in keys]
    if missing:
        raise ConfigError(f"info_plane rows need keys {', '.join(ROW_KEYS)}; missing {', '.join(missing)}")
    if estimator not in ROW_ESTIMATORS:
        raise ConfigError(f"estimator must be one of {', '.join(ROW_ESTIMATORS)}, got {estimator!r}")
    if epoch is not None and not (isinstance(epoch, int) and epoch >= 0):
        raise ConfigError(f"epoch must be None (untrained) or an integer >= 0, got {epoch!r}")
    param = ";".join(f"{name}={_param_text(value)}" for name, value in sorted(params.items()))
    base = {k: keys[k] for k in ROW_KEYS}
    base.update(phase=phase or ("untrained" if epoch is None else "training"), epoch=0 if epoch is None else epoch)
    return [
        {
            **base,
            "layer": layer,
            "estimator": estimator,
            "i_xt": float(i_xt),
            "i_ty": float(i_ty),
            "n_samples": int(n_samples),
            "param": param,
            "seconds": float(seconds),
        }
        for layer, (i_xt, i_ty) in enumerate(per_layer, start=1)
    ]


# --- helpers ----------------------------------------------------------------------------------------------


def _check_layer(activations: Tensor, labels: Tensor) -> int:
    if activations.dim() != 2:
        raise ConfigError(f"activations must be (N, n), got shape {tuple(activations.shape)}")
    n_samples = activations.shape[0]
    if n_samples < 1:
        raise ConfigError("activations must have at least one sample")
    if labels.shape != (n_samples,):
        raise ConfigError(f"labels must have shape ({n_samples},), got {tuple(labels.shape)}")
    return n_samples


def _check_n_bins(n_bins: int) -> None:
    if not (isinstance(n_bins, int) and n_bins >= 1):
        raise ConfigError(f"n_bins must be an integer >= 1, got {n_bins!r}")


def _check_k(k: int, n_samples: int) -> None:
    if not (isinstance(k, int) and 1 <= k < n_samples):
        raise ConfigError(f"k must be an integer in 1..N-1 = {n_samples - 1}, got {k!r}")


def _as_rows(v: Tensor) -> Tensor:
    """v as (N, d) float64 (a 1-D tensor becomes one column)."""
    if v.dim() == 1:
        v = v[:, None]
    if v.dim() != 2:
        raise ConfigError(f"expected (N,) or (N, d), got shape {tuple(v.shape)}")
    return v.double()


def _max_norm_distances(v: Tensor, start: int, chunk_size: int) -> Tensor:
    """Max-norm distances (c, N) from rows start..start+c of v to all rows, a point to itself set to +inf."""
    d = torch.cdist(v[start : start + chunk_size], v, p=math.inf)
    rows = torch.arange(d.shape[0], device=d.device)
    d[rows, rows + start] = math.inf
    return d


def _chunks(n: int, chunk_size: int) -> range:
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ConfigError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    return range(0, n, chunk_size)


def _f64(v: float) -> Tensor:
    return torch.tensor(float(v), dtype=torch.float64)


def _param_text(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(str(v) for v in value) + ")"
    return str(value)

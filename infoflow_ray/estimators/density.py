"""Density-model information plane (seed 004, SPEC §11), estimator 'density': H(T) and H(T|Y) from an
autoregressive model of T.

Every quantity is in nats (natural logarithm); divide by ``discrete.LN2`` for bits. T is a layer's activation
(N, n), discretised unit by unit into K = ``n_bins`` equal bins (seed 004: "discretized each element of the
activations into 32 bins"; tanh units lie in (−1, 1)), so T is a vector of n categorical units t_i ∈ 0..K−1.

An autoregressive model factors p(t) = Π_i p(t_i | t_<i) over the units in their natural order (unit 0 first).
Trained by maximum likelihood and scored on held-out samples, its mean negative log-likelihood

    Ĥ(T) = −(1/N_test) Σ_s Σ_i ln q(t_i^s | t_<i^s)

is the cross-entropy of the true distribution with the model: an estimate of H(T) that is biased up by
KL(p ‖ q) ≥ 0 (in expectation over the test set), never down by over-fitting, because the test samples are not
trained on. The same model with the label Y as an extra input gives Ĥ(T|Y). For a deterministic network
H(T|X) = 0, so I(X;T) = H(T) (of the discretised T) and I(T;Y) = H(T) − H(T|Y) (Tishby & Zaslavsky 2015;
seed 004). I(T;Y) is a difference of two upper bounds, so it is neither a bound nor guaranteed ≥ 0.

The model is a MADE (Germain, Gregor, Murray & Larochelle 2015, "MADE: Masked Autoencoder for Distribution
Estimation", ICML): an MLP whose weight matrices are multiplied by binary masks so that the K logits of unit i
depend only on the units < i. Every conditional of every sample comes out of one forward pass, so training and
evaluation are plain batched matrix products (no loop over units). Seed 004 used a model "styled after
PixelCNN" (van den Oord et al. 2016), i.e. masked convolutions along a 1-D sequence of units. That fits images,
whose pixels have a spatial order in which near pixels depend most; a layer's units have no order at all (a
permutation of the hidden units gives the same network), so a convolution's locality prior means nothing there
and its finite receptive field would even hide dependences between distant units. MADE conditions each unit on
all earlier units at once, with no notion of distance between units.

Conventions:

- Masks follow the standard degree assignment with the natural unit order: input unit j has degree j
  (0..n−1); the hidden units of every layer get degrees 0..n−2 spread evenly (⌊k(n−1)/H⌋ for hidden unit k of
  H); a hidden unit of degree m sees the inputs j ≤ m and the hidden units of degree ≤ m below it; the logits
  of unit i see the hidden units of degree < i. Unit 0's logits depend on nothing but the biases (and Y).
- Input: each unit's code as one number scaled to [−1, 1] (code·2/(K−1) − 1), not one-hot. The bins are
  ordered (neighbouring bins hold nearby activations), so an ordinal input lets the model share what it learns
  between neighbouring bins; one-hot would multiply the first layer's weights by K (32×) and over-fit the few
  thousand samples a snapshot has. Output: K logits per unit (a free categorical, no ordinal constraint).
- Direct connections (``direct=True``, the "direct connections" of Germain et al.): a masked linear map from
  the inputs j < i straight to unit i's logits. With ordinal inputs it makes each logit linear in the earlier
  units, which already fits a discretised Gaussian whose mean is linear in them (correlated units); the hidden
  layers add the rest. Without it, a unit's conditional only sees the hidden units of lower degree, about H/n
  of them per degree. It costs a second n × nK matrix product (a 256-unit fit takes ~2× as long).
- Labels: with ``n_classes > 0`` the one-hot label feeds every hidden layer and the output (unmasked), which
  gives p(t | y). A one-hot input times a weight matrix is one row per class, so it is implemented as one bias
  row per class in every layer (the shared bias is then redundant and dropped). That way each class's biases
  learn at the pace of the unlabelled model's single bias; an extra label weight next to a shared bias would
  double Adam's step on every bias and make an unconverged labelled model look better for no reason (an
  I(T;Y) of 0.2 nats for labels independent of T, in an unconverged trial).
- Start: hidden weights uniform ±1/√(fan-in) over the connections a unit really has; output weights zero and
  output biases ln of the add-½ frequencies of each unit's codes in the training set (per class with labels).
  The model starts as the best independent-units model, so a unit stuck in one bin (a saturated tanh) does not
  have to creep to a large logit at Adam's ~lr per step, and training only has to learn the dependences.
- Seeded: weights from ``seeding.generator(seed, "density-model")`` (drawn on the CPU and moved), batch order
  from ``seeding.permutation(…, "density-batches", epoch)``, the train/test split from "density-split", the
  early-stopping split from "density-validation". The same seed gives the same result on one device and
  thread count. The p(T) and p(T|Y) models of one seed draw the same hidden weights (labels only add bias
  rows) and see the same batches: common random numbers, so their difference, Î(T;Y), carries less noise.
- Device: the device of the given tensors or ``device`` (CUDA when the caller passes it); float32 model,
  float64 sums of the NLL.

No dependency is added for the model: it is a few dozen lines here, while the published MADE code (Germain et
al.'s Theano code, Karpathy's pytorch-made) models binary data and takes no label.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infoflow_ray import seeding
from infoflow_ray.errors import ConfigError
from infoflow_ray.estimators.discrete import bin_indices
from infoflow_ray.estimators.registry import register_layer

EVAL_BATCH = 2048
"""Samples per forward pass when scoring (no gradients): bounds memory at EVAL_BATCH·n·K logits."""


# --- configuration and result -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DensitySpec:
    """How to discretise T and train one density model.

    n_bins: bins per unit K (seed 004: 32). value_range: (lo, hi) cut into the bins (tanh: (−1, 1)).
    hidden: width of each of the 2 masked hidden layers. direct: masked input→output connections (see the
    module docstring). epochs: passes over the training samples (the most, with early stopping).
    batch_size: samples per Adam step, lr: Adam's learning rate. test_fraction: held-out share when the
    caller gives one set (``density_mi``, ``split_indices``). patience: None trains all ``epochs``; an int
    holds out ``validation_fraction`` of the training samples, scores them after every epoch, stops after
    ``patience`` epochs without a lower validation NLL and keeps the weights of the best epoch.

    hidden < n − 1 leaves some hidden degrees empty (those units' conditionals then see fewer earlier units).
    The defaults are a fixed, small budget: on a 256-unit tanh layer of an MNIST network (8000 training
    samples) the held-out NLL was still falling by ~2 nats per epoch at epoch 20 (447 nats there; with
    direct=False and lr 3e-3: 430 at epoch 25, 413 at epoch 60). Compare snapshots only at one spec, or raise
    epochs and set patience.
    """

    n_bins: int = 32
    value_range: tuple[float, float] = (-1.0, 1.0)
    hidden: int = 256
    direct: bool = True
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    test_fraction: float = 0.2
    patience: int | None = None
    validation_fraction: float = 0.1

    def __post_init__(self):
        for name in ("n_bins", "hidden", "epochs", "batch_size"):
            value = getattr(self, name)
            least = 2 if name == "n_bins" else 1
            if not _is_int(value) or value < least:
                raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
        _check_range(self.value_range, "value_range")
        if not isinstance(self.direct, bool):
            raise ConfigError(f"direct must be True or False, got {self.direct!r}")
        if not (_is_real(self.lr) and 0 < self.lr < math.inf):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr!r}")
        for name in ("test_fraction", "validation_fraction"):
            value = getattr(self, name)
            if not (_is_real(value) and 0 < value < 1):
                raise ConfigError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
        if self.patience is not None and (not _is_int(self.patience) or self.patience < 1):
            raise ConfigError(f"patience must be None or an integer >= 1, got {self.patience!r}")


@dataclass(frozen=True)
class DensityFit:
    """One trained density model. entropy: mean NLL of the test codes, nats per sample — Ĥ(T), or Ĥ(T|Y)
    when trained with labels. train_nll: the same on the samples it was trained on (without the validation
    share), nats; train_nll well below entropy means over-fitting. epochs: epochs run; best_epoch: the epoch
    whose weights were scored (= epochs without early stopping). seconds: wall time of training and scoring.
    n_train, n_test: the samples trained on and scored."""

    entropy: float
    train_nll: float
    epochs: int
    best_epoch: int
    seconds: float
    n_train: int
    n_test: int


# --- discretisation ---------------------------------------------------------------------------------------


def discretise(activations: Tensor, n_bins: int = 32, range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Each activation's bin, (N, n) int64 codes 0..n_bins−1, among ``n_bins`` equal bins over ``range``
    (``discrete.bin_indices``, the binning estimator's bins, with a range that must be given and not empty).

    Bin b holds [lo + b·w, lo + (b+1)·w), w = (hi − lo)/n_bins; hi itself goes to the last bin and values
    outside the range to the edge bins. NaN has no bin: callers check finiteness first (``density_mi`` does).
    """
    return bin_indices(activations, n_bins, _check_range(range)).long()


def split_indices(n_samples: int, test_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(train, test) sample indices (int64, CPU) of a seeded random split; the test set has
    round(n_samples·test_fraction) samples, at least 1, and the training set at least 1."""
    if not _is_int(n_samples) or n_samples < 2:
        raise ConfigError(f"a train/test split needs n_samples >= 2, got {n_samples!r}")
    if not (_is_real(test_fraction) and 0 < test_fraction < 1):
        raise ConfigError(f"test_fraction must be a number strictly between 0 and 1, got {test_fraction!r}")
    n_test = min(max(1, round(n_samples * test_fraction)), n_samples - 1)
    order = torch.randperm(n_samples, generator=seeding.generator(seed, "density-split"))
    return order[n_test:], order[:n_test]


# --- the model --------------------------------------------------------------------------------------------


class MADE(nn.Module):
    """A MADE over ``n_units`` categorical units of ``n_bins`` values each, optionally conditioned on a label.

    ``logits(codes, labels)`` maps codes (B, n) int64 (and labels (B,) int64 in 0..n_classes−1 when
    n_classes > 0) to logits (B, n, K) with logits[:, i] a function of codes[:, :i] (and the label) only.
    ``nll`` gives −Σ_i ln q(t_i | t_<i[, y]) per sample, (B,) nats. Masks and degrees: module docstring.
    """

    def __init__(
        self,
        n_units: int,
        n_bins: int,
        hidden: Sequence[int] = (256, 256),
        n_classes: int = 0,
        direct: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        if not _is_int(n_units) or n_units < 1:
            raise ConfigError(f"n_units must be an integer >= 1, got {n_units!r}")
        if not _is_int(n_bins) or n_bins < 2:
            raise ConfigError(f"n_bins must be an integer >= 2, got {n_bins!r}")
        if not hidden or not all(_is_int(h) and h >= 1 for h in hidden):
            raise ConfigError(f"hidden must be one or more integers >= 1, got {hidden!r}")
        if not _is_int(n_classes) or n_classes < 0:
            raise ConfigError(f"n_classes must be an integer >= 0, got {n_classes!r}")
        self.n_units, self.n_bins, self.n_classes = n_units, n_bins, n_classes
        generator = seeding.generator(seed, "density-model")

        input_degrees = torch.arange(n_units)
        degrees = [input_degrees]
        masks = []
        for width in hidden:
            m = torch.arange(width) * max(n_units - 1, 1) // width  # 0..n−2 spread evenly
            masks.append(m[:, None] >= degrees[-1][None, :])
            degrees.append(m)
        unit_of_output = torch.arange(n_units).repeat_interleave(n_bins)  # row i·K + c belongs to unit i
        out_mask = unit_of_output[:, None] > degrees[-1][None, :]
        if direct:
            out_mask = torch.cat([out_mask, unit_of_output[:, None] > input_degrees[None, :]], dim=1)
        masks.append(out_mask)
        self.direct = direct

        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, mask in enumerate(masks):
            self.register_buffer(f"mask{i}", mask.float())
            if i < len(hidden):  # uniform ±1/√fan-in, fan-in = the connections the unit really has
                fan_in = mask.sum(dim=1, keepdim=True).clamp(min=1).float()
                weight = (torch.rand(mask.shape, generator=generator) * 2 - 1) / fan_in.sqrt()
            else:  # output weights start at zero: the model starts as independent units (see ``init_marginals``)
                weight = torch.zeros(mask.shape)
            self.weights.append(nn.Parameter(weight))
            # One bias row per class (a single row without labels): the one-hot label's weights into the layer,
            # the shared bias being redundant next to them.
            self.biases.append(nn.Parameter(torch.zeros(max(n_classes, 1), mask.shape[0])))

    @torch.no_grad()
    def init_marginals(self, codes: Tensor, labels: Tensor | None = None) -> None:
        """Set the output biases to ln q(t_i = k [| y]) of the add-½ (Krichevsky–Trofimov) frequencies of
        ``codes`` (N, n) [per class of ``labels`` (N,)]. With the output weights at zero the model then starts
        as the best independent-units model, and a unit that sits in one bin (a saturated tanh) starts near
        its final NLL instead of creeping there at Adam's ~lr per step."""
        n, k = self.n_units, self.n_bins
        classes = labels if self.n_classes else torch.zeros(codes.shape[0], dtype=torch.long, device=codes.device)
        rows = max(self.n_classes, 1)
        flat = (classes[:, None] * n + torch.arange(n, device=codes.device)) * k + codes  # (class, unit, bin)
        counts = torch.bincount(flat.reshape(-1), minlength=rows * n * k).view(rows, n, k).to(self.biases[-1])
        probs = (counts + 0.5) / (counts.sum(dim=2, keepdim=True) + 0.5 * k)
        self.biases[-1].copy_(probs.log().view(rows, n * k))

    def masks(self) -> list[Tensor]:
        """The binary masks (out, in) of the hidden layers and the output layer, in order."""
        return [getattr(self, f"mask{i}") for i in range(len(self.weights))]

    def logits(self, codes: Tensor, labels: Tensor | None = None) -> Tensor:
        """Logits (B, n, K) of every unit's conditional; codes (B, n) int64, labels (B,) int64 or None."""
        x = codes.to(self.weights[0].dtype) * (2.0 / (self.n_bins - 1)) - 1.0
        h = x
        masks = self.masks()
        for layer, (weight, bias, mask) in enumerate(zip(self.weights, self.biases, masks)):
            if layer == len(masks) - 1 and self.direct:
                h = torch.cat([h, x], dim=1)
            h = F.linear(h, weight * mask) + (bias[labels] if self.n_classes else bias)
            if layer < len(masks) - 1:
                h = torch.relu(h)
        return h.view(codes.shape[0], self.n_units, self.n_bins)

    def nll(self, codes: Tensor, labels: Tensor | None = None) -> Tensor:
        """−Σ_i ln q(t_i | t_<i[, y]) of each sample, (B,) nats."""
        logits = self.logits(codes, labels)
        return F.cross_entropy(logits.transpose(1, 2), codes, reduction="none").sum(dim=1)


# --- fitting ----------------------------------------------------------------------------------------------


def fit_entropy(
    codes_train: Tensor,
    codes_test: Tensor,
    spec: DensitySpec,
    seed: int,
    labels_train: Tensor | None = None,
    labels_test: Tensor | None = None,
    n_classes: int = 0,
    device: torch.device | str | None = None,
) -> DensityFit:
    """Train one MADE on ``codes_train`` and score it on ``codes_test``: Ĥ(T), or Ĥ(T|Y) with labels, nats.

    codes_train (N_train, n), codes_test (N_test, n): int codes in 0..spec.n_bins−1 (``discretise``).
    labels_train (N_train,), labels_test (N_test,): ints in 0..n_classes−1, given together with
    n_classes ≥ 1 (pass the number of classes of the whole data set, not just those present). Everything the
    fit needs is an argument and the result holds plain numbers, so it can run as a remote task. device: where
    to train (default: the device of ``codes_train``). The loss is the mean over samples of
    −Σ_i ln q(t_i | t_<i[, y]) (cross-entropy per unit, summed over units); Adam, ``spec.epochs`` epochs of
    ``spec.batch_size`` samples in a seeded order.
    """
    start_time = time.perf_counter()
    if not isinstance(spec, DensitySpec):
        raise ConfigError(f"spec must be a DensitySpec, got {type(spec).__name__}")
    device = torch.device(device) if device is not None else codes_train.device
    n_units = _check_codes("codes_train", codes_train, spec.n_bins, None)
    _check_codes("codes_test", codes_test, spec.n_bins, n_units)
    if not _is_int(n_classes) or n_classes < 0:
        raise ConfigError(f"n_classes must be an integer >= 0, got {n_classes!r}")
    if (labels_train is None) != (labels_test is None) or (labels_train is not None) != (n_classes > 0):
        raise ConfigError(
            f"give labels_train, labels_test and n_classes >= 1 together, or none of them; got n_classes={n_classes}"
            f", labels_train {'given' if labels_train is not None else 'None'}"
            f", labels_test {'given' if labels_test is not None else 'None'}"
        )
    if n_classes:
        _check_labels("labels_train", labels_train, codes_train.shape[0], n_classes)
        _check_labels("labels_test", labels_test, codes_test.shape[0], n_classes)

    def on_device(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(device=device, dtype=torch.long)

    fit_codes, fit_labels = on_device(codes_train), on_device(labels_train)
    test_codes, test_labels = on_device(codes_test), on_device(labels_test)
    val_codes = val_labels = None
    if spec.patience is not None:
        n_all = fit_codes.shape[0]
        if n_all < 2:
            raise ConfigError(f"early stopping (patience) needs at least 2 training samples, got {n_all}")
        n_val = min(max(1, round(n_all * spec.validation_fraction)), n_all - 1)
        order = torch.randperm(n_all, generator=seeding.generator(seed, "density-validation")).to(device)
        val, fit = order[:n_val], order[n_val:]
        val_codes, fit_codes = fit_codes[val], fit_codes[fit]
        if fit_labels is not None:
            val_labels, fit_labels = fit_labels[val], fit_labels[fit]

    model = MADE(n_units, spec.n_bins, (spec.hidden, spec.hidden), n_classes, spec.direct, seed).to(device)
    model.init_marginals(fit_codes, fit_labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=spec.lr)
    n_fit = fit_codes.shape[0]
    best, best_epoch, best_state, epochs_run = math.inf, 0, None, 0
    with _flush_denormals(device), torch.enable_grad():  # trains even when called under torch.no_grad()
        for epoch in range(spec.epochs):
            order = seeding.permutation(n_fit, seed, "density-batches", epoch, device)
            for first in range(0, n_fit, spec.batch_size):
                rows = order[first : first + spec.batch_size]
                loss = model.nll(fit_codes[rows], None if fit_labels is None else fit_labels[rows]).mean()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
            epochs_run = epoch + 1
            if val_codes is not None:
                score = _mean_nll(model, val_codes, val_labels)
                if score < best:
                    best, best_epoch, best_state = score, epochs_run, copy.deepcopy(model.state_dict())
                elif epochs_run - best_epoch >= spec.patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        else:
            best_epoch = epochs_run
        entropy = _mean_nll(model, test_codes, test_labels)
        train_nll = _mean_nll(model, fit_codes, fit_labels)
    return DensityFit(
        entropy=entropy,
        train_nll=train_nll,
        epochs=epochs_run,
        best_epoch=best_epoch,
        seconds=time.perf_counter() - start_time,
        n_train=n_fit,
        n_test=test_codes.shape[0],
    )


def density_entropies(
    activations: Tensor,
    labels: Tensor,
    spec: DensitySpec | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    """(Ĥ(T), Ĥ(T|Y)) in nats: ``discretise`` the activations (N, n), split them by ``split_indices``
    (seeded by ``seed``, ``spec.test_fraction`` held out) and ``fit_entropy`` an unlabelled and a labelled model
    (same seed) on the training share, both scored on the test share. spec: None means ``DensitySpec()``.
    labels (N,): any integers; the distinct values become the classes. Non-finite activations give (nan, nan).
    To train the two models as separate tasks, call ``discretise``, ``split_indices`` and ``fit_entropy`` the
    same way: the results are the same."""
    n_samples = _check_layer(activations, labels)
    spec = DensitySpec() if spec is None else spec
    if not isinstance(spec, DensitySpec):
        raise ConfigError(f"spec must be a DensitySpec, got {type(spec).__name__}")
    if not torch.isfinite(activations).all():
        return math.nan, math.nan
    device = torch.device(device) if device is not None else activations.device
    codes = discretise(activations, spec.n_bins, spec.value_range)
    classes, y = torch.unique(labels, return_inverse=True)
    train, test = split_indices(n_samples, spec.test_fraction, seed)
    train, test = train.to(codes.device), test.to(codes.device)
    h_t = fit_entropy(codes[train], codes[test], spec, seed, device=device).entropy
    y = y.to(codes.device)
    h_ty = fit_entropy(codes[train], codes[test], spec, seed, y[train], y[test], len(classes), device).entropy
    return h_t, h_ty


def density_mi(
    activations: Tensor,
    labels: Tensor,
    spec: DensitySpec | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) = (Ĥ(T), Ĥ(T) − Ĥ(T|Y)) in nats from two density models (seed 004), in the shape of
    ``binning.binned_mi``. activations (N, n), labels (N,); see ``density_entropies``. I(X;T) = H(T) assumes
    a deterministic network (H(T|X) = 0). Non-finite activations give (nan, nan)."""
    h_t, h_ty = density_entropies(activations, labels, spec, seed, device)
    return h_t, h_t - h_ty


@register_layer("density", settings=("density",))
def _density(activations, labels, *, inputs, x_ids, **params):
    return density_mi(activations, labels, DensitySpec(**params))  # trains under no_grad too


# --- helpers ----------------------------------------------------------------------------------------------


@contextmanager
def _flush_denormals(device: torch.device):
    """On the CPU, flush denormal floats to zero while training: Adam's second moments of rarely used logits
    decay into the denormal range, where CPU arithmetic is many times slower (a 256-unit fit took ~1.8× as long,
    with identical results). Restores PyTorch's default (off) afterwards; a no-op on other devices."""
    if device.type != "cpu" or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@torch.no_grad()
def _mean_nll(model: MADE, codes: Tensor, labels: Tensor | None) -> float:
    """Mean over samples of the model's NLL, nats, summed in float64."""
    total = 0.0
    for first in range(0, codes.shape[0], EVAL_BATCH):
        rows = slice(first, first + EVAL_BATCH)
        total += model.nll(codes[rows], None if labels is None else labels[rows]).double().sum().item()
    return total / codes.shape[0]


def _check_codes(name: str, codes: Tensor, n_bins: int, n_units: int | None) -> int:
    if codes.dim() != 2 or codes.shape[0] < 1 or codes.shape[1] < 1:
        raise ConfigError(f"{name} must be (N, n) with N, n >= 1, got shape {tuple(codes.shape)}")
    if n_units is not None and codes.shape[1] != n_units:
        raise ConfigError(f"{name} must have {n_units} units like codes_train, got {codes.shape[1]}")
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise ConfigError(f"{name} must be integer codes (discretise's output), got dtype {codes.dtype}")
    lo, hi = int(codes.min()), int(codes.max())
    if lo < 0 or hi >= n_bins:
        raise ConfigError(f"{name} must lie in 0..{n_bins - 1} (n_bins={n_bins}), got values in {lo}..{hi}")
    return codes.shape[1]


def _check_labels(name: str, labels: Tensor, n_samples: int, n_classes: int) -> None:
    if labels.shape != (n_samples,):
        raise ConfigError(f"{name} must have shape ({n_samples},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ConfigError(f"{name} must be integer labels, got dtype {labels.dtype}")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= n_classes:
        raise ConfigError(f"{name} must lie in 0..{n_classes - 1} (n_classes={n_classes}), got values in {lo}..{hi}")


def _check_layer(activations: Tensor, labels: Tensor) -> int:
    if activations.dim() != 2 or activations.shape[1] < 1:
        raise ConfigError(f"activations must be (N, n) with n >= 1, got shape {tuple(activations.shape)}")
    n_samples = activations.shape[0]
    if labels.shape != (n_samples,):
        raise ConfigError(f"labels must have shape ({n_samples},), got {tuple(labels.shape)}")
    return n_samples


def _check_range(value_range: tuple[float, float], name: str = "range") -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be (lo, hi) with finite lo < hi, got {value_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(f"{name} must be (lo, hi) with finite lo < hi, got {value_range!r}")
    return lo, hi


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)

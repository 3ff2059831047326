"""Several baseline trainings of the same architecture at once, as batched matrix products on one device.

A family whose layers are tanh(W a + b) offers its stacked parameters (``Family.stacked_parameters``: the MLP);
the trainings of any other family run one by one with ``training.train_baseline``, so a grid groups baselines
the same way for every family.

A grid holds many small networks of the same depth and widths (different σw², σb², seeds). Each one alone
leaves a GPU mostly idle; here G of them are trained together: layer l's weights of all networks are one
tensor (G, n_l, n_{l-1}), the forward pass is ``torch.baddbmm``, and one backward pass gives every network the
gradient of its *own* mean loss (the networks share no parameter, so the sum of their losses separates).

Each network is exactly what ``training.train_baseline`` would train with its seed: the same init (built by
``families.build(spec, seed)`` and stacked), its own batch order (``seeding.permutation(…, "baseline-batches",
epoch)``), plain SGD, the loss of ``TrainSpec.loss``, test loss and accuracy after every epoch, and its own stop
(threshold, budget, divergence). A stopped network leaves the stack at the end of that epoch, so the others
go on without its cost. Results equal the one-by-one ones up to float32 summation order.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from infoflow_ray import families, seeding
from infoflow_ray.config import NetworkSpec, TrainSpec
from infoflow_ray.data import Dataset
from infoflow_ray.errors import ConfigError
from infoflow_ray.model import stacked_layer
from infoflow_ray.training import EpochRecord, TrainResult, train_baseline


def stacked_parameters(
    specs: list[NetworkSpec], seeds: list[int], device: torch.device
) -> tuple[list[Tensor], list[Tensor]] | None:
    """The initial weights and biases of ``families.build(spec, seed)`` for every pair, stacked per layer by
    their family; None when the family does not stack.

    Returns weights[l-1] of shape (G, n_l, n_{l-1}) and biases[l-1] of shape (G, 1, n_l), as leaf tensors
    that require grad.
    """
    networks = [families.build(spec, seed, device) for spec, seed in zip(specs, seeds)]
    stacked = specs[0].family.stacked_parameters(networks)
    if stacked is None:
        return None
    weights, biases = stacked
    return [W.requires_grad_() for W in weights], [b.requires_grad_() for b in biases]


def forward(weights: list[Tensor], biases: list[Tensor], x: Tensor) -> Tensor:
    """a_L of every network: x is (G, B, n_0), one batch per network, or (B, n_0), shared; result (G, B, n_L)."""
    for W, b in zip(weights, biases):
        x = stacked_layer(W, b, x)
    return x


def per_network_loss(output: Tensor, labels: Tensor, loss: str) -> Tensor:
    """``training.classification_loss`` of each network: output (G, B, C), labels (G, B) or (B,) → (G,)."""
    if loss == "softmax_twice":
        output = torch.softmax(output, dim=-1)
    labels = labels.expand(output.shape[:-1])
    return F.cross_entropy(output.transpose(1, 2), labels, reduction="none").mean(dim=1)


def _check_same_architecture(specs: list[NetworkSpec], seeds: list[int]) -> None:
    if not specs or len(specs) != len(seeds):
        raise ConfigError(
            f"need one seed per network spec and at least one network, got {len(specs)} specs and {len(seeds)} seeds"
        )
    widths = {(spec.architecture, spec.layer_widths) for spec in specs}
    if len(widths) != 1:
        raise ConfigError(
            f"networks trained together must have the same layer widths, got {len(widths)} different width profiles"
        )


def _stop_reason(history: list[EpochRecord], train: TrainSpec) -> str | None:
    """``BaselineTrainer.stop_reason`` for one network's history."""
    last = history[-1]
    if not (math.isfinite(last.train_loss) and math.isfinite(last.test_loss)):
        return "diverged"
    if train.stop_at_threshold and last.test_accuracy >= train.accuracy_threshold:
        return "threshold"
    if len(history) >= train.max_epochs:
        return "budget"
    return None


def train_baselines_batched(
    specs: list[NetworkSpec],
    train: TrainSpec,
    data: Dataset,
    seeds: list[int],
    device: torch.device | str | None = None,
) -> list[TrainResult]:
    """Train network g = ``families.build(specs[g], seeds[g])`` for every g at once; one ``TrainResult`` each.

    All specs must have the same family and layer widths. ``EpochRecord.seconds`` is the wall time of the shared
    epoch. A family that does not stack (``Family.stacked_parameters`` None) trains them one by one instead.
    """
    _check_same_architecture(specs, seeds)
    if train.optimizer != "sgd":
        raise ConfigError(f"train.optimizer must be 'sgd' for grouped trainings, got {train.optimizer!r}")
    device = torch.device(device) if device is not None else data.train_x.device
    data = data.to(device)
    stacked = stacked_parameters(specs, seeds, device)
    if stacked is None:
        return [train_baseline(spec, train, data, seed, device) for spec, seed in zip(specs, seeds)]
    weights, biases = stacked
    x, y = data.train_x, data.train_y
    n = x.shape[0]
    active = list(range(len(specs)))  # the networks still training, in stack order
    histories: list[list[EpochRecord]] = [[] for _ in specs]
    reasons: list[str | None] = [None] * len(specs)
    for epoch in range(train.max_epochs):
        start = time.perf_counter()
        orders = torch.stack([seeding.permutation(n, seeds[g], "baseline-batches", epoch, device) for g in active])
        total = torch.zeros(len(active), dtype=torch.float64, device=device)
        for batch in orders.split(train.batch_size, dim=1):  # (G, B) sample indices, one row per network
            losses = per_network_loss(forward(weights, biases, x[batch]), y[batch], train.loss)
            grads = torch.autograd.grad(losses.sum(), weights + biases)
            with torch.no_grad():
                torch._foreach_add_(weights + biases, grads, alpha=-train.lr)
            total += losses.detach() * batch.shape[1]
        with torch.no_grad():
            out = forward(weights, biases, data.test_x)
            test_loss = per_network_loss(out, data.test_y, train.loss)
            test_accuracy = (out.argmax(dim=-1) == data.test_y).double().mean(dim=1)
        seconds = time.perf_counter() - start
        columns = zip((total / n).tolist(), test_loss.tolist(), test_accuracy.tolist())
        for g, (train_loss, loss, accuracy) in zip(active, columns):
            histories[g].append(EpochRecord(epoch + 1, train_loss, loss, accuracy, seconds))
            reasons[g] = _stop_reason(histories[g], train)
        keep = [i for i, g in enumerate(active) if reasons[g] is None]
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, device=device)
            weights = [W.detach()[index].requires_grad_() for W in weights]
            biases = [b.detach()[index].requires_grad_() for b in biases]
            active = [active[i] for i in keep]
    return [
        TrainResult(history, reason, any(r.test_accuracy >= train.accuracy_threshold for r in history))
        for history, reason in zip(histories, reasons)
    ]

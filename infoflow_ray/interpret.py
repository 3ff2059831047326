"""Opening the black box (seed 001 §2.3, fig. 5): cascades of a *trained* network, used to look inside it.

A cascade trains on a frozen network, trained or not, so the reconstruction entropy of a trained network is
measured exactly as of an untrained one (``predict``). Here, the two pictures of the paper:

- **retraced decisions**: test images and their reconstructions from every layer, x̂_l = g_1(…g_l(a_l(x))…),
  for images chosen by a stated rule (``choose_examples``): per class, the correctly classified image the
  network is most confident about, and the misclassified image of that class whose wrong label it is most
  confident about — what the network keeps, sharpens or removes on the way to a right and a wrong answer;
- **perfect inputs**: the cascade applied from the output layer down, x*_k = g_1(…g_L(t_k)…), to an artificial
  output activation t_k with maximal activation on label k (``perfect_outputs``): the input the network takes as
  the perfect example of class k. Fed forward, x*_k should be classified as k by a network that has learnt.

No Ray, no Parquet here; ``infoflow_ray.sweep.task_runner.interpret_rows`` makes the tables' rows. Shapes:
images (M, n_0) flattened, as the networks take them; pixel values in the data's units ([0, 1] for MNIST).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from infoflow_ray import families
from infoflow_ray.data import Dataset

PERFECT_OUTPUTS = ("extreme", "class_mean")
"""``extreme``: t_k = +1 on label k and −1 elsewhere, the corners of the tanh output's range.
``class_mean``: the mean output of the test images of class k that the network classifies correctly, scaled
so that its largest |component| is 1 (the maximum of tanh) — the output the network actually gives to a clear k."""

RULES = ("most_confident_correct", "most_confident_mistake")


@dataclass(frozen=True)
class Example:
    """A test image chosen for a retraced-decision strip."""

    image_index: int  # index into the test split
    label: int  # the true label
    predicted: int
    confidence: float  # softmax probability of ``predicted`` (the network's output taken as logits)
    rule: str  # one of RULES


@torch.no_grad()
def classify(network: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Predicted labels (M,) and their softmax probabilities (M,) of the network's output taken as logits."""
    probabilities = torch.softmax(network(x), dim=1)
    confidence, predicted = probabilities.max(dim=1)
    return predicted, confidence


def choose_examples(network: nn.Module, data: Dataset, per_class: int = 1) -> list[Example]:
    """Per class of the test split: the ``per_class`` correctly classified images with the highest confidence,
    then the ``per_class`` misclassified images of that class with the highest confidence in their wrong label
    (fewer where there are fewer); in class order."""
    predicted, confidence = classify(network, data.test_x)
    labels = data.test_y
    chosen = []
    for k in range(data.n_classes):
        for rule, mask in (
            ("most_confident_correct", (labels == k) & (predicted == k)),
            ("most_confident_mistake", (labels == k) & (predicted != k)),
        ):
            index = torch.nonzero(mask).flatten()
            order = confidence[index].argsort(descending=True)[:per_class]
            chosen += [Example(int(i), k, int(predicted[i]), float(confidence[i]), rule) for i in index[order].tolist()]
    return chosen


@torch.no_grad()
def retrace(network: nn.Module, decoders, x: Tensor) -> Tensor:
    """x (M, n_0) and its reconstructions from layers 1..L: shape (M, L+1, n_0), layer 0 the image itself."""
    _, recon = next(families.reconstruct_in_chunks(network, decoders, x, decoders.depth))  # (L, M, n_0)
    return torch.cat([x[None], recon]).transpose(0, 1)


@torch.no_grad()
def perfect_outputs(network: nn.Module, data: Dataset, kind: str = "extreme") -> Tensor:
    """One artificial output activation per class, shape (n_classes, n_L); see PERFECT_OUTPUTS. ``class_mean``
    falls back to ``extreme`` for a class the network never classifies correctly."""
    if kind not in PERFECT_OUTPUTS:
        raise ValueError(f"perfect output must be one of {', '.join(PERFECT_OUTPUTS)}, got {kind!r}")
    n = data.n_classes
    extreme = 2 * torch.eye(n, device=data.test_x.device) - 1
    if kind == "extreme":
        return extreme
    outputs = network(data.test_x)
    predicted = outputs.argmax(dim=1)
    rows = []
    for k in range(n):
        correct = (data.test_y == k) & (predicted == k)
        if not correct.any():
            rows.append(extreme[k])
            continue
        mean = outputs[correct].mean(dim=0)
        rows.append(mean / mean.abs().max())
    return torch.stack(rows)


@torch.no_grad()
def decode_from_output(decoders, outputs: Tensor) -> Tensor:
    """The cascade from the output layer down: g_1(…g_L(t)…) for every row t of ``outputs`` (M, n_L) → (M, n_0).
    Any family's decoders: ``decode(l, a_l)`` ≈ a_{l−1}."""
    a = outputs
    for layer in range(decoders.depth, 0, -1):
        a = decoders.decode(layer, a)
    return a.flatten(1)


@torch.no_grad()
def perfect_inputs(network: nn.Module, decoders, data: Dataset, kind: str = "extreme") -> Tensor:
    """x*_k for every class k, shape (n_classes, n_0)."""
    return decode_from_output(decoders, perfect_outputs(network, data, kind))

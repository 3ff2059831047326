"""One prediction: build the untrained network, train its cascade, measure entropies, find the cutoffs.

``predict_trainability`` is what a Ray actor calls for a cascade task: a config in, plain numpy arrays out
(no Ray, no Parquet here). Units: entropies in nats; layers count linear layers (0 = the input).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from infoflow_ray import cascade, cutoff, entropy, families
from infoflow_ray.config import CascadeSpec, NetworkSpec
from infoflow_ray.data import Dataset

EVAL_MEMORY_BUDGET_BYTES = 2 * 1024**3
"""Working memory for evaluating reconstructions (chains + float64 entropy copies), per chunk of layers."""

MAX_STORED_LAYERS = 24


@dataclass(frozen=True)
class Prediction:
    """Everything one cascade task measures. Curves are over layers 0..L (layer 0 = the input itself).

    kl_per_image (L+1, M), kl_mean / kl_median / diff_entropy (L+1,) float64 nats, clamped_pixels (L+1,),
    decoder_loss (L,) mean MSE of decoder l over its last epoch (index l-1). ``cutoffs`` maps a measure name
    to its ``Cutoff``; the per-image KL cutoffs are summarised as mean/std over finite images.
    stored_layers (K,) and stored_images (n_images, K, n_0) float32: a few reconstructions for pictures
    (layer 0 in stored_layers is the input).
    """

    kl_per_image: np.ndarray
    kl_mean: np.ndarray
    kl_median: np.ndarray
    diff_entropy: np.ndarray
    clamped_pixels: np.ndarray
    decoder_loss: np.ndarray
    cutoffs: dict[str, cutoff.Cutoff]
    per_image_cutoff_mean: float
    per_image_cutoff_std: float
    cutoff_last_layer: int
    stored_layers: np.ndarray
    stored_images: np.ndarray
    finite: bool
    strategy: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return len(self.decoder_loss)


def stored_layer_indices(depth: int, max_layers: int = MAX_STORED_LAYERS) -> np.ndarray:
    """Layers whose reconstructions are kept for pictures: 0 (input), 1, …, L, at most ``max_layers`` + 1."""
    if depth <= max_layers:
        return np.arange(depth + 1)
    return np.unique(np.concatenate([[0], np.round(np.linspace(1, depth, max_layers)).astype(int)]))


def _eval_images(data: Dataset, spec: CascadeSpec) -> torch.Tensor:
    x = data.test_x
    return x if spec.eval_samples is None else x[: spec.eval_samples]


@torch.no_grad()
def measure(
    network: torch.nn.Module,
    trained: cascade.TrainedCascade,
    x: torch.Tensor,
    spec: CascadeSpec,
    memory_budget_bytes: int = EVAL_MEMORY_BUDGET_BYTES,
) -> dict[str, np.ndarray]:
    """Reconstruct ``x`` (M, n_0) from every layer and return the curves and the kept reconstructions."""
    depth = trained.decoders.depth
    keep = stored_layer_indices(depth)
    n_keep = min(spec.stored_images, x.shape[0])
    kept = {0: x[:n_keep]}
    kl = [torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)]
    de = [entropy.differential_entropy(x, spec.sigma_floor_rel)]
    chunk = cascade.layers_per_chunk(x.shape[0], network.spec.layer_widths, memory_budget_bytes)
    for first, recon in families.reconstruct_in_chunks(network, trained.decoders, x, chunk):
        kl.append(entropy.kl_per_image(x, recon))
        for i, layer_recon in enumerate(recon):
            de.append(entropy.differential_entropy(layer_recon, spec.sigma_floor_rel))
            if first + i in keep:
                kept[first + i] = layer_recon[:n_keep]
    kl_per_image = torch.cat([kl[0][None], *kl[1:]]).cpu().numpy()
    return {
        "kl_per_image": kl_per_image,
        "diff_entropy": torch.stack([d.value for d in de]).cpu().numpy(),
        "clamped_pixels": torch.stack([d.clamped_pixels for d in de]).cpu().numpy(),
        "stored_layers": keep,
        "stored_images": torch.stack([kept[k] for k in keep], dim=1).float().cpu().numpy(),
    }


def cutoffs_of(curves: dict[str, np.ndarray], spec: CascadeSpec, last_layer: int) -> tuple[dict, float, float]:
    """The cutoffs method §4 asks for, over layers 0..last_layer, and the per-image KL cutoff mean and std."""
    tol = dict(rtol=spec.rtol, atol=spec.atol, last_layer=last_layer)
    kl = curves["kl_per_image"]
    found = {
        "kl_mean": cutoff.find_cutoff(kl.mean(axis=1), **tol),
        "kl_median_normalised": cutoff.find_cutoff(cutoff.normalised(np.median(kl, axis=1)), **tol),
        "diff_entropy": cutoff.find_cutoff(curves["diff_entropy"], **tol),
    }
    layers, _, finite = cutoff.find_cutoffs(kl.T, **tol)
    per_image = layers[finite].astype(np.float64)
    mean = float(per_image.mean()) if per_image.size else float("nan")
    std = float(per_image.std()) if per_image.size else float("nan")
    return found, mean, std


def predict_trainability(
    network_spec: NetworkSpec,
    cascade_spec: CascadeSpec,
    data: Dataset,
    seed: int,
    device: torch.device | str | None = None,
    progress: cascade.ProgressFn | None = None,
) -> Prediction:
    """Run one cascade task on ``data`` (moved to ``device`` if it is not there already)."""
    return predict_trainabilities([network_spec], cascade_spec, data, [seed], device, progress)[0]


def predict_trainabilities(
    network_specs: list[NetworkSpec],
    cascade_spec: CascadeSpec,
    data: Dataset,
    seeds: list[int],
    device: torch.device | str | None = None,
    progress: cascade.ProgressFn | None = None,
) -> list[Prediction]:
    """Several cascade tasks whose networks have one family and equal widths, their cascades trained by the family
    (``Family.train_cascades``: the MLP's together); each prediction is what ``predict_trainability`` gives for its
    pair alone, up to float32 summation order.
    The evaluation runs one network at a time (its matmuls are large already).
    """
    device = torch.device(device) if device is not None else data.train_x.device
    data = data.to(device)
    networks = [families.build(spec, seed, device) for spec, seed in zip(network_specs, seeds)]
    trained = families.train_cascades(networks, data.train_x, cascade_spec, seeds, progress)
    return [evaluate(network, t, data, cascade_spec) for network, t in zip(networks, trained)]


def evaluate(network: torch.nn.Module, trained: cascade.TrainedCascade, data: Dataset, spec: CascadeSpec) -> Prediction:
    """Measure a trained cascade of ``network`` (untrained, or trained: ``interpret``) on ``data``'s test split."""
    start = time.perf_counter()
    curves = measure(network, trained, _eval_images(data, spec), spec)
    last_layer = network.spec.cutoff_last_layer(spec.cutoff_layers)
    found, per_image_mean, per_image_std = cutoffs_of(curves, spec, last_layer)
    kl = curves["kl_per_image"]
    finite = bool(
        np.isfinite(kl).all()
        and np.isfinite(curves["diff_entropy"]).all()
        and np.isfinite(trained.decoder_loss.numpy()).all()
    )
    return Prediction(
        kl_per_image=kl,
        kl_mean=kl.mean(axis=1),
        kl_median=np.median(kl, axis=1),
        diff_entropy=curves["diff_entropy"],
        clamped_pixels=curves["clamped_pixels"],
        decoder_loss=trained.decoder_loss.numpy(),
        cutoffs=found,
        per_image_cutoff_mean=per_image_mean,
        per_image_cutoff_std=per_image_std,
        cutoff_last_layer=last_layer,
        stored_layers=curves["stored_layers"],
        stored_images=curves["stored_images"],
        finite=finite,
        strategy=trained.strategy,
        seconds={"cascade_train": trained.seconds, "evaluate": time.perf_counter() - start},
    )

"""Does TF32 change the science? Entropy curves and cutoffs with float32 matmuls against TF32 matmuls.

TF32 (the tensor-core format of A100/H100 matmuls) keeps float32's range but only 10 of its 23 mantissa bits
for the matmul *operands*; products are accumulated in float32. The entropies themselves are always computed
in float64 (``infoflow_ray.entropy``). This script runs ``predict_trainability`` (cascade training *and* the
reconstructions) twice per network, in one process, with the same seeds:

- on CUDA: ``torch.set_float32_matmul_precision("highest")`` against ``"high"`` (real TF32 tensor cores);
- on CPU: float32 against *emulated* TF32: a ``TorchFunctionMode`` rounds the float32 operands of every matmul
  (mm, bmm, addmm, baddbmm, matmul, linear, @) to 10 mantissa bits (round to nearest) before the float32 product,
  which is what a TF32 tensor core computes up to its accumulation order.

It prints, per σw²: the cutoffs of each measure in both precisions, the largest change of the KL-mean curve
(relative) and of the differential-entropy curve (nats), and, for scale, the same differences between two seeds
in float32 (the spread the science already lives with).

    .venv/bin/python benchmarks/bench_precision.py                       # depth 20, σw² 0.5 1.0 1.76 3.0
    .venv/bin/python benchmarks/bench_precision.py --depth 60 --n-train 8000
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_device_args, device_of  # noqa: E402

from infoflow_ray import cascade  # noqa: E402
from infoflow_ray.config import CascadeSpec, NetworkSpec  # noqa: E402
from infoflow_ray.data import load_dataset  # noqa: E402
from infoflow_ray.model import TanhNetwork  # noqa: E402
from infoflow_ray.predict import Prediction, evaluate  # noqa: E402

MATMULS = {
    torch.mm,
    torch.bmm,
    torch.addmm,
    torch.baddbmm,
    torch.matmul,
    F.linear,
    torch.Tensor.__matmul__,
    torch.Tensor.matmul,
    torch.Tensor.mm,
    torch.Tensor.bmm,
}


def round_to_tf32(t: torch.Tensor) -> torch.Tensor:
    """float32 → the nearest value with 10 mantissa bits (TF32), as float32; other dtypes unchanged."""
    if not isinstance(t, torch.Tensor) or t.dtype != torch.float32:
        return t
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)


class EmulatedTF32(TorchFunctionMode):
    """Rounds the operands of every float32 matmul to TF32 (``calls`` counts the rounded matmuls)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in MATMULS:
            self.calls += 1
            args = tuple(round_to_tf32(a) for a in args)
            kwargs = {k: round_to_tf32(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


@contextlib.contextmanager
def tf32(device: torch.device):
    """Real TF32 on CUDA, emulated TF32 on CPU."""
    if device.type == "cuda":
        old = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high")
        try:
            yield None
        finally:
            torch.set_float32_matmul_precision(old)
    else:
        with EmulatedTF32() as mode:
            yield mode


def predict(
    network_spec: NetworkSpec,
    spec: CascadeSpec,
    data,
    seed: int,
    device: torch.device,
    tf32_training: bool,
    tf32_evaluation: bool,
) -> Prediction:
    """``predict_trainability``, with the cascade training and the evaluation each in float32 or TF32."""
    network = TanhNetwork(network_spec, seed, device)
    with tf32(device) if tf32_training else contextlib.nullcontext() as mode:
        trained = cascade.train_cascade(network, data.train_x, spec, seed)
    _check(mode)
    with tf32(device) if tf32_evaluation else contextlib.nullcontext() as mode:
        prediction = evaluate(network, trained, data, spec)
    _check(mode)
    return prediction


def _check(mode: EmulatedTF32 | None) -> None:
    if mode is not None and mode.calls == 0:
        raise RuntimeError("the TF32 emulation rounded no matmul: the benchmark would compare float32 to itself")


def differences(a: Prediction, b: Prediction) -> tuple[float, float]:
    """Largest relative change of the KL-mean curve (layers ≥ 1) and largest change of diff. entropy (nats)."""
    kl = np.abs(a.kl_mean[1:] - b.kl_mean[1:]) / np.maximum(np.abs(b.kl_mean[1:]), 1e-12)
    return float(kl.max()), float(np.abs(a.diff_entropy - b.diff_entropy).max())


def cutoff_text(p: Prediction) -> str:
    return " ".join(f"{name}={c.layer}" for name, c in p.cutoffs.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--sigma-w2", type=float, nargs="+", default=[0.5, 1.0, 1.76, 3.0])
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--eval-images", type=int, default=1000)
    add_device_args(parser)
    args = parser.parse_args()
    device, name = device_of(args)
    mode = "real TF32 (tensor cores)" if device.type == "cuda" else "emulated TF32 (operands rounded to 10 bits)"
    print(f"# bench_precision on {name}, torch {torch.__version__}: float32 vs {mode}")
    data = load_dataset("mnist_t10k")
    data = dataclasses.replace(data, train_x=data.train_x[: args.n_train], train_y=data.train_y[: args.n_train])
    spec = CascadeSpec(eval_samples=args.eval_images)
    print(f"depth {args.depth}, {args.n_train} training images, 1 epoch, {args.eval_images} test images\n")
    variants = {
        "training and evaluation in TF32": (True, True),
        "training in TF32, evaluation in float32": (True, False),
    }
    print(
        "| σw² | TF32 in | cutoffs float32 (seed 0) | cutoffs TF32 (seed 0) | same | KL-mean max rel. change | "
        "diff-entropy max change (nats) |"
    )
    print("|---|---|---|---|---|---|---|")
    same_cutoffs = {name: True for name in variants}
    for sigma_w2 in args.sigma_w2:
        network = NetworkSpec(sigma_w2, args.depth)
        data = data.to(device)
        full = predict(network, spec, data, 0, device, False, False)
        for name, (in_training, in_evaluation) in variants.items():
            reduced = predict(network, spec, data, 0, device, in_training, in_evaluation)
            kl, de = differences(reduced, full)
            same = full.cutoffs == reduced.cutoffs
            same_cutoffs[name] &= same
            print(
                f"| {sigma_w2:g} | {name} | {cutoff_text(full)} | {cutoff_text(reduced)} | {'yes' if same else 'NO'} "
                f"| {kl:.2e} | {de:.2e} |",
                flush=True,
            )
        other_seed = predict(network, spec, data, 1, device, False, False)
        kl_seed, de_seed = differences(other_seed, full)
        print(
            f"| {sigma_w2:g} | (float32, seed 1 vs seed 0: the spread over seeds) | | {cutoff_text(other_seed)} | "
            f"| {kl_seed:.2e} | {de_seed:.2e} |",
            flush=True,
        )
    for name, same in same_cutoffs.items():
        print(f"{name}: all cutoffs equal to float32: {'yes' if same else 'no'}")


if __name__ == "__main__":
    main()

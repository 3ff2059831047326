"""Datasets by name -> train / test tensors, small enough to stay resident on one device.

`mnist_t10k` (the default) is bundled with the package and works offline; `digits` (scikit-learn's bundled
8×8 handwritten digits, 1,797 images) also needs no download; `synthetic` is generated from a seed; `mnist`,
`fashion_mnist` and `cifar10_gray` come from torchvision, downloaded at most once per node into a cache folder.
Pre-download on a machine with internet:

    python -m infoflow_ray.data download mnist --cache-dir DIR     # then copy DIR, or set INFOFLOW_DATA_DIR
    python -m infoflow_ray.data verify                             # check the bundled files' MD5 sums
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gzip
import hashlib
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from infoflow_ray.errors import ConfigError, DatasetUnavailableError, InfoflowError

DATASET_NAMES = ("mnist_t10k", "digits", "synthetic", "mnist", "fashion_mnist", "cifar10_gray")
TORCHVISION_NAMES = ("mnist", "fashion_mnist", "cifar10_gray")

BUNDLED_DIR = resources.files("infoflow_ray") / "datasets" / "mnist_t10k"
T10K_IMAGES, T10K_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
T10K_N_TRAIN = 8_000  # of the 10,000 t10k images: the first 8,000 train, the last 2,000 test
DIGITS_N_TRAIN = 1_437  # of scikit-learn's 1,797 8×8 digits: the first 1,437 (80 %) train, the last 360 test
DIGITS_MAX = 16.0  # its pixels are counts 0..16 (4×4 blocks of a 32×32 bitmap)
LUMINANCE_RGB = (0.299, 0.587, 0.114)  # ITU-R BT.601 grayscale weights
DOWNLOAD_TIMEOUT_SECONDS = 10  # per socket operation, so that an offline node fails fast


@dataclass(frozen=True)
class Dataset:
    """Images as rows: train_x (N_train, D) float32 in [0, 1], train_y (N_train,) int64; test_* alike."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    n_classes: int

    @property
    def n_inputs(self) -> int:
        """D, the number of pixels (inputs) per image."""
        return self.train_x.shape[1]

    def to(self, device: torch.device | str) -> Dataset:
        """The same dataset with every tensor on `device` (load once per worker, then keep it there)."""
        moved = {f: getattr(self, f).to(device) for f in ("train_x", "train_y", "test_x", "test_y")}
        return dataclasses.replace(self, **moved)


def load_dataset(
    name: str,
    *,
    cache_dir: str | Path | None = None,
    download: bool = True,
    seed: int = 0,
    n_inputs: int = 64,
    n_train: int = 2000,
    n_test: int = 500,
    n_classes: int = 10,
) -> Dataset:
    """The dataset `name` (one of DATASET_NAMES) on the CPU.

    cache_dir and download apply to the torchvision datasets; seed, n_inputs, n_train, n_test and
    n_classes apply to `synthetic` only.
    """
    if name == "mnist_t10k":
        images, labels = _mnist_t10k_arrays(BUNDLED_DIR)
        x = torch.from_numpy(images).reshape(len(images), -1).to(torch.float32) / 255
        y = torch.from_numpy(labels).to(torch.int64)
        n = T10K_N_TRAIN
        return Dataset(name, x[:n].clone(), y[:n].clone(), x[n:].clone(), y[n:].clone(), n_classes=10)
    if name == "digits":
        return _digits()
    if name == "synthetic":
        return _synthetic(seed, n_inputs, n_train, n_test, n_classes)
    if name in TORCHVISION_NAMES:
        return _torchvision(name, data_root(cache_dir), download)
    raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")


def batches(n: int, batch_size: int, generator: torch.Generator | None, device) -> Iterator[Tensor]:
    """Index tensors (int64, on `device`) covering range(n) once, shuffled if `generator` is given.

    For in-memory training on resident data: `for idx in batches(...): x = data.train_x[idx]`.
    The last batch is shorter when batch_size does not divide n.
    """
    if n < 0 or batch_size < 1:
        raise ConfigError(f"batches needs n >= 0 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    if generator is None:
        order = torch.arange(n, device=device)
    else:
        order = torch.randperm(n, generator=generator, device=generator.device).to(device)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def data_root(cache_dir: str | Path | None = None) -> Path:
    """Where torchvision datasets live: cache_dir, else $INFOFLOW_DATA_DIR, else ~/.cache/infoflow_ray/datasets."""
    root = cache_dir or os.environ.get("INFOFLOW_DATA_DIR") or "~/.cache/infoflow_ray/datasets"
    return Path(root).expanduser()


def verify_checksums(directory: Path | Traversable = BUNDLED_DIR) -> None:
    """Raise DatasetUnavailableError unless every file listed in directory/MD5SUMS has its MD5 sum."""
    for line in (directory / "MD5SUMS").read_text().splitlines():
        expected, filename = line.split()
        try:
            actual = hashlib.md5((directory / filename).read_bytes()).hexdigest()
        except FileNotFoundError:
            raise DatasetUnavailableError(
                f"bundled file {filename} is missing from {directory}; reinstall infoflow-ray"
            ) from None
        if actual != expected:
            raise DatasetUnavailableError(
                f"bundled file {filename} in {directory} has MD5 {actual}, expected {expected}; reinstall infoflow-ray"
            )


@functools.lru_cache(maxsize=2)
def _mnist_t10k_arrays(directory: Path | Traversable) -> tuple[np.ndarray, np.ndarray]:
    """(images (10000, 28, 28) uint8, labels (10000,) uint8), checked and parsed once per process."""
    verify_checksums(directory)
    images = _read_idx(gzip.decompress((directory / T10K_IMAGES).read_bytes()), magic=2051, n_dims=3)
    labels = _read_idx(gzip.decompress((directory / T10K_LABELS).read_bytes()), magic=2049, n_dims=1)
    return images, labels


def _read_idx(raw: bytes, magic: int, n_dims: int) -> np.ndarray:
    """An IDX file of unsigned bytes: big-endian int32 magic number and n_dims sizes, then the data."""
    header = np.frombuffer(raw, dtype=">i4", count=1 + n_dims)
    if header[0] != magic:
        raise DatasetUnavailableError(f"IDX magic number {header[0]}, expected {magic}; reinstall infoflow-ray")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 * (1 + n_dims)).reshape(tuple(header[1:])).copy()


def _digits() -> Dataset:
    """scikit-learn's bundled 8×8 digits (its files ship with the package: no download), pixels / 16 in [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetUnavailableError("dataset 'digits' needs scikit-learn: pip install scikit-learn") from None
    bunch = load_digits()
    x = torch.from_numpy(bunch.data).to(torch.float32) / DIGITS_MAX  # (1797, 64)
    y = torch.from_numpy(bunch.target).to(torch.int64)
    n = DIGITS_N_TRAIN
    return Dataset("digits", x[:n].clone(), y[:n].clone(), x[n:].clone(), y[n:].clone(), n_classes=10)


def _synthetic(seed: int, n_inputs: int, n_train: int, n_test: int, n_classes: int) -> Dataset:
    """Class prototypes uniform in [0, 1]^n_inputs; each sample is its prototype + N(0, 0.2²) noise, clipped."""
    sizes = {"n_inputs": (n_inputs, 1), "n_train": (n_train, 1), "n_test": (n_test, 1), "n_classes": (n_classes, 2)}
    for key, (value, least) in sizes.items():
        if not (isinstance(value, int) and value >= least):
            raise ConfigError(f"synthetic dataset needs {key} to be an integer >= {least}, got {value!r}")
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(n_classes, n_inputs, generator=g)

    def sample(n: int) -> tuple[Tensor, Tensor]:
        y = (torch.arange(n) % n_classes)[torch.randperm(n, generator=g)]  # balanced to within one
        x = prototypes[y] + 0.2 * torch.randn(n, n_inputs, generator=g)
        return x.clamp_(0.0, 1.0), y

    train_x, train_y = sample(n_train)
    test_x, test_y = sample(n_test)
    return Dataset("synthetic", train_x, train_y, test_x, test_y, n_classes)


def _torchvision(name: str, root: Path, download: bool) -> Dataset:
    """Train and test splits from the torchvision cache in `root`, downloading them once per node if allowed."""
    try:
        train, test = _torchvision_splits(name, root, download=False)
    except RuntimeError:  # torchvision: "Dataset not found. You can use download=True to download it"
        reason = _download(name, root) if download else "download=False"
        if reason:
            raise DatasetUnavailableError(
                f"dataset {name!r} is not in {root} and could not be downloaded ({reason}); download it on a machine "
                f"with internet with `python -m infoflow_ray.data download {name} --cache-dir DIR` and copy DIR, "
                f"or set INFOFLOW_DATA_DIR"
            ) from None
        train, test = _torchvision_splits(name, root, download=False)
    if name == "cifar10_gray":  # .data is (N, 32, 32, 3) uint8 numpy
        pixels = [torch.from_numpy(s.data).to(torch.float32) @ torch.tensor(LUMINANCE_RGB) for s in (train, test)]
    else:  # .data is (N, 28, 28) uint8 tensor
        pixels = [s.data.to(torch.float32) for s in (train, test)]
    xs = [(p / 255).clamp_(0.0, 1.0).reshape(len(p), -1) for p in pixels]
    ys = [torch.as_tensor(s.targets, dtype=torch.int64) for s in (train, test)]
    return Dataset(name, xs[0], ys[0], xs[1], ys[1], n_classes=10)


def _torchvision_splits(name: str, root: Path, download: bool):
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10_gray": tvd.CIFAR10}[name]
    return cls(str(root), train=True, download=download), cls(str(root), train=False, download=download)


def _download(name: str, root: Path) -> str | None:
    """Download `name` into root under a file lock (one download per node); None, or why it failed."""
    from filelock import FileLock

    previous_timeout = socket.getdefaulttimeout()
    try:
        root.mkdir(parents=True, exist_ok=True)
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
        with FileLock(str(root / f".{name}.lock")):  # a second worker waits, then finds the files present
            _torchvision_splits(name, root, download=True)
    except Exception as error:  # torchvision raises RuntimeError, URLError, OSError, ... when offline
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        return " ".join(dict.fromkeys([lines[0], lines[-1]]))[:300]  # MNIST: "Error downloading f:" ... last error
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infoflow_ray.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="download a torchvision dataset into the cache folder")
    fetch.add_argument("name", choices=DATASET_NAMES)
    fetch.add_argument("--cache-dir", help="default: $INFOFLOW_DATA_DIR, else ~/.cache/infoflow_ray/datasets")
    commands.add_parser("verify", help="check the MD5 sums of the bundled mnist_t10k files")
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            verify_checksums()
            print(f"mnist_t10k: bundled files in {BUNDLED_DIR} match MD5SUMS")
        else:
            data = load_dataset(args.name, cache_dir=args.cache_dir, download=True)
            where = data_root(args.cache_dir) if args.name in TORCHVISION_NAMES else "no download needed"
            print(f"{args.name}: {len(data.train_y)} train / {len(data.test_y)} test images ({where})")
    except InfoflowError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

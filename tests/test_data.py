"""Datasets: the bundled MNIST-t10k against an independent decode, synthetic data, clear errors, batching."""

import gzip
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from infoflow_ray import data
from infoflow_ray.data import DATASET_NAMES, Dataset, batches, load_dataset
from infoflow_ray.errors import ConfigError, DatasetUnavailableError

BUNDLED = Path(str(data.BUNDLED_DIR))


def _decode_images_by_hand() -> np.ndarray:
    """All 10,000 t10k images as (10000, 784) uint8, decoded without infoflow_ray."""
    raw = gzip.decompress((BUNDLED / "t10k-images-idx3-ubyte.gz").read_bytes())
    assert int.from_bytes(raw[:4], "big") == 2051 and int.from_bytes(raw[4:8], "big") == 10_000
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(10_000, 784)


def _decode_labels_by_hand() -> np.ndarray:
    raw = gzip.decompress((BUNDLED / "t10k-labels-idx1-ubyte.gz").read_bytes())
    return np.frombuffer(raw[8:], dtype=np.uint8)


@pytest.fixture(scope="module")
def t10k() -> Dataset:
    return load_dataset("mnist_t10k")


def test_bundled_files_are_the_shared_originals():
    assert sorted(p.name for p in BUNDLED.iterdir() if not p.name.startswith(".")) == [
        "MD5SUMS",
        "README.md",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert "CC BY-SA 3.0" in (BUNDLED / "README.md").read_text()
    data.verify_checksums()


def test_mnist_t10k_shapes_types_and_range(t10k):
    assert t10k.name == "mnist_t10k" and t10k.n_classes == 10 and t10k.n_inputs == 784
    assert t10k.train_x.shape == (8000, 784) and t10k.test_x.shape == (2000, 784)
    assert t10k.train_y.shape == (8000,) and t10k.test_y.shape == (2000,)
    assert t10k.train_x.dtype == t10k.test_x.dtype == torch.float32
    assert t10k.train_y.dtype == t10k.test_y.dtype == torch.int64
    for x in (t10k.train_x, t10k.test_x):
        assert x.min() == 0.0 and x.max() == 1.0  # pixels /255: black is 0, full ink is exactly 1
    for y in (t10k.train_y, t10k.test_y):
        assert set(y.tolist()) == set(range(10))


def test_mnist_t10k_matches_an_independent_decode(t10k):
    images, labels = _decode_images_by_hand(), _decode_labels_by_hand()
    assert torch.equal(t10k.train_x[0], torch.from_numpy(images[0].astype(np.float32) / 255))
    assert torch.equal(t10k.test_x, torch.from_numpy(images[8000:].astype(np.float32) / 255))
    assert torch.equal(t10k.train_y, torch.from_numpy(labels[:8000].astype(np.int64)))
    assert torch.equal(t10k.test_y, torch.from_numpy(labels[8000:].astype(np.int64)))
    assert t10k.train_y[0] == 7  # the first t10k digit is a 7


def test_mnist_t10k_loads_are_independent_copies(t10k):
    again = load_dataset("mnist_t10k")
    again.train_x.zero_()
    assert load_dataset("mnist_t10k").train_x.max() == 1.0 and t10k.train_x.max() == 1.0


def test_checksum_mismatch_is_detected_naming_the_file(tmp_path):
    for p in BUNDLED.iterdir():
        shutil.copy(p, tmp_path / p.name)
    data.verify_checksums(tmp_path)  # an intact copy passes
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    corrupted = bytearray(labels.read_bytes())
    corrupted[-10] ^= 0xFF
    labels.write_bytes(bytes(corrupted))
    for check in (data.verify_checksums, data._mnist_t10k_arrays):
        with pytest.raises(DatasetUnavailableError) as caught:
            check(tmp_path)
        assert "t10k-labels-idx1-ubyte.gz" in str(caught.value) and "\n" not in str(caught.value)


def test_synthetic_is_deterministic_per_seed():
    a, b, c = (load_dataset("synthetic", seed=s) for s in (3, 3, 4))
    for field in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.train_x, c.train_x)


def test_synthetic_shapes_balance_and_learnability():
    d = load_dataset("synthetic", seed=0, n_inputs=32, n_train=300, n_test=90, n_classes=3)
    assert d.train_x.shape == (300, 32) and d.test_x.shape == (90, 32) and d.n_inputs == 32 and d.n_classes == 3
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    assert 0.0 <= d.train_x.min() and d.train_x.max() <= 1.0
    assert torch.bincount(d.train_y).tolist() == [100, 100, 100]
    means = torch.stack([d.train_x[d.train_y == k].mean(0) for k in range(3)])
    assert torch.cdist(means, means)[~torch.eye(3, dtype=torch.bool)].min() > 1.0  # classes are far apart
    nearest_mean = torch.cdist(d.test_x, means).argmin(1)  # a nearest-class-mean classifier learns it
    assert (nearest_mean == d.test_y).float().mean() > 0.95


@pytest.mark.parametrize("kwargs", [{"n_classes": 1}, {"n_inputs": 0}, {"n_train": -5}])
def test_synthetic_refuses_bad_sizes(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        load_dataset("synthetic", **kwargs)


def test_digits_is_sklearns_bundled_8x8_digits_split_80_20():
    from sklearn.datasets import load_digits

    data = load_dataset("digits")
    assert data.train_x.shape == (1437, 64) and data.test_x.shape == (360, 64) and data.n_classes == 10
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert float(data.train_x.min()) == 0.0 and float(data.train_x.max()) == 1.0
    raw = load_digits()
    torch.testing.assert_close(data.test_x[-1], torch.tensor(raw.data[-1] / 16, dtype=torch.float32))
    assert data.train_y[:10].tolist() == list(range(10)) and int(data.test_y[-1]) == int(raw.target[-1])
    assert "digits" in DATASET_NAMES


def test_unknown_dataset_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as caught:
        load_dataset("foo")
    message = str(caught.value)
    assert "\n" not in message and "'foo'" in message
    assert all(name in message for name in DATASET_NAMES)


def _assert_remedy(message: str, name: str, root: Path):
    assert "\n" not in message
    assert f"'{name}'" in message and str(root) in message
    assert f"python -m infoflow_ray.data download {name}" in message and "INFOFLOW_DATA_DIR" in message


def test_missing_torchvision_dataset_without_download(tmp_path):
    with pytest.raises(DatasetUnavailableError) as caught:
        load_dataset("mnist", cache_dir=tmp_path, download=False)
    _assert_remedy(str(caught.value), "mnist", tmp_path)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert list(tmp_path.iterdir()) == []  # no download attempted, nothing written


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["mnist", "cifar10_gray"])
def test_offline_download_fails_fast_and_clearly(tmp_path, name):
    started = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as caught:
        load_dataset(name, cache_dir=tmp_path / "cache", download=True)
    assert time.monotonic() - started < 30
    _assert_remedy(str(caught.value), name, tmp_path / "cache")


def test_cache_dir_falls_back_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("INFOFLOW_DATA_DIR", str(tmp_path))
    assert data.data_root() == tmp_path and data.data_root(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(DatasetUnavailableError, match=str(tmp_path)):
        load_dataset("fashion_mnist", download=False)
    monkeypatch.delenv("INFOFLOW_DATA_DIR")
    assert data.data_root() == Path.home() / ".cache" / "infoflow_ray" / "datasets"


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_cache_is_read_as_is(tmp_path, name, folder, t10k):
    """A torchvision-layout cache (here the t10k files standing in for both splits) loads without download."""
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    for kind in ("images-idx3", "labels-idx1"):
        content = gzip.decompress((BUNDLED / f"t10k-{kind}-ubyte.gz").read_bytes())
        for split in ("train", "t10k"):
            (raw / f"{split}-{kind}-ubyte").write_bytes(content)
    d = load_dataset(name, cache_dir=tmp_path, download=False)
    assert d.name == name and d.n_classes == 10 and d.train_x.shape == d.test_x.shape == (10_000, 784)
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    assert torch.equal(d.train_x[:8000], t10k.train_x) and torch.equal(d.test_y[8000:], t10k.test_y)


def test_cifar10_gray_uses_luminance_weights(monkeypatch):
    import torchvision.datasets as tvd

    class FakeCifar:  # two 32x32 RGB images: pure red, and white
        def __init__(self, root, train, download):
            self.data = np.zeros((2, 32, 32, 3), dtype=np.uint8)
            self.data[0, ..., 0] = 255
            self.data[1] = 255
            self.targets = [3, 9]

    monkeypatch.setattr(tvd, "CIFAR10", FakeCifar)
    d = load_dataset("cifar10_gray", download=False)
    assert d.train_x.shape == (2, 1024) and d.n_inputs == 1024 and d.train_y.tolist() == [3, 9]
    assert torch.allclose(d.train_x[0], torch.full((1024,), 0.299)) and d.train_x[1].max() <= 1.0
    assert torch.allclose(d.train_x[1], torch.ones(1024))


@pytest.mark.parametrize("n, batch_size", [(10, 3), (12, 4), (5, 8), (0, 2)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_cover_every_index_once(n, batch_size, shuffle):
    generator = torch.Generator().manual_seed(1) if shuffle else None
    parts = list(batches(n, batch_size, generator, "cpu"))
    assert [len(p) for p in parts] == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    joined = torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64)
    assert joined.dtype == torch.int64 and sorted(joined.tolist()) == list(range(n))
    if not shuffle:
        assert joined.tolist() == list(range(n))


def test_batches_shuffle_differs_between_epochs_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    first, second = (torch.cat(list(batches(100, 7, g, "cpu"))) for _ in range(2))
    assert not torch.equal(first, second) and not torch.equal(first, torch.arange(100))
    replay = torch.cat(list(batches(100, 7, torch.Generator().manual_seed(0), "cpu")))
    assert torch.equal(first, replay)
    with pytest.raises(ConfigError, match="batch_size"):
        next(batches(10, 0, None, "cpu"))


def test_to_moves_every_tensor(t10k):
    device = "cuda" if torch.cuda.is_available() else "meta"
    moved = t10k.to(device)
    assert all(getattr(moved, f).device.type == device for f in ("train_x", "train_y", "test_x", "test_y"))
    assert moved.name == t10k.name and moved.n_classes == 10 and t10k.train_x.device.type == "cpu"


def test_command_line_verify_and_download():
    run = [sys.executable, "-m", "infoflow_ray.data"]
    verified = subprocess.run([*run, "verify"], capture_output=True, text=True, check=True)
    assert "match MD5SUMS" in verified.stdout
    bundled = subprocess.run([*run, "download", "mnist_t10k"], capture_output=True, text=True, check=True)
    assert "8000 train / 2000 test" in bundled.stdout


def test_download_runs_under_a_short_socket_timeout_and_restores_it(tmp_path, monkeypatch):
    """A node whose packets are dropped (not refused) must fail in seconds, not hang on each mirror."""
    seen = []

    def fake_splits(name, root, download):
        seen.append((download, socket.getdefaulttimeout()))
        raise RuntimeError("Dataset not found. You can use download=True to download it")

    monkeypatch.setattr(data, "_torchvision_splits", fake_splits)
    with pytest.raises(DatasetUnavailableError, match="Dataset not found"):
        load_dataset("mnist", cache_dir=tmp_path, download=True)
    assert seen == [(False, None), (True, data.DOWNLOAD_TIMEOUT_SECONDS)]
    assert socket.getdefaulttimeout() is None

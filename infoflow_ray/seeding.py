"""Independent, reproducible random streams derived from one user seed.

The network init, the decoder init, the batch order and the baseline training each draw from their own
stream, so changing one (e.g. more cascade epochs) never shifts another (the network stays the same).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def derived_seed(seed: int, stream: str, *extra: int) -> int:
    """A 63-bit seed for ``stream`` (a name such as 'network' or 'batches') of user seed ``seed``."""
    entropy = [int(seed), zlib.crc32(stream.encode()), *map(int, extra)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def generator(seed: int, stream: str, *extra: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded for ``stream``; draw on CPU and move, so every device sees the same numbers."""
    return torch.Generator().manual_seed(derived_seed(seed, stream, *extra))


def permutation(n: int, seed: int, stream: str, epoch: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The shuffled sample order of one epoch, shape (n,), int64, on ``device``."""
    return torch.randperm(n, generator=generator(seed, stream, epoch)).to(device)

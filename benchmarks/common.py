"""What every benchmark script shares: the device and thread flags, and timing that waits for the device."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """--repeats, --device and --threads."""
    parser.add_argument("--repeats", type=int, default=1, help="run each comparison this many times")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")


def device_of(args: argparse.Namespace) -> tuple[torch.device, str]:
    """The device the flags ask for (threads set), and its name for the report."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        return device, torch.cuda.get_device_name(device)
    return device, f"CPU, {torch.get_num_threads()} threads"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """fn()'s result and its wall seconds, the device's queued work included."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start

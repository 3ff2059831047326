"""A live progress line for the driver: tasks done/total per kind, running, failed, elapsed, ETA.

Plain lines (not a redrawn bar), so the output reads the same in a terminal and in ``ray job logs``.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


@dataclass
class _Counts:
    total: int = 0
    done: int = 0
    skipped: int = 0
    running: int = 0
    failed: int = 0
    retries: int = 0
    first_start: float | None = None

    def eta(self, now: float) -> float | None:
        """Seconds left at the rate seen so far (None before the first task of this kind finished)."""
        finished = self.done - self.skipped
        remaining = self.total - self.done - self.failed
        if finished <= 0 or self.first_start is None or remaining <= 0:
            return None if remaining > 0 else 0.0
        return (now - self.first_start) / finished * remaining


@dataclass
class Progress:
    """Thread-safe counters; every change prints one line (and ``tick`` prints at most every ``interval``)."""

    kinds: tuple[str, ...]
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    interval_seconds: float = 30.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {k: _Counts() for k in self.kinds}
        self._start = time.monotonic()
        self._last_print = 0.0

    def set_total(self, kind: str, total: int, already_done: int) -> None:
        with self._lock:
            c = self._counts[kind]
            c.total, c.done, c.skipped = total, already_done, already_done

    def add_total(self, kind: str, more: int) -> None:
        """``more`` tasks of ``kind`` joined the run (a search asks for tasks as it goes)."""
        with self._lock:
            self._counts[kind].total += more

    def started(self, kind: str, message: str = "") -> None:
        """A piece of work started; with a ``message`` (long work, e.g. a training) print a line saying so."""
        with self._lock:
            c = self._counts[kind]
            c.running += 1
            if c.first_start is None:
                c.first_start = time.monotonic()
            if message:
                self._print(message)

    def finished(
        self, kind: str, message: str = "", failed: bool = False, count: int = 1, was_running: bool = True
    ) -> None:
        """A piece of work ended: ``count`` tasks (a batched group holds several) done or failed; ``was_running``
        is False for work that ended without a ``started`` (e.g. restored already finished)."""
        with self._lock:
            c = self._counts[kind]
            c.running -= was_running
            if failed:
                c.failed += count
            else:
                c.done += count
            self._print(message)

    def retried(self, kind: str, message: str, was_running: bool = True) -> None:
        """A running task failed and went back to the queue."""
        with self._lock:
            self._counts[kind].running -= was_running
            self._counts[kind].retries += 1
            self._print(message)

    def note(self, message: str) -> None:
        with self._lock:
            self._print(message)

    def tick(self) -> None:
        with self._lock:
            if time.monotonic() - self._last_print >= self.interval_seconds:
                self._print("")

    def line(self) -> str:
        now = time.monotonic()
        parts = []
        for kind, c in self._counts.items():
            eta = c.eta(now)
            parts.append(
                f"{kind} {c.done}/{c.total} (running {c.running}, failed {c.failed}, "
                f"ETA {_clock(eta) if eta is not None else '?'})"
            )
        return f"[{_clock(now - self._start)}] " + " | ".join(parts)

    def _print(self, message: str) -> None:
        self._last_print = time.monotonic()
        text = self.line() + (f"  {message}" if message else "")
        print(text, file=self.stream, flush=True)

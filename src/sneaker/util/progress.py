"""Progress reporting for long work: bars on a terminal, plain lines otherwise, or nothing.

Verbs talk to a :class:`Progress`; the CLI picks the implementation. All methods
are thread-safe (blobs download on several threads at once).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Protocol, TextIO

__all__ = [
    "NullProgress",
    "PlainProgress",
    "Progress",
    "RichProgress",
    "choose_progress",
    "count",
    "human_size",
]


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 layer``, ``3 layers``: a number and its noun, agreeing."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


class Progress(Protocol):
    def start(self, key: str, label: str, total: int) -> None:
        """A unit of work begins (a blob download, an archive write)."""

    def advance(self, key: str, amount: int) -> None:
        """``amount`` more bytes of ``key`` are done."""

    def reset(self, key: str, done: int) -> None:
        """``key`` restarts (or resumes) with ``done`` bytes already there."""

    def finish(self, key: str, note: str = "") -> None:
        """``key`` is complete; ``note`` says how (``cached``, ``resumed``)."""

    def message(self, text: str) -> None:
        """A line for the person watching."""

    def close(self) -> None: ...


class NullProgress:
    def start(self, key: str, label: str, total: int) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        pass

    def reset(self, key: str, done: int) -> None:
        pass

    def finish(self, key: str, note: str = "") -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class PlainProgress:
    """One line per finished unit, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._units: dict[str, tuple[str, int, float]] = {}

    def start(self, key: str, label: str, total: int) -> None:
        with self._lock:
            self._units[key] = (label, total, time.monotonic())

    def advance(self, key: str, amount: int) -> None:
        pass

    def reset(self, key: str, done: int) -> None:
        pass

    def finish(self, key: str, note: str = "") -> None:
        with self._lock:
            label, total, started = self._units.pop(key, (key, 0, time.monotonic()))
            elapsed = max(time.monotonic() - started, 1e-6)
            speed = f", {human_size(total / elapsed)}/s" if not note and total else ""
            extra = f" ({note})" if note else ""
            print(f"{label}: done, {human_size(total)}{speed}{extra}", file=self._stream)

    def message(self, text: str) -> None:
        with self._lock:
            print(text, file=self._stream)

    def close(self) -> None:
        pass


class RichProgress:
    """Per-unit bars plus a total bar with speed, drawn by ``rich`` on a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as _Bars

        self._bars = _Bars(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._lock = threading.Lock()
        self._tasks: dict[str, Any] = {}
        self._total: Any = None
        self._bars.start()

    def _total_task(self) -> Any:
        if self._total is None:
            self._total = self._bars.add_task("total", total=0)
        return self._total

    def start(self, key: str, label: str, total: int) -> None:
        with self._lock:
            total_task = self._total_task()
            self._tasks[key] = self._bars.add_task(label, total=total)
            current = self._bars.tasks[total_task].total or 0
            self._bars.update(total_task, total=current + total)

    def advance(self, key: str, amount: int) -> None:
        task = self._tasks.get(key)
        if task is not None:
            self._bars.advance(task, amount)
            self._bars.advance(self._total_task(), amount)

    def reset(self, key: str, done: int) -> None:
        """Bytes already on disk (a resume) are not transferred: they leave the total's
        size, so its speed is the link's; bytes transferred before a restart are undone."""
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                return
            total_task = self._total_task()
            change = done - self._bars.tasks[task].completed
            self._bars.update(task, completed=done)
            if change > 0:
                size = self._bars.tasks[total_task].total or 0
                self._bars.update(total_task, total=size - change)
            elif change < 0:
                self._bars.advance(total_task, change)

    def finish(self, key: str, note: str = "") -> None:
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                return
            state = self._bars.tasks[task]
            remaining = (state.total or 0) - state.completed
            self._bars.update(task, completed=state.total)
            total_task = self._total_task()
            if note == "cached":
                # nothing crossed the link: out of the total, so its speed stays honest
                size = self._bars.tasks[total_task].total or 0
                self._bars.update(total_task, total=size - remaining)
            elif remaining:
                self._bars.advance(total_task, remaining)
            if note:
                self._bars.update(task, description=f"{state.description} ({note})")

    def message(self, text: str) -> None:
        self._bars.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self._bars.stop()


def choose_progress(quiet: bool, stream: TextIO | None = None) -> Progress:
    """Bars on a terminal, plain lines when stderr is not one, nothing with ``quiet``."""
    if quiet:
        return NullProgress()
    out = stream or sys.stderr
    if out.isatty():
        return RichProgress()
    return PlainProgress(out)

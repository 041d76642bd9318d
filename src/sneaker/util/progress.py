"""Progress reporting for long work: bars on a terminal, plain lines otherwise, or nothing.

Verbs talk to a :class:`Progress`; the CLI picks the implementation. All methods
are thread-safe (blobs download on several threads at once). A verb that knows
what it will do (``pull`` once its manifests are resolved) says so first
(:meth:`Progress.expect`): the total is then known before the first byte, and
the displays count against it (see :mod:`sneaker.util.tally`).

* :class:`RichProgress` (:mod:`sneaker.util.progress_rich`), on a terminal: a row per
  unit in progress (finished ones disappear) and a total row with rate and time left;
* :class:`PlainProgress`, for pipes and CI logs: one aggregate line every
  :data:`PLAIN_INTERVAL` seconds while work is going on, and one at the end;
* :class:`NullProgress`: nothing (``-q``, ``--json``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TextIO

from .tally import Snapshot, Tally, format_duration

__all__ = [
    "PLAIN_INTERVAL",
    "CountingProgress",
    "NullProgress",
    "PlainProgress",
    "Progress",
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


#: seconds between two lines of :class:`PlainProgress` (``SNEAKER_PROGRESS_INTERVAL``)
PLAIN_INTERVAL = 5.0


class Progress(Protocol):
    def expect(self, sizes: Mapping[str, int]) -> None:
        """These units (the keys :meth:`start` will get -> their bytes) are to be done,
        cached or not: said as soon as the verb knows (before the first byte), so the total
        is true from the start. Saying it again for a unit (shared by two images) is harmless."""

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
    def expect(self, sizes: Mapping[str, int]) -> None:
        pass

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


class CountingProgress:
    """What the displays share: every call feeds a :class:`~sneaker.util.tally.Tally`, and
    :meth:`_began` is told when the first unit is expected or started."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._tally = Tally(clock)

    def _began(self) -> None:
        """The work has begun: a display starts drawing."""

    def expect(self, sizes: Mapping[str, int]) -> None:
        self._tally.expect(sizes)
        self._began()

    def start(self, key: str, label: str, total: int) -> None:
        self._tally.start(key, label, total)
        self._began()

    def advance(self, key: str, amount: int) -> None:
        self._tally.advance(key, amount)

    def reset(self, key: str, done: int) -> None:
        self._tally.reset(key, done)

    def finish(self, key: str, note: str = "") -> None:
        self._tally.finish(key, note)


class PlainProgress(CountingProgress):
    """For logs and pipes: one aggregate line every ``interval`` seconds while work goes on
    (bytes done of the total, rate, time left, units left), and one at the end.

    The lines come from a thread of its own, started with the first unit (or
    :meth:`expect`); :meth:`tick` prints one when it is due, and the tests call it
    with their own ``clock`` and ``ticker=False``.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        ticker: bool = True,
        noun: str = "blob",
    ) -> None:
        self._stream = stream or sys.stderr
        self._interval = interval
        self._clock = clock
        self._ticker = ticker
        self._noun = noun
        super().__init__(clock)
        self._lock = threading.Lock()
        self._due: float | None = None
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _began(self) -> None:
        with self._lock:
            if self._due is not None or self._closed:
                return
            self._due = self._clock() + self._interval
            if self._ticker:
                self._thread = threading.Thread(
                    target=self._tick_until_closed, name="progress-lines", daemon=True
                )
                self._thread.start()

    def _tick_until_closed(self) -> None:
        poll = max(0.05, min(self._interval / 4, 0.5))
        while not self._stop.wait(poll):
            self.tick()

    def tick(self) -> bool:
        """Print the aggregate line if one is due and work is going on; True if it did."""
        now = self._clock()
        with self._lock:
            if self._closed or self._due is None or now < self._due:
                return False
            while self._due <= now:
                self._due += self._interval
        snapshot = self._tally.snapshot()
        if snapshot.finished:
            return False
        self._print(progress_line(snapshot, self._noun))
        return True

    def _print(self, line: str) -> None:
        with self._lock:
            print(line, file=self._stream, flush=True)

    def message(self, text: str) -> None:
        self._print(text)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread, began = self._thread, self._due is not None
        self._stop.set()
        if thread is not None:
            thread.join()
        if began:
            snapshot = self._tally.snapshot()
            line = progress_line(snapshot, self._noun)
            if snapshot.finished:
                line = done_line(snapshot, self._noun)
            with self._lock:
                print(line, file=self._stream, flush=True)


def progress_line(snapshot: Snapshot, noun: str = "blob") -> str:
    """``12.3 MB of 45.6 MB (27%), 3.4 MB/s, eta 0:10, 26 of 31 blobs left``."""
    parts = [f"{human_size(snapshot.done_bytes)} of {human_size(snapshot.total_bytes)}"]
    if snapshot.total_bytes:
        parts[0] += f" ({100 * snapshot.done_bytes // snapshot.total_bytes}%)"
    if snapshot.rate is not None:
        parts.append(f"{human_size(snapshot.rate)}/s")
    if snapshot.eta is not None:
        parts.append(f"eta {format_duration(snapshot.eta)}")
    parts.append(f"{snapshot.units_left} of {count(snapshot.total_units, noun)} left")
    return ", ".join(parts)


def done_line(snapshot: Snapshot, noun: str = "blob") -> str:
    """``done: 31 blobs, 45.6 MB in 0:13, 3.2 MB/s (4 cached)``."""
    line = f"done: {count(snapshot.done_units, noun)}, {human_size(snapshot.total_bytes)}"
    line += f" in {format_duration(snapshot.elapsed)}"
    if snapshot.moved and snapshot.elapsed > 0:
        line += f", {human_size(snapshot.moved / snapshot.elapsed)}/s"
    if snapshot.notes:
        line += " (" + ", ".join(f"{n} {note}" for note, n in snapshot.notes) + ")"
    return line


def _interval_from_env() -> float:
    """``SNEAKER_PROGRESS_INTERVAL`` (seconds, at least 0.1), else :data:`PLAIN_INTERVAL`."""
    text = os.environ.get("SNEAKER_PROGRESS_INTERVAL", "")
    try:
        return max(0.1, float(text)) if text else PLAIN_INTERVAL
    except ValueError:
        return PLAIN_INTERVAL


def choose_progress(quiet: bool, stream: TextIO | None = None) -> Progress:
    """Bars on a terminal, aggregate lines when stderr is not one, nothing with ``quiet``."""
    if quiet:
        return NullProgress()
    out = stream or sys.stderr
    if out.isatty():
        from .progress_rich import RichProgress  # rich loads only for a terminal

        return RichProgress()
    return PlainProgress(out, interval=_interval_from_env())

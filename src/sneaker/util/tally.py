"""What a progress display shows, counted: the plan, what is done, the rate, the time left.

Pure and thread-safe: :class:`Tally` takes the calls a :class:`~sneaker.util.progress.Progress`
gets and its clock is injected, so the displays built on it (lines for logs, bars on
a terminal) are tested without sleeping.

The rules that keep the total true at scale:

* the total (units and bytes) is what the verb said it will do (:meth:`Tally.expect`,
  as soon as the manifests are known) and whatever else starts; a unit counts once
  however often it is expected or started, and the total only grows, so neither
  the percentage nor the rate ever starts over;
* a unit finished without its bytes crossing (``cached``, ``exists``) counts as done
  at once, and so do bytes already on disk when a unit resumes: they are done, but
  they are not part of the rate;
* the rate is that of the last :data:`RATE_WINDOW` seconds (all of them until
  then), shown from the first second on.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "RATE_WINDOW",
    "ActiveUnit",
    "Snapshot",
    "Tally",
    "format_duration",
    "shorten",
]

#: seconds of recent work the rate is measured over
RATE_WINDOW = 10.0
#: no rate is shown before this many seconds of work (one would be noise)
FIRST_RATE_AFTER = 1.0
#: samples closer together than this are merged (chunks arrive every few milliseconds)
_SAMPLE_SPACING = 0.1


def format_duration(seconds: float) -> str:
    """``0:07``, ``12:34``, ``1:02:03``: minutes and seconds, hours when there are some."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def shorten(label: str, width: int) -> str:
    """``label`` in at most ``width`` characters, cut in the middle (``ghcr.io…/app:1``).

    A short last word (a digest's first hex digits, ``layer 3/7``) is kept whole and the
    name before it is cut instead, so rows stay told apart.
    """
    if len(label) <= width:
        return label
    if width <= 1:
        return label[:width]
    name, space, last = label.rpartition(" ")
    if space and len(last) <= 16 and width - len(last) - 1 >= 5:
        return f"{shorten(name, width - len(last) - 1)} {last}"
    head = (width - 1) // 3  # the end of a name (repository, tag) tells more than its start
    tail = width - 1 - head
    return f"{label[:head]}…{label[len(label) - tail :]}"


@dataclass
class _Unit:
    label: str
    total: int
    started: float
    done: int = 0
    #: bytes of this unit that went through :meth:`Tally.advance`
    moved: int = 0


@dataclass(frozen=True)
class ActiveUnit:
    """One unit in progress, as a row shows it."""

    label: str
    done: int
    total: int
    #: bytes per second since it started, None in its first second
    rate: float | None


@dataclass(frozen=True)
class Snapshot:
    """Everything a display shows at one moment."""

    done_bytes: int
    total_bytes: int
    done_units: int
    total_units: int
    #: bytes per second over the last :data:`RATE_WINDOW` seconds, None before the first second
    rate: float | None
    #: seconds left at that rate, None when there is no rate (or nothing moves)
    eta: float | None
    #: seconds since the work began
    elapsed: float
    #: the units in progress, in the order they started
    active: tuple[ActiveUnit, ...]
    #: how many units finished with each note (``cached``, ``exists``...)
    notes: tuple[tuple[str, int], ...]
    #: bytes moved in all (rate x time, what crossed the link or the disk)
    moved: int

    @property
    def units_left(self) -> int:
        return self.total_units - self.done_units

    @property
    def finished(self) -> bool:
        return not self.active and self.done_units >= self.total_units


class Tally:
    """The counts behind a progress display; every method is thread-safe.

    A unit is known by its key (a blob's digest, say) and counted once: what a verb
    expects and later starts is one unit, and a unit started again after it finished
    (the same blob in a second batch) is not counted, nor shown, twice.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._began: float | None = None
        #: every unit expected or started -> the bytes it counts for in the total
        self._sizes: dict[str, int] = {}
        self._total_bytes = 0
        self._finished: set[str] = set()
        self._done_bytes = 0
        self._moved = 0
        self._units: dict[str, _Unit] = {}
        self._notes: Counter[str] = Counter()
        #: (time, bytes moved by then): the rate's window
        self._samples: deque[tuple[float, int]] = deque()

    # -- what happens ------------------------------------------------------------------------

    def _begin(self) -> float:
        now = self._clock()
        if self._began is None:
            self._began = now
            self._samples.append((now, 0))
        return now

    @property
    def began(self) -> bool:
        """Was anything expected or started?"""
        with self._lock:
            return self._began is not None

    def _count(self, key: str, size: int) -> None:
        """``key`` is part of the total, with at least ``size`` bytes."""
        size = max(0, size)
        known = self._sizes.get(key)
        if known is None or size > known:
            self._total_bytes += size - (known or 0)
            self._sizes[key] = size

    def expect(self, sizes: Mapping[str, int]) -> None:
        """These units (key -> bytes) are to be done, whether they will be cached or not."""
        with self._lock:
            self._begin()
            for key, size in sizes.items():
                self._count(key, size)

    def start(self, key: str, label: str, total: int) -> None:
        with self._lock:
            now = self._begin()
            if key in self._finished:
                return
            self._count(key, total)
            unit = self._units.get(key)
            if unit is None:
                self._units[key] = _Unit(label, max(0, total), now)
            else:  # started again while running: the same unit
                unit.label, unit.total = label, max(unit.total, total)

    def advance(self, key: str, amount: int) -> None:
        with self._lock:
            unit = self._units.get(key)
            if unit is None or amount <= 0:
                return
            unit.done += amount
            unit.moved += amount
            self._done_bytes += amount
            self._moved += amount
            self._sample(self._clock())

    def reset(self, key: str, done: int) -> None:
        """``key`` goes on from ``done`` bytes: bytes kept on disk are done without having
        moved; bytes thrown away (a restart) are to be done again."""
        with self._lock:
            unit = self._units.get(key)
            if unit is None:
                return
            self._done_bytes += done - unit.done
            unit.done = done

    def finish(self, key: str, note: str = "") -> None:
        """``key`` is done (``note``: how); an expected unit that never started (skipped)
        may be finished too, and counts as done at once."""
        with self._lock:
            if key in self._finished or key not in self._sizes:
                return
            unit = self._units.pop(key, None)
            self._done_bytes += self._sizes[key] - (unit.done if unit is not None else 0)
            self._finished.add(key)
            if note:
                self._notes[note.split()[0]] += 1

    def _sample(self, now: float) -> None:
        samples = self._samples
        if len(samples) > 1 and now - samples[-1][0] < _SAMPLE_SPACING:
            samples[-1] = (samples[-1][0], self._moved)
        else:
            samples.append((now, self._moved))
        while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW:
            samples.popleft()

    # -- what it looks like --------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self._clock()
            began = now if self._began is None else self._began
            rate = self._rate(now, began)
            done = min(self._done_bytes, self._total_bytes)
            eta = (self._total_bytes - done) / rate if rate else None
            active = tuple(
                ActiveUnit(
                    u.label,
                    u.done,
                    u.total,
                    u.moved / (now - u.started) if now - u.started >= FIRST_RATE_AFTER else None,
                )
                for u in self._units.values()
            )
            return Snapshot(
                done_bytes=done,
                total_bytes=self._total_bytes,
                done_units=len(self._finished),
                total_units=len(self._sizes),
                rate=rate,
                eta=eta,
                elapsed=now - began,
                active=active,
                notes=tuple(sorted(self._notes.items())),
                moved=self._moved,
            )

    def _rate(self, now: float, began: float) -> float | None:
        if now - began < FIRST_RATE_AFTER:
            return None
        samples = self._samples
        while len(samples) > 1 and samples[1][0] <= now - RATE_WINDOW:
            samples.popleft()
        since, moved = samples[0] if samples else (began, 0)
        span = now - since
        return (self._moved - moved) / span if span > 0 else None

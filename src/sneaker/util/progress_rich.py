"""Progress bars on a terminal, drawn by ``rich`` from a :class:`~sneaker.util.tally.Tally`.

What stays on screen: one row per unit in progress (a finished one disappears) and
a total row under them with the bytes and units done of the plan, the rate and the
time left (the time taken, once all is done). Rows never wrap: labels are cut in
the middle to the terminal's width (:func:`~sneaker.util.tally.shorten`), and
never more rows than the terminal has (the rest are counted on one line), so the
total row and the downloads in progress are always in sight.

The rows are drawn from the tally's counts, not from ``rich``'s tasks: a rich task
starts its speed over whenever its total changes, and the total here may grow as
manifests arrive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Column, Table
from rich.text import Text

from .progress import CountingProgress, count, human_size
from .tally import ActiveUnit, Snapshot, format_duration, shorten

__all__ = ["RichProgress", "size_pair"]

#: columns of the byte counts (``999.9/999.9 MB``), the rate (``999.9 MB/s``), the time
_SIZE, _RATE, _TIME = 14, 10, 7
#: a label narrower than this drops the bar, the rate and the time; none is wider than the max
_MIN_LABEL, _MAX_LABEL = 12, 60
#: lines kept free under the rows: the total row and the cursor's
_SPARE_LINES = 2


def size_pair(done: float, total: float) -> str:
    """``12.3/45.6 MB``: both counts in the total's unit."""
    unit, scale = "B", 1.0
    for name in ("kB", "MB", "GB", "TB"):
        if total < 1000 * scale:
            break
        unit, scale = name, scale * 1000
    if unit == "B":
        return f"{done:.0f}/{total:.0f} B"
    return f"{done / scale:.1f}/{total / scale:.1f} {unit}"


class RichProgress(CountingProgress):
    """Bars on a terminal; see the module docstring. ``live=False`` draws nothing by itself
    (the tests render :meth:`renderable` on a console of their own)."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        live: bool = True,
        noun: str = "blob",
    ) -> None:
        super().__init__(clock)
        self.console = console or Console(stderr=True)
        self._noun = noun
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._want_live = live

    def _began(self) -> None:
        with self._lock:
            if self._live is not None or not self._want_live:
                return
            self._live = Live(
                console=self.console,
                get_renderable=self.renderable,
                refresh_per_second=4,
                transient=False,
            )
            self._live.start()

    # -- Progress -------------------------------------------------------------------------

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        with self._lock:
            live, self._live, self._want_live = self._live, None, False
        if live is not None:
            live.stop()

    # -- drawing --------------------------------------------------------------------------

    def renderable(self) -> RenderableType:
        """What the screen shows now: the rows in progress, then the total row."""
        snapshot = self._tally.snapshot()
        width = self.console.width
        label = width - _SIZE - _RATE - _TIME - 4
        bar = max(8, min(30, width // 6))
        label = min(_MAX_LABEL, label - bar)
        wide = label >= _MIN_LABEL
        if not wide:
            label = max(1, width - _SIZE - 1)
        columns = [Column(width=label, no_wrap=True)]
        if wide:
            columns.append(Column(width=bar, no_wrap=True))
        columns.append(Column(width=_SIZE, no_wrap=True, justify="right"))
        if wide:
            columns += [
                Column(width=_RATE, no_wrap=True, justify="right"),
                Column(width=_TIME, no_wrap=True, justify="right"),
            ]
        table = Table.grid(*columns, padding=(0, 1), expand=False)

        def add(
            text: str, done: float, total: float, rate: float | None, time: str, style: str = ""
        ) -> None:
            cells: list[RenderableType] = [Text(shorten(text, label), style=style)]
            if wide:
                cells.append(ProgressBar(total=total or 1, completed=done, width=bar))
            cells.append(Text(size_pair(done, total), style=style))
            if wide:
                speed = f"{human_size(rate)}/s" if rate is not None else ""
                cells += [Text(speed, style=style), Text(time, style=style)]
            table.add_row(*cells)

        rows = self._shown_rows(snapshot)
        for unit in rows:
            add(unit.label, unit.done, unit.total, unit.rate, _time_left(unit))
        hidden = len(snapshot.active) - len(rows)
        if hidden:
            table.add_row(Text(shorten(f"… and {hidden} more in progress", label)))
        add(
            f"total {snapshot.done_units}/{count(snapshot.total_units, self._noun)}",
            snapshot.done_bytes,
            snapshot.total_bytes,
            snapshot.rate,
            _total_time(snapshot),
            style="bold",
        )
        return table

    def _shown_rows(self, snapshot: Snapshot) -> tuple[ActiveUnit, ...]:
        room = max(1, self.console.height - _SPARE_LINES)
        if len(snapshot.active) <= room:
            return snapshot.active
        return snapshot.active[: room - 1]  # one line says how many more


def _time_left(unit: ActiveUnit) -> str:
    if not unit.rate:
        return ""
    return format_duration(max(0, unit.total - unit.done) / unit.rate)


def _total_time(snapshot: Snapshot) -> str:
    """Time left while going; the time it took once done."""
    if snapshot.finished:
        return format_duration(snapshot.elapsed)
    return format_duration(snapshot.eta) if snapshot.eta is not None else ""

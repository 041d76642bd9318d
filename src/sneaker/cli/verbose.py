"""``-v/--verbose`` and ``--debug``: sneaker's log on stderr, the request log first.

``-v`` shows what the ``sneaker`` loggers say at INFO: a line per HTTP request
(:mod:`sneaker.registry.requestlog`), retries and their reasons, which mirror
served what, the scheme a loopback registry speaks, settings notes. ``--debug``
adds the DEBUG lines (redirect hops, CA files and client certificates used).
Loaded only when one of them is given.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

__all__ = ["enable_log"]

_PREFIXES = {logging.DEBUG: "debug: ", logging.WARNING: "warning: ", logging.ERROR: "error: "}


class _StderrHandler(logging.Handler):
    """Writes to ``sys.stderr`` as it is when a line comes: a progress display on a
    terminal redirects it, so log lines go above the bars instead of through them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            print(text, file=sys.stderr, flush=True)
        except Exception:  # pragma: no cover - logging's own policy for broken streams
            self.handleError(record)

    def format(self, record: logging.LogRecord) -> str:
        prefix = _PREFIXES.get(record.levelno, "")
        return prefix + " ".join(record.getMessage().split())


_active: _StderrHandler | None = None


def enable_log(level: int = logging.INFO) -> Callable[[], None]:
    """Show the ``sneaker`` loggers' lines from ``level`` up on stderr; returns what undoes
    it. Enabled twice (``-v`` and ``--debug``), lines still come once, at the lower level."""
    global _active
    logger = logging.getLogger("sneaker")
    previous = logger.level
    if previous == logging.NOTSET or level < previous:
        logger.setLevel(level)
    if _active is not None:
        return lambda: logger.setLevel(previous)
    handler = _active = _StderrHandler()
    logger.addHandler(handler)

    def disable() -> None:
        global _active
        logger.removeHandler(handler)
        logger.setLevel(previous)
        _active = None

    return disable

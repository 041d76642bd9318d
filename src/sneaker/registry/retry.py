"""When to retry, and how long to wait. Pure logic, no I/O (the caller sleeps)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = ["RETRY_STATUSES", "RetryPolicy", "parse_retry_after"]

#: Statuses worth another try: rate limited, or a gateway/server briefly unavailable.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date).

    ``now`` is the wall-clock time (``time.time()``); a date in the past gives 0.
    None when the header is absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter.

    Attempt ``n`` (0-based) waits ``base * 2**n`` capped at ``cap``, scaled by a
    random factor in [0.5, 1). A ``Retry-After`` the server sends is honoured up
    to ``max_retry_after``; a longer one ends the retries at once.
    """

    retries: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        delay: float = min(self.cap, self.base * 2.0 ** max(0, attempt))
        return delay * (0.5 + rand() / 2)

    def delay_for(
        self,
        attempt: int,
        retry_after: float | None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """How long to wait before attempt ``attempt + 1``; None when it should not happen."""
        if attempt >= self.retries:
            return None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return max(retry_after, 0.0)
        return self.backoff(attempt, rand)

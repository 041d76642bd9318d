"""When to retry, and how long to wait. Pure logic, no I/O (the caller sleeps)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = ["RETRY_STATUSES", "RetryPolicy", "parse_retry_after"]

#: Statuses worth another try: rate limited, a server error (a registry's 500 is often a
#: storage backend's passing failure), or a gateway/server briefly unavailable.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


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
    to ``max_retry_after``; a longer one ends the retries at once. A ``brief``
    retry (a refused connection: a definite answer that may pass, as when a
    registry restarts) waits ``brief_base * 2**n`` capped at ``brief_cap``: the
    default five of them take at most 1.15 s, not the 15 s of a full backoff.
    """

    retries: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0
    brief_base: float = 0.05
    brief_cap: float = 0.4

    def backoff(
        self, attempt: int, rand: Callable[[], float] = random.random, *, brief: bool = False
    ) -> float:
        base, cap = (self.brief_base, self.brief_cap) if brief else (self.base, self.cap)
        delay: float = min(cap, base * 2.0 ** max(0, attempt))
        return delay * (0.5 + rand() / 2)

    def delay_for(
        self,
        attempt: int,
        retry_after: float | None,
        rand: Callable[[], float] = random.random,
        *,
        brief: bool = False,
    ) -> float | None:
        """How long to wait before attempt ``attempt + 1``; None when it should not happen."""
        if attempt >= self.retries:
            return None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return max(retry_after, 0.0)
        return self.backoff(attempt, rand, brief=brief)

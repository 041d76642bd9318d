"""The low-speed limit: a body that arrives slower than a floor is abandoned. Pure logic.

A read timeout only fires when nothing at all arrives for its length: a server
that sends one byte every 20 s keeps a download alive forever under a 60 s
timeout. So, as curl's ``--low-speed-limit``/``--low-speed-time``: when a body
averages fewer than ``bytes_per_second`` over ``seconds`` (the default: under
1 KiB/s for 30 s), the transfer is given up with :class:`~sneaker.errors.TooSlow`,
which the download engine treats as a cut connection (continued from the bytes
already on disk, with backoff, counting as an attempt that brought nothing, so a
server that only trickles ends the download after a few attempts). A body that
stops altogether is given up after ``seconds`` too: the socket's read timeout is
lowered to that while the body streams.

There is no overall deadline: a large layer over a slow but steady link may take
hours, and that is no fault.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LOW_SPEED", "LowSpeedLimit", "SpeedWatch"]


@dataclass(frozen=True)
class LowSpeedLimit:
    """Fewer than ``bytes_per_second`` on average over ``seconds``: too slow. 0 turns it off."""

    bytes_per_second: int = 1024
    seconds: float = 30.0

    @property
    def active(self) -> bool:
        return self.bytes_per_second > 0 and self.seconds > 0

    def describe(self) -> str:
        return f"{self.bytes_per_second} bytes/s over {self.seconds:g} s"


DEFAULT_LOW_SPEED = LowSpeedLimit()


class SpeedWatch:
    """Told of each piece of a body as it arrives (and the time), says when it is too slow.

    The bytes are counted in windows of at least ``limit.seconds``: a window that
    ends with an average below the limit is the verdict; one above it starts the next.
    """

    def __init__(self, limit: LowSpeedLimit, now: float) -> None:
        self.limit = limit
        self._start = now
        self._bytes = 0

    def arrived(self, n: int, now: float) -> str | None:
        """``n`` more bytes at ``now``: None while fast enough, else what was too slow."""
        self._bytes += n
        elapsed = now - self._start
        if elapsed < self.limit.seconds:
            return None
        if self._bytes < self.limit.bytes_per_second * elapsed:
            return (
                f"{self._bytes} bytes in {elapsed:.0f} s, below the low-speed limit of "
                f"{self.limit.describe()}"
            )
        self._start, self._bytes = now, 0
        return None

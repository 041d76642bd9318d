"""The low-speed limit, its pure decision: when a body is too slow to keep waiting for.

No sockets: the watch is told of each piece and of the time it arrived.
"""

from __future__ import annotations

from sneaker.registry.lowspeed import DEFAULT_LOW_SPEED, LowSpeedLimit, SpeedWatch
from sneaker.transfer.fetch import STALL_ATTEMPTS, DownloadState

LIMIT = LowSpeedLimit(bytes_per_second=1024, seconds=30)


def test_a_fast_body_is_never_too_slow() -> None:
    watch = SpeedWatch(LIMIT, now=0.0)
    assert all(watch.arrived(1 << 20, now=t / 10) is None for t in range(1, 1000))


def test_one_byte_every_20_seconds_is_too_slow_at_the_end_of_the_window() -> None:
    watch = SpeedWatch(LIMIT, now=0.0)
    assert watch.arrived(1, now=20.0) is None  # the window is not over yet
    verdict = watch.arrived(1, now=40.0)
    assert verdict == "2 bytes in 40 s, below the low-speed limit of 1024 bytes/s over 30 s"


def test_each_window_is_judged_on_its_own() -> None:
    watch = SpeedWatch(LIMIT, now=0.0)
    assert watch.arrived(31 * 1024, now=30.0) is None  # enough: a new window starts
    assert watch.arrived(10 * 1024, now=45.0) is None
    assert watch.arrived(10 * 1024, now=60.0) is not None  # 20 KiB in the last 30 s


def test_a_burst_then_a_trickle_is_too_slow_once_the_burst_is_a_window_behind() -> None:
    watch = SpeedWatch(LIMIT, now=0.0)
    assert watch.arrived(1 << 20, now=1.0) is None
    assert watch.arrived(1, now=31.0) is None  # the burst carries this window
    assert watch.arrived(1, now=62.0) is not None


def test_the_default_is_1_kib_per_second_over_30_seconds_and_0_turns_it_off() -> None:
    assert (DEFAULT_LOW_SPEED.bytes_per_second, DEFAULT_LOW_SPEED.seconds) == (1024, 30.0)
    assert DEFAULT_LOW_SPEED.active
    assert not LowSpeedLimit(0, 30).active


def test_a_slow_body_counts_as_bringing_nothing() -> None:
    """A trickle brings a few new bytes each time: still, it ends after STALL_ATTEMPTS."""
    state = DownloadState()
    on_disk = 0
    waits = []
    for _ in range(STALL_ATTEMPTS):
        on_disk += 3
        waits.append(state.body_cut(on_disk, slow=True))
    assert None not in waits[:-1]
    assert waits[-1] is None


def test_a_cut_that_brought_bytes_is_not_a_stall() -> None:
    state = DownloadState()
    for n in range(1, 3 * STALL_ATTEMPTS):
        assert state.body_cut(n * 1000) is not None

"""The download of one blob, its pure decisions: which 206 is trusted, what a partial file
means, when a cut body continues, when a blob starts over. No sockets, no files.
"""

from __future__ import annotations

import pytest

from sneaker.transfer.fetch import (
    MAX_ATTEMPTS,
    STALL_ATTEMPTS,
    DownloadState,
    partial_verdict,
    trusted_resume,
)

SIZE = 1000


@pytest.mark.parametrize(
    ("status", "content_range", "offset", "trusted"),
    [
        (206, (400, 999, 1000), 400, True),
        (206, (400, 999, None), 400, True),  # "bytes 400-999/*"
        (206, (0, 999, 1000), 400, False),  # from the start, not from where the file ends
        (206, (400, 998, 1000), 400, False),  # short of the end
        (206, (400, 999, 2000), 400, False),  # another blob's length
        (206, None, 400, False),  # no Content-Range at all
        (200, None, 400, False),  # the whole blob: a restart, not a resume
        (206, (0, 999, 1000), 0, False),  # nothing was asked to be resumed
    ],
)
def test_only_a_206_from_the_end_of_the_file_to_the_end_of_the_blob_is_trusted(
    status: int, content_range: tuple[int, int, int | None] | None, offset: int, trusted: bool
) -> None:
    assert trusted_resume(status, content_range, offset, SIZE) is trusted


@pytest.mark.parametrize(
    ("on_disk", "size", "verdict"),
    [
        (0, SIZE, "continue"),
        (400, SIZE, "continue"),
        (SIZE, SIZE, "complete"),
        (SIZE + 1, SIZE, "too long"),
        (0, 0, "continue"),  # an empty blob is always asked for
    ],
)
def test_partial_verdict(on_disk: int, size: int, verdict: str) -> None:
    assert partial_verdict(on_disk, size) == verdict


def test_a_blob_starts_over_once() -> None:
    state = DownloadState()
    assert state.restart()
    assert state.restarted
    assert not state.restart()


def test_a_refused_range_starts_over_once() -> None:
    state = DownloadState()
    assert not state.range_refused(0, 416)  # not a range request: the error stands
    assert not state.range_refused(400, 404)  # not about the range
    assert not state.restarted
    assert state.range_refused(400, 416)
    assert not state.range_refused(400, 206)  # a second time: the error stands


def test_a_cut_body_continues_while_bytes_arrive() -> None:
    state = DownloadState()
    state.reached(0)
    for on_disk in range(100, 100 * (STALL_ATTEMPTS + 3), 100):
        wait = state.body_cut(on_disk)
        assert wait is not None
        assert 0 < wait <= 5.0 * 1.5
        assert state.stalls == 0
    assert state.attempts == STALL_ATTEMPTS + 2


def test_cuts_in_a_row_without_a_new_byte_give_up() -> None:
    state = DownloadState()
    state.reached(500)
    waits = [state.body_cut(500) for _ in range(STALL_ATTEMPTS)]
    assert None not in waits[:-1]
    assert waits[-1] is None
    assert state.stalls == STALL_ATTEMPTS
    # the backoff grows with the stalls: 0.1 * 2**n, jittered by 0.5x to 1.5x, at most 5 s
    for n, wait in enumerate(waits[:-1], start=1):
        assert wait is not None
        assert 0.05 * 2**n <= wait <= min(5.0, 0.1 * 2**n) * 1.5


def test_a_new_byte_resets_the_stalls() -> None:
    state = DownloadState()
    state.reached(500)
    for _ in range(STALL_ATTEMPTS - 1):
        assert state.body_cut(500) is not None
    assert state.body_cut(501) is not None
    assert state.stalls == 0
    assert state.furthest == 501


def test_cuts_in_all_give_up_however_much_each_brought() -> None:
    state = DownloadState()
    waits = [state.body_cut(n + 1) for n in range(MAX_ATTEMPTS)]
    assert None not in waits[:-1]
    assert waits[-1] is None


def test_a_mismatch_restarts_only_bytes_kept_from_before() -> None:
    fresh = DownloadState()
    assert not fresh.mismatch()  # the registry's own bytes: the client judges its endpoint
    assert not fresh.restarted
    kept = DownloadState(reused=True)
    assert kept.mismatch()  # once more, whole
    assert kept.restarted
    assert not kept.mismatch()  # a restarted blob that is still wrong: the client judges
    restarted = DownloadState(reused=True, restarted=True)
    assert not restarted.mismatch()

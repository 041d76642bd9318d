"""Progress that stays true at scale: the counts (util/tally.py), the aggregate lines for logs
(PlainProgress) and the bars for a terminal (RichProgress), all on an injected clock."""

from __future__ import annotations

import io
import re
import time

import pytest
from rich.cells import cell_len
from rich.console import Console

from sneaker.image.reference import parse_reference
from sneaker.util.progress import NullProgress, PlainProgress, choose_progress
from sneaker.util.progress_rich import RichProgress, size_pair
from sneaker.util.tally import RATE_WINDOW, Tally, format_duration, shorten

MB = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now += seconds


# -- the counts ---------------------------------------------------------------------------------


def test_the_total_is_known_before_the_first_byte_and_cached_units_are_done_at_once() -> None:
    clock = Clock()
    tally = Tally(clock)
    tally.expect({"a": 10 * MB, "b": 20 * MB, "c": 30 * MB})
    first = tally.snapshot()
    assert (first.total_units, first.total_bytes, first.done_units, first.done_bytes) == (
        3,
        60 * MB,
        0,
        0,
    )
    tally.start("c", "app c", 30 * MB)
    tally.finish("c", "cached")
    cached = tally.snapshot()
    assert (cached.done_units, cached.done_bytes, cached.moved) == (1, 30 * MB, 0)
    assert cached.notes == (("cached", 1),)
    assert cached.active == ()


def test_a_unit_counts_once_however_often_it_is_expected_or_started() -> None:
    tally = Tally(Clock())
    tally.expect({"shared": 5 * MB, "a": 1 * MB})
    tally.expect({"shared": 5 * MB, "b": 2 * MB})  # a second image with the same base layer
    tally.start("shared", "x", 5 * MB)
    tally.advance("shared", 5 * MB)
    tally.finish("shared")
    tally.start("shared", "x again", 5 * MB)  # a later batch meets it in the cache
    tally.finish("shared", "cached")
    snapshot = tally.snapshot()
    assert (snapshot.total_units, snapshot.total_bytes) == (3, 8 * MB)
    assert (snapshot.done_units, snapshot.done_bytes) == (1, 5 * MB)
    assert snapshot.notes == ()  # the second finish was not counted


def test_an_unexpected_unit_grows_the_total_which_never_shrinks() -> None:
    tally = Tally(Clock())
    tally.expect({"a": 4 * MB})
    tally.start("extra", "not announced", 6 * MB)
    totals = [(tally.snapshot().total_units, tally.snapshot().total_bytes)]
    tally.advance("extra", 6 * MB)
    tally.finish("extra")
    tally.start("a", "a", 4 * MB)
    tally.finish("a", "cached")
    totals.append((tally.snapshot().total_units, tally.snapshot().total_bytes))
    assert totals == [(2, 10 * MB), (2, 10 * MB)]
    assert tally.snapshot().finished


def test_bytes_kept_on_disk_are_done_but_not_part_of_the_rate() -> None:
    clock = Clock()
    tally = Tally(clock)
    tally.expect({"big": 100 * MB})
    tally.start("big", "big", 100 * MB)
    tally.reset("big", 60 * MB)  # a resume: 60 MB were already there
    clock.wait(2)
    tally.advance("big", 10 * MB)
    snapshot = tally.snapshot()
    assert (snapshot.done_bytes, snapshot.moved) == (70 * MB, 10 * MB)
    assert snapshot.rate == pytest.approx(5 * MB)
    assert snapshot.eta == pytest.approx(6.0)


def test_a_planned_unit_finished_without_starting_is_done_at_once() -> None:
    tally = Tally(Clock())
    tally.expect({"skip": 3 * MB})
    tally.finish("skip", "exists")
    tally.finish("never-announced")  # unknown: ignored, not counted
    snapshot = tally.snapshot()
    assert (snapshot.done_units, snapshot.done_bytes, snapshot.total_units) == (1, 3 * MB, 1)


def test_rate_and_eta_from_the_first_second_then_over_a_window() -> None:
    clock = Clock()
    tally = Tally(clock)
    tally.expect({"big": 1000 * MB})
    tally.start("big", "big", 1000 * MB)
    clock.wait(0.5)
    tally.advance("big", 1 * MB)
    early = tally.snapshot()
    assert early.rate is None
    assert early.eta is None
    clock.wait(0.5)
    tally.advance("big", 1 * MB)
    first = tally.snapshot()
    assert first.rate == pytest.approx(2 * MB)
    assert first.eta == pytest.approx((1000 - 2) / 2)
    # a steady 10 MB/s for twice the window: the slow start is forgotten
    for _ in range(int(4 * RATE_WINDOW)):
        clock.wait(0.5)
        tally.advance("big", 5 * MB)
    steady = tally.snapshot()
    assert steady.rate == pytest.approx(10 * MB, rel=0.06)
    assert steady.eta == pytest.approx((1000 - 202) / (10 * MB) * MB, rel=0.06)
    # nothing more arrives: the rate falls to nothing and the time left is unknown
    clock.wait(RATE_WINDOW + 1)
    stalled = tally.snapshot()
    assert stalled.rate == 0
    assert stalled.eta is None


def test_more_units_announced_later_do_not_start_the_rate_over() -> None:
    clock = Clock()
    tally = Tally(clock)
    tally.expect({"a": 50 * MB})
    tally.start("a", "a", 50 * MB)
    for _ in range(4):
        clock.wait(1)
        tally.advance("a", 4 * MB)
    before = tally.snapshot().rate
    tally.expect({"b": 50 * MB})  # the next image's manifest arrives
    after = tally.snapshot()
    assert before == pytest.approx(4 * MB)
    assert after.rate == before
    assert after.total_bytes == 100 * MB


def test_shorten_cuts_names_in_the_middle_and_keeps_the_short_last_word() -> None:
    label = "ghcr.io/some-organisation/some-very-long-repository-name/app:v1.2.3 3f2a9b0c1d2e"
    short = shorten(label, 32)
    assert len(short) == 32
    assert short.endswith("/app:v1.2.3 3f2a9b0c1d2e")
    assert short.startswith("ghcr")
    assert "…" in short
    assert shorten("ubuntu:22.04 3f2a9b0c1d2e", 40) == "ubuntu:22.04 3f2a9b0c1d2e"
    assert len(shorten(label, 10)) == 10
    assert format_duration(7) == "0:07"
    assert format_duration(3723) == "1:02:03"


def test_a_progress_label_names_the_image_once_and_cuts_its_digest() -> None:
    digest = "sha256:" + "ab" * 32
    assert parse_reference("ubuntu:22.04").brief == "ubuntu:22.04"
    assert parse_reference(f"ubuntu:22.04@{digest}").brief == "ubuntu:22.04"
    assert parse_reference(f"ghcr.io/o/app@{digest}").brief == "ghcr.io/o/app@sha256:abababababab"


# -- lines for logs and pipes -------------------------------------------------------------------


def test_plain_progress_prints_one_aggregate_line_per_interval_and_one_at_the_end() -> None:
    clock = Clock()
    out = io.StringIO()
    progress = PlainProgress(out, interval=5.0, clock=clock, ticker=False)
    assert not progress.tick()  # nothing began: nothing to say
    progress.expect({"a": 40 * MB, "b": 40 * MB, "c": 20 * MB})
    progress.message("writing images.tar")
    progress.start("c", "c", 20 * MB)
    progress.finish("c", "cached")
    progress.start("a", "a", 40 * MB)
    clock.wait(4.9)
    assert not progress.tick()  # not due yet
    progress.advance("a", 10 * MB)
    clock.wait(0.1)
    assert progress.tick()
    clock.wait(2.5)
    assert not progress.tick()
    clock.wait(2.5)
    progress.advance("a", 10 * MB)
    assert progress.tick()  # nothing finished since: the line still comes
    progress.advance("a", 20 * MB)
    progress.finish("a")
    progress.start("b", "b", 40 * MB)
    progress.advance("b", 40 * MB)
    progress.finish("b")
    clock.wait(5)
    assert not progress.tick()  # all done: the end line says it
    progress.close()
    progress.close()  # once only
    assert out.getvalue().splitlines() == [
        "writing images.tar",
        "30.0 MB of 100.0 MB (30%), 2.0 MB/s, eta 0:35, 2 of 3 blobs left",
        "40.0 MB of 100.0 MB (40%), 2.0 MB/s, eta 0:30, 2 of 3 blobs left",
        "done: 3 blobs, 100.0 MB in 0:15, 5.3 MB/s (1 cached)",
    ]


def test_plain_progress_stopped_midway_ends_with_where_it_was() -> None:
    clock = Clock()
    out = io.StringIO()
    progress = PlainProgress(out, clock=clock, ticker=False)
    progress.expect({"a": 2 * MB, "b": 2 * MB})
    progress.start("a", "a", 2 * MB)
    progress.advance("a", 1 * MB)
    progress.close()  # a failure: what was done, not "done"
    assert out.getvalue().splitlines() == ["1.0 MB of 4.0 MB (25%), 2 of 2 blobs left"]


def test_plain_progress_lines_come_by_themselves_from_its_thread() -> None:
    out = io.StringIO()
    progress = PlainProgress(out, interval=0.1)
    progress.expect({"a": 1 * MB})
    progress.start("a", "a", 1 * MB)
    deadline = time.monotonic() + 30
    while out.getvalue().count("\n") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3
    assert all(line.endswith("1 of 1 blob left") for line in lines)


def test_nothing_is_printed_quietly_and_a_pipe_gets_plain_lines() -> None:
    out = io.StringIO()
    quiet = choose_progress(True, out)
    assert isinstance(quiet, NullProgress)
    quiet.expect({"a": 1})
    quiet.message("not shown")
    piped = choose_progress(False, out)
    assert isinstance(piped, PlainProgress)
    piped.close()
    assert out.getvalue() == ""


# -- bars on a terminal -------------------------------------------------------------------------


def terminal(width: int = 80, height: int = 24) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(
        file=out, width=width, height=height, force_terminal=True, color_system=None
    ), out


def draw(progress: RichProgress, console: Console, out: io.StringIO) -> list[str]:
    out.seek(0)
    out.truncate()
    console.print(progress.renderable())
    return out.getvalue().splitlines()


LONG = "registry.example.com:5000/some-organisation/a-rather-long-repository-name/app:v1.2.3"


def test_rich_rows_fit_80_columns_and_24_rows_with_the_total_row_last() -> None:
    clock = Clock()
    console, out = terminal()
    progress = RichProgress(console, clock=clock, live=False)
    progress.expect({f"k{i}": 10 * MB for i in range(31)})
    for i in range(30):
        progress.start(f"k{i}", f"{LONG} {i:012x}", 10 * MB)
    clock.wait(1)
    progress.advance("k0", 4 * MB)
    lines = draw(progress, console, out)
    assert len(lines) <= 23  # the cursor's line stays free: nothing scrolls away
    assert all(cell_len(line) <= 80 for line in lines)
    assert lines[-2].startswith("… and ")
    assert "more in progress" in lines[-2]
    assert lines[-1].startswith("total 0/31 blobs")
    assert "4.0/310.0 MB" in lines[-1]
    assert "4.0 MB/s" in lines[-1]  # the rate from the first second on
    assert "/app:v1.2.3 000000000000" in lines[0]


def test_rich_finished_rows_disappear_and_the_total_stays_fixed() -> None:
    clock = Clock()
    console, out = terminal(80, 24)
    progress = RichProgress(console, clock=clock, live=False)
    progress.expect({"a": 2 * MB, "b": 3 * MB, "c": 5 * MB})
    progress.start("a", "img:1 aaaaaaaaaaaa", 2 * MB)
    progress.start("b", "img:1 bbbbbbbbbbbb", 3 * MB)
    clock.wait(1)
    progress.advance("a", 2 * MB)
    progress.finish("a")
    progress.start("c", "img:1 cccccccccccc", 5 * MB)
    progress.finish("c", "cached")
    lines = draw(progress, console, out)
    assert [line.split()[0] for line in lines] == ["img:1", "total"]
    assert lines[1].startswith("total 2/3 blobs")
    assert "bbbbbbbbbbbb" in lines[0]
    assert "7.0/10.0 MB" in lines[1]
    progress.advance("b", 3 * MB)
    progress.finish("b")
    clock.wait(2)
    final = draw(progress, console, out)
    assert len(final) == 1
    assert re.search(r"^total 3/3 blobs .* 10\.0/10\.0 MB .*0:03$", final[0])


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_rich_rows_never_wrap_at_any_width(width: int) -> None:
    clock = Clock()
    console, out = terminal(width, 10)
    progress = RichProgress(console, clock=clock, live=False)
    for i in range(12):
        progress.start(f"k{i}", f"{LONG} {i:012x}", 1500 * MB)
    clock.wait(3)
    progress.advance("k1", 999 * MB)
    lines = draw(progress, console, out)
    assert len(lines) == 9  # 7 rows, "and 5 more", the total
    assert all(cell_len(line) <= width for line in lines)


def test_size_pair_uses_the_totals_unit() -> None:
    assert size_pair(512, 900) == "512/900 B"
    assert size_pair(1_200_000, 45_600_000) == "1.2/45.6 MB"
    assert size_pair(0, 2_000_000_000) == "0.0/2.0 GB"


def test_rich_messages_go_above_and_close_stops_drawing() -> None:
    console, out = terminal()
    progress = RichProgress(console, clock=Clock(), live=False)
    progress.message("resolving [bold]app[/bold]:1")
    progress.close()
    progress.close()
    assert out.getvalue() == "resolving [bold]app[/bold]:1\n"

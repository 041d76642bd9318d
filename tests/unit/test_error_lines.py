"""Error lines stay short whatever an archive holds: long lists are summed up with a count.

The issue's case: an ``index.json`` repeating one entry 24,000 times made ``unpack`` print
one error line of 1.75 MB and ``push`` one of 661 KB.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sneaker.cli.main import main
from sneaker.cli.render import report
from sneaker.errors import MAX_LINE, SneakerError, VerificationFailed, cap, summarize
from sneaker.image import mediatypes as mt
from tests.unit.test_verify import Layout

REPEATS = 24_000


@pytest.fixture(scope="module")
def repeated_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layout whose ``index.json`` lists one unnamed image 24,000 times."""
    layout = Layout(tmp_path_factory.mktemp("repeated") / "layout")
    desc = layout.image([{"a": b"x"}])
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc] * REPEATS}
    (layout.root / "index.json").write_text(json.dumps(doc, separators=(",", ":")))
    return layout.root


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    lines = capsys.readouterr().err.splitlines()
    assert lines, "an error line was printed"
    for line in lines:
        assert len(line) <= MAX_LINE + len("error: "), f"{len(line)} characters"
    return lines


def test_unpack_sums_up_the_images_it_could_choose(
    repeated_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["unpack", "-q", str(repeated_index), str(tmp_path / "rootfs")]) == 2
    first = error_lines(capsys)[0]
    assert first.startswith(f"error: the archive holds {REPEATS} images: sha256:")
    assert first.endswith(" more")
    assert " and 23,99" in first
    assert len(first) < 800


def test_push_sums_up_the_images_of_the_archive(
    repeated_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = "127.0.0.1:1/x/y:1"
    assert main(["push", "--retries", "0", str(repeated_index), target]) == 2
    first = error_lines(capsys)[0]
    assert first.startswith(f"error: TARGET {target} names one image, and the archive holds")
    assert " more" in first
    assert len(first) < 800


def test_verification_failed_counts_what_it_does_not_list() -> None:
    problems = [f"app:1: layer sha256:{n:064x}: blob missing" for n in range(REPEATS)]
    failed = VerificationFailed(problems)
    assert failed.message.startswith(f"{REPEATS} problems found: app:1: layer sha256:")
    assert failed.message.endswith(f" and {REPEATS - 6:,} more")
    assert len(failed.message) < 800
    assert failed.problems == problems  # all of them, for whoever wants the list


def test_the_cli_cuts_any_line_that_is_still_too_long(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert report(SneakerError("x" * 2_000_000, hint="y" * 5000)) == 1
    error, hint = capsys.readouterr().err.splitlines()
    assert error.startswith("error: xxx")
    assert error.endswith(" more characters)")
    assert len(error) <= MAX_LINE + len("error: ")
    assert len(hint) <= MAX_LINE + len("hint: ")


def test_summarize_and_cap() -> None:
    assert summarize([]) == ""
    assert summarize(["a", "b"]) == "a, b"
    assert summarize(["a", "b", "c"], sep="; ", budget=4) == "a; b and 1 more"
    assert summarize(["x" * 50, "y"], budget=10).startswith("x")
    assert summarize(["x" * 50, "y"], budget=10).endswith(" and 1 more")
    assert summarize(str(n) for n in range(30_000)).endswith(" and 29,858 more")
    assert cap("short") == "short"
    assert cap("z" * 100, 60) == "z" * 20 + "... (80 more characters)"

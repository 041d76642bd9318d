"""Every failure the CLI meets is one ``error:`` line, maybe a ``hint:``, and a documented code.

``sneaker`` runs as a user runs it (a fresh interpreter per command) on a spread
of failures: bad references, digests and options, missing files, files that are
not archives, damaged and compressed archives, an unreachable registry on a
closed loopback port, a registry that lacks the image, one that wants
credentials, one that sends too much, and a broken config.json. The exit codes
are README's table, which must match ``sneaker.errors`` (the truth). Pulls run
with ``-q``: without it a non-terminal stderr also gets progress lines.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sneaker import errors
from sneaker.archive import write_docker_archive
from tests.fixtures.hostile import HostileRegistry, Reply
from tests.helpers import REPO_ROOT, free_port, sneaker
from tests.unit.test_archive_common import Blobs, make_record

pytestmark = pytest.mark.integration


def documented_exit_codes() -> dict[int, str]:
    """README's exit-code table: code -> meaning."""
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index("| code | meaning |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        match = re.fullmatch(r"\| (\d+) \| (.+) \|", line.strip())
        if match is None:
            break
        rows[int(match[1])] = match[2]
    return rows


def test_readme_exit_codes_match_the_error_tree() -> None:
    codes = {
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.SneakerError)
    }
    assert set(documented_exit_codes()) == codes


@dataclass(frozen=True)
class Files:
    root: Path
    good: Path
    corrupt: Path
    compressed: Path
    notes: Path
    missing: Path
    closed: str  # host:port where nothing listens
    absent: HostileRegistry  # answers, but has no image
    guarded: HostileRegistry  # wants credentials for everything
    greedy: HostileRegistry  # sends a manifest over 4 MiB


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    root = tmp_path_factory.mktemp("cli-failures")
    blobs = Blobs()
    good = root / "good.tar"
    write_docker_archive([make_record(blobs, "app:1")], blobs, good)
    data = good.read_bytes()
    (root / "corrupt.tar").write_bytes(data[: len(data) // 2])
    (root / "good.tar.gz").write_bytes(gzip.compress(data))
    (root / "notes.txt").write_text("not an archive\n")
    (root / "broken-config").mkdir()
    (root / "broken-config" / "config.json").write_text('{"auths": {')
    absent = HostileRegistry().start()
    guarded = HostileRegistry().start()
    challenge = {"WWW-Authenticate": 'Basic realm="hostile"'}
    guarded.put("/v2/", Reply(b"{}", status=401, headers=challenge))
    guarded.put("/v2/x/y/manifests/1", Reply(b"{}", status=401, headers=challenge))
    greedy = HostileRegistry().start()
    greedy.manifest("x/y", "1", b'{"schemaVersion":2,"pad":"' + b"x" * (5 << 20) + b'"}')
    try:
        yield Files(
            root=root,
            good=good,
            corrupt=root / "corrupt.tar",
            compressed=root / "good.tar.gz",
            notes=root / "notes.txt",
            missing=root / "missing.tar",
            closed=f"127.0.0.1:{free_port()}",
            absent=absent,
            guarded=guarded,
            greedy=greedy,
        )
    finally:
        for server in (absent, guarded, greedy):
            server.stop()


#: (id, arguments with {placeholders}, exit code, standard input)
CASES: list[tuple[str, tuple[str, ...], int, str | None]] = [
    ("bad-reference", ("pull", "Ubuntu"), 2, None),
    ("bad-digest", ("pull", "busybox@md5:0123"), 2, None),
    ("bad-platform", ("pull", "--platform", "linux", "busybox"), 2, None),
    ("bad-option", ("pull", "--format", "zip", "busybox"), 2, None),
    ("no-password-on-stdin", ("pull", "busybox", "-u", "me", "--password-stdin"), 2, ""),
    # a path that does not exist is a usage error (exit 2), in every verb that reads one
    ("inspect-missing-file", ("inspect", "{missing}"), 2, None),
    ("verify-missing-file", ("verify", "{missing}"), 2, None),
    ("unpack-missing-file", ("unpack", "{missing}", "{root}/rootfs"), 2, None),
    ("push-missing-file", ("push", "{missing}", "{closed}/x/y:1"), 2, None),
    ("serve-missing-file", ("serve", "--addr", "127.0.0.1:0", "{missing}"), 2, None),
    ("inventory-missing-file", ("inventory", "{missing}"), 2, None),
    ("assemble-missing-plan", ("assemble", "{root}/no-plan", "-o", "out.tar"), 2, None),
    ("pull-since-missing-file", ("pull", "--since", "{missing}", "{closed}/x/y:1"), 2, None),
    ("inspect-not-an-archive", ("inspect", "{notes}"), 8, None),
    ("unpack-not-an-archive", ("unpack", "{notes}", "{root}/rootfs"), 8, None),
    ("inspect-corrupt-archive", ("inspect", "{corrupt}"), 8, None),
    ("push-corrupt-archive", ("push", "{corrupt}", "{closed}/x/y:1"), 8, None),
    ("verify-corrupt-archive", ("verify", "{corrupt}"), 8, None),
    ("compressed-archive", ("inspect", "{compressed}"), 9, None),
    ("pull-unreachable", ("pull", "-q", "--retries", "0", "{closed}/x/y:1"), 6, None),
    ("inspect-unreachable", ("inspect", "--retries", "0", "{closed}/x/y:1"), 6, None),
    ("push-unreachable", ("push", "--retries", "0", "{good}", "{closed}/x/y:1"), 6, None),
    ("not-found", ("pull", "-q", "--retries", "0", "{absent}/x/y:1"), 5, None),
    ("auth-required", ("pull", "-q", "--retries", "0", "{guarded}/x/y:1"), 4, None),
    ("oversized-manifest", ("pull", "-q", "--retries", "0", "{greedy}/x/y:1"), 7, None),
    ("broken-config-json", ("logout", "{closed}"), 3, None),
]


def _argv(args: tuple[str, ...], files: Files) -> list[str]:
    values = {
        "root": str(files.root),
        "good": str(files.good),
        "corrupt": str(files.corrupt),
        "compressed": str(files.compressed),
        "notes": str(files.notes),
        "missing": str(files.missing),
        "closed": files.closed,
        "absent": files.absent.host,
        "guarded": files.guarded.host,
        "greedy": files.greedy.host,
    }
    return [a.format(**values) for a in args]


def _env(files: Files, case: str, tmp_path: Path) -> dict[str, str]:
    config = files.root / "broken-config" if case == "broken-config-json" else tmp_path / "dc"
    return {
        "DOCKER_CONFIG": str(config),
        "SNEAKER_CACHE_DIR": str(tmp_path / "cache"),
        "CONTAINERS_REGISTRIES_CONF": str(tmp_path / "no-registries.conf"),
        "SNEAKER_DAEMON_JSON": "",
    }


@pytest.mark.parametrize(("case", "args", "code", "stdin"), CASES, ids=[c[0] for c in CASES])
def test_failure_is_one_error_line_a_hint_at_most_and_a_documented_code(
    files: Files, tmp_path: Path, case: str, args: tuple[str, ...], code: int, stdin: str | None
) -> None:
    result = sneaker(
        *_argv(args, files),
        env=_env(files, case, tmp_path),
        input=stdin,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    lines = result.stderr.splitlines()
    assert result.returncode == code, result.stderr
    assert code in documented_exit_codes()
    assert 1 <= len(lines) <= 2, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in ("dc", "cache")) == []


def test_debug_prints_the_trace_and_still_ends_with_the_error_line(
    files: Files, tmp_path: Path
) -> None:
    result = sneaker(
        "--debug", "inspect", files.corrupt, env=_env(files, "", tmp_path), check=False
    )
    assert result.returncode == 8
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: ")

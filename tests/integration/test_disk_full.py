"""A full disk names the file, says how much was needed and what a rerun keeps.

Each test mounts a small tmpfs (tests/fixtures/small_disk.py) and fills it with a real
pull of the seeded app image (about a megabyte) from the session registry: the output
archive, the blob cache, an OCI layout, split parts, and an unpacked tree. Each failure
is one ``error:`` line naming the user's file (never a hidden temporary name) and a
``hint:``; nothing is left behind but what a rerun resumes from; after the disk is made
larger, the same command completes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.fixtures.seeding import Seeded
from tests.fixtures.small_disk import small_disk
from tests.helpers import sneaker

pytestmark = pytest.mark.integration

SMALL = 256 * 1024
LARGE = 64 << 20
SIZE = r"[\d.]+ [kMG]?B"
AGAIN = "hint: free some space there (or write somewhere else) and run the command again"
CACHE_KEEPS = "the blobs already downloaded are kept in the cache, and partial ones resume"


def full(path: Path | str, needed: bool = True) -> str:
    """The error line of a full disk while writing ``path``."""
    about = rf"about {SIZE} needed, " if needed else ""
    return (
        rf"error: cannot write {re.escape(str(path))}: no space left on the device "
        rf"\({about}{SIZE} free\)"
    )


def test_archive_output_on_a_full_disk(seeded: Seeded, env: dict[str, str], tmp_path: Path) -> None:
    with small_disk(tmp_path, SMALL) as disk:
        out = disk.path / "app.tar"
        failed = sneaker("pull", "-q", seeded.app.ref, "-o", out, env=env, check=False)
        assert failed.returncode == 1, failed.stderr
        error, hint = failed.stderr.splitlines()
        assert re.fullmatch(full(out), error), error
        assert hint == f"{AGAIN}: {CACHE_KEEPS}"
        assert disk.files() == [], "no temporary archive is left"

        disk.resize(LARGE)
        again = sneaker("pull", "--json", seeded.app.ref, "-o", out, env=env)
        blobs = json.loads(again.stdout)["blobs"]
        assert blobs["downloaded"] == 0, "every blob came from the cache"
        assert disk.files() == ["app.tar"]


def test_cache_on_a_full_disk_resumes(seeded: Seeded, env: dict[str, str], tmp_path: Path) -> None:
    with small_disk(tmp_path, SMALL) as disk:
        cache = disk.path / "cache"
        here = {**env, "SNEAKER_CACHE_DIR": str(cache)}
        out = tmp_path / "app.tar"
        failed = sneaker("pull", "-q", seeded.app.ref, "-o", out, env=here, check=False)
        assert failed.returncode == 1, failed.stderr
        error, hint = failed.stderr.splitlines()
        partial = re.escape(str(cache / "partial" / "sha256"))
        pattern = full("PARTIAL", needed=True).replace("PARTIAL", rf"{partial}/[0-9a-f]{{64}}")
        assert re.fullmatch(pattern, error), error
        assert hint == f"{AGAIN}: {CACHE_KEEPS}"
        assert not out.exists()
        assert not list(tmp_path.glob(".app.tar*")), "no temporary archive is left"

        disk.resize(LARGE)
        again = sneaker("pull", "--json", seeded.app.ref, "-o", out, env=here)
        assert json.loads(again.stdout)["blobs"]["resumed"] >= 1, again.stdout
        assert out.is_file()


def test_layout_on_a_full_disk_keeps_what_it_wrote(
    seeded: Seeded, env: dict[str, str], tmp_path: Path
) -> None:
    with small_disk(tmp_path, SMALL) as disk:
        layout = disk.path / "layout"
        args = ["pull", "-q", "--format", "oci", seeded.app.ref, "-o", f"{layout}/"]
        failed = sneaker(*args, env=env, check=False)
        assert failed.returncode == 1, failed.stderr
        error, hint = failed.stderr.splitlines()
        blob = re.escape(str(layout / "blobs" / "sha256"))
        assert re.fullmatch(full("BLOB").replace("BLOB", rf"{blob}/[0-9a-f]{{64}}"), error), error
        assert hint == (
            f"{AGAIN}: the blobs already in the layout are kept, and a rerun writes only the "
            f"rest; {CACHE_KEEPS}"
        )
        assert not [f for f in disk.files() if f.endswith(".tmp")], disk.files()
        kept = [f for f in disk.files() if f.startswith("layout/blobs/sha256/")]

        disk.resize(LARGE)
        sneaker(*args, env=env)
        assert (layout / "index.json").is_file()
        assert set(kept) <= set(disk.files())


def test_split_parts_on_a_full_disk(seeded: Seeded, env: dict[str, str], tmp_path: Path) -> None:
    with small_disk(tmp_path, SMALL) as disk:
        out = disk.path / "app.tar"
        args = ["pull", "-q", "--split", "64K", seeded.app.ref, "-o", out]
        failed = sneaker(*args, env=env, check=False)
        assert failed.returncode == 1, failed.stderr
        error, _hint = failed.stderr.splitlines()
        part = re.escape(f"{out}.") + r"\d{3}"
        assert re.fullmatch(full("PART").replace("PART", part), error), error
        assert disk.files() == [], "no part, whole or temporary, is left"


def test_unpack_on_a_full_disk(seeded: Seeded, env: dict[str, str], tmp_path: Path) -> None:
    archive = tmp_path / "app.tar"
    sneaker("pull", "-q", seeded.app.ref, "-o", archive, env=env)
    with small_disk(tmp_path, SMALL) as disk:
        dest = disk.path / "rootfs"
        failed = sneaker("unpack", "-q", archive, dest, env=env, check=False)
        assert failed.returncode == 1, failed.stderr
        error, hint = failed.stderr.splitlines()
        assert re.fullmatch(full(dest / "bin" / "busybox", needed=False), error), error
        assert hint == AGAIN
        assert disk.files() == [], "the partly unpacked tree is removed"

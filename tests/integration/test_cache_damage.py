"""A damaged blob in the cache never reaches an archive: it is found, removed and downloaded again.

A real registry (seeded with skopeo) sits behind the shaping proxy, whose log
says which blobs were fetched. The first pull fills the cache; then one cached
layer is damaged on disk (a flipped byte, a cut tail, bytes appended), as a
failing disk or a careless hand would, and the second pull must write an archive
whose every blob hashes to its name. An OCI layout directory hard-links its
blobs from the cache, so damage to the cache is damage to the layout too: the
second pull into the same layout repairs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures import shaping
from tests.fixtures.random_images import BlobInfo, RandomLayout, make_random_layout
from tests.fixtures.registry import RegistryInfo
from tests.fixtures.seeding import seed_oci_layout
from tests.fixtures.shaping import ShapingProxy
from tests.helpers import sneaker

pytestmark = pytest.mark.integration

shaping_proxy = shaping.shaping_proxy  # the fixture, made visible to this module

MakeProxy = Callable[..., ShapingProxy]
REPO = "cache/damage"


@pytest.fixture(scope="module")
def image(registry: RegistryInfo, tmp_path_factory: pytest.TempPathFactory) -> RandomLayout:
    layout = make_random_layout(
        tmp_path_factory.mktemp("damage"), [700_000, 300_000], kind="random", seed="cache-damage"
    )
    seed_oci_layout(registry, layout.path, "img", f"{REPO}:1", all_images=False)
    return layout


def flip_a_byte(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.seek(path.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))


def cut_the_tail(path: Path) -> None:
    os.truncate(path, path.stat().st_size - 1000)


def append_bytes(path: Path) -> None:
    with path.open("ab") as handle:
        handle.write(b"\0" * 1000)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "flipped": flip_a_byte,
    "truncated": cut_the_tail,
    "grown": append_bytes,
}


def _blob_files(out: Path, fmt: str) -> dict[str, bytes]:
    """Every blob of the archive (docker) or layout directory (oci), by member name."""
    if fmt == "docker":
        with tarfile.open(out) as tar:
            found: dict[str, bytes] = {}
            for member in tar.getmembers():
                handle = tar.extractfile(member)
                if member.name.startswith("blobs/sha256/") and handle is not None:
                    found[member.name.rsplit("/", 1)[1]] = handle.read()
            return found
    return {p.name: p.read_bytes() for p in (out / "blobs" / "sha256").iterdir()}


def _assert_sound(out: Path, fmt: str, image: RandomLayout) -> None:
    blobs = _blob_files(out, fmt)
    for blob in image.blobs:
        assert blob.hex in blobs, f"{blob.digest} is missing from {out}"
    for name, data in blobs.items():
        assert hashlib.sha256(data).hexdigest() == name, f"{out}: blob {name} is damaged"


def _pull(env: dict[str, str], ref: str, out: Path, cache: Path, fmt: str) -> dict[str, object]:
    result = sneaker(
        "pull", "--json", "--cache-dir", cache, "--format", "docker" if fmt == "docker" else "oci",
        "-o", f"{out}/" if fmt == "oci" else out, ref,
        env=env, timeout=300,
    )  # fmt: skip
    summary: dict[str, object] = json.loads(result.stdout)
    summary["stderr"] = result.stderr
    return summary


def _fetched(proxy: ShapingProxy, blob: BlobInfo) -> list[int]:
    """The sizes of the bodies of ``blob`` the registry sent."""
    return [b.received for b in proxy.served(f"/blobs/{blob.digest}") if b.status in (200, 206)]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_a_damaged_cached_blob_is_downloaded_again_and_never_written(
    image: RandomLayout,
    registry: RegistryInfo,
    shaping_proxy: MakeProxy,
    env: dict[str, str],
    tmp_path: Path,
    fmt: str,
    damage: str,
) -> None:
    proxy = shaping_proxy(registry.url)
    ref = f"{proxy.host}/{REPO}:1"
    cache = tmp_path / "cache"
    first = tmp_path / ("first.tar" if fmt == "docker" else "layout")
    _pull(env, ref, first, cache, fmt)
    victim = max(image.layers, key=lambda b: b.size)
    DAMAGE[damage](cache / "blobs" / "sha256" / victim.hex)

    proxy.clear()
    # a docker archive goes to a new file; a layout into the same directory, whose file
    # of that blob is (for a flipped byte) the damaged file itself: a hard link
    second = tmp_path / "second.tar" if fmt == "docker" else first
    summary = _pull(env, ref, second, cache, fmt)
    _assert_sound(second, fmt, image)
    assert summary["blobs"] == {"downloaded": 1, "resumed": 0, "cached": len(image.blobs) - 1}
    assert _fetched(proxy, victim) == [victim.size]  # downloaded again, whole
    for blob in image.blobs:
        if blob != victim:
            assert _fetched(proxy, blob) == [], blob.digest
    stderr = str(summary["stderr"])
    assert f"warning: the cached blob {victim.digest} was damaged" in stderr, stderr
    repaired = cache / "blobs" / "sha256" / victim.hex
    assert hashlib.sha256(repaired.read_bytes()).hexdigest() == victim.hex

    # and the next pull takes the repaired blob without a word
    proxy.clear()
    third = _pull(env, ref, tmp_path / ("third.tar" if fmt == "docker" else "third"), cache, fmt)
    assert "warning" not in str(third["stderr"])
    assert proxy.served("/blobs/") == []

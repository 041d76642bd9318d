"""``sneaker cache info|prune|verify`` on a cache real pulls filled, with a pull running.

A real registry (seeded with skopeo) behind the shaping proxy; sneaker runs as
a subprocess, as a user runs it. The prune that runs while a pull is writing
its archive must leave every blob that pull has taken (and has yet to copy),
and remove the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import shaping
from tests.fixtures.random_images import RandomLayout, assert_archive_holds, make_random_layout
from tests.fixtures.registry import RegistryInfo
from tests.fixtures.seeding import seed_oci_layout
from tests.fixtures.shaping import ShapingProxy
from tests.helpers import sneaker, wait_until

pytestmark = pytest.mark.integration

shaping_proxy = shaping.shaping_proxy  # the fixture, made visible to this module

MakeProxy = Callable[..., ShapingProxy]
REPO = "cache/verbs"


@pytest.fixture(scope="module")
def image(registry: RegistryInfo, tmp_path_factory: pytest.TempPathFactory) -> RandomLayout:
    layout = make_random_layout(
        tmp_path_factory.mktemp("verbs"),
        [2_000_000, 1_000_000, 200_000],
        kind="random",
        seed="cache-verbs",
    )
    seed_oci_layout(registry, layout.path, "img", f"{REPO}:1", all_images=False)
    return layout


def _cache_json(env: dict[str, str], *args: str | os.PathLike[str], check: bool = True) -> Any:
    result = sneaker("cache", *args, "--json", env=env, check=check, timeout=120)
    return json.loads(result.stdout)


def _foreign_blob(cache: Path) -> Path:
    """A blob of some other image, pulled long ago (no running pull uses it)."""
    data = b"a layer of an image pulled long ago" * 1000
    path = cache / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()
    path.write_bytes(data)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    return path


def test_prune_while_a_pull_runs_removes_only_what_it_does_not_use(
    image: RandomLayout,
    registry: RegistryInfo,
    shaping_proxy: MakeProxy,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    proxy = shaping_proxy(registry.url)
    ref = f"{proxy.host}/{REPO}:1"
    cache = tmp_path / "cache"
    sneaker("pull", "-q", "--cache-dir", cache, "-o", tmp_path / "fill.tar", ref, env=env)
    foreign = _foreign_blob(cache)
    foreign_size = foreign.stat().st_size
    # the smallest layer is fetched again, slowly: the archive is written smallest blob
    # first, so the pull has taken the two large layers from the cache and waits for this
    # one before it copies them
    slow = min(image.layers, key=lambda b: b.size)
    (cache / "blobs" / "sha256" / slow.hex).unlink()
    (cache / "verified" / "sha256" / slow.hex).unlink()
    proxy.clear()
    proxy.shape("throttle", path_contains=f"/blobs/{slow.digest}", rate=50_000)  # 4 s

    out = tmp_path / "out.tar"
    argv = [sys.executable, "-m", "sneaker", "pull", "-q", "--cache-dir", str(cache),
            "-o", str(out), ref]  # fmt: skip
    pull = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_until(
            lambda: any(b.received > 0 for b in proxy.served(f"/blobs/{slow.digest}")),
            timeout=60,
        )
        during = _cache_json(env, "info", "--cache-dir", cache)
        pruned = _cache_json(env, "prune", "--all", "--cache-dir", cache)
        assert not any(b.done for b in proxy.served(f"/blobs/{slow.digest}")), "too late"
        _, stderr = pull.communicate(timeout=120)
    finally:
        if pull.poll() is None:
            pull.kill()
            pull.wait()
    assert pull.returncode == 0, stderr.decode()
    assert_archive_holds(out, image)

    assert during["in_use_by"] == 1
    # the foreign blob went; the config and the two large layers the pull took stayed, and
    # so did the slow layer's partial download (its lock is held while it downloads)
    assert pruned["removed"]["blobs"] == {"count": 1, "bytes": foreign_size}
    assert pruned["removed"]["partials"]["count"] == 0
    assert pruned["kept_in_use"]["count"] == len(image.blobs)
    assert not foreign.exists()

    after = _cache_json(env, "info", "--cache-dir", cache)
    assert after["blobs"] == {"count": len(image.blobs), "bytes": sum(b.size for b in image.blobs)}
    assert (after["partials"]["count"], after["in_use_by"]) == (0, 0)
    assert after["oldest_use"] is not None

    everything = _cache_json(env, "prune", "--all", "--cache-dir", cache)
    assert everything["removed"]["blobs"]["count"] == len(image.blobs)
    assert everything["removed"]["lock_files"] == len(image.blobs)
    emptied = _cache_json(env, "info", "--cache-dir", cache)
    assert (emptied["size"], emptied["blobs"]["count"], emptied["lock_files"]) == (0, 0, 0)


def test_prune_by_age_and_size_from_the_command_line(
    image: RandomLayout, registry: RegistryInfo, env: dict[str, str], tmp_path: Path
) -> None:
    cache = Path(env["SNEAKER_CACHE_DIR"])  # the default place, as a user's
    ref = f"{registry.host}/{REPO}:1"
    sneaker("pull", "-q", "-o", tmp_path / "a.tar", ref, env=env)
    foreign_size = _foreign_blob(cache).stat().st_size
    kept = sum(b.size for b in image.blobs)

    info = sneaker("cache", "info", env=env).stdout
    assert f"cache: {cache}" in info
    assert f"blobs: {len(image.blobs) + 1} (" in info
    assert "oldest use: 2001-09-" in info  # the foreign blob's time

    young = sneaker("cache", "prune", "--older-than", "30d", env=env).stdout
    assert young.startswith(f"removed 1 blob ({foreign_size / 1000:.1f} kB)"), young

    dry = _cache_json(env, "prune", "--keep-size", str(kept - 1), "--dry-run")
    assert dry["dry_run"]
    assert dry["removed"]["blobs"]["count"] >= 1
    assert _cache_json(env, "info")["blobs"]["count"] == len(image.blobs)  # nothing gone

    trimmed = _cache_json(env, "prune", "--keep-size", "1M")
    assert trimmed["left"]["bytes"] <= 1 << 20
    assert trimmed["removed"]["blobs"]["count"] >= 2

    refused = sneaker("cache", "prune", "--older-than", "30", env=env, check=False)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: invalid age '30'")


def test_verify_finds_bit_rot_and_the_next_pull_repairs_it(
    image: RandomLayout, registry: RegistryInfo, env: dict[str, str], tmp_path: Path
) -> None:
    ref = f"{registry.host}/{REPO}:1"
    cache = Path(env["SNEAKER_CACHE_DIR"])
    sneaker("pull", "-q", "-o", tmp_path / "a.tar", ref, env=env)
    assert "hashed, all right" in sneaker("cache", "verify", env=env).stdout

    victim = max(image.layers, key=lambda b: b.size)
    path = cache / "blobs" / "sha256" / victim.hex
    before = path.stat()
    with path.open("r+b") as handle:  # a flipped bit that leaves no trace in the metadata
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0x10]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    found = sneaker("cache", "verify", env=env, check=False)
    assert found.returncode == 7, found.stderr
    assert found.stdout.startswith(f"problem: digest mismatch for blob {victim.digest}")
    assert found.stderr.splitlines()[-1] == (
        f"error: 1 damaged blob found in {cache}: the next pull downloads them again"
    )
    assert not path.exists()
    sneaker("pull", "-q", "-o", tmp_path / "b.tar", ref, env=env)
    assert_archive_holds(tmp_path / "b.tar", image)

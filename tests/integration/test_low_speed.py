"""A registry that trickles: abandoned below the low-speed limit and continued, or given up.

A real registry (seeded with skopeo) behind the shaping proxy, whose ``trickle``
mode sends the first bytes of a body at full speed and then one byte at a time
with a pause between (or, with a long pause, stops without closing). A plain
read timeout never fires on such a body. sneaker runs as a subprocess with a
small limit (1000 bytes/s over 1 s) so that each case takes seconds; the
default (1 KiB/s over 30 s) acts the same, only slower.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures import shaping
from tests.fixtures.random_images import (
    BlobInfo,
    RandomLayout,
    assert_archive_holds,
    make_random_layout,
)
from tests.fixtures.registry import RegistryInfo
from tests.fixtures.seeding import seed_oci_layout
from tests.fixtures.shaping import ShapingProxy
from tests.helpers import sneaker

pytestmark = pytest.mark.integration

shaping_proxy = shaping.shaping_proxy  # the fixture, made visible to this module

MakeProxy = Callable[..., ShapingProxy]
REPO = "slow/trickle"
LIMIT = ("--low-speed-limit", "1000", "--low-speed-time", "1")
FAST_PART = 300_000


@pytest.fixture(scope="module")
def image(registry: RegistryInfo, tmp_path_factory: pytest.TempPathFactory) -> RandomLayout:
    layout = make_random_layout(
        tmp_path_factory.mktemp("trickle"), [1_000_000], kind="random", seed="low-speed"
    )
    seed_oci_layout(registry, layout.path, "img", f"{REPO}:1", all_images=False)
    return layout


def _layer(image: RandomLayout) -> BlobInfo:
    (layer,) = image.layers
    return layer


def _pull(
    env: dict[str, str], proxy: ShapingProxy, out: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = sneaker(
        "pull", "--json", "--cache-dir", out.parent / "cache", "-o", out, *LIMIT, *extra,
        f"{proxy.host}/{REPO}:1", check=False, env=env, timeout=90,
    )  # fmt: skip
    return result, time.monotonic() - start


def _gets(proxy: ShapingProxy, blob: BlobInfo) -> list[dict[str, str]]:
    seen = proxy.seen(path_contains=f"/blobs/{blob.digest}")
    return [dict(r.headers) for r in seen if r.method == "GET"]


@pytest.mark.parametrize(
    ("every", "what"),
    [(0.25, "a trickle"), (20.0, "silence")],
    ids=["one byte every 0.25 s", "a body that stops"],
)
def test_a_trickling_body_is_abandoned_and_continued_where_it_stopped(
    image: RandomLayout,
    registry: RegistryInfo,
    shaping_proxy: MakeProxy,
    env: dict[str, str],
    tmp_path: Path,
    every: float,
    what: str,
) -> None:
    proxy = shaping_proxy(registry.url)
    layer = _layer(image)
    proxy.shape(
        "trickle", path_contains=f"/blobs/{layer.digest}", times=1, offset=FAST_PART, every=every
    )
    out = tmp_path / "out.tar"
    result, elapsed = _pull(env, proxy, out)
    assert result.returncode == 0, result.stderr
    assert elapsed < 15, f"{what}: {elapsed:.1f} s"  # the silence: 1 s, not its 20 s
    assert_archive_holds(out, image)
    assert json.loads(result.stdout)["blobs"]["resumed"] == 1
    first, second = _gets(proxy, layer)
    assert "Range" not in first
    # continued from what had arrived: the fast part and whatever trickled after it
    start = int(second["Range"].removeprefix("bytes=").rstrip("-"))
    assert FAST_PART <= start < FAST_PART + 100


def test_a_registry_that_only_trickles_is_given_up_after_a_few_attempts(
    image: RandomLayout,
    registry: RegistryInfo,
    shaping_proxy: MakeProxy,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    proxy = shaping_proxy(registry.url)
    layer = _layer(image)
    proxy.shape("trickle", path_contains=f"/blobs/{layer.digest}", offset=FAST_PART, every=0.25)
    out = tmp_path / "out.tar"
    result, elapsed = _pull(env, proxy, out)
    assert result.returncode == 6, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-2].startswith(
        f"error: blob {layer.digest} from {proxy.host}/{REPO} came too slowly after "
    ), lines
    assert "below the low-speed limit of 1000 bytes/s over 1 s" in lines[-2]
    assert lines[-1].startswith("hint: on a link this slow, lower --low-speed-limit")
    # bounded: five abandoned attempts in a row (each brought a few bytes: they count as
    # none), then the last error
    assert len(_gets(proxy, layer)) == 5
    assert elapsed < 45
    assert not out.exists()


def test_the_limit_can_be_turned_off(
    image: RandomLayout,
    registry: RegistryInfo,
    shaping_proxy: MakeProxy,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """A slow but steady link below the limit: 0 lets it take its time."""
    proxy = shaping_proxy(registry.url)
    layer = _layer(image)
    proxy.shape(
        "trickle", path_contains=f"/blobs/{layer.digest}", times=1,
        offset=layer.size - 3, every=0.6,
    )  # fmt: skip
    out = tmp_path / "out.tar"
    result, _ = _pull(env, proxy, out, "--low-speed-limit", "0")
    assert result.returncode == 0, result.stderr
    assert len(_gets(proxy, layer)) == 1  # never abandoned
    assert_archive_holds(out, image)

"""The download engine end to end: ``sneaker pull`` through faults, kills and a shared cache.

Images are OCI layouts of generated layers (``tests/fixtures/random_images.py``)
copied into real registries with ``skopeo copy``. Pulls go through the
fault-injecting proxy (``tests/fixtures/faults.py`` plus the throttle and byte
flip of ``tests/fixtures/shaping.py``), whose logs say exactly which requests
and byte ranges reached the registry. sneaker runs as a subprocess, as a user runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import shaping
from tests.fixtures.random_images import BlobInfo, RandomLayout, make_random_layout
from tests.fixtures.registry import MakeRegistry, RegistryInfo, TokenRegistryInfo
from tests.fixtures.seeding import seed_oci_layout
from tests.fixtures.shaping import ShapingProxy
from tests.helpers import sneaker, wait_until

pytestmark = pytest.mark.integration

shaping_proxy = shaping.shaping_proxy  # the fixture, made visible to this module

MakeProxy = Callable[..., ShapingProxy]
REPO = "engine/medium"
TAG = "1"
#: sneaker writes the partial file a chunk (1 MiB) at a time
MIB = 1 << 20


@dataclass(frozen=True)
class Medium:
    """A three-layer image (about 6 MB of incompressible gzip layers) in a registry."""

    layout: RandomLayout
    registry: RegistryInfo
    repository: str

    def ref(self, host: str) -> str:
        return f"{host}/{self.repository}:{TAG}"

    @property
    def largest(self) -> BlobInfo:
        return max(self.layout.layers, key=lambda b: b.size)


@pytest.fixture(scope="module")
def medium_layout(tmp_path_factory: pytest.TempPathFactory) -> RandomLayout:
    return make_random_layout(
        tmp_path_factory.mktemp("medium"),
        [3_000_000, 2_000_000, 1_000_000],
        kind="random",
        seed="engine-medium",
    )


@pytest.fixture(scope="module")
def medium(registry: RegistryInfo, medium_layout: RandomLayout) -> Medium:
    seed_oci_layout(registry, medium_layout.path, "img", f"{REPO}:{TAG}", all_images=False)
    return Medium(medium_layout, registry, REPO)


def _argv(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "sneaker", *(os.fspath(a) for a in args)]


def _pull(
    env: Mapping[str, str],
    ref: str,
    out: Path,
    cache: Path,
    *extra: str,
    check: bool = True,
    input: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    return sneaker(
        "pull", "--json", "--cache-dir", cache, "-o", out, *extra, ref,
        check=check, env=env, input=input, timeout=timeout,
    )  # fmt: skip


def _summary(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    blobs: dict[str, int] = json.loads(result.stdout)["blobs"]
    return blobs


def _blob_gets(proxy: ShapingProxy, digest: str) -> list[shaping.Served]:
    """Blob bodies the registry sent for ``digest`` (redirected ones included)."""
    return [b for b in proxy.served(f"/blobs/{digest}") if b.status in (200, 206)]


def _cache_blobs(cache: Path) -> dict[str, int]:
    blobs = cache / "blobs" / "sha256"
    if not blobs.is_dir():
        return {}
    return {f"sha256:{p.name}": p.stat().st_size for p in blobs.iterdir()}


def _partials(cache: Path) -> dict[str, int]:
    partial = cache / "partial" / "sha256"
    if not partial.is_dir():
        return {}
    return {f"sha256:{p.name}": p.stat().st_size for p in partial.iterdir() if p.suffix != ".json"}


def _assert_archive_holds(out: Path, medium: Medium) -> None:
    """``out`` is a tar holding every blob of the image, each hashing to its name.

    The archive is written while the layers download (each copied from the cache as
    it lands): whatever the faults, each must come out whole and right.
    """
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert "manifest.json" in names
        for blob in medium.layout.blobs:
            member = tar.extractfile(f"blobs/sha256/{blob.hex}")
            assert member is not None, blob.digest
            assert hashlib.sha256(member.read()).hexdigest() == blob.hex, blob.digest


def _assert_cache_sound(cache: Path) -> None:
    """Every complete blob in the cache hashes to its name."""
    for path in (cache / "blobs" / "sha256").glob("*"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, path


# -- a cut, rate limits, server errors ------------------------------------------------------


def test_cut_mid_stream_resumes_with_range(
    medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    proxy = shaping_proxy(medium.registry.url)
    big = medium.largest
    cut_at = 2 * MIB + 12_345
    proxy.add_fault("cut", path_contains=f"/blobs/{big.digest}", method="GET", after_bytes=cut_at)
    out = tmp_path / "out.tar"
    result = _pull(env, medium.ref(proxy.host), out, tmp_path / "cache")
    assert out.is_file()
    assert _summary(result)["resumed"] == 1
    gets = [r for r in proxy.seen(path_contains=f"/blobs/{big.digest}") if r.method == "GET"]
    assert [r.fault for r in gets] == ["cut", None]
    assert "Range" not in gets[0].headers
    # everything that arrived before the cut was kept: the second request asks for the rest
    assert gets[1].headers["Range"] == f"bytes={cut_at}-"
    assert gets[1].headers["If-Range"]
    second = _blob_gets(proxy, big.digest)[-1]
    assert (second.status, second.start, second.received) == (206, cut_at, big.size - cut_at)
    _assert_cache_sound(tmp_path / "cache")
    _assert_archive_holds(out, medium)


def test_body_cut_again_and_again_gives_up_with_the_last_error(
    medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    proxy = shaping_proxy(medium.registry.url)
    big = medium.largest
    proxy.add_fault(
        "cut", path_contains=f"/blobs/{big.digest}", method="GET", after_bytes=0, times=100
    )
    out = tmp_path / "out.tar"
    start = time.monotonic()
    result = _pull(env, medium.ref(proxy.host), out, tmp_path / "cache", check=False)
    assert time.monotonic() - start < 30
    assert result.returncode == 6, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(
        f"error: connection cut while reading blob {big.digest} from "
        f"{proxy.host}/{REPO} after 0 bytes"
    ), last
    # bounded: five attempts in a row that brought no byte, then the last error
    gets = [r for r in proxy.seen(path_contains=f"/blobs/{big.digest}") if r.method == "GET"]
    assert len(gets) == 5
    assert not out.exists()


def test_429_with_retry_after_waits_then_succeeds(
    medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    proxy = shaping_proxy(medium.registry.url)
    big = medium.largest
    proxy.add_fault(
        "status", path_contains=f"/blobs/{big.digest}", method="GET", status=429, times=2,
        headers={"Retry-After": "2", "RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0"},
    )  # fmt: skip
    start = time.monotonic()
    _pull(env, medium.ref(proxy.host), tmp_path / "out.tar", tmp_path / "cache")
    elapsed = time.monotonic() - start
    gets = [r for r in proxy.seen(path_contains=f"/blobs/{big.digest}") if r.method == "GET"]
    assert [r.fault for r in gets] == ["status", "status", None]
    # two waits of Retry-After: 2 s; backoff alone would have waited under 1.5 s in all
    assert elapsed >= 4.0


def test_429_that_never_stops_is_rate_limited_with_its_headers(
    medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    proxy = shaping_proxy(medium.registry.url)
    big = medium.largest
    headers = {"Retry-After": "1", "RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0"}
    proxy.add_fault(
        "status", path_contains=f"/blobs/{big.digest}", status=429, headers=headers, times=1000
    )
    out = tmp_path / "out.tar"
    result = _pull(
        env, medium.ref(proxy.host), out, tmp_path / "cache", "--retries", "2", check=False
    )
    assert result.returncode == 6, result.stderr
    url = f"http://{proxy.host}/v2/{REPO}/blobs/{big.digest}"
    assert result.stderr.splitlines()[-2:] == [
        f"error: {proxy.host} rate-limited GET {url}: HTTP 429 after 3 attempts "
        "(RateLimit-Limit: 100;w=21600, RateLimit-Remaining: 0)",
        "hint: wait and try again, or log in for a higher limit",
    ]
    # bounded: the transport's 3 attempts, not retried again by the download engine
    assert len(proxy.seen(path_contains=f"/blobs/{big.digest}")) == 3
    assert not out.exists()


def test_503_is_retried(
    medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    proxy = shaping_proxy(medium.registry.url)
    proxy.add_fault("status", path_contains="/blobs/", method="GET", status=503, times=3)
    result = _pull(env, medium.ref(proxy.host), tmp_path / "out.tar", tmp_path / "cache")
    assert _summary(result)["downloaded"] == len(medium.layout.blobs)
    faults = [r.fault for r in proxy.seen(path_contains="/blobs/") if r.method == "GET"]
    assert faults.count("status") == 3
    assert len(faults) == 3 + len(medium.layout.blobs)


# -- redirects and tokens --------------------------------------------------------------------


def test_blob_redirect_to_another_host_never_carries_authorization(
    medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    # the proxy demands Basic credentials; the redirect target answers 400 to any
    # request that carries an Authorization header, as presigned storage URLs do
    proxy = shaping_proxy(medium.registry.url, basic_auth=("puller", "s3cret"))
    proxy.add_fault("redirect", path_contains="/blobs/sha256:", method="GET", times=100)
    out = tmp_path / "out.tar"
    _pull(
        env, medium.ref(proxy.host), out, tmp_path / "cache",
        "--username", "puller", "--password-stdin", input="s3cret\n",
    )  # fmt: skip
    assert out.is_file()
    redirected = proxy.seen("redirect")
    assert len(redirected) == len(medium.layout.blobs)
    assert not any(r.had_auth for r in redirected)
    assert not any("Authorization" in r.headers for r in redirected)
    # the registry's own host did get the credentials
    blob_gets = [r for r in proxy.seen(path_contains="/blobs/") if r.method == "GET"]
    assert blob_gets
    assert all(r.had_auth and r.fault == "redirect" for r in blob_gets)
    # and the bodies really came through the redirect target
    assert {b.path.split("/blobs/")[1] for b in proxy.served("/blobs/")} == {
        b.digest for b in medium.layout.blobs
    }


@pytest.fixture(scope="module")
def token_medium(token_registry: TokenRegistryInfo, medium_layout: RandomLayout) -> Medium:
    repository = "public/engine-medium"
    seed_oci_layout(
        token_registry, medium_layout.path, "img", f"{repository}:{TAG}", all_images=False
    )
    return Medium(medium_layout, token_registry, repository)


def test_token_expiring_mid_pull_is_refreshed(
    token_medium: Medium,
    token_registry: TokenRegistryInfo,
    shaping_proxy: MakeProxy,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    proxy = shaping_proxy(token_registry.url)
    # 1 MB/s, one blob at a time: about 6 s of blobs, two tokens' lifetimes
    proxy.shape("throttle", path_contains="/blobs/", rate=1_000_000)
    server = token_registry.server
    server.set_ttl(3)
    try:
        server.clear_requests()
        start = time.monotonic()
        result = _pull(env, token_medium.ref(proxy.host), tmp_path / "out.tar",
                       tmp_path / "cache", "-j", "1")  # fmt: skip
        elapsed = time.monotonic() - start
    finally:
        server.reset_ttl()
    assert _summary(result)["downloaded"] == len(token_medium.layout.blobs)
    assert elapsed > 5.0  # the pull outlived the 3 s token
    assert len(server.requests) >= 2
    tokens = [
        r.headers.get("Authorization")
        for r in proxy.seen(path_contains="/blobs/")
        if r.method == "GET"
    ]
    assert all(t and t.startswith("Bearer ") for t in tokens)
    assert len(set(tokens)) >= 2  # later blobs went with a fresh token


# -- progress off a terminal --------------------------------------------------------------------

#: ``2.1 MB of 6.0 MB (35%), 1.0 MB/s, eta 0:04, 3 of 4 blobs left`` (rate and eta from 1 s on)
PROGRESS_LINE = re.compile(
    r"^(?P<done>[\d.]+ [kMG]?B) of (?P<total>[\d.]+ [kMG]?B) \((?P<percent>\d+)%\)"
    r"(?:, (?P<rate>[\d.]+ [kMG]?B)/s)?(?:, eta [\d:]+)?"
    r", (?P<left>\d+) of (?P<units>\d+) blobs? left$"
)


def test_piped_progress_prints_aggregate_lines_at_an_interval_from_the_first_blob(
    medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    proxy = shaping_proxy(medium.registry.url)
    # 2 MB/s, one blob at a time: about 3 s of layers, the largest (1.5 s) first
    proxy.shape("throttle", path_contains="/blobs/", rate=2_000_000)
    result = sneaker(
        "pull", "-j", "1", "--cache-dir", tmp_path / "cache", "-o", tmp_path / "out.tar",
        medium.ref(proxy.host), env={**env, "SNEAKER_PROGRESS_INTERVAL": "0.5"}, timeout=300,
    )  # fmt: skip
    lines = result.stderr.splitlines()
    writing = next(i for i, line in enumerate(lines) if line.startswith("writing "))
    progress = [m for line in lines[writing:] if (m := PROGRESS_LINE.match(line))]
    assert len(progress) >= 3, result.stderr
    blobs = len(medium.layout.blobs)
    total = medium.layout.total_size
    # the total is the whole pull's from the first line on, and never changes
    assert {(m["total"], int(m["units"])) for m in progress} == {(f"{total / 1e6:.1f} MB", blobs)}
    percents = [int(m["percent"]) for m in progress]
    assert percents == sorted(percents)
    # a line came while the first layer was still on its way (only the config done)
    assert any(int(m["left"]) == blobs - 1 and m["rate"] for m in progress)
    assert lines[-1].startswith(f"done: {blobs} blobs, {total / 1e6:.1f} MB in ")

    # -q: nothing at all on stderr, even from a slow pull
    quiet = sneaker(
        "pull", "-q", "--no-cache", "-o", tmp_path / "quiet.tar", medium.ref(proxy.host),
        env={**env, "SNEAKER_PROGRESS_INTERVAL": "0.2"}, timeout=300,
    )  # fmt: skip
    assert quiet.stderr == ""


# -- integrity ----------------------------------------------------------------------------------


def test_corrupted_blob_fails_naming_the_digest_and_leaves_nothing(
    medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    proxy = shaping_proxy(medium.registry.url)
    big = medium.largest
    flip = 1_234_567
    proxy.shape("corrupt", path_contains=f"/blobs/{big.digest}", offset=flip)
    damaged = bytearray(medium.layout.blob_path(big).read_bytes())
    damaged[flip] ^= 0xFF
    wrong = hashlib.sha256(damaged).hexdigest()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "image.tar"
    cache = tmp_path / "cache"
    result = _pull(env, medium.ref(proxy.host), out, cache, check=False)
    assert result.returncode == 7, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"error: digest mismatch for blob {big.digest}: content hashes to sha256:{wrong}"
    )
    assert list(out_dir.iterdir()) == []  # no output, not even a temporary one
    assert big.digest not in _cache_blobs(cache)
    assert big.digest not in _partials(cache)
    _assert_cache_sound(cache)


# -- killed runs, shared caches ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_killed_pull_resumes_fetching_only_what_is_missing(
    how: str, medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    proxy = shaping_proxy(medium.registry.url)
    proxy.shape("throttle", path_contains="/blobs/", rate=700_000)
    cache = tmp_path / "cache"
    out = tmp_path / "out.tar"
    big = medium.largest
    argv = _argv("pull", "-q", "--cache-dir", cache, "-o", out, medium.ref(proxy.host))
    with subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as first:
        try:
            wait_until(
                lambda: _partials(cache).get(big.digest, 0) >= MIB or first.poll() is not None,
                timeout=60,
                what="a partial file of the largest layer",
            )
            assert first.poll() is None, first.communicate()
            first.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGINT)
            _, stderr = first.communicate(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
    if how == "SIGINT":
        assert first.returncode == 130, stderr
        assert b"error: interrupted" in stderr
    else:
        assert first.returncode == -signal.SIGKILL
    assert not out.exists()
    kept = _partials(cache)
    complete = _cache_blobs(cache)
    assert 0 < kept[big.digest] < big.size

    proxy.unshape()
    proxy.clear()
    result = _pull(env, medium.ref(proxy.host), out, cache)
    assert out.is_file()
    summary = _summary(result)
    assert summary["cached"] == len(complete)
    assert summary["resumed"] == sum(1 for size in kept.values() if size > 0)
    fetched = 0
    for blob in medium.layout.blobs:
        gets = _blob_gets(proxy, blob.digest)
        if blob.digest in complete:
            assert gets == [], f"{blob.digest} was complete but fetched again"
            continue
        have = kept.get(blob.digest, 0)
        if have == blob.size:  # killed between its last byte and its rename: no GET needed
            assert gets == []
            continue
        assert len(gets) == 1, gets
        if have:
            assert gets[0].range == f"bytes={have}-"
            assert (gets[0].status, gets[0].start) == (206, have)
        else:
            assert gets[0].range is None
        assert gets[0].received == blob.size - have
        fetched += gets[0].received
    missing = medium.layout.total_size - sum(complete.values()) - sum(kept.values())
    assert fetched == missing
    assert _partials(cache) == {}
    _assert_cache_sound(cache)
    _assert_archive_holds(out, medium)


def test_partial_files_are_checked_before_they_are_trusted(
    medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    """A partial file already whole (killed before its rename) is verified and kept;
    one holding wrong bytes is resumed, fails its digest, and is fetched again whole."""
    proxy = shaping_proxy(medium.registry.url)
    cache = tmp_path / "cache"
    partial = cache / "partial" / "sha256"
    partial.mkdir(parents=True)
    whole, damaged = sorted(medium.layout.layers, key=lambda b: -b.size)[:2]
    (partial / whole.hex).write_bytes(medium.layout.blob_path(whole).read_bytes())
    (partial / damaged.hex).write_bytes(b"\0" * 1000)
    result = _pull(env, medium.ref(proxy.host), tmp_path / "out.tar", cache)
    _assert_archive_holds(tmp_path / "out.tar", medium)
    summary = _summary(result)
    assert (summary["resumed"], summary["downloaded"]) == (1, len(medium.layout.blobs) - 1)
    assert _blob_gets(proxy, whole.digest) == []
    gets = _blob_gets(proxy, damaged.digest)
    assert [(g.range, g.status, g.received) for g in gets] == [
        ("bytes=1000-", 206, damaged.size - 1000),
        (None, 200, damaged.size),
    ]
    assert _partials(cache) == {}
    _assert_cache_sound(cache)


def test_ctrl_c_while_another_process_holds_a_blob_ends_at_once(
    medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    proxy = shaping_proxy(medium.registry.url)
    big = medium.largest
    proxy.shape("throttle", path_contains=f"/blobs/{big.digest}", rate=500_000)
    cache = tmp_path / "cache"
    ref = medium.ref(proxy.host)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with first_log.open("wb") as first_out, second_log.open("wb") as second_out:
        first = subprocess.Popen(
            _argv("pull", "-q", "--cache-dir", cache, "-o", tmp_path / "a.tar", ref),
            env=env, stdin=subprocess.DEVNULL, stdout=first_out, stderr=first_out,
        )  # fmt: skip
        second: subprocess.Popen[bytes] | None = None
        try:
            wait_until(
                lambda: big.digest in _partials(cache) or first.poll() is not None,
                timeout=60,
                what="the first pull to start on the largest layer",
            )
            assert first.poll() is None, first_log.read_text()
            second = subprocess.Popen(
                _argv("pull", "--cache-dir", cache, "-o", tmp_path / "b.tar", ref),
                env=env, stdin=subprocess.DEVNULL, stdout=second_out, stderr=second_out,
            )  # fmt: skip
            wait_until(
                lambda: (
                    "waiting for another sneaker process" in second_log.read_text()
                    or second.poll() is not None
                ),  # type: ignore[union-attr]
                timeout=60,
                what="the second pull to wait for the first",
            )
            assert first.poll() is None, "the first pull ended too soon for this test"
            second.send_signal(signal.SIGINT)
            start = time.monotonic()
            second.wait(timeout=30)
            assert time.monotonic() - start < 3.0, "Ctrl-C waited for the other process"
            assert second.returncode == 130, second_log.read_text()
            assert first.poll() is None
            assert first.wait(timeout=120) == 0, first_log.read_text()
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
    assert "error: interrupted" in second_log.read_text()
    assert len(_blob_gets(proxy, big.digest)) == 1
    _assert_cache_sound(cache)


def test_two_pulls_share_one_cache_and_fetch_each_blob_once(
    medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    proxy = shaping_proxy(medium.registry.url)
    # slow enough that the two runs overlap: the largest layer takes 3 s
    proxy.shape("throttle", path_contains="/blobs/", rate=1_000_000)
    cache = tmp_path / "cache"
    outs = [tmp_path / "a.tar", tmp_path / "b.tar"]
    procs = [
        subprocess.Popen(
            _argv("pull", "--json", "--cache-dir", cache, "-o", out, medium.ref(proxy.host)),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for out in outs
    ]
    results: list[tuple[int, bytes, bytes]] = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=120)
            results.append((proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for code, _, stderr in results:
        assert code == 0, stderr.decode()
    assert outs[0].read_bytes() == outs[1].read_bytes()
    _assert_archive_holds(outs[0], medium)
    for blob in medium.layout.blobs:
        requests = proxy.seen(path_contains=f"/blobs/{blob.digest}")
        assert [r.method for r in requests] == ["GET"], f"{blob.digest}: {requests}"
        bodies = _blob_gets(proxy, blob.digest)
        assert [b.received for b in bodies] == [blob.size]
    counts = [json.loads(stdout)["blobs"] for _, stdout, _ in results]
    assert sum(c["downloaded"] + c["resumed"] for c in counts) == len(medium.layout.blobs)
    assert sum(c["cached"] for c in counts) == len(medium.layout.blobs)
    _assert_cache_sound(cache)


def test_cache_is_shared_by_formats_and_no_cache_leaves_none(
    medium: Medium, shaping_proxy: MakeProxy, env: dict[str, str], tmp_path: Path
) -> None:
    proxy = shaping_proxy(medium.registry.url)
    cache = tmp_path / "cache"
    ref = medium.ref(proxy.host)
    first = _pull(env, ref, tmp_path / "out.tar", cache)
    assert _summary(first)["downloaded"] == len(medium.layout.blobs)
    proxy.clear()
    second = _pull(env, ref, tmp_path / "layout/", cache, "--format", "oci")
    assert _summary(second)["cached"] == len(medium.layout.blobs)
    assert proxy.served("/blobs/") == []  # only the manifest was asked for

    out_dir = tmp_path / "nocache"
    out_dir.mkdir()
    proxy.clear()
    sneaker("pull", "-q", "--no-cache", "-o", out_dir / "x.tar", ref, env=env, timeout=300)
    assert [p.name for p in out_dir.iterdir()] == ["x.tar"]
    assert len(proxy.served("/blobs/")) == len(medium.layout.blobs)
    assert (out_dir / "x.tar").read_bytes() == (tmp_path / "out.tar").read_bytes()
    assert not Path(env["SNEAKER_CACHE_DIR"]).exists()


# -- memory ---------------------------------------------------------------------------------------


@pytest.fixture
def big_image(make_registry: MakeRegistry, tmp_path: Path) -> tuple[RegistryInfo, int]:
    """A fresh registry holding one image with a single ~300 MB (uncompressed) layer."""
    info = make_registry()
    layout = make_random_layout(
        tmp_path / "big", [300 * 1000 * 1000], kind="random", compress=False, seed="rss"
    )
    seed_oci_layout(info, layout.path, "img", "engine/big:1", all_images=False)
    size = layout.total_size
    for blob in layout.blobs:
        layout.blob_path(blob).unlink()  # the registry has its copy
    return info, size


def test_peak_memory_of_a_large_layer_pull_stays_flat(
    big_image: tuple[RegistryInfo, int], env: dict[str, str], tmp_path: Path
) -> None:
    """The pull's own peak resident memory (VmHWM of its address space).

    Not ``ru_maxrss`` from ``wait4``: at ``exec`` the kernel carries the parent's
    high-water mark into the child's, so it would measure this pytest process.
    """
    info, size = big_image
    out = tmp_path / "big.tar"
    log = tmp_path / "pull.log"
    peak_file = tmp_path / "vmhwm"
    reporter = (
        "import atexit, sys\n"
        "def report():\n"
        "    with open('/proc/self/status') as status:\n"
        "        for line in status:\n"
        "            if line.startswith('VmHWM:'):\n"
        "                open(sys.argv[1], 'w').write(line.split()[1])\n"
        "atexit.register(report)\n"
        "from sneaker.cli import main\n"
        "sys.exit(main(sys.argv[2:]))\n"
    )
    argv = [sys.executable, "-c", reporter, str(peak_file), "pull", "-q", "--cache-dir",
            str(tmp_path / "cache"), "-o", str(out), info.ref("engine/big:1")]  # fmt: skip
    with log.open("wb") as sink:
        proc = subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, check=False
        )
    assert proc.returncode == 0, log.read_text()
    assert out.stat().st_size > size
    peak_mb = int(peak_file.read_text()) / 1024  # kB
    print(f"peak RSS of the pull: {peak_mb:.1f} MB for a {size / 1e6:.0f} MB layer")
    assert 5 < peak_mb < 100, f"peak RSS {peak_mb:.0f} MB pulling a {size / 1e6:.0f} MB layer"

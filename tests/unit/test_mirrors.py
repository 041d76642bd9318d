"""Reading through mirrors: a blob whose bytes do not match its digest comes from the next
endpoint. The real download engine (``fetch_one``), cache and endpoint clients, each client
on a registry in memory (:mod:`tests.fixtures.memory_registry`). No sockets.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sneaker.errors import IntegrityError
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor
from sneaker.registry.client import RegistryClient
from sneaker.registry.mirrors import MirroringClient
from sneaker.settings import load_settings
from sneaker.settings.endpoints import Endpoint
from sneaker.transfer.cache import BlobCache
from sneaker.transfer.fetch import BlobJob, fetch_one
from sneaker.util.progress import NullProgress
from tests.fixtures.memory_registry import MemoryRegistry, Recorded

ORIGIN = "origin.example"
FIRST = "mirror-1.example"
SECOND = "mirror-2.example"
REPO = "team/app"
LAYER_MT = "application/vnd.oci.image.layer.v1.tar+gzip"


def blob(data: bytes) -> Descriptor:
    return Descriptor(LAYER_MT, Digest.of_bytes(data), len(data))


GOOD = bytes(range(256)) * 40
OTHER = b"another layer" * 100


def flipped(data: bytes, at: int = 1000) -> bytes:
    damaged = bytearray(data)
    damaged[at] ^= 0xFF
    return bytes(damaged)


class Endpoints:
    """What each endpoint host holds (digest -> bytes it sends), as a registry in memory each,
    and every blob GET they answered."""

    def __init__(self, content: dict[str, dict[Digest, bytes]]) -> None:
        self.journal: list[Recorded] = []
        self.registries = {host: MemoryRegistry(host, journal=self.journal) for host in content}
        for host, blobs in content.items():
            self.registries[host].blobs[REPO] = {str(d): data for d, data in blobs.items()}

    def open(self, endpoint: Endpoint) -> RegistryClient:
        return RegistryClient(endpoint.registry, transport=self.registries[endpoint.registry])

    @property
    def gets(self) -> list[tuple[str, Digest, int]]:
        """(host, digest, offset) of every blob GET, in the order they were made."""
        gets = [(seen.host, seen.blob_get()) for seen in self.journal]
        return [(host, Digest.parse(get[0]), get[1]) for host, get in gets if get is not None]

    def asked(self, host: str, digest: Digest) -> int:
        return sum(1 for h, d, _ in self.gets if (h, d) == (host, digest))


def mirroring(endpoints: Endpoints, *mirrors: str) -> MirroringClient:
    settings = load_settings(
        registries_conf=[], daemon_json=[], mirrors=[f"{ORIGIN}={m}" for m in mirrors]
    )
    return MirroringClient(ORIGIN, settings, open_client=endpoints.open)


def fetch(client: MirroringClient, cache: BlobCache, desc: Descriptor) -> str:
    return fetch_one(BlobJob(client, REPO, desc), cache, NullProgress())


def test_bad_bytes_from_a_mirror_come_from_the_next_mirror(tmp_path: Path) -> None:
    desc = blob(GOOD)
    endpoints = Endpoints(
        {
            FIRST: {desc.digest: flipped(GOOD)},
            SECOND: {desc.digest: GOOD},
            ORIGIN: {desc.digest: GOOD},
        }
    )
    cache = BlobCache(tmp_path / "cache")
    with mirroring(endpoints, FIRST, SECOND) as client:
        assert fetch(client, cache, desc) == "downloaded"
        assert [where for _, _, where in client.served_by_mirror] == [
            f"{FIRST}/{REPO}",
            f"{SECOND}/{REPO}",
        ]
    assert cache.path(desc.digest).read_bytes() == GOOD
    assert endpoints.gets == [(FIRST, desc.digest, 0), (SECOND, desc.digest, 0)]


def test_bad_bytes_from_every_mirror_come_from_the_origin(tmp_path: Path) -> None:
    desc = blob(GOOD)
    endpoints = Endpoints(
        {
            FIRST: {desc.digest: flipped(GOOD, 10)},
            SECOND: {desc.digest: GOOD + b"!"},  # one byte too many is bad bytes too
            ORIGIN: {desc.digest: GOOD},
        }
    )
    cache = BlobCache(tmp_path / "cache")
    with mirroring(endpoints, FIRST, SECOND) as client:
        assert fetch(client, cache, desc) == "downloaded"
    assert cache.path(desc.digest).read_bytes() == GOOD
    assert [host for host, _, _ in endpoints.gets] == [FIRST, SECOND, ORIGIN]


def test_every_endpoint_bad_fails_naming_the_digest_and_each_endpoint(tmp_path: Path) -> None:
    desc = blob(GOOD)
    bad = flipped(GOOD)
    endpoints = Endpoints({host: {desc.digest: bad} for host in (FIRST, SECOND, ORIGIN)})
    cache = BlobCache(tmp_path / "cache")
    with mirroring(endpoints, FIRST, SECOND) as client, pytest.raises(IntegrityError) as caught:
        fetch(client, cache, desc)
    assert caught.value.message == (
        f"digest mismatch for blob {desc.digest}: content hashes to {Digest.of_bytes(bad)} "
        f"(bad bytes from mirror {FIRST}/{REPO}, mirror {SECOND}/{REPO}, origin {ORIGIN}/{REPO})"
    )
    assert [host for host, _, _ in endpoints.gets] == [FIRST, SECOND, ORIGIN]
    assert not cache.has(desc)
    assert cache.partial(desc.digest) is None


def test_a_mirror_without_the_blob_and_the_origin_bad_names_only_the_origin(tmp_path: Path) -> None:
    desc = blob(GOOD)
    endpoints = Endpoints({FIRST: {}, ORIGIN: {desc.digest: flipped(GOOD)}})  # FIRST lacks it
    cache = BlobCache(tmp_path / "cache")
    with mirroring(endpoints, FIRST) as client, pytest.raises(IntegrityError) as caught:
        fetch(client, cache, desc)
    assert re.fullmatch(
        rf"digest mismatch for blob {desc.digest}: content hashes to sha256:[0-9a-f]{{64}} "
        rf"\(bad bytes from origin {re.escape(ORIGIN)}/{REPO}\)",
        caught.value.message,
    )
    assert not cache.has(desc)


def test_a_mirror_is_passed_over_only_for_the_blob_it_sent_bad_bytes_for(tmp_path: Path) -> None:
    damaged, fine = blob(GOOD), blob(OTHER)
    endpoints = Endpoints(
        {
            FIRST: {damaged.digest: flipped(GOOD), fine.digest: OTHER},
            ORIGIN: {damaged.digest: GOOD, fine.digest: OTHER},
        }
    )
    cache = BlobCache(tmp_path / "cache")
    with mirroring(endpoints, FIRST) as client:
        assert fetch(client, cache, damaged) == "downloaded"
        assert fetch(client, cache, fine) == "downloaded"
    assert endpoints.asked(FIRST, damaged.digest) == 1
    assert endpoints.asked(ORIGIN, damaged.digest) == 1
    assert endpoints.asked(FIRST, fine.digest) == 1
    assert endpoints.asked(ORIGIN, fine.digest) == 0
    assert cache.path(damaged.digest).read_bytes() == GOOD
    assert cache.path(fine.digest).read_bytes() == OTHER


def test_bytes_kept_from_an_earlier_run_are_retried_whole_before_the_next_endpoint(
    tmp_path: Path,
) -> None:
    desc = blob(GOOD)
    endpoints = Endpoints({FIRST: {desc.digest: flipped(GOOD, 3000)}, ORIGIN: {desc.digest: GOOD}})
    cache = BlobCache(tmp_path / "cache")
    with cache.open_partial(desc.digest, resume=False) as handle:  # an earlier run's first half
        handle.write(GOOD[:2000])
    with mirroring(endpoints, FIRST) as client:
        assert fetch(client, cache, desc) == "downloaded"
    # the resume (the kept bytes may be the bad ones), the mirror whole, then the origin
    assert endpoints.gets == [
        (FIRST, desc.digest, 2000),
        (FIRST, desc.digest, 0),
        (ORIGIN, desc.digest, 0),
    ]
    assert cache.path(desc.digest).read_bytes() == GOOD


def test_a_single_registry_s_bad_bytes_are_final(tmp_path: Path) -> None:
    desc = blob(GOOD)
    error = IntegrityError(f"digest mismatch for blob {desc.digest}")
    with RegistryClient(ORIGIN) as client:  # no request is made
        assert client.reject_blob(REPO, desc.digest, error) is error

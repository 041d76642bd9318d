"""The client's flows that need a registry, on a registry in memory (no sockets).

:class:`~tests.fixtures.memory_registry.MemoryRegistry` is handed to
:class:`RegistryClient` as its transport: chunked uploads (the PATCH sequence,
each to the ``Location`` the last answer named, the closing PUT with the
digest), cross-repository mounts (201, and the 202 fallback), ``Link`` paging
of tags and the catalog, and the order in which a mirroring client asks its
endpoints. The same flows run against docker-registry in the integration tests.
"""

from __future__ import annotations

import pytest

from sneaker.errors import NotFound, RegistryError
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor
from sneaker.registry.client import RegistryClient
from sneaker.registry.mirrors import MirroringClient
from sneaker.settings import load_settings
from sneaker.settings.endpoints import Endpoint
from tests.fixtures.memory_registry import MemoryRegistry

REPO = "team/app"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def blob(data: bytes) -> Descriptor:
    return Descriptor(LAYER, Digest.of_bytes(data), len(data))


def client_of(registry: MemoryRegistry) -> RegistryClient:
    return RegistryClient(registry.host, transport=registry)


# -- uploads --------------------------------------------------------------------------


@pytest.mark.parametrize("absolute", [False, True])
def test_a_large_blob_goes_up_in_chunks_each_to_the_last_location(absolute: bool) -> None:
    import io

    registry = MemoryRegistry(absolute_locations=absolute)
    data = bytes(range(256)) * 4 + b"tail"  # 1028 bytes: chunks of 400, 400, 228
    desc = blob(data)
    with client_of(registry) as client:
        client.upload_blob(REPO, desc, io.BytesIO(data), chunk_size=400)
    assert registry.calls() == [
        f"POST /v2/{REPO}/blobs/uploads/",
        f"PATCH /v2/{REPO}/blobs/uploads/u1",
        f"PATCH /v2/{REPO}/blobs/uploads/u1",
        f"PATCH /v2/{REPO}/blobs/uploads/u1",
        f"PUT /v2/{REPO}/blobs/uploads/u1",
    ]
    patches = [r for r in registry.requests if r.method == "PATCH"]
    # each PATCH went to the Location the previous answer named (its _state)
    assert [r.query["_state"] for r in patches] == ["0", "1", "2"]
    assert [r.headers["Content-Range"] for r in patches] == ["0-399", "400-799", "800-1027"]
    assert [len(r.body) for r in patches] == [400, 400, 228]
    closing = registry.requests[-1]
    assert closing.query["digest"] == str(desc.digest)
    assert closing.body == b""
    assert registry.blobs[REPO][str(desc.digest)] == data
    assert registry.uploads == {}


def test_a_small_blob_goes_up_in_one_put_with_its_digest() -> None:
    import io

    registry = MemoryRegistry()
    data = b"a small config"
    desc = blob(data)
    with client_of(registry) as client:
        client.upload_blob(REPO, desc, io.BytesIO(data), chunk_size=400)
    assert registry.calls() == [
        f"POST /v2/{REPO}/blobs/uploads/",
        f"PUT /v2/{REPO}/blobs/uploads/u1",
    ]
    put = registry.requests[-1]
    assert put.query["digest"] == str(desc.digest)
    assert put.body == data
    assert registry.blobs[REPO][str(desc.digest)] == data


def test_an_upload_whose_data_does_not_match_is_never_committed() -> None:
    import io

    from sneaker.errors import IntegrityError

    registry = MemoryRegistry()
    data = b"x" * 1000
    desc = blob(data)
    with client_of(registry) as client, pytest.raises(IntegrityError, match="not committing"):
        client.upload_blob(REPO, desc, io.BytesIO(b"y" * 1000), chunk_size=400)
    assert not any(r.method == "PUT" for r in registry.requests)
    assert REPO not in registry.blobs


# -- mounts ---------------------------------------------------------------------------


def test_a_mount_the_registry_honours_is_201_and_uploads_nothing() -> None:
    registry = MemoryRegistry()
    digest = registry.put_blob("base/app", b"shared layer")
    with client_of(registry) as client:
        assert client.mount_blob(REPO, Digest.parse(digest), "base/app") is True
    assert registry.calls() == [f"POST /v2/{REPO}/blobs/uploads/"]
    assert registry.requests[0].query == {"mount": digest, "from": "base/app"}
    assert registry.blobs[REPO][digest] == b"shared layer"


def test_a_mount_answered_202_is_false_and_its_upload_session_is_cancelled() -> None:
    registry = MemoryRegistry(mounts=False)
    digest = registry.put_blob("base/app", b"shared layer")
    with client_of(registry) as client:
        assert client.mount_blob(REPO, Digest.parse(digest), "base/app") is False
    assert registry.calls() == [
        f"POST /v2/{REPO}/blobs/uploads/",
        f"DELETE /v2/{REPO}/blobs/uploads/u1",
    ]
    assert registry.uploads == {}
    assert REPO not in registry.blobs


# -- paging ---------------------------------------------------------------------------


def test_tags_are_listed_across_pages_following_link() -> None:
    registry = MemoryRegistry(page_limit=2)
    for tag in ("5", "1", "3", "2", "4"):
        registry.put_manifest(REPO, tag, b'{"tag": "%s"}' % tag.encode(), MANIFEST)
    with client_of(registry) as client:
        assert client.list_tags(REPO) == ["1", "2", "3", "4", "5"]
    assert [r.query.get("last") for r in registry.requests] == [None, "2", "4"]


def test_the_catalog_is_listed_across_pages_following_link() -> None:
    registry = MemoryRegistry()
    names = [f"team/app{n}" for n in range(7)]
    for name in names:
        registry.put_manifest(name, "1", name.encode(), MANIFEST)
    with client_of(registry) as client:
        assert client.catalog(page_size=3) == names
    assert [r.query for r in registry.requests] == [
        {"n": "3"},
        {"n": "3", "last": "team/app2"},
        {"n": "3", "last": "team/app5"},
    ]


# -- mirrors --------------------------------------------------------------------------

ORIGIN = "origin.example"
FIRST = "mirror-1.example"
SECOND = "mirror-2.example"


def mirrored(hosts: dict[str, MemoryRegistry]) -> MirroringClient:
    settings = load_settings(
        registries_conf=[], daemon_json=[], mirrors=[f"{ORIGIN}={FIRST}", f"{ORIGIN}={SECOND}"]
    )

    def open_client(endpoint: Endpoint) -> RegistryClient:
        return RegistryClient(endpoint.registry, transport=hosts[endpoint.registry])

    return MirroringClient(ORIGIN, settings, open_client=open_client)


def test_mirrors_are_asked_in_order_and_the_origin_last() -> None:
    hosts = {h: MemoryRegistry(h) for h in (FIRST, SECOND, ORIGIN)}
    hosts[FIRST].failing["/v2/"] = 503  # down: every request answered 503
    # the second mirror lacks the manifest; the origin has it
    hosts[ORIGIN].put_manifest(REPO, "1", b'{"from": "origin"}', MANIFEST)
    only_on_second = hosts[SECOND].put_blob(REPO, b"a layer only the mirror has")
    with mirrored(hosts) as client:
        raw, _ = client.get_manifest(REPO, "1")
        assert raw == b'{"from": "origin"}'
        assert client.blob_exists(REPO, Digest.parse(only_on_second)) == 27
        served, path, mirror = client.served_from(REPO, "1")
        assert (served.registry, path, mirror) == (ORIGIN, REPO, None)
    asked = [(host, call) for host in (FIRST, SECOND, ORIGIN) for call in hosts[host].calls("GET")]
    assert asked == [
        (FIRST, f"GET /v2/{REPO}/manifests/1"),
        (SECOND, f"GET /v2/{REPO}/manifests/1"),
        (ORIGIN, f"GET /v2/{REPO}/manifests/1"),
    ]
    # the down mirror was asked for the blob too (503 is no reason to give up on it),
    # the second answered; the origin was never asked
    assert hosts[FIRST].calls("HEAD") == [f"HEAD /v2/{REPO}/blobs/{only_on_second}"]
    assert hosts[SECOND].calls("HEAD") == [f"HEAD /v2/{REPO}/blobs/{only_on_second}"]
    assert hosts[ORIGIN].calls("HEAD") == []


def test_a_manifest_a_mirror_served_is_fetched_from_that_mirror() -> None:
    hosts = {h: MemoryRegistry(h) for h in (FIRST, SECOND, ORIGIN)}
    hosts[SECOND].put_manifest(REPO, "1", b'{"from": "mirror"}', MANIFEST)
    with mirrored(hosts) as client:
        assert client.get_manifest(REPO, "1")[0] == b'{"from": "mirror"}'
        served, path, mirror = client.served_from(REPO, "1")
        assert (served.registry, path, mirror) == (SECOND, REPO, f"{SECOND}/{REPO}")
    assert hosts[ORIGIN].requests == []


def test_the_origin_answer_is_final() -> None:
    hosts = {h: MemoryRegistry(h) for h in (FIRST, SECOND, ORIGIN)}
    with mirrored(hosts) as client, pytest.raises(NotFound):
        client.get_manifest(REPO, "missing")
    assert [len(hosts[h].calls()) for h in (FIRST, SECOND, ORIGIN)] == [1, 1, 1]
    hosts[ORIGIN].failing["/v2/"] = 500
    with mirrored(hosts) as client, pytest.raises(RegistryError):
        client.get_manifest(REPO, "missing")


def test_the_catalog_of_a_mirrored_registry_is_the_origins() -> None:
    hosts = {h: MemoryRegistry(h) for h in (FIRST, SECOND, ORIGIN)}
    hosts[FIRST].put_manifest("only/on-mirror", "1", b"m", MANIFEST)
    hosts[ORIGIN].put_manifest(REPO, "1", b"o", MANIFEST)
    with mirrored(hosts) as client:
        assert client.catalog() == [REPO]
    assert hosts[FIRST].requests == []

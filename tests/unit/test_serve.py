"""serve's pure parts: routing, ranges, pagination, content negotiation, names, the catalog."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import BinaryIO

import pytest

from sneaker.errors import UsageError
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor, Index, Manifest, parse_manifest
from sneaker.image.records import ImageRecord
from sneaker.image.reference import parse_reference
from sneaker.verbs.serve import (
    ByteRange,
    RangeNotSatisfiable,
    Route,
    accepted_types,
    catalog_of,
    choose_manifest,
    next_link,
    paginate,
    parse_addr,
    parse_page_size,
    parse_range,
    repository_aliases,
    route,
)

DIGEST = "sha256:" + "a" * 64


# -- routing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/v2/", Route("base")),
        ("/v2", Route("base")),
        ("/v2/_catalog", Route("catalog")),
        ("/v2/library/ubuntu/tags/list", Route("tags", "library/ubuntu")),
        ("/v2/ubuntu/manifests/22.04", Route("manifest", "ubuntu", "22.04")),
        (f"/v2/a/b/c/manifests/{DIGEST}", Route("manifest", "a/b/c", DIGEST)),
        (f"/v2/org/app/blobs/{DIGEST}", Route("blob", "org/app", DIGEST)),
        ("/v2/org/app/blobs/uploads/", Route("upload", "org/app")),
        ("/v2/org/app/blobs/uploads/some-uuid", Route("upload", "org/app", "some-uuid")),
        ("/v2/docker.io/library/x/manifests/1", Route("manifest", "docker.io/library/x", "1")),
        # a repository may itself be called "manifests" or "blobs"
        ("/v2/manifests/manifests/latest", Route("manifest", "manifests", "latest")),
        ("/v2/a/blobs/tags/list", Route("tags", "a/blobs")),
        ("/v2/x/manifests/sha256%3Aabc", Route("manifest", "x", "sha256:abc")),
        ("/v2/Upper/manifests/1", Route("bad-name", "Upper")),
        ("/v2/a--b_/manifests/1", Route("bad-name", "a--b_")),
        ("/v2/x/referrers/" + DIGEST, Route("referrers", "x", DIGEST)),
        ("/v2/x/signatures/" + DIGEST, Route("unknown")),
        ("/", Route("unknown")),
        ("/v1/_ping", Route("unknown")),
    ],
)
def test_route(target: str, expected: Route) -> None:
    assert route(target) == expected


def test_route_query() -> None:
    r = route("/v2/_catalog?n=10&last=foo%2Fbar")
    assert r.kind == "catalog"
    assert dict(r.query) == {"n": "10", "last": "foo/bar"}
    assert route("/v2/a/tags/list?n=").query == {"n": ""}


# -- ranges ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=10-", 100, (10, 99)),
        ("bytes=90-200", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-1000", 100, (0, 99)),
        ("bytes=99-99", 100, (99, 99)),
        ("BYTES = 5 - 6", 100, (5, 6)),
        # ignored (whole body): other units, several ranges, malformed, reversed
        ("items=0-1", 100, None),
        ("bytes=0-1,5-6", 100, None),
        ("bytes=abc", 100, None),
        ("bytes=-", 100, None),
        ("bytes=9-1", 100, None),
        ("bytes 0-1", 100, None),
    ],
)
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    got = parse_range(header, size)
    if expected is None:
        assert got is None
    else:
        assert got == ByteRange(expected[0], expected[1], size)
        assert got.length == expected[1] - expected[0] + 1
        assert got.content_range == f"bytes {expected[0]}-{expected[1]}/{size}"


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=-0", 100), ("bytes=0-", 0),
     ("bytes=-5", 0)],
)  # fmt: skip
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, size)
    assert info.value.size == size


# -- pagination --------------------------------------------------------------------------------


def test_paginate() -> None:
    items = ["c", "a", "e", "b", "d"]
    assert paginate(items, None, None) == (["a", "b", "c", "d", "e"], False)
    assert paginate(items, 2, None) == (["a", "b"], True)
    assert paginate(items, 2, "b") == (["c", "d"], True)
    assert paginate(items, 2, "d") == (["e"], False)
    assert paginate(items, 10, "e") == ([], False)
    assert paginate(items, 0, None) == ([], True)
    assert paginate(items, None, "bb") == (["c", "d", "e"], False)
    assert paginate(items, 5, None) == (["a", "b", "c", "d", "e"], False)


def test_page_size_and_link() -> None:
    assert parse_page_size(None) is None
    assert parse_page_size("") is None
    assert parse_page_size("25") == 25
    for bad in ("-1", "x", "1.5"):
        with pytest.raises(UsageError):
            parse_page_size(bad)
    assert next_link("/v2/a/b/tags/list", 2, "v1") == '</v2/a/b/tags/list?n=2&last=v1>; rel="next"'
    assert next_link("/v2/_catalog", 1, "a/b") == '</v2/_catalog?n=1&last=a%2Fb>; rel="next"'


# -- content negotiation -----------------------------------------------------------------------


def test_accepted_types() -> None:
    values = [
        f"{mt.DOCKER_MANIFEST}, {mt.DOCKER_MANIFEST_LIST};q=0.5",
        f"{mt.OCI_MANIFEST}",
        "Application/JSON ; q=0",
        "",
    ]
    assert accepted_types(values) == {mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST}
    assert accepted_types([]) == frozenset()


def _manifest(arch: str) -> Manifest:
    config = {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of_bytes(arch.encode())), "size": 3}
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config, "layers": []}
    node = parse_manifest(json.dumps(doc).encode())
    assert isinstance(node, Manifest)
    return node


def _index(entries: list[tuple[Manifest, dict[str, str] | None, dict[str, str]]]) -> Index:
    manifests = []
    for child, platform, notes in entries:
        desc = child.descriptor.to_json()
        if platform is not None:
            desc["platform"] = platform
        if notes:
            desc["annotations"] = notes
        manifests.append(desc)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}
    node = parse_manifest(json.dumps(doc).encode())
    assert isinstance(node, Index)
    return node


AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64"}
ATTEST = {"vnd.docker.reference.type": "attestation-manifest"}


def test_choose_manifest_serves_what_is_accepted() -> None:
    amd, arm = _manifest("amd64"), _manifest("arm64")
    index = _index([(arm, ARM64, {}), (amd, AMD64, {})])
    children = {amd.digest: amd, arm.digest: arm}
    for accept in ({mt.OCI_INDEX, mt.OCI_MANIFEST}, {"*/*"}, {"application/*"}, set()):
        assert choose_manifest(index, children, frozenset(accept)) is index
    # an image manifest is served whatever the client says
    assert choose_manifest(amd, {}, frozenset({mt.DOCKER_MANIFEST})) is amd


def test_choose_manifest_stands_in_for_an_index() -> None:
    amd, arm = _manifest("amd64"), _manifest("arm64")
    only_manifests = frozenset({mt.DOCKER_MANIFEST, mt.OCI_MANIFEST})
    both = _index([(arm, ARM64, {}), (amd, AMD64, {})])
    children = {amd.digest: amd, arm.digest: arm}
    assert choose_manifest(both, children, only_manifests) is amd
    # the archive holds one child only (a one-platform save): that one stands in
    assert choose_manifest(both, {arm.digest: arm}, only_manifests) is arm
    # no linux/amd64 and two candidates: nothing stands in
    s390 = _manifest("s390x")
    no_amd = _index([(arm, ARM64, {}), (s390, {"os": "linux", "architecture": "s390x"}, {})])
    assert choose_manifest(no_amd, {arm.digest: arm, s390.digest: s390}, only_manifests) is None
    # attestations never stand in
    attest = _manifest("attestation")
    with_attest = _index(
        [(arm, ARM64, {}), (attest, {"os": "unknown", "architecture": "unknown"}, ATTEST)]
    )
    assert (
        choose_manifest(with_attest, {arm.digest: arm, attest.digest: attest}, only_manifests)
        is arm
    )


# -- addresses and names -----------------------------------------------------------------------


def test_parse_addr() -> None:
    assert parse_addr("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert parse_addr("0.0.0.0:0") == ("0.0.0.0", 0)
    assert parse_addr("localhost:8080") == ("localhost", 8080)
    assert parse_addr("[::1]:5000") == ("::1", 5000)
    assert parse_addr("5001") == ("127.0.0.1", 5001)
    for bad in (":5000", "host", "host:port", "host:70000", "::1:5000", "[::1]5000", ""):
        with pytest.raises(UsageError):
            parse_addr(bad)


def test_repository_aliases() -> None:
    assert repository_aliases(parse_reference("ubuntu:22.04")) == [
        "library/ubuntu",
        "ubuntu",
        "docker.io/library/ubuntu",
    ]
    assert repository_aliases(parse_reference("ghcr.io/org/app:1")) == [
        "org/app",
        "ghcr.io/org/app",
    ]
    # a host with a port is no valid repository name: no full-name alias
    assert repository_aliases(parse_reference("localhost:5000/team/app")) == ["team/app"]


# -- the catalog -------------------------------------------------------------------------------


class FakeArchive:
    """An in-memory archive: records plus the set of blobs it holds."""

    def __init__(self, records: list[ImageRecord], blobs: set[Digest]) -> None:
        self.records = records
        self._blobs = blobs

    def has_blob(self, digest: Digest) -> bool:
        return digest in self._blobs

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return io.BytesIO(b"")

    def blob_path(self, desc: Descriptor) -> Path | None:
        return None


def _image(text: str, manifest: Manifest) -> ImageRecord:
    return ImageRecord(parse_reference(text, default_tag=None), manifest)


def test_catalog_later_archive_wins_a_tag() -> None:
    old, new = _manifest("old"), _manifest("new")
    first = FakeArchive([_image("ubuntu:22.04", old)], {old.config.digest})
    second = FakeArchive([_image("docker.io/library/ubuntu:22.04", new)], {new.config.digest})
    catalog = catalog_of([("first.tar", first), ("second.tar", second)])
    repo = catalog.repository("ubuntu")
    assert repo is not None
    assert repo is catalog.repository("library/ubuntu")
    assert repo is catalog.repository("docker.io/library/ubuntu")
    assert repo.tags == {"22.04": new}
    # the losing image stays reachable by digest
    assert set(repo.manifests) == {old.digest, new.digest}
    assert len(catalog.warnings) == 1
    assert "first.tar" in catalog.warnings[0]
    assert "serving the one from second.tar" in catalog.warnings[0]
    assert [(i.repository, i.tag, i.digest, i.archive) for i in catalog.images] == [
        ("library/ubuntu", "22.04", new.digest, "second.tar")
    ]
    assert catalog.images[0].name("127.0.0.1:5000") == "127.0.0.1:5000/library/ubuntu:22.04"


def test_catalog_blobs_by_repository_and_from_any_archive() -> None:
    app, other = _manifest("app"), _manifest("other")
    base = FakeArchive([_image("example.com/team/app:1", app)], {app.config.digest})
    # a delta archive: names an image whose blob lives in the base archive only
    delta = FakeArchive([_image("example.com/team/app:2", app), _image("other:1", other)], set())
    catalog = catalog_of([("base.tar", base), ("delta.tar", delta)])
    assert sorted(catalog.repositories) == ["library/other", "team/app"]
    app_repo = catalog.repository("example.com/team/app")
    other_repo = catalog.repository("other")
    assert app_repo is not None
    assert other_repo is not None
    assert catalog.blob_sources[app.config.digest] is base
    assert app.config.digest in app_repo.blobs
    assert app.config.digest not in other_repo.blobs
    assert other.config.digest not in catalog.blob_sources
    assert any("1 blob is referenced but in none of the archives" in w for w in catalog.warnings)
    assert sorted(app_repo.tags) == ["1", "2"]


def test_catalog_aliases_never_hide_a_repository() -> None:
    hub, plain = _manifest("hub"), _manifest("plain")
    archive = FakeArchive(
        [_image("docker.io/library/app:1", hub), _image("registry.example/app:1", plain)],
        {hub.config.digest, plain.config.digest},
    )
    catalog = catalog_of([("a.tar", archive)])
    assert sorted(catalog.repositories) == ["app", "library/app"]
    app = catalog.repository("app")
    assert app is not None
    assert app.tags["1"] is plain
    library = catalog.repository("docker.io/library/app")
    assert library is not None
    assert library.tags["1"] is hub
    assert catalog.warnings == []


def test_catalog_unnamed_and_digest_only_images() -> None:
    named, unnamed = _manifest("named"), _manifest("unnamed")
    by_digest = parse_reference(f"example.com/x/y@{named.digest}")
    archive = FakeArchive(
        [ImageRecord(by_digest, named), ImageRecord(None, unnamed)],
        {named.config.digest, unnamed.config.digest},
    )
    catalog = catalog_of([("a.tar", archive)])
    repo = catalog.repository("x/y")
    assert repo is not None
    assert repo.tags == {}
    assert named.digest in repo.manifests
    assert catalog.images[0].name("h:1") == f"h:1/x/y@{named.digest}"
    assert catalog.warnings == [
        "a.tar: 1 image has no repository name in the archive and cannot be served "
        "(a bare tag such as 'latest' names no repository)"
    ]

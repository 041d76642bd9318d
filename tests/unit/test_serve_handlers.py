"""serve's route table and handlers without sockets: a request in, a reply out or a
DistributionError raised, and that error rendered as the spec's JSON error body.
"""

from __future__ import annotations

import json
from email.message import Message

import pytest

from sneaker.image.digest import Digest
from sneaker.image.model import Manifest, parse_manifest
from sneaker.image.records import ImageRecord
from sneaker.image.reference import parse_reference
from sneaker.verbs.serve import catalog_of, route
from sneaker.verbs.serve.answers import BlobBody, DistributionError, Reply
from sneaker.verbs.serve.catalog import Catalog
from sneaker.verbs.serve.handlers import Request
from sneaker.verbs.serve.routes import READ_METHODS, ROUTES, WRITE_METHODS, resolve
from tests.unit.test_serve import FakeArchive, _index, _manifest

AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64"}


def _catalog() -> Catalog:
    amd, arm = _manifest("amd64"), _manifest("arm64")
    top = _index([(arm, ARM64, {}), (amd, AMD64, {})])
    record = ImageRecord(
        parse_reference("example.com/team/app:1"), top, {amd.digest: amd, arm.digest: arm}
    )
    stable = ImageRecord(parse_reference("example.com/team/app:stable"), amd)
    archive = FakeArchive([record, stable], {amd.config.digest, arm.config.digest})
    return catalog_of([("app.tar", archive)])


def _ask(
    method: str, target: str, headers: dict[str, str] | None = None, catalog: Catalog | None = None
) -> Reply:
    found = resolve(method, target)
    assert found is not None
    where, handler = found
    message = Message()
    for key, value in (headers or {}).items():
        message[key] = value
    request = Request(
        method, target, where.name, where.reference, where.query, message, catalog or _catalog()
    )
    return handler(request)


def _refused(method: str, target: str, headers: dict[str, str] | None = None) -> DistributionError:
    with pytest.raises(DistributionError) as caught:
        _ask(method, target, headers)
    return caught.value


# -- the error type and its one rendering -------------------------------------------------------


def test_an_error_renders_as_the_spec_json_body() -> None:
    error = DistributionError(
        404, "NAME_UNKNOWN", "not here", {"name": "a/b"}, headers=[("Allow", "GET")], close=True
    )
    reply = error.reply()
    body = (
        b'{"errors": [{"code": "NAME_UNKNOWN", "message": "not here", "detail": {"name": "a/b"}}]}'
    )
    assert reply == Reply(
        404,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Allow", "GET"),
        ],
        body,
        close=True,
    )
    bare = DistributionError(500, "UNKNOWN", "internal error: boom").reply()
    assert json.loads(bytes(bare.body)) == {
        "errors": [{"code": "UNKNOWN", "message": "internal error: boom"}]
    }
    assert not bare.close


# -- the route table ----------------------------------------------------------------------------


def test_writes_are_refused_on_any_path_without_parsing_it() -> None:
    for method in WRITE_METHODS:
        found = resolve(method, "//[not-a-host/v2/")
        assert found is not None
        assert found[0].kind == "write"
        error = _refused(method, "/v2/team/app/blobs/uploads/")
        assert (error.status, error.code, error.detail) == (405, "UNSUPPORTED", {"method": method})
        assert error.close
        assert ("Allow", "GET, HEAD") in error.headers


def test_options_and_unknown_methods() -> None:
    assert _ask("OPTIONS", "/anything") == Reply(
        200, [("Content-Type", "text/plain"), ("Content-Length", "0"), ("Allow", "GET, HEAD")]
    )
    assert resolve("TRACE", "/v2/") is None


def test_get_and_head_share_every_read_route() -> None:
    read_kinds = [rule.kind for rule in ROUTES if set(rule.methods) == set(READ_METHODS)]
    assert read_kinds == [
        "base", "catalog", "tags", "upload", "manifest", "blob", "referrers", "bad-name",
        "unknown",
    ]  # fmt: skip
    for target in ("/v2/", "/v2/a/manifests/1", "/v2/Bad/tags/list", "/elsewhere?x=1"):
        get, head = resolve("GET", target), resolve("HEAD", target)
        assert get is not None
        assert head is not None
        assert get == head
        assert get[0] == route(target)
    # an upload read with GET is refused like a write
    error = _refused("GET", "/v2/team/app/blobs/uploads/x")
    assert (error.status, error.detail) == (405, {"method": "GET"})


# -- handlers -----------------------------------------------------------------------------------


def test_base_catalog_and_tags() -> None:
    assert _ask("GET", "/v2/").body == b"{}"
    listing = _ask("GET", "/v2/_catalog")
    assert json.loads(bytes(listing.body)) == {"repositories": ["team/app"]}
    page = _ask("GET", "/v2/example.com/team/app/tags/list?n=1")
    assert json.loads(bytes(page.body)) == {"name": "example.com/team/app", "tags": ["1"]}
    assert page.headers[-1] == (
        "Link",
        '</v2/example.com/team/app/tags/list?n=1&last=1>; rel="next"',
    )
    rest = _ask("GET", "/v2/team/app/tags/list?n=1&last=1")
    assert json.loads(bytes(rest.body)) == {"name": "team/app", "tags": ["stable"]}
    assert [key for key, _ in rest.headers] == ["Content-Type", "Content-Length"]
    error = _refused("GET", "/v2/_catalog?n=many")
    assert (error.status, error.code, error.detail) == (
        400,
        "PAGINATION_NUMBER_INVALID",
        {"n": "many"},
    )


def test_names_that_are_wrong_or_unknown() -> None:
    error = _refused("GET", "/v2/nobody/manifests/1")
    assert (error.status, error.code, error.detail) == (404, "NAME_UNKNOWN", {"name": "nobody"})
    error = _refused("HEAD", "/v2/Team/App/manifests/1")
    assert (error.status, error.code, error.detail) == (400, "NAME_INVALID", {"name": "Team/App"})
    error = _refused("GET", "/v2/team/app/signatures/x%20y?a=1")
    assert (error.status, error.code) == (404, "UNSUPPORTED")
    assert error.message == "no such endpoint: /v2/team/app/signatures/x%20y"
    error = _refused("GET", "/v2/team/app/referrers/x%20y?a=1")
    assert (error.status, error.code) == (400, "DIGEST_INVALID")
    error = _refused("GET", "/v2/Team/App/referrers/sha256:" + "a" * 64)
    assert (error.status, error.code) == (400, "NAME_INVALID")


def test_manifests_by_tag_by_digest_and_as_accepted() -> None:
    catalog = _catalog()
    repo = catalog.repository("team/app")
    assert repo is not None
    top = repo.tags["1"]
    amd = _manifest("amd64")
    whole = _ask("GET", "/v2/team/app/manifests/1", catalog=catalog)
    assert whole.body == top.raw
    assert whole.headers[0] == ("Content-Type", top.media_type)
    # a client that takes image manifests only gets the linux/amd64 one
    only = _ask("GET", "/v2/team/app/manifests/1", {"Accept": amd.media_type}, catalog)
    assert only.body == amd.raw
    by_digest = _ask("GET", f"/v2/team/app/manifests/{amd.digest}", catalog=catalog)
    assert by_digest.body == amd.raw
    same = _ask("GET", "/v2/team/app/manifests/1", {"If-None-Match": f'"{top.digest}"'}, catalog)
    assert same == Reply(
        304, [("Docker-Content-Digest", str(top.digest)), ("ETag", f'"{top.digest}"')]
    )
    error = _refused("GET", "/v2/team/app/manifests/2")
    assert (error.status, error.code, error.detail) == (
        404,
        "MANIFEST_UNKNOWN",
        {"name": "team/app", "tag": "2"},
    )
    error = _refused("GET", "/v2/team/app/manifests/sha256:nothex")
    assert (error.status, error.code, error.detail) == (
        400,
        "DIGEST_INVALID",
        {"digest": "sha256:nothex"},
    )


def test_blobs_whole_ranged_and_out_of_range() -> None:
    config = _manifest("amd64").config
    url = f"/v2/team/app/blobs/{config.digest}"
    whole = _ask("GET", url)
    assert whole.status == 200
    assert isinstance(whole.body, BlobBody)
    assert (whole.body.start, whole.body.length) == (0, 3)
    part = _ask("GET", url, {"Range": "bytes=1-"})
    assert part.status == 206
    assert isinstance(part.body, BlobBody)
    assert (part.body.start, part.body.length) == (1, 2)
    assert part.headers[-1] == ("Content-Range", "bytes 1-2/3")
    error = _refused("GET", url, {"Range": "bytes=7-"})
    assert (error.status, error.code, error.detail) == (416, "RANGE_INVALID", {"size": 3})
    assert error.headers[0] == ("Content-Range", "bytes */3")
    # a manifest asked for through the blob endpoint: its bytes, ranged too
    amd = _manifest("amd64")
    manifest = _ask("GET", f"/v2/team/app/blobs/{amd.digest}", {"Range": "bytes=0-4"})
    assert manifest.body == amd.raw[:5]
    error = _refused("GET", f"/v2/team/app/blobs/sha256:{'0' * 64}")
    assert (error.status, error.code) == (404, "BLOB_UNKNOWN")


# -- referrers ----------------------------------------------------------------------------------

SBOM = "application/spdx+json"
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"


def _referrer(subject: Manifest, kind: str, note: str) -> Manifest:
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": kind,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "size": 2,
        },
        "layers": [],
        "subject": subject.descriptor.to_json(),
        "annotations": {"note": note},
    }
    node = parse_manifest(json.dumps(doc).encode())
    assert isinstance(node, Manifest)
    return node


def _with_referrers() -> tuple[Catalog, Manifest, Manifest, Manifest]:
    image = _manifest("amd64")
    sbom = _referrer(image, SBOM, "sbom")
    signature = _referrer(sbom, SIGNATURE, "signature of the sbom")
    records = [
        ImageRecord(parse_reference("example.com/team/app:1"), image),
        ImageRecord(parse_reference(f"example.com/team/app@{sbom.digest}"), sbom),
        ImageRecord(parse_reference(f"example.com/team/app@{signature.digest}"), signature),
    ]
    return catalog_of([("app.tar", FakeArchive(records, set()))]), image, sbom, signature


def test_referrers_are_listed_filtered_and_empty_when_none() -> None:
    catalog, image, sbom, signature = _with_referrers()
    answer = _ask("GET", f"/v2/team/app/referrers/{image.digest}", catalog=catalog)
    assert answer.status == 200
    assert answer.headers[0] == ("Content-Type", "application/vnd.oci.image.index.v1+json")
    index = json.loads(bytes(answer.body))
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert index["manifests"] == [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": str(sbom.digest),
            "size": len(sbom.raw),
            "annotations": {"note": "sbom"},
            "artifactType": SBOM,
        }
    ]
    # under an alias of the repository too; and a digest nothing refers to: an empty index
    deeper = _ask("GET", f"/v2/example.com/team/app/referrers/{sbom.digest}", catalog=catalog)
    assert [m["digest"] for m in json.loads(bytes(deeper.body))["manifests"]] == [
        str(signature.digest)
    ]
    none = _ask("GET", f"/v2/team/app/referrers/{signature.digest}", catalog=catalog)
    assert json.loads(bytes(none.body))["manifests"] == []
    assert ("OCI-Filters-Applied", "artifactType") not in none.headers
    quoted = SBOM.replace("+", "%2B")
    wanted = _ask(
        "GET", f"/v2/team/app/referrers/{image.digest}?artifactType={quoted}", catalog=catalog
    )
    assert len(json.loads(bytes(wanted.body))["manifests"]) == 1
    assert ("OCI-Filters-Applied", "artifactType") in wanted.headers
    other = _ask("GET", f"/v2/team/app/referrers/{image.digest}?artifactType=x/y", catalog=catalog)
    assert json.loads(bytes(other.body))["manifests"] == []


def test_the_fallback_tags_hold_the_same_index() -> None:
    catalog, image, sbom, _ = _with_referrers()
    tags = json.loads(bytes(_ask("GET", "/v2/team/app/tags/list", catalog=catalog).body))["tags"]
    assert sorted(tags) == sorted(["1", f"sha256-{image.digest.hex}", f"sha256-{sbom.digest.hex}"])
    api = _ask("GET", f"/v2/team/app/referrers/{image.digest}", catalog=catalog).body
    tagged = _ask("GET", f"/v2/team/app/manifests/sha256-{image.digest.hex}", catalog=catalog)
    assert tagged.body == api
    assert ("Docker-Content-Digest", str(Digest.of_bytes(bytes(api)))) in tagged.headers
    by_digest = _ask(
        "GET", f"/v2/team/app/manifests/{Digest.of_bytes(bytes(api))}", catalog=catalog
    )
    assert by_digest.body == api


def test_a_tag_of_an_archive_wins_over_a_fallback_tag() -> None:
    image = _manifest("amd64")
    sbom = _referrer(image, SBOM, "sbom")
    kept = _manifest("kept under the tag")
    tag = f"sha256-{image.digest.hex}"
    records = [
        ImageRecord(parse_reference("example.com/team/app:1"), image),
        ImageRecord(parse_reference(f"example.com/team/app@{sbom.digest}"), sbom),
        ImageRecord(parse_reference(f"example.com/team/app:{tag}"), kept),
    ]
    catalog = catalog_of([("app.tar", FakeArchive(records, set()))])
    answer = _ask("GET", f"/v2/team/app/manifests/{tag}", catalog=catalog)
    assert answer.body == kept.raw

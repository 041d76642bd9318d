"""Where ``push`` sends each image (TARGET rule) and how records are rewritten: no network."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sneaker.errors import ArchiveError, InvalidReference, UsageError
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor, Index, Manifest, parse_manifest
from sneaker.image.records import ImageRecord
from sneaker.image.reference import Reference, parse_reference
from sneaker.verbs.push import (
    PushedImage,
    PushResult,
    TargetPrefix,
    _post_order,
    _rewrite_record,
    parse_target,
    plan_targets,
)


def _sha(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def _manifest(layer: bytes, kind: str = mt.DOCKER_LAYER) -> Manifest:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": {"mediaType": mt.DOCKER_CONFIG, "size": 1, "digest": str(_sha(layer + b"c"))},
        "layers": [{"mediaType": kind, "size": len(layer), "digest": str(_sha(layer))}],
    }
    parsed = parse_manifest(json.dumps(doc).encode())
    assert isinstance(parsed, Manifest)
    return parsed


def _index(*children: Manifest) -> Index:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {
                "mediaType": c.media_type,
                "size": len(c.raw),
                "digest": str(c.digest),
                "platform": {"os": "linux", "architecture": arch},
            }
            for c, arch in zip(children, ["amd64", "arm64", "s390x"], strict=False)
        ],
    }
    parsed = parse_manifest(json.dumps(doc).encode())
    assert isinstance(parsed, Index)
    return parsed


def _record(name: str | None, layer: bytes = b"l") -> ImageRecord:
    return ImageRecord(parse_reference(name) if name else None, _manifest(layer))


# -- parse_target -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:5000", TargetPrefix("localhost:5000")),
        ("localhost", TargetPrefix("localhost")),
        ("registry.example.com", TargetPrefix("registry.example.com")),
        ("127.0.0.1:5000/mirror", TargetPrefix("127.0.0.1:5000", "mirror")),
        ("localhost:5000/a/b", TargetPrefix("localhost:5000", "a/b")),
        ("index.docker.io/myorg", TargetPrefix("docker.io", "myorg")),
        ("docker.io", TargetPrefix("docker.io")),
    ],
)
def test_targets_without_tag_are_prefixes(text: str, expected: TargetPrefix) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:5000/app:1", "localhost:5000/app:1"),
        ("ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
        ("localhost:5000/team/app:latest", "localhost:5000/team/app:latest"),
        (f"localhost:5000/app@sha256:{'a' * 64}", f"localhost:5000/app@sha256:{'a' * 64}"),
    ],
)
def test_targets_with_tag_or_digest_are_references(text: str, expected: str) -> None:
    parsed = parse_target(text)
    assert isinstance(parsed, Reference)
    assert str(parsed) == expected


@pytest.mark.parametrize("text", ["myapp", "myorg/app", ""])
def test_untagged_targets_need_a_registry_host(text: str) -> None:
    with pytest.raises(UsageError):
        parse_target(text)


def test_invalid_target_grammar() -> None:
    with pytest.raises(InvalidReference):
        parse_target("localhost:5000/Bad_Name:1")


def test_prefix_keeps_repository_path_and_tag() -> None:
    prefix = TargetPrefix("localhost:5000", "mirror")
    ref = prefix.apply(parse_reference("ubuntu:22.04"))
    assert str(ref) == "localhost:5000/mirror/library/ubuntu:22.04"
    bare = TargetPrefix("localhost:5000").apply(parse_reference("ghcr.io/org/tool:2"))
    assert str(bare) == "localhost:5000/org/tool:2"
    digest = f"sha256:{'b' * 64}"
    by_digest = prefix.apply(parse_reference(f"quay.io/x/y@{digest}"))
    assert str(by_digest) == f"localhost:5000/mirror/x/y@{digest}"
    # a tag wins over a digest (the digest was the source's, ours may differ)
    both = prefix.apply(parse_reference(f"quay.io/x/y:1@{digest}"))
    assert str(both) == "localhost:5000/mirror/x/y:1"


def test_prefix_too_long_is_refused() -> None:
    with pytest.raises(InvalidReference):
        TargetPrefix("localhost:5000", "a" * 250).apply(parse_reference("ubuntu:1"))


# -- plan_targets -------------------------------------------------------------------------


def test_no_target_pushes_back_to_the_archive_names() -> None:
    records = [_record("ubuntu:22.04"), _record("quay.io/a/b:1", b"x")]
    refs = plan_targets(records, None)
    assert [str(r) for r in refs] == ["docker.io/library/ubuntu:22.04", "quay.io/a/b:1"]


def test_full_reference_only_for_one_image() -> None:
    (ref,) = plan_targets([_record("ubuntu:22.04")], "localhost:5000/team/app:7")
    assert str(ref) == "localhost:5000/team/app:7"
    with pytest.raises(UsageError) as info:
        plan_targets(
            [_record("ubuntu:22.04"), _record("alpine:3", b"x")], "localhost:5000/team/app:7"
        )
    assert "holds 2" in info.value.message
    assert info.value.hint is not None
    assert "localhost:5000/team" in info.value.hint


def test_prefix_for_many_images() -> None:
    records = [_record("ubuntu:22.04"), _record("alpine:3", b"x")]
    refs = plan_targets(records, "localhost:5000/mirror")
    assert [str(r) for r in refs] == [
        "localhost:5000/mirror/library/ubuntu:22.04",
        "localhost:5000/mirror/library/alpine:3",
    ]


def test_unnamed_images_need_a_full_target() -> None:
    unnamed = [_record(None)]
    with pytest.raises(UsageError, match="no name"):
        plan_targets(unnamed, None)
    with pytest.raises(UsageError, match="no name"):
        plan_targets(unnamed, "localhost:5000/mirror")
    (ref,) = plan_targets(unnamed, "localhost:5000/app:1")
    assert str(ref) == "localhost:5000/app:1"


def test_empty_archive() -> None:
    with pytest.raises(ArchiveError):
        plan_targets([], None)


# -- records ----------------------------------------------------------------------------


def test_post_order_puts_children_before_their_index() -> None:
    a, b = _manifest(b"a"), _manifest(b"b")
    inner = _index(a, b)
    top = _index(inner)
    record = ImageRecord(None, top, {inner.digest: inner, a.digest: a, b.digest: b})
    order = [n.digest for n in _post_order(record)]
    assert order.index(a.digest) < order.index(inner.digest)
    assert order.index(b.digest) < order.index(inner.digest)
    assert len(order) == 3
    assert top.digest not in order


def test_rewrite_record_follows_compressed_layers_up_to_the_index() -> None:
    a = _manifest(b"a", mt.DOCKER_LAYER_TAR)
    b = _manifest(b"b")
    top = _index(a, b)
    record = ImageRecord(parse_reference("x:1"), top, {a.digest: a, b.digest: b})
    new_layer = Descriptor(mt.DOCKER_LAYER, _sha(b"gz"), 2)
    rewritten = _rewrite_record(record, {_sha(b"a"): new_layer})
    assert rewritten.reference == record.reference
    assert isinstance(rewritten.root, Index)
    assert rewritten.root.digest != top.digest
    new_a = rewritten.children[rewritten.root.manifests[0].digest]
    assert isinstance(new_a, Manifest)
    assert new_a.layers == (new_layer,)
    assert rewritten.children[b.digest] is b
    assert _rewrite_record(record, {}) is record
    assert _rewrite_record(record, {_sha(b"zzz"): new_layer}) is record


def test_result_json() -> None:
    image = PushedImage(
        "localhost:5000/app:1", "sha256:1", source="app:1", source_digest="sha256:0", uploaded=2
    )
    result = PushResult(archive=Path("a.tar"), format="docker-legacy")
    result.images.append(image)
    data = result.to_json()
    assert data["blobs"] == {"uploaded": 2, "skipped": 0, "mounted": 0}
    assert data["images"][0]["recompressed"] is True
    assert data["images"][0]["target"] == "localhost:5000/app:1"
    json.dumps(data)

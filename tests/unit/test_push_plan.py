"""Where ``push`` sends each image and blob (TARGET rule, the push plan) and how records
are rewritten: no network."""

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
from sneaker.verbs.push import PushedImage, PushResult
from sneaker.verbs.pushplan import (
    BlobDestination,
    ListedManifest,
    ManifestPut,
    TargetPrefix,
    _post_order,
    _rewrite_record,
    layers_to_compress,
    parse_target,
    plan_push,
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


# -- plan_push: targets -----------------------------------------------------------------


def _layer_digest(record: ImageRecord) -> Digest:
    assert isinstance(record.root, Manifest)
    return record.root.layers[0].digest


def test_plan_goes_under_the_tag_or_else_the_digest() -> None:
    tagged, untagged = _record("localhost:5000/a:1"), _record(None, b"x")
    (image,) = plan_push([tagged], None).images
    assert str(image.ref) == "localhost:5000/a:1"
    assert image.manifests[-1] == ManifestPut("1", tagged.root)
    assert str(image.shown) == "localhost:5000/a:1"
    digest_ref = f"localhost:5000/b@{untagged.root.digest}"
    (image,) = plan_push([untagged], digest_ref).images
    assert image.manifests[-1] == ManifestPut(str(untagged.root.digest), untagged.root)
    assert str(image.shown) == digest_ref
    # a digest-only name from the archive (the source's digest) is replaced by ours
    pulled = ImageRecord(parse_reference(f"quay.io/x/y@sha256:{'c' * 64}"), _manifest(b"y"))
    (image,) = plan_push([pulled], "localhost:5000/m").images
    assert image.ref.digest == pulled.root.digest
    assert image.manifests[-1].identifier == str(pulled.root.digest)


def test_plan_refuses_a_target_digest_that_is_not_the_image() -> None:
    other = f"sha256:{'d' * 64}"
    with pytest.raises(UsageError, match="is not the image's digest"):
        plan_push([_record("a:1")], f"localhost:5000/a@{other}")
    with pytest.raises(UsageError, match="asks for digest"):
        plan_push([_record("a:1")], f"localhost:5000/a:1@{other}")


def test_plan_pushes_one_name_once_and_refuses_two_images_for_it() -> None:
    same = _record("localhost:5000/a:1")
    plan = plan_push([same, same], None, names=["first", "second"])
    assert [(i.number, i.name) for i in plan.images] == [(0, "first")]
    with pytest.raises(UsageError, match="two different images"):
        plan_push([same, _record("localhost:5000/a:1", b"other")], None)


# -- plan_push: blobs and mounts -----------------------------------------------------------


def test_plan_sends_each_blob_to_a_registry_once_into_every_repository() -> None:
    one, two = _record("localhost:5000/a:1"), _record("localhost:5000/b:1")
    far = _record("localhost:6000/c:1")
    plan = plan_push([one, two, far], None)
    assert plan.batches[0] == ()
    by_place = {(b.registry, b.desc.digest): b for b in plan.batches[1]}
    assert len(by_place) == 4  # a config and a layer, on each of two registries
    shared = by_place[("localhost:5000", _layer_digest(one))]
    assert [d.repository for d in shared.destinations] == ["a", "b"]
    assert all(d.mount_from == () for d in shared.destinations)
    (alone,) = by_place[("localhost:6000", _layer_digest(one))].destinations
    assert alone.repository == "c"
    assert not any(b.from_base or b.recompressed for b in plan.batches[1])


def test_plan_mounts_from_the_repository_the_image_was_pulled_from() -> None:
    pulled = _record("localhost:5000/src/app:1")
    plan = plan_push([pulled], "localhost:5000/mirror")
    for blob in plan.batches[1]:
        (dest,) = blob.destinations
        assert dest == BlobDestination("mirror/src/app", ("src/app",))
    # from another registry there is nothing to mount from
    plan = plan_push([_record("quay.io/src/app:1")], "localhost:5000/mirror")
    assert all(d.mount_from == () for b in plan.batches[1] for d in b.destinations)
    # pushed back where it came from: not from itself either
    plan = plan_push([pulled], None)
    assert all(d.mount_from == () for b in plan.batches[1] for d in b.destinations)


def test_plan_mounts_a_delta_base_layer_from_its_recorded_repositories_first() -> None:
    record = _record("localhost:5000/team/app:2", b"big layer")
    base_layer = _layer_digest(record)
    omitted = {base_layer: ["old.example/team/base", "localhost:5000/team/app"]}
    plan = plan_push([record], "target.example/mirror", omitted=omitted)
    (first,) = plan.batches[0]
    assert first.desc.digest == base_layer
    assert first.from_base
    (dest,) = first.destinations
    assert dest.repository == "mirror/team/app"
    # renamed as this push renames images, then the same paths (its own target left out)
    assert dest.mount_from == ("mirror/team/base", "team/base", "team/app")
    (config,) = plan.batches[1]
    assert not config.from_base
    assert config.desc.digest != base_layer


def test_plan_puts_the_pulled_from_repository_before_the_delta_base() -> None:
    record = _record("localhost:5000/src/app:2")
    layer = _layer_digest(record)
    plan = plan_push(
        [record], "localhost:5000/mirror", omitted={layer: ["localhost:5000/src/app", "x/base"]}
    )
    (blob,) = plan.batches[0]
    (dest,) = blob.destinations
    assert dest.mount_from == ("src/app", "mirror/x/base", "x/base")


def test_plan_leaves_out_a_foreign_layer_the_archive_does_not_carry() -> None:
    foreign = {
        "mediaType": mt.DOCKER_FOREIGN_LAYER,
        "size": 7,
        "digest": str(_sha(b"foreign")),
        "urls": ["https://example.com/layer"],
    }
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": {"mediaType": mt.DOCKER_CONFIG, "size": 1, "digest": str(_sha(b"c"))},
        "layers": [foreign, {"mediaType": mt.DOCKER_LAYER, "size": 1, "digest": str(_sha(b"l"))}],
    }
    manifest = parse_manifest(json.dumps(doc).encode())
    record = ImageRecord(parse_reference("localhost:5000/w:1"), manifest)
    absent = plan_push([record], None, has_blob=lambda d: d != _sha(b"foreign"))
    assert _sha(b"foreign") not in {b.desc.digest for b in absent.batches[1]}
    assert _sha(b"foreign") not in absent.images[0].counted
    assert len(absent.images[0].counted) == 2
    present = plan_push([record], None, has_blob=lambda d: True)
    assert _sha(b"foreign") in {b.desc.digest for b in present.batches[1]}


def test_plan_orders_blobs_largest_first() -> None:
    small, large = _record("localhost:5000/a:1", b"s"), _record("localhost:5000/b:1", b"l" * 50)
    plan = plan_push([small, large], None)
    sizes = [b.desc.size for b in plan.batches[1]]
    assert sizes == sorted(sizes, reverse=True)
    assert plan.batches[1][0].desc.digest == _layer_digest(large)


# -- plan_push: manifests and counts ---------------------------------------------------------


def test_plan_puts_children_first_once_per_repository_and_the_root_under_each_tag() -> None:
    a, b = _manifest(b"a"), _manifest(b"b")
    top = _index(a, b)
    children: dict[Digest, Manifest | Index] = {a.digest: a, b.digest: b}
    one = ImageRecord(parse_reference("localhost:5000/app:1"), top, children)
    two = ImageRecord(parse_reference("localhost:5000/app:2"), top, children)
    plan = plan_push([one, two], None)
    first, second = plan.images
    assert [p.identifier for p in first.manifests] == [str(a.digest), str(b.digest), "1"]
    assert [p.identifier for p in second.manifests] == ["2"]  # the children are there
    assert first.manifests[-1].node is top
    # the second tag's blobs were reported by the first: skipped, whatever happened
    assert len(first.counted) == 4
    assert first.repeated == 0
    assert second.counted == ()
    assert second.repeated == 4
    assert first.listed == second.listed == ()


def test_plan_lists_index_children_the_archive_lacks() -> None:
    a, b = _manifest(b"a"), _manifest(b"b")
    top = _index(a, b)
    record = ImageRecord(parse_reference("localhost:5000/app:1"), top, {a.digest: a})
    (image,) = plan_push([record], None).images
    assert image.listed == (ListedManifest(top.digest, b.digest),)
    assert [p.identifier for p in image.manifests] == [str(a.digest), "1"]


# -- plan_push: legacy layers ------------------------------------------------------------------


def test_plan_uploads_compressed_copies_of_legacy_layers() -> None:
    legacy = ImageRecord(
        parse_reference("localhost:5000/old:1"), _manifest(b"tar", mt.DOCKER_LAYER_TAR)
    )
    (layer,) = layers_to_compress([legacy], synthesised=True)
    assert layer.digest == _sha(b"tar")
    assert layers_to_compress([_record("a:1")], synthesised=True) == []
    gz = Descriptor(mt.DOCKER_LAYER, _sha(b"gz"), 2)
    plan = plan_push([legacy], None, compressed={layer.digest: gz})
    (image,) = plan.images
    assert image.source_digest == legacy.root.digest
    assert image.record.root.digest != legacy.root.digest
    assert isinstance(image.record.root, Manifest)
    assert image.record.root.layers == (gz,)
    assert image.manifests[-1].node is image.record.root
    recompressed = {b.desc.digest: b.recompressed for b in plan.batches[1]}
    assert recompressed == {gz.digest: True, legacy.root.config.digest: False}


def test_layers_to_compress_once_each_largest_first() -> None:
    small = _manifest(b"t", mt.DOCKER_LAYER_TAR)
    big = _manifest(b"t" * 9, mt.DOCKER_LAYER_TAR)
    oci = _manifest(b"o", mt.OCI_LAYER)
    records = [ImageRecord(None, small), ImageRecord(None, big), ImageRecord(None, small)]
    assert [d.size for d in layers_to_compress(records, synthesised=False)] == [9, 1]
    # an uncompressed OCI layer only when the archive came without manifests
    assert layers_to_compress([ImageRecord(None, oci)], synthesised=False) == []
    assert len(layers_to_compress([ImageRecord(None, oci)], synthesised=True)) == 1

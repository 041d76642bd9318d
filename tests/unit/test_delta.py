"""Delta archives: the marker, planning, writing, reading back, refusing (and the wording of the
refusals), pushing (fake wire)."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest

from sneaker.archive import open_archive, write_docker_archive, write_oci_layout
from sneaker.archive.delta import DELTA_MARKER, DeltaMarker, OmittedBlob, delta_refusal
from sneaker.errors import ArchiveError, NotFound, UnsupportedError, UsageError
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.inventory import Inventory
from sneaker.image.model import Descriptor, Manifest, parse_manifest
from sneaker.image.records import ImageRecord
from sneaker.image.reference import Reference
from sneaker.registry.client import StoredManifest
from sneaker.verbs.pull import plan_delta
from sneaker.verbs.push import TargetPrefix, push
from sneaker.verbs.pushplan import mount_sources
from sneaker.verbs.verify import verify_archive
from tests.unit.test_archive_common import Blobs, dumps, make_record, tar_json, tar_members

BASE_LAYER = {"bin/busybox": b"the shared base layer"}


def _images(blobs: Blobs) -> tuple[ImageRecord, ImageRecord]:
    """v1 (base layer only) and v2 (base layer + one new layer), like FROM v1 + RUN."""
    v1 = make_record(blobs, "reg.example/base/app:1", [BASE_LAYER], oci=True)
    v2 = make_record(blobs, "reg.example/team/app:2", [BASE_LAYER, {"v2.txt": b"v2"}], oci=True)
    return v1, v2


def _manifest(record: ImageRecord) -> Manifest:
    assert isinstance(record.root, Manifest)
    return record.root


def _inventory_of(record: ImageRecord, *, config_too: bool = True) -> Inventory:
    inventory = Inventory(["archive old.tar"])
    manifest = _manifest(record)
    repository = record.reference.name if record.reference else None
    for desc in manifest.blobs if config_too else manifest.layers:
        inventory.add_blob(desc.digest, desc.size, repository)
    return inventory


# -- the marker -----------------------------------------------------------------------


def _marker() -> DeltaMarker:
    a = Digest.of_bytes(b"a")
    b = Digest.of_bytes(b"b")
    return DeltaMarker(
        {
            b: OmittedBlob(b, 2, mt.OCI_LAYER_GZIP, ("reg.example/base/app",)),
            a: OmittedBlob(a, 1, mt.OCI_LAYER_GZIP, ()),
        },
        ("archive old.tar",),
    )


def test_marker_round_trips_and_is_deterministic() -> None:
    marker = _marker()
    raw = marker.to_bytes()
    doc = json.loads(raw)
    assert doc["format"] == "sneaker-delta"
    assert doc["version"] == 1
    assert doc["base"] == ["archive old.tar"]
    assert [e["digest"] for e in doc["omitted"]] == sorted(str(d) for d in marker.omitted)
    again = DeltaMarker.from_bytes(raw)
    assert again == marker
    assert again.to_bytes() == raw
    assert marker.omitted_size == 3
    assert marker.describe() == "2 layers (3 B)"


@pytest.mark.parametrize(
    ("raw", "error", "words"),
    [
        (b"{", ArchiveError, "not valid JSON"),
        (b"[]", ArchiveError, "not a sneaker delta marker"),
        (b'{"format": "other", "version": 1}', ArchiveError, "not a sneaker delta marker"),
        (b'{"format": "sneaker-delta", "version": 2, "omitted": []}', UnsupportedError, "2"),
        (b'{"format": "sneaker-delta", "version": 1}', ArchiveError, "'omitted' must be a list"),
        (
            b'{"format": "sneaker-delta", "version": 1, '
            b'"omitted": [{"digest": "md5:x", "size": 1}]}',
            ArchiveError,
            "invalid digest",
        ),
        (
            b'{"format": "sneaker-delta", "version": 1, "omitted": [{"digest": "sha256:'
            + b"a" * 64
            + b'", "size": -1}]}',
            ArchiveError,
            "size",
        ),
    ],
)
def test_marker_refuses_what_it_cannot_trust(
    raw: bytes, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        DeltaMarker.from_bytes(raw)


def test_marker_refuses_a_digest_listed_twice() -> None:
    entry = {"digest": str(Digest.of_bytes(b"a")), "size": 1}
    raw = dumps({"format": "sneaker-delta", "version": 1, "omitted": [entry, entry]})
    with pytest.raises(ArchiveError, match="listed twice"):
        DeltaMarker.from_bytes(raw)


# -- planning -------------------------------------------------------------------------


def test_plan_leaves_out_only_the_layers_the_base_has() -> None:
    blobs = Blobs()
    v1, v2 = _images(blobs)
    marker = plan_delta([v2], _inventory_of(v1))
    base_layer = _manifest(v1).layers[0]
    assert list(marker.omitted) == [base_layer.digest]
    omitted = marker.omitted[base_layer.digest]
    assert omitted.size == base_layer.size
    assert omitted.media_type == base_layer.media_type
    assert omitted.repositories == ("reg.example/base/app",)
    assert marker.base == ("archive old.tar",)


def test_plan_never_leaves_out_configs_foreign_layers_or_size_mismatches() -> None:
    blobs = Blobs()
    v1, _ = _images(blobs)
    manifest = _manifest(v1)
    layer = manifest.layers[0]
    # an image whose config digest the base has as a "layer", plus a foreign layer
    foreign = Descriptor(mt.DOCKER_FOREIGN_LAYER, Digest.of_bytes(b"foreign"), 7, urls=("u",))
    doc = json.loads(manifest.raw)
    doc["layers"].append(foreign.to_json())
    other = parse_manifest(dumps(doc))
    assert isinstance(other, Manifest)
    record = ImageRecord(v1.reference, other)
    base = Inventory(["x"])
    base.add_blob(other.config.digest, other.config.size)
    base.add_blob(foreign.digest, foreign.size)
    base.add_blob(layer.digest, layer.size + 1)  # same digest, another size: not trusted
    assert plan_delta([record], base).omitted == {}


def test_plan_with_an_unrelated_base_omits_nothing() -> None:
    blobs = Blobs()
    _, v2 = _images(blobs)
    assert plan_delta([v2], Inventory(["nothing"])).omitted == {}


# -- writing and reading --------------------------------------------------------------


def _write_delta(tmp_path: Path, **kwargs: Any) -> tuple[Path, DeltaMarker, ImageRecord]:
    blobs = Blobs()
    v1, v2 = _images(blobs)
    marker = plan_delta([v2], _inventory_of(v1))
    out = tmp_path / "delta.tar"
    write_oci_layout([v2], blobs, out, as_tar=True, delta=marker, **kwargs)
    return out, marker, v2


def test_delta_tar_holds_manifests_configs_new_layers_and_the_marker(tmp_path: Path) -> None:
    out, marker, v2 = _write_delta(tmp_path)
    manifest = _manifest(v2)
    names = set(tar_members(out))
    (omitted,) = marker.omitted
    assert f"blobs/sha256/{omitted.hex}" not in names
    for desc in (manifest.descriptor, manifest.config, manifest.layers[1]):
        assert f"blobs/sha256/{desc.digest.hex}" in names
    assert DELTA_MARKER in names
    assert "manifest.json" not in names  # never a docker archive
    assert DeltaMarker.from_bytes(json.dumps(tar_json(out, DELTA_MARKER)).encode()) == marker


def test_delta_is_refused_by_default_with_what_to_do(tmp_path: Path) -> None:
    out, _, _ = _write_delta(tmp_path)
    with pytest.raises(UnsupportedError) as caught:
        open_archive(out)
    message = caught.value.message
    assert "is a delta archive" in message
    assert "push it onto a registry that holds the images of its base (archive old.tar)" in message
    assert "1 layer" in message
    assert caught.value.hint is not None
    assert "sneaker push" in caught.value.hint
    # verify says so too (it does not turn it into a "missing blob" problem)
    with pytest.raises(UnsupportedError, match="is a delta archive"):
        verify_archive(out)


def test_delta_opens_when_asked(tmp_path: Path) -> None:
    out, marker, v2 = _write_delta(tmp_path)
    with open_archive(out, allow_delta=True) as source:
        assert source.delta == marker
        assert source.format == "oci-archive"
        (record,) = source.records
        assert record.root.digest == v2.root.digest
        (omitted,) = marker.omitted
        assert not source.has_blob(omitted)
        assert source.has_blob(_manifest(v2).layers[1].digest)


def test_split_delta_opens_by_base_name(tmp_path: Path) -> None:
    out, marker, _ = _write_delta(tmp_path, split=700)
    assert not out.exists()
    assert (tmp_path / "delta.tar.000").exists()
    with open_archive(out, allow_delta=True) as source:
        assert source.delta == marker
    with pytest.raises(UnsupportedError, match="delta archive"):
        open_archive(out)


def test_delta_still_refuses_other_missing_blobs(tmp_path: Path) -> None:
    blobs = Blobs()
    v1, v2 = _images(blobs)
    marker = plan_delta([v2], _inventory_of(v1))
    new_layer = _manifest(v2).layers[1]
    del blobs.data[new_layer.digest]
    layout = tmp_path / "layout"
    # the writer itself needs the blobs it does not omit
    with pytest.raises(NotFound):
        write_oci_layout([v2], blobs, layout, as_tar=False, delta=marker)
    # an interrupted delta directory (no index.json yet) is written again
    assert not (layout / "index.json").exists()
    blobs2 = Blobs()
    _, v2b = _images(blobs2)
    write_oci_layout([v2b], blobs2, layout, as_tar=False, delta=marker)
    (layout / "blobs" / "sha256" / new_layer.digest.hex).unlink()
    with pytest.raises(ArchiveError, match="missing"):
        open_archive(layout, allow_delta=True)


def test_delta_directory_must_be_new_or_empty(tmp_path: Path) -> None:
    blobs = Blobs()
    v1, v2 = _images(blobs)
    marker = plan_delta([v2], _inventory_of(v1))
    layout = tmp_path / "layout"
    assert write_oci_layout([v2], blobs, layout, as_tar=False, delta=marker) == [layout]
    assert (layout / DELTA_MARKER).is_file()
    with open_archive(layout, allow_delta=True) as source:
        assert source.delta == marker
    with pytest.raises(UsageError, match="already holds images"):
        write_oci_layout([v2], blobs, layout, as_tar=False, delta=marker)


def test_docker_writer_refuses_a_delta(tmp_path: Path) -> None:
    blobs = Blobs()
    v1, v2 = _images(blobs)
    marker = plan_delta([v2], _inventory_of(v1))
    out = tmp_path / "delta.tar"
    with pytest.raises(UsageError, match="cannot be a docker archive") as caught:
        write_docker_archive([v2], blobs, out, delta=marker)
    assert caught.value.hint is not None
    assert "--format oci" in caught.value.hint
    assert not out.exists()


# -- where to mount from --------------------------------------------------------------


def test_mount_sources_order() -> None:
    repos = ["reg.example/base/app", "target.example/team/base", "bad name!"]
    prefix = TargetPrefix("target.example", "mirror")
    assert mount_sources(repos, "target.example", "team/app", prefix.apply) == [
        "team/base",  # recorded on the target registry itself
        "mirror/base/app",  # renamed as the push renames
        "mirror/team/base",
        "base/app",  # the same path on the target
    ]
    # the push's own repository is never a mount source (a HEAD covers it)
    assert mount_sources(["reg.example/team/app"], "reg.example", "team/app") == []


# -- push, against a fake registry ----------------------------------------------------


@dataclass
class FakeRegistry:
    """Enough of RegistryClient for push: blobs per repository, mounts, uploads, manifests."""

    registry: str
    blobs: dict[str, set[Digest]] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def blob_exists(self, repository: str, digest: Digest) -> int | None:
        self.calls.append(("HEAD", repository, str(digest)))
        return 1 if digest in self.blobs.get(repository, set()) else None

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        self.calls.append(("MOUNT", repository, from_repository))
        if digest in self.blobs.get(from_repository, set()):
            self.blobs.setdefault(repository, set()).add(digest)
            return True
        return False

    def upload_blob(self, repository: str, desc: Descriptor, stream: BinaryIO, **_: Any) -> None:
        self.calls.append(("UPLOAD", repository, str(desc.digest)))
        data = stream.read()
        assert Digest.of_bytes(data) == desc.digest
        self.blobs.setdefault(repository, set()).add(desc.digest)

    def head_manifest(self, repository: str, identifier: str) -> Descriptor | None:
        return None

    def store_manifest(
        self, repository: str, reference: str, raw: bytes, media_type: str
    ) -> StoredManifest:
        for desc in _blobs_of(raw):
            assert desc.digest in self.blobs.get(repository, set()), "BLOB_UNKNOWN"
        self.manifests[(repository, reference)] = raw
        return StoredManifest(Digest.of_bytes(raw))


def _blobs_of(raw: bytes) -> tuple[Descriptor, ...]:
    node = parse_manifest(raw)
    return node.blobs if isinstance(node, Manifest) else ()


def _factory(fake: FakeRegistry) -> Callable[[str], Any]:
    def make(registry: str) -> Any:
        assert registry == fake.registry
        return fake

    return make


def test_push_of_a_delta_mounts_the_omitted_layer_from_the_base(tmp_path: Path) -> None:
    out, marker, _ = _write_delta(tmp_path)
    (omitted,) = marker.omitted
    fake = FakeRegistry("target.example", {"mirror/base/app": {omitted}})
    result = push(out, "target.example/mirror", client_factory=_factory(fake), jobs=1)
    (image,) = result.images
    assert image.target == "target.example/mirror/team/app:2"
    assert image.mounted == 1
    assert image.uploaded == 2  # the config and the new layer
    assert fake.calls.index(("MOUNT", "mirror/team/app", "mirror/base/app")) < min(
        i for i, c in enumerate(fake.calls) if c[0] == "UPLOAD"
    )
    assert ("mirror/team/app", "2") in fake.manifests
    assert result.format == "oci-archive"


def test_push_of_a_delta_skips_what_the_target_repository_has(tmp_path: Path) -> None:
    out, marker, _ = _write_delta(tmp_path)
    (omitted,) = marker.omitted
    fake = FakeRegistry("target.example", {"team/app": {omitted}})
    result = push(out, "target.example", client_factory=_factory(fake), jobs=2)
    assert result.images[0].skipped == 1
    assert not [c for c in fake.calls if c[0] == "MOUNT"]


def test_push_of_a_delta_onto_a_target_without_the_base_fails_before_uploading(
    tmp_path: Path,
) -> None:
    out, marker, _ = _write_delta(tmp_path)
    (omitted,) = marker.omitted
    fake = FakeRegistry("target.example")
    with pytest.raises(NotFound) as caught:
        push(out, "target.example", client_factory=_factory(fake), jobs=4)
    message = caught.value.message
    assert str(omitted) in message
    assert "lacks the delta's base" in message
    assert "target.example/team/app" in message
    assert "base/app" in message  # where it tried to mount from
    assert caught.value.hint is not None
    assert "push the base archive" in caught.value.hint
    assert not [c for c in fake.calls if c[0] == "UPLOAD"]
    assert not fake.manifests


def test_push_to_a_full_reference_mounts_from_the_recorded_path(tmp_path: Path) -> None:
    out, marker, _ = _write_delta(tmp_path)
    (omitted,) = marker.omitted
    fake = FakeRegistry("target.example", {"base/app": {omitted}})
    target = cast(Reference, "target.example/elsewhere/app:2")
    result = push(out, target, client_factory=_factory(fake), jobs=1)
    assert result.images[0].mounted == 1
    assert ("MOUNT", "elsewhere/app", "base/app") in fake.calls


def test_tar_of_delta_lists_nothing_docker_needs(tmp_path: Path) -> None:
    """What docker load would look for is absent: the delta cannot pass for a docker archive."""
    out, _, _ = _write_delta(tmp_path)
    with tarfile.open(out) as tar:
        assert "manifest.json" not in tar.getnames()
        assert "repositories" not in tar.getnames()


# -- the wording of the refusals ------------------------------------------------------------


def test_delta_refusal_names_the_base_and_not_a_placeholder() -> None:
    with_base = delta_refusal("d.tar", DeltaMarker({}, ("archive v1.tar",)))
    assert with_base.message.endswith(
        "push it onto a registry that holds the images of its base (archive v1.tar)"
    )
    without = delta_refusal("d.tar", DeltaMarker({}, ()))
    assert without.message.endswith("the images of the base archive this delta was made from")
    for error in (with_base, without):
        assert "OLD" not in error.message
        assert error.hint is not None
        assert "inspect need" not in error.hint
        assert "inspect reads a delta" in error.hint


def test_docker_format_refusal_has_no_placeholder() -> None:
    from sneaker.archive.delta import docker_format_refusal

    hint = docker_format_refusal().hint
    assert hint is not None
    assert "OLD" not in hint

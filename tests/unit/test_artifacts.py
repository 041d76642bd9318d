"""Artifacts as content: which manifests are not images, the tag schema, referrers lists, and
what every verb does with a Helm chart, a signature or an SBOM (no diff IDs, no platform,
blobs checked by digest and size, a docker archive and unpack refusing them clearly).

The content is tests/fixtures/artifacts.py's OCI layout, written by hand (never by sneaker).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sneaker.archive import open_archive
from sneaker.archive.docker_archive import check_docker_records
from sneaker.archive.reader import ArchiveSource
from sneaker.errors import ManifestInvalid, UnsupportedError, UsageError
from sneaker.image.artifacts import (
    Attachment,
    artifact_type,
    attachment_of,
    cosign_artifact_type,
    cosign_tag,
    digest_tag,
    filter_type,
    is_artifact,
    listing_type,
    merge_referrers_index,
    parse_digest_tag,
    referrer_descriptor,
    referrer_subjects,
    referrers_index,
)
from sneaker.image.config import check_record_configs, image_config_digests
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor, Index, Manifest, parse_manifest
from sneaker.image.records import ImageRecord
from sneaker.image.reference import parse_reference
from sneaker.image.selection import PlatformRequest
from sneaker.verbs.inspect import report_source
from sneaker.verbs.unpack import unpack
from sneaker.verbs.verify import verify
from tests.fixtures import artifacts as fx

HOST = "registry.example"


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> fx.ArtifactSet:
    return fx.build_artifacts(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture
def layout(content: fx.ArtifactSet) -> Iterator[ArchiveSource]:
    with open_archive(content.layout) as source:
        yield source


def _parsed(manifest: fx.Manifest) -> Manifest | Index:
    return parse_manifest(manifest.raw, expected=Digest.parse(manifest.digest))


def _record(manifest: fx.Manifest, tag: str | None = None) -> ImageRecord:
    name = f"{HOST}/{manifest.repository}"
    ref = parse_reference(f"{name}:{tag}" if tag else f"{name}@{manifest.digest}")
    return ImageRecord(ref, _parsed(manifest))


# -- classification -------------------------------------------------------------------------


def test_artifacts_and_images_are_told_apart(content: fx.ArtifactSet) -> None:
    images = (content.image, content.multi_amd64, content.multi_arm64, content.multi)
    for manifest in images:
        assert not is_artifact(_parsed(manifest)), manifest
        assert artifact_type(_parsed(manifest)) is None
    expected = {
        # a config that is no image config: the config's media type says what it is
        content.chart.digest: fx.HELM_CONFIG,
        # OCI 1.1 artifactType
        content.sbom.digest: fx.SPDX_JSON,
        content.attestation.digest: fx.IN_TOTO,
        content.sbom_signature.digest: fx.COSIGN_SIGNATURE_ARTIFACT,
        content.child_sbom.digest: fx.SPDX_JSON,
        # cosign's tag attachments: an image config with JSON layers: the layer says
        content.image_signature.digest: fx.COSIGN_SIMPLESIGNING,
        content.image_attestation.digest: fx.DSSE_ENVELOPE,
        content.image_sbom.digest: fx.COSIGN_SPDX_JSON,
        content.multi_signature.digest: fx.COSIGN_SIMPLESIGNING,
    }
    for digest, kind in expected.items():
        node = _parsed(content.by_digest(digest))
        assert is_artifact(node), digest
        assert artifact_type(node) == kind
    for index in content.fallback_indexes.values():  # an index of artifacts is no artifact
        assert not is_artifact(_parsed(index))


def test_listing_and_filter_types_follow_the_spec_and_cosign(content: fx.ArtifactSet) -> None:
    signature = _parsed(content.image_signature)
    # what a referrers list says of a manifest without artifactType: its config media type
    assert listing_type(signature) == fx.OCI_CONFIG
    assert listing_type(_parsed(content.sbom)) == fx.SPDX_JSON
    assert listing_type(_parsed(content.multi)) is None
    # what --referrers-type matches for a cosign tag attachment: cosign's OCI 1.1 type
    assert filter_type(signature, ".sig") == fx.COSIGN_SIGNATURE_ARTIFACT
    assert cosign_artifact_type(".sbom") == "application/vnd.dev.cosign.artifact.sbom.v1+json"
    assert filter_type(_parsed(content.sbom_signature), "") == fx.COSIGN_SIGNATURE_ARTIFACT


def test_artifact_fields_are_parsed_and_checked(content: fx.ArtifactSet) -> None:
    sbom = _parsed(content.sbom)
    assert sbom.artifact_type == fx.SPDX_JSON
    assert sbom.subject is not None
    assert str(sbom.subject.digest) == content.image.digest
    assert sbom.subject.size == content.image.size
    doc = json.loads(content.sbom.raw)
    doc["artifactType"] = 7
    with pytest.raises(ManifestInvalid, match="artifactType must be a string"):
        parse_manifest(json.dumps(doc).encode())
    doc["artifactType"] = fx.SPDX_JSON
    doc["subject"] = "sha256:nope"
    with pytest.raises(ManifestInvalid, match="subject"):
        parse_manifest(json.dumps(doc).encode())


# -- the tag schema ------------------------------------------------------------------------


def test_digest_tags_and_cosign_tags(content: fx.ArtifactSet) -> None:
    digest = Digest.parse(content.image.digest)
    assert digest_tag(digest) == fx.fallback_tag(content.image.digest)
    assert cosign_tag(digest, ".sig") == fx.cosign_tag(content.image.digest, ".sig")
    assert parse_digest_tag(digest_tag(digest)) == (digest, "")
    for suffix in (".sig", ".att", ".sbom"):
        assert parse_digest_tag(cosign_tag(digest, suffix)) == (digest, suffix)
    long = Digest("sha512", "a" * 128)
    assert digest_tag(long) == "sha512-" + "a" * 64  # truncated, as the spec says
    assert parse_digest_tag(digest_tag(long)) is None
    for other in ("latest", "1.0", f"sha256-{digest.hex}.prov", "sha256-abc", "md5-" + "a" * 32):
        assert parse_digest_tag(other) is None, other


def test_what_a_record_is_attached_to(content: fx.ArtifactSet) -> None:
    image = Digest.parse(content.image.digest)
    assert attachment_of(_record(content.sbom)) == Attachment(image, "referrer")
    signature = _record(content.image_signature, fx.cosign_tag(content.image.digest, ".sig"))
    assert attachment_of(signature) == Attachment(image, ".sig")
    assert attachment_of(signature).suffix == ".sig"  # type: ignore[union-attr]
    assert attachment_of(_record(content.image, "1")) is None
    assert attachment_of(_record(content.chart, "0.1.0")) is None
    # the fallback tag holds an index of referrers: not an attachment itself
    fallback = content.fallback_indexes[content.image.digest]
    assert attachment_of(_record(fallback, fx.fallback_tag(content.image.digest))) is None


def test_referrer_subjects_are_what_the_registry_has(content: fx.ArtifactSet) -> None:
    multi = _parsed(content.multi)
    children = {Digest.parse(m.digest): _parsed(m) for m in (content.multi_amd64,)}
    whole = ImageRecord(None, multi, children)
    assert list(referrer_subjects(whole)) == [multi.digest, *children]
    # a subset index sneaker wrote is not the registry's: only its children have referrers
    rewritten = ImageRecord(None, multi, children, rewritten=True)
    assert list(referrer_subjects(rewritten)) == list(children)


# -- referrers lists -----------------------------------------------------------------------


def test_referrers_index_lists_what_the_spec_asks(content: fx.ArtifactSet) -> None:
    descriptors = [referrer_descriptor(_parsed(m)) for m in (content.sbom, content.attestation)]
    # the fixture wrote its fallback index by the spec: the same entries, in the same order
    expected = json.loads(content.fallback_indexes[content.image.digest].raw)
    assert json.loads(referrers_index(descriptors)) == expected
    empty = json.loads(referrers_index([]))
    assert empty == {"schemaVersion": 2, "mediaType": fx.OCI_INDEX, "manifests": []}


def test_merging_into_a_fallback_index_keeps_what_is_there(content: fx.ArtifactSet) -> None:
    sbom, attestation = (
        referrer_descriptor(_parsed(m)) for m in (content.sbom, content.attestation)
    )
    other = Descriptor(
        "application/vnd.example+json", Digest("sha256", "e" * 64), 9, annotations={"k": "v"}
    )
    existing = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": fx.OCI_INDEX,
            "manifests": [{**other.to_json(), "x-unknown": True}],
            "annotations": {"kept": "yes"},
        }
    ).encode()
    merged = merge_referrers_index(existing, [sbom, attestation, sbom])
    assert merged is not None
    doc = json.loads(merged)
    assert doc["annotations"] == {"kept": "yes"}
    assert doc["manifests"][0] == {**other.to_json(), "x-unknown": True}
    assert [m["digest"] for m in doc["manifests"][1:]] == [
        str(sbom.digest),
        str(attestation.digest),
    ]
    assert merge_referrers_index(merged, [attestation]) is None  # nothing new: nothing to put
    fresh = merge_referrers_index(None, [sbom])
    assert fresh == referrers_index([sbom])
    assert merge_referrers_index(None, []) is None


# -- what each verb does with them ---------------------------------------------------------


def test_config_checks_pass_over_artifacts(content: fx.ArtifactSet) -> None:
    """The issue's first symptom: a Helm chart failed with 'image config lists 0 layer diff IDs'."""

    def read_config(manifest: Manifest) -> bytes:
        raise AssertionError(f"an artifact's config was read as an image's: {manifest.digest}")

    for manifest in (content.chart, content.sbom, content.image_signature, content.attestation):
        record = _record(manifest)
        request = PlatformRequest(platforms=(), all=False)
        assert check_record_configs(record, read_config, "x", request) is None
        assert image_config_digests([record]) == set()


def test_a_docker_archive_refuses_an_artifact(content: fx.ArtifactSet) -> None:
    check_docker_records([_record(content.image, "1")])
    with pytest.raises(UsageError) as refused:
        check_docker_records([_record(content.image, "1"), _record(content.chart, "0.1.0")])
    assert "charts/demo:0.1.0 is an OCI artifact (application/vnd.cncf.helm.config.v1+json)" in (
        refused.value.message
    )
    assert refused.value.hint is not None
    assert "--format oci" in refused.value.hint


def test_verify_checks_artifacts_by_digest_and_size(
    content: fx.ArtifactSet, layout: ArchiveSource, tmp_path: Path
) -> None:
    # deep: every image layer's diff ID; the JSON "layers" of signatures are not decompressed
    assert verify(layout, deep=True) == []
    damaged = tmp_path / "damaged"
    shutil.copytree(content.layout, damaged)
    chart_layer = content.chart.blobs[1]
    # the chart's layer swapped for other bytes of the same size
    (damaged / "blobs" / "sha256" / chart_layer.digest.split(":", 1)[1]).write_bytes(
        b"x" * chart_layer.size
    )
    with open_archive(damaged) as source:
        problems = verify(source)
    assert len(problems) == 1
    assert f"layer {chart_layer.digest}: digest mismatch" in problems[0]


def test_inspect_shows_the_artifact_type(content: fx.ArtifactSet, layout: ArchiveSource) -> None:
    reports = {r.digest: r for r in report_source(layout)}
    chart = reports[content.chart.digest]
    assert chart.artifact_type == fx.HELM_CONFIG
    assert chart.to_json()["artifactType"] == fx.HELM_CONFIG
    assert chart.to_json()["platforms"] == []
    (manifest,) = chart.manifests
    assert manifest.artifact_type == fx.HELM_CONFIG
    assert manifest.created is None
    sbom = reports[content.sbom.digest].to_json()
    assert (sbom["artifactType"], sbom["subject"], sbom["attachment"]) == (
        fx.SPDX_JSON,
        content.image.digest,
        "referrer",
    )
    image = reports[content.image.digest].to_json()
    assert (image["artifactType"], image["subject"]) == (None, None)
    assert image["platforms"] == ["linux/amd64"]


def test_unpack_refuses_an_artifact(
    content: fx.ArtifactSet, layout: ArchiveSource, tmp_path: Path
) -> None:
    for manifest in (content.chart, content.image_signature):
        with pytest.raises(UnsupportedError) as refused:
            unpack(layout, tmp_path / "rootfs", image=manifest.digest)
        assert "is an OCI artifact" in refused.value.message
        assert "no filesystem to unpack" in refused.value.message
        assert not (tmp_path / "rootfs").exists()
    done = unpack(layout, tmp_path / "rootfs", image=content.image.digest)
    assert str(done.manifest) == content.image.digest


def test_unpack_picks_the_image_among_its_artifacts(
    content: fx.ArtifactSet, tmp_path: Path
) -> None:
    """An archive of an image, its signature and SBOM: unpack without --image takes the image."""
    records = [
        _record(content.image, "1"),
        _record(content.image_signature, fx.cosign_tag(content.image.digest, ".sig")),
        _record(content.sbom),
    ]
    with open_archive(content.layout) as blobs:

        class Source:
            def __init__(self) -> None:
                self.records = records
                self.names = [str(r.reference) for r in records]
                self.has_blob = blobs.has_blob
                self.blob_size = blobs.blob_size
                self.open_blob = blobs.open_blob
                self.blob_path = blobs.blob_path

        done = unpack(Source(), tmp_path / "rootfs")  # type: ignore[arg-type]
    assert str(done.manifest) == content.image.digest

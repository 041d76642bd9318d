"""Smoke tests of the ``artifacts`` fixture (tests/fixtures/artifacts.py), with real peers only.

What the fixture says it seeded is checked against the registry with ``skopeo
inspect --raw`` and plain HTTP, never with sneaker: every manifest, tag and
blob, with the exact digests; the fallback referrers indexes; the Helm chart;
the Hauler manifest. Under CI=true a missing tool fails these tests.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.artifacts import (
    COSIGN_SIGNATURE_ANNOTATION,
    COSIGN_SIMPLESIGNING,
    HAULER_API_VERSION,
    HELM_CHART,
    HELM_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    HaulerManifest,
    Manifest,
    SeededArtifacts,
    build_artifacts,
    cosign_tag,
    fallback_tag,
    write_hauler_manifest,
)
from tests.fixtures.seeding import inspect_args
from tests.fixtures.tools import skopeo
from tests.helpers import http_request

pytestmark = pytest.mark.integration


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _get(
    artifacts: SeededArtifacts, path: str, *, accept: str | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept": accept} if accept else {}
    return http_request(f"{artifacts.registry.url}{path}", headers=headers, method=method)


def _raw(artifacts: SeededArtifacts, ref: str) -> bytes:
    """The manifest bytes behind ``ref`` (``HOST/REPO:TAG`` or ``@DIGEST``), read by skopeo."""
    out = skopeo("inspect", "--raw", *inspect_args(artifacts.registry), f"docker://{ref}").stdout
    return out.encode()


def _blob(artifacts: SeededArtifacts, repository: str, digest: str) -> bytes:
    status, _, body = _get(artifacts, f"/v2/{repository}/blobs/{digest}")
    assert status == 200, (repository, digest)
    assert _sha256(body) == digest
    return body


def _stored(artifacts: SeededArtifacts, manifest: Manifest) -> dict[str, Any]:
    status, _, body = _get(
        artifacts,
        f"/v2/{manifest.repository}/manifests/{manifest.digest}",
        accept=manifest.media_type,
    )
    assert status == 200, manifest
    stored: dict[str, Any] = json.loads(body)
    return stored


def test_every_manifest_is_stored_byte_for_byte(artifacts: SeededArtifacts) -> None:
    assert len({m.digest for m in artifacts.manifests}) == len(artifacts.manifests) == 16
    for manifest in artifacts.manifests:
        status, headers, body = _get(
            artifacts,
            f"/v2/{manifest.repository}/manifests/{manifest.digest}",
            accept=manifest.media_type,
        )
        assert status == 200, manifest
        assert headers["docker-content-digest"] == manifest.digest
        assert headers["content-type"] == manifest.media_type
        assert body == manifest.raw
        assert _sha256(body) == manifest.digest


def test_every_tag_and_untagged_manifest_resolves_with_skopeo(artifacts: SeededArtifacts) -> None:
    assert artifacts.repositories == ("artifacts/app", "artifacts/multi", "charts/demo")
    for repository in artifacts.repositories:
        status, _, body = _get(artifacts, f"/v2/{repository}/tags/list")
        assert status == 200
        expected = artifacts.tags(repository)
        assert sorted(json.loads(body)["tags"]) == sorted(expected)
        for tag, digest in expected.items():
            assert (
                _sha256(_raw(artifacts, f"{artifacts.registry.host}/{repository}:{tag}")) == digest
            )
    untagged = [m for m in artifacts.manifests if not m.tags]
    # The OCI 1.1 referrers and the multi-arch children are reachable by digest only.
    assert {m.digest for m in untagged} == {
        artifacts.sbom.digest,
        artifacts.attestation.digest,
        artifacts.sbom_signature.digest,
        artifacts.child_sbom.digest,
        artifacts.multi_amd64.digest,
        artifacts.multi_arm64.digest,
    }
    for manifest in untagged:
        assert _raw(artifacts, artifacts.ref(manifest)) == manifest.raw


def test_every_blob_is_stored(artifacts: SeededArtifacts) -> None:
    for manifest in artifacts.manifests:
        if manifest.is_index:
            assert manifest.blobs == ()
            continue
        described = [manifest.doc["config"], *manifest.doc["layers"]]
        assert [(d["digest"], d["size"], d["mediaType"]) for d in described] == [
            (b.digest, b.size, b.media_type) for b in manifest.blobs
        ]
        for blob in manifest.blobs:
            assert len(_blob(artifacts, manifest.repository, blob.digest)) == blob.size


def test_fallback_tags_list_the_referrers(artifacts: SeededArtifacts) -> None:
    image, sbom, child = artifacts.image, artifacts.sbom, artifacts.multi_amd64
    assert artifacts.referrers == {
        image.digest: {sbom.digest, artifacts.attestation.digest},
        sbom.digest: {artifacts.sbom_signature.digest},
        child.digest: {artifacts.child_sbom.digest},
    }
    assert set(artifacts.fallback_indexes) == set(artifacts.referrers)
    for subject, expected in artifacts.referrers.items():
        repository = artifacts.by_digest(subject).repository
        raw = _raw(artifacts, f"{artifacts.registry.host}/{repository}:{fallback_tag(subject)}")
        assert raw == artifacts.fallback_indexes[subject].raw
        index = json.loads(raw)
        assert index["mediaType"] == OCI_INDEX
        assert {entry["digest"] for entry in index["manifests"]} == expected
        for entry in index["manifests"]:
            # What the spec asks of each entry, checked against the stored referrer.
            stored = _stored(artifacts, artifacts.by_digest(entry["digest"]))
            assert stored["subject"]["digest"] == subject
            artifact_type = stored.get("artifactType", stored["config"]["mediaType"])
            assert entry["artifactType"] == artifact_type
            assert entry.get("annotations", {}) == stored.get("annotations", {})
            assert entry["size"] == artifacts.by_digest(entry["digest"]).size


def test_subjects_are_the_stored_manifests(artifacts: SeededArtifacts) -> None:
    for manifest in artifacts.manifests:
        if manifest.subject is None:
            continue
        subject = artifacts.by_digest(manifest.subject)
        assert subject.repository == manifest.repository
        assert manifest.doc["subject"] == subject.descriptor()
        assert _stored(artifacts, subject) == subject.doc
        if manifest.doc["config"]["mediaType"] == OCI_EMPTY:
            assert _blob(artifacts, manifest.repository, manifest.doc["config"]["digest"]) == b"{}"


def test_registry_has_no_referrers_api(artifacts: SeededArtifacts) -> None:
    """Why the fallback tags exist: distribution 2.8 answers the referrers endpoint with 404
    and does not say with ``OCI-Subject`` that it processed a pushed ``subject``."""
    image = artifacts.image
    status, _, _ = _get(artifacts, f"/v2/{image.repository}/referrers/{image.digest}")
    assert status == 404
    sbom = artifacts.sbom
    status, headers, _ = http_request(
        f"{artifacts.registry.url}/v2/{sbom.repository}/manifests/{sbom.digest}",
        data=sbom.raw,
        headers={"Content-Type": sbom.media_type},
        method="PUT",
    )
    assert status == 201
    assert headers["docker-content-digest"] == sbom.digest
    assert "oci-subject" not in headers


def test_cosign_tags(artifacts: SeededArtifacts) -> None:
    image, multi = artifacts.image, artifacts.multi
    assert artifacts.cosign == {
        image.digest: {
            ".sig": artifacts.image_signature.digest,
            ".att": artifacts.image_attestation.digest,
            ".sbom": artifacts.image_sbom.digest,
        },
        multi.digest: {".sig": artifacts.multi_signature.digest},
    }
    for subject, signature in (
        (image, artifacts.image_signature),
        (multi, artifacts.multi_signature),
    ):
        tag = cosign_tag(subject.digest, ".sig")
        assert tag == "sha256-" + subject.digest.split(":", 1)[1] + ".sig"
        raw = _raw(artifacts, f"{artifacts.registry.host}/{subject.repository}:{tag}")
        assert raw == signature.raw
        (layer,) = json.loads(raw)["layers"]
        assert layer["mediaType"] == COSIGN_SIMPLESIGNING
        assert base64.b64decode(layer["annotations"][COSIGN_SIGNATURE_ANNOTATION], validate=True)
        payload = json.loads(_blob(artifacts, subject.repository, layer["digest"]))
        assert payload["critical"]["image"]["docker-manifest-digest"] == subject.digest
        assert payload["critical"]["type"] == "cosign container image signature"


def test_helm_chart(artifacts: SeededArtifacts) -> None:
    chart = artifacts.chart
    ref = f"{artifacts.registry.host}/charts/demo:0.1.0"
    assert artifacts.ref(chart) == ref
    raw = _raw(artifacts, ref)
    assert _sha256(raw) == chart.digest
    doc = json.loads(raw)
    assert doc["config"]["mediaType"] == HELM_CONFIG
    assert [layer["mediaType"] for layer in doc["layers"]] == [HELM_CHART]
    config = json.loads(_blob(artifacts, chart.repository, doc["config"]["digest"]))
    archive = _blob(artifacts, chart.repository, doc["layers"][0]["digest"])
    assert archive == artifacts.chart_archive
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == [
            "demo/Chart.yaml",
            "demo/templates/configmap.yaml",
            "demo/values.yaml",
        ]
        chart_yaml = tar.extractfile("demo/Chart.yaml")
        assert chart_yaml is not None
        metadata = yaml.safe_load(chart_yaml.read())
    assert config == metadata
    assert (config["name"], config["version"]) == (artifacts.chart_name, artifacts.chart_version)
    # skopeo carries the artifact, but refuses to read it as an image.
    refused = skopeo("inspect", *inspect_args(artifacts.registry), f"docker://{ref}", check=False)
    assert refused.returncode != 0
    assert "unsupported image-specific operation on artifact" in refused.stderr


def test_multiarch_child_has_a_referrer(artifacts: SeededArtifacts) -> None:
    index = _stored(artifacts, artifacts.multi)
    assert [(m["digest"], m["platform"]["architecture"]) for m in index["manifests"]] == [
        (artifacts.multi_amd64.digest, "amd64"),
        (artifacts.multi_arm64.digest, "arm64"),
    ]
    assert artifacts.multi.children == (artifacts.multi_amd64.digest, artifacts.multi_arm64.digest)
    config = json.loads(
        _blob(artifacts, artifacts.multi.repository, artifacts.multi_arm64.doc["config"]["digest"])
    )
    assert (config["os"], config["architecture"]) == ("linux", "arm64")
    assert artifacts.child_sbom.subject == artifacts.multi_amd64.digest
    assert artifacts.referrers.get(artifacts.multi.digest) is None  # the index has none itself


def test_closure_follows_referrers_recursively(artifacts: SeededArtifacts) -> None:
    a = artifacts
    assert a.closure(a.image.digest) == {
        a.image.digest,
        a.image_signature.digest,
        a.image_attestation.digest,
        a.image_sbom.digest,
        a.sbom.digest,
        a.attestation.digest,
        a.sbom_signature.digest,  # a referrer of a referrer
    }
    assert a.closure(a.multi.digest) == {
        a.multi.digest,
        a.multi_amd64.digest,
        a.multi_arm64.digest,
        a.multi_signature.digest,
        a.child_sbom.digest,  # a referrer of a platform child
    }
    assert a.closure(a.chart.digest) == {a.chart.digest}


def test_hauler_manifest_names_seeded_content(
    artifacts: SeededArtifacts, hauler_manifest: HaulerManifest, tmp_path: Path
) -> None:
    documents = list(yaml.safe_load_all(hauler_manifest.path.read_text()))
    assert [(d["apiVersion"], d["kind"]) for d in documents] == [
        (HAULER_API_VERSION, "Images"),
        (HAULER_API_VERSION, "Charts"),
    ]
    images = documents[0]["spec"]["images"]
    assert tuple(entry["name"] for entry in images) == hauler_manifest.images
    assert [_sha256(_raw(artifacts, name)) for name in hauler_manifest.images] == [
        artifacts.image.digest,
        artifacts.multi.digest,
    ]
    (chart,) = documents[1]["spec"]["charts"]
    assert chart == {
        "name": "demo",
        "repoURL": f"oci://{artifacts.registry.host}/charts",
        "version": "0.1.0",
    }
    (entry,) = hauler_manifest.charts
    assert entry.oci_ref is not None
    assert _sha256(_raw(artifacts, entry.oci_ref)) == artifacts.chart.digest

    with_http = write_hauler_manifest(tmp_path / "more.yaml", artifacts, http_chart=True)
    assert [c.oci_ref is None for c in with_http.charts] == [False, True]


def test_content_is_deterministic(artifacts: SeededArtifacts, tmp_path: Path) -> None:
    again = build_artifacts(tmp_path)
    assert [m.digest for m in again.manifests] == [m.digest for m in artifacts.manifests]
    assert again.chart_archive == artifacts.chart_archive
    # No byte names the registry (its port changes from run to run).
    for manifest in again.manifests:
        assert artifacts.registry.host.encode() not in manifest.raw

"""``sneaker serve`` of artifacts and referrers, read by skopeo and plain HTTP.

The served layout is the ``artifacts`` fixture's content, written by hand (never by
sneaker), with an ``index.json`` naming each image, cosign attachment and OCI 1.1
referrer as a pull names them (the fixture's fallback indexes are left out: serve
makes its own). What serve answers is checked against what the fixture wrote by
the spec: the referrers endpoint lists exactly the entries of the fixture's fallback
indexes, and the fallback tags and cosign tags resolve in skopeo.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from sneaker.verbs.serve import RegistryServer, serve
from tests.fixtures.artifacts import (
    IN_TOTO,
    OCI_INDEX,
    SeededArtifacts,
    fallback_tag,
)
from tests.fixtures.tools import skopeo
from tests.helpers import http_request

pytestmark = pytest.mark.integration

NAME = "registry.example"


@pytest.fixture
def server(artifacts: SeededArtifacts, tmp_path: Path) -> Iterator[RegistryServer]:
    layout = tmp_path / "layout"
    shutil.copytree(artifacts.layout, layout)
    entries: list[dict[str, Any]] = []
    fallbacks = {m.digest for m in artifacts.fallback_indexes.values()}
    for manifest in artifacts.manifests:
        if manifest.digest in fallbacks:
            continue
        for tag in manifest.tags:
            names = {
                "io.containerd.image.name": f"{NAME}/{manifest.repository}:{tag}",
                "org.opencontainers.image.ref.name": tag,
            }
            entries.append({**manifest.descriptor(), "annotations": names})
        if not manifest.tags and manifest.subject is not None:
            name = f"{NAME}/{manifest.repository}@{manifest.digest}"
            entries.append(
                {**manifest.descriptor(), "annotations": {"io.containerd.image.name": name}}
            )
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    (layout / "index.json").write_text(json.dumps(index))
    with serve([layout], "127.0.0.1:0") as running:
        yield running


def _get(server: RegistryServer, path: str) -> tuple[int, dict[str, str], bytes]:
    return http_request(f"{server.url}{path}")


def _raw(server: RegistryServer, ref: str) -> bytes:
    return skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{server.host}/{ref}"
    ).stdout.encode()


def _sorted(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda entry: entry["digest"])


def test_the_referrers_endpoint_lists_what_the_spec_says(
    artifacts: SeededArtifacts, server: RegistryServer
) -> None:
    a = artifacts
    for subject, index in a.fallback_indexes.items():
        repository = a.by_digest(subject).repository
        status, headers, body = _get(server, f"/v2/{repository}/referrers/{subject}")
        assert status == 200
        assert headers["content-type"] == OCI_INDEX
        answer = json.loads(body)
        assert answer["mediaType"] == OCI_INDEX
        assert {m["digest"] for m in answer["manifests"]} == a.referrers[subject]
        # each entry as the fixture's spec-following client listed it
        assert _sorted(answer["manifests"]) == _sorted(index.doc["manifests"])
        assert "oci-filters-applied" not in headers
    status, _, body = _get(server, f"/v2/charts/demo/referrers/{a.chart.digest}")
    assert (status, json.loads(body)["manifests"]) == (200, [])
    query = urlencode({"artifactType": IN_TOTO})
    status, headers, body = _get(server, f"/v2/artifacts/app/referrers/{a.image.digest}?{query}")
    assert [m["digest"] for m in json.loads(body)["manifests"]] == [a.attestation.digest]
    assert headers["oci-filters-applied"] == "artifactType"


def test_fallback_tags_cosign_tags_and_the_chart_resolve_in_skopeo(
    artifacts: SeededArtifacts, server: RegistryServer
) -> None:
    a = artifacts
    for repository in a.repositories:
        status, _, body = _get(server, f"/v2/{repository}/tags/list")
        assert status == 200
        # the same tags as the registry the fixture seeded: images', cosign's, fallback tags
        assert sorted(json.loads(body)["tags"]) == sorted(a.tags(repository))
    for subject, index in a.fallback_indexes.items():
        repository = a.by_digest(subject).repository
        listed = json.loads(_raw(server, f"{repository}:{fallback_tag(subject)}"))
        assert _sorted(listed["manifests"]) == _sorted(index.doc["manifests"])
    for manifests in a.cosign.values():
        for suffix, digest in manifests.items():
            attachment = a.by_digest(digest)
            (tag,) = attachment.tags
            assert tag.endswith(suffix)
            assert _raw(server, f"{attachment.repository}:{tag}") == attachment.raw
    assert _raw(server, "charts/demo:0.1.0") == a.chart.raw
    for referrer in (a.sbom, a.attestation, a.sbom_signature, a.child_sbom):
        assert _raw(server, f"{referrer.repository}@{referrer.digest}") == referrer.raw
        for blob in referrer.blobs:
            status, _, body = _get(server, f"/v2/{referrer.repository}/blobs/{blob.digest}")
            assert (status, len(body)) == (200, blob.size)

"""The referrers API on the wire, on a registry in memory: the list and its pages, the filter
the registry says it applied, a registry without the API (distribution 2.8's plain-text 404),
``OCI-Subject`` on a manifest PUT, and mirrors asked before the origin.
"""

from __future__ import annotations

import json
from typing import Any

from sneaker.image.digest import Digest
from sneaker.registry.client import Referrers
from tests.fixtures.memory_registry import MemoryRegistry
from tests.unit.test_registry_flows import FIRST, ORIGIN, SECOND, client_of, mirrored

REPO = "team/app"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
SBOM = "application/spdx+json"
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"


def _raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def artifact(
    registry: MemoryRegistry,
    subject: bytes,
    kind: str,
    note: str,
    *,
    repository: str = REPO,
    annotations: dict[str, str] | None = None,
) -> tuple[str, bytes]:
    """Store an OCI 1.1 artifact referring to manifest ``subject``; (its digest, its bytes)."""
    config = registry.put_blob(repository, b"{}")
    layer = registry.put_blob(repository, note.encode())
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": kind,
        "config": {"mediaType": EMPTY, "digest": config, "size": 2},
        "layers": [{"mediaType": kind, "digest": layer, "size": len(note)}],
        "subject": {
            "mediaType": OCI_MANIFEST,
            "digest": str(Digest.of_bytes(subject)),
            "size": len(subject),
        },
    }
    if annotations:
        doc["annotations"] = annotations
    raw = _raw(doc)
    return registry.put_manifest(repository, registry_digest(raw), raw, OCI_MANIFEST), raw


def registry_digest(raw: bytes) -> str:
    return str(Digest.of_bytes(raw))


def image(registry: MemoryRegistry, tag: str = "1", repository: str = REPO) -> bytes:
    data = b'{"os":"linux","architecture":"%s","rootfs":{"diff_ids":[]}}' % tag.encode()
    config = registry.put_blob(repository, data)
    raw = _raw(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config, "size": len(data)},
            "layers": [],
        }
    )
    registry.put_manifest(repository, tag, raw, OCI_MANIFEST)
    return raw


def test_referrers_are_listed_with_their_types_and_annotations() -> None:
    registry = MemoryRegistry(referrers_api=True)
    subject = image(registry)
    sbom, _ = artifact(registry, subject, SBOM, "sbom", annotations={"k": "v"})
    signature, _ = artifact(registry, subject, SIGNATURE, "sig")
    artifact(registry, image(registry, "2"), SBOM, "someone else's")
    with client_of(registry) as client:
        found = client.referrers(REPO, Digest.of_bytes(subject))
    assert found is not None
    assert {str(d.digest): (d.artifact_type, dict(d.annotations)) for d in found.manifests} == {
        sbom: (SBOM, {"k": "v"}),
        signature: (SIGNATURE, {}),
    }
    assert found.filtered is False
    (request,) = registry.requests
    assert request.path == f"/v2/{REPO}/referrers/{Digest.of_bytes(subject)}"
    assert request.headers["Accept"] == "application/vnd.oci.image.index.v1+json"


def test_the_filter_the_registry_applied_and_every_page() -> None:
    registry = MemoryRegistry(referrers_api=True, referrers_page=1)
    subject = image(registry)
    made = [artifact(registry, subject, SBOM, f"sbom {n}")[0] for n in range(3)]
    artifact(registry, subject, SIGNATURE, "sig")
    with client_of(registry) as client:
        found = client.referrers(REPO, Digest.of_bytes(subject), SBOM)
    assert found is not None
    assert found.filtered is True
    assert sorted(str(d.digest) for d in found.manifests) == sorted(made)
    assert [r.query for r in registry.requests] == [
        {"artifactType": SBOM},
        {"page": "1", "artifactType": SBOM},
        {"page": "2", "artifactType": SBOM},
    ]


def test_a_registry_without_the_api_answers_none() -> None:
    registry = MemoryRegistry()  # distribution 2.8: 404, text/plain, "404 page not found"
    subject = image(registry)
    with client_of(registry) as client:
        assert client.referrers(REPO, Digest.of_bytes(subject)) is None


def test_an_answer_that_is_no_index_means_no_api() -> None:
    class Portal(MemoryRegistry):
        """A registry (or a proxy in front of one) answering unknown paths with a web page."""

        def _referrers(self, *args: Any) -> tuple[int, dict[str, str], bytes]:
            return 200, {"Content-Type": "text/html"}, b"<html>sign in</html>"

    registry = Portal(referrers_api=True)
    with client_of(registry) as client:
        assert client.referrers(REPO, Digest.of_bytes(image(registry))) is None


def test_the_put_answer_says_whether_the_subject_was_processed() -> None:
    for api in (True, False):
        source = MemoryRegistry()
        subject = image(source)
        digest, raw = artifact(source, subject, SBOM, "sbom")
        target = MemoryRegistry(referrers_api=api)
        with client_of(target) as client:
            stored = client.store_manifest(REPO, digest, raw, OCI_MANIFEST)
            plain = client.store_manifest(REPO, "1", subject, OCI_MANIFEST)
        assert str(stored.digest) == digest
        assert stored.subject == (Digest.of_bytes(subject) if api else None)
        assert plain.subject is None
        assert target.manifests[(REPO, digest)] == (raw, OCI_MANIFEST)


def test_mirrors_without_the_api_give_way_to_the_next_endpoint() -> None:
    hosts = {h: MemoryRegistry(h) for h in (FIRST, SECOND, ORIGIN)}
    hosts[SECOND].referrers_api = True
    subject = image(hosts[SECOND])
    sbom, _ = artifact(hosts[SECOND], subject, SBOM, "sbom")
    with mirrored(hosts) as client:
        found = client.referrers(REPO, Digest.of_bytes(subject))
    assert found == Referrers(found.manifests if found else (), False)
    assert [str(d.digest) for d in found.manifests] == [sbom]  # type: ignore[union-attr]
    assert [len(hosts[h].calls()) for h in (FIRST, SECOND, ORIGIN)] == [1, 1, 0]
    # no endpoint with the API: the origin's "none" is the answer
    hosts[SECOND].referrers_api = False
    with mirrored(hosts) as client:
        assert client.referrers(REPO, Digest.of_bytes(subject)) is None
    assert len(hosts[ORIGIN].calls()) == 1

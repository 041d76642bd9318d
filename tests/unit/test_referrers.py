"""Finding referrers (the API, the fallback tag, cosign's tags; recursion and bounds) and
pushing them back (the fallback tag kept by the client, or the registry's API), on
registries held in memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sneaker.archive import write_oci_layout
from sneaker.errors import UnsupportedError, UsageError
from sneaker.image.digest import Digest
from sneaker.image.model import Manifest, parse_manifest
from sneaker.image.records import ImageRecord
from sneaker.image.reference import parse_reference
from sneaker.registry.client import RegistryClient
from sneaker.transfer.referrers import ReferrerFinder, ReferrerPolicy
from sneaker.verbs.push import push
from sneaker.verbs.pushplan import plan_targets
from tests.fixtures.memory_registry import MemoryRegistry
from tests.unit.test_archive_common import Blobs
from tests.unit.test_referrers_client import (
    OCI_MANIFEST,
    REPO,
    SBOM,
    SIGNATURE,
    artifact,
    client_of,
    image,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


def cosign_signature(registry: MemoryRegistry, subject: bytes, note: str = "sig") -> str:
    """A cosign-style signature (image config, simplesigning layer) under sha256-<hex>.sig."""
    config = b'{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]}}'
    config_digest = registry.put_blob(REPO, config)
    layer = registry.put_blob(REPO, note.encode())
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [{"mediaType": SIMPLESIGNING, "digest": layer, "size": len(note)}],
        }
    ).encode()
    tag = "sha256-" + Digest.of_bytes(subject).hex + ".sig"
    return registry.put_manifest(REPO, tag, raw, OCI_MANIFEST)


def fallback_index(registry: MemoryRegistry, subject: bytes, referrers: list[bytes]) -> None:
    """What a client keeps under ``sha256-<hex>`` on a registry without the API (by hand)."""
    entries = []
    for raw in referrers:
        doc = json.loads(raw)
        entry = {"mediaType": OCI_MANIFEST, "digest": str(Digest.of_bytes(raw)), "size": len(raw)}
        entry["artifactType"] = doc.get("artifactType") or doc["config"]["mediaType"]
        entries.append(entry)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    tag = "sha256-" + Digest.of_bytes(subject).hex
    registry.put_manifest(REPO, tag, index.encode(), OCI_INDEX)


def content(registry: MemoryRegistry) -> dict[str, Any]:
    """An image with an SBOM (OCI 1.1), a signature of the SBOM, and a cosign .sig tag."""
    subject = image(registry)
    sbom, sbom_raw = artifact(registry, subject, SBOM, "sbom")
    signed, signed_raw = artifact(registry, sbom_raw, SIGNATURE, "sig of sbom")
    cosign = cosign_signature(registry, subject)
    if not registry.referrers_api:
        fallback_index(registry, subject, [sbom_raw])
        fallback_index(registry, sbom_raw, [signed_raw])
    return {"image": subject, "sbom": sbom, "signed": signed, "cosign": cosign}


def find(registry: MemoryRegistry, subject: bytes, **policy: Any) -> Any:
    finder = ReferrerFinder(ReferrerPolicy(**policy))
    ref = parse_reference(f"{registry.host}/{REPO}:1")
    with client_of(registry) as client:
        return finder.find(client, ref, [Digest.of_bytes(subject)])


@pytest.mark.parametrize("api", [True, False], ids=["api", "fallback-tag"])
def test_referrers_and_their_referrers_and_cosign_tags(api: bool) -> None:
    registry = MemoryRegistry(referrers_api=api)
    made = content(registry)
    search = find(registry, made["image"])
    found = {str(f.digest): (f.kind, f.via, f.depth) for f in search.found}
    via = "api" if api else "tag"
    assert found == {
        made["sbom"]: ("referrer", via, 1),
        made["cosign"]: (".sig", "cosign", 1),
        made["signed"]: ("referrer", via, 2),  # a signature of the SBOM
    }
    assert search.warnings == []
    cosign = next(f for f in search.found if f.kind == ".sig")
    assert cosign.ref.tag == "sha256-" + Digest.of_bytes(made["image"]).hex + ".sig"
    sbom = next(f for f in search.found if str(f.digest) == made["sbom"])
    assert (sbom.ref.tag, str(sbom.ref.digest)) == (None, made["sbom"])
    assert isinstance(sbom.resolved.record.root, Manifest)
    # the API is asked once per subject while it answers; without it, once per repository
    asked = [r for r in registry.requests if "/referrers/" in r.path]
    assert len(asked) == (4 if api else 1)
    # the tag list is read once, and only the tags it lists are fetched
    assert len([r for r in registry.requests if r.path.endswith("/tags/list")]) == 1
    fetched = {r.path.rsplit("/", 1)[1] for r in registry.requests if "/manifests/" in r.path}
    assert not [tag for tag in fetched if tag.endswith((".att", ".sbom"))]


def test_a_registry_that_will_not_list_tags_is_asked_for_each() -> None:
    registry = MemoryRegistry()
    made = content(registry)
    registry.failing[f"/v2/{REPO}/tags/list"] = 403
    found = {str(f.digest) for f in find(registry, made["image"]).found}
    assert found == {made["sbom"], made["cosign"], made["signed"]}
    fetched = [r.path.rsplit("/", 1)[1] for r in registry.requests if "/manifests/" in r.path]
    hexes = Digest.of_bytes(made["image"]).hex
    assert {f"sha256-{hexes}", f"sha256-{hexes}.att", f"sha256-{hexes}.sbom"} <= set(fetched)


def test_types_keep_only_what_is_asked_for() -> None:
    registry = MemoryRegistry(referrers_api=True)
    made = content(registry)
    sboms = find(registry, made["image"], types=frozenset({SBOM}))
    assert [str(f.digest) for f in sboms.found] == [made["sbom"]]
    # the registry was asked to filter, and said it did
    assert all(
        r.query == {"artifactType": SBOM} for r in registry.requests if "/referrers/" in r.path
    )
    # cosign's tag attachments count as cosign's own OCI 1.1 types
    signatures = find(registry, made["image"], types=frozenset({SIGNATURE}))
    assert [str(f.digest) for f in signatures.found] == [made["cosign"]]
    both = find(registry, made["image"], types=frozenset({SBOM, SIGNATURE}))
    assert {str(f.digest) for f in both.found} == {made["sbom"], made["signed"], made["cosign"]}


def test_the_bounds_say_what_they_left_out() -> None:
    registry = MemoryRegistry(referrers_api=True)
    made = content(registry)
    shallow = find(registry, made["image"], depth=1)
    assert {str(f.digest) for f in shallow.found} == {made["sbom"], made["cosign"]}
    assert shallow.warnings == [
        f"{registry.host}/{REPO}:1: 1 referrer more than 1 level below the image left out "
        "(--referrers-depth)"
    ]
    few = find(registry, made["image"], limit=1)
    assert len(few.found) == 1
    assert few.warnings == [
        f"{registry.host}/{REPO}:1: stopped after 1 referrer (--referrers-max); more are listed"
    ]


def test_what_a_fallback_tag_lists_and_the_registry_lost_is_passed_over() -> None:
    registry = MemoryRegistry()
    subject = image(registry)
    kept, kept_raw = artifact(registry, subject, SBOM, "kept")
    lost, lost_raw = artifact(registry, subject, SBOM, "lost")
    fallback_index(registry, subject, [lost_raw, kept_raw])
    del registry.manifests[(REPO, lost)]
    assert [str(f.digest) for f in find(registry, subject).found] == [kept]


def test_a_fallback_tag_holding_no_index_means_none() -> None:
    registry = MemoryRegistry()
    subject = image(registry)
    registry.put_manifest(REPO, "sha256-" + Digest.of_bytes(subject).hex, subject, OCI_MANIFEST)
    assert find(registry, subject).found == []


def test_each_referrer_is_taken_once_in_a_run() -> None:
    registry = MemoryRegistry(referrers_api=True)
    made = content(registry)
    finder = ReferrerFinder()
    ref = parse_reference(f"{registry.host}/{REPO}:1")
    with client_of(registry) as client:
        first = finder.find(client, ref, [Digest.of_bytes(made["image"])])
        again = finder.find(client, ref.with_tag("again"), [Digest.of_bytes(made["image"])])
    assert len(first.found) == 3
    assert again.found == []


# -- pushing them back -----------------------------------------------------------------------


def _archive(source: MemoryRegistry, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """An OCI layout of the image and what the finder found for it (written by sneaker)."""
    made = content(source)
    blobs = Blobs()
    for data in source.blobs[REPO].values():
        blobs.add(data)
    ref = parse_reference(f"{source.host}/{REPO}:1")
    records = [ImageRecord(ref, parse_manifest(made["image"]))]
    records += [f.resolved.record for f in find(source, made["image"]).found]
    out = tmp_path / "layout"
    write_oci_layout(records, blobs, out, as_tar=False)
    return out, made


def _pushed(target: MemoryRegistry, archive: Path) -> Any:
    def clients(registry: str) -> RegistryClient:
        return RegistryClient(registry, transport=target)

    return push(archive, f"{target.host}/copy", client_factory=clients)


def test_push_keeps_the_fallback_tag_for_a_registry_without_the_api(tmp_path: Path) -> None:
    archive, made = _archive(MemoryRegistry("source.example"), tmp_path)
    target = MemoryRegistry("target.example")
    subject = Digest.of_bytes(made["image"])
    # the target lists a referrer of its own already: it is kept, first
    other, other_raw = artifact(
        target, made["image"], SBOM, "the target's own", repository="copy/team/app"
    )
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": other, "size": len(other_raw)}],
        }
    ).encode()
    target.put_manifest("copy/team/app", f"sha256-{subject.hex}", index, OCI_INDEX)
    result = _pushed(target, archive)
    listed = json.loads(target.manifests[("copy/team/app", f"sha256-{subject.hex}")][0])
    assert [m["digest"] for m in listed["manifests"]] == [other, made["sbom"]]
    assert listed["manifests"][1]["artifactType"] == SBOM
    sbom = Digest.parse(made["sbom"])
    listed = json.loads(target.manifests[("copy/team/app", f"sha256-{sbom.hex}")][0])
    assert [m["digest"] for m in listed["manifests"]] == [made["signed"]]
    assert {(t.subject, t.listed, t.added) for t in result.referrers_tags} == {
        (str(subject), 2, 1),
        (made["sbom"], 1, 1),
    }
    assert result.referrers_by_api == 0
    # the referrers and the cosign tag went up byte for byte
    for digest in (made["sbom"], made["signed"], made["cosign"]):
        assert ("copy/team/app", digest) in target.manifests
    assert ("copy/team/app", f"sha256-{subject.hex}.sig") in target.manifests
    # pushed again: nothing new to list, no fallback tag written
    before = len(target.requests)
    assert _pushed(target, archive).referrers_tags == []
    tags = {f"sha256-{subject.hex}", f"sha256-{sbom.hex}"}
    again = [r.path.rsplit("/", 1)[1] for r in target.requests[before:] if r.method == "PUT"]
    assert again
    assert not tags & set(again)


def test_push_to_a_registry_with_the_api_writes_no_fallback_tag(tmp_path: Path) -> None:
    archive, _ = _archive(MemoryRegistry("source.example"), tmp_path)
    target = MemoryRegistry("target.example", referrers_api=True)
    result = _pushed(target, archive)
    assert result.referrers_by_api == 2
    assert result.referrers_tags == []
    assert not [ref for _, ref in target.manifests if ref.startswith("sha256-") and "." not in ref]


def test_push_refuses_to_overwrite_a_fallback_tag_that_is_no_index(tmp_path: Path) -> None:
    archive, made = _archive(MemoryRegistry("source.example"), tmp_path)
    target = MemoryRegistry("target.example")
    tag = "sha256-" + Digest.of_bytes(made["image"]).hex
    target.put_manifest("copy/team/app", tag, made["image"], OCI_MANIFEST)
    with pytest.raises(UnsupportedError, match="not overwriting it"):
        _pushed(target, archive)


def test_an_images_referrers_follow_it_to_a_full_target() -> None:
    blobs = Blobs()
    registry = MemoryRegistry()
    made = content(registry)
    for data in registry.blobs[REPO].values():
        blobs.add(data)
    ref = parse_reference(f"{registry.host}/{REPO}:1")
    records = [ImageRecord(ref, parse_manifest(made["image"]))]
    records += [f.resolved.record for f in find(registry, made["image"]).found]
    targets = plan_targets(records, "other.example/renamed:2")
    assert [str(t) for t in targets] == [
        "other.example/renamed:2",
        f"other.example/renamed@{made['sbom']}",
        "other.example/renamed:sha256-" + Digest.of_bytes(made["image"]).hex + ".sig",
        f"other.example/renamed@{made['signed']}",
    ]
    with pytest.raises(UsageError, match="names one image, and the archive holds 2"):
        plan_targets(
            [*records, ImageRecord(parse_reference("x.example/b:1"), records[0].root)],
            "o.example/r:1",
        )

"""``--referrers``: signatures, attestations and SBOMs carried from one registry to another.

The source is the ``artifacts`` fixture: content written by hand and copied into a
distribution 2.8 by skopeo, OCI 1.1 referrers listed under fallback tags, cosign's
``.sig/.att/.sbom`` tags. sneaker pulls an image with its referrers, pushes the
archive into another distribution 2.8, and what the target holds is read back with
``skopeo inspect --raw`` and plain HTTP, never with sneaker: every referrer and
signature resolves there with the source's digest, and the fallback tags list the
same referrers.

No registry with the referrers API can be installed here: the API side is played by
:mod:`tests.fixtures.referrers_proxy`, a thin stand-in in front of distribution 2.8.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.fixtures import referrers_proxy as proxies
from tests.fixtures.artifacts import (
    IN_TOTO,
    OCI_INDEX,
    SPDX_JSON,
    HaulerManifest,
    SeededArtifacts,
    cosign_tag,
    fallback_tag,
)
from tests.fixtures.registry import MakeRegistry, RegistryInfo
from tests.fixtures.seeding import inspect_args
from tests.fixtures.tools import skopeo
from tests.helpers import http_request, sneaker
from tests.integration import test_plan

pytestmark = pytest.mark.integration

referrers_proxy = proxies.referrers_proxy  # the fixture, made visible to this module
curl_only = test_plan.curl_only
ProxyFactory = Callable[[str], proxies.ReferrersProxy]


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _raw(info: RegistryInfo, ref: str) -> bytes:
    return skopeo("inspect", "--raw", *inspect_args(info), f"docker://{ref}").stdout.encode()


def _get(url: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    return http_request(url, headers={"Accept": accept} if accept else {})


def _tags(info: RegistryInfo, repository: str) -> list[str]:
    status, _, body = _get(f"{info.url}/v2/{repository}/tags/list")
    assert status == 200, repository
    return sorted(json.loads(body)["tags"])


def _layout(archive: Path) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """index.json's entries and every blob of an OCI archive, by digest."""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        blobs = {}
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith("blobs/sha256/"):
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                blobs["sha256:" + member.name.rsplit("/", 1)[1]] = data
    return index["manifests"], blobs


def _listed(raw: bytes) -> list[dict[str, Any]]:
    """A referrers index's entries, in digest order."""
    doc = json.loads(raw)
    assert doc["mediaType"] == OCI_INDEX
    return sorted(doc["manifests"], key=lambda entry: entry["digest"])


def test_pull_carries_referrers_and_cosign_tags(
    artifacts: SeededArtifacts, env: Mapping[str, str], tmp_path: Path
) -> None:
    a = artifacts
    archive = tmp_path / "app.tar"
    out = json.loads(
        sneaker("pull", "--referrers", a.ref(a.image), "-o", archive, "--json", env=env).stdout
    )
    assert out["format"] == "oci-archive"  # the default format with --referrers
    found = {r["digest"]: r for r in out["referrers"]}
    assert set(found) == a.closure(a.image.digest) - {a.image.digest}
    assert {d: (r["kind"], r["via"], r["subject"]) for d, r in found.items()} == {
        a.sbom.digest: ("referrer", "tag", a.image.digest),
        a.attestation.digest: ("referrer", "tag", a.image.digest),
        a.sbom_signature.digest: ("referrer", "tag", a.sbom.digest),
        a.image_signature.digest: (".sig", "cosign", a.image.digest),
        a.image_attestation.digest: (".att", "cosign", a.image.digest),
        a.image_sbom.digest: (".sbom", "cosign", a.image.digest),
    }
    assert found[a.attestation.digest]["artifactType"] == IN_TOTO
    assert out["warnings"] == []

    entries, blobs = _layout(archive)
    host = a.registry.host
    names = {e["digest"]: e.get("annotations", {}) for e in entries}
    assert names[a.image.digest]["io.containerd.image.name"] == f"{host}/artifacts/app:1"
    for digest in (a.sbom.digest, a.attestation.digest, a.sbom_signature.digest):
        # untagged in the registry: named by digest, no ref name
        assert names[digest] == {"io.containerd.image.name": f"{host}/artifacts/app@{digest}"}
    tag = cosign_tag(a.image.digest, ".sig")
    assert names[a.image_signature.digest] == {
        "io.containerd.image.name": f"{host}/artifacts/app:{tag}",
        "org.opencontainers.image.ref.name": tag,
    }
    kinds = {e["digest"]: e.get("artifactType") for e in entries}
    assert (kinds[a.image.digest], kinds[a.sbom.digest]) == (None, SPDX_JSON)
    for digest in a.closure(a.image.digest):
        manifest = a.by_digest(digest)
        assert blobs[digest] == manifest.raw
        for blob in manifest.blobs:
            assert _sha256(blobs[blob.digest]) == blob.digest

    sneaker("verify", "--deep", archive, env=env)
    report = json.loads(sneaker("inspect", archive, "--json", env=env).stdout)
    subjects = {i["digest"]: (i["subject"], i["attachment"]) for i in report["images"]}
    assert subjects[a.sbom_signature.digest] == (a.sbom.digest, "referrer")
    assert subjects[a.image_sbom.digest] == (a.image.digest, ".sbom")
    assert subjects[a.image.digest] == (None, None)
    text = sneaker("pull", "--referrers", a.ref(a.image), "-o", tmp_path / "again.tar", env=env)
    assert "6 referrers carried" in text.stdout
    assert f"refers to {a.sbom.digest[:19]} (fallback tag)" in text.stdout


def test_referrers_of_platform_children(
    artifacts: SeededArtifacts, env: Mapping[str, str], tmp_path: Path
) -> None:
    """The SBOM of the amd64 child is found; the index's signature only when the index is
    carried as the registry has it (a platform subset is an index of sneaker's own)."""
    a = artifacts
    whole = json.loads(
        sneaker(
            "pull", "--referrers", "--platform", "all", a.ref(a.multi),
            "-o", tmp_path / "all.tar", "--json", env=env,
        ).stdout
    )  # fmt: skip
    assert {r["digest"] for r in whole["referrers"]} == {
        a.multi_signature.digest,
        a.child_sbom.digest,
    }
    one = json.loads(
        sneaker(
            "pull", "--referrers", "--platform", "linux/amd64", a.ref(a.multi),
            "-o", tmp_path / "amd64.tar", "--json", env=env,
        ).stdout
    )  # fmt: skip
    assert [r["digest"] for r in one["referrers"]] == [a.child_sbom.digest]
    types = json.loads(
        sneaker(
            "pull", "--referrers", "--referrers-type", SPDX_JSON, a.ref(a.image),
            "-o", tmp_path / "sboms.tar", "--json", env=env,
        ).stdout
    )  # fmt: skip
    assert [r["digest"] for r in types["referrers"]] == [a.sbom.digest]


def test_round_trip_to_another_registry_keeps_every_digest(
    artifacts: SeededArtifacts, make_registry: MakeRegistry, env: Mapping[str, str], tmp_path: Path
) -> None:
    """registry -> pull --referrers -> archive -> push -> another distribution 2.8: every tag
    and every referrer resolves there with the source's digest; the fallback tags list the
    same referrers. Checked with skopeo inspect --raw and plain HTTP."""
    a = artifacts
    archive = tmp_path / "site.tar"
    sneaker(
        "pull", "-q", "--referrers", "--platform", "all",
        a.ref(a.image), a.ref(a.multi), a.ref(a.chart), "-o", archive, env=env,
    )  # fmt: skip
    target = make_registry()
    pushed = json.loads(sneaker("push", archive, f"{target.host}/m", "--json", env=env).stdout)
    assert pushed["referrers"]["by_api"] == 0
    written = {t["subject"]: t for t in pushed["referrers"]["tags"]}
    assert set(written) == set(a.fallback_indexes)

    carried = a.closure(a.image.digest) | a.closure(a.multi.digest) | {a.chart.digest}
    for digest in carried:
        manifest = a.by_digest(digest)
        at = f"{target.host}/m/{manifest.repository}@{digest}"
        assert _raw(target, at) == manifest.raw
        for blob in manifest.blobs:
            status, _, body = _get(f"{target.url}/v2/m/{manifest.repository}/blobs/{blob.digest}")
            assert status == 200
            assert _sha256(body) == blob.digest
    for repository in a.repositories:
        # the same tags: the images', cosign's, and the fallback tags
        assert _tags(target, f"m/{repository}") == sorted(a.tags(repository))
        for tag, digest in a.tags(repository).items():
            raw = _raw(target, f"{target.host}/m/{repository}:{tag}")
            source = a.by_digest(digest)
            if source in a.fallback_indexes.values():
                assert _listed(raw) == _listed(source.raw)  # the same referrers listed
            else:
                assert raw == source.raw
    assert _raw(target, f"{target.host}/m/charts/demo:0.1.0") == a.chart.raw


def test_the_referrers_api_is_used_when_the_registry_has_it(
    artifacts: SeededArtifacts,
    make_registry: MakeRegistry,
    referrers_proxy: ProxyFactory,
    env: Mapping[str, str],
    tmp_path: Path,
) -> None:
    """Pull through a registry with the API (the stand-in): no fallback tag is read. Push to
    one: it answers OCI-Subject, so no fallback tag is written, and its API lists them."""
    a = artifacts
    source = referrers_proxy(a.registry.url)
    image_ref = a.ref(a.image).replace(a.registry.host, source.host)
    archive = tmp_path / "app.tar"
    out = json.loads(
        sneaker("pull", "--referrers", image_ref, "-o", archive, "--json", env=env).stdout
    )
    via = {r["digest"]: r["via"] for r in out["referrers"]}
    assert set(via) == a.closure(a.image.digest) - {a.image.digest}
    assert {via[a.sbom.digest], via[a.attestation.digest], via[a.sbom_signature.digest]} == {"api"}
    asked = [path for method, path in source.requests if method == "GET"]
    assert f"/v2/artifacts/app/referrers/{a.image.digest}" in asked
    assert f"/v2/artifacts/app/referrers/{a.sbom.digest}" in asked
    assert not [p for p in asked if p.endswith(f"/manifests/{fallback_tag(a.image.digest)}")]

    registry = make_registry()
    target = referrers_proxy(registry.url)
    pushed = json.loads(sneaker("push", archive, f"{target.host}/m", "--json", env=env).stdout)
    assert pushed["referrers"] == {"by_api": 3, "tags": []}
    assert not [t for t in _tags(registry, "m/artifacts/app") if t == fallback_tag(a.image.digest)]
    status, headers, body = _get(f"{target.url}/v2/m/artifacts/app/referrers/{a.image.digest}")
    assert status == 200
    assert _listed(body) == _listed(a.fallback_indexes[a.image.digest].raw)
    query = urlencode({"artifactType": IN_TOTO})
    filtered = f"{target.url}/v2/m/artifacts/app/referrers/{a.image.digest}?{query}"
    status, headers, body = _get(filtered)
    assert [e["digest"] for e in _listed(body)] == [a.attestation.digest]
    assert headers["oci-filters-applied"] == "artifactType"


def test_plan_fetches_what_an_images_file_marks(
    artifacts: SeededArtifacts, curl_only: Path, env: Mapping[str, str], tmp_path: Path
) -> None:
    """An images file line ``REF --referrers`` plans that image's referrers (and not those
    of the other images); fetch.sh brings their blobs; assemble writes them."""
    a = artifacts
    listing = tmp_path / "images.txt"
    listing.write_text(f"{a.ref(a.image)} --referrers\n{a.ref(a.multi)}\n")
    plan_dir = tmp_path / "plan"
    summary = json.loads(
        sneaker(
            "plan", "-f", listing, "--platform", "all", "-o", plan_dir, "--json", env=env
        ).stdout
    )
    assert {r["digest"] for r in summary["referrers"]} == a.closure(a.image.digest) - {
        a.image.digest
    }
    assert [i["digest"] for i in summary["images"]] == [a.image.digest, a.multi.digest]
    planned = json.loads((plan_dir / "plan.json").read_text())["images"]
    marked = {i["root"]["digest"]: i.get("referrer") for i in planned}
    assert marked[a.sbom_signature.digest]["subject"] == a.sbom.digest  # type: ignore[index]
    assert marked[a.image.digest] is None
    fetched = test_plan.fetch_sh(plan_dir, curl_only)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    out = tmp_path / "site.tar"
    sneaker("assemble", plan_dir, "-o", out, "--format", "oci", env=env)
    entries, blobs = _layout(out)
    expected = a.closure(a.image.digest) | {a.multi.digest}
    assert {e["digest"] for e in entries} == expected
    for digest in expected:
        assert blobs[digest] == a.by_digest(digest).raw
    sneaker("verify", out, env=env)


def test_a_delta_carries_referrers(
    artifacts: SeededArtifacts, make_registry: MakeRegistry, env: Mapping[str, str], tmp_path: Path
) -> None:
    """The image went over earlier without its referrers; a delta brings them (and not the
    image's layers), and pushed onto the target that has the image, they resolve there."""
    a = artifacts
    target = make_registry()
    base = tmp_path / "base.tar"
    sneaker("pull", "-q", "--format", "oci", a.ref(a.image), "-o", base, env=env)
    sneaker("push", base, f"{target.host}/m", env=env)
    delta = tmp_path / "delta.tar"
    out = json.loads(
        sneaker(
            "pull", "--since", base, "--referrers", a.ref(a.image), "-o", delta, "--json", env=env
        ).stdout
    )
    assert out["delta"]["omitted"] == len(a.image.blobs) - 1  # the layers; the config travels
    assert len(out["referrers"]) == 6
    blobs = _layout(delta)[1]
    for layer in a.image.blobs[1:]:
        assert layer.digest not in blobs
    sneaker("push", delta, f"{target.host}/m", env=env)
    for digest in a.closure(a.image.digest):
        manifest = a.by_digest(digest)
        assert _raw(target, f"{target.host}/m/artifacts/app@{digest}") == manifest.raw
    raw = _raw(target, f"{target.host}/m/artifacts/app:{fallback_tag(a.image.digest)}")
    assert _listed(raw) == _listed(a.fallback_indexes[a.image.digest].raw)


def test_a_hauler_manifest_is_planned_and_pulled(
    artifacts: SeededArtifacts,
    hauler_manifest: HaulerManifest,
    env: Mapping[str, str],
    tmp_path: Path,
) -> None:
    """The issue's report: `plan --from` a Hauler manifest answered "no image to plan". Its
    Images (by tag; by digest for linux/amd64) and its OCI chart are planned and pulled."""
    a = artifacts
    plan_dir = tmp_path / "plan"
    planned = sneaker(
        "plan", "--from", hauler_manifest.path, "--platform", "linux/amd64", "-o", plan_dir,
        "--json", env=env,
    )  # fmt: skip
    assert planned.stderr.count("warning:") == 0
    summary = json.loads(planned.stdout)
    assert [i["digest"] for i in summary["images"]] == [
        a.image.digest,
        a.multi_amd64.digest,  # the one platform of the index, as the manifest asks
        a.chart.digest,
    ]
    archive = tmp_path / "site.tar"
    out = json.loads(
        sneaker(
            "pull", "--from", hauler_manifest.path, "--referrers", "--platform", "linux/amd64",
            "-o", archive, "--json", env=env,
        ).stdout
    )  # fmt: skip
    assert [i["digest"] for i in out["images"]] == [
        a.image.digest,
        a.multi_amd64.digest,
        a.chart.digest,
    ]
    assert {r["digest"] for r in out["referrers"]} == (
        a.closure(a.image.digest) - {a.image.digest}
    ) | {a.child_sbom.digest}
    entries, blobs = _layout(archive)
    assert blobs[a.chart.digest] == a.chart.raw
    chart_entry = next(e for e in entries if e["digest"] == a.chart.digest)
    assert chart_entry["annotations"]["io.containerd.image.name"] == (
        f"{a.registry.host}/charts/demo:0.1.0"
    )

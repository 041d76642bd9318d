"""OCI artifacts through pull, inspect, verify, unpack and push, against distribution 2.8.

The Helm chart and the cosign signature were put into the registry by skopeo (the
``artifacts`` fixture); what sneaker pushed is read back with ``skopeo inspect --raw``
and plain HTTP, never with sneaker.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.fixtures.artifacts import HELM_CHART, HELM_CONFIG, SeededArtifacts, cosign_tag
from tests.fixtures.registry import MakeRegistry, RegistryInfo
from tests.fixtures.seeding import inspect_args
from tests.fixtures.tools import skopeo
from tests.helpers import http_request, sneaker
from tests.integration import test_plan

pytestmark = pytest.mark.integration

curl_only = test_plan.curl_only  # the fixture (PATH of sh, curl and base tools only)
fetch_sh = test_plan.fetch_sh


def _raw(info: RegistryInfo, ref: str) -> bytes:
    return skopeo("inspect", "--raw", *inspect_args(info), f"docker://{ref}").stdout.encode()


def _blob(info: RegistryInfo, repository: str, digest: str) -> bytes:
    status, _, body = http_request(f"{info.url}/v2/{repository}/blobs/{digest}")
    assert status == 200, (repository, digest)
    return body


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_helm_chart_pull_push_keeps_its_digest(
    artifacts: SeededArtifacts, make_registry: MakeRegistry, env: Mapping[str, str], tmp_path: Path
) -> None:
    chart = artifacts.chart
    ref = artifacts.ref(chart)
    archive = tmp_path / "chart.tar"
    pulled = sneaker("pull", "--format", "oci", ref, "-o", archive, "--json", env=env)
    (image,) = json.loads(pulled.stdout)["images"]
    assert (image["digest"], image["platforms"]) == (chart.digest, [])
    assert image["artifactType"] == HELM_CONFIG
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        (entry,) = index["manifests"]
        assert (entry["digest"], entry["artifactType"]) == (chart.digest, HELM_CONFIG)
        stored = tar.extractfile(f"blobs/sha256/{chart.digest.split(':')[1]}")
        assert stored is not None
        assert stored.read() == chart.raw

    sneaker("verify", "--deep", archive, env=env)
    report = json.loads(sneaker("inspect", archive, "--json", env=env).stdout)
    (described,) = report["images"]
    assert described["artifactType"] == HELM_CONFIG
    assert [m["artifactType"] for m in described["manifests"]] == [HELM_CONFIG]
    assert [layer["mediaType"] for layer in described["manifests"][0]["layers"]] == [HELM_CHART]
    text = sneaker("inspect", ref, env=env).stdout
    assert f"artifact type: {HELM_CONFIG}" in text

    refused = sneaker("unpack", archive, tmp_path / "rootfs", check=False, env=env)
    assert refused.returncode == 9, refused.stderr
    assert "is an OCI artifact (application/vnd.cncf.helm.config.v1+json)" in refused.stderr
    assert not (tmp_path / "rootfs").exists()

    target = make_registry()
    sneaker("push", archive, f"{target.host}/mirror", env=env)
    pushed = _raw(target, f"{target.host}/mirror/charts/demo:0.1.0")
    assert pushed == chart.raw
    layer = json.loads(pushed)["layers"][0]
    assert _blob(target, "mirror/charts/demo", layer["digest"]) == artifacts.chart_archive


def test_docker_format_refuses_an_artifact_before_downloading(
    artifacts: SeededArtifacts, env: Mapping[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    refused = sneaker(
        "pull", artifacts.ref(artifacts.chart), "-o", out / "chart.tar", check=False, env=env
    )
    assert refused.returncode == 2, refused.stderr
    assert "is an OCI artifact (application/vnd.cncf.helm.config.v1+json)" in refused.stderr
    assert "hint: use --format oci" in refused.stderr
    assert list(out.iterdir()) == []
    layer = artifacts.chart.blobs[1].digest.split(":", 1)[1]
    assert not [p for p in Path(env["SNEAKER_CACHE_DIR"]).rglob("*") if layer in p.name]


def test_cosign_signature_by_its_tag_is_carried_byte_for_byte(
    artifacts: SeededArtifacts, make_registry: MakeRegistry, env: Mapping[str, str], tmp_path: Path
) -> None:
    """A cosign signature has an image config with no platform and a JSON layer: no config
    check, no diff ID (``verify --deep`` does not decompress it), the same digest pushed."""
    signature = artifacts.image_signature
    tag = cosign_tag(artifacts.image.digest, ".sig")
    archive = tmp_path / "sig.tar"
    pulled = sneaker(
        "pull", "--format", "oci", artifacts.ref(signature, tag), "-o", archive, env=env
    )
    assert f"{signature.digest} " in pulled.stdout
    assert "artifact application/vnd.dev.cosign.simplesigning.v1+json" in pulled.stdout
    sneaker("verify", "--deep", archive, env=env)
    target = make_registry()
    sneaker("push", archive, f"{target.host}/mirror", env=env)
    pushed = _raw(target, f"{target.host}/mirror/artifacts/app:{tag}")
    assert _sha256(pushed) == signature.digest
    payload = json.loads(pushed)["layers"][0]
    assert _sha256(_blob(target, "mirror/artifacts/app", payload["digest"])) == payload["digest"]


def test_plan_fetch_assemble_a_chart(
    artifacts: SeededArtifacts, curl_only: Path, env: Mapping[str, str], tmp_path: Path
) -> None:
    """plan fetches the chart's manifest and config, fetch.sh its layer (curl only), and
    assemble writes it into an OCI archive only; plan suggests that format."""
    plan_dir = tmp_path / "plan"
    planned = sneaker("plan", artifacts.ref(artifacts.chart), "-o", plan_dir, env=env)
    assert "-o images.tar --format oci" in planned.stdout
    fetched = fetch_sh(plan_dir, curl_only)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    refused = sneaker("assemble", plan_dir, "-o", tmp_path / "x.tar", check=False, env=env)
    assert refused.returncode == 2
    assert "is an OCI artifact (application/vnd.cncf.helm.config.v1+json)" in refused.stderr
    out = tmp_path / "chart.tar"
    sneaker("assemble", plan_dir, "-o", out, "--format", "oci", env=env)
    sneaker("verify", out, env=env)
    with tarfile.open(out) as tar:
        layer = tar.extractfile(f"blobs/sha256/{artifacts.chart.blobs[1].digest.split(':')[1]}")
        assert layer is not None
        assert layer.read() == artifacts.chart_archive

"""Hauler manifests as ``--from`` input: Images, Charts in OCI registries, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from sneaker.errors import ConfigError, UnsupportedError
from sneaker.image.platform import parse_platform
from sneaker.image.selection import PlatformRequest
from sneaker.verbs.imagelist import ImageEntry, collect_entries, images_from_yaml, platform_notes

MANIFEST = """\
apiVersion: content.hauler.cattle.io/v1
kind: Images
metadata:
  name: images
spec:
  images:
    - name: ghcr.io/org/app:1.0
      key: cosign.pub
    - name: registry.example/team/multi@sha256:{digest}
      platform: linux/arm64
---
apiVersion: content.hauler.cattle.io/{version}
kind: Charts
metadata:
  name: charts
spec:
  charts:
    - name: demo
      repoURL: oci://registry.example/charts/
      version: 0.1.0+build.7
---
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
        - image: nginx:1.27
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hauler-manifest.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("version", ["v1", "v1alpha1"])
def test_images_and_oci_charts_next_to_kubernetes_yaml(tmp_path: Path, version: str) -> None:
    digest = "a" * 64
    path = _write(tmp_path, MANIFEST.format(digest=digest, version=version))
    assert images_from_yaml(path) == [
        "ghcr.io/org/app:1.0",
        f"registry.example/team/multi@sha256:{digest}",
        # repoURL + "/" + name, the version as Helm tags it ('+' is '_')
        "registry.example/charts/demo:0.1.0_build.7",
        "nginx:1.27",
    ]
    entries = collect_entries(yaml_files=[path])
    assert entries[1] == ImageEntry(
        f"registry.example/team/multi@sha256:{digest}", platform="linux/arm64"
    )
    assert entries[1].where == f"{path} line 9"


def test_a_platform_the_run_does_not_pull_is_said(tmp_path: Path) -> None:
    path = _write(tmp_path, MANIFEST.format(digest="b" * 64, version="v1"))
    entries = collect_entries(yaml_files=[path])
    arm = PlatformRequest(platforms=(parse_platform("linux/arm64"),))
    assert platform_notes(entries, arm) == []
    assert platform_notes(entries, PlatformRequest(all=True)) == []
    amd = PlatformRequest(platforms=(parse_platform("linux/amd64"),))
    assert platform_notes(entries, amd) == [
        f"{path} line 9: registry.example/team/multi@sha256:{'b' * 64} is listed for "
        "linux/arm64, and this run pulls linux/amd64 for every image (choose with --platform)"
    ]


@pytest.mark.parametrize(
    ("document", "error", "message"),
    [
        (
            "kind: Charts\nspec:\n  charts:\n    - name: rancher\n"
            "      repoURL: https://charts.invalid/stable\n      version: 2.8.5\n",
            UnsupportedError,
            "line 5: chart rancher comes from https://charts.invalid/stable, not from an OCI "
            "registry",
        ),
        (
            "kind: Charts\nspec:\n  charts:\n    - name: demo\n      repoURL: oci://r.example/c\n",
            ConfigError,
            "line 5: chart demo has no version",
        ),
        (
            "kind: Files\nspec:\n  files:\n    - path: https://get.example/install.sh\n",
            UnsupportedError,
            "line 1: a Hauler Files (content.hauler.cattle.io/v1)",
        ),
        (
            "kind: Images\nspec:\n  images:\n    - platform: linux/amd64\n",
            ConfigError,
            "line 5: a Hauler image without a name",
        ),
    ],
    ids=["https-chart", "no-version", "files", "no-name"],
)
def test_what_cannot_be_carried_is_refused_by_line(
    tmp_path: Path, document: str, error: type[Exception], message: str
) -> None:
    path = _write(tmp_path, "apiVersion: content.hauler.cattle.io/v1\n" + document)
    with pytest.raises(error) as caught:
        images_from_yaml(path)
    assert f"{path} {message}" in str(caught.value)


def test_a_collection_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "apiVersion: collection.hauler.cattle.io/v1\nkind: ThickCharts\n")
    with pytest.raises(UnsupportedError, match="a Hauler ThickCharts"):
        images_from_yaml(path)

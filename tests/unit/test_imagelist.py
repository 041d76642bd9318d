"""Images files and the ``image:`` references of compose files and Kubernetes YAML."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sneaker.errors import ConfigError, InvalidReference, UsageError
from sneaker.verbs.imagelist import (
    ImageEntry,
    collect_entries,
    collect_images,
    expand_variables,
    images_from_yaml,
    read_image_entries,
    read_images_file,
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- images files --------------------------------------------------------------------------


def test_images_file_comments_blank_lines_and_order(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "images.txt",
        "# base images\n"
        "ubuntu:22.04\n"
        "\n"
        "   ghcr.io/org/app@sha256:" + "a" * 64 + "   # pinned\n"
        "\t\n"
        "registry.local:5000/team/tool:1.2  \n"
        "#docker.io/library/skipped:1\n",
    )
    assert read_images_file(path) == [
        "ubuntu:22.04",
        "ghcr.io/org/app@sha256:" + "a" * 64,
        "registry.local:5000/team/tool:1.2",
    ]


def test_images_file_dedups_by_normalised_name_keeping_first_spelling(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "images.txt",
        "nginx\ndocker.io/library/nginx:latest\nindex.docker.io/library/nginx\nnginx:1.25\n",
    )
    assert read_images_file(path) == ["nginx", "nginx:1.25"]


def test_images_file_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "images.txt"
    path.write_bytes(b"\xef\xbb\xbfalpine:3.19\r\nbusybox\r\n")
    assert read_images_file(path) == ["alpine:3.19", "busybox"]


def test_images_file_bad_reference_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "images.txt", "alpine\n\n# ok so far\nUbuntu:22.04\n")
    with pytest.raises(InvalidReference) as info:
        read_images_file(path)
    assert info.value.message == (
        f"{path} line 4: invalid reference 'Ubuntu:22.04': repository name must be lowercase"
    )


def test_images_file_missing_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        read_images_file(tmp_path / "nope.txt")
    assert info.value.message == f"images file {tmp_path / 'nope.txt'} does not exist"


def test_images_file_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("alpine\n# c\nbusybox:1\n"))
    assert read_images_file("-") == ["alpine", "busybox:1"]


def test_empty_images_file_gives_nothing(tmp_path: Path) -> None:
    assert read_images_file(_write(tmp_path, "e.txt", "# nothing\n\n")) == []


# -- YAML ---------------------------------------------------------------------------------

COMPOSE = """\
x-common: &common
  image: registry.local:5000/base/common:1
  restart: always

services:
  web:
    image: nginx:1.25
    ports: ["80:80"]
  db:
    image: "postgres:16"
    environment:
      POSTGRES_PASSWORD: example
  worker:
    <<: *common
  built:
    build: ./app
    image: registry.local:5000/team/app:${TAG:-dev}
volumes:
  data: {}
"""

K8S = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  template:
    spec:
      initContainers:
        - name: migrate
          image: ghcr.io/org/migrate:2
      containers:
        - name: api
          image: ghcr.io/org/api:2
        - name: sidecar
          image: nginx:1.25
      volumes:
        - name: models
          image:
            reference: ghcr.io/org/models:7
            pullPolicy: IfNotPresent
---
# a comment-only document follows
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: job
              image: busybox@sha256:{digest}
          restartPolicy: OnFailure
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata:
      name: debug
    spec:
      ephemeralContainers:
        - name: dbg
          image: docker.io/library/alpine:3.19
      containers:
        - name: main
          image: quay.io/org/main:latest
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: not-images
data:
  image: "this is a text field, not a container"
""".replace("{digest}", "b" * 64)


def test_compose_images_with_anchor_merge_and_interpolation(tmp_path: Path) -> None:
    path = _write(tmp_path, "docker-compose.yml", COMPOSE)
    assert images_from_yaml(path, environ={}) == [
        "registry.local:5000/base/common:1",
        "nginx:1.25",
        "postgres:16",
        "registry.local:5000/team/app:dev",
    ]
    assert images_from_yaml(path, environ={"TAG": "1.4"})[-1] == (
        "registry.local:5000/team/app:1.4"
    )


def test_kubernetes_multi_document_walks_every_kind(tmp_path: Path) -> None:
    # the ConfigMap's `data.image` is a string too, but not a reference: it fails loudly
    text = K8S.rsplit("---\n", 1)[0]
    path = _write(tmp_path, "k8s.yaml", text)
    assert images_from_yaml(path) == [
        "ghcr.io/org/migrate:2",
        "ghcr.io/org/api:2",
        "nginx:1.25",
        "busybox@sha256:" + "b" * 64,
        "docker.io/library/alpine:3.19",
        "quay.io/org/main:latest",
    ]


def test_yaml_string_that_is_no_reference_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "k8s.yaml", K8S)
    line = K8S.splitlines().index('  image: "this is a text field, not a container"') + 1
    with pytest.raises(InvalidReference) as info:
        images_from_yaml(path)
    assert info.value.message.startswith(f"{path} line {line}: invalid reference ")


def test_compose_and_k8s_together_dedup_in_order(tmp_path: Path) -> None:
    compose = _write(tmp_path, "compose.yaml", COMPOSE)
    k8s = _write(tmp_path, "k8s.yaml", K8S.rsplit("---\n", 1)[0])
    images = _write(tmp_path, "images.txt", "nginx:1.25\nalpine:3.19\n")
    merged = collect_images(
        ["postgres:16", "docker.io/library/nginx:1.25"], [images], [compose, k8s]
    )
    assert merged == [
        "postgres:16",
        "docker.io/library/nginx:1.25",
        "alpine:3.19",
        "registry.local:5000/base/common:1",
        "registry.local:5000/team/app:dev",
        "ghcr.io/org/migrate:2",
        "ghcr.io/org/api:2",
        "busybox@sha256:" + "b" * 64,
        "quay.io/org/main:latest",
    ]


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", "services:\n  web:\n    image: nginx\n   ports: [80\n")
    with pytest.raises(ConfigError) as info:
        images_from_yaml(path)
    assert info.value.message.startswith(f"{path} line 4: invalid YAML: ")
    assert info.value.exit_code == 3


def test_yaml_unclosed_flow_reports_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", "a: 1\n---\nservices: {web: {image: nginx}\n")
    with pytest.raises(ConfigError) as info:
        images_from_yaml(path)
    assert info.value.message.startswith(f"{path} line 4: invalid YAML: ")


def test_yaml_unsafe_tags_are_refused_not_constructed(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "evil.yaml", "image: !!python/object/apply:os.system ['true']\nother: 1\n"
    )
    # the safe loader's composer does not construct anything: the tagged node is no string
    assert images_from_yaml(path) == []


def test_yaml_recursive_alias_is_bounded(tmp_path: Path) -> None:
    path = _write(tmp_path, "loop.yaml", "a: &x\n  image: alpine\n  b: *x\n")
    assert images_from_yaml(path) == ["alpine"]


def test_yaml_non_string_and_empty_images_are_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "a:\n  image: 12\nb:\n  image: ''\nc:\n  image: ~\n")
    assert images_from_yaml(path) == []


def test_unset_variable_without_default_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "compose.yaml", "services:\n  a:\n    image: app:${TAG}\n")
    with pytest.raises(ConfigError) as info:
        images_from_yaml(path, environ={})
    assert info.value.message == f"{path} line 3: variable TAG is not set"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("app:${T}", {"T": "1"}, "app:1"),
        ("app:$T", {"T": "2"}, "app:2"),
        ("app:${T:-d}", {"T": ""}, "app:d"),
        ("app:${T-d}", {"T": ""}, "app:"),
        ("app:${T-d}", {}, "app:d"),
        ("a$$b", {}, "a$b"),
        ("app:${T:?needs T}", {"T": "x"}, "app:x"),
    ],
)
def test_expand_variables(text: str, env: dict[str, str], expected: str) -> None:
    assert expand_variables(text, env, "here") == expected


def test_expand_variables_required_message() -> None:
    with pytest.raises(ConfigError) as info:
        expand_variables("app:${T:?set the tag}", {}, "f line 2")
    assert info.value.message == "f line 2: variable T: set the tag"


# -- per-image options ---------------------------------------------------------------------


def test_images_file_marks_images_whose_referrers_go_along(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "images.txt",
        "ghcr.io/org/app:1.0 --referrers   # with its signatures and SBOMs\n"
        "nginx:1.27\n"
        "docker.io/library/nginx:1.27  --referrers\n",  # the same image: marked
    )
    assert read_image_entries(path) == [
        ImageEntry("ghcr.io/org/app:1.0", referrers=True),
        ImageEntry("nginx:1.27", referrers=True),
    ]
    assert read_images_file(path) == ["ghcr.io/org/app:1.0", "nginx:1.27"]
    entries = collect_entries(["alpine", "ghcr.io/org/app:1.0"], [path])
    assert [(e.key, e.referrers) for e in entries] == [
        ("docker.io/library/alpine:latest", False),
        ("ghcr.io/org/app:1.0", True),
        ("docker.io/library/nginx:1.27", True),
    ]


def test_images_file_unknown_option_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "images.txt", "nginx:1.27\nubuntu latest\n")
    with pytest.raises(UsageError) as caught:
        read_images_file(path)
    assert caught.value.message == f"{path} line 2: unknown option 'latest' after the image"
    assert caught.value.hint == "a line is a reference, then any of: --referrers"

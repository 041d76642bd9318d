"""Reference grammar, normalised as docker does."""

from __future__ import annotations

import pytest

from sneaker.errors import InvalidReference
from sneaker.image.reference import (
    bare_registry_host,
    is_path_component,
    is_registry_host,
    names_registry_host,
    normalize_registry_host,
    parse_reference,
)

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("ubuntu", "docker.io", "library/ubuntu", "latest", None),
        ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None),
        ("library/ubuntu", "docker.io", "library/ubuntu", "latest", None),
        ("docker.io/ubuntu", "docker.io", "library/ubuntu", "latest", None),
        ("index.docker.io/library/ubuntu:1", "docker.io", "library/ubuntu", "1", None),
        ("registry-1.docker.io/bitnami/redis", "docker.io", "bitnami/redis", "latest", None),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None),
        ("localhost/foo", "localhost", "foo", "latest", None),
        ("localhost:5000/foo/bar:v1", "localhost:5000", "foo/bar", "v1", None),
        ("127.0.0.1:5000/a", "127.0.0.1:5000", "a", "latest", None),
        ("ghcr.io/org/app:1.0", "ghcr.io", "org/app", "1.0", None),
        ("quay.io/org/sub/app", "quay.io", "org/sub/app", "latest", None),
        ("Host/app", "Host", "app", "latest", None),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        (f"ubuntu@sha256:{HEX}", "docker.io", "library/ubuntu", None, f"sha256:{HEX}"),
        (f"ubuntu:22.04@sha256:{HEX}", "docker.io", "library/ubuntu", "22.04", f"sha256:{HEX}"),
        ("a__b-c_d/e---f.g", "docker.io", "a__b-c_d/e---f.g", "latest", None),
        ("a.b/c", "a.b", "c", "latest", None),
    ],
)
def test_parses_like_docker(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert (str(ref.digest) if ref.digest else None) == digest


def test_digest_wins_over_tag() -> None:
    ref = parse_reference(f"ubuntu:22.04@sha256:{HEX}")
    assert ref.identifier == f"sha256:{HEX}"
    assert str(ref) == f"docker.io/library/ubuntu:22.04@sha256:{HEX}"


def test_docker_hub_api_host_and_familiar_names() -> None:
    assert parse_reference("ubuntu").api_host == "registry-1.docker.io"
    assert parse_reference("ubuntu:22.04").familiar == "ubuntu:22.04"
    assert parse_reference("bitnami/redis").familiar == "bitnami/redis:latest"
    assert parse_reference("library/a/b").familiar == "library/a/b:latest"
    assert parse_reference("ghcr.io/o/r:t").familiar == "ghcr.io/o/r:t"
    assert parse_reference("localhost:5000/x").api_host == "localhost:5000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid reference: empty"),
        ("   ", "invalid reference: empty"),
        ("Ubuntu", "invalid reference 'Ubuntu': repository name must be lowercase"),
        (
            "docker.io/Library/ubuntu",
            "invalid reference 'docker.io/Library/ubuntu': repository name must be lowercase",
        ),
        (
            "ubuntu@sha256:abc",
            "invalid reference 'ubuntu@sha256:abc': invalid digest "
            "'sha256:abc': sha256 needs 64 lowercase hex characters",
        ),
        (
            f"ubuntu@md5:{HEX}",
            f"invalid reference 'ubuntu@md5:{HEX}': invalid digest "
            f"'md5:{HEX}': unsupported algorithm 'md5'",
        ),
        ("ubuntu:-bad", "invalid reference 'ubuntu:-bad': invalid tag '-bad'"),
        ("ubuntu:", "invalid reference 'ubuntu:': invalid tag ''"),
        ("a//b", "invalid reference 'a//b': invalid repository component ''"),
        ("a/b_", "invalid reference 'a/b_': invalid repository component 'b_'"),
        ("ubu ntu", "invalid reference 'ubu ntu': contains white space"),
        (
            "x" * 300,
            "invalid reference '" + "x" * 300 + "': repository name longer than 255 characters",
        ),
    ],
)
def test_invalid_references_name_the_fault(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert str(info.value) == message


def test_no_default_tag_when_asked() -> None:
    assert parse_reference("localhost:5000/prefix", default_tag=None).tag is None


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("Index.Docker.IO", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        (" docker.io ", "docker.io"),
        ("Quay.IO:443", "quay.io:443"),
    ],
)
def test_every_hub_name_is_docker_io(host: str, normal: str) -> None:
    assert normalize_registry_host(host) == normal


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("localhost", "localhost"),
        ("localhost:5000", "localhost:5000"),
        ("index.docker.io", "docker.io"),
        ("[::1]:5000", "[::1]:5000"),
        ("ubuntu", None),  # a repository, not a host
        ("bad_host.example", None),  # has a dot, but is no valid host
    ],
)
def test_bare_registry_host(text: str, host: str | None) -> None:
    assert bare_registry_host(text) == host


def test_grammar_pieces_agree_with_the_parser() -> None:
    assert names_registry_host("a.b")
    assert names_registry_host("h:1")
    assert not names_registry_host("library")
    assert is_registry_host("reg.example:5000")
    assert not is_registry_host("-bad")
    assert is_path_component("my-app")
    assert not is_path_component("My")

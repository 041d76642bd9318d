"""Platform parsing, containerd-style normalisation and matching."""

from __future__ import annotations

import pytest

from sneaker.errors import InvalidPlatform
from sneaker.image.platform import Platform, is_attestation, normalize_arch, parse_platform


@pytest.mark.parametrize(
    ("arch", "variant", "expected"),
    [
        ("x86_64", "", ("amd64", "")),
        ("amd64", "", ("amd64", "")),
        ("aarch64", "", ("arm64", "")),
        ("arm64", "v8", ("arm64", "")),
        ("armhf", "", ("arm", "v7")),
        ("armel", "", ("arm", "v6")),
        ("arm", "", ("arm", "v7")),
        ("arm", "6", ("arm", "v6")),
        ("i686", "", ("386", "")),
        ("ppc64le", "", ("ppc64le", "")),
    ],
)
def test_normalize_arch(arch: str, variant: str, expected: tuple[str, str]) -> None:
    assert normalize_arch(arch, variant) == expected


def test_matching() -> None:
    want = parse_platform("linux/arm64")
    assert want.matches(Platform("linux", "arm64", "v8"))
    assert want.matches(Platform("linux", "aarch64"))
    assert not want.matches(Platform("linux", "amd64"))
    assert not want.matches(Platform("windows", "arm64"))
    v7 = parse_platform("linux/arm/v7")
    assert v7.matches(Platform("linux", "arm"))
    assert not v7.matches(Platform("linux", "arm", "v6"))
    assert parse_platform("linux/arm").matches(Platform("linux", "arm", "v6"))
    assert parse_platform("linux/amd64").matches(Platform("linux", "x86_64"))


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d", ""])
def test_bad_platforms(text: str) -> None:
    with pytest.raises(InvalidPlatform, match="invalid platform"):
        parse_platform(text)


def test_attestation_detection() -> None:
    assert is_attestation(Platform("unknown", "unknown"), {})
    assert is_attestation(None, {"vnd.docker.reference.type": "attestation-manifest"})
    assert not is_attestation(Platform("linux", "amd64"), {})


def test_json_round_trip() -> None:
    data = {"architecture": "arm", "os": "linux", "variant": "v7", "os.version": "1"}
    assert Platform.from_json(data).to_json() == data

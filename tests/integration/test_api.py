"""The Python API as the README shows it, against real registries."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

import sneaker
from tests.fixtures.multiarch import MultiArch
from tests.fixtures.registry import MakeRegistry
from tests.fixtures.seeding import Seeded
from tests.fixtures.tools import skopeo

pytestmark = pytest.mark.integration


def test_readme_python_api(
    tmp_path: Path,
    seeded: Seeded,
    multiarch: MultiArch,
    make_registry: MakeRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SNEAKER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.chdir(tmp_path)

    result = sneaker.pull([seeded.app.ref, seeded.small.ref], "bundle.tar")
    assert [(i.reference, i.platforms, i.digest) for i in result.images] == [
        (seeded.app.ref, ("linux/amd64",), seeded.app.digest),
        (seeded.small.ref, ("linux/amd64",), seeded.small.digest),
    ]

    oci = sneaker.pull(
        [multiarch.ref], "app/", format="oci", platform=sneaker.PlatformRequest(all=True)
    )
    assert oci.format == "oci-layout"
    assert oci.images[0].digest == multiarch.index_digest

    report = sneaker.inspect("bundle.tar")
    assert [i.digest for i in report.images] == [seeded.app.digest, seeded.small.digest]
    remote = sneaker.inspect(multiarch.ref)
    assert remote.kind == "remote"
    assert remote.images[0].digest == multiarch.index_digest

    target = make_registry()
    pushed = sneaker.push("bundle.tar", f"{target.host}/mirror")
    assert sorted(str(i.target) for i in pushed.images) == sorted(
        [f"{target.host}/mirror/test/app:1", f"{target.host}/mirror/test/small:1"]
    )
    raw = skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{target.host}/mirror/test/app:1"
    ).stdout
    assert sneaker.parse_reference(f"x@{seeded.app.digest}").digest is not None
    import hashlib

    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == seeded.app.digest

    assert sneaker.verify("bundle.tar", deep=True) == []

    with (
        sneaker.serve(["bundle.tar"], addr="127.0.0.1:0") as server,
        urllib.request.urlopen(f"{server.url}/v2/_catalog") as answer,
    ):
        catalog = json.load(answer)
    assert catalog == {"repositories": ["test/app", "test/small"]}

    with pytest.raises(sneaker.NotFound):
        sneaker.pull([f"{target.host}/no/such:1"], "missing.tar")
    assert not Path("missing.tar").exists()
    assert issubclass(sneaker.NotFound, sneaker.SneakerError)

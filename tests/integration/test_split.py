"""``--split SIZE``: parts no larger than SIZE, a checksum file ``sha256sum`` accepts, ``cat``
of the parts is the archive byte for byte, and every reader takes the set by its base name.

The image (two incompressible layers, about 3.5 MB) is written as an OCI layout by
``tests.fixtures.random_images`` and put into the registry by ``skopeo copy``; what
sneaker wrote is loaded by ``docker load`` and read back by skopeo.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sneaker.verbs.serve import serve
from tests.fixtures.docker import DockerDaemon
from tests.fixtures.random_images import RandomLayout, make_random_layout
from tests.fixtures.registry import RegistryInfo
from tests.fixtures.seeding import inspect_args, seed_oci_layout
from tests.fixtures.tools import skopeo
from tests.helpers import need, run, sneaker

pytestmark = pytest.mark.integration

REPO = "split-test/rand"
TAG = "1"
PART = 1024 * 1024  # --split 1M


@dataclass(frozen=True)
class Seeded:
    layout: RandomLayout
    registry: RegistryInfo
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.registry.host}/{REPO}:{TAG}"


@pytest.fixture(scope="module")
def image(registry: RegistryInfo, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    layout = make_random_layout(
        tmp_path_factory.mktemp("split-image"),
        [2_000_000, 1_500_000],
        kind="random",
        seed="split",
    )
    digest = seed_oci_layout(registry, layout.path, "img", f"{REPO}:{TAG}", all_images=False)
    return Seeded(layout, registry, digest)


def _parts(base: Path) -> list[Path]:
    return sorted(base.parent.glob(f"{base.name}.[0-9][0-9][0-9]"))


def _registry_digest(info: RegistryInfo, repo_ref: str) -> str:
    out = skopeo("inspect", *inspect_args(info), f"docker://{info.ref(repo_ref)}").stdout
    digest: str = json.loads(out)["Digest"]
    return digest


def test_split_pull_parts_checksums_cat_and_docker_load(
    tmp_path: Path, env: dict[str, str], image: Seeded, docker: DockerDaemon
) -> None:
    sha256sum = need("sha256sum")
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    base = parts_dir / "img.tar"
    out = sneaker("pull", "--json", "--split", "1M", "-o", base, image.ref, env=env)
    summary = json.loads(out.stdout)
    parts = _parts(base)
    assert [Path(p) for p in summary["parts"]] == parts
    assert len(parts) >= 4  # ~3.5 MB of incompressible layers
    assert all(p.stat().st_size <= PART for p in parts)
    assert all(p.stat().st_size == PART for p in parts[:-1])
    assert not base.exists()
    assert (parts_dir / "img.tar.sha256").is_file()
    assert sorted(p.name for p in parts_dir.iterdir()) == sorted(
        [p.name for p in parts] + ["img.tar.sha256"]
    )

    # what the README says to run: the parts check out as they are, before any joining
    checked = run([sha256sum, "-c", "img.tar.sha256"], cwd=parts_dir)
    assert checked.stdout.splitlines() == [f"{p.name}: OK" for p in parts]

    full = tmp_path / "full" / "img.tar"
    full.parent.mkdir()
    sneaker("pull", "-q", "-o", full, image.ref, env=env)
    joined_dir = tmp_path / "joined"
    joined_dir.mkdir()
    joined = joined_dir / "img.tar"
    with joined.open("wb") as sink:
        subprocess.run([need("cat"), *map(str, parts)], stdout=sink, check=True, timeout=60)
    assert joined.read_bytes() == full.read_bytes()

    # a damaged part fails the check, named; a missing one too
    damaged = bytearray(parts[1].read_bytes())
    damaged[1000] ^= 0xFF
    parts[1].write_bytes(bytes(damaged))
    parts[-1].unlink()
    bad = run([sha256sum, "-c", "img.tar.sha256"], cwd=parts_dir, check=False)
    assert bad.returncode == 1
    assert f"{parts[1].name}: FAILED" in bad.stdout.splitlines()
    assert f"{parts[-1].name}: FAILED open or read" in bad.stdout.splitlines()
    assert f"{parts[0].name}: OK" in bad.stdout.splitlines()

    docker.run("rmi", "-f", image.ref, check=False)
    try:
        loaded = docker.run("load", "-i", str(joined)).stdout
        assert f"Loaded image: {image.ref}" in loaded
        assert docker.image_id(image.ref) == image.layout.config.digest
    finally:
        docker.run("rmi", "-f", image.ref, check=False)


def test_readers_take_a_split_set_by_its_base_name(
    tmp_path: Path,
    env: dict[str, str],
    image: Seeded,
    make_registry: Callable[..., RegistryInfo],
) -> None:
    base = tmp_path / "img.tar"
    sneaker("pull", "-q", "--split", "1M", "-o", base, image.ref, env=env)
    assert not base.exists()
    assert len(_parts(base)) >= 4

    inspected = json.loads(sneaker("inspect", "--json", base, env=env).stdout)
    assert [i["digest"] for i in inspected["images"]] == [image.digest]

    verified = sneaker("verify", "--deep", base, env=env)
    assert "all digests, sizes and links check out" in verified.stdout

    # naming the first part works too
    sneaker("verify", "-q", f"{base}.000", env=env)

    target = make_registry()
    pushed = json.loads(sneaker("push", "--json", base, target.host, env=env).stdout)
    (entry,) = pushed["images"]
    assert entry["digest"] == image.digest
    assert _registry_digest(target, f"{REPO}:{TAG}") == image.digest

    dest = tmp_path / "rootfs"
    sneaker("unpack", "-q", base, dest, env=env)
    assert (dest / "data" / "layer-000.bin").stat().st_size == 2_000_000
    assert (dest / "data" / "layer-001.bin").stat().st_size == 1_500_000

    with serve([base], "127.0.0.1:0") as server:
        out = skopeo("inspect", "--tls-verify=false", f"docker://{server.host}/{REPO}:{TAG}")
        assert json.loads(out.stdout)["Digest"] == image.digest


def test_split_oci_archive_is_read_by_base_name(
    tmp_path: Path, env: dict[str, str], image: Seeded
) -> None:
    base = tmp_path / "img-oci.tar"
    sneaker("pull", "-q", "--format", "oci", "--split", "1M", "-o", base, image.ref, env=env)
    parts = _parts(base)
    assert len(parts) >= 4
    assert all(p.stat().st_size <= PART for p in parts)
    joined = tmp_path / "joined-oci.tar"
    with joined.open("wb") as sink:
        for part in parts:
            with part.open("rb") as source:
                shutil.copyfileobj(source, sink)
    # skopeo reads the joined archive with the registry's digest
    out = skopeo("inspect", f"oci-archive:{joined}:{TAG}")
    assert json.loads(out.stdout)["Digest"] == image.digest
    inspected = json.loads(sneaker("inspect", "--json", base, env=env).stdout)
    assert [i["digest"] for i in inspected["images"]] == [image.digest]


def test_assemble_writes_a_split_set_too(
    tmp_path: Path, env: dict[str, str], image: Seeded
) -> None:
    plan_dir = tmp_path / "plan"
    sneaker("plan", "-q", image.ref, "-o", plan_dir, env=env)
    need("curl")
    run(["sh", "fetch.sh"], cwd=plan_dir, env=env, timeout=300)
    base = tmp_path / "parts" / "img.tar"
    base.parent.mkdir()
    sneaker("assemble", "-q", plan_dir, "-o", base, "--split", "1M", env=env)
    parts = _parts(base)
    assert len(parts) >= 4
    assert all(p.stat().st_size <= PART for p in parts)
    whole = tmp_path / "whole.tar"
    sneaker("assemble", "-q", plan_dir, "-o", whole, env=env)
    with (tmp_path / "joined.tar").open("wb") as sink:
        subprocess.run([need("cat"), *map(str, parts)], stdout=sink, check=True, timeout=60)
    assert (tmp_path / "joined.tar").read_bytes() == whole.read_bytes()
    sneaker("verify", "-q", base, env=env)

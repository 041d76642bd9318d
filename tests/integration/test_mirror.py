"""Mirrors and registry settings with real registries: the mirror serves, the archive keeps
the original name; a mirror that is down or lacks the image falls back to the origin, and
so does a blob a mirror sends bad bytes for; registries.conf and daemon.json warnings,
syntax errors and blocks through the CLI.

Mirrors are second registries seeded with skopeo (never with sneaker); bad bytes come from
the byte-flipping proxy of ``tests/fixtures/shaping.py`` in front of a registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from sneaker.errors import ConfigError, IntegrityError, RegistryBlocked
from sneaker.registry.mirrors import MirroringClient, make_client_factory
from sneaker.registry.options import RegistryOptions
from sneaker.settings import load_settings
from sneaker.verbs.pull import pull
from sneaker.verbs.verify import verify
from tests.fixtures import shaping
from tests.fixtures.registry import RegistryInfo
from tests.fixtures.seeding import Seeded
from tests.fixtures.shaping import ShapingProxy
from tests.fixtures.tools import skopeo
from tests.helpers import free_port

MakeRegistry = Callable[..., RegistryInfo]
MakeProxy = Callable[..., ShapingProxy]

shaping_proxy = shaping.shaping_proxy  # the fixture, made visible to this module


def copy_image(
    source: RegistryInfo, source_ref: str, target: RegistryInfo, target_ref: str
) -> None:
    """Registry to registry with skopeo, digests kept."""
    skopeo(
        "copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
        f"docker://{source.host}/{source_ref}", f"docker://{target.host}/{target_ref}",
    )  # fmt: skip


def closed_address() -> str:
    """A loopback address nothing listens on (connections are refused)."""
    return f"127.0.0.1:{free_port()}"


def repo_tags(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest: list[dict[str, Any]] = json.load(member)
    return [tag for entry in manifest for tag in entry["RepoTags"]]


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    return next(line for line in done.stderr.splitlines() if line.startswith("error: "))


def sneaker(
    *args: str | os.PathLike[str], env: Mapping[str, str], home: Path
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, with settings files chosen by ``env``."""
    full_env = {
        **os.environ,
        "HOME": str(home),
        "CONTAINERS_REGISTRIES_CONF": str(home / "none.conf"),
        "SNEAKER_DAEMON_JSON": "",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "sneaker", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
        check=False,
    )


@pytest.fixture
def mirror(make_registry: MakeRegistry, registry: RegistryInfo, seeded: Seeded) -> RegistryInfo:
    """A second registry holding a copy of test/small:1 (same path) and mirrors/test/small:1."""
    info = make_registry()
    copy_image(registry, "test/small:1", info, "test/small:1")
    copy_image(registry, "test/small:1", info, "mirrors/test/small:1")
    return info


def test_mirror_serves_and_the_archive_names_the_original(
    mirror: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    origin = closed_address()  # the origin cannot serve anything: the mirror must
    ref = f"{origin}/test/small:1"
    settings = load_settings(
        registries_conf=[], daemon_json=[], mirrors=[f"{origin}={mirror.host}"]
    )
    result = pull([ref], tmp_path / "small.tar", cache_dir=tmp_path / "cache", settings=settings)
    assert result.images[0].reference == ref
    assert result.images[0].digest == seeded.small.digest
    assert repo_tags(tmp_path / "small.tar") == [ref]


def test_mirror_is_preferred_while_the_origin_is_up(
    mirror: RegistryInfo, registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    settings = load_settings(
        registries_conf=[], daemon_json=[], mirrors=[f"{registry.host}={mirror.host}"]
    )
    with make_client_factory(settings, RegistryOptions()) as factory:
        result = pull(
            [seeded.small.ref],
            tmp_path / "small.tar",
            cache_dir=tmp_path / "cache",
            client_factory=factory,
        )
        client = factory(registry.host)
        assert isinstance(client, MirroringClient)
        served = {what.split()[0] for _, what, where in client.served_by_mirror}
        assert served == {"manifest", "blob"}
        assert {where for _, _, where in client.served_by_mirror} == {f"{mirror.host}/test/small"}
    assert repo_tags(tmp_path / "small.tar") == [seeded.small.ref]
    assert result.images[0].digest == seeded.small.digest


def test_mirror_down_falls_back_to_the_origin(
    registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    down = closed_address()
    settings = load_settings(
        registries_conf=[], daemon_json=[], mirrors=[f"{registry.host}={down}"]
    )
    with make_client_factory(settings, RegistryOptions()) as factory:
        result = pull(
            [seeded.small.ref],
            tmp_path / "small.tar",
            cache_dir=tmp_path / "cache",
            client_factory=factory,
        )
        client = factory(registry.host)
        assert isinstance(client, MirroringClient)
        assert client.served_by_mirror == []
    assert result.images[0].digest == seeded.small.digest
    assert repo_tags(tmp_path / "small.tar") == [seeded.small.ref]


def test_mirror_without_the_image_falls_back_to_the_origin(
    make_registry: MakeRegistry, registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    empty = make_registry()
    settings = load_settings(
        registries_conf=[], daemon_json=[], mirrors=[f"{registry.host}={empty.host}"]
    )
    result = pull(
        [seeded.small.ref], tmp_path / "small.tar", cache_dir=tmp_path / "cache", settings=settings
    )
    assert result.images[0].digest == seeded.small.digest
    assert repo_tags(tmp_path / "small.tar") == [seeded.small.ref]


def largest_layer(registry: RegistryInfo, repository: str, tag: str) -> tuple[str, bytes]:
    """The digest and bytes of the largest layer of ``repository:tag`` (read with urllib)."""

    def get(path: str, accept: str = "*/*") -> bytes:
        request = urllib.request.Request(f"{registry.url}/v2/{repository}/{path}")
        request.add_header("Accept", accept)
        with urllib.request.urlopen(request, timeout=30) as answer:
            data: bytes = answer.read()
        return data

    accept = (
        "application/vnd.docker.distribution.manifest.v2+json, "
        "application/vnd.oci.image.manifest.v1+json"
    )
    manifest = json.loads(get(f"manifests/{tag}", accept))
    layer = max(manifest["layers"], key=lambda d: d["size"])
    data = get(f"blobs/{layer['digest']}")
    assert hashlib.sha256(data).hexdigest() == layer["digest"].removeprefix("sha256:")
    return layer["digest"], data


def blob_bodies(proxy: ShapingProxy, digest: str) -> list[shaping.Served]:
    """Blob bodies the proxy's registry sent for ``digest``."""
    return [b for b in proxy.served(f"/blobs/{digest}") if b.status in (200, 206)]


def blob_downloads(proxy: ShapingProxy) -> set[str]:
    """The digests of every blob body the proxy's registry sent."""
    return {b.path.rsplit("/", 1)[-1] for b in proxy.served("/blobs/") if b.status in (200, 206)}


def test_mirror_with_bad_bytes_for_a_blob_falls_back_to_the_origin_for_it(
    mirror: RegistryInfo,
    registry: RegistryInfo,
    seeded: Seeded,
    shaping_proxy: MakeProxy,
    tmp_path: Path,
) -> None:
    layer, data = largest_layer(registry, "test/small", "1")
    origin = shaping_proxy(registry.url)
    bad = shaping_proxy(mirror.url)
    bad.shape("corrupt", path_contains=f"/blobs/{layer}", offset=len(data) // 2)
    ref = f"{origin.host}/test/small:1"
    settings = load_settings(
        registries_conf=[], daemon_json=[], mirrors=[f"{origin.host}={bad.host}"]
    )
    out = tmp_path / "small.tar"
    cache = tmp_path / "cache"
    with make_client_factory(settings, RegistryOptions()) as factory:
        result = pull([ref], out, cache_dir=cache, client_factory=factory)
        client = factory(origin.host)
        assert isinstance(client, MirroringClient)
        from_mirror = {what for _, what, _ in client.served_by_mirror}
    assert result.images[0].digest == seeded.small.digest
    assert repo_tags(out) == [ref]
    assert verify(out, deep=True) == []
    assert (cache / "blobs" / "sha256" / layer.removeprefix("sha256:")).read_bytes() == data
    # the mirror was asked once for the layer (and sent bad bytes), the origin sent it
    assert [b.shaped for b in blob_bodies(bad, layer)] == [("corrupt",)]
    assert len(blob_bodies(origin, layer)) == 1
    # every other blob came from the mirror, the origin was asked for no other
    assert blob_downloads(origin) == {layer}
    assert f"blob {layer}" in from_mirror  # the answer that turned out bad
    assert blob_downloads(bad) == {
        what.split()[1] for what in from_mirror if what.startswith("blob ")
    }


def test_bad_bytes_from_every_endpoint_fail_naming_the_blob_and_the_endpoints(
    mirror: RegistryInfo,
    registry: RegistryInfo,
    seeded: Seeded,
    shaping_proxy: MakeProxy,
    tmp_path: Path,
) -> None:
    layer, data = largest_layer(registry, "test/small", "1")
    flip = len(data) // 3
    origin = shaping_proxy(registry.url)
    bad = shaping_proxy(mirror.url)
    for proxy in (origin, bad):
        proxy.shape("corrupt", path_contains=f"/blobs/{layer}", offset=flip)
    damaged = bytearray(data)
    damaged[flip] ^= 0xFF
    wrong = hashlib.sha256(damaged).hexdigest()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cache = tmp_path / "cache"
    done = sneaker(
        "pull", "-q", f"{origin.host}/test/small:1", "-o", out_dir / "small.tar",
        "--cache-dir", cache, "--mirror", f"{origin.host}={bad.host}",
        env={}, home=tmp_path,
    )  # fmt: skip
    assert done.returncode == IntegrityError.exit_code, done.stderr
    assert done.stderr.splitlines() == [
        f"error: digest mismatch for blob {layer}: content hashes to sha256:{wrong} "
        f"(bad bytes from mirror {bad.host}/test/small, origin {origin.host}/test/small)"
    ]
    assert list(out_dir.iterdir()) == []  # no output, not even a temporary one
    hex_digest = layer.removeprefix("sha256:")
    assert not (cache / "blobs" / "sha256" / hex_digest).exists()
    assert not (cache / "partial" / "sha256" / hex_digest).exists()
    assert len(blob_bodies(bad, layer)) == 1
    assert len(blob_bodies(origin, layer)) == 1


def test_registries_conf_mirror_with_a_path_through_the_cli(
    mirror: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    origin = closed_address()
    conf = tmp_path / "registries.conf"
    conf.write_text(
        f'[[registry]]\nprefix = "{origin}"\nlocation = "{origin}"\ncolour = "blue"\n\n'
        f'[[registry.mirror]]\nlocation = "{mirror.host}/mirrors"\n'
    )
    ref = f"{origin}/test/small:1"
    out = tmp_path / "small.tar"
    done = sneaker(
        "pull", "-q", ref, "-o", out, "--cache-dir", tmp_path / "cache",
        env={"CONTAINERS_REGISTRIES_CONF": str(conf)}, home=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"warning: {conf}, line 4: unknown key 'colour' in [[registry]] (ignored)" in (
        done.stderr.splitlines()
    )
    assert repo_tags(out) == [ref]


def test_daemon_json_hub_mirror_through_the_cli(
    mirror: RegistryInfo, registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    copy_image(registry, "test/small:1", mirror, "library/sneaker-small:1")
    daemon = tmp_path / "daemon.json"
    daemon.write_text(
        "{\n"
        f'  "registry-mirrors": ["http://{mirror.host}"],\n'
        '  "log-level": "info",\n'
        '  "mirror-colour": "red"\n'
        "}\n"
    )
    out = tmp_path / "hub.tar"
    done = sneaker(
        "pull", "-q", "sneaker-small:1", "-o", out, "--cache-dir", tmp_path / "cache",
        env={"SNEAKER_DAEMON_JSON": str(daemon)}, home=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"warning: {daemon}, line 4: unknown key 'mirror-colour' (ignored)" in (
        done.stderr.splitlines()
    )
    assert repo_tags(out) == ["sneaker-small:1"]  # docker.io/library/sneaker-small:1


def test_bad_syntax_names_file_and_line_through_the_cli(tmp_path: Path) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text('[[registry]]\nlocation = "a.example"\ninsecure = yes\n')
    done = sneaker(
        "pull", "a.example/app:1", "-o", tmp_path / "x.tar",
        env={"CONTAINERS_REGISTRIES_CONF": str(conf)}, home=tmp_path,
    )  # fmt: skip
    assert done.returncode == ConfigError.exit_code
    assert error_line(done) == (f"error: {conf}, line 3: invalid TOML: Invalid value (column 12)")
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{\n  "registry-mirrors": ["https://m.example"]\n  "debug": true\n}\n')
    done = sneaker(
        "pull", "a.example/app:1", "-o", tmp_path / "x.tar",
        env={"SNEAKER_DAEMON_JSON": str(daemon)}, home=tmp_path,
    )  # fmt: skip
    assert done.returncode == ConfigError.exit_code
    assert error_line(done) == (
        f"error: {daemon}, line 3: invalid JSON: Expecting ',' delimiter (column 3)"
    )
    assert not (tmp_path / "x.tar").exists()


def test_blocked_registry_is_refused_naming_the_file(
    registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text(
        f'[[registry]]\nlocation = "example.org"\n\n[[registry]]\n'
        f'location = "{registry.host}"\nblocked = true\n'
    )
    done = sneaker(
        "pull", "-q", seeded.small.ref, "-o", tmp_path / "x.tar",
        env={"CONTAINERS_REGISTRIES_CONF": str(conf)}, home=tmp_path,
    )  # fmt: skip
    assert done.returncode == RegistryBlocked.exit_code
    assert error_line(done) == (
        f"error: {registry.host}/test/small is blocked by {conf}, line 4 (blocked = true)"
    )
    assert not (tmp_path / "x.tar").exists()
    # the library refuses it too, before any request
    settings = load_settings(registries_conf=[conf], daemon_json=[])
    with pytest.raises(RegistryBlocked, match=f"blocked by {conf}, line 4"):
        pull([seeded.small.ref], tmp_path / "y.tar", use_cache=False, settings=settings)

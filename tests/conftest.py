"""Session fixtures: real peers (registry, dockerd, podman, containerd) on loopback.

The machinery lives in ``tests/fixtures/``; this file only wires it into pytest.
Every daemon is started once per session (``make_registry`` once per call) and
stopped at the end even when tests fail.

Fixtures:
  registry        RegistryInfo: plain HTTP registry, no auth
  make_registry   factory: make_registry(tls=False, basic_auth=False) -> fresh RegistryInfo
  token_registry  TokenRegistryInfo: token auth; .server is the TokenServer
  tls_registry    RegistryInfo: HTTPS (localhost:PORT, .ca_cert) + htpasswd basic auth
  docker          DockerDaemon: private dockerd; .run(*args), .host
  busybox         Path of Debian's static busybox
  built_images    BuiltImages: sneaker-test/app:1 (+ app_output, app_id), small images
  seeded          Seeded: the app pushed to every session registry
  multiarch       MultiArch: index test/multi:1 in `registry` (amd64, arm64, attestation)
  artifacts       SeededArtifacts: a Helm chart, cosign signatures, OCI 1.1 referrers (SBOMs,
                  attestation) with fallback tags, in a registry of their own
  hauler_manifest HaulerManifest: a Hauler manifest file naming the `artifacts` content
  podman          Podman: private vfs storage; .run(*args), .load(archive)
  containerd      Containerd: private containerd; .ctr(*args), .import_archive(archive)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.fixtures.artifacts import (  # noqa: E402
    HaulerManifest,
    SeededArtifacts,
    seed_artifacts,
    write_hauler_manifest,
)
from tests.fixtures.containerd import Containerd, start_containerd  # noqa: E402
from tests.fixtures.docker import DockerDaemon, start_docker  # noqa: E402
from tests.fixtures.images import BuiltImages, build_images, busybox_path  # noqa: E402
from tests.fixtures.multiarch import MultiArch, build_multiarch  # noqa: E402
from tests.fixtures.podman import Podman, start_podman  # noqa: E402
from tests.fixtures.process import remove_tree, short_tempdir  # noqa: E402
from tests.fixtures.registry import (  # noqa: E402
    MakeRegistry,
    RegistryInfo,
    RegistryProcess,
    TokenRegistryInfo,
    start_plain_registry,
    start_tls_registry,
    start_token_registry,
)
from tests.fixtures.seeding import Seeded, seed_all, set_default_daemon  # noqa: E402
from tests.helpers import in_ci  # noqa: E402

# Property-based tests (tests/unit/test_fuzz_*.py): the same examples on every CI run.
# HYPOTHESIS_PROFILE picks another; docs/security.md says how to fuzz for longer.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "default")
)

_INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration/ carries the ``integration`` marker."""
    for item in items:
        if _INTEGRATION_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def registry() -> Iterator[RegistryInfo]:
    workdir = short_tempdir("snkr-")
    try:
        proc = start_plain_registry(workdir)
        try:
            yield proc.info
        finally:
            proc.stop()
    finally:
        remove_tree(workdir)


@pytest.fixture
def make_registry() -> Iterator[MakeRegistry]:
    """Factory for fresh, empty registries, stopped at the end of the test.

    ``make_registry()`` -> plain HTTP; ``make_registry(tls=True)`` -> HTTPS with
    basic auth (like ``tls_registry``); ``make_registry(token=True)`` -> token auth
    (a TokenRegistryInfo).
    """
    started: list[tuple[RegistryProcess, Path]] = []

    def make(*, tls: bool = False, token: bool = False) -> RegistryInfo:
        workdir = short_tempdir("snkr-")
        try:
            if tls:
                proc = start_tls_registry(workdir)
            elif token:
                proc = start_token_registry(workdir)
            else:
                proc = start_plain_registry(workdir)
        except BaseException:
            remove_tree(workdir)
            raise
        started.append((proc, workdir))
        return proc.info

    try:
        yield make
    finally:
        for proc, workdir in reversed(started):
            try:
                proc.stop()
            finally:
                remove_tree(workdir)


@pytest.fixture(scope="session")
def token_registry() -> Iterator[TokenRegistryInfo]:
    workdir = short_tempdir("snkt-")
    try:
        proc = start_token_registry(workdir)
        try:
            yield proc.info
        finally:
            proc.stop()
    finally:
        remove_tree(workdir)


@pytest.fixture(scope="session")
def tls_registry() -> Iterator[RegistryInfo]:
    workdir = short_tempdir("snks-")
    try:
        proc = start_tls_registry(workdir)
        try:
            yield proc.info
        finally:
            proc.stop()
    finally:
        remove_tree(workdir)


@pytest.fixture(scope="session")
def docker() -> Iterator[DockerDaemon]:
    daemon = start_docker()
    set_default_daemon(daemon)
    try:
        yield daemon
    finally:
        set_default_daemon(None)
        daemon.stop()


@pytest.fixture(scope="session")
def busybox() -> Path:
    return busybox_path()


@pytest.fixture(scope="session")
def built_images(docker: DockerDaemon, busybox: Path) -> Iterator[BuiltImages]:
    workdir = short_tempdir("snkb-")
    try:
        yield build_images(docker, busybox, workdir)
    finally:
        remove_tree(workdir)


@pytest.fixture(scope="session")
def seeded(
    docker: DockerDaemon,
    built_images: BuiltImages,
    registry: RegistryInfo,
    token_registry: TokenRegistryInfo,
    tls_registry: RegistryInfo,
) -> Seeded:
    return seed_all(docker, built_images, registry, token_registry, tls_registry)


@pytest.fixture(scope="session")
def multiarch(
    docker: DockerDaemon, built_images: BuiltImages, registry: RegistryInfo
) -> Iterator[MultiArch]:
    workdir = short_tempdir("snkm-")
    try:
        yield build_multiarch(docker, built_images, registry, workdir)
    finally:
        remove_tree(workdir)


@pytest.fixture(scope="session")
def artifacts() -> Iterator[SeededArtifacts]:
    """tests/fixtures/artifacts.py's content, seeded into a fresh plain registry (no referrers
    API), so its tag lists hold nothing else."""
    workdir = short_tempdir("snka-")
    try:
        proc = start_plain_registry(workdir / "registry")
        try:
            yield seed_artifacts(proc.info, workdir / "content")
        finally:
            proc.stop()
    finally:
        remove_tree(workdir)


@pytest.fixture
def hauler_manifest(artifacts: SeededArtifacts, tmp_path: Path) -> HaulerManifest:
    """``hauler-manifest.yaml`` (kinds Images and Charts) naming the `artifacts` content."""
    return write_hauler_manifest(tmp_path / "hauler-manifest.yaml", artifacts)


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    instance = start_podman()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    instance = start_containerd()
    try:
        yield instance
    finally:
        instance.stop()

"""Deltas end to end: ``pull --since OLD`` / ``--have INVENTORY`` -> ``push`` -> docker runs it.

v1 is the session's ``sneaker-test/small:1`` (busybox, one layer); v2 is built by
docker ``FROM`` it with one more layer, so they share the busybox layer. Both are
put into a source registry R1 with ``docker push`` (docker reuses the compressed
busybox blob, so the layer digest is the same in both). sneaker pulls through a
recording proxy in front of R1, which shows which blobs were downloaded.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.docker import DockerDaemon
from tests.fixtures.faults import FaultProxy
from tests.fixtures.images import BuiltImages
from tests.fixtures.process import remove_tree, short_tempdir
from tests.fixtures.registry import RegistryInfo, start_plain_registry
from tests.fixtures.seeding import docker_push, raw_manifest
from tests.fixtures.tools import skopeo
from tests.helpers import isolated_env, sneaker

pytestmark = pytest.mark.integration

V2_TAG = "sneaker-test/delta:2"
V2_OUTPUT = "delta-v2-output"
V2_DOCKERFILE = """FROM sneaker-test/small:1
COPY v2.txt /v2.txt
CMD ["cat", "/v2.txt"]
"""


@dataclass(frozen=True)
class Chain:
    """R1 holding v1 and v2, a recording proxy in front of it, and OLD (v1 pulled by sneaker)."""

    source: RegistryInfo
    proxy: FaultProxy
    old: Path
    base_layer: str  # the layer v1 and v2 share
    new_layer: str  # the layer only v2 has
    v2_config: str
    v2_digest: str

    @property
    def v1_ref(self) -> str:
        return f"{self.proxy.host}/base/app:1"

    @property
    def v2_ref(self) -> str:
        return f"{self.proxy.host}/team/app:2"


@pytest.fixture(scope="module")
def chain(
    docker: DockerDaemon,
    built_images: BuiltImages,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Chain]:
    root = tmp_path_factory.mktemp("delta")
    context = root / "v2"
    context.mkdir()
    (context / "v2.txt").write_text(V2_OUTPUT + "\n")
    (context / "Dockerfile").write_text(V2_DOCKERFILE)
    docker.run("build", "--network", "none", "-t", V2_TAG, str(context))

    workdir = short_tempdir("snkd-")
    registry = start_plain_registry(workdir)
    proxy = FaultProxy(registry.info.url).start()
    info = registry.info
    try:
        docker_push(info, built_images.small, "base/app:1", daemon=docker)
        v2_digest = docker_push(info, V2_TAG, "team/app:2", daemon=docker)
        v1 = raw_manifest(info, "base/app:1")
        v2 = raw_manifest(info, "team/app:2")
        (base_layer,) = [layer["digest"] for layer in v1["layers"]]
        shared, new_layer = [layer["digest"] for layer in v2["layers"]]
        assert shared == base_layer
        assert new_layer != base_layer

        old = root / "old.tar"
        sneaker(
            "pull", "-q", "--cache-dir", root / "old-cache", "-o", old,
            f"{proxy.host}/base/app:1", env=isolated_env(root, inherit=True),
        )  # fmt: skip
        yield Chain(info, proxy, old, base_layer, new_layer, v2["config"]["digest"], v2_digest)
    finally:
        proxy.stop()
        registry.stop()
        remove_tree(workdir)
        for tag in (V2_TAG, info.ref("base/app:1"), info.ref("team/app:2")):
            docker.run("rmi", tag, check=False)


def _blob_gets(proxy: FaultProxy, since: int, digest: str) -> list[str]:
    return [
        r.path for r in proxy.requests[since:] if r.method == "GET" and f"/blobs/{digest}" in r.path
    ]


def _members(archive: Path) -> dict[str, int]:
    with tarfile.open(archive) as tar:
        return {m.name: m.size for m in tar.getmembers()}


def _marker(archive: Path) -> dict[str, object]:
    with tarfile.open(archive) as tar:
        handle = tar.extractfile("sneaker-delta.json")
        assert handle is not None
        doc: dict[str, object] = json.loads(handle.read())
        return doc


def _pull_delta(
    chain: Chain, env: dict[str, str], out: Path, cache: Path, *base: str
) -> dict[str, object]:
    """``sneaker pull --json BASE... v2``: the summary; checks that only new blobs came."""
    mark = len(chain.proxy.requests)
    result = sneaker(
        "pull", "--json", "--cache-dir", cache, "-o", out, *base, chain.v2_ref, env=env
    )  # fmt: skip
    summary: dict[str, object] = json.loads(result.stdout)
    # the old layer never crossed the slow link; the new one and the config did
    assert _blob_gets(chain.proxy, mark, chain.base_layer) == []
    assert len(_blob_gets(chain.proxy, mark, chain.new_layer)) == 1
    assert len(_blob_gets(chain.proxy, mark, chain.v2_config)) == 1
    assert summary["format"] == "oci-archive"
    assert summary["blobs"] == {"downloaded": 2, "resumed": 0, "cached": 0}
    delta = summary["delta"]
    assert isinstance(delta, dict)
    assert delta["omitted"] == 1
    return summary


def _check_delta_archive(chain: Chain, delta: Path, repositories: list[str]) -> None:
    """Every manifest and config, only the new layer, and the marker naming the old one."""
    members = _members(delta)
    blobs = {f"sha256:{n.rsplit('/', 1)[1]}" for n in members if n.startswith("blobs/sha256/")}
    assert chain.base_layer not in blobs
    assert {chain.new_layer, chain.v2_config, chain.v2_digest} <= blobs
    assert len(blobs) == 3  # manifest, config, new layer
    assert "manifest.json" not in members  # not a docker archive
    marker = _marker(delta)
    assert marker["format"] == "sneaker-delta"
    assert marker["version"] == 1
    omitted = marker["omitted"]
    assert isinstance(omitted, list)
    (entry,) = omitted
    assert entry["digest"] == chain.base_layer
    assert entry["repositories"] == repositories


def _docker_runs(docker: DockerDaemon, ref: str) -> None:
    docker.run("pull", ref)
    try:
        out = docker.run("run", "--rm", "--network", "none", ref).stdout.strip()
        assert out == V2_OUTPUT
    finally:
        docker.run("rmi", ref, check=False)


def _complete_in(registry: RegistryInfo, repo_ref: str, tmp: Path, digest: str) -> None:
    """skopeo downloads (and checks) every blob of the image: the registry has them all."""
    out = tmp / f"copy-{repo_ref.replace('/', '_').replace(':', '_')}"
    skopeo(
        "copy", "--src-tls-verify=false", "--preserve-digests",
        f"docker://{registry.ref(repo_ref)}", f"dir:{out}",
    )  # fmt: skip
    inspected = skopeo("inspect", "--tls-verify=false", f"docker://{registry.ref(repo_ref)}")
    assert json.loads(inspected.stdout)["Digest"] == digest


def test_since_old_archive_push_completes_the_image(
    tmp_path: Path,
    env: dict[str, str],
    chain: Chain,
    docker: DockerDaemon,
    make_registry: Callable[..., RegistryInfo],
) -> None:
    target = make_registry()
    # the other side received OLD (pushed by sneaker: the product's own flow)
    sneaker("push", "-q", chain.old, target.host, env=env)

    delta = tmp_path / "delta.tar"
    _pull_delta(chain, env, delta, tmp_path / "fresh-cache", "--since", str(chain.old))
    _check_delta_archive(chain, delta, [f"{chain.proxy.host}/base/app"])

    # v2 goes to another repository than v1: the old layer is mounted from base/app
    pushed = json.loads(sneaker("push", "--json", delta, target.host, env=env).stdout)
    (image,) = pushed["images"]
    assert image["target"] == f"{target.host}/team/app:2"
    assert image["digest"] == chain.v2_digest
    assert image["blobs"] == {"uploaded": 2, "skipped": 0, "mounted": 1}

    _complete_in(target, "team/app:2", tmp_path, chain.v2_digest)
    _docker_runs(docker, target.ref("team/app:2"))


def test_have_inventory_of_the_target_push_completes_the_image(
    tmp_path: Path,
    env: dict[str, str],
    chain: Chain,
    docker: DockerDaemon,
    make_registry: Callable[..., RegistryInfo],
) -> None:
    target = make_registry()
    sneaker("push", "-q", chain.old, f"{target.host}/mirror", env=env)

    have = tmp_path / "have.json"
    wrote = sneaker("inventory", "-q", target.host, "-o", have, env=env)
    assert wrote.stdout.startswith(f"wrote {have}: 1 image, 2 blobs")
    inventory = json.loads(have.read_text())
    assert inventory["complete"] is True
    assert inventory["blobs"][chain.base_layer]["repositories"] == [
        f"{target.host}/mirror/base/app"
    ]

    delta = tmp_path / "delta.tar"
    _pull_delta(chain, env, delta, tmp_path / "fresh-cache", "--have", str(have))
    _check_delta_archive(chain, delta, [f"{target.host}/mirror/base/app"])

    pushed = json.loads(sneaker("push", "--json", delta, f"{target.host}/other", env=env).stdout)
    (image,) = pushed["images"]
    assert image["target"] == f"{target.host}/other/team/app:2"
    assert image["blobs"]["mounted"] == 1

    _complete_in(target, "other/team/app:2", tmp_path, chain.v2_digest)
    _docker_runs(docker, target.ref("other/team/app:2"))


def test_a_delta_is_never_loadable_and_says_so(
    tmp_path: Path,
    env: dict[str, str],
    chain: Chain,
    docker: DockerDaemon,
    make_registry: Callable[..., RegistryInfo],
) -> None:
    cache = tmp_path / "cache"
    # sneaker refuses to write a delta in docker format
    refused = sneaker(
        "pull", "-q", "--format", "docker", "--since", chain.old, "--cache-dir", cache,
        "-o", tmp_path / "nope.tar", chain.v2_ref, env=env, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "error: a delta archive cannot be a docker archive" in refused.stderr
    assert "hint: use --format oci" in refused.stderr
    assert not (tmp_path / "nope.tar").exists()

    delta = tmp_path / "delta.tar"
    sneaker(
        "pull", "-q", "--since", chain.old, "--cache-dir", cache, "-o", delta, chain.v2_ref,
        env=env,
    )  # fmt: skip

    # verify (and unpack) say what it is and what to do with it
    verified = sneaker("verify", delta, env=env, check=False)
    assert verified.returncode == 9
    assert "is a delta archive" in verified.stderr
    assert "push it onto a registry that holds the images of its base (archive " in verified.stderr
    unpacked = sneaker("unpack", delta, tmp_path / "rootfs", env=env, check=False)
    assert unpacked.returncode == 9
    assert "push it onto a registry that holds the images of its base (archive " in unpacked.stderr

    # docker itself cannot load it (there is no manifest.json to read)
    loaded = docker.run("load", "-i", str(delta), check=False)
    assert loaded.returncode != 0

    # a registry without the base: a clear error naming the blob, and nothing pushed
    empty = make_registry()
    pushed = sneaker("push", delta, empty.host, env=env, check=False)
    assert pushed.returncode == 5
    assert chain.base_layer in pushed.stderr
    assert "the target lacks the delta's base" in pushed.stderr
    assert "hint: push the base archive" in pushed.stderr
    missing = skopeo(
        "inspect", "--tls-verify=false", f"docker://{empty.ref('team/app:2')}", check=False
    )
    assert missing.returncode != 0

"""``sneaker serve`` against real clients: docker, podman, skopeo, ctr, urllib3 and curl.

The archives are written by real tools, never by sneaker: ``docker save``
(docker 20.10, the legacy format), ``skopeo copy ... oci-archive:`` from the
daemon and (``--all``) from the multi-platform index in the test registry, and
``skopeo copy ... oci:`` for a layout directory. One server on a free loopback
port serves all four for the module.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import urllib3

from sneaker.verbs.serve import RegistryServer, serve
from sneaker.verbs.serve.tls import HTTPS_ON_PLAIN
from tests.fixtures.containerd import Containerd
from tests.fixtures.docker import DockerDaemon
from tests.fixtures.images import BuiltImages
from tests.fixtures.multiarch import MultiArch
from tests.fixtures.podman import Podman
from tests.fixtures.tools import skopeo
from tests.helpers import REPO_ROOT, free_port, need, read_tail, run, wait_http

pytestmark = pytest.mark.integration

UNIQUE = "sneaker-test/serve-unique:1"
OCI_NAME = "sneaker-test/app:oci"
LAYOUT_NAME = "sneaker-test/small:layout"
MULTI_NAME = "test/multi:1"
DOCKER_ACCEPT = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
)


@dataclass
class Served:
    server: RegistryServer
    host: str
    legacy: Path
    oci: Path
    layout: Path
    multi: Path
    unique_marker: str
    oci_digest: str  # what index.json of the skopeo OCI archive names
    layout_digest: str
    log: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _index_json_of_tar(path: Path) -> dict[str, Any]:
    with tarfile.open(path) as tf:
        member = tf.extractfile("index.json")
        assert member is not None
        doc: dict[str, Any] = json.load(member)
        return doc


def _manifest_in_tar(path: Path, digest: str) -> dict[str, Any]:
    with tarfile.open(path) as tf:
        member = tf.extractfile(f"blobs/sha256/{digest.split(':', 1)[1]}")
        assert member is not None
        doc: dict[str, Any] = json.load(member)
        return doc


def _named_digest(index: dict[str, Any], ref_name: str) -> str:
    for desc in index["manifests"]:
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref_name:
            return str(desc["digest"])
    raise AssertionError(f"no {ref_name!r} in {index}")


def _build_unique(docker: DockerDaemon, busybox: Path, workdir: Path) -> str:
    """An image whose one layer no other image shares, so a pull must fetch every blob."""
    marker = f"served-by-sneaker-{random.randrange(1 << 62):x}"
    ctx = workdir / "unique"
    (ctx / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy2(busybox, ctx / "rootfs" / "bin" / "busybox")
    (ctx / "rootfs" / "marker").write_text(marker + "\n")
    (ctx / "Dockerfile").write_text(
        'FROM scratch\nCOPY rootfs/ /\nENTRYPOINT ["/bin/busybox", "cat", "/marker"]\n'
    )
    docker.run("build", "--network", "none", "-t", UNIQUE, str(ctx))
    return marker


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    docker: DockerDaemon,
    built_images: BuiltImages,
    busybox: Path,
    multiarch: MultiArch,
) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("serve")
    marker = _build_unique(docker, busybox, workdir)
    legacy = docker.save(workdir / "legacy.tar", built_images.app, UNIQUE)
    # Gone from the daemon: pulling it back must transfer every layer.
    docker.run("rmi", UNIQUE)
    oci = workdir / "app-oci.tar"
    skopeo(
        "copy", "--src-daemon-host", docker.host,
        f"docker-daemon:{built_images.app}", f"oci-archive:{oci}:{OCI_NAME}",
    )  # fmt: skip
    layout = workdir / "small-layout"
    skopeo(
        "copy", "--src-daemon-host", docker.host,
        f"docker-daemon:{built_images.small}", f"oci:{layout}:{LAYOUT_NAME}",
    )  # fmt: skip
    multi = workdir / "multi.tar"
    skopeo(
        "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
        f"docker://{multiarch.ref}", f"oci-archive:{multi}:{MULTI_NAME}",
    )  # fmt: skip
    oci_digest = _named_digest(_index_json_of_tar(oci), OCI_NAME)
    layout_digest = _named_digest(json.loads((layout / "index.json").read_text()), LAYOUT_NAME)
    log: list[str] = []
    server = serve([legacy, oci, layout, multi], "127.0.0.1:0", log=log.append)
    with server:
        yield Served(
            server=server,
            host=server.host,
            legacy=legacy,
            oci=oci,
            layout=layout,
            multi=multi,
            unique_marker=marker,
            oci_digest=oci_digest,
            layout_digest=layout_digest,
            log=log,
        )


@pytest.fixture(scope="module")
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(maxsize=16, retries=False, timeout=urllib3.Timeout(30))
    yield pool
    pool.clear()


def _manifest(http: urllib3.PoolManager, served: Served, repo: str, ref: str) -> Any:
    return http.request(
        "GET", served.url(f"/v2/{repo}/manifests/{ref}"), headers={"Accept": DOCKER_ACCEPT}
    )


def _blobs_of(
    http: urllib3.PoolManager, served: Served, repo: str, ref: str
) -> list[dict[str, Any]]:
    resp = _manifest(http, served, repo, ref)
    assert resp.status == 200, resp.data
    doc = json.loads(resp.data)
    return [doc["config"], *doc["layers"]]


# -- real clients --------------------------------------------------------------------------------


def test_served_images_and_start_up_listing(served: Served, built_images: BuiltImages) -> None:
    names = sorted(image.name(served.host) for image in served.server.images)
    assert names == sorted(
        f"{served.host}/{n}" for n in (built_images.app, UNIQUE, OCI_NAME, LAYOUT_NAME, MULTI_NAME)
    )
    assert served.server.warnings == []
    assert served.server.address[0] == "127.0.0.1"
    assert served.server.url == f"http://{served.host}"


def test_docker_pull_and_run(
    served: Served, docker: DockerDaemon, built_images: BuiltImages
) -> None:
    ref = f"{served.host}/{built_images.app}"
    docker.run("pull", ref)
    try:
        # docker save's config is the image itself: pulled back, the ID is the same
        assert docker.image_id(ref) == built_images.app_id
        out = docker.run("run", "--rm", "--network", "none", ref).stdout.strip()
        assert out == built_images.app_output
    finally:
        docker.run("rmi", ref, check=False)


def test_docker_pull_transfers_every_layer(served: Served, docker: DockerDaemon) -> None:
    ref = f"{served.host}/{UNIQUE}"
    before = len(served.log)
    docker.run("pull", ref)
    try:
        out = docker.run("run", "--rm", "--network", "none", ref).stdout.strip()
        assert out == served.unique_marker
    finally:
        docker.run("rmi", ref, check=False)
    repo = UNIQUE.split(":")[0]
    blob_gets = [
        line for line in served.log[before:]
        if f'"GET /v2/{repo}/blobs/sha256:' in line and '" 200 ' in line
    ]  # fmt: skip
    assert len(blob_gets) >= 2, served.log[before:]  # the config and the one layer


def test_docker_pull_index(served: Served, docker: DockerDaemon, multiarch: MultiArch) -> None:
    ref = f"{served.host}/{MULTI_NAME}"
    docker.run("pull", ref)
    try:
        repo_digests = docker.inspect_image(ref)["RepoDigests"]
        assert f"{served.host}/{multiarch.repository}@{multiarch.index_digest}" in repo_digests
        out = docker.run("run", "--rm", "--network", "none", ref).stdout.strip()
        assert out == "small"
    finally:
        docker.run("rmi", ref, check=False)


def test_podman_pull(served: Served, podman: Podman, built_images: BuiltImages) -> None:
    # podman's image ID is the config's digest: docker's own for the docker save archive,
    # the one in skopeo's OCI archive for the other.
    oci_config = _manifest_in_tar(served.oci, served.oci_digest)["config"]["digest"]
    for name, config in ((built_images.app, built_images.app_id), (OCI_NAME, oci_config)):
        ref = f"{served.host}/{name}"
        podman.run("pull", "--tls-verify=false", ref)
        image = podman.inspect_image(ref)
        assert f"sha256:{image['Id']}" == config, name
        podman.run("rmi", ref)


def test_skopeo_inspect_and_copy(
    served: Served, tmp_path: Path, docker: DockerDaemon, built_images: BuiltImages,
    multiarch: MultiArch,
) -> None:  # fmt: skip
    # The legacy archive holds no manifest: config and layers are docker's own.
    ref = f"docker://{served.host}/{built_images.app}"
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout)
    assert raw["config"]["digest"] == built_images.app_id
    layers = docker.inspect_image(built_images.app)["RootFS"]["Layers"]
    assert [layer["digest"] for layer in raw["layers"]] == layers

    expected = {
        OCI_NAME: served.oci_digest,
        LAYOUT_NAME: served.layout_digest,
        MULTI_NAME: multiarch.index_digest,
    }
    for name, digest in expected.items():
        info = json.loads(
            skopeo("inspect", "--tls-verify=false", f"docker://{served.host}/{name}").stdout
        )
        assert info["Digest"] == digest, name

    for name in (built_images.app, OCI_NAME):
        out = tmp_path / name.replace("/", "_").replace(":", "_")
        skopeo("copy", "--src-tls-verify=false", f"docker://{served.host}/{name}", f"dir:{out}")
        manifest_bytes = (out / "manifest.json").read_bytes()
        if name == OCI_NAME:
            assert _sha256(manifest_bytes) == served.oci_digest
        doc = json.loads(manifest_bytes)
        for desc in [doc["config"], *doc["layers"]]:
            blob = (out / desc["digest"].split(":", 1)[1]).read_bytes()
            assert _sha256(blob) == desc["digest"]
            assert len(blob) == desc["size"]


def test_https_attempts_on_the_plain_server_get_one_clear_line(
    served: Served, docker: DockerDaemon, built_images: BuiltImages
) -> None:
    before = len(served.log)
    # skopeo verifies TLS unless told otherwise: it tries HTTPS, and says what it got
    refused = skopeo("inspect", f"docker://{served.host}/{built_images.app}", check=False)
    assert refused.returncode != 0
    assert "server gave HTTP response to HTTPS client" in refused.stderr
    # docker tries HTTPS first on a loopback registry, then falls back to plain HTTP
    ref = f"{served.host}/{built_images.app}"
    docker.run("pull", ref)
    docker.run("rmi", ref)
    tried = [line for line in served.log[before:] if HTTPS_ON_PLAIN in line]
    assert len(tried) >= 2, served.log[before:]
    assert set(tried) == {f"127.0.0.1 {HTTPS_ON_PLAIN}"}
    assert not [line for line in served.log if "Bad request version" in line]


def test_ctr_pull(
    served: Served, containerd: Containerd, multiarch: MultiArch, http: urllib3.PoolManager
) -> None:
    # For the docker save archive, the manifest is the one sneaker synthesised: ask for its digest.
    legacy = _manifest(http, served, "sneaker-test/app", "1").headers["Docker-Content-Digest"]
    for name, digest in (
        (OCI_NAME, served.oci_digest),
        (MULTI_NAME, multiarch.index_digest),
        ("sneaker-test/app:1", legacy),
    ):
        ref = f"{served.host}/{name}"
        containerd.ctr("images", "pull", "--plain-http", "--snapshotter", containerd.snapshotter,
                       ref)  # fmt: skip
        listing = containerd.ctr("images", "list").stdout
        line = next(row for row in listing.splitlines() if row.startswith(ref + " "))
        assert digest in line
        containerd.ctr("images", "remove", ref)


# -- the protocol, with urllib3 and curl ---------------------------------------------------------


def test_ranges(served: Served, http: urllib3.PoolManager) -> None:
    cases = [
        ("sneaker-test/app", "oci"),
        ("sneaker-test/app", "1"),
        ("sneaker-test/small", "layout"),
    ]
    for repo, tag in cases:
        layer = max(_blobs_of(http, served, repo, tag), key=lambda d: int(d["size"]))
        url = served.url(f"/v2/{repo}/blobs/{layer['digest']}")
        size = int(layer["size"])
        full = http.request("GET", url)
        assert full.status == 200
        assert full.headers["Docker-Content-Digest"] == layer["digest"]
        assert int(full.headers["Content-Length"]) == size
        assert _sha256(full.data) == layer["digest"]
        body = full.data

        part = http.request("GET", url, headers={"Range": "bytes=10-99"})
        assert part.status == 206
        assert part.headers["Content-Range"] == f"bytes 10-99/{size}"
        assert part.data == body[10:100]
        tail = http.request("GET", url, headers={"Range": "bytes=-100"})
        assert (tail.status, tail.data) == (206, body[-100:])
        rest = http.request("GET", url, headers={"Range": f"bytes={size - 5}-"})
        assert (rest.status, rest.data) == (206, body[-5:])
        beyond = http.request("GET", url, headers={"Range": f"bytes={size}-"})
        assert beyond.status == 416
        assert beyond.headers["Content-Range"] == f"bytes */{size}"
        head = http.request("HEAD", url)
        assert head.status == 200
        assert int(head.headers["Content-Length"]) == size
        assert head.data == b""

        curl_out = Path(served.legacy.parent / "curl-part")
        run([need("curl"), "-sSf", "-r", "0-99", "-o", str(curl_out), url])
        assert curl_out.read_bytes() == body[:100]


def test_manifests_by_tag_and_digest(
    served: Served, http: urllib3.PoolManager, multiarch: MultiArch
) -> None:
    index = _manifest(http, served, "test/multi", "1")
    assert index.status == 200
    assert index.headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
    assert _sha256(index.data) == multiarch.index_digest
    assert index.headers["Docker-Content-Digest"] == multiarch.index_digest
    assert index.headers["ETag"] == f'"{multiarch.index_digest}"'
    for digest in (multiarch.amd64_digest, multiarch.arm64_digest, multiarch.attestation_digest):
        child = http.request("GET", served.url(f"/v2/test/multi/manifests/{digest}"))
        assert child.status == 200
        assert _sha256(child.data) == digest
        head = http.request("HEAD", served.url(f"/v2/test/multi/manifests/{digest}"))
        assert head.headers["Docker-Content-Digest"] == digest
        assert int(head.headers["Content-Length"]) == len(child.data)
    # A client that takes no index gets the linux/amd64 manifest instead.
    only = http.request(
        "GET",
        served.url("/v2/test/multi/manifests/1"),
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert only.status == 200
    assert only.headers["Docker-Content-Digest"] == multiarch.amd64_digest
    # Docker Hub style aliases: the full name works too.
    full = _manifest(http, served, "docker.io/sneaker-test/app", "oci")
    assert full.headers["Docker-Content-Digest"] == served.oci_digest


def test_errors(served: Served, http: urllib3.PoolManager, multiarch: MultiArch) -> None:
    def error(method: str, path: str) -> tuple[int, str]:
        resp = http.request(method, served.url(path))
        if method == "HEAD":
            return resp.status, ""
        return resp.status, json.loads(resp.data)["errors"][0]["code"]

    assert error("GET", "/v2/nope/manifests/1") == (404, "NAME_UNKNOWN")
    assert error("GET", "/v2/sneaker-test/app/manifests/2") == (404, "MANIFEST_UNKNOWN")
    assert error("HEAD", "/v2/sneaker-test/app/manifests/2") == (404, "")
    assert error("GET", f"/v2/sneaker-test/app/manifests/{multiarch.index_digest}") == (
        404, "MANIFEST_UNKNOWN",
    )  # fmt: skip
    # blobs only for repositories whose images reference them
    arm64 = _blobs_of(http, served, "test/multi", multiarch.arm64_digest)[0]["digest"]
    assert http.request("GET", served.url(f"/v2/test/multi/blobs/{arm64}")).status == 200
    assert error("GET", f"/v2/sneaker-test/app/blobs/{arm64}") == (404, "BLOB_UNKNOWN")
    assert error("GET", "/v2/sneaker-test/app/blobs/sha256:zz") == (400, "DIGEST_INVALID")


def test_write_methods_refused(served: Served, http: urllib3.PoolManager, tmp_path: Path) -> None:
    digest = served.oci_digest
    for method, path in (
        ("PUT", "/v2/sneaker-test/app/manifests/2"),
        ("DELETE", f"/v2/sneaker-test/app/manifests/{digest}"),
        ("POST", "/v2/sneaker-test/app/blobs/uploads/"),
        ("PATCH", "/v2/sneaker-test/app/blobs/uploads/abc"),
        ("PUT", f"/v2/sneaker-test/app/blobs/uploads/abc?digest={digest}"),
        ("DELETE", f"/v2/sneaker-test/app/blobs/{digest}"),
        ("POST", "/v2/new/repo/blobs/uploads/"),
    ):
        resp = http.request(method, served.url(path), body=b"{}")
        assert resp.status == 405, (method, path)
        assert resp.headers["Allow"] == "GET, HEAD"
        error = json.loads(resp.data)["errors"][0]
        assert error["code"] == "UNSUPPORTED"
        assert "read-only" in error["message"]
    # and a real client trying to push is turned away
    out = tmp_path / "pushed"
    skopeo("copy", "--src-tls-verify=false", f"docker://{served.host}/{LAYOUT_NAME}", f"dir:{out}")
    pushed = skopeo(
        "copy", "--dest-tls-verify=false", f"dir:{out}", f"docker://{served.host}/x/y:1",
        check=False,
    )  # fmt: skip
    assert pushed.returncode != 0


def test_catalog_and_tags_pagination(served: Served, http: urllib3.PoolManager) -> None:
    whole = json.loads(http.request("GET", served.url("/v2/_catalog")).data)["repositories"]
    assert whole == sorted(
        ["sneaker-test/app", "sneaker-test/serve-unique", "sneaker-test/small", "test/multi"]
    )
    pages: list[str] = []
    path = "/v2/_catalog?n=1"
    for _ in range(10):
        resp = http.request("GET", served.url(path))
        pages.extend(json.loads(resp.data)["repositories"])
        link = resp.headers.get("Link")
        if not link:
            break
        path = link.split(";")[0].strip("<>")
    assert pages == whole
    tags = json.loads(http.request("GET", served.url("/v2/sneaker-test/app/tags/list")).data)
    assert tags == {"name": "sneaker-test/app", "tags": ["1", "oci"]}
    first = http.request("GET", served.url("/v2/sneaker-test/app/tags/list?n=1"))
    assert json.loads(first.data)["tags"] == ["1"]
    assert first.headers["Link"] == '</v2/sneaker-test/app/tags/list?n=1&last=1>; rel="next"'
    second = http.request("GET", served.url("/v2/sneaker-test/app/tags/list?n=1&last=1"))
    assert json.loads(second.data)["tags"] == ["oci"]
    assert "Link" not in second.headers


def test_many_clients_at_once(served: Served) -> None:
    http = urllib3.PoolManager(maxsize=2, retries=False, timeout=urllib3.Timeout(60))
    blobs: list[tuple[str, dict[str, Any]]] = []
    for repo, tag in (("sneaker-test/app", "1"), ("sneaker-test/app", "oci"),
                      ("sneaker-test/small", "layout")):  # fmt: skip
        blobs.extend((repo, desc) for desc in _blobs_of(http, served, repo, tag))
    errors: list[str] = []
    lock = threading.Lock()

    def client(seed: int) -> int:
        rng = random.Random(seed)
        pool = urllib3.PoolManager(maxsize=1, retries=False, timeout=urllib3.Timeout(60))
        fetched = 0
        for _ in range(3):
            for repo, desc in rng.sample(blobs, len(blobs)):
                url = served.url(f"/v2/{repo}/blobs/{desc['digest']}")
                size = int(desc["size"])
                full = pool.request("GET", url)
                if full.status != 200 or _sha256(full.data) != desc["digest"]:
                    with lock:
                        errors.append(f"client {seed}: {url} -> {full.status}")
                    continue
                start = rng.randrange(size) if size else 0
                part = pool.request("GET", url, headers={"Range": f"bytes={start}-"})
                if size and (part.status != 206 or part.data != full.data[start:]):
                    with lock:
                        errors.append(f"client {seed}: range {start}- of {url} -> {part.status}")
                fetched += 1
        pool.clear()
        return fetched

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(client, seed) for seed in range(8)]
        counts = [f.result(timeout=300) for f in futures]
    assert errors == []
    assert counts == [3 * len(blobs)] * 8


# -- the command -----------------------------------------------------------------------------------


def _start_cli(
    args: list[str], workdir: Path, port: int
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    out, err = workdir / f"serve-{port}.out", workdir / f"serve-{port}.err"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sneaker", "serve", *args, "--addr", f"127.0.0.1:{port}"],
            stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/", timeout=60, alive=lambda: proc.poll() is None,
                  diagnostics=lambda: read_tail(err))  # fmt: skip
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise
    return proc, out, err


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise


def test_cli_serves_until_sigterm_later_archive_wins(
    served: Served, docker: DockerDaemon, built_images: BuiltImages, tmp_path: Path
) -> None:
    # A second archive naming sneaker-test/app:1 differently (skopeo's own manifest).
    rival = tmp_path / "rival.tar"
    skopeo(
        "copy", "--src-daemon-host", docker.host,
        f"docker-daemon:{built_images.app}", f"oci-archive:{rival}:{built_images.app}",
    )  # fmt: skip
    rival_digest = _named_digest(_index_json_of_tar(rival), built_images.app)
    port = free_port()
    proc, out, err = _start_cli([str(served.legacy), str(rival)], tmp_path, port)
    try:
        http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(30))
        resp = http.request(
            "HEAD",
            f"http://127.0.0.1:{port}/v2/sneaker-test/app/manifests/1",
            headers={"Accept": DOCKER_ACCEPT},
        )
        assert resp.headers["Docker-Content-Digest"] == rival_digest
    finally:
        code = _stop(proc, signal.SIGTERM)
    stdout, stderr = out.read_text(), err.read_text()
    assert code == 0, stderr
    assert f"at http://127.0.0.1:{port}" in stdout
    assert f"127.0.0.1:{port}/{built_images.app}  {rival_digest}  ({rival})" in stdout
    assert f"127.0.0.1:{port}/{UNIQUE}" in stdout
    assert f"warning: sneaker-test/app:1 is in {served.legacy} and in {rival}" in stderr
    assert '"HEAD /v2/sneaker-test/app/manifests/1 HTTP/1.1" 200 0' in stderr


def test_cli_quiet_stops_on_ctrl_c(served: Served, tmp_path: Path) -> None:
    port = free_port()
    proc, out, err = _start_cli([str(served.layout), "-q"], tmp_path, port)
    code = _stop(proc, signal.SIGINT)
    assert code == 0
    assert f"127.0.0.1:{port}/{LAYOUT_NAME}" in out.read_text()
    assert "HTTP/1.1" not in err.read_text()


def test_shutdown_closes_idle_keep_alive_connections(served: Served) -> None:
    server = serve([served.layout], "127.0.0.1:0")
    server.start()
    http = urllib3.PoolManager(maxsize=4, retries=False, timeout=urllib3.Timeout(30))
    for _ in range(3):  # three kept-alive connections, idle once answered
        assert http.request("GET", f"{server.url}/v2/", preload_content=True).status == 200
    started = time.monotonic()
    server.shutdown()
    assert time.monotonic() - started < 5  # not the 10 s wait for connections to end
    server.shutdown()  # twice is fine
    with pytest.raises(urllib3.exceptions.HTTPError):
        urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(5)).request(
            "GET", f"{server.url}/v2/"
        )
    http.clear()

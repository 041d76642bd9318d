#!/usr/bin/env python3
"""Pulls over a wide-area link: sneaker against skopeo, docker and the limit, in one run.

Not a test (pytest never collects it): a script that

1. writes test data (a small image, and a fleet of small multi-platform images sharing
   a base layer) and copies it into a local registry with ``skopeo`` (never sneaker);
2. puts registries behind a latency-and-bandwidth-injecting proxy of its own
   (``wanlink.py``): a plain one, one with token auth whose token service is another
   host behind its own proxy, and the same over TLS;
3. checks the link (calibration), then times, at each round-trip time and round by
   round, ``sneaker pull`` (docker archive and OCI layout), ``skopeo copy`` one image
   after another, and ``docker pull`` (all images at once) + ``docker save``;
4. prints each row's median, its ratio to the limit (the round trips a perfect client
   needs plus the bytes at the link rate) and sneaker's ratio to docker, and what the
   proxy saw of each tool's requests;
5. times GETs on one reused connection to ``sneaker serve`` and to docker-registry.

Usage: ``python benchmarks/bench_wan.py [--repeat 3] [--rtt 0,20,50,100] [--json]``
(root is needed for the docker rows). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import shlex
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.benchlib import (  # noqa: E402
    cleaner,
    log,
    module_argv,
    run_timed,
    sneaker_argv,
    sneaker_env,
)
from benchmarks.wan_images import Workload, seed_workloads  # noqa: E402
from benchmarks.wanlink import (  # noqa: E402
    MBIT,
    Calibration,
    ConnRecord,
    Network,
    Step,
    Traffic,
    calibrate,
    limit_seconds,
    perfect_round_trips,
    request_kind,
    summarize,
)
from tests.fixtures.docker import DockerDaemon, start_docker  # noqa: E402
from tests.fixtures.pki import make_signing_key, make_tls_files  # noqa: E402
from tests.fixtures.process import Daemon, remove_tree, short_tempdir  # noqa: E402
from tests.fixtures.random_images import OCI_INDEX, OCI_MANIFEST  # noqa: E402
from tests.fixtures.registry import (  # noqa: E402
    TOKEN_ISSUER,
    TOKEN_SERVICE,
    RegistryInfo,
    RegistryProcess,
    _start,
    start_plain_registry,
)
from tests.fixtures.token_server import TokenServer  # noqa: E402
from tests.fixtures.tools import empty_auth_file  # noqa: E402
from tests.helpers import free_port, wait_http  # noqa: E402

REPOSITORY_PREFIX = "bench/"  # anonymous pull is allowed below it on the token registries
ACCEPT = ", ".join(
    [OCI_INDEX, OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"]
)


# -- registries behind the link ------------------------------------------------------------


@dataclass
class Variant:
    """A registry as the clients see it: ``host`` is its proxy on the link."""

    name: str
    title: str
    host: str
    token: bool
    tls: bool
    sneaker_options: list[str] = field(default_factory=list)
    skopeo_options: list[str] = field(default_factory=list)

    def steps(self, workload: Workload) -> list[Step]:
        return perfect_round_trips(index=workload.index, token=self.token, tls=self.tls)

    def limit(self, workload: Workload, rtt: float, rate: float) -> float:
        trips = sum(step.round_trips for step in self.steps(workload))
        return limit_seconds(trips, workload.nbytes, rtt, rate)


def _port(info: RegistryInfo) -> int:
    return int(info.host.rsplit(":", 1)[1])


def _token_registry(
    work: Path, name: str, storage: Path, realm: str, bundle: Path
) -> RegistryProcess:
    """docker-registry with ``auth: token`` (realm: the token service's proxy), serving
    the storage the plain registry was seeded into."""
    workdir = work / name
    workdir.mkdir()
    (workdir / "storage").symlink_to(storage)
    auth = {
        "token": {
            "realm": realm,
            "service": TOKEN_SERVICE,
            "issuer": TOKEN_ISSUER,
            "rootcertbundle": str(bundle),
        }
    }
    daemon, port, _ = _start(workdir, auth=auth)
    info = RegistryInfo(host=f"127.0.0.1:{port}", url=f"http://127.0.0.1:{port}", storage=storage)
    return RegistryProcess(info, daemon, workdir)


class Registries:
    """The registries and token service the variants need, and stopping them all."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.processes: list[RegistryProcess] = []
        self.token_server: TokenServer | None = None

    def plain(self) -> RegistryProcess:
        (self.work / "plain").mkdir()
        registry = start_plain_registry(self.work / "plain")
        self.processes.append(registry)
        return registry

    def variants(
        self, names: list[str], net: Network, storage: Path, plain: RegistryInfo
    ) -> list[Variant]:
        variants: list[Variant] = []
        if "plain" in names:
            host = f"127.0.0.1:{net.proxy('registry', _port(plain))}"
            variants.append(
                Variant("plain", "plain HTTP registry, no auth", host, token=False, tls=False)
            )
        if "token" not in names and "tls" not in names:
            return variants
        signing_key = make_signing_key()
        bundle = signing_key.write_cert(self.work / "token-signer.crt")
        self.token_server = TokenServer(
            signing_key,
            service=TOKEN_SERVICE,
            issuer=TOKEN_ISSUER,
            username="bench",
            password=os.urandom(12).hex(),
            public_prefix=REPOSITORY_PREFIX,
        ).start()
        token_port = self.token_server.port
        if "token" in names:
            variant = Variant(
                "token",
                "HTTP registry with token auth (anonymous pull), the token service another "
                "host behind its own proxy",
                "",
                token=True,
                tls=False,
            )
            variants.append(self._behind_token(variant, net, storage, token_port, bundle, None))
        if "tls" in names:
            tls = make_tls_files(self.work / "tls")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls.server_cert, tls.server_key)
            variant = Variant(
                "tls",
                "HTTPS registry with token auth, the token service another HTTPS host "
                "(as Docker Hub, GHCR and Quay are)",
                "",
                token=True,
                tls=True,
                sneaker_options=["--ca-cert", str(tls.ca_cert)],
                skopeo_options=["--src-cert-dir", str(tls.cert_dir)],
            )
            variants.append(self._behind_token(variant, net, storage, token_port, bundle, context))
        return variants

    def _behind_token(
        self,
        variant: Variant,
        net: Network,
        storage: Path,
        token_port: int,
        bundle: Path,
        tls: ssl.SSLContext | None,
    ) -> Variant:
        """``variant`` with its host: a token registry whose realm is the token service's
        own proxy, behind a proxy of its own (both TLS servers with ``tls``)."""
        scheme = "https" if tls else "http"
        realm = f"{scheme}://127.0.0.1:{net.proxy('token', token_port, tls=tls)}/token"
        registry = _token_registry(self.work, f"registry-{variant.name}", storage, realm, bundle)
        self.processes.append(registry)
        variant.host = f"127.0.0.1:{net.proxy('registry', _port(registry.info), tls=tls)}"
        return variant

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        if self.token_server is not None:
            self.token_server.stop()


# -- what is timed -------------------------------------------------------------------------


@dataclass
class Case:
    variant: str
    workload: str
    name: str
    prepare: Callable[[], None]
    argv: list[str]
    env: dict[str, str] | None
    output: Path | None = None  # checked after the first run: it holds the bytes
    times: dict[float, list[float]] = field(default_factory=dict)
    traffic: dict[float, list[Traffic]] = field(default_factory=dict)
    #: per round-trip time, the last run's start and connection records
    last: dict[float, tuple[float, list[ConnRecord]]] = field(default_factory=dict)


SNEAKER_DOCKER = "sneaker -> docker archive"
SNEAKER_OCI = "sneaker -> OCI layout"
DOCKER = "docker pull (all at once) + docker save"


@dataclass
class Tools:
    """How each tool is started; ``docker`` is None without the docker rows."""

    sneaker: list[str]
    env: dict[str, str]
    sneaker_extra: list[str]
    baseline: tuple[list[str], dict[str, str]] | None
    skopeo: bool
    docker: DockerDaemon | None


def _sh(commands: list[list[str]]) -> list[str]:
    return ["sh", "-c", " && ".join(shlex.join(c) for c in commands)]


def _docker_script(docker: DockerDaemon, refs: list[str], tar: Path) -> list[str]:
    client = shlex.join([docker.client, "-H", docker.host])
    lines = ["set -e", "pids="]
    for ref in refs:
        lines.append(f'{client} pull -q {shlex.quote(ref)} >/dev/null & pids="$pids $!"')
    lines += [
        'for p in $pids; do wait "$p"; done',
        f"{client} save -o {shlex.quote(str(tar))} " + " ".join(shlex.quote(r) for r in refs),
    ]
    return ["sh", "-c", "\n".join(lines)]


def _remove_docker_images(docker: DockerDaemon) -> None:
    ids = docker.run("images", "-aq", check=False).stdout.split()
    if ids:
        docker.run("rmi", "-f", *sorted(set(ids)), check=False)
    docker.run("image", "prune", "-f", check=False)


def make_cases(variant: Variant, workload: Workload, tools: Tools, out: Path) -> list[Case]:
    refs = workload.refs(variant.host)
    base = out / f"{variant.name}-{workload.name}"
    base.mkdir(parents=True)
    listing = base / "images.txt"
    listing.write_text("".join(f"{ref}\n" for ref in refs))
    images = refs if len(refs) == 1 else ["-f", str(listing)]
    v, w = variant.name, workload.name
    cases: list[Case] = []

    def sneaker_rows(label: str, argv: list[str], env: dict[str, str]) -> None:
        prefix = label.strip() or "own"
        cold = base / f"{prefix}-cache"
        tar = base / f"{prefix}-sneaker.tar"
        oci = base / f"{prefix}-sneaker-oci"
        pull = [*argv, "pull", "-q", *variant.sneaker_options, *tools.sneaker_extra]
        cases.extend(
            [
                Case(v, w, f"{label}{SNEAKER_DOCKER}", cleaner(cold, tar),
                     [*pull, "--cache-dir", str(cold), "-o", str(tar), *images], env, tar),
                Case(v, w, f"{label}{SNEAKER_OCI}", cleaner(cold, oci),
                     [*pull, "--cache-dir", str(cold), "--format", "oci", "-o", f"{oci}/",
                      *images], env, oci),
            ]
        )  # fmt: skip

    sneaker_rows("", tools.sneaker, tools.env)
    if tools.baseline is not None:
        argv, extra = tools.baseline
        sneaker_rows("baseline ", argv, {**tools.env, **extra})
    if tools.skopeo:
        skopeo = ["skopeo", "--insecure-policy", "copy", *variant.skopeo_options]
        if not variant.tls:
            skopeo.append("--src-tls-verify=false")
        env = {**tools.env, "REGISTRY_AUTH_FILE": str(empty_auth_file())}
        archives = base / "skopeo-archives"
        oci = base / "skopeo-oci"

        def make_archives() -> None:
            cleaner(archives)()
            archives.mkdir()

        one_by_one = "" if len(refs) == 1 else " (one by one)"
        cases += [
            Case(v, w, f"skopeo -> docker-archive{one_by_one}", make_archives,
                 _sh([[*skopeo, f"docker://{ref}", f"docker-archive:{archives}/{i}.tar:{ref}"]
                      for i, ref in enumerate(refs)]), env, archives),
            Case(v, w, f"skopeo -> oci{one_by_one}", cleaner(oci),
                 _sh([[*skopeo, f"docker://{ref}", f"oci:{oci}:image-{i}"]
                      for i, ref in enumerate(refs)]), env, oci),
        ]  # fmt: skip
    if tools.docker is not None:
        docker = tools.docker
        tar = base / "docker.tar"

        def docker_clean() -> None:
            _remove_docker_images(docker)
            cleaner(tar)()

        cases.append(
            Case(v, w, DOCKER, docker_clean, _docker_script(docker, refs, tar),
                 {**os.environ, **docker.env}, tar)
        )  # fmt: skip
    return cases


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_case(case: Case, net: Network, *, sync: bool) -> tuple[float, list[ConnRecord], float]:
    case.prepare()
    if sync:
        os.sync()  # no run pays for writing back what the one before it left
    net.reset()
    start = time.monotonic()
    elapsed = run_timed(case.argv, env=case.env)
    return elapsed, net.records(), start


# -- sneaker serve: GETs on one reused connection ---------------------------------------


@dataclass(frozen=True)
class ServeTiming:
    server: str
    first: float
    manifest: float  # median
    blob: float  # median
    total: float
    requests: int


def time_gets(server: str, port: int, manifest: str, blob: str, rounds: int) -> ServeTiming:
    """``1 + 2 * rounds`` GETs on one keep-alive connection: a manifest first, then the
    manifest and a small blob (the config) in turn."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(path: str) -> float:
        begin = time.perf_counter()
        conn.request("GET", path, headers={"Accept": ACCEPT})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{server}: GET {path}: {response.status}")
        return time.perf_counter() - begin

    try:
        begin = time.perf_counter()
        first = get(manifest)
        manifests, blobs = [], []
        for _ in range(rounds):
            manifests.append(get(manifest))
            blobs.append(get(blob))
        total = time.perf_counter() - begin
    finally:
        conn.close()
    return ServeTiming(
        server, first, statistics.median(manifests), statistics.median(blobs), total,
        1 + 2 * rounds,
    )  # fmt: skip


def serve_timings(
    work: Path, plain: RegistryInfo, workload: Workload, tools: Tools, rounds: int
) -> list[ServeTiming]:
    """The first fleet image (this platform) copied by skopeo into an OCI layout, served by
    ``sneaker serve`` (and the baseline's); GETs timed against it and docker-registry."""
    repository = workload.repositories[0]
    layout = work / "serve-layout"
    env = {**os.environ, "REGISTRY_AUTH_FILE": str(empty_auth_file())}
    subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--preserve-digests", "--src-tls-verify=false",
         f"docker://{plain.host}/{repository}:1", f"oci:{layout}:{repository}:1"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest.split(":")[1]).read_text())
    manifest_path = f"/v2/{repository}/manifests/{manifest_digest}"
    blob_path = f"/v2/{repository}/blobs/{manifest['config']['digest']}"
    servers: list[tuple[str, list[str], dict[str, str]]] = [
        ("sneaker serve", tools.sneaker, tools.env)
    ]
    if tools.baseline is not None:
        argv, extra = tools.baseline
        servers.append(("baseline sneaker serve", argv, {**tools.env, **extra}))
    timings = [time_gets("docker-registry", _port(plain), manifest_path, blob_path, rounds)]
    for name, argv, env in servers:
        port = free_port()
        daemon = Daemon(
            name, [*argv, "serve", "-q", "--addr", f"127.0.0.1:{port}", str(layout)],
            work / f"{name.replace(' ', '-')}.log", env=env,
        )  # fmt: skip
        try:
            wait_http(f"http://127.0.0.1:{port}/v2/", timeout=30, alive=daemon.alive,
                      diagnostics=daemon.log_tail)  # fmt: skip
            timings.append(time_gets(name, port, manifest_path, blob_path, rounds))
        finally:
            daemon.stop()
    return timings


# -- the report ----------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def _median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def _steps_text(steps: list[Step]) -> str:
    return ", ".join(step.what for step in steps)


def report_tables(
    variant: Variant,
    workload: Workload,
    cases: list[Case],
    rtts: list[float],
    rate: float,
    detail_rtt: float,
) -> list[str]:
    steps = variant.steps(workload)
    trips = sum(step.round_trips for step in steps)
    header = " | ".join(f"{rtt * 1000:.0f} ms" for rtt in rtts)
    lines = [
        f"### {variant.name}: {workload.title}",
        "",
        f"limit: {trips} round trips ({_steps_text(steps)}) + {workload.nbytes / 1e6:.2f} MB "
        f"at {rate / MBIT:.0f} Mbit/s. Median seconds (ratio to the limit) by round-trip time:",
        "",
        f"| row | {header} |",
        "|---|" + "---:|" * len(rtts),
        "| limit | " + " | ".join(f"{variant.limit(workload, r, rate):.2f}" for r in rtts) + " |",
    ]
    for case in cases:
        cells = []
        for rtt in rtts:
            median = statistics.median(case.times[rtt])
            cells.append(f"{median:.2f} ({median / variant.limit(workload, rtt, rate):.1f}x)")
        lines.append(f"| {case.name} | " + " | ".join(cells) + " |")
    by_name = {case.name: case for case in cases}
    pairs = [(SNEAKER_DOCKER, DOCKER), (SNEAKER_OCI, DOCKER)]
    pairs += [
        (SNEAKER_DOCKER, f"baseline {SNEAKER_DOCKER}"),
        (SNEAKER_OCI, f"baseline {SNEAKER_OCI}"),
    ]
    for mine, other in pairs:
        if other in by_name:
            ratios = [_median_ratio(by_name[mine].times[r], by_name[other].times[r]) for r in rtts]
            lines.append(
                f"| *{mine} / {other}* | " + " | ".join(f"{x:.2f}x" for x in ratios) + " |"
            )
    lines += [
        "",
        f"What the proxy saw at {detail_rtt * 1000:.0f} ms (last round; times in ms since the "
        "command started; *idle*: connections that carried no HTTP request, such as a TLS "
        "probe or a TLS hello to a plain-HTTP server):",
        "",
        "| row | connections (registry+token) | idle | requests | token | ping | manifest "
        "| blob | 401 | max in flight | first request | first blob | last byte | command |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        traffic = case.traffic[detail_rtt][-1]
        r = traffic.requests
        conns = "+".join(str(n) for _, n in sorted(traffic.connections.items()))
        manifests = r.get("manifest", 0)
        heads = r.get("manifest HEAD", 0) + r.get("blob HEAD", 0)
        manifest_cell = f"{manifests}" + (f" (+{heads} HEAD)" if heads else "")
        lines.append(
            f"| {case.name} | {conns} | {traffic.idle_connections} | {traffic.request_count} "
            f"| {r.get('token', 0)} | {r.get('ping', 0)} | {manifest_cell} | {r.get('blob', 0)} "
            f"| {traffic.statuses.get(401, 0)} | {traffic.max_in_flight} "
            f"| {_ms(traffic.first_request)} | {_ms(traffic.first_blob)} "
            f"| {_ms(traffic.last_byte)} | {_ms(case.times[detail_rtt][-1])} |"
        )
    lines.append("")
    return lines


def request_log(records: list[ConnRecord], start: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for number, record in enumerate(records):
        if not record.exchanges:
            rows.append(
                {"conn": number, "host": record.host, "opened": record.opened - start,
                 "first_bytes": record.kind, "request": None}
            )  # fmt: skip
        for exchange in record.exchanges:
            rows.append(
                {
                    "conn": number,
                    "host": record.host,
                    "opened": record.opened - start,
                    "first_bytes": record.kind,
                    "request": f"{exchange.method} {exchange.target}",
                    "kind": request_kind(record.host, exchange),
                    "status": exchange.status,
                    "sent": exchange.sent - start,
                    "answered": None if exchange.answered is None else exchange.answered - start,
                    "done": None if exchange.done is None else exchange.done - start,
                    "body": exchange.body,
                }
            )
    return sorted(rows, key=lambda row: row.get("sent") or row["opened"])


def _git(*args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    return proc.stdout.strip()


def serve_table(timings: list[ServeTiming]) -> list[str]:
    lines = [
        f"### GETs on one reused connection, no proxy ({timings[0].requests} GETs: a "
        "manifest, then the manifest and the config blob in turn)",
        "",
        "| server | first GET ms | manifest GET ms (median) | blob GET ms (median) | all s |",
        "|---|---:|---:|---:|---:|",
    ]
    for t in timings:
        lines.append(
            f"| {t.server} | {t.first * 1000:.1f} | {t.manifest * 1000:.1f} "
            f"| {t.blob * 1000:.1f} | {t.total:.2f} |"
        )
    return [*lines, ""]


def write_json(
    path: Path,
    args: argparse.Namespace,
    started: datetime.datetime,
    calibrations: list[Calibration],
    grid: list[tuple[Variant, Workload, list[Case]]],
    rtts: list[float],
    rate: float,
    serve: list[ServeTiming],
) -> None:
    def ms(rtt: float) -> str:
        return f"{rtt * 1000:g}"

    doc = {
        "date": started.isoformat(),
        "commit": _git("rev-parse", "HEAD"),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "calibration": [asdict(c) for c in calibrations],
        "tables": [
            {
                "variant": variant.name,
                "workload": workload.name,
                "bytes": workload.nbytes,
                "round_trips": [step.what for step in variant.steps(workload)],
                "limit": {ms(r): variant.limit(workload, r, rate) for r in rtts},
                "rows": [
                    {
                        "name": case.name,
                        "argv": case.argv,
                        "times": {ms(r): case.times[r] for r in rtts},
                        "traffic": {ms(r): [asdict(t) for t in case.traffic[r]] for r in rtts},
                        "last_requests": {
                            ms(r): request_log(case.last[r][1], case.last[r][0]) for r in rtts
                        },
                    }
                    for case in cases
                ],
            }
            for variant, workload, cases in grid
        ],
        "serve": [asdict(t) for t in serve],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))


# -- main ------------------------------------------------------------------------------------


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (median reported)")
    parser.add_argument(
        "--rtt", default="0,20,50,100", help="round-trip times in ms, comma-separated"
    )
    parser.add_argument("--rate", type=float, default=200, help="link rate in Mbit/s (each way)")
    parser.add_argument("--window", type=float, default=6, help="per-connection window, MiB")
    parser.add_argument(
        "--variants",
        default="plain,token,tls",
        help="registries: plain, token, tls (comma-separated)",
    )
    parser.add_argument("--workloads", default="small,fleet", help="small, fleet (comma-separated)")
    parser.add_argument("--fleet-size", type=int, default=20, help="images in the fleet")
    parser.add_argument(
        "--detail-rtt", type=float, default=50, help="round-trip time (ms) of the request tables"
    )
    parser.add_argument("--no-docker", action="store_true", help="skip docker pull + save")
    parser.add_argument("--no-skopeo", action="store_true", help="skip the skopeo rows")
    parser.add_argument("--no-serve", action="store_true", help="skip the sneaker serve GETs")
    parser.add_argument("--serve-rounds", type=int, default=50, help="manifest+blob GET pairs")
    parser.add_argument(
        "--sneaker-args", default="", help="more options for every sneaker pull, e.g. '-j 16'"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="SRC",
        help="also time the sneaker in this source directory (the src/ of another checkout, "
        "e.g. from `git worktree add`), side by side with this one",
    )
    parser.add_argument(
        "--json",
        nargs="?",
        type=Path,
        const=REPO_ROOT / "benchmarks" / "results" / f"wan-{time.strftime('%Y%m%d-%H%M%S')}.json",
        help="also write timings, traffic and request logs as JSON (default file: "
        "benchmarks/results/wan-DATE-TIME.json)",
    )
    parser.add_argument("--no-sync", action="store_true", help="do not sync before each timed run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser.parse_args()


def main() -> int:
    args = _parse_args()
    rtts = [float(x) / 1000 for x in args.rtt.split(",") if x.strip()]
    detail_rtt = args.detail_rtt / 1000 if args.detail_rtt / 1000 in rtts else max(rtts)
    rate = args.rate * MBIT
    variant_names = [x.strip() for x in args.variants.split(",") if x.strip()]
    workload_names = [x.strip() for x in args.workloads.split(",") if x.strip()]
    work = short_tempdir("snkwan-")
    registries = Registries(work)
    net = Network(0.0, rate, window=int(args.window * 1024 * 1024))
    docker = None
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        plain = registries.plain().info
        workloads = [
            w
            for w in seed_workloads(plain, work / "data", args.fleet_size)
            if w.name in workload_names
        ]
        variants = registries.variants(variant_names, net, plain.storage, plain)

        calibrations: list[Calibration] = []
        for rtt in rtts:
            net.configure(rtt, rate)
            calibrations.append(calibrate(net))

        if not args.no_docker:
            log("starting a private dockerd")
            docker = start_docker()
        env = sneaker_env(work)
        sneaker = sneaker_argv()
        baseline = None
        if args.baseline is not None:  # both run the same way, each from its source tree
            sneaker, own_path = module_argv(REPO_ROOT / "src")
            env.update(own_path)
            baseline = module_argv(args.baseline)
        tools = Tools(
            sneaker, env, shlex.split(args.sneaker_args), baseline, not args.no_skopeo, docker
        )

        out = work / "out"
        grid = [
            (variant, workload, make_cases(variant, workload, tools, out))
            for variant in variants
            for workload in workloads
        ]
        # warm-up and check: every command once, untimed, on a link without delay (byte
        # code compiled, binaries and registry files in the page cache, outputs checked)
        net.configure(0.0, rate)
        for _, workload, cases in grid:
            for case in cases:
                log(f"warm-up: {case.variant:5} {case.workload:5} {case.name}")
                run_case(case, net, sync=False)
                if case.output is not None and _size(case.output) < workload.nbytes * 0.9:
                    raise SystemExit(f"{case.name}: {case.output} holds less than was pulled")

        for round_no in range(args.repeat):
            for variant, workload, cases in grid:
                for rtt in rtts:
                    net.configure(rtt, rate)
                    for case in cases:
                        elapsed, records, start = run_case(case, net, sync=not args.no_sync)
                        case.times.setdefault(rtt, []).append(elapsed)
                        case.traffic.setdefault(rtt, []).append(summarize(records, start))
                        case.last[rtt] = (start, records)
                        log(
                            f"round {round_no + 1}: {variant.name:5} {workload.name:5} "
                            f"{rtt * 1000:5.0f} ms  {case.name:45} {elapsed:7.2f} s"
                        )

        serve: list[ServeTiming] = []
        if not args.no_serve:
            fleet = next((w for w in workloads if w.name == "fleet"), None)
            if fleet is not None:
                serve = serve_timings(work, plain, fleet, tools, args.serve_rounds)
        load_after = os.getloadavg()
        lines = [
            f"{started:%Y-%m-%d %H:%M} UTC, commit {_git('rev-parse', '--short', 'HEAD')}"
            + (" (with uncommitted changes)" if _git("status", "--porcelain", "src") else "")
            + (f", baseline {args.baseline}" if args.baseline else ""),
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, load average {load_before[0]:.1f} before / "
            f"{load_after[0]:.1f} after; {args.repeat} rounds, medians; link "
            f"{args.rate:g} Mbit/s each way, window {args.window:g} MiB",
            "",
            "## The link, measured by itself",
            "",
            "| RTT | measure | measured | expected |",
            "|---:|---|---:|---:|",
        ]
        for calibration in calibrations:
            lines += calibration.lines()
        lines.append("")
        for variant, workload, cases in grid:
            lines += report_tables(variant, workload, cases, rtts, rate, detail_rtt)
        if serve:
            lines += serve_table(serve)
        print("\n".join(lines))
        if args.json:
            write_json(args.json, args, started, calibrations, grid, rtts, rate, serve)
            log(f"wrote {args.json}")
    finally:
        if docker is not None:
            docker.stop()
        net.stop()
        registries.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            remove_tree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())

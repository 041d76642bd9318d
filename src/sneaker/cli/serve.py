"""``sneaker serve``: parse, start :func:`sneaker.verbs.serve.serve`, wait for Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..verbs.serve import ServedImage


@click.command("serve")
@click.argument("archives", nargs=-1, required=True)
@click.option(
    "--addr",
    default="127.0.0.1:5000",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen. 0.0.0.0:PORT listens on every interface (other machines can pull).",
)
@click.option(
    "--tls-cert",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Serve HTTPS with this certificate (PEM; the server's certificate first, then any "
    "intermediates). Needs --tls-key.",
)
@click.option(
    "--tls-key",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The certificate's private key (PEM, unencrypted).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 4096),
    default=64,
    show_default=True,
    help="Connections served at once; more wait until one is free (a keep-alive connection "
    "idle for a second is closed to make room).",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not log one line per request.")
def command(
    archives: tuple[str, ...],
    addr: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    max_connections: int,
    quiet: bool,
) -> None:
    """Serve ARCHIVES as a read-only registry (OCI distribution API), nothing unpacked.

    ARCHIVES are docker save or sneaker archives, OCI archives or layout
    directories, or split archives (by base name). Each image is served under
    its repository path: docker.io/library/ubuntu:22.04 as library/ubuntu:22.04
    (also as ubuntu:22.04), ghcr.io/org/app:1 as org/app:1. Pull with e.g.
    `docker pull 127.0.0.1:5000/ubuntu:22.04` (docker, podman --tls-verify=false
    and ctr --plain-http talk plain HTTP to it).

    With --tls-cert and --tls-key it serves HTTPS (TLS 1.2 or newer) instead:
    clients need only the CA that signed the certificate (docker:
    /etc/docker/certs.d/HOST:PORT/ca.crt; podman and skopeo: --cert-dir DIR;
    containerd: hosts.toml's ca).

    When two archives hold the same repository:tag, the archive named later on
    the command line wins and a warning says so. Uploads and deletes are
    refused (405). Stop with Ctrl-C or SIGTERM.
    """
    from ..verbs.serve import serve

    def log(line: str) -> None:
        click.echo(line, err=True)

    server = serve(
        list(archives),
        addr,
        log=None if quiet else log,
        tls_cert=tls_cert,
        tls_key=tls_key,
        max_connections=max_connections,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for warning in server.warnings:
            click.echo(f"warning: {warning}", err=True)
        server.start()
        _banner(server.url, server.address, server.images, len(archives), tls=server.tls)
        while not stop.wait(1.0):
            pass
        click.echo("stopping", err=True)
    finally:
        server.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _banner(
    url: str,
    address: tuple[str, int],
    images: Sequence[ServedImage],
    archives: int,
    *,
    tls: bool,
) -> None:
    host, port = address
    everywhere = host in ("0.0.0.0", "::")
    shown = f"{socket.gethostname()}:{port}" if everywhere else url.split("://", 1)[1]
    noun = "archive" if archives == 1 else "archives"
    count = len(images)
    click.echo(
        f"serving {count} image{'' if count == 1 else 's'} from {archives} {noun} "
        f"at {url} (read-only; Ctrl-C to stop)"
    )
    if everywhere and tls:
        click.echo(
            "listening on every interface; clients on other machines need the CA that signed "
            "the certificate (docker: /etc/docker/certs.d/HOST:PORT/ca.crt, podman and skopeo: "
            "--cert-dir, containerd: hosts.toml), and a name or address the certificate holds"
        )
    elif everywhere:
        click.echo(
            "listening on every interface; clients on other machines must allow plain HTTP "
            "for this registry (docker: insecure-registries, podman: --tls-verify=false, "
            "ctr: --plain-http), or serve HTTPS with --tls-cert and --tls-key"
        )
    for image in images:
        click.echo(f"  {image.name(shown)}  {image.digest}  ({image.archive})")

"""``sneaker logout``: erase the stored credentials for a registry."""

from __future__ import annotations

from pathlib import Path

import click

from .options import authfile_option


@click.command("logout")
@click.argument("registry", required=False, default="docker.io")
@authfile_option(
    "Remove them from this containers auth.json, as podman and skopeo logout do "
    "(default: $REGISTRY_AUTH_FILE when set, else where docker stores them)."
)
def command(registry: str, authfile: Path | None) -> None:
    """Remove the credentials stored for REGISTRY (default: Docker Hub).

    From config.json and from the credential helper it names, as docker does; with
    --authfile FILE (or $REGISTRY_AUTH_FILE), from FILE. Credentials that podman or
    skopeo stored elsewhere, which pulls also read, are named after.
    """
    from ..errors import SneakerError
    from ..registry.credentials import find_credential
    from ..verbs.login import login_registry, logout

    host = login_registry(registry)
    if logout(host, authfile=authfile):
        click.echo(f"Removed the credentials for {host}")
    else:
        click.echo(f"Not logged in to {host}")
    try:
        left = find_credential(host, authfile=authfile)
    except SneakerError:
        return
    if left is not None:
        click.echo(
            f"note: credentials for {host} remain in {left.source}, which pulls read too",
            err=True,
        )

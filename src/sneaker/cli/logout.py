"""``sneaker logout``: erase the stored credentials for a registry."""

from __future__ import annotations

import click


@click.command("logout")
@click.argument("registry", required=False, default="docker.io")
def command(registry: str) -> None:
    """Remove the credentials stored for REGISTRY (default: Docker Hub).

    From config.json and from the credential helper it names, as docker does.
    """
    from ..verbs.login import login_registry, logout

    host = login_registry(registry)
    if logout(host):
        click.echo(f"Removed the credentials for {host}")
    else:
        click.echo(f"Not logged in to {host}")

"""``sneaker login``: ask for (or read) credentials, check them, store them where docker would
(or in the containers auth.json that ``--authfile`` or ``$REGISTRY_AUTH_FILE`` names)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import UsageError
from .options import authfile_option, build_registry_options


def _read_password_stdin() -> str:
    stdin = sys.stdin
    text = stdin.read() if stdin is not None else ""
    # as docker does: one trailing newline (and carriage return) is not part of the password
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise UsageError("--password-stdin: nothing was read from standard input")
    return text


def _interactive() -> bool:
    """Can the user be asked (a terminal on standard input)?"""
    stdin = sys.stdin
    return stdin is not None and stdin.isatty()


def _current_username(registry: str, authfile: Path | None) -> str | None:
    """The user name stored for ``registry`` now, offered as the prompt's default."""
    from ..errors import SneakerError
    from ..registry.credentials import find_credential

    try:
        found = find_credential(registry, authfile=authfile)
    except SneakerError:
        return None
    return found.username if found is not None and found.username else None


@click.command("login")
@click.argument("registry", required=False, default="docker.io")
@click.option("-u", "--username", help="User name (asked for when not given).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password or token from standard input (else it is asked for).",
)
@click.option(
    "--ca-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trust this CA certificate (PEM) for the registry's TLS.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Skip TLS certificate verification (dangerous; prints a warning).",
)
@click.option(
    "--plain-http", is_flag=True, help="Allow plain HTTP to a registry that is not on loopback."
)
@authfile_option(
    "Store the credentials in this containers auth.json, as podman and skopeo login do "
    "(default: $REGISTRY_AUTH_FILE when set, else where docker stores them)."
)
def command(
    registry: str,
    username: str | None,
    password_stdin: bool,
    ca_cert: Path | None,
    insecure: bool,
    plain_http: bool,
    authfile: Path | None,
) -> None:
    """Check credentials for REGISTRY (default: Docker Hub) and store them as docker does.

    They go to the credential helper config.json names (credsStore, credHelpers),
    else into config.json ($DOCKER_CONFIG or ~/.docker); with --authfile FILE (or
    $REGISTRY_AUTH_FILE) into FILE as podman and skopeo write it. Nothing is stored
    when the registry refuses them. Pulls read podman's and skopeo's logins too.

    \b
    Examples:
      sneaker login registry.example.com:5000
      echo "$TOKEN" | sneaker login ghcr.io -u me --password-stdin
      sneaker login --authfile auth.json registry.example.com:5000
    """
    from ..settings import load_settings
    from ..verbs.login import login, login_registry

    host = login_registry(registry)
    if password_stdin:
        if not username:
            raise UsageError(
                "--password-stdin needs --username",
                hint='echo "$TOKEN" | sneaker login REGISTRY -u USER --password-stdin',
            )
        password = _read_password_stdin()
    else:
        if not _interactive():
            raise UsageError(
                "cannot prompt for credentials: standard input is not a terminal",
                hint="pass --username USER --password-stdin",
            )
        if not username:
            username = click.prompt("Username", default=_current_username(host, authfile), err=True)
        password = click.prompt("Password", hide_input=True, err=True)
    options = build_registry_options(ca_cert, insecure, plain_http, None, False)
    settings = load_settings(
        plain_http=plain_http, warn=lambda message: click.echo(f"warning: {message}", err=True)
    )
    result = login(
        host, username or "", password, options=options, settings=settings, authfile=authfile
    )
    if result.plaintext:
        click.echo(
            f"warning: the password is stored unencrypted (base64) in {result.stored_in}",
            err=True,
        )
        where = (
            '"credsStore" in config.json'
            if Path(result.stored_in).name == "config.json"
            else f'"credHelpers" for {result.registry} in that file'
        )
        click.echo(f"hint: configure a credential helper ({where}) to avoid this", err=True)
    click.echo(f"Login succeeded: credentials for {result.registry} stored in {result.stored_in}")

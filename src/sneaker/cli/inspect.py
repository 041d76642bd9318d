"""``sneaker inspect``: platforms, digests, sizes and layers of an image or archive."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import build_registry_options, json_option, registry_options


@click.command("inspect")
@click.argument("target")
@registry_options
@json_option
@click.option("--layers", "show_layers", is_flag=True, help="List every layer.")
def command(
    target: str,
    ca_cert: Path | None,
    insecure: bool,
    plain_http: bool,
    username: str | None,
    password_stdin: bool,
    retries: int,
    as_json: bool,
    show_layers: bool,
) -> None:
    """Describe TARGET: a remote image reference (no layers are downloaded) or an archive."""
    from ..progress import human_size
    from ..verbs.inspect import inspect

    options = build_registry_options(
        ca_cert, insecure, plain_http, username, password_stdin, retries
    )
    report = inspect(target, options=options)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    click.echo(f"{report.source} ({report.kind})")
    for image in report.images:
        tags = ", ".join(image.tags) or "untagged"
        click.echo(f"image: {image.name or '(no name)'}  tags: {tags}")
        click.echo(f"  digest: {image.digest}")
        click.echo(f"  media type: {image.media_type}")
        for m in image.manifests:
            kind = "attestation" if m.attestation else m.platform
            created = f"  created {m.created}" if m.created else ""
            click.echo(
                f"  - {kind}: {m.digest}  {len(m.layers)} layers, {human_size(m.size)}{created}"
            )
            if show_layers and not m.attestation:
                click.echo(f"      config {m.config_digest}")
                for digest, size, media_type in m.layers:
                    click.echo(f"      {digest}  {human_size(size):>9}  {media_type}")

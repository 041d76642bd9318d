"""``sneaker inspect``: platforms, digests, sizes and layers of an image or archive."""

from __future__ import annotations

import json

import click

from .options import (
    RegistryAccess,
    json_option,
    mirror_option,
    open_client_factory,
    registry_options,
)


@click.command("inspect")
@click.argument("target")
@registry_options
@mirror_option
@json_option
@click.option("--layers", "show_layers", is_flag=True, help="List every layer.")
def command(
    target: str,
    registry: RegistryAccess,
    mirrors: tuple[str, ...],
    as_json: bool,
    show_layers: bool,
) -> None:
    """Describe TARGET: a remote image reference (no layers are downloaded) or an archive.

    TARGET is a path when it exists, ends in .tar or starts with ./, ../, / or ~;
    otherwise an image reference, read through the same registry settings as pull
    (registries.conf, daemon.json, --mirror).
    """
    from ..util.progress import human_size
    from ..verbs.inspect import _looks_like_path, inspect

    if _looks_like_path(target):
        report = inspect(target)
    else:
        options = registry.build()
        with open_client_factory(options, mirrors) as factory:
            report = inspect(target, options=options, client_factory=factory)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    click.echo(f"{report.source} ({report.kind})")
    if report.delta is not None:
        click.echo(
            f"a delta: {report.delta.describe()} left out (the base has them); "
            "push it onto a registry that holds the base"
        )
    if report.note is not None:
        click.echo(f"note: {report.note}")
    for image in report.images:
        tags = ", ".join(image.tags) or "untagged"
        click.echo(f"image: {image.name or '(no name)'}  tags: {tags}")
        click.echo(f"  digest: {image.digest}")
        click.echo(f"  media type: {image.media_type}")
        if image.artifact_type is not None:
            click.echo(f"  artifact type: {image.artifact_type}")
        if image.attachment is not None:
            how = "OCI 1.1 subject" if image.attachment.kind == "referrer" else "cosign tag"
            click.echo(f"  refers to: {image.attachment.subject} ({how})")
        for m in image.manifests:
            kind = "attestation" if m.attestation else m.platform
            if m.artifact_type is not None:
                kind = "artifact"
            created = f"  created {m.created}" if m.created else ""
            layers = f"{len(m.layers)} layer{'' if len(m.layers) == 1 else 's'}"
            click.echo(f"  - {kind}: {m.digest}  {layers}, {human_size(m.size)}{created}")
            if show_layers and not m.attestation:
                click.echo(f"      config {m.config_digest}")
                for digest, size, media_type in m.layers:
                    click.echo(f"      {digest}  {human_size(size):>9}  {media_type}")

"""``sneaker unpack``: an image's root filesystem into a directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .options import (
    RegistryAccess,
    json_option,
    layer_limit_options,
    mirror_option,
    open_client_factory,
    quiet_option,
    registry_options,
)

if TYPE_CHECKING:
    from ..layers.apply import LayerLimits


@click.command("unpack")
@click.argument("source")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option(
    "--platform",
    metavar="OS/ARCH[/VARIANT]",
    help="Platform to unpack from a multi-platform image (default: this machine's).",
)
@click.option("--image", metavar="NAME", help="Which image of a multi-image archive.")
@click.option("--force", is_flag=True, help="Unpack over a directory that is not empty.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Blob cache for a remote SOURCE.",
)
@layer_limit_options
@registry_options
@mirror_option
@quiet_option
@json_option
def command(
    source: str,
    dest: Path,
    platform: str | None,
    image: str | None,
    force: bool,
    cache_dir: Path | None,
    limits: LayerLimits,
    registry: RegistryAccess,
    mirrors: tuple[str, ...],
    quiet: bool,
    as_json: bool,
) -> None:
    """Extract the root filesystem of SOURCE (an archive, or an image reference) into DEST.

    Layers are applied in order with whiteouts; nothing is ever written outside DEST,
    and device nodes are skipped with a warning.
    """
    from ..image.platform import parse_platform
    from ..util.progress import choose_progress, count
    from ..verbs.inspect import _looks_like_path
    from ..verbs.unpack import check_dest, unpack, unpack_remote

    check_dest(dest)  # before reading or downloading anything
    wanted = parse_platform(platform) if platform else None

    def warn(text: str) -> None:
        click.echo(f"warning: {text}", err=True)

    progress = choose_progress(quiet or as_json)
    try:
        if _looks_like_path(source):
            from ..archive import open_archive

            with open_archive(Path(source)) as archive:
                result = unpack(
                    archive,
                    dest,
                    platform=wanted,
                    image=image,
                    force=force,
                    progress=progress,
                    limits=limits,
                    warn=warn,
                )
        else:
            options = registry.build()
            with open_client_factory(options, mirrors) as factory:
                result = unpack_remote(
                    source,
                    dest,
                    platform=wanted,
                    options=options,
                    cache_dir=cache_dir,
                    force=force,
                    progress=progress,
                    warn=warn,
                    client_factory=factory,
                    limits=limits,
                )
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    platform_text = f" {result.platform}" if result.platform else ""
    click.echo(
        f"unpacked {result.reference or 'image'}{platform_text} into {result.dest}: "
        f"{count(result.layers, 'layer')}, {count(result.stats.files, 'file')}"
    )

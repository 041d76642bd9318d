"""``sneaker inventory``: parse, dispatch to :func:`sneaker.verbs.inventory.inventory`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import RegistryAccess, json_option, quiet_option, registry_options


@click.command("inventory")
@click.argument("sources", metavar="REGISTRY|ARCHIVE...", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the inventory here (default: print it on standard output).",
)
@click.option(
    "--max-tags",
    type=click.IntRange(1, 1_000_000),
    default=1000,
    show_default=True,
    help="Tags read per repository of a registry.",
)
@click.option(
    "--max-manifests",
    type=click.IntRange(1, 10_000_000),
    default=50_000,
    show_default=True,
    help="Manifests read from registries in all.",
)
@registry_options
@quiet_option
@json_option
def command(
    sources: tuple[str, ...],
    output: Path | None,
    max_tags: int,
    max_manifests: int,
    registry: RegistryAccess,
    quiet: bool,
    as_json: bool,
) -> None:
    """List the blobs the other side of the air gap has, for `pull --have` to leave out.

    \b
    Each source is an archive (a split set by its base name) or a registry:
      localhost:5000               every repository the catalog lists
      localhost:5000/team/app      every tag of one repository
      localhost:5000/team/app:1    one image

    The walk of a registry is bounded (--max-tags, --max-manifests); an
    inventory cut short says "complete": false, and a delta against it is
    only larger than it needs to be.
    """
    from ..transfer.walk import WalkLimits
    from ..util.progress import choose_progress
    from ..verbs.inventory import inventory

    options = registry.build()
    limits = WalkLimits(tags=max_tags, manifests=max_manifests)
    progress = choose_progress(quiet or as_json)
    try:
        result = inventory(sources, output, options=options, limits=limits, progress=progress)
    finally:
        progress.close()
    if output is None:
        click.echo(result.to_bytes().decode(), nl=False)
        if not result.complete:
            click.echo("warning: the inventory is partial (a bound was reached)", err=True)
        return
    if as_json:
        summary = {
            "output": str(output),
            "sources": result.sources,
            "complete": result.complete,
            "images": len(result.images),
            "blobs": len(result.blobs),
            "size": result.size,
        }
        click.echo(json.dumps(summary, indent=2))
        return
    partial = "" if result.complete else " (partial: a bound was reached)"
    click.echo(f"wrote {output}: {result.describe()} from {', '.join(result.sources)}{partial}")

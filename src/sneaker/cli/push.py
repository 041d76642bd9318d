"""``sneaker push``: parse, dispatch to :func:`sneaker.verbs.push.push`, print the summary."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import RegistryAccess, json_option, quiet_option, registry_options


@click.command("push")
@click.argument("archive", type=click.Path(path_type=Path))
@click.argument("target", required=False)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Blobs uploaded at once.",
)
@registry_options
@quiet_option
@json_option
def command(
    archive: Path,
    target: str | None,
    jobs: int,
    registry: RegistryAccess,
    quiet: bool,
    as_json: bool,
) -> None:
    """Push the images of ARCHIVE to a registry, with the digests they have in the archive.

    ARCHIVE is anything sneaker reads: a sneaker archive, `docker save` output
    (old and new), an OCI archive or layout directory (skopeo, podman), or the
    first part of a split archive.

    \b
    Where the images go:
      no TARGET                    back to the names in the archive
      TARGET with a tag or digest  the one image of a one-image archive, under
                                   that name (localhost:5000/team/app:1)
      TARGET without either        registry[/prefix], starting with a registry
                                   host: every image keeps its repository and
                                   tag below it, e.g. docker.io/library/ubuntu:22.04
                                   with localhost:5000/mirror goes to
                                   localhost:5000/mirror/library/ubuntu:22.04

    Manifests are pushed byte for byte, so digests do not change. Layers of a
    `docker save` from before docker 25 are stored uncompressed; they are
    gzip-compressed first (into $TMPDIR), always the same way, so such an
    archive gets digests of sneaker's own, the same on every push.
    """
    from ..util.progress import choose_progress
    from ..verbs.push import push

    options = registry.build()
    progress = choose_progress(quiet or as_json)
    try:
        result = push(archive, target, options=options, jobs=jobs, progress=progress)
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    for image in result.images:
        note = " (layers compressed by sneaker)" if image.recompressed else ""
        blobs = "blob" if image.uploaded == 1 else "blobs"
        if image.subject is not None:
            note += f" (refers to {image.subject[:19]})"
        click.echo(
            f"pushed {image.target} {image.digest}: {image.uploaded} {blobs} uploaded, "
            f"{image.skipped} already there, {image.mounted} mounted{note}"
        )
    for tag in result.referrers_tags:
        click.echo(
            f"referrers tag {tag.target}: {tag.added} added, {tag.listed} listed "
            "(the registry has no referrers API)"
        )
    if result.referrers_by_api:
        click.echo(f"{result.referrers_by_api} referrers listed by the registry's referrers API")

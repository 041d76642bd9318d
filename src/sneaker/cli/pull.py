"""``sneaker pull``: parse, dispatch to :func:`sneaker.verbs.pull.pull`, print the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .options import (
    ReferrerChoice,
    RegistryAccess,
    from_option,
    images_file_option,
    json_option,
    load_registry_settings,
    mirror_option,
    parse_platform_option,
    parse_split_option,
    platform_option,
    quiet_option,
    referrer_options,
    registry_options,
    split_option,
    summary_to_stderr,
)

if TYPE_CHECKING:
    from ..image.inventory import Inventory

#: how a referrer was found, as the summary says it
_HOW = {"api": "referrers API", "tag": "fallback tag", "cosign": "cosign tag"}


@click.command("pull")
@click.argument("images", nargs=-1)
@images_file_option
@from_option
@click.option(
    "-o",
    "--output",
    help="Output archive (or directory/ for --format oci); - writes the archive to standard "
    "output (e.g. | docker load).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["docker", "oci"]),
    default=None,
    help="docker: what docker/podman load and ctr import accept; oci: an OCI layout. "
    "[default: docker; oci for a delta]",
)
@click.option(
    "--since",
    "since",
    multiple=True,
    metavar="OLD_ARCHIVE",
    type=click.Path(path_type=Path),
    help="Write a delta: leave out (and do not download) the layers OLD_ARCHIVE holds. "
    "Push the delta onto a registry that received OLD_ARCHIVE. Repeatable.",
)
@click.option(
    "--have",
    "have",
    multiple=True,
    metavar="INVENTORY.json",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a delta: leave out the layers listed in INVENTORY.json (written by "
    "`sneaker inventory`). Repeatable.",
)
@platform_option
@referrer_options
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Blobs downloaded at once.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Blob cache (default: the user cache directory).",
)
@click.option("--no-cache", is_flag=True, help="Do not read or fill the blob cache.")
@split_option
@registry_options
@mirror_option
@quiet_option
@json_option
def command(
    images: tuple[str, ...],
    images_files: tuple[Path, ...],
    from_files: tuple[Path, ...],
    output: str | None,
    fmt: str | None,
    since: tuple[Path, ...],
    have: tuple[Path, ...],
    platform: str | None,
    referrers: ReferrerChoice,
    jobs: int,
    cache_dir: Path | None,
    no_cache: bool,
    split: str | None,
    registry: RegistryAccess,
    mirrors: tuple[str, ...],
    quiet: bool,
    as_json: bool,
) -> None:
    """Pull IMAGES (e.g. ubuntu:22.04, ghcr.io/org/app@sha256:...) into one archive.

    Without -o the archive is named after the image (ubuntu_22.04.tar).
    With --since or --have the archive is a delta: an OCI archive without the
    layers the other side has; `sneaker push` it onto a registry that holds them.
    """
    from ..archive.tar import refuse_overwriting_inputs
    from ..errors import UsageError
    from ..util.progress import choose_progress
    from ..verbs.imagelist import collect_entries, platform_notes
    from ..verbs.pull import pull

    if registry.password_stdin and any(str(f) == "-" for f in images_files):
        raise UsageError(
            "-f - and --password-stdin both read standard input",
            hint="put the image list in a file, or the password in docker's config (sneaker login)",
        )
    to_stderr = summary_to_stderr(output, as_json)
    if output is not None:
        refuse_overwriting_inputs(output, [*since, *have, *images_files, *from_files])
    entries = collect_entries(images, images_files, from_files)
    wanted = referrers.build([e.key for e in entries if e.referrers])
    request = parse_platform_option(platform)
    for note in platform_notes(entries, request):
        click.echo(f"warning: {note}", err=True)
    options = registry.build()
    settings = load_registry_settings(mirrors, registry.plain_http)
    base: Inventory | None = None
    if since or have:
        from ..verbs.inventory import load_base  # reads archives and inventory files: deltas only

        base = load_base(since, have)
    progress = choose_progress(quiet or as_json)
    try:
        result = pull(
            [e.reference for e in entries],
            output,
            format=fmt,
            platform=request,
            options=options,
            cache_dir=cache_dir,
            use_cache=not no_cache,
            jobs=jobs,
            split=parse_split_option(split),
            progress=progress,
            settings=settings,
            base=base,
            referrers=wanted,
        )
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    from ..util.progress import count, human_size

    click.echo(f"wrote {result.describe()}", err=to_stderr)
    if result.delta is not None:
        click.echo(
            f"  a delta: {result.delta.describe()} left out (the base has them); "
            "push it onto a registry that holds the base",
            err=to_stderr,
        )
    for image in result.images:
        platforms = ",".join(image.platforms) or "unknown platform"
        if image.artifact_type is not None:
            platforms = f"artifact {image.artifact_type}"
        note = (
            " (index rewritten: its digest differs from the registry's)" if image.rewritten else ""
        )
        click.echo(
            f"  {image.reference} {platforms} {image.digest} {human_size(image.size)}{note}",
            err=to_stderr,
        )
    for referrer in result.referrers:
        what = referrer.artifact_type or "an index"
        click.echo(
            f"  + {referrer.reference} {what} {human_size(referrer.size)}, "
            f"refers to {referrer.subject[:19]} ({_HOW[referrer.via]})",
            err=to_stderr,
        )
    if result.referrers:
        click.echo(f"  {count(len(result.referrers), 'referrer')} carried", err=to_stderr)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)

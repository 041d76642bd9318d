"""``sneaker plan``: parse, dispatch to :func:`sneaker.verbs.plan.plan`, print the summary."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import (
    ReferrerChoice,
    RegistryAccess,
    from_option,
    images_file_option,
    json_option,
    mirror_option,
    open_client_factory,
    parse_platform_option,
    platform_option,
    quiet_option,
    referrer_options,
    registry_options,
)


@click.command("plan")
@click.argument("images", nargs=-1)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the plan into (new or empty).",
)
@images_file_option
@from_option
@platform_option
@referrer_options
@registry_options
@mirror_option
@quiet_option
@json_option
def command(
    images: tuple[str, ...],
    output: Path,
    images_files: tuple[Path, ...],
    from_files: tuple[Path, ...],
    platform: str | None,
    referrers: ReferrerChoice,
    registry: RegistryAccess,
    mirrors: tuple[str, ...],
    quiet: bool,
    as_json: bool,
) -> None:
    """Resolve IMAGES now and write a download plan into a directory.

    The directory holds the manifests and configs, urls.txt (every blob URL),
    SHA256SUMS, plan.json and fetch.sh, a POSIX shell script that fetches every
    blob with curl alone. Bring the filled directory back and run
    `sneaker assemble DIR -o OUT`.

    Registry settings apply as for pull (registries.conf, daemon.json, --mirror);
    an image resolved through a mirror gets the mirror's URLs in urls.txt and
    fetch.sh, while plan.json keeps the image's own name.
    """
    from ..image.digest import Digest
    from ..util.progress import choose_progress, count, human_size
    from ..verbs.imagelist import collect_entries, platform_notes
    from ..verbs.plan import PLAN_FILE, plan

    entries = collect_entries(images, images_files, from_files)
    wanted = referrers.build([e.key for e in entries if e.referrers])
    request = parse_platform_option(platform)
    for note in platform_notes(entries, request):
        click.echo(f"warning: {note}", err=True)
    options = registry.build()
    progress = choose_progress(quiet or as_json)
    try:
        with open_client_factory(options, mirrors) as factory:
            result = plan(
                [e.reference for e in entries],
                output,
                platform=request,
                options=options,
                progress=progress,
                client_factory=factory,
                referrers=wanted,
            )
    finally:
        progress.close()
    plan_digest = Digest.of_bytes((result.output / PLAN_FILE).read_bytes())
    if as_json:
        summary = result.to_json()
        summary["plan_digest"] = str(plan_digest)
        click.echo(json.dumps(summary, indent=2))
        return
    also = f", {count(len(result.referrers), 'referrer')}" if result.referrers else ""
    click.echo(
        f"wrote plan {result.output}: {count(len(result.requested), 'image')}{also}, "
        f"{result.fetch_count} blob{'' if result.fetch_count == 1 else 's'} "
        f"({human_size(result.fetch_size)}) to fetch "
        f"({result.config_count} already in the plan)"
    )
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    for image in result.requested:
        platforms = ",".join(str(p) for p in image.platforms) or "unknown platform"
        note = " (index rewritten)" if image.record.rewritten else ""
        via = f" (from {image.fetch_from})" if image.fetch_from is not None else ""
        click.echo(f"  {image.reference} {platforms} {image.record.root.digest}{note}{via}")
    click.echo(f"plan digest: {plan_digest}")
    click.echo(f"next: sh {result.output / 'fetch.sh'}  (curl only), then")
    click.echo(f"      {result.assemble_command(plan_digest)}")

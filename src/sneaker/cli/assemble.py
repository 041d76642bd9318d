"""``sneaker assemble``: parse, dispatch to :func:`sneaker.verbs.assemble.assemble`, summarise."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import (
    json_option,
    parse_split_option,
    quiet_option,
    split_option,
    summary_to_stderr,
)


@click.command("assemble")
@click.argument("plan_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    help="Output archive (or directory/ for --format oci); - writes the archive to standard "
    "output.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["docker", "oci"]),
    default="docker",
    show_default=True,
    help="docker: what docker/podman load and ctr import accept; oci: an OCI layout.",
)
@split_option
@click.option(
    "--plan-digest",
    metavar="DIGEST",
    help="Refuse the plan unless plan.json has this digest (printed by `sneaker plan`).",
)
@quiet_option
@json_option
def command(
    plan_dir: Path,
    output: str,
    fmt: str,
    split: str | None,
    plan_digest: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Check every file of the plan in DIR, then write its images to one archive.

    Every manifest, config and layer is checked for size and digest first; a
    missing or damaged file is an error naming it and its image.
    """
    from ..util.progress import choose_progress, count, human_size
    from ..verbs.assemble import assemble

    to_stderr = summary_to_stderr(output, as_json)
    progress = choose_progress(quiet or as_json)
    try:
        result = assemble(
            plan_dir,
            output,
            format=fmt,
            split=parse_split_option(split),
            plan_digest=plan_digest,
            progress=progress,
        )
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(
        f"checked {count(result.checked_files, 'file')} ({human_size(result.checked_bytes)}); "
        f"wrote {result.describe()}",
        err=to_stderr,
    )
    for image in result.images:
        platforms = ",".join(image.platforms) or "unknown platform"
        click.echo(f"  {image.reference} {platforms} {image.digest}", err=to_stderr)

"""``sneaker verify``: every digest, size and link of an archive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .options import json_option, layer_limit_options, quiet_option

if TYPE_CHECKING:
    from ..layers.apply import LayerLimits


@click.command("verify")
@click.argument("archive", type=click.Path(path_type=Path))
@click.option(
    "--deep",
    is_flag=True,
    help="Also decompress every layer and check its diff ID against the config, and what "
    "unpacking it would write against the limits unpack applies.",
)
@layer_limit_options
@quiet_option
@json_option
def command(archive: Path, deep: bool, limits: LayerLimits, quiet: bool, as_json: bool) -> None:
    """Check ARCHIVE (any archive or layout sneaker reads, or a split set by its base name).

    Lists every problem found and exits 7 if there is any; an archive that
    cannot be read at all (not an archive, hostile, incomplete) exits 8.
    """
    from ..errors import VerificationFailed, cap
    from ..util.progress import choose_progress
    from ..verbs.verify import verify_archive

    progress = choose_progress(quiet or as_json)
    try:
        problems = verify_archive(archive, deep=deep, limits=limits, progress=progress)
    finally:
        progress.close()
    if as_json:
        click.echo(
            json.dumps({"archive": str(archive), "deep": deep, "problems": problems}, indent=2)
        )
    if problems:
        if not as_json:
            for line in problems:
                click.echo(f"problem: {cap(line)}")
        failed = VerificationFailed(problems)
        # the lines above list them: the error line only counts them
        noun = "problem" if len(problems) == 1 else "problems"
        failed.message = f"{len(problems)} {noun} found in {archive}"
        raise failed
    if not as_json:
        click.echo(
            f"{archive}: all digests, sizes and links check out"
            + (" (layers decompressed and diff IDs checked)" if deep else "")
        )

"""``sneaker cache info|prune|verify``: parse, dispatch to :mod:`sneaker.verbs.cache`, print."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from .options import json_option, quiet_option

cache_dir_option = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The blob cache (default: $SNEAKER_CACHE_DIR, else the user cache directory).",
)


@click.group("cache")
def command() -> None:
    """See, check and prune the blob cache.

    Every blob pull downloads stays in the cache, so that the next pull of an image
    sharing layers downloads only what is new. It grows until it is pruned, and
    holds a second copy of every archive's layers (an OCI layout directory shares
    the cache's files through hard links instead). pull --no-cache uses none;
    --cache-dir or SNEAKER_CACHE_DIR put it elsewhere.
    """


_AGO = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def _when(stamp: float | None) -> str:
    """``2024-05-03 10:12 (3 days ago)``, in local time."""
    if stamp is None:
        return "never"
    ago = max(0, int(time.time() - stamp))
    size, unit = next(((s, u) for s, u in _AGO if ago >= s), (1, "second"))
    n = ago // size
    moment = time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))
    return f"{moment} ({n} {unit}{'' if n == 1 else 's'} ago)"


@command.command("info")
@cache_dir_option
@json_option
def info(cache_dir: Path | None, as_json: bool) -> None:
    """Show the size of the cache, its contents and their last use.

    A use is a run that took a blob from the cache (checked) or downloaded it.
    """
    from ..util.progress import count, human_size
    from ..verbs.cache import cache_info

    found = cache_info(cache_dir)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2))
        return
    contents = found.contents
    blob_bytes = sum(f.size for f in contents.blobs)
    partial_bytes = sum(f.size for f in contents.partials)
    click.echo(f"cache: {found.root}")
    click.echo(f"size: {human_size(found.size)}")
    click.echo(f"blobs: {len(contents.blobs)} ({human_size(blob_bytes)})")
    partials = f"partial downloads: {len(contents.partials)} ({human_size(partial_bytes)})"
    if contents.partials:
        partials += ", resumed by the next pull of their images"
    click.echo(partials)
    click.echo(f"last use: {_when(found.last_use)}")
    click.echo(f"oldest use: {_when(found.oldest_use)}, of the file unused the longest")
    click.echo(f"in use now by: {count(contents.users, 'sneaker process', 'sneaker processes')}")


@command.command("prune")
@cache_dir_option
@click.option(
    "--older-than",
    metavar="AGE",
    help="Remove what was last used more than AGE ago: a number with s, m, h, d or w "
    "(e.g. 30d, 12h).",
)
@click.option(
    "--keep-size",
    metavar="SIZE",
    help="Then remove the least recently used until the cache holds at most SIZE (e.g. 20G, 500M).",
)
@click.option("--all", "everything", is_flag=True, help="Remove every blob and partial download.")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@json_option
def prune(
    cache_dir: Path | None,
    older_than: str | None,
    keep_size: str | None,
    everything: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Remove blobs and partial downloads (by age, size, or all).

    Stale lock files and leases go too. Safe while other sneaker processes run:
    what they use is kept.
    """
    from ..archive.split import parse_size
    from ..util.progress import count, human_size
    from ..verbs.cache import parse_age, prune_cache

    result = prune_cache(
        cache_dir,
        older_than=parse_age(older_than) if older_than is not None else None,
        keep_size=parse_size(keep_size) if keep_size is not None else None,
        everything=everything,
        dry_run=dry_run,
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    doc: dict[str, Any] = result.to_json()
    removed = doc["removed"]
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {count(removed['blobs']['count'], 'blob')} "
        f"({human_size(removed['blobs']['bytes'])}) and "
        f"{count(removed['partials']['count'], 'partial download')} "
        f"({human_size(removed['partials']['bytes'])}) from {result.root}"
    )
    if result.in_use:
        click.echo(
            f"kept {count(len(result.in_use), 'file')} "
            f"({human_size(doc['kept_in_use']['bytes'])}) that running sneaker processes use"
        )
    click.echo(f"left: {count(doc['left']['count'], 'file')} ({human_size(doc['left']['bytes'])})")


@command.command("verify")
@cache_dir_option
@quiet_option
@json_option
def verify(cache_dir: Path | None, quiet: bool, as_json: bool) -> None:
    """Hash every blob; remove the damaged ones.

    A pull checks a cached blob before it uses it by what its file looks like
    (size, inode, modification time); this also finds damage that changes none of
    those, such as bit rot. A removed blob is downloaded again by the next pull.
    Exits 7 when damage was found.
    """
    from ..errors import VerificationFailed
    from ..util.progress import choose_progress, count, human_size
    from ..verbs.cache import verify_cache

    progress = choose_progress(quiet or as_json)
    try:
        result = verify_cache(cache_dir, progress)
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    problems = result.problems()
    if problems:
        if not as_json:
            for line in problems:
                click.echo(f"problem: {line}")
        failed = VerificationFailed(problems)
        failed.message = (
            f"{count(len(problems), 'damaged blob')} found in {result.root}: "
            "the next pull downloads them again"
        )
        raise failed
    if not as_json:
        checked = sum(f.size for f in result.checked)
        click.echo(
            f"{result.root}: {count(len(result.checked), 'blob')} "
            f"({human_size(checked)}) hashed, all right"
        )

"""``cache info``, ``cache prune`` and ``cache verify``: see, trim and check the blob cache.

The cache (:mod:`sneaker.transfer.cache`) keeps every blob ``pull`` downloads, so the
next pull of an image sharing layers downloads only what is new; it grows until it
is pruned. What is removed, and when a file counts as used, is
:mod:`sneaker.transfer.housekeeping`'s; choosing what to remove is :func:`choose`
(pure). Everything here is safe while other sneaker processes use the cache.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..transfer.cache import BlobCache, default_cache_dir
from ..transfer.housekeeping import (
    CacheContents,
    CachedFile,
    Damage,
    remove,
    survey,
    verify_blobs,
)
from ..util.progress import NullProgress, Progress, count, human_size

__all__ = [
    "CacheInfo",
    "PruneResult",
    "VerifyResult",
    "cache_info",
    "choose",
    "parse_age",
    "prune_cache",
    "verify_cache",
]

_AGE_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``"30d"`` -> seconds; units s, m, h, d, w, combinable (``"1d12h"``)."""
    compact = text.strip().lower().replace(" ", "")
    parts = _AGE_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise UsageError(
            f"invalid age {text!r}",
            hint="write a number with s, m, h, d or w (seconds to weeks), e.g. 30d or 12h",
        )
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _stamp(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds")


def _sizes(files: Sequence[CachedFile]) -> dict[str, int]:
    return {"count": len(files), "bytes": sum(f.size for f in files)}


@dataclass
class CacheInfo:
    root: Path
    contents: CacheContents

    @property
    def oldest_use(self) -> float | None:
        return min((f.last_use for f in self.contents.files), default=None)

    @property
    def last_use(self) -> float | None:
        return max((f.last_use for f in self.contents.files), default=None)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.contents.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "cache": str(self.root),
            "size": self.size,
            "blobs": _sizes(self.contents.blobs),
            "partials": _sizes(self.contents.partials),
            "lock_files": self.contents.lock_files,
            "in_use_by": self.contents.users,
            "oldest_use": _stamp(self.oldest_use),
            "last_use": _stamp(self.last_use),
        }


def _cache(cache_dir: Path | None) -> BlobCache:
    return BlobCache(cache_dir or default_cache_dir())


def cache_info(cache_dir: Path | None = None) -> CacheInfo:
    """What the cache at ``cache_dir`` (default: :func:`default_cache_dir`) holds."""
    cache = _cache(cache_dir)
    return CacheInfo(cache.root, survey(cache))


def choose(
    files: Sequence[CachedFile],
    *,
    now: float,
    older_than: float | None = None,
    keep_size: int | None = None,
    everything: bool = False,
) -> list[CachedFile]:
    """What a prune removes: all (``everything``); those last used more than ``older_than``
    seconds before ``now``; then, least recently used first, what it takes to bring the
    rest down to ``keep_size`` bytes."""
    if everything:
        return list(files)
    chosen: list[CachedFile] = []
    kept = sorted(files, key=lambda f: (f.last_use, str(f.digest)))
    if older_than is not None:
        chosen = [f for f in kept if f.last_use < now - older_than]
        kept = [f for f in kept if f.last_use >= now - older_than]
    if keep_size is not None:
        total = sum(f.size for f in kept)
        for item in kept:
            if total <= keep_size:
                break
            chosen.append(item)
            total -= item.size
    return chosen


@dataclass
class PruneResult:
    root: Path
    dry_run: bool
    removed: list[CachedFile] = field(default_factory=list)
    in_use: list[CachedFile] = field(default_factory=list)
    left: list[CachedFile] = field(default_factory=list)
    lock_files: int = 0
    leases: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "cache": str(self.root),
            "dry_run": self.dry_run,
            "removed": {
                "blobs": _sizes([f for f in self.removed if f.kind == "blob"]),
                "partials": _sizes([f for f in self.removed if f.kind == "partial"]),
                "lock_files": self.lock_files,
                "leases": self.leases,
            },
            "kept_in_use": _sizes(self.in_use),
            "left": _sizes(self.left),
        }


def prune_cache(
    cache_dir: Path | None = None,
    *,
    older_than: float | None = None,
    keep_size: int | None = None,
    everything: bool = False,
    dry_run: bool = False,
    now: float | None = None,
) -> PruneResult:
    """Remove blobs and partial downloads by age (``older_than`` seconds since their last
    use), by total size (``keep_size``: least recently used first) or all (``everything``),
    sparing what running sneaker processes use; and stale lock files and leases.
    ``dry_run`` only says what would go."""
    if older_than is None and keep_size is None and not everything:
        raise UsageError(
            "say what to prune",
            hint="--older-than AGE (e.g. 30d), --keep-size SIZE (e.g. 20G), or --all",
        )
    cache = _cache(cache_dir)
    contents = survey(cache)
    when = time.time() if now is None else now
    chosen = choose(
        contents.files, now=when, older_than=older_than, keep_size=keep_size, everything=everything
    )
    result = PruneResult(cache.root, dry_run)
    if dry_run:
        result.removed = chosen
    else:
        removal = remove(cache, chosen)
        result.removed, result.in_use = removal.removed, removal.in_use
        result.lock_files, result.leases = removal.lock_files, removal.leases
    gone = {(f.kind, f.digest) for f in result.removed}
    result.left = [f for f in contents.files if (f.kind, f.digest) not in gone]
    return result


@dataclass
class VerifyResult:
    root: Path
    checked: list[CachedFile] = field(default_factory=list)
    damage: list[Damage] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [
            f"{d.problem} ({'removed' if d.removed else 'kept: a running sneaker holds it'})"
            for d in self.damage
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "cache": str(self.root),
            "checked": _sizes(self.checked),
            "damaged": [
                {"digest": str(d.file.digest), "problem": d.problem, "removed": d.removed}
                for d in self.damage
            ],
        }


def verify_cache(cache_dir: Path | None = None, progress: Progress | None = None) -> VerifyResult:
    """Hash every blob in the cache; remove the damaged ones (the next pull downloads
    them again) unless a running process holds them."""
    progress = progress or NullProgress()
    cache = _cache(cache_dir)
    result = VerifyResult(cache.root)
    blobs = survey(cache).blobs
    progress.message(
        f"hashing {count(len(blobs), 'blob')} ({human_size(sum(b.size for b in blobs))})"
    )
    result.damage = verify_blobs(cache, blobs, result.checked.append)
    return result

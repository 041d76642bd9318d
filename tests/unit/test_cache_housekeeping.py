"""The cache's housekeeping: what it holds, what a prune chooses and removes, what it spares.

No servers: blobs are committed into a cache in a temporary directory as the
download engine commits them, and the processes that use the cache are stood in
for by other ``BlobCache`` objects (each holds its own lease and locks through
descriptors of its own, which conflict with each other as two processes' do).
The real concurrent pull is in ``tests/integration/test_cache_verbs.py``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from sneaker.errors import UsageError
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor
from sneaker.transfer.cache import BlobCache
from sneaker.transfer.filelocks import make_lock
from sneaker.transfer.housekeeping import CachedFile, remove, survey
from sneaker.transfer.leases import Lease, scan_leases
from sneaker.verbs.cache import choose, parse_age, prune_cache, verify_cache

DAY = 86400.0


def _commit(cache: BlobCache, data: bytes, *, used_days_ago: float = 0) -> Descriptor:
    desc = Descriptor("application/octet-stream", Digest.of_bytes(data), len(data))
    part = cache.partial_path(desc.digest)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data)
    cache.commit_partial(desc.digest)
    if used_days_ago:
        then = time.time() - used_days_ago * DAY
        os.utime(cache.record_path(desc.digest), (then, then))
    return desc


def _partial(cache: BlobCache, data: bytes) -> Digest:
    digest = Digest.of_bytes(data + b"whole")
    path = cache.partial_path(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    cache.save_validator(digest, '"etag"')
    return digest


def test_survey_counts_blobs_partials_and_last_uses(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    old = _commit(cache, b"old" * 100, used_days_ago=40)
    new = _commit(cache, b"new" * 10)
    partial = _partial(cache, b"half")
    (tmp_path / "blobs" / "sha256" / "not-a-digest").write_text("left alone")
    contents = survey(cache)
    assert {(f.digest, f.size) for f in contents.blobs} == {(old.digest, 300), (new.digest, 30)}
    assert [(f.digest, f.size) for f in contents.partials] == [(partial, 4)]
    by_digest = {f.digest: f.last_use for f in contents.blobs}
    assert time.time() - by_digest[old.digest] == pytest.approx(40 * DAY, abs=60)
    assert time.time() - by_digest[new.digest] < 60
    assert contents.users == 0


def _file(name: str, size: int, days_ago: float, now: float) -> CachedFile:
    return CachedFile("blob", Digest.of_bytes(name.encode()), size, now - days_ago * DAY)


def test_choose_by_age_then_by_size_least_recently_used_first() -> None:
    now = 1_000_000_000.0
    a, b, c, d = (_file("a", 100, 50, now), _file("b", 100, 20, now),
                  _file("c", 100, 10, now), _file("d", 100, 1, now))  # fmt: skip
    files = [d, b, a, c]
    assert choose(files, now=now, older_than=30 * DAY) == [a]
    assert choose(files, now=now, keep_size=250) == [a, b]
    assert choose(files, now=now, keep_size=400) == []
    assert choose(files, now=now, older_than=30 * DAY, keep_size=150) == [a, b, c]
    assert choose(files, now=now, everything=True) == files


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * DAY),
        ("12h", 43200),
        ("90m", 5400),
        ("45s", 45),
        ("2w", 14 * DAY),
        ("1d12h", 1.5 * DAY),
        ("1.5h", 5400),
    ],
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "30x", "-1d", "1d junk"])
def test_parse_age_refuses_anything_else(text: str) -> None:
    with pytest.raises(UsageError, match="invalid age"):
        parse_age(text)


def test_prune_needs_to_be_told_what(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="say what to prune"):
        prune_cache(tmp_path)


def test_prune_by_age_keeps_what_was_used_recently(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    old = _commit(cache, b"old" * 100, used_days_ago=40)
    new = _commit(cache, b"new" * 10, used_days_ago=2)
    result = prune_cache(tmp_path, older_than=30 * DAY)
    assert [f.digest for f in result.removed] == [old.digest]
    assert not cache.path(old.digest).exists()
    assert not cache.record_path(old.digest).exists()
    assert not cache.lock_path(old.digest).exists()
    assert cache.path(new.digest).exists()


def test_dry_run_removes_nothing(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    desc = _commit(cache, b"kept")
    result = prune_cache(tmp_path, everything=True, dry_run=True)
    assert [f.digest for f in result.removed] == [desc.digest]
    assert cache.path(desc.digest).exists()


def test_prune_spares_the_blobs_a_running_process_uses(tmp_path: Path) -> None:
    used = BlobCache(tmp_path)
    one = _commit(used, b"used by a running pull")
    other = _commit(used, b"nobody's")
    partial = _partial(used, b"a dead download")
    # another process (another cache object: its own lease and lock descriptors) reuses one
    running = BlobCache(tmp_path)
    with running.locked(one.digest):
        assert running.reuse(one)
    result = prune_cache(tmp_path, everything=True)
    assert {f.digest for f in result.removed} == {other.digest, partial}
    assert [f.digest for f in result.in_use] == [one.digest]
    assert running.path(one.digest).exists()
    assert not running.partial_path(partial).exists()
    assert not running.partial_path(partial).with_suffix(".json").exists()
    running.close()  # the pull ends: now it may go
    again = prune_cache(tmp_path, everything=True)
    assert [f.digest for f in again.removed] == [one.digest]


def test_prune_skips_a_blob_whose_lock_is_held(tmp_path: Path) -> None:
    """A download or a check in progress holds the digest's lock."""
    cache = BlobCache(tmp_path)
    desc = _commit(cache, b"being checked")
    busy = threading.Event()
    done = threading.Event()

    def hold() -> None:
        with BlobCache(tmp_path).locked(desc.digest):
            busy.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert busy.wait(10)
        result = prune_cache(tmp_path, everything=True)
    finally:
        done.set()
        holder.join(10)
    assert [f.digest for f in result.in_use] == [desc.digest]
    assert cache.path(desc.digest).exists()


def test_a_blob_used_after_the_survey_stays(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    desc = _commit(cache, b"old but used just now", used_days_ago=40)
    contents = survey(cache)
    user = BlobCache(tmp_path)
    with user.locked(desc.digest):
        assert user.reuse(desc)
    user.close()  # used and done: no lease, but its last use moved
    removal = remove(cache, contents.blobs)
    assert removal.removed == []
    assert cache.path(desc.digest).exists()


def test_a_lease_is_live_while_its_process_holds_it(tmp_path: Path) -> None:
    lease = Lease(tmp_path / "leases")
    digest = Digest.of_bytes(b"x")
    lease.add(digest)
    lease.add(digest)  # once
    scan = scan_leases(tmp_path / "leases")
    assert (scan.live, scan.digests) == (1, {str(digest)})
    lease.close()
    assert scan_leases(tmp_path / "leases").live == 0
    assert list((tmp_path / "leases").iterdir()) == []


def test_the_lease_of_a_process_that_died_is_removed(tmp_path: Path) -> None:
    leases = tmp_path / "leases"
    leases.mkdir()
    (leases / "123-dead").write_text("sha256:" + "a" * 64 + "\n")
    (leases / "123-dead.lock").write_text("")  # nobody holds it: its process is gone
    (leases / "456-orphan").write_text("sha256:" + "b" * 64 + "\n")
    scan = scan_leases(leases, remove_dead=True)
    assert (scan.live, scan.digests, scan.removed) == (0, set(), 1)
    assert list(leases.iterdir()) == []


def test_a_half_written_digest_line_counts_for_nothing(tmp_path: Path) -> None:
    lease = Lease(tmp_path)
    lease.add(Digest.of_bytes(b"whole"))
    (content,) = [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]
    with content.open("a") as handle:
        handle.write("sha256:abc")
    assert scan_leases(tmp_path).digests == {str(Digest.of_bytes(b"whole"))}
    lease.close()


def test_stale_lock_files_go_and_a_locker_that_lost_its_file_locks_a_new_one(
    tmp_path: Path,
) -> None:
    cache = BlobCache(tmp_path)
    stale = Digest.of_bytes(b"never finished")
    with cache.locked(stale):
        pass
    assert cache.lock_path(stale).exists()
    assert prune_cache(tmp_path, everything=True).lock_files == 1
    assert not cache.lock_path(stale).exists()

    # a locker that opened the lock file just before a prune removed it notices
    path = cache.lock_path(stale)
    first = make_lock(path)
    assert first.try_acquire()
    path.unlink()  # as a prune holding it would
    second = make_lock(path)
    assert second.try_acquire()  # a new file: the old name leads nowhere
    first.release()
    third = make_lock(path)
    assert not third.try_acquire()  # the new file is held by the second
    second.release()


def test_verify_finds_damage_the_record_cannot_see(tmp_path: Path) -> None:
    """Bit rot changes no metadata: only hashing sees it."""
    cache = BlobCache(tmp_path)
    good = _commit(cache, b"right" * 1000)
    bad = _commit(cache, b"rotten" * 1000)
    path = cache.path(bad.digest)
    st = path.stat()
    with path.open("r+b") as handle:
        handle.write(b"R")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # its time put back
    with BlobCache(tmp_path) as other:
        assert other.reuse(bad)  # the record holds: reuse cannot tell
    result = verify_cache(tmp_path)
    assert [d.file.digest for d in result.damage] == [bad.digest]
    assert result.damage[0].removed
    assert "digest mismatch" in result.damage[0].problem
    assert not path.exists()
    assert cache.path(good.digest).exists()
    assert {f.digest for f in result.checked} == {good.digest, bad.digest}


def test_verify_does_not_count_as_a_use(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    desc = _commit(cache, b"idle", used_days_ago=40)
    verify_cache(tmp_path)
    assert time.time() - cache.record_path(desc.digest).stat().st_mtime > 39 * DAY

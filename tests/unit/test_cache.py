"""The content-addressed cache: final names only for verified blobs, partial state kept,
a cached blob checked before it is used again."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from sneaker.errors import NotFound
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor
from sneaker.transfer import cache as cache_module
from sneaker.transfer.cache import BlobCache, CacheDamageWarning
from sneaker.transfer.verified import VerifiedRecord, settle, write_record


def _desc(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream", Digest.of_bytes(data), len(data))


def test_partial_then_commit(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    data = b"hello world"
    desc = _desc(data)
    assert not cache.has(desc)
    assert cache.partial(desc.digest) is None
    part = cache.partial_path(desc.digest)
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:5])
    cache.save_validator(desc.digest, '"etag-1"')
    state = cache.partial(desc.digest)
    assert state is not None
    assert (state.size, state.validator) == (5, '"etag-1"')
    assert not cache.has(desc)
    with pytest.raises(NotFound, match="is not in the cache"):
        cache.open_blob(desc).__enter__()
    part.write_bytes(data)
    final = cache.commit_partial(desc.digest)
    assert final == cache.path(desc.digest)
    assert cache.has(desc)
    assert cache.partial(desc.digest) is None
    assert cache.blob_path(desc) == final
    with cache.open_blob(desc) as stream:
        assert stream.read() == data


def test_size_mismatch_is_not_a_hit(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    desc = _desc(b"abc")
    cache.path(desc.digest).parent.mkdir(parents=True)
    cache.path(desc.digest).write_bytes(b"ab")
    assert not cache.has(desc)
    assert cache.blob_path(desc) is None


def test_temporary_cache_is_removed(tmp_path: Path) -> None:
    with BlobCache.temporary(tmp_path) as cache:
        root = cache.root
        assert root.is_dir()
    assert not root.exists()


# -- reuse: a cached blob is checked before it is used again ------------------------------------


def _committed(cache: BlobCache, data: bytes) -> Descriptor:
    """``data`` downloaded and committed, as the engine does."""
    desc = _desc(data)
    part = cache.partial_path(desc.digest)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data)
    cache.commit_partial(desc.digest)
    return desc


def _no_hashing(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    hashed: list[Path] = []
    real = cache_module.hash_file

    def spy(path: Path, desc: Descriptor) -> None:
        hashed.append(path)
        real(path, desc)

    monkeypatch.setattr(cache_module, "hash_file", spy)
    return hashed


def test_a_committed_blob_is_reused_by_its_record_without_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = BlobCache(tmp_path)
    desc = _committed(cache, b"layer bytes" * 1000)
    assert cache.record_path(desc.digest).is_file()
    hashed = _no_hashing(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.reuse(desc)
    assert hashed == []


def _flip(path: Path, offset: int = 5) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_flip, id="a flipped byte"),
        pytest.param(lambda p: os.truncate(p, p.stat().st_size - 7), id="truncated"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes() + b"more"), id="grown"),
    ],
)
def test_a_damaged_blob_is_removed_with_a_warning(
    tmp_path: Path, damage: Callable[[Path], object]
) -> None:
    cache = BlobCache(tmp_path)
    desc = _committed(cache, os.urandom(50_000))
    damage(cache.path(desc.digest))
    with pytest.warns(CacheDamageWarning, match=f"the cached blob {desc.digest} was damaged"):
        assert not cache.reuse(desc)
    assert not cache.path(desc.digest).exists()
    assert not cache.record_path(desc.digest).exists()


def test_a_flipped_byte_is_caught_even_in_the_tick_of_the_download(tmp_path: Path) -> None:
    """The committed blob's time is set back: a write right after still moves it."""
    cache = BlobCache(tmp_path)
    desc = _committed(cache, os.urandom(4096))
    _flip(cache.path(desc.digest))  # microseconds after the commit
    with pytest.warns(CacheDamageWarning, match="digest mismatch"):
        assert not cache.reuse(desc)


def _placed(cache: BlobCache, data: bytes, *, age_s: int = 0) -> tuple[Descriptor, Path]:
    """``data`` put in the cache without a record (as an older sneaker left it), ``age_s`` old."""
    desc = _desc(data)
    path = cache.path(desc.digest)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    if age_s:
        then = time.time_ns() - age_s * 10**9
        os.utime(path, ns=(then, then))
    return desc, path


def test_a_blob_without_a_record_is_hashed_once_then_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = BlobCache(tmp_path)
    desc, path = _placed(cache, b"from an older sneaker", age_s=3600)
    hashed = _no_hashing(monkeypatch)
    assert cache.reuse(desc)
    assert cache.reuse(desc)
    assert hashed == [path]  # hashed the first time only: the record says the rest


def test_a_blob_modified_just_now_gets_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later write could land in the same timestamp tick: it is hashed every time instead."""
    cache = BlobCache(tmp_path)
    desc, _ = _placed(cache, b"written a moment ago")
    hashed = _no_hashing(monkeypatch)
    assert cache.reuse(desc)
    assert cache.reuse(desc)
    assert len(hashed) == 2
    assert not cache.record_path(desc.digest).exists()


def test_a_touched_blob_is_hashed_again_and_kept_when_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = BlobCache(tmp_path)
    desc = _committed(cache, b"content that stays right")
    path = cache.path(desc.digest)
    later = time.time_ns() - 5 * 10**9
    os.utime(path, ns=(later, later))  # moved, content unchanged
    hashed = _no_hashing(monkeypatch)
    assert cache.reuse(desc)
    assert hashed == [path]
    assert cache.reuse(desc)  # the new record holds
    assert hashed == [path]


def test_reuse_notes_the_last_use(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    desc = _committed(cache, b"used")
    record = cache.record_path(desc.digest)
    os.utime(record, ns=(0, 0))
    assert cache.reuse(desc)
    assert time.time() - record.stat().st_mtime < 60


def test_a_missing_blob_is_not_reused_and_warns_nothing(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not cache.reuse(_desc(b"never downloaded"))


def test_write_record_refuses_a_file_modified_in_the_last_two_seconds(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x")
    assert not write_record(tmp_path / "record", path.stat())
    assert not (tmp_path / "record").exists()
    settle(path)
    assert write_record(tmp_path / "record", path.stat())
    record = VerifiedRecord.read(tmp_path / "record")
    assert record is not None
    assert record.matches(path.stat())


def test_an_unreadable_record_counts_as_none(tmp_path: Path) -> None:
    (tmp_path / "torn").write_text('{"v": 1, "size": 3, "ino')
    (tmp_path / "other").write_text('{"v": 99, "size": 3, "inode": 1, "mtime_ns": 1}')
    assert VerifiedRecord.read(tmp_path / "torn") is None
    assert VerifiedRecord.read(tmp_path / "other") is None
    assert VerifiedRecord.read(tmp_path / "missing") is None

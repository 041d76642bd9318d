"""The content-addressed cache: final names only for verified blobs, partial state kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from sneaker.errors import NotFound
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor
from sneaker.transfer.cache import BlobCache


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

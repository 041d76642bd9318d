"""The cache's per-blob lock: flock on POSIX, filelock where there is none (forced here)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sneaker.errors import Interrupted
from sneaker.image.digest import Digest
from sneaker.transfer import filelocks
from sneaker.transfer.cache import BlobCache

DIGEST = Digest.of_bytes(b"a blob")


@pytest.fixture(params=["flock", "filelock"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobCache]:
    if request.param == "filelock":
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(filelocks, "fcntl", None)
            yield BlobCache(tmp_path)
    else:
        yield BlobCache(tmp_path)  # POSIX, as every test machine: flock


def test_a_second_holder_waits_until_the_first_lets_go(cache: BlobCache) -> None:
    order: list[str] = []
    waits: list[str] = []
    first_in = threading.Event()
    release = threading.Event()

    def first() -> None:
        with cache.locked(DIGEST):
            order.append("first in")
            first_in.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        with cache.locked(DIGEST, on_wait=lambda: waits.append("waiting")):
            order.append("second in")

    one = threading.Thread(target=first)
    one.start()
    assert first_in.wait(10)
    two = threading.Thread(target=second)
    two.start()
    two.join(0.3)
    assert two.is_alive()  # held off by the first
    assert waits == ["waiting"]  # said once, however long the wait
    release.set()
    one.join(10)
    two.join(10)
    assert order == ["first in", "first out", "second in"]


def test_a_wait_ends_when_cancelled(cache: BlobCache) -> None:
    cancel = threading.Event()
    with cache.locked(DIGEST):
        outcome: list[BaseException] = []

        def wait() -> None:
            try:
                with cache.locked(DIGEST, cancel=cancel):
                    pass
            except BaseException as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive()
        cancel.set()
        waiter.join(5)
        assert not waiter.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], Interrupted)


def test_the_lock_is_free_again_after_the_block(cache: BlobCache) -> None:
    with cache.locked(DIGEST):
        pass
    with cache.locked(DIGEST, on_wait=lambda: pytest.fail("nobody holds it")):
        pass

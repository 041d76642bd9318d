"""The blob download engine: parallel, resumable, verified while writing.

Each blob goes to the cache's partial file, hashed as it is written; it moves
to its final name only when digest and size match. A run that is cut off
(network, Ctrl-C, SIGKILL) leaves the partial file, and the next run continues
it with ``Range`` + ``If-Range``: only a 206 whose ``Content-Range`` starts
where the file ends (and runs to the blob's end) is trusted, anything else
restarts that blob from zero.

Who retries what:

* the transport (:mod:`sneaker.registry.transport`) retries a request that got
  no usable answer (connection refused or reset, timeouts, 429 with
  ``Retry-After``, 500/502/503/504) with backoff and jitter, and raises the last
  error when its retries are spent: that error is final here too;
* this module retries a body cut off mid-stream, continuing from the bytes
  already on disk; it gives up after :data:`STALL_ATTEMPTS` failures in a row
  that brought no new byte (or came slower than the low-speed limit:
  :class:`~sneaker.errors.TooSlow`), or :data:`MAX_ATTEMPTS` in all;
* bytes that do not match the digest are discarded and the client told
  (``reject_blob``): a client reading through mirrors asks its next endpoint,
  one registry's mismatch is final.

One digest is downloaded by one thread of one process at a time (a file lock
per digest in the cache), so sneaker processes sharing a cache never fetch a
blob twice nor write the same partial file.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from ..errors import IntegrityError, Interrupted, NetworkError, RegistryError, TooSlow
from ..image.digest import DigestingWriter
from ..image.model import Descriptor
from ..util.progress import NullProgress, Progress
from .cache import BlobCache, PartialState

if TYPE_CHECKING:
    from ..registry.client import BlobResponse
    from ..registry.reader import RegistryReader

T = TypeVar("T")

__all__ = [
    "CHUNK",
    "ArrivingBlobs",
    "BlobDownload",
    "BlobJob",
    "DownloadState",
    "FetchStats",
    "fetch_blobs",
    "fetch_one",
    "fetch_while",
    "partial_verdict",
    "trusted_resume",
]

#: bytes read from the socket and written to the partial file at a time
CHUNK = 1 << 20
#: mid-stream failures in a row, without a new byte on disk, before giving up on a blob
STALL_ATTEMPTS = 5
#: mid-stream failures for one blob in all, however much each attempt brought
MAX_ATTEMPTS = 50
#: how long a cancelled :func:`fetch_blobs` waits for its downloads to stop cleanly
CANCEL_GRACE = 5.0


@dataclass(frozen=True)
class BlobJob:
    """One blob to fetch: from which client and repository."""

    client: RegistryReader
    repository: str
    desc: Descriptor
    label: str = ""


@dataclass
class FetchStats:
    downloaded: int = 0
    cached: int = 0
    resumed: int = 0


def _hash_existing(handle: BinaryIO, writer: DigestingWriter, size: int) -> None:
    """Feed the first ``size`` bytes of a partial file to ``writer``'s hash."""
    handle.seek(0)
    remaining = size
    while remaining:
        chunk = handle.read(min(CHUNK, remaining))
        if not chunk:
            break
        writer.prime(chunk)
        remaining -= len(chunk)


def _backoff(attempt: int) -> float:
    """Seconds before body attempt ``attempt`` (1-based, failures in a row): 0.2, 0.4, 0.8..."""
    return float(min(5.0, 0.1 * (2**attempt)) * (0.5 + random.random()))


def trusted_resume(
    status: int, content_range: tuple[int, int, int | None] | None, offset: int, size: int
) -> bool:
    """A 206 carrying exactly the bytes from ``offset`` to the end of a blob of ``size``."""
    if offset <= 0 or status != 206 or content_range is None:
        return False
    start, end, total = content_range
    return start == offset and end == size - 1 and total in (None, size)


def partial_verdict(on_disk: int, size: int) -> str:
    """What a partial file of ``on_disk`` bytes means for a blob of ``size`` bytes.

    ``"too long"``: discard it; ``"complete"``: verify it and commit it without a
    request; ``"continue"``: ask for the rest (everything, when it is empty).
    """
    if on_disk > size:
        return "too long"
    if on_disk == size and on_disk > 0:
        return "complete"
    return "continue"


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Interrupted("download cancelled; partial data kept for the next run")


def _complete_partial(cache: BlobCache, desc: Descriptor, key: str) -> bool:
    """A partial file that already holds every byte: commit it if it is right."""
    path = cache.partial_path(desc.digest)
    with path.open("rb") as handle:
        writer = DigestingWriter(handle, desc.digest, desc.size, what=f"blob {key}")
        _hash_existing(handle, writer, desc.size)
    try:
        writer.check()
    except IntegrityError:
        cache.discard_partial(desc.digest)
        return False
    cache.commit_partial(desc.digest)
    return True


@dataclass
class DownloadState:
    """What one blob's download has been through, and what that makes of the next failure.

    Pure: it counts and decides; :class:`BlobDownload` does the I/O. The policy
    is the module's: a cut body continues, with a backoff, until
    :data:`STALL_ATTEMPTS` cuts in a row brought no new byte or
    :data:`MAX_ATTEMPTS` cuts in all; a blob starts over from zero at most once.
    """

    #: the bytes being verified include some kept from an earlier attempt or run
    reused: bool = False
    #: the blob started over from zero once already (it never does twice)
    restarted: bool = False
    #: body cuts in a row that brought no new byte to disk
    stalls: int = 0
    #: body cuts in all
    attempts: int = 0
    #: the most bytes the partial file has held
    furthest: int = -1

    def reached(self, on_disk: int) -> None:
        self.furthest = max(self.furthest, on_disk)

    def restart(self) -> bool:
        """Start over from zero? Yes, once; after that the failure stands."""
        if self.restarted:
            return False
        self.restarted = True
        return True

    def range_refused(self, offset: int, status: int | None) -> bool:
        """The registry refused a range request (a 206 for other bytes, a 416): start over?"""
        return offset > 0 and status in (206, 416) and self.restart()

    def body_cut(self, on_disk: int, *, slow: bool = False) -> float | None:
        """A body cut off with ``on_disk`` bytes kept: seconds to wait before continuing
        from there, or None to give up. A ``slow`` one (abandoned below the low-speed
        limit) counts as bringing nothing, whatever trickled in: a server that only
        trickles ends the download after :data:`STALL_ATTEMPTS` of them."""
        self.attempts += 1
        progressed = on_disk > self.furthest and not slow
        self.stalls = 0 if progressed else self.stalls + 1
        self.reached(on_disk)
        if self.stalls >= STALL_ATTEMPTS or self.attempts >= MAX_ATTEMPTS:
            return None
        return _backoff(self.stalls)

    def mismatch(self) -> bool:
        """Bytes that do not match the digest: start over whole (True: the bytes kept from
        an earlier run may be the bad ones), or leave the verdict to the client (False)."""
        return self.reused and self.restart()


class BlobDownload:
    """One blob from a registry into the cache, one method per step.

    :meth:`run`: take the digest's lock -> the cache has it, and it is right
    (:meth:`BlobCache.reuse`)? -> else attempt after attempt (:meth:`_attempt`): look at
    the partial file (:meth:`_check_partial`) -> request the rest or the whole blob
    (:meth:`_request`) -> stream it to the partial file, hashing, and verify
    (:meth:`_stream`, :meth:`_write`) -> commit (:meth:`_commit`). A failure goes
    to its own step: a cut body waits and continues (:meth:`_body_cut`), bytes
    that were not asked for start the blob over (:meth:`_restart`), a mismatch
    starts over or is the client's to judge (:meth:`_mismatch`). What the download has been
    through is its :class:`DownloadState`.
    """

    def __init__(
        self,
        job: BlobJob,
        cache: BlobCache,
        progress: Progress,
        sleep: Callable[[float], None] = time.sleep,
        cancel: threading.Event | None = None,
    ) -> None:
        self.job = job
        self.desc = job.desc
        self.key = str(job.desc.digest)
        self.label = job.label or job.desc.digest.short
        self.cache = cache
        self.progress = progress
        self.sleep = sleep
        self.cancel = cancel
        self.state = DownloadState()
        #: what the partial file held when the current attempt began, and from where it asks
        self.partial: PartialState | None = None
        self.offset = 0

    def run(self) -> str:
        """Fetch the blob; return ``"cached"``, ``"resumed"`` or ``"downloaded"``."""
        self.progress.start(self.key, self.label, self.desc.size)
        # under the lock: another process may be downloading it, or checking it, or pruning
        with self.cache.locked(self.desc.digest, cancel=self.cancel, on_wait=self._waiting):
            if self._in_cache():
                return "cached"
            while True:
                outcome = self._attempt()
                if outcome is not None:
                    return outcome

    def _in_cache(self) -> bool:
        if not self.cache.reuse(self.desc):  # checked; a damaged copy is removed
            return False
        self.progress.finish(self.key, "cached")
        return True

    def _waiting(self) -> None:
        self.progress.message(f"{self.label}: waiting for another sneaker process to download it")

    def _attempt(self) -> str | None:
        """One request: the outcome once the blob is in the cache, None to go again."""
        _check_cancel(self.cancel)
        if self._check_partial():
            self.progress.finish(self.key, "resumed")
            return "resumed"
        response = self._request()
        if response is None:
            return None
        try:
            with response:
                if not self._stream(response):
                    return None
        except NetworkError as exc:
            if not self._body_cut(slow=isinstance(exc, TooSlow)):
                raise
            return None
        except IntegrityError as exc:
            self._mismatch(exc)
            return None
        return self._commit()

    def _check_partial(self) -> bool:
        """Where this attempt starts (``offset``); True when the partial file held the
        whole blob, verified and now committed."""
        self.partial = self.cache.partial(self.desc.digest)
        self.offset = self.partial.size if self.partial is not None else 0
        verdict = partial_verdict(self.offset, self.desc.size)
        if verdict == "too long":
            self.cache.discard_partial(self.desc.digest)
        elif verdict == "complete" and _complete_partial(self.cache, self.desc, self.key):
            return True
        if verdict != "continue":
            self.partial, self.offset = None, 0
        self.state.reached(self.offset)
        return False

    def _request(self) -> BlobResponse | None:
        """Ask for the bytes from ``offset`` on (all of them from 0); None when the registry
        refused the range and the blob starts over."""
        try:
            return self.job.client.open_blob(
                self.job.repository,
                self.desc.digest,
                offset=self.offset,
                validator=self.partial.validator if self.partial else None,
            )
        except RegistryError as exc:
            # a 206 for other bytes than asked, or a range the registry cannot serve
            if not self.state.range_refused(self.offset, exc.status):
                raise
            self.cache.discard_partial(self.desc.digest)
            return None

    def _stream(self, response: BlobResponse) -> bool:
        """Write the body, or start over when it holds bytes we did not ask for (False)."""
        resume = trusted_resume(
            response.status, response.content_range, self.offset, self.desc.size
        )
        if response.status == 206 and not resume:
            self._restart(response)
            return False
        self._write(response, resume)
        return True

    def _restart(self, response: BlobResponse) -> None:
        """A 206 for other bytes than asked: the blob starts again from zero, once; the
        second time the registry's answer is an error."""
        response.close()
        self.cache.discard_partial(self.desc.digest)
        if not self.state.restart():
            raise RegistryError(
                f"{self.job.client.registry} answered a range request for blob "
                f"{self.key} with Content-Range {response.headers.get('Content-Range')!r}",
                status=206,
            )

    def _write(self, response: BlobResponse, resume: bool) -> None:
        """The body into the partial file (after its bytes when ``resume``), hashed as it is
        written, then verified: raises :class:`IntegrityError` on a mismatch."""
        desc = self.desc
        # the validator only matters to resume a large blob: small ones never
        # pay for the extra file; a stale one merely makes the next resume restart
        saved = self.partial.validator if self.partial is not None else None
        if not resume and saved is not None:
            self.cache.forget_validator(desc.digest)
            saved = None
        pending = response.validator if response.validator != saved else None
        cache, progress, key, cancel = self.cache, self.progress, self.key, self.cancel
        with cache.open_partial(desc.digest, resume=resume) as handle:
            writer = DigestingWriter(handle, desc.digest, desc.size, what=f"blob {key}")
            if resume:
                _hash_existing(handle, writer, self.offset)
                handle.seek(self.offset)
                handle.truncate()
            self.state.reused = resume
            progress.reset(key, writer.written)
            for chunk in response.iter_chunks(CHUNK):
                _check_cancel(cancel)
                writer.write(chunk)
                progress.advance(key, len(chunk))
                if pending is not None and CHUNK <= writer.written < desc.size:
                    cache.save_validator(desc.digest, pending)
                    pending = None
            handle.flush()
            writer.check()

    def _body_cut(self, *, slow: bool = False) -> bool:
        """The body was cut (or abandoned as too ``slow``): what arrived is on disk. Wait,
        then True to continue from there; False to give up (the caller raises the cut)."""
        _check_cancel(self.cancel)
        partial = self.cache.partial(self.desc.digest)
        wait = self.state.body_cut(partial.size if partial is not None else 0, slow=slow)
        if wait is None:
            return False
        if self.cancel is not None and self.sleep is time.sleep:
            self.cancel.wait(wait)
        else:
            self.sleep(wait)
        return True

    def _mismatch(self, exc: IntegrityError) -> None:
        """Bytes that do not match: discarded; start over, ask the next endpoint, or raise."""
        self.cache.discard_partial(self.desc.digest)
        if self.state.mismatch():
            return  # the bytes kept from an earlier run may be the bad ones: once more, whole
        final = self.job.client.reject_blob(self.job.repository, self.desc.digest, exc)
        if final is None:  # a mirror sent them: the next endpoint serves the blob
            return
        raise final from None  # the message says all there is

    def _commit(self) -> str:
        self.cache.commit_partial(self.desc.digest)
        self.progress.finish(self.key, "resumed" if self.state.reused else "")
        return "resumed" if self.state.reused else "downloaded"


def fetch_one(
    job: BlobJob,
    cache: BlobCache,
    progress: Progress,
    sleep: Callable[[float], None] = time.sleep,
    cancel: threading.Event | None = None,
) -> str:
    """Fetch one blob into ``cache``; return ``"cached"``, ``"resumed"`` or ``"downloaded"``.

    Raises :class:`Interrupted` when ``cancel`` is set (the partial file stays),
    :class:`IntegrityError` when the registry's bytes do not match the
    descriptor and the client has no other endpoint for them (nothing stays),
    and the transport's error when a request fails for good. A file error (a full
    disk, say) names the cache's partial file and says that a rerun resumes.
    """
    with cache.reporting(job.desc):
        return BlobDownload(job, cache, progress, sleep, cancel).run()


class _Pool:
    """``parallel`` daemon threads draining a list of jobs; the first error stops the rest.

    Daemon threads, so that a Ctrl-C never waits for a download stuck on a slow
    socket: the cancel event stops each at its next chunk, with a grace period.
    """

    def __init__(
        self,
        jobs: list[BlobJob],
        work: Callable[[BlobJob], str],
        parallel: int,
        cancel: threading.Event,
    ) -> None:
        self._jobs = jobs
        self._work = work
        self._cancel = cancel
        self._lock = threading.Lock()
        self._next = 0
        self.results: list[str] = []
        self.error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._run, name=f"fetch-{i}", daemon=True)
            for i in range(max(1, min(parallel, len(jobs))))
        ]
        self._running = len(self._threads)
        self._wake = threading.Event()  # set when a worker ends or fails

    def _take(self) -> BlobJob | None:
        with self._lock:
            if self._cancel.is_set() or self._next >= len(self._jobs):
                return None
            job = self._jobs[self._next]
            self._next += 1
            return job

    def _run(self) -> None:
        try:
            while True:
                job = self._take()
                if job is None:
                    return
                try:
                    result = self._work(job)
                except BaseException as exc:
                    with self._lock:
                        if self.error is None and not (
                            isinstance(exc, Interrupted) and self._cancel.is_set()
                        ):
                            self.error = exc
                    self._cancel.set()
                    return
                with self._lock:
                    self.results.append(result)
        finally:
            with self._lock:
                self._running -= 1
            self._wake.set()

    def run(self) -> None:
        """Run every job; return when all are done, or soon after the first failure."""
        for thread in self._threads:
            thread.start()
        try:
            while True:
                with self._lock:
                    running = self._running
                if running == 0 or self._cancel.is_set():
                    break  # all done, or a failure: the others stop at their next chunk
                self._wake.wait(0.5)
                self._wake.clear()
        except BaseException:
            # Ctrl-C: every download stops at its next chunk; partial files stay
            self._cancel.set()
            self._drain()
            raise
        self._drain()

    def _drain(self) -> None:
        """Give running downloads a moment to stop cleanly (one stuck in a retry's
        wait or a slow read is left behind: a daemon thread, it never holds up an exit)."""
        deadline = time.monotonic() + CANCEL_GRACE
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def fetch_blobs(
    jobs: Iterable[BlobJob],
    cache: BlobCache,
    *,
    parallel: int = 4,
    progress: Progress | None = None,
    on_done: Callable[[Descriptor], None] | None = None,
    cancel: threading.Event | None = None,
) -> FetchStats:
    """Fetch every job's blob (each digest once) with ``parallel`` threads, largest first.

    The first failure stops the rest: downloads not started are skipped, running
    ones stop at their next chunk and keep their partial files; the failure is
    raised. Ctrl-C does the same and raises :class:`KeyboardInterrupt`.
    ``on_done`` is called (on a worker thread) as each blob lands in the cache;
    setting ``cancel`` from another thread stops the downloads the same way.
    """
    progress = progress or NullProgress()
    unique: dict[str, BlobJob] = {}
    for job in jobs:
        unique.setdefault(str(job.desc.digest), job)
    ordered = sorted(unique.values(), key=lambda j: -j.desc.size)
    progress.expect({key: job.desc.size for key, job in unique.items()})
    stats = FetchStats()
    if not ordered:
        return stats
    cancel = cancel or threading.Event()

    def work(job: BlobJob) -> str:
        result = fetch_one(job, cache, progress, cancel=cancel)
        if on_done is not None:
            on_done(job.desc)
        return result

    pool = _Pool(ordered, work, parallel, cancel)
    pool.run()
    if pool.error is not None:
        raise pool.error
    for result in pool.results:
        if result == "cached":
            stats.cached += 1
        elif result == "resumed":
            stats.resumed += 1
        else:
            stats.downloaded += 1
    return stats


class _FetchFailed(Exception):
    """Raised in a consumer waiting for a blob whose download failed (the cause follows)."""


class ArrivingBlobs:
    """The cache as a :class:`~sneaker.image.records.BlobSource` whose reads wait for blobs
    still downloading, so a writer can copy each blob the moment it lands."""

    def __init__(self, cache: BlobCache, expected: Iterable[Descriptor]) -> None:
        self._cache = cache
        self._expected = {d.digest for d in expected}
        self._arrived: set[object] = set()
        self._failed = False
        self._cond = threading.Condition()

    def arrived(self, desc: Descriptor) -> None:
        with self._cond:
            self._arrived.add(desc.digest)
            self._cond.notify_all()

    def failed(self) -> None:
        with self._cond:
            self._failed = True
            self._cond.notify_all()

    def _wait(self, desc: Descriptor) -> None:
        if desc.digest not in self._expected:
            return
        with self._cond:
            while desc.digest not in self._arrived:
                if self._failed:
                    raise _FetchFailed(str(desc.digest))
                self._cond.wait(0.5)

    def blob_path(self, desc: Descriptor) -> Path | None:
        self._wait(desc)
        return self._cache.blob_path(desc)

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        self._wait(desc)
        return self._cache.open_blob(desc)


def fetch_while(
    jobs: Sequence[BlobJob],
    cache: BlobCache,
    consume: Callable[[ArrivingBlobs], T],
    *,
    parallel: int = 4,
    progress: Progress | None = None,
) -> tuple[FetchStats, T]:
    """Download ``jobs`` while ``consume`` reads the blobs as they arrive.

    ``consume`` runs on the calling thread (an archive writer, say) and blocks
    on each blob until it is in the cache. A failed download is raised (not the
    consumer's wait); a failing consumer, or Ctrl-C, stops the downloads.
    """
    blobs = ArrivingBlobs(cache, (job.desc for job in jobs))
    cancel = threading.Event()
    outcome: dict[str, object] = {}

    def download() -> None:
        try:
            outcome["stats"] = fetch_blobs(
                jobs,
                cache,
                parallel=parallel,
                progress=progress,
                on_done=blobs.arrived,
                cancel=cancel,
            )
        except BaseException as exc:
            outcome["error"] = exc
            blobs.failed()

    worker = threading.Thread(target=download, name="fetch-while", daemon=True)
    worker.start()
    try:
        result = consume(blobs)
    except BaseException as exc:
        cancel.set()
        worker.join(timeout=10)
        error = outcome.get("error")
        if isinstance(exc, _FetchFailed) and isinstance(error, BaseException):
            raise error from None
        raise
    worker.join()
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise error
    stats = outcome["stats"]
    assert isinstance(stats, FetchStats)
    return stats, result

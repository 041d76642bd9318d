"""A bounded set of worker threads, started as they are needed and reused.

``reserve()`` takes a free worker (waiting at most ``timeout``), ``run()`` hands
it a job. At most ``size`` jobs run at once; a thread that finishes a job waits
for the next one instead of ending, so a connection costs no thread start once
the pool has grown. The threads are daemons: a job stuck on a dead client never
keeps the process alive.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable

__all__ = ["WorkerPool"]


class WorkerPool:
    """At most ``size`` jobs at once, each on a reused daemon thread named ``name-N``."""

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self._name = name
        self._free = threading.BoundedSemaphore(size)
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._waiting = 0  # threads blocked on the queue with no job promised to them
        self._numbers = itertools.count(1)

    def reserve(self, timeout: float) -> bool:
        """Take a free worker for the next :meth:`run`; False if none came free in ``timeout``."""
        return self._free.acquire(timeout=timeout)

    def run(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the worker taken by the last :meth:`reserve` (a waiting thread,
        or a new one while fewer than ``size`` exist)."""
        with self._lock:
            if self._waiting:
                self._waiting -= 1
            else:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{next(self._numbers)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._jobs.put(job)

    @property
    def threads(self) -> int:
        """How many threads the pool has started (never more than ``size``)."""
        with self._lock:
            return len(self._threads)

    def stop(self) -> None:
        """Let every thread end once its job (if any) is done."""
        with self._lock:
            count = len(self._threads)
        for _ in range(count):
            self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException:
                # jobs handle their own errors: this is a bug. The thread ends (its
                # exception reported by threading) and the next run() starts another.
                with self._lock:
                    self._threads.remove(threading.current_thread())
                self._free.release()
                raise
            with self._lock:
                self._waiting += 1
            self._free.release()

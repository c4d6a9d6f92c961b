"""The service's bounded work queue: a few worker threads, a few waiting jobs, no more.

A request whose job finds the workers busy and the queue full is refused at once (`Full`,
answered 429 with Retry-After). A job that has not finished within the timeout is given up
(`TimedOut`, answered 503 with Retry-After): if it is still waiting it never starts; if it is
running it stops at its next `check()` (every image of a batch, every tile of an edit), since
a thread cannot be killed. Retry-After is the mean job time times the work ahead, per worker.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_local = threading.local()


class Overload(Exception):
    """A job the queue will not finish; `retry_after` is in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Full(Overload):
    """The queue is full (429)."""


class TimedOut(Overload):
    """The job ran past the per-request timeout (503)."""


class _Cancelled(Exception):
    """Raised inside a job that its request gave up on."""


def check() -> None:
    """Inside a job: stop here if its request has timed out (a no-op outside jobs)."""
    event = getattr(_local, "cancel", None)
    if event is not None and event.is_set():
        raise _Cancelled


class WorkQueue:
    """`workers` threads run jobs; at most `depth` more wait; each request waits `timeout_s`."""

    def __init__(self, workers: int = 1, depth: int = 8, timeout_s: float = 60.0) -> None:
        if workers < 1 or depth < 0 or not timeout_s > 0:
            raise ValueError("workers >= 1, depth >= 0 and timeout > 0 are needed")
        self.workers, self.depth, self.timeout_s = workers, depth, timeout_s
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="pixelsmith-work")
        self._lock = threading.Lock()
        self.waiting = 0
        self.running = 0
        self.mean_s = 0.5  # a moving mean of job time, seeded with a guess
        self.refused = 0
        self.timed_out = 0

    def retry_after(self) -> int:
        """Seconds until a new job would likely get a worker."""
        ahead = self.waiting + self.running
        return max(1, math.ceil(self.mean_s * ahead / self.workers))

    def _job(self, fn: Callable[[], T], cancel: threading.Event) -> T:
        with self._lock:
            self.waiting -= 1
            self.running += 1
        t0 = time.perf_counter()
        _local.cancel = cancel
        try:
            check()
            out = fn()
            with self._lock:  # only finished jobs: a cancelled one says nothing of job time
                self.mean_s = 0.8 * self.mean_s + 0.2 * (time.perf_counter() - t0)
            return out
        finally:
            _local.cancel = None
            with self._lock:
                self.running -= 1

    async def run(self, fn: Callable[[], T]) -> T:
        """fn() on a worker thread; Full or TimedOut (both Overload) when it cannot be had."""
        with self._lock:
            if self.waiting + self.running >= self.workers + self.depth:
                self.refused += 1
                raise Full(
                    f"the server is busy ({self.running} running, {self.waiting} waiting); "
                    "retry later",
                    self.retry_after(),
                )
            self.waiting += 1
        cancel = threading.Event()
        future: Any = asyncio.get_running_loop().run_in_executor(self._pool, self._job, fn, cancel)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except asyncio.CancelledError:  # the client went away: its job need not finish
            cancel.set()
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise
        except TimeoutError:
            cancel.set()
            future.add_done_callback(lambda f: f.cancelled() or f.exception())  # moot now
            with self._lock:
                self.timed_out += 1
            raise TimedOut(
                f"the request took over {self.timeout_s:g} s and was stopped; retry later "
                "or ask for less (fewer images, a smaller photo)",
                self.retry_after(),
            ) from None

    def close(self) -> None:
        """Stop the worker threads once their jobs end."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self.waiting = 0  # cancelled jobs never reach _job to count themselves out

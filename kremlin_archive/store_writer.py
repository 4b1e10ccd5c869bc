"""The crawl's writer: one thread that owns the run's write connection to the database, and
the WARC writer, so that storing an event (saving, gzip, fsync) never holds up Scrapy's event
loop.

Every write of the run goes through one FIFO queue and runs on the writer thread in the order
it was submitted, each job in its own transaction (the db.py functions it calls are atomic):

- `call(fn, ...)` (awaitable, on the event loop): runs `fn(db, ...)` on the writer thread and
  answers with its result or exception. At most `capacity` such jobs wait in the queue; a
  producer beyond that awaits a free slot (back-pressure that never blocks the loop).
- `post(fn, ...)`: a write nobody waits for (an `errors` row, a coverage note), in order with
  the others; if it raises, the writer fails (nothing is lost silently).
- `drain()`: blocks until everything submitted so far is written (for reads that must see it,
  and at the end of a run).

A job that raises rolls its transaction back and hands the exception to its caller. If the
writer itself fails (an exception outside a job's own handling, or a `post`ed write that
raised), it stops writing: its connection is rolled back and closed, and from then on the
jobs it had not finished -- the one it was running, then the queued ones, in order -- and
every later one run in place on the event loop's thread, on `fallback_db()`, before
`on_failure(cause)` tells the run (which records it and stops as failed). So every exchange
still gets its `fetches` row and every answer its outcome, nothing is half-written: a WARC
record is written whole or cut off (warc/writer.py), a transaction commits or not.

A SIGKILL loses only what was queued and not yet written: each job is whole or absent, and a
`fetches` row is written after its WARC record, in the same job.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class WriterFailed(RuntimeError):
    """The writer stopped on an error: the job was not run."""


class _Job:
    __slots__ = ("args", "detached", "fn", "future", "kwargs")

    def __init__(self, fn, args, kwargs, detached: bool):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.detached = detached
        self.future: concurrent.futures.Future = concurrent.futures.Future()

    def run(self, db) -> Any:
        return self.fn(db, *self.args, **self.kwargs)


_STOP = object()


class StoreWriter:
    """A writer thread for one run. `connect()` opens its connection (on the thread);
    `fallback_db()` is the event loop's connection, for the jobs left when the writer fails;
    `on_failure(exc)` is then called on the event loop `loop`; `close` (e.g. the WARC
    writer's) runs on the thread at a normal end."""

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        loop: asyncio.AbstractEventLoop,
        fallback_db: Callable[[], Any],
        on_failure: Callable[[BaseException], None],
        capacity: int = 64,
        close: Callable[[], None] | None = None,
        name: str = "kremlin-writer",
    ):
        self._connect = connect
        self._close_extra = close
        self.loop = loop
        self.fallback_db = fallback_db
        self.on_failure = on_failure
        self.capacity = capacity
        self._slots = asyncio.Semaphore(capacity)
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.failure: BaseException | None = None
        self._failure_reported = False
        self._leftovers: list[_Job] = []
        self._current: _Job | None = None
        self._closed = False
        self._ready = threading.Event()
        self.db = None  # the writer thread's connection

    # -- the event loop's side ------------------------------------------------------------

    def start(self) -> StoreWriter:
        self._thread.start()
        self._ready.wait()
        if self.failure is not None:
            raise WriterFailed(f"the writer could not start: {self.failure!r}") from self.failure
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self.failure is None and not self._closed

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, fn, *args, **kwargs) -> concurrent.futures.Future:
        """Queue `fn(db, *args, **kwargs)`; its future answers."""
        job = _Job(fn, args, kwargs, detached=False)
        self._put(job)
        return job.future

    async def call(self, fn, *args, **kwargs) -> Any:
        """`fn(db, *args, **kwargs)` on the writer thread, in order; awaits a free slot first."""
        async with self._slots:
            return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def post(self, fn, *args, **kwargs) -> None:
        """Queue a write nobody waits for."""
        self._put(_Job(fn, args, kwargs, detached=True))

    def drain(self) -> None:
        """Block until every job submitted so far has run."""
        if self.running:
            done = self.submit(_noop)
            # (if the writer fails meanwhile, the no-op is among the jobs it leaves)
            while not done.done() and self.failure is None:
                concurrent.futures.wait([done], timeout=0.05)
        if self.failure is not None:
            self.report_failure()

    def close(self) -> None:
        """Run what is queued, close the connection (and `close`), end the thread; if the
        writer failed, run what it left and report it."""
        with self._cond:
            if not self._closed:
                self._closed = True
                self._queue.append(_STOP)
                self._cond.notify()
        self._thread.join()
        self.report_failure()

    def _put(self, job: _Job) -> None:
        with self._cond:
            if self.failure is None and not self._closed:
                self._queue.append(job)
                self._cond.notify()
                return
        # the writer failed (or is closed): what it left first, then this job, in place
        self.report_failure()
        self._run_inline(job)

    def report_failure(self) -> None:
        """Once, on the event loop's thread, after the writer failed: run in place the jobs it
        left, in order, then tell the run."""
        if self.failure is None or self._failure_reported:
            return
        self._failure_reported = True
        self._thread.join()  # it only rolls back and closes its connection now
        leftovers, self._leftovers = self._leftovers, []
        for job in leftovers:
            self._run_inline(job)
        self.on_failure(self.failure)

    def _run_inline(self, job: _Job) -> None:
        future = job.future
        if not future.running() and not future.set_running_or_notify_cancel():
            return  # cancelled
        db = self.fallback_db()
        try:
            result = job.run(db)
        except Exception as exc:
            _rollback(db)
            if job.detached:
                logger.exception("a write failed in place")
            future.set_exception(exc)
        else:
            future.set_result(result)

    # -- the writer thread ------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self.db = self._connect()
        except BaseException as exc:
            self.failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                with self._cond:
                    while not self._queue:
                        self._cond.wait()
                    job = self._queue.popleft()
                if job is _STOP:
                    break
                self._current = job
                self._run_job(job)
                self._current = None
        except BaseException as exc:  # the writer is broken: stop writing, say why
            logger.exception("the writer failed; what it had left is written in place")
            self._fail(exc)
        finally:
            self._shut()

    def _run_job(self, job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            result = job.run(self.db)
        except Exception as exc:
            _rollback(self.db)
            if job.detached:  # nobody would hear of it: the writer fails instead
                raise
            job.future.set_exception(exc)
            return
        job.future.set_result(result)

    def _fail(self, exc: BaseException) -> None:
        _rollback(self.db)
        with self._cond:
            self.failure = exc
            current = self._current
            if current is not None and not current.future.done():
                self._leftovers.append(current)
            self._leftovers += [j for j in self._queue if j is not _STOP]
            self._queue.clear()
        # (a closed loop: whoever closes the writer reports it)
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.report_failure)

    def _shut(self) -> None:
        try:
            if self._close_extra is not None and self.failure is None:
                self._close_extra()
        except Exception as exc:
            logger.exception("the writer could not close the WARC file")
            self._fail(exc)
        finally:
            db, self.db = self.db, None
            if db is not None:
                _rollback(db)
                db.close()


def _noop(db) -> None:
    return None


def _rollback(db) -> None:
    """A failed job leaves no transaction open behind it."""
    conn = getattr(db, "conn", None)
    if conn is not None and conn.in_transaction:
        conn.rollback()

"""The crawl's writer thread (store_writer.StoreWriter): order, answers, back-pressure, and
what happens when a job or the writer itself fails."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from kremlin_archive import db as dbmod
from kremlin_archive.store_writer import StoreWriter


def insert(db, n: int) -> int:
    """A write that records its order and the thread it ran on."""
    with db.atomic():
        db.execute(
            "INSERT INTO seen (n, thread) VALUES (?, ?)", [n, threading.current_thread().name]
        )
    return n


def half_then_raise(db, n: int) -> None:
    """A job that raises in the middle of its transaction."""
    with db.atomic():
        db.execute("INSERT INTO seen (n, thread) VALUES (?, ?)", [n, "half"])
        raise ValueError(f"job {n} failed")


def seen(db_path) -> list[tuple[int, str]]:
    db = dbmod.connect(db_path)
    try:
        return [tuple(r) for r in db.execute("SELECT n, thread FROM seen ORDER BY rowid")]
    finally:
        db.close()


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "w.db"
    db = dbmod.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE seen (n INTEGER, thread TEXT)")
    db.close()
    return path


def writer_for(db_path, loop, failures, *, capacity=4, fallback=None):
    return StoreWriter(
        lambda: dbmod.connect(db_path),
        loop=loop,
        fallback_db=fallback or (lambda: pytest.fail("no fallback expected")),
        on_failure=failures.append,
        capacity=capacity,
    ).start()


def test_jobs_run_in_order_on_the_writer_thread_and_answer(db_path):
    failures = []

    async def main():
        writer = writer_for(db_path, asyncio.get_running_loop(), failures)
        writer.post(insert, 0)
        answers = await asyncio.gather(*(writer.call(insert, n) for n in range(1, 20)))
        writer.post(insert, 20)
        writer.close()
        return answers

    assert asyncio.run(main()) == list(range(1, 20))
    assert seen(db_path) == [(n, "kremlin-writer") for n in range(21)]
    assert failures == []


def test_a_failing_job_rolls_back_and_answers_its_caller_and_the_writer_goes_on(db_path):
    failures = []

    async def main():
        writer = writer_for(db_path, asyncio.get_running_loop(), failures)
        with pytest.raises(ValueError, match="job 1 failed"):
            await writer.call(half_then_raise, 1)
        assert await writer.call(insert, 2) == 2
        writer.close()

    asyncio.run(main())
    assert seen(db_path) == [(2, "kremlin-writer")]  # nothing of job 1
    assert failures == []


def test_back_pressure_waits_on_the_loop_never_blocks_it(db_path):
    """Beyond `capacity` queued calls, producers await a slot; the loop keeps running."""
    failures = []
    gate = threading.Event()

    def blocked(db, n):
        gate.wait(10)
        return insert(db, n)

    async def main():
        writer = writer_for(db_path, asyncio.get_running_loop(), failures, capacity=3)
        calls = [asyncio.ensure_future(writer.call(blocked, n)) for n in range(8)]
        ticks = 0
        for _ in range(20):  # the loop is free while the writer is stuck
            await asyncio.sleep(0.01)
            ticks += 1
        assert writer.queued <= 3 and ticks == 20
        gate.set()
        assert await asyncio.gather(*calls) == list(range(8))
        writer.close()

    asyncio.run(main())
    assert [n for n, _ in seen(db_path)] == list(range(8))


def test_a_writer_failure_leaves_its_jobs_to_the_loop_in_order_and_is_reported(db_path):
    """A posted write that raises breaks the writer: the job it was running and those queued
    behind it run in place (on the fallback connection, in order), so do later ones, and the
    run hears of it once."""
    failures = []
    gate = threading.Event()
    fallback = dbmod.connect(db_path)

    def blocked(db, n):
        gate.wait(10)
        return insert(db, n)

    async def main():
        writer = writer_for(
            db_path, asyncio.get_running_loop(), failures, capacity=10, fallback=lambda: fallback
        )
        first = asyncio.ensure_future(writer.call(blocked, 0))
        await asyncio.sleep(0.02)  # submitted, and running on the writer
        writer.post(half_then_raise, 1)  # breaks the writer
        queued = [asyncio.ensure_future(writer.call(insert, n)) for n in (2, 3)]
        await asyncio.sleep(0.05)
        gate.set()
        assert await first == 0
        assert await asyncio.gather(*queued) == [2, 3]
        assert await writer.call(insert, 4) == 4  # after the failure: in place
        writer.close()

    asyncio.run(main())
    fallback.close()
    rows = seen(db_path)
    assert [n for n, _ in rows] == [0, 2, 3, 4]  # job 1 failed again in place: rolled back
    assert rows[0][1] == "kremlin-writer" and {t for _, t in rows[1:]} == {"MainThread"}
    [failure] = failures
    assert isinstance(failure, ValueError)


def test_a_crash_of_the_writer_thread_itself(db_path, monkeypatch):
    """An exception outside any job (the writer's own machinery): the job it was about to run
    is run in place, not lost."""
    failures = []
    fallback = dbmod.connect(db_path)
    run_job = StoreWriter._run_job
    calls = []

    def crashing(self, job):
        calls.append(job)
        if len(calls) == 3:
            raise RuntimeError("planted writer crash")
        return run_job(self, job)

    monkeypatch.setattr(StoreWriter, "_run_job", crashing)

    async def main():
        writer = writer_for(
            db_path, asyncio.get_running_loop(), failures, capacity=10, fallback=lambda: fallback
        )
        answers = await asyncio.gather(*(writer.call(insert, n) for n in range(6)))
        deadline = time.monotonic() + 5
        while not failures and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        writer.close()
        return answers

    assert asyncio.run(main()) == list(range(6))
    fallback.close()
    assert [n for n, _ in seen(db_path)] == list(range(6))
    [failure] = failures
    assert str(failure) == "planted writer crash"

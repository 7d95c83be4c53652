"""The store's worker thread: calls in order, outcomes on the caller's loop, a clean stop."""

from __future__ import annotations

import asyncio
from pathlib import Path
import subprocess
import sys
import threading

import pytest

from custom_components.iotee.core.worker import Worker, WorkerStoppedError


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


async def test_calls_run_in_order_on_one_thread_of_their_own() -> None:
    worker = Worker("iotee_test_worker")
    ran: list[tuple[int, str]] = []

    def call(number: int) -> int:
        ran.append((number, threading.current_thread().name))
        return number * 10

    try:
        futures = [worker.submit(call, number) for number in range(50)]
        assert await asyncio.gather(*futures) == [n * 10 for n in range(50)]
        assert ran == [(n, "iotee_test_worker") for n in range(50)]
    finally:
        await worker.async_stop()
    assert _threads("iotee_test_worker") == []


async def test_an_error_reaches_its_caller_and_the_next_call_still_runs() -> None:
    worker = Worker("iotee_test_worker")

    def fail() -> None:
        raise ValueError("no")

    try:
        failed = worker.submit(fail)
        after = worker.submit(lambda: "still running")
        with pytest.raises(ValueError, match="no"):
            await failed
        assert await after == "still running"
    finally:
        await worker.async_stop()


async def test_a_cancelled_wait_does_not_stop_the_call_or_the_next() -> None:
    worker = Worker("iotee_test_worker")
    release = threading.Event()
    done: list[str] = []

    def slow() -> None:
        release.wait(5)
        done.append("slow")

    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    try:
        cancelled = worker.submit(slow)
        nxt = worker.submit(lambda: done.append("next"))
        cancelled.cancel()
        release.set()
        await nxt
        assert done == ["slow", "next"]  # the cancelled wait's call ran all the same
        assert cancelled.cancelled()
        assert errors == []  # its outcome was dropped, not set on the cancelled future
    finally:
        loop.set_exception_handler(None)
        await worker.async_stop()


async def test_stop_lets_submitted_calls_finish_then_refuses_more() -> None:
    worker = Worker("iotee_test_worker")
    release = threading.Event()

    def slow() -> str:
        release.wait(5)
        return "finished"

    pending = worker.submit(slow)
    stopping = asyncio.ensure_future(worker.async_stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()  # waits for the call under way
    with pytest.raises(WorkerStoppedError):  # refused while stopping: never left unanswered
        worker.submit(slow)
    release.set()
    await stopping
    assert await pending == "finished"
    assert _threads("iotee_test_worker") == []
    with pytest.raises(WorkerStoppedError):
        worker.submit(slow)


async def test_a_worker_never_used_starts_no_thread_and_stops_at_once() -> None:
    worker = Worker("iotee_test_unused")
    assert _threads("iotee_test_unused") == []
    await worker.async_stop()
    assert _threads("iotee_test_unused") == []


def test_an_answer_for_a_closed_loop_is_dropped_without_killing_the_thread() -> None:
    worker = Worker("iotee_test_worker")
    release = threading.Event()

    async def submit_slow() -> None:
        worker.submit(release.wait, 5)  # its answer is due on this loop ...

    async def submit_quick() -> str:
        return await asyncio.wait_for(worker.submit(lambda: "alive"), 5)

    try:
        gone = asyncio.new_event_loop()
        gone.run_until_complete(submit_slow())
        gone.close()  # ... which is closed before the call ends
        release.set()
        later = asyncio.new_event_loop()
        try:
            assert later.run_until_complete(submit_quick()) == "alive"
        finally:
            later.close()
    finally:
        asyncio.run(worker.async_stop())
    assert _threads("iotee_test_worker") == []


_NEVER_STOPPED = """
import asyncio, time
from custom_components.iotee.core.worker import Worker

worker = Worker("iotee_exit")

async def main():
    worker.submit(time.sleep, 0.2)
    worker.submit(print, "ran before exit")

asyncio.run(main())
"""


def test_a_process_exits_with_a_worker_never_stopped_after_its_queued_calls_ran() -> None:
    """Python joins every thread before it exits: an idle worker must not keep it alive."""
    done = subprocess.run(
        [sys.executable, "-c", _NEVER_STOPPED],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ran before exit\n"

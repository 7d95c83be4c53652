"""The command store under faults: damaged files, busy/locked databases, failing writes."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from datetime import timedelta
import os
from pathlib import Path
import sqlite3
import threading
import time
from typing import Any

import pytest

from custom_components.iotee.core import store as store_module
from custom_components.iotee.core.model import CommandRecord, CommandStatus
from custom_components.iotee.core.store import (
    AsyncCommandStore,
    CommandStore,
    CorruptFileMoved,
    StoreError,
    StoreFaultError,
    WritesPendingError,
)

from .test_store import T0, finished, ids, make_record

DISK_FULL = "database or disk is full"
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class FaultyConnection:
    """Wraps a sqlite3 connection; while ``fault`` is set every write raises it (disk full etc.).

    Reads still work, as they do on a full disk. ``writes`` counts the write statements tried.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        """Wrap ``db``."""
        self._db = db
        self.fault: sqlite3.Error | None = None
        self.writes = 0

    @staticmethod
    def _is_write(sql: str) -> bool:
        return sql.lstrip().upper().startswith(_WRITES)

    def _check(self, sql: str) -> None:
        if self._is_write(sql):
            self.writes += 1
            if self.fault is not None:
                raise self.fault

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        """Run a statement, unless it is a write and a fault is set."""
        self._check(sql)
        return self._db.execute(sql, args)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        """Run a statement for many rows, unless it is a write and a fault is set."""
        self._check(sql)
        return self._db.executemany(sql, rows)

    def __enter__(self) -> FaultyConnection:
        """Begin the transaction context of the wrapped connection."""
        self._db.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        """Commit or roll back like the wrapped connection."""
        self._db.__exit__(*exc)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        """Everything else goes to the wrapped connection."""
        return getattr(self._db, name)


def inject_faults(store: CommandStore) -> FaultyConnection:
    """Put a ``FaultyConnection`` between ``store`` and its open database; return it."""
    faulty = FaultyConnection(store.db)
    store._db = faulty  # type: ignore[assignment]
    return faulty


@contextmanager
def locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Hold the database's write lock from another connection (``BEGIN EXCLUSIVE``)."""
    other = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield other
    finally:
        other.execute("ROLLBACK")
        other.close()


def release_later(lock: sqlite3.Connection, seconds: float) -> threading.Thread:
    """Roll back ``lock``'s transaction after ``seconds`` from another thread."""

    def release() -> None:
        time.sleep(seconds)
        lock.execute("ROLLBACK")
        lock.execute("BEGIN")  # so the context manager's ROLLBACK has something to end

    thread = threading.Thread(target=release)
    thread.start()
    return thread


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the test's database lives."""
    return tmp_path / "iotee.db"


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short busy waits, so lock tests take tenths of a second."""
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", 0.05)
    monkeypatch.setattr(store_module, "WRITE_ATTEMPTS", 3)
    monkeypatch.setattr(store_module, "WRITE_BACKOFF", 0.01)


@pytest.fixture
def store(db_path: Path, fast: None) -> Generator[CommandStore]:
    """An open store on a fresh file with short busy waits."""
    opened = CommandStore(db_path)
    assert opened.open() is None
    yield opened
    opened.close()


def stored_statuses(path: Path) -> dict[str, str]:
    """Read every record's status with a separate connection (what is really on disk)."""
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT command_id, status FROM commands").fetchall())
    finally:
        db.close()


def progressed(record: CommandRecord, *statuses: CommandStatus) -> CommandRecord:
    """Move ``record`` through ``statuses`` one second apart; return it."""
    at = record.updated_at or record.created_at
    for status in statuses:
        at += timedelta(seconds=1)
        record.transition(status, at)
    return record


# ---- damaged file at start -------------------------------------------------------------------


def _assert_moved(moved: CorruptFileMoved | None, db_path: Path, content: bytes) -> Path:
    assert moved is not None
    assert moved.path == db_path
    assert moved.moved_to.parent == db_path.parent
    assert moved.moved_to.name.startswith("iotee.db.corrupt-")
    assert moved.moved_to.name.endswith("Z")
    assert moved.moved_to.read_bytes() == content  # kept, byte for byte
    return moved.moved_to


def test_garbage_file_is_moved_aside_and_a_fresh_store_started(db_path: Path) -> None:
    garbage = os.urandom(8192)
    db_path.write_bytes(garbage)
    db_path.with_name("iotee.db-wal").write_bytes(b"old wal")
    db_path.with_name("iotee.db-shm").write_bytes(b"old shm")

    store = CommandStore(db_path)
    moved = store.open()
    try:
        target = _assert_moved(moved, db_path, garbage)
        assert moved is not None
        assert "not a database" in moved.reason
        assert store.corrupt_moved == moved
        assert Path(f"{target}-wal").read_bytes() == b"old wal"
        assert Path(f"{target}-shm").read_bytes() == b"old shm"
        # The fresh store works.
        store.insert(make_record("fresh"))
        assert ids(store.list_commands()) == ["fresh"]
        assert store.schema_version == store_module.SCHEMA_VERSION
    finally:
        store.close()
    # A clean reopen finds nothing to move.
    again = CommandStore(db_path)
    assert again.open() is None
    again.close()


def test_malformed_database_is_detected_by_the_quick_check(db_path: Path) -> None:
    store = CommandStore(db_path)
    store.open()
    for index in range(300):
        store.insert(finished(f"c{index}", CommandStatus.COMPLETED, params={"pad": "x" * 200}))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    with db_path.open("r+b") as file:  # damage pages in the middle; the header stays valid
        file.seek(4096 * 4)
        file.write(os.urandom(4096 * 4))
    damaged = db_path.read_bytes()

    store = CommandStore(db_path)
    moved = store.open()
    try:
        _assert_moved(moved, db_path, damaged)
        assert moved is not None
        assert "malformed" in moved.reason or "integrity" in moved.reason
        assert store.count() == 0
    finally:
        store.close()


def test_missing_tables_count_as_damaged(db_path: Path) -> None:
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE other (x)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    content = db_path.read_bytes()

    store = CommandStore(db_path)
    moved = store.open()
    try:
        _assert_moved(moved, db_path, content)
        assert moved is not None
        assert "missing table commands, idempotency" in moved.reason
    finally:
        store.close()


def test_two_damaged_files_in_the_same_second_get_distinct_names(db_path: Path) -> None:
    targets = []
    for content in (b"first garbage" * 100, b"second garbage" * 100):
        db_path.write_bytes(content)
        for suffix in ("-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        store = CommandStore(db_path)
        moved = store.open()
        store.close()
        assert moved is not None
        targets.append(moved.moved_to)
    assert targets[0] != targets[1]
    assert targets[0].read_bytes() == b"first garbage" * 100
    assert targets[1].read_bytes() == b"second garbage" * 100


def test_damaged_file_that_cannot_be_moved_is_left_alone(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path.write_bytes(b"x" * 4096)

    def refuse(*_args: object) -> None:
        raise PermissionError("read-only directory")

    monkeypatch.setattr(store_module.os, "replace", refuse)
    store = CommandStore(db_path)
    with pytest.raises(StoreFaultError, match="cannot be moved aside: read-only"):
        store.open()
    assert db_path.read_bytes() == b"x" * 4096
    with pytest.raises(StoreError, match="not open"):
        _ = store.db


def test_newer_schema_is_not_damage(db_path: Path) -> None:
    """A file from a newer version is refused, never moved aside."""
    db = sqlite3.connect(db_path)
    db.execute(f"PRAGMA user_version={store_module.SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer") as raised:
        CommandStore(db_path).open()
    assert not isinstance(raised.value, StoreFaultError)
    assert not list(db_path.parent.glob("iotee.db.corrupt-*"))


def test_empty_file_is_an_empty_database(db_path: Path) -> None:
    db_path.touch()
    store = CommandStore(db_path)
    assert store.open() is None
    try:
        assert store.count() == 0
    finally:
        store.close()


def test_a_locked_file_at_start_is_not_mistaken_for_damage(db_path: Path, fast: None) -> None:
    """A database another program holds exclusively is reported, never moved aside."""
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("CREATE TABLE other (x)")  # a rollback-journal database: readers can be locked
    db.execute("BEGIN EXCLUSIVE")
    db.execute("INSERT INTO other VALUES (1)")
    try:
        with pytest.raises(StoreFaultError, match=r"cannot open the command store.*locked"):
            CommandStore(db_path).open()
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert not list(db_path.parent.glob("iotee.db.corrupt-*"))


def test_damaged_memory_store_cannot_be_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    def damaged(self: CommandStore) -> None:
        raise store_module._CorruptError("simulated")

    monkeypatch.setattr(CommandStore, "_inspect", damaged)
    with pytest.raises(StoreFaultError, match="damaged: simulated"):
        CommandStore(":memory:").open()


def test_a_fresh_store_that_is_damaged_again_raises(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def damaged(self: CommandStore) -> None:
        raise store_module._CorruptError("simulated")

    monkeypatch.setattr(CommandStore, "_inspect", damaged)
    store = CommandStore(db_path)
    with pytest.raises(StoreFaultError, match="cannot open a new command store"):
        store.open()
    assert store.corrupt_moved is not None
    with pytest.raises(StoreError, match="not open"):
        _ = store.db


# ---- busy / locked ---------------------------------------------------------------------------


def test_a_short_lock_is_waited_out(db_path: Path) -> None:
    """A lock held longer than one busy wait, but less than the retry budget, only delays."""
    store = CommandStore(db_path, busy_timeout=0.05, write_attempts=6, write_backoff=0.01)
    store.open()
    try:
        with locked(db_path) as lock:
            releaser = release_later(lock, 0.1)  # the first try gives up after 0.05 s
            started = time.monotonic()
            store.insert(make_record("waited"))
            waited = time.monotonic() - started
            releaser.join()
    finally:
        store.close()
    assert waited >= 0.05
    assert stored_statuses(db_path) == {"waited": "pending"}


def test_a_long_lock_refuses_an_insert(store: CommandStore, db_path: Path) -> None:
    with locked(db_path):
        started = time.monotonic()
        with pytest.raises(StoreFaultError, match="locked") as raised:
            store.insert(make_record("refused"))
        elapsed = time.monotonic() - started
    assert not isinstance(raised.value, WritesPendingError)
    assert elapsed >= 3 * 0.05  # every attempt waited its busy timeout
    assert stored_statuses(db_path) == {}
    assert store.pending_writes == 0


def test_updates_under_a_lock_are_kept_and_written_later(
    store: CommandStore, db_path: Path
) -> None:
    first = make_record("first")
    second = make_record("second", relay=2)
    store.insert(first)
    store.insert(second)
    with locked(db_path):
        # Reads are not blocked by a writer in WAL mode.
        assert store.get("first") == first
        progressed(first, CommandStatus.PUBLISHED)
        with pytest.raises(WritesPendingError) as raised:
            store.update(first)
        assert raised.value.pending == 1
        # While failing, updates only join the backlog: no busy wait each.
        started = time.monotonic()
        progressed(first, CommandStatus.COMPLETED)
        progressed(second, CommandStatus.PUBLISHED, CommandStatus.ACKNOWLEDGED)
        with pytest.raises(WritesPendingError):
            store.update(first)
        with pytest.raises(WritesPendingError) as raised:
            store.update(second)
        assert time.monotonic() - started < 0.1  # each busy write would take 3 x 0.05 s
        assert raised.value.pending == store.pending_writes == 2
        # Reads see the kept state; the disk still has the old one.
        assert store.get("first") == first
        assert {r.command_id: r.status for r in store.list_commands()} == {
            "first": CommandStatus.COMPLETED,
            "second": CommandStatus.ACKNOWLEDGED,
        }
        assert ids(store.open_commands()) == ["second"]
        assert stored_statuses(db_path) == {"first": "pending", "second": "pending"}
        with pytest.raises(WritesPendingError):
            store.flush()
    store.flush()
    assert store.pending_writes == 0
    assert stored_statuses(db_path) == {"first": "completed", "second": "acknowledged"}
    assert store.get("first") == first
    assert store.get("second") == second
    store.flush()  # nothing kept: a no-op


# ---- failing writes (disk full) --------------------------------------------------------------


def test_insert_on_a_full_disk_is_refused(store: CommandStore, db_path: Path) -> None:
    faulty = inject_faults(store)
    faulty.fault = sqlite3.OperationalError(DISK_FULL)
    with pytest.raises(StoreFaultError, match="disk is full"):
        store.insert(make_record("refused"))
    assert faulty.writes == 1  # not busy: not retried
    assert store.get("refused") is None
    assert store.pending_writes == 0
    faulty.fault = None
    store.insert(make_record("accepted"))
    assert stored_statuses(db_path) == {"accepted": "pending"}


async def test_inserts_made_together_on_a_full_disk_are_all_refused(
    db_path: Path, fast: None
) -> None:
    """Commands created together on a full disk: each is refused with the fault, none is
    stored, and those that went as one group tried the disk once (not once per command)."""
    store = AsyncCommandStore(CommandStore(db_path))
    assert await store.open() is None
    gate = threading.Event()
    try:
        faulty = inject_faults(store.store)
        faulty.fault = sqlite3.OperationalError(DISK_FULL)
        real_insert_rows = store.store.insert_rows

        def held(rows: Any) -> list[StoreError | None]:
            assert gate.wait(5)  # the first insert is on the thread while the others come
            return real_insert_rows(rows)

        store.store.insert_rows = held  # type: ignore[method-assign]
        first = asyncio.create_task(store.insert(make_record("full0", relay=1)))
        await asyncio.sleep(0)  # handed to the worker thread, held there
        others = [
            asyncio.create_task(store.insert(make_record(f"full{n}", relay=n + 1))) for n in (1, 2)
        ]
        await asyncio.sleep(0)
        gate.set()
        outcomes = await asyncio.gather(first, *others, return_exceptions=True)
        assert all(isinstance(outcome, StoreFaultError) for outcome in outcomes), outcomes
        assert faulty.writes == 2  # the first alone, then the two created while it was tried
        faulty.fault = None
        assert stored_statuses(db_path) == {}
        await store.insert(make_record("after"))
        assert stored_statuses(db_path) == {"after": "pending"}
    finally:
        gate.set()
        await store.close()


def test_updates_on_a_full_disk_converge_with_the_next_insert(
    store: CommandStore, db_path: Path
) -> None:
    """Latest state per command wins; nothing accepted is lost once there is room again."""
    records = [make_record(f"c{index}", relay=index) for index in range(1, 4)]
    for record in records:
        store.insert(record)
    faulty = inject_faults(store)
    faulty.fault = sqlite3.OperationalError(DISK_FULL)

    for record in records:
        progressed(record, CommandStatus.PUBLISHED)
        with pytest.raises(WritesPendingError, match="disk is full"):
            store.update(record)
    progressed(records[0], CommandStatus.COMPLETED)
    progressed(records[1], CommandStatus.ACKNOWLEDGED, CommandStatus.COMPLETED)
    for record in records[:2]:
        with pytest.raises(WritesPendingError):
            store.update(record)
    assert store.pending_writes == 3
    assert faulty.writes == 1  # only the first update tried the disk
    assert store.count() == 3
    with pytest.raises(StoreFaultError):
        store.insert(make_record("refused", relay=9))
    with pytest.raises(WritesPendingError):
        store.purge(T0 + timedelta(days=1))

    faulty.fault = None
    store.insert(make_record("next", relay=8))  # writes the backlog too
    assert store.pending_writes == 0
    assert stored_statuses(db_path) == {
        "c1": "completed",
        "c2": "completed",
        "c3": "published",
        "next": "pending",
    }
    for record in records:
        assert store.get(record.command_id) == record
    # Ordering by insertion is intact (upserts keep the rowid).
    assert ids(store.list_commands()) == ["next", "c3", "c2", "c1"]


def test_kept_update_of_a_deleted_command_is_dropped(store: CommandStore, db_path: Path) -> None:
    record = make_record("gone")
    store.insert(record)
    faulty = inject_faults(store)
    faulty.fault = sqlite3.OperationalError(DISK_FULL)
    progressed(record, CommandStatus.PUBLISHED)
    with pytest.raises(WritesPendingError):
        store.update(record)
    with pytest.raises(StoreFaultError):
        store.delete("gone")
    assert store.pending_writes == 1  # a failed delete keeps the update
    faulty.fault = None
    assert store.delete("gone") is True
    assert store.pending_writes == 0
    store.flush()
    assert stored_statuses(db_path) == {}  # not resurrected by the backlog


def test_purge_writes_kept_updates_first(store: CommandStore, db_path: Path) -> None:
    record = make_record("old")
    store.insert(record)
    faulty = inject_faults(store)
    faulty.fault = sqlite3.OperationalError(DISK_FULL)
    progressed(record, CommandStatus.PUBLISHED, CommandStatus.COMPLETED)
    with pytest.raises(WritesPendingError):
        store.update(record)
    faulty.fault = None
    assert store.purge(T0 + timedelta(days=1)) == 1  # judged as completed, its current status
    assert stored_statuses(db_path) == {}


def test_a_real_full_database_refuses_inserts(store: CommandStore) -> None:
    """SQLite's own SQLITE_FULL (a database at its page limit), not a simulated error."""
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count={pages + 1}")
    with pytest.raises(StoreFaultError, match="full"):  # noqa: PT012
        for index in range(100):
            store.insert(make_record(f"c{index}", params={"pad": "x" * 1500}))
    assert 0 < store.count() < 100


def test_duplicate_id_is_not_a_fault(store: CommandStore) -> None:
    store.insert(make_record("dup"))
    with pytest.raises(StoreError, match="UNIQUE") as raised:
        store.insert(make_record("dup"))
    assert not isinstance(raised.value, StoreFaultError)


def test_errors_without_a_code_are_classified_by_text() -> None:
    assert store_module._is_busy(sqlite3.OperationalError("database is locked"))
    assert not store_module._is_busy(sqlite3.OperationalError(DISK_FULL))
    assert store_module._is_corrupt(sqlite3.DatabaseError("database disk image is malformed"))
    assert not store_module._is_corrupt(sqlite3.OperationalError(DISK_FULL))


async def test_async_store_snapshots_the_record_at_the_call(db_path: Path, fast: None) -> None:
    """The row is taken when the update is handed to the worker thread: changes made to the
    record after that are not written by it."""
    store = AsyncCommandStore(CommandStore(db_path))
    assert await store.open() is None
    try:
        record = make_record("snap")
        await store.insert(record)
        faulty = inject_faults(store.store)
        faulty.fault = sqlite3.OperationalError(DISK_FULL)
        progressed(record, CommandStatus.PUBLISHED)
        with pytest.raises(WritesPendingError):
            await store.update(record)
        assert store.pending_writes == 1
        assert store.path == str(db_path)
        progressed(record, CommandStatus.COMPLETED)  # not handed to the store
        faulty.fault = None
        await store.flush()
        assert store.pending_writes == 0
        assert stored_statuses(db_path) == {"snap": "published"}
    finally:
        await store.close()

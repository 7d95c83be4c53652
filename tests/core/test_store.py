"""The SQLite command store."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
import sqlite3
import threading
from typing import Any

import pytest

from custom_components.iotee.core import store as store_module
from custom_components.iotee.core.model import (
    CommandRecord,
    CommandStatus,
    ErrorCode,
    Transition,
)
from custom_components.iotee.core.store import (
    SCHEMA_VERSION,
    AsyncCommandStore,
    CommandStore,
    IdempotencyEntry,
    StoreError,
    StoreFaultError,
    record_row,
)

T0 = datetime(2025, 12, 17, 10, 30, 0, 123456, tzinfo=UTC)


def make_record(command_id: str, **overrides: object) -> CommandRecord:
    """Return a pending record created at ``T0`` unless told otherwise."""
    created_at = overrides.pop("created_at", T0)
    assert isinstance(created_at, datetime)
    values: dict[str, object] = {
        "command_id": command_id,
        "hardware_id": "hw1",
        "device_type": "tasmota",
        "command": "ON",
        "topic": "cmnd/hw1/POWER1",
        "payload": "ON",
        "created_at": created_at,
        "deadline": created_at + timedelta(seconds=10),
        "relay": 1,
    }
    values.update(overrides)
    return CommandRecord(**values)  # type: ignore[arg-type]


def finished(command_id: str, status: CommandStatus, **overrides: object) -> CommandRecord:
    """Return a record that went through publish to ``status``."""
    record = make_record(command_id, **overrides)
    at = record.created_at + timedelta(seconds=1)
    if status is not CommandStatus.PENDING:
        record.transition(CommandStatus.PUBLISHED, at)
    if status not in (CommandStatus.PENDING, CommandStatus.PUBLISHED):
        record.transition(status, at + timedelta(seconds=1))
    return record


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Return where the test's database lives."""
    return tmp_path / "iotee" / "commands.db"


@pytest.fixture
def store(db_path: Path) -> Generator[CommandStore]:
    """Return an open store on a fresh file."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    opened = CommandStore(db_path)
    opened.open()
    yield opened
    opened.close()


def ids(records: list[CommandRecord]) -> list[str]:
    """Return the ids of ``records`` in order."""
    return [record.command_id for record in records]


def test_open_creates_schema_and_wal(store: CommandStore, db_path: Path) -> None:
    assert SCHEMA_VERSION == 3
    assert store.schema_version == 3
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == 3
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {
        row[0] for row in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert {"commands", "idempotency"} <= tables
    assert db_path.exists()
    assert store.count() == 0


def test_not_open_raises(db_path: Path) -> None:
    store = CommandStore(db_path)
    with pytest.raises(StoreError, match="not open"):
        store.get("x")
    store.close()  # closing a store that is not open is harmless


def test_open_in_missing_directory_raises(tmp_path: Path) -> None:
    store = CommandStore(tmp_path / "missing" / "commands.db")
    with pytest.raises(StoreError, match="cannot open"):
        store.open()
    with pytest.raises(StoreError, match="not open"):
        _ = store.db


def test_round_trip_preserves_every_field(store: CommandStore) -> None:
    record = make_record(
        "full",
        hardware_id="AA:BB",
        device_id="ha-device-1",
        device_type="wlte_relay",
        command="JOG",
        relay=3,
        topic="wlte/AA:BB/relay/3/set",
        payload='{"id": "full", "action": "JOG"}',
        params={"duration": 1.5, "nested": {"list": [1, "two", None]}, "ü": True},
        retry_of="earlier",
        source="service",
        caller="user-42",
    )
    record.transition(CommandStatus.PUBLISHED, T0 + timedelta(microseconds=1))
    record.transition(CommandStatus.ACKNOWLEDGED, T0 + timedelta(seconds=1, microseconds=999999))
    record.transition(
        CommandStatus.TIMEOUT,
        T0 + timedelta(seconds=10),
        error_code=ErrorCode.TIMEOUT,
        error="no answer in 10 s",
    )
    record.record_late_confirmation(
        '{"id": "full", "status": "SUCCESS"}', T0 + timedelta(seconds=12)
    )
    store.insert(record)

    loaded = store.get("full")

    assert loaded == record
    assert loaded is not record
    assert loaded.transitions == [
        Transition(CommandStatus.PENDING, T0),
        Transition(CommandStatus.PUBLISHED, T0 + timedelta(microseconds=1)),
        Transition(CommandStatus.ACKNOWLEDGED, T0 + timedelta(seconds=1, microseconds=999999)),
        Transition(CommandStatus.TIMEOUT, T0 + timedelta(seconds=10)),
    ]
    assert loaded.status is CommandStatus.TIMEOUT
    assert loaded.created_at.tzinfo is not None
    assert loaded.late_confirmation_at == T0 + timedelta(seconds=12)


def test_a_rows_history_columns_are_the_json_text_json_dumps_writes(store: CommandStore) -> None:
    """The transitions and attempts are written out without ``json.dumps`` (cheaper on the event
    loop): the text stored is still exactly what it writes, so rows of every version read alike."""
    record = finished("hist", CommandStatus.ACKNOWLEDGED)
    record.add_attempt(T0 + timedelta(microseconds=7))
    record.end_attempt(ErrorCode.TIMEOUT.value)
    record.add_attempt(T0 + timedelta(seconds=3, microseconds=1))
    record.transition(CommandStatus.COMPLETED, T0 + timedelta(seconds=4, microseconds=999999))
    store.insert(record)

    row = store.db.execute(
        "SELECT transitions, attempts FROM commands WHERE command_id = 'hist'"
    ).fetchone()
    assert row[0] == json.dumps([[t.status.value, t.at.timestamp()] for t in record.transitions])
    assert row[1] == json.dumps(
        [[a.number, a.published_at.timestamp(), a.outcome] for a in record.attempts]
    )
    assert json.loads(row[1])[0][2] == "timeout"
    assert json.loads(row[1])[1][2] is None
    assert store.get("hist") == record
    empty = make_record("none")
    store.insert(empty)
    assert store.db.execute("SELECT attempts FROM commands WHERE command_id = 'none'").fetchone()[
        0
    ] == json.dumps([])


def test_round_trip_of_a_minimal_record(store: CommandStore) -> None:
    record = make_record("lock", relay=None, device_type="iotee_device", command="lock")
    store.insert(record)
    loaded = store.get("lock")
    assert loaded == record
    assert loaded is not None
    assert (loaded.relay, loaded.device_id, loaded.params, loaded.caller) == (None, None, {}, None)
    assert loaded.late_confirmation is None
    assert loaded.late_confirmation_at is None


def test_timestamps_round_trip_exactly(store: CommandStore) -> None:
    base = datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
    for micro in (0, 1, 499999, 500000, 999999, 123457, 654321):
        created = base + timedelta(microseconds=micro)
        store.insert(make_record(f"t{micro}", created_at=created))
        loaded = store.get(f"t{micro}")
        assert loaded is not None
        assert loaded.created_at == created


def test_get_missing(store: CommandStore) -> None:
    assert store.get("nope") is None


def test_insert_duplicate_id_raises(store: CommandStore) -> None:
    store.insert(make_record("dup"))
    with pytest.raises(StoreError):
        store.insert(make_record("dup"))
    assert store.count() == 1


def test_update(store: CommandStore) -> None:
    record = make_record("u")
    store.insert(record)
    record.transition(CommandStatus.PUBLISHED, T0 + timedelta(seconds=1))
    record.transition(
        CommandStatus.FAILED,
        T0 + timedelta(seconds=2),
        error_code=ErrorCode.DEVICE_FAILED,
        error="boom",
    )
    record.record_late_confirmation("ON", T0 + timedelta(seconds=3))
    store.update(record)

    loaded = store.get("u")
    assert loaded == record
    assert loaded is not None
    assert loaded.status is CommandStatus.FAILED
    assert [t.status for t in loaded.transitions] == [
        CommandStatus.PENDING,
        CommandStatus.PUBLISHED,
        CommandStatus.FAILED,
    ]
    assert store.count() == 1


def test_update_keeps_insertion_order_for_ties(store: CommandStore) -> None:
    first, second = make_record("first"), make_record("second")
    store.insert(first)
    store.insert(second)
    assert ids(store.list_commands()) == ["second", "first"]
    first.transition(CommandStatus.PUBLISHED, T0 + timedelta(seconds=1))
    store.update(first)
    # Updating a record must not make it look newer than one inserted after it.
    assert ids(store.list_commands()) == ["second", "first"]
    assert ids(store.list_commands("hw1")) == ["second", "first"]


def test_list_newest_first_per_device_and_all(store: CommandStore) -> None:
    for i in range(5):
        store.insert(make_record(f"a{i}", hardware_id="A", created_at=T0 + timedelta(minutes=i)))
    for i in range(3):
        store.insert(
            make_record(f"b{i}", hardware_id="B", created_at=T0 + timedelta(minutes=i, seconds=30))
        )

    assert ids(store.list_commands("A")) == ["a4", "a3", "a2", "a1", "a0"]
    assert ids(store.list_commands("B")) == ["b2", "b1", "b0"]
    assert ids(store.list_commands("C")) == []
    assert ids(store.list_commands()) == ["a4", "a3", "b2", "a2", "b1", "a1", "b0", "a0"]
    assert ids(store.list_commands(limit=3)) == ["a4", "a3", "b2"]
    assert ids(store.list_commands("A", limit=2)) == ["a4", "a3"]
    assert ids(store.list_commands("B", limit=10)) == ["b2", "b1", "b0"]
    assert store.count() == 8


def test_list_orders_by_time_not_insertion(store: CommandStore) -> None:
    store.insert(make_record("late", created_at=T0 + timedelta(seconds=5)))
    store.insert(make_record("early", created_at=T0))
    assert ids(store.list_commands()) == ["late", "early"]


def test_list_ties_newest_inserted_first(store: CommandStore) -> None:
    for name in ("x", "y", "z"):
        store.insert(make_record(name))
    store.insert(make_record("other", hardware_id="hw2"))
    assert ids(store.list_commands("hw1")) == ["z", "y", "x"]
    assert ids(store.list_commands()) == ["other", "z", "y", "x"]


def test_open_commands(store: CommandStore) -> None:
    for status in CommandStatus:
        store.insert(finished(status.value, status))
    open_ids = ids(store.open_commands())
    assert sorted(open_ids) == ["acknowledged", "pending", "published"]
    assert {r.status for r in store.open_commands()} == {
        CommandStatus.PENDING,
        CommandStatus.PUBLISHED,
        CommandStatus.ACKNOWLEDGED,
    }


def test_open_commands_oldest_first(store: CommandStore) -> None:
    store.insert(make_record("new", created_at=T0 + timedelta(seconds=2)))
    store.insert(make_record("old", created_at=T0))
    assert ids(store.open_commands()) == ["old", "new"]


def test_delete(store: CommandStore) -> None:
    store.insert(make_record("d1"))
    store.insert(make_record("d2"))
    assert store.delete("d1") is True
    assert store.delete("d1") is False
    assert store.delete("never") is False
    assert store.get("d1") is None
    assert store.get("d2") is not None


def test_purge(store: CommandStore) -> None:
    cutoff = T0 + timedelta(days=1)
    old = T0
    new = cutoff + timedelta(seconds=1)
    for status in CommandStatus:
        store.insert(finished(f"old-{status}", status, created_at=old))
        store.insert(finished(f"new-{status}", status, created_at=new))
    store.insert(finished("at-cutoff", CommandStatus.COMPLETED, created_at=cutoff))

    assert store.purge(cutoff) == 3

    remaining = set(ids(store.list_commands(limit=100)))
    assert remaining == {
        "old-pending",
        "old-published",
        "old-acknowledged",
        "at-cutoff",
        *(f"new-{status}" for status in CommandStatus),
    }
    assert store.purge(cutoff) == 0


def test_purge_in_chunks(store: CommandStore) -> None:
    """Chunks delete the oldest finished records first, skip open ones, never stall on equal
    timestamps, and end with the same result as one purge; the pragmas come back. (``pause``
    always true: a commit after every chunk.)"""
    cache = store.db.execute("PRAGMA cache_size").fetchone()[0]
    cutoff = T0 + timedelta(days=1)
    for n in range(30):  # 30 finished, one second apart
        store.insert(
            finished(f"old-{n:02}", CommandStatus.COMPLETED, created_at=T0 + timedelta(seconds=n))
        )
    for n in range(10):  # 10 open ones, newer
        store.insert(
            finished(f"open-{n}", CommandStatus.PUBLISHED, created_at=T0 + timedelta(hours=2))
        )
    for n in range(12):  # 12 finished at the very same instant
        store.insert(
            finished(f"tie-{n:02}", CommandStatus.FAILED, created_at=T0 + timedelta(hours=1))
        )
    store.insert(finished("new", CommandStatus.COMPLETED, created_at=cutoff))

    chunks = []
    while True:
        deleted, done = store.purge_some(cutoff, chunk=7, pause=lambda: True)
        chunks.append(deleted)
        if done:
            break
        assert store.db.execute("PRAGMA cache_size").fetchone()[0] != cache  # enlarged meanwhile
    # 4 x 7 of the 30; then the 7th oldest is a tie, so the 2 left go with all 12 ties; then the
    # 7th oldest is open and nothing finished is left up to it: the rest in one go (none).
    assert chunks == [7, 7, 7, 7, 14, 0]
    assert store.db.execute("PRAGMA cache_size").fetchone()[0] == cache
    remaining = set(ids(store.list_commands(limit=100)))
    assert remaining == {*(f"open-{n}" for n in range(10)), "new"}

    # More open records than a chunk before the finished ones: no chunk could make progress
    # (the 7th oldest is open), so one does all.
    for n in range(5):
        store.insert(finished(f"x-{n}", CommandStatus.FAILED, created_at=T0 + timedelta(hours=3)))
    assert store.purge_some(cutoff, chunk=7, pause=lambda: True) == (5, True)


def test_reopen_keeps_data(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    record = finished("keep", CommandStatus.COMPLETED, params={"a": 1})
    first = CommandStore(db_path)
    first.open()
    first.insert(record)
    first.idempotency_put(IdempotencyEntry("scope", "hash", "keep", T0))
    first.close()

    second = CommandStore(db_path)
    second.open()
    try:
        assert second.get("keep") == record
        assert second.idempotency_get("scope") == IdempotencyEntry("scope", "hash", "keep", T0)
        assert second.schema_version == SCHEMA_VERSION
    finally:
        second.close()


def test_durable_without_close(db_path: Path) -> None:
    """A write is visible to another connection as soon as ``insert`` returns."""
    db_path.parent.mkdir(parents=True)
    writer = CommandStore(db_path)
    writer.open()
    reader = CommandStore(db_path)
    reader.open()
    try:
        writer.insert(make_record("seen"))
        assert reader.get("seen") is not None
    finally:
        writer.close()
        reader.close()


def test_newer_schema_raises(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db = sqlite3.connect(db_path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()

    store = CommandStore(db_path)
    with pytest.raises(StoreError, match="newer"):
        store.open()
    # The failed open left no connection behind.
    with pytest.raises(StoreError, match="not open"):
        _ = store.db


def test_failed_migration_leaves_nothing_behind(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path.parent.mkdir(parents=True)
    broken = (*store_module._MIGRATIONS[1], "CREATE TABLE broken (")
    monkeypatch.setitem(store_module._MIGRATIONS, 1, broken)
    with pytest.raises(StoreError):
        CommandStore(db_path).open()
    monkeypatch.undo()

    store = CommandStore(db_path)
    store.open()  # the migration is retried from scratch, not stuck half-done
    try:
        assert store.schema_version == SCHEMA_VERSION
        store.insert(make_record("ok"))
        assert store.count() == 1
    finally:
        store.close()


def test_idempotency(store: CommandStore) -> None:
    assert store.idempotency_get("s1") is None
    entry = IdempotencyEntry("s1", "h1", "c1", T0)
    store.idempotency_put(entry)
    assert store.idempotency_get("s1") == entry

    replacement = IdempotencyEntry("s1", "h2", "c2", T0 + timedelta(hours=25))
    store.idempotency_put(replacement)
    assert store.idempotency_get("s1") == replacement

    store.idempotency_put(IdempotencyEntry("s2", "h", "c3", T0))
    store.idempotency_put(IdempotencyEntry("s3", "h", "c4", T0 + timedelta(hours=24)))
    assert store.idempotency_purge(T0 + timedelta(hours=24)) == 1
    assert store.idempotency_get("s2") is None
    assert store.idempotency_get("s3") is not None
    assert store.idempotency_get("s1") == replacement
    assert store.idempotency_purge(T0 + timedelta(hours=24)) == 0


def test_idempotency_outlives_a_deleted_command(store: CommandStore) -> None:
    """Deleting a command keeps the key, with a snapshot of the command's last state."""
    record = finished("c1", CommandStatus.COMPLETED, relay=2, params={"a": [1, 2]})
    store.insert(record)
    store.idempotency_put(IdempotencyEntry("s1", "h1", "c1", T0))
    store.idempotency_put(IdempotencyEntry("s2", "h2", "c1", T0))  # two keys, one command
    store.insert(make_record("other"))
    store.idempotency_put(IdempotencyEntry("s3", "h3", "other", T0))
    assert store.idempotency_get("s1") == IdempotencyEntry("s1", "h1", "c1", T0)
    assert store.delete("c1") is True
    assert store.idempotency_get("s1") == IdempotencyEntry("s1", "h1", "c1", T0, record)
    assert store.idempotency_get("s2") == IdempotencyEntry("s2", "h2", "c1", T0, record)
    assert store.idempotency_get("s3") == IdempotencyEntry("s3", "h3", "other", T0)
    assert store.purge(T0 + timedelta(days=365)) == 0


def test_idempotency_outlives_a_purged_command(store: CommandStore) -> None:
    """Purging keeps each keyed command's last state with its key, in chunks or in one go;
    open commands stay and keep no snapshot."""
    cutoff = T0 + timedelta(days=1)
    done = [finished(f"done-{n}", CommandStatus.FAILED, created_at=T0) for n in range(5)]
    opened = finished("open", CommandStatus.PUBLISHED, created_at=T0)
    for n, record in enumerate([*done, opened]):
        store.insert(record)
        store.idempotency_put(IdempotencyEntry(f"s{n}", "h", record.command_id, T0))
    assert store.purge_some(cutoff, chunk=2, pause=lambda: True) == (5, False)
    while not store.purge_some(cutoff, chunk=2, pause=lambda: True)[1]:
        pass
    for n, record in enumerate(done):
        assert store.idempotency_get(f"s{n}") == IdempotencyEntry(
            f"s{n}", "h", record.command_id, T0, record
        )
    assert store.idempotency_get("s5") == IdempotencyEntry("s5", "h", "open", T0)

    # Only open records before the cutoff: the purge ends in one go, still keeping snapshots.
    late = finished("late", CommandStatus.TIMEOUT, created_at=T0 + timedelta(hours=1))
    store.insert(late)
    store.idempotency_put(IdempotencyEntry("s-late", "h", "late", T0))
    assert store.purge_some(cutoff, chunk=1, pause=lambda: True) == (1, True)
    assert store.idempotency_get("s-late") == IdempotencyEntry("s-late", "h", "late", T0, late)


def test_snapshot_of_a_deleted_command_is_its_kept_update(store: CommandStore) -> None:
    """A status change not yet written (the store was failing) is what the snapshot shows."""
    record = finished("c1", CommandStatus.PUBLISHED)
    store.insert(record)
    store.idempotency_put(IdempotencyEntry("s1", "h1", "c1", T0))
    record.transition(CommandStatus.COMPLETED, T0 + timedelta(seconds=3))
    store._pending["c1"] = record_row(record)  # as update_row keeps a row it could not write
    assert store.delete("c1") is True
    entry = store.idempotency_get("s1")
    assert entry is not None
    assert entry.snapshot == record
    assert entry.snapshot.status is CommandStatus.COMPLETED
    assert store.pending_writes == 0


def test_schema_1_is_migrated_keeping_keys(db_path: Path) -> None:
    """A store of schema 1 (no snapshots) opens as the current schema with its keys."""
    db_path.parent.mkdir(parents=True)
    db = sqlite3.connect(db_path)
    for statement in store_module._MIGRATIONS[1]:
        db.execute(statement)
    db.execute("PRAGMA user_version=1")
    db.execute(
        "INSERT INTO idempotency (scope, body_hash, command_id, created_at) VALUES (?,?,?,?)",
        ("s1", "h1", "c1", T0.timestamp()),
    )
    db.commit()
    db.close()
    store = CommandStore(db_path)
    assert store.open() is None
    try:
        assert store.schema_version == SCHEMA_VERSION
        assert store.idempotency_get("s1") == IdempotencyEntry("s1", "h1", "c1", T0)
        record = finished("c1", CommandStatus.COMPLETED)
        store.insert(record)
        assert store.delete("c1") is True
        assert store.idempotency_get("s1") == IdempotencyEntry("s1", "h1", "c1", T0, record)
    finally:
        store.close()


def test_schema_2_is_migrated_keeping_commands_and_snapshots(db_path: Path) -> None:
    """A store of schema 2 (no attempts, no queue) opens as schema 3: its commands read with no
    attempts and no queue, a key's snapshot taken before still reads, and attempts and a queue
    expiry are kept from then on."""
    db_path.parent.mkdir(parents=True)
    db = sqlite3.connect(db_path)
    for version in (1, 2):
        for statement in store_module._MIGRATIONS[version]:
            db.execute(statement)
    db.execute("PRAGMA user_version=2")
    old = finished("old", CommandStatus.COMPLETED)
    row = store_module.record_row(old)[:-2]  # the schema 2 columns
    db.execute(f"INSERT INTO commands VALUES ({', '.join('?' * len(row))})", row)
    names = store_module._COLUMN_NAMES[:-2]
    snapshot = json.dumps(dict(zip(names, row, strict=True)))
    db.execute(
        "INSERT INTO idempotency (scope, body_hash, command_id, created_at, snapshot)"
        " VALUES (?,?,?,?,?)",
        ("s1", "h1", "gone", T0.timestamp(), snapshot),
    )
    db.commit()
    db.close()
    store = CommandStore(db_path)
    assert store.open() is None
    try:
        assert store.schema_version == 3
        read = store.get("old")
        assert read is not None
        assert read.attempts == []
        assert read.queued_until is None
        entry = store.idempotency_get("s1")
        assert entry is not None
        assert entry.snapshot is not None
        assert entry.snapshot.command_id == "old"
        assert entry.snapshot.attempts == []
        new = make_record("new")
        new.queued_until = T0 + timedelta(minutes=30)
        new.add_attempt(T0 + timedelta(minutes=5)).outcome = "timeout"
        new.add_attempt(T0 + timedelta(minutes=6))
        store.insert(new)
        again = store.get("new")
        assert again is not None
        assert again.queued_until == T0 + timedelta(minutes=30)
        assert [(a.number, a.published_at, a.outcome) for a in again.attempts] == [
            (1, T0 + timedelta(minutes=5), "timeout"),
            (2, T0 + timedelta(minutes=6), None),
        ]
    finally:
        store.close()


def test_memory_store() -> None:
    store = CommandStore(":memory:")
    store.open()
    try:
        store.insert(make_record("m"))
        assert ids(store.list_commands()) == ["m"]
    finally:
        store.close()


def store_threads() -> list[threading.Thread]:
    """Return the live worker threads of async stores."""
    return [t for t in threading.enumerate() if t.name.startswith("iotee_store")]


async def test_async_store_round_trip(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    before = store_threads()
    store = AsyncCommandStore(CommandStore(db_path))
    await store.open()
    try:
        record = make_record("async", params={"k": "v"})
        await store.insert(record)
        record.transition(CommandStatus.PUBLISHED, T0 + timedelta(seconds=1))
        await store.update(record)
        await store.insert(finished("done", CommandStatus.COMPLETED, created_at=T0 - timedelta(1)))

        assert await store.get("async") == record
        assert await store.get("missing") is None
        assert ids(await store.list_commands()) == ["async", "done"]
        assert ids(await store.list_commands("hw1", 1)) == ["async"]
        assert ids(await store.open_commands()) == ["async"]
        assert await store.count() == 2

        entry = IdempotencyEntry("scope", "hash", "async", T0)
        await store.idempotency_put(entry)
        assert await store.idempotency_get("scope") == entry
        assert await store.idempotency_purge(T0 + timedelta(seconds=1)) == 1

        assert await store.purge(T0) == 1
        assert await store.delete("async") is True
        assert await store.delete("async") is False
        assert await store.count() == 0

        workers = [t for t in store_threads() if t not in before]
        assert len(workers) == 1
        assert workers[0] is not threading.current_thread()
    finally:
        await store.close()

    # close() joined the worker thread: nothing is left running.
    assert store_threads() == before
    with pytest.raises(StoreError, match="not open"):
        _ = store.store.db


async def test_status_updates_of_one_loop_iteration_are_one_group_commit(db_path: Path) -> None:
    """N updates taken in one loop iteration: one call on the worker thread, one transaction,
    one row per command (its latest state), one shared outcome, and a read right after sees
    them all."""
    db_path.parent.mkdir(parents=True)
    store = AsyncCommandStore(CommandStore(db_path))
    await store.open()
    calls: list[list[str]] = []
    real_update_rows = store.store.update_rows

    def counted(rows: Any) -> None:
        calls.append([str(row[0]) for row in rows])
        real_update_rows(rows)

    store.store.update_rows = counted  # type: ignore[method-assign]
    try:
        records = [make_record(f"g{n}", relay=n + 1) for n in range(5)]
        for record in records:
            await store.insert(record)
        commits = store.store._commits
        futures = []
        for record in records:
            record.transition(CommandStatus.PUBLISHED, T0 + timedelta(seconds=1))
            futures.append(store.update_soon(record))
        records[0].transition(CommandStatus.COMPLETED, T0 + timedelta(seconds=2))
        futures.append(store.update_soon(records[0]))
        assert len(set(map(id, futures))) == 1
        await futures[0]
        assert calls == [["g0", "g1", "g2", "g3", "g4"]]
        assert store.store._commits == commits + 1
        got = [await store.get(f"g{n}") for n in range(5)]
        assert [r.status if r else None for r in got] == [
            CommandStatus.COMPLETED,
            *[CommandStatus.PUBLISHED] * 4,
        ]
        # The next iteration's updates are the next group commit.
        records[1].transition(CommandStatus.COMPLETED, T0 + timedelta(seconds=3))
        await store.update(records[1])
        assert calls[1:] == [["g1"]]
    finally:
        await store.close()


async def test_updates_taken_while_a_group_commit_runs_are_the_next_group(db_path: Path) -> None:
    """While one group commit is on the worker thread, the updates of later loop iterations
    wait and then go in as one group: a busy hub writes larger groups, not more of them."""
    db_path.parent.mkdir(parents=True)
    store = AsyncCommandStore(CommandStore(db_path))
    await store.open()
    records = [make_record(f"u{n}", relay=n + 1) for n in range(3)]
    for record in records:
        await store.insert(record)
    calls: list[list[str]] = []
    gate = threading.Event()
    real_update_rows = store.store.update_rows

    def held(rows: Any) -> None:
        assert gate.wait(5)
        calls.append([str(row[0]) for row in rows])
        real_update_rows(rows)

    store.store.update_rows = held  # type: ignore[method-assign]
    try:
        records[0].transition(CommandStatus.PUBLISHED, T0 + timedelta(seconds=1))
        first = store.update_soon(records[0])
        await asyncio.sleep(0)  # handed over; held on the worker thread
        later = []
        for record in records[1:]:
            record.transition(CommandStatus.PUBLISHED, T0 + timedelta(seconds=1))
            later.append(store.update_soon(record))
            await asyncio.sleep(0.01)  # later loop iterations
        records[1].transition(CommandStatus.COMPLETED, T0 + timedelta(seconds=2))
        later.append(store.update_soon(records[1]))
        assert later[0] is later[1] is later[2]
        gate.set()
        await first
        await later[0]
        assert calls == [["u0"], ["u1", "u2"]]
        got = [await store.get(f"u{n}") for n in range(3)]
        assert [r.status if r else None for r in got] == [
            CommandStatus.PUBLISHED,
            CommandStatus.COMPLETED,
            CommandStatus.PUBLISHED,
        ]
    finally:
        gate.set()
        await store.close()


async def test_inserts_made_while_one_is_stored_are_one_transaction(db_path: Path) -> None:
    """The first command goes to the worker thread at once; those created while it is being
    stored go together after it (one call, one commit); each insert returns once its record
    is on disk."""
    db_path.parent.mkdir(parents=True)
    store = AsyncCommandStore(CommandStore(db_path))
    await store.open()
    calls: list[list[str]] = []
    real_insert_rows = store.store.insert_rows

    gate = threading.Event()

    def counted(rows: Any) -> list[StoreError | None]:
        assert gate.wait(5)  # the first insert is on the thread while the others come
        calls.append([str(row[0]) for row in rows])
        return real_insert_rows(rows)

    store.store.insert_rows = counted  # type: ignore[method-assign]
    try:
        commits = store.store._commits
        first = asyncio.create_task(store.insert(make_record("i0", relay=1)))
        await asyncio.sleep(0)  # handed to the worker thread, held there
        others = [
            asyncio.create_task(store.insert(make_record(f"i{n}", relay=n + 1)))
            for n in range(1, 4)
        ]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, *others)
        assert calls == [["i0"], ["i1", "i2", "i3"]]
        assert store.store._commits == commits + 2
        reader = sqlite3.connect(db_path)
        try:
            stored = [row[0] for row in reader.execute("SELECT command_id FROM commands")]
        finally:
            reader.close()
        assert sorted(stored) == ["i0", "i1", "i2", "i3"]
    finally:
        gate.set()
        await store.close()


async def test_a_refused_insert_among_others_refuses_only_its_own(db_path: Path) -> None:
    """One of the commands created together cannot be stored (its id exists): it alone is
    refused; the others are stored."""
    db_path.parent.mkdir(parents=True)
    store = AsyncCommandStore(CommandStore(db_path))
    await store.open()
    try:
        await store.insert(make_record("taken"))
        outcomes = await asyncio.gather(
            store.insert(make_record("a1", relay=1)),
            store.insert(make_record("taken", relay=2)),
            store.insert(make_record("a2", relay=3)),
            return_exceptions=True,
        )
        assert outcomes[0] is None
        assert outcomes[2] is None
        assert isinstance(outcomes[1], StoreError)
        assert not isinstance(outcomes[1], StoreFaultError)
        assert await store.get("a1") is not None
        assert await store.get("a2") is not None
    finally:
        await store.close()


async def test_async_store_open_error(tmp_path: Path) -> None:
    store = AsyncCommandStore(CommandStore(tmp_path / "missing" / "x.db"))
    try:
        with pytest.raises(StoreError):
            await store.open()
    finally:
        await store.close()
    assert store_threads() == []


def test_wal_checkpoints_follow_updates_not_inserts(store: CommandStore) -> None:
    """A new command's insert never runs the checkpoint; an update does, every CHECKPOINT_EVERY
    commits, and leaves the write-ahead log copied into the database."""
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == (
        store_module.WAL_AUTOCHECKPOINT_PAGES
    )
    checkpoints = []
    real_checkpoint = store.checkpoint

    def counted() -> None:
        checkpoints.append(store.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
        real_checkpoint()

    store.checkpoint = counted  # type: ignore[method-assign]
    for n in range(store_module.CHECKPOINT_EVERY + 10):
        store.insert(make_record(f"c{n}"))
    assert checkpoints == []
    store.update(finished("c0", CommandStatus.COMPLETED))
    assert len(checkpoints) == 1
    assert checkpoints[0] > 0  # the log held pages: the inserts' were not checkpointed
    busy, log_pages, copied = store.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert (busy, log_pages - copied) == (0, 0)
    for n in range(1, 20):  # the count starts again
        store.update(finished(f"c{n}", CommandStatus.COMPLETED))
    assert len(checkpoints) == 1


def test_failed_checkpoint_is_skipped(
    store: CommandStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint SQLite refuses loses nothing: skipped, logged at debug level, writes go on."""

    class RefusesCheckpoints:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
            if "wal_checkpoint" in sql:
                raise sqlite3.OperationalError("disk I/O error")
            return self.db.execute(sql, *args)

        def __getattr__(self, name: str) -> object:
            return getattr(self.db, name)

    real = store.db
    store.insert(make_record("c1"))
    store._db = RefusesCheckpoints(real)  # type: ignore[assignment]
    caplog.set_level("DEBUG")
    store.checkpoint()
    assert "WAL checkpoint skipped: disk I/O error" in caplog.text
    store._db = real
    store.update(finished("c1", CommandStatus.COMPLETED))
    assert store.get("c1") == finished("c1", CommandStatus.COMPLETED)


async def test_insert_during_a_purge_waits_for_one_chunk_only(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone, a purge is one transaction; a new command's insert issued while a large history is
    purged makes it commit after the current chunk, is stored, and the purge goes on."""
    monkeypatch.setattr(store_module, "PURGE_CHUNK", 100)
    db_path.parent.mkdir(parents=True)
    sync_store = CommandStore(db_path)
    sync_store.open()

    def fill(first: int) -> None:
        rows = [
            record_row(
                finished(f"c{n:05}", CommandStatus.COMPLETED, created_at=T0 + timedelta(seconds=n))
            )
            for n in range(first, first + 5000)
        ]
        with sync_store.db:
            sync_store.db.executemany(store_module._INSERT, rows)

    fill(0)
    store = AsyncCommandStore(sync_store)
    calls: list[int] = []
    real_purge = sync_store.purge_some

    gate = threading.Event()
    gate.set()

    def counted(*args: Any) -> tuple[int, bool]:
        assert gate.wait(5)  # the purge starts once the test let it
        result = real_purge(*args)
        calls.append(result[0])
        return result

    sync_store.purge_some = counted  # type: ignore[method-assign]
    cutoff = T0 + timedelta(days=1)
    try:
        assert await store.purge(cutoff) == 5000
        assert calls == [5000]  # nothing waited: one transaction

        fill(5000)
        calls.clear()
        gate.clear()
        purge = asyncio.create_task(store.purge(cutoff))
        await asyncio.sleep(0)  # the purge is handed to the worker thread (held at the gate)
        new = finished("new", CommandStatus.COMPLETED, created_at=T0 + timedelta(days=2))
        insert = asyncio.create_task(store.insert(new))
        await asyncio.sleep(0)  # the insert is taken ...
        await asyncio.sleep(0)  # ... and handed over at the end of that iteration, behind the purge
        gate.set()
        await insert
        assert not purge.done()
        assert await purge == 5000
        assert len(calls) >= 2
        assert calls[0] == 100  # one chunk, committed, then the insert went in
        assert await store.get("new") == new
        assert sync_store._purge_pragmas is None
    finally:
        await store.close()


def test_published_to_a_device_that_never_confirms_is_finished(store: CommandStore) -> None:
    """Such a record (deadline = creation) is neither recovered as open nor kept by a purge."""
    cutoff = T0 + timedelta(days=1)
    store.insert(finished("sent", CommandStatus.PUBLISHED, deadline=T0))
    store.insert(finished("waiting", CommandStatus.PUBLISHED))
    unsent = make_record("unsent", deadline=T0)
    store.insert(unsent)
    assert store.get("sent").finished  # type: ignore[union-attr]
    assert not store.get("waiting").finished  # type: ignore[union-attr]
    # A command that never went out is open (recovery fails it as interrupted).
    assert sorted(ids(store.open_commands())) == ["unsent", "waiting"]
    assert store.purge(cutoff) == 1
    assert sorted(ids(store.list_commands(limit=10))) == ["unsent", "waiting"]

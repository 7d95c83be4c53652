"""Durable command history and idempotency records in SQLite (standard library).

``CommandStore`` is synchronous and meant to live on one thread; ``AsyncCommandStore`` gives the
event loop an awaitable API that runs every call on a single dedicated worker thread, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
import json
from pathlib import Path
import sqlite3
from typing import Any

from .model import CommandRecord, CommandStatus, Transition

SCHEMA_VERSION = 1
OPEN_STATUSES = (
    CommandStatus.PENDING.value,
    CommandStatus.PUBLISHED.value,
    CommandStatus.ACKNOWLEDGED.value,
)

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE commands (
            command_id TEXT PRIMARY KEY,
            hardware_id TEXT NOT NULL,
            device_id TEXT,
            device_type TEXT NOT NULL,
            command TEXT NOT NULL,
            relay INTEGER,
            topic TEXT NOT NULL,
            payload TEXT NOT NULL,
            params TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            deadline REAL NOT NULL,
            transitions TEXT NOT NULL,
            error_code TEXT,
            error TEXT,
            late_confirmation TEXT,
            late_confirmation_at REAL,
            retry_of TEXT,
            source TEXT NOT NULL,
            caller TEXT
        )""",
        "CREATE INDEX ix_commands_device_created ON commands (hardware_id, created_at)",
        "CREATE INDEX ix_commands_created ON commands (created_at)",
        "CREATE INDEX ix_commands_open ON commands (status)"
        " WHERE status IN ('pending', 'published', 'acknowledged')",
        """CREATE TABLE idempotency (
            scope TEXT PRIMARY KEY,
            body_hash TEXT NOT NULL,
            command_id TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX ix_idempotency_created ON idempotency (created_at)",
    ),
}

_COLUMNS = (
    "command_id, hardware_id, device_id, device_type, command, relay, topic, payload, params,"
    " status, created_at, updated_at, deadline, transitions, error_code, error,"
    " late_confirmation, late_confirmation_at, retry_of, source, caller"
)
_UPDATE_SET = ", ".join(
    f"{name} = excluded.{name}" for name in [col.strip() for col in _COLUMNS.split(",")][1:]
)


class StoreError(Exception):
    """The command store could not do what was asked."""


@dataclass(frozen=True, slots=True)
class IdempotencyEntry:
    """A remembered Idempotency-Key: which body it came with and which command it made."""

    scope: str
    body_hash: str
    command_id: str
    created_at: datetime


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _row_to_record(row: sqlite3.Row) -> CommandRecord:
    return CommandRecord(
        command_id=row["command_id"],
        hardware_id=row["hardware_id"],
        device_id=row["device_id"],
        device_type=row["device_type"],
        command=row["command"],
        relay=row["relay"],
        topic=row["topic"],
        payload=row["payload"],
        params=json.loads(row["params"]),
        status=CommandStatus(row["status"]),
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
        deadline=_dt(row["deadline"]),
        transitions=[
            Transition(CommandStatus(status), _dt(at))
            for status, at in json.loads(row["transitions"])
        ],
        error_code=row["error_code"],
        error=row["error"],
        late_confirmation=row["late_confirmation"],
        late_confirmation_at=(
            None if row["late_confirmation_at"] is None else _dt(row["late_confirmation_at"])
        ),
        retry_of=row["retry_of"],
        source=row["source"],
        caller=row["caller"],
    )


def _record_to_row(record: CommandRecord) -> tuple[Any, ...]:
    assert record.updated_at is not None
    return (
        record.command_id,
        record.hardware_id,
        record.device_id,
        record.device_type,
        record.command,
        record.relay,
        record.topic,
        record.payload,
        json.dumps(record.params, separators=(",", ":")),
        record.status.value,
        _ts(record.created_at),
        _ts(record.updated_at),
        _ts(record.deadline),
        json.dumps([[t.status.value, _ts(t.at)] for t in record.transitions]),
        record.error_code,
        record.error,
        record.late_confirmation,
        None if record.late_confirmation_at is None else _ts(record.late_confirmation_at),
        record.retry_of,
        record.source,
        record.caller,
    )


class CommandStore:
    """SQLite-backed command history. Not thread-safe: use it from one thread."""

    def __init__(self, path: Path | str) -> None:
        """Prepare a store at ``path`` (``:memory:`` for tests); ``open`` connects."""
        self.path = str(path)
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        """Return the open connection."""
        if self._db is None:
            raise StoreError("the command store is not open")
        return self._db

    def open(self) -> None:
        """Connect, enable WAL and bring the schema to the current version."""
        try:
            db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._db = db
            self._migrate()
        except sqlite3.Error as err:
            self.close()
            raise StoreError(f"cannot open the command store {self.path}: {err}") from err
        except StoreError:
            self.close()
            raise

    def _migrate(self) -> None:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the command store has schema {version}, newer than this version knows"
                f" ({SCHEMA_VERSION})"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.db:
                # DDL does not open a transaction implicitly: begin one so a failed migration
                # leaves nothing half-created behind.
                self.db.execute("BEGIN")
                for statement in _MIGRATIONS[target]:
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={target:d}")

    @property
    def schema_version(self) -> int:
        """Return the schema version of the open database."""
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        try:
            with self.db:
                return self.db.execute(sql, args).rowcount
        except sqlite3.Error as err:
            raise StoreError(str(err)) from err

    def insert(self, record: CommandRecord) -> None:
        """Store a new record (durable when this returns)."""
        self._write(
            f"INSERT INTO commands ({_COLUMNS}) VALUES ({', '.join('?' * 21)})",
            _record_to_row(record),
        )

    def update(self, record: CommandRecord) -> None:
        """Store the current state of an existing record."""
        # An upsert, not REPLACE: REPLACE deletes and re-inserts, giving the row a new rowid and
        # so breaking the insertion-order tie-break of ``list``.
        self._write(
            f"INSERT INTO commands ({_COLUMNS}) VALUES ({', '.join('?' * 21)})"
            f" ON CONFLICT (command_id) DO UPDATE SET {_UPDATE_SET}",
            _record_to_row(record),
        )

    def get(self, command_id: str) -> CommandRecord | None:
        """Return one record by id."""
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM commands WHERE command_id = ?", (command_id,)
        ).fetchone()
        return None if row is None else _row_to_record(row)

    def list_commands(
        self, hardware_id: str | None = None, limit: int = 100
    ) -> list[CommandRecord]:
        """Return records newest first, for one device or all."""
        if hardware_id is None:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM commands ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM commands WHERE hardware_id = ?"
                " ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (hardware_id, limit),
            )
        return [_row_to_record(row) for row in rows]

    def open_commands(self) -> list[CommandRecord]:
        """Return the records that have not reached a terminal status."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM commands WHERE status IN (?, ?, ?) ORDER BY created_at",
            OPEN_STATUSES,
        )
        return [_row_to_record(row) for row in rows]

    def delete(self, command_id: str) -> bool:
        """Delete one record; return whether it existed."""
        return self._write("DELETE FROM commands WHERE command_id = ?", (command_id,)) > 0

    def purge(self, cutoff: datetime) -> int:
        """Delete finished records created before ``cutoff``; return how many."""
        return self._write(
            "DELETE FROM commands WHERE created_at < ? AND status NOT IN (?, ?, ?)",
            (_ts(cutoff), *OPEN_STATUSES),
        )

    def count(self) -> int:
        """Return how many records are stored."""
        return int(self.db.execute("SELECT COUNT(*) FROM commands").fetchone()[0])

    def idempotency_get(self, scope: str) -> IdempotencyEntry | None:
        """Return the remembered Idempotency-Key for ``scope``."""
        row = self.db.execute(
            "SELECT scope, body_hash, command_id, created_at FROM idempotency WHERE scope = ?",
            (scope,),
        ).fetchone()
        if row is None:
            return None
        return IdempotencyEntry(row[0], row[1], row[2], _dt(row[3]))

    def idempotency_put(self, entry: IdempotencyEntry) -> None:
        """Remember an Idempotency-Key (replacing an expired one with the same scope)."""
        self._write(
            "REPLACE INTO idempotency (scope, body_hash, command_id, created_at) VALUES (?,?,?,?)",
            (entry.scope, entry.body_hash, entry.command_id, _ts(entry.created_at)),
        )

    def idempotency_purge(self, cutoff: datetime) -> int:
        """Forget Idempotency-Keys created before ``cutoff``."""
        return self._write("DELETE FROM idempotency WHERE created_at < ?", (_ts(cutoff),))


class AsyncCommandStore:
    """Awaitable access to a ``CommandStore``; every call runs on one worker thread, in order."""

    def __init__(self, store: CommandStore) -> None:
        """Wrap ``store``."""
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iotee_store")

    async def _run[T](self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    async def open(self) -> None:
        """Open the store."""
        await self._run(self.store.open)

    async def close(self) -> None:
        """Close the store and stop the worker thread (joined off the event loop)."""
        try:
            await self._run(self.store.close)
        finally:
            await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def insert(self, record: CommandRecord) -> None:
        """Store a new record."""
        await self._run(self.store.insert, record)

    async def update(self, record: CommandRecord) -> None:
        """Store a record's current state."""
        await self._run(self.store.update, record)

    async def get(self, command_id: str) -> CommandRecord | None:
        """Return one record."""
        return await self._run(self.store.get, command_id)

    async def list_commands(
        self, hardware_id: str | None = None, limit: int = 100
    ) -> list[CommandRecord]:
        """Return records newest first."""
        return await self._run(self.store.list_commands, hardware_id, limit)

    async def open_commands(self) -> list[CommandRecord]:
        """Return records not yet terminal."""
        return await self._run(self.store.open_commands)

    async def delete(self, command_id: str) -> bool:
        """Delete one record."""
        return await self._run(self.store.delete, command_id)

    async def purge(self, cutoff: datetime) -> int:
        """Delete finished records created before ``cutoff``."""
        return await self._run(self.store.purge, cutoff)

    async def count(self) -> int:
        """Return how many records are stored."""
        return await self._run(self.store.count)

    async def idempotency_get(self, scope: str) -> IdempotencyEntry | None:
        """Return a remembered Idempotency-Key."""
        return await self._run(self.store.idempotency_get, scope)

    async def idempotency_put(self, entry: IdempotencyEntry) -> None:
        """Remember an Idempotency-Key."""
        await self._run(self.store.idempotency_put, entry)

    async def idempotency_purge(self, cutoff: datetime) -> int:
        """Forget old Idempotency-Keys."""
        return await self._run(self.store.idempotency_purge, cutoff)

"""Durable command history and idempotency records in SQLite (standard library).

``CommandStore`` is synchronous and meant to live on one thread; ``AsyncCommandStore`` gives the
event loop an awaitable API that runs every call on a single dedicated worker thread, in order.
New records and status updates are group-committed: the inserts made while the previous insert
is on the worker thread are one call there and one transaction (``AsyncCommandStore.insert``,
``CommandStore.insert_rows``), and so are the updates of one event-loop iteration, or of the
iterations that ran while the previous group was written (``AsyncCommandStore.update_soon``,
``CommandStore.update_rows``), one row per command.

Faults the store survives (README, "Reliability"):

- A damaged file at ``open`` (not a database, malformed, failing ``PRAGMA quick_check``, our
  tables missing) is moved aside with its ``-wal``/``-shm`` to ``<name>.corrupt-<UTC time>`` and a
  fresh store is started; ``open`` returns a ``CorruptFileMoved`` saying where the file went.
- A busy or locked database: every statement waits up to ``BUSY_TIMEOUT`` for the other
  connection, and a write is tried ``WRITE_ATTEMPTS`` times before it fails.
- WAL checkpoints off the critical path: a new command's insert is awaited before it is
  published, so the checkpoint (copying the write-ahead log into the database) is not left to
  SQLite's automatic one on whichever commit crosses its threshold. It runs after a status update
  every ``CHECKPOINT_EVERY`` commits (updates are written after the caller has moved on);
  SQLite's own, at ``WAL_AUTOCHECKPOINT_PAGES``, remains as the bound when only inserts happen.
- A write that fails (disk full, I/O error, still locked): ``insert`` raises ``StoreFaultError``
  and nothing is stored (the caller refuses the command). ``update`` keeps the record's row in
  memory (latest state per command) and raises ``WritesPendingError``; the rows are written by the
  next successful ``insert`` or ``flush``, and reads see them in the meantime.

Idempotency-Keys outlive their commands: deleting or purging a command that a remembered key
created keeps a snapshot of its last state with the key (in the same transaction), so a replay
still answers with the original command and its last known status until the key expires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
import functools
import json
from json.encoder import encode_basestring_ascii as _quote
import logging
import os
from pathlib import Path
import sqlite3
import time
from typing import Any

from .model import Attempt, CommandRecord, CommandStatus, Transition
from .query import CommandQuery, Cursor, Page
from .worker import Worker

_LOGGER = logging.getLogger(__name__)

BUSY_TIMEOUT = 2.0
"""Seconds a statement waits for another connection's lock (SQLite ``busy_timeout``)."""
WRITE_ATTEMPTS = 3
"""Tries of one write while the database stays busy or locked."""
WRITE_BACKOFF = 0.1
"""Seconds between the first and second try of a busy write; doubled for each further try."""
CHECKPOINT_EVERY = 250
"""Commits between two WAL checkpoints run after a status update (about 1,000 WAL pages)."""
WAL_AUTOCHECKPOINT_PAGES = 10000
"""SQLite's automatic checkpoint, kept as a bound on the WAL (about 40 MB) when only inserts
happen; ``CHECKPOINT_EVERY`` normally checkpoints long before."""
PURGE_CHUNK = 20000
"""Records a purge deletes between two looks at whether other work waits for the store."""
PURGE_CACHE_KIB = 65536
"""SQLite page cache (KiB) while purging; the connection's own size is restored afterwards."""

SCHEMA_VERSION = 3
OPEN_STATUSES = (
    CommandStatus.PENDING.value,
    CommandStatus.PUBLISHED.value,
    CommandStatus.ACKNOWLEDGED.value,
)


def _sent_only(table: str = "") -> str:
    """SQL true for ``published`` to a device that never confirms (its deadline is its
    creation: ``CommandRecord.finished``); its parameter is ``PUBLISHED``."""
    return f"({table}status = ? AND {table}deadline <= {table}created_at)"


def _finished(table: str = "") -> str:
    """SQL true for a finished record: a terminal status, or ``_sent_only``; its parameters are
    ``_FINISHED_ARGS``."""
    return f"({table}status NOT IN (?, ?, ?) OR {_sent_only(table)})"


_FINISHED = _finished()
_FINISHED_KEYED = _finished("c.")
_FINISHED_ARGS = (*OPEN_STATUSES, CommandStatus.PUBLISHED.value)

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
    2: (
        # The last state of the key's command, kept when the command is deleted or purged.
        "ALTER TABLE idempotency ADD COLUMN snapshot TEXT",
        "CREATE INDEX ix_idempotency_command ON idempotency (command_id)",
        # Pages of one status (the failed ones, say) newest first, without scanning the others.
        "CREATE INDEX ix_commands_status_created ON commands (status, created_at)",
        # The retry chain of a command, forwards; most commands are no retry, so few entries.
        "CREATE INDEX ix_commands_retry_of ON commands (retry_of) WHERE retry_of IS NOT NULL",
    ),
    3: (
        # Every publish of a command ([[number, published_at, outcome], ...]).
        "ALTER TABLE commands ADD COLUMN attempts TEXT NOT NULL DEFAULT '[]'",
        # When a command kept for an offline device expires.
        "ALTER TABLE commands ADD COLUMN queued_until REAL",
    ),
}

_COLUMNS = (
    "command_id, hardware_id, device_id, device_type, command, relay, topic, payload, params,"
    " status, created_at, updated_at, deadline, transitions, error_code, error,"
    " late_confirmation, late_confirmation_at, retry_of, source, caller, attempts, queued_until"
)
_COLUMN_NAMES = tuple(col.strip() for col in _COLUMNS.split(","))
_INSERT = f"INSERT INTO commands ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMN_NAMES))})"
_CHANGING = (
    "status",
    "updated_at",
    "deadline",
    "transitions",
    "error_code",
    "error",
    "late_confirmation",
    "late_confirmation_at",
    "attempts",
    "queued_until",
)
"""The columns a command's life changes (the others are set once, at its insert)."""
_CHANGING_AT = tuple(_COLUMN_NAMES.index(name) for name in _CHANGING)
_UPDATE = (
    f"UPDATE commands SET {', '.join(f'{name} = ?' for name in _CHANGING)} WHERE command_id = ?"
)
"""An update, never an insert: a status change of a command deleted or purged meanwhile (a late
confirmation, say) must not bring its record back. Only the changing columns are set, so the
indexes on the others (device, creation, retry chain) are not rewritten with every status."""
_REQUIRED_TABLES = frozenset({"commands", "idempotency"})
_SQLITE_HEADER = b"SQLite format 3\x00"

_RECENT_PER_DEVICE = 64
"""How many of a device's newest commands ``last_commands`` reads before asking per target."""
_TARGET_FILTERS = {
    "relay": "relay = ?",
    "lock": "relay IS NULL AND command != 'reboot'",
    "reboot": "relay IS NULL AND command = 'reboot'",
}


def _target_args(target: str) -> tuple[int, ...]:
    kind, _, relay = target.partition(":")
    return (int(relay),) if kind == "relay" else ()


type RecordRow = tuple[Any, ...]
"""A record as the values of ``_COLUMNS``, in order (``record_row``)."""


class StoreError(Exception):
    """The command store could not do what was asked."""


class StoreFaultError(StoreError):
    """The database itself failed: busy or locked too long, full, an I/O error, damaged.

    Unlike a plain ``StoreError`` (a duplicate id, a store that is not open) this says nothing
    about the request: the same write may succeed once the fault clears.
    """


class WritesPendingError(StoreFaultError):
    """Record updates could not be written; they are kept in memory and written later."""

    def __init__(self, message: str, pending: int) -> None:
        """Say why, and how many records wait to be written."""
        super().__init__(message)
        self.pending = pending


@dataclass(frozen=True, slots=True)
class CorruptFileMoved:
    """``open`` found a damaged database file and moved it (with -wal/-shm) aside."""

    path: Path
    """Where the damaged file was (a fresh store lives there now)."""
    moved_to: Path
    """Where it is now."""
    reason: str
    """What was wrong with it."""


class _CorruptError(Exception):
    """Raised inside ``open`` when the file is damaged."""


@dataclass(frozen=True, slots=True)
class IdempotencyEntry:
    """A remembered Idempotency-Key: which body it came with and which command it made."""

    scope: str
    body_hash: str
    command_id: str
    created_at: datetime
    snapshot: CommandRecord | None = None
    """The command as it last was, once it was deleted or purged (None while it exists)."""


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _error_code(err: sqlite3.Error) -> int | None:
    """Return the primary SQLite result code of ``err`` (None when it has none)."""
    code = getattr(err, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _is_busy(err: sqlite3.Error) -> bool:
    code = _error_code(err)
    if code is not None:
        return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(err).lower()
    return "locked" in text or "busy" in text


def _is_corrupt(err: sqlite3.Error) -> bool:
    code = _error_code(err)
    if code is not None:
        return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    text = str(err).lower()
    return "malformed" in text or "not a database" in text


def _fault(err: sqlite3.Error, message: str | None = None) -> StoreError:
    """Wrap ``err``: a fault of the database, or a plain error of the request."""
    text = message or str(err)
    if isinstance(err, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return StoreError(text)
    return StoreFaultError(text)


def _row_to_record(row: sqlite3.Row | Mapping[str, Any]) -> CommandRecord:
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
        attempts=[
            Attempt(number, _dt(at), outcome)
            for number, at, outcome in json.loads(_optional(row, "attempts") or "[]")
        ],
        queued_until=None if (until := _optional(row, "queued_until")) is None else _dt(until),
    )


def _optional(row: sqlite3.Row | Mapping[str, Any], name: str) -> Any:
    """Return a column added by a later schema; None in a snapshot taken before it."""
    return row[name] if name in row.keys() else None  # noqa: SIM118 (sqlite3.Row)


_COMPACT = json.JSONEncoder(separators=(",", ":"))
"""Built once: ``json.dumps`` with a keyword builds an encoder a call."""


def _transitions_json(transitions: list[Transition]) -> str:
    """Return ``json.dumps([[status, timestamp], ...])`` of ``transitions``, the same text.

    Written out rather than through ``json.dumps``, which builds its C encoder for every call:
    a row is built on the event loop for each status change, in about half the time this way.
    """
    items = [f"[{_quote(t.status)}, {t.at.timestamp()!r}]" for t in transitions]
    return "[" + ", ".join(items) + "]"


def _attempts_json(attempts: list[Attempt]) -> str:
    """Return ``json.dumps([[number, published_at, outcome], ...])`` of ``attempts`` (the same
    text, as ``_transitions_json``)."""
    items = [
        f"[{a.number!r}, {a.published_at.timestamp()!r}, "
        f"{'null' if a.outcome is None else _quote(a.outcome)}]"
        for a in attempts
    ]
    return "[" + ", ".join(items) + "]"


def record_row(record: CommandRecord) -> RecordRow:
    """Return a snapshot of ``record`` as a row (cheap: safe to take on the event loop)."""
    return _record_to_row(record)


def _pending_to_record(row: RecordRow) -> CommandRecord:
    return _row_to_record(dict(zip(_COLUMN_NAMES, row, strict=True)))


def _record_to_row(record: CommandRecord) -> RecordRow:
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
        _COMPACT.encode(record.params),
        record.status.value,
        _ts(record.created_at),
        _ts(record.updated_at),
        _ts(record.deadline),
        _transitions_json(record.transitions),
        record.error_code,
        record.error,
        record.late_confirmation,
        None if record.late_confirmation_at is None else _ts(record.late_confirmation_at),
        record.retry_of,
        record.source,
        record.caller,
        _attempts_json(record.attempts),
        None if record.queued_until is None else _ts(record.queued_until),
    )


class CommandStore:
    """SQLite-backed command history. Not thread-safe: use it from one thread."""

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout: float | None = None,
        write_attempts: int | None = None,
        write_backoff: float | None = None,
    ) -> None:
        """Prepare a store at ``path`` (``:memory:`` for tests); ``open`` connects.

        The fault tunables default to the module's ``BUSY_TIMEOUT``, ``WRITE_ATTEMPTS`` and
        ``WRITE_BACKOFF`` as they are when the store is created.
        """
        self.path = str(path)
        self.busy_timeout = BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        self.write_attempts = max(1, WRITE_ATTEMPTS if write_attempts is None else write_attempts)
        self.write_backoff = WRITE_BACKOFF if write_backoff is None else write_backoff
        self.corrupt_moved: CorruptFileMoved | None = None
        """Set by ``open`` when it moved a damaged file aside."""
        self._db: sqlite3.Connection | None = None
        self._commits = 0
        """Commits since the last checkpoint."""
        self._purge_pragmas: tuple[int, int] | None = None
        """The connection's cache_size and secure_delete while a purge has changed them."""
        self._pending: dict[str, RecordRow] = {}
        self._pending_error: StoreError | None = None

    @property
    def db(self) -> sqlite3.Connection:
        """Return the open connection."""
        if self._db is None:
            raise StoreError("the command store is not open")
        return self._db

    # ---- opening -------------------------------------------------------------------------

    def open(self) -> CorruptFileMoved | None:
        """Connect, enable WAL and bring the schema to the current version.

        A damaged file is moved aside (see ``CorruptFileMoved``) and a fresh store started in
        its place; the move is returned (and kept as ``corrupt_moved``). Anything else that
        prevents opening raises ``StoreError``.
        """
        self.corrupt_moved = None
        try:
            self._open()
        except _CorruptError as err:
            self.close()
            if self.path == ":memory:" or self.path.startswith("file:"):
                raise StoreFaultError(f"the command store {self.path} is damaged: {err}") from err
            self.corrupt_moved = self._move_aside(str(err))
            _LOGGER.warning(
                "The command store %s is damaged (%s); moved it to %s and started a new one",
                self.path,
                err,
                self.corrupt_moved.moved_to,
            )
            try:
                self._open()
            except _CorruptError as again:
                raise StoreFaultError(
                    f"cannot open a new command store {self.path}: {again}"
                ) from again
        return self.corrupt_moved

    def _open(self) -> None:
        """Connect and migrate; raise ``_CorruptError`` for a damaged file, else StoreError."""
        self._inspect()
        try:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, check_same_thread=False)
            self._db = db
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            self._migrate()
        except sqlite3.Error as err:
            self.close()
            if _is_corrupt(err):
                raise _CorruptError(str(err)) from err
            raise _fault(err, f"cannot open the command store {self.path}: {err}") from err
        except StoreError:
            self.close()
            raise

    def _inspect(self) -> None:
        """Check an existing file without changing it; raise ``_CorruptError`` if damaged.

        Read-only, before the real connection: that one would switch the file to WAL and, on
        close, checkpoint and delete the -wal, so a damaged file would not be kept as found.
        """
        path = Path(self.path)
        if self.path == ":memory:" or self.path.startswith("file:") or not path.is_file():
            return
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
        if not header:
            return  # an empty file is an empty database
        if header != _SQLITE_HEADER:
            raise _CorruptError("file is not a database")
        try:
            db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=self.busy_timeout
            )
        except sqlite3.Error:
            return  # the real connection reports why it cannot open
        try:
            problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise _CorruptError("integrity check failed: " + "; ".join(problems))
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if 1 <= version <= SCHEMA_VERSION:  # a newer schema is refused later, not moved
                tables = {
                    str(row[0])
                    for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                if missing := _REQUIRED_TABLES - tables:
                    raise _CorruptError(
                        "schema damaged: missing table " + ", ".join(sorted(missing))
                    )
        except sqlite3.Error as err:
            if _is_corrupt(err):
                raise _CorruptError(str(err)) from err
            # Anything else (busy, no permission): the real connection reports it.
        finally:
            db.close()

    def _move_aside(self, reason: str) -> CorruptFileMoved:
        """Rename the damaged file and its -wal/-shm to ``<path>.corrupt-<UTC time>``."""
        path = Path(self.path)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        counter = 1
        while any(
            Path(f"{target}{suffix}").exists() for suffix in ("", "-wal", "-shm", "-journal")
        ):
            counter += 1
            target = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
        try:
            # The main file last: until it is gone, a restart still finds (and moves) all parts.
            for suffix in ("-wal", "-shm", "-journal", ""):
                source = Path(f"{path}{suffix}")
                if source.exists():
                    os.replace(source, f"{target}{suffix}")
        except OSError as err:
            raise StoreFaultError(
                f"the command store {path} is damaged ({reason}) and cannot be moved aside: {err}"
            ) from err
        return CorruptFileMoved(path=path, moved_to=target, reason=reason)

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
        """Close the connection (record updates still pending are dropped: ``flush`` first)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    # ---- writing -------------------------------------------------------------------------

    def _transaction[T](self, work: Callable[[sqlite3.Connection], T], attempts: int) -> T:
        """Run ``work`` in one transaction; retry while busy/locked, up to ``attempts`` tries."""
        db = self.db
        delay = self.write_backoff
        for attempt in range(1, attempts + 1):
            try:
                with db:
                    result = work(db)
                self._commits += 1
                return result
            except sqlite3.Error as err:
                if attempt < attempts and _is_busy(err):
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise _fault(err) from err
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        return self._transaction(lambda db: db.execute(sql, args).rowcount, self.write_attempts)

    def insert(self, record: CommandRecord) -> None:
        """Store a new record (durable when this returns)."""
        self.insert_row(_record_to_row(record))

    def insert_row(self, row: RecordRow) -> None:
        """Store a new record given as ``record_row``; raise ``StoreError`` when it is not stored.

        Updates kept in memory are written right after (their failure does not fail the insert).
        """
        self._write(_INSERT, row)
        if self._pending:
            with contextlib.suppress(WritesPendingError):
                self.flush()

    def insert_rows(self, rows: Sequence[RecordRow]) -> list[StoreError | None]:
        """Store new records given as ``record_row``, in one transaction; return each one's
        error (None: stored).

        A fault of the database (``StoreFaultError``: full, locked, I/O) refuses them all; a
        plain error (a command id stored already, say) makes the rows go in one by one, so that
        it refuses only its own command.
        """
        if len(rows) == 1:
            try:
                self.insert_row(rows[0])
            except StoreError as err:
                return [err]
            return [None]
        try:
            self._transaction(lambda db: db.executemany(_INSERT, rows), self.write_attempts)
        except StoreFaultError as err:
            return [err] * len(rows)
        except StoreError:
            outcomes: list[StoreError | None] = []
            for row in rows:
                try:
                    self.insert_row(row)
                except StoreError as err:
                    outcomes.append(err)
                else:
                    outcomes.append(None)
            return outcomes
        if self._pending:
            with contextlib.suppress(WritesPendingError):
                self.flush()
        return [None] * len(rows)

    def update(self, record: CommandRecord) -> None:
        """Store the current state of an existing record (see ``update_row``)."""
        self.update_row(_record_to_row(record))

    def update_row(self, row: RecordRow) -> None:
        """Store the state of a record given as ``record_row`` (see ``update_rows``)."""
        self.update_rows((row,))

    def update_rows(self, rows: Sequence[RecordRow]) -> None:
        """Store the states of records given as ``record_row``, in one transaction.

        A group commit: the status changes of one event-loop iteration cost one transaction. A
        row only updates a stored record (``UPDATE``; a deleted record is not brought back).
        When they cannot be written the rows are kept in memory (the latest state per command
        wins) and ``WritesPendingError`` is raised; kept rows are written by the next
        ``insert`` or ``flush``. While rows are kept, further updates only join them,
        without touching the database, so a locked database does not stall every update by
        ``BUSY_TIMEOUT``.
        """
        for row in rows:
            command_id = str(row[0])
            self._pending.pop(command_id, None)
            self._pending[command_id] = row
        if self._pending_error is not None:
            raise WritesPendingError(str(self._pending_error), len(self._pending))
        self.flush(self.write_attempts)
        if self._commits >= CHECKPOINT_EVERY:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file now, as far as readers allow.

        A passive checkpoint: it never waits for other connections; one that fails is logged and
        left to the next one (or SQLite's automatic one), as nothing is lost by skipping it.
        """
        self._commits = 0
        try:
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as err:
            _LOGGER.debug("WAL checkpoint skipped: %s", err)

    def flush(self, attempts: int = 1) -> None:
        """Write the record updates kept in memory, in one transaction.

        Raises ``WritesPendingError`` (keeping them) when that fails.
        """
        if not self._pending:
            self._pending_error = None
            return
        rows = [(*(row[at] for at in _CHANGING_AT), row[0]) for row in self._pending.values()]
        try:
            self._transaction(lambda db: db.executemany(_UPDATE, rows), attempts)
        except StoreError as err:
            self._pending_error = err
            raise WritesPendingError(str(err), len(self._pending)) from err
        self._pending.clear()
        self._pending_error = None

    @property
    def pending_writes(self) -> int:
        """Return how many records have updates kept in memory, not yet written."""
        return len(self._pending)

    # ---- reading (updates kept in memory are seen) ---------------------------------------

    def _current(self, record: CommandRecord) -> CommandRecord:
        row = self._pending.get(record.command_id)
        return record if row is None else _pending_to_record(row)

    def get(self, command_id: str) -> CommandRecord | None:
        """Return one record by id."""
        if (row := self._pending.get(command_id)) is not None:
            return _pending_to_record(row)
        found = self.db.execute(
            f"SELECT {_COLUMNS} FROM commands WHERE command_id = ?", (command_id,)
        ).fetchone()
        return None if found is None else _row_to_record(found)

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
        return [self._current(_row_to_record(row)) for row in rows]

    def last_commands(self, targets: Mapping[str, Sequence[str]]) -> list[CommandRecord]:
        """Return the newest command of each target, for ``{hardware_id: [target, ...]}``.

        Targets are named as ``CommandRecord.target`` names them (``lock``, ``relay:<n>``,
        ``reboot``). A device's recent history answers most of them in one indexed read; a
        target not among them gets one indexed query of its own.
        """
        found: list[CommandRecord] = []
        for hardware_id, wanted in targets.items():
            missing = set(wanted)
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM commands WHERE hardware_id = ?"
                " ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (hardware_id, _RECENT_PER_DEVICE),
            ).fetchall()
            for row in rows:
                record = self._current(_row_to_record(row))
                if record.target[1] in missing:
                    missing.discard(record.target[1])
                    found.append(record)
            if len(rows) < _RECENT_PER_DEVICE:
                continue  # the whole history was read: the rest has never been commanded
            for target in sorted(missing):
                row = self.db.execute(
                    f"SELECT {_COLUMNS} FROM commands WHERE hardware_id = ? AND "
                    + _TARGET_FILTERS[target.partition(":")[0]]
                    + " ORDER BY created_at DESC, rowid DESC LIMIT 1",
                    (hardware_id, *_target_args(target)),
                ).fetchone()
                if row is not None:
                    found.append(self._current(_row_to_record(row)))
        return found

    def list_page(self, query: CommandQuery, before: Cursor | None = None, limit: int = 50) -> Page:
        """Return one page of the records ``query`` matches, newest first, below ``before``."""
        where, args = query.where()
        if before is not None:
            where += " AND (created_at, rowid) < (?, ?)"
            args += [before.created_at, before.rowid]
        rows = self.db.execute(
            f"SELECT rowid, {_COLUMNS} FROM commands WHERE {where}"
            " ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        records = [self._current(_row_to_record(row)) for row in rows]
        last = rows[-1] if more else None
        return Page(records, None if last is None else Cursor(last["created_at"], last["rowid"]))

    def retry_chain(self, command_id: str, limit: int = 100) -> list[CommandRecord]:
        """Return the records of ``command_id``'s retry chain (itself included), oldest first.

        Back along ``retry_of`` to the first command, then forward through every retry of it;
        a record deleted in between ends the walk on that side.
        """
        rows = self.db.execute(
            "WITH RECURSIVE"
            " up(id, depth) AS (SELECT ?, 0 UNION ALL SELECT c.retry_of, up.depth + 1"
            "  FROM commands c JOIN up ON c.command_id = up.id"
            "  WHERE c.retry_of IS NOT NULL AND up.depth < ?),"
            " root(id) AS (SELECT id FROM up ORDER BY depth DESC LIMIT 1),"
            " down(id, depth) AS (SELECT id, 0 FROM root UNION ALL SELECT c.command_id,"
            "  down.depth + 1 FROM commands c JOIN down ON c.retry_of = down.id"
            "  WHERE down.depth < ?)"
            f" SELECT {_COLUMNS} FROM commands WHERE command_id IN (SELECT id FROM down)"
            " ORDER BY created_at, rowid LIMIT ?",
            (command_id, limit, limit, limit),
        )
        return [self._current(_row_to_record(row)) for row in rows]

    def open_commands(self) -> list[CommandRecord]:
        """Return the records that are not finished (``CommandRecord.finished``)."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM commands WHERE status IN (?, ?, ?)"
            f" AND NOT {_sent_only()} ORDER BY created_at",
            _FINISHED_ARGS,
        )
        records = [self._current(_row_to_record(row)) for row in rows]
        return [record for record in records if not record.finished]

    def delete(self, command_id: str) -> bool:
        """Delete one record; return whether it existed.

        An Idempotency-Key that created it keeps a snapshot of its last state (a kept update
        when there is one), in the same transaction.
        """
        kept = self._pending.get(command_id)

        def work(db: sqlite3.Connection) -> int:
            if kept is not None:
                _snapshot_keys(db, [kept])
            else:
                _snapshot_keys(
                    db, db.execute(f"{_SELECT_KEYED} AND c.command_id = ?", (command_id,))
                )
            return db.execute("DELETE FROM commands WHERE command_id = ?", (command_id,)).rowcount

        deleted = self._transaction(work, self.write_attempts) > 0
        self._pending.pop(command_id, None)
        return deleted

    def purge(self, cutoff: datetime) -> int:
        """Delete finished records created before ``cutoff``, in one transaction; return how
        many."""
        return self.purge_some(cutoff)[0]

    def purge_some(
        self,
        cutoff: datetime,
        chunk: int | None = None,
        pause: Callable[[], bool] | None = None,
    ) -> tuple[int, bool]:
        """Delete finished records created before ``cutoff``, oldest first, ``chunk`` at a time
        (a few more when timestamps tie), in one transaction; stop early, after a chunk, when
        ``pause()`` says other work is waiting. Return how many and whether that was all.

        Kept updates are written first (``WritesPendingError`` when they cannot be), so a record
        that finished while the store was failing is judged by its current status. With nothing
        else to do the whole purge is one transaction (no cost for the chunks: their pages stay
        in the cache until the commit); ``AsyncCommandStore.purge`` passes a ``pause`` so that a
        new command's insert waits for one chunk and a commit, not for the whole purge.
        """
        chunk = PURGE_CHUNK if chunk is None else chunk
        self.flush(self.write_attempts)
        db = self.db
        if self._purge_pragmas is None:
            self._purge_pragmas = self._enlarge_for_purge(db)
        try:
            deleted, done = self._transaction(
                lambda db: self._delete_chunks(db, _ts(cutoff), chunk, pause), self.write_attempts
            )
        except BaseException:
            self._end_purge(db)
            raise
        if done:
            self._end_purge(db)
        return deleted, done

    @staticmethod
    def _delete_chunks(
        db: sqlite3.Connection, cutoff: Any, chunk: int, pause: Callable[[], bool] | None
    ) -> tuple[int, bool]:
        deleted = 0
        while True:
            # A chunk ends at the chunk-th oldest record (open or not: read from the created_at
            # index alone); ties with it go too, so every chunk makes progress.
            boundary = db.execute(
                "SELECT created_at FROM commands WHERE created_at < ?"
                " ORDER BY created_at LIMIT 1 OFFSET ?",
                (cutoff, chunk - 1),
            ).fetchone()
            if boundary is not None:
                _snapshot_keys(
                    db,
                    db.execute(
                        f"{_SELECT_KEYED} AND c.created_at <= ? AND {_FINISHED_KEYED}",
                        (boundary[0], *_FINISHED_ARGS),
                    ),
                )
                gone = db.execute(
                    f"DELETE FROM commands WHERE created_at <= ? AND {_FINISHED}",
                    (boundary[0], *_FINISHED_ARGS),
                ).rowcount
                deleted += gone
                if gone:
                    if pause is not None and pause():
                        return deleted, False
                    continue
                # Only open records up to there: no chunk can progress, finish in one go.
            _snapshot_keys(
                db,
                db.execute(
                    f"{_SELECT_KEYED} AND c.created_at < ? AND {_FINISHED_KEYED}",
                    (cutoff, *_FINISHED_ARGS),
                ),
            )
            deleted += db.execute(
                f"DELETE FROM commands WHERE created_at < ? AND {_FINISHED}",
                (cutoff, *_FINISHED_ARGS),
            ).rowcount
            return deleted, True

    @staticmethod
    def _enlarge_for_purge(db: sqlite3.Connection) -> tuple[int, int]:
        """Set the purge's pragmas; return the connection's own to restore afterwards."""
        cache = int(db.execute("PRAGMA cache_size").fetchone()[0])
        secure_delete = int(db.execute("PRAGMA secure_delete").fetchone()[0])
        # Deleting many rows visits the primary-key index (random command ids) all over, which
        # with SQLite's default 2 MiB page cache rereads the same pages again and again: a larger
        # cache for the purge alone makes purging 1,000,000 commands ~1.5x faster. Builds with
        # SECURE_DELETE (Debian's) would also zero-fill and write out every page the purge frees:
        # FAST still clears deleted rows in the pages it writes anyway, at ~40 % less I/O.
        db.execute(f"PRAGMA cache_size=-{PURGE_CACHE_KIB:d}")
        if secure_delete == 1:
            db.execute("PRAGMA secure_delete=FAST")
        return cache, secure_delete

    def _end_purge(self, db: sqlite3.Connection) -> None:
        if self._purge_pragmas is None:
            return
        cache, secure_delete = self._purge_pragmas
        self._purge_pragmas = None
        db.execute(f"PRAGMA cache_size={cache:d}")
        if secure_delete == 1:
            db.execute("PRAGMA secure_delete=1")

    def count(self) -> int:
        """Return how many records are stored."""
        return int(self.db.execute("SELECT COUNT(*) FROM commands").fetchone()[0])

    def idempotency_get(self, scope: str) -> IdempotencyEntry | None:
        """Return the remembered Idempotency-Key for ``scope``."""
        row = self.db.execute(
            "SELECT scope, body_hash, command_id, created_at, snapshot FROM idempotency"
            " WHERE scope = ?",
            (scope,),
        ).fetchone()
        if row is None:
            return None
        snapshot = None if row[4] is None else _row_to_record(json.loads(row[4]))
        return IdempotencyEntry(row[0], row[1], row[2], _dt(row[3]), snapshot)

    def idempotency_put(self, entry: IdempotencyEntry) -> None:
        """Remember an Idempotency-Key (replacing an expired one with the same scope)."""
        snapshot = None if entry.snapshot is None else _snapshot(_record_to_row(entry.snapshot))
        self._write(
            "REPLACE INTO idempotency (scope, body_hash, command_id, created_at, snapshot)"
            " VALUES (?,?,?,?,?)",
            (entry.scope, entry.body_hash, entry.command_id, _ts(entry.created_at), snapshot),
        )

    def idempotency_purge(self, cutoff: datetime) -> int:
        """Forget Idempotency-Keys created before ``cutoff``."""
        return self._write("DELETE FROM idempotency WHERE created_at < ?", (_ts(cutoff),))


_SELECT_KEYED = (
    f"SELECT {', '.join(f'c.{name}' for name in _COLUMN_NAMES)}"
    " FROM idempotency AS i CROSS JOIN commands AS c"
    " WHERE c.command_id = i.command_id"
)
"""The records some Idempotency-Key created (add conditions with ``AND c.<column> ...``).

``CROSS JOIN`` keeps the idempotency table (48 hours of keys) the outer loop, so a purge of
millions of records looks up each key's record once instead of each record's keys."""


def _snapshot(row: RecordRow) -> str:
    """Return a record row as the JSON kept in ``idempotency.snapshot``."""
    return json.dumps(dict(zip(_COLUMN_NAMES, row, strict=True)), separators=(",", ":"))


def _snapshot_keys(db: sqlite3.Connection, rows: Any) -> None:
    """Keep each record row's state with the Idempotency-Keys that created it."""
    db.executemany(
        "UPDATE idempotency SET snapshot = ? WHERE command_id = ?",
        [(_snapshot(tuple(row)), row[0]) for row in rows],
    )


def _settle(future: asyncio.Future[None], done: asyncio.Future[None]) -> None:
    """Give ``future`` the outcome of ``done`` (unless its waiter went away)."""
    if future.cancelled():
        return
    if done.cancelled():
        future.cancel()
    elif (err := done.exception()) is not None:
        future.set_exception(err)
    else:
        future.set_result(None)


def _settle_each(
    futures: list[asyncio.Future[None]], done: asyncio.Future[list[StoreError | None]]
) -> None:
    """Give each of ``futures`` its own outcome of ``done`` (a list of errors or None)."""
    outcomes: list[StoreError | None] | None = None
    failure: BaseException | None = None
    if not done.cancelled():
        failure = done.exception()
        if failure is None:
            outcomes = done.result()
    for index, future in enumerate(futures):
        if future.cancelled():
            continue
        if done.cancelled():
            future.cancel()
        elif failure is not None:
            future.set_exception(failure)
        elif outcomes is not None and (err := outcomes[index]) is not None:
            future.set_exception(err)
        else:
            future.set_result(None)


class AsyncCommandStore:
    """Awaitable access to a ``CommandStore``; every call runs on one worker thread, in order."""

    def __init__(self, store: CommandStore) -> None:
        """Wrap ``store``."""
        self.store = store
        self._worker = Worker("iotee_store")
        self._inserts: list[tuple[RecordRow, asyncio.Future[None]]] = []
        """New records taken but not yet handed to the worker thread (see ``insert``)."""
        self._deferred: dict[str, CommandRecord] = {}
        """Records with updates not yet handed to the worker thread (see ``update_soon``)."""
        self._batch: asyncio.Future[None] | None = None
        """The outcome of writing ``_deferred`` (None while nothing is deferred)."""
        self._scheduled = False
        """Whether a hand-over of what is deferred is due at the end of this loop iteration."""
        self._inserting = False
        """Whether a group of inserts is on the worker thread (the next group waits)."""
        self._writing = False
        """Whether a group commit of updates is on the worker thread (the next one waits)."""
        self._submitted = 0
        """Calls handed to the worker thread (counted on the event loop)."""
        self._started = 0
        """Calls the worker thread has started (counted on it)."""

    async def _run[T](self, func: Callable[..., T], *args: Any) -> T:
        self._submit_deferred()
        self._submitted += 1
        return await self._worker.submit(self._started_call, func, *args)

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._submit_deferred)

    def _submit_deferred(self) -> None:
        """Hand the deferred inserts, then the deferred updates, to the worker thread (one call
        each), ahead of any later call."""
        self._scheduled = False
        self._submit_inserts()
        batch = self._batch
        if batch is None:
            return
        records, self._deferred, self._batch = self._deferred, {}, None
        rows = [record_row(record) for record in records.values()]
        self._submitted += 1
        self._writing = True
        written = self._worker.submit(self._started_call, self.store.update_rows, rows)
        written.add_done_callback(functools.partial(_settle, batch))
        written.add_done_callback(self._written)

    def _submit_inserts(self) -> None:
        if not self._inserts:
            return
        inserts, self._inserts = self._inserts, []
        self._submitted += 1
        self._inserting = True
        stored = self._worker.submit(
            self._started_call, self.store.insert_rows, [r for r, _ in inserts]
        )
        stored.add_done_callback(functools.partial(_settle_each, [f for _, f in inserts]))
        stored.add_done_callback(self._inserted)

    def _inserted(self, _: asyncio.Future[list[StoreError | None]]) -> None:
        """A group of inserts ended: hand over those taken meanwhile."""
        self._inserting = False
        self._submit_inserts()

    def _written(self, _: asyncio.Future[None]) -> None:
        """A group commit of updates ended: hand over those taken meanwhile."""
        self._writing = False
        if self._batch is not None:
            self._schedule()

    @property
    def path(self) -> str:
        """Return the database file's path."""
        return self.store.path

    @property
    def pending_writes(self) -> int:
        """Return how many records have updates kept in memory, not yet written."""
        return self.store.pending_writes

    async def open(self) -> CorruptFileMoved | None:
        """Open the store; return where a damaged file was moved, if it was."""
        return await self._run(self.store.open)

    async def close(self) -> None:
        """Close the store and stop the worker thread (joined off the event loop)."""
        try:
            await self._run(self.store.close)
        finally:
            await self._worker.async_stop()

    async def insert(self, record: CommandRecord) -> None:
        """Store a new record (its state as of this call); return once it is durable.

        A group commit: a record goes to the worker thread at once, unless the previous group
        of inserts is still there; the records inserted meanwhile then go together once it
        ended, in one transaction (``CommandStore.insert_rows``). An idle hub adds no wait, a
        busy one commits less often. Each insert still gets its own outcome.
        """
        row = record_row(record)
        if self._inserting:
            future = asyncio.get_running_loop().create_future()
            self._inserts.append((row, future))
            await future
            return
        # Alone: awaited directly (one loop iteration less than through a group's future).
        self._inserting = True
        try:
            outcome = await self._run(self.store.insert_rows, [row])
        finally:
            self._inserting = False
            self._submit_inserts()
        if (err := outcome[0]) is not None:
            raise err

    def update_soon(self, record: CommandRecord) -> asyncio.Future[None]:
        """Take a record's update; return the future of the group commit that writes it.

        The updates taken are handed to the worker thread as one call and one transaction
        (``CommandStore.update_rows``, one row per command, built at the hand-over: its latest
        state) at the end of this loop iteration; while the previous group commit is still on
        the worker thread, once that one ended, so that a busy hub writes larger groups rather
        than more of them. They are handed over earlier when another call to this store comes:
        calls stay in order (a ``get`` right after sees the update). The thread does not compete
        for the CPU with the code that changed the status (a REST answer still being sent, say).
        The updates of one group share one future: it fails with ``WritesPendingError`` when
        the rows were kept for later. Whoever awaits it must not let it be cancelled
        (``update`` shields it).
        """
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
            if not self._writing:
                self._schedule()
        self._deferred[record.command_id] = record  # its state when handed over: the latest
        return self._batch

    async def update(self, record: CommandRecord) -> None:
        """Store a record's state (``WritesPendingError``: kept for later)."""
        await asyncio.shield(self.update_soon(record))

    async def flush(self) -> None:
        """Write the updates kept in memory (``WritesPendingError`` when that fails)."""
        await self._run(self.store.flush)

    async def get(self, command_id: str) -> CommandRecord | None:
        """Return one record."""
        return await self._run(self.store.get, command_id)

    async def list_commands(
        self, hardware_id: str | None = None, limit: int = 100
    ) -> list[CommandRecord]:
        """Return records newest first."""
        return await self._run(self.store.list_commands, hardware_id, limit)

    async def last_commands(self, targets: Mapping[str, Sequence[str]]) -> list[CommandRecord]:
        """Return the newest command of each target (see ``CommandStore.last_commands``)."""
        return await self._run(self.store.last_commands, targets)

    async def list_page(
        self, query: CommandQuery, before: Cursor | None = None, limit: int = 50
    ) -> Page:
        """Return one page of matching records, newest first."""
        return await self._run(self.store.list_page, query, before, limit)

    async def retry_chain(self, command_id: str) -> list[CommandRecord]:
        """Return a command's retry chain, oldest first."""
        return await self._run(self.store.retry_chain, command_id)

    async def open_commands(self) -> list[CommandRecord]:
        """Return records not yet terminal."""
        return await self._run(self.store.open_commands)

    async def delete(self, command_id: str) -> bool:
        """Delete one record."""
        return await self._run(self.store.delete, command_id)

    async def purge(self, cutoff: datetime) -> int:
        """Delete finished records created before ``cutoff``: in one go when nothing else is
        asked of the store meanwhile; otherwise committing and letting that work run first
        (a new command's insert waits for one chunk, not for the whole purge)."""
        total = 0
        while True:
            deleted, done = await self._run(
                self.store.purge_some, cutoff, None, self._others_waiting
            )
            total += deleted
            if done:
                return total

    def _others_waiting(self) -> bool:
        """Return True when calls were handed to the worker thread that it has not started.

        Each counter is written by one thread only (submitted: the event loop; started: the
        worker), so neither loses a count.
        """
        return self._submitted > self._started

    def _started_call[T](self, func: Callable[..., T], *args: Any) -> T:
        self._started += 1
        return func(*args)

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

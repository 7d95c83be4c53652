"""Filtered keyset pages of the command history, retry chains and the schema 2 migration."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
import sqlite3

import pytest

from custom_components.iotee.core import store as store_module
from custom_components.iotee.core.model import CommandRecord, CommandStatus
from custom_components.iotee.core.query import (
    CommandQuery,
    Cursor,
    InvalidCursorError,
)
from custom_components.iotee.core.store import CommandStore

from .test_store import T0, finished, ids, make_record


@pytest.fixture
def store(tmp_path: Path) -> Generator[CommandStore]:
    """An open store on a fresh file."""
    opened = CommandStore(tmp_path / "commands.db")
    opened.open()
    yield opened
    opened.close()


def at(seconds: float) -> dict[str, object]:
    """Overrides for a record created ``seconds`` after T0."""
    return {"created_at": T0 + timedelta(seconds=seconds)}


def fill(store: CommandStore) -> list[CommandRecord]:
    """Store a small varied history, one record a second."""
    records = [
        finished("c00", CommandStatus.COMPLETED, **at(0)),
        finished("c01", CommandStatus.FAILED, **at(1), relay=2, topic="t2"),
        finished("c02", CommandStatus.TIMEOUT, **at(2), hardware_id="hw2", source="service"),
        finished("c03", CommandStatus.COMPLETED, **at(3), relay=None, command="unlock"),
        finished("c04", CommandStatus.COMPLETED, **at(4), relay=None, command="reboot"),
        finished("c05", CommandStatus.FAILED, **at(5), hardware_id="hw2", relay=2),
        make_record("c06", **at(6), source="websocket"),
        finished("d07", CommandStatus.COMPLETED, **at(7)),
    ]
    for record in records:
        store.insert(record)
    return records


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (CommandQuery(), ["d07", "c06", "c05", "c04", "c03", "c02", "c01", "c00"]),
        (CommandQuery(hardware_id="hw2"), ["c05", "c02"]),
        (CommandQuery(relay=2), ["c05", "c01"]),
        (CommandQuery(hardware_id="hw1", relay=2), ["c01"]),
        (CommandQuery(target="lock"), ["c03"]),
        (CommandQuery(target="reboot"), ["c04"]),
        (CommandQuery(status=CommandStatus.FAILED), ["c05", "c01"]),
        (CommandQuery(status=CommandStatus.PENDING), ["c06"]),
        (CommandQuery(source="service"), ["c02"]),
        (
            CommandQuery(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=4)),
            ["c04", "c03", "c02"],
        ),
        (CommandQuery(id_prefix="d"), ["d07"]),
        (CommandQuery(id_prefix="c0"), ["c06", "c05", "c04", "c03", "c02", "c01", "c00"]),
        (CommandQuery(id_prefix="C0"), []),
        (CommandQuery(hardware_id="hw2", status=CommandStatus.TIMEOUT), ["c02"]),
    ],
)
def test_each_filter_selects_its_records(
    store: CommandStore, query: CommandQuery, expected: list[str]
) -> None:
    records = fill(store)
    page = store.list_page(query, None, 50)
    assert ids(page.records) == expected
    assert page.next is None
    # The in-memory test (live updates) means the same as the SQL condition.
    assert [r.command_id for r in reversed(records) if query.matches(r)] == expected


def test_pages_follow_each_other_without_gaps_or_repeats(store: CommandStore) -> None:
    fill(store)
    seen: list[str] = []
    cursor: Cursor | None = None
    while True:
        page = store.list_page(CommandQuery(), cursor, 3)
        seen += ids(page.records)
        if page.next is None:
            break
        assert len(page.records) == 3
        cursor = Cursor.decode(page.next.encode())
    assert seen == ["d07", "c06", "c05", "c04", "c03", "c02", "c01", "c00"]


def test_a_page_is_not_shifted_by_newer_records(store: CommandStore) -> None:
    fill(store)
    first = store.list_page(CommandQuery(), None, 4)
    store.insert(finished("new", CommandStatus.COMPLETED, **at(100)))
    assert first.next is not None
    second = store.list_page(CommandQuery(), first.next, 4)
    assert ids(second.records) == ["c03", "c02", "c01", "c00"]


def test_records_created_at_the_same_instant_page_in_insertion_order(
    store: CommandStore,
) -> None:
    for index in range(5):
        store.insert(make_record(f"same{index}"))
    first = store.list_page(CommandQuery(), None, 2)
    assert first.next is not None
    rest = store.list_page(CommandQuery(), first.next, 10)
    assert ids(first.records) + ids(rest.records) == [f"same{i}" for i in (4, 3, 2, 1, 0)]


def test_a_page_shows_updates_kept_in_memory(store: CommandStore) -> None:
    record = make_record("kept")
    store.insert(record)
    record.transition(CommandStatus.PUBLISHED, T0)
    store._pending["kept"] = store_module.record_row(record)
    assert store.list_page(CommandQuery(), None, 5).records[0].status is CommandStatus.PUBLISHED


@pytest.mark.parametrize(
    "query",
    [
        CommandQuery(),
        CommandQuery(hardware_id="hw1"),
        CommandQuery(status=CommandStatus.FAILED),
        CommandQuery(since=T0),
        CommandQuery(id_prefix="c0"),
    ],
    ids=["all", "device", "status", "time", "id"],
)
def test_pages_are_read_through_an_index(store: CommandStore, query: CommandQuery) -> None:
    """Every filter but source and relay alone narrows an index: a page stays cheap at 1M."""
    where, args = query.where()
    for cursor in ("", " AND (created_at, rowid) < (?, ?)"):
        plan = " | ".join(
            str(row[3])
            for row in store.db.execute(
                f"EXPLAIN QUERY PLAN SELECT * FROM commands WHERE {where}{cursor}"
                " ORDER BY created_at DESC, rowid DESC LIMIT 51",
                [*args, *([1.0, 1] if cursor else [])],
            )
        )
        assert "INDEX" in plan, plan
        if query.id_prefix is None:
            assert "TEMP B-TREE" not in plan, plan  # read in order, no sort of the matches


def test_cursor_text_is_checked() -> None:
    assert Cursor.decode(Cursor(1734431400.123456, 42).encode()) == Cursor(1734431400.123456, 42)
    for text in ("", "1~", "~1", "abc~1", "1~-1", "1.0~1;DROP", "1~" + "9" * 20):
        with pytest.raises(InvalidCursorError):
            Cursor.decode(text)


def test_contradictory_filters_are_refused() -> None:
    with pytest.raises(ValueError, match="relay or a target"):
        CommandQuery(relay=1, target="lock")
    with pytest.raises(ValueError, match="target"):
        CommandQuery(target="relay")
    with pytest.raises(ValueError, match="empty"):
        CommandQuery(id_prefix="")


def test_retry_chain_walks_back_and_forward(store: CommandStore) -> None:
    store.insert(finished("a", CommandStatus.TIMEOUT, **at(0)))
    store.insert(finished("b", CommandStatus.FAILED, **at(1), retry_of="a"))
    store.insert(finished("c", CommandStatus.COMPLETED, **at(2), retry_of="b"))
    store.insert(finished("b2", CommandStatus.COMPLETED, **at(3), retry_of="a"))
    store.insert(finished("other", CommandStatus.FAILED, **at(4)))
    for command_id in ("a", "b", "c", "b2"):
        assert ids(store.retry_chain(command_id)) == ["a", "b", "c", "b2"]
    assert ids(store.retry_chain("other")) == ["other"]
    assert store.retry_chain("missing") == []
    # The original deleted: its retries still find each other through its id.
    store.delete("a")
    assert ids(store.retry_chain("c")) == ["b", "c", "b2"]


def test_schema_1_store_is_migrated_keeping_its_records(tmp_path: Path) -> None:
    """A store written by the previous release (schema 1) gains the page indexes on open."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for statement in store_module._MIGRATIONS[1]:
        db.execute(statement)
    row = store_module.record_row(finished("kept", CommandStatus.FAILED))[:-2]  # schema 1 columns
    db.execute(f"INSERT INTO commands VALUES ({', '.join('?' * len(row))})", row)
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()

    store = CommandStore(path)
    store.open()
    try:
        assert store.schema_version == store_module.SCHEMA_VERSION
        indexes = {
            row[0] for row in store.db.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
        assert {"ix_commands_status_created", "ix_commands_retry_of"} <= indexes
        page = store.list_page(CommandQuery(status=CommandStatus.FAILED), None, 5)
        assert ids(page.records) == ["kept"]
    finally:
        store.close()

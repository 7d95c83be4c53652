"""Reliability: store faults and restarts, with HA's real MQTT, a real broker and simulated devices.

- a damaged ``iotee.db`` at start: the hub loads, the file is moved aside (kept) and a repair
  issue says where it went;
- a database locked by another program and a full disk: accepted commands still complete (in
  memory), a new command is refused before anything is published, one repair issue and one log
  line report it, and once the fault clears the stored history catches up: no record is lost;
- HA restarted on the same config directory: open commands are recovered with their original
  deadlines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from datetime import timedelta
import json
import logging
from pathlib import Path
import sqlite3
import time
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.const import CONF_COMMAND_TIMEOUT, DOMAIN, STORE_FILENAME
from custom_components.iotee.core import store as store_module
from custom_components.iotee.core.model import CommandRecord, CommandStatus, utcnow
from custom_components.iotee.core.store import AsyncCommandStore
from custom_components.iotee.engine import persistence as engine_module
from simulator import Behaviour, SimulatedDevice

from .broker import Mosquitto, PahoPeer
from .conftest import wait_for
from .core.test_store_faults import DISK_FULL, FaultyConnection
from .helpers import (
    LOCK_ID,
    TASMOTA_ID,
    WLTE_ID,
    default_simulators,
    engine_of,
    engine_subscribed,
    running,
    settle,
    setup_hub,
    stop_hub,
)

ISSUE_CORRUPT = "store_corrupt"
ISSUE_WRITE = "store_write_failed"
FAULT_LOG = "Cannot write the command store"
DEADLINE_SLACK = 0.5


@pytest.fixture
def fast_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short busy waits and a fast retry of kept writes, so fault tests take tenths of seconds."""
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", 0.1)
    monkeypatch.setattr(store_module, "WRITE_ATTEMPTS", 2)
    monkeypatch.setattr(store_module, "WRITE_BACKOFF", 0.01)
    monkeypatch.setattr(engine_module, "STORE_RETRY_INTERVAL", 0.2)


@pytest.fixture
def devices(mosquitto: Mosquitto) -> Generator[dict[str, SimulatedDevice]]:
    """A lock and a relay controller that answer after 0.3 s (so commands are in flight)."""
    slow = Behaviour(delay=0.3)
    with running(default_simulators(mosquitto, lock=slow, wlte=slow, with_tasmota=False)) as sims:
        yield sims


@pytest.fixture
async def hub(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    devices: dict[str, SimulatedDevice],
    fast_store: None,
) -> MockConfigEntry:
    """The hub, its subscriptions acknowledged and the devices seen online."""
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: 3.0})
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    await wait_for(lambda: all(engine.states[hw].online for hw in devices))
    return entry


def issue(hass: HomeAssistant, issue_id: str) -> ir.IssueEntry | None:
    """Return IoTee's repair issue ``issue_id``."""
    return ir.async_get(hass).async_get_issue(DOMAIN, issue_id)


def on_disk(path: Path) -> dict[str, tuple[str, int]]:
    """Read every record's status and transition count with a separate connection."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT command_id, status, transitions FROM commands").fetchall()
    finally:
        db.close()
    return {
        command_id: (status, len(json.loads(transitions)))
        for command_id, status, transitions in rows
    }


async def read_disk(hass: HomeAssistant) -> dict[str, tuple[str, int]]:
    """``on_disk`` for the hub's database, off the event loop."""
    return await hass.async_add_executor_job(on_disk, Path(hass.config.path(STORE_FILENAME)))


async def relay_service(hass: HomeAssistant, relay: int, action: str = "ON") -> dict[str, Any]:
    """Send a relay command to the WLTE controller through the service action."""
    return await hass.services.async_call(
        DOMAIN,
        "relay_command",
        {"device": WLTE_ID, "relay": relay, "action": action},
        blocking=True,
        return_response=True,
    )


async def accepted_commands(hass: HomeAssistant, entry: MockConfigEntry) -> list[CommandRecord]:
    """Send two commands, wait until they are published and stored."""
    engine = engine_of(entry)
    records = [
        await engine.async_submit(WLTE_ID, "ON", relay=1, source="test"),
        await engine.async_submit(LOCK_ID, "unlock", source="test"),
    ]
    assert all(r.status is CommandStatus.PUBLISHED for r in records)
    await settle(hass)
    assert {cid: status for cid, (status, _) in (await read_disk(hass)).items()} == {
        r.command_id: "published" for r in records
    }
    return records


async def assert_refused_and_not_published(
    hass: HomeAssistant, entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """A new command is refused with the store's error; nothing reaches the device."""
    await hass.async_add_executor_job(peer.subscribe, f"wlte/{WLTE_ID}/relay/3/set")
    before = {r.command_id for r in await engine_of(entry).async_list(None)}
    with pytest.raises(HomeAssistantError) as raised:
        await relay_service(hass, 3)
    assert raised.value.translation_key == "store_error"
    with pytest.raises(TimeoutError):
        await hass.async_add_executor_job(peer.expect, f"wlte/{WLTE_ID}/relay/3/set", 0.5)
    assert not [r for r in engine_of(entry).open_commands() if r.relay == 3]
    assert {r.command_id for r in await engine_of(entry).async_list(None)} == before


async def assert_history_converged(
    hass: HomeAssistant, entry: MockConfigEntry, records: list[CommandRecord]
) -> None:
    """Every accepted command is on disk exactly as the engine has it."""
    store: AsyncCommandStore = entry.runtime_data.store
    assert store.pending_writes == 0
    disk = await read_disk(hass)
    for record in records:
        assert disk[record.command_id] == (record.status.value, len(record.transitions))
        assert await store.get(record.command_id) == record


def fault_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Return the error lines IoTee logged about the failing store."""
    return [r for r in caplog.records if FAULT_LOG in r.getMessage()]


# ---- a damaged file at start ----------------------------------------------------------------


async def test_corrupt_database_at_start_is_moved_aside(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    devices: dict[str, SimulatedDevice],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Garbage in iotee.db: the hub loads on a fresh store; the old file is kept and reported."""
    db_file = Path(hass.config.path(STORE_FILENAME))
    garbage = b"this is not a database, just bytes a failing SD card left behind\n" * 200
    await hass.async_add_executor_job(db_file.write_bytes, garbage)

    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: 3.0})
    assert entry.state is ConfigEntryState.LOADED

    found = issue(hass, ISSUE_CORRUPT)
    assert found is not None
    assert found.severity is ir.IssueSeverity.WARNING
    assert found.translation_key == ISSUE_CORRUPT
    placeholders = found.translation_placeholders or {}
    assert placeholders["path"] == str(db_file)
    assert "not a database" in placeholders["error"]
    moved = Path(placeholders["moved_to"])
    assert moved.parent == db_file.parent
    assert moved.name.startswith("iotee.db.corrupt-")
    assert await hass.async_add_executor_job(moved.read_bytes) == garbage
    damaged_logs = [r for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(damaged_logs) == 1
    assert damaged_logs[0].levelno == logging.WARNING

    # The fresh store records commands as usual.
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    await wait_for(lambda: engine.states[LOCK_ID].online is True)
    record = await engine.async_submit(LOCK_ID, "unlock", source="test")
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.COMPLETED
    await settle(hass)
    assert (await read_disk(hass))[record.command_id][0] == "completed"


# ---- a locked database -----------------------------------------------------------------------


class Locker:
    """Another program's connection that holds the database's write lock (BEGIN EXCLUSIVE)."""

    def __init__(self, path: str) -> None:
        """Connect to ``path``."""
        self.db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)

    def lock(self) -> None:
        """Take the write lock."""
        self.db.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        """Give it back and disconnect."""
        self.db.execute("ROLLBACK")
        self.db.close()


async def test_locked_database(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    peer: PahoPeer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another connection holds the write lock for a while; nothing accepted is lost."""
    engine = engine_of(hub)
    records = await accepted_commands(hass, hub)

    locker = Locker(hass.config.path(STORE_FILENAME))
    await hass.async_add_executor_job(locker.lock)
    try:
        # The devices confirm: the commands complete although their updates cannot be written.
        for record in records:
            final = await engine.async_wait(record.command_id, 5)
            assert final.status is CommandStatus.COMPLETED
        await wait_for(lambda: issue(hass, ISSUE_WRITE) is not None)
        found = issue(hass, ISSUE_WRITE)
        assert found is not None
        assert found.severity is ir.IssueSeverity.ERROR
        assert "locked" in (found.translation_placeholders or {})["error"]
        assert engine.store_fault is not None

        await assert_refused_and_not_published(hass, hub, peer)

        # History during the fault shows the truth, not the stale disk.
        listed = await hass.services.async_call(
            DOMAIN, "get_commands", {}, blocking=True, return_response=True
        )
        assert {c["command_id"]: c["status"] for c in listed["commands"]} == {
            r.command_id: "completed" for r in records
        }
        disk = await read_disk(hass)
        assert {cid: status for cid, (status, _) in disk.items()} == {
            r.command_id: "published" for r in records
        }
        kept = hub.runtime_data.store.pending_writes
    finally:
        await hass.async_add_executor_job(locker.release)

    # The kept updates are written by the periodic retry; the issue goes away.
    released = time.monotonic()
    await wait_for(lambda: issue(hass, ISSUE_WRITE) is None, timeout=5)
    print(  # figures for README's Reliability section
        f"\nlocked: {len(records)} accepted commands completed while locked, {kept} records kept"
        f" in memory, written {time.monotonic() - released:.2f} s after the lock was released"
        f" (retry every {engine_module.STORE_RETRY_INTERVAL} s here), 1 refused, 0 lost"
    )
    assert engine.store_fault is None
    await assert_history_converged(hass, hub, records)
    assert len(fault_logs(caplog)) == 1

    # And commands are stored again as usual.
    response = await relay_service(hass, 3)
    final = await engine.async_wait(response["command_id"], 5)
    assert final.status is CommandStatus.COMPLETED
    await settle(hass)
    await assert_history_converged(hass, hub, [*records, final])


# ---- a full disk -----------------------------------------------------------------------------


async def inject_disk_full(hass: HomeAssistant, entry: MockConfigEntry) -> FaultyConnection:
    """Make every write of the hub's store fail with SQLite's 'database or disk is full'."""
    store: AsyncCommandStore = entry.runtime_data.store
    await settle(hass)
    faulty = FaultyConnection(store.store.db)
    store.store._db = faulty  # type: ignore[assignment]
    faulty.fault = sqlite3.OperationalError(DISK_FULL)
    return faulty


async def test_disk_full(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    peer: PahoPeer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Writes fail with 'database or disk is full'; commands go on; the history catches up."""
    engine = engine_of(hub)
    records = await accepted_commands(hass, hub)
    faulty = await inject_disk_full(hass, hub)

    for record in records:
        final = await engine.async_wait(record.command_id, 5)
        assert final.status is CommandStatus.COMPLETED
    await wait_for(lambda: issue(hass, ISSUE_WRITE) is not None)
    assert DISK_FULL in (issue(hass, ISSUE_WRITE).translation_placeholders or {})["error"]  # type: ignore[union-attr]
    await assert_refused_and_not_published(hass, hub, peer)
    await asyncio.sleep(0.5)  # several periodic retries fail meanwhile
    assert issue(hass, ISSUE_WRITE) is not None
    assert len(fault_logs(caplog)) == 1  # logged once, not per command or per retry

    kept = hub.runtime_data.store.pending_writes
    faulty.fault = None
    cleared = time.monotonic()
    await wait_for(lambda: issue(hass, ISSUE_WRITE) is None, timeout=5)
    print(  # figures for README's Reliability section
        f"\ndisk full: {len(records)} accepted commands completed, {kept} records kept in memory,"
        f" {faulty.writes} write attempts while full, written"
        f" {time.monotonic() - cleared:.2f} s after the disk had room, 1 refused, 0 lost"
    )
    await assert_history_converged(hass, hub, records)
    assert len(await read_disk(hass)) == len(records)  # the refused command left no record


async def test_next_command_writes_kept_updates(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    peer: PahoPeer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kept updates are written with the next accepted command, before any periodic retry."""
    monkeypatch.setattr(engine_module, "STORE_RETRY_INTERVAL", 3600)
    engine = engine_of(hub)
    records = await accepted_commands(hass, hub)
    faulty = await inject_disk_full(hass, hub)
    for record in records:
        assert (await engine.async_wait(record.command_id, 5)).status is CommandStatus.COMPLETED
    # The count is the store thread's; the issue follows on the event loop.
    await wait_for(
        lambda: hub.runtime_data.store.pending_writes == 2 and issue(hass, ISSUE_WRITE) is not None
    )

    faulty.fault = None
    response = await relay_service(hass, 3)
    assert issue(hass, ISSUE_WRITE) is None
    assert engine.store_fault is None
    final = await engine.async_wait(response["command_id"], 5)
    assert final.status is CommandStatus.COMPLETED
    await settle(hass)
    await assert_history_converged(hass, hub, [*records, final])


async def test_refused_command_alone_raises_the_issue_until_a_write_succeeds(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """An insert that fails (nothing kept) reports the fault; unloading clears the issue."""
    faulty = await inject_disk_full(hass, hub)
    await assert_refused_and_not_published(hass, hub, peer)
    assert issue(hass, ISSUE_WRITE) is not None
    assert hub.runtime_data.store.pending_writes == 0
    faulty.fault = None
    assert await hass.config_entries.async_unload(hub.entry_id)
    assert issue(hass, ISSUE_WRITE) is None


async def test_stop_while_disk_full_reports_unwritten_updates(
    hass: HomeAssistant, hub: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """Unloading while writes still fail says how many status changes did not make it."""
    engine = engine_of(hub)
    records = await accepted_commands(hass, hub)
    await inject_disk_full(hass, hub)
    for record in records:
        assert (await engine.async_wait(record.command_id, 5)).status is CommandStatus.COMPLETED
    await wait_for(lambda: hub.runtime_data.store.pending_writes == 2)

    assert await hass.config_entries.async_unload(hub.entry_id)
    lost = [r for r in caplog.records if "could not be stored before" in r.getMessage()]
    assert len(lost) == 1
    assert lost[0].levelno == logging.ERROR
    assert "status of 2 commands" in lost[0].getMessage()
    # A later start finds the records as last written and ends them, as for any restart.
    assert await hass.config_entries.async_setup(hub.entry_id)
    await hass.async_block_till_done()
    assert issue(hass, ISSUE_WRITE) is None
    for record in records:
        stored = await engine_of(hub).async_get(record.command_id)
        assert stored is not None
        assert stored.status in (CommandStatus.PUBLISHED, CommandStatus.TIMEOUT)


# ---- HA restart on the same config directory -------------------------------------------------


async def test_restart_recovers_open_commands_with_their_deadlines(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """Unload and set up again on the same iotee.db while commands are open.

    A deadline that passed while stopped ends ``timeout``; open ones are tracked again and keep
    their original deadline (not a fresh one); one stored but never published is ``failed``
    (``interrupted``); a confirmation after the restart completes its command.
    """
    timeout = 3.0
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: timeout})
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)

    expired = await engine.async_submit(WLTE_ID, "ON", relay=1, source="test")
    await asyncio.sleep(1.5)
    kept = await engine.async_submit(WLTE_ID, "ON", relay=2, source="test")
    confirmed = await engine.async_submit(LOCK_ID, "lock", source="test")
    now = utcnow()
    never_sent = CommandRecord(
        command_id="never-published",
        hardware_id=TASMOTA_ID,
        device_type="tasmota",
        command="ON",
        relay=1,
        topic="cmnd/garden/POWER1",
        payload="ON",
        created_at=now,
        deadline=now + timedelta(seconds=timeout),
        source="test",
    )
    await entry.runtime_data.store.insert(never_sent)  # stored, then HA stopped
    await settle(hass)
    await stop_hub(hass, entry)
    stopped_at = utcnow()

    # HA is down until the first deadline has passed.
    wait = (expired.deadline - utcnow()).total_seconds() + 0.2
    await asyncio.sleep(max(wait, 0))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    restarted_at = utcnow()
    assert restarted_at < kept.deadline  # the test itself ran in time
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)

    ended = await engine.async_get(expired.command_id)
    assert ended is not None
    assert ended.status is CommandStatus.TIMEOUT
    assert "deadline passed" in (ended.error or "")
    interrupted = await engine.async_get(never_sent.command_id)
    assert interrupted is not None
    assert (interrupted.status, interrupted.error_code) == (CommandStatus.FAILED, "interrupted")
    for record in (kept, confirmed):
        live = engine.open_command(record.command_id)
        assert live is not None
        assert live.status is CommandStatus.PUBLISHED
        assert live.deadline == record.deadline

    await hass.async_add_executor_job(peer.publish, f"iotee/dev/{LOCK_ID}/rls/state", "1", False)
    done = await engine.async_wait(confirmed.command_id, 5)
    assert done.status is CommandStatus.COMPLETED

    late = await engine.async_wait(kept.command_id, timeout + 1)
    assert late.status is CommandStatus.TIMEOUT
    overrun = (late.transitions[-1].at - kept.deadline).total_seconds()
    assert -0.05 <= overrun <= DEADLINE_SLACK  # its own deadline, not restart + timeout
    print(  # figures for README's Reliability section
        f"\nrestart: down {(restarted_at - stopped_at).total_seconds():.1f} s;"
        f" recovered command timed out {overrun * 1000:+.0f} ms from its original deadline"
    )
    await settle(hass)
    store: AsyncCommandStore = entry.runtime_data.store
    assert await store.open_commands() == []
    for record_id in (expired, kept, confirmed, never_sent):
        stored = await store.get(record_id.command_id)
        assert stored is not None
        assert stored.status.is_terminal

"""The command engine end to end: HA's real MQTT client, a real mosquitto, a paho 'device'."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from unittest.mock import patch

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.iotee.const import CONF_COMMAND_TIMEOUT, EVENT_COMMAND_STATUS
from custom_components.iotee.core.model import CommandStatus
from custom_components.iotee.engine import CommandEngine

from .broker import Message, Mosquitto, PahoPeer
from .conftest import wait_for
from .helpers import (
    LOCK_ID,
    TASMOTA_ID,
    WLTE_ID,
    engine_of,
    engine_subscribed,
    settle,
    setup_hub,
    stop_hub,
)


@pytest.fixture
async def hub(hass: HomeAssistant, mqtt_entry: MockConfigEntry) -> MockConfigEntry:
    """The hub with the three default devices, subscriptions acknowledged."""
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: 2.0})
    await engine_subscribed(hass, entry)
    return entry


async def peer_call(hass: HomeAssistant, func: Any, *args: Any) -> Any:
    """Run a blocking paho call off the event loop."""
    return await hass.async_add_executor_job(func, *args)


async def test_lock_completes_when_device_reports_state(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """lock publishes 1 on rls; the device's state 1 completes it; each step is an event."""
    events = async_capture_events(hass, EVENT_COMMAND_STATUS)
    await peer_call(hass, peer.subscribe, f"iotee/dev/{LOCK_ID}/rls")
    engine = engine_of(hub)

    record = await engine.async_submit(LOCK_ID, "lock", source="test")
    assert record.status is CommandStatus.PUBLISHED
    assert record.topic == f"iotee/dev/{LOCK_ID}/rls"
    sent = await peer_call(hass, peer.expect, f"iotee/dev/{LOCK_ID}/rls")
    assert (sent.payload, sent.retain) == ("1", False)

    await peer_call(hass, peer.publish, f"iotee/dev/{LOCK_ID}/rls/state", "1", True)
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.COMPLETED
    assert [t.status for t in final.transitions] == [
        CommandStatus.PENDING,
        CommandStatus.PUBLISHED,
        CommandStatus.COMPLETED,
    ]
    assert [(e.data["old_status"], e.data["new_status"]) for e in events] == [
        ("pending", "published"),
        ("published", "completed"),
    ]
    assert events[-1].data["command_id"] == record.command_id
    assert events[-1].data["device_id"] == final.device_id is not None

    await settle(hass)
    stored = await hub.runtime_data.store.get(record.command_id)
    assert stored.status is CommandStatus.COMPLETED
    assert engine.states[LOCK_ID].locked is True


async def test_wrong_state_does_not_complete_and_times_out(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """A state that is not the target leaves the command open until its deadline."""
    engine = engine_of(hub)
    record = await engine.async_submit(LOCK_ID, "unlock", source="test")
    await peer_call(hass, peer.publish, f"iotee/dev/{LOCK_ID}/rls/state", "1")
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.TIMEOUT
    assert final.error_code == "timeout"


async def test_retained_state_never_confirms(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """A retained state delivered at subscribe time does not confirm a later command."""
    await peer_call(hass, peer.publish, f"iotee/dev/{LOCK_ID}/rls/state", "1", True)
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: 1.0})
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    await wait_for(lambda: engine.states[LOCK_ID].locked is True)

    record = await engine.async_submit(LOCK_ID, "lock", source="test")
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.TIMEOUT


async def test_late_confirmation_is_recorded_status_stays_timeout(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """A confirmation after the deadline is kept on the record; the status stays timeout."""
    engine = engine_of(hub)
    record = await engine.async_submit(LOCK_ID, "lock", source="test")
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.TIMEOUT

    await peer_call(hass, peer.publish, f"iotee/dev/{LOCK_ID}/rls/state", "1")
    await wait_for(lambda: final.late_confirmation is not None)
    assert final.status is CommandStatus.TIMEOUT
    assert "1" in final.late_confirmation
    await settle(hass)
    stored = await hub.runtime_data.store.get(record.command_id)
    assert stored.status is CommandStatus.TIMEOUT
    assert stored.late_confirmation == final.late_confirmation


async def test_offline_device_gets_no_publish(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """A device that said offline fails at once; nothing is published to it."""
    engine = engine_of(hub)
    await peer_call(hass, peer.subscribe, f"iotee/dev/{LOCK_ID}/rls")
    await peer_call(hass, peer.publish, f"iotee/dev/{LOCK_ID}/status", "offline", True)
    await wait_for(lambda: engine.states[LOCK_ID].online is False)

    record = await engine.async_submit(LOCK_ID, "lock", source="test")
    assert record.status is CommandStatus.FAILED
    assert record.error_code == "device_offline"
    assert CommandStatus.PUBLISHED not in [t.status for t in record.transitions]
    with pytest.raises(TimeoutError):
        await peer_call(hass, peer.expect, f"iotee/dev/{LOCK_ID}/rls", 0.5)


async def test_open_commands_fail_when_device_goes_offline(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """An open command of a device that goes offline fails as device_offline."""
    engine = engine_of(hub)
    await peer_call(hass, peer.publish, f"iotee/dev/{LOCK_ID}/status", "online", True)
    await wait_for(lambda: engine.states[LOCK_ID].online is True)
    record = await engine.async_submit(LOCK_ID, "unlock", source="test")
    await peer_call(hass, peer.publish, f"iotee/dev/{LOCK_ID}/status", "offline", True)
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.FAILED
    assert final.error_code == "device_offline"


async def test_status_changes_of_one_message_are_one_store_call(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """The WLTE controller goes offline with a command open on each of its 4 relays: the 4
    failures are one call to the store and one transaction, and each is stored."""
    engine = engine_of(hub)
    store = hub.runtime_data.store
    await peer_call(hass, peer.publish, f"wlte/{WLTE_ID}/status", "online", True)
    await wait_for(lambda: engine.states[WLTE_ID].online is True)
    records = [
        await engine.async_submit(WLTE_ID, "ON", relay=relay, source="test")
        for relay in range(1, 5)
    ]
    assert [r.status for r in records] == [CommandStatus.PUBLISHED] * 4
    await settle(hass)
    calls: list[list[str]] = []
    real_update_rows = store.store.update_rows

    def counted(rows: Any) -> None:
        calls.append([str(row[0]) for row in rows])
        real_update_rows(rows)

    commits = store.store._commits
    with patch.object(store.store, "update_rows", counted):
        await peer_call(hass, peer.publish, f"wlte/{WLTE_ID}/status", "offline", True)
        await wait_for(lambda: all(r.status is CommandStatus.FAILED for r in records))
        await settle(hass)
    assert calls == [[r.command_id for r in records]]
    assert store.store._commits == commits + 1
    for record in records:
        stored = await store.get(record.command_id)
        assert (stored.status, stored.error_code) == (CommandStatus.FAILED, "device_offline")


async def test_reboot_acknowledged_by_offline_completed_by_online(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """Reboot: going offline acknowledges it (not a failure); a fresh online completes it."""
    engine = engine_of(hub)
    await peer_call(hass, peer.subscribe, f"iotee/dev/{LOCK_ID}/rbt")
    record = await engine.async_submit(LOCK_ID, "reboot", source="test")
    assert (await peer_call(hass, peer.expect, f"iotee/dev/{LOCK_ID}/rbt")).payload == "1"
    await peer_call(hass, peer.publish, f"iotee/dev/{LOCK_ID}/status", "offline", True)
    await wait_for(lambda: record.status is CommandStatus.ACKNOWLEDGED)
    await peer_call(hass, peer.publish, f"iotee/dev/{LOCK_ID}/status", "online", True)
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.COMPLETED


async def test_broker_down_at_publish_fails_and_keeps_record(
    hass: HomeAssistant, hub: MockConfigEntry, mosquitto: Mosquitto
) -> None:
    """With the broker gone the command fails as publish_failed; the record is stored."""
    engine = engine_of(hub)
    await hass.async_add_executor_job(mosquitto.stop)
    await wait_for(lambda: not mqtt.is_connected(hass))

    record = await engine.async_submit(WLTE_ID, "ON", relay=1, source="test")
    assert record.status is CommandStatus.FAILED
    assert record.error_code == "publish_failed"
    await settle(hass)
    stored = await hub.runtime_data.store.get(record.command_id)
    assert stored.status is CommandStatus.FAILED
    await hass.async_add_executor_job(mosquitto.start)
    await wait_for(lambda: mqtt.is_connected(hass), timeout=30)


async def _wlte_answer(
    hass: HomeAssistant, peer: PahoPeer, relay: int, answer: dict[str, Any]
) -> None:
    await peer_call(hass, peer.publish, f"wlte/{WLTE_ID}/relay/{relay}/result", json.dumps(answer))


async def test_wlte_ack_then_success(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """WLTE: JSON with the command id goes out; ACK acknowledges, SUCCESS completes."""
    engine = engine_of(hub)
    await peer_call(hass, peer.subscribe, f"wlte/{WLTE_ID}/relay/2/set")
    record = await engine.async_submit(WLTE_ID, "jog", relay=2, source="test")
    sent = await peer_call(hass, peer.expect, f"wlte/{WLTE_ID}/relay/2/set")
    assert json.loads(sent.payload) == {"id": record.command_id, "action": "JOG"}

    await _wlte_answer(hass, peer, 2, {"id": "someone-else", "status": "SUCCESS"})
    await _wlte_answer(hass, peer, 2, {"id": record.command_id, "status": "ACK"})
    await wait_for(lambda: record.status is CommandStatus.ACKNOWLEDGED)
    await _wlte_answer(hass, peer, 2, {"id": record.command_id, "status": "SUCCESS"})
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.COMPLETED
    assert final.status.wlte == "SUCCESS"


@pytest.mark.parametrize(
    ("answer", "error_code", "error"),
    [
        ({"status": "REJECTED", "reason": "relay locked out"}, "rejected", "relay locked out"),
        ({"status": "FAILED", "reason": "coil open"}, "device_failed", "coil open"),
    ],
)
async def test_wlte_rejected_or_failed(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    peer: PahoPeer,
    answer: dict[str, Any],
    error_code: str,
    error: str,
) -> None:
    """REJECTED and FAILED end the command failed with the device's reason kept."""
    engine = engine_of(hub)
    record = await engine.async_submit(WLTE_ID, "ON", relay=1, source="test")
    await _wlte_answer(hass, peer, 1, {"id": record.command_id} | answer)
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.FAILED
    assert (final.error_code, final.error) == (error_code, error)


async def test_wlte_relay_lock_maps_to_relay_actions(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """A relay configured as a lock: unlock is relay ON, lock is relay OFF."""
    engine = engine_of(hub)
    await peer_call(hass, peer.subscribe, f"wlte/{WLTE_ID}/relay/4/set")
    record = await engine.async_submit(WLTE_ID, "unlock", relay=4, source="test")
    sent = await peer_call(hass, peer.expect, f"wlte/{WLTE_ID}/relay/4/set")
    assert json.loads(sent.payload)["action"] == "ON"
    assert record.command == "ON"


async def next_command(hass: HomeAssistant, peer: PahoPeer, topic: str) -> Message:
    """Return the next command on ``topic``: the state request of the start (an empty POWER,
    sent once subscribed) may reach a peer that subscribed right after it."""
    while not (message := await peer_call(hass, peer.expect, topic)).payload:
        pass
    return message


async def test_tasmota_on_and_jog(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """Tasmota: POWER2 ON confirmed by stat ON; JOG is ON then the device's OFF."""
    engine = engine_of(hub)
    await peer_call(hass, peer.subscribe, "cmnd/garden/POWER2")
    record = await engine.async_submit(TASMOTA_ID, "ON", relay=2, source="test")
    assert (await next_command(hass, peer, "cmnd/garden/POWER2")).payload == "ON"
    await peer_call(hass, peer.publish, "stat/garden/POWER2", "ON")
    assert (await engine.async_wait(record.command_id, 5)).status is CommandStatus.COMPLETED
    await wait_for(lambda: engine.states[TASMOTA_ID].relays.get(2) is True)

    jog = await engine.async_submit(TASMOTA_ID, "JOG", relay=2, source="test")
    assert (await next_command(hass, peer, "cmnd/garden/POWER2")).payload == "ON"
    await peer_call(hass, peer.publish, "stat/garden/POWER2", "ON")
    await wait_for(lambda: jog.status is CommandStatus.ACKNOWLEDGED)
    await peer_call(hass, peer.publish, "stat/garden/POWER2", "OFF")
    assert (await engine.async_wait(jog.command_id, 5)).status is CommandStatus.COMPLETED


async def test_tasmota_offline_from_lwt(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """Tasmota's LWT Offline makes the device offline: commands fail at once."""
    engine = engine_of(hub)
    await peer_call(hass, peer.publish, "tele/garden/LWT", "Offline", True)
    await wait_for(lambda: engine.states[TASMOTA_ID].online is False)
    record = await engine.async_submit(TASMOTA_ID, "OFF", relay=1, source="test")
    assert record.error_code == "device_offline"


async def test_second_command_supersedes_the_first(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    """A new command to the same target ends the open one as superseded."""
    engine = engine_of(hub)
    first = await engine.async_submit(LOCK_ID, "lock", source="test")
    second = await engine.async_submit(LOCK_ID, "unlock", source="test")
    assert first.status is CommandStatus.FAILED
    assert first.error_code == "superseded"
    assert second.command_id in (first.error or "")
    assert second.status is CommandStatus.PUBLISHED
    other_relay = await engine.async_submit(WLTE_ID, "ON", relay=1, source="test")
    third_relay = await engine.async_submit(WLTE_ID, "ON", relay=3, source="test")
    assert other_relay.status is third_relay.status is CommandStatus.PUBLISHED


async def test_restart_recovers_open_commands(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer
) -> None:
    """After a reload, an open command within its deadline is tracked again and completes."""
    engine = engine_of(hub)
    record = await engine.async_submit(LOCK_ID, "lock", source="test")
    await settle(hass)
    assert await hass.config_entries.async_reload(hub.entry_id)
    await hass.async_block_till_done()
    await engine_subscribed(hass, hub)
    engine = engine_of(hub)
    recovered = engine.open_command(record.command_id)
    assert recovered is not None
    assert recovered.status is CommandStatus.PUBLISHED
    await peer_call(hass, peer.publish, f"iotee/dev/{LOCK_ID}/rls/state", "1")
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.COMPLETED


async def test_restart_after_deadline_times_out(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """An open command whose deadline passed while HA was stopped becomes timeout."""
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: 0.3})
    engine = engine_of(entry)
    record = await engine.async_submit(LOCK_ID, "lock", source="test")
    await settle(hass)
    await stop_hub(hass, entry)
    await settle(hass, 0.5)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    stored = await entry.runtime_data.engine.async_get(record.command_id)
    assert stored.status is CommandStatus.TIMEOUT
    assert "deadline passed" in stored.error


async def test_answered_command_is_handed_over_after_the_caller_has_its_answer(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    """``await_publish=False`` (the Commands API's send): the checks and the take-over of the
    target happen before the call returns, the hand-over to HA's MQTT client only in the next
    loop iteration, so the caller's answer is written before the publish's work is done."""
    engine = engine_of(hub)
    published: list[str] = []

    async def record_publish(hass: HomeAssistant, topic: str, payload: str, **kwargs: Any) -> None:
        published.append(payload)

    with patch.object(mqtt, "async_publish", record_publish):
        first = await engine.async_submit(LOCK_ID, "lock", source="test", await_publish=False)
        assert (published, first.status, first.attempts) == ([], CommandStatus.PENDING, [])
        await asyncio.sleep(0)
        assert (published, len(first.attempts)) == ([first.payload], 1)
        assert first.status is CommandStatus.PUBLISHED
        # The next command takes the target over before its own call returns.
        second = await engine.async_submit(LOCK_ID, "unlock", source="test", await_publish=False)
        assert (first.status, first.error_code) == (CommandStatus.FAILED, "superseded")
        assert (published, second.status) == ([first.payload], CommandStatus.PENDING)


async def test_stop_while_an_answered_publish_waits_leaves_it_for_recovery(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """A command answered before its publish finished (``await_publish=False``) whose publish
    still waits when Home Assistant stops: the stop does not wait for it, the record stays as
    stored, and the next start ends it (``interrupted``) instead of leaving it open."""
    entry = await setup_hub(hass)
    engine = engine_of(entry)
    never = asyncio.Event()

    async def waits_forever(*args: Any, **kwargs: Any) -> None:
        await never.wait()

    with patch.object(mqtt, "async_publish", waits_forever):
        record = await engine.async_submit(LOCK_ID, "lock", source="test", await_publish=False)
        await asyncio.sleep(0.05)
        assert record.status is CommandStatus.PENDING
        await stop_hub(hass, entry)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    stored = await entry.runtime_data.engine.async_get(record.command_id)
    assert (stored.status, stored.error_code) == (CommandStatus.FAILED, "interrupted")


async def test_retry_creates_linked_command(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    """Only a failed or timed-out command can be retried; the new one links to it."""
    from custom_components.iotee.core.errors import NotRetryableError, UnknownCommandError

    engine = engine_of(hub)
    first = await engine.async_submit(LOCK_ID, "lock", source="test")
    with pytest.raises(NotRetryableError):
        await engine.async_retry(first.command_id, source="test")
    await engine.async_submit(LOCK_ID, "unlock", source="test")  # supersedes -> failed
    retry = await engine.async_retry(first.command_id, source="test")
    assert retry.retry_of == first.command_id
    assert retry.command == "lock"
    assert retry.command_id != first.command_id
    with pytest.raises(UnknownCommandError):
        await engine.async_retry("nope", source="test")


async def test_history_queries_and_purge(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    """History newest first per device and overall; purge deletes finished records."""
    engine = engine_of(hub)
    a = await engine.async_submit(WLTE_ID, "ON", relay=1, source="test")
    b = await engine.async_submit(WLTE_ID, "OFF", relay=1, source="test")
    c = await engine.async_submit(LOCK_ID, "lock", source="test")
    await settle(hass)
    assert [r.command_id for r in await engine.async_list(WLTE_ID)] == [b.command_id, a.command_id]
    device_id = engine.device(WLTE_ID).device_id
    assert [r.command_id for r in await engine.async_list(device_id)] == [
        b.command_id,
        a.command_id,
    ]
    assert [r.command_id for r in await engine.async_list(None, limit=2)] == [
        c.command_id,
        b.command_id,
    ]
    cutoff, deleted = await engine.async_purge(0)
    assert cutoff >= c.created_at
    assert deleted == 1  # only the superseded (finished) one; open commands stay
    assert await engine.async_get(a.command_id) is None
    assert await engine.async_delete(c.command_id) is True
    assert await engine.async_get(c.command_id) is None
    assert await engine.async_delete(c.command_id) is False


async def test_availability_change_is_logged_once(
    hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Going offline is logged once per change, not once per availability message."""
    engine = engine_of(hub)
    for _ in range(3):
        await peer_call(hass, peer.publish, f"iotee/dev/{LOCK_ID}/status", "offline")
    await wait_for(lambda: engine.states[LOCK_ID].online is False)
    await settle(hass, 0.2)
    await peer_call(hass, peer.publish, f"iotee/dev/{LOCK_ID}/status", "online")
    await wait_for(lambda: engine.states[LOCK_ID].online is True)
    assert caplog.text.count(f"Front door ({LOCK_ID}) is offline") == 1
    assert caplog.text.count(f"Front door ({LOCK_ID}) is online") == 1


async def test_expired_late_window_is_forgotten_on_quiet_topics(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    """Timed-out commands are kept for late confirmations only for the window, even on
    topics that never see another message (no growth over a long uptime)."""
    from datetime import timedelta
    from unittest.mock import patch

    from custom_components.iotee import engine as engine_module
    from custom_components.iotee.engine import tracking

    engine = engine_of(hub)
    first = await engine.async_submit(LOCK_ID, "lock", source="test")
    await engine.async_wait(first.command_id, 5)
    assert f"iotee/dev/{LOCK_ID}/rls/state" in engine._late
    later = engine_module.utcnow() + engine_module.LATE_WINDOW + timedelta(seconds=1)
    with (
        patch.object(engine_module, "utcnow", return_value=later),
        patch.object(tracking, "utcnow", return_value=later),
    ):
        second = await engine.async_submit(WLTE_ID, "ON", relay=1, source="test")
        tracked = engine._open[second.command_id]
        tracked.timer.cancel()  # run its deadline now, as the timer would
        engine._on_deadline(tracked)
    assert f"iotee/dev/{LOCK_ID}/rls/state" not in engine._late
    assert f"wlte/{WLTE_ID}/relay/1/result" in engine._late


# ---- waiting for the subscriptions after a (re)connect ------------------------------------------
# The gate is closed by hand here (as a reconnect closes it) to reach each way out of the wait.


@pytest.fixture
async def gated(hass: HomeAssistant, hub: MockConfigEntry, peer: PahoPeer) -> CommandEngine:
    """The hub's engine, the peer listening to the lock's commands, the gate closed."""
    engine = engine_of(hub)
    await peer_call(hass, peer.subscribe, f"iotee/dev/{LOCK_ID}/rls")
    await wait_for(engine._subscribed.is_set)  # opened by the engine's own start first
    engine._subscribed.clear()
    return engine


async def held(hass: HomeAssistant, engine: CommandEngine, command: str) -> asyncio.Task[Any]:
    """Submit ``command`` to the lock in a task; return the task while the gate holds it."""
    task = hass.async_create_task(engine.async_submit(LOCK_ID, command, source="test"))
    await asyncio.sleep(0.1)  # not settle: it would wait for the held task
    assert not task.done()
    return task


async def test_held_command_is_published_after_half_its_time(
    hass: HomeAssistant, gated: CommandEngine, peer: PahoPeer
) -> None:
    """Subscriptions never acknowledged: the command goes out anyway, half its time left."""
    record = await gated.async_submit(LOCK_ID, "lock", source="test")
    assert record.status is CommandStatus.PUBLISHED
    published = record.transitions[-1].at
    assert (published - record.created_at).total_seconds() == pytest.approx(1.0, abs=0.2)
    assert (await peer_call(hass, peer.expect, f"iotee/dev/{LOCK_ID}/rls")).payload == "1"
    # The gate stays open until the next reconnect: the next command is not held.
    record = await gated.async_submit(LOCK_ID, "unlock", source="test")
    assert (record.transitions[-1].at - record.created_at).total_seconds() < 0.2


async def test_held_command_superseded_is_never_published(
    hass: HomeAssistant, gated: CommandEngine, peer: PahoPeer
) -> None:
    """A newer command to the same lock while both wait: only the newer one goes out."""
    first = await held(hass, gated, "lock")
    second = await held(hass, gated, "unlock")
    gated._subscribed.set()
    assert (await first).error_code == "superseded"
    assert (await second).status is CommandStatus.PUBLISHED
    assert (await peer_call(hass, peer.expect, f"iotee/dev/{LOCK_ID}/rls")).payload == "0"
    await settle(hass, 0.2)
    assert peer.messages.empty()


async def test_held_command_fails_when_the_connection_drops_meanwhile(
    hass: HomeAssistant, gated: CommandEngine, peer: PahoPeer
) -> None:
    """Disconnected again while waiting: failed/publish_failed, nothing sent."""
    task = await held(hass, gated, "lock")
    with patch("custom_components.iotee.engine.mqtt.is_connected", return_value=False):
        gated._subscribed.set()
        record = await task
    assert (record.status, record.error_code) == (CommandStatus.FAILED, "publish_failed")
    await settle(hass, 0.2)
    assert peer.messages.empty()

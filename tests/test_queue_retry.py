"""Commands for offline devices wait for them; commands a device misses are sent again.

Real broker, HA's real MQTT client, simulated devices (``simulator``) and a paho peer watching
the command topics: what the device is sent is asserted on the wire, not on the engine.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import ServiceValidationError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.iotee.const import CONF_COMMAND_TIMEOUT, DOMAIN, EVENT_COMMAND_STATUS
from custom_components.iotee.core.model import CommandStatus, ErrorCode
from custom_components.iotee.outcomes import EVENT_COMMAND_OUTCOME
from simulator import Behaviour, SimulatedDevice

from .broker import Mosquitto, PahoPeer
from .conftest import wait_for
from .helpers import (
    LOCK_ID,
    WLTE_ID,
    default_simulators,
    device,
    engine_of,
    engine_subscribed,
    running,
    settle,
    setup_hub,
    stop_hub,
)

LOCK = "lock.front_door"
RLS = f"iotee/dev/{LOCK_ID}/rls"
WLTE_COMMANDS = f"wlte/{WLTE_ID}/relay/1/set"


def _devices(**lock_options: Any) -> tuple[Any, ...]:
    lock = device(LOCK_ID, "iotee_device", "Front door")
    lock_data = (
        dict(lock["data"])
        | {
            "queue_minutes": 30,
            "retry_attempts": 3,
            "retry_backoff": 0.2,
        }
        | lock_options
    )
    relay = device(WLTE_ID, "wlte_relay", "Gate controller", relays=2)
    relay_data = dict(relay["data"]) | {"retry_attempts": 3, "retry_backoff": 0.2}
    return ({**lock, "data": lock_data}, {**relay, "data": relay_data})


@pytest.fixture
def sims(mosquitto: Mosquitto) -> Generator[dict[str, SimulatedDevice]]:
    """The lock and the relay, online."""
    fast = Behaviour(pulse=0.1, reboot_delay=0.1)
    sims = default_simulators(mosquitto, lock=fast, wlte=fast, wlte_relays=2, with_tasmota=False)
    with running(sims) as devices:
        yield devices


@pytest.fixture
async def hub(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> MockConfigEntry:
    """The hub: the lock keeps commands 30 minutes and tries 3 times, 1 s per attempt."""
    entry = await setup_hub(hass, _devices(), **{CONF_COMMAND_TIMEOUT: 1.0})
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    await wait_for(lambda: all(engine.states[i].online for i in (LOCK_ID, WLTE_ID)))
    return entry


def _on_wire(peer: PahoPeer, topic: str) -> list[str]:
    """Return the payloads the peer received on ``topic`` so far (drains its queue)."""
    seen: list[str] = []
    while not peer.messages.empty():
        message = peer.messages.get_nowait()
        if message.topic == topic:
            seen.append(message.payload)
    return seen


async def _go_offline(hass: HomeAssistant, entry: MockConfigEntry, sim: SimulatedDevice) -> None:
    await hass.async_add_executor_job(lambda: sim.set_behaviour(mode="offline"))
    await wait_for(lambda: engine_of(entry).states[sim.device_id].online is False)


def _lock_states(hass: HomeAssistant) -> list[tuple[str, str | None]]:
    """Follow the lock entity: (state, queued_until attribute) at each change."""
    seen: list[tuple[str, str | None]] = []

    @callback
    def changed(event: Event) -> None:
        if event.data["entity_id"] == LOCK and (new := event.data["new_state"]) is not None:
            seen.append((new.state, new.attributes.get("queued_until")))

    hass.bus.async_listen("state_changed", changed)
    return seen


async def test_offline_command_is_queued_then_published_when_back(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice], peer: PahoPeer
) -> None:
    """Offline: the unlock waits (pending, queued, nothing on the wire, the lock not
    "unlocking"); the device comes back: it is published at once and completes."""
    engine = engine_of(hub)
    await hass.async_add_executor_job(peer.subscribe, RLS)
    await _go_offline(hass, hub, sims[LOCK_ID])
    states = _lock_states(hass)
    events = async_capture_events(hass, EVENT_COMMAND_STATUS)
    outcomes = async_capture_events(hass, EVENT_COMMAND_OUTCOME)

    await hass.services.async_call(
        "lock", "unlock", {"entity_id": LOCK}, blocking=True
    )  # the entity follows the device's default: queued, the action returns
    record = engine.last_command((LOCK_ID, "lock"))
    assert record is not None
    assert record.status is CommandStatus.PENDING
    assert record.queued
    assert record.queued_until is not None
    assert record.queued_until - record.created_at == timedelta(minutes=30)
    await settle(hass, 0.3)
    assert _on_wire(peer, RLS) == []
    lock = hass.states.get(LOCK)
    assert lock is not None
    assert lock.state == "locked"  # not "unlocking": nothing went out
    assert lock.attributes["queued_until"] is not None
    assert (events[0].data["new_status"], events[0].data["queued"]) == ("pending", True)
    assert outcomes[0].data["status"] == "queued"

    await hass.async_add_executor_job(lambda: sims[LOCK_ID].set_behaviour(mode="normal"))
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.COMPLETED
    assert [t.status for t in final.transitions] == [
        CommandStatus.PENDING,
        CommandStatus.PUBLISHED,
        CommandStatus.COMPLETED,
    ]
    assert [(a.number, a.outcome) for a in final.attempts] == [(1, "completed")]
    published_at = final.attempts[0].published_at
    assert published_at > final.created_at
    assert final.deadline - published_at <= timedelta(seconds=1.01)  # counted from the publish
    assert _on_wire(peer, RLS) == ["0"]
    assert [(e.data["new_status"], e.data["attempt"], e.data["queued"]) for e in events] == [
        ("pending", 0, True),
        ("published", 1, False),
        ("completed", 1, False),
    ]
    await settle(hass)
    assert [state for state, _ in states if state != "unavailable"][-2:] == [
        "unlocking",
        "unlocked",
    ]
    assert states[-1][1] is None
    stored = await hub.runtime_data.store.get(record.command_id)
    assert stored is not None
    assert [(a.number, a.outcome) for a in stored.attempts] == [(1, "completed")]


async def test_expired_command_fails_and_is_never_published(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice], peer: PahoPeer
) -> None:
    """Its expiry passes first: failed ``expired``; the device back later gets nothing."""
    engine = engine_of(hub)
    await hass.async_add_executor_job(peer.subscribe, RLS)
    await _go_offline(hass, hub, sims[LOCK_ID])
    record = await engine.async_submit(LOCK_ID, "unlock", source="test", queue=0.01)  # 0.6 s
    assert record.queued
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.FAILED
    assert final.error_code == ErrorCode.EXPIRED
    assert final.attempts == []

    await hass.async_add_executor_job(lambda: sims[LOCK_ID].set_behaviour(mode="normal"))
    await wait_for(lambda: engine.states[LOCK_ID].online is True)
    await settle(hass, 0.5)
    assert _on_wire(peer, RLS) == []
    assert sims[LOCK_ID].state == {"lock": True}


async def test_newest_queued_command_wins(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice], peer: PahoPeer
) -> None:
    """Two commands queued for one target: the older ends superseded, only the newer goes out."""
    engine = engine_of(hub)
    await hass.async_add_executor_job(peer.subscribe, RLS)
    await _go_offline(hass, hub, sims[LOCK_ID])
    older = await engine.async_submit(LOCK_ID, "unlock", source="test")
    newer = await engine.async_submit(LOCK_ID, "lock", source="test")
    assert older.status is CommandStatus.FAILED
    assert older.error_code == ErrorCode.SUPERSEDED
    assert newer.queued
    await hass.async_add_executor_job(lambda: sims[LOCK_ID].set_behaviour(mode="normal"))
    assert (await engine.async_wait(newer.command_id, 5)).status is CommandStatus.COMPLETED
    await settle(hass)
    assert _on_wire(peer, RLS) == ["1"]


async def test_queued_command_survives_a_restart(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    sims: dict[str, SimulatedDevice],
    peer: PahoPeer,
) -> None:
    """Home Assistant stops with a command queued: after the start it is still queued with its
    expiry, and it goes out once the device is back."""
    entry = await setup_hub(hass, _devices(), **{CONF_COMMAND_TIMEOUT: 1.0})
    await engine_subscribed(hass, entry)
    await hass.async_add_executor_job(peer.subscribe, RLS)
    await _go_offline(hass, entry, sims[LOCK_ID])
    record = await engine_of(entry).async_submit(LOCK_ID, "unlock", source="test")
    assert record.queued
    await stop_hub(hass, entry)

    again = await setup_hub(hass, _devices(), **{CONF_COMMAND_TIMEOUT: 1.0})
    engine = engine_of(again)
    await engine_subscribed(hass, again)
    recovered = engine.open_command(record.command_id)
    assert recovered is not None
    assert recovered.queued
    assert recovered.queued_until == record.queued_until
    assert [r.command_id for r in engine.queued_commands()] == [record.command_id]
    await settle(hass, 0.3)
    assert _on_wire(peer, RLS) == []

    await hass.async_add_executor_job(lambda: sims[LOCK_ID].set_behaviour(mode="normal"))
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.COMPLETED
    assert _on_wire(peer, RLS) == ["0"]


async def test_expiry_passed_during_a_restart_ends_expired(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> None:
    """A queued command whose expiry passed while Home Assistant was stopped ends expired."""
    entry = await setup_hub(hass, _devices(), **{CONF_COMMAND_TIMEOUT: 1.0})
    await engine_subscribed(hass, entry)
    await _go_offline(hass, entry, sims[LOCK_ID])
    record = await engine_of(entry).async_submit(LOCK_ID, "unlock", source="test", queue=0.005)
    await stop_hub(hass, entry)
    await settle(hass, 0.5)
    again = await setup_hub(hass, _devices(), **{CONF_COMMAND_TIMEOUT: 1.0})
    stored = await again.runtime_data.store.get(record.command_id)
    assert stored is not None
    assert (stored.status, stored.error_code) == (CommandStatus.FAILED, ErrorCode.EXPIRED)


async def test_device_missing_two_publishes_completes_on_attempt_three(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    sims: dict[str, SimulatedDevice],
    peer: PahoPeer,
) -> None:
    """The device ignores the first two publishes: the same record is published three times
    and completes on the third, every attempt recorded; the command is never timed out."""
    entry = await setup_hub(hass, _devices(retry_backoff=1.0), **{CONF_COMMAND_TIMEOUT: 1.0})
    await engine_subscribed(hass, entry)
    hub = entry
    engine = engine_of(entry)
    await wait_for(lambda: engine.states[LOCK_ID].online is True)
    lock = sims[LOCK_ID]
    await hass.async_add_executor_job(lambda: lock.set_behaviour(mode="silent"))
    seen: list[str] = []

    def count(_peer: PahoPeer, message: Any) -> None:
        if message.topic == RLS:
            seen.append(message.payload)

    await hass.async_add_executor_job(peer.subscribe, RLS)
    peer.handlers.append(count)
    events = async_capture_events(hass, EVENT_COMMAND_STATUS)
    record = await engine.async_submit(LOCK_ID, "unlock", source="test")
    # The second attempt timed out; the third goes out after a 2 s backoff: answer from then on.
    await wait_for(lambda: [a.outcome for a in record.attempts] == ["timeout", "timeout"])
    await hass.async_add_executor_job(lambda: lock.set_behaviour(mode="normal"))
    final = await engine.async_wait(record.command_id, 15)
    assert final.status is CommandStatus.COMPLETED
    assert [(a.number, a.outcome) for a in final.attempts] == [
        (1, "timeout"),
        (2, "timeout"),
        (3, "completed"),
    ]
    assert final.attempts[0].published_at < final.attempts[1].published_at
    # The peer's copy of the third publish may still be on its way when the device's answer
    # has completed the command (a busy machine): wait for it, then make sure no fourth follows.
    await wait_for(lambda: len(seen) >= 3)
    await settle(hass, 0.3)
    assert seen == ["0", "0", "0"]
    assert CommandStatus.TIMEOUT not in [t.status for t in final.transitions]
    assert [e.data["attempt"] for e in events if e.data["new_status"] == "published"] == [1, 2, 3]
    await settle(hass)
    stored = await hub.runtime_data.store.get(record.command_id)
    assert stored is not None
    assert [(a.number, a.outcome) for a in stored.attempts] == [
        (1, "timeout"),
        (2, "timeout"),
        (3, "completed"),
    ]


async def test_late_answer_to_attempt_one_completes_during_the_backoff(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    sims: dict[str, SimulatedDevice],
    peer: PahoPeer,
) -> None:
    """A slow device answers attempt 1 after its deadline, while the retry waits: that answer
    completes the command and the retry is never published."""
    entry = await setup_hub(hass, _devices(retry_backoff=1.0), **{CONF_COMMAND_TIMEOUT: 1.0})
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    await wait_for(lambda: engine.states[LOCK_ID].online is True)
    await hass.async_add_executor_job(lambda: sims[LOCK_ID].set_behaviour(delay=1.4))
    await hass.async_add_executor_job(peer.subscribe, RLS)
    record = await engine.async_submit(LOCK_ID, "unlock", source="test")
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.COMPLETED
    assert [(a.number, a.outcome) for a in final.attempts] == [(1, "timeout")]
    await settle(hass, 1.2)
    assert _on_wire(peer, RLS) == ["0"]


async def test_jog_is_not_retried_by_default(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice], peer: PahoPeer
) -> None:
    """JOG pulses once more each time it arrives: a missed confirmation is a timeout, with one
    publish, although the device retries ON and OFF."""
    engine = engine_of(hub)
    await hass.async_add_executor_job(lambda: sims[WLTE_ID].set_behaviour(mode="silent"))
    await hass.async_add_executor_job(peer.subscribe, WLTE_COMMANDS)
    record = await engine.async_submit(WLTE_ID, "JOG", relay=1, source="test")
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.TIMEOUT
    assert [(a.number, a.outcome) for a in final.attempts] == [(1, "timeout")]
    await settle(hass, 0.5)
    assert len(_on_wire(peer, WLTE_COMMANDS)) == 1


async def test_superseded_during_backoff_is_not_published_again(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice], peer: PahoPeer
) -> None:
    """A new command to the target while a retry waits: the retried one ends superseded and
    goes out no more (it never runs twice, and never after the newer one)."""
    engine = engine_of(hub)
    await hass.async_add_executor_job(lambda: sims[LOCK_ID].set_behaviour(mode="silent"))
    await hass.async_add_executor_job(peer.subscribe, RLS)
    first = await engine.async_submit(LOCK_ID, "unlock", source="test")
    await wait_for(lambda: len(first.attempts) == 1 and first.attempts[0].outcome == "timeout")
    await hass.async_add_executor_job(lambda: sims[LOCK_ID].set_behaviour(mode="normal"))
    second = await engine.async_submit(LOCK_ID, "lock", source="test")
    assert first.status is CommandStatus.FAILED
    assert first.error_code == ErrorCode.SUPERSEDED
    assert (await engine.async_wait(second.command_id, 5)).status is CommandStatus.COMPLETED
    await settle(hass, 0.6)
    assert _on_wire(peer, RLS) == ["0", "1"]


@pytest.mark.parametrize("queue", [0, -5, 90 * 24 * 60 + 1])
async def test_bad_queue_expiry_is_a_translated_validation_error(
    hass: HomeAssistant, hub: MockConfigEntry, queue: float
) -> None:
    """0, negative or beyond the retention: the action refuses it before anything is stored."""
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(
            DOMAIN,
            "send_command",
            {"device": LOCK_ID, "command": "lock", "queue": queue},
            blocking=True,
            return_response=True,
        )
    assert raised.value.translation_key == "invalid_delivery"
    assert await engine_of(hub).async_list(LOCK_ID) == []


async def test_send_command_queue_false_refuses_while_offline(
    hass: HomeAssistant, hub: MockConfigEntry, sims: dict[str, SimulatedDevice]
) -> None:
    """``queue: false`` overrides the device's default: failed device_offline at once."""
    await _go_offline(hass, hub, sims[LOCK_ID])
    response = await hass.services.async_call(
        DOMAIN,
        "send_command",
        {"device": LOCK_ID, "command": "lock", "queue": False},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert (response["status"], response["error_code"]) == ("failed", "device_offline")
    assert response["queued"] is False
    assert response["attempts"] == []


async def test_thousand_queued_commands_for_hundred_devices_are_all_delivered(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """1,000 commands queued for 100 offline devices: each is published exactly once when its
    device comes back. The longest loop stall is measured and printed (bench/queue_drain.py
    judges it; no time is asserted here)."""
    from bench.queue_drain import RELAYS, device_ids, measure_queue_drain, row

    ids = device_ids()
    subentries = []
    for hardware_id in ids:
        sub = device(hardware_id, "wlte_relay", hardware_id, relays=RELAYS)
        subentries.append({**sub, "data": dict(sub["data"]) | {"queue_minutes": 30}})
    await hass.async_add_executor_job(
        lambda: [peer.publish(f"wlte/{i}/status", "offline", True) for i in ids]
    )
    entry = await setup_hub(hass, tuple(subentries), **{CONF_COMMAND_TIMEOUT: 60.0})
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    await wait_for(lambda: all(engine.states[i].online is False for i in ids))
    published: dict[str, int] = {}

    def seen(_peer: PahoPeer, message: Any) -> None:
        if message.topic.endswith("/set"):
            command_id = message.payload.split('"id": "', 1)[1][:16]
            published[command_id] = published.get(command_id, 0) + 1

    await hass.async_add_executor_job(peer.subscribe, "wlte/+/relay/+/set")
    peer.handlers.append(seen)

    async def bring_online() -> None:
        await hass.async_add_executor_job(
            lambda: [peer.publish(f"wlte/{i}/status", "online", True) for i in ids]
        )

    result = await measure_queue_drain(engine, ids, bring_online, lambda: len(published))
    print(row(result))
    assert sorted(published) == sorted(result["command_ids"])
    assert set(published.values()) == {1}
    assert len(published) == 1000
    await stop_hub(hass, entry)

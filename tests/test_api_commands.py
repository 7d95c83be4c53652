"""The Commands API through HA's real HTTP stack, with the real broker and simulated devices."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import patch

from aiohttp.test_utils import TestClient
from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.iotee.api.state import DATA_API
from custom_components.iotee.const import CONF_SYNC_WAIT, EVENT_COMMAND_STATUS
from custom_components.iotee.core.errors import UnknownDeviceError
from custom_components.iotee.core.model import CommandStatus

from .api_openapi import LockDevice, RelayDevice, checked
from .broker import Mosquitto, PahoPeer
from .conftest import wait_for
from .helpers import LOCK_ID, TASMOTA_ID, WLTE_ID, engine_of, setup_api_hub

BASE = "/api/iotee"


@pytest.fixture
async def hub(hass: HomeAssistant, mqtt_entry: MockConfigEntry) -> MockConfigEntry:
    """The hub with the default devices; short timeouts."""
    return await setup_api_hub(hass, **{CONF_SYNC_WAIT: 1.0})


@pytest.fixture
async def lock(hass: HomeAssistant, mosquitto: Mosquitto) -> AsyncGenerator[LockDevice]:
    """The IoTee lock, reporting the state it is told to take."""
    device = await hass.async_add_executor_job(LockDevice(mosquitto, LOCK_ID).start)
    yield device
    await hass.async_add_executor_job(device.close)


@pytest.fixture
async def relays(hass: HomeAssistant, mosquitto: Mosquitto) -> AsyncGenerator[RelayDevice]:
    """The WLTE relay controller."""
    device = await hass.async_add_executor_job(RelayDevice(mosquitto).start)
    yield device
    await hass.async_add_executor_job(device.close)


@pytest.fixture
async def user_key(hass: HomeAssistant, hub: MockConfigEntry) -> str:
    """A user API key (device:control, device:read)."""
    return (await hass.data[DATA_API].keys.async_create("user")).secret


@pytest.fixture
async def admin_key(hass: HomeAssistant, hub: MockConfigEntry) -> str:
    """An admin API key."""
    return (await hass.data[DATA_API].keys.async_create("admin", role="admin")).secret


@pytest.fixture
async def client(hass: HomeAssistant, hub: MockConfigEntry, hass_client_no_auth: Any) -> TestClient:
    """An HTTP client without credentials of its own."""
    return await hass_client_no_auth()


async def call(
    client: TestClient, method: str, path: str, key: str, json: Any = None, **kwargs: Any
) -> tuple[int, Any, Any]:
    """Send one request with ``X-API-Key``; return status, checked body and headers."""
    response = await client.request(
        method, BASE + path, json=json, headers={"X-API-Key": key}, **kwargs
    )
    return response.status, await checked(response), response.headers


# ---- send ---------------------------------------------------------------------------------------


async def test_send_lock_then_get_completed(
    hass: HomeAssistant, hub: MockConfigEntry, lock: LockDevice, client: TestClient, user_key: str
) -> None:
    """POST lock: 201 with the documented shape; the device confirms; GET shows completed."""
    status, body, headers = await call(
        client, "POST", f"/devices/{LOCK_ID}/commands", user_key, {"command": "lock"}
    )
    assert status == 201
    assert headers["Location"] == f"{BASE}/commands/{body['command_id']}"
    engine = engine_of(hub)
    assert body["hardware_id"] == LOCK_ID
    assert body["device_id"] == engine.device(LOCK_ID).device_id
    assert body["device_type"] == "iotee_device"
    assert body["topic"] == f"iotee/dev/{LOCK_ID}/rls"
    assert body["command"] == "lock"
    assert body["payload"] == "1"
    assert body["status"] == "pending"  # answered once stored; the publish follows
    assert body["created_at"].endswith("Z")
    assert body["source"] == "api"

    await engine.async_wait(body["command_id"], 5)
    assert lock.commands == ["1"]
    status, got, _ = await call(client, "GET", f"/commands/{body['command_id']}", user_key)
    assert status == 200
    assert got["status"] == "completed"
    assert [step["status"] for step in got["history"]] == ["pending", "published", "completed"]


async def test_send_answers_once_stored_and_the_publish_follows(
    hass: HomeAssistant, hub: MockConfigEntry, lock: LockDevice, client: TestClient, user_key: str
) -> None:
    """The answer is the stored ``pending`` record; ``published`` and the device's confirmation
    follow on the record, the events and the entity, in order."""
    events = async_capture_events(hass, EVENT_COMMAND_STATUS)
    shown: list[str | None] = []

    @callback
    def on_state(event: Event[EventStateChangedData]) -> None:
        if event.data["entity_id"] == "lock.front_door" and (new := event.data["new_state"]):
            shown.append(new.attributes.get("last_command_status"))

    unsubscribe = hass.bus.async_listen(EVENT_STATE_CHANGED, on_state)
    status, body, _ = await call(
        client, "POST", f"/devices/{LOCK_ID}/commands", user_key, {"command": "lock"}
    )
    assert (status, body["status"], body["history"]) == (
        201,
        "pending",
        [{"status": "pending", "at": body["created_at"]}],
    )
    stored = await hub.runtime_data.store.get(body["command_id"])
    assert stored is not None  # durable before the answer
    final = await engine_of(hub).async_wait(body["command_id"], 5)
    await hass.async_block_till_done()
    unsubscribe()
    assert final.status is CommandStatus.COMPLETED
    assert [(e.data["old_status"], e.data["new_status"]) for e in events] == [
        ("pending", "published"),
        ("published", "completed"),
    ]
    assert shown == ["pending", "published", "completed"]


async def test_send_supersedes_before_it_answers(
    hass: HomeAssistant, hub: MockConfigEntry, lock: LockDevice, client: TestClient, user_key: str
) -> None:
    """A second send to the same lock: by the time it is answered the first is failed
    (superseded), as the answer's caller may read right away."""
    lock.answer = False
    _, first, _ = await call(
        client, "POST", f"/devices/{LOCK_ID}/commands", user_key, {"command": "lock"}
    )
    _, second, _ = await call(
        client, "POST", f"/devices/{LOCK_ID}/commands", user_key, {"command": "unlock"}
    )
    assert second["status"] == "pending"
    _, got, _ = await call(client, "GET", f"/commands/{first['command_id']}", user_key)
    assert (got["status"], got["error_code"]) == ("failed", "superseded")


async def test_publish_failing_after_the_answer_reaches_record_event_and_entity(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str
) -> None:
    """What callers lose with the early answer: a publish that fails once handed over (the
    connection dropping while it waits for the broker) is no longer in the answer. It ends the
    record ``failed`` (``publish_failed``), fires the event and shows on the entity."""
    handed_over = asyncio.Event()
    drop = asyncio.Event()

    async def publish_then_lose_connection(*args: Any, **kwargs: Any) -> None:
        handed_over.set()
        await drop.wait()
        raise HomeAssistantError("connection lost")

    events = async_capture_events(hass, EVENT_COMMAND_STATUS)
    with patch.object(mqtt, "async_publish", publish_then_lose_connection):
        status, body, _ = await call(
            client, "POST", f"/devices/{LOCK_ID}/commands", user_key, {"command": "lock"}
        )
        assert handed_over.is_set()  # handed over right after the answer was written
        assert (status, body["status"]) == (201, "pending")
        drop.set()
        final = await engine_of(hub).async_wait(body["command_id"], 5)
        await hass.async_block_till_done()
    assert (final.status, final.error_code) == (CommandStatus.FAILED, "publish_failed")
    assert [(e.data["old_status"], e.data["new_status"], e.data["error_code"]) for e in events] == [
        ("pending", "failed", "publish_failed"),
    ]
    _, got, _ = await call(client, "GET", f"/commands/{body['command_id']}", user_key)
    assert (got["status"], got["error"]) == ("failed", "publish failed: connection lost")
    state = hass.states.get("lock.front_door")
    assert state is not None
    assert (state.attributes["last_command_id"], state.attributes["last_command_status"]) == (
        body["command_id"],
        "failed",
    )


@pytest.mark.parametrize(
    ("command", "topic", "payload"),
    [
        ("unlock", f"iotee/dev/{LOCK_ID}/rls", "0"),
        ("reboot", f"iotee/dev/{LOCK_ID}/rbt", "1"),
        ("LOCK", f"iotee/dev/{LOCK_ID}/rls", "1"),
    ],
)
async def test_available_commands_of_iotee_device(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    client: TestClient,
    user_key: str,
    peer: PahoPeer,
    command: str,
    topic: str,
    payload: str,
) -> None:
    """unlock publishes 0, reboot publishes 1 on rbt; command names are case-insensitive."""
    await hass.async_add_executor_job(peer.subscribe, topic)
    status, body, _ = await call(
        client,
        "POST",
        f"/devices/{LOCK_ID}/commands",
        user_key,
        {"command": command, "device_type": "iotee_device", "params": {"note": "x"}},
    )
    assert status == 201
    assert (body["topic"], body["payload"], body["params"]) == (topic, payload, {"note": "x"})
    message = await hass.async_add_executor_job(peer.expect, topic)
    assert message.payload == payload


async def test_send_by_ha_device_id_and_relay_params(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    relays: RelayDevice,
    client: TestClient,
    user_key: str,
) -> None:
    """:id may be the HA device id; params.relay selects a relay; a lock relay maps to ON/OFF."""
    ha_id = engine_of(hub).device(WLTE_ID).device_id
    status, body, _ = await call(
        client,
        "POST",
        f"/devices/{ha_id}/commands",
        user_key,
        {"command": "JOG", "params": {"relay": 2}},
    )
    assert status == 201
    assert (body["hardware_id"], body["relay"], body["command"]) == (WLTE_ID, 2, "JOG")
    status, body, _ = await call(
        client,
        "POST",
        f"/devices/{WLTE_ID}/commands",
        user_key,
        {"command": "unlock", "params": {"relay": 4}},
    )
    assert (status, body["command"], body["relay"]) == (201, "ON", 4)
    await wait_for(lambda: len(relays.commands) == 2)
    assert [relay for relay, _ in relays.commands] == [2, 4]


@pytest.mark.parametrize(
    ("device", "body"),
    [
        (LOCK_ID, {"command": "JOG"}),
        (LOCK_ID, {"command": "lock", "device_type": "wlte_relay"}),
        (LOCK_ID, {"command": "lock", "device_type": "fridge"}),
        (LOCK_ID, {"command": "lock", "device_type": 7}),
        (LOCK_ID, {}),
        (LOCK_ID, {"command": ""}),
        (LOCK_ID, {"command": 1}),
        (LOCK_ID, {"command": "x" * 65}),
        (LOCK_ID, {"command": "lock", "extra": True}),
        (LOCK_ID, {"command": "lock", "params": []}),
        (LOCK_ID, {"command": "lock", "params": {"relay": 1}}),
        (WLTE_ID, {"command": "ON"}),
        (WLTE_ID, {"command": "ON", "params": {"relay": 9}}),
        (WLTE_ID, {"command": "ON", "params": {"relay": 0}}),
        (WLTE_ID, {"command": "ON", "params": {"relay": "1"}}),
        (WLTE_ID, {"command": "ON", "params": {"relay": True}}),
        (TASMOTA_ID, {"command": "lock", "params": {"relay": 1}}),
    ],
)
async def test_send_invalid_is_400(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    client: TestClient,
    user_key: str,
    device: str,
    body: dict[str, Any],
) -> None:
    """Unknown command for the type, bad device_type, bad fields: 400; nothing recorded."""
    status, answer, _ = await call(client, "POST", f"/devices/{device}/commands", user_key, body)
    assert (status, answer["code"]) == (400, "INVALID_REQUEST")
    assert await engine_of(hub).async_list(None) == []


async def test_send_bad_json_is_400(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str
) -> None:
    """Malformed JSON, a non-object and an oversized body: 400 INVALID_REQUEST."""
    for data in (
        b"{",
        b"[]",
        b'"lock"',
        b"",
        b'{"command": "lock", "pad": "' + b"x" * 66000 + b'"}',
    ):
        response = await client.post(
            f"{BASE}/devices/{LOCK_ID}/commands",
            data=data,
            headers={"X-API-Key": user_key, "Content-Type": "application/json"},
        )
        body = await checked(response)
        assert (response.status, body["code"]) == (400, "INVALID_REQUEST")


async def test_send_unknown_device_is_404(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str
) -> None:
    """An unknown device: 404 DEVICE_NOT_FOUND."""
    status, body, _ = await call(
        client, "POST", "/devices/NOPE/commands", user_key, {"command": "lock"}
    )
    assert (status, body["code"]) == (404, "DEVICE_NOT_FOUND")


async def test_send_to_offline_device_is_recorded_failed(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str, peer: PahoPeer
) -> None:
    """A device known offline: the command is created failed (device_offline), not published."""
    engine = engine_of(hub)
    await hass.async_add_executor_job(peer.publish, f"iotee/dev/{LOCK_ID}/status", "offline", True)
    await wait_for(lambda: engine.states[LOCK_ID].online is False)
    status, body, _ = await call(
        client, "POST", f"/devices/{LOCK_ID}/commands", user_key, {"command": "lock"}
    )
    assert (status, body["status"], body["error_code"]) == (201, "failed", "device_offline")
    assert (body["queued"], body["queued_until"], body["attempts"]) == (False, None, [])


async def test_queue_extension_keeps_the_command_for_the_offline_device(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str, peer: PahoPeer
) -> None:
    """``queue`` (an IoTee extension, default off): 201 pending and queued with its expiry;
    the device back online gets it and the record shows the attempt."""
    engine = engine_of(hub)
    await hass.async_add_executor_job(peer.publish, f"iotee/dev/{LOCK_ID}/status", "offline", True)
    await wait_for(lambda: engine.states[LOCK_ID].online is False)
    status, body, _ = await call(
        client,
        "POST",
        f"/devices/{LOCK_ID}/commands",
        user_key,
        {"command": "lock", "queue": 15},
    )
    assert (status, body["status"], body["queued"], body["attempts"]) == (
        201,
        "pending",
        True,
        [],
    )
    created = datetime.fromisoformat(body["created_at"])
    assert datetime.fromisoformat(body["queued_until"]) - created == timedelta(minutes=15)
    await hass.async_add_executor_job(peer.subscribe, f"iotee/dev/{LOCK_ID}/rls")
    await hass.async_add_executor_job(peer.publish, f"iotee/dev/{LOCK_ID}/status", "online", True)
    sent = await hass.async_add_executor_job(peer.expect, f"iotee/dev/{LOCK_ID}/rls")
    assert sent.payload == "1"
    await hass.async_add_executor_job(peer.publish, f"iotee/dev/{LOCK_ID}/rls/state", "1", True)
    await engine.async_wait(body["command_id"], 5)
    status, body, _ = await call(client, "GET", f"/commands/{body['command_id']}", user_key)
    assert (status, body["status"], body["queued"]) == (200, "completed", False)
    assert [(a["number"], a["outcome"]) for a in body["attempts"]] == [(1, "completed")]


@pytest.mark.parametrize("queue", [0, -1, 90 * 24 * 60 + 1, "soon", [1]])
async def test_bad_queue_is_400(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str, queue: Any
) -> None:
    """A queue expiry of 0, negative, beyond the retention, or not a number/boolean: 400."""
    request = {"command": "lock", "queue": queue}
    status, body, _ = await call(client, "POST", f"/devices/{LOCK_ID}/commands", user_key, request)
    assert (status, body["code"], body["data"]) == (400, "INVALID_REQUEST", {"field": "queue"})
    assert await engine_of(hub).async_list(LOCK_ID) == []


# ---- history and list ---------------------------------------------------------------------------


async def test_device_history_newest_first_with_limit(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str
) -> None:
    """GET /devices/:id/commands: newest first, default 100, limit honoured, HA id accepted."""
    engine = engine_of(hub)
    ids = [
        (await engine.async_submit(LOCK_ID, name, source="test")).command_id
        for name in ("lock", "unlock", "lock")
    ]
    await engine.async_submit(WLTE_ID, "ON", relay=1, source="test")
    status, body, _ = await call(client, "GET", f"/devices/{LOCK_ID}/commands", user_key)
    assert status == 200
    assert body["count"] == 3
    assert [c["command_id"] for c in body["commands"]] == ids[::-1]
    ha_id = engine.device(LOCK_ID).device_id
    _, body, _ = await call(client, "GET", f"/devices/{ha_id}/commands?limit=2", user_key)
    assert [c["command_id"] for c in body["commands"]] == ids[:0:-1]
    assert body["count"] == 2


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", "1001", "", "99999999"])
async def test_bad_limit_is_400(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    client: TestClient,
    user_key: str,
    admin_key: str,
    limit: str,
) -> None:
    """limit must be an integer from 1 to 1000, on both history endpoints."""
    status, body, _ = await call(
        client, "GET", f"/devices/{LOCK_ID}/commands?limit={limit}", user_key
    )
    assert (status, body["code"], body["data"]) == (400, "INVALID_REQUEST", {"field": "limit"})
    status, body, _ = await call(client, "GET", f"/commands?limit={limit}", admin_key)
    assert (status, body["code"]) == (400, "INVALID_REQUEST")


async def test_history_unknown_device_is_404(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str
) -> None:
    """History of an unknown device: 404 DEVICE_NOT_FOUND."""
    status, body, _ = await call(client, "GET", "/devices/NOPE/commands", user_key)
    assert (status, body["code"]) == (404, "DEVICE_NOT_FOUND")


def subentry_of(hub: MockConfigEntry, hardware_id: str) -> ConfigSubentry:
    """The device subentry of ``hardware_id``."""
    return next(sub for sub in hub.subentries.values() if sub.data["hardware_id"] == hardware_id)


async def test_history_of_a_removed_device_stays_queryable(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str
) -> None:
    """A removed device's history is served by its hardware id (README: it "stays
    queryable"); 404 only for an id with neither a configured device nor a stored command."""
    engine = engine_of(hub)
    first = await engine.async_submit(LOCK_ID, "lock", source="test")
    second = await engine.async_submit(LOCK_ID, "unlock", source="test")
    device_id = engine.device(LOCK_ID).device_id
    assert hass.config_entries.async_remove_subentry(hub, subentry_of(hub, LOCK_ID).subentry_id)
    await hass.async_block_till_done()
    with pytest.raises(UnknownDeviceError):
        engine_of(hub).device(LOCK_ID)

    status, body, _ = await call(client, "GET", f"/devices/{LOCK_ID}/commands", user_key)
    assert status == 200
    assert [c["command_id"] for c in body["commands"]] == [second.command_id, first.command_id]
    assert body["count"] == 2
    status, body, _ = await call(client, "GET", f"/devices/{LOCK_ID}/commands?limit=1", user_key)
    assert [c["command_id"] for c in body["commands"]] == [second.command_id]
    # Its Home Assistant device id went with it; an id never seen is unknown as before.
    for ref in (device_id, "NOPE"):
        status, body, _ = await call(client, "GET", f"/devices/{ref}/commands", user_key)
        assert (status, body["code"]) == (404, "DEVICE_NOT_FOUND")


async def test_list_all_is_admin_only(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str, admin_key: str
) -> None:
    """GET /commands: every device's commands for admins; 403 for a user key."""
    engine = engine_of(hub)
    first = await engine.async_submit(LOCK_ID, "lock", source="test")
    second = await engine.async_submit(WLTE_ID, "ON", relay=1, source="test")
    status, body, _ = await call(client, "GET", "/commands", user_key)
    assert (status, body["code"]) == (403, "AUTH_SCOPE_DENIED")
    status, body, _ = await call(client, "GET", "/commands", admin_key)
    assert status == 200
    assert [c["command_id"] for c in body["commands"]] == [second.command_id, first.command_id]
    _, body, _ = await call(client, "GET", "/commands?limit=1", admin_key)
    assert body["count"] == 1


# ---- get, delete, retry, purge ------------------------------------------------------------------


async def test_get_unknown_command_is_404(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str
) -> None:
    """GET /commands/:id of an unknown id: 404 COMMAND_NOT_FOUND."""
    status, body, _ = await call(client, "GET", "/commands/x1y2z3w4", user_key)
    assert (status, body["code"]) == (404, "COMMAND_NOT_FOUND")


async def test_delete_command(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str, admin_key: str
) -> None:
    """DELETE /commands/:id: admin only; {success, deleted}; then 404."""
    record = await engine_of(hub).async_submit(LOCK_ID, "lock", source="test")
    path = f"/commands/{record.command_id}"
    status, body, _ = await call(client, "DELETE", path, user_key)
    assert (status, body["code"]) == (403, "AUTH_SCOPE_DENIED")
    status, body, _ = await call(client, "DELETE", path, admin_key)
    assert (status, body) == (200, {"success": True, "deleted": record.command_id})
    status, body, _ = await call(client, "DELETE", path, admin_key)
    assert (status, body["code"]) == (404, "COMMAND_NOT_FOUND")
    status, body, _ = await call(client, "GET", path, user_key)
    assert status == 404


async def test_retry_failed_or_timed_out_command(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    lock: LockDevice,
    client: TestClient,
    user_key: str,
    admin_key: str,
) -> None:
    """POST /commands/:id/retry: 201 with the new command; 409 when not retryable; 404."""
    engine = engine_of(hub)
    lock.answer = False
    original = await engine.async_submit(LOCK_ID, "lock", source="test")
    status, body, _ = await call(
        client, "POST", f"/commands/{original.command_id}/retry", admin_key
    )
    assert (status, body["code"]) == (409, "COMMAND_NOT_RETRYABLE")
    await engine.async_wait(original.command_id, 5)
    assert original.status is CommandStatus.TIMEOUT

    status, body, _ = await call(client, "POST", f"/commands/{original.command_id}/retry", user_key)
    assert (status, body["code"]) == (403, "AUTH_SCOPE_DENIED")
    lock.answer = True
    status, body, headers = await call(
        client, "POST", f"/commands/{original.command_id}/retry", admin_key
    )
    assert status == 201
    assert body["success"] is True
    assert body["original_command_id"] == original.command_id
    new = body["new_command"]
    assert new["command_id"] != original.command_id
    assert new["retry_of"] == original.command_id
    assert new["status"] == "pending"
    assert headers["Location"] == f"{BASE}/commands/{new['command_id']}"
    status, body, _ = await call(client, "POST", "/commands/nope/retry", admin_key)
    assert (status, body["code"]) == (404, "COMMAND_NOT_FOUND")


async def test_retry_after_relay_count_lowered_is_400(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, admin_key: str
) -> None:
    """A failed command on relay 3 of a device reconfigured to 2 relays: retry is 400 (as
    documented), nothing is created."""
    engine = engine_of(hub)
    original = await engine.async_submit(WLTE_ID, "ON", relay=3, source="test")
    await engine.async_submit(WLTE_ID, "OFF", relay=3, source="test")  # supersedes: failed
    subentry = subentry_of(hub, WLTE_ID)
    assert hass.config_entries.async_update_subentry(
        hub, subentry, data={**subentry.data, "relays": 2, "relay_locks": []}
    )
    await hass.async_block_till_done()
    await wait_for(lambda: engine_of(hub).devices[WLTE_ID].relays == 2)
    status, body, _ = await call(
        client, "POST", f"/commands/{original.command_id}/retry", admin_key
    )
    assert (status, body["code"]) == (400, "INVALID_REQUEST")
    assert "relay 3" in body["message"]
    assert len(await engine_of(hub).async_list(WLTE_ID)) == 2


async def test_send_while_mqtt_is_down_is_201_failed(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    client: TestClient,
    user_key: str,
    admin_key: str,
    mosquitto: Mosquitto,
) -> None:
    """HA's MQTT client disconnected: the Commands API is not a 503 (that is the WLTE API); it
    records the command and answers 201 with it failed (publish_failed), retry likewise."""
    await hass.async_add_executor_job(mosquitto.stop)
    await wait_for(lambda: not mqtt.is_connected(hass))
    status, body, _ = await call(
        client, "POST", f"/devices/{LOCK_ID}/commands", user_key, {"command": "lock"}
    )
    assert (status, body["status"], body["error_code"]) == (201, "failed", "publish_failed")
    status, retried, _ = await call(
        client, "POST", f"/commands/{body['command_id']}/retry", admin_key
    )
    assert status == 201
    assert (retried["new_command"]["status"], retried["new_command"]["error_code"]) == (
        "failed",
        "publish_failed",
    )
    assert len(await engine_of(hub).async_list(LOCK_ID)) == 2


async def test_purge(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str, admin_key: str
) -> None:
    """POST /commands/purge: admin only; success, cutoff_date, deleted."""
    engine = engine_of(hub)
    await engine.async_submit(LOCK_ID, "lock", source="test")
    await engine.async_submit(LOCK_ID, "unlock", source="test")  # supersedes: one finished
    status, body, _ = await call(
        client, "POST", "/commands/purge", user_key, {"older_than_days": 0}
    )
    assert (status, body["code"]) == (403, "AUTH_SCOPE_DENIED")
    status, body, _ = await call(
        client, "POST", "/commands/purge", admin_key, {"older_than_days": 90}
    )
    assert (status, body["success"], body["deleted"]) == (200, True, 0)
    cutoff = datetime.fromisoformat(body["cutoff_date"].replace("Z", "+00:00"))
    assert abs(cutoff - (datetime.now(cutoff.tzinfo) - timedelta(days=90))) < timedelta(minutes=1)
    status, body, _ = await call(
        client, "POST", "/commands/purge", admin_key, {"older_than_days": 0}
    )
    assert (status, body["deleted"]) == (200, 1)
    status, body, _ = await call(
        client, "POST", "/commands/purge", admin_key, {"older_than_days": 0.5}
    )
    assert status == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"older_than_days": -1},
        {"older_than_days": "90"},
        {"older_than_days": True},
        {"older_than_days": None},
        {"older_than_days": 36501},
        {"older_than_days": 1, "all": True},
    ],
)
async def test_purge_invalid_is_400(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, admin_key: str, body: Any
) -> None:
    """older_than_days is a required number from 0."""
    status, answer, _ = await call(client, "POST", "/commands/purge", admin_key, body)
    assert (status, answer["code"]) == (400, "INVALID_REQUEST")


# ---- routes -------------------------------------------------------------------------------------


async def test_unknown_routes_and_methods(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, user_key: str, admin_key: str
) -> None:
    """Unknown routes: 404 NOT_FOUND; a wrong method: 405 METHOD_NOT_ALLOWED with Allow."""
    for path in ("/nope", "/", "/devices", "/wlte/v2/devices/x/relays/1/commands", ""):
        status, body, _ = await call(client, "GET", path, user_key)
        assert (status, body["code"]) == (404, "NOT_FOUND"), path
    for method, path, allowed in (
        ("PUT", f"/devices/{LOCK_ID}/commands", "GET, POST"),
        ("DELETE", "/commands", "GET"),
        ("GET", "/commands/purge", "POST"),
        ("PATCH", "/commands/abc", "DELETE, GET"),
        ("GET", "/commands/abc/retry", "POST"),
        ("GET", f"/wlte/v1/devices/{WLTE_ID}/relays/1/commands", "POST"),
        ("POST", f"/wlte/v1/devices/{WLTE_ID}/commands/abc", "GET"),
        ("DELETE", "/openapi.json", "GET"),
    ):
        status, body, headers = await call(client, method, path, admin_key)
        assert (status, body["code"]) == (405, "METHOD_NOT_ALLOWED"), path
        assert headers["Allow"] == allowed
        assert body["data"] == {"allowed": allowed.split(", ")}
    response = await client.head(f"{BASE}/commands", headers={"X-API-Key": admin_key})
    assert response.status == 405
    await checked(response)

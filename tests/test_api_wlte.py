"""The WLTE relay API through HA's real HTTP stack, with the real broker and a simulated device."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import timedelta
import json
import sqlite3
from typing import Any
from unittest.mock import Mock, patch
import uuid

from aiohttp.streams import StreamReader
from aiohttp.test_utils import TestClient, make_mocked_request
from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.iotee.api.state import DATA_API, IoteeApi
from custom_components.iotee.api.wlte_views import WlteRelayCommandView
from custom_components.iotee.const import (
    CONF_COMMAND_TIMEOUT,
    CONF_RATE_CALLER,
    CONF_RELAY_COOLDOWN,
    CONF_SYNC_WAIT,
    DOMAIN,
)
from custom_components.iotee.core.idempotency import body_hash, scope_of
from custom_components.iotee.core.model import utcnow
from custom_components.iotee.core.store import IdempotencyEntry
from custom_components.iotee.engine import CommandEngine

from .api_openapi import RelayDevice, checked
from .broker import Mosquitto, PahoPeer
from .conftest import wait_for
from .core.test_store_faults import DISK_FULL, FaultyConnection
from .helpers import LOCK_ID, TASMOTA_ID, WLTE_ID, engine_of, engine_subscribed, setup_hub

URL = "/api/iotee/wlte/v1/devices/{device}/relays/{relay}/commands"
RESULT_URL = "/api/iotee/wlte/v1/devices/{device}/commands/{command}"
FAST = {CONF_COMMAND_TIMEOUT: 2.0, CONF_SYNC_WAIT: 1.0}


async def start_hub(hass: HomeAssistant, **options: Any) -> MockConfigEntry:
    """Set up the hub with short timeouts (and ``options``); wait for its subscriptions."""
    entry = await setup_hub(hass, **(FAST | options))
    await engine_subscribed(hass, entry)
    return entry


@pytest.fixture
async def hub(hass: HomeAssistant, mqtt_entry: MockConfigEntry) -> MockConfigEntry:
    """The hub with the default devices; short timeouts."""
    return await start_hub(hass)


@pytest.fixture
async def device(hass: HomeAssistant, mosquitto: Mosquitto) -> AsyncGenerator[RelayDevice]:
    """The WLTE relay controller, answering commands."""
    relay_device = await hass.async_add_executor_job(RelayDevice(mosquitto).start)
    yield relay_device
    await hass.async_add_executor_job(relay_device.close)


@pytest.fixture
async def client(hass: HomeAssistant, token: str, hass_client_no_auth: Any) -> TestClient:
    """An HTTP client without credentials of its own (created once the API is registered)."""
    return await hass_client_no_auth()


@pytest.fixture
async def token(hass: HomeAssistant, mqtt_entry: MockConfigEntry) -> str:
    """A user API key with every scope."""
    assert await async_setup_component(hass, DOMAIN, {})
    created = await api_of(hass).keys.async_create("wlte test")
    return created.secret


def api_of(hass: HomeAssistant) -> IoteeApi:
    """Return the REST API's shared state."""
    return hass.data[DATA_API]


def headers(token: str, key: str | None = None) -> dict[str, str]:
    """Bearer credentials and an Idempotency-Key."""
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": key or str(uuid.uuid4())}


async def execute(
    client: TestClient,
    token: str,
    action: Any = "ON",
    relay: Any = 1,
    key: str | None = None,
    device: str = WLTE_ID,
) -> tuple[int, Any]:
    """POST one relay operation; return the status and the checked body."""
    response = await client.post(
        URL.format(device=device, relay=relay), json={"action": action}, headers=headers(token, key)
    )
    return response.status, await checked(response)


async def result(client: TestClient, token: str, command_id: str, device: str = WLTE_ID) -> Any:
    """GET a command's result; return the checked response and body."""
    response = await client.get(
        RESULT_URL.format(device=device, command=command_id),
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status, await checked(response)


async def peer_call(hass: HomeAssistant, func: Any, *args: Any) -> Any:
    """Run a blocking paho call off the event loop."""
    return await hass.async_add_executor_job(func, *args)


async def announce(
    hass: HomeAssistant, peer: PahoPeer, engine: CommandEngine, *, online: bool
) -> None:
    """Publish the WLTE controller's retained availability; wait until the engine has it."""
    payload = "online" if online else "offline"
    await peer_call(hass, peer.publish, f"wlte/{WLTE_ID}/status", payload, True)
    await wait_for(lambda: engine.states[WLTE_ID].online is online)


# ---- execution and statuses ---------------------------------------------------------------------


@pytest.mark.parametrize("action", ["ON", "OFF", "JOG"])
async def test_action_confirmed_by_device_is_success(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    device: RelayDevice,
    client: TestClient,
    token: str,
    action: str,
) -> None:
    """202 COMMAND_ACCEPTED with SUCCESS once the device confirmed; exactly one publish."""
    status, body = await execute(client, token, action, 2)
    assert status == 202
    assert body["code"] == "COMMAND_ACCEPTED"
    assert body["message"] == "Command accepted."
    data = body["data"]
    assert set(data) == {"id", "deviceId", "relayIndex", "action", "status", "createdAt"}
    assert (data["status"], data["deviceId"], data["relayIndex"], data["action"]) == (
        "SUCCESS",
        WLTE_ID,
        2,
        action,
    )
    assert data["createdAt"].endswith("Z")
    assert device.commands == [(2, {"id": data["id"], "action": action})]
    record = await engine_of(hub).async_get(data["id"])
    assert record is not None
    assert (record.source, record.caller) == ("wlte", f"key:{token.split('.', maxsplit=1)[0]}")
    assert record.status.value == "completed"


async def test_device_failure_is_failed(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """A device that reports FAILED gives 202 with FAILED."""
    device.mode = "fail"
    status, body = await execute(client, token, "JOG", 3)
    assert (status, body["data"]["status"]) == (202, "FAILED")


async def test_device_rejection_is_422_and_replay_is_202_failed(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """REJECTED by the device: 422 COMMAND_REJECTED with the command; a replay answers 202."""
    device.mode = "reject"
    key = str(uuid.uuid4())
    status, body = await execute(client, token, "ON", 1, key)
    assert status == 422
    assert body["code"] == "COMMAND_REJECTED"
    assert "relay locked out" in body["message"]
    assert body["data"]["status"] == "FAILED"
    command_id = body["data"]["id"]

    response = await client.post(
        URL.format(device=WLTE_ID, relay=1), json={"action": "ON"}, headers=headers(token, key)
    )
    replay = await checked(response)
    assert response.status == 202
    assert response.headers["Idempotent-Replayed"] == "true"
    assert replay["data"] == body["data"]
    assert replay["data"]["id"] == command_id
    assert len(device.commands) == 1


async def test_not_confirmed_in_wait_window_is_timeout_then_polling(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """No answer within sync_wait: TIMEOUT; polling shows SENT until the command's own timeout."""
    device.mode = "silent"
    status, body = await execute(client, token, "ON", 1)
    assert (status, body["data"]["status"]) == (202, "TIMEOUT")
    command_id = body["data"]["id"]

    status, polled = await result(client, token, command_id)
    assert status == 200
    assert polled["code"] == "OK"
    assert polled["data"]["status"] == "SENT"
    assert polled["data"]["id"] == command_id

    record = await engine_of(hub).async_wait(command_id, 5)
    assert record.status.value == "timeout"
    status, polled = await result(client, token, command_id)
    assert polled["data"]["status"] == "TIMEOUT"


async def test_acknowledged_only_polls_as_sent(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """An acknowledged (not yet final) command is SENT when polled."""
    device.mode = "ack"
    _, body = await execute(client, token, "OFF", 2)
    assert body["data"]["status"] == "TIMEOUT"
    _, polled = await result(client, token, body["data"]["id"])
    assert polled["data"]["status"] == "SENT"


async def test_sync_wait_zero_answers_sent_at_once(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    device: RelayDevice,
    client: TestClient,
    token: str,
) -> None:
    """With sync_wait 0 the answer does not wait: SENT."""
    await start_hub(hass, **{CONF_SYNC_WAIT: 0})
    device.mode = "silent"
    status, body = await execute(client, token, "ON", 1)
    assert (status, body["data"]["status"]) == (202, "SENT")


async def test_device_by_ha_device_id_and_tasmota(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """deviceId may be the HA device id; any device with relays works (Tasmota here)."""
    ha_id = engine_of(hub).device(WLTE_ID).device_id
    assert ha_id is not None
    assert ha_id != WLTE_ID
    status, body = await execute(client, token, "ON", 1, device=ha_id)
    assert (status, body["data"]["deviceId"], body["data"]["status"]) == (202, WLTE_ID, "SUCCESS")

    status, body = await execute(client, token, "ON", 2, device=TASMOTA_ID)
    assert status == 202
    assert body["data"]["deviceId"] == TASMOTA_ID
    assert body["data"]["status"] == "TIMEOUT"  # nobody answers for the Tasmota relay


# ---- idempotency --------------------------------------------------------------------------------


async def test_same_key_same_body_is_not_executed_again(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """Same key and body: 202 with the original command and its current status; no publish."""
    key = str(uuid.uuid4())
    _, first = await execute(client, token, "JOG", 1, key)
    response = await client.post(
        URL.format(device=WLTE_ID, relay=1),
        data='{ "action" :  "JOG" }',
        headers=headers(token, key) | {"Content-Type": "application/json"},
    )
    second = await checked(response)
    assert response.status == 202
    assert second["data"] == first["data"]
    assert second["message"] != first["message"]
    assert second["requestId"] != first["requestId"]
    assert len(device.commands) == 1


async def test_same_key_other_body_is_conflict(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """Same key, different body: 409 IDEMPOTENCY_CONFLICT; nothing executed."""
    key = str(uuid.uuid4())
    await execute(client, token, "ON", 1, key)
    status, body = await execute(client, token, "OFF", 1, key)
    assert (status, body["code"]) == (409, "IDEMPOTENCY_CONFLICT")
    assert len(device.commands) == 1


async def test_key_is_scoped_to_caller_and_path(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """The same key on another path, or from another caller, is a new operation."""
    other = (await api_of(hass).keys.async_create("other caller")).secret
    key = str(uuid.uuid4())
    _, first = await execute(client, token, "ON", 1, key)
    _, other_path = await execute(client, token, "ON", 2, key)
    _, other_caller = await execute(client, other, "ON", 3, key)
    ids = {first["data"]["id"], other_path["data"]["id"], other_caller["data"]["id"]}
    assert len(ids) == 3
    assert len(device.commands) == 3


async def test_retry_while_original_waits_returns_sent(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """A retry while the first request still waits for the device answers SENT at once."""
    device.mode = "silent"
    key = str(uuid.uuid4())
    first = asyncio.ensure_future(execute(client, token, "ON", 1, key))
    await wait_for(lambda: len(device.commands) == 1)
    status, body = await execute(client, token, "ON", 1, key)
    assert (status, body["data"]["status"]) == (202, "SENT")
    assert not first.done()
    status, original = await first
    assert (status, original["data"]["status"]) == (202, "TIMEOUT")
    assert original["data"]["id"] == body["data"]["id"]
    assert len(device.commands) == 1


async def test_fifty_parallel_identical_requests_publish_once(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    device: RelayDevice,
    client: TestClient,
    token: str,
    peer: PahoPeer,
) -> None:
    """50 concurrent identical requests: one command, one MQTT publish, 50 answers 202."""
    await peer_call(hass, peer.subscribe, f"wlte/{WLTE_ID}/relay/1/set")
    key = str(uuid.uuid4())
    answers = await asyncio.gather(*(execute(client, token, "JOG", 1, key) for _ in range(50)))
    assert {status for status, _ in answers} == {202}
    assert len({body["data"]["id"] for _, body in answers}) == 1
    assert {body["data"]["status"] for _, body in answers} <= {"SENT", "SUCCESS"}
    assert len(device.commands) == 1
    await peer_call(hass, peer.expect, f"wlte/{WLTE_ID}/relay/1/set")
    with pytest.raises(TimeoutError):
        await peer_call(hass, peer.expect, f"wlte/{WLTE_ID}/relay/1/set", 0.5)
    assert len(await engine_of(hub).async_list(WLTE_ID)) == 1


async def test_parallel_same_key_different_bodies(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """Concurrent requests with one key and two bodies: one executes, the others conflict."""
    key = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(execute(client, token, "ON" if n % 2 else "OFF", 1, key) for n in range(10))
    )
    statuses = sorted(status for status, _ in answers)
    assert 409 in statuses
    assert 202 in statuses
    accepted = [body for status, body in answers if status == 202]
    assert len({body["data"]["action"] for body in accepted}) == 1
    assert len(device.commands) == 1


async def test_idempotency_survives_restart(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """After a reload of the hub (a restart of the store) the key still replays."""
    key = str(uuid.uuid4())
    _, first = await execute(client, token, "ON", 1, key)
    assert await hass.config_entries.async_reload(hub.entry_id)
    await hass.async_block_till_done()
    await engine_subscribed(hass, hub)
    status, again = await execute(client, token, "ON", 1, key)
    assert status == 202
    assert again["data"] == first["data"]
    assert len(device.commands) == 1


async def test_records_kept_48_hours_then_forgotten(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """A 47-hour-old key still replays; a 49-hour-old one is a new request; purge forgets it."""
    store = hub.runtime_data.store
    caller = f"key:{token.split('.', maxsplit=1)[0]}"
    path = URL.format(device=WLTE_ID, relay=1)
    _, original = await execute(client, token, "ON", 1, "original")
    original_id = original["data"]["id"]
    digest = body_hash({"action": "ON"})
    for key, age in (("young", 47), ("old", 49)):
        await store.idempotency_put(
            IdempotencyEntry(
                scope_of(caller, path, key), digest, original_id, utcnow() - timedelta(hours=age)
            )
        )
    api_of(hass).clock = lambda: 1e9  # past every cooldown
    _, young = await execute(client, token, "ON", 1, "young")
    assert young["data"]["id"] == original_id
    api_of(hass).clock = lambda: 2e9
    _, old = await execute(client, token, "ON", 1, "old")
    assert old["data"]["id"] != original_id
    assert len(device.commands) == 2

    await store.idempotency_put(
        IdempotencyEntry("stale", digest, original_id, utcnow() - timedelta(hours=49))
    )
    await store.idempotency_put(
        IdempotencyEntry("fresh", digest, original_id, utcnow() - timedelta(hours=47))
    )
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=1, seconds=1))
    await hass.async_block_till_done()
    assert await store.idempotency_get("fresh") is not None
    assert await store.idempotency_get("stale") is None


@pytest.mark.parametrize("removal", ["REST delete", "REST purge", "purge action"])
async def test_replay_after_delete_or_purge_answers_the_last_status(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    device: RelayDevice,
    client: TestClient,
    token: str,
    removal: str,
) -> None:
    """A key whose command was deleted or purged still replays, for its 48 hours: 202 with the
    original command id and its last status, also after a restart; never a second execution."""
    key = str(uuid.uuid4())
    _, first = await execute(client, token, "JOG", 2, key)
    command_id = first["data"]["id"]
    assert first["data"]["status"] == "SUCCESS"
    admin = {"X-API-Key": (await api_of(hass).keys.async_create("admin", role="admin")).secret}
    if removal == "REST delete":
        response = await client.delete(f"/api/iotee/commands/{command_id}", headers=admin)
        assert (response.status, (await checked(response))["deleted"]) == (200, command_id)
    elif removal == "REST purge":
        response = await client.post(
            "/api/iotee/commands/purge", json={"older_than_days": 0}, headers=admin
        )
        assert (response.status, (await checked(response))["deleted"]) == (200, 1)
    else:
        purged = await hass.services.async_call(
            DOMAIN, "purge_commands", {"older_than_days": 0}, blocking=True, return_response=True
        )
        assert purged["deleted"] == 1
    assert await engine_of(hub).async_get(command_id) is None

    for _ in range(2):  # before and after a restart of the hub
        response = await client.post(
            URL.format(device=WLTE_ID, relay=2), json={"action": "JOG"}, headers=headers(token, key)
        )
        replay = await checked(response)
        assert response.status == 202
        assert response.headers["Idempotent-Replayed"] == "true"
        assert replay["data"] == first["data"]
        assert await hass.config_entries.async_reload(hub.entry_id)
        await hass.async_block_till_done()
        await engine_subscribed(hass, hub)
    status, conflict = await execute(client, token, "ON", 2, key)
    assert (status, conflict["code"], conflict["data"]) == (
        409,
        "IDEMPOTENCY_CONFLICT",
        {"id": command_id},
    )
    assert len(device.commands) == 1


async def test_client_gone_during_acceptance_keeps_the_command(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """A handler cancelled mid-acceptance (client disconnected): acceptance still completes once,
    and the retry with the same key gets that command."""
    engine = engine_of(hub)
    submit = engine.async_submit
    entered = asyncio.Event()

    async def slow_submit(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await asyncio.sleep(0.1)
        return await submit(*args, **kwargs)

    key = str(uuid.uuid4())
    path = URL.format(device=WLTE_ID, relay=1)
    payload = StreamReader(Mock(_reading_paused=False), 2**16, loop=hass.loop)
    payload.feed_data(b'{"action": "ON"}')
    payload.feed_eof()
    request = make_mocked_request(
        "POST",
        path,
        headers=headers(token, key) | {"Content-Type": "application/json"},
        payload=payload,
        app=hass.http.app,
    )
    view = WlteRelayCommandView(api_of(hass))
    with patch.object(engine, "async_submit", slow_submit):
        handler = asyncio.ensure_future(view.post(request, device_id=WLTE_ID, index="1"))
        await entered.wait()
        handler.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handler
        await wait_for(lambda: len(device.commands) == 1)
    status, body = await execute(client, token, "ON", 1, key)
    assert status == 202
    assert body["data"]["id"] == device.commands[0][1]["id"]
    assert len(device.commands) == 1
    assert len(api_of(hass).inflight) == 0


async def test_failed_submit_frees_the_key(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """An unexpected failure while creating the command: 500 without details; key reusable."""
    key = str(uuid.uuid4())
    with patch.object(engine_of(hub), "async_submit", side_effect=RuntimeError("secret internals")):
        status, body = await execute(client, token, "ON", 1, key)
    assert (status, body["code"]) == (500, "INTERNAL_ERROR")
    assert "secret" not in json.dumps(body)
    assert "Traceback" not in json.dumps(body)
    # Nothing was accepted, so nothing was counted: no relay cooldown to wait for.
    status, body = await execute(client, token, "ON", 1, key)
    assert (status, body["data"]["status"]) == (202, "SUCCESS")


class WriteFault(FaultyConnection):
    """Fails only the writes whose SQL starts with ``prefix`` (the rest of the store works)."""

    def __init__(self, db: Any, prefix: str) -> None:
        """Wrap ``db``; fail the writes starting with ``prefix`` while ``fault`` is set."""
        super().__init__(db)
        self.prefix = prefix

    def _check(self, sql: str) -> None:
        if sql.lstrip().upper().startswith(self.prefix):
            super()._check(sql)


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("REPLACE INTO IDEMPOTENCY", id="storing the key fails"),
        pytest.param("INSERT INTO COMMANDS", id="storing the command fails"),
    ],
)
async def test_store_fault_spends_no_rate_limit(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    device: RelayDevice,
    client: TestClient,
    token: str,
    prefix: str,
) -> None:
    """A full disk after the limit check: 503, nothing sent, nothing counted. The caller's retry
    with the same key once the disk has room is accepted (not 429), and that one counts."""
    store = hub.runtime_data.store
    await asyncio.sleep(0)
    faulty = WriteFault(store.store.db, prefix)
    store.store._db = faulty
    faulty.fault = sqlite3.OperationalError(DISK_FULL)
    key = str(uuid.uuid4())
    for _ in range(3):  # more than the relay's cooldown would allow, were failures counted
        status, body = await execute(client, token, "ON", 1, key)
        assert (status, body["code"]) == (503, "GATEWAY_UNAVAILABLE")
        assert DISK_FULL not in body["message"]
    assert faulty.writes >= 3
    assert device.commands == []
    faulty.fault = None

    status, body = await execute(client, token, "ON", 1, key)
    assert (status, body["data"]["status"]) == (202, "SUCCESS")
    assert device.commands == [(1, {"id": body["data"]["id"], "action": "ON"})]
    status, again = await execute(client, token, "ON", 1, key)
    assert (status, again["data"]["id"]) == (202, body["data"]["id"])  # a replay, not counted
    status, refused = await execute(client, token, "OFF", 1)
    assert (status, refused["data"]["limit"]) == (429, "relay")


# ---- refusals before acceptance -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("relay", "body", "extra_headers"),
    [
        ("0", {"action": "ON"}, {}),
        ("-1", {"action": "ON"}, {}),
        ("01", {"action": "ON"}, {}),
        ("1.5", {"action": "ON"}, {}),
        ("one", {"action": "ON"}, {}),
        ("1", {"action": "on"}, {}),
        ("1", {"action": "TOGGLE"}, {}),
        ("1", {"action": 1}, {}),
        ("1", {}, {}),
        ("1", {"action": "ON", "duration": 3}, {}),
        ("1", ["ON"], {}),
        ("1", {"action": "ON"}, {"Idempotency-Key": ""}),
        ("1", {"action": "ON"}, {"Idempotency-Key": "x" * 129}),
        ("1", {"action": "ON"}, {"Idempotency-Key": "has space"}),
        ("1", {"action": "ON"}, {"Idempotency-Key": "dots.are.not.allowed"}),
    ],
)
async def test_invalid_requests_are_400(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    device: RelayDevice,
    client: TestClient,
    token: str,
    relay: str,
    body: Any,
    extra_headers: dict[str, str],
) -> None:
    """Bad index, action, body or Idempotency-Key: 400 INVALID_REQUEST; nothing published."""
    response = await client.post(
        URL.format(device=WLTE_ID, relay=relay),
        json=body,
        headers=headers(token) | extra_headers,
    )
    answer = await checked(response)
    assert (response.status, answer["code"]) == (400, "INVALID_REQUEST")
    assert device.commands == []


async def test_missing_idempotency_key_and_bad_bodies(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, token: str
) -> None:
    """No Idempotency-Key, no body, bad JSON, bad UTF-8, wrong type, too big: 400."""
    url = URL.format(device=WLTE_ID, relay=1)
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with_key = headers(token) | {"Content-Type": "application/json"}
    cases: list[tuple[dict[str, str], Any, str]] = [
        (auth, json.dumps({"action": "ON"}), "Idempotency-Key header is required"),
        (with_key, b"", "JSON object body is required"),
        (with_key, b"{not json", "not valid JSON"),
        (with_key, b'{"action": "\xff"}', "not valid UTF-8"),
        (with_key, b'{"action": NaN}', "not valid JSON"),
        (with_key, b'"ON"', "must be a JSON object"),
        (with_key | {"Content-Type": "text/plain"}, b'{"action": "ON"}', "Content-Type"),
        (with_key, json.dumps({"action": "ON", "pad": "x" * 70000}), "exceeds 65536 bytes"),
    ]
    for request_headers, data, message in cases:
        response = await client.post(url, data=data, headers=request_headers)
        body = await checked(response)
        assert (response.status, body["code"]) == (400, "INVALID_REQUEST"), data[:40]
        assert message in body["message"]
    response = await client.post(
        url, data=b'{"action": "ON"}', headers=headers(token) | {"Content-Type": "x/y+json"}
    )
    assert response.status == 202  # any JSON media type will do
    await checked(response)


async def test_body_over_64k_without_length_is_400(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, token: str
) -> None:
    """A chunked body (no Content-Length) is cut off at 64 KiB."""

    async def chunks() -> AsyncGenerator[bytes]:
        yield b'{"action": "ON", "pad": "'
        for _ in range(10):
            yield b"x" * 8192
        yield b'"}'

    response = await client.post(
        URL.format(device=WLTE_ID, relay=1),
        data=chunks(),
        headers=headers(token) | {"Content-Type": "application/json"},
    )
    body = await checked(response)
    assert (response.status, body["code"]) == (400, "INVALID_REQUEST")
    assert body["data"] == {"maxBodyBytes": 65536}


async def test_valid_key_formats(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """Keys of 1 and 128 characters of letters, digits, '-' and '_' are accepted."""
    api_of(hass).clock = lambda: 0.0
    assert (await execute(client, token, "ON", 1, "a"))[0] == 202
    assert (await execute(client, token, "ON", 2, "Aa0-_" * 25 + "xyz"))[0] == 202


async def test_unknown_device_and_relay_beyond_device(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """Unknown device: 404 DEVICE_NOT_FOUND; a relay it lacks: 422 COMMAND_REJECTED."""
    status, body = await execute(client, token, device="nope")
    assert (status, body["code"]) == (404, "DEVICE_NOT_FOUND")
    status, body = await execute(client, token, relay=5)
    assert (status, body["code"]) == (422, "COMMAND_REJECTED")
    assert body["data"] == {"relayIndex": 5, "relays": 4}
    status, body = await execute(client, token, relay=1, device=LOCK_ID)
    assert (status, body["code"]) == (422, "COMMAND_REJECTED")
    assert "no relays" in body["message"]
    assert device.commands == []


async def test_empty_device_id_is_400(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, token: str
) -> None:
    """deviceId must not be empty."""
    status, body = await execute(client, token, device="")
    assert (status, body["code"]) == (400, "INVALID_REQUEST")
    assert body["data"] == {"field": "deviceId"}
    status, body = await result(client, token, "abc", device="%20")
    assert (status, body["code"]) == (400, "INVALID_REQUEST")


async def test_offline_device_is_422_and_key_reusable(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    device: RelayDevice,
    client: TestClient,
    token: str,
    peer: PahoPeer,
) -> None:
    """A device that said offline: 422 DEVICE_OFFLINE, no record; the key works once online."""
    engine = engine_of(hub)
    await announce(hass, peer, engine, online=False)
    key = str(uuid.uuid4())
    status, body = await execute(client, token, "ON", 1, key)
    assert (status, body["code"]) == (422, "DEVICE_OFFLINE")
    assert await engine.async_list(WLTE_ID) == []

    await announce(hass, peer, engine, online=True)
    status, body = await execute(client, token, "ON", 1, key)
    assert (status, body["data"]["status"]) == (202, "SUCCESS")


async def test_parallel_duplicates_refused_before_acceptance(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    device: RelayDevice,
    client: TestClient,
    token: str,
    peer: PahoPeer,
) -> None:
    """Concurrent duplicates of a refused request are each refused; nothing is recorded."""
    engine = engine_of(hub)
    await announce(hass, peer, engine, online=False)
    store = hub.runtime_data.store
    lookup = store.idempotency_get

    async def slow_lookup(scope: str) -> Any:
        await asyncio.sleep(0.05)  # the duplicates arrive while the first one is being handled
        return await lookup(scope)

    key = str(uuid.uuid4())
    with patch.object(store, "idempotency_get", slow_lookup):
        answers = await asyncio.gather(*(execute(client, token, "ON", 1, key) for _ in range(10)))
    assert {(status, body["code"]) for status, body in answers} == {(422, "DEVICE_OFFLINE")}
    assert await engine.async_list(WLTE_ID) == []
    assert len(api_of(hass).inflight) == 0


async def test_mqtt_disconnected_is_503_and_key_reusable(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    client: TestClient,
    token: str,
    mosquitto: Mosquitto,
) -> None:
    """HA's MQTT client not connected: 503 GATEWAY_UNAVAILABLE, nothing recorded."""
    await hass.async_add_executor_job(mosquitto.stop)
    await wait_for(lambda: not mqtt.is_connected(hass))
    key = str(uuid.uuid4())
    status, body = await execute(client, token, "ON", 1, key)
    assert (status, body["code"]) == (503, "GATEWAY_UNAVAILABLE")
    assert await engine_of(hub).async_list(WLTE_ID) == []
    await hass.async_add_executor_job(mosquitto.start)
    await wait_for(lambda: mqtt.is_connected(hass), timeout=30)
    await engine_subscribed(hass, hub)
    status, body = await execute(client, token, "ON", 1, key)
    assert status == 202


async def test_hub_not_loaded_is_503(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, token: str
) -> None:
    """With the hub unloaded the API answers 503 GATEWAY_UNAVAILABLE."""
    assert await hass.config_entries.async_unload(hub.entry_id)
    status, body = await execute(client, token)
    assert (status, body["code"]) == (503, "GATEWAY_UNAVAILABLE")
    status, body = await result(client, token, "abc")
    assert (status, body["code"]) == (503, "GATEWAY_UNAVAILABLE")


# ---- rate limits --------------------------------------------------------------------------------


async def test_relay_cooldown_exact_retry_after(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """3 s cooldown per relay: Retry-After and retryAfterSeconds equal the exact wait."""
    now = [1000.0]
    api_of(hass).clock = lambda: now[0]
    assert (await execute(client, token, "ON", 1))[0] == 202
    assert (await execute(client, token, "ON", 2))[0] == 202  # other relay: no cooldown
    for elapsed, expected in ((0.0, 3), (0.5, 3), (1.0, 2), (2.2, 1), (2.999, 1)):
        now[0] = 1000.0 + elapsed
        key = str(uuid.uuid4())
        response = await client.post(
            URL.format(device=WLTE_ID, relay=1), json={"action": "OFF"}, headers=headers(token, key)
        )
        body = await checked(response)
        assert response.status == 429
        assert body["code"] == "RATE_LIMITED"
        assert body["message"] == "Too many requests"
        assert body["data"] == {"retryAfterSeconds": expected, "limit": "relay"}
        assert response.headers["Retry-After"] == str(expected)
    now[0] = 1003.0
    status, body = await execute(client, token, "OFF", 1, key)  # the refused key is reusable
    assert status == 202
    assert len(device.commands) == 3


async def test_device_limit_sliding_window(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    device: RelayDevice,
    client: TestClient,
    token: str,
) -> None:
    """10 per 10 s per device as a sliding window; the wait is until the oldest hit expires."""
    await start_hub(hass)
    now = [0.0]
    api_of(hass).clock = lambda: now[0]
    for n in range(10):
        now[0] = n * 0.9  # 0.0 .. 8.1, relays rotate so no cooldown applies
        assert (await execute(client, token, "ON", n % 4 + 1))[0] == 202
    now[0] = 9.0
    status, body = await execute(client, token, "ON", 3)
    assert status == 429
    assert body["data"] == {"retryAfterSeconds": 1, "limit": "device"}  # 0.0 expires at 10.0
    now[0] = 10.0
    assert (await execute(client, token, "ON", 3))[0] == 202
    now[0] = 10.5
    status, body = await execute(client, token, "ON", 4)
    assert body["data"] == {"retryAfterSeconds": 1, "limit": "device"}  # 0.9 expires at 10.9


async def test_caller_limit_and_options(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    device: RelayDevice,
    client: TestClient,
    token: str,
) -> None:
    """The per-caller limit (from the hub options) counts across devices; others are separate."""
    await start_hub(hass, **{CONF_RATE_CALLER: 3, CONF_RELAY_COOLDOWN: 0})
    now = [100.0]
    api_of(hass).clock = lambda: now[0]
    for relay in (1, 2):
        assert (await execute(client, token, "ON", relay))[0] == 202
    assert (await execute(client, token, "ON", 1, device=TASMOTA_ID))[0] == 202
    now[0] = 130.0
    status, body = await execute(client, token, "ON", 3)
    assert status == 429
    assert body["data"] == {"retryAfterSeconds": 30, "limit": "application"}
    other = (await api_of(hass).keys.async_create("other")).secret
    assert (await execute(client, other, "ON", 3))[0] == 202


async def test_replay_is_not_rate_limited(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """A replay inside the relay cooldown is answered from the record, not refused."""
    api_of(hass).clock = lambda: 5.0
    key = str(uuid.uuid4())
    assert (await execute(client, token, "ON", 1, key))[0] == 202
    assert (await execute(client, token, "ON", 1, key))[0] == 202
    assert (await execute(client, token, "ON", 1))[0] == 429


# ---- result endpoint ----------------------------------------------------------------------------


async def test_result_endpoint(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """Polling: 200 OK with the data; unknown, other device's or non-relay commands: 404."""
    _, body = await execute(client, token, "JOG", 2)
    status, polled = await result(client, token, body["data"]["id"])
    assert status == 200
    assert polled["data"] == body["data"]

    status, polled = await result(client, token, body["data"]["id"], device=TASMOTA_ID)
    assert (status, polled["code"]) == (404, "COMMAND_NOT_FOUND")
    status, polled = await result(client, token, "nope")
    assert (status, polled["code"]) == (404, "COMMAND_NOT_FOUND")
    status, polled = await result(client, token, body["data"]["id"], device="nope")
    assert (status, polled["code"]) == (404, "DEVICE_NOT_FOUND")
    lock = await engine_of(hub).async_submit(LOCK_ID, "lock", source="test")
    status, polled = await result(client, token, lock.command_id, device=LOCK_ID)
    assert (status, polled["code"]) == (404, "COMMAND_NOT_FOUND")


async def test_read_only_key_may_poll_but_not_execute(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient, token: str
) -> None:
    """device:read polls results; executing needs device:control (403 AUTH_SCOPE_DENIED)."""
    reader = (await api_of(hass).keys.async_create("reader", scopes=["device:read"])).secret
    _, body = await execute(client, token, "ON", 1)
    status, denied = await execute(client, reader, "ON", 2)
    assert (status, denied["code"]) == (403, "AUTH_SCOPE_DENIED")
    assert denied["data"] == {"requiredScope": "device:control"}
    status, _ = await result(client, reader, body["data"]["id"])
    assert status == 200
    assert len(device.commands) == 1


async def test_x_api_key_and_ha_token_work(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    device: RelayDevice,
    client: TestClient,
    token: str,
    hass_access_token: str,
) -> None:
    """A key also works as X-API-Key; an HA access token works as Bearer."""
    response = await client.post(
        URL.format(device=WLTE_ID, relay=1),
        json={"action": "ON"},
        headers={"X-API-Key": token, "Idempotency-Key": "k1"},
    )
    assert response.status == 202
    await checked(response)
    status, body = await execute(client, hass_access_token, "ON", 2)
    assert status == 202
    record = await engine_of(hub).async_get(body["data"]["id"])
    assert record is not None
    assert record.caller is not None
    assert record.caller.startswith("user:")


async def test_no_credentials_is_401_and_nothing_recorded(
    hass: HomeAssistant, hub: MockConfigEntry, device: RelayDevice, client: TestClient
) -> None:
    """Without credentials: 401 AUTH_REQUIRED with a Bearer challenge."""
    response = await client.post(
        URL.format(device=WLTE_ID, relay=1), json={"action": "ON"}, headers={"Idempotency-Key": "k"}
    )
    body = await checked(response)
    assert (response.status, body["code"]) == (401, "AUTH_REQUIRED")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert device.commands == []

"""The websocket API behind the panel and the card: every command, every refusal."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from datetime import timedelta
from typing import Any

from homeassistant.auth.const import GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, GROUP_ID_USER
from homeassistant.auth.models import Credentials
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import CLIENT_ID, MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.iotee.const import CONF_COMMAND_TIMEOUT, DOMAIN
from custom_components.iotee.core.model import CommandStatus, utcnow
from custom_components.iotee.core.rights import OPERATION_RIGHTS, Operation, Right
from simulator import Mode, SimulatedDevice

from .broker import Mosquitto
from .conftest import wait_for
from .helpers import LOCK_ID, TASMOTA_ID, WLTE_ID, engine_of, engine_subscribed, setup_hub


@pytest.fixture
def lock_device(mosquitto: Mosquitto) -> Generator[SimulatedDevice]:
    """A simulated iotee_device, online and locked."""
    with SimulatedDevice("iotee_device", LOCK_ID, mosquitto.host, mosquitto.port) as device:
        yield device


@pytest.fixture
def wlte_device(mosquitto: Mosquitto) -> Generator[SimulatedDevice]:
    """A simulated WLTE relay controller with 4 relays."""
    with SimulatedDevice("wlte_relay", WLTE_ID, mosquitto.host, mosquitto.port, relays=4) as device:
        yield device


@pytest.fixture
async def hub(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    lock_device: SimulatedDevice,
    wlte_device: SimulatedDevice,
) -> MockConfigEntry:
    """The hub with the default devices, subscribed, and IoTee's websocket API registered."""
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: 1.0})
    await engine_subscribed(hass, entry)
    assert await async_setup_component(hass, DOMAIN, {})
    return entry


async def token_for(hass: HomeAssistant, group_id: str, name: str) -> tuple[str, MockUser]:
    """Return an access token of a new user in ``group_id``."""
    group = await hass.auth.async_get_group(group_id)
    user = MockUser(name=name, groups=[group]).add_to_hass(hass)
    credential = Credentials(
        id=f"cred-{name}",
        auth_provider_type="homeassistant",
        auth_provider_id=None,
        data={"username": name},
        is_new=False,
    )
    user.credentials.append(credential)
    refresh = await hass.auth.async_create_refresh_token(user, CLIENT_ID, credential=credential)
    return hass.auth.async_create_access_token(refresh), user


class Ws:
    """A websocket client: ``call`` sends one command and returns its answer."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []
        """Events that arrived while waiting for a result."""

    async def call(self, type_: str, **fields: Any) -> dict[str, Any]:
        await self.client.send_json_auto_id({"type": type_, **fields})
        async with asyncio.timeout(10):
            while True:
                answer: dict[str, Any] = await self.client.receive_json()
                if answer["type"] == "result":
                    return answer
                self.events.append(answer)

    async def ok(self, type_: str, **fields: Any) -> Any:
        answer = await self.call(type_, **fields)
        assert answer["success"], answer
        return answer["result"]

    async def error(self, type_: str, **fields: Any) -> dict[str, str]:
        answer = await self.call(type_, **fields)
        assert not answer["success"], answer
        error: dict[str, str] = answer["error"]
        return error

    async def event(self) -> dict[str, Any]:
        if self.events:
            message = self.events.pop(0)
        else:
            async with asyncio.timeout(10):
                message = await self.client.receive_json()
        assert message["type"] == "event", message
        return message["event"]


@pytest.fixture
async def ws(hass: HomeAssistant, hub: MockConfigEntry, hass_ws_client: WebSocketGenerator) -> Ws:
    """A websocket client of an administrator."""
    return Ws(await hass_ws_client(hass))


async def finished(hass: HomeAssistant, entry: MockConfigEntry, command_id: str) -> None:
    """Wait until a command has ended."""
    engine = engine_of(entry)
    await engine.async_wait(command_id, 5)
    await hass.async_block_till_done()


async def test_list_pages_newest_first_with_names_and_user(
    hass: HomeAssistant, hub: MockConfigEntry, ws: Ws, hass_admin_user: MockUser
) -> None:
    engine = engine_of(hub)
    sent = [
        await engine.async_submit(LOCK_ID, "lock", source="test", caller=hass_admin_user.id),
        await engine.async_submit(WLTE_ID, "ON", 2, source="api", caller="key:ik_1"),
        await engine.async_submit(LOCK_ID, "unlock", source="test", caller=None),
    ]
    first = await ws.ok("iotee/commands/list", limit=2)
    assert [c["command_id"] for c in first["commands"]] == [
        sent[2].command_id,
        sent[1].command_id,
    ]
    assert first["commands"][0]["device_name"] == "Front door"
    assert first["commands"][1]["api_key_id"] == "ik_1"
    assert first["commands"][1]["user_id"] is None
    assert first["next"]
    rest = await ws.ok("iotee/commands/list", limit=2, before=first["next"])
    assert [c["command_id"] for c in rest["commands"]] == [sent[0].command_id]
    assert rest["commands"][0]["user_id"] == hass_admin_user.id
    assert rest["next"] is None


async def test_list_filters(hass: HomeAssistant, hub: MockConfigEntry, ws: Ws) -> None:
    engine = engine_of(hub)
    lock = await engine.async_submit(LOCK_ID, "lock", source="test")
    relay2 = await engine.async_submit(WLTE_ID, "ON", 2, source="api")
    relay3 = await engine.async_submit(WLTE_ID, "OFF", 3, source="api")
    # No simulator for the Tasmota device: its command times out after 1 s.
    silent = await engine.async_submit(TASMOTA_ID, "ON", 1, source="service")
    for record in (lock, relay2, relay3, silent):
        await finished(hass, hub, record.command_id)

    async def listed(**filters: Any) -> list[str]:
        result = await ws.ok("iotee/commands/list", **filters)
        return [c["command_id"] for c in result["commands"]]

    assert await listed(device=WLTE_ID) == [relay3.command_id, relay2.command_id]
    device_id = engine.device(WLTE_ID).device_id
    assert await listed(device=device_id) == [relay3.command_id, relay2.command_id]
    assert await listed(device=WLTE_ID, relay=2) == [relay2.command_id]
    assert await listed(entity_id="switch.gate_controller_relay_3") == [relay3.command_id]
    assert await listed(entity_id="lock.front_door") == [lock.command_id]
    assert await listed(status="timeout") == [silent.command_id]
    assert await listed(status="completed", source="api") == [
        relay3.command_id,
        relay2.command_id,
    ]
    assert await listed(command_id=lock.command_id[:6]) == [lock.command_id]
    now = utcnow()
    assert len(await listed(since=(now - timedelta(minutes=1)).isoformat())) == 4
    assert await listed(until=(now - timedelta(minutes=1)).isoformat()) == []


@pytest.mark.parametrize(
    ("filters", "code"),
    [
        ({"device": "nope"}, "not_found"),
        ({"entity_id": "light.kitchen"}, "not_found"),
        ({"entity_id": "lock.front_door", "relay": 1}, "invalid_format"),
        ({"relay": 1, "target": "lock"}, "invalid_format"),
        ({"before": "not-a-cursor"}, "invalid_format"),
        ({"status": "done"}, "invalid_format"),
        ({"limit": 0}, "invalid_format"),
        ({"since": "yesterday"}, "invalid_format"),
    ],
)
async def test_list_refuses_bad_filters(ws: Ws, filters: dict[str, Any], code: str) -> None:
    assert (await ws.error("iotee/commands/list", **filters))["code"] == code


async def test_get_shows_timeline_and_retry_chain(
    hass: HomeAssistant, hub: MockConfigEntry, ws: Ws, wlte_device: SimulatedDevice
) -> None:
    wlte_device.set_behaviour(mode=Mode.FAIL)
    failed = await ws.ok("iotee/commands/send", device=WLTE_ID, command="ON", relay=1)
    await finished(hass, hub, failed["command_id"])
    wlte_device.set_behaviour(mode=Mode.NORMAL)
    retry = await ws.ok("iotee/commands/retry", command_id=failed["command_id"])
    assert retry["retry_of"] == failed["command_id"]
    await finished(hass, hub, retry["command_id"])

    got = await ws.ok("iotee/commands/get", command_id=failed["command_id"])
    command = got["command"]
    assert command["status"] == "failed"
    assert command["error_code"] == "device_failed"
    assert [h["status"] for h in command["history"]] == [
        "pending",
        "published",
        "acknowledged",
        "failed",
    ]
    assert [c["command_id"] for c in got["chain"]] == [failed["command_id"], retry["command_id"]]
    assert got["chain"][1]["status"] == "completed"
    assert (await ws.error("iotee/commands/get", command_id="nope"))["code"] == "not_found"


async def test_devices(hub: MockConfigEntry, ws: Ws) -> None:
    devices = {d["hardware_id"]: d for d in (await ws.ok("iotee/devices"))["devices"]}
    assert set(devices) == {LOCK_ID, WLTE_ID, TASMOTA_ID}
    gate = devices[WLTE_ID]
    assert gate["name"] == "Gate controller"
    assert gate["relays"] == 4
    assert gate["relay_locks"] == [4]
    assert [c["name"] for c in gate["commands"]] == ["ON", "OFF", "JOG"]
    assert gate["online"] is True
    assert devices[TASMOTA_ID]["online"] is None


async def test_send_records_the_user_and_source(
    hass: HomeAssistant, hub: MockConfigEntry, ws: Ws, hass_admin_user: MockUser
) -> None:
    sent = await ws.ok("iotee/commands/send", device=LOCK_ID, command="unlock")
    assert sent["status"] in ("published", "completed")
    assert sent["source"] == "websocket"
    assert sent["user_id"] == hass_admin_user.id
    await finished(hass, hub, sent["command_id"])
    record = await engine_of(hub).async_get(sent["command_id"])
    assert record is not None
    assert record.status is CommandStatus.COMPLETED
    assert record.caller == hass_admin_user.id


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"device": "nope", "command": "lock"}, "not_found"),
        ({"device": LOCK_ID, "command": "dance"}, "unsupported_command"),
        ({"device": WLTE_ID, "command": "ON", "relay": 9}, "invalid_relay"),
        ({"device": LOCK_ID, "command": "lock", "params": {"x": "y" * 5000}}, "invalid_params"),
        ({"device": LOCK_ID}, "invalid_format"),
    ],
)
async def test_send_refuses_bad_commands(
    hub: MockConfigEntry, ws: Ws, fields: dict[str, Any], code: str
) -> None:
    assert (await ws.error("iotee/commands/send", **fields))["code"] == code
    assert await engine_of(hub).async_list(None, 10) == []


async def test_retry_refuses_unknown_and_unfinished(
    hass: HomeAssistant, hub: MockConfigEntry, ws: Ws
) -> None:
    assert (await ws.error("iotee/commands/retry", command_id="nope"))["code"] == "not_found"
    done = await ws.ok("iotee/commands/send", device=LOCK_ID, command="lock")
    await finished(hass, hub, done["command_id"])
    error = await ws.error("iotee/commands/retry", command_id=done["command_id"])
    assert error["code"] == "not_retryable"


async def test_delete_and_purge(hass: HomeAssistant, hub: MockConfigEntry, ws: Ws) -> None:
    engine = engine_of(hub)
    first = await engine.async_submit(LOCK_ID, "lock", source="test")
    await finished(hass, hub, first.command_id)
    assert await ws.ok("iotee/commands/delete", command_id=first.command_id) == {"deleted": True}
    assert await engine.async_get(first.command_id) is None
    error = await ws.error("iotee/commands/delete", command_id=first.command_id)
    assert error["code"] == "not_found"

    second = await engine.async_submit(LOCK_ID, "unlock", source="test")
    await finished(hass, hub, second.command_id)
    kept = await ws.ok("iotee/commands/purge", older_than_days=1)
    assert kept["deleted"] == 0
    purged = await ws.ok("iotee/commands/purge", older_than_days=0)
    assert purged["deleted"] == 1
    assert purged["cutoff_date"].endswith("Z")
    assert await engine.async_list(None, 10) == []
    error = await ws.error("iotee/commands/purge", older_than_days=-1)
    assert error["code"] == "invalid_format"


async def test_subscribe_pushes_matching_changes_live(
    hass: HomeAssistant, hub: MockConfigEntry, ws: Ws
) -> None:
    engine = engine_of(hub)
    await ws.ok("iotee/commands/subscribe", device=LOCK_ID)
    other = await engine.async_submit(WLTE_ID, "ON", 1, source="test")  # not pushed
    sent = await engine.async_submit(LOCK_ID, "unlock", source="test")
    seen: list[tuple[str | None, str]] = []
    while not seen or seen[-1][1] != "completed":
        event = await ws.event()
        assert event["command"]["command_id"] == sent.command_id
        seen.append((event["old_status"], event["command"]["status"]))
    assert seen == [(None, "pending"), ("pending", "published"), ("published", "completed")]

    await ws.ok("iotee/commands/delete", command_id=sent.command_id)
    assert await ws.event() == {"deleted": [sent.command_id]}
    await finished(hass, hub, other.command_id)  # a purge deletes only finished commands
    purged = await ws.ok("iotee/commands/purge", older_than_days=0)
    assert await ws.event() == {"purged": purged}


async def test_subscribers_hear_of_deletes_and_purges_through_every_door(
    hass: HomeAssistant, hub: MockConfigEntry, ws: Ws, hass_client: ClientSessionGenerator
) -> None:
    """A delete or purge through the REST API or an action is the same event as over the
    websocket; a purge that deletes nothing is no event."""
    engine = engine_of(hub)
    await ws.ok("iotee/commands/subscribe", device=LOCK_ID)
    # Commands of another device: no change events to this subscription, only their removals.
    first, second, third = [
        await engine.async_submit(WLTE_ID, "ON", 1, source="test") for _ in range(3)
    ]
    for record in (first, second, third):
        await finished(hass, hub, record.command_id)
    rest = await hass_client()

    response = await rest.delete(f"/api/iotee/commands/{first.command_id}")
    assert response.status == 200
    assert await ws.event() == {"deleted": [first.command_id]}

    response = await rest.post("/api/iotee/commands/purge", json={"older_than_days": 1})
    assert (response.status, (await response.json())["deleted"]) == (200, 0)
    response = await rest.post("/api/iotee/commands/purge", json={"older_than_days": 0})
    body = await response.json()
    assert (response.status, body["deleted"]) == (200, 2)
    assert await ws.event() == {"purged": {"cutoff_date": body["cutoff_date"], "deleted": 2}}

    fourth = await engine.async_submit(WLTE_ID, "OFF", 1, source="test")
    await finished(hass, hub, fourth.command_id)
    answer = await hass.services.async_call(
        DOMAIN, "purge_commands", {"older_than_days": 0}, blocking=True, return_response=True
    )
    assert answer is not None
    assert await ws.event() == {"purged": {"cutoff_date": answer["cutoff_date"], "deleted": 1}}
    assert not ws.events


async def test_subscription_follows_a_reload_and_ends_with_the_connection(
    hass: HomeAssistant, hub: MockConfigEntry, hass_ws_client: WebSocketGenerator
) -> None:
    client = Ws(await hass_ws_client(hass))
    await client.ok("iotee/commands/subscribe", status="pending")
    assert await hass.config_entries.async_reload(hub.entry_id)
    await hass.async_block_till_done()
    engine = engine_of(hub)
    await engine_subscribed(hass, hub)
    sent = await engine.async_submit(LOCK_ID, "lock", source="test")
    event = await client.event()
    assert event["command"]["command_id"] == sent.command_id
    assert event["old_status"] is None

    listeners = len(engine._command_listeners)
    removal_listeners = len(engine._removal_listeners)
    await client.client.close()
    await wait_for(lambda: len(engine._command_listeners) == listeners - 1)
    assert len(engine._removal_listeners) == removal_listeners - 1


COMMANDS: dict[str, tuple[Operation, dict[str, Any]]] = {
    "list_all": (Operation.LIST_ALL, {"type": "iotee/commands/list"}),
    "list_device": (Operation.HISTORY, {"type": "iotee/commands/list", "device": LOCK_ID}),
    "subscribe_all": (Operation.LIST_ALL, {"type": "iotee/commands/subscribe"}),
    "subscribe_entity": (
        Operation.HISTORY,
        {"type": "iotee/commands/subscribe", "entity_id": "lock.front_door"},
    ),
    "get": (Operation.GET, {"type": "iotee/commands/get", "command_id": "{id}"}),
    "devices": (Operation.HISTORY, {"type": "iotee/devices"}),
    "send": (
        Operation.SEND,
        {"type": "iotee/commands/send", "device": LOCK_ID, "command": "lock"},
    ),
    "retry": (Operation.RETRY, {"type": "iotee/commands/retry", "command_id": "{id}"}),
    "delete": (Operation.DELETE, {"type": "iotee/commands/delete", "command_id": "{id}"}),
    "purge": (Operation.PURGE, {"type": "iotee/commands/purge", "older_than_days": 30}),
}
USERS = {
    "admin": (GROUP_ID_ADMIN, frozenset(Right)),
    "user": (GROUP_ID_USER, frozenset({Right.READ, Right.CONTROL})),
    "read_only": (GROUP_ID_READ_ONLY, frozenset({Right.READ})),
}


@pytest.mark.parametrize("user", list(USERS))
@pytest.mark.parametrize("command", list(COMMANDS))
async def test_rights_are_those_of_the_rights_table(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    wlte_device: SimulatedDevice,
    user: str,
    command: str,
) -> None:
    """Each command needs what core.rights says, for administrators, users and read-only users."""
    group_id, holds = USERS[user]
    operation, message = COMMANDS[command]
    wlte_device.set_behaviour(mode=Mode.FAIL)
    failed = await engine_of(hub).async_submit(WLTE_ID, "ON", 1, source="test")
    await finished(hass, hub, failed.command_id)
    token, _ = await token_for(hass, group_id, user)
    client = Ws(await hass_ws_client(hass, token))
    fields = {
        k: v.format(id=failed.command_id) if isinstance(v, str) else v for k, v in message.items()
    }
    answer = await client.call(fields.pop("type"), **fields)
    allowed = OPERATION_RIGHTS[operation] <= holds
    if allowed:
        assert answer["success"], answer
    else:
        assert not answer["success"]
        assert answer["error"]["code"] == "unauthorized"
        # Nothing happened: the failed command is still there and was not retried.
        assert [r.command_id for r in await engine_of(hub).async_list(None, 10)] == [
            failed.command_id
        ]


@pytest.mark.parametrize("command", list(COMMANDS))
async def test_every_command_says_when_no_hub_is_loaded(
    hass: HomeAssistant, hub: MockConfigEntry, ws: Ws, command: str
) -> None:
    assert await hass.config_entries.async_unload(hub.entry_id)
    message = dict(COMMANDS[command][1])
    fields = {k: v.format(id="c1") if isinstance(v, str) else v for k, v in message.items()}
    error = await ws.error(fields.pop("type"), **fields)
    assert error["code"] == "not_loaded"

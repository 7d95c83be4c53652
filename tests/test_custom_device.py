"""A device the user describes: the description's checks, its DeviceType, and one set up through
the add-device flow and commanded end to end on the real broker."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.event import async_track_state_change_event
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.const import CONF_COMMAND_TIMEOUT, SUBENTRY_DEVICE
from custom_components.iotee.core import custom_device as cd
from custom_components.iotee.core.device_config import DeviceConfig
from custom_components.iotee.core.device_types import FollowUp
from custom_components.iotee.core.matcher import ConfirmationMatcher, Verdict
from custom_components.iotee.core.model import CommandStatus, ErrorCode
from custom_components.iotee.core.state_parser import Reading, read_state
from custom_components.iotee.core.store import StoreFaultError
from custom_components.iotee.engine import CommandEngine

from .broker import Message, PahoPeer
from .conftest import wait_for
from .helpers import engine_of, engine_subscribed, setup_hub, stop_hub

GATE = {
    cd.KIND: cd.KIND_RELAYS,
    cd.COMMAND_TOPIC: "home/gate/{relay}/cmd",
    cd.CONFIRM: cd.CONFIRM_RESULT,
    cd.AVAILABILITY_TOPIC: "home/gate/alive",
    cd.PAYLOAD_ONLINE: "yes",
    cd.PAYLOAD_OFFLINE: "no",
    cd.PAYLOAD_ON: '{{"do": "{action}", "ref": "{command_id}"}}',
    cd.PAYLOAD_OFF: '{{"do": "{action}", "ref": "{command_id}"}}',
    cd.JOG: cd.JOG_DEVICE,
    cd.PAYLOAD_JOG: '{{"do": "pulse", "ref": "{command_id}"}}',
    cd.RESULT_TOPIC: "home/gate/{relay}/ack",
    cd.ID_FIELD: "ref",
    cd.STATUS_FIELD: "outcome",
    cd.SUCCESS_VALUES: "ok, done",
    cd.FAILURE_VALUES: "error",
    cd.REASON_FIELD: "why",
}
SAFE = {
    cd.KIND: cd.KIND_LOCK,
    cd.COMMAND_TOPIC: "vault/door/set",
    cd.CONFIRM: cd.CONFIRM_STATE,
    cd.AVAILABILITY_TOPIC: "",
    cd.PAYLOAD_LOCK: "close",
    cd.PAYLOAD_UNLOCK: "open",
    cd.STATE_TOPIC: "vault/door",
    cd.STATE_PATH: "lock.state",
    cd.VALUE_ON: "LOCKED",
    cd.VALUE_OFF: "UNLOCKED",
}


def config(data: dict[str, Any], relays: int = 0) -> DeviceConfig:
    return DeviceConfig("dev", "Dev", cd.custom_device_type(data), relays)


# ---- the description as a DeviceType ------------------------------------------------------


def test_result_device_renders_and_confirms() -> None:
    gate = config(GATE, relays=2)
    dtype = gate.device_type
    assert sorted(dtype.commands) == ["JOG", "OFF", "ON"]
    assert dtype.has_relays
    assert not dtype.has_lock
    spec = dtype.commands["ON"]
    assert gate.topic(spec.topic, 2) == "home/gate/2/cmd"
    payload = gate.render(spec.payload, 2, command_id="c1", action="ON")
    assert json.loads(payload) == {"do": "ON", "ref": "c1"}
    confirmation = gate.confirmation(spec, 2)
    matcher = ConfirmationMatcher("c1", confirmation, confirmation.topic)
    assert confirmation.topic == "home/gate/2/ack"
    assert matcher.feed('{"ref": "c2", "outcome": "ok"}', retained=False) is None
    assert matcher.feed('{"ref": "c1", "outcome": "OK", "extra": 1}', retained=False) == Verdict(
        CommandStatus.COMPLETED
    )
    failing = ConfirmationMatcher("c1", confirmation, confirmation.topic)
    assert failing.feed(
        '{"ref": "c1", "outcome": "error", "why": "motor stalled"}', retained=False
    ) == (Verdict(CommandStatus.FAILED, ErrorCode.DEVICE_FAILED, "motor stalled"))
    assert read_state(dtype.availability_readings, "no") == Reading(False)


def test_state_device_reads_a_json_path() -> None:
    safe = config(SAFE)
    dtype = safe.device_type
    assert sorted(dtype.commands) == ["lock", "unlock"]
    assert dtype.has_lock
    assert not dtype.has_relays
    assert dtype.availability_topic == ""
    confirmation = safe.confirmation(dtype.commands["lock"], None)
    matcher = ConfirmationMatcher("c1", confirmation, confirmation.topic)
    assert matcher.feed('{"lock": {"state": "UNLOCKED"}, "battery": 3}', retained=False) is None
    assert matcher.feed('{"lock": {"state": "LOCKED"}}', retained=False) == Verdict(
        CommandStatus.COMPLETED
    )
    readings = safe.readings(dtype.lock_readings, None)
    assert read_state(readings, '{"lock": {"state": "UNLOCKED"}}') == Reading(False)


def test_device_pulse_jog_is_on_then_off() -> None:
    data = GATE | {cd.CONFIRM: cd.CONFIRM_STATE, cd.STATE_TOPIC: "home/gate/{relay}/state"}
    data |= {cd.VALUE_ON: "1", cd.VALUE_OFF: "0"}
    gate = config(data, relays=1)
    confirmation = gate.confirmation(gate.device_type.commands["JOG"], 1)
    matcher = ConfirmationMatcher("c1", confirmation, confirmation.topic)
    assert [matcher.feed(p, retained=False) for p in ("1", "0")] == [
        Verdict(CommandStatus.ACKNOWLEDGED),
        Verdict(CommandStatus.COMPLETED),
    ]
    assert gate.device_type.relay_state_topic == "home/gate/{relay}/state"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        (cd.COMMAND_TOPIC, "home/+/cmd", "invalid_topic"),
        (cd.COMMAND_TOPIC, "home/#", "invalid_topic"),
        (cd.COMMAND_TOPIC, "home/{device}/cmd", "invalid_template"),
        (cd.COMMAND_TOPIC, "home/{relay/cmd", "invalid_template"),
        (cd.COMMAND_TOPIC, "", "invalid_topic"),
        (cd.RESULT_TOPIC, "home/{action}/ack", "invalid_template"),
        (cd.STATE_TOPIC, "home/{command_id}", "invalid_template"),
        (cd.AVAILABILITY_TOPIC, "home/{relay}/alive", "invalid_template"),
        (cd.PAYLOAD_ON, "", "invalid_payload"),
        (cd.PAYLOAD_ON, '{"do": "x"}', "invalid_template"),
        (cd.PAYLOAD_ON, "{relay!r}", "invalid_template"),
        (cd.PAYLOAD_ON, "x" * 1025, "invalid_payload"),
        (cd.STATE_PATH, "lock..state", "invalid_path"),
        (cd.STATE_PATH, "lock state", "invalid_path"),
        (cd.ID_FIELD, "", "invalid_path"),
        (cd.SUCCESS_VALUES, " , ", "invalid_values"),
        (cd.VALUE_ON, "x" * 101, "invalid_value"),
    ],
)
def test_bad_fields_are_refused(field: str, value: str, error: str) -> None:
    assert cd.check({field: value}, (field,)) == {field: error}


def test_good_descriptions_pass_and_values_must_differ() -> None:
    assert cd.check(GATE, tuple(GATE)) == {}
    assert cd.check(SAFE, tuple(SAFE)) == {}
    assert cd.check({cd.VALUE_ON: "1", cd.VALUE_OFF: "1"}, (cd.VALUE_ON, cd.VALUE_OFF)) == {
        cd.VALUE_OFF: "same_values"
    }
    no_jog = {cd.JOG: cd.JOG_NONE, cd.PAYLOAD_JOG: ""}
    assert cd.check(no_jog, (cd.PAYLOAD_JOG,)) == {}
    assert cd.check({cd.JOG: cd.JOG_DEVICE, cd.PAYLOAD_JOG: ""}, (cd.PAYLOAD_JOG,)) == {
        cd.PAYLOAD_JOG: "invalid_payload"
    }


# ---- through the add-device flow, end to end ----------------------------------------------


async def step(hass: HomeAssistant, result: dict[str, Any], data: dict[str, Any]) -> Any:
    return await hass.config_entries.subentries.async_configure(result["flow_id"], data)


async def finish_relays(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    result: dict[str, Any],
    hardware_id: str,
    relays: int,
) -> CommandEngine:
    """Answer the relays steps (no lock relay); return the engine once it follows the device."""
    assert result["step_id"] == "relays"
    result = await step(hass, result, {"relays": relays})
    result = await step(hass, result, {"relay_locks": []})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    await wait_for(lambda: hardware_id in engine_of(entry).devices)
    await engine_subscribed(hass, entry)
    return engine_of(entry)


def answering_device(peer: PahoPeer, outcome: str = "ok") -> list[Message]:
    """Make ``peer`` the gate: answer each command on its relay's ack topic."""
    received: list[Message] = []

    def handle(client: PahoPeer, message: Message) -> None:
        if not message.topic.endswith("/cmd"):
            return
        received.append(message)
        relay = message.topic.split("/")[2]
        command = json.loads(message.payload)
        answer = {"ref": command["ref"], "outcome": outcome, "why": "stuck"}
        client._client.publish(f"home/gate/{relay}/ack", json.dumps(answer), qos=1)

    peer.handlers.append(handle)
    return received


async def test_user_defined_device_through_the_flow_commanded_end_to_end(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """Add the gate with the subentry flow (errors first), then command it on the broker."""
    entry = await setup_hub(hass, ())
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
    )
    result = await step(
        hass, result, {"name": "Gate", "device_type": "custom", "hardware_id": "gate1"}
    )
    assert result["step_id"] == "custom"
    first = {key: GATE[key] for key in (cd.KIND, cd.CONFIRM, cd.AVAILABILITY_TOPIC)}
    first |= {cd.PAYLOAD_ONLINE: "yes", cd.PAYLOAD_OFFLINE: "no"}
    result = await step(hass, result, first | {cd.COMMAND_TOPIC: "home/gate/+/cmd"})
    assert result["errors"] == {cd.COMMAND_TOPIC: "invalid_topic"}
    result = await step(hass, result, first | {cd.COMMAND_TOPIC: GATE[cd.COMMAND_TOPIC]})
    assert result["step_id"] == "custom_payloads"
    payloads = {key: GATE[key] for key in (cd.PAYLOAD_ON, cd.PAYLOAD_OFF, cd.JOG, cd.PAYLOAD_JOG)}
    result = await step(hass, result, payloads | {cd.PAYLOAD_ON: '{"do": "on"}'})
    assert result["errors"] == {cd.PAYLOAD_ON: "invalid_template"}
    result = await step(hass, result, payloads)
    assert result["step_id"] == "custom_result"
    answers = {
        key: GATE[key]
        for key in (
            cd.RESULT_TOPIC,
            cd.ID_FIELD,
            cd.STATUS_FIELD,
            cd.SUCCESS_VALUES,
            cd.FAILURE_VALUES,
            cd.REASON_FIELD,
        )
    }
    result = await step(hass, result, answers | {cd.SUCCESS_VALUES: ""})
    assert result["errors"] == {cd.SUCCESS_VALUES: "invalid_values"}
    result = await step(hass, result, answers)
    engine = await finish_relays(hass, entry, result, "gate1", 2)
    await hass.async_add_executor_job(peer.subscribe, "home/gate/+/cmd")
    received = answering_device(peer)
    await hass.async_add_executor_job(peer.publish, "home/gate/alive", "yes", True)
    await wait_for(lambda: engine.states["gate1"].online is True)

    record = await engine.async_submit("gate1", "ON", 2, source="test")
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.COMPLETED
    assert final.device_type == "custom"
    assert json.loads(received[0].payload) == {"do": "ON", "ref": record.command_id}
    assert received[0].topic == "home/gate/2/cmd"
    jog = await engine.async_wait(
        (await engine.async_submit("gate1", "JOG", 1, source="test")).command_id, 5
    )
    assert jog.status is CommandStatus.COMPLETED
    assert hass.states.get("switch.gate_relay_2").attributes["last_command_status"] == "completed"
    assert hass.states.get("button.gate_jog_relay_1") is not None

    peer.handlers.clear()
    answering_device(peer, "error")
    failed = await engine.async_wait(
        (await engine.async_submit("gate1", "OFF", 2, source="test")).command_id, 5
    )
    assert (failed.status, failed.error_code, failed.error) == (
        CommandStatus.FAILED,
        "device_failed",
        "stuck",
    )

    await hass.async_add_executor_job(peer.publish, "home/gate/alive", "no", True)
    await wait_for(lambda: engine.states["gate1"].online is False)
    offline = await engine.async_submit("gate1", "ON", 1, source="test")
    assert (offline.status, offline.error_code) == (CommandStatus.FAILED, "device_offline")


async def test_user_defined_lock_confirmed_by_a_json_state(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """A lock without availability, confirmed by a field of its JSON state."""
    entry = await setup_hub(hass, ())
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
    )
    result = await step(
        hass, result, {"name": "Vault", "device_type": "custom", "hardware_id": "v1"}
    )
    keys = (cd.KIND, cd.COMMAND_TOPIC, cd.CONFIRM, cd.AVAILABILITY_TOPIC)
    result = await step(
        hass,
        result,
        {k: SAFE[k] for k in keys} | {cd.PAYLOAD_ONLINE: "on", cd.PAYLOAD_OFFLINE: "off"},
    )
    result = await step(hass, result, {k: SAFE[k] for k in (cd.PAYLOAD_LOCK, cd.PAYLOAD_UNLOCK)})
    assert result["step_id"] == "custom_state"
    keys = (cd.STATE_TOPIC, cd.STATE_PATH, cd.VALUE_ON, cd.VALUE_OFF)
    result = await step(hass, result, {k: SAFE[k] for k in keys})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    await wait_for(lambda: "v1" in engine_of(entry).devices)
    engine = engine_of(entry)
    await engine_subscribed(hass, entry)

    def handle(client: PahoPeer, message: Message) -> None:
        if message.topic == "vault/door/set":
            state = "LOCKED" if message.payload == "close" else "UNLOCKED"
            client._client.publish("vault/door", json.dumps({"lock": {"state": state}}), qos=1)

    await hass.async_add_executor_job(peer.subscribe, "vault/door/set")
    peer.handlers.append(handle)
    final = await engine.async_wait(
        (await engine.async_submit("v1", "unlock", source="test")).command_id, 5
    )
    assert final.status is CommandStatus.COMPLETED
    await wait_for(lambda: hass.states.get("lock.vault").state == "unlocked")


# ---- JOG done by IoTee: ON, then OFF ------------------------------------------------------

PORCH = {
    cd.KIND: cd.KIND_RELAYS,
    cd.COMMAND_TOPIC: "porch/{relay}/set",
    cd.CONFIRM: cd.CONFIRM_STATE,
    cd.AVAILABILITY_TOPIC: "",
    cd.PAYLOAD_ON: "ON",
    cd.PAYLOAD_OFF: "OFF",
    cd.JOG: cd.JOG_IOTEE,
    cd.JOG_SECONDS: "0.4",
    cd.STATE_TOPIC: "porch/{relay}/state",
    cd.VALUE_ON: "ON",
    cd.VALUE_OFF: "OFF",
}


def test_iotee_jog_is_on_then_off_after_its_seconds() -> None:
    porch = config(PORCH, relays=2)
    jog = porch.device_type.commands["JOG"]
    assert (jog.payload, jog.follow_up) == ("ON", FollowUp("OFF", 0.4))
    confirmation = porch.confirmation(jog, 2)
    assert confirmation.topic == "porch/2/state"
    matcher = ConfirmationMatcher("c1", confirmation, confirmation.topic)
    assert [matcher.feed(p, retained=False) for p in ("ON", "OFF")] == [
        Verdict(CommandStatus.ACKNOWLEDGED),
        Verdict(CommandStatus.COMPLETED),
    ]


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (PORCH | {cd.JOG_SECONDS: "0"}, {cd.JOG_SECONDS: "invalid_jog_seconds"}),
        (PORCH | {cd.JOG_SECONDS: "3601"}, {cd.JOG_SECONDS: "invalid_jog_seconds"}),
        (PORCH | {cd.JOG_SECONDS: "soon"}, {cd.JOG_SECONDS: "invalid_jog_seconds"}),
        (PORCH | {cd.CONFIRM: cd.CONFIRM_RESULT}, {cd.JOG: "jog_needs_state"}),
        (PORCH | {cd.JOG: cd.JOG_NONE, cd.JOG_SECONDS: "0"}, {}),
    ],
)
def test_iotee_jog_fields_are_checked(data: dict[str, Any], errors: dict[str, str]) -> None:
    assert cd.check(data, (cd.JOG, cd.JOG_SECONDS)) == errors


def porch_device(peer: PahoPeer) -> list[str]:
    """Make ``peer`` the porch board: report each command as the relay's state."""
    received: list[str] = []

    def handle(client: PahoPeer, message: Message) -> None:
        if message.topic.startswith("porch/") and message.topic.endswith("/set"):
            received.append(f"{message.topic} {message.payload}")
            relay = message.topic.split("/")[1]
            client._client.publish(f"porch/{relay}/state", message.payload, qos=1)

    peer.handlers.append(handle)
    return received


async def add_porch(hass: HomeAssistant, peer: PahoPeer) -> tuple[MockConfigEntry, list[str]]:
    """Add the porch board through the flow (a bad JOG first); subscribe the peer as it.

    The list returned gets each command the board receives, as ``"topic payload"``."""
    entry = await setup_hub(hass, ())
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
    )
    result = await step(
        hass, result, {"name": "Porch", "device_type": "custom", "hardware_id": "porch"}
    )
    result = await step(
        hass, result, {k: PORCH[k] for k in (cd.KIND, cd.COMMAND_TOPIC, cd.CONFIRM)}
    )
    payloads = {k: PORCH[k] for k in (cd.PAYLOAD_ON, cd.PAYLOAD_OFF, cd.JOG, cd.JOG_SECONDS)}
    result = await step(hass, result, payloads | {cd.JOG_SECONDS: "-1"})
    assert result["errors"] == {cd.JOG_SECONDS: "invalid_jog_seconds"}
    result = await step(hass, result, payloads)
    assert result["step_id"] == "custom_state"
    result = await step(
        hass, result, {k: PORCH[k] for k in (cd.STATE_TOPIC, cd.VALUE_ON, cd.VALUE_OFF)}
    )
    await finish_relays(hass, entry, result, "porch", 2)
    await hass.async_add_executor_job(peer.subscribe, "porch/+/set")
    return entry, porch_device(peer)


async def test_iotee_jog_closes_then_opens_the_relay_in_one_command(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """The JOG button publishes ON, then OFF 0.4 s later; one command, completed on OFF. At
    the automatic command QoS the ON goes at 0 (the board confirms) and the OFF at 1: the relay
    must open again even across a dropped connection."""
    entry, received = await add_porch(hass, peer)
    qos_seen: list[int] = []
    peer.handlers.append(lambda _c, m: qos_seen.append(m.qos))
    engine = engine_of(entry)
    seen: list[str] = []
    hass.bus.async_listen(
        "state_changed",
        lambda event: (
            seen.append(event.data["new_state"].state)
            if event.data["entity_id"] == "switch.porch_relay_1"
            else None
        ),
    )
    record = await engine.async_submit("porch", "JOG", 1, source="test")
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.COMPLETED
    assert received == ["porch/1/set ON", "porch/1/set OFF"]
    assert [h.status for h in final.transitions] == [
        CommandStatus.PENDING,
        CommandStatus.PUBLISHED,
        CommandStatus.ACKNOWLEDGED,
        CommandStatus.COMPLETED,
    ]
    # The OFF goes out 0.4 s after the ON was published; its confirmation comes after that.
    published_at, off_at = final.transitions[1].at, final.transitions[3].at
    assert (off_at - published_at).total_seconds() >= 0.4
    await hass.async_block_till_done()
    # unknown until the first report; on while closed; off again (attribute writes between).
    states = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
    assert states == ["unknown", "on", "off"]
    assert qos_seen == [0, 1]


async def test_a_newer_command_cancels_the_jogs_off(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """ON sent during a JOG decides the relay: the JOG's OFF never goes out."""
    entry, received = await add_porch(hass, peer)
    engine = engine_of(entry)
    jog = await engine.async_submit("porch", "JOG", 1, source="test")
    await wait_for(lambda: received == ["porch/1/set ON"])
    on = await engine.async_wait(
        (await engine.async_submit("porch", "ON", 1, source="test")).command_id, 5
    )
    assert on.status is CommandStatus.COMPLETED
    superseded = await engine.async_get(jog.command_id)
    assert superseded is not None
    assert superseded.error_code == "superseded"
    await asyncio.sleep(0.6)
    assert received == ["porch/1/set ON", "porch/1/set ON"]


async def test_stopping_sends_a_due_off_at_once(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """Home Assistant stopping mid-JOG still opens the relay."""
    entry, received = await add_porch(hass, peer)
    engine = engine_of(entry)
    await engine.async_submit("porch", "JOG", 2, source="test")
    await wait_for(lambda: received == ["porch/2/set ON"])
    await stop_hub(hass, entry)
    await wait_for(lambda: received == ["porch/2/set ON", "porch/2/set OFF"])


# ---- a device that never confirms: commands end published ----------------------------------


async def add_bell(hass: HomeAssistant) -> tuple[MockConfigEntry, CommandEngine]:
    """Set up a hub with a one-relay doorbell that only listens (it confirms nothing)."""
    entry = await setup_hub(hass, (), **{CONF_COMMAND_TIMEOUT: 0.3})
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
    )
    result = await step(
        hass, result, {"name": "Bell", "device_type": "custom", "hardware_id": "bell"}
    )
    first = {cd.KIND: cd.KIND_RELAYS, cd.COMMAND_TOPIC: "bell/{relay}/ring"}
    result = await step(hass, result, first | {cd.CONFIRM: cd.CONFIRM_NONE})
    result = await step(hass, result, {cd.PAYLOAD_ON: "1", cd.PAYLOAD_OFF: "0", cd.JOG: "none"})
    return entry, await finish_relays(hass, entry, result, "bell", 1)


async def test_device_that_never_confirms_ends_published_and_stays_so(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """A doorbell relay that only listens: each command ends ``published`` at once, never
    times out, is one outcome on the Activity page, and is not recovered as open on restart."""
    entry, engine = await add_bell(hass)
    assert "" not in engine.subscription_filters
    received: list[str] = []
    qos_seen: list[int] = []
    peer.handlers.append(lambda _c, m: received.append(f"{m.topic} {m.payload}"))
    peer.handlers.append(lambda _c, m: qos_seen.append(m.qos))
    await hass.async_add_executor_job(peer.subscribe, "bell/+/ring")
    outcomes: list[str] = []
    hass.bus.async_listen(
        "iotee_command_outcome", lambda event: outcomes.append(event.data["status"])
    )

    record = await engine.async_submit("bell", "ON", 1, source="test")
    final = await engine.async_wait(record.command_id, 5)
    assert final.status is CommandStatus.PUBLISHED
    assert final.finished
    assert engine.open_command(record.command_id) is None
    await wait_for(lambda: received == ["bell/1/ring 1"])
    # Automatic QoS: the broker's acknowledgement is all such a device's commands have.
    assert qos_seen == [1]
    await asyncio.sleep(0.5)  # past the 0.3 s command timeout
    await hass.async_block_till_done()
    stored = await engine.async_get(record.command_id)
    assert stored is not None
    assert stored.status is CommandStatus.PUBLISHED
    assert outcomes == ["published"]
    state = hass.states.get("switch.bell_relay_1")
    assert state is not None
    assert state.state == "unknown"  # the device never says
    assert state.attributes["last_command_status"] == "published"

    await stop_hub(hass, entry)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    again = await engine_of(entry).async_get(record.command_id)
    assert again is not None
    assert again.status is CommandStatus.PUBLISHED
    assert [t.status for t in again.transitions] == [
        CommandStatus.PENDING,
        CommandStatus.PUBLISHED,
    ]


async def test_entity_and_action_succeed_on_a_device_that_never_confirms(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, peer: PahoPeer
) -> None:
    """Turning the bell's switch on succeeds (being sent is all such a device will ever say),
    and an action that waits answers with the command's end - ``published`` - from the record
    in hand: even while the store cannot be read (a locked database), nothing fails."""
    entry, _ = await add_bell(hass)
    received: list[str] = []
    peer.handlers.append(lambda _c, m: received.append(f"{m.topic} {m.payload}"))
    await hass.async_add_executor_job(peer.subscribe, "bell/+/ring")
    statuses: list[str | None] = []
    unsubscribe = async_track_state_change_event(
        hass,
        "switch.bell_relay_1",
        lambda event: statuses.append(
            event.data["new_state"].attributes.get("last_command_status")
        ),
    )

    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.bell_relay_1"}, blocking=True
    )
    await wait_for(lambda: received == ["bell/1/ring 1"])
    await hass.async_block_till_done()
    assert statuses == ["pending", "published"]

    store = entry.runtime_data.store
    with patch.object(store, "get", side_effect=StoreFaultError("database is locked")):
        response = await hass.services.async_call(
            "iotee",
            "relay_command",
            {"device": "bell", "relay": 1, "action": "OFF", "wait": True},
            blocking=True,
            return_response=True,
        )
    assert response is not None
    assert response["status"] == "published"
    assert response["command"] == "OFF"
    await wait_for(lambda: received == ["bell/1/ring 1", "bell/1/ring 0"])
    await hass.async_block_till_done()
    assert statuses == ["pending", "published", "pending", "published"]
    unsubscribe()
    await stop_hub(hass, entry)

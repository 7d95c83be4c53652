"""Hub config flow, discovery, and device subentry flows: every step and error."""

from __future__ import annotations

from collections.abc import Generator
from unittest.mock import patch

from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_INTEGRATION_DISCOVERY,
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigSubentry,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.const import (
    CONF_DEVICE_TYPE,
    CONF_HARDWARE_ID,
    CONF_MQTT_TOPIC,
    CONF_RELAY_LOCKS,
    CONF_RELAYS,
    DOMAIN,
    SUBENTRY_DEVICE,
)

from .helpers import LOCK_ID, WLTE_ID, device

NO_SETUP = "custom_components.iotee.async_setup_entry"
NO_UNLOAD = "custom_components.iotee.async_unload_entry"


@pytest.fixture
def mqtt_config_entry(hass: HomeAssistant) -> Generator[None]:
    """A configured MQTT entry; flows set up dependencies, so its connection is stubbed out."""
    MockConfigEntry(domain="mqtt", data={"broker": "127.0.0.1"}).add_to_hass(hass)
    with (
        patch("homeassistant.components.mqtt.async_setup_entry", return_value=True),
        patch("homeassistant.components.mqtt.async_unload_entry", return_value=True),
    ):
        yield


def hub_entry(hass: HomeAssistant, *devices: object) -> MockConfigEntry:
    """Add a hub entry (not set up) holding ``devices``."""
    entry = MockConfigEntry(
        domain=DOMAIN, title="IoTee", unique_id=DOMAIN, subentries_data=devices or ()
    )
    entry.add_to_hass(hass)
    return entry


async def test_user_flow_creates_hub(hass: HomeAssistant, mqtt_config_entry: None) -> None:
    """The hub is created after a confirmation, with default options."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    with patch(NO_SETUP, return_value=True) as setup:
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "IoTee"
    assert result["options"]["command_timeout"] == 10.0
    assert result["options"]["retention_days"] == 90
    assert result["result"].unique_id == DOMAIN
    assert setup.called


async def test_user_flow_needs_mqtt(hass: HomeAssistant) -> None:
    """Without HA's MQTT integration the flow aborts with a translated reason."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "mqtt_not_configured"


async def test_user_flow_single_instance(hass: HomeAssistant, mqtt_config_entry: None) -> None:
    """A second hub is refused."""
    hub_entry(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "single_instance_allowed"


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_discovery_adds_device_to_hub(hass: HomeAssistant) -> None:
    """A discovered device is confirmed with a name and relay count and becomes a subentry."""
    entry = hub_entry(hass)
    with patch(NO_SETUP, return_value=True):
        result = await hass.config_entries.flow.async_init(
            DOMAIN,
            context={"source": SOURCE_INTEGRATION_DISCOVERY},
            data={CONF_DEVICE_TYPE: "wlte_relay", CONF_HARDWARE_ID: "dev42"},
        )
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "discovery_confirm"
        # The type as the user reads it (its translated name), in the form and the offer's title.
        assert result["description_placeholders"] == {
            "hardware_id": "dev42",
            "device_type": "WLTE relay controller",
        }
        (offer,) = hass.config_entries.flow.async_progress()
        assert offer["context"]["title_placeholders"] == {
            "name": "dev42",
            "device_type": "WLTE relay controller",
        }
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"name": "Barn", CONF_RELAYS: 2}
        )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "device_added"
    (subentry,) = entry.subentries.values()
    assert subentry.title == "Barn"
    assert subentry.subentry_type == SUBENTRY_DEVICE
    assert dict(subentry.data) == {
        CONF_HARDWARE_ID: "dev42",
        CONF_DEVICE_TYPE: "wlte_relay",
        CONF_RELAYS: 2,
        CONF_RELAY_LOCKS: [],
    }


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_discovery_of_lock_device_has_no_relays(hass: HomeAssistant) -> None:
    """An iotee_device needs no relay count."""
    entry = hub_entry(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_INTEGRATION_DISCOVERY},
        data={CONF_DEVICE_TYPE: "iotee_device", CONF_HARDWARE_ID: "LOCK9"},
    )
    assert CONF_RELAYS not in result["data_schema"].schema
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"name": "Back"})
    assert result["reason"] == "device_added"
    (subentry,) = entry.subentries.values()
    assert dict(subentry.data) == {CONF_HARDWARE_ID: "LOCK9", CONF_DEVICE_TYPE: "iotee_device"}


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_discovery_aborts_without_hub_or_when_configured(hass: HomeAssistant) -> None:
    """No hub, or a device already configured: nothing to confirm."""
    data = {CONF_DEVICE_TYPE: "iotee_device", CONF_HARDWARE_ID: LOCK_ID}
    context = {"source": SOURCE_INTEGRATION_DISCOVERY}
    result = await hass.config_entries.flow.async_init(DOMAIN, context=context, data=data)
    assert result["reason"] == "hub_not_configured"

    hub_entry(hass, device(LOCK_ID, "iotee_device"))
    result = await hass.config_entries.flow.async_init(DOMAIN, context=context, data=data)
    assert result["reason"] == "already_configured"


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_discovery_confirm_rechecks_hub_and_duplicates(hass: HomeAssistant) -> None:
    """If the device was added (or the hub removed) meanwhile, confirming aborts."""
    entry = hub_entry(hass)
    data = {CONF_DEVICE_TYPE: "iotee_device", CONF_HARDWARE_ID: "X1"}
    context = {"source": SOURCE_INTEGRATION_DISCOVERY}
    first = await hass.config_entries.flow.async_init(DOMAIN, context=context, data=data)
    hass.config_entries.async_add_subentry(
        entry,
        ConfigSubentry(data=data, subentry_type=SUBENTRY_DEVICE, title="X1", unique_id="X1"),
    )
    result = await hass.config_entries.flow.async_configure(first["flow_id"], {"name": "X"})
    assert result["reason"] == "already_configured"

    data2 = {CONF_DEVICE_TYPE: "iotee_device", CONF_HARDWARE_ID: "X2"}
    second = await hass.config_entries.flow.async_init(DOMAIN, context=context, data=data2)
    await hass.config_entries.async_remove(entry.entry_id)
    result = await hass.config_entries.flow.async_configure(second["flow_id"], {"name": "X"})
    assert result["reason"] == "hub_not_configured"


async def _start_subentry(hass: HomeAssistant, entry: MockConfigEntry) -> dict:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE), context={"source": SOURCE_USER}
    )


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_add_lock_device(hass: HomeAssistant) -> None:
    """A lock device needs only name, type and id."""
    entry = hub_entry(hass)
    result = await _start_subentry(hass, entry)
    assert result["step_id"] == "user"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {"name": "Front door", CONF_DEVICE_TYPE: "iotee_device", CONF_HARDWARE_ID: " ABC123 "},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (subentry,) = entry.subentries.values()
    assert subentry.title == "Front door"
    assert subentry.unique_id == "ABC123"
    assert dict(subentry.data) == {CONF_HARDWARE_ID: "ABC123", CONF_DEVICE_TYPE: "iotee_device"}


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_add_device_with_queue_and_retries(hass: HomeAssistant) -> None:
    """The delivery options: out-of-range values are refused by the form; what differs from
    the defaults is stored; reconfigure changes them (back to a default: the key goes)."""
    entry = hub_entry(hass)
    result = await _start_subentry(hass, entry)
    base = {"name": "Door", CONF_DEVICE_TYPE: "iotee_device", CONF_HARDWARE_ID: LOCK_ID}
    for bad in (
        {"queue_minutes": 90 * 24 * 60 + 1},
        {"retry_backoff": 700},
        {"retry_attempts": 11},
    ):
        with pytest.raises(InvalidData):  # beyond the form's range (the retention, 600 s, 10)
            await hass.config_entries.subentries.async_configure(result["flow_id"], base | bad)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        base | {"queue_minutes": 30, "retry_attempts": 3, "retry_non_idempotent": True},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    ((subentry_id, subentry),) = entry.subentries.items()
    assert dict(subentry.data) == {
        CONF_HARDWARE_ID: LOCK_ID,
        CONF_DEVICE_TYPE: "iotee_device",
        "queue_minutes": 30.0,
        "retry_attempts": 3,
        "retry_non_idempotent": True,
    }
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    with patch(NO_SETUP, return_value=True), patch(NO_UNLOAD, return_value=True):
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"name": "Door", "queue_minutes": 0, "retry_attempts": 5}
        )
        await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert dict(entry.subentries[subentry_id].data) == {
        CONF_HARDWARE_ID: LOCK_ID,
        CONF_DEVICE_TYPE: "iotee_device",
        "retry_attempts": 5,
        "retry_non_idempotent": True,  # the form shows what is stored: it stays
    }


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_add_device_errors(hass: HomeAssistant) -> None:
    """Ids unusable in topics and duplicate ids are refused with translated errors."""
    entry = hub_entry(hass, device(LOCK_ID, "iotee_device"))
    result = await _start_subentry(hass, entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {"name": "x", CONF_DEVICE_TYPE: "iotee_device", CONF_HARDWARE_ID: "a/b#"},
    )
    assert result["errors"] == {CONF_HARDWARE_ID: "invalid_id"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {"name": "x", CONF_DEVICE_TYPE: "iotee_device", CONF_HARDWARE_ID: LOCK_ID},
    )
    assert result["errors"] == {CONF_HARDWARE_ID: "already_configured"}


def lock_relay_options(result: dict) -> list[str]:
    """The relays the relay_locks step offers."""
    assert result["step_id"] == "relay_locks"
    (field,) = result["data_schema"].schema.values()
    return [str(option) for option in field.config["options"]]


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_add_tasmota_device_with_relays(hass: HomeAssistant) -> None:
    """A relay device asks for relays and (Tasmota) its topic, then which of exactly its relays
    drive a lock; another relay is refused."""
    entry = hub_entry(hass)
    result = await _start_subentry(hass, entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {"name": "Pump", CONF_DEVICE_TYPE: "tasmota", CONF_HARDWARE_ID: "pump1"},
    )
    assert result["step_id"] == "relays"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_RELAYS: 2, CONF_MQTT_TOPIC: "bad topic"}
    )
    assert result["errors"] == {CONF_MQTT_TOPIC: "invalid_id"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_RELAYS: 2, CONF_MQTT_TOPIC: "pump"}
    )
    assert lock_relay_options(result) == ["1", "2"]
    for beyond in (["3"], ["0"], ["1", "x"]):
        with pytest.raises(InvalidData):
            await hass.config_entries.subentries.async_configure(
                result["flow_id"], {CONF_RELAY_LOCKS: beyond}
            )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_RELAY_LOCKS: ["2"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (subentry,) = entry.subentries.values()
    assert dict(subentry.data) == {
        CONF_HARDWARE_ID: "pump1",
        CONF_DEVICE_TYPE: "tasmota",
        CONF_RELAYS: 2,
        CONF_RELAY_LOCKS: [2],
        CONF_MQTT_TOPIC: "pump",
    }


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_lock_relays_may_be_none(hass: HomeAssistant) -> None:
    """Choosing no lock relay (or leaving the field out) keeps every relay a switch."""
    entry = hub_entry(hass)
    result = await _start_subentry(hass, entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {"name": "Gate", CONF_DEVICE_TYPE: "wlte_relay", CONF_HARDWARE_ID: "gate1"},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_RELAYS: 1}
    )
    assert lock_relay_options(result) == ["1"]
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (subentry,) = entry.subentries.values()
    assert subentry.data[CONF_RELAY_LOCKS] == []


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_reconfigure_relay_device(hass: HomeAssistant) -> None:
    """Reconfigure renames a device and changes its relays; id and type stay. The lock relays
    offered are the new count's, with the current ones that still exist chosen."""
    entry = hub_entry(hass, device("gate", "wlte_relay", "Gate", relays=4, relay_locks=[2, 4]))
    (subentry_id,) = entry.subentries
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    assert result["step_id"] == "reconfigure"
    assert result["description_placeholders"] == {
        "hardware_id": "gate",
        "device_type": "WLTE relay controller",
    }
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Main gate"}
    )
    assert result["step_id"] == "relays"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_RELAYS: 3}
    )
    assert lock_relay_options(result) == ["1", "2", "3"]
    (key,) = result["data_schema"].schema
    assert key.default() == ["2"]
    with pytest.raises(InvalidData):
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_RELAY_LOCKS: ["4"]}
        )
    with patch(NO_SETUP, return_value=True), patch(NO_UNLOAD, return_value=True):
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_RELAY_LOCKS: ["3", "1"]}
        )
        await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    subentry = entry.subentries[subentry_id]
    assert subentry.title == "Main gate"
    assert dict(subentry.data) == {
        CONF_HARDWARE_ID: "gate",
        CONF_DEVICE_TYPE: "wlte_relay",
        CONF_RELAYS: 3,
        CONF_RELAY_LOCKS: [1, 3],
    }


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_reconfigure_lock_device(hass: HomeAssistant) -> None:
    """A lock device's reconfigure is just its name."""
    entry = hub_entry(hass, device(LOCK_ID, "iotee_device", "Door"))
    (subentry_id,) = entry.subentries
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    with patch(NO_SETUP, return_value=True), patch(NO_UNLOAD, return_value=True):
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"name": "Back door"}
        )
        await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[subentry_id].title == "Back door"


def _discovery_flows(hass: HomeAssistant) -> list[str]:
    """The hardware ids offered under "Discovered" (the open discovery flows)."""
    return sorted(
        flow["context"]["title_placeholders"]["name"]
        for flow in hass.config_entries.flow.async_progress()
        if flow["context"]["source"] == SOURCE_INTEGRATION_DISCOVERY
    )


async def _discover(hass: HomeAssistant, device_type: str, hardware_id: str) -> dict:
    return await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_INTEGRATION_DISCOVERY},
        data={CONF_DEVICE_TYPE: device_type, CONF_HARDWARE_ID: hardware_id},
    )


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_adding_device_removes_its_discovery_offer(hass: HomeAssistant) -> None:
    """A device added by hand is no longer offered under "Discovered"; other offers stay."""
    entry = hub_entry(hass)
    await _discover(hass, "iotee_device", LOCK_ID)
    await _discover(hass, "wlte_relay", "other1")
    assert _discovery_flows(hass) == [LOCK_ID, "other1"]

    result = await _start_subentry(hass, entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {"name": "Front door", CONF_DEVICE_TYPE: "iotee_device", CONF_HARDWARE_ID: LOCK_ID},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _discovery_flows(hass) == ["other1"]

    # A relay device (its last step) too.
    result = await _start_subentry(hass, entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {"name": "Gate", CONF_DEVICE_TYPE: "wlte_relay", CONF_HARDWARE_ID: "other1"},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_RELAYS: 2}
    )
    assert _discovery_flows(hass) == ["other1"]  # not added yet
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_RELAY_LOCKS: []}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _discovery_flows(hass) == []
    assert {sub.unique_id for sub in entry.subentries.values()} == {LOCK_ID, "other1"}


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_confirming_discovery_removes_other_offers_of_that_id(hass: HomeAssistant) -> None:
    """One id announced under two types: adding it from one offer removes the other."""
    entry = hub_entry(hass)
    first = await _discover(hass, "iotee_device", "twice")
    await _discover(hass, "wlte_relay", "twice")
    assert _discovery_flows(hass) == ["twice", "twice"]
    result = await hass.config_entries.flow.async_configure(first["flow_id"], {"name": "Door"})
    assert result["reason"] == "device_added"
    assert _discovery_flows(hass) == []
    (subentry,) = entry.subentries.values()
    assert subentry.data[CONF_DEVICE_TYPE] == "iotee_device"


@pytest.mark.usefixtures("mqtt_config_entry")
async def test_configured_or_ignored_device_is_not_offered(hass: HomeAssistant) -> None:
    """A configured id aborts at once; an ignored offer stays ignored and hides no hub."""
    hub_entry(hass, device(LOCK_ID, "iotee_device"), device(WLTE_ID, "wlte_relay", relays=1))
    for device_type, hardware_id in (("iotee_device", LOCK_ID), ("wlte_relay", WLTE_ID)):
        result = await _discover(hass, device_type, hardware_id)
        assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    assert _discovery_flows(hass) == []

    offer = await _discover(hass, "wlte_relay", "stranger")
    assert offer["type"] is FlowResultType.FORM
    (flow,) = hass.config_entries.flow.async_progress()
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_IGNORE},
        data={"unique_id": flow["context"]["unique_id"], "title": "stranger"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _discovery_flows(hass) == []
    result = await _discover(hass, "wlte_relay", "stranger")
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_configured")
    # The ignored offer is an entry of this domain, but not a hub: devices are still offered.
    offer = await _discover(hass, "iotee_device", "newcomer")
    assert offer["step_id"] == "discovery_confirm"

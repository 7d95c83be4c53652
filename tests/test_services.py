"""Service actions with response data, on the real broker with a simulated lock."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import yaml

from custom_components.iotee.const import CONF_COMMAND_TIMEOUT, DOMAIN
from simulator import Mode, SimulatedDevice

from .broker import Mosquitto
from .helpers import LOCK_ID, WLTE_ID, engine_of, engine_subscribed, setup_hub

SERVICES_YAML = Path(__file__).parent.parent / "custom_components" / DOMAIN / "services.yaml"


@pytest.fixture
def lock_device(mosquitto: Mosquitto) -> Generator[SimulatedDevice]:
    """A simulated iotee_device, online and locked."""
    with SimulatedDevice("iotee_device", LOCK_ID, mosquitto.host, mosquitto.port) as device:
        yield device


@pytest.fixture
async def hub(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, lock_device: SimulatedDevice
) -> MockConfigEntry:
    """The hub with the default devices."""
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: 1.0})
    await engine_subscribed(hass, entry)
    return entry


async def service(hass: HomeAssistant, name: str, data: dict, **kwargs: object) -> dict:
    """Call an IoTee service and return its response."""
    return await hass.services.async_call(
        DOMAIN, name, data, blocking=True, return_response=True, **kwargs
    )


async def test_send_command_wait_returns_final_record(
    hass: HomeAssistant, hub: MockConfigEntry, hass_admin_user: User
) -> None:
    """send_command with wait returns the completed record in the Commands API shape."""
    response = await service(
        hass,
        "send_command",
        {"device": LOCK_ID, "command": "unlock", "params": {"why": "guest"}, "wait": True},
        context=Context(user_id=hass_admin_user.id),
    )
    assert response["status"] == "completed"
    assert response["command"] == "unlock"
    assert response["hardware_id"] == LOCK_ID
    assert response["device_type"] == "iotee_device"
    assert response["topic"] == f"iotee/dev/{LOCK_ID}/rls"
    assert response["params"] == {"why": "guest"}
    assert response["created_at"].endswith("Z")
    assert [h["status"] for h in response["history"]] == ["pending", "published", "completed"]
    stored = await engine_of(hub).async_get(response["command_id"])
    assert stored.caller == hass_admin_user.id
    assert stored.source == "service"


async def test_send_command_without_wait_returns_published(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    """Without wait the record comes back as it stands after the publish."""
    response = await service(hass, "send_command", {"device": LOCK_ID, "command": "lock"})
    assert response["status"] == "published"


async def test_relay_command_and_device_by_ha_id(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    """relay_command accepts the HA device id; the device has no simulator -> timeout."""
    device_id = engine_of(hub).device(WLTE_ID).device_id
    response = await service(
        hass, "relay_command", {"device": device_id, "relay": 2, "action": "jog", "wait": True}
    )
    assert response["command"] == "JOG"
    assert response["relay"] == 2
    assert response["status"] == "timeout"


async def test_retry_command(
    hass: HomeAssistant, hub: MockConfigEntry, lock_device: SimulatedDevice
) -> None:
    """A timed-out command is retried as a new linked command that can complete."""
    lock_device.set_behaviour(mode=Mode.SILENT)
    failed = await service(
        hass, "send_command", {"device": LOCK_ID, "command": "unlock", "wait": True}
    )
    assert failed["status"] == "timeout"
    lock_device.set_behaviour(mode=Mode.NORMAL)
    retried = await service(
        hass, "retry_command", {"command_id": failed["command_id"], "wait": True}
    )
    assert retried["retry_of"] == failed["command_id"]
    assert retried["status"] == "completed"

    with pytest.raises(ServiceValidationError) as err:
        await service(hass, "retry_command", {"command_id": retried["command_id"]})
    assert err.value.translation_key == "not_retryable"


async def test_get_commands_and_purge(
    hass: HomeAssistant, hub: MockConfigEntry, hass_admin_user: User, hass_read_only_user: User
) -> None:
    """get_commands lists newest first; purge is for administrators only."""
    first = await service(hass, "send_command", {"device": LOCK_ID, "command": "reboot"})
    second = await service(hass, "relay_command", {"device": WLTE_ID, "relay": 1, "action": "ON"})
    listed = await service(hass, "get_commands", {})
    assert [c["command_id"] for c in listed["commands"]] == [
        second["command_id"],
        first["command_id"],
    ]
    only_lock = await service(hass, "get_commands", {"device": LOCK_ID, "limit": 5})
    assert [c["command_id"] for c in only_lock["commands"]] == [first["command_id"]]

    with pytest.raises(Unauthorized):
        await service(
            hass,
            "purge_commands",
            {"older_than_days": 0},
            context=Context(user_id=hass_read_only_user.id),
        )
    await engine_of(hub).async_wait(second["command_id"], 5)
    purged = await service(
        hass, "purge_commands", {"older_than_days": 0}, context=Context(user_id=hass_admin_user.id)
    )
    assert purged["success"] is True
    assert purged["deleted"] >= 1
    assert purged["cutoff_date"].endswith("Z")


async def test_get_commands_of_a_removed_device(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    """A removed device's history stays queryable by its hardware id, as through REST."""
    sent = await service(hass, "send_command", {"device": LOCK_ID, "command": "reboot"})
    subentry = next(s for s in hub.subentries.values() if s.data["hardware_id"] == LOCK_ID)
    assert hass.config_entries.async_remove_subentry(hub, subentry.subentry_id)
    await hass.async_block_till_done()
    listed = await service(hass, "get_commands", {"device": LOCK_ID})
    assert [c["command_id"] for c in listed["commands"]] == [sent["command_id"]]
    with pytest.raises(ServiceValidationError) as err:
        await service(hass, "get_commands", {"device": "nope"})
    assert err.value.translation_key == "unknown_device"


def registry_id(hass: HomeAssistant, hub: MockConfigEntry, hardware_id: str) -> str:
    """The device registry id of an IoTee device: what the actions' device selector gives."""
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, hardware_id), hub.entry_id)
    assert device is not None
    return device.id


def test_device_fields_are_device_selectors() -> None:
    """Every action's device field picks an IoTee device from the device registry."""
    services = yaml.safe_load(SERVICES_YAML.read_text(encoding="utf-8"))
    fields = {
        name: service["fields"]["device"]["selector"]
        for name, service in services.items()
        if "device" in service.get("fields", {})
    }
    assert fields == {
        name: {"device": {"integration": DOMAIN}}
        for name in ("send_command", "relay_command", "get_commands")
    }


@pytest.mark.parametrize("form", ["hardware_id", "registry_id"])
async def test_device_by_hardware_id_or_registry_id(
    hass: HomeAssistant, hub: MockConfigEntry, form: str
) -> None:
    """send_command, relay_command and get_commands take either id of a device, and record the
    same device."""

    def ref(hardware_id: str) -> str:
        return hardware_id if form == "hardware_id" else registry_id(hass, hub, hardware_id)

    locked = await service(
        hass, "send_command", {"device": ref(LOCK_ID), "command": "lock", "wait": True}
    )
    assert (locked["hardware_id"], locked["status"]) == (LOCK_ID, "completed")
    assert locked["device_id"] == registry_id(hass, hub, LOCK_ID)
    switched = await service(
        hass, "relay_command", {"device": ref(WLTE_ID), "relay": 3, "action": "OFF"}
    )
    assert (switched["hardware_id"], switched["relay"]) == (WLTE_ID, 3)
    for hardware_id, sent in ((LOCK_ID, locked), (WLTE_ID, switched)):
        listed = await service(hass, "get_commands", {"device": ref(hardware_id)})
        assert [c["command_id"] for c in listed["commands"]] == [sent["command_id"]]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("send_command", {"command": "lock"}),
        ("relay_command", {"relay": 1, "action": "ON"}),
        ("get_commands", {}),
    ],
)
async def test_device_of_another_integration_is_unknown(
    hass: HomeAssistant, hub: MockConfigEntry, mqtt_entry: MockConfigEntry, name: str, data: dict
) -> None:
    """A registry id that is not an IoTee device's is refused, translated, and nothing is sent."""
    other = dr.async_get(hass).async_get_or_create(
        config_entry_id=mqtt_entry.entry_id, identifiers={("mqtt", "sensor-1")}, name="Sensor"
    )
    with pytest.raises(ServiceValidationError) as err:
        await service(hass, name, {"device": other.id} | data)
    assert (err.value.translation_domain, err.value.translation_key) == (DOMAIN, "unknown_device")
    assert await engine_of(hub).async_list(None, 10) == []


@pytest.mark.parametrize(
    ("name", "data", "key"),
    [
        ("send_command", {"device": "nope", "command": "lock"}, "unknown_device"),
        ("send_command", {"device": LOCK_ID, "command": "explode"}, "unsupported_command"),
        ("relay_command", {"device": WLTE_ID, "relay": 9, "action": "ON"}, "invalid_relay"),
        ("send_command", {"device": WLTE_ID, "command": "ON"}, "invalid_relay"),
        ("retry_command", {"command_id": "missing"}, "unknown_command"),
        (
            "send_command",
            {"device": LOCK_ID, "command": "lock", "params": {"a": {"b": {"c": {"d": {}}}}}},
            "invalid_params",
        ),
        ("get_commands", {"device": "nope"}, "unknown_device"),
    ],
)
async def test_bad_input_raises_translated_validation_error(
    hass: HomeAssistant, hub: MockConfigEntry, name: str, data: dict, key: str
) -> None:
    """Bad input gives a ServiceValidationError with a translation key."""
    with pytest.raises(ServiceValidationError) as err:
        await service(hass, name, data)
    assert err.value.translation_domain == DOMAIN
    assert err.value.translation_key == key


async def test_services_need_a_loaded_hub(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    """With the hub unloaded, services say IoTee is not set up."""
    await hass.config_entries.async_unload(hub.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await service(hass, "get_commands", {})
    assert err.value.translation_key == "not_loaded"

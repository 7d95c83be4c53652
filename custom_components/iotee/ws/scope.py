"""The filters of ``iotee/commands/list`` and ``subscribe``, turned into a ``CommandQuery``.

A list is scoped to one device by ``device`` (hardware id or HA device id) or to one entity's
target by ``entity_id`` (its device, and its relay or the lock or reboot); without either it
lists every device's commands, which needs more rights (``Operation.LIST_ALL``).
"""

from __future__ import annotations

from datetime import datetime
import re
from typing import Any, Final

from homeassistant.components.websocket_api.const import ERR_INVALID_FORMAT, ERR_NOT_FOUND
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv, entity_registry as er
from homeassistant.util import dt as dt_util
import probatio as vol  # HA's schema library; `voluptuous` resolves to its shim at run time

from custom_components.iotee.const import DOMAIN
from custom_components.iotee.core.errors import UnknownDeviceError
from custom_components.iotee.core.model import CommandStatus
from custom_components.iotee.core.query import TARGETS, CommandQuery
from custom_components.iotee.core.rights import Operation
from custom_components.iotee.engine import CommandEngine

_RELAY_KEY: Final = re.compile(r"relay_(?P<relay>[0-9]+)(?:_[a-z]+)?")

FILTER_SCHEMA: Final[dict[Any, Any]] = {
    vol.Optional("device"): vol.All(cv.string, vol.Length(min=1, max=128)),
    vol.Optional("entity_id"): cv.entity_id,
    vol.Optional("relay"): vol.All(int, vol.Range(min=1, max=64)),
    vol.Optional("target"): vol.In(TARGETS),
    vol.Optional("status"): vol.In([status.value for status in CommandStatus]),
    vol.Optional("source"): vol.All(cv.string, vol.Length(min=1, max=32)),
    vol.Optional("since"): cv.datetime,
    vol.Optional("until"): cv.datetime,
    vol.Optional("command_id"): vol.All(cv.string, vol.Length(min=1, max=64)),
}


class ScopeError(Exception):
    """The filters name something that does not exist, or contradict each other."""

    def __init__(self, code: str, message: str) -> None:
        """Keep the websocket error code with the message."""
        super().__init__(message)
        self.code = code


def list_operation(msg: dict[str, Any]) -> Operation:
    """Return what a list or subscription needs: one device's history, or every device's."""
    return Operation.HISTORY if "device" in msg or "entity_id" in msg else Operation.LIST_ALL


def _utc(value: datetime | None) -> datetime | None:
    """A time without a zone is Home Assistant's local time."""
    return None if value is None else dt_util.as_utc(value)


def _entity_target(
    hass: HomeAssistant, engine: CommandEngine, entity_id: str
) -> tuple[str, int | None, str | None]:
    """Return the hardware id, relay and target an IoTee entity acts on."""
    entry = er.async_get(hass).async_get(entity_id)
    if entry is None or entry.platform != DOMAIN or entry.device_id is None:
        raise ScopeError(ERR_NOT_FOUND, f"{entity_id} is not an IoTee entity.")
    try:
        config = engine.device(entry.device_id)
    except UnknownDeviceError as err:
        raise ScopeError(ERR_NOT_FOUND, str(err)) from err
    key = (entry.unique_id or "").removeprefix(f"{config.hardware_id}_")
    if found := _RELAY_KEY.fullmatch(key):
        return config.hardware_id, int(found["relay"]), None
    return config.hardware_id, None, ("reboot" if key == "reboot" else "lock")


def build_query(hass: HomeAssistant, engine: CommandEngine, msg: dict[str, Any]) -> CommandQuery:
    """Return the query the message's filters describe; raise ``ScopeError`` when they cannot."""
    relay: int | None = msg.get("relay")
    target: str | None = msg.get("target")
    hardware_id: str | None = None
    if "entity_id" in msg:
        if "device" in msg or relay is not None or target is not None:
            raise ScopeError(
                ERR_INVALID_FORMAT,
                "entity_id names a device and target: give no device, relay or target with it.",
            )
        hardware_id, relay, target = _entity_target(hass, engine, msg["entity_id"])
    elif "device" in msg:
        try:
            hardware_id = engine.device(msg["device"]).hardware_id
        except UnknownDeviceError as err:
            raise ScopeError(ERR_NOT_FOUND, str(err)) from err
    try:
        return CommandQuery(
            hardware_id=hardware_id,
            relay=relay,
            target=target,
            status=None if "status" not in msg else CommandStatus(msg["status"]),
            source=msg.get("source"),
            since=_utc(msg.get("since")),
            until=_utc(msg.get("until")),
            id_prefix=msg.get("command_id"),
        )
    except ValueError as err:
        raise ScopeError(ERR_INVALID_FORMAT, str(err)) from err

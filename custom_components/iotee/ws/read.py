"""Reading commands over the websocket: ``iotee/commands/list``, ``get`` and ``iotee/devices``."""

from __future__ import annotations

from typing import Any, Final

from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.const import ERR_INVALID_FORMAT, ERR_NOT_FOUND
from homeassistant.components.websocket_api.decorators import async_response, websocket_command
from homeassistant.core import HomeAssistant
import probatio as vol  # HA's schema library; `voluptuous` resolves to its shim at run time

from custom_components.iotee.core.query import Cursor, InvalidCursorError
from custom_components.iotee.core.rights import Operation

from .access import engine_or_error, refused
from .present import command_out, device_out
from .scope import FILTER_SCHEMA, ScopeError, build_query, list_operation

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200


@websocket_command(
    {
        vol.Required("type"): "iotee/commands/list",
        **FILTER_SCHEMA,
        vol.Optional("before"): vol.All(str, vol.Length(max=64)),
        vol.Optional("limit", default=DEFAULT_LIMIT): vol.All(int, vol.Range(min=1, max=MAX_LIMIT)),
    }
)
@async_response
async def ws_list(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """One page of commands, newest first; ``next`` is the ``before`` of the following page."""
    if refused(connection, msg, list_operation(msg)):
        return
    if (engine := engine_or_error(hass, connection, msg)) is None:
        return
    try:
        query = build_query(hass, engine, msg)
        before = None if "before" not in msg else Cursor.decode(msg["before"])
    except ScopeError as err:
        connection.send_error(msg["id"], err.code, str(err))
        return
    except InvalidCursorError as err:
        connection.send_error(msg["id"], ERR_INVALID_FORMAT, str(err))
        return
    page = await engine.store.list_page(query, before, msg["limit"])
    records = [engine.open_command(r.command_id) or r for r in page.records]
    connection.send_result(
        msg["id"],
        {
            "commands": [command_out(engine, record) for record in records],
            "next": None if page.next is None else page.next.encode(),
        },
    )


@websocket_command(
    {
        vol.Required("type"): "iotee/commands/get",
        vol.Required("command_id"): vol.All(str, vol.Length(min=1, max=64)),
    }
)
@async_response
async def ws_get(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """One command with its retry chain (oldest first, the command itself included)."""
    if refused(connection, msg, Operation.GET):
        return
    if (engine := engine_or_error(hass, connection, msg)) is None:
        return
    record = await engine.async_get(msg["command_id"])
    if record is None:
        connection.send_error(msg["id"], ERR_NOT_FOUND, f"No command {msg['command_id']!r}.")
        return
    chain = await engine.store.retry_chain(record.command_id)
    connection.send_result(
        msg["id"],
        {
            "command": command_out(engine, record),
            "chain": [
                command_out(engine, engine.open_command(item.command_id) or item) for item in chain
            ],
        },
    )


@websocket_command({vol.Required("type"): "iotee/devices"})
@async_response
async def ws_devices(
    hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]
) -> None:
    """The configured devices: names, relays, the commands they take, online or not."""
    if refused(connection, msg, Operation.HISTORY):
        return
    if (engine := engine_or_error(hass, connection, msg)) is None:
        return
    connection.send_result(
        msg["id"],
        {"devices": [device_out(engine, config) for config in engine.devices.values()]},
    )

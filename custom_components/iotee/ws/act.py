"""Acting on commands over the websocket: ``iotee/commands/send``, ``retry``, ``delete``, ``purge``.

Deletes and purges are announced to every ``iotee/commands/subscribe`` (``SIGNAL_REMOVED``), so
each open panel drops the rows at once.
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.const import ERR_NOT_FOUND
from homeassistant.components.websocket_api.decorators import async_response, websocket_command
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.dispatcher import async_dispatcher_send
import probatio as vol  # HA's schema library; `voluptuous` resolves to its shim at run time

from custom_components.iotee.core.errors import CommandError
from custom_components.iotee.core.model import isoformat_z
from custom_components.iotee.core.rights import Operation
from custom_components.iotee.core.store import StoreError

from .access import ERR_STORE, engine_or_error, refused, send_command_error
from .present import command_out

SIGNAL_REMOVED: Final = "iotee_ws_commands_removed"
"""Dispatched with ``{"deleted": [ids]}`` or ``{"purged": {"cutoff_date", "deleted"}}``."""
SOURCE: Final = "websocket"
MAX_PURGE_DAYS: Final = 36500
_COMMAND_ID = vol.All(str, vol.Length(min=1, max=64))


@websocket_command(
    {
        vol.Required("type"): "iotee/commands/send",
        vol.Required("device"): vol.All(cv.string, vol.Length(min=1, max=128)),
        vol.Required("command"): vol.All(cv.string, vol.Length(min=1, max=64)),
        vol.Optional("relay"): vol.All(int, vol.Range(min=1, max=64)),
        vol.Optional("params"): dict,
    }
)
@async_response
async def ws_send(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """Create, store and publish a command; answer its record as it stands."""
    if refused(connection, msg, Operation.SEND):
        return
    if (engine := engine_or_error(hass, connection, msg)) is None:
        return
    try:
        record = await engine.async_submit(
            msg["device"],
            msg["command"].strip(),
            msg.get("relay"),
            msg.get("params"),
            source=SOURCE,
            caller=connection.user.id,
        )
    except CommandError as err:
        send_command_error(connection, msg, err)
        return
    except StoreError as err:
        connection.send_error(msg["id"], ERR_STORE, str(err))
        return
    connection.send_result(msg["id"], command_out(engine, record))


@websocket_command(
    {vol.Required("type"): "iotee/commands/retry", vol.Required("command_id"): _COMMAND_ID}
)
@async_response
async def ws_retry(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """Send a failed or timed-out command again, as a new command linked to it."""
    if refused(connection, msg, Operation.RETRY):
        return
    if (engine := engine_or_error(hass, connection, msg)) is None:
        return
    try:
        record = await engine.async_retry(
            msg["command_id"], source=SOURCE, caller=connection.user.id
        )
    except CommandError as err:
        send_command_error(connection, msg, err)
        return
    except StoreError as err:
        connection.send_error(msg["id"], ERR_STORE, str(err))
        return
    connection.send_result(msg["id"], command_out(engine, record))


@websocket_command(
    {vol.Required("type"): "iotee/commands/delete", vol.Required("command_id"): _COMMAND_ID}
)
@async_response
async def ws_delete(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """Delete one command from the history."""
    if refused(connection, msg, Operation.DELETE):
        return
    if (engine := engine_or_error(hass, connection, msg)) is None:
        return
    try:
        deleted = await engine.async_delete(msg["command_id"])
    except StoreError as err:
        connection.send_error(msg["id"], ERR_STORE, str(err))
        return
    if not deleted:
        connection.send_error(msg["id"], ERR_NOT_FOUND, f"No command {msg['command_id']!r}.")
        return
    async_dispatcher_send(hass, SIGNAL_REMOVED, {"deleted": [msg["command_id"]]})
    connection.send_result(msg["id"], {"deleted": True})


@websocket_command(
    {
        vol.Required("type"): "iotee/commands/purge",
        vol.Required("older_than_days"): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=MAX_PURGE_DAYS)
        ),
    }
)
@async_response
async def ws_purge(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """Delete finished commands older than ``older_than_days``; answer the cutoff and count."""
    if refused(connection, msg, Operation.PURGE):
        return
    if (engine := engine_or_error(hass, connection, msg)) is None:
        return
    try:
        cutoff, deleted = await engine.async_purge(msg["older_than_days"])
    except StoreError as err:
        connection.send_error(msg["id"], ERR_STORE, str(err))
        return
    result = {"cutoff_date": isoformat_z(cutoff), "deleted": deleted}
    async_dispatcher_send(hass, SIGNAL_REMOVED, {"purged": result})
    connection.send_result(msg["id"], result)

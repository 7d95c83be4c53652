"""Acting on commands over the websocket: ``iotee/commands/send``, ``retry``, ``delete``, ``purge``.

Each is its few distinct lines inside ``access.engine_action`` (rights, no hub, errors). Deletes
and purges reach every ``iotee/commands/subscribe`` through the engine's removal listeners, as
those made through the REST API, the actions and the daily retention purge do.
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.decorators import websocket_command
from homeassistant.helpers import config_validation as cv
import probatio as vol  # HA's schema library; `voluptuous` resolves to its shim at run time

from custom_components.iotee.core.errors import UnknownCommandError
from custom_components.iotee.core.model import isoformat_z
from custom_components.iotee.core.rights import Operation
from custom_components.iotee.engine import CommandEngine

from .access import engine_action
from .present import command_out

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
@engine_action(Operation.SEND)
async def ws_send(
    engine: CommandEngine, connection: ActiveConnection, msg: dict[str, Any]
) -> dict[str, Any]:
    """Create, store and publish a command; answer its record as it stands."""
    record = await engine.async_submit(
        msg["device"],
        msg["command"].strip(),
        msg.get("relay"),
        msg.get("params"),
        source=SOURCE,
        caller=connection.user.id,
    )
    return command_out(engine, record)


@websocket_command(
    {vol.Required("type"): "iotee/commands/retry", vol.Required("command_id"): _COMMAND_ID}
)
@engine_action(Operation.RETRY)
async def ws_retry(
    engine: CommandEngine, connection: ActiveConnection, msg: dict[str, Any]
) -> dict[str, Any]:
    """Send a failed or timed-out command again, as a new command linked to it."""
    record = await engine.async_retry(msg["command_id"], source=SOURCE, caller=connection.user.id)
    return command_out(engine, record)


@websocket_command(
    {vol.Required("type"): "iotee/commands/delete", vol.Required("command_id"): _COMMAND_ID}
)
@engine_action(Operation.DELETE)
async def ws_delete(
    engine: CommandEngine, connection: ActiveConnection, msg: dict[str, Any]
) -> dict[str, Any]:
    """Delete one command from the history."""
    if not await engine.async_delete(msg["command_id"]):
        raise UnknownCommandError(f"No command {msg['command_id']!r}.")
    return {"deleted": True}


@websocket_command(
    {
        vol.Required("type"): "iotee/commands/purge",
        vol.Required("older_than_days"): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=MAX_PURGE_DAYS)
        ),
    }
)
@engine_action(Operation.PURGE)
async def ws_purge(
    engine: CommandEngine, connection: ActiveConnection, msg: dict[str, Any]
) -> dict[str, Any]:
    """Delete finished commands older than ``older_than_days``; answer the cutoff and count."""
    cutoff, deleted = await engine.async_purge(msg["older_than_days"])
    return {"cutoff_date": isoformat_z(cutoff), "deleted": deleted}

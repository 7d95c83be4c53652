"""``iotee/commands/subscribe``: every new command and status change matching the filters.

After the result, each change is an event ``{"command": {...}, "old_status": ...}``
(``old_status`` null for a new command, equal to ``status`` for a late confirmation); deletes and
purges are events ``{"deleted": [ids]}`` and ``{"purged": {"cutoff_date", "deleted"}}``, whichever
door made them (this API, the REST API, the actions, the daily retention purge). The subscription
follows the hub across reloads and ends with the connection.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.decorators import websocket_command
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
import probatio as vol  # HA's schema library; `voluptuous` resolves to its shim at run time

from custom_components.iotee.core.model import CommandRecord, CommandStatus, isoformat_z
from custom_components.iotee.engine import CommandEngine, Removal
from custom_components.iotee.engine_watch import async_follow_engine

from .access import engine_or_error, refused
from .present import command_out
from .scope import FILTER_SCHEMA, ScopeError, build_query, list_operation


def removal_event(removal: Removal) -> dict[str, Any]:
    """Return the event of a delete (``deleted``) or a purge (``purged``)."""
    if removal.cutoff is None:
        return {"deleted": [removal.command_id]}
    return {"purged": {"cutoff_date": isoformat_z(removal.cutoff), "deleted": removal.count}}


@websocket_command({vol.Required("type"): "iotee/commands/subscribe", **FILTER_SCHEMA})
@callback
def ws_subscribe(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """Push command changes matching the filters until unsubscribed or disconnected."""
    if refused(connection, msg, list_operation(msg)):
        return
    if (engine := engine_or_error(hass, connection, msg)) is None:
        return
    try:
        query = build_query(hass, engine, msg)
    except ScopeError as err:
        connection.send_error(msg["id"], err.code, str(err))
        return
    msg_id = msg["id"]

    def attach(current: CommandEngine) -> CALLBACK_TYPE:
        @callback
        def changed(record: CommandRecord, old: CommandStatus | None) -> None:
            if query.matches(record):
                connection.send_event(
                    msg_id,
                    {
                        "command": command_out(current, record),
                        "old_status": None if old is None else old.value,
                    },
                )

        @callback
        def removed(removal: Removal) -> None:
            connection.send_event(msg_id, removal_event(removal))

        stop_changes = current.add_command_listener(changed)
        stop_removals = current.add_removal_listener(removed)

        @callback
        def detach() -> None:
            stop_changes()
            stop_removals()

        return detach

    connection.subscriptions[msg_id] = async_follow_engine(hass, attach)
    connection.send_result(msg_id)

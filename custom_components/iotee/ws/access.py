"""Who is on a websocket connection, what the operation needs, and the error answers.

Rights come from ``core.rights``, as for the REST APIs and the HA actions: a Home Assistant
user holds both scopes, a user without control permission (a read-only user) ``read`` only, and
administrators hold ``admin``. ``engine_action`` wraps a command that acts on the engine in all
of that: the refusal, ``not_loaded``, and the engine's and the store's errors as answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, Final

from homeassistant.auth.permissions.const import POLICY_CONTROL
from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.const import (
    ERR_NOT_FOUND,
    ERR_UNAUTHORIZED,
    WebSocketCommandHandler,
)
from homeassistant.components.websocket_api.decorators import async_response
from homeassistant.core import HomeAssistant

from custom_components.iotee.core.errors import (
    CommandError,
    UnknownCommandError,
    UnknownDeviceError,
)
from custom_components.iotee.core.rights import SCOPE_CONTROL, SCOPE_READ, Operation, Right, missing
from custom_components.iotee.core.store import StoreError
from custom_components.iotee.engine import CommandEngine
from custom_components.iotee.runtime import loaded_engine

ERR_NOT_LOADED: Final = "not_loaded"
ERR_STORE: Final = "store_error"

type EngineAction = Callable[[CommandEngine, ActiveConnection, dict[str, Any]], Awaitable[Any]]
"""Acts on the engine for one message; returns the result to answer."""

_NEEDS: Final[dict[Right, str]] = {
    Right.ADMIN: "an administrator",
    Right.CONTROL: "permission to control devices",
    Right.READ: "permission to read devices",
}


def caller_scopes(connection: ActiveConnection) -> frozenset[str]:
    """Return the scopes the connection's user holds."""
    user = connection.user
    if user.is_admin or user.permissions.access_all_entities(POLICY_CONTROL):
        return frozenset({SCOPE_READ, SCOPE_CONTROL})
    return frozenset({SCOPE_READ})


def refused(connection: ActiveConnection, msg: dict[str, Any], operation: Operation) -> bool:
    """Answer ``unauthorized`` and return True unless the user may do ``operation``."""
    lacking = missing(
        operation, is_admin=connection.user.is_admin, scopes=caller_scopes(connection)
    )
    if not lacking:
        return False
    connection.send_error(
        msg["id"],
        ERR_UNAUTHORIZED,
        f"{operation.value} needs " + " and ".join(_NEEDS[right] for right in lacking) + ".",
    )
    return True


def engine_or_error(
    hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]
) -> CommandEngine | None:
    """Return the loaded hub's engine, or answer ``not_loaded`` and return None."""
    engine = loaded_engine(hass)
    if engine is None:
        connection.send_error(msg["id"], ERR_NOT_LOADED, "No IoTee hub is loaded.")
    return engine


def send_command_error(
    connection: ActiveConnection, msg: dict[str, Any], err: CommandError
) -> None:
    """Answer an engine error: ``not_found`` for unknown ids, else the error's own code."""
    if isinstance(err, UnknownDeviceError | UnknownCommandError):
        connection.send_error(msg["id"], ERR_NOT_FOUND, str(err))
    else:
        connection.send_error(msg["id"], err.code, str(err))


def engine_action(operation: Operation) -> Callable[[EngineAction], WebSocketCommandHandler]:
    """Turn ``action`` into a websocket handler answering its result, or the refusal or error.

    Unless the user may do ``operation`` the answer is ``unauthorized``; without a loaded hub
    ``not_loaded``; a ``CommandError`` is answered by ``send_command_error``, a ``StoreError``
    with ``store_error``.
    """

    def wrap(action: EngineAction) -> WebSocketCommandHandler:
        @wraps(action)
        async def handle(
            hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]
        ) -> None:
            if refused(connection, msg, operation):
                return
            if (engine := engine_or_error(hass, connection, msg)) is None:
                return
            try:
                result = await action(engine, connection, msg)
            except CommandError as err:
                send_command_error(connection, msg, err)
            except StoreError as err:
                connection.send_error(msg["id"], ERR_STORE, str(err))
            else:
                connection.send_result(msg["id"], result)

        return async_response(handle)

    return wrap

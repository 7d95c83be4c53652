"""The Commands API: send, history, list, get, delete, retry and purge tracked commands."""

from __future__ import annotations

from http import HTTPStatus
import re
from typing import Any, Final

from aiohttp import hdrs, web

from custom_components.iotee.core.device_types import DEVICE_TYPES
from custom_components.iotee.core.errors import (
    CommandError,
    InvalidDeliveryError,
    InvalidParamsError,
    NotRetryableError,
    UnknownCommandError,
    UnknownDeviceError,
)
from custom_components.iotee.core.model import CommandRecord, isoformat_z
from custom_components.iotee.core.representation import command_to_dict
from custom_components.iotee.core.rights import Operation
from custom_components.iotee.engine import CommandEngine
from custom_components.iotee.history import async_device_history

from .base import ApiRequest, ApiView, Route, read_json_object
from .envelope import (
    COMMAND_NOT_FOUND,
    COMMAND_NOT_RETRYABLE,
    DEVICE_NOT_FOUND,
    ApiError,
    invalid,
    json_response,
)
from .state import BASE_URL

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
MAX_COMMAND_LENGTH: Final = 64
MAX_PURGE_DAYS: Final = 36500
_LIMIT_PATTERN = re.compile(r"[0-9]{1,7}")
_SEND_FIELDS: Final = frozenset({"command", "device_type", "params", "queue"})


def command_error(err: CommandError) -> ApiError:
    """Map an engine error to the API error."""
    if isinstance(err, UnknownDeviceError):
        return ApiError(HTTPStatus.NOT_FOUND, DEVICE_NOT_FOUND, str(err))
    if isinstance(err, UnknownCommandError):
        return ApiError(HTTPStatus.NOT_FOUND, COMMAND_NOT_FOUND, str(err))
    if isinstance(err, NotRetryableError):
        return ApiError(HTTPStatus.CONFLICT, COMMAND_NOT_RETRYABLE, str(err))
    if isinstance(err, InvalidParamsError):
        return invalid(f"{err}.", {"field": "params"})
    if isinstance(err, InvalidDeliveryError):
        return invalid(f"{err}.", {"field": "queue"})
    return invalid(str(err))


def _command_not_found(command_id: str) -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, COMMAND_NOT_FOUND, f"No command {command_id!r}.")


def parse_limit(request: web.Request) -> int:
    """Return the ``limit`` query parameter (default 100, 1 to 1000); 400 when malformed."""
    values = request.query.getall("limit", [])
    if not values:
        return DEFAULT_LIMIT
    value = values[0]
    if len(values) > 1 or not _LIMIT_PATTERN.fullmatch(value) or not 1 <= int(value) <= MAX_LIMIT:
        raise invalid(
            f"limit must be one integer from 1 to {MAX_LIMIT}.",
            {"field": "limit"},
        )
    return int(value)


def _unknown_fields(body: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid(f"Unknown field(s): {', '.join(unknown)}.", {"fields": unknown})


class _CommandsApiView(ApiView):
    def engine(self) -> CommandEngine:
        return self.api.entry().runtime_data.engine


class DeviceCommandsView(_CommandsApiView):
    """``/devices/{id}/commands``: send a command (POST), a device's history (GET)."""

    url = f"{BASE_URL}/devices/{{device_id}}/commands"
    name = "api:iotee:device_commands"
    routes = {
        "POST": Route("send", Operation.SEND),
        "GET": Route("history", Operation.HISTORY),
    }

    async def send(self, call: ApiRequest) -> web.Response:
        """Create and store a command; 201 with its record once stored, publish right after.

        The answer does not wait for the broker's PUBACK (``pending``; ``failed`` at once when
        a check that needs no waiting refuses it); the publish's outcome follows on the record.
        """
        body = await read_json_object(call.request)
        _unknown_fields(body, _SEND_FIELDS)
        command = body.get("command")
        if not isinstance(command, str) or not 1 <= len(command.strip()) <= MAX_COMMAND_LENGTH:
            raise invalid(
                f"command is required: a string of 1 to {MAX_COMMAND_LENGTH} characters.",
                {"field": "command"},
            )
        device_type = body.get("device_type")
        if device_type is not None and (
            not isinstance(device_type, str) or device_type not in DEVICE_TYPES
        ):
            raise invalid(
                f"device_type must be one of {', '.join(DEVICE_TYPES)}.",
                {"field": "device_type"},
            )
        params = body.get("params")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise invalid("params must be a JSON object.", {"field": "params"})
        relay = params.get("relay")
        if relay is not None and (type(relay) is not int or relay < 1):
            raise invalid("params.relay must be a positive integer.", {"field": "params.relay"})

        queue = body.get("queue")
        if queue is None:
            queue = False  # the seed's behaviour: an offline device's command fails at once
        if not isinstance(queue, bool | int | float):
            raise invalid("queue must be true, false or a number of minutes.", {"field": "queue"})

        engine = self.engine()
        try:
            config = engine.device(call.match["device_id"])
        except CommandError as err:
            raise command_error(err) from err
        if device_type is not None and device_type != config.device_type.name:
            raise invalid(
                f"Device {config.hardware_id} is a {config.device_type.name}, not a {device_type}.",
                {"field": "device_type"},
            )
        try:
            record = await engine.async_submit(
                config.hardware_id,
                command.strip(),
                relay=relay,
                params=params,
                source="api",
                caller=call.principal.caller,
                queue=queue,
                await_publish=False,
            )
        except CommandError as err:
            raise command_error(err) from err
        return json_response(
            command_to_dict(record),
            HTTPStatus.CREATED,
            call.request_id,
            {hdrs.LOCATION: f"{BASE_URL}/commands/{record.command_id}"},
        )

    async def history(self, call: ApiRequest) -> web.Response:
        """Return a device's commands, newest first (a removed device's by its hardware id)."""
        limit = parse_limit(call.request)
        try:
            records = await async_device_history(self.engine(), call.match["device_id"], limit)
        except CommandError as err:
            raise command_error(err) from err
        return _history_response(records, call.request_id)


def _history_response(records: list[CommandRecord], request_id: str) -> web.Response:
    """Answer a history query: ``{"commands": [...], "count": n}``, newest first."""
    commands = [command_to_dict(record) for record in records]
    return json_response({"commands": commands, "count": len(commands)}, HTTPStatus.OK, request_id)


class CommandsView(_CommandsApiView):
    """``/commands``: every command (admin)."""

    url = f"{BASE_URL}/commands"
    name = "api:iotee:commands"
    routes = {"GET": Route("list_all", Operation.LIST_ALL)}

    async def list_all(self, call: ApiRequest) -> web.Response:
        """Return every device's commands, newest first."""
        limit = parse_limit(call.request)
        records = await self.engine().async_list(None, limit)
        return _history_response(records, call.request_id)


class PurgeView(_CommandsApiView):
    """``/commands/purge``: delete finished commands older than N days (admin)."""

    url = f"{BASE_URL}/commands/purge"
    name = "api:iotee:commands_purge"
    routes = {"POST": Route("purge", Operation.PURGE)}

    async def purge(self, call: ApiRequest) -> web.Response:
        """Delete old finished commands; return the cutoff and how many went."""
        body = await read_json_object(call.request)
        _unknown_fields(body, frozenset({"older_than_days"}))
        days: Any = body.get("older_than_days")
        if type(days) not in (int, float) or not 0 <= days <= MAX_PURGE_DAYS:
            raise invalid(
                f"older_than_days is required: a number from 0 to {MAX_PURGE_DAYS}.",
                {"field": "older_than_days"},
            )
        cutoff, deleted = await self.engine().async_purge(float(days))
        return json_response(
            {"success": True, "cutoff_date": isoformat_z(cutoff), "deleted": deleted},
            HTTPStatus.OK,
            call.request_id,
        )


class CommandView(_CommandsApiView):
    """``/commands/{id}``: one command (GET), delete it (DELETE, admin)."""

    url = f"{BASE_URL}/commands/{{command_id}}"
    name = "api:iotee:command"
    routes = {
        "GET": Route("get_one", Operation.GET),
        "DELETE": Route("delete_one", Operation.DELETE),
    }

    async def get_one(self, call: ApiRequest) -> web.Response:
        """Return one command."""
        command_id = call.match["command_id"]
        record = await self.engine().async_get(command_id)
        if record is None:
            raise _command_not_found(command_id)
        return json_response(command_to_dict(record), HTTPStatus.OK, call.request_id)

    async def delete_one(self, call: ApiRequest) -> web.Response:
        """Delete one command."""
        command_id = call.match["command_id"]
        if not await self.engine().async_delete(command_id):
            raise _command_not_found(command_id)
        return json_response(
            {"success": True, "deleted": command_id}, HTTPStatus.OK, call.request_id
        )


class RetryView(_CommandsApiView):
    """``/commands/{id}/retry``: send a failed or timed-out command again (admin)."""

    url = f"{BASE_URL}/commands/{{command_id}}/retry"
    name = "api:iotee:command_retry"
    routes = {"POST": Route("retry", Operation.RETRY)}

    async def retry(self, call: ApiRequest) -> web.Response:
        """Create a new command linked to the original; 201 with both ids."""
        command_id = call.match["command_id"]
        try:
            record = await self.engine().async_retry(
                command_id, source="api", caller=call.principal.caller, await_publish=False
            )
        except CommandError as err:
            raise command_error(err) from err
        return json_response(
            {
                "success": True,
                "original_command_id": command_id,
                "new_command": command_to_dict(record),
            },
            HTTPStatus.CREATED,
            call.request_id,
            {hdrs.LOCATION: f"{BASE_URL}/commands/{record.command_id}"},
        )

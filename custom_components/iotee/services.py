"""Service actions: send, retry, list and purge tracked commands; each returns response data.

Each action checks its caller against ``core.rights`` (``user_rights.async_check_call``), the same
table the REST API uses: sending needs control permission, one device's history read, every
device's commands admin, retrying admin and control, purging admin. Calls without a user
(automations, scripts) are the system and allowed.
"""

from __future__ import annotations

from typing import Any

from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
import probatio as vol  # HA's schema library; `voluptuous` resolves to its shim at run time

from .const import DOMAIN
from .core.errors import CommandError
from .core.model import isoformat_z
from .core.representation import command_to_dict
from .core.rights import Operation
from .core.store import StoreError
from .engine import CommandEngine
from .history import async_device_history
from .runtime import loaded_engine
from .user_rights import async_check_call

ATTR_DEVICE = "device"
ATTR_COMMAND = "command"
ATTR_PARAMS = "params"
ATTR_WAIT = "wait"
ATTR_RELAY = "relay"
ATTR_ACTION = "action"
ATTR_COMMAND_ID = "command_id"
ATTR_LIMIT = "limit"
ATTR_OLDER_THAN_DAYS = "older_than_days"
ATTR_QUEUE = "queue"

SERVICE_SEND_COMMAND = "send_command"
SERVICE_RELAY_COMMAND = "relay_command"
SERVICE_RETRY_COMMAND = "retry_command"
SERVICE_GET_COMMANDS = "get_commands"
SERVICE_PURGE_COMMANDS = "purge_commands"


def _queue_option(value: Any) -> bool | float:
    """``queue``: true/false, or minutes (a number; its range is checked by the engine)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "on", "yes"):
            return True
        if text in ("false", "off", "no"):
            return False
        try:
            return float(text)
        except ValueError:
            pass
    raise vol.Invalid("queue must be true, false or a number of minutes")


SEND_COMMAND_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_DEVICE): cv.string,
        vol.Required(ATTR_COMMAND): cv.string,
        vol.Optional(ATTR_PARAMS, default=dict): dict,
        vol.Optional(ATTR_WAIT, default=False): cv.boolean,
        vol.Optional(ATTR_QUEUE): _queue_option,
    }
)
RELAY_COMMAND_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_DEVICE): cv.string,
        vol.Required(ATTR_RELAY): vol.All(vol.Coerce(int), vol.Range(min=1)),
        vol.Required(ATTR_ACTION): vol.All(vol.Upper, vol.In(["ON", "OFF", "JOG"])),
        vol.Optional(ATTR_WAIT, default=False): cv.boolean,
        vol.Optional(ATTR_QUEUE): _queue_option,
    }
)
RETRY_COMMAND_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_COMMAND_ID): cv.string,
        vol.Optional(ATTR_WAIT, default=False): cv.boolean,
    }
)
GET_COMMANDS_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_DEVICE): cv.string,
        vol.Optional(ATTR_LIMIT, default=100): vol.All(vol.Coerce(int), vol.Range(min=1, max=1000)),
    }
)
PURGE_COMMANDS_SCHEMA = vol.Schema(
    {vol.Required(ATTR_OLDER_THAN_DAYS): vol.All(vol.Coerce(float), vol.Range(min=0))}
)


def _engine(hass: HomeAssistant) -> CommandEngine:
    engine = loaded_engine(hass)
    if engine is None:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="not_loaded")
    return engine


def _validation_error(err: CommandError) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=err.code,
        translation_placeholders={"error": str(err)},
    )


def _store_error(err: StoreError) -> HomeAssistantError:
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="store_error",
        translation_placeholders={"error": str(err)},
    )


async def _async_send(
    hass: HomeAssistant,
    call: ServiceCall,
    command: str,
    relay: int | None,
    params: dict[str, Any] | None,
) -> ServiceResponse:
    await async_check_call(hass, call, Operation.SEND)
    engine = _engine(hass)
    try:
        record = await engine.async_submit(
            call.data[ATTR_DEVICE],
            command,
            relay,
            params,
            source="service",
            caller=call.context.user_id,
            queue=call.data.get(ATTR_QUEUE),
        )
        if call.data[ATTR_WAIT] and not record.queued and not record.finished:
            # Ended already (confirmed with its PUBACK, say): the record in hand is its end.
            record = await engine.async_wait(record.command_id, engine.settings.command_timeout + 1)
    except CommandError as err:
        raise _validation_error(err) from err
    except StoreError as err:
        raise _store_error(err) from err
    return command_to_dict(record)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register IoTee's service actions."""

    async def send_command(call: ServiceCall) -> ServiceResponse:
        return await _async_send(hass, call, call.data[ATTR_COMMAND], None, call.data[ATTR_PARAMS])

    async def relay_command(call: ServiceCall) -> ServiceResponse:
        return await _async_send(hass, call, call.data[ATTR_ACTION], call.data[ATTR_RELAY], None)

    async def retry_command(call: ServiceCall) -> ServiceResponse:
        await async_check_call(hass, call, Operation.RETRY)
        engine = _engine(hass)
        try:
            record = await engine.async_retry(
                call.data[ATTR_COMMAND_ID], source="service", caller=call.context.user_id
            )
            if call.data[ATTR_WAIT] and not record.finished:
                record = await engine.async_wait(
                    record.command_id, engine.settings.command_timeout + 1
                )
        except CommandError as err:
            raise _validation_error(err) from err
        except StoreError as err:
            raise _store_error(err) from err
        return command_to_dict(record)

    async def get_commands(call: ServiceCall) -> ServiceResponse:
        device = call.data.get(ATTR_DEVICE)
        await async_check_call(
            hass, call, Operation.LIST_ALL if device is None else Operation.HISTORY
        )
        engine = _engine(hass)
        limit = call.data[ATTR_LIMIT]
        if device is None:
            records = await engine.async_list(None, limit)
        else:
            try:
                records = await async_device_history(engine, device, limit)
            except CommandError as err:
                raise _validation_error(err) from err
        return {"commands": [command_to_dict(record) for record in records]}

    async def purge_commands(call: ServiceCall) -> ServiceResponse:
        await async_check_call(hass, call, Operation.PURGE)
        engine = _engine(hass)
        cutoff, deleted = await engine.async_purge(call.data[ATTR_OLDER_THAN_DAYS])
        return {"success": True, "cutoff_date": isoformat_z(cutoff), "deleted": deleted}

    for name, handler, schema in (
        (SERVICE_SEND_COMMAND, send_command, SEND_COMMAND_SCHEMA),
        (SERVICE_RELAY_COMMAND, relay_command, RELAY_COMMAND_SCHEMA),
        (SERVICE_RETRY_COMMAND, retry_command, RETRY_COMMAND_SCHEMA),
        (SERVICE_PURGE_COMMANDS, purge_commands, PURGE_COMMANDS_SCHEMA),
    ):
        hass.services.async_register(
            DOMAIN, name, handler, schema, supports_response=SupportsResponse.OPTIONAL
        )
    hass.services.async_register(
        DOMAIN,
        SERVICE_GET_COMMANDS,
        get_commands,
        GET_COMMANDS_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )

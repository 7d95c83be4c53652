"""The WLTE relay API: execute a relay operation (idempotent, rate-limited) and poll its result.

Order of checks for ``POST .../relays/{index}/commands`` (every refusal before acceptance leaves
no idempotency record, so the caller can reuse its key):

1. authentication (401) and the ``device:control`` scope (403);
2. path, ``Idempotency-Key`` and body (400); the device (404); the relay index (422);
3. the Idempotency-Key: a remembered key returns the original command (202) or, with another
   body, 409; a duplicate arriving while the first request is being accepted waits for it;
4. Home Assistant's MQTT client connected (503), the device not known to be offline (422);
5. the rate limits (429), counted only here, for requests that are about to be accepted;
6. acceptance: the idempotency record is stored, then the command is created and published,
   then the request waits up to ``sync_wait`` for the device.

A request that fails during acceptance (the store cannot be written, say) created nothing: its
key is free again and its count is taken back from the rate limits, so the caller's retry with
the same key is neither a replay nor a 429.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
import re
from typing import Any, Final

from aiohttp import web
from homeassistant.components import mqtt

from custom_components.iotee.core.device_config import DeviceConfig
from custom_components.iotee.core.errors import CommandError
from custom_components.iotee.core.idempotency import (
    ClaimReleasedError,
    body_hash,
    scope_of,
    valid_key,
)
from custom_components.iotee.core.model import (
    CommandRecord,
    CommandStatus,
    ErrorCode,
    new_command_id,
    utcnow,
)
from custom_components.iotee.core.ratelimit import retry_after_header
from custom_components.iotee.core.representation import command_to_wlte
from custom_components.iotee.core.rights import Operation
from custom_components.iotee.core.store import IdempotencyEntry
from custom_components.iotee.engine import CommandEngine
from custom_components.iotee.runtime import IoteeConfigEntry

from .base import ApiRequest, ApiView, Route, read_json_object
from .commands_views import command_error
from .envelope import (
    COMMAND_ACCEPTED,
    COMMAND_NOT_FOUND,
    COMMAND_REJECTED,
    DEVICE_OFFLINE,
    GATEWAY_UNAVAILABLE,
    IDEMPOTENCY_CONFLICT,
    OK,
    RATE_LIMITED,
    ApiError,
    envelope,
    invalid,
    json_response,
)
from .state import BASE_URL, IDEMPOTENCY_TTL, sync_wait

WLTE_BASE: Final = f"{BASE_URL}/wlte/v1"
HEADER_IDEMPOTENCY_KEY: Final = "Idempotency-Key"
HEADER_REPLAYED: Final = "Idempotent-Replayed"
ACTIONS: Final = ("ON", "OFF", "JOG")
MESSAGE_ACCEPTED: Final = "Command accepted."
MESSAGE_REPLAYED: Final = "Command already accepted with this Idempotency-Key; not executed again."
_INDEX_PATTERN = re.compile(r"[1-9][0-9]{0,8}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _device_ref(call: ApiRequest) -> str:
    device_ref = call.match["device_id"]
    if not device_ref.strip():
        raise invalid("deviceId must not be empty.", {"field": "deviceId"})
    return device_ref


def _device(engine: CommandEngine, device_ref: str) -> DeviceConfig:
    try:
        return engine.device(device_ref)
    except CommandError as err:
        raise command_error(err) from err


def _accepted(call: ApiRequest, data: dict[str, Any], *, replayed: bool = False) -> web.Response:
    return json_response(
        envelope(
            COMMAND_ACCEPTED,
            MESSAGE_REPLAYED if replayed else MESSAGE_ACCEPTED,
            call.request_id,
            data,
        ),
        HTTPStatus.ACCEPTED,
        call.request_id,
        {HEADER_REPLAYED: "true"} if replayed else None,
    )


@dataclass(frozen=True, slots=True)
class _Operation:
    """A validated relay operation request."""

    entry: IoteeConfigEntry
    engine: CommandEngine
    config: DeviceConfig
    index: int
    action: str
    scope: str
    """The idempotency scope (caller, path, key)."""
    digest: str
    """The hash of the body."""


class WlteRelayCommandView(ApiView):
    """``POST /wlte/v1/devices/{deviceId}/relays/{index}/commands``: execute ON, OFF or JOG."""

    url = f"{WLTE_BASE}/devices/{{device_id:[^/]*}}/relays/{{index}}/commands"
    name = "api:iotee:wlte_relay_command"
    routes = {"POST": Route("execute", Operation.SEND)}

    async def execute(self, call: ApiRequest) -> web.Response:
        """Validate, deduplicate, rate-limit, accept and wait for the device."""
        device_ref = _device_ref(call)
        index_text = call.match["index"]
        if not _INDEX_PATTERN.fullmatch(index_text):
            raise invalid("index must be a positive integer, starting from 1.", {"field": "index"})
        index = int(index_text)
        key = call.request.headers.get(HEADER_IDEMPOTENCY_KEY)
        if key is None:
            raise invalid(
                "The Idempotency-Key header is required.", {"field": HEADER_IDEMPOTENCY_KEY}
            )
        if not valid_key(key):
            raise invalid(
                "Idempotency-Key must be 1 to 128 letters, digits, '-' or '_'.",
                {"field": HEADER_IDEMPOTENCY_KEY},
            )
        body = await read_json_object(call.request)
        unknown = sorted(set(body) - {"action"})
        if unknown:
            raise invalid(f"Unknown field(s): {', '.join(unknown)}.", {"fields": unknown})
        action = body.get("action")
        if not isinstance(action, str) or action not in ACTIONS:
            raise invalid("action is required: one of ON, OFF, JOG.", {"field": "action"})

        entry = self.api.entry()
        engine = entry.runtime_data.engine
        config = _device(engine, device_ref)
        if index > config.relays:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                COMMAND_REJECTED,
                f"Relay {index} does not exist: {config.hardware_id} has "
                + (f"relays 1 to {config.relays}." if config.relays else "no relays."),
                {"relayIndex": index, "relays": config.relays},
            )

        operation = _Operation(
            entry=entry,
            engine=engine,
            config=config,
            index=index,
            action=action,
            scope=scope_of(call.principal.caller, call.request.path, key),
            digest=body_hash(body),
        )
        inflight = self.api.inflight
        while (waiter := inflight.claim(operation.scope)) is not None:
            try:
                await waiter
            except ClaimReleasedError:
                continue  # the first request created nothing: try to claim the key ourselves
            remembered = await self._remembered(engine, operation.scope)
            if remembered is not None:
                return await self._replay(call, engine, remembered, operation.digest)
        return await self._execute_claimed(call, operation)

    @staticmethod
    async def _remembered(engine: CommandEngine, scope: str) -> IdempotencyEntry | None:
        remembered = await engine.store.idempotency_get(scope)
        if remembered is None or remembered.created_at <= utcnow() - IDEMPOTENCY_TTL:
            return None
        return remembered

    async def _replay(
        self,
        call: ApiRequest,
        engine: CommandEngine,
        remembered: IdempotencyEntry,
        digest: str,
    ) -> web.Response:
        """Answer a repeated key: the original command as it stands now, or a conflict.

        A command deleted or purged since answers as it last was (the key keeps a snapshot).
        """
        if remembered.body_hash != digest:
            raise ApiError(
                HTTPStatus.CONFLICT,
                IDEMPOTENCY_CONFLICT,
                "This Idempotency-Key was already used with a different request body.",
                {"id": remembered.command_id},
            )
        record = await engine.async_get(remembered.command_id) or remembered.snapshot
        if record is None:
            # Only a key whose command was deleted before keys kept snapshots (schema 1).
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                COMMAND_NOT_FOUND,
                f"The command {remembered.command_id} created with this Idempotency-Key no"
                " longer exists; use a new key for a new operation.",
                {"id": remembered.command_id},
            )
        return _accepted(call, command_to_wlte(record), replayed=True)

    async def _execute_claimed(self, call: ApiRequest, op: _Operation) -> web.Response:
        """Handle the request holding the claim on its idempotency scope.

        Until acceptance the claim is released on any refusal or error, so duplicates waiting
        for it handle themselves. Acceptance runs as its own task, shielded from the request: a
        client that disconnects mid-way (handler cancelled) neither burns its key nor leaves a
        half-made command; its retry finds the accepted command.
        """
        inflight = self.api.inflight
        try:
            remembered = await self._remembered(op.engine, op.scope)
            admitted_at = self._admit(call, op) if remembered is None else 0.0
        except BaseException:
            inflight.release(op.scope)
            raise
        if remembered is not None:
            inflight.resolve(op.scope, remembered.command_id)
            return await self._replay(call, op.engine, remembered, op.digest)
        accept = self.api.hass.async_create_task(
            self._accept(call.principal.caller, op, admitted_at),
            "iotee wlte accept",
            eager_start=True,
        )
        record = await asyncio.shield(accept)
        return await self._respond(call, op.entry, op.engine, record)

    def _admit(self, call: ApiRequest, op: _Operation) -> float:
        """Refuse (503, 422, 429) or count the request against the rate limits; return when."""
        if not mqtt.is_connected(self.api.hass):
            raise ApiError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                GATEWAY_UNAVAILABLE,
                "Home Assistant's MQTT client is not connected to the broker.",
            )
        if op.engine.states[op.config.hardware_id].online is False:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                DEVICE_OFFLINE,
                f"Device {op.config.hardware_id} is offline.",
            )
        return self._rate_limit(call, op.entry, op.config, op.index)

    async def _accept(self, caller: str, op: _Operation, admitted_at: float) -> CommandRecord:
        """Remember the key, then create and publish the command; end the claim either way.

        When that fails nothing was accepted: the rate limits forget the request admitted at
        ``admitted_at`` and the key is free again.
        """
        inflight = self.api.inflight
        command_id = new_command_id()
        store = op.engine.store
        try:
            await store.idempotency_put(IdempotencyEntry(op.scope, op.digest, command_id, utcnow()))
            try:
                record = await op.engine.async_submit(
                    op.config.hardware_id,
                    op.action,
                    relay=op.index,
                    source="wlte",
                    caller=caller,
                    command_id=command_id,
                    queue=False,  # the WLTE API documents 422 DEVICE_OFFLINE, never a queue
                )
            except Exception:
                # Nothing went out: free the key (an entry dated at the epoch counts as expired).
                await store.idempotency_put(
                    IdempotencyEntry(op.scope, op.digest, command_id, _EPOCH)
                )
                raise
        except BaseException:
            self.api.limiter.release(caller, op.config.hardware_id, op.index, admitted_at)
            inflight.release(op.scope)
            raise
        inflight.resolve(op.scope, command_id)
        return record

    def _rate_limit(
        self, call: ApiRequest, entry: IoteeConfigEntry, config: DeviceConfig, index: int
    ) -> float:
        """Count the request against the three limits (return when), or refuse it with 429."""
        limiter = self.api.rate_limiter(entry)
        now = self.api.clock()
        caller = call.principal.caller
        waits = {
            "relay": limiter.relay_cooldown.retry_after((config.hardware_id, index), now),
            "device": limiter.per_device.retry_after(config.hardware_id, now),
            "application": limiter.per_caller.retry_after(caller, now),
        }
        wait = limiter.acquire(caller, config.hardware_id, index, now)
        if wait <= 0:
            return now
        seconds = retry_after_header(wait)
        raise ApiError(
            HTTPStatus.TOO_MANY_REQUESTS,
            RATE_LIMITED,
            "Too many requests",
            {"retryAfterSeconds": seconds, "limit": max(waits, key=waits.__getitem__)},
            {"Retry-After": str(seconds)},
        )

    async def _respond(
        self,
        call: ApiRequest,
        entry: IoteeConfigEntry,
        engine: CommandEngine,
        record: CommandRecord,
    ) -> web.Response:
        """Wait up to ``sync_wait`` for a final status; answer 202 (422 when rejected)."""
        wait = sync_wait(entry)
        if not record.finished and wait > 0:
            record = await engine.async_wait(record.command_id, wait)
        data = command_to_wlte(record)
        if not record.finished and wait > 0:
            # Not confirmed within the wait window: TIMEOUT for this answer (the command itself
            # stays open until its own timeout; polling shows SENT until then).
            data["status"] = CommandStatus.TIMEOUT.wlte
        if record.status is CommandStatus.FAILED and record.error_code == ErrorCode.REJECTED:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                COMMAND_REJECTED,
                f"The device rejected the command: {record.error or 'no reason given'}",
                data,
            )
        return _accepted(call, data)


class WlteCommandResultView(ApiView):
    """``GET /wlte/v1/devices/{deviceId}/commands/{commandId}``: poll a command's status."""

    url = f"{WLTE_BASE}/devices/{{device_id:[^/]*}}/commands/{{command_id}}"
    name = "api:iotee:wlte_command_result"
    routes = {"GET": Route("result", Operation.GET)}

    async def result(self, call: ApiRequest) -> web.Response:
        """Return the command's current WLTE status."""
        device_ref = _device_ref(call)
        engine = self.api.entry().runtime_data.engine
        config = _device(engine, device_ref)
        command_id = call.match["command_id"]
        record = await engine.async_get(command_id)
        if record is None or record.hardware_id != config.hardware_id or record.relay is None:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                COMMAND_NOT_FOUND,
                f"Device {config.hardware_id} has no relay command {command_id!r}.",
            )
        return json_response(
            envelope(OK, "Command found.", call.request_id, command_to_wlte(record)),
            HTTPStatus.OK,
            call.request_id,
        )

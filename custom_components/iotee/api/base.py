"""The base of every IoTee REST view: authentication, routing by method, body limits, errors.

HA's own authentication middleware would answer an unauthenticated request with a plain-text 401;
these views set ``requires_auth = False`` and authenticate every request themselves, so every
answer, errors included, is the JSON envelope with an ``X-Request-Id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
import json
import logging
from typing import Any, ClassVar, Final

from aiohttp import hdrs, web
from homeassistant.components.http.ban import process_wrong_login
from homeassistant.helpers.http import HomeAssistantView

from custom_components.iotee.core.rights import Operation
from custom_components.iotee.core.store import StoreFaultError

from .auth import Principal, authenticate, authorize
from .envelope import (
    AUTH_EXPIRED,
    AUTH_INVALID,
    GATEWAY_UNAVAILABLE,
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    ApiError,
    invalid,
    new_request_id,
)
from .state import IoteeApi

_LOGGER = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024
"""Request bodies larger than this are refused with 400 INVALID_REQUEST."""
_CHUNK = 16 * 1024


@dataclass(slots=True)
class ApiRequest:
    """One authenticated request being handled."""

    request: web.Request
    request_id: str
    principal: Principal
    match: dict[str, str]


type Handler = Callable[[ApiRequest], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class Route:
    """The handler of one method of a view and the operation it performs."""

    handler: str
    operation: Operation | None
    """What ``core.rights`` says the caller needs; None: any valid credential."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
"""Strict JSON (no NaN or Infinity), built once: ``json.loads`` with a keyword builds one a call."""


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """Read the body as a JSON object of at most ``MAX_BODY_BYTES``; 400 otherwise."""
    content_type = request.headers.get(hdrs.CONTENT_TYPE)
    if content_type is not None:
        mimetype = request.content_type
        if mimetype != "application/json" and not mimetype.endswith("+json"):
            raise invalid("Content-Type must be application/json.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise invalid("A JSON object body is required.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("The body is not valid UTF-8.") from None
    try:
        value = _DECODER.decode(text)
    except ValueError, RecursionError:
        raise invalid("The body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise invalid("The body must be a JSON object.")
    return value


def _too_large() -> ApiError:
    return invalid(
        f"The request body exceeds {MAX_BODY_BYTES} bytes.", {"maxBodyBytes": MAX_BODY_BYTES}
    )


class ApiView(HomeAssistantView):
    """A view that authenticates, authorizes and answers in the envelope."""

    requires_auth = False
    routes: ClassVar[dict[str, Route]] = {}
    """HTTP method -> handler; other methods get 405 METHOD_NOT_ALLOWED."""

    def __init__(self, api: IoteeApi) -> None:
        """Serve with the API's shared state."""
        self.api = api

    async def get(self, request: web.Request, **match: str) -> web.Response:
        """Dispatch GET."""
        return await self._dispatch(request, match)

    async def head(self, request: web.Request, **match: str) -> web.Response:
        """Dispatch HEAD (not supported: 405)."""
        return await self._dispatch(request, match)

    async def post(self, request: web.Request, **match: str) -> web.Response:
        """Dispatch POST."""
        return await self._dispatch(request, match)

    async def put(self, request: web.Request, **match: str) -> web.Response:
        """Dispatch PUT."""
        return await self._dispatch(request, match)

    async def patch(self, request: web.Request, **match: str) -> web.Response:
        """Dispatch PATCH."""
        return await self._dispatch(request, match)

    async def delete(self, request: web.Request, **match: str) -> web.Response:
        """Dispatch DELETE."""
        return await self._dispatch(request, match)

    async def _dispatch(self, request: web.Request, match: dict[str, str]) -> web.Response:
        request_id = new_request_id()
        try:
            return await self._handle(request, request_id, match)
        except ApiError as err:
            if err.code in (AUTH_INVALID, AUTH_EXPIRED):
                await _count_failed_login(request)
            return err.response(request_id)
        except StoreFaultError as err:
            # The database failed (full, I/O error, locked too long): nothing was accepted, and
            # the same request may well succeed once the fault clears.
            _LOGGER.warning(
                "The command store failed handling %s %s (request %s): %s",
                request.method,
                request.path,
                request_id,
                err,
            )
            return ApiError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                GATEWAY_UNAVAILABLE,
                "The command store cannot be used right now; nothing was sent. Try again later.",
            ).response(request_id)
        except Exception:
            _LOGGER.exception(
                "Unexpected error handling %s %s (request %s)",
                request.method,
                request.path,
                request_id,
            )
            return ApiError(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                INTERNAL_ERROR,
                "Internal error. Quote the requestId when reporting it.",
            ).response(request_id)

    async def _handle(
        self, request: web.Request, request_id: str, match: dict[str, str]
    ) -> web.Response:
        principal = authenticate(self.api.hass, self.api.keys, request)
        route = self.routes.get(request.method)
        if route is None:
            allowed = sorted(self.routes)
            raise ApiError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                METHOD_NOT_ALLOWED,
                f"{request.method} is not allowed here; allowed: {', '.join(allowed)}.",
                data={"allowed": allowed},
                headers={hdrs.ALLOW: ", ".join(allowed)},
            )
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise _too_large()
        authorize(principal, route.operation)
        handler: Handler = getattr(self, route.handler)
        return await handler(ApiRequest(request, request_id, principal, match))


async def _count_failed_login(request: web.Request) -> None:
    """Count invalid credentials towards Home Assistant's IP ban, like its own API does."""
    try:
        await process_wrong_login(request)
    except Exception:  # pragma: no cover - never let bookkeeping turn a 401 into a 500
        _LOGGER.exception("Could not record a failed login attempt")

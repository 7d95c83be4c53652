"""The response envelope shared by both REST APIs, request ids and API errors."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
import secrets
from typing import Any, Final

from aiohttp import web
from homeassistant.helpers.http import HomeAssistantView

HEADER_REQUEST_ID: Final = "X-Request-Id"
HEADER_RETRY_AFTER: Final = "Retry-After"

# Error codes (the WLTE relay API's, plus the ones both APIs need for routes and commands).
INVALID_REQUEST: Final = "INVALID_REQUEST"
AUTH_REQUIRED: Final = "AUTH_REQUIRED"
AUTH_INVALID: Final = "AUTH_INVALID"
AUTH_EXPIRED: Final = "AUTH_EXPIRED"
AUTH_SCOPE_DENIED: Final = "AUTH_SCOPE_DENIED"
NOT_FOUND: Final = "NOT_FOUND"
DEVICE_NOT_FOUND: Final = "DEVICE_NOT_FOUND"
COMMAND_NOT_FOUND: Final = "COMMAND_NOT_FOUND"
METHOD_NOT_ALLOWED: Final = "METHOD_NOT_ALLOWED"
IDEMPOTENCY_CONFLICT: Final = "IDEMPOTENCY_CONFLICT"
COMMAND_NOT_RETRYABLE: Final = "COMMAND_NOT_RETRYABLE"
COMMAND_REJECTED: Final = "COMMAND_REJECTED"
DEVICE_OFFLINE: Final = "DEVICE_OFFLINE"
RATE_LIMITED: Final = "RATE_LIMITED"
INTERNAL_ERROR: Final = "INTERNAL_ERROR"
GATEWAY_UNAVAILABLE: Final = "GATEWAY_UNAVAILABLE"

COMMAND_ACCEPTED: Final = "COMMAND_ACCEPTED"
OK: Final = "OK"


def new_request_id() -> str:
    """Return a new request id (``req_`` and 16 hex digits)."""
    return f"req_{secrets.token_hex(8)}"


def envelope(
    code: str, message: str, request_id: str, data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return the ``{code, message, requestId, data}`` body (``data`` only when given)."""
    body: dict[str, Any] = {"code": code, "message": message, "requestId": request_id}
    if data is not None:
        body["data"] = dict(data)
    return body


def json_response(
    body: Any,
    status: int,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """Return a JSON response carrying ``X-Request-Id`` (and any extra headers)."""
    all_headers = {HEADER_REQUEST_ID: request_id}
    if headers:
        all_headers.update(headers)
    return HomeAssistantView.json(body, status, headers=all_headers)


class ApiError(Exception):
    """A request refused with an error envelope."""

    def __init__(
        self,
        status: HTTPStatus,
        code: str,
        message: str,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Describe the refusal: HTTP status, error code, a human message, optional data."""
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.data = data
        self.headers = dict(headers or {})

    def response(self, request_id: str) -> web.Response:
        """Return the error as an envelope response."""
        return json_response(
            envelope(self.code, self.message, request_id, self.data),
            int(self.status),
            request_id,
            self.headers,
        )


def invalid(message: str, data: Mapping[str, Any] | None = None) -> ApiError:
    """Return a 400 INVALID_REQUEST error."""
    return ApiError(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, message, data)

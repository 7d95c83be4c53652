"""The OpenAPI document and the answer for unknown routes under ``/api/iotee``."""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web

from .base import ApiRequest, ApiView, Route
from .envelope import HEADER_REQUEST_ID, NOT_FOUND, ApiError
from .state import BASE_URL

_ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class OpenApiView(ApiView):
    """``GET /openapi.json``: the OpenAPI 3.1 document of both APIs."""

    url = f"{BASE_URL}/openapi.json"
    name = "api:iotee:openapi"
    routes = {"GET": Route("document", None)}

    async def document(self, call: ApiRequest) -> web.Response:
        """Return the document as loaded at start."""
        return web.Response(
            body=self.api.openapi,
            content_type="application/json",
            headers={HEADER_REQUEST_ID: call.request_id},
        )


class NotFoundView(ApiView):
    """Any other path under ``/api/iotee``: 404 NOT_FOUND in the envelope (after authentication)."""

    url = f"{BASE_URL}/{{tail:.*}}"
    extra_urls = [BASE_URL]
    name = "api:iotee:not_found"
    routes = {method: Route("not_found", None) for method in _ALL_METHODS}

    async def not_found(self, call: ApiRequest) -> web.Response:
        """Refuse: no such route."""
        raise ApiError(HTTPStatus.NOT_FOUND, NOT_FOUND, f"No route {call.request.path}.")

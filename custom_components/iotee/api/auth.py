"""Who is calling: integration API keys and Home Assistant access tokens, and what they may do.

Credentials come in ``X-API-Key: <token>`` or ``Authorization: Bearer <token>`` (``X-API-Key`` wins
when both are sent). A token starting with ``ik_`` is an integration API key; anything else is
checked as a Home Assistant access token. Keys carry a role and scopes; Home Assistant users get
the rights ``user_rights.user_scopes`` gives them. What each operation needs is the table in
``core.rights``, the same for every door (REST, actions, websocket).
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

from aiohttp import hdrs, web
from homeassistant.auth import jwt_wrapper
from homeassistant.auth.models import User
from homeassistant.components.http.auth import SIGN_QUERY_PARAM
from homeassistant.components.http.auth_util import async_user_not_allowed_do_auth
from homeassistant.components.http.const import KEY_HASS_USER, is_supervisor_unix_socket_request
from homeassistant.core import HomeAssistant
from homeassistant.helpers.http import KEY_AUTHENTICATED
import jwt

from custom_components.iotee.core.rights import (
    SCOPE_CONTROL,
    SCOPE_READ,
    Operation,
    Right,
    missing,
)
from custom_components.iotee.user_rights import user_scopes

from .envelope import (
    AUTH_EXPIRED,
    AUTH_INVALID,
    AUTH_REQUIRED,
    AUTH_SCOPE_DENIED,
    ApiError,
)
from .keys import ApiKeyManager, Role, looks_like_key

HEADER_API_KEY: Final = "X-API-Key"
REALM: Final = 'Bearer realm="iotee"'


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    caller: str
    """Stable identity for rate limits and idempotency: ``key:<key id>`` or ``user:<user id>``."""
    is_admin: bool
    scopes: frozenset[str]
    user_id: str | None = None


def _unauthorized(code: str, message: str, error: str | None = None) -> ApiError:
    challenge = REALM if error is None else f'{REALM}, error="{error}"'
    return ApiError(
        HTTPStatus.UNAUTHORIZED, code, message, headers={hdrs.WWW_AUTHENTICATE: challenge}
    )


def _credential(request: web.Request) -> str:
    """Return the presented token; raise AUTH_REQUIRED or AUTH_INVALID."""
    api_key = request.headers.get(HEADER_API_KEY)
    if api_key is not None:
        token = api_key.strip()
        if not token:
            raise _unauthorized(AUTH_INVALID, "The X-API-Key header is empty.", "invalid_token")
        return token
    authorization = request.headers.get(hdrs.AUTHORIZATION)
    if authorization is None:
        raise _unauthorized(
            AUTH_REQUIRED,
            "Authentication required: send 'Authorization: Bearer <token>' or 'X-API-Key'.",
        )
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized(
            AUTH_INVALID, "The Authorization header must be 'Bearer <token>'.", "invalid_request"
        )
    return token


def _ha_token_expired(hass: HomeAssistant, token: str) -> bool:
    """Return True when ``token`` is a correctly signed Home Assistant token that expired."""
    try:
        claims = jwt_wrapper.unverified_hs256_token_decode(token)
    except jwt.InvalidTokenError:
        return False
    refresh_token = hass.auth.async_get_refresh_token(str(claims.get("iss")))
    if refresh_token is None or not refresh_token.user.is_active:
        return False
    try:
        jwt_wrapper.verify_and_decode(
            token, refresh_token.jwt_key, leeway=10, issuer=refresh_token.id, algorithms=["HS256"]
        )
    except jwt.ExpiredSignatureError:
        return True
    except jwt.InvalidTokenError:
        pass
    return False


def _user_checked_by_ha(request: web.Request, token: str) -> User | None:
    """Return the user Home Assistant's own auth middleware found for this very bearer token.

    The middleware validates ``Authorization: Bearer <token>`` (and whether the user may log in
    from here) before any view runs; validating the JWT a second time cost about as much as the
    rest of a send. Only a request authenticated by exactly that header qualifies - not one let
    in by a signed path (``authSig``) or the Supervisor's Unix socket, where the header was not
    what the middleware checked - otherwise the token is validated here as before.
    """
    if request.get(KEY_AUTHENTICATED) is not True:
        return None
    if SIGN_QUERY_PARAM in request.query_string or is_supervisor_unix_socket_request(request):
        return None
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme != "Bearer" or value != token:
        return None
    user = request.get(KEY_HASS_USER)
    return user if isinstance(user, User) else None


def authenticate(hass: HomeAssistant, keys: ApiKeyManager, request: web.Request) -> Principal:
    """Return the caller of ``request`` or raise a 401 ``ApiError``."""
    token = _credential(request)
    if looks_like_key(token):
        key = keys.verify(token)
        if key is None:
            raise _unauthorized(AUTH_INVALID, "Invalid or revoked API key.", "invalid_token")
        if key.expired():
            raise _unauthorized(AUTH_EXPIRED, "The API key has expired.", "invalid_token")
        return Principal(
            caller=f"key:{key.key_id}",
            is_admin=key.role is Role.ADMIN,
            scopes=frozenset(key.scopes),
        )
    user = _user_checked_by_ha(request, token)
    if user is None:
        refresh_token = hass.auth.async_validate_access_token(token)
        if refresh_token is None:
            if _ha_token_expired(hass, token):
                raise _unauthorized(AUTH_EXPIRED, "The access token has expired.", "invalid_token")
            raise _unauthorized(AUTH_INVALID, "Invalid access token.", "invalid_token")
        user = refresh_token.user
        if async_user_not_allowed_do_auth(hass, user, request) is not None:
            raise _unauthorized(
                AUTH_INVALID, "This user may not authenticate from here.", "invalid_token"
            )
    return Principal(
        caller=f"user:{user.id}", is_admin=user.is_admin, scopes=user_scopes(user), user_id=user.id
    )


def authorize(principal: Principal, operation: Operation | None) -> None:
    """Raise 403 AUTH_SCOPE_DENIED unless ``principal`` may perform ``operation``.

    ``None`` is an endpoint any valid credential may use. The refusal names the first right
    lacking: the admin role, else the scope (``data.requiredScope``).
    """
    if operation is None:
        return
    lacking = missing(operation, is_admin=principal.is_admin, scopes=principal.scopes)
    if not lacking:
        return
    if lacking[0] is Right.ADMIN:
        raise ApiError(
            HTTPStatus.FORBIDDEN,
            AUTH_SCOPE_DENIED,
            "This endpoint is for administrators (an admin API key or an administrator).",
            headers={hdrs.WWW_AUTHENTICATE: f'{REALM}, error="insufficient_scope"'},
        )
    needed = SCOPE_CONTROL if lacking[0] is Right.CONTROL else SCOPE_READ
    raise ApiError(
        HTTPStatus.FORBIDDEN,
        AUTH_SCOPE_DENIED,
        f"The credential lacks the scope {needed}.",
        data={"requiredScope": needed},
        headers={hdrs.WWW_AUTHENTICATE: f'{REALM}, error="insufficient_scope", scope="{needed}"'},
    )

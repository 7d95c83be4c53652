"""Authentication and authorization of both REST APIs, the OpenAPI document, error handling."""

from __future__ import annotations

from datetime import timedelta
import json
import re
from typing import Any
from unittest.mock import patch

from aiohttp.test_utils import TestClient
from homeassistant.auth.const import GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, GROUP_ID_USER
from homeassistant.auth.models import Credentials
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import jwt
import pytest
from pytest_homeassistant_custom_component.common import (
    CLIENT_ID,
    MockConfigEntry,
    MockUser,
    async_fire_time_changed,
)

from custom_components.iotee.api import VIEWS, NotFoundView, async_register_api
from custom_components.iotee.api.state import BASE_URL, DATA_API
from custom_components.iotee.core.model import utcnow
from custom_components.iotee.core.store import StoreError

from .api_openapi import OPENAPI_PATH, SPEC, SUPPORTED_KEYWORDS, checked, resolve, schema_keywords
from .helpers import LOCK_ID, WLTE_ID, engine_of, setup_api_hub

# (method, path, access): every endpoint, and what it needs.
ENDPOINTS = [
    ("POST", f"/devices/{LOCK_ID}/commands", "control"),
    ("GET", f"/devices/{LOCK_ID}/commands", "read"),
    ("GET", "/commands", "admin"),
    ("POST", "/commands/purge", "admin"),
    ("GET", "/commands/{command}", "read"),
    ("DELETE", "/commands/{command}", "admin"),
    ("POST", "/commands/{command}/retry", "admin"),
    ("POST", f"/wlte/v1/devices/{WLTE_ID}/relays/1/commands", "control"),
    ("GET", f"/wlte/v1/devices/{WLTE_ID}/commands/{{command}}", "read"),
    ("GET", "/openapi.json", "any"),
]
BODIES = {
    f"/devices/{LOCK_ID}/commands": {"command": "reboot"},
    "/commands/purge": {"older_than_days": 30},
    f"/wlte/v1/devices/{WLTE_ID}/relays/1/commands": {"action": "JOG"},
}


@pytest.fixture
async def hub(hass: HomeAssistant, mqtt_entry: MockConfigEntry) -> MockConfigEntry:
    """The hub with the default devices; short timeouts."""
    return await setup_api_hub(hass)


@pytest.fixture
async def client(hass: HomeAssistant, hub: MockConfigEntry, hass_client_no_auth: Any) -> TestClient:
    """An HTTP client without credentials of its own."""
    return await hass_client_no_auth()


async def make_key(hass: HomeAssistant, **kwargs: Any) -> str:
    """Create an API key; return its secret."""
    return (await hass.data[DATA_API].keys.async_create("test key", **kwargs)).secret


async def user_token(
    hass: HomeAssistant, group_id: str, expiration: timedelta = timedelta(minutes=30)
) -> tuple[MockUser, str]:
    """Create a user in ``group_id`` and an access token of theirs."""
    user = MockUser(groups=[await hass.auth.async_get_group(group_id)]).add_to_hass(hass)
    credential = Credentials(
        id=f"credential-{user.id}",
        auth_provider_type="homeassistant",
        auth_provider_id=None,
        data={"username": user.id},
        is_new=False,
    )
    user.credentials.append(credential)
    refresh_token = await hass.auth.async_create_refresh_token(
        user, CLIENT_ID, credential=credential, access_token_expiration=expiration
    )
    return user, hass.auth.async_create_access_token(refresh_token)


async def request(
    client: TestClient, method: str, path: str, headers: dict[str, str], command: str = "abc"
) -> tuple[int, Any]:
    """Send ``method path`` with ``headers`` (and the endpoint's body); return status and body."""
    path = path.format(command=command)
    body = BODIES.get(path)
    response = await client.request(
        method,
        BASE_URL + path,
        json=body,
        headers=headers | {"Idempotency-Key": f"k-{len(headers)}-{id(headers)}"},
    )
    return response.status, await checked(response)


# ---- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "access"), [*ENDPOINTS, ("GET", "/nope", "any")])
@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "AUTH_REQUIRED"),
        ({"Authorization": "Bearer not-a-token"}, "AUTH_INVALID"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "AUTH_INVALID"),
        ({"Authorization": "Bearer"}, "AUTH_INVALID"),
        ({"X-API-Key": ""}, "AUTH_INVALID"),
        ({"X-API-Key": "ik_00000000.wrong"}, "AUTH_INVALID"),
        ({"X-API-Key": "ik_nothex"}, "AUTH_INVALID"),
    ],
)
async def test_no_request_reaches_a_handler_unauthenticated(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    client: TestClient,
    method: str,
    path: str,
    access: str,
    headers: dict[str, str],
    code: str,
) -> None:
    """Missing or invalid credentials: 401 in the envelope on every route; nothing happens."""
    with patch("custom_components.iotee.api.base.process_wrong_login") as counted:
        status, body = await request(client, method, path, headers)
    assert (status, body["code"]) == (401, code)
    assert await engine_of(hub).async_list(None) == []
    assert counted.called is (code != "AUTH_REQUIRED")


async def test_wrong_secret_and_revoked_key(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient
) -> None:
    """A known key id with a wrong secret, and a revoked key: 401 AUTH_INVALID."""
    secret = await make_key(hass)
    key_id = secret.split(".")[0]
    status, body = await request(client, "GET", "/commands/abc", {"X-API-Key": key_id + ".x"})
    assert (status, body["code"]) == (401, "AUTH_INVALID")
    status, _ = await request(client, "GET", "/commands/abc", {"X-API-Key": secret})
    assert status == 404
    await hass.data[DATA_API].keys.async_revoke(key_id)
    status, body = await request(client, "GET", "/commands/abc", {"X-API-Key": secret})
    assert (status, body["code"]) == (401, "AUTH_INVALID")


async def test_expired_key_and_token(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, local_auth: Any
) -> None:
    """An expired API key or HA access token: 401 AUTH_EXPIRED."""
    secret = await make_key(hass, expires_in_days=1)
    status, _ = await request(client, "GET", "/commands/abc", {"X-API-Key": secret})
    assert status == 404
    later = utcnow() + timedelta(days=1, seconds=1)
    with patch("custom_components.iotee.api.keys.utcnow", return_value=later):
        status, body = await request(client, "GET", "/commands/abc", {"X-API-Key": secret})
    assert (status, body["code"]) == (401, "AUTH_EXPIRED")

    _, token = await user_token(hass, GROUP_ID_ADMIN, timedelta(seconds=-60))
    status, body = await request(client, "GET", "/commands", {"Authorization": f"Bearer {token}"})
    assert (status, body["code"]) == (401, "AUTH_EXPIRED")


async def test_inactive_user_token_is_invalid(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, local_auth: Any
) -> None:
    """A token of a deactivated user: 401 AUTH_INVALID."""
    user, token = await user_token(hass, GROUP_ID_ADMIN)
    status, _ = await request(client, "GET", "/commands", {"Authorization": f"Bearer {token}"})
    assert status == 200
    await hass.auth.async_deactivate_user(user)
    status, body = await request(client, "GET", "/commands", {"Authorization": f"Bearer {token}"})
    assert (status, body["code"]) == (401, "AUTH_INVALID")


async def test_forged_or_refused_ha_tokens_are_invalid(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, local_auth: Any
) -> None:
    """An HA token signed with another key, or of a user HA refuses here: 401 AUTH_INVALID."""
    _, token = await user_token(hass, GROUP_ID_ADMIN)
    claims = jwt.decode(token, options={"verify_signature": False})
    for forged_claims in (claims, claims | {"exp": claims["exp"] - 3600}):
        forged = jwt.encode(
            forged_claims, "not the signing key of this token, 32+ bytes", algorithm="HS256"
        )
        status, body = await request(
            client, "GET", "/commands", {"Authorization": f"Bearer {forged}"}
        )
        assert (status, body["code"]) == (401, "AUTH_INVALID")
    with patch(
        "custom_components.iotee.api.auth.async_user_not_allowed_do_auth",
        return_value="User cannot authenticate remotely",
    ):
        status, body = await request(client, "GET", "/commands", {"X-API-Key": token})
    assert (status, body["code"]) == (401, "AUTH_INVALID")


async def test_header_forms(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, hass_access_token: str
) -> None:
    """A key works as X-API-Key and Bearer (any case); X-API-Key wins; HA tokens work too."""
    secret = await make_key(hass, role="admin")
    for headers in (
        {"X-API-Key": secret},
        {"Authorization": f"Bearer {secret}"},
        {"Authorization": f"bearer  {secret} "},
        {"X-API-Key": secret, "Authorization": "Bearer garbage"},
        {"Authorization": f"Bearer {hass_access_token}"},
        {"X-API-Key": hass_access_token},
    ):
        status, _ = await request(client, "GET", "/commands", headers)
        assert status == 200, headers
    status, body = await request(
        client, "GET", "/commands", {"X-API-Key": "garbage", "Authorization": f"Bearer {secret}"}
    )
    assert (status, body["code"]) == (401, "AUTH_INVALID")


async def test_hass_client_admin_token(
    hass: HomeAssistant, hub: MockConfigEntry, hass_client: Any
) -> None:
    """HA's own authenticated client (an admin's token) reaches admin endpoints."""
    client = await hass_client()
    response = await client.get(f"{BASE_URL}/commands")
    assert response.status == 200
    assert (await checked(response)) == {"commands": [], "count": 0}


# ---- authorization (every operation x every kind of caller: tests/test_rights.py) ---------------


async def credentials(hass: HomeAssistant, kind: str) -> dict[str, str]:
    """Headers for one kind of caller."""
    keys = {
        "user key": {},
        "read key": {"scopes": ["device:read"]},
        "control-only key": {"scopes": ["device:control"]},
        "scopeless key": {"scopes": []},
        "admin key": {"role": "admin"},
        "scopeless admin key": {"role": "admin", "scopes": []},
    }
    if kind in keys:
        return {"X-API-Key": await make_key(hass, **keys[kind])}
    group = {"HA admin": GROUP_ID_ADMIN, "HA user": GROUP_ID_USER}.get(kind, GROUP_ID_READ_ONLY)
    _, token = await user_token(hass, group)
    return {"Authorization": f"Bearer {token}"}


async def test_read_only_user_cannot_control(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    client: TestClient,
    hass_read_only_access_token: str,
    hass_read_only_user: MockUser,
) -> None:
    """HA's read-only group: device:read only, as the scope error says."""
    headers = {"Authorization": f"Bearer {hass_read_only_access_token}"}
    status, body = await request(client, "POST", f"/devices/{LOCK_ID}/commands", headers)
    assert (status, body["data"]) == (403, {"requiredScope": "device:control"})
    response = await client.post(f"{BASE_URL}/devices/{LOCK_ID}/commands", json={}, headers=headers)
    await checked(response)
    assert "insufficient_scope" in response.headers["WWW-Authenticate"]
    status, _ = await request(client, "GET", f"/devices/{LOCK_ID}/commands", headers)
    assert status == 200


# ---- the auth matrix: every endpoint x every way a credential can be wrong -----------------------

# Column -> for each access level the endpoint needs: (status, code), or None for "let through"
# (the request then gets whatever the endpoint answers, never 401 or 403).
MATRIX: dict[str, dict[str, tuple[int, str] | None]] = {
    "no credentials": dict.fromkeys(("control", "read", "admin", "any"), (401, "AUTH_REQUIRED")),
    "malformed": dict.fromkeys(("control", "read", "admin", "any"), (401, "AUTH_INVALID")),
    "wrong": dict.fromkeys(("control", "read", "admin", "any"), (401, "AUTH_INVALID")),
    "expired key": dict.fromkeys(("control", "read", "admin", "any"), (401, "AUTH_EXPIRED")),
    "expired token": dict.fromkeys(("control", "read", "admin", "any"), (401, "AUTH_EXPIRED")),
    "revoked": dict.fromkeys(("control", "read", "admin", "any"), (401, "AUTH_INVALID")),
    "wrong scope": {
        "control": (403, "AUTH_SCOPE_DENIED"),  # a device:read key
        "read": (403, "AUTH_SCOPE_DENIED"),  # a key without scopes
        "admin": (403, "AUTH_SCOPE_DENIED"),  # a user key with every scope
        "any": None,  # a key without scopes still reads the OpenAPI document
    },
    "non-admin": {
        "control": None,
        "read": None,
        "admin": (403, "AUTH_SCOPE_DENIED"),  # a Home Assistant user who is no administrator
        "any": None,
    },
}


async def matrix_headers(hass: HomeAssistant, column: str, access: str) -> dict[str, str]:
    """The credentials of one matrix column for an endpoint needing ``access``."""
    keys = hass.data[DATA_API].keys
    if column == "no credentials":
        return {}
    if column == "malformed":
        return {"Authorization": "Token abc"}
    if column == "wrong":
        secret = await make_key(hass)
        return {"X-API-Key": secret[:-4] + "AAAA"}
    if column == "expired key":
        return {"X-API-Key": await make_key(hass, expires_in_days=1)}
    if column == "expired token":
        _, token = await user_token(hass, GROUP_ID_ADMIN, timedelta(seconds=-60))
        return {"Authorization": f"Bearer {token}"}
    if column == "revoked":
        created = await keys.async_create("revoked", role="admin")
        await keys.async_revoke(created.key.key_id)
        return {"X-API-Key": created.secret}
    if column == "wrong scope":
        kind = {"control": "read key", "read": "scopeless key", "admin": "user key"}
        return await credentials(hass, kind.get(access, "scopeless key"))
    return await credentials(hass, "HA user")


@pytest.mark.parametrize("column", list(MATRIX))
async def test_auth_matrix(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, local_auth: Any, column: str
) -> None:
    """Every endpoint with this kind of bad credential: the documented status and code."""
    later = utcnow() + timedelta(days=2)
    engine = engine_of(hub)
    for method, path, access in ENDPOINTS:
        command = (await engine.async_submit(WLTE_ID, "OFF", relay=3, source="test")).command_id
        headers = await matrix_headers(hass, column, access)
        if column == "expired key":
            with patch("custom_components.iotee.api.keys.utcnow", return_value=later):
                status, body = await request(client, method, path, headers, command)
        else:
            status, body = await request(client, method, path, headers, command)
        expected = MATRIX[column][access]
        if expected is None:
            assert status not in (401, 403), (column, method, path, body)
        else:
            assert (status, body["code"]) == expected, (column, method, path, body)


# ---- errors -------------------------------------------------------------------------------------


async def test_internal_error_leaks_nothing(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception: 500 INTERNAL_ERROR in the envelope, details only in the log."""
    secret = await make_key(hass)
    with patch(
        "custom_components.iotee.api.commands_views.command_to_dict",
        side_effect=RuntimeError("db password is hunter2"),
    ):
        await engine_of(hub).async_submit(LOCK_ID, "lock", source="test")
        response = await client.get(
            f"{BASE_URL}/devices/{LOCK_ID}/commands", headers={"X-API-Key": secret}
        )
    body = await checked(response)
    assert (response.status, body["code"]) == (500, "INTERNAL_ERROR")
    text = json.dumps(body)
    assert "hunter2" not in text
    assert "Traceback" not in text
    assert body["requestId"] in caplog.text
    assert "hunter2" in caplog.text


async def test_request_ids_are_unique(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient
) -> None:
    """Every response has its own X-Request-Id."""
    ids = set()
    for _ in range(5):
        response = await client.get(f"{BASE_URL}/commands")
        ids.add((await checked(response))["requestId"])
    assert len(ids) == 5


# ---- the OpenAPI document -----------------------------------------------------------------------


async def test_openapi_served(
    hass: HomeAssistant, hub: MockConfigEntry, client: TestClient
) -> None:
    """GET /openapi.json returns the repository's document; it needs credentials."""
    status, body = await request(client, "GET", "/openapi.json", {})
    assert status == 401
    secret = await make_key(hass, scopes=[])
    status, body = await request(client, "GET", "/openapi.json", {"X-API-Key": secret})
    assert status == 200
    assert body == json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert body["openapi"].startswith("3.1")
    assert body["servers"] == [{"url": BASE_URL, "description": "This Home Assistant"}]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [ref for key, value in node.items() for ref in _refs(value)] + (
            [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        )
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_openapi_document_is_consistent() -> None:
    """References resolve; only supported schema keywords; every route and method documented."""
    for ref in _refs(SPEC):
        assert resolve(ref) is not None
    assert set(schema_keywords()) <= SUPPORTED_KEYWORDS
    routes: dict[str, set[str]] = {}
    for view in VIEWS:
        if view is NotFoundView:
            continue
        template = re.sub(r"\{([^}:]+)(:[^}]*)?\}", "{}", view.url[len(BASE_URL) :])
        routes[template] = {method.lower() for method in view.routes}
    documented = {
        re.sub(r"\{[^}]+\}", "{}", path): {m for m in item if m != "parameters"}
        for path, item in SPEC["paths"].items()
    }
    assert documented == routes
    for item in SPEC["paths"].values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert {"401", "500"} <= set(operation["responses"]), operation["operationId"]
            for documented in operation["responses"].values():
                response = documented
                while "$ref" in response:
                    response = resolve(response["$ref"])
                assert "X-Request-Id" in response["headers"]
    codes = set(resolve("#/components/schemas/ErrorResponse")["properties"]["code"]["enum"])
    assert {
        "INVALID_REQUEST",
        "AUTH_REQUIRED",
        "AUTH_INVALID",
        "AUTH_EXPIRED",
        "AUTH_SCOPE_DENIED",
        "DEVICE_NOT_FOUND",
        "IDEMPOTENCY_CONFLICT",
        "COMMAND_REJECTED",
        "DEVICE_OFFLINE",
        "RATE_LIMITED",
        "GATEWAY_UNAVAILABLE",
        "INTERNAL_ERROR",
    } <= codes


# ---- registration and housekeeping --------------------------------------------------------------


async def test_register_twice_is_harmless(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    """Registering the API again keeps the first registration."""
    api = hass.data[DATA_API]
    await async_register_api(hass)
    assert hass.data[DATA_API] is api


async def test_idempotency_purge_failure_is_logged(
    hass: HomeAssistant, hub: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing hourly purge logs a warning and keeps running."""
    store = hub.runtime_data.store
    with patch.object(store, "idempotency_purge", side_effect=StoreError("disk full")):
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=1, seconds=1))
        await hass.async_block_till_done()
    assert "Could not purge expired Idempotency-Keys: disk full" in caplog.text

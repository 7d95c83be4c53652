"""One rule per door: an operation on commands needs the same rights through REST and actions.

The tables below are written out by hand (what a caller relies on); one test checks they agree
with ``core.rights.OPERATION_RIGHTS``, the others drive every operation through every door with
every kind of caller, on HA's real HTTP stack and service registry, with the real broker.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.auth.const import GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, GROUP_ID_USER
from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import Unauthorized
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser

from custom_components.iotee.api import VIEWS, NotFoundView, OpenApiView
from custom_components.iotee.api.state import BASE_URL, DATA_API
from custom_components.iotee.const import DOMAIN
from custom_components.iotee.core.rights import SCOPE_CONTROL, SCOPE_READ, Operation, missing

from .helpers import LOCK_ID, WLTE_ID, engine_of, setup_api_hub
from .test_api_auth import make_key, request, user_token

SEND, HISTORY, GET, LIST_ALL, DELETE, RETRY, PURGE = (
    Operation.SEND,
    Operation.HISTORY,
    Operation.GET,
    Operation.LIST_ALL,
    Operation.DELETE,
    Operation.RETRY,
    Operation.PURGE,
)
EVERYTHING = frozenset(Operation)
FOR_ADMINS = frozenset({LIST_ALL, DELETE, RETRY, PURGE})
CONTROLS = frozenset({SEND, RETRY})
"""Operations that publish."""

# ---- the doors ----------------------------------------------------------------------------------

REST_DOORS: dict[Operation, list[tuple[str, str]]] = {
    SEND: [
        ("POST", f"/devices/{LOCK_ID}/commands"),
        ("POST", f"/wlte/v1/devices/{WLTE_ID}/relays/1/commands"),
    ],
    HISTORY: [("GET", f"/devices/{LOCK_ID}/commands")],
    GET: [
        ("GET", "/commands/{command}"),
        ("GET", f"/wlte/v1/devices/{WLTE_ID}/commands/{{command}}"),
    ],
    LIST_ALL: [("GET", "/commands")],
    DELETE: [("DELETE", "/commands/{command}")],
    RETRY: [("POST", "/commands/{command}/retry")],
    PURGE: [("POST", "/commands/purge")],
}
ACTION_DOORS: dict[Operation, list[tuple[str, dict[str, Any]]]] = {
    SEND: [
        ("send_command", {"device": LOCK_ID, "command": "reboot"}),
        ("relay_command", {"device": WLTE_ID, "relay": 2, "action": "JOG"}),
    ],
    HISTORY: [("get_commands", {"device": LOCK_ID})],
    LIST_ALL: [("get_commands", {})],
    RETRY: [("retry_command", {"command_id": "{command}"})],
    PURGE: [("purge_commands", {"older_than_days": 30})],
}

# ---- who may do what ----------------------------------------------------------------------------

# caller kind -> (is admin, scopes, the operations it may perform)
REST_CALLERS: dict[str, tuple[bool, frozenset[str], frozenset[Operation]]] = {
    "admin key": (True, frozenset({SCOPE_CONTROL, SCOPE_READ}), EVERYTHING),
    "admin key read-only": (
        True,
        frozenset({SCOPE_READ}),
        frozenset({HISTORY, GET, LIST_ALL, DELETE, PURGE}),
    ),
    "admin key control-only": (True, frozenset({SCOPE_CONTROL}), EVERYTHING),
    "admin key without scopes": (True, frozenset(), frozenset({DELETE, PURGE})),
    "user key": (False, frozenset({SCOPE_CONTROL, SCOPE_READ}), frozenset({SEND, HISTORY, GET})),
    "user key read-only": (False, frozenset({SCOPE_READ}), frozenset({HISTORY, GET})),
    "user key without scopes": (False, frozenset(), frozenset()),
    "HA admin": (True, frozenset({SCOPE_CONTROL, SCOPE_READ}), EVERYTHING),
    "HA user": (False, frozenset({SCOPE_CONTROL, SCOPE_READ}), frozenset({SEND, HISTORY, GET})),
    "HA read-only user": (False, frozenset({SCOPE_READ}), frozenset({HISTORY, GET})),
}
# action caller -> the operations it may perform (None: no user, an automation or a script)
ACTION_CALLERS: dict[str, frozenset[Operation]] = {
    "admin": EVERYTHING,
    "user": frozenset({SEND, HISTORY, GET}),
    "read-only user": frozenset({HISTORY, GET}),
    "unknown user": frozenset(),
    "system": EVERYTHING,
}
# The action callers that are HA users, as the REST API sees their access tokens.
SAME_USER = {"admin": "HA admin", "user": "HA user", "read-only user": "HA read-only user"}


def test_tables_agree_with_core_rights() -> None:
    """The hand-written tables are what ``OPERATION_RIGHTS`` says, for REST and actions alike."""
    for kind, (is_admin, scopes, allowed) in REST_CALLERS.items():
        computed = {op for op in Operation if not missing(op, is_admin=is_admin, scopes=scopes)}
        assert computed == allowed, kind
    for action_caller, rest_caller in SAME_USER.items():
        assert ACTION_CALLERS[action_caller] == REST_CALLERS[rest_caller][2], action_caller
    assert set(REST_DOORS) == EVERYTHING
    assert set(ACTION_DOORS) == EVERYTHING - {GET, DELETE}  # no action gets or deletes one


def _template(path: str) -> str:
    """A path or route with its variable parts as ``{}``."""
    path = re.sub(r"\{[^}]*\}", "{}", path)
    return path.replace(LOCK_ID, "{}").replace(WLTE_ID, "{}").replace("/relays/1/", "/relays/{}/")


def test_every_route_names_its_operation() -> None:
    """Each REST route is one door of the operation it performs (and no other)."""
    doors = {
        (method, _template(path)): op for op, paths in REST_DOORS.items() for method, path in paths
    }
    routes: dict[tuple[str, str], Operation | None] = {}
    for view in VIEWS:
        path = _template(view.url[len(BASE_URL) :])
        for method, route in view.routes.items():
            if view in (NotFoundView, OpenApiView):
                assert route.operation is None
            else:
                routes[method, path] = route.operation
    assert routes == doors


# ---- REST ---------------------------------------------------------------------------------------


@pytest.fixture
async def hub(hass: HomeAssistant, mqtt_entry: MockConfigEntry) -> MockConfigEntry:
    """The hub with the default devices, the REST API registered."""
    return await setup_api_hub(hass)


async def rest_headers(hass: HomeAssistant, kind: str) -> dict[str, str]:
    """Credentials of one kind of REST caller."""
    if kind.startswith("HA "):
        group = {"HA admin": GROUP_ID_ADMIN, "HA user": GROUP_ID_USER}.get(kind, GROUP_ID_READ_ONLY)
        _, token = await user_token(hass, group)
        return {"Authorization": f"Bearer {token}"}
    is_admin, scopes, _ = REST_CALLERS[kind]
    secret = await make_key(hass, role="admin" if is_admin else "user", scopes=sorted(scopes))
    return {"X-API-Key": secret}


async def retryable_command(hass: HomeAssistant, hub: MockConfigEntry) -> str:
    """A failed relay command (superseded by the next one to its relay); return its id."""
    engine = engine_of(hub)
    first = await engine.async_submit(WLTE_ID, "ON", relay=3, source="test")
    await engine.async_submit(WLTE_ID, "OFF", relay=3, source="test")
    return first.command_id


async def stored(hub: MockConfigEntry) -> int:
    """How many commands the store holds."""
    return len(await engine_of(hub).async_list(None, 1000))


@pytest.mark.parametrize("kind", list(REST_CALLERS))
async def test_rest_rights(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    hass_client_no_auth: Any,
    local_auth: Any,
    kind: str,
) -> None:
    """Every operation through every REST door: allowed exactly as the table says; a refusal is
    403 AUTH_SCOPE_DENIED naming what is missing, and nothing is published or changed."""
    client: TestClient = await hass_client_no_auth()
    headers = await rest_headers(hass, kind)
    is_admin, _, allowed = REST_CALLERS[kind]
    for n, (operation, doors) in enumerate(REST_DOORS.items()):
        for method, path in doors:
            command = await retryable_command(hass, hub)
            hass.data[DATA_API].clock = lambda n=n: 1000.0 * (n + 1)  # past every cooldown
            before = await stored(hub)
            status, body = await request(client, method, path, headers, command)
            where = (kind, method, path, body)
            if operation in allowed:
                assert status < 400, where
                continue
            assert (status, body["code"]) == (403, "AUTH_SCOPE_DENIED"), where
            if not is_admin and operation in FOR_ADMINS:
                assert "data" not in body, where  # the admin role is what is missing
            else:
                scope = SCOPE_CONTROL if operation in CONTROLS else SCOPE_READ
                assert body["data"] == {"requiredScope": scope}, where
            assert await stored(hub) == before, where
            assert await engine_of(hub).async_get(command) is not None, where


async def test_admin_key_with_read_scope_cannot_retry(
    hass: HomeAssistant, hub: MockConfigEntry, hass_client_no_auth: Any
) -> None:
    """Scopes bind admin keys too: retrying publishes, so it needs device:control."""
    client: TestClient = await hass_client_no_auth()
    secret = await make_key(hass, role="admin", scopes=[SCOPE_READ])
    command = await retryable_command(hass, hub)
    before = await stored(hub)
    response = await client.post(
        f"{BASE_URL}/commands/{command}/retry", headers={"X-API-Key": secret}
    )
    body = await response.json()
    assert response.status == 403
    assert body["code"] == "AUTH_SCOPE_DENIED"
    assert body["message"] == "The credential lacks the scope device:control."
    assert body["data"] == {"requiredScope": "device:control"}
    assert 'scope="device:control"' in response.headers["WWW-Authenticate"]
    assert await stored(hub) == before


# ---- actions ------------------------------------------------------------------------------------


async def action_context(
    hass: HomeAssistant, kind: str, admin: User, read_only: User
) -> Context | None:
    """The context an action is called with by one kind of caller."""
    if kind == "admin":
        return Context(user_id=admin.id)
    if kind == "read-only user":
        return Context(user_id=read_only.id)
    if kind == "user":
        user = MockUser(groups=[await hass.auth.async_get_group(GROUP_ID_USER)]).add_to_hass(hass)
        return Context(user_id=user.id)
    if kind == "unknown user":
        return Context(user_id="no-such-user")
    return None


@pytest.mark.parametrize("kind", list(ACTION_CALLERS))
async def test_action_rights(
    hass: HomeAssistant,
    hub: MockConfigEntry,
    hass_admin_user: User,
    hass_read_only_user: User,
    kind: str,
) -> None:
    """Every operation through every action: allowed exactly as the table says; a refusal is a
    translated ``Unauthorized`` naming the action, and nothing is published or changed."""
    context = await action_context(hass, kind, hass_admin_user, hass_read_only_user)
    allowed = ACTION_CALLERS[kind]
    for operation, doors in ACTION_DOORS.items():
        for service, template in doors:
            command = await retryable_command(hass, hub)
            data = {
                k: v.format(command=command) if isinstance(v, str) else v
                for k, v in template.items()
            }
            before = await stored(hub)
            call = hass.services.async_call(
                DOMAIN, service, data, blocking=True, return_response=True, context=context
            )
            where = (kind, service, data)
            if operation in allowed:
                await call
                continue
            with pytest.raises(Unauthorized) as err:
                await call
            assert err.value.translation_domain == DOMAIN, where
            if operation in FOR_ADMINS:
                right = "admin"
            else:
                right = "control" if operation in CONTROLS else "read"
            assert err.value.translation_key == f"action_needs_{right}", where
            assert err.value.translation_placeholders == {"action": f"{DOMAIN}.{service}"}
            assert f"{DOMAIN}.{service}" in str(err.value), where
            assert await stored(hub) == before, where
            assert await engine_of(hub).async_get(command) is not None, where


async def test_read_only_user_cannot_send_through_actions(
    hass: HomeAssistant, hub: MockConfigEntry, hass_read_only_user: User
) -> None:
    """A Home Assistant user without control permission is refused send_command, readably."""
    with pytest.raises(Unauthorized) as err:
        await hass.services.async_call(
            DOMAIN,
            "send_command",
            {"device": LOCK_ID, "command": "unlock"},
            blocking=True,
            return_response=True,
            context=Context(user_id=hass_read_only_user.id),
        )
    assert str(err.value) == (
        "iotee.send_command controls devices, and this user may not control them"
    )
    assert await stored(hub) == 0

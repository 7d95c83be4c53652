"""API keys: the admin-only services, the hub options flow, storage of hashes only."""

from __future__ import annotations

from datetime import datetime, timedelta
import hashlib
import json
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_NAME
from homeassistant.core import Context, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.setup import async_setup_component
import probatio as vol
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser

from custom_components.iotee.api.keys import (
    STORAGE_KEY,
    ApiKeyError,
    ApiKeyManager,
    Role,
    looks_like_key,
)
from custom_components.iotee.api.state import BASE_URL, DATA_API
from custom_components.iotee.const import (
    CONF_COMMAND_QOS,
    CONF_COMMAND_TIMEOUT,
    CONF_RATE_CALLER,
    CONF_RATE_DEVICE,
    CONF_RELAY_COOLDOWN,
    CONF_RETENTION_DAYS,
    CONF_SYNC_WAIT,
    DOMAIN,
)

from .api_openapi import checked
from .helpers import engine_of, setup_hub


@pytest.fixture
async def api(hass: HomeAssistant, mqtt_entry: MockConfigEntry) -> Any:
    """IoTee set up (no hub needed for keys)."""
    assert await async_setup_component(hass, DOMAIN, {})
    return hass.data[DATA_API]


async def create(hass: HomeAssistant, user: MockUser, **data: Any) -> dict[str, Any]:
    """Call iotee.create_api_key as ``user``."""
    response: dict[str, Any] = await hass.services.async_call(
        DOMAIN,
        "create_api_key",
        {"name": "gate app"} | data,
        blocking=True,
        return_response=True,
        context=Context(user_id=user.id),
    )
    return response


# ---- services -----------------------------------------------------------------------------------


async def test_create_api_key_service(
    hass: HomeAssistant,
    api: Any,
    hass_admin_user: MockUser,
    hass_storage: dict[str, Any],
    hass_client_no_auth: Any,
) -> None:
    """An admin creates a key: the secret is returned once, only its hash is stored."""
    created = await create(hass, hass_admin_user, role="admin", expires_in_days=30)
    secret = created["api_key"]
    assert secret.startswith(created["key_id"] + ".")
    assert created["name"] == "gate app"
    assert created["role"] == "admin"
    assert created["scopes"] == ["device:control", "device:read"]
    expires = datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
    created_at = datetime.fromisoformat(created["created_at"].replace("Z", "+00:00"))
    assert expires - created_at == timedelta(days=30)

    stored = hass_storage[STORAGE_KEY]["data"]["keys"]
    assert len(stored) == 1
    assert stored[0]["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert stored[0]["created_by"] == hass_admin_user.id
    assert secret.split(".")[1] not in json.dumps(hass_storage[STORAGE_KEY])

    client = await hass_client_no_auth()
    response = await client.get(f"{BASE_URL}/openapi.json", headers={"X-API-Key": secret})
    assert response.status == 200
    await checked(response)


async def test_create_defaults_and_validation(
    hass: HomeAssistant, api: Any, hass_admin_user: MockUser
) -> None:
    """Defaults: user role, both scopes, no expiry; bad values are refused by the schema."""
    created = await create(hass, hass_admin_user, scopes="device:read")
    assert (created["role"], created["scopes"], created["expires_at"]) == (
        "user",
        ["device:read"],
        None,
    )
    for bad in (
        {"scopes": ["device:everything"]},
        {"role": "root"},
        {"expires_in_days": 0},
        {"name": ""},
    ):
        with pytest.raises(vol.Invalid):
            await create(hass, hass_admin_user, **bad)
    with pytest.raises(ServiceValidationError):
        await create(hass, hass_admin_user, name="   ")


async def test_services_are_admin_only(
    hass: HomeAssistant, api: Any, hass_read_only_user: MockUser
) -> None:
    """A non-admin user may neither create nor revoke keys."""
    with pytest.raises(Unauthorized):
        await create(hass, hass_read_only_user)
    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            DOMAIN,
            "revoke_api_key",
            {"key_id": "ik_00000000"},
            blocking=True,
            context=Context(user_id=hass_read_only_user.id),
        )


async def test_revoke_api_key_service(
    hass: HomeAssistant, api: Any, hass_admin_user: MockUser, hass_client_no_auth: Any
) -> None:
    """A revoked key stops working at once; revoking an unknown key is a validation error."""
    created = await create(hass, hass_admin_user)
    client = await hass_client_no_auth()
    headers = {"X-API-Key": created["api_key"]}
    response = await client.get(f"{BASE_URL}/openapi.json", headers=headers)
    assert response.status == 200
    await checked(response)
    response = await hass.services.async_call(
        DOMAIN,
        "revoke_api_key",
        {"key_id": created["key_id"]},
        blocking=True,
        return_response=True,
        context=Context(user_id=hass_admin_user.id),
    )
    assert response == {"revoked": created["key_id"]}
    answer = await client.get(f"{BASE_URL}/openapi.json", headers=headers)
    assert (answer.status, (await checked(answer))["code"]) == (401, "AUTH_INVALID")
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            DOMAIN,
            "revoke_api_key",
            {"key_id": created["key_id"]},
            blocking=True,
            context=Context(user_id=hass_admin_user.id),
        )


# ---- the manager --------------------------------------------------------------------------------


async def test_keys_survive_restart(hass: HomeAssistant, api: Any) -> None:
    """Keys are loaded again from storage (a new manager sees and verifies them)."""
    created = await api.keys.async_create("persisted", role=Role.ADMIN, expires_in_days=2)
    reloaded = ApiKeyManager(hass)
    await reloaded.async_load()
    key = reloaded.verify(created.secret)
    assert key == created.key
    assert key is not None
    assert key.role is Role.ADMIN
    assert [k.key_id for k in reloaded.keys] == [created.key.key_id]


async def test_verify_and_validation(hass: HomeAssistant, api: Any) -> None:
    """Only the exact secret verifies; malformed tokens never match; bad inputs are refused."""
    created = await api.keys.async_create("k")
    key_id = created.key.key_id
    assert api.keys.verify(created.secret) == created.key
    for token in (key_id, key_id + ".", created.secret + "x", "ik_ZZZZZZZZ.x", "x.y", ""):
        assert api.keys.verify(token) is None
    assert looks_like_key(created.secret)
    assert not looks_like_key("eyJhbGciOi")
    for kwargs in (
        {"name": "x" * 101},
        {"name": "ok", "scopes": ["admin"]},
        {"name": "ok", "expires_in_days": 4000},
    ):
        with pytest.raises(ApiKeyError):
            await api.keys.async_create(**kwargs)
    with pytest.raises(ApiKeyError):
        await api.keys.async_revoke("ik_00000000")
    assert not created.key.expired()
    assert created.key.as_dict()["expires_at"] is None
    assert created.secret not in repr(created)
    assert created.key.secret_hash not in repr(created)


# ---- the options flow ---------------------------------------------------------------------------


async def test_options_menu_and_settings(hass: HomeAssistant, mqtt_entry: MockConfigEntry) -> None:
    """The options start with a menu; the settings step edits the hub options as before."""
    entry = await setup_hub(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["settings", "create_api_key", "revoke_api_key"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "settings"}
    )
    assert (result["type"], result["step_id"]) == (FlowResultType.FORM, "settings")
    suggested = {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description
    }
    assert suggested[CONF_COMMAND_QOS] == "auto"  # the default, shown as the list's string
    new = {
        CONF_COMMAND_TIMEOUT: 5.0,
        CONF_SYNC_WAIT: 4.0,
        CONF_RETENTION_DAYS: 30,
        CONF_RATE_CALLER: 100,
        CONF_RATE_DEVICE: 5,
        CONF_RELAY_COOLDOWN: 1.0,
    }
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], new | {CONF_COMMAND_QOS: "0"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert dict(entry.options) == new | {CONF_COMMAND_QOS: 0}
    assert engine_of(entry).settings.qos == 0
    assert entry.state is ConfigEntryState.LOADED
    # And back to automatic: stored as the choice's name, no QoS of its own.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "settings"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], new | {CONF_COMMAND_QOS: "auto"}
    )
    await hass.async_block_till_done()
    assert entry.options[CONF_COMMAND_QOS] == "auto"
    assert engine_of(entry).settings.qos is None


async def test_options_create_and_revoke_key(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, hass_client_no_auth: Any
) -> None:
    """Create a key in the options (secret shown once), use it, then revoke it there."""
    entry = await setup_hub(hass)
    options = dict(entry.options)
    flow = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        flow["flow_id"], {"next_step_id": "revoke_api_key"}
    )
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "no_api_keys")

    flow = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        flow["flow_id"], {"next_step_id": "create_api_key"}
    )
    assert result["step_id"] == "create_api_key"
    result = await hass.config_entries.options.async_configure(
        flow["flow_id"],
        {CONF_NAME: "  ", "role": "user", "scopes": ["device_read"]},
    )
    assert result["errors"] == {"base": "invalid_api_key"}
    result = await hass.config_entries.options.async_configure(
        flow["flow_id"],
        {CONF_NAME: "dashboard", "role": "admin", "scopes": ["device_read"], "expires_in_days": 7},
    )
    assert (result["type"], result["step_id"]) == (FlowResultType.FORM, "api_key_created")
    placeholders = result["description_placeholders"]
    secret = placeholders["api_key"]
    assert placeholders["key_id"] == secret.split(".")[0]
    assert placeholders["name"] == "dashboard"
    key = hass.data[DATA_API].keys.get(placeholders["key_id"])
    assert key is not None
    assert (key.role, key.scopes) == (Role.ADMIN, ("device:read",))
    assert key.expires_at is not None

    client = await hass_client_no_auth()
    response = await client.get(f"{BASE_URL}/commands", headers={"X-API-Key": secret})
    assert response.status == 200
    await checked(response)

    result = await hass.config_entries.options.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert dict(entry.options) == options

    flow = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        flow["flow_id"], {"next_step_id": "revoke_api_key"}
    )
    assert result["step_id"] == "revoke_api_key"
    await hass.data[DATA_API].keys.async_revoke(key.key_id)  # gone meanwhile
    await hass.data[DATA_API].keys.async_create("other")
    result = await hass.config_entries.options.async_configure(
        flow["flow_id"], {"key_id": key.key_id}
    )
    assert result["errors"] == {"base": "unknown_api_key"}
    other = hass.data[DATA_API].keys.keys[0]
    result = await hass.config_entries.options.async_configure(
        flow["flow_id"], {"key_id": other.key_id}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert hass.data[DATA_API].keys.keys == []
    response = await client.get(f"{BASE_URL}/commands", headers={"X-API-Key": secret})
    assert response.status == 401
    await checked(response)

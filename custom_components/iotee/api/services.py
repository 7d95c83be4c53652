"""Admin-only service actions that create and revoke integration API keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.service import async_register_admin_service
import probatio as vol  # HA's schema library; `voluptuous` resolves to its shim at run time

from custom_components.iotee.const import DOMAIN

from .keys import MAX_EXPIRY_DAYS, MAX_NAME_LENGTH, SCOPES, ApiKeyError, Role

if TYPE_CHECKING:
    from .state import IoteeApi

SERVICE_CREATE_API_KEY = "create_api_key"
SERVICE_REVOKE_API_KEY = "revoke_api_key"
ATTR_NAME = "name"
ATTR_ROLE = "role"
ATTR_SCOPES = "scopes"
ATTR_EXPIRES_IN_DAYS = "expires_in_days"
ATTR_KEY_ID = "key_id"

CREATE_API_KEY_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_NAME): vol.All(cv.string, vol.Length(min=1, max=MAX_NAME_LENGTH)),
        vol.Optional(ATTR_ROLE, default=Role.USER.value): vol.In([role.value for role in Role]),
        vol.Optional(ATTR_SCOPES, default=list(SCOPES)): vol.All(cv.ensure_list, [vol.In(SCOPES)]),
        vol.Optional(ATTR_EXPIRES_IN_DAYS): vol.All(
            vol.Coerce(float), vol.Range(min=0, min_included=False, max=MAX_EXPIRY_DAYS)
        ),
    }
)
REVOKE_API_KEY_SCHEMA = vol.Schema({vol.Required(ATTR_KEY_ID): cv.string})


@callback
def async_setup_api_services(hass: HomeAssistant, api: IoteeApi) -> None:
    """Register ``iotee.create_api_key`` and ``iotee.revoke_api_key`` (administrators only)."""

    async def create_api_key(call: ServiceCall) -> ServiceResponse:
        try:
            created = await api.keys.async_create(
                call.data[ATTR_NAME],
                call.data[ATTR_ROLE],
                call.data[ATTR_SCOPES],
                call.data.get(ATTR_EXPIRES_IN_DAYS),
                created_by=call.context.user_id,
            )
        except ApiKeyError as err:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="invalid_api_key",
                translation_placeholders={"error": str(err)},
            ) from err
        return created.key.as_dict() | {"api_key": created.secret}

    async def revoke_api_key(call: ServiceCall) -> ServiceResponse:
        try:
            key = await api.keys.async_revoke(call.data[ATTR_KEY_ID])
        except ApiKeyError as err:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="unknown_api_key",
                translation_placeholders={"key_id": call.data[ATTR_KEY_ID]},
            ) from err
        return {"revoked": key.key_id}

    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_CREATE_API_KEY,
        create_api_key,
        CREATE_API_KEY_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_REVOKE_API_KEY,
        revoke_api_key,
        REVOKE_API_KEY_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )

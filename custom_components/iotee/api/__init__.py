"""IoTee's REST APIs under ``/api/iotee``: the Commands API and the WLTE relay API.

``async_register_api`` (from ``async_setup``) loads the API keys and the OpenAPI document,
registers the views and the key services; ``async_setup_entry_api`` (from ``async_setup_entry``)
forgets Idempotency-Keys older than 48 hours, at start and every hour, while the hub is loaded.
"""

from __future__ import annotations

from datetime import timedelta
import logging
from pathlib import Path
from typing import Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.event import async_track_time_interval

from custom_components.iotee.core.model import utcnow
from custom_components.iotee.core.store import StoreError
from custom_components.iotee.runtime import IoteeConfigEntry

from .base import ApiView
from .commands_views import (
    CommandsView,
    CommandView,
    DeviceCommandsView,
    PurgeView,
    RetryView,
)
from .keys import ApiKeyManager
from .meta_views import NotFoundView, OpenApiView
from .services import async_setup_api_services
from .state import DATA_API, IDEMPOTENCY_TTL, IoteeApi
from .wlte_views import WlteCommandResultView, WlteRelayCommandView

_LOGGER = logging.getLogger(__name__)

OPENAPI_PATH: Final = Path(__file__).parent / "openapi.json"
IDEMPOTENCY_PURGE_INTERVAL: Final = timedelta(hours=1)

# Registration order matters only for equal paths; the catch-all goes last.
VIEWS: Final[tuple[type[ApiView], ...]] = (
    DeviceCommandsView,
    CommandsView,
    PurgeView,
    CommandView,
    RetryView,
    WlteRelayCommandView,
    WlteCommandResultView,
    OpenApiView,
    NotFoundView,
)


async def async_register_api(hass: HomeAssistant) -> None:
    """Load keys and the OpenAPI document; register the views and the key services."""
    if DATA_API in hass.data:
        return
    keys = ApiKeyManager(hass)
    await keys.async_load()
    openapi = await hass.async_add_executor_job(OPENAPI_PATH.read_bytes)
    api = IoteeApi(hass, keys, openapi)
    hass.data[DATA_API] = api
    for view in VIEWS:
        hass.http.register_view(view(api))
    async_setup_api_services(hass, api)


def async_setup_entry_api(hass: HomeAssistant, entry: IoteeConfigEntry) -> None:
    """Forget expired Idempotency-Keys now and every hour while ``entry`` is loaded."""
    store = entry.runtime_data.store

    async def _async_purge(*_: object) -> None:
        try:
            deleted = await store.idempotency_purge(utcnow() - IDEMPOTENCY_TTL)
        except StoreError as err:
            _LOGGER.warning("Could not purge expired Idempotency-Keys: %s", err)
            return
        if deleted:
            _LOGGER.debug("Forgot %s expired Idempotency-Keys", deleted)

    entry.async_on_unload(async_track_time_interval(hass, _async_purge, IDEMPOTENCY_PURGE_INTERVAL))
    entry.async_create_background_task(hass, _async_purge(), "iotee idempotency purge")

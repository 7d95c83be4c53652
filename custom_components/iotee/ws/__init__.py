"""IoTee's websocket API: the commands behind the panel and the dashboard card.

``iotee/commands/list``, ``get``, ``subscribe``, ``send``, ``retry``, ``delete``, ``purge`` and
``iotee/devices``; what each needs is ``core.rights``' table, as for REST and the actions.
"""

from __future__ import annotations

from homeassistant.components.websocket_api import async_register_command
from homeassistant.core import HomeAssistant, callback

from .act import ws_delete, ws_purge, ws_retry, ws_send
from .live import ws_subscribe
from .read import ws_devices, ws_get, ws_list


@callback
def async_register_websocket(hass: HomeAssistant) -> None:
    """Register IoTee's websocket commands."""
    for handler in (
        ws_list,
        ws_get,
        ws_devices,
        ws_subscribe,
        ws_send,
        ws_retry,
        ws_delete,
        ws_purge,
    ):
        async_register_command(hass, handler)

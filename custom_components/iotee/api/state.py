"""What the REST API keeps between requests: keys, rate limits, idempotency claims."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from http import HTTPStatus
import time
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.util.hass_dict import HassKey

from custom_components.iotee.const import (
    CONF_RATE_CALLER,
    CONF_RATE_DEVICE,
    CONF_RELAY_COOLDOWN,
    CONF_SYNC_WAIT,
    DEFAULT_RATE_CALLER,
    DEFAULT_RATE_DEVICE,
    DEFAULT_RELAY_COOLDOWN,
    DEFAULT_SYNC_WAIT,
    DOMAIN,
)
from custom_components.iotee.core.idempotency import InFlight
from custom_components.iotee.core.ratelimit import RelayRateLimiter
from custom_components.iotee.runtime import IoteeConfigEntry

from .envelope import GATEWAY_UNAVAILABLE, ApiError
from .keys import ApiKeyManager

BASE_URL: Final = "/api/iotee"
IDEMPOTENCY_TTL: Final = timedelta(hours=48)
"""How long an Idempotency-Key is remembered (the WLTE document asks for at least 48 h)."""
CALLER_WINDOW: Final = 60.0
DEVICE_WINDOW: Final = 10.0

DATA_API: HassKey[IoteeApi] = HassKey(f"{DOMAIN}_api")

type Limits = tuple[tuple[int, float], tuple[int, float], float]


class IoteeApi:
    """Shared state of the REST API; lives in ``hass.data`` for the whole run (not per entry).

    The rate limiter lives here rather than on the config entry, so reloading the hub (options
    changed) keeps the history of accepted commands; new limits apply to it at the next request.
    """

    def __init__(self, hass: HomeAssistant, keys: ApiKeyManager, openapi: bytes) -> None:
        """Hold the key manager and the OpenAPI document; start with no history."""
        self.hass = hass
        self.keys = keys
        self.openapi = openapi
        self.limiter = RelayRateLimiter()
        self.inflight = InFlight()
        self.clock: Callable[[], float] = time.monotonic
        self._limits: Limits | None = None

    def entry(self) -> IoteeConfigEntry:
        """Return the loaded hub entry; 503 GATEWAY_UNAVAILABLE when it is not loaded."""
        entries: list[IoteeConfigEntry] = self.hass.config_entries.async_loaded_entries(DOMAIN)
        if not entries:
            raise ApiError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                GATEWAY_UNAVAILABLE,
                "The IoTee hub is not loaded.",
            )
        return entries[0]

    def rate_limiter(self, entry: IoteeConfigEntry) -> RelayRateLimiter:
        """Return the limiter, set to the hub's current options."""
        options: dict[str, Any] = dict(entry.options)
        limits: Limits = (
            (int(options.get(CONF_RATE_CALLER, DEFAULT_RATE_CALLER)), CALLER_WINDOW),
            (int(options.get(CONF_RATE_DEVICE, DEFAULT_RATE_DEVICE)), DEVICE_WINDOW),
            float(options.get(CONF_RELAY_COOLDOWN, DEFAULT_RELAY_COOLDOWN)),
        )
        if limits != self._limits:
            self.limiter.reconfigure(*limits)
            self._limits = limits
        return self.limiter


def sync_wait(entry: IoteeConfigEntry) -> float:
    """Return how long the WLTE API waits for the device's confirmation."""
    return float(entry.options.get(CONF_SYNC_WAIT, DEFAULT_SYNC_WAIT))

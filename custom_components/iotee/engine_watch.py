"""Follow the loaded hub's engine across reloads (options or devices changed, hub re-added).

Whatever lives longer than one engine - a websocket subscription, the Activity page's outcome
lines - attaches to the engine loaded now and to each one loaded later, and lets go of an engine
as its hub unloads. The engine is found through ``runtime.loaded_engine`` only.
"""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    ConfigEntry,
    ConfigEntryChange,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect

from .const import DOMAIN
from .engine import CommandEngine
from .runtime import loaded_engine

type Attach = Callable[[CommandEngine], CALLBACK_TYPE]
"""Called with an engine; returns what detaches from it."""


@callback
def async_follow_engine(hass: HomeAssistant, attach: Attach) -> CALLBACK_TYPE:
    """Attach to the loaded engine now and to every later one; return what stops following."""
    engine: CommandEngine | None = None
    detach: CALLBACK_TYPE | None = None

    @callback
    def follow() -> None:
        nonlocal engine, detach
        current = loaded_engine(hass)
        if current is engine:
            return
        if detach is not None:
            detach()
        engine, detach = current, (None if current is None else attach(current))

    @callback
    def changed(_change: ConfigEntryChange, entry: ConfigEntry) -> None:
        if entry.domain == DOMAIN:
            follow()

    follow()
    unsubscribe = async_dispatcher_connect(hass, SIGNAL_CONFIG_ENTRY_CHANGED, changed)

    @callback
    def stop() -> None:
        nonlocal engine, detach
        unsubscribe()
        if detach is not None:
            detach()
        engine = detach = None

    return stop

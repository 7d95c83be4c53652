"""Keeps the hub's engine and store running across reloads of its config entry.

A reload (the user's Reload, or Home Assistant reloading the entry) unloads and sets up the hub
again. Commands in flight must not be cut short by it: their deadlines, the REST API's
synchronous waits and ``wait: true`` actions go on, and the device's answer is still credited.
So unloading the hub only detaches its engine: the engine keeps tracking what is open, and the
next setup takes it over as it is. A detached engine with nothing open, or whose last open
command ends, stops and closes its store; so does every engine when Home Assistant stops or the
hub is deleted. A setup while an engine is stopping waits until its last writes are in and its
store is closed (``async_engine_stopped``): the next engine reads what the last one wrote.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import logging

from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN
from .core.model import CommandRecord, CommandStatus
from .core.store import AsyncCommandStore
from .engine import CommandEngine

_LOGGER = logging.getLogger(__name__)

DATA_KEPT: HassKey[KeptEngine] = HassKey(f"{DOMAIN}_kept_engine")
DATA_STOPPING: HassKey[asyncio.Future[None]] = HassKey(f"{DOMAIN}_engine_stopping")


@dataclass(slots=True)
class KeptEngine:
    """The running engine and its store, attached to a loaded hub or detached."""

    engine: CommandEngine
    store: AsyncCommandStore
    attached: bool = True
    _stop_when_idle: CALLBACK_TYPE | None = None
    _stop_listener: CALLBACK_TYPE | None = None


def kept_engine(hass: HomeAssistant) -> KeptEngine | None:
    """Return the engine a previous load of the hub left running, if any; attach it."""
    kept = hass.data.get(DATA_KEPT)
    if kept is None:
        return None
    kept.attached = True
    if kept._stop_when_idle is not None:
        kept._stop_when_idle()
        kept._stop_when_idle = None
    return kept


def keep_engine(hass: HomeAssistant, engine: CommandEngine, store: AsyncCommandStore) -> None:
    """Keep a newly started engine; it is stopped when Home Assistant stops."""
    kept = KeptEngine(engine, store)

    async def _async_ha_stop(_: Event) -> None:
        kept._stop_listener = None
        await async_stop_engine(hass)

    kept._stop_listener = hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _async_ha_stop)
    hass.data[DATA_KEPT] = kept


async def async_detach_engine(hass: HomeAssistant) -> None:
    """The hub unloaded: stop the engine now if nothing is open, else once the last one ends."""
    kept = hass.data.get(DATA_KEPT)
    if kept is None:
        return
    kept.attached = False
    open_now = len(list(kept.engine.open_commands()))
    if not open_now:
        await async_stop_engine(hass)
        return
    _LOGGER.debug("Hub unloaded with %s commands open; still tracking them", open_now)

    @callback
    def _changed(record: CommandRecord, old: CommandStatus | None) -> None:
        if not kept.attached and not any(True for _ in kept.engine.open_commands()):
            hass.async_create_task(async_stop_engine(hass), "iotee stop detached engine")

    kept._stop_when_idle = kept.engine.add_command_listener(_changed)


async def async_engine_stopped(hass: HomeAssistant) -> None:
    """Return once an engine being stopped has written its last statuses and closed its store."""
    stopping = hass.data.get(DATA_STOPPING)
    if stopping is not None:
        await asyncio.shield(stopping)


async def async_stop_engine(hass: HomeAssistant) -> None:
    """Stop the kept engine and close its store (open commands stay open in the store)."""
    kept = hass.data.pop(DATA_KEPT, None)
    if kept is None:
        await async_engine_stopped(hass)
        return
    if kept._stop_when_idle is not None:
        kept._stop_when_idle()
    if kept._stop_listener is not None:
        kept._stop_listener()
    stopped: asyncio.Future[None] = hass.loop.create_future()
    hass.data[DATA_STOPPING] = stopped
    try:
        await kept.engine.async_stop()
        await kept.store.close()
    finally:
        del hass.data[DATA_STOPPING]
        stopped.set_result(None)

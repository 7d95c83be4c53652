"""The engine's MQTT subscriptions, and the gate that holds commands until they are back.

Owns: subscribing to the filters the devices need (never given up while the engine runs), and
the ``subscribed`` gate. When HA's MQTT client (re)connects it restores its subscriptions a
moment later: after a 0.5 s cooldown, its wildcard filters one at a time, each acknowledged by
the broker before the next (about 80 in a home, HA's discovery topics first), then the others
(0.6 s in the tests). A command published before IoTee's subscriptions are back would be
carried out while its confirmation is missed, so commands created in that window wait (at most
``SUBSCRIBE_WAIT`` seconds and half their time) until the broker acknowledged them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
import logging

from homeassistant.components import mqtt
from homeassistant.components.mqtt.const import MQTT_PROCESSED_SUBSCRIPTIONS
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect

from custom_components.iotee.core.model import CommandRecord, utcnow

from .listeners import Listeners

_LOGGER = logging.getLogger(__name__)

SUBSCRIBE_QOS = 0
"""The QoS of IoTee's subscriptions (what the broker delivers to HA at most).

QoS 1 would buy nothing and lose messages: HA's MQTT client starts a clean session on every
connection, so the broker keeps nothing for it across a reconnect, and within a connection TCP
already delivers every message in order. A broker holds only so many unacknowledged QoS 1
messages per client - mosquitto by default 20 in flight and 1,000 queued - and drops the rest:
the retained states of more than about 1,020 topics, which arrive all at once when IoTee
subscribes (a home of a few hundred devices), were mostly lost at every start. QoS 0 messages
to a connected client are not limited, and HA does not have to acknowledge each one."""

SUBSCRIBE_WAIT = 5.0
"""At most this many seconds a command waits for the subscriptions to be restored after HA's
MQTT client (re)connected; then it is published anyway."""


class Subscriptions:
    """The filters IoTee subscribed to, and whether the broker acknowledged them all."""

    def __init__(self, hass: HomeAssistant, on_message: Callable[[mqtt.ReceiveMessage], None]):
        """Deliver every message to ``on_message``."""
        self.hass = hass
        self._on_message = on_message
        self.filters: list[str] = []
        self.subscribed = asyncio.Event()
        """Set while the broker has acknowledged every subscription of the current connection."""
        self._watchers: list[CALLBACK_TYPE] = []
        self._generation = 0
        """Counts watches: an acknowledgement of an earlier connection's watch is ignored."""
        self._unsubscribes: list[CALLBACK_TYPE] = []
        self._stopping = False
        self.connection_listeners: Listeners[Callable[[bool], None]] = Listeners()
        """Told of every change of HA's MQTT connection, after the gate closed (entities:
        one subscription of the engine instead of one dispatcher connection each)."""

    def start(self) -> None:
        """Follow the connection: the gate closes on every change."""
        self._unsubscribes.append(
            mqtt.async_subscribe_connection_status(self.hass, self._on_connection)
        )

    async def async_subscribe(self, filters: list[str]) -> None:
        """Subscribe to those of ``filters`` not subscribed yet."""
        new = [f for f in filters if f not in self.filters]
        if not new:
            return
        self.filters = [*self.filters, *new]
        self.subscribed.clear()
        for topic_filter in new:
            self._unsubscribes.append(
                await mqtt.async_subscribe(
                    self.hass, topic_filter, self._on_message, qos=SUBSCRIBE_QOS
                )
            )
        self._watch()

    @callback
    def _on_connection(self, connected: bool) -> None:
        """Close the gate on every connection change; reopen it once subscriptions are back."""
        self.subscribed.clear()
        self._generation += 1  # what the watch of the last connection still hears is stale
        self._cancel_watchers()
        if connected:
            # HA's client announces the connection first and queues the re-subscriptions just
            # after: watch for them once that is done.
            self.hass.loop.call_soon(self._watch)
        for listener in self.connection_listeners.snapshot():
            listener(connected)

    @callback
    def _watch(self) -> None:
        """Set ``subscribed`` when the broker acknowledged every filter of this engine.

        One synchronous listener of HA's "subscriptions processed" signal for all filters:
        HA's helper (``mqtt.async_on_subscribe_done``) is one coroutine per filter and QoS,
        a task for each of them at every subscription HA restores - and HA restores its
        wildcard filters one at a time (about 80 in a home: its discovery topics), so 21 of
        them slowed the restore the gate waits for. HA subscribes a filter once, at the highest
        QoS any of its subscribers asked for, and reports it at that QoS: a filter counts at
        any QoS (another integration's QoS 1 subscription to it must not keep the gate closed
        until ``SUBSCRIBE_WAIT``).
        """
        self._cancel_watchers()
        if self._stopping:
            return
        self._generation += 1
        generation = self._generation
        remaining = set(self.filters)

        @callback
        def acknowledged(topic_filter: str) -> None:
            if generation != self._generation or topic_filter not in remaining:
                return  # a watch of an earlier connection, or already counted
            remaining.discard(topic_filter)
            if not remaining:
                self._cancel_watchers()
                self.subscribed.set()

        @callback
        def processed(subscriptions: list[tuple[str, int]]) -> None:
            for topic_filter, _qos in subscriptions:
                acknowledged(topic_filter)

        self._watchers = [
            async_dispatcher_connect(self.hass, MQTT_PROCESSED_SUBSCRIPTIONS, processed)
        ]
        if not remaining:
            self.subscribed.set()
            return
        for topic_filter in self.filters:
            # A filter HA holds subscribed with nothing pending is reported by HA's helper at
            # once (in the next loop iteration); its signal watch is not needed.
            mqtt.async_on_subscribe_done(
                self.hass, topic_filter, SUBSCRIBE_QOS, partial(acknowledged, topic_filter)
            )()

    def _cancel_watchers(self) -> None:
        for cancel in self._watchers:
            cancel()
        self._watchers = []

    async def async_restored(self, record: CommandRecord) -> None:
        """Wait until the subscriptions are back: at most ``SUBSCRIBE_WAIT`` s and half the
        time left to the deadline, so that the device still gets the command in time."""
        limit = min(SUBSCRIBE_WAIT, (record.deadline - utcnow()).total_seconds() / 2)
        try:
            async with asyncio.timeout(max(limit, 0.0)):
                await self.subscribed.wait()
        except TimeoutError:
            # Stop holding commands until the next reconnect: an acknowledgement that never
            # comes (a subscription the broker refused, say) must not slow them all.
            _LOGGER.debug(
                "Subscriptions not acknowledged after %.1f s; publishing %s anyway",
                limit,
                record.command_id,
            )
            self._cancel_watchers()
            self.subscribed.set()

    def stop(self) -> None:
        """Unsubscribe and stop watching."""
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._unsubscribes.clear()
        self._cancel_watchers()
        self._stopping = True

"""Getting a command to its device: the checks before it goes out, and the publish.

Owns: refusing a command while HA's MQTT client is disconnected or the device is offline,
taking over the target from the open command (superseding it), waiting for the subscriptions
(``subscriptions.py``), and the publish through HA's MQTT integration (``published``, or
``failed`` with ``publish_failed``).
"""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from custom_components.iotee.core.device_config import DeviceConfig
from custom_components.iotee.core.device_types import CommandSpec
from custom_components.iotee.core.model import CommandRecord, CommandStatus, ErrorCode

from .devices import DeviceBook
from .subscriptions import Subscriptions
from .tracking import Tracker

type ForceEnd = Callable[[CommandRecord, CommandStatus, ErrorCode, str], None]

NOT_CONNECTED = "Home Assistant's MQTT client is not connected to the broker"


class Delivery:
    """Publishes commands to their devices."""

    def __init__(
        self,
        hass: HomeAssistant,
        *,
        qos: Callable[[], int],
        book: DeviceBook,
        tracker: Tracker,
        subscriptions: Subscriptions,
        force_end: ForceEnd,
    ) -> None:
        """Publish with ``qos``; end commands that never went out with ``force_end``."""
        self.hass = hass
        self._qos = qos
        self._book = book
        self._tracker = tracker
        self._subscriptions = subscriptions
        self._force_end = force_end

    async def async_dispatch(
        self, record: CommandRecord, config: DeviceConfig, spec: CommandSpec
    ) -> None:
        """Send a new command, or end it when it cannot go out."""
        # The connection first: while it is down the device's last known availability (often
        # the last will the broker sent as it shut down) is not what stops the command.
        if not mqtt.is_connected(self.hass):
            self._force_end(record, CommandStatus.FAILED, ErrorCode.PUBLISH_FAILED, NOT_CONNECTED)
            return
        if self._book.states[config.hardware_id].online is False:
            self._force_end(
                record,
                CommandStatus.FAILED,
                ErrorCode.DEVICE_OFFLINE,
                f"{config.name} is offline",
            )
            return
        # Really going out: only now does it take over its target from an open command.
        self._tracker.supersede(record)
        tracked = self._tracker.track(record, config, spec)
        if not self._subscriptions.subscribed.is_set():
            await self._subscriptions.async_restored(record)
            if record.status.is_terminal:  # superseded or timed out meanwhile
                return
            if not mqtt.is_connected(self.hass):
                self._tracker.end(
                    tracked, CommandStatus.FAILED, ErrorCode.PUBLISH_FAILED, NOT_CONNECTED
                )
                return
        try:
            await mqtt.async_publish(
                self.hass, record.topic, record.payload, qos=self._qos(), retain=False
            )
        except HomeAssistantError as err:
            if not record.status.is_terminal:
                self._tracker.end(
                    tracked,
                    CommandStatus.FAILED,
                    ErrorCode.PUBLISH_FAILED,
                    f"publish failed: {err}",
                )
            return
        if record.status is CommandStatus.PENDING:
            self._tracker.move(tracked, CommandStatus.PUBLISHED)

"""Getting a command to its device: the checks before it goes out, the queue, the publish and
the retries.

Owns: refusing a command while HA's MQTT client is disconnected, or while its device is offline
and the command may not wait; keeping a command for an offline device (``pending`` with
``queued_until``, at most one per target: the newest wins, the older ends ``superseded``) until
the device says it is online or the expiry passes (``failed`` with ``expired``); taking over the
target from the open command (superseding it); waiting for the subscriptions
(``subscriptions.py``); the publish through HA's MQTT integration (``published``, or ``failed``
with ``publish_failed``), each one an attempt on the record; and publishing a command that timed
out again, inside the same record, as the device's retry policy allows
(``core/delivery_rules.py``). The confirmation deadline of each attempt starts at its publish.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
import logging
from typing import Any, Protocol

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError

from custom_components.iotee.core.delivery_rules import TargetQueue
from custom_components.iotee.core.device_config import DeviceConfig
from custom_components.iotee.core.device_types import CommandSpec
from custom_components.iotee.core.matcher import ConfirmationMatcher
from custom_components.iotee.core.model import CommandRecord, CommandStatus, ErrorCode, utcnow

from .devices import DeviceBook
from .subscriptions import Subscriptions
from .tasks import keep_until_done
from .tracking import Tracked, Tracker

_LOGGER = logging.getLogger(__name__)

type ForceEnd = Callable[[CommandRecord, CommandStatus, ErrorCode, str], None]
type Changed = Callable[[CommandRecord, CommandStatus | None], None]


class QosFor(Protocol):
    """The QoS to publish a command (or its follow-up) with (``EngineSettings.qos_for``)."""

    def __call__(self, record: CommandRecord, *, follow_up: bool = False) -> int: ...


NOT_CONNECTED = "Home Assistant's MQTT client is not connected to the broker"


@dataclass(slots=True)
class Queued:
    """A command waiting for its offline device."""

    record: CommandRecord
    config: DeviceConfig
    spec: CommandSpec
    expiry: asyncio.TimerHandle | None = None
    left: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once it left the queue (published, expired, superseded, or the engine stopped)."""


class Delivery:
    """Publishes commands to their devices, now, once they are back, or once more."""

    def __init__(
        self,
        hass: HomeAssistant,
        *,
        qos: QosFor,
        window: Callable[[CommandSpec], float],
        book: DeviceBook,
        tracker: Tracker,
        subscriptions: Subscriptions,
        force_end: ForceEnd,
        changed: Changed,
        persist: Callable[[CommandRecord], None],
    ) -> None:
        """Publish with ``qos`` (per command); end commands never sent with ``force_end``."""
        self.hass = hass
        self._qos = qos
        self._window = window
        self._follow_ups: dict[str, tuple[CommandRecord, str, asyncio.TimerHandle]] = {}
        """Second publishes due (JOG done by IoTee: OFF after ON) by command id: the command,
        the payload and the timer."""
        self._book = book
        self._tracker = tracker
        self._subscriptions = subscriptions
        self._force_end = force_end
        self._changed = changed
        self._persist = persist
        self.queue: TargetQueue[Queued] = TargetQueue()
        self._sends: set[asyncio.Task[Any]] = set()
        self._released: deque[Queued] = deque()
        """Commands whose device came back, waiting for their turn to be published."""
        self._drain: asyncio.Task[None] | None = None
        tracker.on_timeout = self._retry

    async def async_dispatch(
        self,
        record: CommandRecord,
        config: DeviceConfig,
        spec: CommandSpec,
        *,
        hand_over_later: bool = False,
    ) -> None:
        """Send a new command, queue it for its offline device, or end it.

        ``hand_over_later``: the checks and the take-over of the target happen now, the
        hand-over to HA's MQTT client in the next loop iteration (after the caller's answer is
        written, when the caller does not wait for the publish).
        """
        # The connection first: while it is down the device's last known availability (often
        # the last will the broker sent as it shut down) is not what stops the command.
        if not mqtt.is_connected(self.hass):
            self._force_end(record, CommandStatus.FAILED, ErrorCode.PUBLISH_FAILED, NOT_CONNECTED)
            return
        if self._book.states[config.hardware_id].online is False:
            if record.queued_until is not None:
                self.enqueue(record, config, spec)
                return
            self._force_end(
                record,
                CommandStatus.FAILED,
                ErrorCode.DEVICE_OFFLINE,
                f"{config.name} is offline",
            )
            return
        record.queued_until = None  # the device is there: it goes out now
        await self._async_send(record, config, spec, hand_over_later=hand_over_later)

    # ---- the queue -----------------------------------------------------------------------

    def enqueue(self, record: CommandRecord, config: DeviceConfig, spec: CommandSpec) -> None:
        """Keep ``record`` until its device is online or ``record.queued_until`` passes."""
        assert record.queued_until is not None
        queued = Queued(record, config, spec)
        replaced = self.queue.put(record.target, queued)
        if replaced is not None:
            self._drop(replaced)
            self._force_end(
                replaced.record,
                CommandStatus.FAILED,
                ErrorCode.SUPERSEDED,
                f"superseded by command {record.command_id}",
            )
        delay = (record.queued_until - utcnow()).total_seconds()
        queued.expiry = self.hass.loop.call_later(max(delay, 0.0), self._expire, queued)

    def _drop(self, queued: Queued, *, left: bool = True) -> None:
        if queued.expiry is not None:
            queued.expiry.cancel()
            queued.expiry = None
        if left:
            queued.left.set()

    @callback
    def _expire(self, queued: Queued) -> None:
        queued.expiry = None
        if self.queue.get(queued.record.target) is queued:
            self.queue.pop(queued.record.target)
        record = queued.record
        # The record ends (below) before waiters wake up.
        self.hass.loop.call_soon(queued.left.set)
        if record.status.is_terminal:
            return
        assert record.queued_until is not None
        self._force_end(
            record,
            CommandStatus.FAILED,
            ErrorCode.EXPIRED,
            f"{queued.config.name} did not come online before the command expired",
        )

    @callback
    def release(self, hardware_id: str) -> None:
        """The device is online: publish what waited for it, oldest first."""
        for queued in self.queue.take_device(hardware_id):
            self._drop(queued, left=False)  # it leaves once it is being sent (waiters)
            if queued.record.status.is_terminal:
                queued.left.set()
                continue
            queued.config = self._book.devices.get(hardware_id, queued.config)
            self._released.append(queued)
        if self._released and self._drain is None:
            self._drain = self.hass.async_create_background_task(
                self._async_drain(), "iotee publish queued commands"
            )

    async def _async_drain(self) -> None:
        """Publish released commands one per turn of the event loop.

        A reconnecting broker hands over many devices' "online" in one read: started all at
        once, their publishes would hold the loop for the whole batch.
        """
        try:
            while self._released:
                queued = self._released.popleft()
                record, config, spec = queued.record, queued.config, queued.spec
                if record.status.is_terminal:
                    queued.left.set()
                    continue
                # The confirmation deadline starts now: the command waited for its device.
                if record.awaits_confirmation:
                    record.deadline = utcnow() + timedelta(seconds=self._window(spec))
                task = self.hass.async_create_task(
                    self._async_send(record, config, spec),
                    f"iotee publish queued {record.command_id}",
                    eager_start=True,
                )
                keep_until_done(self._sends, task)
                queued.left.set()  # tracked now (or ended): waiters follow it from here
                await asyncio.sleep(0)
        finally:
            self._drain = None

    def unqueue(self, target: tuple[str, str]) -> CommandRecord | None:
        """Take the command queued for ``target`` out of the queue (it is being superseded)."""
        queued = self.queue.pop(target)
        if queued is None:
            return None
        self._drop(queued)
        return queued.record

    def waiting(self, command_id: str) -> Queued | None:
        """Return the queue entry of a command, while it waits (also for its publish turn)."""
        return next(
            (
                q
                for q in [*self.queue.values(), *self._released]
                if q.record.command_id == command_id
            ),
            None,
        )

    def queued_records(self) -> list[CommandRecord]:
        """Return the commands waiting for their devices."""
        return [queued.record for queued in self.queue.values()]

    def stop(self) -> None:
        """Stop the expiry timers; queued commands stay queued in the store."""
        for queued in self.queue.values():
            self._drop(queued)
        for task in self._sends:
            task.cancel()
        if self._drain is not None:
            self._drain.cancel()
        self._released.clear()

    # ---- publishing ----------------------------------------------------------------------

    async def _async_send(
        self,
        record: CommandRecord,
        config: DeviceConfig,
        spec: CommandSpec,
        *,
        hand_over_later: bool = False,
    ) -> None:
        """Publish the first attempt: take over the target, track, wait for the gate."""
        # Really going out: only now does it take over its target from an open command.
        superseded = self.unqueue(record.target)
        if superseded is not None and superseded is not record:
            self._force_end(
                superseded,
                CommandStatus.FAILED,
                ErrorCode.SUPERSEDED,
                f"superseded by command {record.command_id}",
            )
        for command_id, (older, _payload, handle) in list(self._follow_ups.items()):
            if older.target == record.target:
                # A newer command to the relay decides its state: no OFF of an older JOG.
                handle.cancel()
                del self._follow_ups[command_id]
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
        if hand_over_later:
            await asyncio.sleep(0)  # the caller's answer goes out first
            if record.status.is_terminal:  # superseded or timed out meanwhile
                return
        record.add_attempt(utcnow())
        if not await self._async_publish(tracked):
            return
        if spec.follow_up is not None:
            payload = config.render(
                spec.follow_up.payload,
                record.relay,
                command_id=record.command_id,
                action=record.command,
            )
            handle = self.hass.loop.call_later(
                spec.follow_up.after, self._follow_up_due, record, payload
            )
            self._follow_ups[record.command_id] = (record, payload, handle)
        if record.finished and not record.status.is_terminal:
            # A device that never confirms: published is all there is to know. (A command that
            # ended while its publish was under way is no longer tracked.)
            self._tracker.untrack(tracked)

    @callback
    def _follow_up_due(self, record: CommandRecord, payload: str) -> None:
        self._follow_ups.pop(record.command_id, None)
        self.hass.async_create_task(
            self._async_follow_up(record, payload), f"iotee follow-up {record.command_id}"
        )

    async def _async_follow_up(self, record: CommandRecord, payload: str) -> None:
        """The second publish of a command (JOG by IoTee: OFF), even if the command already
        ended: the relay must open again. A failed publish fails a command still open."""
        try:
            await mqtt.async_publish(
                self.hass,
                record.topic,
                payload,
                qos=self._qos(record, follow_up=True),
                retain=False,
            )
        except HomeAssistantError as err:
            _LOGGER.error("Could not open %s again after its JOG: %s", record.target, err)
            tracked = self._tracker.open.get(record.command_id)
            if tracked is not None:
                self._tracker.end(
                    tracked,
                    CommandStatus.FAILED,
                    ErrorCode.PUBLISH_FAILED,
                    f"second publish failed: {err}",
                )

    async def async_follow_ups_now(self) -> None:
        """Stopping: make the second publishes due now rather than never."""
        due = list(self._follow_ups.values())
        self._follow_ups.clear()
        for record, payload, handle in due:
            handle.cancel()
            await self._async_follow_up(record, payload)

    async def _async_publish(self, tracked: Tracked) -> bool:
        """Publish the record's payload (once more); return whether it went out."""
        record = tracked.record
        try:
            await mqtt.async_publish(
                self.hass, record.topic, record.payload, qos=self._qos(record), retain=False
            )
        except HomeAssistantError as err:
            if not record.status.is_terminal:
                self._tracker.end(
                    tracked,
                    CommandStatus.FAILED,
                    ErrorCode.PUBLISH_FAILED,
                    f"publish failed: {err}",
                )
            return False
        if record.status is CommandStatus.PENDING:
            self._tracker.move(tracked, CommandStatus.PUBLISHED)
        elif len(record.attempts) > 1 and not record.status.is_terminal:
            # A retry went out: the status stays, the attempt is news (event, listeners).
            self._changed(record, record.status)
        return True

    # ---- retries -------------------------------------------------------------------------

    def _retry(self, tracked: Tracked) -> bool:
        """A deadline passed: publish again if the policy allows it; True when it will."""
        record = tracked.record
        config = self._book.devices.get(record.hardware_id)
        if config is None or not mqtt.is_connected(self.hass):
            return False
        spec = config.device_type.commands.get(record.command)
        if spec is None or spec.follow_up is not None:
            return False  # a JOG done by IoTee (ON, then OFF) is not published again
        delay = config.delivery.retry.next_delay(record.command, len(record.attempts))
        if delay is None:
            return False
        record.end_attempt(ErrorCode.TIMEOUT.value)
        _LOGGER.debug(
            "%s: no confirmation of attempt %s; publishing again in %g s",
            record.command_id,
            len(record.attempts),
            delay,
        )
        # The record keeps running until the next attempt's deadline (and a late answer to an
        # earlier attempt, on the same topic and id, still completes it).
        record.deadline = utcnow() + timedelta(seconds=delay + self._window(spec))
        tracked.retry = self.hass.loop.call_later(delay, self._publish_again, tracked, config)
        # Stored, not announced: the event comes with the next attempt's publish.
        self._persist(record)
        return True

    @callback
    def _publish_again(self, tracked: Tracked, config: DeviceConfig) -> None:
        tracked.retry = None
        record = tracked.record
        if record.status.is_terminal:
            return
        spec = config.device_type.commands[record.command]
        confirmation = config.confirmation(spec, record.relay)
        if record.status is not CommandStatus.ACKNOWLEDGED:
            # A state sequence starts over; an acknowledged one still waits for its end only.
            tracked.matcher = ConfirmationMatcher(
                record.command_id, confirmation, tracked.matcher.topic
            )
        record.add_attempt(utcnow())
        record.deadline = utcnow() + timedelta(seconds=self._window(spec))
        self._tracker.arm_deadline(tracked)
        task = self.hass.async_create_task(
            self._async_publish(tracked), f"iotee retry {record.command_id}", eager_start=True
        )
        keep_until_done(self._sends, task)

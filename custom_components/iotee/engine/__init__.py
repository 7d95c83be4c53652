"""The command engine: turns requests into tracked commands over Home Assistant's MQTT.

Flow of one command: validate -> record stored (``pending``, durable before anything goes out) ->
publish through HA's MQTT integration (``published``, or ``failed`` when that fails) -> the
device's messages move it to ``acknowledged``/``completed``/``failed`` -> or its deadline passes
(``timeout``). Every status change is persisted, fired as the ``iotee_command_status`` event and
handed to listeners (entities, waiters).

``CommandEngine`` is the facade the adapters (entities, services, REST, websocket) use; it owns
the command listeners, the ``iotee_command_status`` event, the newest command of each target,
recovery at start, creating commands and the queries. Each other job has its own module:

- ``devices.py``: device configs, availability and state, device listeners, discovery;
- ``subscriptions.py``: the MQTT subscriptions and the gate after a reconnect;
- ``delivery.py``: the checks before a command goes out, the queue for offline devices, the
  publish and the retries;
- ``tracking.py``: open commands, deadlines, verdicts, superseding, late answers;
- ``persistence.py``: store writes, and keeping status changes while the store fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
import logging
from typing import Any

from homeassistant.components import mqtt
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError

from custom_components.iotee.const import EVENT_COMMAND_STATUS
from custom_components.iotee.core.delivery_rules import queue_expiry, queue_minutes
from custom_components.iotee.core.device_config import DeviceConfig, DeviceState
from custom_components.iotee.core.device_types import CommandSpec, NoConfirmation
from custom_components.iotee.core.errors import (
    InvalidRelayError,
    NotRetryableError,
    UnknownCommandError,
    UnknownDeviceError,
    UnsupportedCommandError,
)
from custom_components.iotee.core.matcher import Verdict
from custom_components.iotee.core.model import (
    CommandRecord,
    CommandStatus,
    ErrorCode,
    new_command_id,
    utcnow,
)
from custom_components.iotee.core.params import check_params
from custom_components.iotee.core.store import AsyncCommandStore
from custom_components.iotee.core.zigbee2mqtt import BridgeDevice

from .delivery import Delivery
from .devices import DeviceBook, DeviceListener, DiscoveryListener
from .listeners import KeyedListeners, Listeners
from .persistence import ISSUE_STORE_WRITE_FAILED, STORE_RETRY_INTERVAL, StoreKeeper
from .subscriptions import SUBSCRIBE_WAIT, Subscriptions
from .tasks import keep_until_done
from .tracking import LATE_WINDOW, Tracked, Tracker

_LOGGER = logging.getLogger(__name__)

__all__ = [
    "ISSUE_STORE_WRITE_FAILED",
    "LATE_WINDOW",
    "STORE_RETRY_INTERVAL",
    "SUBSCRIBE_WAIT",
    "CommandEngine",
    "CommandListener",
    "DeviceListener",
    "DiscoveryListener",
    "EngineSettings",
    "Removal",
    "RemovalListener",
]

type CommandListener = Callable[[CommandRecord, CommandStatus | None], None]
type RemovalListener = Callable[["Removal"], None]


@dataclass(slots=True)
class EngineSettings:
    """Tunables from the hub options."""

    command_timeout: float = 10.0
    qos: int | None = None
    """QoS of command publishes: 1, the broker acknowledges each (``published`` means it has
    it); 0, nothing acknowledges it (``published``: handed to HA's MQTT client), which spares
    the devices' PUBACKs and the 40 ms their answers can wait behind them; None (automatic,
    the default): ``qos_for`` decides per command."""
    retention_days: float = 90.0
    """The history's retention: no command is kept queued for longer."""

    def qos_for(self, record: CommandRecord, *, follow_up: bool = False) -> int:
        """Return the QoS to publish ``record`` (or its ``follow_up``) with.

        Automatic: 0 for a command its device confirms - its answer is the proof, and it does
        not wait behind the device's PUBACK - and 1 for one to a device that confirms nothing,
        where the broker's acknowledgement is all there is to know (HA's own MQTT entities
        publish at QoS 0 unless told otherwise). The OFF of a JOG done by IoTee goes at 1:
        the relay must open again even if the connection drops just then (HA's client sends
        an unacknowledged QoS 1 message again once it is back).
        """
        if self.qos is not None:
            return self.qos
        return 0 if record.awaits_confirmation and not follow_up else 1


@dataclass(frozen=True, slots=True)
class Removal:
    """Commands left the history: one deleted (``command_id``), or a purge (cutoff, count)."""

    command_id: str | None = None
    cutoff: datetime | None = None
    count: int = 1


class CommandEngine:
    """Creates, publishes, confirms and records commands for the configured devices."""

    def __init__(
        self, hass: HomeAssistant, store: AsyncCommandStore, settings: EngineSettings
    ) -> None:
        """Create an engine; ``async_start`` recovers and subscribes."""
        self.hass = hass
        self.store = store
        self.settings = settings
        self._book = DeviceBook()
        self.devices: dict[str, DeviceConfig] = self._book.devices
        self.states: dict[str, DeviceState] = self._book.states
        self.zigbee2mqtt: dict[str, tuple[BridgeDevice, ...]] = self._book.zigbee2mqtt
        """The locks and switches Zigbee2MQTT lists, by base topic (to pick from)."""
        self._keeper = StoreKeeper(hass, store)
        self._dispatches: set[asyncio.Task[None]] = set()
        """Publishes under way that no caller waits for (answered commands, state requests);
        cancelled when the engine stops."""
        self._states_asked: set[str] = set()
        """Devices asked for their state once (firmware that retains none)."""
        self._tracker = Tracker(
            hass,
            lambda: self.settings.command_timeout,
            self._changed,
            self._keeper.persist,
            self._notify,
        )
        self._subscriptions = Subscriptions(hass, self._on_message)
        self._delivery = Delivery(
            hass,
            qos=settings.qos_for,
            window=self._confirmation_window,
            book=self._book,
            tracker=self._tracker,
            subscriptions=self._subscriptions,
            force_end=self._force_end,
            changed=self._changed,
            persist=self._keeper.persist,
        )
        self._command_listeners: Listeners[CommandListener] = Listeners()
        self._target_listeners: KeyedListeners[tuple[str, str], CommandListener] = KeyedListeners()
        self._removal_listeners: Listeners[RemovalListener] = Listeners()
        self._last: dict[tuple[str, str], CommandRecord] = {}
        """The newest command of each target (what the entities show as ``last_command_*``)."""

    # ---- views on the parts (diagnostics and tests read them) ----------------------------

    @property
    def store_fault(self) -> str | None:
        """Why the store cannot be written, while it cannot (None when it works)."""
        return self._keeper.store_fault

    @property
    def subscription_filters(self) -> list[str]:
        """The MQTT filters the engine subscribed to."""
        return self._subscriptions.filters

    @property
    def _subscribed(self) -> asyncio.Event:
        return self._subscriptions.subscribed

    @property
    def _open(self) -> dict[str, Tracked]:
        return self._tracker.open

    @property
    def _late(self) -> dict[str, list[tuple[Tracked, datetime]]]:
        return self._tracker.late

    def _on_deadline(self, tracked: Tracked) -> None:
        self._tracker.on_deadline(tracked)

    # ---- devices -------------------------------------------------------------------------

    def add_device(self, config: DeviceConfig) -> None:
        """Register a configured device and the topics it reports on."""
        self._book.add_device(config)

    def remove_device(self, hardware_id: str) -> None:
        """Forget a device that is no longer configured.

        Its open commands stay tracked until they end: they were accepted, and the device may
        still answer them.
        """
        self._book.remove_device(hardware_id)

    def replace_device(self, config: DeviceConfig) -> None:
        """Take a reconfigured device's new settings; what it reported so far is kept."""
        self._book.replace_device(config)

    def device(self, device_ref: str) -> DeviceConfig:
        """Return a device by hardware id or HA device id."""
        return self._book.device(device_ref)

    def set_device_id(self, hardware_id: str, device_id: str) -> None:
        """Remember the HA device registry id of a device."""
        self._book.set_device_id(hardware_id, device_id)

    # ---- listeners -----------------------------------------------------------------------

    @callback
    def add_command_listener(
        self, listener: CommandListener, target: tuple[str, str] | None = None
    ) -> CALLBACK_TYPE:
        """Call ``listener(record, old_status)`` on every change of a command.

        With ``target`` (a ``CommandRecord.target``) only for commands to that target: an entity
        then costs nothing when other targets' commands change (listeners are found by target,
        not by asking every entity of every device).
        """
        if target is None:
            return self._command_listeners.add(listener)
        return self._target_listeners.add(target, listener)

    @callback
    def add_device_listener(
        self, listener: DeviceListener, hardware_id: str | None = None
    ) -> CALLBACK_TYPE:
        """Call ``listener(config, state)`` when a device reports state or availability.

        With ``hardware_id`` only for that device.
        """
        return self._book.add_device_listener(listener, hardware_id)

    @callback
    def add_connection_listener(self, listener: Callable[[bool], None]) -> CALLBACK_TYPE:
        """Call ``listener(connected)`` when HA's MQTT connection goes up or down."""
        return self._subscriptions.connection_listeners.add(listener)

    @callback
    def add_discovery_listener(self, listener: DiscoveryListener) -> CALLBACK_TYPE:
        """Call ``listener(device_type, mqtt_id)`` when an unconfigured device says online."""
        return self._book.discovery_listeners.add(listener)

    @callback
    def add_removal_listener(self, listener: RemovalListener) -> CALLBACK_TYPE:
        """Call ``listener(removal)`` once commands were deleted or purged, by whichever door."""
        return self._removal_listeners.add(listener)

    def _removed(self, removal: Removal) -> None:
        for listener in self._removal_listeners.snapshot():
            listener(removal)

    # ---- lifecycle -----------------------------------------------------------------------

    async def async_start(self) -> None:
        """Recover open commands from the store and subscribe to the device topics."""
        self._keeper.start()
        await self._async_recover()
        await self._async_load_last_commands()
        await self.async_subscribe_devices()
        self._subscriptions.start()

    async def async_subscribe_devices(self) -> None:
        """Subscribe to what the configured devices need and is not subscribed yet.

        Filters are not given up while the engine runs: a removed device's open commands may
        still be answered on them, and one more wildcard subscription costs next to nothing.
        """
        await self._subscriptions.async_subscribe(self._book.subscription_filters())
        self._ask_states()

    @callback
    def _ask_states(self) -> None:
        """Ask each device whose firmware retains no state (Zigbee2MQTT, Tasmota) for it,
        once, after the broker acknowledged the subscriptions its answer arrives on."""
        asks = [
            (config.hardware_id, requests)
            for config in self.devices.values()
            if config.hardware_id not in self._states_asked
            and (requests := config.state_requests())
        ]
        if not asks:
            return
        self._states_asked.update(hardware_id for hardware_id, _ in asks)
        task = self.hass.async_create_background_task(
            self._async_ask_states([request for _, requests in asks for request in requests]),
            "iotee state requests",
        )
        keep_until_done(self._dispatches, task)

    async def _async_ask_states(self, requests: list[tuple[str, str]]) -> None:
        try:
            async with asyncio.timeout(SUBSCRIBE_WAIT):
                await self._subscriptions.subscribed.wait()
        except TimeoutError:
            pass  # ask anyway: an answer may still arrive on a subscription acknowledged late
        for topic, payload in requests:
            try:
                await mqtt.async_publish(self.hass, topic, payload, qos=0, retain=False)
            except HomeAssistantError as err:
                _LOGGER.debug("Could not ask %s for its state: %s", topic, err)

    async def _async_load_last_commands(self) -> None:
        """Read each target's last command, so entities show it after a restart."""
        targets = {hardware_id: config.targets() for hardware_id, config in self.devices.items()}
        for record in await self.store.last_commands(targets):
            self._last.setdefault(record.target, record)

    async def async_stop(self) -> None:
        """Unsubscribe and stop timers; open commands stay open in the store for recovery."""
        self._subscriptions.stop()
        # Publishes of answered commands still waiting (for the broker's PUBACK, or for the
        # subscriptions): their records stay as stored, for the next start's recovery.
        for task in self._dispatches:
            task.cancel()
        if self._dispatches:
            await asyncio.gather(*self._dispatches, return_exceptions=True)
        await self._delivery.async_follow_ups_now()
        self._tracker.stop()
        self._delivery.stop()
        await self._keeper.async_stop()

    async def _async_recover(self) -> None:
        """Time out open commands whose deadline passed; track the others again.

        A queued command stays queued until its expiry (published once its device says it is
        online); one whose expiry passed while Home Assistant was stopped ends ``expired``.
        """
        now = utcnow()
        for record in await self.store.open_commands():
            config = self.devices.get(record.hardware_id)
            if record.queued and record.queued_until is not None:
                if record.queued_until <= now or config is None:
                    self._force_end(
                        record,
                        CommandStatus.FAILED,
                        ErrorCode.EXPIRED,
                        "the device did not come online before the command expired",
                        now,
                    )
                else:
                    spec = config.device_type.commands[record.command]
                    self._delivery.enqueue(record, config, spec)
                continue
            if record.deadline <= now or config is None:
                self._force_end(
                    record,
                    CommandStatus.TIMEOUT,
                    ErrorCode.TIMEOUT,
                    "deadline passed while Home Assistant was not tracking the command",
                    now,
                )
                continue
            if record.status is CommandStatus.PENDING:
                self._force_end(
                    record,
                    CommandStatus.FAILED,
                    ErrorCode.INTERRUPTED,
                    "Home Assistant stopped before the command was published",
                    now,
                )
                continue
            spec = config.device_type.commands[record.command]
            tracked = self._tracker.track(record, config, spec)
            if record.status is CommandStatus.ACKNOWLEDGED:
                tracked.matcher.skip_to_last()

    def _force_end(
        self,
        record: CommandRecord,
        status: CommandStatus,
        code: ErrorCode,
        error: str,
        now: datetime | None = None,
    ) -> None:
        """End a command the tracker does not follow (never published, or recovered)."""
        old = record.transition(status, now or utcnow(), error_code=code, error=error)
        self._changed(record, old)

    # ---- commands ------------------------------------------------------------------------

    def resolve(
        self, device_ref: str, command: str, relay: int | None
    ) -> tuple[DeviceConfig, CommandSpec, str]:
        """Validate a command for a device; return the device, the spec and the command name."""
        config = self.device(device_ref)
        dtype = config.device_type
        name = command
        if (
            relay is not None
            and command.lower() in ("lock", "unlock")
            and (relay in config.relay_locks)
        ):
            name = "ON" if command.lower() == "unlock" else "OFF"
        spec = dtype.command(name)
        if spec is None:
            raise UnsupportedCommandError(
                f"{dtype.name} does not support {command!r}; supported: "
                + ", ".join(sorted(dtype.commands))
            )
        if spec.kind.value == "relay":
            if relay is None:
                raise InvalidRelayError(f"{spec.name} needs a relay (1..{config.relays})")
            if not 1 <= relay <= config.relays:
                raise InvalidRelayError(
                    f"relay {relay} does not exist; {config.name} has relays 1..{config.relays}"
                )
        elif relay is not None:
            raise InvalidRelayError(f"{spec.name} does not take a relay")
        return config, spec, spec.name

    async def async_submit(
        self,
        device_ref: str,
        command: str,
        relay: int | None = None,
        params: dict[str, Any] | None = None,
        *,
        source: str,
        caller: str | None = None,
        retry_of: str | None = None,
        command_id: str | None = None,
        queue: bool | float | None = None,
        await_publish: bool = True,
    ) -> CommandRecord:
        """Create, store and publish a command; return its record (status as it stands).

        ``queue``: whether the command may wait for its device while it is offline (None: as
        the device's options say; a number: for that many minutes).

        ``await_publish=False`` returns once the record is stored: the dispatch starts as an
        eager task, so its checks that need no waiting (HA's MQTT client not connected, the
        device known offline, superseding the target's open command) happen before this
        returns; the hand-over to HA's MQTT client follows in the next loop iteration (once
        the caller's answer is written), and the wait for the broker's PUBACK and the move to
        ``published`` - or a publish that fails after all - come later, through the record,
        the ``iotee_command_status`` event and the entity.
        """
        config, spec, name = self.resolve(device_ref, command, relay)
        checked_params = check_params(params)
        keep_minutes = queue_minutes(queue, config.delivery.queue, self.settings.retention_days)
        command_id = command_id or new_command_id()
        now = utcnow()
        relay_arg = relay if spec.kind.value == "relay" else None
        record = CommandRecord(
            command_id=command_id,
            hardware_id=config.hardware_id,
            device_id=config.device_id,
            device_type=config.device_type.name,
            command=name,
            relay=relay_arg,
            topic=config.topic(spec.topic, relay_arg),
            payload=config.render(spec.payload, relay_arg, command_id=command_id, action=name),
            params=checked_params,
            created_at=now,
            deadline=now + timedelta(seconds=self._confirmation_window(spec)),
            retry_of=retry_of,
            source=source,
            caller=caller,
        )
        if keep_minutes is not None and self.states[config.hardware_id].online is False:
            # Kept for the device: its deadline for confirmation starts once it is published.
            record.queued_until = queue_expiry(now, keep_minutes)
            if record.awaits_confirmation:
                window = timedelta(seconds=self._confirmation_window(spec))
                record.deadline = record.queued_until + window
        await self._keeper.async_insert(record)
        if record.queued:
            self._fire_status(record, None)  # automations see that it waits for the device
        self._notify(record, None)
        if await_publish:
            await self._async_dispatch(record, config, spec)
            return record
        task = self.hass.async_create_task(
            self._async_dispatch(record, config, spec, hand_over_later=True),
            f"iotee publish {record.command_id}",
            eager_start=True,
        )
        keep_until_done(self._dispatches, task)
        return record

    def _confirmation_window(self, spec: CommandSpec) -> float:
        """Seconds a command has for its confirmation: none for a device that never confirms
        (the record's deadline is then its creation), the JOG's duration on top of the timeout
        when IoTee publishes twice."""
        if isinstance(spec.confirmation, NoConfirmation):
            return 0.0
        pause = spec.follow_up.after if spec.follow_up is not None else 0.0
        return self.settings.command_timeout + pause

    async def _async_dispatch(
        self,
        record: CommandRecord,
        config: DeviceConfig,
        spec: CommandSpec,
        *,
        hand_over_later: bool = False,
    ) -> None:
        await self._delivery.async_dispatch(record, config, spec, hand_over_later=hand_over_later)

    def _changed(self, record: CommandRecord, old: CommandStatus | None) -> None:
        """Persist, fire the event and notify listeners of one status change."""
        self._keeper.persist(record)
        self._fire_status(record, old)
        self._notify(record, old)

    def _fire_status(self, record: CommandRecord, old: CommandStatus | None) -> None:
        """Fire ``iotee_command_status`` (also for a new attempt: the status then stays)."""
        self.hass.bus.async_fire(
            EVENT_COMMAND_STATUS,
            {
                "command_id": record.command_id,
                "hardware_id": record.hardware_id,
                "device_id": record.device_id,
                "device_type": record.device_type,
                "command": record.command,
                "relay": record.relay,
                "old_status": None if old is None else old.value,
                "new_status": record.status.value,
                "error_code": record.error_code,
                "error": record.error,
                "source": record.source,
                "attempt": len(record.attempts),
                "queued": record.queued,
            },
        )

    def last_command(self, target: tuple[str, str]) -> CommandRecord | None:
        """Return the newest command sent to ``target`` (a ``CommandRecord.target``)."""
        return self._last.get(target)

    def _notify(self, record: CommandRecord, old: CommandStatus | None) -> None:
        if old is None:
            self._last[record.target] = record
        for listener in self._command_listeners.snapshot():
            listener(record, old)
        for listener in self._target_listeners.snapshot(record.target):
            listener(record, old)

    # ---- incoming messages ---------------------------------------------------------------

    @callback
    def _on_message(self, msg: mqtt.ReceiveMessage) -> None:
        """Apply what a message reports, then what it means for commands, then tell entities.

        The device's state is taken first, so that an entity redrawn because its command
        completed already shows the state that completed it (never the old one once more).
        """
        payload = msg.payload if isinstance(msg.payload, str) else str(msg.payload)
        state_topics = self._book.state_topics.get(msg.topic)
        report = None
        if state_topics is not None:
            report = self._book.take_state(state_topics, payload)
        for tracked, verdict in self._tracker.feed(msg.topic, payload, msg.retain):
            self._apply(tracked, verdict)
        if msg.topic in self._tracker.late and not msg.retain:
            self._tracker.record_late(msg.topic, payload)
        if report is not None:
            if report.went_offline:
                self._tracker.fail_device(report.config)
            self._book.notify_device(report.config)
            if report.came_online:
                self._delivery.release(report.config.hardware_id)
        elif state_topics is None and self._book.discovery_listeners:
            self._book.maybe_discovered(msg.topic, payload)

    def _apply(self, tracked: Tracked, verdict: Verdict) -> None:
        tracker = self._tracker
        if tracked.record.status is CommandStatus.PENDING:
            # The device answered before the publish call returned: it went out.
            tracker.move(tracked, CommandStatus.PUBLISHED)
        if verdict.status is CommandStatus.ACKNOWLEDGED:
            if tracked.record.status is not CommandStatus.ACKNOWLEDGED:
                tracker.move(tracked, CommandStatus.ACKNOWLEDGED)
            return
        config = self.devices.get(tracked.record.hardware_id)
        if (
            verdict.status is CommandStatus.COMPLETED
            and config is not None
            and self._book.take_confirmed_state(tracked.record)
        ):
            tracker.end(tracked, verdict.status, verdict.error_code, verdict.error)
            self._book.notify_device(config)
            return
        tracker.end(tracked, verdict.status, verdict.error_code, verdict.error)

    # ---- queries and history -------------------------------------------------------------

    def open_command(self, command_id: str) -> CommandRecord | None:
        """Return an open command's live record (also one queued for its device)."""
        tracked = self._tracker.open.get(command_id)
        if tracked is not None:
            return tracked.record
        queued = self._delivery.waiting(command_id)
        return None if queued is None else queued.record

    async def async_get(self, command_id: str) -> CommandRecord | None:
        """Return a command by id (live when open)."""
        return self.open_command(command_id) or await self.store.get(command_id)

    async def async_wait(self, command_id: str, wait_seconds: float) -> CommandRecord:
        """Wait up to ``wait_seconds`` for a command to end; return its record.

        A queued command is waited for while it waits for its device, then while it runs.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + wait_seconds
        if (queued := self._delivery.waiting(command_id)) is not None:
            try:
                async with asyncio.timeout(wait_seconds):
                    await queued.left.wait()
            except TimeoutError:
                return queued.record
            wait_seconds = max(until - loop.time(), 0.0)
            if command_id not in self._tracker.open:
                return queued.record
        tracked = self._tracker.open.get(command_id)
        if tracked is not None:
            try:
                async with asyncio.timeout(wait_seconds):
                    await tracked.done.wait()
            except TimeoutError:
                pass
            return tracked.record
        record = await self.store.get(command_id)
        if record is None:
            raise UnknownCommandError(f"no command {command_id!r}")
        return record

    async def async_retry(
        self,
        command_id: str,
        *,
        source: str,
        caller: str | None = None,
        await_publish: bool = True,
    ) -> CommandRecord:
        """Send a failed or timed-out command again, as a new command linked to it."""
        original = await self.async_get(command_id)
        if original is None:
            raise UnknownCommandError(f"no command {command_id!r}")
        if original.status not in (CommandStatus.FAILED, CommandStatus.TIMEOUT):
            raise NotRetryableError(
                f"command {command_id} is {original.status.value}; only failed or timed-out"
                " commands can be retried"
            )
        return await self.async_submit(
            original.hardware_id,
            original.command,
            original.relay,
            original.params,
            source=source,
            caller=caller,
            retry_of=original.command_id,
            await_publish=await_publish,
        )

    async def async_list(
        self, device_ref: str | None = None, limit: int = 100
    ) -> list[CommandRecord]:
        """Return commands newest first, for one device (hardware or HA id) or all."""
        hardware_id = None
        if device_ref is not None:
            try:
                hardware_id = self.device(device_ref).hardware_id
            except UnknownDeviceError:
                hardware_id = device_ref
        records = await self.store.list_commands(hardware_id, limit)
        return [self.open_command(r.command_id) or r for r in records]

    async def async_delete(self, command_id: str) -> bool:
        """Delete a command from the history (an open one stops being tracked)."""
        tracked = self._tracker.open.get(command_id)
        if tracked is not None:
            self._tracker.untrack(tracked)
        self._tracker.forget_late(lambda t: t.record.command_id == command_id)
        await self._keeper.async_drain()
        if deleted := await self.store.delete(command_id):
            self._removed(Removal(command_id=command_id))
        return deleted

    async def async_purge(self, older_than_days: float) -> tuple[datetime, int]:
        """Delete finished commands older than ``older_than_days``; return cutoff and count."""
        cutoff = utcnow() - timedelta(days=older_than_days)
        # Ended commands the purge deletes get no late answers recorded any more.
        self._tracker.forget_late(lambda t: t.record.created_at < cutoff)
        await self._keeper.async_drain()
        if count := await self.store.purge(cutoff):
            self._removed(Removal(cutoff=cutoff, count=count))
        return cutoff, count

    def open_commands(self) -> Iterable[CommandRecord]:
        """Return the commands being tracked now."""
        return [t.record for t in self._tracker.open.values()]

    def queued_commands(self) -> list[CommandRecord]:
        """Return the commands waiting for their offline devices, oldest first."""
        return self._delivery.queued_records()

    def seq_topics(self) -> dict[str, int]:
        """Return how many open commands wait on each topic (diagnostics)."""
        return {topic: len(items) for topic, items in self._tracker.by_topic.items()}

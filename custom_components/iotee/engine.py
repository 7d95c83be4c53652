"""The command engine: turns requests into tracked commands over Home Assistant's MQTT.

Flow of one command: validate -> record stored (``pending``, durable before anything goes out) ->
publish through HA's MQTT integration (``published``, or ``failed`` when that fails) -> the
device's messages move it to ``acknowledged``/``completed``/``failed`` -> or its deadline passes
(``timeout``). Every status change is persisted, fired as the ``iotee_command_status`` event and
handed to listeners (entities, waiters).

One command per target: a new command to the same lock or relay supersedes an open one, which
ends ``failed`` with error code ``superseded``.

Store faults: a record that cannot be stored at creation refuses the command before anything is
published. Once a command is accepted the engine's in-memory record is the truth: status changes
that cannot be written are kept by the store and written later (retried every
``STORE_RETRY_INTERVAL`` seconds and with the next command), while one repair issue tells the user
and one log line says so; both clear when writing works again.

Subscriptions first: when HA's MQTT client (re)connects it restores its subscriptions a moment
later (about 0.5 s). A command published before IoTee's subscriptions are back would be carried
out while its confirmation is missed, so commands created in that window wait (at most
``SUBSCRIBE_WAIT`` seconds and half their time) until the broker acknowledged them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
import logging
from typing import Any

from homeassistant.components import mqtt
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN, EVENT_COMMAND_STATUS
from .core.device_config import DeviceConfig, DeviceState
from .core.device_types import DEVICE_TYPES, CommandSpec, DeviceType, topic_filter as filter_for
from .core.errors import (
    InvalidRelayError,
    NotRetryableError,
    UnknownCommandError,
    UnknownDeviceError,
    UnsupportedCommandError,
)
from .core.matcher import ConfirmationMatcher, Verdict
from .core.model import CommandRecord, CommandStatus, ErrorCode, new_command_id, utcnow
from .core.params import check_params
from .core.state_parser import read_state
from .core.store import AsyncCommandStore, StoreFaultError
from .core.zigbee2mqtt import BridgeDevice, bridge_topics, parse_bridge_devices

_LOGGER = logging.getLogger(__name__)

LATE_WINDOW = timedelta(minutes=10)
"""How long after a timeout a device's confirmation is still recorded on the command."""

STORE_RETRY_INTERVAL = 10.0
"""Seconds between tries to write status changes the store could not write."""

SUBSCRIBE_WAIT = 5.0
"""At most this many seconds a command waits for the subscriptions to be restored after HA's
MQTT client (re)connected; then it is published anyway."""

ISSUE_STORE_WRITE_FAILED = "store_write_failed"

type CommandListener = Callable[[CommandRecord, CommandStatus | None], None]
type DeviceListener = Callable[[DeviceConfig, DeviceState], None]
type DiscoveryListener = Callable[[DeviceType, str], None]


@dataclass(slots=True)
class EngineSettings:
    """Tunables from the hub options."""

    command_timeout: float = 10.0
    qos: int = 1


@dataclass(slots=True)
class _Tracked:
    """An open command the engine follows."""

    record: CommandRecord
    matcher: ConfirmationMatcher
    timer: asyncio.TimerHandle | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class _StateTopic:
    hardware_id: str
    kind: str  # "availability", "lock", "relay"
    relay: int | None = None


def _add_listener[L](listeners: list[L], listener: L) -> CALLBACK_TYPE:
    """Append ``listener``; return what removes it."""
    listeners.append(listener)
    return lambda: listeners.remove(listener)


def _add_keyed_listener[K, L](by_key: dict[K, list[L]], key: K, listener: L) -> CALLBACK_TYPE:
    """Add ``listener`` under ``key``; return what removes it (and the key once it has none)."""
    listeners = by_key.setdefault(key, [])
    listeners.append(listener)

    def remove() -> None:
        listeners.remove(listener)
        if not listeners and by_key.get(key) is listeners:
            del by_key[key]

    return remove


class CommandEngine:
    """Creates, publishes, confirms and records commands for the configured devices."""

    def __init__(
        self, hass: HomeAssistant, store: AsyncCommandStore, settings: EngineSettings
    ) -> None:
        """Create an engine; ``async_start`` recovers and subscribes."""
        self.hass = hass
        self.store = store
        self.settings = settings
        self.devices: dict[str, DeviceConfig] = {}
        self.states: dict[str, DeviceState] = {}
        self._open: dict[str, _Tracked] = {}
        self._by_topic: dict[str, list[_Tracked]] = {}
        self._by_target: dict[tuple[str, str], _Tracked] = {}
        self._late: dict[str, list[tuple[_Tracked, datetime]]] = {}
        self.zigbee2mqtt: dict[str, tuple[BridgeDevice, ...]] = {}
        """The locks and switches Zigbee2MQTT lists, by base topic (to pick from)."""
        self._bridge_topics: dict[str, str] = {}
        self._state_topics: dict[str, list[_StateTopic]] = {}
        """State topics by topic: one topic may carry several states (a Zigbee2MQTT device's
        JSON names all its relays)."""
        self._command_listeners: list[CommandListener] = []
        self._target_listeners: dict[tuple[str, str], list[CommandListener]] = {}
        self._device_listeners: list[DeviceListener] = []
        self._hardware_listeners: dict[str, list[DeviceListener]] = {}
        self._discovery_listeners: list[DiscoveryListener] = []
        self._unsubscribes: list[CALLBACK_TYPE] = []
        self._writes: set[asyncio.Future[None]] = set()
        self._dispatches: set[asyncio.Task[None]] = set()
        """Publishes still waiting for the broker after their command was answered."""
        self.subscription_filters: list[str] = []
        self._subscribed = asyncio.Event()
        """Set while the broker has acknowledged every subscription of the current connection."""
        self._subscribe_watchers: list[CALLBACK_TYPE] = []
        self._stopping = False
        self.store_fault: str | None = None
        """Why the store cannot be written, while it cannot (None when it works)."""
        self._store_retry: asyncio.TimerHandle | None = None
        self._last: dict[tuple[str, str], CommandRecord] = {}
        """The newest command of each target (what the entities show as ``last_command_*``)."""

    # ---- devices -------------------------------------------------------------------------

    def add_device(self, config: DeviceConfig) -> None:
        """Register a configured device and the topics it reports on."""
        self.devices[config.hardware_id] = config
        self.states.setdefault(config.hardware_id, DeviceState())
        dtype = config.device_type
        topics: list[tuple[str, _StateTopic]] = []
        if dtype.availability_topic:  # a user-defined device may have none
            topics.append(
                (
                    config.topic(dtype.availability_topic),
                    _StateTopic(config.hardware_id, "availability"),
                )
            )
        if dtype.lock_state_topic:
            topics.append(
                (config.topic(dtype.lock_state_topic), _StateTopic(config.hardware_id, "lock"))
            )
        if dtype.relay_state_topic:
            topics += [
                (
                    config.topic(dtype.relay_state_topic, relay),
                    _StateTopic(config.hardware_id, "relay", relay),
                )
                for relay in range(1, config.relays + 1)
            ]
        for topic, state_topic in topics:
            self._state_topics.setdefault(topic, []).append(state_topic)

    def remove_device(self, hardware_id: str) -> None:
        """Forget a device that is no longer configured.

        Its open commands stay tracked until they end: they were accepted, and the device may
        still answer them.
        """
        self.devices.pop(hardware_id, None)
        self.states.pop(hardware_id, None)
        for topic in list(self._state_topics):
            kept = [t for t in self._state_topics[topic] if t.hardware_id != hardware_id]
            if kept:
                self._state_topics[topic] = kept
            else:
                del self._state_topics[topic]

    def replace_device(self, config: DeviceConfig) -> None:
        """Take a reconfigured device's new settings; what it reported so far is kept."""
        state = self.states.get(config.hardware_id)
        self.remove_device(config.hardware_id)
        self.add_device(config)
        if state is not None:
            self.states[config.hardware_id] = state
            for relay in [r for r in state.relays if r > config.relays]:
                del state.relays[relay]

    def device(self, device_ref: str) -> DeviceConfig:
        """Return a device by hardware id or HA device id."""
        config = self.devices.get(device_ref)
        if config is None:
            config = next((d for d in self.devices.values() if d.device_id == device_ref), None)
        if config is None:
            raise UnknownDeviceError(f"no configured device {device_ref!r}")
        return config

    def set_device_id(self, hardware_id: str, device_id: str) -> None:
        """Remember the HA device registry id of a device."""
        self.devices[hardware_id] = replace(self.devices[hardware_id], device_id=device_id)

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
            return _add_listener(self._command_listeners, listener)
        return _add_keyed_listener(self._target_listeners, target, listener)

    @callback
    def add_device_listener(
        self, listener: DeviceListener, hardware_id: str | None = None
    ) -> CALLBACK_TYPE:
        """Call ``listener(config, state)`` when a device reports state or availability.

        With ``hardware_id`` only for that device.
        """
        if hardware_id is None:
            return _add_listener(self._device_listeners, listener)
        return _add_keyed_listener(self._hardware_listeners, hardware_id, listener)

    @callback
    def add_discovery_listener(self, listener: DiscoveryListener) -> CALLBACK_TYPE:
        """Call ``listener(device_type, mqtt_id)`` when an unconfigured device says online."""
        self._discovery_listeners.append(listener)
        return lambda: self._discovery_listeners.remove(listener)

    # ---- lifecycle -----------------------------------------------------------------------

    async def async_start(self) -> None:
        """Recover open commands from the store and subscribe to the device topics."""
        # A store fault of an earlier run is that run's; this one reports its own.
        ir.async_delete_issue(self.hass, DOMAIN, ISSUE_STORE_WRITE_FAILED)
        await self._async_recover()
        await self._async_load_last_commands()
        await self.async_subscribe_devices()
        self._unsubscribes.append(
            mqtt.async_subscribe_connection_status(self.hass, self._on_connection)
        )

    async def async_subscribe_devices(self) -> None:
        """Subscribe to what the configured devices need and is not subscribed yet.

        Filters are not given up while the engine runs: a removed device's open commands may
        still be answered on them, and one more wildcard subscription costs next to nothing.
        """
        new = [f for f in self._subscription_filters() if f not in self.subscription_filters]
        if not new:
            return
        self.subscription_filters = [*self.subscription_filters, *new]
        self._subscribed.clear()
        for topic_filter in new:
            self._unsubscribes.append(
                await mqtt.async_subscribe(self.hass, topic_filter, self._on_message, qos=1)
            )
        self._watch_subscriptions()

    async def _async_load_last_commands(self) -> None:
        """Read each target's last command, so entities show it after a restart."""
        targets = {hardware_id: config.targets() for hardware_id, config in self.devices.items()}
        for record in await self.store.last_commands(targets):
            self._last.setdefault(record.target, record)

    @callback
    def _on_connection(self, connected: bool) -> None:
        """Close the gate on every connection change; reopen it once subscriptions are back."""
        self._subscribed.clear()
        if connected:
            # HA's client announces the connection first and queues the re-subscriptions just
            # after: watch for them once that is done.
            self.hass.loop.call_soon(self._watch_subscriptions)

    @callback
    def _watch_subscriptions(self) -> None:
        """Set ``_subscribed`` when the broker acknowledged every filter of this engine."""
        self._cancel_subscribe_watchers()
        if self._stopping:
            return
        remaining = set(self.subscription_filters)

        def acknowledged(topic_filter: str) -> None:
            remaining.discard(topic_filter)
            if not remaining:
                self._cancel_subscribe_watchers()
                self._subscribed.set()

        self._subscribe_watchers = [
            mqtt.async_on_subscribe_done(
                self.hass, topic_filter, 1, partial(acknowledged, topic_filter)
            )
            for topic_filter in self.subscription_filters
        ]
        if not remaining:
            self._subscribed.set()

    def _cancel_subscribe_watchers(self) -> None:
        for cancel in self._subscribe_watchers:
            cancel()
        self._subscribe_watchers = []

    async def _async_subscriptions_restored(self, record: CommandRecord) -> None:
        """Wait until the subscriptions are back: at most ``SUBSCRIBE_WAIT`` s and half the
        time left to the deadline, so that the device still gets the command in time."""
        limit = min(SUBSCRIBE_WAIT, (record.deadline - utcnow()).total_seconds() / 2)
        try:
            async with asyncio.timeout(max(limit, 0.0)):
                await self._subscribed.wait()
        except TimeoutError:
            # Stop holding commands until the next reconnect: an acknowledgement that never
            # comes (another integration's QoS on the same filter, say) must not slow them all.
            _LOGGER.debug(
                "Subscriptions not acknowledged after %.1f s; publishing %s anyway",
                limit,
                record.command_id,
            )
            self._cancel_subscribe_watchers()
            self._subscribed.set()

    def _subscription_filters(self) -> list[str]:
        """Filters covering every topic of the devices (and the discoverable types' availability).

        Ids (``WILDCARD_PLACEHOLDERS``) become ``+``, so devices of one built-in type share
        filters; settings such as a topic prefix or a friendly name are filled in per device.
        """
        self._bridge_topics = bridge_topics(self.devices.values())
        filters: dict[str, None] = dict.fromkeys(self._bridge_topics)
        for dtype in DEVICE_TYPES.values():
            if dtype.discoverable:
                filters[filter_for(dtype.availability_topic, {})] = None
        for config in self.devices.values():
            dtype = config.device_type
            values = config.values()
            templates = [
                t
                for t in (dtype.availability_topic, dtype.lock_state_topic, dtype.relay_state_topic)
                if t
            ]
            templates += [spec.confirmation.topic for spec in dtype.commands.values()]
            for template in templates:
                filters[filter_for(template, values)] = None
        return list(filters)

    async def async_stop(self) -> None:
        """Unsubscribe and stop timers; open commands stay open in the store for recovery."""
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._unsubscribes.clear()
        self._cancel_subscribe_watchers()
        for tracked in self._open.values():
            if tracked.timer is not None:
                tracked.timer.cancel()
            tracked.done.set()
        self._open.clear()
        self._by_topic.clear()
        self._by_target.clear()
        self._stopping = True
        # Publishes of answered commands still waiting (for the broker's PUBACK, or for the
        # subscriptions): their records stay as stored, for the next start's recovery.
        for task in self._dispatches:
            task.cancel()
        if self._dispatches:
            await asyncio.gather(*self._dispatches, return_exceptions=True)
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        # After the last writes: a write failing meanwhile must not leave a retry scheduled.
        if self._store_retry is not None:
            self._store_retry.cancel()
            self._store_retry = None
        if self.store.pending_writes:
            pending = self.store.pending_writes
            try:
                await self.store.flush()
            except StoreFaultError as err:
                _LOGGER.error(
                    "The status of %s commands could not be stored before the command store"
                    " closed (%s); their stored history ends at the last status that was written",
                    pending,
                    err,
                )
                return
        if self.store_fault is not None:
            self.store_fault = None
            ir.async_delete_issue(self.hass, DOMAIN, ISSUE_STORE_WRITE_FAILED)

    async def _async_recover(self) -> None:
        """Time out open commands whose deadline passed; track the others again."""
        now = utcnow()
        for record in await self.store.open_commands():
            config = self.devices.get(record.hardware_id)
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
            tracked = self._track(record, config, spec)
            if record.status is CommandStatus.ACKNOWLEDGED:
                tracked.matcher.skip_to_last()

    def _force_end(
        self,
        record: CommandRecord,
        status: CommandStatus,
        code: ErrorCode,
        error: str,
        now: datetime,
    ) -> None:
        old = record.transition(status, now, error_code=code, error=error)
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
        await_publish: bool = True,
    ) -> CommandRecord:
        """Create, store and publish a command; return its record (status as it stands).

        ``await_publish=False`` returns once the record is stored: the dispatch starts as an
        eager task, so its checks that need no waiting (HA's MQTT client not connected, the
        device known offline, superseding the target's open command) and the hand-over to
        HA's MQTT client happen before this returns; the wait for the broker's PUBACK and the
        move to ``published`` - or a publish that fails after all - come later, through the
        record, the ``iotee_command_status`` event and the entity.
        """
        config, spec, name = self.resolve(device_ref, command, relay)
        checked_params = check_params(params)
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
            deadline=now + timedelta(seconds=self.settings.command_timeout),
            retry_of=retry_of,
            source=source,
            caller=caller,
        )
        try:
            await self.store.insert(record)
        except StoreFaultError as err:
            # Not stored, so not accepted: the caller gets the error and nothing is published.
            self._store_failed(err)
            raise
        self._store_ok()
        self._notify(record, None)
        if await_publish:
            await self._async_dispatch(record, config, spec)
            return record
        task = self.hass.async_create_task(
            self._async_dispatch(record, config, spec),
            f"iotee publish {record.command_id}",
            eager_start=True,
        )
        if not task.done():
            self._dispatches.add(task)
            task.add_done_callback(self._dispatches.discard)
        return record

    async def _async_dispatch(
        self, record: CommandRecord, config: DeviceConfig, spec: CommandSpec
    ) -> None:
        # The connection first: while it is down the device's last known availability (often
        # the last will the broker sent as it shut down) is not what stops the command.
        if not mqtt.is_connected(self.hass):
            self._force_end(
                record,
                CommandStatus.FAILED,
                ErrorCode.PUBLISH_FAILED,
                "Home Assistant's MQTT client is not connected to the broker",
                utcnow(),
            )
            return
        if self.states[config.hardware_id].online is False:
            self._force_end(
                record,
                CommandStatus.FAILED,
                ErrorCode.DEVICE_OFFLINE,
                f"{config.name} is offline",
                utcnow(),
            )
            return
        # Really going out: only now does it take over its target from an open command.
        self._supersede(record)
        tracked = self._track(record, config, spec)
        if not self._subscribed.is_set():
            await self._async_subscriptions_restored(record)
            if record.status.is_terminal:  # superseded or timed out meanwhile
                return
            if not mqtt.is_connected(self.hass):
                self._end(
                    tracked,
                    CommandStatus.FAILED,
                    ErrorCode.PUBLISH_FAILED,
                    "Home Assistant's MQTT client is not connected to the broker",
                )
                return
        try:
            await mqtt.async_publish(
                self.hass, record.topic, record.payload, qos=self.settings.qos, retain=False
            )
        except HomeAssistantError as err:
            if not record.status.is_terminal:
                self._end(
                    tracked,
                    CommandStatus.FAILED,
                    ErrorCode.PUBLISH_FAILED,
                    f"publish failed: {err}",
                )
            return
        if record.status is CommandStatus.PENDING:
            self._move(tracked, CommandStatus.PUBLISHED)

    def _supersede(self, record: CommandRecord) -> None:
        """End the open command to ``record``'s target, and stop crediting late answers on that
        target to older commands: from now on a state the device reports answers ``record``."""
        previous = self._by_target.get(record.target)
        if previous is not None and not previous.record.status.is_terminal:
            self._end(
                previous,
                CommandStatus.FAILED,
                ErrorCode.SUPERSEDED,
                f"superseded by command {record.command_id}",
            )
        self._forget_late(lambda t: t.record.target == record.target and not t.matcher.correlated)

    def _track(self, record: CommandRecord, config: DeviceConfig, spec: CommandSpec) -> _Tracked:
        confirmation = config.confirmation(spec, record.relay)
        tracked = _Tracked(
            record, ConfirmationMatcher(record.command_id, confirmation, confirmation.topic)
        )
        topic = confirmation.topic
        self._open[record.command_id] = tracked
        self._by_topic.setdefault(topic, []).append(tracked)
        self._by_target[record.target] = tracked
        delay = (record.deadline - utcnow()).total_seconds()
        tracked.timer = self.hass.loop.call_later(max(delay, 0.0), self._on_deadline, tracked)
        return tracked

    @callback
    def _on_deadline(self, tracked: _Tracked) -> None:
        tracked.timer = None
        if not tracked.record.status.is_terminal:
            self._end(
                tracked,
                CommandStatus.TIMEOUT,
                ErrorCode.TIMEOUT,
                f"no confirmation within {self.settings.command_timeout:g} s",
            )

    def _move(self, tracked: _Tracked, status: CommandStatus) -> None:
        old = tracked.record.transition(status, utcnow())
        self._changed(tracked.record, old)

    def _end(
        self, tracked: _Tracked, status: CommandStatus, code: ErrorCode | None, error: str | None
    ) -> None:
        record = tracked.record
        old = record.transition(
            status, utcnow(), error_code=None if code is None else code.value, error=error
        )
        self._untrack(tracked)
        if status is CommandStatus.TIMEOUT or (
            code is ErrorCode.SUPERSEDED and tracked.matcher.correlated
        ):
            # A timed-out command may still be confirmed late; a superseded one whose answers
            # name it (WLTE results) may still be answered: the device did act on it.
            now = utcnow()
            self._forget_expired_late(now)
            self._late.setdefault(tracked.matcher.topic, []).append((tracked, now))
        self._changed(record, old)

    def _forget_late(self, drop: Callable[[_Tracked], bool]) -> None:
        """Stop watching for late answers to the ended commands ``drop`` selects."""
        for topic in list(self._late):
            kept = [(t, ended) for t, ended in self._late[topic] if not drop(t)]
            if kept:
                self._late[topic] = kept
            else:
                del self._late[topic]

    def _forget_expired_late(self, now: datetime) -> None:
        """Drop timed-out commands past the late window, also on topics that went quiet."""
        for topic in [t for t, items in self._late.items() if now - items[-1][1] > LATE_WINDOW]:
            del self._late[topic]

    def _untrack(self, tracked: _Tracked) -> None:
        record = tracked.record
        if tracked.timer is not None:
            tracked.timer.cancel()
            tracked.timer = None
        self._open.pop(record.command_id, None)
        waiting = self._by_topic.get(tracked.matcher.topic)
        if waiting is not None:
            waiting.remove(tracked)
            if not waiting:
                del self._by_topic[tracked.matcher.topic]
        if self._by_target.get(record.target) is tracked:
            del self._by_target[record.target]
        tracked.done.set()

    def _changed(self, record: CommandRecord, old: CommandStatus | None) -> None:
        """Persist, fire the event and notify listeners of one status change."""
        self._persist(record)
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
            },
        )
        self._notify(record, old)

    def last_command(self, target: tuple[str, str]) -> CommandRecord | None:
        """Return the newest command sent to ``target`` (a ``CommandRecord.target``)."""
        return self._last.get(target)

    def _notify(self, record: CommandRecord, old: CommandStatus | None) -> None:
        if old is None:
            self._last[record.target] = record
        for listener in list(self._command_listeners):
            listener(record, old)
        for listener in list(self._target_listeners.get(record.target, ())):
            listener(record, old)

    def _persist(self, record: CommandRecord) -> None:
        """Write ``record``'s state with the other status changes of this loop iteration.

        One group commit per iteration (``AsyncCommandStore.update_soon``): its outcome is
        handled once, by ``_async_write``, however many changes it carries.
        """
        written = self.store.update_soon(record)
        if written not in self._writes:
            self._writes.add(written)
            written.add_done_callback(self._async_write)

    @callback
    def _async_write(self, written: asyncio.Future[None]) -> None:
        """A group commit of status changes ended: report a store fault, or its end."""
        self._writes.discard(written)
        if written.cancelled():
            return  # nobody learns the outcome; the store still keeps what it could not write
        err = written.exception()
        if isinstance(err, StoreFaultError):
            self._store_failed(err)
        elif err is not None:
            _LOGGER.error("Could not store status changes", exc_info=err)
        else:
            self._store_ok()

    # ---- store faults --------------------------------------------------------------------

    def _store_failed(self, err: StoreFaultError) -> None:
        """Report a store fault once (log and repair issue); retry kept writes periodically."""
        if self.store_fault is None:
            _LOGGER.error(
                "Cannot write the command store %s: %s. Commands keep running; status changes"
                " are kept in memory and written when the store works again, and new commands"
                " are refused while their record cannot be stored",
                self.store.path,
                err,
            )
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                ISSUE_STORE_WRITE_FAILED,
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                translation_key=ISSUE_STORE_WRITE_FAILED,
                translation_placeholders={"path": self.store.path, "error": str(err)},
            )
        else:
            _LOGGER.debug("Command store still failing: %s", err)
        self.store_fault = str(err)
        if self.store.pending_writes and self._store_retry is None and not self._stopping:
            self._store_retry = self.hass.loop.call_later(
                STORE_RETRY_INTERVAL, self._store_retry_due
            )

    def _store_ok(self) -> None:
        """A write succeeded: once nothing is kept back any more, the fault is over."""
        if self.store_fault is None or self.store.pending_writes:
            return
        self.store_fault = None
        if self._store_retry is not None:
            self._store_retry.cancel()
            self._store_retry = None
        ir.async_delete_issue(self.hass, DOMAIN, ISSUE_STORE_WRITE_FAILED)
        _LOGGER.info("The command store %s is written again", self.store.path)

    @callback
    def _store_retry_due(self) -> None:
        self._store_retry = None
        task = self.hass.async_create_task(
            self._async_flush_store(), "iotee store retry", eager_start=True
        )
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _async_flush_store(self) -> None:
        try:
            await self.store.flush()
        except StoreFaultError as err:
            self._store_failed(err)
        else:
            self._store_ok()

    # ---- incoming messages ---------------------------------------------------------------

    @callback
    def _on_message(self, msg: mqtt.ReceiveMessage) -> None:
        """Apply what a message reports, then what it means for commands, then tell entities.

        The device's state is taken first, so that an entity redrawn because its command
        completed already shows the state that completed it (never the old one once more).
        """
        payload = msg.payload if isinstance(msg.payload, str) else str(msg.payload)
        state_topics = self._state_topics.get(msg.topic)
        config = None
        went_offline = False
        if state_topics is not None:
            config, went_offline = self._take_state(state_topics, payload)
        for tracked in list(self._by_topic.get(msg.topic, ())):
            verdict = tracked.matcher.feed(payload, retained=msg.retain)
            if verdict is not None:
                self._apply(tracked, verdict)
        if msg.topic in self._late and not msg.retain:
            self._record_late(msg.topic, payload)
        if config is not None:
            if went_offline:
                self._fail_open_commands(config)
            self._notify_device(config)
        elif state_topics is None and self._discovery_listeners:
            self._maybe_discovered(msg.topic, payload)

    def _apply(self, tracked: _Tracked, verdict: Verdict) -> None:
        if tracked.record.status is CommandStatus.PENDING:
            # The device answered before the publish call returned: it went out.
            self._move(tracked, CommandStatus.PUBLISHED)
        if verdict.status is CommandStatus.ACKNOWLEDGED:
            if tracked.record.status is not CommandStatus.ACKNOWLEDGED:
                self._move(tracked, CommandStatus.ACKNOWLEDGED)
            return
        config = self.devices.get(tracked.record.hardware_id)
        if (
            verdict.status is CommandStatus.COMPLETED
            and config is not None
            and self._take_confirmed_state(tracked.record)
        ):
            self._end(tracked, verdict.status, verdict.error_code, verdict.error)
            self._notify_device(config)
            return
        self._end(tracked, verdict.status, verdict.error_code, verdict.error)

    def _take_confirmed_state(self, record: CommandRecord) -> bool:
        """The device confirmed a command that sets a state: that state is what it reports now.

        A result (WLTE ``SUCCESS``) may arrive before the relay's state message; the entity
        redrawn for the completed command must not show the old state once more in between.
        Return whether the state changed.
        """
        state = self.states[record.hardware_id]
        if record.relay is not None and record.command in ("ON", "OFF"):
            on = record.command == "ON"
            changed = state.relays.get(record.relay) is not on
            state.relays[record.relay] = on
            return changed
        if record.relay is None and record.command in ("lock", "unlock"):
            locked = record.command == "lock"
            changed = state.locked is not locked
            state.locked = locked
            return changed
        return False

    def _record_late(self, topic: str, payload: str) -> None:
        now = utcnow()
        keep: list[tuple[_Tracked, datetime]] = []
        for tracked, ended in self._late[topic]:
            if now - ended > LATE_WINDOW:
                continue
            verdict = tracked.matcher.feed(payload, retained=False)
            if verdict is not None and verdict.status is not CommandStatus.ACKNOWLEDGED:
                tracked.record.record_late_confirmation(f"{verdict.status.value}: {payload}", now)
                self._persist(tracked.record)
                self._notify(tracked.record, tracked.record.status)
                continue
            keep.append((tracked, ended))
        if keep:
            self._late[topic] = keep
        else:
            del self._late[topic]

    def _take_state(
        self, state_topics: list[_StateTopic], payload: str
    ) -> tuple[DeviceConfig | None, bool]:
        """Store what a state message reports (every state it carries).

        Return its device when it reported something, and whether it said the device is offline.
        """
        hardware_id = state_topics[0].hardware_id
        config = self.devices[hardware_id]
        state = self.states[hardware_id]
        changed = [t for t in state_topics if self._apply_state(config, state, t, payload)]
        if not changed:
            return None, False
        went_offline = state.online is False and any(t.kind == "availability" for t in changed)
        return config, went_offline

    def _apply_state(
        self, config: DeviceConfig, state: DeviceState, state_topic: _StateTopic, payload: str
    ) -> bool:
        """Update ``state`` from one message (parsed by the core); False when it says nothing."""
        dtype = config.device_type
        if state_topic.kind == "availability":
            reading = read_state(dtype.availability_readings, payload)
            if reading is None or reading.value is None:
                return False
            online = reading.value
            if state.online is not online:
                # Once per change, not per message: the entities become (un)available with it.
                _LOGGER.info(
                    "%s (%s) is %s",
                    config.name,
                    config.hardware_id,
                    "online" if online else "offline",
                )
            state.online = online
            return True
        relay = state_topic.relay
        readings = dtype.lock_readings if relay is None else dtype.relay_readings
        reading = read_state(config.readings(readings, relay), payload)
        if reading is None:
            return False
        if relay is None:
            state.locked = reading.value
        elif reading.value is None:
            state.relays.pop(relay, None)
        else:
            state.relays[relay] = reading.value
        return True

    def _notify_device(self, config: DeviceConfig) -> None:
        state = self.states[config.hardware_id]
        for listener in list(self._device_listeners):
            listener(config, state)
        for listener in list(self._hardware_listeners.get(config.hardware_id, ())):
            listener(config, state)

    def _fail_open_commands(self, config: DeviceConfig) -> None:
        """The device went offline: its open commands fail, unless going offline is their step."""
        offline_topic = config.topic(config.device_type.availability_topic)
        for tracked in [
            t for t in self._open.values() if t.record.hardware_id == config.hardware_id
        ]:
            if tracked.matcher.topic == offline_topic:
                continue
            self._end(
                tracked,
                CommandStatus.FAILED,
                ErrorCode.DEVICE_OFFLINE,
                f"{config.name} went offline",
            )

    def _maybe_discovered(self, topic: str, payload: str) -> None:
        base = self._bridge_topics.get(topic)
        if base is not None:
            self.zigbee2mqtt[base] = parse_bridge_devices(payload)
            return
        if not self._discovery_listeners:
            return
        for dtype in DEVICE_TYPES.values():
            if not dtype.discoverable:
                continue
            reading = read_state(dtype.availability_readings, payload)
            if reading is None or reading.value is not True:
                continue
            prefix, _, suffix = dtype.availability_topic.partition("{mqtt_id}")
            if topic.startswith(prefix) and topic.endswith(suffix):
                mqtt_id = topic[len(prefix) : len(topic) - len(suffix)]
                if mqtt_id and "/" not in mqtt_id and mqtt_id not in self.devices:
                    for listener in list(self._discovery_listeners):
                        listener(dtype, mqtt_id)

    # ---- queries and history -------------------------------------------------------------

    def open_command(self, command_id: str) -> CommandRecord | None:
        """Return an open command's live record."""
        tracked = self._open.get(command_id)
        return None if tracked is None else tracked.record

    async def async_get(self, command_id: str) -> CommandRecord | None:
        """Return a command by id (live when open)."""
        return self.open_command(command_id) or await self.store.get(command_id)

    async def async_wait(self, command_id: str, wait_seconds: float) -> CommandRecord:
        """Wait up to ``wait_seconds`` for a command to end; return its record."""
        tracked = self._open.get(command_id)
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
        tracked = self._open.get(command_id)
        if tracked is not None:
            self._untrack(tracked)
        self._forget_late(lambda t: t.record.command_id == command_id)
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
        return await self.store.delete(command_id)

    async def async_purge(self, older_than_days: float) -> tuple[datetime, int]:
        """Delete finished commands older than ``older_than_days``; return cutoff and count."""
        cutoff = utcnow() - timedelta(days=older_than_days)
        # Ended commands the purge deletes get no late answers recorded any more.
        self._forget_late(lambda t: t.record.created_at < cutoff)
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
        return cutoff, await self.store.purge(cutoff)

    def open_commands(self) -> Iterable[CommandRecord]:
        """Return the commands being tracked now."""
        return [t.record for t in self._open.values()]

    def seq_topics(self) -> dict[str, int]:
        """Return how many open commands wait on each topic (diagnostics)."""
        return {topic: len(items) for topic, items in self._by_topic.items()}

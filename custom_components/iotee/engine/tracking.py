"""Open commands: deadlines, verdicts, late answers and superseding.

Owns: the commands the engine follows (by id, by confirmation topic, by target), their
confirmation matchers (``core/matcher.py``), their deadline timers (``timeout``), ending a
command (``completed``/``failed``/``timeout``) and moving it (``published``/``acknowledged``),
superseding the open command of a target, and the late answers of ended commands (kept for
``LATE_WINDOW``). Every change goes to the engine's ``changed`` (persist, event, listeners).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import logging

from homeassistant.core import HomeAssistant, callback

from custom_components.iotee.core.device_config import DeviceConfig
from custom_components.iotee.core.device_types import CommandSpec
from custom_components.iotee.core.matcher import ConfirmationMatcher, Verdict
from custom_components.iotee.core.model import CommandRecord, CommandStatus, ErrorCode, utcnow

_LOGGER = logging.getLogger(__name__)

LATE_WINDOW = timedelta(minutes=10)
"""How long after a timeout a device's confirmation is still recorded on the command."""

type ChangeSink = Callable[[CommandRecord, CommandStatus | None], None]


@dataclass(slots=True)
class Tracked:
    """An open command the engine follows."""

    record: CommandRecord
    matcher: ConfirmationMatcher
    timer: asyncio.TimerHandle | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    retry: asyncio.TimerHandle | None = None
    """The next attempt's publish, while a retried command waits for its backoff."""


class Tracker:
    """Follows open commands until they end, and ended ones for late answers."""

    def __init__(
        self,
        hass: HomeAssistant,
        timeout: Callable[[], float],
        changed: ChangeSink,
        persist: Callable[[CommandRecord], None],
        notify: ChangeSink,
    ) -> None:
        """Report every status change to ``changed``; late answers to ``persist``/``notify``."""
        self.hass = hass
        self._timeout = timeout
        self._changed = changed
        self._persist = persist
        self._notify = notify
        self.open: dict[str, Tracked] = {}
        self.by_topic: dict[str, list[Tracked]] = {}
        self.by_target: dict[tuple[str, str], Tracked] = {}
        self.late: dict[str, list[tuple[Tracked, datetime]]] = {}
        self.on_timeout: Callable[[Tracked], bool] | None = None
        """Asked when a deadline passes: True when it publishes the command again (a retry)."""

    def track(self, record: CommandRecord, config: DeviceConfig, spec: CommandSpec) -> Tracked:
        """Follow ``record`` until its confirmation or deadline."""
        confirmation = config.confirmation(spec, record.relay)
        tracked = Tracked(
            record, ConfirmationMatcher(record.command_id, confirmation, confirmation.topic)
        )
        topic = confirmation.topic
        self.open[record.command_id] = tracked
        self.by_topic.setdefault(topic, []).append(tracked)
        self.by_target[record.target] = tracked
        if record.awaits_confirmation:
            self.arm_deadline(tracked)
        return tracked

    def arm_deadline(self, tracked: Tracked) -> None:
        """(Re)start the deadline timer at the record's deadline."""
        if tracked.timer is not None:
            tracked.timer.cancel()
        delay = (tracked.record.deadline - utcnow()).total_seconds()
        tracked.timer = self.hass.loop.call_later(max(delay, 0.0), self.on_deadline, tracked)

    @callback
    def on_deadline(self, tracked: Tracked) -> None:
        """The deadline passed: the command times out (unless it is published again)."""
        tracked.timer = None
        if tracked.record.status.is_terminal:
            return
        if self.on_timeout is not None and self.on_timeout(tracked):
            return
        self.end(
            tracked,
            CommandStatus.TIMEOUT,
            ErrorCode.TIMEOUT,
            f"no confirmation within {self._timeout():g} s",
        )

    def feed(self, topic: str, payload: str, retained: bool) -> list[tuple[Tracked, Verdict]]:
        """Return the verdicts a message gives the open commands waiting on ``topic``."""
        verdicts: list[tuple[Tracked, Verdict]] = []
        for tracked in list(self.by_topic.get(topic, ())):
            verdict = tracked.matcher.feed(payload, retained=retained)
            if verdict is not None:
                verdicts.append((tracked, verdict))
        return verdicts

    def move(self, tracked: Tracked, status: CommandStatus) -> None:
        """Move an open command forward (``published``, ``acknowledged``)."""
        old = tracked.record.transition(status, utcnow())
        self._changed(tracked.record, old)

    def end(
        self, tracked: Tracked, status: CommandStatus, code: ErrorCode | None, error: str | None
    ) -> None:
        """End an open command; a timed-out one stays watched for a late answer."""
        record = tracked.record
        old = record.transition(
            status, utcnow(), error_code=None if code is None else code.value, error=error
        )
        record.end_attempt(status.value if code is None else code.value)
        self.untrack(tracked)
        if status is CommandStatus.TIMEOUT or (
            code is ErrorCode.SUPERSEDED and tracked.matcher.correlated
        ):
            # A timed-out command may still be confirmed late; a superseded one whose answers
            # name it (WLTE results) may still be answered: the device did act on it.
            now = utcnow()
            self._forget_expired_late(now)
            self.late.setdefault(tracked.matcher.topic, []).append((tracked, now))
        self._changed(record, old)

    def supersede(self, record: CommandRecord) -> None:
        """End the open command to ``record``'s target, and stop crediting late answers on that
        target to older commands: from now on a state the device reports answers ``record``."""
        previous = self.by_target.get(record.target)
        if previous is not None and not previous.record.status.is_terminal:
            self.end(
                previous,
                CommandStatus.FAILED,
                ErrorCode.SUPERSEDED,
                f"superseded by command {record.command_id}",
            )
        self.forget_late(lambda t: t.record.target == record.target and not t.matcher.correlated)

    def fail_device(self, config: DeviceConfig) -> None:
        """The device went offline: its open commands fail, unless going offline is their step."""
        offline_topic = config.topic(config.device_type.availability_topic)
        for tracked in [
            t for t in self.open.values() if t.record.hardware_id == config.hardware_id
        ]:
            if tracked.matcher.topic == offline_topic:
                continue
            self.end(
                tracked,
                CommandStatus.FAILED,
                ErrorCode.DEVICE_OFFLINE,
                f"{config.name} went offline",
            )

    def record_late(self, topic: str, payload: str) -> None:
        """Keep a late confirmation on the ended command it answers."""
        now = utcnow()
        keep: list[tuple[Tracked, datetime]] = []
        for tracked, ended in self.late[topic]:
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
            self.late[topic] = keep
        else:
            del self.late[topic]

    def forget_late(self, drop: Callable[[Tracked], bool]) -> None:
        """Stop watching for late answers to the ended commands ``drop`` selects."""
        for topic in list(self.late):
            kept = [(t, ended) for t, ended in self.late[topic] if not drop(t)]
            if kept:
                self.late[topic] = kept
            else:
                del self.late[topic]

    def _forget_expired_late(self, now: datetime) -> None:
        """Drop timed-out commands past the late window, also on topics that went quiet."""
        for topic in [t for t, items in self.late.items() if now - items[-1][1] > LATE_WINDOW]:
            del self.late[topic]

    def untrack(self, tracked: Tracked) -> None:
        """Stop following a command (its timers too)."""
        record = tracked.record
        if tracked.timer is not None:
            tracked.timer.cancel()
            tracked.timer = None
        if tracked.retry is not None:
            # A command that ended waiting for its next attempt never goes out again.
            tracked.retry.cancel()
            tracked.retry = None
        self.open.pop(record.command_id, None)
        waiting = self.by_topic.get(tracked.matcher.topic)
        if waiting is not None and tracked in waiting:
            waiting.remove(tracked)
            if not waiting:
                del self.by_topic[tracked.matcher.topic]
        if self.by_target.get(record.target) is tracked:
            del self.by_target[record.target]
        tracked.done.set()

    def stop(self) -> None:
        """Stop every timer; open commands stay open in the store for recovery."""
        for tracked in self.open.values():
            if tracked.timer is not None:
                tracked.timer.cancel()
            if tracked.retry is not None:
                tracked.retry.cancel()
            tracked.done.set()
        self.open.clear()
        self.by_topic.clear()
        self.by_target.clear()

"""Rules for delivering commands to devices that are offline or miss a publish (HA-free).

Queue policy: a command to an offline device may be kept (``pending``) until the device says it
is online, for at most ``QueuePolicy.keep_minutes`` (the device's default) or what the command
asks; past its expiry it ends ``failed`` with ``expired``. At most one command waits per target:
the newest wins (``TargetQueue``).

Retry policy: on ``timeout`` a command is published again, up to ``RetryPolicy.attempts``
publishes in all, waiting ``backoff`` seconds before the second and twice as long before each
further one. Only idempotent commands are retried (lock/unlock, ON/OFF: doing them twice leaves
the same state); JOG and reboot act once more each time they arrive, so they are retried only
when the device opts in (``non_idempotent``).

Limits: an expiry is more than 0 and at most the history's retention period (a queued command
must not outlive its record); attempts are 1..``MAX_ATTEMPTS``, the backoff 0..``MAX_BACKOFF``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import math
from typing import Any

from .errors import InvalidDeliveryError

MAX_ATTEMPTS = 10
"""Publishes of one command at most (the first and nine retries)."""
MAX_BACKOFF = 600.0
"""Seconds a retry waits at most."""
DEFAULT_QUEUE_MINUTES = 60.0
"""How long ``queue: true`` keeps a command when its device has no default of its own."""
IDEMPOTENT_COMMANDS = frozenset({"lock", "unlock", "ON", "OFF"})
"""Commands that leave the same state when the device carries them out twice."""

KEY_QUEUE_MINUTES = "queue_minutes"
KEY_RETRY_ATTEMPTS = "retry_attempts"
KEY_RETRY_BACKOFF = "retry_backoff"
KEY_RETRY_NON_IDEMPOTENT = "retry_non_idempotent"

ERROR_QUEUE_MINUTES = "invalid_queue_minutes"
ERROR_RETRY_ATTEMPTS = "invalid_retry_attempts"
ERROR_RETRY_BACKOFF = "invalid_retry_backoff"


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """How long a device's commands wait while it is offline (0: they are refused)."""

    keep_minutes: float = 0.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a command that timed out is published again."""

    attempts: int = 1
    """Publishes in all; 1 means no retry."""
    backoff: float = 2.0
    """Seconds before the second publish; doubled for each further one."""
    non_idempotent: bool = False
    """Retry JOG and reboot too (the user turned it on for this device)."""

    def retries(self, command: str) -> bool:
        """Return True when ``command`` may be published more than once."""
        return self.attempts > 1 and (self.non_idempotent or command in IDEMPOTENT_COMMANDS)

    def delay_before(self, attempt: int) -> float:
        """Return the seconds to wait before publish number ``attempt`` (2 or more)."""
        return min(self.backoff * 2.0 ** max(attempt - 2, 0), MAX_BACKOFF)

    def next_delay(self, command: str, attempts_made: int) -> float | None:
        """Return the wait before the next publish, or None when there is none."""
        if not self.retries(command) or attempts_made >= self.attempts:
            return None
        return self.delay_before(attempts_made + 1)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """A device's queue and retry policy (its subentry options)."""

    queue: QueuePolicy = field(default_factory=QueuePolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def check_queue_minutes(minutes: float, retention_days: float) -> None:
    """Raise ``InvalidDeliveryError`` unless 0 < ``minutes`` <= the retention period."""
    limit = retention_days * 24 * 60
    if not math.isfinite(minutes) or minutes <= 0 or minutes > limit:
        raise InvalidDeliveryError(
            f"a queue expiry must be more than 0 and at most {limit:g} minutes (the history's"
            f" retention), not {minutes:g}"
        )


def check_attempts(attempts: int) -> None:
    """Raise ``InvalidDeliveryError`` unless 1 <= ``attempts`` <= ``MAX_ATTEMPTS``."""
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise InvalidDeliveryError(f"attempts must be 1..{MAX_ATTEMPTS}, not {attempts}")


def queue_minutes(
    request: bool | float | None, policy: QueuePolicy, retention_days: float
) -> float | None:
    """Return how many minutes a command may wait for its offline device; None: it may not.

    ``request`` is the command's own ``queue``: None follows the device, False never queues,
    True queues for the device's time (or ``DEFAULT_QUEUE_MINUTES``), a number for that long.
    """
    if request is None:
        minutes = policy.keep_minutes
        if minutes <= 0:
            return None
        return min(minutes, retention_days * 24 * 60)
    if request is False:
        return None
    if request is True:
        minutes = policy.keep_minutes if policy.keep_minutes > 0 else DEFAULT_QUEUE_MINUTES
        return min(minutes, retention_days * 24 * 60)
    minutes = float(request)
    check_queue_minutes(minutes, retention_days)
    return minutes


def queue_expiry(now: datetime, minutes: float) -> datetime:
    """Return when a command queued at ``now`` for ``minutes`` expires."""
    return now + timedelta(minutes=minutes)


def setting_error(name: str, value: object) -> str | None:
    """Return the error key of a bad device option (the subentry form), or None."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except TypeError, ValueError:
        number = math.nan
    if name == KEY_QUEUE_MINUTES:
        ok = math.isfinite(number) and number >= 0
        return None if ok else ERROR_QUEUE_MINUTES
    if name == KEY_RETRY_ATTEMPTS:
        ok = number.is_integer() and 1 <= number <= MAX_ATTEMPTS if math.isfinite(number) else False
        return None if ok else ERROR_RETRY_ATTEMPTS
    if name == KEY_RETRY_BACKOFF:
        ok = math.isfinite(number) and 0 <= number <= MAX_BACKOFF
        return None if ok else ERROR_RETRY_BACKOFF
    return None


def delivery_policy(data: Mapping[str, Any]) -> DeliveryPolicy:
    """Build a device's policy from its stored options (absent ones: the defaults)."""
    return DeliveryPolicy(
        QueuePolicy(float(data.get(KEY_QUEUE_MINUTES, 0.0))),
        RetryPolicy(
            attempts=int(data.get(KEY_RETRY_ATTEMPTS, 1)),
            backoff=float(data.get(KEY_RETRY_BACKOFF, 2.0)),
            non_idempotent=bool(data.get(KEY_RETRY_NON_IDEMPOTENT, False)),
        ),
    )


class TargetQueue[T]:
    """Queued items by target, in the order they were queued; the newest per target wins."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        """Start empty."""
        self._items: dict[tuple[str, str], T] = {}

    def put(self, target: tuple[str, str], item: T) -> T | None:
        """Queue ``item`` for ``target``; return the item it replaces, if any."""
        replaced = self._items.pop(target, None)
        self._items[target] = item
        return replaced

    def get(self, target: tuple[str, str]) -> T | None:
        """Return the item queued for ``target``."""
        return self._items.get(target)

    def pop(self, target: tuple[str, str]) -> T | None:
        """Remove and return the item queued for ``target``."""
        return self._items.pop(target, None)

    def take_device(self, hardware_id: str) -> list[T]:
        """Remove and return a device's items, oldest first."""
        targets = [target for target in self._items if target[0] == hardware_id]
        return [self._items.pop(target) for target in targets]

    def __len__(self) -> int:
        """Return how many items wait."""
        return len(self._items)

    def values(self) -> list[T]:
        """Return every item, oldest first."""
        return list(self._items.values())

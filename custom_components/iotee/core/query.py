"""Filtered, paged views of the command history: what to look for, and where a page ends.

A ``CommandQuery`` is one set of filters (device, relay or target, status, source, time range,
command id prefix). It renders to an SQL condition on indexed columns for ``CommandStore`` and
tests a record in memory (``matches``) for live updates, with the same meaning.

Pages are keyset pages, newest first: a ``Cursor`` is the ``(created_at, rowid)`` of the last
record of a page, and the next page starts strictly below it. A page therefore costs the same
at the millionth record as at the first, and records added meanwhile do not shift pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
import re
from typing import Any, Final

from .model import CommandRecord, CommandStatus

TARGET_LOCK: Final = "lock"
TARGET_REBOOT: Final = "reboot"
TARGETS: Final = (TARGET_LOCK, TARGET_REBOOT)
"""Targets without a relay; a relay target is given as ``relay``."""

_CURSOR = re.compile(r"(?P<at>[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)~(?P<rowid>[0-9]{1,19})")


class InvalidCursorError(ValueError):
    """A page cursor that this module did not produce."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last record's ``created_at`` (epoch seconds) and rowid."""

    created_at: float
    rowid: int

    def encode(self) -> str:
        """Return the cursor as an opaque string."""
        return f"{self.created_at!r}~{self.rowid}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse ``encode``'s output; raise ``InvalidCursorError`` for anything else."""
        found = _CURSOR.fullmatch(text)
        if found is None:
            raise InvalidCursorError(f"not a page cursor: {text!r}")
        return cls(float(found["at"]), int(found["rowid"]))


def _prefix_upper_bound(prefix: str) -> str:
    """Return the smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True, slots=True)
class CommandQuery:
    """Filters on the command history; every field left None matches everything."""

    hardware_id: str | None = None
    relay: int | None = None
    target: str | None = None
    """``lock`` (the device's own lock) or ``reboot``; relays are filtered with ``relay``."""
    status: CommandStatus | None = None
    source: str | None = None
    since: datetime | None = None
    """Created at or after."""
    until: datetime | None = None
    """Created at or before."""
    id_prefix: str | None = None
    """The command id starts with this."""

    def __post_init__(self) -> None:
        """Refuse contradictory or empty filters."""
        if self.target is not None and self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}")
        if self.target is not None and self.relay is not None:
            raise ValueError("give a relay or a target, not both")
        if self.id_prefix == "":
            raise ValueError("the command id prefix must not be empty")

    def where(self) -> tuple[str, list[Any]]:
        """Return the SQL condition (``1`` when there is none) and its arguments."""
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("hardware_id", self.hardware_id),
            ("relay", self.relay),
            ("status", None if self.status is None else self.status.value),
            ("source", self.source),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if self.target == TARGET_LOCK:
            clauses.append("relay IS NULL AND command != 'reboot'")
        elif self.target == TARGET_REBOOT:
            clauses.append("command = 'reboot'")
        if self.since is not None:
            clauses.append("created_at >= ?")
            args.append(self.since.timestamp())
        if self.until is not None:
            clauses.append("created_at <= ?")
            args.append(self.until.timestamp())
        if self.id_prefix is not None:
            # A range on the primary key's index (LIKE would scan: ids are case-sensitive).
            clauses.append("command_id >= ? AND command_id < ?")
            args += [self.id_prefix, _prefix_upper_bound(self.id_prefix)]
        return (" AND ".join(clauses) or "1"), args

    def matches(self, record: CommandRecord) -> bool:
        """Return whether ``record`` passes every filter (the meaning of ``where``)."""
        if self.target == TARGET_LOCK:
            target_ok = record.relay is None and record.command != "reboot"
        elif self.target == TARGET_REBOOT:
            target_ok = record.command == "reboot"
        else:
            target_ok = True
        created = record.created_at.timestamp()
        return (
            target_ok
            and (self.hardware_id is None or record.hardware_id == self.hardware_id)
            and (self.relay is None or record.relay == self.relay)
            and (self.status is None or record.status is self.status)
            and (self.source is None or record.source == self.source)
            and (self.since is None or created >= self.since.timestamp())
            and (self.until is None or created <= self.until.timestamp())
            and (self.id_prefix is None or record.command_id.startswith(self.id_prefix))
        )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of records, newest first, and where the next one starts (None: no more)."""

    records: list[CommandRecord]
    next: Cursor | None

"""What each command operation needs, whichever door it comes through.

One table for the REST APIs, the HA actions and the websocket API: an operation that publishes
needs ``control``; reading one command or one device's history needs ``read``; listing every
device's commands, deleting, retrying and purging are for administrators. ``retry`` publishes,
so it needs ``control`` as well as ``admin``: scopes bind admin keys too.

A caller is described by whether it is an administrator and which scopes it holds (an API key's
scopes; a Home Assistant user holds both, a read-only user ``read`` only).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Right(StrEnum):
    """A right an operation may need."""

    READ = "read"
    """The ``device:read`` or ``device:control`` scope."""
    CONTROL = "control"
    """The ``device:control`` scope: the operation may cause a publish."""
    ADMIN = "admin"
    """An administrator: an admin API key or a Home Assistant administrator."""


class Operation(StrEnum):
    """The operations on tracked commands."""

    SEND = "send"
    HISTORY = "history"
    """One device's commands."""
    GET = "get"
    """One command by id."""
    LIST_ALL = "list_all"
    """Every device's commands."""
    DELETE = "delete"
    RETRY = "retry"
    PURGE = "purge"


OPERATION_RIGHTS: Final[dict[Operation, frozenset[Right]]] = {
    Operation.SEND: frozenset({Right.CONTROL}),
    Operation.HISTORY: frozenset({Right.READ}),
    Operation.GET: frozenset({Right.READ}),
    Operation.LIST_ALL: frozenset({Right.ADMIN, Right.READ}),
    Operation.DELETE: frozenset({Right.ADMIN}),
    Operation.RETRY: frozenset({Right.ADMIN, Right.CONTROL}),
    Operation.PURGE: frozenset({Right.ADMIN}),
}

SCOPE_READ: Final = "device:read"
SCOPE_CONTROL: Final = "device:control"


def holds(right: Right, *, is_admin: bool, scopes: frozenset[str]) -> bool:
    """Return whether a caller holds ``right``."""
    if right is Right.ADMIN:
        return is_admin
    if right is Right.CONTROL:
        return SCOPE_CONTROL in scopes
    return bool({SCOPE_READ, SCOPE_CONTROL} & scopes)


def missing(operation: Operation, *, is_admin: bool, scopes: frozenset[str]) -> list[Right]:
    """Return the rights ``operation`` needs that the caller lacks (admin first), [] if none."""
    order = (Right.ADMIN, Right.CONTROL, Right.READ)
    needed = OPERATION_RIGHTS[operation]
    return [r for r in order if r in needed and not holds(r, is_admin=is_admin, scopes=scopes)]

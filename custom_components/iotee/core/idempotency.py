"""Helpers for the WLTE relay API's ``Idempotency-Key``.

A key is remembered per scope (caller, path, key) together with a hash of the request body and the
command it created (see ``CommandStore.idempotency_*``). ``InFlight`` collapses duplicates that
arrive while the first request with a key is still being handled, before anything is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import hashlib
import json
import re
from typing import Any

KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
"""A valid Idempotency-Key: 1 to 128 ASCII letters, digits, ``-`` and ``_`` (use ``fullmatch``)."""


class ClaimReleasedError(Exception):
    """The request holding an idempotency claim gave it up without creating a command.

    A waiter that gets this should handle its request itself (claiming the scope again).
    """


def valid_key(key: str | None) -> bool:
    """Return True when ``key`` is a well-formed Idempotency-Key."""
    return isinstance(key, str) and KEY_PATTERN.fullmatch(key) is not None


def scope_of(caller: str, path: str, key: str) -> str:
    """Return the scope an Idempotency-Key is remembered under: the (caller, path, key) triple.

    The triple is JSON-encoded, so no choice of caller or path can make two triples collide.
    """
    return json.dumps([caller, path, key], separators=(",", ":"))


def _plain(value: object) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def body_hash(body: Mapping[str, Any]) -> str:
    """Return the SHA-256 (hex) of ``body`` as canonical JSON (sorted keys, compact).

    Two bodies that decode to the same JSON object hash the same whatever their key order or
    whitespace.
    """
    canonical = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class InFlight:
    """Idempotency scopes being handled right now, on one event loop.

    The first request to ``claim`` a scope gets None and handles the request; it must then call
    ``resolve`` with the command id it created (after the idempotency record is stored) or
    ``release`` when it created nothing (refused, failed), typically in a ``finally``. Every later
    request gets a future of its own that resolves with that command id, or raises
    ``ClaimReleasedError`` on ``release``. Each waiter has its own future, so cancelling one waiter
    never affects the others.

    ``claim`` is synchronous: with no await between the check and the claim, any number of
    concurrent requests on the loop produce exactly one claimant.
    """

    __slots__ = ("_claims",)

    def __init__(self) -> None:
        """Start with nothing in flight."""
        self._claims: dict[str, list[asyncio.Future[str]]] = {}

    def __contains__(self, scope: object) -> bool:
        """Return True while ``scope`` is claimed."""
        return scope in self._claims

    def __len__(self) -> int:
        """Return how many scopes are claimed."""
        return len(self._claims)

    def claim(self, scope: str) -> asyncio.Future[str] | None:
        """Claim ``scope``: None for the first claimant, else a future of the claimant's outcome."""
        waiters = self._claims.get(scope)
        if waiters is None:
            self._claims[scope] = []
            return None
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiters.append(future)
        return future

    def resolve(self, scope: str, command_id: str) -> None:
        """End the claim on ``scope``: every waiter gets ``command_id``. No-op if not claimed."""
        for future in self._claims.pop(scope, ()):
            if not future.done():
                future.set_result(command_id)

    def release(self, scope: str) -> None:
        """End the claim on ``scope`` without a command: waiters get ``ClaimReleasedError``.

        The scope is free again, so the first waiter to retry becomes the new claimant. No-op if
        not claimed.
        """
        for future in self._claims.pop(scope, ()):
            if not future.done():
                future.set_exception(ClaimReleasedError(scope))

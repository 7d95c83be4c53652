"""Listener lists that thousands of entities join and leave.

Every entity of a hub adds three listeners when HA adds it and removes them when HA removes it:
a home of 5,000 devices has 10,000 entities. A plain list made each removal a scan of the
list, so unloading or reloading such a hub was quadratic (50 million comparisons for the
connection listeners alone), and each removal was a closure of its own (a function and four
cells: garbage the collector walks through at every full collection). Here a listener is kept
under a token in a dict - removal is one lookup - and what removes it is one small object.
"""

from __future__ import annotations

from collections.abc import Hashable
import itertools
from typing import Any

_tokens = itertools.count()
"""Tokens for listeners: ints are not tracked by the garbage collector, unlike closures."""


class Listeners[L]:
    """Listeners in the order they were added; adding or removing one takes the same time
    however many there are. The same listener added twice is called twice."""

    __slots__ = ("_by_token",)

    def __init__(self) -> None:
        """Start empty."""
        self._by_token: dict[int, L] = {}

    def add(self, listener: L) -> Removal:
        """Add ``listener``; return what removes it."""
        token = next(_tokens)
        self._by_token[token] = listener
        return Removal(self._by_token, token)

    def snapshot(self) -> list[L]:
        """Return the listeners as they are now (a listener may remove itself when called)."""
        return list(self._by_token.values())

    def __len__(self) -> int:
        """Return how many listeners there are (none: the listeners are false)."""
        return len(self._by_token)


class KeyedListeners[K: Hashable, L]:
    """Listeners by key (a device, a command target): telling one key's listeners costs
    nothing for the others; a key without listeners is forgotten."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        """Start empty."""
        self._by_key: dict[K, dict[int, L]] = {}

    def add(self, key: K, listener: L) -> KeyedRemoval[K]:
        """Add ``listener`` under ``key``; return what removes it."""
        token = next(_tokens)
        self._by_key.setdefault(key, {})[token] = listener
        return KeyedRemoval(self._by_key, key, token)

    def snapshot(self, key: K) -> list[L]:
        """Return ``key``'s listeners as they are now."""
        listeners = self._by_key.get(key)
        return [] if listeners is None else list(listeners.values())

    def __len__(self) -> int:
        """Return how many keys have listeners."""
        return len(self._by_key)


class Removal:
    """Removes one listener from a ``Listeners`` (again: nothing)."""

    __slots__ = ("_by_token", "_token")

    def __init__(self, by_token: dict[int, Any], token: int) -> None:
        """Remove ``token`` from ``by_token`` when called."""
        self._by_token = by_token
        self._token = token

    def __call__(self) -> None:
        """Remove the listener."""
        self._by_token.pop(self._token, None)


class KeyedRemoval[K: Hashable]:
    """Removes one listener from a ``KeyedListeners``, and the key once it has none."""

    __slots__ = ("_by_key", "_key", "_token")

    def __init__(self, by_key: dict[K, dict[int, Any]], key: K, token: int) -> None:
        """Remove ``token`` under ``key`` of ``by_key`` when called."""
        self._by_key = by_key
        self._key = key
        self._token = token

    def __call__(self) -> None:
        """Remove the listener (and the key, when it was the last)."""
        listeners = self._by_key.get(self._key)
        if listeners is None or listeners.pop(self._token, None) is None:
            return
        if not listeners:
            del self._by_key[self._key]

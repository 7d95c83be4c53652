"""Listener lists that every entity of a large home joins and leaves (``engine/listeners.py``)."""

from __future__ import annotations

from collections.abc import Callable

from custom_components.iotee.engine.listeners import KeyedListeners, Listeners


class Counted:
    """A listener that counts how often it was compared with another object."""

    comparisons = 0

    def __init__(self, calls: list[int], name: int) -> None:
        self.calls = calls
        self.name = name

    def __call__(self) -> None:
        self.calls.append(self.name)

    def __eq__(self, other: object) -> bool:
        Counted.comparisons += 1
        return other is self

    def __hash__(self) -> int:
        return id(self)


def test_listeners_are_called_in_order_and_removed_without_a_scan() -> None:
    """Removing one of thousands compares it with none: unloading a hub of 10,000 entities was
    50 million comparisons with a plain list."""
    calls: list[int] = []
    listeners: Listeners[Callable[[], None]] = Listeners()
    items = [Counted(calls, n) for n in range(2_000)]
    removals = [listeners.add(item) for item in items]
    for listener in listeners.snapshot():
        listener()
    assert calls == list(range(2_000))

    Counted.comparisons = 0
    for removal in reversed(removals):  # the worst order for a list scanned from the front
        removal()
    assert Counted.comparisons == 0
    assert not listeners
    assert listeners.snapshot() == []


def test_the_same_listener_twice_is_called_twice_and_each_removal_removes_one() -> None:
    calls: list[str] = []
    listeners: Listeners[Callable[[], None]] = Listeners()
    first = listeners.add(lambda: calls.append("a"))
    listener = lambda: calls.append("b")  # noqa: E731
    twice = [listeners.add(listener), listeners.add(listener)]
    for item in listeners.snapshot():
        item()
    assert calls == ["a", "b", "b"]
    twice[0]()
    twice[0]()  # a second call removes nothing more
    assert len(listeners) == 2
    first()
    assert listeners.snapshot() == [listener]


def test_a_listener_removed_while_listeners_are_called_does_not_disturb_the_others() -> None:
    calls: list[str] = []
    listeners: Listeners[Callable[[], None]] = Listeners()

    def once() -> None:
        calls.append("once")
        remove_once()

    remove_once = listeners.add(once)
    listeners.add(lambda: calls.append("always"))
    for round_ in range(2):
        for listener in listeners.snapshot():
            listener()
        calls.append(f"end {round_}")
    assert calls == ["once", "always", "end 0", "always", "end 1"]


def test_keyed_listeners_reach_only_their_key_and_a_key_without_listeners_is_forgotten() -> None:
    calls: list[str] = []
    by_device: KeyedListeners[str, Callable[[], None]] = KeyedListeners()
    remove_a1 = by_device.add("A", lambda: calls.append("a1"))
    remove_a2 = by_device.add("A", lambda: calls.append("a2"))
    remove_b = by_device.add("B", lambda: calls.append("b"))
    for listener in by_device.snapshot("A"):
        listener()
    assert calls == ["a1", "a2"]
    assert by_device.snapshot("C") == []
    assert len(by_device) == 2

    remove_a1()
    remove_a2()
    assert len(by_device) == 1  # "A" is forgotten with its last listener
    remove_b()
    assert len(by_device) == 0

    # A removal kept from before does not remove a listener added since under the same key.
    by_device.add("A", lambda: calls.append("a3"))
    remove_a1()
    calls.clear()
    for listener in by_device.snapshot("A"):
        listener()
    assert calls == ["a3"]

"""Row 3's breakdown: the event loop's CPU per confirmed command, piece by piece.

One more tracked run after the measured ones (not counted), with a few of IoTee's and HA's
synchronous functions wrapped: each call adds its thread's CPU time (``time.thread_time_ns``,
so the store thread and the GIL waits are not in it) to its piece. Pieces nest - an entity's
state write happens inside the listeners, the listeners inside a status change - so each row is
inclusive, and the wrappers' own clock reads (two system calls per call) make the outer rows
read a little high. The functions are wrapped on their classes for that run only and restored
afterwards; callbacks bound before it (HA's message callback, the tracker's ``changed``) are
reached through the methods they call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
import functools
import time
from typing import Any

from homeassistant.helpers.entity import Entity

from custom_components.iotee.core import store
from custom_components.iotee.core.store import AsyncCommandStore
from custom_components.iotee.engine import CommandEngine
from custom_components.iotee.engine.devices import DeviceBook
from custom_components.iotee.engine.tracking import Tracker


@dataclass(frozen=True, slots=True)
class Piece:
    """One wrapped function and what it stands for."""

    owner: Any
    """The class (or module) the function is looked up on at call time."""
    name: str
    label: str


PIECES = (
    Piece(CommandEngine, "resolve", "finding the device and command (`resolve`)"),
    Piece(store, "record_row", "building a store row (`record_row`; insert and updates)"),
    Piece(Tracker, "track", "tracking a new command: its matcher and deadline (`track`)"),
    Piece(Tracker, "feed", "matching a device's message to its command (`feed`)"),
    Piece(DeviceBook, "take_state", "taking the device's state from a message (`take_state`)"),
    Piece(DeviceBook, "notify_device", "telling entities of the device's state (`notify_device`)"),
    Piece(Tracker, "move", "a status change on the way (`move`: published, acknowledged)"),
    Piece(Tracker, "end", "the command's end (`end`: completed)"),
    Piece(AsyncCommandStore, "_submit_deferred", "handing status updates to the store thread"),
    Piece(CommandEngine, "_fire_status", "the `iotee_command_status` event of a status change"),
    Piece(CommandEngine, "_notify", "listeners of a command: its entity, the outcome event"),
    Piece(Entity, "_async_write_ha_state", "HA writing an entity's state (inside listeners)"),
)


@contextmanager
def wrapped(costs: dict[str, list[int]]) -> Iterator[None]:
    """Wrap every piece for the duration; ``costs[label]`` = [calls, thread CPU ns]."""
    originals = [(piece, piece.owner.__dict__[piece.name]) for piece in PIECES]
    try:
        for piece, original in originals:
            cost = costs.setdefault(piece.label, [0, 0])
            setattr(piece.owner, piece.name, _timed(original, cost))
        yield
    finally:
        for piece, original in originals:
            setattr(piece.owner, piece.name, original)


def _timed(func: Callable[..., Any], cost: list[int]) -> Callable[..., Any]:
    clock = time.thread_time_ns

    @functools.wraps(func)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return func(*args, **kwargs)
        finally:
            cost[0] += 1
            cost[1] += clock() - started

    return timed


async def measure_breakdown(
    run: Callable[[], Awaitable[Any]], commands: int
) -> dict[str, dict[str, float]]:
    """Run ``run`` (``commands`` confirmed commands) with the pieces wrapped; return, per
    piece, its calls and its event-loop CPU in microseconds per command."""
    costs: dict[str, list[int]] = {}
    with wrapped(costs):
        await run()
    return {
        label: {
            "calls_per_command": round(calls / commands, 2),
            "us_per_command": round(ns / 1000 / commands, 1),
        }
        for label, (calls, ns) in costs.items()
    }

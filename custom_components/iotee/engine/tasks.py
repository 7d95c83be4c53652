"""The engine's own background tasks: held until they end, so that stopping can cancel them."""

from __future__ import annotations

import asyncio
from typing import Any


def keep_until_done(tasks: set[asyncio.Task[Any]], task: asyncio.Task[Any]) -> None:
    """Hold ``task`` in ``tasks`` until it ends; one that already ended (an eager task that
    never had to wait) is not held."""
    if not task.done():
        tasks.add(task)
        task.add_done_callback(tasks.discard)

"""A bounded tshark capture of the broker's port on loopback (``scripts/bench --capture``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
import shutil

MAX_SECONDS = 900
MAX_PACKETS = 1_000_000


@asynccontextmanager
async def capture(path: Path | None, port: int) -> AsyncIterator[None]:
    """Capture TCP port ``port`` on ``lo`` into ``path`` while the block runs (None: do nothing).

    Bounded by ``MAX_SECONDS`` and ``MAX_PACKETS`` whatever the block does; headers only (256
    bytes of each packet are plenty for MQTT's fixed header, topic and packet id).
    """
    if path is None:
        yield
        return
    tshark = shutil.which("tshark") or "/usr/bin/tshark"
    command = ["-q", "-i", "lo", "-f", f"tcp port {port}", "-s", "256"]
    command += ["-a", f"duration:{MAX_SECONDS}", "-c", str(MAX_PACKETS), "-w", str(path)]
    proc = await asyncio.create_subprocess_exec(
        tshark,
        *command,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(2.0)  # tshark needs a moment before it captures
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()

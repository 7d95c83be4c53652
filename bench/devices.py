"""``python -m bench.devices SIMULATOR-ARGS``: the simulated devices, with TCP_NODELAY.

Runs ``python -m simulator`` unchanged, except that every socket it connects has Nagle's
algorithm off: paho does not set TCP_NODELAY, and a device publishing ACK, state and SUCCESS
back to back would otherwise wait for the broker's delayed ACK (40 ms on Linux) - a property of
the simulator's TCP stack, not of what is being measured (see docs/performance.md).
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from simulator.__main__ import main

_create_connection = socket.create_connection


def _nodelay_connection(*args: Any, **kwargs: Any) -> socket.socket:
    sock = _create_connection(*args, **kwargs)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


if __name__ == "__main__":
    socket.create_connection = _nodelay_connection
    raise SystemExit(main(sys.argv[1:]))

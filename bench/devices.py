"""``python -m bench.devices [--nodelay] SIMULATOR-ARGS``: the simulated devices.

Runs ``python -m simulator`` unchanged. With ``--nodelay`` (the tuned table only) every socket it
connects has Nagle's algorithm off: paho does not set TCP_NODELAY, so a device publishing ACK,
state and SUCCESS back to back can wait for the broker's delayed ACK (40 ms on Linux), as a real
device on a stock TCP stack may (see docs/performance.md).
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
    argv = sys.argv[1:]
    if argv[:1] == ["--nodelay"]:
        argv = argv[1:]
        socket.create_connection = _nodelay_connection
    raise SystemExit(main(argv))

"""A mosquitto process on a free loopback port, and a one-shot publisher of retained messages."""

from __future__ import annotations

import os
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from simulator.broker import Mosquitto, find_mosquitto, free_port

__all__ = ["Broker", "find_mosquitto", "free_port", "pin", "publish_retained"]

NODELAY = "set_tcp_nodelay true\n"
"""The one broker setting the README recommends (Nagle off on every client connection)."""


def pin(pid: int, cpus: set[int] | None) -> None:
    """Restrict process ``pid`` to ``cpus`` (no-op when None)."""
    if cpus:
        os.sched_setaffinity(pid, cpus)


class Broker(Mosquitto):
    """mosquitto without persistence; stock settings unless told, optionally pinned to CPUs.

    ``nodelay``: ``set_tcp_nodelay true``; everything else is mosquitto's default configuration.
    """

    def __init__(
        self,
        workdir: Path,
        cpus: set[int] | None = None,
        *,
        nodelay: bool = False,
    ) -> None:
        """Prepare a broker in ``workdir``; ``cpus`` pins it."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.cpus = cpus
        self.pid: int | None = None
        super().__init__(workdir, extra_config=NODELAY if nodelay else "")

    def _started(self, pid: int) -> None:
        self.pid = pid
        pin(pid, self.cpus)


def publish_retained(host: str, port: int, messages: list[tuple[str, str]]) -> None:
    """Publish ``(topic, payload)`` pairs retained with QoS 1 and wait until the broker has all."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-retain-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.connect(host, port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()

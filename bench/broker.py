"""A mosquitto process on a free loopback port, and a one-shot publisher of retained messages."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
import shutil
import socket
import subprocess
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str:
    """Return the mosquitto binary (scripts/setup installs it)."""
    for candidate in _CANDIDATES:
        path = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if path:
            return path
    raise RuntimeError("mosquitto is not installed: run scripts/setup")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(pid: int, cpus: set[int] | None) -> None:
    """Restrict process ``pid`` to ``cpus`` (no-op when None)."""
    if cpus:
        os.sched_setaffinity(pid, cpus)


class Broker:
    """mosquitto without persistence, logging into its own directory."""

    def __init__(self, workdir: Path, cpus: set[int] | None = None) -> None:
        """Prepare a broker in ``workdir``; ``cpus`` pins it."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.cpus = cpus
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} {self.host}\n"
            f"user {getpass.getuser()}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 100000\n"
            "set_tcp_nodelay true\n"
            f"log_dest file {workdir / 'mosquitto.log'}\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Broker:
        """Start."""
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop."""
        self.stop()

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts connections."""
        self._proc = subprocess.Popen(
            [find_mosquitto(), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        pin(self._proc.pid, self.cpus)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not accept connections in time")

    def stop(self) -> None:
        """Stop mosquitto."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


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

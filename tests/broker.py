"""A real mosquitto broker and plain paho clients for tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import getpass
import os
from pathlib import Path
import queue
import shutil
import socket
import subprocess
import threading
import time

import paho.mqtt.client as paho

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str:
    """Return the path of the mosquitto binary (scripts/setup installs it)."""
    for candidate in MOSQUITTO_CANDIDATES:
        path = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if path:
            return path
    raise RuntimeError("mosquitto is not installed: run scripts/setup")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mosquitto:
    """A mosquitto process on a loopback port, with a config in its own directory."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        """Prepare a broker in ``workdir``."""
        self.workdir = workdir
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._proc: subprocess.Popen[bytes] | None = None
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} {self.host}\n"
            f"user {getpass.getuser()}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"log_dest file {workdir / 'mosquitto.log'}\n"
        )

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        self._proc = subprocess.Popen(
            [find_mosquitto(), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
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
        """Stop the broker."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    @property
    def running(self) -> bool:
        """Return True while the broker process runs."""
        return self._proc is not None and self._proc.poll() is None


@dataclass(frozen=True, slots=True)
class Message:
    """A message a paho client received."""

    topic: str
    payload: str
    retain: bool


class PahoPeer:
    """A plain paho client: the outside world (a device, a tool) talking to the broker."""

    def __init__(self, broker: Mosquitto, client_id: str = "peer") -> None:
        """Create a client for ``broker``; ``connect`` connects it."""
        self.broker = broker
        self.messages: queue.Queue[Message] = queue.Queue()
        self.handlers: list[Callable[[PahoPeer, Message], None]] = []
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *_args: self._subscribed.set()

    def will(self, topic: str, payload: str, *, retain: bool = True) -> None:
        """Set the last will (before connect)."""
        self._client.will_set(topic, payload, qos=1, retain=retain)

    def connect(self) -> PahoPeer:
        """Connect and start the network thread."""
        self._client.connect(self.broker.host, self.broker.port)
        self._client.loop_start()
        return self

    def close(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def drop(self) -> None:
        """Vanish without a clean disconnect, so the broker sends the last will."""
        sock = self._client.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._client.loop_stop()

    def subscribe(self, topic: str) -> None:
        """Subscribe and wait for the broker's acknowledgement."""
        self._subscribed.clear()
        self._client.subscribe(topic, qos=1)
        if not self._subscribed.wait(5):
            raise TimeoutError(f"no SUBACK for {topic}")

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        """Publish and wait until the broker has it."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)

    def _on_message(self, _client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        message = Message(msg.topic, msg.payload.decode(errors="replace"), bool(msg.retain))
        self.messages.put(message)
        for handler in self.handlers:
            handler(self, message)

    def expect(self, topic: str, timeout: float = 5.0) -> Message:
        """Return the next message on ``topic``, skipping others."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if message.topic == topic:
                return message
        raise TimeoutError(f"no message on {topic}")

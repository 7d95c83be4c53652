"""A real mosquitto broker and plain paho clients for tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import queue
import socket
import threading
import time

import paho.mqtt.client as paho

from simulator.broker import Mosquitto, find_mosquitto, free_port

__all__ = ["Message", "Mosquitto", "PahoPeer", "find_mosquitto", "free_port"]


@dataclass(frozen=True, slots=True)
class Message:
    """A message a paho client received."""

    topic: str
    payload: str
    retain: bool
    qos: int = 0
    """The QoS it was delivered at: the lower of the publisher's and the subscription's."""


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
        message = Message(
            msg.topic, msg.payload.decode(errors="replace"), bool(msg.retain), int(msg.qos)
        )
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

"""Simulated IoTee-compatible devices speaking the MQTT contracts of the three device types.

See the package docstring (``simulator/__init__.py``) for the API and the behaviour of each mode.

Threads per started device: paho's network thread (``loop_start``) and one "firmware" thread that
runs every action of the device in order, at its due time (answers, pulses, reboots). Network
callbacks only hand work to the firmware thread, so delays and pulses never block the network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
import contextlib
from dataclasses import dataclass, field
from enum import StrEnum
import heapq
import itertools
import json
import logging
import re
import socket
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

_LOGGER = logging.getLogger("simulator")

_POWER = re.compile(r"POWER(\d+)")
_KEEPALIVE = 30
_RECOVER_AFTER = 1.0
_PUBLISH_TIMEOUT = 5.0


class Kind(StrEnum):
    """The device types the simulator speaks (the names of the integration's device types)."""

    IOTEE_DEVICE = "iotee_device"
    WLTE_RELAY = "wlte_relay"
    TASMOTA = "tasmota"
    SHELLY_GEN2 = "shelly_gen2"
    ZIGBEE2MQTT_LOCK = "zigbee2mqtt_lock"
    ZIGBEE2MQTT_SWITCH = "zigbee2mqtt_switch"
    ESPHOME_LOCK = "esphome_lock"
    ESPHOME_SWITCH = "esphome_switch"

    @property
    def is_lock(self) -> bool:
        """Return True for kinds that are a lock (no relays)."""
        return self in (Kind.IOTEE_DEVICE, Kind.ZIGBEE2MQTT_LOCK, Kind.ESPHOME_LOCK)


FAMILIES: dict[Kind, type[SimulatedDevice]] = {}
"""The subclasses speaking the families' contracts (filled by ``simulator.families``)."""


class Mode(StrEnum):
    """How a simulated device answers commands."""

    NORMAL = "normal"
    """Act and confirm as the contract says."""
    FAIL = "fail"
    """WLTE: ACK then FAILED. Lock/Tasmota/reboot: nothing changes; the old state is reported."""
    REJECT = "reject"
    """WLTE: REJECTED with a reason. Lock/Tasmota/reboot: no answer at all (as silent)."""
    SILENT = "silent"
    """Commands arrive but are never answered."""
    OFFLINE = "offline"
    """The device is gone: its connection drops and the broker publishes the last will."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How a device behaves; change it at run time with ``SimulatedDevice.set_behaviour``."""

    delay: float = 0.0
    """Seconds between receiving a command and acting on it (a slow device)."""
    mode: Mode = Mode.NORMAL
    """See ``Mode``."""
    pulse: float = 0.5
    """Seconds a relay stays on for a WLTE JOG or a Tasmota PulseTime relay."""
    reboot_delay: float = 0.5
    """Seconds between going offline and coming back online on a reboot."""

    def __post_init__(self) -> None:
        """Accept the mode as a plain string and refuse negative times."""
        object.__setattr__(self, "mode", Mode(self.mode))
        for name in ("delay", "pulse", "reboot_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


class _Firmware:
    """One thread running callables in due-time order: the device's own processing loop."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        with self._cond:
            self._stopping = False
            self._queue.clear()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def call_later(self, delay: float, func: Callable[[], None]) -> None:
        """Run ``func`` on the firmware thread after ``delay`` seconds (dropped once stopped)."""
        with self._cond:
            if self._thread is None or self._stopping:
                return
            due = time.monotonic() + max(delay, 0.0)
            heapq.heappush(self._queue, (due, next(self._counter), func))
            self._cond.notify()

    def stop(self) -> None:
        """Drop pending work and wait for the thread to end."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._queue.clear()
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    wait: float | None = None
                    if self._queue:
                        wait = self._queue[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                    self._cond.wait(wait)
                if self._stopping:
                    return
                _due, _seq, func = heapq.heappop(self._queue)
            try:
                func()
            except Exception:
                _LOGGER.exception("%s: action failed", self._name)


@dataclass(eq=False)
class _Session:
    """One MQTT connection of a device, from connect to disconnect."""

    client: paho.Client
    online: bool
    """False: the session only announces "offline" (a device started in offline mode)."""
    ready: threading.Event = field(default_factory=threading.Event)
    pending: list[paho.MQTTMessageInfo | None] = field(default_factory=list)
    closing: bool = False
    thread: threading.Thread | None = None


class SimulatedDevice:
    """One simulated device on a broker; see the package docstring for the contracts.

    ``SimulatedDevice(kind, ...)`` builds the family's subclass for the kinds of
    ``simulator.families`` (Shelly, Zigbee2MQTT, ESPHome).
    """

    def __new__(cls, kind: Kind | str, *_args: object, **_kwargs: object) -> SimulatedDevice:
        """Return an instance of the class speaking ``kind``'s contract."""
        chosen = cls
        if cls is SimulatedDevice and kind in FAMILIES:  # an unknown kind: __init__ says so
            chosen = FAMILIES[Kind(kind)]
        return super().__new__(chosen)

    def __init__(
        self,
        kind: Kind | str,
        device_id: str,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        relays: int = 1,
        behaviour: Behaviour | None = None,
        pulse_relays: Iterable[int] = (),
        client_id: str | None = None,
        base_topic: str = "zigbee2mqtt",
        object_ids: Iterable[str] = (),
    ) -> None:
        """Describe a device; ``start`` connects it.

        ``device_id`` is the id in the device's topics (hardware id, WLTE device id or Tasmota
        topic). ``relays`` is the relay count (ignored for iotee_device). ``pulse_relays`` lists
        the Tasmota relays with a PulseTime configured: an ON there turns OFF after
        ``behaviour.pulse`` seconds. ``base_topic`` is Zigbee2MQTT's; ``object_ids`` name the
        ESPHome entities (the lock's, or one switch per relay; default ``lock``/``relay_<n>``).
        """
        self.kind = Kind(kind)
        if not device_id or any(char in device_id for char in "/+#"):
            raise ValueError(f"invalid device id {device_id!r}")
        if relays < 1:
            raise ValueError("relays must be at least 1")
        self.device_id = device_id
        self.host = host
        self.port = port
        self.relays = 0 if self.kind.is_lock else relays
        self.base_topic = base_topic
        self.object_ids = tuple(object_ids)
        self.pulse_relays = frozenset(pulse_relays)
        if not self.pulse_relays <= set(range(1, self.relays + 1)):
            raise ValueError(f"pulse_relays must be among the relays 1..{self.relays}")
        self.client_id = client_id or f"sim-{self.kind}-{device_id}"
        self._behaviour = behaviour or Behaviour()
        self._behaviour_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._locked = True
        self._relay_on = dict.fromkeys(range(1, self.relays + 1), False)
        self._relay_gen = dict.fromkeys(range(1, self.relays + 1), 0)
        self._session_lock = threading.RLock()
        self._session: _Session | None = None
        self._started = False
        self._rebooting = False
        self._firmware = _Firmware(f"simulator-{self.kind}-{device_id}")
        self.availability_topic = ""
        self.payload_online = self.payload_offline = ""
        self._subscriptions: list[str] = []
        self._contract()

    def _contract(self) -> None:
        """Set the availability topic and payloads and the command subscriptions."""
        device_id = self.device_id
        base = {
            Kind.IOTEE_DEVICE: f"iotee/dev/{device_id}",
            Kind.WLTE_RELAY: f"wlte/{device_id}",
            Kind.TASMOTA: f"tele/{device_id}",
        }[self.kind]
        if self.kind is Kind.TASMOTA:
            self.availability_topic = f"{base}/LWT"
            self.payload_online, self.payload_offline = "Online", "Offline"
            self._subscriptions = [f"cmnd/{device_id}/+"]
        else:
            self.availability_topic = f"{base}/status"
            self.payload_online, self.payload_offline = "online", "offline"
            self._subscriptions = (
                [f"{base}/rls", f"{base}/rbt"]
                if self.kind is Kind.IOTEE_DEVICE
                else [f"{base}/relay/+/set"]
            )

    def __repr__(self) -> str:
        """Return ``kind:device_id``."""
        return f"{self.kind}:{self.device_id}"

    def __enter__(self) -> SimulatedDevice:
        """Start the device."""
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        """Stop the device cleanly."""
        self.stop()

    # ---------------------------------------------------------------- public API

    @property
    def behaviour(self) -> Behaviour:
        """Return the current behaviour."""
        with self._behaviour_lock:
            return self._behaviour

    def set_behaviour(
        self,
        behaviour: Behaviour | None = None,
        *,
        delay: float | None = None,
        mode: Mode | str | None = None,
        pulse: float | None = None,
        reboot_delay: float | None = None,
        timeout: float = 10.0,
    ) -> Behaviour:
        """Replace the behaviour (thread-safe); return the new one.

        Starts from ``behaviour`` (or the current one) and applies the given fields. Commands
        already received keep the behaviour they arrived under. Switching to ``offline`` drops
        the connection (the broker publishes the last will); switching back reconnects and
        waits up to ``timeout`` seconds until the device is online again.
        """
        with self._behaviour_lock:
            base = behaviour or self._behaviour
            new = self._behaviour = Behaviour(
                delay=base.delay if delay is None else delay,
                mode=base.mode if mode is None else Mode(mode),
                pulse=base.pulse if pulse is None else pulse,
                reboot_delay=base.reboot_delay if reboot_delay is None else reboot_delay,
            )
        _LOGGER.info("%s behaviour: %s", self, new)
        self._apply_availability(timeout)
        return new

    @property
    def state(self) -> dict[str, bool]:
        """Return a snapshot: ``{"lock": locked}`` or ``{"relay1": on, "relay2": on, ...}``."""
        with self._state_lock:
            if self.kind.is_lock:
                return {"lock": self._locked}
            return {f"relay{index}": on for index, on in self._relay_on.items()}

    @property
    def online(self) -> bool:
        """Return True while connected and announced online."""
        session = self._session
        return (
            session is not None
            and session.online
            and session.ready.is_set()
            and session.client.is_connected()
        )

    def start(self, timeout: float = 10.0) -> SimulatedDevice:
        """Connect (with the last will), subscribe, publish availability and state; return self.

        Waits until the broker has the announcements. In ``offline`` mode the device only
        publishes its retained offline availability and stays disconnected. Raises
        ``TimeoutError`` when the broker cannot be reached within ``timeout`` seconds.
        """
        with self._session_lock:
            if self._started:
                raise RuntimeError(f"{self} is already started")
            self._started = True
            self._rebooting = False
            self._firmware.start()
            online = self.behaviour.mode is not Mode.OFFLINE
            session = self._open_session(online=online)
        try:
            self._wait_ready(session, timeout)
        except BaseException:
            self.stop(clean=False)
            raise
        if not online:
            with self._session_lock:
                if self._session is session:
                    self._session = None
                    self._close_session(session, clean=True)
        return self

    def stop(self, clean: bool = True) -> None:
        """Stop the device and its threads.

        ``clean``: publish the retained offline availability, then disconnect. Otherwise drop
        the socket without a DISCONNECT, so the broker publishes the last will.
        """
        with self._session_lock:
            if not self._started:
                return
            self._started = False
        self._firmware.stop()
        with self._session_lock:
            session, self._session = self._session, None
            if session is not None:
                self._close_session(session, clean=clean)
        _LOGGER.info("%s stopped (%s)", self, "clean" if clean else "connection dropped")

    # ---------------------------------------------------------------- connection handling

    def _open_session(self, *, online: bool) -> _Session:
        """Make a new client the current session and connect it in the background.

        The caller holds the session lock. The session becomes current before the network thread
        starts, so its callbacks always find it current.
        """
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            reconnect_on_failure=False,
        )
        client.will_set(self.availability_topic, self.payload_offline, qos=1, retain=True)
        client.reconnect_delay_set(1, 2)
        session = _Session(client, online)

        def on_pre_connect(_client: paho.Client, _userdata: object) -> None:
            session.thread = threading.current_thread()

        def on_connect(
            client: paho.Client,
            _userdata: object,
            _flags: paho.ConnectFlags,
            reason_code: ReasonCode,
            _properties: Properties | None,
        ) -> None:
            if reason_code.is_failure:
                _LOGGER.warning("%s: connection refused: %s", self, reason_code)
                return
            if not session.online:
                session.pending = [
                    self._publish(
                        self.availability_topic, self.payload_offline, retain=True, session=session
                    )
                ]
                session.ready.set()
                return
            client.subscribe([(topic, 1) for topic in self._subscriptions])

        def on_subscribe(
            _client: paho.Client,
            _userdata: object,
            _mid: int,
            _reason_codes: list[ReasonCode],
            _properties: Properties | None,
        ) -> None:
            self._firmware.call_later(0.0, lambda: self._announce(session))

        def on_disconnect(
            _client: paho.Client,
            _userdata: object,
            _flags: paho.DisconnectFlags,
            reason_code: ReasonCode,
            _properties: Properties | None,
        ) -> None:
            if session.closing:
                return
            _LOGGER.warning("%s: connection lost (%s); reconnecting", self, reason_code)
            self._firmware.call_later(_RECOVER_AFTER, lambda: self._recover(session))

        client.on_pre_connect = on_pre_connect
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_disconnect = on_disconnect
        client.on_message = self._on_message
        self._session = session
        client.connect_async(self.host, self.port, keepalive=_KEEPALIVE)
        client.loop_start()
        return session

    def _wait_ready(self, session: _Session, timeout: float) -> None:
        """Wait until ``session`` is connected and the broker has its announcements."""
        deadline = time.monotonic() + timeout
        if not session.ready.wait(timeout):
            raise TimeoutError(f"{self}: no connection to {self.host}:{self.port}")
        for info in session.pending:
            if info is not None:
                info.wait_for_publish(max(deadline - time.monotonic(), 0.1))

    def _close_session(self, session: _Session, *, clean: bool) -> None:
        """End ``session``: cleanly (offline, DISCONNECT) or by dropping the socket."""
        session.closing = True
        client = session.client
        if clean:
            if session.online and client.is_connected():
                info = self._publish(
                    self.availability_topic, self.payload_offline, retain=True, session=session
                )
                try:
                    if info is not None:
                        info.wait_for_publish(_PUBLISH_TIMEOUT)
                except (RuntimeError, ValueError) as err:
                    _LOGGER.warning("%s: offline not delivered: %s", self, err)
            client.disconnect()
        else:
            sock = client.socket()
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        client.loop_stop()
        if session.thread is not None and session.thread is not threading.current_thread():
            session.thread.join(_PUBLISH_TIMEOUT)

    def _announce(self, session: _Session) -> None:
        """Firmware thread: publish availability online and the current state (retained)."""
        if session is not self._session or session.closing:
            return
        pending = [
            self._publish(
                self.availability_topic, self.payload_online, retain=True, session=session
            )
        ]
        pending.extend(self._announce_state(session))
        session.pending = pending
        session.ready.set()

    def _announce_state(self, session: _Session) -> list[paho.MQTTMessageInfo | None]:
        """Publish the state a device announces when it connects."""
        if self.kind is Kind.IOTEE_DEVICE:
            return [self._publish_lock(session)]
        return [self._publish_relay(index, session) for index in self._relay_on]

    def _apply_availability(self, timeout: float) -> None:
        """Connect or drop the connection to match the current mode."""
        offline = self.behaviour.mode is Mode.OFFLINE
        with self._session_lock:
            if not self._started:
                return
            session = self._session
            if offline and session is not None:
                _LOGGER.info("%s going offline (connection dropped)", self)
                self._session = None
                self._close_session(session, clean=False)
                return
            if offline or session is not None or self._rebooting:
                return
            session = self._open_session(online=True)
        self._wait_ready(session, timeout)

    def _recover(self, session: _Session) -> None:
        """Firmware thread: reconnect after an unexpected connection loss."""
        with self._session_lock:
            if session is not self._session or not self._started:
                return
            self._close_session(session, clean=False)
            fresh = self._open_session(online=True)
        # Real devices keep trying: while the broker is still down, try again.
        self._firmware.call_later(_RECOVER_AFTER * 2, lambda: self._retry_recover(fresh))

    def _retry_recover(self, session: _Session) -> None:
        """Firmware thread: reconnect again if ``session`` never got through."""
        if not session.ready.is_set():
            self._recover(session)

    def _reboot(self, reboot_delay: float) -> None:
        """Firmware thread: go offline cleanly, then come back after ``reboot_delay``."""
        with self._session_lock:
            session = self._session
            if not self._started or session is None:
                return
            _LOGGER.info("%s rebooting (back in %.2f s)", self, reboot_delay)
            self._rebooting = True
            self._session = None
            self._close_session(session, clean=True)
        self._firmware.call_later(reboot_delay, self._come_back)

    def _come_back(self) -> None:
        """Firmware thread: reconnect at the end of a reboot."""
        with self._session_lock:
            self._rebooting = False
            if not self._started or self._session is not None:
                return
            if self.behaviour.mode is Mode.OFFLINE:
                return
            _LOGGER.info("%s booted, reconnecting", self)
            self._open_session(online=True)

    # ---------------------------------------------------------------- publishing

    def _publish(
        self, topic: str, payload: str, *, retain: bool, session: _Session | None = None
    ) -> paho.MQTTMessageInfo | None:
        """Publish with QoS 1 on ``session`` (default: the current one) and log it.

        Returns None when the device has no connection (rebooting or offline).
        """
        session = session or self._session
        if session is None:
            _LOGGER.info("%s -> %s %s (not sent: offline)", self, topic, payload)
            return None
        _LOGGER.info("%s -> %s %s%s", self, topic, payload, " (retained)" if retain else "")
        return session.client.publish(topic, payload, qos=1, retain=retain)

    def _publish_lock(self, session: _Session | None = None) -> paho.MQTTMessageInfo | None:
        with self._state_lock:
            payload = "1" if self._locked else "0"
        return self._publish(
            f"iotee/dev/{self.device_id}/rls/state", payload, retain=True, session=session
        )

    def _publish_relay(
        self, index: int, session: _Session | None = None
    ) -> paho.MQTTMessageInfo | None:
        with self._state_lock:
            payload = "ON" if self._relay_on[index] else "OFF"
        if self.kind is Kind.TASMOTA:
            return self._publish(
                f"stat/{self.device_id}/POWER{index}", payload, retain=False, session=session
            )
        return self._publish(
            f"wlte/{self.device_id}/relay/{index}/state", payload, retain=True, session=session
        )

    def _publish_availability(self) -> None:
        self._publish(self.availability_topic, self.payload_online, retain=True)

    def _set_relay(self, index: int, on: bool) -> int:
        """Switch a relay; return its new generation (pulses end only their own switch-on)."""
        with self._state_lock:
            self._relay_on[index] = on
            self._relay_gen[index] += 1
            return self._relay_gen[index]

    def _end_pulse(self, index: int, generation: int) -> None:
        """Switch the relay off unless something switched it since the pulse began."""
        with self._state_lock:
            current = self._relay_gen[index] == generation
        if current:
            self._set_relay(index, False)
            self._publish_relay(index)

    # ---------------------------------------------------------------- commands

    def _on_message(self, _client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        """Network thread: log the command and hand it to the firmware thread."""
        payload = msg.payload.decode(errors="replace")
        behaviour = self.behaviour
        _LOGGER.info("%s <- %s %s", self, msg.topic, payload)
        if behaviour.mode in (Mode.SILENT, Mode.OFFLINE):
            _LOGGER.info("%s    (%s: no answer)", self, behaviour.mode)
            return
        handler = self._handler()
        self._firmware.call_later(behaviour.delay, lambda: handler(msg.topic, payload, behaviour))

    def _handler(self) -> Callable[[str, str, Behaviour], None]:
        """Return what handles a command message (topic, payload, behaviour)."""
        return {
            Kind.IOTEE_DEVICE: self._handle_iotee,
            Kind.WLTE_RELAY: self._handle_wlte,
            Kind.TASMOTA: self._handle_tasmota,
        }[self.kind]

    def _reboot_command(self, behaviour: Behaviour) -> None:
        if behaviour.mode is Mode.REJECT:
            _LOGGER.info("%s    (reject: reboot ignored, no answer)", self)
        elif behaviour.mode is Mode.FAIL:
            _LOGGER.info("%s    (fail: no reboot, availability unchanged)", self)
            self._publish_availability()
        else:
            self._reboot(behaviour.reboot_delay)

    def _handle_iotee(self, topic: str, payload: str, behaviour: Behaviour) -> None:
        if topic.endswith("/rbt"):
            if payload == "1":
                self._reboot_command(behaviour)
            else:
                _LOGGER.info("%s    (ignored: reboot payload must be 1)", self)
            return
        if payload not in ("0", "1"):
            _LOGGER.info("%s    (ignored: lock payload must be 1 or 0)", self)
            return
        if behaviour.mode is Mode.REJECT:
            _LOGGER.info("%s    (reject: no answer)", self)
            return
        if behaviour.mode is Mode.FAIL:
            _LOGGER.info("%s    (fail: lock unchanged)", self)
        else:
            with self._state_lock:
                self._locked = payload == "1"
        self._publish_lock()

    def _handle_wlte(self, topic: str, payload: str, behaviour: Behaviour) -> None:
        relay_text = topic.split("/")[3]
        result_topic = f"wlte/{self.device_id}/relay/{relay_text}/result"
        try:
            command = json.loads(payload)
        except ValueError:
            command = None
        if not isinstance(command, dict) or not isinstance(command.get("id"), str | int):
            _LOGGER.info("%s    (ignored: no readable command id)", self)
            return
        command_id: str | int = command["id"]

        def answer(status: str, reason: str | None = None) -> None:
            result = {"id": command_id, "status": status, "reason": reason}
            self._publish(result_topic, json.dumps(result), retain=False)

        action = command.get("action")
        index = int(relay_text) if relay_text.isdecimal() else 0
        if not 1 <= index <= self.relays:
            answer("REJECTED", f"unknown relay {relay_text}: relays are 1..{self.relays}")
        elif action not in ("ON", "OFF", "JOG"):
            answer("REJECTED", f"unknown action {action!r}: expected ON, OFF or JOG")
        elif behaviour.mode is Mode.REJECT:
            answer("REJECTED", "rejected by the device (simulated)")
        elif behaviour.mode is Mode.FAIL:
            answer("ACK")
            answer("FAILED", "relay did not switch (simulated failure)")
        elif action == "JOG":
            answer("ACK")
            generation = self._set_relay(index, True)
            self._publish_relay(index)

            def end_jog() -> None:
                self._end_pulse(index, generation)
                answer("SUCCESS")

            self._firmware.call_later(behaviour.pulse, end_jog)
        else:
            answer("ACK")
            self._set_relay(index, action == "ON")
            self._publish_relay(index)
            answer("SUCCESS")

    def _handle_tasmota(self, topic: str, payload: str, behaviour: Behaviour) -> None:
        command = topic.rsplit("/", 1)[1].upper()
        if command == "RESTART":
            if payload.strip() == "1":
                self._reboot_command(behaviour)
            else:
                _LOGGER.info("%s    (ignored: only Restart 1 is simulated)", self)
            return
        match = _POWER.fullmatch(command)
        index = int(match[1]) if match else 0
        if not 1 <= index <= self.relays:
            _LOGGER.info("%s    (ignored: unknown command %s)", self, command)
            return
        word = payload.strip().upper()
        with self._state_lock:
            current = self._relay_on[index]
        target: bool | None
        if word in ("ON", "1"):
            target = True
        elif word in ("OFF", "0"):
            target = False
        elif word in ("TOGGLE", "2"):
            target = not current
        elif not word:
            target = None  # a query: report the state
        else:
            _LOGGER.info("%s    (ignored: unknown POWER payload %r)", self, payload)
            return
        if behaviour.mode is Mode.REJECT:
            _LOGGER.info("%s    (reject: no answer)", self)
            return
        if target is not None and behaviour.mode is Mode.FAIL:
            _LOGGER.info("%s    (fail: relay %d unchanged)", self, index)
        elif target is not None:
            generation = self._set_relay(index, target)
            if target and index in self.pulse_relays:
                self._firmware.call_later(
                    behaviour.pulse, lambda: self._end_pulse(index, generation)
                )
        self._publish_relay(index)

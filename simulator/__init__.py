"""Simulated MQTT devices for IoTee: every device type, following its contract exactly.

API (all in ``simulator.devices``, re-exported here)::

    device = SimulatedDevice(kind, device_id, host="127.0.0.1", port=1883, *, relays=1,
                             behaviour=Behaviour(), pulse_relays=(), client_id=None)
    device.start(timeout=10.0)        # connect with last will, subscribe, announce; returns device
    device.stop(clean=True)           # clean: offline then DISCONNECT; False: drop -> last will
    device.set_behaviour(mode=Mode.FAIL, delay=0.2)   # thread-safe, at run time
    device.behaviour                  # the current Behaviour
    device.state                      # {"lock": True} or {"relay1": False, "relay2": True, ...}
    device.online                     # connected and announced
    device.availability_topic, device.payload_online, device.payload_offline
    with SimulatedDevice(...) as device: ...          # start / stop(clean=True)

``kind`` is a ``Kind`` (or its value): ``iotee_device`` (``device_id`` = hardware id H),
``wlte_relay`` (device id D, relays 1..N) or ``tasmota`` (topic T, relays 1..N).
``Behaviour(delay=0.0, mode=Mode.NORMAL, pulse=0.5, reboot_delay=0.5)``; ``Mode`` is one of
``normal``, ``fail``, ``reject``, ``silent``, ``offline``.

Contracts (every publish QoS 1; availability is retained with the offline payload as last will):

- ``iotee_device``: availability ``iotee/dev/H/status`` ``online``/``offline``. ``1``/``0`` on
  ``iotee/dev/H/rls`` locks/unlocks, then the lock state ``1``/``0`` is published retained on
  ``iotee/dev/H/rls/state``. ``1`` on ``iotee/dev/H/rbt`` reboots: ``offline`` (retained),
  disconnect, ``reboot_delay`` seconds, reconnect, ``online``. Starts locked.
- ``wlte_relay``: availability ``wlte/D/status``. ``wlte/D/relay/{i}/set`` takes
  ``{"id": ..., "action": "ON"|"OFF"|"JOG"}``; results ``{"id", "status", "reason"}`` go to
  ``wlte/D/relay/{i}/result`` (not retained): ACK then SUCCESS, with the relay state ``ON``/``OFF``
  retained on ``wlte/D/relay/{i}/state`` in between. JOG: ON, ``pulse`` seconds, OFF, SUCCESS.
  An unknown action, a relay outside 1..N or a malformed command gives REJECTED with a reason
  (commands without a readable id are ignored).
- ``tasmota``: availability ``tele/T/LWT`` ``Online``/``Offline``. ``cmnd/T/POWER{i}`` takes
  ``ON``/``OFF``/``TOGGLE`` (or ``1``/``0``/``2``; empty = query) and answers ``stat/T/POWER{i}``
  ``ON``/``OFF`` (not retained). Relays in ``pulse_relays`` (Tasmota PulseTime) turn OFF again
  ``pulse`` seconds after an ON, with a second ``stat`` message. ``cmnd/T/Restart 1`` reboots
  (``Offline``, reconnect, ``Online``).

Modes: ``normal`` as above. ``fail``: WLTE answers ACK then FAILED; the lock, Tasmota relays and
reboots do not change and the device reports the unchanged state. ``reject``: WLTE answers
REJECTED with a reason; the others stay silent. ``silent``: commands are never answered.
``offline``: the connection is dropped so the broker publishes the last will (a device started
offline publishes its retained offline availability and stays disconnected); setting another
mode reconnects. ``delay`` postpones every answer; commands keep the behaviour they arrived
under. The state is announced (retained, except Tasmota's ``stat``) whenever the device connects.

The families (Shelly Gen2+, Zigbee2MQTT, ESPHome) are in ``simulator.families``, which see:
``SimulatedDevice(Kind.SHELLY_GEN2, "shellyplus2pm-a1", relays=2)`` builds one, with the same API;
``base_topic`` (Zigbee2MQTT) and ``object_ids`` (ESPHome) are keyword arguments.

Command line: ``python -m simulator --host 127.0.0.1 --port 1883 --device iotee_device:ABC123
--device wlte_relay:abc123456789:4 --device tasmota:tasmota_1:2:pulse=1`` (see ``--help``).
"""

from __future__ import annotations

from . import families as _families  # noqa: F401  (registers the families' classes)
from .devices import Behaviour, Kind, Mode, SimulatedDevice

__all__ = ["Behaviour", "Kind", "Mode", "SimulatedDevice"]

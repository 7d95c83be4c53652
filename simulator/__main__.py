"""Run simulated devices against a broker until Ctrl-C or SIGTERM.

Example::

    python -m simulator --host 127.0.0.1 --port 1883 \\
        --device iotee_device:ABC123 --device wlte_relay:abc123456789:4 \\
        --device tasmota:tasmota_1:2:pulse=1 --delay 0.2 --mode normal

A device is ``KIND:ID[:RELAYS[:pulse=I,J]]``; ``pulse=`` (tasmota) lists the relays with a
PulseTime. Every command received and every answer is logged; on exit each device publishes its
offline availability and disconnects. Zigbee2MQTT devices come with their bridge's retained
``zigbee2mqtt/bridge/devices`` list.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
import logging
import signal
import threading
from types import FrameType

from .devices import Behaviour, Kind, Mode, SimulatedDevice
from .families import Zigbee2MqttBridge, Zigbee2MqttDevice

_LOGGER = logging.getLogger("simulator")


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One ``--device`` argument."""

    kind: Kind
    device_id: str
    relays: int = 1
    pulse_relays: tuple[int, ...] = ()


def parse_device(text: str) -> DeviceSpec:
    """Parse ``KIND:ID[:RELAYS[:pulse=I,J]]``."""
    parts = text.split(":")
    if len(parts) < 2 or len(parts) > 4 or not parts[1]:
        raise argparse.ArgumentTypeError(f"expected KIND:ID[:RELAYS[:pulse=I,J]], got {text!r}")
    try:
        kind = Kind(parts[0])
    except ValueError:
        kinds = ", ".join(Kind)
        raise argparse.ArgumentTypeError(f"unknown kind {parts[0]!r} (one of {kinds})") from None
    relays = 1
    pulse: tuple[int, ...] = ()
    try:
        if len(parts) > 2:
            relays = int(parts[2])
        if len(parts) > 3:
            if not parts[3].startswith("pulse="):
                raise ValueError(parts[3])
            pulse = tuple(int(index) for index in parts[3].removeprefix("pulse=").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad relay count or pulse list in {text!r}") from None
    if kind.is_lock and (len(parts) > 2):
        raise argparse.ArgumentTypeError(f"{kind} takes no relay count")
    if pulse and kind is not Kind.TASMOTA:
        raise argparse.ArgumentTypeError("pulse= applies to tasmota devices only")
    return DeviceSpec(kind, parts[1], relays, pulse)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description="Simulated IoTee MQTT devices."
    )
    parser.add_argument("--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1883, help="broker port (default 1883)")
    parser.add_argument(
        "--device",
        dest="devices",
        action="append",
        type=parse_device,
        required=True,
        metavar="KIND:ID[:RELAYS[:pulse=I,J]]",
        help="a device to simulate (repeatable); KIND is one of " + ", ".join(Kind),
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--mode", choices=[mode.value for mode in Mode], default=Mode.NORMAL.value)
    parser.add_argument("--pulse", type=float, default=0.5, help="JOG / PulseTime seconds")
    parser.add_argument("--reboot-delay", type=float, default=0.5, help="seconds offline on reboot")
    parser.add_argument(
        "--connect-timeout", type=float, default=30.0, help="seconds to wait for the broker"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the devices until SIGINT or SIGTERM; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    behaviour = Behaviour(
        delay=args.delay, mode=Mode(args.mode), pulse=args.pulse, reboot_delay=args.reboot_delay
    )
    done = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        _LOGGER.info("%s received, stopping", signal.Signals(signum).name)
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    devices: list[SimulatedDevice] = []
    bridge: Zigbee2MqttBridge | None = None
    try:
        for spec in args.devices:
            device = SimulatedDevice(
                spec.kind,
                spec.device_id,
                args.host,
                args.port,
                relays=spec.relays,
                behaviour=behaviour,
                pulse_relays=spec.pulse_relays,
            )
            device.start(timeout=args.connect_timeout)
            devices.append(device)
            _LOGGER.info("%s started on %s:%d", device, args.host, args.port)
        zigbee = [device for device in devices if isinstance(device, Zigbee2MqttDevice)]
        if zigbee:
            bridge = Zigbee2MqttBridge(args.host, args.port, zigbee).start(args.connect_timeout)
        _LOGGER.info("running %d device(s); Ctrl-C to stop", len(devices))
        while not done.wait(1.0):
            pass
    except (TimeoutError, ValueError) as err:
        _LOGGER.error("%s", err)
        return 1
    finally:
        if bridge is not None:
            bridge.stop()
        for device in reversed(devices):
            device.stop(clean=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

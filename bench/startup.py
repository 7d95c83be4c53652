"""Row 5: Home Assistant's startup with the IoTee hub holding 500 devices, against none.

Each variant gets its own config directory and broker. The devices' retained availability and
states are in the broker before HA starts, as on a real box after a restart, so that startup
includes IoTee taking in what every device last said. One warm-up boot per variant creates the
device and entity registries (a real restart finds them on disk); then the measured boots
alternate between the variants, each in a fresh process (``python -m bench.stage boot``).
"""

from __future__ import annotations

from .hassenv import Device


def startup_devices(count: int) -> list[Device]:
    """``count`` devices: 40 % locks, 40 % 4-relay WLTE controllers, 20 % 2-relay Tasmotas."""
    devices: list[Device] = []
    for index in range(count):
        kind = index % 5
        if kind < 2:
            devices.append(Device(f"LOCK{index:04d}", "iotee_device"))
        elif kind < 4:
            devices.append(Device(f"wlte{index:08d}", "wlte_relay", 4))
        else:
            devices.append(Device(f"tasmota_{index:04d}", "tasmota", 2, f"tasmota{index:04d}"))
    return devices


def retained_messages(devices: list[Device]) -> list[tuple[str, str]]:
    """What the devices left retained in the broker: availability and states."""
    messages: list[tuple[str, str]] = []
    for device in devices:
        if device.device_type == "iotee_device":
            messages.append((f"iotee/dev/{device.hardware_id}/status", "online"))
            messages.append((f"iotee/dev/{device.hardware_id}/rls/state", "1"))
        elif device.device_type == "wlte_relay":
            messages.append((f"wlte/{device.hardware_id}/status", "online"))
            messages += [
                (f"wlte/{device.hardware_id}/relay/{relay}/state", "OFF")
                for relay in range(1, device.relays + 1)
            ]
        else:
            messages.append((f"tele/{device.mqtt_topic}/LWT", "Online"))
    return messages

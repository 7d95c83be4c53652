"""The network settings a runtime stage runs under: stock, broker tuned, everything tuned.

``stock`` is what users run: mosquitto's default configuration, paho's sockets as HA and the
devices open them (Nagle's algorithm on), Home Assistant free to use every CPU. ``broker`` changes
one thing, the setting README's install section recommends (``set_tcp_nodelay true``);
``devices`` adds devices that turn Nagle off themselves; ``qos1`` is ``broker`` with IoTee's
command QoS 1 (a hub option; the default, automatic, publishes a command its device confirms at
QoS 0), the devices and HA untouched. ``tuned`` is the benchmark's earlier
world: Nagle off on the broker, on HA's MQTT client socket and on the simulated devices, and Home
Assistant pinned to one core for the whole stage.
"""

from __future__ import annotations

from dataclasses import dataclass
import os


@dataclass(frozen=True, slots=True)
class Network:
    """Which socket options and CPU pinning a runtime stage uses."""

    name: str
    title: str
    broker_nodelay: bool = False
    ha_nodelay: bool = False
    devices_nodelay: bool = False
    pin_ha: bool = False
    """Home Assistant on one core for the whole stage (otherwise only for the throughput row)."""
    command_qos: str | int = "auto"
    """The hub's command QoS option (automatic, its default: QoS 0 for a command the device
    confirms, as every command of the benchmark's devices; 1: the broker acknowledges each)."""


STOCK = Network("stock", "stock mosquitto, no socket option touched, HA not pinned")
BROKER = Network(
    "broker", "mosquitto `set_tcp_nodelay true`, nothing else touched", broker_nodelay=True
)
DEVICES = Network(
    "devices",
    "mosquitto `set_tcp_nodelay true` and devices with Nagle off; HA untouched, not pinned",
    broker_nodelay=True,
    devices_nodelay=True,
)
TUNED = Network(
    "tuned",
    "TCP_NODELAY on broker, HA's MQTT socket and devices; HA pinned to one core",
    broker_nodelay=True,
    ha_nodelay=True,
    devices_nodelay=True,
    pin_ha=True,
)
QOS1 = Network(
    "qos1",
    "mosquitto `set_tcp_nodelay true` and IoTee's command QoS 1; devices and HA untouched",
    broker_nodelay=True,
    command_qos=1,
)
NETWORKS = {network.name: network for network in (STOCK, BROKER, DEVICES, TUNED, QOS1)}


def pin_threads(cpus: set[int]) -> None:
    """Restrict every thread of this process to ``cpus`` (threads started later inherit it)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:  # the thread ended meanwhile
            continue

"""Real Home Assistant instances for the benchmark: config directories, boot, stop, credentials.

A config directory gets a ``configuration.yaml`` (HTTP on a free loopback port, HA's REST API),
``custom_components/iotee`` linked to this checkout, and ``.storage/core.config_entries`` holding
HA's MQTT integration (pointing at the benchmark's broker) and the IoTee hub with its devices, as
the UI would have stored them. ``async_boot`` then starts HA exactly as ``hass`` does (bootstrap,
default integrations, config entries), inside the calling process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
import json
from pathlib import Path
import time
from types import MappingProxyType
from typing import Any

from homeassistant import bootstrap, config_entries, runner
from homeassistant.auth.const import GROUP_ID_ADMIN
from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN
from homeassistant.components.http import config as http_config
from homeassistant.config_entries import ConfigEntry, ConfigSubentryData
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers.json import JSONEncoder

from custom_components.iotee.const import (
    CONF_COMMAND_TIMEOUT,
    CONF_DEVICE_TYPE,
    CONF_HARDWARE_ID,
    CONF_MQTT_TOPIC,
    CONF_RATE_CALLER,
    CONF_RATE_DEVICE,
    CONF_RELAY_COOLDOWN,
    CONF_RELAY_LOCKS,
    CONF_RELAYS,
    CONF_RETENTION_DAYS,
    CONF_SYNC_WAIT,
    DOMAIN,
    SUBENTRY_DEVICE,
)
from custom_components.iotee.core.delivery_rules import KEY_QUEUE_MINUTES

REPO = Path(__file__).resolve().parent.parent

BENCH_OPTIONS: dict[str, Any] = {
    CONF_COMMAND_TIMEOUT: 10.0,
    CONF_SYNC_WAIT: 10.0,
    CONF_RETENTION_DAYS: 90,
    # The benchmark sends far more than a person would: limits as high as the options allow.
    CONF_RATE_CALLER: 100000,
    CONF_RATE_DEVICE: 10000,
    CONF_RELAY_COOLDOWN: 0.0,
}


@dataclass(frozen=True, slots=True)
class Device:
    """One configured IoTee device."""

    hardware_id: str
    device_type: str
    relays: int = 0
    mqtt_topic: str | None = None
    queue_minutes: int | None = None
    """Keep commands this long while the device is offline (None: the device's default)."""

    def subentry(self) -> ConfigSubentryData:
        """Return the device subentry as the config flow stores it."""
        data: dict[str, Any] = {
            CONF_HARDWARE_ID: self.hardware_id,
            CONF_DEVICE_TYPE: self.device_type,
        }
        if self.relays:
            data[CONF_RELAYS] = self.relays
            data[CONF_RELAY_LOCKS] = []
        if self.mqtt_topic:
            data[CONF_MQTT_TOPIC] = self.mqtt_topic
        if self.queue_minutes is not None:
            data[KEY_QUEUE_MINUTES] = self.queue_minutes
        return ConfigSubentryData(
            data=data,
            subentry_type=SUBENTRY_DEVICE,
            title=f"Bench {self.hardware_id}",
            unique_id=self.hardware_id,
        )

    @property
    def entity_count(self) -> int:
        """Return how many entities IoTee creates for this device."""
        if self.device_type == "iotee_device":
            return 2  # lock, restart button
        if self.device_type == "wlte_relay":
            return 2 * self.relays  # switch + JOG button per relay
        return 2 * self.relays + 1  # tasmota: switch + JOG per relay, restart button


def _entry(
    domain: str, title: str, data: dict[str, Any], options: dict[str, Any], **kw: Any
) -> ConfigEntry:
    return ConfigEntry(
        data=data,
        discovery_keys=MappingProxyType({}),
        domain=domain,
        minor_version=kw.pop("minor_version", 1),
        options=options,
        source="user",
        subentries_data=kw.pop("subentries_data", None),
        title=title,
        unique_id=kw.pop("unique_id", None),
        version=kw.pop("version", 1),
    )


def write_config(
    config_dir: Path,
    *,
    broker: tuple[str, int],
    devices: Iterable[Device] | None,
    options: dict[str, Any] | None = None,
) -> None:
    """Create ``config_dir`` with HA's MQTT integration and (unless None) the IoTee hub."""
    storage = config_dir / ".storage"
    storage.mkdir(parents=True, exist_ok=True)
    custom = config_dir / "custom_components"
    custom.mkdir(exist_ok=True)
    link = custom / DOMAIN
    if not link.exists():
        link.symlink_to(REPO / "custom_components" / DOMAIN)
    entries = [
        _entry(
            "mqtt",
            "MQTT",
            {"broker": broker[0], "port": broker[1], "protocol": "5"},
            {"birth_message": {}, "will_message": {}},
            version=2,
        )
    ]
    if devices is not None:
        entries.append(
            _entry(
                DOMAIN,
                "IoTee",
                {},
                dict(options or BENCH_OPTIONS),
                unique_id=DOMAIN,
                subentries_data=[device.subentry() for device in devices],
            )
        )
    stored = {
        "version": config_entries.STORAGE_VERSION,
        "minor_version": config_entries.STORAGE_VERSION_MINOR,
        "key": config_entries.STORAGE_KEY,
        "data": {"entries": [entry.as_dict() for entry in entries]},
    }
    (storage / config_entries.STORAGE_KEY).write_text(json.dumps(stored, cls=JSONEncoder))


def write_yaml(config_dir: Path, http_port: int) -> None:
    """Write ``configuration.yaml``: HTTP on 127.0.0.1:``http_port``, HA's REST API, quiet logs."""
    (config_dir / "configuration.yaml").write_text(
        "homeassistant:\n"
        "  name: IoTee benchmark\n"
        "  latitude: 52.37\n"
        "  longitude: 4.89\n"
        "  elevation: 0\n"
        "  unit_system: metric\n"
        "  time_zone: UTC\n"
        "  country: NL\n"
        "  currency: EUR\n"
        "http:\n"
        "  server_host: 127.0.0.1\n"
        f"  server_port: {http_port}\n"
        "api:\n"
        "logger:\n"
        "  default: warning\n"
    )


def create_loop() -> asyncio.AbstractEventLoop:
    """Return an event loop configured as ``hass`` configures its own."""
    loop = runner.create_event_loop()
    asyncio.set_event_loop(loop)
    return loop


@dataclass(slots=True)
class Booted:
    """A started Home Assistant and how long getting there took."""

    hass: HomeAssistant
    setup_s: float
    """``bootstrap.async_setup_hass``: core, default integrations and config entries."""
    start_s: float
    """``hass.async_start`` until HA is running."""


async def async_boot(config_dir: Path) -> Booted:
    """Start Home Assistant from ``config_dir`` as ``hass --skip-pip -c config_dir`` would."""
    started = time.monotonic()
    hass = await bootstrap.async_setup_hass(
        runner.RuntimeConfig(config_dir=str(config_dir), skip_pip=True, log_no_color=True)
    )
    if hass is None:
        raise RuntimeError(f"Home Assistant did not start from {config_dir}")
    set_up = time.monotonic()
    await hass.async_start()
    booted = Booted(hass, set_up - started, time.monotonic() - set_up)
    await _confirm_http_config(hass)
    return booted


async def _confirm_http_config(hass: HomeAssistant) -> None:
    """Confirm the HTTP config taken from ``configuration.yaml`` as working.

    Since 2026.10 HA moves a YAML HTTP config into its store as a trial ("pending") and, unless
    a user confirms it within 5 minutes, reverts it and restarts Home Assistant - in the middle
    of a benchmark stage that runs longer.
    """
    store = await http_config.async_get_and_load_store(hass)
    if store.pending is not None:
        await store.async_promote_pending()


async def async_admin(hass: HomeAssistant) -> tuple[str, Context]:
    """Create an administrator; return a long-lived access token and a context acting as them."""
    user = await hass.auth.async_create_user("IoTee benchmark", group_ids=[GROUP_ID_ADMIN])
    refresh_token = await hass.auth.async_create_refresh_token(
        user,
        client_name="iotee benchmark",
        token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=timedelta(days=1),
    )
    return hass.auth.async_create_access_token(refresh_token), Context(user_id=user.id)

"""Constants of the IoTee integration."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "iotee"

SUBENTRY_DEVICE: Final = "device"

# Device subentry data
CONF_HARDWARE_ID: Final = "hardware_id"
CONF_DEVICE_TYPE: Final = "device_type"
CONF_RELAYS: Final = "relays"
CONF_MQTT_TOPIC: Final = "mqtt_topic"
CONF_RELAY_LOCKS: Final = "relay_locks"

# Hub options
CONF_COMMAND_TIMEOUT: Final = "command_timeout"
CONF_RETENTION_DAYS: Final = "retention_days"
CONF_SYNC_WAIT: Final = "sync_wait"
CONF_RATE_CALLER: Final = "rate_limit_caller"
CONF_RATE_DEVICE: Final = "rate_limit_device"
CONF_RELAY_COOLDOWN: Final = "relay_cooldown"
CONF_COMMAND_QOS: Final = "command_qos"

DEFAULT_COMMAND_TIMEOUT: Final = 10.0
DEFAULT_RETENTION_DAYS: Final = 90
DEFAULT_SYNC_WAIT: Final = 10.0
DEFAULT_RATE_CALLER: Final = 600
DEFAULT_RATE_DEVICE: Final = 10
DEFAULT_RELAY_COOLDOWN: Final = 3.0
COMMAND_QOS_AUTO: Final = "auto"
"""QoS 0 for a command its device confirms, QoS 1 for one it does not (``EngineSettings``)."""
DEFAULT_COMMAND_QOS: Final = COMMAND_QOS_AUTO
COMMAND_QOS_CHOICES: Final = (COMMAND_QOS_AUTO, 1, 0)

EVENT_COMMAND_STATUS: Final = "iotee_command_status"
STORE_FILENAME: Final = "iotee.db"

ATTR_LAST_COMMAND_ID: Final = "last_command_id"
ATTR_LAST_COMMAND: Final = "last_command"
ATTR_LAST_COMMAND_STATUS: Final = "last_command_status"
ATTR_LAST_COMMAND_AT: Final = "last_command_at"
ATTR_LAST_COMMAND_ERROR: Final = "last_command_error"
ATTR_QUEUED_UNTIL: Final = "queued_until"

"""Is a string usable as (part of) an MQTT topic IoTee publishes to or listens on?"""

from __future__ import annotations

MAX_TOPIC_LENGTH = 300
ERROR_TOPIC = "invalid_topic"


def topic_error(value: str) -> str | None:
    """Return ``invalid_topic`` when ``value`` cannot be (part of) a topic, else None.

    Refused: empty or longer than ``MAX_TOPIC_LENGTH``, surrounding spaces, the wildcards ``+``
    and ``#``, NUL and control characters, a leading ``$`` (broker topics), a leading or trailing
    ``/`` and empty levels (``//``).
    """
    if not 1 <= len(value) <= MAX_TOPIC_LENGTH or value != value.strip():
        return ERROR_TOPIC
    if any(char in value for char in "+#") or value.startswith("$"):
        return ERROR_TOPIC
    if value.startswith("/") or value.endswith("/") or "//" in value:
        return ERROR_TOPIC
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return ERROR_TOPIC
    return None

"""Row 5's what-if: Home Assistant's MQTT client with one change of its own (not IoTee's).

HA (2026.10 and 2026.11) subscribes with MQTT 5 and gives each wildcard subscription a
subscription identifier, so the broker says with every message which subscriptions it matched.
Its ``MQTT._matching_subscriptions`` still runs every wildcard's topic matcher first and only
then looks at the identifier. The result is cached per topic, so it costs nothing for a topic
seen before, but at start every retained topic is new: 15,000 topics against ~80 wildcard
filters (HA's discovery topics, most of them) is about 1.2 million matcher calls. Checking the
identifier first gives the same answer (both must hold) and calls the matcher only for the
subscriptions the broker named. The benchmark boots the hub with devices once more per round
with this change applied in its own process, to show how much of row 5 is that matching.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from homeassistant.components.mqtt.client import MQTT


def _matching_identifiers_first(
    self: Any, topic: str, identifiers: tuple[int, ...] | None
) -> list[Any]:
    """HA's own function with the two conditions of the wildcard test swapped."""
    subscriptions: list[Any] = []
    if topic in self._simple_subscriptions and (identifiers is None or 1 in identifiers):
        subscriptions.extend(self._simple_subscriptions[topic])
    subscriptions.extend(
        subscription
        for subscription in self._wildcard_subscriptions
        if (identifiers is None or subscription.subscription_id in identifiers)
        and subscription.complex_matcher(topic)
    )
    return subscriptions


def match_identifiers_first() -> None:
    """Apply the change to HA's MQTT client class (in this benchmark process only)."""
    MQTT._matching_subscriptions = lru_cache(None)(_matching_identifiers_first)  # type: ignore[method-assign]

"""The WLTE API's rate limits under 50 concurrent callers, through HA's real HTTP stack.

Fifty API keys (fifty callers) send relay operations at once, round after round, on the real
broker. The API's clock is driven by the test (the limiter takes monotonic seconds), so each round
happens at a known instant and the limits can be checked exactly afterwards:

* per device: at most 10 accepted in any 10 s window (sliding, not fixed buckets);
* per relay: accepted operations at least 3 s apart;
* per caller: at most the configured number in any 60 s window;
* every refusal is 429 RATE_LIMITED with ``Retry-After`` and the limit that was hit, and every
  accepted operation is in the store and was published: none lost, none extra.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
import itertools
import random
from typing import Any
import uuid

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.api.state import BASE_URL, CALLER_WINDOW, DATA_API, DEVICE_WINDOW
from custom_components.iotee.const import (
    CONF_COMMAND_TIMEOUT,
    CONF_RATE_CALLER,
    CONF_RATE_DEVICE,
    CONF_RELAY_COOLDOWN,
)

from .api_openapi import checked
from .helpers import TASMOTA_ID, WLTE_ID, engine_of, setup_api_hub

CALLERS = 50
RELAYS = {WLTE_ID: 4, TASMOTA_ID: 2}


@dataclass(frozen=True)
class Accepted:
    """One accepted operation: when, by whom, where."""

    moment: float
    caller: int
    device: str
    relay: int
    command_id: str


class Clock:
    """The API's monotonic clock, set by the test."""

    def __init__(self) -> None:
        """Start at 1,000 s."""
        self.now = 1000.0

    def __call__(self) -> float:
        """Return the current instant."""
        return self.now


async def start(
    hass: HomeAssistant, hass_client_no_auth: Callable[..., Any], **options: Any
) -> tuple[MockConfigEntry, TestClient, list[str], Clock]:
    """Set up the hub with ``options``, the API, 50 callers' keys and the test's clock."""
    entry = await setup_api_hub(hass, **({CONF_COMMAND_TIMEOUT: 30.0} | options))
    keys = hass.data[DATA_API].keys
    secrets = [(await keys.async_create(f"caller {n}")).secret for n in range(CALLERS)]
    clock = Clock()
    hass.data[DATA_API].clock = clock
    client: TestClient = await hass_client_no_auth()
    return entry, client, secrets, clock


async def send(client: TestClient, secret: str, device: str, relay: int) -> tuple[int, Any, Any]:
    """POST one relay operation; return status, checked body and headers."""
    response = await client.post(
        f"{BASE_URL}/wlte/v1/devices/{device}/relays/{relay}/commands",
        json={"action": "JOG"},
        headers={"X-API-Key": secret, "Idempotency-Key": str(uuid.uuid4())},
    )
    return response.status, await checked(response), response.headers


async def burst(
    client: TestClient, clock: Clock, requests: list[tuple[int, str, str, int]]
) -> tuple[list[Accepted], list[tuple[str, int]]]:
    """Send ``(caller, secret, device, relay)`` requests all at once at the clock's instant.

    Return what was accepted and, for the refusals, the limit named and the Retry-After.
    """
    answers = await asyncio.gather(
        *(send(client, secret, device, relay) for _, secret, device, relay in requests)
    )
    accepted: list[Accepted] = []
    refused: list[tuple[str, int]] = []
    for (caller, _, device, relay), (status, body, headers) in zip(requests, answers, strict=True):
        if status == 202:
            accepted.append(Accepted(clock.now, caller, device, relay, body["data"]["id"]))
            continue
        assert (status, body["code"]) == (429, "RATE_LIMITED"), body
        assert int(headers["Retry-After"]) == body["data"]["retryAfterSeconds"] >= 1
        refused.append((body["data"]["limit"], body["data"]["retryAfterSeconds"]))
    return accepted, refused


def most_in_window(moments: list[float], window: float) -> int:
    """Return the most moments that fall in any half-open window ``[t, t + window)``."""
    moments = sorted(moments)
    best = 0
    start = 0
    for end, moment in enumerate(moments):
        while moments[start] <= moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_fifty_callers_at_one_instant(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, hass_client_no_auth: Any
) -> None:
    """50 callers at the same instant on one device's 4 relays: one per relay (cooldown); with
    no cooldown, exactly the device limit of 10."""
    entry, client, secrets, clock = await start(hass, hass_client_no_auth)
    requests = [(n, secrets[n], WLTE_ID, n % 4 + 1) for n in range(CALLERS)]
    accepted, refused = await burst(client, clock, requests)
    assert sorted(item.relay for item in accepted) == [1, 2, 3, 4]
    assert {limit for limit, _ in refused} == {"relay"}
    assert {seconds for _, seconds in refused} == {3}

    await hass.config_entries.async_unload(entry.entry_id)
    await hass.config_entries.async_remove(entry.entry_id)
    entry, client, secrets, clock = await start(
        hass, hass_client_no_auth, **{CONF_RELAY_COOLDOWN: 0}
    )
    clock.now = 5000.0
    accepted, refused = await burst(client, clock, requests)
    assert len(accepted) == 10
    assert [limit for limit, _ in refused] == ["device"] * 40
    assert {seconds for _, seconds in refused} == {10}


async def test_one_caller_fifty_at_once(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, hass_client_no_auth: Any
) -> None:
    """One caller sending 50 at once across two devices, caller limit 20: exactly 20 accepted."""
    _, client, secrets, clock = await start(
        hass,
        hass_client_no_auth,
        **{CONF_RATE_CALLER: 20, CONF_RATE_DEVICE: 100, CONF_RELAY_COOLDOWN: 0},
    )
    requests = [
        (0, secrets[0], device, n % RELAYS[device] + 1)
        for n, device in enumerate([WLTE_ID, TASMOTA_ID] * (CALLERS // 2))
    ]
    accepted, refused = await burst(client, clock, requests)
    assert len(accepted) == 20
    assert [limit for limit, _ in refused] == ["application"] * 30
    assert {seconds for _, seconds in refused} == {60}


@pytest.mark.parametrize("caller_limit", [600, 1])
async def test_fifty_callers_sustained(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    hass_client_no_auth: Any,
    caller_limit: int,
) -> None:
    """50 callers, 40 rounds half a second apart, random relays of two devices: no limit is ever
    exceeded, the binding ones are reached, and every accepted operation is stored."""
    entry, client, secrets, clock = await start(
        hass, hass_client_no_auth, **{CONF_RATE_CALLER: caller_limit}
    )
    chance = random.Random(caller_limit)
    accepted: list[Accepted] = []
    refusals: defaultdict[str, int] = defaultdict(int)
    for _ in range(40):
        requests = []
        for caller in range(CALLERS):
            device = chance.choice([WLTE_ID, TASMOTA_ID])
            requests.append((caller, secrets[caller], device, chance.randint(1, RELAYS[device])))
        new, refused = await burst(client, clock, requests)
        accepted += new
        for limit, _ in refused:
            refusals[limit] += 1
        clock.now += 0.5

    for device, relays in RELAYS.items():
        moments = [item.moment for item in accepted if item.device == device]
        assert most_in_window(moments, DEVICE_WINDOW) <= 10
        for relay in range(1, relays + 1):
            times = sorted(
                item.moment for item in accepted if (item.device, item.relay) == (device, relay)
            )
            assert all(later - earlier >= 3.0 for earlier, later in itertools.pairwise(times))
    per_caller: defaultdict[int, list[float]] = defaultdict(list)
    for item in accepted:
        per_caller[item.caller].append(item.moment)
    assert (
        max(most_in_window(times, CALLER_WINDOW) for times in per_caller.values()) <= caller_limit
    )

    # The binding limits were reached, not merely respected: the WLTE device (4 relays, 3 s
    # cooldown) is held at 10 per 10 s, the two-relay device by its cooldown.
    wlte = [item.moment for item in accepted if item.device == WLTE_ID]
    assert most_in_window(wlte, DEVICE_WINDOW) == 10
    assert refusals["device"] > 0
    assert refusals["relay"] > 0
    if caller_limit == 1:
        assert refusals["application"] > 0

    gaps = [
        later.moment - earlier.moment
        for earlier, later in itertools.pairwise(
            sorted(accepted, key=lambda item: (item.device, item.relay, item.moment))
        )
        if (earlier.device, earlier.relay) == (later.device, later.relay)
    ]
    print(  # the figures README's Reliability section quotes
        f"\nrate limits (caller limit {caller_limit}): {40 * CALLERS} requests from {CALLERS}"
        f" callers in 40 concurrent rounds over 20 s; accepted {len(accepted)};"
        f" most per device in 10 s: {most_in_window(wlte, DEVICE_WINDOW)}/10 (WLTE),"
        f" {most_in_window([i.moment for i in accepted if i.device == TASMOTA_ID], DEVICE_WINDOW)}"
        f"/10 (Tasmota); shortest gap on a relay {min(gaps):.1f} s/3 s; most per caller in 60 s"
        f" {max(most_in_window(t, CALLER_WINDOW) for t in per_caller.values())}/{caller_limit};"
        f" refused {dict(sorted(refusals.items()))}"
    )
    engine = engine_of(entry)
    stored = {record.command_id for record in await engine.async_list(None, limit=1000)}
    assert stored == {item.command_id for item in accepted}

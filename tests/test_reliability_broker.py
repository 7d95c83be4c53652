"""Reliability: the broker is killed mid-traffic and restarted (real mosquitto, real HA MQTT)."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from dataclasses import dataclass
import json
import time
from typing import Any
from unittest.mock import patch

from homeassistant.components import mqtt
from homeassistant.components.mqtt.const import MQTT_PROCESSED_SUBSCRIPTIONS
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.const import CONF_COMMAND_TIMEOUT
from custom_components.iotee.core.model import CommandRecord, CommandStatus, utcnow
from custom_components.iotee.engine import CommandEngine
from simulator import Behaviour, SimulatedDevice

from .api_openapi import RelayDevice
from .broker import Mosquitto, PahoPeer
from .conftest import subscribed, wait_for
from .helpers import (
    LOCK_ID,
    TASMOTA_ID,
    WLTE_ID,
    default_simulators,
    engine_of,
    engine_subscribed,
    running,
    setup_hub,
)

COMMAND_TIMEOUT = 2.0
OUTAGE = 0.5
"""Seconds the broker stays down. HA's client notices at once but retries only every 10 s, so
HA is disconnected for about 10 s; the simulated devices retry after 1 s."""
DEADLINE_SLACK = 0.5
"""How late a command may end after its deadline (event-loop scheduling, a busy CI machine)."""
HELD_TIMEOUT = 6.0
"""Command timeout of the command sent as HA's client reconnects (held at most half of it)."""
TRAFFIC_PERIOD = 0.1
"""One new command every this many seconds, round robin over the targets."""

TARGETS: tuple[tuple[str, int | None, tuple[str, str]], ...] = (
    (WLTE_ID, 1, ("ON", "OFF")),
    (TASMOTA_ID, 1, ("ON", "OFF")),
    (WLTE_ID, 2, ("ON", "OFF")),
    (LOCK_ID, None, ("unlock", "lock")),
    (WLTE_ID, 3, ("ON", "OFF")),
    (TASMOTA_ID, 2, ("ON", "OFF")),
)


@pytest.fixture
def devices(mosquitto: Mosquitto) -> Generator[dict[str, SimulatedDevice]]:
    """The three simulated devices; the WLTE relay answers after 0.3 s (commands in flight)."""
    with running(default_simulators(mosquitto, wlte=Behaviour(delay=0.3))) as sims:
        yield sims


@dataclass(slots=True)
class Sent:
    """One command of the traffic and what HA's MQTT client said when it was submitted."""

    record: CommandRecord
    connected: bool
    """HA's client was connected at some point while the command was submitted."""
    phase: str


class Traffic:
    """Submit a command every ``TRAFFIC_PERIOD`` seconds until stopped; watch the deadlines."""

    def __init__(self, hass: HomeAssistant, engine: CommandEngine) -> None:
        """Prepare traffic through ``engine``."""
        self.hass = hass
        self.engine = engine
        self.phase = "broker up"
        self.sent: list[Sent] = []
        self.refused: list[BaseException] = []
        self.overdue: list[tuple[str, float]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Send until ``stop``."""
        turn = 0
        while not self._stop.is_set():
            hardware_id, relay, actions = TARGETS[turn % len(TARGETS)]
            action = actions[(turn // len(TARGETS)) % 2]
            task = self.hass.async_create_task(self._submit(hardware_id, relay, action))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            turn += 1
            await asyncio.sleep(TRAFFIC_PERIOD)

    async def _submit(self, hardware_id: str, relay: int | None, action: str) -> None:
        connected = mqtt.is_connected(self.hass)
        phase = self.phase
        try:
            # Returns once published or failed: HA's client may hold a publish up to 10 s for
            # the broker's PUBACK (each submit is its own task; ``watch`` sees it meanwhile).
            record = await self.engine.async_submit(hardware_id, action, relay, source="test")
        except Exception as err:
            self.refused.append(err)
            return
        # Disconnected before and after the submit means the engine saw it disconnected too.
        connected = connected or mqtt.is_connected(self.hass)
        self.sent.append(Sent(record, connected, phase))

    async def watch(self) -> None:
        """Check every 50 ms that no open command is past its deadline."""
        while not self._stop.is_set():
            now = utcnow()
            for record in self.engine.open_commands():
                late = (now - record.deadline).total_seconds()
                if late > DEADLINE_SLACK:
                    self.overdue.append((record.command_id, late))
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop sending and wait for the submits in progress."""
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks)


def ensure_online(sim: SimulatedDevice) -> None:
    """Wait for a simulated device to reconnect by itself; power-cycle it if it does not.

    The simulator retries its lost connection once, about 1 s after the loss; a broker that is
    back later than that leaves the device disconnected (paho gives up after a failed first
    reconnect), which a real device would not do. The outage here is shorter, so this is only a
    guard against a slow CI machine.
    """
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if sim.online:
            return
        time.sleep(0.05)
    sim.stop(clean=False)
    sim.start()


def ended_at(record: CommandRecord) -> float:
    """Return how many seconds after its deadline the record ended (negative: before)."""
    assert record.status.is_terminal
    return (record.transitions[-1].at - record.deadline).total_seconds()


async def test_broker_killed_mid_traffic_and_restarted(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    mosquitto: Mosquitto,
    devices: dict[str, SimulatedDevice],
) -> None:
    """Kill the broker under traffic; restart it on the same port; HA reconnects and recovers.

    - commands issued while HA's client is disconnected end failed/publish_failed at once,
      are stored, and are never delivered later;
    - no command is open past its deadline at any moment;
    - after the reconnect the subscriptions are back: new commands to every device type complete.
    """
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: COMMAND_TIMEOUT})
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    await wait_for(lambda: all(state.online for state in engine.states.values()))

    traffic = Traffic(hass, engine)
    sender = hass.async_create_background_task(traffic.run(), "traffic")
    watcher = hass.async_create_background_task(traffic.watch(), "deadline watch")
    await asyncio.sleep(1.0)

    traffic.phase = "broker down"
    killed = time.monotonic()
    await hass.async_add_executor_job(mosquitto.stop)
    await wait_for(lambda: not mqtt.is_connected(hass))
    noticed = time.monotonic() - killed
    await asyncio.sleep(OUTAGE)

    traffic.phase = "reconnecting"
    await hass.async_add_executor_job(mosquitto.start)
    # Listen to every WLTE command (their payload names the command id) before HA is back.
    spy = PahoPeer(mosquitto, client_id="spy")
    await hass.async_add_executor_job(spy.connect)
    await hass.async_add_executor_job(spy.subscribe, "wlte/+/relay/+/set")
    spy_before_ha = not mqtt.is_connected(hass)
    restarted = time.monotonic()
    await wait_for(lambda: mqtt.is_connected(hass), timeout=30)
    reconnected = time.monotonic() - restarted
    traffic.phase = "broker back"
    await asyncio.sleep(1.0)
    await traffic.stop()
    await sender
    # Every command is over within its deadline (+ slack), whatever the broker did meanwhile.
    await wait_for(lambda: not list(engine.open_commands()), timeout=COMMAND_TIMEOUT + 2)
    await watcher

    assert traffic.refused == []
    assert traffic.overdue == []
    by_phase: dict[str, dict[str, int]] = {}
    for sent in traffic.sent:
        record = sent.record
        counts = by_phase.setdefault(sent.phase, {})
        outcome = record.status.value + (f"/{record.error_code}" if record.error_code else "")
        counts[outcome] = counts.get(outcome, 0) + 1
        assert record.status.is_terminal
        assert ended_at(record) <= DEADLINE_SLACK, record
        if not sent.connected:
            assert record.status is CommandStatus.FAILED, record
            assert record.error_code == "publish_failed"
            assert CommandStatus.PUBLISHED not in [t.status for t in record.transitions]
    down = [s for s in traffic.sent if not s.connected]
    assert len(down) >= 10  # the outage saw traffic

    # Records of every command are kept, as they ended.
    await asyncio.sleep(0.1)
    await hass.async_block_till_done()
    for sent in traffic.sent:
        assert await entry.runtime_data.store.get(sent.record.command_id) == sent.record
    assert await entry.runtime_data.store.open_commands() == []

    # Subscriptions are back: commands to every device type are confirmed again.
    await engine_subscribed(hass, entry)
    for sim in devices.values():
        await hass.async_add_executor_job(ensure_online, sim)
    await wait_for(lambda: all(state.online for state in engine.states.values()))
    for hardware_id, relay, action in (
        (WLTE_ID, 4, "ON"),
        (TASMOTA_ID, 2, "ON"),
        (LOCK_ID, None, "unlock"),
    ):
        record = await engine.async_submit(hardware_id, action, relay, source="test")
        final = await engine.async_wait(record.command_id, COMMAND_TIMEOUT + 1)
        assert final.status is CommandStatus.COMPLETED, final

    # A command reported failed was never delivered: none of them reached the device later.
    await asyncio.sleep(0.3)
    delivered = set()
    while not spy.messages.empty():
        delivered.add(json.loads(spy.messages.get_nowait().payload)["id"])
    spy.close()
    failed_ids = {
        s.record.command_id
        for s in traffic.sent
        if s.record.error_code == "publish_failed" and s.record.hardware_id == WLTE_ID
    }
    assert spy_before_ha
    assert not delivered & failed_ids

    late = [s.record for s in traffic.sent if s.record.late_confirmation is not None]
    print(
        f"\nbroker kill: HA noticed in {noticed:.2f} s, reconnected {reconnected:.1f} s after"
        f" the restart; {len(traffic.sent)} commands: {by_phase};"
        f" late confirmations {len(late)}; worst end vs deadline"
        f" {max(ended_at(s.record) for s in traffic.sent):+.2f} s"
    )
    assert noticed < 5


@pytest.mark.parametrize("mqtt_entry", ["no birth", "default birth"], indirect=True)
async def test_command_sent_as_the_client_reconnects_is_confirmed(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, mosquitto: Mosquitto
) -> None:
    """A command sent the instant HA's client is back, before HA restored its subscriptions
    (0.6 s later here, more on a busy machine), is held until they are back: the device's
    answer is not missed. Its timeout leaves it 3 s of holding (half its time), well beyond
    the restore on a busy machine; with 2 s it had only 1 s."""
    entry = await setup_hub(hass, **{CONF_COMMAND_TIMEOUT: HELD_TIMEOUT})
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    # Let HA's client finish the subscriptions of its start (one by one, each acknowledged).
    unsubscribe = await mqtt.async_subscribe(hass, "iotee-test/sentinel", lambda _: None)
    await subscribed(hass, "iotee-test/sentinel")
    unsubscribe()
    submitted: list[asyncio.Task[CommandRecord]] = []

    @callback
    def on_connection(connected: bool) -> None:
        if connected and not submitted:
            submitted.append(
                hass.async_create_task(engine.async_submit(WLTE_ID, "ON", 1, source="test"))
            )

    with patch("homeassistant.components.mqtt.client.RECONNECT_INTERVAL_SECONDS", 0.2):
        await hass.async_add_executor_job(mosquitto.stop)
        await wait_for(lambda: not mqtt.is_connected(hass))
        await hass.async_add_executor_job(mosquitto.start)
        device = await hass.async_add_executor_job(RelayDevice(mosquitto).start)
        cancel = mqtt.async_subscribe_connection_status(hass, on_connection)
        await wait_for(lambda: bool(submitted), timeout=30)
    cancel()
    record = await submitted[0]
    final = await engine.async_wait(record.command_id, HELD_TIMEOUT + 1)
    await hass.async_add_executor_job(device.close)
    assert final.status is CommandStatus.COMPLETED, final
    assert device.commands == [(1, {"id": record.command_id, "action": "ON"})]


async def test_gate_reopens_when_another_subscriber_raised_a_filters_qos(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, mosquitto: Mosquitto
) -> None:
    """Another integration subscribes to one of IoTee's filters at QoS 1, so HA restores that
    filter at QoS 1 after a reconnect (once, at the highest QoS asked): IoTee still sees its
    subscriptions restored and opens the gate for commands, without waiting for a timeout."""
    entry = await setup_hub(hass)
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    result_filter = "wlte/+/relay/+/result"
    assert result_filter in engine.subscription_filters
    other = await mqtt.async_subscribe(hass, result_filter, lambda _: None, qos=1)
    await subscribed(hass, result_filter, qos=1)
    with patch("homeassistant.components.mqtt.client.RECONNECT_INTERVAL_SECONDS", 0.2):
        await hass.async_add_executor_job(mosquitto.stop)
        await wait_for(lambda: not mqtt.is_connected(hass))
        assert not engine._subscribed.is_set()
        await hass.async_add_executor_job(mosquitto.start)
        await wait_for(lambda: mqtt.is_connected(hass), timeout=30)
        await wait_for(engine._subscribed.is_set, timeout=20)
    other()


async def test_gate_reopens_once_iotees_filters_are_back_and_costs_no_task_per_filter(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, mosquitto: Mosquitto
) -> None:
    """After a reconnect HA restores its wildcard filters one at a time (about 80 in a home:
    its discovery topics, IoTee's last) and reports each. The gate opens only once every one
    of IoTee's filters was reported back, and listening costs HA no task per report: with HA's
    helper, one coroutine per filter and QoS, IoTee's 21 made 21 tasks at each of the ~80
    reports, and the gate opened twice as late."""
    entry = await setup_hub(hass)
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    reported: list[str] = []

    @callback
    def processed(subscriptions: list[tuple[str, int]]) -> None:
        reported.extend(topic_filter for topic_filter, _qos in subscriptions)

    cancel = async_dispatcher_connect(hass, MQTT_PROCESSED_SUBSCRIPTIONS, processed)
    run_job = hass.async_run_hass_job
    signal_jobs: list[str] = []

    def counting_run_job(job: Any, *args: Any) -> Any:
        if job.name == f"dispatcher {MQTT_PROCESSED_SUBSCRIPTIONS}":
            signal_jobs.append(job.name)
        return run_job(job, *args)

    with (
        patch("homeassistant.components.mqtt.client.RECONNECT_INTERVAL_SECONDS", 0.2),
        patch.object(hass, "async_run_hass_job", counting_run_job),
    ):
        await hass.async_add_executor_job(mosquitto.stop)
        await wait_for(lambda: not mqtt.is_connected(hass))
        reported.clear()
        await hass.async_add_executor_job(mosquitto.start)
        await wait_for(lambda: mqtt.is_connected(hass), timeout=30)
        assert not engine._subscribed.is_set()
        await wait_for(engine._subscribed.is_set, timeout=20)
        assert set(engine.subscription_filters) <= set(reported)
        await asyncio.sleep(0.5)  # HA's last reports, if any are left
    cancel()
    assert len(reported) > len(engine.subscription_filters)  # HA's own filters came too
    assert signal_jobs == []


async def test_an_acknowledgement_heard_before_a_disconnect_does_not_reopen_the_gate(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry
) -> None:
    """A watch that starts while every filter is subscribed hears that at once, in the next
    loop iteration. If the connection drops before that iteration, the gate stays closed: the
    news belongs to the connection that is gone."""
    entry = await setup_hub(hass)
    await engine_subscribed(hass, entry)
    engine = engine_of(entry)
    subscriptions = engine._subscriptions
    await wait_for(engine._subscribed.is_set)
    subscriptions._watch()  # every filter is active with nothing pending: reported at once
    subscriptions._on_connection(False)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not engine._subscribed.is_set()

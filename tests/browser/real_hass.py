"""A real Home Assistant process for the browser tests: its config, start, onboarding and API.

The config directory is made with the benchmark's ``bench.hassenv.write_config`` (HA's MQTT
integration against the test's broker) plus the IoTee hub with named devices, as the UI would
store them; ``hass --skip-pip`` runs it (nothing is installed or fetched), and
``scripts/dev_bootstrap.py``'s ``Bootstrap`` onboards the owner the browser logs in as.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
import importlib.util
import json
import os
from pathlib import Path
import subprocess
import sys
import time
from types import MappingProxyType, ModuleType
from typing import Any

import aiohttp
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntry, ConfigSubentryData
from homeassistant.helpers.json import JSONEncoder

from bench.hassenv import REPO, write_config
from custom_components.iotee.config_flow import DEFAULT_OPTIONS
from custom_components.iotee.const import DOMAIN
from simulator.broker import free_port


def _bootstrap_module() -> ModuleType:
    """Load ``scripts/dev_bootstrap.py`` (a script, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "iotee_dev_bootstrap", REPO / "scripts" / "dev_bootstrap.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BOOTSTRAP = _bootstrap_module()
OWNER: dict[str, str] = BOOTSTRAP.OWNER

CONFIGURATION_YAML = """\
homeassistant:
  name: IoTee
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
  language: en
frontend:
config:
api:
logbook:
http:
  server_host: 127.0.0.1
  server_port: {port}
logger:
  default: warning
"""


def _run[T](coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end on a thread of its own (Playwright's sync API keeps an
    event loop running on the test's thread)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def write_hub(
    config_dir: Path,
    broker: tuple[str, int],
    devices: Iterable[ConfigSubentryData],
    options: dict[str, Any],
) -> None:
    """Write the MQTT entry (``write_config``) and the IoTee hub with ``devices``."""
    write_config(config_dir, broker=broker, devices=None)
    path = config_dir / ".storage" / config_entries.STORAGE_KEY
    stored = json.loads(path.read_text())
    hub = ConfigEntry(
        data={},
        discovery_keys=MappingProxyType({}),
        domain=DOMAIN,
        minor_version=1,
        options=DEFAULT_OPTIONS | options,
        source="user",
        subentries_data=list(devices),
        title="IoTee",
        unique_id=DOMAIN,
        version=1,
    )
    stored["data"]["entries"].append(hub.as_dict())
    path.write_text(json.dumps(stored, cls=JSONEncoder))


class RealHass:
    """``hass`` in its own process on a free loopback port."""

    def __init__(self, config_dir: Path) -> None:
        """Prepare to run Home Assistant from ``config_dir``."""
        self.config_dir = config_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = config_dir / "hass.out"
        self._proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    def start(self) -> None:
        """Write ``configuration.yaml`` and start ``hass --skip-pip``."""
        (self.config_dir / "configuration.yaml").write_text(
            CONFIGURATION_YAML.format(port=self.port)
        )
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "homeassistant", "--skip-pip", "-c", str(self.config_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=os.environ | {"PYTHONPATH": str(REPO)},
            )

    def stop(self) -> None:
        """Stop Home Assistant (SIGTERM, then kill after 30 s)."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def onboard(self, within: float = 180) -> None:
        """Wait until HA answers, create the owner and finish onboarding; keep a token."""
        _run(self._onboard(within))

    async def _onboard(self, within: float) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            bootstrap = BOOTSTRAP.Bootstrap(
                session, self.base, self.config_dir / ".iotee-browser-test.json"
            )
            while True:
                assert self._proc is not None
                assert self._proc.poll() is None, self.log.read_text()
                try:
                    await bootstrap.wait_until_up(within=1)
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
            await bootstrap.onboard()
            await bootstrap.drop_onboarding_extras()
            self.token = bootstrap.token
        # HA 2026.10 moves the YAML http settings into a trial it reverts (restarting) after
        # five minutes unless an administrator confirms them; confirm, as a user would.
        await self._ws("http/config/promote")

    def ws(self, type_: str, **fields: Any) -> Any:
        """Run one websocket command as the owner; return its result."""
        return _run(self._ws(type_, **fields))

    async def _ws(self, type_: str, **fields: Any) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(self.base + "/api/websocket") as socket,
        ):
            assert (await socket.receive_json())["type"] == "auth_required"
            await socket.send_json({"type": "auth", "access_token": self.token})
            assert (await socket.receive_json())["type"] == "auth_ok"
            await socket.send_json({"id": 1, "type": type_, **fields})
            while True:
                answer = await socket.receive_json()
                if answer.get("id") == 1 and answer["type"] == "result":
                    assert answer["success"], answer
                    return answer["result"]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Call HA's REST API as the owner; return the JSON answer."""
        return _run(self._call(method, path, body))

    async def _call(self, method: str, path: str, body: Any) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method,
                self.base + path,
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
            ) as response,
        ):
            text = await response.text()
            assert response.status < 400, f"{method} {path}: {response.status} {text}"
            return json.loads(text) if text else None

    def wait_for_states(self, entity_ids: tuple[str, ...], within: float = 120) -> None:
        """Wait until each entity exists with a known state: the hub is loaded, HA's MQTT client
        connected and the devices' retained states are in (onboarding can finish before)."""
        _run(self._wait_for_states(entity_ids, within))

    async def _wait_for_states(self, entity_ids: tuple[str, ...], within: float) -> None:
        deadline = time.monotonic() + within
        waiting = set(entity_ids)
        async with aiohttp.ClientSession() as session:
            while waiting:
                for entity_id in sorted(waiting):
                    async with session.get(
                        f"{self.base}/api/states/{entity_id}",
                        headers={"Authorization": f"Bearer {self.token}"},
                    ) as response:
                        if response.status == 200 and (await response.json())["state"] not in (
                            "unavailable",
                            "unknown",
                        ):
                            waiting.discard(entity_id)
                if waiting:
                    assert time.monotonic() < deadline, f"no state for {sorted(waiting)}"
                    await asyncio.sleep(0.2)

    def service(self, domain: str, name: str, data: dict[str, Any]) -> Any:
        """Call a service action with its response."""
        answer = self.call("POST", f"/api/services/{domain}/{name}?return_response", data)
        return answer["service_response"]

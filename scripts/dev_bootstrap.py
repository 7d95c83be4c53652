"""Make a running development Home Assistant ready, through its own HTTP APIs.

Run by scripts/develop once HA answers. Idempotent: on the first run it onboards an owner
account, configures HA's MQTT integration against the development broker, adds the IoTee hub
with its simulated devices and creates an admin API key; later runs find all that in place.
What a later run needs (the owner's refresh token, the API key) is kept in
``<config>/.iotee-develop.json``, inside the development config directory only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
import sys
from typing import Any

import aiohttp

CLIENT_ID = "http://127.0.0.1:8123/"
OWNER = {"name": "IoTee Developer", "username": "dev", "password": "iotee-dev-password"}
ONBOARDING_EXTRAS = ("met", "radio_browser", "google_translate", "shopping_list")
DEVICES = (
    {"name": "Front door", "device_type": "iotee_device", "hardware_id": "ABC123"},
    {
        "name": "Gate controller",
        "device_type": "wlte_relay",
        "hardware_id": "abc123456789",
        "relays": 4,
    },
    {
        "name": "Garage relays",
        "device_type": "shelly_gen2",
        "hardware_id": "shellyplus2pm-dev",
        "relays": 2,
    },
    {"name": "Back door", "device_type": "zigbee2mqtt_lock", "hardware_id": "back_door"},
    {
        "name": "Garden board",
        "device_type": "esphome_switch",
        "hardware_id": "garden-board",
        "relays": 2,
    },
    {
        "name": "Pool pump",
        "device_type": "tasmota",
        "hardware_id": "pool-pump",
        "relays": 2,
        "steps": {"relays": {"mqtt_topic": "pool"}},
    },
    {
        "name": "Hall lights",
        "device_type": "zigbee2mqtt_switch",
        "hardware_id": "hall_lights",
        "relays": 2,
    },
    {"name": "Shed lock", "device_type": "esphome_lock", "hardware_id": "shed-lock"},
    {
        # A user-defined device: it describes the ESPHome switch contract of the simulated
        # "porch-board", as a user would describe firmware IoTee does not know.
        "name": "Porch relays",
        "device_type": "custom",
        "hardware_id": "porch-relays",
        "relays": 2,
        "steps": {
            "custom": {
                "kind": "relays",
                "command_topic": "porch-board/switch/relay_{relay}/command",
                "confirm": "state",
                "availability_topic": "porch-board/status",
            },
            "custom_payloads": {"payload_on": "ON", "payload_off": "OFF", "jog": "none"},
            "custom_state": {"state_topic": "porch-board/switch/relay_{relay}/state"},
        },
    },
)
"""The simulated devices (``scripts/develop`` starts them): one of each family. Their settings
are the add-device flow's defaults (topic prefix / friendly name = hardware id)."""


class Bootstrap:
    """Drives HA's onboarding, config-flow and service APIs."""

    def __init__(self, session: aiohttp.ClientSession, base: str, state_file: Path) -> None:
        """Talk to HA at ``base``; remember credentials in ``state_file``."""
        self.session = session
        self.base = base.rstrip("/")
        self.state_file = state_file
        self.state: dict[str, Any] = (
            json.loads(state_file.read_text()) if state_file.exists() else {}
        )
        self.token = ""

    def save(self) -> None:
        """Persist the state (owner refresh token, API key)."""
        self.state_file.write_text(json.dumps(self.state, indent=2))
        self.state_file.chmod(0o600)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call HA's API with the owner's token; return the JSON answer."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.request(
            method, self.base + path, headers=headers, **kwargs
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {text}")
            return json.loads(text) if text else None

    async def wait_until_up(self, within: float = 180) -> None:
        """Wait until HA's HTTP server answers."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            try:
                async with self.session.get(self.base + "/api/onboarding") as response:
                    if response.status in (200, 401, 404):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(1)
        raise RuntimeError("Home Assistant did not start in time")

    async def token_from(self, data: dict[str, str]) -> dict[str, Any]:
        """Exchange an auth code or refresh token for tokens."""
        async with self.session.post(
            self.base + "/auth/token", data=data | {"client_id": CLIENT_ID}
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"token request failed: {await response.text()}")
            return dict(await response.json())

    async def onboard(self) -> None:
        """Create the owner (first run) or log in with the kept refresh token."""
        async with self.session.get(self.base + "/api/onboarding") as response:
            steps = (
                {s["step"]: s["done"] for s in await response.json()}
                if response.status == 200
                else {}
            )
        if not steps.get("user", True):
            created = await self.request(
                "POST",
                "/api/onboarding/users",
                json=OWNER | {"client_id": CLIENT_ID, "language": "en"},
            )
            tokens = await self.token_from(
                {"grant_type": "authorization_code", "code": created["auth_code"]}
            )
            self.state["refresh_token"] = tokens["refresh_token"]
            self.save()
        elif "refresh_token" not in self.state:
            raise RuntimeError(
                f"{self.state_file} is missing: this config directory was onboarded elsewhere;"
                " delete the development config directory to start afresh"
            )
        tokens = await self.token_from(
            {"grant_type": "refresh_token", "refresh_token": self.state["refresh_token"]}
        )
        self.token = tokens["access_token"]
        for step, path, body in (
            ("core_config", "/api/onboarding/core_config", {}),
            ("analytics", "/api/onboarding/analytics", {}),
            (
                "integration",
                "/api/onboarding/integration",
                {"client_id": CLIENT_ID, "redirect_uri": CLIENT_ID},
            ),
        ):
            if steps.get(step) is False:
                await self.request("POST", path, json=body)

    async def run_flow(
        self, start_path: str, start: dict[str, Any], answers: dict[str, Any]
    ) -> Any:
        """Start a (sub)entry flow and answer each form step from ``answers``."""
        result = await self.request("POST", start_path, json=start)
        while result["type"] == "form":
            step = result["step_id"]
            result = await self.request(
                "POST", f"{start_path}/{result['flow_id']}", json=answers.get(step, {})
            )
        if result["type"] not in ("create_entry", "abort"):
            raise RuntimeError(f"flow {start} ended as {result}")
        return result

    async def confirm_http_config(self) -> None:
        """Confirm the HTTP settings of configuration.yaml, as an administrator would.

        Home Assistant 2026.10 moves YAML ``http:`` settings into a trial that it reverts,
        restarting, five minutes later unless an administrator confirms it
        (``http/config/promote``). Nothing pending (a later run) is fine.
        """
        async with self.session.ws_connect(self.base + "/api/websocket") as socket:
            assert (await socket.receive_json())["type"] == "auth_required"
            await socket.send_json({"type": "auth", "access_token": self.token})
            if (await socket.receive_json())["type"] != "auth_ok":
                raise RuntimeError("websocket authentication failed")
            await socket.send_json({"id": 1, "type": "http/config/promote"})
            while (answer := await socket.receive_json()).get("id") != 1:
                pass
            if not answer["success"]:
                print(f"develop: HTTP settings: {answer['error']['message']}", flush=True)

    async def entries(self, domain: str) -> list[dict[str, Any]]:
        """Return the config entries of ``domain``."""
        entries = await self.request("GET", f"/api/config/config_entries/entry?domain={domain}")
        return list(entries)

    async def drop_onboarding_extras(self) -> None:
        """Remove the weather, radio and TTS entries onboarding adds: they need the internet."""
        for domain in ONBOARDING_EXTRAS:
            for entry in await self.entries(domain):
                await self.request(
                    "DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}"
                )

    async def configure(self, mqtt_port: int) -> None:
        """MQTT integration, IoTee hub, its devices and an admin API key."""
        if not await self.entries("mqtt"):
            await self.run_flow(
                "/api/config/config_entries/flow",
                {"handler": "mqtt", "show_advanced_options": False},
                {
                    "broker": {
                        "broker": "127.0.0.1",
                        "port": mqtt_port,
                        "other_settings": {
                            "set_client_cert": False,
                            "set_ca_cert": "off",
                            "transport": "tcp",
                        },
                    }
                },
            )
        if not await self.entries("iotee"):
            await self.run_flow(
                "/api/config/config_entries/flow", {"handler": "iotee"}, {"user": {}}
            )
            await asyncio.sleep(2)
        (hub,) = await self.entries("iotee")
        added = set(self.state.get("devices", []))
        for device in DEVICES:
            if device["hardware_id"] in added:
                continue
            answers: dict[str, dict[str, Any]] = {
                "user": {k: device[k] for k in ("name", "device_type", "hardware_id")},
                "relays": {"relays": device.get("relays", 1)},
                "relay_locks": {"relay_locks": []},
            }
            for step, fields in device.get("steps", {}).items():
                answers[step] = answers.get(step, {}) | fields
            await self.run_flow(
                "/api/config/config_entries/subentries/flow",
                {"handler": [hub["entry_id"], "device"]},
                answers,
            )
            added.add(device["hardware_id"])
            self.state["devices"] = sorted(added)
            self.save()
        if "api_key" not in self.state:
            await asyncio.sleep(3)  # the hub reloads after each device
            created = await self.request(
                "POST",
                "/api/services/iotee/create_api_key?return_response",
                json={"name": "develop", "role": "admin"},
            )
            self.state["api_key"] = created["service_response"]["api_key"]
            self.save()


async def main() -> int:
    """Bootstrap and print what a developer needs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="http://127.0.0.1:8123")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--mqtt-port", type=int, required=True)
    args = parser.parse_args()
    async with aiohttp.ClientSession() as session:
        bootstrap = Bootstrap(session, args.base, args.config / ".iotee-develop.json")
        await bootstrap.wait_until_up()
        await bootstrap.onboard()
        await bootstrap.drop_onboarding_extras()
        await bootstrap.confirm_http_config()
        await bootstrap.configure(args.mqtt_port)
        state = bootstrap.state
    print(
        "\n=== IoTee development setup is ready ===\n"
        f"Home Assistant: {args.base}  (user: {OWNER['username']}, password: {OWNER['password']})\n"
        f"MQTT broker:    127.0.0.1:{args.mqtt_port}\n"
        "Devices:        "
        + ", ".join(f"{d['hardware_id']} ({d['device_type']})" for d in DEVICES)
        + "\n"
        f"Admin API key:  {state['api_key']}\n"
        f"  export IOTEE_API_KEY={state['api_key']}\n"
        "  curl -s -X POST http://127.0.0.1:8123/api/iotee/devices/ABC123/commands \\\n"
        '    -H "X-API-Key: $IOTEE_API_KEY" -H "Content-Type: application/json" \\\n'
        '    -d \'{"command": "unlock"}\'\n',
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

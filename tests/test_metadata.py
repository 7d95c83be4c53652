"""What hassfest and the HACS action would check, since neither runs offline."""

from __future__ import annotations

import json
from pathlib import Path

from custom_components.iotee.const import DOMAIN

ROOT = Path(__file__).parent.parent
INTEGRATION = ROOT / "custom_components" / DOMAIN
HACS_KEYS = {
    "name",
    "content_in_root",
    "zip_release",
    "filename",
    "hide_default_branch",
    "country",
    "homeassistant",
    "hacs",
    "persistent_directory",
    "render_readme",
}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_manifest_keys_and_order() -> None:
    """domain, name, then the rest sorted; the keys hassfest requires of a custom integration."""
    manifest = load(INTEGRATION / "manifest.json")
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert manifest["domain"] == DOMAIN
    for key in ("codeowners", "documentation", "issue_tracker", "version", "iot_class"):
        assert manifest[key]
    assert manifest["config_flow"] is True
    assert manifest["dependencies"] == ["http", "mqtt", "websocket_api"]
    assert manifest["after_dependencies"] == ["frontend", "panel_custom"]
    assert manifest["iot_class"] == "local_push"
    assert manifest["integration_type"] == "hub"


def test_hacs_json() -> None:
    """Only keys HACS knows; the minimum HA version is the one CI tests."""
    hacs = load(ROOT / "hacs.json")
    assert set(hacs) <= HACS_KEYS
    assert hacs["name"] == "IoTee"
    requirements = (ROOT / "requirements_test.txt").read_text()
    assert "pytest-homeassistant-custom-component==0.13.375" in requirements
    assert hacs["homeassistant"] == "2026.10.4"
    assert (ROOT / "info.md").read_text().strip()
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_translations_match_strings() -> None:
    """translations/en.json is exactly strings.json."""
    assert load(INTEGRATION / "strings.json") == load(INTEGRATION / "translations" / "en.json")


def test_services_have_translations_and_icons() -> None:
    """Every service in services.yaml has a name, description and icon."""
    import yaml

    services = yaml.safe_load((INTEGRATION / "services.yaml").read_text())
    strings = load(INTEGRATION / "strings.json")["services"]
    icons = load(INTEGRATION / "icons.json")["services"]
    for name, spec in services.items():
        assert strings[name]["name"]
        assert strings[name]["description"]
        assert name in icons
        for field in spec.get("fields", {}):
            assert strings[name]["fields"][field]["name"]


def test_brand_icon_is_a_png() -> None:
    """HA 2026.3+ reads local brand images."""
    assert (INTEGRATION / "brand" / "icon.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

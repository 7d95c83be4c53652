"""Config flow: the IoTee hub, its options, and devices as config subentries."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, override

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentry,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)
from homeassistant.helpers.translation import async_get_translations
from homeassistant.helpers.typing import DiscoveryInfoType
import probatio as vol  # HA's schema library; `voluptuous` resolves to its shim at run time

from .const import (
    COMMAND_QOS_AUTO,
    COMMAND_QOS_CHOICES,
    CONF_COMMAND_QOS,
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
    DEFAULT_COMMAND_QOS,
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_RATE_CALLER,
    DEFAULT_RATE_DEVICE,
    DEFAULT_RELAY_COOLDOWN,
    DEFAULT_RETENTION_DAYS,
    DEFAULT_SYNC_WAIT,
    DOMAIN,
    SUBENTRY_DEVICE,
)
from .core.custom_device import CUSTOM, KIND as CUSTOM_KIND, KIND_RELAYS as CUSTOM_RELAYS
from .core.device_settings import KEY_RELAY_KEYS
from .core.device_types import DEVICE_TYPES
from .core.zigbee2mqtt import BridgeDevice
from .custom_flow import CustomDeviceFlow
from .device_flow import (
    DELIVERY_KEYS,
    bridge_choices,
    check_delivery,
    check_relay_keys,
    check_settings,
    delivery_fields,
    pick_schema,
    picked_settings,
    relay_keys_field,
    settings_schema,
)

CONF_NAME = "name"
MAX_RELAYS = 32
HUB_UNIQUE_ID = DOMAIN
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
"""Ids end up in MQTT topics: no '/', '+', '#' or spaces."""

DEFAULT_OPTIONS: dict[str, Any] = {
    CONF_COMMAND_TIMEOUT: DEFAULT_COMMAND_TIMEOUT,
    CONF_SYNC_WAIT: DEFAULT_SYNC_WAIT,
    CONF_RETENTION_DAYS: DEFAULT_RETENTION_DAYS,
    CONF_RATE_CALLER: DEFAULT_RATE_CALLER,
    CONF_RATE_DEVICE: DEFAULT_RATE_DEVICE,
    CONF_RELAY_COOLDOWN: DEFAULT_RELAY_COOLDOWN,
    CONF_COMMAND_QOS: DEFAULT_COMMAND_QOS,
}


def _mqtt_ready(flow: ConfigFlow) -> bool:
    """Return True when Home Assistant's MQTT integration is set up and enabled."""
    return any(
        entry.disabled_by is None for entry in flow.hass.config_entries.async_entries("mqtt")
    )


def _number(minimum: float, maximum: float, step: float = 1, unit: str | None = None) -> Any:
    config = NumberSelectorConfig(min=minimum, max=maximum, step=step, mode=NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


def _hub_entry(flow: ConfigFlow | ConfigSubentryFlow) -> ConfigEntry | None:
    entries = flow.hass.config_entries.async_entries(DOMAIN, include_ignore=False)
    return entries[0] if entries else None


def _configured_ids(entry: ConfigEntry) -> set[str]:
    return {
        subentry.data[CONF_HARDWARE_ID]
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_DEVICE
    }


async def _async_type_name(hass: HomeAssistant, device_type: str) -> str:
    """Return the device type's name in HA's language, as the add-device form lists it."""
    translations = await async_get_translations(hass, hass.config.language, "selector", [DOMAIN])
    key = f"component.{DOMAIN}.selector.{CONF_DEVICE_TYPE}.options.{device_type}"
    return translations.get(key, device_type)


def discovery_unique_id(device_type: str, hardware_id: str) -> str:
    """Return the unique id of the discovery offer of one device (what Ignore remembers)."""
    return f"{device_type}:{hardware_id}"


@callback
def _async_abort_discoveries(
    hass: HomeAssistant, hardware_id: str, keep_flow_id: str | None = None
) -> None:
    """Remove the open discovery offers of ``hardware_id``, which is configured now."""
    offers = {discovery_unique_id(device_type, hardware_id) for device_type in DEVICE_TYPES}
    for flow in hass.config_entries.flow.async_progress_by_handler(
        DOMAIN, include_uninitialized=True
    ):
        if flow["flow_id"] != keep_flow_id and flow["context"].get("unique_id") in offers:
            hass.config_entries.flow.async_abort(flow["flow_id"])


def _scope_option(scope: str) -> str:
    """Return the selector value of an API key scope: a translation key, so no ':'."""
    return scope.replace(":", "_")


class IoteeConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up the IoTee hub (one per Home Assistant) and confirm discovered devices."""

    VERSION = 1

    def __init__(self) -> None:
        """Start with nothing discovered."""
        self._discovered: dict[str, Any] = {}
        self._type_name = ""

    @staticmethod
    @callback
    @override
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """Return the hub options flow."""
        return IoteeOptionsFlow()

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Devices are subentries of the hub."""
        return {SUBENTRY_DEVICE: DeviceSubentryFlow}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Create the hub after a confirmation."""
        if _hub_entry(self) is not None:
            return self.async_abort(reason="single_instance_allowed")
        if not _mqtt_ready(self):
            return self.async_abort(reason="mqtt_not_configured")
        if user_input is None:
            return self.async_show_form(step_id="user")
        await self.async_set_unique_id(HUB_UNIQUE_ID)
        self._abort_if_unique_id_configured()
        return self.async_create_entry(title="IoTee", data={}, options=dict(DEFAULT_OPTIONS))

    async def async_step_integration_discovery(
        self, discovery_info: DiscoveryInfoType
    ) -> ConfigFlowResult:
        """A device of a built-in type said it is online and is not configured yet."""
        device_type = discovery_info[CONF_DEVICE_TYPE]
        hardware_id = discovery_info[CONF_HARDWARE_ID]
        await self.async_set_unique_id(discovery_unique_id(device_type, hardware_id))
        self._abort_if_unique_id_configured()
        hub = _hub_entry(self)
        if hub is None:
            return self.async_abort(reason="hub_not_configured")
        if hardware_id in _configured_ids(hub):
            return self.async_abort(reason="already_configured")
        self._discovered = {CONF_DEVICE_TYPE: device_type, CONF_HARDWARE_ID: hardware_id}
        self._type_name = await _async_type_name(self.hass, device_type)
        self.context["title_placeholders"] = {"name": hardware_id, "device_type": self._type_name}
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask the user to add the discovered device to the hub."""
        device_type = self._discovered[CONF_DEVICE_TYPE]
        hardware_id = self._discovered[CONF_HARDWARE_ID]
        dtype = DEVICE_TYPES[device_type]
        if user_input is None:
            schema: dict[Any, Any] = {vol.Required(CONF_NAME, default=hardware_id): str}
            if dtype.has_relays:
                schema[vol.Required(CONF_RELAYS, default=1)] = _number(1, MAX_RELAYS)
            return self.async_show_form(
                step_id="discovery_confirm",
                data_schema=vol.Schema(schema),
                description_placeholders={
                    "hardware_id": hardware_id,
                    "device_type": self._type_name,
                },
            )
        hub = _hub_entry(self)
        if hub is None:
            return self.async_abort(reason="hub_not_configured")
        if hardware_id in _configured_ids(hub):
            return self.async_abort(reason="already_configured")
        data: dict[str, Any] = {CONF_HARDWARE_ID: hardware_id, CONF_DEVICE_TYPE: device_type}
        if dtype.has_relays:
            data[CONF_RELAYS] = int(user_input[CONF_RELAYS])
            data[CONF_RELAY_LOCKS] = []
        self.hass.config_entries.async_add_subentry(
            hub,
            ConfigSubentry(
                data=MappingProxyType(data),
                subentry_type=SUBENTRY_DEVICE,
                title=user_input[CONF_NAME],
                unique_id=hardware_id,
            ),
        )
        _async_abort_discoveries(self.hass, hardware_id, keep_flow_id=self.flow_id)
        return self.async_abort(reason="device_added")


class IoteeOptionsFlow(OptionsFlow):
    """Hub options: timeouts, retention and REST API limits; REST API keys."""

    def __init__(self) -> None:
        """Start with no key created."""
        self._created: dict[str, str] = {}

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose: settings, create an API key, revoke an API key."""
        return self.async_show_menu(
            step_id="init", menu_options=["settings", "create_api_key", "revoke_api_key"]
        )

    async def async_step_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Edit the hub options."""
        if user_input is not None:
            options = {key: user_input[key] for key in DEFAULT_OPTIONS}
            if options[CONF_COMMAND_QOS] != COMMAND_QOS_AUTO:
                options[CONF_COMMAND_QOS] = int(options[CONF_COMMAND_QOS])  # a choice is a string
            return self.async_create_entry(data=options)
        schema = vol.Schema(
            {
                vol.Required(CONF_COMMAND_TIMEOUT): _number(1, 300, 0.5, "s"),
                vol.Required(CONF_SYNC_WAIT): _number(0, 60, 0.5, "s"),
                vol.Required(CONF_RETENTION_DAYS): _number(1, 3650, 1, "d"),
                vol.Required(CONF_RATE_CALLER): _number(1, 100000),
                vol.Required(CONF_RATE_DEVICE): _number(1, 10000),
                vol.Required(CONF_RELAY_COOLDOWN): _number(0, 3600, 0.5, "s"),
                vol.Required(CONF_COMMAND_QOS): SelectSelector(
                    SelectSelectorConfig(
                        options=[str(qos) for qos in COMMAND_QOS_CHOICES],
                        translation_key=CONF_COMMAND_QOS,
                        mode=SelectSelectorMode.LIST,
                    )
                ),
            }
        )
        current = DEFAULT_OPTIONS | dict(self.config_entry.options)
        current[CONF_COMMAND_QOS] = str(current[CONF_COMMAND_QOS])
        return self.async_show_form(
            step_id="settings",
            data_schema=self.add_suggested_values_to_schema(schema, current),
        )

    async def async_step_create_api_key(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Name, role, scopes and optional expiry of a new REST API key."""
        from .api.keys import MAX_EXPIRY_DAYS, SCOPES, ApiKeyError, Role
        from .api.state import DATA_API

        scopes = {_scope_option(scope): scope for scope in SCOPES}
        errors: dict[str, str] = {}
        if user_input is not None:
            expires = user_input.get("expires_in_days")
            try:
                created = await self.hass.data[DATA_API].keys.async_create(
                    str(user_input[CONF_NAME]),
                    user_input["role"],
                    [scopes.get(option, option) for option in user_input["scopes"]],
                    None if expires is None else float(expires),
                )
            except ApiKeyError:
                errors["base"] = "invalid_api_key"
            else:
                self._created = {
                    "name": created.key.name,
                    "key_id": created.key.key_id,
                    "api_key": created.secret,
                }
                return await self.async_step_api_key_created()
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME): TextSelector(),
                vol.Required("role", default=Role.USER.value): SelectSelector(
                    SelectSelectorConfig(
                        options=[role.value for role in Role],
                        translation_key="api_key_role",
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                vol.Required("scopes", default=list(scopes)): SelectSelector(
                    SelectSelectorConfig(
                        options=list(scopes),
                        translation_key="api_key_scope",
                        multiple=True,
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                vol.Optional("expires_in_days"): _number(1, MAX_EXPIRY_DAYS, 1, "d"),
            }
        )
        return self.async_show_form(
            step_id="create_api_key",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
        )

    async def async_step_api_key_created(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the new key's secret, this once; the options stay as they are."""
        if user_input is not None:
            self._created = {}
            return self.async_create_entry(data=dict(self.config_entry.options))
        return self.async_show_form(
            step_id="api_key_created",
            data_schema=vol.Schema({}),
            description_placeholders=self._created,
        )

    async def async_step_revoke_api_key(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Pick a key to revoke; it stops working at once."""
        from homeassistant.helpers.selector import SelectOptionDict

        from .api.keys import ApiKeyError
        from .api.state import DATA_API

        keys = self.hass.data[DATA_API].keys
        if not keys.keys:
            return self.async_abort(reason="no_api_keys")
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                await keys.async_revoke(user_input["key_id"])
            except ApiKeyError:
                errors["base"] = "unknown_api_key"
            else:
                return self.async_create_entry(data=dict(self.config_entry.options))
        options = [
            SelectOptionDict(
                value=key.key_id,
                label=f"{key.name} ({key.key_id}, {key.role.value}"
                + (", expired)" if key.expired() else ")"),
            )
            for key in keys.keys
        ]
        return self.async_show_form(
            step_id="revoke_api_key",
            data_schema=vol.Schema(
                {
                    vol.Required("key_id"): SelectSelector(
                        SelectSelectorConfig(options=options, mode=SelectSelectorMode.DROPDOWN)
                    )
                }
            ),
            errors=errors,
        )


class DeviceSubentryFlow(CustomDeviceFlow):
    """Add or reconfigure one device of the hub."""

    def __init__(self) -> None:
        """Start empty."""
        self._data: dict[str, Any] = {}
        self._title = ""
        self._choices: list[BridgeDevice] = []

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Name, type and id of the device."""
        errors: dict[str, str] = {}
        if user_input is not None:
            hardware_id = user_input[CONF_HARDWARE_ID].strip()
            delivery, errors = check_delivery(user_input, self._max_queue_minutes())
            if errors:
                pass
            elif not ID_PATTERN.match(hardware_id):
                errors[CONF_HARDWARE_ID] = "invalid_id"
            elif hardware_id in _configured_ids(self._get_entry()):
                errors[CONF_HARDWARE_ID] = "already_configured"
            else:
                self._title = user_input[CONF_NAME].strip() or hardware_id
                self._data = {
                    CONF_HARDWARE_ID: hardware_id,
                    CONF_DEVICE_TYPE: user_input[CONF_DEVICE_TYPE],
                    **delivery,
                }
                return await self._async_next_step()
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME): TextSelector(),
                vol.Required(CONF_DEVICE_TYPE): SelectSelector(
                    SelectSelectorConfig(
                        options=list(DEVICE_TYPES),
                        translation_key=CONF_DEVICE_TYPE,
                        mode=SelectSelectorMode.DROPDOWN,
                    )
                ),
                vol.Required(CONF_HARDWARE_ID): TextSelector(),
                **delivery_fields({}, self._max_queue_minutes()),
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
        )

    async def _async_next_step(self) -> SubentryFlowResult:
        """After name and type: the type's settings, then its relays, then done."""
        if self._data[CONF_DEVICE_TYPE] == CUSTOM:
            return await self.async_step_custom()
        if self.source != "reconfigure":
            stored = [
                sub.data
                for sub in self._get_entry().subentries.values()
                if sub.subentry_type == SUBENTRY_DEVICE
            ]
            self._choices = bridge_choices(self.hass, self._data[CONF_DEVICE_TYPE], stored)
            if self._choices:
                return await self.async_step_zigbee2mqtt_pick()
        dtype = DEVICE_TYPES[self._data[CONF_DEVICE_TYPE]]
        if dtype.settings:
            return await self.async_step_settings()
        return await self._async_after_settings()

    async def async_step_zigbee2mqtt_pick(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Pick one of the devices Zigbee2MQTT lists (not configured yet), or none to type it."""
        if user_input is not None:
            picked = user_input.get("bridge_device")
            if picked is not None and picked.isdecimal() and int(picked) < len(self._choices):
                self._data |= picked_settings(self._choices[int(picked)])
            return await self.async_step_settings()
        return self.async_show_form(
            step_id="zigbee2mqtt_pick", data_schema=pick_schema(self._choices)
        )

    async def _async_after_custom(self) -> SubentryFlowResult:
        return await self._async_after_settings()

    async def _async_after_settings(self) -> SubentryFlowResult:
        dtype = DEVICE_TYPES[self._data[CONF_DEVICE_TYPE]]
        if dtype.has_relays or self._data.get(CUSTOM_KIND) == CUSTOM_RELAYS:
            return await self.async_step_relays()
        if self.source == "reconfigure":
            return self.async_update_and_abort(
                self._get_entry(),
                self._get_reconfigure_subentry(),
                title=self._title,
                data=self._data,
            )
        return self._create_device(self._data)

    async def async_step_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """The family's settings: topic prefix, friendly name and base topic, object ids."""
        dtype = DEVICE_TYPES[self._data[CONF_DEVICE_TYPE]]
        errors: dict[str, str] = {}
        if user_input is not None:
            values, errors = check_settings(dtype, user_input)
            if not errors:
                self._data |= values
                return await self._async_after_settings()
        schema = settings_schema(dtype, self._data, self._data[CONF_HARDWARE_ID])
        return self.async_show_form(
            step_id="settings",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders={"device_type": await _async_type_name(self.hass, dtype.name)},
        )

    async def async_step_relays(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Relay count, the Tasmota topic and relay names; then which relays are locks."""
        is_tasmota = self._data[CONF_DEVICE_TYPE] == "tasmota"
        dtype = DEVICE_TYPES[self._data[CONF_DEVICE_TYPE]]
        errors: dict[str, str] = {}
        if user_input is not None:
            relays = int(user_input[CONF_RELAYS])
            topic = str(user_input.get(CONF_MQTT_TOPIC, "")).strip()
            relay_keys = check_relay_keys(dtype, user_input, relays)
            if is_tasmota and not ID_PATTERN.match(topic):
                errors[CONF_MQTT_TOPIC] = "invalid_id"
            elif relay_keys is None:
                errors[KEY_RELAY_KEYS] = "invalid_relay_keys"
            else:
                self._data[CONF_RELAYS] = relays
                if is_tasmota:
                    self._data[CONF_MQTT_TOPIC] = topic
                if dtype.relay_keys:
                    self._data[KEY_RELAY_KEYS] = relay_keys
                return await self.async_step_relay_locks()
        schema: dict[Any, Any] = {
            vol.Required(CONF_RELAYS, default=self._data.get(CONF_RELAYS, 1)): _number(
                1, MAX_RELAYS
            ),
        }
        if is_tasmota:
            schema[
                vol.Required(
                    CONF_MQTT_TOPIC,
                    default=self._data.get(CONF_MQTT_TOPIC, self._data[CONF_HARDWARE_ID]),
                )
            ] = TextSelector()
        schema |= relay_keys_field(dtype, self._data)
        return self.async_show_form(step_id="relays", data_schema=vol.Schema(schema), errors=errors)

    def _max_queue_minutes(self) -> float:
        """A command is kept queued at most as long as the history keeps its record."""
        days = float(self._get_entry().options.get(CONF_RETENTION_DAYS, DEFAULT_RETENTION_DAYS))
        return days * 24 * 60

    async def async_step_relay_locks(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Which of the device's relays drive a lock: a choice of exactly its relays."""
        relays = range(1, self._data[CONF_RELAYS] + 1)
        if user_input is not None:
            # The form offers only relays 1..N; Home Assistant refuses any other value before.
            data = self._data | {
                CONF_RELAY_LOCKS: sorted({int(relay) for relay in user_input[CONF_RELAY_LOCKS]})
            }
            if self.source == "reconfigure":
                return self.async_update_and_abort(
                    self._get_entry(),
                    self._get_reconfigure_subentry(),
                    title=self._title,
                    data=data,
                )
            return self._create_device(data)
        current = [str(r) for r in self._data.get(CONF_RELAY_LOCKS, []) if r in relays]
        return self.async_show_form(
            step_id="relay_locks",
            data_schema=vol.Schema(
                {
                    vol.Optional(CONF_RELAY_LOCKS, default=current): SelectSelector(
                        SelectSelectorConfig(
                            options=[str(relay) for relay in relays], multiple=True
                        )
                    )
                }
            ),
        )

    def _create_device(self, data: dict[str, Any]) -> SubentryFlowResult:
        """Create the device subentry and remove its discovery offers.

        Should another flow have added the id meanwhile, HA aborts this one: the id is
        configured either way.
        """
        _async_abort_discoveries(self.hass, data[CONF_HARDWARE_ID])
        return self.async_create_entry(
            title=self._title, data=data, unique_id=data[CONF_HARDWARE_ID]
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Rename the device and change its relays; its id and type stay."""
        subentry = self._get_reconfigure_subentry()
        self._data = dict(subentry.data)
        errors: dict[str, str] = {}
        if user_input is not None:
            delivery, errors = check_delivery(user_input, self._max_queue_minutes())
            if not errors:
                self._title = user_input[CONF_NAME].strip() or subentry.title
                for key in DELIVERY_KEYS:
                    self._data.pop(key, None)
                self._data |= delivery
                return await self._async_next_step()
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_NAME, default=subentry.title): TextSelector(),
                    **delivery_fields(self._data, self._max_queue_minutes()),
                }
            ),
            errors=errors,
            description_placeholders={
                "hardware_id": self._data[CONF_HARDWARE_ID],
                "device_type": await _async_type_name(self.hass, self._data[CONF_DEVICE_TYPE]),
            },
        )

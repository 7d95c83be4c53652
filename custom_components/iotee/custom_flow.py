"""The add-device steps of a device the user describes (device type ``custom``).

Steps: ``custom`` (lock or relays, command topic, how it confirms, availability) ->
``custom_payloads`` -> ``custom_state`` or ``custom_result`` -> the relays step for relay devices.
What each field means and how it is checked is ``core/custom_device.py``'s.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)
import probatio as vol  # HA's schema library; `voluptuous` resolves to its shim at run time

from .core import custom_device as cd

PLACEHOLDERS = {
    "relay": "{relay}",
    "command_id": "{command_id}",
    "action": "{action}",
    "example": '{{"id": "{command_id}", "do": "{action}"}}',
}
"""The template placeholders, shown as themselves in the forms' texts."""


def _schema(fields: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[Any, Any]:
    """Return a schema: ``fields`` maps a name to its default (a selector is picked by type)."""
    schema: dict[Any, Any] = {}
    for name, default in fields.items():
        marker = vol.Optional if name in optional else vol.Required
        schema[marker(name, default=default)] = TextSelector()
    return schema


class CustomDeviceFlow(ConfigSubentryFlow):
    """The steps of a user-defined device; the device flow continues after them."""

    _data: dict[str, Any]

    async def _async_after_custom(self) -> SubentryFlowResult:
        """Go on after the description (relays, or create/update the device)."""
        raise NotImplementedError

    def _value(self, name: str, default: str) -> str:
        return str(self._data.get(name, default))

    def _accept(self, fields: tuple[str, ...], user_input: dict[str, Any] | None) -> Any:
        """Store ``user_input`` when every field is fine and return None; else the errors."""
        if user_input is None:
            return {}
        values = {key: str(value).strip() for key, value in user_input.items()}
        errors = cd.check(self._data | values, fields)
        if errors:
            return errors
        self._data |= values
        return None

    def _form(
        self,
        step_id: str,
        schema: dict[Any, Any],
        user_input: dict[str, Any] | None,
        errors: dict[str, str],
    ) -> SubentryFlowResult:
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(vol.Schema(schema), user_input or {}),
            errors=errors,
            description_placeholders=PLACEHOLDERS,
        )

    async def async_step_custom(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Lock or relays, the command topic, how the device confirms, its availability."""
        schema: dict[Any, Any] = {
            vol.Required(cd.KIND, default=self._value(cd.KIND, cd.KIND_RELAYS)): SelectSelector(
                SelectSelectorConfig(
                    options=[cd.KIND_RELAYS, cd.KIND_LOCK],
                    translation_key="custom_kind",
                    mode=SelectSelectorMode.LIST,
                )
            ),
            vol.Required(cd.COMMAND_TOPIC, default=self._value(cd.COMMAND_TOPIC, "")): (
                TextSelector()
            ),
            vol.Required(
                cd.CONFIRM, default=self._value(cd.CONFIRM, cd.CONFIRM_STATE)
            ): SelectSelector(
                SelectSelectorConfig(
                    options=[cd.CONFIRM_STATE, cd.CONFIRM_RESULT, cd.CONFIRM_NONE],
                    translation_key="custom_confirm",
                    mode=SelectSelectorMode.LIST,
                )
            ),
        }
        schema |= _schema(
            {
                cd.AVAILABILITY_TOPIC: self._value(cd.AVAILABILITY_TOPIC, ""),
                cd.PAYLOAD_ONLINE: self._value(cd.PAYLOAD_ONLINE, "online"),
                cd.PAYLOAD_OFFLINE: self._value(cd.PAYLOAD_OFFLINE, "offline"),
            },
            optional=(cd.AVAILABILITY_TOPIC,),
        )
        fields = (cd.COMMAND_TOPIC, cd.AVAILABILITY_TOPIC, cd.PAYLOAD_ONLINE, cd.PAYLOAD_OFFLINE)
        errors = self._accept(fields, user_input)
        if errors is not None:
            return self._form("custom", schema, user_input, errors)
        return await self.async_step_custom_payloads()

    async def async_step_custom_payloads(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """The payload of each command (templates with {relay}, {command_id}, {action})."""
        if self._data.get(cd.KIND) == cd.KIND_LOCK:
            fields: dict[str, Any] = {
                cd.PAYLOAD_LOCK: self._value(cd.PAYLOAD_LOCK, "LOCK"),
                cd.PAYLOAD_UNLOCK: self._value(cd.PAYLOAD_UNLOCK, "UNLOCK"),
            }
            schema = _schema(fields)
        else:
            fields = {
                cd.PAYLOAD_ON: self._value(cd.PAYLOAD_ON, "ON"),
                cd.PAYLOAD_OFF: self._value(cd.PAYLOAD_OFF, "OFF"),
            }
            schema = _schema(fields)
            schema[vol.Required(cd.JOG, default=self._value(cd.JOG, cd.JOG_NONE))] = SelectSelector(
                SelectSelectorConfig(
                    options=[cd.JOG_NONE, cd.JOG_DEVICE, cd.JOG_IOTEE],
                    translation_key="custom_jog",
                    mode=SelectSelectorMode.LIST,
                )
            )
            schema |= _schema(
                {
                    cd.PAYLOAD_JOG: self._value(cd.PAYLOAD_JOG, ""),
                    cd.JOG_SECONDS: self._value(cd.JOG_SECONDS, "1"),
                },
                optional=(cd.PAYLOAD_JOG, cd.JOG_SECONDS),
            )
            fields |= {cd.JOG: "", cd.PAYLOAD_JOG: "", cd.JOG_SECONDS: ""}
        errors = self._accept(tuple(fields), user_input)
        if errors is not None:
            return self._form("custom_payloads", schema, user_input, errors)
        if self._data.get(cd.CONFIRM) == cd.CONFIRM_RESULT:
            return await self.async_step_custom_result()
        if self._data.get(cd.CONFIRM) == cd.CONFIRM_NONE:
            return await self._async_after_custom()
        return await self.async_step_custom_state()

    async def async_step_custom_state(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Confirmed when the state (or a field of its JSON) equals the target value."""
        is_lock = self._data.get(cd.KIND) == cd.KIND_LOCK
        fields = {
            cd.STATE_TOPIC: self._value(cd.STATE_TOPIC, ""),
            cd.STATE_PATH: self._value(cd.STATE_PATH, ""),
            cd.VALUE_ON: self._value(cd.VALUE_ON, "LOCKED" if is_lock else "ON"),
            cd.VALUE_OFF: self._value(cd.VALUE_OFF, "UNLOCKED" if is_lock else "OFF"),
        }
        schema = _schema(fields, optional=(cd.STATE_PATH,))
        errors = self._accept(tuple(fields), user_input)
        if errors is not None:
            return self._form("custom_state", schema, user_input, errors)
        return await self._async_after_custom()

    async def async_step_custom_result(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Confirmed by a JSON result that names the command id."""
        fields = {
            cd.RESULT_TOPIC: self._value(cd.RESULT_TOPIC, ""),
            cd.ID_FIELD: self._value(cd.ID_FIELD, "id"),
            cd.STATUS_FIELD: self._value(cd.STATUS_FIELD, "status"),
            cd.SUCCESS_VALUES: self._value(cd.SUCCESS_VALUES, "SUCCESS"),
            cd.FAILURE_VALUES: self._value(cd.FAILURE_VALUES, "FAILED"),
            cd.REASON_FIELD: self._value(cd.REASON_FIELD, "reason"),
        }
        schema = _schema(fields, optional=(cd.FAILURE_VALUES, cd.REASON_FIELD))
        errors = self._accept(tuple(fields), user_input)
        if errors is not None:
            return self._form("custom_result", schema, user_input, errors)
        return await self._async_after_custom()

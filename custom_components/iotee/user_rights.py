"""What Home Assistant users may do with tracked commands, by the one table in ``core.rights``.

An administrator is ``admin``. A user with control permission (HA's ``POLICY_CONTROL`` on every
entity) holds the scopes ``device:control`` and ``device:read``; any other user (HA's read-only
group) ``device:read`` only. The REST API gives an HA access token these rights; every action
checks its caller with ``async_check_call``. An action called without a user (an automation, a
script, Home Assistant itself) is the system and may do everything. A refusal is Home
Assistant's ``Unauthorized``, with a translated message naming the action.
"""

from __future__ import annotations

from typing import Final

from homeassistant.auth.models import User
from homeassistant.auth.permissions.const import POLICY_CONTROL
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import HomeAssistantError, Unauthorized

from .const import DOMAIN
from .core.rights import SCOPE_CONTROL, SCOPE_READ, Operation, Right, missing

ALL_SCOPES = frozenset({SCOPE_CONTROL, SCOPE_READ})
READ_ONLY = frozenset({SCOPE_READ})


def user_scopes(user: User) -> frozenset[str]:
    """Return the scopes a Home Assistant user holds."""
    if user.is_admin or user.permissions.access_all_entities(POLICY_CONTROL):
        return ALL_SCOPES
    return READ_ONLY


REFUSAL_KEYS: Final[dict[Right, str]] = {
    Right.ADMIN: "action_needs_admin",
    Right.CONTROL: "action_needs_control",
    Right.READ: "action_needs_read",
}
"""The translated refusal of an action, by the first right its user lacks."""


class ActionRefusedError(Unauthorized):
    """An action refused because its user lacks a right the operation needs."""

    def __init__(self, call: ServiceCall, right: Right) -> None:
        """Refuse ``call``: ``right`` is the first right its user lacks."""
        Unauthorized.__init__(
            self, context=call.context, user_id=call.context.user_id, permission=right.value
        )
        HomeAssistantError.__init__(
            self,
            translation_domain=DOMAIN,
            translation_key=REFUSAL_KEYS[right],
            translation_placeholders={"action": f"{call.domain}.{call.service}"},
        )
        self.right = right


async def async_check_call(hass: HomeAssistant, call: ServiceCall, operation: Operation) -> None:
    """Raise ``ActionRefusedError`` unless the caller of ``call`` may perform ``operation``."""
    user_id = call.context.user_id
    if user_id is None:
        return
    user = await hass.auth.async_get_user(user_id)
    if user is None:  # an unknown user holds nothing
        lacking = missing(operation, is_admin=False, scopes=frozenset())
    else:
        lacking = missing(operation, is_admin=user.is_admin, scopes=user_scopes(user))
    if lacking:
        raise ActionRefusedError(call, lacking[0])

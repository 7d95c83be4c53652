"""Home Assistant's cap on enabled entities per config entry, as the hub meets it.

HA adds at most ``MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY`` (10,000) enabled entities per config
entry (``helpers/entity_platform.py``): further new entities are not added, with one warning in
the log. Every IoTee device is a subentry of the one hub entry, so a home of more than about
2,000 devices (5 entities each for a 4-relay controller) has devices without entities. After the
platforms are set up this module finds the devices that lost entities to the cap and tells the
user through one repair issue (what is missing and what to do); the issue goes when none do.
"""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_platform, entity_registry as er, issue_registry as ir
from homeassistant.helpers.entity import Entity

from .const import DOMAIN
from .runtime import IoteeConfigEntry

ISSUE_ENTITY_LIMIT = "entity_limit_reached"
LISTED_DEVICES = 10
"""How many of the devices without (all) entities the repair issue names."""


@callback
def entities_ha_accepts[E: Entity](
    hass: HomeAssistant, entry_id: str, platform: Platform, entities: list[E]
) -> list[E]:
    """Return those of ``entities`` HA adds, as HA decides it entity by entity: one already in
    the entity registry, one disabled by default, and a new enabled one while the entry has
    fewer enabled entities than the limit.

    Offering the others would cost HA a device registry lookup, object ids and an abort each
    (about a sixth of a 5,000-device start, measured by the benchmark's row 5) and a warning in
    the log; ``async_check_entity_limit`` counts them all the same.
    """
    registry = er.async_get(hass)
    room = (
        entity_platform.MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY
        - registry.entities.get_enabled_count_for_config_entry_id(entry_id)
    )
    if room >= len(entities):
        return entities
    accepted: list[E] = []
    for entity in entities:
        if not entity.entity_registry_enabled_default or (
            entity.unique_id is not None
            and registry.async_get_entity_id(platform, DOMAIN, entity.unique_id) is not None
        ):
            accepted.append(entity)
        elif room > 0:
            accepted.append(entity)
            room -= 1
    return accepted


@callback
def async_check_entity_limit(hass: HomeAssistant, entry: IoteeConfigEntry) -> list[str]:
    """Raise (or clear) the repair issue; return the names of the devices missing entities.

    An entity HA declined to add because of the limit is not in the entity registry after
    setup (one the user disabled is, and so is every entity HA added); only while the entry is
    at HA's limit is a missing one the limit's doing.
    """
    limit = entity_platform.MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY
    registry = er.async_get(hass)
    runtime = entry.runtime_data
    short: list[str] = []
    missing = 0
    if registry.entities.get_enabled_count_for_config_entry_id(entry.entry_id) >= limit:
        registered = {
            registered.unique_id
            for registered in er.async_entries_for_config_entry(registry, entry.entry_id)
        }
        for subentry_id, config in runtime.devices.items():
            lost = sum(
                1
                for entity in runtime.entities.get(subentry_id, ())
                if entity.unique_id not in registered
            )
            if lost:
                short.append(config.name)
                missing += lost
    if not short:
        ir.async_delete_issue(hass, DOMAIN, ISSUE_ENTITY_LIMIT)
        return short
    listed = ", ".join(short[:LISTED_DEVICES])
    if len(short) > LISTED_DEVICES:
        listed += f" (+{len(short) - LISTED_DEVICES})"
    ir.async_create_issue(
        hass,
        DOMAIN,
        ISSUE_ENTITY_LIMIT,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_ENTITY_LIMIT,
        translation_placeholders={
            "limit": f"{limit:,}",
            "devices": str(len(short)),
            "entities": str(missing),
            "names": listed,
        },
    )
    return short

"""Integration API keys: created and revoked by administrators, stored only as hashes.

A key's secret is ``ik_<8 hex>.<43 url-safe characters>`` (256 random bits). The part before the
dot is the key's public id; only the SHA-256 of the whole secret is stored (in
``.storage/iotee.api_keys``), and a presented secret is compared with ``hmac.compare_digest`` after
a lookup by id, so the comparison takes the same time whatever the secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
import hashlib
import hmac
import re
import secrets
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from custom_components.iotee.core.model import isoformat_z, utcnow
from custom_components.iotee.core.rights import SCOPE_CONTROL, SCOPE_READ

STORAGE_KEY: Final = "iotee.api_keys"
STORAGE_VERSION: Final = 1
KEY_PREFIX: Final = "ik_"
KEY_ID_PATTERN: Final = re.compile(r"ik_[0-9a-f]{8}")
MAX_NAME_LENGTH: Final = 100
MAX_EXPIRY_DAYS: Final = 3650

SCOPE_DEVICE_CONTROL: Final = SCOPE_CONTROL
"""Send commands (both APIs) and read them."""
SCOPE_DEVICE_READ: Final = SCOPE_READ
"""Read devices' command history, single commands and WLTE command results."""
SCOPES: Final = (SCOPE_DEVICE_CONTROL, SCOPE_DEVICE_READ)

_DUMMY_HASH: Final = hashlib.sha256(b"iotee: no such key").hexdigest()


class Role(StrEnum):
    """What a key may do beyond its scopes: admins reach the admin-only endpoints."""

    USER = "user"
    ADMIN = "admin"


class ApiKeyError(Exception):
    """An API key operation was refused."""


def _hash(secret: str) -> str:
    # A header with bytes that are not UTF-8 arrives with lone surrogates: hash those too.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (never the secret)."""

    key_id: str
    name: str
    role: Role
    scopes: tuple[str, ...]
    secret_hash: str = field(repr=False)
    created_at: datetime
    expires_at: datetime | None = None
    created_by: str | None = None

    def expired(self, now: datetime | None = None) -> bool:
        """Return True once the key's expiry passed."""
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    def as_dict(self) -> dict[str, Any]:
        """Return the key's public description (no hash, no secret)."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": self.role.value,
            "scopes": list(self.scopes),
            "created_at": isoformat_z(self.created_at),
            "expires_at": None if self.expires_at is None else isoformat_z(self.expires_at),
        }

    def to_storage(self) -> dict[str, Any]:
        """Return the stored form."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": self.role.value,
            "scopes": list(self.scopes),
            "secret_hash": self.secret_hash,
            "created_at": self.created_at.isoformat(),
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            "created_by": self.created_by,
        }

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> ApiKey:
        """Rebuild a key from its stored form."""
        expires_at = data.get("expires_at")
        return cls(
            key_id=str(data["key_id"]),
            name=str(data["name"]),
            role=Role(data["role"]),
            scopes=tuple(str(scope) for scope in data["scopes"]),
            secret_hash=str(data["secret_hash"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            expires_at=None if expires_at is None else datetime.fromisoformat(expires_at),
            created_by=data.get("created_by"),
        )


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A key just created, with its secret (shown this once)."""

    key: ApiKey
    secret: str = field(repr=False)


class ApiKeyManager:
    """Creates, revokes and verifies API keys; persisted with Home Assistant's Store."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Prepare an empty manager; ``async_load`` reads the stored keys."""
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, STORAGE_KEY, private=True, atomic_writes=True
        )
        self._keys: dict[str, ApiKey] = {}

    async def async_load(self) -> None:
        """Load the stored keys."""
        data = await self._store.async_load()
        keys = [] if data is None else data.get("keys", [])
        self._keys = {key.key_id: key for key in map(ApiKey.from_storage, keys)}

    async def _async_save(self) -> None:
        await self._store.async_save({"keys": [key.to_storage() for key in self._keys.values()]})

    @property
    def keys(self) -> list[ApiKey]:
        """Return every key, oldest first."""
        return sorted(self._keys.values(), key=lambda key: key.created_at)

    def get(self, key_id: str) -> ApiKey | None:
        """Return a key by id."""
        return self._keys.get(key_id)

    async def async_create(
        self,
        name: str,
        role: Role | str = Role.USER,
        scopes: list[str] | tuple[str, ...] = SCOPES,
        expires_in_days: float | None = None,
        created_by: str | None = None,
    ) -> CreatedKey:
        """Create and store a key; return it with its secret."""
        name = name.strip()
        if not name or len(name) > MAX_NAME_LENGTH:
            raise ApiKeyError(f"a key name needs 1 to {MAX_NAME_LENGTH} characters")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ApiKeyError(f"unknown scopes: {', '.join(unknown)}")
        if expires_in_days is not None and not 0 < expires_in_days <= MAX_EXPIRY_DAYS:
            raise ApiKeyError(f"expiry must be more than 0 and at most {MAX_EXPIRY_DAYS} days")
        key_id = KEY_PREFIX + secrets.token_hex(4)
        while key_id in self._keys:  # pragma: no cover - 2**32 ids
            key_id = KEY_PREFIX + secrets.token_hex(4)
        secret = f"{key_id}.{secrets.token_urlsafe(32)}"
        now = utcnow()
        key = ApiKey(
            key_id=key_id,
            name=name,
            role=Role(role),
            scopes=tuple(scope for scope in SCOPES if scope in scopes),
            secret_hash=_hash(secret),
            created_at=now,
            expires_at=None if expires_in_days is None else now + timedelta(days=expires_in_days),
            created_by=created_by,
        )
        self._keys[key_id] = key
        await self._async_save()
        return CreatedKey(key, secret)

    async def async_revoke(self, key_id: str) -> ApiKey:
        """Delete a key; it stops working at once."""
        key = self._keys.pop(key_id, None)
        if key is None:
            raise ApiKeyError(f"no API key {key_id!r}")
        await self._async_save()
        return key

    def verify(self, secret: str) -> ApiKey | None:
        """Return the key ``secret`` belongs to (expired or not), None when it matches none."""
        key_id, dot, _ = secret.partition(".")
        key = self._keys.get(key_id) if dot and KEY_ID_PATTERN.fullmatch(key_id) else None
        expected = _DUMMY_HASH if key is None else key.secret_hash
        matches = hmac.compare_digest(_hash(secret), expected)
        return key if matches and key is not None else None


def looks_like_key(token: str) -> bool:
    """Return True when ``token`` has the shape of an integration API key (not an HA token)."""
    return token.startswith(KEY_PREFIX)

"""Hostile input against both REST APIs through HA's real HTTP stack: a 4xx each time, store intact.

Requests go over a real socket to HA's HTTP server, byte for byte as written here (so ``../`` and
invalid UTF-8 reach the server unnormalised). An answer with ``X-Request-Id`` came from IoTee and
must be a documented 4xx in the error envelope; one without it was refused by HA or aiohttp before
IoTee saw it (HA's security filter, the HTTP parser's header limits) and must be a 4xx too. After
each battery the store holds exactly the commands it held before, passes SQLite's integrity check,
and the API key still works.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import closing
import io
import json
import sqlite3
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
from multidict import CIMultiDict
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.iotee.api.base import MAX_BODY_BYTES
from custom_components.iotee.api.state import BASE_URL, DATA_API
from custom_components.iotee.const import (
    STORE_FILENAME,
)
from custom_components.iotee.core.idempotency import valid_key

from .api_openapi import check_response
from .helpers import LOCK_ID, WLTE_ID, engine_of, setup_api_hub

HOSTILE = [
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..\\..\\..\\windows\\win.ini",
    "ABC123/../ABC123",
    "/etc/passwd",
    "' OR '1'='1",
    "1; DROP TABLE commands; --",
    '" OR ""="',
    "x' UNION SELECT secret_hash FROM api_keys --",
    "%' AND 1=1 --",
    "\x00",
    "ABC123\x00",
    "%00",
    "%ff%fe%fd",
    "\u202e\ufeff\u0000",
    "<script>alert(1)</script>",
    "${jndi:ldap://127.0.0.1/a}",
    "{{7*7}}",
    "A" * 4096,
    "😀" * 64,
    " ",
    "*",
    "%",
    "ABC123 ",
]
"""Strings that go into every id and every string field."""


@pytest.fixture
async def hub(hass: HomeAssistant, mqtt_entry: MockConfigEntry) -> MockConfigEntry:
    """The hub on the real broker, no synchronous wait, the REST API registered."""
    return await setup_api_hub(hass)


@pytest.fixture
async def client(
    hass: HomeAssistant, hub: MockConfigEntry, hass_client_no_auth: Callable[..., Any]
) -> TestClient:
    """An HTTP client on HA's real HTTP app."""
    client: TestClient = await hass_client_no_auth()
    return client


@pytest.fixture
async def admin_key(hass: HomeAssistant, hub: MockConfigEntry) -> str:
    """An admin API key (every scope)."""
    return (await hass.data[DATA_API].keys.async_create("abuse", role="admin")).secret


class Snapshot:
    """What the store holds: its tables and its commands."""

    def __init__(self, tables: list[str], commands: list[tuple[Any, ...]]) -> None:
        """Hold the table names and every command row."""
        self.tables = tables
        self.commands = commands


def _snapshot(path: str) -> tuple[str, Snapshot]:
    with closing(sqlite3.connect(path)) as connection:
        integrity: str = connection.execute("PRAGMA integrity_check").fetchone()[0]
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        commands = connection.execute("SELECT * FROM commands ORDER BY command_id").fetchall()
    return integrity, Snapshot(tables, commands)


@pytest.fixture
async def store_guard(
    hass: HomeAssistant, hub: MockConfigEntry, admin_key: str
) -> AsyncGenerator[None]:
    """Seed two commands; after the test, the store must hold exactly them, undamaged."""
    engine = engine_of(hub)
    await engine.async_submit(LOCK_ID, "lock", source="test")
    await engine.async_submit(WLTE_ID, "ON", relay=1, source="test")
    await hass.async_block_till_done()
    path = hass.config.path(STORE_FILENAME)
    await engine.store.flush()
    integrity, before = await hass.async_add_executor_job(_snapshot, path)
    assert integrity == "ok"
    yield
    await hass.async_block_till_done()
    await engine.store.flush()
    integrity, after = await hass.async_add_executor_job(_snapshot, path)
    assert integrity == "ok"
    assert after.tables == before.tables
    assert [row[0] for row in after.commands] == [row[0] for row in before.commands]
    assert await engine.async_get(before.commands[0][0]) is not None
    assert hass.data[DATA_API].keys.verify(admin_key) is not None


# ---- raw HTTP -----------------------------------------------------------------------------------


async def raw_request(
    client: TestClient, head: bytes, body: bytes = b""
) -> tuple[int, CIMultiDict[str], bytes]:
    """Send ``head`` (request line and headers, no final blank line) and ``body`` as they are."""
    assert client.server.host is not None
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    request = head + b"\r\nConnection: close\r\n"
    if body:
        request += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    writer.write(request + b"\r\n" + body)
    try:
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head_part, _, payload = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        payload = _unchunk(payload)
    return status, headers, payload


def _unchunk(payload: bytes) -> bytes:
    out = b""
    while payload:
        size_line, _, payload = payload.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += payload[:size]
        payload = payload[size + 2 :]
    return out


def assert_refused(
    method: str, path: str, status: int, headers: CIMultiDict[str], body: bytes
) -> str:
    """A 4xx; from IoTee in the documented envelope. Return who refused it."""
    assert 400 <= status < 500, (method, path[:120], status, body[:300])
    if "X-Request-Id" not in headers:
        return "HA"
    decoded = path.split("?", maxsplit=1)[0]
    answer = check_response(
        method, decoded, status, headers, headers.get("Content-Type", "").split(";")[0], body
    )
    if method != "HEAD":  # a HEAD answer has the headers only
        assert set(answer) >= {"code", "message", "requestId"}
    return "IoTee"


def _auth(key: str) -> bytes:
    return b"X-API-Key: " + key.encode() + b"\r\nHost: localhost"


# ---- hostile strings in every id and string field -----------------------------------------------

PATHS = [
    ("GET", "/devices/{x}/commands"),
    ("POST", "/devices/{x}/commands"),
    ("GET", "/commands/{x}"),
    ("DELETE", "/commands/{x}"),
    ("POST", "/commands/{x}/retry"),
    ("GET", "/wlte/v1/devices/{x}/commands/abc"),
    ("GET", f"/wlte/v1/devices/{WLTE_ID}/commands/{{x}}"),
    ("POST", "/wlte/v1/devices/{x}/relays/1/commands"),
    ("POST", f"/wlte/v1/devices/{WLTE_ID}/relays/{{x}}/commands"),
    ("GET", f"/devices/{LOCK_ID}/commands?limit={{x}}"),
    ("GET", "/commands?limit={x}"),
]
BODY_FIELDS = [
    (f"/devices/{LOCK_ID}/commands", lambda x: {"command": x}),
    (f"/devices/{LOCK_ID}/commands", lambda x: {"command": "lock", "device_type": x}),
    (f"/devices/{WLTE_ID}/commands", lambda x: {"command": "ON", "params": {"relay": x}}),
    (f"/devices/{WLTE_ID}/commands", lambda x: {x: "ON"}),
    ("/commands/purge", lambda x: {"older_than_days": x}),
    (f"/wlte/v1/devices/{WLTE_ID}/relays/1/commands", lambda x: {"action": x}),
    (f"/wlte/v1/devices/{WLTE_ID}/relays/1/commands", lambda x: {"action": "ON", x: 1}),
]


def _path_variants(value: str) -> Iterator[str]:
    """The value percent-encoded as a client would, and raw where a request line allows it."""
    yield quote(value, safe="")
    if value.isascii() and value.isprintable() and " " not in value:
        yield value


@pytest.mark.usefixtures("store_guard")
async def test_hostile_ids_and_query(client: TestClient, admin_key: str) -> None:
    """Traversal, SQL, NUL, bad UTF-8, huge ids in every path id and query: 4xx, nothing stored."""
    refused_by = {"HA": 0, "IoTee": 0}
    for method, template in PATHS:
        for value in HOSTILE:
            for variant in _path_variants(value):
                path = BASE_URL + template.format(x=variant)
                body = b'{"action": "ON"}' if "relays" in path else b'{"command": "lock"}'
                head = f"{method} {path} HTTP/1.1\r\n".encode() + _auth(admin_key)
                head += b"\r\nIdempotency-Key: abuse-1\r\nContent-Type: application/json"
                status, headers, answer = await raw_request(
                    client, head, body if method == "POST" else b""
                )
                refused_by[assert_refused(method, path, status, headers, answer)] += 1
    print(  # the figures README's Reliability section quotes
        f"\nhostile ids: {sum(refused_by.values())} requests, all 4xx:"
        f" {refused_by['IoTee']} refused by IoTee in the envelope,"
        f" {refused_by['HA']} by HA's security filter before IoTee"
    )
    assert refused_by["IoTee"] > refused_by["HA"] > 0


@pytest.mark.usefixtures("store_guard")
async def test_hostile_strings_in_bodies_and_keys(client: TestClient, admin_key: str) -> None:
    """Every string field and the Idempotency-Key carry hostile values: 400 in the envelope."""
    for path, make_body in BODY_FIELDS:
        for value in HOSTILE:
            response = await client.post(
                BASE_URL + path,
                json=make_body(value),
                headers={"X-API-Key": admin_key, "Idempotency-Key": "abuse-2"},
            )
            body = await response.read()
            assert_refused("POST", BASE_URL + path, response.status, response.headers, body)
            assert response.status == 400, (path, value[:40], body[:200])
    sent = len(BODY_FIELDS) * len(HOSTILE)
    wlte = f"{BASE_URL}/wlte/v1/devices/{WLTE_ID}/relays/1/commands"
    for value in HOSTILE:
        if valid_key(value.strip()):
            continue  # HTTP drops the spaces around a header value: this one is a fine key
        sent += 1
        raw_key = value.encode("utf-8").replace(b"\r", b"").replace(b"\n", b"")
        head = f"POST {wlte} HTTP/1.1\r\n".encode() + _auth(admin_key)
        head += b"\r\nContent-Type: application/json\r\nIdempotency-Key: " + raw_key
        status, headers, answer = await raw_request(client, head, b'{"action": "ON"}')
        assert_refused("POST", wlte, status, headers, answer)
    print(f"\nhostile fields: {sent} requests, all 4xx")  # quoted in README


# ---- oversized, nested, undecodable -------------------------------------------------------------

BODY_PATHS = [
    f"/devices/{LOCK_ID}/commands",
    "/commands/purge",
    f"/wlte/v1/devices/{WLTE_ID}/relays/1/commands",
]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _nested_object(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"relay": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.usefixtures("store_guard")
@pytest.mark.parametrize("path", BODY_PATHS)
async def test_malformed_bodies(client: TestClient, admin_key: str, path: str) -> None:
    """Oversized (64 KiB + 1 and 20 MiB), deeply nested, invalid UTF-8: 400 INVALID_REQUEST."""
    field = "action" if "wlte" in path else "command"
    bodies = {
        "64 KiB + 1": json.dumps({field: "x" * (MAX_BODY_BYTES + 1)}).encode(),
        "20 MiB": b'{"' + field.encode() + b'": "' + b"x" * (20 << 20) + b'"}',
        "nested arrays": f'{{"{field}": {_nested(30_000)}}}'.encode(),
        "nested objects": ('{"a":' * 20_000 + "1" + "}" * 20_000).encode(),
        "nested in params": json.dumps({field: "lock", "params": _nested_object(400)}).encode(),
        "invalid UTF-8": b'{"' + field.encode() + b'": "\xc3\x28\xa0\xa1\xff"}',
        "overlong UTF-8": b'{"' + field.encode() + b'": "\xc0\xaf"}',
        "lone surrogate": b'{"' + field.encode() + b'": "\xed\xa0\x80"}',
        "UTF-16": json.dumps({field: "ON"}).encode("utf-16"),
        "NUL bytes": b"\x00" * 1024,
        "JSON then garbage": b'{"' + field.encode() + b'": "ON"} trailing',
        "duplicate keys then bad": b'{"' + field.encode() + b'": "ON", "' + field.encode() + b'":[',
        "huge number": b'{"older_than_days": 1' + b"0" * 5000 + b"}",
    }
    for name, data in bodies.items():
        response = await client.post(
            BASE_URL + path,
            data=io.BytesIO(data),  # sized: sent with its Content-Length
            headers={
                "X-API-Key": admin_key,
                "Idempotency-Key": "abuse-3",
                "Content-Type": "application/json",
            },
        )
        answer = await response.read()
        assert_refused("POST", BASE_URL + path, response.status, response.headers, answer)
        assert response.status == 400, (name, answer[:200])
    print(f"\nmalformed bodies: {len(bodies)} kinds on {path}, all 400")  # quoted in README


# ---- huge and broken headers --------------------------------------------------------------------


@pytest.mark.usefixtures("store_guard")
async def test_huge_and_broken_headers(client: TestClient, admin_key: str) -> None:
    """Header values and counts past every limit, broken encodings: always a 4xx.

    What aiohttp's parser cannot take (fields over its limit, too many headers, control bytes,
    a negative Content-Length) it refuses with a plain 400 before HA or IoTee see the request;
    everything else reaches IoTee and is refused in the envelope.
    """
    wlte = f"{BASE_URL}/wlte/v1/devices/{WLTE_ID}/relays/1/commands"
    line = f"POST {wlte} HTTP/1.1\r\n".encode()
    no_auth = b"Host: localhost"
    cases: dict[str, tuple[bytes, int, str]] = {
        "8 KB Idempotency-Key": (
            _auth(admin_key) + b"\r\nIdempotency-Key: " + b"k" * 8000,
            400,
            "IoTee",
        ),
        "100 KB Idempotency-Key": (
            _auth(admin_key) + b"\r\nIdempotency-Key: " + b"k" * 100_000,
            400,
            "HA",
        ),
        "100 KB API key": (no_auth + b"\r\nX-API-Key: ik_" + b"a" * 100_000, 400, "HA"),
        "8 KB API key": (no_auth + b"\r\nX-API-Key: ik_" + b"a" * 8000, 401, "IoTee"),
        "8 KB bearer": (no_auth + b"\r\nAuthorization: Bearer " + b"a" * 8000, 401, "IoTee"),
        "API key not UTF-8": (no_auth + b"\r\nX-API-Key: ik_\xe9\xff.\xfe", 401, "IoTee"),
        "key id not UTF-8": (no_auth + b"\r\nX-API-Key: ik_0000000\xe9.x", 401, "IoTee"),
        "1,000 headers": (
            _auth(admin_key) + b"".join(b"\r\nX-Filler-%d: %d" % (n, n) for n in range(1000)),
            400,
            "HA",
        ),
        "negative Content-Length": (
            _auth(admin_key) + b"\r\nIdempotency-Key: a\r\nContent-Length: -1",
            400,
            "HA",
        ),
        "control bytes in key": (
            _auth(admin_key) + b"\r\nIdempotency-Key: a\x01\x02\x7f",
            400,
            "HA",
        ),
    }
    for name, (headers, expected_status, expected_by) in cases.items():
        status, answer_headers, answer = await raw_request(
            client, line + headers + b"\r\nContent-Type: application/json", b'{"action": "ON"}'
        )
        refused_by = assert_refused("POST", wlte, status, answer_headers, answer)
        assert (status, refused_by) == (expected_status, expected_by), (name, answer[:200])
    print(f"\nhostile headers: {len(cases)} cases, all 4xx")  # quoted in README


async def test_non_utf8_bearer_fails_in_home_assistant_not_iotee(
    client: TestClient, hass: HomeAssistant
) -> None:
    """Known HA limitation: a Bearer token of bytes that are not UTF-8 makes HA's own auth
    middleware (which runs before any view) answer 500, on HA's API and ours alike.

    IoTee cannot see such a request; README lists it. When HA fixes it this test fails, and the
    limitation comes out of README.
    """
    head = b"Host: localhost\r\nAuthorization: Bearer \xe9\xff.\xfe.\xfd"
    for path in ("/api/", f"{BASE_URL}/commands"):
        status, headers, body = await raw_request(
            client, f"GET {path} HTTP/1.1\r\n".encode() + head
        )
        assert status == 500
        assert "X-Request-Id" not in headers
        assert b"UnicodeEncodeError" in body


@pytest.mark.usefixtures("store_guard")
async def test_unusual_methods(client: TestClient, admin_key: str) -> None:
    """Methods no endpoint serves, standard or made up: a 4xx, never a 5xx, nothing stored."""
    paths = [
        f"{BASE_URL}/devices/{LOCK_ID}/commands",
        f"{BASE_URL}/commands/abc",
        f"{BASE_URL}/wlte/v1/devices/{WLTE_ID}/relays/1/commands",
        f"{BASE_URL}/nowhere",
    ]
    statuses: dict[str, set[int]] = {}
    for method in ("HEAD", "PUT", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "FOO"):
        for path in paths:
            head = f"{method} {path} HTTP/1.1\r\n".encode() + _auth(admin_key)
            status, headers, answer = await raw_request(client, head)
            assert_refused(method, path, status, headers, answer)
            statuses.setdefault(method, set()).add(status)
    print(f"\nunusual methods: {statuses}")  # quoted in README

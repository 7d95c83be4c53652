"""Fuzz both REST APIs from openapi.json with schemathesis, through HA's real HTTP stack.

Every operation of the document is driven with schemathesis' positive cases (valid by the schema)
and negative cases (each breaking the schema somewhere: path, query, headers or body). Credentials
are an admin key, a read-only key or the case's own generated (mostly invalid) headers; some cases
carry real device ids, command ids and commands so that requests get past the lookups. The hub
runs on the real broker with a WLTE device answering (the WLTE API waits for it up to 0.5 s).
Each response must:

* never be a 5xx;
* if IoTee answered it (``X-Request-Id``): be documented for its operation and status, in the
  error envelope when it is an error (``check_response``), and pass schemathesis' own conformance
  checks, including that schema-breaking input is refused;
* otherwise be a 4xx from HA's front door (its security filter refusing e.g. ``../`` in a path).

Afterwards every command the API accepted is still in the store unless a request deleted it, and
the store passes SQLite's integrity check. ``IOTEE_FUZZ_EXAMPLES`` sets the examples per operation
and mode (default 130; at least 2,000 requests in all are asserted). The run is derandomized, so
CI sees the same cases every time. The printed figure line is what README's Reliability section
quotes (run with ``-s``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, Callable
from contextlib import closing
from dataclasses import dataclass, field
import itertools
import os
import sqlite3
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
from hypothesis import HealthCheck, given, settings, strategies as st
from multidict import CIMultiDict
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import requests
import schemathesis
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi import checks as openapi_checks

from custom_components.iotee.api.state import BASE_URL, DATA_API
from custom_components.iotee.const import CONF_SYNC_WAIT, STORE_FILENAME

from .api_openapi import SPEC, RelayDevice, check_response
from .broker import Mosquitto
from .helpers import LOCK_ID, TASMOTA_ID, WLTE_ID, engine_of, setup_api_hub

EXAMPLES = int(os.environ.get("IOTEE_FUZZ_EXAMPLES", "130"))
MIN_REQUESTS = 2000
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
]
AUTH_HEADERS = ("X-API-Key", "Authorization")
KNOWN_DEVICES = (LOCK_ID, WLTE_ID, TASMOTA_ID)
VALID_COMMANDS = (
    (LOCK_ID, {"command": "lock"}),
    (LOCK_ID, {"command": "reboot"}),
    (WLTE_ID, {"command": "JOG", "params": {"relay": 2}}),
    (TASMOTA_ID, {"command": "ON", "params": {"relay": 1}}),
)


@dataclass
class FuzzReport:
    """What the fuzzing saw."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: defaultdict[str, Counter[int]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    front_door: Counter[int] = field(default_factory=Counter)
    """Responses from HA before IoTee's view ran (no X-Request-Id), by status."""
    accepted: dict[str, int] = field(default_factory=dict)
    """Command id -> request number, for every 201/202 that created a command."""
    deleted: set[str] = field(default_factory=set)
    """Commands a DELETE answered 200 for."""
    last_purge: int = -1
    """Request number of the last purge that deleted something."""
    problems: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        """How many 5xx were seen."""
        return sum(count for status, count in self.statuses.items() if status >= 500)


@pytest.fixture
async def hub(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, mosquitto: Mosquitto
) -> AsyncGenerator[MockConfigEntry]:
    """The hub on the real broker, the WLTE device answering (the API waits up to 0.5 s)."""
    entry = await setup_api_hub(hass, **{CONF_SYNC_WAIT: 0.5})
    device = await hass.async_add_executor_job(RelayDevice(mosquitto).start)
    yield entry
    await hass.async_add_executor_job(device.close)


def _describe(case: Case, response: schemathesis.Response | None = None) -> str:
    body = case.body[:80] if isinstance(case.body, bytes) else case.body
    text = f"{case.method} {case.formatted_path} query={case.query} body={body!r}"
    if response is not None:
        text += f" -> {response.status_code} {response.content[:300]!r}"
    return text


def _hints(operation: APIOperation, commands: list[str]) -> list[dict[str, Any]]:
    """Return ``as_strategy`` overrides that put real ids (and commands) into some cases."""
    names = {parameter.name for parameter in operation.iter_parameters()}
    hints: list[dict[str, Any]] = []
    if "id" in names:
        ids = KNOWN_DEVICES if operation.path.startswith("/devices/") else commands
        hints += [{"path_parameters": {"id": value}} for value in ids]
    if "deviceId" in names:
        hints += [{"path_parameters": {"deviceId": value}} for value in KNOWN_DEVICES]
    if "commandId" in names:
        hints += [
            {"path_parameters": {"deviceId": WLTE_ID, "commandId": value}} for value in commands
        ]
    return hints


def _positive_hints(operation: APIOperation) -> list[dict[str, Any]]:
    """Return overrides only valid cases may take: whole valid bodies."""
    if (operation.method, operation.path) != ("post", "/devices/{id}/commands"):
        return []
    return [{"path_parameters": {"id": device}, "body": body} for device, body in VALID_COMMANDS]


def _record(report: FuzzReport, case: Case, status: int, body: Any) -> None:
    """Note the commands a response created or deleted."""
    if status == 202 and case.method == "POST":  # WLTE: the command in the envelope
        report.accepted[body["data"]["id"]] = report.requests
    elif status == 201:  # Commands API: the record (a new command or a retry)
        report.accepted[body["command_id"]] = report.requests
    elif status == 200 and case.method == "DELETE":
        report.deleted.add(body["command_id"])
    elif status == 200 and case.path == "/commands/purge" and body["deleted"]:
        report.last_purge = report.requests


def fuzz(base_url: str, credentials: dict[str, dict[str, str]], commands: list[str]) -> FuzzReport:
    """Run every operation in both modes; return what was seen (blocking: run in a thread)."""
    report = FuzzReport()
    schema = schemathesis.openapi.from_dict(SPEC)
    session = requests.Session()

    def one(case: Case, credential: str) -> None:
        if credential != "generated":
            if case.headers is None:
                case.headers = {}
            for name in AUTH_HEADERS:
                case.headers.pop(name, None)
            case.headers.update(credentials[credential])
        try:
            response = case.call(base_url=base_url, session=session, timeout=30)
        except requests.RequestException as err:
            report.problems.append(f"{_describe(case)}: no answer: {err!r}")
            return
        report.requests += 1
        report.statuses[response.status_code] += 1
        report.by_operation[f"{case.method} {case.path}"][response.status_code] += 1
        if response.status_code >= 500:
            report.problems.append(f"5xx: {_describe(case, response)}")
            return
        headers = CIMultiDict(
            (name, value) for name, values in response.headers.items() for value in values
        )
        if "X-Request-Id" not in headers:
            report.front_door[response.status_code] += 1
            if not 400 <= response.status_code < 500:
                report.problems.append(f"not IoTee, not 4xx: {_describe(case, response)}")
            return
        try:
            body = check_response(
                case.method,
                unquote(urlsplit(response.request.url).path),
                response.status_code,
                headers,
                headers.get("Content-Type", "").split(";")[0],
                response.content,
            )
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup, schemathesis.errors.SchemathesisError) as err:
            report.problems.append(f"{_describe(case, response)}\n{err}")
            return
        _record(report, case, response.status_code, body)

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            hints = _hints(operation, commands)
            if mode is GenerationMode.POSITIVE:
                hints += _positive_hints(operation)
            cases = st.one_of(
                operation.as_strategy(mode),
                *(operation.as_strategy(mode, **hint) for hint in hints),
            )

            @settings(
                max_examples=EXAMPLES,
                database=None,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=cases, credential=st.sampled_from([*credentials, "generated"]))
            def run(case: Case, credential: str) -> None:
                one(case, credential)

            run()
    return report


async def test_fuzz_both_apis(
    hass: HomeAssistant, hub: MockConfigEntry, hass_client_no_auth: Callable[..., Any]
) -> None:
    """Thousands of generated requests: no 5xx, all documented and enveloped, nothing lost."""
    client: TestClient = await hass_client_no_auth()
    keys = hass.data[DATA_API].keys
    admin = (await keys.async_create("fuzz admin", role="admin")).secret
    reader = (await keys.async_create("fuzz reader", scopes=["device:read"])).secret
    engine = engine_of(hub)
    commands = [
        (await engine.async_submit(WLTE_ID, "ON", relay=2, source="test")).command_id,
        (await engine.async_submit(LOCK_ID, "unlock", source="test")).command_id,
    ]
    ticks = itertools.count()
    hass.data[DATA_API].clock = lambda: next(ticks) * 0.5  # limits bite, and pass with time
    credentials = {
        "admin key": {"X-API-Key": admin},
        "read key": {"Authorization": f"Bearer {reader}"},
    }

    report = await hass.async_add_executor_job(
        fuzz, str(client.make_url(BASE_URL)), credentials, commands
    )
    await hass.async_block_till_done()

    print(  # the figures README's Reliability section quotes
        f"\nfuzz: {report.requests} requests, {report.server_errors} 5xx,"
        f" statuses {dict(sorted(report.statuses.items()))},"
        f" refused by HA before IoTee {dict(report.front_door)},"
        f" commands accepted {len(report.accepted)}"
    )
    assert not report.problems, "\n\n".join(report.problems[:20])
    assert report.requests >= MIN_REQUESTS
    assert report.server_errors == 0
    for operation, statuses in report.by_operation.items():  # every operation got past auth
        assert any(status < 400 or status in (404, 409, 422, 429) for status in statuses), (
            operation,
            statuses,
        )
    assert len(report.accepted) >= 10, "too few generated requests were accepted"

    stored = {record.command_id for record in await engine.async_list(None, limit=100_000)}
    lost = {
        command_id
        for command_id, number in report.accepted.items()
        if command_id not in stored
        and command_id not in report.deleted
        and number > report.last_purge
    }
    assert not lost
    database = hass.config.path(STORE_FILENAME)
    assert await hass.async_add_executor_job(_integrity, database) == "ok"


def _integrity(path: str) -> str:
    with closing(sqlite3.connect(path)) as connection:
        result: str = connection.execute("PRAGMA integrity_check").fetchone()[0]
    return result

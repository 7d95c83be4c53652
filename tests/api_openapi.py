"""Helpers for the REST API tests: check every response against openapi.json; a fake relay device.

``checked(response)`` validates one aiohttp test-client response against the OpenAPI document
(status documented for the operation, headers, body schema, ``X-Request-Id`` equal to the
envelope's ``requestId``) and returns the decoded JSON body. jsonschema is not installed, so
``validate`` implements the subset of JSON Schema the document uses; ``schema_keywords`` lets a test
prove the document uses nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
import json
from pathlib import Path
import re
from typing import Any

from aiohttp import ClientResponse

from custom_components.iotee.api.state import BASE_URL

from .broker import Message, Mosquitto, PahoPeer
from .helpers import WLTE_ID

OPENAPI_PATH = Path(__file__).parent.parent / "custom_components" / "iotee" / "api" / "openapi.json"
SPEC: dict[str, Any] = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))

SUPPORTED_KEYWORDS = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        # annotations only
        "description",
        "default",
        "example",
    }
)
_TYPES: dict[str, Any] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def resolve(ref: str) -> dict[str, Any]:
    """Return the object a local ``$ref`` points to."""
    assert ref.startswith("#/"), ref
    node: Any = SPEC
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _deref(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = resolve(node["$ref"])
    return node


def _date_time(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def validate(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Return the ways ``value`` breaks ``schema`` (empty when it is valid)."""
    if "$ref" in schema:
        return validate(value, resolve(schema["$ref"]), where)
    errors: list[str] = []
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r} != const {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            return [*errors, f"{where}: {value!r} is not {types}"]
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time" and not _date_time(value):
            errors.append(f"{where}: {value!r} is not an RFC 3339 date-time")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{where}: missing {name!r}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                errors += validate(item, properties[name], f"{where}.{name}")
            elif extra is False:
                errors.append(f"{where}: unexpected property {name!r}")
            elif isinstance(extra, dict):
                errors += validate(item, extra, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for position, item in enumerate(value):
            errors += validate(item, schema["items"], f"{where}[{position}]")
    return errors


def schema_keywords(node: Any = None, inside_schema: bool = False) -> Iterator[str]:
    """Yield every keyword used in a schema of the document."""
    if node is None:
        node = SPEC
    if isinstance(node, list):
        for item in node:
            yield from schema_keywords(item, inside_schema)
        return
    if not isinstance(node, dict):
        return
    for key, item in node.items():
        if inside_schema:
            yield key
            if key == "properties":
                for sub in item.values():
                    yield from schema_keywords(sub, True)
            elif key in ("items", "additionalProperties") and isinstance(item, dict):
                yield from schema_keywords(item, True)
        elif key == "schema" or (key == "schemas" and isinstance(item, dict)):
            if key == "schema":
                yield from schema_keywords(item, True)
            else:
                for sub in item.values():
                    yield from schema_keywords(sub, True)
        else:
            yield from schema_keywords(item, False)


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]*", re.escape(template))
    return re.compile(pattern)


def find_operation(method: str, path: str) -> tuple[str | None, dict[str, Any] | None]:
    """Return the path template and the operation serving ``method path`` (None when none)."""
    if not path.startswith(BASE_URL):
        return None, None
    relative = path[len(BASE_URL) :]
    # Plain paths first, as the server routes them (``/commands/purge`` before ``/commands/{id}``).
    templates = sorted(SPEC["paths"], key=lambda t: ("{" in t, t))
    for template in templates:
        if _template_regex(template).fullmatch(relative):
            item = SPEC["paths"][template]
            return template, item.get(method.lower())
    return None, None


async def checked(response: ClientResponse) -> Any:
    """Check ``response`` against the document; return its decoded JSON body."""
    raw = await response.read()
    return check_response(
        response.method,
        response.url.path,
        response.status,
        response.headers,
        response.content_type,
        raw,
    )


def check_response(
    method: str,
    path: str,
    status_code: int,
    headers: Mapping[str, str],
    content_type: str,
    raw: bytes,
) -> Any:
    """Check one IoTee response against the document; return its decoded JSON body."""
    request_id = headers.get("X-Request-Id")
    assert request_id is not None, f"{method} {path}: no X-Request-Id"
    assert re.fullmatch(resolve("#/components/schemas/RequestId")["pattern"][1:-1], request_id)
    assert content_type == "application/json", content_type
    body = None if method == "HEAD" else json.loads(raw)
    template, operation = find_operation(method, path)
    status = str(status_code)
    if operation is None:
        # Unknown route or method: the error envelope, with the route-level codes.
        assert status_code in (401, 404, 405), f"{method} {path}: {status_code}"
        schema: dict[str, Any] = {"$ref": "#/components/schemas/ErrorResponse"}
        if status_code == 405:
            assert template is not None
            assert "Allow" in headers
    else:
        responses = operation["responses"]
        assert status in responses, f"{method} {template}: status {status} is not documented"
        documented = _deref(responses[status])
        for name, header_ref in documented.get("headers", {}).items():
            header = _deref(header_ref)
            value = headers.get(name)
            if header.get("required"):
                assert value is not None, f"{method} {template} {status}: no {name} header"
            if value is not None:
                expected = header["schema"]
                typed: Any = int(value) if _deref(expected).get("type") == "integer" else value
                assert not validate(typed, expected, name), validate(typed, expected, name)
        schema = documented["content"]["application/json"]["schema"]
    if body is not None:
        errors = validate(body, schema)
        assert not errors, f"{method} {path} {status}: {errors}\n{body}"
        if isinstance(body, dict) and "requestId" in body:
            assert body["requestId"] == request_id
    return body


# ---- a simulated WLTE relay controller and IoTee lock on the real broker ------------------------


class RelayDevice(PahoPeer):
    """A WLTE relay controller: answers ``wlte/<id>/relay/<n>/set`` as ``mode`` says.

    Modes: ``success`` (ACK then SUCCESS), ``reject`` (REJECTED), ``fail`` (ACK then FAILED),
    ``silent`` (no answer), ``ack`` (ACK only).
    """

    def __init__(self, broker: Mosquitto, hardware_id: str = WLTE_ID) -> None:
        """Prepare a device; ``start`` connects and subscribes."""
        super().__init__(broker, client_id=f"device-{hardware_id}")
        self.hardware_id = hardware_id
        self.mode = "success"
        self.commands: list[tuple[int, dict[str, Any]]] = []
        self.handlers.append(self._on_command)

    def start(self) -> RelayDevice:
        """Connect and listen for commands."""
        self.connect()
        self.subscribe(f"wlte/{self.hardware_id}/relay/+/set")
        return self

    def _on_command(self, _peer: PahoPeer, message: Message) -> None:
        parts = message.topic.split("/")
        if len(parts) != 5 or parts[4] != "set":
            return
        relay = int(parts[3])
        command = json.loads(message.payload)
        self.commands.append((relay, command))
        topic = f"wlte/{self.hardware_id}/relay/{relay}/result"
        answers: dict[str, list[dict[str, Any]]] = {
            "success": [{"status": "ACK"}, {"status": "SUCCESS"}],
            "reject": [{"status": "REJECTED", "reason": "relay locked out"}],
            "fail": [{"status": "ACK"}, {"status": "FAILED", "reason": "coil open"}],
            "silent": [],
            "ack": [{"status": "ACK"}],
        }
        for answer in answers[self.mode]:
            # Never wait for the broker inside paho's network thread.
            self._client.publish(topic, json.dumps({"id": command["id"], **answer}), qos=1)


class LockDevice(PahoPeer):
    """An IoTee lock: reports the state it is told to take (``answer`` False: stays silent)."""

    def __init__(self, broker: Mosquitto, hardware_id: str) -> None:
        """Prepare a lock; ``start`` connects and subscribes."""
        super().__init__(broker, client_id=f"lock-{hardware_id}")
        self.hardware_id = hardware_id
        self.answer = True
        self.commands: list[str] = []
        self.handlers.append(self._on_command)

    def start(self) -> LockDevice:
        """Connect and listen for commands."""
        self.connect()
        self.subscribe(f"iotee/dev/{self.hardware_id}/rls")
        return self

    def _on_command(self, _peer: PahoPeer, message: Message) -> None:
        if message.topic != f"iotee/dev/{self.hardware_id}/rls":
            return
        self.commands.append(message.payload)
        if self.answer:
            self._client.publish(f"iotee/dev/{self.hardware_id}/rls/state", message.payload, qos=1)

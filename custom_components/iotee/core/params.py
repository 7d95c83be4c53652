"""The ``params`` a command carries: checked before a command is created.

Params are kept on the record, shown in attributes, events, history and API answers, so they must
stay small and serialisable everywhere: a JSON object (string keys), nested at most
``MAX_PARAMS_DEPTH`` levels, no more than ``MAX_PARAMS_BYTES`` as JSON, finite numbers only. A
deeper value would be stored and published and then break the JSON encoders of Home Assistant
(its event bus and HTTP answers refuse nesting past 255 levels).
"""

from __future__ import annotations

from collections.abc import Mapping
import json
from typing import Any, Final

from .errors import InvalidParamsError

MAX_PARAMS_DEPTH: Final = 4
"""Levels of objects and arrays inside ``params`` (``{"relay": 1}`` is level 1)."""
MAX_PARAMS_BYTES: Final = 4096


def check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``params`` as a new dict; raise ``InvalidParamsError`` when it breaks the limits."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidParamsError("params must be an object")
    if not params:
        return {}
    pending: list[tuple[Any, int]] = [(params, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, Mapping):
            if not all(isinstance(key, str) for key in value):
                raise InvalidParamsError("params keys must be strings")
            children = list(value.values())
        elif isinstance(value, list | tuple):
            children = list(value)
        else:
            continue
        if depth > MAX_PARAMS_DEPTH:
            raise InvalidParamsError(f"params may be nested at most {MAX_PARAMS_DEPTH} levels")
        pending.extend((child, depth + 1) for child in children)
    try:
        encoded = json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InvalidParamsError(f"params must be JSON (finite numbers only): {err}") from None
    if len(encoded.encode()) > MAX_PARAMS_BYTES:
        raise InvalidParamsError(f"params may be at most {MAX_PARAMS_BYTES} bytes as JSON")
    result: dict[str, Any] = json.loads(encoded)
    return result

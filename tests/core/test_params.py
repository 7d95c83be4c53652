"""The params a command may carry: small JSON objects, checked before the command exists."""

from __future__ import annotations

import json
from typing import Any

import pytest

from custom_components.iotee.core.errors import InvalidParamsError
from custom_components.iotee.core.params import MAX_PARAMS_BYTES, check_params


def nested(levels: int) -> dict[str, Any]:
    """An object nested ``levels`` deep: ``nested(1) == {"a": 1}``."""
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"relay": 2, "note": "guest at the door", "ok": True, "none": None, "ratio": 0.5},
        nested(4),
        {"list": [[1, 2], [3, {"x": 1}]]},  # four levels: object, list, list, object
        {"text": "x" * (MAX_PARAMS_BYTES - 20)},
    ],
)
def test_small_json_objects_pass_unchanged(params: dict[str, Any]) -> None:
    """Objects within the limits come back equal, as a new dict."""
    checked = check_params(params)
    assert checked == params
    assert checked is not params


def test_none_is_empty() -> None:
    """No params: an empty object."""
    assert check_params(None) == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (nested(5), "nested at most 4 levels"),
        ({"list": [[[[1]]]]}, "nested at most 4 levels"),
        (nested(100_000), "nested at most 4 levels"),
        ({"text": "x" * MAX_PARAMS_BYTES}, f"at most {MAX_PARAMS_BYTES} bytes"),
        ({"n": float("nan")}, "finite numbers only"),
        ({"n": float("inf")}, "finite numbers only"),
        ({"when": object()}, "must be JSON"),
        ({1: "x"}, "keys must be strings"),
        ([1, 2], "must be an object"),
    ],
)
def test_what_breaks_the_limits_is_refused(params: Any, message: str) -> None:
    """Too deep (however deep), too big, not JSON, not an object: InvalidParamsError."""
    with pytest.raises(InvalidParamsError, match=message):
        check_params(params)


def test_refused_before_encoding_deep_values() -> None:
    """A value nested far past what json can encode is refused by depth, not by a crash."""
    deep = nested(50_000)
    with pytest.raises(RecursionError):
        json.dumps(deep)
    with pytest.raises(InvalidParamsError):
        check_params(deep)

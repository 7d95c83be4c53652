"""Every UI string renders: the frontend formats them as ICU messages, where '<word>' is a tag
and an unclosed one shows "Translation error: UNCLOSED_TAG" instead of the text (as the
"API key created" dialog did)."""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import re
from typing import Any

STRINGS = Path(__file__).resolve().parent.parent / "custom_components" / "iotee" / "strings.json"
_TAG = re.compile(r"<[A-Za-z/]")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else key)
    elif isinstance(node, str):
        yield path, node


def _problems(key: str, text: str) -> list[str]:
    problems = []
    if _TAG.search(text):
        problems.append(f"{key}: '<...>' is an ICU tag: {text!r}")
    problems += [
        f"{key}: placeholder {{{name}}}"
        for name in _PLACEHOLDER.findall(text)
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name)
    ]
    rest = _PLACEHOLDER.sub("", text)
    if "{" in rest or "}" in rest:
        problems.append(f"{key}: unbalanced braces")
    if "'{" in text:
        problems.append(f"{key}: an apostrophe before a brace quotes the placeholder away")
    return problems


def test_every_string_is_a_plain_icu_message() -> None:
    strings = json.loads(STRINGS.read_text(encoding="utf-8"))
    texts = list(_strings(strings))
    assert len(texts) > 100
    assert [p for key, text in texts for p in _problems(key, text)] == []

"""strings.json passes hassfest's translation rules and fits the code that uses it.

hassfest does not run offline, so its rules for translation files are checked here: keys are
translation keys, strings are plain text that HA's frontend shows as written (a ``<word>`` is
read as a tag there, and the whole string becomes "Translation error: UNCLOSED_TAG"), and
every string the code needs exists with exactly the placeholders the code passes.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import re
import string
from typing import Any

import pytest

from .translation_uses import scan

STRINGS_PATH = Path(__file__).parent.parent / "custom_components" / "iotee" / "strings.json"
TRANSLATION_KEY = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
"""hassfest: ``[a-z0-9-_]+``, neither starting nor ending with ``-``/``_``, none doubled."""
TAG = re.compile(r"<[^>]*>")
QUOTED_PLACEHOLDER = re.compile(r"'\{\w+\}'")
URL = re.compile(r"\b(?:[a-z][a-z0-9+.-]*://|www\.)", re.IGNORECASE)
FLOW_SECTIONS = ("config", "options")
"""Flows whose steps, aborts and errors must all be used by the code (plus config_subentries)."""


def _strings() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(STRINGS_PATH.read_text(encoding="utf-8"))
    return loaded


def _leaves(tree: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*path, key))
        else:
            yield ".".join((*path, key)), value


def _keys(tree: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    for key, value in tree.items():
        yield ".".join(path) or "(top)", key
        if isinstance(value, dict):
            yield from _keys(value, (*path, key))


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def _at(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _flow_sections(strings: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    for name in FLOW_SECTIONS:
        if name in strings:
            yield (name,), strings[name]
    for name, section in strings.get("config_subentries", {}).items():
        yield ("config_subentries", name), section


def test_keys_are_translation_keys() -> None:
    """Every key, selector option keys included, is a valid translation key."""
    bad = [
        f"{parent}: {key!r}" for parent, key in _keys(_strings()) if not TRANSLATION_KEY.match(key)
    ]
    assert not bad, "\n".join(bad)


def test_strings_are_plain_text() -> None:
    """No tag-like text, quoted or malformed placeholders, URLs or stray spaces."""
    problems: list[str] = []
    for path, text in _leaves(_strings()):
        if not isinstance(text, str):
            problems.append(f"{path}: not a string")
            continue
        try:
            fields = _placeholders(text)
        except ValueError as err:
            problems.append(f"{path}: unbalanced braces ({err})")
            continue
        if TAG.search(text):
            problems.append(f"{path}: tag-like text {TAG.findall(text)}")
        if QUOTED_PLACEHOLDER.search(text):
            problems.append(f"{path}: placeholder in single quotes")
        if any(not field.isidentifier() for field in fields):
            problems.append(f"{path}: placeholder not an identifier {sorted(fields)}")
        if URL.search(text):
            problems.append(f"{path}: URL (pass it as a placeholder)")
        if text != text.strip():
            problems.append(f"{path}: leading or trailing whitespace")
    assert not problems, "\n".join(problems)


def test_flow_strings_hassfest_needs() -> None:
    """data_description only for fields in data; a subentry type has its entry_type and Add."""
    problems: list[str] = []
    for path, section in _flow_sections(_strings()):
        for step_id, step in section.get("step", {}).items():
            for field in step.get("data_description", {}):
                if field not in step.get("data", {}):
                    problems.append(f"{'.'.join(path)}.step.{step_id}: {field} not in data")
        if path[0] == "config_subentries" and (
            "entry_type" not in section or "user" not in section.get("initiate_flow", {})
        ):
            problems.append(f"{'.'.join(path)}: entry_type or initiate_flow.user missing")
    assert not problems, "\n".join(problems)


def test_code_uses_existing_strings_with_their_placeholders() -> None:
    """Each string the code needs exists; the code passes exactly the placeholders it uses."""
    strings = _strings()
    uses, _ = scan()
    problems: list[str] = []
    for use in uses:
        node = _at(strings, use.path)
        name = ".".join(use.path)
        if node is None:
            problems.append(f"{use.where}: no string {name}")
            continue
        if use.placeholders is None:
            continue
        texts = [text for _, text in _leaves(node)] if isinstance(node, dict) else [node]
        used = set().union(*(_placeholders(text) for text in texts))
        if used != use.placeholders:
            problems.append(
                f"{use.where}: {name} uses {sorted(used)}, code passes {sorted(use.placeholders)}"
            )
    assert not problems, "\n".join(problems)


def test_every_flow_string_is_used() -> None:
    """No step, abort reason or error of a flow that no code produces."""
    strings = _strings()
    uses, _ = scan()
    used = {use.path for use in uses}
    unused: list[str] = []
    # Steps and errors the flow mixins and the core validators produce (their keys returned by
    # functions the scan does not follow) count as used when the code names them literally;
    # tests/test_config_flow_families.py and tests/test_custom_device.py raise each of them.
    source = "\n".join(path.read_text() for path in Path("custom_components/iotee").rglob("*.py"))
    for path, section in _flow_sections(strings):
        for kind in ("step", "abort", "error"):
            unused += [
                ".".join((*path, kind, key))
                for key in section.get(kind, {})
                if (*path, kind, key) not in used
                and f'"{key}"' not in source
                and f"async_step_{key}(" not in source
            ]
    for kind in ("exceptions", "issues"):
        unused += [f"{kind}.{key}" for key in strings.get(kind, {}) if not _used(used, kind, key)]
    assert not unused, "\n".join(unused)


def _used(used: set[tuple[str, ...]], kind: str, key: str) -> bool:
    return any(path[:2] == (kind, key) for path in used)


def test_selector_options_are_translated() -> None:
    """A translated selector's option values are translation keys, each with its label."""
    selectors = _strings().get("selector", {})
    _, uses = scan()
    problems: list[str] = []
    for use in uses:
        labels = selectors.get(use.key, {}).get("options", {})
        for value in use.values:
            if not TRANSLATION_KEY.match(value):
                problems.append(f"{use.where}: option value {value!r} is not a translation key")
            elif value not in labels:
                problems.append(f"{use.where}: no label selector.{use.key}.options.{value}")
        problems += [
            f"selector.{use.key}.options.{key}: not an option the code offers"
            for key in labels
            if key not in use.values
        ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("section", ["config", "options", "config_subentries"])
def test_scan_sees_the_flows(section: str) -> None:
    """The scan really reads the flows (a scan that finds nothing would prove nothing)."""
    uses, _ = scan()
    assert any(use.path[0] == section for use in uses)

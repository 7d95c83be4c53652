"""Find, by reading the integration's source, every string of strings.json the code relies on.

A static scan (``ast``) of ``custom_components/iotee``: flow steps, abort reasons, form errors,
flow titles, menu options, exceptions, repair issues, entity names and selector options, each
with the placeholders the code passes (``None`` where the code passes none to that string).
Keys and placeholders are resolved from literals, module constants, local assignments, a
conditional of those, or an attribute of an annotated parameter (``err.code`` is every
``code`` of the annotated class and its subclasses). Whatever the scan cannot resolve is an
error, so a new way of using strings gets taught here rather than slipping through.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from homeassistant.config_entries import SOURCE_USER
from homeassistant.exceptions import HomeAssistantError

from custom_components.iotee.config_flow import IoteeConfigFlow

PACKAGE = "custom_components.iotee"
SOURCE = Path(__file__).parent.parent / "custom_components" / "iotee"
FLOW_SECTIONS = {"ConfigFlow": ("config",), "OptionsFlow": ("options",)}
ENTITY_PLATFORMS = {"lock", "switch", "button"}
IMPLIED_ABORTS = {
    "_abort_if_unique_id_configured": ("error", "already_configured"),
    "async_update_and_abort": ("reason", "reconfigure_successful"),
}
"""Flow helpers that abort on their own: the keyword naming the reason, and its default."""


class ScanError(Exception):
    """The scan met a use of strings it cannot resolve."""


@dataclass(frozen=True, slots=True)
class Use:
    """One string (a path into strings.json) the code needs, and the placeholders it passes."""

    path: tuple[str, ...]
    placeholders: frozenset[str] | None
    where: str


@dataclass(frozen=True, slots=True)
class SelectorUse:
    """A select selector's translation key and the option values the code offers."""

    key: str
    values: tuple[str, ...]
    where: str


def _subentry_sections() -> dict[str, tuple[str, ...]]:
    types = IoteeConfigFlow.async_get_supported_subentry_types(None)  # type: ignore[arg-type]
    return {flow.__name__: ("config_subentries", name) for name, flow in types.items()}


class _Module:
    """One source file: its tree, its imported module, and where each node sits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        relative = path.relative_to(SOURCE).with_suffix("")
        parts = [part for part in relative.parts if part != "__init__"]
        self.module: ModuleType = importlib.import_module(".".join([PACKAGE, *parts]))
        self.tree = ast.parse(path.read_text(encoding="utf-8"))
        self.parents: dict[ast.AST, ast.AST] = {
            child: node for node in ast.walk(self.tree) for child in ast.iter_child_nodes(node)
        }

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(SOURCE)}:{getattr(node, 'lineno', '?')}"

    def enclosing(self, node: ast.AST, kind: type[ast.AST] | tuple[type[ast.AST], ...]) -> Any:
        while (node := self.parents.get(node)) is not None:  # type: ignore[assignment]
            if isinstance(node, kind):
                return node
        return None

    def function(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        found: ast.FunctionDef | ast.AsyncFunctionDef | None = self.enclosing(
            node, (ast.FunctionDef, ast.AsyncFunctionDef)
        )
        return found

    # ---- resolving expressions --------------------------------------------------------------

    def strings(self, node: ast.expr) -> set[str]:
        """Every str value ``node`` can have."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.IfExp):
            return self.strings(node.body) | self.strings(node.orelse)
        if isinstance(node, ast.Name):
            assigned = self._local_values(node)
            if assigned:
                return set().union(*(self.strings(value) for value in assigned))
            value = getattr(self.module, node.id, None)
            if isinstance(value, str):
                return {value}
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            mapping = getattr(self.module, node.value.id, None)  # a module-level table
            if (
                isinstance(mapping, dict)
                and mapping
                and all(isinstance(value, str) for value in mapping.values())
            ):
                return set(mapping.values())
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            cls = self._annotated_class(node.value)
            if cls is not None:
                return {
                    value
                    for klass in _with_subclasses(cls)
                    if isinstance(value := getattr(klass, node.attr, None), str)
                }
        raise ScanError(f"{self.where(node)}: cannot tell the value of {ast.unparse(node)}")

    def keys(self, node: ast.expr | None) -> frozenset[str]:
        """The keys of the placeholder mapping ``node``."""
        if node is None or (isinstance(node, ast.Constant) and node.value is None):
            return frozenset()
        if isinstance(node, ast.Dict):
            if not all(isinstance(key, ast.Constant) for key in node.keys):
                raise ScanError(f"{self.where(node)}: placeholder keys must be literals")
            return frozenset(key.value for key in node.keys if isinstance(key, ast.Constant))
        if isinstance(node, ast.Name):
            assigned = self._local_values(node)
            if len(assigned) == 1:
                return self.keys(assigned[0])
        if isinstance(node, ast.Attribute) and _is_self(node.value):
            assigned = [
                value
                for value in self._self_assignments(node)
                if not (isinstance(value, ast.Dict) and not value.keys)
            ]
            if len({self.keys(value) for value in assigned}) == 1:
                return self.keys(assigned[0])
        raise ScanError(f"{self.where(node)}: cannot tell the keys of {ast.unparse(node)}")

    def _local_values(self, name: ast.Name) -> list[ast.expr]:
        function = self.function(name)
        if function is None:
            return []
        return [
            node.value
            for node in ast.walk(function)
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name.id for t in node.targets)
        ]

    def _self_assignments(self, attribute: ast.Attribute) -> list[ast.expr]:
        cls = self.enclosing(attribute, ast.ClassDef)
        return [
            node.value
            for node in ast.walk(cls)
            if isinstance(node, ast.Assign)
            and any(
                isinstance(t, ast.Attribute) and _is_self(t.value) and t.attr == attribute.attr
                for t in node.targets
            )
        ]

    def _annotated_class(self, name: ast.Name) -> type | None:
        function = self.function(name)
        if function is None:
            return None
        for arg in function.args.args + function.args.kwonlyargs:
            if arg.arg == name.id and isinstance(arg.annotation, ast.Name):
                found = getattr(self.module, arg.annotation.id, None)
                return found if isinstance(found, type) else None
        return None

    def evaluate(self, node: ast.expr, namespace: dict[str, Any] | None = None) -> Any:
        """Evaluate ``node`` with the module's names, its function's imports and locals.

        A local name must be assigned once in the function; its value is evaluated the same way.
        """
        if namespace is None:
            namespace = dict(vars(self.module))
            function = self.function(node)
            for statement in [] if function is None else ast.walk(function):
                if isinstance(statement, ast.ImportFrom | ast.Import):
                    code = compile(ast.Module([statement], []), str(self.path), "exec")
                    exec(code, namespace)  # the integration's own imports
        for name in ast.walk(node):
            if isinstance(name, ast.Name) and name.id not in namespace:
                assigned = self._local_values(name)
                if len(assigned) == 1:
                    namespace[name.id] = self.evaluate(assigned[0], namespace)
        return eval(compile(ast.Expression(node), str(self.path), "eval"), namespace)


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _with_subclasses(cls: type) -> Iterator[type]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _with_subclasses(sub)


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _callee(call: ast.Call) -> str:
    func = call.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr == "__init__"
        and isinstance(func.value, ast.Name)
    ):
        return func.value.id  # ``SomeError.__init__(self, translation_key=...)``
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


class _Scanner:
    def __init__(self) -> None:
        self.uses: list[Use] = []
        self.selectors: list[SelectorUse] = []
        self.subentries = _subentry_sections()

    def scan(self, source: _Module) -> None:
        for node in ast.walk(source.tree):
            if isinstance(node, ast.ClassDef):
                self._entity(source, node)
                section = self._flow_section(node)
                if section is not None:
                    self._flow(source, node, section)
            elif isinstance(node, ast.Call) and _keyword(node, "translation_key") is not None:
                self._translated_call(source, node)

    def _use(
        self, source: _Module, node: ast.AST, path: tuple[str, ...], keys: frozenset[str] | None
    ) -> None:
        self.uses.append(Use(path, keys, source.where(node)))

    def _flow_section(self, cls: ast.ClassDef) -> tuple[str, ...] | None:
        if cls.name in self.subentries:
            return self.subentries[cls.name]
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in FLOW_SECTIONS:
                return FLOW_SECTIONS[base.id]
        return None

    def _flow(self, source: _Module, cls: ast.ClassDef, section: tuple[str, ...]) -> None:
        if section[0] == "config_subentries":
            self._use(source, cls, (*section, "entry_type"), None)
            self._use(source, cls, (*section, "initiate_flow", SOURCE_USER), None)
        for node in ast.walk(cls):
            if isinstance(node, ast.Assign):
                self._flow_assignment(source, node, section)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and _is_self(node.func.value)
            ):
                for path, keys in self._flow_call(source, node, node.func.attr):
                    self._use(source, node, (*section, *path), keys)

    def _flow_call(
        self, source: _Module, call: ast.Call, method: str
    ) -> Iterator[tuple[tuple[str, ...], frozenset[str] | None]]:
        """The strings one ``self.<method>(...)`` call of a flow needs."""
        if method in ("async_show_form", "async_show_menu"):
            keys = source.keys(_keyword(call, "description_placeholders"))
            menu = _keyword(call, "menu_options")
            for step_id in source.strings(_required(source, call, "step_id")):
                yield ("step", step_id), keys
                for option in [] if menu is None else source.evaluate(menu):
                    yield ("step", step_id, "menu_options", option), None
        elif method == "async_abort":
            keys = source.keys(_keyword(call, "description_placeholders"))
            for reason in source.strings(_required(source, call, "reason")):
                yield ("abort", reason), keys
        elif method == "async_set_unique_id":
            # Unless told not to, HA aborts when a flow with that unique id is in progress.
            raise_on_progress = _keyword(call, "raise_on_progress")
            if not isinstance(raise_on_progress, ast.Constant) or raise_on_progress.value:
                yield ("abort", "already_in_progress"), None
        elif method in IMPLIED_ABORTS:
            keyword, default = IMPLIED_ABORTS[method]
            reason = _keyword(call, keyword)
            for name in {default} if reason is None else source.strings(reason):
                yield ("abort", name), None
        elif method == "async_create_entry" and _keyword(call, "unique_id") is not None:
            # A subentry flow: HA aborts it when a subentry has that unique id already.
            yield ("abort", "already_configured"), None

    def _flow_assignment(self, source: _Module, node: ast.Assign, section: tuple[str, ...]) -> None:
        for target in node.targets:
            if not isinstance(target, ast.Subscript):
                continue
            container = target.value
            if isinstance(container, ast.Name) and container.id == "errors":
                for reason in source.strings(node.value):
                    self._use(source, node, (*section, "error", reason), None)
            elif (
                isinstance(container, ast.Attribute)
                and container.attr == "context"
                and source.strings(target.slice) == {"title_placeholders"}
            ):
                self._use(source, node, (*section, "flow_title"), source.keys(node.value))

    def _entity(self, source: _Module, cls: ast.ClassDef) -> None:
        keys: set[str] = set()
        placeholders: frozenset[str] = frozenset()
        for node in ast.walk(cls):
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                name = getattr(target, "id", getattr(target, "attr", None))
                if name == "_attr_translation_key":
                    keys |= source.strings(node.value)
                elif name == "_attr_translation_placeholders":
                    placeholders = source.keys(node.value)
        if not keys:
            return
        platform = source.path.stem
        if platform not in ENTITY_PLATFORMS:
            raise ScanError(f"{source.where(cls)}: translated entity outside a platform module")
        for key in keys:
            self._use(source, cls, ("entity", platform, key), placeholders)

    def _translated_call(self, source: _Module, call: ast.Call) -> None:
        callee = _callee(call)
        key_node = _keyword(call, "translation_key")
        assert key_node is not None
        if callee == "SelectSelectorConfig":
            options = source.evaluate(_required(source, call, "options"))
            values = tuple(o["value"] if isinstance(o, dict) else o for o in options)
            for key in source.strings(key_node):
                self.selectors.append(SelectorUse(key, values, source.where(call)))
            return
        keys = source.keys(_keyword(call, "translation_placeholders"))
        if callee == "async_create_issue":
            section = "issues"
            suffix: tuple[str, ...] = ()
        else:
            cls = getattr(source.module, callee, None)
            if not (isinstance(cls, type) and issubclass(cls, HomeAssistantError)):
                raise ScanError(f"{source.where(call)}: unknown use of translation_key")
            section, suffix = "exceptions", ("message",)
        for key in source.strings(key_node):
            self._use(source, call, (section, key, *suffix), keys)


def _required(source: _Module, call: ast.Call, name: str) -> ast.expr:
    node = _keyword(call, name)
    if node is None:
        raise ScanError(f"{source.where(call)}: {_callee(call)} without {name}=")
    return node


def scan() -> tuple[list[Use], list[SelectorUse]]:
    """Return what the integration's source needs of strings.json."""
    scanner = _Scanner()
    for path in sorted(SOURCE.rglob("*.py")):
        scanner.scan(_Module(path))
    return scanner.uses, scanner.selectors

"""Compile JSON Schema (2020-12) into plain Python predicates, for fast yes/no validation.

``jsonschema`` is the reference: it gives the error messages, but it checks a typical
OpenLineage event at about 1,000 events/s on one core. The predicates built here answer only
"valid or not", about ten times faster, so :mod:`cmf_core.openlineage.validate` asks them first
and asks ``jsonschema`` for the details only when an event fails.

Only the keywords the OpenLineage and CMF schemas use are compiled (``type``, ``properties``,
``required``, ``additionalProperties``, ``items``, ``enum``, ``const``, ``$ref``, ``allOf``,
``anyOf``, ``oneOf``, ``not``, ``format``, ``minimum``, ``minLength``, ``pattern``,
``dependentRequired``, plus annotations). Any other keyword raises :class:`UnsupportedSchema`
when compiling, so a schema this module does not understand is never half-checked: the caller
falls back to ``jsonschema`` for it. Semantics follow ``jsonschema``'s: ``bool`` is not a number,
``1.0`` is an integer, ``True != 1`` in ``enum``/``const``, and a ``format`` is checked only for
strings and only for the formats given.
"""

# ruff: noqa: SIM110 - explicit loops: all()/any() over generators are ~2x slower here

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urldefrag, urljoin

from referencing import Registry

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset({
    "$schema", "$comment", "$defs", "definitions", "title", "description", "default",
    "example", "examples", "deprecated", "documentation", "readOnly", "writeOnly",
})


class UnsupportedSchema(Exception):
    """A schema uses a keyword this compiler does not implement."""


_MISSING = object()


def _true(_: Any) -> bool:
    return True


def _false(_: Any) -> bool:
    return False


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and type(x) is not bool


def _is_integer(x: Any) -> bool:
    if type(x) is bool:
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


_TYPES: dict[str, Check] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "number": _is_number,
    "integer": _is_integer,
    "boolean": lambda x: type(x) is bool,
    "null": lambda x: x is None,
}


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema defines it (``True`` is not ``1``, ``1`` is ``1.0``)."""
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if (type(a) is bool) != (type(b) is bool):
        return False
    return bool(a == b)


def _all(checks: list[Check]) -> Check:
    if not checks:
        return _true
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda x: first(x) and second(x)
    frozen = tuple(checks)

    def check_all(x: Any) -> bool:
        for c in frozen:
            if not c(x):
                return False
        return True

    return check_all


def _object_check(strict: bool, required: tuple[str, ...],
                  props: tuple[tuple[str, Check], ...]) -> Check:
    missing = _MISSING

    def check_object(x: Any) -> bool:
        if not isinstance(x, dict):
            return not strict
        for n in required:
            if n not in x:
                return False
        for k, c in props:
            v = x.get(k, missing)
            if v is not missing and not c(v):
                return False
        return True

    return check_object


class SchemaCompiler:
    """Compiles schemas found in ``registry``; ``formats`` maps a format name to its check."""

    def __init__(self, registry: Registry, formats: Mapping[str, Callable[[str], bool]]):
        self._registry = registry
        self._formats = dict(formats)
        self._by_uri: dict[str, Check] = {}
        self._parts: dict[Check, tuple[Check, ...]] = {}  # an all-of check -> its parts
        # an object check (additionalProperties allowed) -> (strict, required, properties)
        self._objects: dict[Check, tuple[bool, tuple[str, ...], tuple[tuple[str, Check], ...]]] = {}

    def compile_uri(self, uri: str) -> Check:
        """The predicate of the (sub)schema at absolute ``uri`` (``<$id>#<JSON pointer>``)."""
        if uri in self._by_uri:
            return self._by_uri[uri]
        cell: list[Check] = []
        # A recursive schema reaches this uri again while it is compiled: it gets a trampoline.
        self._by_uri[uri] = lambda x: cell[0](x)
        try:
            resolved = self._registry.resolver().lookup(uri)
            base, fragment = urldefrag(uri)
            check = self._compile(resolved.contents, base, root=not fragment)
        except BaseException:
            self._by_uri.clear()  # closures built meanwhile may hold the empty trampoline
            raise
        cell.append(check)
        self._by_uri[uri] = check
        return check

    # ----------------------------------------------------------------------------------------
    def _compile(self, schema: Any, base: str, root: bool = False) -> Check:
        if schema is True:
            return _true
        if schema is False:
            return _false
        if not isinstance(schema, dict):
            raise UnsupportedSchema(f"schema {schema!r} is not an object or boolean")
        parts: list[Check] = []
        done: set[str] = set()
        kind = schema.get("type")
        if kind == "object" or any(
                k in schema for k in ("properties", "additionalProperties", "required")):
            parts.append(self._object(schema, base, strict=kind == "object"))
            done |= {"properties", "additionalProperties", "required"}
            if kind == "object":
                done.add("type")
        elif kind == "string":
            parts.append(self._string(schema))
            done |= {"type", "format", "pattern", "minLength"}
            if "enum" in schema and all(isinstance(o, str) for o in schema["enum"]):
                done.add("enum")
        for key, value in schema.items():
            if key in done or key in _ANNOTATIONS or (key == "$id" and root):
                continue
            builder = getattr(self, "_kw_" + key.lstrip("$"), None)
            if builder is None:
                raise UnsupportedSchema(f"keyword {key!r} is not supported")
            check = builder(value, base, schema)
            if key == "type":
                parts.insert(0, check)  # cheapest first: most failures stop here
            else:
                parts.extend(self._parts.get(check, (check,)))  # inline allOf / $ref parts
        unique = self._merge_objects(list(dict.fromkeys(parts)))
        check = _all(unique)
        if len(unique) > 1:
            self._parts[check] = tuple(unique)
        return check

    def _object(self, schema: dict[str, Any], base: str, strict: bool) -> Check:
        """``type: object`` (if ``strict``), ``required``, ``properties`` and
        ``additionalProperties`` as one function."""
        required = tuple(schema.get("required", ()))
        props = tuple((k, self._compile(v, base))
                      for k, v in schema.get("properties", {}).items())
        extra = schema.get("additionalProperties", True)
        if extra is True:
            check = _object_check(strict, required, props)
            self._objects[check] = (strict, required, props)
            return check
        extra_check = self._compile(extra, base)
        by_name = dict(props)

        def check_members(x: Any) -> bool:
            if not isinstance(x, dict):
                return not strict
            for n in required:
                if n not in x:
                    return False
            for k, v in x.items():
                c = by_name.get(k)
                if c is None:
                    if not extra_check(v):
                        return False
                elif not c(v):
                    return False
            return True

        return check_members

    def _merge_objects(self, parts: list[Check]) -> list[Check]:
        """Fuse the object checks among ``parts`` (all of which must hold) into one."""
        specs = [self._objects[p] for p in parts if p in self._objects]
        typed = _TYPES["object"] in parts
        if len(specs) + typed < 2 or not specs:
            return parts
        strict = typed or any(spec[0] for spec in specs)
        required = tuple(dict.fromkeys(n for spec in specs for n in spec[1]))
        props = tuple(dict.fromkeys(kc for spec in specs for kc in spec[2]))
        fused = _object_check(strict, required, props)
        self._objects[fused] = (strict, required, props)
        rest = [p for p in parts if p not in self._objects and p is not _TYPES["object"]]
        return [fused, *rest]

    def _string(self, schema: dict[str, Any]) -> Check:
        """``type: string`` with its ``format``, ``pattern``, ``minLength`` and string ``enum``."""
        preds: list[Callable[[str], bool]] = []
        fmt = self._formats.get(schema.get("format", ""))
        if fmt is not None:
            preds.append(fmt)
        if "pattern" in schema:
            search = re.compile(schema["pattern"]).search
            preds.append(lambda x: search(x) is not None)
        if "minLength" in schema:
            least = schema["minLength"]
            preds.append(lambda x: len(x) >= least)
        if "enum" in schema and all(isinstance(o, str) for o in schema["enum"]):
            options = frozenset(schema["enum"])
            preds.append(options.__contains__)
        if not preds:
            return lambda x: isinstance(x, str)
        if len(preds) == 1:
            pred = preds[0]
            return lambda x: isinstance(x, str) and pred(x)
        frozen = tuple(preds)

        def check_string(x: Any) -> bool:
            if not isinstance(x, str):
                return False
            for p in frozen:
                if not p(x):
                    return False
            return True

        return check_string

    def _kw_type(self, value: Any, base: str, schema: dict[str, Any]) -> Check:
        names = [value] if isinstance(value, str) else list(value)
        try:
            fns = tuple(_TYPES[n] for n in names)
        except KeyError as e:
            raise UnsupportedSchema(f"type {e.args[0]!r}") from None
        if len(fns) == 1:
            return fns[0]
        return lambda x: any(f(x) for f in fns)

    def _kw_items(self, value: Any, base: str, schema: dict[str, Any]) -> Check:
        if not isinstance(value, (dict, bool)):
            raise UnsupportedSchema("array form of 'items'")
        item = self._compile(value, base)

        def check_items(x: Any) -> bool:
            if not isinstance(x, list):
                return True
            for v in x:
                if not item(v):
                    return False
            return True

        return check_items

    def _kw_enum(self, value: Any, base: str, schema: dict[str, Any]) -> Check:
        options = list(value)
        if all(isinstance(o, str) for o in options):
            strings = frozenset(options)
            return lambda x: isinstance(x, str) and x in strings
        return lambda x: any(json_equal(x, o) for o in options)

    def _kw_const(self, value: Any, base: str, schema: dict[str, Any]) -> Check:
        return lambda x: json_equal(x, value)

    def _kw_ref(self, value: Any, base: str, schema: dict[str, Any]) -> Check:
        target = urljoin(base, value)
        if "#" not in target:
            target += "#"
        return self.compile_uri(target)

    def _kw_allOf(self, value: Any, base: str, schema: dict[str, Any]) -> Check:  # noqa: N802
        return _all([self._compile(s, base) for s in value])

    def _kw_anyOf(self, value: Any, base: str, schema: dict[str, Any]) -> Check:  # noqa: N802
        options = tuple(self._compile(s, base) for s in value)

        def check_any(x: Any) -> bool:
            for c in options:
                if c(x):
                    return True
            return False

        return check_any

    def _kw_oneOf(self, value: Any, base: str, schema: dict[str, Any]) -> Check:  # noqa: N802
        options = tuple(self._compile(s, base) for s in value)

        def check_one(x: Any) -> bool:
            found = 0
            for c in options:
                if c(x):
                    found += 1
                    if found > 1:
                        return False
            return found == 1

        return check_one

    def _kw_not(self, value: Any, base: str, schema: dict[str, Any]) -> Check:
        inner = self._compile(value, base)
        return lambda x: not inner(x)

    def _kw_format(self, value: Any, base: str, schema: dict[str, Any]) -> Check:
        fmt = self._formats.get(value)
        if fmt is None:
            return _true  # an unchecked format is an annotation, as in jsonschema
        return lambda x: not isinstance(x, str) or fmt(x)

    def _kw_minimum(self, value: Any, base: str, schema: dict[str, Any]) -> Check:
        return lambda x: not _is_number(x) or x >= value

    def _kw_minLength(self, value: Any, base: str, schema: dict[str, Any]) -> Check:  # noqa: N802
        return lambda x: not isinstance(x, str) or len(x) >= value

    def _kw_pattern(self, value: Any, base: str, schema: dict[str, Any]) -> Check:
        search = re.compile(value).search
        return lambda x: not isinstance(x, str) or search(x) is not None

    def _kw_dependentRequired(self, value: Any, base: str,  # noqa: N802
                              schema: dict[str, Any]) -> Check:
        deps = tuple((k, tuple(v)) for k, v in value.items())

        def check_deps(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for k, needed in deps:
                if k in x:
                    for n in needed:
                        if n not in x:
                            return False
            return True

        return check_deps

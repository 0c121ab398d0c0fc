"""The compiled predicates agree with jsonschema, the reference, on valid and broken events."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from cmf_core.openlineage.convert import ExecutionLineage, to_event_dicts
from cmf_core.openlineage.facets import schema_files
from cmf_core.openlineage.fastschema import SchemaCompiler, UnsupportedSchema, json_equal
from cmf_core.openlineage.validate import FORMATS, SPEC_URL, spec_files

DOCS = [json.loads(f.read_text(encoding="utf-8")) for f in [*spec_files(), *schema_files()]]
REGISTRY: Registry = Registry().with_resources(
    (d["$id"], Resource.from_contents(d)) for d in DOCS).crawl()
CHECKER = FormatChecker(formats=())
for _name, _fn in FORMATS.items():
    CHECKER.checks(_name)(lambda x, fn=_fn: not isinstance(x, str) or fn(x))
COMPILER = SchemaCompiler(REGISTRY, FORMATS)
URIS = [f"{SPEC_URL}#/$defs/{k}" for k in ("RunEvent", "DatasetEvent", "JobEvent")] + [
    f"{d['$id']}#/properties/{key}" for d in DOCS[1:] for key in d["properties"]]


def pair(uri: str) -> tuple[Callable[[Any], bool], Draft202012Validator]:
    return COMPILER.compile_uri(uri), Draft202012Validator(
        {"$ref": uri}, registry=REGISTRY, format_checker=CHECKER)


PAIRS = {uri: pair(uri) for uri in URIS}


def test_every_vendored_schema_compiles() -> None:
    assert len(PAIRS) == 3 + sum(len(d["properties"]) for d in DOCS[1:])


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.sampled_from([
        "", "x", "START", "COMPLETE", "2024-05-01", "2024-05-01T12:00:00Z",
        "0f3c1a2b-1111-4222-8333-444455556666", "not a uri", "https://x.org", "binary", "compare",
    ]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
        st.sampled_from(["runId", "name", "namespace", "_producer", "x", "type"]), inner,
        max_size=2),
    max_leaves=4,
)


def mutate(event: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    event = copy.deepcopy(event)
    for _ in range(data.draw(st.integers(1, 2))):
        target = data.draw(st.sampled_from(paths(event)[1:]))
        parent = event
        for step in target[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[target[-1]]
        else:
            parent[target[-1]] = data.draw(JSON_VALUES)
        if not paths(event)[1:]:
            break
    return event


def samples(make_lineage: Callable[..., ExecutionLineage],
            make_airflow_events: Callable[..., list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [*to_event_dicts(make_lineage()), *make_airflow_events(),
            {"eventTime": "2024-05-01T12:00:00Z", "producer": "https://x.org/p",
             "schemaURL": f"{SPEC_URL}#/$defs/DatasetEvent",
             "dataset": {"namespace": "s3://b", "name": "k", "facets": {}}},
            {"eventTime": "2024-05-01T12:00:00Z", "producer": "https://x.org/p",
             "schemaURL": f"{SPEC_URL}#/$defs/JobEvent",
             "job": {"namespace": "n", "name": "j"}, "inputs": [], "outputs": []}]


def facet_instances(event: dict[str, Any]) -> list[tuple[str, Any]]:
    """(uri, facet) for every facet in ``event`` with a schema (any location)."""
    found = []
    for path in paths(event):
        if len(path) >= 2 and path[-2] in ("facets", "inputFacets", "outputFacets"):
            node = event
            for step in path:
                node = node[step]
            for uri in URIS[3:]:
                if uri.endswith(f"/properties/{path[-1]}"):
                    found.append((uri, node))
    return found


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_compiled_checks_agree_with_jsonschema(data: st.DataObject, make_lineage: Any,
                                               make_airflow_events: Any) -> None:
    base = data.draw(st.sampled_from(samples(make_lineage, make_airflow_events)))
    agree(mutate(base, data))


FIXED_VALUES: list[Any] = [None, "x", -1, {}, "2024-05-01"]


def agree(event: dict[str, Any]) -> bool:
    """Asserts that the compiled checks judge ``event`` (and each of its facets) as jsonschema
    does; returns whether jsonschema finds it a valid event of any kind."""
    valid = False
    for kind in ("RunEvent", "DatasetEvent", "JobEvent"):
        fast, slow = PAIRS[f"{SPEC_URL}#/$defs/{kind}"]
        verdict = slow.is_valid(event)
        assert fast(event) == verdict, (kind, event)
        valid |= verdict
    for uri, facet in facet_instances(event):
        fast, slow = PAIRS[uri]
        assert fast(facet) == slow.is_valid(facet), (uri, facet)
    return valid


def test_every_single_field_change_is_judged_alike(make_lineage: Any,
                                                   make_airflow_events: Any) -> None:
    """Exhaustive: delete each field, or set it to each of a few values, in every sample."""
    checked = invalid = 0
    for base in samples(make_lineage, make_airflow_events):
        for target in paths(base)[1:]:
            for value in [KeyError, *FIXED_VALUES]:
                event = copy.deepcopy(base)
                parent = event
                for step in target[:-1]:
                    parent = parent[step]
                if value is KeyError:
                    if not isinstance(parent, dict):
                        continue
                    del parent[target[-1]]
                else:
                    parent[target[-1]] = value
                valid = agree(event)  # jsonschema's verdict, reused (it is the slow part)
                checked += 1
                invalid += not valid
    assert checked > 1000 and invalid > 100


def test_unmutated_samples_are_valid(make_lineage: Any, make_airflow_events: Any) -> None:
    for event in samples(make_lineage, make_airflow_events):
        kinds = [k for k in ("RunEvent", "DatasetEvent", "JobEvent")
                 if PAIRS[f"{SPEC_URL}#/$defs/{k}"][0](event)]
        assert len(kinds) == 1


def test_recursive_schema_compiles_once_and_checks_depth() -> None:
    fast, slow = PAIRS[next(u for u in URIS if u.endswith("/properties/subset"))]
    leaf = {"type": "location", "locations": ["s3://b/k"]}
    cond = {"type": "binary", "operator": "AND", "left": leaf,
            "right": {"type": "binary", "operator": "OR", "left": leaf, "right": leaf}}
    facet = {"_producer": "https://x.org", "_schemaURL": "https://x.org/s", "inputCondition": cond}
    assert fast(facet) and slow.is_valid(facet)
    cond["right"]["left"] = {"type": "binary"}
    assert not fast(facet) and not slow.is_valid(facet)


@pytest.mark.parametrize(("a", "b", "equal"), [
    (True, 1, False), (1, 1.0, True), ("1", 1, False), ([1, {"a": True}], [1, {"a": True}], True),
    ({"a": 0}, {"a": False}, False),
])
def test_json_equality(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal


def test_types_follow_json_schema() -> None:
    registry: Registry = Registry().with_resource("urn:t", Resource.from_contents({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"n": {"type": "number"}, "i": {"type": "integer"}, "e": {"enum": [1, "a"]}}}))
    c = SchemaCompiler(registry, {})
    number, integer, enum = (c.compile_uri(f"urn:t#/$defs/{k}") for k in "nie")
    assert number(1.5) and number(2) and not number(True) and not number("1")
    assert integer(3) and integer(3.0) and not integer(3.5) and not integer(False)
    assert enum(1) and enum(1.0) and enum("a") and not enum(True)


def test_unknown_keyword_is_refused_not_half_checked() -> None:
    registry: Registry = Registry().with_resource("urn:u", Resource.from_contents({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "patternProperties": {"^x": {"type": "string"}}}))
    with pytest.raises(UnsupportedSchema, match="patternProperties"):
        SchemaCompiler(registry, {}).compile_uri("urn:u#")

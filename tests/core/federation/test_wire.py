"""Compact bundles (format 2): blocks checked by columns give exactly the rows the record-by-record
path gives, refuse the same bad values, and import to the same store as format 1. On a real
SQLite file and a real PostgreSQL."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cmf_core import jsonutil
from cmf_core.errors import InvalidInputError
from cmf_core.federation.bundle import COMPACT, FORMAT, Header, Reader, bundle_bytes
from cmf_core.federation.export import (
    Selector,
    canonical_lines,
    export_bundle,
    header_for,
    page_lines,
)
from cmf_core.federation.merge import import_bundle
from cmf_core.federation.wire import (
    _DIGESTS,
    _UUIDS,
    BLOCK,
    OBJECT_FIELDS,
    _matches,
    block_lines,
    row_dict,
    wire_block,
)
from cmf_core.identity import remote_digest, uuid7
from cmf_core.model import (
    Artifact,
    EnergyRecord,
    Event,
    Execution,
    Metric,
    Pipeline,
    Record,
    Stage,
)
from cmf_core.records import record_to_dict
from cmf_core.store import Store, open_store
from cmf_core.store.base import EXPORT_FIELDS
from cmf_core.store.sql import WireBlock, wire_row
from tests.core.federation.strategies import record_sets


def one_by_one(kind: str, rows: list[list[Any]]) -> list[list[Any]] | None:
    """The format-1 path: each record as its dict, through ``wire_row``."""
    out = []
    for row in rows:
        data = row_dict(kind, row)
        origin, oseq = data.pop("_v")
        made = wire_row(data, origin, oseq)
        if made is None:
            return None
        out.append(list(made[1]))
    return out


def columns_as_rows(block: WireBlock) -> list[list[Any]]:
    return [list(r) for r in zip(*block[1], strict=True)]


def _escaped_backslash_u0000() -> list[Record]:
    """Found by the property below: an object key that is the text ``\\u0000`` (backslash,
    u, 0000: JSON ``"\\\\u0000"``), not a NUL, was taken for one and sent down the slow path."""
    name, ex = f"p-{uuid.uuid4().hex[:8]}", uuid7()
    return [Pipeline(name=name, site="0", created_at=0.0),
            Stage(pipeline=name, name="0", site="0", created_at=0.0),
            Execution(pipeline=name, stage="0", site="0", id=ex, started_at=0.0),
            EnergyRecord(execution_id=ex, site="0", energy_kwh=0.0, co2e_kg=0.0,
                         details={"\\u0000": None})]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(records=record_sets())
@example(records=_escaped_backslash_u0000())
def test_blocks_give_the_rows_of_the_record_path(store: Store, records: list[Record]) -> None:
    """Rows exported as blocks and checked by columns equal the rows wire_row makes of the same
    records (and the two line forms carry the same records)."""
    before = store.max_seq()
    store.put(records)
    page = store.export_page(before, None)
    for kind in EXPORT_FIELDS:
        rows = page.rows.get(kind, [])
        if not rows:
            continue
        blocks = [json.loads(line) for line, _ in block_lines(kind, rows)]
        assert [len(b[1]) for b in blocks] == [min(BLOCK, len(rows))] * len(blocks)
        sent = [row for b in blocks for row in b[1]]
        expected = one_by_one(kind, sent)
        block = wire_block(kind, sent)
        if expected is None:  # pipelines and stages: records, both paths
            assert block is None
            continue
        assert block is not None and type(block) is WireBlock
        assert columns_as_rows(block) == expected
        v1 = [json.loads(line) for line in page_lines(page) if f'"kind":"{kind}"' in line]
        assert [row_dict(kind, r) for r in sent] == v1


def block_of(record: Record, **changes: Any) -> tuple[str, list[Any]]:
    """A record as a one-record block (objects as their JSON text), some fields changed."""
    data = jsonutil.loads(jsonutil.dumps(record_to_dict(record)))
    for f in OBJECT_FIELDS.intersection(data):
        data[f] = jsonutil.dumps(data[f])
    data.update(changes)
    return data["kind"], [*(data[f] for f in EXPORT_FIELDS[data["kind"]]), "origin-x", 7]


# a fixed id: test ids are made from it, and pytest-xdist's workers must collect the same ones
EX = Execution("p", "s", "a", id="01a22917-f569-7e4e-8739-9884f43814e9", status="completed",
               started_at=1.0, ended_at=5.0, params={"lr": 0.1})
DIGEST = remote_digest("s3://x", "1")
GOOD: dict[str, Record] = {
    "event": Event(EX.id, DIGEST, "INPUT"),
    "metric": Metric(EX.id, "m", 1.0, step=2),
    "execution": EX,
    "artifact": Artifact(DIGEST, "Model", "m", "s3://x", "a"),
    "energy": EnergyRecord(EX.id, "a", 1.0, 0.5, {"cpu": {"method": "rapl"}}),
}

# values the bulk checks leave to the record path, which normalises them
UNUSUAL: list[tuple[str, str, Any]] = [
    ("event", "execution_id", EX.id.upper()),
    ("event", "type", "input"),
    ("metric", "value", 1),
    ("execution", "status", "COMPLETED"),
    ("execution", "params", '{ "lr" : 0.1 }'),
    ("energy", "details", '{"cpu":{"method":"rapl"},"a":1}'),
]


@pytest.mark.parametrize(("kind", "field", "value"), UNUSUAL)
def test_unusual_values_take_the_record_path_with_the_same_result(kind: str, field: str,
                                                                   value: Any) -> None:
    k, row = block_of(GOOD[kind], **{field: value})
    fast = wire_block(k, [row])
    expected = one_by_one(k, [row])
    assert expected is not None
    if fast is not None:  # objects are made canonical by the block path as well
        assert columns_as_rows(fast) == expected
    else:
        assert field != "params"


def test_large_finite_values_take_the_block_path() -> None:
    """Values near the float maximum are finite, however large their sum (hypothesis found two
    1e308 metrics refused by the columns check, which summed them)."""
    rows = [block_of(Metric(EX.id, f"m{i}", 1.7e308, step=i))[1] for i in range(2)]
    block = wire_block("metric", rows)
    assert block is not None and columns_as_rows(block) == one_by_one("metric", rows)


BAD: list[tuple[str, str, Any]] = [
    ("event", "execution_id", "not-a-uuid"),
    ("event", "execution_id", EX.id + "\n" + EX.id),
    ("event", "artifact_id", "md5:123"),
    ("event", "type", "SIDEWAYS"),
    ("metric", "value", "__inf__"),  # 1e999 in the line: parsed as an infinite float
    ("metric", "value", "NaN"),
    ("metric", "step", -1),
    ("metric", "step", True),  # Metric refuses a bool step, so the wire does too
    ("metric", "name", "  "),
    ("metric", "name", "x" * 513),
    ("execution", "status", "exploded"),
    ("execution", "pipeline", ""),
    # NUL, refused by the model (PostgreSQL text cannot hold it): the block checks agree
    ("execution", "pipeline", "a\x00b"),
    ("metric", "name", "m\x00"),
    ("artifact", "uri", "s3://b/\x00"),
    ("execution", "params", "[1, 2]"),
    ("execution", "params", {"lr": 0.1}),  # an object, not its JSON text
    # nested deeper than a store can read back (MAX_NESTING), or than json.loads can parse
    ("execution", "params", '{"a":' + "[" * 300 + "]" * 300 + "}"),
    ("execution", "params", '{"a":' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("execution", "started_at", "yesterday"),
    ("artifact", "type", "Spaceship"),
    ("artifact", "id", "sha256:xyz"),
    ("energy", "details", "hot"),
    ("energy", "energy_kwh", None),
    ("energy", "energy_kwh", -1.0),
    ("energy", "co2e_kg", -0.0001),
]


def bundle2(lines: list[tuple[str, int]], origin: str = "peer-store") -> bytes:
    header = Header(origin_site="peer", origin_store=origin, selector={}, format=COMPACT,
                    columns={k: list(v) for k, v in EXPORT_FIELDS.items()})
    return b"".join(bundle_bytes(header, lines, 10, False))


@pytest.mark.parametrize(("kind", "field", "value"), BAD)
def test_bad_values_are_refused_naming_line_and_record(empty_store: Store, kind: str, field: str,
                                                       value: Any) -> None:
    """A bad value in a block: the import fails naming the line and the record, as in format 1,
    and nothing is stored."""
    assert wire_block(*block_of(GOOD[kind], **{field: value})) is None
    good = [block_of(r)[1] for r in GOOD.values() if block_of(r)[0] == kind]
    k, bad = block_of(GOOD[kind], **{field: value})
    line = json.dumps([k, [*good, bad]]).replace('"__inf__"', "1e999")
    if value == "__inf__":
        assert wire_block(k, json.loads(line)[1]) is None
    body = bundle2([(line, 2)])
    before = canonical_lines(empty_store)
    with pytest.raises(InvalidInputError, match=r":2: record 2 of the \w+ block: .*nothing"):
        import_bundle(empty_store, [body])
    assert canonical_lines(empty_store) == before


def test_block_shapes_are_checked(empty_store: Store) -> None:
    k, row = block_of(GOOD["metric"])
    for line, why in ((json.dumps([k, [row[:-1]]]), "array of 7 values"),
                      (json.dumps([k, [row], "extra"]), r"\[kind, \[record"),
                      (json.dumps(["spaceship", [row]]), "unknown record kind"),
                      (json.dumps({"kind": "metric"}), "JSON array")):
        with pytest.raises(InvalidInputError, match=why):
            import_bundle(empty_store, [bundle2([(line, 1)])])
    header = Header(origin_site="peer", origin_store="peer-store", selector={}, format=COMPACT,
                    columns={**{k: list(v) for k, v in EXPORT_FIELDS.items()},
                             "metric": ["value", "name"]})
    body = b"".join(bundle_bytes(header, [(json.dumps([k, [row]]), 1)], 10, False))
    with pytest.raises(InvalidInputError, match="record columns"):
        import_bundle(empty_store, [body])
    assert empty_store.metrics([EX.id]) == []


def site_records(site: str, n: int) -> list[Record]:
    out: list[Record] = [Pipeline("p", site, 1.0), Stage("p", "train", site, 1.0)]
    data = Artifact(remote_digest("s3://d", "1"), "Dataset", "d", "s3://d", site, 1.0)
    out.append(data)
    for i in range(n):
        ex = Execution("p", "train", site, id=uuid7(), started_at=10.0 + i,
                       params={"i": i, "name": "é\n\"x\""})
        model = Artifact(remote_digest(f"s3://m{i}", "1"), "Model", f"m{i}", f"s3://m{i}",
                         site, 10.0 + i, properties={"size": i})
        out += [model, ex, Event(ex.id, data.id, "INPUT"), Event(ex.id, model.id, "OUTPUT"),
                Metric(ex.id, "loss", 0.5 / (i + 1), step=i % 3 or None, timestamp=11.0),
                EnergyRecord(ex.id, site, 0.001 * i, 0.0005, {"cpu": {"method": "rapl"}}),
                ex.ended(ended_at=12.0 + i)]
    return out


def test_both_formats_import_to_the_same_store(store: Store, tmp_path: Path) -> None:
    """A store exported in format 2 (blocks over several pages) and in format 1 imports to the
    same rows, with the same conflicts, whichever comes first; and twice changes nothing."""
    src = open_store(f"sqlite:///{tmp_path / 'src.db'}", site="src")
    try:
        src.put(site_records("src", 2 * BLOCK + 17))
        v1 = b"".join(export_bundle(src, Selector(), page_size=700))
        v2 = b"".join(export_bundle(src, Selector(), page_size=700, fmt=COMPACT))
        assert Reader([v2]).open().format == COMPACT
        assert len(v2) < 0.75 * len(v1)
        rep2 = import_bundle(store, [v2])
        assert canonical_lines(store) == canonical_lines(src)
        assert import_bundle(store, [v1]).records == rep2.records > 6 * (2 * BLOCK + 17)
        again = import_bundle(store, [v2])
        assert again.conflicts == [] and canonical_lines(store) == canonical_lines(src)
        other = open_store(f"sqlite:///{tmp_path / 'other.db'}", site="other")
        try:
            import_bundle(other, [v1])
            assert canonical_lines(other) == canonical_lines(store)
        finally:
            other.close()
    finally:
        src.close()


def test_conflicts_are_found_in_blocks(tmp_path: Path) -> None:
    """A metric with another value arriving in a block is recorded as a conflict, the stored
    value stays."""
    a = open_store(f"sqlite:///{tmp_path / 'a.db'}", site="a")
    b = open_store(f"sqlite:///{tmp_path / 'b.db'}", site="b")
    try:
        ex = Execution("p", "s", "a", id=uuid7(), started_at=1.0)
        a.put([Pipeline("p", "a", 1.0), Stage("p", "s", "a", 1.0), ex,
               Metric(ex.id, "loss", 0.1, timestamp=5.0)])
        b.put([Pipeline("p", "a", 1.0), Stage("p", "s", "a", 1.0), ex,
               Metric(ex.id, "loss", 0.2, timestamp=5.0)])
        report = import_bundle(b, [b"".join(export_bundle(a, Selector(), fmt=COMPACT))])
        assert [(c["kind"], c["fields"]) for c in report.conflicts] == [("metric", ["value"])]
        assert [m.value for m in b.metrics([ex.id])] == [0.2]
        assert len(b.list_conflicts()) == 1  # type: ignore[attr-defined]
    finally:
        a.close()
        b.close()


def test_format_1_files_stay_format_1(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path / 's.db'}", site="s")
    try:
        s.put(site_records("s", 2))
        header = header_for(s, Selector(), since=0, snapshot=1, exclude=None, vector=None)
        assert header.format == FORMAT and "columns" not in header.to_line()
        body = b"".join(export_bundle(s, Selector()))
        first = json.loads(body.split(b"\n", 1)[0])
        assert first["format"] == 1 and "columns" not in first
    finally:
        s.close()


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@settings(max_examples=300, deadline=None)
@given(cuts=st.lists(st.tuples(st.integers(0, 40), st.sampled_from(list("0a-\nG\u00e9f9 ")),
                               st.booleans()), max_size=3))
def test_column_checks_are_the_per_value_pattern(cuts: list[tuple[int, str, bool]]) -> None:
    """The bulk id checks accept a column exactly when every value matches on its own."""
    col = [str(uuid.UUID(int=i * 7919 + 12345)) for i in range(5)]
    digests = [remote_digest(f"s3://{i}", "1") for i in range(5)]
    for pos, char, insert in cuts:
        for values in (col, digests):
            v = values[pos % 5]
            at = pos % (len(v) + 1)
            values[pos % 5] = v[:at] + char + v[at + (0 if insert else 1):]
    assert _matches(_UUIDS, col) == all(UUID.fullmatch(v) for v in col)
    assert _matches(_DIGESTS, digests) == all(
        re.fullmatch(r"(sha256|version):[0-9a-f]{64}", v) for v in digests)


def test_a_block_of_large_records_is_sent_as_shorter_lines(sqlite_store: Store, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """Executions with large params (here: more than BLOCK_CHARS, lowered to 20,000 for the
    test, per 1,000) are sent in lines of fewer records, each counted right, and arrive whole."""
    from cmf_core.federation import wire

    monkeypatch.setattr(wire, "BLOCK_CHARS", 20_000)
    src = open_store(f"sqlite:///{tmp_path / 'src.db'}", site="src")
    try:
        src.put(site_records("src", 300))
        body = b"".join(export_bundle(src, Selector(), fmt=COMPACT))
        lines = [json.loads(line) for line in body.splitlines()[1:-1]]
        executions = [len(rows) for kind, rows in lines if kind == "execution"]
        assert len(executions) > 1 and sum(executions) == 300
        assert all(len(json.dumps(x, ensure_ascii=False, separators=(",", ":"))) <= 20_000
                   for x in lines if len(x[1]) > 1)
        rep = import_bundle(sqlite_store, [body])
        assert rep.records == sum(len(rows) for _, rows in lines)
        assert canonical_lines(sqlite_store) == canonical_lines(src)
    finally:
        src.close()

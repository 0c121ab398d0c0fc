"""Import: merging a bundle into the store as a set union keyed by global ids.

* **One transaction.** The bundle is read, every record validated and the checksum verified
  before the store's write transaction begins (:meth:`Store.put_versioned`); a bad line, a bad
  checksum or a cut-off transfer leaves the store as it was.
* **Union, order-independent.** Rows merge by the store's upsert rules (earliest
  ``(created_at, site)`` row of a pipeline, stage or artifact wins; an execution's status only
  moves forward; events, metrics and energy never change), so importing twice changes nothing
  and any order of imports between any number of sites ends in the same rows. Lineage joins on
  artifact digests: a model trained at site A and fine-tuned at site B is one chain.
* **True conflicts are recorded, never overwritten**: the same id with different content that
  must not change (a metric or energy record with another value, an artifact digest with
  another type, an execution under another pipeline, stage or site, two different outcomes of
  one execution, two different rows with the same ``(created_at, site)``). The store keeps what
  its rules keep; each conflict is noted with :meth:`SqlStore.record_conflict` and reported.
* **Versions.** Each record keeps the version it had at its origin store (``_v``), and after a
  complete import of a change bundle the importer records how far it has the origin (a
  high-water mark on the origin's seq) and adopts the origin's version vector, so later syncs
  send only what is new (see :mod:`cmf_core.federation.peer`).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cmf_core.errors import InvalidInputError
from cmf_core.federation.bundle import (
    COMPACT,
    BundleError,
    Header,
    Reader,
    Trailer,
    bulk,
    file_chunks,
    parse_line,
)
from cmf_core.federation.export import VECTOR_KEY, VERSION_KEY, Selector, load_vector
from cmf_core.federation.wire import record_key, row_dict, wire_block
from cmf_core.model import (
    Artifact,
    EnergyRecord,
    Execution,
    Metric,
    Pipeline,
    Record,
    Stage,
)
from cmf_core.model._base import INT64_END, check_text
from cmf_core.records import record_from_dict, record_to_dict
from cmf_core.store import ExecutionFilter, Store
from cmf_core.store.base import EXPORT_FIELDS
from cmf_core.store.sql import SqlStore, WireBlock, WireRow, wire_row

_OBJECTS = ("params", "properties", "custom_properties", "details")
CHECK_CHUNK = 20_000  # records whose stored counterparts are looked up together
_state_lock = threading.Lock()


@dataclass
class MergeReport:
    """What one import did."""

    origin_site: str | None = None
    origin_store: str | None = None
    selector: dict[str, Any] = field(default_factory=dict)
    records: int = 0  # records read from the bundle
    written: int = 0  # rows they added to the store or changed (0: it had them all)
    kinds: dict[str, int] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    since: int = 0
    end: int = 0
    complete: bool = True
    high_water: int | None = None
    adopted_vector: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# sync state: high-water marks and the version vector --------------------------------------------
def hwm_key(origin_store: str, scope: str) -> str:
    return f"federation:hwm:{origin_store}:{scope}"


def get_hwm(store: Store, origin_store: str, scope: str) -> int:
    """Up to which seq of ``origin_store`` this store has everything of ``scope``."""
    raw = store.get_state(hwm_key(origin_store, scope))
    return int(raw) if raw else 0


def adopt_vector(store: Store, vector: dict[str, int]) -> None:
    """Raise this store's version vector to ``vector`` entry by entry (never lowers one)."""
    with _state_lock:
        raw = store.get_state(VECTOR_KEY)
        mine = {str(k): int(v) for k, v in (json.loads(raw) if raw else {}).items()}
        for origin, n in vector.items():
            if origin != store.store_id and int(n) > mine.get(origin, 0):
                mine[origin] = int(n)
        store.set_state(VECTOR_KEY, json.dumps(mine, sort_keys=True))


def covers(vector: dict[str, int], other: dict[str, int] | None) -> bool:
    """True when ``vector`` has every version ``other`` has."""
    return all(vector.get(o, 0) >= int(n) for o, n in (other or {}).items())


# conflicts ----------------------------------------------------------------------------------------
def _differs(a: dict[str, Any], b: dict[str, Any], fields: Iterable[str]) -> list[str]:
    return [f for f in fields if a.get(f) != b.get(f)]


def _props(r: Any) -> dict[str, Any]:
    return record_to_dict(r)


def _wire_key(kind: str, row: list[Any]) -> Any:
    if kind == "metric":
        return (row[0], row[1], None if row[2] == -1 else row[2])
    return row[0]  # execution and artifact ids, the execution id of an energy record


def _record_key(record: Record) -> tuple[str, Any] | None:
    if isinstance(record, Execution):
        return "execution", record.id
    if isinstance(record, Artifact):
        return "artifact", record.id
    if isinstance(record, Metric):
        return "metric", (record.execution_id, record.name, record.step)
    if isinstance(record, EnergyRecord):
        return "energy", record.execution_id
    if isinstance(record, Pipeline):
        return "pipeline", record.name
    if isinstance(record, Stage):
        return "stage", (record.pipeline, record.name)
    return None  # events and locations have no content beyond their key


class _Checker:
    """Finds true conflicts between incoming records and what the store holds now.

    Incoming records arrive as records or as store rows (with the line they came from); only
    those whose key the store already has are compared, as records."""

    def __init__(self, store: Store, origin_site: str | None) -> None:
        self.store = store
        self.origin_site = origin_site
        self.found: list[dict[str, Any]] = []

    def check_blocks(self, blocks: list[tuple[WireBlock, list[Any]]]) -> None:
        """``blocks``: validated blocks with their records as sent; only records whose key the
        store already has are turned into records and compared."""
        keys: dict[str, list[tuple[Any, list[Any], int]]] = {}
        for (kind, cols), rows in blocks:
            block_keys = record_key(kind, cols)
            if block_keys is not None:
                keys.setdefault(kind, []).extend(
                    zip(block_keys, [rows] * len(rows), range(len(rows)), strict=True))
        batch: list[tuple[Any, dict[str, Any]]] = []
        for kind, items in keys.items():
            present = self.store.existing_keys(kind, [k for k, _, _ in items])
            for k, rows, i in items:
                if k in present:
                    data = row_dict(kind, rows[i])
                    origin, oseq = data.pop(VERSION_KEY)
                    batch.append((((_record(data)), origin, oseq), data))
        self.check(batch)

    def check(self, batch: list[tuple[Any, dict[str, Any]]]) -> None:
        """``batch``: (store row or (record, origin, seq), the line's dict) pairs."""
        groups: dict[str, list[tuple[Any, Any, str | None]]] = {}
        for item, data in batch:
            if type(item) is WireRow:
                kind, row = item
                if kind in ("event", "location"):
                    continue
                groups.setdefault(kind, []).append((_wire_key(kind, row), data, row[-2]))
            else:
                found = _record_key(item[0])
                if found is not None:
                    groups.setdefault(found[0], []).append((found[1], item[0], item[1]))
        for kind, items in groups.items():
            keys = [k for k, _, _ in items]
            if kind in ("execution", "artifact", "metric", "energy"):  # mostly new: ask first
                present = self.store.existing_keys(kind, keys)
                items = [item for item in items if item[0] in present]
                if not items:
                    continue
                keys = [k for k, _, _ in items]
            have = self._existing(kind, keys)
            for k, new, origin in items:
                old = have.get(k)
                if old is None:
                    continue
                if isinstance(new, dict):
                    new = record_from_dict(dict(new))
                if old != new:
                    getattr(self, "_" + kind)(old, new, origin)

    def _existing(self, kind: str, keys: list[Any]) -> dict[Any, Any]:
        s = self.store
        if kind == "execution":
            return {e.id: e for e in s.list_executions(ExecutionFilter(ids=sorted(set(keys))))}
        if kind == "artifact":
            return {a.id: a for a in s.find_artifacts(ids=sorted(set(keys)))}
        if kind == "metric":
            ids = sorted({k[0] for k in keys})
            return {(m.execution_id, m.name, m.step): m for m in s.metrics(ids)}
        if kind == "energy":
            return {e.execution_id: e for e in s.energy(sorted(set(keys)))}
        if kind == "pipeline":
            wanted = set(keys)
            return {p.name: p for p in s.list_pipelines() if p.name in wanted}
        pipelines = {p for p, _ in keys}
        return {(st.pipeline, st.name): st for p in pipelines for st in s.list_stages(p)}

    def _note(self, kind: str, record_id: str, site: str, fields: list[str],
              here: dict[str, Any], incoming: dict[str, Any], origin: str | None) -> None:
        self.found.append({
            "kind": kind, "record_id": record_id, "site": site, "fields": fields,
            "here": {f: here.get(f) for f in fields},
            "incoming": {f: incoming.get(f) for f in fields},
            "from_site": self.origin_site, "from_store": origin,
        })

    def _metric(self, old: Metric, new: Metric, origin: str | None) -> None:
        a, b = _props(old), _props(new)
        self._note("metric", f"{new.execution_id}/{new.name}/{new.step}", self.origin_site or "",
                   _differs(a, b, ("value", "timestamp")), a, b, origin)

    def _energy(self, old: EnergyRecord, new: EnergyRecord, origin: str | None) -> None:
        a, b = _props(old), _props(new)
        self._note("energy", new.execution_id, new.site,
                   _differs(a, b, ("site", "energy_kwh", "co2e_kg", "details")), a, b, origin)

    def _pipeline(self, old: Pipeline, new: Pipeline, origin: str | None) -> None:
        self._named("pipeline", new.name, old, new, origin)

    def _stage(self, old: Stage, new: Stage, origin: str | None) -> None:
        self._named("stage", f"{new.pipeline}/{new.name}", old, new, origin)

    def _named(self, kind: str, rid: str, old: Any, new: Any, origin: str | None) -> None:
        """Pipelines and stages: two rows with the same (created_at, site) must be equal."""
        if (old.created_at, old.site) != (new.created_at, new.site):
            return
        a, b = _props(old), _props(new)
        self._note(kind, rid, new.site, _differs(a, b, ("properties", "custom_properties")),
                   a, b, origin)

    def _artifact(self, old: Artifact, new: Artifact, origin: str | None) -> None:
        a, b = _props(old), _props(new)
        if old.type != new.type:
            self._note("artifact", new.id, new.site, ["type"], a, b, origin)
        elif (old.created_at, old.site) == (new.created_at, new.site):
            self._note("artifact", new.id, new.site,
                       _differs(a, b, ("name", "uri", "properties", "custom_properties")),
                       a, b, origin)

    def _execution(self, old: Execution, new: Execution, origin: str | None) -> None:
        a, b = _props(old), _props(new)
        fixed = _differs(a, b, ("pipeline", "stage", "site"))
        if fixed:
            self._note("execution", new.id, new.site, fixed, a, b, origin)
            return
        if old.status.rank == new.status.rank:  # neither moves the other forward
            outcome = _differs(a, b, ("status", "ended_at", "params", "properties",
                                      "custom_properties", "error"))
            if outcome:
                self._note("execution", new.id, new.site, outcome, a, b, origin)


# importing ----------------------------------------------------------------------------------------
def _to_item(data: dict[str, Any], fast: bool = True) -> Any:
    """A bundle line as a store row (origin version included) or ``(record, origin, seq)``."""
    version = data.pop(VERSION_KEY, None)
    origin: str | None = None
    oseq: int | None = None
    if version is not None:
        if (type(version) is not list or len(version) != 2 or type(version[0]) is not str
                or type(version[1]) is not int or not 0 <= version[1] < INT64_END
                or not version[0]):
            raise BundleError(f"'{VERSION_KEY}' must be [origin store id, seq from 0 to "
                              "2**63 - 1]")
        origin, oseq = version
        check_text(origin, f"'{VERSION_KEY}' origin store id")
    if data.get("kind") == "execution" and "id" not in data:
        # a fresh id would orphan the events, metrics and energy sent under the missing one
        raise BundleError("execution record has no id")
    if origin is not None and fast:
        row = wire_row(data, origin, oseq)  # type: ignore[arg-type]
        if row is not None:
            return row
    return _record(data), origin, oseq


def line_problem(line: str) -> str | None:
    """Why :func:`import_bundle` would refuse the record line ``line`` (format 1, as
    :mod:`~cmf_core.federation.export` writes a store row), or ``None`` when it takes it: the
    same checks the import makes of each line it reads (nesting, JSON, the record's fields),
    for ``cmf store check``."""
    try:
        _to_item(parse_line(line.encode(), "record line"))
    except InvalidInputError as e:
        return str(e)
    return None


def _record(data: dict[str, Any]) -> Record:
    fields = dict(data)
    for name in _OBJECTS:
        value = fields.get(name)
        if type(value) is dict:  # parsed JSON: already JSON-safe, no need to clean it again
            fields[name] = MappingProxyType(value)
    return record_from_dict(fields)


class _Import:
    """One bundle being merged: its reader, its checks, and what to record afterwards."""

    def __init__(self, store: Store, chunks: Iterable[bytes], name: str,
                 allow_plain: bool) -> None:
        self.store, self.name = store, name
        self.reader = Reader(chunks, name=name, allow_plain=allow_plain)
        self.header = header = self.reader.open()
        self.report = MergeReport()
        if header is not None:
            self.report.origin_site, self.report.origin_store = (header.origin_site,
                                                                 header.origin_store)
            self.report.selector, self.report.since = header.selector, header.since
            if header.origin_store == store.store_id:
                raise InvalidInputError(f"{name} was exported by this very store "
                                        f"({store.store_id}); import it at another site")
        if header is not None and header.format == COMPACT and header.columns != {
                k: list(v) for k, v in EXPORT_FIELDS.items()}:
            raise BundleError(f"{name} has record columns {header.columns!r}, not the ones this "
                              "cmf-foundation reads; upgrade the older side")
        self.before = load_vector(store)
        self.checker = _Checker(store, header.origin_site if header else None)
        self.kinds: Counter[str] = Counter()
        self.fast = isinstance(store, SqlStore)  # it takes its rows straight from bundle lines

    def items(self) -> Iterator[Any]:
        """Validated items for :meth:`Store.put_versioned`; the checksum is verified when the
        iteration ends (an exception before that: nothing may be written)."""
        batch: list[tuple[Any, dict[str, Any]]] = []
        blocks: list[tuple[WireBlock, list[Any]]] = []
        pending = 0
        reader, kinds, fast = self.reader, self.kinds, self.fast
        for data in reader:
            if type(data) is list:  # format 2: a block of records of one kind
                if len(data) != 2 or type(data[0]) is not str or type(data[1]) is not list:
                    raise BundleError(f"{self.name}:{reader.line_of(data)}: a record line must "
                                      "be [kind, [record, ...]]; nothing was imported")
                kind, rows = data
                block = wire_block(kind, rows) if fast else None
                if block is not None:
                    blocks.append((block, rows))
                    kinds[kind] += len(rows)
                else:
                    batch += self._one_by_one(data)
                pending += len(rows)
            else:
                try:
                    batch.append((_to_item(data, fast), data))
                except InvalidInputError as e:
                    line = reader.line_of(data) if reader.header is not None else reader.lineno
                    raise type(e)(f"{self.name}:{line}: {e}; nothing was imported") from None
                pending += 1
            if pending >= CHECK_CHUNK:
                yield from self._checked(batch, blocks)
                batch, blocks, pending = [], [], 0
        yield from self._checked(batch, blocks)

    def _one_by_one(self, block: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        """A block that is not all canonical: each record checked as a format-1 line."""
        kind, rows = block
        out = []
        for i, row in enumerate(rows):
            try:
                data = row_dict(kind, row)
                out.append((_to_item(data, self.fast), data))
            except (InvalidInputError, ValueError) as e:
                raise BundleError(f"{self.name}:{self.reader.line_of(block)}: record {i + 1} of "
                                  f"the {kind} block: {e}; nothing was imported") from None
        return out

    def _checked(self, batch: list[tuple[Any, dict[str, Any]]],
                 blocks: list[tuple[WireBlock, list[Any]]]) -> Iterator[Any]:
        self.checker.check(batch)
        self.checker.check_blocks(blocks)
        self.kinds.update(data["kind"] for _, data in batch)
        yield from (item for item, _ in batch)
        yield from (block for block, _ in blocks)

    @property
    def trailer(self) -> Trailer | None:
        return self.reader.trailer

    def finish(self, written: int) -> MergeReport:
        """After the write (``written``: the rows it added or changed): note the conflicts
        and move the high-water mark."""
        report, store = self.report, self.store
        report.records = sum(self.kinds.values())
        report.written = written
        report.kinds = dict(self.kinds)
        report.conflicts = self.checker.found
        for c in self.checker.found:
            store.record_conflict(c["kind"], c["record_id"], c["site"],  # type: ignore[attr-defined]
                                  {k: v for k, v in c.items()
                                   if k not in ("kind", "record_id", "site")})
        if self.header is not None and self.reader.trailer is not None:
            _advance(store, self.header, self.reader.trailer, self.before, report)
        return report


def import_bundle(store: Store, chunks: Iterable[bytes], *, name: str = "bundle",
                  allow_plain: bool = False) -> MergeReport:
    """Merge one bundle (byte chunks, plain or gzip) into ``store``; see the module docs."""
    with bulk():
        imp = _Import(store, chunks, name, allow_plain)
        written = store.put_versioned(imp.items())  # reads, verifies all, then writes
    return imp.finish(written)


def _advance(store: Store, header: Header, trailer: Trailer, before: dict[str, int],
             report: MergeReport) -> None:
    """After a change bundle: raise the high-water mark of its origin, maybe adopt its vector."""
    report.end, report.complete = trailer.end, trailer.complete
    sel = header.selector
    if "since_time" in sel or "until_time" in sel or "artifact" in sel:
        return  # a one-off subset: says nothing about what else the origin has
    if not covers(before, header.exclude):
        return  # it left out versions this store does not have: not a basis for skipping
    scope = Selector(pipelines=sel.get("pipelines")).key
    with _state_lock:
        hwm = get_hwm(store, header.origin_store, scope)
        if header.since > hwm:
            return  # a gap before this bundle: keep the mark where it is
        if trailer.end > hwm:
            store.set_state(hwm_key(header.origin_store, scope), str(trailer.end))
        report.high_water = max(hwm, trailer.end)
    if trailer.complete and header.vector and scope == "all":
        adopt_vector(store, header.vector)
        report.adopted_vector = True


def import_file(store: Store, path: Path, *, allow_plain: bool = True) -> MergeReport:
    """Merge a bundle file (``.jsonl`` or ``.jsonl.gz``; plain record lines also accepted)."""
    if not path.is_file():
        raise InvalidInputError(f"import file {path} "
                                + ("is a folder; give a bundle file (.jsonl or .jsonl.gz)"
                                   if path.is_dir() else "does not exist"))
    with path.open("rb") as fh:
        return import_bundle(store, file_chunks(fh), name=str(path.name),
                             allow_plain=allow_plain)

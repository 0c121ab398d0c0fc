"""The store contract. One API, several backends (``kind``: ``sqlite``, ``postgresql``).

A backend stores CMF records (see :mod:`cmf_core.model`) and answers queries about them.

Writing: :meth:`Store.put` writes any mix of records in **one transaction** and returns once
they are durable (an ended execution survives the writing process being killed). Writes are
idempotent upserts keyed by global ids, so replaying the same records changes nothing:

* pipelines, stages and artifacts are keyed by name (pipelines, stages) or digest (artifacts);
  the row of the earliest ``(created_at, site)`` wins as a whole, so any order of writes gives
  the same row. Every (digest, site, uri) seen is kept as an artifact location.
* executions are keyed by id; an execution's status only moves forward (running -> a terminal
  state; between terminal states the greater name wins, so any order gives one answer). The
  side with the further status (the stored row between equals) gives ``status``, ``ended_at``
  and ``error`` (the other side's ``ended_at``/``error`` fill in where it has none) and wins a
  key that both sides' ``params``, ``properties`` or ``custom_properties`` have; keys only one
  side has are kept (JSON objects are merged recursively), so a late or partial write adds
  what it carries and never drops what is stored. ``started_at`` keeps the earliest value. A
  write that changes nothing leaves the row (and its ``seq``) as it is.
* events, metrics (execution, name, step) and energy records (execution) are
  immutable: later writes of the same key are ignored.

Every row carries ``seq``, a number from a store-local counter that grows with each change:
"everything changed since seq N" is how incremental export and sync find their delta.

Reading: ``get_*`` return one record or ``None``; ``list_*``/``find_*`` take filters and
``limit``/``offset``; lineage closures are answered in SQL (recursive CTEs), not Python. A
list of ids to read may be of any length (the SQL backends bind a long one as one value).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from cmf_core.errors import CmfError, StoreError
from cmf_core.model import (
    Artifact,
    ArtifactLocation,
    EnergyRecord,
    Event,
    Execution,
    LineageEvent,
    Metric,
    Pipeline,
    Record,
    Stage,
)
from cmf_core.model._base import whole_number

OL_DATASET_PROPERTY = "openlineage.dataset"  # = cmf_core.openlineage.convert.DATASET_PROPERTY


@dataclass(frozen=True, slots=True)
class Closure:
    """Result of a lineage closure: the artifact ids and execution ids reached."""

    artifacts: frozenset[str]
    executions: frozenset[str]


# Versioned export (federation): the fields of each record kind in the order of the tuples of
# ExportPage.rows; every tuple then ends with (origin store id, origin seq, local seq). JSON-valued
# fields (params, properties, custom_properties, details) are canonical JSON text.
EXPORT_FIELDS: dict[str, tuple[str, ...]] = {
    "pipeline": ("name", "site", "created_at", "properties", "custom_properties"),
    "stage": ("pipeline", "name", "site", "created_at", "properties", "custom_properties"),
    "artifact": ("id", "type", "name", "uri", "site", "created_at", "properties",
                 "custom_properties"),
    "location": ("artifact_id", "site", "uri"),
    "execution": ("id", "pipeline", "stage", "site", "status", "started_at", "ended_at",
                  "params", "properties", "custom_properties", "error"),
    "event": ("execution_id", "artifact_id", "type"),
    "metric": ("execution_id", "name", "step", "value", "timestamp"),
    "energy": ("execution_id", "site", "energy_kwh", "co2e_kg", "details"),
}


@dataclass(frozen=True, slots=True)
class ExportPage:
    """Rows changed in the store-local seq range ``(since, end]``, read from one snapshot taken
    when the store's counter stood at ``snapshot``; ``end < snapshot`` means more pages follow."""

    rows: dict[str, list[tuple[Any, ...]]]
    since: int
    end: int
    snapshot: int

    @property
    def more(self) -> bool:
        return self.end < self.snapshot

    def __len__(self) -> int:
        return sum(len(v) for v in self.rows.values())


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    pipeline: str | None = None
    stage: str | None = None
    site: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    ids: Sequence[str] | None = None


class CarbonRow(NamedTuple):
    """One execution as a carbon roll-up reads it (:meth:`Store.carbon_rows`): plain values
    and the JSON text its table holds, with its energy record's columns (``None`` when it has
    none), so a roll-up folds rows without building an Execution and an EnergyRecord each."""

    id: str
    pipeline: str
    stage: str
    site: str
    started_at: float
    properties: str
    custom_properties: str
    energy_kwh: float | None
    co2e_kg: float | None
    details: str | None


IN_CHUNK = 900
"""Most values one query binds as a plain ``IN`` list (one bound value each): under the 999
bound variables of SQLite before 3.32. A longer list is bound as one value (the SQL
backends' ``_among``)."""


def _check_page(limit: int, offset: int) -> None:
    whole_number(limit, "limit", 1)
    whole_number(offset, "offset", 0)


class Store(abc.ABC):
    """Abstract CMF store. Subclasses set ``kind`` and implement the abstract methods."""

    kind: ClassVar[str]
    url: str
    site: str

    # lifecycle -------------------------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # writing ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def put(self, records: Iterable[Record]) -> None:
        """Write records in one durable transaction (idempotent upsert, see module docs)."""

    # reading ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def list_pipelines(self) -> list[Pipeline]: ...

    @abc.abstractmethod
    def get_pipeline(self, name: str) -> Pipeline | None: ...

    @abc.abstractmethod
    def list_stages(self, pipeline: str | None = None) -> list[Stage]: ...

    @abc.abstractmethod
    def get_execution(self, execution_id: str) -> Execution | None: ...

    @abc.abstractmethod
    def list_executions(self, where: ExecutionFilter | None = None, limit: int | None = None,
                        offset: int = 0) -> list[Execution]: ...

    def iter_executions(self, where: ExecutionFilter | None = None, *,
                        property_keys: Sequence[str] = (), param_keys: Sequence[str] = (),
                        batch: int = 5000) -> Iterator[Execution]:
        """Every execution that ``where`` selects and whose ``properties`` hold each of
        ``property_keys`` and whose ``params`` hold each of ``param_keys`` (top-level keys), in
        ``list_executions``' order ``(started_at, id)``, read ``batch`` at a time.

        This reference pages ``list_executions`` by offset and checks the keys in Python. The
        SQL backends page by key (``(started_at, id)`` after the last one read: no OFFSET, so a
        whole read is one walk of the index, not one per page) and leave the executions without
        those keys in the database."""
        _check_page(batch, 0)
        offset = 0
        while True:
            page = self.list_executions(where, limit=batch, offset=offset)
            offset += len(page)
            for e in page:
                if (all(k in e.properties for k in property_keys)
                        and all(k in e.params for k in param_keys)):
                    yield e
            if len(page) < batch:
                return

    @abc.abstractmethod
    def count_executions(self, where: ExecutionFilter | None = None) -> int: ...

    def execution_sites(self) -> list[str]:
        """Every site that ran an execution of the store, in order. The SQL backends step
        through ``ix_executions_site`` one site at a time (not a read of every execution)."""
        return sorted({e.site for e in self.list_executions()})

    def last_execution(self, where: ExecutionFilter | None = None) -> Execution | None:
        """The last execution that ``where`` selects in ``list_executions``' order
        ``(started_at, id)``, or ``None``. The SQL backends read it from the end of the index
        (``ix_executions_pipeline`` for a pipeline): one row, however many runs there are."""
        n = self.count_executions(where)
        return self.list_executions(where, limit=1, offset=n - 1)[0] if n else None

    def latest_executions(self, stages: Iterable[tuple[str, str]], limit: int
                          ) -> list[Execution]:
        """The ``limit`` latest executions of each ``(pipeline, stage)`` in ``stages`` (latest
        by ``list_executions``' order, ``(started_at, id)``), all together ordered by
        ``(started_at, id)``. The SQL backends answer many stages in one query."""
        _check_page(limit, 0)
        found: dict[str, Execution] = {}
        for pipeline, stage in dict.fromkeys(stages):
            where = ExecutionFilter(pipeline=pipeline, stage=stage)
            total = self.count_executions(where)
            if total:
                for e in self.list_executions(where, limit=limit, offset=max(0, total - limit)):
                    found[e.id] = e
        return sorted(found.values(), key=lambda e: (e.started_at, e.id))

    @abc.abstractmethod
    def get_artifact(self, artifact_id: str) -> Artifact | None: ...

    @abc.abstractmethod
    def find_artifacts(self, type: str | None = None, name: str | None = None,
                       pipeline: str | None = None, site: str | None = None,
                       ids: Sequence[str] | None = None, limit: int | None = None,
                       offset: int = 0) -> list[Artifact]: ...

    def artifact_ids_at(self, names: Iterable[str], uris: Iterable[str]) -> list[str]:
        """The ids (sorted) of the artifacts named one of ``names`` or whose ``uri`` is one of
        ``uris``. One statement in the SQL backends, ids only, through the indexes on the name
        and (migration ``0005``) on the URI."""
        names, uris = set(names), set(uris)
        if not names and not uris:
            return []
        return sorted(a.id for a in self.find_artifacts() if a.name in names or a.uri in uris)

    def artifact_ids_of_datasets(self, datasets: Iterable[tuple[str, str]]) -> list[str]:
        """The ids (sorted) of the artifacts whose ``openlineage.dataset`` property (the
        dataset ingest files an artifact under when neither its name nor its URI gives it) is
        an object whose ``namespace`` and ``name`` are strings equal to one of the
        (namespace, name) pairs of ``datasets``. One statement in the SQL backends, ids only,
        through the index of migration ``0005`` (``ix_artifacts_ol_dataset``); this reference
        reads every artifact."""
        wanted = set(datasets)
        if not wanted:
            return []
        out = []
        for a in self.find_artifacts():
            p = a.properties.get(OL_DATASET_PROPERTY)
            if (isinstance(p, Mapping) and isinstance(p.get("namespace"), str)
                    and isinstance(p.get("name"), str) and (p["namespace"], p["name"]) in wanted):
                out.append(a.id)
        return sorted(out)

    @abc.abstractmethod
    def ids_with_prefix(self, kind: str, prefix: str, limit: int) -> list[str]:
        """The ids (sorted, at most ``limit``) of the executions (``kind`` ``execution``) or
        artifacts (``artifact``) that start with ``prefix``: an indexed range on the id."""

    @abc.abstractmethod
    def artifacts_by_basename(self, basename: str, limit: int) -> list[Artifact]:
        """Artifacts (at most ``limit``, oldest first) whose name is a path ending in
        ``/basename``, as the orchestrator integrations name them (absolute paths)."""

    @abc.abstractmethod
    def artifacts_at(self, path: str, limit: int) -> list[Artifact]:
        """The latest artifact recorded at each location (site, uri) that is ``path`` or ends
        in ``/path`` (whole path parts), at most ``limit``: how a file is found under a name
        other than the one its content was first recorded with (a copy, a relative path)."""

    @abc.abstractmethod
    def artifact_locations(self, artifact_id: str) -> list[ArtifactLocation]:
        """Where the artifact's bytes live: one location per (site, uri)."""

    @abc.abstractmethod
    def events(self, execution_ids: Sequence[str] | None = None,
               artifact_ids: Sequence[str] | None = None) -> list[Event]: ...

    @abc.abstractmethod
    def metrics(self, execution_ids: Sequence[str]) -> list[Metric]: ...

    def scalar_metrics(self, execution_ids: Sequence[str], names: Sequence[str]
                       ) -> dict[str, dict[str, float]]:
        """The scalar (no step) values of the metrics ``names`` of ``execution_ids``:
        ``{execution id: {name: value}}``, an execution without any of them left out. The SQL
        backends read just those rows (by the metrics' key), never a per-step curve."""
        wanted = set(names)
        found: dict[str, dict[str, float]] = {}
        for m in self.metrics(execution_ids):
            if m.step is None and m.name in wanted:
                found.setdefault(m.execution_id, {})[m.name] = m.value
        return found

    def metrics_page(self, execution_ids: Sequence[str], name: str | None = None,
                     limit: int | None = None, offset: int = 0) -> tuple[list[Metric], int]:
        """One page of the metrics of ``execution_ids`` (only ``name``, if given) in the order
        of :meth:`metrics` (execution, name, step; a scalar first), and how many there are in
        all. This reference reads them all; SQL stores read only the page."""
        _check_page(limit if limit is not None else 1, offset)
        found = [m for m in self.metrics(execution_ids) if name is None or m.name == name]
        end = None if limit is None else offset + limit
        return found[offset:end], len(found)

    @abc.abstractmethod
    def energy(self, execution_ids: Sequence[str] | None = None) -> list[EnergyRecord]: ...

    def carbon_rows(self, where: ExecutionFilter | None = None) -> Iterator[CarbonRow]:
        """The executions :meth:`list_executions` gives for ``where``, in its order (start
        time, id), each with its energy record's amounts and details, as :class:`CarbonRow`
        (JSON as text); a generator, so a roll-up holds one row at a time. The reference
        implementation, through :meth:`list_executions` and :meth:`energy`; the SQL backends
        stream one joined query."""
        from cmf_core import jsonutil

        executions = self.list_executions(where)
        for start in range(0, len(executions), IN_CHUNK):
            chunk = executions[start:start + IN_CHUNK]
            records = {r.execution_id: r for r in self.energy([e.id for e in chunk])}
            for e in chunk:
                r = records.get(e.id)
                yield CarbonRow(e.id, e.pipeline, e.stage, e.site, e.started_at,
                                jsonutil.dumps(e.properties), jsonutil.dumps(e.custom_properties),
                                None if r is None else r.energy_kwh,
                                None if r is None else r.co2e_kg,
                                None if r is None else jsonutil.dumps(r.details))

    @abc.abstractmethod
    def lineage_events(self, run_id: str | None = None, since_seq: int = 0,
                       limit: int | None = None) -> list[LineageEvent]:
        """Raw OpenLineage events as received, in arrival order."""

    def static_lineage_events(self) -> list[LineageEvent]:
        """The raw events without a run (JobEvents, DatasetEvents), in arrival order. The SQL
        backends read them from the index on ``run_id``; this reads every event."""
        return [ev for ev in self.lineage_events() if ev.run_id is None]

    def lineage_events_by_time(self, *, after: float | None = None,
                               before: float | None = None, descending: bool = True,
                               limit: int = 100, offset: int = 0
                               ) -> tuple[list[LineageEvent], int]:
        """One page of raw OpenLineage events ordered by eventTime (then arrival), with
        eventTime in ``[after, before]`` (Unix seconds, None: open), and how many match. An
        event without a readable eventTime sorts before all others and is left out when a
        bound is given. The SQL backends answer from an index; this reads every event."""
        from cmf_core.openlineage.times import parse_time

        _check_page(limit, offset)
        rows: list[tuple[float, int, LineageEvent]] = []
        for i, ev in enumerate(self.lineage_events()):
            try:
                t = parse_time(ev.event_time) if ev.event_time else None
            except CmfError:
                t = None
            if t is None and (after is not None or before is not None):
                continue
            if t is not None and ((after is not None and t < after)
                                  or (before is not None and t > before)):
                continue
            rows.append((-math.inf if t is None else t, i, ev))
        rows.sort(key=lambda r: r[:2], reverse=descending)
        return [ev for _, _, ev in rows[offset:offset + limit]], len(rows)

    @abc.abstractmethod
    def upstream(self, artifact_id: str, max_depth: int | None = None) -> Closure:
        """Transitive upstream of an artifact: executions that produced it, their inputs, ..."""

    @abc.abstractmethod
    def downstream(self, artifact_id: str, max_depth: int | None = None) -> Closure:
        """Transitive downstream of an artifact: executions that read it, their outputs, ..."""

    @abc.abstractmethod
    def stage_edges(self, pipeline: str) -> list[tuple[str, str]]:
        """(upstream stage, downstream stage) pairs: a stage's output read by another stage."""

    # federation ------------------------------------------------------------------------------
    @abc.abstractmethod
    def changes(self, since_seq: int = 0, pipeline: str | None = None,
                batch: int = 5000) -> Iterator[Record]:
        """Every record changed after ``since_seq`` (in seq order, parents before children)."""

    @abc.abstractmethod
    def max_seq(self) -> int: ...

    @abc.abstractmethod
    def get_state(self, key: str) -> str | None:
        """Small key-value state (sync high-water marks, watcher cursors)."""

    @abc.abstractmethod
    def set_state(self, key: str, value: str) -> None: ...

    @abc.abstractmethod
    def states(self, prefix: str) -> dict[str, str]:
        """The state entries whose key starts with ``prefix``, by key."""

    # federation: versions (optional; the SQL backends implement them) -------------------------
    # A row written by :meth:`put` is a version of this store: (``store_id``, its ``seq``). A row
    # that :meth:`put_versioned` changed keeps the version it had at its origin store. A store
    # that holds every version of origin O up to n, or a later value of each of those rows, "has
    # O up to n": a version vector {O: n} is how peers skip what the other already has.
    @property
    def store_id(self) -> str:
        """This store's id: a random, permanent key of its versions (not the site name)."""
        raise StoreError(f"{self.kind} stores do not support federation")

    def put_versioned(self, items: Iterable[tuple[Record, str, int]]) -> int:
        """Like :meth:`put` for ``(record, origin, origin_seq)``: a row this changes to the
        incoming record keeps that origin version; any other change is a version of this store.
        An artifact with an origin version brings no location row of its own (a versioned
        export carries its location rows). Backends may also take their own pre-validated row
        form in place of an item (the SQL backends: ``sql.wire_row``). Returns how many rows
        it inserted or changed (0: the store had every item already)."""
        raise StoreError(f"{self.kind} stores do not support federation")

    def export_page(self, since: int = 0, limit: int | None = None, *,
                    pipelines: Sequence[str] | None = None,
                    vector: dict[str, int] | None = None) -> ExportPage:
        """Rows with local seq > ``since`` (at most ``limit`` per kind), from one snapshot, in
        ``EXPORT_FIELDS`` form; only ``pipelines`` (with the artifacts their executions used);
        leaving out rows whose version ``vector`` covers."""
        raise StoreError(f"{self.kind} stores do not support federation")

    def replace_energy(self, fixes: Sequence[tuple[EnergyRecord, int]]) -> int:
        """Overwrite energy rows (``cmf store repair``): each ``(record, seq)`` replaces the
        row of its execution if that row still has local ``seq``, as a new version of this
        store; how many it replaced."""
        raise StoreError(f"{self.kind} stores cannot be repaired")

    def existing_keys(self, kind: str, keys: Sequence[Any]) -> set[Any]:
        """Which of ``keys`` this store holds: ids of executions or artifacts (``kind``
        ``execution``, ``artifact``), execution ids of energy records (``energy``),
        ``(execution_id, name, step)`` of metrics (``metric``)."""
        raise StoreError(f"{self.kind} stores do not support federation")

    def export_related(self, execution_ids: Sequence[str],
                       artifact_ids: Sequence[str] = ()) -> ExportPage:
        """The executions, their events, metrics, energy, artifacts (and ``artifact_ids``),
        locations, pipelines and stages, from one snapshot, in ``EXPORT_FIELDS`` form."""
        raise StoreError(f"{self.kind} stores do not support federation")

"""The SQL implementation shared by the SQLite and PostgreSQL backends.

Writes go through one DB-API connection per store (guarded by a lock) with hand-written upsert
statements: :meth:`SqlStore.put` is the hot path of every tracked task, and a plain
``executemany`` per table in one transaction is several times faster than ORM or Core
round-trips. Reads use SQLAlchemy Core. Dialect quirks (placeholders, ``LEAST``, pragmas,
locking) live in the backend modules.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import logging
import os
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cmf_core import jsonutil
from cmf_core.errors import InvalidInputError, StoreError
from cmf_core.guard import report
from cmf_core.identity import check_digest, check_uuid, name_id
from cmf_core.model import (
    Artifact,
    ArtifactLocation,
    EnergyRecord,
    Event,
    EventType,
    Execution,
    ExecutionStatus,
    LineageEvent,
    Metric,
    Pipeline,
    Record,
    Stage,
)
from cmf_core.model._base import INT64_END, brief, check_name, check_text, check_time, frozen_dict
from cmf_core.model.artifact import check_artifact_type
from cmf_core.model.energy import check_amount
from cmf_core.store import bulk, migrations, schema
from cmf_core.store.base import (
    EXPORT_FIELDS,
    IN_CHUNK,
    CarbonRow,
    Closure,
    ExecutionFilter,
    ExportPage,
    Store,
    _check_page,
)
from cmf_core.store.companion import COMPANION_BACKLOG, Companion
from cmf_core.store.journal import (
    ROTATE_BYTES,
    JournalWriter,
)
from cmf_core.task_values import hide_password

_J = jsonutil.dumps


_ORIGIN_COLS = ("origin", "origin_seq")  # see schema.VERSIONED_TABLES


def _earliest_wins(table: str, cols: Sequence[str], least: str) -> str:
    """Upsert where the row with the smallest (created_at, site) wins as a whole."""
    names = ", ".join(cols)
    marks = ", ".join("?" for _ in cols)
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*cols, *_ORIGIN_COLS) if c != "id")
    return (
        f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates} "
        f"WHERE (excluded.created_at, excluded.site) < ({table}.created_at, {table}.site)"
    )


def _execution_upsert(least: str, merge: str, same: str, distinct: str) -> str:
    """Upsert of an execution: the store's update rule (see ``Store.put``), in SQL.

    The side with the further status (the stored row between equals) gives status, ``ended_at``
    and ``error`` (falling back to the other side's when it has none) and wins a key both
    sides' params/properties have (objects merged recursively by ``merge``); ``started_at`` is
    the earliest. The row is only rewritten, and ``seq`` only moves, when any of it changes;
    it keeps the incoming origin version only when all of it is the incoming row.
    """
    x, s = "excluded", "executions"
    adv = f"(({x}.status_rank, {x}.status) > ({s}.status_rank, {s}.status))"

    def pick(col: str) -> str:
        return f"CASE WHEN {adv} THEN {x}.{col} ELSE {s}.{col} END"

    def either(col: str, ok: str) -> str:  # the winning side's value unless it has none
        return (f"CASE WHEN {adv} THEN (CASE WHEN {ok.format(t=x)} THEN {x}.{col} ELSE "
                f"{s}.{col} END) ELSE (CASE WHEN {ok.format(t=s)} THEN {s}.{col} ELSE "
                f"{x}.{col} END) END")

    new = {
        "status": pick("status"),
        "status_rank": pick("status_rank"),
        "ended_at": either("ended_at", "{t}.ended_at IS NOT NULL OR {t}.status_rank = 0"),
        "error": either("error", "{t}.error IS NOT NULL"),
    }
    for col in ("params", "properties", "custom_properties"):
        new[col] = (f"CASE WHEN {adv} THEN {merge.format(low=f'{s}.{col}', high=f'{x}.{col}')}"
                    f" ELSE {merge.format(low=f'{x}.{col}', high=f'{s}.{col}')} END")
    changed = " OR ".join(
        [f"{x}.started_at < {s}.started_at"]
        + [f"({new[c]}) {distinct} {s}.{c}" for c in ("status", "ended_at", "error")]
        + [f"NOT ({same.format(a=new[c], b=f'{s}.{c}')})"
           for c in ("params", "properties", "custom_properties")])
    incoming = " AND ".join(
        [adv, f"{x}.started_at <= {s}.started_at"]
        + [f"NOT (({new[c]}) {distinct} {x}.{c})" for c in ("ended_at", "error")]
        + [same.format(a=new[c], b=f"{x}.{c}")
           for c in ("params", "properties", "custom_properties")])
    sets = ", ".join(f"{c} = {new[c]}" for c in _EXEC_MUTABLE)
    origin = ", ".join(f"{c} = CASE WHEN {incoming} THEN {x}.{c} END" for c in _ORIGIN_COLS)
    return (f"INSERT INTO executions ({', '.join(_EXEC_COLS)}) "
            f"VALUES ({', '.join('?' for _ in _EXEC_COLS)}) ON CONFLICT (id) DO UPDATE SET "
            f"{sets}, started_at = {least}({s}.started_at, {x}.started_at), seq = {x}.seq, "
            f"{origin} WHERE {changed}")


_PIPELINE_COLS = ("id", "name", "site", "created_at", "properties", "custom_properties", "seq")
_STAGE_COLS = ("id", "pipeline_id", "pipeline", "name", "site", "created_at", "properties",
               "custom_properties", "seq")
_ARTIFACT_COLS = ("id", "type", "name", "uri", "site", "created_at", "properties",
                  "custom_properties", "seq")
_EXEC_COLS = ("id", "pipeline_id", "stage_id", "pipeline", "stage", "site", "status",
              "status_rank", "started_at", "ended_at", "params", "properties",
              "custom_properties", "error", "seq")
_EXEC_MUTABLE = ("status", "status_rank", "ended_at", "params", "properties",
                 "custom_properties", "error")


# versioned export: per record kind, its table and the columns in EXPORT_FIELDS order
_EXPORT_SQL = {
    kind: (table, ", ".join(f"NULLIF(step, {schema.STEP_SCALAR})" if f == "step" else f
                            for f in EXPORT_FIELDS[kind]))
    for kind, table in (("pipeline", "pipelines"), ("stage", "stages"),
                        ("artifact", "artifacts"), ("location", "artifact_locations"),
                        ("execution", "executions"), ("event", "events"),
                        ("metric", "metrics"), ("energy", "energy"))
}

# record classes by how often a put holds them (a subclass is written as its class)
_RECORD_TYPES = (Event, Artifact, Metric, Execution, Stage, Pipeline, EnergyRecord,
                 ArtifactLocation, LineageEvent)
WRITTEN_MEMO = 100_000  # ids, and locations, a store object remembers writing (then forgets)


class _Written(NamedTuple):
    """What a put adds to what a store object wrote: the earliest ``(created_at, site)`` of
    each pipeline, stage and artifact id, and locations."""

    firsts: dict[str, tuple[float, str]]
    locations: list[tuple[str, str, str]]

_WRITE_ORDER, _NCOLS = bulk.WRITE_ORDER, bulk.NCOLS
BULK_CACHE_KIB = -131072  # SQLite page cache of a writer after a bulk import (128 MiB)
JOURNAL_BATCH = 2048  # journaled puts applied together (fewer, larger commits: a commit
# rewrites every index page the batch touched, and random digests touch most of them)
JOURNAL_MAX_AGE_S = 1.0  # ... or once the oldest pending one is this old


class WireRow(tuple):  # type: ignore[type-arg]
    """``(kind, row)``: a record already validated and turned into its row, origin version
    included, by :func:`wire_row`."""

    __slots__ = ()


class WireBlock(tuple):  # type: ignore[type-arg]
    """``(kind, columns)``: records of one kind already validated and turned into the columns
    of their rows (what :func:`wire_row` makes of each, origin version included), by
    :func:`cmf_core.federation.wire.wire_block`; written without a Python step per row."""

    __slots__ = ()


_WIRE_FIELDS = {
    "execution": frozenset({"custom_properties", "ended_at", "error", "id", "kind", "params",
                            "pipeline", "properties", "site", "stage", "started_at", "status"}),
    "artifact": frozenset({"created_at", "custom_properties", "id", "kind", "name", "properties",
                           "site", "type", "uri"}),
    "location": frozenset({"artifact_id", "kind", "site", "uri"}),
    "event": frozenset({"artifact_id", "execution_id", "kind", "type"}),
    "metric": frozenset({"execution_id", "kind", "name", "step", "timestamp", "value"}),
    "energy": frozenset({"co2e_kg", "details", "energy_kwh", "execution_id", "kind", "site"}),
}


def _wire_obj(data: dict[str, Any], name: str, what: str) -> str:
    value = data[name]
    if value == {}:
        return "{}"
    if not isinstance(value, dict):
        raise InvalidInputError(f"{what} must be a mapping, got {type(value).__name__}")
    return _J(dict(frozen_dict(value, what)))  # checked as the model checks it: no NUL, ...


def _wire_num(data: dict[str, Any], name: str, kind: str, optional: bool = False) -> Any:
    value = data[name]
    if (value is None and optional) or (isinstance(value, (int, float))
                                        and not isinstance(value, bool)):
        return value
    raise InvalidInputError(f"bad {kind} record: {name} {value!r} is not a number")


def _wire_float(data: dict[str, Any], name: str, kind: str) -> float:
    """A finite number as the float the store holds (an integer beyond 64 bits or a float
    beyond the float range would fail the write, or be exported as a string no peer takes)."""
    value = _wire_num(data, name, kind)
    try:
        value = float(value)
    except OverflowError:
        raise InvalidInputError(f"bad {kind} record: {name} {brief(value)} is too large") \
            from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidInputError(f"bad {kind} record: {name} {value} is not finite")
    return value


def _wire_str(data: dict[str, Any], name: str, kind: str, optional: bool = False) -> Any:
    value = data[name]
    if isinstance(value, str):
        return check_text(value, name)  # a lone surrogate would fail the store's write
    if value is None and optional:
        return value
    raise InvalidInputError(f"bad {kind} record: {name} {value!r} is not a string")


def wire_row(data: dict[str, Any], origin: str, origin_seq: int) -> WireRow | None:
    """The row :meth:`SqlStore._to_rows` makes of ``(record, origin, origin_seq)`` for the
    record ``data`` describes (the :mod:`cmf_core.records` dict of an execution, artifact,
    location, event, metric or energy record with every field present), validated as the
    record's constructor validates it, in a fraction of the time; ``None`` for any other dict
    (build the record instead). Tests check both paths agree."""
    kind = data.get("kind")
    fields = _WIRE_FIELDS.get(kind)  # type: ignore[arg-type]
    if fields is None or len(data) != len(fields) or not fields.issuperset(data):
        return None
    if kind == "event":
        return WireRow(("event", [check_digest(data["artifact_id"]),
                                  EventType.parse(data["type"]).value,
                                  check_uuid(data["execution_id"], "execution id"), origin,
                                  origin_seq]))
    if kind == "metric":
        name = check_name(data["name"], "metric name")
        try:
            value = float(data["value"])
        except (TypeError, ValueError, OverflowError):
            raise InvalidInputError(f"metric {name!r} value {brief(data['value'])} is not a "
                                    "number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidInputError(f"metric {name!r} value {value} is not finite")
        step = data["step"]
        if step is not None and (type(step) is not int or not 0 <= step < INT64_END):
            raise InvalidInputError(f"metric {name!r} step {brief(step)} must be a whole number "
                                    "from 0 to 2**63 - 1")
        return WireRow(("metric", [check_uuid(data["execution_id"], "execution id"), name,
                                   schema.STEP_SCALAR if step is None else step, value,
                                   check_time(data["timestamp"], "metric timestamp"), origin,
                                   origin_seq]))
    if kind == "location":
        return WireRow(("location", [check_digest(data["artifact_id"]),
                                     check_name(data["site"], "site"),
                                     check_name(data["uri"], "artifact uri"), origin,
                                     origin_seq]))
    if kind == "artifact":
        return WireRow(("artifact", [
            check_digest(data["id"]), check_artifact_type(data["type"]),
            check_name(data["name"], "artifact name"), check_name(data["uri"], "artifact uri"),
            check_name(data["site"], "site"), check_time(data["created_at"], "created_at"),
            _wire_obj(data, "properties", "properties"),
            _wire_obj(data, "custom_properties", "properties"), origin, origin_seq]))
    if kind == "energy":
        eid = check_uuid(data["execution_id"], "execution id")
        return WireRow(("energy", [
            eid, _wire_str(data, "site", kind),
            check_amount(_wire_float(data, "energy_kwh", kind), "energy_kwh", eid),
            check_amount(_wire_float(data, "co2e_kg", kind), "co2e_kg", eid),
            _wire_obj(data, "details", "energy details"), origin, origin_seq]))
    pipeline = check_name(data["pipeline"], "pipeline name")
    stage = check_name(data["stage"], "stage name")
    status = ExecutionStatus.parse(data["status"])
    eid = check_uuid(data["id"], "execution id")
    started = check_time(data["started_at"], "started_at")
    return WireRow(("execution", [
        eid, name_id("pipeline", pipeline),
        name_id("stage", pipeline, stage), pipeline, stage, _wire_str(data, "site", kind),
        status.value, status.rank, started,
        None if data["ended_at"] is None else check_time(data["ended_at"], "ended_at"),
        _wire_obj(data, "params", "params"),
        _wire_obj(data, "properties", "properties"),
        _wire_obj(data, "custom_properties", "properties"),
        _wire_str(data, "error", kind, optional=True), origin, origin_seq]))


def _metric(r: Any) -> Metric:
    """A metric as its row holds it (a scalar's step is stored as ``STEP_SCALAR``)."""
    return Metric(execution_id=r.execution_id, name=r.name, value=r.value,
                  step=None if r.step == schema.STEP_SCALAR else r.step, timestamp=r.timestamp)


def _energy(r: Any) -> EnergyRecord:
    """An energy record as its row holds it: amounts stored before they were checked (a
    negative or NaN from an old import) stay readable rather than failing every read."""
    record = EnergyRecord(execution_id=r.execution_id, site=r.site, energy_kwh=0.0,
                          co2e_kg=0.0, details=jsonutil.loads(r.details))
    object.__setattr__(record, "energy_kwh", r.energy_kwh)
    object.__setattr__(record, "co2e_kg", r.co2e_kg)
    return record


_STORES: weakref.WeakSet[SqlStore] = weakref.WeakSet()


_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyz"
_NEXT = dict(itertools.pairwise(_ALNUM))  # "9" -> "a": every collation orders them so


def _prefix_upper(prefix: str) -> str | None:
    """A bound above every string that starts with ``prefix``, ending in a lowercase letter or
    digit (``None`` when there is none such: no upper bound)."""
    stem = prefix.rstrip("-:")
    if not stem or stem[-1] not in _NEXT:
        return None
    return stem[:-1] + _NEXT[stem[-1]]


def _lineage_event(r: Any) -> LineageEvent:
    """A raw OpenLineage event from an ``ol_events`` row."""
    return LineageEvent(id=r.id, body=r.body, run_id=r.run_id, event_type=r.event_type,
                        event_time=r.event_time)


def _after_fork_in_child() -> None:
    """A forked child must not use its parent's connections, locks or applier thread."""
    for store in list(_STORES):
        store._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


#: the longest the interpreter's exit waits on each store (another process holding its write
#: lock, the companion's last apply): what is not applied by then stays in the journal, durable,
#: and the next process to open the store applies it
EXIT_WAIT_S = 3.0


def _close_at_exit() -> None:
    """Apply what this process journaled before the interpreter exits (best effort, at most
    :data:`EXIT_WAIT_S` per store)."""
    for store in list(_STORES):
        with contextlib.suppress(Exception):
            store._apply_at_exit(EXIT_WAIT_S)


atexit.register(_close_at_exit)


def report_reconnect(safe_url: str, exc: BaseException) -> None:
    """Say (at INFO) that a lost writer connection is replaced and its write run again."""
    logging.getLogger("cmf").info(
        "store %s: the database server ended the writer connection (%s); reconnected, and the "
        "write is run again", safe_url, db_error_text(exc))


def db_error_text(exc: BaseException) -> str:
    """The database's own message, without the SQL statement and parameters SQLAlchemy adds."""
    orig = getattr(exc, "orig", None) if isinstance(exc, sa.exc.StatementError) else None
    return str(orig if orig is not None else exc).strip()


class SqlStore(Store):
    """Store over SQLAlchemy (reads) and a DB-API writer connection (writes).

    With ``journaled`` (SQLite), ``put`` appends its rows as one entry to this process's
    journal file (:mod:`cmf_core.store.journal`: one ``write()`` instead of a transaction
    touching ~25 B-tree pages), and the journal is applied to the tables in bulk: every 2,048
    puts (in the writing thread), 1 s after a put (a background thread), before any read (in
    any process), and at close. A put that returned is durable either way.
    """

    kind: ClassVar[str] = "sql"
    placeholder: ClassVar[str] = "?"
    least: ClassVar[str] = "LEAST"
    # recursive JSON-object union of two JSON text columns (``high`` wins a key both have),
    # JSON equality, and null-safe inequality, in this backend's SQL
    json_merge: ClassVar[str] = "cmf_merge(({low})::jsonb, ({high})::jsonb)::text"
    json_same: ClassVar[str] = "(({a})::jsonb = ({b})::jsonb)"
    distinct: ClassVar[str] = "IS DISTINCT FROM"
    # an eventTime's position in time, as indexed by migration 0004 (ix_ol_events_time), and
    # the ascending / descending order on it with events without a time first
    event_time: ClassVar[str] = "cmf_event_time({})"
    event_order: ClassVar[tuple[str, str]] = ("ASC NULLS FIRST", "DESC NULLS LAST")
    journaled: ClassVar[bool] = False
    companion_enabled = True  # settings.journal_companion (see cmf_core.store.companion)
    #: how long a read waits for the write lock it takes to apply the journal first (None: the
    #: busy timeout); ``cmf serve`` sets a short one, so a locked store answers 503 soon
    read_wait_s: float | None = None
    _wait_s: float | None = None  # the wait of the write under way (None: the busy timeout)

    def __init__(self, url: str, site: str, engine: Engine, create: bool = True) -> None:
        self.url = url
        self.create = create
        self.site = site
        self.engine = engine
        self._lock = threading.RLock()
        self._writer: Any = None
        # rows this object wrote (see _to_rows): earliest (created_at, site) per pipeline,
        # stage and artifact id; locations
        self._written_firsts: dict[str, tuple[float, str]] = {}
        self._written_locations: set[tuple[str, str, str]] = set()
        self._journal_pending = 0
        self._journal_since = 0.0
        # journal (SQLite): this process's file, entries not yet applied (offset -> (end,
        # rows)), applied offsets last seen, the background applier
        self._journal: JournalWriter | None = None
        self._journal_mine: dict[int, tuple[int, dict[str, list[list[Any]]]]] = {}
        self._journal_seen: dict[str, int] = {}
        self._append_lock = threading.Lock()
        self._apply_cv = threading.Condition()
        self._applier: threading.Thread | None = None
        self._applier_idle = False
        # a bulk writer's companion process (cmf_core.store.companion) applies its journal on
        # another core; this process then reads its own file back like any other
        self._companion: Companion | None = None
        self._companion_failed = False
        self._closing = False
        _STORES.add(self)
        self._sql = self._build_sql()
        self._sql_v = self._versioned_sql()
        self._migrate()

    # backend hooks ---------------------------------------------------------------------------
    def _connect_writer(self) -> Any:
        raise NotImplementedError

    def _begin(self, cur: Any) -> None:
        """Start a write transaction (and take the store's write lock)."""

    def _commit(self, conn: Any, cur: Any) -> None:
        conn.commit()

    def _rollback(self, conn: Any, cur: Any) -> None:
        conn.rollback()

    def _translate_error(self, exc: Exception) -> Exception:
        return StoreError(f"store {self.safe_url} failed: {db_error_text(exc)}")

    def _writer_lost(self, conn: Any) -> bool:
        """Whether the writer connection is gone (the database server ended it): a new one is
        needed. An embedded database's connection is never lost."""
        return False

    def _existing_tables(self, cur: Any) -> set[str]:
        raise NotImplementedError

    # helpers ---------------------------------------------------------------------------------
    @property
    def safe_url(self) -> str:
        # hide_password: also a password given as a query parameter (?password=)
        return hide_password(sa.engine.make_url(self.url).render_as_string(hide_password=True))

    def _q(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _build_sql(self) -> dict[str, str]:
        sql = {
            "pipeline": _earliest_wins("pipelines", _PIPELINE_COLS, self.least),
            "stage": _earliest_wins("stages", _STAGE_COLS, self.least),
            "artifact": _earliest_wins("artifacts", _ARTIFACT_COLS, self.least),
            "execution": _execution_upsert(self.least, self.json_merge, self.json_same,
                                           self.distinct),
            "location": "INSERT INTO artifact_locations (artifact_id, site, uri, seq) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            "event": "INSERT INTO events (artifact_id, type, execution_id, seq) "
                     "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            "metric": "INSERT INTO metrics (execution_id, name, step, value, timestamp, seq) "
                      "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            "energy": "INSERT INTO energy (execution_id, site, energy_kwh, co2e_kg, details, seq) "
                      "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            "lineage_event": "INSERT INTO ol_events (id, run_id, event_type, event_time, body, seq)"
                             " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            "counter": "UPDATE cmf_counter SET value = value + ? WHERE name = 'seq' "
                       "RETURNING value",
        }
        return {k: self._q(v) for k, v in sql.items()}

    def _versioned_sql(self) -> dict[str, str]:
        """The upserts of :meth:`put_versioned`: the same, also writing the origin version."""
        out = {}
        for kind in _WRITE_ORDER:
            stmt = self._sql[kind]
            if kind != "lineage_event":
                stmt = stmt.replace(", seq) VALUES (", ", origin, origin_seq, seq) VALUES ("
                                    + self._q("?, ?, "), 1)
            out[kind] = stmt
        return out

    def _writer_conn(self) -> Any:
        if self._writer is not None and self._writer_lost(self._writer):
            self._drop_writer()
        if self._writer is None:
            self._writer = self._connect_writer()
        return self._writer

    def _drop_writer(self) -> None:
        """Forget a lost writer connection; the next write connects anew."""
        with contextlib.suppress(Exception):
            self._writer.close()
        self._writer = None

    def _write_transaction(self, body: Any) -> Any:
        """``body(cur)`` in one write transaction of the writer connection, committed; its
        result. Call with ``self._lock`` held.

        A writer connection the database server ended since the last write (a restart, a
        failover, ``pg_terminate_backend``, a firewall's idle timeout) is replaced: a write
        that finds it lost before its ``COMMIT`` was sent is run once more on a new connection
        (the server rolled the lost transaction back, so nothing of it was written). A
        connection lost during the ``COMMIT`` itself leaves its outcome unknown, so that write
        is not repeated here: it fails with ``StoreError``, as does any write while the server
        cannot be reached; writing the same records again later is harmless (``put`` is an
        idempotent upsert), and the next write connects anew."""
        for attempt in (1, 2):
            conn = self._writer_conn()  # StoreError when the server cannot be reached
            cur = None
            committing = False
            try:
                cur = conn.cursor()
                self._begin(cur)
                out = body(cur)
                committing = True
                self._commit(conn, cur)
                return out
            except Exception as e:
                self._safe_rollback(conn, cur)
                if not self._writer_lost(conn):
                    raise self._translate_error(e) from e
                self._drop_writer()
                if committing or attempt == 2:
                    raise self._translate_error(e) from e
                report_reconnect(self.safe_url, e)
        raise AssertionError("unreachable")

    # migrations ------------------------------------------------------------------------------
    def _up_to_date(self, cur: Any) -> bool:
        """Whether the store at the (autocommit) writer connection has every migration and
        table of this code, read without the write lock: opening such a store writes nothing,
        so it need not wait for another process's write lock (anything else is checked, and
        refused or migrated, under the lock)."""
        tables = self._existing_tables(cur)
        if "cmf_store" not in tables or "cmf_migrations" not in tables:
            return False
        cur.execute("SELECT value FROM cmf_store WHERE key = 'format'")
        row = cur.fetchone()
        if not row or row[0] != migrations.STORE_FORMAT:
            return False
        cur.execute("SELECT name FROM cmf_migrations")
        applied = {r[0] for r in cur.fetchall()}
        return (applied == {m.name for m in migrations.MIGRATIONS}
                and not migrations.missing_tables(tables, self.engine.dialect))

    def _migrate(self) -> None:
        with self._lock:
            conn = self._writer_conn()
            cur = conn.cursor()
            if self.journaled:  # SQLite: a reader never waits for the write lock
                try:
                    if self._up_to_date(cur):
                        return
                except Exception as e:
                    raise self._translate_error(e) from e
            try:
                self._begin(cur)
                tables = self._existing_tables(cur)
                if tables and "cmf_store" not in tables:
                    raise StoreError(bulk.not_a_store(self.safe_url, tables))
                if not tables and not self.create:
                    raise StoreError(bulk.no_store(self.safe_url))
                applied: set[str] = set()
                if tables:
                    cur.execute("SELECT key, value FROM cmf_store WHERE key = 'format'")
                    row = cur.fetchone()
                    if not row or row[1] != migrations.STORE_FORMAT:
                        raise StoreError(f"{self.safe_url} is not a CMF store (no format marker)")
                    cur.execute("SELECT name FROM cmf_migrations")
                    applied = {r[0] for r in cur.fetchall()}
                    unknown = applied - set(migrations.KNOWN)
                    if unknown:
                        raise StoreError(
                            f"store {self.safe_url} has schema migration(s) "
                            f"{', '.join(sorted(unknown))} from a newer cmf-foundation; upgrade "
                            "cmf-foundation to open it (nothing was changed)"
                        )
                for m in migrations.MIGRATIONS:
                    if m.name in applied:
                        continue
                    for statement in m.statements(self.engine.dialect):
                        cur.execute(statement)
                    cur.execute(self._q("INSERT INTO cmf_migrations (name, applied_at) "
                                        "VALUES (?, ?)"), (m.name, migrations.now()))
                    if m.name == migrations.JOURNAL_FILES and "cmf_journal" in tables:
                        self._apply_table(cur)  # what older code left in its journal table
                if tables:
                    for statement in migrations.missing_tables(tables, self.engine.dialect):
                        cur.execute(statement)
                if not tables:
                    cur.execute(
                        self._q("INSERT INTO cmf_store (key, value) VALUES (?, ?), (?, ?)"),
                        ("format", migrations.STORE_FORMAT, "created_by_site", self.site),
                    )
                self._commit(conn, cur)
            except StoreError:
                self._rollback(conn, cur)
                raise
            except Exception as e:
                self._safe_rollback(conn, cur)
                raise self._translate_error(e) from e

    def _safe_rollback(self, conn: Any, cur: Any) -> None:
        # the connection may already be unusable; the error raised by the caller says why
        if cur is None:
            return
        with contextlib.suppress(Exception):
            self._rollback(conn, cur)

    # writing ---------------------------------------------------------------------------------
    def _to_rows(self, records: Iterable[Any], versioned: bool = False
                 ) -> tuple[dict[str, list[list[Any]]], _Written]:
        """Rows per kind, and what they add to what this store wrote (:meth:`_remember`, once
        written); with ``versioned``, records are ``(record, origin, origin_seq)``.

        Rows this store object already wrote that could change nothing are left out: a
        pipeline, stage or artifact row no earlier than the one written (the earliest row of
        each wins as a whole), a location seen before."""
        rows: dict[str, list[list[Any]]] = defaultdict(list)
        written = _Written({}, [])
        firsts, locs = written
        seen_firsts, seen_locs = self._written_firsts, self._written_locations

        def first_write(record_id: str, when: tuple[float, str]) -> bool:
            """Whether a row ``when`` of ``record_id`` can still win (and note it)."""
            seen = seen_firsts.get(record_id)
            if seen is not None and when >= seen:
                return False
            firsts[record_id] = min(when, firsts.get(record_id, when))
            return True

        tail: tuple[Any, ...] = ()
        for r in records:
            if versioned:
                if type(r) is WireRow:
                    rows[r[0]].append(r[1])
                    continue
                r, *tail = r
            t = type(r)
            if t not in _RECORD_TYPES:  # a subclass
                t = next((k for k in _RECORD_TYPES if isinstance(r, k)), t)
            if t is Event:
                rows["event"].append([r.artifact_id, r.type.value, r.execution_id, *tail])
            elif t is Artifact and tail:  # a versioned import: its own location rows
                rows["artifact"].append([r.id, r.type, r.name, r.uri, r.site, r.created_at,
                                         _J(r.properties), _J(r.custom_properties), *tail])
                if tail[0] is None:
                    rows["location"].append([r.id, r.site, r.uri, *tail])
            elif t is Artifact:
                if first_write(r.id, (r.created_at, r.site)):
                    rows["artifact"].append([r.id, r.type, r.name, r.uri, r.site, r.created_at,
                                             _J(r.properties) if r.properties else "{}",
                                             _J(r.custom_properties) if r.custom_properties
                                             else "{}"])
                loc = (r.id, r.site, r.uri)
                if loc not in seen_locs:
                    locs.append(loc)
                    rows["location"].append(list(loc))
            elif t is Metric:
                step = schema.STEP_SCALAR if r.step is None else r.step
                rows["metric"].append([r.execution_id, r.name, step, r.value, r.timestamp,
                                       *tail])
            elif t is Execution:
                rows["execution"].append([
                    r.id, r.pipeline_id, r.stage_id, r.pipeline, r.stage, r.site, r.status.value,
                    r.status.rank, r.started_at, r.ended_at, _J(r.params), _J(r.properties),
                    _J(r.custom_properties), r.error, *tail])
            elif t is Stage:
                if first_write(r.id, (r.created_at, r.site)):
                    rows["stage"].append([r.id, r.pipeline_id, r.pipeline, r.name, r.site,
                                          r.created_at, _J(r.properties),
                                          _J(r.custom_properties), *tail])
            elif t is Pipeline:
                if first_write(r.id, (r.created_at, r.site)):
                    rows["pipeline"].append([r.id, r.name, r.site, r.created_at,
                                             _J(r.properties), _J(r.custom_properties), *tail])
            elif t is EnergyRecord:
                rows["energy"].append([r.execution_id, r.site, r.energy_kwh, r.co2e_kg,
                                       _J(r.details), *tail])
            elif t is ArtifactLocation:
                rows["location"].append([r.artifact_id, r.site, r.uri, *tail])
            elif t is LineageEvent:
                rows["lineage_event"].append([r.id, r.run_id, r.event_type, r.event_time,
                                              r.body])
            else:
                raise InvalidInputError(f"cannot store {type(r).__name__}: not a CMF record")
        return rows, written

    def _remember(self, written: _Written) -> None:
        """Note rows now written (see :meth:`_to_rows`); forget all past ``WRITTEN_MEMO`` ids
        or ``WRITTEN_MEMO`` locations (the same bytes written to a new path by every run add
        a location each and no id)."""
        firsts, locs = written
        if (len(self._written_firsts) + len(firsts) > WRITTEN_MEMO
                or len(self._written_locations) + len(locs) > WRITTEN_MEMO):
            self._written_firsts.clear()
            self._written_locations.clear()
        for record_id, when in firsts.items():
            seen = self._written_firsts.get(record_id)
            if seen is None or when < seen:
                self._written_firsts[record_id] = when
        self._written_locations.update(locs)

    def _write_rows(self, cur: Any, rows: dict[str, list[list[Any]]],
                    sql: dict[str, str] | None = None) -> None:
        """Upsert ``rows`` inside the caller's transaction, numbering them with ``seq``."""
        bulk.write_rows(cur, rows, sql or self._sql, self._sql["counter"])

    def put(self, records: Iterable[Record]) -> None:
        rows, written = self._to_rows(records)
        if not rows:
            return
        if self.journaled:
            self._append(rows, written)
            return
        with self._lock:
            self._write_transaction(lambda cur: self._write_rows(cur, rows))
            self._remember(written)

    # the write-ahead journal (SQLite; see cmf_core.store.journal) ------------------------------
    def _append(self, rows: dict[str, list[list[Any]]], written: _Written) -> None:
        """Journal one put: durable when this returns; applied to the tables in bulk later."""
        assert self._journal is not None
        with self._append_lock:
            _, offset = self._journal.append(rows)
            if self._companion is None:
                self._journal_mine[offset] = (self._journal.size, rows)
            self._remember(written)
            self._journal_pending += 1
            pending = self._journal_pending
            if pending == 1:
                self._journal_since = time.monotonic()
        if pending >= JOURNAL_BATCH:
            # this process puts faster than JOURNAL_BATCH a second: hand the applying to a
            # companion process on another core (an applier thread would contend for the GIL
            # with this one at every row), or apply here if that cannot be
            if not self._hand_over():
                self.apply_journal()
        elif pending == 1:
            self._wake_applier()  # applies what is still pending after JOURNAL_MAX_AGE_S

    def _hand_over(self, start: bool = True) -> bool:
        """Ask the companion process to apply the journal (with ``start``, starting one if
        none runs). False when this process must apply it itself: no companion, or it lags
        ``COMPANION_BACKLOG``."""
        if self._companion_failed or not self.companion_enabled or self._journal is None:
            return False
        if self._companion is not None and self._companion.idle_exit():
            self._companion = None  # it went away after a quiet spell
        if self._companion is None:
            if not start:
                return False
            db = Path(getattr(self, "path", ""))  # journaled: the SQLite backend
            self._companion = Companion.start(db, "FULL" if self._journal.fsync else "NORMAL",
                                              self._sql)
            if self._companion is None:
                self._companion_failed = True
                return False
            with self._append_lock:  # entries are read back from the file from now on
                self._journal_mine.clear()
        if not self._companion.signal():
            self._companion_failed = True  # it died: apply here from now on
            return False
        own = self._journal.path.name if self._journal.path else ""
        try:
            with self._lock:
                cur = self._writer_conn().cursor()
                cur.execute("SELECT applied FROM cmf_journal_files WHERE name = ?", (own,))
                row = cur.fetchone()
        except Exception as e:  # handed over all the same; the lag is checked next batch
            report(f"reading how far the journal of {self.safe_url} is applied", e)
            return True
        applied = row[0] if row else 0
        self._tidy_journal({own: applied} if own else {}, set())  # rotates an applied file
        return self._journal.size - applied <= COMPANION_BACKLOG

    def _wake_applier(self) -> None:
        if self._applier is None:
            self._applier = threading.Thread(target=self._apply_loop, name="cmf-journal",
                                             daemon=True)
            self._applier.start()
        with self._apply_cv:
            if self._applier_idle:  # else it wakes by itself at the deadline it waits for
                self._apply_cv.notify()

    def _apply_loop(self) -> None:
        """Background applier: what is pending ``JOURNAL_MAX_AGE_S`` after the first put."""
        me = threading.current_thread()
        while self._applier is me and not self._closing:
            with self._apply_cv:
                if not self._journal_pending:
                    self._applier_idle = True
                    self._apply_cv.wait()
                    self._applier_idle = False
                    continue
                wait = self._journal_since + JOURNAL_MAX_AGE_S - time.monotonic()
                if wait > 0:
                    self._apply_cv.wait(wait)
                    continue
            try:
                if not self._hand_over(start=False):  # a slow writer applies itself
                    self.apply_journal()
            except BaseException as e:  # our own thread: log, retry on the next round
                report(f"applying the journal of {self.safe_url}", e)
                time.sleep(JOURNAL_MAX_AGE_S)

    def _pending_elsewhere(self) -> bool:
        """Whether any journal file holds bytes past what this process last saw applied."""
        assert self._journal is not None
        try:
            with os.scandir(self._journal.directory) as it:
                for f in it:
                    if (f.name.endswith(".log")
                            and f.stat().st_size > self._journal_seen.get(f.name, 0)):
                        return True
        except FileNotFoundError:
            pass
        return False

    def _apply_files(self, cur: Any) -> tuple[int, dict[str, int], list[tuple[str, bytes]]]:
        """Apply every journal file's unapplied entries (in the caller's transaction); this
        process's own entries from memory unless a companion applies them."""
        assert self._journal is not None
        with self._append_lock:
            own = self._journal.path.name if self._journal.path else None
            mine = sorted(self._journal_mine.items()) if self._companion is None else None
        return bulk.apply_files(cur, self._sql, self._journal.directory, own, mine)

    def _apply_sql(self, kind: str, where: str) -> str:
        """``INSERT ... SELECT`` moving rows of ``kind`` from the journal table (written by code
        before 0003_merge_rule, applied once when that migration runs) into their table."""
        insert, _, conflict = self._sql[kind].partition(" VALUES (")
        conflict = conflict.split(")", 1)[1]
        ncols = _NCOLS[kind]
        cols = ", ".join(f"c{i}" for i in range(ncols))
        return (f"{insert} SELECT {cols}, ? + id FROM cmf_journal WHERE kind = '{kind}' "
                f"AND {where} ORDER BY id{conflict}")

    def _apply_table(self, cur: Any) -> int:
        cur.execute("SELECT min(id), max(id) FROM cmf_journal")
        lo, hi = cur.fetchone()
        if lo is None:
            return 0
        cur.execute(self._sql["counter"], (hi - lo + 1,))
        base = cur.fetchone()[0] - hi  # seq = base + id, unique and in journal order
        for kind in _WRITE_ORDER:
            cur.execute(self._apply_sql(kind, "1 = 1"), (base,))
        cur.execute("DELETE FROM cmf_journal")
        return hi - lo + 1

    def apply_journal(self, wait_s: float | None = None) -> int:
        """Apply every journaled write (of any process) to the tables in one transaction;
        with ``wait_s``, waiting at most about that long for this store's lock and the
        database's write lock (else ``StoreError``; what is journaled stays there)."""
        if not self.journaled:
            return 0
        assert self._journal is not None
        if not self._lock.acquire(timeout=-1 if wait_s is None else wait_s):
            raise StoreError(f"the store {self.safe_url} is busy: this process has been "
                             f"applying its journal for longer than {wait_s:g} s (another "
                             "process may hold its write lock); try again")
        try:
            outer, self._wait_s = self._wait_s, wait_s
            conn = self._writer_conn()
            cur = conn.cursor()
            try:
                self._begin(cur)
                count, done, torn = self._apply_files(cur)
                self._commit(conn, cur)
            except Exception as e:
                self._safe_rollback(conn, cur)
                raise self._translate_error(e) from e
            finally:
                self._wait_s = outer
            self._journal_seen = dict(done)
            self._tidy_journal(done, {name for name, _ in torn})
            return count
        finally:
            self._lock.release()

    def _apply_at_exit(self, wait_s: float) -> None:
        """Apply this process's journal, waiting at most about ``wait_s`` for the companion,
        for this store's lock (the applier thread may be waiting for the database) and for the
        database's write lock; a store busy for longer keeps the rest journaled."""
        if self._companion is not None:  # its last apply takes what was handed over
            self._companion.stop(wait_s, kill=False)
        if not (self.journaled and self._journal_pending):
            return
        self.apply_journal(wait_s)

    def _tidy_journal(self, done: dict[str, int], torn: set[str]) -> None:
        """Forget applied entries; delete fully applied files nobody writes any more."""
        assert self._journal is not None
        with self._append_lock:
            own = self._journal.path.name if self._journal.path else None
            upto = done.get(own, 0) if own else 0
            for offset in [o for o in self._journal_mine if o < upto]:
                del self._journal_mine[offset]
            self._journal_pending = len(self._journal_mine) if self._companion is None else 0
            if own and upto == self._journal.size and (upto >= ROTATE_BYTES or self._closing):
                old = self._journal.rotate()
                if old is not None:
                    with contextlib.suppress(OSError):
                        old.unlink()
        bulk.tidy_files(self._journal.directory, done, torn, own)

    def _reset_after_fork(self) -> None:
        self._lock = threading.RLock()
        self._append_lock = threading.Lock()
        self._apply_cv = threading.Condition()
        self._applier = None
        self._applier_idle = False
        if self._companion is not None:  # the parent's: let its pipe close with the parent
            with contextlib.suppress(Exception):
                self._companion.release()
        self._companion = None
        self._companion_failed = False
        self._writer = None  # the parent's connection: not ours to use or close
        self._journal_mine.clear()
        self._journal_pending = 0
        self.engine.dispose(close=False)

    def _sync_reads(self) -> None:
        """Reads see every ended write: apply the journal first when it holds anything."""
        if self.journaled and (self._journal_pending or self._pending_elsewhere()):
            self.apply_journal(self.read_wait_s)

    def set_state(self, key: str, value: str) -> None:
        # through the writer connection (``_write_transaction``), as every write: a wait for
        # another process's write lock is said, and one that runs out is a clear StoreError
        sql = self._q('INSERT INTO cmf_state ("key", value) VALUES (?, ?) '
                      'ON CONFLICT ("key") DO UPDATE SET value = excluded.value')
        with self._lock:
            self._write_transaction(lambda cur: cur.execute(sql, (key, value)))

    def get_state(self, key: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(schema.state.c.value).where(schema.state.c.key == key)
                             ).scalar_one_or_none()

    def states(self, prefix: str) -> dict[str, str]:
        t = schema.state
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t.c.key, t.c.value)
                             .where(t.c.key.startswith(prefix, autoescape=True))
                             .order_by(t.c.key)).all()
        return {k: v for k, v in rows if k.startswith(prefix)}  # SQLite's LIKE ignores case

    def record_conflict(self, kind: str, record_id: str, site: str, detail: dict[str, Any]
                        ) -> None:
        """Keep a note of a true conflict (same id, different immutable content)."""
        import hashlib

        body = _J({"kind": kind, "record_id": record_id, "site": site, "detail": detail})
        cid = hashlib.sha256(body.encode()).hexdigest()
        sql = self._q("INSERT INTO conflicts (id, kind, record_id, site, detail, detected_at) "
                      "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")  # noted once
        row = (cid, kind, record_id, site, _J(detail), migrations.now())
        with self._lock:  # the writer connection, as set_state
            self._write_transaction(lambda cur: cur.execute(sql, row))

    def list_conflicts(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(schema.conflicts).order_by(schema.conflicts.c.detected_at))
            return [dict(r._mapping, detail=jsonutil.loads(r.detail)) for r in rows]

    # reading ---------------------------------------------------------------------------------
    def _among(self, column: sa.ColumnElement[Any], ids: Iterable[Any]
               ) -> sa.ColumnElement[bool]:
        """``column IN ids`` for a caller's list of ids (or names) of any length; every read
        that binds a caller's list goes through it.

        Up to ``IN_CHUNK`` ids: a plain ``IN`` list (one bound value per id, the statement
        small reads always had). More: :meth:`_among_many`, ONE bound value holding all the ids,
        so no list reaches a statement's bound-value limit (PostgreSQL 65,535; SQLite 32,766 in
        a default build). Not chunks of ``IN`` lists merged in Python: the read stays one
        statement, so its ORDER BY (in the database's collation, which Python's sort need not
        match), LIMIT/OFFSET, counts and other conditions stay exactly those of one ``IN``.
        """
        values = list(ids)
        if len(values) <= IN_CHUNK:
            return column.in_(values)
        return self._among_many(column, values)

    def _among_many(self, column: sa.ColumnElement[Any], values: list[Any]
                    ) -> sa.ColumnElement[bool]:
        """``column IN values`` with all of ``values`` in one bound value (per backend)."""
        raise NotImplementedError

    def _rows(self, stmt: Any, params: dict[str, Any] | None = None) -> list[Any]:
        self._sync_reads()
        try:
            with self.engine.connect() as c:
                return list(c.execute(stmt, params or {}))
        except sa.exc.DBAPIError as e:
            raise self._translate_error(e) from e

    @staticmethod
    def _pipeline(r: Any) -> Pipeline:
        return Pipeline(name=r.name, site=r.site, created_at=r.created_at,
                        properties=jsonutil.loads(r.properties),
                        custom_properties=jsonutil.loads(r.custom_properties))

    @staticmethod
    def _stage(r: Any) -> Stage:
        return Stage(pipeline=r.pipeline, name=r.name, site=r.site, created_at=r.created_at,
                     properties=jsonutil.loads(r.properties),
                     custom_properties=jsonutil.loads(r.custom_properties))

    @staticmethod
    def _execution(r: Any) -> Execution:
        return Execution(pipeline=r.pipeline, stage=r.stage, site=r.site, id=r.id,
                         status=ExecutionStatus(r.status), started_at=r.started_at,
                         ended_at=r.ended_at, params=jsonutil.loads(r.params),
                         properties=jsonutil.loads(r.properties),
                         custom_properties=jsonutil.loads(r.custom_properties), error=r.error)

    @staticmethod
    def _artifact(r: Any) -> Artifact:
        return Artifact(id=r.id, type=r.type, name=r.name, uri=r.uri, site=r.site,
                        created_at=r.created_at, properties=jsonutil.loads(r.properties),
                        custom_properties=jsonutil.loads(r.custom_properties))

    def list_pipelines(self) -> list[Pipeline]:
        t = schema.pipelines
        return [self._pipeline(r) for r in self._rows(sa.select(t).order_by(t.c.name))]

    def get_pipeline(self, name: str) -> Pipeline | None:
        t = schema.pipelines
        rows = self._rows(sa.select(t).where(t.c.name == name))
        return self._pipeline(rows[0]) if rows else None

    def list_stages(self, pipeline: str | None = None) -> list[Stage]:
        t = schema.stages
        stmt = sa.select(t).order_by(t.c.pipeline, t.c.created_at, t.c.name)
        if pipeline is not None:
            stmt = stmt.where(t.c.pipeline == pipeline)
        return [self._stage(r) for r in self._rows(stmt)]

    def get_execution(self, execution_id: str) -> Execution | None:
        t = schema.executions
        rows = self._rows(sa.select(t).where(t.c.id == str(execution_id)))
        return self._execution(rows[0]) if rows else None

    def _exec_where(self, stmt: Any, where: ExecutionFilter | None) -> Any:
        t = schema.executions
        if where is None:
            return stmt
        # by pipeline_id / stage_id too: those are indexed (ix_executions_pipeline / _stage),
        # the names are not (a full scan of every execution per pipeline otherwise)
        if where.pipeline is not None:
            stmt = stmt.where(t.c.pipeline_id == name_id("pipeline", where.pipeline),
                              t.c.pipeline == where.pipeline)
            if where.stage is not None:
                stmt = stmt.where(t.c.stage_id == name_id("stage", where.pipeline, where.stage))
        if where.stage is not None:
            stmt = stmt.where(t.c.stage == where.stage)
        if where.site is not None:
            stmt = stmt.where(t.c.site == where.site)
        if where.status is not None:
            stmt = stmt.where(t.c.status == ExecutionStatus.parse(where.status).value)
        if where.since is not None:
            stmt = stmt.where(t.c.started_at >= where.since)
        if where.until is not None:
            stmt = stmt.where(t.c.started_at < where.until)
        if where.ids is not None:
            stmt = stmt.where(self._among(t.c.id, where.ids))
        return stmt

    def list_executions(self, where: ExecutionFilter | None = None, limit: int | None = None,
                        offset: int = 0) -> list[Execution]:
        t = schema.executions
        stmt = self._exec_where(sa.select(t), where).order_by(t.c.started_at, t.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        return [self._execution(r) for r in self._rows(stmt)]

    def iter_executions(self, where: ExecutionFilter | None = None, *,
                        property_keys: Sequence[str] = (), param_keys: Sequence[str] = (),
                        batch: int = 5000) -> Iterator[Execution]:
        _check_page(batch, 0)
        t = schema.executions
        stmt = self._exec_where(sa.select(t), where)
        # no index holds JSON keys: the column's text is searched for the key's JSON string (a
        # superset: the same text elsewhere in the JSON matches too; checked below), in the
        # database, so executions without it are never sent, decoded or built
        for column, keys in ((t.c.properties, property_keys), (t.c.params, param_keys)):
            for key in keys:
                stmt = stmt.where(column.contains(jsonutil.dumps(str(key)), autoescape=True))
        stmt = stmt.order_by(t.c.started_at, t.c.id).limit(batch)
        last: tuple[float, str] | None = None
        while True:
            page = stmt
            if last is not None:  # keyset: after the last row read, by the index's order
                page = stmt.where(t.c.started_at >= last[0],
                                  sa.or_(t.c.started_at > last[0], t.c.id > last[1]))
            rows = self._rows(page)
            for r in rows:
                e = self._execution(r)
                if (all(k in e.properties for k in property_keys)
                        and all(k in e.params for k in param_keys)):
                    yield e
            if len(rows) < batch:
                return
            last = (rows[-1].started_at, rows[-1].id)

    def count_executions(self, where: ExecutionFilter | None = None) -> int:
        t = schema.executions
        stmt = self._exec_where(sa.select(sa.func.count()).select_from(t), where)
        return int(self._rows(stmt)[0][0])

    def execution_sites(self) -> list[str]:
        # a skip scan of ix_executions_site: the least site, then the least one after it, ...
        # (each min() one index lookup), so as many lookups as sites, not a row per execution
        rows = self._rows(sa.text(
            "WITH RECURSIVE s(site) AS (SELECT min(site) FROM executions UNION ALL "
            "SELECT (SELECT min(site) FROM executions WHERE site > s.site) FROM s "
            "WHERE s.site IS NOT NULL) SELECT site FROM s WHERE site IS NOT NULL"))
        return sorted(r[0] for r in rows)

    def last_execution(self, where: ExecutionFilter | None = None) -> Execution | None:
        t = schema.executions
        # from the end of the index: LIMIT 1 stops at the first row (ties on started_at are
        # sorted by id among themselves only), where OFFSET count-1 walked every row before it
        stmt = (self._exec_where(sa.select(t), where)
                .order_by(t.c.started_at.desc(), t.c.id.desc()).limit(1))
        rows = self._rows(stmt)
        return self._execution(rows[0]) if rows else None

    def latest_executions(self, stages: Iterable[tuple[str, str]], limit: int
                          ) -> list[Execution]:
        _check_page(limit, 0)
        t = schema.executions
        wanted = {name_id("stage", p, s): (p, s) for p, s in stages}
        latest = sa.func.row_number().over(
            partition_by=(t.c.pipeline, t.c.stage),
            order_by=(t.c.started_at.desc(), t.c.id.desc())).label("latest")
        if not wanted:
            return []
        # stage_id: ix_executions_stage finds the rows
        sub = sa.select(t, latest).where(self._among(t.c.stage_id, wanted)).subquery()
        found = [self._execution(r)
                 for r in self._rows(sa.select(sub).where(sub.c.latest <= limit))
                 if wanted.get(r.stage_id) == (r.pipeline, r.stage)]
        return sorted(found, key=lambda e: (e.started_at, e.id))

    def get_artifact(self, artifact_id: str) -> Artifact | None:
        t = schema.artifacts
        rows = self._rows(sa.select(t).where(t.c.id == artifact_id))
        return self._artifact(rows[0]) if rows else None

    def find_artifacts(self, type: str | None = None, name: str | None = None,
                       pipeline: str | None = None, site: str | None = None,
                       ids: Sequence[str] | None = None, limit: int | None = None,
                       offset: int = 0) -> list[Artifact]:
        t = schema.artifacts
        stmt = sa.select(t)
        if type is not None:
            stmt = stmt.where(t.c.type == type)
        if name is not None:
            stmt = stmt.where(t.c.name == name)
        if site is not None:
            stmt = stmt.where(t.c.site == site)
        if ids is not None:
            stmt = stmt.where(self._among(t.c.id, ids))
        if pipeline is not None:
            ev, ex = schema.events, schema.executions
            sub = (sa.select(ev.c.artifact_id).join(ex, ex.c.id == ev.c.execution_id)
                   .where(ex.c.pipeline == pipeline))
            stmt = stmt.where(t.c.id.in_(sub))
        stmt = stmt.order_by(t.c.created_at, t.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        return [self._artifact(r) for r in self._rows(stmt)]

    def artifact_ids_at(self, names: Iterable[str], uris: Iterable[str]) -> list[str]:
        t = schema.artifacts
        names, uris = list(dict.fromkeys(names)), list(dict.fromkeys(uris))
        if not names and not uris:
            return []
        conds = [self._among(c, vs) for c, vs in ((t.c.name, names), (t.c.uri, uris)) if vs]
        return sorted({r.id for r in self._rows(sa.select(t.c.id).where(sa.or_(*conds)))})

    def artifact_ids_of_datasets(self, datasets: Iterable[tuple[str, str]]) -> list[str]:
        wanted = set(datasets)
        if not wanted:
            return []
        dialect = self.engine.dialect.name
        # exactly the expressions of ix_artifacts_ol_dataset (migration 0005): name, namespace
        name, namespace = (sa.literal_column(migrations.ol_dataset(dialect, part), sa.Text)
                           for part in ("name", "namespace"))
        stmt = sa.select(schema.artifacts.c.id, namespace.label("ns"), name.label("nm")).where(
            self._among(name, sorted({n for _, n in wanted})),
            self._among(namespace, sorted({ns for ns, _ in wanted})))
        if dialect == "sqlite":  # a JSON string (PostgreSQL's expression is NULL for others)
            stmt = stmt.where(sa.text(
                "json_type(properties, '$.\"openlineage.dataset\".name') = 'text' AND "
                "json_type(properties, '$.\"openlineage.dataset\".namespace') = 'text'"))
        return sorted(r.id for r in self._rows(stmt) if (r.ns, r.nm) in wanted)

    def ids_with_prefix(self, kind: str, prefix: str, limit: int) -> list[str]:
        t = {"execution": schema.executions, "artifact": schema.artifacts}[kind]
        col = t.c.id
        # ``id >= prefix AND id < upper`` finds the rows through the primary key's index in
        # any collation (the bounds end in a letter or digit, which every collation orders as
        # ASCII does among lowercase ids); ``substr`` then keeps exactly the ids with the prefix
        cond = [col >= prefix, sa.func.substr(col, 1, len(prefix)) == prefix]
        upper = _prefix_upper(prefix)
        if upper is not None:
            cond.append(col < upper)
        stmt = sa.select(col).where(*cond).order_by(col).limit(limit)
        return [r[0] for r in self._rows(stmt)]

    def artifacts_by_basename(self, basename: str, limit: int) -> list[Artifact]:
        t = schema.artifacts
        stmt = (sa.select(t).where(t.c.name.endswith("/" + basename, autoescape=True))
                .order_by(t.c.created_at, t.c.id))
        # SQLite's LIKE ignores ASCII case: keep the exact matches
        found = [self._artifact(r) for r in self._rows(stmt)
                 if r.name.rsplit("/", 1)[-1] == basename]
        return found[:limit]

    def artifacts_at(self, path: str, limit: int) -> list[Artifact]:
        t = schema.artifact_locations
        stmt = (sa.select(t.c.artifact_id, t.c.site, t.c.uri)
                .where(sa.or_(t.c.uri == path, t.c.uri.endswith("/" + path, autoescape=True)))
                .order_by(t.c.seq))
        latest: dict[tuple[str, str], str] = {}  # the last recorded at each location wins
        for r in self._rows(stmt):
            if r.uri == path or r.uri.endswith("/" + path):  # SQLite's LIKE ignores case
                latest[(r.site, r.uri)] = r.artifact_id
        ids = list(dict.fromkeys(latest[k] for k in sorted(latest)))[:limit]
        order = {i: n for n, i in enumerate(ids)}
        return sorted(self.find_artifacts(ids=ids), key=lambda a: order[a.id])

    def artifact_locations(self, artifact_id: str) -> list[ArtifactLocation]:
        t = schema.artifact_locations
        stmt = sa.select(t).where(t.c.artifact_id == artifact_id).order_by(t.c.site, t.c.uri)
        return [ArtifactLocation(artifact_id=r.artifact_id, site=r.site, uri=r.uri)
                for r in self._rows(stmt)]

    def events(self, execution_ids: Sequence[str] | None = None,
               artifact_ids: Sequence[str] | None = None) -> list[Event]:
        t = schema.events
        stmt = sa.select(t)
        if execution_ids is not None:
            stmt = stmt.where(self._among(t.c.execution_id, execution_ids))
        if artifact_ids is not None:
            stmt = stmt.where(self._among(t.c.artifact_id, artifact_ids))
        stmt = stmt.order_by(t.c.seq)
        return [Event(execution_id=r.execution_id, artifact_id=r.artifact_id, type=r.type)
                for r in self._rows(stmt)]

    def metrics(self, execution_ids: Sequence[str]) -> list[Metric]:
        t = schema.metrics
        stmt = (sa.select(t).where(self._among(t.c.execution_id, execution_ids))
                .order_by(t.c.execution_id, t.c.name, t.c.step))
        return [_metric(r) for r in self._rows(stmt)]

    def scalar_metrics(self, execution_ids: Sequence[str], names: Sequence[str]
                       ) -> dict[str, dict[str, float]]:
        t = schema.metrics
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        # (execution_id, name, step) is the primary key: each row is one lookup, so a run's
        # per-step curve of the same name is never read
        stmt = sa.select(t.c.execution_id, t.c.name, t.c.value).where(
            self._among(t.c.execution_id, execution_ids), t.c.name.in_(names),
            t.c.step == schema.STEP_SCALAR)
        found: dict[str, dict[str, float]] = {}
        for r in self._rows(stmt):
            found.setdefault(r.execution_id, {})[r.name] = r.value
        return found

    def metrics_page(self, execution_ids: Sequence[str], name: str | None = None,
                     limit: int | None = None, offset: int = 0) -> tuple[list[Metric], int]:
        _check_page(limit if limit is not None else 1, offset)
        t = schema.metrics
        cond = self._among(t.c.execution_id, execution_ids)
        if name is not None:
            cond = sa.and_(cond, t.c.name == name)
        stmt = sa.select(t).where(cond).order_by(t.c.execution_id, t.c.name, t.c.step)
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        found = [_metric(r) for r in self._rows(stmt)]
        total = int(self._rows(sa.select(sa.func.count()).select_from(t).where(cond))[0][0])
        return found, total

    def energy(self, execution_ids: Sequence[str] | None = None) -> list[EnergyRecord]:
        t = schema.energy
        stmt = sa.select(t).order_by(t.c.seq)
        if execution_ids is not None:
            stmt = stmt.where(self._among(t.c.execution_id, execution_ids))
        return [_energy(r) for r in self._rows(stmt)]

    #: rows a streamed read fetches at a time (:meth:`carbon_rows`)
    STREAM_ROWS = 2000

    def carbon_rows(self, where: ExecutionFilter | None = None) -> Iterator[CarbonRow]:
        # one statement (one snapshot), executions LEFT JOIN energy, fetched STREAM_ROWS at a
        # time (PostgreSQL: a server-side cursor), never all rows at once
        ex, en = schema.executions, schema.energy
        stmt = self._exec_where(
            sa.select(ex.c.id, ex.c.pipeline, ex.c.stage, ex.c.site, ex.c.started_at,
                      ex.c.properties, ex.c.custom_properties, en.c.energy_kwh, en.c.co2e_kg,
                      en.c.details)
            .select_from(ex.outerjoin(en, en.c.execution_id == ex.c.id)), where,
        ).order_by(ex.c.started_at, ex.c.id)
        self._sync_reads()
        make = CarbonRow._make
        try:
            with self.engine.connect() as c:
                result = c.execution_options(yield_per=self.STREAM_ROWS).execute(stmt)
                for r in result:
                    yield make(r)
        except sa.exc.DBAPIError as e:
            raise self._translate_error(e) from e

    def lineage_events(self, run_id: str | None = None, since_seq: int = 0,
                       limit: int | None = None) -> list[LineageEvent]:
        t = schema.ol_events
        stmt = sa.select(t).where(t.c.seq > since_seq).order_by(t.c.seq)
        if run_id is not None:
            stmt = stmt.where(t.c.run_id == run_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_lineage_event(r) for r in self._rows(stmt)]

    def static_lineage_events(self) -> list[LineageEvent]:
        t = schema.ol_events  # ix_ol_events_run finds the rows without a run
        stmt = sa.select(t).where(t.c.run_id.is_(None)).order_by(t.c.seq)
        return [_lineage_event(r) for r in self._rows(stmt)]

    def lineage_events_by_time(self, *, after: float | None = None,
                               before: float | None = None, descending: bool = True,
                               limit: int = 100, offset: int = 0
                               ) -> tuple[list[LineageEvent], int]:
        from cmf_core.openlineage.times import format_time

        _check_page(limit, offset)
        at = self.event_time.format
        where, params = [], {}
        for name, op, bound in (("after", ">=", after), ("before", "<=", before)):
            if bound is not None:
                where.append(f"{at('event_time')} {op} {at(':' + name)}")
                params[name] = format_time(bound)
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        order = (f"{at('event_time')} {self.event_order[descending]}, "
                 f"seq {'DESC' if descending else 'ASC'}")
        page = self._rows(sa.text(f"SELECT id, run_id, event_type, event_time, body FROM "
                                  f"ol_events{cond} ORDER BY {order} LIMIT :limit OFFSET "
                                  ":offset"), {**params, "limit": limit, "offset": offset})
        total = self._rows(sa.text(f"SELECT count(*) FROM ol_events{cond}"), params)[0][0]
        return [_lineage_event(r) for r in page], int(total)

    # lineage closures (recursive SQL) --------------------------------------------------------
    def _closure(self, artifact_id: str, max_depth: int | None, upstream: bool) -> Closure:
        link, back = ("OUTPUT", "INPUT") if upstream else ("INPUT", "OUTPUT")
        if max_depth is None:
            cte = (
                "WITH RECURSIVE walk(aid) AS (SELECT :aid UNION "
                "SELECT b.artifact_id FROM walk JOIN events a ON a.artifact_id = walk.aid "
                f"AND a.type = '{link}' JOIN events b ON b.execution_id = a.execution_id "
                f"AND b.type = '{back}') "
            )
        else:
            cte = (
                "WITH RECURSIVE walk(aid, depth) AS (SELECT :aid, 0 UNION "
                "SELECT b.artifact_id, walk.depth + 1 FROM walk JOIN events a "
                f"ON a.artifact_id = walk.aid AND a.type = '{link}' JOIN events b "
                f"ON b.execution_id = a.execution_id AND b.type = '{back}' "
                "WHERE walk.depth < :maxd) "
            )
        limit_execs = "" if max_depth is None else " WHERE walk.depth < :maxd"
        sql = (
            cte + "SELECT DISTINCT 'a', aid FROM walk UNION ALL "
            "SELECT DISTINCT 'e', a.execution_id FROM walk JOIN events a "
            f"ON a.artifact_id = walk.aid AND a.type = '{link}'" + limit_execs
        )
        params: dict[str, Any] = {"aid": artifact_id}
        if max_depth is not None:
            params["maxd"] = int(max_depth)
        rows = self._rows(sa.text(sql), params)
        arts = frozenset(r[1] for r in rows if r[0] == "a")
        execs = frozenset(r[1] for r in rows if r[0] == "e")
        return Closure(artifacts=arts, executions=execs)

    def upstream(self, artifact_id: str, max_depth: int | None = None) -> Closure:
        return self._closure(artifact_id, max_depth, upstream=True)

    def downstream(self, artifact_id: str, max_depth: int | None = None) -> Closure:
        return self._closure(artifact_id, max_depth, upstream=False)

    def stage_edges(self, pipeline: str) -> list[tuple[str, str]]:
        # from the pipeline's executions (ix_executions_pipeline by pipeline_id) to their
        # outputs and the executions reading them: the names are not indexed, so filtering on
        # them alone walked every OUTPUT event of the store, whatever the pipeline's size
        sql = sa.text(
            "SELECT DISTINCT eo.stage, ei.stage FROM executions eo "
            "JOIN events o ON o.execution_id = eo.id AND o.type = 'OUTPUT' "
            "JOIN events i ON i.artifact_id = o.artifact_id AND i.type = 'INPUT' "
            "JOIN executions ei ON ei.id = i.execution_id "
            "WHERE eo.pipeline_id = :pid AND eo.pipeline = :p "
            "AND ei.pipeline_id = :pid AND ei.pipeline = :p "
            "AND eo.stage <> ei.stage ORDER BY 1, 2"
        )
        return [(r[0], r[1]) for r in self._rows(sql, {"p": pipeline,
                                                       "pid": name_id("pipeline", pipeline)})]

    # federation ------------------------------------------------------------------------------
    def max_seq(self) -> int:
        t = schema.counter
        return int(self._rows(sa.select(t.c.value).where(t.c.name == "seq"))[0][0])

    def changes(self, since_seq: int = 0, pipeline: str | None = None,
                batch: int = 5000) -> Iterator[Record]:
        ex, ev = schema.executions, schema.events
        exec_ids = None
        if pipeline is not None:
            exec_ids = sa.select(ex.c.id).where(ex.c.pipeline == pipeline)
            art_ids = sa.select(ev.c.artifact_id).where(ev.c.execution_id.in_(exec_ids))

        def page(table: sa.Table, cond: Any = None) -> Iterator[Any]:
            last = since_seq
            while True:
                stmt = sa.select(table).where(table.c.seq > last).order_by(table.c.seq)
                if cond is not None:
                    stmt = stmt.where(cond)
                rows = self._rows(stmt.limit(batch))
                yield from rows
                if len(rows) < batch:
                    return
                last = rows[-1].seq

        t = schema
        pcond = None if pipeline is None else t.pipelines.c.name == pipeline
        scond = None if pipeline is None else t.stages.c.pipeline == pipeline
        acond = None if pipeline is None else t.artifacts.c.id.in_(art_ids)
        lcond = None if pipeline is None else t.artifact_locations.c.artifact_id.in_(art_ids)
        econd = None if pipeline is None else t.executions.c.pipeline == pipeline
        vcond = None if pipeline is None else t.events.c.execution_id.in_(exec_ids)
        mcond = None if pipeline is None else t.metrics.c.execution_id.in_(exec_ids)
        ncond = None if pipeline is None else t.energy.c.execution_id.in_(exec_ids)
        for r in page(t.pipelines, pcond):
            yield self._pipeline(r)
        for r in page(t.stages, scond):
            yield self._stage(r)
        for r in page(t.artifacts, acond):
            yield self._artifact(r)
        for r in page(t.artifact_locations, lcond):
            yield ArtifactLocation(artifact_id=r.artifact_id, site=r.site, uri=r.uri)
        for r in page(t.executions, econd):
            yield self._execution(r)
        for r in page(t.events, vcond):
            yield Event(execution_id=r.execution_id, artifact_id=r.artifact_id, type=r.type)
        for r in page(t.metrics, mcond):
            yield _metric(r)
        for r in page(t.energy, ncond):
            yield _energy(r)

    # federation: versions and versioned export ----------------------------------------------
    @functools.cached_property
    def store_id(self) -> str:
        t = schema.store_info
        rows = self._rows(sa.select(t.c.value).where(t.c.key == "store_id"))
        if not rows:
            raise StoreError(f"store {self.safe_url} has no store id; open it once with this "
                             "version of cmf-foundation to migrate it")
        return str(rows[0][0])

    def put_versioned(self, items: Iterable[tuple[Record, str, int] | WireRow | WireBlock]
                      ) -> int:
        blocks: list[WireBlock] = []

        def singles() -> Iterator[Any]:
            for item in items:
                if type(item) is WireBlock:
                    blocks.append(item)
                else:
                    yield item

        rows, written = self._to_rows(singles(), versioned=True)  # reads every item first
        total = sum(map(len, rows.values())) + sum(len(cols[0]) for _, cols in blocks)
        if not total:
            return 0
        def body(cur: Any) -> int:
            if self.engine.dialect.name == "sqlite" and total > 5000:
                # a bulk import touches index pages all over: a larger page cache for it
                # (~3x fewer page loads into a store of a million rows)
                cur.execute(f"PRAGMA cache_size = {BULK_CACHE_KIB}")
            cur.execute("SELECT value FROM cmf_counter WHERE name = 'seq'")
            before = int(cur.fetchone()[0])
            self._write_rows(cur, rows, self._sql_v)
            self._write_blocks(cur, blocks)
            return self._rows_since(cur, before)

        with self._lock:
            changed = int(self._write_transaction(body))
            self._remember(written)
        return changed

    def _rows_since(self, cur: Any, seq: int) -> int:
        """Rows of the replicated tables with ``seq`` above ``seq`` (through their seq index):
        inside a write transaction, those it inserted or changed (a row is numbered anew only
        when it changes)."""
        parts = " + ".join(f"(SELECT count(*) FROM {t.name} WHERE seq > ?)"
                           for t in schema.VERSIONED_TABLES)
        cur.execute(self._q(f"SELECT {parts}"), (seq,) * len(schema.VERSIONED_TABLES))
        return int(cur.fetchone()[0])

    def _write_blocks(self, cur: Any, blocks: list[WireBlock]) -> None:
        """Upsert the rows of ``blocks`` (parents first), numbered with ``seq`` by ``zip``."""
        total = sum(len(cols[0]) for _, cols in blocks)
        if not total:
            return
        cur.execute(self._sql["counter"], (total,))
        seq = cur.fetchone()[0] - total + 1
        for kind in _WRITE_ORDER:
            parts = []
            for k, cols in blocks:
                if k == kind:
                    parts.append(zip(*cols, range(seq, seq + len(cols[0])), strict=True))
                    seq += len(cols[0])
            if parts:
                cur.executemany(self._sql_v[kind], itertools.chain.from_iterable(parts))

    def replace_energy(self, fixes: Sequence[tuple[EnergyRecord, int]]) -> int:
        """Overwrite energy rows in one transaction (``cmf store repair``; energy records are
        otherwise never changed): each ``(record, seq)`` replaces the row of
        ``record.execution_id`` only if that row still has local ``seq``, and becomes a new
        version of this store. Returns how many rows it replaced (fewer: some changed since
        they were read)."""
        if not fixes:
            return 0
        self._sync_reads()  # a row still in the journal would be inserted after this
        sql = self._q("UPDATE energy SET site = ?, energy_kwh = ?, co2e_kg = ?, details = ?, "
                      "origin = NULL, origin_seq = NULL, seq = ? "
                      "WHERE execution_id = ? AND seq = ?")

        def body(cur: Any) -> int:
            cur.execute(self._sql["counter"], (len(fixes),))
            seq = int(cur.fetchone()[0]) - len(fixes) + 1
            done = 0
            for i, (r, old_seq) in enumerate(fixes):
                cur.execute(sql, (r.site, r.energy_kwh, r.co2e_kg, jsonutil.dumps(r.details),
                                  seq + i, r.execution_id, old_seq))
                done += max(cur.rowcount, 0)
            return done

        with self._lock:
            return int(self._write_transaction(body))

    def existing_keys(self, kind: str, keys: Sequence[Any]) -> set[Any]:
        wanted = sorted({k[0] for k in keys} if kind == "metric" else set(keys))
        table, column, cols = {
            "execution": ("executions", "id", "id"),
            "artifact": ("artifacts", "id", "id"),
            "energy": ("energy", "execution_id", "execution_id"),
            "metric": ("metrics", "execution_id", f"execution_id, name, NULLIF(step, "
                                                   f"{schema.STEP_SCALAR})"),
        }[kind]
        found: set[Any] = set()
        self._sync_reads()
        with self.engine.connect() as c:
            for i in range(0, len(wanted), 5000):
                chunk = wanted[i:i + 5000]
                marks = ", ".join("?" for _ in chunk)
                rows = c.exec_driver_sql(
                    self._q(f"SELECT {cols} FROM {table} WHERE {column} IN ({marks})"),
                    tuple(chunk))
                found.update(tuple(r) if kind == "metric" else r[0] for r in rows)
        return found

    @contextlib.contextmanager
    def _read_snapshot(self) -> Iterator[Any]:
        """A DB-API cursor whose reads all see one snapshot of the store."""
        self._sync_reads()
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            if self.engine.dialect.name == "postgresql":
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            else:
                cur.execute("BEGIN")
            yield cur
        except sa.exc.DBAPIError as e:
            raise self._translate_error(e) from e
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()
            conn.close()

    def _export_select(self, kind: str, where: str, limit: int | None) -> str:
        table, exprs = _EXPORT_SQL[kind]
        sql = (f"SELECT {exprs}, COALESCE(origin, ?), COALESCE(origin_seq, seq), seq "
               f"FROM {table} WHERE {where} ORDER BY seq")
        return self._q(sql + (" LIMIT ?" if limit is not None else ""))

    def _vector_sql(self, vector: dict[str, int] | None) -> tuple[str, list[Any]]:
        """Condition keeping rows whose version is *not* covered by ``vector``."""
        if not vector:
            return "", []
        whens = " ".join("WHEN ? THEN COALESCE(origin_seq, seq) > ?" for _ in vector)
        params: list[Any] = [self.store_id]
        for origin, n in sorted(vector.items()):
            params += [origin, int(n)]
        return f" AND CASE COALESCE(origin, ?) {whens} ELSE TRUE END", params

    def export_page(self, since: int = 0, limit: int | None = None, *,
                    pipelines: Sequence[str] | None = None,
                    vector: dict[str, int] | None = None) -> ExportPage:
        me = self.store_id
        vsql, vparams = self._vector_sql(vector)
        pin = ", ".join("?" for _ in pipelines or ())
        in_p = f"EXISTS (SELECT 1 FROM executions x WHERE x.id = {{}}.execution_id " \
               f"AND x.pipeline IN ({pin}))"
        by_pipeline = {
            "pipeline": f"name IN ({pin})",
            "stage": f"pipeline IN ({pin})",
            "artifact": "EXISTS (SELECT 1 FROM events e JOIN executions x ON x.id = "
                        f"e.execution_id WHERE e.artifact_id = artifacts.id AND x.pipeline IN "
                        f"({pin}))",
            "location": "EXISTS (SELECT 1 FROM events e JOIN executions x ON x.id = "
                        "e.execution_id WHERE e.artifact_id = artifact_locations.artifact_id "
                        f"AND x.pipeline IN ({pin}))",
            "execution": f"pipeline IN ({pin})",
            "event": in_p.format("events"),
            "metric": in_p.format("metrics"),
            "energy": in_p.format("energy"),
        }
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self._read_snapshot() as cur:
            cur.execute(self._q("SELECT value FROM cmf_counter WHERE name = 'seq'"))
            snapshot = end = int(cur.fetchone()[0])
            if pipelines is not None and not pipelines:  # nothing may be shared
                return ExportPage(rows={k: [] for k in EXPORT_FIELDS}, since=since,
                                  end=snapshot, snapshot=snapshot)
            if pipelines is None and limit is not None:
                # the page ends where a kind reaches ``limit`` rows: found on the seq indexes
                # first, so that no kind reads rows beyond the end just to drop them
                for table, _ in _EXPORT_SQL.values():
                    cur.execute(self._q(f"SELECT seq FROM {table} WHERE seq > ? AND seq <= ? "
                                        "ORDER BY seq LIMIT 1 OFFSET ?"),
                                (since, end, limit - 1))
                    row = cur.fetchone()
                    if row is not None:
                        end = int(row[0])
                limit = None
            for kind in EXPORT_FIELDS:
                where = "seq > ? AND seq <= ?" + vsql
                params: list[Any] = [me, since, end, *vparams]
                if pipelines is not None:
                    where += f" AND {by_pipeline[kind]}"
                    params += list(pipelines)
                if limit is not None:
                    params.append(limit)
                cur.execute(self._export_select(kind, where, limit), params)
                rows = cur.fetchall()
                out[kind] = rows
                if limit is not None and len(rows) >= limit:
                    end = min(end, rows[-1][-1])
            for kind, rows in out.items():
                if rows and rows[-1][-1] > end:
                    out[kind] = [r for r in rows if r[-1] <= end]
            if pipelines is not None:
                # artifacts read or written by this page's events but changed before ``since``
                have = {r[0] for r in out["artifact"]}
                missing = sorted({r[1] for r in out["event"]} - have)
                extra = self._export_by_ids(cur, "artifact", "id", missing, vsql, vparams)
                out["artifact"] += extra
                have_loc = {(r[0], r[1], r[2]) for r in out["location"]}
                out["location"] += [
                    r for r in self._export_by_ids(cur, "location", "artifact_id",
                                                   [r[0] for r in extra], vsql, vparams)
                    if (r[0], r[1], r[2]) not in have_loc]
        return ExportPage(rows=out, since=since, end=end, snapshot=snapshot)

    def _export_by_ids(self, cur: Any, kind: str, column: str, ids: Sequence[str],
                       vsql: str = "", vparams: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        me = self.store_id
        for i in range(0, len(ids), 500):
            chunk = list(ids[i:i + 500])
            marks = ", ".join("?" for _ in chunk)
            cur.execute(self._export_select(kind, f"{column} IN ({marks}){vsql}", None),
                        [me, *chunk, *vparams])
            out += cur.fetchall()
        return out

    def export_related(self, execution_ids: Sequence[str],
                       artifact_ids: Sequence[str] = ()) -> ExportPage:
        from cmf_core.identity import name_id

        out: dict[str, list[tuple[Any, ...]]] = {}
        with self._read_snapshot() as cur:
            cur.execute(self._q("SELECT value FROM cmf_counter WHERE name = 'seq'"))
            snapshot = int(cur.fetchone()[0])
            ids = sorted(set(execution_ids))
            out["execution"] = self._export_by_ids(cur, "execution", "id", ids)
            for kind in ("event", "metric", "energy"):
                out[kind] = self._export_by_ids(cur, kind, "execution_id", ids)
            arts = sorted(set(artifact_ids) | {r[1] for r in out["event"]})
            out["artifact"] = self._export_by_ids(cur, "artifact", "id", arts)
            out["location"] = self._export_by_ids(cur, "location", "artifact_id", arts)
            stages = {(r[1], r[2]) for r in out["execution"]}
            out["pipeline"] = self._export_by_ids(cur, "pipeline", "name",
                                                  sorted({p for p, _ in stages}))
            out["stage"] = self._export_by_ids(cur, "stage", "id",
                                               sorted(name_id("stage", p, s) for p, s in stages))
        order = {k: i for i, k in enumerate(EXPORT_FIELDS)}
        rows = {k: sorted(v, key=lambda r: r[-1]) for k, v in sorted(out.items(),
                                                                     key=lambda kv: order[kv[0]])}
        return ExportPage(rows=rows, since=0, end=snapshot, snapshot=snapshot)

    def close(self) -> None:
        """Apply what is journaled and release the store's files, connections, applier thread
        and companion. A store used again after this (one ``Cmf`` logger closed the store it
        shares with others of the same file: ``cmf.store.close()``) opens what it needs again,
        as when it was new, so the others go on as before."""
        try:
            with self._lock:
                if self.journaled:
                    self._closing = True
                    with self._apply_cv:
                        self._applier = None  # it ends; a later put starts another
                        self._apply_cv.notify_all()
                    assert self._journal is not None
                    if self._companion is not None:
                        self._companion.stop()  # it applies what it was last asked to, exits
                        self._companion = None
                    try:
                        if self._journal_pending or self._journal.path is not None:
                            self.apply_journal()  # and delete this process's file (_closing)
                    finally:
                        # also when the apply failed (disk full, store locked): the file
                        # keeps what is not applied, and releasing its lock lets the next
                        # process (or this one, reading) apply it from the file
                        with self._append_lock:  # not while another thread appends
                            self._journal.close()
                            self._journal_mine.clear()
                            self._journal_pending = 0
                            self._closing = False
                self._close_writer()
        finally:
            self.engine.dispose()

    def _close_writer(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                self._writer = None

"""Read an ML-Metadata (MLMD) store with plain SQL over its documented schema.

MLMD keeps its records in the tables ``Type``, ``Context``, ``Execution``, ``Artifact``,
``Event`` (+ ``EventPath``), ``Association`` (execution in context), ``Attribution`` (artifact
in context), ``ParentContext`` and one ``*Property`` table per node kind, and its schema version
in ``MLMDEnv.schema_version``. This reader needs no ``ml-metadata`` package, so it runs in the
main environment; it accepts an SQLite file (opened read-only) or an SQLAlchemy URL of the
MySQL or PostgreSQL database behind an MLMD server (PostgreSQL folds the table names to lower
case; both spellings are found).

Schema versions :data:`MIN_SCHEMA` to :data:`MAX_SCHEMA` are read (ml-metadata 1.0 to 1.17 write
up to 10); columns an older version lacks read as empty. Anything else, a file that is not
SQLite, or an SQLite file without the MLMD tables raises :class:`~cmf_core.errors.CmfError`
naming the source and the fix.
"""

from __future__ import annotations

import os
import sqlite3
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cmf_core.errors import InvalidInputError, StoreError
from cmf_core.mlmd.values import decode_row

MIN_SCHEMA = 6
MAX_SCHEMA = 10
SQLITE_MAGIC = b"SQLite format 3\x00"

# MLMD's enums (metadata_store.proto)
TYPE_KINDS = {0: "execution", 1: "artifact", 2: "context"}
EXECUTION_STATES = {0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED",
                    5: "CACHED", 6: "CANCELED"}
ARTIFACT_STATES = {0: "UNKNOWN", 1: "PENDING", 2: "LIVE", 3: "MARKED_FOR_DELETION",
                   4: "DELETED", 5: "ABANDONED", 6: "REFERENCE"}
EVENT_TYPES = {0: "UNKNOWN", 1: "DECLARED_OUTPUT", 2: "DECLARED_INPUT", 3: "INPUT", 4: "OUTPUT",
               5: "INTERNAL_INPUT", 6: "INTERNAL_OUTPUT", 7: "PENDING_OUTPUT"}

_REQUIRED: dict[str, tuple[str, ...]] = {
    "Type": ("id", "name", "type_kind"),
    "Context": ("id", "type_id", "name"),
    "Execution": ("id", "type_id"),
    "Artifact": ("id", "type_id", "uri"),
    "Event": ("id", "artifact_id", "execution_id", "type"),
    "Association": ("context_id", "execution_id"),
    "Attribution": ("context_id", "artifact_id"),
    "ContextProperty": ("context_id", "name", "is_custom_property"),
    "ExecutionProperty": ("execution_id", "name", "is_custom_property"),
    "ArtifactProperty": ("artifact_id", "name", "is_custom_property"),
}
_OPTIONAL_TABLES = ("EventPath", "ParentContext")
_VALUE_COLUMNS = ("int_value", "double_value", "string_value", "bool_value", "byte_value",
                  "proto_value")


@dataclass(slots=True)
class Node:
    """One MLMD context, execution or artifact with its decoded properties."""

    id: int
    type: str
    name: str | None = None
    create_ms: int = 0
    update_ms: int = 0
    uri: str | None = None
    state: int | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    custom_properties: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class MlmdEvent:
    artifact_id: int
    execution_id: int
    type: int
    ms: int | None = None
    path: list[str | int] = field(default_factory=list)


@dataclass(slots=True)
class Snapshot:
    """Everything in one MLMD store, read in one pass."""

    source: str
    schema_version: int
    contexts: dict[int, Node] = field(default_factory=dict)
    executions: dict[int, Node] = field(default_factory=dict)
    artifacts: dict[int, Node] = field(default_factory=dict)
    events: list[MlmdEvent] = field(default_factory=list)
    associations: dict[int, list[int]] = field(default_factory=dict)
    """execution id -> ids of its contexts"""
    attributions: dict[int, list[int]] = field(default_factory=dict)
    """artifact id -> ids of its contexts"""
    parents: dict[int, list[int]] = field(default_factory=dict)
    """context id -> ids of its parent contexts"""
    notes: list[str] = field(default_factory=list)

    def context_types(self) -> set[str]:
        return {c.type for c in self.contexts.values()}


class _Utf8:
    """sqlite3 text factory: UTF-8, with U+FFFD for bytes that are not (counted in ``bad``)."""

    def __init__(self) -> None:
        self.bad = 0

    def __call__(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self.bad += 1
            return data.decode("utf-8", "replace")


def _sqlite_engine(path: Path, label: str) -> sa.Engine:
    if not path.exists():
        raise InvalidInputError(f"MLMD store {label} does not exist; give the path of an MLMD "
                                "SQLite file (cmflib's 'mlmd') or a database URL")
    if not path.is_file():
        raise InvalidInputError(f"MLMD store {label} is not a file; give the path of an MLMD "
                                "SQLite file")
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as e:
        raise InvalidInputError(f"MLMD store {label} cannot be read ({e.strerror})") from None
    if head != SQLITE_MAGIC:
        raise InvalidInputError(
            f"{label} is not an SQLite file, so not an MLMD store; give the MLMD SQLite file "
            "(cmflib writes it as 'mlmd') or a postgresql:// / mysql:// URL of an MLMD database"
        )
    uri = path.resolve().as_uri() + "?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    return sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)


def _server_engine(url: sa.URL, label: str) -> sa.Engine:
    backend = url.get_backend_name()
    if backend == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    elif backend == "mysql" and url.drivername == "mysql":
        url = url.set(drivername="mysql+pymysql")
    elif backend not in ("postgresql", "mysql"):
        raise InvalidInputError(
            f"MLMD store URL {label} has kind {backend!r}; MLMD stores live in SQLite "
            "(give the file path), MySQL (mysql://) or PostgreSQL (postgresql://)"
        )
    try:
        return sa.create_engine(url, poolclass=sa.pool.NullPool)
    except ImportError as e:
        extra = "psycopg[binary]" if backend == "postgresql" else "pymysql"
        raise InvalidInputError(
            f"reading the MLMD database {label} needs the {backend} driver ({e.name}); "
            f"pip install '{extra}'"
        ) from None


def open_engine(source: str | os.PathLike[str]) -> tuple[sa.Engine, str]:
    """An engine on the MLMD store ``source`` (path or URL) and a printable label for it."""
    text = os.fspath(source)
    if "://" not in text:
        path = Path(text).expanduser()
        return _sqlite_engine(path, str(path)), str(path)
    try:
        url = sa.engine.make_url(text)
    except sa.exc.ArgumentError:
        raise InvalidInputError(f"MLMD store {text!r} is neither a file path nor a database "
                                "URL") from None
    label = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise InvalidInputError(f"MLMD store URL {label} names no file")
        path = Path(url.database).expanduser()
        return _sqlite_engine(path, str(path)), str(path)
    return _server_engine(url, label), label


class _Tables:
    """The store's MLMD tables, found case-insensitively, with their column names."""

    def __init__(self, conn: sa.Connection, label: str) -> None:
        insp = sa.inspect(conn)
        names = {n.lower(): n for n in insp.get_table_names()}
        if "mlmdenv" not in names:
            raise InvalidInputError(
                f"{label} has no MLMDEnv table, so it is not an MLMD store (found tables: "
                f"{', '.join(sorted(names.values())[:8]) or 'none'}); give a store written by "
                "ml-metadata (cmflib's 'mlmd' file, a Kubeflow MLMD database)"
            )
        self.names = names
        self.columns: dict[str, set[str]] = {}
        for logical in (*_REQUIRED, *_OPTIONAL_TABLES, "MLMDEnv"):
            actual = names.get(logical.lower())
            if actual is None:
                if logical in _REQUIRED:
                    raise InvalidInputError(
                        f"{label} lacks MLMD table {logical}; the store is incomplete or corrupt"
                    )
                continue
            with warnings.catch_warnings():  # MySQL-style column types reflected from SQLite
                warnings.simplefilter("ignore", sa.exc.SAWarning)
                columns = insp.get_columns(actual)
            self.columns[logical] = {c["name"].lower() for c in columns}
            missing = [c for c in _REQUIRED.get(logical, ()) if c not in self.columns[logical]]
            if missing:
                raise InvalidInputError(
                    f"{label}: MLMD table {logical} lacks column(s) {', '.join(missing)}; the "
                    "store is corrupt or from an unsupported MLMD version"
                )

    def has(self, logical: str) -> bool:
        return logical in self.columns

    def select(self, logical: str, wanted: tuple[str, ...]) -> sa.Select[Any]:
        cols = self.columns[logical]
        table = sa.table(self.names[logical.lower()], *(sa.column(c) for c in wanted
                                                        if c in cols))
        exprs = [table.c[c] if c in cols else sa.null().label(c) for c in wanted]
        return sa.select(*exprs)


def _schema_version(conn: sa.Connection, tables: _Tables, label: str) -> int:
    row = conn.execute(tables.select("MLMDEnv", ("schema_version",))).first()
    if row is None or row[0] is None:
        raise InvalidInputError(f"{label}: MLMDEnv holds no schema version; the store is "
                                "corrupt or was never initialised by ml-metadata")
    version = int(row[0])
    if version > MAX_SCHEMA:
        raise InvalidInputError(
            f"{label} has MLMD schema version {version}, newer than this reader knows "
            f"({MIN_SCHEMA}-{MAX_SCHEMA}); upgrade cmf-foundation, or read it with an "
            "ml-metadata that matches and export to an older store"
        )
    if version < MIN_SCHEMA:
        raise InvalidInputError(
            f"{label} has MLMD schema version {version}, older than {MIN_SCHEMA}; open it "
            "once with ml-metadata >= 1.0 (it migrates the schema) and import again"
        )
    return version


def _text(value: Any) -> str | None:
    """The value of a text column; a BLOB stored in it is read as UTF-8 (U+FFFD for bad bytes)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"text expected, got {type(value).__name__} {value!r:.40}")


def _read_properties(conn: sa.Connection, tables: _Tables, logical: str, key: str,
                     nodes: dict[int, Node]) -> None:
    stmt = tables.select(logical, (key, "name", "is_custom_property", *_VALUE_COLUMNS))
    for row in conn.execute(stmt):
        node = nodes.get(row[0])
        if node is None:
            continue
        value = decode_row(row[3], row[4], row[5], row[6], row[7], row[8])
        if value is None:
            continue
        target = node.custom_properties if row[2] else node.properties
        target[_text(row[1])] = value


def read_snapshot(source: str | os.PathLike[str]) -> Snapshot:
    """Read every context, execution, artifact and event of the MLMD store at ``source``."""
    engine, label = open_engine(source)
    try:
        with engine.connect() as conn:
            text = _Utf8()
            raw = conn.connection.dbapi_connection
            if isinstance(raw, sqlite3.Connection):
                raw.text_factory = text
            snap = _read(conn, label)
            if text.bad:
                snap.notes.append(f"{text.bad} text value(s) are not valid UTF-8; their bad "
                                  "bytes were read as U+FFFD")
            return snap
    except sa.exc.DBAPIError as e:
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0]
        if isinstance(e.orig, sqlite3.OperationalError) and "locked" in reason:
            raise StoreError(f"MLMD store {label} is locked by another process (a pipeline "
                             "still logging to it?); import again once it is done") from None
        if isinstance(e.orig, sqlite3.DatabaseError):
            raise InvalidInputError(
                f"{label} cannot be read as an MLMD SQLite store ({reason}); the file is "
                "corrupt or not an MLMD store"
            ) from None
        raise StoreError(f"cannot read the MLMD database {label}: {reason}") from None
    except (TypeError, ValueError) as e:  # a column holding what ml-metadata never writes
        raise InvalidInputError(f"{label} holds a value of the wrong type ({e}); the store is "
                                "corrupt or was not written by ml-metadata") from None
    finally:
        engine.dispose()


def _read(conn: sa.Connection, label: str) -> Snapshot:
    tables = _Tables(conn, label)
    snap = Snapshot(source=label, schema_version=_schema_version(conn, tables, label))
    types: dict[int, tuple[str, int]] = {
        int(r[0]): (_text(r[1]), int(r[2]))
        for r in conn.execute(tables.select("Type", ("id", "name", "type_kind")))
    }

    def type_name(type_id: int, kind: int) -> str:
        name, actual = types.get(type_id, (None, None))
        if name is None or actual != kind:
            raise InvalidInputError(
                f"{label}: a record refers to {TYPE_KINDS[kind]} type id {type_id}, which is "
                "not in the Type table; the store is corrupt"
            )
        return name

    times = ("create_time_since_epoch", "last_update_time_since_epoch")
    for r in conn.execute(tables.select("Context", ("id", "type_id", "name", *times))):
        snap.contexts[int(r[0])] = Node(int(r[0]), type_name(int(r[1]), 2), _text(r[2]),
                                        int(r[3] or 0), int(r[4] or 0))
    stmt = tables.select("Execution", ("id", "type_id", "name", *times, "last_known_state"))
    for r in conn.execute(stmt):
        snap.executions[int(r[0])] = Node(int(r[0]), type_name(int(r[1]), 0), _text(r[2]),
                                          int(r[3] or 0), int(r[4] or 0), state=r[5])
    stmt = tables.select("Artifact", ("id", "type_id", "name", *times, "uri", "state"))
    for r in conn.execute(stmt):
        snap.artifacts[int(r[0])] = Node(int(r[0]), type_name(int(r[1]), 1), _text(r[2]),
                                         int(r[3] or 0), int(r[4] or 0), uri=_text(r[5]) or "",
                                         state=r[6])
    _read_properties(conn, tables, "ContextProperty", "context_id", snap.contexts)
    _read_properties(conn, tables, "ExecutionProperty", "execution_id", snap.executions)
    _read_properties(conn, tables, "ArtifactProperty", "artifact_id", snap.artifacts)

    paths: dict[int, list[tuple[int, str | int]]] = defaultdict(list)
    if tables.has("EventPath"):
        stmt = tables.select("EventPath", ("event_id", "is_index_step", "step_index",
                                           "step_key"))
        for order, r in enumerate(conn.execute(stmt)):
            step = int(r[2]) if r[1] else (_text(r[3]) or "")
            paths[int(r[0])].append((order, step))
    stmt = tables.select("Event", ("id", "artifact_id", "execution_id", "type",
                                   "milliseconds_since_epoch"))
    for r in conn.execute(stmt.order_by(sa.column("id"))):
        snap.events.append(MlmdEvent(int(r[1]), int(r[2]), int(r[3]),
                                     None if r[4] is None else int(r[4]),
                                     [s for _, s in sorted(paths.get(int(r[0]), []))]))
    for r in conn.execute(tables.select("Association", ("context_id", "execution_id"))):
        snap.associations.setdefault(int(r[1]), []).append(int(r[0]))
    for r in conn.execute(tables.select("Attribution", ("context_id", "artifact_id"))):
        snap.attributions.setdefault(int(r[1]), []).append(int(r[0]))
    if tables.has("ParentContext"):
        for r in conn.execute(tables.select("ParentContext",
                                            ("context_id", "parent_context_id"))):
            snap.parents.setdefault(int(r[0]), []).append(int(r[1]))
    return snap

"""Named, ordered schema migrations, each applied in the transaction that records it.

A store lists the migrations it has had in ``cmf_migrations``. Opening a store applies the
pending ones; a store holding a migration this code does not know was written by a newer
cmf-foundation and is refused rather than touched.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Index, MetaData, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from cmf_core.store import schema

STORE_FORMAT = "cmf-foundation"


@dataclass(frozen=True)
class Migration:
    name: str
    statements: Callable[[Dialect], list[str]]


def _as_created(table: Table) -> Table:
    """``table`` without the columns a later migration adds (``info["migration"]``)."""
    if not any(c.info.get("migration") for c in table.columns):
        return table
    copy = Table(table.name, MetaData(),
                 *[c._copy() for c in table.columns if not c.info.get("migration")])
    for index in table.indexes:
        Index(index.name, *[copy.c[c.name] for c in index.columns], unique=index.unique)
    return copy


def _initial(dialect: Dialect) -> list[str]:
    out: list[str] = []
    for table in map(_as_created, schema.metadata.sorted_tables):
        out.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            out.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    out.append("INSERT INTO cmf_counter (name, value) VALUES ('seq', 0)")
    return out


def new_store_id() -> str:
    """A store's id: the key of the versions it writes (made once, and anew by a restore)."""
    return secrets.token_hex(8)


def _record_origin(dialect: Dialect) -> list[str]:
    """Origin version columns for federation, and this store's id (the key of its versions)."""
    out = [
        f"ALTER TABLE {table.name} ADD COLUMN {c.name} {c.type.compile(dialect=dialect)}"
        for table in schema.VERSIONED_TABLES for c in table.columns
        if c.info.get("migration") == schema.ORIGIN_MIGRATION
    ]
    out.append(f"INSERT INTO cmf_store (key, value) VALUES ('store_id', '{new_store_id()}')")
    return out


# recursive JSON-object union used by the execution upsert (SQLite: a function registered on
# each connection, see bulk.json_merge)
_PG_MERGE = """
CREATE OR REPLACE FUNCTION cmf_merge(low jsonb, high jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    k text;
    v jsonb;
    out jsonb := low;
BEGIN
    IF jsonb_typeof(low) IS DISTINCT FROM 'object'
       OR jsonb_typeof(high) IS DISTINCT FROM 'object' THEN
        RETURN coalesce(high, low);
    END IF;
    FOR k, v IN SELECT key, value FROM jsonb_each(high) LOOP
        IF jsonb_typeof(out -> k) = 'object' AND jsonb_typeof(v) = 'object' THEN
            out := out || jsonb_build_object(k, cmf_merge(out -> k, v));
        ELSE
            out := out || jsonb_build_object(k, v);
        END IF;
    END LOOP;
    RETURN out;
END
$$
"""


def _merge_rule(dialect: Dialect) -> list[str]:
    """Executions merge params/properties at any status (a late event adds what it carried);
    the SQLite journal moves to files (``cmf_journal_files``: how far each is applied)."""
    out = ["CREATE TABLE cmf_journal_files (name VARCHAR(200) PRIMARY KEY, "
           "applied BIGINT NOT NULL)"]
    if dialect.name == "postgresql":
        out.append(_PG_MERGE.strip())
    return out


JOURNAL_FILES = "0003_merge_rule"  # also moves the SQLite journal from a table to files

# Unix seconds of an RFC 3339 eventTime for the index of raw OpenLineage events by time
# (SQLite: the built-in julianday(), same order at millisecond resolution). IMMUTABLE holds for
# text with a UTC offset, which every stored eventTime has (validated on ingest); anything else
# is NULL rather than an error, so no insert can fail on it.
_PG_EVENT_TIME = """
CREATE OR REPLACE FUNCTION cmf_event_time(t text) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN extract(epoch FROM t::timestamptz);
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$
"""


def _event_time_index(dialect: Dialect) -> list[str]:
    """An index of raw OpenLineage events by eventTime (``/api/v1/events/lineage`` pages by
    time in SQL instead of reading every event)."""
    if dialect.name == "postgresql":
        return [_PG_EVENT_TIME.strip(),
                "CREATE INDEX ix_ol_events_time ON ol_events "
                "(cmf_event_time(event_time) NULLS FIRST, seq)"]
    return ["CREATE INDEX ix_ol_events_time ON ol_events (julianday(event_time), seq)"]


# The dataset (namespace, name) an artifact's ``openlineage.dataset`` property names (what
# ingest writes when neither the artifact's name nor its URI gives it), for the index that finds
# a dataset's artifacts named that way without reading every artifact. One expression per part;
# the reads (SqlStore.artifact_ids_of_datasets) use exactly these. Only rows whose properties
# text holds the quoted key are parsed (a cheap substring test), and a row whose text is not
# JSON gets NULL, never an error, so no insert can fail on it. SQLite: the JSON value there (the
# reads keep only strings); PostgreSQL: a function, NULL unless the value is a JSON string. The
# key is base.OL_DATASET_PROPERTY.
_SQLITE_OL_DATASET = (
    "CASE WHEN instr(properties, '\"openlineage.dataset\"') > 0 AND json_valid(properties) "
    "THEN json_extract(properties, '$.\"openlineage.dataset\".{part}') END")
_PG_OL_DATASET = """
CREATE OR REPLACE FUNCTION cmf_ol_dataset(props text, part text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb;
BEGIN
    IF position('"openlineage.dataset"' IN props) = 0 THEN
        RETURN NULL;
    END IF;
    BEGIN
        v := props::jsonb -> 'openlineage.dataset' -> part;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
    IF jsonb_typeof(v) = 'string' THEN
        RETURN v #>> '{}';
    END IF;
    RETURN NULL;
END
$$
"""


def ol_dataset(dialect_name: str, part: str) -> str:
    """The SQL of ``part`` (``namespace`` or ``name``) of the dataset an artifact's
    ``openlineage.dataset`` property names, as indexed by ``ix_artifacts_ol_dataset``."""
    assert part in ("namespace", "name")
    if dialect_name == "postgresql":
        return f"cmf_ol_dataset(properties, '{part}')"
    return _SQLITE_OL_DATASET.format(part=part)


def _artifact_lookup_indexes(dialect: Dialect) -> list[str]:
    """Indexes for finding a dataset's artifacts (``/api/v1/lineage``) without reading every
    artifact: by URI, and by the dataset their ``openlineage.dataset`` property names (name
    first: the namespace is often shared)."""
    out = ["CREATE INDEX ix_artifacts_uri ON artifacts (uri)"]
    if dialect.name == "postgresql":
        out.append(_PG_OL_DATASET.strip())
    out.append(f"CREATE INDEX ix_artifacts_ol_dataset ON artifacts "
               f"({ol_dataset(dialect.name, 'name')}, {ol_dataset(dialect.name, 'namespace')})")
    return out


def missing_tables(existing: set[str], dialect: Dialect) -> list[str]:
    """Statements creating the tables of the initial schema that a store made by older code
    lacks although its ``0001_initial`` is recorded: the first release (757eab7) made stores
    without ``cmf_journal_rejected``, which the next added to ``0001_initial`` in place. Without
    it one journal entry that cannot be applied makes every read of the store fail."""
    return [str(CreateTable(table).compile(dialect=dialect)).strip()
            for table in (schema.journal_rejected,) if table.name not in existing]


MIGRATIONS: list[Migration] = [
    Migration("0001_initial", _initial),
    Migration(schema.ORIGIN_MIGRATION, _record_origin),
    Migration(JOURNAL_FILES, _merge_rule),
    Migration("0004_event_time_index", _event_time_index),
    Migration("0005_artifact_lookup_indexes", _artifact_lookup_indexes),
]

KNOWN = [m.name for m in MIGRATIONS]


def now() -> float:
    return time.time()

"""The one SQLAlchemy schema shared by every SQL backend.

JSON-valued columns hold canonical JSON text (:func:`cmf_core.jsonutil.dumps`) so that records
compare byte for byte across backends and sites. Times are Unix seconds (float, UTC).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

metadata = MetaData()

store_info = Table(
    "cmf_store", metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

migrations_table = Table(
    "cmf_migrations", metadata,
    Column("name", Text, primary_key=True),
    Column("applied_at", Float, nullable=False),
)

counter = Table(
    "cmf_counter", metadata,
    Column("name", Text, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

state = Table(
    "cmf_state", metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

pipelines = Table(
    "pipelines", metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("site", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("properties", Text, nullable=False),
    Column("custom_properties", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("ix_pipelines_seq", "seq"),
)

stages = Table(
    "stages", metadata,
    Column("id", Text, primary_key=True),
    Column("pipeline_id", Text, nullable=False),
    Column("pipeline", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("properties", Text, nullable=False),
    Column("custom_properties", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("ix_stages_pipeline", "pipeline_id", "name"),
    Index("ix_stages_seq", "seq"),
)

executions = Table(
    "executions", metadata,
    Column("id", Text, primary_key=True),
    Column("pipeline_id", Text, nullable=False),
    Column("stage_id", Text, nullable=False),
    Column("pipeline", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("status_rank", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("params", Text, nullable=False),
    Column("properties", Text, nullable=False),
    Column("custom_properties", Text, nullable=False),
    Column("error", Text),
    Column("seq", BigInteger, nullable=False),
    Index("ix_executions_pipeline", "pipeline_id", "started_at"),
    Index("ix_executions_stage", "stage_id", "started_at"),
    Index("ix_executions_started", "started_at"),
    Index("ix_executions_site", "site"),
    Index("ix_executions_seq", "seq"),
)

artifacts = Table(
    "artifacts", metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("uri", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("properties", Text, nullable=False),
    Column("custom_properties", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("ix_artifacts_type_name", "type", "name"),
    Index("ix_artifacts_name", "name"),
    Index("ix_artifacts_seq", "seq"),
)

artifact_locations = Table(
    "artifact_locations", metadata,
    Column("artifact_id", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("uri", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("artifact_id", "site", "uri"),
    Index("ix_artifact_locations_seq", "seq"),
)

events = Table(
    "events", metadata,
    Column("artifact_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("execution_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("artifact_id", "type", "execution_id"),
    Index("ix_events_execution", "execution_id", "type", "artifact_id"),
    Index("ix_events_seq", "seq"),
)

metrics = Table(
    "metrics", metadata,
    Column("execution_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("value", Float, nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("execution_id", "name", "step"),
    Index("ix_metrics_seq", "seq"),
)

energy = Table(
    "energy", metadata,
    Column("execution_id", Text, primary_key=True),
    Column("site", Text, nullable=False),
    Column("energy_kwh", Float, nullable=False),
    Column("co2e_kg", Float, nullable=False),
    Column("details", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("ix_energy_seq", "seq"),
)

ol_events = Table(
    "ol_events", metadata,
    Column("id", Text, primary_key=True),
    Column("run_id", Text),
    Column("event_type", Text),
    Column("event_time", Text),
    Column("body", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("ix_ol_events_run", "run_id"),
    Index("ix_ol_events_seq", "seq"),
)

# Write-ahead journal of the SQLite backend: one row per record, applied in bulk (see sql.py).
journal = Table(
    "cmf_journal", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", Text, nullable=False),
    *[Column(f"c{i}", sa.LargeBinary) for i in range(14)],  # BLOB: no type affinity
)

journal_rejected = Table(
    "cmf_journal_rejected", metadata,
    Column("id", Integer, primary_key=True),
    Column("body", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("at", Float, nullable=False),
)

conflicts = Table(
    "conflicts", metadata,
    Column("id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("record_id", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("detected_at", Float, nullable=False),
)

STEP_SCALAR = -1  # metrics.step value of a scalar (unstepped) metric

# Federation (migration 0002_record_origin): the origin version of each replicated row. A row
# written here has origin NULL (this store; its version is its own ``seq``); a row that a
# federation import changed keeps the version it had at its origin store, ``(origin,
# origin_seq)``, so a third site can tell it already holds that version (version vectors, see
# cmf_core/federation). Columns added by a later migration say so in ``info`` and the initial
# migration leaves them out.
ORIGIN_MIGRATION = "0002_record_origin"
VERSIONED_TABLES = (pipelines, stages, artifacts, artifact_locations, executions, events, metrics,
                    energy)
for _table in VERSIONED_TABLES:
    _table.append_column(Column("origin", Text, info={"migration": ORIGIN_MIGRATION}))
    _table.append_column(Column("origin_seq", BigInteger, info={"migration": ORIGIN_MIGRATION}))
del _table

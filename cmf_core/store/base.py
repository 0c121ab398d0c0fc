"""The store contract. One API, several backends (``kind``: ``sqlite``, ``postgresql``).

A backend stores CMF records (see :mod:`cmf_core.model`) and answers queries about them.

Writing: :meth:`Store.put` writes any mix of records in **one transaction** and returns once
they are durable (an ended execution survives the writing process being killed). Writes are
idempotent upserts keyed by global ids, so replaying the same records changes nothing:

* pipelines, stages and artifacts are keyed by name (pipelines, stages) or digest (artifacts);
  the row of the earliest ``(created_at, site)`` wins as a whole, so any order of writes gives
  the same row. Every (digest, site, uri) seen is kept as an artifact location.
* executions are keyed by id; an execution's status only moves forward (running -> a terminal
  state). A write that moves it forward replaces status, ``ended_at``, ``error``, ``params``,
  ``properties`` and ``custom_properties``; any other write leaves the row as it is.
  ``started_at`` keeps the earliest value.
* events, metrics (execution, name, step) and energy records (execution) are
  immutable: later writes of the same key are ignored.

Every row carries ``seq``, a number from a store-local counter that grows with each change:
"everything changed since seq N" is how incremental export and sync find their delta.

Reading: ``get_*`` return one record or ``None``; ``list_*``/``find_*`` take filters and
``limit``/``offset``; lineage closures are answered in SQL (recursive CTEs), not Python.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

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


@dataclass(frozen=True, slots=True)
class Closure:
    """Result of a lineage closure: the artifact ids and execution ids reached."""

    artifacts: frozenset[str]
    executions: frozenset[str]


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    pipeline: str | None = None
    stage: str | None = None
    site: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    ids: Sequence[str] | None = None


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

    @abc.abstractmethod
    def count_executions(self, where: ExecutionFilter | None = None) -> int: ...

    @abc.abstractmethod
    def get_artifact(self, artifact_id: str) -> Artifact | None: ...

    @abc.abstractmethod
    def find_artifacts(self, type: str | None = None, name: str | None = None,
                       pipeline: str | None = None, site: str | None = None,
                       ids: Sequence[str] | None = None, limit: int | None = None,
                       offset: int = 0) -> list[Artifact]: ...

    @abc.abstractmethod
    def artifact_locations(self, artifact_id: str) -> list[ArtifactLocation]:
        """Where the artifact's bytes live: one location per (site, uri)."""

    @abc.abstractmethod
    def events(self, execution_ids: Sequence[str] | None = None,
               artifact_ids: Sequence[str] | None = None) -> list[Event]: ...

    @abc.abstractmethod
    def metrics(self, execution_ids: Sequence[str]) -> list[Metric]: ...

    @abc.abstractmethod
    def energy(self, execution_ids: Sequence[str] | None = None) -> list[EnergyRecord]: ...

    @abc.abstractmethod
    def lineage_events(self, run_id: str | None = None, since_seq: int = 0,
                       limit: int | None = None) -> list[LineageEvent]:
        """Raw OpenLineage events as received, in arrival order."""

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

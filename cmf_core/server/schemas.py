"""The response bodies of the HTTP API, as pydantic models for the OpenAPI document only.

The routes build their bodies as plain dicts (:mod:`cmf_core.server.shapes`) and are not
validated against these models at run time (a graph of 10,000 executions would pay for it);
the models say what a client generated from ``/openapi.json`` may rely on.
``tests/core/server/test_openapi.py`` calls every route of the document on a real server and
validates each answer against the schema declared for its status, so the two cannot drift.

Open objects (``params``, ``properties``, ...) hold what was recorded, as recorded. Every model
allows keys it does not name (``extra="allow"``): a later version may add keys, never remove
or retype one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cmf_core.model import ExecutionStatus

Status = Literal[tuple(s.value for s in ExecutionStatus)]  # type: ignore[valid-type]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(_Open):
    """Every error response (4xx, 5xx): the status again, the error's class, what was wrong."""

    code: int = Field(description="The HTTP status.")
    error: str = Field(description="The error's kind, e.g. InvalidInputError, NotFoundError.")
    message: str = Field(description="What was wrong and what to do instead.")


class Pipeline(_Open):
    id: str
    name: str
    site: str
    created_at: float = Field(description="Seconds since the Unix epoch.")
    properties: dict[str, Any]
    custom_properties: dict[str, Any]


class Stage(_Open):
    id: str
    pipeline: str
    name: str
    site: str
    created_at: float
    properties: dict[str, Any]
    custom_properties: dict[str, Any]


class Execution(_Open):
    id: str = Field(description="A UUID (the OpenLineage runId).")
    pipeline: str
    stage: str
    site: str
    status: Status
    started_at: float = Field(description="Seconds since the Unix epoch.")
    ended_at: float | None
    params: dict[str, Any]
    properties: dict[str, Any]
    custom_properties: dict[str, Any]
    error: str | None


class ExecutionState(Execution):
    """An execution as the executions routes give it: with ``lost`` and ``run_url``."""

    lost: bool
    run_url: str | None


class Artifact(_Open):
    id: str = Field(description="Content digest ('sha256:...'), or of URI and version.")
    type: str
    name: str
    uri: str
    site: str
    created_at: float
    properties: dict[str, Any]
    custom_properties: dict[str, Any]
    role: str | None = Field(None, description="properties['cmf.role'] when it has one.")


class Location(_Open):
    site: str
    uri: str


class Edge(_Open):
    execution_id: str
    artifact_id: str
    type: Literal["INPUT", "OUTPUT"]


class Metric(_Open):
    execution_id: str
    name: str
    value: float
    step: int | None
    timestamp: float


class Energy(_Open):
    execution_id: str
    site: str
    energy_kwh: float
    co2e_kg: float
    measured: bool
    details: dict[str, Any]


class _Page(_Open):
    total: int | None = Field(description="Items in all pages (null: not counted).")
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the "
                                                "last one.")


class PipelineListItem(Pipeline):
    executions: int | None = Field(None, description="With summary=true.")
    last_execution: ExecutionState | None = Field(None, description="With summary=true.")


class PipelinePage(_Page):
    items: list[PipelineListItem]


class StagePage(_Page):
    items: list[Stage]


class ExecutionPage(_Page):
    items: list[ExecutionState]


class ArtifactPage(_Page):
    items: list[Artifact]


class MetricPage(_Page):
    items: list[Metric]


class RunEventPage(_Page):
    items: list[dict[str, Any]] = Field(description="OpenLineage events, as received.")


class PipelineDetail(Pipeline):
    stages: list[Stage]
    stage_edges: list[list[str]] = Field(description="[from stage, to stage] pairs.")
    executions: int


class ExecutionDetail(ExecutionState):
    inputs: list[Artifact]
    outputs: list[Artifact]
    metrics: int = Field(description="How many metric values it has.")
    energy: Energy | None


class ArtifactDetail(Artifact):
    locations: list[Location]
    producers: list[Execution]
    consumers: list[Execution]


class ArtifactLineage(_Open):
    artifact: Artifact
    direction: Literal["upstream", "downstream"]
    depth: int | None
    artifacts: list[Artifact]
    executions: list[Execution]
    edges: list[Edge]


class Provenance(_Open):
    artifact: Artifact
    executions: list[Execution]
    inputs: list[Artifact]
    metrics: dict[str, dict[str, float]] = Field(
        description="Scalar metrics by execution id, then name.")


class GraphExecution(ExecutionState):
    energy_kwh: float | None
    co2e_kg: float | None


class Graph(_Open):
    pipeline: str
    upstream: bool
    total_executions: int
    truncated: bool
    sites: list[str]
    executions: list[GraphExecution]
    artifacts: list[Artifact]
    edges: list[Edge]


class MarquezGraph(_Open):
    graph: list[dict[str, Any]] = Field(description="Marquez's lineage nodes.")


class LineageEvents(_Open):
    events: list[dict[str, Any]] = Field(description="OpenLineage events, as received.")
    totalCount: int


class IngestResult(_Open):
    """One recorded event."""

    eventId: str | None
    kind: str
    runId: str | None = None
    executionStatus: str | None = None
    artifactIds: list[str]


class BatchOutcome(_Open):
    """The outcome of one event of a batch: ``status`` 201 with what was recorded, or the
    error's status with ``error`` and ``message``."""

    index: int
    status: int
    eventId: str | None = None
    kind: str | None = None
    runId: str | None = None
    executionStatus: str | None = None
    artifactIds: list[str] | None = None
    error: str | None = None
    message: str | None = None


class BatchResult(_Open):
    accepted: int
    rejected: int
    results: list[BatchOutcome]


class Carbon(_Open):
    by: str
    filters: dict[str, Any]
    groups: list[dict[str, Any]]
    total: dict[str, Any]
    stages: list[dict[str, Any]]
    notes: list[str]
    also: dict[str, Any] | None = Field(None, description="With also=...")
    store_sites: list[str] | None = Field(None, description="With store_sites=true.")


class RecommendTask(_Open):
    id: str
    name: str
    category: str
    modality: str
    group: str | None
    metric: str | None
    runs: int
    best_score: float | None
    source: Literal["store", "shipped", "both"]


class RecommendTasks(_Open):
    items: list[RecommendTask]
    total: int
    knowledge_tasks: int
    categories: Any


class Recommendation(_Open):
    task: dict[str, Any]
    strategy: str
    message: str
    leave_out: bool


class FederationInfo(_Open):
    format: int
    formats: list[int]
    site: str
    store_id: str
    vector: dict[str, int]
    scope: str
    pipelines: list[str] | None
    high_water: int
    serves_artifacts: bool


class MergeReport(_Open):
    records: int
    written: int
    conflicts: list[dict[str, Any]]
    high_water: int | None


class WriterCounters(_Open):
    queued: int
    batches: int
    events: int
    largest_batch: int


class Health(_Open):
    status: Literal["ok"]
    version: str
    site: str
    store: str
    auth: bool
    protect_reads: bool
    writer: WriterCounters


def ok(model: type[BaseModel], status: int = 200, description: str = "Success") -> dict[
        int | str, dict[str, Any]]:
    """``responses=`` of a route whose ``status`` body is ``model``."""
    return {status: {"model": model, "description": description}}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "A parameter or the body is invalid; the message "
                                         "names it."},
    401: {"model": Error, "description": "Missing or wrong bearer token (WWW-Authenticate: "
                                         "Bearer)."},
    503: {"model": Error, "description": "Store unavailable or busy; retry (Retry-After)."},
    "default": {"model": Error, "description": "Any other error, in the same shape."},
}
"""Errors every route may answer (its router's or route's ``responses=``). Declaring
``default`` also keeps FastAPI from declaring a 422 that this server never sends: a request
that fails validation is 400 in the :class:`Error` shape."""

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Error, "description": "No such record; the message says where to look."}}

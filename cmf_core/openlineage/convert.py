"""CMF -> OpenLineage: the RunEvents that describe one execution.

An execution becomes a START event at ``started_at`` and, once it has ended, one terminal event
at ``ended_at`` (``completed`` -> COMPLETE, ``failed`` -> FAIL, ``aborted`` -> ABORT,
``skipped`` -> COMPLETE with ``cmf_execution.status = "skipped"``):

* job: namespace ``namespace`` (default ``"cmf"``), name ``"<pipeline>.<stage>"``; for an
  execution ingested from a foreign event, the job that event named, with its job facets;
* run: ``runId`` = the execution id, with the run facets ``parent`` (the pipeline-level job
  ``"<pipeline>"``), ``cmf_execution``, ``cmf_site``, ``cmf_params`` and, on the last event,
  ``cmf_metrics``, ``cmf_energy`` and ``errorMessage``;
* inputs on every event, outputs on the last one, named per :mod:`cmf_core.openlineage.naming`
  and carrying the ``cmf_artifact`` facet (digest, type, properties);
* the run, dataset, input and output facets a foreign event gave the execution and its
  artifacts (kept by ingest in ``openlineage.*`` properties), as received, so that any
  OpenLineage backend reads them (not only CMF, from ``cmf_execution``).

The parent run id is ``parent_run_id`` when given (an adapter passes its orchestrator's pipeline
run id); else the ``parent`` facet an ingested event carried; else :func:`default_parent_run_id`,
a UUID derived from the namespace and pipeline name.

:func:`to_run_events` returns openlineage-python ``RunEvent`` objects, for any openlineage-python
transport; :func:`to_event_dicts` returns the same events as plain JSON dicts, for validation and
HTTP. Nothing here touches a store except :meth:`ExecutionLineage.from_store`.
"""

from __future__ import annotations

import enum
import functools
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run, parent_run

from cmf_core.errors import InvalidInputError, NotFoundError
from cmf_core.identity import NAMESPACE
from cmf_core.model import (
    Artifact,
    EnergyRecord,
    Event,
    EventType,
    Execution,
    ExecutionStatus,
    Metric,
)
from cmf_core.openlineage.facets import (
    PRODUCER,
    ArtifactDatasetFacet,
    EnergyRunFacet,
    ExecutionRunFacet,
    MetricPoint,
    MetricsRunFacet,
    ParamsRunFacet,
    SiteRunFacet,
)
from cmf_core.openlineage.naming import dataset_naming, dataset_uri
from cmf_core.openlineage.times import format_time

if TYPE_CHECKING:
    from cmf_core.store.base import Store

DEFAULT_NAMESPACE = "cmf"
RUN_FACETS_PROPERTY = "openlineage.run_facets"
"""Execution property holding run facets that CMF records cannot derive (see ingest)."""
JOB_PROPERTY = "openlineage.job"
"""Execution property holding the OpenLineage job (namespace, name) of a foreign event."""
JOB_FACETS_PROPERTY = "openlineage.job_facets"
"""Execution property holding the job facets of a foreign event."""
INPUT_FACETS_PROPERTY = "openlineage.input_facets"
OUTPUT_FACETS_PROPERTY = "openlineage.output_facets"
"""Execution properties holding a foreign event's input / output facets, by dataset URI."""
DATASET_FACETS_PROPERTY = "openlineage.facets"
"""Artifact property holding a foreign event's dataset facets (``schema``, ...)."""
DATASET_PROPERTY = "openlineage.dataset"
"""Artifact property holding the dataset's namespace and name when its URI does not give them."""
PROGRAMMING_LANGUAGE = "python"

_TERMINAL_STATE = {
    ExecutionStatus.COMPLETED: RunState.COMPLETE,
    ExecutionStatus.FAILED: RunState.FAIL,
    ExecutionStatus.ABORTED: RunState.ABORT,
    ExecutionStatus.SKIPPED: RunState.COMPLETE,
}


def job_name(pipeline: str, stage: str) -> str:
    """The OpenLineage job name of a stage: ``"<pipeline>.<stage>"``."""
    return f"{pipeline}.{stage}"


@functools.lru_cache(maxsize=4096)
def default_parent_run_id(namespace: str, pipeline: str) -> str:
    """The parent run id used when neither the caller nor the execution gives one (pure, so
    cached: ingest asks for it on every event with a ``parent`` facet)."""
    return str(uuid.uuid5(NAMESPACE, f"openlineage-parent-run\x1f{namespace}\x1f{pipeline}"))


@dataclass(frozen=True, slots=True)
class ExecutionLineage:
    """An execution with what it read and wrote, its metrics and its energy record."""

    execution: Execution
    inputs: tuple[Artifact, ...] = ()
    outputs: tuple[Artifact, ...] = ()
    metrics: tuple[Metric, ...] = ()
    energy: EnergyRecord | None = None

    @classmethod
    def from_records(cls, execution: Execution, artifacts: Iterable[Artifact] = (),
                     events: Iterable[Event] = (), metrics: Iterable[Metric] = (),
                     energy: EnergyRecord | None = None) -> ExecutionLineage:
        """Pair ``events`` of ``execution`` with their ``artifacts`` (other events are ignored)."""
        by_id = {a.id: a for a in artifacts}
        sides: dict[EventType, dict[str, Artifact]] = {EventType.INPUT: {}, EventType.OUTPUT: {}}
        for ev in events:
            if ev.execution_id != execution.id:
                continue
            artifact = by_id.get(ev.artifact_id)
            if artifact is None:
                raise InvalidInputError(
                    f"event {ev.type.value} of execution {execution.id} names artifact "
                    f"{ev.artifact_id}, which is not among the artifacts given; pass it too"
                )
            sides[ev.type][artifact.id] = artifact
        if energy is not None and energy.execution_id != execution.id:
            raise InvalidInputError(
                f"energy record of execution {energy.execution_id} given for execution "
                f"{execution.id}"
            )
        return cls(
            execution=execution,
            inputs=tuple(sides[EventType.INPUT][k] for k in sorted(sides[EventType.INPUT])),
            outputs=tuple(sides[EventType.OUTPUT][k] for k in sorted(sides[EventType.OUTPUT])),
            metrics=tuple(m for m in metrics if m.execution_id == execution.id),
            energy=energy,
        )

    @classmethod
    def from_store(cls, store: Store, execution_id: str) -> ExecutionLineage:
        """Load an execution and its lineage from ``store``."""
        execution = store.get_execution(execution_id)
        if execution is None:
            raise NotFoundError(f"execution {execution_id} is not in store {store.url}")
        events = store.events(execution_ids=[execution.id])
        artifacts = [a for a in (store.get_artifact(e.artifact_id) for e in events)
                     if a is not None]
        energy = store.energy([execution.id])
        return cls.from_records(execution, artifacts, events, store.metrics([execution.id]),
                                energy[0] if energy else None)


# facets ------------------------------------------------------------------------------------
def _stored(properties: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The facets (objects with ``_producer`` and ``_schemaURL``) of property ``key``, which
    ingest keeps from a foreign event, as plain dicts; ``{}`` if none."""
    value = properties.get(key)
    return _facet_map(_plain(value)) if isinstance(value, Mapping) else {}


def _stored_by_uri(value: Any) -> dict[str, Any]:
    """An execution's input or output facets property (by dataset URI) as plain dicts."""
    return _plain(value) if isinstance(value, Mapping) else {}


def _facet_map(value: Any) -> dict[str, Any]:
    """The entries of ``value`` that are facets (a value a user set by hand may not be)."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, dict)
            and isinstance(v.get("_producer"), str) and isinstance(v.get("_schemaURL"), str)}


def _artifact_dataset(artifact: Artifact, producer: str, output: bool,
                      io_facets: Mapping[str, Any]) -> InputDataset | OutputDataset:
    """The dataset of ``artifact``, with the dataset facets a foreign event gave it and its
    input / output facets (``io_facets``: the execution's, by dataset URI)."""
    stored = artifact.properties.get(DATASET_PROPERTY)
    if isinstance(stored, Mapping) and {"namespace", "name"} <= stored.keys():
        namespace, name = str(stored["namespace"]), str(stored["name"])
    else:
        namespace, name = dataset_naming(artifact.uri)
    io = _facet_map(io_facets.get(dataset_uri(namespace, name)) or io_facets.get(artifact.uri))
    facet = ArtifactDatasetFacet(
        digest=artifact.id,
        type=artifact.type,
        name=None if artifact.name == name else artifact.name,
        uri=None if artifact.uri == dataset_uri(namespace, name) else artifact.uri,
        site=artifact.site,
        created_at=artifact.created_at,
        properties=_plain(artifact.properties),
        custom_properties=_plain(artifact.custom_properties),
        producer=producer,
    )
    facets = {**_stored(artifact.properties, DATASET_FACETS_PROPERTY), "cmf_artifact": facet}
    extra = io or None
    if output:
        return OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=extra)
    return InputDataset(namespace=namespace, name=name, facets=facets, inputFacets=extra)


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A deep plain-dict copy (records hold read-only mapping proxies)."""
    return json.loads(json.dumps(dict(mapping), default=dict))


def _parent_facet(execution: Execution, namespace: str, producer: str,
                  parent_run_id: str | None) -> Any:
    if parent_run_id is None:
        stored = execution.properties.get(RUN_FACETS_PROPERTY)
        if isinstance(stored, Mapping) and isinstance(stored.get("parent"), Mapping):
            return _plain(stored["parent"])  # forwarded as received, producer and all
        parent_run_id = default_parent_run_id(namespace, execution.pipeline)
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=str(parent_run_id)),
        job=parent_run.Job(namespace=namespace, name=execution.pipeline),
        producer=producer,
    )


def _run_facets(lineage: ExecutionLineage, status: ExecutionStatus, last: bool, namespace: str,
                producer: str, parent_run_id: str | None) -> dict[str, Any]:
    ex = lineage.execution
    kept = _stored(ex.properties, RUN_FACETS_PROPERTY)  # a foreign event's, as received
    error = kept.pop("errorMessage", None)
    kept.pop("parent", None)
    facets: dict[str, Any] = {
        **kept,
        "parent": _parent_facet(ex, namespace, producer, parent_run_id),
        "cmf_execution": ExecutionRunFacet(
            status=status.value, pipeline=ex.pipeline, stage=ex.stage,
            properties=_plain(ex.properties), custom_properties=_plain(ex.custom_properties),
            producer=producer),
        "cmf_site": SiteRunFacet(name=ex.site, producer=producer),
    }
    if ex.params:
        facets["cmf_params"] = ParamsRunFacet(params=_plain(ex.params), producer=producer)
    if last:
        if lineage.metrics:
            points = sorted(lineage.metrics, key=lambda m: (m.name, -1 if m.step is None
                                                            else m.step, m.timestamp))
            facets["cmf_metrics"] = MetricsRunFacet(
                metrics=[MetricPoint(m.name, m.value, m.step, m.timestamp) for m in points],
                producer=producer)
        if lineage.energy is not None:
            e = lineage.energy
            facets["cmf_energy"] = EnergyRunFacet(
                energy_kwh=e.energy_kwh, co2e_kg=e.co2e_kg, details=_plain(e.details),
                producer=producer)
        if ex.error is not None and status.is_terminal:
            facets["errorMessage"] = error if isinstance(error, dict) and \
                error.get("message") == ex.error else error_message_run.ErrorMessageRunFacet(
                    message=ex.error, programmingLanguage=PROGRAMMING_LANGUAGE,
                    producer=producer)
    return facets


def _job(execution: Execution, namespace: str) -> Job:
    """The job an execution ran: the one its foreign event named (with its job facets), as
    :mod:`cmf_core.server.marquez` and ``cmf reap`` name it; else ``namespace`` and
    ``<pipeline>.<stage>``."""
    stored = execution.properties.get(JOB_PROPERTY)
    if isinstance(stored, Mapping) and all(isinstance(stored.get(k), str) and stored[k]
                                           for k in ("namespace", "name")):
        facets = execution.properties.get(JOB_FACETS_PROPERTY)
        return Job(namespace=stored["namespace"], name=stored["name"],
                   facets=_plain(facets) if isinstance(facets, Mapping) else {})
    return Job(namespace=namespace, name=job_name(execution.pipeline, execution.stage))


# events ------------------------------------------------------------------------------------
def to_run_events(lineage: ExecutionLineage, *, namespace: str = DEFAULT_NAMESPACE,
                  producer: str = PRODUCER, parent_run_id: str | None = None) -> list[RunEvent]:
    """START (and, once ended, COMPLETE/FAIL/ABORT) as openlineage-python ``RunEvent``s."""
    if not namespace:
        raise InvalidInputError("OpenLineage job namespace must be non-empty (default 'cmf')")
    ex = lineage.execution
    ended = ex.status.is_terminal
    job = _job(ex, namespace)
    namespace = job.namespace  # the parent job's too, as ingest reads it back
    in_facets, out_facets = (_stored_by_uri(ex.properties.get(k))
                             for k in (INPUT_FACETS_PROPERTY, OUTPUT_FACETS_PROPERTY))
    inputs = [_artifact_dataset(a, producer, False, in_facets) for a in lineage.inputs]
    outputs = [_artifact_dataset(a, producer, True, out_facets) for a in lineage.outputs]
    events = [RunEvent(
        eventType=RunState.START,
        eventTime=format_time(ex.started_at),
        run=Run(runId=ex.id, facets=_run_facets(lineage, ExecutionStatus.RUNNING, not ended,
                                                namespace, producer, parent_run_id)),
        job=job,
        inputs=inputs,
        outputs=[] if ended else outputs,
        producer=producer,
    )]
    if ended:
        events.append(RunEvent(
            eventType=_TERMINAL_STATE[ex.status],
            eventTime=format_time(ex.ended_at if ex.ended_at is not None else ex.started_at),
            run=Run(runId=ex.id, facets=_run_facets(lineage, ex.status, True, namespace,
                                                    producer, parent_run_id)),
            job=job,
            inputs=inputs,
            outputs=outputs,
            producer=producer,
        ))
    return events


def _data(obj: Any) -> Any:
    if attr.has(type(obj)):
        return {a.name: _data(v) for a in attr.fields(type(obj))
                if (v := getattr(obj, a.name)) is not None}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Mapping):
        return {str(k): _data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_data(v) for v in obj]
    return obj


def facet_to_dict(facet: Any) -> dict[str, Any]:
    """An openlineage-python facet (an ``attr`` class) as a plain JSON dict."""
    data = _data(facet)
    assert isinstance(data, dict)
    return data


def event_to_dict(event: Any) -> dict[str, Any]:
    """An openlineage-python event (or a dict) as a plain JSON dict.

    Unset (``None``) fields of events and facets are left out, as the spec wants; unlike the
    client's ``Serde``, values inside free-form objects (params, properties) are kept as they
    are, ``None`` included, so they survive the trip.
    """
    if isinstance(event, Mapping):
        return dict(event)
    if not attr.has(type(event)):
        raise InvalidInputError(
            f"{type(event).__name__} is not an OpenLineage event; pass a dict or an "
            "openlineage.client.event_v2 event")
    return _data(event)


def to_event_dicts(lineage: ExecutionLineage, *, namespace: str = DEFAULT_NAMESPACE,
                   producer: str = PRODUCER, parent_run_id: str | None = None
                   ) -> list[dict[str, Any]]:
    """The events of :func:`to_run_events` as plain JSON dicts."""
    return [event_to_dict(e) for e in to_run_events(
        lineage, namespace=namespace, producer=producer, parent_run_id=parent_run_id)]

"""OpenLineage -> CMF: turn RunEvents, DatasetEvents and JobEvents into CMF records.

:func:`event_to_records` is pure (event in, records out); :func:`ingest` validates the event,
merges it with what the store already knows about its run, and writes everything, the raw event
included, with one ``store.put``. An invalid event raises :class:`InvalidEventError` and
nothing is stored.

Mapping of a RunEvent
---------------------
* **pipeline and stage**: from the ``cmf_execution`` facet when present (events CMF produced).
  Otherwise from the job: with a ``parent`` run facet, pipeline = the parent job's name and
  stage = the job name without a leading ``"<parent>."`` (Airflow's ``dag.task`` under ``dag``
  gives stage ``task``); without one, pipeline = the job name's part before the first ``.``
  (the whole name if it has none) and stage = the job name. The job namespace is not part of
  the CMF name: it is kept in the execution property ``openlineage.job``.
* **execution**: id = ``run.runId``. START/RUNNING -> running, COMPLETE -> completed, FAIL ->
  failed, ABORT -> aborted (on a terminal event a terminal ``cmf_execution.status``, such as
  ``skipped``, wins), OTHER or no eventType -> no status change. ``error`` from the
  ``errorMessage`` facet. ``started_at`` = the earliest event time seen, ``ended_at`` = the
  terminal event's time. ``cmf_params`` -> params; ``cmf_execution`` -> properties and custom
  properties; ``cmf_site`` -> the site of every record (else the ``site`` argument).
* **other run facets** (``nominalTime``, ``processing_engine``, ``parent``, any custom facet)
  -> execution property ``openlineage.run_facets``, as received; job facets ->
  ``openlineage.job_facets``; input/output facets -> ``openlineage.input_facets`` /
  ``openlineage.output_facets``, keyed by artifact URI. Facets CMF derives again from the
  records themselves (a ``parent`` with :func:`~cmf_core.openlineage.convert.default_parent_run_id`,
  an ``errorMessage`` that only repeats ``error``) are not copied.
* **inputs / outputs** -> artifacts and INPUT / OUTPUT events. Artifact id: the
  ``cmf_artifact`` digest; else ``identity.remote_digest(uri, version)`` from the ``version``
  dataset facet; else, for an unversioned dataset, :func:`unversioned_digest` of its URI (every
  run that writes the same unversioned dataset then writes the *same* artifact: give datasets a
  ``version`` facet to tell their contents apart). Type from ``cmf_artifact`` (default
  ``Dataset``). Dataset facets (``schema``, ``dataSource``, ``storage``, ``version``, ...) ->
  artifact property ``openlineage.facets``.
* ``cmf_metrics`` -> Metric records; ``cmf_energy`` -> an EnergyRecord.

A DatasetEvent gives an artifact (no execution); a JobEvent gives a pipeline and a stage (job
facets -> stage property ``openlineage.job_facets``) and artifacts for its datasets.

Order and duplicates
--------------------
Events of one run may arrive out of order or more than once. Each event's execution is written
as the event describes it and the store merges it with what it holds (see ``Store.put``): the
furthest status and the earliest ``started_at`` are kept, and params and properties are a
recursive union where the side with the further status wins a key both have (the stored value
between equal statuses), so a START that arrives after its COMPLETE adds what only it carried
and changes nothing else. Ingest never reads the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cmf_core import jsonutil
from cmf_core.errors import InvalidEventError, InvalidInputError
from cmf_core.identity import check_uuid, remote_digest
from cmf_core.model import (
    Artifact,
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
from cmf_core.model._base import MAX_NAME, check_text
from cmf_core.openlineage.convert import (
    DATASET_FACETS_PROPERTY,
    DATASET_PROPERTY,
    INPUT_FACETS_PROPERTY,
    JOB_FACETS_PROPERTY,
    JOB_PROPERTY,
    OUTPUT_FACETS_PROPERTY,
    PROGRAMMING_LANGUAGE,
    RUN_FACETS_PROPERTY,
    default_parent_run_id,
    event_to_dict,
)
from cmf_core.openlineage.facets import CMF_RUN_FACETS
from cmf_core.openlineage.naming import dataset_naming, dataset_uri
from cmf_core.openlineage.times import parse_time
from cmf_core.openlineage.validate import EventKind, validate_event

if TYPE_CHECKING:
    from cmf_core.store.base import Store


MAX_DATASETS = 10_000
"""Most datasets (inputs and outputs together) one event may list. A lineage read
(:class:`~cmf_core.server.marquez.LineageGraph`) builds every dataset around a job: 0.2 ms of
CPU each (about 2 s for a job of 10,000 on the development machine; reading node by node, it
was 1 ms each, and one event with 50,000 inputs made ``GET /api/v1/lineage`` take 42 s)."""

_STATUS = {
    "START": ExecutionStatus.RUNNING,
    "RUNNING": ExecutionStatus.RUNNING,
    "COMPLETE": ExecutionStatus.COMPLETED,
    "FAIL": ExecutionStatus.FAILED,
    "ABORT": ExecutionStatus.ABORTED,
}


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one event became."""

    kind: EventKind
    event_id: str  # canonical_event_id of the event: its raw copy's key in the store
    execution_id: str | None = None
    # the status this event reports for its run (None: an OTHER event, or no eventType); the
    # store keeps the furthest status it has seen, which may be further than this
    status: ExecutionStatus | None = None
    artifact_ids: tuple[str, ...] = ()
    records: int = 0  # records written (raw event included)


def canonical_event_id(event: Any) -> str:
    """sha256 (hex) of the event's canonical JSON: the same event always gets the same id."""
    return hashlib.sha256(jsonutil.dumps(event_to_dict(event)).encode()).hexdigest()


def unversioned_digest(uri: str) -> str:
    """Artifact id of a dataset that carries neither a digest nor a version: its URI's digest."""
    return "version:" + hashlib.sha256(f"{uri}\0\0openlineage-unversioned".encode()).hexdigest()


merge_dicts = jsonutil.merge  # recursive union of two JSON objects, ``high`` winning a key


class _at:  # noqa: N801 - used as a lower-case context manager, like contextlib's
    """Re-raise a record's complaint (or a number too large for a float) as an event error
    naming the field it came from (a class, not ``contextlib.contextmanager``: it wraps every
    record of every event)."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 _tb: Any) -> bool:
        if isinstance(error, InvalidInputError) and not isinstance(error, InvalidEventError):
            raise InvalidEventError(f"invalid OpenLineage event: {self.path}: {error}") from None
        if isinstance(error, OverflowError):  # float() of an integer past 1.8e308
            raise InvalidEventError(f"invalid OpenLineage event: {self.path}: a number is too "
                                    "large for a float (at most about 1.8e308)") from None
        return False


# pieces ------------------------------------------------------------------------------------
def _event_time(event: Mapping[str, Any]) -> float:
    """Unix seconds of the event's ``eventTime`` (valid in form, it may still be out of range,
    such as year 0)."""
    try:
        at = parse_time(event["eventTime"])
    except InvalidInputError as e:
        raise InvalidEventError(f"invalid OpenLineage event: {e}") from None
    if at < 0:  # valid OpenLineage, but a CMF record's times start at the Unix epoch
        raise InvalidEventError(f"invalid OpenLineage event: eventTime {event['eventTime']!r} "
                                "is before 1970-01-01T00:00:00Z, the earliest time CMF records")
    return at


def _facets(container: Any) -> dict[str, Any]:
    facets = container.get("facets") if isinstance(container, Mapping) else None
    return facets if isinstance(facets, dict) else {}


def _live(facet: Any) -> dict[str, Any] | None:
    """``facet`` unless it is missing or a deletion marker (``"_deleted": true``)."""
    if isinstance(facet, dict) and facet.get("_deleted") is not True:
        return facet
    return None


def stage_of_job(job_name: str, parent: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """The (pipeline, stage) an OpenLineage job is filed under (names cut to fit the store)."""
    pipeline, stage = _names(job_name, parent)
    return fit_name(pipeline), fit_name(stage)


def _names(job_name: str, parent: Mapping[str, Any] | None) -> tuple[str, str]:
    if parent is not None:
        pipeline = parent["job"]["name"]
        prefix = pipeline + "."
        if job_name.startswith(prefix) and len(job_name) > len(prefix):
            return pipeline, job_name[len(prefix):]
        return pipeline, job_name
    head = job_name.split(".", 1)[0]
    return (head or job_name), job_name


def _derived(key: str, facet: Any, namespace: str, pipeline: str, error: str | None) -> bool:
    """True for a facet CMF writes again from the records (so it is not kept as a property)."""
    if not isinstance(facet, Mapping):
        return False
    fields = {k: v for k, v in facet.items() if k not in ("_producer", "_schemaURL")}
    if key == "parent":
        run, job = fields.get("run"), fields.get("job")
        return (set(fields) == {"run", "job"} and isinstance(run, Mapping)
                and isinstance(job, Mapping)
                and {k: v for k, v in run.items() if v != {}} ==
                {"runId": default_parent_run_id(namespace, pipeline)}
                and {k: v for k, v in job.items() if v != {}} ==
                {"namespace": namespace, "name": pipeline})
    if key == "errorMessage":
        return fields == {"message": error, "programmingLanguage": PROGRAMMING_LANGUAGE}
    return False


def fit_name(text: Any) -> Any:
    """A dataset name or URI (a presigned URL, say), or a job name (Spark's names end in the
    output dataset's), longer than a stored name may be, cut to :data:`MAX_NAME` characters,
    ending in a hash of the whole, so that the run is still recorded. The artifact's id is the
    digest of the whole URI and its properties keep the dataset's whole namespace and name; an
    execution keeps its job's whole name in ``openlineage.job`` (a stage of a JobEvent too)."""
    if not isinstance(text, str) or len(text) <= MAX_NAME:
        return text
    tail = "…" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return text[:MAX_NAME - len(tail)] + tail


def _artifact(ds: Mapping[str, Any], path: str, at: float, site: str
              ) -> tuple[Artifact, str]:
    namespace, name = ds["namespace"], ds["name"]
    facets = _facets(ds)
    ca, version_facet = (_live(facets.get(k)) for k in ("cmf_artifact", "version"))
    version = version_facet.get("datasetVersion") if version_facet else None
    uri = (ca or {}).get("uri") or dataset_uri(namespace, name)
    if ca is not None:
        digest = ca["digest"]
    elif version:
        digest = remote_digest(uri, str(version))
    else:
        digest = unversioned_digest(uri)
    props: dict[str, Any] = dict(ca.get("properties") or {}) if ca else {}
    other = {k: v for k, v in facets.items() if k != "cmf_artifact"}
    if other:
        props = merge_dicts(props, {DATASET_FACETS_PROPERTY: other})
    with _at(f"{path}.facets.cmf_artifact" if ca else f"{path}.name"):
        if DATASET_PROPERTY not in props and (dataset_naming(uri) != (namespace, name)
                                               or fit_name(uri) != uri):
            props[DATASET_PROPERTY] = {"namespace": namespace, "name": name}
        artifact = Artifact(
            id=digest,
            type=(ca or {}).get("type", "Dataset"),
            name=fit_name((ca or {}).get("name") or name),
            uri=fit_name(uri),
            site=(ca or {}).get("site") or site,
            created_at=float((ca or {}).get("created_at", at)),
            properties=props,
            custom_properties=dict((ca or {}).get("custom_properties") or {}),
        )
    return artifact, uri


def _datasets(event: Mapping[str, Any], at: float, site: str
              ) -> Iterator[tuple[EventType, Artifact, str, dict[str, Any]]]:
    for side, extra, etype in (("inputs", "inputFacets", EventType.INPUT),
                               ("outputs", "outputFacets", EventType.OUTPUT)):
        for i, ds in enumerate(event.get(side) or []):
            artifact, uri = _artifact(ds, f"{side}[{i}]", at, site)
            yield etype, artifact, uri, ds.get(extra) or {}


# event kinds -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _RunRecords:
    records: list[Record]
    execution: Execution
    sets_status: bool  # False for OTHER / no eventType: the event does not move the status


def _run_records(event: Mapping[str, Any], site: str) -> _RunRecords:
    at = _event_time(event)
    run, job = event["run"], event["job"]
    with _at("run.runId"):
        run_id = check_uuid(run["runId"], "runId")
    rf = _facets(run)
    cmf_exec = rf.get("cmf_execution")
    cmf_site = rf.get("cmf_site")
    record_site = cmf_site["name"] if isinstance(cmf_site, dict) else site
    parent = rf.get("parent") if isinstance(rf.get("parent"), dict) else None
    if isinstance(cmf_exec, dict):
        pipeline, stage = cmf_exec["pipeline"], cmf_exec["stage"]
    else:  # the whole job name is kept in openlineage.job
        pipeline, stage = stage_of_job(job["name"], parent)

    event_type = event.get("eventType")
    status = _STATUS.get(event_type) if isinstance(event_type, str) else None
    if status is not None and status.is_terminal and isinstance(cmf_exec, dict):
        claimed = ExecutionStatus.parse(cmf_exec["status"])
        status = claimed if claimed.is_terminal else status
    error_facet = rf.get("errorMessage")
    error = error_facet.get("message") if isinstance(error_facet, dict) else None

    properties: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    if isinstance(cmf_exec, dict):
        properties = dict(cmf_exec.get("properties") or {})
        custom = dict(cmf_exec.get("custom_properties") or {})
    else:
        properties[JOB_PROPERTY] = {"namespace": job["namespace"], "name": job["name"]}
    kept = {k: v for k, v in rf.items() if k not in CMF_RUN_FACETS
            and not _derived(k, v, job["namespace"], pipeline, error)}
    extras: dict[str, Any] = {}
    if kept:
        extras[RUN_FACETS_PROPERTY] = kept
    if _facets(job):
        extras[JOB_FACETS_PROPERTY] = _facets(job)

    # first: a name too long for the store is the job's (or parent's) field, not the run's
    named_by = "run.facets.cmf_execution" if isinstance(cmf_exec, dict) else None
    with _at(named_by or ("run.facets.parent.job.name" if parent is not None else "job.name")):
        head: list[Record] = [Pipeline(name=pipeline, site=record_site, created_at=at)]
    with _at(named_by or "job.name"):
        head.append(Stage(pipeline=pipeline, name=stage, site=record_site, created_at=at))

    records: list[Record] = []
    links: list[tuple[EventType, str]] = []
    for etype, artifact, uri, io_facets in _datasets(event, at, record_site):
        records.append(artifact)
        links.append((etype, artifact.id))
        if io_facets:
            key = INPUT_FACETS_PROPERTY if etype is EventType.INPUT else OUTPUT_FACETS_PROPERTY
            extras = merge_dicts(extras, {key: {uri: io_facets}})
    properties = merge_dicts(properties, extras)

    params_facet = rf.get("cmf_params")
    with _at("run"):
        execution = Execution(
            pipeline=pipeline, stage=stage, site=record_site, id=run_id,
            status=status or ExecutionStatus.RUNNING, started_at=at,
            ended_at=at if status is not None and status.is_terminal else None,
            params=dict(params_facet.get("params") or {}) if isinstance(params_facet, dict)
            else {},
            properties=properties, custom_properties=custom, error=error,
        )
    records = [*head, *records, execution]
    records += [Event(execution_id=run_id, artifact_id=a, type=t) for t, a in links]
    metrics_facet = rf.get("cmf_metrics")
    if isinstance(metrics_facet, dict):
        for i, m in enumerate(metrics_facet.get("metrics") or []):
            with _at(f"run.facets.cmf_metrics.metrics[{i}]"):
                step = m.get("step")
                records.append(Metric(execution_id=run_id, name=m["name"], value=m["value"],
                                      step=None if step is None else int(step),
                                      timestamp=float(m.get("timestamp", at))))
    energy_facet = rf.get("cmf_energy")
    if isinstance(energy_facet, dict):
        with _at("run.facets.cmf_energy"):
            records.append(EnergyRecord(execution_id=run_id, site=record_site,
                                        energy_kwh=float(energy_facet["energy_kwh"]),
                                        co2e_kg=float(energy_facet["co2e_kg"]),
                                        details=dict(energy_facet.get("details") or {})))
    return _RunRecords(records, execution, status is not None)


def _job_records(event: Mapping[str, Any], site: str) -> list[Record]:
    at = _event_time(event)
    job = event["job"]
    pipeline, stage = stage_of_job(job["name"])
    job_facets = _facets(job)
    with _at("job"):
        records: list[Record] = [
            Pipeline(name=pipeline, site=site, created_at=at),
            Stage(pipeline=pipeline, name=stage, site=site, created_at=at,
                  properties={JOB_PROPERTY: {"namespace": job["namespace"], "name": job["name"]},
                              **({JOB_FACETS_PROPERTY: job_facets} if job_facets else {})}),
        ]
    records += [artifact for _, artifact, _, _ in _datasets(event, at, site)]
    return records


def _records(event: Mapping[str, Any], kind: EventKind, site: str
             ) -> tuple[list[Record], _RunRecords | None]:
    if kind is EventKind.RUN:
        run = _run_records(event, site)
        return run.records, run
    if kind is EventKind.JOB:
        return _job_records(event, site), None
    artifact, _ = _artifact(event["dataset"], "dataset", _event_time(event), site)
    return [artifact], None


def event_to_records(event: Any, site: str) -> list[Record]:
    """The CMF records an OpenLineage event (dict or openlineage-python event) describes.

    Pure: validates the event (:class:`InvalidEventError` if it is not valid) and reads nothing
    else. ``site`` is the records' site unless the event's ``cmf_site`` facet names one.
    """
    data = event_to_dict(event)
    _check_datasets(data)
    kind = validate_event(data)
    _check_text(data)
    return _records(data, kind, site)[0]


def _check_datasets(data: Any) -> None:
    """:class:`InvalidEventError` if the event lists more than :data:`MAX_DATASETS` datasets
    (checked first: validating them all would be wasted)."""
    if not isinstance(data, Mapping):
        return
    count = sum(len(v) for v in (data.get("inputs"), data.get("outputs"))
                if isinstance(v, list))
    if count > MAX_DATASETS:
        raise InvalidEventError(
            f"invalid OpenLineage event: inputs and outputs list {count} datasets, more than "
            f"the {MAX_DATASETS} an event may list; name a dataset as a whole (a table, a "
            "directory) rather than each of its files")


_NUL = b"\\u0000"  # how canonical JSON writes a NUL character


def _check_text(data: Any) -> None:
    """:class:`InvalidEventError` naming a string (or key) of ``data`` that is not valid text:
    a lone surrogate or a NUL, which JSON's ``\\ud800`` and ``\\u0000`` escapes can carry but
    no store can hold (NUL: not PostgreSQL; see :func:`~cmf_core.model._base.text_problem`).
    One pass of the C encoder; the event is walked only when it may hold one."""
    try:
        if _NUL not in jsonutil.dumps(data).encode("utf-8"):
            return
    except UnicodeEncodeError:
        pass
    stack: list[tuple[str, Any]] = [("", data)]
    try:
        while stack:
            path, value = stack.pop()
            if isinstance(value, str):
                check_text(value, f"{path}:")
            elif isinstance(value, Mapping):
                for key, item in value.items():
                    check_text(str(key), f"{path or 'event'}: the key")
                    stack.append((f"{path}.{key}" if path else str(key), item))
            elif isinstance(value, list):
                stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    except InvalidInputError as e:
        raise InvalidEventError(f"invalid OpenLineage event: {e}") from None


def lineage_event(event: Any) -> LineageEvent:
    """The raw-event record of ``event`` (canonical JSON, keyed by :func:`canonical_event_id`);
    :class:`InvalidEventError` if it holds a lone surrogate or a NUL."""
    data = event_to_dict(event)
    body = jsonutil.dumps(data)
    try:
        utf8 = body.encode()
    except UnicodeEncodeError:
        _check_text(data)  # raises, naming the field
        raise
    if _NUL in utf8:  # or the text "\u0000" (written "\\u0000"): walked to tell
        _check_text(data)
    run = data.get("run")
    run_id = run.get("runId") if isinstance(run, Mapping) else None
    return LineageEvent(
        id=hashlib.sha256(utf8).hexdigest(),
        body=body,
        run_id=str(run_id).lower() if run_id else None,
        event_type=data.get("eventType") if run_id else None,
        event_time=data.get("eventTime"),
    )


def prepare(event: Any, site: str) -> tuple[list[Record], IngestResult]:
    """What :func:`ingest` writes for ``event`` (its records, the raw event last) and returns.

    Pure: validates the event (:class:`InvalidEventError`) and reads nothing else; writing the
    records with one ``store.put`` is :func:`ingest`, and writing several events' records in
    one ``put``, in order, gives the same store as ingesting them one by one.
    """
    data = event_to_dict(event)
    _check_datasets(data)
    kind = validate_event(data)
    raw = lineage_event(data)  # first: it refuses text no store can hold (NUL, lone surrogates)
    records, run = _records(data, kind, site)
    records.append(raw)
    return records, IngestResult(
        kind=kind,
        event_id=raw.id,
        execution_id=run.execution.id if run is not None else None,
        status=run.execution.status if run is not None and run.sets_status else None,
        artifact_ids=tuple(dict.fromkeys(r.id for r in records if isinstance(r, Artifact))),
        records=len(records),
    )


def ingest(event: Any, store: Store, site: str) -> IngestResult:
    """Validate ``event`` and write its records, the raw event included, in one ``put``.

    ``event`` is a dict or an openlineage-python event. Raises :class:`InvalidEventError`
    (nothing stored) for an invalid event. Reads nothing: the store merges the event's
    execution with the one it holds (see :meth:`Store.put <cmf_core.store.base.Store.put>`).
    Idempotent: the same event twice changes nothing.
    """
    records, result = prepare(event, site)
    store.put(records)
    return result

"""Marquez-compatible read models over a CMF store: the lineage graph and the event list.

Node ids follow Marquez: ``dataset:<namespace>:<name>`` and ``job:<namespace>:<name>``.

* A **dataset** is every artifact with that OpenLineage (namespace, name): the ``cmf_artifact``
  naming of :mod:`cmf_core.openlineage.convert` (the ``openlineage.dataset`` property, else
  :func:`~cmf_core.openlineage.naming.dataset_naming` of the URI). Its versions are the
  artifacts' digests.
* A **job** is every execution with that OpenLineage job: the ``openlineage.job`` property
  ingest keeps for foreign events, else namespace ``cmf`` and name ``<pipeline>.<stage>``
  (what CMF emits). At most :data:`MAX_RUNS_PER_JOB` latest runs are read per job.
* **Static lineage**: the latest JobEvent of a job (by ``eventTime``, then arrival) is its
  current design: its inputs are ``dataset -> job`` edges and its outputs ``job -> dataset``
  edges, added to those its runs give (the runs' edges are all shown; a declared edge is added
  when no run gave it). A job with declared lineage and no run is a node of its own. JobEvents
  are read from the raw events (:meth:`Store.static_lineage_events`), once per graph.
* Edges: an INPUT event is ``dataset -> job``, an OUTPUT event ``job -> dataset``. ``depth``
  is the number of edges from the requested node; ``inEdges``/``outEdges`` list only edges
  between returned nodes, while a job's ``inputs``/``outputs`` list all its datasets.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cmf_core.errors import CmfError, InvalidInputError, NotFoundError
from cmf_core.model import Artifact, EventType, Execution, ExecutionStatus
from cmf_core.openlineage.convert import DATASET_PROPERTY, DEFAULT_NAMESPACE, job_name
from cmf_core.openlineage.ingest import (
    DATASET_FACETS_PROPERTY,
    JOB_FACETS_PROPERTY,
    JOB_PROPERTY,
    RUN_FACETS_PROPERTY,
    fit_name,
    stage_of_job,
)
from cmf_core.openlineage.naming import dataset_naming, dataset_uris
from cmf_core.openlineage.times import format_time, parse_query_time, parse_time
from cmf_core.store import ExecutionFilter, Store

DATASET = "DATASET"
JOB = "JOB"
_PREFIX = {"dataset": DATASET, "job": JOB}
DEFAULT_DEPTH = 20
MAX_DEPTH = 100
MAX_RUNS_PER_JOB = 100

_RUN_STATE = {
    ExecutionStatus.RUNNING: "RUNNING",
    ExecutionStatus.COMPLETED: "COMPLETED",
    ExecutionStatus.FAILED: "FAILED",
    ExecutionStatus.ABORTED: "ABORTED",
    ExecutionStatus.SKIPPED: "COMPLETED",
}


@dataclass(frozen=True, slots=True, order=True)
class NodeRef:
    type: str  # DATASET | JOB
    namespace: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.type.lower()}:{self.namespace}:{self.name}"

    @property
    def ref(self) -> dict[str, str]:
        return {"namespace": self.namespace, "name": self.name}


def job_of(execution: Execution) -> tuple[str, str]:
    """OpenLineage (namespace, name) of the job an execution ran."""
    prop = execution.properties.get(JOB_PROPERTY)
    if isinstance(prop, Mapping) and "namespace" in prop and "name" in prop:
        return str(prop["namespace"]), str(prop["name"])
    return DEFAULT_NAMESPACE, job_name(execution.pipeline, execution.stage)


def dataset_of(artifact: Artifact) -> tuple[str, str]:
    """OpenLineage (namespace, name) of an artifact, as CMF emits it."""
    stored = artifact.properties.get(DATASET_PROPERTY)
    if isinstance(stored, Mapping) and "namespace" in stored and "name" in stored:
        return str(stored["namespace"]), str(stored["name"])
    return dataset_naming(artifact.uri)


def _stored_uris(namespace: str, name: str) -> list[str]:
    """The artifact URIs of dataset (``namespace``, ``name``) as a store may hold them: each of
    :func:`dataset_uris`, also cut to fit as ingest stores a long one."""
    uris = dataset_uris(namespace, name)
    return list(dict.fromkeys([*uris, *map(fit_name, uris)]))


def _iso(ts: float | None) -> str | None:
    return None if ts is None else format_time(ts).replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=dict))


@dataclass(frozen=True)
class Declared:
    """A job's static lineage: what its latest JobEvent declares."""

    at: float  # the JobEvent's eventTime
    facets: Mapping[str, Any]  # its job facets
    inputs: frozenset[NodeRef]
    outputs: frozenset[NodeRef]


def declared_lineage(store: Store) -> dict[tuple[str, str], Declared]:
    """Each job's static lineage, by OpenLineage (namespace, name): its latest JobEvent (the
    greatest ``eventTime``; between equal times, the later arrival) replaces earlier ones."""
    out: dict[tuple[str, str], Declared] = {}
    for ev in store.static_lineage_events():
        try:
            body = json.loads(ev.body)
            job = body.get("job") if "run" not in body else None
            if not isinstance(job, dict):
                continue  # a DatasetEvent
            key = (str(job["namespace"]), str(job["name"]))
            at = parse_time(body["eventTime"])
        except (ValueError, KeyError, TypeError, AttributeError, CmfError):
            continue  # stored events were validated on ingest; anything else is not a design
        if key in out and at < out[key].at:
            continue
        sides = []
        for side in ("inputs", "outputs"):
            sides.append(frozenset(
                NodeRef(DATASET, str(d["namespace"]), str(d["name"]))
                for d in body.get(side) or () if isinstance(d, dict)
                and "namespace" in d and "name" in d))
        facets = job.get("facets")
        out[key] = Declared(at, facets if isinstance(facets, dict) else {}, *sides)
    return out


@dataclass
class _Node:
    ref: NodeRef
    artifacts: list[Artifact] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    inputs: set[NodeRef] = field(default_factory=set)  # datasets read (job) / jobs writing (ds)
    outputs: set[NodeRef] = field(default_factory=set)  # datasets written / jobs reading
    declared: Declared | None = None  # a job's static lineage (its latest JobEvent)
    expanded: bool = False


def _oldest_first(a: Artifact) -> tuple[float, str]:
    return a.created_at, a.id


class LineageGraph:
    """Builds Marquez's ``{"graph": [...]}`` for a node id, reading the store only."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._nodes: dict[NodeRef, _Node] = {}
        self._index: dict[tuple[str, str], list[Artifact]] | None = None
        self._artifacts: dict[str, Artifact] = {}  # every artifact read, by id
        self._naming: dict[str, tuple[str, str]] = {}  # dataset_of of each, by id
        self._declared: dict[tuple[str, str], Declared] | None = None
        self._declaring: dict[NodeRef, list[tuple[NodeRef, bool]]] = {}  # dataset -> (job, reads)

    def _static(self) -> dict[tuple[str, str], Declared]:
        """Every job's static lineage (:func:`declared_lineage`), read on first use, and which
        jobs declare each dataset."""
        if self._declared is None:
            self._declared = declared_lineage(self.store)
            for (namespace, name), d in sorted(self._declared.items()):
                job = NodeRef(JOB, namespace, name)
                for ds in d.inputs:
                    self._declaring.setdefault(ds, []).append((job, True))
                for ds in d.outputs:
                    self._declaring.setdefault(ds, []).append((job, False))
        return self._declared

    # resolving ids ---------------------------------------------------------------------------
    def resolve(self, node_id: str) -> NodeRef:
        """The node a Marquez node id names; the namespace may itself hold ``:``
        (``s3://bucket``, ``postgres://host:5432``). Every way to split namespace:name is
        tried at once, shortest namespace first: first by the artifacts' names and URIs (one
        lookup, :meth:`_dataset_artifacts`), and only when none matches, through the look at
        all artifacts (a URI spelled another way), which reads the whole store once."""
        kind, sep, rest = node_id.partition(":")
        if not sep or kind not in _PREFIX or ":" not in rest:
            raise InvalidInputError(
                f"nodeId {node_id!r} is not a Marquez node id; use 'dataset:<namespace>:<name>' "
                "or 'job:<namespace>:<name>'")
        node_type = _PREFIX[kind]
        refs = [NodeRef(node_type, rest[:i], rest[i + 1:]) for i, c in enumerate(rest)
                if c == ":" and rest[i + 1:]]
        if node_type == DATASET:
            found = self._dataset_artifacts(refs, scan=False)
            if not any(found):  # a URI spelled another way: the look at all artifacts
                found = [self._scanned((r.namespace, r.name)) for r in refs]
            for ref, arts in zip(refs, found, strict=True):
                if arts:
                    self._nodes.setdefault(ref, _Node(ref, artifacts=arts))
                    return ref
        else:
            nodes = self._load_all(refs)
            for node in nodes:  # a job that ran first, then one only declared (JobEvents)
                if node.executions:
                    return node.ref
            for node in nodes:
                if node.declared is not None:
                    return node.ref
        raise NotFoundError(f"no {kind} {rest!r} in this store (nodeId {node_id!r})")

    def _load_all(self, refs: Sequence[NodeRef]) -> list[_Node]:
        """The nodes of ``refs``, reading the ones not read yet in a few queries."""
        new = [r for r in dict.fromkeys(refs) if r not in self._nodes]
        datasets = [r for r in new if r.type == DATASET]
        jobs = [r for r in new if r.type != DATASET]
        for ref, arts in zip(datasets, self._dataset_artifacts(datasets), strict=True):
            self._nodes[ref] = _Node(ref, artifacts=arts)
        declared = self._static() if jobs else {}
        for ref, execs in zip(jobs, self._job_executions(jobs), strict=True):
            self._nodes[ref] = _Node(ref, executions=execs,
                                     declared=declared.get((ref.namespace, ref.name)))
        return [self._nodes[r] for r in refs]

    def _artifacts_by_id(self, ids: Sequence[str]) -> dict[str, Artifact]:
        """The artifacts of ``ids`` (those the store holds), reading only ones not read yet."""
        missing = sorted({i for i in ids if i not in self._artifacts})
        for a in self.store.find_artifacts(ids=missing) if missing else ():
            self._artifacts[a.id] = a
            self._naming[a.id] = dataset_of(a)
        return {i: self._artifacts[i] for i in ids if i in self._artifacts}

    def _dataset_artifacts(self, refs: Sequence[NodeRef], scan: bool = True
                           ) -> list[list[Artifact]]:
        """Each dataset's artifacts: every artifact that is one of its versions, whatever it
        is named. Two indexed lookups for all of ``refs``: the artifacts named the dataset's
        name (cut to fit, as ingest stores a long one) or its last part (as CMF names a file),
        or whose URI is the dataset's (:func:`~cmf_core.openlineage.naming.dataset_uri`: an
        artifact a producer named ``orders`` at ``postgres://db:5432/shop.public.orders``);
        and those whose ``openlineage.dataset`` property names the dataset
        (:meth:`~cmf_core.store.Store.artifact_ids_of_datasets`). Only when that finds nothing
        (a URI spelled another way, ``S3://...``), those of an index of all artifacts; with
        ``scan=False`` not the index (empty instead)."""
        candidates = [[c for c in dict.fromkeys([r.name, fit_name(r.name),
                                                  posixpath.basename(r.name.rstrip("/"))])
                       if c] for r in refs]
        ids = [*self.store.artifact_ids_at(
            (c for cs in candidates for c in cs),
            (u for r in refs for u in _stored_uris(r.namespace, r.name))),
            *self.store.artifact_ids_of_datasets((r.namespace, r.name) for r in refs)
        ] if refs else []
        by_naming: dict[tuple[str, str], list[str]] = {}
        for i in self._artifacts_by_id(list(dict.fromkeys(ids))):
            by_naming.setdefault(self._naming[i], []).append(i)
        out: list[list[Artifact]] = []
        for ref in refs:
            want = (ref.namespace, ref.name)
            seen = {i: self._artifacts[i] for i in by_naming.get(want, ())}
            if not seen and scan:  # a URI spelled another way
                seen = {a.id: a for a in self._scanned(want)}
            out.append(sorted(seen.values(), key=_oldest_first))
        return out

    def _scanned(self, want: tuple[str, str]) -> list[Artifact]:
        """The artifacts of dataset ``want`` (namespace, name), oldest first, from an index of
        all artifacts, built on first use (it reads the whole store once per graph)."""
        if self._index is None:
            self._index = {}
            for a in self.store.find_artifacts():
                a = self._artifacts.setdefault(a.id, a)
                naming = self._naming.setdefault(a.id, dataset_of(a))
                self._index.setdefault(naming, []).append(a)
        return sorted(self._index.get(want, []), key=_oldest_first)

    def _job_executions(self, refs: Sequence[NodeRef]) -> list[list[Execution]]:
        """Each job's latest runs: those of every (pipeline, stage) its name can split into
        that ran it (one query for all), else of the stages named the whole job name in any
        pipeline (one more read of all stages), at most :data:`MAX_RUNS_PER_JOB`."""
        stages: list[list[tuple[str, str]]] = []
        for ref in refs:
            name = ref.name
            pairs = [(name[:i], name[i + 1:]) for i, c in enumerate(name) if c == "."]
            pairs += [(name.split(".", 1)[0], name), (name, name)]
            # names too long for the store were stored cut (ingest's fit_name)
            stages.append([(fit_name(p), fit_name(s)) for p, s in dict.fromkeys(pairs)
                           if p and s])
        runs: dict[tuple[str, str], list[Execution]] = {}
        if refs:
            for e in self.store.latest_executions((p for ps in stages for p in ps),
                                                  MAX_RUNS_PER_JOB):
                runs.setdefault((e.pipeline, e.stage), []).append(e)
        # a job with a parent not named in its own name (a Spark job under an Airflow task):
        # ingest made it stage <job name> of pipeline <parent job name>
        unfound: dict[str, list[int]] = {}
        for i, ref in enumerate(refs):
            want = (ref.namespace, ref.name)
            if not any(job_of(e) == want for pair in stages[i] for e in runs.get(pair, ())):
                unfound.setdefault(fit_name(ref.name), []).append(i)
        if unfound:
            more = [(st.pipeline, st.name) for st in self.store.list_stages()
                    if st.name in unfound]
            for pipeline, stage in more:
                for i in unfound[stage]:
                    stages[i].append((pipeline, stage))
            unread = [pair for pair in more if pair not in runs]
            for e in self.store.latest_executions(unread, MAX_RUNS_PER_JOB) if unread else ():
                runs.setdefault((e.pipeline, e.stage), []).append(e)
        out: list[list[Execution]] = []
        for ref, pairs in zip(refs, stages, strict=True):
            want = (ref.namespace, ref.name)
            found = {e.id: e for pair in pairs for e in runs.get(pair, ()) if job_of(e) == want}
            out.append(sorted(found.values(), key=lambda e: (e.started_at, e.id))
                       [-MAX_RUNS_PER_JOB:])
        return out

    # expanding -------------------------------------------------------------------------------
    def _expand_all(self, nodes: Sequence[_Node]) -> None:
        """Find the neighbours of ``nodes``: one events query for all their
        artifacts and one for all their executions, then the records those events name."""
        todo = [n for n in nodes if not n.expanded]
        for n in todo:
            n.expanded = True
        for n in todo:  # static lineage: what the job's latest JobEvent declares
            if n.declared is not None:
                n.inputs |= n.declared.inputs
                n.outputs |= n.declared.outputs
            elif n.ref.type == DATASET:
                self._static()
                for job, reads in self._declaring.get(n.ref, ()):
                    (n.outputs if reads else n.inputs).add(job)
        of_artifact = {a.id: n for n in todo for a in n.artifacts}  # id -> its dataset node
        of_execution = {e.id: n for n in todo for e in n.executions}  # id -> its job node
        art_ids, exec_ids = sorted(of_artifact), sorted(of_execution)
        # a dataset's events name jobs: INPUT = the job reads it, OUTPUT = the job wrote it
        events = self.store.events(artifact_ids=art_ids) if art_ids else []
        wanted = sorted({ev.execution_id for ev in events})
        execs = {e.id: e for e in self.store.list_executions(ExecutionFilter(ids=wanted))
                 } if wanted else {}
        for ev in events:
            ex = execs.get(ev.execution_id)
            if ex is not None:
                node, job = of_artifact[ev.artifact_id], NodeRef(JOB, *job_of(ex))
                (node.outputs if ev.type is EventType.INPUT else node.inputs).add(job)
        # a job's events name datasets: INPUT = it read them, OUTPUT = it wrote them
        events = self.store.events(execution_ids=exec_ids) if exec_ids else []
        arts = self._artifacts_by_id([ev.artifact_id for ev in events])
        for ev in events:
            if ev.artifact_id in arts:
                node = of_execution[ev.execution_id]
                ds = NodeRef(DATASET, *self._naming[ev.artifact_id])
                (node.inputs if ev.type is EventType.INPUT else node.outputs).add(ds)

    def graph(self, node_id: str, depth: int = DEFAULT_DEPTH) -> dict[str, Any]:
        """Marquez's lineage response for ``node_id``: every node within ``depth`` edges.

        Breadth first, one level at a time: the level's nodes are read and expanded together
        (:meth:`_load_all`, :meth:`_expand_all`), so the queries grow with the depth, not with
        the number of nodes."""
        if depth < 0 or depth > MAX_DEPTH:
            raise InvalidInputError(f"depth {depth} must be between 0 and {MAX_DEPTH}")
        start = self.resolve(node_id)
        included: dict[NodeRef, int] = {start: 0}
        frontier, level = [start], 0
        while frontier:
            nodes = self._load_all(frontier)
            self._expand_all(nodes)  # the last level too: its edges and a job's datasets
            if level >= depth:
                break
            level += 1
            nxt: list[NodeRef] = []
            for node in nodes:
                for other in sorted(node.inputs | node.outputs):
                    if other not in included:
                        included[other] = level
                        nxt.append(other)
            frontier = nxt
        return {"graph": [self._node_json(ref, included) for ref in sorted(included,
                                                                           key=lambda r: r.id)]}

    # shapes ----------------------------------------------------------------------------------
    def _node_json(self, ref: NodeRef, included: Mapping[NodeRef, int]) -> dict[str, Any]:
        node = self._nodes[ref]  # graph() read and expanded every included node
        in_edges = [{"origin": o.id, "destination": ref.id}
                    for o in sorted(node.inputs, key=lambda r: r.id) if o in included]
        out_edges = [{"origin": ref.id, "destination": d.id}
                     for d in sorted(node.outputs, key=lambda r: r.id) if d in included]
        data = self._dataset_data(node) if ref.type == DATASET else self._job_data(node)
        return {"id": ref.id, "type": ref.type, "data": data, "inEdges": in_edges,
                "outEdges": out_edges}

    @staticmethod
    def _dataset_data(node: _Node) -> dict[str, Any]:
        ref, arts = node.ref, node.artifacts
        latest = arts[-1] if arts else None
        facets = _plain(latest.properties.get(DATASET_FACETS_PROPERTY) or {}) if latest else {}
        schema = facets.get("schema") if isinstance(facets.get("schema"), dict) else {}
        fields = [{"name": f.get("name"), "type": f.get("type"), "tags": [],
                   "description": f.get("description")}
                  for f in schema.get("fields") or [] if isinstance(f, dict)]
        created = min((a.created_at for a in arts), default=None)
        updated = max((a.created_at for a in arts), default=None)
        return {
            "id": ref.ref, "type": "DB_TABLE", "name": ref.name, "physicalName": ref.name,
            "namespace": ref.namespace, "sourceName": ref.namespace,
            "createdAt": _iso(created), "updatedAt": _iso(updated),
            "lastModifiedAt": _iso(updated), "fields": fields, "tags": [],
            "description": None, "facets": facets,
            "currentVersion": latest.id if latest else None,
            "cmf": {"artifacts": [{"id": a.id, "type": a.type, "name": a.name, "uri": a.uri,
                                   "site": a.site, "createdAt": _iso(a.created_at)}
                                  for a in arts]},
        }

    @staticmethod
    def _job_data(node: _Node) -> dict[str, Any]:
        ref, runs, declared = node.ref, node.executions, node.declared
        latest = runs[-1] if runs else None
        # a job that never ran: the pipeline and stage ingest filed its JobEvent under
        pipeline, stage = ((latest.pipeline, latest.stage) if latest is not None
                           else stage_of_job(ref.name)
                           if declared is not None else (None, None))
        parent = None
        if pipeline is not None and ref.name.startswith(pipeline + ".") and ref.name != pipeline:
            parent = pipeline
        facets = _plain(latest.properties.get(JOB_FACETS_PROPERTY) or {}) if latest else {}
        if not facets and declared is not None:
            facets = _plain(declared.facets)
        times = [t for r in runs for t in (r.started_at, r.ended_at) if t is not None]
        if declared is not None:
            times.append(declared.at)
        job_type = facets.get("jobType") if isinstance(facets.get("jobType"), dict) else {}
        return {  # Marquez's job types: BATCH, STREAM, SERVICE
            "id": ref.ref, "name": ref.name,
            "type": "STREAM" if job_type.get("processingType") == "STREAMING" else "BATCH",
            "simpleName": ref.name[len(parent) + 1:] if parent else ref.name,
            "parentJobName": parent, "namespace": ref.namespace,
            "createdAt": _iso(min(times, default=None)),
            "updatedAt": _iso(max(times, default=None)),
            "inputs": [d.ref for d in sorted(node.inputs, key=lambda r: r.id)],
            "outputs": [d.ref for d in sorted(node.outputs, key=lambda r: r.id)],
            "location": None, "description": None, "facets": facets,
            "latestRun": run_json(latest) if latest else None,
            "cmf": {"pipeline": pipeline, "stage": stage, "runs": len(runs),
                    # the eventTime of the JobEvent whose inputs and outputs are shown
                    **({"declaredAt": _iso(declared.at)} if declared is not None else {})},
        }


def run_json(e: Execution) -> dict[str, Any]:
    """A Marquez-style run of an execution (nominal times from its ``nominalTime`` facet)."""
    duration = e.duration_s
    facets = _plain(e.properties.get(RUN_FACETS_PROPERTY) or {})
    nominal = facets.get("nominalTime") if isinstance(facets.get("nominalTime"), dict) else {}
    return {
        "id": e.id, "createdAt": _iso(e.started_at),
        "updatedAt": _iso(e.ended_at or e.started_at),
        "nominalStartTime": nominal.get("nominalStartTime"),
        "nominalEndTime": nominal.get("nominalEndTime"),
        "state": _RUN_STATE[e.status], "startedAt": _iso(e.started_at),
        "endedAt": _iso(e.ended_at),
        "durationMs": None if duration is None else round(duration * 1000),
        "args": {}, "facets": facets,
    }


def _time_param(value: str | None, what: str) -> float | None:
    return parse_query_time(value, what)


def events_page(store: Store, *, before: str | None = None, after: str | None = None,
                sort_direction: str = "desc", limit: int = 100, offset: int = 0
                ) -> dict[str, Any]:
    """Marquez's ``GET /api/v1/events/lineage``: raw events by eventTime, with a total count
    (one indexed query, :meth:`Store.lineage_events_by_time`)."""
    if sort_direction not in ("asc", "desc"):
        raise InvalidInputError(f"sortDirection {sort_direction!r} must be 'asc' or 'desc'")
    events, total = store.lineage_events_by_time(
        after=_time_param(after, "after"), before=_time_param(before, "before"),
        descending=sort_direction == "desc", limit=limit, offset=offset)
    return {"events": [json.loads(ev.body) for ev in events], "totalCount": total}

"""Query object: lineage and record lookups over any :class:`~cmf_core.store.Store`.

Closures come from the store's recursive SQL; this module only shapes results (trees,
provenance reports, stage DAGs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmf_core.errors import InvalidInputError, NotFoundError
from cmf_core.identity import DIGEST_KINDS
from cmf_core.model import (
    ROLE_PROPERTY,
    Artifact,
    EnergyRecord,
    EventType,
    Execution,
    Metric,
    Pipeline,
    Stage,
    is_task_value,
)
from cmf_core.model._display import execution_line, line, short_digest, values
from cmf_core.store import ExecutionFilter, Store

if TYPE_CHECKING:
    import networkx as nx


@dataclass
class LineageNode:
    """A node of a lineage tree: an artifact, or an execution that produced/consumed one."""

    kind: str  # "artifact" | "execution"
    record: Artifact | Execution
    children: list[LineageNode] = field(default_factory=list)
    seen: bool = False  # already shown elsewhere in the tree (shared upstream)
    #: set by :func:`fold_task_values` on an execution shown in place of the task value
    #: (an artifact) it produced and its consumer read
    via: Artifact | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, children nested (built without recursion: trees may be deep)."""
        root = self._own_dict()
        stack = [(self, root)]
        while stack:
            node, out = stack.pop()
            for child in node.children:
                d = child._own_dict()
                out["children"].append(d)
                stack.append((child, d))
        return root

    def _own_dict(self) -> dict[str, Any]:
        r = self.record
        base: dict[str, Any] = {"kind": self.kind, "id": r.id}
        if isinstance(r, Artifact):
            base.update(type=r.type, name=r.name, uri=r.uri, site=r.site)
            if ROLE_PROPERTY in r.properties:
                base["role"] = r.properties[ROLE_PROPERTY]
        else:
            base.update(pipeline=r.pipeline, stage=r.stage, site=r.site, status=r.status.value,
                        params=dict(r.params))
        if self.seen:
            base["seen"] = True
        base["children"] = []
        return base

    def _line(self) -> str:
        r = self.record
        text = str(r)
        if self.via is not None:
            text = f"via task result: {text}"
        return text + (" (see above)" if self.seen else "")

    def __str__(self) -> str:
        """The tree as indented lines, each node's summary (at most ``TREE_LINES`` lines)."""
        out: list[str] = []
        stack = [(self, 0)]
        while stack and len(out) < TREE_LINES:
            node, depth = stack.pop()
            out.append(("    " * (depth - 1) + "<-- " if depth else "") + node._line())
            stack += [(c, depth + 1) for c in reversed(node.children)]
        if stack:
            more = sum(sum(level_sizes(n)) for n, _ in stack)
            out.append(f"... {more} more nodes (Query.lineage_tree(..., max_depth=N) shows "
                       "fewer steps; cmf lineage draws all)")
        return "\n".join(out)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


#: lines ``str()`` of a lineage tree shows
TREE_LINES = 200


def level_sizes(root: LineageNode) -> list[int]:
    """The nodes of the tree of ``root`` per step up (what ``max_depth`` counts): ``[0]`` is
    ``root``, ``[k]`` the executions ``k`` steps up and the inputs they read."""
    sizes: list[int] = []
    stack = [(root, 0)]
    while stack:
        node, level = stack.pop()
        level += node.kind == "execution"
        if level == len(sizes):
            sizes.append(0)
        sizes[level] += 1
        stack += [(child, level) for child in node.children]
    return sizes


def fold_task_values(root: LineageNode) -> tuple[LineageNode, int]:
    """A copy of the tree of ``root`` for display, with every task value (an artifact that
    :func:`~cmf_core.model.is_task_value`: a value passed between tasks in memory) an input of
    an execution replaced by the executions that produced it, each marked ``via`` it; and how
    many task values it folded. A task value whose producer is not in the tree (beyond
    ``max_depth``, or never recorded) stays. Built without recursion (trees may be deep)."""
    producers: dict[str, list[LineageNode]] = {}
    stack = [root]
    while stack:
        n = stack.pop()
        if isinstance(n.record, Artifact) and not n.seen and is_task_value(n.record):
            producers[n.record.id] = n.children
        stack += n.children
    folded: set[str] = set()
    top = LineageNode(root.kind, root.record, seen=root.seen, via=root.via)
    pairs = [(root, top)]
    while pairs:
        old, new = pairs.pop()
        for child in old.children:
            art = child.record
            if old.kind == "execution" and isinstance(art, Artifact) and producers.get(art.id):
                folded.add(art.id)
                for e in producers[art.id]:  # a task value shown again: producers shown above
                    seen = e.seen or child.seen
                    copy = LineageNode(e.kind, e.record, seen=seen, via=art)
                    new.children.append(copy)
                    if not seen:
                        pairs.append((e, copy))
                continue
            copy = LineageNode(child.kind, child.record, seen=child.seen, via=child.via)
            new.children.append(copy)
            pairs.append((child, copy))
    return top, len(folded)


@dataclass
class Provenance:
    """Everything upstream of an artifact."""

    artifact: Artifact
    executions: list[Execution]
    inputs: list[Artifact]
    metrics: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": _artifact_dict(self.artifact),
            "executions": [_execution_dict(e) for e in self.executions],
            "inputs": [_artifact_dict(a) for a in self.inputs],
            "metrics": self.metrics,
        }

    def runs(self) -> list[dict[str, Any]]:
        """The upstream executions as rows (:func:`run_rows`: parameters and metrics as
        ``params.<name>`` and ``metrics.<name>`` columns)."""
        return run_rows(self.executions, self.metrics)

    def to_dataframe(self) -> Any:
        """:meth:`runs` as a pandas DataFrame (pandas must be installed)."""
        return runs_frame(self.runs())

    def __str__(self) -> str:
        n, m = len(self.executions), len(self.inputs)
        out = [f"Provenance of {self.artifact}",
               f"  {n} upstream execution{'s' * (n != 1)}:"]
        for e in self.executions:
            metrics = self.metrics.get(e.id)
            out.append(f"    {execution_line(e).removeprefix('Execution ')}"
                       + (f" metrics: {values(metrics)}" if metrics else ""))
        out.append(f"  {m} input{'s' * (m != 1)}:")
        out += [f"    {str(a).removeprefix('Artifact ')}" for a in self.inputs]
        return "\n".join(out)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        """Tables of the upstream executions (status, parameters, metrics) and inputs."""
        from html import escape

        a = self.artifact
        rows = []
        for e in self.executions:
            rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in (
                f"{e.pipeline}/{e.stage}", e.id, e.status.value,
                values(e.params, shown=len(e.params)),
                values(self.metrics.get(e.id, {}), shown=len(self.metrics.get(e.id, {}))),
                line(e.error) if e.error else "")) + "</tr>")
        inputs = ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in (
            i.type, i.name, short_digest(i.id), i.site, i.uri)) + "</tr>" for i in self.inputs]
        head = "".join(f"<th>{h}</th>" for h in ("stage", "execution", "status", "params",
                                                  "metrics", "error"))
        ihead = "".join(f"<th>{h}</th>" for h in ("type", "name", "digest", "site", "uri"))
        return (f"<div><b>Provenance of {escape(a.type)} {escape(a.name)}</b> "
                f"<code>{escape(short_digest(a.id))}</code> @{escape(a.site)} "
                f"({escape(a.uri)})"
                f"<p>{len(self.executions)} upstream execution(s)</p>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
                f"<p>{len(self.inputs)} input(s)</p>"
                f"<table><thead><tr>{ihead}</tr></thead><tbody>{''.join(inputs)}</tbody>"
                "</table></div>")


#: the fixed columns of :func:`run_rows`, in order
_RUN_COLUMNS = ("id", "pipeline", "stage", "site", "status", "started_at", "ended_at",
                "duration_s", "error")


def run_rows(executions: list[Execution], metrics: dict[str, dict[str, float]]
             ) -> list[dict[str, Any]]:
    """One flat dict per execution, as MLflow's ``search_runs`` gives a run: ``id``,
    ``pipeline``, ``stage``, ``site``, ``status``, ``started_at``, ``ended_at`` (Unix seconds),
    ``duration_s``, ``error``, then ``params.<name>`` for each parameter and ``metrics.<name>``
    for each metric in ``metrics`` (execution id -> name -> value)."""
    rows = []
    for e in executions:
        row: dict[str, Any] = dict(zip(_RUN_COLUMNS, (
            e.id, e.pipeline, e.stage, e.site, e.status.value, e.started_at, e.ended_at,
            e.duration_s, e.error), strict=True))
        row.update((f"params.{k}", v) for k, v in e.params.items())
        row.update((f"metrics.{k}", v) for k, v in metrics.get(e.id, {}).items())
        rows.append(row)
    return rows


def runs_frame(rows: list[dict[str, Any]]) -> Any:
    """``rows`` of :func:`run_rows` as a pandas DataFrame, ``started_at`` and ``ended_at`` as
    UTC datetimes. pandas is not a dependency of CMF: an error says so when it is missing."""
    try:
        import pandas as pd
    except ImportError:
        raise InvalidInputError(
            "a DataFrame needs pandas, which is not installed (pip install pandas); "
            "runs() gives the same rows as a list of dicts") from None
    frame = pd.DataFrame.from_records(rows, columns=_columns(rows))
    for col in ("started_at", "ended_at"):
        frame[col] = pd.to_datetime(frame[col], unit="s", utc=True)
    return frame


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """The columns of ``rows``: the fixed ones, then parameters, then metrics, each sorted."""
    extra = {k for r in rows for k in r} - set(_RUN_COLUMNS)
    return [*_RUN_COLUMNS, *sorted(k for k in extra if k.startswith("params.")),
            *sorted(k for k in extra if not k.startswith("params."))]


def _check_ref(value: Any, what: str) -> None:
    """InvalidInputError naming ``what`` unless ``value`` is a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be a non-empty string, got {value!r}")


def _artifact_dict(a: Artifact) -> dict[str, Any]:
    return {"id": a.id, "type": a.type, "name": a.name, "uri": a.uri, "site": a.site,
            "created_at": a.created_at, "properties": dict(a.properties),
            "custom_properties": dict(a.custom_properties)}


def _execution_dict(e: Execution) -> dict[str, Any]:
    return {"id": e.id, "pipeline": e.pipeline, "stage": e.stage, "site": e.site,
            "status": e.status.value, "started_at": e.started_at, "ended_at": e.ended_at,
            "params": dict(e.params), "properties": dict(e.properties),
            "custom_properties": dict(e.custom_properties), "error": e.error}


artifact_dict = _artifact_dict
execution_dict = _execution_dict

#: the fewest characters of an id or digest that look it up (as git's abbreviations)
MIN_PREFIX = 4
#: candidates an ambiguous reference's error names
CANDIDATES = 10
_UUID_PREFIX = re.compile(r"^[0-9a-f][0-9a-f-]{0,35}$")
_HEX = frozenset("0123456789abcdef")


def digest_prefixes(ref: str) -> list[str]:
    """The id prefixes an artifact reference stands for: ``sha256:89ab`` itself, ``89ab`` with
    each digest kind; none when it is not hex or shorter than ``MIN_PREFIX``."""
    kind, sep, hexpart = ref.strip().lower().rpartition(":")
    if (len(hexpart) < MIN_PREFIX or not _HEX.issuperset(hexpart)
            or (sep and kind not in DIGEST_KINDS)):
        return []
    return [f"{k}:{hexpart}" for k in ((kind,) if sep else DIGEST_KINDS)]


def prefix_hint(ref: str) -> str:
    """For a reference that found nothing: a note when it is too short to be a prefix."""
    hexpart = ref.strip().lower().rpartition(":")[2].replace("-", "")
    if hexpart and len(hexpart) < MIN_PREFIX and _HEX.issuperset(hexpart):
        return f" (a prefix of an id or digest needs at least {MIN_PREFIX} hex characters)"
    return ""


def ambiguous(ref: str, executions: list[Execution], artifacts: list[Artifact]) -> str:
    """The error of a reference that more than one execution or artifact answers."""
    twice = len({a.name for a in artifacts}) < len(artifacts)  # then the site tells them apart
    names = ([f"execution {e.id} ({e.pipeline}/{e.stage})" for e in executions]
             + [f"artifact {a.id} ({a.name}{f', site {a.site}' if twice else ''})"
                for a in artifacts])
    more = (len(names) > CANDIDATES or len(executions) > CANDIDATES
            or len(artifacts) > CANDIDATES)
    listed = "; ".join(names[:CANDIDATES]) + ("; and more" if more else "")
    if twice:  # one name at several sites: the name says no more, a digest does
        return f"{ref!r} is ambiguous: it matches {listed}; give the digest (or a prefix of it)"
    return (f"{ref!r} is ambiguous: it matches {listed}; give more of the id "
            "or digest, or the whole name")


class Query:
    """Read-side API: ``Query(store).provenance(artifact_id)`` and friends."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"Query(store={getattr(self.store, 'safe_url', type(self.store).__name__)!r})"

    # lookups ---------------------------------------------------------------------------------
    def pipelines(self) -> list[Pipeline]:
        return self.store.list_pipelines()

    def stages(self, pipeline: str | None = None) -> list[Stage]:
        return self.store.list_stages(pipeline)

    def executions(self, pipeline: str | None = None, stage: str | None = None,
                   site: str | None = None, status: str | None = None,
                   since: float | None = None, until: float | None = None,
                   limit: int | None = None, offset: int = 0) -> list[Execution]:
        where = ExecutionFilter(pipeline=pipeline, stage=stage, site=site, status=status,
                                since=since, until=until)
        return self.store.list_executions(where, limit=limit, offset=offset)

    def artifacts(self, type: str | None = None, name: str | None = None,
                  digest: str | None = None, pipeline: str | None = None,
                  site: str | None = None, limit: int | None = None,
                  offset: int = 0) -> list[Artifact]:
        return self.store.find_artifacts(type=type, name=name, pipeline=pipeline, site=site,
                                         ids=[digest] if digest else None, limit=limit,
                                         offset=offset)

    def metrics(self, execution_ids: list[str]) -> list[Metric]:
        return self.store.metrics(execution_ids)

    def runs(self, pipeline: str | None = None, stage: str | None = None,
             site: str | None = None, status: str | None = None, since: float | None = None,
             until: float | None = None, limit: int | None = None,
             offset: int = 0) -> list[dict[str, Any]]:
        """The executions :meth:`executions` finds, each a flat dict (:func:`run_rows`) with
        its parameters (``params.<name>``) and metrics (``metrics.<name>``: a scalar metric's
        value, a stepped metric's value at its last step), as MLflow's ``search_runs`` gives
        them: to compare runs side by side."""
        execs = self.executions(pipeline, stage, site, status, since, until, limit, offset)
        latest: dict[str, dict[str, tuple[float, float]]] = {}
        for m in self.store.metrics([e.id for e in execs]) if execs else []:
            rank = float("inf") if m.step is None else m.step  # a scalar is the final value
            seen = latest.setdefault(m.execution_id, {}).get(m.name)
            if seen is None or rank >= seen[0]:
                latest[m.execution_id][m.name] = (rank, m.value)
        return run_rows(execs, {eid: {k: v for k, (_, v) in named.items()}
                                for eid, named in latest.items()})

    def runs_frame(self, pipeline: str | None = None, stage: str | None = None,
                   site: str | None = None, status: str | None = None,
                   since: float | None = None, until: float | None = None,
                   limit: int | None = None, offset: int = 0) -> Any:
        """:meth:`runs` as a pandas DataFrame (pandas must be installed; CMF does not need
        it): one row per execution, ``started_at``/``ended_at`` as UTC datetimes."""
        return runs_frame(self.runs(pipeline, stage, site, status, since, until, limit,
                                    offset))

    def energy(self, execution_ids: list[str] | None = None) -> list[EnergyRecord]:
        return self.store.energy(execution_ids)

    def resolve_artifact(self, ref: str) -> Artifact:
        """An artifact by digest, unique digest prefix (at least ``MIN_PREFIX`` hex characters,
        with or without ``sha256:``), exact name (the latest artifact of that name; this
        site's latest when other sites recorded one of that name too), the last part of a
        recorded path name (``model.pkl`` for ``/tmp/run/model.pkl``), or a
        location it was recorded at, whole or its last parts (``data/copy.csv``: the latest
        artifact recorded there, also when its content was first recorded under another
        name)."""
        _check_ref(ref, "artifact reference")
        found, exact = self.artifact_matches(ref)
        if exact or len(found) == 1:
            return found[0]
        if found:
            raise InvalidInputError(ambiguous(ref, [], found))
        raise NotFoundError(f"no artifact with digest, name or location {ref!r}"
                            + prefix_hint(ref))

    def artifact_matches(self, ref: str) -> tuple[list[Artifact], bool]:
        """The artifacts ``ref`` may name, and whether it names one exactly (by digest, or by
        name: see :meth:`_latest_named`). Else those whose digest starts with it (at most
        ``CANDIDATES`` + 1 of a kind), else the latest artifact of each path name whose last
        part it is, else the latest artifact recorded at each location that is ``ref`` or ends
        in ``/ref``."""
        art = self.store.get_artifact(ref)
        if art:
            return [art], True
        by_name = self.store.find_artifacts(name=ref)
        if by_name:
            return self._latest_named(by_name)
        found = self.digest_prefix_matches(ref)
        if found:
            return found, False
        if not ref:
            return [], False
        if "/" not in ref:
            latest = {a.name: a for a in self.store.artifacts_by_basename(ref,
                                                                          CANDIDATES * 10)}
            if latest:
                return sorted(latest.values(), key=lambda a: a.name), False
        return self.store.artifacts_at(ref, CANDIDATES + 1), False

    def _latest_named(self, found: list[Artifact]) -> tuple[list[Artifact], bool]:
        """The latest of the artifacts of one name (``found``, oldest first), by the clock of
        the site that recorded them: two sites' clocks are not comparable (a site whose clock
        is hours behind would never have the latest, however recent its run), so among the
        artifacts of several sites it is this store's site's latest; when this site has none,
        the latest of each site, for the caller to choose from."""
        latest = {a.site: a for a in found}  # oldest first: the last of each site stays
        if len(latest) == 1:
            return [found[-1]], True
        here = latest.get(getattr(self.store, "site", None))  # type: ignore[arg-type]
        if here is not None:
            return [here], True
        return [latest[s] for s in sorted(latest)], False

    def digest_prefix_matches(self, ref: str) -> list[Artifact]:
        """The artifacts whose digest starts with ``ref`` (at least ``MIN_PREFIX`` hex
        characters, with or without ``sha256:``; at most ``CANDIDATES`` + 1 of a kind)."""
        ids = [i for p in digest_prefixes(ref)
               for i in self.store.ids_with_prefix("artifact", p, CANDIDATES + 1)]
        return self.store.find_artifacts(ids=ids) if ids else []

    def execution_matches(self, ref: str) -> list[Execution]:
        """The execution with id ``ref``, else those whose id starts with it (at least
        ``MIN_PREFIX`` characters; at most ``CANDIDATES`` + 1)."""
        key = ref.strip().lower()
        if not _UUID_PREFIX.match(key):
            return []
        if len(key) == 36:
            ex = self.store.get_execution(key)
            return [ex] if ex else []
        if len(key.replace("-", "")) < MIN_PREFIX:
            return []
        ids = self.store.ids_with_prefix("execution", key, CANDIDATES + 1)
        return self.store.list_executions(ExecutionFilter(ids=ids)) if ids else []

    def execution(self, ref: str) -> Execution:
        """An execution by id or unique id prefix (at least ``MIN_PREFIX`` characters)."""
        _check_ref(ref, "execution id")
        found = self.execution_matches(ref)
        if len(found) == 1:
            return found[0]
        if found:
            raise InvalidInputError(ambiguous(ref, found, []))
        raise NotFoundError(f"no execution with id {ref!r}" + prefix_hint(ref))

    # one hop ---------------------------------------------------------------------------------
    def producers(self, artifact_id: str) -> list[Execution]:
        _check_ref(artifact_id, "artifact id")
        ids = [e.execution_id for e in self.store.events(artifact_ids=[artifact_id])
               if e.type is EventType.OUTPUT]
        return self.store.list_executions(ExecutionFilter(ids=ids)) if ids else []

    def consumers(self, artifact_id: str) -> list[Execution]:
        _check_ref(artifact_id, "artifact id")
        ids = [e.execution_id for e in self.store.events(artifact_ids=[artifact_id])
               if e.type is EventType.INPUT]
        return self.store.list_executions(ExecutionFilter(ids=ids)) if ids else []

    def parents(self, artifact_id: str) -> list[Artifact]:
        """Artifacts one hop upstream (inputs of the executions that produced it)."""
        _check_ref(artifact_id, "artifact id")
        closure = self.store.upstream(artifact_id, max_depth=1)
        ids = sorted(closure.artifacts - {artifact_id})
        return self.store.find_artifacts(ids=ids) if ids else []

    def children(self, artifact_id: str) -> list[Artifact]:
        _check_ref(artifact_id, "artifact id")
        closure = self.store.downstream(artifact_id, max_depth=1)
        ids = sorted(closure.artifacts - {artifact_id})
        return self.store.find_artifacts(ids=ids) if ids else []

    # transitive ------------------------------------------------------------------------------
    def ancestors(self, artifact_id: str, max_depth: int | None = None) -> list[Artifact]:
        _check_ref(artifact_id, "artifact id")
        closure = self.store.upstream(artifact_id, max_depth)
        ids = sorted(closure.artifacts - {artifact_id})
        return self.store.find_artifacts(ids=ids) if ids else []

    def descendants(self, artifact_id: str, max_depth: int | None = None) -> list[Artifact]:
        _check_ref(artifact_id, "artifact id")
        closure = self.store.downstream(artifact_id, max_depth)
        ids = sorted(closure.artifacts - {artifact_id})
        return self.store.find_artifacts(ids=ids) if ids else []

    def provenance(self, artifact_ref: str) -> Provenance:
        """All upstream executions (with parameters and metrics) and all input artifacts."""
        art = self.resolve_artifact(artifact_ref)
        closure = self.store.upstream(art.id)
        execs = (self.store.list_executions(ExecutionFilter(ids=sorted(closure.executions)))
                 if closure.executions else [])
        ids = sorted(closure.artifacts - {art.id})
        inputs = self.store.find_artifacts(ids=ids) if ids else []
        metrics: dict[str, dict[str, float]] = {}
        for m in self.store.metrics([e.id for e in execs]) if execs else []:
            if m.step is None:
                metrics.setdefault(m.execution_id, {})[m.name] = m.value
        return Provenance(artifact=art, executions=execs, inputs=inputs, metrics=metrics)

    def lineage_tree(self, artifact_ref: str, max_depth: int | None = None) -> LineageNode:
        """Upstream tree: artifact <- producing execution <- its inputs <- ..."""
        return self._lineage_tree(self.resolve_artifact(artifact_ref), max_depth)

    def lineage_tree_within(self, artifact_ref: str,
                            max_nodes: int) -> tuple[LineageNode, int | None]:
        """The upstream tree of an artifact, whole when it has at most ``max_nodes`` nodes
        (``None`` second); else the tree of the most steps (``max_depth``, at least 1) that
        keeps within ``max_nodes``, and that number of steps. The store is read a few steps at
        a time (2, 4, 8, ... deep), so a history of thousands of steps is never read whole."""
        art = self.resolve_artifact(artifact_ref)
        depth = 2
        while True:
            tree = self._lineage_tree(art, depth)
            sizes = level_sizes(tree)
            if sum(sizes) > max_nodes:
                fit, total = 1, sizes[0] + sizes[1]
                for k in range(2, len(sizes)):
                    total += sizes[k]
                    if total > max_nodes:
                        break
                    fit = k
                if fit >= len(sizes) - 1:  # one step, wide, and nothing beyond: all of it
                    return tree, None
                return self._lineage_tree(art, fit), fit
            if len(sizes) <= depth:  # nothing ``depth`` steps up: this is all of it
                return tree, None
            depth *= 2

    def _lineage_tree(self, art: Artifact, max_depth: int | None) -> LineageNode:
        closure = self.store.upstream(art.id, max_depth)
        arts = {a.id: a for a in self.store.find_artifacts(ids=sorted(closure.artifacts))}
        execs = {e.id: e for e in self.store.list_executions(
            ExecutionFilter(ids=sorted(closure.executions)))} if closure.executions else {}
        events = self.store.events(execution_ids=sorted(execs)) if execs else []
        produced_by: dict[str, list[str]] = {}
        inputs_of: dict[str, list[str]] = {}
        for ev in events:
            if ev.type is EventType.OUTPUT:
                produced_by.setdefault(ev.artifact_id, []).append(ev.execution_id)
            elif ev.artifact_id in arts:
                inputs_of.setdefault(ev.execution_id, []).append(ev.artifact_id)
        shown: set[str] = set()

        # Depth first with an explicit stack, not recursion: a chain of a thousand steps is
        # an ordinary pipeline history and must not hit Python's recursion limit.
        def artifact_node(aid: str) -> LineageNode:
            node = LineageNode("artifact", arts[aid], seen=aid in shown)
            shown.add(aid)
            return node

        def expand(node: LineageNode) -> Iterator[tuple[LineageNode, str]]:
            """Add ``node``'s producing executions; yield (execution node, input id) pairs,
            each of which the caller builds completely before asking for the next."""
            aid = node.record.id
            for eid in sorted(produced_by.get(aid, []), key=lambda i: execs[i].started_at
                              if i in execs else 0):
                if eid not in execs:
                    continue
                enode = LineageNode("execution", execs[eid], seen=eid in shown)
                node.children.append(enode)
                if enode.seen:
                    continue
                shown.add(eid)
                for i in sorted(inputs_of.get(eid, [])):
                    if i != aid:
                        yield enode, i

        root = artifact_node(art.id)
        stack = [expand(root)]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                continue
            enode, aid = step
            child = artifact_node(aid)
            enode.children.append(child)
            if not child.seen:
                stack.append(expand(child))
        return root

    def stage_dag(self, pipeline: str) -> nx.DiGraph:
        """Stages as nodes; an edge when one stage's output is read by another."""
        if self.store.get_pipeline(pipeline) is None:
            raise NotFoundError(f"no pipeline named {pipeline!r}")
        import networkx as nx  # here, not at import: it takes half a second to load

        g = nx.DiGraph()
        for s in self.store.list_stages(pipeline):
            g.add_node(s.name)
        g.add_edges_from(self.store.stage_edges(pipeline))
        return g

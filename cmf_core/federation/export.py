"""Export: a chosen subset of the store as a bundle (:mod:`cmf_core.federation.bundle`).

Selectors (:class:`Selector`):

* the whole store, or only what changed after a store seq (``since_seq``): every record kind,
  parents before children within each page;
* one or more pipelines (``pipelines``): their pipeline and stage rows, executions, events,
  metrics and energy, and every artifact (with its locations) those executions read or wrote;
* executions in a time window (``since_time`` and/or ``until_time``, Unix seconds): executions
  that started at or after the one and before the other, with their events, metrics, energy,
  artifacts, locations, pipeline and stage rows;
* the provenance closure of one artifact (``artifact``): the artifact and everything upstream
  of it (the executions that produced it, their inputs, and so on), with the same related rows.

The first two are "change" selectors: they page through the store's seq order, so a bundle says
which seq range it covers, and sync uses them incrementally. The last two pick a set of
executions at one moment.

Record lines are produced straight from the store's rows (no record objects), in exactly the
canonical form ``jsonutil.dumps({**record_to_dict(r), "_v": [origin, origin_seq]})`` that
:func:`record_line` gives for a record.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cmf_core import jsonutil
from cmf_core.errors import InvalidInputError, NotFoundError
from cmf_core.federation.bundle import COMPACT, FORMAT, FORMATS, Header, bulk, bundle_bytes
from cmf_core.federation.wire import block_lines
from cmf_core.model import Record
from cmf_core.records import record_to_dict
from cmf_core.store import ExecutionFilter, Store
from cmf_core.store.base import EXPORT_FIELDS, ExportPage

DEFAULT_PAGE = 50_000  # rows per record kind in one page (one import transaction each)
VERSION_KEY = "_v"


@dataclass(frozen=True)
class Selector:
    """Which records a bundle holds; see the module docs. Empty: the whole store."""

    pipelines: tuple[str, ...] | None = None
    since_seq: int = 0
    since_time: float | None = None
    artifact: str | None = None
    until_time: float | None = None

    def __post_init__(self) -> None:
        if self.artifact is not None and not self._no_times:
            raise InvalidInputError("choose one of an artifact closure and a time window "
                                    "(since/until), not both")
        if self.since_seq < 0:
            raise InvalidInputError(f"since seq {self.since_seq} must be >= 0")
        if self.since_seq and not self.is_changes:  # it would be ignored: say so
            raise InvalidInputError("a seq (changes since it) does not combine with a time "
                                    "window (since/until) or an artifact closure: choose one")
        if self.pipelines is not None:
            object.__setattr__(self, "pipelines", tuple(sorted(set(self.pipelines))))

    @property
    def _no_times(self) -> bool:
        return self.since_time is None and self.until_time is None

    @property
    def is_changes(self) -> bool:
        """True for the seq-paged selectors (whole store, pipelines, since a seq)."""
        return self.artifact is None and self._no_times

    @property
    def key(self) -> str:
        """The scope of high-water marks: ``all`` or ``pipelines=a,b``."""
        if not self.is_changes:
            raise InvalidInputError("only change selectors have a sync scope")
        return "all" if self.pipelines is None else "pipelines=" + ",".join(self.pipelines)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.pipelines is not None:
            out["pipelines"] = list(self.pipelines)
        if not self._no_times:  # the key even when None: a reader that does not know
            out["since_time"] = self.since_time  # until_time still sees a one-off subset
        if self.until_time is not None:
            out["until_time"] = self.until_time
        if self.artifact is not None:
            out["artifact"] = self.artifact
        return out

    def restricted_to(self, allowed: Sequence[str] | None) -> Selector:
        """This selector within a sharing allow-list (``None``: everything may be shared)."""
        if allowed is None:
            return self
        keep = tuple(sorted(set(allowed) if self.pipelines is None
                            else set(self.pipelines) & set(allowed)))
        return Selector(pipelines=keep, since_seq=self.since_seq, since_time=self.since_time,
                        artifact=self.artifact, until_time=self.until_time)


# canonical record lines from store rows --------------------------------------------------------
_s = json.encoder.encode_basestring  # type: ignore[attr-defined]  # the C string encoder


def _num(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, float):
        return repr(x) if math.isfinite(x) else _s(str(x))
    return str(int(x))


def _str(x: Any) -> str:
    return "null" if x is None else _s(x)


def _obj(text: Any) -> str:
    """A stored JSON column: canonical text already (re-encoded if it is not)."""
    if not text:
        return "{}"
    if isinstance(text, str) and text[0] == "{":
        return text
    return jsonutil.dumps(jsonutil.loads(text))


def _v(row: tuple[Any, ...]) -> str:
    return f'{{"_v":[{_s(row[-3])},{int(row[-2])}],'


def _pipeline(r: tuple[Any, ...]) -> str:
    return (f'{_v(r)}"created_at":{_num(r[2])},"custom_properties":{_obj(r[4])},'
            f'"kind":"pipeline","name":{_s(r[0])},"properties":{_obj(r[3])},"site":{_s(r[1])}}}')


def _stage(r: tuple[Any, ...]) -> str:
    return (f'{_v(r)}"created_at":{_num(r[3])},"custom_properties":{_obj(r[5])},'
            f'"kind":"stage","name":{_s(r[1])},"pipeline":{_s(r[0])},'
            f'"properties":{_obj(r[4])},"site":{_s(r[2])}}}')


def _artifact(r: tuple[Any, ...]) -> str:
    return (f'{_v(r)}"created_at":{_num(r[5])},"custom_properties":{_obj(r[7])},'
            f'"id":{_s(r[0])},"kind":"artifact","name":{_s(r[2])},"properties":{_obj(r[6])},'
            f'"site":{_s(r[4])},"type":{_s(r[1])},"uri":{_s(r[3])}}}')


def _location(r: tuple[Any, ...]) -> str:
    return (f'{_v(r)}"artifact_id":{_s(r[0])},"kind":"location","site":{_s(r[1])},'
            f'"uri":{_s(r[2])}}}')


def _execution(r: tuple[Any, ...]) -> str:
    return (f'{_v(r)}"custom_properties":{_obj(r[9])},"ended_at":{_num(r[6])},'
            f'"error":{_str(r[10])},"id":{_s(r[0])},"kind":"execution","params":{_obj(r[7])},'
            f'"pipeline":{_s(r[1])},"properties":{_obj(r[8])},"site":{_s(r[3])},'
            f'"stage":{_s(r[2])},"started_at":{_num(r[5])},"status":{_s(r[4])}}}')


def _event(r: tuple[Any, ...]) -> str:
    return (f'{_v(r)}"artifact_id":{_s(r[1])},"execution_id":{_s(r[0])},"kind":"event",'
            f'"type":{_s(r[2])}}}')


def _metric(r: tuple[Any, ...]) -> str:
    return (f'{_v(r)}"execution_id":{_s(r[0])},"kind":"metric","name":{_s(r[1])},'
            f'"step":{_num(r[2])},"timestamp":{_num(r[4])},"value":{_num(r[3])}}}')


def _energy(r: tuple[Any, ...]) -> str:
    return (f'{_v(r)}"co2e_kg":{_num(r[3])},"details":{_obj(r[4])},'
            f'"energy_kwh":{_num(r[2])},"execution_id":{_s(r[0])},"kind":"energy",'
            f'"site":{_s(r[1])}}}')


FORMATTERS: dict[str, Callable[[tuple[Any, ...]], str]] = {
    "pipeline": _pipeline, "stage": _stage, "artifact": _artifact, "location": _location,
    "execution": _execution, "event": _event, "metric": _metric, "energy": _energy,
}
assert set(FORMATTERS) == set(EXPORT_FIELDS)


def record_line(record: Record, origin: str, origin_seq: int) -> str:
    """The canonical bundle line of a record (the reference the fast formatters match)."""
    return jsonutil.dumps({**record_to_dict(record), VERSION_KEY: [origin, origin_seq]})


def page_lines(page: ExportPage) -> Iterator[str]:
    for kind in EXPORT_FIELDS:
        fmt = FORMATTERS[kind]
        for row in page.rows.get(kind, ()):
            yield fmt(row)


def page_blocks(page: ExportPage) -> Iterator[tuple[str, int]]:
    """Format-2 record lines of a page, with the number of records in each."""
    for kind in EXPORT_FIELDS:
        yield from block_lines(kind, page.rows.get(kind, ()))


def _page_items(page: ExportPage, fmt: int) -> Iterator[str | tuple[str, int]]:
    return page_blocks(page) if fmt == COMPACT else page_lines(page)


def check_format(fmt: int) -> int:
    if fmt not in FORMATS:
        raise InvalidInputError(f"bundle format {fmt!r} must be one of "
                                f"{', '.join(map(str, FORMATS))}")
    return fmt


# the store's version vector ---------------------------------------------------------------------
VECTOR_KEY = "federation:vector"


def load_vector(store: Store) -> dict[str, int]:
    """What this store holds, by origin store: {origin: n} (itself: its current seq)."""
    raw = store.get_state(VECTOR_KEY)
    vector = {str(k): int(v) for k, v in (json.loads(raw) if raw else {}).items()}
    vector[store.store_id] = store.max_seq()
    return vector


# exporting ----------------------------------------------------------------------------------------
@dataclass
class ExportResult:
    records: int = 0
    bytes: int = 0
    since: int = 0
    end: int = 0
    snapshot: int = 0  # the store's seq counter when the export read it
    complete: bool = True


def header_for(store: Store, selector: Selector, *, since: int, snapshot: int,
               exclude: dict[str, int] | None, vector: dict[str, int] | None,
               fmt: int = FORMAT) -> Header:
    columns = ({k: list(v) for k, v in EXPORT_FIELDS.items()} if check_format(fmt) == COMPACT
               else None)
    return Header(origin_site=store.site, origin_store=store.store_id,
                  selector=selector.to_dict(), since=since, snapshot=snapshot,
                  exclude=exclude or None, vector=vector, created_at=round(time.time(), 3),
                  format=fmt, columns=columns)


def page_bundle(store: Store, selector: Selector, *, since: int | None = None,
                limit: int | None = DEFAULT_PAGE, exclude: dict[str, int] | None = None,
                compress: bool = False, fmt: int = FORMAT
                ) -> tuple[ExportPage, Iterator[bytes]]:
    """One page of a change selector as a complete bundle (what a sync request gets), in
    bundle format ``fmt``."""
    if not selector.is_changes:
        raise InvalidInputError("a paged bundle needs a change selector (whole store, pipelines "
                                "or since a seq)")
    since = selector.since_seq if since is None else since
    vector = load_vector(store) if selector.pipelines is None else None
    with bulk():
        page = store.export_page(since, limit, pipelines=selector.pipelines, vector=exclude)
    if vector is not None:
        vector[store.store_id] = min(vector[store.store_id], page.snapshot)
    header = header_for(store, selector, since=since, snapshot=page.snapshot, exclude=exclude,
                        vector=vector if not page.more else None, fmt=fmt)
    return page, bundle_bytes(header, _page_items(page, fmt), page.end, not page.more, compress)


def export_bundle(store: Store, selector: Selector, *, compress: bool = False,
                  exclude: dict[str, int] | None = None, page_size: int = DEFAULT_PAGE,
                  result: ExportResult | None = None, fmt: int = FORMAT) -> Iterator[bytes]:
    """The whole selection as one bundle in format ``fmt``, streamed page by page (bounded
    memory)."""
    res = result if result is not None else ExportResult()
    if selector.is_changes:
        vector = load_vector(store) if selector.pipelines is None else None
        with bulk():
            first = store.export_page(selector.since_seq, page_size,
                                      pipelines=selector.pipelines, vector=exclude)
        header = header_for(store, selector, since=selector.since_seq,
                            snapshot=first.snapshot, exclude=exclude, vector=vector, fmt=fmt)

        def lines() -> Iterator[str | tuple[str, int]]:
            page = first
            while True:
                for line in _page_items(page, fmt):
                    res.records += line[1] if type(line) is tuple else 1
                    yield line
                res.end = page.end
                if not page.more:
                    return
                with bulk():
                    page = store.export_page(page.end, page_size,
                                             pipelines=selector.pipelines, vector=exclude)

        res.since, res.snapshot = selector.since_seq, first.snapshot
        chunks = bundle_bytes(header, lines(), lambda: res.end, True, compress)
    else:
        page = related_page(store, selector)
        header = header_for(store, selector, since=0, snapshot=page.snapshot, exclude=None,
                            vector=None, fmt=fmt)
        res.end, res.snapshot = page.end, page.snapshot
        res.records = len(page)
        chunks = bundle_bytes(header, _page_items(page, fmt), page.end, True, compress)
    for chunk in chunks:
        res.bytes += len(chunk)
        yield chunk


def related_page(store: Store, selector: Selector) -> ExportPage:
    """The rows of a time or closure selector (restricted to ``selector.pipelines`` if set)."""
    artifacts: list[str] = []
    if selector.artifact is not None:
        if store.get_artifact(selector.artifact) is None:
            raise NotFoundError(f"no artifact {selector.artifact!r} in this store; give an "
                                "artifact digest (cmf artifacts lists them)")
        closure = store.upstream(selector.artifact)
        executions = sorted(closure.executions)
        artifacts = sorted(closure.artifacts)
        if selector.pipelines is not None:  # only what may be shared
            allowed = set(selector.pipelines)
            executions = [e.id for i in range(0, len(executions), 500)
                          for e in store.list_executions(ExecutionFilter(
                              ids=executions[i:i + 500])) if e.pipeline in allowed]
            artifacts = []
    else:
        executions = [e.id for p in (selector.pipelines or (None,))
                      for e in store.list_executions(ExecutionFilter(since=selector.since_time,
                                                                     until=selector.until_time,
                                                                     pipeline=p))]
    return store.export_related(executions, artifacts)


def canonical_lines(store: Store) -> list[str]:
    """Every record of the store as sorted canonical JSON, without store-local seq or versions:
    two stores hold the same metadata exactly when these lists are equal."""
    return sorted(jsonutil.dumps(record_to_dict(r)) for r in store.changes(0))

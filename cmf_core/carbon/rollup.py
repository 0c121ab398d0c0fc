"""Carbon roll-ups: the energy and emissions of executions, summed per stage, pipeline, site,
phase or day, with the inputs behind the numbers.

    from cmf_core.carbon.rollup import rollup
    result = rollup(store, pipeline="churn", by="stage")
    result.total.co2e_kg, [(g.key, g.co2e_kg, g.phases) for g in result.groups]

* **Each execution once.** Energy records are keyed by execution id: a store holds one per
  execution, so a store merged from several sites (``cmf import``, ``cmf sync``) holds each once
  however often it was imported, and :func:`rollup_records` keeps the first record of an id it
  is given twice. Roll-ups across sites are roll-ups of a merged store.
* **Exact sums.** Every figure is the correctly rounded sum (:func:`math.fsum`) of the
  ``energy_kwh`` / ``co2e_kg`` of the records it covers, so it does not depend on the order in
  which a store lists them: the total equals the sum of the per-execution records, and the same
  records merged into another store give the same totals to the last bit.
* **Phases.** An execution's phase is ``cmf.phase`` in its properties or custom properties, else
  in its stage's, else inferred from the stage name (:func:`infer_phase`); the result says
  which phases were inferred. Each group is split by phase.
* **Inputs.** Each group lists the distinct PUEs, intensities, intensity sources and regions
  its records used, and the methods per component (``cpu: model x 12``), so a number can be
  trusted or discounted. Executions without an energy record count in ``executions`` only.

The filters (``pipeline``, ``site``, ``since``/``until`` on the execution's start time) select
executions; ``site`` is the site an execution ran at. Days are UTC calendar days of the start.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmf_core import jsonutil
from cmf_core.errors import CmfError, InvalidInputError, NotFoundError
from cmf_core.model import EnergyRecord, Execution, Stage
from cmf_core.model._base import frozen_dict
from cmf_core.model.energy import MEASURED_KEY

if TYPE_CHECKING:
    from cmf_core.store import CarbonRow, Store

PHASE_KEY = "cmf.phase"
PHASES = ("training", "inference", "retraining", "preprocessing", "evaluation", "other")
GROUP_BY = ("stage", "pipeline", "site", "phase", "day")
PLOT_INSTALL = "pip install 'cmf-foundation[plot]'"

# Word stems per phase, tried in this order on each word of a stage name (see infer_phase).
PHASE_STEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("retraining", ("retrain", "finetun")),
    ("training", ("train", "fit")),
    ("inference", ("infer", "predict", "serv", "scor")),
    ("evaluation", ("eval", "test", "validat")),
    ("preprocessing", ("prep", "clean", "featur", "ingest", "load")),
)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[a-z]+")
_CHUNK = 500  # execution ids per energy query (rollup(keep_items=True))


class PlotUnavailableError(CmfError):
    """matplotlib (the ``plot`` extra) is not installed."""


# phases --------------------------------------------------------------------------------------
def infer_phase(stage_name: str) -> str:
    """The phase a stage name suggests, by the documented keyword rule.

    The name is split into words at every non-letter and at camelCase boundaries
    (``trainModel`` -> ``train``, ``model``), and the words ``fine`` + ``tune...`` are joined.
    The first word, left to right, that begins with a stem decides: ``retrain``/``finetun``
    -> retraining, ``train``/``fit`` -> training, ``infer``/``predict``/``serv``/``scor`` ->
    inference, ``eval``/``test``/``validat`` -> evaluation, ``prep``/``clean``/``featur``/
    ``ingest``/``load`` -> preprocessing; no match -> other.
    """
    words = _WORD.findall(_CAMEL.sub(" ", stage_name).lower())
    joined: list[str] = []
    for w in words:
        if joined and joined[-1] == "fine" and w.startswith("tun"):
            joined[-1] += w
        else:
            joined.append(w)
    for w in joined:
        for phase, stems in PHASE_STEMS:
            if w.startswith(stems):
                return phase
    return "other"


def _label(props: Mapping[str, Any]) -> Any:
    return props.get(PHASE_KEY)


def phase_of(execution: Execution, stage: Stage | None = None) -> tuple[str, str, str | None]:
    """``(phase, source, note)``: source is ``execution``, ``stage`` or ``inferred``; ``note``
    explains a label that is not one of :data:`PHASES` (the phase is then ``other``)."""
    return _phase(execution.id, execution.pipeline, execution.stage,
                  (execution.properties, execution.custom_properties), stage)


def _phase(execution_id: str, pipeline: str, stage_name: str,
           own: Sequence[Mapping[str, Any]], stage: Stage | None
           ) -> tuple[str, str, str | None]:
    """:func:`phase_of` from an execution's id, names and (custom) properties."""
    holders = [("execution", own)]
    if stage is not None:
        holders.append(("stage", (stage.properties, stage.custom_properties)))
    for source, props_of in holders:
        for props in props_of:
            value = _label(props)
            if value is None:
                continue
            phase = str(value).strip().lower()
            if phase in PHASES:
                return phase, source, None
            where = (f"execution {execution_id}" if source == "execution"
                     else f"stage {pipeline}/{stage_name}")
            return "other", source, (f"{where}: {PHASE_KEY}={value!r} is not one of "
                                     f"{', '.join(PHASES)}; counted as other")
    return infer_phase(stage_name), "inferred", None


# results -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Item:
    """One execution in a roll-up, with its phase and its energy record (if any)."""

    execution: Execution
    phase: str
    phase_source: str
    record: EnergyRecord | None = None

    @property
    def day(self) -> str:
        return datetime.fromtimestamp(self.execution.started_at, UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a group's records used: distinct values, and methods per component with counts."""

    pue: tuple[float, ...] = ()
    intensity_g_per_kwh: tuple[float, ...] = ()
    intensity_sources: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    methods: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"pue": list(self.pue), "intensity_g_per_kwh": list(self.intensity_g_per_kwh),
                "intensity_sources": list(self.intensity_sources), "regions": list(self.regions),
                "methods": {c: dict(m) for c, m in self.methods.items()}}

    def methods_text(self) -> str:
        """``cpu: model x 12, gpu: nvml-counter x 3``."""
        return ", ".join(f"{c}: {m} x {n}" for c, ms in self.methods.items()
                         for m, n in ms.items())


@dataclass(frozen=True, slots=True)
class Split:
    """The part of a group in one phase; ``inferred`` executions had no ``cmf.phase`` label."""

    executions: int
    with_energy: int
    energy_kwh: float
    co2e_kg: float
    inferred: int

    def to_dict(self) -> dict[str, Any]:
        return {"executions": self.executions, "with_energy": self.with_energy,
                "energy_kwh": self.energy_kwh, "co2e_kg": self.co2e_kg,
                "inferred": self.inferred}


@dataclass(frozen=True, slots=True)
class Group:
    """Totals of the executions sharing one key (``churn/train``, ``hpc``, ``2026-11-27``)."""

    key: str
    fields: Mapping[str, str]
    executions: int
    with_energy: int
    energy_kwh: float
    co2e_kg: float
    phases: Mapping[str, Split]
    inputs: Inputs
    sites: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, **self.fields, "executions": self.executions,
                "with_energy": self.with_energy, "energy_kwh": self.energy_kwh,
                "co2e_kg": self.co2e_kg, "sites": list(self.sites),
                "phases": {p: s.to_dict() for p, s in self.phases.items()},
                "inputs": self.inputs.to_dict()}


@dataclass(frozen=True, slots=True)
class StagePhase:
    """How the executions of one stage got their phase (a stage may have several rows when
    its executions carry different labels)."""

    pipeline: str
    stage: str
    phase: str
    source: str
    executions: int

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "stage": self.stage, "phase": self.phase,
                "source": self.source, "executions": self.executions}


@dataclass(frozen=True, slots=True)
class Rollup:
    """A roll-up: ``groups`` by ``by``, the ``total``, the phase of each stage, and notes."""

    by: str
    groups: tuple[Group, ...]
    total: Group
    stages: tuple[StagePhase, ...]
    items: tuple[Item, ...]
    filters: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: CO2e (kg) per (group key, site) with an execution in it: the bars :func:`plot` draws
    site_co2e: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: the same roll-up grouped another way, read again (a roll-up that keeps no items)
    again: Callable[[str], Rollup] | None = field(default=None, repr=False, compare=False)

    @property
    def inferred(self) -> tuple[StagePhase, ...]:
        """The stages (some of) whose executions' phase was inferred from the name."""
        return tuple(s for s in self.stages if s.source == "inferred")

    def regroup(self, by: str) -> Rollup:
        """The same selection grouped by another key: from ``items`` where the roll-up keeps
        them (:func:`rollup_records`, ``rollup(keep_items=True)``), else read again from the
        store with the same filters."""
        if self.again is not None:
            return self.again(check_by(by))
        return _build(self.items, by, dict(self.filters), list(self.notes))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (the ``cmf carbon --json`` and ``GET /api/v1/carbon`` body)."""
        return {"by": self.by, "filters": dict(self.filters),
                "groups": [g.to_dict() for g in self.groups], "total": self.total.to_dict(),
                "stages": [s.to_dict() for s in self.stages], "notes": list(self.notes)}


# building ------------------------------------------------------------------------------------
def check_by(by: str) -> str:
    """``by`` if it is one of :data:`GROUP_BY`; else an error naming the choices."""
    if by not in GROUP_BY:
        raise InvalidInputError(f"cannot group by {by!r}; use one of {', '.join(GROUP_BY)}")
    return by


def _key(item: Item, by: str) -> tuple[str, dict[str, str]]:
    e = item.execution
    if by == "stage":
        return f"{e.pipeline}/{e.stage}", {"pipeline": e.pipeline, "stage": e.stage}
    if by == "pipeline":
        return e.pipeline, {"pipeline": e.pipeline}
    if by == "site":
        return e.site, {"site": e.site}
    if by == "phase":
        return item.phase, {"phase": item.phase}
    return item.day, {"day": item.day}


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float)) and not isinstance(v, bool)


def _ordered(found: set[Any]) -> tuple[Any, ...]:
    return tuple(sorted(found, key=lambda v: (1, 0.0, v) if isinstance(v, str) else (0, v, "")))


def _distinct(values: Iterable[Any]) -> tuple[Any, ...]:
    """Distinct scalar values, numbers first in order, then text (other values are skipped)."""
    return _ordered({v for v in values if _scalar(v)})


def _inputs(records: Sequence[EnergyRecord]) -> Inputs:
    methods: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        comps = r.details.get("components")
        if not isinstance(comps, Mapping) or not comps:
            methods["details"]["missing"] += 1  # e.g. a record from another producer
            continue
        for name, comp in comps.items():
            method = comp.get("method") if isinstance(comp, Mapping) else None
            methods[str(name)][str(method or "unknown")] += 1
    return Inputs(
        pue=_distinct(r.details.get("pue") for r in records),
        intensity_g_per_kwh=_distinct(r.details.get("intensity_g_per_kwh") for r in records),
        intensity_sources=_distinct(r.details.get("intensity_source") for r in records),
        regions=_distinct(r.details.get("region") for r in records),
        methods=_by_component(methods),
    )


def _by_component(methods: Mapping[str, Counter[str]]) -> dict[str, dict[str, int]]:
    """Each component's method counts, most used first; components cpu, ram, gpu, others, and
    the records without components last."""
    order = {"cpu": 0, "ram": 1, "gpu": 2, "details": 4}
    return {c: dict(sorted(methods[c].items(), key=lambda kv: (-kv[1], kv[0])))
            for c in sorted(methods, key=lambda c: (order.get(c, 3), c))}


_INPUT_KEYS = ("pue", "intensity_g_per_kwh", "intensity_source", "region")


def _signature(details: Mapping[str, Any]) -> tuple[Any, ...]:
    """What one record's details add to its group's inputs: its four input values (``None``
    where not a scalar) and its ``(component, method)`` pairs. Records mostly repeat these,
    so a group counts signatures rather than looking at each record's values."""
    values: list[Any] = [v if _scalar(v) else None for v in map(details.get, _INPUT_KEYS)]
    comps = details.get("components")
    if not isinstance(comps, Mapping) or not comps:
        values.append((("details", "missing"),))  # e.g. a record from another producer
    else:
        values.append(tuple(
            (str(name), str((comp.get("method") if isinstance(comp, Mapping) else None)
                            or "unknown")) for name, comp in comps.items()))
    return tuple(values)


class _Seen:
    """:func:`_inputs` of a group's records, taken a record's :func:`_signature` at a time.
    Signatures that compare equal (1 and 1.0) count as the first one, as a set keeps the first
    of equal values: the first record holding a value (of any type) is always the first of its
    signature, so the values found are those :func:`_inputs` finds."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[Any, ...], int] = {}

    def add(self, signature: tuple[Any, ...]) -> None:
        self.counts[signature] = self.counts.get(signature, 0) + 1

    def inputs(self) -> Inputs:
        found: tuple[set[Any], ...] = (set(), set(), set(), set())
        methods: dict[str, Counter[str]] = defaultdict(Counter)
        for signature, n in self.counts.items():
            for v, values in zip(signature, found, strict=False):  # the four input values
                if v is not None:
                    values.add(v)
            for component, method in signature[-1]:
                methods[component][method] += n
        pue, intensity, sources, regions = (_ordered(v) for v in found)
        return Inputs(
            pue=pue, intensity_g_per_kwh=intensity, intensity_sources=sources, regions=regions,
            methods=_by_component(methods),
        )


def _split(items: Sequence[Item]) -> Split:
    records = [i.record for i in items if i.record is not None]
    return Split(executions=len(items), with_energy=len(records),
                 energy_kwh=math.fsum(r.energy_kwh for r in records),
                 co2e_kg=math.fsum(r.co2e_kg for r in records),
                 inferred=sum(1 for i in items if i.phase_source == "inferred"))


def _group(key: str, fields: Mapping[str, str], items: Sequence[Item]) -> Group:
    whole = _split(items)
    by_phase: dict[str, list[Item]] = defaultdict(list)
    for i in items:
        by_phase[i.phase].append(i)
    return Group(
        key=key, fields=dict(fields), executions=whole.executions,
        with_energy=whole.with_energy, energy_kwh=whole.energy_kwh, co2e_kg=whole.co2e_kg,
        phases={p: _split(by_phase[p]) for p in PHASES if p in by_phase},
        inputs=_inputs([i.record for i in items if i.record is not None]),
        sites=_distinct(i.execution.site for i in items),
    )


def _sort(groups: list[Group], by: str) -> tuple[Group, ...]:
    if by == "phase":
        groups.sort(key=lambda g: PHASES.index(g.key))
    elif by == "day":
        groups.sort(key=lambda g: g.key)
    else:
        groups.sort(key=lambda g: (-g.co2e_kg, g.key))
    return tuple(groups)


def _stages(counts: Mapping[tuple[str, str, str, str], int]) -> tuple[StagePhase, ...]:
    return tuple(StagePhase(p, s, ph, src, n) for (p, s, ph, src), n in sorted(counts.items()))


def _build(items: Sequence[Item], by: str, filters: dict[str, Any], notes: list[str]) -> Rollup:
    check_by(by)
    buckets: dict[str, tuple[dict[str, str], list[Item]]] = {}
    cells: dict[tuple[str, str], list[float]] = {}
    for i in items:
        k, fields = _key(i, by)
        buckets.setdefault(k, (fields, []))[1].append(i)
        co2 = cells.setdefault((k, i.execution.site), [])
        if i.record is not None:
            co2.append(i.record.co2e_kg)
    groups = [_group(k, f, its) for k, (f, its) in buckets.items()]
    counts = Counter((i.execution.pipeline, i.execution.stage, i.phase, i.phase_source)
                     for i in items)
    return Rollup(by=by, groups=_sort(groups, by), total=_group("total", {}, items),
                  stages=_stages(counts), items=tuple(items), filters=filters,
                  notes=tuple(dict.fromkeys(notes)),
                  site_co2e={k: math.fsum(v) for k, v in cells.items()})


def rollup_records(executions: Iterable[Execution], records: Iterable[EnergyRecord],
                   stages: Iterable[Stage] = (), *, by: str = "stage",
                   filters: Mapping[str, Any] | None = None) -> Rollup:
    """Roll up ``executions`` with their ``records`` (matched by execution id; the first record
    of an id counts, a repeat is dropped with a note; records of other executions are ignored).
    ``stages`` supply stage-level ``cmf.phase`` labels."""
    check_by(by)
    notes: list[str] = []
    by_id: dict[str, EnergyRecord] = {}
    repeats = 0
    for r in records:
        if r.execution_id in by_id:
            repeats += 1
            if (r.energy_kwh, r.co2e_kg) != (by_id[r.execution_id].energy_kwh,
                                             by_id[r.execution_id].co2e_kg):
                notes.append(f"execution {r.execution_id} has two different energy records; "
                             "the first was counted")
            continue
        by_id[r.execution_id] = r
    if repeats:
        notes.append(f"{repeats} repeated energy record(s) of the same execution were counted "
                     "once")
    stage_map = {(s.pipeline, s.name): s for s in stages}
    items: list[Item] = []
    unmeasured: list[EnergyRecord] = []
    seen: set[str] = set()
    for e in executions:
        if e.id in seen:
            continue
        seen.add(e.id)
        phase, source, note = phase_of(e, stage_map.get((e.pipeline, e.stage)))
        if note:
            notes.append(note)
        record = by_id.get(e.id)
        if record is not None and not record.measured:  # says nothing was measured: no record
            unmeasured.append(record)
            record = None
        items.append(Item(e, phase, source, record))
    if unmeasured:
        notes.append(_unmeasured_note(len(unmeasured), unmeasured[0].execution_id,
                                      unmeasured[0].details))
    return _build(items, by, dict(filters or {}), notes)


def _unmeasured_note(count: int, execution_id: str, details: Mapping[str, Any]) -> str:
    """The note for ``count`` records saying nothing was measured, the first one's reason."""
    why = details.get("notes")
    why = why[0] if isinstance(why, (list, tuple)) and why else "no reason given"
    return (f"{count} execution(s) have an energy record saying nothing was measured, counted "
            f"as not measured (execution {execution_id}: {why})")


def rollup(store: Store, *, pipeline: str | None = None, site: str | None = None,
           since: float | None = None, until: float | None = None,
           by: str = "stage", keep_items: bool = False) -> Rollup:
    """Roll up the executions of ``store`` that match the filters (``since``/``until``: Unix
    seconds, on the start time; ``site``: where the execution ran), grouped ``by`` one of
    :data:`GROUP_BY`.

    The store's rows are folded into the groups as they stream in (:meth:`Store.carbon_rows`):
    no Execution or EnergyRecord is built, and memory grows with the number of groups, not of
    executions; the result keeps no ``items`` (:meth:`Rollup.regroup` reads the store again).
    ``keep_items=True`` builds every execution and record as objects instead and keeps them
    (:func:`rollup_records`; the same groups, totals and notes)."""
    from cmf_core.store import ExecutionFilter

    if not keep_items:
        return rollups(store, (by,), pipeline=pipeline, site=site, since=since,
                       until=until)[by]
    check_by(by)
    _check_window(since, until)
    where = ExecutionFilter(pipeline=pipeline, site=site, since=since, until=until)
    filters = {"pipeline": pipeline, "site": site, "since": since, "until": until}
    stages = store.list_stages(pipeline)
    executions = store.list_executions(where)
    ids = [e.id for e in executions]
    records: list[EnergyRecord] = []
    for start in range(0, len(ids), _CHUNK):
        records += store.energy(ids[start:start + _CHUNK])
    return rollup_records(executions, records, stages, by=by, filters=filters)


def _check_window(since: float | None, until: float | None) -> None:
    if since is not None and until is not None and until <= since:
        from cmf_core.openlineage.times import format_time

        raise InvalidInputError(f"until ({format_time(until)}) must be after since "
                                f"({format_time(since)})")


def rollups(store: Store, bys: Sequence[str], *, pipeline: str | None = None,
            site: str | None = None, since: float | None = None, until: float | None = None
            ) -> dict[str, Rollup]:
    """The roll-up of the same selection grouped each of the ways in ``bys`` (each one of
    :data:`GROUP_BY`), from ONE pass over the store's rows: ``{by: rollup(store, ..., by=by)}``
    with the same groups, totals, stages and notes as that call gives, read once."""
    from cmf_core.store import ExecutionFilter

    bys = [check_by(b) for b in bys]
    if not bys:
        raise InvalidInputError(f"give at least one grouping: {', '.join(GROUP_BY)}")
    _check_window(since, until)
    where = ExecutionFilter(pipeline=pipeline, site=site, since=since, until=until)
    filters = {"pipeline": pipeline, "site": site, "since": since, "until": until}

    def again(other: str) -> Rollup:
        return rollup(store, pipeline=pipeline, site=site, since=since, until=until, by=other)

    return _fold_many(store.carbon_rows(where), store.list_stages(pipeline), bys, filters,
                      again)


# folding rows ----------------------------------------------------------------------------------
#: values a running sum holds before it is made exact again (:class:`_Sum`)
_SUM_BATCH = 256


def _exact(values: list[float]) -> list[float]:
    """A few floats whose exact sum is that of the finite ``values``: fsum's correctly
    rounded sum, then fsum of what is left, until nothing is (each step leaves less than an
    ulp of the step before, so two or three steps)."""
    parts: list[float] = []
    while True:
        rest = math.fsum(values + [-p for p in parts])
        if not rest:
            return parts or [rest]  # all zeros: fsum's own signed zero
        parts.append(rest)


class _Sum:
    """An exact running sum in bounded memory: up to :data:`_SUM_BATCH` values, then floats
    of the same exact sum (:func:`_exact`), so ``math.fsum`` of them (and of other sums'
    ``values``) is ``math.fsum`` of all the values added, to the last bit. Non-finite values
    (NaN or inf from an old import) are kept aside, as fsum keeps them."""

    __slots__ = ("special", "values")

    def __init__(self) -> None:
        self.values: list[float] = []
        self.special: list[float] = []

    def add(self, x: float) -> None:
        if x - x == 0.0:  # finite (inf - inf and NaN are NaN)
            self.values.append(x)
            if len(self.values) >= _SUM_BATCH:
                self.values = _exact(self.values)
        else:
            self.special.append(x)


def _fsum(sums: Iterable[_Sum]) -> float:
    values: list[float] = []
    special: list[float] = []
    for s in sums:
        values += s.values
        special += s.special
    return math.fsum(values + special)


class _Cell:
    """The executions of one group, phase and site."""

    __slots__ = ("co2", "executions", "inferred", "kwh", "with_energy")

    def __init__(self) -> None:
        self.executions = self.with_energy = self.inferred = 0
        self.kwh, self.co2 = _Sum(), _Sum()


def _merge(cells: Sequence[_Cell]) -> Split:
    return Split(executions=sum(c.executions for c in cells),
                 with_energy=sum(c.with_energy for c in cells),
                 energy_kwh=_fsum(c.kwh for c in cells), co2e_kg=_fsum(c.co2 for c in cells),
                 inferred=sum(c.inferred for c in cells))


def _finish(key: str, fields: Mapping[str, str], seen: _Seen,
            cells: Sequence[tuple[tuple[str, str], _Cell]]) -> Group:
    """The group of ``cells`` (each with its (phase, site))."""
    whole = _merge([c for _, c in cells])
    phases = {p: _merge([c for (ph, _), c in cells if ph == p]) for p in PHASES
              if any(ph == p for (ph, _), _ in cells)}
    return Group(key=key, fields=dict(fields), executions=whole.executions,
                 with_energy=whole.with_energy, energy_kwh=whole.energy_kwh,
                 co2e_kg=whole.co2e_kg, phases=phases, inputs=seen.inputs(),
                 sites=_ordered({site for (_, site), _ in cells}))


def _labels(properties: str, custom_properties: str) -> tuple[Mapping[str, Any], ...]:
    """An execution's (custom) properties where they may hold a :data:`PHASE_KEY` label (read
    as an Execution reads them), else nothing: most executions have none, unread."""
    if ("phase" in properties or "phase" in custom_properties or "\\u" in properties
            or "\\u" in custom_properties):
        return (frozen_dict(jsonutil.loads(properties)),
                frozen_dict(jsonutil.loads(custom_properties)))
    return ()


def _details(text: str) -> Mapping[str, Any]:
    """An energy record's details as :class:`EnergyRecord` holds them; JSON that the store
    wrote plainly (no escapes, no non-finite numbers) skips its copy and checks."""
    if "\\u" not in text and "NaN" not in text and "Infinity" not in text:
        value = jsonutil.loads(text)
        if type(value) is dict:
            for v in map(value.get, _INPUT_KEYS):
                if type(v) is float and v - v != 0.0:  # 1e999: read as inf, stored as "inf"
                    break
            else:
                return value
    return frozen_dict(jsonutil.loads(text), "energy details")


def _fold_many(rows: Iterable[CarbonRow], stages: Iterable[Stage], bys: Sequence[str],
               filters: dict[str, Any], again: Callable[[str], Rollup] | None = None
               ) -> dict[str, Rollup]:
    """:func:`rollup_records` of the store's rows (in :meth:`Store.list_executions` order,
    each execution once with its energy record), one row at a time, grouped each of the ways
    ``bys`` in the same pass: the same groups, totals, phases, inputs and notes, without an
    object per execution (the total, stages and notes do not depend on the grouping)."""
    bys = tuple(dict.fromkeys(check_by(b) for b in bys))
    stage_map = {(s.pipeline, s.name): s for s in stages}
    by_stage: dict[tuple[str, str], tuple[str, str, str | None]] = {}
    notes: dict[str, None] = {}
    counts: Counter[tuple[str, str, str, str]] = Counter()
    grouped: dict[str, dict[str, tuple[dict[str, str], _Seen, dict[tuple[str, str], _Cell]]]] = {
        b: {} for b in bys}
    everything = _Seen()
    unmeasured = 0
    first_unmeasured: tuple[str, Mapping[str, Any]] | None = None
    days: dict[int, str] = {}
    for r in rows:
        own = _labels(r.properties, r.custom_properties)
        if own:
            phase, source, note = _phase(r.id, r.pipeline, r.stage, own,
                                         stage_map.get((r.pipeline, r.stage)))
        else:  # the stage's label or the name decides: the same for all its executions
            got = by_stage.get((r.pipeline, r.stage))
            if got is None:
                got = by_stage[r.pipeline, r.stage] = _phase(
                    r.id, r.pipeline, r.stage, (), stage_map.get((r.pipeline, r.stage)))
            phase, source, note = got
        if note:
            notes[note] = None
        counts[r.pipeline, r.stage, phase, source] += 1
        details = None if r.details is None else _details(r.details)
        if details is not None and details.get(MEASURED_KEY) is False:  # as no record
            unmeasured += 1
            if first_unmeasured is None:
                first_unmeasured = (r.id, details)
            details = None
        signature = None if details is None else _signature(details)
        if signature is not None:
            everything.add(signature)
        for by, groups in grouped.items():
            if by == "stage":
                key = f"{r.pipeline}/{r.stage}"
            elif by == "pipeline":
                key = r.pipeline
            elif by == "site":
                key = r.site
            elif by == "phase":
                key = phase
            else:  # one text per day number (not in a day's last second: rounding to µs)
                day, second = divmod(int(r.started_at // 1), 86400)
                key = days.get(day) if second != 86399 else None
                if key is None:
                    key = datetime.fromtimestamp(r.started_at, UTC).strftime("%Y-%m-%d")
                    if second != 86399:
                        days[day] = key
            group = groups.get(key)
            if group is None:
                fields = {"stage": {"pipeline": r.pipeline, "stage": r.stage},
                          "pipeline": {"pipeline": r.pipeline}, "site": {"site": r.site},
                          "phase": {"phase": phase}, "day": {"day": key}}[by]
                group = groups[key] = (fields, _Seen(), {})
            cell = group[2].get((phase, r.site))
            if cell is None:
                cell = group[2][phase, r.site] = _Cell()
            cell.executions += 1
            if source == "inferred":
                cell.inferred += 1
            if signature is not None:
                cell.with_energy += 1
                cell.kwh.add(r.energy_kwh)  # type: ignore[arg-type]  # set with details
                cell.co2.add(r.co2e_kg)  # type: ignore[arg-type]
                group[1].add(signature)
    if first_unmeasured is not None:
        notes[_unmeasured_note(unmeasured, *first_unmeasured)] = None
    out: dict[str, Rollup] = {}
    total: Group | None = None
    for by, groups in grouped.items():
        if total is None:  # the same cells, whichever grouping holds them
            total = _finish("total", {}, everything,
                            [kc for _, _, cells in groups.values() for kc in cells.items()])
        out[by] = Rollup(
            by=by, groups=_sort([_finish(k, f, seen, list(cells.items()))
                                 for k, (f, seen, cells) in groups.items()], by),
            total=total, stages=_stages(counts), items=(), filters=filters,
            notes=tuple(notes), again=again,
            site_co2e={(k, site): _fsum(c.co2 for (_, s), c in cells.items() if s == site)
                       for k, (_, _, cells) in groups.items() for _, site in cells})
    return out


# plot ----------------------------------------------------------------------------------------
ENERGY_UNITS = (("kWh", 1.0), ("Wh", 1e3), ("mWh", 1e6), ("µWh", 1e9))
CO2_UNITS = (("kgCO2e", 1.0), ("gCO2e", 1e3), ("mgCO2e", 1e6), ("µgCO2e", 1e9))


def unit(total: float, units: tuple[tuple[str, float], ...]) -> tuple[str, float]:
    """The unit (name, factor from kWh or kg) in which ``total`` reads as 1 or more, the
    smallest one for less: a table of seconds-long tasks read 7.773e-09 kWh."""
    return next((u for u in units if abs(total) * u[1] >= 1), units[-1] if total else units[0])


def plotted(result: Rollup, max_groups: int = 30) -> tuple[list[Group], tuple[str, float]]:
    """The groups :func:`plot` draws, in ``result``'s order (the ``max_groups`` largest of
    those with an energy record: a group without any has nothing measured to draw), and the
    CO2e unit of its axis."""
    measured = [g for g in result.groups if g.with_energy]
    shown = sorted(measured, key=lambda g: -g.co2e_kg)[:max_groups]
    return [g for g in measured if g in shown], unit(result.total.co2e_kg, CO2_UNITS)


def plot(result: Rollup, path: str | Path, *, title: str | None = None,
         max_groups: int = 30) -> Path:
    """Write a PNG bar chart of CO2e per group of ``result`` (by its ``by``; at most the
    ``max_groups`` largest of those with energy records, the unit from the total, see
    :func:`plotted`), the sites of each group side by side, coloured by site, values on the
    bars when there are at most 16. Drawn on matplotlib's Agg canvas (no pyplot, no global
    backend change); needs the ``plot`` extra."""
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailableError(f"plotting needs matplotlib: {PLOT_INSTALL}") from None
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InvalidInputError(f"plot file {path} must end in .png, e.g. carbon.png")
    if not path.parent.is_dir():
        raise InvalidInputError(f"cannot write {path}: folder {path.parent} does not exist")
    if not result.groups:
        raise NotFoundError("no executions match the filters; nothing to plot")
    groups, (co2, factor) = plotted(result, max_groups)
    if not groups:
        raise NotFoundError("none of the matching executions has an energy record; nothing "
                            "to plot")
    keys = [g.key for g in groups]
    cells = result.site_co2e
    sites = sorted({site for _, site in cells})
    present = {k: [site for site in sites if (k, site) in cells] for k in keys}
    bars_n = sum(len(v) for v in present.values())
    width_in = min(24.0, max(6.0, 2.0 + 0.55 * bars_n))
    fig = Figure(figsize=(width_in, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = colormaps["tab10"]
    for n, site in enumerate(sites):
        xs, ys, widths = [], [], []
        for x, k in enumerate(keys):
            if site in present[k]:  # the sites of each group side by side, centred on it
                width = 0.8 / len(present[k])
                xs.append(x + (present[k].index(site) - (len(present[k]) - 1) / 2) * width)
                ys.append(cells[k, site] * factor)
                widths.append(width)
        bars = ax.bar(xs, ys, widths, label=site, color=colours(n % 10))
        if bars_n <= 16:  # more values would overlap
            ax.bar_label(bars, fmt="%.3g", fontsize=8, padding=2)
    slanted = sum(len(k) + 2 for k in keys) * 0.09 > 0.85 * width_in  # labels would touch
    ax.set_xticks(range(len(keys)), keys, rotation=30 if slanted else 0,
                  ha="right" if slanted else "center")
    ax.set_ylabel(co2)
    ax.set_xlabel(result.by)
    ax.margins(y=0.15)
    what = ", ".join(f"{k} {v}" for k, v in result.filters.items()
                     if v is not None and k in ("pipeline", "site"))
    measured = sum(1 for g in result.groups if g.with_energy)
    if len(keys) < measured:
        what += f"{', ' if what else ''}{len(keys)} largest of {measured}"
    if measured < len(result.groups):
        what += f"{', ' if what else ''}{len(result.groups) - measured} without energy " \
                "records left out"
    ax.set_title(title or f"Emissions by {result.by}" + (f" ({what})" if what else "")
                 + f": {result.total.co2e_kg * factor:.3g} {co2} in all")
    ax.legend(title="site")
    fig.savefig(path, dpi=120)
    return path

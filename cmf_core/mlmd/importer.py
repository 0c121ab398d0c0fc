"""Import an MLMD store into a CMF store: read (plain SQL), map, write in one transaction."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cmf_core.errors import NotFoundError, StoreError
from cmf_core.mlmd.mapping import ImportPlan, map_snapshot
from cmf_core.mlmd.reader import read_snapshot
from cmf_core.model import (
    Artifact,
    ArtifactLocation,
    Event,
    Execution,
    Metric,
    Pipeline,
    Stage,
)
from cmf_core.store import Store


@dataclass(slots=True)
class MlmdImportReport:
    """What one ``import_mlmd`` read and wrote."""

    source: str
    schema_version: int
    shape: str
    pipelines: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    new: dict[str, int] = field(default_factory=dict)
    """Executions and artifacts the store did not hold before (empty on a repeated import)."""
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "schema_version": self.schema_version,
                "shape": self.shape, "pipelines": self.pipelines, "counts": self.counts,
                "new": self.new, "skipped": self.skipped, "notes": self.notes,
                "seconds": round(self.seconds, 3)}


_KINDS = (("pipelines", Pipeline), ("stages", Stage), ("executions", Execution),
          ("artifacts", Artifact), ("locations", ArtifactLocation), ("events", Event),
          ("metrics", Metric))


def plan_mlmd_import(source: str | os.PathLike[str], site: str,
                     pipelines: Iterable[str] | None = None) -> ImportPlan:
    """The CMF records the MLMD store at ``source`` maps to, without writing them."""
    return map_snapshot(read_snapshot(source), site, pipelines)


def import_mlmd(store: Store, source: str | os.PathLike[str],
                pipelines: Iterable[str] | None = None,
                site: str | None = None) -> MlmdImportReport:
    """Import the MLMD store at ``source`` (an SQLite path or a postgresql:// / mysql:// URL)
    into ``store`` in one transaction: all of it or, on any error, nothing. Idempotent."""
    started = time.perf_counter()
    wanted = list(pipelines) if pipelines else None
    snap = read_snapshot(source)
    plan = map_snapshot(snap, site or store.site, wanted)
    found = sorted(r.name for r in plan.records if isinstance(r, Pipeline))
    if wanted:
        missing = sorted(set(wanted) - set(found))
        if missing:
            held = sorted(r.name for r in map_snapshot(snap, "probe").records
                          if isinstance(r, Pipeline))
            raise NotFoundError(
                f"pipeline(s) {', '.join(map(repr, missing))} not in MLMD store {plan.source}; "
                f"it holds: {', '.join(held) or 'no pipelines'}"
            )
    report = MlmdImportReport(source=plan.source, schema_version=plan.schema_version,
                              shape=plan.shape, pipelines=found,
                              skipped=dict(plan.skipped), notes=plan.notes)
    report.counts = {name: sum(1 for r in plan.records if type(r) is kind)
                     for name, kind in _KINDS}
    ex_ids = [r.id for r in plan.records if isinstance(r, Execution)]
    art_ids = [r.id for r in plan.records if isinstance(r, Artifact)]
    records = plan.records
    try:
        known_ex = store.existing_keys("execution", ex_ids) if ex_ids else set()
        known_art = store.existing_keys("artifact", art_ids) if art_ids else set()
        report.new = {"executions": len(set(ex_ids) - known_ex),
                      "artifacts": len(set(art_ids) - known_art)}
        records = _without_held(store, records, known_art)
    except StoreError:  # a backend without federation support: counts only
        report.new = {}
    store.put(records)
    report.seconds = time.perf_counter() - started
    return report



def _without_held(store: Store, records: list[Any], held_artifacts: set[str]) -> list[Any]:
    """``records`` less the artifacts and locations the store holds already: re-writing them
    would change nothing but still count as a change (a new seq) for export and sync."""
    held_locations: dict[str, set[tuple[str, str]]] = {}
    out = []
    for r in records:
        if isinstance(r, Artifact) and r.id in held_artifacts:
            continue
        if isinstance(r, ArtifactLocation) and r.artifact_id in held_artifacts:
            if r.artifact_id not in held_locations:
                held_locations[r.artifact_id] = {
                    (loc.site, loc.uri) for loc in store.artifact_locations(r.artifact_id)}
            if (r.site, r.uri) in held_locations[r.artifact_id]:
                continue
        out.append(r)
    return out

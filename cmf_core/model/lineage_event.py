"""LineageEvent: a raw OpenLineage event kept as received (canonical JSON), for replay and for
serving it back to OpenLineage consumers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LineageEvent:
    id: str  # sha256 of the canonical JSON body: the same event stored twice is one row
    body: str
    run_id: str | None = None
    event_type: str | None = None
    event_time: str | None = None

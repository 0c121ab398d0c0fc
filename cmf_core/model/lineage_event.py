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

    def __post_init__(self) -> None:
        # RFC 3339 allows a lower-case "t" and "z" ("2024-05-01t12:00:00z"); the store's index by
        # time (SQLite's julianday()) reads only upper case, so the time is kept upper-cased (the
        # body stays as received)
        if isinstance(self.event_time, str) and not self.event_time.isupper():
            object.__setattr__(self, "event_time", self.event_time.upper())

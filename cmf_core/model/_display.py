"""One-line summaries of records, for ``print(record)`` and a notebook's display.

``repr()`` of a record stays the dataclass's (every field, for debugging); ``str()`` and
IPython's pretty printer (``_repr_pretty_``, used for a record shown alone or in a list) give a
line a person reads: the kind, the names, the status, an artifact digest's first 12 hex digits
(as ``cmf lineage`` shows it, and takes back), an execution's whole id (a UUIDv7 begins with
its time: the first characters of two executions of one minute are the same). They read only
the record: never the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cmf_core.model._base import brief

#: parameters shown in a summary line (the rest are counted)
PARAMS_SHOWN = 4


def short_digest(digest: str, n: int = 12) -> str:
    """An artifact digest's kind and first ``n`` hex digits (``sha256:89abcdef0123``)."""
    kind, _, hexpart = digest.partition(":")
    return f"{kind}:{hexpart[:n]}" if hexpart else digest[:n]


def utc(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds(value: float) -> str:
    if value < 60:
        return f"{value:.2f} s"
    minutes, s = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{s:02d}s" if hours else f"{minutes}m{s:02d}s"


def values(mapping: Mapping[str, Any], shown: int = PARAMS_SHOWN, limit: int = 40) -> str:
    """``k=v, ...`` of the first ``shown`` items (each value cut to ``limit`` characters), and
    how many more: a parameter left out reads as never set unless it is counted."""
    items = list(mapping.items())
    text = ", ".join(f"{k}={brief(v, limit)}" for k, v in items[:shown])
    if len(items) > shown:
        text += f", ... {len(items) - shown} more"
    return text


def execution_line(e: Any) -> str:
    status = e.status.value
    if e.ended_at is None:
        status += f" since {utc(e.started_at)}"
    else:
        status += f" in {seconds(e.duration_s)}"
    text = f"Execution {e.pipeline}/{e.stage} {e.id} @{e.site} {status}"
    if e.params:
        text += f" ({values(e.params)})"
    if e.error:
        text += f": {line(e.error)}"
    return text


def line(text: str, limit: int = 80) -> str:
    """The first line of ``text``, cut to ``limit`` characters."""
    first = text.strip().split("\n", 1)[0]
    return first if len(first) <= limit and first == text.strip() else first[:limit - 3] + "..."


def artifact_line(a: Any) -> str:
    return f"Artifact {a.type} {a.name} {short_digest(a.id)} @{a.site} ({a.uri})"


def metric_line(m: Any) -> str:
    step = "" if m.step is None else f" step {m.step}"
    return f"Metric {m.name} = {m.value!r}{step} (execution {m.execution_id})"


class Summary:
    """Mixin: ``str()`` and IPython's ``_repr_pretty_`` are the record's summary line
    (``_summary``); ``repr()`` stays the dataclass's."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # IPython's printer takes the first class of the MRO that has ``_repr_pretty_`` or
        # ``__repr__`` in its own ``__dict__``: the record's dataclass ``__repr__`` would win
        # over the mixin's, so each record class gets it in its own
        cls._repr_pretty_ = Summary._repr_pretty_  # type: ignore[method-assign]

    def _summary(self) -> str:  # pragma: no cover - each record defines it
        raise NotImplementedError

    def __str__(self) -> str:
        return self._summary()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self._summary())

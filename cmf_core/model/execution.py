"""Execution: one run of a stage (an Airflow task try, a Prefect task run, a KFP executor)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cmf_core.errors import InvalidInputError
from cmf_core.identity import check_uuid, name_id, uuid7
from cmf_core.jsonutil import valid_text
from cmf_core.model._base import check_name, check_site, check_time, frozen_dict, now
from cmf_core.model._display import Summary, execution_line

RUN_URL_PROPERTY = "cmf.run_url"
"""Execution property: the page of the same run in the orchestrator's own UI (an Airflow task
instance, a Prefect task or flow run, a KFP run), set by the adapter when it knows that UI's base
URL from the orchestrator's configuration; never guessed. Shown by :func:`run_url`."""
MAX_URL = 4096


class ExecutionStatus(enum.StrEnum):
    """Status only moves forward: running -> one terminal state."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"
    SKIPPED = "skipped"

    @property
    def rank(self) -> int:
        return 0 if self is ExecutionStatus.RUNNING else 1

    @property
    def is_terminal(self) -> bool:
        return self is not ExecutionStatus.RUNNING

    @classmethod
    def parse(cls, value: str | ExecutionStatus) -> ExecutionStatus:
        try:
            return cls(str(value).lower())
        except ValueError:
            known = ", ".join(s.value for s in cls)
            from cmf_core.errors import InvalidInputError

            raise InvalidInputError(
                f"unknown execution status {value!r} (known: {known})"
            ) from None


@dataclass(frozen=True, slots=True)
class Execution(Summary):
    """A run of a stage. ``params`` are its parameters/hyperparameters; ``properties`` are facts
    set by CMF or an orchestrator adapter; ``custom_properties`` are the user's own."""

    pipeline: str
    stage: str
    site: str
    id: str = field(default_factory=uuid7)
    status: ExecutionStatus = ExecutionStatus.RUNNING
    started_at: float = field(default_factory=now)
    ended_at: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)
    custom_properties: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    def __post_init__(self) -> None:
        check_name(self.pipeline, "pipeline name")
        check_name(self.stage, "stage name")
        check_site(self.site, "execution site")
        object.__setattr__(self, "id", check_uuid(self.id, "execution id"))
        object.__setattr__(self, "started_at", check_time(self.started_at, "started_at"))
        if self.ended_at is not None:
            object.__setattr__(self, "ended_at", check_time(self.ended_at, "ended_at"))
        object.__setattr__(self, "status", ExecutionStatus.parse(self.status))
        object.__setattr__(self, "params", frozen_dict(self.params, "params"))
        object.__setattr__(self, "properties", frozen_dict(self.properties))
        object.__setattr__(self, "custom_properties", frozen_dict(self.custom_properties))
        object.__setattr__(self, "error", _error_text(self.error))

    def _summary(self) -> str:
        return execution_line(self)

    @property
    def stage_id(self) -> str:
        return name_id("stage", self.pipeline, self.stage)

    @property
    def pipeline_id(self) -> str:
        return name_id("pipeline", self.pipeline)

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else max(0.0, self.ended_at - self.started_at)

    def ended(self, status: ExecutionStatus | str = ExecutionStatus.COMPLETED,
              error: str | None = None, ended_at: float | None = None,
              **changes: Any) -> Execution:
        """A copy of this execution in a terminal state."""
        if ended_at is None:  # the clock: never before the start, should it have stepped back
            ended_at = max(now(), self.started_at)
        if changes:
            return replace(self, status=ExecutionStatus.parse(status), error=error,
                           ended_at=ended_at, **changes)
        new = object.__new__(Execution)  # the rest is already validated: copy it as it is
        for name in Execution.__slots__:
            object.__setattr__(new, name, getattr(self, name))
        object.__setattr__(new, "status", ExecutionStatus.parse(status))
        object.__setattr__(new, "error", _error_text(error))
        object.__setattr__(new, "ended_at", check_time(ended_at, "ended_at"))
        return new


def _error_text(error: Any) -> str | None:
    """An execution's error message as storable text: often an exception's message (arbitrary
    text: a file name, a value), so lone surrogates and NUL are written out
    (:func:`~cmf_core.jsonutil.valid_text`) rather than refused, which would lose the record."""
    if error is None:
        return None
    if not isinstance(error, str):
        raise InvalidInputError(f"error must be a string or None, got {type(error).__name__}")
    return valid_text(error)


def web_url(value: Any) -> str | None:
    """``value`` if it is an absolute ``http``/``https`` URL with a host and nothing that can
    break out of a link (whitespace, control characters, quotes, angle brackets); else None.
    ``javascript:``, ``data:``, relative and schemeless values are never links."""
    from urllib.parse import urlsplit

    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        return None
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 or c in "\"'<>\\`" for c in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return value


def run_url(properties: Mapping[str, Any]) -> str | None:
    """The execution's link to its run in the orchestrator's UI
    (``properties["cmf.run_url"]``) when it is a safe web URL (:func:`web_url`), else None."""
    return web_url(properties.get(RUN_URL_PROPERTY))

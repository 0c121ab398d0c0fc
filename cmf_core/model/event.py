"""Event: links an execution to an artifact it read (INPUT) or wrote (OUTPUT)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cmf_core.errors import InvalidInputError
from cmf_core.identity import check_digest, check_uuid
from cmf_core.model._display import Summary, short_digest


class EventType(enum.StrEnum):
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"

    @classmethod
    def parse(cls, value: str | EventType) -> EventType:
        text = str(value).upper()
        if text in ("IN", "INPUT"):
            return cls.INPUT
        if text in ("OUT", "OUTPUT"):
            return cls.OUTPUT
        raise InvalidInputError(f"event type {value!r} must be 'input' or 'output'")


@dataclass(frozen=True, slots=True)
class Event(Summary):
    execution_id: str
    artifact_id: str
    type: EventType

    def __post_init__(self) -> None:
        object.__setattr__(self, "execution_id", check_uuid(self.execution_id, "execution id"))
        check_digest(self.artifact_id)
        object.__setattr__(self, "type", EventType.parse(self.type))

    def _summary(self) -> str:
        return (f"Event {self.type.value} {short_digest(self.artifact_id)} "
                f"{'read by' if self.type is EventType.INPUT else 'written by'} execution "
                f"{self.execution_id}")

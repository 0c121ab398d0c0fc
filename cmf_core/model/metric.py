"""Metric: a named number attached to an execution, scalar (step None) or stepped."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cmf_core.errors import InvalidInputError
from cmf_core.identity import check_uuid
from cmf_core.model._base import INT64_END, check_name, check_time, now


@dataclass(frozen=True, slots=True)
class Metric:
    execution_id: str
    name: str
    value: float
    step: int | None = None
    timestamp: float = field(default_factory=now)

    def __post_init__(self) -> None:
        object.__setattr__(self, "execution_id", check_uuid(self.execution_id, "execution id"))
        check_name(self.name, "metric name")
        try:
            value = float(self.value)
        except (TypeError, ValueError, OverflowError):
            raise InvalidInputError(
                f"metric {self.name!r} value {self.value!r} is not a number"
            ) from None
        if not math.isfinite(value):
            raise InvalidInputError(f"metric {self.name!r} value {value} is not finite")
        object.__setattr__(self, "value", value)
        if self.step is not None and (isinstance(self.step, bool) or not isinstance(self.step, int)
                                      or not 0 <= self.step < INT64_END):
            raise InvalidInputError(f"metric {self.name!r} step {self.step!r} must be a whole "
                                    "number from 0 to 2**63 - 1")
        object.__setattr__(self, "timestamp", check_time(self.timestamp, "metric timestamp"))

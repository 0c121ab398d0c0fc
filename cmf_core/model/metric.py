"""Metric: a named number attached to an execution, scalar (step None) or stepped."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field

from cmf_core.errors import InvalidInputError
from cmf_core.identity import check_uuid
from cmf_core.model._base import INT64_END, check_name, check_time, now
from cmf_core.model._display import Summary, metric_line


@dataclass(frozen=True, slots=True)
class Metric(Summary):
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
        if self.step is not None:
            object.__setattr__(self, "step", check_step(self.step, self.name))
        object.__setattr__(self, "timestamp", check_time(self.timestamp, "metric timestamp"))

    def _summary(self) -> str:
        return metric_line(self)


def check_step(step: object, name: str) -> int:
    """``step`` as a plain int: any whole number (a NumPy integer from ``np.arange`` or a
    DataFrame too), not a bool, from 0 to 2**63 - 1."""
    try:
        value = operator.index(step)  # type: ignore[arg-type]
    except TypeError:
        value = None
    if isinstance(step, bool) or value is None or not 0 <= value < INT64_END:
        raise InvalidInputError(f"metric {name!r} step {step!r} must be a whole "
                                "number from 0 to 2**63 - 1")
    return value


def output_metric_names(logged: Iterable[tuple[str, str]]) -> list[str]:
    """The CMF metric name of each ``(output, name)`` value that the metrics outputs of one
    task log: ``name`` when only one output logs it, else ``<output>.<name>`` (``train_metrics``
    and ``eval_metrics`` both logging ``accuracy`` give ``train_metrics.accuracy`` and
    ``eval_metrics.accuracy``), so that no value silently replaces another.

    The one rule of every route that records such outputs: the live Kubeflow hook and its
    importers (``cmf_kubeflow.adapter.output_metrics``) and the ML Metadata import
    (:mod:`cmf_core.mlmd.mapping`), so that the same task gets the same metric names by each.
    """
    pairs = list(logged)
    outputs_of: dict[str, set[str]] = {}
    for output, name in pairs:
        outputs_of.setdefault(name, set()).add(output)
    return [f"{output}.{name}" if len(outputs_of[name]) > 1 else name for output, name in pairs]

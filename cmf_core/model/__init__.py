"""Frozen records of the CMF data model: pipeline -> stage -> execution, artifacts, events,
metrics and energy. One module per noun; all records carry the site that created them."""

from cmf_core.model.artifact import (
    ARTIFACT_TYPES,
    ROLE_PROPERTY,
    TASK_VALUE,
    Artifact,
    ArtifactLocation,
    is_task_value,
    register_artifact_type,
)
from cmf_core.model.energy import EnergyRecord
from cmf_core.model.event import Event, EventType
from cmf_core.model.execution import RUN_URL_PROPERTY, Execution, ExecutionStatus, run_url, web_url
from cmf_core.model.lineage_event import LineageEvent
from cmf_core.model.metric import Metric
from cmf_core.model.pipeline import Pipeline
from cmf_core.model.stage import Stage

Record = (
    Pipeline | Stage | Execution | Artifact | ArtifactLocation | Event | Metric | EnergyRecord
    | LineageEvent
)

__all__ = [
    "ARTIFACT_TYPES",
    "ROLE_PROPERTY",
    "RUN_URL_PROPERTY",
    "TASK_VALUE",
    "Artifact",
    "ArtifactLocation",
    "EnergyRecord",
    "Event",
    "EventType",
    "Execution",
    "ExecutionStatus",
    "LineageEvent",
    "Metric",
    "Pipeline",
    "Record",
    "Stage",
    "is_task_value",
    "register_artifact_type",
    "run_url",
    "web_url",
]

"""Artifact: data, a model, metrics or an environment, identified by its content digest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cmf_core.errors import InvalidInputError
from cmf_core.identity import check_digest
from cmf_core.model._base import check_name, check_time, frozen_dict, now
from cmf_core.model._display import Summary, artifact_line, short_digest

ARTIFACT_TYPES: set[str] = {
    "Dataset",
    "Model",
    "Metrics",
    "Step_Metrics",
    "Environment",
    "Dataslice",
    "Label",
    "Code",
}


#: artifact property that says what part an artifact plays beyond its type
ROLE_PROPERTY = "cmf.role"
#: the role of a value one task handed to the next in memory (an orchestrator's task result):
#: recorded for the lineage edge between the two executions, not a dataset or model of the
#: user's; ``cmf lineage`` folds it into that edge ("via task result")
TASK_VALUE = "task_value"


def is_task_value(artifact: Artifact) -> bool:
    """Whether ``artifact`` is a value passed between tasks in memory (:data:`TASK_VALUE`)."""
    return artifact.properties.get(ROLE_PROPERTY) == TASK_VALUE


def register_artifact_type(name: str) -> str:
    """Make ``name`` a known artifact type (types are open for more)."""
    check_name(name, "artifact type")
    ARTIFACT_TYPES.add(name)
    return name


def check_artifact_type(name: str) -> str:
    if name not in ARTIFACT_TYPES:
        raise InvalidInputError(
            f"unknown artifact type {name!r}; known types are {', '.join(sorted(ARTIFACT_TYPES))} "
            "(register more with cmf_core.model.register_artifact_type)"
        )
    return name


@dataclass(frozen=True, slots=True)
class Artifact(Summary):
    """The same bytes logged twice, by two executions or two sites, are one artifact."""

    id: str
    type: str
    name: str
    uri: str
    site: str
    created_at: float = field(default_factory=now)
    properties: Mapping[str, Any] = field(default_factory=dict)
    custom_properties: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_digest(self.id)
        check_artifact_type(self.type)
        check_name(self.name, "artifact name")
        check_name(self.uri, "artifact uri")  # as a location's: every store and peer takes it
        check_name(self.site, "site")
        object.__setattr__(self, "created_at", check_time(self.created_at, "created_at"))
        object.__setattr__(self, "properties", frozen_dict(self.properties))
        object.__setattr__(self, "custom_properties", frozen_dict(self.custom_properties))

    def _summary(self) -> str:
        return artifact_line(self)

    @property
    def digest(self) -> str:
        return self.id


@dataclass(frozen=True, slots=True)
class ArtifactLocation(Summary):
    """One place (site, URI) where an artifact's bytes can be fetched."""

    artifact_id: str
    site: str
    uri: str

    def __post_init__(self) -> None:
        check_digest(self.artifact_id)
        check_name(self.site, "site")
        check_name(self.uri, "artifact uri")

    def _summary(self) -> str:
        return f"ArtifactLocation {short_digest(self.artifact_id)} @{self.site} ({self.uri})"

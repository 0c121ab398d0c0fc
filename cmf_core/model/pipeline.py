"""Pipeline: a named ML workflow (an Airflow DAG, a Prefect flow, a KFP pipeline)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cmf_core.identity import name_id
from cmf_core.model._base import check_name, check_site, check_time, frozen_dict, now
from cmf_core.model._display import Summary


@dataclass(frozen=True, slots=True)
class Pipeline(Summary):
    """A pipeline is identified by its name: the same name at two sites is one pipeline."""

    name: str
    site: str
    created_at: float = field(default_factory=now)
    properties: Mapping[str, Any] = field(default_factory=dict)
    custom_properties: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name, "pipeline name")
        check_site(self.site, "pipeline site")
        object.__setattr__(self, "created_at", check_time(self.created_at, "created_at"))
        object.__setattr__(self, "properties", frozen_dict(self.properties))
        object.__setattr__(self, "custom_properties", frozen_dict(self.custom_properties))

    def _summary(self) -> str:
        return f"Pipeline {self.name} @{self.site}"

    @property
    def id(self) -> str:
        return name_id("pipeline", self.name)

"""The knowledge graph of tasks: nodes are unique tasks, an edge joins two tasks if and only if
their similarity is at least the threshold.

Similarity (:class:`SimilarityMetric`) of tasks ``a`` and ``b``:

* 0 when the categories differ (configurations of a regressor say nothing about a classifier);
* else ``1 - d``, with ``d`` the weighted root-mean-square difference of the meta-features both
  tasks have (each is in [0, 1], so ``d`` is too), times ``modality_penalty`` when the
  modalities differ.

The weights and the threshold are chosen by :func:`cmf_core.recommend.calibrate.calibrate`
(validated against how well configuration rankings agree between tasks); the shipped
knowledge base carries the chosen ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import networkx as nx

from cmf_core.errors import InvalidInputError
from cmf_core.recommend.task import DEFAULT_GROUPS, META_FEATURES, TaskDescription

DEFAULT_THRESHOLD = 0.8


def default_weights(groups: Iterable[str] = DEFAULT_GROUPS) -> dict[str, float]:
    """Weight 1 for every meta-feature of ``groups``."""
    wanted = set(groups)
    return {m.name: 1.0 for m in META_FEATURES if m.group in wanted}


@dataclass(frozen=True, slots=True)
class SimilarityMetric:
    """Weighted similarity over meta-features (see module docs). ``name`` labels the variant."""

    name: str = "uniform"
    weights: Mapping[str, float] = field(default_factory=default_weights)
    modality_penalty: float = 0.5

    def __post_init__(self) -> None:
        w = {str(k): float(v) for k, v in dict(self.weights).items()}
        if any(v < 0 or not math.isfinite(v) for v in w.values()) or not any(w.values()):
            raise InvalidInputError(
                f"similarity weights must be finite, >= 0 and not all 0; got {w}"
            )
        object.__setattr__(self, "weights", MappingProxyType(w))
        if not 0.0 <= self.modality_penalty <= 1.0:
            raise InvalidInputError(
                f"modality_penalty {self.modality_penalty} must be in [0, 1]"
            )

    def __call__(self, a: TaskDescription, b: TaskDescription) -> float:
        return self.similarity(a, b)

    def similarity(self, a: TaskDescription, b: TaskDescription) -> float:
        if a.category != b.category:
            return 0.0
        total = wsum = 0.0
        for key, w in self.weights.items():
            if w <= 0 or key not in a.meta_features or key not in b.meta_features:
                continue
            total += w * (a.meta_features[key] - b.meta_features[key]) ** 2
            wsum += w
        if wsum == 0:
            return 0.0
        sim = 1.0 - math.sqrt(total / wsum)
        if a.modality != b.modality:
            sim *= self.modality_penalty
        return sim

    def without(self, names: Iterable[str]) -> SimilarityMetric:
        """The same metric with the meta-features ``names`` left out (itself when nothing
        would be left)."""
        drop = set(names)
        kept = {k: w for k, w in self.weights.items() if k not in drop}
        if not any(kept.values()):
            return self
        return SimilarityMetric(f"{self.name}-without-{'-'.join(sorted(drop))}", kept,
                                self.modality_penalty)

    def differences(self, a: TaskDescription, b: TaskDescription) -> list[tuple[str, float]]:
        """(meta-feature, weighted squared difference) of the shared features, largest first."""
        out = [(k, w * (a.meta_features[k] - b.meta_features[k]) ** 2)
               for k, w in self.weights.items()
               if w > 0 and k in a.meta_features and k in b.meta_features]
        return sorted(out, key=lambda kv: -kv[1])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weights": {k: round(v, 6) for k, v in
                                               sorted(self.weights.items())},
                "modality_penalty": self.modality_penalty}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimilarityMetric:
        return cls(name=str(data.get("name", "custom")), weights=data["weights"],
                   modality_penalty=float(data.get("modality_penalty", 0.5)))


class KnowledgeGraph:
    """A networkx graph of tasks: node = task id (attribute ``task``), edge iff similarity >=
    ``threshold`` (attribute ``similarity``)."""

    def __init__(self, tasks: Iterable[TaskDescription], metric: SimilarityMetric | None = None,
                 threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise InvalidInputError(f"similarity threshold {threshold} must be in [0, 1]")
        self.metric = metric or SimilarityMetric()
        self.threshold = threshold
        self.graph: nx.Graph = nx.Graph()
        nodes = list(tasks)
        for t in nodes:
            self.graph.add_node(t.id, task=t)
        for i, a in enumerate(nodes):
            for b in nodes[i + 1:]:
                if a.id == b.id:
                    continue
                s = self.metric(a, b)
                if s >= threshold:
                    self.graph.add_edge(a.id, b.id, similarity=s)

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def task(self, task_id: str) -> TaskDescription:
        return self.graph.nodes[task_id]["task"]

    def tasks(self) -> list[TaskDescription]:
        return [d["task"] for _, d in self.graph.nodes(data=True)]

    def similarities(self, query: TaskDescription) -> list[tuple[str, float]]:
        """(task id, similarity) of every other task, most similar first."""
        out = [(tid, self.metric(query, d["task"])) for tid, d in self.graph.nodes(data=True)
               if tid != query.id]
        return sorted(out, key=lambda kv: (-kv[1], kv[0]))

    def neighbours(self, query: TaskDescription) -> list[tuple[str, float]]:
        """Tasks that would share an edge with ``query``: similarity >= threshold."""
        if query.id in self.graph:
            return sorted(((n, self.graph.edges[query.id, n]["similarity"])
                           for n in self.graph.neighbors(query.id)), key=lambda kv: -kv[1])
        return [(t, s) for t, s in self.similarities(query) if s >= self.threshold]

    def components(self) -> list[set[str]]:
        """Connected groups of tasks, largest first."""
        return sorted(nx.connected_components(self.graph), key=len, reverse=True)

"""Lineage queries over the store API: parents/children, closures, provenance, stage DAGs."""

from cmf_core.lineage.query import LineageNode, Provenance, Query, fold_task_values

__all__ = ["LineageNode", "Provenance", "Query", "fold_task_values"]

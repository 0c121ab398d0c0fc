"""Lineage queries over the store API: parents/children, closures, provenance, stage DAGs."""

from cmf_core.lineage.query import LineageNode, Provenance, Query

__all__ = ["LineageNode", "Provenance", "Query"]

"""One router per resource: ``lineage`` (OpenLineage, Marquez-compatible), ``pipelines``,
``executions``, ``artifacts``, ``metrics``; ``federation`` when it is installed."""

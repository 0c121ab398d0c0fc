"""The OpenLineage bridge: CMF records <-> OpenLineage events (spec 2-0-2).

* :mod:`~cmf_core.openlineage.validate`: check events and facets against the vendored spec.
* :mod:`~cmf_core.openlineage.facets`: CMF's custom facets (``cmf_params``, ``cmf_metrics``,
  ``cmf_energy``, ``cmf_site``, ``cmf_execution``, ``cmf_artifact``).
* :mod:`~cmf_core.openlineage.convert`: an execution -> START / COMPLETE|FAIL|ABORT RunEvents.
* :mod:`~cmf_core.openlineage.ingest`: any OpenLineage event -> CMF records -> the store.
* :mod:`~cmf_core.openlineage.naming`: artifact URI <-> dataset namespace and name.

The names below are imported on first use, so importing this package stays cheap for code that
only needs a submodule (such as the emitter). ``ingest`` is both a module and its main
function: import the function as ``from cmf_core.openlineage.ingest import ingest``.
"""

from __future__ import annotations

from cmf_core.lazy import lazy_exports

_EXPORTS = {
    "PRODUCER": "cmf_core.openlineage.facets",
    "EventKind": "cmf_core.openlineage.validate",
    "FacetLocation": "cmf_core.openlineage.validate",
    "Problem": "cmf_core.openlineage.validate",
    "problems": "cmf_core.openlineage.validate",
    "validate_event": "cmf_core.openlineage.validate",
    "validate_facet": "cmf_core.openlineage.validate",
    "DEFAULT_NAMESPACE": "cmf_core.openlineage.convert",
    "ExecutionLineage": "cmf_core.openlineage.convert",
    "to_event_dicts": "cmf_core.openlineage.convert",
    "to_run_events": "cmf_core.openlineage.convert",
    "IngestResult": "cmf_core.openlineage.ingest",
    "canonical_event_id": "cmf_core.openlineage.ingest",
    "event_to_records": "cmf_core.openlineage.ingest",
    "dataset_naming": "cmf_core.openlineage.naming",
    "dataset_uri": "cmf_core.openlineage.naming",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)

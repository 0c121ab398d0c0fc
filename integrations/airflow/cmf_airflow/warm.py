"""Import what recording a task try needs, once, in the process that forks task processes.

Under Airflow 3 every task try runs in a fresh process: the LocalExecutor's workers are forked
from the scheduler when it starts, and each try is forked from a worker by the Task SDK
supervisor. The modules the listener imports lazily (OpenLineage's client, CMF's emitter,
ingest, store and energy meters) were therefore imported anew by every try (3-4 s in a fresh
interpreter on a shared 2-core VM, 5-9 s with four tries starting at once), which the try's
end hook waited for (its START is recorded by then), and which kept a deferring try's
process alive until its trigger fired and Airflow failed the try
(``benchmarks/airflow_e2e.py``). Imported in the scheduler before
it forks its workers, they are inherited by every task process.

Only modules are imported: no store is opened, no thread started (a thread at fork time would
be a hazard for the children).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

log = logging.getLogger("cmf")

MODULES = (
    "openlineage.client.event_v2",
    "openlineage.client.facet_v2",
    "openlineage.client.uuid",
    "cmf_core.openlineage.emit",
    "cmf_core.openlineage.facets",
    "cmf_core.openlineage.ingest",
    "cmf_core.openlineage.convert",
    "cmf_core.openlineage.local",
    "cmf_core.store.sqlite",
    "cmf_core.energy",
)
"""What the listener imports lazily on a try's way from START to its end."""

FORKING_JOBS = frozenset({"Job"})
"""The components whose ``on_starting`` warms the imports: Airflow's jobs (the scheduler, whose
LocalExecutor forks task processes; the triggerer and the DAG processor too, as ``job_type``
is not yet set when the hook runs)."""


def forks_tasks(component: Any) -> bool:
    """Whether ``component`` (the argument of ``on_starting``) is an Airflow job process."""
    return type(component).__name__ in FORKING_JOBS


def warm_imports() -> list[str]:
    """Import :data:`MODULES`; the names that could not be imported (left to the try, which
    imports them itself and reports any failure there)."""
    missing = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as e:  # an optional part missing here: the try will say so
            log.debug("cmf: could not import %s ahead of the task processes: %s", name, e)
            missing.append(name)
    return missing

"""cmf-foundation core: the CMF metadata model, stores, lineage, energy, federation.

Orchestrator-agnostic: nothing here imports Airflow, Prefect or Kubeflow. The public names below
are imported lazily, so ``import cmf_core.energy`` inside a freshly started task process does not
pay for SQLAlchemy, pydantic or networkx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cmf_core.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Cmf": "cmf_core.logger",
    "CmfError": "cmf_core.errors",
    "Query": "cmf_core.lineage",
    "Settings": "cmf_core.config",
    "Store": "cmf_core.store",
    "load_settings": "cmf_core.config",
    "open_store": "cmf_core.store",
}

if TYPE_CHECKING:
    from cmf_core.config import Settings, load_settings
    from cmf_core.errors import CmfError
    from cmf_core.lineage import Query
    from cmf_core.logger import Cmf
    from cmf_core.store import Store, open_store


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = ["Cmf", "CmfError", "Query", "Settings", "Store", "load_settings", "open_store"]

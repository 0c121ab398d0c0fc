"""cmf-foundation core: the CMF metadata model, stores, lineage, energy, federation.

Orchestrator-agnostic: nothing here imports Airflow, Prefect or Kubeflow.
"""

from cmf_core.config import Settings, load_settings
from cmf_core.errors import CmfError
from cmf_core.lineage import Query
from cmf_core.logger import Cmf
from cmf_core.store import Store, open_store

__version__ = "0.1.0"

__all__ = ["Cmf", "CmfError", "Query", "Settings", "Store", "load_settings", "open_store"]

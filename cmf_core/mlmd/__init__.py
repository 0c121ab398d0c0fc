"""ML-Metadata (MLMD) interop: import cmflib and Kubeflow Pipelines MLMD stores, export CMF
pipelines as cmflib-style MLMD files.

* :func:`import_mlmd` reads an MLMD store with plain SQL (an SQLite file or a MySQL/PostgreSQL
  URL; no ``ml-metadata`` package needed) and writes the CMF records it maps to in one store
  transaction. Idempotent.
* :func:`export_mlmd` writes CMF pipelines into a new MLMD SQLite file with the ``ml-metadata``
  library (the ``mlmd`` extra, in its own environment because it pins protobuf<5), laid out as
  cmflib lays it out so cmflib's ``CmfQuery`` reads it.

See docs/mlmd.md for what maps to what.
"""

from cmf_core.mlmd.importer import MlmdImportReport, import_mlmd, plan_mlmd_import
from cmf_core.mlmd.reader import read_snapshot
from cmf_core.mlmd.writer import MlmdExportReport, export_mlmd

__all__ = [
    "MlmdExportReport",
    "MlmdImportReport",
    "export_mlmd",
    "import_mlmd",
    "plan_mlmd_import",
    "read_snapshot",
]

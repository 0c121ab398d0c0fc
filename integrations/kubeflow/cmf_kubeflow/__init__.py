"""Kubeflow Pipelines integration of cmf-foundation.

* :func:`track` / :func:`track_file`: every Python component run of a pipeline records its
  execution, parameters, input/output artifacts, status and energy into CMF, with no change to
  the component code (:mod:`cmf_kubeflow.tracking`, :mod:`cmf_kubeflow.bootstrap`).
* :data:`recommend_seed` and :data:`federated_sync`: lightweight components to use in any
  ``@dsl.pipeline`` (:mod:`cmf_kubeflow.components`).
* :func:`import_local_run` and :class:`KfpRunReader`: CMF lineage from a finished ``kfp.local``
  run folder or from a KFP cluster's v2beta1 REST API (:mod:`cmf_kubeflow.importer`).

Importing this package is cheap (nothing from kfp or cmf_core is loaded until a name is used):
the start-up hook imports it inside every tracked executor.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "track": "cmf_kubeflow.tracking",
    "track_file": "cmf_kubeflow.tracking",
    "TrackingReport": "cmf_kubeflow.tracking",
    "recommend_seed": "cmf_kubeflow.components",
    "federated_sync": "cmf_kubeflow.components",
    "import_local_run": "cmf_kubeflow.importer",
    "KfpRunReader": "cmf_kubeflow.importer",
    "ImportResult": "cmf_kubeflow.importer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cmf_kubeflow' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

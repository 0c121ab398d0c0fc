"""cmf_prefect: lineage, energy and carbon of Prefect 3 flows, recorded into CMF.

Three routes, one result (a Prefect run recorded by two routes is one CMF execution):

* in-process, no code change: ``PREFECT_PLUGINS_ENABLED=true`` (:mod:`cmf_prefect.auto`,
  loaded by the ``prefect.plugins`` entry point :mod:`cmf_prefect.plugin`);
* out of process, no code change: ``cmf prefect watch --api URL`` (:mod:`cmf_prefect.watcher`);
* explicit: state hooks and the ``@track`` decorator (:mod:`cmf_prefect.hooks`).

Tasks for flows: :func:`~cmf_prefect.tasks.recommend_seed`,
:func:`~cmf_prefect.tasks.federated_sync`; blocks: :class:`~cmf_prefect.blocks.CmfConnection`,
:class:`~cmf_prefect.blocks.CmfPeer`. Events are built in :mod:`cmf_prefect.adapter`.

Names below are imported on first use: this package is imported while ``prefect`` itself is
being imported (by the plugin), so it must not import Prefect's modules eagerly.
"""

from __future__ import annotations

from cmf_core.lazy import lazy_exports

_EXPORTS = {
    "install": "cmf_prefect.auto",
    "uninstall": "cmf_prefect.auto",
    "Watcher": "cmf_prefect.watcher",
    "on_running": "cmf_prefect.hooks",
    "on_completion": "cmf_prefect.hooks",
    "on_failure": "cmf_prefect.hooks",
    "track": "cmf_prefect.hooks",
    "recommend_seed": "cmf_prefect.tasks",
    "federated_sync": "cmf_prefect.tasks",
    "CmfConnection": "cmf_prefect.blocks",
    "CmfPeer": "cmf_prefect.blocks",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)

"""openlineage-python transports that record into CMF, one file per kind.

Transport contract (openlineage-python's ``transport/transport.py``): a ``Transport`` sets
``kind`` and ``config_class`` and has ``emit(event)`` and ``close(timeout) -> bool``; its
``Config`` has ``from_dict(params)``. openlineage-python loads ours by dotted path, from
configuration alone::

    # openlineage.yml
    transport:
      type: cmf_core.openlineage.transport.cmf.CmfTransport
      store_url: sqlite:////var/lib/cmf/cmf.db   # optional; default: CMF settings

or ``OPENLINEAGE__TRANSPORT__TYPE=cmf_core.openlineage.transport.cmf.CmfTransport``.

* :mod:`~cmf_core.openlineage.transport.cmf` (``kind = "cmf"``): validate and ingest into the
  local CMF store (spooling to disk when the store cannot be written).
* :mod:`~cmf_core.openlineage.transport.memory` (``kind = "cmf_memory"``): validate and keep
  events in a list; for tests of producers.
"""

from __future__ import annotations

CMF_TRANSPORT = "cmf_core.openlineage.transport.cmf.CmfTransport"
MEMORY_TRANSPORT = "cmf_core.openlineage.transport.memory.MemoryTransport"

__all__ = ["CMF_TRANSPORT", "MEMORY_TRANSPORT"]

"""The CMF server (``cmf serve``): OpenLineage ingest, Marquez-compatible lineage reads and the
CMF REST API over one store. FastAPI and uvicorn are the ``server`` extra.

>>> from cmf_core.server import create_app
>>> app = create_app(store)  # then: uvicorn.run(app)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cmf_core.server.app import create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from cmf_core.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app"]

"""FastAPI dependencies shared by the routers: the store, the settings, the writer, paging."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request

from cmf_core.config import Settings
from cmf_core.server.writer import IngestWriter
from cmf_core.store import Store

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 2**63 - 1
"""Largest ``offset`` (and other counts passed to SQL): a 64-bit integer, all SQL stores take."""


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_writer(request: Request) -> IngestWriter:
    return request.app.state.writer


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
WriterDep = Annotated[IngestWriter, Depends(get_writer)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]


def page(items: list[Any], limit: int, offset: int, total: int | None,
         more: bool | None = None) -> dict[str, Any]:
    """One page: ``items``, ``total`` (None when not counted), ``limit``, ``offset`` and
    ``next_offset`` (None on the last page)."""
    if more is None:
        more = total is not None and offset + len(items) < total
    return {"items": items, "total": total, "limit": limit, "offset": offset,
            "next_offset": offset + len(items) if more else None}

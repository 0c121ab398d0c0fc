"""Stores, one backend per file, picked by the URL scheme (the backend's ``kind``).

>>> store = open_store("sqlite:///.cmf/cmf.db", site="hpc")

Backends register with :func:`register_store`; a dotted path ``package.module:Class`` in the
URL's place is not supported on purpose: a store URL names a database, not code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cmf_core.errors import ConfigError
from cmf_core.store.base import Closure, ExecutionFilter, Store
from cmf_core.task_values import hide_password

if TYPE_CHECKING:
    from cmf_core.config import Settings

StoreFactory = Callable[[str, str, str, bool], Store]  # url, site, durability, create
_REGISTRY: dict[str, StoreFactory] = {}


def register_store(kind: str) -> Callable[[StoreFactory], StoreFactory]:
    def deco(factory: StoreFactory) -> StoreFactory:
        _REGISTRY[kind] = factory
        return factory

    return deco


@register_store("sqlite")
def _sqlite(url: str, site: str, durability: str, create: bool) -> Store:
    from cmf_core.store.sqlite import SqliteStore

    return SqliteStore(url, site, durability, create=create)


@register_store("postgresql")
def _postgres(url: str, site: str, durability: str, create: bool) -> Store:
    from cmf_core.store.postgres import PostgresStore

    return PostgresStore(url, site, durability, create=create)


def open_store(url: str | None = None, site: str | None = None,
               settings: Settings | None = None, *, create: bool = True) -> Store:
    """Open (and create or migrate) the store at ``url``; defaults come from settings.

    With ``create=False`` (commands that only read) a store that does not exist yet is an
    error, and nothing is created."""
    import sqlalchemy as sa  # here: the journal companion imports this package without it

    from cmf_core.config import load_settings

    if url is None or site is None or settings is None:
        settings = settings or load_settings()
    url = url or settings.resolved_store_url
    site = site or settings.site
    durability = settings.durability if settings else "normal"
    try:
        parsed = sa.engine.make_url(url)
        kind = parsed.get_backend_name()
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"store URL {url!r} is not a URL; use sqlite:///path/cmf.db or "
            "postgresql://user@host/db"
        ) from None
    if "@" in (parsed.host or ""):
        # the URL is cut at its first '@': the rest of the password became the host name, and
        # showed in "failed to resolve host" (the URL is not repeated: it holds the password)
        raise ConfigError(
            f"the {kind} store URL has more than one '@': a user name or password holding '@' "
            "(or ':', '/', '?', '#', '%') must be percent-encoded in the URL, '@' as %40 "
            "(urllib.parse.quote(password, safe=''))"
        )
    factory = _REGISTRY.get(kind)
    if factory is None:
        raise ConfigError(
            f"unknown store kind {kind!r} in {hide_password(url)!r}; known kinds: "
            f"{', '.join(sorted(_REGISTRY))}"
        )
    store = factory(url, site, durability, create)
    if settings is not None and hasattr(store, "companion_enabled"):
        store.companion_enabled = settings.journal_companion
    return store


__all__ = ["Closure", "ExecutionFilter", "Store", "open_store", "register_store"]

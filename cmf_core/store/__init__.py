"""Stores, one backend per file, picked by the URL scheme (the backend's ``kind``).

>>> store = open_store("sqlite:///.cmf/cmf.db", site="hpc")

Backends register with :func:`register_store`; a dotted path ``package.module:Class`` in the
URL's place is not supported on purpose: a store URL names a database, not code.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmf_core.errors import ConfigError
from cmf_core.store.base import CarbonRow, Closure, ExecutionFilter, Store
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


class _Shared:
    """One open store and the loggers using it (held weakly: a dropped logger stops using it
    without anything having to run when it is collected)."""

    __slots__ = ("store", "users")

    def __init__(self, store: Store) -> None:
        self.store = store
        self.users: weakref.WeakSet[Any] = weakref.WeakSet()


#: SQLite and PostgreSQL stores opened by ``Cmf`` loggers in this process, by what makes them
#: behave differently: see :func:`shared_store`
_SHARED: dict[tuple[Any, ...], _Shared] = {}
_SHARED_LOCK = threading.Lock()


def _forget_shared() -> None:
    """In a forked child: the parent's stores are its loggers' (each went on with a store reset
    for the child); a logger made in the child opens a store of its own, which closes when it
    does. The lock is new: a thread of the parent may have held it at the fork."""
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    _SHARED.clear()


os.register_at_fork(after_in_child=_forget_shared)


def _shared_key(url: str, site: str, settings: Settings) -> tuple[Any, ...] | None:
    """The key a store at ``url`` is shared under; None for a store that is not shared (not
    a kind that is, or a URL :func:`open_store` is left to refuse)."""
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None
    kind = parsed.get_backend_name()
    if kind == "postgresql" and "@" not in (parsed.host or ""):
        # the whole URL, password and options included (a logger given another password or
        # sslmode must not borrow a connection it could not make); the driver named or not
        # (the store picks psycopg either way); durability and the journal companion are
        # SQLite's settings only
        return ("postgresql", parsed.set(drivername="postgresql").render_as_string(
            hide_password=False), site)
    db = parsed.database or ""
    if kind != "sqlite" or db in ("", ":memory:") or parsed.query:
        return None
    # the file as SqliteStore opens it (a relative path names a file in the folder of now)
    return ("sqlite", str(Path(db).expanduser().absolute()), site, settings.durability,
            settings.journal_companion)


def shared_store(url: str | None, site: str, settings: Settings, user: object
                 ) -> tuple[Store, Callable[[], None]]:
    """Open the store at ``url`` for ``user`` (a ``Cmf`` logger); return it and the function
    that releases it (call it once).

    An embedded (SQLite) store is shared by the loggers of this process that open the same file
    with the same site, durability and journal companion setting: a notebook cell that makes a
    new ``Cmf`` each time it runs, and never closes the last, reuses the one store (its journal
    file, connections and applier thread) instead of leaving one more open each run. A
    PostgreSQL store is shared by the loggers that give the same URL (password and options
    included) and site: a pipeline that makes one ``Cmf`` per stage holds one writer connection
    and one pool, not two or more server connections per logger (30 loggers held 60, and a
    server's ``max_connections`` is 100 by default). The store is closed when its last user
    releases it; one whose users were all dropped unclosed stays open for the next logger (and
    is applied at exit). A store whose file was deleted or replaced since is not reused. Other
    stores are opened for ``user`` alone and closed by the release."""
    url = url or settings.resolved_store_url
    key = _shared_key(url, site, settings)
    if key is None:
        store = open_store(url, site, settings)
        return store, store.close
    stale: Store | None = None
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is not None and not shared.store.reusable():  # type: ignore[attr-defined]
            del _SHARED[key]
            if not shared.users:
                stale = shared.store
            shared = None
        if shared is None:
            shared = _SHARED[key] = _Shared(open_store(url, site, settings))
        shared.users.add(user)
    if stale is not None:
        _close_quietly(stale)

    def release() -> None:
        with _SHARED_LOCK:
            shared.users.discard(user)
            if shared.users:
                return
            if _SHARED.get(key) is shared:
                del _SHARED[key]
        shared.store.close()

    return shared.store, release


def _close_quietly(store: Store) -> None:
    """Close a store no logger uses any more (its file went away): never raise."""
    from cmf_core.guard import report

    try:
        store.close()
    except Exception as e:
        report(f"closing the store {getattr(store, 'safe_url', '')}", e)


__all__ = ["CarbonRow", "Closure", "ExecutionFilter", "Store", "open_store", "register_store",
           "shared_store"]

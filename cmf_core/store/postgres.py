"""PostgreSQL backend (``kind = "postgresql"``), for sites that outgrow one machine.

URL: ``postgresql://user:password@host:port/database`` (driver: psycopg 3, the ``postgres``
extra). Writes take a transaction-scoped advisory lock so concurrent writers keep ``seq`` (the
change counter federation relies on) in commit order; every commit is durable (fsync per the
server's ``synchronous_commit``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from cmf_core.errors import ConfigError, StoreError
from cmf_core.store.sql import SqlStore, db_error_text

_LOCK_KEY = 0x636D66  # "cmf"


class PostgresStore(SqlStore):
    kind: ClassVar[str] = "postgresql"
    placeholder: ClassVar[str] = "%s"
    least: ClassVar[str] = "LEAST"

    def __init__(self, url: str, site: str, durability: str = "normal",
                 create: bool = True) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError(
                "the PostgreSQL store needs psycopg: pip install 'cmf-foundation[postgres]'"
            ) from None
        parsed = sa.engine.make_url(url).set(drivername="postgresql+psycopg")
        self._conninfo = parsed.render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://")
        engine = sa.create_engine(parsed, pool_pre_ping=True)
        self._closed = False
        super().__init__(url, site, engine, create=create)

    def reusable(self) -> bool:
        """Whether this store may serve one more ``Cmf`` logger of this process
        (:func:`cmf_core.store.shared_store`): it is not closed (a lost connection is no
        reason: the next write connects anew, and the pool checks its connections)."""
        return not self._closed

    def close(self) -> None:
        self._closed = True
        super().close()

    def _among_many(self, column: sa.ColumnElement[Any], values: list[Any]
                    ) -> sa.ColumnElement[bool]:
        # ``column = ANY(:values)``: the ids as one text[] parameter (same index lookups)
        return column == sa.any_(sa.bindparam(None, values, type_=ARRAY(sa.Text)))

    def _connect_writer(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self._conninfo, autocommit=False)
        except psycopg.Error as e:
            raise self._translate_error(e) from e

    def _writer_lost(self, conn: Any) -> bool:
        # psycopg marks a connection the server ended (or that broke) as ``broken``
        return bool(conn.closed or conn.broken)

    def _begin(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))

    def _existing_tables(self, cur: Any) -> set[str]:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {r[0] for r in cur.fetchall()}

    def _translate_error(self, exc: Exception) -> Exception:
        return StoreError(f"PostgreSQL store {self.safe_url} failed: {db_error_text(exc)}")

    def _rollback(self, conn: Any, cur: Any) -> None:
        conn.rollback()

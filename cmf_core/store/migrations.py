"""Named, ordered schema migrations, each applied in the transaction that records it.

A store lists the migrations it has had in ``cmf_migrations``. Opening a store applies the
pending ones; a store holding a migration this code does not know was written by a newer
cmf-foundation and is refused rather than touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from cmf_core.store import schema

STORE_FORMAT = "cmf-foundation"


@dataclass(frozen=True)
class Migration:
    name: str
    statements: Callable[[Dialect], list[str]]


def _initial(dialect: Dialect) -> list[str]:
    out: list[str] = []
    for table in schema.metadata.sorted_tables:
        out.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            out.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    out.append("INSERT INTO cmf_counter (name, value) VALUES ('seq', 0)")
    return out


MIGRATIONS: list[Migration] = [
    Migration("0001_initial", _initial),
]

KNOWN = [m.name for m in MIGRATIONS]


def now() -> float:
    return time.time()

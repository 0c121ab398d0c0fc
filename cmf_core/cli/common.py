"""Options and output helpers shared by every command group."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cmf_core import jsonutil
from cmf_core.config import load_settings
from cmf_core.store import Store, open_store

StoreOpt = Annotated[str | None, typer.Option("--store", help="Store URL (default: CMF_STORE_URL "
                                              "or the embedded SQLite store).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

console = Console()


def get_store(url: str | None) -> Store:
    settings = load_settings(store_url=url)
    return open_store(settings=settings)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(jsonutil.clean(data), indent=2, sort_keys=True) + "\n")


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def short(digest: str, n: int = 12) -> str:
    kind, _, hexpart = digest.partition(":")
    return f"{kind}:{hexpart[:n]}" if hexpart else digest[:n]


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[str(v) for v in r])
    console.print(t)


def parse_time(value: str | None) -> float | None:
    """ISO date/time (UTC if no zone) to Unix seconds."""
    if value is None:
        return None
    from cmf_core.errors import InvalidInputError

    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"time {value!r} is not ISO 8601 (e.g. 2026-11-27T10:00)") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.timestamp()

"""Options and output helpers shared by every command group."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cmf_core import jsonutil
from cmf_core.config import load_settings
from cmf_core.errors import NotFoundError
from cmf_core.model._base import some
from cmf_core.store import Store, open_store

StoreOpt = Annotated[str | None, typer.Option("--store", help="Store URL (default: CMF_STORE_URL "
                                              "or the embedded SQLite store).")]
SQL_INT_MAX = 2**63 - 1


def _sql_int(value: int | None) -> int | None:
    """Refuse a count above an SQL integer's range (checked here, not by a ``max``, so that
    the help does not print ``[0<=x<=9223372036854775807]`` on every count)."""
    if value is not None and value > SQL_INT_MAX:
        raise typer.BadParameter(f"{value} is not less than or equal to {SQL_INT_MAX}, the "
                                 "largest count a store holds")
    return value


#: bounds of counts and positions (--limit, --offset, --since-seq, --depth): an SQL integer
COUNT: dict[str, Any] = {"min": 0, "callback": _sql_int, "metavar": "<int>"}
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

console = Console()

# Characters that show nothing, or turn the text around them, as the web UI writes them out
# (cmf_core/server/static/dom.js): a recorded name holding one would pass for another
# ("churn" + U+200B) or reverse what follows it on the line ("evil" + U+202E + "gnp.exe").
# Joiners and variation selectors only where they join nothing (next to ASCII or at an end).
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b\u200e\u200f"
    "\u202a-\u202e\u2060-\u206f\u3164\ufeff\uffa0]"
    "|(?:^|(?<=[\x00-\x7f]))[\u200c\u200d\ufe00-\ufe0f]"
    "|[\u200c\u200d](?=$|[\x00-\x7f])"
    "|(?:^|(?<=[\x00-\x7f]))[\U000e0000-\U000e007f]")


def visible(value: object) -> str:
    """``value`` as text a terminal shows as it is: each invisible or direction-changing
    character written out as ``<U+202E>``."""
    return _INVISIBLE.sub(lambda m: f"<U+{ord(m.group()):04X}>", str(value))


def visible_json(text: str) -> str:
    """JSON text with each invisible or direction-changing character of its strings written
    as a JSON escape (``\\u202e``): the same data, shown as it is in a terminal."""
    return _INVISIBLE.sub(lambda m: json.dumps(m.group())[1:-1], text)


def get_store(url: str | None, *, create: bool = False) -> Store:
    """The store at ``url`` (default: the configured one). Only the commands that write into
    it (init, import, sync) pass ``create``: a mistyped --store given to one that reads fails
    instead of making an empty store there."""
    settings = load_settings(store_url=url)
    return open_store(settings=settings, create=create)


@contextlib.contextmanager
def new_store_undone_on_error(url: str | None) -> Iterator[Store]:
    """The store for a command that writes into it, created if missing; if the command fails,
    a store it created is removed again, with the folders made for it."""
    from cmf_core.store.sqlite import new_paths, remove_new

    settings = load_settings(store_url=url)
    made = new_paths(settings.resolved_store_url)
    done = False
    try:
        with open_store(settings=settings) as store:
            yield store
        done = True
    finally:
        if not done:
            remove_new(made)


PipelineOpt = Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline.")]
#: a pipeline given as the first argument (``cmf stages churn``), as before --pipeline existed
PipelineArg = Annotated[str | None, typer.Argument(
    hidden=True, metavar="PIPELINE", show_default=False,
    help="Only this pipeline (the same as --pipeline; kept for existing scripts).")]


def one_pipeline(positional: str | None, option: str | None) -> str | None:
    """The pipeline of a command that takes it as --pipeline and, as it used to, as its first
    argument; both naming different pipelines is an error."""
    if positional is not None and option is not None and positional != option:
        from cmf_core.errors import InvalidInputError

        raise InvalidInputError(f"two pipelines given, {positional!r} and --pipeline "
                                f"{option!r}: give one, with --pipeline")
    return option if option is not None else positional


def check_pipelines(s: Store, names: Iterable[str] | None) -> None:
    """Refuse a pipeline name the store does not know (a typo would select nothing)."""
    for name in names or ():
        if s.get_pipeline(name) is None:
            known = sorted(p.name for p in s.list_pipelines())
            raise NotFoundError(f"no pipeline named {name!r} in this store ("
                                + (f"known: {some(known)})" if known else "it has none yet)"))


def stdout_or_fail() -> Any:
    """``sys.stdout``; where it is closed (``cmf ... --json >&-``, a daemon without one) an
    error saying so, not an AttributeError traceback."""
    if sys.stdout is None:
        from cmf_core.errors import InvalidInputError

        raise InvalidInputError("standard output is closed: nothing to write to (redirect it "
                                "to a file or pipe)")
    return sys.stdout


def print_json(data: Any) -> None:
    stdout_or_fail().write(json.dumps(jsonutil.clean(data), indent=2, sort_keys=True) + "\n")


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def short(digest: str, n: int = 12) -> str:
    """An artifact digest's first ``n`` hex characters (``cmf show`` and ``cmf lineage`` take
    it back). Execution ids are always shown whole: a UUIDv7 begins with its time."""
    kind, _, hexpart = digest.partition(":")
    return f"{kind}:{hexpart[:n]}" if hexpart else digest[:n]


def fits(t: Table) -> bool:
    """Whether the table ``t`` fits the terminal without breaking a cell's lines."""
    return console.measure(t, options=console.options.update_width(10**6)).maximum \
        <= console.width


def table(title: str, columns: list[str], rows: list[list[Any]], *,
          whole: Iterable[str] = (), narrow: Callable[[], None] | None = None) -> None:
    """Print a table ("TITLE: none." without rows). Columns in ``whole`` (ids, digests) are
    never broken, so they can be copied; the others wrap and give way first when the terminal
    is narrow. Where the table does not fit the terminal, ``narrow()`` prints the rows instead,
    by default a block each (:func:`blocks`): a table folded paths and names a few letters a
    line at 80 columns."""
    if not rows:  # not an empty frame
        console.print(f"{title}: none.", markup=False, highlight=False)
        return
    rows = [[visible(v) for v in r] for r in rows]
    natural = Table(*columns)
    for r in rows:
        natural.add_row(*[Text(v) for v in r])
    if not fits(natural):
        (narrow or (lambda: blocks(title, columns, rows)))()
        return
    whole = set(whole)
    t = Table(title=title, show_lines=False)
    for i, c in enumerate(columns):
        if c in whole:
            t.add_column(c, no_wrap=True, min_width=max((len(str(r[i])) for r in rows),
                                                        default=0))
        else:
            t.add_column(c, overflow="fold")
    for r in rows:  # Text, not str: a name such as "model[red].pkl" is not rich markup
        t.add_row(*[Text(v) for v in r])
    console.print(t)


def blocks(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print each row as its first cell, whole, on a line of its own, then one indented
    ``column: value`` line per other cell (a cell's lines joined with "; "), for a terminal
    too narrow for the table; long lines wrap at words."""
    console.print(title, markup=False, highlight=False)
    for r in rows:
        console.print(Text(visible(r[0]), style="bold"))
        for name, value in zip(columns[1:], r[1:], strict=True):
            text = "; ".join(line for line in visible(value).split("\n") if line)
            if text:
                console.print(Text(f"  {name}: {text}"))


SINCE_HELP = ("Started at or after (ISO time; UTC unless it has an offset: 2024-05-01, "
              "2024-05-01T12:00, 2024-05-01T17:30+05:30).")
UNTIL_HELP = "Started before (ISO time; UTC unless it has an offset)."


def parse_time(value: str | None) -> float | None:
    """ISO date/time (UTC if no zone) to Unix seconds."""
    if value is None:
        return None
    from cmf_core.errors import InvalidInputError

    try:
        d = datetime.fromisoformat(value)
        if d.tzinfo is None:
            d = d.replace(tzinfo=UTC)
        return d.timestamp()
    except (ValueError, OverflowError) as e:
        if str(e).startswith("Invalid isoformat string"):  # the text's shape, not a field
            raise InvalidInputError(
                f"time {value!r} is not ISO 8601 (e.g. 2026-11-27T10:00)") from None
        raise InvalidInputError(f"time {value!r} is ISO 8601 but out of range: {e} (a valid "
                                "date from 0001-01-01 to 9999-12-31 is needed)") from None

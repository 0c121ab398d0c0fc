"""The ``cmf`` command line: a thin layer over the Python API.

Every ``CmfError`` becomes one line on stderr and exit code 1, here and only here, its invisible
and direction-changing characters written out (``<U+202E>``) as the tables write them.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from cmf_core.errors import CmfError


class _FlagsWithoutType:
    """typer's help prints ``<bool>`` in the type column of every flag (``--json <bool>``),
    which reads as if the flag took a value: a flag's type column is left empty (its
    metavar, which a flag never shows elsewhere, set to "")."""

    def format_help(self, ctx: typer.Context, formatter: object) -> None:
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            if getattr(param, "is_flag", False) and not getattr(param, "count", False) \
                    and param.metavar is None:
                param.metavar = ""
        super().format_help(ctx, formatter)  # type: ignore[misc]


class CmfCommand(_FlagsWithoutType, TyperCommand):
    """Every ``cmf`` command (set for each one, plugins' too, by :func:`_one_line_summaries`)."""


class CmfGroup(_FlagsWithoutType, TyperGroup):
    """``cmf`` and each of its command groups."""


app = typer.Typer(
    cls=CmfGroup,
    name="cmf",
    help="cmf-foundation: lineage, energy and carbon of AI pipelines, federated across sites.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"cmf-foundation {version('cmf-foundation')}")
        except PackageNotFoundError:
            typer.echo("cmf-foundation (not installed as a package: running from a source tree)")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """The options before any command."""


def _register() -> None:
    from cmf_core.cli import (
        carbon_cmds,
        check_cmds,
        lineage_cmds,
        reap_cmds,
        records_cmds,
        serve_cmds,
        spool_cmds,
        store_cmds,
        sync_cmds,
    )

    store_cmds.register(app)
    reap_cmds.register(app)
    records_cmds.register(app)
    lineage_cmds.register(app)
    carbon_cmds.register(app)
    serve_cmds.register(app)
    spool_cmds.register(app)
    sync_cmds.register(app)
    check_cmds.register(app)
    from cmf_core.recommend.cli import recommend_command

    app.command("recommend")(recommend_command)
    # integrations add command groups (e.g. `cmf prefect watch`) through this entry point group
    from importlib.metadata import entry_points

    for ep in entry_points(group="cmf.commands"):
        try:
            ep.load()(app)
        except ImportError:  # the integration's extra is not installed
            continue
    _one_line_summaries(app)


def _one_line_summaries(group: typer.Typer) -> None:
    """Make every command a :class:`CmfCommand` and every group a :class:`CmfGroup` (flags
    without a type in their help); give every command without a ``short_help`` its
    docstring's first paragraph on one line, and its help the docstring's paragraphs each on
    one line: typer's rich mode keeps a docstring's line breaks, which the terminal then
    breaks again (ragged lines). Paragraphs with indented or bulleted lines (examples,
    lists) stay as written."""
    for info in group.registered_commands:
        if info.cls in (None, TyperCommand):  # typer's default, not a command's own class
            info.cls = CmfCommand
        text = info.help or (info.callback.__doc__ if info.callback else None)
        if not text:
            continue
        paragraphs = inspect.cleandoc(text).split("\n\n")
        if info.short_help is None:
            info.short_help = " ".join(paragraphs[0].split())
        info.help = "\n\n".join(p if _preformatted(p) else " ".join(p.split())
                                 for p in paragraphs)
    for sub in group.registered_groups:
        if not sub.cls and not (sub.typer_instance and sub.typer_instance.info.cls):
            sub.cls = CmfGroup  # not a group's own class (none has one)
        if sub.typer_instance is not None:
            _one_line_summaries(sub.typer_instance)


def _preformatted(paragraph: str) -> bool:
    return paragraph.startswith("\b") or any(
        line.startswith((" ", "-", "*", "$", ">")) for line in paragraph.splitlines()[1:])


_register()


def _click_exception_types() -> tuple[type[BaseException], ...]:
    """Usage-error classes: typer >= 0.20 bundles its own click, older ones use click."""
    types: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            types.append(importlib.import_module(module).ClickException)
        except ImportError:
            continue
    return tuple(types)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cmf`` script."""
    try:
        # outside standalone mode click returns a command's ``typer.Exit`` code instead of
        # exiting with it (cmf spool retry's and cmf store check's 1, cmf serve's 3)
        code = app(args=argv, standalone_mode=False)
    except CmfError as e:
        from cmf_core.cli.common import visible  # a recorded name in it may hold U+202E

        typer.echo(f"Error: {visible(e)}", err=True)
        sys.exit(1)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except _click_exception_types() as e:
        e.show()  # type: ignore[attr-defined]
        sys.exit(e.exit_code)  # type: ignore[attr-defined]
    if type(code) is int and code:
        sys.exit(code)

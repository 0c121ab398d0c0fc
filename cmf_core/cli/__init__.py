"""The ``cmf`` command line: a thin layer over the Python API.

Every ``CmfError`` becomes one line on stderr and exit code 1, here and only here.
"""

from __future__ import annotations

import sys

import typer

from cmf_core.errors import CmfError

app = typer.Typer(
    name="cmf",
    help="cmf-foundation: lineage, energy and carbon of AI pipelines, federated across sites.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from cmf_core.cli import lineage_cmds, records_cmds, store_cmds

    store_cmds.register(app)
    records_cmds.register(app)
    lineage_cmds.register(app)
    # integrations add command groups (e.g. `cmf prefect watch`) through this entry point group
    from importlib.metadata import entry_points

    for ep in entry_points(group="cmf.commands"):
        try:
            ep.load()(app)
        except ImportError:  # the integration's extra is not installed
            continue


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cmf`` script."""
    try:
        app(args=argv, standalone_mode=False)
    except CmfError as e:
        typer.echo(f"Error: {e}", err=True)
        sys.exit(1)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise

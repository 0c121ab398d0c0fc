"""The ``cmf`` script's entry point: loads the CLI, then runs it.

Loading the CLI takes most of a second (typer, click, rich). A Ctrl-C in that time is answered
as one during a command (``Aborted.``, exit 1), not with an import traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the ``cmf`` command line."""
    try:
        from cmf_core.cli import main as cli_main
    except KeyboardInterrupt:
        print("\nAborted.", file=sys.stderr)
        sys.exit(1)
    cli_main()

"""The docs stay in step with the code: every setting and every CLI command is documented."""

from __future__ import annotations

from pathlib import Path

import typer.main

from cmf_core.cli import app
from cmf_core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [n for n in Settings.model_fields if f"`CMF_{n.upper()}`" not in text]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_every_command_in_cli_reference() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    group = typer.main.get_command(app)
    missing = [name for name in group.commands if f"`cmf {name}" not in text]
    assert not missing, f"commands missing from docs/cli.md: {missing}"


def test_readme_names_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text

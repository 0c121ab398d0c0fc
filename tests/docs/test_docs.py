"""The docs stay in step with the code: every setting and every CLI command is documented."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main

from cmf_core.cli import app
from cmf_core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [n for n in Settings.model_fields if f"`CMF_{n.upper()}`" not in text]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_settings_table_gives_the_codes_defaults_and_meanings() -> None:
    """Each row of docs/configuration.md's settings table has the field's default and
    description as config.py has them (the table was written from them; a changed default
    would otherwise leave the page stating the old one)."""
    from pydantic_core import PydanticUndefined

    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = {m[1]: (m[2], m[3], m[4]) for m in re.finditer(
        r"^\| `(\w+)` \| `(\w+)` \| `([^`]*)` \| (.*) \|$", text, re.M)}
    wrong = []
    for name, field in Settings.model_fields.items():
        if name not in rows:
            wrong.append(f"{name}: no row")
            continue
        env, default, meaning = rows[name]
        if name == "site":  # a default_factory: the host name
            want = "(hostname)"
        elif field.default is PydanticUndefined:
            want = str(field.default_factory())  # type: ignore[call-arg,misc]
        else:
            want = str(field.default)
        if env != f"CMF_{name.upper()}" or default != want or meaning != field.description:
            wrong.append(f"{name}: docs say `{env}` `{default}` {meaning!r}; code: "
                         f"`CMF_{name.upper()}` `{want}` {field.description!r}")
    assert not wrong, "\n".join(wrong)


def test_every_command_in_cli_reference() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    group = typer.main.get_command(app)
    missing = [name for name in group.commands if f"`cmf {name}" not in text]
    assert not missing, f"commands missing from docs/cli.md: {missing}"


def test_readme_names_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text


def _markdown_files() -> list[Path]:
    """What a user reads: the README, docs/ and the examples' READMEs."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
            *sorted((ROOT / "examples").rglob("*.md"))]


def _doc_commands(text: str) -> Iterator[str]:
    """`cmf ...` command lines of a Markdown text: lines of fenced blocks and inline code
    spans, comments cut, split at shell operators, env assignments before `cmf` allowed."""
    fence = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fence = not fence
            continue
        for code in [line] if fence else re.findall(r"`([^`]*\bcmf [^`]*)`", line):
            for seg in re.split(r"&&|\|\||;|\|", code.split(" #")[0]):
                toks = seg.split()
                if "cmf" not in toks:
                    continue
                i = toks.index("cmf")
                rest = toks[i + 1:]
                if (all(re.fullmatch(r"\$|[A-Z_][A-Z0-9_]*=\S*", t) for t in toks[:i])
                        and rest and rest[0] not in ("=", "...")):
                    yield " ".join(toks[i:])


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lower case, punctuation dropped,
    spaces to hyphens); headings inside fenced blocks are not headings."""
    out, fence = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,6} ", line):
            out.add(re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-"))
    return out


def test_relative_links_and_anchors_resolve() -> None:
    """Every relative link of the README, docs/, examples/ and benchmarks/RESULTS.md names a
    file of the repository, and an anchor in it names one of that file's headings."""
    wrong = []
    for path in [*_markdown_files(), ROOT / "benchmarks" / "RESULTS.md"]:
        text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                wrong.append(f"{path.name}: ({target}): no such file")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                wrong.append(f"{path.name}: ({target}): no heading #{anchor} in {dest.name}")
    assert not wrong, "\n".join(wrong)


def test_commands_in_docs_exist() -> None:
    """Every `cmf` command line in the README, docs/ and examples/ names a real command and
    only options that command has (docs/cli.md is generated from --help)."""
    group = typer.main.get_command(app)
    files = _markdown_files()
    wrong, checked = [], 0
    for path in files:
        if path.name == "cli.md":
            continue
        for line in _doc_commands(path.read_text()):
            toks, cmd, names = line.split()[1:], group, ["cmf"]
            while hasattr(cmd, "commands") and toks and not toks[0].startswith("-"):
                if toks[0].startswith("<"):
                    break
                if toks[0] not in cmd.commands:
                    wrong.append(f"{path.name}: `{line}`: no command '{toks[0]}' in "
                                 f"`{' '.join(names)}`")
                    cmd = None
                    break
                names.append(toks[0])
                cmd = cmd.commands[toks.pop(0)]
            if cmd is None:
                continue
            checked += 1
            opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
            wrong += [f"{path.name}: `{line}`: `{' '.join(names)}` has no option {o}"
                      for o in (t.split("=")[0].rstrip(",.)") for t in toks
                                if t.startswith("--")) if o not in opts]
    assert checked >= 50, checked  # the docs do show commands
    assert not wrong, "\n".join(wrong)


def test_readme_python_api_example_runs(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python API block, run as written against a real SQLite store (only the
    files it names are created first)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("x,label\n1,0\n2,1\n")
    (tmp_path / "model.pkl").write_bytes(b"a model")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CMF_STORE_URL", f"sqlite:///{tmp_path / 'readme.db'}")
    scope: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), scope)  # our own README
    prov = scope["prov"]
    [train] = prov.executions  # type: ignore[attr-defined]
    assert train.stage == "train" and train.params == {"lr": 0.1}
    assert [a.name for a in prov.inputs] == ["train.csv"]  # type: ignore[attr-defined]
    assert prov.metrics == {train.id: {"auc": 0.91}}  # type: ignore[attr-defined]
    scope["cmf"].close()  # type: ignore[attr-defined]


def test_python_examples_in_docs_import() -> None:
    """Every ```python block of the README, docs/ and examples/ parses, and every name it
    imports from our packages exists."""
    import ast
    import importlib
    import importlib.util

    ours = ("cmf_core", "cmf_airflow", "cmf_prefect", "cmf_kubeflow")
    files = _markdown_files()
    wrong, blocks = [], 0
    for path in files:
        for code in re.findall(r"```python\n(.*?)```", path.read_text(), re.S):
            blocks += 1
            tree = ast.parse(code, filename=path.name)
            for node in ast.walk(tree):
                if not (isinstance(node, ast.ImportFrom) and node.module
                        and node.module.split(".")[0] in ours):
                    continue
                module = importlib.import_module(node.module)
                wrong += [f"{path.name}: from {node.module} import {a.name}"
                          for a in node.names if not hasattr(module, a.name)
                          and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
    assert blocks >= 10, blocks
    assert not wrong, "\n".join(wrong)


def test_cli_reference_is_up_to_date() -> None:
    """docs/cli.md is what scripts/gen_cli_docs.py writes from today's --help (the script said
    this test existed; without it the reference could drift from the commands)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_cli_docs",
                                                  ROOT / "scripts" / "gen_cli_docs.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (ROOT / "docs" / "cli.md").read_text() == gen.render(), (
        "docs/cli.md is out of date: run python scripts/gen_cli_docs.py")


def test_help_paragraphs_are_wrapped_by_the_terminal_only() -> None:
    """typer's rich mode keeps a docstring's line breaks, and a terminal narrower than the
    source lines breaks them again: every prose paragraph of a command's help is one line."""
    ragged: list[str] = []

    def walk(name: str, cmd: object) -> None:
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            walk(f"{name} {sub_name}", sub)
        for paragraph in (getattr(cmd, "help", None) or "").split("\n\n"):
            lines = paragraph.splitlines()
            if len(lines) > 1 and not any(line.startswith((" ", "-", "*", "$", ">"))
                                          for line in lines[1:]):
                ragged.append(f"{name}: {lines[0][:50]}...")

    walk("cmf", typer.main.get_command(app))
    assert not ragged, ragged


def test_recommender_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/recommender.md's quick start, run as written from the repository root (the shipped
    knowledge base, the real Telco CSV), with 2 trials instead of 50; its objective was `...`,
    so a reader had no runnable search."""
    pytest.importorskip("optuna")
    pytest.importorskip("sklearn")
    text = (ROOT / "docs" / "recommender.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "n_trials=50" in block
    block = block.replace("n_trials=50", "n_trials=2").replace("print(rec.explain())", "")
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("CMF_HOME", str(tmp_path / "home"))
    scope: dict[str, object] = {}
    exec(compile(block, "recommender.md", "exec"), scope)  # our own docs
    study = scope["study"]
    done = [t for t in study.trials if t.value is not None]  # type: ignore[attr-defined]
    assert len(done) == 2 and all(0.5 < t.value <= 1.0 for t in done)


def test_settings_and_variables_named_in_docs_exist() -> None:
    """Every `CMF_*` variable, `AIRFLOW__CMF__*` / `[cmf]` option, `OPENLINEAGE__TRANSPORT__*`
    key of the CmfTransport and key of a ```toml block that the README, docs/ and examples/ name
    is one the code reads (a renamed setting would otherwise leave the docs naming a variable
    that is now an unknown-setting error)."""
    import attr
    from cmf_airflow.provider_info import get_provider_info

    from cmf_core.openlineage.transport.cmf import CmfConfig

    settings = set(Settings.model_fields)
    airflow = set(get_provider_info()["config"]["cmf"]["options"])
    transport = {f.name for f in attr.fields(CmfConfig)} | {"type"}
    # named on purpose as what does not exist (docs/airflow.md: an unknown-setting error)
    not_settings = {"CMF_LINEAGE_SOURCE"}
    wrong, seen = [], 0
    for path in _markdown_files():
        text = path.read_text()
        for name in sorted(set(re.findall(r"\bCMF_[A-Z0-9_]*[A-Z0-9]\b", text)) - not_settings):
            seen += 1
            if name[4:].lower() not in settings:
                wrong.append(f"{path.name}: {name} is not a setting")
        for name in set(re.findall(r"\bAIRFLOW__CMF__([A-Z0-9_]+)", text)):
            seen += 1
            if name.lower() not in airflow:
                wrong.append(f"{path.name}: AIRFLOW__CMF__{name} is not a [cmf] option")
        for name in set(re.findall(r"\bOPENLINEAGE__TRANSPORT__([A-Z0-9_]+)", text)):
            seen += 1
            if name.lower() not in transport:
                wrong.append(f"{path.name}: OPENLINEAGE__TRANSPORT__{name} is not a "
                             "CmfTransport setting")
        for block in re.findall(r"```toml\n(.*?)```", text, re.S):
            for key in re.findall(r"^([a-z_]+)\s*=", block, re.M):
                seen += 1
                if key not in settings:
                    wrong.append(f"{path.name}: cmf.toml key {key!r} is not a setting")
        for block in re.findall(r"```ini\n\[cmf\]\n(.*?)```", text, re.S):
            for key in re.findall(r"^([a-z_]+)\s*=", block, re.M):
                seen += 1
                if key not in airflow:
                    wrong.append(f"{path.name}: [cmf] {key} is not an Airflow option")
    assert seen >= 40, seen  # the docs do name settings
    assert not wrong, "\n".join(wrong)


def test_paths_and_dotted_names_in_docs_exist() -> None:
    """Every repository path in backticks (`cmf_core/store/journal.py`, `tests/...`) and every
    dotted name of our packages (`cmf_core.store.shared_store`) that the README, docs/ and
    examples/ name exists: a module or function moved or renamed would otherwise leave the docs
    pointing a reader at nothing."""
    import importlib

    wrong, seen = [], 0
    for path in _markdown_files():
        text = path.read_text()
        for ref in set(re.findall(r"`((?:cmf_core|tests|benchmarks|scripts|integrations|examples)"
                                  r"/[\w./\-]+)", text)):
            seen += 1
            if not (ROOT / ref.rstrip(".")).exists():
                wrong.append(f"{path.name}: `{ref}`: no such file or folder")
        for name in set(re.findall(r"\b(?:cmf_core|cmf_airflow|cmf_prefect|cmf_kubeflow)"
                                   r"(?:\.\w+)+", text)):
            seen += 1
            parts = name.split(".")
            for i in range(len(parts), 0, -1):  # the longest importable module, then attributes
                try:
                    obj: object = importlib.import_module(".".join(parts[:i]))
                    break
                except ImportError:
                    continue
            for attr in parts[i:]:
                if not hasattr(obj, attr):
                    wrong.append(f"{path.name}: `{name}`: no {attr!r} in {'.'.join(parts[:i])}")
                    break
                obj, i = getattr(obj, attr), i + 1
    assert seen >= 100, seen  # the docs do name code
    assert not wrong, "\n".join(wrong)

"""MLMD interop in the main environment (no ml-metadata): clear errors for bad input and for
the missing extra, and the struct values MLMD writes, decoded without protobuf."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmf_core.cli import app
from cmf_core.errors import CmfError, ConfigError
from cmf_core.mlmd import export_mlmd, import_mlmd
from cmf_core.mlmd.values import decode_row, decode_struct
from cmf_core.model import Pipeline
from cmf_core.store import Store

runner = CliRunner()

# written by ml-metadata 1.15 for custom_properties["s"].struct_value = {"k": [1, "a", {"z": None}]}
REAL_STRUCT = "mlmd-struct::CiQKAWsSHzIdCgkRAAAAAAAA8D8KAxoBYQoLKgkKBwoBehICCAA="


def test_struct_values_decode_without_protobuf() -> None:
    assert decode_struct(REAL_STRUCT) == {"k": [1.0, "a", {"z": None}]}
    assert decode_row(None, None, REAL_STRUCT) == {"k": [1.0, "a", {"z": None}]}
    assert decode_row(7, None, None) == 7
    assert decode_row(None, 0.5, None) == 0.5
    assert decode_row(None, None, None, 1) is True
    assert decode_row(None, None, None) is None
    with pytest.raises(CmfError, match="not a valid serialised Struct"):
        decode_struct("mlmd-struct::CiQKAWsSHz")


def test_missing_file(store: Store, tmp_path: Path) -> None:
    with pytest.raises(CmfError, match=r"mlmd does not exist; give the path of an MLMD"):
        import_mlmd(store, tmp_path / "mlmd")


def test_not_an_sqlite_file(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "mlmd"
    path.write_text("pipeline,stage\nchurn,train\n")
    with pytest.raises(CmfError, match="is not an SQLite file, so not an MLMD store"):
        import_mlmd(store, path)
    assert store.list_pipelines() == []


def test_sqlite_file_that_is_not_mlmd(store: Store, tmp_path: Path) -> None:
    """A CMF store file given by mistake: an SQLite file without MLMD's tables."""
    store.put([Pipeline(name="churn", site="a")])
    other = tmp_path / "plain.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE runs (id INTEGER)")
    with pytest.raises(CmfError, match=r"has no MLMDEnv table, so it is not an MLMD store "
                                       r"\(found tables: runs\)"):
        import_mlmd(store, other)
    assert [p.name for p in store.list_pipelines()] == ["churn"]


def test_unsupported_url(store: Store) -> None:
    with pytest.raises(CmfError, match="has kind 'oracle'; MLMD stores live in SQLite"):
        import_mlmd(store, "oracle://u@h/db")


def test_export_without_the_extra_says_how_to_install(store: Store, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # the main environment has no ml-metadata; hide it where it is installed (.venv-mlmd)
    for name in ("ml_metadata", "ml_metadata.metadata_store", "ml_metadata.proto"):
        monkeypatch.setitem(sys.modules, name, None)
    store.put([Pipeline(name="churn", site="a")])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConfigError, match=r"pip install 'cmf-foundation\[mlmd\]'.*own "
                                          r"environment"):
        export_mlmd(store, out / "mlmd", ["churn"])
    assert not list(out.iterdir())


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    (tmp_path / "notes.txt").write_text("hello")
    result = runner.invoke(app, ["import", "--mlmd", str(tmp_path / "notes.txt"),
                                 "--store", url])
    assert result.exit_code != 0
    assert "is not an SQLite file" in str(result.exception)
    result = runner.invoke(app, ["export", "--mlmd", str(tmp_path / "out"), "x.jsonl",
                                 "--store", url])
    assert "--mlmd exports whole pipelines" in str(result.exception)
    result = runner.invoke(app, ["import", "--store", url])
    assert "nothing to import: give a bundle file, or --mlmd" in str(result.exception)

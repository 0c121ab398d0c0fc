"""A process in a container: an arbitrary user id with no entry in the user database (OpenShift),
no ``HOME``, a read-only home. The user database is made to miss the user by replacing
``pwd.getpwuid`` (a sitecustomize for the subprocess): this machine's user has an entry, and
tests cannot change its users."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from cmf_core import Cmf
from cmf_core.config import load_settings
from cmf_core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
NO_USER = """
import pwd
def _no_entry(uid):
    raise KeyError(f"getpwuid(): uid not found: {uid}")
pwd.getpwuid = _no_entry
"""


def _no_entry(uid: int) -> pwd.struct_passwd:
    raise KeyError(f"getpwuid(): uid not found: {uid}")


@pytest.fixture
def homeless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process as a container's arbitrary user: no HOME, no CMF_HOME, no passwd entry,
    working in a folder without a .cmf folder above it."""
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("CMF_HOME", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", _no_entry)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def test_without_a_home_the_settings_load_and_name_the_fix_when_a_home_is_needed(
        homeless: Path) -> None:
    """`Path.home()` raised a bare RuntimeError ("Could not determine home directory") out of
    every load_settings(), even one that needs no home (a store URL and a spool folder given)."""
    settings = load_settings()  # loads: the home is looked for only where it is needed
    with pytest.raises(ConfigError, match=r"HOME is not set.*set CMF_HOME to a writable folder"):
        _ = settings.resolved_store_url
    with pytest.raises(ConfigError, match="CMF_HOME"):
        Cmf(pipeline_name="p")
    given = load_settings(store_url=f"sqlite:///{homeless / 'cmf.db'}",
                          spool_dir=homeless / "spool")
    cmf = Cmf(pipeline_name="p", settings=given)
    with cmf.create_execution("train", params={"lr": 0.1}):
        pass
    assert [e.stage for e in cmf.store.list_executions()] == ["train"]
    cmf.close()


def test_the_cli_without_a_home_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(NO_USER)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CMF_") and k not in ("HOME", "USER", "LOGNAME")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), str(REPO),
                                         env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "cmf_core", "executions"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("Error: cannot tell where the CMF home is")
    assert "set CMF_HOME" in done.stderr

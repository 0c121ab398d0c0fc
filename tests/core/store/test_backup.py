"""`cmf store backup`: a consistent copy of a live embedded store, made while real processes
record into it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from cmf_core.cli import app
from cmf_core.store import ExecutionFilter, open_store

# records executions until the file argv[2] exists; prints each execution's id once its
# recording has ended (its `with` block returned: the put is durable)
LOOP_WRITER = textwrap.dedent("""
    import os, sys
    from cmf_core import Cmf
    url, stop = sys.argv[1], sys.argv[2]
    cmf = Cmf(pipeline_name="live", store=url, site="w", measure_energy=False)
    i = 0
    while not os.path.exists(stop):
        with cmf.create_execution("train", params={"i": i}) as ex:
            ex.log_artifact(f"s3://bucket/model/{i}", "output", "Model", version="1")
            ex.log_artifact("s3://bucket/data.csv", "input", "Dataset", version="1")
            ex.log_execution_metrics("m", {"score": i})
        print(ex.id, flush=True)
        i += 1
    cmf.close()
""")

# puts executions, then kills itself: its puts returned, but no apply ever ran
KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from cmf_core.model import Execution, Pipeline, Stage
    from cmf_core.store import open_store
    s = open_store(sys.argv[1], site="k")
    s.put([Pipeline("p", "k"), Stage("p", "s", "k")])
    for i in range(int(sys.argv[2])):
        s.put([Execution("p", "s", "k", params={"i": i}).ended()])
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
    return env


def _cmf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cmf_core", *args], env=_env(),
                          capture_output=True, text=True, timeout=300)


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as c:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_backup_while_a_process_records_holds_everything_ended_before(tmp_path: Path) -> None:
    db, stop, dest = tmp_path / "cmf.db", tmp_path / "stop", tmp_path / "backup" / "copy.db"
    url = f"sqlite:///{db}"
    dest.parent.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", LOOP_WRITER, url, str(stop)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    try:
        ended = [writer.stdout.readline().strip() for _ in range(60)]
        assert all(ended), writer.stderr.read() if writer.stderr else ""
        # every id read so far ended before the backup begins; the writer goes on meanwhile
        result = _cmf("store", "backup", str(dest), "--store", url, "--json")
        after = [writer.stdout.readline().strip() for _ in range(20)]  # it kept recording
        assert all(after)
    finally:
        stop.touch()
        rest = writer.stdout.read()  # (communicate would skip what readline buffered)
        _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert result.returncode == 0, result.stderr
    report = __import__("json").loads(result.stdout)
    assert report["integrity"] == "ok" and report["dest"] == str(dest)
    assert not dest.with_name("copy.db-wal").exists()  # one self-contained file
    assert [p.name for p in dest.parent.iterdir()] == ["copy.db"]  # no temporary file left
    with sqlite3.connect(f"{dest.as_uri()}?mode=ro", uri=True) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with open_store(f"sqlite:///{dest}", site="check") as b:
        copied = b.list_executions()
        ids = {e.id for e in copied}
        assert set(ended) <= ids  # everything that ended before the backup began
        assert report["rows"]["executions"] == len(copied)
        # consistent: every execution in the copy has all of its records, none half written
        for e in copied:
            assert e.status.value in ("completed", "running")
        done = [e.id for e in copied if e.status.value == "completed"]
        assert len(b.events(execution_ids=done)) == 3 * len(done)
        assert {m.execution_id for m in b.metrics(done)} == set(done)
        assert len(b.find_artifacts(type="Dataset")) == 1
    every = set(ended) | set(after) | set(rest.split())
    with open_store(url, site="check") as s:  # the store went on; the copy is a part of it
        assert {e.id for e in s.list_executions(ExecutionFilter(status="completed"),
                                                 limit=None)} == every
    assert set(done) <= every


def test_backup_applies_journal_entries_a_file_copy_misses(tmp_path: Path) -> None:
    db, dest = tmp_path / "cmf.db", tmp_path / "copy.db"
    url = f"sqlite:///{db}"
    p = subprocess.run([sys.executable, "-c", KILLED_WRITER, url, "30"], env=_env(),
                       capture_output=True, timeout=120)
    assert p.returncode == -9, p.stderr
    result = _cmf("store", "backup", str(dest), "--store", url)
    assert result.returncode == 0, result.stderr
    # one entry for the pipeline and stage, one per execution
    assert "Applied 31 journal entries first" in " ".join(result.stdout.split())
    assert _count(dest, "executions") == 30
    assert _count(dest, "pipelines") == 1


def test_backup_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    db, dest = tmp_path / "cmf.db", tmp_path / "copy.db"
    url = f"sqlite:///{db}"
    p = subprocess.run([sys.executable, "-c", KILLED_WRITER, url, "3"], env=_env(),
                       capture_output=True, timeout=120)
    assert p.returncode == -9, p.stderr
    dest.write_text("precious")
    runner = CliRunner()
    r = runner.invoke(app, ["store", "backup", str(dest), "--store", url])
    assert r.exit_code == 1
    assert f"{dest} already exists; give another path, or --force to replace it" in str(
        r.exception)
    assert dest.read_text() == "precious"
    r = runner.invoke(app, ["store", "backup", str(dest), "--store", url, "--force", "--json"])
    assert r.exit_code == 0, r.output
    assert _count(dest, "executions") == 3
    # a folder: the store's file name in it
    folder = tmp_path / "daily"
    folder.mkdir()
    r = runner.invoke(app, ["store", "backup", str(folder), "--store", url, "--json"])
    assert r.exit_code == 0, r.output
    assert _count(folder / "cmf.db", "executions") == 3
    # the store itself is never a destination, --force or not
    r = runner.invoke(app, ["store", "backup", str(db), "--store", url, "--force"])
    assert r.exit_code == 1 and "is the store itself" in str(r.exception)
    assert _count(db, "executions") == 3


def test_backup_of_a_missing_or_postgres_store_says_what_to_do(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["store", "backup", str(tmp_path / "x.db"),
                            "--store", f"sqlite:///{tmp_path / 'none.db'}"])
    assert r.exit_code == 1 and "no CMF store at" in str(r.exception)
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "x.db").exists()
    # nothing is connected to: the URL alone says it is PostgreSQL
    r = runner.invoke(app, ["store", "backup", str(tmp_path / "x.db"),
                            "--store", "postgresql://cmf:s3cret@db.invalid/cmf"])
    assert r.exit_code == 1
    assert "pg_dump" in str(r.exception) and "s3cret" not in str(r.exception)
    assert not (tmp_path / "x.db").exists()

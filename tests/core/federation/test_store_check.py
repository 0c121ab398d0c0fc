"""cmf store check / cmf store repair on a real SQLite store holding rows an older release
wrote and today's import refuses (negative or infinite energy, an infinite metric).

The old rows are written with raw SQL, as the old release's store did: today's API refuses
them. NaN cannot be written this way (SQLite stores a NaN as NULL, which the NOT NULL columns
refuse); a PostgreSQL store can hold one, and the check treats it as any refused amount.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmf_core import Cmf
from cmf_core.cli import app, main
from cmf_core.errors import InvalidInputError
from cmf_core.federation.check import REPAIR_KEY, REPAIR_LOG, check_store
from cmf_core.federation.export import Selector, export_bundle
from cmf_core.federation.merge import import_bundle
from cmf_core.store import open_store

runner = CliRunner()


def make_store(tmp_path: Path) -> tuple[str, list[str]]:
    """A store with three executions of churn/train (no energy measured); their ids."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with Cmf(pipeline_name="churn", store=url, site="hpc", measure_energy=False) as cmf:
        for i in range(3):
            with cmf.create_execution("train", params={"i": i}):
                pass
    with open_store(url, "hpc") as s:
        ids = [e.id for e in s.list_executions()]
    return url, ids


def old_rows(url: str, energy: list[tuple[str, float, float]] = (),
             metrics: list[tuple[str, str, float]] = ()) -> None:
    """Write rows as an older release did (raw SQL: today's API refuses them), each with the
    next seq of the store's counter."""
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    with db:
        for eid, kwh, co2e in energy:
            seq = db.execute("UPDATE cmf_counter SET value = value + 1 WHERE name = 'seq' "
                             "RETURNING value").fetchone()[0]
            db.execute("INSERT INTO energy (execution_id, site, energy_kwh, co2e_kg, details, "
                       "seq) VALUES (?, 'hpc', ?, ?, ?, ?)",
                       (eid, kwh, co2e, json.dumps({"notes": ["old monitor"]}), seq))
        for eid, name, value in metrics:
            seq = db.execute("UPDATE cmf_counter SET value = value + 1 WHERE name = 'seq' "
                             "RETURNING value").fetchone()[0]
            db.execute("INSERT INTO metrics (execution_id, name, step, value, timestamp, seq) "
                       "VALUES (?, ?, -1, ?, 1.7e9, ?)", (eid, name, value, seq))
    db.close()


def to_peer(url: str, peer: str, fmt: int = 1) -> int:
    """Export the whole store at ``url`` and import it into the store at ``peer``."""
    with open_store(url, "hpc") as s:
        data = b"".join(export_bundle(s, Selector(), fmt=fmt))
    with open_store(peer, "cloud") as p:
        return import_bundle(p, [data]).records


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


@pytest.mark.parametrize("fmt", [1, 2])  # 1: cmf export / import; 2: what cmf sync sends
def test_refused_before_repair_accepted_after(tmp_path: Path, fmt: int) -> None:
    url, ids = make_store(tmp_path)
    old_rows(url, energy=[(ids[0], -0.5, 0.1), (ids[1], 0.2, float("inf")),
                          (ids[2], 0.3, 0.05)])
    peer = f"sqlite:///{tmp_path / 'peer.db'}"
    with pytest.raises(InvalidInputError, match=f"energy record of execution {ids[0]}: "
                       r"energy_kwh -0.5 must be a finite number >= 0 \(kWh\); nothing was "
                       "imported"):
        to_peer(url, peer, fmt)

    code, out = cli("store", "check", "--store", url, "--json")
    found = json.loads(out)
    assert code == 1
    assert [(p["kind"], p["key"], p["repairable"]) for p in found] == [
        ("energy", ids[0], True), ("energy", ids[1], True)]  # not the good one, ids[2]
    assert "energy_kwh -0.5 must be a finite number >= 0" in found[0]["problem"]
    assert "co2e_kg 'inf' is not a number" in found[1]["problem"]  # as the import says it

    with open_store(url, "hpc") as s:
        before = {r.execution_id: (r.energy_kwh, r.co2e_kg) for r in s.energy()}
    code, out = cli("store", "repair", "--store", url)  # a dry run
    assert code == 0
    assert "Would repair 2 row(s); nothing was changed (--apply writes the repairs)." in out
    with open_store(url, "hpc") as s:
        assert {r.execution_id: (r.energy_kwh, r.co2e_kg) for r in s.energy()} == before
        assert not s.states(REPAIR_LOG)

    code, out = cli("store", "repair", "--store", url, "--apply")
    assert (code, out.splitlines()[-1]) == (0, "Repaired 2 row(s).")
    assert cli("store", "check", "--store", url) == (0, "Rows a peer would refuse: none.\n")
    assert to_peer(url, peer, fmt) == 3 + 1 + 1 + 3  # executions, pipeline, stage, energy

    with open_store(peer, "cloud") as p:
        got = {r.execution_id: r for r in p.energy()}
        log = list(open_store(url, "hpc").states(REPAIR_LOG).values())
    assert got[ids[2]].energy_kwh == 0.3 and got[ids[2]].measured  # untouched
    bad = got[ids[0]]
    assert (bad.energy_kwh, bad.co2e_kg, bad.measured) == (0.0, 0.0, False)
    assert bad.details[REPAIR_KEY]["energy_kwh"] == -0.5
    assert bad.details[REPAIR_KEY]["co2e_kg"] == 0.1
    assert bad.details["notes"][0].startswith("repaired by cmf store repair: energy record of")
    assert bad.details["notes"][1:] == ["old monitor"]
    assert got[ids[1]].details[REPAIR_KEY]["co2e_kg"] == "inf"  # JSON has no infinity
    assert got[ids[1]].details[REPAIR_KEY]["energy_kwh"] == 0.2
    assert [sorted(r["key"] for r in json.loads(e)["records"]) for e in log] == [
        sorted(ids[:2])]


def test_repaired_rows_are_sent_by_the_next_incremental_export(tmp_path: Path) -> None:
    """The repair is a new version of the store: an export of the changes since the store's
    seq before the repair holds the repaired rows."""
    url, ids = make_store(tmp_path)
    old_rows(url, energy=[(ids[0], -1.0, -1.0)])
    with open_store(url, "hpc") as s:
        seq = s.max_seq()
    assert cli("store", "repair", "--store", url, "--apply")[0] == 0
    with open_store(url, "hpc") as s:
        lines = b"".join(export_bundle(s, Selector(since_seq=seq))).decode().splitlines()
    energy = [json.loads(x) for x in lines if '"kind":"energy"' in x]
    assert [(e["execution_id"], e["energy_kwh"], e["details"]["measured"]) for e in energy] == [
        (ids[0], 0.0, False)]


def test_repair_is_the_same_wherever_it_runs(tmp_path: Path) -> None:
    """Two copies of one old store repair the same row into the same record (nothing of when
    or where it ran is in it), so peers that both repaired it agree on it."""
    url, ids = make_store(tmp_path)
    old_rows(url, energy=[(ids[0], -0.5, 0.1)])
    copy = tmp_path / "copy.db"
    copy.write_bytes((tmp_path / "old.db").read_bytes())
    records = []
    for u in (url, f"sqlite:///{copy}"):
        assert cli("store", "repair", "--store", u, "--apply")[0] == 0
        with open_store(u, "hpc") as s:
            records.append(s.energy())
    assert records[0] == records[1] and not records[0][0].measured


def test_rows_it_cannot_repair_are_listed_and_left(tmp_path: Path) -> None:
    url, ids = make_store(tmp_path)
    old_rows(url, energy=[(ids[0], -0.5, 0.1)], metrics=[(ids[1], "loss", float("inf"))])
    code, out = cli("store", "check", "--store", url, "--json")
    assert code == 1
    assert [(p["kind"], p["key"], p["repairable"]) for p in json.loads(out)] == [
        ("metric", f"{ids[1]}/loss", False), ("energy", ids[0], True)]
    code, out = cli("store", "repair", "--store", url, "--apply")
    assert code == 1
    assert out.splitlines()[-2:] == [
        "Repaired 1 row(s).",
        "1 row(s) a peer would refuse remain (cmf store check lists them)."]
    with open_store(url, "hpc") as s:
        assert [p.kind for p in check_store(s)] == ["metric"]
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    assert db.execute("SELECT value FROM metrics").fetchall() == [(float("inf"),)]  # as it was
    db.close()


def test_clean_store(tmp_path: Path) -> None:
    url, _ = make_store(tmp_path)
    assert cli("store", "check", "--store", url) == (0, "Rows a peer would refuse: none.\n")
    code, out = cli("store", "repair", "--store", url, "--json")
    assert code == 0
    assert json.loads(out) == {"applied": False, "repairs": [], "replaced": 0, "remaining": []}


def test_exit_code_of_the_cmf_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    """The `cmf` script itself (main), not only the CLI runner, exits 1 when rows remain."""
    url, ids = make_store(tmp_path)
    old_rows(url, energy=[(ids[0], -0.5, 0.1)])
    with pytest.raises(SystemExit) as e:
        main(["store", "check", "--store", url])
    assert e.value.code == 1
    assert "1 row(s) a peer would refuse" in capsys.readouterr().out

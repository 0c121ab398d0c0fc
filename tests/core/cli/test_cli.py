"""The `cmf` command line on real stores (CliRunner, exact output checks)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmf_core import Cmf
from cmf_core.cli import app, main
from cmf_core.errors import CmfError

runner = CliRunner()


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw.csv").write_text("x\n1\n")
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    with Cmf(pipeline_name="churn", store=url, site="hpc", measure_energy=False) as cmf:
        with cmf.create_execution("prepare", params={"split": 0.2}):
            cmf.log_dataset("raw.csv", "input")
            (tmp_path / "train.csv").write_text("x\n1\n2\n")
            cmf.log_dataset("train.csv", "output")
        with cmf.create_execution("train", params={"lr": 0.1}):
            cmf.log_dataset("train.csv", "input")
            (tmp_path / "model.pkl").write_bytes(b"m")
            cmf.log_model("model.pkl", "output")
            cmf.log_execution_metrics("eval", {"auc": 0.9})
    return url


def invoke(*args: str, columns: int | None = None) -> str:
    result = runner.invoke(app, list(args),
                           env={"COLUMNS": str(columns)} if columns is not None else None)
    assert result.exit_code == 0, result.output
    return result.output


def invoke_json(*args: str) -> object:
    """The JSON a command printed on stdout (its notes on stderr left out)."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one-line error of a command that must fail with exit code 1."""
    with pytest.raises(SystemExit) as e:
        main(list(args))
    assert e.value.code == 1
    return capsys.readouterr().err.strip()


def test_pipelines_json(store_url: str) -> None:
    data = json.loads(invoke("pipelines", "--store", store_url, "--json"))
    assert [(p["name"], p["executions"], p["stages"]) for p in data] == [
        ("churn", 2, ["prepare", "train"])]


def test_executions_and_filters(store_url: str) -> None:
    data = json.loads(invoke("executions", "--store", store_url, "--json", "--stage", "train"))
    assert [e["params"] for e in data] == [{"lr": 0.1}]
    table = invoke("executions", "--store", store_url, columns=160)
    assert "prepare" in table and "split=0.2" in table


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is UTC+05:30 (restored after the test)."""
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_executions_times_are_utc_and_say_so_in_another_time_zone(store_url: str,
                                                                  kolkata: None) -> None:
    """The table's times are UTC whatever the local zone, and its header says so (a bare
    "started 06:30" reads as local time); --since without an offset is UTC too."""
    import time
    from datetime import UTC, datetime, timedelta

    assert time.strftime("%z", time.localtime(0)) == "+0530"  # the zone is in effect
    train = json.loads(invoke("executions", "--store", store_url, "--json", "--stage",
                              "train"))[0]
    start = datetime.fromtimestamp(train["started_at"], UTC).replace(microsecond=0)
    table = invoke("executions", "--store", store_url, "--stage", "train", columns=200)
    assert "started (UTC)" in table and start.strftime("%Y-%m-%d %H:%M:%S") in table
    narrow = invoke("executions", "--store", store_url, "--stage", "train", columns=60)
    assert "(UTC)" in narrow and start.strftime("%Y-%m-%d") in narrow

    def found(since: str) -> int:
        return len(json.loads(invoke("executions", "--store", store_url, "--json", "--stage",
                                     "train", "--since", since)))

    later = start + timedelta(seconds=1)
    assert found(start.strftime("%Y-%m-%dT%H:%M:%S")) == 1  # naive: UTC, not +05:30
    assert found(later.strftime("%Y-%m-%dT%H:%M:%S")) == 0
    local = (later + timedelta(hours=5, minutes=30)).strftime("%Y-%m-%dT%H:%M:%S+05:30")
    assert found(local) == 0 and found(later.strftime("%Y-%m-%dT%H:%M:%SZ")) == 0
    assert "UTC unless it has an offset" in invoke("executions", "--help", columns=200)


def test_executions_table_keeps_ids_whole_at_80_columns(store_url: str) -> None:
    """At 80 columns the seven columns left 4-5 characters to each name (folded a letter
    column at a time) and cut params with "…"; now a row that does not fit takes several
    lines (id over pipeline / stage @site, status over time, one param a line), nothing cut."""
    from rich.cells import cell_len

    with Cmf(pipeline_name="customer-churn-prediction-2026", store=store_url, site="hpc",
             measure_energy=False) as cmf, \
            cmf.create_execution("évaluation-модель-評価", params={
                "learning_rate": 0.001, "n_estimators": 500, "名前": "值"}):
        pass
    ids = [e["id"] for e in json.loads(invoke("executions", "--store", store_url, "--json"))]
    lines = invoke("executions", "--store", store_url, columns=80).splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    for i in ids:  # each on one line (copyable)
        assert sum(i in line for line in lines) == 1
    assert not any("…" in line for line in lines)
    words = " ".join(lines).split()
    for shown in ("split=0.2", "lr=0.1", "learning_rate=0.001", "n_estimators=500", "名前=值",
                  "churn", "prepare", "train", "@hpc", "customer-churn-prediction-2026",
                  "évaluation-модель-評価", "completed", "2026-", "churn"):
        assert any(shown in w for w in words), shown
    # a wide terminal keeps one line per execution
    wide = invoke("executions", "--store", store_url, columns=200).splitlines()
    assert sum(any(i in line for i in ids) for line in wide) == len(ids) == 3
    assert any("learning_rate=0.001, n_estimators=500, 名前=值" in line for line in wide)


def test_a_table_too_wide_for_the_terminal_is_a_block_per_row(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """At 80 columns a listing of absolute paths folded them a dozen letters a line
    ("/tmp/cb/proje", "ct/data/proce", ...); each row is now its first cell on a line, then one
    line per other cell, paths whole."""
    from rich.cells import cell_len

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "project" / "data" / "processed"
    data.mkdir(parents=True)
    (data / "customer_features_2026.csv").write_text("a\n1\n")
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    with Cmf(pipeline_name="customer-churn-prediction", store=url, site="hpc-cluster-eu",
             measure_energy=False) as cmf, cmf.create_execution("featurize"):
        art = cmf.log_dataset(str(data / "customer_features_2026.csv"), "output")
    out = invoke("artifacts", "--store", url, columns=80)
    lines = out.splitlines()
    assert "│" not in out and max(cell_len(line) for line in lines) <= 80
    assert lines[:5] == ["Artifacts", art.id[:19], "  type: Dataset",
                         "  name: customer_features_2026.csv", "  site: hpc-cluster-eu"]
    # a path longer than the line (pytest's tmp_path) wraps as a terminal would, nothing cut
    assert "".join(line.strip() for line in lines[5:]) == \
        f"uri:{data / 'customer_features_2026.csv'}"
    pipelines = invoke("pipelines", "--store", url, columns=80).splitlines()
    assert pipelines[:3] == ["Pipelines", "customer-churn-prediction", "  site: hpc-cluster-eu"]
    assert "  stages: featurize" in pipelines
    wide = invoke("artifacts", "--store", url, columns=300)  # a terminal it fits: the table
    assert f"│ {data / 'customer_features_2026.csv'} │" in wide


def test_artifacts(store_url: str) -> None:
    data = json.loads(invoke("artifacts", "--store", store_url, "--json", "--type", "Dataset"))
    assert sorted(a["name"] for a in data) == ["raw.csv", "train.csv"]


def test_lineage_tree_and_json(store_url: str) -> None:
    text = invoke("lineage", "model.pkl", "--store", store_url, columns=200)
    lines = text.splitlines()
    assert "Model model.pkl" in lines[0]
    assert "churn/train" in lines[1] and "lr=0.1" in lines[1]
    assert "train.csv" in lines[2] and "churn/prepare" in lines[3] and "raw.csv" in lines[4]
    tree = json.loads(invoke("lineage", "model.pkl", "--store", store_url, "--json"))
    assert tree["children"][0]["children"][0]["name"] == "train.csv"


def test_lineage_says_how_many_parameters_it_leaves_out(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree line shows four parameters; the rest were dropped without a sign, so a missing
    ``lr`` read as never set."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    params = {"alpha": 1, "batch": 32, "depth": 6, "epochs": 3, "lr": 0.1, "seed": 7}
    with Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False) as cmf, \
            cmf.create_execution("fit", params=params):
        (tmp_path / "m.pkl").write_bytes(b"m")
        cmf.log_model("m.pkl", "output")
    line = invoke("lineage", "m.pkl", "--store", url, columns=200).splitlines()[1]
    assert "alpha=1, batch=32, depth=6, epochs=3, ... 2 more" in line
    assert "lr=" not in line


def test_lineage_of_a_copy_by_its_own_path(store_url: str, tmp_path: Path) -> None:
    """A copy of raw.csv is one artifact, named raw.csv; its own path (or the relative one)
    finds it, where "no artifact" was said."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "copy.csv").write_bytes((tmp_path / "raw.csv").read_bytes())
    with Cmf(pipeline_name="churn", store=store_url, site="hpc", measure_energy=False) as cmf, \
            cmf.create_execution("copy"):
        cmf.log_dataset("raw.csv", "input")
        cmf.log_dataset("out/copy.csv", "output")
    for ref in ("copy.csv", "out/copy.csv", str(tmp_path / "out" / "copy.csv")):
        lines = invoke("lineage", ref, "--store", store_url, columns=200).splitlines()
        assert "Dataset raw.csv" in lines[0] and "churn/copy" in lines[1], ref


def test_lineage_labels_executions_by_whole_id(store_url: str) -> None:
    # a UUIDv7 begins with its time: a run's executions share their first characters, so the
    # tree shows each id whole, and that is what cmf show takes
    ids = {e["stage"]: e["id"] for e in json.loads(invoke("executions", "--store", store_url,
                                                          "--json"))}
    lines = invoke("lineage", "model.pkl", "--store", store_url, columns=200).splitlines()
    assert f"churn/train {ids['train']} @hpc" in lines[1]
    assert f"churn/prepare {ids['prepare']} @hpc" in lines[3]
    shown = json.loads(invoke("show", ids["prepare"], "--store", store_url, "--json"))
    assert shown["stage"] == "prepare"


def test_show_takes_a_unique_id_prefix(store_url: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    ids = {e["stage"]: e["id"] for e in json.loads(invoke("executions", "--store", store_url,
                                                          "--json"))}
    a, b = ids.values()
    common = a[:next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)]
    assert len(common) >= 4  # the same run: the same time prefix
    for stage, eid in ids.items():
        shown = json.loads(invoke("show", eid[:len(common) + 1], "--store", store_url,
                                  "--json"))
        assert (shown["kind"], shown["id"], shown["stage"]) == ("execution", eid, stage)
        assert json.loads(invoke("show", eid.upper()[:30], "--store", store_url,
                                 "--json"))["id"] == eid
    err = fails(capsys, "show", common, "--store", store_url)
    assert err == (f"Error: {common!r} is ambiguous: it matches execution {ids['prepare']} "
                   f"(churn/prepare); execution {ids['train']} (churn/train); give more of the "
                   "id or digest, or the whole name")
    assert fails(capsys, "show", common[:3], "--store", store_url) == (
        f"Error: no execution with id {common[:3]!r} and no artifact with digest, name or "
        f"location {common[:3]!r} (a prefix of an id or digest needs at least 4 hex characters)")


def test_show_gives_the_link_to_the_run_in_its_orchestrator(tmp_path: Path) -> None:
    """``cmf.run_url`` (set by an orchestrator adapter) is shown as ``run_url``, in the
    highlighted output too; a value that is no http(s) URL is no link, and a run without one
    has no ``run_url``."""
    from cmf_core.model import Execution, Pipeline, Stage
    from cmf_core.store import open_store

    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    link = "https://prefect.example.org/runs/task-run/0196d1a2-0000-7000-8000-000000000001"
    runs = [Execution(pipeline="p", stage="s", site="lab", properties={"cmf.run_url": value})
            for value in (link, "javascript:alert(1)")] + [Execution("p", "s", "lab")]
    with open_store(url, site="lab") as store:
        store.put([Pipeline("p", "lab"), Stage("p", "s", "lab"), *runs])
    shown = [json.loads(invoke("show", e.id, "--store", url, "--json")) for e in runs]
    assert [x.get("run_url") for x in shown] == [link, None, None]
    assert f'"run_url": "{link}"' in invoke("show", runs[0].id, "--store", url, columns=300)


def test_digest_prefixes_from_four_hex_characters_everywhere(
        store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = json.loads(invoke("artifacts", "--store", store_url, "--json", "--type", "Model"))[0]
    digest = model["id"]
    hexpart = digest.split(":", 1)[1]
    for ref in (f"sha256:{hexpart[:4]}", hexpart[:4], f"sha256:{hexpart[:12]}"):
        tree = json.loads(invoke("lineage", ref, "--store", store_url, "--json"))
        assert tree["id"] == digest
        assert json.loads(invoke("show", ref, "--store", store_url, "--json"))["id"] == digest
        # export takes the same forms (one resolver): the model's closure, whole digest
        out = tmp_path / "a.jsonl"
        invoke("export", str(out), "--artifact", ref, "--force", "--store", store_url)
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert lines[0]["selector"] == {"artifact": digest}
        assert {r["name"] for r in lines if r.get("kind") == "artifact"} >= {
            "model.pkl", "train.csv", "raw.csv"}
    invoke("export", str(tmp_path / "b.jsonl"), "--artifact", "model.pkl", "--store", store_url)
    assert fails(capsys, "lineage", f"sha256:{hexpart[:3]}", "--store", store_url) == (
        f"Error: no artifact with digest, name or location 'sha256:{hexpart[:3]}' (a prefix of "
        "an id or digest needs at least 4 hex characters)")


def test_names_match_the_last_part_of_recorded_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # the orchestrator integrations name artifacts by their absolute path
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "model.pkl").write_bytes(d.encode())
    (tmp_path / "a" / "data.csv").write_text("x\n")
    with (Cmf(pipeline_name="p", store=url, site="hpc", measure_energy=False) as cmf,
          cmf.create_execution("train")):
        cmf.log_dataset(str(tmp_path / "a" / "data.csv"), "input",
                        name=str(tmp_path / "a" / "data.csv"))
        for d in ("a", "b"):
            cmf.log_model(str(tmp_path / d / "model.pkl"), "output",
                          name=str(tmp_path / d / "model.pkl"))
    tree = json.loads(invoke("lineage", "data.csv", "--store", url, "--json"))
    assert tree["name"] == str(tmp_path / "a" / "data.csv")
    shown = json.loads(invoke("show", "data.csv", "--store", url, "--json"))
    assert shown["name"] == str(tmp_path / "a" / "data.csv")
    err = fails(capsys, "lineage", "model.pkl", "--store", url)
    assert err.startswith("Error: 'model.pkl' is ambiguous: it matches artifact sha256:")
    assert f"({tmp_path / 'a' / 'model.pkl'})" in err and f"({tmp_path / 'b' / 'model.pkl'})" in err
    tree = json.loads(invoke("lineage", str(tmp_path / "b" / "model.pkl"), "--store", url,
                             "--json"))  # the whole path still names it exactly
    assert tree["name"] == str(tmp_path / "b" / "model.pkl")


def test_show_execution_and_artifact(store_url: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    ex = json.loads(invoke("executions", "--store", store_url, "--json", "--stage", "train"))[0]
    shown = json.loads(invoke("show", ex["id"], "--store", store_url, "--json"))
    assert shown["kind"] == "execution" and len(shown["inputs"]) == 1
    assert {m["name"]: m["value"] for m in shown["metrics"]} == {"auc": 0.9}
    art = json.loads(invoke("show", "train.csv", "--store", store_url, "--json"))
    assert art["kind"] == "artifact" and len(art["produced_by"]) == 1
    # neither: the error names both things it looked for
    with pytest.raises(SystemExit) as e:
        main(["show", "nope", "--store", store_url])
    assert e.value.code == 1
    assert capsys.readouterr().err.strip() == ("Error: no execution with id 'nope' and no "
                                               "artifact with digest, name or location 'nope'")


def test_export_import_roundtrip(store_url: str, tmp_path: Path) -> None:
    out = tmp_path / "dump.jsonl"
    invoke("export", str(out), "--store", store_url)
    lines = out.read_text().splitlines()
    assert {json.loads(line)["kind"] for line in lines} >= {"pipeline", "execution", "event"}
    other = f"sqlite:///{tmp_path / 'other.db'}"
    n = len(lines) - 2
    first = invoke("import", str(out), "--store", other)
    assert first.strip().endswith(f"from {out}: {n} new or updated, 0 already in this store")
    second = invoke("import", str(out), "--store", other)  # idempotent: and says so
    assert second.strip() == f"Nothing new in {out}: this store already had all {n} records " \
                             f"from site {json.loads(lines[0])['origin_site']}"
    out2 = tmp_path / "dump2.jsonl"
    invoke("export", str(out2), "--store", other)
    lines2 = out2.read_text().splitlines()
    # a bundle: header (origin site) first, checksum trailer last, records in between
    assert json.loads(lines[0])["kind"] == "cmf-bundle"
    assert json.loads(lines[0])["origin_site"]  # the site running the export
    assert json.loads(lines[-1])["kind"] == "cmf-bundle-end"
    assert json.loads(lines2[0])["origin_store"] != json.loads(lines[0])["origin_store"]
    # the same records, each keeping the version ("_v") it had at the store that made it
    assert sorted(lines2[1:-1]) == sorted(lines[1:-1])


def test_errors_are_one_line_exit_1(store_url: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["lineage", "nope", "--store", store_url])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == "Error: no artifact with digest, name or location 'nope'"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "pipeline", "name": "x", "site": "a"}\n{"kind": "spaceship"}\n')
    with pytest.raises(SystemExit):
        main(["import", str(bad), "--store", store_url])
    assert "bad.jsonl:2: unknown record kind 'spaceship'" in capsys.readouterr().err
    data = json.loads(invoke("pipelines", "--store", store_url, "--json"))
    assert [p["name"] for p in data] == ["churn"]  # nothing from the bad file was imported


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    main(["--version"])
    assert capsys.readouterr().out == f"cmf-foundation {version('cmf-foundation')}\n"
    assert invoke("--version", "pipelines") == invoke("--version")  # eager: nothing else runs


def test_serve_without_the_server_extra_says_which(store_url: str,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # as if fastapi were not installed (it is here): the server modules import afresh and fail
    monkeypatch.setitem(sys.modules, "fastapi", None)
    for name in [m for m in sys.modules if m.startswith("cmf_core.server")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(SystemExit) as e:
        main(["serve", "--store", store_url, "--port", "0"])
    assert e.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "Error: cmf serve needs the server extra (fastapi is missing): "
        "pip install 'cmf-foundation[server]'")


def test_a_pipeline_name_the_store_lacks_is_an_error_in_every_listing(
        store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`cmf executions/stages/artifacts --pipeline chrun` (a typo) listed nothing with exit 0
    and a note on stderr, while `cmf carbon/reap/export` failed with exit 1: a script saw `[]`
    for a typo. Now every command reading the store fails the same way."""
    for args in (["executions", "--pipeline", "chrun"], ["stages", "chrun"],
                 ["stages", "--pipeline", "chrun"], ["artifacts", "--pipeline", "chrun"],
                 ["carbon", "--pipeline", "chrun"], ["reap", "--pipeline", "chrun"]):
        for extra in ([], ["--json"]):
            assert fails(capsys, *args, *extra, "--store", store_url) == (
                "Error: no pipeline named 'chrun' in this store (known: churn)"), args
    # a known pipeline with nothing matching the other filters is just an empty listing
    assert invoke_json("executions", "--pipeline", "churn", "--status", "failed", "--json",
                       "--store", store_url) == []


def test_init_creates_home(tmp_path: Path) -> None:
    out = invoke("init", str(tmp_path / "proj"), "--site", "edge")
    assert "site edge" in out
    assert (tmp_path / "proj" / ".cmf" / "cmf.db").is_file()


def test_init_site_is_the_site_of_every_record_made_under_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("CMF_HOME", "CMF_SITE", "CMF_STORE_URL", "CMF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    proj = tmp_path / "proj"
    assert "(site edge)" in invoke("init", str(proj), "--site", "edge")
    config = proj / ".cmf" / "cmf.toml"
    assert config.read_text() == 'site = "edge"\n'
    (proj / "src").mkdir()
    monkeypatch.chdir(proj / "src")  # the home is found upwards, as git finds .git
    with Cmf(pipeline_name="p", measure_energy=False) as cmf, cmf.create_execution("s"):
        pass
    data = json.loads(invoke("executions", "--json"))
    assert [e["site"] for e in data] == ["edge"]
    monkeypatch.setenv("CMF_SITE", "laptop")  # the environment still wins
    with Cmf(pipeline_name="p", measure_energy=False) as cmf, cmf.create_execution("s"):
        pass
    data = json.loads(invoke("executions", "--json"))
    assert sorted(e["site"] for e in data) == ["edge", "laptop"]
    with pytest.raises(SystemExit) as e:  # a home does not change its site by accident
        main(["init", str(proj), "--site", "cloud"])
    assert e.value.code == 1
    assert capsys.readouterr().err.strip() == (
        f"Error: this CMF home's site is 'edge' (in {config}); edit that file to change it")
    assert config.read_text() == 'site = "edge"\n'


def test_init_on_a_bad_path_or_an_existing_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    for where, blocker in ((tmp_path / "afile", tmp_path / "afile"),
                           (tmp_path / "afile" / "sub", tmp_path / "afile")):
        with pytest.raises(SystemExit) as e:
            main(["init", str(where)])
        assert e.value.code == 1
        assert capsys.readouterr().err.strip() == (
            f"Error: cannot create the CMF home {where / '.cmf'}: {blocker} is a file, "
            "not a folder")
    assert (tmp_path / "afile").read_text() == "x"
    # a writer whose CMF_HOME is a file: a one-line error, not a traceback
    monkeypatch.setenv("CMF_HOME", str(tmp_path / "afile"))
    monkeypatch.delenv("CMF_STORE_URL", raising=False)
    with pytest.raises(CmfError, match=f"{tmp_path / 'afile'} is a file, not a folder"):
        Cmf(pipeline_name="p", measure_energy=False)
    # init over an existing store says so and keeps what it holds
    monkeypatch.delenv("CMF_HOME")
    db = tmp_path / "proj" / ".cmf" / "cmf.db"
    invoke("init", str(tmp_path / "proj"))
    with (Cmf(pipeline_name="kept", store=f"sqlite:///{db}", measure_energy=False) as cmf,
          cmf.create_execution("s")):
        pass
    out = invoke("init", str(tmp_path / "proj"), "--site", "edge")
    assert out == (f"A CMF store already exists at {db}; left as it was (its site is now edge, "
                   f"in {db.parent / 'cmf.toml'})\n")
    out = invoke("init", str(tmp_path / "proj"), "--site", "edge")
    assert out == f"A CMF store already exists at {db}; left as it was\n"
    data = json.loads(invoke("pipelines", "--store", f"sqlite:///{db}", "--json"))
    assert [(p["name"], p["executions"]) for p in data] == [("kept", 1)]


def test_init_without_a_path_makes_the_home_cmf_home_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "shared" / "home"  # CMF_HOME names the home itself, not its parent
    monkeypatch.setenv("CMF_HOME", str(home))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(SystemExit):  # a reader finds no store and says to make one
        main(["pipelines"])
    assert capsys.readouterr().err.startswith(
        f"Error: no CMF store at {home / 'cmf.db'} (create one with `cmf init`")
    main(["init", "--site", "edge"])  # doing as it says makes the store it looked for
    out, err = capsys.readouterr()
    assert out == (f"Initialised CMF store at {home / 'cmf.db'} (site edge), the home CMF_HOME "
                   "names\n") and err == ""
    assert (home / "cmf.toml").read_text() == 'site = "edge"\n'
    assert list((tmp_path / "work").iterdir()) == []  # nothing in the current folder
    main(["pipelines", "--json"])
    assert json.loads(capsys.readouterr().out) == []
    main(["init"])
    assert capsys.readouterr().out == (
        f"A CMF store already exists at {home / 'cmf.db'}; left as it was\n")


def test_init_with_a_path_cmf_home_overrides_warns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("CMF_HOME", str(home))
    main(["init", str(tmp_path / "proj")])
    out, err = capsys.readouterr()
    assert out.startswith(f"Initialised CMF store at {tmp_path / 'proj' / '.cmf' / 'cmf.db'} ")
    assert err == (f"Warning: CMF_HOME is {home}, so later commands use the home there, not "
                   f"{tmp_path / 'proj' / '.cmf'} (unset CMF_HOME to use this one)\n")
    assert (tmp_path / "proj" / ".cmf" / "cmf.db").is_file() and not home.exists()
    # PATH whose .cmf is CMF_HOME: no warning
    monkeypatch.setenv("CMF_HOME", str(tmp_path / "proj" / ".cmf"))
    main(["init", str(tmp_path / "proj")])
    assert capsys.readouterr().err == ""
    # a store URL wins over any home: said too
    monkeypatch.setenv("CMF_STORE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    main(["init", str(tmp_path / "proj")])
    assert capsys.readouterr().err == (
        "Warning: CMF_STORE_URL is set, so later commands use that store, not "
        f"{tmp_path / 'proj' / '.cmf' / 'cmf.db'} (unset CMF_STORE_URL to use this one)\n")


def test_every_command_has_help() -> None:
    import typer.main

    group = typer.main.get_command(app)
    assert len(group.commands) >= 9
    for name, cmd in group.commands.items():
        assert cmd.help, f"command {name} has no help"
        invoke(name, "--help")


def test_flags_show_no_type_in_help() -> None:
    """typer printed `<bool>` in the type column of every flag (`--json <bool>`, `--help
    <bool>`), as if the flag took a value; no flag of any command or group (the integrations'
    too) shows a type now, and options taking a value keep theirs."""
    import typer.main

    def walk(cmd: object, path: list[str]) -> list[list[str]]:
        subs = getattr(cmd, "commands", None) or {}
        return [path] + [p for n, c in subs.items() for p in walk(c, [*path, n])]

    paths = walk(typer.main.get_command(app), [])
    assert ["prefect", "watch"] in paths and ["spool", "retry"] in paths
    for path in paths:
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
        assert "<bool>" not in out, path
        assert re.search(r"--help +-h +Show this message", out), path
    out = invoke("executions", "--help", columns=200)
    assert re.search(r"--json +Print JSON", out) and re.search(r"--limit +<int>", out)
    assert re.search(r"--gzip +--no-gzip +Compress", invoke("export", "--help", columns=200))


def test_export_until_a_time(store_url: str, tmp_path: Path) -> None:
    """`cmf export` had --since but no --until, as `cmf executions` and `cmf carbon` have:
    a closed time window could not be exported. The bundle's selector keeps `since_time` (null)
    beside `until_time`, so an importer not knowing until_time still takes it as a one-off
    subset, not as the store's changes up to its end."""
    with (Cmf(pipeline_name="churn", store=store_url, site="hpc", measure_energy=False) as cmf,
          cmf.create_execution("score")):
        pass
    rows = invoke_json("executions", "--json", "--store", store_url)
    # between train's start and score's (milliseconds apart: each commits to the store)
    cut = (rows[1]["started_at"] + rows[2]["started_at"]) / 2  # type: ignore[index]
    until = datetime.fromtimestamp(cut, UTC).isoformat()
    assert len(invoke_json("executions", "--until", until, "--json",  # type: ignore[arg-type]
                           "--store", store_url)) == 2
    out = tmp_path / "window.jsonl"
    invoke("export", str(out), "--until", until, "--store", store_url)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["selector"] == {"since_time": None,
                                    "until_time": datetime.fromisoformat(until).timestamp()}
    stages = {r["stage"] for r in lines if r.get("kind") == "execution"}
    assert stages == {"prepare", "train"}  # not score, started after the cut
    out = tmp_path / "none.jsonl"
    invoke("export", str(out), "--since", until, "--until", until, "--store", store_url)
    assert not [line for line in out.read_text().splitlines()
                if json.loads(line).get("kind") == "execution"]


def test_export_refuses_a_seq_with_a_window_or_an_artifact(
        store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--since-seq selects changes; with --since/--until or --artifact it was silently
    ignored, so the bundle held more than was asked for. It is refused, naming both, and no
    file is written."""
    out = tmp_path / "b.jsonl"
    for extra in (["--since", "2000-01-01"], ["--until", "2999-01-01"],
                  ["--artifact", "model.pkl"]):
        said = fails(capsys, "export", str(out), "--since-seq", "3", *extra,
                     "--store", store_url)
        assert "seq" in said and "time window" in said and "artifact closure" in said, said
        assert not out.exists()


def test_command_listing_summaries_are_reflowed() -> None:
    """`cmf --help` lists each command with its docstring's first paragraph as one reflowed
    text (typer's rich mode kept the docstring's own line breaks: ragged lines)."""
    import typer.main

    def walk(cmd: object, path: str) -> list[tuple[str, str]]:
        subs = getattr(cmd, "commands", None) or {}
        found = [(f"{path} {n}", c.get_short_help_str(10_000)) for n, c in subs.items()]
        return found + [x for n, c in subs.items() for x in walk(c, f"{path} {n}")]

    summaries = walk(typer.main.get_command(app), "cmf")
    assert len(summaries) >= 20
    for name, text in summaries:
        assert text and "\n" not in text, f"{name}: {text!r}"
    wide = runner.invoke(app, ["--help"], env={"COLUMNS": "240"})
    assert wide.exit_code == 0, wide.output
    # the docstring breaks its line after "recorded"; the listing must not
    assert "true conflicts are recorded and reported, never overwritten" in wide.output


def test_usage_errors_are_short(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["executions", "--limit", "abc"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Invalid value for '--limit'" in err


def test_reading_a_missing_store_fails_and_creates_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    typo = tmp_path / "typo" / "cmf.db"
    for args in (["pipelines"], ["stages"], ["executions"], ["artifacts"], ["show", "x"],
                 ["lineage", "x"], ["carbon"], ["export"], ["export", "out.jsonl"],
                 ["conflicts"], ["artifact", "fetch", "sha256:00"]):
        with pytest.raises(SystemExit) as e:
            main([*args, "--store", f"sqlite:///{typo}"])
        assert e.value.code == 1, args
        assert capsys.readouterr().err.strip() == (
            f"Error: no CMF store at {typo} (create one with `cmf init`, or check the store "
            "URL: --store or CMF_STORE_URL)"), args
        assert sorted(tmp_path.iterdir()) == [], args  # no store, no folder, no output


def test_a_failed_import_leaves_no_new_store_behind(
        store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "spaceship"}\n')
    new = tmp_path / "new" / "deeper" / "cmf.db"
    with pytest.raises(SystemExit):
        main(["import", str(bad), "--store", f"sqlite:///{new}"])
    assert "unknown record kind 'spaceship'" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    # a good bundle still creates the store (import writes)
    good = tmp_path / "good.jsonl"
    invoke("export", str(good), "--store", store_url)
    invoke("import", str(good), "--store", f"sqlite:///{new}")
    data = json.loads(invoke("pipelines", "--store", f"sqlite:///{new}", "--json"))
    assert [p["name"] for p in data] == ["churn"]


def test_counts_are_bounded_to_what_a_store_holds(store_url: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    top = str(2**63 - 1)
    for args in (["executions", "--limit"], ["executions", "--offset"], ["artifacts", "--limit"],
                 ["lineage", "model.pkl", "--depth"], ["export", "--since-seq"],
                 ["spool", "retry", "--limit"]):
        for value, bound in ((str(2**63), f"less than or equal to {top}"),
                             ("-1", "greater than or equal to 0")):
            with pytest.raises(SystemExit) as e:
                main([*args, value, "--store", store_url])
            assert e.value.code == 2, args
            err = capsys.readouterr().err
            assert "Traceback" not in err and f"Invalid value for '{args[-1]}'" in err, args
            assert bound in err, args
    # the help gives the lower bound only, not the 19-digit upper one
    help_text = invoke("executions", "--help")
    assert "[x>=0]" in help_text and top[:6] not in help_text
    # the largest value is accepted
    assert json.loads(invoke("executions", "--limit", top, "--offset", top, "--json",
                             "--store", store_url)) == []
    assert len(json.loads(invoke("artifacts", "--limit", top, "--json", "--store",
                                 store_url))) == 4  # 3 files, the metrics
    tree = json.loads(invoke("lineage", "model.pkl", "--depth", top, "--json", "--store",
                             store_url))
    assert tree["children"][0]["children"][0]["name"] == "train.csv"
    assert invoke("export", "--since-seq", top, "--store", store_url).count("\n") == 2


def test_export_to_a_folder_or_a_missing_folder(store_url: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    for target, why in ((folder, "it is a folder; give a file name"),
                        (tmp_path / "nope" / "x.jsonl",
                         f"the folder {tmp_path / 'nope'} does not exist")):
        with pytest.raises(SystemExit) as e:
            main(["export", str(target), "--store", store_url])
        assert e.value.code == 1
        assert capsys.readouterr().err.strip() == f"Error: cannot export to {target}: {why}"
    assert list(folder.iterdir()) == [] and not (tmp_path / "nope").exists()
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(SystemExit):
        main(["export", "--mlmd", str(folder), "--store", store_url])
    assert capsys.readouterr().err.strip() == (
        f"Error: MLMD export target {folder} is a directory; give a file path such as "
        f"{folder}/mlmd")


def test_an_export_failing_midway_leaves_no_part_file(
        store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from cmf_core.errors import StoreError
    from cmf_core.federation import export

    def failing(*_args: object, **_kwargs: object) -> Iterator[bytes]:
        yield b'{"kind": "cmf-bundle"}\n'
        raise StoreError("the store went away")

    monkeypatch.setattr(export, "export_bundle", failing)
    out = tmp_path / "dump.jsonl"
    out.write_text("kept\n")
    with pytest.raises(SystemExit):
        main(["export", str(out), "--force", "--store", store_url])
    assert capsys.readouterr().err.strip() == "Error: the store went away"
    assert out.read_text() == "kept\n" and not list(tmp_path.glob("*.part"))


def test_import_of_a_deeply_nested_line_names_it(store_url: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "deep.jsonl"
    bad.write_text('{"kind": "pipeline", "name": "x", "site": "a"}\n'
                   '{"kind": "pipeline", "name": "y", "site": "a", "properties": {"a": '
                   + "[" * 100_000 + "]" * 100_000 + "}}\n")
    with pytest.raises(SystemExit) as e:
        main(["import", str(bad), "--store", store_url])
    assert e.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "Error: deep.jsonl:2: nested 100002 levels deep; at most 200 levels of arrays and "
        "objects are accepted")
    data = json.loads(invoke("pipelines", "--store", store_url, "--json"))
    assert [p["name"] for p in data] == ["churn"]


def test_import_names_bad_fields_and_a_folder_in_the_records_terms(
        store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        '{"kind": "pipeline", "name": "x", "site": "a", "colour": "red"}':
            "bad pipeline record: unknown field(s) colour (its fields: name, site, created_at, "
            "properties, custom_properties)",
        '{"kind": "metric", "name": "loss"}':
            "bad metric record: missing field(s) execution_id, value (its fields: "
            "execution_id, name, value, step, timestamp)",
    }
    for line, message in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(line + "\n")
        with pytest.raises(SystemExit) as e:
            main(["import", str(bad), "--store", store_url])
        assert e.value.code == 1
        err = capsys.readouterr().err
        assert f"bad.jsonl:1: {message}; nothing was imported" in err, err
        assert "__init__" not in err and "keyword argument" not in err
    with pytest.raises(SystemExit):
        main(["import", str(tmp_path), "--store", store_url])
    assert capsys.readouterr().err.strip() == (
        f"Error: import file {tmp_path} is a folder; give a bundle file (.jsonl or .jsonl.gz)")
    data = json.loads(invoke("pipelines", "--store", store_url, "--json"))
    assert [p["name"] for p in data] == ["churn"]  # nothing stored was touched


def test_unknown_names_that_would_select_nothing_are_errors(
        store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["carbon", "chrun"], ["export", "--pipeline", "chrun"],
                 ["export", str(tmp_path / "out.jsonl"), "--pipeline", "churn", "--pipeline",
                  "chrun"]):
        with pytest.raises(SystemExit) as e:
            main([*args, "--store", store_url])
        assert e.value.code == 1, args
        assert capsys.readouterr().err.strip() == (
            "Error: no pipeline named 'chrun' in this store (known: churn)"), args
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(SystemExit) as e:
        main(["artifacts", "--type", "Bogus", "--store", store_url])
    assert e.value.code == 1
    assert capsys.readouterr().err.strip().startswith(
        "Error: no artifact type 'Bogus': not a registered type, and no artifact of this store "
        "has it (known: Code, Dataset, ")
    # known names with nothing to show are not errors
    assert json.loads(invoke("artifacts", "--type", "Label", "--json", "--store", store_url)) == []
    assert json.loads(invoke("artifacts", "--type", "Model", "--name", "x", "--json", "--store",
                             store_url)) == []
    assert "churn" in invoke("carbon", "--pipeline", "churn", "--store", store_url)


def test_show_json_help_says_what_it_changes() -> None:
    result = runner.invoke(app, ["show", "--help"], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "instead of a table" not in text  # show has no table: it always prints JSON
    assert " ".join(text.replace("│", " ").split()).count(
        "Print plain JSON, for scripts, with every step of every metric (default: the same "
        "JSON, highlighted, stepped metrics summarised).") == 1


def test_a_damaged_store_and_bad_arguments_are_one_line_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store whose schema text is not UTF-8, a peer URL httpx cannot parse and a time out of
    range: an error naming the problem, never a traceback."""
    from tests.core.store.test_store import undecodable_schema

    f = tmp_path / "cmf.db"
    with Cmf(pipeline_name="p", store=f"sqlite:///{f}", measure_energy=False):
        pass
    undecodable_schema(f)
    bundle = tmp_path / "b.jsonl"
    bundle.write_text("")
    for args in (["executions"], ["import", str(bundle)]):
        with pytest.raises(SystemExit) as e:
            main([*args, "--store", f"sqlite:///{f}"])
        assert e.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith(f"Error: the CMF store {f} is damaged (malformed database schema")
    with pytest.raises(SystemExit):
        main(["sync", "http://[::1", "--store", f"sqlite:///{tmp_path / 'other.db'}"])
    assert capsys.readouterr().err.strip() == (
        "Error: peer URL 'http://[::1' is not a valid URL (Invalid port: ':1'); give the peer's "
        "cmf serve, e.g. https://hpc.example.org:8080")
    good = f"sqlite:///{tmp_path / 'good.db'}"
    Cmf(pipeline_name="p", store=good, measure_energy=False).close()
    with pytest.raises(SystemExit):
        main(["executions", "--since", "0000-01-01T00:00:00Z", "--store", good])
    assert capsys.readouterr().err.strip() == (
        "Error: time '0000-01-01T00:00:00Z' is ISO 8601 but out of range: year 0 is out of "
        "range (a valid date from 0001-01-01 to 9999-12-31 is needed)")
    with pytest.raises(SystemExit):
        main(["executions", "--since", "soon", "--store", good])
    assert "time 'soon' is not ISO 8601" in capsys.readouterr().err


def test_help_loads_no_heavy_library() -> None:
    """`cmf --help` (and every command's start) pays only for what it uses: NumPy, networkx,
    SQLAlchemy and the OpenLineage client load when a command needs them (each takes about
    half a second on these machines). A fresh interpreter, as the `cmf` script runs."""
    import subprocess

    heavy = ("numpy", "networkx", "sqlalchemy", "openlineage.client", "sklearn", "fastapi")
    code = ("import sys\nfrom cmf_core.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\n"
            f"print([m for m in {heavy!r} if m in sys.modules], file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert "Usage: " in done.stdout and "recommend" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_ctrl_c_while_the_cli_loads_is_an_abort_not_a_traceback() -> None:
    """Ctrl-C in the most of a second the `cmf` script spends importing the CLI printed a
    KeyboardInterrupt traceback through typer and rich; it is now answered as one during a
    command. The interrupt is raised by an import hook at the CLI's import, in a fresh
    interpreter that starts as the `cmf` script does (its entry point), so it lands there
    every time rather than when a timed signal happens to."""
    import subprocess

    code = ("import sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'cmf_core.cli':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "from cmf_core.script import main\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip() == "Aborted.", done.stderr


def test_the_script_entry_point_runs_the_cli() -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-c", "from cmf_core.script import main; main()",
                           "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Usage: " in done.stdout and "recommend" in done.stdout


@pytest.mark.parametrize("url", ["hpc.example.org:8080", "localhost:8080", "ftp://hpc.example.org"])
def test_a_peer_url_without_http_names_the_scheme(url: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`cmf sync hpc:8080` (the scheme forgotten) said "cannot reach hpc:8080: Request URL has
    an unsupported protocol 'hpc://'", as if the network were at fault; sync and artifact fetch
    now say the URL must start with http:// or https://."""
    store = f"sqlite:///{tmp_path / 'cmf.db'}"
    (tmp_path / "d.csv").write_text("x\n1\n")
    with Cmf(pipeline_name="p", store=store, measure_energy=False) as cmf, \
            cmf.create_execution("s") as run:
        digest = run.log_dataset(str(tmp_path / "d.csv"), "input").id
    want = (f"Error: peer URL '{url}' must start with http:// or https://; give the peer's cmf "
            "serve, e.g. https://hpc.example.org:8080")
    assert fails(capsys, "sync", url, "--store", store) == want
    assert fails(capsys, "artifact", "fetch", digest, "--from", url, "--store", store,
                 "--out", str(tmp_path / "got")) == want


def test_serve_names_a_bad_log_level_before_making_a_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cmf serve --log-level verbose` created the store, then uvicorn raised a KeyError
    traceback; now a one-line error lists the levels and nothing is created."""
    db = tmp_path / "new.db"
    assert fails(capsys, "serve", "--log-level", "verbose", "--port", "0",
                 "--store", f"sqlite:///{db}") == (
        "Error: unknown --log-level 'verbose'; use one of critical, error, warning, info, "
        "debug, trace")
    assert not db.exists()


def test_a_bad_option_value_names_the_option(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`cmf serve --port 99999` said "serve_port: ... (an argument)": the user typed --port."""
    monkeypatch.delenv("CMF_SERVE_PORT", raising=False)
    db = tmp_path / "new.db"
    bound = "serve_port: Input should be less than or equal to 65535"
    assert fails(capsys, "serve", "--port", "99999", "--store", f"sqlite:///{db}") == (
        f"Error: invalid cmf configuration: {bound} (from --port)")
    assert fails(capsys, "serve", "--root-path", "cmf", "--port", "0",
                 "--store", f"sqlite:///{db}").endswith(" (from --root-path)")
    monkeypatch.setenv("CMF_SERVE_PORT", "99999")  # the variable, when it is where it came from
    assert fails(capsys, "serve", "--store", f"sqlite:///{db}") == (
        f"Error: invalid cmf configuration: {bound} (from CMF_SERVE_PORT)")
    assert not db.exists()
    monkeypatch.delenv("CMF_SERVE_PORT")
    assert fails(capsys, "init", str(tmp_path / "proj"), "--site", "edge/1").endswith(
        "site id 'edge/1' must be 1-128 characters without spaces or slashes (from --site)")


def test_init_with_a_bad_site_makes_nothing(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`cmf init PATH --site 'a b'` failed, but left PATH/.cmf behind."""
    proj = tmp_path / "proj"
    assert "site id 'a b' must be" in fails(capsys, "init", str(proj), "--site", "a b")
    assert not proj.exists()


def test_export_to_dash_writes_stdout(store_url: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`cmf export -` wrote a file named "-" in the current folder; "-" is stdout, as the
    default and as Unix tools take it."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["export", "-", "--store", store_url])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert json.loads(lines[0])["kind"] == "cmf-bundle"
    assert json.loads(lines[-1])["kind"] == "cmf-bundle-end"
    assert not (tmp_path / "-").exists()


def test_export_since_a_seq_past_the_end_says_so(store_url: str, tmp_path: Path) -> None:
    out = tmp_path / "b.jsonl"
    whole = invoke("export", str(out), "--json", "--store", store_url)
    last = json.loads(whole)["end"]
    assert last > 0
    said = invoke("export", str(out), "--since-seq", str(last + 1000), "--force",
                  "--store", store_url)
    assert said.strip() == (f"Exported 0 records to {out}: nothing after seq {last + 1000} "
                            f"(this store's last seq is {last})")
    # an export of the later changes still reports its seq range
    said = invoke("export", str(out), "--since-seq", str(last - 2), "--force",
                  "--store", store_url)
    assert said.startswith(f"Exported 2 records (seq {last - 2}..{last})"), said


def test_export_refuses_to_overwrite_a_file_without_force(
        store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cmf export out.jsonl` replaced an existing out.jsonl without a word; now it refuses,
    naming the file, unless --force (as --mlmd already did)."""
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    assert fails(capsys, "export", str(out), "--store", store_url) == (
        f"Error: cannot export to {out}: it already exists; give another name, or --force "
        "to replace it")
    assert out.read_text() == "precious\n"
    invoke("export", str(out), "--force", "--store", store_url)
    assert json.loads(out.read_text().splitlines()[0])["kind"] == "cmf-bundle"
    assert fails(capsys, "export", "--force", "--store", store_url) == (
        "Error: --force only applies to an output file: give OUT (stdout carries the bundle "
        "itself)")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_names_with_brackets_are_shown_as_recorded(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorded names went through rich markup: "model[red].pkl" was listed as "model.pkl",
    "p[bold]x" as "px", and a stage named "fit[/]" crashed every listing with a MarkupError
    traceback. Tables and the lineage tree now show names as recorded."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    (tmp_path / "in[b].csv").write_text("x\n")
    (tmp_path / "model[red].pkl").write_text("m\n")
    with Cmf(pipeline_name="p[bold]x", store=url, site="hpc", measure_energy=False) as cmf, \
            cmf.create_execution("fit[/]", params={"a[b]": "[red]z"}) as ex:
        ex.log_dataset(str(tmp_path / "in[b].csv"), "input")
        ex.log_model(str(tmp_path / "model[red].pkl"), "output")
    for args, shown in ((["pipelines"], ["p[bold]x", "fit[/]"]), (["stages"], ["fit[/]"]),
                        (["artifacts"], ["model[red].pkl", "in[b].csv"]),
                        (["executions"], ["p[bold]x", "fit[/]", "a[b]=[red]z"]),
                        (["lineage", "model[red].pkl"],
                         ["model[red].pkl", "p[bold]x/fit[/]", "a[b]=[red]z", "in[b].csv"])):
        for columns in (80, 200):
            out = " ".join(invoke(*args, "--store", url, columns=columns).split())
            for name in shown:
                assert name in out, (args, columns, name, out)


def test_export_json_to_stdout_is_refused(store_url: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`cmf export --json` without OUT printed the bundle lines, not the JSON report a script
    asked for (json.loads failed on the second line); now it is an error saying to give OUT."""
    assert fails(capsys, "export", "--json", "--store", store_url) == (
        "Error: --json only applies to an output file: give OUT (stdout carries the bundle "
        "itself)")
    assert fails(capsys, "export", "-", "--json", "--store", store_url).startswith(
        "Error: --json only applies")


def test_a_failed_import_keeps_a_new_store_another_process_recorded_into(
        tmp_path: Path) -> None:
    """`cmf import` into a store it creates removes the store again when it fails; when a
    pipeline (another process) started recording into the same new store meanwhile, that
    removal deleted the pipeline's records. Now a store someone else wrote to is kept."""
    import subprocess

    from cmf_core.cli.common import new_store_undone_on_error
    from cmf_core.store import open_store

    db = tmp_path / "new" / "cmf.db"
    url = f"sqlite:///{db}"
    writer = ("import sys\nfrom cmf_core import Cmf\n"
              "with Cmf(pipeline_name='theirs', store=sys.argv[1], site='hpc', "
              "measure_energy=False) as cmf, cmf.create_execution('s'):\n    pass\n")
    with pytest.raises(CmfError, match="the bundle was bad"), new_store_undone_on_error(url):
        subprocess.run([sys.executable, "-c", writer, url], check=True)
        raise CmfError("the bundle was bad")
    with open_store(url, site="hpc", create=False) as s:
        assert [p.name for p in s.list_pipelines()] == ["theirs"]
        assert len(s.list_executions()) == 1


def test_listings_cut_at_the_limit_say_so(store_url: str) -> None:
    """`cmf executions` shows 50 rows by default, oldest first: with more in the store the
    newest never showed, and nothing said the list was cut. Now a line says how many there are
    and how to page; `cmf artifacts` says more match."""
    with Cmf(pipeline_name="churn", store=store_url, site="hpc", measure_energy=False) as cmf:
        for i in range(3):
            with cmf.create_execution("score", params={"i": i}):
                pass
    out = " ".join(invoke("executions", "--limit", "2", "--store", store_url,
                          columns=200).split())
    assert ("Showing 1-2 of 5 executions, oldest first: --offset 2 shows the next ones, "
            "--limit how many.") in out
    out = " ".join(invoke("executions", "--limit", "2", "--offset", "2", "--store", store_url,
                          columns=200).split())
    assert "Showing 3-4 of 5 executions" in out
    for args in (["--limit", "5"], ["--offset", "3"], ["--limit", "2", "--offset", "3"]):
        assert "Showing" not in invoke("executions", *args, "--store", store_url)
    assert len(invoke_json("executions", "--limit", "2", "--json",  # type: ignore[arg-type]
                           "--store", store_url)) == 2  # --json: the rows only
    out = " ".join(invoke("artifacts", "--limit", "1", "--store", store_url).split())
    assert ("Showing artifacts 1-1; more match: --offset 1 shows the next ones, --limit how "
            "many.") in out
    assert "more match" not in invoke("artifacts", "--store", store_url)
    assert len(invoke_json("artifacts", "--limit", "1", "--json",  # type: ignore[arg-type]
                           "--store", store_url)) == 1


def test_executions_of_an_unknown_stage_is_an_error(
        store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`cmf executions --stage trian` (a typo) printed an empty table; like an unknown
    --pipeline, it is an error naming the stages there are."""
    assert fails(capsys, "executions", "--stage", "trian", "--json", "--store", store_url) == (
        "Error: no stage named 'trian' in this store (known: prepare, train)")
    assert fails(capsys, "executions", "--pipeline", "churn", "--stage", "trian",
                 "--store", store_url) == (
        "Error: no stage named 'trian' in pipeline 'churn' (known: prepare, train)")
    assert invoke_json("executions", "--stage", "train", "--status", "failed", "--json",
                       "--store", store_url) == []


def test_stages_and_carbon_take_pipeline_as_an_option_too(
        store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`cmf stages` and `cmf carbon` took the pipeline only as an argument, every other
    command as --pipeline; both forms work now, the same."""
    with (Cmf(pipeline_name="other", store=store_url, site="hpc", measure_energy=False) as cmf,
          cmf.create_execution("fit")):
        pass
    for args in (["--pipeline", "churn"], ["churn"], ["churn", "--pipeline", "churn"]):
        rows = invoke_json("stages", *args, "--json", "--store", store_url)
        assert [(r["pipeline"], r["name"]) for r in rows] == [  # type: ignore[index,union-attr]
            ("churn", "prepare"), ("churn", "train")], args
        data = invoke_json("carbon", *args, "--json", "--store", store_url)
        assert data["filters"]["pipeline"] == "churn", args  # type: ignore[index,call-overload]
        assert [g["key"] for g in data["groups"]] == ["churn/prepare", "churn/train"], args  # type: ignore
    for command in ("stages", "carbon"):
        assert fails(capsys, command, "other", "--pipeline", "churn", "--store", store_url) == (
            "Error: two pipelines given, 'other' and --pipeline 'churn': give one, with "
            "--pipeline")


def test_artifacts_page_with_offset(store_url: str) -> None:
    """`cmf artifacts` had --limit but no --offset, so a script could not page past it."""
    every = [a["id"] for a in invoke_json(  # type: ignore[union-attr]
        "artifacts", "--json", "--store", store_url)]  # type: ignore[index]
    assert len(every) == 4
    pages = [[a["id"] for a in invoke_json(  # type: ignore[union-attr]
        "artifacts", "--limit", "2", "--offset", str(i), "--json",  # type: ignore[index]
        "--store", store_url)] for i in (0, 2, 4)]
    assert pages == [every[:2], every[2:], []]
    out = " ".join(invoke("artifacts", "--limit", "1", "--offset", "1", "--store",
                          store_url).split())
    assert ("Showing artifacts 2-2; more match: --offset 2 shows the next ones, --limit how "
            "many.") in out


def test_an_empty_store_says_so_and_which_store_it_is(tmp_path: Path) -> None:
    """Not an empty table frame: the usual reason is runs recorded into another store."""
    from cmf_core.store import open_store

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(url).close()
    out = invoke("pipelines", "--store", url, columns=200)
    assert out.startswith("Pipelines: none.\n") and f"Nothing is recorded in {url} yet" in out
    assert "┏" not in out
    assert invoke("executions", "--store", url, columns=200).startswith("Executions: none.\n")
    assert invoke("artifacts", "--store", url, columns=200) == "Artifacts: none.\n"


def _chain_store(tmp_path: Path, steps: int) -> str:
    """A store holding a0 -> step -> a1 -> ... -> a<steps> (a model retrained from the last)."""
    from cmf_core.identity import remote_digest
    from cmf_core.model import Artifact, Event, Execution, Pipeline, Stage
    from cmf_core.store import open_store

    url = f"sqlite:///{tmp_path / 'chain.db'}"
    arts = [Artifact(id=remote_digest(f"s3://b/a{i}", "1"), type="Model", name=f"a{i}",
                     uri=f"s3://b/a{i}", site="hpc") for i in range(steps + 1)]
    records: list[object] = [Pipeline("p", "hpc"), Stage("p", "retrain", "hpc"), *arts]
    for i in range(steps):
        ex = Execution(pipeline="p", stage="retrain", site="hpc").ended()
        records += [ex, Event(ex.id, arts[i].id, "INPUT"), Event(ex.id, arts[i + 1].id, "OUTPUT")]
    with open_store(url) as s:
        s.put(records)
    return url


def test_deep_lineage_is_printed_whole_in_80_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # every tree level indents four columns: past the width rich silently drops the rest, so
    # a 60-step chain used to end at about a50, with nothing saying more was left out
    url = _chain_store(tmp_path, 60)
    text = invoke("lineage", "a60", "--store", url, columns=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    shown = [w for line in lines for w in line.split() if w[:1] == "a" and w[1:].isdigit()]
    assert set(shown) == {f"a{i}" for i in range(61)}
    marks = [line.strip() for line in lines if "(continued in #" in line]
    assert marks and marks[0].endswith("(continued in #2)")
    assert any(line.startswith("#2 Model ") for line in lines)
    err = fails(capsys, "lineage", "a60", "--store", url, "--json")
    assert err.startswith("Error: the lineage of 'a60' is 60 steps deep, more than --json "
                          "nests (at most 49): add --depth 49")
    tree = json.loads(invoke("lineage", "a60", "--store", url, "--json", "--depth", "49"))
    assert tree["name"] == "a60"


def _task_value_store(tmp_path: Path) -> str:
    """a -> value (a task value, passed in memory) -> b -> x; value and x -> c -> m.pkl."""
    from cmf_core.model import ROLE_PROPERTY, TASK_VALUE

    url = f"sqlite:///{tmp_path / 'tv.db'}"
    role = {ROLE_PROPERTY: TASK_VALUE}
    with Cmf(pipeline_name="flow", store=url, site="edge", measure_energy=False) as cmf:
        with cmf.create_execution("a"):
            cmf.log_artifact("s3://flow/a/result", "output", version="1", name="a-result",
                             properties=role)
        with cmf.create_execution("b"):
            cmf.log_artifact("s3://flow/a/result", "input", version="1", name="a-result",
                             properties=role)
            (tmp_path / "x.csv").write_text("x\n")
            cmf.log_dataset(str(tmp_path / "x.csv"), "output")
        with cmf.create_execution("c"):
            cmf.log_artifact("s3://flow/a/result", "input", version="1", name="a-result",
                             properties=role)
            cmf.log_dataset(str(tmp_path / "x.csv"), "input")
            (tmp_path / "m.pkl").write_bytes(b"m")
            cmf.log_model(str(tmp_path / "m.pkl"), "output")
    return url


def test_lineage_folds_task_values_into_the_edge_they_make(tmp_path: Path) -> None:
    """A value one task hands the next in memory (a Prefect task result) took a line of its
    own between the two runs; now the producer is shown under the consumer, 'via task
    result', also where the value is read twice; --all and --json keep it."""
    url = _task_value_store(tmp_path)
    ids = {e["stage"]: e["id"] for e in json.loads(invoke("executions", "--store", url,
                                                               "--json"))}
    lines = [line.split(" @")[0] for line in
             invoke("lineage", "m.pkl", "--store", url, columns=200).splitlines()]
    assert "a-result" not in "\n".join(lines)
    assert lines[1] == f"└── flow/c {ids['c']}"
    via_a = f"via task result: flow/a {ids['a']}"
    assert sum(via_a in line for line in lines) == 2  # read by c and by b
    assert lines[-1] == ("1 task result (values passed between tasks in memory) folded into "
                         "'via task result'; --all shows them")
    full = invoke("lineage", "m.pkl", "--store", url, "--all", columns=200)
    assert full.count("a-result") == 2 and "via task result" not in full
    tree = json.loads(invoke("lineage", "m.pkl", "--store", url, "--json"))
    roles = {c["name"]: c.get("role") for c in tree["children"][0]["children"]}
    assert roles == {"a-result": "task_value", "x.csv": None}


def test_lineage_keeps_a_task_value_whose_producer_is_beyond_depth(tmp_path: Path) -> None:
    url = _task_value_store(tmp_path)
    text = invoke("lineage", "m.pkl", "--store", url, "--depth", "1", columns=200)
    assert "a-result" in text and "via task result" not in text
    assert "folded" not in text


def test_a_long_lineage_is_cut_to_what_a_terminal_shows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A model retrained from the last one 300 times: `cmf lineage` printed every step (on a
    year-sized store, 224,621 lines). Now, without --depth, it prints the steps nearest the
    model that fit in 200 entries and says what it left out and how to see it; --depth and
    --json are not cut."""
    from cmf_core.cli.lineage_cmds import TREE_ENTRIES
    from cmf_core.lineage import Query
    from cmf_core.store import open_store
    from cmf_core.store.sql import SqlStore

    assert TREE_ENTRIES == 200
    url = _chain_store(tmp_path, 300)

    def names(text: str) -> set[str]:
        return {w for line in text.splitlines() for w in line.split()
                if w[:1] == "a" and w[1:].isdigit()}

    text = invoke("lineage", "a300", "--store", url, columns=200)
    # a300 and 99 steps (an execution and its input each): 199 entries, one more step is 201
    assert names(text) == {f"a{i}" for i in range(201, 301)}
    assert text.count("Shown:") == 1 and " ".join(text.split()).endswith(
        "@hpc Shown: the 99 steps nearest to a300 (99 of the 300 executions upstream of it); the "
        "201 further back are left out, as the whole tree has more than the 200 entries shown "
        "without --depth. --depth N shows N steps (--depth 300 all of them); cmf export "
        "--artifact a300 FILE writes its whole provenance to FILE.")
    # in 80 columns the cut tree still goes on in numbered trees
    narrow = invoke("lineage", "a300", "--store", url, columns=80)
    assert names(narrow) == names(text) and "(continued in #2)" in narrow
    assert any(line.startswith("#2 Model ") for line in narrow.splitlines())
    # --depth is what the note says: all of it, or as many steps as asked, no note
    whole = invoke("lineage", "a300", "--store", url, "--depth", "300", columns=200)
    assert names(whole) == {f"a{i}" for i in range(301)} and "Shown:" not in whole
    some_steps = invoke("lineage", "a300", "--store", url, "--depth", "120", columns=200)
    assert names(some_steps) == {f"a{i}" for i in range(180, 301)}
    assert "Shown:" not in some_steps
    # --json is not cut: too deep to nest, as before
    assert fails(capsys, "lineage", "a300", "--store", url, "--json").startswith(
        "Error: the lineage of 'a300' is 300 steps deep, more than --json nests")
    # a tree that fits is whole, no note
    short_text = invoke("lineage", "a50", "--store", url, columns=200)
    assert names(short_text) == {f"a{i}" for i in range(51)} and "Shown:" not in short_text
    # the store is read a few steps deep at a time, never the whole history
    depths: list[int | None] = []
    upstream = SqlStore.upstream

    def spy(self: SqlStore, artifact_id: str, max_depth: int | None = None) -> object:
        depths.append(max_depth)
        return upstream(self, artifact_id, max_depth)

    monkeypatch.setattr(SqlStore, "upstream", spy)
    with open_store(url) as s:
        tree, steps = Query(s).lineage_tree_within("a300", 200)
    assert steps == 99 and None not in depths and max(d for d in depths if d) <= 128
    assert tree.record.name == "a300"


def test_show_summarises_stepped_metrics(tmp_path: Path) -> None:
    """A run with a 10,000-step loss curve: `cmf show` printed every step (50,000 lines). Now
    each stepped metric is one summary; --all-metrics and --json list every step."""
    from cmf_core.model import Metric
    from cmf_core.store import open_store

    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    with Cmf(pipeline_name="p", store=url, measure_energy=False) as cmf, \
            cmf.create_execution("train") as ex:
        cmf.log_execution_metrics("eval", {"auc": 0.9})
        ex_id = ex.execution.id
    with open_store(url) as s:
        s.put([Metric(ex_id, "loss", 5.0 - s_ / 1000, s_) for s_ in range(3, 3003)]
              + [Metric(ex_id, "lr", 0.1, 0), Metric(ex_id, "lr", 0.3, 1),
                 Metric(ex_id, "lr", 0.2, 2)])
    text = invoke("show", ex_id, "--store", url, columns=200)
    body, _, note = text.rpartition("}\n")
    assert note == ("Stepped metrics summarised per name (3,003 steps in all): --all-metrics "
                    "lists every step, --json too.\n")
    assert json.loads(body + "}")["metrics"] == [
        {"name": "auc", "value": 0.9, "step": None},
        {"name": "loss", "steps": 3000, "first_step": 3, "last_step": 3002,
         "last_value": 5.0 - 3002 / 1000, "min": 5.0 - 3002 / 1000, "max": 5.0 - 3 / 1000},
        {"name": "lr", "steps": 3, "first_step": 0, "last_step": 2, "last_value": 0.2,
         "min": 0.1, "max": 0.3}]
    assert len(text.splitlines()) < 100
    every = invoke("show", ex_id, "--store", url, "--all-metrics", columns=200)
    assert "summarised" not in every
    listed = json.loads(every)["metrics"]
    assert len(listed) == 3004 and {"name": "lr", "value": 0.3, "step": 1} in listed
    assert json.loads(invoke("show", ex_id, "--store", url, "--json"))["metrics"] == listed


def test_a_wide_lineage_of_one_step_is_not_cut(tmp_path: Path) -> None:
    """A training run that read 250 files: more than the 200 entries, but one step and
    nothing beyond it, so the tree is whole and no note says anything was left out."""
    from cmf_core.identity import remote_digest
    from cmf_core.model import Artifact, Event, Execution, Pipeline, Stage
    from cmf_core.store import open_store

    url = f"sqlite:///{tmp_path / 'wide.db'}"
    arts = [Artifact(id=remote_digest(f"s3://b/in{i}", "1"), type="Dataset", name=f"in{i}",
                     uri=f"s3://b/in{i}", site="hpc") for i in range(250)]
    model = Artifact(id=remote_digest("s3://b/m", "1"), type="Model", name="m", uri="s3://b/m",
                     site="hpc")
    ex = Execution(pipeline="p", stage="train", site="hpc").ended()
    with open_store(url) as s:
        s.put([Pipeline("p", "hpc"), Stage("p", "train", "hpc"), model, *arts, ex,
               Event(ex.id, model.id, "OUTPUT"), *(Event(ex.id, a.id, "INPUT") for a in arts)])
    text = invoke("lineage", "m", "--store", url, columns=200)
    assert len(text.splitlines()) == 252 and "Shown:" not in text


@pytest.mark.parametrize("argv", [["-h"], ["executions", "-h"], ["store", "check", "-h"]],
                         ids=["cmf", "command", "subcommand"])
def test_dash_h_is_help_as_in_most_command_line_tools(argv: list[str],
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """`cmf -h` was "No such option: -h" (exit 2); it prints the same help as --help."""
    from cmf_core.cli import main

    def run(args: list[str]) -> str:
        try:
            main(args)
        except SystemExit as e:
            assert not e.code, capsys.readouterr().err
        return capsys.readouterr().out

    short, long = run(argv), run([*argv[:-1], "--help"])
    assert "Usage:" in short and short == long


def test_invisible_and_direction_characters_are_written_out(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """A recorded name holding U+202E reversed the rest of its line in a terminal ("evil" +
    U+202E + "gnp.exe" read "evilexe.png"), one holding U+200B passed for another name: tables,
    narrow blocks and lineage trees write them out, as the web UI does; JSON keeps the data."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil\u202egnp.exe").write_bytes(b"x")
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    cmf = Cmf(pipeline_name="churn\u200b", store=url, site="hpc", measure_energy=False)
    with cmf, cmf.create_execution("train", params={"note": "a\u202eb"}):
        cmf.log_model("evil\u202egnp.exe", "output")
    out = invoke("executions", "--store", url, columns=240)
    assert "churn<U+200B>" in out and "note=a<U+202E>b" in out
    for columns in (240, 30):  # a table, and a block per row
        out = invoke("pipelines", "--store", url, columns=columns)
        assert "churn<U+200B>" in out and "\u200b" not in out
    tree = invoke("lineage", "evil\u202egnp.exe", "--store", url, columns=240)
    assert "evil<U+202E>gnp.exe" in tree and "churn<U+200B>/train" in tree
    assert "\u202e" not in tree
    data = json.loads(invoke("executions", "--store", url, "--json"))
    assert data[0]["pipeline"] == "churn\u200b"  # data as recorded


def test_error_messages_write_out_invisible_characters(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """An error naming recorded names (the known pipelines, the candidates of an ambiguous
    prefix) printed their U+202E and U+200B as they were: the rest of the error line read
    reversed in a terminal. It writes them out as the tables do."""
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    cmf = Cmf(pipeline_name="churn\u200b", store=url, site="hpc", measure_energy=False)
    with cmf:
        ids = []
        for _ in range(2):
            with cmf.create_execution("st\u202eage") as run:
                ids.append(run.id)
    err = fails(capsys, "carbon", "nope", "--store", url)
    assert "known: churn<U+200B>" in err and "\u200b" not in err
    prefix = ids[0][:4]  # UUIDv7s begin with their time: both ids start with it
    assert ids[1].startswith(prefix)
    err = fails(capsys, "show", prefix, "--store", url)
    assert "churn<U+200B>/st<U+202E>age" in err and "\u202e" not in err


def test_show_writes_invisible_characters_as_json_escapes(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """`cmf show`'s highlighted JSON printed a parameter holding U+202E as it was, reversing
    the rest of its line; it writes it as the JSON escape, the same data (--json keeps it)."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    cmf = Cmf(pipeline_name="churn", store=url, site="hpc", measure_energy=False)
    with cmf, cmf.create_execution("train", params={"note": "a\u202eb", "city": "K\u00f6ln"}
                                   ) as run:
        pass
    out = invoke("show", run.id, "--store", url, columns=200)
    assert "\u202e" not in out and '"note": "a\\u202eb"' in out
    assert '"city": "K\u00f6ln"' in out  # other text as it is
    assert json.loads(out)["params"] == {"note": "a\u202eb", "city": "K\u00f6ln"}
    data = json.loads(invoke("show", run.id, "--store", url, "--json"))
    assert data["params"]["note"] == "a\u202eb"


@pytest.mark.parametrize("argv", [["pipelines", "--json"], ["export"]])
def test_closed_stdout_is_one_error_line_not_a_traceback(
        argv: list[str], store_url: str, tmp_path: Path) -> None:
    """With standard output closed (`cmf pipelines --json >&-`, a daemon without one), the JSON
    and the bundle on stdout failed with an AttributeError traceback (sys.stdout is None); it
    is one line on stderr and exit code 1, as for any error. A real process: its fd 1 closed."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run([sys.executable, "-m", "cmf_core", *argv, "--store", store_url],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          cwd=tmp_path, env=env,
                          preexec_fn=lambda: os.close(1), timeout=120)
    assert done.returncode == 1
    assert done.stderr == ("Error: standard output is closed: nothing to write to (redirect "
                           "it to a file or pipe)\n")


def test_json_listings_say_on_stderr_when_cut_or_filtered_by_an_unknown_name(
        store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`cmf executions --json` printed the first 50 rows and nothing else: a script took them for
    all of them, and a mistyped --pipeline gave [] without a word. The table's notes (more rows,
    no such pipeline) go to stderr under --json; stdout is the JSON alone."""
    def run(*argv: str) -> tuple[object, str]:
        main([*argv, "--store", store_url, "--json"])
        out = capsys.readouterr()
        return json.loads(out.out), out.err

    rows, err = run("executions", "--limit", "1")
    assert len(rows) == 1
    assert err == ("Showing 1-1 of 2 executions, oldest first: --offset 1 shows the next ones, "
                   "--limit how many.\n")
    rows, err = run("artifacts", "--limit", "1")
    assert len(rows) == 1 and err == ("Showing artifacts 1-1; more match: --offset 1 shows the "
                                      "next ones, --limit how many.\n")
    rows, err = run("executions")  # all of them: nothing to say
    assert len(rows) == 2 and err == ""


def test_registering_the_commands_in_another_app_leaves_cmfs_help_as_it_was() -> None:
    """Tests register commands into apps of their own (sync_cmds.register, as cmf does): the
    `artifact` and `store` groups were module-wide, so each registration added another
    `fetch` / `check` ... to the `cmf` app's groups too, and the last one, not made a
    CmfCommand, printed `--force <bool>` in the help (docs/cli.md then differed in CI)."""
    import typer

    from cmf_core.cli import check_cmds, sync_cmds

    cases = (["artifact", "fetch", "--help"], ["store", "backup", "--help"])
    before = [invoke(*args) for args in cases]
    other = typer.Typer()
    sync_cmds.register(other)
    check_cmds.register(other)
    after = [invoke(*args) for args in cases]
    assert after == before
    assert all("<bool>" not in text for text in after)

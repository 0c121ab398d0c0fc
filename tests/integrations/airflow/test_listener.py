"""A DAG that knows nothing of CMF, run with dag.test(), is recorded in full by the listener."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cmf_core.identity import file_digest, remote_digest
from cmf_core.model import EventType, ExecutionStatus
from cmf_core.openlineage.ingest import unversioned_digest
from cmf_core.process import this_process
from tests.integrations.airflow.helpers import artifacts_of, by_stage, flush
from tests.integrations.airflow.sources import (
    ALIAS_INLETS,
    CHURN,
    CONSTRUCTS,
    FLAKY,
    RETRIED,
    SETUP_TEARDOWN,
    SKIPPING,
    TEARDOWN_FAILS,
)


def test_untouched_dag_gets_full_lineage(run_dag, cmf_store, tmp_path: Path) -> None:
    from airflow.providers.openlineage.utils.utils import (
        build_dag_run_ol_run_id,
        build_task_instance_ol_run_id,
    )

    data = tmp_path / "data"
    data.mkdir()
    (data / "raw.csv").write_text("x,y\n" + "\n".join(f"{i},{i % 2}" for i in range(40)))
    dr = run_dag(CHURN, "churn_lineage", data=data)
    assert dr.state == "success"

    store = cmf_store()
    runs = by_stage(store, "churn_lineage")
    assert set(runs) == {"prepare", "train", "evaluate", "churn_lineage"}
    dag_run = runs.pop("churn_lineage")  # the DAG run itself, as the provider records it
    assert dag_run.status is ExecutionStatus.COMPLETED
    assert dag_run.id == build_dag_run_ol_run_id("churn_lineage", dr.logical_date, 0)
    assert "cmf.process" not in dag_run.properties  # a DAG run is no one process's
    for stage, ex in runs.items():
        assert ex.status is ExecutionStatus.COMPLETED, (stage, ex.error)
        # the same deterministic run id as Airflow's OpenLineage provider
        assert ex.id == build_task_instance_ol_run_id(
            dag_id="churn_lineage", task_id=stage, try_number=1,
            logical_date=dr.logical_date, map_index=-1)
        assert ex.started_at <= ex.ended_at
        assert ex.properties["airflow"]["dag_id"] == "churn_lineage"
        assert ex.properties["airflow"]["try_number"] == 1
        # the try's own process (dag.test runs tries in this one), for `cmf reap`
        assert ex.properties["cmf.process"] == this_process().to_dict()
        # no [api] base_url: no link to Airflow's UI (never a guessed localhost one)
        assert "cmf.run_url" not in ex.properties
        parent = ex.properties["openlineage.run_facets"]["parent"]
        assert parent["run"]["runId"] == dag_run.id and parent["job"]["name"] == "churn_lineage"

    # parameters: DAG params, and op_kwargs / call arguments by name, rendered
    assert runs["prepare"].params == {"seed": 42, "test_size": 0.2}
    assert runs["train"].params == {"seed": 42, "C": 0.5, "info": {"rows": 32}}

    # datasets: local files digested, any other scheme by URI; types from the asset extra
    (raw,) = artifacts_of(store, runs["prepare"].id, EventType.INPUT)
    (train_out,) = artifacts_of(store, runs["prepare"].id, EventType.OUTPUT)
    assert raw.id == file_digest(data / "raw.csv") and raw.uri == str(data / "raw.csv")
    assert train_out.id == file_digest(data / "train.csv")
    (train_in,) = artifacts_of(store, runs["train"].id, EventType.INPUT)
    assert train_in.id == train_out.id  # lineage joins on content
    (model,) = artifacts_of(store, runs["train"].id, EventType.OUTPUT)
    assert model.type == "Model" and model.id == file_digest(data / "model.json")
    (report,) = artifacts_of(store, runs["evaluate"].id, EventType.OUTPUT)
    assert report.uri == "s3://reports/churn/eval.json"
    assert report.id == unversioned_digest("s3://reports/churn/eval.json")

    # the XCom return value, summarised
    assert runs["evaluate"].properties["airflow.xcom_return"] == {
        "type": "builtins.float", "value": 0.91}
    assert runs["prepare"].properties["airflow.xcom_return"]["value"] == {"rows": 32}

    # energy, measured in the task's own process
    energy = {r.execution_id: r for r in store.energy([e.id for e in runs.values()])}
    assert set(energy) == {e.id for e in runs.values()}
    for record in energy.values():
        assert record.energy_kwh >= 0 and record.co2e_kg >= 0
        assert record.details["pid"] == os.getpid()
        assert record.details["components"]["cpu"]["method"] in ("rapl", "model")


def states(dr: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def test_failed_task_is_recorded_and_dag_result_unchanged(run_dag, cmf_store, monkeypatch
                                                          ) -> None:
    monkeypatch.setenv("AIRFLOW__CMF__DISABLED", "True")
    without = run_dag(FLAKY, "flaky_untracked")
    monkeypatch.setenv("AIRFLOW__CMF__DISABLED", "False")
    tracked = run_dag(FLAKY, "flaky_tracked")
    assert tracked.state == without.state == "failed"
    assert states(tracked) == states(without) == {
        "ok": "success", "boom": "failed", "after": "upstream_failed"}

    store = cmf_store()
    assert by_stage(store, "flaky_untracked") == {}
    runs = by_stage(store, "flaky_tracked")
    assert set(runs) == {"ok", "boom", "flaky_tracked"}  # "after" never ran
    assert runs["flaky_tracked"].status is ExecutionStatus.FAILED
    # the DAG run's error names the task that failed (Airflow's reason alone says which did
    # not); "after", upstream_failed, never ran
    assert runs["flaky_tracked"].error == "task_failure: boom failed"
    assert runs["ok"].status is ExecutionStatus.COMPLETED
    boom = runs["boom"]
    assert boom.status is ExecutionStatus.FAILED
    assert boom.error == "ValueError: bad input: 1"
    assert boom.params == {"x": 1}
    assert store.energy([boom.id])  # a failed try is measured too
    # a failed try wrote no outlet (Airflow emits no asset event for it): no output lineage
    assert artifacts_of(store, boom.id, EventType.OUTPUT) == []


def test_skipped_task_is_recorded_as_skipped(run_dag, cmf_store) -> None:
    dr = run_dag(SKIPPING, "skipping")
    assert states(dr) == {"nothing_to_do": "skipped"}
    store = cmf_store()
    runs = by_stage(store, "skipping")
    assert runs["nothing_to_do"].status is ExecutionStatus.SKIPPED
    assert artifacts_of(store, runs["nothing_to_do"].id, EventType.OUTPUT) == []
    assert runs["skipping"].status is ExecutionStatus.COMPLETED


@pytest.fixture
def hung_server() -> Any:
    """A TCP port that accepts connections and never answers (a hung database server)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


def test_a_hung_store_neither_fails_nor_stalls_the_task(run_dag, cmf_store, monkeypatch,
                                                        hung_server: int) -> None:

    from airflow.sdk.listener import get_listener_manager

    from cmf_core.guard import FAILURES

    monkeypatch.setenv("AIRFLOW__CMF__STORE_URL",
                       f"postgresql://cmf@127.0.0.1:{hung_server}/cmf?connect_timeout=30")
    monkeypatch.setenv("AIRFLOW__CMF__HOOK_TIMEOUT_S", "0.5")
    before = sum(FAILURES.values())
    dr = run_dag(FLAKY.replace("raise ValueError(f\"bad input: {x}\")", "return x"), "hung_store")
    flush()
    assert dr.state == "success"
    assert sum(FAILURES.values()) > before
    spool = Path(os.environ["CMF_HOME"]) / "spool"
    # the hook gave up after 0.5 s (not the 30 s connect timeout) and noted the overrun, so
    # the next events were spooled without waiting
    assert list(spool.glob(".backoff.*"))
    spooled = sorted(spool.glob("*.json"))
    # 3 tasks x (START + COMPLETE) + the DAG run's COMPLETE (dag.test() only reports its end)
    assert len(spooled) == 7

    # nothing is lost: once the store is back, the spool is replayed into it
    monkeypatch.delenv("AIRFLOW__CMF__STORE_URL")
    from cmf_airflow import conf

    from cmf_core.openlineage.emit import get_emitter

    # the hung server stands in for a store that is down: once one is there (here another URL,
    # so the events spooled for the first are replayed into it by name), nothing is lost
    get_emitter(conf.settings()).retry_spool(
        from_target=f"postgresql://cmf@127.0.0.1:{hung_server}/cmf?connect_timeout=30")
    assert not list(spool.glob("*.json"))
    runs = by_stage(cmf_store(), "hung_store")
    assert {s: e.status.value for s, e in runs.items()} == {
        "ok": "completed", "boom": "completed", "after": "completed", "hung_store": "completed"}
    assert get_listener_manager().has_listeners


def test_each_try_and_each_mapped_instance_is_an_execution(run_dag, cmf_store, monkeypatch,
                                                           tmp_path: Path) -> None:
    from urllib.parse import quote

    from airflow.providers.openlineage.utils.utils import build_task_instance_ol_run_id

    from cmf_core.store.base import ExecutionFilter

    # Airflow's UI behind a path prefix: each try links to its task instance page there
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.org/prod/")
    dr = run_dag(RETRIED, "retried", data=tmp_path)
    assert dr.state == "success"
    store = cmf_store()
    tries = {e.properties["airflow"]["try_number"]: e for e in store.list_executions(
        ExecutionFilter(pipeline="retried", stage="flaky_io"))}
    assert set(tries) == {1, 2}
    assert tries[1].status is ExecutionStatus.FAILED
    assert tries[1].error == "ConnectionError: storage not ready"
    assert tries[2].status is ExecutionStatus.COMPLETED
    for n, ex in tries.items():
        assert ex.id == build_task_instance_ol_run_id("retried", "flaky_io", n,
                                                      dr.logical_date, -1)
    shards = {e.properties["airflow"]["map_index"]: e for e in store.list_executions(
        ExecutionFilter(pipeline="retried", stage="shard"))}
    assert set(shards) == {0, 1, 2}
    assert {i: e.params["n"] for i, e in shards.items()} == {0: 1, 1: 2, 2: 3}
    assert {i: e.properties["airflow.xcom_return"]["value"] for i, e in shards.items()} == {
        0: 1, 1: 4, 2: 9}
    # the link back to each try in Airflow's UI (Airflow 3's task instance route)
    runs = f"https://airflow.example.org/prod/dags/retried/runs/{quote(dr.run_id, safe='')}"
    assert "+" not in runs and ":" not in runs.removeprefix("https:")
    assert {n: e.properties["cmf.run_url"] for n, e in tries.items()} == {
        n: f"{runs}/tasks/flaky_io?try_number={n}" for n in (1, 2)}
    assert {i: e.properties["cmf.run_url"] for i, e in shards.items()} == {
        i: f"{runs}/tasks/shard/mapped/{i}?try_number=1" for i in (0, 1, 2)}


def test_the_dag_run_hook_never_waits_for_the_store(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler's DAG-run hook with events waiting in the spool and the store locked (a
    long transaction of another process, held here with sqlite3): it returns at once."""
    import datetime as dt
    import sqlite3
    import types

    from cmf_airflow.adapter import CmfAdapter
    from cmf_airflow.dagrun import build_dag_run_event

    from cmf_core import jsonutil
    from cmf_core.config import load_settings
    from cmf_core.openlineage.convert import event_to_dict
    from cmf_core.store import open_store

    # a hook that waited would wait this long for the lock below and have spooled by its return
    monkeypatch.setenv("CMF_HOOK_TIMEOUT_S", "30")
    settings = load_settings()
    db = Path(os.environ["CMF_HOME"]) / "cmf.db"
    now = dt.datetime.now(dt.UTC)
    runs = [types.SimpleNamespace(dag_id=f"d_sched{i}", run_id="manual__1", run_type="manual",
                                  clear_number=0, logical_date=now, start_date=now,
                                  end_date=None, conf={}) for i in range(2)]
    spool = Path(settings.spool_path)
    spool.mkdir(parents=True, exist_ok=True)
    old = build_dag_run_event(runs[0], "running", None, settings.site, "default")
    (spool / "1-old.json").write_text(jsonutil.dumps(event_to_dict(old)))
    adapter = CmfAdapter()
    # held before the store exists: opening it, which creates its tables, waits for the lock
    # (an up-to-date store records to its journal without the lock, so it would not wait)
    db.parent.mkdir(parents=True, exist_ok=True)
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("PRAGMA journal_mode=WAL")
    lock.execute("BEGIN IMMEDIATE")
    try:
        adapter.dag_run(runs[1], "running")
        # returned with its event (and the spool's replay) still queued behind the lock: it
        # did not wait for the store (it used to wait out the replay's hook timeout)
        pending = not adapter.flush(0)
        spooled = sorted(p.name for p in spool.glob("*.json"))
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert pending and spooled == ["1-old.json"]
    assert adapter.flush(60)
    from cmf_core.openlineage.emit import get_emitter

    get_emitter(settings).retry_spool()
    store = open_store(f"sqlite:///{db}")
    assert {e.pipeline for e in store.list_executions()} == {"d_sched0", "d_sched1"}
    store.close()


def test_a_failed_dag_runs_error_names_a_bounded_list_of_failed_tasks() -> None:
    from cmf_airflow.dagrun import MAX_NAMED, failure_message

    assert failure_message("task_failure", []) == "task_failure"  # none failed: the reason
    assert failure_message("timed_out", ["train"]) == "timed_out: train failed"
    assert failure_message("Dag Run's state was manually set to `failed`.", ["a", "b[3]"]) == \
        "Dag Run's state was manually set to `failed`: a, b[3] failed"
    many = [f"shard[{i}]" for i in range(MAX_NAMED + 5)]
    message = failure_message("task_failure", many)
    assert message.endswith("shard[9] and 5 more failed") and "shard[10]" not in message


def test_a_short_lived_process_records_its_dag_run_before_exiting(tmp_path: Path) -> None:
    """The DAG-run hook hands the event to a daemon thread; a process that ends right after
    (``airflow dags test``, a script) must record it before the thread dies with it."""
    import subprocess
    import sys
    import textwrap

    from cmf_core.store import open_store

    script = textwrap.dedent("""
        import datetime as dt, types
        from cmf_airflow.adapter import CmfAdapter
        now = dt.datetime.now(dt.UTC)
        run = types.SimpleNamespace(dag_id="d_short", run_id="manual__1", run_type="manual",
                                    clear_number=0, logical_date=now, start_date=now,
                                    end_date=None, conf={})
        CmfAdapter().dag_run(run, "running")
    """)
    env = dict(os.environ)
    env["CMF_HOME"] = str(tmp_path / "home")
    env.pop("CMF_STORE_URL", None)
    env.pop("AIRFLOW__CMF__STORE_URL", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with open_store(f"sqlite:///{tmp_path / 'home' / 'cmf.db'}", site="check") as store:
        assert [e.pipeline for e in store.list_executions()] == ["d_short"]


UNPRINTABLE = '''
from airflow.sdk import dag, task


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no text for this error")


@dag(dag_id="{dag_id}", schedule=None)
def unprintable():
    @task(retries=0)
    def boom() -> None:
        raise Unprintable()

    boom()


unprintable()
'''


def test_an_error_that_cannot_be_printed_is_still_recorded(run_dag, cmf_store) -> None:
    """The failed try's end is recorded even when str() of its error raises."""
    dr = run_dag(UNPRINTABLE, "unprintable")
    assert dr.state == "failed"
    boom = by_stage(cmf_store(), "unprintable")["boom"]
    assert boom.status is ExecutionStatus.FAILED
    assert boom.error is not None and boom.error.startswith("Unprintable")


ARRAY_FIELD = '''
import numpy as np
from airflow.sdk import BaseOperator, dag


class Scale(BaseOperator):
    template_fields = ("factors", "tag")

    def __init__(self, factors, tag, **kwargs):
        super().__init__(**kwargs)
        self.factors, self.tag = factors, tag

    def execute(self, context):
        return float(self.factors.sum())


@dag(dag_id="{dag_id}", schedule=None)
def array_field():
    Scale(task_id="scale", factors=np.array([[1.0, 2.0], [3.0, 4.0]]), tag="x2")


array_field()
'''


def test_a_template_field_that_is_an_array_is_recorded(run_dag, cmf_store) -> None:
    """Reading the task's parameters compared each template field with "", {} and [], which
    raises for an array: the try was not recorded at all."""
    dr = run_dag(ARRAY_FIELD, "array_field")
    assert dr.state == "success"
    scale = by_stage(cmf_store(), "array_field")["scale"]
    assert scale.status is ExecutionStatus.COMPLETED
    assert scale.params["tag"] == "x2" and "factors" in scale.params


def test_the_constructs_of_real_dags_are_recorded(run_dag, cmf_store) -> None:
    """@task.bash, task groups (mapped too), partial/expand (and its results reduced),
    expand_kwargs, branching,
    short-circuiting, trigger rules: one execution per try that ran, stage = task id with its
    group."""
    from cmf_core.store.base import ExecutionFilter

    dr = run_dag(CONSTRUCTS, "constructs")
    assert dr.state == "failed"  # publish
    assert states(dr)["announce"] == "upstream_failed"
    store = cmf_store()
    runs = store.list_executions(ExecutionFilter(pipeline="constructs"))
    mapped: dict[str, dict[int, Any]] = {}
    for ex in runs:
        mapped.setdefault(ex.stage, {})[ex.properties["airflow"].get("map_index", -1)] = ex
    # the branch not taken, the short-circuited task, the upstream-failed one never ran
    assert set(mapped) == {"constructs", "greet", "shards.double", "add", "total", "label",
                           "report.choose", "report.left", "gate", "publish", "alert",
                           "cleanup", "register", "deploy", "check"}
    assert {(ex.stage, ex.properties["airflow"].get("map_index", -1)) for ex in runs
            if ex.status is not ExecutionStatus.COMPLETED} == {
        ("constructs", -1), ("publish", -1), ("check", 1)}
    # the DAG run's error names its failed task instances, a mapped one by its map index
    assert mapped["constructs"][-1].error == "task_failure: check[1], publish failed"
    # the command @task.bash builds during execute, rendered, not Airflow's "set later" tag
    (greet,) = mapped["greet"].values()
    assert greet.params["bash_command"] == "echo hello-world"
    assert greet.properties["airflow.xcom_return"]["value"] == "hello-world"
    assert {i: e.params["v"] for i, e in mapped["shards.double"].items()} == {0: 5, 1: 6}
    assert {i: (e.params["x"], e.params["y"]) for i, e in mapped["add"].items()} == {
        0: (1, 10), 1: (2, 10)}
    # the mapped results a task reduces, as it got them (not Airflow's lazy sequence's tag)
    assert mapped["total"][-1].params == {"name": "world", "sums": [11, 12]}
    assert mapped["total"][-1].properties["airflow.xcom_return"]["value"] == 23
    assert {i: e.properties["airflow.xcom_return"]["value"]
            for i, e in mapped["label"].items()} == {0: "1p", 1: "2q"}
    # the name map_index_template gives each instance (Airflow's UI shows it)
    assert {i: e.properties["airflow"]["rendered_map_index"]
            for i, e in mapped["label"].items()} == {0: "p", 1: "q"}
    # one_failed and all_done ran after the failure; the failed try wrote no outlet (Airflow
    # emits no asset event for it): no output lineage
    assert mapped["alert"][-1].properties["airflow.xcom_return"]["value"] == "alerted"
    assert mapped["cleanup"][-1].properties["airflow.xcom_return"]["value"] == "cleaned"
    (publish,) = mapped["publish"].values()
    assert publish.error == "RuntimeError: registry down"
    assert artifacts_of(store, publish.id, EventType.OUTPUT) == []
    # remote outputs versioned by the extra the task gave their asset events
    (register,) = mapped["register"].values()
    outputs = {a.uri: a for a in artifacts_of(store, register.id, EventType.OUTPUT)}
    assert {uri: (a.id, a.type) for uri, a in outputs.items()} == {
        "s3://registry/churn/model.pkl": (
            remote_digest("s3://registry/churn/model.pkl", "e7"), "Model"),
        "s3://registry/churn/card.json": (
            remote_digest("s3://registry/churn/card.json", "2"), "Dataset")}
    # a try reading them reads the versions their latest asset events gave: the same artifacts
    (deploy,) = mapped["deploy"].values()
    inputs = {a.uri: a for a in artifacts_of(store, deploy.id, EventType.INPUT)}
    assert {uri: a.id for uri, a in inputs.items()} == {
        uri: a.id for uri, a in outputs.items()}


def test_setup_and_teardown_tasks_are_recorded_with_their_role(run_dag, cmf_store) -> None:
    """@setup/@teardown and .as_setup()/.as_teardown(): each try recorded with its status and
    its role; a teardown runs (and is recorded) after its work failed; a teardown's failure
    leaves the DAG run successful, as Airflow does by default."""
    dr = run_dag(SETUP_TEARDOWN, "roles")
    assert dr.state == "failed"  # train
    ran = by_stage(cmf_store(), "roles")
    assert {stage: (ex.status.value, ex.properties["airflow"].get("role"),
                    ex.properties["airflow"].get("on_failure_fail_dagrun"))
            for stage, ex in ran.items()} == {
        "roles": ("failed", None, None),
        "make_cluster": ("completed", "setup", None),
        "train": ("failed", None, None),
        "drop_cluster": ("completed", "teardown", False),  # ran after train failed
        "open_db": ("completed", "setup", None),
        "close_db": ("completed", "teardown", True),
    }
    assert ran["roles"].error == "task_failure: train failed"

    dr = run_dag(TEARDOWN_FAILS, "teardown_fails")
    assert dr.state == "success"  # Airflow ignores the teardown's failure
    ran = by_stage(cmf_store(), "teardown_fails")
    assert ran["teardown_fails"].status is ExecutionStatus.COMPLETED
    drop = ran["drop_cluster"]
    assert (drop.status, drop.error) == (ExecutionStatus.FAILED, "RuntimeError: cluster busy")
    assert drop.properties["airflow"]["role"] == "teardown"
    assert drop.properties["airflow"]["on_failure_fail_dagrun"] is False
    assert "role" not in ran["train"].properties["airflow"]


def test_an_asset_alias_inlet_is_the_assets_its_latest_run_attached(run_dag, cmf_store
                                                                       ) -> None:
    """A task whose inlet is an AssetAlias reads the assets the alias's latest writers (every
    mapped instance of the latest DAG run) attached to it, each the artifact its writer
    recorded (versioned by its event's extra, or by URI); an earlier run's assets are not
    inputs of a later reader."""
    from cmf_core.store.base import ExecutionFilter

    seen: list[set[str]] = []
    for _ in range(2):
        dr = run_dag(ALIAS_INLETS, "alias_inlets")
        assert dr.state == "success"
        store = cmf_store()
        run = str(dr.run_id)
        ran = [ex for ex in store.list_executions(ExecutionFilter(pipeline="alias_inlets"))
               if ex.properties["airflow"]["run_id"] == run]
        written = {a.uri: a.id for ex in ran if ex.stage == "write"
                   for a in artifacts_of(store, ex.id, EventType.OUTPUT)}
        (read,) = [ex for ex in ran if ex.stage == "read"]
        inputs = {a.uri: a.id for a in artifacts_of(store, read.id, EventType.INPUT)}
        assert len(written) == 2 and inputs == written
        part0 = next(uri for uri in written if uri.endswith("part0.csv"))
        assert written[part0] == remote_digest(part0, "e0")
        seen.append(set(inputs))
    assert not seen[0] & seen[1]  # each run's reader read that run's parts only

"""The routes the web UI reads beyond the resource routers (cmf_core/server/routers/ui_support.py),
over HTTP against the same real server and store as the browser tests."""

from __future__ import annotations

import re

import httpx

from cmf_core.recommend import from_store, recommend, shipped
from cmf_core.store import ExecutionFilter
from tests.ui.conftest import UiServer
from tests.ui.scenario import Scenario

SVG_NS = "http://www.w3.org/2000/svg"  # a namespace name, never fetched


def get(server: UiServer, path: str, **params: object) -> httpx.Response:
    return httpx.get(server.url + path, params=params, timeout=30)  # type: ignore[arg-type]


def test_graph_is_the_pipelines_executions_events_artifacts_and_energy(
        ui_server: UiServer) -> None:
    store = ui_server.store
    body = get(ui_server, "/api/v1/graph", pipeline="churn").json()
    execs = store.list_executions(ExecutionFilter(pipeline="churn"))
    events = store.events(execution_ids=[e.id for e in execs])
    assert [e["id"] for e in body["executions"]] == [e.id for e in execs]
    assert sorted((e["execution_id"], e["artifact_id"], e["type"]) for e in body["edges"]) == \
        sorted((e.execution_id, e.artifact_id, e.type.value) for e in events)
    assert {a["id"] for a in body["artifacts"]} == {e.artifact_id for e in events}
    energy = {r.execution_id: r for r in store.energy([e.id for e in execs])}
    for e in body["executions"]:
        assert (e["energy_kwh"], e["co2e_kg"]) == (energy[e["id"]].energy_kwh,
                                                   energy[e["id"]].co2e_kg)
    assert body["sites"] == ["hpc", "lab"]
    assert (body["total_executions"], body["truncated"], body["upstream"]) == (4, False, False)


def test_graph_limit_keeps_the_latest_executions(ui_server: UiServer) -> None:
    body = get(ui_server, "/api/v1/graph", pipeline="churn", limit=2).json()
    latest = ui_server.store.list_executions(ExecutionFilter(pipeline="churn"))[-2:]
    assert [e["id"] for e in body["executions"]] == [e.id for e in latest]
    assert (body["total_executions"], body["truncated"]) == (4, True)


def test_graph_upstream_adds_the_chain_from_other_pipelines(
        ui_server: UiServer, scenario: Scenario) -> None:
    plain = get(ui_server, "/api/v1/graph", pipeline="churn-hpo").json()
    body = get(ui_server, "/api/v1/graph", pipeline="churn-hpo", upstream="true").json()
    added = {e["id"] for e in body["executions"]} - {e["id"] for e in plain["executions"]}
    # train.csv came from lab's prepare, which read the telco CSV
    assert added == {scenario.executions["prepare"]}
    prepare_edges = {(e["artifact_id"], e["type"]) for e in body["edges"]
                     if e["execution_id"] == scenario.executions["prepare"]}
    assert prepare_edges == {(scenario.digests["Telco-Customer-Churn.csv"], "INPUT"),
                             (scenario.digests["train.csv"], "OUTPUT")}  # not test.csv
    assert body["sites"] == ["hpc", "lab"] and plain["sites"] == ["hpc", "lab"]


def test_graph_of_an_unknown_pipeline_is_404(ui_server: UiServer) -> None:
    r = get(ui_server, "/api/v1/graph", pipeline="nope")
    assert r.status_code == 404
    assert "no pipeline named 'nope'" in r.json()["message"]


def test_recommend_tasks_lists_the_store_tasks_first(
        ui_server: UiServer, scenario: Scenario) -> None:
    body = get(ui_server, "/api/v1/recommend/tasks").json()
    local = from_store(ui_server.store)
    assert body["knowledge_tasks"] == len(local.merge(shipped()))
    ours = body["items"][:len(scenario.task_ids)]
    assert {t["id"]: t["name"] for t in ours} == {v: k for k, v in scenario.task_ids.items()}
    assert {t["source"] for t in ours} == {"store"}
    assert {t["id"]: t["runs"] for t in ours} == {t: len(r) for t, r in local.runs.items()}
    only = get(ui_server, "/api/v1/recommend/tasks", category="regression").json()
    assert all(t["category"] == "regression" for t in only["items"])
    assert get(ui_server, "/api/v1/recommend/tasks", category="poetry").status_code == 400


def test_recommend_for_a_task_is_the_librarys_answer(
        ui_server: UiServer, scenario: Scenario) -> None:
    task = scenario.task_ids["telco-churn-hpc"]
    kb = from_store(ui_server.store).merge(shipped())
    for leave_out in (False, True):
        body = get(ui_server, "/api/v1/recommend", task=task, k=4,
                   leave_out=str(leave_out).lower()).json()
        expected = recommend(kb.tasks[task], k=4,
                             knowledge=kb.without(task_ids=[task]) if leave_out else kb)
        want = expected.to_dict()
        assert {k: body[k] for k in ("seeds", "neighbours", "message", "strategy")} == \
            {k: want[k] for k in ("seeds", "neighbours", "message", "strategy")}
        assert body["leave_out"] is leave_out
        own = [n["task_id"] for n in body["neighbours"]]
        assert (task in own) is not leave_out


def test_recommend_needs_a_known_task_or_a_category(ui_server: UiServer) -> None:
    r = get(ui_server, "/api/v1/recommend")
    assert r.status_code == 400 and "task=<id>" in r.json()["message"]
    r = get(ui_server, "/api/v1/recommend", task="task-unknown")
    assert r.status_code == 404 and "task-unknown" in r.json()["message"]
    body = get(ui_server, "/api/v1/recommend", category="classification", k=2).json()
    assert body["strategy"] in ("portfolio", "none") and len(body["seeds"]) <= 2


def test_the_page_and_its_modules_are_served(ui_server: UiServer) -> None:
    page = get(ui_server, "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in page.text
    for name in ("app.js", "graph.js", "charts.js", "dom.js", "app.css"):
        r = get(ui_server, f"/{name}")
        assert r.status_code == 200, name
        urls = set(re.findall(r"https?://[^\s\"'`)]+", r.text)) - {SVG_NS}
        assert not urls, f"{name} names other hosts: {urls}"  # the page works offline

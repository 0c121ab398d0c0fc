"""The CMF REST API: pipelines, executions, artifacts (and their lineage) and metrics, paged."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from cmf_core.openlineage.convert import to_event_dicts
from cmf_core.store import Store
from tests.core.openlineage.conftest import airflow_events, build_lineage
from tests.core.server.conftest import LiveServer, SharedServer, shared_server


def record_runs(live: LiveServer) -> None:
    """Three CMF training runs and two Airflow task runs."""
    with live.client() as c:
        events = [e for tag in ("a", "b", "c") for e in to_event_dicts(build_lineage(tag=tag))]
        events += airflow_events() + airflow_events()
        assert c.post("/api/v1/lineage/batch", json=events).status_code == 201


@pytest.fixture(scope="module")
def shared(new_store: Callable[[], Store],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedServer]:
    with shared_server(new_store, tmp_path_factory, record_runs) as shared:
        yield shared


@pytest.fixture
def loaded(shared: SharedServer) -> LiveServer:
    """A server holding ``record_runs``'s runs, shared by the tests that only read."""
    return shared.get()


@pytest.fixture
def api(loaded: LiveServer) -> Iterator[httpx.Client]:
    with loaded.client() as c:
        yield c


def test_pipelines_and_stages(api: httpx.Client) -> None:
    page = api.get("/api/v1/pipelines", params={"limit": 1}).json()
    assert page["total"] == 2 and page["next_offset"] == 1
    assert [p["name"] for p in page["items"]] == ["churn.v2"]
    rest = api.get("/api/v1/pipelines", params={"limit": 1, "offset": 1}).json()
    assert [p["name"] for p in rest["items"]] == ["etl"] and rest["next_offset"] is None
    churn = api.get("/api/v1/pipelines/churn.v2").json()
    assert [s["name"] for s in churn["stages"]] == ["train"] and churn["executions"] == 3
    stages = api.get("/api/v1/pipelines/etl/stages").json()
    assert [s["name"] for s in stages["items"]] == ["extract"]
    missing = api.get("/api/v1/pipelines/nope")
    assert missing.status_code == 404 and "no pipeline named 'nope'" in missing.json()["message"]



def test_pipelines_summary_has_each_run_count_and_latest_run(api: httpx.Client) -> None:
    """What the UI's pipelines page shows, in one request (it made two per pipeline)."""
    page = api.get("/api/v1/pipelines", params={"summary": "true"}).json()
    assert "executions" not in api.get("/api/v1/pipelines").json()["items"][0]
    for p in page["items"]:
        runs = api.get("/api/v1/executions", params={"pipeline": p["name"], "limit": 500}).json()
        assert p["executions"] == runs["total"] > 0
        assert p["last_execution"] == runs["items"][-1]  # the latest started, with "lost"


def test_executions_filter_and_page(api: httpx.Client) -> None:
    first = api.get("/api/v1/executions", params={"pipeline": "churn.v2", "limit": 2}).json()
    assert first["total"] == 3 and len(first["items"]) == 2 and first["next_offset"] == 2
    assert {e["status"] for e in first["items"]} == {"completed"}
    done = api.get("/api/v1/executions", params={"status": "running"}).json()
    assert done["total"] == 0
    since = api.get("/api/v1/executions",
                    params={"since": "2024-05-01T12:00:00.1Z", "pipeline": "etl"}).json()
    assert since["total"] == 0  # the Airflow runs started at 12:00:00
    bad = api.get("/api/v1/executions", params={"status": "exploded"})
    assert bad.status_code == 400 and "unknown execution status 'exploded'" in \
        bad.json()["message"]
    assert api.get("/api/v1/executions", params={"limit": 0}).status_code == 400


def test_time_offsets_typed_into_a_url_unencoded(api: httpx.Client) -> None:
    """curl ".../executions?since=2024-05-01T17:30:00+05:30": the query's unencoded "+" arrives
    as a space; it is read as the "+" it was (12:00:00Z, when the Airflow runs started),
    not refused as a time without an offset."""
    def total(url: str) -> int:
        r = api.get(url)
        assert r.status_code == 200, r.text
        return r.json()["total" if "totalCount" not in r.json() else "totalCount"]

    assert total("/api/v1/executions?pipeline=etl&since=2024-05-01T17:30:00+05:30") == 2
    assert total("/api/v1/executions?pipeline=etl&since=2024-05-01T17:30:00.1+05:30") == 0
    assert total("/api/v1/executions?pipeline=etl&until=2024-05-02T00:45:00.1+12:45") == 2
    r = api.get("/api/v1/carbon?pipeline=etl&since=2024-05-01T17:30:00.1+05:30")
    assert r.status_code == 200 and r.json()["total"]["executions"] == 0
    everything = total("/api/v1/events/lineage")
    assert total("/api/v1/events/lineage?after=2024-05-01T05:30:00+05:30") == everything > 0
    assert total("/api/v1/events/lineage?after=2099-01-01T00:00:00+05:30") == 0
    bad = api.get("/api/v1/executions?since=2024-05-01T17:30:00 0530")
    assert bad.status_code == 400 and "since: '2024-05-01T17:30:00 0530'" in bad.json()["message"]


def test_execution_detail_events_and_metrics(api: httpx.Client) -> None:
    ex = api.get("/api/v1/executions", params={"pipeline": "churn.v2", "limit": 1}
                 ).json()["items"][0]
    detail = api.get(f"/api/v1/executions/{ex['id']}").json()
    assert [a["name"] for a in detail["inputs"]] == ["train.csv"]
    assert sorted(a["name"] for a in detail["outputs"]) == ["model", "report"]
    assert detail["energy"]["energy_kwh"] == 0.042 and detail["metrics"] == 4
    events = api.get(f"/api/v1/executions/{ex['id']}/events").json()
    assert [e["eventType"] for e in events["items"]] == ["START", "COMPLETE"]
    metrics = api.get(f"/api/v1/executions/{ex['id']}/metrics", params={"name": "loss"}).json()
    assert [m["step"] for m in metrics["items"]] == [0, 1, 2]
    both = api.get("/api/v1/metrics", params=[("execution_id", ex["id"]),
                                              ("execution_id", detail["id"]),
                                              ("name", "auc")]).json()
    assert [m["value"] for m in both["items"]] == [0.91]
    assert api.get("/api/v1/executions/not-a-uuid").status_code == 400
    missing = api.get("/api/v1/executions/0190f0a0-0000-7000-8000-000000000000")
    assert missing.status_code == 404
    assert api.get("/api/v1/metrics").status_code == 400  # execution_id is required


def test_artifacts_page_detail_and_lineage(api: httpx.Client) -> None:
    page = api.get("/api/v1/artifacts", params={"type": "Model", "limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_offset"] == 2 and page["total"] is None
    last = api.get("/api/v1/artifacts", params={"type": "Model", "limit": 2, "offset": 2}
                   ).json()
    assert len(last["items"]) == 1 and last["next_offset"] is None
    model = page["items"][0]
    detail = api.get(f"/api/v1/artifacts/{model['id']}").json()
    assert detail["locations"] == [{"site": "site-a", "uri": "s3://models/churn/model.pkl"}]
    assert len(detail["producers"]) == 1 and detail["consumers"] == []
    up = api.get(f"/api/v1/artifacts/{model['id']}/lineage").json()
    assert [a["name"] for a in up["artifacts"]] == ["train.csv"]
    assert [e["id"] for e in up["executions"]] == [detail["producers"][0]["id"]]
    assert {(e["type"], e["artifact_id"]) for e in up["edges"]} >= {("OUTPUT", model["id"])}
    data_id = up["artifacts"][0]["id"]
    down = api.get(f"/api/v1/artifacts/{data_id}/lineage",
                   params={"direction": "downstream", "depth": 1}).json()
    assert sorted(a["name"] for a in down["artifacts"]) == ["model", "report"]
    prov = api.get(f"/api/v1/artifacts/{model['id']}/provenance").json()
    assert [a["name"] for a in prov["inputs"]] == ["train.csv"]
    missing = api.get("/api/v1/artifacts/sha256:0000")
    assert missing.status_code == 404 and "sha256:0000" in missing.json()["message"]
    assert api.get(f"/api/v1/artifacts/{model['id']}/lineage",
                   params={"direction": "sideways"}).status_code == 400


def test_energy_and_params_survive_the_api(api: httpx.Client) -> None:
    ex = api.get("/api/v1/executions", params={"pipeline": "churn.v2", "limit": 1}
                 ).json()["items"][0]
    assert ex["params"] == {"layers": [64, 32], "lr": 0.01, "opt": {"b1": 0.9, "name": "adam"}}
    assert ex["custom_properties"] == {"owner": "ana"}



@pytest.mark.parametrize(("path", "name"), [
    ("/api/v1/executions", "offset"), ("/api/v1/artifacts", "offset"),
    ("/api/v1/pipelines", "offset"), ("/api/v1/events/lineage", "offset"),
    ("/api/v1/federation/bundle", "since"),
])
def test_offsets_past_a_64_bit_integer_are_400(loaded: LiveServer, path: str,
                                                name: str) -> None:
    """SQL stores take 64-bit integers: one more is named (it was an OverflowError, 500)."""
    r = httpx.get(loaded.url + path, params={name: 2**63})
    assert r.status_code == 400 and r.json() == {
        "code": 400, "error": "InvalidInputError",
        "message": f"query parameter {name!r}: Input should be less than or equal to "
                   f"{2**63 - 1} (got '{2**63}')"}
    assert httpx.get(loaded.url + path, params={name: 2**63 - 1}).status_code == 200


@pytest.mark.parametrize(("path", "params", "text"), [
    ("/api/v1/federation/bundle", {"exclude": f"abc:{2**63}"}, "is larger than"),
    ("/api/v1/federation/bundle", {"exclude": "abc:" + "9" * 5000}, "is larger than"),
    ("/api/v1/federation/bundle", {"exclude": "abc:\u00b2"}, "must be 'store:seq"),
    ("/api/v1/executions", {"since": "0000-01-01T00:00:00Z"}, "since: '0000-01-01T00:00:00Z' "
                                                              "is out of range"),
    ("/api/v1/carbon", {"until": "0000-01-01T00:00:00Z"}, "until: '0000-01-01T00:00:00Z' "
                                                          "is out of range"),
])
def test_numbers_and_times_a_store_cannot_take_are_400(loaded: LiveServer, path: str,
                                                       params: dict[str, object],
                                                       text: str) -> None:
    """A version vector's seq past a 64-bit integer (or not ASCII digits) and a time outside
    years 1-9999 are named, not a 500."""
    r = httpx.get(loaded.url + path, params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "InvalidInputError" and text in body["message"]


def test_pipeline_names_with_a_slash_are_reachable(server: LiveServer) -> None:
    """An OpenLineage job "team/dag.task" is pipeline "team/dag"; its routes (name sent as
    %2F, as the web UI sends it) answer it rather than a bare 'Not Found'."""
    def event(job: str) -> dict[str, object]:
        return {"eventType": "COMPLETE", "eventTime": "2024-05-01T12:00:00Z",
                "producer": "https://example.com/producer",
                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                "run": {"runId": "0190f0a0-0000-7000-8000-00000000000" + str(len(job) % 10)},
                "job": {"namespace": "ns", "name": job}, "inputs": [], "outputs": []}

    with server.client() as c:
        for job in ("team/dag.task", "x/stages.y"):
            assert c.post("/api/v1/lineage", json=event(job)).status_code == 201, job
        team = c.get("/api/v1/pipelines/team%2Fdag")
        assert team.status_code == 200, team.text
        assert team.json()["name"] == "team/dag" and team.json()["executions"] == 1
        stages = c.get("/api/v1/pipelines/team%2Fdag/stages").json()
        assert [s["name"] for s in stages["items"]] == ["team/dag.task"]
        assert c.get("/api/v1/pipelines/x%2Fstages").json()["name"] == "x/stages"
        assert c.get("/api/v1/pipelines/x%2Fstages/stages").json()["total"] == 1
        missing = c.get("/api/v1/pipelines/team%2Fnope")
        assert missing.status_code == 404
        assert "no pipeline named 'team/nope'" in missing.json()["message"]


def test_carbon_also_and_store_sites_give_what_the_page_needs_in_one_request(
        api: httpx.Client) -> None:
    """The web UI's carbon page made three roll-up requests (its grouping, by day, by site
    for the site list), each a pass over every execution; ``also`` and ``store_sites`` give
    the same in one. Without them the route answers as before."""
    for filters in ({}, {"pipeline": "churn.v2"}, {"site": "nowhere"}):
        plain = api.get("/api/v1/carbon", params={**filters, "group_by": "stage"}).json()
        days = api.get("/api/v1/carbon", params={**filters, "group_by": "day"}).json()
        sites = api.get("/api/v1/carbon", params={"group_by": "site"}).json()
        assert "also" not in plain and "store_sites" not in plain
        one = api.get("/api/v1/carbon", params=[*filters.items(), ("group_by", "stage"),
                                                 ("also", "day"), ("also", "site"),
                                                 ("also", "day"), ("store_sites", "true")])
        assert one.status_code == 200, one.text
        body = one.json()
        assert body["also"]["day"] == {"groups": days["groups"]}
        assert set(body["also"]) == {"day", "site"}
        assert body["store_sites"] == sorted(g["site"] for g in sites["groups"])
        assert body["store_sites"]  # the site list is the store's, whatever the filters
        del body["also"], body["store_sites"]
        assert body == plain
    assert plain["total"]["executions"] == 0 and days["groups"] == []
    assert sum(g["executions"] for g in sites["groups"]) > 0
    bad = api.get("/api/v1/carbon", params={"also": "week"})
    assert bad.status_code == 400 and "also" in bad.json()["message"]

"""The OpenAPI document tells the truth: every route it lists, called on a real server over a
populated store, answers a status the document declares, with a body that its schema for
that status accepts; so does each route's error. A route added later without a declared
response shape, or a value for its required parameters here, fails the walk by name."""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from cmf_core.openlineage.convert import to_event_dicts
from cmf_core.store import open_store
from tests.core.openlineage.conftest import airflow_events, build_lineage
from tests.core.server.conftest import LiveServer

METHODS = ("get", "post", "put", "patch", "delete")




@pytest.fixture
def api(serve: Callable[..., contextlib.AbstractContextManager[LiveServer]]
        ) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    """A server over three CMF training runs and two Airflow task runs, and its document."""
    with serve() as live, live.client() as c:
        events = [e for tag in ("a", "b", "c") for e in to_event_dicts(build_lineage(tag=tag))]
        events += airflow_events() + airflow_events()
        assert c.post("/api/v1/lineage/batch", json=events).status_code == 201
        yield c, c.get("/openapi.json").json()


def _check(doc: dict[str, Any], op: dict[str, Any], what: str, r: httpx.Response) -> None:
    """``r`` has a status ``op`` declares, a body of the declared media type, and a JSON body
    that the declared schema accepts."""
    declared = op["responses"].get(str(r.status_code)) or op["responses"].get("default")
    assert declared is not None, f"{what}: status {r.status_code} is not declared ({r.text})"
    content = declared.get("content")
    assert content, f"{what}: status {r.status_code} declares no body"
    media = r.headers["content-type"].split(";")[0]
    assert media in content, f"{what}: {media} is not one of {list(content)}"
    if media != "application/json":
        return
    schema = {**content[media]["schema"], "components": doc["components"]}
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(r.json()), key=str)
    assert not errors, (f"{what} -> {r.status_code}: the body does not match its declared "
                        f"schema: {[f'{list(e.absolute_path)}: {e.message}' for e in errors]}")


def _typed(schema: dict[str, Any]) -> bool:
    """A parameter's value is checked against its schema (a number, a flag, a choice)."""
    kinds = [schema, *schema.get("anyOf", []), *schema.get("items", {}).get("anyOf", []),
             schema.get("items", {})]
    return any(k.get("type") in ("integer", "number", "boolean") or "enum" in k for k in kinds)


def _longest(schema: dict[str, Any]) -> int:
    return next((k["maxLength"] for k in [schema, *schema.get("anyOf", [])]
                 if "maxLength" in k), 0)


def test_the_document_declares_only_what_the_server_answers(
        api: tuple[httpx.Client, dict[str, Any]], tmp_path: Path,
        serve: Callable[..., contextlib.AbstractContextManager[LiveServer]]) -> None:
    c, doc = api
    ex = c.get("/api/v1/executions", params={"pipeline": "churn.v2", "limit": 1}).json()
    execution_id = ex["items"][0]["id"]
    model = next(a for a in c.get(f"/api/v1/executions/{execution_id}").json()["outputs"])
    event = c.get("/api/v1/events/lineage", params={"sortDirection": "asc"}).json()["events"]
    dataset = next(d for e in event for d in e.get("inputs", []))
    task = c.get("/api/v1/recommend/tasks").json()["items"][0]["id"]
    # a realistic value for each parameter name in the document (a path or query parameter
    # with no value here fails the walk: give it one when adding a route)
    values: dict[str, Any] = {
        "name": "churn.v2", "pipeline": "churn.v2", "execution_id": execution_id,
        "artifact_id": model["id"], "digest": model["id"], "task": task,
        "nodeId": f"dataset:{dataset['namespace']}:{dataset['name']}",
    }
    lineage_event = to_event_dicts(build_lineage(tag="posted"))
    with open_store(f"sqlite:///{tmp_path / 'peer.db'}", site="site-b") as peer, \
            serve(store=peer) as other, other.client() as oc:  # a bundle from another site
        assert oc.post("/api/v1/lineage/batch", json=lineage_event).status_code == 201
        bundle = oc.get("/api/v1/federation/bundle", params={"gzip": "false"}).content
    bodies: dict[str, tuple[bytes, str]] = {
        "/api/v1/lineage": (json.dumps(lineage_event[0]).encode(), "application/json"),
        "/api/v1/lineage/batch": (json.dumps(lineage_event[1:]).encode(), "application/json"),
        "/api/v1/federation/bundle": (gzip.compress(bundle), "application/x-ndjson"),
    }
    walked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method not in METHODS:
                continue
            what = f"{method.upper()} {path}"
            assert op.get("summary") and op.get("description") and op.get("tags"), what
            assert "422" not in op["responses"], f"{what} declares 422, never answered"
            url, params = path, {}
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    assert p["name"] in values, f"{what}: no value for path parameter {p}"
                    url = url.replace("{" + p["name"] + "}", values[p["name"]])
                elif p["in"] == "query" and (p.get("required") or p["name"] in values):
                    assert p["name"] in values, f"{what}: no value for query parameter {p}"
                    params[p["name"]] = values[p["name"]]
            content, ctype = bodies.get(path, (None, None)) if method == "post" else (None, None)
            assert method == "get" or content is not None, f"{what}: no body to send"
            headers = {"Content-Type": ctype} if ctype else {}
            r = c.request(method, url, params=params, content=content, headers=headers)
            # artifact bytes: refused (403) by a site that names no folder to serve them from,
            # as this one; its bytes are fetched in tests/core/federation
            refused = path == "/api/v1/federation/artifacts/{digest}"
            assert r.status_code == 403 if refused else r.status_code < 300, \
                f"{what}: {r.status_code} {r.text}"
            _check(doc, op, what, r)
            # and an error: a value the route refuses (400) or a record it lacks (404)
            if any(p["in"] == "path" for p in op.get("parameters", [])):
                bad = path.replace("{execution_id}", "3f0c8a52-0000-4000-8000-000000000000")
                bad = bad.replace("{", "").replace("}", "")  # unknown name / id / digest
                r = c.request(method, bad, params=params, content=content, headers=headers)
                assert r.status_code in (403, 404), f"{what} unknown: {r.status_code}"
            elif method == "post":
                r = c.post(url, content=b"[1", headers={"Content-Type": "application/json"})
                assert r.status_code in (400, 415), f"{what} bad body: {r.status_code}"
            elif path == "/api/v1/health":  # takes no parameter
                r = c.get(url, headers={"Authorization": "Bearer wrong"})
                assert r.status_code == 200, "a token sent to a server without one is ignored"
            else:
                wrong = [(q["name"], "bogus") for q in op.get("parameters", [])
                         if q["in"] == "query" and _typed(q["schema"])]
                wrong += [(q["name"], "x" * (_longest(q["schema"]) + 1))
                          for q in op["parameters"] if _longest(q["schema"])]
                wrong += [(q["name"], "bogus") for q in op["parameters"]
                          if q["name"] == "category"]  # checked by the route itself
                assert wrong, f"{what}: no parameter to send a wrong value to"
                r = c.get(url, params={**params, wrong[0][0]: wrong[0][1]})
                assert r.status_code == 400, f"{what} {wrong[0]}: {r.status_code}"
            _check(doc, op, f"{what} (error)", r)
            walked += 1
    assert walked >= 25  # every route of the API, not an empty document


def test_batch_with_every_event_refused_answers_its_declared_400(
        api: tuple[httpx.Client, dict[str, Any]]) -> None:
    """A batch none of whose events was recorded is 400 with the batch body, not the error
    shape: the document says so (a generated client would fail to read it otherwise)."""
    c, doc = api
    for path in ("/api/v1/lineage", "/api/v1/lineage/batch"):
        r = c.post(path, json=[{"eventType": "START"}, 3])
        assert r.status_code == 400 and r.json()["rejected"] == 2
        _check(doc, doc["paths"][path]["post"], path, r)
        partial = c.post(path, json=[to_event_dicts(build_lineage(tag=path))[0], 3])
        assert partial.status_code == 207
        _check(doc, doc["paths"][path]["post"], path, partial)


def test_auth_and_store_errors_have_the_declared_shape(
        serve: Callable[..., contextlib.AbstractContextManager[LiveServer]]) -> None:
    with serve(token="s3cret", protect_reads=True) as live, live.client() as c:
        doc = c.get("/openapi.json").json()
        for path, method in (("/api/v1/pipelines", "get"), ("/api/v1/health", "get"),
                             ("/api/v1/lineage", "post")):
            r = c.request(method, path, json={})
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
            _check(doc, doc["paths"][path][method], f"{method} {path}", r)


def test_head_answers_every_get_route_as_get_does(
        api: tuple[httpx.Client, dict[str, Any]]) -> None:
    """Monitors, caches and link checkers send HEAD: it answers what GET answers, without the
    body (it fell through to the web UI's 404 for every route but health)."""
    c, _doc = api
    for path in ("/api/v1/pipelines", "/api/v1/executions", "/api/v1/health",
                 "/api/v1/pipelines/churn.v2", "/api/v1/pipelines/nope"):
        get, head = c.get(path), c.head(path)
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path

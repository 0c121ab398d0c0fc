"""The headers that keep a browser from turning recorded text against the web UI (or the UI
against its user): a Content-Security-Policy on every page, nosniff, framing by the same
origin only, no referrer. The pages still working under them is checked in a real browser by
tests/ui (test_ui_hostile.py, test_api_docs.py)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx

from tests.core.server.conftest import LiveServer


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (x.strip() for x in policy.split(";")) if d}


def test_every_answer_has_nosniff_sameorigin_framing_and_no_referrer(
        serve: Callable[..., AbstractContextManager[LiveServer]]) -> None:
    with serve(allowed_hosts=["cmf.example.org"]) as live:
        answers = [httpx.get(live.url + path) for path in
                   ("/", "/app.js", "/api/v1/health", "/api/v1/pipelines/nope", "/docs")]
        answers.append(httpx.get(live.url + "/", headers={"Host": "evil.example"}))  # refused
        answers.append(httpx.head(live.url + "/"))
    assert [r.status_code for r in answers] == [200, 200, 200, 404, 200, 400, 200]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["x-frame-options"] == "SAMEORIGIN", r.url
        assert r.headers["referrer-policy"] == "no-referrer", r.url
        assert directives(r.headers["content-security-policy"])["frame-ancestors"] == ["'self'"]


def test_the_ui_page_runs_no_inline_script_and_json_loads_nothing(
        serve: Callable[..., AbstractContextManager[LiveServer]]) -> None:
    with serve() as live:
        page = httpx.get(live.url + "/")
        api = httpx.get(live.url + "/api/v1/pipelines")
    csp = directives(page.headers["content-security-policy"])
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert csp["style-src"] == ["'self'"]
    assert csp["default-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'self'"]
    assert directives(api.headers["content-security-policy"])["default-src"] == ["'none'"]


def test_the_docs_pages_allow_their_own_inline_script_by_its_hash(
        serve: Callable[..., AbstractContextManager[LiveServer]]) -> None:
    with serve(root_path="/cmf") as live:
        for path in ("/cmf/docs", "/cmf/docs/oauth2-redirect", "/cmf/redoc"):
            r = httpx.get(live.url + path)
            assert r.status_code == 200
            csp = directives(r.headers["content-security-policy"])
            inline = re.findall(r"<script>(.*?)</script>", r.text, re.S)
            hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                      for s in inline]
            assert csp["script-src"] == ["'self'", *hashes], path
            assert "'unsafe-inline'" not in csp["script-src"]
        assert "/cmf/openapi.json" in httpx.get(live.url + "/cmf/docs").text

"""The API docs pages (/docs: Swagger UI, /redoc: ReDoc) in headless Chromium: they render the
server's OpenAPI document with nothing fetched from another host (a site without internet,
or an HPC login node, has no CDN)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Browser

from tests.ui.conftest import UiServer, watched_page


def test_swagger_ui_renders_every_operation_offline(browser: Browser,
                                                    ui_server: UiServer) -> None:
    spec = httpx.get(ui_server.url + "/openapi.json", timeout=30).json()
    operations = {(method.upper(), path) for path, item in spec["paths"].items()
                  for method in item if method in ("get", "post", "put", "delete", "head")}
    assert ("POST", "/api/v1/lineage") in operations

    # watched_page aborts and reports every request to another host (a CDN)
    with watched_page(browser, ui_server.url) as page:
        page.goto("/docs")
        page.wait_for_selector(".opblock")
        shown = page.locator(".opblock").evaluate_all(
            "(bs) => bs.map((b) => [b.querySelector('.opblock-summary-method').textContent,"
            " b.querySelector('.opblock-summary-path').dataset.path])")
        assert {(m, p) for m, p in shown} == operations
        assert page.locator(".info .title").first.inner_text().startswith("cmf-foundation")


def test_redoc_renders_offline(browser: Browser, ui_server: UiServer) -> None:
    """ReDoc's scripts come from the server too; only its "API docs by Redocly" footer logo
    is an image on cdn.redoc.ly (ReDoc has no option to drop it): aborted here, as offline,
    it is the one request that may leave the server, and the page still renders."""
    context = browser.new_context(base_url=ui_server.url)
    here = urlsplit(ui_server.url).netloc
    foreign: list[str] = []

    def gate(route: Any) -> None:
        if urlsplit(route.request.url).netloc == here:
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    context.route("**/*", gate)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    # the server's Content-Security-Policy lets ReDoc run (its search worker is a blob:)
    page.on("console", lambda m: errors.append(m.text)
            if "Content Security Policy" in m.text else None)
    try:
        page.goto("/redoc")
        page.wait_for_selector("h1")
        assert page.locator("h1").first.inner_text().startswith("cmf-foundation")
        # ReDoc lists the operations, the lineage POST among them
        page.get_by_text("/api/v1/lineage", exact=True).first.wait_for(state="attached")
    finally:
        context.close()
    assert not errors
    assert {urlsplit(u).netloc for u in foreign} <= {"cdn.redoc.ly"}, foreign

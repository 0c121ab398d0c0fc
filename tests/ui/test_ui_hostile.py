"""Recorded text is data, never markup: names, URIs, parameters, metrics, errors, run URLs and
properties holding HTML, script, ``javascript:``/``data:`` URLs, very long words, bidi
overrides and zero-width characters, written with the Python API and posted as OpenLineage
events to a real ``cmf serve``, then every view opened in headless Chromium.

The payloads bump ``window.__xss`` or open a dialog if they ever run; the page runs under the
server's Content-Security-Policy, whose every violation is a console error (watched_page fails
on it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page

from cmf_core import Cmf
from cmf_core.config import load_settings
from tests.ui.conftest import cmf_serve, watched_page

RUN = "window.__xss=(window.__xss||0)+1"
IMG = f'<img src=x onerror="{RUN}">'
SCRIPT = f"</script><script>{RUN}</script>"
SVG = f'"><svg onload="{RUN}">'
JS_URL = f"javascript:{RUN}"
DATA_URL = "data:text/html,<script>alert(1)</script>"
LONG = "A" * 400
BIDI = "evil\u202egnp.exe"  # shows as "evilexe.png" unless the override is written out
TWIN = "churn\u200b"  # looks like "churn"
SITE = "\"'><marquee>x"  # a site id: no spaces, no slashes


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """A server over a store of hostile text; yields its URL and the execution ids."""
    root = tmp_path_factory.mktemp("hostile")
    store = f"sqlite:///{root / 'cmf.db'}"
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("CMF_"):
                mp.delenv(key)
        settings = load_settings(site=SITE, home=str(root / "home"), store_url=store,
                                 energy=False)
        data = root / "d.csv"
        data.write_text("a,b\n1,2\n")
        with Cmf(pipeline_name=IMG, store=store, settings=settings, site=SITE,
                 properties={SVG: SCRIPT}, custom_properties={IMG: JS_URL}) as cmf:
            cmf.create_stage(SCRIPT, properties={IMG: SVG}, custom_properties={"x": DATA_URL})
            with cmf.create_execution(SCRIPT, params={IMG: SVG, "long": LONG, BIDI: TWIN},
                                      properties={"cmf.run_url": JS_URL, "airflow": IMG},
                                      custom_properties={SVG: IMG}) as run:
                run.log_artifact(str(data), "input", name=SVG, properties={IMG: DATA_URL})
                run.log_execution_metrics(IMG, {SVG: 1.0, LONG: 2.0})
            with pytest.raises(RuntimeError), cmf.create_execution(
                    SVG, properties={"cmf.run_url": 'https://ok.example/?a="><b>'}):
                raise RuntimeError(IMG + SCRIPT)
            with cmf.create_execution(BIDI, properties={"cmf.run_url": DATA_URL}) as run:
                run.log_artifact(str(data), "output", name=LONG)
        for name in ("churn", TWIN):
            with Cmf(pipeline_name=name, store=store, settings=settings, site="lab") as cmf, \
                    cmf.create_execution("train"):
                pass
        with cmf_serve(store, root) as url:
            event = {
                "eventType": "FAIL", "eventTime": "2024-05-01T12:00:00Z",
                "producer": "https://producer.example/x",
                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                "run": {"runId": str(uuid.uuid4()), "facets": {"errorMessage": {
                    "_producer": "https://producer.example/x",
                    "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/"
                                  "ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
                    "message": IMG, "programmingLanguage": SVG}}},
                "job": {"namespace": IMG, "name": f"{SVG}.{IMG}"},
                "inputs": [{"namespace": JS_URL, "name": IMG}],
                "outputs": [{"namespace": "s3://bucket", "name": SCRIPT}]}
            assert httpx.post(url + "/api/v1/lineage", json=event).status_code == 201
            ids = [e["id"] for e in httpx.get(url + "/api/v1/executions").json()["items"]]
            yield url, ids


def ready(page: Page, address: str) -> None:
    """Open ``address`` (``/#/...``) and wait until its view is drawn (not the one before)."""
    page.goto(address)
    page.wait_for_function("(h) => document.getElementById('view').dataset.ready === h",
                           arg=address.split("#", 1)[1])


def assert_inert(page: Page, dialogs: list[str]) -> None:
    assert page.evaluate("window.__xss || 0") == 0
    assert not dialogs
    assert page.locator("#view img, #view iframe, #view marquee, #view script").count() == 0
    here = urlsplit(page.url).netloc
    for href in page.eval_on_selector_all("a[href]", "as => as.map((a) => a.href)"):
        parts = urlsplit(href)
        assert parts.scheme in ("http", "https"), href
        assert parts.netloc == here or href.startswith("https://ok.example"), href


def test_no_recorded_text_runs_or_becomes_a_link(browser: Browser,
                                                 hostile: tuple[str, list[str]]) -> None:
    url, ids = hostile
    with watched_page(browser, url) as page:
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        pipelines = [p["name"] for p in httpx.get(url + "/api/v1/pipelines").json()["items"]]
        for address in ["/#/pipelines", "/#/carbon", "/#/carbon?by=pipeline", "/#/carbon?by=site",
                        "/#/recommend", f"/#/compare?ids={','.join(ids)}",
                        *(f"/#/pipeline/{quote(p, safe='')}" for p in pipelines)]:
            ready(page, address)
            for node in page.locator("#lineage g.node").all():  # every details panel
                node.press("Enter")  # selects it (a click may land on the panel over it)
                page.wait_for_selector("#details:not([hidden]) h3")
                page.wait_for_function(
                    "!document.querySelector('#details .loading')")
                assert_inert(page, dialogs)
            assert_inert(page, dialogs)
        # the names are shown as they are, markup and all
        ready(page, "/#/pipelines")
        shown = page.locator("#pipelines tbody td.name").all_inner_texts()
        assert IMG in shown and "churn" in shown


def test_invisible_and_direction_characters_are_written_out(
        browser: Browser, hostile: tuple[str, list[str]]) -> None:
    """A pipeline named "churn" + U+200B looks like "churn"; a U+202E reverses what follows
    ("evil" + U+202E + "gnp.exe" reads "evilexe.png"): each is shown as ⟨U+...⟩."""
    url, ids = hostile
    with watched_page(browser, url) as page:
        ready(page, "/#/pipelines")
        names = page.locator("#pipelines tbody td.name").all_inner_texts()
        assert "churn" in names and "churn⟨U+200B⟩" in names
        ready(page, f"/#/pipeline/{quote(TWIN, safe='')}")
        assert page.title().startswith("churn⟨U+200B⟩ ·")
        ready(page, f"/#/compare?ids={','.join(ids)}")
        table = page.locator("#compare-table")
        assert "evil⟨U+202E⟩gnp.exe" in table.locator("tr.param th").all_inner_texts()
        assert "churn⟨U+200B⟩" in table.inner_text()
        assert "\u202e" not in table.inner_text() and "\u200b" not in table.inner_text()
        # the lineage graph's labels too
        ready(page, f"/#/pipeline/{quote(IMG, safe='')}")
        page.wait_for_selector("#lineage g.node")
        labels = page.locator("#lineage g.node").evaluate_all(
            "(ns) => ns.map((n) => n.getAttribute('aria-label'))")
        assert any("evil⟨U+202E⟩gnp.exe" in x for x in labels), labels


def test_a_long_word_does_not_push_the_compared_runs_out_of_view(
        browser: Browser, hostile: tuple[str, list[str]]) -> None:
    url, ids = hostile
    with watched_page(browser, url) as page:
        ready(page, f"/#/compare?ids={','.join(ids)}")
        width, room = page.locator("#compare-table").evaluate(
            "(t) => [t.scrollWidth, t.parentElement.clientWidth]")
        assert width <= room, f"the table is {width}px wide in {room}px"
        long_row = page.locator("#compare-table tr.param", has_text="long")
        assert LONG in long_row.inner_text().replace("\n", "")

"""Keyboard and screen-reader use of the web UI: Tab stops, names of controls and links, page
titles, where the focus goes when a view is drawn again, and the link from each row of a
pipeline's executions to its run in the orchestrator's UI. Its own small store (runs as the
Airflow and Prefect adapters record them, one with a hostile ``cmf.run_url``), a real ``cmf
serve`` process and Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from cmf_core.model import Execution, Pipeline, Stage
from cmf_core.store import open_store
from tests.ui.conftest import cmf_serve, watched_page

AIRFLOW_URL = ("https://airflow.example.org/dags/etl/runs/manual__2025-01-01T00%3A00%3A00%2B00%3A00"
               "/tasks/fit/mapped/2?try_number=1")
PREFECT_URL = "https://prefect.example.org/runs/task-run/0b6c1f4e"
NONE = "\u2013"  # what the page shows for no value (an en dash)


@dataclass
class Site:
    url: str
    runs: dict[str, Execution]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("ui-a11y")
    url = f"sqlite:///{root / 'cmf.db'}"
    runs = {
        "airflow": Execution(pipeline="linked", stage="fit", site="lab", started_at=1.7e9,
                             properties={"airflow": {"dag_id": "etl", "task_id": "fit"},
                                         "cmf.run_url": AIRFLOW_URL}),
        "prefect": Execution(pipeline="linked", stage="score", site="lab", started_at=1.7e9 + 1,
                             properties={"prefect.route": "watcher",
                                         "cmf.run_url": PREFECT_URL}),
        "hostile": Execution(pipeline="linked", stage="fit", site="lab", started_at=1.7e9 + 2,
                             properties={"prefect.route": "watcher",
                                         "cmf.run_url": "javascript:alert(document.domain)"}),
        "none": Execution(pipeline="linked", stage="fit", site="lab", started_at=1.7e9 + 3),
        "plain": Execution(pipeline="plain", stage="copy", site="lab", started_at=1.7e9 + 4),
    }
    with open_store(url, site="lab") as store:
        store.put([Pipeline("linked", "lab"), Stage("linked", "fit", "lab"),
                   Stage("linked", "score", "lab"), Pipeline("plain", "lab"),
                   Stage("plain", "copy", "lab"), *runs.values()])
    with cmf_serve(url, root) as base:
        yield Site(base, runs)


def wait_view(page: Page, prefix: str) -> None:
    page.wait_for_selector(f'#view[data-ready^="{prefix}"]:not([aria-busy])')


def focused(page: Page) -> str:
    """The focused element, as tag#id.class[name] (enough to tell them apart here)."""
    return page.evaluate("""() => { const el = document.activeElement;
      return `${el.tagName.toLowerCase()}#${el.id}.${el.getAttribute("class") || ""}` +
        `[${el.getAttribute("name") || el.getAttribute("aria-label") || ""}]`; }""")


def test_each_row_of_the_executions_links_to_its_run_in_the_orchestrator(
        browser: Browser, site: Site) -> None:
    """A small link per row of a pipeline's executions opens the run in Airflow / Prefect (a
    new tab), named by the run it opens; a run without an address, or with one that is no
    http(s) URL, has none. The list routes give ``run_url`` as the single-execution one does."""
    runs = site.runs
    listed = httpx.get(f"{site.url}/api/v1/executions", params={"pipeline": "linked"},
                       timeout=10).json()["items"]
    assert {e["id"]: e["run_url"] for e in listed} == {
        runs["airflow"].id: AIRFLOW_URL, runs["prefect"].id: PREFECT_URL,
        runs["hostile"].id: None, runs["none"].id: None}
    graph = httpx.get(f"{site.url}/api/v1/graph", params={"pipeline": "linked"},
                      timeout=10).json()
    assert {e["id"]: e["run_url"] for e in graph["executions"]}[runs["airflow"].id] == AIRFLOW_URL
    with watched_page(browser, site.url) as pg:
        pg.goto("/#/pipeline/linked")
        wait_view(pg, "/pipeline/linked")
        table = pg.locator("#executions")
        expect(table.get_by_role("columnheader", name="Orchestrator")).to_have_count(1)
        for key, where, href in (("airflow", "Airflow", AIRFLOW_URL),
                                 ("prefect", "Prefect", PREFECT_URL)):
            e = runs[key]
            row = table.locator(f'tr[data-id="{e.id}"]')
            link = row.get_by_role("link", name=f"Open {e.stage} …{e.id[-8:]} in {where}")
            expect(link).to_have_attribute("href", href)
            expect(link).to_have_attribute("target", "_blank")
            expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b"))
            expect(link).to_have_text(f"{where} ↗")
        for key in ("hostile", "none"):
            cell = table.locator(f'tr[data-id="{runs[key].id}"] td.run-url')
            expect(cell).to_have_text(NONE)
        expect(table.locator('a[href^="javascript"]')).to_have_count(0)
        # the comparison of runs has the same links, one row
        pg.goto(f"/#/compare?ids={runs['airflow'].id},{runs['none'].id}")
        wait_view(pg, "/compare")
        row = pg.locator("#compare-table tr.run-url")
        expect(row.get_by_role("link", name=f"Open fit …{runs['airflow'].id[-8:]} in Airflow")
               ).to_have_attribute("href", AIRFLOW_URL)
        expect(row.locator("td").nth(1)).to_have_text(NONE)
        # a pipeline none of whose runs has an address has no such column
        pg.goto("/#/pipeline/plain")
        wait_view(pg, "/pipeline/plain")
        expect(pg.locator("#executions thead th")).to_have_count(10)
        expect(pg.locator("#executions").get_by_role("columnheader", name="Orchestrator")
               ).to_have_count(0)

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
KFP_URL = "https://kfp.example.org/#/runs/details/8d1f6a2e-3c4b-4f5e-9a8b-7c6d5e4f3a2b"
WIDE_STAGE = "train_gradient_boosted_trees_on_the_full_feature_set"
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
        # the longest link label, a long stage name without spaces, many parameters
        "kubeflow": Execution(pipeline="wide", stage=WIDE_STAGE, site="lab", started_at=1.7e9 + 5,
                              params={f"learning_rate_{i}": 0.001 * i for i in range(12)},
                              properties={"kfp.run_id": "8d1f", "cmf.run_url": KFP_URL}),
        "wide-airflow": Execution(pipeline="wide", stage="fit", site="lab", started_at=1.7e9 + 6,
                                  properties={"airflow": {"dag_id": "etl", "task_id": "fit"},
                                              "cmf.run_url": AIRFLOW_URL}),
        "wide-none": Execution(pipeline="wide", stage="fit", site="lab", started_at=1.7e9 + 7),
    }
    with open_store(url, site="lab") as store:
        store.put([Pipeline("linked", "lab"), Stage("linked", "fit", "lab"),
                   Stage("linked", "score", "lab"), Pipeline("plain", "lab"),
                   Stage("plain", "copy", "lab"), Pipeline("wide", "lab"),
                   Stage("wide", WIDE_STAGE, "lab"), Stage("wide", "fit", "lab"),
                   *runs.values()])
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


def test_a_graph_is_one_tab_stop_not_two(browser: Browser, site: Site) -> None:
    """Tab goes from the control before a graph straight to its node: the <svg> itself (which
    Chromium makes focusable as a clipped box) is no extra, dead stop."""
    with watched_page(browser, site.url) as pg:
        pg.goto("/#/pipeline/linked")
        wait_view(pg, "/pipeline/linked")
        pg.wait_for_selector("#lineage g.node")
        pg.locator("a.crumb").focus()
        pg.keyboard.press("Tab")
        assert pg.evaluate("document.activeElement.closest('#stage-dag g.node') !== null"), \
            focused(pg)
        pg.get_by_role("button", name="Fit", exact=True).focus()
        pg.keyboard.press("Tab")
        assert pg.evaluate("document.activeElement.closest('#lineage g.node') !== null"), \
            focused(pg)


def test_each_view_has_its_own_title_and_the_navigation_says_which(
        browser: Browser, site: Site) -> None:
    with watched_page(browser, site.url) as pg:
        for address, ready, title, nav in (
                ("/#/pipelines", "/pipelines", "Pipelines · cmf-foundation", "Pipelines"),
                ("/#/pipeline/linked", "/pipeline/linked", "linked · Pipeline · cmf-foundation",
                 "Pipelines"),
                (f"/#/compare?ids={site.runs['none'].id}", "/compare",
                 "Compare runs · cmf-foundation", "Pipelines"),
                ("/#/carbon", "/carbon", "Carbon · cmf-foundation", "Carbon"),
                ("/#/recommend", "/recommend", "Recommendations · cmf-foundation",
                 "Recommendations"),
                ("/#/nowhere", "/nowhere", "No such page · cmf-foundation", None)):
            pg.goto(address)
            wait_view(pg, ready)
            expect(pg).to_have_title(title)
            current = pg.locator('nav a[aria-current="page"]')
            if nav is None:
                expect(current).to_have_count(0)
            else:
                expect(current).to_have_text(nav)


def test_form_controls_and_column_headers_have_names(browser: Browser, site: Site) -> None:
    """Every form control of every view has an accessible name (the carbon filters had none:
    their first option is a value, not a label) and every column of a table has a header."""
    unnamed_js = """() => [...document.querySelectorAll('#view input, #view select, #view button')]
      .filter((el) => !((el.labels && [...el.labels].some((l) => l.textContent.trim()))
                        || el.getAttribute('aria-label')
                        || (el.tagName === 'BUTTON' && el.textContent.trim())))
      .map((el) => el.outerHTML.slice(0, 120))"""
    empty_th_js = """() => [...document.querySelectorAll('#view thead th')]
      .filter((th) => !th.textContent.trim()).map((th) => th.closest('table').id)"""
    with watched_page(browser, site.url) as pg:
        for address, ready in (("/#/pipelines", "/pipelines"),
                               ("/#/pipeline/linked", "/pipeline/linked"),
                               ("/#/carbon", "/carbon"), ("/#/recommend", "/recommend")):
            pg.goto(address)
            wait_view(pg, ready)
            assert pg.evaluate(unnamed_js) == [], address
            assert pg.evaluate(empty_th_js) == [], address
        pg.goto("/#/carbon")
        wait_view(pg, "/carbon")
        expect(pg.get_by_role("combobox", name="Pipeline")).to_have_count(1)
        expect(pg.get_by_role("combobox", name="Site")).to_have_count(1)
        pg.goto("/#/pipeline/linked")
        wait_view(pg, "/pipeline/linked")
        expect(pg.locator("#executions").get_by_role("columnheader", name="Select")
               ).to_have_count(1)


def test_the_focus_stays_on_a_filter_and_moves_to_a_new_view(browser: Browser,
                                                              site: Site) -> None:
    """Choosing a carbon filter with the keyboard draws the view again: the focus stays on
    that filter (it was lost to the page's top, so the next Tab started over). Going to
    another view puts the focus on its heading."""
    with watched_page(browser, site.url) as pg:
        pg.goto("/#/carbon")
        wait_view(pg, "/carbon")
        pg.get_by_role("combobox", name="Pipeline").focus()
        pg.keyboard.press("ArrowDown")  # a closed <select>: the next option, at once
        wait_view(pg, "/carbon?pipeline=")
        assert focused(pg) == "select#.[pipeline]"
        pg.keyboard.press("Tab")
        assert focused(pg) == "select#.[site]"
        # a tab of the chart keeps the focus on the tab chosen
        tab = pg.get_by_role("tab", name="by site")
        tab.focus()
        pg.keyboard.press("Enter")
        wait_view(pg, "/carbon?pipeline=linked&by=site")
        expect(pg.get_by_role("tab", name="by site")).to_be_focused()
        # another view: its heading
        pg.locator('nav a[data-nav="recommend"]').focus()
        pg.keyboard.press("Enter")
        wait_view(pg, "/recommend")
        expect(pg.locator("#view h1")).to_be_focused()


def test_the_carbon_tabs_are_one_tab_stop_moved_along_by_the_arrow_keys(
        browser: Browser, site: Site) -> None:
    """The "by ..." tabs of the carbon page are a WAI-ARIA tabs widget: one Tab stop (the
    chosen tab, then its panel), Left/Right (round), Home and End move the focus along the
    tabs without drawing anything, Enter or Space choose the focused one (its address, so a
    deep link to a tab and Back still work), and the panel is named by the chosen tab. They
    were plain links: a Tab stop each, no arrow keys, no panel."""
    with watched_page(browser, site.url) as pg:
        pg.goto("/#/carbon?by=site")  # a deep link to a tab
        wait_view(pg, "/carbon?by=site")
        tablist = pg.get_by_role("tablist", name="Group emissions")
        tabs = tablist.get_by_role("tab")
        expect(tabs).to_have_text(["by stage", "by pipeline", "by site", "by phase", "by day"])
        chosen = tablist.get_by_role("tab", name="by site", selected=True)
        expect(chosen).to_have_attribute("tabindex", "0")
        expect(tablist.get_by_role("tab", selected=False)).to_have_count(4)
        for tab in tablist.get_by_role("tab", selected=False).all():
            expect(tab).to_have_attribute("tabindex", "-1")
        panel = pg.get_by_role("tabpanel", name="by site")
        expect(panel).to_have_count(1)
        expect(chosen).to_have_attribute("aria-controls", panel.get_attribute("id") or "?")
        expect(panel.locator("#carbon-groups")).to_have_count(1)
        # Tab: from the filters to the chosen tab, then to its panel (not to the next tab)
        pg.get_by_role("link", name="Reset").focus()
        pg.keyboard.press("Tab")
        expect(chosen).to_be_focused()
        pg.keyboard.press("Tab")
        expect(panel).to_be_focused()
        pg.keyboard.press("Shift+Tab")
        expect(chosen).to_be_focused()

        def tab(name: str) -> None:
            expect(tablist.get_by_role("tab", name=name, exact=True)).to_be_focused()

        for key, name in (("ArrowRight", "by phase"), ("ArrowRight", "by day"),
                          ("ArrowRight", "by stage"), ("ArrowLeft", "by day"),
                          ("Home", "by stage"), ("End", "by day"), ("ArrowLeft", "by phase")):
            pg.keyboard.press(key)
            tab(name)
        # moving the focus chose nothing and drew nothing
        assert pg.evaluate("location.hash") == "#/carbon?by=site"
        expect(chosen).to_have_attribute("aria-selected", "true")
        pg.keyboard.press("Enter")
        wait_view(pg, "/carbon?by=phase")
        tab("by phase")
        expect(tablist.get_by_role("tab", name="by phase", selected=True)).to_have_attribute(
            "tabindex", "0")
        expect(pg.get_by_role("tabpanel", name="by phase")).to_have_count(1)
        expect(pg.locator("#carbon-groups thead th").first).to_have_text("phase")
        pg.keyboard.press("Home")
        pg.keyboard.press("Space")
        wait_view(pg, "/carbon?by=stage")
        tab("by stage")
        expect(pg.get_by_role("tabpanel", name="by stage")).to_have_count(1)
        # Back: the tab chosen before, with the focus on it
        pg.go_back()
        wait_view(pg, "/carbon?by=phase")
        tab("by phase")
        expect(tablist.get_by_role("tab", name="by phase")).to_have_attribute(
            "aria-selected", "true")
        # a phone-wide window: every tab whole (one line) and inside the tablist
        pg.set_viewport_size({"width": 390, "height": 844})
        box = tablist.bounding_box()
        assert box is not None
        for t in tabs.all():
            tb = t.bounding_box()
            assert tb is not None and box["x"] <= tb["x"] and \
                tb["x"] + tb["width"] <= box["x"] + box["width"], t.inner_text()
            assert t.evaluate("(a) => a.getClientRects().length") == 1, t.inner_text()
            assert tb["height"] < 2 * float(t.evaluate(
                "(a) => parseFloat(getComputedStyle(a).lineHeight) || 20")), t.inner_text()


# What overflows or overlaps in the executions table, measured from the boxes the browser laid
# out: cells of a row (and the header) that overlap, content wider than its cell, a run link
# outside its cell or covered by something else where it is clicked, a page that scrolls sideways.
LAYOUT_JS = """() => {
  const problems = [];
  const table = document.querySelector('#executions');
  const panel = table.closest('.panel');
  const wider = document.documentElement.scrollWidth - innerWidth;
  if (wider > 0) problems.push(`the page scrolls ${wider} px sideways`);
  const inside = (r, t) => r.left >= t.left - 0.5 && r.right <= t.right + 0.5
    && r.top >= t.top - 0.5 && r.bottom <= t.bottom + 0.5;
  for (const tr of table.querySelectorAll('tr')) {
    const row = tr.dataset.id || 'header';
    const cells = [...tr.children].map((c) => [c, c.getBoundingClientRect()]);
    cells.forEach(([c, r], i) => {
      if (i && r.left < cells[i - 1][1].right - 0.5)
        problems.push(`${row}: cell ${i} overlaps cell ${i - 1}`);
      const over = c.scrollWidth - c.clientWidth;
      if (over > 1) problems.push(`${row}: cell ${i} (${c.textContent.slice(0, 30)}) overflows`);
    });
  }
  for (const a of table.querySelectorAll('td.run-url a')) {
    a.scrollIntoView({ block: 'center', inline: 'center' });
    const head = table.querySelector('thead th:last-child').getBoundingClientRect();
    const r = a.getBoundingClientRect();
    const td = a.closest('td').getBoundingClientRect();
    const p = panel.getBoundingClientRect();
    const name = a.getAttribute('aria-label');
    if (!inside(r, td)) problems.push(`${name}: the link sticks out of its cell`);
    if (td.left < head.left - 0.5 || td.right > head.right + 0.5)
      problems.push(`${name}: its cell is not under the Orchestrator header`);
    if (r.left < p.left || r.right > p.right || r.right > innerWidth)
      problems.push(`${name}: out of sight once scrolled to`);
    const f = a.getClientRects()[0];
    const hit = document.elementFromPoint(f.left + f.width / 2, f.top + f.height / 2);
    if (!a.contains(hit)) problems.push(`${name}: covered by ${hit && hit.outerHTML.slice(0, 80)}`);
  }
  // a run's short id and its link are read as one word each: not torn over two lines
  const lines = (el) => { const r = document.createRange(); r.selectNodeContents(el);
    return new Set([...r.getClientRects()].map((x) => Math.round(x.top))).size; };
  for (const el of table.querySelectorAll('td.run-id, td.run-url a'))
    if (lines(el) > 1) problems.push(`"${el.textContent}" is broken over ${lines(el)} lines`);
  return problems;
}"""


@pytest.mark.parametrize("width", [390, 1440])
def test_the_executions_table_with_run_links_fits_a_narrow_and_a_wide_window(
        browser: Browser, site: Site, width: int) -> None:
    """The executions table with its Orchestrator column (the longest label, a long stage name
    without spaces, many parameters) at a phone-wide and a wide window: no cells overlap,
    nothing sticks out of its cell, each run link is in its column, in sight once scrolled to
    and not covered; the page itself does not scroll sideways (the table scrolls in its
    panel). A run's short id and its link stay on one line (they broke after the "…" of the
    id and before the "↗", even at 1440 px)."""
    with watched_page(browser, site.url) as pg:
        pg.set_viewport_size({"width": width, "height": 900})
        pg.goto("/#/pipeline/wide")
        wait_view(pg, "/pipeline/wide")
        table = pg.locator("#executions")
        expect(table.locator("td.run-url a")).to_have_count(2)
        kfp = table.get_by_role("link", name=re.compile(r"in Kubeflow Pipelines$"))
        expect(kfp).to_have_text("Kubeflow Pipelines ↗")
        expect(table.locator("td.run-id")).to_have_count(3)
        assert pg.evaluate(LAYOUT_JS) == []

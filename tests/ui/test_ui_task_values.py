"""Task results (values one task hands the next in memory, e.g. Prefect's ``task-run/<id>/result``,
marked ``cmf.role`` = ``task_value``) in the lineage graph: by default folded into a dashed
"via task result" edge between the two executions, as ``cmf lineage`` folds them; "show task
results" draws them as nodes again. The API gives each such artifact its ``role``. Its own store
(recorded with ``Cmf`` as the Prefect adapter records a flow: load -> scale -> fit, each result
read by the next task, fit's read by none), a real ``cmf serve`` process and Chromium."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from cmf_core.logger import Cmf, ExecutionHandle
from cmf_core.model import ROLE_PROPERTY, TASK_VALUE
from cmf_core.openlineage.ingest import unversioned_digest
from tests.ui.conftest import cmf_serve, watched_page

Shots = Callable[[Page, str], Path]
ROLE = {ROLE_PROPERTY: TASK_VALUE}


@dataclass
class Flow:
    url: str  # the cmf serve URL
    runs: dict[str, str]  # stage -> execution id
    results: dict[str, str]  # stage -> the id of the task result it returned
    files: dict[str, str]  # file name -> artifact id


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    root = tmp_path_factory.mktemp("ui-task-values")
    store = f"sqlite:///{root / 'cmf.db'}"
    raw, model = root / "raw.csv", root / "model.pkl"
    raw.write_text("x\n1\n2\n3\n")
    runs: dict[str, str] = {}
    results: dict[str, str] = {}
    files: dict[str, str] = {}

    def result(handle: ExecutionHandle, task_run: str, event: str) -> str:
        # the URI and id the Prefect adapter gives a task run's result (cmf_prefect.datasets)
        name = f"task-run/{task_run}/result"
        uri = f"prefect:{name}"
        return handle.log_artifact(uri, event, name=name, digest=unversioned_digest(uri),
                                   properties=ROLE).id

    task_runs = {stage: str(uuid.uuid4()) for stage in ("load", "scale", "fit")}
    with Cmf(pipeline_name="churn-flow", store=store, site="lab", measure_energy=False) as cmf:
        with cmf.create_execution("load") as ex:
            runs["load"] = ex.id
            files["raw.csv"] = ex.log_dataset(str(raw), "input").id
            results["load"] = result(ex, task_runs["load"], "output")
        with cmf.create_execution("scale") as ex:
            runs["scale"] = ex.id
            result(ex, task_runs["load"], "input")
            results["scale"] = result(ex, task_runs["scale"], "output")
        with cmf.create_execution("fit") as ex:
            runs["fit"] = ex.id
            result(ex, task_runs["scale"], "input")
            ex.log_dataset(str(raw), "input")
            model.write_bytes(b"model")
            files["model.pkl"] = ex.log_model(str(model), "output").id
            results["fit"] = result(ex, task_runs["fit"], "output")  # read by no task
    with Cmf(pipeline_name="plain", store=store, site="lab", measure_energy=False) as cmf:
        cmf.create_execution("copy").log_dataset(str(raw), "input")
    with cmf_serve(store, root) as url:
        yield Flow(url, runs, results, files)


def test_the_api_gives_each_task_result_its_role(flow: Flow) -> None:
    """``role`` is in every artifact the API returns, so the page need not know the property."""
    graph = httpx.get(f"{flow.url}/api/v1/graph", params={"pipeline": "churn-flow"}).json()
    roles = {a["id"]: a.get("role") for a in graph["artifacts"]}
    assert roles == {**{v: "task_value" for v in flow.results.values()},
                     **{f: None for f in flow.files.values()}}
    one = httpx.get(f"{flow.url}/api/v1/artifacts/{flow.results['load']}").json()
    assert one["role"] == "task_value" and one["properties"][ROLE_PROPERTY] == TASK_VALUE
    assert "role" not in httpx.get(f"{flow.url}/api/v1/artifacts/{flow.files['raw.csv']}").json()
    scale = httpx.get(f"{flow.url}/api/v1/executions/{flow.runs['scale']}").json()
    assert [a.get("role") for a in scale["inputs"]] == ["task_value"]


def wait_graph(page: Page, prefix: str) -> None:
    page.wait_for_selector(f'#view[data-ready^="{prefix}"]:not([aria-busy])')
    page.wait_for_selector("#lineage g.node")


def node_ids(page: Page, kind: str) -> set[str]:
    return set(page.locator(f'#lineage g.node[data-kind="{kind}"]').evaluate_all(
        "(ns) => ns.map((n) => n.dataset.id)"))


def test_task_results_are_folded_into_edges_and_the_toggle_shows_them(
        browser: Browser, flow: Flow, shots: Shots) -> None:
    runs, results = flow.runs, flow.results
    with watched_page(browser, flow.url) as pg:
        pg.goto("/#/pipeline/churn-flow")
        wait_graph(pg, "/pipeline/churn-flow")
        # folded: no task result is a node; load -> scale -> fit are joined directly
        assert node_ids(pg, "artifact") == set(flow.files.values())
        assert node_ids(pg, "execution") == set(runs.values())
        via = pg.locator("#lineage path.edge.task-value")
        expect(via).to_have_count(2)
        pairs = via.evaluate_all("(es) => es.map((e) => [e.dataset.from, e.dataset.to])")
        assert sorted(map(tuple, pairs)) == sorted([(runs["load"], runs["scale"]),
                                                    (runs["scale"], runs["fit"])])
        edge = pg.locator(f'#lineage path.edge.task-value[data-from="{runs["load"]}"]')
        tip = edge.locator("title").text_content() or ""
        assert tip.startswith("via task result: load → scale") and results["load"] in tip
        # the other edges are the user's files: raw.csv in twice, model.pkl out
        expect(pg.locator("#lineage path.edge:not(.task-value)")).to_have_count(3)
        expect(pg.locator("#graph-count")).to_have_text(
            "3 executions, 2 artifacts (3 task results folded)")
        expect(pg.locator(".legend .lg-task-value")).to_have_text("via task result")
        toggle = pg.get_by_label("show task results")
        expect(toggle).not_to_be_checked()
        shots(pg, "task-values-folded")

        # a click on the edge: its details name the value and its digest
        # (at the middle of the curve, in page coordinates: a straight edge has an empty box)
        x, y = edge.evaluate("""(e) => {
          const p = e.getPointAtLength(e.getTotalLength() / 2);
          const at = new DOMPoint(p.x, p.y).matrixTransform(e.getScreenCTM());
          return [at.x, at.y];
        }""")
        pg.mouse.click(x, y + 3)  # 3 px off the line: on the wider hit stroke
        details = pg.locator("#details")
        expect(details.locator("h3")).to_have_text("Via task result")
        expect(details.locator(".task-value .digest")).to_have_text(results["load"])
        expect(edge).to_have_class(re.compile(r"\bactive\b"))
        # "Show it as a node" turns the toggle on and selects the value
        details.get_by_text("Show it as a node").click()
        expect(toggle).to_be_checked()
        expect(pg.locator(f'#lineage g.node.selected[data-id="{results["load"]}"]')
               ).to_have_count(1)
        expect(details.locator(".digest")).to_have_text(results["load"])
        assert "task_results=1" in pg.url

        # shown: every task result is a node, every event an edge, none folded
        assert node_ids(pg, "artifact") == set(flow.files.values()) | set(results.values())
        expect(pg.locator("#lineage path.edge.task-value")).to_have_count(0)
        expect(pg.locator("#lineage path.edge")).to_have_count(8)
        expect(pg.locator("#graph-count")).to_have_text(
            "3 executions, 2 artifacts, 3 task results")
        expect(pg.locator(f'#lineage g.node[data-id="{results["fit"]}"]')).to_have_class(
            re.compile(r"\btask-value\b"))

        # and off again
        toggle.uncheck()
        assert node_ids(pg, "artifact") == set(flow.files.values())
        expect(pg.locator("#lineage path.edge.task-value")).to_have_count(2)
        assert "task_results=1" not in pg.url

        # an address naming a task result draws it as a node
        pg.goto(f"/#/pipeline/churn-flow?node={results['scale']}")
        wait_graph(pg, "/pipeline/churn-flow")
        expect(pg.locator(f'#lineage g.node.selected[data-id="{results["scale"]}"]')
               ).to_have_count(1)
        expect(toggle).to_be_checked()

        # a pipeline without task results has no toggle and nothing folded
        pg.goto("/#/pipeline/plain")
        wait_graph(pg, "/pipeline/plain")
        expect(pg.get_by_label("show task results")).to_have_count(0)
        expect(pg.locator("#graph-count")).to_have_text("1 executions, 1 artifacts")


def active(page: Page) -> dict[str, str | None]:
    """What has the keyboard focus: its tag, class, role, name and data-id."""
    return page.evaluate("""() => {
      const el = document.activeElement;
      return { tag: el.tagName, cls: el.getAttribute("class"), role: el.getAttribute("role"),
               name: el.getAttribute("aria-label"), id: el.dataset?.id ?? null,
               inLineage: Boolean(el.closest("#lineage")) };
    }""")


def test_folded_task_results_are_reached_and_opened_by_keyboard(browser: Browser,
                                                                 flow: Flow) -> None:
    """A keyboard or screen-reader user reaches each "via task result" edge with the arrow keys
    (after the execution it starts from), hears what it is, and opens it with Enter or Space,
    as a click would."""
    runs, results = flow.runs, flow.results
    with watched_page(browser, flow.url) as pg:
        pg.goto("/#/pipeline/churn-flow")
        wait_graph(pg, "/pipeline/churn-flow")
        # Tab into the lineage graph (one Tab stop: its first node)
        for _ in range(40):
            pg.keyboard.press("Tab")
            if active(pg)["inLineage"] and (active(pg)["cls"] or "").startswith("node"):
                break
        assert active(pg)["id"] == flow.files["raw.csv"], "Tab never reached the lineage graph"
        # the arrow keys reach both folded edges, each right after the run that returned it
        seen: list[dict[str, str | None]] = []
        for _ in range(12):
            pg.keyboard.press("ArrowRight")
            seen.append(active(pg))
        edges = [(i, a) for i, a in enumerate(seen) if a["cls"] == "edge-hit"]
        names = [a["name"] or "" for _, a in edges]
        assert len(names) == 2
        assert names[0].startswith("via task result: load at lab → scale at lab (task-run/")
        assert names[1].startswith("via task result: scale at lab → fit at lab (task-run/")
        assert all(a["role"] == "button" for _, a in edges)
        for name in names:  # in the accessibility tree, as a button with that name
            expect(pg.get_by_role("button", name=name, exact=True)).to_have_count(1)
        # each comes right after the run that returned the value
        assert [seen[i - 1]["id"] for i, _ in edges] == [runs["load"], runs["scale"]]
        # Home goes back to the first node; walk to the load -> scale edge and press Enter
        pg.keyboard.press("Home")
        for _ in range(edges[0][0] + 1):
            pg.keyboard.press("ArrowRight")
        assert active(pg)["name"] == names[0]
        pg.keyboard.press("Enter")
        details = pg.locator("#details")
        expect(details.locator("h3")).to_have_text("Via task result")
        expect(details.locator(".task-value .digest")).to_have_text(results["load"])
        edge = pg.locator(f'#lineage path.edge.task-value[data-from="{runs["load"]}"]')
        expect(edge).to_have_class(re.compile(r"\bactive\b"))
        assert active(pg)["name"] == names[0]  # the focus stays on the edge
        # Space on the next one opens it
        pg.keyboard.press("ArrowRight")
        pg.keyboard.press("ArrowRight")
        assert active(pg)["name"] == names[1]
        pg.keyboard.press(" ")
        expect(details.locator(".task-value .digest")).to_have_text(results["scale"])
        # the graph is still one Tab stop: Tab leaves it, Shift+Tab comes back to the edge
        pg.keyboard.press("Tab")
        assert not active(pg)["inLineage"]
        pg.keyboard.press("Shift+Tab")
        assert active(pg)["name"] == names[1]
        # the details' own links are reachable too: "Show it as a node" by keyboard
        link = details.get_by_role("link", name="Show it as a node")
        link.focus()
        pg.keyboard.press("Enter")
        expect(pg.locator(f'#lineage g.node.selected[data-id="{results["scale"]}"]')
               ).to_have_count(1)

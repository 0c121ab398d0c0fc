"""The web UI in headless Chromium against a real server over a store populated by a real
two-site run (see scenario.py): what the page shows is checked against the store."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import Browser, Page, expect

from cmf_core.model import EnergyRecord, Execution, ExecutionStatus, Pipeline, Stage
from cmf_core.store import ExecutionFilter, open_store
from tests.ui.conftest import UiServer, cmf_serve, watched_page
from tests.ui.scenario import Scenario

Shots = Callable[[Page, str], Path]


def g4(x: float) -> str:
    """How the page prints numbers (Python's .4g, as ``cmf carbon`` does)."""
    return f"{x:.4g}"


def wait_view(page: Page, prefix: str) -> None:
    page.wait_for_selector(f'#view[data-ready^="{prefix}"]:not([aria-busy])')


def labels_of(page: Page, graph: str) -> list[str]:
    """The (full) first line of every node of a graph."""
    return page.locator(f"{graph} g.node").evaluate_all("(ns) => ns.map((n) => n.dataset.label)")


def node(node_id: str) -> str:
    return f'#lineage g.node[data-id="{node_id}"]'


def test_pipelines_list_shows_sites_runs_and_the_stores_totals(
        page: Page, ui_server: UiServer, scenario: Scenario, shots: Shots) -> None:
    store = ui_server.store
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto("/")
    wait_view(page, "/pipelines")
    # one pipelines request carries each run count and latest run (it was two per pipeline)
    assert not [u for u in asked if "/api/v1/executions" in u], asked
    records = store.energy()
    total_co2 = math.fsum(r.co2e_kg for r in records)
    total_kwh = math.fsum(r.energy_kwh for r in records)
    assert len(records) == 8  # every execution of both sites was measured
    for sel, value in (("#total-co2", total_co2), ("#total-kwh", total_kwh)):
        el = page.locator(sel)
        assert el.inner_text() == g4(value)
        assert float(el.get_attribute("data-value") or "nan") == value
    rows = page.locator("#pipelines tbody tr")
    expect(rows).to_have_count(2)
    for name in ("churn", "churn-hpo"):
        row = page.locator(f'#pipelines tr[data-pipeline="{name}"]')
        execs = store.list_executions(ExecutionFilter(pipeline=name))
        ids = {e.id for e in execs}
        mine = [r for r in records if r.execution_id in ids]
        cells = row.locator("td")
        assert cells.nth(3).inner_text() == str(len(execs))
        assert cells.nth(5).inner_text() == execs[-1].status.value
        assert float(cells.nth(7).locator(".num").get_attribute("data-value") or "nan") == \
            math.fsum(r.co2e_kg for r in mine)
        assert cells.nth(6).inner_text() == g4(math.fsum(r.energy_kwh for r in mine))
        ran_at = cells.nth(2).locator(".chip").all_inner_texts()
        assert sorted(ran_at) == sorted({e.site for e in execs})
    shots(page, "pipelines")


def test_pipeline_page_draws_the_lineage_graph_and_the_stage_dag(
        page: Page, ui_server: UiServer, scenario: Scenario, shots: Shots) -> None:
    store = ui_server.store
    execs = store.list_executions(ExecutionFilter(pipeline="churn"))
    events = store.events(execution_ids=[e.id for e in execs])
    page.goto("/#/pipeline/churn")
    wait_view(page, "/pipeline/churn")
    page.wait_for_selector("#lineage g.node")
    expect(page.locator('#lineage g.node[data-kind="execution"]')).to_have_count(len(execs))
    expect(page.locator('#lineage g.node[data-kind="artifact"]')).to_have_count(
        len({e.artifact_id for e in events}))
    expect(page.locator("#lineage path.edge")).to_have_count(len(events))
    labels = labels_of(page, "#lineage")
    assert sorted(x for x in labels if x in ("prepare", "train", "evaluate")) == [
        "evaluate", "prepare", "train", "train"]
    assert {"Telco-Customer-Churn.csv", "train.csv", "test.csv", "model-1.pkl", "model-2.pkl",
            "report.json", "eval", "evaluation"} <= set(labels)
    for name, digest in scenario.digests.items():  # artifacts are their digests
        assert page.locator(node(digest)).count() == 1, name
    # the federated chain: site hpc read lab's model and test set
    cross = page.locator("#lineage path.edge.cross-site")
    expect(cross).to_have_count(2)
    assert {cross.nth(i).get_attribute("data-from") for i in range(2)} == {
        scenario.digests["model-2.pkl"], scenario.digests["test.csv"]}
    assert {cross.nth(i).get_attribute("data-to") for i in range(2)} == {
        scenario.executions["evaluate"]}
    # the stage DAG: one node per stage, one edge per stage edge
    dag = page.locator("#stage-dag")
    assert sorted(labels_of(page, "#stage-dag")) == sorted(
        s.name for s in store.list_stages("churn"))
    expect(dag.locator("path.edge")).to_have_count(len(store.stage_edges("churn")))
    shots(page, "pipeline")


def test_clicking_nodes_shows_digests_params_metrics_and_energy(
        page: Page, ui_server: UiServer, scenario: Scenario, shots: Shots) -> None:
    store = ui_server.store
    page.goto("/#/pipeline/churn")
    page.wait_for_selector("#lineage g.node")
    details = page.locator("#details")
    model = scenario.digests["model-2.pkl"]
    page.click(node(model))
    expect(details.locator("h3")).to_contain_text("model-2.pkl")
    expect(details.locator(".digest")).to_have_text(model)
    expect(details).to_contain_text("Produced by")
    expect(details.locator("ul.links").first).to_contain_text("train at lab")
    expect(details.locator("ul.links").nth(1)).to_contain_text("evaluate at hpc")
    assert sorted(details.locator("table.grid td:first-child").all_inner_texts()) == [
        "hpc", "lab"]  # where the bytes live
    expect(page.locator(node(model))).to_have_class(re.compile(r"\bselected\b"))
    assert f"node={model}" in page.url.replace("%3A", ":")

    train = scenario.executions["train-2"]
    page.click(node(train))
    expect(details.locator(".digest")).to_have_text(train)
    params = details.locator("table.params")
    expect(params).to_contain_text("balanced")
    assert params.locator("th").all_inner_texts() == ["C", "class_weight", "model"]
    energy = store.energy([train])[0]
    expect(details.locator(".energy-kwh")).to_have_text(g4(energy.energy_kwh))
    expect(details.locator(".energy-co2")).to_have_text(g4(energy.co2e_kg))
    assert float(details.locator(".energy-kwh").get_attribute("data-value") or "nan") == \
        energy.energy_kwh
    expect(details).to_contain_text(f"PUE{energy.details['pue']}")
    metrics = {m.name: m.value for m in store.metrics([train]) if m.step is None}
    shown = dict(zip(details.locator("table.metrics th").all_inner_texts(),
                     details.locator("table.metrics td").all_inner_texts(), strict=True))
    assert shown == {k: g4(v) for k, v in metrics.items()}
    # an input link selects that node
    details.get_by_role("link", name=re.compile(r"^train\.csv")).click()
    expect(details.locator(".digest")).to_have_text(scenario.digests["train.csv"])
    page.click(node(train))
    # the screenshot in docs/ui.md shows parameters, metrics and energy: the details panel
    # (as tall as the graph) scrolled to its parameters
    details.locator("h4", has_text=re.compile("^Parameters$", re.I)).evaluate(
        """(el) => { const d = el.closest('.details');
          d.scrollTop += el.getBoundingClientRect().top - d.getBoundingClientRect().top - 8; }""")
    expect(details.locator(".energy-kwh")).to_be_in_viewport()
    shots(page, "node-details")

    # the keyboard: one Tab stop per graph (the selected node), arrows move, Enter selects,
    # and Tab leaves the graph
    stop = page.locator('#lineage g.node[tabindex="0"]')
    expect(stop).to_have_count(1)
    expect(stop).to_have_attribute("data-id", train)
    stop.focus()
    page.keyboard.press("Home")
    first = page.locator("#lineage g.node").first.get_attribute("data-id")
    assert page.evaluate("document.activeElement.dataset.id") == first
    page.keyboard.press("ArrowRight")
    second = page.locator("#lineage g.node").nth(1).get_attribute("data-id")
    assert page.evaluate("document.activeElement.dataset.id") == second
    page.keyboard.press("Enter")
    expect(page.locator(node(second or ""))).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('#lineage g.node') === null")


def test_site_filter_zoom_and_pan(page: Page, scenario: Scenario) -> None:
    page.goto("/#/pipeline/churn")
    page.wait_for_selector("#lineage g.node")
    evaluate = node(scenario.executions["evaluate"])
    report = '#lineage g.node[data-label="report.json"]'
    expect(page.locator(evaluate)).to_have_count(1)
    page.uncheck('input[name="site"][value="hpc"]')
    expect(page.locator(evaluate)).to_have_count(0)
    expect(page.locator(report)).to_have_count(0)
    expect(page.locator("#lineage path.edge.cross-site")).to_have_count(0)
    expect(page.locator(node(scenario.digests["model-2.pkl"]))).to_have_count(1)
    assert "sites=lab" in page.url
    page.check('input[name="site"][value="hpc"]')
    expect(page.locator(evaluate)).to_have_count(1)
    expect(page.locator("#lineage path.edge.cross-site")).to_have_count(2)

    viewport = page.locator("#lineage g.viewport")

    def transform() -> tuple[float, float, float]:
        found = re.fullmatch(r"translate\((.+),(.+)\) scale\((.+)\)",
                             viewport.get_attribute("transform") or "")
        assert found, viewport.get_attribute("transform")
        tx, ty, k = map(float, found.groups())
        return tx, ty, k

    tx, ty, k = transform()
    box = page.locator("#lineage svg").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 40, box["y"] + 40)  # an empty corner: background, not a node
    page.mouse.wheel(0, -300)
    page.wait_for_function("(k) => !document.querySelector('#lineage g.viewport')"
                           ".getAttribute('transform').endsWith(`scale(${k})`)", arg=k)
    tx2, ty2, k2 = transform()
    assert k2 > k
    page.mouse.down()
    page.mouse.move(box["x"] + 160, box["y"] + 100, steps=6)
    page.mouse.up()
    tx3, ty3, k3 = transform()
    assert (round(tx3 - tx2), round(ty3 - ty2), k3) == (120, 60, k2)
    page.get_by_role("button", name="Fit").click()
    assert transform() == (tx, ty, k)
    # a drag is not a click: nothing got selected
    expect(page.locator("#lineage g.node.selected")).to_have_count(0)


def test_upstream_pipelines_join_the_graph(page: Page, scenario: Scenario, shots: Shots) -> None:
    page.goto("/#/pipeline/churn-hpo")
    page.wait_for_selector("#lineage g.node")
    prepare = node(scenario.executions["prepare"])
    expect(page.locator(prepare)).to_have_count(0)
    page.check('input[name="upstream"]')
    wait_view(page, "/pipeline/churn-hpo?upstream=1")
    page.wait_for_selector(prepare)
    expect(page.locator(prepare)).to_have_class(re.compile(r"\bforeign\b"))
    expect(page.locator(prepare)).to_have_attribute("data-label", "churn/prepare")
    expect(page.locator(node(scenario.digests["Telco-Customer-Churn.csv"]))).to_have_count(1)
    page.click(node(scenario.digests["train.csv"]))
    expect(page.locator("#details ul.links").first).to_contain_text("prepare at lab")
    shots(page, "upstream")


def test_compare_table_shows_both_runs_side_by_side(
        page: Page, ui_server: UiServer, scenario: Scenario, shots: Shots) -> None:
    store = ui_server.store
    ids = [scenario.executions["train-1"], scenario.executions["train-2"]]
    page.goto("/#/pipeline/churn")
    page.wait_for_selector("#executions tbody tr")
    for eid in ids:
        page.check(f'#executions tr[data-id="{eid}"] input[type="checkbox"]')
    expect(page.locator("#compare")).to_have_text("Compare selected (2)")
    page.click("#compare")
    wait_view(page, "/compare")
    table = page.locator("#compare-table")
    heads = table.locator("thead th[data-id]")
    assert [heads.nth(i).get_attribute("data-id") for i in range(2)] == ids

    def row(label: str) -> list[str]:
        r = table.locator("tbody tr").filter(has=page.locator(f'th:text-is("{label}")'))
        return r.locator("td").all_inner_texts()

    runs = [store.get_execution(i) for i in ids]
    assert row("C") == ["1", "0.1"]
    assert row("class_weight") == [r.params["class_weight"] for r in runs if r]
    assert row("model") == ["logreg", "logreg"]
    for name in ("accuracy", "f1"):
        values = [next(m.value for m in store.metrics([i]) if m.name == name) for i in ids]
        assert row(name) == [g4(v) for v in values]
    assert row("Energy (kWh)") == [g4(store.energy([i])[0].energy_kwh) for i in ids]
    differs = table.locator("tbody tr.differs th").all_inner_texts()
    assert "C" in differs and "model" not in differs
    shots(page, "compare")


def test_carbon_dashboard_equals_the_store(
        page: Page, ui_server: UiServer, shots: Shots) -> None:
    store = ui_server.store
    records = store.energy()
    site_of = {e.id: e.site for e in store.list_executions()}
    page.goto("/#/carbon?by=site")
    wait_view(page, "/carbon?by=site")
    total = page.locator("#carbon-co2")
    assert total.inner_text() == g4(math.fsum(r.co2e_kg for r in records))
    assert float(total.get_attribute("data-value") or "nan") == math.fsum(
        r.co2e_kg for r in records)
    assert float(page.locator("#carbon-kwh").get_attribute("data-value") or "nan") == \
        math.fsum(r.energy_kwh for r in records)
    for site in ("lab", "hpc"):
        mine = [r for r in records if site_of[r.execution_id] == site]
        row = page.locator(f'#carbon-groups tr[data-key="{site}"]')
        assert row.locator("td.co2").inner_text() == g4(math.fsum(r.co2e_kg for r in mine))
        assert row.locator("td.kwh").inner_text() == g4(math.fsum(r.energy_kwh for r in mine))
        # the inputs behind the numbers: PUE and grid intensity of that site's records
        assert row.locator("td.pue").inner_text() == ", ".join(
            f"{p:g}" for p in sorted({r.details["pue"] for r in mine}))
        assert row.locator("td.intensity").inner_text() == ", ".join(
            f"{i:g}" for i in sorted({r.details["intensity_g_per_kwh"] for r in mine}))
    inputs = page.locator("#carbon-inputs")
    expect(inputs).to_contain_text("1.2, 1.4")
    expect(inputs).to_contain_text("56, 380.9")
    expect(inputs).to_contain_text("DE, FR")
    expect(page.locator("svg.vbars .bar-col")).to_have_count(
        len({page.evaluate("(t) => new Date(t * 1000).toISOString().slice(0, 10)",
                           e.started_at) for e in store.list_executions()}))
    shots(page, "carbon")
    page.get_by_role("tab", name="by stage").click()
    wait_view(page, "/carbon?by=stage")
    keys = page.locator("#carbon-groups tbody tr").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.key)")
    assert sorted(keys) == sorted({f"{e.pipeline}/{e.stage}" for e in store.list_executions()})
    page.select_option('select[name="site"]', "hpc")
    wait_view(page, "/carbon?by=stage&site=hpc")
    hpc = [r for r in records if site_of[r.execution_id] == "hpc"]
    assert page.locator("#carbon-co2").inner_text() == g4(math.fsum(r.co2e_kg for r in hpc))
    # from the first to the last day of the runs, both included: every record
    days = sorted({page.evaluate("(t) => new Date(t * 1000).toISOString().slice(0, 10)",
                                 e.started_at) for e in store.list_executions()})
    page.goto(f"/#/carbon?since={days[0]}&until={days[-1]}")
    wait_view(page, f"/carbon?since={days[0]}")
    assert float(page.locator("#carbon-co2").get_attribute("data-value") or "nan") == \
        math.fsum(r.co2e_kg for r in records)
    expect(page.locator('input[name="until"]')).to_have_value(days[-1])


def test_recommendations_show_seeds_and_the_tasks_they_came_from(
        page: Page, ui_server: UiServer, scenario: Scenario, shots: Shots) -> None:
    from cmf_core.recommend import from_store, recommend, shipped
    from cmf_core.recommend.recommender import SCORE_SCALE, standing

    lab_task = scenario.task_ids["telco-churn-lab"]
    page.goto("/#/recommend")
    wait_view(page, "/recommend")
    for name, task_id in scenario.task_ids.items():  # the tasks recorded in the store
        row = page.locator(f'#tasks tr[data-task="{task_id}"]')
        expect(row.locator("td").first).to_have_text(name)
        expect(row.locator("td").last).to_have_text("this store")
    page.select_option("#task", lab_task)
    page.fill('input[name="k"]', "3")
    page.get_by_role("button", name="Recommend").click()
    wait_view(page, "/recommend?task=")
    page.wait_for_selector("#seeds")
    local = from_store(ui_server.store)
    kb = local.merge(shipped())
    expected = recommend(kb.tasks[lab_task], k=3, knowledge=kb.without(task_ids=[lab_task]))
    assert expected.neighbours  # the other site's task is similar enough
    expect(page.locator("#rec-message")).to_have_text(expected.message)
    assert page.locator("#neighbours tbody tr").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.task)") == [n.task_id for n in expected.neighbours]
    expect(page.locator("#neighbours")).to_contain_text("telco-churn-hpc")
    expect(page.locator("#score-scale")).to_contain_text(SCORE_SCALE)
    seeds = page.locator("#seeds > li")
    expect(seeds).to_have_count(len(expected.seeds))
    for i, seed in enumerate(expected.seeds):
        item = seeds.nth(i)
        expect(item.locator("strong")).to_have_text(str(seed.config["model"]))
        expect(item.locator(".why")).to_have_text(f"Why: {seed.reason}")
        pred = ("" if seed.predicted is None else
                f", meta-model {seed.predicted:+.2f} {standing(seed.predicted)}")
        expect(item.locator(".score")).to_have_text(
            f"past tasks {seed.expected:+.2f} {standing(seed.expected)}{pred}")
        runs = item.locator("a.run").evaluate_all(
            "(links) => links.map((a) => a.getAttribute('href'))")
        assert runs == [f"#/compare?ids={e.run_id}" for e in seed.evidence
                        if e.task_id in local.tasks]  # runs of this store link to their record
        assert {e.task_name for e in seed.evidence} <= {n.name for n in expected.neighbours}
    # the evidence graph: the task, its similar tasks, the seeds
    graph = page.locator("#rec-graph")
    expect(graph.locator('g.node[data-kind="seed"]')).to_have_count(len(expected.seeds))
    expect(graph.locator('g.node[data-kind="task"]')).to_have_count(
        1 + len({e.task_id for s in expected.seeds for e in s.evidence}
                | {n.task_id for n in expected.neighbours}))
    shots(page, "recommend")
    local_runs = [e.run_id for sd in expected.seeds for e in sd.evidence
                  if e.task_id in local.tasks]
    if not local_runs:  # every seed's evidence is in the shipped knowledge base: no links
        expect(seeds.locator("a.run")).to_have_count(0)
        return
    # a seed's run recorded in this store opens in the comparison view
    seeds.locator("a.run").first.click()
    wait_view(page, f"/compare?ids={local_runs[0]}")
    expect(page.locator("#compare-table")).to_contain_text("trial")


def test_unknown_pipeline_and_runs_are_reported_on_the_page(
        browser: Browser, ui_server: UiServer, scenario: Scenario) -> None:
    with watched_page(browser, ui_server.url, allow={400, 404}) as pg:
        pg.goto("/#/pipeline/no-such-pipeline")
        expect(pg.locator("#view .error")).to_contain_text(
            "no pipeline named 'no-such-pipeline'")
        pg.goto("/#/pipeline/100%")  # typed, not encoded
        wait_view(pg, "/pipeline/100%")
        expect(pg.locator("#view .error")).to_contain_text("no pipeline named '100%'")
        # runs not in the store are named; the others are still compared
        known = [scenario.executions["train-1"], scenario.executions["train-2"]]
        unknown = "01a225cc-caa7-735c-a239-000000000000"
        pg.goto(f"/#/compare?ids={known[0]},{unknown},{known[1]},nonsense")
        wait_view(pg, "/compare")
        expect(pg.locator("#compare-missing")).to_contain_text(unknown)
        expect(pg.locator("#compare-missing")).to_contain_text("'nonsense'")
        cols = pg.locator("#compare-table thead th[data-id]")
        assert cols.evaluate_all("(ths) => ths.map((t) => t.dataset.id)") == known


def test_an_empty_store_behind_a_token(browser: Browser, tmp_path: Path, shots: Shots) -> None:
    """A new site: nothing recorded yet, reads protected by a token the page asks for."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(url, site="lab").close()
    with cmf_serve(url, tmp_path, "--protect-reads", CMF_TOKEN="s3cret") as base, \
            watched_page(browser, base, allow={401}) as pg:
        pg.goto("/")
        form = pg.locator("#view form.error")
        expect(form).to_contain_text("needs the server's token")
        form.locator('input[name="token"]').fill("s3cret")
        form.get_by_role("button", name="Use token").click()
        wait_view(pg, "/pipelines")
        expect(pg.locator("#view .empty")).to_contain_text("No pipelines yet")
        expect(pg.locator("#server")).to_contain_text("site lab")
        pg.goto("/#/carbon")
        wait_view(pg, "/carbon")
        expect(pg.locator("#carbon-co2")).to_have_text("0")
        expect(pg.locator("#view")).to_contain_text("No executions match.")
        pg.goto("/#/recommend")
        wait_view(pg, "/recommend")
        expect(pg.locator("#tasks, #view .empty").first).to_be_visible()
        pg.goto("/#/compare")
        wait_view(pg, "/compare")
        expect(pg.locator("#view .empty")).to_contain_text("Pick runs")


def test_durations_round_once(page: Page) -> None:
    """dom.js ``duration`` in the browser: the minute and second parts come from one rounding
    (119.7 s used to print "1 min 60 s")."""
    page.goto("/")
    wait_view(page, "/pipelines")
    shown = page.evaluate("""async () => {
        const { duration } = await import("./dom.js");
        return [0.25, 59.96, 119.7, 3599.6, 7199.9, -1, null].map(duration);
    }""")
    none = "\u2013"  # an en dash: no duration
    assert shown == ["250 ms", "1 min 00 s", "2 min 00 s", "1 h 00 min", "2 h 00 min", none, none]


AWKWARD = ['<script>alert(1)</script> & "q" \'x\'', "Ünïcødé-模型-🚀", "a/b?c#d%e", "x" * 150]


def test_awkward_names_a_narrow_window_and_a_server_that_goes_away(
        browser: Browser, tmp_path: Path) -> None:
    """Names with HTML, quotes, non-ASCII, URL characters and no spaces are shown exactly and
    route; a phone-wide window does not scroll sideways (wide tables scroll in their panel);
    a pipeline without executions says so; a stopped server is named on the page."""
    url = f"sqlite:///{tmp_path / 'names.db'}"
    with open_store(url, site="lab") as store:
        execs = [Execution(pipeline=n, stage="st<b>1</b>", site="lab", params={"<i>p</i>": "&amp;"},
                           status=ExecutionStatus.COMPLETED, ended_at=time.time())
                 for n in AWKWARD]
        ok, failed = (Execution(pipeline="runs", stage="fit", site="lab", status=status,
                                params={"p_2": 2, "p_10": i}, ended_at=time.time(), error=err)
                      for i, (status, err) in enumerate([(ExecutionStatus.COMPLETED, None),
                                                         (ExecutionStatus.FAILED, "<b>boom</b>")]))
        store.put([*(Pipeline(n, "lab") for n in [*AWKWARD, "idle", "runs"]),
                   *(Stage(n, "st<b>1</b>", "lab") for n in AWKWARD), *execs,
                   Stage("runs", "fit", "lab"), ok, failed,
                   # a monitor that read nothing: its 0 kWh is no measurement
                   EnergyRecord(failed.id, "lab", 0.0, 0.0, {
                       "measured": False, "notes": ["monitor failed: no sensor could be read"]})])
    with cmf_serve(url, tmp_path) as base:
        with watched_page(browser, base) as pg:
            dialogs: list[str] = []
            pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            pg.goto("/")
            wait_view(pg, "/pipelines")
            for name in AWKWARD:
                link = pg.locator("#pipelines tbody tr td:first-child a").filter(
                    has_text=re.compile(f"^{re.escape(name)}$"))
                expect(link).to_have_count(1)
            expect(pg.locator("#view script, #view b, #view i")).to_have_count(0)
            # no energy recorded: a dash (not measured), not 0
            for name in ("runs", "idle"):
                cells = pg.locator(f'#pipelines tr[data-pipeline="{name}"] td')
                expect(cells.nth(6)).to_have_text("\u2013")
                expect(cells.nth(7).locator(".unmeasured")).to_have_text("\u2013")
            pg.locator("#pipelines a", has_text="a/b?c#d%e").click()
            wait_view(pg, "/pipeline/")
            expect(pg.locator("h1")).to_have_text("Pipelines / a/b?c#d%e")
            expect(pg.locator("#executions tbody tr")).to_have_count(1)
            expect(pg.locator("#executions td.params")).to_have_text("<i>p</i>=&amp;")
            pg.goto("/#/pipeline/idle")
            wait_view(pg, "/pipeline/idle")
            expect(pg.locator("#view .empty")).to_contain_text("No executions")
            expect(pg.locator(".card .unmeasured")).to_have_count(2)
            # the comparison: keys in natural order, a failed run's error
            pg.goto(f"/#/compare?ids={ok.id},{failed.id}")
            wait_view(pg, "/compare")
            heads = pg.locator("#compare-table tr.param th").all_inner_texts()
            assert [x.rstrip(" ≠") for x in heads] == ["p_2", "p_10"]
            error_row = pg.locator("#compare-table tr.error-row")
            expect(error_row.locator("td")).to_have_text(["\u2013", "<b>boom</b>"])
            expect(error_row).to_have_class(re.compile(r"\bdiffers\b"))
            # neither run has a measurement (no record; a record saying nothing was measured)
            for label in ("Energy (kWh)", "Emissions (kgCO2e)"):
                energy_row = pg.locator("#compare-table tr").filter(
                    has=pg.get_by_role("rowheader", name=label, exact=True))
                expect(energy_row.locator("td")).to_have_text(["\u2013", "\u2013"])
            # and in a run's row and details
            pg.goto("/#/pipeline/runs")
            wait_view(pg, "/pipeline/runs")
            # its stage: no measurement, said so (it read "0 kWh": a record said nothing was)
            expect(pg.locator('#stage-dag g.node[data-id="stage:fit"]')).to_contain_text(
                "energy not measured")
            row = pg.locator(f'#executions tr[data-id="{failed.id}"]')
            expect(row.locator("td.params")).to_have_text("p_2=2, p_10=1")
            row.locator("td.name a").click()
            expect(pg.locator("#details table.params th")).to_have_text(["p_2", "p_10"])
            expect(pg.locator("#details .energy-unmeasured")).to_have_text("not measured")
            expect(pg.locator("#details ul.notes")).to_have_text(
                "monitor failed: no sensor could be read")
            expect(pg.locator("#details .energy-kwh")).to_have_count(0)
            assert not dialogs

            pg.set_viewport_size({"width": 390, "height": 844})
            for hash_ in ("#/pipelines", "#/pipeline/" + quote(AWKWARD[3]), "#/carbon"):
                pg.goto("/" + hash_)
                wait_view(pg, hash_[1:9])
                sideways = pg.evaluate("document.documentElement.scrollWidth - innerWidth")
                assert sideways <= 0, f"{hash_} scrolls {sideways} px sideways at 390 px"
                for a in pg.locator("header nav a").all():
                    box = a.bounding_box()
                    assert box and box["x"] + box["width"] <= 390, a.inner_text()
        # a page left open while the server stops
        context = browser.new_context(base_url=base)
        pg = context.new_page()
        pg.goto("/")
        wait_view(pg, "/pipelines")
    try:
        pg.click('header nav a[data-nav="carbon"]')
        expect(pg.locator("#view .error")).to_contain_text(
            f"The server at {base} does not answer")
    finally:
        context.close()


def test_an_execution_links_to_its_run_in_the_orchestrator(browser: Browser,
                                                           tmp_path: Path) -> None:
    """``cmf.run_url`` (recorded by an adapter that knew the orchestrator's UI address) is a
    link in the run's details and ``run_url`` in the API; a value that is no http(s) URL
    (``javascript:``, recorded by anyone who can post an OpenLineage event) is never a link."""
    import httpx

    url = f"sqlite:///{tmp_path / 'links.db'}"
    airflow_url = ("https://airflow.example.org/dags/etl/runs/manual__2025-01-01T00%3A00%3A00"
                   "%2B00%3A00/tasks/fit/mapped/2?try_number=1")
    runs = {
        "airflow": Execution(pipeline="linked", stage="fit", site="lab", properties={
            "airflow": {"dag_id": "etl", "task_id": "fit"}, "cmf.run_url": airflow_url}),
        "hostile": Execution(pipeline="linked", stage="fit", site="lab", properties={
            "prefect.route": "watcher", "cmf.run_url": "javascript:alert(document.domain)"}),
        "none": Execution(pipeline="linked", stage="fit", site="lab"),
    }
    with open_store(url, site="lab") as store:
        store.put([Pipeline("linked", "lab"), Stage("linked", "fit", "lab"), *runs.values()])
    with cmf_serve(url, tmp_path) as base:
        api = {k: httpx.get(f"{base}/api/v1/executions/{e.id}", timeout=10).json()["run_url"]
               for k, e in runs.items()}
        assert api == {"airflow": airflow_url, "hostile": None, "none": None}
        with watched_page(browser, base) as pg:
            dialogs: list[str] = []
            pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            pg.goto("/#/pipeline/linked")
            wait_view(pg, "/pipeline/linked")
            details = pg.locator("#details")
            pg.locator(f'#executions tr[data-id="{runs["airflow"].id}"] td.name a').click()
            expect(details.locator(".digest")).to_have_text(runs["airflow"].id)
            link = details.get_by_role("link", name="Open this run in Airflow")
            expect(link).to_have_attribute("href", airflow_url)
            expect(link).to_have_attribute("target", "_blank")
            expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b"))
            for key in ("hostile", "none"):
                pg.locator(f'#executions tr[data-id="{runs[key].id}"] td.name a').click()
                expect(details.locator(".digest")).to_have_text(runs[key].id)
                expect(details.get_by_role("rowheader", name="Orchestrator")).to_have_count(0)
                expect(details.locator('a[href^="javascript"]')).to_have_count(0)
            # the raw property is still shown, as text only
            pg.locator(f'#executions tr[data-id="{runs["hostile"].id}"] td.name a').click()
            expect(details.locator(".digest")).to_have_text(runs["hostile"].id)
            expect(details).to_contain_text("javascript:alert(document.domain)")
            expect(details.locator('a[href^="javascript"]')).to_have_count(0)
            # and the page's own link helper refuses it too, whatever the server says
            refused = pg.evaluate("""async () => {
                const { webLink } = await import("./dom.js");
                return ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x",
                        "/relative", "", null].map((u) => webLink(u) === null);
            }""")
            assert refused == [True] * 6
            assert not dialogs

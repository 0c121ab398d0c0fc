"""The pipeline page of a big pipeline (a hyperparameter sweep: one stage run 300 times, each run
reading the same dataset and writing its own model and metrics, beside a chain of stages):
the executions table is drawn a page at a time and the lineage graph is summarised (the runs
of each stage as one node), each saying how much is not drawn. A real store built through the
bulk path (``benchmarks/ui_big_pipeline.py``), a real ``cmf serve`` process and Chromium."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, expect

from benchmarks.ui_big_pipeline import build
from tests.ui.conftest import cmf_serve, watched_page


def test_a_sweep_of_300_runs_is_paged_and_summarised(browser: Browser, tmp_path: Path) -> None:
    counts = build(tmp_path / "cmf.db", stages=6, sweep=300, executions=400)
    assert (counts["executions"], counts["stages"]) == (400, 6)
    with cmf_serve(f"sqlite:///{tmp_path / 'cmf.db'}", tmp_path) as url, \
            watched_page(browser, url) as page:
        page.goto(url + "/#/pipeline/sweep")
        page.wait_for_selector('#view[data-ready^="/pipeline/sweep"]:not([aria-busy])')
        page.wait_for_selector("#lineage g.node")
        # the table: the latest 100 rows, and says how many are not shown
        rows = page.locator("#executions tbody tr")
        expect(rows).to_have_count(100)
        expect(page.locator("#executions-count")).to_have_text(
            "Showing the latest 100 of 400 executions (300 not shown).")
        page.get_by_role("button", name="Show 100 more").click()
        expect(rows).to_have_count(200)
        # the graph: 400 executions and their artifacts are far more than FOLD_NODES; each
        # stage's runs are one node, the sweep's models and metrics one node each
        total = 400 + counts["artifacts"]
        summary = page.locator("#graph-summary")
        expect(summary).to_contain_text(f"{total:,} nodes are too many to read")
        expect(summary).to_contain_text("the runs of 5 stages are each drawn as one node")
        nodes = page.locator("#lineage g.node")
        assert nodes.count() < 30, nodes.count()
        train = page.locator('#lineage g.node[data-id="group:sweep/train"]')
        expect(train).to_contain_text("300 runs (folded)")
        expect(page.locator('#lineage g.node[data-id="group:sweep/train:Model"]')).to_contain_text(
            "Model \u00d7 300")
        # the one dataset every run read stays a node of its own
        expect(page.locator('#lineage g.node[data-label="train.parquet"]')).to_have_count(1)
        expect(page.locator("#graph-count")).to_have_text(
            f"400 executions, {counts['artifacts']} artifacts")
        # a group's details list its runs; picking one draws that stage run by run
        train.focus()
        page.keyboard.press("Enter")
        details = page.locator("#details")
        expect(details.locator("h3")).to_have_text("Stage sweep/train: 300 runs")
        details.locator("ul.links a").first.click()
        expect(page.locator('#lineage g.node[data-kind="execution"][data-label="train"]')
               ).to_have_count(300)
        expect(page.locator("#lineage g.node.selected")).to_have_attribute("data-label", "train")
        expect(summary).to_contain_text("the runs of 4 stages")
        expect(page).to_have_url(re.compile(r"node=[0-9a-f-]{36}$"))


def test_a_small_pipeline_is_drawn_whole(browser: Browser, tmp_path: Path) -> None:
    build(tmp_path / "cmf.db", stages=3, sweep=20, executions=30)
    with cmf_serve(f"sqlite:///{tmp_path / 'cmf.db'}", tmp_path) as url, \
            watched_page(browser, url) as page:
        page.goto(url + "/#/pipeline/sweep")
        page.wait_for_selector('#view[data-ready^="/pipeline/sweep"]:not([aria-busy])')
        expect(page.locator("#lineage g.node[data-kind=execution]")).to_have_count(30)
        expect(page.locator("#graph-summary")).to_be_hidden()
        expect(page.locator("#executions tbody tr")).to_have_count(30)
        expect(page.locator("#more-executions")).to_be_hidden()

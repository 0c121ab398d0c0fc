"""A lost execution (its task's process killed outright, as the out-of-memory killer does) is
shown as "running (lost)" wherever the page shows an execution's status; one whose process
still runs, or that was recorded on another host, stays "running". Real processes, a real
store, a real ``cmf serve`` process and Chromium."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect

from cmf_core.model import Execution, Pipeline, Stage
from cmf_core.process import PROPERTY, host_name, this_process
from cmf_core.store import open_store
from tests.support.processes import start_execution
from tests.ui.conftest import cmf_serve, watched_page

Shots = Callable[[Page, str], Path]
LOST = "running (lost)"


def wait_view(page: Page, prefix: str) -> None:
    page.wait_for_selector(f'#view[data-ready^="{prefix}"]:not([aria-busy])')


def expect_lost(badge: Locator, pid: int) -> None:
    expect(badge).to_have_text(LOST)
    expect(badge).to_have_class(re.compile(r"\bstatus-lost\b"))
    title = badge.get_attribute("title") or ""
    assert f"host {host_name()} (pid {pid})" in title and "`cmf reap`" in title, title


def expect_running(badge: Locator) -> None:
    expect(badge).to_have_text("running")
    expect(badge).not_to_have_class(re.compile(r"\bstatus-lost\b"))


def test_a_killed_task_shows_as_running_lost(browser: Browser, tmp_path: Path,
                                             shots: Shots) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    here = this_process()  # alive while the page is checked
    earlier = time.time() - 60
    with open_store(url, site="hpc") as store:
        live = Execution(pipeline="oom", stage="serve", site="hpc", started_at=earlier,
                         properties={PROPERTY: here.to_dict()})
        remote = Execution(pipeline="oom", stage="remote", site="hpc", started_at=earlier + 1,
                           properties={PROPERTY: replace(here, host="another-host.example",
                                                         pid=1).to_dict()})
        steady = Execution(pipeline="steady", stage="serve", site="hpc",
                           properties={PROPERTY: here.to_dict()})
        store.put([Pipeline("oom", "hpc"), Pipeline("steady", "hpc"),
                   *(Stage(e.pipeline, e.stage, "hpc") for e in (live, remote, steady)),
                   live, remote, steady])
    child = start_execution(url, pipeline="oom", stage="train")  # the latest run of oom
    child.kill()
    killed, pid = child.execution_id, child.proc.pid

    with cmf_serve(url, tmp_path) as base, watched_page(browser, base) as pg:
        # the pipelines list: the last run's status
        pg.goto("/")
        wait_view(pg, "/pipelines")
        expect_lost(pg.locator('#pipelines tr[data-pipeline="oom"] .badge'), pid)
        expect_running(pg.locator('#pipelines tr[data-pipeline="steady"] .badge'))

        # the pipeline's executions table and lineage graph
        pg.goto("/#/pipeline/oom")
        wait_view(pg, "/pipeline/oom")
        rows = pg.locator("#executions tbody tr")
        expect(rows).to_have_count(3)
        expect_lost(pg.locator(f'#executions tr[data-id="{killed}"] .badge'), pid)
        for eid in (live.id, remote.id):
            expect_running(pg.locator(f'#executions tr[data-id="{eid}"] .badge'))
        pg.wait_for_selector("#lineage g.node")
        expect(pg.locator(f'#lineage g.node[data-id="{killed}"]')).to_have_class(
            re.compile(r"\blost\b"))
        expect(pg.locator(f'#lineage g.node[data-id="{killed}"] title')).to_contain_text(
            f"(pid {pid})")
        expect(pg.locator(f'#lineage g.node[data-id="{live.id}"]')).not_to_have_class(
            re.compile(r"\blost\b"))

        # the details header, for the lost run and the live one
        details = pg.locator("#details")
        pg.click(f'#executions tr[data-id="{killed}"] a')
        expect(details.locator(".digest")).to_have_text(killed)
        expect_lost(details.locator("h3 .badge"), pid)
        pg.click(f'#executions tr[data-id="{live.id}"] a')
        expect(details.locator(".digest")).to_have_text(live.id)
        expect_running(details.locator("h3 .badge"))
        shots(pg, "lost")

        # the run comparison: the status row differs
        pg.goto(f"/#/compare?ids={killed},{live.id}")
        wait_view(pg, "/compare")
        status_row = pg.locator("#compare-table tbody tr").filter(
            has=pg.locator('th:text-is("Status")'))
        expect(status_row).to_have_class(re.compile(r"\bdiffers\b"))
        cells = status_row.locator("td .badge")
        expect_lost(cells.nth(0), pid)
        expect_running(cells.nth(1))

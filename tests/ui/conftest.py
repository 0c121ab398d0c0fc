"""Fixtures of the web UI tests: a real two-site run merged into one store (built once per
session, see ``scenario.py``), a real ``cmf serve`` process over it on a free loopback port,
and headless Chromium (Debian's ``chromium`` package) driven by Playwright.

Screenshots go to a session tmp folder (printed at the end of the run); with
``UI_SCREENSHOTS=<folder>`` in the environment they are also copied there
(``UI_SCREENSHOTS=docs/img`` refreshes the ones in the docs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from cmf_core.store import Store
from tests.support.postgres import free_port
from tests.ui.scenario import ROOT, Scenario, build

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 1000}


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The example run at sites lab and hpc, merged into the lab store (about 10 s)."""
    root = tmp_path_factory.mktemp("ui-run")
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("CMF_"):
                mp.delenv(key)
        mp.setenv("CMF_HOME", str(root / "home"))
        return build(root)


@pytest.fixture(scope="session")
def ui_store(scenario: Scenario) -> Iterator[Store]:
    store = scenario.open()
    yield store
    store.close()


@dataclass
class UiServer:
    url: str
    store: Store  # the same store file, opened by the tests


# `cmf serve` as the CLI runs it; its own Typer app in case the `cmf` app does not list it yet
SERVE = ("import typer\nfrom cmf_core.cli import serve_cmds\napp = typer.Typer()\n"
         "serve_cmds.register(app)\napp()\n")


def _serve_command() -> list[str]:
    import typer.main

    from cmf_core.cli import app

    if "serve" in typer.main.get_command(app).commands:  # type: ignore[attr-defined]
        return [sys.executable, "-m", "cmf_core", "serve"]
    return [sys.executable, "-c", SERVE]


@contextlib.contextmanager
def cmf_serve(store_url: str, folder: Path, *args: str, **env_extra: str) -> Iterator[str]:
    """Run ``cmf serve --store store_url`` (site lab) on a free loopback port until the block
    ends; yields its URL. ``args`` are more options, ``env_extra`` more environment."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env.update(CMF_HOME=str(folder / "serve-home"), CMF_SITE="lab", PYTHONPATH=str(ROOT),
               **env_extra)
    log_path = folder / f"serve-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*_serve_command(), "--port", str(port), "--store", store_url,
                                 *args], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"cmf serve did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="session")
def ui_server(ui_store: Store, scenario: Scenario) -> Iterator[UiServer]:
    """A real ``cmf serve --store <merged store>`` process on 127.0.0.1 and a free port."""
    with cmf_serve(scenario.store_url, scenario.root) as url:
        yield UiServer(url, ui_store)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium from the system package (never a downloaded browser).

    One per test module, not per session: while Playwright's sync API is open its asyncio loop
    counts as running in the main thread, where a later test's ``asyncio.run`` (Airflow's
    dag.test runs triggers with it) then raises and Prefect's ``Block.save`` returns an
    unawaited coroutine instead of saving (pytest-xdist runs other files after these)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"Chromium not found at {CHROMIUM}: apt-get install chromium "
                           "(make test does)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Watch:
    """What a page did that a test should fail on: console errors, page errors, requests
    that left the server (the UI must work offline), failed API calls."""

    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    allow: set[int] = field(default_factory=set)  # HTTP statuses a test expects


@contextlib.contextmanager
def watched_page(browser: Browser, url: str, allow: Iterable[int] = ()) -> Iterator[Page]:
    """A fresh browser context on ``url``; fails the test if the page logged an error, got an
    HTTP error (other than a status in ``allow``), or asked anything of another host (the
    UI must work offline)."""
    watch = Watch(allow=set(allow))
    context = browser.new_context(viewport=VIEWPORT, base_url=url)
    here = urlsplit(url).netloc

    def gate(route: Any) -> None:
        if urlsplit(route.request.url).netloc == here:
            route.continue_()
        else:
            watch.foreign.append(route.request.url)
            route.abort()

    context.route("**/*", gate)
    pg = context.new_page()
    def console(m: Any) -> None:
        allowed = any(f"status of {code} " in m.text for code in watch.allow)
        if m.type == "error" and not allowed:
            watch.errors.append(f"console: {m.text}")

    pg.on("console", console)
    pg.on("pageerror", lambda e: watch.errors.append(f"page error: {e}"))
    pg.on("response", lambda r: watch.errors.append(f"HTTP {r.status} {r.url}")
          if r.status >= 400 and r.status not in watch.allow else None)
    pg.set_default_timeout(15_000)
    try:
        yield pg
    finally:
        context.close()
    assert not watch.foreign, f"the page reached out of the server: {watch.foreign}"
    assert not watch.errors, f"the page logged errors: {watch.errors}"


@pytest.fixture
def page(browser: Browser, ui_server: UiServer) -> Iterator[Page]:
    with watched_page(browser, ui_server.url) as pg:
        yield pg


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Page, str], Path]]:
    """``shots(page, "pipeline")`` saves a full-page PNG as ui-pipeline.png."""
    folder = tmp_path_factory.mktemp("ui-screenshots")
    extra = os.environ.get("UI_SCREENSHOTS")
    target = (ROOT / extra) if extra and not Path(extra).is_absolute() else (
        Path(extra) if extra else None)

    def take(pg: Page, name: str) -> Path:
        path = folder / f"ui-{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        if target is not None:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.name)
        return path

    yield take
    print(f"\nUI screenshots: {folder}" + (f" (copied to {target})" if target else ""))

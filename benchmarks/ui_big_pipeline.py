"""A big pipeline for the web UI: the pipeline page of a hyperparameter sweep, in a browser.

Builds (``build``) a store through the bulk path (``Store.put`` of model records): pipeline
``sweep`` of ``--stages`` stages (default 60): ``prepare`` writes one dataset, ``train`` runs
``--sweep`` times (default 1,000), each reading that dataset and writing its own model and
metrics, and a chain of ``stage02``..``stageNN`` stages share the other executions (up to
``--executions``, default 2,000), each writing 3 artifacts: about 5,000 artifacts. Each
execution has 3 parameters, 2 metrics and an energy record.

    .venv/bin/python benchmarks/ui_big_pipeline.py build /tmp/bg/cmf.db

``measure`` serves it with ``cmf serve`` and opens ``#/pipeline/sweep`` in headless Chromium
(Debian's ``chromium``, Playwright), then prints what the page drew and how long it took:
data-ready, the rendered rows and nodes, a few interactions timed with ``performance.now()``
in the page, and ``performance.memory``.

    .venv/bin/python benchmarks/ui_big_pipeline.py measure /tmp/bg/cmf.db
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cmf_core.identity import remote_digest  # noqa: E402
from cmf_core.model import (  # noqa: E402
    Artifact,
    EnergyRecord,
    Event,
    Execution,
    Metric,
    Pipeline,
    Stage,
)
from cmf_core.store import open_store  # noqa: E402

SITE = "lab"
NS = uuid.UUID("3c1f8a52-41b7-4d55-9a0e-0d5b1b3f6a21")


def _art(uri: str, type: str, t: float) -> Artifact:
    return Artifact(id=remote_digest(uri, "1"), type=type, name=uri.rsplit("/", 1)[-1], uri=uri,
                    site=SITE, created_at=t)


def _energy(ex_id: str, t: float, rng: random.Random) -> EnergyRecord:
    kwh = rng.uniform(0.001, 0.05)
    return EnergyRecord(ex_id, SITE, kwh * 1.2, kwh * 1.2 * 0.05, {
        "components": {"cpu": {"kwh": kwh, "method": "model"}}, "it_kwh": kwh,
        "duration_s": 60.0, "started_at": t, "pue": 1.2, "intensity_g_per_kwh": 50.0,
        "intensity_source": "static", "region": "FR", "notes": []})


def build(path: Path, stages: int, sweep: int, executions: int, pipeline: str = "sweep",
          start: float = 1_780_000_000.0) -> dict:
    """The store at ``path`` (``sqlite:///``), returned counts; see the module's docstring."""
    rng = random.Random(5)
    names = ["prepare", "train", *(f"stage{i:02d}" for i in range(2, stages))]
    records: list = [Pipeline(pipeline, SITE, created_at=start),
                     *(Stage(pipeline, s, SITE, created_at=start) for s in names)]
    counts = {"executions": 0, "artifacts": 0, "events": 0}
    t = start

    def run(stage: str, ins: list[Artifact], outs: list[Artifact], params: dict) -> None:
        nonlocal t
        t += 10
        ex_id = str(uuid.uuid5(NS, f"{pipeline}/{stage}/{counts['executions']}"))
        records.extend(outs)
        records.append(Execution(pipeline=pipeline, stage=stage, site=SITE, id=ex_id,
                                 started_at=t, params=params).ended(ended_at=t + 60))
        records.extend(Event(ex_id, a.id, "INPUT") for a in ins)
        records.extend(Event(ex_id, a.id, "OUTPUT") for a in outs)
        records.extend(Metric(ex_id, m, rng.random(), None, t + 50) for m in ("auc", "loss"))
        records.append(_energy(ex_id, t, rng))
        counts["executions"] += 1
        counts["artifacts"] += len(outs)
        counts["events"] += len(ins) + len(outs)

    data = _art(f"s3://lake/{pipeline}/train.parquet", "Dataset", t)
    raw = _art("s3://lake/raw/customers.csv", "Dataset", t)
    records.append(raw)
    counts["artifacts"] += 1
    run("prepare", [raw], [data], {"seed": 1})
    for i in range(sweep):
        run("train", [data], [_art(f"s3://models/{pipeline}/run{i}/model.pkl", "Model", t),
                              _art(f"s3://models/{pipeline}/run{i}/metrics.json", "Metrics", t)],
            {"lr": rng.choice([0.3, 0.1, 0.03, 0.01]), "max_depth": rng.randint(2, 12),
             "trial": i})
    rest = executions - counts["executions"]
    chain = names[2:]
    prev = {s: data for s in chain}
    for k in range(rest):
        stage = chain[k % len(chain)]
        before = chain[chain.index(stage) - 1] if chain.index(stage) else None
        ins = [prev[before] if before else data]
        outs = [_art(f"s3://lake/{pipeline}/{stage}/r{k}/part{j}.parquet", "Dataset", t)
                for j in range(3)]
        run(stage, ins, outs, {"window": k % 7, "round": k // len(chain), "part": 3})
        prev[stage] = outs[0]
    with open_store(f"sqlite:///{path}", site=SITE) as store:
        for i in range(0, len(records), 50_000):
            store.put(records[i:i + 50_000])
    counts["stages"] = len(names)
    return counts


MEASURE_JS = """async () => {
  const t0 = performance.now();
  const svg = document.querySelector('#lineage svg');
  const view = document.querySelector('#lineage svg g.viewport');
  const times = {};
  const tick = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  let a = performance.now();
  for (let i = 0; i < 10; i++) document.querySelector('[aria-label="Zoom in"]').click();
  await tick();
  times.zoom_in_10_ms = performance.now() - a;
  a = performance.now();
  document.querySelector('button[title="Fit to view"]').click();
  await tick();
  times.fit_ms = performance.now() - a;
  a = performance.now();
  const r = svg.getBoundingClientRect();
  for (let i = 0; i < 20; i++) {
    svg.dispatchEvent(new WheelEvent('wheel', {deltaY: -100, clientX: r.left + r.width / 2,
      clientY: r.top + r.height / 2, bubbles: true, cancelable: true}));
  }
  await tick();
  times.wheel_20_ms = performance.now() - a;
  return {times, transform: view.getAttribute('transform')};
}"""


def measure(path: Path, pipeline: str = "sweep") -> dict:
    import os

    from playwright.sync_api import sync_playwright

    from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, cmf_serve

    out: dict = {}
    folder = path.parent
    os.environ.setdefault("CMF_HOME", str(folder / "home"))
    with cmf_serve(f"sqlite:///{path}", folder) as url, sync_playwright() as pw:
        import httpx

        t = time.perf_counter()
        body = httpx.get(f"{url}/api/v1/graph", params={"pipeline": pipeline}, timeout=120)
        out["api_graph_s"] = round(time.perf_counter() - t, 2)
        out["api_graph_mb"] = round(len(body.content) / 1e6, 2)
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = b.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(240_000)
        t = time.perf_counter()
        page.goto(f"{url}/#/pipeline/{pipeline}")
        page.wait_for_selector('#view[data-ready^="/pipeline/"]:not([aria-busy])')
        out["data_ready_s"] = round(time.perf_counter() - t, 2)
        page.wait_for_function("document.querySelectorAll('#lineage g.node').length > 0 || "
                               "document.querySelector('#lineage .graph-summary')")
        out["drawn_s"] = round(time.perf_counter() - t, 2)
        out["rows"] = page.locator("#executions tbody tr").count()
        out["lineage_nodes"] = page.locator("#lineage g.node").count()
        out["lineage_edges"] = page.locator("#lineage path.edge").count()
        out["stage_nodes"] = page.locator("#stage-dag g.node").count()
        out["dom_elements"] = page.evaluate("document.getElementsByTagName('*').length")
        out["graph_count"] = page.locator("#graph-count").text_content()
        notes = page.locator("#view p.note")
        out["notes"] = [notes.nth(i).text_content() for i in range(notes.count())]
        out["transform"] = page.evaluate(
            "document.querySelector('#lineage svg g.viewport').getAttribute('transform')")
        print(json.dumps(out), flush=True)
        out.update(page.evaluate(MEASURE_JS))
        t = time.perf_counter()
        node = page.locator("#lineage g.node").last
        node.focus()  # a click may miss: the node may be out of the view
        page.keyboard.press("Enter")
        page.wait_for_selector("#details:not([hidden]) h3")
        out["click_to_details_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        page.locator("#stage-dag g.node").first.focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#details:not([hidden]) h3:text('Stage')")
        out["stage_click_s"] = round(time.perf_counter() - t, 2)
        out["memory"] = page.evaluate(
            "performance.memory ? {used_mb: performance.memory.usedJSHeapSize / 1e6, "
            "total_mb: performance.memory.totalJSHeapSize / 1e6} : null")
        page.screenshot(path=str(folder / "ui-big-pipeline.png"), full_page=False)
        b.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("build")
    p.add_argument("path", type=Path)
    p.add_argument("--stages", type=int, default=60)
    p.add_argument("--sweep", type=int, default=1000)
    p.add_argument("--executions", type=int, default=2000)
    m = sub.add_parser("measure")
    m.add_argument("path", type=Path)
    args = ap.parse_args()
    if args.cmd == "build":
        t = time.perf_counter()
        counts = build(args.path, args.stages, args.sweep, args.executions)
        counts["seconds"] = round(time.perf_counter() - t, 1)
        print(json.dumps(counts))
    else:
        print(json.dumps(measure(args.path), indent=1))


if __name__ == "__main__":
    main()

"""The web UI's requests against ``cmf serve`` on a big store (see big_store.py): median of
``--repeat`` wall times per page, and the server's RSS (current and peak) after each.

    .venv/bin/python benchmarks/big_store_serve.py /tmp/bigstore/cmf.db /tmp/bigstore/info.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlencode


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def get(base: str, path: str, params: dict | list | None = None) -> dict:
    url = f"{base}/api/v1/{path}" + (f"?{urlencode(params, doseq=True)}" if params else "")
    with urllib.request.urlopen(url, timeout=600) as r:
        return json.loads(r.read())


def every(base: str, path: str, params: dict) -> list:
    """What app.js ``all()`` does: every page of 1,000."""
    items, offset = [], 0
    while True:
        page = get(base, path, {**params, "limit": 1000, "offset": offset})
        items += page["items"]
        if page.get("next_offset") is None:
            return items
        offset = page["next_offset"]


def pages(base: str, info: dict) -> list[tuple[str, object]]:
    big = "nightly-retrain"
    stepped = info["stepped_executions"]
    compare = stepped[-4:]

    def compare_page() -> int:
        for i in compare:
            get(base, f"executions/{i}")
        return len(every(base, "metrics", {"execution_id": compare}))

    def carbon_page() -> int:
        """What app.js viewCarbon requests: one roll-up with the groups by day and the store's
        sites (a server without ``also``: the three roll-ups the page made before)."""
        first = get(base, "carbon", {"group_by": "stage", "also": "day", "store_sites": "true"})
        if "also" not in first:
            get(base, "carbon", {"group_by": "day"})
            get(base, "carbon", {"group_by": "site"})
        return len(first["groups"])

    return [
        ("pipelines summary (home)", lambda: len(every(base, "pipelines", {"summary": "true"}))),
        ("pipeline page: pipelines/<big>", lambda: get(base, f"pipelines/{quote(big)}")),
        ("pipeline page: pipelines/<small>", lambda: get(base, "pipelines/team3-pipe10")),
        ("pipeline page: graph?pipeline=<big>",
         lambda: len(get(base, "graph", {"pipeline": big})["executions"])),
        ("pipeline page: carbon?pipeline=<big>&group_by=stage",
         lambda: get(base, "carbon", {"pipeline": big, "group_by": "stage"})),
        ("executions?limit=100 (first page)", lambda: get(base, "executions", {"limit": 100})),
        ("executions?limit=100&offset=150000",
         lambda: get(base, "executions", {"limit": 100, "offset": 150000})),
        ("executions?pipeline=<big>&limit=100",
         lambda: get(base, "executions", {"pipeline": big, "limit": 100})),
        ("carbon page: every request of the page", carbon_page),
        ("carbon page: carbon group_by=stage", lambda: get(base, "carbon", {"group_by": "stage"})),
        ("carbon page: carbon group_by=day", lambda: get(base, "carbon", {"group_by": "day"})),
        ("carbon page: carbon group_by=site", lambda: get(base, "carbon", {"group_by": "site"})),
        ("run detail: executions/<id> + all metrics (10,000 steps)",
         lambda: (get(base, f"executions/{stepped[-1]}"),
                  len(every(base, f"executions/{stepped[-1]}/metrics", {})))[1]),
        ("compare page: 4 runs x 10,000 steps", compare_page),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path", type=Path)
    ap.add_argument("info", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--only")
    args = ap.parse_args()
    info = json.loads(args.info.read_text())
    port = args.port
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    env = {**os.environ, "CMF_STORE_URL": f"sqlite:///{args.path}"}
    server = subprocess.Popen([sys.executable, "-m", "cmf_core", "serve", "--host", "127.0.0.1",
                               "--port", str(port), "--no-access-log"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/api/v1/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        print(f"server up, RSS {rss_mb(server.pid)[0]:.0f} MB", flush=True)
        for label, fn in pages(base, info):
            if args.only and args.only not in label:
                continue
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            now, peak = rss_mb(server.pid)
            print(f"{label:58s} median {statistics.median(times):7.2f} s  "
                  f"({' '.join(f'{t:.2f}' for t in times)})  server RSS {now:.0f} MB "
                  f"(peak {peak:.0f})", flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

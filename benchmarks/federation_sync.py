"""Federation benchmark P5: full and incremental peer sync between two sites.

Site A holds N executions shaped as the ``Cmf`` API records them in benchmark P1 (two input
datasets, one output model, three params, three final metrics with their Metrics artifact) plus
one energy record each: 13 rows per execution. Site A runs a server (what ``cmf serve`` runs:
``create_app`` under uvicorn, in its own process); site B, an empty store, runs
``cmf_core.federation.peer.sync(A, direction="both")`` in this process. So two processes share
the machine's cores, as two sites would each use their own.

Measured: the full sync (pull everything, then a push that has nothing new for A), then, after
``--delta`` new executions at A, an incremental sync; bytes on the wire are counted as sent.
``--compress auto`` (the default, what ``sync`` does): no gzip, since A is on loopback; ``gzip``
forces it, as between two machines. ``--format 1`` forces the older bundle format (one JSON
object per record). Optionally ``--verify`` compares the two stores' canonical dumps.

Usage:
    python benchmarks/federation_sync.py [--n 100000] [--delta 100] [--page 50000]
        [--compress auto|gzip|none] [--format 1|2] [--verify] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from cmf_core.federation.export import DEFAULT_PAGE, canonical_lines
from cmf_core.federation.peer import sync
from cmf_core.identity import remote_digest, uuid7
from cmf_core.model import (
    Artifact,
    EnergyRecord,
    Event,
    Execution,
    Metric,
    Pipeline,
    Stage,
)
from cmf_core.store import open_store
from tests.support.postgres import free_port

SERVER = textwrap.dedent("""
    import sys
    import uvicorn
    from cmf_core.config import load_settings
    from cmf_core.server.app import create_app
    from cmf_core.store import open_store
    url, site, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    settings = load_settings(store_url=url, site=site, energy=False)
    with open_store(settings=settings) as store:
        uvicorn.run(create_app(store, settings), host="127.0.0.1", port=port,
                    log_level="warning")
""")


def records(site: str, start: int, n: int, t0: float = 1.7e9) -> list:
    """N executions as the Cmf API writes them (benchmark P1 shape) plus energy."""
    d1 = Artifact(remote_digest("s3://data/train.parquet", "v1"), "Dataset", "train.parquet",
                  "s3://data/train.parquet", site, created_at=t0)
    d2 = Artifact(remote_digest("s3://data/labels.parquet", "v1"), "Dataset", "labels.parquet",
                  "s3://data/labels.parquet", site, created_at=t0)
    out: list = [Pipeline("p5", site, t0), Stage("p5", "train", site, t0), d1, d2]
    for i in range(start, start + n):
        t = t0 + i
        ex = Execution("p5", "train", site, id=uuid7(), started_at=t,
                       params={"lr": 0.01 * (i % 10), "depth": i % 7, "model": "rf"})
        model = Artifact(remote_digest(f"s3://models/m{i}.pkl", "1"), "Model", f"m{i}.pkl",
                         f"s3://models/m{i}.pkl", site, created_at=t)
        values = {"auc": 0.8, "f1": 0.7, "loss": 0.3}
        body = json.dumps({"execution": ex.id, "name": "eval", "values": values},
                          sort_keys=True, separators=(",", ":"))
        metrics = Artifact("sha256:" + hashlib.sha256(body.encode()).hexdigest(), "Metrics",
                           "eval", f"cmf://metrics/{ex.id}/eval", site, created_at=t,
                           properties={"values": values})
        out += [model, metrics, Event(ex.id, d1.id, "INPUT"), Event(ex.id, d2.id, "INPUT"),
                Event(ex.id, model.id, "OUTPUT"), Event(ex.id, metrics.id, "OUTPUT"),
                *[Metric(ex.id, k, v, timestamp=t + 1) for k, v in values.items()],
                EnergyRecord(ex.id, site, 0.0021, 0.0009, {"cpu": {"method": "rapl"}}),
                ex.ended(ended_at=t + 1)]
    return out


def fill(url: str, site: str, start: int, n: int) -> int:
    with open_store(url, site=site) as s:
        for i in range(start, start + n, 5000):
            s.put(records(site, i, min(5000, start + n - i)))
        return s.max_seq()


def serve(url: str, site: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, "-c", SERVER, url, site, str(port)], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/api/v1/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by this process or by ``pid``."""
    import psutil

    t = psutil.Process(pid).cpu_times() if pid else psutil.Process().cpu_times()
    return t.user + t.system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--delta", type=int, default=100)
    ap.add_argument("--page", type=int, default=DEFAULT_PAGE, help="rows per kind in a page")
    ap.add_argument("--compress", choices=("auto", "gzip", "none"), default="auto")
    ap.add_argument("--no-gzip", action="store_const", const="none", dest="compress")
    ap.add_argument("--format", type=int, choices=(1, 2), default=None,
                    help="bundle format (default: the best both sides read, 2)")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the two stores (temp folder)")
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="cmf-p5-"))
    url_a, url_b = f"sqlite:///{d / 'a.db'}", f"sqlite:///{d / 'b.db'}"
    t = time.perf_counter()
    rows = fill(url_a, "site-a", 0, args.n)
    print(f"site A: {args.n} executions, {rows} rows in {time.perf_counter() - t:.1f} s",
          file=sys.stderr)
    proc, base = serve(url_a, "site-a", d / "server.log")
    gz = {"auto": None, "gzip": True, "none": False}[args.compress]
    if args.format is not None:
        import cmf_core.federation.peer as peer

        peer.FORMATS = tuple(f for f in peer.FORMATS if f <= args.format)
    result: dict = {"benchmark": "P5", "executions": args.n, "rows": rows,
                    "compress": args.compress, "format": args.format or 2,
                    "page_rows_per_kind": args.page, "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_avg_before": os.getloadavg()[0]}
    try:
        with open_store(url_b, site="site-b") as b:
            t, c0, s0 = time.perf_counter(), cpu_s(), cpu_s(proc.pid)
            full = sync(base, store=b, page_size=args.page, compress=gz)
            result["full_s"] = round(time.perf_counter() - t, 2)
            result["full_cpu_s_client_b"] = round(cpu_s() - c0, 2)
            result["full_cpu_s_server_a"] = round(cpu_s(proc.pid) - s0, 2)
            result["full_bytes"] = full.bytes
            result["full_pages"] = full.pulled.pages
            result["full_records"] = full.pulled.records
            assert full.pushed.records == 0, "nothing of A's should be echoed back"
            assert b.count_executions() == args.n
            fill(url_a, "site-a", args.n, args.delta)
            t, c0, s0 = time.perf_counter(), cpu_s(), cpu_s(proc.pid)
            inc = sync(base, store=b, page_size=args.page, compress=gz)
            result["incremental_s"] = round(time.perf_counter() - t, 2)
            result["incremental_cpu_s_client_b"] = round(cpu_s() - c0, 2)
            result["incremental_cpu_s_server_a"] = round(cpu_s(proc.pid) - s0, 2)
            result["incremental_bytes"] = inc.bytes
            result["incremental_records"] = inc.pulled.records
            result["incremental_share_of_full_bytes_pct"] = round(100 * inc.bytes / full.bytes,
                                                                   3)
            assert b.count_executions() == args.n + args.delta
            if args.verify:
                with open_store(url_a, site="site-a") as a:
                    result["identical"] = canonical_lines(a) == canonical_lines(b)
    finally:
        proc.terminate()
        proc.wait(30)
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
    result["load_avg_after"] = os.getloadavg()[0]
    result["client_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                         / 1024, 1)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

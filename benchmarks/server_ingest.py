"""Server benchmark P2: OpenLineage RunEvents ingested over HTTP by one ``cmf serve`` process.

The server is the real app (``create_app`` under uvicorn, as ``cmf serve`` runs it: one
process, httptools + uvloop, no access log) over a fresh SQLite store with the default
durability. Every event is acknowledged (201) only after the transaction holding it is
committed. Each request carries one Airflow-provider-like RunEvent (~1.3 KB; START with one
input, COMPLETE with an output; every run id unique), as the OpenLineage HTTP transport sends
them. After the run the server is stopped and the store is reopened to check that every
acknowledged event is in it.

Clients:
* ``httpx``: an asyncio ``httpx.AsyncClient`` with ``--concurrency`` connections (Python; it
  competes with the server for the same cores).
* ``wrk``: ``wrk`` with a Lua script generating unique events (C, much lighter), when
  installed (``apt-get install wrk``).

With ``--batch N`` each request is a JSON array of N events (the server's batch form; the
OpenLineage HTTP transports send one event per request), and ``--gzip`` (httpx) compresses
the bodies as openlineage-python's ``compression: gzip`` does.

Usage:
    python benchmarks/server_ingest.py [--client httpx|wrk] [--seconds 20] [--concurrency 64]
        [--batch 1] [--gzip] [--json out.json] [--server-cpus 0,1 --client-cpus 2,3]

``server_cpu_ms_per_event`` (the server process's CPU time per acknowledged event) is the
number that does not depend on what else runs on the machine; events/s and latency do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/2.20.0"
SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def facet(**fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": "https://example.org/facets/X.json", **fields}


def event(kind: str, run_id: str, i: int) -> dict[str, Any]:
    """One Airflow-provider-like RunEvent of task run ``i``."""
    parent = facet(run={"runId": "0190a8f4-54c8-7c8e-9a4b-7a43a1d2c3e4"},
                   job={"namespace": "airflow", "name": "etl"})
    src = {"namespace": "postgres://db:5432", "name": "shop.public.orders",
           "facets": {"schema": facet(fields=[{"name": "id", "type": "int"},
                                              {"name": "amount", "type": "numeric"}])}}
    out = {"namespace": "s3://lake", "name": f"orders/part-{i}.parquet",
           "facets": {"version": facet(datasetVersion=f"v{i}")}}
    second = (i // 2) % 60
    return {
        "eventType": kind, "eventTime": f"2024-05-01T12:{(i // 120) % 60:02d}:{second:02d}Z",
        "producer": PRODUCER, "schemaURL": SCHEMA,
        "run": {"runId": run_id, "facets": {"parent": parent}},
        "job": {"namespace": "airflow", "name": f"etl.task_{i % 50}",
                "facets": {"jobType": facet(processingType="BATCH", integration="AIRFLOW",
                                            jobType="TASK")}},
        "inputs": [src], "outputs": [out] if kind == "COMPLETE" else [],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# server -------------------------------------------------------------------------------------
def run_server(store_url: str, port: int) -> None:
    """The server process: exactly what ``cmf serve`` runs."""
    import uvicorn

    from cmf_core.config import load_settings
    from cmf_core.server.app import create_app
    from cmf_core.store import open_store

    settings = load_settings(store_url=store_url, site="bench", energy=False)
    with open_store(settings=settings) as store:
        uvicorn.run(create_app(store, settings), host="127.0.0.1", port=port,
                    log_level="warning", access_log=False, server_header=False)


def start_server(store_url: str, port: int, cpus: set[int] | None = None
                 ) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen([sys.executable, __file__, "--serve", store_url, "--port", str(port)],
                            env=env, preexec_fn=pin)
    deadline = time.monotonic() + 60
    import httpx

    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


# httpx client ---------------------------------------------------------------------------------
async def httpx_client(url: str, seconds: float, concurrency: int, batch: int,
                       compress: bool = False) -> dict[str, Any]:
    import gzip

    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    acked = 0
    counter = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal acked, counter
        pending: list[dict[str, Any]] = []
        while time.perf_counter() < stop_at:
            body: list[dict[str, Any]] = []
            while len(body) < batch:
                if not pending:
                    counter += 1
                    rid = str(uuid.uuid4())
                    pending = [event("START", rid, counter), event("COMPLETE", rid, counter)]
                body.append(pending.pop(0))
            payload = json.dumps(body[0] if batch == 1 else body).encode()
            headers = {"Content-Type": "application/json"}
            if compress:
                payload = gzip.compress(payload, compresslevel=3)  # as openlineage-python
                headers["Content-Encoding"] = "gzip"
            t0 = time.perf_counter()
            r = await client.post("/api/v1/lineage", content=payload, headers=headers)
            latencies.append(time.perf_counter() - t0)
            if r.status_code == 201:
                acked += len(body)
            else:
                errors.append(f"{r.status_code} {r.text[:200]}")

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    latencies.sort()
    return {"client": f"httpx {httpx.__version__} AsyncClient, {concurrency} connections, "
                      f"{batch} event(s) per request{', gzip' if compress else ''}",
            "requests": len(latencies), "events_acked": acked, "wall_s": wall,
            "events_per_s": acked / wall,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
            "mean_ms": 1000 * statistics.fmean(latencies), "errors": errors[:5],
            "error_count": len(errors)}


# wrk client -----------------------------------------------------------------------------------
_LUA = r"""
local counter = 0
local pending = nil
local thread_id = 0
local threads = {}
function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(os.time() + tid * 7919)
  acked = 0
  failed = 0
end
local function uuid4()
  local t = "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"
  return (string.gsub(t, "[xy]", function (c)
    local v = (c == "x") and math.random(0, 0xf) or math.random(8, 0xb)
    return string.format("%x", v)
  end))
end
local template = [[TEMPLATE]]
local function make(kind, rid, i)
  local outputs = "[]"
  if kind == "COMPLETE" then
    outputs = '[{"namespace":"s3://lake","name":"orders/part-' .. i .. '.parquet",' ..
      '"facets":{"version":{"_producer":"PRODUCER","_schemaURL":"https://example.org/f/X.json",' ..
      '"datasetVersion":"v' .. i .. '"}}}]'
  end
  local body = template:gsub("__KIND__", kind):gsub("__RUN__", rid)
  body = body:gsub("__TASK__", tostring(i % 50)):gsub("__OUTPUTS__", outputs)
  return body
end
local function next_event()
  local body
  if pending then
    body = pending
    pending = nil
  else
    counter = counter + 1
    local rid = uuid4()
    local i = tid * 10000000 + counter
    body = make("START", rid, i)
    pending = make("COMPLETE", rid, i)
  end
  return body
end
request = function()
  local body
  if BATCH == 1 then
    body = next_event()
  else
    local events = {}
    for k = 1, BATCH do events[k] = next_event() end
    body = "[" .. table.concat(events, ",") .. "]"
  end
  return wrk.format("POST", "/api/v1/lineage", {["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  if status == 201 then
    acked = acked + BATCH
  else
    if failed == 0 then io.stderr:write("first error: " .. status .. " " .. body .. "\n") end
    failed = failed + 1
  end
end
done = function(summary, latency, requests)
  local a, f = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("acked")
    f = f + t:get("failed")
  end
  io.write(string.format("RESULT %d %d %d %d %d %d\n", a, f, latency:percentile(50),
                         latency:percentile(99), summary.duration, summary.requests))
end
"""


def wrk_client(url: str, seconds: float, concurrency: int, batch: int = 1) -> dict[str, Any]:
    template = json.dumps(event("__KIND__", "__RUN__", 0))
    template = template.replace('"etl.task_0"', '"etl.task___TASK__"')
    template = template.replace('"outputs": []', '"outputs": __OUTPUTS__')
    script = Path(tempfile.mkdtemp()) / "ol.lua"
    script.write_text(f"local BATCH = {batch}\n"
                      + _LUA.replace("TEMPLATE", template).replace("PRODUCER", PRODUCER))
    threads = min(2, concurrency)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(concurrency), "-d",
                          f"{int(seconds)}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    acked, failed, p50_us, p99_us, duration_us, requests = (int(v) for v in line.split()[1:])
    version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[:2]
    return {"client": f"{' '.join(version) or 'wrk'} ({threads} threads, {concurrency} "
                      f"connections, Lua script, {batch} event(s) per request)",
            "requests": requests, "events_acked": acked, "wall_s": duration_us / 1e6,
            "events_per_s": acked / (duration_us / 1e6), "p50_ms": p50_us / 1000,
            "p99_ms": p99_us / 1000, "error_count": failed, "errors": []}


# main -----------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", metavar="STORE_URL", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--client", choices=["httpx", "wrk"], default="httpx")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1,
                    help="events per request (a JSON array when > 1)")
    ap.add_argument("--gzip", action="store_true",
                    help="gzip request bodies (httpx only; Content-Encoding: gzip)")
    ap.add_argument("--json", type=Path, help="write the result here")
    ap.add_argument("--server-cpus", help="pin the server to these CPUs, e.g. 0,1")
    ap.add_argument("--client-cpus", help="pin the client to these CPUs, e.g. 2,3")
    args = ap.parse_args()
    if args.serve:
        run_server(args.serve, args.port)
        return
    if args.client == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk); use --client httpx")
    work = Path(tempfile.mkdtemp(prefix="cmf-p2-"))
    store_url = f"sqlite:///{work / 'cmf.db'}"
    port = free_port()
    server_cpus = {int(c) for c in args.server_cpus.split(",")} if args.server_cpus else None
    server = start_server(store_url, port, server_cpus)
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    url = f"http://127.0.0.1:{port}"
    import psutil

    proc = psutil.Process(server.pid)
    try:
        cpu0 = proc.cpu_times()
        if args.client == "wrk":
            result = wrk_client(url, args.seconds, args.concurrency, args.batch)
        else:
            result = asyncio.run(httpx_client(url, args.seconds, args.concurrency, args.batch,
                                              args.gzip))
        cpu1 = proc.cpu_times()
        import httpx

        result["server_writer"] = httpx.get(f"{url}/api/v1/health").json()["writer"]
        used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        result["server_cpu_s"] = used
        result["server_cpu_ms_per_event"] = 1000 * used / max(1, result["events_acked"])
        result["server_cpu_share"] = used / result["wall_s"]
        result["load_avg_1m_after"] = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait(60)
    from cmf_core.store import open_store

    with open_store(store_url, site="bench") as store:
        stored = len(store.lineage_events())
    # every event of a request is acknowledged by its response: an event's latency is its
    # request's (p50/p99 are per request)
    result.update(stored_events=stored, durable_ok=stored >= result["events_acked"],
                  batch=args.batch, cores=os.cpu_count(), server_cpus=args.server_cpus,
                  client_cpus=args.client_cpus, python=sys.version.split()[0],
                  store="sqlite (durability normal: WAL, synchronous=NORMAL)")
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

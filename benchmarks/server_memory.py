"""Server benchmark: the memory (RSS) of one long-lived ``cmf serve`` as runs are recorded.

Starts ``cmf serve`` (the real CLI command, in a child process, on loopback, over a fresh
SQLite store in a temp dir), posts OpenLineage RunEvents in rounds (START + COMPLETE per run,
one event per request, as the OpenLineage HTTP transports send them) and reads the server's
RSS from ``/proc`` after each round, then again after the web UI's reads (health, pipelines,
a pipeline's graph, executions, an execution and its metrics, an artifact and its lineage,
Marquez lineage, raw events, carbon). Half the runs are what cmf's own integrations send
(``cmf_*`` facets: params, metrics, energy, site; a parent DAG/flow run; two inputs, one the
previous run's output, and two outputs with digests), half Airflow-provider-like events
(:func:`benchmarks.server_ingest.event`). Every run id, output and parent is new, so any
structure kept per run, per artifact or per parent grows with the store.

The server runs under a small wrapper (``--serve``) that installs two signal handlers before
calling ``cmf serve``: SIGUSR2 runs ``gc.collect()`` and glibc's ``malloc_trim(0)``: the RSS
after it tells memory still held by Python objects from free memory the allocator kept
(fragmentation); with ``--census``, SIGUSR1 writes a census of the live objects (counts by
type, and every container of 1,000+ items with what holds it), so a structure that grows
with the runs shows by name. ``--arena-max N`` sets ``MALLOC_ARENA_MAX``.

Usage:
    python benchmarks/server_memory.py [--runs-per-round 5000] [--rounds 10]
        [--concurrency 8] [--census] [--arena-max 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.server_ingest import event as provider_event  # noqa: E402
from benchmarks.server_ingest import free_port  # noqa: E402


# events ---------------------------------------------------------------------------------------
def cmf_events(i: int, parent_run: str) -> list[dict[str, Any]]:
    """START + COMPLETE of run ``i`` as cmf's integrations send them (``cmf_*`` facets)."""
    from cmf_core.model import Artifact, EnergyRecord, Event, EventType, Execution, Metric
    from cmf_core.model.execution import ExecutionStatus
    from cmf_core.openlineage.convert import ExecutionLineage, to_event_dicts

    t0 = 1_780_000_000.0 + i * 7
    ex = Execution(pipeline=f"train_{i % 20}", stage=f"step_{i % 7}", site="bench",
                   id=str(uuid.uuid4()), status=ExecutionStatus.COMPLETED, started_at=t0,
                   ended_at=t0 + 5, params={"lr": 0.001 * (i % 10), "epochs": i % 30,
                                            "model": f"resnet{18 + i % 4}", "seed": i})

    def art(kind: str, uri: str, key: str) -> Artifact:
        digest = "sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, key).hex * 2
        return Artifact(id=digest, type=kind, name=uri.rsplit("/", 1)[-1], uri=uri,
                        site="bench", created_at=t0)

    data = art("Dataset", "s3://lake/raw/orders.parquet", "raw")
    prev = art("Model", f"s3://lake/models/{i - 2}/model.pt", f"model-{i - 2}")
    model = art("Model", f"s3://lake/models/{i}/model.pt", f"model-{i}")
    report = art("Metrics", f"s3://lake/models/{i}/report.json", f"report-{i}")
    events = [Event(ex.id, a.id, EventType.INPUT) for a in (data, prev)]
    events += [Event(ex.id, a.id, EventType.OUTPUT) for a in (model, report)]
    metrics = [Metric(ex.id, "loss", 1.0 / (1 + i % 50), step=1, timestamp=t0 + 4),
               Metric(ex.id, "accuracy", 0.5 + (i % 50) / 100, step=1, timestamp=t0 + 4)]
    energy = EnergyRecord(ex.id, "bench", energy_kwh=0.001 * (1 + i % 9), co2e_kg=0.0004,
                          details={"methods": ["model"], "pue": 1.2, "region": "FR"})
    lineage = ExecutionLineage.from_records(ex, [data, prev, model, report], events, metrics,
                                            energy)
    return to_event_dicts(lineage, namespace="bench", parent_run_id=parent_run)


def run_events(i: int) -> list[bytes]:
    """The two request bodies of run ``i``."""
    if i % 2:
        run_id = str(uuid.uuid4())
        found = [provider_event(kind, run_id, i) for kind in ("START", "COMPLETE")]
    else:
        parent = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dag-run-{i // 10}"))
        found = cmf_events(i, parent)
    return [json.dumps(e, separators=(",", ":")).encode() for e in found]


# the server -----------------------------------------------------------------------------------
def census() -> dict[str, Any]:
    """Live objects by type (the most numerous), and every container of 1,000+ items with
    what holds it: an unbounded structure shows as a container that grows round by round."""
    import gc
    from collections import Counter

    gc.collect()
    objs = gc.get_objects()  # the modules among them are not touched: some import lazily
    types = Counter(type(o).__qualname__ for o in objs)
    big: list[tuple[int, Any]] = []
    seen: set[int] = set()

    def consider(o: Any) -> None:
        if id(o) in seen or not (type(o) in (dict, list, set, frozenset, tuple) or (
                hasattr(type(o), "__len__") and type(o).__module__ in ("collections", "weakref"))):
            return
        seen.add(id(o))
        try:
            n = len(o)
        except Exception:  # an odd object: not a container we want
            return
        if n >= 1000:
            big.append((n, o))

    for o in objs:
        consider(o)
        # containers of strings and numbers only are not tracked by the gc: found through
        # what refers to them (a dict of ids in an object's __dict__, say)
        for r in gc.get_referents(o):
            if not gc.is_tracked(r):
                consider(r)
    out = []
    for n, o in sorted(big, key=lambda x: -x[0])[:30]:
        holders = []
        for r in gc.get_referrers(o):
            if r is objs or r is big or type(r).__name__ == "frame":
                continue
            if isinstance(r, dict):
                keys = [k for k, v in r.items() if v is o][:1]
                holders.append(f"dict[{keys[0]!r}]" if keys else "dict")
            else:
                holders.append(type(r).__qualname__)
        sample = repr(next(iter(o), None))[:80] if not isinstance(o, dict) else \
            repr(next(iter(o.items()), None))[:80]
        out.append({"len": n, "type": type(o).__qualname__, "held_by": holders[:4],
                    "sample": sample})
    del objs
    return {"objects": sum(types.values()), "types": dict(types.most_common(25)),
            "containers": out, **native_memory()}


def native_memory() -> dict[str, float]:
    """What SQLite holds (its page caches, statements: ``sqlite3_memory_used``) and glibc's
    heap in use and free (``mallinfo2``), in MB: free heap the RSS still counts is the
    allocator's (fragmentation), not a leak."""
    import ctypes
    import ctypes.util

    out: dict[str, float] = {}
    try:
        import _sqlite3

        lib = ctypes.CDLL(_sqlite3.__file__)
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        out["sqlite_mb"] = round(lib.sqlite3_memory_used() / 2**20, 1)
    except (ImportError, OSError, AttributeError):
        pass

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        out["malloc_in_use_mb"] = round((info.uordblks + info.hblkhd) / 2**20, 1)
        out["malloc_free_mb"] = round(info.fordblks / 2**20, 1)
    except (OSError, AttributeError):
        pass
    return out


def serve(args: list[str], out_dir: Path | None) -> None:
    """``cmf serve args`` in this process, with the SIGUSR1 / SIGUSR2 handlers installed."""
    import ctypes
    import gc

    def dump(*_: Any) -> None:
        if out_dir is not None:
            n = len(list(out_dir.glob("census-*.json"))) + 1
            (out_dir / f"census-{n:03d}.json").write_text(json.dumps(census(), indent=1))
            (out_dir / "census.done").touch()

    def trim(*_: Any) -> None:
        gc.collect()
        with contextlib.suppress(OSError):  # not glibc
            ctypes.CDLL("libc.so.6").malloc_trim(0)

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, trim)
    from cmf_core.cli import app

    app(["serve", *args], prog_name="cmf")


def start_server(store: Path, port: int, census_dir: Path | None,
                 arena_max: int | None) -> subprocess.Popen[bytes]:
    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env["CMF_HOME"] = str(store.parent)
    env["CMF_ENERGY"] = "false"
    if arena_max:
        env["MALLOC_ARENA_MAX"] = str(arena_max)
    cmd = [sys.executable, __file__, "--serve", "--store", f"sqlite:///{store}",
           "--port", str(port), "--log-level", "warning"]
    if census_dir is not None:
        cmd += ["--census", str(census_dir)]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    deadline = time.monotonic() + 180  # a loaded machine
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError("cmf serve did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def rss_mb(pid: int) -> float:
    """The process's resident memory (VmRSS: anonymous memory, the heap, plus the pages of
    mapped files, shared libraries and SQLite's shared WAL index)."""
    return _status(pid)["VmRSS"]


def anon_mb(pid: int) -> float:
    """The anonymous part of the RSS (RssAnon): the heap, what Python and SQLite allocated."""
    return _status(pid)["RssAnon"]


def _status(pid: int) -> dict[str, float]:
    return {k: int(v.split()[0]) / 1024 for k, v in (
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        if v.strip().endswith("kB")}


# the client -----------------------------------------------------------------------------------
async def post_runs(url: str, first: int, count: int, concurrency: int) -> None:
    import httpx

    pending = iter(range(first, first + count))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in pending:
            for body in run_events(i):
                r = await client.post("/api/v1/lineage", content=body,
                                      headers={"Content-Type": "application/json"})
                if r.status_code != 201:
                    raise RuntimeError(f"run {i}: {r.status_code} {r.text[:300]}")

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


def ui_reads(url: str, last_run: int) -> int:
    """The web UI's reads (and the Marquez ones) over what is stored; their count."""
    import httpx

    with httpx.Client(base_url=url, timeout=120) as c:
        def get(path: str, **params: Any) -> Any:
            r = c.get(path, params=params)
            r.raise_for_status()
            return r.json()

        done = 0
        get("/api/v1/health")
        pipes = get("/api/v1/pipelines", limit=100)
        for p in [x["name"] for x in pipes["items"]][:3]:
            get(f"/api/v1/pipelines/{p}")
            get("/api/v1/graph", pipeline=p, upstream="true")
            done += 2
        execs = get("/api/v1/executions", limit=100)
        for e in execs["items"][:5]:
            get(f"/api/v1/executions/{e['id']}")
            get(f"/api/v1/executions/{e['id']}/metrics")
            get(f"/api/v1/executions/{e['id']}/events")
            done += 3
        arts = get("/api/v1/artifacts", limit=50)
        for a in arts["items"][:3]:
            get(f"/api/v1/artifacts/{a['id']}")
            get(f"/api/v1/artifacts/{a['id']}/lineage")
            done += 2
        get("/api/v1/lineage", nodeId="dataset:postgres://db:5432:shop.public.orders", depth=2)
        get("/api/v1/lineage", nodeId=f"dataset:s3://lake:orders/part-{last_run}.parquet")
        get("/api/v1/events/lineage", limit=100)
        get("/api/v1/carbon", group_by="pipeline")
        get("/api/v1/executions", limit=100, offset=max(0, last_run - 100))
        return done + 9


def signal_and_wait(proc: subprocess.Popen[bytes], sig: int, done: Path | None) -> None:
    if done is not None:
        done.unlink(missing_ok=True)
    os.kill(proc.pid, sig)
    deadline = time.monotonic() + 300
    while done is not None and not done.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)


def census_growth(out_dir: Path) -> list[str]:
    """How the server's containers of 1,000+ items and object counts changed from the first
    census to the last."""
    files = sorted(out_dir.glob("census-*.json"))
    if len(files) < 2:
        return []
    first, last = (json.loads(f.read_text()) for f in (files[0], files[-1]))
    lines = [f"objects {first['objects']} -> {last['objects']}"]
    lines += [f"{t}: {first['types'].get(t, 0)} -> {n}" for t, n in last["types"].items()][:12]
    lines += [f"{c['type']} len {c['len']} held by {c['held_by']}: {c['sample']}"
              for c in last["containers"][:15]]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs-per-round", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--census", action="store_true",
                    help="count the server's live objects and big containers after each round")
    ap.add_argument("--arena-max", type=int, default=None, help="MALLOC_ARENA_MAX of the server")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    # `timeout` or a kill: exit through the finally below, which stops the server (it outlived
    # a run stopped so, with its store folder)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cmf-serve-mem-") as tmp:
        out_dir = Path(tmp) / "census" if args.census else None
        if out_dir is not None:
            out_dir.mkdir()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(Path(tmp) / "cmf.db", port, out_dir, args.arena_max)
        rows: list[dict[str, Any]] = []
        try:
            start = rss_mb(proc.pid)
            print(f"server pid {proc.pid} up, RSS {start:.1f} MB", flush=True)
            for n in range(1, args.rounds + 1):
                t0 = time.monotonic()
                first = (n - 1) * args.runs_per_round
                asyncio.run(post_runs(url, first, args.runs_per_round, args.concurrency))
                posted = time.monotonic() - t0
                after_post = rss_mb(proc.pid)
                reads = ui_reads(url, first + args.runs_per_round - 1)
                after_reads = rss_mb(proc.pid)
                signal_and_wait(proc, signal.SIGUSR2, None)
                trimmed, trimmed_anon = rss_mb(proc.pid), anon_mb(proc.pid)
                row = {"round": n, "runs": n * args.runs_per_round, "post_s": round(posted, 1),
                       "rss_after_posts_mb": round(after_post, 1),
                       "rss_after_reads_mb": round(after_reads, 1),
                       "rss_after_trim_mb": round(trimmed, 1),
                       "anon_after_trim_mb": round(trimmed_anon, 1), "reads": reads}
                if out_dir is not None:
                    signal_and_wait(proc, signal.SIGUSR1, out_dir / "census.done")
                    found = json.loads(sorted(out_dir.glob("census-*.json"))[-1].read_text())
                    row.update({k: found[k] for k in ("objects", "sqlite_mb", "malloc_in_use_mb",
                                                      "malloc_free_mb") if k in found})
                    row["largest"] = [f"{c['type']}[{c['len']}] of {c['held_by'][:2]}"
                                      for c in found["containers"][:2]]
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            stop(proc)
        result: dict[str, Any] = {
            "start_rss_mb": round(start, 1), "rounds": rows,
            "wall_s": round(time.monotonic() - began), "args": {
                "runs_per_round": args.runs_per_round, "concurrency": args.concurrency,
                "arena_max": args.arena_max}}
        if out_dir is not None:
            result["census"] = census_growth(out_dir)
            print("census, first round -> last:", *result["census"], sep="\n  ")
        if len(rows) > 1:
            span = rows[-1]["runs"] - rows[0]["runs"]
            for key in ("rss_after_posts_mb", "rss_after_trim_mb"):
                per = (rows[-1][key] - rows[0][key]) * 1024 / span
                result[f"{key[:-3]}_kb_per_run"] = round(per, 2)
            print(f"growth from round 1 to {len(rows)}: "
                  f"{result['rss_after_posts_kb_per_run']} KB/run after posts, "
                  f"{result['rss_after_trim_kb_per_run']} KB/run after trim", flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        rest = sys.argv[2:]
        census_dir = None
        if "--census" in rest:
            k = rest.index("--census")
            census_dir = Path(rest[k + 1])
            del rest[k:k + 2]
        serve(rest, census_dir)
    else:
        main()

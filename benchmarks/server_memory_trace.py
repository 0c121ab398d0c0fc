"""Which source lines hold the memory a long-lived ``cmf serve`` gains per run (tracemalloc).

The server's app in this process (Starlette's TestClient, no sockets) over a fresh SQLite store;
WARMUP runs posted as ``server_memory.py`` posts them, a snapshot, RUNS more, a second snapshot,
and the difference by line (then the top four by traceback). Python allocations only: what
SQLite or the C allocator hold is not seen (``server_memory.py`` measures the RSS).

    .venv/bin/python benchmarks/server_memory_trace.py WARMUP RUNS   # e.g. 6000 3000
"""
import gc
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from starlette.testclient import TestClient

from benchmarks.server_memory import run_events
from cmf_core.config import load_settings
from cmf_core.server.app import create_app
from cmf_core.store import open_store

tmp = Path(tempfile.mkdtemp())
settings = load_settings(home=tmp, site="vm")
store = open_store(f"sqlite:///{tmp/'cmf.db'}", "vm")
app = create_app(store, settings)
N0, N1 = int(sys.argv[1]), int(sys.argv[2])
with TestClient(app) as c:
    def post(a, b):
        for i in range(a, b):
            for body in run_events(i):
                r = c.post("/api/v1/lineage", content=body,
                           headers={"content-type": "application/json"})
                assert r.status_code < 300, r.text
    post(0, N0)
    gc.collect()
    tracemalloc.start(8)
    s0 = tracemalloc.take_snapshot()
    post(N0, N0 + N1)
    time.sleep(2)
    gc.collect()
    s1 = tracemalloc.take_snapshot()
    flt = [tracemalloc.Filter(False, tracemalloc.__file__)]
    s0, s1 = s0.filter_traces(flt), s1.filter_traces(flt)
    stats = s1.compare_to(s0, "lineno")
    tot = sum(st.size_diff for st in stats)
    print(f"total diff {tot/1e6:.2f} MB over {N1} runs = {tot/N1:.0f} B/run")
    for st in stats[:15]:
        print(f"{st.size_diff/1e3:9.1f} KB {st.count_diff:7d}  {st.traceback[0]}")
    print("--- tracebacks of top 4")
    for st in s1.compare_to(s0, "traceback")[:4]:
        print(f"{st.size_diff/1e3:9.1f} KB")
        for fr in st.traceback.format()[-16:]:
            print("   ", fr)
store.close()
shutil.rmtree(tmp, ignore_errors=True)

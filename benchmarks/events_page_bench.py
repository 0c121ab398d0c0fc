"""``GET /api/v1/events/lineage`` page time against the number of stored raw events.

Stores ``--n`` raw OpenLineage events (distinct eventTimes in random arrival order, mixed UTC
offsets) in a fresh SQLite store, then times one 100-event page, newest first, and one
time-window page: with the indexed query (``SqlStore.lineage_events_by_time``) and with the
reference that reads every event (``Store.lineage_events_by_time``, what the server did
before migration 0004). Medians of ``--repeat``.

    .venv/bin/python benchmarks/events_page_bench.py --n 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cmf_core.model import LineageEvent  # noqa: E402
from cmf_core.openlineage.times import format_time  # noqa: E402
from cmf_core.store import Store, open_store  # noqa: E402

PLUS2 = dt.timezone(dt.timedelta(hours=2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    rng = random.Random(0)
    start = 1_780_000_000.0
    order = list(range(args.n))
    rng.shuffle(order)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'cmf.db'}", site="bench")
        events = []
        for i in order:
            t = format_time(start + i * 0.5)
            if i % 3 == 0:  # the instant written with another UTC offset
                t = dt.datetime.fromtimestamp(start + i * 0.5, PLUS2).isoformat()
            events.append(LineageEvent(id=f"{i:064x}", event_time=t, event_type="COMPLETE",
                                       body=f'{{"eventTime": "{t}", "pad": "{"x" * 400}"}}'))
        for k in range(0, len(events), 10_000):
            store.put(events[k:k + 10_000])
        window = {"after": start + args.n * 0.25, "before": start + args.n * 0.25 + 60}
        for name, kw in (("newest 100", {}), ("1-minute window", window)):
            fast, slow = (store.lineage_events_by_time(limit=100, **kw),
                          Store.lineage_events_by_time(store, limit=100, **kw))
            if [e.id for e in fast[0]] != [e.id for e in slow[0]] or fast[1] != slow[1]:
                raise SystemExit(f"{name}: the indexed page differs from the reference")
            for how, fn in (("indexed", store.lineage_events_by_time),
                            ("reads all", lambda **k: Store.lineage_events_by_time(store, **k))):
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    page, total = fn(limit=100, **kw)
                    times.append(time.perf_counter() - t0)
                print(f"{name:16s} {how:10s} median {statistics.median(times) * 1000:9.2f} ms "
                      f"(page {len(page)}, total {total})", flush=True)
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

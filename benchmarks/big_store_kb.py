"""Time reading the recommender's knowledge base from a big store (``from_store``, what
``cmf recommend --store`` and the web UI's recommend page read), and print digests of the
result, so that two trees can be shown to read the same knowledge base.

    .venv/bin/python benchmarks/big_store.py add-runs /tmp/bigstore/cmf.db --runs 20000
    cd /tmp && PYTHONPATH=<tree> python <tree>/benchmarks/big_store_kb.py /tmp/bigstore/cmf.db
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

from cmf_core.recommend import knowledge
from cmf_core.store import open_store


def main() -> None:
    store = open_store(f"sqlite:///{sys.argv[1]}", site="site-a")
    t0 = time.perf_counter()
    kb = knowledge.from_store(store)
    seconds = time.perf_counter() - t0
    content = json.dumps(knowledge.to_dict(kb), sort_keys=True).encode()
    order = repr([(t, [r.run_id for r in runs]) for t, runs in kb.runs.items()]).encode()
    print(f"from_store {seconds:.2f} s  tasks {len(kb)} runs {kb.n_runs}  "
          f"kb {hashlib.sha256(content).hexdigest()[:16]} "
          f"order {hashlib.sha256(order).hexdigest()[:16]}")


if __name__ == "__main__":
    main()

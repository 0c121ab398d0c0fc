"""Import speed of a cmflib-shaped ML-Metadata store (``cmf import --mlmd``), docs/mlmd.md.

Builds the store with the real ``ml-metadata`` and cmflib's own ``metadata_helper`` calls
(``tests/mlmd/mlmd_builders.py``), so it needs the mlmd environment:

    make env-mlmd && .venv-mlmd/bin/python benchmarks/mlmd_import.py --executions 1000

Store: one pipeline, 10 stages, ``--executions`` executions spread over them; each reads the
previous execution's dataset and writes a dataset, a model and a metrics artifact (3 params,
3 metric values). Timed in this process, ``--repeat`` times each (median): importing into a
new SQLite store, closing it, and importing the same MLMD store again (nothing new).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "mlmd")]

from ml_metadata.metadata_store import metadata_store  # noqa: E402
from mlmd_builders import CmflibWriter, sqlite_config  # noqa: E402

from cmf_core.mlmd.importer import import_mlmd  # noqa: E402
from cmf_core.store import open_store  # noqa: E402


def build(path: Path, executions: int, stages: int = 10) -> dict[str, int]:
    """The MLMD store described in the module docs; its record counts."""
    store = metadata_store.MetadataStore(sqlite_config(path))
    w = CmflibWriter(store, "bench", {"owner": "bench"})
    per_stage = max(1, executions // stages)
    for i in range(executions):
        if i % per_stage == 0:
            w.create_context(f"stage{i // per_stage}")
        w.create_execution(f"Step{i // per_stage}", {"seed": i, "lr": 0.01, "depth": 6},
                           f"['step.py', '{i}']")
        w.log_dataset(f"data/d{i}.csv", "input")
        w.log_dataset(f"data/d{i + 1}.csv", "output")
        w.log_model(f"models/m{i}.pkl", "output")
        w.log_execution_metrics("metrics", {"auc": 0.5 + i / (4 * executions), "loss": 0.3,
                                            "epochs": 10})
    return {"executions": len(store.get_executions()), "artifacts": len(store.get_artifacts()),
            "events": len(store.get_events_by_execution_ids(
                [e.id for e in store.get_executions()]))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--executions", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "mlmd.db"
        counts = build(source, args.executions)
        first, closed, again = [], [], []
        for r in range(args.repeat):
            target = Path(tmp) / f"cmf{r}.db"
            store = open_store(f"sqlite:///{target}")
            t0 = time.perf_counter()
            report = import_mlmd(store, source)
            t1 = time.perf_counter()
            store.close()
            t2 = time.perf_counter()
            store = open_store(f"sqlite:///{target}")
            t3 = time.perf_counter()
            repeat = import_mlmd(store, source)
            t4 = time.perf_counter()
            store.close()
            first.append(t1 - t0)
            closed.append(t2 - t0)
            again.append(t4 - t3)
            new = repeat.new
            assert not (any(new.values()) if isinstance(new, dict) else new), repeat.to_dict()
        print(json.dumps({"mlmd_store": counts, "cmf_counts": report.counts, "written": report.new,
                          "repeat": args.repeat,
                          "import_s_median": round(statistics.median(first), 3),
                          "import_and_close_s_median": round(statistics.median(closed), 3),
                          "import_again_s_median": round(statistics.median(again), 3),
                          "import_s_all": [round(x, 3) for x in first]}, indent=2))


if __name__ == "__main__":
    main()

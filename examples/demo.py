"""`make demo`: record a small pipeline into an embedded SQLite store and print its lineage.

(The full cross-site scenario replaces this as the orchestrator integrations land.)
"""

from __future__ import annotations

import csv
import random
import shutil
import subprocess
import sys
from pathlib import Path

from cmf_core import Cmf

OUT = Path("demo-output")


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    store = f"sqlite:///{(OUT / 'cmf.db').resolve()}"
    rng = random.Random(7)
    with Cmf(pipeline_name="demo-churn", store=store, site="laptop") as cmf:
        with cmf.create_execution("prepare", params={"rows": 200, "seed": 7}) as ex:
            raw = OUT / "raw.csv"
            with raw.open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["tenure", "charges", "churn"])
                for _ in range(200):
                    t = rng.randint(0, 72)
                    w.writerow([t, round(rng.uniform(20, 120), 2), int(t < 12)])
            ex.log_dataset(raw, "input")
            train = OUT / "train.csv"
            train.write_text(raw.read_text())
            ex.log_dataset(train, "output")
        with cmf.create_execution("train", params={"model": "threshold", "cut": 12}) as ex:
            ex.log_dataset(OUT / "train.csv", "input")
            model = OUT / "model.txt"
            model.write_text("churn if tenure < 12\n")
            ex.log_model(model, "output", model_framework="python")
            ex.log_execution_metrics("eval", {"accuracy": 1.0})
    print(f"Recorded into {store}\n")
    subprocess.run([sys.executable, "-m", "cmf_core", "lineage", "model.txt", "--store", store],
                   check=True)


if __name__ == "__main__":
    main()

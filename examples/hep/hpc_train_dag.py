"""Site ``hpc``: train the HEP tracking models with Airflow 3 (recorded by the cmf listener).

A plain Airflow DAG: the cmf plugin records every task try as a CMF execution with its inlets and
outlets (content digests), parameters, metrics and energy, with no tracking code here. Two cmf
pieces are used on purpose: ``CmfRecommendSeedOperator`` (seed configurations of the hit
classifier from similar past tasks) and the ``cmf_task``/``log_*`` helpers (metrics, the chosen
configuration and the task description, which make the run part of the recommender's knowledge).

Configuration (read when the DAG is parsed): ``HEP_DATA_DIR`` (this site's data folder, absolute;
default ``./hep-data/hpc``), ``HEP_EVENTS`` (training events, default 20), ``HEP_SEED`` (1).
``examples/`` must be importable (``PYTHONPATH``) for the ``hep`` package. Run it with
``examples/hep/scenario.py`` (which sets all this up) or copy it into your dags folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, dag, get_current_context
from cmf_airflow.decorators import cmf_task, log_params, log_task
from cmf_airflow.operators import CmfRecommendSeedOperator

DAG_ID = "hep-hpc-training"
DATA = Path(os.environ.get("HEP_DATA_DIR", "hep-data/hpc")).resolve()
EVENTS = int(os.environ.get("HEP_EVENTS", "20"))
SEED = int(os.environ.get("HEP_SEED", "1"))

FILES = {"hits": "hits.csv", "geo": "hits-geo.csv", "table": "hit-features.csv",
         "classifier": "hit-classifier.pkl", "kept": "hits-kept.csv",
         "refiner": "track-refiner.json"}
MODELS = {"classifier", "refiner"}
ASSET = {key: Asset(f"file://{DATA / name}",
                    extra={"cmf_type": "Model"} if key in MODELS else {})
         for key, name in FILES.items()}


def path(key: str) -> str:
    return str(DATA / FILES[key])


@dag(dag_id=DAG_ID, schedule=None, catchup=False, tags=["cmf", "hep"],
     params={"n_events": EVENTS, "seed": SEED},
     doc_md="HEP tracking: simulate, geometric filter, seeded classifier, track refiner.")
def hep_hpc_training() -> None:
    @cmf_task(outlets=[ASSET["hits"]])
    def simulate_hits(n_events: int = EVENTS, tracks_per_event: int = 15,
                      noise_fraction: float = 0.5, seed: int = SEED) -> dict[str, Any]:
        from hep import hepkit

        DATA.mkdir(parents=True, exist_ok=True)
        return hepkit.simulate(path("hits"), n_events=n_events, seed=seed,
                               tracks_per_event=tracks_per_event, noise_fraction=noise_fraction)

    @cmf_task(inlets=[ASSET["hits"]], outlets=[ASSET["geo"]])
    def geometric_filter() -> dict[str, float]:
        from hep import hepkit

        return hepkit.geometric_filter(path("hits"), path("geo"))

    @cmf_task(inlets=[ASSET["geo"]], outlets=[ASSET["table"]])
    def feature_table() -> dict[str, int]:
        from hep import hepkit

        return {"rows": hepkit.write_feature_table(path("geo"), path("table"))}

    recommend = CmfRecommendSeedOperator(
        task_id="recommend_seed", category="classification", dataset_path=path("table"),
        target="label", task_name="hep-hit-classification", k=3, inlets=[ASSET["table"]])

    @cmf_task(inlets=[ASSET["geo"]], outlets=[ASSET["classifier"]])
    def train_classifier(seed: int = SEED) -> dict[str, Any]:
        from hep import hepkit

        ti = get_current_context()["ti"]
        configs = ti.xcom_pull(task_ids="recommend_seed") or []
        info = hepkit.train_classifier(path("geo"), path("classifier"), configs, seed=seed)
        log_params({**info["config"], "seeds_tried": len(info["tried"])})
        description = ti.xcom_pull(task_ids="recommend_seed", key="task")
        if description:
            log_task(description)  # with model + score: a run the recommender learns from
        return {"score": info["score"], "train_hits": info["train_hits"]}

    @cmf_task(inlets=[ASSET["geo"], ASSET["classifier"]], outlets=[ASSET["kept"]])
    def classify_hits(threshold: float = 0.5) -> dict[str, float]:
        from hep import hepkit

        return hepkit.classify(path("geo"), path("classifier"), path("kept"), threshold)

    @cmf_task(inlets=[ASSET["kept"], ASSET["hits"]], outlets=[ASSET["refiner"]])
    def train_refiner() -> dict[str, Any]:
        from hep import hepkit

        cfg = hepkit.train_refiner(path("kept"), path("hits"), path("refiner"))
        log_params({"eps": cfg["eps"], "min_hits": cfg["min_hits"]})
        return {k: v for k, v in cfg.items() if k not in ("eps", "min_hits", "model")}

    (simulate_hits() >> geometric_filter() >> feature_table() >> recommend
     >> train_classifier() >> classify_hits() >> train_refiner())


dag_object = hep_hpc_training()

if __name__ == "__main__":
    dag_object.test()

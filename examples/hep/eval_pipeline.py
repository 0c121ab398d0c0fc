"""Site ``cloud``: evaluate the fine-tuned tracking chain as a Kubeflow pipeline (kfp.local here).

The components are those of ``examples/kubeflow/hep_tracking.py`` (simulate, geometric filter,
hit classifier, track building, double-majority evaluation); the two models come in through
``dsl.importer`` from files this site fetched by digest: the classifier fine-tuned at ``edge``
and the track refiner trained at ``hpc``. :func:`cmf_kubeflow.track` records every component run
without any CMF code in them; the imported model files keep their digests, so the evaluation
joins the lineage of the models it evaluates.

    python examples/hep/eval_pipeline.py --classifier data/hit-classifier-edge.pkl \\
        --refiner data/track-refiner.json --events 10
"""

# No ``from __future__ import annotations``: kfp reads the components' annotations as objects.
import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/: the hep package

from hep.hepkit import kfp_example

HEP = kfp_example()
PIPELINE = "hep-evaluation"


@dsl.component(**HEP.COMPONENT, additional_funcs=[HEP.read_hits, HEP.build_tracks.python_func])
def refine_tracks(hits: Input[Dataset], refiner: Input[Model], tracks: Output[Dataset]):
    """Model 3: track candidates from the kept hits with the fitted refiner (DBSCAN)."""
    import json

    with open(refiner.path) as fh:
        cfg = json.load(fh)
    build_tracks(hits=hits, eps=float(cfg["eps"]), min_hits=int(cfg["min_hits"]),  # noqa: F821
                 tracks=tracks)


@dsl.pipeline(name=PIPELINE, description="Evaluate the fine-tuned tracking chain.")
def hep_evaluation(classifier_uri: str, refiner_uri: str, n_events: int = 10,
                   noise_fraction: float = 1.0, seed: int = 3, threshold: float = 0.5):
    sim = HEP.simulate_hits(n_events=n_events, tracks_per_event=15,
                            noise_fraction=noise_fraction, seed=seed)
    geo = HEP.geometric_filter(hits=sim.outputs["hits"])
    classifier = dsl.importer(artifact_uri=classifier_uri, artifact_class=Model,
                              reimport=False)
    refiner = dsl.importer(artifact_uri=refiner_uri, artifact_class=Model, reimport=False)
    kept = HEP.classify_hits(hits=geo.outputs["kept"], model=classifier.output,
                             threshold=threshold)
    tracks = refine_tracks(hits=kept.outputs["kept"], refiner=refiner.output)
    HEP.evaluate_tracks(truth=sim.outputs["hits"], tracks=tracks.outputs["tracks"],
                        min_true_hits=4)


def latest_metrics(store_url: str) -> dict[str, dict[str, float]]:
    """Metrics per stage of the latest recorded run of the evaluation pipeline."""
    from cmf_core.store import ExecutionFilter, open_store

    with open_store(store_url) as store:
        runs = store.list_executions(ExecutionFilter(pipeline=PIPELINE))
        if not runs:
            return {}
        latest = max(runs, key=lambda e: e.started_at).properties.get("kfp.run")
        runs = [e for e in runs if e.properties.get("kfp.run") == latest]
        out: dict[str, dict[str, float]] = {e.stage: {} for e in runs}
        stage = {e.id: e.stage for e in runs}
        for m in store.metrics([e.id for e in runs]):
            out[stage[m.execution_id]][m.name] = m.value
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classifier", type=Path, required=True)
    parser.add_argument("--refiner", type=Path, required=True)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path("hep-eval"),
                        help="kfp.local pipeline root")
    args = parser.parse_args(argv)

    from cmf_kubeflow import track
    from kfp import local

    from cmf_core.config import load_settings

    settings = load_settings()
    store_url = settings.resolved_store_url
    local.init(runner=local.SubprocessRunner(use_venv=False),
               pipeline_root=str(args.output.resolve() / "pipeline-root"))
    track(hep_evaluation, store_url=store_url, site=settings.site)(
        classifier_uri=str(args.classifier.resolve()), refiner_uri=str(args.refiner.resolve()),
        n_events=args.events, seed=args.seed)
    result: dict[str, Any] = latest_metrics(store_url)
    print("RESULT " + json.dumps(result), flush=True)
    return 0 if result else 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())

"""Site ``edge``: fine-tune the HPC site's hit classifier on this site's own data, with Prefect 3.

A plain Prefect flow: with the cmf in-process route on (``PREFECT_PLUGINS_ENABLED=true`` with
cmf-foundation's ``prefect.plugins`` entry point, or ``cmf_prefect.install()``), every task run
becomes a CMF execution; paths given to and returned by tasks become artifacts with their content
digests, and numbers in returned dicts become metrics. The only cmf import is the
federated-sync step that sends this site's metadata (never its data) to the HPC site.

The edge detector is noisier than the one the HPC site trained on (noise fraction 1.0 instead
of 0.5); its hits never leave this site. The base model arrives first, by digest, from the HPC
site (``cmf artifact fetch DIGEST``), so its lineage joins the HPC site's.

    python examples/hep/edge_finetune_flow.py --base-model data/hit-classifier.pkl \\
        --data-dir data --hpc-url http://127.0.0.1:8081
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/: the hep package

PIPELINE = "hep-edge-finetune"


@task
def simulate_local_hits(out: str, n_events: int, noise_fraction: float, seed: int) -> str:
    """This site's detector data (stays here)."""
    from hep import hepkit

    hepkit.simulate(out, n_events=n_events, noise_fraction=noise_fraction, seed=seed)
    return out


@task
def geometric_filter(hits: str, out: str) -> str:
    from hep import hepkit

    hepkit.geometric_filter(hits, out)
    return out


@task
def fine_tune(base_model: str, hits: str, out: str, extra_trees: int = 50) -> str:
    """Continue training the base classifier on the local hits."""
    from hep import hepkit

    info = hepkit.finetune_classifier(base_model, hits, out, extra_trees=extra_trees)
    get_run_logger().info("fine-tuned (%s): local validation AUC %.4f -> %.4f",
                          info["method"], info["auc_before"], info["auc_after"])
    return out


@task
def evaluate_locally(base_model: str, tuned_model: str, hits: str) -> dict[str, float]:
    """Hit-classification ROC AUC of the base and the fine-tuned model on the local
    validation events."""
    import pickle

    from hep import hepkit

    data = hepkit.read_hits(hits)
    X, y = hepkit.features(data), hepkit.labels(data)
    _, valid = hepkit._split(data)
    scores = {}
    for name, path in (("auc_base", base_model), ("auc_finetuned", tuned_model)):
        model = pickle.loads(Path(path).read_bytes())
        scores[name] = hepkit._auc(y[valid], model.predict_proba(X[valid])[:, 1])
    return scores


@flow(name=PIPELINE)
def edge_finetune(base_model: str, data_dir: str, n_events: int = 12,
                  noise_fraction: float = 1.0, seed: int = 2, extra_trees: int = 50,
                  hpc_url: str | None = None) -> dict[str, float]:
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    hits = simulate_local_hits(str(data / "edge-hits.csv"), n_events, noise_fraction, seed)
    kept = geometric_filter(hits, str(data / "edge-hits-geo.csv"))
    tuned = fine_tune(base_model, kept, str(data / "hit-classifier-edge.pkl"), extra_trees)
    scores = evaluate_locally(base_model, tuned, kept)
    if hpc_url:
        from cmf_prefect.tasks import federated_sync

        federated_sync(hpc_url, direction="push", pipeline=PIPELINE, wait_for=[scores])
    return scores


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", required=True, help="the HPC site's classifier file")
    parser.add_argument("--data-dir", default="hep-data/edge")
    parser.add_argument("--events", type=int, default=12)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--hpc-url", help="the HPC site's `cmf serve` URL (push the metadata)")
    args = parser.parse_args()
    result = edge_finetune(base_model=str(Path(args.base_model).resolve()),
                           data_dir=str(Path(args.data_dir).resolve()), n_events=args.events,
                           seed=args.seed, hpc_url=args.hpc_url)
    print("RESULT " + json.dumps(result))

"""HEP trajectory reconstruction, evaluated as a Kubeflow pipeline and tracked by cmf-foundation.

Charged particles leave hits on the 8 cylindrical layers of a tracking detector in a solenoid
field; noise hits are mixed in. The pipeline reconstructs the particles' trajectories by
progressively filtering the hits with several models, then measures how well it did:

1. ``simulate_hits``: seeded generated events (helices from the beam line, 97% layer
   efficiency, position smearing, uniform noise hits).
2. ``geometric_filter`` (model 1, rules): keep hits with a compatible hit on an adjacent layer.
3. ``describe_hits`` + ``recommend_seed`` + ``train_hit_classifier`` (model 2, learned): the
   hit-feature table is described for the CMF recommender, whose best configuration from
   similar past tasks (or a default when it has none) trains a scikit-learn hit classifier.
4. ``classify_hits``: keep the hits the classifier calls real.
5. ``build_tracks`` (model 3, clustering): DBSCAN of the kept hits into track candidates.
6. ``evaluate_tracks``: tracking efficiency, fake rate and per-stage hit efficiency/purity.

No component knows about CMF: :func:`cmf_kubeflow.track` records every run (execution,
parameters, Dataset/Model/Metrics artifacts with digests, status, energy and carbon).

Run it locally (kfp.local, no cluster)::

    python examples/kubeflow/hep_tracking.py --events 20 --seed 1

or write the tracked pipeline for a cluster (the image needs kfp, numpy, scikit-learn and
cmf-foundation[kubeflow,recommend]; set ``KFP_CMF_IMAGE`` to it before compiling)::

    KFP_CMF_IMAGE=registry.example/hep-cmf:1 python examples/kubeflow/hep_tracking.py \\
        --compile hep_tracking.yaml --site cluster-a --secret cmf-server
"""

# No ``from __future__ import annotations``: kfp reads the components' annotations as objects.
import argparse
import os
import sys
from pathlib import Path
from typing import Any

from cmf_kubeflow.components import recommend_seed
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

IMAGE = os.environ.get("KFP_CMF_IMAGE", "python:3.11")
COLUMNS = ["hit_id", "event", "layer", "r", "phi", "z", "particle"]


# helpers embedded into the components that need them (kfp ``additional_funcs``) --------------
def read_hits(path: str) -> Any:
    import numpy as np

    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def write_hits(path: str, hits: Any) -> None:
    import numpy as np

    np.savetxt(path, hits, delimiter=",", header="hit_id,event,layer,r,phi,z,particle",
               comments="", fmt=["%d", "%d", "%d", "%.3f", "%.6f", "%.5f", "%d"])


def hit_features(hits: Any) -> Any:
    """Per hit: r, z/r, and for each adjacent layer the best compatible neighbour's distance
    (in units of the 0.1 rad / 0.3 windows), |dphi|, |d(z/r)| and the number of neighbours
    inside the window."""
    import numpy as np

    feats = np.full((len(hits), 10), 10.0)
    feats[:, 0] = hits[:, 3]
    feats[:, 1] = hits[:, 5] / hits[:, 3]
    for event in np.unique(hits[:, 1]):
        idx = np.flatnonzero(hits[:, 1] == event)
        ev = hits[idx]
        for col, step in ((2, -1), (6, 1)):
            for i, h in zip(idx, ev, strict=True):
                other = ev[ev[:, 2] == h[2] + step]
                if len(other) == 0:
                    feats[i, col + 3] = 0
                    continue
                dphi = np.abs((other[:, 4] - h[4] + np.pi) % (2 * np.pi) - np.pi)
                dcot = np.abs(other[:, 5] / other[:, 3] - h[5] / h[3])
                dist = np.hypot(dphi / 0.1, dcot / 0.3)
                best = int(np.argmin(dist))
                feats[i, col:col + 4] = (dist[best], dphi[best], dcot[best],
                                         float(np.sum(dist < 1.0)))
    return feats


def stage_metrics(metrics: Any, before: Any, after: Any) -> None:
    """Hit efficiency (true hits kept) and purity (true fraction) of a filtering stage."""
    true_before = float((before[:, 6] > 0).sum())
    true_after = float((after[:, 6] > 0).sum())
    metrics.log_metric("hit_efficiency", true_after / max(true_before, 1.0))
    metrics.log_metric("purity", true_after / max(float(len(after)), 1.0))
    metrics.log_metric("kept_fraction", len(after) / max(float(len(before)), 1.0))


COMPONENT = {"base_image": IMAGE, "install_kfp_package": False}


# components --------------------------------------------------------------------------------------
@dsl.component(**COMPONENT, additional_funcs=[write_hits])
def simulate_hits(n_events: int, tracks_per_event: int, noise_fraction: float, seed: int,
                  hits: Output[Dataset]):
    import numpy as np

    rng = np.random.default_rng(seed)
    radii = np.array([3.0, 5.0, 7.0, 9.0, 11.0, 14.0, 17.0, 20.0])
    rows = []
    for event in range(n_events):
        start = len(rows)
        for particle in range(1, rng.poisson(tracks_per_event) + 1):
            rho = 50.0 * (0.5 + rng.exponential(1.5))  # bending radius from pT (GeV) and B
            charge, phi0 = rng.choice([-1.0, 1.0]), rng.uniform(-np.pi, np.pi)
            cot, z0 = rng.uniform(-1.5, 1.5), rng.normal(0.0, 0.5)
            for layer, r in enumerate(radii):
                if rng.random() < 0.97:
                    phi = phi0 + charge * np.arcsin(r / (2 * rho)) + rng.normal(0, 0.002)
                    z = z0 + r * cot + rng.normal(0, 0.05)
                    rows.append((event, layer, r, phi, z, particle))
        for _ in range(int(noise_fraction * (len(rows) - start))):
            layer = int(rng.integers(len(radii)))
            rows.append((event, layer, radii[layer], rng.uniform(-np.pi, np.pi),
                         rng.uniform(-32.0, 32.0), 0))
    data = np.array(rows)
    data[:, 3] = (data[:, 3] + np.pi) % (2 * np.pi) - np.pi
    write_hits(hits.path, np.column_stack([np.arange(len(data)), data]))
    hits.metadata.update(events=n_events, hits=len(data),
                         noise_hits=int((data[:, 5] == 0).sum()), seed=seed)


@dsl.component(**COMPONENT, additional_funcs=[read_hits, write_hits, hit_features,
                                               stage_metrics])
def geometric_filter(hits: Input[Dataset], kept: Output[Dataset], metrics: Output[Metrics]):
    before = read_hits(hits.path)
    feats = hit_features(before)
    after = before[(feats[:, 2] < 1.0) | (feats[:, 6] < 1.0)]
    write_hits(kept.path, after)
    kept.metadata["hits"] = len(after)
    stage_metrics(metrics, before, after)


@dsl.component(**COMPONENT, additional_funcs=[read_hits, hit_features])
def describe_hits(hits: Input[Dataset]) -> dict:
    from cmf_core.recommend import describe_arrays

    data = read_hits(hits.path)
    task = describe_arrays(hit_features(data), (data[:, 6] > 0).astype(int),
                           category="classification", name="hep-hit-classification")
    return task.to_dict()


@dsl.component(**COMPONENT, additional_funcs=[read_hits, hit_features])
def train_hit_classifier(hits: Input[Dataset], seeds: Input[Artifact], seed: int,
                         model: Output[Model]):
    import json
    import pickle

    from cmf_core.recommend.space import build_estimator

    with open(seeds.path) as fh:
        configs = [s["config"] for s in json.load(fh)["seeds"]]
    data = read_hits(hits.path)
    train = data[:, 1] < data[:, 1].max() / 2  # the first half of the events
    config = configs[0] if configs else {"model": "hgb", "learning_rate": 0.1,
                                         "max_leaf_nodes": 16, "min_samples_leaf": 5}
    estimator = build_estimator(config, "classification", seed=seed)
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if "probability" in final.get_params():  # SVMs: classify_hits scores with predict_proba
        final.set_params(probability=True)
    estimator.fit(hit_features(data[train]), data[train, 6] > 0)
    with open(model.path, "wb") as fh:
        pickle.dump(estimator, fh)
    model.metadata.update(config=config, seeded=bool(configs), train_hits=int(train.sum()))


@dsl.component(**COMPONENT, additional_funcs=[read_hits, write_hits, hit_features,
                                               stage_metrics])
def classify_hits(hits: Input[Dataset], model: Input[Model], threshold: float,
                  kept: Output[Dataset], metrics: Output[Metrics]):
    import pickle

    before = read_hits(hits.path)
    with open(model.path, "rb") as fh:
        estimator = pickle.load(fh)
    score = estimator.predict_proba(hit_features(before))[:, 1]
    after = before[score >= threshold]
    write_hits(kept.path, after)
    kept.metadata["hits"] = len(after)
    stage_metrics(metrics, before, after)


@dsl.component(**COMPONENT, additional_funcs=[read_hits])
def build_tracks(hits: Input[Dataset], eps: float, min_hits: int, tracks: Output[Dataset]):
    import numpy as np
    from sklearn.cluster import DBSCAN

    data = read_hits(hits.path)
    rows, next_id = [], 0
    for event in np.unique(data[:, 1]):
        ev = data[data[:, 1] == event]
        x = np.column_stack([np.cos(ev[:, 4]) / 0.08, np.sin(ev[:, 4]) / 0.08,
                             ev[:, 5] / ev[:, 3] / 0.25])
        labels = DBSCAN(eps=eps, min_samples=2).fit_predict(x)
        for label in set(labels) - {-1}:
            members = ev[labels == label]
            if len(members) >= min_hits:
                rows += [(next_id, int(event), int(h)) for h in members[:, 0]]
                next_id += 1
    np.savetxt(tracks.path, np.array(rows, dtype=int).reshape(-1, 3), delimiter=",",
               header="track_id,event,hit_id", comments="", fmt="%d")
    tracks.metadata["candidates"] = next_id


@dsl.component(**COMPONENT, additional_funcs=[read_hits])
def evaluate_tracks(truth: Input[Dataset], tracks: Input[Dataset], min_true_hits: int,
                    metrics: Output[Metrics]):
    from collections import Counter

    import numpy as np

    hits = read_hits(truth.path)
    particle = {int(h[0]): (int(h[1]), int(h[6])) for h in hits}
    n_true = Counter(v for v in particle.values() if v[1] > 0)
    reconstructable = {p for p, n in n_true.items() if n >= min_true_hits}
    cand = np.loadtxt(tracks.path, delimiter=",", skiprows=1, ndmin=2).astype(int)
    matched, fakes, n_tracks = set(), 0, 0
    for track_id in np.unique(cand[:, 0]) if len(cand) else []:
        owners = Counter(particle[h] for h in cand[cand[:, 0] == track_id, 2])
        n_tracks += 1
        (owner, count), total = owners.most_common(1)[0], sum(owners.values())
        # double majority: most of the track's hits, and most of the particle's hits
        if owner[1] > 0 and count > total / 2 and count > n_true[owner] / 2:
            matched.add(owner)
        else:
            fakes += 1
    metrics.log_metric("tracking_efficiency", len(matched & reconstructable)
                       / max(len(reconstructable), 1))
    metrics.log_metric("fake_rate", fakes / max(n_tracks, 1))
    metrics.log_metric("reconstructable_particles", float(len(reconstructable)))
    metrics.log_metric("track_candidates", float(n_tracks))


@dsl.pipeline(name="hep-tracking", description="Progressive hit filtering and tracking.")
def hep_tracking(n_events: int = 20, tracks_per_event: int = 15, noise_fraction: float = 0.5,
                 seed: int = 1, threshold: float = 0.5):
    sim = simulate_hits(n_events=n_events, tracks_per_event=tracks_per_event,
                        noise_fraction=noise_fraction, seed=seed)
    geo = geometric_filter(hits=sim.outputs["hits"])
    task = describe_hits(hits=geo.outputs["kept"])
    seeds = recommend_seed(task=task.output, k=3)
    clf = train_hit_classifier(hits=geo.outputs["kept"], seeds=seeds.outputs["seeds"],
                               seed=seed)
    kept = classify_hits(hits=geo.outputs["kept"], model=clf.outputs["model"],
                         threshold=threshold)
    tracks = build_tracks(hits=kept.outputs["kept"], eps=1.0, min_hits=4)
    evaluate_tracks(truth=sim.outputs["hits"], tracks=tracks.outputs["tracks"], min_true_hits=4)


# running it --------------------------------------------------------------------------------------
def summarize(store_url: str, site: str | None = None) -> list[dict[str, Any]]:
    """One row per recorded stage of the latest run: status, seconds, energy, carbon, metrics."""
    from cmf_core.store import ExecutionFilter, open_store

    with open_store(store_url, site) as store:
        executions = store.list_executions(ExecutionFilter(pipeline="hep-tracking"))
        if not executions:
            return []
        latest = max(executions, key=lambda e: e.started_at).properties.get("kfp.run")
        runs = [e for e in executions if e.properties.get("kfp.run") == latest]
        energy = {r.execution_id: r for r in store.energy([e.id for e in runs])}
        metrics = store.metrics([e.id for e in runs])
        rows = []
        for ex in sorted(runs, key=lambda e: e.started_at):
            rec = energy.get(ex.id)
            rows.append({"stage": ex.stage, "status": ex.status.value,
                         "seconds": round(ex.duration_s or 0.0, 2),
                         "energy_kwh": rec.energy_kwh if rec else None,
                         "co2e_kg": rec.co2e_kg if rec else None,
                         "metrics": {m.name: round(m.value, 4) for m in metrics
                                     if m.execution_id == ex.id}})
        return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path("hep-output"),
                        help="folder for the kfp.local pipeline root and the CMF store")
    parser.add_argument("--compile", type=Path, metavar="YAML",
                        help="write the tracked pipeline (IR YAML) for a cluster and stop")
    parser.add_argument("--site", help="CMF_SITE of the executors")
    parser.add_argument("--secret", help="Kubernetes secret with the CMF server token")
    args = parser.parse_args(argv)

    from cmf_kubeflow import track

    if args.compile:
        from kfp import compiler

        compiler.Compiler().compile(track(hep_tracking, site=args.site, secret=args.secret),
                                    str(args.compile))
        print(f"tracked pipeline written to {args.compile}")
        return 0

    from kfp import local

    output = args.output.resolve()
    store_url = os.environ.get("CMF_STORE_URL") or f"sqlite:///{output / 'cmf.db'}"
    local.init(runner=local.SubprocessRunner(use_venv=False),
               pipeline_root=str(output / "pipeline-root"))
    track(hep_tracking, store_url=store_url, site=args.site)(n_events=args.events,
                                                              seed=args.seed)
    print(f"\nCMF store: {store_url}")
    for row in summarize(store_url, args.site):
        kwh = "-" if row["energy_kwh"] is None else f"{row['energy_kwh']:.2e} kWh"
        print(f"{row['stage']:<22} {row['status']:<10} {row['seconds']:>6} s  {kwh:>14}  "
              f"{row['metrics'] or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The HEP tracking chain as plain functions on files, shared by the three sites.

The generator and the models are those of the Kubeflow example
(``examples/kubeflow/hep_tracking.py``): this module calls its component functions directly
(``component.python_func``), with small stand-ins for KFP's artifact objects, so the Airflow
training at ``hpc``, the Prefect fine-tuning at ``edge`` and the Kubeflow evaluation at ``cloud``
run the very same code.

Progressive filtering of the hits that lie on a common trajectory:

1. **geometric filter** (rule): keep a hit when an adjacent layer has a compatible hit;
2. **hit classifier** (scikit-learn, configuration seeded by the CMF recommender): keep the hits
   it calls real; fine-tuned at the edge on that site's own (noisier) data;
3. **track refiner** (DBSCAN clustering into track candidates, its ``eps`` and minimum hits
   fitted on the training events): turns the kept hits into tracks.

Every function takes and writes files (CSV hits, a pickled estimator, a JSON refiner), so each
step is one execution with its input and output artifacts in CMF.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import pickle
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

KFP_EXAMPLE = Path(__file__).resolve().parents[1] / "kubeflow" / "hep_tracking.py"
DEFAULT_CONFIG: dict[str, Any] = {"model": "hgb", "learning_rate": 0.1, "max_leaf_nodes": 16,
                                  "min_samples_leaf": 5}
REFINER_GRID = {"eps": (0.7, 1.0, 1.4), "min_hits": (3, 4)}


@functools.cache
def kfp_example() -> ModuleType:
    """``examples/kubeflow/hep_tracking.py``, loaded once (it imports kfp)."""
    spec = importlib.util.spec_from_file_location("hep_tracking_example", KFP_EXAMPLE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the Kubeflow HEP example from {KFP_EXAMPLE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Art:
    """What a KFP component sees of an ``Input``/``Output`` artifact: a path and metadata."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.uri = self.path
        self.metadata: dict[str, Any] = {}


class _Metrics(_Art):
    def __init__(self, path: str | Path = "") -> None:
        super().__init__(path)

    def log_metric(self, name: str, value: float) -> None:
        self.metadata[name] = float(value)


def _call(component_name: str, **kwargs: Any) -> Any:
    return getattr(kfp_example(), component_name).python_func(**kwargs)


# data ---------------------------------------------------------------------------------------------
def simulate(out: str | Path, *, n_events: int, tracks_per_event: int = 15,
             noise_fraction: float = 0.5, seed: int = 1) -> dict[str, Any]:
    """Seeded detector hits (helices in a solenoid field plus noise hits) -> CSV ``out``."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    art = _Art(out)
    _call("simulate_hits", n_events=n_events, tracks_per_event=tracks_per_event,
          noise_fraction=noise_fraction, seed=seed, hits=art)
    return dict(art.metadata)


def read_hits(path: str | Path) -> np.ndarray:
    return kfp_example().read_hits(str(path))


def features(hits: np.ndarray) -> np.ndarray:
    return kfp_example().hit_features(hits)


def labels(hits: np.ndarray) -> np.ndarray:
    return (hits[:, 6] > 0).astype(int)


def write_feature_table(hits_path: str | Path, out: str | Path) -> int:
    """The classifier's training table (10 hit features + ``label``) as CSV, for the
    recommender's task description; returns the number of rows."""
    hits = read_hits(hits_path)
    table = np.column_stack([features(hits), labels(hits)])
    names = [f"f{i}" for i in range(table.shape[1] - 1)] + ["label"]
    np.savetxt(out, table, delimiter=",", header=",".join(names), comments="", fmt="%.6g")
    return len(table)


def describe(hits_path: str | Path, name: str = "hep-hit-classification") -> Any:
    """The recommender's task description of hit classification on these hits."""
    from cmf_core.recommend import describe_arrays

    hits = read_hits(hits_path)
    return describe_arrays(features(hits), labels(hits), category="classification", name=name)


# model 1: geometric filter -----------------------------------------------------------------------
def geometric_filter(hits_path: str | Path, out: str | Path) -> dict[str, float]:
    """Keep hits with a compatible hit on an adjacent layer; returns hit efficiency/purity."""
    metrics = _Metrics()
    _call("geometric_filter", hits=_Art(hits_path), kept=_Art(out), metrics=metrics)
    return dict(metrics.metadata)


# model 2: hit classifier -------------------------------------------------------------------------
def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if len(set(y.tolist())) > 1 else 0.5


def _split(hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation masks: the first and the second half of the events."""
    train = hits[:, 1] < (hits[:, 1].max() + 1) / 2
    return train, ~train


def build_classifier(config: Mapping[str, Any], seed: int = 1) -> Any:
    """The recommender space's estimator for ``config``, with probabilities switched on (SVMs)
    so that every model can score hits with ``predict_proba``."""
    from cmf_core.recommend import build_estimator

    est = build_estimator(config, "classification", seed=seed)
    final = est.steps[-1] if hasattr(est, "steps") else None
    target = final[1] if final else est
    if "probability" in target.get_params():
        est.set_params(**{f"{final[0]}__probability" if final else "probability": True})
    return est


def train_classifier(hits_path: str | Path, out: str | Path,
                     configs: Sequence[Mapping[str, Any]] = (), seed: int = 1) -> dict[str, Any]:
    """Try each seed configuration (the recommender's, else the default) on the first half of
    the events, keep the best by validation ROC AUC on the second half, refit it on all events
    and pickle the estimator to ``out``. Returns the chosen config and the scores."""
    hits = read_hits(hits_path)
    X, y = features(hits), labels(hits)
    train, valid = _split(hits)
    tried = []
    for config in list(configs) or [DEFAULT_CONFIG]:
        est = build_classifier(config, seed).fit(X[train], y[train])
        tried.append((_auc(y[valid], est.predict_proba(X[valid])[:, 1]), dict(config)))
    score, config = max(tried, key=lambda t: t[0])
    est = build_classifier(config, seed).fit(X, y)
    Path(out).write_bytes(pickle.dumps(est))
    return {"config": config, "score": score, "tried": [round(s, 4) for s, _ in tried],
            "train_hits": len(y)}


def finetune_classifier(base_path: str | Path, hits_path: str | Path, out: str | Path,
                        extra_trees: int = 50, seed: int = 1) -> dict[str, Any]:
    """Fine-tune the base classifier on local hits (the first half of the local events).

    A forest keeps its trees and grows ``extra_trees`` more on the local data (warm start).
    Other models (scikit-learn's boosting re-bins the features on every fit, so its warm start
    does not carry over to shifted data) become a soft vote of the frozen base model and the same
    configuration fitted on the local data. Returns the validation ROC AUC on the second half of
    the local events before and after."""
    import copy

    from sklearn.ensemble import VotingClassifier
    from sklearn.frozen import FrozenEstimator

    base = pickle.loads(Path(base_path).read_bytes())
    hits = read_hits(hits_path)
    X, y = features(hits), labels(hits)
    train, valid = _split(hits)
    before = _auc(y[valid], base.predict_proba(X[valid])[:, 1])
    if hasattr(base, "estimators_") and hasattr(base, "warm_start") and hasattr(
            base, "n_estimators"):
        tuned = copy.deepcopy(base)
        tuned.set_params(warm_start=True, n_estimators=base.n_estimators + extra_trees)
        tuned.fit(X[train], y[train])
        method = f"warm start, +{extra_trees} trees"
    else:
        from sklearn.base import clone

        tuned = VotingClassifier([("hpc", FrozenEstimator(base)), ("edge", clone(base))],
                                 voting="soft").fit(X[train], y[train])
        method = "soft vote of the base model and a local refit"
    after = _auc(y[valid], tuned.predict_proba(X[valid])[:, 1])
    Path(out).write_bytes(pickle.dumps(tuned))
    return {"auc_before": round(before, 4), "auc_after": round(after, 4), "method": method,
            "local_hits": int(train.sum())}


def classify(hits_path: str | Path, model_path: str | Path, out: str | Path,
             threshold: float = 0.5) -> dict[str, float]:
    """Keep the hits the classifier calls real; returns hit efficiency/purity."""
    metrics = _Metrics()
    _call("classify_hits", hits=_Art(hits_path), model=_Art(model_path), threshold=threshold,
          kept=_Art(out), metrics=metrics)
    return dict(metrics.metadata)


# model 3: track refiner --------------------------------------------------------------------------
def build_tracks(hits_path: str | Path, out: str | Path, *, eps: float,
                 min_hits: int) -> int:
    art = _Art(out)
    _call("build_tracks", hits=_Art(hits_path), eps=eps, min_hits=min_hits, tracks=art)
    return int(art.metadata["candidates"])


def evaluate(truth_path: str | Path, tracks_path: str | Path,
             min_true_hits: int = 4) -> dict[str, float]:
    """Tracking efficiency and fake rate (double-majority matching)."""
    metrics = _Metrics()
    _call("evaluate_tracks", truth=_Art(truth_path), tracks=_Art(tracks_path),
          min_true_hits=min_true_hits, metrics=metrics)
    return dict(metrics.metadata)


def train_refiner(kept_path: str | Path, truth_path: str | Path,
                  out: str | Path) -> dict[str, Any]:
    """Fit the refiner: the DBSCAN ``eps`` and minimum hits per track that maximise tracking
    efficiency minus fake rate on these events; written as JSON to ``out``."""
    best: tuple[float, dict[str, Any]] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        tracks = Path(tmp) / "tracks.csv"
        for eps in REFINER_GRID["eps"]:
            for min_hits in REFINER_GRID["min_hits"]:
                build_tracks(kept_path, tracks, eps=eps, min_hits=min_hits)
                m = evaluate(truth_path, tracks)
                gain = m["tracking_efficiency"] - m["fake_rate"]
                if best is None or gain > best[0]:
                    best = (gain, {"model": "dbscan", "eps": eps, "min_hits": min_hits, **m})
    assert best is not None
    Path(out).write_text(json.dumps(best[1], indent=1, sort_keys=True))
    return best[1]


def refine(hits_path: str | Path, refiner_path: str | Path, out: str | Path) -> int:
    """Track candidates from the kept hits with the fitted refiner."""
    cfg = json.loads(Path(refiner_path).read_text())
    return build_tracks(hits_path, out, eps=float(cfg["eps"]), min_hits=int(cfg["min_hits"]))

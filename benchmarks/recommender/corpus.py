"""The task corpus of the shipped knowledge base and of the leave-one-task-out benchmark.

Every task is generated or loaded offline and deterministically: scikit-learn's bundled data
sets, scikit-learn generators with varied characteristics, the Telco churn data in
examples/data/telco-churn/ (two tasks, one group), and generated time series with injected
anomalies. Large data are subsampled (seeded) to at most ``MAX_ROWS`` rows so that the whole
grid of every task can be scored on two cores.

``group`` marks near-duplicates (the same source data): leave-one-task-out removes the whole
group of the target task from the knowledge base.

:func:`extra` draws further tasks at random (a fixed seed) from the same generator families with
parameters over wide ranges, each its own group: the ``--extended`` corpus of build_kb.py, to
measure how seeds improve as the knowledge base grows.

:func:`retrain` gives each task of :func:`corpus` a twin on a fresh sample of its data, as when
a pipeline retrains: the ``--retrain`` corpus of build_kb.py, to measure the seeds for a task
the knowledge base has seen before (not the new-task protocol of the benchmark).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cmf_core.recommend.task import read_csv

ROOT = Path(__file__).resolve().parents[2]
TELCO = ROOT / "examples" / "data" / "telco-churn" / "Telco-Customer-Churn.csv"
MAX_ROWS = 1500


@dataclass(frozen=True)
class Dataset:
    """Loaded data: ``X`` (categorical columns as codes, NaN missing), ``y``, and for time
    series ``series`` with point ``labels``."""

    X: np.ndarray | None = None
    y: np.ndarray | None = None
    categorical: tuple[bool, ...] | None = None
    series: np.ndarray | None = None
    labels: np.ndarray | None = None
    levels: dict[str, Any] = field(default_factory=dict)

    def model_matrix(self) -> np.ndarray:
        """Numeric matrix for estimators: categorical codes one-hot, missing -> median."""
        assert self.X is not None
        parts = []
        for j in range(self.X.shape[1]):
            col = self.X[:, j]
            if self.categorical and self.categorical[j]:
                vals = np.unique(col[np.isfinite(col)])
                parts.append((col[:, None] == vals[None, :]).astype(float))
            else:
                med = np.nanmedian(col) if np.isfinite(col).any() else 0.0
                parts.append(np.where(np.isfinite(col), col, med)[:, None])
        return np.hstack(parts)


@dataclass(frozen=True)
class CorpusTask:
    name: str
    category: str
    modality: str
    group: str
    load: Callable[[], Dataset]
    metric: str = ""


def _subsample(X: np.ndarray, y: np.ndarray, seed: int = 0, classes: bool = True,
               n: int = MAX_ROWS) -> tuple[np.ndarray, np.ndarray]:
    if len(X) <= n:
        return X, y
    rng = np.random.default_rng(seed)
    if classes:  # stratified
        keep: list[int] = []
        labels, counts = np.unique(y, return_counts=True)
        for lab, c in zip(labels, counts, strict=True):
            idx = np.flatnonzero(y == lab)
            keep.extend(rng.choice(idx, max(1, round(n * c / len(y))), replace=False))
        k = np.sort(np.array(keep))
    else:
        k = np.sort(rng.choice(len(X), n, replace=False))
    return X[k], y[k]


def _bundled(loader: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        from sklearn import datasets

        X, y = getattr(datasets, loader)(return_X_y=True)
        return Dataset(X=X.astype(float), y=y)
    return load


def _gen(fn: str, classes: bool = True, **kw: Any) -> Callable[[], Dataset]:
    def load() -> Dataset:
        from sklearn import datasets

        X, y = getattr(datasets, fn)(**kw)
        if not classes:
            y = (y - y.mean()) / y.std()
        return Dataset(X=X.astype(float), y=y)
    return load


def _noisy(fn: str, extra: int, seed: int, **kw: Any) -> Callable[[], Dataset]:
    """A 2-D generator plus ``extra`` pure-noise columns."""
    def load() -> Dataset:
        from sklearn import datasets

        X, y = getattr(datasets, fn)(random_state=seed, **kw)
        rng = np.random.default_rng(seed)
        X = np.hstack([X, rng.normal(size=(len(X), extra))])
        return Dataset(X=X, y=y)
    return load


def _mixed(n: int, n_cat: int, n_num: int, minority: float, seed: int,
           interaction: float = 1.0) -> Callable[[], Dataset]:
    """Synthetic customer-like data: categorical columns (2-4 levels) plus numeric ones; the
    label follows a logistic model with main effects and one interaction."""
    def load() -> Dataset:
        rng = np.random.default_rng(seed)
        levels = rng.integers(2, 5, n_cat)
        cats = np.column_stack([rng.integers(0, k, n) for k in levels]).astype(float)
        nums = rng.gamma(2.0, 1.0, (n, n_num))
        effects = [rng.normal(0, 1, k) for k in levels]
        logit = sum(effects[j][cats[:, j].astype(int)] for j in range(n_cat))
        logit = logit + nums @ rng.normal(0, 0.6, n_num)
        logit = logit + interaction * (cats[:, 0] == 0) * (nums[:, 0] - 2)
        logit = (logit - logit.mean()) / logit.std() * 1.5
        thr = np.quantile(logit + rng.logistic(size=n), 1 - minority)
        y = (logit + rng.logistic(size=n) > thr).astype(int)
        X = np.hstack([cats, nums])
        return Dataset(X=X, y=y, categorical=(True,) * n_cat + (False,) * n_num)
    return load


def _telco(target: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        table = read_csv(TELCO)
        ycol = table.column(target)
        drop = [target] + (["TotalCharges"] if target == "MonthlyCharges" else [])
        feats = table.without(*drop)
        if target == "Churn":
            y = ycol.astype(int)
            X, y = _subsample(feats.values, y, seed=0, classes=True)
        else:
            y = (ycol - ycol.mean()) / ycol.std()
            X, y = _subsample(feats.values, y, seed=0, classes=False)
        return Dataset(X=X, y=y, categorical=feats.categorical)
    return load


def _nonlinear_regression(n: int, d: int, noise: float, seed: int) -> Callable[[], Dataset]:
    def load() -> Dataset:
        rng = np.random.default_rng(seed)
        X = rng.uniform(-2, 2, (n, d))
        y = np.sin(2 * X[:, 0]) * X[:, 1] + np.abs(X[:, 2]) + 0.5 * (X[:, 3] > 0)
        y = y + rng.normal(0, noise, n)
        return Dataset(X=X, y=(y - y.mean()) / y.std())
    return load


def _series(n: int, period: float, noise: float, kind: str, seed: int, trend: float = 0.0,
            walk: bool = False, rate: float = 0.01) -> Callable[[], Dataset]:
    """A seasonal (or random-walk) series with injected anomalies of one ``kind``: spikes,
    level shifts, variance bursts or pattern breaks (a cycle flattened)."""
    def load() -> Dataset:
        rng = np.random.default_rng(seed)
        t = np.arange(n, dtype=float)
        x = np.cumsum(rng.normal(0, 0.3, n)) if walk else np.sin(2 * np.pi * t / period)
        if not walk and period > 0:
            x = x + 0.3 * np.sin(4 * np.pi * t / period + 1.0)
        x = x + trend * t / n + rng.normal(0, noise, n)
        labels = np.zeros(n, dtype=int)
        n_events = max(3, int(rate * n / (1 if kind == "spike" else 20)))
        starts = rng.choice(np.arange(int(0.05 * n), n - 60), n_events, replace=False)
        for s in starts:
            if kind == "spike":
                x[s] += rng.choice([-1, 1]) * rng.uniform(3, 6) * max(noise, 0.3)
                labels[s] = 1
            elif kind == "shift":
                length = int(rng.integers(10, 40))
                x[s:s + length] += rng.choice([-1, 1]) * rng.uniform(1.0, 2.0)
                labels[s:s + length] = 1
            elif kind == "burst":
                length = int(rng.integers(10, 40))
                x[s:s + length] += rng.normal(0, 4 * max(noise, 0.2), length)
                labels[s:s + length] = 1
            else:  # pattern break: flatten a stretch to its mean
                length = int(max(10, period // 2))
                x[s:s + length] = x[s:s + length].mean() + rng.normal(0, noise, length)
                labels[s:s + length] = 1
        return Dataset(series=x, labels=labels)
    return load


def corpus() -> list[CorpusTask]:
    """The 40 tasks, in a fixed order."""
    C, R, A = "classification", "regression", "anomaly_detection"
    T, TS = "tabular", "time_series"
    mc = "make_classification"
    tasks = [
        CorpusTask("iris", C, T, "iris", _bundled("load_iris")),
        CorpusTask("wine", C, T, "wine", _bundled("load_wine")),
        CorpusTask("breast-cancer", C, T, "breast-cancer", _bundled("load_breast_cancer")),
        CorpusTask("digits", C, "image", "digits", _bundled("load_digits")),
        CorpusTask("telco-churn", C, T, "telco", _telco("Churn")),
        CorpusTask("clf-easy", C, T, "clf-easy", _gen(mc, n_samples=800, n_features=10,
                   n_informative=5, class_sep=2.0, flip_y=0.01, random_state=1)),
        CorpusTask("clf-hard-noisy", C, T, "clf-hard-noisy", _gen(
            mc, n_samples=1500, n_features=40, n_informative=8, class_sep=0.6, flip_y=0.1,
            random_state=2)),
        CorpusTask("clf-wide", C, T, "clf-wide", _gen(mc, n_samples=300, n_features=200,
                   n_informative=10, n_redundant=10, random_state=3)),
        CorpusTask("clf-imbalanced", C, T, "clf-imbalanced", _gen(
            mc, n_samples=1500, n_features=20, n_informative=6, weights=[0.92],
            random_state=4)),
        CorpusTask("clf-multiclass", C, T, "clf-multiclass", _gen(
            mc, n_samples=1200, n_features=15, n_informative=8, n_classes=4,
            n_clusters_per_class=1, random_state=5)),
        CorpusTask("clf-redundant", C, T, "clf-redundant", _gen(
            mc, n_samples=1000, n_features=30, n_informative=4, n_redundant=20,
            random_state=6)),
        CorpusTask("clf-clusters", C, T, "clf-clusters", _gen(
            mc, n_samples=1000, n_features=8, n_informative=6, n_clusters_per_class=4,
            class_sep=1.5, random_state=7)),
        CorpusTask("clf-small", C, T, "clf-small", _gen(
            mc, n_samples=150, n_features=12, n_informative=4, flip_y=0.05, random_state=8)),
        CorpusTask("moons", C, T, "moons", _noisy("make_moons", 2, 1, n_samples=600,
                   noise=0.15)),
        CorpusTask("moons-noisy", C, T, "moons-noisy", _noisy("make_moons", 6, 2,
                   n_samples=1000, noise=0.35)),
        CorpusTask("circles", C, T, "circles", _noisy("make_circles", 2, 3, n_samples=800,
                   noise=0.1, factor=0.5)),
        CorpusTask("hastie", C, T, "hastie", _gen("make_hastie_10_2", n_samples=1500,
                   random_state=9)),
        CorpusTask("gaussian-quantiles", C, T, "gaussian-quantiles", _gen(
            "make_gaussian_quantiles", n_samples=1000, n_features=6, n_classes=3,
            random_state=10)),
        CorpusTask("blobs", C, T, "blobs", _gen("make_blobs", n_samples=1000, n_features=8,
                   centers=5, cluster_std=4.0, random_state=11)),
        CorpusTask("mixed-customers", C, T, "mixed-customers", _mixed(1500, 14, 3, 0.27, 12)),
        CorpusTask("mixed-rare", C, T, "mixed-rare", _mixed(1200, 8, 6, 0.12, 13, 2.0)),
        CorpusTask("mixed-small", C, T, "mixed-small", _mixed(400, 10, 2, 0.35, 14, 0.5)),
        # regression
        CorpusTask("diabetes", R, T, "diabetes", _gen_bundled_reg("load_diabetes")),
        CorpusTask("telco-charges", R, T, "telco", _telco("MonthlyCharges")),
        CorpusTask("friedman1", R, T, "friedman1", _gen("make_friedman1", classes=False,
                   n_samples=1000, noise=1.0, random_state=20)),
        CorpusTask("friedman2", R, T, "friedman2", _gen("make_friedman2", classes=False,
                   n_samples=800, noise=50.0, random_state=21)),
        CorpusTask("friedman3", R, T, "friedman3", _gen("make_friedman3", classes=False,
                   n_samples=800, noise=0.1, random_state=22)),
        CorpusTask("reg-linear", R, T, "reg-linear", _gen(
            "make_regression", classes=False, n_samples=800, n_features=20, n_informative=10,
            noise=20.0, random_state=23)),
        CorpusTask("reg-lowrank", R, T, "reg-lowrank", _gen(
            "make_regression", classes=False, n_samples=500, n_features=60, n_informative=20,
            effective_rank=5, noise=5.0, random_state=24)),
        CorpusTask("reg-sparse", R, T, "reg-sparse", _gen(
            "make_sparse_uncorrelated", classes=False, n_samples=1000, n_features=12,
            random_state=25)),
        CorpusTask("reg-nonlinear", R, T, "reg-nonlinear", _nonlinear_regression(1200, 8, 0.3,
                   26)),
        CorpusTask("reg-nonlinear-small", R, T, "reg-nonlinear-small",
                   _nonlinear_regression(250, 5, 0.5, 27)),
        # time-series anomaly detection
        CorpusTask("ts-spikes-p24", A, TS, "ts-spikes-p24", _series(2000, 24, 0.2, "spike", 30)),
        CorpusTask("ts-spikes-p100", A, TS, "ts-spikes-p100",
                   _series(3000, 100, 0.3, "spike", 31)),
        CorpusTask("ts-shift-p50", A, TS, "ts-shift-p50", _series(2500, 50, 0.2, "shift", 32)),
        CorpusTask("ts-shift-walk", A, TS, "ts-shift-walk",
                   _series(2000, 0, 0.1, "shift", 33, walk=True)),
        CorpusTask("ts-burst-p168", A, TS, "ts-burst-p168",
                   _series(3000, 168, 0.15, "burst", 34, trend=2.0)),
        CorpusTask("ts-burst-p30", A, TS, "ts-burst-p30", _series(2000, 30, 0.3, "burst", 35)),
        CorpusTask("ts-pattern-p60", A, TS, "ts-pattern-p60",
                   _series(2400, 60, 0.1, "pattern", 36)),
        CorpusTask("ts-spikes-walk", A, TS, "ts-spikes-walk",
                   _series(2000, 0, 0.4, "spike", 37, walk=True)),
    ]
    return tasks


def _gen_bundled_reg(loader: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        from sklearn import datasets

        X, y = getattr(datasets, loader)(return_X_y=True)
        return Dataset(X=X.astype(float), y=(y - y.mean()) / y.std())
    return load


#: how many random extra tasks per category (the same shares as the 40 tasks of corpus())
EXTRA = {"classification": 22, "regression": 10, "anomaly_detection": 8}
EXTRA_SEED = 2026


def extra(seed: int = EXTRA_SEED) -> list[CorpusTask]:
    """Tasks drawn at random: per category (:data:`EXTRA` of each), a generator family whose
    every draw is a new random structure (make_classification, blobs, customer-like mixed data;
    make_regression, random additive functions; seasonal or random-walk series with one kind of
    anomaly), then its parameters uniformly over wide ranges. Fixed-form generators (hastie,
    friedman, moons, circles, ...) are left out: their draws differ from a target of the same
    generator only in noise and size, i.e. they would be near-duplicates. Declared before any
    was scored, not chosen with any target in mind. Names ``x<NN>-<family>``; each task is
    its own group."""
    rng = np.random.default_rng(seed)
    C, R, A = "classification", "regression", "anomaly_detection"
    out: list[CorpusTask] = []

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    def i(lo: int, hi: int) -> int:  # inclusive
        return int(rng.integers(lo, hi + 1))

    def add(category: str, family: str, load: Callable[[], Dataset],
            modality: str = "tabular") -> None:
        name = f"x{len(out) + 1:02d}-{family}"
        out.append(CorpusTask(name, category, modality, name, load))

    for _ in range(EXTRA[C]):
        family = str(rng.choice(["classification", "blobs", "mixed"]))
        state = i(100, 10_000)
        if family == "classification":
            informative = i(2, 12)
            classes = int(rng.choice([2, 2, 2, 3, 4]))
            clusters = i(1, max(1, min(3, 2 ** informative // classes)))
            features = i(informative + 1, 60)
            redundant = i(0, min(10, features - informative))
            weights = [u(0.6, 0.95)] if classes == 2 and rng.random() < 0.3 else None
            add(C, family, _gen("make_classification", n_samples=i(200, 1500),
                                n_features=features, n_informative=informative,
                                n_redundant=redundant, n_classes=classes,
                                n_clusters_per_class=clusters, weights=weights,
                                class_sep=u(0.5, 2.0), flip_y=u(0.0, 0.1),
                                random_state=state))
        elif family == "blobs":
            add(C, family, _gen("make_blobs", n_samples=i(200, 1500), n_features=i(2, 20),
                                centers=i(2, 6), cluster_std=u(1.0, 6.0), random_state=state))
        else:
            add(C, family, _mixed(i(200, 1500), i(2, 15), i(1, 8), u(0.1, 0.45), state,
                                  u(0.0, 2.0)))
    for _ in range(EXTRA[R]):
        state = i(100, 10_000)
        if rng.random() < 0.5:
            features = i(5, 60)
            rank = {"effective_rank": i(2, 10)} if rng.random() < 0.4 else {}
            add(R, "regression", _gen("make_regression", classes=False, n_samples=i(200, 1500),
                                      n_features=features, n_informative=i(2, features),
                                      noise=u(0.0, 40.0), random_state=state, **rank))
        else:
            add(R, "additive", _additive(i(200, 1500), i(3, 20), i(2, 6), u(0.05, 1.0), state))
    for _ in range(EXTRA[A]):
        kind = str(rng.choice(["spike", "shift", "burst", "pattern"]))
        walk = kind != "pattern" and rng.random() < 0.25
        period = 0 if walk else i(12, 200)
        add(A, f"ts-{kind}", _series(i(1500, 3000), period, u(0.05, 0.4), kind, i(100, 10_000),
                                    trend=u(0.0, 2.0), walk=walk), modality="time_series")
    return out


def _additive(n: int, d: int, active: int, noise: float, seed: int) -> Callable[[], Dataset]:
    """y = a random sum of ``active`` shape functions (sine, |x|, square, step) of random
    columns, plus one random pairwise product, plus noise (standardised)."""
    def load() -> Dataset:
        rng = np.random.default_rng(seed)
        X = rng.uniform(-2, 2, (n, d))
        shapes = [np.sin, np.abs, np.square, lambda v: (v > 0).astype(float)]
        cols = rng.choice(d, min(active, d), replace=False)
        y = sum(rng.normal(0, 1) * shapes[int(rng.integers(4))](rng.uniform(0.5, 2) * X[:, c])
                for c in cols)
        a, b = rng.choice(d, 2, replace=False)
        y = y + rng.normal(0, 1) * X[:, a] * X[:, b] + rng.normal(0, noise, n)
        return Dataset(X=X, y=(y - y.mean()) / y.std())
    return load


#: share of a task's data in its retraining twin, and the seed of the draws
RETRAIN_SHARE = 0.7
RETRAIN_SEED = 2027


def retrain(seed: int = RETRAIN_SEED, share: float = RETRAIN_SHARE) -> list[CorpusTask]:
    """Each task of :func:`corpus` on a fresh sample of its data, as when a pipeline retrains:
    a seeded ``share`` of the rows (stratified for classification) of a tabular or image task,
    a contiguous ``share`` of a series at a seeded offset. Names ``<task>@retrain``; each twin
    is its own group, so leave-one-task-out with the original as the target keeps its twin.
    Declared before any twin was scored."""
    return [CorpusTask(f"{t.name}@retrain", t.category, t.modality, f"{t.name}@retrain",
                       _share_of(t.load, share, seed + i, t.category == "classification"),
                       t.metric)
            for i, t in enumerate(corpus())]


def _share_of(load: Callable[[], Dataset], share: float, seed: int,
              classes: bool) -> Callable[[], Dataset]:
    def twin() -> Dataset:
        ds = load()
        rng = np.random.default_rng(seed)
        if ds.series is not None:
            assert ds.labels is not None
            n = len(ds.series)
            m = int(share * n)
            at = int(rng.integers(0, n - m + 1))
            return replace(ds, series=ds.series[at:at + m], labels=ds.labels[at:at + m])
        assert ds.X is not None and ds.y is not None
        X, y = _subsample(ds.X, ds.y, seed, classes, n=int(share * len(ds.X)))
        return replace(ds, X=X, y=y)
    return twin

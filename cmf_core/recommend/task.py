"""Task descriptions: what a task is (category, modality) and what its data looks like.

A :class:`TaskDescription` is the node of the knowledge graph. Its ``meta_features`` are numbers
computed from the data, each normalised to [0, 1] by a fixed, documented transform (see
:data:`META_FEATURES` and docs/recommender.md), so that tasks of any size can be compared.
``raw`` keeps the untransformed values for explanations.

Groups of meta-features (``groups`` argument):

* ``simple``: sizes, types, missing values, classes (always cheap).
* ``statistical``: skewness, kurtosis, correlations, PCA dimensionality, outliers.
* ``info``: class entropy and feature/target mutual information (quantile-binned).
* ``landmark`` (opt-in, costs a few model fits): cross-validated scores of a 1-NN, a decision
  stump and a linear model.

Time series get their own simple/statistical/info features (autocorrelation, seasonality,
trend, spectral entropy, ...). Texts get size/vocabulary features plus class balance.

Entry points: :func:`describe_arrays`, :func:`describe_series`, :func:`describe_texts` and
:func:`describe_csv` (a dataset path, read with the ``csv`` module). The description travels as
a plain dict (:meth:`TaskDescription.to_dict`), e.g. as the ``cmf.task`` property of an execution.
"""

from __future__ import annotations

import csv
import difflib
import enum
import gzip
import hashlib
import math
import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from cmf_core import jsonutil
from cmf_core.errors import InvalidInputError
from cmf_core.model._base import whole_number

SCHEMA_VERSION = 1
DEFAULT_GROUPS: tuple[str, ...] = ("simple", "statistical", "info")
ALL_GROUPS: tuple[str, ...] = (*DEFAULT_GROUPS, "landmark")
TASK_PROPERTY = "cmf.task"
#: the name of the placeholder task a recommend-seed step that could not describe its task
#: returns; such a description is not knowledge (``knowledge.task_properties`` refuses it)
UNDESCRIBED = "(task not described)"


class Category(enum.StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    ANOMALY_DETECTION = "anomaly_detection"
    CLUSTERING = "clustering"
    FORECASTING = "forecasting"


class Modality(enum.StrEnum):
    TABULAR = "tabular"
    TIME_SERIES = "time_series"
    IMAGE = "image"
    TEXT = "text"


def _parse_enum(cls: type[enum.StrEnum], value: Any, what: str) -> Any:
    text = str(getattr(value, "value", value)).strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return cls(text)
    except ValueError:
        known = ", ".join(m.value for m in cls)
        raise InvalidInputError(f"unknown task {what} {value!r}; use one of: {known}") from None


def parse_category(value: Any) -> Category:
    """``'Anomaly detection'`` -> ``Category.ANOMALY_DETECTION``; unknown values raise."""
    return _parse_enum(Category, value, "category")


def parse_modality(value: Any) -> Modality:
    """``'time-series'`` -> ``Modality.TIME_SERIES``; unknown values raise."""
    return _parse_enum(Modality, value, "modality")


# meta-feature registry ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MetaFeature:
    """A meta-feature: its group, the modalities it applies to, and its [0, 1] transform."""

    name: str
    group: str
    modalities: tuple[str, ...]
    description: str
    transform: str


_TAB = ("tabular", "image")
_TS = ("time_series",)
_TXT = ("text",)

META_FEATURES: tuple[MetaFeature, ...] = (
    # tabular / image ----------------------------------------------------------------------
    MetaFeature("n_rows", "simple", (*_TAB, *_TXT), "number of rows (examples)",
                "log10(n) / 6"),
    MetaFeature("n_features", "simple", _TAB, "number of input columns", "log10(d) / 4"),
    MetaFeature("dimensionality", "simple", _TAB, "columns per row d/n", "(log10(d/n) + 4) / 5"),
    MetaFeature("frac_categorical", "simple", _TAB, "share of categorical columns", "as is"),
    MetaFeature("frac_missing", "simple", _TAB, "share of missing cells", "sqrt(x)"),
    MetaFeature("n_classes", "simple", (*_TAB, *_TXT), "number of target classes",
                "log2(c) / log2(100)"),
    MetaFeature("class_balance", "simple", (*_TAB, *_TXT), "minority / majority class size",
                "as is"),
    MetaFeature("mean_abs_skew", "statistical", _TAB, "mean |skewness| of numeric columns",
                "x / (1 + x)"),
    MetaFeature("mean_kurtosis", "statistical", _TAB, "mean excess kurtosis of numeric columns",
                "(x / (1 + |x|) + 1) / 2"),
    MetaFeature("mean_abs_corr", "statistical", _TAB, "mean |Pearson r| between columns",
                "as is"),
    MetaFeature("pca_95", "statistical", _TAB,
                "share of principal components needed for 95% of the variance", "as is"),
    MetaFeature("outlier_frac", "statistical", _TAB, "share of cells with |z| > 3", "sqrt(x)"),
    MetaFeature("max_target_corr", "statistical", _TAB,
                "largest column/target association (|r|, or correlation ratio for classes)",
                "as is"),
    MetaFeature("mean_target_corr", "statistical", _TAB,
                "mean column/target association", "as is"),
    MetaFeature("target_entropy", "info", (*_TAB, *_TXT),
                "entropy of the class (or 10-bin target) distribution / its maximum", "as is"),
    MetaFeature("mean_mutual_info", "info", _TAB,
                "mean I(column; target) / H(target), columns and target in <= 10 bins", "as is"),
    MetaFeature("max_mutual_info", "info", _TAB, "largest I(column; target) / H(target)",
                "as is"),
    MetaFeature("landmark_1nn", "landmark", _TAB, "3-fold score of 1-nearest-neighbour",
                "score clipped to [0, 1]"),
    MetaFeature("landmark_stump", "landmark", _TAB, "3-fold score of a depth-1 tree",
                "score clipped to [0, 1]"),
    MetaFeature("landmark_linear", "landmark", _TAB,
                "3-fold score of a linear model (logistic / ridge)", "score clipped to [0, 1]"),
    # time series --------------------------------------------------------------------------
    MetaFeature("length", "simple", _TS, "number of time steps", "log10(n) / 6"),
    MetaFeature("n_channels", "simple", _TS, "number of value columns", "log10(c) / 3"),
    MetaFeature("lag1_autocorr", "statistical", _TS, "autocorrelation at lag 1", "(r + 1) / 2"),
    MetaFeature("seasonality", "statistical", _TS,
                "largest autocorrelation after the first zero crossing", "max(r, 0)"),
    MetaFeature("period", "statistical", _TS, "lag of that autocorrelation peak",
                "log10(p) / 4"),
    MetaFeature("trend", "statistical", _TS, "R^2 of a linear fit over time", "as is"),
    MetaFeature("roughness", "statistical", _TS, "std of differences / (sqrt(2) std)",
                "min(x, 1)"),
    MetaFeature("spike_frac", "statistical", _TS,
                "share of steps whose difference has robust |z| > 5", "sqrt(x)"),
    MetaFeature("ts_skew", "statistical", _TS, "|skewness| of the values", "x / (1 + x)"),
    MetaFeature("ts_kurtosis", "statistical", _TS, "excess kurtosis of the values",
                "(x / (1 + |x|) + 1) / 2"),
    MetaFeature("spectral_entropy", "info", _TS, "entropy of the power spectrum / its maximum",
                "as is"),
    MetaFeature("permutation_entropy", "info", _TS,
                "order-3 permutation entropy / log(3!)", "as is"),
    # text ---------------------------------------------------------------------------------
    MetaFeature("mean_tokens", "simple", _TXT, "mean whitespace tokens per document",
                "log10(x) / 4"),
    MetaFeature("vocabulary", "simple", _TXT, "distinct lower-cased tokens", "log10(v) / 7"),
    MetaFeature("type_token_ratio", "statistical", _TXT, "distinct tokens / all tokens",
                "as is"),
)
META_FEATURE_NAMES = frozenset(m.name for m in META_FEATURES)


# the record -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TaskDescription:
    """What a task is and what its data looks like.

    ``name`` is for people; ``id`` (given, else derived from the content) identifies the task in
    the knowledge graph. ``group`` names the data source: tasks sharing it are near-duplicates
    (the same data subsampled or with another target) and are left out together in benchmarks.
    """

    name: str
    category: Category
    modality: Modality = Modality.TABULAR
    meta_features: Mapping[str, float] = field(default_factory=dict)
    raw: Mapping[str, float] = field(default_factory=dict)
    metric: str | None = None
    group: str | None = None
    task_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInputError(f"task name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "category", parse_category(self.category))
        object.__setattr__(self, "modality", parse_modality(self.modality))
        mf: dict[str, float] = {}
        for what, value in (("meta_features", self.meta_features), ("raw", self.raw)):
            if value is not None and not isinstance(value, Mapping):
                raise InvalidInputError(f"{what} of task {self.name!r} must be a mapping of "
                                        f"names to numbers, got {type(value).__name__}")
        for key, value in dict(self.meta_features or {}).items():
            if key not in META_FEATURE_NAMES:
                raise InvalidInputError(
                    f"unknown meta-feature {key!r} in task {self.name!r}; known: "
                    f"{', '.join(sorted(META_FEATURE_NAMES))}"
                )
            v = _as_float(value, f"meta-feature {key!r} of task {self.name!r}")
            if not 0.0 <= v <= 1.0:
                raise InvalidInputError(
                    f"meta-feature {key!r} of task {self.name!r} is {v}, outside [0, 1]; "
                    "meta-features must be normalised (compute them with describe_*)"
                )
            mf[key] = v
        object.__setattr__(self, "meta_features", MappingProxyType(mf))
        raw = {str(k): _as_float(v, f"raw value {k!r}") for k, v in dict(self.raw or {}).items()}
        object.__setattr__(self, "raw", MappingProxyType(raw))

    @property
    def id(self) -> str:
        """The given ``task_id``, else ``task-<hash of name, category, modality, features>``."""
        if self.task_id:
            return self.task_id
        body = jsonutil.dumps({"name": self.name, "category": self.category.value,
                               "modality": self.modality.value,
                               "mf": {k: round(v, 4) for k, v in self.meta_features.items()}})
        return "task-" + hashlib.sha256(body.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (the ``cmf.task`` property of an execution)."""
        out: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "id": self.id,
            "name": self.name,
            "category": self.category.value,
            "modality": self.modality.value,
            "meta_features": {k: round(v, 6) for k, v in sorted(self.meta_features.items())},
            "raw": {k: _round_sig(v) for k, v in sorted(self.raw.items())},
        }
        if self.metric:
            out["metric"] = self.metric
        if self.group:
            out["group"] = self.group
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | TaskDescription) -> TaskDescription:
        """Parse the dict form; unknown keys, categories or modalities raise naming the value."""
        if isinstance(data, TaskDescription):
            return data
        if not isinstance(data, Mapping):
            raise InvalidInputError(
                f"a task description must be a mapping, got {type(data).__name__}"
            )
        known = {"schema", "id", "name", "category", "modality", "meta_features", "raw",
                 "metric", "group"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown task description key(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known))}"
            )
        if "category" not in data:
            raise InvalidInputError(
                "a task description needs a 'category' (one of "
                f"{', '.join(c.value for c in Category)})"
            )
        schema = data.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise InvalidInputError(
                f"task description schema {schema!r} is not supported (this version reads "
                f"{SCHEMA_VERSION}); upgrade cmf-foundation"
            )
        return cls(
            name=str(data.get("name") or data.get("id") or "task"),
            category=data["category"],
            modality=data.get("modality", Modality.TABULAR),
            meta_features=data.get("meta_features") or {},
            raw=data.get("raw") or {},
            metric=data.get("metric"),
            group=data.get("group"),
            task_id=data.get("id"),
        )


def _as_float(value: Any, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} {value!r} is not a number") from None
    if not math.isfinite(v):
        raise InvalidInputError(f"{what} is {v}, not a finite number")
    return v


def _round_sig(v: float, digits: int = 6) -> float:
    if v == 0 or not math.isfinite(v):
        return v
    return round(v, digits - 1 - math.floor(math.log10(abs(v))))


# helpers --------------------------------------------------------------------------------------
def _unit(mf: Mapping[str, float]) -> dict[str, float]:
    """Clip floating-point spill (1.0000000000000002) back into [0, 1]."""
    return {k: _clip01(v) for k, v in mf.items()}


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _logscale(x: float, decades: float) -> float:
    return _clip01(math.log10(max(x, 1.0)) / decades)


def _skew_kurt(col: np.ndarray) -> tuple[float, float] | None:
    sd = col.std()
    if len(col) < 3 or sd <= 1e-12:
        return None
    z = (col - col.mean()) / sd
    return float(np.mean(z**3)), float(np.mean(z**4) - 3.0)


def _quantile_bins(col: np.ndarray, bins: int = 10) -> np.ndarray:
    uniq = np.unique(col)
    if len(uniq) <= bins:
        return np.searchsorted(uniq, col)
    edges = np.unique(np.quantile(col, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, col, side="right")


def _entropy(codes: np.ndarray) -> float:
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    joint = a.astype(np.int64) * (int(b.max()) + 1) + b.astype(np.int64)
    return max(0.0, _entropy(a) + _entropy(b) - _entropy(joint))


def _check_rows(n: int, what: str) -> None:
    if n < 2:
        raise InvalidInputError(
            f"{what} has {n} row(s); a task description needs at least 2 rows of data"
        )


def _target_array(y: Any, n: int, what: str) -> np.ndarray:
    """``y`` as a 1-D array of ``n`` values (a column vector is flattened)."""
    ya = np.asarray(y)
    if ya.ndim == 2 and ya.shape[1] == 1:
        ya = ya[:, 0]
    if ya.ndim != 1:
        raise InvalidInputError(f"y must be one value per row (1-D), got shape {ya.shape}")
    if ya.shape[0] != n:
        raise InvalidInputError(f"y has {ya.shape[0]} rows but {what}")
    return ya


def _missing(y: np.ndarray) -> np.ndarray:
    """Which of the target's values are NaN or None."""
    if y.dtype.kind in "fc":
        return np.isnan(y)
    if y.dtype.kind == "O":
        return np.array([v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))
                         for v in y], dtype=bool)
    return np.zeros(len(y), dtype=bool)


def _target_codes(y: np.ndarray, category: Category) -> tuple[np.ndarray, bool]:
    """Integer codes of the target and whether it is treated as classes."""
    if category is Category.CLASSIFICATION:
        _, codes = np.unique(np.asarray(y).astype(str), return_inverse=True)
        return codes, True
    yf = np.asarray(y, dtype=float)
    return _quantile_bins(yf), False


# tabular --------------------------------------------------------------------------------------
MAX_ABS = 1e150  # the largest input value: squared and summed over rows it stays finite


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def describe_arrays(X: Any, y: Any = None, *, category: Category | str,
                    modality: Modality | str = Modality.TABULAR, name: str = "task",
                    categorical: Sequence[bool] | None = None,
                    groups: Sequence[str] = DEFAULT_GROUPS, metric: str | None = None,
                    group: str | None = None, max_rows: int = 20_000,
                    seed: int = 0, columns: Sequence[str] | None = None) -> TaskDescription:
    """Describe a tabular (or flattened image) dataset ``X`` (rows x columns) with target ``y``.

    ``categorical`` marks columns holding category codes; NaN marks missing cells. Rows beyond
    ``max_rows`` are subsampled (seeded) for the statistics; sizes use the full data.
    ``columns`` names the columns in error messages.
    """
    cat = parse_category(category)
    mod = parse_modality(modality)
    groups = _check_groups(groups)
    try:
        Xa = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        raise InvalidInputError(
            "X must be numeric (encode categorical columns as codes and mark them with "
            "categorical=[...])"
        ) from None
    if Xa.ndim == 1:
        Xa = Xa.reshape(-1, 1)
    if Xa.ndim > 2:
        Xa = Xa.reshape(Xa.shape[0], -1)
    n, d = Xa.shape if Xa.ndim == 2 else (0, 0)
    _check_rows(n, f"dataset {name!r}")
    if d == 0:
        raise InvalidInputError(f"dataset {name!r} has no input columns")
    cat_mask = np.zeros(d, bool) if categorical is None else np.asarray(categorical, bool)
    if cat_mask.shape != (d,):
        raise InvalidInputError(
            f"categorical has {cat_mask.size} entries but X has {d} columns"
        )
    ya = None
    if y is not None:
        ya = _target_array(y, n, f"X has {n}")
    if cat in (Category.CLASSIFICATION, Category.REGRESSION) and ya is None:
        raise InvalidInputError(f"a {cat.value} task needs a target y (column)")

    raw: dict[str, float] = {"n_rows": n, "n_features": d}
    mf: dict[str, float] = {"n_rows": _logscale(n, 6), "n_features": _logscale(d, 4),
                            "dimensionality": _clip01((math.log10(d / n) + 4) / 5),
                            "frac_categorical": float(cat_mask.mean())}
    missing = ~np.isfinite(Xa)
    raw["frac_missing"] = float(missing.mean())
    mf["frac_missing"] = math.sqrt(raw["frac_missing"])

    max_rows = whole_number(max_rows, "max_rows", 2)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, max_rows, replace=False)) if n > max_rows else np.arange(n)
    Xs = Xa[idx]
    ys = ya[idx] if ya is not None else None
    codes = is_classes = None
    if ys is not None:
        if cat is Category.CLASSIFICATION:
            lost = int(_missing(ya).sum())
            if lost:  # else NaN or None would be one more class
                raise InvalidInputError(
                    f"target of {name!r} has {lost} missing value(s) (NaN or None); drop "
                    "those rows")
            labels, counts = np.unique(np.asarray(ya).astype(str), return_counts=True)
            if len(labels) < 2:
                raise InvalidInputError(
                    f"target of {name!r} has a single class {str(labels[0])!r}; a classification "
                    "task needs at least 2 classes"
                )
            raw["n_classes"] = len(labels)
            raw["class_balance"] = float(counts.min() / counts.max())
            mf["n_classes"] = _clip01(math.log2(len(labels)) / math.log2(100))
            mf["class_balance"] = raw["class_balance"]
        else:
            try:
                yf = np.asarray(ys, dtype=float)
            except (TypeError, ValueError):
                text = next(v for v in np.asarray(ys).ravel() if not _is_number(v))
                raise InvalidInputError(
                    f"target of {name!r} holds the text {str(text)[:40]!r}; "
                    f"{_numeric_target(cat)}"
                ) from None
            if not np.isfinite(yf).all():
                raise InvalidInputError(
                    f"target of {name!r} has missing or non-numeric values; drop those rows"
                )
            if np.ptp(yf) == 0:
                raise InvalidInputError(f"target of {name!r} is constant; nothing to learn")
        codes, is_classes = _target_codes(ys, cat)

    # impute column medians for statistics; numeric columns only for moments
    with warnings.catch_warnings():  # an all-missing column has no median: it gets 0
        warnings.simplefilter("ignore", RuntimeWarning)
        col_med = np.nanmedian(np.where(np.isfinite(Xs), Xs, np.nan), axis=0)
    col_med = np.where(np.isfinite(col_med), col_med, 0.0)
    Xf = np.where(np.isfinite(Xs), Xs, col_med)
    largest = np.abs(Xf).max(axis=0)
    if (largest > MAX_ABS).any():  # their squares overflow: no variance, no SVD
        j = int(np.argmax(largest))
        column = repr(columns[j]) if columns and len(columns) == d else str(j + 1)
        raise InvalidInputError(
            f"input column {column} of {name!r} holds values as large as {largest[j]:.3g}; the "
            f"statistics need values within +-{MAX_ABS:g}: rescale it"
        )
    varying = Xf.std(axis=0) > 1e-12
    if not varying.any():
        raise InvalidInputError(
            f"every input column of {name!r} is constant or missing"
            f"{'' if n == len(idx) else f' (in the {len(idx)} rows sampled)'}; nothing to learn "
            "from"
        )
    numeric = varying & ~cat_mask

    if "statistical" in groups:
        sk = [r for j in np.flatnonzero(numeric) if (r := _skew_kurt(Xf[:, j])) is not None]
        if sk:
            s = float(np.mean([abs(a) for a, _ in sk]))
            k = float(np.mean([b for _, b in sk]))
            raw["mean_abs_skew"], raw["mean_kurtosis"] = s, k
            mf["mean_abs_skew"] = s / (1 + s)
            mf["mean_kurtosis"] = (k / (1 + abs(k)) + 1) / 2
        cols = np.flatnonzero(varying)
        if len(cols) > 50:
            cols = np.sort(rng.choice(cols, 50, replace=False))
        if len(cols) >= 2:
            c = np.corrcoef(Xf[:, cols], rowvar=False)
            mf["mean_abs_corr"] = float(np.nanmean(np.abs(c[np.triu_indices(len(cols), 1)])))
        if varying.any():
            Z = Xf[:, varying]
            Z = (Z - Z.mean(0)) / Z.std(0)
            sv = np.linalg.svd(Z[: min(len(Z), 5000)], compute_uv=False) ** 2
            share = np.cumsum(sv) / sv.sum()
            mf["pca_95"] = float((np.searchsorted(share, 0.95) + 1) / Z.shape[1])
            if numeric.any():
                zn = (Xf[:, numeric] - Xf[:, numeric].mean(0)) / Xf[:, numeric].std(0)
                raw["outlier_frac"] = float((np.abs(zn) > 3).mean())
                mf["outlier_frac"] = math.sqrt(raw["outlier_frac"])
        if codes is not None and varying.any():
            assoc = [_association(Xf[:, j], ys, codes, bool(is_classes))
                     for j in np.flatnonzero(varying)]
            mf["max_target_corr"] = _clip01(max(assoc))
            mf["mean_target_corr"] = _clip01(float(np.mean(assoc)))

    if "info" in groups and codes is not None:
        hy = _entropy(codes)
        k = len(np.unique(codes))
        mf["target_entropy"] = hy / math.log(k) if k > 1 else 0.0
        if hy > 0 and varying.any():
            mis = [_mutual_info(_quantile_bins(Xf[:, j]), codes) / hy
                   for j in np.flatnonzero(varying)]
            mf["mean_mutual_info"] = _clip01(float(np.mean(mis)))
            mf["max_mutual_info"] = _clip01(float(np.max(mis)))

    if "landmark" in groups and ys is not None:
        mf.update(_landmarks(Xf, ys, cat, seed))

    return TaskDescription(name=name, category=cat, modality=mod, meta_features=_unit(mf), raw=raw,
                           metric=metric, group=group)


def _association(col: np.ndarray, y: np.ndarray, codes: np.ndarray, classes: bool) -> float:
    if classes:  # correlation ratio eta
        total = ((col - col.mean()) ** 2).sum()
        if total <= 0:
            return 0.0
        counts = np.bincount(codes)  # per-class means in one pass: 1,000 classes x 2,000
        ok = counts > 0               # columns looped over in Python took minutes
        means = np.bincount(codes, weights=col)[ok] / counts[ok]
        between = float((((means - col.mean()) ** 2) * counts[ok]).sum())
        return math.sqrt(between / total)
    yf = np.asarray(y, dtype=float)
    if yf.std() <= 0:
        return 0.0
    r = np.corrcoef(col, yf)[0, 1]
    return abs(float(r)) if np.isfinite(r) else 0.0


def _landmarks(X: np.ndarray, y: np.ndarray, cat: Category, seed: int) -> dict[str, float]:
    try:
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise InvalidInputError(
            "landmark meta-features need scikit-learn: install cmf-foundation[recommend] or "
            "leave 'landmark' out of groups"
        ) from e
    rng = np.random.default_rng(seed)
    if len(X) > 2000:
        keep = np.sort(rng.choice(len(X), 2000, replace=False))
        X, y = X[keep], y[keep]
    if cat is Category.CLASSIFICATION:
        yc = np.unique(np.asarray(y).astype(str), return_inverse=True)[1]
        folds = min(3, int(np.bincount(yc).min()))
        if folds < 2:
            return {}
        cv: Any = StratifiedKFold(folds, shuffle=True, random_state=seed)
        models = {"landmark_1nn": KNeighborsClassifier(1),
                  "landmark_stump": DecisionTreeClassifier(max_depth=1, random_state=seed),
                  "landmark_linear": LogisticRegression(max_iter=200)}
        scoring, target = "balanced_accuracy", yc
    elif cat is Category.REGRESSION:
        if len(X) < 6:  # 3 folds of at least 2 rows each, for an r2 score per fold
            return {}
        cv = KFold(3, shuffle=True, random_state=seed)
        models = {"landmark_1nn": KNeighborsRegressor(1),
                  "landmark_stump": DecisionTreeRegressor(max_depth=1, random_state=seed),
                  "landmark_linear": Ridge()}
        scoring, target = "r2", np.asarray(y, float)
    else:
        return {}
    out = {}
    for key, model in models.items():
        scores = cross_val_score(make_pipeline(StandardScaler(), model), X, target, cv=cv,
                                 scoring=scoring)
        out[key] = _clip01(float(np.mean(scores)))
    return out


def _check_groups(groups: Sequence[str] | str) -> tuple[str, ...]:
    """The groups as a tuple (one name alone is one group, not its letters), all known."""
    groups = (groups,) if isinstance(groups, str) else tuple(groups)
    bad = [g for g in groups if g not in ALL_GROUPS]
    if bad:
        raise InvalidInputError(
            f"unknown meta-feature group(s) {', '.join(map(repr, bad))}; known: "
            f"{', '.join(ALL_GROUPS)}"
        )
    return groups


def _numeric_target(cat: Category) -> str:
    """'a regression target must be numeric (...)', with the right article and hint."""
    hint = ("1 = anomaly, 0 = normal" if cat is Category.ANOMALY_DETECTION
            else "or is this a classification task?")
    article = "an" if cat.value[0] in "aeiou" else "a"
    return f"{article} {cat.value} target must be numeric ({hint})"


# time series ----------------------------------------------------------------------------------
def _acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    x = x - x.mean()
    n = len(x)
    f = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(f * np.conj(f))[: max_lag + 1]
    return ac / ac[0] if ac[0] > 0 else np.zeros(max_lag + 1)


def describe_series(values: Any, *, category: Category | str = Category.ANOMALY_DETECTION,
                    name: str = "series", groups: Sequence[str] = DEFAULT_GROUPS,
                    metric: str | None = None, group: str | None = None) -> TaskDescription:
    """Describe a time series: a 1-D array, or 2-D (time x channels; features use the mean of
    the standardised channels). NaN steps are dropped."""
    cat = parse_category(category)
    groups = _check_groups(groups)
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise InvalidInputError(f"series {name!r} must be numeric") from None
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.size == 0:
        raise InvalidInputError(f"series {name!r} is empty; give at least 16 time steps")
    channels = arr.shape[1]
    ok = np.isfinite(arr).all(axis=1)
    arr = arr[ok]
    n = len(arr)
    if n < 16:
        raise InvalidInputError(
            f"series {name!r} has {n} usable time step(s); give at least 16"
        )
    sd = arr.std(axis=0)
    if (sd <= 1e-12).all():
        raise InvalidInputError(f"series {name!r} is constant; nothing to describe")
    arr = arr[:, sd > 1e-12]
    x = ((arr - arr.mean(0)) / arr.std(0)).mean(axis=1)
    raw: dict[str, float] = {"length": n, "n_channels": channels}
    mf: dict[str, float] = {"length": _logscale(n, 6), "n_channels": _logscale(channels, 3)}
    if "statistical" in groups:
        max_lag = min(n // 2, 2000)
        ac = _acf(x, max_lag)
        mf["lag1_autocorr"] = _clip01((ac[1] + 1) / 2)
        neg = np.flatnonzero(ac[1:] <= 0)
        period, season = 1, 0.0
        if len(neg):
            start = int(neg[0]) + 1
            if start < len(ac) - 1:
                period = start + int(np.argmax(ac[start:]))
                season = max(0.0, float(ac[period]))
        raw["period"] = period
        mf["seasonality"] = _clip01(season)
        mf["period"] = _logscale(period, 4)
        t = np.arange(n, dtype=float)
        r = np.corrcoef(t, x)[0, 1]
        mf["trend"] = _clip01(float(r * r)) if np.isfinite(r) else 0.0
        d = np.diff(x)
        mf["roughness"] = _clip01(float(d.std() / (math.sqrt(2) * x.std())))
        med = np.median(d)
        mad = np.median(np.abs(d - med)) * 1.4826 or d.std() or 1.0
        raw["spike_frac"] = float((np.abs(d - med) / mad > 5).mean())
        mf["spike_frac"] = math.sqrt(raw["spike_frac"])
        sk = _skew_kurt(x)
        if sk is not None:
            mf["ts_skew"] = abs(sk[0]) / (1 + abs(sk[0]))
            mf["ts_kurtosis"] = (sk[1] / (1 + abs(sk[1])) + 1) / 2
    if "info" in groups:
        p = np.abs(np.fft.rfft(x - x.mean()))[1:] ** 2
        if p.sum() > 0 and len(p) > 1:
            p = p / p.sum()
            nz = p[p > 0]
            mf["spectral_entropy"] = _clip01(float(-(nz * np.log(nz)).sum() / math.log(len(p))))
        if n >= 4:
            w = np.lib.stride_tricks.sliding_window_view(x, 3)
            patterns = np.argsort(w, axis=1, kind="stable")
            code = patterns[:, 0] * 9 + patterns[:, 1] * 3 + patterns[:, 2]
            mf["permutation_entropy"] = _clip01(_entropy(code) / math.log(6))
    return TaskDescription(name=name, category=cat, modality=Modality.TIME_SERIES,
                           meta_features=_unit(mf), raw=raw, metric=metric, group=group)


# text -----------------------------------------------------------------------------------------
def describe_texts(texts: Sequence[str], y: Any = None, *, category: Category | str,
                   name: str = "texts", metric: str | None = None,
                   group: str | None = None) -> TaskDescription:
    """Describe a text dataset: sizes, vocabulary, and class balance when ``y`` is given."""
    cat = parse_category(category)
    docs = [str(t) for t in texts]
    _check_rows(len(docs), f"text dataset {name!r}")
    tokens = [t.lower().split() for t in docs]
    total = sum(len(t) for t in tokens)
    if total == 0:
        raise InvalidInputError(f"text dataset {name!r} has only empty documents")
    vocab = len({w for t in tokens for w in t})
    raw = {"n_rows": len(docs), "mean_tokens": total / len(docs), "vocabulary": vocab}
    mf = {"n_rows": _logscale(len(docs), 6), "mean_tokens": _logscale(total / len(docs), 4),
          "vocabulary": _logscale(vocab, 7), "type_token_ratio": vocab / total}
    if y is not None:
        ya = _target_array(y, len(docs), f"there are {len(docs)} texts")
        if cat is not Category.CLASSIFICATION:
            try:
                yf = ya.astype(float)
            except (TypeError, ValueError):
                raise InvalidInputError(
                    f"target of {name!r} holds text; {_numeric_target(cat)}") from None
            if not np.isfinite(yf).all():
                raise InvalidInputError(
                    f"target of {name!r} has missing or non-numeric values; drop those rows")
        codes, _ = _target_codes(ya, cat)
        counts = np.bincount(codes)
        counts = counts[counts > 0]
        if cat is Category.CLASSIFICATION:
            if len(counts) < 2:
                raise InvalidInputError(f"target of {name!r} has a single class")
            mf["n_classes"] = _clip01(math.log2(len(counts)) / math.log2(100))
            mf["class_balance"] = float(counts.min() / counts.max())
            raw["n_classes"] = len(counts)
        if len(counts) > 1:
            mf["target_entropy"] = _entropy(codes) / math.log(len(counts))
    return TaskDescription(name=name, category=cat, modality=Modality.TEXT, meta_features=_unit(mf),
                           raw=raw, metric=metric, group=group)


# CSV ------------------------------------------------------------------------------------------
MISSING = frozenset({"", "na", "nan", "null", "none", "?", "n/a"})


@dataclass(frozen=True, slots=True)
class Table:
    """A CSV read into columns: numeric columns as floats (NaN = missing), the others as
    category codes (``categorical`` True, NaN = missing)."""

    columns: tuple[str, ...]
    values: np.ndarray
    categorical: tuple[bool, ...]
    levels: Mapping[str, tuple[str, ...]]

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.index(name)]

    def index(self, name: str) -> int:
        try:
            return self.columns.index(name)
        except ValueError:
            near = difflib.get_close_matches(name, self.columns, n=1, cutoff=0.6) or [
                c for c in self.columns if c.casefold() == str(name).casefold()]
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise InvalidInputError(
                f"column {name!r} is not in the table{hint}; columns are: "
                f"{', '.join(self.columns)}") from None

    def without(self, *names: str) -> Table:
        keep = [i for i, c in enumerate(self.columns) if c not in names]
        return Table(tuple(self.columns[i] for i in keep), self.values[:, keep],
                     tuple(self.categorical[i] for i in keep),
                     {c: v for c, v in self.levels.items() if c not in names})

    def one_hot(self) -> np.ndarray:
        """Model matrix: numeric columns as they are, categorical ones one-hot encoded."""
        parts = []
        for j, is_cat in enumerate(self.categorical):
            col = self.values[:, j]
            if not is_cat:
                parts.append(col[:, None])
                continue
            k = len(self.levels[self.columns[j]])
            onehot = np.zeros((len(col), k))
            ok = np.isfinite(col)
            onehot[np.flatnonzero(ok), col[ok].astype(int)] = 1.0
            parts.append(onehot)
        return np.hstack(parts) if parts else np.zeros((len(self.values), 0))


def read_csv(path: str | Path, *, max_rows: int | None = None,
             id_like_unique: float = 0.95, keep: Sequence[str] = (),
             sample: bool = False) -> Table:
    """Read a CSV with a header into a :class:`Table`.

    A file of more than ``max_rows`` data rows gives its first ``max_rows`` rows, or with
    ``sample`` a uniform sample of that many rows (seeded, in file order), so that a file
    sorted by its label or by time is still described as a whole.

    The file may be gzip-compressed. The delimiter (comma, semicolon, tab or bar) is detected
    from the first lines; with another than a comma, decimal commas are read. A column is
    numeric when at least 95% of its non-missing cells parse as numbers (the rest become
    missing); otherwise categorical. Text columns whose values are nearly all distinct
    (identifiers, ``id_like_unique``) are dropped, unless named in ``keep``.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"dataset {p} does not exist or is not a file")
    try:
        with p.open("rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        opener = gzip.open if gzipped else open
        with opener(p, "rt", newline="", encoding="utf-8-sig") as fh:
            delimiter = _delimiter(fh.read(SNIFF_CHARS))
            reader = csv.reader(fh, delimiter=delimiter)
            fh.seek(0)  # the utf-8-sig decoder skips a BOM again
            header = next(reader, None)
            width = len(header or ())
            rows: list[list[str]] = []
            lines: list[int] = []  # each kept row's line, for messages and the file order
            rng = random.Random(0)
            seen = 0
            for row in reader if header else ():
                if not row:
                    continue
                if len(row) != width:
                    raise InvalidInputError(
                        f"dataset {p} row {reader.line_num} has {len(row)} fields but the "
                        f"header has {width}")
                seen += 1
                if max_rows is None or seen <= max_rows:
                    rows.append(row)
                    lines.append(reader.line_num)
                elif not sample:
                    break
                elif (j := rng.randrange(seen)) < max_rows:  # reservoir sampling
                    rows[j], lines[j] = row, reader.line_num
            if sample and max_rows is not None and seen > max_rows:
                rows = [r for _, r in sorted(zip(lines, rows, strict=True),
                                             key=lambda lr: lr[0])]
    except UnicodeDecodeError:
        raise InvalidInputError(f"dataset {p} is not UTF-8 text; give a CSV file") from None
    except csv.Error as e:
        raise InvalidInputError(f"dataset {p} is not a readable CSV: {e}") from None
    except (OSError, EOFError) as e:  # a corrupt or truncated gzip file
        raise InvalidInputError(f"dataset {p} cannot be read: {e}") from None
    if not header:
        raise InvalidInputError(f"dataset {p} is empty; give a CSV with a header row and data")
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        twice = sorted({h for h in header if header.count(h) > 1})
        raise InvalidInputError(f"dataset {p} has duplicate column names in its header: "
                                f"{', '.join(map(repr, twice))}")
    if not rows:
        raise InvalidInputError(f"dataset {p} has a header but no data rows")
    cols, cat, levels, keep_names, dropped = [], [], {}, [], []
    for j, name in enumerate(header):
        cells = [r[j].strip() for r in rows]
        present = [c for c in cells if c.lower() not in MISSING]
        n_ok = sum(_is_number(c) for c in present)  # inf and -inf count, as missing cells
        if present and n_ok < 0.95 * len(present) and delimiter != ",":
            # decimal commas (a ';'-separated export in a European locale): 0,5 is 0.5
            commas = [c.replace(",", ".") if c.count(",") == 1 and "." not in c else c
                      for c in cells]
            present_c = [c for c in commas if c.lower() not in MISSING]
            if sum(_is_number(c) for c in present_c) >= 0.95 * len(present_c):
                cells, present, n_ok = commas, present_c, len(present_c)
        if present and n_ok >= 0.95 * len(present):
            cols.append(np.array([v if (v := _num(c)) is not None else np.nan for c in cells]))
            cat.append(False)
        else:
            uniq = sorted(set(present))
            if len(rows) >= 20 and len(uniq) >= id_like_unique * len(rows) and name not in keep:
                dropped.append(name)
                continue  # an identifier column carries no task information
            index = {u: i for i, u in enumerate(uniq)}
            cols.append(np.array([index.get(c, np.nan) for c in cells], dtype=float))
            cat.append(True)
            levels[name] = tuple(uniq)
        keep_names.append(name)
    if not keep_names:
        raise InvalidInputError(
            f"dataset {p} has no usable column: {', '.join(map(repr, dropped))} hold(s) a "
            "different text in nearly every row, so is dropped as an identifier; is the file "
            "separated by a comma, semicolon, tab or bar?")
    values = np.column_stack(cols) if cols else np.zeros((len(rows), 0))
    return Table(tuple(keep_names), values, tuple(cat), levels)


SNIFF_CHARS = 65_536  # how much of a CSV file its delimiter is detected from


def _delimiter(sample: str) -> str:
    """The delimiter of a CSV sample: the one of ``,;\t|`` that splits its header into the
    most fields (ignoring quoted text) and every other whole line into as many; a comma when
    none does."""
    lines = sample.splitlines()[:-1] or sample.splitlines()  # the last may be cut short
    best, most = ",", 1
    for d in ",;\t|":
        widths = {len(row) for row in csv.reader(lines[:50], delimiter=d) if row}
        if len(widths) == 1 and (n := widths.pop()) > most:
            best, most = d, n
    return best


def _num(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def describe_csv(path: str | Path, *, category: Category | str,
                 modality: Modality | str = Modality.TABULAR, target: str | None = None,
                 name: str | None = None, groups: Sequence[str] = DEFAULT_GROUPS,
                 time_column: str | None = None, value_columns: Sequence[str] | None = None,
                 metric: str | None = None, group: str | None = None,
                 max_rows: int | None = 1_000_000) -> TaskDescription:
    """Describe the dataset in a CSV file (see :func:`read_csv` for how columns are typed).

    A file of more than ``max_rows`` data rows is described from a uniform sample of
    ``max_rows`` rows (a time series from its first ``max_rows`` steps).

    Tabular: ``target`` names the label column (required for classification/regression).
    Time series: the numeric ``value_columns`` (default: every numeric column except
    ``time_column`` and ``target``) in file order.
    """
    cat = parse_category(category)
    mod = parse_modality(modality)
    named = [c for c in (target, time_column, *(value_columns or ())) if c is not None]
    # a time series needs consecutive steps (its first max_rows); a table a fair sample
    table = read_csv(path, max_rows=max_rows, keep=named, sample=mod is not Modality.TIME_SERIES)
    label = name or Path(Path(path).name.removesuffix(".gz")).stem  # churn.csv.gz: churn
    for column in named:
        table.index(column)  # a misspelt column name is an error, not silently ignored
    if mod is Modality.TIME_SERIES:
        drop = {c for c in (time_column, target) if c}
        names = list(value_columns) if value_columns else [
            c for c, is_cat in zip(table.columns, table.categorical, strict=True)
            if not is_cat and c not in drop]
        if not names:
            raise InvalidInputError(
                f"dataset {path} has no numeric value column for a time series; name them "
                "with value_columns"
            )
        values = np.column_stack([table.column(c) for c in names])
        return describe_series(values, category=cat, name=label, groups=groups, metric=metric,
                               group=group)
    if mod is Modality.TEXT:
        raise InvalidInputError(
            "describe_csv reads tabular and time-series data; for texts call describe_texts"
        )
    if cat in (Category.CLASSIFICATION, Category.REGRESSION) and target is None:
        raise InvalidInputError(
            f"a {cat.value} task needs target=<label column>; columns are: "
            f"{', '.join(table.columns)}"
        )
    y = None
    features = table
    if target is not None:
        ycol = table.column(target)
        keep = np.isfinite(ycol)
        if not keep.any():
            raise InvalidInputError(f"target column {target!r} of {path} has no values")
        features = table.without(target)
        if table.categorical[table.index(target)]:
            levels = table.levels[target]
            y = np.array([levels[int(v)] for v in ycol[keep]])
        else:
            y = ycol[keep]
        fvalues = features.values[keep]
    else:
        fvalues = features.values
    if fvalues.shape[1] == 0:
        raise InvalidInputError(f"dataset {path} has no input columns besides the target")
    return describe_arrays(fvalues, y, category=cat, modality=mod, name=label,
                           categorical=features.categorical, groups=groups, metric=metric,
                           group=group, columns=features.columns)



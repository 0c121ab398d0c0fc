"""The default search space: a finite, discretised grid per task category and model family.

A configuration is a plain dict: ``{"model": "<family>", "<param>": value, ...}``. That is the
form recorded as an execution's ``params`` and the form other searchers take. For Optuna the same
configuration has prefixed names (``{"model": "hgb", "hgb.learning_rate": 0.1}``) so that each
family's parameters keep their own distribution in one study; :func:`to_optuna_params` and
:func:`suggest_config` convert.

Why a grid: numeric parameters are searched on their (log) range, then snapped to the nearest
grid value. Runs on different tasks then share configurations, which is what lets the knowledge
base compare tasks (how well their configuration rankings agree) and replay a search from a
table of precomputed scores. :func:`suggest_config` gives the same proposals to every searcher.

Estimators are built with scikit-learn (the ``recommend`` extra), imported only when asked for.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cmf_core import jsonutil
from cmf_core.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class Param:
    """One hyperparameter: its grid ``values``; numeric grids are searched on [min, max]
    (log scale when ``log``) and snapped to the nearest value; others are categorical."""

    values: tuple[Any, ...]
    log: bool = False

    @property
    def numeric(self) -> bool:
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values)

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in self.values)

    def snap(self, value: Any) -> Any:
        """The grid value nearest ``value`` (on the log scale when ``log``)."""
        if not self.numeric:
            if value not in self.values:
                raise InvalidInputError(f"value {value!r} is not one of {list(self.values)}")
            return value
        x = float(value)
        if self.log:
            x = math.log(max(x, 1e-300))
            return min(self.values, key=lambda v: abs(math.log(v) - x))
        return min(self.values, key=lambda v: abs(v - x))


#: the Optuna user attribute where :func:`suggest_config` keeps the configuration it evaluated
CONFIG_ATTR = "cmf.config"


def _p(*values: Any, log: bool = False) -> Param:
    return Param(tuple(values), log)


_WINDOW = _p(8, 16, 32, 64, log=True)
_REPR = _p("raw", "diff")

#: category -> family -> parameter -> Param. Families: linear, kNN, SVM, random forest,
#: histogram gradient boosting; isolation forest, LOF and one-class SVM for anomalies.
SPACES: dict[str, dict[str, dict[str, Param]]] = {
    "classification": {
        "logreg": {"C": _p(1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0, log=True),
                   "class_weight": _p("none", "balanced")},
        "knn": {"n_neighbors": _p(1, 3, 5, 9, 15, 25, 41, log=True),
                "weights": _p("uniform", "distance")},
        "svm": {"C": _p(0.1, 1.0, 10.0, 100.0, 1000.0, log=True),
                "gamma": _p(1e-3, 1e-2, 0.1, 1.0, log=True)},
        "rf": {"max_features": _p(0.1, 0.25, 0.5, 1.0, log=True),
               "min_samples_leaf": _p(1, 3, 10, 30, log=True)},
        "hgb": {"learning_rate": _p(0.01, 0.03, 0.1, 0.3, log=True),
                "max_leaf_nodes": _p(4, 16, 64, log=True),
                "min_samples_leaf": _p(5, 40, log=True)},
    },
    "regression": {
        "ridge": {"alpha": _p(1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0, log=True)},
        "knn": {"n_neighbors": _p(1, 3, 5, 9, 15, 25, 41, log=True),
                "weights": _p("uniform", "distance")},
        "svr": {"C": _p(0.1, 1.0, 10.0, 100.0, 1000.0, log=True),
                "gamma": _p(1e-3, 1e-2, 0.1, 1.0, log=True)},
        "rf": {"max_features": _p(0.1, 0.25, 0.5, 1.0, log=True),
               "min_samples_leaf": _p(1, 3, 10, 30, log=True)},
        "hgb": {"learning_rate": _p(0.01, 0.03, 0.1, 0.3, log=True),
                "max_leaf_nodes": _p(4, 16, 64, log=True),
                "min_samples_leaf": _p(5, 40, log=True)},
    },
    "anomaly_detection": {
        "iforest": {"window": _WINDOW, "repr": _REPR,
                    "max_samples": _p(64, 256, log=True), "max_features": _p(0.5, 1.0)},
        "lof": {"window": _WINDOW, "repr": _REPR, "n_neighbors": _p(5, 10, 20, 40, 80, log=True)},
        "ocsvm": {"window": _WINDOW, "repr": _REPR, "nu": _p(0.05, 0.2, log=True),
                  "gamma": _p(0.1, 1.0, 10.0, log=True)},
    },
}


def space(category: str) -> dict[str, dict[str, Param]]:
    """The family -> parameter grid for ``category``."""
    try:
        return SPACES[category]
    except KeyError:
        raise InvalidInputError(
            f"no default search space for category {category!r}; spaces exist for "
            f"{', '.join(sorted(SPACES))} (recommendations for other categories come only from "
            "runs recorded in a CMF store)"
        ) from None


def config_key(config: Mapping[str, Any]) -> str:
    """Canonical text of a configuration: equal configurations have equal keys."""
    return jsonutil.dumps(dict(config))


def config_label(config: Mapping[str, Any]) -> str:
    """A configuration as people read it: ``rf(max_features=0.25, min_samples_leaf=10)``."""
    params = ", ".join(f"{k}={v}" for k, v in config.items() if k != "model")
    return f"{config.get('model')}({params})"


def grid(category: str) -> list[dict[str, Any]]:
    """Every configuration of the category's grid, in a fixed order."""
    out: list[dict[str, Any]] = []
    for family, params in space(category).items():
        names = list(params)
        for combo in itertools.product(*(params[n].values for n in names)):
            out.append({"model": family, **dict(zip(names, combo, strict=True))})
    return out


def grid_neighbours(configs: Sequence[Mapping[str, Any]]) -> tuple[tuple[int, ...], ...]:
    """For each of ``configs``, the indices of its neighbours among them: the same family and
    the same values but for one parameter, which is one step away on that parameter's values
    (when they are all numbers, in order) or any other value (otherwise, e.g. a choice, a
    list, or numbers mixed with None). The steps are the values the family's configurations
    take here, so any set of configurations works, from the grid or from a store."""
    keys = {config_key(c): i for i, c in enumerate(configs)}
    steps: dict[tuple[str, str], list[Any]] = {}
    for c in configs:
        for name, value in c.items():
            if name != "model":
                steps.setdefault((config_key({"m": c.get("model")}), name), []).append(value)
    ordered: dict[tuple[str, str], tuple[list[Any], dict[str, int], bool]] = {}
    for key, values in steps.items():
        distinct = list({config_key({"v": v}): v for v in values}.values())  # any value kind
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct)
        if numeric:
            distinct.sort()
        ordered[key] = (distinct, {config_key({"v": v}): i for i, v in enumerate(distinct)},
                        numeric)
    out: list[tuple[int, ...]] = []
    for c in configs:
        found: list[int] = []
        family = config_key({"m": c.get("model")})
        for name, value in c.items():
            if name == "model":
                continue
            values, index, numeric = ordered[family, name]
            at = index[config_key({"v": value})]
            near = [values[j] for j in (at - 1, at + 1) if 0 <= j < len(values)] if numeric \
                else [v for j, v in enumerate(values) if j != at]
            for v in near:
                j = keys.get(config_key({**c, name: v}))
                if j is not None:
                    found.append(j)
        out.append(tuple(found))
    return tuple(out)


def to_optuna_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """Plain config -> Optuna parameter names (``family.param``), for ``Study.enqueue_trial``."""
    if "model" not in config:
        raise InvalidInputError(f"configuration {dict(config)!r} has no 'model' key")
    family = config["model"]
    return {"model": family, **{f"{family}.{k}": v for k, v in config.items() if k != "model"}}


def from_optuna_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna parameter names -> plain config (the inverse of :func:`to_optuna_params`)."""
    family = params["model"]
    prefix = f"{family}."
    return {"model": family, **{k[len(prefix):]: v for k, v in params.items()
                                if k.startswith(prefix)}}


def suggest_config(trial: Any, category: str) -> dict[str, Any]:
    """Suggest one configuration of the default space in an Optuna trial (snapped to the grid).

    Use it in an objective so that enqueued recommendations (see
    :meth:`cmf_core.recommend.Recommendation.enqueue`) are proposed exactly as given. The
    snapped configuration, the one evaluated, is kept in the trial's user attribute
    ``cmf.config`` (:data:`CONFIG_ATTR`): :func:`trial_config` reads it back, so recorded runs
    and adaptive seeds see what ran, not the sampler's raw numbers.
    """
    families = space(category)
    family = trial.suggest_categorical("model", list(families))
    config: dict[str, Any] = {"model": family}
    for name, param in families[family].items():
        full = f"{family}.{name}"
        if not param.numeric:
            config[name] = trial.suggest_categorical(full, list(param.values))
        elif param.integer:
            lo, hi = min(param.values), max(param.values)
            config[name] = param.snap(trial.suggest_int(full, lo, hi, log=param.log))
        else:
            lo, hi = min(param.values), max(param.values)
            config[name] = param.snap(trial.suggest_float(full, lo, hi, log=param.log))
    set_attr = getattr(trial, "set_user_attr", None)
    if callable(set_attr):
        set_attr(CONFIG_ATTR, config)
    return config


def trial_config(trial: Any) -> dict[str, Any]:
    """The configuration an Optuna trial evaluated: the one :func:`suggest_config` recorded,
    else its params (``family.param`` names unprefixed when a ``model`` param names the
    family)."""
    recorded = (getattr(trial, "user_attrs", None) or {}).get(CONFIG_ATTR)
    if isinstance(recorded, Mapping) and "model" in recorded:
        return dict(recorded)
    params = dict(trial.params)
    return from_optuna_params(params) if "model" in params else params


def sample_config(rng: Any, category: str) -> dict[str, Any]:
    """One configuration drawn like a random searcher over the same space (numpy Generator)."""
    families = space(category)
    names = list(families)
    family = names[int(rng.integers(len(names)))]
    config: dict[str, Any] = {"model": family}
    for name, param in families[family].items():
        if not param.numeric:
            config[name] = param.values[int(rng.integers(len(param.values)))]
            continue
        lo, hi = float(min(param.values)), float(max(param.values))
        if param.integer:
            if param.log:
                x = math.exp(rng.uniform(math.log(lo), math.log(hi + 1)))
                config[name] = param.snap(min(int(x), int(hi)))
            else:
                config[name] = param.snap(int(rng.integers(int(lo), int(hi) + 1)))
        else:
            x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if param.log \
                else rng.uniform(lo, hi)
            config[name] = param.snap(x)
    return config


def check_config(config: Mapping[str, Any], category: str) -> dict[str, Any]:
    """Return ``config`` if it is a point of the category's grid, else raise naming the key."""
    families = space(category)
    family = config.get("model")
    if family not in families:
        raise InvalidInputError(
            f"model {family!r} is not a {category} family of the default space "
            f"(known: {', '.join(families)})"
        )
    params = families[family]
    extra = sorted(set(config) - set(params) - {"model"})
    if extra:
        raise InvalidInputError(f"{family} has no parameter(s) {', '.join(extra)}")
    out: dict[str, Any] = {"model": family}
    for name, param in params.items():
        if name not in config:
            raise InvalidInputError(f"{family} configuration lacks parameter {name!r}")
        if config[name] not in param.values:
            raise InvalidInputError(
                f"{family}.{name}={config[name]!r} is not on the grid {list(param.values)}"
            )
        out[name] = config[name]
    return out


# estimators ------------------------------------------------------------------------------------
def build_estimator(config: Mapping[str, Any], category: str, seed: int = 0) -> Any:
    """A scikit-learn estimator for a classification/regression configuration.

    Scale-sensitive families (linear, kNN, SVM) get a ``StandardScaler`` in front.
    """
    cfg = check_config(config, category)
    try:
        from sklearn import ensemble, linear_model, neighbors, svm
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise InvalidInputError(
            "building estimators needs scikit-learn: install cmf-foundation[recommend]"
        ) from e
    family = cfg["model"]
    clf = category == "classification"
    if family == "logreg":
        cw = None if cfg["class_weight"] == "none" else cfg["class_weight"]
        return make_pipeline(StandardScaler(), linear_model.LogisticRegression(
            C=cfg["C"], class_weight=cw, max_iter=300))
    if family == "ridge":
        return make_pipeline(StandardScaler(), linear_model.Ridge(alpha=cfg["alpha"]))
    if family == "knn":
        cls = neighbors.KNeighborsClassifier if clf else neighbors.KNeighborsRegressor
        return make_pipeline(StandardScaler(), cls(n_neighbors=cfg["n_neighbors"],
                                                   weights=cfg["weights"]))
    if family in ("svm", "svr"):
        est = svm.SVC(C=cfg["C"], gamma=cfg["gamma"]) if clf else \
            svm.SVR(C=cfg["C"], gamma=cfg["gamma"])
        return make_pipeline(StandardScaler(), est)
    if family == "rf":
        cls = ensemble.RandomForestClassifier if clf else ensemble.RandomForestRegressor
        return cls(n_estimators=100, max_features=cfg["max_features"],
                   min_samples_leaf=cfg["min_samples_leaf"], random_state=seed, n_jobs=1)
    if family == "hgb":
        cls = (ensemble.HistGradientBoostingClassifier if clf
               else ensemble.HistGradientBoostingRegressor)
        return cls(learning_rate=cfg["learning_rate"], max_leaf_nodes=cfg["max_leaf_nodes"],
                   min_samples_leaf=cfg["min_samples_leaf"], max_iter=100,
                   early_stopping=False, random_state=seed)
    raise InvalidInputError(f"model family {family!r} has no estimator for {category}")


def window_matrix(series: Sequence[float] | Any, window: int, repr: str) -> Any:
    """Sliding windows (rows) of a robustly standardised 1-D series (``repr``: raw or diff)."""
    import numpy as np

    x = np.asarray(series, dtype=float).ravel()
    med = np.median(x)
    mad = np.median(np.abs(x - med)) * 1.4826 or (np.std(x) or 1.0)
    x = (x - med) / mad
    if repr == "diff":
        x = np.diff(x, prepend=x[0])
    if len(x) < window + 1:
        raise InvalidInputError(f"series of length {len(x)} is shorter than window {window}")
    return np.lib.stride_tricks.sliding_window_view(x, window)


def anomaly_scores(config: Mapping[str, Any], series: Sequence[float] | Any,
                   seed: int = 0) -> Any:
    """Per-point anomaly scores (higher = more anomalous) of a time-series configuration.

    Each window is scored and the score is given to the window's last point; the first
    ``window - 1`` points get the lowest score.
    """
    import numpy as np

    cfg = check_config(config, "anomaly_detection")
    from sklearn import ensemble, neighbors, svm

    w = window_matrix(series, cfg["window"], cfg["repr"])
    family = cfg["model"]
    if family == "iforest":
        model = ensemble.IsolationForest(
            n_estimators=100, max_samples=min(cfg["max_samples"], len(w)),
            max_features=cfg["max_features"], random_state=seed).fit(w)
        s = -model.score_samples(w)
    elif family == "lof":
        model = neighbors.LocalOutlierFactor(n_neighbors=min(cfg["n_neighbors"], len(w) - 1))
        model.fit(w)
        s = -model.negative_outlier_factor_
    else:
        model = svm.OneClassSVM(nu=cfg["nu"], gamma=cfg["gamma"] / w.shape[1]).fit(w)
        s = -model.decision_function(w)
    out = np.full(len(np.asarray(series).ravel()), float(np.min(s)))
    out[cfg["window"] - 1:] = s
    return out

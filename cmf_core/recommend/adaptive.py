"""Adaptive seeding: each next seed is chosen after seeing the new task's scores on the
previous ones.

A static seed list (:attr:`Recommendation.seeds <cmf_core.recommend.Recommendation.seeds>`)
is fixed before the search starts. The :class:`AdaptiveSeeder` starts from the same first
seed, and then, after each observed score:

1. reweights the scenarios (the neighbours' runs and the meta-model's trees, see
   :mod:`cmf_core.recommend.recommender`) by how well each explains the order of the scores
   observed so far: a scenario's weight is multiplied, for every pair of observed
   configurations, by ``sigmoid(beta * (U_s[a] - U_s[b]))`` with ``a`` the one that scored
   better on the new task. The normalised scale (1 = a task's best run, 0 = its median run)
   is unknown for the new task, so here only the order counts;
   where a scenario is a past task scored with the *same metric* as the new task
   (:attr:`Scenarios.scores <cmf_core.recommend.recommender.Scenarios>`), its recorded scores
   are on the new task's scale, and its weight is also multiplied by the Gaussian likelihood
   ``exp(-(y - S_s[c])**2 / (2 sigma**2))`` of each observed score ``y`` (the new task scores
   about what that task scored, give or take ``sigma``). A scenario without such scores (a
   meta-model tree, a task of another metric) gets the posterior-weighted mean of the
   comparable scenarios' likelihoods (the scores neither favour nor penalise it). Unlike the
   order, this works from the first score on, so the second seed adapts too;
2. takes one more greedy set-cover step over the reweighted scenarios: the next seed is the
   untried configuration that hits (normalised score >= the scenario's level) the largest
   weight of scenarios. A scenario in which a tried configuration hits is *covered* (were the
   new task exactly that scenario, the search would have hit already); its weight counts
   ``covered_weight`` times (default 0: not at all, as in the static rule; the search goes
   on only while no seed has hit, so a covered scenario is ruled out);
3. once ``refine_after`` configurations were tried (and the same task's best runs, if any,
   went first), each next seed is a *local step* instead: a grid neighbour
   (:func:`~cmf_core.recommend.space.grid_neighbours`: the same family, one parameter one
   step away) of the best-scoring configuration so far, the untried one with the highest
   posterior-weighted mean normalised score. The past tasks point to a region; the needle
   (the few configurations near a task's best score) is often a few steps from the best seed
   in that region, where the scenarios alone rarely aim. When every neighbour was tried, the
   set-cover step again.

``beta``, ``sigma`` and ``refine_after`` are calibrated with the rest
(:func:`cmf_core.recommend.calibrate.calibrate`, key ``adaptive``); a knowledge base whose
calibration lacks them uses :data:`BETA`, :data:`SIGMA` and :data:`REFINE_AFTER`. With
``beta = 0``, ``sigma = 0``, ``refine_after = 0`` (and ``covered_weight = 0``) the seeds are
the static list.

Use it with any searcher (:meth:`AdaptiveSeeder.next_config`, scores: higher is better) or
with Optuna (:meth:`AdaptiveSeeder.enqueue_first` and :meth:`AdaptiveSeeder.optuna_callback`,
the study's direction respected). Seeds still count in the search's budget; the searcher's
own settings are untouched.

A seeder crosses process boundaries as JSON (:meth:`AdaptiveSeeder.to_dict` /
:meth:`AdaptiveSeeder.from_dict`): the orchestrators' recommend-seed steps output it under
``seeder``, so the search task downstream gets adaptive seeds, not only the static list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from cmf_core.errors import InvalidInputError
from cmf_core.model._base import whole_number
from cmf_core.recommend.recommender import Scenarios, optuna_params, prefix_reason
from cmf_core.recommend.space import (
    config_key,
    config_label,
    grid_neighbours,
    trial_config,
)

#: the ``format`` tag of :meth:`AdaptiveSeeder.to_dict`
STATE_FORMAT = "cmf-adaptive-seeder/1"

#: default sharpness of the order likelihood (normalised scores: 1 = best run, 0 = median
#: run): what calibration chooses on the shipped knowledge base, whose file predates the knob
BETA = 3.0
#: default weight of covered scenarios in the cover term (0: the static rule's bookkeeping)
COVERED_WEIGHT = 0.0
#: default spread (in the metric's units) of the new task's score around a same-metric past
#: task's score on a configuration (0: scores not compared); what calibration chooses on the
#: shipped knowledge base, whose file predates the knob
SIGMA = 0.1
#: default number of configurations tried before the local steps start (0: no local steps);
#: what calibration chooses on the shipped knowledge base, whose file predates the knob
REFINE_AFTER = 3


def posterior_weights(normalised: np.ndarray, weights: Sequence[float] | np.ndarray,
                      tried: Sequence[int], scores: Sequence[float],
                      beta: float, recorded: np.ndarray | None = None,
                      sigma: float = 0.0) -> np.ndarray:
    """Scenario weights times the likelihood of the observed order of ``scores`` (higher is
    better; NaN: no score) on the ``tried`` columns: for every pair with different scores,
    ``sigmoid(beta * (U_s[a] - U_s[b]))`` with ``a`` the better one. A scenario without a
    prediction for one of the two is neutral on that pair. With ``recorded`` (the scenarios'
    scores on the new task's scale, NaN where not comparable) and ``sigma > 0``, times the
    likelihood of the scores themselves (:func:`score_loglik`). Returns weights summing to 1."""
    U = np.asarray(normalised, dtype=float)
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    w = _order_weights(U, w, tried, scores, beta)
    if recorded is None or sigma <= 0:
        return w
    return _times_likelihood(w, score_loglik(recorded, w, tried, scores, sigma))


def _times_likelihood(w: np.ndarray, loglik: np.ndarray) -> np.ndarray:
    """``w * exp(loglik)``, normalised. Only scenarios with weight count: a zero-weight one may
    fit the scores far better, and ``exp()`` of its lead would overflow (0 * inf = NaN)."""
    pos = w > 0
    post = np.zeros_like(w)
    post[pos] = w[pos] * np.exp(loglik[pos] - loglik[pos].max())
    return post / post.sum()


def score_loglik(recorded: np.ndarray, weights: np.ndarray, tried: Sequence[int],
                 scores: Sequence[float], sigma: float) -> np.ndarray:
    """Per scenario, the log-likelihood (up to a constant) of the observed ``scores`` if the new
    task scored what the scenario recorded, give or take ``sigma`` (Gaussian). Scenarios with
    no recorded score on the tried columns (other metric, meta-model trees) get the log of the
    ``weights``-weighted mean likelihood of the others (all zero when none has one)."""
    R = np.asarray(recorded, dtype=float)
    w = np.asarray(weights, dtype=float)
    y = np.asarray(scores, dtype=float)
    cols = [int(c) for c, v in zip(tried, y, strict=True) if np.isfinite(v)]
    y = y[np.isfinite(y)]
    if not cols:
        return np.zeros(len(w))
    d = (R[:, cols] - y[None, :]) / sigma
    comparable = np.isfinite(d).any(axis=1)
    ll = -0.5 * np.where(np.isfinite(d), d * d, 0.0).sum(axis=1)
    known = comparable & (w > 0)
    if not known.any():
        return np.zeros(len(w))
    top = ll[known].max()
    ll[~comparable] = top + math.log(float(np.sum(w[known] * np.exp(ll[known] - top)))
                                     / float(w[known].sum()))
    return ll


def _order_weights(U: np.ndarray, w: np.ndarray, tried: Sequence[int],
                   scores: Sequence[float], beta: float) -> np.ndarray:
    y = np.asarray(scores, dtype=float)
    idx = [int(c) for c, v in zip(tried, y, strict=True) if np.isfinite(v)]
    y = y[np.isfinite(y)]
    if beta <= 0 or len(idx) < 2:
        return w
    loglik = np.zeros(len(w))
    for i in range(len(idx)):
        for j in range(i + 1, len(idx)):
            if y[i] == y[j]:
                continue
            a, b = (idx[i], idx[j]) if y[i] > y[j] else (idx[j], idx[i])
            d = U[:, a] - U[:, b]
            loglik -= np.logaddexp(0.0, -beta * np.where(np.isfinite(d), d, 0.0))
    return _times_likelihood(w, loglik)


def next_column(normalised: np.ndarray, weights: np.ndarray, levels: np.ndarray | None,
                tried: Sequence[int], covered_weight: float = 0.0,
                floor: float = 0.0) -> int | None:
    """One greedy set-cover step over (reweighted) scenarios, ``tried`` columns excluded
    (see module docs); with ``levels=None`` the sum-of-best rule. None when all were tried.
    With ``covered_weight=0`` this continues :func:`~cmf_core.recommend.recommender.
    greedy_portfolio` exactly."""
    U = np.asarray(normalised, dtype=float)
    w = np.asarray(weights, dtype=float)
    tried = [int(c) for c in tried]
    if len(set(tried)) >= U.shape[1]:
        return None
    V = np.where(np.isfinite(U), U, floor)
    current = np.maximum(V[:, tried].max(axis=1), floor) if tried else np.full(len(w), floor)
    mean = (w[:, None] * np.where(np.isfinite(U), U, 0.0)).sum(0)
    gain = (w[:, None] * np.maximum(current[:, None], V)).sum(0) + 1e-6 * mean
    if levels is not None:
        hits = np.greater_equal(V, np.asarray(levels, dtype=float)[:, None])
        covered = hits[:, tried].any(axis=1) if tried else np.zeros(len(w), bool)
        wc = np.where(covered, w * covered_weight, w)
        gain = (wc[:, None] * hits).sum(0) + 1e-3 * gain
    gain[tried] = -np.inf
    return int(np.argmax(gain))


def adaptive_order(scenarios: Scenarios, observe: Callable[[int], float], k: int,
                   beta: float = BETA, covered_weight: float = COVERED_WEIGHT,
                   sigma: float = SIGMA, refine_after: int = REFINE_AFTER) -> list[int]:
    """``k`` columns chosen one at a time; ``observe(column)`` returns the new task's score
    there (higher is better, NaN for a failed run). For simulations (calibration, proxy)."""
    tried: list[int] = []
    scores: list[float] = []
    adjacent = grid_neighbours(scenarios.configs) if refine_after else None
    for _ in range(k):
        col = _choose(scenarios, tried, scores, beta, covered_weight, sigma, refine_after,
                      adjacent)[0]
        if col is None:
            break
        tried.append(col)
        scores.append(float(observe(col)))
    return tried


def _choose(scen: Scenarios, tried: Sequence[int], scores: Sequence[float], beta: float,
            covered_weight: float, sigma: float, refine_after: int = 0,
            adjacent: Sequence[Sequence[int]] | None = None,
            ) -> tuple[int | None, np.ndarray, int | None]:
    """The next column, the posterior scenario weights it was chosen with, and the column it
    refines (a grid neighbour of the best-scoring one so far; else None)."""
    for col in scen.prefix:  # the same task's best runs first, whatever the scores say
        if col not in tried:
            w = np.asarray(scen.weights, dtype=float)
            return col, w / w.sum(), None
    w = posterior_weights(scen.normalised, scen.weights, tried, scores, beta, scen.scores,
                          sigma)
    if refine_after and adjacent is not None and len(tried) >= refine_after:
        col, best = refine(scen.normalised, w, tried, scores, adjacent)
        if col is not None:
            return col, w, best
    return next_column(scen.normalised, w, scen.levels, tried, covered_weight), w, None


def refine(normalised: np.ndarray, weights: np.ndarray, tried: Sequence[int],
           scores: Sequence[float], adjacent: Sequence[Sequence[int]]
           ) -> tuple[int | None, int | None]:
    """A local step: the untried grid neighbour (``adjacent``, from
    :func:`~cmf_core.recommend.space.grid_neighbours`) of the best-scoring tried column with
    the highest posterior-weighted mean normalised score, and that best column; (None, None)
    when nothing was scored or every neighbour was tried."""
    y = np.asarray(scores, dtype=float)
    if not np.isfinite(y).any():
        return None, None
    best = int(tried[int(np.nanargmax(y))])
    seen = set(int(c) for c in tried)
    options = [int(c) for c in adjacent[best] if int(c) not in seen]
    if not options:
        return None, best
    U = np.asarray(normalised, dtype=float)[:, options]
    value = (np.asarray(weights, dtype=float)[:, None] * np.where(np.isfinite(U), U, 0.0)
             ).sum(axis=0)
    return options[int(np.argmax(value))], best


def seed_reason(scen: Scenarios, col: int, weights: np.ndarray, tried: Sequence[int],
                n_scores: int) -> str:
    """Why ``col`` was chosen after ``tried`` (``n_scores`` of them scored), in words: the
    share of the posterior ``weights`` not yet ruled out that it is a hit on, and the
    scenarios the scores point to (past tasks by name, meta-model trees together)."""
    if col in scen.prefix and all(c in scen.prefix for c in tried):
        return prefix_reason(scen, scen.prefix.index(col))
    w = np.asarray(weights, dtype=float)
    when = (f"after {n_scores} score{'s' if n_scores != 1 else ''}" if n_scores
            else "before any score")
    open_ = np.ones(len(w), dtype=bool)
    if scen.levels is None:
        what = "the largest gain in the weighted best normalised score"
    else:
        hits = scen.hits()
        if tried:
            open_ = ~hits[:, list(tried)].any(axis=1)
        mass = float(w[open_ & hits[:, col]].sum())
        share = mass / max(float(w[open_].sum()), 1e-300)
        pct = f"{share:.0%}" if share >= 0.005 else "<1%"
        what = (f"a hit on {pct} of the scenario weight not yet ruled out" if mass > 0
                else "no scenario left that it is a hit on; chosen for its weighted scores")
    if not scen.names:
        return f"{when}: {what}"
    by: dict[str, float] = {}
    trees: list[float] = []
    if w[open_].sum() > 0:  # the weight among scenarios not yet ruled out
        w = np.where(open_, w, 0.0) / float(w[open_].sum())
    for name, tree, v in zip(scen.names, scen.trees(), w, strict=True):
        key = "meta-model trees" if tree else name
        by[key] = by.get(key, 0.0) + float(v)
        if tree:
            trees.append(float(v))
    top = []
    for name, v in sorted(by.items(), key=lambda kv: -kv[1])[:3]:
        if v < 0.01:
            continue
        text = f"{name} {v:.0%}"
        if name == "meta-model trees" and len(trees) > 1:
            tw = np.sort(np.asarray(trees))[::-1]
            n90 = int(np.searchsorted(np.cumsum(tw), 0.9 * tw.sum()) + 1)
            text += f" (90% of it on {n90} of {len(trees)})"
        top.append(text)
    where = "the weight is on" if scen.levels is None else "the weight not yet ruled out is on"
    return f"{when}: {what}; {where} {', '.join(top)}" if top else f"{when}: {what}"


def refine_reason(scen: Scenarios, best: int, score: float, n_scores: int) -> str:
    """Why a local step was chosen: it is a grid neighbour of ``best``, the best-scoring
    configuration so far (``score``)."""
    return (f"after {n_scores} score{'s' if n_scores != 1 else ''}: a local step, one grid "
            f"step from the best so far, {config_label(scen.configs[best])} (score "
            f"{score:.4g}); of its untried neighbours, the one the scenarios rate best")


class AdaptiveSeeder:
    """Up to ``k`` seeds, each chosen after the scores of the previous ones (module docs).

    Build it with :meth:`Recommendation.seeder <cmf_core.recommend.Recommendation.seeder>`.
    It remembers the seeds it gave and never gives one twice.
    """

    def __init__(self, scenarios: Scenarios, k: int, beta: float = BETA,
                 covered_weight: float = COVERED_WEIGHT, sigma: float = SIGMA,
                 refine_after: int = REFINE_AFTER) -> None:
        k = whole_number(k, "k", 0)
        for knob, value in (("beta", beta), ("covered_weight", covered_weight),
                            ("sigma", sigma)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise InvalidInputError(f"{knob}={value!r} must be a number")
        if not (math.isfinite(beta) and beta >= 0):
            raise InvalidInputError(f"beta={beta!r} must be a finite number >= 0")
        if not (math.isfinite(sigma) and sigma >= 0):
            raise InvalidInputError(f"sigma={sigma!r} must be a finite number >= 0 (0: do not "
                                    "compare scores with past tasks)")
        if not 0.0 <= covered_weight <= 1.0:
            raise InvalidInputError(f"covered_weight={covered_weight!r} must be in [0, 1]")
        refine_after = whole_number(refine_after, "refine_after", 0, "0: no local steps")
        self.scenarios = scenarios
        self.k = k
        self.beta = float(beta)
        self.covered_weight = float(covered_weight)
        self.sigma = float(sigma)
        self.refine_after = refine_after
        self._adjacent = grid_neighbours(scenarios.configs) if refine_after else None
        self._column = {config_key(c): j for j, c in enumerate(scenarios.configs)}
        self.given: list[dict[str, Any]] = []
        #: why each of :attr:`given` was chosen (:func:`seed_reason`), in the same order
        self.reasons: list[str] = []
        self._given_cols: list[int] = []

    @property
    def done(self) -> bool:
        """True once ``k`` seeds were given (or every configuration was)."""
        return len(self.given) >= min(self.k, len(self.scenarios.configs))

    def next_config(self, observations: Mapping[str, float | None]) -> dict[str, Any] | None:
        """The next seed, or None after ``k`` seeds.

        ``observations`` maps :func:`~cmf_core.recommend.space.config_key` of each evaluated
        configuration to its score on the new task, **higher is better** (negate losses);
        None or NaN for a failed run (it counts as tried, with no score). Configurations
        outside the knowledge base's table are allowed and ignored. Pass every observation so
        far each time (a growing dict is fine).
        """
        if self.done:
            return None
        tried = list(self._given_cols)
        scores = [math.nan] * len(tried)
        for key, value in _check(observations).items():
            col = self._column.get(key)
            if col is None:
                continue
            if col in tried:
                scores[tried.index(col)] = value
            else:
                tried.append(col)
                scores.append(value)
        col, w, best = _choose(self.scenarios, tried, scores, self.beta, self.covered_weight,
                               self.sigma, self.refine_after, self._adjacent)
        if col is None:
            return None
        config = dict(self.scenarios.configs[col])
        self.given.append(config)
        n_scores = sum(1 for v in scores if math.isfinite(v))
        self.reasons.append(
            seed_reason(self.scenarios, col, w, tried, n_scores) if best is None else
            refine_reason(self.scenarios, best, scores[tried.index(best)], n_scores))
        self._given_cols.append(col)
        return config

    def explain(self) -> str:
        """One line per seed given so far: the configuration and why it was chosen."""
        return "\n".join(f"{i}. {config_label(config)}: {why}" for i, (config, why)
                         in enumerate(zip(self.given, self.reasons, strict=True), 1))

    # JSON state -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (scenarios with weight > 0, knobs, seeds given so far), for an
        XCom, a Prefect result or a KFP artifact; :meth:`from_dict` rebuilds the seeder, which
        then gives the same seeds for the same scores. NaN is ``null``."""
        sc = self.scenarios
        keep = [i for i, w in enumerate(np.asarray(sc.weights, float)) if w > 0]
        scores = None
        if sc.scores is not None:
            scores = [None if not np.isfinite(sc.scores[i]).any() else
                      _floats(sc.scores[i]) for i in keep]
        return {"format": STATE_FORMAT, "k": self.k, "beta": self.beta, "sigma": self.sigma,
                "covered_weight": self.covered_weight, "refine_after": self.refine_after,
                "configs": [dict(c) for c in sc.configs],
                "weights": [float(sc.weights[i]) for i in keep],
                "normalised": [_floats(sc.normalised[i]) for i in keep],
                "levels": None if sc.levels is None else [float(sc.levels[i]) for i in keep],
                "prefix": list(sc.prefix), "first": sc.prefix[0] if sc.prefix else None,
                "prefix_reasons": list(sc.prefix_reasons),
                "scores": scores, "given": [dict(c) for c in self.given],
                "reasons": list(self.reasons),
                "names": None if sc.names is None else [sc.names[i] for i in keep]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AdaptiveSeeder:
        """The seeder of a :meth:`to_dict` state, or of a recommend-seed step's output that
        carries one under ``seeder`` (``None`` there: the step had no seeds, and the seeder
        gives none, so the search starts cold). Raises :class:`InvalidInputError` naming what
        is wrong with the state."""
        if isinstance(data, Mapping) and "seeder" in data and "format" not in data:
            data = data["seeder"]
            if data is None:
                return cls(Scenarios.empty(), 0)
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"an adaptive seeder state must be a dict (from "
                                    f"AdaptiveSeeder.to_dict()); got {type(data).__name__}")
        fmt = data.get("format")
        if isinstance(fmt, str) and fmt != STATE_FORMAT \
                and fmt.startswith(STATE_FORMAT.rsplit("/", 1)[0] + "/"):
            raise InvalidInputError(f"adaptive seeder state format {fmt!r} is from another "
                                    f"cmf-foundation version; this one reads {STATE_FORMAT!r}: "
                                    "recommend again with this version to make a new state")
        if fmt != STATE_FORMAT:
            raise InvalidInputError(f"not an adaptive seeder state: format is "
                                    f"{data.get('format')!r}, expected {STATE_FORMAT!r}")
        missing = [key for key in ("k", "configs", "weights", "normalised") if key not in data]
        if missing:
            raise InvalidInputError(f"adaptive seeder state lacks {', '.join(missing)}")
        configs = data["configs"]
        if not isinstance(configs, list) or not all(isinstance(c, Mapping) for c in configs):
            raise InvalidInputError("adaptive seeder state: configs must be a list of dicts")
        n = len(configs)
        U = _matrix(data["normalised"], n, "normalised")
        w = _vector(data["weights"], len(U), "weights")
        if not (np.all(np.isfinite(w)) and np.all(w > 0)):
            raise InvalidInputError("adaptive seeder state: weights must be finite and > 0")
        levels = None if data.get("levels") is None else _vector(data["levels"], len(U),
                                                                  "levels")
        scores = None
        if data.get("scores") is not None:
            rows = data["scores"]
            if not isinstance(rows, list) or len(rows) != len(U):
                raise InvalidInputError(f"adaptive seeder state: scores must have {len(U)} "
                                        "rows (one per scenario)")
            scores = np.vstack([np.full(n, np.nan) if r is None else _matrix([r], n, "scores")
                                for r in rows]) if rows else None
        # "prefix" (columns that go first); states written before it have "first" (one)
        prefix = data.get("prefix")
        if prefix is None:
            prefix = [] if data.get("first") is None else [data["first"]]
        elif not isinstance(prefix, list):
            raise InvalidInputError(f"adaptive seeder state: prefix={prefix!r} is not a list")
        for col in prefix:
            if isinstance(col, bool) or not isinstance(col, int) or not 0 <= col < n:
                key = "prefix" if "prefix" in data else "first"
                raise InvalidInputError(f"adaptive seeder state: {key}={col!r} is not a column "
                                        f"of the {n} configurations")
        knobs = {}
        for name, default in (("beta", BETA), ("covered_weight", COVERED_WEIGHT),
                              ("sigma", SIGMA)):
            value = data.get(name, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidInputError(f"adaptive seeder state: {name}={value!r} is not a "
                                        "number")
            knobs[name] = float(value)
        refine_after = data.get("refine_after", 0)  # states written before it: no local steps
        if isinstance(refine_after, bool) or not isinstance(refine_after, int) \
                or refine_after < 0:
            raise InvalidInputError(f"adaptive seeder state: refine_after={refine_after!r} is "
                                    "not a whole number >= 0")
        names = _strings(data.get("names"), len(U), "names", "scenario")
        prefix_reasons = _strings(data.get("prefix_reasons") or None, len(prefix),
                                  "prefix_reasons", "prefix column") or []
        scen = Scenarios(U, w, levels, tuple(dict(c) for c in configs), tuple(prefix), scores,
                         None if names is None else tuple(names), tuple(prefix_reasons))
        seeder = cls(scen, data["k"], refine_after=refine_after, **knobs)
        for config in data.get("given") or ():
            col = seeder._column.get(config_key(config)) if isinstance(config, Mapping) \
                else None
            if col is None:
                raise InvalidInputError(f"adaptive seeder state: given seed {config!r} is not "
                                        "one of its configurations")
            seeder.given.append(dict(config))
            seeder._given_cols.append(col)
        reasons = _strings(data.get("reasons"), len(seeder.given), "reasons", "given seed")
        seeder.reasons = list(reasons) if reasons is not None else [""] * len(seeder.given)
        return seeder

    # Optuna ---------------------------------------------------------------------------------
    def enqueue_first(self, study: Any) -> int:
        """Enqueue the first seed into an Optuna study (with :meth:`optuna_callback` giving
        the rest); returns how many were enqueued (0 or 1)."""
        config = self.next_config(self._observations(study))
        if config is None:
            return 0
        study.enqueue_trial(optuna_params(config), skip_if_exists=True)
        return 1

    def optuna_callback(self) -> Callable[[Any, Any], None]:
        """A callback for ``study.optimize(..., callbacks=[...])``: after each finished trial,
        once no seed is waiting in the queue, it enqueues the next seed from the study's
        results so far, until ``k`` seeds were given. Complete trials give scores (negated for
        a ``minimize`` study); failed and pruned ones count as tried with no score. Call
        :meth:`enqueue_first` before ``optimize``."""

        def callback(study: Any, trial: Any) -> None:
            import optuna

            if self.done:
                return
            waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
            if waiting:
                return
            config = self.next_config(self._observations(study))
            if config is not None:
                study.enqueue_trial(optuna_params(config), skip_if_exists=True)

        return callback

    def _observations(self, study: Any) -> dict[str, float | None]:
        import optuna

        if len(study.directions) != 1:
            raise InvalidInputError(
                f"adaptive seeding needs a single-objective study; {study.study_name!r} has "
                f"{len(study.directions)} objectives")
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else 1.0
        State = optuna.trial.TrialState
        out: dict[str, float | None] = {}
        for t in study.get_trials(deepcopy=False,
                                  states=(State.COMPLETE, State.FAIL, State.PRUNED)):
            config = trial_config(t)
            if "model" not in config:
                continue
            key = config_key(config)
            value = sign * float(t.value) if t.state == State.COMPLETE else None
            prev = out.get(key)
            if key not in out or (value is not None and (prev is None or value > prev)):
                out[key] = value
        return out


def _floats(row: Sequence[float] | np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(row, float)]


def _matrix(rows: Any, n: int, name: str) -> np.ndarray:
    if not isinstance(rows, list) or not rows or not all(
            isinstance(r, list) and len(r) == n for r in rows):
        raise InvalidInputError(f"adaptive seeder state: {name} must be a non-empty list of "
                                f"rows of {n} numbers (one per configuration)")
    try:
        return np.array([[np.nan if v is None else float(v) for v in r] for r in rows])
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"adaptive seeder state: {name} holds a non-number ({e})") \
            from None


def _strings(values: Any, n: int, name: str, per: str) -> list[str] | None:
    if values is not None and (not isinstance(values, list) or len(values) != n
                               or not all(isinstance(x, str) for x in values)):
        raise InvalidInputError(f"adaptive seeder state: {name} must be a list of {n} strings "
                                f"(one per {per}) or null")
    return values


def _vector(values: Any, n: int, name: str) -> np.ndarray:
    if not isinstance(values, list) or len(values) != n:
        raise InvalidInputError(f"adaptive seeder state: {name} must be a list of {n} numbers "
                                "(one per scenario)")
    try:
        return np.array([float(v) for v in values])
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"adaptive seeder state: {name} holds a non-number ({e})") \
            from None


def _check(observations: Mapping[str, float | None]) -> dict[str, float]:
    if not isinstance(observations, Mapping):
        raise InvalidInputError(
            f"observations must map config_key(config) to a score; got "
            f"{type(observations).__name__}")
    out: dict[str, float] = {}
    for key, value in observations.items():
        if not isinstance(key, str):
            raise InvalidInputError(
                f"observation key {key!r} must be config_key(config) (a string), not "
                f"{type(key).__name__}")
        if value is None:
            out[key] = math.nan
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating,
                                                             np.integer)):
            raise InvalidInputError(
                f"score {value!r} for {key} must be a number (higher is better) or None for "
                "a failed run")
        v = float(value)
        if math.isinf(v):
            raise InvalidInputError(
                f"score {value!r} for {key} is infinite; give None for a failed run")
        out[key] = v
    return out

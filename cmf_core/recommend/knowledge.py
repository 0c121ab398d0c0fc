"""The knowledge base: tasks and the scored runs (configurations) recorded on them.

Where it comes from:

* a CMF store (:func:`from_store`): every completed execution whose ``properties`` carry
  ``cmf.task`` (a :class:`~cmf_core.recommend.task.TaskDescription` dict), whose ``params``
  carry ``model`` (the model family) and the hyperparameters, and which has a metric ``score``
  (higher is better; set the property ``cmf.score_direction`` to ``minimize`` for losses). So
  the knowledge base grows with every tracked run. :func:`trial_records` and
  :func:`record_trial` write such runs; :func:`optuna_callback` records a study as it runs.
* the shipped file (:func:`shipped`): a compact export (:func:`save` / :func:`load`) of the
  runs recorded by ``benchmarks/recommender/build_kb.py``, so recommendations work offline.

File format (JSON, gzip when the name ends in ``.gz``): ``{"format": "cmf-recommender-kb",
"version": 1, "configs": {category: [config, ...]}, "tasks": [{...task dict, "scores": [...],
"seconds": [...], "run_ids": [...]}], "calibration": {...}, "build": {...}}``; each task's
lists follow its category's config list, ``null`` where a configuration was not run. A missing
``run_ids`` list means the runs carry the deterministic ids of :func:`run_id`.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from cmf_core import jsonutil
from cmf_core.errors import InvalidInputError
from cmf_core.guard import report
from cmf_core.identity import name_id, uuid7
from cmf_core.recommend.space import SPACES, config_key, trial_config
from cmf_core.recommend.task import TASK_PROPERTY, UNDESCRIBED, TaskDescription

FORMAT = "cmf-recommender-kb"
VERSION = 1
SCORE_METRIC = "score"
SECONDS_METRIC = "fit_time_s"
DIRECTION_PROPERTY = "cmf.score_direction"
SHIPPED_FILE = "kb.json.gz"


def run_id(task_id: str, config: Mapping[str, Any]) -> str:
    """Deterministic execution id of one configuration run on one task (replays are no-ops)."""
    return name_id("cmf.recommend.run", task_id, config_key(config))


@dataclass(frozen=True, slots=True)
class Run:
    """One scored configuration on one task."""

    config: Mapping[str, Any]
    score: float
    run_id: str | None = None
    seconds: float | None = None


@dataclass
class ScoreTable:
    """Scores of one category as a task x configuration matrix (NaN: not run).

    ``normalised`` maps each task's scores to ``(s - median) / (best - median)`` clipped to
    [-1, 1]: 1 is the task's best run, 0 its median run. Tasks whose runs all score the same
    get 1 everywhere they ran.
    """

    category: str
    task_ids: list[str]
    configs: list[dict[str, Any]]
    scores: np.ndarray
    seconds: np.ndarray
    normalised: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.normalised = normalise(self.scores)

    def row(self, task_id: str) -> int:
        return self.task_ids.index(task_id)


def normalise(scores: np.ndarray) -> np.ndarray:
    """Row-wise ``(s - median) / (best - median)``, clipped to [-1, 1], NaN kept."""
    out = np.full(scores.shape, np.nan)
    for i, row in enumerate(scores):
        ok = np.isfinite(row)
        if not ok.any():
            continue
        med, best = float(np.median(row[ok])), float(np.max(row[ok]))
        if best - med <= 1e-12:
            out[i, ok] = 1.0
        else:
            out[i, ok] = np.clip((row[ok] - med) / (best - med), -1.0, 1.0)
    return out


class KnowledgeBase:
    """Tasks (by id) and their runs. Immutable in use: :meth:`merge` and :meth:`without`
    return new knowledge bases."""

    def __init__(self, tasks: Iterable[TaskDescription] = (),
                 runs: Mapping[str, Sequence[Run]] | None = None,
                 calibration: Mapping[str, Any] | None = None,
                 build: Mapping[str, Any] | None = None) -> None:
        self.tasks: dict[str, TaskDescription] = {t.id: t for t in tasks}
        self.runs: dict[str, list[Run]] = {tid: list(r) for tid, r in (runs or {}).items()}
        unknown = set(self.runs) - set(self.tasks)
        if unknown:
            raise InvalidInputError(f"runs for unknown task id(s) {', '.join(sorted(unknown))}")
        self.calibration = dict(calibration or {})
        self.build = dict(build or {})
        self._tables: dict[str, ScoreTable] = {}

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def n_runs(self) -> int:
        return sum(len(r) for r in self.runs.values())

    def categories(self) -> list[str]:
        return sorted({t.category.value for t in self.tasks.values()})

    def merge(self, other: KnowledgeBase) -> KnowledgeBase:
        """Union of tasks and runs; a run of the same task and configuration that both hold
        (by run id, else by configuration) is kept once. Calibration comes from ``self``, else
        ``other``."""
        tasks = {**other.tasks, **self.tasks}
        runs: dict[str, list[Run]] = {}
        for tid in tasks:
            seen: set[str] = set()
            merged: list[Run] = []
            for r in [*self.runs.get(tid, []), *other.runs.get(tid, [])]:
                key = r.run_id or config_key(r.config)
                if key not in seen:
                    seen.add(key)
                    merged.append(r)
            runs[tid] = merged
        return KnowledgeBase(tasks.values(), runs, self.calibration or other.calibration,
                             self.build or other.build)

    def without(self, task_ids: Iterable[str] = (), groups: Iterable[str] = ()) -> KnowledgeBase:
        """A copy without the given tasks and without every task of the given groups."""
        drop_ids, drop_groups = set(task_ids), set(groups)
        keep = [t for t in self.tasks.values()
                if t.id not in drop_ids and (t.group is None or t.group not in drop_groups)]
        return KnowledgeBase(keep, {t.id: self.runs.get(t.id, []) for t in keep},
                             self.calibration, self.build)

    def table(self, category: str) -> ScoreTable:
        """The category's score matrix (cached); repeated runs of a configuration are averaged."""
        if category in self._tables:
            return self._tables[category]
        ids = sorted(t for t, d in self.tasks.items() if d.category.value == category)
        keys: dict[str, int] = {}
        configs: list[dict[str, Any]] = []
        cells: dict[tuple[int, int], list[tuple[float, float | None]]] = defaultdict(list)
        for i, tid in enumerate(ids):
            for r in self.runs.get(tid, []):
                k = config_key(r.config)
                if k not in keys:
                    keys[k] = len(configs)
                    configs.append(dict(r.config))
                cells[i, keys[k]].append((r.score, r.seconds))
        scores = np.full((len(ids), len(configs)), np.nan)
        seconds = np.full((len(ids), len(configs)), np.nan)
        for (i, j), vals in cells.items():
            scores[i, j] = float(np.mean([v for v, _ in vals]))
            secs = [s for _, s in vals if s is not None]
            if secs:
                seconds[i, j] = float(np.mean(secs))
        table = ScoreTable(category, ids, configs, scores, seconds)
        self._tables[category] = table
        return table

    def run_lookup(self, task_id: str) -> dict[str, Run]:
        """config key -> run of one task (the best-scoring when repeated)."""
        out: dict[str, Run] = {}
        for r in self.runs.get(task_id, []):
            k = config_key(r.config)
            if k not in out or r.score > out[k].score:
                out[k] = r
        return out


# file export / import -------------------------------------------------------------------------
def to_dict(kb: KnowledgeBase) -> dict[str, Any]:
    """The compact export form (see module docs)."""
    configs: dict[str, list[dict[str, Any]]] = {}
    tasks_out = []
    for cat in kb.categories():
        table = kb.table(cat)
        configs[cat] = table.configs
        for i, tid in enumerate(table.task_ids):
            task = kb.tasks[tid]
            entry = task.to_dict()
            entry["scores"] = [None if not np.isfinite(v) else round(float(v), 5)
                               for v in table.scores[i]]
            if np.isfinite(table.seconds[i]).any():
                entry["seconds"] = [None if not np.isfinite(v) else round(float(v), 3)
                                    for v in table.seconds[i]]
            lookup = kb.run_lookup(tid)
            ids = [lookup[config_key(c)].run_id if config_key(c) in lookup else None
                   for c in table.configs]
            default = [run_id(tid, c) if config_key(c) in lookup else None
                       for c in table.configs]
            if ids != default:
                entry["run_ids"] = ids
            tasks_out.append(entry)
    return {"format": FORMAT, "version": VERSION, "configs": configs, "tasks": tasks_out,
            "calibration": kb.calibration, "build": kb.build}


def from_dict(data: Mapping[str, Any], source: str = "knowledge base") -> KnowledgeBase:
    """Parse the export form; a wrong format or version raises naming the fix."""
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise InvalidInputError(f"{source} is not a cmf recommender knowledge base file")
    if data.get("version") != VERSION:
        raise InvalidInputError(
            f"{source} has knowledge base version {data.get('version')!r}; this cmf-foundation "
            f"reads version {VERSION} (rebuild it with benchmarks/recommender/build_kb.py)"
        )
    try:
        return _from_dict(data, source)
    except (TypeError, AttributeError, ValueError, IndexError, KeyError) as e:
        why = f"a key {e} is missing" if isinstance(e, KeyError) else str(e)
        raise InvalidInputError(f"{source} is a corrupt knowledge base file: {why}") from None


def _from_dict(data: Mapping[str, Any], source: str) -> KnowledgeBase:
    configs = data.get("configs") or {}
    tasks, runs = [], {}
    for entry in data.get("tasks") or []:
        body = {k: v for k, v in entry.items() if k not in ("scores", "seconds", "run_ids")}
        task = TaskDescription.from_dict(body)
        cat_configs = configs.get(task.category.value, [])
        scores = entry.get("scores") or []
        if len(scores) != len(cat_configs):
            raise InvalidInputError(
                f"{source}: task {task.name!r} has {len(scores)} scores for "
                f"{len(cat_configs)} configurations"
            )
        seconds = entry.get("seconds") or [None] * len(scores)
        ids = entry.get("run_ids")
        task_runs = []
        for j, (cfg, s) in enumerate(zip(cat_configs, scores, strict=True)):
            if s is None:
                continue
            if not math.isfinite(float(s)):
                raise ValueError(f"task {task.name!r} has the score {s!r}")
            rid = ids[j] if ids else run_id(task.id, cfg)
            task_runs.append(Run(cfg, float(s), rid, seconds[j]))
        tasks.append(task)
        runs[task.id] = task_runs
    calibration = dict(data.get("calibration") or {})
    if calibration.get("metric"):  # checked here, not when a recommendation reads it
        from cmf_core.recommend.graph import SimilarityMetric

        SimilarityMetric.from_dict(calibration["metric"])
    for key in ("threshold", "power", "level", "neighbour_share"):
        if calibration.get(key) is not None and not math.isfinite(float(calibration[key])):
            raise ValueError(f"calibration {key} is {calibration[key]!r}")
    return KnowledgeBase(tasks, runs, calibration, data.get("build"))


def save(kb: KnowledgeBase, path: str | Path) -> Path:
    """Write the compact export (gzip when ``path`` ends in ``.gz``; byte-stable)."""
    p = Path(path)
    text = json.dumps(jsonutil.clean(to_dict(kb)), sort_keys=True, separators=(",", ":"))
    if p.suffix == ".gz":
        p.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        p.write_text(text)
    return p


def load(path: str | Path) -> KnowledgeBase:
    """Read a knowledge base file written by :func:`save`."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"knowledge base file {p} does not exist") from None
    try:
        data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    except (OSError, ValueError, EOFError) as e:  # EOFError: a truncated gzip file
        raise InvalidInputError(f"knowledge base file {p} is not readable JSON: {e}") from None
    return from_dict(data, str(p))


@functools.cache
def shipped() -> KnowledgeBase:
    """The knowledge base shipped with cmf-foundation (cached; empty if it is missing)."""
    ref = resources.files("cmf_core.recommend").joinpath("data", SHIPPED_FILE)
    if not ref.is_file():
        return KnowledgeBase()
    with resources.as_file(ref) as p:
        return load(p)


# CMF store ------------------------------------------------------------------------------------
def task_properties(task: TaskDescription | Mapping[str, Any]) -> dict[str, Any]:
    """The execution properties that make a run count in the knowledge base."""
    desc = TaskDescription.from_dict(task)
    if desc.name == UNDESCRIBED:  # its category is a guess: its runs would mislead the graph
        raise InvalidInputError(
            "this task description is the placeholder of a recommend-seed step that could not "
            "describe its task (see that step's error); describe the task (describe_csv) to "
            "make its runs knowledge")
    return {TASK_PROPERTY: desc.to_dict()}


def trial_records(task: TaskDescription, config: Mapping[str, Any], score: float, *, site: str,
                  seconds: float | None = None, pipeline: str | None = None,
                  stage: str = "trial", execution_id: str | None = None,
                  started_at: float | None = None) -> list[Any]:
    """CMF records of one scored run: pipeline, stage, completed execution (params = the
    config, properties[``cmf.task``] = the task), metrics ``score`` (and ``fit_time_s``)."""
    from cmf_core.model import Execution, ExecutionStatus, Metric, Pipeline, Stage

    if "model" not in config:
        raise InvalidInputError(
            f"configuration {dict(config)!r} needs a 'model' key naming the model family"
        )
    if not math.isfinite(float(score)):
        raise InvalidInputError(f"score {score!r} of {dict(config)!r} is not a finite number")
    pname = pipeline or f"hpo-{task.name}"
    eid = execution_id or run_id(task.id, config)
    kwargs: dict[str, Any] = {}
    if started_at is not None:
        kwargs["started_at"] = started_at
    execution = Execution(pipeline=pname, stage=stage, site=site, id=eid, params=dict(config),
                          properties=task_properties(task), **kwargs)
    execution = execution.ended(ExecutionStatus.COMPLETED,
                                ended_at=execution.started_at + (seconds or 0.0))
    records: list[Any] = [Pipeline(name=pname, site=site), Stage(pipeline=pname, name=stage,
                                                                   site=site), execution,
                          Metric(execution_id=eid, name=SCORE_METRIC, value=float(score))]
    if seconds is not None:
        records.append(Metric(execution_id=eid, name=SECONDS_METRIC, value=float(seconds)))
    return records


def record_trial(store: Any, task: TaskDescription, config: Mapping[str, Any], score: float,
                 **kwargs: Any) -> str:
    """Write one scored run into ``store`` (one transaction); returns its execution id."""
    records = trial_records(task, config, score, site=kwargs.pop("site", store.site), **kwargs)
    store.put(records)
    return records[2].id


def optuna_callback(store: Any, task: TaskDescription | Mapping[str, Any],
                    pipeline: str | None = None) -> Callable[[Any, Any], None]:
    """An Optuna callback that records every completed trial of a study into ``store``.

    The configuration is the one the trial evaluated (:func:`~cmf_core.recommend.space.
    trial_config`: as :func:`~cmf_core.recommend.space.suggest_config` snapped it, else the
    params with ``family.param`` names unprefixed); the trial value is the score (negated when
    the study minimises).

    Recording never stops the study: a trial that cannot be recorded (no ``model`` parameter,
    a multi-objective study, a store that fails) is logged as a warning and counted
    (:mod:`cmf_core.guard`), and the search goes on.
    """
    desc = TaskDescription.from_dict(task)

    def callback(study: Any, trial: Any) -> None:
        if getattr(trial.state, "name", "") != "COMPLETE":
            return
        try:
            if len(getattr(study, "directions", ())) > 1:
                raise InvalidInputError(
                    "the study has several objectives; the knowledge base takes one score")
            config = trial_config(trial)
            minimise = getattr(study.direction, "name", "") == "MINIMIZE"
            seconds = trial.duration.total_seconds() if trial.duration else None
            record_trial(store, desc, config, -trial.value if minimise else trial.value,
                         seconds=seconds, pipeline=pipeline, execution_id=uuid7())
        except Exception as e:  # tracking must never break the user's search
            report(f"recording Optuna trial {trial.number} into the recommender's knowledge "
                   "base", e, "the study goes on without this run")
    return callback


def _run_config(params: Mapping[str, Any], category: str) -> dict[str, Any]:
    """The configuration of a recorded run: ``model`` and, where the category has a default
    space that knows the family, only that family's hyperparameters. An orchestrator records
    more as params (Airflow: the DAG's ``params`` and the task's arguments, such as the seeds
    it was handed), which are no hyperparameters: kept, they made a seed that
    ``build_estimator`` refuses and that matches no grid point."""
    family = params["model"]
    known = SPACES.get(category, {}).get(family) if isinstance(family, str) else None
    if known is None:
        return {"model": family, **dict(params)}
    return {"model": family, **{name: params[name] for name in known if name in params}}


def from_store(store: Any, *, pipeline: str | None = None, page: int = 5000) -> KnowledgeBase:
    """Read the knowledge base from a CMF store (see module docs for what counts as a run).

    Executions without ``cmf.task``, without ``model`` in their params or without a finite
    ``score`` metric are skipped. Params that are not hyperparameters of the run's model family
    (for a category with a default space) are not part of its configuration.
    """
    from cmf_core.store.base import ExecutionFilter

    where = ExecutionFilter(pipeline=pipeline, status="completed")
    tasks: dict[str, TaskDescription] = {}
    runs: dict[str, list[Run]] = defaultdict(list)
    # only executions with the task property and a model param leave the database, read by
    # key, not by offset (offset pages re-walk every row skipped: quadratic on a year of runs)
    found = store.iter_executions(where, property_keys=(TASK_PROPERTY,), param_keys=("model",),
                                  batch=page)
    while batch := list(itertools.islice(found, page)):
        candidates = [e for e in batch if isinstance(e.properties.get(TASK_PROPERTY), Mapping)]
        # only the two scalars a run needs, not every metric (a run's per-step curves)
        metrics = store.scalar_metrics([e.id for e in candidates],
                                       (SCORE_METRIC, SECONDS_METRIC)) if candidates else {}
        for e in candidates:
            score = metrics.get(e.id, {}).get(SCORE_METRIC)
            if score is None or not math.isfinite(score):
                continue
            try:
                task = TaskDescription.from_dict(e.properties[TASK_PROPERTY])
            except InvalidInputError:
                continue
            if e.properties.get(DIRECTION_PROPERTY) == "minimize":
                score = -score
            tasks.setdefault(task.id, task)
            config = _run_config(e.params, task.category)
            runs[task.id].append(Run(config, float(score), e.id,
                                     metrics[e.id].get(SECONDS_METRIC)))
    return KnowledgeBase(tasks.values(), runs)

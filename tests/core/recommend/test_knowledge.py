"""Knowledge base: file export, CMF store round trip, Optuna recording."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from cmf_core.errors import InvalidInputError
from cmf_core.identity import uuid7
from cmf_core.model import Execution, ExecutionStatus, Metric
from cmf_core.recommend import knowledge
from cmf_core.recommend.knowledge import KnowledgeBase, Run
from cmf_core.recommend.recommender import optuna_params, recommend
from cmf_core.recommend.space import (
    check_config,
    config_key,
    from_optuna_params,
    suggest_config,
)
from cmf_core.recommend.task import TaskDescription
from cmf_core.store import Store
from tests.core.recommend.conftest import A_BEST, CONFIGS, make_task


def test_file_round_trip_is_exact_and_byte_stable(toy_kb: KnowledgeBase, tmp_path: Path) -> None:
    p1 = knowledge.save(toy_kb, tmp_path / "kb.json.gz")
    again = knowledge.load(p1)
    assert set(again.tasks) == set(toy_kb.tasks)
    assert again.calibration == toy_kb.calibration
    for tid, runs in toy_kb.runs.items():
        got = {config_key(r.config): r for r in again.runs[tid]}
        for r in runs:
            g = got[config_key(r.config)]
            assert g.score == pytest.approx(r.score, abs=1e-5) and g.run_id == r.run_id
    p2 = knowledge.save(again, tmp_path / "kb2.json.gz")
    assert p1.read_bytes() == p2.read_bytes()


def test_load_rejects_other_files(tmp_path: Path) -> None:
    p = tmp_path / "x.json.gz"
    p.write_bytes(gzip.compress(b'{"format": "something-else"}'))
    with pytest.raises(InvalidInputError, match="not a cmf recommender knowledge base"):
        knowledge.load(p)
    p.write_bytes(gzip.compress(b'{"format": "cmf-recommender-kb", "version": 99}'))
    with pytest.raises(InvalidInputError, match="version 99"):
        knowledge.load(p)
    with pytest.raises(InvalidInputError, match="does not exist"):
        knowledge.load(tmp_path / "nope.json")


def test_load_rejects_a_truncated_or_corrupt_file(toy_kb: KnowledgeBase, tmp_path: Path) -> None:
    whole = knowledge.save(toy_kb, tmp_path / "kb.json.gz").read_bytes()
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(whole[: len(whole) // 2])  # a download cut short: EOFError from gzip
    with pytest.raises(InvalidInputError, match="not readable JSON"):
        knowledge.load(cut)
    data = json.loads(gzip.decompress(whole))
    entry = data["tasks"][0]
    for bad in ({**data, "tasks": 5}, {**data, "tasks": [1]}, {**data, "configs": [1]},
                {**data, "tasks": [{**entry, "scores": ["x"] * len(entry["scores"])}]},
                {**data, "tasks": [{**entry, "run_ids": ["a"]}]},
                {**data, "tasks": [{**entry, "scores": [float("nan")] * len(entry["scores"])}]},
                {**data, "calibration": {"metric": {"name": "no weights"}}},
                {**data, "calibration": {"threshold": "high"}}):
        p = tmp_path / "bad.json"
        p.write_text(json.dumps(bad))
        with pytest.raises(InvalidInputError, match="corrupt knowledge base"):
            knowledge.load(p)


def test_merge_and_without(toy_kb: KnowledgeBase) -> None:
    merged = toy_kb.merge(toy_kb)
    assert merged.n_runs == toy_kb.n_runs  # same run ids are kept once
    extra = make_task("c", (0.5, 0.5, 0.5), group="a0")
    bigger = toy_kb.merge(KnowledgeBase([extra], {extra.id: [Run(CONFIGS[0], 0.5)]}))
    assert len(bigger) == 7
    smaller = bigger.without(groups=["a0"])
    assert "toy/a0" not in smaller.tasks and extra.id not in smaller.tasks
    assert len(smaller) == 5


def test_store_round_trip(store: Store) -> None:
    task = make_task("stored", (0.2, 0.2, 0.9))
    for j, cfg in enumerate(CONFIGS):
        knowledge.record_trial(store, task, cfg, 0.8 - 0.01 * abs(j - A_BEST), seconds=0.5)
    # runs that must not count: no cmf.task, no score
    plain = Execution(pipeline="other", stage="s", site=store.site, params={"model": "x"})
    store.put([plain.ended(), Metric(execution_id=plain.id, name="score", value=1.0)])
    noscore = Execution(pipeline="other", stage="s", site=store.site, params=dict(CONFIGS[0]),
                        properties=knowledge.task_properties(task))
    store.put([noscore.ended()])
    kb = knowledge.from_store(store)
    assert list(kb.tasks) == [task.id]
    runs = kb.runs[task.id]
    assert len(runs) == len(CONFIGS)
    best = max(runs, key=lambda r: r.score)
    assert dict(best.config) == CONFIGS[A_BEST]
    assert best.run_id == knowledge.run_id(task.id, CONFIGS[A_BEST])
    assert best.seconds == pytest.approx(0.5)
    # recording the same trial again changes nothing (deterministic execution ids)
    knowledge.record_trial(store, task, CONFIGS[0], 0.1)
    assert knowledge.from_store(store).n_runs == len(CONFIGS)
    # the store's runs drive recommendations, with their execution ids as evidence
    rec = recommend(make_task("new", (0.21, 0.2, 0.9)), k=1, store=store, include_shipped=False,
                    threshold=0.9)
    assert rec.configs() == [CONFIGS[A_BEST]]
    assert rec.seeds[0].evidence[0].run_id == best.run_id


def test_a_runs_other_params_are_not_its_configuration(store: Store) -> None:
    """An Airflow task's params hold the DAG's params and the task's arguments besides the
    hyperparameters it logged (examples/airflow/churn_pipeline.py's train: `configs`, `seed`,
    `test_size`): the second run of that DAG was seeded with a configuration that
    build_estimator refused ("rf has no parameter(s) configs, seed, test_size")."""
    from cmf_core.recommend.space import build_estimator

    task = make_task("airflow", (0.2, 0.2, 0.9))
    best = CONFIGS[A_BEST]
    run = Execution(pipeline="churn_pipeline", stage="train", site=store.site,
                    params={**best, "seed": 7, "test_size": 0.25, "configs": [dict(best)]},
                    properties=knowledge.task_properties(task))
    store.put([run.ended(), Metric(execution_id=run.id, name="score", value=0.9)])
    [stored] = knowledge.from_store(store).runs[task.id]
    assert dict(stored.config) == best
    rec = recommend(make_task("next", (0.21, 0.2, 0.9)), k=1, store=store,
                    include_shipped=False, threshold=0.9)
    assert rec.configs() == [best]
    build_estimator(rec.configs()[0], "classification")  # the seed is a valid configuration


def test_optuna_callback_records_trials(store: Store) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    task = make_task("live", (0.5, 0.5, 0.5))
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(lambda t: 1.0 if suggest_config(t, "classification")["model"] == "knn"
                   else 2.0, n_trials=6, callbacks=[knowledge.optuna_callback(store, task)])
    kb = knowledge.from_store(store)
    runs = kb.runs[task.id]
    assert len(runs) == 6
    assert {r.score for r in runs} <= {-1.0, -2.0}  # minimised values are negated
    assert all("model" in r.config and "." not in "".join(r.config) for r in runs)


def test_a_trial_that_cannot_be_recorded_never_stops_the_study(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """The callback is tracking: an objective without a ``model`` parameter (or a
    multi-objective study) is a warning per trial, and the search runs to its end."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    task = make_task("own-names", (0.5, 0.5, 0.5))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(0))
    with caplog.at_level("WARNING", logger="cmf"):
        study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1.0, log=True), n_trials=3,
                       callbacks=[knowledge.optuna_callback(store, task)])
    assert len(study.trials) == 3
    assert sum("needs a 'model' key" in r.getMessage() for r in caplog.records) == 3
    multi = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(0))
    with caplog.at_level("WARNING", logger="cmf"):
        multi.optimize(lambda t: (suggest_config(t, "classification") and 1.0, 2.0),
                       n_trials=2, callbacks=[knowledge.optuna_callback(store, task)])
    assert len(multi.trials) == 2
    assert any("several objectives" in r.getMessage() for r in caplog.records)
    assert task.id not in knowledge.from_store(store).runs  # nothing half-recorded


def test_recorded_trials_are_the_configurations_that_ran(store: Store) -> None:
    """TPE samples raw numbers (C=3.7...) that suggest_config snaps to the grid: the store
    gets the snapped configuration, which the next study's seeds then propose exactly."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    task = make_task("snapped", (0.5, 0.5, 0.5))
    ran: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        config = suggest_config(trial, "classification")
        ran.append(config)
        return float(len(ran))  # later trials score higher: the last one is the best

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=3))
    study.optimize(objective, n_trials=12, callbacks=[knowledge.optuna_callback(store, task)])
    raw = [from_optuna_params(t.params) for t in study.trials]
    assert any(r != c for r, c in zip(raw, ran, strict=True))  # the sampler's values are off-grid
    runs = knowledge.from_store(store).runs[task.id]
    assert sorted(config_key(r.config) for r in runs) == sorted(config_key(c) for c in ran)
    for r in runs:
        check_config(r.config, "classification")  # on the grid
    rec = recommend(task, k=1, store=store, include_shipped=False)
    assert rec.configs() == [ran[-1]]
    nxt = optuna.create_study(direction="maximize")
    rec.enqueue(nxt)
    seen: list[dict] = []
    nxt.optimize(lambda t: seen.append(suggest_config(t, "classification")) or 0.0, n_trials=1)
    assert seen == [ran[-1]]  # the seed is proposed as given


def test_an_off_grid_run_recorded_earlier_is_still_proposed() -> None:
    """A run recorded with raw sampler values (before suggest_config kept the snapped one):
    its seed keeps the ``family.param`` names, so Optuna proposes it (snapped), not a random
    configuration."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = {"model": "rf", "max_features": 0.16023, "min_samples_leaf": 12}
    assert optuna_params(config) == {"model": "rf", "rf.max_features": 0.16023,
                                     "rf.min_samples_leaf": 12}
    assert optuna_params({"model": "rf", "n_estimators": 5}) == {"model": "rf",
                                                                 "n_estimators": 5}
    study = optuna.create_study()
    study.enqueue_trial(optuna_params(config))
    seen: list[dict] = []
    study.optimize(lambda t: seen.append(suggest_config(t, "classification")) or 0.0,
                   n_trials=1)
    assert seen == [{"model": "rf", "max_features": 0.25, "min_samples_leaf": 10}]  # log-snapped


class _OffsetReading:
    """A store read as ``from_store`` read it before: offset pages of every selected execution,
    the keys checked in Python (the base class's reference ``iter_executions``)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def iter_executions(self, *args: Any, **kwargs: Any) -> Any:
        return Store.iter_executions(self._store, *args, **kwargs)


def _varied_runs(store: Store) -> list[TaskDescription]:
    """Runs that count and runs that must not, in two pipelines, many at the same instant."""
    tasks = [make_task(f"v{i}", (0.1 * i, 0.5, 0.5)) for i in range(3)]
    records: list[Any] = []
    for i in range(60):
        task, cfg = tasks[i % 3], CONFIGS[i % len(CONFIGS)]
        recs = knowledge.trial_records(task, cfg, 0.5 + i / 100, site=store.site,
                                       seconds=float(i) if i % 2 else None,
                                       pipeline=f"hpo-{i % 2}", execution_id=uuid7(),
                                       started_at=1000.0 + i // 7)
        ex = recs[2]
        kind = i % 10
        if kind == 1:  # minimised score
            ex = dataclasses.replace(ex, properties={**ex.properties,
                                                     knowledge.DIRECTION_PROPERTY: "minimize"})
        elif kind == 2:  # not completed
            ex = dataclasses.replace(ex, status=ExecutionStatus.RUNNING, ended_at=None)
        elif kind == 3:  # no model param, "model" only as a value
            ex = dataclasses.replace(ex, params={"family": "model"})
        elif kind == 4:  # the task property is no mapping
            ex = dataclasses.replace(ex, properties={knowledge.TASK_PROPERTY: "a task"})
        elif kind == 5:  # the task property only nested
            ex = dataclasses.replace(ex, properties={"x": dict(ex.properties)})
        elif kind == 6:  # a task description that does not parse
            ex = dataclasses.replace(ex, properties={knowledge.TASK_PROPERTY: {"name": "x"}})
        recs[2] = ex
        if kind == 7:  # no score, only a score curve
            recs = [r for r in recs if not isinstance(r, Metric)]
            recs.append(Metric(execution_id=ex.id, name="score", value=0.9, step=3))
        records += recs
    filler = [Execution(pipeline="hpo-0", stage="trial", site=store.site, started_at=1003.0,
                        params={"model": "rf"}).ended() for _ in range(20)]
    store.put(records + filler)
    return tasks


def test_from_store_reads_by_key_what_offset_pages_read(store: Store) -> None:
    """The knowledge base read by key with the task and model filter in the database is the
    one offset pages over every completed execution gave: same tasks, runs, order, scores."""
    tasks = _varied_runs(store)
    for pipeline in (None, "hpo-1"):
        want = knowledge.from_store(_OffsetReading(store), pipeline=pipeline, page=5000)
        assert set(want.tasks) == {t.id for t in tasks}
        assert want.n_runs == (24 if pipeline is None else 12)
        for page in (1, 4, 5000):
            got = knowledge.from_store(store, pipeline=pipeline, page=page)
            assert list(got.tasks.items()) == list(want.tasks.items()), page
            assert got.runs == want.runs, (pipeline, page)


def test_from_store_reads_no_offset_pages(tmp_path: Path) -> None:
    """A year of runs (200,000 executions) took 22 s to read by offset pages: every page
    re-walked the rows skipped. Now no executions statement skips rows by OFFSET, and the
    executions without the task property are not sent."""
    from cmf_core.store import open_store
    from tests.support.sql import executed

    with open_store(f"sqlite:///{tmp_path / 'cmf.db'}", site="site-a") as store:
        _varied_runs(store)
        with executed(store) as every:
            assert knowledge.from_store(store, page=4).n_runs == 24
    seen = [(statement, params) for statement, params in every if "FROM executions" in statement]
    assert len(seen) > 3
    for statement, params in seen:
        assert "OFFSET" not in statement or params[-1] == 0, (statement, params)
        assert "LIKE" in statement, statement


class _EveryMetricReading(_OffsetReading):
    """A store whose scalar_metrics is the base Store's reference: every metric of the runs
    read (their per-step curves too), the scalars kept in Python, as from_store did."""

    def scalar_metrics(self, *args: Any, **kwargs: Any) -> Any:
        return Store.scalar_metrics(self._store, *args, **kwargs)


def _curves(store: Store, steps: int) -> None:
    """A per-step ``score`` and ``loss`` curve for every run that counts."""
    runs = [e for e in store.list_executions() if knowledge.TASK_PROPERTY in e.properties]
    store.put([Metric(execution_id=e.id, name=name, value=1.0 / (k + 1), step=k)
               for e in runs for name in ("score", "loss") for k in range(steps)])


def test_from_store_reads_the_same_scalars_as_reading_every_metric(store: Store) -> None:
    """Runs with per-step score curves beside their scalar score: the knowledge base (tasks,
    runs, scores, fit times, order) is the one reading every metric gave."""
    _varied_runs(store)
    _curves(store, 40)
    for pipeline in (None, "hpo-1"):
        want = knowledge.from_store(_EveryMetricReading(store), pipeline=pipeline)
        got = knowledge.from_store(store, pipeline=pipeline, page=7)
        assert got.n_runs == (24 if pipeline is None else 12)
        assert list(got.tasks.items()) == list(want.tasks.items())
        assert got.runs == want.runs
        assert any(r.seconds is not None for runs in got.runs.values() for r in runs)


def test_from_store_reads_no_per_step_curve(tmp_path: Path) -> None:
    """The knowledge base needs a run's scalar score and fit time; it read every metric of
    every run (a 10,000-step training curve each). Now the metrics read looks up just the
    scalar rows of those names by the metrics' key."""
    import sqlite3

    from cmf_core.store import open_store
    from tests.support.sql import executed

    db = tmp_path / "cmf.db"
    with open_store(f"sqlite:///{db}", site="site-a") as store:
        _varied_runs(store)
        _curves(store, 300)
        with executed(store) as every:
            assert knowledge.from_store(store).n_runs == 24
    seen = [(st, params) for st, params in every if "FROM metrics" in st]
    assert seen
    with sqlite3.connect(db) as c:
        for statement, params in seen:
            rows = c.execute(statement, params).fetchall()
            assert len(rows) <= 2 * 60, len(rows)  # scalars only: 300-step curves not sent
            plan = " ".join(str(r) for r in c.execute(f"EXPLAIN QUERY PLAN {statement}",
                                                      params))
            assert "SEARCH metrics USING" in plan and "step=?" in plan, plan

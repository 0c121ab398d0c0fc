"""recommend_step: the recommend-seed step of every orchestrator never fails a pipeline unless
strict, and says why."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from cmf_core.errors import ConfigError, InvalidInputError
from cmf_core.recommend import describe_csv, record_trial, task_properties
from cmf_core.recommend.step import recommend_step
from cmf_core.store import Store, open_store
from tests.core.recommend.conftest import CONFIGS, make_task

TELCO = (Path(__file__).resolve().parents[3] / "examples" / "data" / "telco-churn"
         / "Telco-Customer-Churn.csv")


def test_a_task_that_cannot_be_described_gives_no_seeds(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")

    def describe() -> Any:
        return describe_csv(empty, category="classification", target="y")

    with caplog.at_level(logging.WARNING, "cmf_core.recommend.step"):
        rec = recommend_step(describe, k=3)
    assert rec.seeds == () and rec.error and "is empty" in rec.error
    assert rec.message.startswith("no seeds, the search starts cold: could not describe")
    assert "could not describe the task" in caplog.text
    assert rec.seeder().next_config({}) is None  # the search downstream starts cold
    with pytest.raises(InvalidInputError, match="is empty"):
        recommend_step(describe, k=3, strict=True)
    # the step's task output (an XCom, a flow result, a KFP artifact) is a placeholder whose
    # category is a guess: logged with a training run it would join a bogus task in the graph
    for placeholder in (rec.task, rec.to_dict()["task"]):
        with pytest.raises(InvalidInputError, match="could not describe its task"):
            task_properties(placeholder)


@pytest.mark.parametrize("task, k, says", [
    ({"name": "x", "category": "astrology"}, 3, "astrology"),
    ({"name": "x", "category": "classification"}, 0, "k=0 must be a whole number >= 1"),
])
def test_a_bad_request_gives_no_seeds(task: dict, k: int, says: str) -> None:
    rec = recommend_step(task, k=k)
    assert rec.seeds == () and says in (rec.error or "")
    with pytest.raises(InvalidInputError, match=says):
        recommend_step(task, k=k, strict=True)


def test_a_store_that_cannot_be_opened_leaves_the_shipped_knowledge_base(
        caplog: pytest.LogCaptureFixture) -> None:
    task = describe_csv(TELCO, category="classification", target="Churn")
    with caplog.at_level(logging.WARNING, "cmf_core.recommend.step"):
        rec = recommend_step(task, k=2, store=lambda: open_store("garbage"))
    assert len(rec.seeds) == 2 and rec.error is None
    assert "cannot be opened" in caplog.text and "garbage" in caplog.text
    # and said in the message, as for a store that cannot be read
    assert "the CMF store's runs were left out: it cannot be opened: " in rec.message
    assert "garbage" in rec.message
    with pytest.raises(ConfigError, match="garbage"):
        recommend_step(task, k=2, store=lambda: open_store("garbage"), strict=True)


class _Failing:
    """A real store whose reads fail as a lost database connection would (the only fake
    here: a database outage cannot be staged in SQLite mid-call)."""

    def __init__(self, store: Store) -> None:
        self.store, self.closed = store, False

    def list_executions(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError("connection reset by peer")

    iter_executions = list_executions

    def close(self) -> None:
        self.closed = True
        self.store.close()


def test_a_store_that_cannot_be_read_leaves_the_shipped_knowledge_base(
        sqlite_store: Store) -> None:
    failing = _Failing(sqlite_store)
    task = describe_csv(TELCO, category="classification", target="Churn")
    rec = recommend_step(task, k=2, store=lambda: failing)
    assert len(rec.seeds) == 2 and rec.error is None
    assert "the CMF store's runs were left out: OSError: connection reset by peer" in rec.message
    assert failing.closed
    with pytest.raises(OSError, match="connection reset"):
        recommend_step(task, k=2, store=lambda: _Failing(sqlite_store), strict=True)


def test_the_store_runs_join_the_knowledge_base_and_the_store_is_closed(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    task = make_task("mine", (0.5, 0.5, 0.5))
    with open_store(url, "site") as store:
        record_trial(store, task, CONFIGS[11], 0.99)
        record_trial(store, task, CONFIGS[4], 0.5)
    closed: list[bool] = []

    def opened() -> Store:
        store = open_store(url, "site")
        close = store.close
        store.close = lambda: (closed.append(True), close())[1]  # type: ignore[method-assign]
        return store

    rec = recommend_step(task, k=1, store=opened)
    assert rec.configs() == [CONFIGS[11]]  # this task's own best run, from the store
    assert closed == [True]


def test_models_give_seeds_of_the_search_spaces_families_or_none_and_say_why(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'cmf.db'}"
    task = make_task("mine", (0.5, 0.5, 0.5))
    with open_store(url, "site") as store:
        record_trial(store, task, CONFIGS[11], 0.99)  # a logreg
        record_trial(store, task, CONFIGS[16], 0.7)   # a knn
    rec = recommend_step(task, k=2, store=lambda: open_store(url, "site"), models=["knn"])
    assert rec.error is None and rec.configs()[0] == CONFIGS[16]
    assert {c["model"] for c in rec.configs()} == {"knn"}
    with caplog.at_level(logging.WARNING, "cmf_core.recommend.step"):
        cold = recommend_step(task, k=2, store=lambda: open_store(url, "site"),
                              models=["xgboost"])
    assert cold.seeds == () and "none of the models xgboost has runs" in cold.error
    assert "the families there are" in caplog.text
    with pytest.raises(InvalidInputError, match="none of the models xgboost"):
        recommend_step(task, k=2, models=["xgboost"], strict=True)


@pytest.mark.parametrize("models", ["knn,svm", " knn , svm ", "['knn', 'svm']",
                                    '["knn", "svm"]', ("knn", "svm")])
def test_models_as_a_steps_parameter_may_arrive_as_a_string(models: Any) -> None:
    """A templated parameter (Airflow renders a list param to ``"['knn', 'svm']"``) or a typed
    in one (``knn,svm``, as ``cmf recommend --models``) names the same families as the list;
    it was taken for a single family of that name, so the step gave no seeds."""
    task = make_task("mine", (0.5, 0.5, 0.5))
    rec = recommend_step(task, k=4, models=models)
    assert rec.error is None and len(rec.seeds) == 4
    assert {c["model"] for c in rec.configs()} <= {"knn", "svm"}
    assert "only knn, svm as asked" in rec.message


@pytest.mark.parametrize(("models", "error"), [
    ("", "models='' must be a non-empty list"), ("[]", "models=[] must be a non-empty list"),
    ("[rf", "none of the models [rf has runs"), (7, "models=7 must be a list of model")])
def test_models_that_name_no_family_give_no_seeds_and_say_why(models: Any, error: str) -> None:
    rec = recommend_step(make_task("mine", (0.5, 0.5, 0.5)), k=2, models=models)
    assert rec.seeds == () and rec.error.startswith(error)
    assert rec.message.startswith("no seeds, the search starts cold")

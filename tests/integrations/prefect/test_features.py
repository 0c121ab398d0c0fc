"""Prefect features beyond plain sequential tasks, recorded by the in-process route: mapped
tasks, ``allow_failure``, returned metrics with a diverged value. Real flows, real server."""

from __future__ import annotations

from typing import Any

from prefect import flow, tags, task, unmapped
from prefect.utilities.annotations import allow_failure

from cmf_core.store.base import ExecutionFilter


def _runs(store: Any, pipeline: str, stage: str) -> list[Any]:
    return [e for e in store.list_executions(ExecutionFilter(pipeline=pipeline))
            if e.stage == stage]


def _names(store: Any, execution_id: str, kind: str) -> set[str]:
    return {store.get_artifact(e.artifact_id).name for e in store.events([execution_id])
            if e.type.value.lower() == kind}


def test_a_diverged_metric_keeps_the_others(auto_route: Any, cmf_store: Any) -> None:
    @task
    def train(lr: float) -> dict[str, float]:
        return {"loss": float("nan"), "acc": 0.5, "epochs": 3}

    @flow
    def diverging() -> dict[str, float]:
        return train(10.0)

    diverging()
    [run] = _runs(cmf_store, "diverging", "train")
    # was: no metric at all, the NaN loss made the whole dict "not metrics"
    assert {m.name: m.value for m in cmf_store.metrics([run.id])} == {"acc": 0.5, "epochs": 3.0}
    assert run.properties["cmf.non_finite_metrics"] == {
        "loss": {"count": 1, "first_step": None, "first_value": "nan"}}


def test_a_task_run_given_a_failed_upstream_is_linked_to_it(auto_route: Any,
                                                           cmf_store: Any) -> None:
    @task
    def train() -> int:
        raise ValueError("out of memory")

    @task
    def cleanup(outcome: Any) -> str:
        return "scratch removed"

    @task
    def report() -> str:
        return "sent"

    @flow
    def with_cleanup() -> tuple[str, str]:
        trained = train.submit()
        done = cleanup(allow_failure(trained))
        return done, report.submit(wait_for=[allow_failure(trained)]).result()

    assert with_cleanup() == ("scratch removed", "sent")
    [failed] = _runs(cmf_store, "with-cleanup", "train")
    assert failed.status.value == "failed"
    result = f"task-run/{failed.id}/result"
    assert result in _names(cmf_store, failed.id, "output")  # the exception it handed on
    for stage in ("cleanup", "report"):
        [run] = _runs(cmf_store, "with-cleanup", stage)
        assert run.status.value == "completed"
        assert result in _names(cmf_store, run.id, "input")
    # was: no edge, the failed run's result was an input nobody produced
    assert set(cmf_store.stage_edges("with-cleanup")) == {("train", "cleanup"),
                                                          ("train", "report")}


def test_mapped_task_runs_are_one_execution_each(auto_route: Any, cmf_store: Any) -> None:
    @task
    def load(n: int) -> list[int]:
        return list(range(n))

    @task(tags=["gpu"])
    def score(x: int, factor: int) -> int:
        if x == 1:
            raise ValueError(f"bad shard {x}")
        return x * factor

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    @flow
    def mapped(n: int = 3) -> None:
        with tags("nightly"):
            scores = score.map(load.submit(n), factor=unmapped(10))
        total.submit(scores).wait()

    mapped(return_state=True)
    [loaded] = _runs(cmf_store, "mapped", "load")
    scores = {run.params["x"]: run for run in _runs(cmf_store, "mapped", "score")}
    assert sorted(scores) == [0, 1, 2]
    assert all(run.params["factor"] == 10 for run in scores.values())  # unmapped: as given
    assert {x: run.status.value for x, run in scores.items()} == {
        0: "completed", 1: "failed", 2: "completed"}
    assert "bad shard 1" in scores[1].error
    assert all(run.properties["prefect.tags"] == ["gpu", "nightly"] for run in scores.values())
    for run in scores.values():  # each mapped run read the list the upstream returned
        assert _names(cmf_store, run.id, "input") == {f"task-run/{loaded.id}/result"}
    [summed] = _runs(cmf_store, "mapped", "total")
    assert summed.status.value == "skipped"  # an upstream shard failed: it never ran
    assert _names(cmf_store, summed.id, "input") == {
        f"task-run/{run.id}/result" for run in scores.values()}
    assert set(cmf_store.stage_edges("mapped")) == {("load", "score"), ("score", "total")}
    # was: the skipped run had an energy record too, its wait for the shards measured
    measured = {r.execution_id for r in cmf_store.energy()}
    assert measured == {loaded.id, *(run.id for run in scores.values())}

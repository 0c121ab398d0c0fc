"""Run ids as Airflow's OpenLineage provider computes them, so both views name a try alike."""

from __future__ import annotations

import datetime as dt

import pytest
from cmf_airflow.ids import dag_run_id, task_run_id

from tests.integrations.airflow.helpers import clear_provider_cache


@pytest.mark.parametrize("namespace", ["default", "prod-airflow"])
@pytest.mark.parametrize("map_index", [-1, 3])
def test_run_ids_are_the_providers(monkeypatch, namespace: str, map_index: int) -> None:
    from airflow.providers.openlineage import conf as ol_conf
    from airflow.providers.openlineage.utils.utils import (
        build_dag_run_ol_run_id,
        build_task_instance_ol_run_id,
    )

    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", namespace)
    clear_provider_cache(ol_conf.namespace)
    try:
        date = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
        assert task_run_id(namespace, "dag", "task", 2, date, map_index) == \
            build_task_instance_ol_run_id("dag", "task", 2, date, map_index)
        assert dag_run_id(namespace, "dag", date, 1) == build_dag_run_ol_run_id("dag", date, 1)
    finally:
        monkeypatch.undo()
        clear_provider_cache(ol_conf.namespace)

"""Which task tries record their process for `cmf reap`: not those that may wait with none."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from cmf_airflow.adapter import may_wait


@pytest.mark.parametrize(("task", "waits"), [
    (lambda: PythonOperator(task_id="fit", python_callable=print), False),
    (lambda: PythonSensor(task_id="poke", python_callable=print), False),  # pokes in-process
    (lambda: PythonSensor(task_id="later", python_callable=print, mode="reschedule"), True),
    (lambda: TimeDeltaSensor(task_id="defer", delta=dt.timedelta(hours=1), deferrable=True),
     True),
], ids=["operator", "poke-sensor", "reschedule-sensor", "deferrable"])
def test_tries_that_may_wait_without_a_process_are_told(task: Any, waits: bool) -> None:
    fresh = SimpleNamespace(next_method=None)  # the try's instance: only this is read
    assert may_wait(fresh, task()) is waits
    resumed = SimpleNamespace(next_method="execute_complete")  # back from its trigger
    assert may_wait(resumed, task()) is True

"""The ids Airflow's OpenLineage provider gives task tries and DAG runs, computed alike.

``build_task_instance_ol_run_id`` / ``build_dag_run_ol_run_id`` of the provider: UUIDv7s over
the logical date and ``"<namespace>.<dag>.<task>.<try>.<map_index>"`` (a DAG run:
``"<namespace>.<dag>.<clear_number>"``), so START and COMPLETE sent from different processes, a
retried emit, and the provider's own events all name one execution.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


def task_run_id(namespace: str, dag_id: str, task_id: str, try_number: int,
                logical_date: dt.datetime, map_index: int) -> str:
    """The OpenLineage provider's ``build_task_instance_ol_run_id``."""
    from openlineage.client.uuid import generate_static_uuid

    return str(generate_static_uuid(
        instant=logical_date,
        data=f"{namespace}.{dag_id}.{task_id}.{try_number}.{map_index}".encode()))


def dag_run_id(namespace: str, dag_id: str, logical_date: dt.datetime, clear_number: int) -> str:
    """The OpenLineage provider's ``build_dag_run_ol_run_id``."""
    from openlineage.client.uuid import generate_static_uuid

    return str(generate_static_uuid(
        instant=logical_date, data=f"{namespace}.{dag_id}.{clear_number}".encode()))


@dataclass(frozen=True, slots=True)
class TaskKey:
    """What identifies one task try, read from the task instance."""

    namespace: str
    dag_id: str
    task_id: str
    try_number: int
    map_index: int
    logical_date: dt.datetime
    clear_number: int
    airflow_run_id: str

    @property
    def run_id(self) -> str:
        return task_run_id(self.namespace, self.dag_id, self.task_id, self.try_number,
                           self.logical_date, self.map_index)

    @property
    def parent_run_id(self) -> str:
        return dag_run_id(self.namespace, self.dag_id, self.logical_date, self.clear_number)

    @property
    def job_name(self) -> str:
        return f"{self.dag_id}.{self.task_id}"

    @classmethod
    def of(cls, ti: Any, context: Any, namespace: str) -> TaskKey:
        dag_run = context.get("dag_run")
        date = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
        if date is None:
            date = ti.start_date or dt.datetime.now(dt.UTC)
        return cls(
            namespace=namespace,
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            try_number=int(ti.try_number or 0),
            map_index=int(ti.map_index if ti.map_index is not None else -1),
            logical_date=date,
            clear_number=int(getattr(dag_run, "clear_number", 0) or 0),
            airflow_run_id=str(ti.run_id),
        )

"""The cmf listener: routes Airflow's task-instance hooks to the adapter.

Airflow 3 calls these hooks in the task's own process (the task runner), around the task's
``execute``: ``on_task_instance_running`` before it, then one of ``..._success``,
``..._failed`` (also for a try that will be retried) or ``..._skipped``, then
``before_stopping``. A try that leaves its process without an end (deferred, awaiting input,
rescheduled) gets ``before_stopping`` only: the adapter then records that the try waits without
a process (:meth:`~cmf_airflow.adapter.CmfAdapter.stopping`). No hook declares ``session``
(Airflow 3 rejects hookimpls that do).

Every hook body is guarded by :func:`cmf_core.guard.never_raise`: a failure is logged once at
WARNING ("no impact on the task"), its traceback at DEBUG, and counted; the task goes on. The
slow parts (digests, recording) are time-bounded inside the adapter and the emitter, and what
cannot be recorded in time is spooled and retried.

DAG-run hooks (``on_dag_run_running`` / ``_success`` / ``_failed``) run in the scheduler (or the
``dag.test()`` process): each DAG run becomes an execution of pipeline and stage ``<dag_id>``,
with the id the task runs name as their ``parent``. Their events are queued to one background
thread, so the scheduler never waits on CMF.

``on_starting`` (an Airflow job process starting: the scheduler, before its LocalExecutor forks
the workers that fork every task process) imports what recording a try needs
(:mod:`cmf_airflow.warm`), so each task process inherits it instead of importing it anew.

When Airflow calls a task hook from the API server or scheduler with a database
``TaskInstance`` (a state changed by hand in the UI, a try the scheduler failed), there is no
running task to measure, and it is ignored; a try ended so (or by its trigger, in the
triggerer, which calls no hook) is ended in CMF when its DAG run ends
(:mod:`cmf_airflow.unended`).
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from pluggy import HookimplMarker

from cmf_airflow import conf
from cmf_airflow.adapter import CmfAdapter
from cmf_core.guard import never_raise

hookimpl = HookimplMarker("airflow")
log = logging.getLogger("cmf")


def _in_task_process(ti: Any) -> bool:
    """True for the task runner's ``RuntimeTaskInstance`` (which has the task and its context)."""
    return hasattr(ti, "get_template_context") and getattr(ti, "task", None) is not None


class CmfListener:
    """Records every task try as a CMF execution (see :mod:`cmf_airflow.adapter`)."""

    def __init__(self, adapter: CmfAdapter | None = None) -> None:
        self.adapter = adapter or CmfAdapter()

    @hookimpl
    def on_starting(self, component: Any) -> None:
        if not conf.is_disabled():
            self._warm(component)

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        # the kill switch is read here, so a change needs no restart; the end hooks finish
        # what was started
        if _in_task_process(task_instance) and not conf.is_disabled():
            self._start(task_instance)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        if _in_task_process(task_instance):
            self._finish(task_instance, "completed", None)

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any,
                                error: BaseException | str | None) -> None:
        if _in_task_process(task_instance):
            self._finish(task_instance, "failed", error)

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        if _in_task_process(task_instance):
            self._finish(task_instance, "skipped", None)

    @hookimpl
    def on_dag_run_running(self, dag_run: Any, msg: str) -> None:
        self._dag_run(dag_run, "running", None)

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        self._dag_run(dag_run, "completed", None)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        self._dag_run(dag_run, "failed", msg)

    @hookimpl
    def before_stopping(self, component: Any) -> None:
        self._stopping()
        self._flush()

    # guarded bodies ---------------------------------------------------------------------------
    @never_raise("importing ahead of the task processes")
    def _warm(self, component: Any) -> None:
        from cmf_airflow.warm import forks_tasks, warm_imports

        if forks_tasks(component):
            warm_imports()

    @never_raise("recording the task start")
    def _start(self, ti: Any) -> None:
        self.adapter.start_task(ti)

    @never_raise("recording the task end")
    def _finish(self, ti: Any, status: str, error: BaseException | str | None) -> None:
        self.adapter.finish_task(ti, status, error)

    @never_raise("recording a DAG run")
    def _dag_run(self, dag_run: Any, status: str, msg: str | None) -> None:
        if not conf.is_disabled():
            self.adapter.dag_run(dag_run, status, msg)

    @never_raise("recording a task's wait without a process")
    def _stopping(self) -> None:
        self.adapter.stopping()

    @never_raise("flushing task records")
    def _flush(self) -> None:
        self.adapter.flush()


@cache
def get_listener() -> CmfListener:
    """The process-wide listener (the plugin registers this one)."""
    return CmfListener()

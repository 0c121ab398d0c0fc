"""Task instances -> OpenLineage RunEvents with CMF facets, emitted through cmf_core.

One task try is one CMF execution, named exactly as Airflow's OpenLineage provider names it, so
the two views join:

* job: namespace ``[openlineage] namespace`` (default ``default``), name ``"<dag_id>.<task_id>"``;
  ``parent`` run facet: job ``<dag_id>``, run id :func:`dag_run_id`. Ingest turns this into
  pipeline = DAG, stage = task.
* run id: :func:`task_run_id`, the provider's ``build_task_instance_ol_run_id`` (a UUIDv7 over
  the logical date and ``"<namespace>.<dag>.<task>.<try>.<map_index>"``), so START and COMPLETE,
  a retry of an emit, and the provider's own events all land on one execution.
* run facets: ``cmf_execution`` (status, pipeline, stage, Airflow facts, XCom summary),
  ``cmf_site``, ``cmf_params`` (DAG params, rendered template fields, ``op_args``/``op_kwargs`` by
  argument name), and on the terminal event ``cmf_energy`` (measured in the task's own process
  from START to the end), ``cmf_metrics`` (logged with :mod:`cmf_airflow.decorators`) and
  ``errorMessage``.
* inputs (inlets; for an ``AssetAlias`` inlet the assets it points at when the try starts,
  :func:`~cmf_airflow.datasets.alias_inputs`) on both events, outputs on the terminal one:
  outlets and assets attached to aliases of a try that succeeded (Airflow emits no asset event
  for another), logged artifacts of any try; see :mod:`cmf_airflow.datasets` for their
  identity.

START is recorded by one background worker thread per process (:class:`Background`), so
recording overlaps the task's own work; the terminal event waits for it (bounded) and is
recorded before the hook returns. The emitter
(:func:`cmf_core.openlineage.emit.get_emitter`) records into the store or a CMF server within
``hook_timeout_s`` and spools what it cannot record, for retry.

With ``[cmf] lineage_source = openlineage`` (or ``auto`` when the OpenLineage provider sends to
CMF), the provider's own events record the task and its datasets; this adapter then emits a
single ``OTHER`` event for the same run with what the provider cannot know (energy, parameters,
XCom summary, metrics, logged artifacts), which ingest merges without changing the status.

A try that leaves its process without an end (deferred to its trigger without declaring it,
awaiting input, rescheduled) gets no end hook, only ``before_stopping``: :meth:`CmfAdapter.stopping`
then records, with a RUNNING event, that its process was released (``cmf.process_released``), so
``cmf reap`` never takes the wait for a kill; the process that resumes it records its end.
A try that no task process ends (its trigger ends it in the triggerer, the scheduler fails it)
is ended from Airflow's database when its DAG run ends (:mod:`cmf_airflow.unended`).
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmf_airflow import conf
from cmf_airflow.dagrun import (
    build_dag_run_event,
    dag_run_key,
    error_facet,
    failed_tasks,
    failure_message,
    parent_facet,
)
from cmf_airflow.datasets import (
    DatasetRef,
    alias_inputs,
    digests,
    event_extras,
    identify,
    inlet_extras,
    refs,
    runtime_outlets,
    stat_digests,
    to_openlineage,
    with_event_extra,
)
from cmf_airflow.facts import (
    PRODUCER,
    airflow_properties,
    dag_params,
    error_text,
    run_url,
    task_params,
    template_context,
)
from cmf_airflow.ids import TaskKey
from cmf_airflow.values import jsonable, summarise
from cmf_airflow.worker import Background
from cmf_core.process import PROPERTY, process_property, released_property

if TYPE_CHECKING:
    from cmf_core.config import Settings
    from cmf_core.openlineage.emit import Emitter

log = logging.getLogger("cmf")

INLINE_DIGEST_BYTES = 4 * 2**20
"""Datasets up to this size in all are digested in the hook's own thread (a few ms at most)."""

WAITING_STATES = frozenset({"deferred", "awaiting_input", "up_for_reschedule"})
"""Task instance states of a try that leaves its process without an end and goes on later in
another process (its trigger fired, its input given, its next poke)."""


def own_inputs(task: Any) -> list[Any]:
    """The files an operator reads by its own parameters, not its inlets (``cmf_inputs()``:
    the recommend-seed operator's ``dataset_path``); none when it has no such method or the
    method fails."""
    own = getattr(task, "cmf_inputs", None)
    try:
        return [p for p in own() if p] if callable(own) else []
    except Exception:
        return []


# one running try ----------------------------------------------------------------------------
@dataclass
class TaskRun:
    """State of one task try in this process, from START to its end."""

    key: TaskKey
    ti: Any  # the try's task instance (its state tells, at the end, why it left)
    options: conf.Snapshot
    settings: Settings
    emitter: Emitter | None
    mode: str  # "listener" or "openlineage"
    started_at: dt.datetime
    properties: dict[str, Any]
    inputs: list[DatasetRef]
    input_ids: dict[str, tuple[str, str]]
    monitor: Any = None
    start_done: threading.Event | None = None
    metrics: list[tuple[str, float, int | None, float]] = field(default_factory=list)
    logged: list[DatasetRef] = field(default_factory=list)
    logged_ids: dict[str, tuple[str, str]] = field(default_factory=dict)
    custom_properties: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    hooked: tuple[Any, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    # the XCom return value ------------------------------------------------------------------
    def watch_return_value(self, task: Any) -> None:
        """Summarise the task's return value as it is returned, without reading XCom back.

        Installs a post-execute hook on this try's copy of the operator (Airflow calls it with
        the value ``execute`` returned, the value it pushes to XCom); the user's own hook, if
        any, still runs first and its errors are its own. :meth:`release` puts it back.
        """
        user_hook = getattr(task, "_post_execute_hook", None)
        if user_hook is not None and inspect.isgeneratorfunction(user_hook):
            return  # Airflow drives generator hooks itself (asset events): leave it alone

        def post_execute(context: Any, result: Any = None) -> None:
            if user_hook is not None:
                user_hook(context, result)
            try:
                if result is not None:
                    summary = summarise(result)
                    with self.lock:
                        self.properties["airflow.xcom_return"] = summary
            except Exception as e:
                from cmf_core.guard import report

                report("summarising the XCom return value", e)

        self.hooked = (task, user_hook)
        task._post_execute_hook = post_execute

    def release(self) -> None:
        """Give the operator its own post-execute hook back."""
        if self.hooked is not None:
            task, user_hook = self.hooked
            task._post_execute_hook = user_hook
            self.hooked = None

    # used by cmf_airflow.decorators ---------------------------------------------------------
    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        from cmf_core.model import Metric

        # checked here (raises, naming the problem): a metric the store refuses (NaN, no name)
        # would make ingest refuse the whole terminal event, and the try would stay running
        m = Metric(self.key.run_id, str(name), value, step, time.time())
        with self.lock:
            self.metrics.append((m.name, m.value, m.step, m.timestamp))

    def log_artifact(self, ref: DatasetRef) -> None:
        ident = identify(ref, digests([ref], self.settings.digest_max_mb * 2**20))
        with self.lock:
            self.logged.append(ref)
            if ident is not None:
                self.logged_ids[ref.uri] = ident

    def log_params(self, params: dict[str, Any]) -> None:
        with self.lock:
            self.params.update({str(k): jsonable(v) for k, v in params.items()})

    def set_properties(self, props: dict[str, Any]) -> None:
        with self.lock:
            self.custom_properties.update({str(k): jsonable(v) for k, v in props.items()})


def may_wait(ti: Any, task: Any) -> bool:
    """Whether a try says beforehand that it can pause with no process while it stays running:
    a deferrable operator, a sensor in ``reschedule`` mode, or a try resumed from its trigger.
    Its process is then not recorded, so ``cmf reap`` never takes the wait for a kill. A try
    that pauses without saying so (an operator calling ``self.defer()`` with no ``deferrable``
    attribute, one awaiting input) is recorded, and released when it leaves its process
    (:meth:`CmfAdapter.stopping`)."""
    return bool(getattr(task, "deferrable", False) or getattr(task, "start_from_trigger", False)
                or getattr(task, "mode", None) == "reschedule"
                or getattr(ti, "next_method", None))


def left_waiting(ti: Any) -> str | None:
    """Why a try whose process stops before its end was recorded goes on without a process:
    the state it left its instance in, one of :data:`WAITING_STATES`. None for any other state
    (an end whose hook was missed, a try still running as its process stops, an unreadable
    state): such a try waits for nothing, and if its process is gone ``cmf reap`` may end it."""
    state = getattr(ti, "state", None)
    name = str(getattr(state, "value", state) or "")
    return name if name in WAITING_STATES else None


class CmfAdapter:
    """Builds and emits the events of every task try that runs in this process."""

    def __init__(self) -> None:
        self._runs: dict[tuple[str, str, str, int], TaskRun] = {}
        self._lock = threading.Lock()
        self._connection: tuple[str, str | None] | None = None
        self._connection_read = False
        self.background = Background()

    # settings -------------------------------------------------------------------------------
    def settings(self, snap: conf.Snapshot) -> Settings:
        if snap.conn_id and not self._connection_read:
            from cmf_airflow.hooks import CmfHook

            self._connection = CmfHook(snap.conn_id).get_peer()
            self._connection_read = True
        return conf.settings(snap, self._connection if snap.conn_id else None)

    @staticmethod
    def mode(snap: conf.Snapshot) -> str:
        source = snap.lineage_source
        if source == "auto":
            return "openlineage" if conf.openlineage_sends_to_cmf() else "listener"
        return source

    # lookups --------------------------------------------------------------------------------
    @staticmethod
    def _slot(ti: Any) -> tuple[str, str, str, int]:
        return (ti.dag_id, ti.task_id, str(ti.run_id),
                int(ti.map_index if ti.map_index is not None else -1))

    def current(self, ti: Any) -> TaskRun | None:
        """The running try of ``ti`` in this process, if the listener started one."""
        with self._lock:
            return self._runs.get(self._slot(ti))

    # START ----------------------------------------------------------------------------------
    def start_task(self, ti: Any) -> TaskRun:
        snap = conf.snapshot()
        settings = self.settings(snap)
        context = template_context(ti)
        key = TaskKey.of(ti, context, snap.namespace)
        task = ti.task
        inlets = list(getattr(task, "inlets", None) or ())
        run = TaskRun(
            key=key,
            ti=ti,
            options=snap,
            settings=settings,
            emitter=None,  # got in the worker: a new emitter first replays the spool
            mode=self.mode(snap),
            started_at=ti.start_date or dt.datetime.now(dt.UTC),
            # the task's own process: `cmf reap` can tell once it is killed (OOM, SIGKILL);
            # not for a try that may wait without a process (deferred, rescheduled)
            properties={**airflow_properties(ti, task), **run_url(ti, snap.ui_base_url),
                        **({} if may_wait(ti, task) else process_property())},
            inputs=refs([*inlets, *own_inputs(task)]),
            input_ids={},
            # Airflow calls this hook once the templates are rendered: the values the task uses
            params={**dag_params(context), **task_params(task)},
        )
        # the versions the latest asset events give; the assets aliases point at
        if run.mode == "listener" and inlets:
            extras = inlet_extras(inlets, context)
            run.inputs = [with_event_extra(r, extras.get((r.namespace, r.name)))
                          for r in run.inputs]
            seen = {(r.namespace, r.name) for r in run.inputs}
            run.inputs += [r for r in alias_inputs(inlets, context)
                           if (r.namespace, r.name) not in seen]
        if snap.xcom_summary and getattr(task, "do_xcom_push", False):
            run.watch_return_value(task)
        if settings.energy:
            from cmf_core.energy import EnergyMonitor

            run.monitor = EnergyMonitor(settings, pid=os.getpid()).start()
        with self._lock:
            self._runs[self._slot(ti)] = run
        run.start_done = self.background.submit(lambda: self._emit_start(run))
        return run

    def _emit_start(self, run: TaskRun) -> None:
        """In the worker: get the emitter (replaying any spooled events), record START."""
        from cmf_core.openlineage.emit import get_emitter

        try:  # our own worker thread: nothing may escape it
            run.emitter = get_emitter(run.settings)
            if run.mode == "listener":
                run.input_ids = self._identify(run, run.inputs)
                run.emitter.emit(self.build_event(run, "START", "running", run.started_at))
        except BaseException as e:
            from cmf_core.guard import report

            report("recording the task start", e)

    def _identify(self, run: TaskRun, found: list[DatasetRef]) -> dict[str, tuple[str, str]]:
        """Content digests of the local datasets within the time budget, else stat digests."""
        local = [r for r in found if r.local_path]
        if not local:
            return {}
        max_bytes = run.settings.digest_max_mb * 2**20
        if sum(_size(r.local_path) for r in local) <= INLINE_DIGEST_BYTES:
            return digests(local, max_bytes)  # a few ms at most: no thread needed
        from cmf_core.guard import Timeout, run_bounded

        try:
            return run_bounded(lambda: digests(local, max_bytes), run.settings.hook_timeout_s,
                               "digesting task datasets")
        except Timeout:
            log.warning("cmf: digesting %d dataset(s) of %s took longer than %.1f s; they are "
                        "identified by path, size and mtime instead (no impact on the task)",
                        len(local), run.key.job_name, run.settings.hook_timeout_s)
            return stat_digests(local)

    # DAG runs (scheduler or dag.test process) ---------------------------------------------
    def dag_run(self, dag_run: Any, status: str, message: str | None = None) -> None:
        """Queue the START / COMPLETE / FAIL event of a DAG run (never blocks the caller: even
        getting the emitter, which may replay the spool, happens in the background job)."""
        snap = conf.snapshot()
        if self.mode(snap) == "openlineage":  # the provider records DAG runs itself
            return
        settings = self.settings(snap)
        from cmf_core.openlineage.emit import get_emitter

        event = build_dag_run_event(dag_run, status, message, settings.site, snap.namespace)
        if status != "running":  # the tries Airflow ended without their process reporting it
            self._end_unended_later(dag_run, snap.namespace, settings)
        if status != "failed":
            self.background.submit(lambda: get_emitter(settings).emit(event))
            return
        # named failed tasks are read in the background; the DagRun (an ORM object of the
        # scheduler's session) only here, in the scheduler's thread
        ids = str(dag_run.dag_id), str(dag_run.run_id)

        def failed() -> None:
            named = _name_failed_tasks(message, *ids, settings.hook_timeout_s)
            if named:
                event.run.facets["errorMessage"] = error_facet(named)
            get_emitter(settings).emit(event)

        self.background.submit(failed)

    def _end_unended_later(self, dag_run: Any, namespace: str, settings: Settings) -> None:
        """Queue :func:`~cmf_airflow.unended.record_unended` for the ended DAG run, after the
        grace its last tries' own end hooks may take (the DagRun is read here, in the
        caller's thread)."""
        from cmf_airflow.unended import GRACE_TIMEOUTS, record_unended

        ns, date, clear_number = dag_run_key(dag_run, namespace)
        dag_id, run_id = str(dag_run.dag_id), str(dag_run.run_id)

        def job() -> None:
            try:
                record_unended(dag_id, run_id, ns, date, clear_number, settings)
            except Exception as e:  # the runs' own records stand; only these ends are missed
                log.warning("cmf: could not check DAG run %s/%s for tries Airflow ended without "
                            "their task process (a trigger, the scheduler): %s; such a try stays "
                            "running in CMF", dag_id, run_id, e)

        self.background.submit_later(GRACE_TIMEOUTS * settings.hook_timeout_s, job)

    # the end --------------------------------------------------------------------------------
    def finish_task(self, ti: Any, status: str, error: BaseException | str | None = None
                    ) -> TaskRun | None:
        """Emit the terminal event of ``ti``'s try: status ``completed``, ``failed``,
        ``skipped``."""
        with self._lock:
            run = self._runs.pop(self._slot(ti), None)
        if run is None:  # the START hook did not run here (or failed): start late, measure 0
            if conf.is_disabled():
                return None
            run = self.start_task(ti)
            with self._lock:
                self._runs.pop(self._slot(ti), None)
        energy = run.monitor.stop() if run.monitor is not None else None
        ended = dt.datetime.now(dt.UTC)
        task = ti.task
        run.release()
        self._join_start(run)
        self._late_params(run, task)
        label = getattr(ti, "rendered_map_index", None)  # rendered map_index_template
        if label:
            with run.lock:
                run.properties["airflow"] = {**run.properties.get("airflow", {}),
                                             "rendered_map_index": str(label)}
        outputs: list[DatasetRef] = []
        if run.mode == "listener" and status == "completed":  # as Airflow: no asset events else
            outlets = list(getattr(task, "outlets", None) or [])
            context = template_context(ti)
            extras = event_extras(context)
            outputs = [with_event_extra(r, extras.get((r.namespace, r.name)))
                       for r in refs(outlets)]
            if any(type(o).__name__ == "AssetAlias" for o in outlets):
                seen = {(r.namespace, r.name) for r in outputs}
                outputs += [r for r in runtime_outlets(context)
                            if (r.namespace, r.name) not in seen]
        output_ids = self._identify(run, outputs)
        event_type = {"completed": "COMPLETE", "failed": "FAIL", "skipped": "COMPLETE"}[status]
        if run.mode == "openlineage":
            event_type = "OTHER"
        self._send(run, self.build_event(run, event_type, status, ended, outputs=outputs,
                                         output_ids=output_ids, energy=energy, error=error))
        return run

    @staticmethod
    def _late_params(run: TaskRun, task: Any) -> None:
        """Add the template fields set during ``execute`` (``@task.bash``'s command), as the
        task used them; the values read at START are kept."""
        with run.lock:
            known = set(run.params)
        try:
            late = task_params(task, skip=known)
        except Exception as e:
            from cmf_core.guard import report

            report("reading the task's parameters at its end", e)
            return
        with run.lock:
            for name, value in late.items():
                run.params.setdefault(name, value)

    @staticmethod
    def _send(run: TaskRun, event: Any) -> None:
        """Emit a later event of ``run`` (recorded now, or spooled)."""
        if run.emitter is None:  # the worker did not get to it in time
            from cmf_core.openlineage.emit import get_emitter

            run.emitter = get_emitter(run.settings)
        run.emitter.emit(event)

    def _join_start(self, run: TaskRun) -> None:
        done = run.start_done
        if done is not None and not done.wait(run.settings.hook_timeout_s * 2):
            log.warning("cmf: the START event of %s is still being recorded; the terminal "
                        "event goes ahead (no impact on the task)", run.key.job_name)

    def stopping(self) -> None:
        """The process stops (Airflow's ``before_stopping``): each try started here that got
        no end leaves its process while it stays un-finished (:func:`left_waiting`). Where its
        process was recorded, record that the orchestrator released it (a RUNNING event with
        ``cmf.process_released``), so ``cmf reap`` never takes the wait for a kill; the
        process that resumes the try records its end. Never raises."""
        with self._lock:
            left = [(slot, run, reason) for slot, run in self._runs.items()
                    if (reason := left_waiting(run.ti)) is not None]
            for slot, _run, _ in left:
                del self._runs[slot]
        for _, run, reason in left:
            try:
                self._release(run, reason)
            except Exception as e:
                from cmf_core.guard import report

                report("recording a task's wait without a process", e)

    def _release(self, run: TaskRun, reason: str) -> None:
        if run.monitor is not None:
            run.monitor.stop()  # the wait is not the task's work (its resume measures anew)
        run.release()
        self._join_start(run)
        if run.mode != "listener" or PROPERTY not in run.properties:
            return  # its process was never recorded: nothing can take the wait for a kill
        with run.lock:
            run.properties.update(released_property(reason))
        # recorded now, or spooled (`cmf reap` then waits for it)
        self._send(run, self.build_event(run, "RUNNING", "running", dt.datetime.now(dt.UTC)))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait (bounded) for events still being recorded: START events of running tries and
        queued DAG-run events. True if everything was recorded in time."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.release()
            self._join_start(run)
        return self.background.flush(timeout)

    # events ---------------------------------------------------------------------------------
    def build_event(self, run: TaskRun, event_type: str, status: str, when: dt.datetime, *,
                    outputs: list[DatasetRef] | None = None,
                    output_ids: dict[str, tuple[str, str]] | None = None,
                    energy: Any = None, error: BaseException | str | None = None) -> Any:
        """The RunEvent of ``run`` (openlineage-python objects, CMF facets included)."""
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import error_message_run

        from cmf_core.openlineage.facets import (
            EnergyRunFacet,
            ExecutionRunFacet,
            MetricPoint,
            MetricsRunFacet,
            ParamsRunFacet,
            SiteRunFacet,
        )

        key, terminal = run.key, event_type not in ("START", "RUNNING")
        with run.lock:
            properties = dict(run.properties)
            params = dict(run.params)
            metrics = list(run.metrics)
            custom = dict(run.custom_properties)
            logged = list(run.logged)
            logged_ids = dict(run.logged_ids)
        facets: dict[str, Any] = {
            "parent": parent_facet(key.namespace, key.dag_id, key.parent_run_id),
            "cmf_execution": ExecutionRunFacet(
                status=status, pipeline=key.dag_id, stage=key.task_id,
                properties=properties, custom_properties=custom,
                producer=PRODUCER),
            "cmf_site": SiteRunFacet(name=run.settings.site, producer=PRODUCER),
        }
        if params:
            facets["cmf_params"] = ParamsRunFacet(params=params, producer=PRODUCER)
        if terminal and metrics:
            facets["cmf_metrics"] = MetricsRunFacet(
                metrics=[MetricPoint(n, v, s, t) for n, v, s, t in metrics], producer=PRODUCER)
        if terminal and energy is not None:
            record = energy.to_record(key.run_id, run.settings)
            facets["cmf_energy"] = EnergyRunFacet(
                energy_kwh=record.energy_kwh, co2e_kg=record.co2e_kg,
                details=dict(record.details), producer=PRODUCER)
        if error is not None:
            message, stack = error_text(error)
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=message, programmingLanguage="python", stackTrace=stack,
                producer=PRODUCER)
        inputs = [] if run.mode == "openlineage" else run.inputs
        out_refs = list(outputs or [])
        ids = {**run.input_ids, **(output_ids or {})}
        if terminal:
            out_refs += logged
        return RunEvent(
            eventType=RunState(event_type),
            eventTime=when.astimezone(dt.UTC).isoformat(),
            run=Run(runId=key.run_id, facets=facets),
            job=Job(namespace=key.namespace, name=key.job_name),
            inputs=[to_openlineage(r, identify(r, ids), False, PRODUCER) for r in inputs],
            outputs=[to_openlineage(r, logged_ids.get(r.uri) or identify(r, ids), True,
                                    PRODUCER) for r in out_refs],
            producer=PRODUCER,
        )


def _size(path: str | None) -> int:
    """Bytes of a file (a directory counts as large: it is digested in a bounded thread)."""
    try:
        return INLINE_DIGEST_BYTES + 1 if path and os.path.isdir(path) else \
            os.stat(path).st_size if path else 0
    except OSError:
        return 0


def _name_failed_tasks(reason: str | None, dag_id: str, run_id: str, timeout: float
                       ) -> str | None:
    """Airflow's reason for a failed DAG run with its failed task instances named (read from
    Airflow's database within ``timeout``); the reason alone when they cannot be read."""
    from cmf_core.guard import run_bounded

    try:
        failed = run_bounded(lambda: failed_tasks(dag_id, run_id), timeout,
                             "reading the failed tasks of a DAG run")
    except Exception as e:  # a detail of the error: the DAG run is recorded all the same
        log.debug("cmf: could not read the failed tasks of DAG run %s/%s: %s", dag_id, run_id, e)
        return reason
    return failure_message(reason, failed)

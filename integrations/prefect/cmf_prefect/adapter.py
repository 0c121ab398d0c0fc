"""Prefect runs -> OpenLineage RunEvents (spec 2-0-2) with CMF's facets, sent through the core.

Every route (in-process :mod:`~cmf_prefect.auto`, out-of-process :mod:`~cmf_prefect.watcher`,
explicit :mod:`~cmf_prefect.hooks`) builds its events here, so one Prefect run gives the same
CMF records whichever route saw it, and a run seen by two routes is one execution.

==================  =========================================================================
Prefect             CMF (OpenLineage)
==================  =========================================================================
flow                pipeline, named after the flow (job ``<flow>``)
task                stage, named after the task without the run suffix (job ``<flow>.<task>``)
task run            execution; ``runId`` = the task run id (retries are the same execution);
                    ``parent`` facet = the flow run
flow run            execution of the stage ``<flow>`` (the OpenLineage convention for a
                    parent job's run); ``runId`` = the flow run id
parameters          ``cmf_params`` (bounded JSON, see :mod:`~cmf_prefect.values`)
state               event type and ``cmf_execution.status``: Running -> START (a retry ->
                    RUNNING), Completed/Cached -> COMPLETE, Failed/Crashed/TimedOut -> FAIL,
                    Cancelled -> ABORT, never-run (NotReady) -> COMPLETE with ``skipped``;
                    the state message -> ``errorMessage``
lineage             see :mod:`~cmf_prefect.datasets` (upstream ``task_inputs``, results,
                    local files, ``@materialize`` assets)
energy              ``cmf_energy``, measured around each task run in the in-process route and
                    the hooks
==================  =========================================================================

Properties (``cmf_execution.properties``) carry ``prefect.*`` facts (run name, task key, flow
run id, tags, state name), ``cmf.run_url`` (the run's page in Prefect's UI, when
``PREFECT_UI_URL`` is known: :func:`ui_link`) and ``prefect.route``, the route whose event set
the execution's current state (the store keeps an execution's row from the first event that
moves its status forward; every route's events stay in the store's raw OpenLineage events).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmf_prefect.datasets import Dataset

if TYPE_CHECKING:
    from cmf_core.config import Settings
    from cmf_core.energy import EnergyMonitor
    from cmf_core.model import EnergyRecord

log = logging.getLogger("cmf.prefect")

NAMESPACE = "prefect"
"""OpenLineage job namespace of every Prefect job."""
MAX_ERROR = 20_000
QUIET_S = 0.005
"""The background recorder records once no run has started or ended for this long..."""
MAX_DEFER_S = 0.25
"""...or once it has waited this long for such a moment."""
FLUSH_BACKOFF_S = 60.0
"""After a flush timed out (a slow or locked sink), flow ends do not wait again for this long:
their events are in the spool and recorded in the background all the same."""

ROUTE_IN_PROCESS = "in-process"
ROUTE_WATCHER = "watcher"
ROUTE_HOOKS = "hooks"

_STATUS_OF_STATE_TYPE = {
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CRASHED": "failed",
    "CANCELLED": "aborted",
    "CANCELLING": "aborted",
}
_EVENT_TYPE_OF_STATUS = {
    "completed": "COMPLETE",
    "skipped": "COMPLETE",
    "failed": "FAIL",
    "aborted": "ABORT",
}


@dataclass(frozen=True, slots=True)
class RunRef:
    """A Prefect run as CMF names it."""

    run_id: str
    pipeline: str
    stage: str
    kind: str  # "task-run" or "flow-run"
    flow_run_id: str | None = None  # the flow run a task run belongs to

    @property
    def job_name(self) -> str:
        return self.pipeline if self.kind == "flow-run" else f"{self.pipeline}.{self.stage}"


def task_ref(task_run_id: Any, stage: str, flow_name: str | None, flow_run_id: Any) -> RunRef:
    """A task run; outside any flow the task is its own pipeline."""
    return RunRef(str(task_run_id), flow_name or stage, stage, "task-run",
                  str(flow_run_id) if flow_run_id else None)


def flow_ref(flow_run_id: Any, flow_name: str) -> RunRef:
    return RunRef(str(flow_run_id), flow_name, flow_name, "flow-run")


def stage_of(name: str, dynamic_key: str | None, task_key: str | None) -> str:
    """The task name behind a task run name (``train-3fa`` -> ``train``).

    Prefect names a task run ``<task name>-<first 3 characters of its dynamic key>`` inside a
    flow and ``<task name>`` outside one (its dynamic key then starts with the task key). A run
    renamed by ``task_run_name`` falls back to the function name in the task key.
    """
    if dynamic_key and name.endswith("-" + dynamic_key[:3]) and len(name) > 4:
        return name[:-4]
    if not dynamic_key or (task_key and dynamic_key.startswith(task_key)):
        return name
    if task_key and "-" in task_key:
        return task_key.rsplit("-", 1)[0]
    return name


def status_of(state_type: str | None) -> str | None:
    """CMF status of a terminal Prefect state type; None for a state that is not terminal."""
    return _STATUS_OF_STATE_TYPE.get(str(state_type or "").upper().rsplit(".", 1)[-1])


def event_type_of(status: str, first: bool = True) -> str:
    """OpenLineage event type of a CMF status (``running``: START, or RUNNING for a retry)."""
    if status == "running":
        return "START" if first else "RUNNING"
    return _EVENT_TYPE_OF_STATUS.get(status, "OTHER")


@dataclass
class RunFacts:
    """What one event says about a run, beyond its identity."""

    status: str  # running, completed, failed, aborted, skipped
    at: float  # Unix seconds
    event_type: str | None = None  # default: from status
    params: Mapping[str, Any] | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    inputs: Iterable[Dataset] = ()
    outputs: Iterable[Dataset] = ()
    error: str | None = None
    stack_trace: str | None = None
    energy: EnergyRecord | None = None
    metrics: Mapping[str, float] | None = None


def _datasets(items: Iterable[Dataset], output: bool) -> list[Any]:
    from openlineage.client.event_v2 import InputDataset, OutputDataset

    cls = OutputDataset if output else InputDataset
    seen: set[tuple[str, str]] = set()
    out = []
    for ds in items:
        if ds.key in seen:
            continue
        seen.add(ds.key)
        out.append(cls(namespace=ds.namespace, name=ds.name, facets=dict(ds.facets)))
    return sorted(out, key=lambda d: (d.namespace, d.name))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def ui_link(ref: RunRef) -> dict[str, str]:
    """``{"cmf.run_url": ...}``: the run's page in Prefect's UI, as Prefect itself links it
    (``prefect.utilities.urls.url_for``: ``<PREFECT_UI_URL>/runs/task-run/<id>`` or
    ``/runs/flow-run/<id>``). Nothing when ``PREFECT_UI_URL`` is unknown (no ``PREFECT_API_URL``
    either: a temporary server, whose pages go with it) or not an http(s) URL. No network call:
    settings only."""
    from cmf_core.model import RUN_URL_PROPERTY, web_url

    try:
        from prefect.utilities.urls import url_for

        url = web_url(url_for(ref.kind, obj_id=ref.run_id))
    except Exception:  # a link is a convenience: never a reason to lose the record
        return {}
    return {RUN_URL_PROPERTY: url} if url else {}


def run_event(ref: RunRef, facts: RunFacts, route: str) -> dict[str, Any]:
    """The OpenLineage RunEvent (a plain JSON dict) for ``facts`` about run ``ref``."""
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, parent_run

    from cmf_core import jsonutil
    from cmf_core.openlineage.convert import event_to_dict
    from cmf_core.openlineage.facets import (
        PRODUCER,
        EnergyRunFacet,
        ExecutionRunFacet,
        MetricPoint,
        MetricsRunFacet,
        ParamsRunFacet,
    )
    from cmf_core.openlineage.times import format_time

    properties = {**_plain(facts.properties), "prefect.route": route, **ui_link(ref)}
    # the run's own process (`cmf reap`); not a flow run's, which may pause or suspend and
    # end its process while it stays running
    if route != ROUTE_WATCHER and facts.status == "running" and ref.kind == "task-run":
        from cmf_core.process import process_property

        properties.update(process_property())  # the run's own process (`cmf reap`)
    facets: dict[str, Any] = {
        "cmf_execution": ExecutionRunFacet(
            status=facts.status, pipeline=ref.pipeline, stage=ref.stage,
            properties=jsonutil.clean(properties)),
    }
    if ref.kind == "task-run" and ref.flow_run_id:
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=ref.flow_run_id),
            job=parent_run.Job(namespace=NAMESPACE, name=ref.pipeline),
            producer=PRODUCER)
    if facts.params is not None:
        facets["cmf_params"] = ParamsRunFacet(params=jsonutil.clean(_plain(facts.params)))
    if facts.metrics:
        facets["cmf_metrics"] = MetricsRunFacet(metrics=[
            MetricPoint(name, float(value), None, facts.at)
            for name, value in sorted(facts.metrics.items())])
    if facts.energy is not None:
        e = facts.energy
        facets["cmf_energy"] = EnergyRunFacet(energy_kwh=e.energy_kwh, co2e_kg=e.co2e_kg,
                                              details=jsonutil.clean(_plain(e.details)))
    if facts.error and facts.status in ("failed", "aborted", "skipped"):
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=facts.error[:MAX_ERROR], programmingLanguage="python",
            stackTrace=facts.stack_trace[:MAX_ERROR] if facts.stack_trace else None,
            producer=PRODUCER)
    event = RunEvent(
        eventType=RunState(facts.event_type or event_type_of(facts.status)),
        eventTime=format_time(facts.at),
        run=Run(runId=ref.run_id, facets=facets),
        job=Job(namespace=NAMESPACE, name=ref.job_name),
        inputs=_datasets(facts.inputs, output=False),
        outputs=_datasets(facts.outputs, output=True),
        producer=PRODUCER,
    )
    return event_to_dict(event)


class Recorder:
    """Sends events through the core emitter and measures energy; shared by the routes.

    ``background=True`` (the in-process route and the hooks): each event is built and written
    ahead to the spool folder in the caller's thread (under a millisecond), then recorded into
    the store by one daemon thread, so a task never waits for the store's transactions; that
    thread records while runs are not starting or ending (see :meth:`_wait_for_quiet`).
    :meth:`flush` waits for the queue to empty; the routes call :meth:`flush_flow_end` when an
    outermost flow run ends, and it runs at interpreter exit. A process killed outright
    (``SIGKILL``) loses no event: each is in the spool until recorded (see
    :meth:`_write_ahead`). Settings are read on first use (not at import: the in-process route
    is installed while ``prefect`` itself is being imported).
    """

    def __init__(self, settings: Settings | None = None, *, background: bool = False) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self.background = background
        self._queue: queue.Queue[tuple[Path | None, dict[str, Any]]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._pid = os.getpid()
        self._flushing = 0
        self._skip_flush_until = 0.0
        self.last_activity = 0.0

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from cmf_core.config import load_settings

            with self._lock:
                if self._settings is None:
                    self._settings = load_settings()
        return self._settings

    @property
    def digest_max_bytes(self) -> float:
        """``digest_max_mb`` of these settings in bytes: local files and folders up to this
        size are identified by their content, as by every other route."""
        return self.settings.digest_max_mb * 2**20

    def _send(self, event: dict[str, Any], ahead: Path | None = None) -> bool:
        from cmf_core.openlineage.emit import get_emitter

        return get_emitter(self.settings).emit(event, ahead)

    def emit(self, event: Mapping[str, Any]) -> bool:
        """Record ``event`` (or spool it for retry); never raises. In the background mode,
        True means written ahead and queued."""
        event = dict(event)
        if not self.background:
            return self._send(event)
        self._ensure_worker()
        self._queue.put((self._write_ahead(event), event))
        return True

    def record(self, ref: RunRef, facts: RunFacts, route: str) -> bool:
        """Build the RunEvent of ``facts`` and record it (see :meth:`emit`)."""
        return self.emit(run_event(ref, facts, route))

    def _write_ahead(self, event: dict[str, Any]) -> Path | None:
        """A copy of ``event`` in the CMF spool folder until it is recorded, so a process killed
        before its recorder thread got to it loses nothing: every emitter replays the spool
        folder when it starts (``cmf_core.openlineage.emit``). Written like the emitter's own
        spool files (temp file + rename), but not fsync-ed: this is every event's path, and a
        file torn by a power loss is moved aside to ``rejected/`` by the replay."""
        from cmf_core.openlineage.emit import spool_target, write_spool_file

        try:
            return write_spool_file(Path(self.settings.spool_path), event,
                                    spool_target(self.settings), durable=False)
        except Exception as e:  # no spool folder: the event is still queued
            log.debug("cmf: could not write an event ahead to the spool: %s", e)
            return None

    def _ensure_worker(self) -> None:
        if self._pid != os.getpid():  # forked: the parent's thread and queue are not ours
            self._pid, self._queue, self._worker = os.getpid(), queue.Queue(), None
        if self._worker is not None and self._worker.is_alive():
            return
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="cmf-prefect-recorder",
                                                daemon=True)
                self._worker.start()
                _RECORDERS.add(self)

    def _run(self) -> None:
        from cmf_core.guard import report

        while True:
            ahead, event = self._queue.get()
            self._wait_for_quiet()
            try:
                self._send(event, ahead)  # recorded (ahead deleted), or ahead stays spooled
            except BaseException as e:  # our own worker thread: nothing escapes
                report("recording a Prefect event", e)
            finally:
                self._queue.task_done()

    def _wait_for_quiet(self) -> None:
        """Record while no run is starting or ending: a run's start and end are where Prefect's
        engine works and the recorder would compete with it for the interpreter (the store's
        transactions are Python code holding the GIL). Under constant activity one event is
        recorded per :data:`MAX_DEFER_S`; :meth:`flush` records the rest at full speed."""
        deadline = time.monotonic() + MAX_DEFER_S
        while not self._flushing:
            now = time.monotonic()
            quiet_for = now - self.last_activity
            if quiet_for >= QUIET_S or now >= deadline:
                return
            time.sleep(min(QUIET_S - quiet_for, deadline - now))

    def touch(self) -> None:
        """Note run activity now (the routes call this from their callbacks)."""
        self.last_activity = time.monotonic()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event is recorded (or spooled); False if ``timeout`` passed."""
        if not self.background or self._worker is None or self._pid != os.getpid():
            return True
        deadline = time.monotonic() + (self.settings.hook_timeout_s * 6 if timeout is None
                                       else timeout)
        self._flushing += 1
        try:
            while self._queue.unfinished_tasks:
                if time.monotonic() > deadline or not self._worker.is_alive():
                    self._skip_flush_until = time.monotonic() + FLUSH_BACKOFF_S
                    return False
                time.sleep(0.002)
            return True
        finally:
            self._flushing -= 1

    def flush_flow_end(self) -> bool:
        """:meth:`flush` within ``hook_timeout_s`` when a flow run ends, in the user's flow; no
        wait at all for :data:`FLUSH_BACKOFF_S` after one timed out (a circuit breaker)."""
        if time.monotonic() < self._skip_flush_until:
            return False
        return self.flush(timeout=self.settings.hook_timeout_s)

    def start_energy(self) -> EnergyMonitor | None:
        """A started energy monitor for this process, or None when energy is off."""
        if not self.settings.energy:
            return None
        from cmf_core.energy import EnergyMonitor

        return EnergyMonitor(self.settings).start()

    def stop_energy(self, monitor: EnergyMonitor | None, run_id: str) -> EnergyRecord | None:
        if monitor is None:
            return None
        return monitor.stop().to_record(run_id, self.settings)


_RECORDERS: weakref.WeakSet[Recorder] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """Record what is still queued before the interpreter exits (bounded per recorder; only
    ``hook_timeout_s`` when a flow end's wait just timed out: the sink is stuck, and what is
    queued is written ahead in the spool, replayed by the next emitter)."""
    for recorder in list(_RECORDERS):
        try:
            stuck = time.monotonic() < recorder._skip_flush_until
            timeout = recorder.settings.hook_timeout_s
            recorder.flush(timeout=timeout if stuck else max(30.0, timeout * 6))
        except Exception as e:  # never fail an exit
            log.debug("cmf: flushing Prefect events at exit failed: %s", e)

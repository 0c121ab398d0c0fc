"""The in-process route: record every flow and task run of this Python process, no code change.

Prefect 3 has no task-lifecycle plugin hook, but its engines open an OpenTelemetry span around
every flow run and task run (``prefect.telemetry.run_telemetry.RunTelemetry``, on by default,
``PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY``). The span starts in the run's own thread
with the run's context entered (``TaskRunContext`` holds the task, the task run with its
``task_inputs``, and the parameters) and ends when the run reaches its final state (after
retries, inside the run context, with the state and its result set). :class:`CmfSpanProcessor`
is an OpenTelemetry span processor that turns those two moments into START and
COMPLETE/FAIL/ABORT RunEvents and measures energy between them.

:func:`install` adds the processor to the process's SDK tracer provider (creating one when the
process has none) and is called by the ``prefect.plugins`` entry point (:mod:`cmf_prefect.plugin`)
when ``PREFECT_PLUGINS_ENABLED=true``, as Prefect is imported. ``CMF_DISABLED=true`` turns it
off. :func:`uninstall` stops recording (the processor stays registered and idle; OpenTelemetry
cannot remove one).

Cases the spans leave open are closed here: a sync task that times out (Prefect 3.7 ends no span
for its ``TimedOut``) is recorded failed when that state is added to its span (else at the next
task run start or end of its flow run, or the flow run's end); one that never runs because an
upstream failed (``NotReady``) is recorded skipped when its flow run ends. A flow run's START is
sent with its first task (the flow's name is not known when its span starts) or when it ends.
Every callback is guarded: a failure is logged once, counted, and never reaches the run.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmf_core.guard import report
from cmf_prefect.adapter import ROUTE_IN_PROCESS, Recorder, RunRef
from cmf_prefect.datasets import Dataset, value_datasets
from cmf_prefect.runs import (
    flow_end_facts,
    flow_run_ref,
    flow_start_facts,
    from_cache,
    state_status,
    task_end_facts,
    task_inputs,
    task_run_ref,
    task_start_facts,
)

if TYPE_CHECKING:
    from cmf_core.config import Settings
    from cmf_core.energy import EnergyMonitor

log = logging.getLogger("cmf.prefect")

RUN_TYPE = "prefect.run.type"
RUN_ID = "prefect.run.id"


@dataclass
class _Task:
    ref: RunRef
    task: Any
    task_run: Any
    parameters: Any
    started_at: float
    inputs: list[Dataset] = field(default_factory=list)
    monitor: EnergyMonitor | None = None


@dataclass
class _Flow:
    run_id: str
    started_at: float
    flow: Any = None
    flow_run: Any = None
    parameters: Any = None
    parent_run_id: str | None = None
    start_sent: bool = False
    open_tasks: set[str] = field(default_factory=set)


class InProcessRoute:
    """State of the in-process route: runs in flight, and whether to record them."""

    def __init__(self) -> None:
        self.recorder = Recorder(background=True)
        self.active = False
        self.record_all = True
        self.tracked: set[str] = set()  # flow runs recorded in opt-in mode (hooks.track)
        self.tasks: dict[str, _Task] = {}
        self.flows: dict[str, _Flow] = {}
        self.lock = threading.RLock()

    # configuration ---------------------------------------------------------------------------
    def configure(self, settings: Settings | None, record_all: bool) -> None:
        with self.lock:
            if settings is not None:
                self.recorder.flush()
                self.recorder = Recorder(settings, background=True)
            # an opt-in install (track) never narrows a route that records everything
            self.record_all = (self.active and self.record_all) or record_all
            self.active = True

    def track(self, flow_run_id: Any) -> None:
        with self.lock:
            self.tracked.add(str(flow_run_id))

    def _wanted(self, flow_run_id: str | None) -> bool:
        return self.active and (self.record_all or (flow_run_id in self.tracked))

    def _timeout(self) -> float:
        return self.recorder.settings.hook_timeout_s

    def _emit(self, ref: RunRef, facts: Any) -> None:
        self.recorder.record(ref, facts, ROUTE_IN_PROCESS)

    # flows -----------------------------------------------------------------------------------
    def flow_started(self, run_id: str, at: float) -> None:
        from prefect.context import FlowRunContext

        parent = FlowRunContext.get()
        with self.lock:
            flow = self.flows.setdefault(run_id, _Flow(run_id, at))
            if parent is not None and parent.flow_run is not None:
                flow.parent_run_id = str(parent.flow_run.id)
                if flow.parent_run_id in self.tracked:
                    self.tracked.add(run_id)

    def _flow_context(self, run_id: str, create_at: float | None = None) -> _Flow | None:
        """The flow run's record, filled from the current FlowRunContext when it is this run
        (created at ``create_at`` if the flow run started before the route was installed)."""
        from prefect.context import FlowRunContext

        with self.lock:
            flow = self.flows.get(run_id)
            if flow is None and create_at is not None:
                flow = self.flows[run_id] = _Flow(run_id, create_at)
        ctx = FlowRunContext.get()
        if flow is not None and ctx is not None and ctx.flow_run is not None \
                and str(ctx.flow_run.id) == run_id:
            flow.flow, flow.flow_run, flow.parameters = ctx.flow, ctx.flow_run, ctx.parameters
        return flow

    def _send_flow_start(self, flow: _Flow) -> None:
        if flow.start_sent or flow.flow is None or not self._wanted(flow.run_id):
            return
        flow.start_sent = True
        self._emit(flow_run_ref(flow.flow, flow.flow_run),
                   flow_start_facts(flow.flow_run, flow.parameters, flow.started_at))

    def flow_ended(self, run_id: str, at: float) -> None:
        flow = self._flow_context(run_id)
        if flow is None:
            return
        with self.lock:
            self.flows.pop(run_id, None)
            # timed out or never ran: no span end for them; a task run still pending or running
            # (submitted, never waited for: it runs on after its flow) ends its own span
            leftovers = [self.tasks.pop(t) for t in list(flow.open_tasks) if t in self.tasks
                         and state_status(self.tasks[t].task_run.state) is not None]
        for task in leftovers:
            self._finish_task(task, at, sweep=True)
        try:
            if flow.flow is None or not self._wanted(run_id):
                return
            self._send_flow_start(flow)
            self._emit(flow_run_ref(flow.flow, flow.flow_run),
                       flow_end_facts(flow.flow_run, flow.flow_run.state, flow.parameters, at))
        finally:
            with self.lock:
                self.tracked.discard(run_id)

    # tasks -----------------------------------------------------------------------------------
    def task_started(self, run_id: str, at: float) -> None:
        from prefect.context import TaskRunContext

        ctx = TaskRunContext.get()
        if ctx is None or str(ctx.task_run.id) != run_id:
            return
        task_run = ctx.task_run
        flow_run_id = str(task_run.flow_run_id) if task_run.flow_run_id else None
        flow = self._flow_context(flow_run_id, create_at=at) if flow_run_id else None
        if not self._wanted(flow_run_id):
            return
        flow_name = flow.flow.name if flow is not None and flow.flow is not None else None
        ref = task_run_ref(ctx.task, task_run, flow_name)
        record = _Task(ref, ctx.task, task_run, ctx.parameters, at,
                       inputs=task_inputs(task_run, ctx.parameters,
                                          self.recorder.digest_max_bytes))
        with self.lock:
            self.tasks[run_id] = record
            if flow is not None:
                flow.open_tasks.add(run_id)
        if flow is not None:
            self._send_flow_start(flow)
            self._close_timed_out(flow, at)
        record.monitor = self.recorder.start_energy()
        self._emit(ref, task_start_facts(ctx.task, task_run, ctx.parameters, at, record.inputs))

    def task_ended(self, run_id: str, at: float) -> None:
        from prefect.context import TaskRunContext

        with self.lock:
            record = self.tasks.pop(run_id, None)
            flow = self.flows.get(record.ref.flow_run_id or "") if record else None
            if flow is not None:
                flow.open_tasks.discard(run_id)
        if record is None:
            return
        if flow is not None:
            self._close_timed_out(flow, at)
        ctx = TaskRunContext.get()
        if ctx is not None and str(ctx.task_run.id) == run_id:
            record.parameters = ctx.parameters  # resolved by now (futures -> values)
            # paths that came in through futures, untouched since the task started, are inputs
            record.inputs += value_datasets(list((ctx.parameters or {}).values()),
                                            unchanged_since=record.started_at,
                                            max_bytes=self.recorder.digest_max_bytes)
        self._finish_task(record, at)

    def task_timed_out(self, run_id: str, at: float) -> None:
        """A task run entered ``TimedOut``: a sync one ends here (an async one ends its span)."""
        with self.lock:
            record = self.tasks.get(run_id)
        if record is not None and _timed_out(record):
            self.task_ended(run_id, at)

    def _close_timed_out(self, flow: _Flow, at: float) -> None:
        """Record now the sync task runs of ``flow`` that timed out (Prefect ends no span for
        them), so that their energy stops at the next task run's start or end, not at the flow
        run's end. Async ones end their span themselves."""
        with self.lock:
            done = [t for t in flow.open_tasks if t in self.tasks and _timed_out(self.tasks[t])]
            records = [self.tasks.pop(t) for t in done]
            flow.open_tasks.difference_update(done)
        for record in records:
            self._finish_task(record, at, sweep=True)

    def _finish_task(self, record: _Task, at: float, sweep: bool = False) -> None:
        state = record.task_run.state
        status = state_status(state)
        if sweep and status is None:
            status = "aborted"
        energy = self.recorder.stop_energy(record.monitor, record.ref.run_id)
        # a cache lookup, or a run that never ran (an upstream failed: its span covered only
        # the wait for its upstreams, which measured their energy): none of its own to record
        if from_cache(state) or status == "skipped":
            energy = None
        facts = task_end_facts(record.task, record.task_run, state, record.parameters, at,
                               inputs=record.inputs, status=status, assets=not sweep,
                               max_bytes=self.recorder.digest_max_bytes)
        facts.energy = energy
        self._emit(record.ref, facts)


ROUTE = InProcessRoute()


def _timed_out(record: _Task) -> bool:
    """A sync task run that ended in Prefect's ``TimedOut`` state (after its retries)."""
    return not getattr(record.task, "isasync", False) \
        and getattr(record.task_run.state, "name", None) == "TimedOut"


def _guarded(where: str, fn: Any, *args: Any) -> None:
    """Run a callback in the run's thread (it reads the run's context variables); a failure is
    reported and never reaches the run.

    The callbacks gather facts, start or stop the energy monitor and write the event ahead to
    the spool (a millisecond or two); recording it into the store happens in the recorder's
    thread. The one step whose time depends on the user's data, hashing a file, is time-bounded
    in :mod:`cmf_prefect.datasets`.
    """
    try:
        ROUTE.recorder.touch()
        fn(*args)
    except Exception as e:
        report(where, e)
    finally:
        ROUTE.recorder.touch()


def _flushed() -> bool:
    try:
        return ROUTE.recorder.flush_flow_end()
    except Exception as e:
        report("waiting for the events of a Prefect flow run", e)
        return True


def _outermost(run_id: str) -> bool:
    """False for a subflow run (its parent flow's end waits for its records)."""
    try:
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
        run = ctx.flow_run if ctx is not None else None
        return run is None or str(run.id) != run_id or run.parent_task_run_id is None
    except Exception:
        return True


def _watch_timeout(span: Any, run_id: str) -> None:
    """Record a sync task run when it times out, as it happens.

    Prefect ends no span for a sync task's ``TimedOut`` state (``timeout_seconds``, or any
    ``TimeoutError`` the task raised, e.g. a network call's), but adds the state to the span as
    an event, in the run's thread and context: the run ends there.
    """
    add_event = getattr(span, "add_event", None)
    if add_event is None:
        return

    def add_event_and_watch(name: str, *args: Any, **kwargs: Any) -> Any:
        added = add_event(name, *args, **kwargs)
        if name == "TimedOut":
            _guarded("recording a Prefect task run timeout", ROUTE.task_timed_out, run_id,
                     time.time())
        return added

    try:
        span.add_event = add_event_and_watch
    except Exception as e:  # a span that takes no attribute: closed later (_close_timed_out)
        report("watching a Prefect task run span", e)


def _run_span(span: Any, edge: str) -> tuple[str, str, float] | None:
    """(kind, run id, time of ``edge``: ``"start_time"`` or ``"end_time"``, in s) of a Prefect
    flow-run or task-run span while the route is on; None for any other span, and for one that
    cannot be read (reported)."""
    try:
        attributes = span.attributes or {}
        kind = attributes.get(RUN_TYPE)
        if kind is None or not ROUTE.active:
            return None
        return kind, str(attributes.get(RUN_ID)), (getattr(span, edge) or time.time_ns()) / 1e9
    except Exception as e:
        report("reading a Prefect run span", e)
        return None


class CmfSpanProcessor:
    """OpenTelemetry span processor that records Prefect's flow-run and task-run spans.

    Spans of anything else (HTTP clients, the user's own) are ignored at the cost of one dict
    lookup.
    """

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        run = _run_span(span, "start_time")
        if run is None:
            return
        kind, run_id, at = run
        if kind == "task":
            _guarded("recording a Prefect task run start", ROUTE.task_started, run_id, at)
            _watch_timeout(span, run_id)
        elif kind == "flow":
            _guarded("recording a Prefect flow run start", ROUTE.flow_started, run_id, at)

    def on_end(self, span: Any) -> None:
        run = _run_span(span, "end_time")
        if run is None:
            return
        kind, run_id, at = run
        if kind == "task":
            _guarded("recording a Prefect task run end", ROUTE.task_ended, run_id, at)
        elif kind == "flow":
            outermost = _outermost(run_id)
            _guarded("recording a Prefect flow run end", ROUTE.flow_ended, run_id, at)
            # an outermost flow run's records are in the store when it returns (bounded wait)
            if outermost and not _flushed():
                log.info("cmf: events of flow run %s are still being recorded in the "
                         "background (CMF_HOOK_TIMEOUT_S passed); no impact on the flow run",
                         run_id)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def _on_ending(self, span: Any) -> None:  # newer SDKs call this; nothing to do
        pass


_PROCESSOR: CmfSpanProcessor | None = None
# Re-entrant: importing Prefect inside install() can start the prefect.plugins entry point,
# which calls install() again in the same thread; that inner call returns at once.
_INSTALL_LOCK = threading.RLock()
_INSTALLING = False


def install(settings: Settings | None = None, *, record_all: bool = True) -> bool:
    """Record Prefect runs of this process; True when the route is active.

    ``record_all=False`` records only flow runs marked by :func:`track` (the opt-in decorator,
    :func:`cmf_prefect.hooks.track`) and their subflows. Idempotent; a later call may change
    the settings. Returns False (and logs why) when ``CMF_DISABLED`` is set or the process's
    OpenTelemetry tracer provider cannot take a span processor.
    """
    global _PROCESSOR, _INSTALLING
    from cmf_core.config import is_disabled

    if is_disabled():
        log.info("cmf: CMF_DISABLED is set; Prefect runs are not recorded")
        return False
    with _INSTALL_LOCK:
        if _INSTALLING:
            return True
        _INSTALLING = True
        try:
            if _PROCESSOR is None:
                provider = _sdk_provider()
                if provider is None:
                    return False
                processor = CmfSpanProcessor()
                provider.add_span_processor(processor)
                _PROCESSOR = processor
                _check_prefect_telemetry()
            ROUTE.configure(settings, record_all)
        finally:
            _INSTALLING = False
    return True


def uninstall() -> None:
    """Stop recording (runs in flight are dropped, queued events recorded); :func:`install`
    starts again."""
    with ROUTE.lock:
        ROUTE.active = False
        ROUTE.record_all = False
        ROUTE.tracked.clear()
        dropped = list(ROUTE.tasks.values())
        ROUTE.tasks.clear()
        ROUTE.flows.clear()
    for task in dropped:  # stop their samplers
        if task.monitor is not None:
            task.monitor.stop()
    ROUTE.recorder.flush()


def track(flow_run_id: Any) -> None:
    """Record flow run ``flow_run_id`` and its tasks even when not recording everything."""
    ROUTE.track(flow_run_id)


def _sdk_provider() -> Any:
    """The global SDK tracer provider, set to a new one when the process has none."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if hasattr(provider, "add_span_processor"):
        return provider
    if type(provider).__name__ != "ProxyTracerProvider":
        log.warning(
            "cmf: the OpenTelemetry tracer provider %s takes no span processor, so Prefect runs "
            "are not recorded in-process; use an SDK TracerProvider, the `cmf prefect watch` "
            "route or the cmf_prefect hooks", type(provider).__name__)
        return None
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    except ImportError:
        log.warning("cmf: the in-process Prefect route needs the OpenTelemetry SDK, which is "
                    "not installed; install cmf-foundation[prefect] (it brings "
                    "opentelemetry-sdk), or use `cmf prefect watch` or the cmf_prefect hooks")
        return None

    provider = TracerProvider(sampler=ALWAYS_ON)
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:  # someone else won the race
        provider = trace.get_tracer_provider()
        if not hasattr(provider, "add_span_processor"):
            return None
    return provider


def _check_prefect_telemetry() -> None:
    try:
        from prefect.settings import get_current_settings

        if not get_current_settings().cloud.enable_orchestration_telemetry:
            log.warning("cmf: PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY is false, so Prefect "
                        "opens no run spans and the in-process route records nothing; unset it")
    except Exception as e:  # settings unreadable mid-import: Prefect reports that itself
        log.debug("cmf: could not read Prefect's telemetry setting: %s", e)

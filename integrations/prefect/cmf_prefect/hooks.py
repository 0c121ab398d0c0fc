"""The explicit route: Prefect state hooks, and a decorator to opt in per flow.

Hooks, for a task or a flow (each records the run through :mod:`cmf_prefect.adapter`)::

    from cmf_prefect.hooks import on_completion, on_failure, on_running

    @task(on_running=[on_running], on_completion=[on_completion], on_failure=[on_failure])
    def train(data: str) -> str: ...

    @flow(on_running=[on_running], on_completion=[on_completion], on_failure=[on_failure],
          on_crashed=[on_failure], on_cancellation=[on_failure])
    def pipeline(): ...

A task's hooks measure its energy from ``on_running`` to its final hook. The decorator records
one flow and every task run inside it (and its subflows), with no hook on each task; it uses the
in-process machinery (:mod:`cmf_prefect.auto`) limited to the flow runs it marks::

    from cmf_prefect.hooks import track

    @track
    @flow
    def pipeline(): ...

``track`` on a task adds the three hooks to it. Hooks never raise into Prefect: each is guarded,
and events are built and recorded by a background thread (a flow's final hook waits for them, at
most ``CMF_HOOK_TIMEOUT_S``).
"""

from __future__ import annotations

import threading
import time
from typing import Any, TypeVar

from cmf_core.guard import report
from cmf_prefect.adapter import ROUTE_HOOKS, Recorder
from cmf_prefect.datasets import Dataset
from cmf_prefect.runs import (
    flow_end_facts,
    flow_run_ref,
    flow_start_facts,
    state_time,
    task_end_facts,
    task_inputs,
    task_run_ref,
    task_start_facts,
)

T = TypeVar("T")

_RECORDER = Recorder(background=True)
_LOCK = threading.Lock()
# task run id -> (energy monitor, inputs, the task, its task run, its RunRef)
_RUNNING: dict[str, tuple[Any, list[Dataset], Any, Any, Any]] = {}
_NO_HOOK_STATES = ("CRASHED", "CANCELLED")
"""Final states of a task run for which Prefect calls none of its hooks (``handle_crash``: a
``KeyboardInterrupt``, ``SystemExit`` or other ``BaseException`` in the task)."""


def set_recorder(recorder: Recorder) -> None:
    """Use ``recorder`` (its settings) for the hooks of this process."""
    global _RECORDER
    _RECORDER.flush()
    _RECORDER = recorder


def _is_flow(obj: Any) -> bool:
    from prefect.flows import Flow

    return isinstance(obj, Flow)


def _flow_name() -> str | None:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return ctx.flow.name if ctx is not None and ctx.flow is not None else None


def _parameters(run: Any, flow: bool) -> Any:
    from prefect.context import FlowRunContext, TaskRunContext

    if flow:
        ctx: Any = FlowRunContext.get()
        if ctx is not None and ctx.flow_run is not None and ctx.flow_run.id == run.id:
            return ctx.parameters
        return getattr(run, "parameters", None)
    ctx = TaskRunContext.get()
    if ctx is not None and ctx.task_run.id == run.id:
        return ctx.parameters
    return None


def _guarded(where: str, fn: Any, *args: Any) -> None:
    """Run a hook body in Prefect's thread (it reads the run's context); a failure is reported
    and never reaches the run. Events are written ahead to the spool here and recorded into the
    store by the recorder's thread; hashing a file is time-bounded in
    :mod:`cmf_prefect.datasets`."""
    try:
        _RECORDER.touch()
        fn(*args)
    except Exception as e:
        report(where, e)
    finally:
        _RECORDER.touch()


def _end_unhooked(at: float, current: Any = None) -> None:
    """Record the end of the task runs started here that reached a final state no hook is
    called for (crashed: a notebook's stop button, ``sys.exit()``; cancelled), and stop their
    energy monitors: without this each one kept its entry, its sampler thread and a
    ``running`` execution for the life of the process. Runs at every hook of this route."""
    with _LOCK:
        ended = [(key, _RUNNING.pop(key)) for key, entry in list(_RUNNING.items())
                 if key != current and getattr(getattr(getattr(entry[3], "state", None),
                                                       "type", None), "value", None)
                 in _NO_HOOK_STATES]
    for key, (monitor, inputs, obj, run, ref) in ended:
        state = run.state
        facts = task_end_facts(obj, run, state, None, state_time(state, at), inputs=inputs,
                               max_bytes=_RECORDER.digest_max_bytes)
        facts.energy = _RECORDER.stop_energy(monitor, key)
        _RECORDER.record(ref, facts, ROUTE_HOOKS)


def _started(obj: Any, run: Any, state: Any) -> None:
    at = state_time(state, time.time())
    _end_unhooked(at, str(run.id))
    if _is_flow(obj):
        _RECORDER.record(flow_run_ref(obj, run), flow_start_facts(run, _parameters(run, True), at),
                         ROUTE_HOOKS)
        return
    key = str(run.id)
    params = _parameters(run, False)
    ref = task_run_ref(obj, run, _flow_name())
    with _LOCK:
        known = _RUNNING.get(key)
    if known is None:
        inputs = task_inputs(run, params, _RECORDER.digest_max_bytes)
        with _LOCK:
            _RUNNING[key] = known = (_RECORDER.start_energy(), inputs, obj, run, ref)
        facts = task_start_facts(obj, run, params, at, inputs)
    else:  # a retry: the same execution, still running
        facts = task_start_facts(obj, run, params, at, known[1])
        facts.event_type = "RUNNING"
    _RECORDER.record(ref, facts, ROUTE_HOOKS)


def _ended(obj: Any, run: Any, state: Any) -> None:
    at = state_time(state, time.time())
    _end_unhooked(at, str(run.id))
    if _is_flow(obj):
        _RECORDER.record(flow_run_ref(obj, run),
                         flow_end_facts(run, state, _parameters(run, True), at), ROUTE_HOOKS)
        return
    with _LOCK:
        monitor, inputs, *_ = _RUNNING.pop(str(run.id), (None, None))
    facts = task_end_facts(obj, run, state, _parameters(run, False), at, inputs=inputs,
                           max_bytes=_RECORDER.digest_max_bytes)
    facts.energy = _RECORDER.stop_energy(monitor, str(run.id))
    _RECORDER.record(task_run_ref(obj, run, _flow_name()), facts, ROUTE_HOOKS)


def on_running(obj: Any, run: Any, state: Any) -> None:
    """Prefect ``on_running`` hook for a task or a flow: records the run's start."""
    _guarded("the cmf on_running hook", _started, obj, run, state)


def _flush_after_flow(obj: Any, run: Any) -> None:
    """An outermost flow run's records are in the store when its final hook returns (bounded
    wait; none for a subflow run, nor after a recent timeout)."""
    if _is_flow(obj) and getattr(run, "parent_task_run_id", None) is None:
        _guarded("waiting for the cmf events of a flow run", _RECORDER.flush_flow_end)


def on_completion(obj: Any, run: Any, state: Any) -> None:
    """Prefect ``on_completion`` hook for a task or a flow: records the run's outcome."""
    _guarded("the cmf on_completion hook", _ended, obj, run, state)
    _flush_after_flow(obj, run)


def on_failure(obj: Any, run: Any, state: Any) -> None:
    """Prefect ``on_failure`` (also ``on_crashed``, ``on_cancellation``) hook: records the
    failure and its message."""
    _guarded("the cmf on_failure hook", _ended, obj, run, state)
    _flush_after_flow(obj, run)


def _mark_tracked(flow: Any, flow_run: Any, state: Any) -> None:
    from cmf_prefect.auto import track as track_run

    track_run(flow_run.id)


def track(obj: T) -> T:
    """Opt a flow (with all its task runs) or a task into recording; put it above ``@flow``.

    Returns a copy made with ``with_options``; the original is unchanged.
    """
    from prefect.flows import Flow
    from prefect.tasks import Task

    from cmf_core.errors import InvalidInputError

    if isinstance(obj, Flow):
        from cmf_prefect.auto import install

        if install(record_all=False):
            return obj.with_options(  # type: ignore[return-value]
                on_running=[*obj.on_running_hooks, _mark_tracked])
        # no OpenTelemetry SDK provider: record the flow run itself with hooks
        return obj.with_options(  # type: ignore[return-value]
            on_running=[*obj.on_running_hooks, on_running],
            on_completion=[*obj.on_completion_hooks, on_completion],
            on_failure=[*obj.on_failure_hooks, on_failure],
            on_crashed=[*obj.on_crashed_hooks, on_failure],
            on_cancellation=[*obj.on_cancellation_hooks, on_failure])
    if isinstance(obj, Task):
        return obj.with_options(  # type: ignore[return-value]
            on_running=[*obj.on_running_hooks, on_running],
            on_completion=[*obj.on_completion_hooks, on_completion],
            on_failure=[*obj.on_failure_hooks, on_failure])
    raise InvalidInputError(
        f"track() takes a Prefect flow or task, got {type(obj).__name__}; put @track above "
        "@flow or @task")

"""Facts about live Prefect objects (Task, TaskRun, Flow, FlowRun, State) for the adapter.

Used in-process only (the :mod:`~cmf_prefect.auto` route and the :mod:`~cmf_prefect.hooks`),
where the run's objects, parameter values and return value are at hand. The watcher builds the
same facts from Prefect events in :mod:`~cmf_prefect.watcher`.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from cmf_core.guard import exception_text
from cmf_core.jsonutil import valid_text
from cmf_prefect.adapter import RunFacts, RunRef, flow_ref, status_of, task_ref
from cmf_prefect.datasets import (
    Dataset,
    asset_dataset,
    result_dataset,
    upstream_run_ids,
    value_datasets,
)
from cmf_prefect.values import metrics_of, non_finite_metrics, params_of, resolved_params

_NOT_SET = object()
MAX_TRACE = 8000


def _ts(value: Any) -> float | None:
    ts = getattr(value, "timestamp", None)
    return ts() if callable(ts) else None


def state_status(state: Any) -> str | None:
    """CMF status of a Prefect state: terminal ones, ``skipped`` for NotReady, else None."""
    if state is None:
        return None
    status = status_of(getattr(getattr(state, "type", None), "value", None))
    if status is None and getattr(state, "name", None) == "NotReady":
        return "skipped"
    return status


def from_cache(state: Any) -> bool:
    """Whether a task run's final state is Prefect's ``Cached``: a result reused, not computed."""
    return getattr(state, "name", None) == "Cached" and state_status(state) == "completed"


def state_value(state: Any) -> Any:
    """The value a final state holds in memory (the return value or the exception)."""
    from prefect.results import ResultRecord

    data = getattr(state, "data", None)
    if isinstance(data, ResultRecord):
        return data.result
    if data is None or type(data).__name__ == "ResultRecordMetadata":
        return _NOT_SET
    return data


def state_error(state: Any) -> tuple[str | None, str | None]:
    """(message, stack trace) of a failed state; the trace only when the exception is at hand."""
    message = getattr(state, "message", None) or None
    value = state_value(state)
    trace = None
    if isinstance(value, BaseException):
        trace = "".join(traceback.format_exception(value))[-MAX_TRACE:]
        message = message or exception_text(value)  # its __str__ may raise
    # lone surrogates (an undecodable file name in the message) as escapes: no store takes them
    return (valid_text(message) if message else None), (valid_text(trace) if trace else None)


def _tags(tags: Iterable[Any] | None) -> list[str]:
    return sorted(str(t) for t in (tags or ()))


# tasks ----------------------------------------------------------------------------------------
def task_run_ref(task: Any, task_run: Any, flow_name: str | None) -> RunRef:
    return task_ref(task_run.id, task.name, flow_name, task_run.flow_run_id)


def task_properties(task_run: Any, state: Any = None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "prefect.task_run_name": task_run.name,
        "prefect.task_key": task_run.task_key,
        "prefect.tags": _tags(task_run.tags),
    }
    if task_run.flow_run_id:
        props["prefect.flow_run_id"] = str(task_run.flow_run_id)
    if state is not None:
        props["prefect.state"] = state.name
        props["prefect.run_count"] = task_run.run_count
    return props


def task_assets(task: Any, task_run: Any) -> tuple[list[Dataset], list[Dataset]]:
    """(upstream, materialized) asset datasets of a task run (``@materialize``, asset_deps)."""
    from prefect.context import AssetContext, FlowRunContext

    ctx = AssetContext.get()
    if ctx is not None and ctx.task_run_id == task_run.id:
        upstream = ctx.upstream_assets | ctx.direct_asset_dependencies
        downstream = ctx.downstream_assets
    else:
        upstream = set(getattr(task, "asset_deps", None) or ())
        downstream = set(getattr(task, "assets", None) or ())
        flow_ctx = FlowRunContext.get()
        if flow_ctx is not None:
            for run_id in upstream_run_ids(task_run.task_inputs):
                for key, assets in flow_ctx.task_run_assets.items():
                    if str(key) == run_id:
                        upstream |= set(assets)
    return ([asset_dataset(a.key) for a in upstream],
            [asset_dataset(a.key) for a in downstream])


def task_inputs(task_run: Any, parameters: Mapping[str, Any] | None,
                max_bytes: float | None = None) -> list[Dataset]:
    """Upstream results plus the local files and folders named by parameter values (read
    before the task runs: a path the task creates is an output, not an input); ``max_bytes``
    is the route's ``digest_max_mb`` in bytes (see :func:`value_datasets`)."""
    inputs = [result_dataset(u) for u in upstream_run_ids(task_run.task_inputs)]
    inputs += value_datasets(list((parameters or {}).values()), max_bytes=max_bytes)
    return inputs


def task_start_facts(task: Any, task_run: Any, parameters: Mapping[str, Any] | None,
                     at: float, inputs: list[Dataset] | None = None,
                     max_bytes: float | None = None) -> RunFacts:
    """Facts of a task run that starts: its parameters still futures or states (upstream
    results not in yet) are left out; the end event records them resolved."""
    return RunFacts(
        status="running", at=at, params=resolved_params(parameters),
        properties=task_properties(task_run),
        inputs=inputs if inputs is not None else task_inputs(task_run, parameters, max_bytes),
    )


def task_end_facts(task: Any, task_run: Any, state: Any, parameters: Mapping[str, Any] | None,
                   at: float, *, inputs: list[Dataset] | None = None, status: str | None = None,
                   assets: bool = True, max_bytes: float | None = None) -> RunFacts:
    """Facts of a task run that ended in ``state`` (status ``aborted`` if it is not final).

    ``inputs`` are those found when the run started; without them only the upstream results
    are inputs (a local path named by a parameter may be one the task wrote). ``max_bytes``
    is the route's ``digest_max_mb`` in bytes (see :func:`value_datasets`).
    """
    status = status or state_status(state) or "aborted"
    inputs = list(inputs) if inputs is not None else [
        result_dataset(u) for u in upstream_run_ids(task_run.task_inputs)]
    outputs: list[Dataset] = []
    metrics: dict[str, float] = {}
    properties = task_properties(task_run, state)
    error = trace = None
    if assets:
        upstream, downstream = task_assets(task, task_run)
        inputs += upstream
        outputs += downstream
    if status == "completed":
        outputs.append(result_dataset(task_run.id))
        value = state_value(state)
        if value is not _NOT_SET:
            outputs += value_datasets(value, max_bytes=max_bytes)
            metrics = metrics_of(value)
            non_finite = non_finite_metrics(value)
            if non_finite:  # a diverged loss: noted as the core notes it, the others kept
                from cmf_core.logger import NON_FINITE_PROPERTY

                properties[NON_FINITE_PROPERTY] = non_finite
    else:
        error, trace = state_error(state)
        if status == "failed":  # its result is the exception, which allow_failure hands on
            outputs.append(result_dataset(task_run.id))
    return RunFacts(
        status=status, at=at, params=params_of(parameters),
        properties=properties, inputs=inputs, outputs=outputs,
        error=error or (f"task run ended in state {getattr(state, 'name', None)}"
                        if status != "completed" else None),
        stack_trace=trace, metrics=metrics,
    )


# flows ----------------------------------------------------------------------------------------
def flow_run_ref(flow: Any, flow_run: Any) -> RunRef:
    return flow_ref(flow_run.id, flow.name)


def flow_properties(flow_run: Any, state: Any = None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "prefect.flow_run_name": flow_run.name,
        "prefect.tags": _tags(flow_run.tags),
    }
    if getattr(flow_run, "deployment_id", None):
        props["prefect.deployment_id"] = str(flow_run.deployment_id)
    if getattr(flow_run, "parent_task_run_id", None):
        props["prefect.parent_task_run_id"] = str(flow_run.parent_task_run_id)
    if state is not None:
        props["prefect.state"] = state.name
    return props


def flow_start_facts(flow_run: Any, parameters: Mapping[str, Any] | None, at: float
                     ) -> RunFacts:
    return RunFacts(status="running", at=at, params=params_of(parameters),
                    properties=flow_properties(flow_run))


def flow_end_facts(flow_run: Any, state: Any, parameters: Mapping[str, Any] | None, at: float,
                   status: str | None = None) -> RunFacts:
    status = status or state_status(state) or "aborted"
    error = trace = None
    if status != "completed":
        error, trace = state_error(state)
    return RunFacts(status=status, at=at, params=params_of(parameters),
                    properties=flow_properties(flow_run, state), error=error,
                    stack_trace=trace)


def state_time(state: Any, default: float) -> float:
    """Unix time of a Prefect state, else ``default``."""
    ts = _ts(getattr(state, "timestamp", None))
    return ts if ts is not None else default

"""Explicit logging inside Airflow tasks, where automatic tracking cannot guess.

    from cmf_airflow.decorators import cmf_task, log_metrics, log_model, log_task

    @cmf_task(outlets=[MODEL])
    def train(path: str, C: float = 1.0) -> dict:
        ...
        log_model("/data/churn/model.pkl", framework="sklearn")
        return {"accuracy": acc, "f1": f1}   # numbers in a returned dict become metrics

The helpers attach what they are given to the task try the cmf listener is recording in this
process; it travels on that try's terminal event: metrics in ``cmf_metrics``, models and
artifacts as outputs (type ``Model``, ``Dataset``, ...) with their content digest, parameters in
``cmf_params``, properties on the execution. They never raise into the task: outside a recorded
task (tracking disabled, or not inside an Airflow task) they log one warning and return ``False``.

``log_task(description)`` sets the execution's ``cmf.task`` property (a task description from
:mod:`cmf_core.recommend`): together with a ``model`` parameter and a ``score`` metric, it makes
the run part of the recommender's knowledge base, so the next recommend-seed step learns from it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from cmf_airflow.datasets import ref_from_uri
from cmf_core.guard import never_raise, report

log = logging.getLogger("cmf")
_warned: set[str] = set()


def _current_run() -> Any:
    """The TaskRun the listener is recording for the task running here, else ``None``."""
    from airflow.sdk import get_current_context

    from cmf_airflow.listener import get_listener

    try:
        ti = get_current_context()["ti"]
    except Exception:
        ti = None
    run = get_listener().adapter.current(ti) if ti is not None else None
    if run is None:
        why = "not inside an Airflow task" if ti is None else "cmf tracking is off for this task"
        if why not in _warned:
            _warned.add(why)
            log.warning("cmf: nothing logged: %s (no impact on the task)", why)
    return run


@never_raise("logging a metric", default=False)
def log_metric(name: str, value: float, step: int | None = None) -> bool:
    """Record one metric (``step`` for a stepped metric such as a loss per epoch)."""
    run = _current_run()
    if run is None:
        return False
    run.log_metric(name, float(value), None if step is None else int(step))
    return True


@never_raise("logging metrics", default=False)
def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> bool:
    """Record several metrics at once; values that are not finite numbers are skipped."""
    run = _current_run()
    if run is None:
        return False
    for name, value in metrics.items():
        if _is_number(value):
            try:  # one bad name is reported; the other metrics are still recorded
                run.log_metric(str(name), float(value), None if step is None else int(step))
            except Exception as e:
                report(f"logging metric {str(name)!r}", e)
    return True


@never_raise("logging an artifact", default=False)
def log_artifact(uri: str | os.PathLike[str], artifact_type: str = "Dataset",
                 **properties: Any) -> bool:
    """Record ``uri`` (a local path or a URI of any scheme) as an output of the task."""
    run = _current_run()
    if run is None:
        return False
    run.log_artifact(ref_from_uri(os.fspath(uri), artifact_type=artifact_type,
                                  properties=dict(properties)))
    return True


def log_model(uri: str | os.PathLike[str], **properties: Any) -> bool:
    """Record a model file (or folder, or remote URI) as an output of type ``Model``."""
    return log_artifact(uri, "Model", **properties)


@never_raise("logging parameters", default=False)
def log_params(params: Mapping[str, Any]) -> bool:
    """Record parameters (hyperparameters) of the task's execution."""
    run = _current_run()
    if run is None:
        return False
    run.log_params(dict(params))
    return True


@never_raise("logging properties", default=False)
def log_properties(properties: Mapping[str, Any]) -> bool:
    """Record the user's own properties (custom properties) of the task's execution."""
    run = _current_run()
    if run is None:
        return False
    run.set_properties(dict(properties))
    return True


@never_raise("logging the task description", default=False)
def log_task(description: Any) -> bool:
    """Set the ``cmf.task`` property (a ``TaskDescription`` or its dict) for the recommender."""
    from cmf_core.recommend.knowledge import task_properties

    run = _current_run()
    if run is None:
        return False
    props = task_properties(description)
    with run.lock:
        run.properties.update(props)
    return True


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def cmf_task(python_callable: Callable[..., Any] | None = None, *,
             metrics_from_return: bool = True, **task_kwargs: Any) -> Any:
    """``@task`` (``airflow.sdk``) that also records the numbers of a returned dict as metrics.

    ``@cmf_task`` or ``@cmf_task(outlets=[...], retries=2, ...)``; every keyword but
    ``metrics_from_return`` goes to ``@task``. The function, its arguments and its return value
    (still pushed to XCom) are unchanged.
    """
    from airflow.sdk import task

    def decorate(fn: Callable[..., Any]) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            if metrics_from_return and isinstance(result, Mapping):
                numbers = {k: v for k, v in result.items() if _is_number(v)}
                if numbers:
                    log_metrics(numbers)
            return result

        return task(**task_kwargs)(wrapper)

    return decorate(python_callable) if python_callable is not None else decorate

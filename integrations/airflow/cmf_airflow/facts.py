"""What a task try is, read from Airflow: its facts, parameters and error."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from cmf_airflow.values import MAX_ITEMS, bind_callable_args, jsonable, redact
from cmf_core.guard import exception_text
from cmf_core.jsonutil import valid_text

PRODUCER = "https://github.com/cmf-foundation/cmf-foundation/tree/main/integrations/airflow"
"""``_producer`` of the events and facets the integration builds."""
CALLABLE_FIELDS = frozenset({"op_args", "op_kwargs", "templates_dict"})
STACK_MAX = 8000


def template_context(ti: Any) -> Any:
    """The task's template context: the one the task runner built and cached for this try
    (``get_template_context()`` would validate the params again, ~1.5 ms), else a fresh one."""
    cached = getattr(ti, "_cached_template_context", None)
    return cached if isinstance(cached, dict) else ti.get_template_context()


def airflow_properties(ti: Any, task: Any) -> dict[str, Any]:
    """Facts about the Airflow task try, kept as execution properties."""
    cls = type(task)
    props: dict[str, Any] = {
        "dag_id": ti.dag_id,
        "task_id": ti.task_id,
        "run_id": str(ti.run_id),
        "try_number": int(ti.try_number or 0),
        "map_index": int(ti.map_index if ti.map_index is not None else -1),
        "operator": f"{cls.__module__}.{cls.__qualname__}",
        "hostname": getattr(ti, "hostname", None) or os.uname().nodename,
        "pid": os.getpid(),
    }
    owner = getattr(task, "owner", None)
    if owner:
        props["owner"] = str(owner)
    props.update(task_role(task))
    return {"airflow": props}


def task_role(task: Any) -> dict[str, Any]:
    """``{"role": "setup"}`` for a setup task, ``{"role": "teardown", "on_failure_fail_dagrun":
    bool}`` for a teardown (``@setup``/``@teardown``, ``.as_setup()``/``.as_teardown()``), whose
    failure fails its DAG run only with ``on_failure_fail_dagrun=True``; nothing for any other
    task."""
    if getattr(task, "is_setup", False) is True:
        return {"role": "setup"}
    if getattr(task, "is_teardown", False) is True:
        return {"role": "teardown",
                "on_failure_fail_dagrun": getattr(task, "on_failure_fail_dagrun", False) is True}
    return {}


def run_url(ti: Any, base_url: str | None) -> dict[str, Any]:
    """``{"cmf.run_url": ...}``: the try's page in Airflow's UI, the route Airflow 3's own
    ``TaskInstance.log_url`` builds (``<base_url>/dags/<dag>/runs/<run>/tasks/<task>``, then
    ``/mapped/<map_index>`` for a mapped task and ``?try_number=<n>``). Nothing without
    ``[api] base_url``: Airflow would assume localhost, which is no link to give a reader."""
    if not base_url:
        return {}
    from cmf_core.model import RUN_URL_PROPERTY

    def part(value: Any) -> str:
        return quote(str(value), safe="")

    url = (f"{base_url.rstrip('/')}/dags/{part(ti.dag_id)}/runs/{part(ti.run_id)}"
           f"/tasks/{part(ti.task_id)}")
    if ti.map_index is not None and int(ti.map_index) >= 0:
        url += f"/mapped/{int(ti.map_index)}"
    if ti.try_number:
        url += "?" + urlencode({"try_number": int(ti.try_number)})
    return {RUN_URL_PROPERTY: url}


def dag_params(context: Any) -> dict[str, Any]:
    """The DAG/task ``params`` the try runs with."""
    params = context.get("params") if context is not None else None
    if not params:
        return {}
    out: dict[str, Any] = {}
    for name in list(params.keys()):
        try:
            value = params[name]
        except Exception:
            continue
        out[str(name)] = jsonable(redact(value, str(name)))
    return out


def task_params(task: Any, skip: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """Rendered template fields; ``op_args``/``op_kwargs`` by the callable's argument names.
    The values of a mapped task's results that a task takes as one argument
    (``total(shard.expand(...))``: a lazy sequence Airflow pulls item by item) are recorded
    as the list of those values (the first :data:`MAX_ITEMS`, as any list). Names in ``skip``
    (already recorded) are left out."""
    out: dict[str, Any] = {}
    fields = tuple(getattr(task, "template_fields", ()) or ())
    if "op_args" in fields or "op_kwargs" in fields:
        fn: Callable[..., Any] | None = getattr(task, "python_callable", None)
        args = getattr(task, "op_args", None) or ()
        kwargs = getattr(task, "op_kwargs", None) or {}
        if isinstance(args, (list, tuple)) and isinstance(kwargs, dict):
            context_keys = _context_keys()
            for name, value in bind_callable_args(fn, args, kwargs).items():
                if name not in context_keys:  # ti, params, dag_run... given by Airflow
                    out[name] = value
        templates = getattr(task, "templates_dict", None)
        if isinstance(templates, dict):
            out.update(templates)
    for name in fields:
        if name in CALLABLE_FIELDS:
            continue
        value = getattr(task, name, None)
        if _empty(value):
            continue
        out[name] = value
    return {k: lazy_values(v, k) if _lazy(v) else jsonable(redact(v, k))
            for k, v in out.items() if k not in skip and not _unrendered(v)}


def _lazy(value: Any) -> bool:
    return type(value).__name__ == "LazyXComSequence"


def lazy_values(value: Any, name: str) -> Any:
    """The values of a ``LazyXComSequence`` (the results of a mapped task, as a downstream task
    gets them) as a bounded list: its first :data:`MAX_ITEMS` values, then ``"... N more"``,
    read with two requests (its length and one slice); its type tag if they cannot be read."""
    try:
        total = len(value)
        head = list(value[:MAX_ITEMS])
    except Exception:
        return jsonable(value)
    items = jsonable(redact(head, name))
    if not isinstance(items, list):
        return items
    if total > MAX_ITEMS:
        items.append(f"... {total - MAX_ITEMS} more")
    return items


def _empty(value: Any) -> bool:
    """None, "", {} or []; an array (whose ``==`` is element-wise and has no truth) is not."""
    try:
        return bool(value is None or value == "" or value == {} or value == [])
    except Exception:
        return False


def _context_keys() -> frozenset[str]:
    try:
        from airflow.sdk.definitions.context import KNOWN_CONTEXT_KEYS
    except ImportError:  # pragma: no cover - older task SDKs
        return frozenset({"ti", "task_instance", "params", "dag_run", "dag", "task"})
    return frozenset(KNOWN_CONTEXT_KEYS)


def _unrendered(value: Any) -> bool:
    """XComArgs and other lazy values that were not resolved (the task failed before), and
    Airflow's "not set" sentinels (``@task.bash`` sets ``bash_command`` during ``execute``)."""
    return type(value).__name__ in {"PlainXComArg", "MapXComArg", "ZipXComArg", "XComArg",
                                    "ConcatXComArg", "ArgNotSet", "SetDuringExecution"}


def error_text(error: BaseException | str) -> tuple[str, str | None]:
    """``("Type: message", traceback)`` of a task's error."""
    if isinstance(error, BaseException):
        message = valid_text(exception_text(error))  # its __str__ may raise
        stack = valid_text("".join(traceback.format_exception(error)))
        return message[:STACK_MAX], stack[-STACK_MAX:] or None
    return valid_text(str(error))[:STACK_MAX], None

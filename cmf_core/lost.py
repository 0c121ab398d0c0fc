"""Lost executions: "running" in the store, but their process has ended without saying so.

A task killed outright (``SIGKILL``, the out-of-memory killer, a node going down) never sends
its end, so its execution would stay "running" forever. :func:`find_lost` judges the running
executions recorded on this host (see :mod:`cmf_core.process`): one whose process is gone is
*lost*; one whose process still runs is left alone, and so is one recorded on another host or
without process facts (``unknown``), or one whose process the orchestrator released while the
run goes on (``cmf.process_released``: deferred, waiting for input; ``unknown`` too), or one
with an event still waiting in the spool folder (its real end may be among them: ``cmf spool
retry`` records them). :func:`mark_lost` records
each lost execution's end as an OpenLineage FAIL event through ingest, like any other end: the
raw event, the journal, federation and the lineage API all see it. A second pass marks nothing.
:func:`lost_among` judges the same way the executions a listing shows (``cmf executions``,
the server's ``lost`` field), without marking them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmf_core.model import Execution, ExecutionStatus
from cmf_core.process import ProcessInfo, ProcessState, is_released, process_state

if TYPE_CHECKING:
    from cmf_core.store.base import Store

PAGE = 1000
"""Running executions read per query."""


@dataclass(frozen=True, slots=True)
class LostExecution:
    """A running execution whose process is gone."""

    execution: Execution
    process: ProcessInfo

    @property
    def error(self) -> str:
        """The error its FAIL records."""
        return (f"process {self.process.pid} on host {self.process.host} ended without "
                "reporting an end (killed, e.g. out of memory?)")


@dataclass(frozen=True, slots=True)
class RunningCheck:
    """The running executions of a store, as judged from this host."""

    lost: tuple[LostExecution, ...] = ()
    alive: int = 0  # their process still runs
    unknown: int = 0  # another host or pid namespace, no process facts, or released
    waiting: int = 0  # an event of theirs waits in the spool folder


def spooled_run_ids(spool_dir: Path) -> set[str]:
    """Run ids of the events waiting in ``spool_dir`` (not those set aside in ``rejected/``)."""
    ids: set[str] = set()
    if not spool_dir.is_dir():
        return ids
    for path in spool_dir.glob("*.json"):
        try:
            run = json.loads(path.read_bytes()).get("run")
            ids.add(str(run["runId"]).lower())
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            continue  # replayed meanwhile, torn, or not a run event
    return ids


def _running(store: Store, pipeline: str | None) -> Iterator[Execution]:
    from cmf_core.store import ExecutionFilter

    where = ExecutionFilter(pipeline=pipeline, status=ExecutionStatus.RUNNING.value)
    page = store.list_executions(where, limit=PAGE)
    offset = 0
    while page:
        yield from page
        offset += len(page)
        page = store.list_executions(where, limit=PAGE, offset=offset) if len(page) == PAGE \
            else []


def judge(execution: Execution) -> tuple[ProcessState, ProcessInfo | None]:
    """The state of ``execution``'s process, seen from here: ``unknown`` if not running, or if
    the orchestrator released its process while the run goes on (it waits without one)."""
    info = ProcessInfo.from_properties(execution.properties)
    if execution.status is not ExecutionStatus.RUNNING or is_released(execution.properties):
        return ProcessState.UNKNOWN, info
    return process_state(info), info


def lost_among(executions: Iterable[Execution],
               spool_dir: Path | Callable[[], Path] | None = None) -> dict[str, ProcessInfo]:
    """The lost executions among ``executions`` (``cmf executions`` and the server's listings
    show them): running, recorded on this host, their process gone, and no event of theirs
    waiting in ``spool_dir`` (or the folder it gives, asked and read only when one is found);
    by id, with their process.

    Never raises: an execution that cannot be judged, or a spool folder that cannot be found
    or read, makes nothing lost (an execution is never guessed lost)."""
    found: dict[str, ProcessInfo] = {}
    for execution in executions:
        if execution.status is not ExecutionStatus.RUNNING:
            continue
        try:
            state, info = judge(execution)
        except Exception:  # judge does not raise; a listing must not fail if it ever does
            continue
        if state is ProcessState.GONE and info is not None:
            found[execution.id] = info
    if found and spool_dir is not None:
        try:
            waiting = spooled_run_ids(spool_dir() if callable(spool_dir) else spool_dir)
        except Exception:  # e.g. no home, or a folder above it unreadable: which wait is unknown
            return {}
        found = {k: v for k, v in found.items() if k not in waiting}
    return found


def find_lost(store: Store, *, pipeline: str | None = None,
              waiting: Iterable[str] = ()) -> RunningCheck:
    """Judge every running execution of ``store`` (of ``pipeline`` only, if given); those
    whose id is in ``waiting`` (see :func:`spooled_run_ids`) are not judged."""
    skip = {w.lower() for w in waiting}
    lost: list[LostExecution] = []
    counts = {ProcessState.ALIVE: 0, ProcessState.UNKNOWN: 0, "waiting": 0}
    seen: set[str] = set()
    for execution in _running(store, pipeline):
        if execution.id in seen:  # the pages moved under a concurrent write
            continue
        seen.add(execution.id)
        if execution.id in skip:
            counts["waiting"] += 1
            continue
        state, info = judge(execution)
        if state is ProcessState.GONE and info is not None:
            lost.append(LostExecution(execution, info))
        else:
            counts[state] += 1
    return RunningCheck(tuple(lost), counts[ProcessState.ALIVE], counts[ProcessState.UNKNOWN],
                        counts["waiting"])


def fail_event(lost: LostExecution, at: float) -> dict[str, Any]:
    """The OpenLineage FAIL event that ends ``lost`` at ``at`` with its error."""
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run

    from cmf_core.openlineage.convert import (
        DEFAULT_NAMESPACE,
        PROGRAMMING_LANGUAGE,
        event_to_dict,
        job_name,
    )
    from cmf_core.openlineage.facets import PRODUCER, ExecutionRunFacet, SiteRunFacet
    from cmf_core.openlineage.ingest import JOB_PROPERTY
    from cmf_core.openlineage.times import format_time

    ex = lost.execution
    job = ex.properties.get(JOB_PROPERTY)
    namespace, name = ((str(job["namespace"]), str(job["name"]))
                       if isinstance(job, dict) and {"namespace", "name"} <= job.keys()
                       else (DEFAULT_NAMESPACE, job_name(ex.pipeline, ex.stage)))
    facets = {
        "cmf_execution": ExecutionRunFacet(status=ExecutionStatus.FAILED.value,
                                           pipeline=ex.pipeline, stage=ex.stage),
        "cmf_site": SiteRunFacet(name=ex.site),
        "errorMessage": error_message_run.ErrorMessageRunFacet(
            message=lost.error, programmingLanguage=PROGRAMMING_LANGUAGE, producer=PRODUCER),
    }
    return event_to_dict(RunEvent(eventType=RunState.FAIL, eventTime=format_time(at),
                                  run=Run(runId=ex.id, facets=facets),
                                  job=Job(namespace=namespace, name=name), producer=PRODUCER))


def mark_lost(store: Store, lost: Iterable[LostExecution], at: float | None = None
              ) -> list[LostExecution]:
    """Record the end (failed, :attr:`LostExecution.error`, ended ``at``, default now) of each
    execution of ``lost`` that is still lost as read again from ``store`` now (running, not
    released meanwhile, its process still gone), in one write; returns those marked."""
    from cmf_core.openlineage.ingest import prepare

    when = time.time() if at is None else at
    marked: list[LostExecution] = []
    records: list[Any] = []
    for item in lost:
        current = store.get_execution(item.execution.id)
        if current is None or judge(current)[0] is not ProcessState.GONE:
            continue  # ended or released meanwhile (e.g. deferred as its process stopped)
        records += prepare(fail_event(item, when), item.execution.site)[0]
        marked.append(item)
    if records:
        store.put(records)
    return marked

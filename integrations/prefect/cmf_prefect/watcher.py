"""The out-of-process route: record every flow run of a Prefect server from its event stream.

``cmf prefect watch --api URL`` (or :class:`Watcher`) reads the server's events named
``prefect.flow-run.*``, ``prefect.task-run.*`` and ``prefect.asset.*`` and turns each into
OpenLineage RunEvents (:func:`run_events`), recorded through the core emitter like the other
routes, so a run also recorded in-process is the same execution.

How nothing is lost and nothing is recorded twice
-------------------------------------------------
1. **Catch up** over HTTP (``POST /api/events/filter``, oldest first, page by page) from the
   cursor's watermark minus ``lookback_s``, the most recent event time seen, so events that
   reached the server late (clients buffer them) are still found.
2. **Subscribe** to the live stream (``/api/events/out``, Prefect's
   ``PrefectEventSubscriber``, which also replays the last minute) and **catch up again**
   every ``rescan_s`` and after any disconnect, for events the server stored after the
   stream passed them by.
3. The **cursor** (watermark + ids of the events already handled within the look-back window)
   is kept in the CMF store (``Store.set_state``, key ``prefect.watch:<name>``), saved after
   each page and every second in the stream, and read at start: a restarted watcher goes on
   from where it stopped and skips every event it already handled.
4. Each Prefect event always gives the same RunEvents, and the core's ingest is idempotent, so
   an event handled again after a crash (between recording and saving the cursor) changes
   nothing.

Events older than the server's retention (``PREFECT_EVENTS_RETENTION_PERIOD``, 7 days by
default) when the watcher catches up are gone. Task parameter values never reach the server,
so this route records task parameters only as their names in ``task_inputs``; flow parameters
come from the flow run (``GET /api/flow_runs/<id>``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmf_core.errors import ServiceError
from cmf_prefect.adapter import (
    ROUTE_WATCHER,
    Recorder,
    RunFacts,
    RunRef,
    flow_ref,
    run_event,
    stage_of,
    status_of,
    task_ref,
)
from cmf_prefect.datasets import Dataset, asset_dataset, result_dataset, upstream_run_ids
from cmf_prefect.values import params_of

if TYPE_CHECKING:
    from cmf_core.config import Settings
    from cmf_core.store import Store

log = logging.getLogger("cmf.prefect")

PREFIXES = ("prefect.flow-run.", "prefect.task-run.", "prefect.asset.")
SKIPPED_EVENTS = frozenset({"prefect.flow-run.heartbeat"})
STATE_KEY = "prefect.watch:"
PAGE_SIZE = 50  # the server's maximum page size


# the cursor -----------------------------------------------------------------------------------
def _parse(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


@dataclass
class Cursor:
    """Where a watcher is: the latest event time seen and the events handled near it."""

    watermark: str | None = None
    seen: dict[str, str] = field(default_factory=dict)  # event id -> occurred

    def add(self, event_id: str, occurred: str) -> None:
        self.seen[event_id] = occurred
        if self.watermark is None or _parse(occurred) > _parse(self.watermark):
            self.watermark = occurred

    def since(self, lookback_s: float) -> dt.datetime | None:
        if self.watermark is None:
            return None
        return _parse(self.watermark) - dt.timedelta(seconds=lookback_s)

    def prune(self, lookback_s: float) -> None:
        """Forget events older than the look-back window (they are never fetched again)."""
        since = self.since(lookback_s)
        if since is not None:
            self.seen = {k: v for k, v in self.seen.items() if _parse(v) >= since}

    def dumps(self) -> str:
        return json.dumps({"watermark": self.watermark, "seen": self.seen}, sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(data.get("watermark"), dict(data.get("seen") or {}))


# Prefect event -> RunEvents -------------------------------------------------------------------
def _related(event: Mapping[str, Any], role: str) -> list[Mapping[str, Any]]:
    return [r for r in event.get("related") or [] if r.get("prefect.resource.role") == role]


def _related_id(event: Mapping[str, Any], role: str, prefix: str) -> str | None:
    for r in _related(event, role):
        rid = str(r.get("prefect.resource.id", ""))
        if rid.startswith(prefix):
            return rid[len(prefix):]
    return None


def _related_name(event: Mapping[str, Any], role: str) -> str | None:
    for r in _related(event, role):
        if r.get("prefect.resource.name"):
            return str(r["prefect.resource.name"])
    return None


def _time(event: Mapping[str, Any]) -> float:
    return _parse(str(event["occurred"])).timestamp()


class Resolver:
    """What events do not carry, looked up on the Prefect API once per run and cached."""

    def __init__(self, client_factory: Callable[[], Any] | None = None) -> None:
        self._client_factory = client_factory
        self._stages: dict[str, str] = {}
        self._flow_runs: dict[str, dict[str, Any]] = {}

    def remember_stage(self, task_run_id: str, stage: str) -> None:
        self._stages.setdefault(task_run_id, stage)
        if len(self._stages) > 100_000:
            self._stages.clear()

    def stage(self, task_run_id: str, task_run: Mapping[str, Any] | None) -> str | None:
        if task_run_id in self._stages:
            return self._stages[task_run_id]
        if not task_run:
            task_run = self._read("read_task_run", task_run_id)
        if not task_run or not task_run.get("name"):
            return None
        stage = stage_of(task_run["name"], task_run.get("dynamic_key"), task_run.get("task_key"))
        self.remember_stage(task_run_id, stage)
        return stage

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        if flow_run_id not in self._flow_runs:
            if len(self._flow_runs) > 10_000:
                self._flow_runs.clear()
            self._flow_runs[flow_run_id] = self._read("read_flow_run", flow_run_id) or {}
        return self._flow_runs[flow_run_id]

    def _read(self, method: str, run_id: str) -> dict[str, Any] | None:
        if self._client_factory is None:
            return None
        try:
            from uuid import UUID

            with self._client_factory() as client:
                obj = getattr(client, method)(UUID(run_id))
            return obj.model_dump(mode="json")
        except Exception as e:  # deleted run, server gone: record what the event says
            log.debug("cmf: %s(%s) failed: %s", method, run_id, e)
            return None


def _state_facts(resource: Mapping[str, Any], at: float, run_count: int
                 ) -> tuple[str, str] | None:
    """(status, event type) of a run's state event, or None for a state CMF does not record."""
    state_type = str(resource.get("prefect.state-type", ""))
    state_name = str(resource.get("prefect.state-name", ""))
    if state_type == "RUNNING":
        first = state_name == "Running" and run_count <= 1
        return "running", "START" if first else "RUNNING"
    if state_type == "PENDING" and state_name == "NotReady":
        return "skipped", "COMPLETE"
    status = status_of(state_type)
    if status is None:
        return None
    return status, {"completed": "COMPLETE", "failed": "FAIL", "aborted": "ABORT"}[status]


def _task_run_events(event: Mapping[str, Any], resolver: Resolver) -> list[dict[str, Any]]:
    resource = event["resource"]
    run_id = str(resource["prefect.resource.id"]).removeprefix("prefect.task-run.")
    payload = event.get("payload") or {}
    task_run = payload.get("task_run") or {}
    run_count = int(resource.get("prefect.run-count") or task_run.get("run_count") or 0)
    at = _time(event)
    decided = _state_facts(resource, at, run_count)
    stage = resolver.stage(run_id, task_run)
    if decided is None or stage is None:
        return []
    status, event_type = decided
    flow_run_id = _related_id(event, "flow-run", "prefect.flow-run.")
    ref = task_ref(run_id, stage, _related_name(event, "flow"), flow_run_id)
    props: dict[str, Any] = {
        "prefect.task_run_name": task_run.get("name") or resource.get("prefect.resource.name"),
        "prefect.task_key": task_run.get("task_key"),
        "prefect.tags": sorted(task_run.get("tags") or []),
    }
    if flow_run_id:
        props["prefect.flow_run_id"] = flow_run_id
    if status != "running":
        props["prefect.state"] = resource.get("prefect.state-name")
        props["prefect.run_count"] = run_count
    inputs: list[Dataset] = [result_dataset(u)
                             for u in upstream_run_ids(task_run.get("task_inputs"))]
    # a failed run's result is its exception, which allow_failure hands downstream
    outputs = [result_dataset(run_id)] if status in ("completed", "failed") else []
    error = None
    if status in ("failed", "aborted", "skipped"):
        error = resource.get("prefect.state-message") or \
            f"task run ended in state {resource.get('prefect.state-name')}"
    facts = RunFacts(status=status, at=at, event_type=event_type, properties=props,
                     inputs=inputs, outputs=outputs, error=error)
    return [run_event(ref, facts, ROUTE_WATCHER)]


def _flow_run_events(event: Mapping[str, Any], resolver: Resolver) -> list[dict[str, Any]]:
    resource = event["resource"]
    run_id = str(resource["prefect.resource.id"]).removeprefix("prefect.flow-run.")
    flow_name = _related_name(event, "flow")
    run_count = int(resource.get("prefect.run-count") or 0)
    decided = _state_facts(resource, _time(event), run_count)
    if decided is None or not flow_name:
        return []
    status, event_type = decided
    flow_run = resolver.flow_run(run_id)
    props: dict[str, Any] = {
        "prefect.flow_run_name": resource.get("prefect.resource.name"),
        "prefect.tags": sorted(flow_run.get("tags") or []),
    }
    if flow_run.get("deployment_id"):
        props["prefect.deployment_id"] = str(flow_run["deployment_id"])
    if flow_run.get("parent_task_run_id"):
        props["prefect.parent_task_run_id"] = str(flow_run["parent_task_run_id"])
    if status != "running":
        props["prefect.state"] = resource.get("prefect.state-name")
    error = None
    if status in ("failed", "aborted", "skipped"):
        error = resource.get("prefect.state-message") or \
            f"flow run ended in state {resource.get('prefect.state-name')}"
    facts = RunFacts(status=status, at=_time(event), event_type=event_type,
                     # bounded, secrets redacted, as the in-process routes record them
                     params=params_of(flow_run["parameters"]) if "parameters" in flow_run
                     else None,
                     properties=props, error=error)
    return [run_event(flow_ref(run_id, flow_name), facts, ROUTE_WATCHER)]


def _asset_events(event: Mapping[str, Any], resolver: Resolver) -> list[dict[str, Any]]:
    name = str(event["event"])
    task_run_id = _related_id(event, "task-run", "prefect.task-run.")
    if task_run_id is None:
        return []
    stage = resolver.stage(task_run_id, None)
    if stage is None:
        return []
    key = str(event["resource"]["prefect.resource.id"])
    ref: RunRef = task_ref(task_run_id, stage, _related_name(event, "flow"),
                           _related_id(event, "flow-run", "prefect.flow-run."))
    upstream = [asset_dataset(str(r["prefect.resource.id"])) for r in _related(event, "asset")]
    if name == "prefect.asset.referenced":
        inputs, outputs = [asset_dataset(key)], []
    elif name == "prefect.asset.materialization.succeeded":
        inputs, outputs = upstream, [asset_dataset(key)]
    elif name == "prefect.asset.materialization.failed":
        inputs, outputs = upstream, []
    else:
        return []
    facts = RunFacts(status="running", at=_time(event), event_type="OTHER", inputs=inputs,
                     outputs=outputs)
    return [run_event(ref, facts, ROUTE_WATCHER)]


def run_events(event: Mapping[str, Any], resolver: Resolver | None = None
               ) -> list[dict[str, Any]]:
    """The OpenLineage RunEvents for one Prefect event (its JSON form); [] when it says
    nothing CMF records. The same event always gives the same RunEvents."""
    resolver = resolver or Resolver()
    name = str(event.get("event", ""))
    if name in SKIPPED_EVENTS:
        return []
    if name.startswith("prefect.task-run."):
        return _task_run_events(event, resolver)
    if name.startswith("prefect.flow-run."):
        return _flow_run_events(event, resolver)
    if name.startswith("prefect.asset."):
        return _asset_events(event, resolver)
    return []


# the watcher ----------------------------------------------------------------------------------
@dataclass
class WatchStats:
    handled: int = 0  # Prefect events handled (recorded or found to say nothing)
    recorded: int = 0  # RunEvents sent to the emitter
    duplicates: int = 0  # events skipped because the cursor had them
    handled_ids: list[str] = field(default_factory=list)


class Watcher:
    """Follows one Prefect server's event stream into the CMF store (see the module docs).

    ``api_url`` is the Prefect API URL, as in ``PREFECT_API_URL``
    (``http://127.0.0.1:4200/api``). ``name`` keys the cursor (default: the URL). ``api_key`` is
    for Prefect Cloud; a self-hosted server's auth string comes from Prefect's settings.
    """

    def __init__(self, api_url: str, *, settings: Settings | None = None,
                 api_key: str | None = None, name: str | None = None,
                 lookback_s: float = 600.0, rescan_s: float = 60.0) -> None:
        from cmf_core.errors import InvalidInputError

        if not api_url or "://" not in api_url:
            raise InvalidInputError(
                f"Prefect API URL {api_url!r} is not a URL; pass --api "
                "http://host:4200/api (the value of PREFECT_API_URL)")
        if lookback_s < 0 or rescan_s <= 0:
            raise InvalidInputError(
                f"lookback {lookback_s} s and rescan {rescan_s} s must be >= 0 and > 0")
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key
        self.name = name or self.api_url
        self.lookback_s = lookback_s
        self.rescan_s = rescan_s
        self.recorder = Recorder(settings)
        self.resolver = Resolver(self._client)
        self.stats = WatchStats()
        self._store: Store | None = None
        self._cursor: Cursor | None = None
        self._dirty = False
        self._saved_at = 0.0

    # plumbing ---------------------------------------------------------------------------------
    def _client(self) -> Any:
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.api_url, api_key=self.api_key)

    @property
    def store(self) -> Store:
        if self._store is None:
            from cmf_core.store import open_store

            self._store = open_store(settings=self.recorder.settings)
        return self._store

    @property
    def cursor(self) -> Cursor:
        if self._cursor is None:
            self._cursor = Cursor.loads(self.store.get_state(STATE_KEY + self.name))
        return self._cursor

    def save(self) -> None:
        """Write the cursor to the store (pruned to the look-back window)."""
        if self._cursor is None or not self._dirty:
            return
        self._cursor.prune(self.lookback_s)
        self.store.set_state(STATE_KEY + self.name, self._cursor.dumps())
        self._dirty = False
        self._saved_at = time.monotonic()

    def close(self) -> None:
        self.save()
        if self._store is not None:
            self._store.close()
            self._store = None

    def _filter(self, since: dt.datetime | None) -> Any:
        from prefect.events.filters import (
            EventFilter,
            EventNameFilter,
            EventOccurredFilter,
            EventOrder,
        )

        now = dt.datetime.now(dt.UTC)
        occurred = EventOccurredFilter(
            since=since or dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
            until=now + dt.timedelta(days=1))
        return EventFilter(occurred=occurred, event=EventNameFilter(prefix=list(PREFIXES)),
                           order=EventOrder.ASC)

    # handling ---------------------------------------------------------------------------------
    def handle(self, event: Mapping[str, Any]) -> int:
        """Record one Prefect event (its JSON form) unless the cursor has it; returns the number
        of RunEvents recorded."""
        event_id, occurred = str(event["id"]), str(event["occurred"])
        cursor = self.cursor
        if event_id in cursor.seen:
            self.stats.duplicates += 1
            return 0
        events = run_events(event, self.resolver)
        for ol_event in events:
            self.recorder.emit(ol_event)
        cursor.add(event_id, _iso(occurred))
        self._dirty = True
        self.stats.handled += 1
        self.stats.recorded += len(events)
        self.stats.handled_ids.append(event_id)
        return len(events)

    def catch_up(self) -> int:
        """Handle every stored event since the cursor (minus the look-back); returns how many
        were new."""
        import httpx

        before = self.stats.handled
        try:
            with self._client() as client:
                page = client.read_events(
                    filter=self._filter(self.cursor.since(self.lookback_s)), limit=PAGE_SIZE)
                while True:
                    for ev in page.events:
                        self.handle(ev.model_dump(mode="json"))
                    self.save()
                    if not page.next_page:
                        break
                    page = client.read_events_page(page.next_page)
        except httpx.HTTPError as e:  # unreachable, or an error status (a wrong URL: 404)
            raise ServiceError(f"cannot read the events of the Prefect API at {self.api_url}: "
                               f"{e}") from e
        return self.stats.handled - before

    async def _follow(self, stop: threading.Event | _Either) -> None:
        from prefect.events.clients import (
            PrefectCloudEventSubscriber,
            PrefectEventSubscriber,
        )
        from prefect.settings import PREFECT_CLOUD_API_URL

        flt = self._filter(None)
        if self.api_url.startswith(str(PREFECT_CLOUD_API_URL.value())):
            subscriber: Any = PrefectCloudEventSubscriber(
                api_url=self.api_url, api_key=self.api_key, filter=flt, reconnection_attempts=0)
        else:
            subscriber = PrefectEventSubscriber(api_url=self.api_url, filter=flt,
                                                reconnection_attempts=0)
        next_rescan = time.monotonic() + self.rescan_s
        async with subscriber:
            stream = subscriber.__aiter__()
            while not stop.is_set():
                try:
                    event = await asyncio.wait_for(stream.__anext__(), timeout=0.5)
                except TimeoutError:
                    event = None
                except StopAsyncIteration:
                    return
                if event is not None:
                    self.handle(event.model_dump(mode="json"))
                if time.monotonic() - self._saved_at >= 1.0:
                    self.save()
                if time.monotonic() >= next_rescan:
                    self.catch_up()
                    next_rescan = time.monotonic() + self.rescan_s

    def _follow_stream(self, stop: threading.Event) -> None:
        """Run :meth:`_follow` to its end. Where an event loop already runs in this thread (a
        Jupyter cell, an async application) ``asyncio.run`` cannot be used: the stream is then
        followed on a worker thread with its own loop while this thread waits for it."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self._follow(stop))
            return
        halt = threading.Event()  # ends the worker if this thread is interrupted
        either = _Either(stop, halt)
        failed: list[BaseException] = []

        def follow() -> None:
            try:
                asyncio.run(self._follow(either))
            except BaseException as e:  # handed to the waiting thread, which retries
                failed.append(e)

        worker = threading.Thread(target=follow, name="cmf-prefect-watch", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.5)
        except BaseException:  # KeyboardInterrupt (Jupyter's stop button): end the worker too
            halt.set()
            worker.join(5.0)
            raise
        if failed:
            raise failed[0]

    def run(self, stop: threading.Event | None = None, once: bool = False) -> WatchStats:
        """Catch up, then (unless ``once``) follow the live stream until ``stop`` is set.

        Disconnects and server restarts are retried with a growing pause (up to 30 s), catching
        up each time. The cursor is saved on the way out. It can be called where an event loop
        runs (a Jupyter cell): the live stream is then read on a worker thread.
        """
        stop = stop or threading.Event()
        pause = 1.0
        try:
            while not stop.is_set():
                try:
                    self.catch_up()
                    if once:
                        break
                    self._follow_stream(stop)
                    pause = 1.0
                except Exception as e:
                    if once:
                        raise
                    log.warning("cmf: watching %s failed (%s: %s); retrying in %.0f s",
                                self.api_url, type(e).__name__, e, pause)
                    log.debug("cmf: watcher traceback", exc_info=e)
                    stop.wait(pause)
                    pause = min(pause * 2, 30.0)
        finally:
            self.close()
        return self.stats


class _Either:
    """Set when either event is (the ``stop`` that :meth:`Watcher._follow` polls)."""

    def __init__(self, *events: threading.Event) -> None:
        self._events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)


def _iso(occurred: str) -> str:
    """One spelling of an event time (the stream and the REST API differ in the suffix)."""
    return _parse(occurred).astimezone(dt.UTC).isoformat()

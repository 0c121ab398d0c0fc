"""The Python API: a ``Cmf`` logger familiar to users of HPE's cmflib.

>>> cmf = Cmf(pipeline_name="churn")
>>> with cmf.create_execution("train", params={"lr": 0.1}):
...     cmf.log_dataset("data/train.csv", "input")
...     cmf.log_model("model.pkl", "output", model_framework="sklearn")
...     cmf.log_execution_metrics("eval", {"auc": 0.91})

No git, DVC or remote is needed. An execution's records are buffered in memory and written in
one transaction when it ends (``finalize`` or leaving the ``with`` block): once that returns they
survive the process being killed. An execution still running after ``START_VISIBLE_AFTER_S`` is
written as "running" by a background thread, so in-flight work is visible without costing a
second transaction for the many short executions. Each execution records the process that
runs it (``cmf.process``, see :mod:`cmf_core.process`): if that process is killed before the
execution ends, ``cmf reap`` can tell, and marks it failed. If the store fails that final write,
the execution is spooled (never raised into the step) and recorded later (docs/architecture.md).
The loggers of one process that open the same SQLite store share it (a notebook cell re-run
without ``close()`` reuses the open store); the last to close closes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from cmf_core import jsonutil
from cmf_core.config import Settings, load_settings
from cmf_core.errors import InvalidInputError
from cmf_core.guard import exception_text, renew_after_fork, report
from cmf_core.identity import remote_digest
from cmf_core.model import (
    Artifact,
    EnergyRecord,
    Event,
    EventType,
    Execution,
    ExecutionStatus,
    Metric,
    Pipeline,
    Record,
    Stage,
)
from cmf_core.model.artifact import check_artifact_type
from cmf_core.model.metric import check_step
from cmf_core.openlineage.local import DEFAULT_DIGEST_MAX_BYTES, path_identity
from cmf_core.process import process_property
from cmf_core.store import Store, shared_store

START_VISIBLE_AFTER_S = 0.5
ARTIFACT_MEMO = 4096  # remote artifacts a logger remembers having described

_REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "az://", "abfs://", "http://", "https://",
                   "hdfs://", "minio://")


def _is_remote(uri: str) -> bool:
    return uri.startswith(_REMOTE_SCHEMES)


def _local_path(uri: str) -> Path:
    """The path a local artifact URI names: a path as given, or a ``file://`` URI (RFC 8089:
    ``file:///abs/path`` or ``file://localhost/abs/path``, percent-encoded as
    ``Path.as_uri()`` writes it)."""
    if uri[:7].lower() != "file://":
        return Path(uri)
    authority, _, rest = uri[7:].partition("/")
    if authority not in ("", "localhost"):
        raise InvalidInputError(
            f"artifact uri {uri!r} names a file on host {authority!r}, which cannot be read "
            "here: give digest= (its sha256) or a file:///path on this host")
    raw = Path("/" + rest)
    decoded = Path(unquote("/" + rest, errors="surrogateescape"))
    # a name with a literal '%' given unencoded ("file:///data/50%25.csv" is the URI) is kept
    return raw if decoded != raw and not decoded.exists() and raw.exists() else decoded


def _event(execution_id: str, artifact_id: str, type: EventType) -> Event:
    """An Event of ids taken from records already validated (no second check)."""
    event = object.__new__(Event)
    object.__setattr__(event, "execution_id", execution_id)
    object.__setattr__(event, "artifact_id", artifact_id)
    object.__setattr__(event, "type", type)
    return event


def _existing_path(uri: str) -> Path:
    """The absolute path, symbolic links resolved, of the local file or folder ``uri`` names
    (``~`` expanded), or an error naming it as given and where it was looked for."""
    path = _local_path(uri)
    if uri[:7].lower() != "file://":
        with contextlib.suppress(RuntimeError):  # ~user of no such user: looked for as written
            path = path.expanduser()
    if path.exists():
        return path.resolve()
    full = Path(os.path.abspath(path))
    where = "" if str(full) == uri else f" ({full})"
    if path.is_symlink():
        raise InvalidInputError(f"artifact path {uri}{where} is a symbolic link to "
                                f"{os.readlink(path)}, which does not exist")
    raise InvalidInputError(f"artifact path {uri}{where} does not exist")


_WARNED_STAT: set[str] = set()


def _warn_stat(path: str, size: int, complete: bool, max_bytes: float) -> None:
    """One WARNING per path and process: its id is not its content's."""
    if path in _WARNED_STAT:
        return
    if len(_WARNED_STAT) >= ARTIFACT_MEMO:
        _WARNED_STAT.clear()
    _WARNED_STAT.add(path)
    from cmf_core.openlineage.local import MAX_WALK_FILES  # read now: a setting of that module

    if not complete:
        why = f"holds more than {MAX_WALK_FILES:,} files"
    elif size > max_bytes:
        why = (f"holds {size / 2**20:,.0f} MiB, more than digest_max_mb "
               f"({max_bytes / 2**20:g} MiB; CMF_DIGEST_MAX_MB)")
    else:
        why = "could not be read"
    logging.getLogger(__name__).warning(
        "cmf: %s %s: identified by its path, size and modification time (digest_method "
        "'stat'), not by a sha256 of its content; the same bytes elsewhere are another "
        "artifact, and a change that keeps its size and mtime is not seen", path, why)


def describe_artifact(uri: str, type: str, site: str, *, name: str | None = None,
                      version: str | None = None, digest: str | None = None,
                      properties: Mapping[str, Any] | None = None,
                      custom_properties: Mapping[str, Any] | None = None,
                      max_bytes: float = DEFAULT_DIGEST_MAX_BYTES) -> Artifact:
    """Build an Artifact, digesting local files/directories; remote URIs need a version.

    A local path (``~`` expanded, relative to the working directory) is identified by a sha256
    of its content up to ``max_bytes`` (all files of a folder together) and ``MAX_WALK_FILES``
    files, else by its path, size and modification time, as the orchestrator adapters do
    (property ``digest_method``, with a WARNING).
    """
    check_artifact_type(type)
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInputError(f"artifact uri must be a non-empty path or URI, got {uri!r}")
    props = dict(properties or {})
    if digest is None:
        if _is_remote(uri):
            if not version:
                raise InvalidInputError(
                    f"remote artifact {uri!r} needs version= (a version id, etag or digest) "
                    "so it can be identified by content"
                )
            digest = remote_digest(uri, version)
            props.setdefault("version", version)
        else:
            path = _existing_path(uri)
            uri = str(path)
            # content up to max_bytes (a file's bytes up to its size now: it may grow), cached
            # per process while unchanged; above it the adapters' digest of path, size and mtime
            digest, method, size, complete = path_identity(uri, max_bytes)
            props.setdefault("digest_method", method)
            if not path.is_dir():
                props.setdefault("size_bytes", size)
            if method == "stat":
                _warn_stat(uri, size, complete, max_bytes)
    return Artifact(id=digest, type=type, name=name or uri.rstrip("/").rsplit("/", 1)[-1] or uri,
                    uri=uri, site=site, properties=props,
                    custom_properties=custom_properties or {})


class ExecutionHandle:
    """A running execution; a context manager that ends it (failed if an exception escapes)."""

    def __init__(self, cmf: Cmf, execution: Execution) -> None:
        self._cmf = cmf
        self.execution = execution

    @property
    def id(self) -> str:
        return self.execution.id

    def __repr__(self) -> str:
        """Which execution, and whether it still runs (read from the logger, not the store)."""
        e = self.execution
        if self.id in self._cmf._pending:
            state = "running"
        else:
            how = self._cmf._ended.get(self.id)
            state = how.removeprefix("has already ") if how else "ended"
        return f"<ExecutionHandle {e.pipeline}/{e.stage} {e.id} {state}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    # the logger's log_* methods, acting on this execution
    def log_artifact(self, uri: str | os.PathLike[str], event: str, type: str = "Dataset",
                     **kwargs: Any) -> Artifact:
        kwargs.setdefault("execution", self)
        return self._cmf.log_artifact(uri, event, type, **kwargs)

    def log_dataset(self, url: str | os.PathLike[str], event: str, **kwargs: Any) -> Artifact:
        kwargs.setdefault("execution", self)
        return self._cmf.log_dataset(url, event, **kwargs)

    def log_model(self, path: str | os.PathLike[str], event: str = "output",
                  **kwargs: Any) -> Artifact:
        kwargs.setdefault("execution", self)
        return self._cmf.log_model(path, event, **kwargs)

    def log_metrics(self, name: str, values: Mapping[str, float], step: int | None = None
                    ) -> list[Metric]:
        return self._cmf.log_metrics(name, values, step, execution=self)

    def log_execution_metrics(self, name: str, values: Mapping[str, float]) -> Artifact:
        return self._cmf.log_execution_metrics(name, values, execution=self)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._cmf.log_params(params, execution=self)

    def log_energy(self, record: EnergyRecord) -> None:
        self._cmf.log_energy(record, execution=self)

    def __getattr__(self, name: str) -> Any:
        # anything else (log_* added later, finalize, query, ...) is the logger's; log_* act
        # on this execution
        attr = getattr(self._cmf, name)
        if callable(attr) and name.startswith("log_"):
            def bound(*args: Any, **kwargs: Any) -> Any:
                kwargs.setdefault("execution", self)
                return attr(*args, **kwargs)
            return bound
        return attr

    def __enter__(self) -> ExecutionHandle:
        pending = self._cmf._pending.get(self.id)
        if pending is not None:  # its block ends it: a later create_execution leaves it be
            pending.in_block = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        pending = self._cmf._pending.get(self.id)
        if pending is None:
            return
        pending.in_block = False
        if exc is None:
            self._cmf.finalize(execution=self)
        else:
            self._cmf.finalize(status=ExecutionStatus.FAILED, error=exception_text(exc),
                               execution=self)


class _DeferredStarts:
    """Writes the "running" row of executions still running after a delay (daemon thread)."""

    def __init__(self, store: Store, delay: float) -> None:
        self.store = store
        self.delay = delay
        self._fresh()
        renew_after_fork(self, _DeferredStarts._fresh)

    def _fresh(self) -> None:
        """Nothing due and no thread (again in a forked child: the parent's starts are the
        parent's to write, and the child's need a thread of their own)."""
        self._due: dict[str, tuple[float, list[Record]]] = {}
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, execution_id: str, records: list[Record]) -> None:
        with self._cv:
            self._due[execution_id] = (time.monotonic() + self.delay, records)
            if self._thread is None:  # else it wakes at an earlier deadline, sees this one then
                self._thread = threading.Thread(target=self._run, name="cmf-starts",
                                                daemon=True)
                self._thread.start()

    def cancel(self, execution_id: str) -> None:
        with self._cv:
            self._due.pop(execution_id, None)

    def stop(self) -> None:
        """End the thread (the logger closes; a later ``add`` starts a new one)."""
        with self._cv:
            self._thread = None
            self._cv.notify_all()

    def _run(self) -> None:
        """Write what is due until nothing is: the thread ends then (a later ``add`` starts
        another), so a logger dropped without ``close()`` leaves no thread behind, nor its
        store held open by one."""
        me = threading.current_thread()
        while True:
            with self._cv:
                if self._thread is not me:  # stopped
                    return
                if not self._due:
                    self._thread = None
                    return
                now = time.monotonic()
                ready = [k for k, (t, _) in self._due.items() if t <= now]
                if not ready:
                    self._cv.wait(min(t for t, _ in self._due.values()) - now)
                    continue
                batch = [r for k in ready for r in self._due.pop(k)[1]]
            try:
                self.store.put(batch)
            except BaseException as e:  # our own thread: log, never die
                report("recording a running execution", e)


class _Pending:
    __slots__ = ("execution", "in_block", "metric_counts", "monitor", "records", "thread")

    def __init__(self, execution: Execution, monitor: Any = None) -> None:
        self.execution = execution
        self.records: list[Record] = []
        self.monitor = monitor
        # the thread that started it, and whether a ``with`` block of its handle is running
        # (see Cmf._supersede)
        self.thread = threading.get_ident()
        self.in_block = False
        # metrics logged so far per name: the next default step (counting the records at each
        # call made 10,000 steps of a training loop take seconds)
        self.metric_counts: dict[str, int] = {}

    def add_metrics(self, metrics: list[Metric]) -> None:
        counts = self.metric_counts
        for m in metrics:
            counts[m.name] = counts.get(m.name, 0) + 1
        self.records.extend(metrics)


class Cmf:
    """Record pipelines, stages, executions, artifacts and metrics into a CMF store.

    ``filepath`` (cmflib spelling) is a path to an SQLite store file; ``store`` is a Store or a
    store URL. With neither, the configured store is used (``CMF_STORE_URL`` or the embedded
    SQLite under the CMF home).
    """

    def __init__(self, filepath: str | os.PathLike[str] | None = None,
                 pipeline_name: str | None = None, *,
                 store: Store | str | os.PathLike[str] | None = None,
                 site: str | None = None, settings: Settings | None = None,
                 properties: Mapping[str, Any] | None = None,
                 custom_properties: Mapping[str, Any] | None = None,
                 measure_energy: bool | None = None) -> None:
        if not pipeline_name:
            raise InvalidInputError("pipeline_name is required, e.g. Cmf(pipeline_name='churn')")
        self.settings = settings or load_settings(site=site)
        self.site = site or self.settings.site
        self._release: Any = None
        if isinstance(store, Store):
            self.store, self._owns_store = store, False
        else:
            if isinstance(store, os.PathLike):  # a path: the SQLite file there
                filepath, store = store, None
            elif store is not None and not isinstance(store, str):
                raise InvalidInputError(f"store must be a Store, a store URL or a path to an "
                                        f"SQLite file; got {type(store).__name__}")
            if filepath is not None and not isinstance(filepath, (str, os.PathLike)):
                raise InvalidInputError(f"filepath must be a path to an SQLite store file; got "
                                        f"{type(filepath).__name__}")
            url = store if isinstance(store, str) else (
                f"sqlite:///{Path(filepath).resolve()}" if filepath is not None else None)
            # shared with this process's other loggers of the same embedded store (a notebook
            # cell re-run without close() reuses it), released by close()
            self.store, self._release = shared_store(url, self.site, self.settings, self)
            self._owns_store = True
        try:
            self._start(pipeline_name, properties, custom_properties, measure_energy)
        except BaseException:
            self._release_store()
            raise

    def _start(self, pipeline_name: str, properties: Mapping[str, Any] | None,
               custom_properties: Mapping[str, Any] | None, measure_energy: bool | None
               ) -> None:
        self.pipeline = Pipeline(name=pipeline_name, site=self.site, properties=properties or {},
                                 custom_properties=custom_properties or {})
        self._stages: dict[str, Stage] = {}
        self._artifacts: dict[tuple[Any, ...], Artifact] = {}
        self._current_stage: str | None = None
        self._pending: dict[str, _Pending] = {}
        self._current: str | None = None
        # executions this logger ended (bounded): how, for the error naming a later use
        self._ended: dict[str, str] = {}
        self.measure_energy = self.settings.energy if measure_energy is None else measure_energy
        self.store.put([self.pipeline])
        self._starts = _DeferredStarts(self.store, START_VISIBLE_AFTER_S)
        self._replay_spool()

    def __repr__(self) -> str:
        """The pipeline, store (password hidden), site and running executions: what a notebook
        shows for ``cmf``. Read from the logger, never the store."""
        store = getattr(self.store, "safe_url", type(self.store).__name__)
        closed = self._owns_store and self._release is None
        pending = getattr(self, "_pending", {})
        running = ", ".join(f"{p.execution.stage} {eid}" for eid, p in list(pending.items())[:3])
        if len(pending) > 3:
            running += f", ... {len(pending) - 3} more"
        return (f"<Cmf pipeline={self.pipeline.name!r} store={store!r} site={self.site!r}"
                + (" closed" if closed else f" running: {running or 'none'}") + ">")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    # context ---------------------------------------------------------------------------------
    def __enter__(self) -> Cmf:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(failed=exc is not None, error=None if exc is None else exception_text(exc))

    def close(self, failed: bool = False, error: str | None = None) -> None:
        """End every open execution and release the store."""
        for eid in list(self._pending):
            self.finalize(status=ExecutionStatus.FAILED if failed else ExecutionStatus.COMPLETED,
                          error=error, execution=eid)
        self._starts.stop()  # else each closed logger leaves its thread behind
        self._release_store()

    def _release_store(self) -> None:
        """Release the store this logger opened (once; the last logger of it closes it)."""
        release, self._release = self._release, None
        if release is None:
            return
        try:
            release()
        except Exception as e:  # the disk is full or the store locked: never raise
            report(f"closing the store {getattr(self.store, 'safe_url', '')}", e,
                   "what it could not write stays in its journal beside the database "
                   "and is applied by the next process that opens the store")

    # stages and executions -------------------------------------------------------------------
    def create_stage(self, name: str, properties: Mapping[str, Any] | None = None,
                     custom_properties: Mapping[str, Any] | None = None) -> Stage:
        """Create (or reuse) a stage and make it current."""
        stage = self._stages.get(name)
        if stage is None:
            stage = Stage(pipeline=self.pipeline.name, name=name, site=self.site,
                          properties=properties or {}, custom_properties=custom_properties or {})
            self._stages[name] = stage
            if properties or custom_properties:
                self._put_stage(stage)
        self._current_stage = name
        return stage

    create_context = create_stage  # cmflib spelling

    def _put_stage(self, stage: Stage) -> None:
        """Write a stage with properties now: a spooled execution (the store failed at its end)
        carries none. On failure it is written with the stage's first execution instead."""
        try:
            self.store.put([self.pipeline, stage])
        except Exception as e:
            report(f"recording stage {stage.pipeline}/{stage.name}", e,
                   "it is written with its first execution")

    def create_execution(self, stage: str | None = None,
                         params: Mapping[str, Any] | None = None, *,
                         custom_properties: Mapping[str, Any] | None = None,
                         properties: Mapping[str, Any] | None = None,
                         execution_id: str | None = None,
                         started_at: float | None = None) -> ExecutionHandle:
        """Start an execution of ``stage`` (default: the current stage) and make it current."""
        name = stage or self._current_stage
        if name is None:
            raise InvalidInputError("no stage: call create_stage(name) or pass stage=")
        stage_rec = self.create_stage(name)
        kwargs: dict[str, Any] = {}
        if execution_id is not None:
            kwargs["id"] = execution_id
        if started_at is not None:
            kwargs["started_at"] = started_at
        execution = Execution(pipeline=self.pipeline.name, stage=name, site=self.site,
                              params=params or {},
                              properties={**(properties or {}), **process_property()},
                              custom_properties=custom_properties or {}, **kwargs)
        if execution.id in self._pending:
            raise InvalidInputError(f"execution {execution.id} is already running")
        self._supersede(execution)
        monitor = self._start_monitor()
        self._starts.add(execution.id, [self.pipeline, stage_rec, execution])
        self._pending[execution.id] = _Pending(execution, monitor)
        self._current = execution.id
        return ExecutionHandle(self, execution)

    def _supersede(self, new: Execution) -> None:
        """End, as aborted, the executions of ``new``'s stage that this thread started and left
        running outside a ``with`` block: a notebook cell ``run = cmf.create_execution("train")``
        run again (or a loop that never calls ``finalize``). Each would otherwise stay
        "running" until ``close()``, or for ever. Its records (artifacts, metrics, energy)
        are written with it, and a WARNING names it. Executions of other stages, those of
        other threads and those inside a ``with`` block run on side by side."""
        me = threading.get_ident()
        for eid, pending in list(self._pending.items()):
            old = pending.execution
            if pending.thread != me or pending.in_block or old.stage != new.stage:
                continue
            error = (f"superseded: create_execution({new.stage!r}) started execution {new.id} "
                     "in the same thread before this one was finalized")
            logging.getLogger(__name__).warning(
                "cmf: execution %s (%s/%s) was still running when create_execution(%r) was "
                "called again (a re-run cell?): it is ended as %s with its records; end an "
                "execution with finalize() or run it in `with cmf.create_execution(...):`",
                eid, old.pipeline, old.stage, new.stage, ExecutionStatus.ABORTED.value)
            self.finalize(ExecutionStatus.ABORTED, error=error, execution=eid)
            self._note_ended(eid, f"was ended as aborted when create_execution({new.stage!r}) "
                                  f"started execution {new.id}")

    def _start_monitor(self) -> Any:
        if not self.measure_energy:
            return None
        try:
            from cmf_core.energy import EnergyMonitor

            monitor = EnergyMonitor(settings=self.settings)
            monitor.start()
            return monitor
        except Exception:  # energy is best effort; never block recording
            import logging

            logging.getLogger(__name__).warning("cmf: energy monitor unavailable", exc_info=True)
            return None

    def _resolve(self, execution: ExecutionHandle | str | None) -> _Pending:
        eid = execution.id if isinstance(execution, ExecutionHandle) else execution
        eid = eid or self._current
        pending = self._pending.get(eid) if eid else None
        if pending is None:
            if eid is None:
                raise InvalidInputError("no running execution: call create_execution(...) first")
            how = self._ended.get(eid)
            raise InvalidInputError(
                f"execution {eid} is not running in this logger" if how is None else
                f"execution {eid} {how}: it takes no more records (log them before it ends, or "
                "into a new create_execution(...))")
        return pending

    def _note_ended(self, execution_id: str, how: str) -> None:
        if len(self._ended) >= ARTIFACT_MEMO and execution_id not in self._ended:
            self._ended.clear()
        self._ended[execution_id] = how

    # artifacts -------------------------------------------------------------------------------
    def log_artifact(self, uri: str | os.PathLike[str], event: str, type: str = "Dataset", *,
                     name: str | None = None, version: str | None = None,
                     digest: str | None = None, properties: Mapping[str, Any] | None = None,
                     custom_properties: Mapping[str, Any] | None = None,
                     execution: ExecutionHandle | str | None = None) -> Artifact:
        """Log an input or output artifact of the current execution."""
        pending = self._resolve(execution)
        ev = EventType.parse(event)
        if not isinstance(uri, (str, os.PathLike)):
            raise InvalidInputError(f"artifact uri must be a path or URI, got "
                                    f"{uri.__class__.__name__}")  # type: the parameter
        uri = str(uri)
        # a remote artifact named by URI and version (no properties) is the same record each
        # time: described once (a local path is digested every time: its bytes may change)
        key = (uri, type, name, version, digest) if (
            not properties and not custom_properties and (digest or _is_remote(uri))) else None
        art = self._artifacts.get(key) if key else None
        if art is None:
            art = describe_artifact(uri, type, self.site, name=name, version=version,
                                    digest=digest, properties=properties,
                                    custom_properties=custom_properties,
                                    max_bytes=self.settings.digest_max_mb * 2**20)
            if key:
                if len(self._artifacts) >= ARTIFACT_MEMO:
                    self._artifacts.clear()
                self._artifacts[key] = art
        pending.records.append(art)
        pending.records.append(_event(pending.execution.id, art.id, ev))
        return art

    def log_dataset(self, url: str | os.PathLike[str], event: str, *,
                    custom_properties: Mapping[str, Any] | None = None, **kwargs: Any) -> Artifact:
        return self.log_artifact(url, event, "Dataset", custom_properties=custom_properties,
                                 **kwargs)

    def log_model(self, path: str | os.PathLike[str], event: str = "output", *,
                  model_framework: str | None = None, model_type: str | None = None,
                  model_name: str | None = None,
                  custom_properties: Mapping[str, Any] | None = None, **kwargs: Any) -> Artifact:
        props = {k: v for k, v in (("model_framework", model_framework),
                                   ("model_type", model_type)) if v is not None}
        props.update(kwargs.pop("properties", None) or {})
        return self.log_artifact(path, event, "Model", name=model_name or kwargs.pop("name", None),
                                 properties=props, custom_properties=custom_properties, **kwargs)

    # metrics ---------------------------------------------------------------------------------
    def log_metrics(self, name: str, values: Mapping[str, float], step: int | None = None, *,
                    execution: ExecutionHandle | str | None = None) -> list[Metric]:
        """Log stepped metrics (``step`` defaults to the next step for each name)."""
        pending = self._resolve(execution)
        _mapping(values, "metrics")
        out, skipped = [], []
        for key, value in values.items():
            metric_name = f"{name}.{key}" if name else key
            s = step if step is not None else pending.metric_counts.get(metric_name, 0)
            if _non_finite(value):  # a diverging loss: noted, never raised into the loop
                skipped.append((metric_name, value, check_step(s, metric_name)))
                continue
            out.append(Metric(execution_id=pending.execution.id, name=metric_name, value=value,
                              step=s))
        self._note_non_finite(pending, skipped)
        pending.add_metrics(out)
        return out

    def _note_non_finite(self, pending: _Pending, skipped: list[tuple[str, Any, int | None]]
                         ) -> None:
        """Count metric values a store cannot hold (NaN, +-inf) in the execution's
        ``cmf.non_finite_metrics`` property (per name: how many, the first step and value),
        with one WARNING per name: a run whose loss diverged says so, and keeps running."""
        if not skipped:
            return
        noted = dict(pending.execution.properties.get(NON_FINITE_PROPERTY) or {})
        for metric_name, value, step in skipped:
            seen = noted.get(metric_name)
            if seen is None:
                logging.getLogger(__name__).warning(
                    "cmf: metric %r of execution %s is %s (step %s): not stored, a store holds "
                    "finite numbers only; counted in its %s property", metric_name,
                    pending.execution.id, value, step, NON_FINITE_PROPERTY)
                seen = {"count": 0, "first_step": step, "first_value": str(float(value))}
            noted[metric_name] = {**seen, "count": seen["count"] + 1}
        from dataclasses import replace

        pending.execution = replace(pending.execution, properties={
            **pending.execution.properties, NON_FINITE_PROPERTY: noted})
        for metric_name, _, _ in skipped:  # the next default step follows the user's loop
            pending.metric_counts[metric_name] = pending.metric_counts.get(metric_name, 0) + 1

    def commit_metrics(self, name: str) -> None:
        """cmflib compatibility: stepped metrics are committed with their execution."""

    def log_execution_metrics(self, name: str, values: Mapping[str, float], *,
                              execution: ExecutionHandle | str | None = None) -> Artifact:
        """Log final metrics as scalars and as a Metrics artifact output by the execution."""
        pending = self._resolve(execution)
        given = _mapping(values, "metrics")
        bad = [(k, v, None) for k, v in given.items() if _non_finite(v)]
        self._note_non_finite(pending, bad)
        skipped = {k for k, _, _ in bad}
        metrics = [Metric(execution_id=pending.execution.id, name=k, value=v)
                   for k, v in given.items() if k not in skipped]
        body = jsonutil.dumps({"execution": pending.execution.id, "name": name,
                               "values": {m.name: m.value for m in metrics}})
        digest = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
        art = Artifact(id=digest, type="Metrics", name=name,
                       uri=f"cmf://metrics/{pending.execution.id}/{name}", site=self.site,
                       properties={"values": {m.name: m.value for m in metrics}})
        pending.add_metrics(metrics)
        pending.records.append(art)
        pending.records.append(_event(pending.execution.id, art.id, EventType.OUTPUT))
        return art

    def log_params(self, params: Mapping[str, Any], *,
                   execution: ExecutionHandle | str | None = None) -> None:
        """Add parameters to the current execution."""
        pending = self._resolve(execution)
        merged = {**pending.execution.params, **_mapping(params, "params")}
        from dataclasses import replace

        pending.execution = replace(pending.execution, params=merged)

    def log_energy(self, record: EnergyRecord, *,
                   execution: ExecutionHandle | str | None = None) -> None:
        pending = self._resolve(execution)
        pending.records.append(record)
        pending.monitor = None

    # ending ----------------------------------------------------------------------------------
    def finalize(self, status: ExecutionStatus | str = ExecutionStatus.COMPLETED,
                 error: str | None = None, *,
                 execution: ExecutionHandle | str | None = None) -> Execution:
        """End an execution and write its records in one durable transaction."""
        pending = self._resolve(execution)
        # now, but never before its start (Execution.ended: the clock may have stepped back)
        ended = pending.execution.ended(status, error=error)
        records: list[Record] = [self.pipeline, self.create_stage(ended.stage),
                                 *pending.records]
        if pending.monitor is not None:
            records.extend(self._stop_monitor(pending.monitor, ended.id))
        records.append(ended)
        self._starts.cancel(ended.id)
        try:
            self.store.put(records)
        except Exception as e:  # the store is down, locked or full: spool, never raise
            self._spool(ended, records, e)
        del self._pending[ended.id]
        self._note_ended(ended.id, f"has already ended ({ended.status.value})")
        if self._current == ended.id:
            self._current = next(reversed(self._pending), None) if self._pending else None
        return ended

    def _spool_settings(self) -> Settings:
        """Settings whose emitter records into this logger's store (whatever CMF_SERVER_URL
        says): the spool folder is keyed by that target."""
        return self.settings.model_copy(update={"store_url": self.store.url, "server_url": None})

    def _spool(self, ended: Execution, records: list[Record], error: Exception) -> None:
        """The store refused the write: keep the execution as OpenLineage events in the spool
        folder, replayed into this store by the next ``Cmf`` or emitter of it or by ``cmf spool
        retry`` (ingest is idempotent). The pipeline and any stage with properties were written
        when created."""
        from cmf_core.openlineage.convert import ExecutionLineage, to_event_dicts
        from cmf_core.openlineage.emit import Emitter

        try:
            lineage = ExecutionLineage.from_records(
                ended, [r for r in records if isinstance(r, Artifact)],
                [r for r in records if isinstance(r, Event)],
                [r for r in records if isinstance(r, Metric)],
                next((r for r in records if isinstance(r, EnergyRecord)), None))
            emitter = Emitter(self._spool_settings())
            kept = [emitter.spool(event) for event in to_event_dicts(lineage)]
            where = f"spooled in {emitter.spool_dir} for retry (cmf spool retry)" \
                if all(kept) else "written to the log (the spool folder failed too)"
        except Exception as e2:  # not even convertible: the log keeps the error at least
            report("spooling an execution the store refused", e2)
            where = "LOST"
        report(f"recording execution {ended.id} ({ended.pipeline}/{ended.stage})", error,
               f"its records are {where}")

    def _replay_spool(self) -> None:
        """Record what earlier runs spooled for this store when it failed them (bounded)."""
        from cmf_core.openlineage.emit import own_keys, replay_spool, spool_file_key, spool_target

        try:
            settings = self._spool_settings()
            folder = Path(settings.spool_path)
            keys = own_keys(folder, spool_target(settings))
            if any(spool_file_key(p) in keys for p in folder.glob("*.*.json")):
                replay_spool(settings)  # up to 100 events, within CMF_HOOK_TIMEOUT_S
        except Exception as e:
            report("replaying the spool", e)

    def _stop_monitor(self, monitor: Any, execution_id: str) -> list[Record]:
        try:
            measurement = monitor.stop()
            return [measurement.to_record(execution_id, self.settings)]
        except Exception:  # energy is best effort; the execution's own records still land
            import logging

            logging.getLogger(__name__).warning(
                "cmf: energy measurement failed for execution %s; recorded without energy",
                execution_id, exc_info=True)
            return []

    # queries ---------------------------------------------------------------------------------
    @property
    def query(self) -> Any:
        from cmf_core.lineage import Query

        query = Query(self.store)
        query._logger = self  # type: ignore[attr-defined]  # its store stays this logger's
        return query


#: execution property counting metric values not stored because they were NaN or infinite
NON_FINITE_PROPERTY = "cmf.non_finite_metrics"


def _non_finite(value: Any) -> bool:
    """Whether ``value`` is a number a store cannot hold (NaN, +-inf); other values are left
    to :class:`~cmf_core.model.Metric` to accept or refuse."""
    try:
        return not isinstance(value, (str, bytes)) and not math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def _mapping(values: Any, what: str) -> Mapping[str, Any]:
    """``values`` if it is a mapping (name -> value), else a clear error."""
    if not isinstance(values, Mapping):
        raise InvalidInputError(f"{what} must be a mapping of name to value, e.g. "
                                f"{{'auc': 0.9}}; got {type(values).__name__}")
    return values

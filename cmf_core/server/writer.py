"""Group commit: one writer thread records the events of many concurrent requests together.

A request hands its events to :meth:`IngestWriter.submit`, which validates them and builds
their CMF records (:func:`cmf_core.openlineage.ingest.prepare`) in the request's thread, and
waits on the returned future. The writer thread takes everything queued (up to ``max_batch``
events) and writes the records of all of them with **one** ``store.put`` (one durable
transaction). Only then are the futures resolved, so an event is acknowledged only once it is
durable, and under load one commit covers many requests instead of one.

:func:`ingest_batch` gives exactly the records that calling
:func:`cmf_core.openlineage.ingest.ingest` on each event in turn would give: the records are
written in event order and the store merges each execution with what it holds (its update
rule, see ``Store.put``), so the writer reads nothing. An invalid event gets its own error and
the others are still written. If the batch's ``put`` fails, its events are written one by one
so one bad record cannot fail its neighbours.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cmf_core.errors import CmfError, StoreError
from cmf_core.model import Record
from cmf_core.openlineage.ingest import IngestResult, prepare
from cmf_core.server.errors import note_server_error
from cmf_core.store import Store

log = logging.getLogger("cmf.server")

Outcome = IngestResult | CmfError
"""What became of one event: its result, or the error that kept it out of the store."""

DEFAULT_MAX_BATCH = 512
DEFAULT_MAX_QUEUE = 20_000


@dataclass(frozen=True, slots=True)
class Prepared:
    """A valid event turned into its records (the raw event last), ready to be written."""

    records: list[Record]
    result: IngestResult


def prepare_one(event: Any, site: str) -> Prepared | CmfError:
    """``event`` validated and turned into its records, or the error that rejects it."""
    try:
        return Prepared(*prepare(event, site))
    except CmfError as e:
        return e


def write_prepared(items: Sequence[Prepared], store: Store) -> list[IngestResult]:
    """Write ``items`` (in order) with one ``put``; their results.

    Raises (``StoreError``) only when the ``put`` fails: then nothing was written.
    """
    records = [r for p in items for r in p.records]
    if records:
        store.put(records)
    return [p.result for p in items]


def ingest_batch(events: Sequence[Any], store: Store, site: str) -> list[Outcome]:
    """Ingest ``events`` in order with one ``store.put``; one outcome per event.

    Invalid events get their :class:`CmfError` (and store nothing); the valid ones are written
    together, exactly as :func:`~cmf_core.openlineage.ingest.ingest` one by one would write
    them. Raises (``StoreError``) only when the ``put`` itself fails: then nothing was written.
    """
    prepared = [prepare_one(e, site) for e in events]
    written = iter(write_prepared([p for p in prepared if isinstance(p, Prepared)], store))
    return [p if isinstance(p, CmfError) else next(written) for p in prepared]


class QueueFullError(StoreError):
    """The writer has more events waiting than it accepts; the client should retry later."""


@dataclass(slots=True)
class _Job:
    items: list[Prepared | CmfError]
    future: concurrent.futures.Future[list[Outcome]]


_STOP = object()


class IngestWriter:
    """The single writer thread of a server: group commit over a bounded queue.

    ``submit(events)`` validates and prepares the events in the calling thread (so invalid
    ones are answered at once and the CPU work overlaps the writer's database I/O), then
    returns a future resolved with one :data:`Outcome` per event once the batch holding them
    is durable. ``close(timeout)`` drains what is queued and stops.
    """

    def __init__(self, store: Store, site: str, max_batch: int = DEFAULT_MAX_BATCH,
                 max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.store = store
        self.site = site
        self.max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0
        self.events = 0
        self.largest_batch = 0

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="cmf-ingest-writer",
                                                daemon=True)
                self._thread.start()

    def close(self, timeout: float = -1) -> bool:
        """Stop after the queued events are written; True if it finished within ``timeout``."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return True
        self._queue.put(_STOP)
        thread.join(None if timeout < 0 else timeout)
        return not thread.is_alive()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # submitting ------------------------------------------------------------------------------
    def submit(self, events: Sequence[Any]) -> concurrent.futures.Future[list[Outcome]]:
        """Prepare ``events`` here; the future gives their outcomes once they are durable."""
        if self._closed:
            raise StoreError("the server is shutting down and takes no more events; retry "
                             "against the restarted server")
        items = [prepare_one(e, self.site) for e in events]
        future: concurrent.futures.Future[list[Outcome]] = concurrent.futures.Future()
        # running: a client that goes away cannot cancel it; its events are still written
        future.set_running_or_notify_cancel()
        if not any(isinstance(i, Prepared) for i in items):
            future.set_result(list(items))  # type: ignore[arg-type]
            return future
        self.start()
        try:
            self._queue.put_nowait(_Job(items, future))
        except queue.Full:
            raise QueueFullError(
                f"the server has {self._queue.maxsize} requests waiting to be written; retry "
                "in a moment") from None
        return future

    # the writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            jobs: list[_Job] = [first]
            count = len(first.items)
            while count < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stop = True
                    break
                jobs.append(job)
                count += len(job.items)
            try:
                self._write(jobs)
            except BaseException as e:  # never let the writer die with requests waiting
                log.exception("cmf server: writing a batch failed")
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(e)

    def _write(self, jobs: list[_Job]) -> None:
        items = [i for job in jobs for i in job.items if isinstance(i, Prepared)]
        started = time.perf_counter()
        try:
            written: list[Outcome] = list(write_prepared(items, self.store))
        except CmfError as e:  # the failing event, or the store, is said by _one
            log.debug("cmf server: batch of %d events failed (%s); writing them one by one",
                      len(items), e)
            written = [self._one(i) for i in items]
        self.batches += 1
        self.events += len(items)
        self.largest_batch = max(self.largest_batch, len(items))
        log.debug("cmf server: wrote %d events in %.1f ms", len(items),
                  (time.perf_counter() - started) * 1000)
        results = iter(written)
        for job in jobs:
            job.future.set_result([i if isinstance(i, CmfError) else next(results)
                                   for i in job.items])

    def _one(self, item: Prepared) -> Outcome:
        try:
            self.store.put(item.records)
        except CmfError as e:
            note_server_error(e)  # a store that fails: once in the server's log, not per event
            return e
        return item.result

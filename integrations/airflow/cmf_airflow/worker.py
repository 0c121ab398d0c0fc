"""One background worker thread per process for recording jobs (START events, DAG runs)."""

from __future__ import annotations

import atexit
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from cmf_core.guard import renew_after_fork

EXIT_FLUSH_S = 5.0
"""How long a process's exit waits for the jobs still queued (each bounded and spooled by the
emitter, which spools at once after a timeout)."""


class Background:
    """One daemon worker thread per process that runs recording jobs in order.

    Task processes give it their START events (recorded while the task runs), schedulers their
    DAG-run events (so the scheduler never waits on CMF). :meth:`submit` returns an event set
    when the job is done; :meth:`flush` waits (bounded) for everything submitted so far. A full
    queue runs the job in the caller's thread (still bounded and spooled by the emitter).
    :meth:`submit_later` queues a job after a delay (one timer thread for all of them).
    """

    def __init__(self, maxsize: int = 10_000) -> None:
        self._maxsize = maxsize
        self._fresh()
        self._at_exit = False
        renew_after_fork(self, Background._fresh)

    def _fresh(self) -> None:
        """A new queue, lock and no thread: in a forked child (a scheduler's or worker's task
        process), the parent's queued jobs are the parent's to run (run here too, they would
        be recorded twice), and a lock the parent's worker held at the fork would never be
        released."""
        import queue

        self._queue: queue.Queue[tuple[Callable[[], Any], threading.Event]] = \
            queue.Queue(self._maxsize)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._later: list[tuple[float, int, Callable[[], Any]]] = []  # (due, order, job)
        self._order = itertools.count()
        self._wake = threading.Condition(self._lock)
        self._timer: threading.Thread | None = None

    def submit(self, job: Callable[[], Any]) -> threading.Event:
        import queue

        done = threading.Event()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():  # first use
                self._thread = threading.Thread(target=self._run, name="cmf-recorder",
                                                daemon=True)
                self._thread.start()
                if not self._at_exit:  # a short-lived process (airflow dags test) would
                    self._at_exit = True  # drop what is queued with the daemon thread
                    atexit.register(self.flush, EXIT_FLUSH_S)
        try:
            self._queue.put_nowait((job, done))
        except queue.Full:
            self._do(job, done)
        return done

    def submit_later(self, delay: float, job: Callable[[], Any]) -> None:
        """Queue ``job`` once ``delay`` seconds have passed (or at :meth:`flush`)."""
        with self._lock:
            heapq.heappush(self._later, (time.monotonic() + delay, next(self._order), job))
            if self._timer is None or not self._timer.is_alive():
                self._timer = threading.Thread(target=self._tick, name="cmf-recorder-later",
                                               daemon=True)
                self._timer.start()
            self._wake.notify()

    def _tick(self) -> None:
        """The timer thread: hands each delayed job to the worker when it is due."""
        while True:
            with self._lock:
                while not self._later or self._later[0][0] > time.monotonic():
                    self._wake.wait(self._later[0][0] - time.monotonic() if self._later
                                    else None)
                job = heapq.heappop(self._later)[2]
            self.submit(job)

    def _due_now(self) -> None:
        """Queue every delayed job now (the process stops, or a caller waits for all)."""
        with self._lock:
            jobs = [job for _, _, job in sorted(self._later)]
            self._later.clear()
        for job in jobs:
            self.submit(job)

    @staticmethod
    def _do(job: Callable[[], Any], done: threading.Event) -> None:
        try:
            job()
        except BaseException as e:  # our own worker: nothing may escape it
            from cmf_core.guard import report

            report("recording in the background", e)
        finally:
            done.set()

    def _run(self) -> None:
        while True:
            job, done = self._queue.get()
            try:
                self._do(job, done)
            finally:
                self._queue.task_done()

    def flush(self, timeout: float = 10.0) -> bool:
        """True when everything submitted so far was recorded within ``timeout``; delayed
        jobs are run now (flushing is what a stopping process does)."""
        self._due_now()
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

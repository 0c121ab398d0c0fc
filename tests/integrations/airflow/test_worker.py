"""The background recorder of a process, across a real ``os.fork`` (a scheduler or worker
forking its task processes)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cmf_airflow.worker import Background


def test_a_forked_child_runs_only_its_own_jobs(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    busy, release = threading.Event(), threading.Event()
    bg = Background()

    def job(name: str) -> None:
        with ran.open("a") as fh:
            fh.write(f"{os.getpid()} {name}\n")

    def blocking() -> None:
        busy.set()
        release.wait(30)

    bg.submit(blocking)
    assert busy.wait(30)
    bg.submit(lambda: job("parent-1"))
    bg.submit(lambda: job("parent-2"))  # still queued when the process forks
    pid = os.fork()
    if pid == 0:  # the child: its own job runs, the parent's queued ones are not run again
        code = 1
        try:
            bg.submit(lambda: job("child"))
            code = 0 if bg.flush(30) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    release.set()
    assert bg.flush(30)
    assert os.waitstatus_to_exitcode(status) == 0
    lines = sorted(ran.read_text().splitlines())
    assert lines == sorted([f"{pid} child", f"{os.getpid()} parent-1",
                            f"{os.getpid()} parent-2"]), lines


def test_a_delayed_job_runs_by_itself_once_due() -> None:
    bg, done = Background(), threading.Event()
    bg.submit_later(0.05, done.set)
    assert done.wait(30)


def test_flush_runs_the_delayed_jobs_now_in_order() -> None:
    bg, ran = Background(), []
    bg.submit_later(3600, lambda: ran.append("late"))
    bg.submit_later(1800, lambda: ran.append("early"))
    assert bg.flush(30)  # a stopping process does not wait an hour, nor drops them
    assert ran == ["early", "late"]
    assert bg.flush(1) and ran == ["early", "late"]  # each ran once

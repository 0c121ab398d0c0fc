"""The companion process of a bulk writer: it applies the SQLite store's journal on another core.

A process that puts faster than ``JOURNAL_BATCH`` executions a second (2,048) starts one
companion per store (``python -m cmf_core.store.companion``, the store on its first input
line): from then on its own
thread only records and appends to its journal file, and the companion applies the journal (the
writer's file and any other process's) each time the writer writes a byte to its standard input,
and once more when that pipe closes (the writer closed the store or died) or after a minute
without a request, then exits. Applying stays exactly-once whoever does it
(``cmf_journal_files``); the writer applies itself again if the companion cannot start, dies,
or lags more than ``COMPANION_BACKLOG`` bytes behind.

Set ``CMF_JOURNAL_COMPANION=false`` (setting ``journal_companion``) to keep applying in the
writing process.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from cmf_core.guard import report
from cmf_core.store.bulk import apply_journal, connect
from cmf_core.store.journal import journal_dir

COMPANION_BACKLOG = 32 * 1024 * 1024  # journal bytes the companion may lag behind the writer
STOP_WAIT_S = 120.0  # how long closing the store waits for the companion's last apply
IDLE_EXIT_S = 60.0  # a companion not asked to apply for this long exits


class Companion:
    """The writer's handle on its companion process."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    @classmethod
    def start(cls, db: Path, synchronous: str, sql: dict[str, str]) -> Companion | None:
        """Start the companion of the store at ``db`` (its upserts ``sql``); None (and a
        warning) if it cannot."""
        root = str(Path(__file__).resolve().parents[2])  # where this cmf_core is importable
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        header = json.dumps({"db": str(db), "synchronous": synchronous, "sql": sql,
                             "idle_exit_s": IDLE_EXIT_S}) + "\n"
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cmf_core.store.companion"], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, env=env, close_fds=True,
                start_new_session=True)  # Ctrl-C in a terminal goes to the writer only
            assert proc.stdin is not None
            proc.stdin.write(header.encode())
            proc.stdin.flush()
        except Exception as e:  # never the writer's problem: it applies itself
            report("starting the journal companion process (applying in this process)", e)
            return None
        return cls(proc)

    def idle_exit(self) -> bool:
        """Whether it ended by itself, all applied (idle for ``IDLE_EXIT_S``)."""
        return self.proc.poll() == 0

    def signal(self) -> bool:
        """Ask it to apply; False if it is gone."""
        if self.proc.poll() is not None or self.proc.stdin is None:
            return False
        try:
            self.proc.stdin.write(b".")
            self.proc.stdin.flush()
        except (OSError, ValueError):  # gone, or its pipe closed
            return False
        return True

    def release(self) -> None:
        """In a forked child: close this copy of the pipe (the parent's copy keeps it open)."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # nothing buffered: every signal is flushed

    def stop(self, wait_s: float = STOP_WAIT_S, kill: bool = True) -> None:
        """Close its pipe and wait ``wait_s`` for its last apply; then kill it, or with
        ``kill=False`` leave it to finish that apply on its own (its own session)."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            if kill:
                self.proc.kill()
                self.proc.wait()


def main() -> int:
    """Read the store (one JSON line), then apply its journal now, on every byte read from
    standard input, and once more when it ends or after ``IDLE_EXIT_S`` without one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the writer decides when this ends
    spec = json.loads(sys.stdin.buffer.readline())
    db = Path(spec["db"])
    conn = connect(db, spec["synchronous"])
    try:
        while True:
            try:
                apply_journal(conn, spec["sql"], journal_dir(db))
            except Exception as e:  # the writer applies what is left when it closes
                report(f"applying the journal of {db} in the companion process", e)
            ready, _, _ = select.select([0], [], [], spec["idle_exit_s"])
            if not ready or not os.read(0, 65536):
                # the writer closed the pipe (or died), or went quiet: a last apply, then exit
                # (a writer that puts in bulk again starts a new companion)
                apply_journal(conn, spec["sql"], journal_dir(db))
                return 0
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())

"""A real PostgreSQL server for tests and benchmarks, started in a temporary folder.

Uses the server binaries of Debian's ``postgresql`` package (``make test`` installs it). The
server runs as the unprivileged ``postgres`` user via ``runuser`` when we are root, because
PostgreSQL refuses to run as root. Authentication is ``trust`` on 127.0.0.1 only.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if (Path(c) / "pg_ctl").exists():
            return Path(c)
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and PATH); "
        "install Debian's 'postgresql' package (make test does this with apt-get)"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempPostgres:
    """initdb + pg_ctl in a temp dir; ``url(db)`` gives a SQLAlchemy URL."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="cmf-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        self._counter = 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> TempPostgres:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  "postgres", "--no-sync", "-E", "UTF8")
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c fsync=on -c max_connections=200")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "log"), "-o", opts, "-w", "-t", "60", "start")
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not start; log: {(self.root / 'log').read_text()}")

    def create_database(self, name: str | None = None) -> str:
        import psycopg

        if name is None:
            self._counter += 1
            name = f"cmf_test_{os.getpid()}_{self._counter}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        """Stop the server and delete its folder. ``immediate``: the data is thrown away, so the
        shutdown checkpoint of a ``fast`` stop (every dirty page of every test database written
        and fsynced: 11 s at the end of ``make test``, minutes on a busy disk) buys nothing."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                  "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

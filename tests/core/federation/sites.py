"""Real sites for federation tests: each a ``cmf serve``-equivalent process on a loopback port
with its own SQLite store, plus helpers to record into a store and compare stores.

A site is started as ``python -c`` running ``create_app(store, settings)`` under uvicorn (what
``cmf serve`` does), because the federation settings it needs (peer tokens, sharing policy,
artifact roots) are passed as explicit settings the environment cannot carry yet.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cmf_core.config import Settings
from cmf_core.federation.export import canonical_lines
from cmf_core.store import Store, open_store
from tests.support.postgres import free_port

ROOT = Path(__file__).resolve().parents[3]

class SiteSettings(Settings):
    """Settings with the federation keys, until cmf_core.config has them (same names, types and
    meaning as proposed to the lead; see docs/federation.md)."""

    federation_share_pipelines: list[str] | None = None
    federation_peer_pipelines: dict[str, list[str]] = {}
    federation_peer_tokens: dict[str, str] = {}
    federation_artifact_roots: list[str] = []
    federation_tokens: dict[str, str] = {}


def site_settings(**values: Any) -> Settings:
    """``Settings`` with the federation keys: the real class once it has them."""
    cls = Settings if all(k in Settings.model_fields for k in values) else SiteSettings
    return cls(**values)


SERVER = textwrap.dedent("""
    import json, sys
    import uvicorn
    from cmf_core.server.app import create_app
    from cmf_core.store import open_store
    from tests.core.federation.sites import site_settings

    cfg = json.loads(sys.argv[1])
    settings = site_settings(**cfg["settings"])
    with open_store(settings=settings) as store:
        app = create_app(store, settings)
        uvicorn.run(app, host="127.0.0.1", port=cfg["port"], log_level="warning")
""")


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    out["PYTHONPATH"] = str(ROOT)
    return out


@dataclass
class Site:
    """One site: a store file and (when started) a server process over it."""

    name: str
    folder: Path
    token: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.folder / 'cmf.db'}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> Store:
        return open_store(self.store_url, site=self.name)

    def start(self) -> Site:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        cfg = {"port": self.port, "settings": {
            "site": self.name, "store_url": self.store_url, "home": str(self.folder / "home"),
            "token": self.token, "energy": False, **self.settings}}
        log = (self.folder / "server.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(cfg)], env=env(),
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"site {self.name} exited: "
                                   f"{(self.folder / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=2).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"site {self.name} did not start")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the server dies mid-whatever, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


RECORDER = textwrap.dedent("""
    import sys
    from cmf_core import Cmf
    from cmf_core.model import EnergyRecord
    url, site, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cmf = Cmf(pipeline_name="shared", store=url, site=site, measure_energy=False)
    for i in range(n):
        with cmf.create_execution("train", params={"site": site, "i": i}) as ex:
            ex.log_dataset("s3://bucket/common.csv", "input", version="1")
            ex.log_model(f"s3://models/{site}/{i}.pkl", "output", version="1")
            ex.log_execution_metrics("eval", {"score": i / 10})
            cmf.log_energy(EnergyRecord(ex.id, site, 0.001 * (i + 1), 0.0005 * (i + 1),
                                        {"method": "test"}))
    cmf.close()
""")


def start_recorder(site: Site, n: int) -> subprocess.Popen[bytes]:
    """A process recording ``n`` executions into the site's store through the Cmf API."""
    return subprocess.Popen([sys.executable, "-c", RECORDER, site.store_url, site.name, str(n)],
                            env=env(), stderr=subprocess.PIPE)


def dump(store: Store) -> list[str]:
    return canonical_lines(store)


class CuttingProxy:
    """A TCP proxy to a site that cuts every connection once ``cut_after`` response bytes have
    passed on it: a transfer interrupted mid-stream, deterministically."""

    def __init__(self, target_port: int, cut_after: int) -> None:
        import socket
        import threading

        self.target_port = target_port
        self.cut_after = cut_after
        self.cuts = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._stop = False
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import socket
        import threading

        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for src, dst, limit in ((client, upstream, None), (upstream, client, self.cut_after)):
                threading.Thread(target=self._pipe, args=(src, dst, limit, client, upstream),
                                 daemon=True).start()

    def _pipe(self, src: Any, dst: Any, limit: int | None, *both: Any) -> None:
        passed = 0
        try:
            while data := src.recv(65536):
                data, stop = self._alter(data, passed, limit)
                passed += len(data)
                dst.sendall(data)
                if stop:
                    break
        except OSError:
            pass
        for s in both:
            with contextlib.suppress(OSError):
                s.shutdown(2)
            s.close()

    def _alter(self, data: bytes, passed: int, limit: int | None) -> tuple[bytes, bool]:
        """What to forward of ``data`` (after ``passed`` bytes), and whether to cut there."""
        if limit is not None and passed + len(data) > limit:
            self.cuts += 1
            return data[: limit - passed], True
        return data, False

    def close(self) -> None:
        self._stop = True
        self.sock.close()


class CorruptingProxy(CuttingProxy):
    """A TCP proxy that changes one byte of the response stream of each connection, once
    ``cut_after`` bytes have passed (a page damaged in transit), and passes the rest."""

    def _alter(self, data: bytes, passed: int, limit: int | None) -> tuple[bytes, bool]:
        if limit is not None and passed <= limit < passed + len(data):
            i = limit - passed
            data = data[:i] + bytes([data[i] ^ 1]) + data[i + 1:]
            self.cuts += 1
        return data, False

"""Emitter: the one way integrations hand OpenLineage RunEvents to CMF.

``Emitter.emit(event)`` sends the event to its sink (the local store by default, or a CMF server
when ``CMF_SERVER_URL`` is set) within ``CMF_HOOK_TIMEOUT_S``. If the sink fails or overruns,
the event is written to the spool folder (temp file, fsync, rename) and retried later:
by the next emitter in any process (``retry_spool`` runs at start-up), or by
``cmf spool retry``. Ingest is idempotent, so a retry of an event that did land changes nothing.
An event the sink refuses as invalid (a validation error, or HTTP 400/413/422 from a server;
the HTTP sink refuses a runId that is not a UUID itself, so even while the server is down) and
a spool file that cannot be read (torn by a crash) go to ``rejected/``, with a ``.reason`` file
when replayed; only failures of the sink itself (down, 5xx, too slow) keep events waiting.
A replay ends at the timeout too; one that sent events by then was slow (a busy server), not
stuck, and leaves the rest for the next replay without tripping the back-off below.
After the sink overran the timeout, the process's events go straight to the spool for
:data:`SINK_BACKOFF_S`, so a stuck store costs a task one timeout, not one per event; the
overrun is also noted in the spool folder (``.backoff.<target key>``), so the tasks that start
in other processes during that time spool at once too, instead of each paying the timeout.
Nothing is lost and nothing raises into the caller: ``emit`` returns ``False`` instead.

A sink has ``kind``, ``send(event_dict)`` (raise on failure) and ``close()``.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from cmf_core import jsonutil
from cmf_core.config import Settings, load_settings
from cmf_core.errors import InvalidEventError, InvalidInputError
from cmf_core.guard import FAILURES, Repeats, Timeout, report, run_bounded
from cmf_core.identity import check_uuid
from cmf_core.task_values import hide_password, sensitive

log = logging.getLogger("cmf")

#: HTTP answers that refuse the event itself (bad request, too large, unprocessable)
REFUSED = frozenset({400, 413, 422})
#: after the sink overran ``hook_timeout_s``, this process's events go straight to the spool for
#: this long: a stuck store or server must not cost every later event the whole timeout again
SINK_BACKOFF_S = 30.0


def spool_target(settings: Settings) -> str:
    """Where the events of ``settings`` go: the server URL, else the store URL, in its
    canonical spelling (:func:`canonical_target`: no password)."""
    return canonical_target(hide_password(settings.server_url or settings.resolved_store_url))


#: the ports a URL of these schemes means when it names none
_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432}


def _secret_query(name: str) -> bool:
    """Whether URL query parameter ``name`` carries a secret (``password``, ``sslpassword``,
    ``token``): it is left out of a target's canonical spelling."""
    return sensitive(name) or re.search(r"passw(?:or)?d", name, re.IGNORECASE) is not None


def canonical_target(url: str) -> str:
    """``url`` spelled so that every process naming one store or server gets one spool key
    (:func:`target_key`), whatever its spelling:

    * a ``sqlite:///`` store's file as its absolute, canonical path (``~`` expanded, a
      relative path resolved against the current folder, symbolic links and ``..`` resolved:
      ``CMF_HOME=.cmf``, ``sqlite:///cmf.db``);
    * a server URL (``http``/``https``) with scheme and host in lower case, without the
      default port (80, 443), a trailing ``/``, a password or a secret query parameter
      (``http://H:80/`` is ``http://h``);
    * a database URL without the driver (``postgresql+psycopg://`` is ``postgresql://``),
      the password (in the URL or as ``?password=``) and the default port (5432), the host in
      lower case.

    A URL that cannot be parsed is returned as it is."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("http", "https"):
        return _canonical_server(url)
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
        backend = parsed.get_backend_name()
    except (sa.exc.ArgumentError, ValueError):
        return url
    if backend == "sqlite":
        return _canonical_sqlite(url, parsed)
    host = parsed.host
    if host and not host.startswith("/"):  # not a socket folder
        host = host.lower()
    port = None if parsed.port == _DEFAULT_PORTS.get(backend) else parsed.port
    query = {k: v for k, v in parsed.query.items() if not _secret_query(k)}
    return sa.engine.URL.create(backend, parsed.username, None, host, port, parsed.database,
                                query).render_as_string(hide_password=False)


def _canonical_sqlite(url: str, parsed: Any) -> str:
    db = parsed.database
    if db in (None, "", ":memory:") or db.startswith("file:"):
        return url
    try:
        path = os.path.realpath(os.path.expanduser(db))
    except (OSError, ValueError, RuntimeError):  # no current folder, a NUL byte: as it is
        return url
    if path == db:
        return url
    return parsed.set(database=path).render_as_string(hide_password=False)


def _canonical_server(url: str) -> str:
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return url
    if not host:
        return url
    scheme = parts.scheme.lower()
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = urllib.parse.urlencode(
        [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
         if not _secret_query(k)])
    return urllib.parse.urlunsplit((scheme, netloc, parts.path.rstrip("/"), query, ""))


def target_key(target: str) -> str:
    """The short key of ``target`` that its spool files carry: ``<time>-<digest>.<key>.json``."""
    return hashlib.sha256(target.encode("utf-8", "backslashreplace")).hexdigest()[:12]


def spool_file_key(path: Path) -> str:
    """The target key a spool file's name carries (``<time>-<digest>.<key>.json``); ``""``
    for a file written before spool files named their target (``<name>.json``)."""
    parts = path.name.split(".")
    return parts[-2] if len(parts) > 2 else ""


def own_keys(spool_dir: Path, target: str) -> set[str]:
    """The keys of the spool files in ``spool_dir`` bound for ``target`` (as
    :func:`spool_target` gives it): its own key, and the keys of other spellings of it that
    spool files were named by (before targets were made canonical: a relative path, resolved
    against the current folder, as the process that wrote it would have replayed it)."""
    keys = {target_key(target)}
    folder = spool_dir / "targets"
    if not folder.is_dir():
        return keys
    for p in folder.iterdir():
        if p.name in keys or not p.is_file():
            continue
        try:
            url = p.read_text(encoding="utf-8").strip()
        except (OSError, ValueError):  # unreadable here: its files stay under their own name
            continue
        if url != target and canonical_target(url) == target:
            keys.add(p.name)
    return keys


def write_spool_file(folder: Path, data: dict[str, Any], target: str,
                     durable: bool = True) -> Path:
    """Write ``data``, bound for ``target``, into ``folder`` as a new spool file: temp file,
    fsync (``durable``), rename, so a crash leaves either the whole file or none. The target's
    URL is kept in ``<spool>/targets/<key>`` for ``cmf spool status``."""
    key = target_key(target)
    root = folder.parent if folder.name == "rejected" else folder
    named = root / "targets" / key
    if not named.is_file():
        named.parent.mkdir(parents=True, exist_ok=True)
        named.write_text(target + "\n", encoding="utf-8", errors="backslashreplace")
    folder.mkdir(parents=True, exist_ok=True)
    body = jsonutil.dumps(jsonutil.valid_texts(data)).encode("utf-8", "backslashreplace")
    name = f"{time.time_ns()}-{hashlib.sha256(body).hexdigest()[:16]}.{key}.json"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as f:
        f.write(body)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, folder / name)
    return folder / name


class Sink(abc.ABC):
    kind: ClassVar[str]

    @abc.abstractmethod
    def send(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class StoreSink(Sink):
    """Ingest into the configured CMF store (opened on first use)."""

    kind = "store"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Any = None
        self._lock = threading.Lock()

    def store(self) -> Any:
        """The store (opened now if it is not open)."""
        if self._store is None:
            from cmf_core.store import open_store

            self._store = open_store(settings=self.settings)
        return self._store

    def send(self, event: dict[str, Any]) -> None:
        from cmf_core.openlineage.ingest import ingest

        with self._lock:
            ingest(event, self.store(), self.settings.site)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


class HttpSink(Sink):
    """POST to a CMF server's OpenLineage endpoint (``/api/v1/lineage``)."""

    kind = "http"

    def __init__(self, settings: Settings) -> None:
        import httpx

        assert settings.server_url
        headers = {"Content-Type": "application/json"}
        if settings.server_token:
            headers["Authorization"] = f"Bearer {settings.server_token}"
        self._client = httpx.Client(base_url=settings.server_url.rstrip("/"), headers=headers,
                                    timeout=settings.hook_timeout_s)

    def send(self, event: dict[str, Any]) -> None:
        run = event.get("run")
        try:  # the server's first check, here: a bad id is refused even while it is down
            check_uuid(run.get("runId") if isinstance(run, dict) else None, "run.runId")
        except InvalidInputError as e:
            raise InvalidEventError(f"{e}; a CMF server refuses it (HTTP 400)") from None
        r = self._client.post("/api/v1/lineage", content=jsonutil.dumps(event))
        if r.status_code in REFUSED:  # the event itself is bad: a retry gets the same answer
            raise InvalidEventError(f"{self.kind} sink refused the event ({r.status_code}): "
                                    f"{r.text[:500]}")
        r.raise_for_status()

    def close(self) -> None:
        self._client.close()


#: spooled events one replay sends at most (the rest wait for the next, or ``cmf spool retry``)
REPLAY_LIMIT = 100


class _ReplayRun:
    """A bounded replay's state, shared with the thread that runs it: when it must end, whether
    its caller stopped waiting, and how many events it sent (0 at the bound: a stuck sink)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.stop = False
        self.sent = 0


class Emitter:
    """Send events to a sink, spooling what cannot be sent now."""

    def __init__(self, settings: Settings | None = None, sink: Sink | None = None) -> None:
        self.settings = settings or load_settings()
        self.sink = sink or (HttpSink(self.settings) if self.settings.server_url
                             else StoreSink(self.settings))
        self.spool_dir = Path(os.path.abspath(self.settings.spool_path))
        self.target = spool_target(self.settings)
        self.key = target_key(self.target)
        self.sent = 0
        self.spooled = 0
        self._kept_since_replay = False  # spooled here since the last replay
        # a WARNING said that this emitter spools and how the events get recorded (once until
        # the sink takes an event again)
        self._told = False
        # the failures said at WARNING, the same again logged at DEBUG: the sink's for an event
        # spooled ("sink") or one that could not be spooled either ("lost"), and the spool's
        # ("spool": a read-only home in a container fails every event the same way)
        self._repeats = Repeats()
        # monotonic time until which events skip the sink (see emit): this emitter's own overrun
        # (``overran_until``, which ``close`` heeds) or another process's recent one (its note)
        self.overran_until = 0.0
        self.stuck_until = self._shared_backoff()
        self._noted = self.stuck_until > 0  # a note of this sink exists: remove it once it works
        if self._noted:  # its first event spooled so is said at WARNING (see _emit)
            log.debug("cmf: the %s sink overran its timeout in another process moments ago; this "
                     "process's events are spooled without waiting for %.0f s more",
                     self.sink.kind, self.stuck_until - time.monotonic())

    # sending ---------------------------------------------------------------------------------
    def emit(self, event: Any, ahead: Path | None = None) -> bool:
        """Record ``event`` now if possible, else spool it. Never raises.

        ``ahead``: a spool file the caller already wrote with this event (a write-ahead copy,
        for a process killed before the event is sent). It is deleted once the event is
        recorded or set aside in ``rejected/``, and it is the spooled copy when the event
        is spooled (no second one, and none lost if a second write would fail). While it is
        sent it is claimed as a replay claims it: a copy another process is replaying now (one
        that started meanwhile) or has replayed is left to it, not sent a second time."""
        if ahead is None:
            return self._emit(event, None)
        try:
            claimed = _claim(ahead)
        except OSError:  # unreadable now: sent unclaimed (and a new copy spooled on failure)
            return self._emit(event, ahead)
        if claimed is None:  # another process's replay has it, or has sent it already
            return False
        with claimed:
            return self._emit(event, ahead)

    def _emit(self, event: Any, ahead: Path | None) -> bool:
        try:
            # here, not at import: the OpenLineage client it needs takes half a second to load,
            # which a Cmf that only checks its spool folder (most) must not pay
            from cmf_core.openlineage.convert import event_to_dict

            data = jsonutil.valid_texts(event_to_dict(event))  # no store takes lone surrogates
        except Exception as e:
            report("converting an OpenLineage event", e)
            return False
        if time.monotonic() < self.stuck_until:  # the sink just overran: spool, do not wait
            if self._keep(data, ahead) is not None and not self._told:
                # the first event of this process spooled so: said once at WARNING, not silent
                self._told = True
                log.warning(
                    "cmf: the %s sink overran its %.1f s timeout moments ago (in this or another "
                    "process), so this process's events are spooled without waiting until %s. "
                    "This has no impact on the task itself; %s.", self.sink.kind,
                    self.settings.hook_timeout_s,
                    time.strftime("%H:%M:%S UTC", time.gmtime(
                        time.time() + self.stuck_until - time.monotonic())),
                    self._how_sent())
            return False
        try:
            run_bounded(lambda: self.sink.send(data), self.settings.hook_timeout_s,
                        f"recording to the {self.sink.kind} sink")
            self.sent += 1
            self._told = False
            self._repeats.forget("sink", "lost")
            self._works()
            if ahead is not None:
                ahead.unlink(missing_ok=True)
            if self._kept_since_replay:  # the sink works again: what this process spooled goes
                self.replay()
            return True
        except Timeout as e:
            self.back_off()
            kept = self._keep(data, ahead)
            self._told = self._told or kept is not None
            report(f"recording to the {self.sink.kind} sink", e,
                   f"the event is spooled for retry, and so are the events of the next "
                   f"{SINK_BACKOFF_S:.0f} s (of any process with this spool folder) without "
                   f"waiting; {self._how_sent()}" if kept else "")
            return False
        except InvalidEventError as e:
            kept = self._keep(data, ahead, rejected=True)
            report("validating an OpenLineage event", e,
                   f"the event is kept in {kept.parent}, not retried" if kept else "")
            return False
        except Exception as e:
            kept = self._keep(data, ahead)
            where = f"recording to the {self.sink.kind} sink"
            if self._said_before("sink" if kept else "lost", where, e):
                return False
            self._told = self._told or kept is not None
            report(where, e, f"the event is spooled for retry; {self._how_sent()} (this failure "
                             "again is logged at DEBUG)" if kept else "")
            return False

    def _said_before(self, kind: str, where: str, e: Exception) -> bool:
        """Whether ``e`` failed ``where`` as the failure of ``kind`` last said at WARNING (with
        what to do), the sink having taken no event since: then it is only counted and logged
        at DEBUG, as one message per event (at INFO, the level Airflow and KFP executors log
        at) floods the log of a long run while a server is down. Else it is the one said."""
        failure = f"{type(e).__name__}: {e}"
        if not self._repeats.seen(kind, failure):
            return False
        FAILURES[where] += 1
        log.debug("cmf: %s failed again (%s)%s", where, failure,
                  "; the event is spooled for retry" if kind == "sink" else "")
        return True

    def _how_sent(self) -> str:
        """How the events this emitter spools get recorded, for its messages."""
        return (f"spooled events wait in {self.spool_dir} until the next cmf task, `Cmf` or "
                f"emitter that starts while {self.target} works records them, or `cmf spool "
                "retry` does now")

    def replay_after_next_send(self) -> None:
        """Replay the events waiting in the spool for this emitter's target once it records an
        event: for an emitter made without the start-up replay (the OpenLineage transport's),
        so what an earlier process spooled does not wait for `cmf spool retry`."""
        self._kept_since_replay = True

    def replay(self, limit: int = REPLAY_LIMIT) -> None:
        """Send up to ``limit`` spooled events again, within ``CMF_HOOK_TIMEOUT_S``, unless the
        sink is known to be stuck (this emitter's overrun or another process's); never raises.
        Runs when an emitter is made, when a long-lived one records again after spooling, and
        for each new ``Cmf`` logger of a store with events waiting."""
        if time.monotonic() < max(self.stuck_until, self._shared_backoff()):
            return
        self._kept_since_replay = False
        bound = self.settings.hook_timeout_s
        run = _ReplayRun(deadline=time.monotonic() + bound)
        try:
            if self.spooled_files():
                run_bounded(lambda: self.retry_spool(limit=limit, run=run), bound,
                            "replaying the spool")
        except Timeout as e:
            run.stop = True  # the replay ends with the send it is in; the rest wait
            if run.sent:  # slow but progressing (a busy server): not stuck, no back-off
                log.info("cmf: replaying the spool reached its %.1f s bound after sending %d "
                         "event(s); the rest wait for the next replay (or `cmf spool retry`)",
                         bound, run.sent)
                return
            self.back_off()  # nothing sent within the bound: the sink is stuck
            self._told = True  # said here, with what to do: not again for the events skipped
            report("replaying the spool", e,
                   f"the spooled events, and the events of the next {SINK_BACKOFF_S:.0f} s (of "
                   f"any process with this spool folder), stay spooled; {self._how_sent()}")
        except Exception as e:
            report("replaying the spool", e)

    def back_off(self) -> None:
        """The sink overran the timeout: skip it for :data:`SINK_BACKOFF_S` in this process, and
        note it in the spool folder for the processes that start meanwhile (never raises)."""
        self.stuck_until = self.overran_until = time.monotonic() + SINK_BACKOFF_S
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            tmp = (self.spool_dir
                   / f".backoff.{self.key}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(f"{time.time() + SINK_BACKOFF_S:.3f}\n", encoding="utf-8")
            os.replace(tmp, self._backoff_path())
            self._noted = True
        except Exception as e:
            report("noting a stuck sink in the spool folder", e)

    def _works(self) -> None:
        """The sink took an event: a note of its overrun, if this emitter knows of one, goes."""
        if self._noted:
            self._noted = False
            with contextlib.suppress(OSError):
                self._backoff_path().unlink(missing_ok=True)

    def _backoff_path(self) -> Path:
        return self.spool_dir / f".backoff.{self.key}"

    def _shared_backoff(self) -> float:
        """The monotonic time until which another process's overrun of this sink holds (0: none
        or expired). A note further ahead than :data:`SINK_BACKOFF_S` (the wall clock moved
        back) is ignored."""
        try:
            until = float(self._backoff_path().read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return 0.0
        left = until - time.time()
        return time.monotonic() + left if 0 < left <= SINK_BACKOFF_S else 0.0

    def backoff_until(self) -> float | None:
        """The wall-clock time until which a note in the spool folder has this target's events
        spooled without trying the sink (see :meth:`back_off`), or None (no note, or expired)."""
        left = self._shared_backoff() - time.monotonic()
        return time.time() + left if left > 0 else None

    def spool(self, data: dict[str, Any], rejected: bool = False) -> Path | None:
        """Write ``data`` to the spool folder for a later retry (atomic; never raises)."""
        folder = self.spool_dir / ("rejected" if rejected else "")
        try:
            path = write_spool_file(folder, data, self.target)
            self.spooled += 1
            self._repeats.forget("spool")
            return path
        except Exception as e:  # last resort: the event goes to the log so it is not lost
            # said at WARNING for the first event only: one message per event would flood
            if not self._said_before("spool", "spooling an event", e):
                report("spooling an event", e, (
                    "events this process cannot record are not kept: set CMF_SPOOL_DIR (or "
                    "CMF_HOME) to a writable folder; each is logged as 'cmf: unspooled event' "
                    "(this failure again is logged at DEBUG)" if isinstance(e, OSError) else
                    "it is logged as 'cmf: unspooled event'"))
            try:
                text = jsonutil.dumps(data)
            except Exception as e2:  # not serialisable (a reference loop): its type at least
                text = f"<not serialisable: {type(e2).__name__}>"
            # always at WARNING: the log is this event's last copy, which a default log level
            # must not drop (only the messages about the failure are said once)
            log.warning("cmf: unspooled event: %s", text)
            return None

    def _keep(self, data: dict[str, Any], ahead: Path | None,
              rejected: bool = False) -> Path | None:
        """Spool ``data`` (see :meth:`emit`): the write-ahead copy ``ahead`` when it is still
        there (made durable now), else a new spool file; one in ``rejected/`` replaces it."""
        if ahead is not None and not rejected:
            try:
                with open(ahead, "rb+") as f:
                    os.fsync(f.fileno())
                self.spooled += 1
                self._kept_since_replay = True
                return ahead
            except FileNotFoundError:  # another process replayed it meanwhile: handled
                return None
            except OSError:  # unreadable: a new copy
                pass
        kept = self.spool(data, rejected)
        if kept is not None and ahead is not None:
            ahead.unlink(missing_ok=True)
        if kept is not None and not rejected:
            self._kept_since_replay = True
        return kept

    def spooled_files(self, from_target: str | None = None) -> list[Path]:
        """Spool files waiting for this emitter's target (oldest first): its own, and those
        written before spool files named their target (``<time>-<digest>.json``). With
        ``from_target`` (a store or server URL, or its key), that target's files instead."""
        if not self.spool_dir.is_dir():
            return []
        if from_target is None:
            keys = own_keys(self.spool_dir, self.target) | {""}  # "": files naming no target
            return sorted(p for p in self.spool_dir.glob("*.json")
                          if spool_file_key(p) in keys and p.is_file())
        keys = self._keys_of(from_target)
        return sorted(p for p in self.spool_dir.glob("*.*.json")
                      if spool_file_key(p) in keys and p.is_file())

    def _keys_of(self, target: str) -> set[str]:
        """The keys of a target given as its key, or as its URL (as ``cmf spool status`` shows
        it, a password as ``***``, or with the password; then the keys of its other spellings
        too, see :func:`own_keys`)."""
        if (self.spool_dir / "targets" / target).is_file():
            return {target}
        shown = hide_password(target)
        listed = {key for key, url in self.spool_targets().items() if url == shown}
        return listed | own_keys(self.spool_dir, canonical_target(shown))

    def spool_targets(self) -> dict[str, str]:
        """Key -> URL of every target this spool folder has held events for."""
        folder = self.spool_dir / "targets"
        return {p.name: p.read_text(encoding="utf-8").strip()
                for p in (folder.glob("*") if folder.is_dir() else ()) if p.is_file()}

    def knows_target(self, target: str) -> bool:
        """Whether events were ever spooled here for ``target`` (its URL or key)."""
        keys = self._keys_of(target)
        return not keys.isdisjoint(self.spool_targets()) or any(
            folder.is_dir() and any(spool_file_key(p) in keys for p in folder.glob("*.*.json"))
            for folder in (self.spool_dir, self.spool_dir / "rejected"))

    def retry_spool(self, limit: int | None = None, from_target: str | None = None,
                    run: _ReplayRun | None = None) -> tuple[int, int]:
        """Send spooled events again, oldest first; returns (sent, still spooled).

        ``from_target`` replays the events spooled for another store or server into this
        emitter's (a store that moved, a server replaced by a local store).
        A file that is not a JSON object (torn by a crash) or that the sink refuses as invalid
        moves to ``rejected/`` with a ``.reason`` file beside it; one this process cannot
        read (another user's, an I/O error) stays and is passed over; any other failure is the
        sink's (down, overloaded, slow) and stops the replay, keeping the rest for later.
        Each file is claimed (``flock``) while it is sent, so processes replaying one spool
        folder at once pass over each other's files instead of sending them twice.
        ``run`` (a bounded replay's, see :meth:`replay`): no file is started once its
        deadline has passed or it is stopped, and each event sent is counted in it."""
        sent = handled = 0
        stop = False
        for path in self.spooled_files(from_target):
            if stop or (limit is not None and handled >= limit):
                break
            if run is not None and (run.stop or time.monotonic() >= run.deadline):
                break  # the bound is reached: the rest wait for the next replay
            try:
                claimed = _claim(path)
            except OSError as e:  # another user's, or an I/O error: kept, the rest go on
                report("replaying a spooled event", e,
                       f"{path.name} stays in {self.spool_dir} for a process that can read it")
                continue
            if claimed is None:  # replayed meanwhile, or being replayed, by another process
                continue
            with claimed:  # the claim holds until the file is deleted or moved aside
                outcome = self._replay_one(path, claimed)
            handled += 1
            sent += outcome == "sent"
            if run is not None and outcome == "sent":
                run.sent += 1
            stop = outcome == "stop"
        if sent and from_target is None:
            self._works()
            self._told = False  # the sink works: a new outage is said
            self._repeats.forget("sink")
        return sent, len(self.spooled_files(from_target))

    def _replay_one(self, path: Path, f: Any) -> str:
        """Send the spool file ``path`` (open as ``f``, claimed): "sent", "kept" (set aside,
        or unreadable here) or "stop" (the sink failed: it and the rest stay spooled)."""
        try:
            data = json.loads(f.read())
            if not isinstance(data, dict):
                raise InvalidEventError(f"a JSON {type(data).__name__}, not an object")
        except OSError as e:  # an I/O error: kept, the rest go on
            report("replaying a spooled event", e,
                   f"{path.name} stays in {self.spool_dir} for a process that can read it")
            return "kept"
        except (ValueError, InvalidEventError) as e:  # torn, empty or not JSON
            self._reject(path, InvalidEventError(f"{path.name} is unreadable: {e}"))
            return "kept"
        try:
            self.sink.send(data)
        except InvalidEventError as e:
            self._reject(path, e)
            return "kept"
        except Exception as e:  # the sink's own failure: said once, as for an event sent
            if not self._said_before("sink", "replaying a spooled event", e):
                self._told = True
                report("replaying a spooled event", e, "it and the rest stay spooled for "
                       f"retry; {self._how_sent()} (this failure again is logged at DEBUG)")
            return "stop"
        path.unlink(missing_ok=True)
        return "sent"

    def spool_counts(self) -> list[tuple[str, str, int, int]]:
        """(target, key, waiting, rejected) for every target with spool files, the files of
        another spelling of this emitter's target (see :func:`own_keys`) counted as its own;
        ``"(not named)"`` (key ``""``) for files written before spool files named their target
        (replayed into any)."""
        names = self.spool_targets()
        own = own_keys(self.spool_dir, self.target)
        counts: dict[tuple[str, str], list[int]] = {}
        for i, folder in enumerate((self.spool_dir, self.spool_dir / "rejected")):
            for p in folder.glob("*.json") if folder.is_dir() else ():
                key = spool_file_key(p)
                if key in own:
                    target, key = self.target, self.key
                else:
                    target = names.get(key, f"(unknown {key})") if key else "(not named)"
                counts.setdefault((target, key), [0, 0])[i] += 1
        return [(t, k, w, r) for (t, k), (w, r) in sorted(counts.items())]

    def rejected_files(self) -> list[Path]:
        """Spool files of this emitter's target set aside in ``rejected/``."""
        folder = self.spool_dir / "rejected"
        if not folder.is_dir():
            return []
        keys = own_keys(self.spool_dir, self.target)
        return sorted(p for p in folder.glob("*.json") if spool_file_key(p) in keys)

    def _reject(self, path: Path, error: Exception) -> None:
        """Move spool file ``path`` to ``rejected/``, with the reason in ``<name>.reason``."""
        report("replaying a spooled event", error,
               f"{path.name} moves to {self.spool_dir / 'rejected'}, not retried")
        folder = self.spool_dir / "rejected"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{path.name}.reason").write_text(f"{type(error).__name__}: {error}\n",
                                                    encoding="utf-8", errors="backslashreplace")
        with contextlib.suppress(FileNotFoundError):  # another replay moved it first
            os.replace(path, folder / path.name)

    def close(self, timeout: float = 5.0) -> bool:
        """Release the sink; True if it closed in time. Right after the sink overran (see
        :meth:`emit`) it is left as is: closing would wait for the stuck send, and what it
        holds is durable (the store's journal, the spool)."""
        if time.monotonic() < self.overran_until:
            return False
        try:
            run_bounded(self.sink.close, timeout, "closing the sink")
            return True
        except Exception as e:
            report("closing the sink", e)
            return False


def _claim(path: Path) -> Any:
    """Open spool file ``path`` for replay, holding an exclusive ``flock`` on it, or None when
    another process is replaying it now or has already sent or moved it: the processes of a
    job array that start together and replay one spool folder share out its files instead of
    each sending the same ones. On a file system without ``flock`` the file is replayed
    unclaimed (a second send of an event changes nothing: ingest is idempotent)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - returned open, closed by the caller
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another process holds it: it is being replayed
        f.close()
        return None
    except OSError:  # no flock here (ENOLCK, ENOSYS): unclaimed, as before
        return f
    try:  # still the file at ``path``? (sent and deleted, or moved, before the lock was taken)
        here, opened = os.stat(path), os.fstat(f.fileno())
        if (here.st_dev, here.st_ino) == (opened.st_dev, opened.st_ino):
            return f
    except FileNotFoundError:
        pass
    f.close()
    return None


_EMITTERS: dict[tuple[Any, ...], Emitter] = {}
_LOCK = threading.Lock()


def get_emitter(settings: Settings | None = None) -> Emitter:
    """The process-wide emitter for these settings; replays the spool once at creation."""
    return _emitter(settings or load_settings())[0]


def replay_spool(settings: Settings) -> None:
    """Replay (bounded) the events waiting in the spool for the sink of ``settings``, through
    the process-wide emitter: a new one replays as it is made, a long-lived one now (a store
    that failed earlier in this process may work again). Never raises."""
    em, made = _emitter(settings)
    if not made:
        em.replay()


def _key(settings: Settings) -> tuple[Any, ...]:
    """What the process-wide emitters are kept by: the sink, the site and the spool folder."""
    return (settings.resolved_store_url, settings.server_url, settings.site,
            str(settings.spool_path))


def _emitter(settings: Settings) -> tuple[Emitter, bool]:
    """The process-wide emitter for ``settings``, and whether it was made (and replayed) now."""
    key = _key(settings)
    with _LOCK:
        em = _EMITTERS.get(key)
        if em is None:
            em = _EMITTERS[key] = Emitter(settings)
            em.replay()  # not while the sink is known to be stuck (its note or another's)
            return em, True
        return em, False

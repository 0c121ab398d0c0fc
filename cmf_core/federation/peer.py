"""Peer sync: exchange metadata with any site's ``cmf serve``, and fetch artifact bytes on demand.

``sync(peer_url)`` pulls what the peer has and this store lacks, then pushes the reverse.
Both directions are the same protocol seen from the two ends (routes under
``/api/v1/federation``, see :mod:`cmf_core.server.routers.federation`):

1. ``GET /info?peer=<my store id>&peer_scope=<my scope>``: the peer's site, store id, version
   vector, the scope it will share with this caller, and how far it has this store in that scope
   (its high-water mark on this store's seq, for pushes).
2. Pull: ``GET /bundle?since=<hwm>&exclude=<my vector>&limit=N``: one page of the peer's changes
   after the seq this store has it up to, less every version this store already has (whoever it
   came from); imported in one transaction, after which the high-water mark moves to the page's
   end. Repeated until a page says it is complete; then this store adopts the peer's vector.
3. Push: the same pages from this store, sent with ``POST /bundle``, starting from the peer's
   high-water mark and leaving out what the peer's vector covers.

Every page is a checksummed bundle; an interrupted transfer loses at most the page in flight, and
the next sync resumes from the last imported page. A repeated sync transfers only what is new:
bytes on the wire grow with the delta, not with the store.

Pages travel in the compact bundle format 2 (blocks of arrays, :mod:`cmf_core.federation.wire`)
when both sides have it (``formats`` in ``/info``), else in format 1. They are gzip-compressed
unless the peer is on this machine (a loopback address), where compressing only costs CPU;
``compress=True`` or ``False`` overrides that.

Tokens: ``token=`` or the ``federation_tokens`` setting (peer URL -> token), sent as
``Authorization: Bearer``. What this site pushes is limited by its own sharing policy (the
``federation_share_pipelines`` setting); what it pulls, by the peer's.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cmf_core.config import Settings, load_settings
from cmf_core.errors import AuthError, CmfError, InvalidInputError, NotFoundError
from cmf_core.federation.bundle import (
    FORMAT,
    FORMATS,
    GZIP_MAGIC,
    MEDIA_TYPE,
    file_chunks,
    spool,
)
from cmf_core.federation.export import (
    DEFAULT_PAGE,
    Selector,
    load_vector,
    page_bundle,
)
from cmf_core.federation.merge import get_hwm, import_bundle
from cmf_core.model import Artifact
from cmf_core.model._base import some
from cmf_core.store import Store, open_store
from cmf_core.task_values import hide_password

API = "/api/v1/federation"
PEER_URL_KEY = "federation:peer-url:"
PEER_SYNC_KEY = "federation:peer-sync:"  # the last sync with a site: when, how, what moved
Direction = Literal["both", "push", "pull"]


class PeerError(CmfError):
    """A peer could not be reached, refused a request, or a transfer was cut off."""


@dataclass
class Transfer:
    """One direction of a sync."""

    pages: int = 0
    records: int = 0  # records sent or received
    written: int | None = 0  # rows they added or changed at the receiver (None: not reported)
    bytes: int = 0
    since: int = 0
    end: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def _add(total: int | None, more: Any) -> int | None:
    """A running count of rows written, unknown (``None``) once a peer did not report it."""
    return None if total is None or type(more) is not int else total + more


@dataclass
class SyncReport:
    peer_url: str
    peer_site: str = ""
    peer_store: str = ""
    direction: str = "both"
    scope: str = "all"
    pulled: Transfer = field(default_factory=Transfer)
    pushed: Transfer = field(default_factory=Transfer)

    @property
    def conflicts(self) -> list[dict[str, Any]]:
        return self.pulled.conflicts + self.pushed.conflicts

    @property
    def bytes(self) -> int:
        return self.pulled.bytes + self.pushed.bytes

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "conflicts": len(self.conflicts), "bytes": self.bytes}


# settings this module reads (with defaults until they exist in cmf_core.config) ---------------
def shared_pipelines(settings: Settings | None, peer: str | None = None) -> list[str] | None:
    """The pipelines this site shares with ``peer`` (``None``: all of them)."""
    per_peer = getattr(settings, "federation_peer_pipelines", None) or {}
    if peer is not None and peer in per_peer:
        return list(per_peer[peer])
    allowed = getattr(settings, "federation_share_pipelines", None)
    return None if allowed is None else list(allowed)


def _url_key(url: str) -> str:
    """``url`` as compared with the keys of ``federation_tokens``: no trailing slash, scheme and
    host in lower case (``HTTPS://Hpc:8080/`` is ``https://hpc:8080``)."""
    scheme, sep, rest = url.strip().rstrip("/").partition("://")
    if not sep:
        return scheme
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


def token_for(peer_url: str, settings: Settings | None) -> str | None:
    """The token ``federation_tokens`` gives for ``peer_url``, however either spells the
    trailing slash or the case of the scheme and host."""
    tokens = getattr(settings, "federation_tokens", None) or {}
    if peer_url in tokens:
        return tokens[peer_url]
    wanted = _url_key(peer_url)
    return next((t for url, t in tokens.items() if _url_key(url) == wanted), None)


@dataclass(frozen=True)
class TokenSource:
    """Where a sync step's token comes from, named when the peer refuses it.

    ``given``: where a token passed to :func:`sync` came from (``"$PEER_TOKEN"``);
    ``missing``: how to give one when there is none (``"$PEER_TOKEN is not set"``);
    ``who``: what the caller is (``"step"``, ``"task"``, ``"command"``).
    """

    given: str
    missing: str
    who: str = "step"

    def explain(self, passed: str | None, used: str | None) -> str:
        """``this step's token: ...`` for a token ``passed`` in and the one ``used``."""
        where = (self.given if passed else
                 "the federation_tokens setting for this URL" if used else
                 f"none; {self.missing}")
        return f"this {self.who}'s token: {where}"


def encode_vector(vector: dict[str, int] | None) -> str:
    return ",".join(f"{k}:{int(v)}" for k, v in sorted((vector or {}).items()))


def decode_vector(text: str | None) -> dict[str, int] | None:
    if not text:
        return None
    out: dict[str, int] = {}
    for part in text.split(","):
        origin, sep, n = part.rpartition(":")
        if not sep or not origin or not (n.isascii() and n.isdigit()):
            raise InvalidInputError(f"version vector {text!r} must be 'store:seq,store:seq'")
        if len(n.lstrip("0")) > 19 or int(n) >= 2**63:  # a seq is a 64-bit SQL integer
            raise InvalidInputError(f"version vector {text!r}: seq {n} is larger than "
                                    f"{2**63 - 1}")
        out[origin] = int(n)
    return out


# HTTP ---------------------------------------------------------------------------------------------
class _Client:
    def __init__(self, base: str, token: str | None, timeout: float) -> None:
        import httpx

        self.base = base.rstrip("/")
        self.shown = hide_password(self.base)
        shown = hide_password(base)
        if base.partition("://")[0].lower() not in ("http", "https"):  # "hpc:8080", "ftp://h"
            raise InvalidInputError(f"peer URL {shown!r} must start with http:// or https://; "
                                    "give the peer's cmf serve, e.g. "
                                    "https://hpc.example.org:8080")
        # a token read from a file or a Kubernetes secret often ends in a newline; inside a
        # header that fails the request with the token in the message (then logged)
        token = token.strip() if token else token
        if token and any(ord(c) < 0x20 or ord(c) == 0x7f for c in token):
            raise InvalidInputError(f"the token for {shown} holds a control character (a line "
                                    "break?), which a header cannot carry; check the token")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            self.http = httpx.Client(base_url=self.base, headers=headers, timeout=timeout)
        except httpx.InvalidURL as e:  # e.g. "http://[::1": an unclosed IPv6 bracket
            raise InvalidInputError(f"peer URL {shown!r} is not a valid URL ({e}); give the "
                                    "peer's cmf serve, e.g. https://hpc.example.org:8080") \
                from None
        self.httpx = httpx

    def close(self) -> None:
        self.http.close()

    def _fail(self, resp: Any, what: str) -> None:
        if resp.status_code < 400:
            return
        try:
            resp.read()
            message = resp.json().get("message") or resp.text
        except Exception:
            message = resp.text[:300] if hasattr(resp, "text") else ""
        if resp.status_code == 401:
            raise AuthError(f"{self.shown} refused {what}: {message}")
        if resp.status_code == 404 and what.startswith("GET /info"):
            raise PeerError(f"{self.shown} has no federation API (404 on {API}/info); is it a "
                            "cmf serve of cmf-foundation?")
        exc = NotFoundError if resp.status_code == 404 else PeerError
        raise exc(f"{self.shown} answered {resp.status_code} to {what}: {message}")

    def get_json(self, path: str, params: dict[str, Any]) -> Any:
        try:
            resp = self.http.get(API + path, params=params)
        except self.httpx.HTTPError as e:
            raise PeerError(f"cannot reach {self.shown}: {e}") from None
        self._fail(resp, f"GET {path}")
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            kind = resp.headers.get("content-type") or "no content type"
            raise PeerError(f"{self.shown}{API}{path} answered {resp.status_code} with "
                            f"{resp.text[:80]!r} ({kind}), not a JSON object; is {self.shown} a "
                            "cmf serve of cmf-foundation?")
        return data


def is_loopback(url: str) -> bool:
    """True when ``url`` names this machine (``localhost`` or a loopback address)."""
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _info(client: _Client, store: Store, scope: str, pipelines: list[str] | None) -> Any:
    """The peer's ``/info``, with ``format`` set to the best bundle format both sides read."""
    params: dict[str, Any] = {"peer": store.store_id, "peer_scope": scope}
    if pipelines is not None:
        params["pipeline"] = pipelines
    info = client.get_json("/info", params)
    theirs = info.get("formats") or [info.get("format")]
    common = set(FORMATS).intersection(f for f in theirs if type(f) is int)
    if not common:
        raise PeerError(f"{client.shown} speaks bundle format(s) {theirs!r}, this site "
                        f"{', '.join(map(str, FORMATS))}; upgrade the older side")
    if info.get("store_id") == store.store_id:
        raise InvalidInputError(f"{client.shown} is this very store; sync with another site")
    info["format"] = max(common)
    return info


def sync(peer_url: str, token: str | None = None, direction: Direction = "both",
         pipeline: str | None = None, store: Store | None = None,
         settings: Settings | None = None, *, page_size: int = DEFAULT_PAGE,
         compress: bool | None = None, timeout: float = 120.0,
         token_source: TokenSource | None = None) -> SyncReport:
    """Exchange metadata with the ``cmf serve`` at ``peer_url``; see the module docs.

    ``compress``: gzip the pages (``None``, the default: unless the peer is a loopback address).
    ``token_source``: where ``token`` came from, named in the error when the peer refuses it.

    ``pipeline`` limits the exchange to one pipeline (:class:`~cmf_core.errors.NotFoundError`
    when neither this store nor, after a pull, the peer has it). Raises :class:`PeerError`
    when the peer cannot be reached or a transfer is cut off (what was imported stays; run it
    again to resume), :class:`~cmf_core.errors.AuthError` when it refuses the token.
    """
    if direction not in ("both", "push", "pull"):
        raise InvalidInputError(f"direction {direction!r} must be 'both', 'push' or 'pull'")
    own = store is None
    settings = settings or (load_settings() if own else None)
    store = store or open_store(settings=settings)
    try:
        return _sync(peer_url, token, direction, pipeline, store, settings,
                     page_size=page_size, compress=compress, timeout=timeout)
    except AuthError as e:
        if token_source is None:
            raise
        used = token or token_for(peer_url, settings)
        raise AuthError(f"{e} ({token_source.explain(token, used)})") from None
    finally:
        if own:
            store.close()


def _sync(peer_url: str, token: str | None, direction: Direction, pipeline: str | None,
          store: Store, settings: Settings | None, *, page_size: int, compress: bool | None,
          timeout: float) -> SyncReport:
    token = token or token_for(peer_url, settings)
    client = _Client(peer_url, token, timeout)
    report = SyncReport(peer_url=client.shown, direction=direction)
    if compress is None:
        compress = not is_loopback(client.base)
    try:
        wanted = None if pipeline is None else [pipeline]
        push_sel = Selector(pipelines=wanted).restricted_to(shared_pipelines(settings))
        info = _info(client, store, push_sel.key, wanted)
        report.peer_site, report.peer_store = info["site"], info["store_id"]
        report.scope = info["scope"]
        store.set_state(PEER_URL_KEY + report.peer_site, client.base)
        if direction in ("both", "pull"):
            _pull(client, store, info, wanted, page_size, compress, report.pulled)
        if pipeline is not None and store.get_pipeline(pipeline) is None:
            # nothing to push, and (after a pull) the peer has none to give: a typo, not a sync
            shown = some([p.name for p in store.list_pipelines()])
            where = "this store" if direction == "push" else \
                f"this store nor at {report.peer_site} (or it does not share it with this site)"
            raise NotFoundError(f"no pipeline named {pipeline!r} in {where}; pipelines here: "
                                f"{shown or 'none'}")
        if direction in ("both", "push"):
            _push(client, store, info, push_sel, page_size, compress, report.pushed)
        store.set_state(PEER_SYNC_KEY + report.peer_site, json.dumps({
            "at": time.time(), "direction": direction, "pipeline": pipeline,
            "store_id": report.peer_store, "pulled": report.pulled.records,
            "pushed": report.pushed.records, "conflicts": len(report.conflicts)}))
    finally:
        client.close()
    return report


def _pull(client: _Client, store: Store, info: Any, wanted: list[str] | None, page_size: int,
          compress: bool, out: Transfer) -> None:
    """Pages in order, each imported in one transaction; the next page downloads meanwhile.

    (Writing in a second thread as well was tried: each SQLite step releases the GIL and must
    win it back from the busy parser, so that made a sync slower, not faster.)"""
    peer_store, scope = info["store_id"], info["scope"]
    since = out.since = get_hwm(store, peer_store, scope)

    def fetch(start: int) -> Page:
        params: dict[str, Any] = {"since": start, "limit": page_size,
                                  "exclude": encode_vector(load_vector(store)), "gzip": compress}
        if info["format"] != FORMAT:
            params["format"] = info["format"]
        if wanted is not None:
            params["pipeline"] = wanted
        # into a spool (memory up to a few MiB, then an anonymous temporary file), not memory:
        # a page is held while it is imported, the next one meanwhile, and one more downloads
        body = spool()
        try:
            size = 0
            with client.http.stream("GET", API + "/bundle", params=params) as resp:
                client._fail(resp, "GET /bundle")
                for chunk in resp.iter_bytes():
                    body.write(chunk)
                    size += len(chunk)
            body.seek(0)
            head = body.read(80)
            body.seek(0)
            if head and head[:1] != b"{" and head[:2] != GZIP_MAGIC:
                # a proxy's login or error page, or another service on that path: not a bundle
                kind = resp.headers.get("content-type") or "no content type"
                raise PeerError(f"{client.shown}{API}/bundle answered {resp.status_code} with "
                                f"{head.decode('utf-8', 'replace')!r} ({kind}), not a bundle; "
                                f"is {client.shown} a cmf serve of cmf-foundation?")
        except BaseException:
            body.close()
            raise
        return (body, size, int(resp.headers.get("x-cmf-seq-end", -1)),
                resp.headers.get("x-cmf-complete") == "true")

    pages = _Ahead(fetch, since)
    try:
        while True:
            try:
                body, size, end, complete = pages.next()
            except client.httpx.HTTPError as e:
                raise PeerError(
                    f"pull from {client.shown} was cut off after {out.pages} page(s) "
                    f"({out.records} records; everything up to its seq {since} is imported): "
                    f"{e}; run the sync again to resume") from None
            with body:
                rep = import_bundle(store, file_chunks(body),
                                    name=f"{client.shown} page since {since}")
            out.pages += 1
            out.records += rep.records
            out.written = _add(out.written, rep.written)
            out.bytes += size
            out.conflicts += rep.conflicts
            out.end = rep.end
            if rep.complete:
                return
            if complete or rep.end != end:  # the headers did not say what the bundle says
                pages.restart(rep.end)
            since = rep.end
    finally:
        pages.close()


Page = tuple[Any, int, int, bool]
"""A downloaded page: its bytes (a :func:`~cmf_core.federation.bundle.spool`, the reader's to
close), their number, and the page's ``X-Cmf-Seq-End`` and ``X-Cmf-Complete``."""


class _Ahead:
    """Downloads pages in order in one thread, ahead of their import: the next page waits,
    imported or not, while the one after it downloads. The importing thread gets the pages,
    or the error that stopped the downloads, in order; a page is never skipped. Pages not
    handed out when it is closed are closed (their spools removed) here."""

    def __init__(self, fetch: Callable[[int], Page], start: int) -> None:
        self._fetch = fetch
        self._begin(start)

    def _begin(self, start: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(start, self._queue, self._stop),
                                        name="cmf-sync-fetch", daemon=True)
        self._thread.start()

    def _run(self, start: int, pages: queue.Queue[Any], stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                item: Any = self._fetch(start)
            except BaseException as e:  # handed to the importing thread, which raises it
                item = e
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            else:  # stopped: nobody will take it
                _discard(item)
                return
            if isinstance(item, BaseException) or item[3] or item[2] < start:
                return  # an error, the last page, or headers that do not say where to go on
            start = item[2]

    def next(self) -> Page:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    def restart(self, start: int) -> None:
        self.close()
        self._begin(start)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        while not self._queue.empty():  # a page downloaded ahead, never imported
            _discard(self._queue.get_nowait())


def _discard(item: Any) -> None:
    if not isinstance(item, BaseException):
        item[0].close()


def _push(client: _Client, store: Store, info: Any, selector: Selector, page_size: int,
          compress: bool, out: Transfer) -> None:
    """Pages in order, each imported by the peer in one transaction; the next page is made
    here while the peer imports the last one. A page refused as too large (413: a reverse
    proxy's body limit, nginx's ``client_max_body_size`` is 1 MiB by default) is made again
    with half the rows, and later pages keep the smaller size."""
    since = out.since = int(info.get("high_water") or 0)
    exclude = {str(k): int(v) for k, v in (info.get("vector") or {}).items()}

    def make(start: int, size: int) -> tuple[bytes, int, bool]:
        page, chunks = page_bundle(store, selector, since=start, limit=size,
                                   exclude=exclude, compress=compress, fmt=info["format"])
        return b"".join(chunks), page.end, page.more

    with ThreadPoolExecutor(1, thread_name_prefix="cmf-sync-make") as pool:
        ahead = pool.submit(make, since, page_size)
        while True:
            body, end, more = ahead.result()
            if more:
                ahead = pool.submit(make, end, page_size)
            try:
                resp = client.http.post(API + "/bundle", content=body,
                                        headers={"Content-Type": MEDIA_TYPE})
            except client.httpx.HTTPError as e:
                raise PeerError(
                    f"push to {client.shown} was cut off after {out.pages} page(s) "
                    f"({out.records} records; the peer has everything up to this store's seq "
                    f"{since}): {e}; run the sync again to resume") from None
            if resp.status_code == 413:
                if page_size > 1:
                    page_size //= 2
                    ahead.cancel()  # made with the old size (if not begun); its result unused
                    ahead = pool.submit(make, since, page_size)
                    continue
                raise PeerError(
                    f"{client.shown} (or a reverse proxy in front of it) refused a push page of "
                    f"{len(body):,} bytes as too large (413), even of one row per record kind; "
                    "raise its body limit (nginx: client_max_body_size) above that")
            client._fail(resp, "POST /bundle")
            try:
                rep = resp.json()
            except ValueError:
                rep = None
            if not isinstance(rep, dict):
                raise PeerError(
                    f"{client.shown}{API}/bundle answered the push with {resp.text[:80]!r}, not "
                    f"a JSON report; is {client.shown} a cmf serve of cmf-foundation? (pushed "
                    f"{out.pages} page(s) before; run the sync again to resume)")
            out.pages += 1
            out.records += int(rep.get("records", 0))
            out.written = _add(out.written, rep.get("written"))  # None: the peer did not say
            out.bytes += len(body)
            out.conflicts += rep.get("conflicts", [])
            out.end = since = end
            if not more:
                return


@dataclass
class Peer:
    """A site this store synced with: its URL (password hidden) and its last whole sync."""

    site: str
    url: str
    synced_at: float | None = None  # None: a sync began but did not finish
    direction: str | None = None
    pipeline: str | None = None
    pulled: int = 0
    pushed: int = 0
    conflicts: int = 0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def peers(store: Store) -> list[Peer]:
    """The sites this store learned by syncing with them (``cmf sync``), by site name."""
    urls = store.states(PEER_URL_KEY)
    syncs = store.states(PEER_SYNC_KEY)
    out = []
    for key, url in urls.items():
        site = key[len(PEER_URL_KEY):]
        try:
            last = json.loads(syncs.get(PEER_SYNC_KEY + site) or "{}")
        except ValueError:
            last = {}
        out.append(Peer(site, hide_password(url), last.get("at"), last.get("direction"),
                        last.get("pipeline"), int(last.get("pulled") or 0),
                        int(last.get("pushed") or 0), int(last.get("conflicts") or 0)))
    return out


# data on demand -------------------------------------------------------------------------------
def find_artifact(store: Store, digest: str) -> Artifact:
    """The artifact of ``digest``, whole or a unique prefix (as `cmf lineage` and `cmf show`
    print digests); an error naming the candidates, or saying to sync first."""
    artifact = store.get_artifact(digest)
    if artifact is None:
        from cmf_core.lineage.query import Query, ambiguous

        found = Query(store).digest_prefix_matches(digest)
        if len(found) > 1:
            raise InvalidInputError(ambiguous(digest, [], found))
        artifact = found[0] if found else None
    if artifact is None:
        raise NotFoundError(f"no artifact {digest!r} in this store; sync with the site that "
                            "has it first (cmf sync PEER_URL)")
    return artifact


def fetch_artifact(digest: str, out: Path | None = None, *, peer_url: str | None = None,
                   token: str | None = None, store: Store | None = None,
                   settings: Settings | None = None, timeout: float = 300.0,
                   force: bool = False) -> Path:
    """Get an artifact's bytes from a site that holds them, verifying the digest.

    ``digest`` is the whole digest or a unique prefix of it (``sha256:3f2a9c0d1e2b``, as
    ``cmf lineage`` prints it; at least 4 hex characters). Tries ``peer_url``, else every
    site with a location of the artifact whose URL this store learned by syncing with it
    (each with its ``federation_tokens`` entry; an explicit ``token`` is one site's, so it
    needs ``peer_url`` when several sites may hold the bytes). Writes ``out`` (default: the
    artifact's name in the current directory; into it when ``out`` is a folder) only once the
    bytes match the digest; an existing file is an error unless ``force``.
    """
    own = store is None
    settings = settings or (load_settings() if own else None)
    store = store or open_store(settings=settings)
    try:
        artifact = find_artifact(store, digest)
        digest = artifact.id
        if not digest.startswith("sha256:"):
            raise InvalidInputError(
                f"artifact {digest[:20]}... is a remote object (digest of its URI and version): "
                f"fetch it from {artifact.uri} with that system's own tools")
        urls: list[str] = [peer_url] if peer_url else []
        if not urls:
            for loc in store.artifact_locations(digest):
                url = store.get_state(PEER_URL_KEY + loc.site)
                if url and url not in urls:
                    urls.append(url)
        if not urls:
            sites = sorted({loc.site for loc in store.artifact_locations(digest)})
            raise InvalidInputError(
                f"no known URL for the site(s) holding {digest[:20]}... ({', '.join(sites)}); "
                "pass the owning site's URL (cmf artifact fetch DIGEST --from URL)")
        if token and len(urls) > 1:  # one site's token, not to be shown to the others
            raise InvalidInputError(
                f"{len(urls)} sites may hold {digest[:20]}... "
                f"({', '.join(hide_password(u) for u in urls)}); a token is one site's: name "
                "that site with --from (peer_url), or set federation_tokens for each")
        target = Path(out) if out is not None else Path.cwd()
        if target.is_dir():
            target = target / Path(artifact.name).name
        if target.is_dir():
            raise InvalidInputError(f"cannot fetch to {target}: it is a folder")
        if target.exists() and not force:
            raise InvalidInputError(f"cannot fetch to {target}: it already exists; give "
                                    "another --out, or --force to replace it")
        errors: list[str] = []
        for url in urls:
            try:
                return _download(url, digest, target, token or token_for(url, settings),
                                 timeout)
            except (PeerError, NotFoundError, AuthError) as e:
                errors.append(str(e))
        raise PeerError(f"no site gave the bytes of {digest[:20]}...: " + "; ".join(errors))
    finally:
        if own:
            store.close()


def _umask() -> int:
    """This process's umask, read without changing it (Linux); else the usual 022."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _download(url: str, digest: str, target: Path, token: str | None, timeout: float) -> Path:
    client = _Client(url, token, timeout)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".cmf-fetch-", dir=target.parent)
    except OSError as e:
        client.close()
        raise InvalidInputError(f"cannot write {target}: {e.strerror}") from None
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as fh:
            try:
                with client.http.stream("GET", f"{API}/artifacts/{digest}") as resp:
                    client._fail(resp, f"GET /artifacts/{digest[:20]}...")
                    for chunk in resp.iter_bytes():
                        h.update(chunk)
                        fh.write(chunk)
            except client.httpx.HTTPError as e:
                raise PeerError(f"download from {client.shown} was cut off: {e}") from None
        got = "sha256:" + h.hexdigest()
        if got != digest:
            raise PeerError(f"{client.shown} sent bytes with digest {got[:20]}..., not "
                            f"{digest[:20]}...; they were discarded")
        os.chmod(tmp, 0o666 & ~_umask())  # as an ordinary new file (mkstemp's is 0600)
        os.replace(tmp, target)
        return target
    finally:
        client.close()
        if os.path.exists(tmp):
            os.unlink(tmp)

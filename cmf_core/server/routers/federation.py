"""Federation API: peers pull and push metadata bundles, and fetch artifact bytes on demand.

Routes (all under ``/api/v1/federation``; protocol in :mod:`cmf_core.federation.peer`):

* ``GET /info?peer=<store id>&peer_scope=<scope>&pipeline=P``: this site, its store id and
  version vector, what it shares with the caller (``scope``, ``pipelines``), and how far it has
  the caller's store in ``peer_scope`` (``high_water``, where the caller's push starts).
* ``GET /bundle?since=N&limit=L&exclude=<vector>&pipeline=P&gzip=true&format=2``: one page of
  changes after this store's seq ``N`` as a bundle (``application/x-ndjson``, gzip-compressed
  bytes when ``gzip``; bundle format 1 unless ``format=2`` is asked for), less the versions the
  ``exclude`` vector (``store:seq,...``) covers.
* ``POST /bundle``: import a bundle (plain or gzip; ``Content-Type: application/x-ndjson``),
  one transaction; answers the merge report (records, conflicts, high-water mark). The body is
  received into a spool (:func:`cmf_core.federation.bundle.spool`: memory up to a few MiB, then
  an anonymous temporary file), at most ``MAX_BUNDLE_BYTES``, and imported from there.
* ``GET /artifacts/{digest}``: the bytes of an artifact whose location at this site is a local
  file under an allowed root (``federation_artifact_roots``; none by default: every request is
  refused with 403) and whose bytes still hash to the digest (checked before sending: a
  location may come from a peer's bundle). The receiver verifies the digest too.

Access: when the server has a token (``CMF_TOKEN``) or per-peer tokens
(``federation_peer_tokens``: peer name -> token), every federation route needs one of them, reads
included; a peer token reaches only these routes and only what the sharing policy
(``federation_share_pipelines``, ``federation_peer_pipelines``) gives that peer. With no token
at all (a loopback-only server) the routes are open.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from cmf_core.errors import AuthError, InvalidInputError, NotFoundError
from cmf_core.federation.bundle import FORMAT, FORMATS, MEDIA_TYPE, file_chunks, spool
from cmf_core.federation.export import DEFAULT_PAGE, Selector, load_vector, page_bundle
from cmf_core.federation.merge import MergeReport, get_hwm, import_bundle
from cmf_core.federation.peer import decode_vector, shared_pipelines
from cmf_core.identity import file_digest
from cmf_core.server import schemas
from cmf_core.server.auth import bearer, require_write
from cmf_core.server.deps import MAX_OFFSET, SettingsDep, StoreDep
from cmf_core.server.errors import PayloadTooLargeError, UnsupportedMediaTypeError
from cmf_core.server.schemas import ok
from cmf_core.store import ExecutionFilter, Store

MAX_PAGE = 200_000
MAX_BUNDLE_BYTES = 1 << 30  # one pushed page, as sent (gzip or not)
BUNDLE_TYPES = (MEDIA_TYPE, "application/jsonl", "application/json", "application/gzip",
                "application/x-gzip", "application/octet-stream")
"""Content types a pushed bundle may have. Not the ones a web page may send to another site
without asking it first (text/plain, form data, none): with those, any page a user of a
token-less loopback server opened could push records into that user's store."""


def _check_bundle_type(given: str | None) -> None:
    media = (given or "").split(";", 1)[0].strip().lower()
    if media not in BUNDLE_TYPES:
        shown = repr(given) if given else "none"
        raise UnsupportedMediaTypeError(
            f"Content-Type of a pushed bundle must be {MEDIA_TYPE} (got {shown}); send the "
            f"bundle (plain or gzip) with the header 'Content-Type: {MEDIA_TYPE}'")


async def federation_peer(request: Request,
                          credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
                          ) -> str | None:
    """Dependency: who is calling. A peer token gives that peer's name; the server's own
    token, or no token configured at all, gives ``None`` (this site's full view)."""
    settings = request.app.state.settings
    peers: dict[str, str] = getattr(settings, "federation_peer_tokens", None) or {}
    if credentials is not None:
        for name, token in peers.items():
            if hmac.compare_digest(credentials.credentials.encode(), token.encode()):
                return name
    if getattr(settings, "token", None):
        await require_write(request, credentials)  # the server's token: raises when wrong
        return None
    if peers:
        raise AuthError(f"{request.method} {request.url.path} needs this site's token for your "
                        "peer: send 'Authorization: Bearer <token>' (federation_peer_tokens)"
                        if credentials is None else
                        "the bearer token is not one of this site's peer tokens "
                        "(federation_peer_tokens); check the token given to cmf sync")
    return None


Peer = Annotated[str | None, Depends(federation_peer)]
Pipelines = Annotated[list[str] | None, Query(alias="pipeline",
                                              description="Only these pipelines.")]

router = APIRouter(prefix="/api/v1/federation", tags=["federation"], responses=schemas.ERRORS)


@router.get("/info", response_model=None, responses=ok(schemas.FederationInfo))
def info(store: StoreDep, settings: SettingsDep, peer_name: Peer,
         peer: Annotated[str | None, Query(max_length=64,
                                           description="The caller's store id.")] = None,
         peer_scope: Annotated[str, Query(max_length=4096)] = "all",
         pipelines: Pipelines = None) -> dict[str, Any]:
    """This site, its version vector, what it shares with the caller, and how far it has the
    caller's store (where a push starts)."""
    sel = Selector(pipelines=pipelines).restricted_to(shared_pipelines(settings, peer_name))
    return {
        "format": FORMAT, "formats": list(FORMATS), "site": store.site,
        "store_id": store.store_id,
        "vector": load_vector(store), "scope": sel.key,
        "pipelines": None if sel.pipelines is None else list(sel.pipelines),
        "high_water": get_hwm(store, peer, peer_scope) if peer else 0,
        "serves_artifacts": bool(_roots(settings)),
    }


@router.get("/bundle", response_class=StreamingResponse, responses={200: {
    "description": "The bundle: JSON lines, gzip-compressed when `gzip` (X-Cmf-Seq-End: the seq "
                   "it reaches; X-Cmf-Complete: true on the last page).",
    "content": {MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}})
def get_bundle(store: StoreDep, settings: SettingsDep, peer_name: Peer,
               since: Annotated[int, Query(ge=0, le=MAX_OFFSET,
                                           description="This store's seq to start after.")]
               = 0,
               limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Rows per record kind "
                                                                          "in this page.")]
               = DEFAULT_PAGE,
               exclude: Annotated[str | None, Query(description="Version vector of the caller: "
                                                                "'store:seq,...'.")] = None,
               gzip: bool = True, pipelines: Pipelines = None,
               fmt: Annotated[int, Query(alias="format", ge=1, le=max(FORMATS),
                                         description="Bundle format: 1 (record objects) or 2 "
                                                     "(compact blocks).")] = FORMAT
               ) -> StreamingResponse:
    """One page of changes after ``since`` as a bundle, less what ``exclude`` covers."""
    sel = Selector(pipelines=pipelines).restricted_to(shared_pipelines(settings, peer_name))
    page, chunks = page_bundle(store, sel, since=since, limit=limit,
                               exclude=decode_vector(exclude), compress=gzip, fmt=fmt)
    return StreamingResponse(chunks, media_type=MEDIA_TYPE, headers={
        "X-Cmf-Seq-End": str(page.end), "X-Cmf-Complete": str(not page.more).lower()})


@router.post("/bundle", response_model=None,
             responses={**ok(schemas.MergeReport),
                        413: {**schemas.ERRORS[400], "description": "Bundle too large."},
                        415: {**schemas.ERRORS[400],
                              "description": "Not a bundle's Content-Type."}})
async def post_bundle(request: Request, store: StoreDep, _peer: Peer) -> dict[str, Any]:
    """Import a bundle (one transaction); true conflicts are recorded and reported."""
    _check_bundle_type(request.headers.get("content-type"))
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BUNDLE_BYTES:
        raise _too_large()  # refused before a byte of it is read
    # The body goes to a spool (memory up to bundle.SPOOL_BYTES, then an anonymous temporary
    # file), not a list in memory: N peers pushing at once held N bodies of up to 1 GiB each.
    body = spool()
    try:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_BUNDLE_BYTES:
                raise _too_large()
            body.write(chunk)
        body.seek(0)
    except BaseException:  # 413, the client gone (ClientDisconnect), a cancelled request
        body.close()
        raise
    # the import thread closes the spool: a request cancelled while it runs must not close
    # the file under it
    report = await asyncio.to_thread(_import_spooled, store, body)
    return report.to_dict()


def _too_large() -> PayloadTooLargeError:
    return PayloadTooLargeError(f"a pushed bundle may be at most {MAX_BUNDLE_BYTES} bytes; "
                                "push smaller pages (cmf sync pages by itself)")


#: one pushed bundle imported at a time: an import parses every record before its one
#: transaction (about 0.7 KiB each), so N peers pushing at once held N parsed bundles, and
#: gained nothing (parsing holds the GIL, writes take the store's lock one at a time)
_IMPORTING = threading.Lock()


def _import_spooled(store: Store, body: Any) -> MergeReport:
    with body, _IMPORTING:
        return import_bundle(store, file_chunks(body), name="pushed bundle")


def _roots(settings: Any) -> list[Path]:
    roots = getattr(settings, "federation_artifact_roots", None) or []
    return [Path(r).expanduser().resolve() for r in roots]


def _shared(store: Store, digest: str, allowed: list[str] | None) -> bool:
    if allowed is None:
        return True
    ids = sorted({e.execution_id for e in store.events(artifact_ids=[digest])})
    return bool(ids) and any(e.pipeline in allowed for e in
                             store.list_executions(ExecutionFilter(ids=ids)))


@router.get("/artifacts/{digest}", response_class=FileResponse, responses={
    200: {"description": "The artifact's bytes (X-Cmf-Digest: its digest).",
          "content": {"application/octet-stream": {"schema": {"type": "string",
                                                              "format": "binary"}}}},
    403: {**schemas.ERRORS[400], "description": "This site serves no artifact bytes, or not "
                                                "these to you."},
    **schemas.NOT_FOUND,
    409: {**schemas.ERRORS[400], "description": "A remote object, a folder, or a file changed "
                                                "since it was logged."}})
def get_artifact_bytes(digest: str, store: StoreDep, settings: SettingsDep,
                       peer_name: Peer) -> FileResponse:
    """The bytes of an artifact stored at this site under an allowed root, or a refusal."""
    roots = _roots(settings)
    if not roots:
        raise HTTPException(403, "this site does not serve artifact bytes (its "
                                 "federation_artifact_roots setting is empty)")
    if store.get_artifact(digest) is None:
        raise NotFoundError(f"no artifact {digest!r} at this site")
    if not _shared(store, digest, shared_pipelines(settings, peer_name)):
        raise HTTPException(403, f"artifact {digest[:20]}... belongs to no pipeline this site "
                                 "shares with you")
    if not digest.startswith("sha256:"):  # a remote object's id says nothing of any bytes here
        raise HTTPException(409, f"artifact {digest[:20]}... is a remote object (digest of its "
                                 "URI and version), not a file this site serves: fetch it from "
                                 "its own system")
    refused = folder = changed = False
    for loc in store.artifact_locations(digest):
        if loc.site != store.site or ("://" in loc.uri and not loc.uri.startswith("file://")):
            continue
        path = Path(loc.uri[len("file://"):] if loc.uri.startswith("file://") else loc.uri)
        if not path.is_absolute():
            continue
        path = path.resolve()
        if not any(path.is_relative_to(root) for root in roots):
            refused = True
            continue
        if path.is_file():
            # Served only when the file still is the artifact: a location may have come from a
            # peer (a pushed bundle names any path at any site), and a peer that could name a
            # file under a root by a digest of its own would read bytes the sharing policy
            # keeps from it (or a file changed since it was logged would be sent for nothing).
            try:
                same = file_digest(path) == digest
            except InvalidInputError:  # unreadable, or gone since is_file()
                same = False
            if same:
                return FileResponse(path, media_type="application/octet-stream",
                                    headers={"X-Cmf-Digest": digest})
            changed = True
            continue
        folder = folder or path.is_dir()
    if folder:  # there, but a folder: "no local file ... may live elsewhere" sent users away
        raise HTTPException(409, f"artifact {digest[:20]}... is a folder at this site (site "
                                 f"{store.site}); cmf serves files only, not folders: copy "
                                 "it with your own tools")
    if changed:
        raise HTTPException(409, f"artifact {digest[:20]}...: the file at this site (site "
                                 f"{store.site}) no longer has the artifact's bytes (its digest "
                                 "differs: changed since it was logged); nothing was sent")
    if refused:
        raise HTTPException(403, f"artifact {digest[:20]}... lies outside the folders this site "
                                 "serves (federation_artifact_roots)")
    raise NotFoundError(f"artifact {digest[:20]}... has no local file at this site (site "
                        f"{store.site}); its bytes may live elsewhere")

"""Local file datasets: identify them by their content, as the in-process adapters do.

The Airflow listener, the Prefect and Kubeflow adapters run beside the task and identify a
dataset that is a local file or directory by the ``sha256`` of its content
(:func:`cmf_core.identity.path_digest`), sent as the ``cmf_artifact`` facet. A producer that
knows nothing of CMF (Airflow's OpenLineage provider, dbt, your own openlineage-python code)
names the same file ``file`` + ``/abs/path`` with no digest, so ingest would identify it by its
URI (:func:`~cmf_core.openlineage.ingest.unversioned_digest`) and the two routes would record
two artifacts for one file. :func:`with_local_digests` adds the facet the listener would have
sent; :class:`~cmf_core.openlineage.transport.cmf.CmfTransport` applies it, since it runs on
the producer's host. The HTTP server does not: the files it would read are not the producer's.

What is digested: an input or output dataset in namespace ``file`` (a plain path or a
``file://`` URI, by :mod:`~cmf_core.openlineage.naming`) whose name is an absolute path that
exists here, and that has no live ``cmf_artifact`` facet (a producer's own digest wins).
A local *output* named by a START or RUNNING event is left out: its bytes are not written
yet (or are an older version's), and the run's end event names it with its digest.
Up to ``max_bytes`` (all files of a directory together) and :data:`MAX_WALK_FILES` files the
content is read; above them, or when it cannot be read, the id is a digest of the path, size
and modification time, exactly as the Airflow listener computes it (``digest_method:
"stat"``). Content digests are cached per process by the path and each file's name, inode,
size, modification and status change times (not one changed in the last second). A file
system root, the home or working directory (or a parent of them) is never read: ingest
identifies it by its URI.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmf_core.errors import InvalidInputError
from cmf_core.identity import path_digest, remote_digest

DEFAULT_DIGEST_MAX_BYTES = 1024 * 2**20
"""Local datasets up to this size (1 GiB, the Airflow listener's default) are read."""
MAX_WALK_FILES = 100_000
"""A directory with more files is not walked further: its own size and mtime identify it (a
walk of this many files takes about half a second on a local disk; a change deep inside such
a directory may not change that id)."""

_NOT_ENDED = ("START", "RUNNING")
_CACHE: dict[tuple[Any, ...], str] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 4096
RACY_NS = 1_000_000_000


def local_path(namespace: Any, name: Any) -> str | None:
    """The path of an OpenLineage dataset on this host's file system, or None."""
    if namespace == "file" and isinstance(name, str) and os.path.isabs(name):
        return name
    return None


def too_broad(path: str) -> bool:
    """True for a path never read as a dataset: a file system root, the home directory, the
    working directory or one of their parents (ingest identifies those by URI)."""
    try:
        real = Path(os.path.realpath(path))
        anchors = {Path(os.path.realpath(os.path.expanduser("~"))), Path(os.getcwd())}
    except (OSError, ValueError):
        return True
    return real == Path(real.anchor) or any(a == real or real in a.parents for a in anchors)


def _stat(path: str) -> tuple[int, int, bool, int, tuple[Any, ...]] | None:
    """(size, newest modification time in ns, complete, newest status change time in ns,
    fingerprint) of a file, or of all files under a directory; above :data:`MAX_WALK_FILES`
    files the directory's own stat, ``complete`` False. The fingerprint (the cache key)
    covers each file's name, inode, size and times, status change time included: a file
    renamed or rewritten in place changes it where the size and newest modification time
    stay the same."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not os.path.isdir(path):
        return st.st_size, st.st_mtime_ns, True, st.st_ctime_ns, (
            path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    newest, size, count = st.st_mtime_ns, 0, 0
    changed = st.st_ctime_ns
    h = hashlib.blake2b(digest_size=20)
    try:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # not listable: no files (reading it fails next, and says why)
        top = None
    if top is not None:
        try:
            # each file stat-ed relative to its folder's descriptor, not by its whole path
            # from the root: about a third less time on 20,000 files (as os.walk, links to
            # folders inside are not followed; "." here is ``path``, a link to a folder too)
            walk = os.fwalk(".", dir_fd=top)
            try:
                for root, _, files, fd in walk:
                    for f in files:
                        count += 1
                        if count > MAX_WALK_FILES:
                            return st.st_size, st.st_mtime_ns, False, st.st_ctime_ns, ()
                        try:
                            s = os.stat(f, dir_fd=fd)
                        except OSError:
                            continue
                        newest, size = max(newest, s.st_mtime_ns), size + s.st_size
                        changed = max(changed, s.st_ctime_ns)
                        h.update(f"{root}/{f}\0{s.st_dev}:{s.st_ino}:{s.st_size}:"
                                 f"{s.st_mtime_ns}:{s.st_ctime_ns}\n".encode("utf-8",
                                                                            "surrogateescape"))
            finally:
                walk.close()
        finally:
            os.close(top)
    return size, newest, True, changed, (path, size, newest, changed, h.hexdigest())


def _identity(path: str, found: tuple[int, int, bool, int, tuple[Any, ...]], max_bytes: float,
              strict: bool) -> tuple[str, str]:
    """``(id, method)`` of ``path`` whose :func:`_stat` is ``found``: the content digest
    (cached) up to ``max_bytes`` and :data:`MAX_WALK_FILES` files, else the stat digest; one
    that cannot be read is the stat digest too, or with ``strict`` an error."""
    size, mtime, complete, changed, key = found
    if complete and size <= max_bytes:
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
        if cached is not None:
            return cached, "sha256"
        started = time.time_ns()
        try:
            digest = path_digest(path)
        except (InvalidInputError, OSError):
            if strict:
                raise
            digest = None  # gone or unreadable meanwhile: fall back to what stat gave
        if digest is not None:
            # not kept if changed in the last second (a write in the same timestamp tick after
            # this read would leave the key as it is): the next caller reads it again
            if changed < started - RACY_NS:
                with _CACHE_LOCK:
                    if len(_CACHE) >= _CACHE_MAX:
                        _CACHE.clear()
                    _CACHE[key] = digest
            return digest, "sha256"
    return stat_identity(path, size, mtime), "stat"


def local_identity(path: str, max_bytes: float = DEFAULT_DIGEST_MAX_BYTES
                   ) -> tuple[str, str] | None:
    """``(artifact id, digest method)`` of the local file or directory ``path``: its content
    digest (``"sha256"``), or above ``max_bytes`` or :data:`MAX_WALK_FILES` files, or when
    it cannot be read, its stat digest (``"stat"``); None if it does not exist or is
    :func:`too_broad`."""
    found = None if too_broad(path) else _stat(path)
    return None if found is None else _identity(path, found, max_bytes, strict=False)


def path_identity(path: str, max_bytes: float = DEFAULT_DIGEST_MAX_BYTES
                  ) -> tuple[str, str, int, bool]:
    """``(artifact id, digest method, size, complete)`` of the existing local file or directory
    ``path`` (absolute, as the adapters name it) that a user names explicitly
    (``Cmf.log_dataset``): as :func:`local_identity`, but any path is read (the home or working
    directory too), and one that cannot be read is an error naming it. ``size`` is the bytes
    of all its files; ``complete`` is False for a directory of more than
    :data:`MAX_WALK_FILES` files (its own stat identifies it)."""
    found = _stat(path)
    if found is None:
        raise InvalidInputError(f"artifact path {path} does not exist or cannot be read")
    digest, method = _identity(path, found, max_bytes, strict=True)
    return digest, method, found[0], found[2]


def stat_identity(path: str, size: int, mtime_ns: int) -> str:
    """Artifact id of a local path from its size and modification time (files too big to
    read, or not read in time)."""
    return remote_digest(Path(path).as_uri(), f"stat:{size}:{mtime_ns}")


def local_stat_identity(path: str) -> tuple[str, str] | None:
    """``(stat_identity, "stat")`` of an existing local file or directory, else None."""
    found = None if too_broad(path) else _stat(path)
    return None if found is None else (stat_identity(path, *found[:2]), "stat")


def _has_live_artifact_facet(ds: Mapping[str, Any]) -> bool:
    facets = ds.get("facets")
    facet = facets.get("cmf_artifact") if isinstance(facets, Mapping) else None
    return isinstance(facet, Mapping) and facet.get("_deleted") is not True


def with_local_digests(event: Mapping[str, Any], max_bytes: float = DEFAULT_DIGEST_MAX_BYTES,
                       producer: str | None = None) -> dict[str, Any]:
    """``event`` (a valid event as a dict) with a ``cmf_artifact`` facet on every input and
    output that is an existing local file or directory without one (see the module docs).

    Returns a new dict and leaves ``event`` as it was; an event with nothing to digest comes
    back as a shallow copy. ``producer`` is the facet's ``_producer`` (default CMF's).
    """
    from cmf_core.openlineage.convert import facet_to_dict
    from cmf_core.openlineage.facets import ArtifactDatasetFacet

    out = dict(event)
    ended = event.get("eventType") not in _NOT_ENDED
    for side in ("inputs", "outputs"):
        datasets = event.get(side)
        if not isinstance(datasets, list):
            continue
        changed: list[Any] = list(datasets)
        for i, ds in enumerate(datasets):
            if not isinstance(ds, Mapping) or _has_live_artifact_facet(ds):
                continue
            path = local_path(ds.get("namespace"), ds.get("name"))
            if path is not None and side == "outputs" and not ended:
                changed[i] = None  # not written yet (or an older version): the end event has it
                continue
            found = local_identity(path, max_bytes) if path is not None else None
            if found is None:
                continue
            digest, method = found
            kwargs = {"producer": producer} if producer else {}
            facet = ArtifactDatasetFacet(digest=digest, type="Dataset",
                                         properties={"digest_method": method}, **kwargs)
            facets = ds.get("facets")
            changed[i] = {**ds, "facets": {**(facets if isinstance(facets, Mapping) else {}),
                                           "cmf_artifact": facet_to_dict(facet)}}
        if changed != datasets:
            out[side] = [ds for ds in changed if ds is not None]
    return out

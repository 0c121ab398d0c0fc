"""Identity that makes federation work.

* An artifact is identified by its content digest: a file by ``sha256:<hex>`` of its bytes
  (streamed); a directory by ``sha256:<hex>`` over its sorted relative paths and file digests
  (the same bytes in the same layout give the same digest on any machine); a remote object by
  ``version:<hex>``, a digest of its URI and the version, etag or digest the caller gives.
* An execution gets a UUIDv7 (time ordered) or a caller-given OpenLineage runId.
* Pipelines and stages are identified by name: ``uuid5`` of the name, so the same pipeline
  recorded at two sites is one pipeline after a merge.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import re
import secrets
import stat
import time
import uuid
from pathlib import Path

from cmf_core.errors import InvalidInputError

CHUNK = 1 << 20
SIZELESS_MAX = 64 << 20
"""Most bytes read of a file that reports size 0 (a /proc or /sys file)."""
NAMESPACE = uuid.UUID("6b1d0a4e-4f3c-5c8e-9a57-0c3f7d6b2e11")
# \Z, not $: "$" also matches before a trailing newline
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
DIGEST_KINDS = ("sha256", "version")  # what an artifact id starts with, before the ':'
_DIGEST_RE = re.compile(rf"^({'|'.join(DIGEST_KINDS)}):[0-9a-f]{{64}}\Z")


_rng = random.Random(secrets.token_bytes(32))  # seeded from the OS; reseeded after fork
os.register_at_fork(after_in_child=lambda: _rng.seed(secrets.token_bytes(32)))


def uuid7() -> str:
    """A new RFC 9562 UUIDv7: 48-bit Unix milliseconds, then 74 random bits (from a generator
    seeded from the operating system's CSPRNG in each process)."""
    ms = time.time_ns() // 1_000_000
    rand = _rng.getrandbits(74)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def check_uuid(value: str, what: str = "id") -> str:
    """Return ``value`` as a canonical UUID string or raise naming it."""
    if isinstance(value, str) and _UUID_RE.match(value):
        return value
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        raise InvalidInputError(f"{what} {value!r} is not a UUID") from None


@functools.lru_cache(maxsize=4096)
def name_id(*parts: str) -> str:
    """Deterministic id of a named thing (pipeline, stage) from its name parts."""
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(parts)))


def kfp_task_id(run_key: str, task: str, scope: str = "") -> str:
    """Execution id of task ``task`` in Kubeflow run ``run_key`` (``scope`` tells the
    iterations of a loop apart): the same whether the run was tracked live or imported."""
    key = f"{scope}/{task}" if scope else task
    return str(uuid.uuid5(NAMESPACE, f"kfp-task\x1f{run_key}\x1f{key}"))


def file_digest(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a file's bytes, read in 1 MiB chunks.

    The bytes read are the file's size when it is opened: a file that grows meanwhile (a log
    being appended to) is digested as it was then, not chased. A file that reports size 0 but
    has bytes (``/proc``, ``/sys``) is read to its end, up to :data:`SIZELESS_MAX` bytes.
    """
    h = hashlib.sha256()
    p = Path(path)
    try:
        mode = p.stat().st_mode
        if stat.S_ISDIR(mode):
            return dir_digest(p)
        if not stat.S_ISREG(mode):  # reading a FIFO or a device would block or never end
            raise InvalidInputError(f"artifact path {p} is not a regular file or a directory")
        with p.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            left = size if size else SIZELESS_MAX + 1
            while left > 0 and (chunk := fh.read(min(CHUNK, left))):
                h.update(chunk)
                left -= len(chunk)
            if not size and left <= 0:
                raise InvalidInputError(
                    f"artifact path {p} reports size 0 but holds more than "
                    f"{SIZELESS_MAX >> 20} MiB (a /proc or /sys file?): it is not digested")
    except FileNotFoundError:
        raise InvalidInputError(f"artifact path {p} does not exist") from None
    except PermissionError:
        raise InvalidInputError(f"artifact path {p} is not readable (permission denied)") from None
    except OSError as e:
        raise InvalidInputError(f"artifact path {p} cannot be read: {e.strerror or e}") from None
    return "sha256:" + h.hexdigest()


def _raise(error: OSError) -> None:
    raise error


def dir_digest(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` over the sorted relative paths and file digests of a directory tree.

    Files are the regular files under it, and symbolic links to files (their target's bytes);
    links to folders are not followed, and FIFOs, sockets, devices and dangling links are left
    out. A name is hashed as its bytes on disk (not UTF-8 text: any name has a digest). A
    subfolder or file that cannot be read is an error, never left out: a digest covers all of
    the folder's content or is not given.
    """
    root = Path(path)
    if not root.is_dir():
        raise InvalidInputError(f"artifact path {root} is not a directory")
    h = hashlib.sha256(b"cmf-dir-v1\n")
    files: list[Path] = []
    try:
        for dirpath, _, names in os.walk(root, onerror=_raise):
            files.extend(f for name in names if (f := Path(dirpath, name)).is_file())
    except PermissionError as e:
        raise InvalidInputError(f"artifact path {e.filename} is not readable (permission "
                                "denied)") from None
    except OSError as e:
        raise InvalidInputError(f"artifact path {e.filename or root} cannot be read: "
                                f"{e.strerror or e}") from None
    for f in sorted(files):
        rel = f.relative_to(root).as_posix()
        h.update(f"{rel}\0{file_digest(f)}\n".encode("utf-8", "surrogateescape"))
    return "sha256:" + h.hexdigest()


def path_digest(path: str | os.PathLike[str]) -> str:
    """Digest of a local file or directory."""
    p = Path(path)
    if p.is_dir():
        return dir_digest(p)
    return file_digest(p)


@functools.lru_cache(maxsize=4096)
def remote_digest(uri: str, version: str) -> str:
    """``version:<hex>`` of a remote object from its URI and caller-given version/etag/digest."""
    if not version:
        raise InvalidInputError(
            f"remote artifact {uri!r} needs a version, etag or digest to be identified"
        )
    return "version:" + hashlib.sha256(f"{uri}\0{version}".encode()).hexdigest()


def check_digest(value: str) -> str:
    """Return ``value`` if it is a digest this module produces, else raise naming it."""
    if not isinstance(value, str) or not _DIGEST_RE.match(value):
        raise InvalidInputError(
            f"artifact id {value!r} is not a digest (expected 'sha256:<64 hex>' or "
            "'version:<64 hex>')"
        )
    return value

"""Identity: content digests and ids (unit + property tests)."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmf_core.errors import InvalidInputError
from cmf_core.identity import (
    check_digest,
    check_uuid,
    dir_digest,
    file_digest,
    name_id,
    path_digest,
    remote_digest,
    uuid7,
)


def test_file_digest_is_sha256(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)  # spans several read chunks
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    assert file_digest(f) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_dir_digest_depends_on_content_and_layout_not_location(tmp_path: Path) -> None:
    def make(root: Path, files: dict[str, bytes]) -> Path:
        for rel, data in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return root

    a = make(tmp_path / "a", {"x.txt": b"1", "sub/y.txt": b"2"})
    b = make(tmp_path / "elsewhere" / "b", {"sub/y.txt": b"2", "x.txt": b"1"})
    c = make(tmp_path / "c", {"x.txt": b"1", "sub/z.txt": b"2"})
    d = make(tmp_path / "d", {"x.txt": b"1", "sub/y.txt": b"3"})
    assert dir_digest(a) == dir_digest(b) == path_digest(b)
    assert dir_digest(a) != dir_digest(c)
    assert dir_digest(a) != dir_digest(d)


def test_missing_and_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        file_digest(tmp_path / "nope")
    with pytest.raises(InvalidInputError, match="not a directory"):
        dir_digest(tmp_path / "nope")


def test_remote_digest_needs_version() -> None:
    assert remote_digest("s3://b/k", "etag1") != remote_digest("s3://b/k", "etag2")
    assert remote_digest("s3://b/k", "e") != remote_digest("s3://b/j", "e")
    with pytest.raises(InvalidInputError, match="version"):
        remote_digest("s3://b/k", "")


def test_uuid7_is_time_ordered_and_valid() -> None:
    ids = [uuid7() for _ in range(1000)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(set(ids)) == 1000
    ms = [u.int >> 80 for u in parsed]
    assert ms == sorted(ms)


def test_invalid_ids() -> None:
    with pytest.raises(InvalidInputError, match="not a UUID"):
        check_uuid("run-1")
    with pytest.raises(InvalidInputError, match="not a digest"):
        check_digest("md5:abc")
    # "$" matched before a trailing newline: such ids were taken as they were
    with pytest.raises(InvalidInputError, match="not a UUID"):
        check_uuid("0190a000-0000-7000-8000-000000000001\n")
    with pytest.raises(InvalidInputError, match="not a digest"):
        check_digest("sha256:" + "a" * 64 + "\n")


@settings(max_examples=50)
@given(st.dictionaries(st.text(alphabet="abcdefgh", min_size=1, max_size=6),
                       st.binary(max_size=64), min_size=1, max_size=6))
def test_same_bytes_same_digest_anywhere(tmp_path_factory: pytest.TempPathFactory,
                                          files: dict[str, bytes]) -> None:
    roots = [tmp_path_factory.mktemp("r"), tmp_path_factory.mktemp("r")]
    for root, order in zip(roots, (sorted(files), sorted(files, reverse=True)), strict=True):
        for name in order:
            (root / name).write_bytes(files[name])
    assert dir_digest(roots[0]) == dir_digest(roots[1])
    for name, data in files.items():
        assert file_digest(roots[0] / name) == "sha256:" + hashlib.sha256(data).hexdigest()


@given(st.text(min_size=1), st.text(min_size=1))
def test_name_ids_are_deterministic_and_injective(a: str, b: str) -> None:
    assert name_id("stage", a, b) == name_id("stage", a, b)
    if a != b:
        assert name_id("pipeline", a) != name_id("pipeline", b)


def test_folder_with_names_that_are_not_utf8_has_a_digest_of_their_bytes(tmp_path: Path) -> None:
    # POSIX file names are bytes; such a folder raised a raw UnicodeEncodeError (into the
    # user's task through log_dataset, and through CmfTransport's digests)
    d = tmp_path / "d"
    d.mkdir()
    (d / "ok.txt").write_bytes(b"1")
    with open(os.path.join(os.fsencode(d), b"bad\xff.txt"), "wb") as fh:
        fh.write(b"2")
    expected = hashlib.sha256(b"cmf-dir-v1\n")
    for name, data in sorted([(b"bad\xff.txt", b"2"), (b"ok.txt", b"1")]):
        expected.update(name + b"\0sha256:" + hashlib.sha256(data).hexdigest().encode() + b"\n")
    assert dir_digest(d) == path_digest(d) == "sha256:" + expected.hexdigest()


def _as_nobody(fn):  # type: ignore[no-untyped-def]
    """Run ``fn()`` in a child process without root's right to read anything; its result or
    ``(exception type name, message)``."""
    import pickle

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                out = fn()
            except Exception as e:  # reported to the parent
                out = (type(e).__name__, str(e))
            os.write(w, pickle.dumps(out))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def test_an_unreadable_subfolder_is_an_error_not_left_out(tmp_path: Path) -> None:
    import tempfile

    from cmf_core.openlineage.local import local_identity

    root = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's parents are root's own (mode 700)
    try:
        root.chmod(0o755)
        d = root / "d"
        (d / "open").mkdir(parents=True)
        (d / "open" / "a").write_bytes(b"a")
        (d / "locked").mkdir()
        (d / "locked" / "secret").write_bytes(b"s")
        os.chmod(d, 0o755)
        os.chmod(d / "open", 0o755)
        os.chmod(d / "open" / "a", 0o644)
        (d / "locked").chmod(0o700)
        # the digest left the folder out, as if it were not there, and said "sha256"
        got = _as_nobody(lambda: dir_digest(d))
        assert got == ("InvalidInputError",
                       f"artifact path {d / 'locked'} is not readable (permission denied)")
        # CmfTransport / the Airflow listener fall back to path, size and mtime, as documented
        assert _as_nobody(lambda: local_identity(str(d)))[1] == "stat"
    finally:
        (root / "d" / "locked").chmod(0o700)
        import shutil

        shutil.rmtree(root)


@pytest.mark.skipif(not os.path.exists("/proc/self/pagemap"), reason="needs Linux /proc")
def test_a_file_that_says_size_0_is_read_only_so_far() -> None:
    # /proc/self/pagemap reports size 0 and reads hundreds of GiB: the digest never ended
    with pytest.raises(InvalidInputError, match="reports size 0 but holds more than 64 MiB"):
        file_digest("/proc/self/pagemap")
    from cmf_core.openlineage.local import local_identity

    assert local_identity("/proc/self/pagemap")[1] == "stat"
    # a small /proc file is still digested (its bytes now)
    assert file_digest("/proc/self/cmdline").startswith("sha256:")

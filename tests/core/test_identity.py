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

"""Local file datasets get the listener's content digest; outputs only once the run ended."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmf_core.identity import path_digest
from cmf_core.openlineage.local import with_local_digests


def _event(kind: str, inp: Path, out: Path) -> dict:
    return {"eventType": kind, "eventTime": "2026-11-27T00:00:00Z",
            "run": {"runId": "0190a0a0-0000-7000-8000-000000000000"},
            "job": {"namespace": "ns", "name": "job"},
            "inputs": [{"namespace": "file", "name": str(inp)}],
            "outputs": [{"namespace": "file", "name": str(out)},
                        {"namespace": "s3://bucket", "name": "report.json"}],
            "producer": "test", "schemaURL": "x"}


def test_start_events_leave_local_outputs_to_the_end_event(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.csv", tmp_path / "out.csv"
    inp.write_text("a,b\n1,2\n")
    out.write_text("an older version")  # what a previous run left there
    for kind in ("START", "RUNNING"):
        event = _event(kind, inp, out)
        got = with_local_digests(event)
        assert got["inputs"][0]["facets"]["cmf_artifact"]["digest"] == path_digest(inp)
        assert [ds["name"] for ds in got["outputs"]] == ["report.json"]  # the remote one stays
        assert len(event["outputs"]) == 2  # the caller's event is not changed
    out.write_text("this run's output")
    for kind in ("COMPLETE", "FAIL"):
        got = with_local_digests(_event(kind, inp, out))
        assert got["outputs"][0]["facets"]["cmf_artifact"]["digest"] == path_digest(out)
        assert len(got["outputs"]) == 2


def test_big_folders_are_not_walked_and_roots_not_read(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from cmf_core.openlineage import local

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(6):
        (folder / f"f{i}").write_text(str(i))
    assert local.local_identity(str(folder))[1] == "sha256"
    monkeypatch.setattr(local, "MAX_WALK_FILES", 5)  # the walk stops: the folder's own stat
    st = folder.stat()
    expected = local.stat_identity(str(folder), st.st_size, st.st_mtime_ns), "stat"
    assert local.local_identity(str(folder)) == expected
    assert local.local_stat_identity(str(folder)) == expected
    monkeypatch.chdir(folder)
    assert local.local_identity(str(folder)) is None  # the working directory: named by URI
    assert local.local_identity(str(tmp_path)) is None and local.local_identity("/") is None


def test_the_digest_cache_sees_a_rename_or_rewrite_that_keeps_size_and_mtime(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A per-process cache keyed by (path, total size, newest mtime) returned a folder's old
    digest after a file was renamed inside a subfolder (neither changes), and a file's after
    it was rewritten with the same size and its mtime put back (``cp -p``, ``rsync -t``)."""
    from cmf_core.openlineage import local

    monkeypatch.setattr(local, "RACY_NS", -(10**12), raising=False)  # cache fresh files
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("same bytes")
    first = local.local_identity(str(folder))
    assert first == (path_digest(folder), "sha256")
    assert local.local_identity(str(folder)) == first  # unchanged: the same (cached) digest
    (folder / "sub" / "a.txt").rename(folder / "sub" / "b.txt")
    assert local.local_identity(str(folder)) == (path_digest(folder), "sha256") != first

    f = tmp_path / "x.bin"
    f.write_bytes(b"version 1")
    st = f.stat()
    old = local.local_identity(str(f))
    f.write_bytes(b"version 2")  # same size, and the old modification time put back
    import os

    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_mtime_ns == st.st_mtime_ns
    assert local.local_identity(str(f)) == (path_digest(f), "sha256") != old


def test_a_digest_taken_just_after_a_write_is_not_cached(tmp_path: Path) -> None:
    """A write in the same timestamp tick after the read would keep the cache key: a file
    changed within the last second is read again next time, not taken from the cache."""
    from cmf_core.openlineage import local

    f = tmp_path / "fresh.csv"
    f.write_text("a,b\n")
    key = local._stat(str(f))[4]
    assert local.local_identity(str(f)) == (path_digest(f), "sha256")
    assert key not in local._CACHE


def test_a_folder_is_walked_through_a_link_and_counts_each_file(tmp_path: Path) -> None:
    """The walk behind a folder's size and cache key (one stat per file, relative to its
    folder): a folder named through a symbolic link is walked, every file of every subfolder
    counts towards the size limit, a link to a folder inside is not followed, and a rename
    inside a subfolder changes the key."""
    from cmf_core.openlineage import local

    folder = tmp_path / "data"
    (folder / "a" / "b").mkdir(parents=True)
    (folder / "top.txt").write_bytes(b"x" * 10)
    (folder / "a" / "b" / "deep.txt").write_bytes(b"y" * 30)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"z" * 1000)
    (folder / "a" / "linked").symlink_to(outside, target_is_directory=True)
    link = tmp_path / "via-link"
    link.symlink_to(folder, target_is_directory=True)

    size, _, complete, _, key = local._stat(str(folder))
    assert (size, complete) == (40, True)  # not the 1,000 bytes behind the inner link
    linked = local._stat(str(link))
    assert linked[:3] == local._stat(str(folder))[:3]
    # 40 bytes: read up to 40, named by stat below it (the walk reached the deep file)
    assert local.local_identity(str(link), max_bytes=40) == (path_digest(link), "sha256")
    assert local.local_identity(str(link), max_bytes=39)[1] == "stat"

    (folder / "a" / "b" / "deep.txt").rename(folder / "a" / "b" / "renamed.txt")
    assert local._stat(str(folder))[4] != key
